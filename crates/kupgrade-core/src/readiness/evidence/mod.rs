//! Evidence: what the live gatherers found, as pure data (documented on [`Evidence`]).
use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::NodeName;

mod nodes;
mod workloads;

pub use nodes::{
    Certificate, CertificateExpirationInfo, CgroupFacts, DiskSpace, EtcdFacts, KubeletServer,
    NodeFacts, PackageAvailability, RepositoryEntry,
};
pub use workloads::{Budget, Owner, Pod, PodVolume, Workloads};

/// Why a piece of evidence is missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissingReason {
    /// Nobody gathered it.
    #[default]
    NotGathered,
    /// The API refused (RBAC denied the request).
    Forbidden,
    /// No way to run commands on the node.
    NoNodeAccess,
    /// The server or node did not answer.
    Unreachable,
    /// The cluster or node does not offer it (an older API server, another OS).
    NotSupported,
    /// Gathering it failed.
    Failed,
}

impl fmt::Display for MissingReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            MissingReason::NotGathered => "not gathered",
            MissingReason::Forbidden => "forbidden",
            MissingReason::NoNodeAccess => "no node access",
            MissingReason::Unreachable => "unreachable",
            MissingReason::NotSupported => "not supported",
            MissingReason::Failed => "failed",
        })
    }
}

/// Why a piece of evidence is missing, with the details.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Missing {
    /// The kind of reason.
    pub reason: MissingReason,
    /// What happened (`RBAC denied GET /metrics for system:serviceaccount:kupgrade:reader`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Missing {
    /// Missing for `reason`, with `detail`.
    pub fn new(reason: MissingReason, detail: impl Into<String>) -> Self {
        Missing {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            fmt::Display::fmt(&self.reason, f)
        } else {
            write!(f, "{}: {}", self.reason, self.detail)
        }
    }
}

/// A piece of evidence: found, or missing with a reason. Serialized as `{"found": ...}` or
/// `{"missing": {"reason": ..., "detail": ...}}`; absent means not gathered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gathered<T> {
    /// What was found.
    Found(T),
    /// Why nothing was found.
    Missing(Missing),
}

impl<T> Default for Gathered<T> {
    fn default() -> Self {
        Gathered::Missing(Missing::default())
    }
}

impl<T> Gathered<T> {
    /// The value, when found.
    pub fn found(&self) -> Option<&T> {
        match self {
            Gathered::Found(t) => Some(t),
            Gathered::Missing(_) => None,
        }
    }

    /// The value, or why it is missing.
    pub fn get(&self) -> Result<&T, &Missing> {
        match self {
            Gathered::Found(t) => Ok(t),
            Gathered::Missing(m) => Err(m),
        }
    }

    /// Missing for `reason`, with `detail`.
    pub fn missing(reason: MissingReason, detail: impl Into<String>) -> Self {
        Gathered::Missing(Missing::new(reason, detail))
    }
}

/// A deprecated API an API server saw requests for (`apiserver_requested_deprecated_apis`
/// on its `/metrics`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiRequest {
    /// The API server that counted them (its node or address).
    pub api_server: String,
    /// `extensions/v1beta1` (the metric's `group` and `version`).
    pub group_version: String,
    /// `ingresses`.
    pub resource: String,
    /// The subresource, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    /// The metric's `removed_release` label (`1.22`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_release: Option<String>,
    /// Since when the server counts (its `process_start_time_seconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
}

/// An object seen using an API version: written through it (a `managedFields` entry) or
/// described by a manifest that will be applied again (a Helm release, the
/// `last-applied-configuration` annotation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiObject {
    /// The API version it was written through or is described in (`extensions/v1beta1`).
    pub api_version: String,
    /// `Ingress`.
    pub kind: String,
    /// Its namespace (none for cluster-scoped objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// Where it was seen (`managedFields (manager kubectl)`, `Helm release shop/web v3`).
    pub via: String,
}

/// A pod that serves a webhook or an API, and the node it runs on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// `namespace/name`.
    pub pod: String,
    /// Its node, when scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeName>,
    /// Whether it is ready (an endpoint that serves).
    #[serde(default = "yes")]
    pub ready: bool,
}

fn yes() -> bool {
    true
}

/// An admission webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// The configuration's kind: `ValidatingWebhookConfiguration` or
    /// `MutatingWebhookConfiguration`.
    pub configuration_kind: String,
    /// The configuration's name.
    pub configuration: String,
    /// The webhook's name.
    pub name: String,
    /// `Fail` or `Ignore`.
    pub failure_policy: String,
    /// The service it calls (`namespace/name`); none for a URL webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The pods behind the service.
    #[serde(default)]
    pub backends: Vec<Backend>,
}

/// An aggregated API (an `APIService`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiService {
    /// `v1beta1.metrics.k8s.io`.
    pub name: String,
    /// The service behind it (`namespace/name`); none for a local API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Its `Available` condition.
    pub available: bool,
    /// The condition's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The pods behind the service.
    #[serde(default)]
    pub backends: Vec<Backend>,
}

/// A CustomResourceDefinition whose versions a conversion webhook converts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Crd {
    /// `certificates.cert-manager.io`.
    pub name: String,
    /// The conversion webhook's service (`namespace/name`); none for `None` conversion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_service: Option<String>,
    /// The pods behind it.
    #[serde(default)]
    pub backends: Vec<Backend>,
}

/// What kubeadm keeps in the `kube-system/kubeadm-config` ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeadmConfig {
    /// The stored ClusterConfiguration's `apiVersion` (`kubeadm.k8s.io/v1beta3`).
    pub api_version: String,
    /// `etcd.local.imageTag`, when set (kubeadm then leaves etcd's version alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_image_tag: Option<String>,
    /// True when `etcd.external` is set.
    #[serde(default)]
    pub external_etcd: bool,
    /// `featureGates`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub feature_gates: BTreeMap<String, bool>,
}

/// Everything the gatherers found.
///
/// Evidence: what the live gatherers found, as pure data. Every piece is [`Gathered`]: found,
/// or missing with a reason (RBAC denied, no node access, not gathered...), so that a check
/// whose evidence is missing says "not checkable" instead of passing.
///
/// `Evidence::default()` is empty evidence: nothing gathered. The gatherers (the kube adapter
/// for the API tiers, workloads and extensions; a node runner for node facts) fill what they
/// can; a JSON or YAML document in the same shape can be read with [`Evidence::from_json`]
/// and [`Evidence::from_yaml`].
///
/// ```
/// use kupgrade_core::readiness::{Evidence, Gathered, MissingReason};
///
/// let text = r#"{
///   "apiRequests": {"missing": {"reason": "forbidden", "detail": "RBAC denied GET /metrics"}},
///   "apiWriters": {"found": [{"apiVersion": "extensions/v1beta1", "kind": "Ingress",
///                             "namespace": "shop", "name": "web", "via": "managedFields (kubectl)"}]}
/// }"#;
/// let evidence = Evidence::from_json(text, "evidence.json")?;
/// assert!(matches!(&evidence.api_requests, Gathered::Missing(m) if m.reason == MissingReason::Forbidden));
/// assert_eq!(evidence.api_writers.found().unwrap().len(), 1);
/// assert!(evidence.workloads.found().is_none()); // not gathered
/// # Ok::<(), kupgrade_core::readiness::EvidenceError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct Evidence {
    /// When it was gathered (the run's start for time-based checks; the plan's date at
    /// midnight UTC when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gathered_at: Option<Timestamp>,
    /// Tier 1: deprecated APIs requested, from each API server's metrics.
    pub api_requests: Gathered<Vec<ApiRequest>>,
    /// Tier 2: objects written through an API version (`managedFields`).
    pub api_writers: Gathered<Vec<ApiObject>>,
    /// Tier 3: manifests that will be applied again (Helm releases, last-applied).
    pub api_manifests: Gathered<Vec<ApiObject>>,
    /// Pods and PodDisruptionBudgets.
    pub workloads: Gathered<Workloads>,
    /// Admission webhooks.
    pub webhooks: Gathered<Vec<Webhook>>,
    /// Aggregated APIs.
    pub api_services: Gathered<Vec<ApiService>>,
    /// CustomResourceDefinitions with conversion webhooks.
    pub crds: Gathered<Vec<Crd>>,
    /// kubeadm's stored configuration.
    pub kubeadm_config: Gathered<KubeadmConfig>,
    /// Facts from each node; a node not listed has none.
    pub nodes: Vec<NodeFacts>,
}

/// Evidence that could not be read: the source, the field at fault and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {}{message}", field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct EvidenceError {
    /// The source's name.
    pub origin: String,
    /// The field at fault (`nodes[2].runtime.found`), when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Evidence {
    /// Reads evidence from JSON; `origin` names the source in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Evidence, EvidenceError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let evidence: Evidence = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            EvidenceError {
                origin: origin.to_string(),
                field: (path != ".").then_some(path),
                message: e.into_inner().to_string(),
            }
        })?;
        de.end().map_err(|e| EvidenceError {
            origin: origin.to_string(),
            field: None,
            message: e.to_string(),
        })?;
        Ok(evidence)
    }

    /// Reads evidence from YAML; `origin` names the source in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Evidence, EvidenceError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            EvidenceError {
                origin: origin.to_string(),
                field: (path != ".").then_some(path),
                message: e.into_inner().to_string(),
            }
        })
    }

    /// The facts of node `name`, if it has any.
    pub fn node(&self, name: &str) -> Option<&NodeFacts> {
        self.nodes.iter().find(|n| n.node.as_str() == name)
    }
}
