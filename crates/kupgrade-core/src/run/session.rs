//! The session: one process's part of a run, from its first call of `Run::next` to its end.
//!
//! What it guarantees:
//! - the number counts sessions over the whole journal: 0 before the run began, 1 for the
//!   session that wrote `run-started`, one more for each `session-started` after it;
//! - once the run decides to stop (a halt or a cancellation), the first reason is kept and no
//!   task starts any more; the session ends with that reason once nothing is in flight and
//!   no task's postconditions are being checked, unless it was aborted (then the checks are
//!   left to a resume);
//! - once ended, the session never changes again (`Run::finished` stays what it was).
use super::report::{Finished, StopReport};

/// Where the session stands.
#[derive(Debug, Default)]
pub(super) struct Session {
    /// The session's number (the run's first is 1; 0 before it began).
    pub number: u32,
    /// True once this session's first call of `Run::next` opened it (and journaled it).
    pub open: bool,
    /// How the session will end once nothing is in flight: set when the run stops starting
    /// tasks.
    stopping: Option<Finished>,
    /// How the session ended.
    finished: Option<Finished>,
    /// True when the session was aborted: it ends without waiting for the checks of
    /// postconditions under way.
    aborted: bool,
    /// Readiness findings accepted so far (keys), by earlier sessions and this one.
    pub accepted: Vec<String>,
    /// Findings this session accepts, with their messages, journaled when it opens.
    pub accepting: Vec<(String, String)>,
}

impl Session {
    /// Why the run stops starting tasks, if it does.
    pub fn stopping(&self) -> Option<&Finished> {
        self.stopping.as_ref()
    }

    /// How the session ended, once it has.
    pub fn finished(&self) -> Option<&Finished> {
        self.finished.as_ref()
    }

    /// Stops starting tasks because of `report`, unless the run already stops.
    pub fn halt(&mut self, report: StopReport) {
        self.stop(Finished::Halted(report));
    }

    /// Stops starting tasks (`why`), unless the run already stops.
    pub fn stop(&mut self, why: Finished) {
        if self.stopping.is_none() {
            self.stopping = Some(why);
        }
    }

    /// Stops at once (a cancellation that does not wait for the checks under way).
    pub fn abort(&mut self) {
        self.stop(Finished::Cancelled);
        self.aborted = true;
    }

    /// True when the session was aborted.
    pub fn aborted(&self) -> bool {
        self.aborted
    }

    /// Ends the session.
    pub fn end(&mut self, outcome: Finished) {
        self.finished = Some(outcome);
    }
}
