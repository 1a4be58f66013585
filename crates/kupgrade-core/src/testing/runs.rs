//! Runs for tests that drive a [`Run`] by hand: one under the upstream skew policy, a task's
//! success, and the errors the upstream policy finds in a state.
use std::sync::Arc;

use crate::ClusterState;
use crate::plan::UpgradePlan;
use crate::run::{Outcome, Record, Run, RunOptions, Task, TaskResult};
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

/// The outcome of `task`: it succeeded (at the attempt it was given).
pub fn succeeded(task: Task) -> Outcome {
    Outcome {
        task: task.id,
        attempt: task.attempt,
        result: TaskResult::Succeeded,
    }
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
