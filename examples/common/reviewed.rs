//! A reviewed plan: `plan --format json` records the plan's fingerprint in the document, and
//! `apply --plan FILE` runs that document only if it is unchanged and still fits the cluster.
use anyhow::{Context, bail};
use kupgrade_core::ClusterState;
use kupgrade_core::plan::UpgradePlan;
use kupgrade_core::plan::render::Format;
use kupgrade_core::run::fingerprint;

/// The document's field that holds the fingerprint.
const FINGERPRINT: &str = "fingerprint";

/// The plan as JSON (`--format json`), its fingerprint the first field. The rest is the plan's
/// own JSON, so the document still matches the plan schema.
pub(crate) fn to_json(plan: &UpgradePlan) -> String {
    let json = Format::Json.render(plan);
    match json.strip_prefix('{') {
        Some(rest) => format!("{{\n  \"{FINGERPRINT}\": \"{}\",{rest}", fingerprint(plan)),
        None => json,
    }
}

/// Writes [`to_json`] to `out` as it goes.
#[allow(dead_code)] // Only `plan` writes plans.
pub(crate) fn write_json(plan: &UpgradePlan, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    write!(out, "{{\n  \"{FINGERPRINT}\": \"{}\",", fingerprint(plan))?;
    // The plan's own JSON, without its opening brace.
    Format::Json.write(plan, &mut SkipFirst { out, skip: 1 })
}

/// Passes bytes on to `out` but the first `skip`.
#[allow(dead_code)] // Only `plan` writes plans.
struct SkipFirst<'a> {
    out: &'a mut dyn std::io::Write,
    skip: usize,
}

impl std::io::Write for SkipFirst<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.skip.min(buf.len());
        self.skip -= n;
        if n == buf.len() {
            return Ok(n);
        }
        self.out.write(&buf[n..]).map(|w| w + n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Reads the plan `file` (written by `plan --format json`) and checks that it is the plan that
/// was reviewed: the fingerprint recorded in it matches the plan it holds.
pub(crate) fn read(file: &str) -> anyhow::Result<UpgradePlan> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    let mut doc: serde_json::Value = serde_json::from_str(&text).with_context(|| {
        format!("{file} is not JSON: --plan takes the output of `plan --format json`")
    })?;
    // A readiness report beside the plan (`plan --evidence`) is not part of what was reviewed.
    if let Some(o) = doc.as_object_mut() {
        o.remove("readiness");
    }
    let recorded = doc.as_object_mut().and_then(|o| o.remove(FINGERPRINT));
    let Some(serde_json::Value::String(recorded)) = recorded else {
        bail!(
            "{file} records no fingerprint: --plan takes the output of `plan --format json`, which records the plan's"
        );
    };
    let plan: UpgradePlan = serde_json::from_value(doc)
        .with_context(|| format!("{file} does not hold a kupgrade plan"))?;
    let now = fingerprint(&plan);
    if now != recorded {
        bail!(
            "{file} was edited after it was written: the plan in it has fingerprint {now}, the one written with it {recorded}; plan again and review the new plan"
        );
    }
    Ok(plan)
}

/// Where `cluster` is not where `plan` starts from, one line per node (and one for the control
/// plane); empty when the plan fits. A plan made for another state must not run.
pub(crate) fn differences(plan: &UpgradePlan, cluster: &ClusterState) -> Vec<String> {
    let mut out = Vec::new();
    let show = |v: Option<&kupgrade_core::KubeVersion>| v.map_or("none".into(), |v| v.to_string());
    for node in plan.nodes.iter().filter(|n| !n.provisioned) {
        match cluster.node(node.name.as_str()) {
            None => out.push(format!("{}: in the plan, not in the cluster", node.name)),
            Some(live) if live.kubelet() != node.kubelet.as_ref() => out.push(format!(
                "{}: kubelet {} in the plan, {} in the cluster",
                node.name,
                show(node.kubelet.as_ref()),
                show(live.kubelet())
            )),
            Some(_) => {}
        }
    }
    for node in &cluster.nodes {
        if plan.node(node.name.as_str()).is_none() {
            out.push(format!("{}: in the cluster, not in the plan", node.name));
        }
    }
    let oldest = cluster
        .control_plane()
        .filter_map(|n| n.versions.kube_apiserver.as_ref())
        .min();
    if oldest != Some(&plan.from) {
        out.push(format!(
            "control plane: the oldest kube-apiserver is {} in the plan, {} in the cluster",
            plan.from,
            show(oldest)
        ));
    }
    out
}
