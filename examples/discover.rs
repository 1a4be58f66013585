//! `cargo run --example discover -- [--kubeconfig PATH] [--context NAME] [--node-selector SEL]`:
//! reads a live kubeadm cluster through the Kubernetes API and prints its nodes, the component
//! versions on each (control-plane versions from the static pods), etcd, the add-ons, and the
//! version skew report (upstream policy).
//!
//! With `--evidence-out FILE`, it also gathers the readiness evidence the API can give
//! (deprecated API use in three tiers, pods and budgets, webhooks, APIServices, CRDs, kubeadm's
//! configuration, container runtimes) and writes it to FILE as JSON, for planning later
//! without the cluster (`kupgrade_kube::evidence::gather`).
//!
//! Without `--kubeconfig`, the configuration is found as `kubectl` finds it (`KUBECONFIG`,
//! `~/.kube/config`, or the in-cluster service account). The permissions it needs are in
//! `examples/rbac/discover.yaml`.
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Parser;
use kupgrade_core::skew::{self, SkewPolicy, UpstreamPolicy};
use kupgrade_core::{ClusterState, Component, EtcdTopology};
use kupgrade_kube::Discovery;

/// Discover a live cluster and check its version skew.
#[derive(Parser)]
pub(crate) struct Args {
    /// The kubeconfig to use (default: KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long)]
    context: Option<String>,
    /// Only nodes matching this label selector.
    #[arg(long)]
    node_selector: Option<String>,
    /// Print the discovered state as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also gather readiness evidence and write it to this file (JSON).
    #[arg(long, value_name = "FILE")]
    evidence_out: Option<PathBuf>,
}

const COLUMNS: [(Component, &str); 5] = [
    (Component::KubeApiserver, "APISERVER"),
    (Component::KubeControllerManager, "CONTROLLER-MGR"),
    (Component::KubeScheduler, "SCHEDULER"),
    (Component::Etcd, "ETCD"),
    (Component::Kubelet, "KUBELET"),
];

#[path = "common/output.rs"]
mod output;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    output::quiet_when_closed(run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client =
        kupgrade_kube::connect(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let mut discovery = Discovery::new(client.clone());
    if let Some(selector) = &args.node_selector {
        discovery = discovery.node_selector(selector);
    }
    let cluster = discovery.run().await?;
    if let Some(path) = &args.evidence_out {
        let options = kupgrade_kube::evidence::GatherOptions::default();
        let evidence = kupgrade_kube::evidence::gather(&client, &options).await;
        let text = serde_json::to_string_pretty(&evidence)? + "\n";
        std::fs::write(path, text)
            .map_err(|e| anyhow::anyhow!("writing the evidence to {}: {e}", path.display()))?;
    }
    if args.json {
        return output::print(&format!("{}\n", serde_json::to_string_pretty(&cluster)?));
    }

    let mut out = String::new();
    let name = cluster.name.as_deref().unwrap_or("(unnamed)");
    let _ = writeln!(
        out,
        "Cluster {name}: {} nodes, {} control plane\n",
        cluster.nodes.len(),
        cluster.control_plane().count()
    );
    let _ = writeln!(out, "{}", table(&cluster));
    let _ = match &cluster.etcd {
        EtcdTopology::Stacked => writeln!(out, "etcd: stacked (static pods on the control plane)"),
        EtcdTopology::External { endpoints, .. } => {
            writeln!(out, "etcd: external ({})", endpoints.join(", "))
        }
    };
    let show = |v: &Option<kupgrade_core::KubeVersion>| {
        v.as_ref().map_or("-".to_string(), ToString::to_string)
    };
    let _ = writeln!(
        out,
        "add-ons: kube-proxy {}, coredns {}\n",
        show(&cluster.addons.kube_proxy),
        show(&cluster.addons.coredns)
    );
    let _ = writeln!(out, "Version skew (upstream policy):");
    for line in skew::report(&UpstreamPolicy::new().evaluate(&cluster)).lines() {
        let _ = writeln!(out, "  {line}");
    }
    output::print(&out)
}

/// One row per node: roles, state, OS, then the version of each component.
fn table(cluster: &ClusterState) -> String {
    let mut rows = vec![
        ["NODE", "ROLE", "STATUS", "OS"]
            .into_iter()
            .map(String::from)
            .chain(COLUMNS.iter().map(|(_, h)| h.to_string()))
            .collect::<Vec<_>>(),
    ];
    for n in &cluster.nodes {
        let role = n
            .roles
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let mut status = if n.ready { "Ready" } else { "NotReady" }.to_string();
        if n.unschedulable {
            status.push_str(",SchedulingDisabled");
        }
        let mut row = vec![n.name.to_string(), role, status, n.os.family.to_string()];
        row.extend(COLUMNS.iter().map(|(c, _)| {
            n.versions
                .get(*c)
                .map_or("-".to_string(), ToString::to_string)
        }));
        rows.push(row);
    }
    output::aligned(&rows)
}
