//! Commands that may outlive the process that started them: the node-side lock each command
//! of a run takes ([`NodeLocks`]), the handles the driver journals once a command runs, and
//! what a resumed run does about a command an earlier session left running
//! ([`SurvivorPolicy`]).
//!
//! Invariant: before [`Run::next`](kupgrade_core::run::Run::next) decides about a task an
//! earlier session left unsure, the command it was running when that session ended has been
//! found ended (or been stopped and found ended); otherwise the run halts and names it.
use std::time::Duration;

use kupgrade_core::ports::{CommandHandle, Liveness, NodeLock};
use kupgrade_core::run::{Run, Survivor, TaskId};
use tokio::sync::mpsc;

use super::{Clock, Driver, DriverError, JournalSink};

/// The node-side locks the driver asks runners to hold around each command of a task (see
/// [`NodeLock`]): one per task (its step and node) and plan fingerprint, so two copies of a
/// step never overlap on a node, whoever started them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLocks {
    /// How long a command waits for a lock another copy holds before the task fails with
    /// [`RunnerError::Locked`](kupgrade_core::ports::RunnerError::Locked).
    pub wait: Duration,
    /// Who holds the lock, in words (host, process, journal): the next copy's error names it.
    pub holder: String,
}

impl NodeLocks {
    /// Locks held by `holder`, waited for up to `wait`.
    pub fn new(holder: impl Into<String>, wait: Duration) -> Self {
        NodeLocks {
            wait,
            holder: holder.into(),
        }
    }

    /// The lock of `task` in the run with `fingerprint`.
    pub(super) fn for_task(&self, fingerprint: &str, task: &TaskId) -> NodeLock {
        NodeLock::for_step(
            fingerprint,
            task.step.as_str(),
            task.node.as_ref().map(|n| n.as_str()),
            self.wait,
            &self.holder,
        )
    }
}

/// What a resumed run does about a command an earlier session left running on its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SurvivorPolicy {
    /// Waits up to this long for it to end on its own, then halts naming it.
    Wait(Duration),
    /// Stops it (its process group, its pod), waits up to this long to see it gone, then
    /// halts naming it.
    Stop(Duration),
}

impl Default for SurvivorPolicy {
    /// Waits up to 40 minutes (longer than any single command of a plan runs).
    fn default() -> Self {
        SurvivorPolicy::Wait(Duration::from_secs(40 * 60))
    }
}

/// A command of a running task runs on its node: the task, its attempt, which command.
pub(super) type Started = (TaskId, u32, usize, CommandHandle);

/// Where the tasks' commands report their handles.
///
/// Its bound is the tasks in flight, not a capacity: each command reports at most one handle
/// (`run_command` drops any further report of the same command), a task runs its commands one
/// after the other and cannot start the next before the one before has ended, and the driver
/// takes the handles in the same `select!` that polls the tasks (`wait_for_news`), so the
/// queue holds about one handle per running task, and never more than the commands started in
/// the session. A capacity would not make it safer: the handle is reported from inside the
/// runner through a synchronous [`HandleSink`](kupgrade_core::ports::HandleSink), which cannot
/// wait for room, and a full channel would have to drop the handle; the journal needs every
/// handle so that a later session can find a command this one leaves running.
pub(super) type StartedTx = mpsc::UnboundedSender<Started>;

/// How often a survivor is looked for while the driver waits for it.
const POLL: Duration = Duration::from_secs(1);

impl Driver {
    /// Journals the handle of a command that runs; a handle of a task that has ended since
    /// (its outcome arrived first) is dropped.
    pub(super) fn command_started(
        &self,
        run: &mut Run,
        (task, attempt, command, handle): Started,
        clock: &Clock,
        journal: &mut dyn JournalSink,
    ) -> Result<(), DriverError> {
        if let Ok(out) = run.command_started(&task, attempt, command, handle, clock.now()) {
            self.take(out, journal)?;
        }
        Ok(())
    }

    /// Looks for the commands an earlier session may have left running, and waits for them
    /// or stops them ([`Driver::on_survivor`]); halts the run for one that does not go away
    /// or cannot be looked for.
    pub(super) async fn settle_survivors(
        &self,
        run: &mut Run,
        clock: &Clock,
        journal: &mut dyn JournalSink,
    ) -> Result<(), DriverError> {
        for s in run.survivors() {
            if let Some(report) = self.settle(&s).await {
                let out = run.halt(report, clock.now());
                self.take(out, journal)?;
                return Ok(());
            }
        }
        Ok(())
    }

    /// Settles one survivor: `None` once it is gone, else why the run must halt.
    async fn settle(&self, s: &Survivor) -> Option<kupgrade_core::run::StopReport> {
        let look = |what: &'static str| async move {
            match self.runner.probe(&s.node, &s.handle).await {
                Ok(l) => Ok(l),
                Err(e) => Err(s.report(
                    &format!("it cannot be looked for ({what}): {e}"),
                    "check the node, end the command there if it still runs, then resume",
                )),
            }
        };
        match look("before the run goes on").await {
            Ok(Liveness::Running) => {}
            Ok(Liveness::Ended) => return None,
            Ok(Liveness::Unknown(why)) => {
                // The node-side lock still keeps a second copy from overlapping it.
                tracing::warn!(task = %s.task, "cannot tell whether {} still runs: {why}", s.handle);
                return None;
            }
            Err(report) => return Some(report),
        }
        let (bound, verb) = match self.survivors {
            SurvivorPolicy::Wait(d) => {
                tracing::warn!(task = %s.task, "{} of an earlier session still runs on {}: waiting up to {}s for it to end", s.handle, s.node, d.as_secs());
                (d, "waited for")
            }
            SurvivorPolicy::Stop(d) => {
                tracing::warn!(task = %s.task, "{} of an earlier session still runs on {}: stopping it", s.handle, s.node);
                if let Err(e) = self.runner.stop(&s.node, &s.handle).await {
                    return Some(s.report(
                        &format!("stopping it failed: {e}"),
                        "end the command on the node by hand, then resume",
                    ));
                }
                (d, "stopped and waited for")
            }
        };
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            match look("while waiting for it").await {
                Ok(Liveness::Running) => {}
                Ok(_) => return None,
                Err(report) => return Some(report),
            }
            if tokio::time::Instant::now() >= deadline {
                return Some(s.report(
                    &format!("{verb} it {}s, and it still runs", bound.as_secs()),
                    match self.survivors {
                        SurvivorPolicy::Wait(_) => {
                            "let it end and resume, or resume with --on-survivor stop to stop it"
                        }
                        SurvivorPolicy::Stop(_) => {
                            "end the command on the node by hand, then resume"
                        }
                    },
                ));
            }
            tokio::time::sleep(POLL.min(deadline - tokio::time::Instant::now())).await;
        }
    }
}
