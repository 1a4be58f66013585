//! [`KubeClusterOps`]: the core's [`ClusterOperations`] port over the Kubernetes API.
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node as KNode;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Client, Config};
use kupgrade_core::ports::{ClusterOperations, DrainOptions, DrainReport, OpsError};
use kupgrade_core::{ClusterState, KubeVersion, NodeName};
use serde_json::json;
use tokio::time::{Instant, sleep, timeout_at};

use crate::config::ConfigError;
use crate::discover::Discovery;
use crate::error::{fatal_watch_error, ops_error, status_code};
use crate::eviction::Evictor;

/// Cluster operations through the Kubernetes API: discovery, cordon, uncordon, a drain with
/// `kubectl drain`'s semantics over the Eviction API, and a watch-based wait for Ready.
///
/// Build it from a [`Config`] with [`KubeClusterOps::from_config`] (which turns kube's default
/// 429 retry off, see [`crate::config`]) or from a [`Client`] you built with
/// [`crate::client`]. Permissions: `examples/rbac/drain.yaml`.
///
/// ```no_run
/// use kupgrade_core::ports::{ClusterOperations, DrainOptions};
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let ops = kupgrade_kube::KubeClusterOps::new(kupgrade_kube::connect(None, None).await?);
/// let node = "w-1".parse()?;
/// let options = DrainOptions { timeout_seconds: 300, ..DrainOptions::default() };
/// match ops.drain(&node, &options).await {
///     Ok(report) => println!("evicted {} pods", report.evicted.len()),
///     Err(e) => {
///         eprintln!("{e}");
///         ops.uncordon(&node).await?; // give the node back
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KubeClusterOps {
    pub(crate) client: Client,
    pub(crate) discovery: Discovery,
    pub(crate) evictor: Evictor,
    pub(crate) concurrency: usize,
    pub(crate) backoff: (Duration, Duration),
}

impl fmt::Debug for KubeClusterOps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeClusterOps")
            .field("discovery", &self.discovery)
            .field("concurrency", &self.concurrency)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl KubeClusterOps {
    /// The default number of evictions in flight at once.
    pub const DEFAULT_CONCURRENCY: usize = 8;
    /// The default backoff between refused evictions: from 250 ms, doubling, up to 5 s (kubectl
    /// waits a flat 5 s).
    pub const DEFAULT_BACKOFF: (Duration, Duration) =
        (Duration::from_millis(250), Duration::from_secs(5));

    /// Operations through `client`. The client should have kube's default retry off (built by
    /// [`crate::client`] or [`crate::connect`]); with it on, every request is still bounded
    /// by the drain's deadline.
    pub fn new(client: Client) -> Self {
        KubeClusterOps {
            discovery: Discovery::new(client.clone()),
            evictor: Evictor::new(client.clone()),
            client,
            concurrency: Self::DEFAULT_CONCURRENCY,
            backoff: Self::DEFAULT_BACKOFF,
        }
    }

    /// Operations through a client built from `config`, with kube's default retry off.
    pub fn from_config(config: Config) -> Result<Self, ConfigError> {
        Ok(Self::new(crate::config::client(config)?))
    }

    /// Uses these discovery settings for [`ClusterOperations::state`].
    pub fn with_discovery(mut self, discovery: Discovery) -> Self {
        self.discovery = discovery;
        self
    }

    /// Sets how many evictions a drain keeps in flight (at least 1).
    pub fn eviction_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Sets the backoff between retries of a refused eviction: `first`, doubling up to `max`.
    pub fn eviction_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = (first, max.max(first));
        self
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn set_unschedulable(&self, node: &NodeName, on: bool) -> Result<(), OpsError> {
        let api: Api<KNode> = Api::all(self.client.clone());
        // A merge patch is idempotent: patching the value it already has changes nothing.
        let value = if on { json!(true) } else { json!(null) };
        let patch = json!({ "spec": { "unschedulable": value } });
        match api
            .patch(
                node.as_str(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Err(OpsError::NodeNotFound(node.clone())),
            Err(e) => {
                let verb = if on { "cordon" } else { "uncordon" };
                Err(ops_error(&format!("{verb} node {node} (patch nodes)"), e))
            }
        }
    }

    pub(crate) async fn cordon_node(&self, node: &NodeName) -> Result<(), OpsError> {
        self.set_unschedulable(node, true).await
    }
}

/// What `wait_ready` last saw of the node, for the timeout message.
fn describe_node(n: Option<&KNode>) -> String {
    let Some(n) = n else {
        return "the node does not exist".into();
    };
    let status = n.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str())
        .unwrap_or("unknown");
    let kubelet = status
        .and_then(|s| s.node_info.as_ref())
        .map(|i| i.kubelet_version.as_str())
        .unwrap_or("unknown");
    format!("Ready={ready}, kubelet {kubelet}")
}

/// True when the node is Ready and its kubelet is the release `want` (vendor suffixes and
/// build metadata ignored on both sides).
fn is_ready_at(n: &KNode, want: &KubeVersion) -> bool {
    let status = n.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    let version_ok = status
        .and_then(|s| s.node_info.as_ref())
        .and_then(|i| KubeVersion::parse(&i.kubelet_version).ok())
        .is_some_and(|v| v.release() == want.release());
    ready && version_ok
}

#[async_trait]
impl ClusterOperations for KubeClusterOps {
    async fn state(&self) -> Result<ClusterState, OpsError> {
        Ok(self.discovery.run().await?)
    }

    async fn cordon(&self, node: &NodeName) -> Result<(), OpsError> {
        self.set_unschedulable(node, true).await
    }

    async fn uncordon(&self, node: &NodeName) -> Result<(), OpsError> {
        self.set_unschedulable(node, false).await
    }

    async fn drain(
        &self,
        node: &NodeName,
        options: &DrainOptions,
    ) -> Result<DrainReport, OpsError> {
        self.drain_node(node, options).await
    }

    /// Watches the node (`fieldSelector=metadata.name=NODE`) until it is Ready with the
    /// kubelet release `version`; no polling.
    async fn wait_ready(
        &self,
        node: &NodeName,
        version: &KubeVersion,
        timeout: Duration,
    ) -> Result<(), OpsError> {
        let deadline = Instant::now() + kupgrade_core::ports::capped(timeout);
        let api: Api<KNode> = Api::all(self.client.clone());
        let config = watcher::Config::default().fields(&format!("metadata.name={node}"));
        let mut stream = watcher(api, config).boxed();
        let mut last: Option<KNode> = None;
        let mut last_error: Option<String> = None;
        let timed_out = |last: &Option<KNode>, err: &Option<String>| {
            let mut what = format!(
                "node {node} to be Ready with kubelet {} (last seen: {})",
                version.release(),
                describe_node(last.as_ref())
            );
            if let Some(e) = err {
                what.push_str(&format!("; last error: {e}"));
            }
            OpsError::TimedOut {
                what,
                after: timeout,
            }
        };
        loop {
            let event = match timeout_at(deadline, stream.try_next()).await {
                Err(_) | Ok(Ok(None)) => return Err(timed_out(&last, &last_error)),
                Ok(Ok(Some(e))) => e,
                Ok(Err(e)) => {
                    let e = match fatal_watch_error(
                        &format!("watch node {node} (list, watch nodes)"),
                        e,
                    ) {
                        Ok(fatal) => return Err(fatal),
                        Err(e) => e,
                    };
                    last_error = Some(e.to_string());
                    if Instant::now() >= deadline {
                        return Err(timed_out(&last, &last_error));
                    }
                    sleep(
                        Duration::from_millis(500)
                            .min(deadline.saturating_duration_since(Instant::now())),
                    )
                    .await;
                    continue;
                }
            };
            match event {
                watcher::Event::Apply(n) | watcher::Event::InitApply(n) => {
                    if is_ready_at(&n, version) {
                        return Ok(());
                    }
                    last = Some(n);
                }
                watcher::Event::Delete(_) => last = None,
                watcher::Event::Init | watcher::Event::InitDone => {}
            }
        }
    }
}
