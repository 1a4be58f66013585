//! Mermaid gantt.
use crate::plan::UpgradePlan;

/// The plan as a Mermaid gantt chart.
pub fn mermaid(plan: &UpgradePlan) -> String {
    format!("{}\n", plan.target)
}
