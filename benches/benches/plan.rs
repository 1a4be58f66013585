//! Planning large clusters: 5,000, 6,500 and 65,000 nodes (GKE's ceiling) from 1.31 over three
//! minor hops to 1.34, workers after every hop in batches of 10 %, every intermediate state
//! checked (incrementally). The fixture is `kupgrade_benches::cluster`: 3 to 5 control-plane
//! nodes, workers lagging 0 to 3 minors, some kube-proxy pods mid-rollout.
//!
//! Targets at 65,000 nodes: under 100 ms (median) and under 500 MB peak memory; the time at
//! 65,000 over the time at 6,500 at most 12 (linear). Run:
//!
//! ```text
//! cargo bench -p kupgrade-benches --bench plan -- --warm-up-time 2 --measurement-time 10
//! ```
//!
//! A fourth case gives every node of the 65,000 its own `kubernetes.io/hostname` label, as
//! the kubelet does.
//!
//! Peak memory of one plan of 65,000 nodes (fixture included), with the bench binary in its
//! run-once mode (`KUPGRADE_PLAN_HOSTNAMES=1` adds the hostname labels):
//!
//! ```text
//! cargo bench -p kupgrade-benches --bench plan --no-run
//! KUPGRADE_PLAN_ONCE=65000 /usr/bin/time -v target/release/deps/plan-<hash>
//! ```
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use kupgrade_benches::{cluster, three_hops, with_hostnames};
use kupgrade_core::ClusterState;
use kupgrade_core::plan::{BatchSize, UpgradePlan};

fn plan(state: &ClusterState) -> UpgradePlan {
    three_hops(BatchSize::Percent(10))
        .plan(state)
        .expect("the fixture has a plan")
}

fn plans(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan");
    group.sample_size(20);
    for nodes in [5_000usize, 6_500, 65_000] {
        let state = cluster(nodes, 42);
        let p = plan(&state);
        assert_eq!(p.hops.len(), 3, "three minor hops");
        group.throughput(Throughput::Elements(nodes as u64));
        group.bench_with_input(BenchmarkId::new("three hops", nodes), &state, |b, s| {
            b.iter(|| plan(black_box(s)))
        });
    }
    // As the kubelet labels nodes: every node has its own `kubernetes.io/hostname`, which the
    // upstream policy does not read (its `label_keys`), so nodes still group into few classes.
    let state = with_hostnames(cluster(65_000, 42));
    group.throughput(Throughput::Elements(65_000));
    group.bench_with_input(
        BenchmarkId::new("three hops, hostname labels", 65_000),
        &state,
        |b, s| b.iter(|| plan(black_box(s))),
    );
    group.finish();
}

criterion_group!(benches, plans);

/// This thread's time on the CPU so far (Linux `schedstat`), to measure on a busy machine.
fn cpu_time() -> Option<std::time::Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(std::time::Duration::from_nanos(ns))
}

fn main() {
    // Run once and report, for `/usr/bin/time -v` (peak memory).
    if let Some(nodes) = std::env::var("KUPGRADE_PLAN_ONCE")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        let mut state = cluster(nodes, 42);
        if std::env::var_os("KUPGRADE_PLAN_HOSTNAMES").is_some() {
            state = with_hostnames(state);
        }
        let (started, cpu) = (std::time::Instant::now(), cpu_time());
        let p = plan(&state);
        let took = started.elapsed();
        let cpu = cpu_time().zip(cpu).map(|(b, a)| b.saturating_sub(a));
        println!(
            "{nodes} nodes planned in {took:.1?} wall, {} on the CPU: {} hops, {} steps, {} drains, at most {} nodes unavailable at once",
            cpu.map_or("?".into(), |c| format!("{c:.1?}")),
            p.hops.len(),
            p.estimate.steps,
            p.estimate.drains,
            p.estimate.max_unavailable
        );
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
