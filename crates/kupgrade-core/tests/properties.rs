//! Property tests: version and minor round-trips, the ordering laws, and policies that do not
//! care in which order the nodes are listed.
use std::cmp::Ordering;

use kupgrade_core::skew::rules::RulePolicy;
use kupgrade_core::skew::{AllOf, SkewPolicy, UpstreamPolicy, Violation};
use kupgrade_core::testing::{
    cluster_state, minor, rule_policy, stable_version, version, version_text,
};
use kupgrade_core::{ClusterState, KubeVersion, Minor};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Violations as a multiset, comparable whatever order they were reported in.
fn sorted(mut v: Vec<Violation>) -> Vec<Violation> {
    v.sort_by_cached_key(|x| serde_json::to_string(x).unwrap());
    v
}

fn reversed(state: &ClusterState) -> ClusterState {
    let mut s = state.clone();
    s.nodes.reverse();
    s
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn version_display_parse_round_trip(v in version()) {
        let text = v.to_string();
        prop_assert!(text.starts_with('v'));
        prop_assert_eq!(KubeVersion::parse(&text), Ok(v.clone()));
        // The plain spelling parses to the same version.
        prop_assert_eq!(KubeVersion::parse(&v.to_plain_string()), Ok(v.clone()));
        // Printing is canonical: printing the parsed text again gives the same text.
        prop_assert_eq!(KubeVersion::parse(&text).unwrap().to_string(), text);
    }

    #[test]
    fn version_text_parses_and_prints_canonically(text in version_text()) {
        let v = KubeVersion::parse(&text).unwrap();
        let canonical = if text.starts_with('v') { text.clone() } else { format!("v{text}") };
        // Generated pre-release numbers never have leading zeros, so printing gives the input.
        prop_assert_eq!(v.to_string(), canonical);
    }

    #[test]
    fn version_serde_round_trip(v in version()) {
        let json = serde_json::to_string(&v).unwrap();
        prop_assert_eq!(&json, &format!("\"{v}\""));
        prop_assert_eq!(serde_json::from_str::<KubeVersion>(&json).unwrap(), v.clone());
        let yaml = serde_yaml_ng::to_string(&v).unwrap();
        prop_assert_eq!(serde_yaml_ng::from_str::<KubeVersion>(&yaml).unwrap(), v);
    }

    #[test]
    fn minor_display_parse_serde_round_trip(m in minor(), major in 0u64..5, n in any::<u64>()) {
        prop_assert_eq!(Minor::parse(&m.to_string()), Ok(m));
        prop_assert_eq!(Minor::parse(&format!("v{m}")), Ok(m));
        let json = serde_json::to_string(&m).unwrap();
        prop_assert_eq!(serde_json::from_str::<Minor>(&json).unwrap(), m);
        let any = Minor::new(major, n);
        prop_assert_eq!(Minor::parse(&any.to_string()), Ok(any));
    }

    #[test]
    fn minor_of_a_version_agrees(v in version()) {
        let m = v.minor();
        prop_assert_eq!((m.major(), m.minor()), (v.major(), v.minor_number()));
        prop_assert!(m.first_patch().minor() == m);
    }

    #[test]
    fn ordering_is_consistent_with_eq(a in version(), b in version()) {
        prop_assert_eq!(a.cmp(&b) == Ordering::Equal, a == b);
        prop_assert_eq!(a.partial_cmp(&b), Some(a.cmp(&b)));
        prop_assert_eq!(a.cmp(&a), Ordering::Equal);
    }

    #[test]
    fn ordering_is_antisymmetric(a in version(), b in version()) {
        prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
    }

    /// Close versions (same release, different suffixes) are where the order is subtle, so
    /// the triples are drawn from a few releases.
    #[test]
    fn ordering_is_transitive(
        vs in proptest::collection::vec(version_near(), 3..=3),
        ws in proptest::collection::vec(version(), 3..=3),
    ) {
        for vs in [vs, ws] {
            let (a, b, c) = (&vs[0], &vs[1], &vs[2]);
            if a <= b && b <= c {
                prop_assert!(a <= c, "{a} <= {b} <= {c} but not {a} <= {c}");
            }
            if a < b && b < c {
                prop_assert!(a < c, "{a} < {b} < {c} but not {a} < {c}");
            }
            let mut sorted = vs.clone();
            sorted.sort();
            prop_assert!(sorted.windows(2).all(|w| w[0] <= w[1]));
        }
    }

    #[test]
    fn release_order_ignores_vendor_and_build(v in version()) {
        let r = v.release();
        prop_assert!(r <= v, "{r} > {v}");
        prop_assert_eq!(r.vendor(), None);
        prop_assert_eq!(r.build(), None);
        prop_assert_eq!(r.phase(), v.phase());
    }

    #[test]
    fn minor_ordering_laws(a in minor(), b in minor(), c in minor()) {
        prop_assert_eq!(a.cmp(&b) == Ordering::Equal, a == b);
        prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
        if a <= b && b <= c {
            prop_assert!(a <= c);
        }
        prop_assert_eq!(a.skew_to(b), -b.skew_to(a));
        prop_assert_eq!(a.skew_to(b).signum(), match a.cmp(&b) {
            Ordering::Less => 1,
            Ordering::Equal => 0,
            Ordering::Greater => -1,
        });
    }
}

/// Versions of a few releases of 1.29/1.30 with every kind of suffix.
fn version_near() -> impl Strategy<Value = KubeVersion> {
    (
        prop::sample::select(vec!["v1.29.3", "v1.30.0"]),
        prop::sample::select(vec![
            "",
            "-alpha.0",
            "-alpha.1",
            "-alpha.1.12",
            "-alpha.x",
            "-beta.2",
            "-rc.0",
            "-rc.1",
            "-eks-5e0fdde",
            "-eks.1",
            "-gke.999",
            "-gke.1000",
            "-gke.01000",
            "-0",
            "-1",
            "-a-b",
            "-a.b",
            "-rc-1",
        ]),
        prop::sample::select(vec!["", "+k3s1", "+k3s2", "+1", "+01", "+a.b"]),
    )
        .prop_map(|(base, suffix, build)| {
            KubeVersion::parse(&format!("{base}{suffix}{build}")).unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..config() })]

    #[test]
    fn upstream_results_do_not_depend_on_node_order(
        state in cluster_state(1..=30),
        order in any::<u64>(),
    ) {
        for policy in [UpstreamPolicy::new(), UpstreamPolicy::as_documented_in(Minor::new(1, 27))] {
            let all = sorted(policy.evaluate(&state));
            prop_assert_eq!(&all, &sorted(policy.evaluate(&reversed(&state))));
            let mut rotated = state.clone();
            let k = (order as usize) % rotated.nodes.len();
            rotated.nodes.rotate_left(k);
            prop_assert_eq!(&all, &sorted(policy.evaluate(&rotated)));
        }
    }

    #[test]
    fn rule_policy_results_do_not_depend_on_node_order(
        policy in rule_policy(),
        state in cluster_state(1..=20),
    ) {
        prop_assert_eq!(
            sorted(policy.evaluate(&state)),
            sorted(policy.evaluate(&reversed(&state)))
        );
    }

    #[test]
    fn all_of_reports_each_policy(policy in rule_policy(), state in cluster_state(1..=12)) {
        let combined = policy.clone().with_upstream();
        let mut want = UpstreamPolicy::new().evaluate(&state);
        want.extend(policy.evaluate(&state));
        prop_assert_eq!(sorted(combined.evaluate(&state)), sorted(want));
        let again = AllOf::new(vec![Box::new(policy.clone()), Box::new(UpstreamPolicy::new())]);
        prop_assert_eq!(sorted(again.evaluate(&state)), sorted(combined.evaluate(&state)));
    }

    #[test]
    fn stable_versions_are_stable(v in stable_version()) {
        prop_assert!(v.is_stable());
        prop_assert_eq!(v.release(), v);
    }

    #[test]
    fn rules_files_round_trip(policy in rule_policy()) {
        let yaml = policy.to_yaml();
        prop_assert_eq!(RulePolicy::parse(&yaml, "p.yaml").unwrap(), policy.clone());
        let json = serde_json::to_string_pretty(&policy).unwrap();
        prop_assert_eq!(RulePolicy::parse(&json, "p.json").unwrap(), policy);
    }
}
