//! Gates read through the Kubernetes API ([`KubeGateProbe`]): any object by its
//! `apiVersion` and kind through the dynamic API (custom resources included), and the pods
//! and PodDisruptionBudgets a regression gate watches. How they are judged is the core's
//! ([`kupgrade_core::gate`]).
use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::discovery::Scope;
use kupgrade_core::gate::{BudgetHealth, ObjectRef, PodHealth, RegressionCheck, WorkloadSnapshot};
use kupgrade_core::ports::{GateProbe, OpsError};
use serde_json::Value;

use crate::budgets::selector_matches;
use crate::error::{ops_error, status_code};

/// Reads what gates judge through the Kubernetes API. Permissions: `get` on the objects
/// rollout and condition gates name (and discovery), `list` on pods and
/// poddisruptionbudgets in the namespaces regression gates watch.
///
/// ```no_run
/// use kupgrade_core::gate::{ObjectRef, WorkloadKind, Rollout, rollout_problems};
/// use kupgrade_core::ports::GateProbe;
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let probe = kupgrade_kube::KubeGateProbe::new(kupgrade_kube::connect(None, None).await?);
/// let web = Rollout { kind: WorkloadKind::Deployment, namespace: Some("shop".into()), name: "web".into() };
/// let obj = web.object();
/// let problems = rollout_problems(web.kind, &obj, probe.object(&obj).await?.as_ref());
/// println!("{problems:?}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KubeGateProbe {
    client: Client,
}

impl std::fmt::Debug for KubeGateProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeGateProbe").finish_non_exhaustive()
    }
}

impl KubeGateProbe {
    /// A probe over `client`.
    pub fn new(client: Client) -> Self {
        KubeGateProbe { client }
    }
}

fn to_json<T: serde::Serialize>(what: &str, v: &T) -> Result<Value, OpsError> {
    serde_json::to_value(v).map_err(|e| OpsError::Other {
        message: format!("{what}: {e}"),
        source: None,
    })
}

#[async_trait]
impl GateProbe for KubeGateProbe {
    async fn object(&self, object: &ObjectRef) -> Result<Option<Value>, OpsError> {
        let (group, version) = object
            .api_version
            .rsplit_once('/')
            .unwrap_or(("", object.api_version.as_str()));
        let gvk = GroupVersionKind::gvk(group, version, &object.kind);
        let what = format!("reading {object}");
        let (ar, caps) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|e| ops_error(&format!("{what}: finding the kind"), e))?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(
                self.client.clone(),
                object.namespace.as_deref().unwrap_or("default"),
                &ar,
            ),
            Scope::Cluster => Api::all_with(self.client.clone(), &ar),
        };
        match api.get_opt(&object.name).await {
            Ok(Some(o)) => Ok(Some(to_json(&what, &o)?)),
            Ok(None) => Ok(None),
            Err(e) => Err(ops_error(&what, e)),
        }
    }

    async fn workloads(&self, selector: &RegressionCheck) -> Result<WorkloadSnapshot, OpsError> {
        let mut params = ListParams::default();
        if let Some(s) = &selector.selector {
            params = params.labels(s);
        }
        let pods: Api<Pod> = match &selector.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let listed = pods
            .list(&params)
            .await
            .map_err(|e| ops_error("listing the pods a gate watches", e))?;
        let mut out = WorkloadSnapshot::default();
        // Each selected pod's labels, by namespace, to pick the budgets that cover them.
        let mut labels: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
        for p in &listed.items {
            if let Some(h) = PodHealth::from_json(&to_json("a pod", p)?) {
                labels
                    .entry(h.namespace.clone())
                    .or_default()
                    .push(p.metadata.labels.clone().unwrap_or_default());
                out.pods.push(h);
            }
        }
        let (budgets, v1) = self.budgets(selector.namespace.as_deref()).await?;
        for b in budgets {
            let ns = b.metadata.namespace.clone().unwrap_or_default();
            let covers = match &selector.selector {
                None => true,
                Some(_) => {
                    let sel: Option<LabelSelector> = b
                        .data
                        .get("spec")
                        .and_then(|s| s.get("selector"))
                        .and_then(|s| serde_json::from_value(s.clone()).ok());
                    labels
                        .get(&ns)
                        .into_iter()
                        .flatten()
                        .any(|l| selector_matches(sel.as_ref(), l, v1))
                }
            };
            if covers && let Some(h) = BudgetHealth::from_json(&to_json("a budget", &b)?) {
                out.budgets.push(h);
            }
        }
        out.pods
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        out.budgets
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(out)
    }
}

impl KubeGateProbe {
    /// The budgets of `namespace` (or all), as `policy/v1` or, where only that is served,
    /// `policy/v1beta1`; and whether they are `v1` (an empty selector selects every pod).
    async fn budgets(
        &self,
        namespace: Option<&str>,
    ) -> Result<(Vec<DynamicObject>, bool), OpsError> {
        let mut last = None;
        for (version, v1) in [("v1", true), ("v1beta1", false)] {
            let gvk = GroupVersionKind::gvk("policy", version, "PodDisruptionBudget");
            let ar = ApiResource::from_gvk_with_plural(&gvk, "poddisruptionbudgets");
            let api: Api<DynamicObject> = match namespace {
                Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
                None => Api::all_with(self.client.clone(), &ar),
            };
            match api.list(&ListParams::default()).await {
                Ok(l) => return Ok((l.items, v1)),
                Err(e) if status_code(&e) == Some(404) => last = Some(e),
                Err(e) => return Err(ops_error("listing disruption budgets", e)),
            }
        }
        match last {
            Some(e) => Err(ops_error("listing disruption budgets", e)),
            None => Ok((Vec::new(), true)),
        }
    }
}
