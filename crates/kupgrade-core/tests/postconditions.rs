//! The run holds the cluster to the plan: a task is done only once the cluster shows its
//! postconditions, and the control-plane kubelets wait for every API server (the mid-upgrade
//! sample, where `kubeadm upgrade node` on cp-2 once "succeeded" without moving anything and
//! cp-1's kubelet then ran ahead of two API servers).
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::date;
use kupgrade_core::plan::{Action, Fact, Phase, PlanRequest, Simulation, UpgradePlan};
use kupgrade_core::run::{
    Difference, Finished, Record, RecordKind, Run, RunOptions, StopReason, TaskEnd, TaskId,
};
use kupgrade_core::testing::{succeeded, upstream_run};
use kupgrade_core::{ClusterState, KubeVersion};

const MID: &str = include_str!("../../../examples/clusters/mid-upgrade.yaml");

fn mid() -> ClusterState {
    kupgrade_core::inventory::parse(MID, "mid-upgrade.yaml").unwrap()
}

fn plan() -> Arc<UpgradePlan> {
    Arc::new(
        PlanRequest::new("1.29".parse().unwrap(), date(2024, 6, 1))
            .plan(&mid())
            .unwrap(),
    )
}

fn v(s: &str) -> KubeVersion {
    s.parse().unwrap()
}

/// Drives `run` on `model` until it finishes; the tasks `lies` says exit 0 without effect.
/// Returns the journal.
fn drive(
    run: &mut Run,
    plan: &UpgradePlan,
    model: &mut Simulation,
    lies: impl Fn(&TaskId) -> bool,
) -> Vec<Record> {
    let mut journal = Vec::new();
    let mut now = Timestamp::UNIX_EPOCH;
    for _ in 0..100_000 {
        if run.is_finished() {
            return journal;
        }
        if !run.wants_state(now) {
            now = run.wake_at().expect("a run that waits says until when");
            continue;
        }
        let out = run.next(model.state(), now);
        journal.extend(out.records);
        for task in out.tasks {
            if !lies(&task.id) {
                let step = plan.steps[task.step_index].on_node(task.id.node.as_ref());
                model.apply(&step).unwrap();
            }
            let out = run.record(succeeded(task), now).unwrap();
            journal.extend(out.records);
        }
        now = now.saturating_add(Duration::from_secs(1)).unwrap();
    }
    panic!("the run did not end");
}

#[test]
fn a_task_that_succeeds_without_effect_is_not_done() {
    let plan = plan();
    let mut run = upstream_run(&plan, &[]);
    let mut model = Simulation::new(mid());
    let liar = |t: &TaskId| t.step.as_str().ends_with("/cp-2/kubeadm-upgrade-node");
    let journal = drive(&mut run, &plan, &mut model, liar);
    let report = run.finished().unwrap().report().expect("halted");
    assert_eq!(report.reason, StopReason::StepFailed, "{report}");
    assert!(liar(report.task.as_ref().unwrap()), "{report}");
    assert_eq!(
        report.differences,
        [Difference {
            node: Some("cp-2".parse().unwrap()),
            expected: "kube-apiserver is v1.29.4".into(),
            found: "kube-apiserver is v1.28.9".into(),
        }]
    );
    // Safe to repeat: tried again, each attempt checked; never recorded as done.
    let verifying = journal
        .iter()
        .filter(|r| matches!(&r.kind, RecordKind::TaskVerifying { task, .. } if liar(task)))
        .count();
    assert_eq!(verifying, RunOptions::default().retry.max_attempts as usize);
    assert!(!journal.iter().any(|r| matches!(
        &r.kind,
        RecordKind::TaskFinished { task, end: TaskEnd::Succeeded { .. }, .. } if liar(task)
    )));
    // Nothing of cp-1's kubelet moved (its packages may have been downloaded ahead).
    assert!(!journal.iter().any(|r| matches!(
        &r.kind,
        RecordKind::TaskStarted { task, .. } if task.step.as_str().contains("/cp-1/") && task.step.as_str().contains("kubelet") && !task.step.as_str().contains("/download-")
    )));
    assert_eq!(
        model.state().node("cp-1").unwrap().versions.kubelet,
        Some(v("v1.28.9"))
    );
}

#[test]
fn a_done_task_records_the_facts_checked() {
    let plan = plan();
    let mut run = upstream_run(&plan, &[]);
    let mut model = Simulation::new(mid());
    let journal = drive(&mut run, &plan, &mut model, |_| false);
    assert_eq!(run.finished(), Some(&Finished::Completed));
    let end = |suffix: &str| {
        journal
            .iter()
            .find_map(|r| match &r.kind {
                RecordKind::TaskFinished { task, end, .. }
                    if task.step.as_str().ends_with(suffix) =>
                {
                    Some(end.clone())
                }
                _ => None,
            })
            .unwrap()
    };
    let TaskEnd::Succeeded { checked, unknown } = end("/cp-2/kubeadm-upgrade-node") else {
        panic!()
    };
    assert_eq!(checked, ["kube-apiserver is v1.29.4"]);
    assert!(unknown.is_empty(), "{unknown:?}");
    // The inventory's state reports the nodes' kubeadm: checked too.
    let TaskEnd::Succeeded { checked, unknown } = end("/worker-1/install-kubeadm@v1.29.4") else {
        panic!()
    };
    assert_eq!(checked, ["kubeadm is v1.29.4"]);
    assert!(unknown.is_empty(), "{unknown:?}");
}

#[test]
fn a_resume_during_verification_checks_again() {
    let plan = plan();
    let mut run = upstream_run(&plan, &[]);
    let mut model = Simulation::new(mid());
    let liar = |t: &TaskId| t.step.as_str().ends_with("/cp-2/kubeadm-upgrade-node");
    let mut journal = drive(&mut run, &plan, &mut model, liar);
    // The session died while the first attempt was being checked.
    let cut = journal
        .iter()
        .position(|r| matches!(&r.kind, RecordKind::TaskVerifying { task, .. } if liar(task)))
        .unwrap();
    journal.truncate(cut + 1);
    let task = match &journal[cut].kind {
        RecordKind::TaskVerifying { task, .. } => task.clone(),
        _ => unreachable!(),
    };
    let mut run = upstream_run(&plan, &journal);
    let later = Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_hours(1);
    // Still not shown: the task is not assumed done, nor run again at once.
    let mut state = Simulation::new(mid());
    for step in &plan.steps {
        if journal.iter().any(
            |r| matches!(&r.kind, RecordKind::TaskFinished { task: t, .. } if t.step == step.id),
        ) {
            for n in &step.nodes {
                state.apply(&step.on_node(Some(n))).unwrap();
            }
            if step.nodes.is_empty() {
                state.apply(step).unwrap();
            }
        }
    }
    let out = run.next(state.state(), later);
    assert!(out.tasks.iter().all(|t| t.id != task), "{:?}", out.tasks);
    assert!(
        !out.records
            .iter()
            .any(|r| matches!(&r.kind, RecordKind::TaskFinished { task: t, .. } if *t == task))
    );
    // Once the cluster shows it (the command had taken effect after all), the task is done.
    let step = plan.step(task.step.as_str()).unwrap();
    state.apply(&step.on_node(task.node.as_ref())).unwrap();
    let out = run.next(state.state(), later + jiff::SignedDuration::from_secs(30));
    assert!(out.records.iter().any(|r| matches!(
        &r.kind,
        RecordKind::TaskFinished { task: t, end: TaskEnd::Succeeded { checked, .. }, .. } if *t == task && !checked.is_empty()
    )), "{:?}", out.records);
}

#[test]
fn control_plane_kubelets_wait_for_every_api_server() {
    let plan = plan();
    let mut seen = 0;
    for step in &plan.steps {
        let moves_kubelet = match &step.action {
            Action::InstallPackages { packages, .. } => {
                packages.contains(&kupgrade_core::plan::Package::Kubelet)
            }
            Action::RestartKubelet { .. } => true,
            _ => false,
        };
        if !moves_kubelet {
            continue;
        }
        let on_control_plane = step
            .nodes
            .iter()
            .all(|n| mid().node(n.as_str()).unwrap().is_control_plane());
        if on_control_plane {
            assert_eq!(step.phase, Phase::ControlPlaneKubelets, "{}", step.id);
            let hop = step.id.as_str().split('/').next().unwrap();
            assert!(
                step.pre.contains(&Fact::ControlPlaneAt { version: v(hop) }),
                "{}: {:?}",
                step.id,
                step.pre
            );
            seen += 1;
        } else {
            assert!(
                step.pre
                    .iter()
                    .any(|f| matches!(f, Fact::ControlPlaneAtLeast { .. })),
                "{}: {:?}",
                step.id,
                step.pre
            );
        }
    }
    // Install and restart on each of the three control-plane nodes, in each hop.
    assert!(seen >= 6, "{seen}");
}
