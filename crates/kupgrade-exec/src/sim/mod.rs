//! A simulated cluster: [`CommandRunner`], [`ClusterOperations`] and [`NodeProvider`] over an
//! in-memory model of a kubeadm cluster. It is the test bed of the driver, the examples and
//! the benches.
//!
//! - The node commands kupgrade renders do what they do on real nodes (see the `node` rules
//!   below): package installs succeed only for released versions of the minor the node's
//!   repository is switched to; `kubeadm upgrade apply|node` move the control plane, etcd and
//!   the add-ons; a kubelet restart changes the reported version. Commands it does not model
//!   exit 127.
//! - Drains cordon, refuse DaemonSet, unmanaged and emptyDir pods as `kubectl drain` does, and
//!   honour disruption budgets: an evicted pod starts again elsewhere and is not Ready for a
//!   while, so a budget may hold the next eviction back until the drain's deadline.
//! - Time is the tokio clock: every step takes its simulated duration ([`Timings`]) with
//!   `tokio::time::sleep`. Under a paused runtime (`start_paused`), an upgrade of hours runs
//!   in milliseconds without sleeping; [`SimCluster::with_speed`] makes a watchable demo in
//!   real time.
//! - Faults ([`Fault`]): a command fails or hangs, a node never becomes Ready, evictions stay
//!   blocked, a node is unreachable.
//! - [`SimCluster::persist_to`] saves the whole state after every change (write, then rename),
//!   so a process that drives it can be killed at any point and another one can
//!   [`SimCluster::load`] it; [`SimCluster::on_op`] lets a test stop a process at an exact
//!   point.
//! - Things a careful operator would not have done (a kubelet changing minor on an undrained
//!   node, a kubelet newer than the API server) are recorded as [`SimState::problems`].
//!
//! ```
//! use kupgrade_core::ports::{ClusterOperations, CommandRunnerExt, CommandSpec};
//! use kupgrade_exec::sim::SimCluster;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node = kupgrade_core::Node::worker("w-1", "v1.29.3".parse()?)?;
//! let sim = SimCluster::new(kupgrade_core::ClusterState::new(vec![node]));
//! let node = "w-1".parse()?;
//! // kubeadm 1.30 is not in the node's 1.29 repository...
//! let install = CommandSpec::new("apt-get").args(["install", "-y", "kubeadm=1.30.2-*"]).sudo();
//! let apt_mark = CommandSpec::new("apt-mark").args(["unhold", "kubeadm"]).sudo();
//! sim.output(&node, &apt_mark).await?;
//! assert_eq!(sim.output(&node, &install).await?.status.success(), false);
//! // ...until the node is switched to the 1.30 repository and apt has read it.
//! let repo = CommandSpec::new("tee").arg("/etc/apt/sources.list.d/kubernetes.list")
//!     .stdin(kupgrade_core::plan::apt_source("1.30".parse()?)).sudo();
//! sim.output(&node, &repo).await?;
//! sim.output(&node, &CommandSpec::new("apt-get").arg("update").sudo()).await?;
//! assert!(sim.output(&node, &install).await?.status.success());
//! let state = sim.state().await?;
//! assert_eq!(state.nodes[0].versions.kubeadm.as_ref().unwrap().to_string(), "v1.30.2");
//! # Ok(()) }
//! ```
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

#[cfg(doc)]
use kupgrade_core::ports::{ClusterOperations, CommandRunner, NodeProvider};
use kupgrade_core::ports::{OpsError, PodRef};
use kupgrade_core::{ClusterState, KubeVersion, Node, NodeName};

mod evidence;
mod fault;
mod gates;
mod lease;
mod model;
mod node;
mod packages;
mod ports;
mod workload;

pub use fault::{Fault, FaultKind};
pub use lease::SimLease;
pub use model::{
    Budget, HistoryEntry, Host, Pod, PodKind, Repo, RepoKind, STATE_FORMAT, SimState, Timings,
};
pub use workload::{App, Workload};

/// Before or after the effect of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpPhase {
    /// The operation has started; nothing has changed yet.
    Before,
    /// Its effect has happened (and was saved, with [`SimCluster::persist_to`]); the caller
    /// has not been told yet.
    After,
}

/// An operation of the simulated cluster that may change it (a command, cordon, drain,
/// uncordon, provision, remove), as [`SimCluster::on_op`] sees it.
#[derive(Clone, Copy, Debug)]
pub struct OpPoint<'a> {
    /// Operations started by this [`SimCluster`] value so far, this one included (from 1).
    pub op: u64,
    /// Before or after its effect.
    pub phase: OpPhase,
    /// The node.
    pub node: &'a NodeName,
    /// The command line or the operation.
    pub what: &'a str,
}

type Hook = dyn Fn(&OpPoint<'_>) + Send + Sync;

/// Why a simulated cluster could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The file could not be read or written.
    #[error("cannot {action} simulated cluster {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a simulated cluster.
    #[error("{}: not a simulated cluster: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// The file was written by a newer kupgrade.
    #[error("{}: simulated cluster format {found} is newer than this kupgrade reads ({STATE_FORMAT})", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// Its format.
        found: u32,
    },
}

/// The simulated cluster. Cheap to clone: clones share the cluster.
#[derive(Clone)]
pub struct SimCluster {
    inner: Arc<Mutex<Inner>>,
    hook: Option<Arc<Hook>>,
}

impl fmt::Debug for SimCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("SimCluster")
            .field("nodes", &inner.state.cluster.nodes.len())
            .field("clock_ms", &inner.state.clock_ms)
            .field("persist", &inner.persist)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub state: SimState,
    index: HashMap<NodeName, usize>,
    pub timings: Timings,
    persist: Option<PathBuf>,
    saved_history: usize,
    epoch: tokio::time::Instant,
    base_ms: u64,
    speed: f64,
    ops: u64,
    reschedule: bool,
    cursor: usize,
    rollout_pending: bool,
    control_plane: Vec<usize>,
    /// Hosts with a kubelet restart not yet seen Ready by `wait_ready` (`ready_at_ms` set):
    /// the only nodes whose readiness depends on the clock.
    restarting: BTreeSet<NodeName>,
    /// With [`SimCluster::with_step_durations`]: each step's duration in seconds, by id, and
    /// the tasks (`step/node`) whose time has passed already.
    step_seconds: Option<HashMap<String, u64>>,
    charged: BTreeSet<String>,
    /// What the gate probe returns (set by tests; not persisted).
    gates: gates::GateObjects,
}

impl Inner {
    fn new(state: SimState) -> Inner {
        let mut inner = Inner {
            base_ms: state.clock_ms,
            state,
            index: HashMap::new(),
            timings: Timings::default(),
            persist: None,
            saved_history: 0,
            epoch: tokio::time::Instant::now(),
            speed: 1.0,
            ops: 0,
            reschedule: true,
            cursor: 0,
            rollout_pending: false,
            control_plane: Vec::new(),
            restarting: BTreeSet::new(),
            step_seconds: None,
            charged: BTreeSet::new(),
            gates: gates::GateObjects::default(),
        };
        inner.rollout_pending = inner
            .state
            .cluster
            .nodes
            .iter()
            .any(|n| n.versions.kube_proxy.is_some());
        inner.reindex();
        inner
    }

    fn reindex(&mut self) {
        self.restarting = self
            .state
            .hosts
            .iter()
            .filter(|(_, h)| h.ready_at_ms.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        self.index = self
            .state
            .cluster
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        self.control_plane = self
            .state
            .cluster
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.is_control_plane())
            .map(|(i, _)| i)
            .collect();
    }

    /// The control-plane nodes.
    pub fn control_plane(&self) -> impl Iterator<Item = &Node> + '_ {
        self.control_plane
            .iter()
            .map(|&i| &self.state.cluster.nodes[i])
    }

    /// The oldest API server.
    pub fn apiserver_min(&self) -> Option<&KubeVersion> {
        self.control_plane()
            .filter_map(|n| n.versions.kube_apiserver.as_ref())
            .min()
    }

    fn now_ms(&self) -> u64 {
        let elapsed = self.epoch.elapsed().as_secs_f64() * self.speed * 1000.0;
        self.base_ms + elapsed as u64
    }

    fn has(&self, node: &NodeName) -> bool {
        self.index.contains_key(node)
    }

    /// How many workload pods (replicated or not) run on `node`.
    fn workload_pods_on(&self, node: &NodeName) -> usize {
        self.state
            .pods
            .iter()
            .filter(|p| {
                p.node.as_ref() == Some(node)
                    && matches!(p.kind, PodKind::Replicated | PodKind::Unreplicated)
            })
            .count()
    }

    /// The node (which must exist).
    pub fn node(&self, node: &NodeName) -> &Node {
        &self.state.cluster.nodes[self.index[node]]
    }

    pub fn node_mut(&mut self, node: &NodeName) -> &mut Node {
        let i = self.index[node];
        &mut self.state.cluster.nodes[i]
    }

    pub fn host(&mut self, node: &NodeName) -> &mut Host {
        self.state.hosts.entry(node.clone()).or_default()
    }

    /// The newest API server.
    pub fn apiserver_max(&self) -> Option<&KubeVersion> {
        self.control_plane()
            .filter_map(|n| n.versions.kube_apiserver.as_ref())
            .max()
    }

    /// The version kubeadm deploys with `kubeadm upgrade node`, as kubeadm takes it: the
    /// `kubernetesVersion` of the ClusterConfiguration in its `kubeadm-config` (written by
    /// `kubeadm upgrade apply`). A saved state without one reads as a new cluster does (see
    /// [`SimCluster::new`]): the newest API server's version.
    pub fn cluster_version(&self) -> Option<KubeVersion> {
        self.state
            .kubeadm_config
            .clone()
            .or_else(|| self.apiserver_max().cloned())
    }

    pub fn problem(&mut self, text: String) {
        tracing::warn!(target: "kupgrade::sim", "{text}");
        self.state.problems.push(text);
    }

    fn ready(&self, i: usize) -> bool {
        let n = &self.state.cluster.nodes[i];
        if !n.ready {
            return false;
        }
        let Some(at) = self.state.hosts.get(&n.name).and_then(|h| h.ready_at_ms) else {
            return true;
        };
        self.ready_at(&n.name, at)
    }

    /// Whether a node whose kubelet restarted, Ready again at `at`, is Ready now.
    fn ready_at(&self, name: &NodeName, at: u64) -> bool {
        let never = self
            .state
            .faults
            .iter()
            .any(|f| f.kind == FaultKind::NeverReady && f.applies(name, None));
        !never && self.now_ms() >= at
    }

    /// A kube-proxy rollout under way at the start finishes after
    /// [`Timings::daemonset_rollout`].
    fn finish_rollout(&mut self) {
        if !self.rollout_pending
            || self.now_ms() < self.timings.daemonset_rollout.as_millis() as u64
        {
            return;
        }
        self.rollout_pending = false;
        let mut changed = false;
        for n in &mut self.state.cluster.nodes {
            changed |= n.versions.kube_proxy.take().is_some();
        }
        if changed {
            let _ = self.save();
        }
    }

    fn record(&mut self, node: &NodeName, what: String) {
        let at_ms = self.now_ms();
        let task = crate::driver::current_task().map(|t| t.to_string());
        self.state.history.push(HistoryEntry {
            at_ms,
            node: node.clone(),
            task,
            what,
        });
    }

    fn save(&mut self) -> Result<(), SimError> {
        self.state.clock_ms = self.now_ms();
        let Some(path) = &self.persist else {
            return Ok(());
        };
        let io = |action, source| SimError::Io {
            action,
            path: path.clone(),
            source,
        };
        // The history only grows: it is appended to its own file, the rest rewritten.
        let history = std::mem::take(&mut self.state.history);
        let bytes = serde_json::to_vec(&self.state);
        self.state.history = history;
        let bytes = bytes.map_err(|e| io("encode", e.into()))?;
        if self.saved_history < self.state.history.len() {
            let mut lines = Vec::new();
            for e in &self.state.history[self.saved_history..] {
                serde_json::to_writer(&mut lines, e).map_err(|e| io("encode", e.into()))?;
                lines.push(b'\n');
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(history_path(path))
                .map_err(|e| io("write", e))?;
            std::io::Write::write_all(&mut f, &lines).map_err(|e| io("write", e))?;
            self.saved_history = self.state.history.len();
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes).map_err(|e| io("write", e))?;
        std::fs::rename(&tmp, path).map_err(|e| io("write", e))
    }

    /// A schedulable, Ready worker for a pod, other than `not`.
    fn place(&mut self, not: Option<&NodeName>) -> Option<NodeName> {
        let n = self.state.cluster.nodes.len();
        let workers = self.state.cluster.workers().count();
        for _ in 0..n {
            self.cursor = (self.cursor + 1) % n;
            let i = self.cursor;
            let node = &self.state.cluster.nodes[i];
            if node.unschedulable
                || Some(&node.name) == not
                || (workers > 0 && node.is_control_plane())
                || !self.ready(i)
            {
                continue;
            }
            return Some(node.name.clone());
        }
        None
    }

    /// Starts pending pods where there is room.
    fn schedule_pending(&mut self) {
        let now = self.now_ms();
        let start = self.timings.pod_start.as_millis() as u64;
        for i in 0..self.state.pods.len() {
            if self.state.pods[i].node.is_none() {
                let Some(target) = self.place(None) else {
                    return;
                };
                let pod = &mut self.state.pods[i];
                pod.node = Some(target);
                pod.ready_at_ms = Some(now + start);
            }
        }
    }
}

impl SimCluster {
    /// A simulated cluster in `state`: every node a kubeadm node with its packages installed
    /// (and held) at its versions, pointing at its minor's repository; no pods. Its
    /// `kubeadm-config` records the newest API server's version: on a cluster caught
    /// mid-upgrade, the newest API server is the one `kubeadm upgrade apply` moved, and that
    /// command wrote its version there (so `kubeadm upgrade node` on the others deploys it).
    pub fn new(state: ClusterState) -> SimCluster {
        let kubeadm_config = state
            .nodes
            .iter()
            .filter(|n| n.is_control_plane())
            .filter_map(|n| n.versions.kube_apiserver.clone())
            .max();
        let hosts = state
            .nodes
            .iter()
            .map(|n| (n.name.clone(), Host::of(n)))
            .collect();
        SimCluster::from_state(SimState {
            format: STATE_FORMAT,
            cluster: state,
            hosts,
            kubeadm_config,
            pods: Vec::new(),
            budgets: Vec::new(),
            faults: Vec::new(),
            clock_ms: 0,
            history: Vec::new(),
            problems: Vec::new(),
        })
    }

    /// A simulated cluster in a saved state.
    pub fn from_state(state: SimState) -> SimCluster {
        SimCluster {
            inner: Arc::new(Mutex::new(Inner::new(state))),
            hook: None,
        }
    }

    /// Loads a cluster saved by [`SimCluster::persist_to`]; it keeps saving to `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<SimCluster, SimError> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| SimError::Io {
            action: "read",
            path: path.clone(),
            source,
        })?;
        let format = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("format")?.as_u64())
            .unwrap_or(0);
        if format > u64::from(STATE_FORMAT) {
            return Err(SimError::Format {
                path,
                found: format as u32,
            });
        }
        let mut state: SimState =
            serde_json::from_slice(&bytes).map_err(|source| SimError::Parse {
                path: path.clone(),
                source,
            })?;
        let hpath = history_path(&path);
        if let Ok(text) = std::fs::read_to_string(&hpath) {
            for line in text.lines() {
                state
                    .history
                    .push(
                        serde_json::from_str(line).map_err(|source| SimError::Parse {
                            path: hpath.clone(),
                            source,
                        })?,
                    );
            }
        }
        let sim = SimCluster::from_state(state);
        {
            let mut inner = sim.lock();
            inner.saved_history = inner.state.history.len();
            inner.persist = Some(path);
        }
        Ok(sim)
    }

    /// Saves the state to `path` now and after every change (the history of effects goes to
    /// `path` + `.history`, one JSON line per effect).
    pub fn persist_to(self, path: impl Into<PathBuf>) -> Result<SimCluster, SimError> {
        {
            let mut inner = self.lock();
            let path = path.into();
            let _ = std::fs::remove_file(history_path(&path));
            inner.saved_history = 0;
            inner.persist = Some(path);
            inner.save()?;
        }
        Ok(self)
    }

    /// Uses these durations.
    pub fn with_timings(self, timings: Timings) -> SimCluster {
        self.lock().timings = timings;
        self
    }

    /// Times every task of the driver by its step's estimated duration in `plan`
    /// ([`Step::duration_seconds`](kupgrade_core::plan::Step::duration_seconds)) instead of
    /// [`Timings`]: the first operation of a task (a command, cordon, drain, uncordon, wait,
    /// provision, removal or a look at the cluster, see [`crate::driver::current_task`])
    /// takes the whole duration, every other operation of it takes no time, and so do the
    /// simulator's own waits (a restarted kubelet is Ready at once, evicted pods start again at
    /// once). A run of the plan then takes the plan's estimate in simulated time, which is
    /// how the estimate is tested. A retried task's time passes once.
    pub fn with_step_durations(self, plan: &kupgrade_core::plan::UpgradePlan) -> SimCluster {
        {
            let mut inner = self.lock();
            let zero = Duration::ZERO;
            inner.timings = Timings {
                apt_update: zero,
                install: zero,
                download: zero,
                kubeadm_apply: zero,
                kubeadm_node: zero,
                kubeadm_plan: zero,
                etcd_snapshot: zero,
                command: zero,
                kubelet_ready: zero,
                cordon: zero,
                eviction: zero,
                eviction_retry: Duration::from_secs(1),
                pod_start: zero,
                provision: zero,
                remove: zero,
                poll: Duration::from_secs(1),
                daemonset_rollout: zero,
            };
            inner.step_seconds = Some(
                plan.steps
                    .iter()
                    .map(|s| (s.id.as_str().to_string(), s.duration_seconds))
                    .collect(),
            );
        }
        self
    }

    /// Lets the time of the calling task pass, the first time one of its operations asks
    /// (with [`SimCluster::with_step_durations`]).
    pub(crate) async fn charge(&self) {
        let d = {
            let mut inner = self.lock();
            let Some(task) = crate::driver::current_task() else {
                return;
            };
            let Some(seconds) = inner
                .step_seconds
                .as_ref()
                .map(|m| m.get(task.step.as_str()).copied().unwrap_or(0))
            else {
                return;
            };
            if !inner.charged.insert(task.to_string()) {
                return;
            }
            Duration::from_secs(seconds)
        };
        self.pass(d).await;
    }

    /// Runs simulated time `speed` times faster than the tokio clock (a real-time demo of an
    /// hour-long upgrade with 600 takes six seconds). Under a paused runtime it makes no
    /// difference.
    pub fn with_speed(self, speed: f64) -> SimCluster {
        {
            let mut inner = self.lock();
            inner.base_ms = inner.now_ms();
            inner.epoch = tokio::time::Instant::now();
            inner.speed = if speed > 0.0 { speed } else { 1.0 };
        }
        self
    }

    /// Places the pods of `workload` on the workers (on every node if there are none) and
    /// adds its budgets.
    pub fn with_workload(self, workload: &Workload) -> SimCluster {
        workload::place(&mut self.lock(), workload);
        self
    }

    /// Whether evicted replicated pods start again on another node (the default) or simply go
    /// (as with a controller that is slow to replace them).
    pub fn with_rescheduling(self, reschedule: bool) -> SimCluster {
        self.lock().reschedule = reschedule;
        self
    }

    /// Adds a fault.
    pub fn inject(&self, fault: Fault) {
        let mut inner = self.lock();
        inner.state.faults.push(fault);
        let _ = inner.save();
    }

    /// Calls `hook` before and after the effect of every operation that may change the
    /// cluster (outside any lock). A crash test uses it to stop the process at an exact point.
    pub fn on_op(mut self, hook: impl Fn(&OpPoint<'_>) + Send + Sync + 'static) -> SimCluster {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// A copy of the whole state.
    pub fn snapshot(&self) -> SimState {
        let mut inner = self.lock();
        inner.state.clock_ms = inner.now_ms();
        inner.state.clone()
    }

    /// The cluster as its API shows it now (what [`ClusterOperations::state`] returns). Like a
    /// real API server, it does not know the operator's own kubectl (`kubectl` is `None`).
    pub fn cluster(&self) -> ClusterState {
        let mut inner = self.lock();
        inner.finish_rollout();
        let mut c = inner.state.cluster.clone();
        c.kubectl = None;
        // Only restarted kubelets can be NotReady for a while: until their ready time, or for
        // good under a never-ready fault.
        let now = inner.now_ms();
        let never_ready = inner
            .state
            .faults
            .iter()
            .any(|f| f.kind == FaultKind::NeverReady);
        for name in &inner.restarting {
            let Some(at) = inner.state.hosts.get(name).and_then(|h| h.ready_at_ms) else {
                continue;
            };
            if at <= now && !never_ready {
                continue;
            }
            // The copy shares the simulator's node list until a node differs.
            if let Some(&i) = inner.index.get(name)
                && c.nodes[i].ready
                && !inner.ready_at(name, at)
            {
                c.nodes[i].ready = false;
            }
        }
        c
    }

    /// Simulated time so far.
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(self.lock().now_ms())
    }

    /// Adds a node (a Ready kubeadm node with its packages installed at its versions).
    pub fn add_node(&self, node: Node) -> Result<(), OpsError> {
        let mut inner = self.lock();
        if inner.has(&node.name) {
            return Err(OpsError::Other {
                message: format!("node {} already exists", node.name),
                source: None,
            });
        }
        inner.state.hosts.insert(node.name.clone(), Host::of(&node));
        inner.state.cluster.nodes.push(node);
        inner.reindex();
        inner.save().map_err(ops_err)
    }

    /// Adds a Ready pod on `node`; returns its reference.
    pub fn add_pod(
        &self,
        node: &NodeName,
        kind: PodKind,
        labels: BTreeMap<String, String>,
    ) -> Result<PodRef, OpsError> {
        let mut inner = self.lock();
        if !inner.has(node) {
            return Err(OpsError::NodeNotFound(node.clone()));
        }
        let name = format!(
            "{}-{}",
            labels.get("app").map_or("pod", String::as_str),
            inner.state.pods.len() + 1
        );
        let pod = Pod {
            namespace: "default".into(),
            name,
            labels,
            kind,
            node: Some(node.clone()),
            ready_at_ms: Some(0),
            empty_dir: false,
        };
        let r = PodRef {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
        };
        inner.state.pods.push(pod);
        inner.save().map_err(ops_err)?;
        Ok(r)
    }

    /// Adds a budget over the pods with `selector` (in `default`) that allows `disruptions`
    /// more disruptions of the pods it covers now. Returns its name.
    pub fn add_budget(&self, selector: BTreeMap<String, String>, disruptions: u32) -> String {
        let mut inner = self.lock();
        let name = format!("budget-{}", inner.state.budgets.len() + 1);
        let mut b = Budget {
            namespace: "default".into(),
            name: name.clone(),
            selector,
            min_available: None,
            max_unavailable: Some(disruptions),
            expected: 0,
        };
        let now = inner.now_ms();
        b.expected = inner
            .state
            .pods
            .iter()
            .filter(|p| b.covers(p) && p.ready(now))
            .count() as u32;
        inner.state.budgets.push(b);
        let _ = inner.save();
        name
    }

    /// The pods on `node`, sorted.
    pub fn pods_on(&self, node: &NodeName) -> Vec<PodRef> {
        let inner = self.lock();
        let mut pods: Vec<PodRef> = inner
            .state
            .pods
            .iter()
            .filter(|p| p.node.as_ref() == Some(node))
            .map(|p| PodRef {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
            })
            .collect();
        pods.sort();
        pods
    }

    /// Makes `node` report kubelet `version` and Ready = `ready` (as if its kubelet had been
    /// replaced behind kupgrade's back).
    pub fn set_kubelet(
        &self,
        node: &NodeName,
        version: &KubeVersion,
        ready: bool,
    ) -> Result<(), OpsError> {
        let mut inner = self.lock();
        if !inner.has(node) {
            return Err(OpsError::NodeNotFound(node.clone()));
        }
        let n = inner.node_mut(node);
        n.versions.kubelet = Some(version.clone());
        n.ready = ready;
        inner.host(node).ready_at_ms = None;
        inner.restarting.remove(node);
        inner.save().map_err(ops_err)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a state a test wants to see, not a poison.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hook(&self, op: u64, phase: OpPhase, node: &NodeName, what: &str) {
        if let Some(h) = &self.hook {
            h(&OpPoint {
                op,
                phase,
                node,
                what,
            });
        }
    }

    /// Starts an operation on an existing node: its number.
    fn begin(&self, node: &NodeName, what: &str) -> Result<u64, OpsError> {
        let op = {
            let mut inner = self.lock();
            if !inner.has(node) {
                return Err(OpsError::NodeNotFound(node.clone()));
            }
            inner.ops += 1;
            inner.ops
        };
        self.hook(op, OpPhase::Before, node, what);
        Ok(op)
    }

    async fn pass(&self, d: Duration) {
        let speed = self.lock().speed;
        if !d.is_zero() {
            // Saturating: a huge wait at a slow speed waits a century, never panics.
            let real = Duration::try_from_secs_f64(d.as_secs_f64() / speed)
                .unwrap_or(kupgrade_core::ports::MAX_WAIT);
            tokio::time::sleep(kupgrade_core::ports::capped(real)).await;
        }
    }

    async fn set_cordon(&self, node: &NodeName, cordon: bool) -> Result<(), OpsError> {
        self.charge().await;
        let what = if cordon { "cordon" } else { "uncordon" };
        let op = self.begin(node, what)?;
        let d = self.lock().timings.cordon;
        self.pass(d).await;
        {
            let mut inner = self.lock();
            if !inner.has(node) {
                return Err(OpsError::NodeNotFound(node.clone()));
            }
            let n = inner.node_mut(node);
            if n.unschedulable != cordon {
                n.unschedulable = cordon;
                inner.record(node, what.to_string());
                if !cordon {
                    inner.schedule_pending();
                }
                inner.save().map_err(ops_err)?;
            }
        }
        self.hook(op, OpPhase::After, node, what);
        Ok(())
    }
}

fn history_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".history");
    PathBuf::from(p)
}

fn ops_err(e: SimError) -> OpsError {
    OpsError::Other {
        message: e.to_string(),
        source: Some(Box::new(e)),
    }
}

#[cfg(test)]
mod tests;
