//! Skew evaluation of large clusters: `UpstreamPolicy::evaluate` on a 5,000-node and a
//! 65,000-node cluster (3 to 5 control-plane nodes, workers lagging 0 to 3 minors; see
//! `kupgrade_benches::cluster`), and the sample rules file on the same states.
//!
//! Target: under 5 ms median at 65,000 nodes for the upstream policy on the project's 2-core
//! machine (from 16,384 nodes the policy uses the machine's threads: two here). The scan waits
//! for memory, so figures vary from run to run; measure for long enough:
//! `cargo bench -p kupgrade-benches --bench skew -- --warm-up-time 2 --measurement-time 10`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kupgrade_benches::cluster;
use kupgrade_core::skew::rules::RulePolicy;
use kupgrade_core::skew::{SkewPolicy, Summary, UpstreamPolicy};

const STRICT: &str = include_str!("../../examples/policies/strict.yaml");

fn skew(c: &mut Criterion) {
    let upstream = UpstreamPolicy::new();
    let strict = RulePolicy::parse(STRICT, "strict.yaml").expect("the sample parses");
    let states: Vec<_> = [5_000usize, 65_000]
        .into_iter()
        .map(|n| (n, cluster(n, 42)))
        .collect();
    let mut group = c.benchmark_group("evaluate");
    for (nodes, state) in &states {
        group.throughput(Throughput::Elements(*nodes as u64));
        group.bench_with_input(BenchmarkId::new("upstream", nodes), state, |b, s| {
            b.iter(|| upstream.evaluate(black_box(s)))
        });
        group.bench_with_input(BenchmarkId::new("summary", nodes), state, |b, s| {
            b.iter(|| Summary::of(black_box(s)))
        });
    }
    group.finish();
    // The sample rules flag most of the fixture's lagging workers (tens of thousands of
    // violations at 65,000 nodes): fewer samples keep the run short.
    let mut group = c.benchmark_group("evaluate strict rules");
    group.sample_size(20);
    for (nodes, state) in &states {
        group.throughput(Throughput::Elements(*nodes as u64));
        group.bench_with_input(BenchmarkId::from_parameter(nodes), state, |b, s| {
            b.iter(|| strict.evaluate(black_box(s)))
        });
    }
    group.finish();
}

criterion_group!(benches, skew);
criterion_main!(benches);
