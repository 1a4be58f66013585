//! Node-side readiness evidence through the local executor's strict sandboxes, with stubs
//! answering like the real programs (`stat -fc %T`, `df -P -k`, `kubeadm certs
//! check-expiration -o json` in kubeadm's own output shape, `apt-cache madison`, `dnf list
//! --showduplicates`), then evaluated by the catalogue.
mod support;

use std::path::Path;

use jiff::civil::date;
use kupgrade_core::NodeName;
use kupgrade_core::plan::PlanRequest;
use kupgrade_core::readiness::{
    Catalogue, Coverage, DiskPurpose, Evidence, Gathered, MissingReason,
};
use kupgrade_exec::node_evidence::{
    NodeEvidenceOptions, gather_node, gather_nodes, merge_node_facts,
};
use kupgrade_exec::{LocalRunner, NodeEnv};
use support::{write_script, write_stub_sudo};

/// What `kubeadm certs check-expiration -o json` prints (kubeadm 1.33), after its
/// `[check-expiration]` line: the apiserver certificate, managed outside kubeadm (which will
/// not renew it), expires five minutes into the run.
const CERTS: &str = r#"[check-expiration] Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...
{
    "kind": "CertificateExpirationInfo",
    "apiVersion": "output.kubeadm.k8s.io/v1alpha3",
    "certificates": [
        {
            "name": "admin.conf",
            "expirationDate": "2027-01-20T10:00:00Z",
            "residualTime": 31000000,
            "externallyManaged": false,
            "caName": "ca",
            "missing": false
        },
        {
            "name": "apiserver",
            "expirationDate": "2026-03-01T00:05:00Z",
            "residualTime": 600000,
            "externallyManaged": true,
            "caName": "ca",
            "missing": false
        }
    ],
    "certificateAuthorities": [
        {
            "name": "ca",
            "expirationDate": "2035-01-18T10:00:00Z",
            "residualTime": 283000000,
            "externallyManaged": false,
            "missing": false
        }
    ]
}
"#;

fn sandbox(root: &Path, node: &str, stubs: &[(&str, &str)]) {
    let bin = root.join(node).join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    write_stub_sudo(&bin);
    for (name, body) in stubs {
        write_script(&bin, name, body);
    }
    kupgrade_exec::node_env::provide_programs(&bin, kupgrade_exec::node_env::SANDBOX_PROGRAMS)
        .unwrap();
}

fn df(free_kib: u64) -> String {
    format!(
        "echo 'Filesystem     1024-blocks     Used Available Capacity Mounted on'\n\
         echo '/dev/vda1         51474912 12345678 {free_kib}      25% /'\n"
    )
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_facts_come_from_stubs_and_reach_the_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let madison = "case \"$2\" in\n\
        kubeadm|kubelet|kubectl) echo \"   $2 | 1.34.2-1.1 | https://pkgs.k8s.io/core:/stable:/v1.34/deb  Packages\"\n\
        echo \"   $2 | 1.33.5-1.1 | https://pkgs.k8s.io/core:/stable:/v1.33/deb  Packages\"\n\
        echo \"   $2 | 1.33.4-1.1 | https://pkgs.k8s.io/core:/stable:/v1.33/deb  Packages\";;\n\
        esac\n";
    let cgroup_v1 = "[ \"$*\" = '-fc %T /sys/fs/cgroup' ] || exit 2; echo tmpfs\n";
    let df_stub = df(1024);
    sandbox(
        root,
        "cp-1",
        &[
            ("stat", cgroup_v1),
            ("df", &df_stub),
            ("apt-cache", madison),
            (
                "kubeadm",
                &format!(
                    "[ \"$*\" = 'certs check-expiration -o json' ] || exit 3\ncat <<'EOF'\n{CERTS}EOF\n"
                ),
            ),
        ],
    );
    let cp_root = root.join("cp-1");
    write(
        &cp_root.join("etc/kubernetes/manifests/etcd.yaml"),
        "spec:\n  containers:\n  - command: [etcd]\n    image: registry.k8s.io/etcd:3.5.15-0\n",
    );
    write(
        &cp_root.join("etc/kubernetes/kubelet.conf"),
        "clusters:\n- cluster:\n    server: https://lb.example:6443\n  name: default\n",
    );
    write(
        &cp_root.join("etc/apt/sources.list.d/kubernetes.list"),
        "deb [signed-by=/etc/apt/keyrings/k.gpg] https://pkgs.k8s.io/core:/stable:/v1.33/deb/ /\n",
    );
    write(
        &cp_root.join("etc/apt/sources.list.d/google.list"),
        "deb https://apt.kubernetes.io/ kubernetes-xenial main\n\
         # deb https://packages.cloud.google.com/apt/ kubernetes-xenial main\n",
    );
    // w-1: cgroup v2, dnf; no stat on w-2, and no package manager.
    let dnf = "[ \"$1 $2\" = 'list --showduplicates' ] || exit 2\n\
        echo 'Available Packages'\n\
        echo \"$3.x86_64    1.33.5-150500.1.1    kubernetes\"\n\
        echo \"$3.x86_64    1.34.1-150500.1.1    kubernetes\"\n";
    let df_big = df(50 * 1024 * 1024);
    sandbox(
        root,
        "w-1",
        &[("stat", "echo cgroup2fs\n"), ("df", &df_big), ("dnf", dnf)],
    );
    write(
        &root.join("w-1/etc/yum.repos.d/kubernetes.repo"),
        "[kubernetes]\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.33/rpm/\n",
    );
    sandbox(root, "w-2", &[("df", &df_big)]);

    let r = root.to_path_buf();
    let runner = LocalRunner::new()
        .allow_sudo()
        .with_node_env(move |n| NodeEnv::sandbox(&r, n));
    let node = |n: &str| -> NodeName { n.parse().unwrap() };
    let opts = |n: &str, cp: bool| NodeEvidenceOptions {
        control_plane: cp,
        root: root.join(n).to_str().unwrap().to_string(),
        disk: vec![("/var".into(), DiskPurpose::Packages)],
        ..Default::default()
    };
    let facts = gather_nodes(
        &runner,
        &[
            (node("cp-1"), opts("cp-1", true)),
            (node("w-1"), opts("w-1", false)),
            (node("w-2"), opts("w-2", false)),
        ],
    )
    .await
    .unwrap();
    let (cp, w1, w2) = (&facts[0], &facts[1], &facts[2]);

    assert!(cp.cgroup.found().unwrap().is_v1());
    assert!(!w1.cgroup.found().unwrap().is_v1());
    match &w2.cgroup {
        Gathered::Missing(m) => assert_eq!(m.reason, MissingReason::NotSupported, "{m}"),
        other => panic!("stat is not in w-2's sandbox: {other:?}"),
    }
    assert_eq!(cp.disk.found().unwrap()[0].free_bytes, 1024 * 1024);
    let certs = cp.certificates.found().unwrap();
    assert_eq!(
        certs.api_version.as_deref(),
        Some("output.kubeadm.k8s.io/v1alpha3")
    );
    assert_eq!(certs.certificates[1].name, "apiserver");
    assert_eq!(certs.certificates[1].residual_time_seconds, 600000);
    assert_eq!(certs.certificate_authorities[0].ca_name, None);
    assert_eq!(cp.etcd.found().unwrap().version.to_string(), "v3.5.15-0");
    assert_eq!(
        cp.kubelet_server.found().unwrap().server,
        "https://lb.example:6443"
    );
    assert!(!cp.kubelet_server.found().unwrap().is_local());
    let pkgs = cp.packages.found().unwrap();
    let kubeadm: Vec<String> = pkgs
        .iter()
        .filter(|p| p.package == "kubeadm")
        .map(|p| {
            format!(
                "{}: {:?}",
                p.minor,
                p.versions.iter().map(|v| v.to_string()).collect::<Vec<_>>()
            )
        })
        .collect();
    assert_eq!(
        kubeadm,
        ["1.33: [\"v1.33.4\", \"v1.33.5\"]", "1.34: [\"v1.34.2\"]"]
    );
    let repos = cp.repositories.found().unwrap();
    assert_eq!(
        repos.len(),
        2,
        "the commented line is not a source: {repos:?}"
    );
    let legacy = repos
        .iter()
        .find(|r| r.line.contains("apt.kubernetes.io"))
        .unwrap();
    assert_eq!(legacy.file, "/etc/apt/sources.list.d/google.list");
    assert_eq!(
        w1.packages
            .found()
            .unwrap()
            .iter()
            .filter(|p| p.package == "kubelet")
            .count(),
        2
    );
    assert_eq!(w1.repositories.found().unwrap().len(), 1);
    // Worker facts of the control plane are not read on workers.
    assert!(
        matches!(&w1.certificates, Gathered::Missing(m) if m.reason == MissingReason::NotGathered)
    );
    match &w2.packages {
        Gathered::Missing(m) => assert_eq!(m.reason, MissingReason::NotSupported, "{m}"),
        other => panic!("no package manager on w-2: {other:?}"),
    }

    // The catalogue reads them: cp-1's cgroup v1 bites at the hop to 1.35, and its legacy
    // repository before it; w-2's cgroup is not checkable.
    let cluster = kupgrade_core::inventory::parse(
        r#"
nodes:
  - name: cp-1
    roles: [control-plane]
    versions: { kubelet: v1.33.5, kubeadm: v1.33.5, kube-apiserver: v1.33.5,
                kube-controller-manager: v1.33.5, kube-scheduler: v1.33.5, etcd: 3.5.15-0 }
  - name: w-1
    versions: { kubelet: v1.33.5, kubeadm: v1.33.5 }
  - name: w-2
    versions: { kubelet: v1.33.5, kubeadm: v1.33.5 }
"#,
        "cluster.yaml",
    )
    .unwrap();
    let plan = PlanRequest::new("1.35".parse().unwrap(), date(2026, 3, 1))
        .plan(&cluster)
        .unwrap();
    let mut evidence = Evidence::default();
    merge_node_facts(&mut evidence, facts.clone());
    let readiness = Catalogue::embedded().evaluate(&plan, &evidence);
    let cgroup: Vec<_> = readiness.findings_of("node/cgroup-v1").collect();
    assert_eq!(cgroup.len(), 1, "{cgroup:#?}");
    assert!(cgroup[0].key().contains("cp-1"), "{}", cgroup[0].key());
    let to_135 = plan.hops.iter().position(|h| h.to.minor_number() == 35);
    assert_eq!(cgroup[0].hop, to_135);
    assert!(
        matches!(
            readiness.check("node/cgroup-v1").unwrap().coverage,
            Coverage::Partial { .. }
        ),
        "w-2 has no cgroup fact: {:?}",
        readiness.check("node/cgroup-v1").unwrap().coverage
    );
    assert!(
        readiness
            .findings_of("packages/legacy-repository")
            .any(|f| f.key().contains("cp-1"))
    );
    // The externally managed apiserver certificate expires during the run.
    assert!(
        readiness
            .findings_of("certs/expire-during-upgrade")
            .any(|f| f.key().contains("apiserver")),
        "{:#?}",
        readiness
            .findings_of("certs/expire-during-upgrade")
            .map(|f| f.key())
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_cannot_go_into_a_command_is_refused_before_anything_runs() {
    let runner = LocalRunner::new();
    let node: NodeName = "w-1".parse().unwrap();
    let opts = NodeEvidenceOptions {
        disk: vec![("/var/$(reboot)".into(), DiskPurpose::Backups)],
        ..Default::default()
    };
    let e = gather_node(&runner, &node, &opts).await.unwrap_err();
    assert!(e.to_string().contains("/var/$(reboot)"), "{e}");
}

/// The backups' directory does not exist before the first run: its free space is its nearest
/// existing parent's, where it will be created, not a fact the node "could not give".
#[tokio::test]
async fn free_space_of_a_directory_not_made_yet_is_its_parents() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let df = "printf '%s\\n' \"$3\" >> \"$KUPGRADE_NODE_ROOT/df.log\"\n\
        case \"$3\" in\n\
        /var/backups/kupgrade) echo \"df: $3: No such file or directory\" >&2; exit 1 ;;\n\
        /var/backups) free=2048 ;;\n\
        *) free=1024 ;;\n\
        esac\n\
        echo 'Filesystem     1024-blocks     Used Available Capacity Mounted on'\n\
        echo \"/dev/vda1         51474912 12345678 $free      25% /\"\n";
    sandbox(root, "n-1", &[("df", df)]);
    let r = root.to_path_buf();
    let runner = LocalRunner::new().with_node_env(move |n| NodeEnv::sandbox(&r, n));
    let node: NodeName = "n-1".parse().unwrap();
    let facts = gather_node(&runner, &node, &NodeEvidenceOptions::default())
        .await
        .unwrap();
    let disk = facts.disk.found().expect("disk space gathered");
    let free: Vec<(&str, u64)> = disk
        .iter()
        .map(|d| (d.path.as_str(), d.free_bytes / 1024))
        .collect();
    assert_eq!(free, [("/var", 1024), ("/var/backups/kupgrade", 2048)]);
    let asked = std::fs::read_to_string(root.join("n-1/df.log")).unwrap();
    assert_eq!(asked, "/var\n/var/backups/kupgrade\n/var/backups\n");
}
