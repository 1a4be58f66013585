//! How a gate is judged, from what the API returns: one home for "rolled out", "has the
//! condition" and "worse off than before", which every backend feeds with objects as JSON.
//!
//! Each function returns what is wrong, one sentence per problem naming the object, the pod
//! or the budget; an empty list passes.
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ConditionCheck, ObjectRef, WorkloadKind, qualified};

fn int(v: &Value, path: &[&str]) -> Option<i64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_i64()
}

fn text<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// What keeps `object` (a `kind` workload as the API returns it; `None`: not found) from
/// being fully rolled out and available.
pub fn rollout_problems(
    kind: WorkloadKind,
    what: &ObjectRef,
    object: Option<&Value>,
) -> Vec<String> {
    let Some(o) = object else {
        return vec![format!("{what} was not found")];
    };
    let mut out = Vec::new();
    let status = |k: &str| int(o, &["status", k]).unwrap_or(0);
    if let (Some(generation), observed) = (
        int(o, &["metadata", "generation"]),
        int(o, &["status", "observedGeneration"]).unwrap_or(0),
    ) && observed < generation
    {
        out.push(format!(
            "{what}: its controller has not yet seen generation {generation} (it saw {observed})"
        ));
    }
    match kind {
        WorkloadKind::Deployment | WorkloadKind::StatefulSet => {
            let want = int(o, &["spec", "replicas"]).unwrap_or(1);
            let updated = status("updatedReplicas");
            let (ready_word, ready) = match kind {
                WorkloadKind::Deployment => ("available", status("availableReplicas")),
                _ => ("ready", status("readyReplicas")),
            };
            if updated < want {
                out.push(format!("{what}: {updated} of {want} replicas updated"));
            }
            if kind == WorkloadKind::Deployment && status("replicas") > updated && updated >= want {
                out.push(format!(
                    "{what}: {} old replica(s) still running",
                    status("replicas") - updated
                ));
            }
            if ready < want {
                out.push(format!("{what}: {ready} of {want} replicas {ready_word}"));
            }
            if kind == WorkloadKind::StatefulSet
                && let (Some(cur), Some(upd)) = (
                    text(o, &["status", "currentRevision"]),
                    text(o, &["status", "updateRevision"]),
                )
                && cur != upd
                && updated >= want
            {
                out.push(format!(
                    "{what}: revision {upd} is not yet current ({cur} is)"
                ));
            }
        }
        WorkloadKind::DaemonSet => {
            let want = status("desiredNumberScheduled");
            let updated = status("updatedNumberScheduled");
            let available = status("numberAvailable");
            if updated < want {
                out.push(format!("{what}: {updated} of {want} pods updated"));
            }
            if available < want {
                out.push(format!("{what}: {available} of {want} pods available"));
            }
        }
    }
    out
}

/// What keeps `object` (as the API returns it; `None`: not found) from having `check`'s
/// condition.
pub fn condition_problems(check: &ConditionCheck, object: Option<&Value>) -> Vec<String> {
    let what = check.object();
    let Some(o) = object else {
        return vec![format!("{what} was not found")];
    };
    let conditions = o
        .get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array);
    let found = conditions
        .into_iter()
        .flatten()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(&check.condition_type));
    match found {
        None => vec![format!(
            "{what} has no condition {:?} yet",
            check.condition_type
        )],
        Some(c) => {
            let status = c.get("status").and_then(Value::as_str).unwrap_or("");
            if status == check.status {
                return Vec::new();
            }
            let mut s = format!(
                "{what}: condition {} is {status:?}, expected {:?}",
                check.condition_type, check.status
            );
            for key in ["reason", "message"] {
                if let Some(v) = c.get(key).and_then(Value::as_str)
                    && !v.is_empty()
                {
                    s.push_str(&format!(" ({key}: {})", crate::escape::text(v)));
                }
            }
            vec![s]
        }
    }
}

/// One pod as a regression gate sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodHealth {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The node it runs on, when scheduled.
    pub node: Option<String>,
    /// Its phase (`Running`, `Pending`, `Succeeded`).
    pub phase: String,
    /// Its `Ready` condition is `True`.
    pub ready: bool,
    /// A container waits in `CrashLoopBackOff`.
    pub crash_looping: bool,
    /// Its containers' restarts, summed.
    pub restarts: u64,
}

impl PodHealth {
    /// A pod as the API returns it (JSON); `None` when it has no name.
    pub fn from_json(pod: &Value) -> Option<Self> {
        let name = text(pod, &["metadata", "name"])?.to_string();
        let namespace = text(pod, &["metadata", "namespace"])
            .unwrap_or("default")
            .to_string();
        let status = pod.get("status");
        let conditions = status
            .and_then(|s| s.get("conditions"))
            .and_then(Value::as_array);
        let ready = conditions.into_iter().flatten().any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Ready")
                && c.get("status").and_then(Value::as_str) == Some("True")
        });
        let containers = status
            .and_then(|s| s.get("containerStatuses"))
            .and_then(Value::as_array);
        let mut crash_looping = false;
        let mut restarts = 0u64;
        for c in containers.into_iter().flatten() {
            restarts =
                restarts.saturating_add(int(c, &["restartCount"]).unwrap_or(0).max(0) as u64);
            if text(c, &["state", "waiting", "reason"]) == Some("CrashLoopBackOff") {
                crash_looping = true;
            }
        }
        Some(PodHealth {
            namespace,
            name,
            node: text(pod, &["spec", "nodeName"]).map(ToString::to_string),
            phase: text(pod, &["status", "phase"])
                .unwrap_or("Pending")
                .to_string(),
            ready,
            crash_looping,
            restarts,
        })
    }

    fn id(&self) -> (&str, &str) {
        (&self.namespace, &self.name)
    }

    fn on(&self) -> String {
        self.node
            .as_deref()
            .map(|n| format!(" on {n}"))
            .unwrap_or_default()
    }
}

/// One PodDisruptionBudget as a regression gate sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetHealth {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `status.currentHealthy`.
    pub current_healthy: i64,
    /// `status.desiredHealthy`.
    pub desired_healthy: i64,
}

impl BudgetHealth {
    /// A budget as the API returns it (JSON, `policy/v1` or `policy/v1beta1`); `None` when
    /// it has no name.
    pub fn from_json(pdb: &Value) -> Option<Self> {
        Some(BudgetHealth {
            namespace: text(pdb, &["metadata", "namespace"])
                .unwrap_or("default")
                .to_string(),
            name: text(pdb, &["metadata", "name"])?.to_string(),
            current_healthy: int(pdb, &["status", "currentHealthy"]).unwrap_or(0),
            desired_healthy: int(pdb, &["status", "desiredHealthy"]).unwrap_or(0),
        })
    }

    fn below(&self) -> bool {
        self.current_healthy < self.desired_healthy
    }
}

/// The pods and budgets a regression gate watches, at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadSnapshot {
    /// The pods.
    pub pods: Vec<PodHealth>,
    /// The budgets.
    pub budgets: Vec<BudgetHealth>,
}

impl WorkloadSnapshot {
    /// What is worse now (`self`) than in `before`: a pod newly not Ready (not Ready now, and
    /// Ready before or not there: a replacement that has not come up), newly crash-looping,
    /// or restarted since; a budget newly below its desired healthy count. Pods that have
    /// finished (`Succeeded`) are left out. Without a snapshot from before (a resumed run
    /// whose snapshot was taken by an earlier session) every pod is judged as new: nothing
    /// may be unhealthy, and restarts are not compared.
    pub fn regressions(&self, before: Option<&WorkloadSnapshot>) -> Vec<String> {
        let old_pod = |p: &PodHealth| before?.pods.iter().find(|b| b.id() == p.id());
        let mut out = Vec::new();
        for p in &self.pods {
            if p.phase == "Succeeded" {
                continue;
            }
            let was = old_pod(p);
            let who = format!("pod {}{}", qualified(Some(&p.namespace), &p.name), p.on());
            if p.crash_looping && !was.is_some_and(|b| b.crash_looping) {
                out.push(format!("{who} is crash-looping"));
            } else if !p.ready && was.is_none_or(|b| b.ready) {
                let new = if was.is_none() { " (new since)" } else { "" };
                out.push(format!("{who} is not Ready{new}, phase {}", p.phase));
            }
            if let Some(b) = was
                && p.restarts > b.restarts
            {
                out.push(format!(
                    "{who} restarted {} time(s) since (restarts {} -> {})",
                    p.restarts - b.restarts,
                    b.restarts,
                    p.restarts
                ));
            }
        }
        for b in &self.budgets {
            let was = before.and_then(|s| {
                s.budgets
                    .iter()
                    .find(|o| o.namespace == b.namespace && o.name == b.name)
            });
            if b.below() && !was.is_some_and(BudgetHealth::below) {
                out.push(format!(
                    "disruption budget {}: {} healthy, {} desired",
                    qualified(Some(&b.namespace), &b.name),
                    b.current_healthy,
                    b.desired_healthy
                ));
            }
        }
        out
    }
}

/// `problems` for a message: the first `max`, and how many more there are.
pub fn summarize(problems: &[String], max: usize) -> String {
    let mut s = problems
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > max {
        s.push_str(&format!("; and {} more", problems.len() - max));
    }
    s
}
