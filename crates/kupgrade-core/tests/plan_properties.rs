//! Properties of the planner over generated clusters, targets, policies, strategies and batch
//! sizes. Every plan is replayed step by step and re-checked with a full `evaluate` (not the
//! planner's incremental path), and kubeadm's verdict is taken before every `kubeadm upgrade
//! apply`.
use std::collections::{HashMap, HashSet};

use jiff::civil::{Date, date};
use kupgrade_core::kubeadm::{UpgradeRequest, enforce_version_policies};
use kupgrade_core::plan::{
    Action, BatchSize, PlanError, PlanOptions, PlanRequest, PreflightCheck, Simulation, Step,
    Strategy as Way, Target, TargetError, UpgradePlan, WorkerPacing, render,
};
use kupgrade_core::skew::rules::RulePolicy;
use kupgrade_core::skew::{AllOf, SkewPolicy, UpstreamPolicy};
use kupgrade_core::{ClusterState, KubeVersion, Minor, NodeName, ReleaseCalendar, testing};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

/// A date by which every minor the generators use has releases.
const DATE: Date = date(2026, 11, 25);

fn options() -> impl Strategy<Value = PlanOptions> {
    (
        prop_oneof![3 => Just(Way::InPlace), 1 => Just(Way::Replace)],
        prop_oneof![
            Just(None),
            Just(Some(WorkerPacing::EveryHop)),
            Just(Some(WorkerPacing::Deferred))
        ],
        prop_oneof![
            (1u32..=4).prop_map(BatchSize::Count),
            (10u8..=100).prop_map(BatchSize::Percent)
        ],
        proptest::option::weighted(0.3, Just(BatchSize::Count(1))),
        1u32..=3,
        any::<bool>(),
    )
        .prop_map(
            |(strategy, worker_pacing, batch, max_per_zone, max_surge, patch_first)| PlanOptions {
                strategy,
                worker_pacing,
                batch,
                max_per_zone,
                max_surge,
                patch_first,
                allow_unsupported_target: true,
                ..PlanOptions::default()
            },
        )
}

/// A target 0 to 3 minors above the control plane: its latest patch, or some known patch.
fn target_for(state: &ClusterState, offset: u64, pick: prop::sample::Index) -> Target {
    let cp = state
        .apiserver_max()
        .expect("generated clusters have API servers")
        .minor();
    let m = Minor::new(cp.major(), cp.minor() + offset);
    let patches: Vec<KubeVersion> = ReleaseCalendar::embedded()
        .minor(m)
        .map(|r| r.patches.iter().map(|p| p.version.clone()).collect())
        .unwrap_or_default();
    if patches.is_empty() || pick.index(4) == 0 {
        Target::Minor(m)
    } else {
        Target::Version(pick.get(&patches).clone())
    }
}

/// Errors a valid cluster may legitimately get, each naming what blocks. kubeadm's verdict is
/// not one of them: with stable targets, one minor per hop and kubeadm at each hop's version,
/// the planner moves kubelets out of kubeadm's way.
fn acceptable(e: &PlanError) -> bool {
    match e {
        PlanError::Blocked { .. } => e.rule().is_some() && e.node().is_some(),
        PlanError::Target(t) => matches!(
            **t,
            TargetError::Downgrade { .. } | TargetError::NoRelease { .. }
        ),
        _ => false,
    }
}

/// kubeadm's verdict on `step` if it is a `kubeadm upgrade apply`, taken on the state `sim`
/// is in just before it, with the kubeadm installed on the step's node: an error naming what
/// kubeadm would object to (mandatory, or only with `--force`).
fn kubeadm_objects(sim: &Simulation, step: &Step) -> Result<(), String> {
    let Action::KubeadmUpgradeApply { version, .. } = &step.action else {
        return Ok(());
    };
    let node = step
        .nodes
        .iter()
        .next()
        .and_then(|n| sim.node(n))
        .ok_or_else(|| format!("{}: no node to run kubeadm on", step.id))?;
    let kubeadm = node
        .versions
        .kubeadm
        .clone()
        .ok_or_else(|| format!("{}: {} has no kubeadm", step.id, node.name))?;
    let request = UpgradeRequest::for_cluster(sim.state(), kubeadm, version.clone())
        .ok_or_else(|| format!("{}: no API server", step.id))?;
    let findings = enforce_version_policies(&request);
    if findings.is_clear() {
        Ok(())
    } else {
        Err(format!(
            "{}: kubeadm {} would refuse it:\n{findings}",
            step.id, request.kubeadm
        ))
    }
}

/// Replays `plan` from `start` with a full policy check after every step and kubeadm's
/// verdict before every `kubeadm upgrade apply`, and checks the ordering rules. Returns the
/// final state.
fn replay(
    start: &ClusterState,
    plan: &UpgradePlan,
    policy: &dyn SkewPolicy,
) -> Result<ClusterState, String> {
    let mut sim = Simulation::new(start.clone());
    let mut drained: HashSet<NodeName> = HashSet::new();
    let minor_of = |s: &ClusterState| s.apiserver_max().map(KubeVersion::minor);
    let mut newest = minor_of(start);
    for step in &plan.steps {
        let before: HashMap<NodeName, (Option<Minor>, bool)> = step
            .nodes
            .iter()
            .filter_map(|n| {
                sim.node(n).map(|x| {
                    (
                        n.clone(),
                        (x.kubelet().map(KubeVersion::minor), x.unschedulable),
                    )
                })
            })
            .collect();
        if let Action::RemoveNodes = step.action {
            for n in &step.nodes {
                if !drained.contains(n) {
                    return Err(format!("{}: node {n} removed without a drain", step.id));
                }
            }
        }
        kubeadm_objects(&sim, step)?;
        sim.apply(step).map_err(|e| e.to_string())?;
        let errors = policy.errors(sim.state());
        if !errors.is_empty() {
            return Err(format!(
                "after step {}: {}",
                step.id,
                kupgrade_core::skew::report(&errors)
            ));
        }
        let now = minor_of(sim.state());
        if let (Some(a), Some(b)) = (newest, now)
            && a.skew_to(b) > 1
        {
            return Err(format!(
                "{}: the control plane moved from {a} to {b}",
                step.id
            ));
        }
        newest = now;
        match step.action {
            Action::Drain { .. } => drained.extend(step.nodes.iter().cloned()),
            Action::Uncordon | Action::RemoveNodes => {
                for n in &step.nodes {
                    drained.remove(n);
                }
            }
            _ => {}
        }
        for (name, (minor, cordoned)) in &before {
            let Some(node) = sim.node(name) else { continue };
            if node.kubelet().map(KubeVersion::minor) != *minor
                && !(*cordoned && drained.contains(name))
            {
                return Err(format!(
                    "{}: the kubelet of {name} changed minor without a drain",
                    step.id
                ));
            }
        }
    }
    let end = sim.into_state();
    for n in &end.nodes {
        let k = n.kubelet().map(KubeVersion::release);
        if k.as_ref()
            .is_none_or(|k| k < &plan.target || k.minor() != plan.target.minor())
        {
            return Err(format!(
                "node {} ends at kubelet {k:?}, not {}",
                n.name, plan.target
            ));
        }
        if n.unschedulable {
            return Err(format!("node {} ends cordoned", n.name));
        }
        if let Some(a) = &n.versions.kube_apiserver
            && a.release() != plan.target
        {
            return Err(format!("node {} ends with kube-apiserver {a}", n.name));
        }
    }
    if !drained.is_empty() {
        return Err(format!("drained and never uncordoned: {drained:?}"));
    }
    for h in &plan.hops {
        if h.from.minor().skew_to(h.to.minor()) > 1 {
            return Err(format!("hop {} -> {} skips a minor", h.from, h.to));
        }
    }
    Ok(end)
}

/// The steps of `plan` that change the cluster, replayed from `start`: (id, action, nodes).
fn changing(start: &ClusterState, steps: &[Step]) -> Vec<(String, Action, Vec<NodeName>)> {
    let mut sim = Simulation::new(start.clone());
    let mut out = Vec::new();
    for s in steps {
        let effect = sim.apply(s).expect("plans replay");
        if !effect.is_none() {
            out.push((
                s.id.to_string(),
                s.action.clone(),
                s.nodes.as_slice().to_vec(),
            ));
        }
    }
    out
}

fn strict() -> AllOf {
    RulePolicy::parse(
        "name: strict\nrules:\n  - { id: strict/kubelet-lag, kind: max-lag, component: kubelet, apiserver: newest, minors: 1 }\n",
        "strict.yaml",
    )
    .expect("the rule parses")
    .with_upstream()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// Every intermediate state is valid (full re-check), the final state is at the target,
    /// the control plane moves one minor at a time, kubelets change minor only on drained
    /// nodes that are uncordoned after, and the same input gives the same bytes.
    #[test]
    fn plans_are_valid_at_every_step(
        state in testing::cluster_state_satisfying(UpstreamPolicy::new(), 1..=12),
        offset in 0u64..=3,
        pick in any::<prop::sample::Index>(),
        options in options(),
    ) {
        let target = target_for(&state, offset, pick);
        let req = PlanRequest::new(target, DATE).options(options);
        match req.plan(&state) {
            Ok(plan) => {
                if let Err(e) = replay(&state, &plan, &UpstreamPolicy::new()) {
                    return Err(TestCaseError::fail(format!("{e}\n{}", render::text(&plan))));
                }
                let ids: HashSet<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
                prop_assert_eq!(ids.len(), plan.steps.len(), "step ids are unique");
                let again = req.plan(&state).expect("planning is deterministic");
                prop_assert_eq!(render::to_json(&plan), render::to_json(&again));
                prop_assert_eq!(render::text(&plan), render::text(&again));
            }
            Err(e) => prop_assert!(acceptable(&e), "unexpected error: {e:?}"),
        }
    }

    /// Re-planning from any intermediate state gives the rest of the plan: the same steps
    /// that change the cluster, with the same ids.
    #[test]
    fn replanning_gives_the_rest_of_the_plan(
        state in testing::cluster_state_satisfying(UpstreamPolicy::new(), 1..=10),
        offset in 1u64..=3,
        at in any::<prop::sample::Index>(),
        options in options(),
    ) {
        let cp = state.apiserver_max().unwrap().minor();
        let target = Target::Minor(Minor::new(1, cp.minor() + offset));
        let Ok(plan) = PlanRequest::new(target, DATE).options(options.clone()).plan(&state) else {
            return Ok(());
        };
        let k = at.index(plan.steps.len());
        let mut sim = Simulation::new(state.clone());
        for s in &plan.steps[..=k] {
            sim.apply(s).unwrap();
        }
        let middle = sim.into_state();
        let again = PlanRequest::new(Target::Version(plan.target.clone()), DATE)
            .options(options)
            .plan(&middle);
        let again = match again {
            Ok(p) => p,
            Err(e) => return Err(TestCaseError::fail(format!("re-planning after step {} failed: {e}", plan.steps[k].id))),
        };
        let rest = changing(&middle, &plan.steps[k + 1..]);
        let fresh = changing(&middle, &again.steps);
        if rest != fresh {
            eprintln!("DEBUG k={} {}\n---ORIG\n{}\n---AGAIN\n{}", k, plan.steps[k].id, render::text(&plan), render::text(&again));
        }
        prop_assert_eq!(rest, fresh, "after step {}", plan.steps[k].id);
    }

    /// The pre-flight's kubeadm check is true of the plan it describes: it names every
    /// `kubeadm upgrade apply`, in order, and kubeadm's verdict just before each one (every
    /// kubelet as the plan leaves it, the kubeadm on the node) has nothing mandatory and nothing
    /// that would need `--force`.
    #[test]
    fn kubeadm_accepts_every_upgrade_apply(
        state in testing::cluster_state_satisfying(UpstreamPolicy::new(), 1..=10),
        offset in 1u64..=3,
        options in options(),
    ) {
        let cp = state.apiserver_max().unwrap().minor();
        let target = Target::Minor(Minor::new(1, cp.minor() + offset));
        let plan = match PlanRequest::new(target, DATE).options(options).plan(&state) {
            Ok(plan) => plan,
            Err(e) => {
                prop_assert!(acceptable(&e), "unexpected error: {e:?}");
                return Ok(());
            }
        };
        let mut sim = Simulation::new(state.clone());
        let mut applied = Vec::new();
        for step in &plan.steps {
            if let Err(e) = kubeadm_objects(&sim, step) {
                return Err(TestCaseError::fail(format!("{e}\n{}", render::text(&plan))));
            }
            if let Action::KubeadmUpgradeApply { version, .. } = &step.action {
                applied.push(version.clone());
            }
            sim.apply(step).unwrap();
        }
        let claimed = plan.steps.iter().find_map(|s| match &s.action {
            Action::Preflight { checks } => checks.iter().find_map(|c| match c {
                PreflightCheck::KubeadmVerdict { versions } => Some(versions.clone()),
                _ => None,
            }),
            _ => None,
        });
        prop_assert_eq!(claimed.unwrap_or_default(), applied);
    }

    /// The generated strict policy is honoured at every step too.
    #[test]
    fn stricter_policies_are_honoured(
        state in testing::cluster_state_satisfying(strict(), 1..=8),
        offset in 1u64..=3,
        options in options(),
    ) {
        let cp = state.apiserver_max().unwrap().minor();
        let target = Target::Minor(Minor::new(1, cp.minor() + offset));
        let policy = strict();
        match PlanRequest::new(target, DATE).policy(&policy).options(options).plan(&state) {
            Ok(plan) => {
                if let Err(e) = replay(&state, &plan, &policy) {
                    return Err(TestCaseError::fail(format!("{e}\n{}", render::text(&plan))));
                }
            }
            Err(e) => prop_assert!(acceptable(&e), "unexpected error: {e:?}"),
        }
    }
}

/// With kubeadm 1.28 and later a healthy cluster always gets a plan under the upstream policy.
#[test]
fn modern_clusters_always_get_a_plan() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (
        testing::cluster_state_satisfying(UpstreamPolicy::new(), 1..=10),
        1u64..=3,
        options(),
    );
    for _ in 0..64 {
        let (state, offset, options) = strategy.new_tree(&mut runner).unwrap().current();
        let cp = state.apiserver_max().unwrap().minor();
        if cp.minor() < 28 {
            continue;
        }
        let target = Target::Minor(Minor::new(1, cp.minor() + offset));
        let plan = PlanRequest::new(target, DATE)
            .options(options)
            .plan(&state)
            .unwrap_or_else(|e| panic!("no plan for a healthy cluster: {e}"));
        replay(&state, &plan, &UpstreamPolicy::new()).unwrap();
    }
}
