//! Readiness evidence from a live cluster: fills the core's
//! [`Evidence`] with what the API says.
//!
//! Each piece is gathered on its own ([`gather`]): a refusal or a failure marks only that
//! piece missing, with the reason (`Forbidden` when RBAC denies it), so the catalogue reports
//! the check that needs it as "not checkable" instead of passing.
//!
//! | piece | read from |
//! |---|---|
//! | `apiRequests` (tier 1) | `GET /metrics` of each API server: `apiserver_requested_deprecated_apis`, since `process_start_time_seconds` |
//! | `apiWriters` (tier 2) | `metadata.managedFields[].apiVersion` of the stored objects of every kind the removal table names, listed through a version the server serves (dynamic API) |
//! | `apiManifests` (tier 3) | Helm release secrets (`type: helm.sh/release.v1`: base64, gzip, JSON, the manifest's YAML documents) and `kubectl.kubernetes.io/last-applied-configuration` |
//! | `workloads` | pods (owner, `emptyDir` and local-PV volumes, node, Ready), PodDisruptionBudgets (`policy/v1`, else `policy/v1beta1`) with status, selectors resolved to pods |
//! | `webhooks` | validating and mutating webhook configurations, their services' endpoints' pods |
//! | `apiServices` | APIServices with a service, or not `Available` |
//! | `crds` | CRDs whose conversion strategy is `Webhook` |
//! | `kubeadmConfig` | `kube-system/kubeadm-config`'s `ClusterConfiguration` |
//! | `nodes[].runtime` | `status.nodeInfo.containerRuntimeVersion` |
//!
//! Node-side facts (cgroup, disk, certificates, packages) need a command runner on the node:
//! kupgrade-exec gathers those.
//!
//! Permissions: `examples/rbac/evidence.yaml` (read-only; it says what each rule is for).
use std::fmt;

use kube::Client;
use kupgrade_core::readiness::{Evidence, FactTables, Gathered, Missing, MissingReason};

use crate::error::{describe, is_connect, status_code};

mod api;
mod cluster;
mod helm;
mod metrics;
pub(crate) mod selector;
#[cfg(test)]
mod tests;
mod workloads;

pub use api::LAST_APPLIED;
pub use helm::{HELM_RELEASE_TYPE, HelmRelease, ManifestObject, decode_release};
pub use metrics::{DEPRECATED_APIS_METRIC, MetricsSample, START_TIME_METRIC, parse_metrics};

/// What [`gather`] reads, and where.
#[derive(Clone)]
pub struct GatherOptions<'f> {
    /// The removal table: tier 2 lists the kinds it names, tiers 2 and 3 keep the objects
    /// whose API version it names.
    pub facts: &'f FactTables,
    /// The API servers whose `/metrics` tier 1 reads, each with a client that reaches it
    /// (named by its node or address). Empty: the one the main client reaches, named by its
    /// URL.
    pub api_servers: Vec<(String, Client)>,
    /// Where `kubeadm-config` lives (`kube-system`).
    pub system_namespace: String,
}

impl Default for GatherOptions<'static> {
    fn default() -> Self {
        GatherOptions {
            facts: FactTables::embedded(),
            api_servers: Vec::new(),
            system_namespace: crate::SYSTEM_NAMESPACE.to_string(),
        }
    }
}

impl fmt::Debug for GatherOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatherOptions")
            .field(
                "api_servers",
                &self.api_servers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("system_namespace", &self.system_namespace)
            .finish_non_exhaustive()
    }
}

/// Gathers the cluster-side evidence; every piece independently (see the [module](self)).
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use kupgrade_kube::evidence::{GatherOptions, gather};
///
/// let client = kupgrade_kube::connect(None, None).await?;
/// let evidence = gather(&client, &GatherOptions::default()).await;
/// println!("{}", serde_json::to_string_pretty(&evidence)?);
/// # Ok(()) }
/// ```
pub async fn gather(client: &Client, options: &GatherOptions<'_>) -> Evidence {
    let mut evidence = Evidence::default();
    evidence.gathered_at = Some(jiff::Timestamp::now());
    let (requests, (writers, applied), helm, workloads, extensions, nodes) = futures::join!(
        api::requests(client, options),
        api::stored(client, options.facts),
        api::helm_manifests(client, options.facts),
        workloads::workloads(client),
        cluster::extensions(client, &options.system_namespace),
        cluster::node_runtimes(client),
    );
    evidence.api_requests = requests;
    evidence.api_writers = writers;
    evidence.api_manifests = api::manifests(helm, applied);
    evidence.workloads = workloads;
    let (webhooks, api_services, crds, kubeadm_config) = extensions;
    evidence.webhooks = webhooks;
    evidence.api_services = api_services;
    evidence.crds = crds;
    evidence.kubeadm_config = kubeadm_config;
    evidence.nodes = nodes;
    evidence
}

/// The address of every API server behind the cluster's `default/kubernetes` Endpoints
/// (`https://10.0.0.11:6443`), ready or not, in the order listed; empty when the Endpoints do
/// not exist. With [`client_for`], each API server's own `/metrics` can be read
/// ([`GatherOptions::api_servers`]).
pub async fn api_server_endpoints(client: &Client) -> Result<Vec<String>, kube::Error> {
    let api: kube::Api<k8s_openapi::api::core::v1::Endpoints> =
        kube::Api::namespaced(client.clone(), "default");
    Ok(api
        .get_opt("kubernetes")
        .await?
        .map(|ep| endpoint_urls(&ep))
        .unwrap_or_default())
}

/// `https://IP:PORT` of every address of `ep` (ready first), on its `https` port.
pub(crate) fn endpoint_urls(ep: &k8s_openapi::api::core::v1::Endpoints) -> Vec<String> {
    let mut out = Vec::new();
    for subset in ep.subsets.iter().flatten() {
        let port = subset
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref().is_none_or(|n| n == "https"))
            .map_or(443, |p| p.port);
        let addresses = subset.addresses.iter().flatten();
        for a in addresses.chain(subset.not_ready_addresses.iter().flatten()) {
            let host = if a.ip.contains(':') {
                format!("[{}]", a.ip)
            } else {
                a.ip.clone()
            };
            let url = format!("https://{host}:{port}");
            if !out.contains(&url) {
                out.push(url);
            }
        }
    }
    out
}

/// A client for the API server at `url` with `config`'s credentials and trust; the name
/// its certificate is checked against stays the configured server's host (a load balancer's
/// name is in every kubeadm API server's certificate), unless `config` names one already.
pub fn client_for(config: &kube::Config, url: &str) -> Result<Client, crate::ConfigError> {
    let mut config = config.clone();
    if config.tls_server_name.is_none() {
        config.tls_server_name = config
            .cluster_url
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string());
    }
    config.cluster_url = url.parse().map_err(|e| crate::ConfigError::Kubeconfig {
        path: url.into(),
        source: kube::config::KubeconfigError::ParseClusterUrl(e),
    })?;
    crate::client(config)
}

/// Why `what` is missing after `err`: 401/403 forbidden, 404 not supported, no answer
/// unreachable, anything else failed.
pub(crate) fn missing(what: &str, err: &kube::Error) -> Missing {
    let reason = match status_code(err) {
        Some(401 | 403) => MissingReason::Forbidden,
        Some(404) => MissingReason::NotSupported,
        Some(_) => MissingReason::Failed,
        None if is_connect(err) => MissingReason::Unreachable,
        None => MissingReason::Failed,
    };
    Missing::new(reason, format!("{what}: {}", describe(err)))
}

/// [`missing`] as a [`Gathered`].
pub(crate) fn missing_as<T>(what: &str, err: &kube::Error) -> Gathered<T> {
    Gathered::Missing(missing(what, err))
}
