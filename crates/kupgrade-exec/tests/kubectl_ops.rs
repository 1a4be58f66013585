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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use apiserver::cluster_ops::{ScopeFixture, cluster_ops_suite};
use apiserver::{Env, NodeSpec, Scope};
use kupgrade_core::ClusterState;
use kupgrade_core::ports::{ClusterOperations, OpsError};
use kupgrade_exec::{KubectlOps, LocalRunner, NodeEnv};

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

async fn fixture(test: &str) -> Option<ScopeFixture<KubectlOps>> {
    let env = apiserver::env().await?;
    let kubectl = kubectl()?;
    Some(fixture_on(&env, &kubectl, test).await)
}

/// [`KubectlOps`] in a sandbox with `kubectl`, on the test's own scope of `env`.
async fn fixture_on(env: &Env, kubectl: &std::path::Path, test: &str) -> ScopeFixture<KubectlOps> {
    let sandbox = sandbox(kubectl);
    let ops = ops(sandbox.path(), &env.kubeconfig);
    ScopeFixture::new(Scope::new(env, test).await, ops)
        .with_daemonset()
        .in_sandbox(sandbox)
}

cluster_ops_suite!(fixture);

/// The state is read through kubectl: the node as the API shows it; a user without RBAC
/// grants is refused as `Forbidden`.
#[tokio::test]
async fn the_state_comes_from_the_api_and_refusals_are_forbidden() {
    let Some(env) = apiserver::env().await else {
        return;
    };
    let Some(kubectl) = kubectl() else { return };
    let f = fixture_on(&env, &kubectl, "kubectlstate").await;
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
    let sandbox = f.sandbox.as_ref().expect("the fixture keeps its sandbox");
    let refused = ops(sandbox.path(), &limited);
    match refused.uncordon(&node).await {
        Err(OpsError::Forbidden { message }) => {
            assert!(message.contains("\"limited\""), "{message}")
        }
        other => panic!("uncordon as user limited gave {other:?}, expected Forbidden"),
    }
    assert!(f.scope.is_cordoned(&node).await.unwrap());
    f.scope.cleanup().await;
}
