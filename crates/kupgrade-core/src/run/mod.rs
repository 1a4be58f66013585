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
use std::collections::BTreeSet;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::plan::{
    Action, Change, Executor, NodeExpectation, PreflightCheck, Presence, StepId, UpgradePlan,
};
use crate::ports::{CommandSpec, DrainOptions};
use crate::skew::SkewPolicy;
use crate::{ClusterState, KubeVersion, Node, NodeName};

mod event;
mod facts;
mod fingerprint;
mod record;
mod report;
#[cfg(test)]
mod tests;

pub use event::{Counts, Event, StepOutcome};
pub use fingerprint::fingerprint;
pub use record::{
    Baseline, FORMAT, Failure, FailureKind, Outcome, Record, RecordKind, Resolution, TaskEnd,
    TaskId, TaskResult, ViolationKey,
};
pub use report::{Difference, Finished, StopReason, StopReport};

use facts::{Layout, Verdict, View, same_release};

/// How a run behaves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// The most tasks in flight at once; `None`: the plan's `maxParallel` (every node of the
    /// largest step at once).
    pub max_parallel: Option<usize>,
    /// Retries of failed tasks that are safe to repeat.
    pub retry: RetryPolicy,
}

/// Retries with exponential backoff, for tasks that are safe to repeat and failures that
/// trying again may cure. Counted per session: a resume starts afresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per task per session, the first included (1: no retries).
    pub max_attempts: u32,
    /// Wait before the first retry.
    pub initial: Duration,
    /// Each further wait is this many times the one before.
    pub factor: u32,
    /// The longest wait.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial: Duration::from_secs(5),
            factor: 2,
            max: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The wait after the `failures`-th failure (1-based).
    ///
    /// ```
    /// use kupgrade_core::run::RetryPolicy;
    /// use std::time::Duration;
    /// let p = RetryPolicy::default();
    /// assert_eq!(p.delay(1), Duration::from_secs(5));
    /// assert_eq!(p.delay(2), Duration::from_secs(10));
    /// assert_eq!(p.delay(9), Duration::from_secs(60));
    /// ```
    pub fn delay(&self, failures: u32) -> Duration {
        let mut d = self.initial;
        for _ in 1..failures {
            d = d.saturating_mul(self.factor.max(1));
            if d >= self.max {
                return self.max;
            }
        }
        d.min(self.max)
    }
}

/// Work for the driver: one step on one node (or a cluster-wide step).
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    /// Which task.
    pub id: TaskId,
    /// The step's position in the plan.
    pub step_index: usize,
    /// The attempt, from 1 (to pass back in the [`Outcome`]).
    pub attempt: u32,
    /// What to do.
    pub work: Work,
    /// What the step does, in a few words.
    pub action: String,
    /// Give up (and report [`FailureKind::TimedOut`]) after this long.
    pub deadline: Option<Duration>,
    /// Safe to repeat.
    pub idempotent: bool,
}

/// What a task asks of the ports.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Work {
    /// Run these commands on the task's node, in order; each must succeed
    /// (`CommandRunner`).
    Commands {
        /// The commands.
        commands: Vec<CommandSpec>,
    },
    /// Cordon the node (`ClusterOperations::cordon`).
    Cordon,
    /// Drain the node (`ClusterOperations::drain`).
    Drain {
        /// How.
        options: DrainOptions,
    },
    /// Uncordon the node (`ClusterOperations::uncordon`).
    Uncordon,
    /// Wait until the node is Ready at `version` (`ClusterOperations::wait_ready`).
    WaitReady {
        /// The kubelet version expected.
        version: KubeVersion,
        /// For at most this long.
        timeout: Duration,
    },
    /// Wait until every node runs the kube-proxy DaemonSet's version (the driver watches
    /// `ClusterOperations::state`).
    WaitKubeProxyRollout {
        /// The DaemonSet's version, when known (otherwise: whatever the DaemonSet runs).
        version: Option<KubeVersion>,
        /// For at most this long.
        timeout: Duration,
    },
    /// Create the task's node like `template` at `version` (`NodeProvider::provision`).
    Provision {
        /// The node it replaces, as the cluster showed it.
        template: Box<Node>,
        /// The version it joins with.
        version: KubeVersion,
    },
    /// Remove the task's node (`NodeProvider::remove`).
    Remove,
}

impl Work {
    /// What the work does, in a few words (commands are listed by the driver).
    pub fn describe(&self) -> String {
        match self {
            Work::Commands { commands } => commands
                .iter()
                .map(CommandSpec::to_shell_line)
                .collect::<Vec<_>>()
                .join(" && "),
            Work::Cordon => "cordon".into(),
            Work::Drain { options } => format!(
                "drain (timeout {}s{}{}{})",
                options.timeout_seconds,
                if options.ignore_daemonsets {
                    ", ignore DaemonSets"
                } else {
                    ""
                },
                if options.delete_emptydir_data {
                    ", delete emptyDir data"
                } else {
                    ""
                },
                if options.force { ", force" } else { "" }
            ),
            Work::Uncordon => "uncordon".into(),
            Work::WaitReady { version, timeout } => {
                format!(
                    "wait until Ready at {version} (at most {}s)",
                    timeout.as_secs()
                )
            }
            Work::WaitKubeProxyRollout { version, timeout } => format!(
                "wait until kube-proxy {} runs on every node (at most {}s)",
                version
                    .as_ref()
                    .map_or("(the DaemonSet's version)".to_string(), ToString::to_string),
                timeout.as_secs()
            ),
            Work::Provision { template, version } => {
                format!("provision a node like {} at {version}", template.name)
            }
            Work::Remove => "remove the node".into(),
        }
    }
}

/// What [`Run::next`], [`Run::record`], [`Run::resolve`] and [`Run::cancel`] return: tasks
/// to start, journal records to append (before starting the tasks), and events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    /// Tasks to start now (only from [`Run::next`]).
    pub tasks: Vec<Task>,
    /// Records for the journal, in order.
    pub records: Vec<Record>,
    /// Events for watchers, in order.
    pub events: Vec<Event>,
}

/// Why a run could not be set up or resumed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A step depends on a step the plan does not have.
    #[error("step {step} depends on {depends_on}, which is not in the plan")]
    UnknownDependency {
        /// The step.
        step: StepId,
        /// The missing step.
        depends_on: StepId,
    },
    /// Steps depend on each other in a circle.
    #[error("step {step} depends, through other steps, on itself")]
    DependencyCycle {
        /// A step on the circle.
        step: StepId,
    },
    /// Two steps have the same id.
    #[error("the plan has two steps called {0}")]
    DuplicateStep(StepId),
    /// The journal belongs to another plan.
    #[error(
        "the journal belongs to another plan (journal {journal}, this plan {plan}): resume with the plan the run started with, or start a new journal"
    )]
    OtherPlan {
        /// The journal's plan fingerprint.
        journal: String,
        /// This plan's.
        plan: String,
    },
    /// The journal was written by a newer kupgrade.
    #[error(
        "journal record {record} has format {found}, newer than this kupgrade reads ({FORMAT}): resume with the kupgrade that wrote it"
    )]
    NewerFormat {
        /// The record (1-based).
        record: usize,
        /// Its format.
        found: u32,
    },
    /// The journal's records do not make sense.
    #[error("journal record {record}: {message}")]
    Malformed {
        /// The record (1-based).
        record: usize,
        /// What is wrong.
        message: String,
    },
}

/// Why [`Run::resolve`] refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// No such task in the plan.
    #[error("the plan has no task {0}")]
    UnknownTask(TaskId),
    /// The task is done already.
    #[error("task {0} is already done")]
    AlreadyDone(TaskId),
    /// The task is running.
    #[error("task {0} is running")]
    Running(TaskId),
    /// No step has this id.
    #[error("the plan has no step {0:?}")]
    NoSuchStep(String),
    /// The step acts on several nodes and none was named.
    #[error("step {step} acts on {nodes} nodes: name one, as in '{step} on NODE'")]
    WhichNode {
        /// The step.
        step: StepId,
        /// How many nodes it acts on.
        nodes: usize,
    },
}

/// Why [`Run::record`] refused an outcome.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("outcome for {task} (attempt {attempt}) does not match a running task")]
pub struct RecordError {
    /// The task named.
    pub task: TaskId,
    /// The attempt named.
    pub attempt: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unsure {
    InFlight,
    Failed,
    Interrupted,
}

impl fmt::Display for Unsure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unsure::InFlight => "was in flight when an earlier session stopped",
            Unsure::Failed => "failed in an earlier session",
            Unsure::Interrupted => "was interrupted in an earlier session",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TaskState {
    /// Not started, or to be run again.
    Pending,
    Running {
        since: Timestamp,
    },
    Retry {
        at: Timestamp,
    },
    Unsure(Unsure),
    Failed,
    Done,
}

#[derive(Clone, Debug)]
struct TaskRun {
    state: TaskState,
    attempts: u32,
    failures: u32,
}

#[derive(Clone, Debug)]
struct StepRun {
    tasks: Vec<TaskRun>,
    done: usize,
}

/// The execution state machine of one plan. See the [module documentation](self).
pub struct Run {
    plan: Arc<UpgradePlan>,
    policy: Arc<dyn SkewPolicy>,
    options: RunOptions,
    fingerprint: String,
    limit: usize,
    steps: Vec<StepRun>,
    index: HashMap<StepId, usize>,
    dependents: Vec<Vec<usize>>,
    deps: Vec<Vec<usize>>,
    waiting_on: Vec<usize>,
    ready: BTreeSet<usize>,
    steps_done: usize,
    tasks_total: usize,
    tasks_done: usize,
    in_flight: usize,
    startable: usize,
    retries: BTreeSet<(Timestamp, usize, usize)>,
    stalled: bool,
    busy: HashSet<NodeName>,
    /// Where each running task is (outcomes name tasks; steps may have thousands of nodes).
    running: HashMap<TaskId, (usize, usize)>,
    settling: HashSet<NodeName>,
    presence: HashMap<NodeName, Presence>,
    /// Bumped whenever `presence` changes.
    presence_gen: u64,
    /// The live cluster's node list, kept between reads.
    layout: Layout,
    baseline: Option<Baseline>,
    tolerated: HashSet<ViolationKey>,
    not_ready_ok: HashSet<NodeName>,
    session: u32,
    session_open: bool,
    stopping: Option<Finished>,
    finished: Option<Finished>,
    counts: Counts,
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("plan", &self.fingerprint)
            .field("session", &self.session)
            .field("tasks_done", &self.tasks_done)
            .field("tasks_total", &self.tasks_total)
            .field("in_flight", &self.in_flight)
            .field("finished", &self.finished)
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
        check_acyclic(&plan, &deps)?;
        let steps: Vec<StepRun> = plan
            .steps
            .iter()
            .map(|s| StepRun {
                tasks: vec![
                    TaskRun {
                        state: TaskState::Pending,
                        attempts: 0,
                        failures: 0,
                    };
                    s.nodes.len().max(1)
                ],
                done: 0,
            })
            .collect();
        let tasks_total = steps.iter().map(|s| s.tasks.len()).sum();
        let presence = plan
            .nodes
            .iter()
            .map(|n| {
                let p = if n.provisioned {
                    Presence::Absent
                } else {
                    Presence::Present
                };
                (n.name.clone(), p)
            })
            .collect();
        let limit = options.max_parallel.unwrap_or(plan.max_parallel).max(1);
        let mut run = Run {
            fingerprint: fingerprint(&plan),
            plan,
            policy,
            options,
            limit,
            steps,
            index,
            dependents,
            deps,
            waiting_on: Vec::new(),
            ready: BTreeSet::new(),
            steps_done: 0,
            tasks_total,
            tasks_done: 0,
            in_flight: 0,
            startable: 0,
            retries: BTreeSet::new(),
            stalled: false,
            busy: HashSet::new(),
            running: HashMap::new(),
            settling: HashSet::new(),
            presence,
            presence_gen: 0,
            layout: Layout::default(),
            baseline: None,
            tolerated: HashSet::new(),
            not_ready_ok: HashSet::new(),
            session: 0,
            session_open: false,
            stopping: None,
            finished: None,
            counts: Counts::default(),
        };
        run.recount();
        Ok(run)
    }

    /// Resumes a run of `plan` from the `records` of its journal (empty: a new run).
    pub fn resume(
        plan: Arc<UpgradePlan>,
        policy: Arc<dyn SkewPolicy>,
        options: RunOptions,
        records: &[Record],
    ) -> Result<Run, RunError> {
        let mut run = Run::new(plan, policy, options)?;
        for (i, r) in records.iter().enumerate() {
            run.replay(i + 1, r)?;
        }
        for s in &mut run.steps {
            for t in &mut s.tasks {
                if let TaskState::Running { .. } = t.state {
                    t.state = TaskState::Unsure(Unsure::InFlight);
                }
            }
        }
        run.recount();
        Ok(run)
    }

    fn replay(&mut self, no: usize, r: &Record) -> Result<(), RunError> {
        let malformed = |message: String| RunError::Malformed {
            record: no,
            message,
        };
        if r.v > FORMAT {
            return Err(RunError::NewerFormat {
                record: no,
                found: r.v,
            });
        }
        match &r.kind {
            RecordKind::RunStarted { plan, baseline, .. } => {
                if no != 1 {
                    return Err(malformed("run-started is not the first record".into()));
                }
                if *plan != self.fingerprint {
                    return Err(RunError::OtherPlan {
                        journal: plan.clone(),
                        plan: self.fingerprint.clone(),
                    });
                }
                self.set_baseline(baseline.clone());
                self.session = 1;
                return Ok(());
            }
            _ if no == 1 => {
                return Err(malformed(
                    "the journal does not start with a run-started record".into(),
                ));
            }
            RecordKind::SessionStarted { session } => self.session = *session,
            RecordKind::TaskStarted { task, attempt } => {
                let (si, ti) = self.locate(task).map_err(malformed)?;
                let t = &mut self.steps[si].tasks[ti];
                if t.state == TaskState::Done {
                    return Err(malformed(format!("{task} started again after it was done")));
                }
                t.state = TaskState::Running { since: r.at };
                t.attempts = t.attempts.max(*attempt);
                self.start_effects(si, ti);
            }
            RecordKind::TaskFinished { task, end, .. } => {
                let (si, ti) = self.locate(task).map_err(malformed)?;
                match end {
                    TaskEnd::Succeeded | TaskEnd::AlreadyDone { .. } | TaskEnd::Manual { .. } => {
                        self.replay_done(si, ti)
                    }
                    TaskEnd::Failed { .. } => {
                        self.steps[si].tasks[ti].state = TaskState::Unsure(Unsure::Failed)
                    }
                    TaskEnd::Interrupted => {
                        self.steps[si].tasks[ti].state = TaskState::Unsure(Unsure::Interrupted)
                    }
                }
            }
            RecordKind::Resolved { task, resolution } => {
                let (si, ti) = self.locate(task).map_err(malformed)?;
                match resolution {
                    Resolution::MarkDone => self.replay_done(si, ti),
                    Resolution::Retry => self.steps[si].tasks[ti].state = TaskState::Pending,
                }
            }
            RecordKind::Stopped { .. } => {}
        }
        Ok(())
    }

    fn replay_done(&mut self, si: usize, ti: usize) {
        if self.steps[si].tasks[ti].state != TaskState::Done {
            self.steps[si].tasks[ti].state = TaskState::Done;
            self.done_effects(si, ti);
        }
    }

    fn set_baseline(&mut self, baseline: Baseline) {
        self.tolerated = baseline.tolerated.iter().cloned().collect();
        self.not_ready_ok = baseline.not_ready.iter().cloned().collect();
        self.baseline = Some(baseline);
    }

    /// Recomputes every counter from the task states.
    fn recount(&mut self) {
        let n = self.steps.len();
        self.tasks_done = 0;
        self.steps_done = 0;
        self.startable = 0;
        self.retries.clear();
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
                match t.state {
                    TaskState::Pending | TaskState::Unsure(_) => self.startable += 1,
                    TaskState::Retry { at } => {
                        self.retries.insert((at, si, ti));
                    }
                    TaskState::Running { .. } => {
                        self.in_flight += 1;
                        let node = self.plan.steps[si].nodes.as_slice().get(ti).cloned();
                        if let Some(n) = &node {
                            self.busy.insert(n.clone());
                        }
                        let id = TaskId::new(self.plan.steps[si].id.clone(), node);
                        self.running.insert(id, (si, ti));
                    }
                    TaskState::Failed | TaskState::Done => {}
                }
            }
        }
    }

    fn locate(&self, task: &TaskId) -> Result<(usize, usize), String> {
        let si = *self
            .index
            .get(&task.step)
            .ok_or_else(|| format!("the plan has no step {}", task.step))?;
        let nodes = &self.plan.steps[si].nodes;
        let ti = match &task.node {
            None if nodes.is_empty() => 0,
            Some(n) => nodes
                .iter()
                .position(|m| m == n)
                .ok_or_else(|| format!("step {} does not act on node {n}", task.step))?,
            None => return Err(format!("step {} acts on nodes, none named", task.step)),
        };
        Ok((si, ti))
    }

    fn task_id(&self, si: usize, ti: usize) -> TaskId {
        let step = &self.plan.steps[si];
        TaskId::new(step.id.clone(), step.nodes.as_slice().get(ti).cloned())
    }

    // ---- accessors ------------------------------------------------------------------------

    /// The plan.
    pub fn plan(&self) -> &Arc<UpgradePlan> {
        &self.plan
    }

    /// The plan's fingerprint, as the journal records it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// How the session ended, once it has.
    pub fn finished(&self) -> Option<&Finished> {
        self.finished.as_ref()
    }

    /// True once the session has ended (no task in flight, nothing more to start).
    pub fn is_finished(&self) -> bool {
        self.finished.is_some()
    }

    /// Tasks in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Tasks done and tasks in the plan.
    pub fn progress(&self) -> (usize, usize) {
        (self.tasks_done, self.tasks_total)
    }

    /// What happened in this session so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// True when [`Run::next`] has something to do at `now`: call it with a fresh cluster
    /// state. False while every task that could start is waiting for a running one (or for
    /// [`Run::wake_at`]), so the driver reads the cluster only when it matters.
    pub fn wants_state(&self, now: Timestamp) -> bool {
        if self.finished.is_some() || self.stopping.is_some() {
            return false;
        }
        if !self.session_open {
            return true;
        }
        if self.in_flight >= self.limit || self.stalled {
            return false;
        }
        self.startable > 0 || self.retries.first().is_some_and(|r| r.0 <= now)
    }

    /// When a retry becomes due, if one waits.
    pub fn wake_at(&self) -> Option<Timestamp> {
        if self.finished.is_some() || self.stopping.is_some() {
            return None;
        }
        self.retries.first().map(|r| r.0)
    }

    // ---- the machine ----------------------------------------------------------------------

    /// Checks `state` (fresh from the cluster) and says which tasks start now.
    pub fn next(&mut self, state: &ClusterState, now: Timestamp) -> Output {
        let mut out = Output::default();
        if self.finished.is_some() {
            return out;
        }
        if !self.session_open {
            self.open_session(state, now, &mut out);
        }
        if self.stopping.is_none() {
            let policy = Arc::clone(&self.policy);
            let tolerated = std::mem::take(&mut self.tolerated);
            let mut layout = std::mem::take(&mut self.layout);
            layout.follow(state);
            let mut view = View::new(state, &*policy, &tolerated, &layout);
            self.start_tasks(&mut view, now, &mut out);
            let presence_checked = view.presence_checked;
            drop(view);
            layout.presence_ok = presence_checked;
            self.layout = layout;
            self.tolerated = tolerated;
        }
        self.settle(now, &mut out);
        out
    }

    fn open_session(&mut self, state: &ClusterState, now: Timestamp, out: &mut Output) {
        self.session_open = true;
        if self.baseline.is_none() {
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
            self.set_baseline(baseline.clone());
            self.session = 1;
            out.records.push(Record::new(
                now,
                RecordKind::RunStarted {
                    plan: self.fingerprint.clone(),
                    steps: self.plan.steps.len(),
                    baseline,
                },
            ));
        } else {
            self.session += 1;
            out.records.push(Record::new(
                now,
                RecordKind::SessionStarted {
                    session: self.session,
                },
            ));
        }
        out.events.push(Event::PlanStarted {
            at: now,
            target: self.plan.target.clone(),
            tasks: self.tasks_total,
            done: self.tasks_done,
            resumed: self.session > 1,
        });
    }

    fn start_tasks(&mut self, view: &mut View<'_>, now: Timestamp, out: &mut Output) {
        self.stalled = false;
        let mut globals_checked = false;
        let mut started_any = false;
        let mut skipped_busy = false;
        let mut cursor = 0;
        while let Some(&si) = self.ready.range(cursor..).next() {
            cursor = si + 1;
            for ti in 0..self.steps[si].tasks.len() {
                if self.stopping.is_some() {
                    return;
                }
                let state = self.steps[si].tasks[ti].state;
                match state {
                    TaskState::Pending | TaskState::Unsure(_) => {}
                    TaskState::Retry { at } if at <= now => {}
                    _ => continue,
                }
                if self.in_flight >= self.limit {
                    return;
                }
                let node = self.plan.steps[si].nodes.as_slice().get(ti).cloned();
                if node.as_ref().is_some_and(|n| self.busy.contains(n)) {
                    skipped_busy = true;
                    continue;
                }
                if !globals_checked {
                    if let Err(report) = self.check_globals(view) {
                        self.halt(*report);
                        return;
                    }
                    globals_checked = true;
                }
                if let TaskState::Unsure(why) = state {
                    match self.decide_unsure(si, ti, why, view) {
                        Decision::Done(evidence) => {
                            self.startable -= 1;
                            self.complete(si, ti, TaskEnd::AlreadyDone { evidence }, now, out);
                            started_any = true;
                            continue;
                        }
                        Decision::Rerun => {}
                        Decision::Halt(report) => {
                            self.halt(*report);
                            return;
                        }
                    }
                }
                if let Err(report) = self.check_pre(si, ti, view) {
                    self.halt(*report);
                    return;
                }
                match self.plan.steps[si].action.executor() {
                    Executor::Check => self.run_check(si, ti, view, now, out),
                    Executor::Operator => self.run_operator(si, ti, view, now, out),
                    Executor::Node | Executor::Cluster | Executor::Provider => {
                        match self.work(si, ti, view) {
                            Ok(work) => self.start(si, ti, work, now, out),
                            Err(report) => {
                                self.halt(*report);
                                return;
                            }
                        }
                    }
                }
                started_any = true;
            }
        }
        if !started_any && skipped_busy {
            self.stalled = true;
        }
    }

    /// Marks a task as started and hands it to the driver.
    fn start(&mut self, si: usize, ti: usize, work: Work, now: Timestamp, out: &mut Output) {
        let plan = Arc::clone(&self.plan);
        let step = &plan.steps[si];
        let id = self.task_id(si, ti);
        let t = &mut self.steps[si].tasks[ti];
        match t.state {
            TaskState::Retry { at } => {
                self.retries.remove(&(at, si, ti));
            }
            _ => self.startable -= 1,
        }
        t.attempts += 1;
        t.state = TaskState::Running { since: now };
        let attempt = t.attempts;
        self.in_flight += 1;
        if let Some(n) = &id.node {
            self.busy.insert(n.clone());
        }
        self.running.insert(id.clone(), (si, ti));
        self.start_effects(si, ti);
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
        let deadline = step.action.deadline(match &work {
            Work::Commands { commands } => commands,
            _ => &[],
        });
        out.tasks.push(Task {
            id,
            step_index: si,
            attempt,
            work,
            action: step.action.describe(),
            deadline,
            idempotent: step.idempotent,
        });
    }

    /// Ends a task decided in this call, without the driver: checks and operator steps.
    fn finish_inline(
        &mut self,
        si: usize,
        ti: usize,
        result: Result<TaskEnd, Box<StopReport>>,
        now: Timestamp,
        out: &mut Output,
    ) {
        let plan = Arc::clone(&self.plan);
        let step = &plan.steps[si];
        let id = self.task_id(si, ti);
        let t = &mut self.steps[si].tasks[ti];
        match t.state {
            TaskState::Retry { at } => {
                self.retries.remove(&(at, si, ti));
            }
            _ => self.startable -= 1,
        }
        t.attempts += 1;
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
        match result {
            Ok(end) => self.complete(si, ti, end, now, out),
            Err(report) => {
                self.steps[si].tasks[ti].state = TaskState::Failed;
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
                self.halt(*report);
            }
        }
    }

    /// Marks a task done, records it and moves the step (and the steps after it) along. The
    /// caller has already taken the task out of `startable`/`in_flight`.
    fn complete(&mut self, si: usize, ti: usize, end: TaskEnd, now: Timestamp, out: &mut Output) {
        let id = self.task_id(si, ti);
        let t = &mut self.steps[si].tasks[ti];
        let since = match t.state {
            TaskState::Running { since } => Some(since),
            _ => None,
        };
        t.state = TaskState::Done;
        let attempt = t.attempts;
        let outcome = match &end {
            TaskEnd::Succeeded => {
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
        let step = &self.plan.steps[si];
        if let (Some(node), true) = (&id.node, outcome == StepOutcome::Succeeded) {
            match &step.action {
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
        self.done_effects(si, ti);
        self.tasks_done += 1;
        self.steps[si].done += 1;
        if self.steps[si].done == self.steps[si].tasks.len() {
            self.step_done(si);
        }
    }

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
                            self.retries.insert((at, d, ti));
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// What starting a task means for its node's expected presence and readiness.
    fn start_effects(&mut self, si: usize, ti: usize) {
        self.expect(si, ti, |c| c.on_start());
    }

    /// What a task being done means for its node's expected presence and readiness.
    fn done_effects(&mut self, si: usize, ti: usize) {
        self.expect(si, ti, |c| c.on_done());
    }

    /// Takes on what the step's change (`when`: on start or once done) says of the task's node.
    fn expect(&mut self, si: usize, ti: usize, when: fn(&Change<'_>) -> NodeExpectation) {
        let step = &self.plan.steps[si];
        let Some(node) = step.nodes.as_slice().get(ti) else {
            return;
        };
        let expect = when(&step.action.change());
        match expect.settling {
            Some(true) => {
                self.settling.insert(node.clone());
            }
            Some(false) => {
                self.settling.remove(node);
            }
            None => {}
        }
        if let Some(p) = expect.presence {
            self.presence.insert(node.clone(), p);
            self.presence_gen += 1;
        }
    }

    fn halt(&mut self, report: StopReport) {
        if self.stopping.is_none() {
            self.stopping = Some(Finished::Halted(report));
        }
    }

    /// Ends the session once nothing is in flight.
    fn settle(&mut self, now: Timestamp, out: &mut Output) {
        if self.finished.is_some() || self.in_flight > 0 {
            return;
        }
        let outcome = match &self.stopping {
            Some(f) => f.clone(),
            None if self.steps_done == self.steps.len() => Finished::Completed,
            None => return,
        };
        if !self.session_open {
            // Stopped before it began (a cancellation): nothing to say.
            self.finished = Some(outcome);
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
            counts: self.counts,
        });
        self.finished = Some(outcome);
    }

    /// Takes the outcome of a task the driver ran.
    pub fn record(&mut self, outcome: Outcome, now: Timestamp) -> Result<Output, RecordError> {
        let bad = || RecordError {
            task: outcome.task.clone(),
            attempt: outcome.attempt,
        };
        let (si, ti) = *self.running.get(&outcome.task).ok_or_else(bad)?;
        let t = &self.steps[si].tasks[ti];
        let since = match t.state {
            TaskState::Running { since } if t.attempts == outcome.attempt => since,
            _ => return Err(bad()),
        };
        self.running.remove(&outcome.task);
        let mut out = Output::default();
        self.in_flight -= 1;
        self.stalled = false;
        if let Some(n) = &outcome.task.node {
            self.busy.remove(n);
        }
        let step = &self.plan.steps[si];
        let id = outcome.task;
        match outcome.result {
            TaskResult::Succeeded => {
                // `complete` does not touch `startable`; the task left it when it started.
                self.complete(si, ti, TaskEnd::Succeeded, now, &mut out);
            }
            TaskResult::Failed(failure) => {
                let t = &mut self.steps[si].tasks[ti];
                t.failures += 1;
                let retry = step.idempotent
                    && failure.retryable()
                    && self.stopping.is_none()
                    && t.failures < self.options.retry.max_attempts;
                let retry_at = retry.then(|| {
                    let d = self.options.retry.delay(t.failures);
                    now.saturating_add(d).unwrap_or(now)
                });
                out.records.push(Record::new(
                    now,
                    RecordKind::TaskFinished {
                        task: id.clone(),
                        attempt: outcome.attempt,
                        end: TaskEnd::Failed {
                            failure: failure.clone(),
                            retry_at,
                        },
                    },
                ));
                if let Some(at) = retry_at {
                    t.state = TaskState::Retry { at };
                    self.retries.insert((at, si, ti));
                    self.counts.retried += 1;
                    out.events.push(Event::StepRetrying {
                        at: now,
                        task: id,
                        attempt: outcome.attempt,
                        retry_at: at,
                        error: failure.to_string(),
                    });
                } else {
                    t.state = TaskState::Failed;
                    self.counts.failed += 1;
                    out.events.push(Event::StepFinished {
                        at: now,
                        task: id.clone(),
                        outcome: StepOutcome::Failed,
                        duration_ms: millis(now, since),
                    });
                    let report = self.failure_report(si, &id, &failure);
                    self.halt(report);
                }
            }
            TaskResult::Interrupted => {
                self.steps[si].tasks[ti].state = TaskState::Unsure(Unsure::Interrupted);
                self.counts.interrupted += 1;
                out.records.push(Record::new(
                    now,
                    RecordKind::TaskFinished {
                        task: id.clone(),
                        attempt: outcome.attempt,
                        end: TaskEnd::Interrupted,
                    },
                ));
                out.events.push(Event::StepFinished {
                    at: now,
                    task: id,
                    outcome: StepOutcome::Interrupted,
                    duration_ms: millis(now, since),
                });
                if self.stopping.is_none() {
                    self.stopping = Some(Finished::Cancelled);
                }
            }
        }
        self.settle(now, &mut out);
        Ok(out)
    }

    /// Stops starting tasks; the session ends ([`Finished::Cancelled`]) once the running ones
    /// have been recorded (as done, or as [`TaskResult::Interrupted`] when the driver aborts
    /// them).
    pub fn cancel(&mut self, now: Timestamp) -> Output {
        let mut out = Output::default();
        if self.finished.is_none() && self.stopping.is_none() {
            self.stopping = Some(Finished::Cancelled);
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
        let si = *self
            .index
            .get(&StepId(step.to_string()))
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
        self.locate(task)
            .is_ok_and(|(si, ti)| self.steps[si].tasks[ti].state == TaskState::Done)
    }

    /// True when an earlier session left the task unsure (in flight when it stopped, failed
    /// or interrupted) and no one has resolved it: [`Run::next`] checks its postconditions
    /// before it runs it again, and halts if it is not safe to repeat and they do not hold.
    pub fn is_unsure(&self, task: &TaskId) -> bool {
        self.locate(task)
            .is_ok_and(|(si, ti)| matches!(self.steps[si].tasks[ti].state, TaskState::Unsure(_)))
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
        let (si, ti) = self
            .locate(task)
            .map_err(|_| ResolveError::UnknownTask(task.clone()))?;
        match self.steps[si].tasks[ti].state {
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
        let t = &mut self.steps[si].tasks[ti];
        match resolution {
            Resolution::MarkDone => {
                t.state = TaskState::Done;
                self.done_effects(si, ti);
                self.recount();
            }
            Resolution::Retry => {
                t.state = TaskState::Pending;
                self.recount();
            }
        }
        Ok(out)
    }

    // ---- checks ---------------------------------------------------------------------------

    /// Checks that apply before any step: the policy, every node the plan expects present,
    /// and Ready unless the plan made it otherwise.
    fn check_globals(&self, view: &mut View<'_>) -> Result<(), Box<StopReport>> {
        let errors = view.policy_errors();
        if !errors.is_empty() {
            return Err(Box::new(StopReport {
                reason: StopReason::PolicyViolated,
                task: None,
                summary: format!(
                    "the live cluster violates the {} skew policy, so no further step is safe",
                    self.policy.name()
                ),
                differences: errors
                    .iter()
                    .take(20)
                    .map(|v| Difference {
                        node: v.node.clone(),
                        expected: format!("{} within {}", v.component, v.allowed),
                        found: format!("{} ({})", v.found, v.rule),
                    })
                    .collect(),
                advice: "find out what changed (a component upgraded or downgraded by hand?), bring the cluster back within the policy, then resume; if the change was meant, plan again from the live cluster and start a new run".into(),
            }));
        }
        // Every node the run expects is there: checked again only when the node list or the
        // expectations changed since the last check.
        let mut missing: Vec<&NodeName> = if view.presence_checked == Some(self.presence_gen) {
            Vec::new()
        } else {
            self.presence
                .iter()
                .filter(|(n, p)| **p == Presence::Present && !view.contains(n))
                .map(|(n, _)| n)
                .collect()
        };
        if !missing.is_empty() {
            missing.sort();
            return Err(Box::new(StopReport {
                reason: StopReason::Drift,
                task: None,
                summary: format!(
                    "{} node(s) the plan expects are missing from the cluster",
                    missing.len()
                ),
                differences: missing
                    .iter()
                    .take(20)
                    .map(|n| Difference {
                        node: Some((*n).clone()),
                        expected: "present".into(),
                        found: "absent".into(),
                    })
                    .collect(),
                advice: "find out why the nodes left (deleted, renamed?); if they are gone for good, plan again from the live cluster and start a new run; otherwise resume once they are back".into(),
            }));
        }
        view.presence_checked = Some(self.presence_gen);
        let mut not_ready: Vec<&NodeName> = view
            .state
            .nodes
            .iter()
            .filter(|n| {
                !n.ready
                    && self.presence.contains_key(&n.name)
                    && !self.settling.contains(&n.name)
                    && !self.not_ready_ok.contains(&n.name)
            })
            .map(|n| &n.name)
            .collect();
        if !not_ready.is_empty() {
            not_ready.sort();
            return Err(Box::new(StopReport {
                reason: StopReason::NodeNotReady,
                task: None,
                summary: format!(
                    "{} node(s) went NotReady outside the plan's steps",
                    not_ready.len()
                ),
                differences: not_ready
                    .iter()
                    .take(20)
                    .map(|n| Difference {
                        node: Some((*n).clone()),
                        expected: "Ready".into(),
                        found: "NotReady".into(),
                    })
                    .collect(),
                advice: "find out why (kubectl describe node), fix it, and resume once the nodes are Ready again".into(),
            }));
        }
        Ok(())
    }

    fn check_pre(&self, si: usize, ti: usize, view: &mut View<'_>) -> Result<(), Box<StopReport>> {
        let step = &self.plan.steps[si];
        let node = step.nodes.as_slice().get(ti);
        let mut diffs = Vec::new();
        let mut reason = StopReason::Drift;
        for fact in &step.pre {
            if let Verdict::Fails(found) = view.check(fact, node) {
                match fact {
                    crate::plan::Fact::Ready => reason = StopReason::NodeNotReady,
                    crate::plan::Fact::PolicyHolds => reason = StopReason::PolicyViolated,
                    _ => {}
                }
                diffs.push(Difference {
                    node: node.cloned(),
                    expected: fact.to_string(),
                    found,
                });
            }
        }
        if diffs.is_empty() {
            return Ok(());
        }
        let id = self.task_id(si, ti);
        Err(Box::new(StopReport {
            reason,
            summary: format!(
                "stopped before {id} ({}): the cluster does not match what the step expects",
                step.action.describe()
            ),
            task: Some(id),
            differences: diffs,
            advice: "someone or something changed the cluster outside this run: check the node(s) above; resume once the cluster matches again, or, if the change was meant (a node upgraded by hand), plan again from the live cluster and start a new run".into(),
        }))
    }

    fn decide_unsure(&self, si: usize, ti: usize, why: Unsure, view: &mut View<'_>) -> Decision {
        let step = &self.plan.steps[si];
        let node = step.nodes.as_slice().get(ti);
        let mut diffs = Vec::new();
        let mut evidence = Vec::new();
        let mut proven = true;
        for fact in step.post.iter().filter(|f| !step.pre.contains(f)) {
            match view.check(fact, node) {
                Verdict::Holds => evidence.push(fact.to_string()),
                Verdict::Fails(found) => {
                    proven = false;
                    diffs.push(Difference {
                        node: node.cloned(),
                        expected: fact.to_string(),
                        found,
                    });
                }
                Verdict::Unknown(why) => {
                    proven = false;
                    diffs.push(Difference {
                        node: node.cloned(),
                        expected: fact.to_string(),
                        found: format!("unknown ({why})"),
                    });
                }
            }
        }
        if proven && !evidence.is_empty() {
            return Decision::Done(evidence);
        }
        if step.idempotent {
            return Decision::Rerun;
        }
        let id = self.task_id(si, ti);
        Decision::Halt(Box::new(StopReport {
            reason: StopReason::Unsure,
            summary: format!(
                "{id} ({}) {why}; it is not safe to repeat, and the cluster does not show that it happened",
                step.action.describe()
            ),
            task: Some(id.clone()),
            differences: diffs,
            advice: format!(
                "check whether it happened (for a provisioned node: does its machine exist?). If it did, mark it done; if it did not, tell the run to retry it; then resume (kupgrade's apply example: --mark-done '{id}' or --retry '{id}')"
            ),
        }))
    }

    fn run_check(
        &mut self,
        si: usize,
        ti: usize,
        view: &mut View<'_>,
        now: Timestamp,
        out: &mut Output,
    ) {
        let step = &self.plan.steps[si];
        let node = step.nodes.as_slice().get(ti);
        let mut diffs = Vec::new();
        let mut reason = StopReason::Drift;
        if let Action::Preflight { checks } = &step.action {
            for c in checks {
                match c {
                    PreflightCheck::NodesReady => {
                        for n in view.state.nodes.iter().filter(|n| !n.ready) {
                            if !self.not_ready_ok.contains(&n.name) {
                                reason = StopReason::NodeNotReady;
                                diffs.push(Difference {
                                    node: Some(n.name.clone()),
                                    expected: "Ready".into(),
                                    found: "NotReady".into(),
                                });
                            }
                        }
                    }
                    // Made on the model by the planner: the policy is checked below as a
                    // postcondition; the target's support and kubeadm's verdict depend on the
                    // plan's date and versions, not on the live cluster.
                    PreflightCheck::PolicyHolds { .. }
                    | PreflightCheck::TargetSupported { .. }
                    | PreflightCheck::KubeadmVerdict { .. } => {}
                }
            }
        }
        if let Action::Verify { version } = &step.action {
            for n in &view.state.nodes {
                if self.presence.get(&n.name) == Some(&Presence::Absent) {
                    continue;
                }
                match n.kubelet() {
                    Some(v) if same_release(v, version) => {}
                    found => diffs.push(Difference {
                        node: Some(n.name.clone()),
                        expected: format!("kubelet is {version}"),
                        found: found
                            .map_or("no kubelet version".into(), |v| format!("kubelet is {v}")),
                    }),
                }
            }
        }
        for fact in &step.post {
            if let Verdict::Fails(found) = view.check(fact, node) {
                if *fact == crate::plan::Fact::PolicyHolds {
                    reason = StopReason::PolicyViolated;
                }
                diffs.push(Difference {
                    node: node.cloned(),
                    expected: fact.to_string(),
                    found,
                });
            }
        }
        let id = self.task_id(si, ti);
        let result = if diffs.is_empty() {
            Ok(TaskEnd::Succeeded)
        } else {
            Err(Box::new(StopReport {
                reason,
                summary: format!("{id} ({}) failed", step.action.describe()),
                task: Some(id),
                differences: diffs,
                advice: "fix what differs, then resume (the check runs again)".into(),
            }))
        };
        self.finish_inline(si, ti, result, now, out);
    }

    fn run_operator(
        &mut self,
        si: usize,
        ti: usize,
        view: &mut View<'_>,
        now: Timestamp,
        out: &mut Output,
    ) {
        let step = &self.plan.steps[si];
        let node = step.nodes.as_slice().get(ti);
        let instructions = format!("{}: {}", step.action.describe(), step.reason);
        let mut unknown = false;
        let mut diffs = Vec::new();
        for fact in &step.post {
            match view.check(fact, node) {
                Verdict::Holds => {}
                Verdict::Unknown(_) => unknown = true,
                Verdict::Fails(found) => diffs.push(Difference {
                    node: node.cloned(),
                    expected: fact.to_string(),
                    found,
                }),
            }
        }
        let id = self.task_id(si, ti);
        let result = if !diffs.is_empty() {
            Err(Box::new(StopReport {
                reason: StopReason::OperatorStep,
                summary: format!("{id} needs you: {}", step.action.describe()),
                task: Some(id),
                differences: diffs,
                advice: format!("{instructions}; then resume"),
            }))
        } else if unknown {
            Ok(TaskEnd::Manual { instructions })
        } else {
            Ok(TaskEnd::AlreadyDone {
                evidence: step.post.iter().map(ToString::to_string).collect(),
            })
        };
        self.finish_inline(si, ti, result, now, out);
    }

    /// The work of a node, cluster or provider task.
    fn work(&self, si: usize, ti: usize, view: &View<'_>) -> Result<Work, Box<StopReport>> {
        let step = &self.plan.steps[si];
        let id = self.task_id(si, ti);
        let node = id.node.clone();
        let manual = |what: String| {
            Box::new(StopReport {
                reason: StopReason::ManualStep,
                summary: format!(
                    "{id} ({}) has no commands kupgrade can run here",
                    step.action.describe()
                ),
                task: Some(id.clone()),
                differences: Vec::new(),
                advice: format!(
                    "{what}; then mark it done and resume (kupgrade's apply example: --mark-done '{id}')"
                ),
            })
        };
        Ok(match &step.action {
            Action::Cordon => Work::Cordon,
            Action::Uncordon => Work::Uncordon,
            Action::Drain { options } => Work::Drain {
                options: options.clone(),
            },
            Action::WaitReady {
                version,
                timeout_seconds,
            } => Work::WaitReady {
                version: version.clone(),
                timeout: Duration::from_secs(*timeout_seconds),
            },
            Action::RemoveNodes => Work::Remove,
            Action::WaitKubeProxyRollout {
                version,
                timeout_seconds,
            } => Work::WaitKubeProxyRollout {
                version: version.clone(),
                timeout: Duration::from_secs(*timeout_seconds),
            },
            Action::ProvisionNodes { version, templates } => {
                let Some(template) = templates.as_slice().get(ti) else {
                    return Err(manual(format!(
                        "the plan names no template for node {}",
                        node.as_ref().map(NodeName::as_str).unwrap_or("?")
                    )));
                };
                let Some(t) = view.node(template) else {
                    return Err(Box::new(StopReport {
                        reason: StopReason::Drift,
                        summary: format!(
                            "stopped before {id}: node {template}, which the new node copies, is missing"
                        ),
                        task: Some(id.clone()),
                        differences: vec![Difference {
                            node: Some(template.clone()),
                            expected: "present".into(),
                            found: "absent".into(),
                        }],
                        advice: "plan again from the live cluster and start a new run".into(),
                    }));
                };
                Work::Provision {
                    template: Box::new(t.clone()),
                    version: version.clone(),
                }
            }
            _ if step.action.executor() != Executor::Node => {
                // An action this run does not know how to carry out (a newer plan format).
                return Err(manual(format!(
                    "this version of kupgrade's run cannot carry out `{}`: do it by hand",
                    step.action.describe()
                )));
            }
            _ => {
                let Some(name) = &node else {
                    return Err(manual("the step names no node".into()));
                };
                let Some(pn) = self.plan.node(name.as_str()) else {
                    return Err(manual(format!(
                        "node {name} is not in the plan's node list"
                    )));
                };
                match step.commands.iter().find(|c| c.os == pn.os) {
                    Some(c) if c.manual.is_some() => {
                        return Err(manual(format!(
                            "on {name}: {}",
                            c.manual.as_deref().unwrap_or_default()
                        )));
                    }
                    Some(c) => Work::Commands {
                        commands: c.commands.clone(),
                    },
                    None => {
                        return Err(manual(format!(
                            "the plan has no commands for {name}'s operating system ({})",
                            pn.os
                        )));
                    }
                }
            }
        })
    }

    fn failure_report(&self, si: usize, id: &TaskId, failure: &Failure) -> StopReport {
        let step = &self.plan.steps[si];
        let mut advice = String::new();
        if let Some(c) = &failure.command {
            advice.push_str(&format!("the command was `{c}`. "));
        }
        advice.push_str(if step.idempotent {
            "fix the cause, then resume: the step is safe to repeat and runs again"
        } else {
            "it is not safe to repeat: check whether it took effect, then resume (the run checks its postcondition and asks you if it cannot tell)"
        });
        StopReport {
            reason: StopReason::StepFailed,
            task: Some(id.clone()),
            summary: format!("{id} ({}) failed: {failure}", step.action.describe()),
            differences: Vec::new(),
            advice,
        }
    }
}

enum Decision {
    Done(Vec<String>),
    Rerun,
    Halt(Box<StopReport>),
}

fn millis(now: Timestamp, since: Timestamp) -> u64 {
    u64::try_from(now.duration_since(since).as_millis()).unwrap_or(0)
}

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
