//! The driver's part in the replace strategy: refusing a plan that needs a node provider
//! when there is none, before anything runs, and looking for a node's machine before
//! creating it again after a crash.
use std::time::Duration;

use jiff::Timestamp;
use kupgrade_core::plan::{Action, Executor};
use kupgrade_core::ports::{MachineLookup, OpsError};
use kupgrade_core::run::{Resolution, Run, TaskId};
use kupgrade_core::{KubeVersion, NodeName};

use super::{CURRENT_TASK, Driver, DriverError, JournalSink};

/// ` (a, b, c and 2 more)`: the first few of `names`, or nothing for none.
fn some(names: &[String]) -> String {
    const SHOWN: usize = 3;
    match names.len() {
        0 => String::new(),
        n if n <= SHOWN => format!(" ({})", names.join(", ")),
        n => format!(" ({} and {} more)", names[..SHOWN].join(", "), n - SHOWN),
    }
}

/// What `run` still has to do that needs a [`NodeProvider`](kupgrade_core::ports::NodeProvider)
/// (`creates 2 node(s) (a, b) and removes 2 (c, d)`), or `None` when no task left to do
/// creates or removes a node. A driver without a provider refuses such a run before anything
/// runs ([`DriverError::NoProvider`]); a front end can ask first, before it opens a journal.
pub fn provider_needed(run: &Run) -> Option<String> {
    let mut created = Vec::new();
    let mut removed = Vec::new();
    for step in run
        .plan()
        .steps
        .iter()
        .filter(|s| s.action.executor() == Executor::Provider)
    {
        let list = match step.action {
            Action::ProvisionNodes { .. } => &mut created,
            _ => &mut removed,
        };
        list.extend(
            step.nodes
                .iter()
                .filter(|n| !run.is_done(&TaskId::new(step.id.clone(), Some((*n).clone()))))
                .map(|n| n.to_string()),
        );
    }
    if created.is_empty() && removed.is_empty() {
        return None;
    }
    Some(format!(
        "creates {} node(s){} and removes {}{}",
        created.len(),
        some(&created),
        removed.len(),
        some(&removed)
    ))
}

impl Driver {
    /// Refuses `run` when a task that is not done yet provisions or removes nodes and the
    /// driver has no provider: better nothing at all than a control plane upgraded and a
    /// run halted at its first new node.
    pub(super) fn check_provider(&self, run: &Run) -> Result<(), DriverError> {
        match (&self.provider, provider_needed(run)) {
            (None, Some(what)) => Err(DriverError::NoProvider { what }),
            _ => Ok(()),
        }
    }

    /// For each provisioning task an earlier session left unsure, asks the provider whether
    /// the node's machine exists, before [`Run::next`] decides about it. No machine: the task
    /// is resolved to run again (journaled), and the node is created anew. A machine: the
    /// driver waits up to [`Driver::join_wait`] for the node to be Ready at its version; the
    /// run then marks the task done if the cluster shows it so, and halts otherwise. The
    /// provider cannot tell, or the lookup fails: the run decides from the cluster alone, as
    /// without a lookup (halting and asking the operator when the node is not there).
    pub(super) async fn look_before_creating(
        &self,
        run: &mut Run,
        journal: &mut dyn JournalSink,
        now: Timestamp,
    ) -> Result<(), DriverError> {
        let Some(provider) = &self.provider else {
            return Ok(());
        };
        let plan = run.plan().clone();
        for step in &plan.steps {
            let Action::ProvisionNodes { version, .. } = &step.action else {
                continue;
            };
            for node in &step.nodes {
                let id = TaskId::new(step.id.clone(), Some(node.clone()));
                if !run.is_unsure(&id) {
                    continue;
                }
                let found = CURRENT_TASK.scope(id.clone(), provider.find(node)).await;
                match found {
                    Ok(MachineLookup::Absent) => {
                        tracing::warn!(
                            task = %id,
                            "the node provider finds no machine for {node}: creating it again"
                        );
                        let out = run
                            .resolve(&id, Resolution::Retry, now)
                            .map_err(|e| DriverError::Stuck(e.to_string()))?;
                        self.take(out, journal)?;
                    }
                    Ok(MachineLookup::Present { detail }) => {
                        tracing::warn!(
                            task = %id,
                            "the node provider finds a machine for {node} ({detail}): it is not created again; waiting up to {}s for it to join at {version}",
                            self.join_wait.as_secs()
                        );
                        let joined = self.wait_joined(node, version);
                        if let Err(e) = CURRENT_TASK.scope(id.clone(), joined).await {
                            tracing::warn!(task = %id, "node {node} has not joined: {e}");
                        }
                    }
                    Ok(MachineLookup::Unknown) => tracing::info!(
                        task = %id,
                        "the node provider cannot look for the machine of {node}; the run decides from the cluster"
                    ),
                    Ok(other) => tracing::warn!(
                        task = %id,
                        "the node provider answered {other:?} about {node}; the run decides from the cluster"
                    ),
                    Err(e) => tracing::warn!(
                        task = %id,
                        "looking for the machine of {node} failed ({e}); the run decides from the cluster"
                    ),
                }
            }
        }
        Ok(())
    }
}

/// How often a session looks again for a node whose machine exists but that is not in the
/// cluster yet.
const JOIN_POLL: Duration = Duration::from_secs(2);

impl Driver {
    /// Waits up to [`Driver::join_wait`] for `node` to be Ready at `version`, looking again
    /// while the node is not in the cluster yet (a machine still booting).
    async fn wait_joined(&self, node: &NodeName, version: &KubeVersion) -> Result<(), OpsError> {
        let deadline = tokio::time::Instant::now() + self.join_wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.ops.wait_ready(node, version, left).await {
                Ok(()) => return Ok(()),
                Err(_) if tokio::time::Instant::now() + JOIN_POLL < deadline => {
                    tokio::time::sleep(JOIN_POLL).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
