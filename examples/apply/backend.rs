//! The apply example's ports for each executor, with and without `--kubeconfig`.
use std::sync::Arc;

use anyhow::{Context, bail};
use kupgrade_core::ports::{ClusterOperations, CommandRunner, NodeProvider};
use kupgrade_core::{ClusterState, NodeName, SshTarget};
use kupgrade_exec::sim::{SimCluster, Workload};
use kupgrade_exec::{KubectlOps, LocalRunner, NodeEnv, NodeReadOps, SshConfig, SshRunner};
use kupgrade_kube::{KubeClusterOps, PodRunner};

use super::{Args, Executor};

/// The ports for the chosen executor.
pub(crate) struct Backend {
    pub(crate) runner: Arc<dyn CommandRunner>,
    pub(crate) ops: Arc<dyn ClusterOperations>,
    pub(crate) provider: Option<Arc<dyn NodeProvider>>,
    pub(crate) sim: Option<SimCluster>,
}

/// Where the cluster's state comes from.
pub(crate) enum Source {
    /// An inventory file (no `--kubeconfig`).
    Inventory,
    /// The Kubernetes API (`--kubeconfig`), through these operations; `overlay` is the
    /// `--cluster` inventory given beside it, if any (SSH targets only).
    Live {
        ops: Box<KubeClusterOps>,
        overlay: Option<Box<ClusterState>>,
    },
}

impl Backend {
    pub(crate) async fn new(
        args: &Args,
        cluster: &ClusterState,
        source: &Source,
    ) -> anyhow::Result<Self> {
        let kubectl_node = || -> anyhow::Result<NodeName> {
            args.kubectl_node
                .clone()
                .or_else(|| cluster.control_plane().next().map(|n| n.name.clone()))
                .context("the inventory has no control-plane node to run kubectl on")
        };
        // The cluster operations of the real executors: the API with --kubeconfig, kubectl
        // on a node (over the executor's runner) without, with the versions the nodes
        // themselves report (kubeadm, the static pod manifests) over the inventory's: an
        // inventory the cluster has moved past is found out before the first step.
        let ops = |runner: &Arc<dyn CommandRunner>| -> anyhow::Result<Arc<dyn ClusterOperations>> {
            Ok(match source {
                Source::Live { ops, .. } => Arc::new(ops.as_ref().clone()),
                Source::Inventory => Arc::new(NodeReadOps::new(
                    Arc::new(KubectlOps::new(
                        runner.clone(),
                        kubectl_node()?,
                        cluster.clone(),
                    )),
                    runner.clone(),
                )),
            })
        };
        // The ports of a real executor whose node commands `runner` runs: its cluster
        // operations, and the replace strategy's node provider, the --provider-* commands
        // (refused earlier when the plan needs one and none is given).
        let real =
            |runner: Arc<dyn CommandRunner>, ssh: Option<&SshRunner>| -> anyhow::Result<Backend> {
                let ops = ops(&runner)?;
                Ok(Backend {
                    provider: args.provider.provider(&ops, ssh, cluster.name.as_deref()),
                    ops,
                    runner,
                    sim: None,
                })
            };
        if let Source::Live {
            overlay: Some(_), ..
        } = source
            && args.executor != Executor::Ssh
        {
            eprintln!(
                "note: with --kubeconfig, --cluster only gives SSH targets: the {:?} executor ignores it",
                args.executor
            );
        }
        match args.executor {
            Executor::Sim => {
                if matches!(source, Source::Live { .. }) {
                    bail!(
                        "--executor sim simulates an inventory, not a live cluster: with --kubeconfig use --executor ssh, pod or local"
                    );
                }
                let sim = match &args.sim_state {
                    Some(path) if args.resume && path.exists() => SimCluster::load(path)?,
                    Some(path) => SimCluster::new(cluster.clone())
                        .with_workload(&Workload::sample())
                        .persist_to(path)?,
                    None => SimCluster::new(cluster.clone()).with_workload(&Workload::sample()),
                };
                let sim = sim.with_speed(args.sim_speed.max(0.0));
                let s = Arc::new(sim.clone());
                Ok(Backend {
                    runner: s.clone(),
                    ops: s.clone(),
                    provider: Some(s),
                    sim: Some(sim),
                })
            }
            Executor::Ssh => {
                let mut config = SshConfig::new();
                if let Some(u) = &args.ssh_user {
                    config = config.user(u);
                }
                if let Some(k) = &args.ssh_key {
                    config = config.identity_file(k);
                }
                if let Some(k) = &args.known_hosts {
                    config = config.known_hosts_file(k);
                }
                let runner = SshRunner::new(config)?;
                let runner = match source {
                    Source::Inventory => runner.with_cluster(cluster),
                    Source::Live { overlay, .. } => runner.with_targets(ssh_targets(
                        cluster,
                        overlay.as_deref(),
                        args.ssh_node_names,
                    )?),
                };
                let ssh = runner.clone();
                real(Arc::new(runner), Some(&ssh))
            }
            Executor::Pod => {
                let Source::Live { ops: live, .. } = source else {
                    bail!(
                        "--executor pod runs node commands in pods through the Kubernetes API: it needs --kubeconfig"
                    );
                };
                if !args.pod_image_unpinned && !PodRunner::is_pinned(&args.pod_image) {
                    bail!(
                        "--pod-image {:?} is not named by digest (NAME[:TAG]@sha256:<64 hex \
                         digits>), and the command pods run privileged in each node's PID \
                         namespace: pin it, or pass --pod-image-unpinned to accept a movable tag",
                        args.pod_image
                    );
                }
                // The runner feeds standard input itself (base64 in the pod's command line),
                // as the plan's `sudo tee FILE` steps need.
                let mut runner = PodRunner::new(live.client().clone())
                    .namespace(&args.pod_namespace)
                    .image(&args.pod_image);
                if args.pod_image_unpinned {
                    runner = runner.allow_unpinned_image();
                }
                real(Arc::new(runner), None)
            }
            Executor::Local => {
                let root = args.sandbox.clone().context("--sandbox is required")?;
                let runner = LocalRunner::new()
                    .allow_sudo()
                    .with_node_env(move |node| NodeEnv::sandbox(&root, node));
                real(Arc::new(runner), None)
            }
        }
    }
}

/// The SSH target of every node of the live `cluster`: the `ssh` fields of the node of the
/// same name in the `--cluster` overlay, else (with `--ssh-node-names`) the node name itself.
/// A node with neither is an error naming it: kupgrade never guesses where to log in.
fn ssh_targets(
    cluster: &ClusterState,
    overlay: Option<&ClusterState>,
    by_node_name: bool,
) -> anyhow::Result<Vec<(NodeName, SshTarget)>> {
    let mut targets = Vec::new();
    let mut missing = Vec::new();
    for node in &cluster.nodes {
        let from_overlay = overlay
            .and_then(|o| o.nodes.iter().find(|n| n.name == node.name))
            .and_then(|n| n.ssh.as_deref().cloned());
        match from_overlay {
            Some(t) => targets.push((node.name.clone(), t)),
            None if by_node_name => targets.push((
                node.name.clone(),
                SshTarget {
                    host: Some(node.name.to_string()),
                    port: None,
                    user: None,
                },
            )),
            None => missing.push(node.name.to_string()),
        }
    }
    if let Some(o) = overlay {
        for n in &o.nodes {
            if !cluster.nodes.iter().any(|c| c.name == n.name) {
                eprintln!(
                    "note: node {} of the --cluster inventory is not in the live cluster; ignored",
                    n.name
                );
            }
        }
    }
    if !missing.is_empty() {
        bail!(
            "no SSH target for node(s) {}: give each an `ssh:` entry in a --cluster inventory (matched by node name), or pass --ssh-node-names to log in at the node name",
            missing.join(", ")
        );
    }
    Ok(targets)
}
