//! The [`ClusterOperations`] conformance suite.
//!
//! The suite drives a backend through a [`ClusterFixture`]: the backend's test harness sets up
//! nodes, pods and disruption budgets the way the backend's world has them (Node and Pod
//! objects on an API server, entries in a simulated cluster) and reads their state back, so
//! the same checks run against the real API server and the simulation. [`run_all`] runs every
//! check; each is also public. It checks:
//!
//! - cordon and uncordon are idempotent, and the node really changes;
//! - a drain evicts replicated pods and leaves DaemonSet and mirror pods, reporting them as
//!   skipped;
//! - a drain refuses an unreplicated pod (evicting nothing) unless `force`, and a DaemonSet
//!   pod unless `ignore_daemonsets`;
//! - a drain honours disruption budgets: with a budget allowing one disruption of three pods it
//!   evicts one and fails with [`OpsError::DrainBlocked`] naming the two others and the
//!   budget, by its deadline;
//! - a drain refuses a pod with emptyDir data (evicting nothing) unless
//!   `delete_emptydir_data`;
//! - with `disable_eviction` a drain deletes the pods without asking their disruption budgets;
//! - uncordon after a failed drain makes the node schedulable again;
//! - `wait_ready` returns once the node is Ready at the release asked for (vendor suffixes
//!   ignored), and times out with [`OpsError::TimedOut`] otherwise;
//! - a wait or a drain given a huge timeout (`Duration::MAX`, `u64::MAX` seconds, as a user
//!   or a plan file may give) works as a very long one: no overflow, no panic.
//!
//! Every check makes its own nodes through the fixture, so a fixture that gives each node a
//! fresh name lets checks run concurrently. Failures panic with `conformance/<check>: …`.
use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::{BoxFuture, join_all};
use crate::ports::{BoxError, ClusterOperations, DrainOptions, OpsError, PodRef};
use crate::{KubeVersion, NodeName};

/// The kinds of pod a drain treats differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PodKind {
    /// Controlled by a ReplicaSet: evicted.
    Replicated,
    /// Controlled by a DaemonSet: skipped with `ignore_daemonsets`, refused otherwise.
    DaemonSet,
    /// The API's copy of a static pod (annotation `kubernetes.io/config.mirror`): skipped.
    Mirror,
    /// No controller: refused unless `force`.
    Unreplicated,
    /// Controlled by a ReplicaSet, with an `emptyDir` volume: refused unless
    /// `delete_emptydir_data`.
    EmptyDir,
}

/// What a backend's harness provides to the suite.
#[async_trait]
pub trait ClusterFixture: Send + Sync {
    /// The operations under test.
    fn ops(&self) -> &dyn ClusterOperations;
    /// Creates a Ready, schedulable worker node running kubelet `version`, with a name no
    /// other node has.
    async fn add_node(&self, version: &KubeVersion) -> Result<NodeName, BoxError>;
    /// Creates a running, Ready pod of `kind` on `node` with `labels`.
    async fn add_pod(
        &self,
        node: &NodeName,
        kind: PodKind,
        labels: &BTreeMap<String, String>,
    ) -> Result<PodRef, BoxError>;
    /// Creates a disruption budget selecting pods with `labels` that allows `disruptions`
    /// more evictions (and no more: evicted pods are not replaced during a check). Returns its
    /// name.
    async fn add_budget(
        &self,
        labels: &BTreeMap<String, String>,
        disruptions: u32,
    ) -> Result<String, BoxError>;
    /// The pods on `node` that are not being deleted, sorted.
    async fn pods_on(&self, node: &NodeName) -> Result<Vec<PodRef>, BoxError>;
    /// Whether `node` is cordoned.
    async fn is_cordoned(&self, node: &NodeName) -> Result<bool, BoxError>;
    /// Makes the node report kubelet `version` and Ready = `ready`, as a restarted kubelet
    /// would.
    async fn set_kubelet(
        &self,
        node: &NodeName,
        version: &KubeVersion,
        ready: bool,
    ) -> Result<(), BoxError>;
}

/// How the backend is exercised; each value is an argument, not a skip.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The drain deadline used by checks that expect a drain to be blocked (seconds, at least
    /// 1). Keep it short: those checks take this long.
    pub blocked_drain_timeout_seconds: u64,
    /// The timeout of `wait_ready` in the check that expects it to run out.
    pub short_wait: Duration,
    /// The timeout of waits and drains that are expected to succeed.
    pub long_wait: Duration,
}

impl Default for Capabilities {
    /// Blocked drains give up after 2 s, failing waits after 1 s, successful ones get 60 s.
    fn default() -> Self {
        Capabilities {
            blocked_drain_timeout_seconds: 2,
            short_wait: Duration::from_secs(1),
            long_wait: Duration::from_secs(60),
        }
    }
}

fn fail(check: &str, what: impl std::fmt::Display) -> ! {
    panic!("conformance/{check}: {what}")
}

fn labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_string(), app.to_string())])
}

fn v(s: &str) -> KubeVersion {
    s.parse().expect("the suite's versions parse")
}

async fn setup<T>(check: &str, r: Result<T, BoxError>) -> T {
    r.unwrap_or_else(|e| fail(check, format!("fixture failed: {e}")))
}

/// Runs every check, concurrently.
pub async fn run_all(f: &dyn ClusterFixture, caps: &Capabilities) {
    let checks: Vec<BoxFuture<'_, ()>> = vec![
        Box::pin(cordon_is_idempotent(f)),
        Box::pin(drain_evicts_and_skips(f, caps)),
        Box::pin(drain_refuses_unless_asked(f, caps)),
        Box::pin(drain_honours_disruption_budgets(f, caps)),
        Box::pin(drain_deletes_emptydir_data_when_asked(f, caps)),
        Box::pin(drain_without_eviction_ignores_budgets(f, caps)),
        Box::pin(wait_ready(f, caps)),
        Box::pin(huge_timeouts_do_not_overflow(f)),
    ];
    join_all(checks).await;
}

/// Cordon twice, uncordon twice: each call succeeds and the node follows.
pub async fn cordon_is_idempotent(f: &dyn ClusterFixture) {
    const C: &str = "cordon_is_idempotent";
    let node = setup(C, f.add_node(&v("v1.30.2")).await).await;
    for round in 1..=2 {
        if let Err(e) = f.ops().cordon(&node).await {
            fail(C, format!("cordon #{round}: {e}"));
        }
        if !setup(C, f.is_cordoned(&node).await).await {
            fail(C, format!("node {node} not cordoned after cordon #{round}"));
        }
    }
    for round in 1..=2 {
        if let Err(e) = f.ops().uncordon(&node).await {
            fail(C, format!("uncordon #{round}: {e}"));
        }
        if setup(C, f.is_cordoned(&node).await).await {
            fail(
                C,
                format!("node {node} still cordoned after uncordon #{round}"),
            );
        }
    }
    let missing: NodeName = "kupgrade-conformance-no-such-node".parse().expect("valid");
    match f.ops().cordon(&missing).await {
        Err(OpsError::NodeNotFound(n)) if n == missing => {}
        other => fail(
            C,
            format!("cordon of a missing node gave {other:?}, expected NodeNotFound"),
        ),
    }
}

/// Replicated pods go; DaemonSet and mirror pods stay and are reported as skipped.
pub async fn drain_evicts_and_skips(f: &dyn ClusterFixture, caps: &Capabilities) {
    const C: &str = "drain_evicts_and_skips";
    let node = setup(C, f.add_node(&v("v1.30.2")).await).await;
    let web1 = setup(
        C,
        f.add_pod(&node, PodKind::Replicated, &labels("web")).await,
    )
    .await;
    let web2 = setup(
        C,
        f.add_pod(&node, PodKind::Replicated, &labels("web")).await,
    )
    .await;
    let ds = setup(
        C,
        f.add_pod(&node, PodKind::DaemonSet, &labels("agent")).await,
    )
    .await;
    let mirror = setup(C, f.add_pod(&node, PodKind::Mirror, &labels("etcd")).await).await;
    let options = DrainOptions {
        timeout_seconds: caps.long_wait.as_secs().max(1),
        ..DrainOptions::default()
    };
    let report = match f.ops().drain(&node, &options).await {
        Ok(r) => r,
        Err(e) => fail(C, format!("drain failed: {e}")),
    };
    let mut evicted = report.evicted.clone();
    evicted.sort();
    let mut want = vec![web1, web2];
    want.sort();
    if evicted != want {
        fail(C, format!("evicted {evicted:?}, expected {want:?}"));
    }
    let mut skipped: Vec<PodRef> = report.skipped.iter().map(|(p, _)| p.clone()).collect();
    skipped.sort();
    let mut want_skipped = vec![ds.clone(), mirror.clone()];
    want_skipped.sort();
    if skipped != want_skipped {
        fail(C, format!("skipped {skipped:?}, expected {want_skipped:?}"));
    }
    if !report.blocked.is_empty() {
        fail(
            C,
            format!(
                "a successful drain reports blocked pods: {:?}",
                report.blocked
            ),
        );
    }
    let left = setup(C, f.pods_on(&node).await).await;
    if left != want_skipped {
        fail(
            C,
            format!("pods left on the node: {left:?}, expected {want_skipped:?}"),
        );
    }
    if !setup(C, f.is_cordoned(&node).await).await {
        fail(C, "a drained node is not cordoned");
    }
}

/// Unreplicated pods and (without `ignore_daemonsets`) DaemonSet pods stop a drain before any
/// eviction; `force` lets the unreplicated pod go.
pub async fn drain_refuses_unless_asked(f: &dyn ClusterFixture, caps: &Capabilities) {
    const C: &str = "drain_refuses_unless_asked";
    let node = setup(C, f.add_node(&v("v1.30.2")).await).await;
    let web = setup(
        C,
        f.add_pod(&node, PodKind::Replicated, &labels("web")).await,
    )
    .await;
    let bare = setup(
        C,
        f.add_pod(&node, PodKind::Unreplicated, &labels("bare"))
            .await,
    )
    .await;
    let ds = setup(
        C,
        f.add_pod(&node, PodKind::DaemonSet, &labels("agent")).await,
    )
    .await;
    let timeout_seconds = caps.long_wait.as_secs().max(1);

    let strict = DrainOptions {
        timeout_seconds,
        ignore_daemonsets: false,
        ..DrainOptions::default()
    };
    match f.ops().drain(&node, &strict).await {
        Err(OpsError::DrainBlocked { node: n, report }) => {
            if n != node {
                fail(C, format!("DrainBlocked names node {n}, expected {node}"));
            }
            let mut blocked: Vec<PodRef> = report.blocked.iter().map(|b| b.pod.clone()).collect();
            blocked.sort();
            let mut want = vec![bare.clone(), ds.clone()];
            want.sort();
            if blocked != want {
                fail(C, format!("blocked {blocked:?}, expected {want:?}"));
            }
            if report
                .blocked
                .iter()
                .any(|b| b.reason.is_empty() || b.budget.is_some())
            {
                fail(
                    C,
                    format!("refusals need a reason and no budget: {:?}", report.blocked),
                );
            }
            if !report.evicted.is_empty() {
                fail(C, format!("a refused drain evicted {:?}", report.evicted));
            }
        }
        other => fail(
            C,
            format!("strict drain gave {other:?}, expected DrainBlocked"),
        ),
    }
    let mut all = vec![web.clone(), bare.clone(), ds.clone()];
    all.sort();
    let left = setup(C, f.pods_on(&node).await).await;
    if left != all {
        fail(
            C,
            format!("a refused drain changed the pods: {left:?}, expected {all:?}"),
        );
    }

    let default = DrainOptions {
        timeout_seconds,
        ..DrainOptions::default()
    };
    match f.ops().drain(&node, &default).await {
        Err(OpsError::DrainBlocked { report, .. })
            if report.blocked.len() == 1 && report.blocked[0].pod == bare => {}
        other => fail(
            C,
            format!(
                "drain with an unreplicated pod gave {other:?}, expected DrainBlocked on {bare}"
            ),
        ),
    }

    let force = DrainOptions {
        timeout_seconds,
        force: true,
        ..DrainOptions::default()
    };
    match f.ops().drain(&node, &force).await {
        Ok(report) => {
            let mut evicted = report.evicted.clone();
            evicted.sort();
            let mut want = vec![web, bare];
            want.sort();
            if evicted != want {
                fail(
                    C,
                    format!("forced drain evicted {evicted:?}, expected {want:?}"),
                );
            }
        }
        Err(e) => fail(C, format!("forced drain failed: {e}")),
    }
    let left = setup(C, f.pods_on(&node).await).await;
    if left != vec![ds] {
        fail(C, format!("after the forced drain: {left:?}"));
    }
}

/// A budget allowing one disruption of three pods: one is evicted, two block the drain until
/// its deadline, the error names them and the budget; uncordon then works.
pub async fn drain_honours_disruption_budgets(f: &dyn ClusterFixture, caps: &Capabilities) {
    const C: &str = "drain_honours_disruption_budgets";
    let node = setup(C, f.add_node(&v("v1.30.2")).await).await;
    let app = labels("db");
    let mut pods = Vec::new();
    for _ in 0..3 {
        pods.push(setup(C, f.add_pod(&node, PodKind::Replicated, &app).await).await);
    }
    pods.sort();
    let budget = setup(C, f.add_budget(&app, 1).await).await;
    let options = DrainOptions {
        timeout_seconds: caps.blocked_drain_timeout_seconds.max(1),
        grace_period_seconds: Some(0),
        ..DrainOptions::default()
    };
    match f.ops().drain(&node, &options).await {
        Err(OpsError::DrainBlocked { node: n, report }) => {
            if n != node {
                fail(C, format!("DrainBlocked names node {n}, expected {node}"));
            }
            if report.evicted.len() != 1 || !pods.contains(&report.evicted[0]) {
                fail(
                    C,
                    format!(
                        "evicted {:?}, expected exactly one of {pods:?}",
                        report.evicted
                    ),
                );
            }
            let mut blocked: Vec<PodRef> = report.blocked.iter().map(|b| b.pod.clone()).collect();
            blocked.sort();
            let want: Vec<PodRef> = pods
                .iter()
                .filter(|p| **p != report.evicted[0])
                .cloned()
                .collect();
            if blocked != want {
                fail(C, format!("blocked {blocked:?}, expected {want:?}"));
            }
            for b in &report.blocked {
                if b.budget.as_deref() != Some(budget.as_str()) {
                    fail(
                        C,
                        format!(
                            "blocked pod {} names budget {:?}, expected {budget:?}",
                            b.pod, b.budget
                        ),
                    );
                }
            }
            let text = OpsError::DrainBlocked {
                node: n,
                report: report.clone(),
            }
            .to_string();
            if !text.contains(&budget) || !text.contains(&want[0].name) {
                fail(
                    C,
                    format!("the message does not name the budget and the pods: {text}"),
                );
            }
            let left = setup(C, f.pods_on(&node).await).await;
            if left != want {
                fail(
                    C,
                    format!("pods left on the node: {left:?}, expected {want:?}"),
                );
            }
        }
        other => fail(
            C,
            format!("drain gave {other:?}, expected DrainBlocked by budget {budget}"),
        ),
    }
    if !setup(C, f.is_cordoned(&node).await).await {
        fail(C, "the node is not cordoned after a blocked drain");
    }
    if let Err(e) = f.ops().uncordon(&node).await {
        fail(C, format!("uncordon after a failed drain: {e}"));
    }
    if setup(C, f.is_cordoned(&node).await).await {
        fail(C, "uncordon after a failed drain left the node cordoned");
    }
}

/// A pod with emptyDir data stops a drain before any eviction; `delete_emptydir_data` lets
/// it go.
pub async fn drain_deletes_emptydir_data_when_asked(f: &dyn ClusterFixture, caps: &Capabilities) {
    const C: &str = "drain_deletes_emptydir_data_when_asked";
    let node = setup(C, f.add_node(&v("v1.30.2")).await).await;
    let web = setup(
        C,
        f.add_pod(&node, PodKind::Replicated, &labels("web")).await,
    )
    .await;
    let scratch = setup(
        C,
        f.add_pod(&node, PodKind::EmptyDir, &labels("cache")).await,
    )
    .await;
    let timeout_seconds = caps.long_wait.as_secs().max(1);
    let default = DrainOptions {
        timeout_seconds,
        ..DrainOptions::default()
    };
    match f.ops().drain(&node, &default).await {
        Err(OpsError::DrainBlocked { report, .. })
            if report.blocked.len() == 1
                && report.blocked[0].pod == scratch
                && report.blocked[0].budget.is_none()
                && report.evicted.is_empty() => {}
        other => fail(
            C,
            format!(
                "drain with emptyDir data gave {other:?}, expected DrainBlocked on {scratch} alone"
            ),
        ),
    }
    let mut all = vec![web.clone(), scratch.clone()];
    all.sort();
    let left = setup(C, f.pods_on(&node).await).await;
    if left != all {
        fail(
            C,
            format!("a refused drain changed the pods: {left:?}, expected {all:?}"),
        );
    }
    let lose = DrainOptions {
        timeout_seconds,
        delete_emptydir_data: true,
        ..DrainOptions::default()
    };
    match f.ops().drain(&node, &lose).await {
        Ok(report) => {
            let mut evicted = report.evicted.clone();
            evicted.sort();
            if evicted != all {
                fail(
                    C,
                    format!(
                        "drain with delete_emptydir_data evicted {evicted:?}, expected {all:?}"
                    ),
                );
            }
        }
        Err(e) => fail(C, format!("drain with delete_emptydir_data failed: {e}")),
    }
    let left = setup(C, f.pods_on(&node).await).await;
    if !left.is_empty() {
        fail(C, format!("pods left after the drain: {left:?}"));
    }
}

/// A budget allowing no disruption blocks an eviction, not a deletion: with
/// `disable_eviction` every covered pod goes, and the drain succeeds.
pub async fn drain_without_eviction_ignores_budgets(f: &dyn ClusterFixture, caps: &Capabilities) {
    const C: &str = "drain_without_eviction_ignores_budgets";
    let node = setup(C, f.add_node(&v("v1.30.2")).await).await;
    let app = labels("quorum");
    let mut pods = Vec::new();
    for _ in 0..2 {
        pods.push(setup(C, f.add_pod(&node, PodKind::Replicated, &app).await).await);
    }
    pods.sort();
    setup(C, f.add_budget(&app, 0).await).await;
    let options = DrainOptions {
        timeout_seconds: caps.long_wait.as_secs().max(1),
        grace_period_seconds: Some(0),
        disable_eviction: true,
        ..DrainOptions::default()
    };
    match f.ops().drain(&node, &options).await {
        Ok(report) => {
            let mut evicted = report.evicted.clone();
            evicted.sort();
            if evicted != pods {
                fail(C, format!("deleted {evicted:?}, expected {pods:?}"));
            }
        }
        Err(e) => fail(C, format!("drain with disable_eviction failed: {e}")),
    }
    let left = setup(C, f.pods_on(&node).await).await;
    if !left.is_empty() {
        fail(C, format!("pods left after the drain: {left:?}"));
    }
    if !setup(C, f.is_cordoned(&node).await).await {
        fail(C, "a drained node is not cordoned");
    }
}

/// `wait_ready` times out on the wrong version or a NotReady node, and returns when the
/// kubelet comes back at the release asked for (a vendor build of it counts).
pub async fn wait_ready(f: &dyn ClusterFixture, caps: &Capabilities) {
    const C: &str = "wait_ready";
    let node = setup(C, f.add_node(&v("v1.29.6")).await).await;
    let ops = f.ops();
    match ops.wait_ready(&node, &v("v1.30.2"), caps.short_wait).await {
        Err(OpsError::TimedOut { after, what }) => {
            if after != caps.short_wait {
                fail(
                    C,
                    format!("TimedOut after {after:?}, expected {:?}", caps.short_wait),
                );
            }
            if !what.contains(node.as_str()) || !what.contains("v1.30.2") {
                fail(
                    C,
                    format!("the timeout does not name the node and version: {what}"),
                );
            }
        }
        other => fail(
            C,
            format!("waiting for the wrong version gave {other:?}, expected TimedOut"),
        ),
    }
    if let Err(e) = ops.wait_ready(&node, &v("v1.29.6"), caps.long_wait).await {
        fail(C, format!("node already Ready at v1.29.6: {e}"));
    }

    setup(C, f.set_kubelet(&node, &v("v1.30.2"), false).await).await;
    match ops.wait_ready(&node, &v("v1.30.2"), caps.short_wait).await {
        Err(OpsError::TimedOut { .. }) => {}
        other => fail(
            C,
            format!("waiting on a NotReady node gave {other:?}, expected TimedOut"),
        ),
    }

    // The wait starts first and must see the kubelet's update.
    let target = v("v1.30.2");
    let waiting: BoxFuture<'_, Result<(), BoxError>> = Box::pin(async {
        ops.wait_ready(&node, &target, caps.long_wait)
            .await
            .map_err(BoxError::from)
    });
    let vendor = v("v1.30.2-eks-1a2b3c");
    let update: BoxFuture<'_, Result<(), BoxError>> = Box::pin(f.set_kubelet(&node, &vendor, true));
    for (i, r) in join_all(vec![waiting, update])
        .await
        .into_iter()
        .enumerate()
    {
        if let Err(e) = r {
            let what = if i == 0 { "wait_ready" } else { "set_kubelet" };
            fail(
                C,
                format!("{what} while the kubelet comes back at a vendor build: {e}"),
            );
        }
    }
}

/// A Ready node waited for with `Duration::MAX`, and a node drained with `u64::MAX` seconds,
/// succeed at once: a huge timeout is a long one, never an overflow.
pub async fn huge_timeouts_do_not_overflow(f: &dyn ClusterFixture) {
    const C: &str = "huge_timeouts_do_not_overflow";
    let node = setup(C, f.add_node(&v("v1.29.6")).await).await;
    let ops = f.ops();
    if let Err(e) = ops.wait_ready(&node, &v("v1.29.6"), Duration::MAX).await {
        fail(
            C,
            format!("waiting with Duration::MAX for a Ready node: {e}"),
        );
    }
    let pod = setup(
        C,
        f.add_pod(&node, PodKind::Replicated, &labels("big")).await,
    )
    .await;
    let options = DrainOptions {
        timeout_seconds: u64::MAX,
        ..DrainOptions::default()
    };
    match ops.drain(&node, &options).await {
        Ok(r) if r.evicted == [pod.clone()] => {}
        Ok(r) => fail(C, format!("evicted {:?}, expected {pod:?}", r.evicted)),
        Err(e) => fail(C, format!("a drain given u64::MAX seconds: {e}")),
    }
}
