//! kupgrade-kube against a real kube-apiserver (v1.20.2 from `scripts/testenv.sh`).
//!
//! Reads `KUPGRADE_TEST_KUBECONFIG`; without it the tests print "skipped: no test apiserver"
//! and pass, unless `KUPGRADE_REQUIRE_REAL_SERVERS=1` (CI), when they fail. The harness in
//! `support` plays kubelet and controllers. Every test has its own namespace and nodes.
#[path = "support/rbac.rs"]
mod rbac;
mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, ListParams};
use kupgrade_core::NodeName;
use kupgrade_core::cluster::{ClusterState, EtcdTopology, Node, NodeVersions, Os, OsFamily, Role};
use kupgrade_core::ports::{
    ClusterOperations, CommandRunner, CommandRunnerExt, CommandSpec, DrainOptions, ExitStatus,
    LeaseClaim, LeaseHolder, LeaseStore, LeaseStoreExt, LineSink, OpsError, RunnerError,
};
use kupgrade_kube::{DiscoverError, Discovery, KubeClusterOps, KubeLease, PodRunner};
use serde_json::{Value, json};
use support::cluster_ops::{ScopeFixture, cluster_ops_suite};
use support::{Env, Kind, NodeSpec, Reply, Scope, blocked, labels, v, within};

// ------------------------------------------------------------------------------ discovery

struct Cp<'a> {
    suffix: &'a str,
    zone: &'a str,
    apiserver: &'a str,
}

/// Nodes, static pods, kubeadm-config, kube-proxy and CoreDNS, as kubeadm leaves them.
async fn kubeadm_cluster(scope: &Scope, ns: &str, cps: &[Cp<'_>], etcd_image: &str) {
    for cp in cps {
        let node = scope
            .node(
                cp.suffix,
                NodeSpec {
                    zone: Some(cp.zone),
                    ..NodeSpec::control_plane("v1.29.3")
                },
            )
            .await;
        for (component, image) in [
            (
                "kube-apiserver",
                format!("registry.k8s.io/kube-apiserver:{}", cp.apiserver),
            ),
            (
                "kube-controller-manager",
                "registry.k8s.io/kube-controller-manager:v1.29.3".into(),
            ),
            (
                "kube-scheduler",
                "registry.k8s.io/kube-scheduler:v1.29.3".into(),
            ),
            ("etcd", etcd_image.to_string()),
        ] {
            let name = format!("{component}-{node}");
            let l = labels(&[("component", component), ("tier", "control-plane")]);
            scope
                .pod_in(ns, &name, &node, Kind::Mirror, &l, &image)
                .await
                .unwrap();
        }
    }
}

async fn kubeadm_objects(scope: &Scope, ns: &str, cluster_configuration: &str) {
    let cm = ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&());
    scope
        .create_dynamic(
            ns,
            &cm,
            json!({ "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": "kubeadm-config", "namespace": ns },
                "data": { "ClusterConfiguration": cluster_configuration } }),
        )
        .await
        .unwrap();
    let ds = ApiResource::erase::<k8s_openapi::api::apps::v1::DaemonSet>(&());
    scope
        .create_dynamic(
            ns,
            &ds,
            workload(
                "DaemonSet",
                ns,
                "kube-proxy",
                "kube-proxy",
                "registry.k8s.io/kube-proxy:v1.29.3",
            ),
        )
        .await
        .unwrap();
    let deploy = ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&());
    scope
        .create_dynamic(
            ns,
            &deploy,
            workload(
                "Deployment",
                ns,
                "coredns",
                "coredns",
                "registry.k8s.io/coredns/coredns:v1.11.1",
            ),
        )
        .await
        .unwrap();
}

fn workload(kind: &str, ns: &str, name: &str, container: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": { "name": name, "namespace": ns, "labels": { "k8s-app": name } },
        "spec": {
            "selector": { "matchLabels": { "k8s-app": name } },
            "template": {
                "metadata": { "labels": { "k8s-app": name } },
                "spec": { "containers": [{ "name": container, "image": image }] }
            }
        }
    })
}

const STACKED: &str = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nclusterName: kupgrade-test\n\
    etcd:\n  local:\n    dataDir: /var/lib/etcd\nkubernetesVersion: v1.29.3\n";

fn node_labels(
    scope: &Scope,
    name: &NodeName,
    cp: bool,
    zone: Option<&str>,
) -> BTreeMap<String, String> {
    let mut l = labels(&[
        ("kubernetes.io/hostname", name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("kupgrade-test", &scope.id),
    ]);
    if cp {
        l.insert(
            "node-role.kubernetes.io/control-plane".into(),
            String::new(),
        );
    }
    if let Some(z) = zone {
        l.insert("topology.kubernetes.io/zone".into(), z.into());
    }
    l
}

#[tokio::test]
async fn discovery_reads_a_kubeadm_shaped_cluster() {
    let Some((env, scope)) = support::scope("discovery").await else {
        return;
    };
    let ns = scope.ns.clone();
    let cps = [
        Cp {
            suffix: "cp-1",
            zone: "zone-a",
            apiserver: "v1.29.3",
        },
        Cp {
            suffix: "cp-2",
            zone: "zone-b",
            apiserver: "v1.29.3",
        },
        Cp {
            suffix: "cp-3",
            zone: "zone-c",
            apiserver: "v1.29.2",
        },
    ];
    kubeadm_cluster(&scope, &ns, &cps, "registry.k8s.io/etcd:3.5.12-0").await;
    kubeadm_objects(&scope, &ns, STACKED).await;
    let w1 = scope
        .node(
            "w-1",
            NodeSpec {
                os: "Rocky Linux 9.3 (Blue Onyx)",
                zone: Some("zone-a"),
                ..NodeSpec::worker("v1.28.9")
            },
        )
        .await;
    let w2 = scope
        .node(
            "w-2",
            NodeSpec {
                os: "Flatcar Container Linux by Kinvolk 3815.2.0",
                ready: false,
                ..NodeSpec::worker("v1.29.3")
            },
        )
        .await;
    let ops = KubeClusterOps::new(env.client.clone()).with_discovery(
        Discovery::new(env.client.clone())
            .node_selector(format!("kupgrade-test={}", scope.id))
            .system_namespace(&ns),
    );
    ops.cordon(&w2).await.unwrap();

    let state = ops.state().await.unwrap_or_else(|e| panic!("{e}"));

    let mut want = ClusterState::new(Vec::new());
    want.name = Some("kupgrade-test".into());
    want.etcd = EtcdTopology::Stacked;
    want.addons.kube_proxy = Some(v("v1.29.3"));
    want.addons.coredns = Some(v("v1.11.1"));
    // A Ready, schedulable node as the harness labels it, with only a kubelet.
    let node = |name: NodeName, role: Role, zone: Option<&str>, family: OsFamily, release: &str| {
        let cp = role == Role::ControlPlane;
        Node {
            labels: node_labels(&scope, &name, cp, zone).into(),
            roles: role.into(),
            os: Os {
                family,
                release: Some(release.into()),
            },
            versions: NodeVersions::default(),
            ready: true,
            unschedulable: false,
            ssh: None,
            name,
        }
    };
    for cp in &cps {
        let name = scope.node_name(cp.suffix);
        let ubuntu = "Ubuntu 22.04.4 LTS";
        let mut n = node(
            name,
            Role::ControlPlane,
            Some(cp.zone),
            OsFamily::Debian,
            ubuntu,
        );
        n.versions = NodeVersions {
            kubelet: Some(v("v1.29.3")),
            kube_apiserver: Some(v(cp.apiserver)),
            kube_controller_manager: Some(v("v1.29.3")),
            kube_scheduler: Some(v("v1.29.3")),
            etcd: Some(v("3.5.12-0")),
            ..NodeVersions::default()
        };
        want.nodes.push(n);
    }
    let rocky = "Rocky Linux 9.3 (Blue Onyx)";
    let mut n = node(w1, Role::Worker, Some("zone-a"), OsFamily::Rhel, rocky);
    n.versions.kubelet = Some(v("v1.28.9"));
    want.nodes.push(n);
    let flatcar = "Flatcar Container Linux by Kinvolk 3815.2.0";
    let mut n = node(w2, Role::Worker, None, OsFamily::Other, flatcar);
    n.versions.kubelet = Some(v("v1.29.3"));
    n.ready = false;
    n.unschedulable = true;
    want.nodes.push(n);
    assert_eq!(state, want);
    assert_eq!(state.apiserver_min(), Some(&v("v1.29.2")));
    scope.cleanup().await;
}

#[tokio::test]
async fn discovery_reports_unreadable_values_by_object_and_field() {
    let Some((env, scope)) = support::scope("discoverybad").await else {
        return;
    };
    let ns = scope.ns.clone();
    kubeadm_cluster(
        &scope,
        &ns,
        &[Cp {
            suffix: "cp-1",
            zone: "z",
            apiserver: "latest",
        }],
        "registry.k8s.io/etcd@sha256:0123",
    )
    .await;
    let external =
        "kind: ClusterConfiguration\netcd:\n  external:\n    endpoints: [https://10.0.0.9:2379]\n";
    kubeadm_objects(&scope, &ns, external).await;
    let err = Discovery::new(env.client.clone())
        .node_selector(format!("kupgrade-test={}", scope.id))
        .system_namespace(&ns)
        .run()
        .await
        .unwrap_err();
    let node = scope.node_name("cp-1");
    let DiscoverError::Invalid { problems } = &err else {
        panic!("{err}")
    };
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            format!(
                r#"pod {ns}/etcd-{node}: spec.containers[0].image "registry.k8s.io/etcd@sha256:0123": image has no tag, so its version is unknown"#
            ),
            format!(
                r#"pod {ns}/kube-apiserver-{node}: spec.containers[0].image "registry.k8s.io/kube-apiserver:latest": tag is not a version"#
            ),
        ]
    );
    assert!(
        err.to_string()
            .starts_with("discovery found 2 problem(s): pod "),
        "{err}"
    );
    scope.cleanup().await;
}

// ------------------------------------------------------------------ conformance suite

async fn fixture(test: &str) -> Option<ScopeFixture<KubeClusterOps>> {
    let env = support::env().await?;
    let ops = KubeClusterOps::new(env.client.clone())
        .eviction_backoff(Duration::from_millis(100), Duration::from_millis(500));
    Some(ScopeFixture::new(Scope::new(&env, test).await, ops))
}

cluster_ops_suite!(fixture);

// ------------------------------------------------------------------------- drain details

#[tokio::test]
async fn a_blocked_drain_ends_at_its_deadline_with_a_report() {
    let Some((env, scope)) = support::scope("deadline").await else {
        return;
    };
    let node = scope.node("w", NodeSpec::worker("v1.29.3")).await;
    let app = labels(&[("app", "quorum")]);
    let a = scope.pod(&node, Kind::Replicated, &app).await.unwrap();
    let b = scope.pod(&node, Kind::Replicated, &app).await.unwrap();
    let budget = scope.budget(&app, 0).await.unwrap();
    let ops = KubeClusterOps::new(env.client.clone());
    let started = Instant::now();
    let err = ops.drain(&node, &within(2)).await.unwrap_err();
    let took = started.elapsed();
    // kube's own 429 retry would hold each eviction for minutes; the drain's deadline rules.
    assert!(took < Duration::from_secs(12), "a 2 s drain took {took:?}");
    let report = blocked(&err);
    assert!(report.evicted.is_empty(), "{report:?}");
    assert_eq!(
        report
            .blocked
            .iter()
            .map(|b| b.pod.clone())
            .collect::<Vec<_>>(),
        [a.clone(), b.clone()]
    );
    assert_eq!(
        report.blocked[0].reason,
        format!(
            "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget {budget} needs 2 healthy pods and has 2 currently"
        )
    );
    assert_eq!(
        err.to_string(),
        format!(
            "drain of node {node} blocked: {a} (disruption budget {budget}: {r}); {b} (disruption budget {budget}: {r})",
            r = report.blocked[0].reason
        )
    );
    assert!(scope.is_cordoned(&node).await.unwrap());
    scope.cleanup().await;
}

#[tokio::test]
async fn the_grace_period_reaches_the_server() {
    let Some(env) = support::env().await else {
        return;
    };
    // No kubelet: a pod deleted with a grace period stays Terminating; only grace 0 removes it.
    let scope = Scope::with_kubelet(&env, "grace", false).await;
    let ops = KubeClusterOps::new(env.client.clone());
    let now = scope.node("now", NodeSpec::worker("v1.29.3")).await;
    let pod = scope
        .pod(&now, Kind::Replicated, &labels(&[("app", "a")]))
        .await
        .unwrap();
    let report = ops
        .drain(
            &now,
            &DrainOptions {
                grace_period_seconds: Some(0),
                ..within(20)
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.evicted, [pod]);

    let slow = scope.node("slow", NodeSpec::worker("v1.29.3")).await;
    let pod = scope
        .pod(&slow, Kind::Replicated, &labels(&[("app", "b")]))
        .await
        .unwrap();
    let err = ops
        .drain(
            &slow,
            &DrainOptions {
                grace_period_seconds: Some(30),
                ..within(2)
            },
        )
        .await
        .unwrap_err();
    let report = blocked(&err);
    assert_eq!(report.blocked.len(), 1);
    assert_eq!(report.blocked[0].pod, pod);
    assert_eq!(report.blocked[0].budget, None);
    assert!(
        report.blocked[0].reason.contains("terminating"),
        "{:?}",
        report.blocked[0]
    );
    let api: Api<Pod> = Api::namespaced(env.client.clone(), &scope.ns);
    let p = api.get(&pod.name).await.unwrap();
    assert_eq!(p.metadata.deletion_grace_period_seconds, Some(30));
    scope.cleanup().await;
}

#[tokio::test]
async fn a_drain_refuses_emptydir_data_unless_asked() {
    let Some((env, scope)) = support::scope("emptydir").await else {
        return;
    };
    let node = scope.node("w", NodeSpec::worker("v1.29.3")).await;
    let pod = scope
        .pod(&node, Kind::EmptyDir, &labels(&[("app", "cache")]))
        .await
        .unwrap();
    let ops = KubeClusterOps::new(env.client.clone());
    let err = ops.drain(&node, &within(20)).await.unwrap_err();
    let report = blocked(&err);
    assert_eq!(report.blocked[0].pod, pod);
    assert!(report.blocked[0].reason.contains("emptyDir"));
    let report = ops
        .drain(
            &node,
            &DrainOptions {
                delete_emptydir_data: true,
                ..within(20)
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.evicted, [pod]);
    scope.cleanup().await;
}

// ------------------------------------------------------------------------ node commands

fn command_pods(env: &Env, ns: &str) -> impl std::future::Future<Output = Vec<Pod>> + use<> {
    let api: Api<Pod> = Api::namespaced(env.client.clone(), ns);
    async move {
        api.list(&ListParams::default().labels("app.kubernetes.io/component=node-command"))
            .await
            .unwrap()
            .items
    }
}

#[tokio::test]
async fn a_node_command_runs_in_a_pod_that_is_always_deleted() {
    let Some((env, scope)) = support::scope("nodecmd").await else {
        return;
    };
    let node = scope.node("cp", NodeSpec::control_plane("v1.29.3")).await;
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    scope.reply_with(move |line| {
        log.lock().unwrap().push(line.to_string());
        match line {
            "kubelet --version" => Reply::Exit(0, "Kubernetes v1.29.3\n".into()),
            "sleep 3600" => Reply::Hang,
            _ => Reply::Exit(3, "boom\nit failed\n".into()),
        }
    });
    let runner = scope.pod_runner(Duration::from_secs(20));

    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink_lines = lines.clone();
    let sink = LineSink::new(move |_, l| sink_lines.lock().unwrap().push(l.to_string()));
    let out = runner
        .run(
            &node,
            &CommandSpec::new("kubelet").arg("--version").sudo(),
            &sink,
        )
        .await
        .unwrap();
    assert_eq!(out.status, ExitStatus::Code(0));
    assert_eq!(out.stdout_text(), "Kubernetes v1.29.3\n");
    assert_eq!(*lines.lock().unwrap(), ["Kubernetes v1.29.3"]);
    assert!(
        command_pods(&env, &scope.ns).await.is_empty(),
        "the pod was not deleted"
    );

    let out = runner
        .output(&node, &CommandSpec::shell("echo boom >&2; exit 3"))
        .await
        .unwrap();
    assert_eq!(out.status, ExitStatus::Code(3));
    assert_eq!(out.stdout_text(), "boom\nit failed\n");
    assert!(
        command_pods(&env, &scope.ns).await.is_empty(),
        "the pod was not deleted"
    );

    let err = runner
        .output(
            &node,
            &CommandSpec::new("sleep")
                .arg("3600")
                .timeout(Duration::from_secs(1)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RunnerError::TimedOut { .. }), "{err}");
    assert!(
        command_pods(&env, &scope.ns).await.is_empty(),
        "the pod was not deleted after the timeout"
    );

    // Standard input over the limit is refused before any pod is made.
    let err = runner
        .output(
            &node,
            &CommandSpec::new("cat").stdin(vec![b'x'; PodRunner::MAX_STDIN + 1]),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RunnerError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("standard input"), "{err}");
    assert_eq!(
        *seen.lock().unwrap(),
        ["kubelet --version", "echo boom >&2; exit 3", "sleep 3600"]
    );
    scope.cleanup().await;
}

#[tokio::test]
async fn a_node_command_reads_its_stdin_from_the_pod_spec() {
    let Some((env, scope)) = support::scope("nodestdin").await else {
        return;
    };
    let node = scope.node("w", NodeSpec::worker("v1.29.3")).await;
    // The simulated kubelet runs each pod's shell line here, as the node's shell would: what
    // the command reads can only come from the pod the runner created.
    let dir = std::env::temp_dir().join(format!("kupgrade-{}", scope.id));
    std::fs::create_dir_all(&dir).unwrap();
    let here = dir.clone();
    scope.reply_with(move |line| support::run_here(line, &here));
    let runner = scope.pod_runner(Duration::from_secs(20));

    let mut input = b"it's \"quoted\"; $(touch pwned) `touch pwned`\n\nlast line\\".to_vec();
    input.extend([0u8, 0xff, 0xfe, b'\n']);
    input.extend(0..=255u8);
    // The termination message is text: the bytes come back as hex.
    let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
    let out = runner
        .output(
            &node,
            &CommandSpec::shell("od -An -v -tx1 | tr -d ' \\n'")
                .stdin(input.clone())
                .sudo(),
        )
        .await
        .unwrap();
    assert_eq!(out.status, ExitStatus::Code(0), "{}", out.stdout_text());
    assert_eq!(out.stdout_text(), hex);
    assert!(!dir.join("pwned").exists(), "the input was run by a shell");

    // The plan's way of writing a file: `sudo tee FILE` with the content as input.
    let content =
        "deb [signed-by=/etc/apt/keyrings/k.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n";
    let out = runner
        .output(
            &node,
            &CommandSpec::new("tee")
                .arg(dir.join("kubernetes.list").to_str().unwrap())
                .stdin(content)
                .sudo(),
        )
        .await
        .unwrap();
    assert_eq!(out.status, ExitStatus::Code(0), "{}", out.stdout_text());
    assert_eq!(out.stdout_text(), content);
    assert_eq!(
        std::fs::read_to_string(dir.join("kubernetes.list")).unwrap(),
        content
    );

    // A script reads the input as a whole and keeps its exit code; empty input is EOF.
    let out = runner
        .output(
            &node,
            &CommandSpec::shell("read -r a; read -r b; echo \"$b,$a\"; exit 5").stdin("one\ntwo\n"),
        )
        .await
        .unwrap();
    assert_eq!(out.status, ExitStatus::Code(5));
    assert_eq!(out.stdout_text(), "two,one\n");
    let out = runner
        .output(&node, &CommandSpec::new("cat").stdin(Vec::new()))
        .await
        .unwrap();
    assert_eq!(out.status, ExitStatus::Code(0));
    assert_eq!(out.stdout_text(), "");

    // A huge timeout (a plan file's) is a long one: the pod's deadlines saturate.
    let out = runner
        .output(&node, &CommandSpec::shell("echo ok").timeout(Duration::MAX))
        .await
        .unwrap();
    assert_eq!(out.status, ExitStatus::Code(0));
    assert_eq!(out.stdout_text(), "ok\n");

    // The largest input allowed arrives whole.
    let out = runner
        .output(
            &node,
            &CommandSpec::shell("wc -c | tr -d ' '").stdin(vec![b'k'; PodRunner::MAX_STDIN]),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), format!("{}\n", PodRunner::MAX_STDIN));
    assert!(
        command_pods(&env, &scope.ns).await.is_empty(),
        "a pod was not deleted"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    scope.cleanup().await;
}

#[tokio::test]
async fn a_node_command_that_never_starts_is_reported_and_cleaned_up() {
    let Some((env, scope)) = support::scope("nostart").await else {
        return;
    };
    let node = scope.node("w", NodeSpec::worker("v1.29.3")).await;
    // No reply: the simulated kubelet never starts the pod.
    let runner = scope.pod_runner(Duration::from_secs(1));
    let err = runner
        .output(&node, &CommandSpec::new("true"))
        .await
        .unwrap_err();
    assert!(matches!(err, RunnerError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("did not start within 1s"), "{err}");
    assert!(command_pods(&env, &scope.ns).await.is_empty());
    scope.cleanup().await;
}

// --------------------------------------------------------------------------------- RBAC

fn forbidden(e: &OpsError) -> &str {
    match e {
        OpsError::Forbidden { message } => message,
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn rbac_manifests_grant_what_they_say_and_refusals_are_clear() {
    let Some((env, scope)) = support::scope("rbac").await else {
        return;
    };
    let files = [
        "namespace.yaml",
        "discover.yaml",
        "drain.yaml",
        "node-command.yaml",
    ];
    assert_eq!(rbac::apply(&scope, &files).await, 15);
    // Discovery reads kube-system, as the Role in discover.yaml allows; this is the only test
    // that puts objects there.
    kubeadm_cluster(
        &scope,
        "kube-system",
        &[Cp {
            suffix: "cp",
            zone: "z",
            apiserver: "v1.29.3",
        }],
        "registry.k8s.io/etcd:3.5.12-0",
    )
    .await;
    let cp = scope.node_name("cp");
    let worker = scope.node("w", NodeSpec::worker("v1.29.3")).await;
    let web = scope
        .pod(&worker, Kind::Replicated, &labels(&[("app", "web")]))
        .await
        .unwrap();
    let selector = format!("kupgrade-test={}", scope.id);
    let sa = |name: &str| format!("system:serviceaccount:kupgrade-system:{name}");
    let groups = [
        "system:serviceaccounts",
        "system:serviceaccounts:kupgrade-system",
    ];

    // Read-only discovery: discovers, cannot cordon.
    let client = support::impersonating(&env, &sa("kupgrade-discover"), &groups).await;
    let reader = KubeClusterOps::new(client.clone())
        .with_discovery(Discovery::new(client).node_selector(&selector));
    let state = reader.state().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state.nodes.len(), 2);
    assert_eq!(
        state.node(cp.as_str()).unwrap().versions.kube_apiserver,
        Some(v("v1.29.3"))
    );
    let err = reader.cordon(&worker).await.unwrap_err();
    assert_eq!(
        forbidden(&err),
        format!(
            r#"cordon node {worker} (patch nodes): nodes "{worker}" is forbidden: User "{}" cannot patch resource "nodes" in API group "" at the cluster scope"#,
            sa("kupgrade-discover")
        )
    );
    assert!(!scope.is_cordoned(&worker).await.unwrap());

    // Cordon and drain: works, and cannot read kube-system's ConfigMaps.
    let client = support::impersonating(&env, &sa("kupgrade-drain"), &groups).await;
    let drainer = KubeClusterOps::new(client.clone())
        .with_discovery(Discovery::new(client).node_selector(&selector));
    let report = drainer
        .drain(&worker, &within(20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.evicted, [web]);
    drainer.uncordon(&worker).await.unwrap();
    drainer
        .wait_ready(&worker, &v("v1.29.3"), Duration::from_secs(10))
        .await
        .unwrap();
    let err = drainer.state().await.unwrap_err();
    assert!(
        forbidden(&err).contains(r#"cannot get resource "configmaps""#),
        "{err}"
    );
    // ... and holds the run lease (kube-system/kupgrade), which discovery alone cannot.
    let lease = KubeLease::new(support::impersonating(&env, &sa("kupgrade-drain"), &groups).await);
    let claim = LeaseClaim::new(LeaseHolder::new("rbac-run", "ops-1", 1), "fp");
    let now = jiff::Timestamp::now();
    lease
        .acquire(&claim, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    lease
        .renew(&claim, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let reader =
        KubeLease::new(support::impersonating(&env, &sa("kupgrade-discover"), &groups).await);
    let err = reader.read().await.unwrap_err();
    assert!(
        err.to_string().contains(r#"cannot get resource "leases""#),
        "{err}"
    );
    lease
        .release(&claim)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(lease.read().await.unwrap().record.is_none());

    // Node commands: pods in kupgrade-node-commands only.
    let ns = "kupgrade-node-commands";
    scope.kubelet_for(ns);
    scope.reply_with(|_| Reply::Exit(0, "ok\n".into()));
    let client = support::impersonating(&env, &sa("kupgrade-node-command"), &groups).await;
    let runner = PodRunner::new(client.clone()).start_timeout(Duration::from_secs(20));
    let out = runner
        .output(&cp, &CommandSpec::new("true"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (out.status, out.stdout_text().as_str()),
        (ExitStatus::Code(0), "ok\n")
    );
    assert!(command_pods(&env, ns).await.is_empty());
    let err = runner
        .clone()
        .namespace(&scope.ns)
        .output(&cp, &CommandSpec::new("true"))
        .await
        .unwrap_err();
    assert!(matches!(err, RunnerError::Auth { .. }), "{err}");
    assert!(
        err.to_string().contains(r#"cannot create resource "pods""#),
        "{err}"
    );
    let err = KubeClusterOps::new(client)
        .cordon(&worker)
        .await
        .unwrap_err();
    assert!(forbidden(&err).contains("cannot patch resource"), "{err}");

    // A user with no grants at all.
    if let Some(limited) = &env.limited {
        let config = kupgrade_kube::kubeconfig_config(limited, None)
            .await
            .unwrap();
        let ops = KubeClusterOps::from_config(config).unwrap();
        let err = ops.state().await.unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"forbidden: discovery: list nodes: nodes is forbidden: User "limited" cannot list resource "nodes" in API group "" at the cluster scope"#
        );
        let err = ops
            .wait_ready(&worker, &v("v1.29.3"), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            forbidden(&err).contains("cannot list resource \"nodes\""),
            "{err}"
        );
    }
    scope.cleanup().await;
}
