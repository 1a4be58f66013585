//! The estimate is the plan's makespan, and the plan wastes little of it: control-plane
//! kubelets run beside the worker batches that follow them.
use jiff::civil::date;
use kupgrade_core::plan::{
    BatchSize, Phase, PlanOptions, PlanRequest, Simulation, Timeline, UpgradePlan,
};
use kupgrade_core::skew::{SkewPolicy, UpstreamPolicy};
use kupgrade_core::{ClusterState, KubeVersion, Node};

/// `cp` control-plane nodes and `workers` workers at v1.29.10, stacked etcd.
fn cluster(cp: usize, workers: usize) -> ClusterState {
    let v: KubeVersion = "v1.29.10".parse().unwrap();
    let mut nodes = Vec::new();
    for i in 1..=cp {
        nodes.push(
            Node::control_plane(
                &format!("cp-{i}"),
                v.clone(),
                Some("3.5.10-0".parse().unwrap()),
            )
            .unwrap(),
        );
    }
    for i in 1..=workers {
        nodes.push(Node::worker(&format!("w-{i:04}"), v.clone()).unwrap());
    }
    let mut state = ClusterState::new(nodes);
    state.addons.kube_proxy = Some(v);
    state.addons.coredns = Some("v1.11.1".parse().unwrap());
    state
}

fn plan(state: &ClusterState, batch: BatchSize) -> UpgradePlan {
    PlanRequest::new("1.30".parse().unwrap(), date(2025, 3, 1))
        .options(PlanOptions {
            batch,
            ..PlanOptions::default()
        })
        .plan(state)
        .unwrap()
}

#[test]
fn three_control_plane_nodes_and_a_thousand_workers_come_within_five_percent_of_the_bound() {
    let state = cluster(3, 1000);
    let p = plan(&state, BatchSize::Percent(10));
    assert_eq!(p.hops.len(), 1);
    let e = &p.estimate;
    eprintln!(
        "makespan {} s, lower bound {} s, ratio {}, sum of durations {} s, {} in flight at most, {} unavailable at most",
        e.total_seconds,
        e.lower_bound_seconds,
        e.ratio(),
        p.steps.iter().map(|s| s.duration_seconds).sum::<u64>(),
        p.max_parallel,
        e.max_unavailable
    );
    // The numbers: the makespan over the lower bound, as computed from the steps.
    let timeline = Timeline::of(&p.steps, p.max_parallel, 0);
    assert_eq!(timeline.makespan, e.total_seconds);
    assert_eq!(Timeline::lower_bound(&p.steps), e.lower_bound_seconds);
    assert!(
        e.total_seconds * 100 <= e.lower_bound_seconds * 105,
        "makespan {} s over lower bound {} s",
        e.total_seconds,
        e.lower_bound_seconds
    );
    assert!(e.bound_ratio_percent <= 105);
    // The control-plane kubelets run while the first worker batch does: the first worker
    // step starts before the last control-plane kubelet step ends.
    let kubelets_end = (0..p.steps.len())
        .filter(|&i| p.steps[i].phase == Phase::ControlPlaneKubelets)
        .map(|i| timeline.ends[i])
        .max()
        .unwrap();
    let workers_start = (0..p.steps.len())
        .filter(|&i| p.steps[i].phase == Phase::Workers)
        .map(|i| timeline.starts[i])
        .min()
        .unwrap();
    assert!(
        workers_start < kubelets_end,
        "{workers_start} >= {kubelets_end}"
    );
    // One control-plane node beside a batch of 100 workers, and no more, unavailable; the
    // workers' downloads (pre-staging) run a batch at a time on a lane of their own, while
    // the control plane moves (three nodes), before any worker is cordoned.
    assert_eq!(e.max_unavailable, 101);
    assert_eq!(p.max_parallel, 103);
    // Every step after the first names what it waits for.
    assert!(p.steps.iter().skip(1).all(|s| !s.depends_on.is_empty()));
}

/// Replays `plan`'s steps in the order the estimate schedules them (by start, plan order
/// among equals), checking the whole cluster after each: the interleaving the run may take
/// passes the policy at every state.
fn replay_as_scheduled(state: &ClusterState, plan: &UpgradePlan, policy: &dyn SkewPolicy) {
    let timeline = Timeline::of(&plan.steps, plan.max_parallel, 0);
    let mut order: Vec<usize> = (0..plan.steps.len()).collect();
    order.sort_by_key(|&i| (timeline.starts[i], i));
    let mut sim = Simulation::new(state.clone());
    for i in order {
        let s = &plan.steps[i];
        sim.apply(s).unwrap();
        let errors = policy.errors(sim.state());
        assert!(errors.is_empty(), "after {}: {errors:?}", s.id);
    }
    for n in &sim.state().nodes {
        assert_eq!(n.kubelet(), Some(&plan.target), "{}", n.name);
    }
}

#[test]
fn every_state_of_the_scheduled_interleaving_passes_the_policy() {
    let policy = UpstreamPolicy::new();
    for (cp, workers, batch) in [
        (3, 1000, BatchSize::Percent(10)),
        (3, 7, BatchSize::Count(2)),
        (5, 20, BatchSize::Count(1)),
        (1, 4, BatchSize::Count(1)),
    ] {
        let state = cluster(cp, workers);
        let p = plan(&state, batch);
        replay_as_scheduled(&state, &p, &policy);
        assert!(p.estimate.lower_bound_seconds <= p.estimate.total_seconds);
    }
}
