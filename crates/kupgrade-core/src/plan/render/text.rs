//! Text for a terminal.
use crate::plan::UpgradePlan;

/// The plan as text.
pub fn text(plan: &UpgradePlan) -> String {
    format!("{}\n", plan.target)
}
