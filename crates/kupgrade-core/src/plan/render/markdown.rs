//! Markdown runbook.
use crate::plan::UpgradePlan;

/// The plan as Markdown.
pub fn markdown(plan: &UpgradePlan) -> String {
    format!("{}\n", plan.target)
}
