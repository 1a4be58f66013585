//! A run through a plan's transient window: the live checks accept the window's rule inside
//! it and nothing else, entering and leaving are journaled, and a resume inside it goes on.
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::date;

use super::*;
use crate::plan::{PlanOptions, PlanRequest, Simulation, Target};
use crate::skew::UpstreamPolicy;
use crate::testing::succeeded;

const RULE: &str = "upstream/kube-proxy";

/// Five control-plane nodes at v1.26.15, three workers at v1.24.17.
fn old_ha() -> ClusterState {
    crate::inventory::parse(include_str!("../../tests/data/old-ha.yaml"), "old-ha.yaml").unwrap()
}

/// The plan to v1.28 with the rule accepted: one window.
fn plan() -> Arc<UpgradePlan> {
    let plan = PlanRequest::new(Target::Minor("1.28".parse().unwrap()), date(2026, 11, 25))
        .options(PlanOptions {
            accept_transient: Some(RULE.into()),
            allow_unsupported_target: true,
            ..PlanOptions::default()
        })
        .plan(&old_ha())
        .unwrap();
    assert_eq!(plan.transient.len(), 1);
    Arc::new(plan)
}

fn t0() -> Timestamp {
    "2026-11-25T10:00:00Z".parse().unwrap()
}

/// Drives `run` on `model` (one task at a time), journaling through serde; the state it
/// reads is changed by `meddle` (given the number of tasks carried out so far). Stops once
/// the run has finished, or after `stop_after` tasks.
fn drive(
    run: &mut Run,
    model: &mut Simulation,
    journal: &mut Vec<Record>,
    stop_after: Option<usize>,
    meddle: impl Fn(usize, &mut ClusterState),
) {
    let plan = run.plan().clone();
    let mut count = 0;
    let keep = |out: Output, journal: &mut Vec<Record>| {
        for r in out.records {
            let line = serde_json::to_string(&r).unwrap();
            journal.push(serde_json::from_str(&line).unwrap());
        }
        out.tasks
    };
    let mut reads = 0;
    while !run.is_finished() {
        reads += 1;
        assert!(reads < 10_000, "stuck: {run:?}");
        let mut state = model.state().clone();
        meddle(count, &mut state);
        let out = run.next(&state, t0());
        for t in keep(out, journal) {
            if stop_after == Some(count) {
                return;
            }
            count += 1;
            model
                .apply(&plan.steps[t.step_index].on_node(t.id.node.as_ref()))
                .unwrap();
            let out = run.record(succeeded(t), t0()).unwrap();
            keep(out, journal);
        }
    }
}

fn new_run(plan: &Arc<UpgradePlan>, records: &[Record]) -> Run {
    Run::resume(
        plan.clone(),
        Arc::new(UpstreamPolicy::new()),
        RunOptions::default(),
        records,
    )
    .unwrap()
}

/// A new run of `plan` on the old HA cluster: the run, the cluster's model, an empty journal.
fn start(plan: &Arc<UpgradePlan>) -> (Run, Simulation, Vec<Record>) {
    (new_run(plan, &[]), Simulation::new(old_ha()), Vec::new())
}

fn assert_completed(run: &Run) {
    assert_eq!(
        run.finished(),
        Some(&Finished::Completed),
        "{:?}",
        run.finished()
    );
}

/// Where in `journal` a record matching `what` is.
fn at(journal: &[Record], what: impl Fn(&RecordKind) -> bool) -> Vec<usize> {
    journal
        .iter()
        .enumerate()
        .filter(|(_, r)| what(&r.kind))
        .map(|(i, _)| i)
        .collect()
}

/// The index of the step called `id`.
fn index(plan: &UpgradePlan, id: &crate::plan::StepId) -> usize {
    plan.steps.iter().position(|s| s.id == *id).unwrap()
}

#[test]
fn a_run_through_a_window_completes_and_journals_it() {
    let plan = plan();
    let w = &plan.transient[0];
    let (mut run, mut model, mut journal) = start(&plan);
    drive(&mut run, &mut model, &mut journal, None, |_, _| {});
    assert_completed(&run);
    let entered = at(
        &journal,
        |k| matches!(k, RecordKind::TransientEntered { from, to, rule } if *from == w.from && *to == w.to && rule == RULE),
    );
    let left = at(
        &journal,
        |k| matches!(k, RecordKind::TransientLeft { from, to, rule } if *from == w.from && *to == w.to && rule == RULE),
    );
    assert_eq!((entered.len(), left.len()), (1, 1), "{journal:#?}");
    let started = at(
        &journal,
        |k| matches!(k, RecordKind::TaskStarted { task, .. } if task.step == w.from),
    );
    let finished = at(
        &journal,
        |k| matches!(k, RecordKind::TaskFinished { task, .. } if task.step == w.to),
    );
    assert!(
        started[0] < entered[0] && entered[0] < left[0],
        "{journal:#?}"
    );
    assert!(finished[0] < left[0], "{journal:#?}");
    assert!(journal[entered[0]].v == 3 && journal[left[0]].v == 3);
}

#[test]
fn a_run_resumed_inside_the_window_goes_on_and_leaves_it_once() {
    let plan = plan();
    let from = index(&plan, &plan.transient[0].from);
    // Stop right after the window's first step (one task per step here).
    let (mut run, mut model, mut journal) = start(&plan);
    drive(
        &mut run,
        &mut model,
        &mut journal,
        Some(from + 1),
        |_, _| {},
    );
    assert!(!run.is_finished());
    drop(run);
    let mut run = new_run(&plan, &journal);
    drive(&mut run, &mut model, &mut journal, None, |_, _| {});
    assert_completed(&run);
    let entered = at(&journal, |k| {
        matches!(k, RecordKind::TransientEntered { .. })
    });
    let left = at(&journal, |k| matches!(k, RecordKind::TransientLeft { .. }));
    assert_eq!((entered.len(), left.len()), (1, 1), "{journal:#?}");
}

/// The run halts on `meddle` applied once `after` tasks ran; the report.
fn halted_when(after: usize, meddle: impl Fn(&mut ClusterState)) -> StopReport {
    let plan = plan();
    let (mut run, mut model, mut journal) = start(&plan);
    drive(&mut run, &mut model, &mut journal, None, |n, s| {
        if n > after {
            meddle(s)
        }
    });
    run.finished().unwrap().report().expect("halted").clone()
}

#[test]
fn the_accepted_rule_breaking_before_the_window_stops_the_run() {
    let plan = plan();
    let from = index(&plan, &plan.transient[0].from);
    // kube-proxy moved by hand two steps before kubeadm would.
    let report = halted_when(from.saturating_sub(3), |s| {
        s.addons.kube_proxy = Some("v1.27.16".parse().unwrap());
    });
    assert_eq!(report.reason, StopReason::PolicyViolated, "{report}");
    assert!(report.to_string().contains(RULE), "{report}");
}

#[test]
fn inside_the_window_every_other_rule_still_stops_the_run() {
    let plan = plan();
    let from = index(&plan, &plan.transient[0].from);
    let report = halted_when(from + 1, |s| {
        s.node_mut("w-1").unwrap().versions.kubelet = Some("v1.28.15".parse().unwrap());
    });
    assert_eq!(report.reason, StopReason::PolicyViolated, "{report}");
    let text = report.to_string();
    assert!(text.contains("w-1") && !text.contains(RULE), "{text}");
}
