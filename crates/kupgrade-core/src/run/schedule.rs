//! Scheduling: which tasks wait for other steps, which may start, which run, which wait to be
//! retried, and the counts derived from that.
//!
//! [`Schedule`] holds every task's state and, so that a call of the run does not scan a plan of
//! thousands of tasks, figures derived from those states. After every call of the run (and at
//! the end of a resume) they agree with the states, as [`Schedule::check`] recomputes them;
//! debug builds assert it after each call:
//! - a step's `done` counts its Done tasks, `tasks_done` sums them, and `steps_done` counts
//!   the steps whose tasks are all done;
//! - `waiting_on[s]` is the number of steps `s` depends on that are not all done, and `ready`
//!   holds exactly the steps that are not all done and wait on none;
//! - `startable` equals the number of Pending or Unsure tasks of ready steps;
//! - `retries` holds exactly `(at, task)` for each task waiting to be retried at `at`, and
//!   every such task belongs to a ready step;
//! - `verifying` holds exactly `(check_at, task)` for each task whose postconditions are being
//!   checked (every one in a ready step), and `unchecked` counts those not checked yet in this
//!   session, `unchecked_in[s]` those of step `s`, and `unchecked_idle` those of steps with no
//!   task running;
//! - `running` maps the id of each Running task (every one in a ready step) to its position,
//!   `in_flight` is their number and never more than `limit`, `running_in[s]` the number of
//!   step `s`, and `busy` holds their nodes: at most one running task per node.
//!
//! Every change of a task's state made here during a session is written down as it is made:
//! a journal record and an event into the call's [`Output`], counted in [`Counts`]. Two
//! changes come with no record from here: an operator's decision (`Run::resolve` journals it)
//! and the replay of a journal (it reads the records); both recount afterwards.
use std::collections::BTreeSet;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use jiff::Timestamp;

use crate::NodeName;
use crate::plan::{Action, StepId, UpgradePlan};

use super::error::RunError;
use super::event::{Counts, Event, StepOutcome};
use super::expect::NodeExpectations;
use super::options::RetryPolicy;
use super::output::Output;
use super::record::{Failure, FailureKind, Record, RecordKind, Resolution, TaskEnd};
use super::report::StopReport;
use super::task::{Pos, StepRun, Task, TaskId, TaskRun, TaskState, Unsure, Work};

mod verifying;

/// The tasks' states and what the run derives from them to decide what starts next.
pub(super) struct Schedule {
    /// Each step's tasks.
    steps: Vec<StepRun>,
    /// Each step's index, by id.
    index: HashMap<StepId, usize>,
    /// The steps each step depends on.
    deps: Vec<Vec<usize>>,
    /// The steps that depend on each step.
    dependents: Vec<Vec<usize>>,
    /// How many of the steps each step depends on are not all done.
    waiting_on: Vec<usize>,
    /// The steps not all done that wait on no other step.
    ready: BTreeSet<usize>,
    /// Steps whose tasks are all done.
    steps_done: usize,
    /// Tasks in the plan.
    tasks_total: usize,
    /// Tasks done.
    tasks_done: usize,
    /// The most tasks in flight at once.
    limit: usize,
    /// Tasks the driver is carrying out.
    in_flight: usize,
    /// Pending or Unsure tasks of ready steps.
    startable: usize,
    /// Tasks waiting to be retried, by when.
    retries: BTreeSet<(Timestamp, Pos)>,
    /// Tasks whose postconditions are being checked, by when they are checked next.
    verifying: BTreeSet<(Timestamp, Pos)>,
    /// Verifying tasks not checked yet in this session (their window has not started).
    unchecked: usize,
    /// For each step, its verifying tasks not checked yet in this session.
    unchecked_in: Vec<u32>,
    /// Verifying tasks not checked yet whose step has no task running: their first check is
    /// due (the tasks of a step that end together are checked on one read of the cluster).
    unchecked_idle: usize,
    /// For each step, its tasks in flight.
    running_in: Vec<u32>,
    /// True when the last look found tasks to start but each one's node busy: nothing starts
    /// until a running task ends.
    stalled: bool,
    /// The nodes of the tasks in flight.
    busy: HashSet<NodeName>,
    /// Where each running task is (outcomes name tasks; steps may have thousands of nodes).
    running: HashMap<TaskId, Pos>,
    /// What happened in this session.
    counts: Counts,
}

/// A task the driver carried out, as its outcome found it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ran {
    /// Where it is.
    pub pos: Pos,
    /// The attempt that ended.
    pub attempt: u32,
    /// When it started.
    pub since: Timestamp,
}

impl Schedule {
    /// The schedule of `plan` before any task ran, with at most `limit` tasks in flight.
    pub fn new(plan: &UpgradePlan, limit: usize) -> Result<Schedule, RunError> {
        let n = plan.steps.len();
        let mut index = HashMap::with_capacity(n);
        for (i, s) in plan.steps.iter().enumerate() {
            if index.insert(s.id.clone(), i).is_some() {
                return Err(RunError::DuplicateStep(s.id.clone()));
            }
        }
        let mut deps = Vec::with_capacity(n);
        let mut dependents = vec![Vec::new(); n];
        for (i, s) in plan.steps.iter().enumerate() {
            let d: Vec<usize> = if s.depends_on.is_empty() {
                // The plan's steps are in order: no explicit dependency means the step before.
                i.checked_sub(1).into_iter().collect()
            } else {
                s.depends_on
                    .iter()
                    .map(|id| {
                        index
                            .get(id)
                            .copied()
                            .ok_or_else(|| RunError::UnknownDependency {
                                step: s.id.clone(),
                                depends_on: id.clone(),
                            })
                    })
                    .collect::<Result<_, _>>()?
            };
            for &j in &d {
                dependents[j].push(i);
            }
            deps.push(d);
        }
        check_acyclic(plan, &deps)?;
        let steps: Vec<StepRun> = plan
            .steps
            .iter()
            .map(|s| StepRun {
                tasks: vec![
                    TaskRun {
                        state: TaskState::Pending,
                        attempts: 0,
                        failures: 0,
                        unreachable: None,
                        handle: None,
                    };
                    s.nodes.len().max(1)
                ],
                done: 0,
            })
            .collect();
        let tasks_total = steps.iter().map(|s| s.tasks.len()).sum();
        let mut schedule = Schedule {
            steps,
            index,
            deps,
            dependents,
            waiting_on: Vec::new(),
            ready: BTreeSet::new(),
            steps_done: 0,
            tasks_total,
            tasks_done: 0,
            limit,
            in_flight: 0,
            startable: 0,
            retries: BTreeSet::new(),
            verifying: BTreeSet::new(),
            unchecked: 0,
            unchecked_in: vec![0; n],
            unchecked_idle: 0,
            running_in: vec![0; n],
            stalled: false,
            busy: HashSet::new(),
            running: HashMap::new(),
            counts: Counts::default(),
        };
        schedule.recount(plan);
        Ok(schedule)
    }

    /// Recomputes every derived figure from the task states.
    pub fn recount(&mut self, plan: &UpgradePlan) {
        let n = self.steps.len();
        self.tasks_done = 0;
        self.steps_done = 0;
        self.startable = 0;
        self.retries.clear();
        self.verifying.clear();
        self.unchecked = 0;
        self.unchecked_in = vec![0; n];
        self.running_in = vec![0; n];
        self.in_flight = 0;
        self.busy.clear();
        self.running.clear();
        let mut finished = vec![false; n];
        for (si, s) in self.steps.iter_mut().enumerate() {
            s.done = s
                .tasks
                .iter()
                .filter(|t| t.state == TaskState::Done)
                .count();
            self.tasks_done += s.done;
            if s.done == s.tasks.len() {
                finished[si] = true;
                self.steps_done += 1;
            }
        }
        self.waiting_on = (0..n)
            .map(|i| self.deps[i].iter().filter(|&&d| !finished[d]).count())
            .collect();
        self.ready = (0..n)
            .filter(|&i| !finished[i] && self.waiting_on[i] == 0)
            .collect();
        for &si in &self.ready {
            for (ti, t) in self.steps[si].tasks.iter().enumerate() {
                let pos = Pos::new(si, ti);
                match t.state {
                    TaskState::Pending | TaskState::Unsure(_) => self.startable += 1,
                    TaskState::Retry { at } => {
                        self.retries.insert((at, pos));
                    }
                    TaskState::Verifying {
                        check_at, until, ..
                    } => {
                        self.verifying.insert((check_at, pos));
                        let fresh = u32::from(until.is_none());
                        self.unchecked += fresh as usize;
                        self.unchecked_in[si] += fresh;
                    }
                    TaskState::Running { .. } => {
                        self.in_flight += 1;
                        self.running_in[si] += 1;
                        let id = pos.id(plan);
                        if let Some(n) = &id.node {
                            self.busy.insert(n.clone());
                        }
                        self.running.insert(id, pos);
                    }
                    TaskState::Failed | TaskState::Done => {}
                }
            }
        }
        self.unchecked_idle = idle_unchecked(&self.unchecked_in, &self.running_in);
    }

    // ---- reading ----------------------------------------------------------------------------

    /// Where `task` is in the plan, or why it is not there.
    pub fn locate(&self, plan: &UpgradePlan, task: &TaskId) -> Result<Pos, String> {
        let si = self
            .step_index(&task.step)
            .ok_or_else(|| format!("the plan has no step {}", task.step))?;
        let nodes = &plan.steps[si].nodes;
        let ti = match &task.node {
            None if nodes.is_empty() => 0,
            Some(n) => nodes
                .iter()
                .position(|m| m == n)
                .ok_or_else(|| format!("step {} does not act on node {n}", task.step))?,
            None => return Err(format!("step {} acts on nodes, none named", task.step)),
        };
        Ok(Pos::new(si, ti))
    }

    /// The index of the step called `id`.
    pub fn step_index(&self, id: &StepId) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The task at `pos`.
    pub fn task(&self, pos: Pos) -> &TaskRun {
        &self.steps[pos.step].tasks[pos.task]
    }

    /// The task at `pos`, to change its state without the derived figures: the caller
    /// recounts (see [`Schedule::recount`]) before anything reads them.
    pub fn task_mut(&mut self, pos: Pos) -> &mut TaskRun {
        &mut self.steps[pos.step].tasks[pos.task]
    }

    /// The number of tasks of step `si`.
    pub fn tasks_in(&self, si: usize) -> usize {
        self.steps[si].tasks.len()
    }

    /// The first ready step from index `from` on.
    pub fn ready_from(&self, from: usize) -> Option<usize> {
        self.ready.range(from..).next().copied()
    }

    /// Tasks in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// True when no more tasks may be in flight.
    pub fn is_full(&self) -> bool {
        self.in_flight >= self.limit
    }

    /// True when the task's node runs another task.
    pub fn is_busy(&self, plan: &UpgradePlan, pos: Pos) -> bool {
        pos.node(plan).is_some_and(|n| self.busy.contains(n))
    }

    /// Tasks done and tasks in the plan.
    pub fn progress(&self) -> (usize, usize) {
        (self.tasks_done, self.tasks_total)
    }

    /// True when every step is done.
    pub fn is_complete(&self) -> bool {
        self.steps_done == self.steps.len()
    }

    /// What happened in this session so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// True when a task may start at `now` (there is room in flight, the last look did not
    /// find every startable task's node busy, and a task is startable or a retry is due), or
    /// a check of postconditions is due.
    pub fn has_work(&self, now: Timestamp) -> bool {
        if self.check_due(now) {
            return true;
        }
        if self.in_flight >= self.limit || self.stalled {
            return false;
        }
        self.startable > 0 || self.retries.first().is_some_and(|r| r.0 <= now)
    }

    /// Says whether the last look found tasks to start, each on a busy node, and none started.
    pub fn set_stalled(&mut self, stalled: bool) {
        self.stalled = stalled;
    }

    // ---- transitions --------------------------------------------------------------------------

    /// Hands the due task at `pos` to the driver with `work`.
    pub fn start(
        &mut self,
        plan: &UpgradePlan,
        nodes: &mut NodeExpectations,
        pos: Pos,
        work: Work,
        now: Timestamp,
        out: &mut Output,
    ) {
        let (id, attempt) = self.begin(plan, pos, now, out);
        self.in_flight += 1;
        if self.running_in[pos.step] == 0 {
            self.unchecked_idle -= self.unchecked_in[pos.step] as usize;
        }
        self.running_in[pos.step] += 1;
        if let Some(n) = &id.node {
            self.busy.insert(n.clone());
        }
        self.running.insert(id.clone(), pos);
        nodes.started(plan, pos);
        let step = pos.step(plan);
        let deadline = step.action.deadline(match &work {
            Work::Commands { commands } => commands,
            _ => &[],
        });
        out.tasks.push(Task {
            id,
            step_index: pos.step,
            attempt,
            work,
            action: step.action.describe(),
            deadline,
            idempotent: step.idempotent,
        });
    }

    /// Starts and ends at once the due task at `pos` that the run decided itself (a check or
    /// an operator step). A task that failed is failed for good: the report comes back, for
    /// the run to halt with.
    pub fn finish_inline(
        &mut self,
        plan: &UpgradePlan,
        nodes: &mut NodeExpectations,
        pos: Pos,
        result: Result<TaskEnd, Box<StopReport>>,
        now: Timestamp,
        out: &mut Output,
    ) -> Result<(), Box<StopReport>> {
        let (id, attempt) = self.begin(plan, pos, now, out);
        let report = match result {
            Ok(end) => {
                self.complete(plan, nodes, pos, end, now, out);
                return Ok(());
            }
            Err(report) => report,
        };
        self.task_mut(pos).state = TaskState::Failed;
        self.counts.failed += 1;
        out.records.push(Record::new(
            now,
            RecordKind::TaskFinished {
                task: id.clone(),
                attempt,
                end: TaskEnd::Failed {
                    failure: Failure::new(FailureKind::Other, report.summary.clone()),
                    retry_at: None,
                },
            },
        ));
        out.events.push(Event::StepFinished {
            at: now,
            task: id,
            outcome: StepOutcome::Failed,
            duration_ms: 0,
        });
        Err(report)
    }

    /// Marks the Unsure task at `pos` done without running it: the cluster shows its effect.
    pub fn already_done(
        &mut self,
        plan: &UpgradePlan,
        nodes: &mut NodeExpectations,
        pos: Pos,
        evidence: Vec<String>,
        now: Timestamp,
        out: &mut Output,
    ) {
        self.startable -= 1;
        self.complete(
            plan,
            nodes,
            pos,
            TaskEnd::AlreadyDone { evidence },
            now,
            out,
        );
    }

    /// Takes the task the driver ran for `attempt` of `task` out of flight; `None` when no
    /// such attempt runs.
    pub fn release(&mut self, task: &TaskId, attempt: u32) -> Option<Ran> {
        let pos = *self.running.get(task)?;
        let since = match self.task(pos) {
            TaskRun {
                state: TaskState::Running { since },
                attempts,
                ..
            } if *attempts == attempt => *since,
            _ => return None,
        };
        self.running.remove(task);
        self.in_flight -= 1;
        self.running_in[pos.step] -= 1;
        if self.running_in[pos.step] == 0 {
            self.unchecked_idle += self.unchecked_in[pos.step] as usize;
        }
        self.stalled = false;
        if let Some(n) = &task.node {
            self.busy.remove(n);
        }
        Some(Ran {
            pos,
            attempt,
            since,
        })
    }

    /// The released task succeeded, and the cluster need not (or cannot) show more: done.
    pub fn succeeded(
        &mut self,
        plan: &UpgradePlan,
        nodes: &mut NodeExpectations,
        ran: Ran,
        end: TaskEnd,
        now: Timestamp,
        out: &mut Output,
    ) {
        // `complete` does not touch `startable`; the task left it when it started.
        self.complete(plan, nodes, ran.pos, end, now, out);
    }

    /// The released task failed: it waits for a retry when it is safe to repeat, the failure
    /// may pass and `retry` (`None` once the run stops) allows another attempt; otherwise it
    /// failed for good. True when it will be retried.
    pub fn failed(
        &mut self,
        plan: &UpgradePlan,
        ran: Ran,
        failure: &Failure,
        retry: Option<&RetryPolicy>,
        now: Timestamp,
        out: &mut Output,
    ) -> bool {
        let id = ran.pos.id(plan);
        let idempotent = ran.pos.step(plan).idempotent;
        let t = &mut self.steps[ran.pos.step].tasks[ran.pos.task];
        let retry_at = retry
            .filter(|_| idempotent && failure.retryable())
            .and_then(|p| retry_time(t, p, failure.kind, now));
        out.records.push(Record::new(
            now,
            RecordKind::TaskFinished {
                task: id.clone(),
                attempt: ran.attempt,
                end: TaskEnd::Failed {
                    failure: failure.clone(),
                    retry_at,
                },
            },
        ));
        if let Some(at) = retry_at {
            t.state = TaskState::Retry { at };
            self.retries.insert((at, ran.pos));
            self.counts.retried += 1;
            out.events.push(Event::StepRetrying {
                at: now,
                task: id,
                attempt: ran.attempt,
                retry_at: at,
                error: failure.to_string(),
            });
            true
        } else {
            t.state = TaskState::Failed;
            self.counts.failed += 1;
            out.events.push(Event::StepFinished {
                at: now,
                task: id,
                outcome: StepOutcome::Failed,
                duration_ms: millis(now, ran.since),
            });
            false
        }
    }

    /// The released task was aborted: whether it took effect is unknown, so it is checked
    /// before it runs again (it is startable again; the run stops starting tasks anyway).
    pub fn interrupted(&mut self, plan: &UpgradePlan, ran: Ran, now: Timestamp, out: &mut Output) {
        let id = ran.pos.id(plan);
        self.task_mut(ran.pos).state = TaskState::Unsure(Unsure::Interrupted);
        self.startable += 1;
        self.counts.interrupted += 1;
        out.records.push(Record::new(
            now,
            RecordKind::TaskFinished {
                task: id.clone(),
                attempt: ran.attempt,
                end: TaskEnd::Interrupted,
            },
        ));
        out.events.push(Event::StepFinished {
            at: now,
            task: id,
            outcome: StepOutcome::Interrupted,
            duration_ms: millis(now, ran.since),
        });
    }

    /// Takes the operator's decision about the task at `pos` (neither done nor running).
    pub fn resolve(
        &mut self,
        plan: &UpgradePlan,
        nodes: &mut NodeExpectations,
        pos: Pos,
        resolution: Resolution,
    ) {
        match resolution {
            Resolution::MarkDone => {
                self.task_mut(pos).state = TaskState::Done;
                nodes.done(plan, pos);
            }
            Resolution::Retry => self.task_mut(pos).state = TaskState::Pending,
        }
        self.recount(plan);
    }

    /// Tasks that were running when an earlier session stopped may or may not have happened:
    /// they become Unsure, and the figures are recounted.
    pub fn in_flight_unsure(&mut self, plan: &UpgradePlan) {
        for s in &mut self.steps {
            for t in &mut s.tasks {
                if let TaskState::Running { .. } = t.state {
                    t.state = TaskState::Unsure(Unsure::InFlight);
                }
            }
        }
        self.recount(plan);
    }

    /// Takes the due task at `pos` out of the startable count or the retries and counts an
    /// attempt; journals its start.
    fn begin(
        &mut self,
        plan: &UpgradePlan,
        pos: Pos,
        now: Timestamp,
        out: &mut Output,
    ) -> (TaskId, u32) {
        let step = pos.step(plan);
        let id = pos.id(plan);
        let t = &mut self.steps[pos.step].tasks[pos.task];
        match t.state {
            TaskState::Retry { at } => {
                self.retries.remove(&(at, pos));
            }
            _ => self.startable -= 1,
        }
        t.attempts += 1;
        t.handle = None;
        t.state = TaskState::Running { since: now };
        let attempt = t.attempts;
        self.counts.started += 1;
        out.records.push(Record::new(
            now,
            RecordKind::TaskStarted {
                task: id.clone(),
                attempt,
            },
        ));
        out.events.push(Event::StepStarted {
            at: now,
            task: id.clone(),
            attempt,
            action: step.action.describe(),
            executor: step.action.executor(),
        });
        (id, attempt)
    }

    /// Marks a task done, journals it and moves the step (and the steps after it) along. The
    /// caller has already taken the task out of `startable`/`in_flight`.
    fn complete(
        &mut self,
        plan: &UpgradePlan,
        nodes: &mut NodeExpectations,
        pos: Pos,
        end: TaskEnd,
        now: Timestamp,
        out: &mut Output,
    ) {
        let id = pos.id(plan);
        let t = &mut self.steps[pos.step].tasks[pos.task];
        let since = match t.state {
            TaskState::Running { since } | TaskState::Verifying { since, .. } => Some(since),
            _ => None,
        };
        t.state = TaskState::Done;
        let attempt = t.attempts;
        let outcome = match &end {
            TaskEnd::Succeeded { .. } => {
                self.counts.succeeded += 1;
                StepOutcome::Succeeded
            }
            TaskEnd::AlreadyDone { .. } => {
                self.counts.already_done += 1;
                StepOutcome::AlreadyDone
            }
            TaskEnd::Manual { instructions } => {
                self.counts.manual += 1;
                out.events.push(Event::OperatorAction {
                    at: now,
                    task: id.clone(),
                    instructions: instructions.clone(),
                });
                StepOutcome::Manual
            }
            TaskEnd::Failed { .. } | TaskEnd::Interrupted => StepOutcome::Failed,
        };
        out.records.push(Record::new(
            now,
            RecordKind::TaskFinished {
                task: id.clone(),
                attempt,
                end,
            },
        ));
        out.events.push(Event::StepFinished {
            at: now,
            task: id.clone(),
            outcome,
            duration_ms: since.map_or(0, |s| millis(now, s)),
        });
        if let (Some(node), true) = (&id.node, outcome == StepOutcome::Succeeded) {
            match &pos.step(plan).action {
                Action::WaitReady { version, .. } | Action::ProvisionNodes { version, .. } => {
                    out.events.push(Event::NodeReady {
                        at: now,
                        node: node.clone(),
                        version: version.clone(),
                    })
                }
                _ => {}
            }
        }
        nodes.done(plan, pos);
        self.tasks_done += 1;
        self.steps[pos.step].done += 1;
        if self.steps[pos.step].done == self.steps[pos.step].tasks.len() {
            self.step_done(pos.step);
        }
    }

    /// Step `si` is all done: the steps that waited for it and wait no more become ready.
    fn step_done(&mut self, si: usize) {
        self.ready.remove(&si);
        self.steps_done += 1;
        for k in 0..self.dependents[si].len() {
            let d = self.dependents[si][k];
            self.waiting_on[d] -= 1;
            if self.waiting_on[d] == 0 && self.steps[d].done < self.steps[d].tasks.len() {
                self.ready.insert(d);
                for (ti, t) in self.steps[d].tasks.iter().enumerate() {
                    match t.state {
                        TaskState::Pending | TaskState::Unsure(_) => self.startable += 1,
                        TaskState::Retry { at } => {
                            self.retries.insert((at, Pos::new(d, ti)));
                        }
                        TaskState::Verifying {
                            check_at, until, ..
                        } => {
                            // A step that just became ready has no task running.
                            self.verifying.insert((check_at, Pos::new(d, ti)));
                            let fresh = u32::from(until.is_none());
                            self.unchecked += fresh as usize;
                            self.unchecked_in[d] += fresh;
                            self.unchecked_idle += fresh as usize;
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    // ---- invariants ---------------------------------------------------------------------------

    /// Recomputes the derived figures from the task states and says which one differs, if one
    /// does (see the module documentation).
    pub fn check(&self, plan: &UpgradePlan) -> Result<(), String> {
        let n = self.steps.len();
        let mut finished = vec![false; n];
        let (mut tasks_done, mut steps_done) = (0, 0);
        for (si, s) in self.steps.iter().enumerate() {
            let done = s
                .tasks
                .iter()
                .filter(|t| t.state == TaskState::Done)
                .count();
            if done != s.done {
                return Err(format!("step {si} counts {} done of {done}", s.done));
            }
            tasks_done += done;
            if done == s.tasks.len() {
                finished[si] = true;
                steps_done += 1;
            }
        }
        if (tasks_done, steps_done) != (self.tasks_done, self.steps_done) {
            return Err(format!(
                "{}/{} tasks/steps counted done, {tasks_done}/{steps_done} are",
                self.tasks_done, self.steps_done
            ));
        }
        for i in 0..n {
            let waiting = self.deps[i].iter().filter(|&&d| !finished[d]).count();
            if waiting != self.waiting_on[i] {
                return Err(format!(
                    "step {i} counts {} steps to wait on, not {waiting}",
                    self.waiting_on[i]
                ));
            }
            if self.ready.contains(&i) != (!finished[i] && waiting == 0) {
                return Err(format!("step {i} is wrongly (not) ready"));
            }
        }
        self.check_tasks(plan)
    }

    /// The part of [`Schedule::check`] about the tasks of ready steps.
    fn check_tasks(&self, plan: &UpgradePlan) -> Result<(), String> {
        let mut startable = 0;
        let mut retries = BTreeSet::new();
        let mut verifying = BTreeSet::new();
        let mut unchecked = 0;
        let mut unchecked_in = vec![0; self.steps.len()];
        let mut running_in = vec![0; self.steps.len()];
        let mut running = HashMap::new();
        let mut busy = HashSet::new();
        for (si, s) in self.steps.iter().enumerate() {
            let ready = self.ready.contains(&si);
            for (ti, t) in s.tasks.iter().enumerate() {
                let pos = Pos::new(si, ti);
                match t.state {
                    TaskState::Pending | TaskState::Unsure(_) if ready => startable += 1,
                    TaskState::Retry { .. }
                    | TaskState::Running { .. }
                    | TaskState::Verifying { .. }
                        if !ready =>
                    {
                        return Err(format!(
                            "{} waits or runs in a step that is not ready",
                            pos.id(plan)
                        ));
                    }
                    TaskState::Retry { at } => {
                        retries.insert((at, pos));
                    }
                    TaskState::Verifying {
                        check_at, until, ..
                    } => {
                        verifying.insert((check_at, pos));
                        unchecked += usize::from(until.is_none());
                        unchecked_in[si] += u32::from(until.is_none());
                    }
                    TaskState::Running { .. } => {
                        running_in[si] += 1;
                        let id = pos.id(plan);
                        if let Some(node) = &id.node
                            && !busy.insert(node.clone())
                        {
                            return Err(format!("two tasks run on {node}"));
                        }
                        running.insert(id, pos);
                    }
                    _ => {}
                }
            }
        }
        if startable != self.startable {
            return Err(format!(
                "{} tasks counted startable, {startable} are",
                self.startable
            ));
        }
        if retries != self.retries {
            return Err("the retries differ from the tasks waiting to be retried".into());
        }
        if verifying != self.verifying
            || unchecked != self.unchecked
            || unchecked_in != self.unchecked_in
            || idle_unchecked(&unchecked_in, &running_in) != self.unchecked_idle
        {
            return Err("the checks differ from the tasks being verified".into());
        }
        if running_in != self.running_in {
            return Err("the tasks counted in flight by step differ from those running".into());
        }
        if running != self.running || busy != self.busy || self.in_flight != running.len() {
            return Err(format!(
                "{} tasks counted in flight, {} run (or their positions or nodes differ)",
                self.in_flight,
                running.len()
            ));
        }
        if self.in_flight > self.limit {
            return Err(format!(
                "{} tasks in flight, more than {}",
                self.in_flight, self.limit
            ));
        }
        Ok(())
    }
}

/// The unchecked verifying tasks of the steps with no task running.
fn idle_unchecked(unchecked_in: &[u32], running_in: &[u32]) -> usize {
    unchecked_in
        .iter()
        .zip(running_in)
        .filter(|(_, r)| **r == 0)
        .map(|(u, _)| *u as usize)
        .sum()
}

/// Milliseconds from `since` to `now` (0 when the clock went back).
fn millis(now: Timestamp, since: Timestamp) -> u64 {
    u64::try_from(now.duration_since(since).as_millis()).unwrap_or(0)
}

/// Refuses dependencies in a circle.
fn check_acyclic(plan: &UpgradePlan, deps: &[Vec<usize>]) -> Result<(), RunError> {
    let n = deps.len();
    let mut indegree: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents = vec![Vec::new(); n];
    for (i, d) in deps.iter().enumerate() {
        for &j in d {
            dependents[j].push(i);
        }
    }
    let mut queue: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut seen = 0;
    while let Some(i) = queue.pop() {
        seen += 1;
        for &d in &dependents[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                queue.push(d);
            }
        }
    }
    if seen == n {
        return Ok(());
    }
    let i = (0..n).find(|&i| indegree[i] > 0).unwrap_or(0);
    Err(RunError::DependencyCycle {
        step: plan.steps[i].id.clone(),
    })
}

#[cfg(test)]
mod tests;

/// Counts `t`'s failure of `kind` at `now`; when `p` allows another attempt, when it starts.
///
/// A node that cannot be reached (a reboot, a restarting sshd, a network blip) is waited for,
/// apart from the other failures: attempts go on with the same backoff until
/// [`RetryPolicy::unreachable_wait`] has passed since the first of them, so that a node
/// coming back within that time costs no halt, while a command that fails keeps its
/// `max_attempts`.
fn retry_time(
    t: &mut TaskRun,
    p: &RetryPolicy,
    kind: FailureKind,
    now: Timestamp,
) -> Option<Timestamp> {
    let at = |failures| now.saturating_add(p.delay(failures)).unwrap_or(now);
    if kind == FailureKind::Unreachable && !p.unreachable_wait.is_zero() {
        let (n, since) = t.unreachable.get_or_insert((0, now));
        *n += 1;
        let next = at(*n);
        let waited = next.duration_since(*since);
        let limit =
            jiff::SignedDuration::try_from(p.unreachable_wait).unwrap_or(jiff::SignedDuration::MAX);
        return (waited <= limit).then_some(next);
    }
    t.failures += 1;
    (t.failures < p.max_attempts).then(|| at(t.failures))
}
