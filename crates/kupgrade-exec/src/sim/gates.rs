//! The simulated cluster as a [`GateProbe`]: objects a test sets ([`SimCluster::set_object`]),
//! and its pods and budgets, with the trouble a test gives a pod
//! ([`SimCluster::set_pod_trouble`]).
use std::collections::BTreeMap;

use async_trait::async_trait;
use kupgrade_core::gate::{BudgetHealth, ObjectRef, PodHealth, RegressionCheck, WorkloadSnapshot};
use kupgrade_core::ports::{GateProbe, OpsError, PodRef};
use serde_json::Value;

use super::SimCluster;

/// What a test sets for the gate probe: the objects it returns, and pods' trouble. Not part
/// of the persisted state.
#[derive(Debug, Default)]
pub(crate) struct GateObjects {
    objects: BTreeMap<ObjectRef, Value>,
    /// By namespace and name: crash-looping, restarts.
    trouble: BTreeMap<(String, String), (bool, u64)>,
}

impl SimCluster {
    /// Sets what the gate probe returns for `object` (`None`: it does not exist).
    pub fn set_object(&self, object: &ObjectRef, value: Option<Value>) {
        let mut inner = self.lock();
        match value {
            Some(v) => inner.gates.objects.insert(object.clone(), v),
            None => inner.gates.objects.remove(object),
        };
    }

    /// Gives `pod` trouble: crash-looping (then it is not Ready either), and its restarts.
    pub fn set_pod_trouble(&self, pod: &PodRef, crash_looping: bool, restarts: u64) {
        self.lock().gates.trouble.insert(
            (pod.namespace.clone(), pod.name.clone()),
            (crash_looping, restarts),
        );
    }
}

/// Equality-based selectors (`a=b,c!=d`, `a==b`); anything else is refused.
fn matches(selector: &str, labels: &BTreeMap<String, String>) -> Result<bool, OpsError> {
    let mut all = true;
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let ok = if let Some((k, v)) = term.split_once("!=") {
            labels.get(k.trim()).map(String::as_str) != Some(v.trim())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            labels.get(k.trim()).map(String::as_str) == Some(v.trim())
        } else {
            return Err(OpsError::Unsupported(format!(
                "the simulated cluster only knows equality selectors, not {term:?}"
            )));
        };
        all &= ok;
    }
    Ok(all)
}

#[async_trait]
impl GateProbe for SimCluster {
    async fn object(&self, object: &ObjectRef) -> Result<Option<Value>, OpsError> {
        Ok(self.lock().gates.objects.get(object).cloned())
    }

    async fn workloads(&self, selector: &RegressionCheck) -> Result<WorkloadSnapshot, OpsError> {
        let inner = self.lock();
        let now = inner.now_ms();
        let picked = |namespace: &str, labels: &BTreeMap<String, String>| {
            if selector
                .namespace
                .as_deref()
                .is_some_and(|ns| ns != namespace)
            {
                return Ok(false);
            }
            match &selector.selector {
                Some(s) => matches(s, labels),
                None => Ok(true),
            }
        };
        let mut out = WorkloadSnapshot::default();
        for p in &inner.state.pods {
            if !picked(&p.namespace, &p.labels)? {
                continue;
            }
            let (crash_looping, restarts) = inner
                .gates
                .trouble
                .get(&(p.namespace.clone(), p.name.clone()))
                .copied()
                .unwrap_or((false, 0));
            let ready = p.ready(now) && !crash_looping;
            out.pods.push(PodHealth {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                node: p.node.as_ref().map(ToString::to_string),
                phase: if p.node.is_some() {
                    "Running"
                } else {
                    "Pending"
                }
                .into(),
                ready,
                crash_looping,
                restarts,
            });
        }
        for b in &inner.state.budgets {
            if !picked(&b.namespace, &b.selector)? {
                continue;
            }
            let healthy = (inner.state.pods.iter())
                .filter(|p| b.covers(p) && p.ready(now))
                .filter(|p| {
                    !inner
                        .gates
                        .trouble
                        .get(&(p.namespace.clone(), p.name.clone()))
                        .is_some_and(|t| t.0)
                })
                .count() as i64;
            let desired = match (b.min_available, b.max_unavailable) {
                (Some(min), _) => i64::from(min),
                (None, Some(max)) => (i64::from(b.expected) - i64::from(max)).max(0),
                (None, None) => 0,
            };
            out.budgets.push(BudgetHealth {
                namespace: b.namespace.clone(),
                name: b.name.clone(),
                current_healthy: healthy,
                desired_healthy: desired,
            });
        }
        Ok(out)
    }
}
