//! [`PodRunner`] under kupgrade-core's command-runner conformance suite, against the real
//! test API server (`scripts/testenv.sh up`).
//!
//! The test server has no kubelet: `support/kubelet.rs` plays one for the test's node. It runs
//! each command pod's shell line as a local process, reports the container's state, kills the
//! process when the pod is deleted, and serves the log to the API server, which the runner
//! reads through `pods/log` as it would on a real cluster. What a pod cannot carry are the
//! suite's capabilities, not skipped checks: stdin up to [`PodRunner::MAX_STDIN`] (it travels
//! in the pod spec), stderr merged into stdout (one log), lines after the command ends, sudo
//! implicit (the command is root on the host), signals as `128 + signal`.
//!
//! Without `KUPGRADE_TEST_KUBECONFIG` the test prints "skipped" and passes, unless
//! `KUPGRADE_REQUIRE_REAL_SERVERS=1`, when it fails.
#[path = "support/kubelet.rs"]
mod kubelet;
mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kupgrade_core::conformance::command_runner::{
    self, Capabilities, SignalReport, StderrCapture, SudoSupport,
};
use kupgrade_kube::PodRunner;
use support::NodeSpec;

#[tokio::test]
async fn pod_runner_conforms() {
    let Some((env, scope)) = support::scope("podconform").await else {
        return;
    };
    let node = scope.node("w", NodeSpec::worker("v1.29.3")).await;
    let _kubelet = kubelet::ProcessKubelet::start(&scope.client, &scope.ns, &node)
        .await
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    std::fs::create_dir(scratch.path().join("locks")).unwrap();
    let runner = scope
        .pod_runner(Duration::from_secs(20))
        // Node-side locks in the scratch directory, not this machine's /run.
        .lock_dir(scratch.path().join("locks").to_str().unwrap());
    // The test's kubelet runs commands as this process's user; a real node's, as root.
    let uid = rustix::process::getuid().as_raw().to_string();
    let caps = Capabilities::new(scratch.path().to_str().unwrap())
        .sudo(SudoSupport::Implicit { uid })
        .signals(SignalReport::ShellStatus)
        .streams_live(false)
        .max_stdin(PodRunner::MAX_STDIN)
        .stderr(StderrCapture::MergedIntoStdout);
    command_runner::run_all(&runner, &node, &caps).await;

    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &scope.ns);
    let left = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=node-command"))
        .await
        .unwrap();
    assert!(
        left.items.is_empty(),
        "command pods were left behind: {:?}",
        left.items
            .iter()
            .map(|p| p.metadata.name.clone())
            .collect::<Vec<_>>()
    );
    scope.cleanup().await;
}
