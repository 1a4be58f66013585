//! A plan made from an out-of-date inventory (a halted run already moved cp-1's control
//! plane) is refused at its pre-flight check when the state is read on the nodes themselves
//! through the local executor: not a command of the plan runs.
mod support;

use std::path::Path;
use std::sync::Arc;

use kupgrade_core::ports::ClusterOperations;
use kupgrade_core::run::StopReason;
use kupgrade_core::{Component, NodeName};
use kupgrade_exec::driver::Driver;
use kupgrade_exec::sim::SimCluster;
use kupgrade_exec::{LocalRunner, NodeEnv, NodeReadOps};
use support::fixtures::{drive_to_end, ha, ha_plan, halted_at};
use support::{write_script, write_stub_sudo};

/// Programs the plan's commands would call: each only logs and fails, so nothing outside the
/// sandbox can change even if a command ran.
const GUARDED: [&str; 11] = [
    "mkdir",
    "cp",
    "etcdctl",
    "tee",
    "apt-get",
    "apt-mark",
    "dpkg",
    "dnf",
    "zypper",
    "systemctl",
    "kubectl",
];

/// A node's sandbox: `kubeadm` at `kubeadm`, its manifests' images at `control_plane` (with
/// etcd at `etcd`), every call logged to `log`.
fn sandbox(root: &Path, node: &NodeName, kubeadm: &str, control_plane: Option<(&str, &str)>) {
    let dir = root.join(node.as_str());
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    write_stub_sudo(&bin);
    let log = r#"printf '%s\n' "${0##*/} $*" >>"$KUPGRADE_NODE_ROOT/log""#;
    write_script(
        &bin,
        "kubeadm",
        &format!("{log}\n[ \"$*\" = 'version -o short' ] || exit 1\necho {kubeadm}\n"),
    );
    for program in GUARDED {
        write_script(&bin, program, &format!("{log}\nexit 1\n"));
    }
    // A strict sandbox: the stub sudo needs `id`, `sudo -n env` `env`, the state reader
    // `grep`; there is no `kubelet` (the state has the kubelets' versions).
    kupgrade_exec::node_env::provide_programs(&bin, &["id", "env", "grep"]).unwrap();
    if let Some((version, etcd)) = control_plane {
        let manifests = dir.join("fs/etc/kubernetes/manifests");
        std::fs::create_dir_all(&manifests).unwrap();
        for c in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            std::fs::write(
                manifests.join(format!("{c}.yaml")),
                format!("spec:\n  containers:\n  - name: {c}\n    image: registry.k8s.io/{c}:{version}\n"),
            )
            .unwrap();
        }
        std::fs::write(
            manifests.join("etcd.yaml"),
            format!("spec:\n  containers:\n  - image: registry.k8s.io/etcd:{etcd}\n"),
        )
        .unwrap();
    }
}

#[tokio::test]
async fn a_stale_inventory_is_refused_before_any_command() {
    let inventory = ha();
    let plan = ha_plan(|_| {});
    let root = tempfile::tempdir().unwrap();
    for n in &inventory.nodes {
        let cp = match (n.is_control_plane(), n.name.as_str()) {
            (true, "cp-1") => Some(("v1.29.15", "3.5.10-0")),
            (true, _) => Some(("v1.28.9", "3.5.9-0")),
            (false, _) => None,
        };
        let kubeadm = if n.name.as_str() == "cp-1" {
            "v1.29.15"
        } else {
            "v1.28.9"
        };
        sandbox(root.path(), &n.name, kubeadm, cp);
    }
    let sandboxes = root.path().to_path_buf();
    let runner = Arc::new(
        LocalRunner::new()
            .allow_sudo()
            .with_node_env(move |n| NodeEnv::sandbox(&sandboxes, n)),
    );
    // The inner operations know only the inventory (as kubectl-less as it gets).
    let ops = Arc::new(
        NodeReadOps::new(Arc::new(SimCluster::new(inventory.clone())), runner.clone())
            .manifests_dir("fs/etc/kubernetes/manifests"),
    );

    // What the nodes say: cp-1 moved, the others as the inventory has them.
    let state = ops.state().await.unwrap();
    let cp1 = state.node("cp-1").unwrap();
    for c in [
        Component::Kubeadm,
        Component::KubeApiserver,
        Component::KubeControllerManager,
        Component::KubeScheduler,
    ] {
        assert_eq!(cp1.versions.get(c).unwrap().to_string(), "v1.29.15", "{c}");
    }
    assert_eq!(cp1.versions.etcd.as_ref().unwrap().to_string(), "v3.5.10-0");
    for n in inventory.nodes.iter().filter(|n| n.name.as_str() != "cp-1") {
        assert_eq!(
            state.node(n.name.as_str()).unwrap().versions,
            n.versions,
            "{}",
            n.name
        );
    }

    let out = drive_to_end(Driver::new(runner, ops), &plan, &mut Vec::new()).await;
    let (report, _) = halted_at(&out.finished, StopReason::Drift, plan.steps[0].id.as_str());
    let text = report.to_string();
    for c in [
        "kubeadm",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        assert!(
            text.contains(&format!(
                "cp-1: expected {c} v1.28.9, where the plan starts, found {c} v1.29.15"
            )),
            "{text}"
        );
    }
    assert!(
        text.contains("cp-1: expected etcd v3.5.9-0, where the plan starts, found etcd v3.5.10-0"),
        "{text}"
    );
    // Only the state was read: each node was asked for its kubeadm, and nothing else ran.
    for n in &inventory.nodes {
        let log = std::fs::read_to_string(root.path().join(n.name.as_str()).join("log")).unwrap();
        assert!(
            log.lines().all(|l| l == "kubeadm version -o short"),
            "{}: {log}",
            n.name
        );
    }
}
