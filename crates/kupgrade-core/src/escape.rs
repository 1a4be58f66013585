//! Escaping text that came from outside (cluster and policy names, labels and zones, paths,
//! violation messages, a node's error output) before it reaches a person: a terminal, a text
//! report, a Markdown runbook, a Mermaid chart or an HTML page.
//!
//! Node names and versions are validated when they are parsed (RFC 1123 names, ASCII version
//! identifiers), but much else is free text. Written raw, a control character can move the
//! cursor, recolour or rewrite a terminal line (`ESC [`, a carriage return), a bidirectional
//! override (U+202A to U+202E, U+2066 to U+2069) can show a command in another order than the
//! one that runs, an invisible character can make two names look the same, and in a page `<`
//! opens HTML and `[..](..)` a link.
//!
//! Every function here is a function of one value: renderers call it on the values they
//! write, and leave their own text alone. Each returns the value borrowed when nothing needed
//! escaping, so the common case costs a scan and no allocation, and every bundled sample
//! renders byte for byte as before.
//!
//! - [`text`]: one value on one line of text or a terminal. Hidden characters ([`is_hidden`])
//!   become visible escapes: `\n`, `\r`, `\t`, and `\u{202e}` for the others.
//! - [`text_lines`]: the same for a block whose line breaks (and tabs) are its own, such as a
//!   command with a here-document.
//! - [`markdown`]: one value in Markdown text: hidden characters as in [`text`], HTML's `<`,
//!   `>`, `&` and `"` as character references, and the punctuation that makes Markdown
//!   (emphasis, code, links, tables, headings) backslash-escaped.
//! - [`markdown_prose`]: a sentence kupgrade wrote around such values (which may use code
//!   spans on purpose): hidden characters, HTML and link brackets escaped, the rest kept.
//! - [`code_fence`]: a fence for a fenced code block that its content cannot close.
//! - [`shell_word`]: a word of a command line shown to a person, quoted for a POSIX shell,
//!   its hidden characters written as `printf` escapes, so that a pasted line is exact.
//! - [`mermaid`]: a label of a Mermaid chart: hidden characters escaped, what ends a label or
//!   starts a comment (`:`, `;`, `#`, `%`, a line break) replaced by a space, and `<`, `>`,
//!   `&`, `"` and the backtick written as Mermaid's entity codes (`#60;`).
//! - [`html`]: one value in HTML text or a quoted attribute: hidden characters as in [`text`],
//!   `<`, `>`, `&`, `"` and `'` as character references.
//!
//! ```
//! use kupgrade_core::escape;
//! assert_eq!(escape::text("prod-eu"), "prod-eu");
//! assert_eq!(escape::text("evil\u{202e}txt.exe\n\u{1b}[2J"), "evil\\u{202e}txt.exe\\n\\u{1b}[2J");
//! assert_eq!(escape::markdown("<b>[x](javascript:y)</b>"), "&lt;b&gt;\\[x\\](javascript:y)&lt;/b&gt;");
//! assert_eq!(escape::mermaid("a <b>: c"), "a #60;b#62;  c");
//! ```
use std::borrow::Cow;
use std::fmt::Write as _;

/// Characters that must not reach a person raw: controls (C0, DEL, C1), line and paragraph
/// separators, and the invisible format characters, bidirectional controls among them.
///
/// The table is Unicode's `Default_Ignorable_Code_Point` property, general categories `Cc`,
/// `Cf`, `Zl` and `Zp` (Unicode 16.0), as inclusive ranges in order.
const HIDDEN: &[(char, char)] = &[
    ('\u{0}', '\u{1f}'),
    ('\u{7f}', '\u{9f}'),
    ('\u{ad}', '\u{ad}'),
    ('\u{34f}', '\u{34f}'),
    ('\u{600}', '\u{605}'),
    ('\u{61c}', '\u{61c}'),
    ('\u{6dd}', '\u{6dd}'),
    ('\u{70f}', '\u{70f}'),
    ('\u{890}', '\u{891}'),
    ('\u{8e2}', '\u{8e2}'),
    ('\u{115f}', '\u{1160}'),
    ('\u{17b4}', '\u{17b5}'),
    ('\u{180b}', '\u{180f}'),
    ('\u{200b}', '\u{200f}'),
    ('\u{2028}', '\u{202e}'),
    ('\u{2060}', '\u{206f}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{fe00}', '\u{fe0f}'),
    ('\u{feff}', '\u{feff}'),
    ('\u{ffa0}', '\u{ffa0}'),
    ('\u{fff0}', '\u{fffb}'),
    ('\u{110bd}', '\u{110bd}'),
    ('\u{110cd}', '\u{110cd}'),
    ('\u{13430}', '\u{1343f}'),
    ('\u{1bca0}', '\u{1bca3}'),
    ('\u{1d173}', '\u{1d17a}'),
    ('\u{e0000}', '\u{e0fff}'),
];

/// True for a character that must not reach a person raw (see the module documentation): a
/// control character, a line or paragraph separator, or an invisible format character such
/// as a bidirectional override, a zero-width space or a byte-order mark.
///
/// ```
/// use kupgrade_core::escape::is_hidden;
/// assert!(is_hidden('\u{1b}') && is_hidden('\u{202e}') && is_hidden('\u{200b}'));
/// assert!(!is_hidden('a') && !is_hidden('é') && !is_hidden('→') && !is_hidden(' '));
/// ```
pub fn is_hidden(c: char) -> bool {
    // Most text is printable ASCII: answer it without the table.
    if (' '..='~').contains(&c) {
        return false;
    }
    HIDDEN
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Writes the visible escape of hidden character `c`: `\n`, `\r`, `\t` or `\u{hex}`.
fn push_escape(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// Rewrites `s` with `each`, which writes a character's replacement to the string it is given
/// and says whether it did (`false`: the character is kept as it is); borrowed when nothing is
/// replaced.
fn rewrite<'a>(s: &'a str, each: impl Fn(char, &mut String) -> bool) -> Cow<'a, str> {
    let mut scratch = String::new();
    let first = s.char_indices().find(|&(_, c)| {
        scratch.clear();
        each(c, &mut scratch)
    });
    let Some((at, _)) = first else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 16);
    out.push_str(&s[..at]);
    for c in s[at..].chars() {
        if !each(c, &mut out) {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One value on one line of text or a terminal: hidden characters (line breaks included)
/// as visible escapes, everything else as it is.
///
/// ```
/// use kupgrade_core::escape::text;
/// assert_eq!(text("zone a\u{2066}b"), "zone a\\u{2066}b");
/// assert_eq!(text("two\nlines"), "two\\nlines");
/// ```
pub fn text(s: &str) -> Cow<'_, str> {
    rewrite(s, |c, out| {
        let hidden = is_hidden(c);
        if hidden {
            push_escape(out, c);
        }
        hidden
    })
}

/// A block of text whose line breaks and tabs are its own (a command with a here-document, a
/// multi-line message): every other hidden character as a visible escape.
///
/// ```
/// use kupgrade_core::escape::text_lines;
/// assert_eq!(text_lines("a\n\tb\r\u{1b}[1m"), "a\n\tb\\r\\u{1b}[1m");
/// ```
pub fn text_lines(s: &str) -> Cow<'_, str> {
    rewrite(s, |c, out| {
        let hidden = hidden_in_lines(c);
        if hidden {
            push_escape(out, c);
        }
        hidden
    })
}

/// HTML's character reference for `c`, for the characters that open markup or end an
/// attribute.
fn html_reference(c: char) -> Option<&'static str> {
    match c {
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '&' => Some("&amp;"),
        '"' => Some("&quot;"),
        _ => None,
    }
}

/// One value in Markdown text (a heading, a table cell, a list item): hidden characters as
/// visible escapes (as [`text`] writes them, the backslash kept visible), `<`, `>`, `&` and
/// `"` as HTML character references, and the punctuation that starts emphasis, code, links,
/// images, tables, strikethrough or a heading (`\` `` ` `` `*` `_` `[` `]` `|` `~` `#`)
/// behind a backslash. The value then reads as the same characters once rendered, and
/// nothing in it is markup.
///
/// ```
/// use kupgrade_core::escape::markdown;
/// assert_eq!(markdown("prod eu-1"), "prod eu-1");
/// assert_eq!(markdown("a|b *c* `d`"), "a\\|b \\*c\\* \\`d\\`");
/// assert_eq!(markdown("x\u{202e}y"), "x\\\\u{202e}y");
/// ```
pub fn markdown(s: &str) -> Cow<'_, str> {
    rewrite(s, |c, out| {
        if is_hidden(c) {
            out.push('\\');
            push_escape(out, c);
        } else if let Some(r) = html_reference(c) {
            out.push_str(r);
        } else if matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' | '#') {
            out.push('\\');
            out.push(c);
        } else {
            return false;
        }
        true
    })
}

/// A sentence kupgrade wrote, with values inside (a step's reason, a note, a step's
/// description), in Markdown text: hidden characters as visible escapes, `<`, `>` and `&` as
/// HTML character references, and link brackets behind a backslash; code spans and other
/// Markdown the sentence uses on purpose are kept.
///
/// ```
/// use kupgrade_core::escape::markdown_prose;
/// assert_eq!(markdown_prose("runs `kubeadm upgrade apply`"), "runs `kubeadm upgrade apply`");
/// assert_eq!(markdown_prose("to /x/[a](javascript:b)<img>"), "to /x/\\[a\\](javascript:b)&lt;img&gt;");
/// ```
pub fn markdown_prose(s: &str) -> Cow<'_, str> {
    rewrite(s, |c, out| {
        if is_hidden(c) {
            out.push('\\');
            push_escape(out, c);
        } else if c != '"'
            && let Some(r) = html_reference(c)
        {
            out.push_str(r);
        } else if matches!(c, '[' | ']') {
            out.push('\\');
            out.push(c);
        } else {
            return false;
        }
        true
    })
}

/// The fence for a fenced code block holding `content`: three backticks, or one more than the
/// longest run of backticks in it, so that no line of the content can close the block early.
///
/// ```
/// use kupgrade_core::escape::code_fence;
/// assert_eq!(code_fence("echo hi"), "```");
/// assert_eq!(code_fence("echo '\n```\n<b>'"), "````");
/// ```
pub fn code_fence(content: &str) -> String {
    let longest = content.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// True for a hidden character that is not a line break or a tab (which a terminal shows as
/// what they are).
fn hidden_in_lines(c: char) -> bool {
    is_hidden(c) && c != '\n' && c != '\t'
}

/// One word of a command line shown to a person, to read and to paste into a POSIX shell:
/// quoted as [`shell_quote`](crate::ports::shell_quote) quotes it, except that hidden
/// characters (other than line breaks and tabs) are written as `"$(printf '\033')"`, octal
/// escapes of their UTF-8 bytes. Nothing hidden reaches the terminal, and the pasted word is
/// the exact value.
///
/// ```
/// use kupgrade_core::escape::shell_word;
/// assert_eq!(shell_word("/tmp/up.journal"), "/tmp/up.journal");
/// assert_eq!(shell_word("a $(id)"), "'a $(id)'");
/// assert_eq!(shell_word("x\u{1b}[2Jy"), "x\"$(printf '\\033')\"'[2Jy'");
/// ```
pub fn shell_word(word: &str) -> Cow<'_, str> {
    use crate::ports::shell_quote;
    if !word.chars().any(hidden_in_lines) {
        let quoted = shell_quote(word);
        return if quoted == word {
            Cow::Borrowed(word)
        } else {
            Cow::Owned(quoted)
        };
    }
    let mut out = String::new();
    let mut rest = word;
    while !rest.is_empty() {
        let visible = rest.find(hidden_in_lines).unwrap_or(rest.len());
        if visible > 0 {
            out.push_str(&shell_quote(&rest[..visible]));
            rest = &rest[visible..];
            continue;
        }
        let hidden = rest.find(|c| !hidden_in_lines(c)).unwrap_or(rest.len());
        out.push_str("\"$(printf '");
        for b in rest[..hidden].bytes() {
            let _ = write!(out, "\\{b:03o}");
        }
        out.push_str("')\"");
        rest = &rest[hidden..];
    }
    Cow::Owned(out)
}

/// A label in a Mermaid chart (a title, a section, a task): hidden characters as visible
/// escapes; `:`, `;`, `#`, `%` and line breaks, which end a gantt label or start a comment,
/// as spaces; `<`, `>`, `&`, `"` and the backtick as Mermaid's entity codes (`#60;`), which
/// Mermaid reads before the chart's syntax and shows as the character.
///
/// ```
/// use kupgrade_core::escape::mermaid;
/// assert_eq!(mermaid("cp-1 drain"), "cp-1 drain");
/// assert_eq!(mermaid("a:b;c#d%e\nf"), "a b c d e f");
/// assert_eq!(mermaid("<script>```"), "#60;script#62;#96;#96;#96;");
/// ```
pub fn mermaid(s: &str) -> Cow<'_, str> {
    rewrite(s, |c, out| {
        match c {
            ':' | ';' | '#' | '%' | '\n' => out.push(' '),
            '<' | '>' | '&' | '"' | '`' => {
                let _ = write!(out, "#{};", c as u32);
            }
            c if is_hidden(c) => push_escape(out, c),
            _ => return false,
        }
        true
    })
}

/// One value in HTML text or a quoted attribute: hidden characters as visible escapes (as
/// [`text`] writes them), and `<`, `>`, `&`, `"` and `'` as character references, so nothing
/// in the value is markup and no attribute ends early.
///
/// ```
/// use kupgrade_core::escape::html;
/// assert_eq!(html("worker-1"), "worker-1");
/// assert_eq!(html("<b a='x'>\u{202e}"), "&lt;b a=&#39;x&#39;&gt;\\u{202e}");
/// ```
pub fn html(s: &str) -> Cow<'_, str> {
    rewrite(s, |c, out| {
        if let Some(r) = html_reference(c) {
            out.push_str(r);
        } else if c == '\'' {
            out.push_str("&#39;");
        } else if is_hidden(c) {
            push_escape(out, c);
        } else {
            return false;
        }
        true
    })
}

/// A block of HTML text (the content of a `<pre>`: a command's output) whose line breaks and
/// tabs are its own: every other hidden character as a visible escape (as [`text_lines`]
/// writes them), and `<`, `>`, `&`, `"` and `'` as character references, as [`html`] does.
///
/// ```
/// use kupgrade_core::escape::html_lines;
/// assert_eq!(html_lines("a\n\t<b>\r"), "a\n\t&lt;b&gt;\\r");
/// ```
pub fn html_lines(s: &str) -> Cow<'_, str> {
    rewrite(s, |c, out| {
        if let Some(r) = html_reference(c) {
            out.push_str(r);
        } else if c == '\'' {
            out.push_str("&#39;");
        } else if hidden_in_lines(c) {
            push_escape(out, c);
        } else {
            return false;
        }
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hostile values as they reach a report: a terminal escape sequence, a carriage return
    /// that rewrites the line, bidirectional overrides and isolates, zero-width and other
    /// invisible characters, a byte-order mark, a C1 control, Unicode tags, HTML and Markdown.
    const HOSTILE: &[&str] = &[
        "prod\u{1b}[2J\u{1b}]0;owned\u{7}",
        "ok\rrm -rf /",
        "eu-1a\u{202e}lanigiro",
        "a\u{2066}b\u{2067}c\u{2068}d\u{2069}e\u{202a}f\u{202b}g\u{202c}h\u{202d}",
        "zero\u{200b}width\u{200d}joiner\u{2060}\u{feff}\u{ad}",
        "c1\u{85}\u{9b}31m",
        "tag\u{e0041}\u{e007f}",
        "line\u{2028}para\u{2029}",
        "<script>alert(1)</script>",
        "[click](javascript:alert(1)) | ![img](x) `code` *em* _u_ ~s~ # h",
        "```\n<b>",
    ];

    fn visible(s: &str) -> bool {
        !s.chars().any(is_hidden)
    }

    #[test]
    fn the_table_is_sorted_and_disjoint() {
        for w in HIDDEN.windows(2) {
            assert!(w[0].0 <= w[0].1 && w[0].1 < w[1].0, "{w:?}");
        }
    }

    #[test]
    fn hidden_characters_are_found_and_ordinary_ones_are_not() {
        for c in [
            '\0',
            '\u{1b}',
            '\r',
            '\n',
            '\t',
            '\u{7f}',
            '\u{85}',
            '\u{9f}',
            '\u{ad}',
            '\u{61c}',
            '\u{200b}',
            '\u{200e}',
            '\u{200f}',
            '\u{2028}',
            '\u{2029}',
            '\u{202a}',
            '\u{202e}',
            '\u{2066}',
            '\u{2069}',
            '\u{feff}',
            '\u{fff9}',
            '\u{e0001}',
            '\u{e0100}',
        ] {
            assert!(is_hidden(c), "{c:?}");
        }
        for c in [
            ' ',
            'a',
            '~',
            '\u{a0}',
            'é',
            'ß',
            '→',
            '×',
            '—',
            '字',
            'ж',
            '\u{1f600}',
            '\u{2027}',
            '\u{202f}',
            '\u{2070}',
        ] {
            assert!(!is_hidden(c), "{c:?}");
        }
    }

    #[test]
    fn text_leaves_nothing_hidden_and_keeps_ordinary_text() {
        for s in HOSTILE {
            let e = text(s);
            assert!(visible(&e), "{s:?} -> {e:?}");
            assert!(!e.contains('\n'), "{e:?}");
        }
        assert_eq!(text("ok\rrm -rf /\u{1b}[2J"), "ok\\rrm -rf /\\u{1b}[2J");
        for ordinary in ["prod-eu", "a b", "ünïcödé → ×3", "<b> & `x`", ""] {
            assert!(matches!(text(ordinary), Cow::Borrowed(_)), "{ordinary:?}");
        }
    }

    #[test]
    fn text_lines_keeps_line_breaks_and_tabs_only() {
        assert_eq!(text_lines("a\nb\tc"), "a\nb\tc");
        assert_eq!(
            text_lines("a\r\n\u{202e}b\u{1b}"),
            "a\\r\n\\u{202e}b\\u{1b}"
        );
        for s in HOSTILE {
            let e = text_lines(s);
            assert!(
                !e.chars().any(|c| is_hidden(c) && c != '\n' && c != '\t'),
                "{e:?}"
            );
        }
    }

    #[test]
    fn html_lines_hold_no_markup_and_keep_line_breaks() {
        assert_eq!(html_lines("a\nb\tc"), "a\nb\tc");
        assert_eq!(
            html_lines("<script>x</script>\r\n\u{1b}[1m"),
            "&lt;script&gt;x&lt;/script&gt;\\r\n\\u{1b}[1m"
        );
        for s in HOSTILE {
            let e = html_lines(s);
            assert!(!e.contains(['<', '>', '"', '\'']), "{e:?}");
            assert!(
                !e.chars().any(|c| is_hidden(c) && c != '\n' && c != '\t'),
                "{e:?}"
            );
        }
    }

    #[test]
    fn markdown_values_hold_no_markup() {
        for s in HOSTILE {
            let e = markdown(s);
            assert!(visible(&e), "{e:?}");
            assert!(!e.contains(['<', '>', '"', '\n']), "{e:?}");
            // Every Markdown punctuation character is escaped: none follows an even run of
            // backslashes.
            let chars: Vec<char> = e.chars().collect();
            for (i, c) in chars.iter().enumerate() {
                if matches!(c, '`' | '*' | '_' | '[' | ']' | '|' | '~' | '#') {
                    let slashes = chars[..i].iter().rev().take_while(|&&b| b == '\\').count();
                    assert!(slashes % 2 == 1, "{c:?} unescaped in {e:?}");
                }
            }
        }
        assert_eq!(
            markdown("<script>alert(\"x\")</script> & co"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co"
        );
        assert_eq!(
            markdown("[click](javascript:alert(1))"),
            "\\[click\\](javascript:alert(1))"
        );
        assert_eq!(markdown("a\nb"), "a\\\\nb");
    }

    #[test]
    fn markdown_prose_keeps_code_spans_and_escapes_markup() {
        let reason = "the first control-plane node (cp-1) runs `kubeadm upgrade apply`: one minor per hop, since kubeadm refuses to skip minors; node's";
        assert!(matches!(markdown_prose(reason), Cow::Borrowed(_)));
        for s in HOSTILE {
            let e = markdown_prose(s);
            assert!(visible(&e), "{e:?}");
            assert!(!e.contains(['<', '>', '\n']), "{e:?}");
        }
        assert_eq!(
            markdown_prose("a & b <i>[x](y)</i>"),
            "a &amp; b &lt;i&gt;\\[x\\](y)&lt;/i&gt;"
        );
    }

    #[test]
    fn a_code_fence_is_longer_than_any_backtick_run_inside() {
        assert_eq!(code_fence(""), "```");
        assert_eq!(code_fence("a ` b `` c"), "```");
        assert_eq!(code_fence("x\n```\ny"), "````");
        assert_eq!(code_fence("`````"), "``````");
        for s in HOSTILE {
            let fence = code_fence(s);
            assert!(!s.contains(&fence), "{s:?} holds {fence}");
        }
    }

    #[test]
    fn shell_words_show_nothing_hidden() {
        assert_eq!(shell_word("plain-word_1.2"), "plain-word_1.2");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word("a\nb\tc"), "'a\nb\tc'");
        assert_eq!(
            shell_word("\u{202e}x\u{1b}\r"),
            "\"$(printf '\\342\\200\\256')\"x\"$(printf '\\033\\015')\""
        );
        for s in HOSTILE {
            let w = shell_word(s);
            assert!(
                !w.chars().any(|c| is_hidden(c) && c != '\n'),
                "{s:?} -> {w:?}"
            );
        }
    }

    #[test]
    fn mermaid_labels_cannot_end_early_or_hold_markup() {
        for s in HOSTILE {
            let e = mermaid(s);
            assert!(visible(&e), "{e:?}");
            // The only `#` and `;` left are those of entity codes.
            let without_codes = e
                .replace("#60;", "")
                .replace("#62;", "")
                .replace("#38;", "")
                .replace("#34;", "")
                .replace("#96;", "");
            assert!(
                !without_codes.contains([':', ';', '#', '%', '\n', '<', '>', '&', '"', '`']),
                "{e:?}"
            );
        }
        assert_eq!(mermaid("a & \"b\""), "a #38; #34;b#34;");
        assert_eq!(mermaid("x\u{202e}y\u{1b}"), "x\\u{202e}y\\u{1b}");
    }
}
