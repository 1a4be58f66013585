//! [`NodeReadOps`]: a cluster's state with the versions read on the nodes themselves, for runs
//! that reach the cluster only through its nodes (no kubeconfig on the operator's machine).
//!
//! What the API shows (through [`crate::KubectlOps`]) or the inventory says is not enough to
//! tell where a cluster is: the API never shows the `kubeadm` binary, and an inventory may be
//! out of date (a halted run moved the control plane after it was written). Before each
//! state it hands on, [`NodeReadOps`] asks every node, through the node runner:
//!
//! - `kubeadm version -o short`: the kubeadm binary (every node);
//! - `kubelet --version`: the kubelet binary, only where the state has no kubelet version (the
//!   API's, when there is one, is the running kubelet's and wins);
//! - `sudo -n grep -s -H image: DIR/kube-apiserver.yaml … DIR/etcd.yaml`: the images kubeadm
//!   wrote into the static pod manifests (control-plane nodes; `DIR` is
//!   [`NodeReadOps::DEFAULT_MANIFESTS`] unless told otherwise).
//!
//! A program the node does not have ([`RunnerError::NotFound`], exit status 127), a manifest that is absent, or output
//! that is not a version leaves that version as the state had it; a node the runner cannot
//! reach is [`OpsError::Connect`]. Cordoning, draining and waiting are the inner operations'.
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use kupgrade_core::ports::{
    ClusterOperations, CommandOutput, CommandRunner, CommandRunnerExt, CommandSpec, DrainOptions,
    DrainReport, ExitStatus, OpsError, RunnerError,
};
use kupgrade_core::{ClusterState, Component, KubeVersion, Node, NodeName};

/// How long one version command may take.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Nodes read at once.
const CONCURRENT_NODES: usize = 16;
/// The static pod manifests read on control-plane nodes, by component.
const MANIFESTS: [(&str, Component); 4] = [
    ("kube-apiserver.yaml", Component::KubeApiserver),
    (
        "kube-controller-manager.yaml",
        Component::KubeControllerManager,
    ),
    ("kube-scheduler.yaml", Component::KubeScheduler),
    ("etcd.yaml", Component::Etcd),
];

/// Cluster operations whose state is the inner operations' overlaid with the versions read on
/// the nodes: `kubeadm version -o short` on every node, `kubelet --version` where the state has
/// no kubelet version, and the images of the static pod manifests (`sudo -n grep -s -H image:`)
/// on control-plane nodes. A program the node lacks, an absent manifest or output that is not a
/// version leaves the version as the state had it; a node the runner cannot reach is
/// [`OpsError::Connect`]. Cordoning, draining and waiting are the inner operations'.
///
/// ```no_run
/// use std::sync::Arc;
/// use kupgrade_core::ports::ClusterOperations;
/// use kupgrade_core::ClusterState;
/// use kupgrade_exec::{KubectlOps, NodeReadOps, SshConfig, SshRunner};
/// # async fn demo(inventory: ClusterState) -> Result<(), Box<dyn std::error::Error>> {
/// let runner = Arc::new(SshRunner::new(SshConfig::new().user("admin"))?.with_cluster(&inventory));
/// let kubectl = KubectlOps::new(runner.clone(), "cp-1".parse()?, inventory);
/// let ops = NodeReadOps::new(Arc::new(kubectl), runner);
/// let state = ops.state().await?; // kubeadm and the manifests' versions as the nodes have them
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct NodeReadOps {
    inner: Arc<dyn ClusterOperations>,
    runner: Arc<dyn CommandRunner>,
    manifests: String,
}

impl std::fmt::Debug for NodeReadOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeReadOps")
            .field("manifests", &self.manifests)
            .finish_non_exhaustive()
    }
}

impl NodeReadOps {
    /// Where kubeadm writes the static pod manifests.
    pub const DEFAULT_MANIFESTS: &'static str = "/etc/kubernetes/manifests";

    /// The operations of `inner`, its state overlaid with what `runner` reads on the nodes.
    pub fn new(inner: Arc<dyn ClusterOperations>, runner: Arc<dyn CommandRunner>) -> Self {
        NodeReadOps {
            inner,
            runner,
            manifests: Self::DEFAULT_MANIFESTS.to_string(),
        }
    }

    /// Reads the manifests in `dir` on the nodes instead of [`Self::DEFAULT_MANIFESTS`].
    pub fn manifests_dir(mut self, dir: impl Into<String>) -> Self {
        self.manifests = dir.into().trim_end_matches('/').to_string();
        self
    }

    /// Runs `spec` on `node`; `None` when the program is not there (status 127) or failed
    /// without output.
    async fn read(&self, node: &NodeName, spec: CommandSpec) -> Result<Option<String>, OpsError> {
        let out: CommandOutput = match self.runner.output(node, &spec.timeout(READ_TIMEOUT)).await {
            Ok(out) => out,
            Err(RunnerError::NotFound { .. }) => return Ok(None),
            Err(e) => {
                return Err(OpsError::Connect {
                    message: format!("reading the versions on node {node}: {e}"),
                    source: Some(Box::new(e)),
                });
            }
        };
        Ok(match out.status {
            ExitStatus::Code(127) => None,
            _ if out.stdout.is_empty() => None,
            _ => Some(out.stdout_text()),
        })
    }

    /// Overlays what `node` says about itself on `n`.
    async fn overlay(&self, mut n: Node) -> Result<Node, OpsError> {
        let name = n.name.clone();
        let kubeadm = self
            .read(
                &name,
                CommandSpec::new("kubeadm").args(["version", "-o", "short"]),
            )
            .await?;
        if let Some(v) = kubeadm.as_deref().and_then(|t| parse_version(t.trim())) {
            n.versions.kubeadm = Some(v);
        }
        if n.versions.kubelet.is_none() {
            let kubelet = self
                .read(&name, CommandSpec::new("kubelet").arg("--version"))
                .await?;
            n.versions.kubelet = kubelet.as_deref().and_then(kubelet_version);
        }
        if n.is_control_plane() {
            let files = MANIFESTS.map(|(f, _)| format!("{}/{f}", self.manifests));
            let spec = CommandSpec::new("grep")
                .args(["-s", "-H", "image:"])
                .args(files)
                .sudo();
            if let Some(text) = self.read(&name, spec).await? {
                for (component, version) in manifest_images(&text) {
                    if let Some(slot) = n.versions.slot_mut(component) {
                        *slot = Some(version);
                    }
                }
            }
        }
        Ok(n)
    }
}

/// A version as a tool prints it (`v1.29.3`, `3.5.10-0`).
fn parse_version(text: &str) -> Option<KubeVersion> {
    KubeVersion::parse(text).ok()
}

/// `Kubernetes v1.29.3` (what `kubelet --version` prints).
fn kubelet_version(text: &str) -> Option<KubeVersion> {
    parse_version(text.trim().strip_prefix("Kubernetes ")?.trim())
}

/// The components and versions of `grep -H image:` lines of the static pod manifests: the tag
/// of each image (a registry port and a digest are not the tag).
fn manifest_images(text: &str) -> Vec<(Component, KubeVersion)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((file, rest)) = line.split_once(':') else {
            continue;
        };
        let Some((_, component)) = MANIFESTS
            .iter()
            .find(|(f, _)| file.ends_with(&format!("/{f}")))
        else {
            continue;
        };
        let Some(image) = rest.trim().trim_start_matches("- ").strip_prefix("image:") else {
            continue;
        };
        let image = image.trim().trim_matches(['"', '\'']);
        let image = image.split_once('@').map_or(image, |(i, _)| i);
        let last = image.rsplit('/').next().unwrap_or(image);
        if let Some(v) = last.split_once(':').and_then(|(_, tag)| parse_version(tag)) {
            out.push((*component, v));
        }
    }
    out
}

#[async_trait]
impl ClusterOperations for NodeReadOps {
    async fn state(&self) -> Result<ClusterState, OpsError> {
        let mut state = self.inner.state().await?;
        let nodes: Vec<Node> = state.nodes.iter().cloned().collect();
        let read: Vec<Result<Node, OpsError>> = stream::iter(nodes)
            .map(|n| self.overlay(n))
            .buffered(CONCURRENT_NODES)
            .collect()
            .await;
        for (i, n) in read.into_iter().enumerate() {
            let n = n?;
            if let Some(slot) = state.nodes.get_mut(i) {
                *slot = n;
            }
        }
        Ok(state)
    }

    async fn cordon(&self, node: &NodeName) -> Result<(), OpsError> {
        self.inner.cordon(node).await
    }

    async fn uncordon(&self, node: &NodeName) -> Result<(), OpsError> {
        self.inner.uncordon(node).await
    }

    async fn drain(&self, node: &NodeName, o: &DrainOptions) -> Result<DrainReport, OpsError> {
        self.inner.drain(node, o).await
    }

    async fn wait_ready(
        &self,
        node: &NodeName,
        version: &KubeVersion,
        timeout: Duration,
    ) -> Result<(), OpsError> {
        self.inner.wait_ready(node, version, timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_what_the_tools_print() {
        assert_eq!(
            kubelet_version("Kubernetes v1.29.15\n"),
            Some("v1.29.15".parse().unwrap())
        );
        assert_eq!(kubelet_version("v1.29.15"), None);
        let text = "\
/etc/kubernetes/manifests/kube-apiserver.yaml:    image: registry.k8s.io/kube-apiserver:v1.29.15
/etc/kubernetes/manifests/kube-controller-manager.yaml:    image: \"reg.local:5000/k8s/kube-controller-manager:v1.29.15@sha256:0123\"
/etc/kubernetes/manifests/kube-scheduler.yaml:    image: registry.k8s.io/kube-scheduler
/etc/kubernetes/manifests/etcd.yaml:  - image: registry.k8s.io/etcd:3.5.10-0
/etc/kubernetes/manifests/other.yaml:    image: registry.k8s.io/other:v9.9.9
";
        let v = |s: &str| s.parse::<KubeVersion>().unwrap();
        assert_eq!(
            manifest_images(text),
            [
                (Component::KubeApiserver, v("v1.29.15")),
                (Component::KubeControllerManager, v("v1.29.15")),
                (Component::Etcd, v("3.5.10-0")),
            ]
        );
    }
}
