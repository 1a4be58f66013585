use super::*;
use crate::plan::step::{NodeList, StepId};

/// A step called `id` doing `action` on `nodes` for `seconds`, after `deps` (none: the step
/// before).
fn step(
    id: &str,
    action: Action,
    phase: Phase,
    nodes: &[&str],
    seconds: u64,
    deps: &[&str],
) -> Step {
    Step {
        id: StepId(id.to_string()),
        hop: None,
        phase,
        nodes: NodeList::new(nodes.iter().map(|n| n.parse().unwrap()).collect()),
        action,
        commands: Vec::new(),
        depends_on: deps.iter().map(|d| StepId(d.to_string())).collect(),
        idempotent: true,
        point_of_no_return: false,
        pre: Vec::new(),
        post: Vec::new(),
        duration_seconds: seconds,
        reason: String::new(),
    }
}

fn work() -> Action {
    Action::SwitchRepository {
        minor: "1.30".parse().unwrap(),
    }
}

fn check() -> Action {
    Action::Preflight { checks: Vec::new() }
}

#[test]
fn a_chain_takes_the_sum_of_its_steps_and_checks_take_no_time() {
    let steps = vec![
        step("a", check(), Phase::Preflight, &[], 60, &[]),
        step("b", work(), Phase::ControlPlane, &["n1", "n2"], 20, &[]),
        step("c", work(), Phase::ControlPlane, &["n1"], 30, &[]),
    ];
    let t = Timeline::of(&steps, 2, 0);
    assert_eq!(t.starts, vec![0, 0, 20]);
    assert_eq!(t.ends, vec![0, 20, 50]);
    assert_eq!(t.makespan, 50);
    assert_eq!(t.max_in_flight, 2);
}

#[test]
fn steps_that_do_not_wait_for_each_other_run_side_by_side() {
    let steps = vec![
        step("a", work(), Phase::ControlPlane, &["cp"], 10, &[]),
        step(
            "b",
            work(),
            Phase::ControlPlaneKubelets,
            &["cp"],
            100,
            &["a"],
        ),
        step("c", work(), Phase::Workers, &["w1", "w2"], 40, &["a"]),
        step("d", work(), Phase::Workers, &["w1", "w2"], 40, &["c"]),
        step("e", work(), Phase::ControlPlane, &["cp"], 5, &["b", "d"]),
    ];
    let t = Timeline::of(&steps, usize::MAX, 0);
    assert_eq!(t.starts, vec![0, 10, 10, 50, 110]);
    assert_eq!(t.makespan, 115);
    assert_eq!(t.max_in_flight, 3);
    // With room for two tasks, the kubelet step (first in plan order) takes one place and
    // the workers share the other, one after the other.
    let t = Timeline::of(&steps, 2, 0);
    assert_eq!(t.starts[2], 10);
    assert_eq!(t.ends[2], 90);
    assert_eq!(t.makespan, 110 + 5 + 40);
}

#[test]
fn the_limit_splits_a_step_into_waves() {
    let steps = vec![step(
        "a",
        work(),
        Phase::Workers,
        &["w1", "w2", "w3"],
        30,
        &[],
    )];
    assert_eq!(Timeline::of(&steps, 2, 0).makespan, 60);
    assert_eq!(Timeline::of(&steps, 3, 0).makespan, 30);
    assert_eq!(
        Timeline::of(&steps, 0, 0).makespan,
        90,
        "at least one task runs"
    );
}

#[test]
fn a_busy_node_is_skipped_and_its_task_starts_when_it_is_free() {
    // b and c both wait only for a; c's first node runs b's task: it waits, its second
    // node starts at once.
    let steps = vec![
        step("a", work(), Phase::ControlPlane, &[], 1, &[]),
        step("b", work(), Phase::Workers, &["w1"], 50, &["a"]),
        step("c", work(), Phase::Workers, &["w1", "w2"], 20, &["a"]),
    ];
    let t = Timeline::of(&steps, usize::MAX, 0);
    assert_eq!(t.starts, vec![0, 1, 1]);
    assert_eq!(t.ends, vec![1, 51, 71]);
    assert_eq!(t.max_in_flight, 2);
}

#[test]
fn unavailable_nodes_are_counted_from_cordon_to_uncordon() {
    let steps = vec![
        step("a", work(), Phase::ControlPlane, &[], 1, &[]),
        step(
            "b1",
            Action::Cordon,
            Phase::ControlPlaneKubelets,
            &["cp"],
            5,
            &["a"],
        ),
        step(
            "b2",
            Action::Uncordon,
            Phase::ControlPlaneKubelets,
            &["cp"],
            5,
            &[],
        ),
        step(
            "c1",
            Action::Cordon,
            Phase::Workers,
            &["w1", "w2"],
            5,
            &["a"],
        ),
        step(
            "c2",
            Action::Uncordon,
            Phase::Workers,
            &["w1", "w2"],
            5,
            &[],
        ),
        step("d1", Action::Cordon, Phase::Workers, &["w3"], 5, &["c2"]),
        step("d2", Action::Uncordon, Phase::Workers, &["w3"], 5, &[]),
    ];
    let t = Timeline::of(&steps, usize::MAX, 1);
    assert_eq!(t.max_unavailable, 1 + 1 + 2);
    let chained: Vec<Step> = steps
        .into_iter()
        .map(|mut s| {
            s.depends_on.clear();
            s
        })
        .collect();
    assert_eq!(Timeline::of(&chained, usize::MAX, 0).max_unavailable, 2);
}

#[test]
fn the_lower_bound_is_the_control_plane_plus_the_longer_of_kubelets_and_spread_workers() {
    let steps = vec![
        step("p", check(), Phase::Preflight, &[], 60, &[]),
        step("a", work(), Phase::ControlPlane, &["cp"], 100, &[]),
        step("k", work(), Phase::ControlPlaneKubelets, &["cp"], 30, &[]),
        step("w1", work(), Phase::Workers, &["w1", "w2"], 50, &[]),
        step("w2", work(), Phase::Workers, &["w3"], 50, &[]),
    ];
    // Workers: 150 node-seconds over a batch of 2.
    assert_eq!(Timeline::lower_bound(&steps), 100 + 75);
    // As a chain, the plan takes 100 + 30 + 50 + 50.
    assert_eq!(Timeline::of(&steps, 2, 0).makespan, 230);
}

/// A task whose postconditions the cluster shows is done at its first check: at once when no
/// other task of its step is in flight as it ends, one check interval of its step later
/// otherwise (a cordon's settle window is 30 s: 2.5 s), or as the last of them ends, as the
/// run verifies (`run/verify.rs`); its node and its place in flight are free meanwhile.
#[test]
fn a_checked_step_ends_at_its_first_check() {
    let cordon = |id: &str, nodes: &[&str], deps: &[&str]| {
        let mut s = step(id, Action::Cordon, Phase::Workers, nodes, 5, deps);
        s.post = vec![crate::plan::step::Fact::Cordoned];
        s
    };
    // Alone: the check is at once.
    let alone = vec![cordon("a", &["w1"], &[]), cordon("b", &["w1"], &[])];
    let t = Timeline::of(&alone, usize::MAX, 0);
    assert_eq!((t.ends.clone(), t.makespan), (vec![5, 10], 10));
    // Beside a long step on another node (pre-staging beside a window): still at once.
    let beside = vec![
        step("p", check(), Phase::Preflight, &[], 0, &[]),
        cordon("a", &["w1"], &["p"]),
        step("c", work(), Phase::Workers, &["w2"], 100, &["p"]),
        cordon("b", &["w1"], &["a"]),
    ];
    let t = Timeline::of(&beside, usize::MAX, 0);
    assert_eq!((t.ends[1], t.starts[3], t.ends[3]), (5, 5, 10));
    assert_eq!(t.makespan, 100);
    // Its own step's tasks in flight hold it back: w2 is busy until 3, so the cordon of w1
    // runs 0-5 and that of w2 3-8; w1's check waits 2.5 s (until 7.5), w2's is at once (8).
    let own = vec![
        step("p", check(), Phase::Preflight, &[], 0, &[]),
        step("x", work(), Phase::Workers, &["w2"], 3, &["p"]),
        cordon("a", &["w1", "w2"], &["p"]),
        cordon("b", &["w1"], &["a"]),
    ];
    let t = Timeline::of(&own, usize::MAX, 0);
    assert_eq!((t.starts[2], t.ends[2], t.starts[3]), (0, 8, 8));
    // One interval is the longest a check waits: with w2's cordon ending at 13 (w2 busy
    // until 8), w1's task is checked at 7.5 and the step still ends with w2's, at 13.
    let mut long = own.clone();
    long[1].duration_seconds = 8;
    let t = Timeline::of(&long, usize::MAX, 0);
    assert_eq!(t.ends[2], 13);
}
