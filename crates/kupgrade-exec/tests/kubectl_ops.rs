//! [`KubectlOps`] under kupgrade-core's cluster-operations conformance suite, against the real
//! test API server (`scripts/testenv.sh up`), with a real kubectl: Debian's v1.20.2, which
//! `scripts/testenv.sh` unpacks and names in `KUPGRADE_TEST_KUBECTL`.
//!
//! kubectl runs through the local runner on a stand-in "node" whose `PATH` starts with a
//! sandbox: that kubectl, and a `sudo` stub (sudo is not installed here) that runs the
//! command as the current user. The kubeconfig is the test server's, not kubeadm's
//! `/etc/kubernetes/admin.conf`. Nodes, pods and budgets are made, and deleted pods finalized,
//! by kupgrade-kube's real-server harness (a simulated kubelet; no controllers run).
//!
//! Without `KUPGRADE_TEST_KUBECONFIG` the tests print "skipped" and pass, unless
//! `KUPGRADE_REQUIRE_REAL_SERVERS=1`, when they fail.
#[path = "../../kupgrade-kube/tests/support/mod.rs"]
mod apiserver;
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apiserver::{Env, Kind, NodeSpec, Scope};
use async_trait::async_trait;
use kube::api::ApiResource;
use kupgrade_core::conformance::cluster_ops::{self, Capabilities, ClusterFixture, PodKind};
use kupgrade_core::ports::{BoxError, ClusterOperations, OpsError, PodRef};
use kupgrade_core::{ClusterState, KubeVersion, NodeName};
use kupgrade_exec::{KubectlOps, LocalRunner, NodeEnv};
use serde_json::json;

/// The kubectl to run, or `None` (after saying so) when there is none and none is required.
fn kubectl() -> Option<PathBuf> {
    match std::env::var_os("KUPGRADE_TEST_KUBECTL") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var("KUPGRADE_REQUIRE_REAL_SERVERS").as_deref() == Ok("1") => panic!(
            "KUPGRADE_REQUIRE_REAL_SERVERS=1 but KUPGRADE_TEST_KUBECTL is not set: start the \
             test apiserver with scripts/testenv.sh up DIR (it unpacks kubectl) and source DIR/env"
        ),
        None => {
            println!("skipped: no test kubectl (run scripts/test.sh)");
            None
        }
    }
}

/// A strict sandbox's `bin` (the whole PATH): the test kubectl, a `sudo` stub and the harmless
/// programs.
fn sandbox(kubectl: &std::path::Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("sandbox");
    support::write_stub_sudo(dir.path());
    std::os::unix::fs::symlink(kubectl, dir.path().join("kubectl")).expect("link kubectl");
    kupgrade_exec::node_env::provide_programs(
        dir.path(),
        kupgrade_exec::node_env::SANDBOX_PROGRAMS,
    )
    .expect("provide the sandbox's programs");
    dir
}

/// [`KubectlOps`] as the apply example builds it, on the stand-in node `kubectl-host`, with
/// the test server's kubeconfig at `kubeconfig`.
fn ops(bin: &std::path::Path, kubeconfig: &std::path::Path) -> KubectlOps {
    let bin = bin.to_path_buf();
    let runner = LocalRunner::new()
        .allow_sudo()
        .with_node_env(move |_| NodeEnv::new().path_prefix(bin.clone()).path_only());
    KubectlOps::new(
        Arc::new(runner),
        "kubectl-host".parse().unwrap(),
        ClusterState::new(Vec::new()),
    )
    .kubeconfig(kubeconfig.to_str().expect("a UTF-8 path"))
    .poll_interval(Duration::from_millis(200))
}

struct KubectlFixture {
    scope: Scope,
    ops: KubectlOps,
    nodes: AtomicUsize,
    daemonset: tokio::sync::OnceCell<()>,
    _sandbox: tempfile::TempDir,
}

impl KubectlFixture {
    async fn new(env: &Env, kubectl: &std::path::Path, test: &str) -> KubectlFixture {
        let sandbox = sandbox(kubectl);
        KubectlFixture {
            scope: Scope::new(env, test).await,
            ops: ops(sandbox.path(), &env.kubeconfig),
            nodes: AtomicUsize::new(0),
            daemonset: tokio::sync::OnceCell::new(),
            _sandbox: sandbox,
        }
    }

    /// The DaemonSet the harness's DaemonSet pods name as their controller: kubectl drain
    /// looks it up (a pod whose DaemonSet is gone is refused unless forced).
    async fn ensure_daemonset(&self) -> Result<(), BoxError> {
        self.daemonset
            .get_or_try_init(|| async {
                let ar = ApiResource {
                    group: "apps".into(),
                    version: "v1".into(),
                    api_version: "apps/v1".into(),
                    kind: "DaemonSet".into(),
                    plural: "daemonsets".into(),
                };
                let template = json!({ "metadata": { "labels": { "app": "agent" } },
                    "spec": { "containers": [{ "name": "agent", "image": "registry.example/agent:v1" }] } });
                self.scope
                    .create_dynamic(
                        &self.scope.ns,
                        &ar,
                        json!({ "apiVersion": "apps/v1", "kind": "DaemonSet",
                            "metadata": { "name": "ds", "namespace": self.scope.ns },
                            "spec": { "selector": { "matchLabels": { "app": "agent" } },
                                      "template": template } }),
                    )
                    .await
                    .map(|_| ())
            })
            .await
            .copied()
    }
}

#[async_trait]
impl ClusterFixture for KubectlFixture {
    fn ops(&self) -> &dyn ClusterOperations {
        &self.ops
    }
    async fn add_node(&self, version: &KubeVersion) -> Result<NodeName, BoxError> {
        let n = self.nodes.fetch_add(1, Ordering::Relaxed);
        Ok(self
            .scope
            .node(&format!("n{n}"), NodeSpec::worker(&version.to_string()))
            .await)
    }
    async fn add_pod(
        &self,
        node: &NodeName,
        kind: PodKind,
        labels: &BTreeMap<String, String>,
    ) -> Result<PodRef, BoxError> {
        let kind = match kind {
            PodKind::Replicated => Kind::Replicated,
            PodKind::DaemonSet => {
                self.ensure_daemonset().await?;
                Kind::DaemonSet
            }
            PodKind::Mirror => Kind::Mirror,
            PodKind::Unreplicated => Kind::Unreplicated,
            PodKind::EmptyDir => Kind::EmptyDir,
            other => return Err(format!("the harness cannot make {other:?} pods").into()),
        };
        self.scope.pod(node, kind, labels).await
    }
    async fn add_budget(
        &self,
        labels: &BTreeMap<String, String>,
        disruptions: u32,
    ) -> Result<String, BoxError> {
        self.scope.budget(labels, disruptions).await
    }
    async fn pods_on(&self, node: &NodeName) -> Result<Vec<PodRef>, BoxError> {
        self.scope.pods_on(node).await
    }
    async fn is_cordoned(&self, node: &NodeName) -> Result<bool, BoxError> {
        self.scope.is_cordoned(node).await
    }
    async fn set_kubelet(
        &self,
        node: &NodeName,
        version: &KubeVersion,
        ready: bool,
    ) -> Result<(), BoxError> {
        self.scope
            .set_node_status(node, &version.to_string(), "Ubuntu 22.04.4 LTS", ready)
            .await
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let Some(env) = apiserver::env().await else { return };
            let Some(kubectl) = kubectl() else { return };
            let f = KubectlFixture::new(&env, &kubectl, stringify!($name)).await;
            run_check!($name, &f);
            f.scope.cleanup().await;
        }
    )*};
}

macro_rules! run_check {
    (cordon_is_idempotent, $f:expr) => {
        cluster_ops::cordon_is_idempotent($f).await
    };
    (huge_timeouts_do_not_overflow, $f:expr) => {
        cluster_ops::huge_timeouts_do_not_overflow($f).await
    };
    ($name:ident, $f:expr) => {
        cluster_ops::$name($f, &Capabilities::default()).await
    };
}

conformance!(
    cordon_is_idempotent,
    drain_evicts_and_skips,
    drain_refuses_unless_asked,
    drain_honours_disruption_budgets,
    drain_deletes_emptydir_data_when_asked,
    drain_without_eviction_ignores_budgets,
    wait_ready,
    huge_timeouts_do_not_overflow,
);

/// The state is read through kubectl: the node as the API shows it; a user without RBAC
/// grants is refused as `Forbidden`.
#[tokio::test]
async fn the_state_comes_from_the_api_and_refusals_are_forbidden() {
    let Some(env) = apiserver::env().await else {
        return;
    };
    let Some(kubectl) = kubectl() else { return };
    let f = KubectlFixture::new(&env, &kubectl, "kubectlstate").await;
    let node = f.scope.node("w", NodeSpec::worker("v1.29.3")).await;
    f.ops.cordon(&node).await.unwrap();
    let state = f.ops.state().await.unwrap();
    let n = state.node(node.as_str()).expect("the node is in the state");
    assert_eq!(n.versions.kubelet, Some(apiserver::v("v1.29.3")));
    assert!(n.ready && n.unschedulable, "{n:?}");

    let limited = env
        .limited
        .clone()
        .expect("scripts/testenv.sh writes a kubeconfig for user limited");
    let refused = ops(f._sandbox.path(), &limited);
    match refused.uncordon(&node).await {
        Err(OpsError::Forbidden { message }) => {
            assert!(message.contains("\"limited\""), "{message}")
        }
        other => panic!("uncordon as user limited gave {other:?}, expected Forbidden"),
    }
    assert!(f.scope.is_cordoned(&node).await.unwrap());
    f.scope.cleanup().await;
}
