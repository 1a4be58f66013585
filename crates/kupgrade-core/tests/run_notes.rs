//! What a task saw, journaled (`Run::note`): output bounded to its last `OUTPUT_KEPT` bytes a
//! stream, empty output not journaled; a regression baseline's snapshot kept for the session
//! and, replayed, for a resumed one (so a gate judges against the same baseline), one too
//! large to journal left out; `RunSummary` reads the notes back for the report.
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::date;
use kupgrade_core::gate::{Gate, GateCheck, GateSet, PodHealth, RegressionCheck, WorkloadSnapshot};
use kupgrade_core::plan::{Action, PlanOptions, PlanRequest, UpgradePlan};
use kupgrade_core::run::{
    OUTPUT_KEPT, Record, RecordKind, RunSummary, SNAPSHOT_KEPT, TaskId, TaskNote,
};
use kupgrade_core::testing::upstream_run;

const HA: &str = include_str!("../../../examples/clusters/ha.yaml");

fn plan() -> Arc<UpgradePlan> {
    let cluster = kupgrade_core::inventory::parse(HA, "ha.yaml").unwrap();
    let options = PlanOptions {
        allow_unsupported_target: true,
        ..PlanOptions::default()
    };
    let mut plan = PlanRequest::new("1.29".parse().unwrap(), date(2025, 11, 1))
        .options(options)
        .plan(&cluster)
        .unwrap();
    let gate = Gate::new(
        "pods",
        GateCheck::Regression(RegressionCheck {
            namespace: Some("default".into()),
            selector: None,
        }),
    );
    GateSet::new(vec![gate]).unwrap().insert(&mut plan);
    Arc::new(plan)
}

fn task_of(plan: &UpgradePlan, what: impl Fn(&Action) -> bool) -> TaskId {
    let step = plan.steps.iter().find(|s| what(&s.action)).unwrap();
    TaskId::new(step.id.clone(), None)
}

fn snapshot(pods: usize) -> WorkloadSnapshot {
    WorkloadSnapshot {
        pods: (0..pods)
            .map(|i| PodHealth {
                namespace: "default".into(),
                name: format!("web-{i}"),
                node: Some("worker-1".into()),
                phase: "Running".into(),
                ready: true,
                crash_looping: false,
                restarts: 0,
            })
            .collect(),
        budgets: Vec::new(),
    }
}

fn now() -> Timestamp {
    "2025-11-01T09:00:00Z".parse().unwrap()
}

#[test]
fn output_is_journaled_bounded_and_empty_output_is_not() {
    let plan = plan();
    let mut run = upstream_run(&plan, &[]);
    let hook = task_of(&plan, |a| matches!(a, Action::Preflight { .. }));
    let long = format!("{}the end\n", "x".repeat(3 * OUTPUT_KEPT));
    let out = run.note(
        &hook,
        1,
        TaskNote::Output {
            stdout: long,
            stderr: "<b>warn</b>\n".into(),
        },
        now(),
    );
    let [record] = out.records.as_slice() else {
        panic!("{:?}", out.records)
    };
    let RecordKind::TaskOutput {
        task,
        attempt,
        stdout,
        stderr,
    } = &record.kind
    else {
        panic!("{record:?}")
    };
    assert_eq!((task, *attempt), (&hook, 1));
    assert!(stdout.len() <= OUTPUT_KEPT, "{}", stdout.len());
    assert!(stdout.ends_with("the end\n") && stdout.contains("bytes cut]"));
    assert_eq!(stderr, "<b>warn</b>\n");
    // It survives the journal's JSON.
    let line = serde_json::to_string(record).unwrap();
    assert_eq!(&serde_json::from_str::<Record>(&line).unwrap(), record);

    let quiet = run.note(
        &hook,
        1,
        TaskNote::Output {
            stdout: " \n".into(),
            stderr: String::new(),
        },
        now(),
    );
    assert!(quiet.records.is_empty());
}

#[test]
fn a_baseline_is_kept_and_replayed_and_one_too_large_is_left_out() {
    let plan = plan();
    let baseline = task_of(&plan, |a| matches!(a, Action::GateBaseline { .. }));
    let gate = task_of(&plan, |a| matches!(a, Action::Gate { .. }));
    let mut run = upstream_run(&plan, &[]);
    // The session opens (run-started, the first tasks started) as the driver's first look.
    let cluster = kupgrade_core::inventory::parse(HA, "ha.yaml").unwrap();
    let mut journal = run.next(&cluster, now()).records;
    let opened = journal.len();
    assert!(matches!(journal[0].kind, RecordKind::RunStarted { .. }));
    journal.extend(
        run.note(&baseline, 1, TaskNote::Workloads(snapshot(3)), now())
            .records,
    );
    // A gate's own snapshot is journaled (for the report) but is no baseline.
    journal.extend(
        run.note(&gate, 1, TaskNote::Workloads(snapshot(2)), now())
            .records,
    );
    assert_eq!(journal.len(), opened + 2);
    let noted: Vec<_> = run
        .noted_workloads()
        .map(|(s, w)| (s.clone(), w.pods.len()))
        .collect();
    assert_eq!(noted, vec![(baseline.step.clone(), 3)]);

    // A resumed run has the same baseline, from the journal alone.
    let resumed = upstream_run(&plan, &journal);
    let noted: Vec<_> = resumed
        .noted_workloads()
        .map(|(s, w)| (s.clone(), w.clone()))
        .collect();
    assert_eq!(noted, vec![(baseline.step.clone(), snapshot(3))]);

    // The report reads both: before (the baseline) and after (the gate's).
    let summary = RunSummary::from_records(&plan, &journal);
    assert_eq!(summary.workloads(&baseline.step), Some(&snapshot(3)));
    assert_eq!(summary.workloads(&gate.step), Some(&snapshot(2)));

    // Too large to journal: nothing recorded, nothing kept.
    let mut run = upstream_run(&plan, &[]);
    let out = run.note(
        &baseline,
        1,
        TaskNote::Workloads(snapshot(SNAPSHOT_KEPT + 1)),
        now(),
    );
    assert!(out.records.is_empty());
    assert_eq!(run.noted_workloads().count(), 0);
}
