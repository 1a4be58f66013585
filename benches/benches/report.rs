//! The HTML report of the 65,000-node plan (the `plan` bench's fixture and request: 1.31 over
//! three minor hops to 1.34, workers in batches of 10 %), with the starting state, so the
//! version band is replayed step by step. Targets: under 2 s (median) and under 20 MB. Run:
//!
//! ```text
//! cargo bench -p kupgrade-benches --bench report -- --warm-up-time 2 --measurement-time 20
//! ```
//!
//! The page's size is printed before the measurement.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use kupgrade_benches::{cluster, three_hops};
use kupgrade_core::ClusterState;
use kupgrade_core::plan::render::{HtmlExtras, html};
use kupgrade_core::plan::{BatchSize, UpgradePlan};

const NODES: usize = 65_000;

fn plan(state: &ClusterState) -> UpgradePlan {
    three_hops(BatchSize::Percent(10))
        .plan(state)
        .expect("the fixture has a plan")
}

fn page(plan: &UpgradePlan, state: &ClusterState) -> String {
    let mut out = String::new();
    let extras = HtmlExtras {
        start: Some(state),
        readiness: None,
    };
    html(plan, extras, &mut out).expect("a String takes every write");
    out
}

fn reports(c: &mut Criterion) {
    let state = cluster(NODES, 42);
    let p = plan(&state);
    let size = page(&p, &state).len();
    println!(
        "report of {NODES} nodes, {} steps: {size} bytes ({:.1} MB)",
        p.steps.len(),
        size as f64 / 1e6
    );
    assert!(size < 20_000_000, "the page is {size} bytes, over 20 MB");
    let mut group = c.benchmark_group("report");
    group.sample_size(10);
    group.throughput(Throughput::Elements(NODES as u64));
    group.bench_with_input(BenchmarkId::new("html", NODES), &p, |b, p| {
        b.iter(|| page(black_box(p), &state))
    });
    group.finish();
}

criterion_group!(benches, reports);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
