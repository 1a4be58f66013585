//! Strategies for declarative rule policies.
use super::*;

/// A component numbered like Kubernetes.
fn kubernetes_component() -> impl Strategy<Value = Component> {
    proptest::sample::select(
        Component::ALL
            .into_iter()
            .filter(|c| c.version_line() == crate::VersionLine::Kubernetes)
            .collect::<Vec<_>>(),
    )
}

/// One valid declarative rule of any kind, with the given id.
fn rule_with_id(id: String) -> impl Strategy<Value = Rule> {
    let apiserver = prop_oneof![Just(Apiserver::Newest), Just(Apiserver::Oldest)];
    let check = prop_oneof![
        (kubernetes_component(), apiserver.clone(), 0u32..=3).prop_map(
            |(component, apiserver, minors)| Check::MaxLag(MaxLag {
                component,
                apiserver,
                minors
            })
        ),
        (kubernetes_component(), apiserver).prop_map(|(component, apiserver)| Check::SameMinor(
            SameMinor {
                component,
                apiserver
            }
        )),
        (kubernetes_component(), kubernetes_component(), 0u32..=3)
            .prop_filter("two different components", |(a, b, _)| a != b)
            .prop_map(|(component, other, max)| Check::NodeSkew(NodeSkew {
                component,
                other,
                max
            })),
        (
            kubernetes_component(),
            proptest::option::of(20u64..=30),
            proptest::option::of(0u64..=8)
        )
            .prop_filter("a range has an end", |(_, lo, span)| lo.is_some()
                || span.is_some())
            .prop_map(|(component, lo, span)| {
                let min = lo.map(|m| Minor::new(1, m));
                let max = span.map(|s| Minor::new(1, lo.unwrap_or(26) + s));
                Check::MinorRange(MinorRangeRule {
                    component,
                    min,
                    max,
                })
            }),
        (
            0i16..=8 * 365,
            proptest::collection::vec(kubernetes_component(), 0..=2)
        )
            .prop_map(|(days, components)| {
                let start = jiff::civil::date(2021, 1, 1);
                let date = start
                    .checked_add(jiff::Span::new().days(i64::from(days)))
                    .unwrap_or(start);
                Check::NotEndOfLife(NotEndOfLife { date, components })
            }),
    ];
    let selector = proptest::option::weighted(
        0.3,
        (
            proptest::option::of(prop_oneof![Just(Role::ControlPlane), Just(Role::Worker)]),
            proptest::option::of(0..ZONES.len()),
        )
            .prop_map(|(role, zone)| NodeSelector {
                role,
                labels: zone
                    .map(|z| BTreeMap::from([(ZONE_LABEL.to_string(), ZONES[z].to_string())]))
                    .unwrap_or_default(),
            }),
    );
    (
        check,
        selector,
        prop_oneof![Just(Severity::Error), Just(Severity::Warning)],
        proptest::option::weighted(0.2, "[a-z][a-z ]{0,30}[a-z]"),
    )
        .prop_map(move |(check, nodes, severity, description)| Rule {
            id: id.clone(),
            severity,
            description,
            nodes,
            check,
        })
}

/// One valid declarative rule of any kind (its id is `rule`).
pub fn rule() -> impl Strategy<Value = Rule> {
    rule_with_id("rule".to_string())
}

/// A valid declarative policy of 0 to 6 rules with unique ids.
pub fn rule_policy() -> impl Strategy<Value = RulePolicy> {
    (0usize..=6, "[a-z][a-z0-9-]{0,8}")
        .prop_flat_map(|(n, name)| {
            let rules: Vec<_> = (0..n)
                .map(|i| rule_with_id(format!("{name}/rule-{i}")))
                .collect();
            (Just(name), rules)
        })
        .prop_map(|(name, rules)| RulePolicy::new(name, rules).expect("generated rules are valid"))
}
