//! The check before each hop (`Driver::before_each_hop`), over the simulated HA cluster on a
//! two-hop plan: asked once per session for the second hop, never for the first; a refusal
//! halts the run before any task of that hop runs, naming the check's words; a resumed
//! session asks again and, answered yes, goes on to the end.
mod support;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kupgrade_core::plan::UpgradePlan;
use kupgrade_core::run::{Finished, Record, StopReason};
use kupgrade_core::testing::upstream_run;
use kupgrade_exec::driver::{Driver, HopCheck, JournalSink};
use kupgrade_exec::sim::SimCluster;
use support::fixtures::{fast_sim, ha_plan_to, halted};

/// Answers from a script: `refuse` says no; every question is written down.
struct Scripted {
    refuse: bool,
    asked: Mutex<Vec<usize>>,
}

#[async_trait]
impl HopCheck for Scripted {
    async fn before_hop(&self, _: &UpgradePlan, hop: usize) -> Result<(), String> {
        self.asked.lock().unwrap().push(hop);
        match self.refuse {
            true => Err("removed-api:ingress/shop/web (pass --accept to go on)".into()),
            false => Ok(()),
        }
    }
}

impl Scripted {
    fn new(refuse: bool) -> Arc<Scripted> {
        Arc::new(Scripted {
            refuse,
            asked: Mutex::new(Vec::new()),
        })
    }
}

/// The HA sample's plan to 1.30: two hops.
fn two_hops() -> Arc<UpgradePlan> {
    ha_plan_to("1.30", |_| {})
}

async fn session(
    sim: &SimCluster,
    plan: &Arc<UpgradePlan>,
    journal: &mut Vec<Record>,
    check: Arc<Scripted>,
) -> Finished {
    let s = Arc::new(sim.clone());
    let mut run = upstream_run(plan, journal);
    Driver::new(s.clone(), s.clone())
        .provider(s)
        .before_each_hop(check)
        .drive(&mut run, journal as &mut dyn JournalSink)
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_refused_hop_halts_before_its_first_task_and_a_resume_asks_again() {
    let plan = two_hops();
    assert_eq!(plan.hops.len(), 2);
    let sim = fast_sim();
    let mut journal = Vec::new();
    let no = Scripted::new(true);
    let finished = session(&sim, &plan, &mut journal, no.clone()).await;
    let report = halted(&finished, StopReason::StepFailed);
    assert!(
        report
            .summary
            .contains("the check before hop 2 (to v1.30.14) failed: removed-api:ingress/shop/web"),
        "{report}"
    );
    // Asked once, for the second hop only, however many of its tasks were due together.
    assert_eq!(*no.asked.lock().unwrap(), [1]);
    // The first hop is done; nothing of the second ran: every node still runs at most 1.29.
    let state = sim.snapshot();
    for node in &state.cluster.nodes {
        for (c, v) in node.versions.iter() {
            if c.version_line() != kupgrade_core::VersionLine::Kubernetes {
                continue;
            }
            assert!(
                v.minor() <= "1.29".parse().unwrap(),
                "{} {c:?} at {v}",
                node.name
            );
        }
    }
    let cp1 = state.cluster.node("cp-1").unwrap();
    assert_eq!(
        cp1.versions
            .get(kupgrade_core::Component::KubeApiserver)
            .unwrap()
            .to_string(),
        "v1.29.15",
        "the first hop ran"
    );
    // Resumed: asked again, answered yes, to the end.
    let yes = Scripted::new(false);
    let resumed = session(&sim, &plan, &mut journal, yes.clone()).await;
    assert!(resumed.is_completed(), "{resumed:?}");
    assert_eq!(*yes.asked.lock().unwrap(), [1]);
}

/// Pre-staging runs the second hop's downloads while the first hop is under way: they do not
/// ask the check (it would read the cluster's evidence before the first hop is done, and a
/// refusal would stop the first hop halfway), the second hop's first other task does.
#[tokio::test(start_paused = true)]
async fn the_next_hops_downloads_ahead_do_not_ask_the_check() {
    let plan = two_hops();
    let first_of_hop_2 = plan
        .steps
        .iter()
        .position(|s| s.hop == Some(1) && !s.action.is_prestage())
        .unwrap();
    assert!(
        plan.steps[..first_of_hop_2]
            .iter()
            .any(|s| s.hop == Some(1) && s.action.is_prestage()),
        "no download of the second hop is planned before its first step"
    );
    let sim = fast_sim();
    let mut journal = Vec::new();
    let no = Scripted::new(true);
    let finished = session(&sim, &plan, &mut journal, no.clone()).await;
    // The refusal failed the second hop's first task that is not a download ahead; the
    // downloads of that hop ran (and ended) before it.
    let report = finished.report().expect("halted");
    let task = report.task.clone().expect("a task failed");
    let step = plan.step(task.step.as_str()).unwrap();
    assert_eq!(step.hop, Some(1), "{task}");
    assert!(!step.action.is_prestage(), "{task} asked the check");
    assert_eq!(*no.asked.lock().unwrap(), [1]);
    let downloaded = journal.iter().any(|r| match &r.kind {
        kupgrade_core::run::RecordKind::TaskFinished { task, .. } => plan
            .step(task.step.as_str())
            .is_some_and(|s| s.hop == Some(1) && s.action.is_prestage()),
        _ => false,
    });
    assert!(downloaded, "no download of the second hop ran");
}
