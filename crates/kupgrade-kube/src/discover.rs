//! Reading a live kubeadm cluster into a [`ClusterState`].
//!
//! | What | Where it is read |
//! | --- | --- |
//! | nodes | `GET /api/v1/nodes` (optionally label-selected) |
//! | kubelet version | `status.nodeInfo.kubeletVersion` |
//! | roles | label `node-role.kubernetes.io/control-plane` (or the legacy `…/master`) |
//! | OS family | `status.nodeInfo.osImage`, as each package family recognises it ([`kupgrade_core::plan::packages::family_of_os_image`]: Ubuntu, Debian: debian; RHEL, Rocky, Alma, CentOS, Fedora, Amazon Linux, Oracle Linux: rhel; openSUSE Leap and Tumbleweed, SLES: suse; anything else: other) |
//! | Ready, cordoned | the `Ready` condition, `spec.unschedulable` |
//! | control-plane versions per node | the static pods in `kube-system` labelled `component=` `kube-apiserver`, `kube-controller-manager`, `kube-scheduler`, `etcd`: the image tag, on `spec.nodeName` |
//! | stacked or external etcd | ConfigMap `kube-system/kubeadm-config`, key `ClusterConfiguration`, field `etcd.external` |
//! | add-ons | DaemonSet `kube-system/kube-proxy` and Deployment `kube-system/coredns`: the image tag |
//!
//! Nothing is guessed. A value that is missing or does not parse is a [`Problem`] naming the
//! object and the field, and discovery reports every problem it found at once
//! ([`DiscoverError::Invalid`]). Absent add-ons (a cluster without kube-proxy) are simply
//! absent. Without a `kubeadm-config` ConfigMap, etcd counts as stacked only when etcd static
//! pods are seen.
//!
//! Permissions: `examples/rbac/discover.yaml` (get, list nodes; list pods, get the three named
//! objects in kube-system).
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Node as KNode, Pod};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use kupgrade_core::cluster::{ClusterState, EtcdTopology, Node, NodeVersions, Os, OsFamily, Role};
use kupgrade_core::ports::OpsError;
use kupgrade_core::{Component, KubeVersion, NodeName};
use serde::Deserialize;

use crate::error::{ops_error, status_code};

/// The label kubeadm puts on control-plane nodes.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
/// The label kubeadm put on control-plane nodes before 1.24.
pub const LEGACY_MASTER_LABEL: &str = "node-role.kubernetes.io/master";
/// The namespace kubeadm runs the control plane in.
pub const SYSTEM_NAMESPACE: &str = "kube-system";

const STATIC_COMPONENTS: [Component; 4] = [
    Component::KubeApiserver,
    Component::KubeControllerManager,
    Component::KubeScheduler,
    Component::Etcd,
];

/// One value discovery could not read, by object and field.
///
/// ```
/// # use kupgrade_kube::Problem;
/// let p = Problem {
///     object: "pod kube-system/kube-apiserver-cp-1".into(),
///     field: "spec.containers[0].image".into(),
///     value: Some("registry.k8s.io/kube-apiserver:latest".into()),
///     message: "tag is not a version".into(),
/// };
/// assert_eq!(
///     p.to_string(),
///     r#"pod kube-system/kube-apiserver-cp-1: spec.containers[0].image "registry.k8s.io/kube-apiserver:latest": tag is not a version"#
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The object, as `kind namespace/name` (`node w-1`, `pod kube-system/etcd-cp-1`).
    pub object: String,
    /// The field path (`status.nodeInfo.kubeletVersion`).
    pub field: String,
    /// The value found, when there was one.
    pub value: Option<String>,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(
                f,
                "{}: {} {:?}: {}",
                self.object, self.field, v, self.message
            ),
            None => write!(f, "{}: {}: {}", self.object, self.field, self.message),
        }
    }
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoverError {
    /// An API request failed (unreachable, forbidden, server error).
    #[error("discovery could not read {what}: {}", crate::error::describe(source))]
    Api {
        /// What was being read (`list nodes`).
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// Objects were read but some values are missing or do not parse.
    #[error("discovery found {} problem(s): {}", problems.len(), join(problems))]
    Invalid {
        /// Every problem, in the order found.
        problems: Vec<Problem>,
    },
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<DiscoverError> for OpsError {
    fn from(e: DiscoverError) -> OpsError {
        match e {
            DiscoverError::Api { what, source } => ops_error(&format!("discovery: {what}"), source),
            invalid @ DiscoverError::Invalid { .. } => OpsError::Other {
                message: invalid.to_string(),
                source: Some(Box::new(invalid)),
            },
        }
    }
}

/// Reads a kubeadm cluster's state with the default settings (every node, `kube-system`).
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let client = kupgrade_kube::connect(None, None).await?;
/// let state = kupgrade_kube::discover(client).await?;
/// for node in &state.nodes {
///     println!("{} {:?}", node.name, node.kubelet());
/// }
/// # Ok(()) }
/// ```
pub async fn discover(client: Client) -> Result<ClusterState, DiscoverError> {
    Discovery::new(client).run().await
}

/// Discovery with settings: which nodes, and where the control plane's objects live.
#[derive(Clone)]
pub struct Discovery {
    client: Client,
    namespace: String,
    node_selector: Option<String>,
}

impl fmt::Debug for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovery")
            .field("namespace", &self.namespace)
            .field("node_selector", &self.node_selector)
            .finish_non_exhaustive()
    }
}

impl Discovery {
    /// Every node, control plane in `kube-system`.
    pub fn new(client: Client) -> Self {
        Discovery {
            client,
            namespace: SYSTEM_NAMESPACE.to_string(),
            node_selector: None,
        }
    }

    /// Reads only the nodes matching this label selector (`pool=blue`). Static pods on other
    /// nodes are then ignored.
    pub fn node_selector(mut self, selector: impl Into<String>) -> Self {
        self.node_selector = Some(selector.into());
        self
    }

    /// Reads the static pods, `kubeadm-config`, kube-proxy and CoreDNS from `namespace`
    /// instead of `kube-system` (for tests and unusual installs).
    pub fn system_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Reads the cluster.
    pub async fn run(&self) -> Result<ClusterState, DiscoverError> {
        let api_err = |what: String| move |source| DiscoverError::Api { what, source };
        let ns = &self.namespace;

        let mut lp = ListParams::default();
        if let Some(sel) = &self.node_selector {
            lp = lp.labels(sel);
        }
        let nodes = Api::<KNode>::all(self.client.clone())
            .list(&lp)
            .await
            .map_err(api_err("list nodes".into()))?
            .items;

        let components = STATIC_COMPONENTS
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(",");
        let pods = Api::<Pod>::namespaced(self.client.clone(), ns)
            .list(&ListParams::default().labels(&format!("component in ({components})")))
            .await
            .map_err(api_err(format!("list pods in {ns}")))?
            .items;

        let config = get_opt(
            Api::<ConfigMap>::namespaced(self.client.clone(), ns),
            "kubeadm-config",
        )
        .await
        .map_err(api_err(format!("get configmap {ns}/kubeadm-config")))?;
        let proxy = get_opt(
            Api::<DaemonSet>::namespaced(self.client.clone(), ns),
            "kube-proxy",
        )
        .await
        .map_err(api_err(format!("get daemonset {ns}/kube-proxy")))?;
        let dns = get_opt(
            Api::<Deployment>::namespaced(self.client.clone(), ns),
            "coredns",
        )
        .await
        .map_err(api_err(format!("get deployment {ns}/coredns")))?;

        let objects = Objects {
            nodes,
            pods,
            config,
            proxy,
            dns,
            all_nodes: self.node_selector.is_none(),
            namespace: ns.clone(),
        };
        let (state, problems) = objects.to_state();
        if problems.is_empty() {
            Ok(state)
        } else {
            Err(DiscoverError::Invalid { problems })
        }
    }
}

async fn get_opt<K>(api: Api<K>, name: &str) -> Result<Option<K>, kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + fmt::Debug,
{
    match api.get(name).await {
        Ok(o) => Ok(Some(o)),
        Err(e) if status_code(&e) == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The objects discovery read; turning them into a state is pure and unit-tested.
pub(crate) struct Objects {
    pub nodes: Vec<KNode>,
    pub pods: Vec<Pod>,
    pub config: Option<ConfigMap>,
    pub proxy: Option<DaemonSet>,
    pub dns: Option<Deployment>,
    /// False when nodes were label-selected: pods on other nodes are then not problems.
    pub all_nodes: bool,
    /// Where the objects were read.
    pub namespace: String,
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, object: &str, field: &str, value: Option<&str>, message: impl Into<String>) {
        self.0.push(Problem {
            object: object.to_string(),
            field: field.to_string(),
            value: value.map(str::to_string),
            message: message.into(),
        });
    }
}

fn obj_name<K: kube::Resource>(kind: &str, o: &K) -> String {
    match o.meta().namespace.as_deref() {
        Some(ns) => format!("{kind} {ns}/{}", o.name_any()),
        None => format!("{kind} {}", o.name_any()),
    }
}

impl Objects {
    pub(crate) fn to_state(&self) -> (ClusterState, Vec<Problem>) {
        let mut problems = Problems::default();
        let mut nodes: Vec<Node> = self
            .nodes
            .iter()
            .filter_map(|n| read_node(n, &mut problems))
            .collect();

        let index: HashMap<String, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str().to_string(), i))
            .collect();
        let mut seen: HashMap<(usize, Component), String> = HashMap::new();
        let mut etcd_pods = 0;
        for pod in &self.pods {
            let object = obj_name("pod", pod);
            let Some(component) = pod
                .labels()
                .get("component")
                .and_then(|c| STATIC_COMPONENTS.into_iter().find(|s| s.name() == c))
            else {
                continue;
            };
            let spec = pod.spec.as_ref();
            let Some(node_name) = spec.and_then(|s| s.node_name.as_deref()) else {
                problems.add(
                    &object,
                    "spec.nodeName",
                    None,
                    "missing: the pod is not on a node",
                );
                continue;
            };
            let Some(&i) = index.get(node_name) else {
                if self.all_nodes {
                    problems.add(&object, "spec.nodeName", Some(node_name), "no such node");
                }
                continue;
            };
            if component == Component::Etcd {
                etcd_pods += 1;
            }
            let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
            let Some(version) = container_version(
                &object,
                "spec.containers",
                containers,
                component.name(),
                &mut problems,
            ) else {
                continue;
            };
            if let Some(other) = seen.insert((i, component), object.clone()) {
                problems.add(
                    &object,
                    "metadata.labels.component",
                    Some(component.name()),
                    format!("node {node_name} already runs {component} in {other}"),
                );
                continue;
            }
            if let Some(slot) = nodes[i].versions.slot_mut(component) {
                *slot = Some(version);
            }
        }

        let mut state = ClusterState::new(Vec::new());
        read_config(
            &self.namespace,
            self.config.as_ref(),
            etcd_pods,
            &mut state,
            &mut problems,
        );

        if let Some(ds) = &self.proxy {
            let object = obj_name("daemonset", ds);
            let containers = ds
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .map(|s| s.containers.as_slice())
                .unwrap_or_default();
            state.addons.kube_proxy = container_version(
                &object,
                "spec.template.spec.containers",
                containers,
                "kube-proxy",
                &mut problems,
            );
        }
        if let Some(d) = &self.dns {
            let object = obj_name("deployment", d);
            let containers = d
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .map(|s| s.containers.as_slice())
                .unwrap_or_default();
            state.addons.coredns = container_version(
                &object,
                "spec.template.spec.containers",
                containers,
                "coredns",
                &mut problems,
            );
        }

        // Control plane first, then workers; by name within each.
        nodes.sort_by(|a, b| {
            (!a.is_control_plane(), a.name.as_str()).cmp(&(!b.is_control_plane(), b.name.as_str()))
        });
        state.nodes = nodes.into();
        (state, problems.0)
    }
}

fn read_node(n: &KNode, problems: &mut Problems) -> Option<Node> {
    let raw = n.name_any();
    let object = format!("node {raw}");
    let name = match NodeName::new(&raw) {
        Ok(name) => name,
        Err(e) => {
            problems.add(&object, "metadata.name", Some(&raw), e.reason);
            return None;
        }
    };
    let labels: BTreeMap<String, String> = n.labels().clone();
    let control_plane =
        labels.contains_key(CONTROL_PLANE_LABEL) || labels.contains_key(LEGACY_MASTER_LABEL);
    let status = n.status.as_ref();
    let info = status.and_then(|s| s.node_info.as_ref());
    let kubelet = match info.map(|i| i.kubelet_version.as_str()) {
        None | Some("") => {
            problems.add(&object, "status.nodeInfo.kubeletVersion", None, "missing");
            None
        }
        Some(v) => match KubeVersion::parse(v) {
            Ok(v) => Some(v),
            Err(e) => {
                problems.add(
                    &object,
                    "status.nodeInfo.kubeletVersion",
                    Some(v),
                    format!("not a version: {}", e.reason()),
                );
                None
            }
        },
    };
    let os = match info.map(|i| i.os_image.as_str()) {
        None | Some("") => {
            problems.add(&object, "status.nodeInfo.osImage", None, "missing");
            Os::default()
        }
        Some(image) => Os {
            family: os_family(image),
            release: Some(image.to_string()),
        },
    };
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    Some(Node {
        name,
        roles: if control_plane {
            Role::ControlPlane
        } else {
            Role::Worker
        }
        .into(),
        labels: labels.into(),
        os,
        versions: NodeVersions {
            kubelet,
            ..NodeVersions::default()
        },
        ready,
        unschedulable: n
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false),
        ssh: None,
    })
}

/// The OS family of a node's `osImage` (`Ubuntu 22.04.4 LTS`, `Rocky Linux 9.3 (Blue Onyx)`,
/// `openSUSE Leap 15.5`), as the family files of [`kupgrade_core::plan::packages`] recognise it.
pub fn os_family(os_image: &str) -> OsFamily {
    kupgrade_core::plan::packages::family_of_os_image(os_image)
}

/// The tag of a container image reference: `v1.29.3` in `registry.k8s.io/kube-proxy:v1.29.3`,
/// also with a registry port (`localhost:5000/x:v1`) or a digest (`x:v1@sha256:…`). `None`
/// when the reference has no tag.
pub fn image_tag(image: &str) -> Option<&str> {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    last.split_once(':')
        .map(|(_, tag)| tag)
        .filter(|t| !t.is_empty())
}

/// The version in the image of the container called `name` (or the only container), with a
/// problem recorded when there is none.
fn container_version(
    object: &str,
    field: &str,
    containers: &[Container],
    name: &str,
    problems: &mut Problems,
) -> Option<KubeVersion> {
    let found = containers
        .iter()
        .position(|c| c.name == name)
        .or(if containers.len() == 1 { Some(0) } else { None });
    let Some(i) = found else {
        problems.add(
            object,
            field,
            None,
            format!("no container named {name:?} (found {})", containers.len()),
        );
        return None;
    };
    let field = format!("{field}[{i}].image");
    let Some(image) = containers[i].image.as_deref().filter(|s| !s.is_empty()) else {
        problems.add(object, &field, None, "missing");
        return None;
    };
    let Some(tag) = image_tag(image) else {
        problems.add(
            object,
            &field,
            Some(image),
            "image has no tag, so its version is unknown",
        );
        return None;
    };
    match KubeVersion::parse(tag) {
        Ok(v) => Some(v),
        Err(_) => {
            problems.add(object, &field, Some(image), "tag is not a version");
            None
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClusterConfiguration {
    #[serde(default)]
    cluster_name: Option<String>,
    #[serde(default)]
    etcd: Option<EtcdConfig>,
}

#[derive(Deserialize)]
struct EtcdConfig {
    #[serde(default)]
    external: Option<ExternalEtcd>,
}

#[derive(Deserialize)]
struct ExternalEtcd {
    #[serde(default)]
    endpoints: Vec<String>,
}

fn read_config(
    namespace: &str,
    config: Option<&ConfigMap>,
    etcd_pods: usize,
    state: &mut ClusterState,
    problems: &mut Problems,
) {
    let Some(cm) = config else {
        if etcd_pods > 0 {
            state.etcd = EtcdTopology::Stacked;
        } else {
            problems.add(
                &format!("configmap {namespace}/kubeadm-config"),
                "data.ClusterConfiguration",
                None,
                "not found, and no etcd static pods: cannot tell whether etcd is stacked or external",
            );
        }
        return;
    };
    let object = obj_name("configmap", cm);
    let Some(text) = cm.data.as_ref().and_then(|d| d.get("ClusterConfiguration")) else {
        problems.add(&object, "data.ClusterConfiguration", None, "missing");
        return;
    };
    let parsed: ClusterConfiguration = match serde_yaml_ng::from_str(text) {
        Ok(c) => c,
        Err(e) => {
            problems.add(
                &object,
                "data.ClusterConfiguration",
                None,
                format!("not a ClusterConfiguration: {e}"),
            );
            return;
        }
    };
    state.name = parsed.cluster_name.filter(|n| !n.is_empty());
    state.etcd = match parsed.etcd.and_then(|e| e.external) {
        Some(ext) => EtcdTopology::External {
            version: None,
            endpoints: ext.endpoints,
        },
        None => EtcdTopology::Stacked,
    };
}

#[cfg(test)]
mod tests;
