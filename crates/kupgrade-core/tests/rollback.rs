//! Rollback runbooks of the HA sample (1.28 to 1.30, two hops) at positions before, at and
//! after each point of no return: snapshots of the text (review with `cargo insta review`),
//! and the facts each position must show whatever the wording.
use std::collections::BTreeSet;

use jiff::civil::date;
use kupgrade_core::inventory;
use kupgrade_core::plan::rollback::{RollbackKind, RollbackPlan, rollback};
use kupgrade_core::plan::{Action, Package, PlanRequest, UpgradePlan};

fn ha() -> UpgradePlan {
    let state = inventory::parse(
        include_str!("../../../examples/clusters/ha.yaml"),
        "ha.yaml",
    )
    .unwrap();
    PlanRequest::new("1.30".parse().unwrap(), date(2024, 6, 1))
        .plan(&state)
        .unwrap()
}

/// The rollback when the plan's first `upto` steps had started.
fn at(plan: &UpgradePlan, upto: usize) -> RollbackPlan {
    let started: BTreeSet<&str> = plan.steps[..upto].iter().map(|s| s.id.as_str()).collect();
    rollback(plan, Some("1717200000000-0a1b2c3d"), |step, _| {
        started.contains(step.as_str())
    })
}

/// The positions of the plan's points of no return.
fn points(plan: &UpgradePlan) -> Vec<usize> {
    plan.steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.point_of_no_return)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn nothing_started_is_nothing_to_undo() {
    let plan = ha();
    let r = at(&plan, 0);
    assert_eq!(r.kind, RollbackKind::NothingToUndo);
    assert!(r.steps.is_empty() && r.recovery.is_none());
}

#[test]
fn before_the_first_point_of_no_return_ordinary_steps_restore_every_package() {
    let plan = ha();
    let pnr = points(&plan)[0];
    let r = at(&plan, pnr);
    assert_eq!(r.kind, RollbackKind::Ordinary, "{}", r.text());
    // Every node whose kubeadm the started steps moved gets it back at its starting version.
    for step in &plan.steps[..pnr] {
        let Action::InstallPackages { packages, .. } = &step.action else {
            continue;
        };
        for node in &step.nodes {
            let start = plan.node(node.as_str()).unwrap().kubelet.clone().unwrap();
            let back = r.steps.iter().any(|s| {
                s.nodes.iter().any(|n| n == node)
                    && matches!(&s.action, Action::InstallPackages { packages: p, version }
                        if version == &start && packages.iter().all(|x| p.contains(x)))
            });
            assert!(
                back,
                "{node}: {packages:?} not restored to {start}:\n{}",
                r.text()
            );
        }
    }
    // The repository goes back before the packages, and every step is safe to repeat.
    let first_install = r
        .steps
        .iter()
        .position(|s| matches!(s.action, Action::InstallPackages { .. }))
        .unwrap();
    assert!(
        r.steps[..first_install]
            .iter()
            .all(|s| matches!(s.action, Action::SwitchRepository { .. }))
    );
    assert!(
        r.steps
            .iter()
            .all(|s| s.idempotent && !s.commands.is_empty())
    );
    assert!(r.steps.iter().all(|s| match &s.action {
        Action::InstallPackages { packages, .. } => packages.contains(&Package::Kubeadm),
        _ => true,
    }));
    insta::assert_snapshot!("ha-before-first-pnr", r.text());
}

#[test]
fn at_and_after_each_point_of_no_return_only_disaster_recovery_goes_back_past_it() {
    let plan = ha();
    let pnrs = points(&plan);
    assert_eq!(pnrs.len(), 2, "one apply per hop");
    for (k, &pnr) in pnrs.iter().enumerate() {
        // At it (the apply started), and after it: the whole hop, or the whole plan.
        let next = pnrs.get(k + 1).copied();
        for (name, upto) in [("at", pnr + 1), ("after", next.unwrap_or(plan.steps.len()))] {
            let r = at(&plan, upto);
            let rec = r.recovery.as_ref().unwrap();
            assert_eq!(rec.hop, k);
            assert_eq!(rec.back_to, plan.hops[k].from);
            if name == "after" && next.is_some() {
                // The next hop's packages have moved, its apply has not run: those undo
                // with ordinary steps, and this hop's recovery is the way further back.
                assert_eq!(r.kind, RollbackKind::Ordinary, "{}", r.text());
                assert!(r.steps.iter().all(|s| s.nodes.iter().all(|n| {
                    plan.steps[pnrs[k]..next.unwrap()]
                        .iter()
                        .any(|p| p.hop == Some(k + 1) && p.nodes.iter().any(|m| m == n))
                })));
                assert!(r.text().contains("Further back"));
            } else {
                assert_eq!(r.kind, RollbackKind::DisasterRecovery, "{name} {k}");
                assert!(r.steps.is_empty(), "nothing executable past the apply");
            }
            // The snapshot named is the one taken before this hop's apply, with the run's id.
            let snap = rec.snapshot.as_deref().unwrap();
            assert!(snap.contains("1717200000000-0a1b2c3d"), "{snap}");
            let taken = plan.steps[..pnr]
                .iter()
                .rev()
                .find_map(|s| match &s.action {
                    Action::EtcdSnapshot { path } => {
                        Some(path.replace("{run}", "1717200000000-0a1b2c3d"))
                    }
                    _ => None,
                })
                .unwrap();
            assert_eq!(snap, taken);
            assert!(r.text().contains(snap));
            assert_eq!(rec.earlier.len(), k, "earlier hops' snapshots are listed");
            insta::assert_snapshot!(format!("ha-{name}-pnr-{}", k + 1), r.text());
        }
    }
}

#[test]
fn the_runbook_reads_back_from_json_and_yaml() {
    let plan = ha();
    for upto in [0, points(&plan)[0], plan.steps.len()] {
        let r = at(&plan, upto);
        let json: RollbackPlan = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json, r);
        let yaml: RollbackPlan = serde_yaml_ng::from_str(&r.to_yaml()).unwrap();
        assert_eq!(yaml, r);
        assert!(r.markdown().starts_with("# Rollback of "));
    }
}
