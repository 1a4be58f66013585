//! How deep lists and mappings written inline (`[`, `{`) nest, found in one pass before a YAML
//! parser sees the text. libyaml reads every level before serde's depth limit refuses the value,
//! at several microseconds a level (100,000 `[`: about 0.7 s in a release build, seconds in a
//! debug one); this pass refuses the same file at the first level past the limit.
//!
//! The pass reads only what decides where a bracket opens a collection, as a YAML scanner
//! does: quoted scalars, comments, block scalars (`|`, `>`) and plain scalars (a bracket
//! inside `a[1]` is text) are skipped. It may count a bracket that is text (one that starts a
//! continuation line of a plain scalar); in a file YAML can read, it misses none that opens a
//! collection (a broken file that escapes the pass is still refused by the parser, more
//! slowly). Lists and mappings written as blocks are not counted: libyaml stops at serde's
//! depth limit on those without reading every level (100,000 `- ` on one line: a tenth of a
//! second in a debug build).

/// Where `text` opens a list or mapping inline more than `max` deep: the 1-based line and
/// column (in characters) of that `[` or `{`.
pub(crate) fn too_deep(text: &str, max: usize) -> Option<(usize, usize)> {
    let mut scan = Scan {
        b: text.as_bytes(),
        i: 0,
        line: 1,
        line_start: 0,
        depth: 0,
        node_col: 0,
        line_has_token: false,
    };
    scan.run(max)
}

struct Scan<'a> {
    b: &'a [u8],
    /// The next byte.
    i: usize,
    /// The current line (1-based) and where it starts.
    line: usize,
    line_start: usize,
    /// How many inline lists and mappings are open.
    depth: usize,
    /// The column (in bytes) of the last block node begun on this line: a block scalar's text
    /// is what is indented more.
    node_col: usize,
    line_has_token: bool,
}

fn blank_or_end(b: Option<&u8>) -> bool {
    matches!(b, None | Some(b' ' | b'\t' | b'\n' | b'\r'))
}

fn flow_indicator(b: u8) -> bool {
    matches!(b, b',' | b'[' | b']' | b'{' | b'}')
}

impl Scan<'_> {
    fn peek(&self, ahead: usize) -> Option<&u8> {
        self.b.get(self.i + ahead)
    }

    fn col(&self) -> usize {
        self.i - self.line_start
    }

    /// The 1-based column, in characters, of the next byte.
    fn char_col(&self) -> usize {
        1 + self.b[self.line_start..self.i]
            .iter()
            .filter(|&&b| b & 0xC0 != 0x80)
            .count()
    }

    /// Steps over a line break at the next byte, if there is one.
    fn line_break(&mut self) -> bool {
        match self.peek(0) {
            Some(b'\r') => {
                self.i += 1;
                if self.peek(0) == Some(&b'\n') {
                    self.i += 1;
                }
            }
            Some(b'\n') => self.i += 1,
            _ => return false,
        }
        self.line += 1;
        self.line_start = self.i;
        self.line_has_token = false;
        true
    }

    fn skip_line(&mut self) {
        while !matches!(self.peek(0), None | Some(b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn run(&mut self, max: usize) -> Option<(usize, usize)> {
        while let Some(&c) = self.peek(0) {
            if self.line_break() {
                continue;
            }
            let col = self.col();
            match c {
                b' ' | b'\t' => {
                    self.i += 1;
                    continue;
                }
                b'#' => {
                    self.skip_line();
                    continue;
                }
                b'[' | b'{' => {
                    self.depth += 1;
                    if self.depth > max {
                        return Some((self.line, self.char_col()));
                    }
                    self.i += 1;
                }
                b']' | b'}' => {
                    self.depth = self.depth.saturating_sub(1);
                    self.i += 1;
                }
                b',' => self.i += 1,
                b'"' | b'\'' => {
                    self.block_node(col);
                    self.quoted(c);
                }
                b'-' | b'.' if col == 0 && self.document_marker(c) => self.i += 3,
                b'%' if col == 0 && self.depth == 0 => self.skip_line(),
                b'-' | b'?' | b':'
                    if blank_or_end(self.peek(1)) || (c == b':' && self.depth > 0) =>
                {
                    if c != b':' {
                        self.block_node(col);
                    }
                    self.i += 1;
                }
                b'|' | b'>' if self.depth == 0 => self.block_scalar(col),
                b'!' | b'&' | b'*' => self.word(),
                _ => {
                    self.block_node(col);
                    self.plain();
                }
            }
            self.line_has_token = true;
        }
        None
    }

    /// Notes a block node beginning at `col`.
    fn block_node(&mut self, col: usize) {
        if self.depth == 0 {
            self.node_col = col;
        }
    }

    fn document_marker(&self, c: u8) -> bool {
        self.peek(1) == Some(&c) && self.peek(2) == Some(&c) && blank_or_end(self.peek(3))
    }

    /// A quoted scalar, its quotes included (it may span lines).
    fn quoted(&mut self, quote: u8) {
        self.i += 1;
        while let Some(&c) = self.peek(0) {
            if self.line_break() {
                continue;
            }
            self.i += 1;
            if c == quote {
                // '' inside single quotes is a quote.
                if quote == b'\'' && self.peek(0) == Some(&b'\'') {
                    self.i += 1;
                    continue;
                }
                return;
            }
            if quote == b'"' && c == b'\\' && matches!(self.peek(0), Some(b'"' | b'\\')) {
                self.i += 1;
            }
        }
    }

    /// A tag, an anchor or an alias.
    fn word(&mut self) {
        while let Some(&c) = self.peek(0) {
            if blank_or_end(Some(&c)) || (self.depth > 0 && flow_indicator(c)) {
                return;
            }
            self.i += 1;
        }
    }

    /// A plain scalar, to its end on this line.
    fn plain(&mut self) {
        while let Some(&c) = self.peek(0) {
            let next = self.peek(1);
            let ends = match c {
                b'\n' | b'\r' => true,
                b':' => {
                    blank_or_end(next)
                        || (self.depth > 0 && next.is_some_and(|&n| flow_indicator(n)))
                }
                b' ' | b'\t' => next == Some(&b'#'),
                _ => self.depth > 0 && flow_indicator(c),
            };
            if ends {
                return;
            }
            self.i += 1;
        }
    }

    /// A block scalar at `col`: its header line, then every line indented more than the node
    /// it belongs to (and blank lines).
    fn block_scalar(&mut self, col: usize) {
        let parent = if self.line_has_token {
            self.node_col as isize
        } else {
            col as isize - 1
        };
        self.skip_line();
        loop {
            let next = match &self.b[self.i..] {
                [b'\r', b'\n', ..] => self.i + 2,
                [b'\r' | b'\n', ..] => self.i + 1,
                _ => return,
            };
            let line = &self.b[next..];
            let line = &line[..line
                .iter()
                .position(|&b| b == b'\n' || b == b'\r')
                .unwrap_or(line.len())];
            let indent = line.iter().take_while(|&&b| b == b' ').count();
            let blank = line.iter().all(|&b| b == b' ' || b == b'\t');
            if !blank && indent as isize <= parent {
                return;
            }
            self.line_break();
            self.skip_line();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deep(open: &str, n: usize) -> String {
        open.repeat(n)
    }

    #[test]
    fn refuses_the_first_bracket_past_the_limit() {
        assert_eq!(too_deep(&deep("[", 100_000), 128), Some((1, 129)));
        assert_eq!(too_deep(&deep("{", 129), 128), Some((1, 129)));
        assert_eq!(too_deep(&deep("[a, ", 200), 128), Some((1, 129 * 4 - 3)));
        assert_eq!(
            too_deep(&format!("a:\n  b: {}", deep("[", 129)), 128),
            Some((2, 134))
        );
        let fine = format!("{}{}", deep("[", 128), deep("]", 128));
        assert_eq!(too_deep(&fine, 128), None);
        // Closed brackets do not add up.
        assert_eq!(too_deep(&deep("[[]]", 1_000), 2), None);
        // JSON.
        let json = format!("{}1{}", deep("{\"a\":[", 70), deep("]}", 70));
        assert_eq!(too_deep(&json, 128), Some((1, 6 * 64 + 1)));
    }

    #[test]
    fn brackets_that_are_text_do_not_count() {
        let many = deep("[", 300);
        for text in [
            format!("a: \"{many}\"\n"),
            format!("a: '{many}'\nb: 'it''s {many}'\n"),
            format!("a: \"x\\\"{many}\"\n"),
            format!("a: \"multi\n  line {many}\"\n"),
            format!("a: b{many}\n"),
            format!("- x{many}: y\n"),
            format!("a: 1 # {many}\n"),
            format!("# {many}\n"),
            format!("a: |\n  {many}\n\n  {many}\nb: 1\n"),
            format!("- k: >-\n    {many}\n- x\n"),
            format!("a: [\"{many}\", '{many}', b{{}}c]\n"),
            format!("a: !tag{many} x\n"),
        ] {
            assert_eq!(too_deep(&text, 128), None, "{text}");
        }
    }

    #[test]
    fn brackets_after_text_count() {
        let many = deep("[", 129);
        assert_eq!(
            too_deep(&format!("a: |\n  x\nb: {many}"), 128),
            Some((3, 132))
        );
        assert_eq!(
            too_deep(&format!("a: \"x\"\nb: {many}"), 128),
            Some((2, 132))
        );
        assert_eq!(too_deep(&format!("--- {many}"), 128), Some((1, 133)));
        assert_eq!(
            too_deep(&format!("a: 'x'\r\nb: {many}"), 128),
            Some((2, 132))
        );
        assert_eq!(too_deep(&format!("é: {many}"), 128), Some((1, 132)));
    }
}
