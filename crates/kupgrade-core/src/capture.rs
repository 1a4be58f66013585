//! Bounded capture of a command's output, and its cutting into lines: what every
//! [`CommandRunner`](crate::ports::CommandRunner) backend does with the bytes a command prints,
//! in one place (pure: bytes in, kept bytes and lines out).
//!
//! A stream is kept in a tail buffer (its last `max_output` bytes) and cut into lines for the
//! caller's [`LineSink`]. Neither grows with the command's output: a runner can stream
//! gigabytes and hold a bounded amount of memory.
use crate::ports::{LineSink, Stream};

/// The longest line handed to a sink in one piece; longer lines arrive in pieces of this size.
pub const MAX_LINE: usize = 64 * 1024;

/// Keeps the last `max` bytes written to it.
#[derive(Debug)]
struct TailBuffer {
    max: usize,
    buf: Vec<u8>,
    truncated: bool,
}

impl TailBuffer {
    fn new(max: usize) -> Self {
        TailBuffer {
            max,
            buf: Vec::new(),
            truncated: false,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if bytes.len() >= self.max {
            self.truncated |= bytes.len() > self.max || !self.buf.is_empty();
            self.buf.clear();
            self.buf.extend_from_slice(&bytes[bytes.len() - self.max..]);
            return;
        }
        self.buf.extend_from_slice(bytes);
        // Compact only once the buffer holds twice the bound, so pushes stay amortised O(1).
        if self.buf.len() > self.max.saturating_mul(2).max(8 * 1024) {
            self.compact();
        }
    }

    fn compact(&mut self) {
        if self.buf.len() > self.max {
            let cut = self.buf.len() - self.max;
            self.buf.drain(..cut);
            self.truncated = true;
        }
    }

    /// The kept bytes and whether anything was dropped.
    fn finish(mut self) -> (Vec<u8>, bool) {
        self.compact();
        (self.buf, self.truncated)
    }
}

/// Cuts a byte stream into lines for a sink.
#[derive(Debug)]
struct LineSplitter {
    stream: Stream,
    pending: Vec<u8>,
}

impl LineSplitter {
    fn new(stream: Stream) -> Self {
        LineSplitter {
            stream,
            pending: Vec::new(),
        }
    }

    fn push(&mut self, mut bytes: &[u8], sink: &LineSink) {
        while let Some(i) = bytes.iter().position(|&b| b == b'\n') {
            self.pending.extend_from_slice(&bytes[..i]);
            self.emit(sink);
            bytes = &bytes[i + 1..];
        }
        self.pending.extend_from_slice(bytes);
        while self.pending.len() >= MAX_LINE {
            let rest = self.pending.split_off(MAX_LINE);
            self.emit(sink);
            self.pending = rest;
        }
    }

    fn emit(&mut self, sink: &LineSink) {
        let line = self.pending.strip_suffix(b"\r").unwrap_or(&self.pending);
        sink.line(self.stream, &String::from_utf8_lossy(line));
        self.pending.clear();
    }

    /// Delivers a last line that had no newline.
    fn finish(mut self, sink: &LineSink) {
        if !self.pending.is_empty() {
            self.emit(sink);
        }
    }
}

/// One stream of a command's output: its last `max` bytes, kept for the
/// [`CommandOutput`](crate::ports::CommandOutput), and its lines, handed to the caller's
/// [`LineSink`] as they complete (lines longer than [`MAX_LINE`] in pieces). Memory stays
/// bounded whatever the command prints.
///
/// ```
/// use kupgrade_core::capture::StreamCapture;
/// use kupgrade_core::ports::{LineSink, Stream};
/// use std::sync::{Arc, Mutex};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let s = seen.clone();
/// let sink = LineSink::new(move |_, line| s.lock().unwrap().push(line.to_string()));
/// let mut out = StreamCapture::new(Stream::Stdout, 8, &sink);
/// out.push(b"first line\nsec", &sink);
/// out.push(b"ond", &sink);
/// assert_eq!(out.finish(&sink), (b"e\nsecond".to_vec(), true));
/// assert_eq!(*seen.lock().unwrap(), ["first line", "second"]);
/// ```
#[derive(Debug)]
pub struct StreamCapture {
    tail: TailBuffer,
    lines: Option<LineSplitter>,
}

impl StreamCapture {
    /// A capture of `stream` keeping `max` bytes; lines are cut only when `sink` wants them.
    pub fn new(stream: Stream, max: usize, sink: &LineSink) -> Self {
        StreamCapture {
            tail: TailBuffer::new(max),
            lines: sink.is_active().then(|| LineSplitter::new(stream)),
        }
    }

    /// Takes the next bytes of the stream, handing complete lines to `sink`.
    pub fn push(&mut self, bytes: &[u8], sink: &LineSink) {
        self.tail.push(bytes);
        if let Some(lines) = &mut self.lines {
            lines.push(bytes, sink);
        }
    }

    /// Ends the stream: hands a last line without a newline to `sink`, and returns the kept
    /// bytes and whether anything was dropped.
    pub fn finish(self, sink: &LineSink) -> (Vec<u8>, bool) {
        if let Some(lines) = self.lines {
            lines.finish(sink);
        }
        self.tail.finish()
    }
}

/// The most bytes of a command's error output a [`Failure`](crate::run::Failure) keeps (in the
/// journal, in messages): 4 KiB, the marker included.
pub const STDERR_TAIL_MAX: usize = 4 * 1024;

/// At most the last `max` bytes of `text`: `text` itself when it fits, else a marker saying
/// how many bytes were cut and the end of `text` (cut at a character boundary), `max` bytes
/// in all (the marker included, so cutting again changes nothing).
///
/// ```
/// use kupgrade_core::capture::tail_text;
/// assert_eq!(tail_text("short", 64), "short");
/// let long = "x".repeat(1000) + "the end";
/// let t = tail_text(&long, 64);
/// assert!(t.starts_with("[960 bytes cut] ") && t.ends_with("the end"), "{t}");
/// assert!(t.len() <= 64);
/// assert_eq!(tail_text(&t, 64), t);
/// ```
pub fn tail_text(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    // The marker's length depends on the count; a few digits of slack settle it.
    let mut keep = max.saturating_sub(format!("[{} bytes cut] ", text.len()).len());
    while !text.is_char_boundary(text.len() - keep) {
        keep -= 1;
    }
    let cut = text.len() - keep;
    format!("[{cut} bytes cut] {}", &text[cut..]).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_tail_of_text_is_bounded_and_cut_at_a_character() {
        let text = "é".repeat(5000);
        let t = tail_text(&text, 101);
        assert!(t.len() <= 101, "{}", t.len());
        assert!(t.starts_with("[") && t.ends_with('é'));
        assert_eq!(tail_text(&t, 101), t);
        assert_eq!(tail_text("", 0), "");
        assert!(tail_text("abc", 0).len() <= 16);
    }

    #[test]
    fn tail_keeps_last_bytes() {
        let mut t = TailBuffer::new(5);
        t.push(b"abc");
        t.push(b"defg");
        assert_eq!(t.finish(), (b"cdefg".to_vec(), true));

        let mut t = TailBuffer::new(5);
        t.push(b"abcde");
        assert_eq!(t.finish(), (b"abcde".to_vec(), false));

        let mut t = TailBuffer::new(5);
        t.push(b"ab");
        t.push(b"0123456789");
        assert_eq!(t.finish(), (b"56789".to_vec(), true));

        let mut t = TailBuffer::new(0);
        t.push(b"x");
        assert_eq!(t.finish(), (Vec::new(), true));
    }

    #[test]
    fn tail_stays_bounded_over_many_pushes() {
        let mut t = TailBuffer::new(100);
        for i in 0..100_000u32 {
            t.push(&i.to_le_bytes());
            assert!(t.buf.len() <= 8 * 1024 + 4);
        }
        let (bytes, truncated) = t.finish();
        assert!(truncated);
        assert_eq!(bytes.len(), 100);
        assert_eq!(&bytes[96..], &99_999u32.to_le_bytes());
    }

    fn collect() -> (LineSink, Arc<Mutex<Vec<String>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        (
            LineSink::new(move |_, l| g.lock().unwrap().push(l.to_string())),
            got,
        )
    }

    #[test]
    fn lines_across_chunks() {
        let (sink, got) = collect();
        let mut s = LineSplitter::new(Stream::Stdout);
        s.push(b"one\ntw", &sink);
        s.push(b"o\r\n\nthr", &sink);
        s.push(b"ee", &sink);
        s.finish(&sink);
        assert_eq!(*got.lock().unwrap(), ["one", "two", "", "three"]);
    }

    #[test]
    fn long_lines_come_in_pieces() {
        let (sink, got) = collect();
        let mut s = LineSplitter::new(Stream::Stderr);
        s.push(&vec![b'x'; MAX_LINE * 2 + 3], &sink);
        s.finish(&sink);
        let got = got.lock().unwrap();
        assert_eq!(
            got.iter().map(String::len).collect::<Vec<_>>(),
            [MAX_LINE, MAX_LINE, 3]
        );
    }
}
