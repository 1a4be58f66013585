//! [`RunSummary`]: what a journal says about a run, step by step, for a report.
//!
//! The journal is the source of truth: a summary is built from its records alone (with the
//! plan, to place them), so a report can be rendered while the run goes on
//! ([`RunSummary::push`] as each record is appended), after a resume (the earlier records
//! first), or after the fact from any journal ([`RunSummary::from_records`]).
//!
//! Invariant: each task's state is the one its last record gave it, as [`super::Run::resume`]
//! replays them; records naming a step or node the plan does not have are counted
//! ([`RunSummary::unplaced`]), never a panic.
use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};

use crate::NodeName;
use crate::gate::WorkloadSnapshot;
use crate::plan::{StepId, UpgradePlan};
use crate::ports::Taking;

use super::record::{Failure, Record, RecordKind, Resolution, TaskEnd};
use super::report::Finished;
use super::task::TaskId;

/// Where a task (or, summed, a step) is, as the journal tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum RunState {
    /// No record names it.
    NotStarted,
    /// Started, no end yet (in flight, or its session died).
    Running,
    /// Its work succeeded; its postconditions were being checked.
    Verifying,
    /// Failed; it will be tried again.
    Retrying,
    /// Done.
    Done,
    /// Found done by evidence (not run), or marked done by the operator.
    Skipped,
    /// Left to the operator, who was told what to do.
    Manual,
    /// Failed for good.
    Failed,
    /// Aborted before it ended.
    Interrupted,
    /// Some of its nodes are done, others not started (a step only).
    Partial,
}

impl RunState {
    /// Its name in a report (`done`, `running`, `not started`, ...).
    pub fn name(self) -> &'static str {
        match self {
            RunState::NotStarted => "not started",
            RunState::Running => "running",
            RunState::Verifying => "verifying",
            RunState::Retrying => "retrying",
            RunState::Done => "done",
            RunState::Skipped => "skipped",
            RunState::Manual => "manual",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
            RunState::Partial => "partly done",
        }
    }

    /// True when the task needs nothing more (done, skipped, left to the operator).
    pub fn is_over(self) -> bool {
        matches!(self, RunState::Done | RunState::Skipped | RunState::Manual)
    }
}

/// One task of the run, as its records tell it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRun {
    /// Its node (none for a cluster-wide step).
    pub node: Option<NodeName>,
    /// Where it is.
    pub state: RunState,
    /// Attempts started, over every session.
    pub attempts: u32,
    /// When its first attempt started.
    pub first_start: Option<Timestamp>,
    /// When it last ended (or was found done).
    pub end: Option<Timestamp>,
    /// The last failure, if it failed (also one it was retried after).
    pub failure: Option<Failure>,
    /// Why it was skipped or left to the operator (evidence, instructions, "marked done").
    pub note: Option<String>,
    /// What it printed last (hooks and gates), standard output.
    pub stdout: String,
    /// What it printed last, standard error.
    pub stderr: String,
}

impl TaskRun {
    fn new(node: Option<NodeName>) -> Self {
        TaskRun {
            node,
            state: RunState::NotStarted,
            attempts: 0,
            first_start: None,
            end: None,
            failure: None,
            note: None,
            stdout: String::new(),
            stderr: String::new(),
        }
    }
}

/// The lease a session took.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaseNote {
    /// When.
    pub at: Timestamp,
    /// Where the lease is.
    pub place: String,
    /// The session's holder.
    pub holder: String,
    /// How it was taken.
    pub taking: Taking,
}

/// What a journal says about a run of a plan, step by step: built from its records alone
/// (with the plan, to place them), as they are appended ([`RunSummary::push`]) or after the
/// fact ([`RunSummary::from_records`]); each task's state is the one its last record gave it,
/// and records naming a step or node the plan does not have are counted
/// ([`RunSummary::unplaced`]), never a panic.
#[derive(Clone, Debug)]
pub struct RunSummary {
    index: HashMap<StepId, usize>,
    tasks: HashMap<TaskId, (usize, usize)>,
    steps: Vec<Vec<TaskRun>>,
    started: Option<Timestamp>,
    last: Option<Timestamp>,
    sessions: u32,
    session_started: Option<Timestamp>,
    accepted: Vec<(String, String)>,
    leases: Vec<LeaseNote>,
    stops: Vec<(Timestamp, Finished)>,
    workloads: HashMap<StepId, WorkloadSnapshot>,
    unplaced: usize,
}

impl RunSummary {
    /// A run of `plan` with no record yet.
    pub fn new(plan: &UpgradePlan) -> Self {
        RunSummary {
            index: (plan.steps.iter().enumerate())
                .map(|(i, s)| (s.id.clone(), i))
                .collect(),
            tasks: HashMap::new(),
            steps: vec![Vec::new(); plan.steps.len()],
            started: None,
            last: None,
            sessions: 0,
            session_started: None,
            accepted: Vec::new(),
            leases: Vec::new(),
            stops: Vec::new(),
            workloads: HashMap::new(),
            unplaced: 0,
        }
    }

    /// The summary of `records` (a journal of a run of `plan`).
    pub fn from_records<'r>(
        plan: &UpgradePlan,
        records: impl IntoIterator<Item = &'r Record>,
    ) -> Self {
        let mut s = RunSummary::new(plan);
        for r in records {
            s.push(r);
        }
        s
    }

    /// Takes the journal's next record.
    pub fn push(&mut self, r: &Record) {
        self.last = Some(self.last.map_or(r.at, |l| l.max(r.at)));
        let at = r.at;
        match &r.kind {
            RecordKind::RunStarted { .. } => {
                self.started = Some(at);
                self.sessions = 1;
                self.session_started = Some(at);
            }
            RecordKind::SessionStarted { session } => {
                self.sessions = *session;
                self.session_started = Some(at);
            }
            RecordKind::TaskStarted { task, attempt } => {
                if let Some(t) = self.task(task) {
                    t.state = RunState::Running;
                    t.attempts = t.attempts.max(*attempt);
                    t.first_start.get_or_insert(at);
                    t.end = None;
                }
            }
            RecordKind::TaskVerifying { task, .. } => {
                if let Some(t) = self.task(task) {
                    t.state = RunState::Verifying;
                }
            }
            RecordKind::TaskFinished { task, end, .. } => {
                if let Some(t) = self.task(task) {
                    t.end = Some(at);
                    t.first_start.get_or_insert(at);
                    match end {
                        TaskEnd::Succeeded { .. } => t.state = RunState::Done,
                        TaskEnd::AlreadyDone { evidence } => {
                            t.state = RunState::Skipped;
                            t.note = Some(format!("found done: {}", evidence.join("; ")));
                        }
                        TaskEnd::Manual { instructions } => {
                            t.state = RunState::Manual;
                            t.note = Some(instructions.clone());
                        }
                        TaskEnd::Failed { failure, retry_at } => {
                            t.state = if retry_at.is_some() {
                                RunState::Retrying
                            } else {
                                RunState::Failed
                            };
                            t.failure = Some(failure.clone());
                        }
                        TaskEnd::Interrupted => t.state = RunState::Interrupted,
                    }
                }
            }
            RecordKind::Resolved { task, resolution } => {
                if let Some(t) = self.task(task) {
                    match resolution {
                        Resolution::MarkDone => {
                            t.state = RunState::Skipped;
                            t.end.get_or_insert(at);
                            t.note = Some("marked done by the operator".into());
                        }
                        Resolution::Retry => t.state = RunState::NotStarted,
                    }
                }
            }
            RecordKind::Stopped { outcome } => self.stops.push((at, outcome.clone())),
            RecordKind::FindingsAccepted { findings, messages } => {
                for (i, f) in findings.iter().enumerate() {
                    let m = messages.get(i).cloned().unwrap_or_default();
                    self.accepted.push((f.clone(), m));
                }
            }
            RecordKind::LeaseTaken {
                place,
                holder,
                taking,
            } => self.leases.push(LeaseNote {
                at,
                place: place.clone(),
                holder: holder.clone(),
                taking: taking.clone(),
            }),
            RecordKind::TaskOutput {
                task,
                stdout,
                stderr,
                ..
            } => {
                if let Some(t) = self.task(task) {
                    t.stdout.clone_from(stdout);
                    t.stderr.clone_from(stderr);
                }
            }
            RecordKind::WorkloadsNoted { task, snapshot, .. } => {
                if self.index.contains_key(&task.step) {
                    self.workloads.insert(task.step.clone(), snapshot.clone());
                } else {
                    self.unplaced += 1;
                }
            }
            RecordKind::CommandStarted { .. }
            | RecordKind::TransientEntered { .. }
            | RecordKind::TransientLeft { .. } => {}
        }
    }

    /// The task `id`, made on its first record; `None` (counted) when the plan has no such
    /// task.
    fn task(&mut self, id: &TaskId) -> Option<&mut TaskRun> {
        if let Some(&(s, t)) = self.tasks.get(id) {
            return Some(&mut self.steps[s][t]);
        }
        let Some(&s) = self.index.get(&id.step) else {
            self.unplaced += 1;
            return None;
        };
        let t = self.steps[s].len();
        self.steps[s].push(TaskRun::new(id.node.clone()));
        self.tasks.insert(id.clone(), (s, t));
        Some(&mut self.steps[s][t])
    }

    /// The tasks of step `i` the journal names, in the order it first named them.
    pub fn tasks(&self, i: usize) -> &[TaskRun] {
        self.steps.get(i).map_or(&[], Vec::as_slice)
    }

    /// Where step `i` of the plan is: its tasks' states summed (`expected`: how many tasks
    /// it has, its nodes or one).
    pub fn step_state(&self, i: usize, expected: usize) -> RunState {
        let tasks = self.tasks(i);
        let worst = [
            RunState::Failed,
            RunState::Interrupted,
            RunState::Running,
            RunState::Verifying,
            RunState::Retrying,
        ];
        for w in worst {
            if tasks.iter().any(|t| t.state == w) {
                return match w {
                    RunState::Verifying | RunState::Retrying => RunState::Running,
                    w => w,
                };
            }
        }
        let over = tasks.iter().filter(|t| t.state.is_over()).count();
        if over == 0 {
            RunState::NotStarted
        } else if over < expected.max(1) {
            RunState::Partial
        } else if tasks.iter().any(|t| t.state == RunState::Manual) {
            RunState::Manual
        } else if tasks.iter().all(|t| t.state == RunState::Skipped) {
            RunState::Skipped
        } else {
            RunState::Done
        }
    }

    /// When step `i` started and ended (`None` while a task of it runs), as its tasks'
    /// records say.
    pub fn step_times(&self, i: usize) -> Option<(Timestamp, Option<Timestamp>)> {
        let tasks = self.tasks(i);
        let start = tasks.iter().filter_map(|t| t.first_start).min()?;
        let running = tasks.iter().any(|t| t.end.is_none());
        let end = (!running)
            .then(|| tasks.iter().filter_map(|t| t.end).max())
            .flatten();
        Some((start, end))
    }

    /// When the run started (its first record).
    pub fn started(&self) -> Option<Timestamp> {
        self.started
    }

    /// The time of the latest record.
    pub fn last(&self) -> Option<Timestamp> {
        self.last
    }

    /// How long since the run started, at its latest record.
    pub fn elapsed(&self) -> SignedDuration {
        match (self.started, self.last) {
            (Some(a), Some(b)) => b.duration_since(a),
            _ => SignedDuration::ZERO,
        }
    }

    /// How many sessions the run had.
    pub fn sessions(&self) -> u32 {
        self.sessions
    }

    /// How the latest session ended; `None` while it goes on (or when its process died).
    pub fn outcome(&self) -> Option<&Finished> {
        let (at, f) = self.stops.last()?;
        (self.session_started.is_none_or(|s| *at >= s)).then_some(f)
    }

    /// How every session that ended did, with when.
    pub fn stops(&self) -> &[(Timestamp, Finished)] {
        &self.stops
    }

    /// The readiness findings accepted, with what each said.
    pub fn accepted(&self) -> &[(String, String)] {
        &self.accepted
    }

    /// The leases the sessions took.
    pub fn leases(&self) -> &[LeaseNote] {
        &self.leases
    }

    /// The latest workload snapshot each step journaled (a baseline step's, a regression
    /// gate's last evaluation).
    pub fn workloads(&self, step: &StepId) -> Option<&WorkloadSnapshot> {
        self.workloads.get(step)
    }

    /// Records that name a step or node the plan does not have.
    pub fn unplaced(&self) -> usize {
        self.unplaced
    }
}
