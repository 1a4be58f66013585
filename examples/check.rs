//! `cargo run --example check -- [FILE] [--date YYYY-MM-DD] [--policy FILE]`: reads a cluster
//! inventory and prints the component versions per node, the version skew report (the upstream
//! policy, and the rules of each `--policy` file) and the support status of every minor the
//! cluster runs on the given date (default: today). It exits with status 1 when the report
//! holds an error (warnings alone leave it at 0).
//!
//! The default inventory is the bundled HA sample (`examples/clusters/ha.yaml`). The release
//! calendar is the embedded one unless `--calendar FILE` (or `--live-releases`) says otherwise;
//! a date more than four months past the calendar's end is a warning.
//!
//! ```text
//! cargo run --example check -- examples/clusters/mid-upgrade.yaml --date 2025-03-01
//! cargo run --example check -- --policy examples/policies/strict.yaml --date 2025-03-01
//! ```
//!
//! With `--target VERSION` it is also a readiness report for that target, over every hop of
//! the plan that reaches it: the findings per hop (removed APIs, drains, node, etcd and
//! certificate checks) and every check's coverage, from the evidence of `--evidence FILE`
//! (without it every check that needs data says "not checkable"). An error finding exits with
//! status 1 too. `--format markdown` gives the readiness section in Markdown (the version
//! report before it, fenced); `--format json` the readiness report alone, as a
//! `ReadinessReport` document.
//!
//! ```text
//! cargo run --example check -- --target 1.32 --evidence examples/readiness/ha-evidence.json --date 2025-03-01
//! ```
use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context;
use clap::Parser;
use jiff::civil::Date;
use kupgrade_core::lifecycle::ReleaseCalendar;
use kupgrade_core::plan::{PlanRequest, Target};
use kupgrade_core::readiness::render;
use kupgrade_core::skew::{self, Severity};
use kupgrade_core::{ClusterState, Component, EtcdTopology, Minor, VersionLine};

#[path = "common/gates.rs"]
#[allow(dead_code)] // shared by the examples, each uses a part
pub(crate) mod gates;
#[path = "common/inventory.rs"]
mod inventory;
#[path = "common/output.rs"]
mod output;
#[path = "common/planning.rs"]
#[allow(dead_code)] // shared by the examples, each uses a part
mod planning;
#[path = "common/readiness.rs"]
#[allow(dead_code)] // shared by the examples, each uses a part
mod readiness;
#[path = "common/releases.rs"]
#[allow(dead_code)] // shared by the examples, each uses a part
mod releases;

/// Check a cluster inventory: versions, version skew and support status.
#[derive(Parser)]
pub(crate) struct Args {
    /// The inventory file (YAML or JSON) [default: the bundled clusters/ha.yaml].
    pub(crate) file: Option<String>,
    /// The date to judge support status on (default: today, local time).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub(crate) date: Option<Date>,
    #[command(flatten)]
    pub(crate) policy: planning::PolicyArgs,
    #[command(flatten)]
    pub(crate) releases: releases::ReleaseArgs,
    /// Also report readiness for this target, over every hop of the plan that reaches it.
    #[arg(long)]
    pub(crate) target: Option<Target>,
    #[command(flatten)]
    pub(crate) evidence: readiness::EvidenceArgs,
    /// With --target: text, markdown or json (the readiness report alone).
    #[arg(long, default_value = "text", requires = "target")]
    pub(crate) format: ReportFormat,
}

/// How `check --target` shows its report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ReportFormat {
    /// For a terminal.
    Text,
    /// For a runbook or a pull request.
    Markdown,
    /// The readiness report as a `ReadinessReport` document.
    Json,
}

/// Table columns: the per-node components, short headers.
const COLUMNS: [(Component, &str); 9] = [
    (Component::KubeApiserver, "APISERVER"),
    (Component::KubeControllerManager, "CONTROLLER-MGR"),
    (Component::KubeScheduler, "SCHEDULER"),
    (Component::CloudControllerManager, "CLOUD-CM"),
    (Component::Etcd, "ETCD"),
    (Component::Kubelet, "KUBELET"),
    (Component::KubeProxy, "KUBE-PROXY"),
    (Component::Kubeadm, "KUBEADM"),
    (Component::Kubectl, "KUBECTL"),
];

fn main() -> anyhow::Result<()> {
    let (text, clean) = report(Args::parse())?;
    output::quiet_when_closed(output::print(&text))?;
    if !clean {
        // The report holds errors: it is printed, the status says so.
        std::process::exit(1);
    }
    Ok(())
}

/// The report, and whether the cluster is clean (no errors; warnings may be).
pub(crate) fn report(args: Args) -> anyhow::Result<(String, bool)> {
    let (cluster, file) = inventory::read(args.file.as_deref())?;
    let policy = args.policy.read()?.policy();
    let date = args.date.unwrap_or_else(|| jiff::Zoned::now().date());
    let oldest = cluster
        .nodes
        .iter()
        .flat_map(|n| n.versions.iter())
        .filter(|(c, _)| c.version_line() == VersionLine::Kubernetes)
        .map(|(_, v)| v.minor())
        .min();
    let calendar = args.releases.load_blocking(oldest)?;

    let mut out = String::new();
    // The name, zones and rule messages are the file's text: escaped for the terminal.
    let name = kupgrade_core::escape::text(cluster.name.as_deref().unwrap_or("(unnamed)"));
    let _ = writeln!(
        out,
        "Cluster {name} ({file}): {} nodes, {} control plane",
        cluster.nodes.len(),
        cluster.control_plane().count()
    );
    out.push('\n');
    out.push_str(&versions_table(&cluster));
    out.push('\n');
    let _ = writeln!(out, "{}", addons_line(&cluster));
    out.push('\n');

    let _ = writeln!(out, "Version skew ({} policy):", policy.name());
    let violations = policy.evaluate(&cluster);
    for line in skew::report(&violations).lines() {
        let _ = writeln!(out, "  {line}");
    }
    out.push('\n');

    out.push_str(&support_section(&cluster, &calendar, date));
    if let Some(w) = kupgrade_core::plan::calendar_warning(&calendar, date) {
        let _ = writeln!(out, "Warning: {w}");
    }
    let clean = !violations.iter().any(|v| v.severity == Severity::Error);
    let Some(target) = &args.target else {
        return Ok((out, clean));
    };
    let evidence = args.evidence.read()?.unwrap_or_default();
    let plan = PlanRequest::new(target.clone(), date)
        .calendar(&calendar)
        .policy(policy.as_ref())
        .plan(&cluster)
        .with_context(|| format!("planning the upgrade of {file} to {target}"))?;
    let report = readiness::evaluate(&plan, &evidence);
    let clean = clean && !report.has_errors();
    let text = match args.format {
        ReportFormat::Text => format!("{out}\n{}", render::text(&report)),
        ReportFormat::Markdown => {
            format!("~~~text\n{out}~~~\n\n{}", render::markdown_section(&report))
        }
        ReportFormat::Json => render::to_json(&report),
    };
    Ok((text, clean))
}

/// One row per node, one column per component present anywhere; `-` where absent.
fn versions_table(cluster: &ClusterState) -> String {
    let columns: Vec<(Component, &str)> = COLUMNS
        .into_iter()
        .filter(|(c, _)| cluster.nodes.iter().any(|n| cell(cluster, n, *c).is_some()))
        .collect();
    let mut rows: Vec<Vec<String>> = vec![
        ["NODE", "ROLE", "ZONE"]
            .into_iter()
            .map(String::from)
            .chain(columns.iter().map(|(_, h)| h.to_string()))
            .collect(),
    ];
    for node in &cluster.nodes {
        let role = if node.is_control_plane() {
            "control-plane"
        } else {
            "worker"
        };
        let mut row = vec![
            node.name.to_string(),
            role.to_string(),
            kupgrade_core::escape::text(node.zone().unwrap_or("-")).into_owned(),
        ];
        row.extend(
            columns
                .iter()
                .map(|(c, _)| cell(cluster, node, *c).unwrap_or_else(|| "-".to_string())),
        );
        rows.push(row);
    }
    output::aligned(&rows)
}

/// The version of `c` on `node`; kube-proxy falls back to the add-on's version.
fn cell(cluster: &ClusterState, node: &kupgrade_core::Node, c: Component) -> Option<String> {
    match c {
        Component::KubeProxy => cluster.kube_proxy_on(node).map(ToString::to_string),
        // etcd image tags are written without the `v` (3.5.9-0).
        Component::Etcd => node.versions.etcd.as_ref().map(|v| v.to_plain_string()),
        _ => node.versions.get(c).map(ToString::to_string),
    }
}

fn addons_line(cluster: &ClusterState) -> String {
    let show =
        |v: Option<&kupgrade_core::KubeVersion>| v.map_or("-".to_string(), |v| v.to_string());
    let etcd = match &cluster.etcd {
        EtcdTopology::Stacked => "stacked".to_string(),
        EtcdTopology::External { version, .. } => {
            format!("external {}", show(version.as_ref()))
        }
    };
    format!(
        "Add-ons: kube-proxy {}, CoreDNS {}; etcd {etcd}; operators' kubectl {}",
        show(cluster.addons.kube_proxy.as_ref()),
        show(cluster.addons.coredns.as_ref()),
        show(cluster.kubectl.as_ref()),
    )
}

/// Every Kubernetes minor the cluster runs, with its status on `date`, the components on it
/// and the newest patch the calendar knows by then.
fn support_section(cluster: &ClusterState, calendar: &ReleaseCalendar, date: Date) -> String {
    // minor -> component -> number of nodes (0 for cluster-wide versions)
    let mut minors: BTreeMap<Minor, BTreeMap<Component, usize>> = BTreeMap::new();
    for node in &cluster.nodes {
        for (c, v) in node.versions.iter() {
            if c.version_line() == VersionLine::Kubernetes {
                *minors.entry(v.minor()).or_default().entry(c).or_default() += 1;
            }
        }
    }
    for v in [cluster.addons.kube_proxy.as_ref(), cluster.kubectl.as_ref()]
        .into_iter()
        .flatten()
    {
        minors.entry(v.minor()).or_default();
    }

    let mut out = format!("Support status on {date}");
    if let Some(as_of) = calendar.as_of() {
        out.push_str(&format!(" (release calendar as of {as_of})"));
    }
    out.push_str(":\n");
    let statuses: Vec<String> = minors
        .keys()
        .map(|m| calendar.status(*m, date).to_string())
        .collect();
    let width = statuses.iter().map(String::len).max().unwrap_or(0);
    for ((minor, components), status) in minors.iter().zip(&statuses) {
        let newest = calendar.latest_patch_on(*minor, date).map_or_else(
            || "no patch yet".to_string(),
            |v| format!("newest patch {v}"),
        );
        out.push_str(&format!("  {minor:<5} {status:<width$}  {newest}\n"));
        if !components.is_empty() {
            let list: Vec<String> = components
                .iter()
                .map(|(c, n)| format!("{c} ({n})"))
                .collect();
            out.push_str(&format!("        runs: {}\n", list.join(", ")));
        }
    }
    let supported: Vec<String> = calendar
        .supported_minors(date)
        .into_iter()
        .map(|m| m.to_string())
        .collect();
    out.push_str(&format!(
        "Minors receiving patches on {date}: {}\n",
        if supported.is_empty() {
            "none known".to_string()
        } else {
            supported.join(", ")
        }
    ));
    out
}
