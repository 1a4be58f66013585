//! `cargo run --example plan`: plans the upgrade of a cluster and prints the runbook.
//!
//! With no arguments it plans the bundled HA sample (`clusters/ha.yaml`, 1.28) to the newest
//! stable release on today's date and prints the text runbook. Every intermediate state of the
//! plan satisfies the skew policy; when none can, the error names the rule and the node.
//!
//! ```text
//! cargo run --example plan -- --target 1.30 --format markdown --batch 2
//! cargo run --example plan -- --cluster my-cluster.yaml --strategy replace --date 2025-03-01
//! cargo run --example plan -- --policy examples/policies/strict.yaml --format json
//! cargo run --example plan -- --kubeconfig ~/.kube/config --context prod --target 1.30
//! cargo run --example plan -- --available --live-releases
//! cargo run --example plan -- --calendar newer-releases.json --kubeadm-versions kubeadm.json
//! ```
//!
//! Release data: `--calendar FILE` and `--kubeadm-versions FILE` replace the embedded release
//! calendar and kubeadm version table (same JSON formats); `--live-releases` merges the
//! release team's version labels over the calendar (`--release-base-url` for a mirror). A plan
//! dated more than four months past the calendar, or with hops past the kubeadm table, carries
//! a warning in every format (and on stderr, with the option that helps).
//!
//! `--kubeconfig` (with `--context`, `--node-selector`) plans from a live kubeadm cluster
//! instead of an inventory: the state is read through the Kubernetes API the way the
//! `discover` example reads it (permissions: `examples/rbac/discover.yaml`). It excludes
//! `--cluster`. The API does not show the `kubeadm` and `kubectl` binaries on the nodes; the
//! plan assumes they match the kubelet.
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use jiff::civil::Date;
use kupgrade_core::plan::render::Format;
use kupgrade_core::plan::{
    BatchSize, PlanOptions, PlanRequest, Strategy, Target, WorkerPacing, available_upgrades,
    calendar_warning, kubeadm_versions_warning, nothing_available,
};
use kupgrade_core::skew::{SkewPolicy, UpstreamPolicy, rules::RulePolicy};

#[path = "common/releases.rs"]
mod releases;

/// Plan a Kubernetes upgrade in which every intermediate state satisfies the skew policy.
#[derive(Parser)]
struct Args {
    /// The cluster inventory (YAML or JSON) [default: the bundled clusters/ha.yaml].
    #[arg(long, conflicts_with = "kubeconfig")]
    cluster: Option<String>,
    /// Plan from the live cluster this kubeconfig reaches instead of an inventory.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// With --kubeconfig: the kubeconfig context (default: its current context).
    #[arg(long, requires = "kubeconfig")]
    context: Option<String>,
    /// With --kubeconfig: only nodes matching this label selector.
    #[arg(long, requires = "kubeconfig")]
    node_selector: Option<String>,
    /// The target: a version (v1.31.2), a minor (1.31 = its latest patch), `stable` or `latest`.
    #[arg(long, default_value = "stable")]
    target: Target,
    /// Output format: text, markdown, json, yaml or mermaid.
    #[arg(long, default_value = "text")]
    format: Format,
    /// in-place (kubeadm's way) or replace (new nodes join, old ones leave).
    #[arg(long, default_value = "in-place")]
    strategy: Strategy,
    /// Workers per batch: a count (3) or a percentage (25%).
    #[arg(long, default_value = "1")]
    batch: BatchSize,
    /// At most this many nodes of one zone per batch: a count or a percentage of the zone.
    #[arg(long)]
    max_per_zone: Option<BatchSize>,
    /// Replace strategy: new nodes beyond the old ones at once.
    #[arg(long, default_value_t = 1)]
    max_surge: u32,
    /// Move workers as late as the policy allows, several minors per drain (the default for
    /// the replace strategy).
    #[arg(long)]
    defer_workers: bool,
    /// First upgrade to the latest patch of the current minor.
    #[arg(long)]
    patch_first: bool,
    /// The date that decides which releases exist and are supported (default: today).
    #[arg(long)]
    date: Option<Date>,
    /// Declarative skew rules (YAML or JSON) checked on top of the upstream policy.
    #[arg(long)]
    policy: Option<String>,
    /// Plan even though the cluster violates the policy now (a repair).
    #[arg(long)]
    tolerate_initial_violations: bool,
    /// Accept a target past its end of life on the date.
    #[arg(long)]
    allow_unsupported_target: bool,
    /// List the available upgrades (like `kubeadm upgrade plan`) instead of planning.
    #[arg(long)]
    available: bool,
    #[command(flatten)]
    releases: releases::ReleaseArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (cluster, source) = match &args.kubeconfig {
        Some(path) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let cluster = runtime.block_on(discover(
                path,
                args.context.as_deref(),
                args.node_selector.as_deref(),
            ))?;
            let name = cluster.name.clone().unwrap_or_else(|| "cluster".into());
            (cluster, format!("{name} (live, {})", path.display()))
        }
        None => {
            let file = args
                .cluster
                .clone()
                .unwrap_or_else(|| DEFAULT_CLUSTER.into());
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
            (kupgrade_core::inventory::parse(&text, &file)?, file)
        }
    };
    let date = args.date.unwrap_or_else(|| jiff::Zoned::now().date());
    let from = cluster.apiserver_min().map(|v| v.minor());
    let calendar = &args.releases.load_blocking(from)?;
    if args.available {
        let upgrades = available_upgrades(&cluster, calendar, date);
        let offered: Vec<_> = upgrades.iter().map(|u| u.version.clone()).collect();
        let warnings: Vec<_> = calendar_warning(calendar, date)
            .into_iter()
            .chain(kubeadm_versions_warning(&cluster, calendar, &offered))
            .collect();
        args.releases.print_warnings(&warnings);
        if upgrades.is_empty() {
            println!("{}", nothing_available(&cluster, calendar, date));
        }
        for u in upgrades {
            println!(
                "{:<10} {:<32} {} hop(s), etcd {}, CoreDNS {}, {}",
                u.version.to_string(),
                u.labels.join(", "),
                u.hops,
                u.etcd.map_or("-".into(), |e| e.to_plain_string()),
                u.coredns.map_or("-".into(), |c| c.to_string()),
                u.status
            );
        }
        return Ok(());
    }
    let policy: Box<dyn SkewPolicy> = match &args.policy {
        Some(file) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
            Box::new(RulePolicy::parse(&text, file)?.with_upstream())
        }
        None => Box::new(UpstreamPolicy::new()),
    };
    let options = PlanOptions {
        strategy: args.strategy,
        batch: args.batch,
        max_per_zone: args.max_per_zone,
        max_surge: args.max_surge,
        worker_pacing: args.defer_workers.then_some(WorkerPacing::Deferred),
        patch_first: args.patch_first,
        tolerate_initial_violations: args.tolerate_initial_violations,
        allow_unsupported_target: args.allow_unsupported_target,
        ..PlanOptions::default()
    };
    let plan = PlanRequest::new(args.target, date)
        .calendar(calendar)
        .policy(policy.as_ref())
        .options(options)
        .plan(&cluster)
        .with_context(|| format!("planning the upgrade of {source}"))?;
    print!("{}", args.format.render(&plan));
    args.releases.print_warnings(&plan.warnings);
    Ok(())
}

/// The bundled HA sample, planned when neither --cluster nor --kubeconfig is given.
const DEFAULT_CLUSTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/clusters/ha.yaml");

/// Reads the live cluster `kubeconfig` reaches (discovery's errors name the object and field).
async fn discover(
    kubeconfig: &std::path::Path,
    context: Option<&str>,
    node_selector: Option<&str>,
) -> anyhow::Result<kupgrade_core::ClusterState> {
    let client = kupgrade_kube::connect(Some(kubeconfig), context).await?;
    let mut discovery = kupgrade_kube::Discovery::new(client);
    if let Some(selector) = node_selector {
        discovery = discovery.node_selector(selector);
    }
    discovery
        .run()
        .await
        .with_context(|| format!("discovering the cluster through {}", kubeconfig.display()))
}
