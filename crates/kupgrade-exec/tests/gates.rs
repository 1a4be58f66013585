//! Gates through the driver, over the simulated cluster (its `GateProbe`) and the local
//! runner: a gate holds the run until it passes, a timeout halts naming what was wrong (or
//! warns), a regression after a batch is caught, a command gate's failure is kept, and a
//! resume evaluates an interrupted gate again. Every test runs on a paused tokio clock.
mod support;

use std::sync::Arc;
use std::time::Duration;

use kupgrade_core::gate::{
    Gate, GateCheck, GateCommand, GatePoint, GateSet, ObjectRef, OnTimeout, Rollout, WorkloadKind,
};
use kupgrade_core::plan::UpgradePlan;
use kupgrade_core::run::{Event, StopReason};
use kupgrade_exec::driver::{Driver, stop_channel};
use kupgrade_exec::sim::SimCluster;
use kupgrade_exec::{LocalRunner, NodeEnv};
use serde_json::json;
use support::fixtures::{
    drive_to_end as drive, gate, ha_plan, halted_at, pods_gate, sample_sim as sim, troubled_sim,
};

fn plan_with(gates: Vec<Gate>) -> Arc<UpgradePlan> {
    ha_plan(|plan| GateSet::new(gates).unwrap().insert(plan))
}

fn web() -> Rollout {
    Rollout {
        kind: WorkloadKind::Deployment,
        namespace: Some("shop".into()),
        name: "web".into(),
    }
}

/// The plan with one rollout gate on shop/web that gives up after `timeout` seconds.
fn web_gated(timeout: u64) -> Arc<UpgradePlan> {
    plan_with(vec![gate("web", GateCheck::Rollout(web()), timeout)])
}

/// Deployment shop/web in `sim`, `available` of its 3 replicas available.
fn set_web(sim: &SimCluster, available: i64) {
    let deployment = json!({
        "metadata": {"name": "web", "namespace": "shop", "generation": 1},
        "spec": {"replicas": 3},
        "status": {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3,
                   "availableReplicas": available}
    });
    sim.set_object(&web().object(), Some(deployment));
}

fn driver(sim: &SimCluster) -> Driver {
    let s = Arc::new(sim.clone());
    Driver::new(s.clone(), s.clone())
        .provider(s.clone())
        .gates(s)
}

fn drains(sim: &SimCluster) -> usize {
    count(sim, "drain")
}

fn count(sim: &SimCluster, what: &str) -> usize {
    sim.snapshot()
        .history
        .iter()
        .filter(|e| e.what == what)
        .count()
}

/// The Deployment is unavailable for five minutes after the first batch: the run waits at the
/// first gate (no other node is drained meanwhile) and goes on once it is available.
#[tokio::test(start_paused = true)]
async fn a_rollout_gate_holds_the_run_until_the_deployment_is_available() {
    let plan = web_gated(3600);
    let sim = sim();
    set_web(&sim, 0);
    let flip = sim.clone();
    let held = tokio::spawn(async move {
        // Until the first gate starts waiting (the first drain has happened)...
        while drains(&flip) == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tokio::time::sleep(Duration::from_secs(300)).await;
        let during = drains(&flip);
        set_web(&flip, 3);
        during
    });
    let out = drive(driver(&sim), &plan, &mut Vec::new()).await;
    assert!(out.finished.is_completed(), "{:?}", out.finished.report());
    // For those five minutes, only the first batch had been drained.
    assert_eq!(held.await.unwrap(), 1);
    let lines = out.lines();
    let waiting = lines
        .iter()
        .find(|l| l.contains("waiting"))
        .expect("the gate waited");
    assert!(
        waiting.ends_with("gate web: waiting: Deployment shop/web: 0 of 3 replicas available"),
        "{waiting}"
    );
    assert!(
        lines.iter().any(|l| l.contains("gate web passed")),
        "{lines:#?}"
    );
}

/// A gate that never passes halts the run at its timeout, naming the object, how to resume
/// and how to skip it; nothing after it runs.
#[tokio::test(start_paused = true)]
async fn a_gate_that_times_out_halts_naming_the_object() {
    let plan = web_gated(60);
    let sim = sim();
    set_web(&sim, 1);
    let out = drive(driver(&sim), &plan, &mut Vec::new()).await;
    let (report, task) = halted_at(&out.finished, StopReason::StepFailed, "/gate-web");
    assert!(
        report.summary.contains(
            "gate web did not pass within 60s: Deployment shop/web: 1 of 3 replicas available"
        ),
        "{report}"
    );
    assert!(
        report
            .advice
            .contains("resume: the gate is evaluated again"),
        "{report}"
    );
    assert!(
        report.advice.contains(&format!("--mark-done '{task}'")),
        "{report}"
    );
    assert_eq!(drains(&sim), 1, "nothing after the gate ran");
    // Not retried: it waited its whole time already.
    let starts = out
        .events
        .iter()
        .filter(|e| matches!(e, Event::StepStarted { task: t, .. } if t.to_string() == task))
        .count();
    assert_eq!(starts, 1);
}

/// With `on-timeout: warn` the run goes on, and says what was wrong.
#[tokio::test(start_paused = true)]
async fn a_warning_gate_lets_the_run_go_on() {
    let mut g = gate("web", GateCheck::Rollout(web()), 20);
    g.on_timeout = OnTimeout::Warn;
    g.after = vec![GatePoint::Hop];
    let plan = plan_with(vec![g]);
    let sim = sim();
    let out = drive(driver(&sim), &plan, &mut Vec::new()).await;
    assert!(out.finished.is_completed(), "{:?}", out.finished.report());
    let lines = out.lines();
    assert!(
        lines.iter().any(|l| l.contains(
            "warning: gate web did not pass within 20s: Deployment shop/web was not found; going on"
        )),
        "{lines:#?}"
    );
}

/// A pod that starts crash-looping during the first batch is caught by the regression gate
/// after it, by name; a pod that was fine throughout is not named.
#[tokio::test(start_paused = true)]
async fn a_pod_crash_looping_after_a_batch_is_caught_by_the_regression_gate() {
    let plan = plan_with(vec![pods_gate()]);
    // A pod on another node turns crash-looping when the first node is uncordoned.
    let (sim, victim) = troubled_sim(&plan);
    let out = drive(driver(&sim), &plan, &mut Vec::new()).await;
    let (report, _) = halted_at(&out.finished, StopReason::StepFailed, "/gate-pods");
    assert!(
        report
            .summary
            .contains(&format!("pod default/{} on ", victim.name))
            && report.summary.contains("is crash-looping"),
        "{report}"
    );
    // The snapshot was taken before the batch.
    let lines = out.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("baseline-pods") && l.contains("noted")),
        "{lines:#?}"
    );
}

/// A command gate runs through the local runner, here in a strict sandbox whose `bin` holds
/// the gate's program: exit 0 passes; a failing one halts with its exit status and its
/// output kept in the report. Real processes: a real clock, the simulated cluster sped up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_gate_runs_through_the_local_runner() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("localhost").join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, body) in [
        ("smoke-ok", "echo all good"),
        ("smoke-bad", "echo 'replicas behind: 2' >&2; exit 3"),
    ] {
        support::write_script(&bin, name, &format!("{body}\n"));
    }
    let root = dir.path().to_path_buf();
    let local = LocalRunner::new().with_node_env(move |node| NodeEnv::sandbox(&root, node));
    let cmd = |program: &str| {
        GateCheck::Command(GateCommand {
            argv: vec![program.to_string()],
            node: None,
            timeout_seconds: 10,
        })
    };
    let mut ok = gate("smoke", cmd("smoke-ok"), 30);
    ok.after = vec![GatePoint::Hop];
    ok.interval_seconds = 1;
    let plan = plan_with(vec![ok]);
    let fast = || sim().with_speed(1_000_000.0);
    let out = drive(
        driver(&fast()).local_runner(Arc::new(local.clone())),
        &plan,
        &mut Vec::new(),
    )
    .await;
    assert!(out.finished.is_completed(), "{:?}", out.finished.report());
    let lines = out.lines();
    assert!(lines.iter().any(|l| l.ends_with("all good")), "{lines:#?}");

    let mut bad = gate("smoke", cmd("smoke-bad"), 1);
    bad.after = vec![GatePoint::Hop];
    bad.interval_seconds = 1;
    let plan = plan_with(vec![bad]);
    let out = drive(
        driver(&fast()).local_runner(Arc::new(local)),
        &plan,
        &mut Vec::new(),
    )
    .await;
    let report = out.finished.report().expect("halted");
    assert!(
        report
            .summary
            .contains("`smoke-bad` ended with exit code 3: replicas behind: 2"),
        "{report}"
    );
}

/// A session aborted while a gate waits leaves it in flight; the next session evaluates it
/// again (it is never assumed passed), and it passes only once the object is available.
#[tokio::test(start_paused = true)]
async fn a_resume_evaluates_an_interrupted_gate_again() {
    let plan = web_gated(3600);
    let sim = sim();
    set_web(&sim, 0);
    let (stop, signal) = stop_channel();
    let watcher = sim.clone();
    tokio::spawn(async move {
        // The first gate follows the first uncordon.
        while count(&watcher, "uncordon") == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        stop.abort();
    });
    let mut journal = Vec::new();
    let first = drive(driver(&sim).stop_on(signal), &plan, &mut journal).await;
    assert!(!first.finished.is_completed());
    assert_eq!(count(&sim, "uncordon"), 1);
    let gate_task = first
        .events
        .iter()
        .find_map(|e| match e {
            Event::StepStarted { task, .. } if task.step.as_str().ends_with("/gate-web") => {
                Some(task.clone())
            }
            _ => None,
        })
        .expect("the gate started");
    // Still unavailable: the resumed session waits at the same gate again.
    let flip = sim.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(120)).await;
        set_web(&flip, 3);
    });
    let second = drive(driver(&sim), &plan, &mut journal).await;
    assert!(
        second.finished.is_completed(),
        "{:?}",
        second.finished.report()
    );
    let again = second
        .events
        .iter()
        .any(|e| matches!(e, Event::StepStarted { task, .. } if *task == gate_task));
    assert!(again, "the interrupted gate ran again");
    let lines = second.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&gate_task.to_string()) && l.contains("waiting")),
        "{lines:#?}"
    );
}

/// Without a probe, a rollout gate cannot be judged: the run halts and says why, never
/// passing it.
#[tokio::test(start_paused = true)]
async fn a_gate_without_a_probe_halts() {
    let plan = web_gated(30);
    let sim = sim();
    let s = Arc::new(sim.clone());
    let out = drive(
        Driver::new(s.clone(), s.clone()).provider(s),
        &plan,
        &mut Vec::new(),
    )
    .await;
    let report = out.finished.report().expect("halted");
    assert!(
        report.summary.contains("no gate probe is configured"),
        "{report}"
    );
    let _ = ObjectRef::clone(&web().object());
}
