//! A simulated 5,000-node upgrade driven end to end: the run state machine, the async driver
//! and the simulated cluster, in virtual time (tokio's paused clock: hours of simulated
//! upgrade, no sleeping). Target: under 2 s of wall time per upgrade.
//!
//! The cluster is the benches' deterministic 5,000-node fixture (control plane at 1.31, workers
//! up to three minors behind); the plan takes it to the latest 1.32 with batches of 5 % of the
//! workers, and the driver checks the live (simulated) cluster, the skew policy and every
//! step's precondition before each step, as it would on a real cluster. The journal is kept in
//! memory (a file would add one fsync per record).
//!
//! ```text
//! cargo bench -p kupgrade-benches --bench apply_sim
//! ```
// criterion's macros generate undocumented items.
#![allow(missing_docs)]
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kupgrade_core::ClusterState;
use kupgrade_core::plan::{PlanOptions, PlanRequest, UpgradePlan};
use kupgrade_core::run::{Run, RunOptions};
use kupgrade_core::skew::UpstreamPolicy;
use kupgrade_exec::driver::Driver;
use kupgrade_exec::sim::{SimCluster, Timings};

const NODES: usize = 5_000;

fn setup() -> (ClusterState, Arc<UpgradePlan>) {
    let cluster = kupgrade_benches::cluster(NODES, 42);
    let plan = PlanRequest::new(
        "1.32".parse().expect("target"),
        jiff::civil::date(2025, 6, 1),
    )
    .options(PlanOptions {
        batch: "5%".parse().expect("batch"),
        ..PlanOptions::default()
    })
    .plan(&cluster)
    .expect("the fixture plans");
    (cluster, Arc::new(plan))
}

/// One whole upgrade; returns the simulated time it took.
async fn upgrade(cluster: &ClusterState, plan: &Arc<UpgradePlan>) -> Duration {
    let sim = Arc::new(SimCluster::new(cluster.clone()).with_timings(Timings::default()));
    let mut run = Run::new(
        plan.clone(),
        Arc::new(UpstreamPolicy::new()),
        RunOptions::default(),
    )
    .expect("a valid plan");
    let outcome = Driver::new(sim.clone(), sim.clone())
        .drive(&mut run, &mut Vec::new())
        .await
        .expect("the driver runs");
    assert!(outcome.is_completed(), "{outcome}");
    sim.elapsed()
}

fn bench(c: &mut Criterion) {
    let (cluster, plan) = setup();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    // Check once that it really upgrades every node, and say how big the job is.
    let simulated = runtime.block_on(upgrade(&cluster, &plan));
    let tasks: usize = plan.steps.iter().map(|s| s.nodes.len().max(1)).sum();
    eprintln!(
        "{NODES} nodes, {} steps, {tasks} tasks, {} hop(s), {:.1} h simulated per upgrade",
        plan.steps.len(),
        plan.hops.len(),
        simulated.as_secs_f64() / 3600.0
    );
    let mut group = c.benchmark_group("apply_sim");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("5000_nodes_end_to_end", |b| {
        b.iter(|| runtime.block_on(upgrade(&cluster, &plan)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
