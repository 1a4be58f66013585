//! [`KubectlOps`]: the cluster operations through `kubectl` on one node, for clusters that
//! kupgrade reaches only through their nodes (no kubeconfig on the operator's machine).
//!
//! Every operation is one or a few `kubectl` commands run on that node through any
//! [`CommandRunner`] (SSH, local, a pod), with the admin kubeconfig kubeadm leaves on
//! control-plane nodes ([`KubectlOps::DEFAULT_KUBECONFIG`]) and `sudo -n` (that file is
//! readable by root only):
//!
//! - `state`: `kubectl get nodes` and the `kube-system` pods, overlaid on the inventory;
//! - `cordon`, `uncordon`: `kubectl cordon` / `uncordon`;
//! - `drain`: `kubectl drain` with the [`DrainOptions`] as its flags. Its report is read back
//!   from kubectl's output and the pods left on the node: what was evicted, which mirror and
//!   DaemonSet pods were left, and which pods blocked the drain and why, with the disruption
//!   budget that refused an eviction (kubectl does not name it: the budgets of the pod's
//!   namespace are listed and their selectors matched against the pod's labels);
//! - `wait_ready`: `kubectl get node` every [`KubectlOps::poll_interval`] until the node is
//!   Ready at the release asked for.
//!
//! A node that does not exist is [`OpsError::NodeNotFound`]; a refusal by RBAC is
//! [`OpsError::Forbidden`]; a runner that cannot reach the node, or a kubectl that cannot
//! reach the API server, is [`OpsError::Connect`].
//!
//! It passes kupgrade-core's `cluster_ops` conformance suite against a real API server
//! (`tests/kubectl_ops.rs`: kubectl v1.20 through the local runner).
mod drain;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kupgrade_core::ports::{
    ClusterOperations, CommandOutput, CommandRunner, CommandRunnerExt, CommandSpec, DrainOptions,
    DrainReport, OpsError, capped,
};
use kupgrade_core::{ClusterState, KubeVersion, Node, NodeName};
use serde_json::Value;

use drain::{DrainOutput, NodePod, blocked_pod, resolve};

/// Cluster operations through `kubectl` on one node (see the [module docs](self)).
///
/// The cluster's state is the inventory given to [`KubectlOps::new`] overlaid with what the
/// API shows: nodes (presence, kubelet version, Ready, cordoned) and the versions of the
/// control-plane static pods, kube-proxy and CoreDNS. The `kubeadm` and `kubectl` binaries
/// on nodes are not visible to the API: they are reported as unknown.
///
/// ```no_run
/// use std::sync::Arc;
/// use kupgrade_core::ports::ClusterOperations;
/// use kupgrade_core::ClusterState;
/// use kupgrade_exec::{KubectlOps, SshConfig, SshRunner};
/// # async fn demo(inventory: ClusterState) -> Result<(), Box<dyn std::error::Error>> {
/// let runner = SshRunner::new(SshConfig::new().user("admin"))?.with_cluster(&inventory);
/// let ops = KubectlOps::new(Arc::new(runner), "cp-1".parse()?, inventory);
/// ops.cordon(&"w-1".parse()?).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KubectlOps {
    runner: Arc<dyn CommandRunner>,
    on: NodeName,
    base: ClusterState,
    kubeconfig: String,
    poll: Duration,
}

impl std::fmt::Debug for KubectlOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubectlOps")
            .field("on", &self.on)
            .field("kubeconfig", &self.kubeconfig)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

/// How long one `kubectl` call other than a drain may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

impl KubectlOps {
    /// The kubeconfig kubeadm writes on control-plane nodes.
    pub const DEFAULT_KUBECONFIG: &'static str = "/etc/kubernetes/admin.conf";
    /// How often `wait_ready` looks at the node by default.
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

    /// Operations through `kubectl` on node `on`, reached with `runner`; `base` is the
    /// inventory the API's view is overlaid on.
    pub fn new(runner: Arc<dyn CommandRunner>, on: NodeName, base: ClusterState) -> Self {
        KubectlOps {
            runner,
            on,
            base,
            kubeconfig: Self::DEFAULT_KUBECONFIG.to_string(),
            poll: Self::DEFAULT_POLL_INTERVAL,
        }
    }

    /// Uses the kubeconfig at `path` on the node instead of
    /// [`KubectlOps::DEFAULT_KUBECONFIG`].
    pub fn kubeconfig(mut self, path: impl Into<String>) -> Self {
        self.kubeconfig = path.into();
        self
    }

    /// Looks at the node every `d` while waiting for it to be Ready (at least 10 ms).
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll = d.max(Duration::from_millis(10));
        self
    }

    fn kubectl<I, S>(&self, args: I, timeout: Duration) -> CommandSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        CommandSpec::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig.as_str())
            .args(args)
            .sudo()
            .timeout(timeout)
    }

    /// Runs `spec` on the node; a command that ran is `Ok`, whatever its status.
    async fn call(&self, spec: &CommandSpec) -> Result<CommandOutput, OpsError> {
        self.runner
            .output(&self.on, spec)
            .await
            .map_err(|e| OpsError::Connect {
                message: format!("running kubectl on {}: {e}", self.on),
                source: Some(Box::new(e)),
            })
    }

    /// Runs `spec` and requires success; `node` is the node the command is about.
    async fn call_ok(
        &self,
        spec: &CommandSpec,
        node: Option<&NodeName>,
    ) -> Result<String, OpsError> {
        let out = self.call(spec).await?;
        if out.status.success() {
            Ok(out.stdout_text())
        } else {
            Err(self.failure(spec, &out, node))
        }
    }

    /// The error for a kubectl command that failed.
    fn failure(
        &self,
        spec: &CommandSpec,
        out: &CommandOutput,
        node: Option<&NodeName>,
    ) -> OpsError {
        let tail = out.stderr_tail(5);
        if let Some(node) = node
            && tail.contains(&format!("nodes \"{node}\" not found"))
        {
            return OpsError::NodeNotFound(node.clone());
        }
        if tail.contains("(Forbidden)") || tail.contains(" is forbidden: ") {
            return OpsError::Forbidden { message: tail };
        }
        let message = format!("`{spec}` on {} ended with {}: {tail}", self.on, out.status);
        if tail.contains("Unable to connect to the server") || tail.contains("connection refused") {
            return OpsError::Connect {
                message,
                source: None,
            };
        }
        OpsError::Other {
            message,
            source: None,
        }
    }

    async fn json(&self, args: &[&str], node: Option<&NodeName>) -> Result<Value, OpsError> {
        let spec = self.kubectl(args.iter().copied(), CALL_TIMEOUT);
        let text = self.call_ok(&spec, node).await?;
        serde_json::from_str(&text).map_err(|e| OpsError::Other {
            message: format!("`{spec}` on {} printed no JSON: {e}", self.on),
            source: Some(Box::new(e)),
        })
    }

    /// The pods on `node` that are not being deleted.
    async fn node_pods(&self, node: &NodeName) -> Result<Vec<NodePod>, OpsError> {
        let selector = format!("spec.nodeName={node}");
        let list = self
            .json(
                &[
                    "get",
                    "pods",
                    "--all-namespaces",
                    "--field-selector",
                    &selector,
                    "-o",
                    "json",
                ],
                None,
            )
            .await?;
        Ok(NodePod::from_list(&list))
    }

    /// The report of a drain that failed, from what kubectl printed and the pods left on
    /// the node; `None` when kubectl named no pod (the failure was something else).
    async fn blocked_report(
        &self,
        node: &NodeName,
        printed: DrainOutput,
    ) -> Result<Option<DrainReport>, OpsError> {
        if printed.blocked.is_empty() {
            return Ok(None);
        }
        let pods = self.node_pods(node).await?;
        let mut budgets: HashMap<String, Option<Value>> = HashMap::new();
        let mut report = DrainReport {
            evicted: printed.evicted.iter().map(|p| resolve(p, &pods)).collect(),
            ..DrainReport::default()
        };
        for (named, reason) in printed.blocked {
            let pod = resolve(&named, &pods);
            let labels = pods.iter().find(|p| p.pod == pod).map(|p| &p.labels);
            if reason.contains("disruption budget") && !budgets.contains_key(&pod.namespace) {
                let args = [
                    "get",
                    "poddisruptionbudgets",
                    "-n",
                    &pod.namespace,
                    "-o",
                    "json",
                ];
                let list = self.json(&args, None).await;
                if let Err(e) = &list {
                    tracing::debug!(namespace = %pod.namespace, error = %e, "listing disruption budgets failed");
                }
                budgets.insert(pod.namespace.clone(), list.ok());
            }
            let list = budgets.get(&pod.namespace).and_then(Option::as_ref);
            report.blocked.push(blocked_pod(pod, reason, labels, list));
        }
        Ok(Some(report))
    }
}

/// `kubectl drain`'s arguments for `options`.
fn drain_args(node: &NodeName, o: &DrainOptions) -> Vec<String> {
    let mut args = vec!["drain".to_string(), node.to_string()];
    args.push(format!("--ignore-daemonsets={}", o.ignore_daemonsets));
    if o.delete_emptydir_data {
        args.push("--delete-emptydir-data".into());
    }
    if o.force {
        args.push("--force".into());
    }
    if o.disable_eviction {
        args.push("--disable-eviction".into());
    }
    if let Some(g) = o.grace_period_seconds {
        args.push(format!("--grace-period={g}"));
    }
    // Capped: kubectl refuses a duration past about 292 years.
    let timeout = capped(Duration::from_secs(o.timeout_seconds));
    args.push(format!("--timeout={}s", timeout.as_secs()));
    args
}

/// The version in an image reference (`registry.k8s.io/kube-apiserver:v1.29.3`).
fn image_version(pod: &Value) -> Option<KubeVersion> {
    let image = pod["spec"]["containers"][0]["image"].as_str()?;
    let tag = image.rsplit_once(':')?.1;
    KubeVersion::parse(tag).ok()
}

/// Whether a Node object's Ready condition is True.
fn is_ready(node: &Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// A Node object's kubelet version.
fn kubelet_version(node: &Value) -> Option<KubeVersion> {
    node["status"]["nodeInfo"]["kubeletVersion"]
        .as_str()
        .and_then(|v| KubeVersion::parse(v).ok())
}

/// `base` overlaid with the API's nodes and `kube-system` pods.
fn overlay(mut state: ClusterState, nodes: &Value, pods: &Value) -> ClusterState {
    let base: BTreeMap<String, Node> = state
        .nodes
        .drain(..)
        .map(|n| (n.name.to_string(), n))
        .collect();
    for item in nodes["items"].as_array().into_iter().flatten() {
        let (Some(name), Some(kubelet)) =
            (item["metadata"]["name"].as_str(), kubelet_version(item))
        else {
            continue;
        };
        let mut node = match base.get(name) {
            Some(n) => n.clone(),
            None => match Node::worker(name, kubelet.clone()) {
                Ok(n) => n,
                Err(_) => continue,
            },
        };
        node.versions.kubelet = Some(kubelet);
        node.versions.kubeadm = None;
        node.versions.kubectl = None;
        node.unschedulable = item["spec"]["unschedulable"].as_bool().unwrap_or(false);
        node.ready = is_ready(item);
        state.nodes.push(node);
    }
    for pod in pods["items"].as_array().into_iter().flatten() {
        let Some(v) = image_version(pod) else {
            continue;
        };
        let labels = &pod["metadata"]["labels"];
        match (labels["component"].as_str(), labels["k8s-app"].as_str()) {
            (Some(component), _) => {
                let Some(n) = pod["spec"]["nodeName"]
                    .as_str()
                    .and_then(|node| state.node_mut(node))
                else {
                    continue;
                };
                let slot = match component {
                    "kube-apiserver" => &mut n.versions.kube_apiserver,
                    "kube-controller-manager" => &mut n.versions.kube_controller_manager,
                    "kube-scheduler" => &mut n.versions.kube_scheduler,
                    "etcd" => &mut n.versions.etcd,
                    _ => continue,
                };
                *slot = Some(v);
            }
            (None, Some("kube-proxy")) => {
                let a = &mut state.addons.kube_proxy;
                if a.as_ref().is_none_or(|cur| v < *cur) {
                    *a = Some(v);
                }
            }
            (None, Some("kube-dns")) => state.addons.coredns = Some(v),
            _ => {}
        }
    }
    state
}

#[async_trait]
impl ClusterOperations for KubectlOps {
    async fn state(&self) -> Result<ClusterState, OpsError> {
        let nodes = self.json(&["get", "nodes", "-o", "json"], None).await?;
        let pods = self
            .json(&["get", "pods", "-n", "kube-system", "-o", "json"], None)
            .await?;
        Ok(overlay(self.base.clone(), &nodes, &pods))
    }

    async fn cordon(&self, node: &NodeName) -> Result<(), OpsError> {
        let spec = self.kubectl(["cordon", node.as_str()], CALL_TIMEOUT);
        self.call_ok(&spec, Some(node)).await.map(|_| ())
    }

    async fn uncordon(&self, node: &NodeName) -> Result<(), OpsError> {
        let spec = self.kubectl(["uncordon", node.as_str()], CALL_TIMEOUT);
        self.call_ok(&spec, Some(node)).await.map(|_| ())
    }

    async fn drain(&self, node: &NodeName, o: &DrainOptions) -> Result<DrainReport, OpsError> {
        let timeout = Duration::from_secs(o.timeout_seconds).saturating_add(CALL_TIMEOUT);
        // kubectl names a pod it deletes (`disable_eviction`) without its namespace, and the
        // pod is gone afterwards: find the namespaces among the pods from before.
        let before = match o.disable_eviction {
            true => self.node_pods(node).await?,
            false => Vec::new(),
        };
        let spec = self.kubectl(drain_args(node, o), timeout);
        let out = self.call(&spec).await?;
        let printed = DrainOutput::parse(&out.stdout_text(), &out.stderr_text());
        if out.status.success() {
            // Whatever kubectl left on the node, it left on purpose.
            let pods = self.node_pods(node).await?;
            let seen = if before.is_empty() { &pods } else { &before };
            return Ok(DrainReport {
                evicted: printed.evicted.iter().map(|p| resolve(p, seen)).collect(),
                skipped: pods
                    .into_iter()
                    .map(|p| {
                        let why = p.kept_because.unwrap_or("left in place by kubectl drain");
                        (p.pod, why.to_string())
                    })
                    .collect(),
                blocked: Vec::new(),
            });
        }
        let failed = self.failure(&spec, &out, Some(node));
        if matches!(
            failed,
            OpsError::NodeNotFound(_) | OpsError::Forbidden { .. }
        ) {
            return Err(failed);
        }
        match self.blocked_report(node, printed).await? {
            Some(report) => Err(OpsError::DrainBlocked {
                node: node.clone(),
                report,
            }),
            None => Err(failed),
        }
    }

    async fn wait_ready(
        &self,
        node: &NodeName,
        version: &KubeVersion,
        timeout: Duration,
    ) -> Result<(), OpsError> {
        let deadline = tokio::time::Instant::now() + capped(timeout);
        loop {
            let item = self
                .json(&["get", "node", node.as_str(), "-o", "json"], Some(node))
                .await?;
            let at = kubelet_version(&item).is_some_and(|v| v.release() == version.release());
            if is_ready(&item) && at {
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(OpsError::TimedOut {
                    what: format!("node {node} to be Ready at {version}"),
                    after: timeout,
                });
            }
            tokio::time::sleep_until((now + self.poll).min(deadline)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drain_flags_follow_the_options() {
        let node: NodeName = "w-1".parse().unwrap();
        assert_eq!(
            drain_args(&node, &DrainOptions::default()),
            ["drain", "w-1", "--ignore-daemonsets=true", "--timeout=600s"]
        );
        let all = DrainOptions {
            grace_period_seconds: Some(0),
            timeout_seconds: 30,
            ignore_daemonsets: false,
            delete_emptydir_data: true,
            force: true,
            disable_eviction: true,
        };
        assert_eq!(
            drain_args(&node, &all),
            [
                "drain",
                "w-1",
                "--ignore-daemonsets=false",
                "--delete-emptydir-data",
                "--force",
                "--disable-eviction",
                "--grace-period=0",
                "--timeout=30s"
            ]
        );
    }

    #[test]
    fn the_state_is_the_inventory_overlaid_with_the_api() {
        let v = |s: &str| -> KubeVersion { s.parse().unwrap() };
        let mut cp = Node::control_plane("cp-1", v("v1.29.3"), None).unwrap();
        cp.versions.kubeadm = Some(v("v1.29.3"));
        let base = ClusterState::new(vec![cp, Node::worker("gone", v("v1.29.3")).unwrap()]);
        let ready = json!([{ "type": "Ready", "status": "True" }]);
        let nodes = json!({ "items": [
            { "metadata": { "name": "cp-1" }, "spec": {},
              "status": { "nodeInfo": { "kubeletVersion": "v1.30.1" }, "conditions": ready } },
            { "metadata": { "name": "w-new" }, "spec": { "unschedulable": true },
              "status": { "nodeInfo": { "kubeletVersion": "v1.29.3" } } },
            { "metadata": { "name": "no-version" }, "status": {} },
        ]});
        let pod = |labels: Value, node: &str, image: &str| {
            json!({ "metadata": { "labels": labels }, "spec": { "nodeName": node,
                "containers": [{ "image": image }] } })
        };
        let pods = json!({ "items": [
            pod(json!({ "component": "kube-apiserver" }), "cp-1", "registry.k8s.io/kube-apiserver:v1.30.1"),
            pod(json!({ "component": "etcd" }), "cp-1", "registry.k8s.io/etcd:3.5.12-0"),
            pod(json!({ "k8s-app": "kube-proxy" }), "cp-1", "registry.k8s.io/kube-proxy:v1.30.1"),
            pod(json!({ "k8s-app": "kube-proxy" }), "w-new", "registry.k8s.io/kube-proxy:v1.29.3"),
            pod(json!({ "k8s-app": "kube-dns" }), "w-new", "registry.k8s.io/coredns/coredns:v1.11.1"),
            pod(json!({ "app": "other" }), "w-new", "example/app:v9.9.9"),
        ]});
        let state = overlay(base, &nodes, &pods);
        let names: Vec<&str> = state.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["cp-1", "w-new"]);
        let cp = state.node("cp-1").unwrap();
        assert!(cp.is_control_plane() && cp.ready && !cp.unschedulable);
        assert_eq!(cp.versions.kubelet, Some(v("v1.30.1")));
        assert_eq!(cp.versions.kube_apiserver, Some(v("v1.30.1")));
        assert_eq!(cp.versions.etcd, Some(v("3.5.12-0")));
        assert_eq!(
            cp.versions.kubeadm, None,
            "kubeadm is not visible to the API"
        );
        let w = state.node("w-new").unwrap();
        assert!(!w.is_control_plane() && !w.ready && w.unschedulable);
        assert_eq!(
            state.addons.kube_proxy,
            Some(v("v1.29.3")),
            "the oldest one"
        );
        assert_eq!(state.addons.coredns, Some(v("v1.11.1")));
    }
}
