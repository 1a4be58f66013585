//! Pre-staging in the simulator's event log: packages are downloaded and control-plane images
//! pulled before a node is cordoned, never between its cordon and its uncordon.
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::civil::date;
use kupgrade_core::plan::{PlanOptions, PlanRequest, UpgradePlan};
use kupgrade_core::run::Finished;
use kupgrade_exec::driver::Driver;
use kupgrade_exec::sim::SimCluster;
use support::fixtures::{drive_to_end, ha};

/// The HA sample (Debian and RHEL-like nodes, several hops), planned to `stable` on a fixed
/// date, with or without pre-staging.
fn plan(prestage: bool) -> (kupgrade_core::ClusterState, Arc<UpgradePlan>) {
    let cluster = ha();
    let plan = PlanRequest::new("stable".parse().unwrap(), date(2026, 12, 6))
        .options(PlanOptions {
            prestage,
            ..PlanOptions::default()
        })
        .plan(&cluster)
        .unwrap();
    (cluster, Arc::new(plan))
}

/// Runs `plan` to the end on `sim`.
async fn run(sim: &SimCluster, plan: &Arc<UpgradePlan>) {
    let s = Arc::new(sim.clone());
    let driver = Driver::new(s.clone(), s.clone()).provider(s);
    let finished = drive_to_end(driver, plan, &mut Vec::new()).await.finished;
    assert_eq!(finished, Finished::Completed, "{finished}");
}

/// Every worker's and control-plane node's cordon-to-uncordon window in the simulator's event
/// log holds no download or image pull, and lasts at most the sum of the durations of the
/// steps inside it: cordon, drain, the install (from the cache), `kubeadm upgrade node` where
/// it is inside, the kubelet's restart, the wait for Ready, uncordon. The drain is inside
/// cordon..uncordon, so the issue's "install + restart + wait" is read as "the in-window
/// steps", with the downloads and pulls outside. Each task takes its step's estimated
/// duration ([`SimCluster::with_step_durations`]); the simulator records a command's effect
/// when it ends, and its own polls add up to five seconds a step.
#[tokio::test(start_paused = true)]
async fn windows_hold_no_download_and_last_no_longer_than_their_steps() {
    let (cluster, plan) = plan(true);
    assert!(plan.steps.iter().any(|s| s.action.is_prestage()));
    let sim = SimCluster::new(cluster).with_step_durations(&plan);
    run(&sim, &plan).await;
    let state = sim.snapshot();
    assert!(state.problems.is_empty(), "{:?}", state.problems);
    let step_of = |task: &str| {
        let id = task.split(" on ").next().unwrap_or(task);
        plan.steps.iter().find(|s| s.id.as_str() == id)
    };
    // Per node: its open window (the cordon's time and the step ids inside) and the windows.
    let mut open: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    let mut windows = 0;
    let mut staged = 0;
    for h in &state.history {
        let node = h.node.to_string();
        let step = h.task.as_deref().and_then(step_of);
        match h.what.as_str() {
            "cordon" => {
                let id = step.map(|s| s.id.to_string()).unwrap_or_default();
                assert!(open.insert(node, (h.at_ms, vec![id])).is_none());
            }
            "uncordon" => {
                let (at, ids) = open.remove(&node).expect("cordoned before");
                let pos = |id: &str| plan.steps.iter().position(|s| s.id.as_str() == id);
                let (Some(c), Some(u)) = (pos(&ids[0]), step.and_then(|s| pos(s.id.as_str())))
                else {
                    panic!("{node}: a window without its steps: {ids:?}")
                };
                // The plan's steps on the node from its cordon to its uncordon.
                let inside: Vec<_> = plan.steps[c..=u]
                    .iter()
                    .filter(|s| s.nodes.iter().any(|n| n.as_str() == node))
                    .collect();
                assert!(inside.iter().all(|s| !s.action.is_prestage()));
                let budget: u64 = inside.iter().map(|s| s.duration_seconds).sum();
                // Each effect is recorded when its task ends: the cordon's own time is
                // before `at`.
                let length = (h.at_ms - at) / 1000 + plan.steps[c].duration_seconds;
                // The simulator's own waits (a one-second poll for Ready and between eviction
                // rounds, the run checking each task's outcome) come on top: a few seconds a
                // step, as in the estimate's test.
                let slack = 5 * inside.len() as u64;
                assert!(
                    length <= budget + slack,
                    "{node}: window of {length} s, its steps take {budget} s"
                );
                windows += 1;
            }
            _ => {
                let Some(step) = step else { continue };
                if step.action.is_prestage() {
                    staged += 1;
                    assert!(
                        !open.contains_key(&node),
                        "{node}: {} inside its window",
                        step.id
                    );
                } else if let Some((_, ids)) = open.get_mut(&node) {
                    ids.push(step.id.to_string());
                }
            }
        }
    }
    assert!(open.is_empty(), "{open:?}");
    // Nine nodes, one window per hop each.
    assert!(windows >= 9 * plan.hops.len(), "{windows}");
    assert!(staged > 0);
    // What the downloads left on the nodes: every installed package version was downloaded
    // ahead, on the Debian and RHEL-like nodes of the sample.
    for (name, host) in &state.hosts {
        for (p, v) in &host.installed {
            assert!(
                host.downloaded.contains(&(*p, v.clone())),
                "{name}: {p:?} {v} installed without being downloaded ahead"
            );
        }
    }
}
