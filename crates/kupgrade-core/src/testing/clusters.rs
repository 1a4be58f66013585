//! Strategies for cluster states, and the repair that makes them satisfy a policy.
use super::*;

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
                nodes: Default::default(),
            };
            (Just(state), Just(nodes).prop_shuffle())
        })
        .prop_map(|(mut state, mut nodes)| {
            if !matches!(state.etcd, EtcdTopology::Stacked) {
                for n in &mut nodes {
                    n.versions.etcd = None;
                }
            }
            state.nodes = nodes.into();
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
pub(super) fn repair<P: SkewPolicy + ?Sized>(
    policy: &P,
    mut state: ClusterState,
) -> Option<ClusterState> {
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
