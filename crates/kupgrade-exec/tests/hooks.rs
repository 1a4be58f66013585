//! Hooks through the driver: the upgrade on the simulated cluster (sped up), the hooks' own
//! commands through the local runner in per-node sandboxes (here: `localhost`), both for
//! hooks that run here and for hooks on the step's nodes (a runner that sends the hooks'
//! programs to the local runner and everything else to the simulated nodes). Order, the
//! facts in the environment, a failing hook halting, and the repeat rules on resume.
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kupgrade_core::hook::HookSet;
use kupgrade_core::plan::UpgradePlan;
use kupgrade_core::ports::{CommandSpec, Program};
use kupgrade_core::run::{Finished, Record, StopReason};
use kupgrade_core::testing::upstream_run;
use kupgrade_exec::driver::{Driver, JournalSink, StopHandle, stop_channel};
use kupgrade_exec::sim::SimCluster;
use kupgrade_exec::{LocalRunner, NodeEnv};
use support::fixtures::{Split, fast_sim, ha_plan, halted_at, node_bins};

/// Hook programs (`*-hook`), which run locally in the node's sandbox; the rest runs on the
/// simulated node.
fn is_hook(spec: &CommandSpec) -> bool {
    matches!(&spec.program, Program::Exec { program, .. } if program.ends_with("-hook"))
}

/// Sandboxes under `root` (one per node and one for `localhost`) whose `bin` holds the hook
/// programs: `log-hook FILE` appends the facts it got and where it ran; `fail-hook` exits 7;
/// `slow-hook FILE` logs, then waits until `ROOT/go` exists.
fn sandboxes(root: &Path, nodes: &[&str]) -> LocalRunner {
    let go = root.join("go");
    let nodes: Vec<&str> = nodes.iter().copied().chain(["localhost"]).collect();
    for (_, bin) in node_bins(root, &nodes) {
        for (name, body) in [
            (
                "log-hook",
                "echo \"$KUPGRADE_HOOK|$KUPGRADE_POINT|$KUPGRADE_STEP|$KUPGRADE_NODES|$KUPGRADE_HOP|${KUPGRADE_NODE_ROOT##*/}\" >> \"$1\"".to_string(),
            ),
            ("fail-hook", "echo 'cannot reach the pager' >&2; exit 7".to_string()),
            (
                "slow-hook",
                format!(
                    "echo run >> \"$1\"; while [ ! -e {} ]; do /bin/sleep 0.1; done",
                    go.display()
                ),
            ),
        ] {
            support::write_script(&bin, name, &format!("{body}\n"));
        }
    }
    let root = root.to_path_buf();
    LocalRunner::new().with_node_env(move |node| NodeEnv::sandbox(&root, node))
}

fn plan_with(hooks: &str) -> Arc<UpgradePlan> {
    ha_plan(|plan| HookSet::parse(hooks, "hooks.yaml").unwrap().insert(plan))
}

const NODES: [&str; 9] = [
    "cp-1", "cp-2", "cp-3", "worker-1", "worker-2", "worker-3", "worker-4", "worker-5", "worker-6",
];

fn driver(sim: &SimCluster, local: &LocalRunner) -> Driver {
    let s = Arc::new(sim.clone());
    let runner = Arc::new(Split {
        pick: is_hook,
        picked: local.clone(),
        sim: sim.clone(),
    });
    Driver::new(runner, s.clone())
        .provider(s)
        .local_runner(Arc::new(local.clone()))
}

async fn drive(
    driver: Driver,
    plan: &Arc<UpgradePlan>,
    journal: &mut Vec<Record>,
    stop: Option<kupgrade_exec::driver::StopSignal>,
) -> Finished {
    let mut run = upstream_run(plan, journal);
    let driver = match stop {
        Some(s) => driver.stop_on(s),
        None => driver,
    };
    driver
        .drive(&mut run, journal as &mut dyn JournalSink)
        .await
        .unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(ToString::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_in_order_where_they_say_with_the_step_s_facts() {
    let dir = tempfile::tempdir().unwrap();
    let local = sandboxes(dir.path(), &NODES);
    let log = dir.path().join("log");
    let l = log.display();
    let plan = plan_with(&format!(
        "hooks:
  - {{ name: start, before: upgrade, argv: [log-hook, {l}] }}
  - {{ name: end, after: upgrade, argv: [log-hook, {l}] }}
  - {{ name: hop, after: hop, argv: [log-hook, {l}] }}
  - {{ name: pre, before: batch, argv: [log-hook, {l}] }}
  - {{ name: post, after: batch, argv: [log-hook, {l}] }}
  - {{ name: snap, before: drain, on: nodes, repeatable: false, argv: [log-hook, {l}] }}
"
    ));
    let sim = fast_sim();
    let finished = drive(driver(&sim, &local), &plan, &mut Vec::new(), None).await;
    assert!(finished.is_completed(), "{:?}", finished.report());
    let got = lines(&log);
    assert_eq!(
        got[0],
        "start|before upgrade|v1.29.15/cluster/preflight||1|localhost"
    );
    assert_eq!(
        got[got.len() - 1],
        "end|after upgrade|v1.29.15/cluster/verify||1|localhost"
    );
    // worker-4's batch: the batch hook here, the drain hook on worker-4, the batch's end here.
    let at = |want: &str| {
        got.iter()
            .position(|l| l == want)
            .unwrap_or_else(|| panic!("{want} not in {got:#?}"))
    };
    let pre = at("pre|before batch|v1.29.15/worker-4/repository-1.29|worker-4|1|localhost");
    let snap = at("snap|before drain|v1.29.15/worker-4/drain|worker-4|1|worker-4");
    let post = at("post|after batch|v1.29.15/worker-4/uncordon|worker-4|1|localhost");
    assert!(pre < snap && snap < post, "{got:#?}");
    // Once per drain, on the drained node; once per batch; once for the hop.
    assert_eq!(got.iter().filter(|l| l.starts_with("snap|")).count(), 9);
    assert_eq!(got.iter().filter(|l| l.starts_with("pre|")).count(), 9);
    assert_eq!(got.iter().filter(|l| l.starts_with("hop|")).count(), 1);
    for l in got.iter().filter(|l| l.starts_with("snap|")) {
        let parts: Vec<&str> = l.split('|').collect();
        assert_eq!(parts[3], parts[5], "ran on its own node: {l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_hook_halts_the_run_with_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let local = sandboxes(dir.path(), &NODES);
    let plan = plan_with(
        "hooks:\n  - { name: page, before: drain, repeatable: false, argv: [fail-hook] }\n",
    );
    let sim = fast_sim();
    let finished = drive(driver(&sim, &local), &plan, &mut Vec::new(), None).await;
    let (report, _) = halted_at(&finished, StopReason::StepFailed, "/hook-before-drain-page");
    assert!(
        report
            .summary
            .contains("fail-hook` here ended with exit code 7")
            && report.summary.contains("stderr: cannot reach the pager"),
        "{report}"
    );
    let drains = (sim.snapshot().history.iter())
        .filter(|e| e.what == "drain")
        .count();
    assert_eq!(drains, 0, "the drain after it never ran");
}

/// Aborts the session once `log` has a line (the hook runs).
fn abort_when_logged(log: std::path::PathBuf, stop: StopHandle) {
    tokio::spawn(async move {
        let began = Instant::now();
        while lines(&log).is_empty() && began.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.abort();
    });
}

/// A hook that is not safe to repeat and was in flight when its session ended is unsure: the
/// next session asks the operator instead of running it again. A repeatable one runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_hook_runs_again_only_if_repeatable() {
    for repeatable in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let local = sandboxes(dir.path(), &NODES);
        let log = dir.path().join("log");
        let plan = plan_with(&format!(
            "hooks:\n  - {{ name: slow, after: hop, repeatable: {repeatable}, argv: [slow-hook, {}] }}\n",
            log.display()
        ));
        let sim = fast_sim();
        let (stop, signal) = stop_channel();
        abort_when_logged(log.clone(), stop);
        let mut journal = Vec::new();
        let first = drive(driver(&sim, &local), &plan, &mut journal, Some(signal)).await;
        assert!(!first.is_completed());
        assert_eq!(lines(&log).len(), 1);
        std::fs::write(dir.path().join("go"), "").unwrap();
        let second = drive(driver(&sim, &local), &plan, &mut journal, None).await;
        if repeatable {
            assert!(second.is_completed(), "{:?}", second.report());
            assert_eq!(lines(&log).len(), 2, "it ran again");
        } else {
            // It asks the operator.
            halted_at(&second, StopReason::Unsure, "/hook-after-hop-slow");
            assert_eq!(lines(&log).len(), 1, "not run again");
        }
    }
}
