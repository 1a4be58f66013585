//! The async driver: moves data between the run state machine ([`kupgrade_core::run::Run`])
//! and the ports, on tokio.
//!
//! The driver decides nothing about the upgrade. In a loop it reads the cluster when the
//! machine wants to start something ([`Run::wants_state`]), hands the state to [`Run::next`],
//! appends the returned records to the journal (each durably, before any task starts), and
//! carries the tasks out concurrently through the ports:
//!
//! - node commands through a [`CommandRunner`], one after the other on each node, their output
//!   streamed as [`Event::CommandOutput`];
//! - cordon, drain, uncordon and waits through [`ClusterOperations`];
//! - provisioning and removal through a [`NodeProvider`].
//!
//! **Provisioning.** A plan that still has nodes to create or remove (the replace strategy)
//! is refused before anything runs when the driver has no provider
//! ([`DriverError::NoProvider`]). Creating a node is not safe to repeat: when an earlier
//! session left a creation unsure (it crashed, or the create failed), the driver asks the
//! provider whether the machine exists ([`NodeProvider::find`]) before the run decides: no
//! machine, and the node is created again; a machine, and the driver waits a while
//! ([`Driver::join_wait`]) for the node to join, then the run checks that it did; no
//! answer, and the run halts and asks the operator unless the cluster shows the node.
//!
//! Each task runs in a `tracing` span (`task` with `step`, `node`, `attempt`) and under its
//! deadline; its outcome goes back to the machine ([`Run::record`]), which decides about
//! retries (with backoff, only for steps that are safe to repeat; the driver sleeps until
//! [`Run::wake_at`]) and halts.
//!
//! **Stopping.** A [`StopHandle`] asks the run to stop: [`StopHandle::finish_current`] lets
//! the running tasks end and starts nothing more; [`StopHandle::abort`] drops them at once
//! (local and SSH runners kill the commands) and records them as interrupted. Either way the
//! journal stays consistent: a later session checks interrupted tasks before running them
//! again.
//!
//! **Lifetimes.** Each command reports its handle (a process group, a pod) once it runs, and
//! the driver journals it; with [`Driver::node_locks`] each command holds a node-side lock
//! named by the plan and the task, so no two copies of a step overlap on a node. On resume,
//! before anything is decided, a command an earlier session left running is looked for and
//! waited for or stopped ([`SurvivorPolicy`]); one that does not go away halts the run.
//!
//! **Dry run.** With [`Driver::dry_run`], the driver reads the cluster once and then touches
//! nothing: it walks the plan through the machine against the planner's own model of each
//! step's effect, emits [`Event::WouldRun`] for every command and operation, and writes no
//! journal records.
//!
//! ```
//! use std::sync::Arc;
//! use kupgrade_core::plan::PlanRequest;
//! use kupgrade_core::run::{Run, RunOptions};
//! use kupgrade_core::skew::UpstreamPolicy;
//! use kupgrade_exec::driver::Driver;
//! use kupgrade_exec::sim::SimCluster;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let text = r#"
//! addons: { kube-proxy: v1.29.10, coredns: v1.11.1 }
//! nodes:
//!   - name: cp-1
//!     roles: [control-plane]
//!     versions: { kubelet: v1.29.10, kubeadm: v1.29.10, kubectl: v1.29.10,
//!                 kube-apiserver: v1.29.10, kube-controller-manager: v1.29.10,
//!                 kube-scheduler: v1.29.10, etcd: 3.5.10-0 }
//!   - name: w-1
//!     versions: { kubelet: v1.29.10, kubeadm: v1.29.10, kubectl: v1.29.10 }
//! "#;
//! let cluster = kupgrade_core::inventory::parse(text, "cluster.yaml")?;
//! let plan = PlanRequest::new("1.30".parse()?, jiff::civil::date(2025, 3, 1)).plan(&cluster)?;
//! let sim = Arc::new(SimCluster::new(cluster));
//! let mut run = Run::new(Arc::new(plan), Arc::new(UpstreamPolicy::new()), RunOptions::default())?;
//! let mut journal = Vec::new(); // or a kupgrade_exec::Journal file
//! let outcome = Driver::new(sim.clone(), sim.clone()).drive(&mut run, &mut journal).await?;
//! assert!(outcome.is_completed());
//! assert!(sim.cluster().nodes.iter().all(|n| n.kubelet().unwrap().minor().to_string() == "1.30"));
//! # Ok(()) }
//! ```
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use jiff::Timestamp;
use kupgrade_core::plan::Simulation;
use kupgrade_core::ports::{
    ClusterOperations, CommandRunner, HandleSink, LineSink, NodeProvider, OpsError, RunnerError,
    Tracking,
};
use kupgrade_core::run::{
    Event, Failure, FailureKind, Finished, Outcome, Output, Record, Run, Task, TaskId, TaskResult,
    Work,
};
use kupgrade_core::{ClusterState, NodeName};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::journal::{Journal, JournalError};

mod lifetimes;

pub use lifetimes::{NodeLocks, SurvivorPolicy};
use lifetimes::{Started, StartedTx};
mod provision;

pub use provision::provider_needed;

tokio::task_local! {
    static CURRENT_TASK: TaskId;
}

/// The run task the calling code is carrying out, when called (directly or not) from a task
/// the [`Driver`] runs. Backends can use it to label what they log; the simulated cluster
/// records it in its history.
pub fn current_task() -> Option<TaskId> {
    CURRENT_TASK.try_with(Clone::clone).ok()
}

/// Where the driver writes journal records. Each append must be durable when it returns.
pub trait JournalSink: Send {
    /// Appends one record.
    fn append(&mut self, record: &Record) -> Result<(), JournalError>;
}

impl JournalSink for Journal<Record> {
    fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        Journal::append(self, record)
    }
}

/// In memory (tests, benches).
impl JournalSink for Vec<Record> {
    fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        self.push(record.clone());
        Ok(())
    }
}

/// A sink that keeps nothing (dry runs, throwaway runs).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoJournal;

impl JournalSink for NoJournal {
    fn append(&mut self, _: &Record) -> Result<(), JournalError> {
        Ok(())
    }
}

/// What a [`StopHandle`] asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Keep going.
    Run,
    /// Let the running tasks end, start nothing more.
    FinishCurrent,
    /// Abort the running tasks now.
    Abort,
}

/// Asks a running [`Driver`] to stop (from a Ctrl-C handler, say). Cheap to clone.
#[derive(Clone, Debug)]
pub struct StopHandle(Arc<watch::Sender<Stop>>);

impl StopHandle {
    /// Let the running tasks end and start nothing more.
    pub fn finish_current(&self) {
        self.0.send_if_modified(|s| {
            let change = *s == Stop::Run;
            if change {
                *s = Stop::FinishCurrent;
            }
            change
        });
    }

    /// Abort the running tasks now.
    pub fn abort(&self) {
        self.0.send_replace(Stop::Abort);
    }

    /// What was asked so far.
    pub fn requested(&self) -> Stop {
        *self.0.borrow()
    }
}

/// The driver's side of a [`StopHandle`].
#[derive(Clone, Debug)]
pub struct StopSignal(watch::Receiver<Stop>);

/// A connected [`StopHandle`] and [`StopSignal`].
pub fn stop_channel() -> (StopHandle, StopSignal) {
    let (tx, rx) = watch::channel(Stop::Run);
    (StopHandle(Arc::new(tx)), StopSignal(rx))
}

/// Why the driver gave up (as opposed to the run halting, which is a [`Finished`] value).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// A journal record could not be written; nothing was started after it.
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    /// The cluster's state could not be read (after retries).
    #[error("cannot read the cluster's state: {0}")]
    State(#[source] OpsError),
    /// The plan creates or removes nodes and the driver has no [`NodeProvider`]
    /// ([`Driver::provider`]); nothing was run and nothing journaled.
    #[error(
        "the plan {what}, and no node provider is configured (the replace strategy needs one): \
         nothing was run. Give one \
         (Driver::provider; kupgrade's apply example: --provider-create CMD --provider-remove CMD), \
         or plan with the in-place strategy"
    )]
    NoProvider {
        /// What the plan does that needs one.
        what: String,
    },
    /// The machine is waiting for nothing: a bug.
    #[error("internal error: the run is stuck with nothing to wait for ({0})")]
    Stuck(String),
}

/// How long a session waits, by default, for a node the provider finds half made to join
/// ([`Driver::join_wait`]): 10 minutes.
pub const DEFAULT_JOIN_WAIT: Duration = Duration::from_secs(600);

/// Carries a [`Run`] out through the ports. See the [module documentation](self).
#[derive(Clone)]
pub struct Driver {
    runner: Arc<dyn CommandRunner>,
    ops: Arc<dyn ClusterOperations>,
    provider: Option<Arc<dyn NodeProvider>>,
    events: Option<mpsc::UnboundedSender<Event>>,
    stop: Option<StopSignal>,
    dry_run: bool,
    state_retries: u32,
    locks: Option<NodeLocks>,
    survivors: SurvivorPolicy,
    join_wait: Duration,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("provider", &self.provider.is_some())
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

type Done = (TaskId, u32, TaskResult);

impl Driver {
    /// A driver running node commands through `runner` and cluster operations through `ops`.
    pub fn new(runner: Arc<dyn CommandRunner>, ops: Arc<dyn ClusterOperations>) -> Self {
        Driver {
            runner,
            ops,
            provider: None,
            events: None,
            stop: None,
            dry_run: false,
            state_retries: 3,
            locks: None,
            survivors: SurvivorPolicy::default(),
            join_wait: DEFAULT_JOIN_WAIT,
        }
    }

    /// Provisions and removes nodes through `provider` (the replace strategy).
    pub fn provider(mut self, provider: Arc<dyn NodeProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// How long to wait, at the start of a session, for a node whose creation an earlier
    /// session left unsure, and whose machine the provider finds, to join and become Ready
    /// (default [`DEFAULT_JOIN_WAIT`]).
    pub fn join_wait(mut self, wait: Duration) -> Self {
        self.join_wait = wait;
        self
    }

    /// Sends every event to `events`.
    pub fn events(mut self, events: mpsc::UnboundedSender<Event>) -> Self {
        self.events = Some(events);
        self
    }

    /// Stops when `signal` says so.
    pub fn stop_on(mut self, signal: StopSignal) -> Self {
        self.stop = Some(signal);
        self
    }

    /// Runs every command under a node-side lock (the runner must support them: the local, SSH
    /// and pod runners do; others fail the task with `Unsupported`).
    pub fn node_locks(mut self, locks: NodeLocks) -> Self {
        self.locks = Some(locks);
        self
    }

    /// What to do about a command an earlier session left running (default: wait up to 40
    /// minutes).
    pub fn on_survivor(mut self, policy: SurvivorPolicy) -> Self {
        self.survivors = policy;
        self
    }

    /// Emits what would be done instead of doing it.
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }

    fn emit(&self, events: Vec<Event>) {
        if let Some(tx) = &self.events {
            for e in events {
                // A watcher that went away does not stop the upgrade.
                let _ = tx.send(e);
            }
        }
    }

    /// Appends the records, then emits the events; returns the tasks.
    fn take(&self, out: Output, journal: &mut dyn JournalSink) -> Result<Vec<Task>, DriverError> {
        if !self.dry_run {
            for r in &out.records {
                journal.append(r)?;
            }
        }
        self.emit(out.events);
        Ok(out.tasks)
    }

    async fn read_state(&self) -> Result<ClusterState, OpsError> {
        let mut wait = Duration::from_secs(2);
        let mut attempt = 1;
        loop {
            match self.ops.state().await {
                Ok(s) => return Ok(s),
                Err(e) if attempt >= self.state_retries => return Err(e),
                Err(e) => {
                    tracing::warn!(
                        "reading the cluster's state failed ({e}); trying again in {wait:?}"
                    );
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
            }
        }
    }

    /// Runs `run` until its session finishes (completed, halted or stopped), journaling to
    /// `journal`.
    pub async fn drive(
        &self,
        run: &mut Run,
        journal: &mut dyn JournalSink,
    ) -> Result<Finished, DriverError> {
        let span = tracing::info_span!("run", plan = %run.fingerprint(), dry_run = self.dry_run);
        self.drive_inner(run, journal).instrument(span).await
    }

    async fn drive_inner(
        &self,
        run: &mut Run,
        journal: &mut dyn JournalSink,
    ) -> Result<Finished, DriverError> {
        self.check_provider(run)?;
        let clock = Clock::start();
        if !self.dry_run {
            self.look_before_creating(run, journal, clock.now()).await?;
        }
        let mut model = if self.dry_run {
            Some(Simulation::new(
                self.read_state().await.map_err(DriverError::State)?,
            ))
        } else {
            None
        };
        if model.is_none() {
            self.settle_survivors(run, &clock, journal).await?;
        }
        let (started_tx, mut started_rx) = mpsc::unbounded_channel::<Started>();
        let fingerprint = run.fingerprint().to_string();
        let mut stop = self.stop.clone();
        let mut stopping = Stop::Run;
        let mut running: HashMap<TaskId, u32> = HashMap::new();
        let mut inflight = FuturesUnordered::new();
        let mut failure: Option<DriverError> = None;
        loop {
            // Stop requests.
            let asked = stop.as_ref().map_or(Stop::Run, |s| *s.0.borrow());
            if asked != stopping && asked != Stop::Run {
                if stopping == Stop::Run {
                    tracing::info!("stop requested: starting nothing more");
                    let out = run.cancel(clock.now());
                    self.take(out, journal)?;
                }
                if asked == Stop::Abort {
                    tracing::warn!("abort requested: interrupting {} task(s)", running.len());
                    inflight = FuturesUnordered::new();
                    let mut ids: Vec<(TaskId, u32)> = running.drain().collect();
                    ids.sort();
                    for (task, attempt) in ids {
                        let out = run
                            .record(
                                Outcome {
                                    task,
                                    attempt,
                                    result: TaskResult::Interrupted,
                                },
                                clock.now(),
                            )
                            .map_err(|e| DriverError::Stuck(e.to_string()))?;
                        self.take(out, journal)?;
                    }
                    // Tasks whose postconditions were being checked stay so in the journal:
                    // a resume checks them.
                    let out = run.abort(clock.now());
                    self.take(out, journal)?;
                }
                stopping = asked;
            }
            if run.is_finished() {
                break;
            }
            let now = clock.now();
            if failure.is_none() && run.wants_state(now) {
                let state = match &model {
                    Some(m) => Ok(m.state().clone()),
                    None => self.read_state().await,
                };
                match state {
                    Ok(state) => {
                        let out = run.next(&state, clock.now());
                        for task in self.take(out, journal)? {
                            running.insert(task.id.clone(), task.attempt);
                            if let Some(m) = &mut model {
                                let r = self.pretend(run, m, &task);
                                inflight
                                    .push(futures::future::Either::Left(futures::future::ready(r)));
                            } else {
                                inflight.push(futures::future::Either::Right(Box::pin(
                                    self.execute(task, &fingerprint, started_tx.clone()),
                                )));
                            }
                        }
                    }
                    Err(e) => {
                        // Stop cleanly: let the running tasks end and be recorded.
                        let out = run.cancel(clock.now());
                        self.take(out, journal)?;
                        failure = Some(DriverError::State(e));
                    }
                }
                if run.is_finished() {
                    break;
                }
            }
            if inflight.is_empty() && failure.is_some() {
                break;
            }
            let wake = run.wake_at().map(|t| clock.instant(t));
            if inflight.is_empty() && wake.is_none() && !run.wants_state(clock.now()) {
                if run.is_finished() {
                    break;
                }
                return Err(DriverError::Stuck(format!("{run:?}")));
            }
            let changed = async {
                match &mut stop {
                    Some(s) => {
                        if s.0.changed().await.is_err() {
                            std::future::pending::<()>().await
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                done = inflight.next(), if !inflight.is_empty() => {
                    if let Some((task, attempt, result)) = done {
                        running.remove(&task);
                        let out = run
                            .record(Outcome { task, attempt, result }, clock.now())
                            .map_err(|e| DriverError::Stuck(e.to_string()))?;
                        self.take(out, journal)?;
                    }
                }
                Some(started) = started_rx.recv() => {
                    self.command_started(run, started, &clock, journal)?;
                }
                _ = sleep_until(wake), if wake.is_some() => {}
                _ = changed => {}
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(run.finished().cloned().unwrap_or(Finished::Cancelled))
    }

    /// Dry run: what the task would do, and its effect on the model.
    fn pretend(&self, run: &Run, model: &mut Simulation, task: &Task) -> Done {
        let what: Vec<String> = match &task.work {
            Work::Commands { commands } => commands.iter().map(|c| c.to_shell_line()).collect(),
            w => vec![w.describe()],
        };
        self.emit(
            what.into_iter()
                .map(|what| Event::WouldRun {
                    task: task.id.clone(),
                    what,
                })
                .collect(),
        );
        let step = &run.plan().steps[task.step_index];
        if let Err(e) = model.apply(&step.on_node(task.id.node.as_ref())) {
            tracing::debug!("dry run: the model cannot apply {}: {e}", task.id);
        }
        (task.id.clone(), task.attempt, TaskResult::Succeeded)
    }

    /// Carries one task out.
    async fn execute(&self, task: Task, fingerprint: &str, handles: StartedTx) -> Done {
        let id = task.id.clone();
        let span = tracing::info_span!(
            "task",
            step = %id.step,
            node = id.node.as_ref().map(NodeName::as_str).unwrap_or("-"),
            attempt = task.attempt,
        );
        let work = async {
            tracing::info!(action = %task.action, "started");
            let d = task.deadline;
            let result =
                match tokio::time::timeout(d, self.work(&task, &fingerprint, &handles)).await {
                    Ok(r) => r,
                    Err(_) => Err(Failure::new(
                        FailureKind::TimedOut,
                        format!("gave up after {}s", d.as_secs()),
                    )),
                };
            match &result {
                Ok(()) => tracing::info!("succeeded"),
                Err(f) => tracing::warn!(kind = ?f.kind, "failed: {f}"),
            }
            result
        };
        let result = CURRENT_TASK.scope(id.clone(), work).instrument(span).await;
        let result = match result {
            Ok(()) => TaskResult::Succeeded,
            Err(f) => TaskResult::Failed(f),
        };
        (id, task.attempt, result)
    }

    async fn work(
        &self,
        task: &Task,
        fingerprint: &str,
        handles: &StartedTx,
    ) -> Result<(), Failure> {
        let id = &task.id;
        let node = || {
            id.node
                .clone()
                .ok_or_else(|| Failure::new(FailureKind::Other, format!("{id} names no node")))
        };
        // What a task does is only written out when someone listens.
        let started = |command: &dyn Fn() -> String| {
            if self.events.is_some() {
                self.emit(vec![Event::CommandStarted {
                    task: id.clone(),
                    command: command(),
                }])
            }
        };
        let output = |line: String| {
            self.emit(vec![Event::CommandOutput {
                task: id.clone(),
                stream: kupgrade_core::ports::Stream::Stdout,
                line,
            }])
        };
        match &task.work {
            Work::Commands { commands } => {
                let node = node()?;
                for (n, spec) in commands.iter().enumerate() {
                    started(&|| spec.to_shell_line());
                    let (tx, at) = (handles.clone(), (id.clone(), task.attempt, n));
                    let mut tracking = Tracking::new().started(HandleSink::new(move |h| {
                        let _ = tx.send((at.0.clone(), at.1, at.2, h));
                    }));
                    if let Some(locks) = &self.locks {
                        tracking = tracking.lock(locks.for_task(fingerprint, id));
                    }
                    let sink = match &self.events {
                        Some(tx) => {
                            let tx = tx.clone();
                            let id = id.clone();
                            LineSink::new(move |stream, text| {
                                let _ = tx.send(Event::CommandOutput {
                                    task: id.clone(),
                                    stream,
                                    line: text.to_string(),
                                });
                            })
                        }
                        None => LineSink::none(),
                    };
                    match self.runner.run_tracked(&node, spec, &sink, &tracking).await {
                        Ok(out) if out.status.success() => {}
                        Ok(out) => {
                            let line = spec.to_shell_line();
                            return Err(Failure::new(
                                FailureKind::CommandFailed,
                                format!("`{line}` on {node} ended with {}", out.status),
                            )
                            .with_command(line)
                            .with_stderr_tail(out.stderr_tail(5)));
                        }
                        Err(e) => return Err(runner_failure(e).with_command(spec.to_shell_line())),
                    }
                }
                Ok(())
            }
            Work::Cordon => {
                let node = node()?;
                started(&|| task.work.describe());
                self.ops.cordon(&node).await.map_err(ops_failure)
            }
            Work::Uncordon => {
                let node = node()?;
                started(&|| task.work.describe());
                self.ops.uncordon(&node).await.map_err(ops_failure)
            }
            Work::Drain { options } => {
                let node = node()?;
                started(&|| task.work.describe());
                let report = self.ops.drain(&node, options).await.map_err(ops_failure)?;
                for p in &report.evicted {
                    output(format!("evicted {p}"));
                }
                for (p, why) in &report.skipped {
                    output(format!("left {p} in place ({why})"));
                }
                Ok(())
            }
            Work::WaitReady { version, timeout } => {
                let node = node()?;
                started(&|| task.work.describe());
                self.ops
                    .wait_ready(&node, version, *timeout)
                    .await
                    .map_err(ops_failure)
            }
            Work::WaitKubeProxyRollout { version, timeout } => {
                started(&|| task.work.describe());
                let deadline = tokio::time::Instant::now() + *timeout;
                loop {
                    let state = self.ops.state().await.map_err(ops_failure)?;
                    let behind: Vec<String> = state
                        .nodes_behind_kube_proxy(version.as_ref())
                        .map(|(n, running)| format!("{} ({running})", n.name))
                        .collect();
                    if behind.is_empty() {
                        return Ok(());
                    }
                    if tokio::time::Instant::now() >= deadline {
                        let shown: Vec<&str> = behind.iter().take(5).map(String::as_str).collect();
                        return Err(Failure::new(
                            FailureKind::TimedOut,
                            format!(
                                "after {}s kube-proxy still runs another version on {} node(s): {}",
                                timeout.as_secs(),
                                behind.len(),
                                shown.join(", ")
                            ),
                        ));
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
            Work::Provision { template, version } => {
                let node = node()?;
                started(&|| task.work.describe());
                let Some(p) = &self.provider else {
                    return Err(no_provider());
                };
                p.provision(&node, template, version)
                    .await
                    .map(|_| ())
                    .map_err(ops_failure)
            }
            Work::Remove => {
                let node = node()?;
                started(&|| task.work.describe());
                let Some(p) = &self.provider else {
                    return Err(no_provider());
                };
                p.remove(&node).await.map_err(ops_failure)
            }
            w => Err(Failure::new(
                FailureKind::Unsupported,
                format!("this driver cannot carry out {}", w.describe()),
            )),
        }
    }
}

fn no_provider() -> Failure {
    Failure::new(
        FailureKind::Unsupported,
        "no node provider is configured (the replace strategy needs one)",
    )
}

fn runner_failure(e: RunnerError) -> Failure {
    let kind = match &e {
        RunnerError::Connect { .. } => FailureKind::Unreachable,
        RunnerError::Auth { .. } | RunnerError::HostKey { .. } | RunnerError::Invalid { .. } => {
            FailureKind::Refused
        }
        RunnerError::TimedOut { .. } => FailureKind::TimedOut,
        RunnerError::NotFound { .. } | RunnerError::Unsupported { .. } => FailureKind::Unsupported,
        _ => FailureKind::Other,
    };
    Failure::new(kind, e.to_string())
}

fn ops_failure(e: OpsError) -> Failure {
    let kind = match &e {
        OpsError::Connect { .. } => FailureKind::Unreachable,
        OpsError::Forbidden { .. } => FailureKind::Refused,
        OpsError::DrainBlocked { .. } => FailureKind::DrainBlocked,
        OpsError::TimedOut { .. } => FailureKind::TimedOut,
        OpsError::Unsupported(_) => FailureKind::Unsupported,
        _ => FailureKind::Other,
    };
    Failure::new(kind, e.to_string())
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The driver's clock: the wall-clock time the run started, advanced by the tokio clock (so
/// a paused runtime gives virtual time).
struct Clock {
    wall: Timestamp,
    epoch: tokio::time::Instant,
}

impl Clock {
    fn start() -> Self {
        Clock {
            wall: Timestamp::now(),
            epoch: tokio::time::Instant::now(),
        }
    }

    fn now(&self) -> Timestamp {
        let elapsed = self.epoch.elapsed();
        self.wall.saturating_add(elapsed).unwrap_or(self.wall)
    }

    fn instant(&self, t: Timestamp) -> tokio::time::Instant {
        let d = t.duration_since(self.wall);
        match Duration::try_from(d) {
            Ok(d) => self.epoch + d,
            Err(_) => self.epoch,
        }
    }
}
