//! A resumed run looks for the command an earlier session left running before it decides
//! about its task: the driver journals each command's handle once it runs, and on resume waits
//! for that command (or stops it, as asked), and halts naming it when it does not go away.
//!
//! The cluster is the simulated one; the runner in front of it reports a handle for
//! `kubeadm upgrade apply` and, in the first session, never finishes it (as a node command
//! whose `apply` was killed goes on). What the runner's `probe` answers is scripted.
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kupgrade_core::NodeName;
use kupgrade_core::plan::UpgradePlan;
use kupgrade_core::ports::{
    CommandHandle, CommandOutput, CommandRunner, CommandSpec, LineSink, Liveness, RunnerError,
    Tracking,
};
use kupgrade_core::run::{Finished, Record, RecordKind, StopReason};
use kupgrade_core::testing::upstream_run;
use kupgrade_exec::driver::{Driver, SurvivorPolicy, stop_channel};
use kupgrade_exec::sim::SimCluster;
use support::fixtures::two_nodes_plan;

fn handle() -> CommandHandle {
    CommandHandle::Local {
        pgid: 4242,
        token: "kupgrade-test-token".into(),
        privileged: true,
    }
}

/// What the runner saw, in order: `apply` (an `upgrade apply` started), `probe running`,
/// `probe ended`, `stop`.
#[derive(Default)]
struct Script {
    log: Vec<String>,
    /// The first `apply` never ends.
    hang: bool,
    /// Probes that still find the survivor running.
    alive: u32,
}

struct Scripted {
    sim: Arc<SimCluster>,
    script: Mutex<Script>,
    reported: tokio::sync::Notify,
}

#[async_trait]
impl CommandRunner for Scripted {
    async fn run_tracked(
        &self,
        node: &NodeName,
        spec: &CommandSpec,
        lines: &LineSink,
        tracking: &Tracking,
    ) -> Result<CommandOutput, RunnerError> {
        if spec.to_shell_line().contains("upgrade apply") {
            let hang = {
                let mut s = self.script.lock().unwrap();
                s.log.push("apply".into());
                std::mem::take(&mut s.hang)
            };
            tracking.started.report(handle());
            if hang {
                self.reported.notify_one();
                return std::future::pending().await;
            }
        }
        self.sim.run(node, spec, lines).await
    }

    async fn probe(&self, _: &NodeName, h: &CommandHandle) -> Result<Liveness, RunnerError> {
        assert_eq!(h, &handle());
        let mut s = self.script.lock().unwrap();
        let l = if s.alive > 0 {
            s.alive -= 1;
            Liveness::Running
        } else {
            Liveness::Ended
        };
        s.log.push(format!(
            "probe {}",
            if l == Liveness::Running {
                "running"
            } else {
                "ended"
            }
        ));
        Ok(l)
    }

    async fn stop(&self, _: &NodeName, h: &CommandHandle) -> Result<(), RunnerError> {
        assert_eq!(h, &handle());
        let mut s = self.script.lock().unwrap();
        s.log.push("stop".into());
        s.alive = 0;
        Ok(())
    }
}

/// Session 1: `apply` starts and hangs; the run is aborted once its handle is journaled.
/// Returns the journal and the runner (its script reset for session 2).
async fn first_session() -> (Vec<Record>, Arc<Scripted>, Arc<UpgradePlan>) {
    let (cluster, plan) = two_nodes_plan();
    let sim = Arc::new(SimCluster::new(cluster));
    let runner = Arc::new(Scripted {
        sim: sim.clone(),
        script: Mutex::new(Script {
            hang: true,
            ..Script::default()
        }),
        reported: tokio::sync::Notify::new(),
    });
    let (stop, signal) = stop_channel();
    let r = runner.clone();
    tokio::spawn(async move {
        r.reported.notified().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.abort();
    });
    let mut run = upstream_run(&plan, &[]);
    let mut journal = Vec::new();
    let end = Driver::new(runner.clone(), sim)
        .stop_on(signal)
        .drive(&mut run, &mut journal)
        .await
        .unwrap();
    assert_eq!(end, Finished::Cancelled);
    let handles: Vec<&Record> = journal
        .iter()
        .filter(
            |r| matches!(&r.kind, RecordKind::CommandStarted { handle: h, .. } if *h == handle()),
        )
        .collect();
    assert_eq!(
        handles.len(),
        1,
        "the handle is journaled once: {journal:#?}"
    );
    assert_eq!(handles[0].v, 2, "command-started records are format 2");
    let survivors = upstream_run(&plan, &journal).survivors();
    assert_eq!(survivors.len(), 1, "{survivors:?}");
    assert!(
        survivors[0]
            .task
            .step
            .as_str()
            .ends_with("kubeadm-upgrade-apply")
    );
    assert_eq!(survivors[0].handle, handle());
    runner.script.lock().unwrap().log.clear();
    (journal, runner, plan)
}

async fn second_session(
    journal: &mut Vec<Record>,
    runner: &Arc<Scripted>,
    plan: &Arc<UpgradePlan>,
    policy: SurvivorPolicy,
) -> Finished {
    let mut run = upstream_run(plan, journal);
    Driver::new(runner.clone(), runner.sim.clone())
        .on_survivor(policy)
        .drive(&mut run, journal)
        .await
        .unwrap()
}

fn log(runner: &Scripted) -> Vec<String> {
    runner.script.lock().unwrap().log.clone()
}

/// Session 1 leaves a survivor that the node reports running for `alive` probes; session 2
/// resumes under `policy`. Returns how session 2 ended, what the runner was asked, and the
/// journal of both (with the plan) for a further resume.
async fn resume_with_survivor(
    alive: u32,
    policy: SurvivorPolicy,
) -> (Finished, Vec<String>, Vec<Record>, Arc<UpgradePlan>) {
    let (mut journal, runner, plan) = first_session().await;
    runner.script.lock().unwrap().alive = alive;
    let end = second_session(&mut journal, &runner, &plan, policy).await;
    (end, log(&runner), journal, plan)
}

#[tokio::test(start_paused = true)]
async fn a_resume_waits_for_the_survivor_before_it_runs_the_task_again() {
    let (end, log, _, _) =
        resume_with_survivor(3, SurvivorPolicy::Wait(Duration::from_secs(60))).await;
    assert_eq!(end, Finished::Completed);
    assert_eq!(
        log,
        [
            "probe running",
            "probe running",
            "probe running",
            "probe ended",
            "apply"
        ],
        "the task ran again before its survivor ended"
    );
}

#[tokio::test(start_paused = true)]
async fn a_resume_can_stop_the_survivor_first() {
    let (end, log, _, _) =
        resume_with_survivor(1000, SurvivorPolicy::Stop(Duration::from_secs(60))).await;
    assert_eq!(end, Finished::Completed);
    assert_eq!(log, ["probe running", "stop", "probe ended", "apply"]);
}

#[tokio::test(start_paused = true)]
async fn a_survivor_that_does_not_end_halts_the_run_and_is_named() {
    let (end, l, journal, plan) =
        resume_with_survivor(1000, SurvivorPolicy::Wait(Duration::from_secs(5))).await;
    let Finished::Halted(report) = &end else {
        panic!("expected a halt, got {end:?}")
    };
    assert_eq!(report.reason, StopReason::StillRunning);
    assert!(
        report.summary.contains("process group 4242") && report.summary.contains("cp-1"),
        "{}",
        report.summary
    );
    assert!(
        !l.contains(&"apply".to_string()),
        "the task ran again: {l:?}"
    );
    assert!(l.len() >= 5, "it did not wait: {l:?}");
    // The halt is journaled: the next resume finds the same survivor.
    assert_eq!(upstream_run(&plan, &journal).survivors().len(), 1);
}
