//! What a task saw beside its outcome, gathered while it runs and journaled before its end
//! ([`Run::note`](kupgrade_core::run::Run::note)): a gate's own lines and its command's
//! output, a hook's output, a regression gate's workload snapshots.
//!
//! Bounded: each text keeps about its last 2 × [`OUTPUT_KEPT`] bytes while the task runs
//! (the record keeps the last [`OUTPUT_KEPT`]); only the latest snapshot is kept.
use std::sync::{Arc, Mutex};

use kupgrade_core::gate::WorkloadSnapshot;
use kupgrade_core::ports::{CommandOutput, Stream};
use kupgrade_core::run::{OUTPUT_KEPT, TaskNote};

/// A task's notes; cheap to clone (one shared collection).
#[derive(Clone, Debug, Default)]
pub(super) struct Notes(Arc<Mutex<Collected>>);

#[derive(Debug, Default)]
struct Collected {
    /// Lines the driver said about the task (a gate's progress), by stream.
    said: [String; 2],
    /// The output of the task's latest command, by stream.
    command: [String; 2],
    /// The latest workload snapshot.
    workloads: Option<WorkloadSnapshot>,
}

fn slot(stream: Stream) -> usize {
    match stream {
        Stream::Stderr => 1,
        _ => 0,
    }
}

/// Keeps the end of `text` once it is past twice the kept size.
fn bound(text: &mut String) {
    if text.len() > 2 * OUTPUT_KEPT {
        *text = kupgrade_core::capture::tail_text(text, OUTPUT_KEPT).into_owned();
    }
}

impl Notes {
    fn with<T>(&self, f: impl FnOnce(&mut Collected) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A line the driver said about the task.
    pub(super) fn said(&self, stream: Stream, line: &str) {
        self.with(|c| {
            let s = &mut c.said[slot(stream)];
            s.push_str(line);
            s.push('\n');
            bound(s);
        });
    }

    /// The output of the task's latest command (it replaces the one before).
    pub(super) fn command(&self, out: &CommandOutput) {
        let (o, e) = (out.stdout_text(), out.stderr_text());
        self.with(|c| {
            c.command = [o, e];
            c.command.iter_mut().for_each(bound);
        });
    }

    /// The latest snapshot of the workloads the task watches.
    pub(super) fn workloads(&self, snapshot: WorkloadSnapshot) {
        self.with(|c| c.workloads = Some(snapshot));
    }

    /// The notes to journal: the snapshot first, then the output.
    pub(super) fn take(&self) -> Vec<TaskNote> {
        self.with(|c| {
            let mut notes = Vec::new();
            if let Some(w) = c.workloads.take() {
                notes.push(TaskNote::Workloads(w));
            }
            let [so, se] = std::mem::take(&mut c.said);
            let [co, ce] = std::mem::take(&mut c.command);
            let (stdout, stderr) = (so + &co, se + &ce);
            if !(stdout.is_empty() && stderr.is_empty()) {
                notes.push(TaskNote::Output { stdout, stderr });
            }
            notes
        })
    }
}
