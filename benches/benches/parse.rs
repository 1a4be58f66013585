//! Reading input files when they are hostile or badly wrong: an inventory of 100,000 `[`, a
//! rules file of the same, and an inventory whose 16,000 entries each carry a bad version (every
//! problem is reported, each with its line and column). A valid 16,000-node inventory is the
//! yardstick. Each answer must take time in proportion to the file, not to its square.
//! Run: `cargo bench -p kupgrade-benches --bench parse`.
#![allow(missing_docs)]

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kupgrade_core::inventory;
use kupgrade_core::skew::rules::RulePolicy;

const ENTRIES: usize = 16_000;

/// An inventory with one control-plane node and `workers` workers, each worker's kubelet
/// written as `kubelet` (`v1.29.1` for a valid file, `1.29.x` for a bad one).
fn inventory_text(workers: usize, kubelet: &str) -> String {
    let mut s = String::from(
        "nodes:\n  - name: cp-1\n    roles: [control-plane]\n    versions: { kubelet: v1.29.1, kube-apiserver: v1.29.1 }\n",
    );
    for i in 0..workers {
        writeln!(
            s,
            "  - name: w-{i}\n    labels: {{ topology.kubernetes.io/zone: z-{} }}\n    versions: {{ kubelet: {kubelet} }}",
            i % 3
        )
        .unwrap();
    }
    s
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    group.sample_size(10);
    let brackets = "[".repeat(100_000);
    group.bench_function("inventory of 100,000 [", |b| {
        b.iter(|| inventory::parse(black_box(&brackets), "deep.yaml").unwrap_err())
    });
    group.bench_function("rules file of 100,000 [", |b| {
        b.iter(|| RulePolicy::parse(black_box(&brackets), "deep.yaml").unwrap_err())
    });
    let bad = inventory_text(ENTRIES, "1.29.x");
    let problems = inventory::parse(&bad, "bad.yaml")
        .unwrap_err()
        .problems
        .len();
    assert_eq!(problems, ENTRIES);
    group.bench_function("inventory with 16,000 bad entries", |b| {
        b.iter(|| inventory::parse(black_box(&bad), "bad.yaml").unwrap_err())
    });
    let good = inventory_text(ENTRIES, "v1.29.1");
    group.bench_function("valid inventory of 16,000 workers", |b| {
        b.iter(|| inventory::parse(black_box(&good), "good.yaml").unwrap())
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
