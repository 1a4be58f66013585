//! The three tiers of API usage: requests (metrics), writers (`managedFields`), manifests
//! (Helm releases and `last-applied-configuration`).
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::PartialObjectMeta;
use kube::discovery::{Discovery, verbs};
use kube::{Client, ResourceExt};
use kupgrade_core::readiness::{
    ApiObject, ApiRequest, FactTables, Gathered, Missing, MissingReason,
};
use serde::Deserialize;

use super::helm::{HELM_RELEASE_TYPE, decode_release};
use super::{GatherOptions, metrics, missing, missing_as};

/// The annotation `kubectl apply` keeps the last applied manifest in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Kinds the removal table names that have no namespace (a Helm manifest's document of one
/// of them is not put in the release's namespace).
const CLUSTER_SCOPED: &[&str] = &[
    "APIService",
    "CertificateSigningRequest",
    "ClusterRole",
    "ClusterRoleBinding",
    "CSIDriver",
    "CSINode",
    "CustomResourceDefinition",
    "FlowSchema",
    "IngressClass",
    "IPAddress",
    "MutatingWebhookConfiguration",
    "PodSecurityPolicy",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "RuntimeClass",
    "ServiceCIDR",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
    "VolumeAttributesClass",
    "DeviceClass",
];

/// How many objects one list request asks for.
const PAGE: u32 = 500;

/// Tier 1 from each API server. One server's refusal or failure makes the whole tier
/// missing (a pass on one server says nothing about the requests another one served).
pub(crate) async fn requests(
    client: &Client,
    options: &GatherOptions<'_>,
) -> Gathered<Vec<ApiRequest>> {
    let default = [("kube-apiserver".to_string(), client.clone())];
    let servers: &[(String, Client)] = if options.api_servers.is_empty() {
        &default
    } else {
        &options.api_servers
    };
    let mut found = Vec::new();
    for (name, c) in servers {
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .expect("a constant request");
        let text = match c.request_text(request).await {
            Ok(t) => t,
            Err(e) => return missing_as(&format!("GET /metrics on {name}"), &e),
        };
        match metrics::deprecated_requests(name, &text) {
            Ok(r) => found.extend(r),
            Err(e) => return Gathered::missing(MissingReason::Failed, format!("{name}: {e}")),
        }
    }
    Gathered::Found(found)
}

/// The listable resources that hold the kinds the removal table names, each listed once
/// through the most stable version the server serves of it (the replacement's group first).
async fn removal_resources(
    client: &Client,
    facts: &FactTables,
) -> Result<Vec<ApiResource>, Missing> {
    let group_of = |gv: &str| gv.rsplit_once('/').map_or("", |(g, _)| g).to_string();
    let mut groups = BTreeSet::new();
    for r in facts.api_removals() {
        groups.insert(group_of(&r.group_version));
        if let Some(rep) = r.replacement() {
            groups.insert(group_of(rep));
        }
    }
    let names: Vec<&str> = groups.iter().map(String::as_str).collect();
    let discovery = Discovery::new(client.clone())
        .filter(&names)
        .run()
        .await
        .map_err(|e| missing("API discovery", &e))?;
    let mut by_kind: BTreeMap<String, Vec<ApiResource>> = BTreeMap::new();
    for group in discovery.groups() {
        for (ar, caps) in group.resources_by_stability() {
            if caps.supports_operation(verbs::LIST) && !ar.plural.contains('/') {
                by_kind.entry(ar.kind.clone()).or_default().push(ar);
            }
        }
    }
    let mut chosen: Vec<ApiResource> = Vec::new();
    for r in facts.api_removals() {
        let Some(candidates) = by_kind.get(&r.kind) else {
            continue;
        };
        let prefer = [
            r.replacement().map(group_of),
            Some(group_of(&r.group_version)),
        ];
        let pick = prefer
            .iter()
            .flatten()
            .find_map(|g| candidates.iter().find(|c| &c.group == g));
        let Some(ar) = pick else { continue };
        if !chosen
            .iter()
            .any(|c| c.kind == ar.kind && c.group == ar.group)
        {
            chosen.push(ar.clone());
        }
    }
    Ok(chosen)
}

/// Lists the metadata (managedFields and annotations are all tiers 2 and 3 need) of every
/// object of `ar` in every namespace, page by page.
async fn list_all(
    client: &Client,
    ar: &ApiResource,
) -> Result<Vec<PartialObjectMeta<DynamicObject>>, kube::Error> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
    let mut out = Vec::new();
    let mut lp = ListParams::default().limit(PAGE);
    loop {
        let page = api.list_metadata(&lp).await?;
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => lp = lp.continue_token(&token),
            _ => return Ok(out),
        }
    }
}

/// The `apiVersion` and `kind` a last-applied manifest names.
#[derive(Deserialize)]
struct TypeMeta {
    #[serde(default, rename = "apiVersion")]
    api_version: String,
    #[serde(default)]
    kind: String,
}

/// Tier 2 (writers, from `managedFields`) and the `last-applied-configuration` half of
/// tier 3, from one listing of every kind the removal table names. Only API versions the
/// table names for the kind are kept.
pub(crate) async fn stored(
    client: &Client,
    facts: &FactTables,
) -> (Gathered<Vec<ApiObject>>, Gathered<Vec<ApiObject>>) {
    let resources = match removal_resources(client, facts).await {
        Ok(r) => r,
        Err(m) => return (Gathered::Missing(m.clone()), Gathered::Missing(m)),
    };
    let mut writers = Vec::new();
    let mut applied = Vec::new();
    for ar in &resources {
        let objects = match list_all(client, ar).await {
            Ok(o) => o,
            Err(e) => {
                let m = missing(&format!("list {}.{}", ar.plural, ar.group), &e);
                return (Gathered::Missing(m.clone()), Gathered::Missing(m));
            }
        };
        for o in &objects {
            object_usage(facts, &ar.kind, o, &mut writers, &mut applied);
        }
    }
    (Gathered::Found(writers), Gathered::Found(applied))
}

/// The removed API versions `o` was written through and described in.
fn object_usage(
    facts: &FactTables,
    kind: &str,
    o: &PartialObjectMeta<DynamicObject>,
    writers: &mut Vec<ApiObject>,
    applied: &mut Vec<ApiObject>,
) {
    let object = |api_version: &str, kind: &str, via: String| ApiObject {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        namespace: o.namespace(),
        name: o.name_any(),
        via,
    };
    for mf in o.managed_fields() {
        let (Some(av), manager) = (mf.api_version.as_deref(), mf.manager.as_deref()) else {
            continue;
        };
        if facts.api_removal(av, kind).is_none() {
            continue;
        }
        let via = format!("managedFields (manager {})", manager.unwrap_or("unknown"));
        let found = object(av, kind, via);
        if !writers.contains(&found) {
            writers.push(found);
        }
    }
    if let Some(text) = o.annotations().get(LAST_APPLIED)
        && let Ok(t) = serde_json::from_str::<TypeMeta>(text)
        && facts.api_removal(&t.api_version, &t.kind).is_some()
    {
        applied.push(object(
            &t.api_version,
            &t.kind,
            format!("annotation {LAST_APPLIED}"),
        ));
    }
}

/// Tier 3: the objects of each Helm release's latest revision whose API version the removal
/// table names. A release that cannot be decoded makes the tier missing (Failed), naming
/// the secret.
pub(crate) async fn helm_manifests(
    client: &Client,
    facts: &FactTables,
) -> Gathered<Vec<ApiObject>> {
    let api: Api<Secret> = Api::all(client.clone());
    let lp = ListParams::default().fields(&format!("type={HELM_RELEASE_TYPE}"));
    let secrets = match api.list(&lp).await {
        Ok(l) => l.items,
        Err(e) => return missing_as(&format!("list secrets of type {HELM_RELEASE_TYPE}"), &e),
    };
    let mut latest: BTreeMap<(String, String), super::HelmRelease> = BTreeMap::new();
    for s in &secrets {
        let id = format!(
            "secret {}/{}",
            s.namespace().unwrap_or_default(),
            s.name_any()
        );
        let Some(value) = s.data.as_ref().and_then(|d| d.get("release")) else {
            return Gathered::missing(MissingReason::Failed, format!("{id}: no `release` key"));
        };
        let release = match decode_release(&value.0) {
            Ok(r) => r,
            Err(e) => return Gathered::missing(MissingReason::Failed, format!("{id}: {e}")),
        };
        let key = (release.namespace.clone(), release.name.clone());
        if latest.get(&key).is_none_or(|r| r.version < release.version) {
            latest.insert(key, release);
        }
    }
    let mut found = Vec::new();
    for r in latest.values() {
        for o in &r.objects {
            if facts.api_removal(&o.api_version, &o.kind).is_some() {
                found.push(ApiObject {
                    api_version: o.api_version.clone(),
                    kind: o.kind.clone(),
                    namespace: o.namespace.clone().or_else(|| {
                        (!CLUSTER_SCOPED.contains(&o.kind.as_str())).then(|| r.namespace.clone())
                    }),
                    name: o.name.clone(),
                    via: format!("Helm release {}/{} v{}", r.namespace, r.name, r.version),
                });
            }
        }
    }
    Gathered::Found(found)
}

/// Tier 3 whole: Helm releases and `last-applied-configuration`; missing when either half is.
pub(crate) fn manifests(
    helm: Gathered<Vec<ApiObject>>,
    applied: Gathered<Vec<ApiObject>>,
) -> Gathered<Vec<ApiObject>> {
    match (helm, applied) {
        (Gathered::Found(mut h), Gathered::Found(a)) => {
            h.extend(a);
            Gathered::Found(h)
        }
        (Gathered::Missing(m), _) | (_, Gathered::Missing(m)) => Gathered::Missing(m),
    }
}
