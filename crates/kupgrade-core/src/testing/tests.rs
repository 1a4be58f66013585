//! Tests of the strategies and of `check_policy`.
use super::clusters::repair;
use super::*;
use crate::skew::UpstreamPolicy;
use proptest::strategy::ValueTree;

proptest! {
    #![proptest_config(Config { cases: 64, failure_persistence: None, ..Config::default() })]

    #[test]
    fn generated_states_are_valid(state in cluster_state(1..=40)) {
        prop_assert!(crate::inventory::validate(&state).is_ok(), "{:?}", crate::inventory::validate(&state));
        prop_assert!((1..=40).contains(&state.nodes.len()));
        let cps = state.control_plane().count();
        prop_assert!((1..=5).contains(&cps));
    }

    #[test]
    fn satisfying_states_satisfy(
        state in cluster_state_satisfying(UpstreamPolicy::new(), 1..=20)
    ) {
        prop_assert!(UpstreamPolicy::new().errors(&state).is_empty());
    }

    #[test]
    fn satisfying_states_satisfy_rule_policies(
        (policy, state) in rule_policy().prop_flat_map(|p| {
            let again = p.clone();
            (Just(p), cluster_state(1..=10).prop_map(move |s| repair(&again, s)))
        })
    ) {
        if let Some(state) = state {
            prop_assert!(policy.errors(&state).is_empty());
        }
    }

    #[test]
    fn rule_policies_round_trip_through_yaml(policy in rule_policy()) {
        let text = policy.to_yaml();
        prop_assert_eq!(RulePolicy::parse(&text, "generated.yaml").map_err(|e| e.to_string()), Ok(policy));
    }

    #[test]
    fn version_text_parses(text in version_text()) {
        prop_assert!(KubeVersion::parse(&text).is_ok(), "{text}");
    }

    #[test]
    fn node_names_are_valid(name in node_name()) {
        prop_assert!(NodeName::new(name.as_str()).is_ok());
    }
}

#[test]
fn upstream_and_generated_rule_policies_keep_the_invariants() {
    check_policy(&UpstreamPolicy::new());
    check_policy(&UpstreamPolicy::as_documented_in(Minor::new(1, 27)));
    let mut runner = quiet_runner();
    let policies = vec(rule_policy(), 6);
    let policies = policies.new_tree(&mut runner).expect("a tree").current();
    for p in &policies {
        let config = Config {
            cases: 48,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner = TestRunner::new_with_rng(
            config.clone(),
            TestRng::deterministic_rng(config.rng_algorithm),
        );
        if let Err(e) = check_policy_with(p, &mut runner) {
            panic!("{}: {e}", p.to_yaml());
        }
    }
}

/// Repair finds a satisfying state for most generated policies (not only trivial ones).
#[test]
fn repair_usually_succeeds() {
    let mut runner = quiet_runner();
    let (mut ok, mut nontrivial) = (0, 0);
    for _ in 0..200 {
        let p = rule_policy()
            .new_tree(&mut runner)
            .expect("a tree")
            .current();
        let s = cluster_state(1..=10)
            .new_tree(&mut runner)
            .expect("a tree")
            .current();
        if !p.errors(&s).is_empty() {
            nontrivial += 1;
            if repair(&p, s).is_some() {
                ok += 1;
            }
        }
    }
    assert!(nontrivial >= 50, "{nontrivial}");
    assert!(
        ok * 10 >= nontrivial * 9,
        "repaired only {ok} of {nontrivial}"
    );
}

/// A seeded runner that shrinks briefly and writes no regression files.
fn quiet_runner() -> TestRunner {
    let config = Config {
        max_shrink_iters: 100,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(
        config.clone(),
        TestRng::deterministic_rng(config.rng_algorithm),
    )
}

/// A policy whose per-node rule looks at other nodes is caught.
#[test]
fn a_non_local_policy_is_caught() {
    struct Peeks;
    impl SkewPolicy for Peeks {
        fn name(&self) -> &str {
            "peeks"
        }
        fn check_cluster(&self, _: &Context<'_>, _: &mut Vec<Violation>) {}
        fn check_node(&self, cx: &Context<'_>, node: &Node, out: &mut Vec<Violation>) {
            // Compares with the oldest kubelet anywhere: not per-node.
            let (Some(min), Some(own)) = (cx.state.kubelet_min(), node.kubelet()) else {
                return;
            };
            if own.minor() > min.minor() {
                out.push(
                    Violation::new(
                        "peeks",
                        Severity::Error,
                        Component::Kubelet,
                        own.clone(),
                        min.minor().to_string(),
                        "newer than the oldest kubelet",
                    )
                    .on_node(node.name.clone()),
                );
            }
        }
    }
    let err = check_policy_with(&Peeks, &mut quiet_runner()).unwrap_err();
    assert!(
        err.reason
            .contains("per-node rules must depend only on the node"),
        "{err}"
    );
    let state = err.state.as_ref().expect("the failing state");
    assert!(
        err.to_string().contains(&format!(
            "the state, as an inventory:\n{}",
            serde_yaml_ng::to_string(state).unwrap()
        )),
        "{err}"
    );
}

/// A policy that reports nodes in list order with a counter breaks order independence.
#[test]
fn an_order_dependent_policy_is_caught() {
    struct FirstNode;
    impl SkewPolicy for FirstNode {
        fn name(&self) -> &str {
            "first"
        }
        fn check_cluster(&self, cx: &Context<'_>, out: &mut Vec<Violation>) {
            let n = &cx.state.nodes[0];
            out.push(
                Violation::new(
                    "first",
                    Severity::Warning,
                    Component::Kubelet,
                    n.kubelet().cloned().unwrap_or(KubeVersion::new(1, 0, 0)),
                    "any",
                    "listed first",
                )
                .on_node(n.name.clone()),
            );
        }
        fn check_node(&self, _: &Context<'_>, _: &Node, _: &mut Vec<Violation>) {}
    }
    let err = check_policy_with(&FirstNode, &mut quiet_runner()).unwrap_err();
    assert!(err.reason.contains("another order"), "{err}");
}

/// A policy that reads a label it does not declare in `label_keys` is caught.
#[test]
fn a_policy_reading_undeclared_labels_is_caught() {
    struct ZoneA;
    impl SkewPolicy for ZoneA {
        fn name(&self) -> &str {
            "zone-a"
        }
        fn label_keys(&self) -> crate::skew::LabelKeys {
            crate::skew::LabelKeys::none()
        }
        fn check_cluster(&self, _: &Context<'_>, _: &mut Vec<Violation>) {}
        fn check_node(&self, _: &Context<'_>, node: &Node, out: &mut Vec<Violation>) {
            if node.zone().is_some() {
                out.push(
                    Violation::new(
                        "zone-a",
                        Severity::Error,
                        Component::Kubelet,
                        node.kubelet().cloned().unwrap_or(KubeVersion::new(1, 0, 0)),
                        "no zone",
                        "nodes with a zone label are refused",
                    )
                    .on_node(node.name.clone()),
                );
            }
        }
    }
    let err = check_policy_with(&ZoneA, &mut quiet_runner()).unwrap_err();
    assert!(
        err.reason.contains("labels the policy does not read"),
        "{err}"
    );
}

/// The label keys each policy declares, through every wrapper.
#[test]
fn policies_declare_the_labels_they_read() {
    use crate::skew::{AllOf, LabelKeys};
    let upstream = UpstreamPolicy::new();
    assert_eq!(upstream.label_keys(), LabelKeys::none());
    let rules = RulePolicy::parse(
        "rules:\n  - { id: pool, kind: max-lag, component: kubelet, apiserver: newest, minors: 1, nodes: { labels: { pool: legacy } } }\n  - { id: any, kind: max-lag, component: kubelet, apiserver: newest, minors: 2 }\n",
        "r.yaml",
    )
    .unwrap();
    assert_eq!(rules.label_keys(), LabelKeys::only(["pool"]));
    let both = AllOf::new(vec![Box::new(upstream.clone()), Box::new(rules.clone())]);
    assert_eq!(both.label_keys(), LabelKeys::only(["pool"]));
    let boxed: Box<dyn SkewPolicy> = Box::new(rules.clone());
    assert_eq!(boxed.label_keys(), LabelKeys::only(["pool"]));
    fn through(p: impl SkewPolicy) -> LabelKeys {
        p.label_keys()
    }
    assert_eq!(through(&upstream), LabelKeys::none());
    assert_eq!(
        std::sync::Arc::new(rules).label_keys(),
        LabelKeys::only(["pool"])
    );
    struct Default;
    impl SkewPolicy for Default {
        fn name(&self) -> &str {
            "default"
        }
        fn check_cluster(&self, _: &Context<'_>, _: &mut Vec<Violation>) {}
        fn check_node(&self, _: &Context<'_>, _: &Node, _: &mut Vec<Violation>) {}
    }
    assert_eq!(Default.label_keys(), LabelKeys::All);
    let with_default = AllOf::new(vec![Box::new(Default), Box::new(UpstreamPolicy::new())]);
    assert_eq!(with_default.label_keys(), LabelKeys::All);
}
