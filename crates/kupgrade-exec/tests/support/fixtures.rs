//! Clusters, plans and runners the driver tests share: the HA sample and a two-node cluster,
//! the HA sample's plan to 1.29 with gates or hooks inserted, a sped-up simulated cluster, a
//! runner that sends some commands elsewhere than the simulated nodes, and per-node sandboxes.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use jiff::civil::date;
use kupgrade_core::ClusterState;
use kupgrade_core::NodeName;
use kupgrade_core::plan::{PlanOptions, PlanRequest, UpgradePlan};
use kupgrade_core::ports::{
    CommandOutput, CommandRunner, CommandSpec, LineSink, RunnerError, Tracking,
};
use kupgrade_core::run::{Event, Finished, Record};
use kupgrade_core::testing::upstream_run;
use kupgrade_exec::driver::{Driver, JournalSink};
use kupgrade_exec::sim::SimCluster;

/// The HA sample (3 control-plane nodes, 6 workers at 1.28).
pub const HA: &str = include_str!("../../../../examples/clusters/ha.yaml");

/// One control-plane node and one worker, at v1.29.10.
pub const TWO_NODES: &str = r#"
addons: { kube-proxy: v1.29.10, coredns: v1.11.1 }
nodes:
  - name: cp-1
    roles: [control-plane]
    versions: { kubelet: v1.29.10, kubeadm: v1.29.10, kubectl: v1.29.10,
                kube-apiserver: v1.29.10, kube-controller-manager: v1.29.10,
                kube-scheduler: v1.29.10, etcd: 3.5.10-0 }
  - name: w-1
    versions: { kubelet: v1.29.10, kubeadm: v1.29.10, kubectl: v1.29.10 }
"#;

/// The HA sample, parsed.
pub fn ha() -> ClusterState {
    kupgrade_core::inventory::parse(HA, "ha.yaml").unwrap()
}

/// The HA sample's plan to 1.29 (planned on 2025-11-01, unsupported targets allowed), once
/// `insert` has put its gates or hooks in.
pub fn ha_plan(insert: impl FnOnce(&mut UpgradePlan)) -> Arc<UpgradePlan> {
    let options = PlanOptions {
        allow_unsupported_target: true,
        ..PlanOptions::default()
    };
    let mut plan = PlanRequest::new("1.29".parse().unwrap(), date(2025, 11, 1))
        .options(options)
        .plan(&ha())
        .unwrap();
    insert(&mut plan);
    Arc::new(plan)
}

/// The HA sample, its simulated time a million times faster than the real clock.
pub fn fast_sim() -> SimCluster {
    SimCluster::new(ha()).with_speed(1_000_000.0)
}

/// Sends the commands `pick` chooses to `picked` (a real runner), everything else to the
/// simulated nodes, tracking included.
pub struct Split<R> {
    pub pick: fn(&CommandSpec) -> bool,
    pub picked: R,
    pub sim: SimCluster,
}

#[async_trait]
impl<R: CommandRunner> CommandRunner for Split<R> {
    async fn run_tracked(
        &self,
        node: &NodeName,
        spec: &CommandSpec,
        lines: &LineSink,
        tracking: &Tracking,
    ) -> Result<CommandOutput, RunnerError> {
        if (self.pick)(spec) {
            self.picked.run_tracked(node, spec, lines, tracking).await
        } else {
            self.sim.run_tracked(node, spec, lines, tracking).await
        }
    }
}

/// Creates `root/NODE/bin` for each of `nodes` (the per-node sandboxes of
/// `NodeEnv::sandbox`), returning each node with its `bin`.
pub fn node_bins<'n>(root: &Path, nodes: &[&'n str]) -> Vec<(&'n str, PathBuf)> {
    (nodes.iter())
        .map(|&node| {
            let bin = root.join(node).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            (node, bin)
        })
        .collect()
}

/// How a driven run finished, and every event it sent.
pub struct Outcome {
    pub finished: Finished,
    pub events: Vec<Event>,
}

/// Drives `plan`'s run to its end with `driver` (its events to a channel with room for every
/// line), resuming from and recording into `journal`.
pub async fn drive_to_end(
    driver: Driver,
    plan: &Arc<UpgradePlan>,
    journal: &mut Vec<Record>,
) -> Outcome {
    let (tx, mut rx) = kupgrade_exec::events::event_channel(1 << 20);
    let mut run = upstream_run(plan, journal);
    let finished = driver
        .events(tx)
        .drive(&mut run, journal as &mut dyn JournalSink)
        .await
        .unwrap();
    Outcome {
        finished,
        events: rx.take_queued(),
    }
}
