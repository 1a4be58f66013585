//! Version parsing: the strings kupgrade reads from inventories, `kubectl get nodes` and image
//! tags (plain, pre-release, vendor builds, build metadata, etcd tags), one benchmark each and
//! one for the whole set. Run: `cargo bench -p kupgrade-benches --bench version`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kupgrade_benches::TYPICAL_VERSIONS;
use kupgrade_core::{KubeVersion, Minor};

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for text in TYPICAL_VERSIONS {
        group.bench_function(text, |b| b.iter(|| KubeVersion::parse(black_box(text))));
    }
    group.throughput(Throughput::Elements(TYPICAL_VERSIONS.len() as u64));
    group.bench_function("all typical", |b| {
        b.iter(|| {
            for text in TYPICAL_VERSIONS {
                black_box(KubeVersion::parse(black_box(text)).ok());
            }
        })
    });
    group.finish();
    c.bench_function("parse minor 1.31", |b| {
        b.iter(|| Minor::parse(black_box("1.31")))
    });
    let versions: Vec<KubeVersion> = TYPICAL_VERSIONS
        .iter()
        .map(|t| kupgrade_benches::version(t))
        .collect();
    c.bench_function("display all typical", |b| {
        b.iter(|| {
            for v in &versions {
                black_box(v.to_string());
            }
        })
    });
    c.bench_function("sort all typical", |b| {
        b.iter(|| {
            let mut v = versions.clone();
            v.sort();
            black_box(v)
        })
    });
}

criterion_group!(benches, parse);
criterion_main!(benches);
