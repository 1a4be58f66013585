//! The readiness catalogue again before each hop after the first (`Driver::before_each_hop`):
//! the evidence read anew the way the run's start read it (`--evidence FILE` re-read, or
//! gathered from the API with `--kubeconfig`, and from the nodes with `--gather-nodes`), and
//! an error of that hop not accepted (by `--accept` or the journal) halts the run naming it
//! and the `--accept` that lets a resume go on.
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use kupgrade_core::ClusterState;
use kupgrade_core::plan::UpgradePlan;
use kupgrade_core::ports::CommandRunner;
use kupgrade_exec::driver::HopCheck;

use super::readiness::{self, EvidenceArgs};

/// What the check needs to read the evidence again and judge it.
pub(crate) struct ReadinessBeforeHop {
    pub(crate) evidence: EvidenceArgs,
    pub(crate) client: Option<kube::Client>,
    /// With `--gather-nodes`: the executor's runner, and each node's sandbox root (local
    /// executor) when there is one.
    pub(crate) nodes: Option<(Arc<dyn CommandRunner>, ClusterState, Option<PathBuf>)>,
    /// The findings accepted (`check:subject`), by `--accept` and in the journal.
    pub(crate) accepted: BTreeSet<String>,
}

#[async_trait]
impl HopCheck for ReadinessBeforeHop {
    async fn before_hop(&self, plan: &UpgradePlan, hop: usize) -> Result<(), String> {
        let shown = |e: anyhow::Error| format!("reading the readiness evidence again: {e:#}");
        let mut evidence = self
            .evidence
            .load(self.client.as_ref())
            .await
            .map_err(shown)?
            .unwrap_or_default();
        if let Some((runner, cluster, sandbox)) = &self.nodes {
            let root = |node: &kupgrade_core::NodeName| match sandbox {
                Some(dir) => dir.join(node.as_str()).display().to_string(),
                None => String::new(),
            };
            readiness::gather_nodes(&mut evidence, runner.as_ref(), cluster, root)
                .await
                .map_err(shown)?;
        }
        let report = readiness::evaluate(plan, &evidence);
        let open: Vec<String> = report
            .errors()
            .filter(|f| f.hop == Some(hop) && !self.accepted.contains(&f.key()))
            .map(|f| format!("{f} (to go on anyway: --accept {})", f.key()))
            .collect();
        match open.is_empty() {
            true => Ok(()),
            false => Err(format!(
                "{} readiness error(s) of this hop, found on the evidence read now: {}; resume (--resume) once they are fixed or accepted",
                open.len(),
                open.join("; ")
            )),
        }
    }
}
