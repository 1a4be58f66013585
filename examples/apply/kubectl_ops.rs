//! [`KubectlOps`]: the apply example's cluster operations without `--kubeconfig`, through
//! `kubectl` on one node.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kupgrade_core::ports::{
    ClusterOperations, CommandRunner, CommandRunnerExt, CommandSpec, DrainOptions, DrainReport,
    OpsError,
};
use kupgrade_core::{ClusterState, KubeVersion, Node, NodeName};

/// Cluster operations through `kubectl` on one node (over whatever runner reaches it), with
/// the admin kubeconfig kubeadm leaves on control-plane nodes. The cluster's state is the
/// inventory overlaid with what the API shows: nodes (presence, kubelet version, Ready,
/// cordoned) and the versions of the control-plane static pods, kube-proxy and CoreDNS. The
/// `kubeadm` and `kubectl` binaries on nodes are not visible to the API: they are reported as
/// unknown.
pub(crate) struct KubectlOps {
    runner: Arc<dyn CommandRunner>,
    on: NodeName,
    base: ClusterState,
}

impl KubectlOps {
    pub(crate) fn new(runner: Arc<dyn CommandRunner>, on: NodeName, base: ClusterState) -> Self {
        KubectlOps { runner, on, base }
    }

    fn kubectl<I, S>(args: I, timeout: Duration) -> CommandSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        CommandSpec::new("kubectl")
            .args(["--kubeconfig", "/etc/kubernetes/admin.conf"])
            .args(args)
            .sudo()
            .timeout(timeout)
    }

    async fn call(&self, spec: CommandSpec) -> Result<String, OpsError> {
        let out = self
            .runner
            .output(&self.on, &spec)
            .await
            .map_err(|e| OpsError::Connect {
                message: format!("running kubectl on {}: {e}", self.on),
                source: Some(Box::new(e)),
            })?;
        if out.status.success() {
            Ok(out.stdout_text())
        } else {
            let tail = out.stderr_tail(5);
            Err(if tail.contains("NotFound") || tail.contains("not found") {
                OpsError::Other {
                    message: format!("`{spec}` on {}: {tail}", self.on),
                    source: None,
                }
            } else if tail.contains("Forbidden") || tail.contains("forbidden") {
                OpsError::Forbidden { message: tail }
            } else {
                OpsError::Other {
                    message: format!("`{spec}` on {} ended with {}: {tail}", self.on, out.status),
                    source: None,
                }
            })
        }
    }

    async fn json(&self, args: &[&str]) -> Result<serde_json::Value, OpsError> {
        let text = self
            .call(Self::kubectl(args.iter().copied(), Duration::from_secs(60)))
            .await?;
        serde_json::from_str(&text).map_err(|e| OpsError::Other {
            message: format!("kubectl {} printed no JSON: {e}", args.join(" ")),
            source: None,
        })
    }
}

/// The version in an image reference (`registry.k8s.io/kube-apiserver:v1.29.3`).
fn image_version(pod: &serde_json::Value) -> Option<KubeVersion> {
    let image = pod["spec"]["containers"][0]["image"].as_str()?;
    let tag = image.rsplit_once(':')?.1;
    KubeVersion::parse(tag).ok()
}

#[async_trait]
impl ClusterOperations for KubectlOps {
    async fn state(&self) -> Result<ClusterState, OpsError> {
        let nodes = self.json(&["get", "nodes", "-o", "json"]).await?;
        let pods = self
            .json(&["get", "pods", "-n", "kube-system", "-o", "json"])
            .await?;
        let mut state = self.base.clone();
        let base: HashMap<String, Node> = state
            .nodes
            .drain(..)
            .map(|n| (n.name.to_string(), n))
            .collect();
        for item in nodes["items"].as_array().into_iter().flatten() {
            let Some(name) = item["metadata"]["name"].as_str() else {
                continue;
            };
            let Some(kubelet) = item["status"]["nodeInfo"]["kubeletVersion"]
                .as_str()
                .and_then(|v| KubeVersion::parse(v).ok())
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
            node.ready = item["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            state.nodes.push(node);
        }
        for pod in pods["items"].as_array().into_iter().flatten() {
            let Some(v) = image_version(pod) else {
                continue;
            };
            let labels = &pod["metadata"]["labels"];
            match (labels["component"].as_str(), labels["k8s-app"].as_str()) {
                (Some(component), _) => {
                    let Some(node) = pod["spec"]["nodeName"].as_str() else {
                        continue;
                    };
                    let Some(n) = state.node_mut(node) else {
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
        Ok(state)
    }

    async fn cordon(&self, node: &NodeName) -> Result<(), OpsError> {
        self.call(Self::kubectl(
            ["cordon", node.as_str()],
            Duration::from_secs(60),
        ))
        .await
        .map(|_| ())
    }

    async fn uncordon(&self, node: &NodeName) -> Result<(), OpsError> {
        self.call(Self::kubectl(
            ["uncordon", node.as_str()],
            Duration::from_secs(60),
        ))
        .await
        .map(|_| ())
    }

    async fn drain(&self, node: &NodeName, o: &DrainOptions) -> Result<DrainReport, OpsError> {
        let mut args = vec!["drain".to_string(), node.to_string()];
        if o.ignore_daemonsets {
            args.push("--ignore-daemonsets".into());
        }
        if o.delete_emptydir_data {
            args.push("--delete-emptydir-data".into());
        }
        if o.force {
            args.push("--force".into());
        }
        if let Some(g) = o.grace_period_seconds {
            args.push(format!("--grace-period={g}"));
        }
        args.push(format!("--timeout={}s", o.timeout_seconds));
        let timeout = Duration::from_secs(o.timeout_seconds + 60);
        let text = self.call(Self::kubectl(args, timeout)).await?;
        let mut report = DrainReport::default();
        for line in text.lines() {
            // `pod/web-1 evicted`
            if let Some(name) = line
                .strip_prefix("pod/")
                .and_then(|l| l.strip_suffix(" evicted"))
            {
                report.evicted.push(kupgrade_core::ports::PodRef {
                    namespace: String::new(),
                    name: name.to_string(),
                });
            }
        }
        Ok(report)
    }

    async fn wait_ready(
        &self,
        node: &NodeName,
        version: &KubeVersion,
        timeout: Duration,
    ) -> Result<(), OpsError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let item = self
                .json(&["get", "node", node.as_str(), "-o", "json"])
                .await?;
            let ready = item["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            let at = item["status"]["nodeInfo"]["kubeletVersion"]
                .as_str()
                .and_then(|v| KubeVersion::parse(v).ok())
                .is_some_and(|v| v.release() == version.release());
            if ready && at {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(OpsError::TimedOut {
                    what: format!("node {node} to be Ready at {version}"),
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
}
