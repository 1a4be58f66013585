//! `cargo run --example plan`: plans the upgrade of a cluster and prints the runbook.
//!
//! With no arguments it plans the bundled HA sample (`clusters/ha.yaml`, 1.28) to the newest
//! stable release on today's date and prints the text runbook. Every intermediate state of the
//! plan satisfies the skew policy; when none can, the error names the rule and the node.
//!
//! ```text
//! cargo run --example plan -- --target 1.30 --format markdown --batch 2 --date 2025-03-01
//! cargo run --example plan -- --cluster examples/clusters/mixed-os.yaml --strategy replace --date 2025-03-01
//! cargo run --example plan -- --policy examples/policies/strict.yaml --format json --date 2025-03-01
//! cargo run --example plan -- --kubeconfig ~/.kube/config --target 1.30 --date 2025-06-20
//! ```
//!
//! `--date` fixes the day the release calendar is read on (default: today), so these give the
//! same plan every day. `--format json` records the plan's fingerprint in the document, for
//! `apply --plan FILE`. The planning options (`--target`, `--strategy`, `--batch`,
//! `--policy`, the drain options, ...) are the ones `apply` takes.
//!
//! Release data (as in `apply` and `check`): `--calendar FILE` and `--kubeadm-versions FILE`
//! replace the embedded release calendar and kubeadm version table (same JSON formats);
//! `--live-releases` merges the release team's version labels over the calendar
//! (`--release-base-url` for a mirror). A plan dated more than four months past the calendar,
//! or with hops past the kubeadm table, carries a warning in every format (and on stderr) that
//! names the option that helps:
//!
//! ```text
//! cargo run --example plan -- --available --live-releases
//! cargo run --example plan -- --calendar crates/kupgrade-core/data/k8s-releases.json --date 2025-03-01
//! ```
//!
//! `--evidence FILE` (gathered readiness evidence, JSON or YAML) shows the readiness findings
//! per hop and every check's coverage with the plan, in every format (JSON and YAML under a
//! `readiness` field), and gives `--batch auto` the pods and PodDisruptionBudgets it cuts
//! batches from: per wave, the largest batches that overdraw no budget, and a refusal naming
//! the budget and pods when no order of the drains can finish:
//!
//! ```text
//! cargo run --example plan -- --evidence examples/readiness/ha-evidence.json --batch auto --target 1.32 --date 2025-03-01
//! ```
//!
//! `--kubeconfig` (with `--context`, `--node-selector`) plans from a live kubeadm cluster
//! instead of an inventory: the state is read through the Kubernetes API the way the
//! `discover` example reads it (permissions: `examples/rbac/discover.yaml`). It excludes
//! `--cluster`. The API does not show the `kubeadm` and `kubectl` binaries on the nodes; the
//! plan assumes they match the kubelet.
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use kupgrade_core::lifecycle::ReleaseCalendar;
use kupgrade_core::plan::render::{self, Format, HtmlExtras};
use kupgrade_core::plan::{
    PlanRequest, UpgradePlan, available_upgrades, calendar_warning, kubeadm_versions_warning,
    nothing_available,
};
use kupgrade_core::readiness::Workloads;

#[path = "common/gates.rs"]
#[allow(dead_code)] // shared by the examples, each uses a part
pub(crate) mod gates;
#[path = "common/inventory.rs"]
mod inventory;
#[path = "common/output.rs"]
mod output;
#[path = "common/planning.rs"]
#[allow(dead_code)] // shared by the examples, each uses a part
pub(crate) mod planning;
#[path = "common/readiness.rs"]
#[allow(dead_code)] // shared by the examples, each uses a part
pub(crate) mod readiness;
#[path = "common/reviewed.rs"]
#[allow(dead_code)] // shared by the examples, each uses a part
pub(crate) mod reviewed;

use planning::Planning;

#[path = "common/releases.rs"]
#[allow(dead_code)] // shared by the examples, each uses a part
pub(crate) mod releases;

/// Plan a Kubernetes upgrade in which every intermediate state satisfies the skew policy.
#[derive(Parser)]
pub(crate) struct Args {
    /// The cluster inventory (YAML or JSON) [default: the bundled clusters/ha.yaml].
    #[arg(long, conflicts_with = "kubeconfig")]
    pub(crate) cluster: Option<String>,
    /// Plan from the live cluster this kubeconfig reaches instead of an inventory.
    #[arg(long)]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// With --kubeconfig: the kubeconfig context (default: its current context).
    #[arg(long, requires = "kubeconfig")]
    pub(crate) context: Option<String>,
    /// With --kubeconfig: only nodes matching this label selector.
    #[arg(long, requires = "kubeconfig")]
    pub(crate) node_selector: Option<String>,
    /// Output format: text, markdown, json (with the plan's fingerprint, for `apply --plan`),
    /// yaml, mermaid or html (one self-contained page: timeline, version band).
    #[arg(long, default_value = "text")]
    pub(crate) format: Format,
    /// List the available upgrades (like `kubeadm upgrade plan`) instead of planning.
    #[arg(long)]
    pub(crate) available: bool,
    #[command(flatten)]
    pub(crate) planning: Planning,
    #[command(flatten)]
    pub(crate) evidence: readiness::EvidenceArgs,
    #[command(flatten)]
    pub(crate) releases: releases::ReleaseArgs,
}

fn main() -> anyhow::Result<()> {
    output::quiet_when_closed(run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    // A live cluster is read once, its readiness evidence with it (unless a file gives it).
    let (cluster, source, evidence) = match &args.kubeconfig {
        Some(path) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (cluster, evidence) = runtime.block_on(async {
                let (cluster, client) =
                    discover(path, args.context.as_deref(), args.node_selector.as_deref()).await?;
                let evidence = match args.available {
                    true => None,
                    false => args.evidence.load(Some(&client)).await?,
                };
                anyhow::Ok((cluster, evidence))
            })?;
            let name = cluster.name.clone().unwrap_or_else(|| "cluster".into());
            (
                cluster,
                format!("{name} (live, {})", path.display()),
                evidence,
            )
        }
        None => {
            let (cluster, source) = inventory::read(args.cluster.as_deref())?;
            let evidence = match args.available {
                true => None,
                false => args.evidence.read()?,
            };
            (cluster, source, evidence)
        }
    };
    let date = args.planning.date();
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
        let mut out = String::new();
        if upgrades.is_empty() {
            let _ = writeln!(out, "{}", nothing_available(&cluster, calendar, date));
        }
        for u in upgrades {
            let _ = writeln!(
                out,
                "{:<10} {:<32} {} hop(s), etcd {}, CoreDNS {}, {}",
                u.version.to_string(),
                u.labels.join(", "),
                u.hops,
                u.etcd.map_or("-".into(), |e| e.to_plain_string()),
                u.coredns.map_or("-".into(), |c| c.to_string()),
                u.status
            );
        }
        return output::print(&out);
    }
    let workloads = match args.planning.batch.is_auto() {
        true => Some(readiness::workloads(evidence.as_ref())?),
        false => None,
    };
    let plan = plan_for(&args.planning, calendar, &cluster, &source, workloads)?;
    args.releases.print_warnings(&plan.warnings);
    match (args.format, &evidence) {
        (Format::Html, evidence) => {
            let report = evidence.as_ref().map(|e| readiness::evaluate(&plan, e));
            let extras = HtmlExtras {
                start: Some(&cluster),
                readiness: report.as_ref(),
            };
            let mut page = String::new();
            render::html(&plan, extras, &mut page)?;
            output::print(&page)
        }
        // With evidence the readiness report is spliced into the rendered plan, so it is
        // rendered whole; plans read with evidence are the ones an operator reviews.
        (format, Some(evidence)) => {
            let report = readiness::evaluate(&plan, evidence);
            let json = || reviewed::to_json(&plan);
            output::print(&readiness::plan_with(&plan, &report, format, json()))
        }
        // Streamed: a plan of a hundred thousand nodes is never held as one string.
        (Format::Json, None) => output::stream(|out| reviewed::write_json(&plan, out)),
        (format, None) => output::stream(|out| format.write(&plan, out)),
    }
}

/// The plan `planning` asks for, for `cluster` (called `source` in messages), with the
/// release data of `calendar` (and the pods and budgets `--batch auto` cuts batches from).
pub(crate) fn plan_for(
    planning: &Planning,
    calendar: &ReleaseCalendar,
    cluster: &kupgrade_core::ClusterState,
    source: &str,
    workloads: Option<&Workloads>,
) -> anyhow::Result<UpgradePlan> {
    let policy = planning.policy.read()?.policy();
    let gates = planning.gates.load()?;
    let request = PlanRequest::new(planning.target.clone(), planning.date())
        .calendar(calendar)
        .policy(policy.as_ref())
        .options(planning.options());
    let mut plan = match workloads {
        Some(w) => request.workloads(w).plan(cluster),
        None => request.plan(cluster),
    }
    .with_context(|| format!("planning the upgrade of {source}"))?;
    gates::insert(&mut plan, &gates);
    Ok(plan)
}

/// Reads the live cluster `kubeconfig` reaches (discovery's errors name the object and field),
/// with the client that reached it.
async fn discover(
    kubeconfig: &std::path::Path,
    context: Option<&str>,
    node_selector: Option<&str>,
) -> anyhow::Result<(kupgrade_core::ClusterState, kube::Client)> {
    let client = kupgrade_kube::connect(Some(kubeconfig), context).await?;
    let mut discovery = kupgrade_kube::Discovery::new(client.clone());
    if let Some(selector) = node_selector {
        discovery = discovery.node_selector(selector);
    }
    let cluster = discovery
        .run()
        .await
        .with_context(|| format!("discovering the cluster through {}", kubeconfig.display()))?;
    Ok((cluster, client))
}
