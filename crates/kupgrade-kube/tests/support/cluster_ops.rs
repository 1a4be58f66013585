//! kupgrade-core's cluster-operations conformance suite on the real server, for any backend
//! (`tests/apiserver.rs` runs it on `KubeClusterOps`, kupgrade-exec's `tests/kubectl_ops.rs`
//! on `KubectlOps`): the harness makes the nodes, pods and budgets, the backend acts on them.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use kube::api::ApiResource;
use kupgrade_core::conformance::cluster_ops::{ClusterFixture, PodKind};
use kupgrade_core::ports::{BoxError, ClusterOperations, PodRef};
use kupgrade_core::{KubeVersion, NodeName};
use serde_json::json;

use super::{Kind, NodeSpec, Scope};

/// The backend `ops` on the nodes, pods and budgets of the test's own [`Scope`].
pub struct ScopeFixture<O> {
    pub scope: Scope,
    pub ops: O,
    nodes: AtomicUsize,
    /// `Some` when DaemonSet pods get a real DaemonSet as their controller (made once).
    daemonset: Option<tokio::sync::OnceCell<()>>,
    /// The backend's sandbox, when it has one: kept as long as the fixture.
    pub sandbox: Option<tempfile::TempDir>,
}

impl<O> ScopeFixture<O> {
    pub fn new(scope: Scope, ops: O) -> Self {
        ScopeFixture {
            scope,
            ops,
            nodes: AtomicUsize::new(0),
            daemonset: None,
            sandbox: None,
        }
    }

    /// DaemonSet pods name a DaemonSet that exists: kubectl drain looks it up (a pod whose
    /// DaemonSet is gone is refused unless forced).
    pub fn with_daemonset(mut self) -> Self {
        self.daemonset = Some(tokio::sync::OnceCell::new());
        self
    }

    /// Keeps the backend's sandbox `dir` as long as the fixture.
    pub fn in_sandbox(mut self, dir: tempfile::TempDir) -> Self {
        self.sandbox = Some(dir);
        self
    }

    async fn ensure_daemonset(&self) -> Result<(), BoxError> {
        let Some(made) = &self.daemonset else {
            return Ok(());
        };
        made.get_or_try_init(|| async {
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
impl<O: ClusterOperations> ClusterFixture for ScopeFixture<O> {
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

/// One `#[tokio::test]` per check of the suite, each on the fixture `$fixture(test_name)`
/// makes (an `async fn(&str) -> Option<ScopeFixture<_>>`; `None` skips), whose scope is
/// cleaned up after the check. The caller imports the macro by name (it calls itself).
#[allow(unused_macros)]
macro_rules! cluster_ops_suite {
    ($fixture:ident) => {
        cluster_ops_suite!(@tests $fixture:
            cordon_is_idempotent,
            drain_evicts_and_skips,
            drain_refuses_unless_asked,
            drain_honours_disruption_budgets,
            drain_deletes_emptydir_data_when_asked,
            drain_without_eviction_ignores_budgets,
            wait_ready,
            huge_timeouts_do_not_overflow,
        );
    };
    (@tests $fixture:ident: $($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let Some(f) = $fixture(stringify!($name)).await else { return };
            cluster_ops_suite!(@check $name, &f);
            f.scope.cleanup().await;
        }
    )*};
    (@check cordon_is_idempotent, $f:expr) => {
        kupgrade_core::conformance::cluster_ops::cordon_is_idempotent($f).await
    };
    (@check huge_timeouts_do_not_overflow, $f:expr) => {
        kupgrade_core::conformance::cluster_ops::huge_timeouts_do_not_overflow($f).await
    };
    (@check $name:ident, $f:expr) => {
        kupgrade_core::conformance::cluster_ops::$name(
            $f,
            &kupgrade_core::conformance::cluster_ops::Capabilities::default(),
        )
        .await
    };
}
#[allow(unused_imports)]
pub(crate) use cluster_ops_suite;
