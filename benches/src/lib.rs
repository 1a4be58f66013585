//! Shared fixtures for kupgrade's criterion benchmarks (see `benches/`).
//!
//! Everything here is deterministic: the same arguments give the same cluster on every run and
//! every machine, so benchmark figures compare across commits.
use jiff::civil::date;
use kupgrade_core::plan::{BatchSize, PlanOptions, PlanRequest, Target, UpgradePlan};
use kupgrade_core::readiness::{Budget, Owner, Pod, Workloads};
use kupgrade_core::{ClusterState, KubeVersion, Minor, Node, NodeName, ZONE_LABEL};

/// A small, fast, deterministic random source (SplitMix64): fixtures must not depend on a
/// random seed or on the `rand` crate's algorithm choices.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The minor the fixture's control plane runs.
pub const CONTROL_PLANE: Minor = Minor::new(1, 31);

/// A realistic cluster of `nodes` nodes (at least 3), the same for the same `seed`:
///
/// - 3 to 5 control-plane nodes at v1.31.x with stacked etcd at kubeadm's bundled version,
///   spread over three zones;
/// - workers whose kubelets lag the control plane by 0 to 3 minors (about 55 % current,
///   25 % one behind, 15 % two, 5 % three: a fleet rolled forward in waves), each with the
///   kubeadm and kubectl packages of its kubelet's version, as kubeadm's install guide leaves
///   them; one in ten has its kube-proxy pod still at its kubelet's version (a rollout in
///   progress);
/// - the kube-proxy DaemonSet and CoreDNS at the control plane's versions.
///
/// Every state is valid and within the upstream policy's errors; workers two and three minors
/// behind carry kubectl warnings, as real fleets do.
pub fn cluster(nodes: usize, seed: u64) -> ClusterState {
    let nodes = nodes.max(3);
    let mut rng = SplitMix64::new(seed);
    let control_plane = (3 + rng.below(3) as usize).min(nodes);
    let zones = ["zone-a", "zone-b", "zone-c"];
    let cp_version = CONTROL_PLANE.with_patch(4 + rng.below(4));
    let bundled = kupgrade_core::bundled::bundled(CONTROL_PLANE);
    let etcd = bundled.and_then(|b| b.etcd.clone());
    let mut out = Vec::with_capacity(nodes);
    for i in 0..control_plane {
        out.push(control_plane_node(
            i + 1,
            &cp_version,
            &etcd,
            zones[i % zones.len()],
        ));
    }
    for i in 0..nodes - control_plane {
        let lag = match rng.below(100) {
            0..55 => 0,
            55..80 => 1,
            80..95 => 2,
            _ => 3,
        };
        let minor = Minor::new(1, CONTROL_PLANE.minor() - lag);
        let kubelet = minor.with_patch(rng.below(12));
        let mut node = Node::worker(&format!("worker-{:05}", i + 1), kubelet.clone())
            .expect("valid name")
            .with_label(ZONE_LABEL, zones[rng.below(3) as usize]);
        if rng.below(10) == 0 {
            node.versions.kube_proxy = Some(kubelet);
        }
        out.push(node);
    }
    with_addons(out, format!("bench-{nodes}"), cp_version)
}

/// Control-plane node `cp-{i}` at `version` with stacked etcd at `etcd`, in `zone`.
fn control_plane_node(
    i: usize,
    version: &KubeVersion,
    etcd: &Option<KubeVersion>,
    zone: &str,
) -> Node {
    Node::control_plane(&format!("cp-{i}"), version.clone(), etcd.clone())
        .expect("valid name")
        .with_label(ZONE_LABEL, zone)
}

/// The request of the `plan`, `report` and `readiness` benches for [`cluster`]: to 1.34 on
/// 2026-06-01 (three minor hops from the control plane's 1.31), workers in `batch`es.
pub fn three_hops<'a>(batch: BatchSize) -> PlanRequest<'a> {
    PlanRequest::new(Target::Minor(Minor::new(1, 34)), date(2026, 6, 1)).options(PlanOptions {
        batch,
        ..PlanOptions::default()
    })
}

/// The plan of the `apply_sim` and `run_report` benches for `cluster` (a [`cluster`]): to the
/// latest 1.32 on 2025-06-01, workers in batches of 5 %, pre-staged or not.
pub fn simulated_plan(cluster: &ClusterState, prestage: bool) -> UpgradePlan {
    PlanRequest::new("1.32".parse().expect("target"), date(2025, 6, 1))
        .options(PlanOptions {
            batch: BatchSize::Percent(5),
            prestage,
            ..PlanOptions::default()
        })
        .plan(cluster)
        .expect("the fixture plans")
}

/// `state` with every node labelled `kubernetes.io/hostname` (its name), as the kubelet
/// labels nodes: no two nodes have the same labels any more.
pub fn with_hostnames(mut state: ClusterState) -> ClusterState {
    for node in state.nodes.iter_mut() {
        let name = node.name.to_string();
        node.labels.insert("kubernetes.io/hostname".into(), name);
    }
    state
}

/// A cluster of `nodes` nodes (3 control-plane nodes, the rest workers named as in
/// [`worker_name`]), every node at `minor`'s patch 4 with kubeadm's bundled etcd and add-ons:
/// the start of a long multi-hop plan.
pub fn cluster_at(minor: Minor, nodes: usize) -> ClusterState {
    let nodes = nodes.max(3);
    let zones = ["zone-a", "zone-b", "zone-c"];
    let version = minor.with_patch(4);
    let bundled = kupgrade_core::bundled::bundled(minor);
    let etcd = bundled.and_then(|b| b.etcd.clone());
    let mut out = Vec::with_capacity(nodes);
    for (i, zone) in zones.iter().enumerate() {
        out.push(control_plane_node(i + 1, &version, &etcd, zone));
    }
    for i in 1..=nodes - 3 {
        let node = Node::worker(worker_name(i).as_str(), version.clone())
            .expect("valid name")
            .with_label(ZONE_LABEL, zones[i % 3]);
        out.push(node);
    }
    with_addons(out, format!("bench-{nodes}-at-{minor}"), version)
}

/// The cluster `name` of `nodes`, its kube-proxy and kubectl at the control plane's
/// `version`, CoreDNS at kubeadm's bundled version for it.
fn with_addons(nodes: Vec<Node>, name: String, version: KubeVersion) -> ClusterState {
    let mut state = ClusterState::new(nodes);
    state.name = Some(name);
    state.addons.kube_proxy = Some(version.clone());
    state.addons.coredns =
        kupgrade_core::bundled::bundled(version.minor()).and_then(|b| b.coredns.clone());
    state.kubectl = Some(version);
    state
}

/// Pods and PodDisruptionBudgets for the workers of [`cluster`] or [`cluster_at`] (named as
/// in [`worker_name`], `1..=workers`), the same for the same `seed`: `pods` pods spread at
/// random, one budget per 50 pods (each allowing 1 to 4 disruptions now, except the first
/// `recovering`, which allow none while their workloads recover, never permanently), nine
/// pods in ten under one budget, one in twenty a DaemonSet's.
pub fn workloads(workers: usize, pods: usize, recovering: usize, seed: u64) -> Workloads {
    let mut rng = SplitMix64::new(seed);
    let budgets: Vec<Budget> = (0..pods.div_ceil(50))
        .map(|i| {
            let allowed = if i < recovering {
                0
            } else {
                1 + rng.below(4) as u32
            };
            Budget {
                namespace: format!("team-{}", i % 40),
                name: format!("app-{i}"),
                disruptions_allowed: allowed,
                current_healthy: 50 - u32::from(allowed == 0),
                desired_healthy: 50 - allowed.max(1),
                expected_pods: 50,
                unhealthy_pod_eviction_policy: None,
                spec: Some(format!("maxUnavailable: {}", allowed.max(1))),
            }
        })
        .collect();
    let pods = (0..pods)
        .map(|i| {
            let b = rng.below(budgets.len() as u64) as usize;
            let node = worker_name(1 + rng.below(workers.max(1) as u64) as usize);
            let daemon = rng.below(20) == 0;
            let covered = !daemon && rng.below(10) != 0;
            Pod {
                namespace: budgets[b].namespace.clone(),
                name: format!("pod-{i}"),
                node: Some(node),
                owner: Some(Owner {
                    kind: if daemon { "DaemonSet" } else { "ReplicaSet" }.into(),
                    name: budgets[b].name.clone(),
                    replicas: (!daemon).then_some(50),
                }),
                healthy: true,
                budgets: if covered {
                    vec![budgets[b].name.clone()]
                } else {
                    vec![]
                },
                volumes: vec![],
            }
        })
        .collect();
    Workloads { budgets, pods }
}

/// Version strings as they appear in real inventories and API responses.
pub const TYPICAL_VERSIONS: [&str; 8] = [
    "v1.29.3",
    "1.30.12",
    "v1.31.0-rc.1",
    "v1.32.0-alpha.3.120+7f8b2c9e1d",
    "v1.29.3-eks-5e0fdde",
    "v1.28.9-gke.1000000",
    "v1.29.3+k3s1",
    "3.5.12-0",
];

/// The node name of worker `i` (1-based) in [`cluster`]'s fixtures.
pub fn worker_name(i: usize) -> NodeName {
    NodeName::new(&format!("worker-{i:05}")).expect("valid name")
}

/// Parses `text`, which the fixtures only call with valid versions.
pub fn version(text: &str) -> KubeVersion {
    text.parse().expect("a valid version")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kupgrade_core::skew::{Severity, SkewPolicy, UpstreamPolicy};

    #[test]
    fn fixtures_are_deterministic_valid_and_realistic() {
        let a = cluster(5_000, 7);
        assert_eq!(a, cluster(5_000, 7));
        assert_ne!(a, cluster(5_000, 8));
        assert_eq!(a.nodes.len(), 5_000);
        kupgrade_core::inventory::validate(&a).unwrap();
        let cps = a.control_plane().count();
        assert!((3..=5).contains(&cps), "{cps}");
        let violations = UpstreamPolicy::new().evaluate(&a);
        assert!(
            violations.iter().all(|v| v.severity == Severity::Warning),
            "{:?}",
            violations.iter().find(|v| v.severity == Severity::Error)
        );
        // Workers lag 0 to 3 minors, each lag present.
        for lag in 0..=3u64 {
            let m = Minor::new(1, CONTROL_PLANE.minor() - lag);
            assert!(
                a.workers().any(|w| w.kubelet().unwrap().minor() == m),
                "no worker at {m}"
            );
        }
        assert_eq!(
            a.node(worker_name(1).as_str()).unwrap().name,
            worker_name(1)
        );
        for text in TYPICAL_VERSIONS {
            assert_eq!(
                version(text).to_string().trim_start_matches('v'),
                text.trim_start_matches('v')
            );
        }
    }
}
