//! A check before each hop: something the caller asks, once per session, before the first
//! task of each hop after the first starts (the first hop's is the caller's own, before the
//! run). Pre-stage tasks (downloads and image pulls ahead, which change nothing the cluster
//! shows and may run while the hop before is under way) do not ask: the hop's first other
//! task does. `apply` evaluates the readiness catalogue there on fresh evidence: a cluster can
//! change in the hours a long run takes.
//!
//! A check that fails fails the task that was about to start, as a gate does
//! ([`FailureKind::GateFailed`]: not retried, the run halts), with the check's words; a
//! resumed session asks again.
use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use kupgrade_core::plan::UpgradePlan;
use kupgrade_core::run::{Failure, FailureKind};

use super::Driver;

/// What the driver asks, once per session, before the first task of each hop after the first
/// starts; a check that fails fails that task as a gate does (not retried, the run halts),
/// with the check's words, and a resumed session asks again.
#[async_trait]
pub trait HopCheck: Send + Sync {
    /// Whether `hop` (an index into `plan.hops`) may start: `Err` says why not, in words that
    /// name what would let it (an option, a file).
    async fn before_hop(&self, plan: &UpgradePlan, hop: usize) -> Result<(), String>;
}

/// The hops checked in this session, and how each check ended.
pub(super) type Checked = Arc<tokio::sync::Mutex<HashMap<usize, Result<(), String>>>>;

impl Driver {
    /// Asks `check` before each hop after the first (once per session; not in a dry run).
    pub fn before_each_hop(mut self, check: Arc<dyn HopCheck>) -> Self {
        self.hop_check = Some(check);
        self
    }

    /// The hop check for a task of `hop`: asked by the first task of the hop that starts in
    /// this session (the others wait for its answer and share it).
    pub(super) async fn check_hop(
        &self,
        plan: &UpgradePlan,
        hop: Option<usize>,
    ) -> Result<(), Failure> {
        let (Some(check), Some(hop)) = (&self.hop_check, hop) else {
            return Ok(());
        };
        if hop == 0 {
            return Ok(());
        }
        let mut checked = self.hops_checked.lock().await;
        let verdict = match checked.get(&hop) {
            Some(v) => v.clone(),
            None => {
                tracing::info!(hop, "checking before the hop");
                let v = check.before_hop(plan, hop).await;
                checked.insert(hop, v.clone());
                v
            }
        };
        verdict.map_err(|why| {
            let to = plan
                .hops
                .get(hop)
                .map(|h| h.to.to_string())
                .unwrap_or_default();
            Failure::new(
                FailureKind::GateFailed,
                format!("the check before hop {} (to {to}) failed: {why}", hop + 1),
            )
        })
    }
}
