//! Readiness in the examples: `--evidence FILE` (gathered evidence, JSON or YAML) or, with
//! `--kubeconfig`, the API's evidence gathered live (`--no-gather` skips it), the
//! catalogue evaluated on a plan and shown with it in every format, `--batch auto`'s pods and
//! budgets, and `--accept CHECK:SUBJECT` for `apply`'s gate.
use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use kupgrade_core::plan::UpgradePlan;
use kupgrade_core::plan::render::Format;
use kupgrade_core::readiness::{Catalogue, Evidence, Gathered, Readiness, Workloads, render};

/// Where the readiness evidence comes from.
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct EvidenceArgs {
    /// Gathered readiness evidence (JSON or YAML): the findings per hop and every check's
    /// coverage are shown with the plan, and `--batch auto` cuts batches from its pods and
    /// PodDisruptionBudgets.
    #[arg(long, value_name = "FILE")]
    pub(crate) evidence: Option<PathBuf>,
    /// With --kubeconfig: do not gather readiness evidence from the cluster's API (it is
    /// gathered by default when no --evidence file is given).
    #[arg(long, conflicts_with = "evidence")]
    pub(crate) no_gather: bool,
}

impl EvidenceArgs {
    /// The evidence of `--evidence`, when given.
    pub(crate) fn read(&self) -> anyhow::Result<Option<Evidence>> {
        let Some(path) = &self.evidence else {
            return Ok(None);
        };
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {name}"))?;
        let evidence = if path.extension().is_some_and(|e| e == "json") {
            Evidence::from_json(&text, &name)?
        } else {
            Evidence::from_yaml(&text, &name)?
        };
        Ok(Some(evidence))
    }
}

impl EvidenceArgs {
    /// The evidence: `--evidence FILE` when given; else, with a `client` (`--kubeconfig`) and
    /// without `--no-gather`, what the cluster's API shows now (every piece on its own: one
    /// the API refuses is marked missing with the reason, so its checks are "not checkable").
    /// Node-side pieces (cgroup, disk, certificates, packages) need node access and stay
    /// missing here.
    pub(crate) async fn load(
        &self,
        client: Option<&kube::Client>,
    ) -> anyhow::Result<Option<Evidence>> {
        let (Some(client), None, false) = (client, &self.evidence, self.no_gather) else {
            return self.read();
        };
        eprintln!(
            "gathering readiness evidence from the cluster's API (--no-gather skips it, --evidence FILE reads it from a file)"
        );
        let started = std::time::Instant::now();
        let options = kupgrade_kube::evidence::GatherOptions::default();
        let evidence = kupgrade_kube::evidence::gather(client, &options).await;
        eprintln!("gathered in {:.1} s", started.elapsed().as_secs_f64());
        Ok(Some(evidence))
    }
}

/// Reads the evidence only the nodes can give through `runner` (every node of `cluster`, the
/// control-plane facts on control-plane nodes; `root` puts a directory before the files read,
/// `""` on real nodes, a sandbox on the local executor's) and puts it into `evidence`: a fact
/// already there (from `--evidence FILE`) is kept. A fact a node cannot give is marked
/// missing with the reason, so its checks say "not checkable".
pub(crate) async fn gather_nodes(
    evidence: &mut Evidence,
    runner: &dyn kupgrade_core::ports::CommandRunner,
    cluster: &kupgrade_core::ClusterState,
    root: impl Fn(&kupgrade_core::NodeName) -> String,
) -> anyhow::Result<()> {
    use kupgrade_exec::node_evidence::{NodeEvidenceOptions, gather_nodes, merge_node_facts};
    let nodes: Vec<_> = cluster
        .nodes
        .iter()
        .map(|n| {
            let mut options = match n.is_control_plane() {
                true => NodeEvidenceOptions::control_plane(),
                false => NodeEvidenceOptions::default(),
            };
            options.root = root(&n.name);
            (n.name.clone(), options)
        })
        .collect();
    eprintln!(
        "gathering readiness evidence from {} node(s) through the executor (read-only commands)",
        nodes.len()
    );
    let started = std::time::Instant::now();
    let facts = gather_nodes(runner, &nodes)
        .await
        .context("gathering readiness evidence from the nodes")?;
    // Per fact: how many nodes gave it, and why the first one that did not.
    let mut read = 0;
    for (what, facts_of) in node_fact_kinds() {
        let (mut found, mut asked, mut first) = (0, 0, None);
        for f in &facts {
            match facts_of(f) {
                None => {}
                Some(None) => {
                    asked += 1;
                    found += 1;
                }
                Some(Some(why)) => {
                    asked += 1;
                    first.get_or_insert(why);
                }
            }
        }
        read += found;
        match first {
            Some(why) if asked > 0 => {
                eprintln!("  {what}: {found} of {asked} node(s); not from the others ({why})")
            }
            _ => {}
        }
    }
    eprintln!(
        "gathered {read} node fact(s) in {:.1} s (what a node could not give is shown as not checkable)",
        started.elapsed().as_secs_f64()
    );
    merge_node_facts(evidence, facts);
    Ok(())
}

/// What one node gave of a fact: `None` when it was not asked (control-plane facts on a
/// worker), `Some(None)` when found, `Some(Some(why))` when missing.
type FactOf = fn(&kupgrade_core::readiness::NodeFacts) -> Option<Option<String>>;

/// The node facts `gather_nodes` reads, by name.
fn node_fact_kinds() -> [(&'static str, FactOf); 7] {
    fn of<T>(g: &Gathered<T>) -> Option<Option<String>> {
        match g {
            Gathered::Found(_) => Some(None),
            Gathered::Missing(m)
                if m.reason == kupgrade_core::readiness::MissingReason::NotGathered =>
            {
                None
            }
            Gathered::Missing(m) => Some(Some(m.to_string())),
        }
    }
    [
        ("cgroup", |f| of(&f.cgroup)),
        ("disk", |f| of(&f.disk)),
        ("packages offered", |f| of(&f.packages)),
        ("package sources", |f| of(&f.repositories)),
        ("etcd image", |f| of(&f.etcd)),
        ("certificates", |f| of(&f.certificates)),
        ("kubelet's API server", |f| of(&f.kubelet_server)),
    ]
}

/// The pods and budgets `--batch auto` needs, from `evidence`; the error names what is
/// missing and why.
pub(crate) fn workloads(evidence: Option<&Evidence>) -> anyhow::Result<&Workloads> {
    match evidence.map(|e| &e.workloads) {
        Some(Gathered::Found(w)) => Ok(w),
        Some(Gathered::Missing(m)) => bail!(
            "--batch auto sizes batches from the cluster's pods and PodDisruptionBudgets, and the evidence's workloads are missing ({m}): gather them, or give --batch a count or a percentage"
        ),
        None => bail!(
            "--batch auto sizes batches from the cluster's pods and PodDisruptionBudgets: give them with --evidence FILE (its workloads), or give --batch a count or a percentage"
        ),
    }
}

/// The readiness of `plan` with `evidence`, from the embedded catalogue.
pub(crate) fn evaluate(plan: &UpgradePlan, evidence: &Evidence) -> Readiness {
    Catalogue::embedded().evaluate(plan, evidence)
}

/// `plan` in `format` followed by its readiness: text and Markdown append the findings per
/// hop and the coverage; JSON and YAML add a `readiness` field (the JSON one beside the
/// fingerprint, outside the plan it fingerprints); Mermaid shows the plan only.
pub(crate) fn plan_with(
    plan: &UpgradePlan,
    readiness: &Readiness,
    format: Format,
    json: String,
) -> String {
    match format {
        Format::Text => render::plan_text(plan, readiness),
        Format::Markdown => render::plan_markdown(plan, readiness),
        Format::Json => match json.trim_end().strip_suffix('}') {
            Some(head) => {
                let report = render::to_json(readiness);
                let report = report.trim_end().replace('\n', "\n  ");
                format!("{},\n  \"{READINESS}\": {report}\n}}\n", head.trim_end())
            }
            None => json,
        },
        Format::Yaml => {
            let mut out = format.render(plan);
            out.push_str(READINESS);
            out.push_str(":\n");
            for line in render::to_yaml(readiness).lines() {
                out.push_str("  ");
                out.push_str(line);
                out.push('\n');
            }
            out
        }
        _ => format.render(plan),
    }
}

/// The field of a plan document that holds its readiness report.
pub(crate) const READINESS: &str = "readiness";

/// The errors of `readiness` not accepted by `accepted` (`check:subject` keys), as a refusal
/// that names `--accept` and the exact value of each; `Ok` when none is left.
pub(crate) fn gate(readiness: &Readiness, accepted: &[String]) -> anyhow::Result<Vec<String>> {
    let accepted: BTreeSet<&str> = accepted.iter().map(String::as_str).collect();
    let mut taken = Vec::new();
    let mut open = Vec::new();
    for f in readiness.errors() {
        let key = f.key();
        if accepted.contains(key.as_str()) {
            taken.push(key);
        } else {
            open.push((key, f.to_string()));
        }
    }
    if open.is_empty() {
        return Ok(taken);
    }
    let mut message = format!(
        "readiness: {} error finding(s) block the run; fix them, or accept each by id and subject:",
        open.len()
    );
    for (key, finding) in &open {
        message.push_str(&format!(
            "\n  {}\n      --accept {}",
            kupgrade_core::escape::text(finding),
            kupgrade_core::escape::text(key)
        ));
    }
    bail!(message)
}
