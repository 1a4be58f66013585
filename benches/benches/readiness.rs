//! Readiness at scale: the whole catalogue on a 9-hop plan (1.27 to 1.36) of 5,000 nodes with
//! 100,000 pods and 2,000 PodDisruptionBudgets (20 of them allowing no disruption now),
//! evidence already gathered (workloads, API usage, every node's runtime and cgroup version);
//! and `--batch auto` planning 65,000 nodes (`kupgrade_benches::cluster`, three hops) whose
//! batches are cut from 1,000,000 pods and 20,000 budgets (one allowing none now: its nodes go
//! alone), the drain model's index included; beside it, the same plan with fixed batches of
//! 280 (about as many drains as auto makes) and the drain model's index alone, to tell the
//! planner's share from the batch cutting's.
//!
//! Targets (median): the catalogue under 200 ms; `--batch auto` under 2 s. Run:
//!
//! ```text
//! cargo bench -p kupgrade-benches --bench readiness -- --warm-up-time 1 --measurement-time 5
//! ```
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use jiff::civil::date;
use kupgrade_benches::{cluster, cluster_at, three_hops, workloads};
use kupgrade_core::plan::{BatchSize, PlanOptions, PlanRequest, Target, UpgradePlan};
use kupgrade_core::ports::DrainOptions;
use kupgrade_core::readiness::{
    ApiObject, Catalogue, CgroupFacts, DrainModel, Evidence, Gathered, NodeFacts,
};
use kupgrade_core::{ClusterState, Minor};

/// Evidence for `state`: `pods` pods on its workers, API writers of 1,000 objects (a tenth
/// through APIs the plan's hops remove), each node's runtime and cgroup version.
fn evidence(state: &ClusterState, pods: usize) -> Evidence {
    let workers = state.nodes.len() - 3;
    let mut e = Evidence::default();
    e.workloads = Gathered::Found(workloads(workers, pods, 20, 7));
    e.api_requests = Gathered::Found(vec![]);
    e.api_manifests = Gathered::Found(vec![]);
    e.api_writers = Gathered::Found(
        (0..1_000)
            .map(|i| ApiObject {
                api_version: if i % 10 == 0 {
                    "flowcontrol.apiserver.k8s.io/v1beta2".into()
                } else {
                    "apps/v1".into()
                },
                kind: if i % 10 == 0 {
                    "FlowSchema"
                } else {
                    "Deployment"
                }
                .into(),
                namespace: (i % 10 != 0).then(|| format!("team-{}", i % 40)),
                name: format!("object-{i}"),
                via: "kubectl-client-side-apply".into(),
            })
            .collect(),
    );
    e.webhooks = Gathered::Found(vec![]);
    e.api_services = Gathered::Found(vec![]);
    e.crds = Gathered::Found(vec![]);
    e.nodes = state
        .nodes
        .iter()
        .map(|n| {
            let mut f = NodeFacts::new(n.name.clone());
            f.runtime = Gathered::Found("containerd://1.7.22".into());
            f.cgroup = Gathered::Found(CgroupFacts {
                fs_type: "cgroup2fs".into(),
                fail_cgroup_v1: None,
            });
            f
        })
        .collect();
    e
}

fn catalogue(c: &mut Criterion) {
    let state = cluster_at(Minor::new(1, 27), 5_000);
    let plan: UpgradePlan = PlanRequest::new(Target::Minor(Minor::new(1, 36)), date(2026, 9, 1))
        .options(PlanOptions {
            batch: BatchSize::Percent(10),
            allow_unsupported_target: true,
            ..PlanOptions::default()
        })
        .plan(&state)
        .expect("the fixture has a plan");
    assert_eq!(plan.hops.len(), 9, "nine minor hops");
    let evidence = evidence(&state, 100_000);
    assert_eq!(
        evidence.workloads.found().map(|w| w.budgets.len()),
        Some(2_000)
    );
    let mut group = c.benchmark_group("readiness");
    group.sample_size(20);
    group.throughput(Throughput::Elements(100_000));
    group.bench_with_input(
        BenchmarkId::new("catalogue, 9 hops, 100,000 pods", 5_000),
        &(plan, evidence),
        |b, (plan, evidence)| b.iter(|| Catalogue::embedded().evaluate(black_box(plan), evidence)),
    );
    group.finish();
}

fn auto_batches(c: &mut Criterion) {
    let state = cluster(65_000, 42);
    let workers = state.nodes.iter().filter(|n| !n.is_control_plane()).count();
    let w = workloads(workers, 1_000_000, 1, 7);
    let plan = |state: &ClusterState| {
        three_hops(BatchSize::Auto)
            .workloads(&w)
            .plan(state)
            .expect("the fixture has a plan")
    };
    let p = plan(&state);
    assert_eq!(p.hops.len(), 3, "three minor hops");
    let mut group = c.benchmark_group("readiness");
    group.sample_size(10);
    let fixed = |state: &ClusterState| {
        three_hops(BatchSize::Count(280))
            .plan(state)
            .expect("the fixture has a plan")
    };
    group.bench_with_input(
        BenchmarkId::new("plan, fixed batches of 280 (as many drains)", 65_000),
        &state,
        |b, s| b.iter(|| fixed(black_box(s))),
    );
    group.bench_function("drain model and demands, 1,000,000 pods", |b| {
        b.iter(|| {
            let m = DrainModel::new(black_box(&w), &DrainOptions::default());
            black_box(m.demands())
        })
    });
    group.throughput(Throughput::Elements(1_000_000));
    group.bench_with_input(
        BenchmarkId::new("plan --batch auto, 1,000,000 pods", 65_000),
        &state,
        |b, s| b.iter(|| plan(black_box(s))),
    );
    group.finish();
}

criterion_group!(benches, catalogue, auto_batches);
criterion_main!(benches);
