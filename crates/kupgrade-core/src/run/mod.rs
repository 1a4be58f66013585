//! The run: carrying out an [`UpgradePlan`] as a pure state machine.
//!
//! A [`Run`] does no I/O and never reads the clock. The driver (kupgrade-exec) moves data
//! between it and the ports:
//!
//! 1. [`Run::next`] takes a fresh [`ClusterState`] and the time, checks the cluster against
//!    what the plan expects (the skew policy, nodes present and Ready, each step's
//!    precondition) and returns the [`Task`]s that may start now: the nodes of a step run at
//!    the same time, up to [`RunOptions::max_parallel`]; a step starts once the steps it
//!    depends on are done.
//! 2. The driver appends the returned journal [`Record`]s (durably) before it starts the
//!    tasks, and hands the [`Event`]s to whoever watches.
//! 3. As each task ends, [`Run::record`] takes its [`Outcome`] and returns more records and
//!    events. Tasks that are safe to repeat are retried with backoff ([`RetryPolicy`]).
//!
//! When the cluster drifted (someone upgraded a node by hand, a node went NotReady, the policy
//! no longer holds), a step failed for good, or a step that is not safe to repeat may or may
//! not have happened, the run stops starting tasks, lets the running ones end, and finishes
//! with [`Finished::Halted`] and a [`StopReport`]: what differs and what to do.
//!
//! # Layout
//!
//! [`Run`] is a few sub-states, each in its own file with what it guarantees written at its top;
//! this file only moves data between them:
//!
//! - `schedule.rs`: the tasks' states and what is derived from them (the steps each waits on,
//!   the ready steps, the startable count, retries by time, the tasks in flight by id and their
//!   busy nodes, the in-flight limit). Invariant: the derived figures agree with the states
//!   after every call (`startable` equals the number of Pending or Unsure tasks of ready steps,
//!   and so on), asserted in debug builds; every change of a task's state is journaled.
//! - `expect.rs`: what the run expects of the live cluster: each node's presence (with a
//!   generation) and settling, the node layout of the last state read, the baseline with its
//!   tolerated violations and NotReady nodes. Invariant: only a task's start and end change a
//!   node's expectations, as its action's change says; the baseline never changes once set.
//! - `checks.rs`: reading the cluster before a task starts (global checks, preconditions,
//!   unsure tasks, check and operator steps, the work a task asks for) and the stop reports.
//!   Invariant: checks only read; a task is found done only by evidence.
//! - `pass.rs`: one pass of [`Run::next`] over the ready steps (postconditions due, then the
//!   due tasks in plan order). Invariant: the global checks run once a pass, before the first
//!   task that would start; a task starts only once its preconditions hold.
//! - `verify.rs`: a task whose work reported success is done only once the cluster shows its
//!   step's postconditions, checked on the next reads of the cluster within the step's
//!   settle window (`schedule/verifying.rs` keeps the schedule's figures of those tasks).
//!   Invariant: nothing is assumed; a resume checks a verifying task again.
//! - `session.rs`: this session's number, whether it stops and how it ended. Invariant: the
//!   first reason to stop wins, and an ended session never changes.
//! - `replay.rs`: [`Run::resume`]. Invariant: a journal is replayed only into the plan it was
//!   written for, and a task in flight when it ended is checked before it runs again.
//! - `survivors.rs`: the handles of commands in flight ([`Run::command_started`]), the ones an
//!   earlier session may have left running ([`Run::survivors`]), and [`Run::halt`]. Invariant:
//!   only the current attempt of a running task gets a handle.
//! - `notes.rs`: what a task saw beside its outcome ([`Run::note`]: a hook's or gate's
//!   output, a regression gate's workload snapshots), journaled bounded; the baseline steps'
//!   snapshots stay for a resume. `summary.rs`: [`RunSummary`], a journal read back step by
//!   step for a report (pure, from records only).
//! - `task.rs` (task ids, [`Task`], [`Work`], task states), `facts.rs` (a [`Fact`] checked on
//!   a cluster state), `record.rs` (journal records), `report.rs` (how a session ends, stop
//!   reports), `event.rs` (events), `options.rs`, `error.rs`, `output.rs`, `fingerprint.rs`.
//!
//! While [`Run::next`] starts tasks, a view of the cluster reads the layout and the tolerated
//! violations (fields of the expectations) as the schedule, the nodes' expectations and the
//! session change: distinct fields, borrowed apart.
//!
//! [`Fact`]: crate::plan::Fact
//!
//! # Resuming
//!
//! [`Run::resume`] replays a journal. Completed tasks are skipped. A task that was in flight
//! when the previous session died (or had failed) is checked against its postcondition first:
//! if the cluster shows its effect it is marked done without running again; otherwise it runs
//! again if it is safe to repeat, and if it is not the run halts and asks the operator, who
//! answers with [`Run::resolve`]. A step that is not safe to repeat is never run twice by the
//! run itself.
//!
//! Only the postconditions a step adds to its preconditions count as evidence: a drain's
//! postcondition (the node is cordoned) already held before it, so an interrupted drain is
//! drained again rather than assumed done.
//!
//! ```
//! use std::sync::Arc;
//! use jiff::{civil::date, Timestamp};
//! use kupgrade_core::plan::{PlanRequest, Simulation};
//! use kupgrade_core::run::{Outcome, Run, RunOptions, TaskResult};
//! use kupgrade_core::skew::UpstreamPolicy;
//!
//! let text = r#"
//! addons: { kube-proxy: v1.29.10, coredns: v1.11.1 }
//! nodes:
//!   - name: cp-1
//!     roles: [control-plane]
//!     versions: { kubelet: v1.29.10, kubeadm: v1.29.10, kube-apiserver: v1.29.10,
//!                 kube-controller-manager: v1.29.10, kube-scheduler: v1.29.10, etcd: 3.5.10-0 }
//! "#;
//! let cluster = kupgrade_core::inventory::parse(text, "cluster.yaml")?;
//! let plan = Arc::new(PlanRequest::new("1.30".parse()?, date(2025, 3, 1)).plan(&cluster)?);
//! let mut run = Run::new(plan.clone(), Arc::new(UpstreamPolicy::new()), RunOptions::default())?;
//!
//! // A perfect cluster: each task does exactly what the plan's model says.
//! let mut model = Simulation::new(cluster);
//! let now = Timestamp::UNIX_EPOCH;
//! let mut journal = Vec::new();
//! while !run.is_finished() {
//!     let out = run.next(model.state(), now);
//!     journal.extend(out.records);
//!     for task in out.tasks {
//!         model.apply(&plan.steps[task.step_index].on_node(task.id.node.as_ref()))?;
//!         let out = run.record(Outcome { task: task.id, attempt: task.attempt, result: TaskResult::Succeeded }, now)?;
//!         journal.extend(out.records);
//!     }
//! }
//! assert!(run.finished().unwrap().is_completed());
//! assert_eq!(model.state().nodes[0].versions.kubelet.as_ref().unwrap().minor().to_string(), "1.30");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;

use crate::ClusterState;
use crate::plan::{StepId, UpgradePlan};
use crate::ports::Taking;
use crate::skew::SkewPolicy;

mod checks;
mod error;
mod event;
mod expect;
mod facts;
mod fingerprint;
mod notes;
mod options;
mod output;
mod pass;
mod record;
mod replay;
mod report;
mod schedule;
mod session;
mod summary;
mod survivors;
mod task;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_transient;
mod transient;
pub(crate) mod verify;

pub use error::{RecordError, ResolveError, RunError};
pub use event::{Counts, Event, StepOutcome};
pub use fingerprint::fingerprint;
pub use notes::TaskNote;
pub use options::{RetryPolicy, RunOptions};
pub use output::Output;
pub use record::{
    Baseline, FORMAT, Failure, FailureKind, OUTPUT_KEPT, Outcome, Record, RecordKind, Resolution,
    SNAPSHOT_KEPT, TaskEnd, TaskResult, ViolationKey,
};
pub use report::{Difference, Finished, StopReason, StopReport};
pub use summary::{LeaseNote, RunState, RunSummary, TaskRun};
pub use survivors::Survivor;
pub use task::{Task, TaskId, Work};

use expect::Expectations;
use schedule::Schedule;
use session::Session;
use task::TaskState;
use transient::Windows;

/// The execution state machine of one plan. See the [module documentation](self).
pub struct Run {
    /// The plan carried out.
    plan: Arc<UpgradePlan>,
    /// The policy every state of the cluster is checked against.
    policy: Arc<dyn SkewPolicy>,
    /// How the run behaves.
    options: RunOptions,
    /// The plan's fingerprint, as the journal records it.
    fingerprint: String,
    /// The tasks' states and what starts next (`schedule.rs`).
    schedule: Schedule,
    /// What the run expects of the live cluster (`expect.rs`).
    expect: Expectations,
    /// This session: its number, whether it stops, how it ended (`session.rs`).
    session: Session,
    /// The run's id, once its start is journaled or replayed, or fixed by [`Run::begin`]
    /// ([`Run::run_id`]).
    run_id: Option<String>,
    /// The plan's transient windows and where the run is in each (`transient.rs`).
    windows: Windows,
    /// When [`Run::begin`] fixed a new run's start: its first session journals that time.
    /// `Some` only while `run_id` is `Some` and no session has opened.
    begun: Option<Timestamp>,
    /// How this session took the run lease ([`Run::lease_taken`]), journaled as the session
    /// opens, then `None`.
    lease: Option<RecordKind>,
    /// The workload snapshots the baseline steps journaled, by step (`notes.rs`).
    workloads: std::collections::HashMap<StepId, crate::gate::WorkloadSnapshot>,
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (done, total) = self.schedule.progress();
        f.debug_struct("Run")
            .field("plan", &self.fingerprint)
            .field("session", &self.session.number)
            .field("tasks_done", &done)
            .field("tasks_total", &total)
            .field("in_flight", &self.schedule.in_flight())
            .field("finished", &self.session.finished())
            .finish_non_exhaustive()
    }
}

impl Run {
    /// A new run of `plan`, checked against `policy` before every step.
    pub fn new(
        plan: Arc<UpgradePlan>,
        policy: Arc<dyn SkewPolicy>,
        options: RunOptions,
    ) -> Result<Run, RunError> {
        let limit = options.max_parallel.unwrap_or(plan.max_parallel).max(1);
        let schedule = Schedule::new(&plan, limit)?;
        Ok(Run {
            fingerprint: fingerprint(&plan),
            expect: Expectations::new(&plan),
            windows: Windows::new(&plan, &schedule),
            schedule,
            plan,
            policy,
            options,
            session: Session::default(),
            run_id: None,
            begun: None,
            lease: None,
            workloads: Default::default(),
        })
    }

    // ---- accessors ------------------------------------------------------------------------

    /// Readiness findings (`check:subject` keys) this session accepts, each with what it
    /// said: journaled (`findings-accepted`) when the session opens, and accepted for later
    /// sessions too.
    pub fn accept_findings(&mut self, findings: Vec<(String, String)>) {
        self.session.accepting.extend(findings);
    }

    /// The readiness findings accepted by this session and the ones before it.
    pub fn accepted_findings(&self) -> impl Iterator<Item = &str> + '_ {
        self.session
            .accepted
            .iter()
            .chain(self.session.accepting.iter().map(|(k, _)| k))
            .map(String::as_str)
    }

    /// The plan.
    pub fn plan(&self) -> &Arc<UpgradePlan> {
        &self.plan
    }

    /// The plan's fingerprint, as the journal records it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The run's id, the same in every session of one journal and different for every new
    /// journal: when the run started (UTC, to the millisecond; one run at a time holds the
    /// cluster's lease) and the plan's fingerprint, as in `20240601T000000.000Z-0123abcd`. Backups and snapshots are written under it (see
    /// [`RUN_TOKEN`](crate::ports::RUN_TOKEN)). `None` until the journal's first record is
    /// written or replayed.
    pub fn run_id(&self) -> Option<&str> {
        self.run_id.as_deref()
    }

    /// Fixes a new run's start at `now` (before its first session opens, which journals that
    /// time) and returns the run's id; a resumed or started run keeps its own. A caller that
    /// must name the run before it starts (the run lease's holder) calls this first.
    pub fn begin(&mut self, now: Timestamp) -> &str {
        if self.run_id.is_none() {
            self.begun = Some(now);
            self.started_at(now);
        }
        self.run_id.as_deref().unwrap_or_default()
    }

    /// Says how this session took the cluster's run lease (at `place`, as `holder`): the
    /// session journals it as it opens (a `lease-taken` record after its start record).
    pub fn lease_taken(&mut self, place: String, holder: String, taking: Taking) {
        self.lease = Some(RecordKind::LeaseTaken {
            place,
            holder,
            taking,
        });
    }

    /// Sets the run's id from the time it started.
    fn started_at(&mut self, at: Timestamp) {
        let hash = self.fingerprint.rsplit(':').next().unwrap_or_default();
        let short: String = hash.chars().take(8).collect();
        self.run_id = Some(format!("{}-{short}", at.strftime("%Y%m%dT%H%M%S%.3fZ")));
    }

    /// How the session ended, once it has.
    pub fn finished(&self) -> Option<&Finished> {
        self.session.finished()
    }

    /// True once the session has ended (no task in flight, nothing more to start).
    pub fn is_finished(&self) -> bool {
        self.session.finished().is_some()
    }

    /// Tasks in flight.
    pub fn in_flight(&self) -> usize {
        self.schedule.in_flight()
    }

    /// Tasks done and tasks in the plan.
    pub fn progress(&self) -> (usize, usize) {
        self.schedule.progress()
    }

    /// What happened in this session so far.
    pub fn counts(&self) -> Counts {
        self.schedule.counts()
    }

    /// True when [`Run::next`] has something to do at `now`: call it with a fresh cluster
    /// state. False while every task that could start is waiting for a running one (or for
    /// [`Run::wake_at`]), so the driver reads the cluster only when it matters. While the
    /// postconditions of tasks whose work succeeded are checked, true when a check is due
    /// (also once the run stops starting tasks, until those checks are over).
    pub fn wants_state(&self, now: Timestamp) -> bool {
        if self.session.finished().is_some() {
            return false;
        }
        if self.session.stopping().is_some() {
            return !self.session.aborted() && self.schedule.check_due(now);
        }
        if !self.session.open {
            return true;
        }
        self.schedule.has_work(now)
    }

    /// When a retry or a check of postconditions becomes due, if one waits: call
    /// [`Run::next`] then (the driver sleeps until this time when nothing else happens).
    pub fn wake_at(&self) -> Option<Timestamp> {
        if self.session.finished().is_some() || self.session.aborted() {
            return None;
        }
        if self.session.stopping().is_some() {
            return self.schedule.next_check();
        }
        self.schedule.next_wake()
    }

    /// Tasks whose work succeeded and whose postconditions are being checked.
    pub fn verifying(&self) -> usize {
        self.schedule.verifying()
    }

    // ---- the machine ----------------------------------------------------------------------

    /// Checks `state` (fresh from the cluster) and says which tasks start now.
    pub fn next(&mut self, state: &ClusterState, now: Timestamp) -> Output {
        let mut out = Output::default();
        if self.session.finished().is_some() {
            return out;
        }
        if !self.session.open {
            self.open_session(state, now, &mut out);
        }
        if !self.session.aborted() {
            self.advance(state, now, &mut out);
        }
        self.settle(now, &mut out);
        self.debug_check();
        out
    }

    /// Opens the session: the first one takes the baseline and journals the run's start, a
    /// later one journals its own.
    fn open_session(&mut self, state: &ClusterState, now: Timestamp, out: &mut Output) {
        self.session.open = true;
        if self.expect.baseline().is_none() {
            let opts = &self.plan.options;
            let mut baseline = Baseline::default();
            if opts.allow_not_ready {
                baseline.not_ready = state
                    .nodes
                    .iter()
                    .filter(|n| !n.ready)
                    .map(|n| n.name.clone())
                    .collect();
            }
            if opts.tolerate_initial_violations {
                let mut keys: Vec<ViolationKey> = self
                    .policy
                    .errors(state)
                    .iter()
                    .map(ViolationKey::from)
                    .collect();
                keys.sort();
                keys.dedup();
                baseline.tolerated = keys;
            }
            self.expect.set_baseline(baseline.clone());
            self.session.number = 1;
            let at = self.begun.take().unwrap_or(now);
            self.started_at(at);
            out.records.push(Record::new(
                at,
                RecordKind::RunStarted {
                    plan: self.fingerprint.clone(),
                    steps: self.plan.steps.len(),
                    baseline,
                },
            ));
        } else {
            self.session.number += 1;
            out.records.push(Record::new(
                now,
                RecordKind::SessionStarted {
                    session: self.session.number,
                },
            ));
        }
        if let Some(lease) = self.lease.take() {
            out.records.push(Record::new(now, lease));
        }
        if !self.session.accepting.is_empty() {
            let (findings, messages): (Vec<String>, Vec<String>) =
                std::mem::take(&mut self.session.accepting)
                    .into_iter()
                    .unzip();
            self.session.accepted.extend(findings.iter().cloned());
            out.records.push(Record::new(
                now,
                RecordKind::FindingsAccepted { findings, messages },
            ));
        }
        let (done, tasks) = self.schedule.progress();
        out.events.push(Event::PlanStarted {
            at: now,
            target: self.plan.target.clone(),
            tasks,
            done,
            resumed: self.session.number > 1,
        });
    }

    /// Ends the session once nothing is in flight and it stops (and no task's postconditions
    /// are being checked, unless it was aborted) or every step is done.
    fn settle(&mut self, now: Timestamp, out: &mut Output) {
        if self.session.finished().is_some() || self.schedule.in_flight() > 0 {
            return;
        }
        let outcome = match self.session.stopping() {
            Some(_) if self.schedule.verifying() > 0 && !self.session.aborted() => return,
            Some(f) => f.clone(),
            None if self.schedule.is_complete() => Finished::Completed,
            None => return,
        };
        if !self.session.open {
            // Stopped before it began (a cancellation): nothing to say.
            self.session.end(outcome);
            return;
        }
        out.records.push(Record::new(
            now,
            RecordKind::Stopped {
                outcome: outcome.clone(),
            },
        ));
        out.events.push(Event::PlanFinished {
            at: now,
            outcome: outcome.clone(),
            counts: self.schedule.counts(),
        });
        self.session.end(outcome);
    }

    /// Takes the outcome of a task the driver ran.
    pub fn record(&mut self, outcome: Outcome, now: Timestamp) -> Result<Output, RecordError> {
        let Some(ran) = self.schedule.release(&outcome.task, outcome.attempt) else {
            return Err(RecordError {
                task: outcome.task,
                attempt: outcome.attempt,
            });
        };
        let mut out = Output::default();
        let plan = &*self.plan;
        match outcome.result {
            TaskResult::Succeeded => {
                let step = ran.pos.step(plan);
                if verify::needs_check(step) {
                    // Checked on the next read of the cluster (`Run::next`).
                    let wait = verify::interval(step.action.settle_window());
                    let check_at = now.saturating_add(wait).unwrap_or(now);
                    self.schedule
                        .verify_later(plan, ran, check_at, now, &mut out);
                } else {
                    let end = verify::unchecked_end(step);
                    let nodes = &mut self.expect.nodes;
                    self.schedule
                        .succeeded(plan, nodes, ran, end, now, &mut out);
                }
            }
            TaskResult::Failed(failure) => {
                let retry = self
                    .session
                    .stopping()
                    .is_none()
                    .then_some(&self.options.retry);
                if !self
                    .schedule
                    .failed(plan, ran, &failure, retry, now, &mut out)
                {
                    let report = checks::failure_report(plan, ran.pos, &failure);
                    self.session.halt(report);
                }
            }
            TaskResult::Interrupted => {
                self.schedule.interrupted(plan, ran, now, &mut out);
                self.session.stop(Finished::Cancelled);
            }
        }
        self.settle(now, &mut out);
        self.debug_check();
        Ok(out)
    }

    /// Stops starting tasks; the session ends ([`Finished::Cancelled`]) once the running ones
    /// have been recorded (as done, or as [`TaskResult::Interrupted`] when the driver aborts
    /// them).
    pub fn cancel(&mut self, now: Timestamp) -> Output {
        let mut out = Output::default();
        if self.session.finished().is_none() {
            self.session.stop(Finished::Cancelled);
        }
        self.settle(now, &mut out);
        out
    }

    /// Stops at once: like [`Run::cancel`], but the session does not wait for the checks of
    /// postconditions under way (the journal leaves those tasks verifying, and a resume
    /// checks them). The driver calls it when it aborts the running tasks, after recording
    /// them as [`TaskResult::Interrupted`].
    pub fn abort(&mut self, now: Timestamp) -> Output {
        let mut out = Output::default();
        if self.session.finished().is_none() {
            self.session.abort();
        }
        self.settle(now, &mut out);
        out
    }

    /// The task `text` names: `STEP`, or `STEP on NODE` for a step with several nodes (as
    /// [`TaskId`]'s display and stop reports print them).
    pub fn find_task(&self, text: &str) -> Result<TaskId, ResolveError> {
        let text = text.trim();
        let (step, node) = match text.rsplit_once(" on ") {
            Some((s, n)) => (s.trim(), Some(n.trim())),
            None => (text, None),
        };
        let si = self
            .schedule
            .step_index(&StepId(step.to_string()))
            .ok_or_else(|| ResolveError::NoSuchStep(step.to_string()))?;
        let s = &self.plan.steps[si];
        let node = match (node, s.nodes.as_slice()) {
            (Some(n), nodes) => Some(nodes.iter().find(|m| m.as_str() == n).cloned().ok_or_else(
                || ResolveError::UnknownTask(TaskId::new(s.id.clone(), n.parse().ok())),
            )?),
            (None, []) => None,
            (None, [one]) => Some(one.clone()),
            (None, many) => {
                return Err(ResolveError::WhichNode {
                    step: s.id.clone(),
                    nodes: many.len(),
                });
            }
        };
        Ok(TaskId::new(s.id.clone(), node))
    }

    /// True when the task is done (in this session or an earlier one).
    pub fn is_done(&self, task: &TaskId) -> bool {
        self.schedule
            .locate(&self.plan, task)
            .is_ok_and(|pos| self.schedule.task(pos).state == TaskState::Done)
    }

    /// True when an earlier session left the task unsure (in flight when it stopped, failed
    /// or interrupted) and no one has resolved it: [`Run::next`] checks its postconditions
    /// before it runs it again, and halts if it is not safe to repeat and they do not hold.
    pub fn is_unsure(&self, task: &TaskId) -> bool {
        self.schedule
            .locate(&self.plan, task)
            .is_ok_and(|pos| matches!(self.schedule.task(pos).state, TaskState::Unsure(_)))
    }

    /// Records the operator's decision about a task the run would not decide alone (a step
    /// that is not safe to repeat and may or may not have happened, or a step done by hand).
    /// Call it before [`Run::next`].
    pub fn resolve(
        &mut self,
        task: &TaskId,
        resolution: Resolution,
        now: Timestamp,
    ) -> Result<Output, ResolveError> {
        let pos = self
            .schedule
            .locate(&self.plan, task)
            .map_err(|_| ResolveError::UnknownTask(task.clone()))?;
        match self.schedule.task(pos).state {
            TaskState::Done => return Err(ResolveError::AlreadyDone(task.clone())),
            TaskState::Running { .. } => return Err(ResolveError::Running(task.clone())),
            _ => {}
        }
        let mut out = Output::default();
        out.records.push(Record::new(
            now,
            RecordKind::Resolved {
                task: task.clone(),
                resolution,
            },
        ));
        let nodes = &mut self.expect.nodes;
        self.schedule.resolve(&self.plan, nodes, pos, resolution);
        self.debug_check();
        Ok(out)
    }

    /// In debug builds, asserts that the schedule's derived figures agree with its task
    /// states (see `schedule.rs`).
    fn debug_check(&self) {
        debug_assert_eq!(self.schedule.check(&self.plan), Ok(()));
    }
}
