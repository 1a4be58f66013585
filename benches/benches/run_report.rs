//! The run report (`apply --report`) of a simulated 5,000-node upgrade (the `apply_sim`
//! bench's fixture and plan), from its whole journal: reading the records into a
//! `RunSummary`, and rendering the page from it. `apply --report` rewrites the page at most
//! every 5 seconds and no more often than ten times a write takes, so the render time is what
//! a write costs the run. Run:
//!
//! ```text
//! cargo bench -p kupgrade-benches --bench run_report -- --warm-up-time 2 --measurement-time 20
//! ```
//!
//! The journal's size and the page's are printed before the measurement.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kupgrade_core::plan::UpgradePlan;
use kupgrade_core::plan::render::{RunHtmlExtras, html_run};
use kupgrade_core::run::{Record, Run, RunOptions, RunSummary};
use kupgrade_core::skew::UpstreamPolicy;
use kupgrade_exec::driver::Driver;
use kupgrade_exec::sim::{SimCluster, Timings};

const NODES: usize = 5_000;

/// The plan and the journal of its whole run on the simulated cluster, in virtual time.
fn journal() -> (Arc<UpgradePlan>, Vec<Record>) {
    let cluster = kupgrade_benches::cluster(NODES, 42);
    let plan = Arc::new(kupgrade_benches::simulated_plan(&cluster, true));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let records = runtime.block_on(async {
        let sim = Arc::new(SimCluster::new(cluster).with_timings(Timings::default()));
        let mut run = Run::new(
            plan.clone(),
            Arc::new(UpstreamPolicy::new()),
            RunOptions::default(),
        )
        .expect("a valid plan");
        let mut records = Vec::new();
        let outcome = Driver::new(sim.clone(), sim)
            .drive(&mut run, &mut records)
            .await
            .expect("the driver runs");
        assert!(outcome.is_completed(), "{outcome}");
        records
    });
    (plan, records)
}

fn page(plan: &UpgradePlan, summary: &RunSummary) -> String {
    let mut out = String::new();
    let extras = RunHtmlExtras {
        resume: Some("cargo run --example apply -- --journal j --resume"),
        readiness: None,
    };
    html_run(plan, summary, extras, &mut out).expect("a String takes every write");
    out
}

fn bench(c: &mut Criterion) {
    let (plan, records) = journal();
    let summary = RunSummary::from_records(&plan, &records);
    let size = page(&plan, &summary).len();
    eprintln!(
        "run report of {NODES} nodes, {} steps, {} journal records: {size} bytes ({:.1} MB)",
        plan.steps.len(),
        records.len(),
        size as f64 / 1e6
    );
    let mut group = c.benchmark_group("run_report");
    group.sample_size(10);
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_with_input(
        BenchmarkId::new("summary", NODES),
        &records,
        |b, records| b.iter(|| RunSummary::from_records(&plan, black_box(records))),
    );
    group.bench_with_input(BenchmarkId::new("html", NODES), &summary, |b, s| {
        b.iter(|| page(&plan, black_box(s)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
