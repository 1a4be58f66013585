//! Pods, disruption budgets and how a drain evicts them.
use std::collections::BTreeMap;

use kupgrade_core::NodeName;
use kupgrade_core::ports::{BlockedPod, DrainOptions, DrainReport, PodRef};

use super::fault::{self, FaultKind};
use super::{Budget, Inner, Pod, PodKind, SimCluster, ops_err};

/// Workload to place on a simulated cluster: replicated apps with their budgets, and a
/// DaemonSet on every node.
///
/// ```
/// use kupgrade_exec::sim::{App, Workload};
/// let w = Workload::new()
///     .app(App::new("web", 6).max_unavailable(1))
///     .app(App::new("db", 3).min_available(2))
///     .daemonset("node-agent");
/// assert_eq!(w.apps.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Workload {
    /// Replicated apps.
    pub apps: Vec<App>,
    /// A DaemonSet with a pod on every node, if any.
    pub daemonset: Option<String>,
}

/// A replicated app (a Deployment) and its budget.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct App {
    /// Its name (label `app`).
    pub name: String,
    /// Replicas, spread over the workers.
    pub replicas: u32,
    /// Budget: at least this many Ready.
    pub min_available: Option<u32>,
    /// Budget: at most this many unavailable.
    pub max_unavailable: Option<u32>,
}

impl App {
    /// `replicas` pods of `name`, without a budget.
    pub fn new(name: impl Into<String>, replicas: u32) -> Self {
        App {
            name: name.into(),
            replicas,
            min_available: None,
            max_unavailable: None,
        }
    }

    /// A budget keeping at least `n` pods Ready.
    pub fn min_available(mut self, n: u32) -> Self {
        self.min_available = Some(n);
        self
    }

    /// A budget allowing at most `n` pods unavailable.
    pub fn max_unavailable(mut self, n: u32) -> Self {
        self.max_unavailable = Some(n);
        self
    }
}

impl Workload {
    /// Nothing.
    pub fn new() -> Self {
        Workload::default()
    }

    /// Adds an app.
    pub fn app(mut self, app: App) -> Self {
        self.apps.push(app);
        self
    }

    /// Adds a DaemonSet called `name`.
    pub fn daemonset(mut self, name: impl Into<String>) -> Self {
        self.daemonset = Some(name.into());
        self
    }

    /// The sample workload of the examples: `web` (6 replicas, at most 1 unavailable), `db`
    /// (3 replicas, at least 2 available) and a `node-agent` DaemonSet.
    pub fn sample() -> Self {
        Workload::new()
            .app(App::new("web", 6).max_unavailable(1))
            .app(App::new("db", 3).min_available(2))
            .daemonset("node-agent")
    }
}

pub(crate) fn place(inner: &mut Inner, w: &Workload) {
    let workers: Vec<NodeName> = inner
        .state
        .cluster
        .workers()
        .map(|n| n.name.clone())
        .collect();
    let targets: Vec<NodeName> = if workers.is_empty() {
        inner
            .state
            .cluster
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .collect()
    } else {
        workers
    };
    let mut k = 0;
    for app in &w.apps {
        let labels = BTreeMap::from([("app".to_string(), app.name.clone())]);
        for r in 0..app.replicas {
            inner.state.pods.push(Pod {
                namespace: "default".into(),
                name: format!("{}-{r}", app.name),
                labels: labels.clone(),
                kind: PodKind::Replicated,
                node: targets.get(k % targets.len().max(1)).cloned(),
                ready_at_ms: Some(0),
                empty_dir: false,
            });
            k += 1;
        }
        if app.min_available.is_some() || app.max_unavailable.is_some() {
            inner.state.budgets.push(Budget {
                namespace: "default".into(),
                name: app.name.clone(),
                selector: labels,
                min_available: app.min_available,
                max_unavailable: app.max_unavailable,
                expected: app.replicas,
            });
        }
    }
    if let Some(ds) = &w.daemonset {
        let nodes: Vec<NodeName> = inner
            .state
            .cluster
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .collect();
        for n in nodes {
            inner.state.pods.push(Pod {
                namespace: "kube-system".into(),
                name: format!("{ds}-{n}"),
                labels: BTreeMap::from([("app".to_string(), ds.clone())]),
                kind: PodKind::DaemonSet,
                node: Some(n),
                ready_at_ms: Some(0),
                empty_dir: false,
            });
        }
    }
    let _ = inner.save();
}

impl SimCluster {
    /// Adds a running, Ready pod controlled by a ReplicaSet, with an emptyDir volume, on
    /// `node`: a drain refuses it unless `delete_emptydir_data`.
    pub fn add_pod_with_empty_dir(
        &self,
        node: &NodeName,
        labels: BTreeMap<String, String>,
    ) -> Result<PodRef, kupgrade_core::ports::OpsError> {
        let r = self.add_pod(node, PodKind::Replicated, labels)?;
        let mut inner = self.lock();
        if let Some(p) = inner
            .state
            .pods
            .iter_mut()
            .find(|p| p.namespace == r.namespace && p.name == r.name)
        {
            p.empty_dir = true;
        }
        inner.save().map_err(ops_err)?;
        Ok(r)
    }
}

/// What one round of evictions did.
pub(crate) enum Round {
    /// The drain refuses to start (pods it may not evict without an option).
    Refused,
    /// Nothing evictable is left.
    Done,
    /// Some pods were evicted; more remain.
    Progress,
    /// Every remaining pod was refused by a budget.
    Blocked,
}

fn pod_ref(p: &Pod) -> PodRef {
    PodRef {
        namespace: p.namespace.clone(),
        name: p.name.clone(),
    }
}

/// One round of a drain of `node`: refuse, or evict what the budgets allow.
pub(crate) fn evict_round(
    inner: &mut Inner,
    node: &NodeName,
    options: &DrainOptions,
    report: &mut DrainReport,
) -> Round {
    let on_node: Vec<usize> = (0..inner.state.pods.len())
        .filter(|&i| inner.state.pods[i].node.as_ref() == Some(node))
        .collect();
    let refused = triage(inner, &on_node, options, report);
    if !refused.is_empty() {
        report.blocked = refused;
        return Round::Refused;
    }
    report.blocked.clear();
    let now = inner.now_ms();
    let blocked_by_fault = fault::node_fault(
        &mut inner.state.faults,
        node,
        |k| matches!(k, FaultKind::EvictionBlocked { .. }),
        false,
    )
    .and_then(|k| match k {
        FaultKind::EvictionBlocked { budget } => Some(budget.clone()),
        _ => None,
    });
    let mut progress = false;
    let mut gone = Vec::new();
    for &i in &on_node {
        let p = &inner.state.pods[i];
        if !matches!(p.kind, PodKind::Replicated | PodKind::Unreplicated) {
            continue;
        }
        if let Some((name, allowed)) = budget_of(inner, p, options, &blocked_by_fault, now)
            && allowed <= 0
        {
            report.blocked.push(BlockedPod {
                pod: pod_ref(p),
                budget: Some(name),
                reason: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
            });
            continue;
        }
        if evict(inner, node, i, options, now) {
            gone.push(i);
        }
        report.evicted.push(pod_ref(&inner.state.pods[i]));
        progress = true;
    }
    if !gone.is_empty() {
        let mut i = 0;
        inner.state.pods.retain(|_| {
            let keep = !gone.contains(&i);
            i += 1;
            keep
        });
    }
    if progress {
        let _ = inner.save();
    }
    if report.blocked.is_empty() {
        Round::Done
    } else if progress {
        Round::Progress
    } else {
        Round::Blocked
    }
}

/// Fills the report's skipped pods (mirror pods; DaemonSet pods when ignored) and returns the
/// pods the drain refuses to evict, as `kubectl drain` does without its flags.
fn triage(
    inner: &Inner,
    on_node: &[usize],
    options: &DrainOptions,
    report: &mut DrainReport,
) -> Vec<BlockedPod> {
    let mut refused = Vec::new();
    report.skipped.clear();
    for &i in on_node {
        let p = &inner.state.pods[i];
        let why = match p.kind {
            PodKind::Mirror => {
                report
                    .skipped
                    .push((pod_ref(p), "mirror pod of a static pod".into()));
                continue;
            }
            PodKind::DaemonSet if options.ignore_daemonsets => {
                report
                    .skipped
                    .push((pod_ref(p), "managed by a DaemonSet".into()));
                continue;
            }
            PodKind::DaemonSet => Some("managed by a DaemonSet (drain with ignoreDaemonsets)"),
            PodKind::Unreplicated if !options.force => {
                Some("not managed by a controller (drain with force to delete it for good)")
            }
            _ if p.empty_dir && !options.delete_emptydir_data => {
                Some("uses emptyDir storage (drain with deleteEmptydirData to lose it)")
            }
            _ => None,
        };
        if let Some(reason) = why {
            refused.push(BlockedPod {
                pod: pod_ref(p),
                budget: None,
                reason: reason.into(),
            });
        }
    }
    refused
}

/// The budget that decides whether `p` may be evicted now, and how many disruptions it
/// allows: the blocking fault's (none allowed), else the first budget covering the pod.
/// Deleting instead of evicting (`disable_eviction`) consults no budget.
fn budget_of(
    inner: &Inner,
    p: &Pod,
    options: &DrainOptions,
    blocked_by_fault: &Option<String>,
    now: u64,
) -> Option<(String, i64)> {
    match blocked_by_fault {
        _ if options.disable_eviction => None,
        Some(b) => Some((b.clone(), 0)),
        None => inner.state.budgets.iter().find(|b| b.covers(p)).map(|b| {
            let healthy = inner
                .state
                .pods
                .iter()
                .filter(|q| b.covers(q) && q.ready(now))
                .count() as u32;
            (b.name.clone(), b.allowed(healthy))
        }),
    }
}

/// Evicts (or deletes) pod `i` from `node`: a replicated pod starts again on another node
/// when the simulator reschedules, not Ready for a while; any other is gone (returns true:
/// the caller removes it), out of its budget's sight at once.
fn evict(inner: &mut Inner, node: &NodeName, i: usize, options: &DrainOptions, now: u64) -> bool {
    let start = inner.timings.pod_start.as_millis() as u64;
    let verb = if options.disable_eviction {
        "delete"
    } else {
        "evict"
    };
    let what = format!("{verb} {}", pod_ref(&inner.state.pods[i]));
    let gone = if inner.state.pods[i].kind == PodKind::Replicated && inner.reschedule {
        let target = inner.place(Some(node));
        let p = &mut inner.state.pods[i];
        p.ready_at_ms = target.as_ref().map(|_| now + start);
        p.node = target;
        false
    } else {
        inner.state.pods[i].node = None;
        inner.state.pods[i].ready_at_ms = None;
        true
    };
    inner.record(node, what);
    gone
}
