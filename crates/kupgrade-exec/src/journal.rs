//! [`Journal`]: an append-only file of JSON lines that survives crashes.
//!
//! A run writes one record per line as things happen (step started, step finished, …) and, on
//! resume, reads them back to know where it stopped. The journal is generic over the record
//! type, so the run state machine owns the record schema.
//!
//! Guarantees:
//! - [`Journal::append`] returns only once the record and its newline are on disk (`fsync`).
//!   A record is committed exactly when its newline is: a crash mid-write leaves a last line
//!   without one.
//! - [`Journal::open`] recovers from that: a last line without a newline is reported
//!   ([`TornTail`], and a `tracing` warning), ignored and cut off, so later appends start on a
//!   clean line. Any other bad line is a [`JournalError::Corrupt`] naming the file and line;
//!   nothing is repaired silently.
//! - An open journal holds an exclusive lock on its file ([`File::try_lock`]): a second runner
//!   on the same journal gets [`JournalError::Locked`] instead of interleaving records. The lock
//!   goes with the [`Journal`] (and with the process, if it dies).
//! - [`Journal::peek`] reads a journal without creating or repairing it (and refuses one a run
//!   holds), so a caller can decide whether to go on before [`Journal::open`] changes a thing;
//!   [`Journal::peek_to_resume`] also refuses a journal without a record (a resume of nothing
//!   would start the plan over, its backups included).
//!
//! ```
//! use kupgrade_exec::Journal;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! enum Record { Started(u32), Finished(u32) }
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("run.journal");
//! let (mut journal, recovered) = Journal::<Record>::open(&path)?;
//! assert!(recovered.records.is_empty());
//! journal.append(&Record::Started(1))?;
//! journal.append(&Record::Finished(1))?;
//! drop(journal);
//!
//! let (journal, recovered) = Journal::<Record>::open(&path)?;
//! assert_eq!(recovered.records, [Record::Started(1), Record::Finished(1)]);
//! assert_eq!(recovered.torn, None);
//! assert_eq!(journal.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// An open, locked journal of records of type `R`.
#[derive(Debug)]
pub struct Journal<R> {
    path: PathBuf,
    file: File,
    /// Bytes of complete records.
    bytes: u64,
    records: usize,
    _records: PhantomData<fn(R) -> R>,
}

/// What [`Journal::open`] and [`Journal::read`] found in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered<R> {
    /// Every complete record, in order.
    pub records: Vec<R>,
    /// The incomplete last line, if a crash left one.
    pub torn: Option<TornTail>,
}

/// A last line without its newline: the trace of a crash in the middle of an append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Its line number (1-based).
    pub line: usize,
    /// Where it starts in the file.
    pub offset: u64,
    /// How many bytes it has.
    pub bytes: u64,
}

impl fmt::Display for TornTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} (at byte {}) is incomplete: {} bytes with no newline, left by a crash while \
             it was written",
            self.line, self.offset, self.bytes
        )
    }
}

/// Why a journal could not be opened, read or appended to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// Another open [`Journal`] (in this or another process) holds the file.
    #[error(
        "journal {} is in use by another kupgrade run (its file is locked); wait for that run to \
         finish or stop it before starting another on the same journal",
        path.display()
    )]
    Locked {
        /// The journal file.
        path: PathBuf,
    },
    /// A complete line is not a valid record.
    #[error("journal {}:{line}: not a valid record: {message}", path.display())]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A resume was asked of a journal that records no run: missing, empty, or holding only a
    /// line torn by a crash. Starting the plan over from its first step would repeat its
    /// backups and snapshots over the ones it already made.
    #[error(
        "cannot resume from journal {}: {found}, so it records no run to go on with; check the \
         cluster first (a run may have changed it and lost its journal), then start a new run \
         without --resume (plan again from the live cluster if it moved)",
        path.display()
    )]
    NothingToResume {
        /// The journal file.
        path: PathBuf,
        /// What was found instead of records ("there is no such file", …).
        found: String,
    },
    /// A record could not be encoded.
    #[error("cannot encode a record for journal {}: {source}", path.display())]
    Encode {
        /// The journal file.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// The file system failed.
    #[error("cannot {action} journal {}: {source}", path.display())]
    Io {
        /// What was being done ("open", "append to", …).
        action: &'static str,
        /// The journal file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl<R: Serialize + DeserializeOwned> Journal<R> {
    /// Opens the journal at `path` for appending, creating it if needed, and reads back its
    /// records. Takes the lock first; cuts off a torn last line (reported in
    /// [`Recovered::torn`]).
    pub fn open(path: impl AsRef<Path>) -> Result<(Journal<R>, Recovered<R>), JournalError> {
        let path = path.as_ref().to_path_buf();
        let io_err = |action| {
            let path = path.clone();
            move |source| JournalError::Io {
                action,
                path,
                source,
            }
        };
        let (mut file, created) = match OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => (f, true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => (
                OpenOptions::new()
                    .read(true)
                    .append(true)
                    .open(&path)
                    .map_err(io_err("open"))?,
                false,
            ),
            Err(e) => return Err(io_err("create")(e)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(JournalError::Locked { path }),
            Err(TryLockError::Error(e)) => return Err(io_err("lock")(e)),
        }
        if created {
            // Make the new file's directory entry durable too.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io_err("create"))?;
            }
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err("read"))?;
        let (recovered, valid) = parse(&path, &bytes)?;
        if let Some(torn) = &recovered.torn {
            tracing::warn!(journal = %path.display(), "{torn}; ignoring it");
            file.set_len(valid)
                .and_then(|()| file.sync_all())
                .map_err(io_err("cut the torn last line of"))?;
        }
        let journal = Journal {
            path,
            file,
            bytes: valid,
            records: recovered.records.len(),
            _records: PhantomData,
        };
        Ok((journal, recovered))
    }

    /// Looks at the journal at `path` without creating, changing or keeping it: what a caller
    /// checks before it decides to [`open`](Journal::open) it (which cuts off a torn last
    /// line). `Ok(None)` when there is no such file; [`JournalError::Locked`] when a run holds
    /// it; a torn last line is reported in [`Recovered::torn`] and left in place.
    pub fn peek(path: impl AsRef<Path>) -> Result<Option<Recovered<R>>, JournalError> {
        let path = path.as_ref();
        let io_err = |action| {
            move |source| JournalError::Io {
                action,
                path: path.to_path_buf(),
                source,
            }
        };
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open")(e)),
        };
        match file.try_lock_shared() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(JournalError::Locked {
                    path: path.to_path_buf(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_err("lock")(e)),
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err("read"))?;
        Ok(Some(parse(path, &bytes)?.0))
    }

    /// [`peek`](Journal::peek) for a resume: the journal must hold at least one record. A
    /// missing file, an empty one or one holding only a torn line is
    /// [`JournalError::NothingToResume`], naming the file and what it holds.
    pub fn peek_to_resume(path: impl AsRef<Path>) -> Result<Recovered<R>, JournalError> {
        let path = path.as_ref();
        let nothing = |found: String| JournalError::NothingToResume {
            path: path.to_path_buf(),
            found,
        };
        let Some(recovered) = Self::peek(path)? else {
            return Err(nothing("there is no such file".into()));
        };
        if !recovered.records.is_empty() {
            return Ok(recovered);
        }
        Err(nothing(match &recovered.torn {
            Some(torn) => format!("the file holds only an incomplete line ({torn})"),
            None => "the file is empty".into(),
        }))
    }

    /// Reads the journal at `path` without locking or changing it (to show a run's progress
    /// while it runs).
    pub fn read(path: impl AsRef<Path>) -> Result<Recovered<R>, JournalError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| JournalError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        Ok(parse(path, &bytes)?.0)
    }

    /// Appends `record` and waits until it is on disk.
    pub fn append(&mut self, record: &R) -> Result<(), JournalError> {
        self.append_all([record])
    }

    /// Appends `records` with one write and one `fsync`, and waits until they are on disk
    /// (records that happen together, such as the starts of a batch of steps). A crash during
    /// the call may keep any prefix of them; each record is whole or absent.
    pub fn append_all<'r>(
        &mut self,
        records: impl IntoIterator<Item = &'r R>,
    ) -> Result<(), JournalError>
    where
        R: 'r,
    {
        let mut lines = Vec::new();
        let mut count = 0;
        for record in records {
            serde_json::to_writer(&mut lines, record).map_err(|source| JournalError::Encode {
                path: self.path.clone(),
                source,
            })?;
            // Compact JSON never contains a raw newline, so each record is one line.
            lines.push(b'\n');
            count += 1;
        }
        if count == 0 {
            return Ok(());
        }
        let written = self
            .file
            .write_all(&lines)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            // Do not leave half a record for the next append to continue: cut back to the last
            // complete one (if that fails too, the next open reports the torn line).
            let _ = self.file.set_len(self.bytes);
            return Err(JournalError::Io {
                action: "append to",
                path: self.path.clone(),
                source,
            });
        }
        self.bytes += lines.len() as u64;
        self.records += count;
        Ok(())
    }
}

impl<R> Journal<R> {
    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many records the file holds.
    pub fn len(&self) -> usize {
        self.records
    }

    /// True when the file holds no record.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }
}

/// Parses the file's bytes; returns the records and the length of the complete lines.
fn parse<R: DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
) -> Result<(Recovered<R>, u64), JournalError> {
    let mut records = Vec::new();
    let mut offset = 0usize;
    let mut line_no = 0usize;
    while offset < bytes.len() {
        line_no += 1;
        let rest = &bytes[offset..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            let torn = TornTail {
                line: line_no,
                offset: offset as u64,
                bytes: rest.len() as u64,
            };
            return Ok((
                Recovered {
                    records,
                    torn: Some(torn),
                },
                offset as u64,
            ));
        };
        let corrupt = |message: String| JournalError::Corrupt {
            path: path.to_path_buf(),
            line: line_no,
            message,
        };
        let text = &rest[..end];
        if text.iter().all(u8::is_ascii_whitespace) {
            return Err(corrupt("the line is empty".to_string()));
        }
        let record = serde_json::from_slice(text).map_err(|e| {
            let column = e.column();
            let full = e.to_string();
            let message = full
                .strip_suffix(&format!(" at line {} column {column}", e.line()))
                .unwrap_or(&full);
            corrupt(format!("column {column}: {message}"))
        })?;
        records.push(record);
        offset += end + 1;
    }
    Ok((
        Recovered {
            records,
            torn: None,
        },
        offset as u64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "kind", rename_all = "kebab-case")]
    enum Rec {
        Started { step: u32 },
        Output { text: String },
    }

    fn started(step: u32) -> Rec {
        Rec::Started { step }
    }

    fn journal_path() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.journal");
        (dir, path)
    }

    #[test]
    fn append_then_reopen_and_append() {
        let (_dir, path) = journal_path();
        let (mut j, r) = Journal::<Rec>::open(&path).unwrap();
        assert_eq!(
            r,
            Recovered {
                records: vec![],
                torn: None
            }
        );
        assert!(j.is_empty());
        j.append(&started(1)).unwrap();
        j.append(&Rec::Output {
            text: "two\nlines ✓".into(),
        })
        .unwrap();
        assert_eq!(j.len(), 2);
        drop(j);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"kind\":\"started\",\"step\":1}\n{\"kind\":\"output\",\"text\":\"two\\nlines ✓\"}\n"
        );

        let (mut j, r) = Journal::<Rec>::open(&path).unwrap();
        assert_eq!(r.records.len(), 2);
        assert_eq!(j.len(), 2);
        j.append(&started(3)).unwrap();
        drop(j);
        let r = Journal::<Rec>::read(&path).unwrap();
        assert_eq!(
            r.records,
            [
                started(1),
                Rec::Output {
                    text: "two\nlines ✓".into()
                },
                started(3)
            ]
        );
    }

    #[test]
    fn torn_last_line_is_reported_cut_and_appended_after() {
        for tail in [
            &b"{\"kind\":\"sta"[..],
            b"{\"kind\":\"started\",\"step\":2}", // complete JSON, but no newline: not committed
            b"\0\0\0\0",
        ] {
            let (_dir, path) = journal_path();
            let mut bytes = b"{\"kind\":\"started\",\"step\":1}\n".to_vec();
            bytes.extend_from_slice(tail);
            std::fs::write(&path, &bytes).unwrap();

            // read() reports but does not repair.
            let r = Journal::<Rec>::read(&path).unwrap();
            assert_eq!(r.records, [started(1)]);
            assert_eq!(
                r.torn,
                Some(TornTail {
                    line: 2,
                    offset: 28,
                    bytes: tail.len() as u64
                })
            );
            assert_eq!(std::fs::read(&path).unwrap(), bytes);

            let (mut j, r) = Journal::<Rec>::open(&path).unwrap();
            assert_eq!(r.records, [started(1)]);
            assert_eq!(r.torn.as_ref().map(|t| t.line), Some(2));
            j.append(&started(7)).unwrap();
            drop(j);
            let (_, r) = Journal::<Rec>::open(&path).unwrap();
            assert_eq!(r.records, [started(1), started(7)]);
            assert_eq!(r.torn, None);
        }
    }

    #[test]
    fn peek_changes_nothing_and_sees_the_lock() {
        let (_dir, path) = journal_path();
        assert_eq!(Journal::<Rec>::peek(&path).unwrap(), None);
        assert!(!path.exists(), "peek created the file");

        let bytes = b"{\"kind\":\"started\",\"step\":1}\n{\"kind\":\"sta".to_vec();
        std::fs::write(&path, &bytes).unwrap();
        let r = Journal::<Rec>::peek(&path).unwrap().unwrap();
        assert_eq!(r.records, [started(1)]);
        assert_eq!(r.torn.as_ref().map(|t| t.line), Some(2));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "peek cut the torn tail"
        );

        let (_open, _) = Journal::<Rec>::open(&path).unwrap();
        let e = Journal::<Rec>::peek(&path).unwrap_err();
        assert!(
            matches!(&e, JournalError::Locked { path: p } if p == &path),
            "{e}"
        );

        let (_dir, path) = journal_path();
        std::fs::write(&path, "{\"kind\":\"nope\"}\n").unwrap();
        let e = Journal::<Rec>::peek(&path).unwrap_err();
        assert!(matches!(&e, JournalError::Corrupt { line: 1, .. }), "{e}");
    }

    #[test]
    fn append_all_writes_every_record_in_order() {
        let (_dir, path) = journal_path();
        let (mut j, _) = Journal::<Rec>::open(&path).unwrap();
        j.append_all(&[started(1), started(2), started(3)]).unwrap();
        j.append_all(&[]).unwrap();
        j.append(&started(4)).unwrap();
        assert_eq!(j.len(), 4);
        drop(j);
        let r = Journal::<Rec>::read(&path).unwrap();
        assert_eq!(r.records, [started(1), started(2), started(3), started(4)]);
    }

    #[test]
    fn a_resume_needs_a_record() {
        let (_dir, path) = journal_path();
        let message = |found: &str| {
            format!(
                "cannot resume from journal {}: {found}, so it records no run to go on with; \
                 check the cluster first (a run may have changed it and lost its journal), then \
                 start a new run without --resume (plan again from the live cluster if it moved)",
                path.display()
            )
        };
        let refused = |path: &Path| Journal::<Rec>::peek_to_resume(path).unwrap_err();
        assert_eq!(refused(&path).to_string(), message("there is no such file"));
        assert!(!path.exists(), "peeking created the file");
        std::fs::write(&path, b"").unwrap();
        assert_eq!(refused(&path).to_string(), message("the file is empty"));
        std::fs::write(&path, b"{\"Started\":").unwrap();
        assert!(matches!(
            refused(&path),
            JournalError::NothingToResume { found, .. }
                if found.starts_with("the file holds only an incomplete line (line 1 (at byte 0)")
        ));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"{\"Started\":",
            "the torn line is left in place"
        );
        let (mut journal, _) = Journal::<Rec>::open(&path).unwrap();
        journal.append(&started(1)).unwrap();
        drop(journal);
        let recovered = Journal::<Rec>::peek_to_resume(&path).unwrap();
        assert_eq!(recovered.records, [started(1)]);
    }

    #[test]
    fn torn_tail_message() {
        let t = TornTail {
            line: 4,
            offset: 120,
            bytes: 9,
        };
        assert_eq!(
            t.to_string(),
            "line 4 (at byte 120) is incomplete: 9 bytes with no newline, left by a crash while \
             it was written"
        );
    }

    #[test]
    fn corrupt_lines_are_errors_naming_file_and_line() {
        let (_dir, path) = journal_path();
        std::fs::write(
            &path,
            "{\"kind\":\"started\",\"step\":1}\n{\"kind\":\"started\",\"step\":x}\n{\"kind\":\"started\",\"step\":3}\n",
        )
        .unwrap();
        let e = Journal::<Rec>::open(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "journal {}:2: not a valid record: column 26: expected value",
                path.display()
            )
        );
        // The last complete line is not torn: it is corrupt.
        std::fs::write(
            &path,
            "{\"kind\":\"started\",\"step\":1}\n{\"kind\":\"nope\"}\n",
        )
        .unwrap();
        let e = Journal::<Rec>::open(&path).unwrap_err();
        let JournalError::Corrupt { line, message, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(*line, 2);
        assert!(message.contains("unknown variant `nope`"), "{message}");
        // Blank lines are not records.
        std::fs::write(&path, "\n").unwrap();
        let e = Journal::<Rec>::open(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "journal {}:1: not a valid record: the line is empty",
                path.display()
            )
        );
        // Nothing was changed by the failed opens.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "\n");
    }

    #[test]
    fn second_open_is_refused_while_the_first_is_open() {
        let (_dir, path) = journal_path();
        let (mut first, _) = Journal::<Rec>::open(&path).unwrap();
        let e = Journal::<Rec>::open(&path).unwrap_err();
        assert!(matches!(&e, JournalError::Locked { path: p } if p == &path));
        assert_eq!(
            e.to_string(),
            format!(
                "journal {} is in use by another kupgrade run (its file is locked); wait for that \
                 run to finish or stop it before starting another on the same journal",
                path.display()
            )
        );
        first.append(&started(1)).unwrap();
        drop(first);
        let (_, r) = Journal::<Rec>::open(&path).unwrap();
        assert_eq!(r.records, [started(1)]);
    }

    #[test]
    fn a_missing_directory_is_an_io_error_naming_the_file() {
        let (_dir, path) = journal_path();
        let path = path.join("missing").join("run.journal");
        let e = Journal::<Rec>::open(&path).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("cannot create journal {}: ", path.display())),
            "{e}"
        );
    }
}
