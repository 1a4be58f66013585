//! `--batch auto` over generated clusters with mixed PodDisruptionBudgets: every batch of a
//! wave overdraws no budget, and is maximal (any node of a later batch of the wave would
//! overdraw one if added); a budget that can never allow a disruption is refused as a named
//! deadlock, before the plan starts.
use jiff::civil::{Date, date};
use kupgrade_core::plan::{Action, BatchSize, PlanError, PlanOptions, PlanRequest, Target};
use kupgrade_core::ports::DrainOptions;
use kupgrade_core::readiness::{Budget, DrainModel, Owner, Pod, Workloads};
use kupgrade_core::{ClusterState, NodeName};
use proptest::prelude::*;

const DATE: Date = date(2025, 3, 1);

/// One control-plane node and `workers` workers at v1.29.10, in zones a, b and c.
fn cluster(workers: usize) -> ClusterState {
    let v = "v1.29.10";
    let mut text = format!(
        "nodes:\n  - name: cp-1\n    roles: [control-plane]\n    versions: {{ kubelet: {v}, kubeadm: {v}, kube-apiserver: {v}, kube-controller-manager: {v}, kube-scheduler: {v}, etcd: 3.5.10-0 }}\n"
    );
    for i in 0..workers {
        let zone = ["a", "b", "c"][i % 3];
        text.push_str(&format!(
            "  - name: w-{i:02}\n    labels: {{ topology.kubernetes.io/zone: {zone} }}\n    versions: {{ kubelet: {v}, kubeadm: {v} }}\n"
        ));
    }
    kupgrade_core::inventory::parse(&text, "cluster.yaml").expect("a valid inventory")
}

fn node(i: usize) -> NodeName {
    NodeName::new(&format!("w-{i:02}")).unwrap()
}

/// A budget allowing `allowed` disruptions now; `permanent` ones never allow any
/// (`maxUnavailable: 0`), others with none allowed now are only unhealthy for a while.
fn budget(i: usize, allowed: u32, permanent: bool) -> Budget {
    let expected = 10;
    let (allowed, desired, healthy) = match (permanent, allowed) {
        (true, _) => (0, expected, expected),
        (false, 0) => (0, expected - 1, expected - 2),
        (false, n) => (n, expected - n, expected),
    };
    Budget {
        namespace: "shop".into(),
        name: format!("pdb-{i}"),
        disruptions_allowed: allowed,
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: expected,
        unhealthy_pod_eviction_policy: None,
        spec: Some(if permanent {
            "maxUnavailable: 0".into()
        } else {
            format!("maxUnavailable: {allowed}")
        }),
    }
}

/// Workers, budgets `(allowed, permanent)`, and pods `(worker, budget indices, healthy)`.
type Fixture = (usize, Vec<(u32, bool)>, Vec<(usize, Vec<usize>, bool)>);

fn fixture() -> impl Strategy<Value = Fixture> {
    (
        1usize..=18,
        prop::collection::vec((0u32..=3, prop::bool::weighted(0.1)), 1..=6),
    )
        .prop_flat_map(|(workers, budgets)| {
            let b = budgets.len();
            let pod = (
                0..workers,
                prop::collection::vec(0..b, 0..=2),
                prop::bool::weighted(0.9),
            );
            (
                Just(workers),
                Just(budgets),
                prop::collection::vec(pod, 0..=workers * 3),
            )
        })
}

fn workloads((_, budgets, pods): &Fixture) -> Workloads {
    Workloads {
        budgets: budgets
            .iter()
            .enumerate()
            .map(|(i, &(a, p))| budget(i, a, p))
            .collect(),
        pods: pods
            .iter()
            .enumerate()
            .map(|(i, (on, bs, healthy))| {
                let mut names: Vec<String> = bs.iter().map(|b| format!("pdb-{b}")).collect();
                names.sort();
                names.dedup();
                Pod {
                    namespace: "shop".into(),
                    name: format!("pod-{i}"),
                    node: Some(node(*on)),
                    owner: Some(Owner {
                        kind: "ReplicaSet".into(),
                        name: "web".into(),
                        replicas: Some(3),
                    }),
                    healthy: *healthy,
                    budgets: names,
                    volumes: vec![],
                }
            })
            .collect(),
    }
}

fn auto(max_per_zone: Option<BatchSize>) -> PlanOptions {
    PlanOptions {
        batch: BatchSize::Auto,
        max_per_zone,
        ..PlanOptions::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn auto_batches_never_overdraw_and_are_maximal(fx in fixture()) {
        let state = cluster(fx.0);
        let w = workloads(&fx);
        let drain = DrainOptions::default();
        let model = DrainModel::new(&w, &drain);
        let workers: Vec<NodeName> = (0..fx.0).map(node).collect();
        // Nodes whose drain alone overdraws a budget that can never allow a disruption.
        let stuck: Vec<&NodeName> = workers
            .iter()
            .filter(|n| {
                model
                    .overdraws(std::slice::from_ref(*n))
                    .iter()
                    .any(|&(b, _)| model.budget(b).never_allows())
            })
            .collect();
        let result = PlanRequest::new(Target::Minor("1.30".parse().unwrap()), DATE)
            .options(auto(None))
            .workloads(&w)
            .plan(&state);
        let plan = match result {
            Err(PlanError::DrainDeadlock { budget, nodes, pods, .. }) => {
                prop_assert!(!stuck.is_empty(), "a deadlock was reported where none is");
                prop_assert!(nodes.iter().all(|n| stuck.contains(&n)));
                let b = w.budgets.iter().find(|b| b.id() == budget).expect("a known budget");
                prop_assert!(b.never_allows());
                prop_assert!(!pods.is_empty());
                return Ok(());
            }
            other => other.expect("a plan"),
        };
        prop_assert!(stuck.is_empty(), "nodes {stuck:?} can never drain, and the plan did not say so");
        // The waves: the workers' drains of each hop.
        let mut waves: Vec<(Option<usize>, Vec<Vec<NodeName>>)> = Vec::new();
        for s in &plan.steps {
            if !matches!(s.action, Action::Drain { .. }) || s.nodes.iter().any(|n| n.as_str() == "cp-1") {
                continue;
            }
            let batch: Vec<NodeName> = s.nodes.iter().cloned().collect();
            match waves.last_mut() {
                Some((hop, batches)) if *hop == s.hop => batches.push(batch),
                _ => waves.push((s.hop, vec![batch])),
            }
        }
        prop_assert!(!waves.is_empty());
        for (_, batches) in &waves {
            let mut all: Vec<&NodeName> = batches.iter().flatten().collect();
            all.sort();
            prop_assert_eq!(all, workers.iter().collect::<Vec<_>>(), "every worker drained once");
            for (i, batch) in batches.iter().enumerate() {
                let over = model.overdraws(batch);
                prop_assert!(
                    over.is_empty() || batch.len() == 1,
                    "batch {batch:?} overdraws {over:?}"
                );
                if !over.is_empty() {
                    continue; // a node that overdraws alone: it goes alone
                }
                for later in batches[i + 1..].iter().flatten() {
                    let mut bigger = batch.clone();
                    bigger.push(later.clone());
                    prop_assert!(
                        !model.overdraws(&bigger).is_empty(),
                        "batch {batch:?} is not maximal: {later} fits"
                    );
                }
            }
        }
    }
}

#[test]
fn auto_without_workloads_is_refused_naming_what_is_missing() {
    let e = PlanRequest::new(Target::Minor("1.30".parse().unwrap()), DATE)
        .options(auto(None))
        .plan(&cluster(2))
        .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(
            e,
            PlanError::InvalidOption {
                option: "batch",
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("PodDisruptionBudgets") && text.contains("--evidence"),
        "{text}"
    );
}

#[test]
fn auto_is_no_zone_cap() {
    let w = Workloads::default();
    let e = PlanRequest::new(Target::Minor("1.30".parse().unwrap()), DATE)
        .options(auto(Some(BatchSize::Auto)))
        .workloads(&w)
        .plan(&cluster(2))
        .unwrap_err();
    assert!(
        matches!(
            e,
            PlanError::InvalidOption {
                option: "maxPerZone",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn one_unevictable_pod_per_node_is_a_named_deadlock() {
    let fx: Fixture = (
        3,
        vec![(0, true)],
        (0..3).map(|n| (n, vec![0], true)).collect(),
    );
    let w = workloads(&fx);
    let e = PlanRequest::new(Target::Minor("1.30".parse().unwrap()), DATE)
        .options(auto(None))
        .workloads(&w)
        .plan(&cluster(3))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "drain deadlock: PodDisruptionBudget shop/pdb-0 (maxUnavailable: 0) can never allow a \
         disruption, and the plan must evict its pods shop/pod-0, shop/pod-1, shop/pod-2 on nodes \
         w-00, w-01, w-02; no order of the batches avoids it (scale the workload up, relax the \
         budget, or move the pods off first)"
    );
}

#[test]
fn zone_caps_hold_under_auto() {
    let w = Workloads::default();
    let plan = PlanRequest::new(Target::Minor("1.30".parse().unwrap()), DATE)
        .options(auto(Some(BatchSize::Count(1))))
        .workloads(&w)
        .plan(&cluster(6))
        .expect("a plan");
    let drains: Vec<usize> = plan
        .steps
        .iter()
        .filter(|s| {
            matches!(s.action, Action::Drain { .. }) && s.nodes.iter().all(|n| n.as_str() != "cp-1")
        })
        .map(|s| s.nodes.len())
        .collect();
    // Three zones, one node of each per batch.
    assert_eq!(drains, [3, 3]);
}
