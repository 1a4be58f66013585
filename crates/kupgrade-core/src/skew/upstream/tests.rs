use super::*;
use crate::testing::v;
use crate::{ClusterState, Node};

#[cfg(feature = "proptest")]
proptest::proptest! {
    /// `errors` skips building warnings but finds exactly the errors `evaluate` finds, in
    /// the same order, under every edition and endpoint reading.
    #[test]
    fn errors_are_the_errors_of_evaluate(
        state in crate::testing::cluster_state(1..40),
        old_edition in proptest::bool::ANY,
        balanced in proptest::bool::ANY,
    ) {
        let mut policy = if old_edition {
            UpstreamPolicy::as_documented_in(Minor::new(1, 27))
        } else {
            UpstreamPolicy::new()
        };
        if balanced {
            policy = policy.with_endpoint(ControlPlaneEndpoint::LoadBalanced);
        }
        let mut want = policy.evaluate(&state);
        want.retain(|v| v.severity == Severity::Error);
        proptest::prop_assert_eq!(policy.errors(&state), want);
    }
}

/// Two API servers (1.31 and 1.30) and one node, as in the examples of the upstream page.
fn ha(kubelet: &str) -> ClusterState {
    let mut a = Node::control_plane("cp-a", v("1.31.2"), None).unwrap();
    a.versions.kubelet = Some(v("1.30.0"));
    a.versions.kubeadm = Some(v("1.31.2"));
    a.versions.kubectl = None;
    let mut b = Node::control_plane("cp-b", v("1.30.5"), None).unwrap();
    b.versions.kubectl = None;
    let mut w = Node::worker("w-1", v(kubelet)).unwrap();
    w.versions.kubeadm = None;
    w.versions.kubectl = None;
    ClusterState::new(vec![a, b, w])
}

/// Large clusters are judged in parts on several threads: the same violations, in the
/// same order, as on one thread, whatever the number of threads and wherever the
/// control-plane nodes are.
#[test]
fn threads_change_nothing() {
    let n = UpstreamPolicy::PARALLEL_FROM + 3_001;
    let nodes = (0..n)
        .map(|i| {
            if [0, 7_777, n - 1].contains(&i) {
                let apiserver = if i == 7_777 { "1.30.5" } else { "1.31.2" };
                return Node::control_plane(&format!("cp-{i}"), v(apiserver), None).unwrap();
            }
            // Kubelets 1.26 to 1.31 (1.26 and 1.27 too old), kubectl and kubeadm of
            // their own minor or the next.
            let m = 26 + (i * 7 % 6) as u64;
            let mut w = Node::worker(&format!("w-{i}"), Minor::new(1, m).with_patch(1)).unwrap();
            w.versions.kubectl = Some(Minor::new(1, m + (i % 2) as u64).with_patch(0));
            w.versions.kubeadm = Some(Minor::new(1, m + (i % 3 == 0) as u64).with_patch(0));
            if i % 11 == 0 {
                w.versions.kube_proxy = Some(Minor::new(1, 26).with_patch(0));
            }
            w
        })
        .collect();
    let state = ClusterState::new(nodes);
    let one = UpstreamPolicy::new().with_threads(1);
    let all = one.evaluate(&state);
    assert!(all.len() > 10_000, "{}", all.len());
    assert!(all.iter().any(|v| v.severity == Severity::Error));
    for threads in [2, 3, 4] {
        let many = UpstreamPolicy::new().with_threads(threads);
        assert!(many.evaluate(&state) == all, "{threads} threads");
        assert!(
            many.errors(&state) == one.errors(&state),
            "{threads} threads"
        );
    }
    assert_eq!(UpstreamPolicy::new().threads_for(100), 1);
}

fn rules(state: &ClusterState) -> Vec<String> {
    let mut r: Vec<String> = UpstreamPolicy::new()
        .errors(state)
        .into_iter()
        .map(|v| {
            format!(
                "{} {}",
                v.rule,
                v.node.map(|n| n.to_string()).unwrap_or_default()
            )
        })
        .collect();
    r.sort();
    r
}

/// The worked examples of the upstream version skew policy page, as a table.
#[test]
fn upstream_page_examples() {
    // kubelet with API servers at 1.31 and 1.30: 1.30, 1.29, 1.28 allowed; 1.31 too new;
    // 1.27 four behind the newest.
    for (kubelet, ok) in [
        ("1.30.1", true),
        ("1.29.0", true),
        ("1.28.3", true),
        ("1.31.0", false),
        ("1.27.9", false),
    ] {
        assert_eq!(
            rules(&ha(kubelet)).is_empty(),
            ok,
            "kubelet {kubelet}: {:?}",
            rules(&ha(kubelet))
        );
    }
    // controller-manager etc. with API servers at 1.31 and 1.30: 1.30 only.
    for (cm, ok) in [("1.30.0", true), ("1.31.0", false), ("1.29.0", false)] {
        let mut s = ha("1.30.0");
        for n in &mut s.nodes[..2] {
            n.versions.kube_controller_manager = Some(v(cm));
        }
        assert_eq!(rules(&s).is_empty(), ok, "controller-manager {cm}");
    }
    // Behind a load balancer the page's example holds literally: cp-a's 1.31 controller
    // manager may reach the 1.30 API server.
    let lb = UpstreamPolicy::new().with_endpoint(ControlPlaneEndpoint::LoadBalanced);
    let errs = lb.errors(&ha("1.30.0"));
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0]
            .message()
            .contains("newer than the oldest kube-apiserver (v1.30.5)")
    );
    // kubectl with API servers at 1.31 and 1.30: 1.31 and 1.30 allowed.
    for (kubectl, ok) in [
        ("1.31.0", true),
        ("1.30.0", true),
        ("1.32.0", false),
        ("1.29.0", false),
    ] {
        let mut s = ha("1.30.0");
        s.kubectl = Some(v(kubectl));
        assert_eq!(rules(&s).is_empty(), ok, "kubectl {kubectl}");
    }
    // HA API servers two minors apart.
    let mut s = ha("1.29.0");
    s.nodes[1].versions.kube_apiserver = Some(v("1.29.0"));
    s.nodes[1].versions.kube_controller_manager = Some(v("1.29.0"));
    s.nodes[1].versions.kube_scheduler = Some(v("1.29.0"));
    assert!(
        rules(&s).contains(&"upstream/ha-apiserver cp-b".to_string()),
        "{:?}",
        rules(&s)
    );
}

#[test]
fn kubelets_older_than_1_25_may_lag_two() {
    let mut s = ClusterState::new(vec![
        Node::control_plane("cp", v("1.27.0"), None).unwrap(),
        Node::worker("w", v("1.24.0")).unwrap(),
    ]);
    s.nodes[1].versions.kubectl = None;
    assert_eq!(rules(&s), vec!["upstream/kubelet w"]);
    s.nodes[1].versions.kubelet = Some(v("1.25.0"));
    s.nodes[0].versions.kube_apiserver = Some(v("1.28.0"));
    for c in [Component::KubeControllerManager, Component::KubeScheduler] {
        *s.nodes[0].versions.slot_mut(c).unwrap() = Some(v("1.28.0"));
    }
    assert!(rules(&s).is_empty(), "{:?}", rules(&s));
    // The same cluster under the pre-1.28 page: only two minors.
    assert_eq!(
        UpstreamPolicy::as_documented_in(Minor::new(1, 27))
            .errors(&s)
            .len(),
        1
    );
}

#[test]
fn kube_proxy_rules() {
    let mut s = ha("1.28.0");
    s.addons.kube_proxy = Some(v("1.31.0"));
    assert_eq!(rules(&s), vec!["upstream/kube-proxy "]);
    s.addons.kube_proxy = Some(v("1.30.0"));
    assert!(rules(&s).is_empty());
    // kube-proxy 1.30 beside a 1.26 kubelet: 4 apart (also too old against the apiserver).
    s.nodes[2].versions.kubelet = Some(v("1.26.0"));
    assert!(rules(&s).contains(&"upstream/kube-proxy-kubelet w-1".to_string()));
    // Pre-1.28 edition: kube-proxy must match the kubelet's minor.
    s.nodes[2].versions.kubelet = Some(v("1.29.0"));
    let old = UpstreamPolicy::as_documented_in(Minor::new(1, 27));
    assert!(
        old.errors(&s)
            .iter()
            .any(|v| v.rule == "upstream/kube-proxy-kubelet")
    );
}

#[test]
fn messages_name_node_found_and_allowed() {
    let errs = UpstreamPolicy::new().errors(&ha("1.27.9"));
    assert_eq!(
        errs[0].message(),
        "kubelet on node \"w-1\" is v1.27.9, 4 minors older than the newest kube-apiserver (v1.31.2); a kubelet at 1.27 may be at most 3 minors older and never newer (allowed: 1.28 to 1.30)"
    );
    assert_eq!(errs[0].allowed, "1.28 to 1.30");
}

#[test]
fn bundled_versions_are_warnings() {
    let mut s = ClusterState::new(vec![
        Node::control_plane("cp", v("1.28.3"), Some(v("3.5.6-0"))).unwrap(),
    ]);
    s.addons.coredns = Some(v("v1.9.3"));
    let all = UpstreamPolicy::new().evaluate(&s);
    assert!(all.iter().all(|x| x.severity == Severity::Warning));
    let rules: Vec<_> = all.iter().map(|x| x.rule.as_str()).collect();
    assert_eq!(rules, vec!["upstream/coredns", "upstream/etcd"]);
    assert_eq!(
        all[1].message(),
        "etcd on node \"cp\" is 3.5.6-0, older than the 3.5.9-0 kubeadm ships for Kubernetes 1.28"
    );
}
