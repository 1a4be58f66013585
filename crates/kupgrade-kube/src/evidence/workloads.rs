//! Pods and PodDisruptionBudgets as drains see them: owners and their replicas, volumes tied
//! to the node or lost with the pod, budgets with their status and the pods they select.
use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod as KPod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::{Client, ResourceExt};
use kupgrade_core::readiness::{Budget, Gathered, Owner, Pod, PodVolume, Workloads};
use serde_json::Value;

use super::{missing, missing_as, selector};
use crate::error::status_code;

/// `(kind, namespace, name)` of a ReplicaSet or StatefulSet → (its Deployment's name when a
/// Deployment owns it, its replicas).
pub(crate) type Owners = HashMap<(String, String, String), (Option<String>, Option<u32>)>;

/// A budget as read, with its selector for matching pods.
pub(crate) struct ReadBudget {
    pub(crate) budget: Budget,
    selector: Option<LabelSelector>,
    empty_matches_all: bool,
}

fn pdb_resource(version: &str) -> ApiResource {
    ApiResource {
        group: "policy".into(),
        version: version.into(),
        api_version: format!("policy/{version}"),
        kind: "PodDisruptionBudget".into(),
        plural: "poddisruptionbudgets".into(),
    }
}

/// Every budget, through `policy/v1` or, on servers before 1.21, `policy/v1beta1`.
async fn budgets(client: &Client) -> Result<Vec<ReadBudget>, kube::Error> {
    let mut last = None;
    for version in ["v1", "v1beta1"] {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &pdb_resource(version));
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                return Ok(list
                    .items
                    .iter()
                    .map(|o| read_budget(o, version == "v1"))
                    .collect());
            }
            Err(e) if status_code(&e) == Some(404) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("one version was tried"))
}

/// A budget from its JSON (`policy/v1` or `v1beta1`; the fields drains need are the same).
pub(crate) fn read_budget(o: &DynamicObject, v1: bool) -> ReadBudget {
    let spec = &o.data["spec"];
    let status = &o.data["status"];
    let count = |v: &Value| v.as_u64().map_or(0, |n| n.min(u32::MAX as u64) as u32);
    let words = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let spec_words = words(&spec["maxUnavailable"])
        .map(|v| format!("maxUnavailable: {v}"))
        .or_else(|| words(&spec["minAvailable"]).map(|v| format!("minAvailable: {v}")));
    ReadBudget {
        budget: Budget {
            namespace: o.namespace().unwrap_or_default(),
            name: o.name_any(),
            disruptions_allowed: count(&status["disruptionsAllowed"]),
            current_healthy: count(&status["currentHealthy"]),
            desired_healthy: count(&status["desiredHealthy"]),
            expected_pods: count(&status["expectedPods"]),
            unhealthy_pod_eviction_policy: spec["unhealthyPodEvictionPolicy"]
                .as_str()
                .map(str::to_string),
            spec: spec_words,
        },
        selector: serde_json::from_value(spec["selector"].clone()).ok(),
        empty_matches_all: v1,
    }
}

/// Pods and budgets; missing when pods or budgets cannot be listed, or, when a pod has a
/// claim, claims or volumes cannot be.
pub(crate) async fn workloads(client: &Client) -> Gathered<Workloads> {
    let pods = match Api::<KPod>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(l) => l.items,
        Err(e) => return missing_as("list pods", &e),
    };
    let budgets = match budgets(client).await {
        Ok(b) => b,
        Err(e) => return missing_as("list poddisruptionbudgets", &e),
    };
    let owners = owners(client).await;
    let has_claims = pods.iter().any(|p| !claims(p).is_empty());
    let local = if has_claims {
        match local_claims(client).await {
            Ok(l) => l,
            Err(m) => return Gathered::Missing(m),
        }
    } else {
        HashMap::new()
    };
    Gathered::Found(to_workloads(&pods, &budgets, &owners, &local))
}

/// The claims a pod mounts.
fn claims(p: &KPod) -> Vec<String> {
    p.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .map(|vs| {
            vs.iter()
                .filter_map(|v| v.persistent_volume_claim.as_ref())
                .map(|c| c.claim_name.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// `(namespace, claim)` → the local PersistentVolume it is bound to.
async fn local_claims(
    client: &Client,
) -> Result<HashMap<(String, String), String>, kupgrade_core::readiness::Missing> {
    let pvs = Api::<PersistentVolume>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| missing("list persistentvolumes", &e))?
        .items;
    let local: Vec<String> = pvs
        .iter()
        .filter(|pv| pv.spec.as_ref().is_some_and(|s| s.local.is_some()))
        .map(|pv| pv.name_any())
        .collect();
    if local.is_empty() {
        return Ok(HashMap::new());
    }
    let pvcs = Api::<PersistentVolumeClaim>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| missing("list persistentvolumeclaims", &e))?
        .items;
    Ok(pvcs
        .iter()
        .filter_map(|c| {
            let volume = c.spec.as_ref()?.volume_name.clone()?;
            local
                .contains(&volume)
                .then(|| ((c.namespace().unwrap_or_default(), c.name_any()), volume))
        })
        .collect())
}

/// The owners pods name, with their replicas. Best effort: a refusal leaves owners without
/// replicas.
async fn owners(client: &Client) -> Owners {
    let mut out = HashMap::new();
    if let Ok(l) = Api::<ReplicaSet>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        for rs in l.items {
            let deployment = rs
                .owner_references()
                .iter()
                .find(|o| o.controller == Some(true) && o.kind == "Deployment")
                .map(|o| o.name.clone());
            let replicas = rs
                .spec
                .as_ref()
                .and_then(|s| s.replicas)
                .map(|r| r.max(0) as u32);
            out.insert(
                (
                    "ReplicaSet".into(),
                    rs.namespace().unwrap_or_default(),
                    rs.name_any(),
                ),
                (deployment, replicas),
            );
        }
    }
    if let Ok(l) = Api::<StatefulSet>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        for s in l.items {
            let replicas = s
                .spec
                .as_ref()
                .and_then(|s| s.replicas)
                .map(|r| r.max(0) as u32);
            out.insert(
                (
                    "StatefulSet".into(),
                    s.namespace().unwrap_or_default(),
                    s.name_any(),
                ),
                (None, replicas),
            );
        }
    }
    out
}

/// Pods and budgets as the core's [`Workloads`]: each pod with the budgets that select it.
/// A static pod's mirror that names no controller: owned by its node, as drains see it
/// (`kubectl drain` and kupgrade's drain know mirrors by their annotation; kubelets of some
/// versions set no owner reference).
fn mirror_owner(p: &KPod) -> Option<Owner> {
    p.annotations()
        .contains_key(crate::MIRROR_ANNOTATION)
        .then(|| Owner {
            kind: "Node".into(),
            name: p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default(),
            replicas: None,
        })
}

pub(crate) fn to_workloads(
    pods: &[KPod],
    budgets: &[ReadBudget],
    owners: &Owners,
    local: &HashMap<(String, String), String>,
) -> Workloads {
    let empty = BTreeMap::new();
    let mut out = Workloads {
        budgets: budgets.iter().map(|b| b.budget.clone()).collect(),
        pods: Vec::new(),
    };
    for p in pods {
        let ns = p.namespace().unwrap_or_default();
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        let labels = p.metadata.labels.as_ref().unwrap_or(&empty);
        let owner = p
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
            .map(|o| {
                let known = owners.get(&(o.kind.clone(), ns.clone(), o.name.clone()));
                Owner {
                    kind: o.kind.clone(),
                    name: known
                        .and_then(|(d, _)| d.clone())
                        .unwrap_or_else(|| o.name.clone()),
                    replicas: known.and_then(|(_, r)| *r),
                }
            })
            .or_else(|| mirror_owner(p));
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let mut volumes = Vec::new();
        for v in p
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .into_iter()
            .flatten()
        {
            if v.empty_dir.is_some() {
                volumes.push(PodVolume::EmptyDir {
                    name: v.name.clone(),
                });
            }
            if let Some(c) = &v.persistent_volume_claim
                && let Some(pv) = local.get(&(ns.clone(), c.claim_name.clone()))
            {
                volumes.push(PodVolume::LocalPersistentVolume {
                    claim: c.claim_name.clone(),
                    volume: pv.clone(),
                });
            }
        }
        let mut selected: Vec<String> = budgets
            .iter()
            .filter(|b| b.budget.namespace == ns)
            .filter(|b| {
                b.selector
                    .as_ref()
                    .is_some_and(|s| selector::matches(s, labels, b.empty_matches_all))
            })
            .map(|b| b.budget.name.clone())
            .collect();
        selected.sort();
        out.pods.push(Pod {
            namespace: ns,
            name: p.name_any(),
            node: p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .and_then(|n| n.parse().ok()),
            owner,
            healthy: phase == Some("Running") && ready,
            budgets: selected,
            volumes,
        });
    }
    out
}
