//! Tests of declarative rules: parsing, errors, each kind of check.
use super::*;
use crate::{ClusterState, inventory};

const MID_UPGRADE: &str = "\
addons: { kube-proxy: v1.29.4, coredns: v1.11.1 }
kubectl: v1.27.1
nodes:
  - name: cp-1
    roles: [control-plane]
    versions: { kubelet: v1.29.4, kubectl: v1.29.4, kube-apiserver: v1.29.4 }
  - name: cp-2
    roles: [control-plane]
    versions: { kubelet: v1.28.9, kubectl: v1.28.9, kube-apiserver: v1.28.9 }
  - name: w-1
    labels: { topology.kubernetes.io/zone: a }
    versions: { kubelet: v1.28.9, kube-proxy: v1.28.9 }
  - name: w-2
    labels: { topology.kubernetes.io/zone: b }
    versions: { kubelet: v1.27.13 }
";

fn state() -> ClusterState {
    inventory::parse(MID_UPGRADE, "inv.yaml").unwrap()
}

fn policy(rules: &str) -> RulePolicy {
    RulePolicy::parse(&format!("name: t\nrules:\n{rules}"), "t.yaml").unwrap()
}

/// `rule node` for every violation, in evaluation order.
fn found(p: &RulePolicy, s: &ClusterState) -> Vec<String> {
    p.evaluate(s)
        .iter()
        .map(|v| {
            let node = v.node.as_ref().map_or("-", |n| n.as_str());
            format!("{} {} {node}", v.rule, v.component)
        })
        .collect()
}

fn err(text: &str) -> String {
    RulePolicy::parse(text, "r.yaml").unwrap_err().to_string()
}

#[test]
fn max_lag_against_newest_or_oldest() {
    let p = policy("  - { id: lag, kind: max-lag, component: kubelet, minors: 1 }\n");
    assert_eq!(found(&p, &state()), ["lag kubelet w-2"]);
    let v = &p.evaluate(&state())[0];
    assert_eq!(v.allowed, "1.28 or newer");
    assert_eq!(v.found.to_string(), "v1.27.13");
    assert_eq!(
        v.message(),
        "kubelet on node \"w-2\" is v1.27.13, 2 minors behind the newest kube-apiserver (v1.29.4); kubelet may be at most 1 minor behind the newest kube-apiserver (allowed: 1.28 or newer)"
    );
    // Against the oldest API server (1.28), 1.27 is one behind: fine. Zero lag forbids it.
    let p = policy(
        "  - { id: lag, kind: max-lag, component: kubelet, apiserver: oldest, minors: 1 }\n",
    );
    assert!(found(&p, &state()).is_empty());
    let p = policy(
        "  - { id: lag, kind: max-lag, component: kubelet, apiserver: oldest, minors: 0 }\n",
    );
    assert_eq!(found(&p, &state()), ["lag kubelet w-2"]);
    // The cluster's kubectl is checked cluster-wide; newer than the API server is not lag.
    let p = policy("  - { id: k, kind: max-lag, component: kubectl, minors: 1 }\n");
    assert_eq!(found(&p, &state()), ["k kubectl -"]);
    let mut s = state();
    s.kubectl = Some("v1.31.0".parse().unwrap());
    assert!(found(&p, &s).is_empty());
}

#[test]
fn same_minor_as_the_apiserver() {
    let p = policy("  - { id: eq, kind: same-minor, component: kubectl }\n");
    assert_eq!(
        found(&p, &state()),
        ["eq kubectl -", "eq kubectl cp-2"],
        "the cluster's kubectl (1.27) and cp-2's (1.28) are not at 1.29"
    );
    let v = &p.evaluate(&state())[0];
    assert_eq!(v.allowed, "1.29");
    assert_eq!(
        v.message(),
        "the cluster's kubectl is v1.27.1, 2 minors behind the newest kube-apiserver (v1.29.4); kubectl must be at the minor of the newest kube-apiserver (allowed: 1.29)"
    );
    let p = policy("  - { id: eq, kind: same-minor, component: kubectl, apiserver: oldest }\n");
    assert_eq!(found(&p, &state()), ["eq kubectl -", "eq kubectl cp-1"]);
    assert!(
        p.evaluate(&state())[1]
            .message()
            .contains("1 minor ahead of")
    );
}

#[test]
fn node_skew_uses_the_add_on_when_the_node_has_no_own_value() {
    let p =
        policy("  - { id: px, kind: node-skew, component: kube-proxy, other: kubelet, max: 0 }\n");
    // w-1 runs its own 1.28 kube-proxy beside a 1.28 kubelet; cp-2 and w-2 get the 1.29
    // add-on beside older kubelets.
    assert_eq!(
        found(&p, &state()),
        ["px kube-proxy cp-2", "px kube-proxy w-2"]
    );
    let v = &p.evaluate(&state())[1];
    assert_eq!(v.allowed, "1.27");
    assert_eq!(
        v.message(),
        "kube-proxy on node \"w-2\" is v1.29.4, 2 minors newer than the kubelet beside it (v1.27.13); kube-proxy must be at the minor of the kubelet on its node (allowed: 1.27)"
    );
    let p =
        policy("  - { id: px, kind: node-skew, component: kube-proxy, other: kubelet, max: 1 }\n");
    assert_eq!(found(&p, &state()), ["px kube-proxy w-2"]);
    // Either way: a kubelet newer than kubeadm on the node counts too.
    let p = policy("  - { id: ka, kind: node-skew, component: kubelet, other: kubectl, max: 0 }\n");
    let mut s = state();
    s.nodes[0].versions.kubectl = Some("v1.28.0".parse().unwrap());
    assert_eq!(found(&p, &s), ["ka kubelet cp-1"]);
}

#[test]
fn minor_range_and_selectors() {
    let p = policy(
        "  - id: r\n    kind: minor-range\n    component: kubelet\n    min: \"1.28\"\n    max: \"1.28\"\n    severity: warning\n    description: the fleet stays on 1.28 this quarter\n",
    );
    assert_eq!(found(&p, &state()), ["r kubelet cp-1", "r kubelet w-2"]);
    let all = p.evaluate(&state());
    assert!(all.iter().all(|v| v.severity == Severity::Warning));
    assert_eq!(
        all[0].message(),
        "kubelet on node \"cp-1\" is v1.29.4, newer than 1.28; the fleet stays on 1.28 this quarter (allowed: 1.28)"
    );
    assert_eq!(all[1].allowed, "1.28");
    assert!(all[1].message().contains("older than 1.28"));
    // Selectors: role and labels, all must hold.
    let sel = |nodes: &str| {
        policy(&format!(
            "  - {{ id: r, kind: minor-range, component: kubelet, min: \"1.29\", nodes: {nodes} }}\n"
        ))
    };
    assert_eq!(
        found(&sel("{ role: worker }"), &state()),
        ["r kubelet w-1", "r kubelet w-2"]
    );
    assert_eq!(
        found(&sel("{ role: control-plane }"), &state()),
        ["r kubelet cp-2"]
    );
    assert_eq!(
        found(
            &sel("{ role: worker, labels: { topology.kubernetes.io/zone: b } }"),
            &state()
        ),
        ["r kubelet w-2"]
    );
    assert!(
        found(
            &sel("{ labels: { topology.kubernetes.io/zone: c } }"),
            &state()
        )
        .is_empty()
    );
    // A selector keeps a rule off the cluster-wide versions.
    let p = policy(
        "  - { id: k, kind: minor-range, component: kubectl, min: \"1.29\", nodes: { role: control-plane } }\n",
    );
    assert_eq!(found(&p, &state()), ["k kubectl cp-2"]);
}

#[test]
fn end_of_life_on_a_date() {
    // 1.27 reached its end of life on 2024-07-16, 1.28 on 2024-10-22.
    let p = policy("  - { id: eol, kind: not-end-of-life, date: 2024-07-16 }\n");
    assert_eq!(
        found(&p, &state()),
        ["eol kubectl -", "eol kubelet w-2"],
        "the cluster's kubectl (1.27) and w-2's kubelet (1.27)"
    );
    let v = &p.evaluate(&state())[1];
    assert_eq!(
        v.message(),
        "kubelet on node \"w-2\" is v1.27.13, and 1.27 reached its end of life on 2024-07-16; no component may run an end-of-life minor on 2024-07-16 (allowed: 1.28 to 1.30)"
    );
    // A day earlier nothing is past its end of life.
    let p = policy("  - { id: eol, kind: not-end-of-life, date: 2024-07-15 }\n");
    assert!(found(&p, &state()).is_empty());
    // Later, more minors fall out; `components` narrows what is checked.
    let p = policy(
        "  - { id: eol, kind: not-end-of-life, date: 2024-11-01, components: [kube-apiserver] }\n",
    );
    assert_eq!(found(&p, &state()), ["eol kube-apiserver cp-2"]);
    let p = policy(
        "  - { id: eol, kind: not-end-of-life, date: 2024-11-01, nodes: { role: worker } }\n",
    );
    assert_eq!(
        found(&p, &state()),
        ["eol kubelet w-1", "eol kube-proxy w-1", "eol kubelet w-2"]
    );
    assert_eq!(
        err("rules:\n  - id: e\n    kind: not-end-of-life\n    date: 2024-13-01\n"),
        "r.yaml:4:11: rule 1 (\"e\"): date: \"2024-13-01\" is not a date (write YYYY-MM-DD): failed to parse two digit integer as month: parameter 'month' is not in the required range of 1..=12"
    );
    assert_eq!(
        err(
            "rules:\n  - { id: e, kind: not-end-of-life, date: 2024-01-01, components: [kubelet, etcd] }\n"
        ),
        "r.yaml:2:67: rule 1 (\"e\"): components[1]: etcd has its own version numbers; the release calendar covers Kubernetes minors"
    );
}

#[test]
fn rules_without_an_apiserver_are_silent() {
    let mut s = state();
    for n in &mut s.nodes {
        n.versions.kube_apiserver = None;
    }
    let p = policy(
        "  - { id: a, kind: max-lag, component: kubelet, minors: 0 }\n  - { id: b, kind: same-minor, component: kubelet }\n",
    );
    assert!(p.evaluate(&s).is_empty());
    assert_eq!(p.evaluate(&state()).len(), 6);
}

#[test]
fn combines_with_upstream() {
    let p = policy("  - { id: lag, kind: max-lag, component: kubelet, minors: 0 }\n");
    let both = p.clone().with_upstream();
    assert_eq!(both.name(), "upstream+t");
    let s = state();
    let mut want = UpstreamPolicy::new().evaluate(&s);
    let ours = p.evaluate(&s);
    assert!(!ours.is_empty());
    want.extend(ours);
    let mut got = both.evaluate(&s);
    let key = |v: &Violation| (v.rule.clone(), v.node.clone(), v.component);
    got.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(got, want);
}

#[test]
fn errors_name_file_rule_and_field() {
    assert_eq!(
        err("rules:\n  - id: a\n    kind: max-lag\n    component: kublet\n    minors: 1\n"),
        "r.yaml:4:16: rule 1 (\"a\"): component: unknown variant `kublet`, expected one of `kube-apiserver`, `kube-controller-manager`, `kube-scheduler`, `cloud-controller-manager`, `kubelet`, `kube-proxy`, `kubectl`, `kubeadm`, `etcd`, `coredns`"
    );
    assert_eq!(
        err("rules:\n  - id: a\n    kind: max-lagg\n"),
        "r.yaml:3:11: rule 1 (\"a\"): kind: unknown kind \"max-lagg\", expected one of max-lag, same-minor, node-skew, minor-range, not-end-of-life"
    );
    assert_eq!(
        err("rules:\n  - { id: a, kind: max-lag, component: kubelet }\n"),
        "r.yaml:2:7: rule 1 (\"a\"): minors: missing"
    );
    assert_eq!(
        err("rules:\n  - { kind: same-minor, component: kubelet }\n"),
        "r.yaml:2:7: rule 1: id: missing"
    );
    assert_eq!(
        err(
            "rules:\n  - { id: a, kind: same-minor, component: kubelet }\n  - id: b\n    kind: minor-range\n    component: kubelet\n    min: 1.30\n"
        ),
        "r.yaml:6:10: rule 2 (\"b\"): min: a minor must be quoted: 1.3 is a number (YAML reads 1.30 as 1.3); write \"1.30\""
    );
    assert_eq!(
        err("rules:\n  - { id: a, kind: same-minor, component: kubelet, nodes: { role: boss } }\n"),
        "r.yaml:2:67: rule 1 (\"a\"): nodes.role: unknown variant `boss`, expected `control-plane` or `worker`"
    );
    assert_eq!(
        err("rules:\n  - { id: a, kind: same-minor, component: kubelet, minors: 2 }\n"),
        "r.yaml:2:60: rule 1 (\"a\"): minors: unknown field `minors`, expected `component` or `apiserver`"
    );
}

#[test]
fn validation_reports_every_problem() {
    let text = "\
rules:
  - { id: a, kind: same-minor, component: etcd }
  - { id: a, kind: node-skew, component: kubelet, other: kubelet, max: 1 }
  - { id: 'bad id', kind: minor-range, component: kubelet }
  - { id: r, kind: minor-range, component: kubelet, min: '1.30', max: '1.29' }
  - { id: d, kind: minor-range, component: coredns, min: '1.10', nodes: { role: worker } }
";
    assert_eq!(
            err(text),
            "r.yaml:2:43: rule 1 (\"a\"): component: etcd has its own version numbers; a same-minor rule compares Kubernetes minors
r.yaml:3:11: rule 2 (\"a\"): id: used twice (rules 1 and 2)
r.yaml:3:58: rule 2 (\"a\"): other: compares kubelet with itself
r.yaml:4:11: rule 3 (\"bad id\"): id: ' ' is not allowed (letters, digits, '-', '_', '.' and '/')
r.yaml:4:7: rule 3 (\"bad id\"): min: give min, max or both
r.yaml:5:71: rule 4 (\"r\"): max: 1.29 is older than min 1.30
r.yaml:6:73: rule 5 (\"d\"): nodes: coredns is a cluster add-on, not on any node; drop the selector"
        );
}

#[test]
fn file_level_errors() {
    assert_eq!(err(""), "r.yaml: the file is empty");
    assert_eq!(
        err("[1]"),
        "r.yaml: expected a mapping with a `rules` list, found a list"
    );
    assert_eq!(
        err("kind: Inventory\nrules: []\nextra: 1\n"),
        "r.yaml:1:7: kind: expected \"SkewRules\", found \"Inventory\"\nr.yaml: unknown field \"extra\", expected one of `apiVersion`, `kind`, `name`, `rules`"
    );
    assert_eq!(
        err("name: x\n"),
        "r.yaml: rules: missing: a rules file lists its rules"
    );
    assert_eq!(
        err("rules: 3\n"),
        "r.yaml:1:8: rules: expected a list of rules, found a number"
    );
    assert_eq!(
        err("rules:\n  - 3\n"),
        "r.yaml:2:5: rule 1: expected a mapping, found a number"
    );
    // Inline lists have no per-rule positions.
    assert_eq!(
        err("rules: [{ id: a, kind: x }]\n"),
        "r.yaml: rule 1 (\"a\"): kind: unknown kind \"x\", expected one of max-lag, same-minor, node-skew, minor-range, not-end-of-life"
    );
    assert!(
        err("rules: [\n").starts_with("r.yaml:"),
        "{}",
        err("rules: [\n")
    );
    // JSON is YAML.
    let p = RulePolicy::parse(
            r#"{"name": "j", "rules": [{"id": "x", "kind": "max-lag", "component": "kubelet", "minors": 2}]}"#,
            "r.json",
        )
        .unwrap();
    assert_eq!(p.policy_name(), "j");
    assert_eq!(p.rules().len(), 1);
    assert_eq!(
        RulePolicy::parse("rules: []", "r").unwrap().policy_name(),
        "rules"
    );
}

#[test]
fn yaml_round_trip() {
    let p = policy(
        "  - { id: a, kind: max-lag, component: kubelet, apiserver: oldest, minors: 1, severity: warning, description: 'why: because' }\n  - { id: b, kind: same-minor, component: kubectl }\n  - { id: c, kind: node-skew, component: kube-proxy, other: kubelet, max: 0, nodes: { role: worker, labels: { zone: a } } }\n  - { id: d, kind: minor-range, component: etcd, min: '3.5', max: '3.10' }\n",
    );
    let text = p.to_yaml();
    assert!(
        text.starts_with("apiVersion: kupgrade.dev/v1alpha1\nkind: SkewRules\nname: t\n"),
        "{text}"
    );
    assert_eq!(RulePolicy::parse(&text, "again.yaml").unwrap(), p);
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(RulePolicy::parse(&json, "again.json").unwrap(), p);
}

#[test]
fn the_sample_file_parses() {
    let text = include_str!("../../../../../examples/policies/strict.yaml");
    let p = RulePolicy::parse(text, "strict.yaml").unwrap();
    assert_eq!(p.policy_name(), "strict");
    assert!(p.rules().len() >= 5);
}

#[test]
fn deep_nesting_is_refused_before_parsing() {
    assert_eq!(
        err(&"[".repeat(100_000)),
        "r.yaml:1:129: lists and mappings are nested more than 128 deep"
    );
    let text = format!(
        "rules:\n  - id: a\n    kind: max-lag\n    minors: {}\n",
        "[".repeat(150)
    );
    assert_eq!(
        err(&text),
        "r.yaml:4:141: lists and mappings are nested more than 128 deep"
    );
}

/// Many bad rules: every one reported, each at its own place.
#[test]
fn every_bad_rule_is_located() {
    let mut text = String::from("rules:\n");
    for i in 0..2_000 {
        text.push_str(&format!(
            "  - id: r{i}\n    kind: max-lag\n    component: kublet\n    minors: 1\n"
        ));
    }
    let e = RulePolicy::parse(&text, "r.yaml").unwrap_err();
    assert_eq!(e.problems.len(), 2_000);
    assert_eq!(e.problems[1_999].location, Some((1 + 4 * 1_999 + 3, 16)));
    assert_eq!(
        e.problems[1_999].entry.as_ref().unwrap().to_string(),
        "rule 2000 (\"r1999\")"
    );
}
