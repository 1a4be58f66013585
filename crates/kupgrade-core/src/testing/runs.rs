//! The upstream skew policy, for tests: a run under it, and the errors it finds.
use std::sync::Arc;

use crate::ClusterState;
use crate::plan::UpgradePlan;
use crate::run::{Record, Run, RunOptions};
use crate::skew::{Severity, SkewPolicy, UpstreamPolicy};

/// A run of `plan` under the upstream skew policy with default options, resumed from
/// `records` (empty: a new run).
///
/// # Panics
/// When `records` do not replay onto `plan`.
pub fn upstream_run(plan: &Arc<UpgradePlan>, records: &[Record]) -> Run {
    Run::resume(
        plan.clone(),
        Arc::new(UpstreamPolicy::new()),
        RunOptions::default(),
        records,
    )
    .unwrap_or_else(|e| panic!("the journal does not replay: {e}"))
}

/// The errors the upstream policy finds in `state` (by [`SkewPolicy::evaluate`]), as text.
pub fn upstream_errors(state: &ClusterState) -> Vec<String> {
    UpstreamPolicy::new()
        .evaluate(state)
        .into_iter()
        .filter(|v| v.severity == Severity::Error)
        .map(|v| v.to_string())
        .collect()
}
