//! The plan's estimate is the time a run takes: for every bundled sample cluster
//! (examples/clusters/), a run of its plan (target `stable` on 2026-12-06) through the driver
//! on the simulated cluster, every task taking its step's estimated duration
//! ([`SimCluster::with_step_durations`]), ends within 2 % of the plan's estimate in simulated
//! time. Steps the run hands to the operator (a package repository the tool cannot name) are
//! done by the test as the operator would, taking the step's duration, and the run resumed.
use std::sync::Arc;
use std::time::Duration;

use jiff::civil::date;
use kupgrade_core::plan::packages::manager;
use kupgrade_core::plan::{Action, PlanOptions, PlanRequest, UpgradePlan};
use kupgrade_core::ports::CommandRunnerExt;
use kupgrade_core::run::{Finished, Record, Resolution, Run, RunOptions};
use kupgrade_core::skew::UpstreamPolicy;
use kupgrade_exec::driver::Driver;
use kupgrade_exec::sim::SimCluster;

const SAMPLES: &[(&str, &str)] = &[
    ("ha", include_str!("../../../examples/clusters/ha.yaml")),
    (
        "mid-upgrade",
        include_str!("../../../examples/clusters/mid-upgrade.yaml"),
    ),
    (
        "mid-upgrade-docs-order",
        include_str!("../../../examples/clusters/mid-upgrade-docs-order.yaml"),
    ),
    (
        "mixed-os",
        include_str!("../../../examples/clusters/mixed-os.yaml"),
    ),
    (
        "vendor-eks",
        include_str!("../../../examples/clusters/vendor-eks.yaml"),
    ),
    (
        "old-1.24",
        include_str!("../../../examples/clusters/old-1.24.yaml"),
    ),
    (
        "single-node",
        include_str!("../../../examples/clusters/single-node.yaml"),
    ),
];

/// Runs `plan` to the end on `sim`, doing the operator's steps by hand; the operator steps
/// done.
async fn run_to_end(sim: &SimCluster, plan: &Arc<UpgradePlan>) -> usize {
    let s = Arc::new(sim.clone());
    let driver = Driver::new(s.clone(), s.clone()).provider(s);
    let policy = Arc::new(UpstreamPolicy::new());
    let mut journal: Vec<Record> = Vec::new();
    let mut run = Run::new(plan.clone(), policy.clone(), RunOptions::default()).unwrap();
    let mut by_hand = 0;
    loop {
        let finished = driver.drive(&mut run, &mut journal).await.unwrap();
        if finished == Finished::Completed {
            return by_hand;
        }
        let task = finished
            .report()
            .and_then(|r| r.task.clone())
            .unwrap_or_else(|| panic!("halted with no task: {finished}"));
        let step = plan.steps.iter().find(|s| s.id == task.step).unwrap();
        let node = task.node.clone().expect("a node step");
        // The operator does it with their own mirror: the commands kupgrade would run for a
        // minor pkgs.k8s.io carries.
        let os = plan.node(node.as_str()).expect("a node of the plan").os;
        let apt = manager(os).expect("a package manager");
        let commands = match &step.action {
            Action::SwitchRepository { minor } => apt.switch_repository(*minor),
            Action::InstallPackages { packages, version } => apt.install(packages, version),
            _ => panic!("{task}: not a step for the operator: {finished}"),
        };
        for c in &commands {
            let out = sim.output(&node, c).await.unwrap();
            assert!(out.status.success(), "{task}: {}", c.to_shell_line());
        }
        tokio::time::advance(Duration::from_secs(step.duration_seconds)).await;
        by_hand += 1;
        run = Run::resume(
            plan.clone(),
            policy.clone(),
            RunOptions::default(),
            &journal,
        )
        .unwrap();
        let now = jiff::Timestamp::now();
        journal.extend(
            run.resolve(&task, Resolution::MarkDone, now)
                .unwrap()
                .records,
        );
    }
}

#[tokio::test(start_paused = true)]
async fn every_samples_estimate_is_the_simulated_time_of_its_run() {
    for (name, text) in SAMPLES {
        let cluster = kupgrade_core::inventory::parse(text, name).unwrap();
        // The docs-order sample breaks the policy at the start (kubeadm's documented order
        // went first): its plan tolerates that, as the plan example's flag does.
        let options = PlanOptions {
            tolerate_initial_violations: *name == "mid-upgrade-docs-order",
            ..PlanOptions::default()
        };
        let plan = Arc::new(
            PlanRequest::new("stable".parse().unwrap(), date(2026, 12, 6))
                .options(options)
                .plan(&cluster)
                .unwrap(),
        );
        let sim = SimCluster::new(cluster).with_step_durations(&plan);
        let by_hand = run_to_end(&sim, &plan).await;
        let simulated = sim.elapsed().as_secs_f64();
        let estimate = plan.estimate.total_seconds as f64;
        let off = (simulated - estimate).abs() / estimate;
        eprintln!(
            "{name}: estimate {estimate} s, simulated {simulated:.0} s ({:.2} %), lower bound {} s, {by_hand} step(s) by hand",
            off * 100.0,
            plan.estimate.lower_bound_seconds
        );
        assert!(
            off <= 0.02,
            "{name}: the estimate ({estimate} s) is {:.1} % off the simulated run ({simulated} s)",
            off * 100.0
        );
        // The old sum of durations was not the run's time: the estimate is no more than it.
        let sum: u64 = plan.steps.iter().map(|s| s.duration_seconds).sum();
        assert!(plan.estimate.total_seconds <= sum, "{name}");
        assert!(
            plan.estimate.lower_bound_seconds <= plan.estimate.total_seconds,
            "{name}"
        );
    }
}
