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
//! - provisioning and removal through a [`NodeProvider`];
//! - gates through a [`GateProbe`](kupgrade_core::ports::GateProbe) ([`Driver::gates`]) and,
//!   for command gates, the runner (on a node) or [`Driver::local_runner`] (here).
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
use futures::future::{BoxFuture, FutureExt};
use futures::stream::FuturesUnordered;
use jiff::Timestamp;
use kupgrade_core::plan::Simulation;
use kupgrade_core::ports::{ClusterOperations, CommandRunner, NodeProvider, OpsError};
use kupgrade_core::run::{
    Event, Failure, FailureKind, Finished, Outcome, Output, Record, Run, Task, TaskId, TaskResult,
    Work,
};
use kupgrade_core::{ClusterState, NodeName};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::events::EventSender;
use crate::journal::{Journal, JournalError};

mod gates;
mod hop_check;
mod lifetimes;
mod notes;

pub use hop_check::HopCheck;
pub use lifetimes::{NodeLocks, SurvivorPolicy};
use lifetimes::{Started, StartedTx};
mod provision;
mod work;

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
    events: Option<EventSender>,
    stop: Option<StopSignal>,
    dry_run: bool,
    state_retries: u32,
    locks: Option<NodeLocks>,
    survivors: SurvivorPolicy,
    join_wait: Duration,
    gate_probe: Option<Arc<dyn kupgrade_core::ports::GateProbe>>,
    local: Arc<dyn CommandRunner>,
    baselines: gates::Baselines,
    hop_check: Option<Arc<dyn HopCheck>>,
    hops_checked: hop_check::Checked,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("provider", &self.provider.is_some())
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

type Done = (TaskId, u32, TaskResult, Vec<kupgrade_core::run::TaskNote>);

/// One session's moving parts, from its first task to its end.
struct Session<'d> {
    clock: Clock,
    /// The plan's fingerprint, naming the node-side locks.
    fingerprint: Arc<str>,
    /// The stop request acted on so far.
    stopping: Stop,
    /// The tasks started and not yet recorded, with their attempt; the same as `inflight`.
    running: HashMap<TaskId, u32>,
    /// Their work (a dry run's is ready at once).
    inflight: FuturesUnordered<BoxFuture<'d, Done>>,
    /// Why the session ends once the running tasks are recorded (nothing more starts).
    failure: Option<DriverError>,
    /// Where the running commands report their handles: unbounded, its bound is the tasks in
    /// flight (see [`StartedTx`]).
    started_tx: StartedTx,
    started_rx: mpsc::UnboundedReceiver<Started>,
}

impl Session<'_> {
    fn new(clock: Clock, fingerprint: &str) -> Self {
        let (started_tx, started_rx) = mpsc::unbounded_channel();
        Session {
            clock,
            fingerprint: fingerprint.into(),
            stopping: Stop::Run,
            running: HashMap::new(),
            inflight: FuturesUnordered::new(),
            failure: None,
            started_tx,
            started_rx,
        }
    }
}

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
            gate_probe: None,
            local: Arc::new(crate::LocalRunner::new()),
            baselines: gates::Baselines::default(),
            hop_check: None,
            hops_checked: hop_check::Checked::default(),
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

    /// Sends every event to `events` (a bounded queue: command output lines that find it full
    /// are dropped and counted, never waited for; see [`crate::events`]).
    pub fn events(mut self, events: EventSender) -> Self {
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
                tx.send(e);
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
        let clock = Clock::start();
        let mut model = self.prepare(run, journal, &clock).await?;
        let mut s = Session::new(clock, run.fingerprint());
        let mut stop = self.stop.clone();
        loop {
            let asked = stop.as_ref().map_or(Stop::Run, |s| *s.0.borrow());
            self.obey(run, asked, &mut s, journal)?;
            if run.is_finished() {
                break;
            }
            if s.failure.is_none() && run.wants_state(s.clock.now()) {
                self.start_due(run, &mut model, &mut s, journal).await?;
                if run.is_finished() {
                    break;
                }
            }
            if s.inflight.is_empty() && s.failure.is_some() {
                break;
            }
            let wake = run.wake_at().map(|t| s.clock.instant(t));
            if s.inflight.is_empty() && wake.is_none() && !run.wants_state(s.clock.now()) {
                if run.is_finished() {
                    break;
                }
                return Err(DriverError::Stuck(format!("{run:?}")));
            }
            self.wait_for_news(run, &mut s, &mut stop, wake, journal)
                .await?;
        }
        if let Some(e) = s.failure {
            return Err(e);
        }
        Ok(run.finished().cloned().unwrap_or(Finished::Cancelled))
    }

    /// Before the first task: refuses a plan that needs a missing provider, settles what an
    /// earlier session left unsure (creations, survivors); a dry run reads the cluster once
    /// for its model.
    async fn prepare(
        &self,
        run: &mut Run,
        journal: &mut dyn JournalSink,
        clock: &Clock,
    ) -> Result<Option<Simulation>, DriverError> {
        self.check_provider(run)?;
        // The snapshots earlier sessions journaled: a resumed gate compares with the same
        // baseline.
        self.baselines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(run.noted_workloads().map(|(k, v)| (k.clone(), v.clone())));
        if self.dry_run {
            let state = self.read_state().await.map_err(DriverError::State)?;
            return Ok(Some(Simulation::new(state)));
        }
        self.look_before_creating(run, journal, clock.now()).await?;
        self.settle_survivors(run, clock, journal).await?;
        Ok(None)
    }

    /// Acts on a new stop request: cancels the run (nothing more starts), and on an abort
    /// drops the running tasks and records them interrupted.
    fn obey(
        &self,
        run: &mut Run,
        asked: Stop,
        s: &mut Session<'_>,
        journal: &mut dyn JournalSink,
    ) -> Result<(), DriverError> {
        if asked == s.stopping || asked == Stop::Run {
            return Ok(());
        }
        if s.stopping == Stop::Run {
            tracing::info!("stop requested: starting nothing more");
            let out = run.cancel(s.clock.now());
            self.take(out, journal)?;
        }
        if asked == Stop::Abort {
            tracing::warn!("abort requested: interrupting {} task(s)", s.running.len());
            s.inflight = FuturesUnordered::new();
            let mut ids: Vec<(TaskId, u32)> = s.running.drain().collect();
            ids.sort();
            for (task, attempt) in ids {
                let result = TaskResult::Interrupted;
                let out = run
                    .record(
                        Outcome {
                            task,
                            attempt,
                            result,
                        },
                        s.clock.now(),
                    )
                    .map_err(|e| DriverError::Stuck(e.to_string()))?;
                self.take(out, journal)?;
            }
            // Tasks whose postconditions were being checked stay so in the journal: a
            // resume checks them.
            let out = run.abort(s.clock.now());
            self.take(out, journal)?;
        }
        s.stopping = asked;
        Ok(())
    }

    /// Reads the cluster (or the dry run's model) and starts what the run says may start; a
    /// state that cannot be read cancels the run and ends the session once the running
    /// tasks are recorded.
    async fn start_due<'d>(
        &'d self,
        run: &mut Run,
        model: &mut Option<Simulation>,
        s: &mut Session<'d>,
        journal: &mut dyn JournalSink,
    ) -> Result<(), DriverError> {
        let state = match model {
            Some(m) => Ok(m.state().clone()),
            None => self.read_state().await,
        };
        let state = match state {
            Ok(state) => state,
            Err(e) => {
                // Stop cleanly: let the running tasks end and be recorded.
                let out = run.cancel(s.clock.now());
                self.take(out, journal)?;
                s.failure = Some(DriverError::State(e));
                return Ok(());
            }
        };
        let out = run.next(&state, s.clock.now());
        for task in self.take(out, journal)? {
            s.running.insert(task.id.clone(), task.attempt);
            let work: BoxFuture<'d, Done> = match model {
                Some(m) => futures::future::ready(self.pretend(run, m, &task)).boxed(),
                None => {
                    let plan = run.plan().clone();
                    self.execute(task, plan, s.fingerprint.clone(), s.started_tx.clone())
                        .boxed()
                }
            };
            s.inflight.push(work);
        }
        Ok(())
    }

    /// Waits for a task to end (and records it), a command's handle (and journals it), the
    /// run's next wake-up, or a stop request.
    async fn wait_for_news(
        &self,
        run: &mut Run,
        s: &mut Session<'_>,
        stop: &mut Option<StopSignal>,
        wake: Option<tokio::time::Instant>,
        journal: &mut dyn JournalSink,
    ) -> Result<(), DriverError> {
        let changed = async {
            match stop {
                Some(s) => {
                    if s.0.changed().await.is_err() {
                        std::future::pending::<()>().await
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            done = s.inflight.next(), if !s.inflight.is_empty() => {
                if let Some((task, attempt, result, notes)) = done {
                    s.running.remove(&task);
                    for note in notes {
                        let out = run.note(&task, attempt, note, s.clock.now());
                        self.take(out, journal)?;
                    }
                    let out = run
                        .record(Outcome { task, attempt, result }, s.clock.now())
                        .map_err(|e| DriverError::Stuck(e.to_string()))?;
                    self.take(out, journal)?;
                }
            }
            Some(started) = s.started_rx.recv() => {
                self.command_started(run, started, &s.clock, journal)?;
            }
            _ = sleep_until(wake), if wake.is_some() => {}
            _ = changed => {}
        }
        Ok(())
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
        (
            task.id.clone(),
            task.attempt,
            TaskResult::Succeeded,
            Vec::new(),
        )
    }

    /// Carries one task out (after the check before its hop, when there is one); a hook's
    /// command output is noted for the journal (a gate's always is).
    async fn execute(
        &self,
        task: Task,
        plan: Arc<kupgrade_core::plan::UpgradePlan>,
        fingerprint: Arc<str>,
        handles: StartedTx,
    ) -> Done {
        let notes = notes::Notes::default();
        let keep_output = matches!(
            plan.steps.get(task.step_index).map(|s| &s.action),
            Some(kupgrade_core::plan::Action::Hook { .. })
        );
        let kept = keep_output.then_some(&notes);
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
            // A pre-stage step (a download or an image pull ahead, changing nothing the
            // cluster shows) may run while the hop before is under way: it does not ask, the
            // hop's first other task does.
            let hop = (plan.steps.get(task.step_index))
                .filter(|s| !s.action.is_prestage())
                .and_then(|s| s.hop);
            let result = match self.check_hop(&plan, hop).await {
                Err(f) => Err(f),
                Ok(()) => {
                    match tokio::time::timeout(
                        d,
                        self.work(&task, &fingerprint, &handles, &notes, kept),
                    )
                    .await
                    {
                        Ok(r) => r,
                        Err(_) => Err(Failure::new(
                            FailureKind::TimedOut,
                            format!("gave up after {}s", d.as_secs()),
                        )),
                    }
                }
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
        (id, task.attempt, result, notes.take())
    }
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
