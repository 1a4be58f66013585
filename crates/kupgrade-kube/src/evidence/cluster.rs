//! Extensions that can stop an upgrade (admission webhooks, aggregated APIs, CRD conversion
//! webhooks, each with the pods behind it), kubeadm's stored configuration, and each node's
//! container runtime.
use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Node as KNode};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use kupgrade_core::readiness::{
    ApiService, Backend, Crd, Gathered, KubeadmConfig, MissingReason, NodeFacts, Webhook,
};
use serde::Deserialize;

use super::missing_as;
use crate::error::status_code;

/// Webhooks, APIServices, CRDs and kubeadm's configuration, each gathered on its own.
pub(crate) async fn extensions(
    client: &Client,
    system_namespace: &str,
) -> (
    Gathered<Vec<Webhook>>,
    Gathered<Vec<ApiService>>,
    Gathered<Vec<Crd>>,
    Gathered<KubeadmConfig>,
) {
    let endpoints = match Api::<Endpoints>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(l) => Ok(backends_by_service(&l.items)),
        Err(e) => Err(e),
    };
    let with_backends = |what: &str| match &endpoints {
        Ok(b) => Ok(b),
        Err(e) => Err(missing_as::<()>(&format!("{what}: list endpoints"), e)),
    };
    let webhooks = match with_backends("webhook backends") {
        Ok(b) => webhooks(client, b).await,
        Err(m) => retype(m),
    };
    let api_services = match with_backends("APIService backends") {
        Ok(b) => api_services(client, b).await,
        Err(m) => retype(m),
    };
    let crds = match with_backends("conversion webhook backends") {
        Ok(b) => crds(client, b).await,
        Err(m) => retype(m),
    };
    let config = kubeadm_config(client, system_namespace).await;
    (webhooks, api_services, crds, config)
}

fn retype<T>(g: Gathered<()>) -> Gathered<T> {
    match g {
        Gathered::Missing(m) => Gathered::Missing(m),
        Gathered::Found(()) => Gathered::default(),
    }
}

type Backends = BTreeMap<String, Vec<Backend>>;

/// `namespace/service` → the pods its endpoints name (ready or not), with their nodes.
pub(crate) fn backends_by_service(endpoints: &[Endpoints]) -> Backends {
    let mut out = Backends::new();
    for ep in endpoints {
        let ns = ep.namespace().unwrap_or_default();
        let list = out.entry(format!("{ns}/{}", ep.name_any())).or_default();
        for subset in ep.subsets.iter().flatten() {
            let ready = subset.addresses.iter().flatten().map(|a| (a, true));
            let not_ready = subset
                .not_ready_addresses
                .iter()
                .flatten()
                .map(|a| (a, false));
            for (a, is_ready) in ready.chain(not_ready) {
                let Some(r) = a
                    .target_ref
                    .as_ref()
                    .filter(|r| r.kind.as_deref() == Some("Pod"))
                else {
                    continue;
                };
                let pod = format!(
                    "{}/{}",
                    r.namespace.as_deref().unwrap_or(&ns),
                    r.name.as_deref().unwrap_or_default()
                );
                if list.iter().any(|b| b.pod == pod) {
                    continue;
                }
                list.push(Backend {
                    pod,
                    node: a.node_name.as_deref().and_then(|n| n.parse().ok()),
                    ready: is_ready,
                });
            }
        }
    }
    out
}

fn service_backends(backends: &Backends, service: &Option<String>) -> Vec<Backend> {
    service
        .as_ref()
        .and_then(|s| backends.get(s))
        .cloned()
        .unwrap_or_default()
}

async fn webhooks(client: &Client, backends: &Backends) -> Gathered<Vec<Webhook>> {
    let validating = match Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(l) => l.items,
        Err(e) => return missing_as("list validatingwebhookconfigurations", &e),
    };
    let mutating = match Api::<MutatingWebhookConfiguration>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(l) => l.items,
        Err(e) => return missing_as("list mutatingwebhookconfigurations", &e),
    };
    // Validating and mutating webhooks are two types with the same fields.
    macro_rules! webhooks_of {
        ($configurations:expr, $kind:literal) => {
            $configurations.iter().flat_map(|c| {
                let hooks = c.webhooks.iter().flatten();
                hooks.map(move |w| {
                    let policy = w.failure_policy.as_deref();
                    webhook($kind, c, &w.name, &w.client_config, policy, backends)
                })
            })
        };
    }
    let validating = webhooks_of!(validating, "ValidatingWebhookConfiguration");
    let mutating = webhooks_of!(mutating, "MutatingWebhookConfiguration");
    Gathered::Found(validating.chain(mutating).collect())
}

/// The webhook `name` of the `kind` configuration `configuration` (validating and mutating
/// webhooks share these fields), with the pods behind its service.
fn webhook(
    kind: &str,
    configuration: &impl ResourceExt,
    name: &str,
    client: &WebhookClientConfig,
    failure_policy: Option<&str>,
    backends: &Backends,
) -> Webhook {
    let service = (client.service.as_ref()).map(|s| format!("{}/{}", s.namespace, s.name));
    Webhook {
        configuration_kind: kind.into(),
        configuration: configuration.name_any(),
        name: name.to_string(),
        failure_policy: failure_policy.unwrap_or("Fail").into(),
        backends: service_backends(backends, &service),
        service,
    }
}

/// APIServices served by a service, and any that is not Available.
async fn api_services(client: &Client, backends: &Backends) -> Gathered<Vec<ApiService>> {
    let list = match Api::<APIService>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(l) => l.items,
        Err(e) => return missing_as("list apiservices", &e),
    };
    let mut out = Vec::new();
    for a in &list {
        let service = a.spec.as_ref().and_then(|s| s.service.as_ref()).map(|s| {
            format!(
                "{}/{}",
                s.namespace.as_deref().unwrap_or_default(),
                s.name.as_deref().unwrap_or_default()
            )
        });
        let condition = a
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Available"));
        let available = condition.is_some_and(|c| c.status == "True");
        if service.is_none() && available {
            continue;
        }
        out.push(ApiService {
            name: a.name_any(),
            available,
            message: condition.and_then(|c| c.message.clone()),
            backends: service_backends(backends, &service),
            service,
        });
    }
    Gathered::Found(out)
}

/// CRDs converted by a webhook.
async fn crds(client: &Client, backends: &Backends) -> Gathered<Vec<Crd>> {
    let list = match Api::<CustomResourceDefinition>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(l) => l.items,
        Err(e) => return missing_as("list customresourcedefinitions", &e),
    };
    let mut out = Vec::new();
    for c in &list {
        let Some(conversion) = c.spec.conversion.as_ref() else {
            continue;
        };
        if conversion.strategy != "Webhook" {
            continue;
        }
        let service = conversion
            .webhook
            .as_ref()
            .and_then(|w| w.client_config.as_ref())
            .and_then(|cc| cc.service.as_ref())
            .map(|s| format!("{}/{}", s.namespace, s.name));
        out.push(Crd {
            name: c.name_any(),
            backends: service_backends(backends, &service),
            conversion_service: service,
        });
    }
    Gathered::Found(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClusterConfiguration {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    etcd: Option<EtcdConfig>,
    #[serde(default)]
    feature_gates: BTreeMap<String, bool>,
}

#[derive(Deserialize)]
struct EtcdConfig {
    #[serde(default)]
    local: Option<LocalEtcd>,
    #[serde(default)]
    external: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LocalEtcd {
    #[serde(default)]
    image_tag: Option<String>,
}

/// Parses the `ClusterConfiguration` key of `kubeadm-config`; the error names the field.
pub(crate) fn parse_cluster_configuration(text: &str) -> Result<KubeadmConfig, String> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let c: ClusterConfiguration = serde_path_to_error::deserialize(de)
        .map_err(|e| format!("ClusterConfiguration: {}: {}", e.path(), e.inner()))?;
    if c.api_version.is_empty() {
        return Err("ClusterConfiguration: apiVersion: missing".into());
    }
    let etcd = c.etcd.as_ref();
    Ok(KubeadmConfig {
        api_version: c.api_version,
        etcd_image_tag: etcd
            .and_then(|e| e.local.as_ref())
            .and_then(|l| l.image_tag.clone())
            .filter(|t| !t.is_empty()),
        external_etcd: etcd.is_some_and(|e| e.external.is_some()),
        feature_gates: c.feature_gates,
    })
}

async fn kubeadm_config(client: &Client, ns: &str) -> Gathered<KubeadmConfig> {
    let what = format!("get configmap {ns}/kubeadm-config");
    let cm = match Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get("kubeadm-config")
        .await
    {
        Ok(cm) => cm,
        Err(e) if status_code(&e) == Some(404) => {
            return Gathered::missing(
                MissingReason::NotSupported,
                format!("{what}: not found (not a kubeadm cluster?)"),
            );
        }
        Err(e) => return missing_as(&what, &e),
    };
    let Some(text) = cm.data.as_ref().and_then(|d| d.get("ClusterConfiguration")) else {
        return Gathered::missing(
            MissingReason::Failed,
            format!("configmap {ns}/kubeadm-config: no ClusterConfiguration key"),
        );
    };
    match parse_cluster_configuration(text) {
        Ok(c) => Gathered::Found(c),
        Err(e) => Gathered::missing(
            MissingReason::Failed,
            format!("configmap {ns}/kubeadm-config: {e}"),
        ),
    }
}

/// Each node with its container runtime (`status.nodeInfo.containerRuntimeVersion`); none
/// when nodes cannot be listed (every node-level check is then not checkable).
pub(crate) async fn node_runtimes(client: &Client) -> Vec<NodeFacts> {
    let Ok(list) = Api::<KNode>::all(client.clone())
        .list(&ListParams::default())
        .await
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for n in &list.items {
        let Ok(name) = n.name_any().parse() else {
            continue;
        };
        let mut facts = NodeFacts::new(name);
        let runtime = n
            .status
            .as_ref()
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.container_runtime_version.clone())
            .filter(|r| !r.is_empty());
        facts.runtime = match runtime {
            Some(r) => Gathered::Found(r),
            None => Gathered::missing(
                MissingReason::Failed,
                format!(
                    "node {}: status.nodeInfo.containerRuntimeVersion is empty",
                    n.name_any()
                ),
            ),
        };
        out.push(facts);
    }
    out
}
