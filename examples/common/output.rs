//! Writing to stdout without panicking when the reader goes away (`plan | head -1`).
use std::fmt;
use std::io::{self, Write};

/// Stdout was closed by its reader: the reader has what it wanted, so the example ends
/// quietly ([`quiet_when_closed`]).
#[derive(Debug)]
pub(crate) struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Writes `text` to stdout; [`StdoutClosed`] when the reader went away.
pub(crate) fn print(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        other => Ok(other?),
    }
}

/// `result`, with [`StdoutClosed`] turned into a quiet success.
pub(crate) fn quiet_when_closed(result: anyhow::Result<()>) -> anyhow::Result<()> {
    match result {
        Err(e) if e.is::<StdoutClosed>() => Ok(()),
        other => other,
    }
}

/// `rows` as a table: each column as wide as its widest cell, two spaces apart, one row a
/// line (the header is the first row).
#[allow(dead_code)] // not every example prints a table
pub(crate) fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
