//! Named transient exceptions (`acceptTransient`): an HA cluster below 1.28 plans only with
//! the option, the window is the one kubeadm forces and no wider, it is shown in every format,
//! and every state of the plan breaks no rule but the accepted one, only inside its windows.
use jiff::civil::{Date, date};
use kupgrade_core::plan::{
    Action, PlanError, PlanOptions, PlanRequest, Simulation, Target, UpgradePlan, render,
};
use kupgrade_core::skew::{SkewPolicy, UpstreamPolicy};
use kupgrade_core::{ClusterState, Minor, inventory, testing};
use proptest::prelude::*;

const DATE: Date = date(2026, 11, 25);
const RULE: &str = "upstream/kube-proxy";

/// The cluster: five control-plane nodes at v1.26.15, three workers at v1.24.17.
fn old_ha() -> ClusterState {
    inventory::parse(include_str!("data/old-ha.yaml"), "old-ha.yaml").unwrap()
}

fn accepting(rule: &str) -> PlanOptions {
    PlanOptions {
        accept_transient: Some(rule.into()),
        ..PlanOptions::default()
    }
}

fn plan(state: &ClusterState, options: PlanOptions) -> Result<UpgradePlan, PlanError> {
    PlanRequest::new(Target::Stable, DATE)
        .options(options)
        .plan(state)
}

/// Replays `plan` from `start` with a full policy check after every step: every violation
/// must be of the accepted rule and lie inside one of the plan's windows (from its first step
/// to its last, both included), and the plan ends clean.
fn replay(start: &ClusterState, plan: &UpgradePlan, policy: &dyn SkewPolicy) -> Result<(), String> {
    let index = |id: &str| plan.steps.iter().position(|s| s.id.as_str() == id);
    let mut windows = Vec::new();
    for w in &plan.transient {
        let (Some(from), Some(to)) = (index(w.from.as_str()), index(w.to.as_str())) else {
            return Err(format!("window {w:?} names steps the plan does not have"));
        };
        windows.push((from, to, w.rule.as_str()));
    }
    let mut sim = Simulation::new(start.clone());
    for (i, step) in plan.steps.iter().enumerate() {
        sim.apply(step).map_err(|e| e.to_string())?;
        for v in policy.errors(sim.state()) {
            let inside = windows
                .iter()
                .any(|&(from, to, rule)| (from..=to).contains(&i) && rule == v.rule);
            if !inside {
                return Err(format!(
                    "after step {} (outside any window for it): {} {}",
                    step.id,
                    v.rule,
                    v.message()
                ));
            }
        }
    }
    Ok(())
}

/// The window's steps after its first are the other control-plane nodes' `kubeadm upgrade
/// node`, nothing else, and its first is a `kubeadm upgrade apply` moving kube-proxy.
fn minimal(plan: &UpgradePlan) -> Result<(), String> {
    for w in &plan.transient {
        let from = plan.steps.iter().position(|s| s.id == w.from).unwrap();
        let to = plan.steps.iter().position(|s| s.id == w.to).unwrap();
        match &plan.steps[from].action {
            Action::KubeadmUpgradeApply { addons, .. } if addons.kube_proxy.is_some() => {}
            a => return Err(format!("window opens at {a:?}")),
        }
        for s in &plan.steps[from + 1..=to] {
            if !matches!(
                s.action,
                Action::KubeadmUpgradeNode {
                    control_plane: Some(_),
                    ..
                }
            ) {
                return Err(format!("step {} inside the window {}", s.id, w.from));
            }
        }
    }
    Ok(())
}

#[test]
fn without_the_option_the_refusal_stays_and_its_hint_names_the_option() {
    let e = plan(&old_ha(), PlanOptions::default()).unwrap_err();
    let text = e.to_string();
    assert_eq!(e.rule(), Some(RULE), "{text}");
    assert!(
        text.contains("step v1.27.16/cp-1/kubeadm-upgrade-apply"),
        "{text}"
    );
    assert!(
        text.contains("--accept-transient upstream/kube-proxy"),
        "{text}"
    );
}

#[test]
fn another_rule_accepted_does_not_open_a_window() {
    let e = plan(&old_ha(), accepting("upstream/kubelet")).unwrap_err();
    assert_eq!(e.rule(), Some(RULE), "{e}");
}

#[test]
fn with_the_option_the_window_is_the_one_kubeadm_forces() {
    let state = old_ha();
    let plan = plan(&state, accepting(RULE)).unwrap();
    assert_eq!(plan.transient.len(), 1, "{:?}", plan.transient);
    let w = &plan.transient[0];
    assert_eq!(w.rule, RULE);
    assert_eq!(w.from.as_str(), "v1.27.16/cp-1/kubeadm-upgrade-apply");
    assert_eq!(w.to.as_str(), "v1.27.16/cp-5/kubeadm-upgrade-node");
    let nodes: Vec<&str> = w.nodes.iter().map(|n| n.as_str()).collect();
    assert_eq!(nodes, ["cp-1", "cp-2", "cp-3", "cp-4", "cp-5"]);
    minimal(&plan).unwrap();
    replay(&state, &plan, &UpstreamPolicy::new()).unwrap();
    // The accepted rule does break inside the window (the replay's check can fail).
    let mut sim = Simulation::new(state.clone());
    let from = plan.steps.iter().position(|s| s.id == w.from).unwrap();
    for s in &plan.steps[..=from] {
        sim.apply(s).unwrap();
    }
    let errors = UpstreamPolicy::new().errors(sim.state());
    assert!(errors.iter().any(|v| v.rule == RULE), "{errors:?}");
    assert!(errors.iter().all(|v| v.rule == RULE), "{errors:?}");
}

#[test]
fn the_window_is_shown_in_every_format() {
    let plan = plan(&old_ha(), accepting(RULE)).unwrap();
    let from = "v1.27.16/cp-1/kubeadm-upgrade-apply";
    let to = "v1.27.16/cp-5/kubeadm-upgrade-node";
    let text = render::text(&plan);
    assert!(text.contains("Transient windows"), "{text}");
    assert!(
        text.contains(&format!("from step {from} to step {to}")),
        "{text}"
    );
    let md = render::markdown(&plan);
    assert!(md.contains("## Transient windows"), "{md}");
    assert!(md.contains(from) && md.contains(to), "{md}");
    let json = render::to_json(&plan);
    assert!(json.contains("\"transient\""), "{json}");
    assert!(json.contains(from) && json.contains(to));
    let mermaid = render::mermaid(&plan);
    assert!(mermaid.contains("%% transient window: rule upstream/kube-proxy"));
    assert!(mermaid.contains("active, "), "{mermaid}");
    // The plan reads back with its window.
    let back: UpgradePlan = serde_json::from_str(&json).unwrap();
    assert_eq!(back.transient, plan.transient);
}

#[test]
fn plans_without_the_option_list_no_window() {
    let ha = inventory::parse(
        include_str!("../../../examples/clusters/ha.yaml"),
        "ha.yaml",
    )
    .unwrap();
    let plan = plan(&ha, PlanOptions::default()).unwrap();
    assert!(plan.transient.is_empty());
    assert!(!render::to_json(&plan).contains("transient"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Random HA clusters below 1.28, planned with the rule accepted: every state of the
    /// plan breaks no rule but the accepted one, only inside the windows the plan lists, and
    /// each window holds nothing but the control-plane nodes' own upgrades.
    #[test]
    fn only_the_accepted_rule_breaks_and_only_inside_the_windows(
        state in testing::cluster_state_satisfying(UpstreamPolicy::new(), 2..=10),
        offset in 1u64..=3,
    ) {
        let cp = state.apiserver_max().unwrap().minor();
        prop_assume!(state.control_plane().count() >= 2 && cp.minor() < 28);
        let target = Target::Minor(Minor::new(1, cp.minor() + offset));
        let req = PlanRequest::new(target, DATE).options(PlanOptions {
            allow_unsupported_target: true,
            ..accepting(RULE)
        });
        match req.plan(&state) {
            Ok(plan) => {
                if let Err(e) = replay(&state, &plan, &UpstreamPolicy::new()).and_then(|()| minimal(&plan)) {
                    return Err(TestCaseError::fail(format!("{e}\n{}", render::text(&plan))));
                }
            }
            // Whatever else blocks is named, and is never the accepted rule.
            Err(e @ PlanError::Blocked { .. }) => prop_assert!(e.rule().is_some_and(|r| r != RULE), "{e}"),
            Err(e) => prop_assert!(matches!(e, PlanError::Target(_)), "unexpected error: {e:?}"),
        }
    }
}
