//! Snapshots of violation reports: the upstream policy and the sample rules file
//! (`examples/policies/strict.yaml`) on the bundled sample clusters and on crafted bad states.
//!
//! Review changes with `cargo insta review` (or read the `.snap.new` files) before accepting.
use kupgrade_core::skew::rules::RulePolicy;
use kupgrade_core::skew::{SkewPolicy, UpstreamPolicy, report};
use kupgrade_core::{ClusterState, EtcdTopology, KubeVersion, Minor, Node, inventory};

const SAMPLES: [(&str, &str); 5] = [
    (
        "single-node",
        include_str!("../../../examples/clusters/single-node.yaml"),
    ),
    ("ha", include_str!("../../../examples/clusters/ha.yaml")),
    (
        "mid-upgrade",
        include_str!("../../../examples/clusters/mid-upgrade.yaml"),
    ),
    (
        "vendor-eks",
        include_str!("../../../examples/clusters/vendor-eks.yaml"),
    ),
    (
        "old-1.24",
        include_str!("../../../examples/clusters/old-1.24.yaml"),
    ),
];

const STRICT: &str = include_str!("../../../examples/policies/strict.yaml");

fn strict() -> RulePolicy {
    RulePolicy::parse(STRICT, "strict.yaml").unwrap()
}

fn sample(name: &str, text: &str) -> ClusterState {
    inventory::parse(text, &format!("{name}.yaml")).unwrap()
}

fn v(s: &str) -> KubeVersion {
    s.parse().unwrap()
}

/// The report with a heading naming the policy, so snapshots read on their own.
fn titled(policy: &dyn SkewPolicy, state: &ClusterState) -> String {
    format!(
        "policy: {}\n{}",
        policy.name(),
        report(&policy.evaluate(state))
    )
}

#[test]
fn upstream_on_the_samples() {
    for (name, text) in SAMPLES {
        let state = sample(name, text);
        insta::assert_snapshot!(
            format!("upstream-{name}"),
            titled(&UpstreamPolicy::new(), &state)
        );
    }
}

#[test]
fn upstream_1_27_edition_on_the_old_sample() {
    let state = sample("old-1.24", SAMPLES[4].1);
    insta::assert_snapshot!(titled(
        &UpstreamPolicy::as_documented_in(Minor::new(1, 27)),
        &state
    ));
}

#[test]
fn strict_rules_on_the_samples() {
    let policy = strict();
    for (name, text) in SAMPLES {
        let state = sample(name, text);
        insta::assert_snapshot!(format!("strict-{name}"), titled(&policy, &state));
    }
}

#[test]
fn upstream_and_strict_combined_on_mid_upgrade() {
    let state = sample("mid-upgrade", SAMPLES[2].1);
    let both = strict().with_upstream();
    insta::assert_snapshot!(titled(&both, &state));
}

/// Violations are data too: the serialized form of one report.
#[test]
fn violations_serialize() {
    let state = sample("old-1.24", SAMPLES[4].1);
    insta::assert_yaml_snapshot!(UpstreamPolicy::new().evaluate(&state));
}

/// Three API servers two minors apart, control-plane components out of line, a kube-proxy
/// DaemonSet ahead of its API servers, the operators' kubectl too new, old etcd and CoreDNS,
/// and a worker's kubeadm too new.
fn crafted_bad_state() -> ClusterState {
    let mut a = Node::control_plane("cp-a", v("v1.30.2"), Some(v("3.5.12-0"))).unwrap();
    a.versions.kube_scheduler = Some(v("v1.31.0"));
    let b = Node::control_plane("cp-b", v("v1.29.6"), Some(v("3.5.9-0"))).unwrap();
    let mut c = Node::control_plane("cp-c", v("v1.28.11"), Some(v("3.5.10-0"))).unwrap();
    c.versions.kube_controller_manager = Some(v("v1.26.0"));
    let mut w1 = Node::worker("w-1", v("v1.25.16")).unwrap();
    w1.versions.kube_proxy = Some(v("v1.29.0"));
    let mut w2 = Node::worker("w-2", v("v1.28.0")).unwrap();
    w2.versions.kubeadm = Some(v("v1.31.1"));
    let w3 = Node::worker("w-3", v("v1.31.0")).unwrap();
    let mut s = ClusterState::new(vec![a, b, c, w1, w2, w3]);
    s.addons.kube_proxy = Some(v("v1.30.2"));
    s.addons.coredns = Some(v("v1.9.3"));
    s.kubectl = Some(v("v1.31.0"));
    s
}

#[test]
fn upstream_on_a_crafted_bad_state() {
    let state = crafted_bad_state();
    insta::assert_snapshot!(titled(&UpstreamPolicy::new(), &state));
    let lb = UpstreamPolicy::new()
        .with_endpoint(kupgrade_core::skew::ControlPlaneEndpoint::LoadBalanced);
    insta::assert_snapshot!(
        "upstream_load_balanced_on_a_crafted_bad_state",
        titled(&lb, &state)
    );
}

#[test]
fn upstream_on_external_etcd() {
    let mut state = crafted_bad_state();
    for n in &mut state.nodes {
        n.versions.etcd = None;
    }
    state.etcd = EtcdTopology::External {
        version: Some(v("3.4.13-0")),
        endpoints: vec!["https://etcd.example:2379".into()],
    };
    let warnings: Vec<String> = UpstreamPolicy::new()
        .evaluate(&state)
        .iter()
        .filter(|x| x.rule == "upstream/etcd")
        .map(ToString::to_string)
        .collect();
    insta::assert_snapshot!(warnings.join("\n"));
}

/// Every rule kind, with selectors, severities and a description, on a crafted state.
#[test]
fn every_rule_kind_on_a_crafted_bad_state() {
    let policy = RulePolicy::parse(
        r#"
name: crafted
rules:
  - { id: lag, kind: max-lag, component: kubelet, minors: 1 }
  - { id: lag-oldest, kind: max-lag, component: kube-proxy, apiserver: oldest, minors: 0 }
  - { id: kubectl-eq, kind: same-minor, component: kubectl }
  - id: proxy-kubelet
    kind: node-skew
    component: kube-proxy
    other: kubelet
    max: 1
    description: kube-proxy stays within one minor of its kubelet
  - { id: range, kind: minor-range, component: kube-apiserver, min: "1.29", max: "1.30" }
  - { id: etcd-range, kind: minor-range, component: etcd, min: "3.5" , severity: warning }
  - { id: workers-only, kind: minor-range, component: kubelet, max: "1.28", nodes: { role: worker } }
  - { id: eol, kind: not-end-of-life, date: 2025-03-01 }
"#,
        "crafted.yaml",
    )
    .unwrap();
    let state = crafted_bad_state();
    insta::assert_snapshot!(titled(&policy, &state));
}

/// Parse errors, as a person reads them.
#[test]
fn rules_file_errors() {
    let text = r#"apiVersion: kupgrade.dev/v1alpha1
kind: SkewRules
rules:
  - id: lag
    kind: max-lag
    component: kubelet
    minors: -1
  - id: range
    kind: minor-range
    component: kubelet
    min: 1.30
  - id: skew
    kind: node-skew
    component: etcd
    other: kubelet
    max: 1
  - id: eol
    kind: not-end-of-life
    date: next tuesday
  - kind: same-minor
    component: kubectl
"#;
    let err = RulePolicy::parse(text, "policy.yaml").unwrap_err();
    insta::assert_snapshot!(err.to_string());
}
