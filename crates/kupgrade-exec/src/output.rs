//! Bounded output capture and line splitting, shared by the runners.
//!
//! A command's stdout and stderr are each kept in a [`TailBuffer`] (the last `max_output`
//! bytes) and cut into lines by a [`LineSplitter`] for the caller's
//! [`LineSink`](kupgrade_core::ports::LineSink). Neither grows with the command's output: a
//! runner can stream gigabytes and hold a bounded amount of memory.
use kupgrade_core::ports::{LineSink, Stream};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The longest line handed to a sink in one piece; longer lines arrive in pieces of this size.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// Keeps the last `max` bytes written to it.
#[derive(Debug)]
pub(crate) struct TailBuffer {
    max: usize,
    buf: Vec<u8>,
    truncated: bool,
}

impl TailBuffer {
    pub(crate) fn new(max: usize) -> Self {
        TailBuffer {
            max,
            buf: Vec::new(),
            truncated: false,
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
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
    pub(crate) fn finish(mut self) -> (Vec<u8>, bool) {
        self.compact();
        (self.buf, self.truncated)
    }
}

/// Cuts a byte stream into lines for a sink.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    stream: Stream,
    pending: Vec<u8>,
}

impl LineSplitter {
    pub(crate) fn new(stream: Stream) -> Self {
        LineSplitter {
            stream,
            pending: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, mut bytes: &[u8], sink: &LineSink) {
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
    pub(crate) fn finish(mut self, sink: &LineSink) {
        if !self.pending.is_empty() {
            self.emit(sink);
        }
    }
}

/// Both the capture and the line splitting of one stream.
#[derive(Debug)]
pub(crate) struct StreamCapture {
    tail: TailBuffer,
    lines: Option<LineSplitter>,
}

impl StreamCapture {
    pub(crate) fn new(stream: Stream, max: usize, sink: &LineSink) -> Self {
        StreamCapture {
            tail: TailBuffer::new(max),
            lines: sink.is_active().then(|| LineSplitter::new(stream)),
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8], sink: &LineSink) {
        self.tail.push(bytes);
        if let Some(lines) = &mut self.lines {
            lines.push(bytes, sink);
        }
    }

    pub(crate) fn finish(self, sink: &LineSink) -> (Vec<u8>, bool) {
        if let Some(lines) = self.lines {
            lines.finish(sink);
        }
        self.tail.finish()
    }
}

/// Reads `reader` to its end into `capture`. Read errors end the stream (the process is gone or
/// closed it); they are returned so the caller can log them.
pub(crate) async fn pump<R: AsyncRead + Unpin>(
    reader: &mut R,
    capture: &mut StreamCapture,
    sink: &LineSink,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        capture.push(&buf[..n], sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

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
