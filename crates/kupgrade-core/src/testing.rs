//! Property-testing support (feature `proptest`): strategies for kupgrade's types and
//! [`check_policy`], which runs the library's invariants against your own [`SkewPolicy`].
//!
//! # Property-testing a custom policy
//!
//! ```
//! use kupgrade_core::{Node, Minor, skew::{Context, Severity, SkewPolicy, Violation}, testing};
//! use proptest::prelude::*;
//!
//! /// House rule: no kubelet older than 1.25.
//! struct KubeletFloor;
//! impl SkewPolicy for KubeletFloor {
//!     fn name(&self) -> &str { "kubelet-floor" }
//!     fn check_cluster(&self, _: &Context<'_>, _: &mut Vec<Violation>) {}
//!     fn check_node(&self, _: &Context<'_>, node: &Node, out: &mut Vec<Violation>) {
//!         let Some(v) = node.kubelet() else { return };
//!         if v.minor() < Minor::new(1, 25) {
//!             out.push(Violation { rule: "floor".into(), severity: Severity::Error,
//!                 component: kupgrade_core::Component::Kubelet, node: Some(node.name.clone()),
//!                 found: v.clone(), allowed: "1.25 or newer".into(), message: format!("{v} is too old") });
//!         }
//!     }
//! }
//!
//! testing::check_policy(&KubeletFloor); // order independence, locality, determinism, ...
//! proptest!(|(state in testing::cluster_state_satisfying(KubeletFloor, 1..=30))| {
//!     prop_assert!(state.nodes.iter().all(|n| n.kubelet().unwrap().minor() >= Minor::new(1, 25)));
//! });
//! ```
//!
//! # Strategies
//!
//! Versions: [`stable_version`], [`version`] (pre-releases, vendor builds and build metadata
//! too), [`version_text`] (the spellings people write), [`minor`]. Clusters: [`node_name`],
//! [`cluster_state`] (valid inventories with realistic skew: 1 to 5 control-plane nodes,
//! sometimes mid-upgrade, workers lagging 0 to 4 minors, vendor builds now and then) and
//! [`cluster_state_satisfying`] (the same, repaired until a policy has no errors). Policies:
//! [`rule`] and [`rule_policy`] (declarative [`RulePolicy`]s).
//!
//! Strategies are deterministic functions of proptest's random source; nothing here reads the
//! clock or the environment (proptest's own runner may read `PROPTEST_*` variables).
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use proptest::collection::{SizeRange, vec};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRng, TestRunner};

use crate::skew::rules::{
    Apiserver, Check, MaxLag, MinorRangeRule, NodeSelector, NodeSkew, NotEndOfLife, Rule,
    RulePolicy, SameMinor,
};
use crate::skew::{Context, Severity, SkewPolicy, Summary, Violation};
use crate::{
    Addons, ClusterState, Component, EtcdTopology, KubeVersion, Minor, Node, NodeName, Role,
    ZONE_LABEL,
};

/// The minors [`cluster_state`] puts its control plane at (kubeadm's bundled data covers them).
pub const CONTROL_PLANE_MINORS: std::ops::RangeInclusive<u64> = 22..=34;

/// A Kubernetes minor `1.0` to `1.40`.
pub fn minor() -> impl Strategy<Value = Minor> {
    (0u64..=40).prop_map(|m| Minor::new(1, m))
}

/// A version number: mostly small, sometimes anywhere in `u32` (the largest a version holds).
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..40, 1 => any::<u32>().prop_map(u64::from)]
}

/// A stable release with no suffix: `v1.M.P` with M up to 40.
pub fn stable_version() -> impl Strategy<Value = KubeVersion> {
    (0u64..=40, 0u64..=30).prop_map(|(m, p)| KubeVersion::new(1, m, p))
}

/// Any version the grammar allows: stable, pre-release (`-alpha.1`, `-rc.0`, `-beta.2.12`),
/// vendor builds (`-eks-5e0fdde`, `-gke.1000000`, `-0`) and build metadata (`+k3s1`), with
/// numbers from small to `u32::MAX`.
pub fn version() -> impl Strategy<Value = KubeVersion> {
    version_text().prop_map(|s| KubeVersion::parse(&s).expect("generated version text parses"))
}

/// The text of a valid version, spelled with or without the leading `v`.
pub fn version_text() -> impl Strategy<Value = String> {
    let pre = (
        prop_oneof![Just("alpha"), Just("beta"), Just("rc")],
        proptest::option::of(0u64..20),
        // Further identifiers start with a letter (else they would be the number), and
        // numeric ones have no leading zero (the parser refuses `alpha.1.01`, as semver does).
        proptest::option::of("[a-z][a-z0-9]{0,3}(\\.([a-z][a-z0-9]{0,3}|[1-9][0-9]{0,3}|0)){0,2}"),
    )
        .prop_map(|(phase, n, rest)| {
            let mut s = format!("-{phase}");
            if let Some(n) = n {
                s.push_str(&format!(".{n}"));
            }
            if let Some(rest) = rest {
                s.push('.');
                s.push_str(&rest);
            }
            s
        });
    let vendor = prop_oneof![
        "eks-[0-9a-f]{7}",
        "eksbuild\\.[0-9]{1,2}",
        "gke\\.[0-9]{1,7}",
        "[0-9]{1,2}",
        "[a-z][a-zA-Z0-9]{0,6}([-.][a-zA-Z0-9]{1,6}){0,2}",
    ]
    .prop_filter("a pre-release phase is not a vendor", |s| {
        let head = s.split('.').next().unwrap_or_default();
        !matches!(head, "alpha" | "beta" | "rc")
    })
    .prop_map(|s| format!("-{s}"));
    let suffix = prop_oneof![
        3 => Just(String::new()),
        2 => pre,
        2 => vendor,
    ];
    let build = proptest::option::weighted(0.2, "[a-zA-Z0-9]{1,6}(\\.[a-zA-Z0-9]{1,6}){0,2}");
    (any::<bool>(), number(), number(), number(), suffix, build).prop_map(
        |(v, major, minor, patch, suffix, build)| {
            let mut s = format!(
                "{}{major}.{minor}.{patch}{suffix}",
                if v { "v" } else { "" }
            );
            if let Some(b) = build {
                s.push('+');
                s.push_str(&b);
            }
            s
        },
    )
}

/// A valid node name (RFC 1123 subdomain), such as `w-3` or `ip-10-0-1-10.ec2.internal`.
pub fn node_name() -> impl Strategy<Value = NodeName> {
    "[a-z0-9]([-a-z0-9]{0,14}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?){0,3}"
        .prop_map(|s| NodeName::new(&s).expect("generated node names are valid"))
}

/// A release of minor `m`, now and then a vendor build or with build metadata.
fn release_of(m: Minor) -> impl Strategy<Value = KubeVersion> {
    (
        0u64..=20,
        prop_oneof![
            8 => Just(String::new()),
            1 => "-eks-[0-9a-f]{7}",
            1 => "\\+k3s[1-3]",
        ],
    )
        .prop_map(move |(patch, suffix)| {
            let text = format!("v{}.{}.{patch}{suffix}", m.major(), m.minor());
            KubeVersion::parse(&text).expect("generated releases parse")
        })
}

fn minus(m: Minor, n: u64) -> Minor {
    Minor::new(m.major(), m.minor().saturating_sub(n))
}

fn bundled_etcd(m: Minor) -> Option<KubeVersion> {
    crate::bundled::bundled(m).and_then(|b| b.etcd.clone())
}

fn bundled_coredns(m: Minor) -> Option<KubeVersion> {
    crate::bundled::bundled(m).and_then(|b| b.coredns.clone())
}

const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

/// A control-plane node of a cluster at `m` (one minor ahead when `ahead`: mid-upgrade).
fn control_plane_node(m: Minor) -> impl Strategy<Value = Node> {
    (
        prop_oneof![5 => Just(0u64), 1 => Just(1u64)],
        release_of(m),
        release_of(m.next()),
        prop_oneof![6 => Just(0u64), 1 => Just(1u64)],
        any::<bool>(),
        0..ZONES.len(),
    )
        .prop_map(move |(ahead, at_m, at_next, cm_lag, kubectl, zone)| {
            let v = if ahead == 1 { at_next } else { at_m };
            let etcd = bundled_etcd(v.minor());
            let mut node = Node::control_plane("placeholder", v.clone(), etcd)
                .expect("a valid name")
                .with_label(ZONE_LABEL, ZONES[zone]);
            if cm_lag == 1 && ahead == 0 {
                let older = minus(v.minor(), 1).with_patch(v.patch());
                node.versions.kube_controller_manager = Some(older.clone());
                node.versions.kube_scheduler = Some(older);
            }
            if !kubectl {
                node.versions.kubectl = None;
            }
            node
        })
}

/// A worker of a cluster whose control plane is at `m`, lagging 0 to 4 minors.
fn worker_node(m: Minor) -> impl Strategy<Value = Node> {
    let lag = prop_oneof![8 => Just(0u64), 4 => Just(1u64), 2 => Just(2u64), 1 => Just(3u64), 1 => Just(4u64)];
    lag.prop_flat_map(move |lag| {
        let km = minus(m, lag);
        (
            release_of(km),
            prop_oneof![3 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
            proptest::option::weighted(0.1, release_of(km)),
            0..ZONES.len(),
            any::<bool>(),
        )
    })
    .prop_map(|(kubelet, tools, proxy, zone, role_label)| {
        let mut node = Node::worker("placeholder", kubelet)
            .expect("a valid name")
            .with_label(ZONE_LABEL, ZONES[zone]);
        match tools {
            0 => {}
            1 => node.versions.kubectl = None,
            _ => {
                node.versions.kubectl = None;
                node.versions.kubeadm = None;
            }
        }
        node.versions.kube_proxy = proxy;
        if !role_label {
            node.roles.clear();
        }
        node
    })
}

/// Cluster-wide parts of a cluster at `m`: add-ons, the operators' kubectl, etcd topology.
fn cluster_parts(m: Minor) -> impl Strategy<Value = (Addons, Option<KubeVersion>, EtcdTopology)> {
    (
        proptest::option::weighted(0.9, release_of(m)),
        any::<bool>(),
        proptest::option::of(prop_oneof![
            release_of(minus(m, 1)),
            release_of(m),
            release_of(m.next())
        ]),
        proptest::option::weighted(0.1, proptest::option::of(Just(()))),
    )
        .prop_map(move |(kube_proxy, coredns, kubectl, external)| {
            let addons = Addons {
                kube_proxy,
                coredns: if coredns { bundled_coredns(m) } else { None },
            };
            let etcd = match external {
                None => EtcdTopology::Stacked,
                Some(known) => EtcdTopology::External {
                    version: known.and(bundled_etcd(m)),
                    endpoints: vec!["https://etcd-1.example:2379".into()],
                },
            };
            (addons, kubectl, etcd)
        })
}

/// A valid cluster state (it passes [`crate::inventory::validate`]) with a node count in
/// `nodes` (at least one): 1 to 5 control-plane nodes at a minor in
/// [`CONTROL_PLANE_MINORS`] (sometimes one of them a minor ahead, mid-upgrade, and sometimes
/// controller manager and scheduler a minor behind), the rest workers lagging 0 to 4 minors,
/// zones, optional kubectl and kubeadm, add-ons and stacked or external etcd. Nodes come in
/// random order with unique names. States need not satisfy any policy.
pub fn cluster_state(nodes: impl Into<SizeRange>) -> impl Strategy<Value = ClusterState> {
    let size: SizeRange = nodes.into();
    let (lo, hi) = size.start_end_incl();
    let (lo, hi) = (lo.max(1), hi.max(1));
    (lo..=hi, CONTROL_PLANE_MINORS)
        .prop_flat_map(|(n, m)| {
            let m = Minor::new(1, m);
            (
                Just(n),
                Just(m),
                1..=n.min(5),
                "[a-z][a-z0-9]{0,5}(\\.example)?",
            )
        })
        .prop_flat_map(|(n, m, cps, base)| {
            (
                vec(control_plane_node(m), cps),
                vec(worker_node(m), n - cps),
                cluster_parts(m),
                Just(base),
            )
        })
        .prop_flat_map(|(cps, workers, (addons, kubectl, etcd), base)| {
            let mut nodes = cps;
            nodes.extend(workers);
            for (i, node) in nodes.iter_mut().enumerate() {
                let name = match base.split_once('.') {
                    Some((host, domain)) => format!("{host}-{i}.{domain}"),
                    None => format!("{base}-{i}"),
                };
                node.name = NodeName::new(&name).expect("generated names are valid");
            }
            let state = ClusterState {
                name: None,
                etcd,
                addons,
                kubectl,
                nodes: Vec::new(),
            };
            (Just(state), Just(nodes).prop_shuffle())
        })
        .prop_map(|(mut state, mut nodes)| {
            if !matches!(state.etcd, EtcdTopology::Stacked) {
                for n in &mut nodes {
                    n.versions.etcd = None;
                }
            }
            state.nodes = nodes;
            state
        })
}

/// A valid cluster state (as [`cluster_state`] makes them) on which `policy` reports no
/// error (warnings may remain).
///
/// Each generated state is repaired rather than thrown away: every component an error names is
/// moved to the control plane's version (or the version kubeadm bundles for etcd and CoreDNS),
/// and optional ones (kubectl, kubeadm, a node's own kube-proxy) are dropped if that is not
/// enough; failing that, the whole cluster is levelled to one version, at the control plane's
/// minor or the nearest one the policy accepts. Only states that are still refused are filtered
/// out, so a policy that accepts no cluster at all makes proptest give up with "too many local
/// rejects".
pub fn cluster_state_satisfying<P>(
    policy: P,
    nodes: impl Into<SizeRange>,
) -> impl Strategy<Value = ClusterState>
where
    P: SkewPolicy + 'static,
{
    let policy = Arc::new(policy);
    cluster_state(nodes).prop_filter_map("the policy still reports errors after repair", move |s| {
        repair(&*policy, s)
    })
}

/// Repairs `state` until `policy` reports no error, or gives up (`None`).
fn repair<P: SkewPolicy + ?Sized>(policy: &P, mut state: ClusterState) -> Option<ClusterState> {
    for round in 0..4 {
        let errors = policy.errors(&state);
        if errors.is_empty() {
            return Some(state);
        }
        let target = state.apiserver_min()?.clone();
        for v in &errors {
            fix(&mut state, v, &target, round > 0);
        }
    }
    // Level the whole cluster: at the control plane's version first, then at the nearest
    // minors (a policy may forbid the one generated).
    let target = state.apiserver_min()?.clone();
    let m = target.minor().minor();
    let mut candidates: Vec<u64> = (LEVEL_MINORS).collect();
    candidates.sort_by_key(|&c| (c.abs_diff(m), c));
    for c in candidates {
        let mut levelled = state.clone();
        level(&mut levelled, &Minor::new(1, c).with_patch(target.patch()));
        if policy.errors(&levelled).is_empty() {
            return Some(levelled);
        }
    }
    None
}

/// The minors a cluster may be levelled to when repairing.
const LEVEL_MINORS: std::ops::RangeInclusive<u64> = 19..=40;

/// Moves the component `v` names toward `target`; `drop` removes optional ones instead.
fn fix(state: &mut ClusterState, v: &Violation, target: &KubeVersion, drop: bool) {
    let m = target.minor();
    let Some(name) = &v.node else {
        match v.component {
            Component::Kubectl => state.kubectl = (!drop).then(|| target.clone()),
            Component::KubeProxy => state.addons.kube_proxy = (!drop).then(|| target.clone()),
            Component::CoreDns => state.addons.coredns = bundled_coredns(m).filter(|_| !drop),
            Component::Etcd => {
                if let EtcdTopology::External { version, .. } = &mut state.etcd {
                    *version = bundled_etcd(m).filter(|_| !drop);
                }
            }
            _ => {}
        }
        return;
    };
    if v.component == Component::KubeApiserver {
        // API servers apart: bring every control-plane node to the oldest.
        for node in state.nodes.iter_mut().filter(|n| n.is_control_plane()) {
            level_control_plane(node, target);
        }
        return;
    }
    let Some(node) = state.nodes.iter_mut().find(|n| &n.name == name) else {
        return;
    };
    let own_apiserver = node.versions.kube_apiserver.clone();
    let versions = &mut node.versions;
    match v.component {
        Component::Kubelet => versions.kubelet = Some(target.clone()),
        Component::KubeProxy => versions.kube_proxy = (!drop).then(|| target.clone()),
        Component::Kubectl => versions.kubectl = (!drop).then(|| target.clone()),
        Component::Kubeadm => versions.kubeadm = (!drop).then(|| target.clone()),
        Component::Etcd => versions.etcd = bundled_etcd(m).filter(|_| !drop),
        c @ (Component::KubeControllerManager
        | Component::KubeScheduler
        | Component::CloudControllerManager) => {
            if let Some(slot) = versions.slot_mut(c) {
                *slot = Some(own_apiserver.unwrap_or_else(|| target.clone()));
            }
        }
        Component::KubeApiserver | Component::CoreDns => {}
    }
}

fn level_control_plane(node: &mut Node, target: &KubeVersion) {
    let v = &mut node.versions;
    v.kube_apiserver = Some(target.clone());
    v.kube_controller_manager = Some(target.clone());
    v.kube_scheduler = Some(target.clone());
    if v.cloud_controller_manager.is_some() {
        v.cloud_controller_manager = Some(target.clone());
    }
    if v.etcd.is_some() {
        v.etcd = bundled_etcd(target.minor());
    }
}

/// Every component at `target` (etcd and CoreDNS at kubeadm's versions for its minor).
fn level(state: &mut ClusterState, target: &KubeVersion) {
    let m = target.minor();
    for node in &mut state.nodes {
        if node.is_control_plane() {
            level_control_plane(node, target);
        }
        let v = &mut node.versions;
        v.kubelet = Some(target.clone());
        v.kube_proxy = None;
        for slot in [&mut v.kubectl, &mut v.kubeadm] {
            if slot.is_some() {
                *slot = Some(target.clone());
            }
        }
    }
    state.kubectl = state.kubectl.as_ref().map(|_| target.clone());
    state.addons.kube_proxy = state.addons.kube_proxy.as_ref().map(|_| target.clone());
    state.addons.coredns = state.addons.coredns.as_ref().and(bundled_coredns(m));
    if let EtcdTopology::External { version, .. } = &mut state.etcd {
        *version = version.as_ref().and(bundled_etcd(m));
    }
}

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

/// An invariant a policy broke, with the state that shows it.
#[derive(Clone, Debug)]
pub struct PolicyCheckError {
    /// Which invariant, and how it failed.
    pub reason: String,
    /// The smallest state proptest found that shows it, when it got that far.
    pub state: Option<Box<ClusterState>>,
}

impl fmt::Display for PolicyCheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reason)?;
        if let Some(state) = &self.state {
            let yaml = serde_yaml_ng::to_string(state).unwrap_or_else(|e| e.to_string());
            write!(f, "\nthe state, as an inventory:\n{yaml}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyCheckError {}

/// Runs the library's invariants against `policy` on 256 generated states (a fixed seed, so
/// every run checks the same states) and panics with the smallest failing state, written as an
/// inventory. For use in a `#[test]`; see [`check_policy_with`] to choose the runner.
///
/// The invariants: evaluation is deterministic; `evaluate` equals `check_cluster` followed by
/// `check_node` for each node; `errors` is `evaluate`'s errors; the violations do not depend on
/// the order of the nodes; every violation names an existing node (or none), and `check_node`
/// only the node it was given; and a node's violations do not change when another worker
/// changes (per-node rules depend only on the node and the [`Summary`]).
pub fn check_policy<P: SkewPolicy + ?Sized>(policy: &P) {
    let config = Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config.clone(),
        TestRng::deterministic_rng(config.rng_algorithm),
    );
    if let Err(e) = check_policy_with(policy, &mut runner) {
        panic!("policy {:?} breaks an invariant: {e}", policy.name());
    }
}

/// [`check_policy`] with your own runner (cases, seed, shrinking limits).
pub fn check_policy_with<P: SkewPolicy + ?Sized>(
    policy: &P,
    runner: &mut TestRunner,
) -> Result<(), PolicyCheckError> {
    let strategy = cluster_state(1..=12).prop_flat_map(|state| {
        let order = Just((0..state.nodes.len()).collect::<Vec<_>>()).prop_shuffle();
        (
            Just(state),
            order,
            any::<Index>(),
            stable_version(),
            any::<bool>(),
        )
    });
    runner
        .run(&strategy, |(state, order, pick, new_kubelet, relabel)| {
            invariants(policy, &state, &order, pick, new_kubelet, relabel)
        })
        .map_err(|e| match e {
            TestError::Abort(why) => PolicyCheckError {
                reason: format!("the check was aborted: {why}"),
                state: None,
            },
            TestError::Fail(why, (state, ..)) => PolicyCheckError {
                reason: why.message().to_string(),
                state: Some(Box::new(state)),
            },
        })
}

/// A sortable key for comparing violations as multisets.
fn sorted(mut v: Vec<Violation>) -> Vec<Violation> {
    v.sort_by_cached_key(|x| serde_json::to_string(x).unwrap_or_default());
    v
}

fn invariants<P: SkewPolicy + ?Sized>(
    policy: &P,
    state: &ClusterState,
    order: &[usize],
    pick: Index,
    new_kubelet: KubeVersion,
    relabel: bool,
) -> Result<(), TestCaseError> {
    let all = policy.evaluate(state);
    prop_assert_eq!(
        &all,
        &policy.evaluate(state),
        "evaluate gave different answers for the same state"
    );

    let summary = Summary::of(state);
    let cx = Context {
        state,
        summary: &summary,
    };
    let mut parts = Vec::new();
    policy.check_cluster(&cx, &mut parts);
    let mut per_node = Vec::with_capacity(state.nodes.len());
    for node in &state.nodes {
        let mut out = Vec::new();
        policy.check_node(&cx, node, &mut out);
        for v in &out {
            prop_assert!(
                v.node.is_none() || v.node.as_ref() == Some(&node.name),
                "check_node for node {:?} reported a violation on node {:?}: {}",
                node.name.as_str(),
                v.node.as_ref().map(NodeName::as_str),
                v
            );
        }
        parts.extend(out.iter().cloned());
        per_node.push(out);
    }
    prop_assert_eq!(
        &all,
        &parts,
        "evaluate differs from check_cluster followed by check_node for each node"
    );

    let mut errors = all.clone();
    errors.retain(|v| v.severity == Severity::Error);
    prop_assert_eq!(
        &policy.errors(state),
        &errors,
        "errors differs from the errors among evaluate's violations"
    );

    for v in &all {
        if let Some(name) = &v.node {
            prop_assert!(
                state.node(name.as_str()).is_some(),
                "a violation names node {:?}, which is not in the cluster: {}",
                name.as_str(),
                v
            );
        }
    }

    let mut reordered = state.clone();
    reordered.nodes = order.iter().map(|&i| state.nodes[i].clone()).collect();
    prop_assert_eq!(
        sorted(all.clone()),
        sorted(policy.evaluate(&reordered)),
        "the violations change when the nodes are listed in another order"
    );

    // Change one worker: every other node's per-node violations must stay the same.
    let workers: Vec<usize> = (0..state.nodes.len())
        .filter(|&i| !state.nodes[i].is_control_plane())
        .collect();
    if workers.is_empty() {
        return Ok(());
    }
    let j = *pick.get(&workers);
    let mut changed = state.clone();
    {
        let w = &mut changed.nodes[j];
        w.versions.kubelet = Some(new_kubelet.clone());
        w.versions.kube_proxy = Some(new_kubelet.clone());
        w.versions.kubeadm = Some(new_kubelet);
        if relabel {
            w.labels.insert(ZONE_LABEL.into(), "zone-moved".into());
        }
    }
    let summary2 = Summary::of(&changed);
    let cx2 = Context {
        state: &changed,
        summary: &summary2,
    };
    for (i, node) in changed.nodes.iter().enumerate() {
        if i == j {
            continue;
        }
        let mut out = Vec::new();
        policy.check_node(&cx2, node, &mut out);
        prop_assert_eq!(
            &out,
            &per_node[i],
            "node {:?}'s violations changed when worker {:?} changed: per-node rules must depend only on the node and the summary",
            node.name.as_str(),
            changed.nodes[j].name.as_str()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
                    out.push(Violation {
                        rule: "peeks".into(),
                        severity: Severity::Error,
                        component: Component::Kubelet,
                        node: Some(node.name.clone()),
                        found: own.clone(),
                        allowed: min.minor().to_string(),
                        message: "newer than the oldest kubelet".into(),
                    });
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
                out.push(Violation {
                    rule: "first".into(),
                    severity: Severity::Warning,
                    component: Component::Kubelet,
                    node: Some(n.name.clone()),
                    found: n.kubelet().cloned().unwrap_or(KubeVersion::new(1, 0, 0)),
                    allowed: "any".into(),
                    message: "listed first".into(),
                });
            }
            fn check_node(&self, _: &Context<'_>, _: &Node, _: &mut Vec<Violation>) {}
        }
        let err = check_policy_with(&FirstNode, &mut quiet_runner()).unwrap_err();
        assert!(err.reason.contains("another order"), "{err}");
    }
}
