//! Clusters, plans and runners the driver tests share: the HA sample and a two-node cluster,
//! the HA sample's plan to 1.29 with gates or hooks inserted, a sped-up simulated cluster and
//! one with the sample workload (a pod of which may start crash-looping), a runner that sends
//! some commands elsewhere than the simulated nodes, per-node sandboxes, and driving a run to
//! its end.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use jiff::civil::date;
use kupgrade_core::ClusterState;
use kupgrade_core::NodeName;
use kupgrade_core::gate::{Gate, GateCheck, RegressionCheck};
use kupgrade_core::plan::{Action, PlanOptions, PlanRequest, UpgradePlan};
use kupgrade_core::ports::{
    CommandOutput, CommandRunner, CommandSpec, LineSink, PodRef, RunnerError, Tracking,
};
use kupgrade_core::run::{Event, Finished, Record, StopReason, StopReport};
use kupgrade_core::testing::upstream_run;
use kupgrade_exec::driver::{Driver, JournalSink};
use kupgrade_exec::report::{ReportingJournal, RunReport};
use kupgrade_exec::sim::{OpPhase, SimCluster, Workload};

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

/// [`TWO_NODES`], parsed, and its plan to 1.30 (planned on 2025-03-01).
pub fn two_nodes_plan() -> (ClusterState, Arc<UpgradePlan>) {
    let cluster = kupgrade_core::inventory::parse(TWO_NODES, "cluster.yaml").unwrap();
    let plan = PlanRequest::new("1.30".parse().unwrap(), date(2025, 3, 1))
        .plan(&cluster)
        .unwrap();
    (cluster, Arc::new(plan))
}

/// The HA sample, parsed.
pub fn ha() -> ClusterState {
    kupgrade_core::inventory::parse(HA, "ha.yaml").unwrap()
}

/// The HA sample's plan to 1.29 (planned on 2025-11-01, unsupported targets allowed), once
/// `insert` has put its gates or hooks in.
pub fn ha_plan(insert: impl FnOnce(&mut UpgradePlan)) -> Arc<UpgradePlan> {
    ha_plan_to("1.29", insert)
}

/// [`ha_plan`] to `target`.
pub fn ha_plan_to(target: &str, insert: impl FnOnce(&mut UpgradePlan)) -> Arc<UpgradePlan> {
    let options = PlanOptions {
        allow_unsupported_target: true,
        ..PlanOptions::default()
    };
    let mut plan = PlanRequest::new(target.parse().unwrap(), date(2025, 11, 1))
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

/// The HA sample with the sample workload (pods, budgets), on the simulated clock.
pub fn sample_sim() -> SimCluster {
    SimCluster::new(ha()).with_workload(&Workload::sample())
}

/// [`sample_sim`], in which a pod away from the first node that `plan` drains starts
/// crash-looping (3 restarts) when a node is first uncordoned. Returns the sim and that pod.
pub fn troubled_sim(plan: &UpgradePlan) -> (SimCluster, PodRef) {
    let sim = sample_sim();
    let first_drained = plan
        .steps
        .iter()
        .find(|s| matches!(s.action, Action::Drain { .. }))
        .map(|s| s.nodes.as_slice()[0].clone())
        .unwrap();
    let victim = sim
        .cluster()
        .nodes
        .iter()
        .filter(|n| n.name != first_drained && !n.is_control_plane())
        .flat_map(|n| sim.pods_on(&n.name))
        .next()
        .expect("a pod elsewhere");
    let meddler = sim.clone();
    let v = victim.clone();
    let once = AtomicBool::new(false);
    let sim = sim.on_op(move |p| {
        if p.phase == OpPhase::After && p.what == "uncordon" && !once.swap(true, Ordering::SeqCst) {
            meddler.set_pod_trouble(&v, true, 3);
        }
    });
    (sim, victim)
}

/// A gate `name` with `check`, giving up after `timeout` seconds, evaluated every 5 seconds.
pub fn gate(name: &str, check: GateCheck, timeout: u64) -> Gate {
    let mut g = Gate::new(name, check);
    g.timeout_seconds = timeout;
    g.interval_seconds = 5;
    g
}

/// The regression gate `pods` on the pods of the `default` namespace (120 seconds).
pub fn pods_gate() -> Gate {
    let check = GateCheck::Regression(RegressionCheck {
        namespace: Some("default".into()),
        selector: None,
    });
    gate("pods", check, 120)
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

impl Outcome {
    /// The lines the run's commands printed, each after its task.
    pub fn lines(&self) -> Vec<String> {
        (self.events.iter())
            .filter_map(|e| match e {
                Event::CommandOutput { task, line, .. } => Some(format!("{task}: {line}")),
                _ => None,
            })
            .collect()
    }
}

/// Drives `plan`'s run to its end with `driver` (its events to a channel with room for every
/// line), resuming from and recording into `journal`.
pub async fn drive_to_end(
    driver: Driver,
    plan: &Arc<UpgradePlan>,
    journal: &mut Vec<Record>,
) -> Outcome {
    drive_reporting(driver, plan, journal, None).await
}

/// [`drive_to_end`], each record also given to `report` when there is one.
pub async fn drive_reporting(
    driver: Driver,
    plan: &Arc<UpgradePlan>,
    journal: &mut Vec<Record>,
    report: Option<&mut RunReport>,
) -> Outcome {
    let (tx, mut rx) = kupgrade_exec::events::event_channel(1 << 20);
    let mut run = upstream_run(plan, journal);
    let driver = driver.events(tx);
    let finished = match report {
        Some(r) => {
            let mut sink = ReportingJournal::new(journal, r);
            driver.drive(&mut run, &mut sink).await
        }
        None => {
            driver
                .drive(&mut run, journal as &mut dyn JournalSink)
                .await
        }
    }
    .unwrap();
    Outcome {
        finished,
        events: rx.take_queued(),
    }
}

/// The report of a run that halted for `reason`.
pub fn halted(finished: &Finished, reason: StopReason) -> &StopReport {
    let report = finished.report().expect("halted");
    assert_eq!(report.reason, reason, "{report}");
    report
}

/// The report of a run that halted for `reason` at a task whose name ends with `step`, and
/// that task's name.
pub fn halted_at<'f>(
    finished: &'f Finished,
    reason: StopReason,
    step: &str,
) -> (&'f StopReport, String) {
    let report = halted(finished, reason);
    let task = (report.task.as_ref())
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(task.ends_with(step), "not halted at …{step}: {report}");
    (report, task)
}
