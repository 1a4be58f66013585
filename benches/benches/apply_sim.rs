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
//! Before measuring, it runs the upgrade once with pre-staging (the default: packages
//! downloaded before each node is cordoned) and once without (`--no-prestage`), and prints
//! each run's simulated end-to-end time and the time each node spent cordoned (cordon to
//! uncordon, from the simulator's event log: mean and longest), with the simulator's default
//! timings (an install 60 s, of which the download is 40 s).
//!
//! ```text
//! cargo bench -p kupgrade-benches --bench apply_sim
//! ```
// criterion's macros generate undocumented items.
#![allow(missing_docs)]
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kupgrade_core::ClusterState;
use kupgrade_core::plan::UpgradePlan;
use kupgrade_core::run::{Run, RunOptions};
use kupgrade_core::skew::UpstreamPolicy;
use kupgrade_exec::driver::Driver;
use kupgrade_exec::sim::{SimCluster, Timings};

const NODES: usize = 5_000;

fn setup(prestage: bool) -> (ClusterState, Arc<UpgradePlan>) {
    let cluster = kupgrade_benches::cluster(NODES, 42);
    let plan = kupgrade_benches::simulated_plan(&cluster, prestage);
    (cluster, Arc::new(plan))
}

/// One whole upgrade; returns the simulated time it took.
async fn upgrade(cluster: &ClusterState, plan: &Arc<UpgradePlan>) -> Duration {
    upgraded(cluster, plan).await.1
}

/// One whole upgrade; returns the simulated cluster at its end and the simulated time it took
/// (read in the runtime: its clock is the virtual one).
async fn upgraded(cluster: &ClusterState, plan: &Arc<UpgradePlan>) -> (SimCluster, Duration) {
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
    let elapsed = sim.elapsed();
    (SimCluster::clone(&sim), elapsed)
}

/// The mean and longest time a node spent cordoned (seconds from each cordon to the node's
/// next uncordon in the event log, summed per node).
fn cordoned(sim: &SimCluster) -> (f64, f64) {
    let state = sim.snapshot();
    let mut since: HashMap<&str, u64> = HashMap::new();
    let mut out: HashMap<&str, u64> = HashMap::new();
    for h in &state.history {
        match h.what.as_str() {
            "cordon" => {
                since.insert(h.node.as_str(), h.at_ms);
            }
            "uncordon" => {
                if let Some(at) = since.remove(h.node.as_str()) {
                    *out.entry(h.node.as_str()).or_default() += h.at_ms - at;
                }
            }
            _ => {}
        }
    }
    let longest = out.values().copied().max().unwrap_or(0) as f64 / 1000.0;
    let mean = out.values().sum::<u64>() as f64 / 1000.0 / out.len().max(1) as f64;
    (mean, longest)
}

fn bench(c: &mut Criterion) {
    let (cluster, plan) = setup(true);
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
    // With and without pre-staging: the end-to-end time and each node's time cordoned.
    let (_, unstaged) = setup(false);
    for (name, plan) in [("pre-staged", &plan), ("--no-prestage", &unstaged)] {
        let (sim, elapsed) = runtime.block_on(upgraded(&cluster, plan));
        let (mean, longest) = cordoned(&sim);
        eprintln!(
            "{name}: {:.0} s ({:.2} h) end to end; a node cordoned {mean:.0} s on average, {longest:.0} s at most",
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() / 3600.0
        );
    }
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
