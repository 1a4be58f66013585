//! The state of a cluster: its nodes, the versions each runs, its add-ons and its etcd.
//!
//! A [`ClusterState`] is plain data. It is read from an inventory file
//! ([`crate::inventory`]), discovered from a live cluster (kupgrade-kube), or produced by the
//! planner as it simulates a plan step by step.
use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Component, KubeVersion, Minor};

/// The label that says which failure zone a node is in.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// A whole cluster as kupgrade sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterState {
    /// The cluster's name, for reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How etcd runs.
    #[serde(default)]
    pub etcd: EtcdTopology,
    /// Cluster add-ons whose versions kubeadm manages.
    #[serde(default)]
    pub addons: Addons,
    /// The operators' kubectl version, when known (kubectl on nodes is per node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubectl: Option<KubeVersion>,
    /// Every node, control plane first by convention (order is kept, never relied upon).
    pub nodes: Nodes,
}

/// How etcd runs in the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum EtcdTopology {
    /// A static pod on each control-plane node (its version is in each node's `etcd`).
    #[default]
    Stacked,
    /// A separate etcd cluster that kubeadm does not upgrade.
    External {
        /// Its version, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<KubeVersion>,
        /// Client endpoints, for reports.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        endpoints: Vec<String>,
    },
}

/// Add-ons that `kubeadm upgrade apply` moves along with the control plane.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Addons {
    /// The kube-proxy DaemonSet's version (it runs on every node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_proxy: Option<KubeVersion>,
    /// The CoreDNS Deployment's version (`v1.10.1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coredns: Option<KubeVersion>,
}

/// Data shared between copies until one of them changes it (copy on write): it derefs to
/// the `T` inside, and [`DerefMut`] copies it first when another copy shares it. Serialized,
/// and described in schemas, as a plain `T`.
///
/// The planner and the runner copy whole cluster states for every step they check or read:
/// a state's [`Nodes`] and each node's [`Labels`] are shared this way, so copying a state
/// that nobody changes costs nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shared<T>(Arc<T>);

/// A cluster's nodes: a list, read and changed like a [`Vec`].
pub type Nodes = Shared<Vec<Node>>;

/// A node's labels: a map from key to value, read and changed like a [`BTreeMap`].
pub type Labels = Shared<BTreeMap<String, String>>;

impl<T> Shared<T> {
    /// True when `self` and `other` share one copy of the data.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T: Clone> Shared<T> {
    /// The data, copied first when another copy shares it.
    pub fn into_inner(self) -> T {
        Arc::unwrap_or_clone(self.0)
    }
}

impl Labels {
    /// No labels.
    pub fn new() -> Labels {
        Labels::default()
    }

    /// Whether there are no labels (also reachable through `Deref`; here for serde's
    /// `skip_serializing_if`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Clone> DerefMut for Shared<T> {
    /// The data to change, copied first when another copy shares it.
    fn deref_mut(&mut self) -> &mut T {
        Arc::make_mut(&mut self.0)
    }
}

impl<T> From<T> for Shared<T> {
    fn from(data: T) -> Shared<T> {
        Shared(Arc::new(data))
    }
}

impl<A, T: FromIterator<A>> FromIterator<A> for Shared<T> {
    fn from_iter<I: IntoIterator<Item = A>>(iter: I) -> Shared<T> {
        Shared(Arc::new(iter.into_iter().collect()))
    }
}

impl<'a, T> IntoIterator for &'a Shared<T>
where
    &'a T: IntoIterator,
{
    type Item = <&'a T as IntoIterator>::Item;
    type IntoIter = <&'a T as IntoIterator>::IntoIter;

    fn into_iter(self) -> Self::IntoIter {
        self.0.as_ref().into_iter()
    }
}

impl<'a, T: Clone> IntoIterator for &'a mut Shared<T>
where
    &'a mut T: IntoIterator,
{
    type Item = <&'a mut T as IntoIterator>::Item;
    type IntoIter = <&'a mut T as IntoIterator>::IntoIter;

    fn into_iter(self) -> Self::IntoIter {
        Arc::make_mut(&mut self.0).into_iter()
    }
}

impl<T: Clone + IntoIterator> IntoIterator for Shared<T> {
    type Item = T::Item;
    type IntoIter = T::IntoIter;

    fn into_iter(self) -> Self::IntoIter {
        self.into_inner().into_iter()
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// The schema of a plain `T`, inlined (the sharing is not part of the format).
impl<T: JsonSchema> JsonSchema for Shared<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shared<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Shared<T>, D::Error> {
        T::deserialize(deserializer).map(Shared::from)
    }
}

/// A node's roles: a set of [`Role`]s, stored in one byte (so copying a node allocates
/// nothing for them). Written as a list (`[control-plane]`), in [`Role`] order.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Roles(u8);

impl Roles {
    const ALL: [Role; 2] = [Role::ControlPlane, Role::Worker];

    fn bit(role: Role) -> u8 {
        match role {
            Role::ControlPlane => 1,
            Role::Worker => 2,
        }
    }

    /// No roles (a worker, by the inventory's convention).
    pub fn new() -> Roles {
        Roles(0)
    }

    /// Whether `role` is among them.
    pub fn contains(&self, role: &Role) -> bool {
        self.0 & Roles::bit(*role) != 0
    }

    /// Adds `role`; false if it was there already.
    pub fn insert(&mut self, role: Role) -> bool {
        let had = self.contains(&role);
        self.0 |= Roles::bit(role);
        !had
    }

    /// Removes `role`; false if it was not there.
    pub fn remove(&mut self, role: Role) -> bool {
        let had = self.contains(&role);
        self.0 &= !Roles::bit(role);
        had
    }

    /// Removes every role.
    pub fn clear(&mut self) {
        self.0 = 0;
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.count_ones() as usize
    }

    /// The roles, in [`Role`] order.
    pub fn iter(&self) -> impl Iterator<Item = Role> + '_ {
        let set = *self;
        Roles::ALL.into_iter().filter(move |r| set.contains(r))
    }
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Role> for Roles {
    fn from(role: Role) -> Roles {
        Roles(Roles::bit(role))
    }
}

impl FromIterator<Role> for Roles {
    fn from_iter<I: IntoIterator<Item = Role>>(iter: I) -> Roles {
        let mut set = Roles::new();
        for r in iter {
            set.insert(r);
        }
        set
    }
}

impl From<Vec<Role>> for Roles {
    fn from(roles: Vec<Role>) -> Roles {
        roles.into_iter().collect()
    }
}

impl<const N: usize> From<[Role; N]> for Roles {
    fn from(roles: [Role; N]) -> Roles {
        roles.into_iter().collect()
    }
}

impl PartialEq<Vec<Role>> for Roles {
    fn eq(&self, other: &Vec<Role>) -> bool {
        self.iter().eq(other.iter().copied())
    }
}

impl Serialize for Roles {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Roles {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Roles, D::Error> {
        Vec::<Role>::deserialize(deserializer).map(Roles::from)
    }
}

/// The schema of a list of roles, inlined.
impl JsonSchema for Roles {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        Vec::<Role>::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Vec::<Role>::json_schema(generator)
    }
}

/// One node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    /// The node's name (an RFC 1123 subdomain).
    pub name: NodeName,
    /// The node's roles; a node with no role is a worker.
    #[serde(default, skip_serializing_if = "Roles::is_empty")]
    pub roles: Roles,
    /// Node labels (the zone is `topology.kubernetes.io/zone`).
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// Operating system, which decides the package commands.
    #[serde(default)]
    pub os: Os,
    /// The versions of the components on this node.
    pub versions: NodeVersions,
    /// Whether the node reports Ready.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub ready: bool,
    /// Whether the node is cordoned.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unschedulable: bool,
    /// How to reach the node over SSH, for executors that need it.
    // Boxed: most nodes have none, and a node stays small in states of tens of thousands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<Box<SshTarget>>,
}

fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}
fn is_false(b: &bool) -> bool {
    !*b
}

/// Where and as whom to reach a node over SSH.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SshTarget {
    /// Host name or address (defaults to the node name when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Port (defaults to the SSH client's configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// User (defaults to the SSH client's configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// The role of a node.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the control-plane static pods.
    ControlPlane,
    /// Runs workloads.
    Worker,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::ControlPlane => "control-plane",
            Role::Worker => "worker",
        })
    }
}

/// The operating system of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Os {
    /// The family, which decides the package manager.
    #[serde(default)]
    pub family: OsFamily,
    /// The release (`ubuntu-22.04`, `rhel-9.3`), for reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

/// Operating-system families, by package manager.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum OsFamily {
    /// Debian, Ubuntu: apt and dpkg.
    #[default]
    Debian,
    /// RHEL, Rocky, Alma, Fedora, CentOS Stream: dnf (or yum) and rpm.
    Rhel,
    /// openSUSE Leap and Tumbleweed, SUSE Linux Enterprise Server: zypper and rpm.
    Suse,
    /// Anything else: kupgrade renders no package commands for it.
    Other,
}

impl OsFamily {
    /// Every family, in order; each but `Other` has a [`crate::plan::packages::manager`].
    pub const ALL: [OsFamily; 4] = [Self::Debian, Self::Rhel, Self::Suse, Self::Other];
}

impl fmt::Display for OsFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OsFamily::Debian => "debian",
            OsFamily::Rhel => "rhel",
            OsFamily::Suse => "suse",
            OsFamily::Other => "other",
        })
    }
}

/// The versions of the components on one node. Control-plane components are only present on
/// control-plane nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NodeVersions {
    /// The kubelet (required on every node).
    pub kubelet: Option<KubeVersion>,
    /// The kubeadm binary installed on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeadm: Option<KubeVersion>,
    /// The kubectl binary installed on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubectl: Option<KubeVersion>,
    /// The kube-proxy pod on this node, when it differs from the add-on version (mid-rollout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_proxy: Option<KubeVersion>,
    /// The API server static pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_apiserver: Option<KubeVersion>,
    /// The controller manager static pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_controller_manager: Option<KubeVersion>,
    /// The scheduler static pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_scheduler: Option<KubeVersion>,
    /// The cloud controller manager, when it runs on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_controller_manager: Option<KubeVersion>,
    /// The stacked etcd static pod (`3.5.9-0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<KubeVersion>,
}

impl NodeVersions {
    /// The version of `component` on this node, if it runs here. CoreDNS is a cluster add-on
    /// and never per node.
    pub fn get(&self, component: Component) -> Option<&KubeVersion> {
        match component {
            Component::KubeApiserver => self.kube_apiserver.as_ref(),
            Component::KubeControllerManager => self.kube_controller_manager.as_ref(),
            Component::KubeScheduler => self.kube_scheduler.as_ref(),
            Component::CloudControllerManager => self.cloud_controller_manager.as_ref(),
            Component::Kubelet => self.kubelet.as_ref(),
            Component::KubeProxy => self.kube_proxy.as_ref(),
            Component::Kubectl => self.kubectl.as_ref(),
            Component::Kubeadm => self.kubeadm.as_ref(),
            Component::Etcd => self.etcd.as_ref(),
            Component::CoreDns => None,
        }
    }

    /// A mutable slot for `component` (`None` for CoreDNS, a cluster add-on).
    pub fn slot_mut(&mut self, component: Component) -> Option<&mut Option<KubeVersion>> {
        Some(match component {
            Component::KubeApiserver => &mut self.kube_apiserver,
            Component::KubeControllerManager => &mut self.kube_controller_manager,
            Component::KubeScheduler => &mut self.kube_scheduler,
            Component::CloudControllerManager => &mut self.cloud_controller_manager,
            Component::Kubelet => &mut self.kubelet,
            Component::KubeProxy => &mut self.kube_proxy,
            Component::Kubectl => &mut self.kubectl,
            Component::Kubeadm => &mut self.kubeadm,
            Component::Etcd => &mut self.etcd,
            Component::CoreDns => return None,
        })
    }

    /// Every component present on the node with its version.
    pub fn iter(&self) -> impl Iterator<Item = (Component, &KubeVersion)> + '_ {
        Component::ALL
            .into_iter()
            .filter_map(move |c| self.get(c).map(|v| (c, v)))
    }
}

impl Node {
    /// A Ready worker running `kubelet` (and kubeadm, kubectl at the same version).
    pub fn worker(name: &str, kubelet: KubeVersion) -> Result<Node, NodeNameError> {
        Ok(Node {
            name: name.parse()?,
            roles: Role::Worker.into(),
            labels: Labels::default(),
            os: Os::default(),
            versions: NodeVersions {
                kubeadm: Some(kubelet.clone()),
                kubectl: Some(kubelet.clone()),
                kubelet: Some(kubelet),
                ..NodeVersions::default()
            },
            ready: true,
            unschedulable: false,
            ssh: None,
        })
    }

    /// A Ready control-plane node whose kubelet and static pods all run `version`, with
    /// stacked etcd at `etcd` when given.
    pub fn control_plane(
        name: &str,
        version: KubeVersion,
        etcd: Option<KubeVersion>,
    ) -> Result<Node, NodeNameError> {
        let mut node = Node::worker(name, version.clone())?;
        node.roles = Role::ControlPlane.into();
        let v = &mut node.versions;
        v.kube_apiserver = Some(version.clone());
        v.kube_controller_manager = Some(version.clone());
        v.kube_scheduler = Some(version);
        v.etcd = etcd;
        Ok(node)
    }

    /// Sets a label, builder style.
    pub fn with_label(mut self, key: &str, value: &str) -> Node {
        self.labels.insert(key.to_string(), value.to_string());
        self
    }

    /// The node called `name` that joins at `version` in place of `template` (a replacement,
    /// as cloud node groups and Cluster API make them): the template's roles, labels and OS;
    /// kubelet, kubeadm and kubectl at `version`; Ready and schedulable.
    ///
    /// ```
    /// use kupgrade_core::Node;
    /// let old = Node::worker("w-1", "v1.29.3".parse()?)?.with_label("pool", "a");
    /// let new = Node::provisioned(&"w-1-v1-30-2".parse()?, &old, &"v1.30.2".parse()?);
    /// assert_eq!(new.kubelet().map(ToString::to_string).as_deref(), Some("v1.30.2"));
    /// assert_eq!(new.labels.get("pool").map(String::as_str), Some("a"));
    /// assert!(new.ready && !new.unschedulable);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn provisioned(name: &NodeName, template: &Node, version: &KubeVersion) -> Node {
        Node {
            name: name.clone(),
            roles: template.roles,
            labels: template.labels.clone(),
            os: template.os.clone(),
            versions: NodeVersions {
                kubelet: Some(version.clone()),
                kubeadm: Some(version.clone()),
                kubectl: Some(version.clone()),
                ..NodeVersions::default()
            },
            ready: true,
            unschedulable: false,
            ssh: None,
        }
    }

    /// True when the node runs the control plane.
    pub fn is_control_plane(&self) -> bool {
        self.roles.contains(&Role::ControlPlane)
    }

    /// The node's zone label, if any.
    pub fn zone(&self) -> Option<&str> {
        self.labels.get(ZONE_LABEL).map(String::as_str)
    }

    /// The kubelet's version; validated inventories always have one.
    pub fn kubelet(&self) -> Option<&KubeVersion> {
        self.versions.kubelet.as_ref()
    }
}

impl ClusterState {
    /// A state with these nodes, stacked etcd and no add-on versions.
    pub fn new(nodes: Vec<Node>) -> Self {
        ClusterState {
            name: None,
            etcd: EtcdTopology::Stacked,
            addons: Addons::default(),
            kubectl: None,
            nodes: nodes.into(),
        }
    }

    /// The control-plane nodes.
    pub fn control_plane(&self) -> impl Iterator<Item = &Node> + '_ {
        self.nodes.iter().filter(|n| n.is_control_plane())
    }

    /// The nodes that are not control-plane nodes.
    pub fn workers(&self) -> impl Iterator<Item = &Node> + '_ {
        self.nodes.iter().filter(|n| !n.is_control_plane())
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name.as_str() == name)
    }

    /// The node called `name`, mutably.
    pub fn node_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.name.as_str() == name)
    }

    /// The oldest API server version (the cluster's effective version, as kubeadm sees it).
    pub fn apiserver_min(&self) -> Option<&KubeVersion> {
        self.control_plane()
            .filter_map(|n| n.versions.kube_apiserver.as_ref())
            .min()
    }

    /// The newest API server version.
    pub fn apiserver_max(&self) -> Option<&KubeVersion> {
        self.control_plane()
            .filter_map(|n| n.versions.kube_apiserver.as_ref())
            .max()
    }

    /// The minor of the oldest API server: the minor the control plane is at.
    pub fn control_plane_minor(&self) -> Option<Minor> {
        self.apiserver_min().map(KubeVersion::minor)
    }

    /// The oldest kubelet in the cluster.
    pub fn kubelet_min(&self) -> Option<&KubeVersion> {
        self.nodes.iter().filter_map(Node::kubelet).min()
    }

    /// The version of kube-proxy on `node`: the node's own value when the inventory gives one,
    /// otherwise the add-on's.
    pub fn kube_proxy_on<'a>(&'a self, node: &'a Node) -> Option<&'a KubeVersion> {
        node.versions
            .kube_proxy
            .as_ref()
            .or(self.addons.kube_proxy.as_ref())
    }

    /// The nodes whose kube-proxy runs another release than `target` (what a rollout waits
    /// for; `None`: the DaemonSet's, [`Addons::kube_proxy`]), each with the version it runs
    /// ([`ClusterState::kube_proxy_on`]), in node order. Usually they are behind; a node ahead
    /// (after a rollback of the DaemonSet) is listed too. Releases are compared, so a vendor
    /// build of the target (`v1.30.2-eks-1a2b3c`) is at it. Nodes with no known version, and
    /// all nodes when there is no target, are not listed.
    ///
    /// ```
    /// # use kupgrade_core::{ClusterState, Node};
    /// let mut state = ClusterState::new(vec![Node::worker("w-1", "v1.30.2".parse()?)?]);
    /// state.node_mut("w-1").unwrap().versions.kube_proxy = Some("v1.29.6".parse()?);
    /// let target = "v1.30.2".parse()?;
    /// let behind: Vec<_> = state.nodes_behind_kube_proxy(Some(&target)).collect();
    /// assert_eq!(behind[0].1.to_string(), "v1.29.6");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn nodes_behind_kube_proxy<'a>(
        &'a self,
        target: Option<&'a KubeVersion>,
    ) -> impl Iterator<Item = (&'a Node, &'a KubeVersion)> + 'a {
        let target = target.or(self.addons.kube_proxy.as_ref());
        self.nodes.iter().filter_map(move |node| {
            let running = self.kube_proxy_on(node)?;
            (target?.release() != running.release()).then_some((node, running))
        })
    }

    /// The etcd version: the oldest stacked member, or the external cluster's.
    pub fn etcd_version(&self) -> Option<&KubeVersion> {
        match &self.etcd {
            EtcdTopology::Stacked => self
                .control_plane()
                .filter_map(|n| n.versions.etcd.as_ref())
                .min(),
            EtcdTopology::External { version, .. } => version.as_ref(),
        }
    }
}

/// A valid node name: an RFC 1123 DNS subdomain (lowercase letters, digits, `-` and `.`; each
/// label 1 to 63 characters starting and ending with a letter or digit; 253 at most).
///
/// Such a name can never carry shell syntax, but commands still quote it. Cloning is cheap,
/// since plans and skew reports for large clusters repeat names many times: names of up to 22
/// bytes (nearly all: `worker-00042`, `ip-10-0-1-10`) are kept inline, with no allocation to
/// reach, and longer ones share one allocation (a reference count).
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeName(Name);

/// A node name's bytes: inline when short, shared when long.
#[derive(Clone)]
enum Name {
    /// The first `len` bytes of `bytes` (ASCII, as every valid name is).
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    /// A longer name.
    Shared(Arc<str>),
}

/// The longest name kept inline (the most that keeps a `NodeName` at 24 bytes).
const INLINE_NAME: usize = 22;

impl NodeName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, NodeNameError> {
        let bad = |reason: &str| {
            Err(NodeNameError {
                name: name.to_string(),
                reason: reason.to_string(),
            })
        };
        if name.is_empty() {
            return bad("it is empty");
        }
        if name.len() > 253 {
            return bad("it is longer than 253 characters");
        }
        for label in name.split('.') {
            if label.is_empty() {
                return bad("it has an empty label between dots");
            }
            if label.len() > 63 {
                return bad("a label is longer than 63 characters");
            }
            if let Some(c) = label
                .chars()
                .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
            {
                return bad(&format!(
                    "{c:?} is not allowed (only lowercase letters, digits, '-' and '.')"
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return bad("a label starts or ends with '-'");
            }
        }
        if name.len() <= INLINE_NAME {
            let mut bytes = [0; INLINE_NAME];
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            Ok(NodeName(Name::Inline {
                len: name.len() as u8,
                bytes,
            }))
        } else {
            Ok(NodeName(Name::Shared(name.into())))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Always valid: the bytes are a whole `&str`, copied.
            Name::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Name::Shared(name) => name,
        }
    }

    /// The name's bytes, for comparing and hashing without re-checking UTF-8.
    fn bytes(&self) -> &[u8] {
        match &self.0 {
            Name::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Name::Shared(name) => name.as_bytes(),
        }
    }
}

impl PartialEq for NodeName {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}
impl Eq for NodeName {}
impl PartialOrd for NodeName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for NodeName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Byte order is `str` order.
        self.bytes().cmp(other.bytes())
    }
}
impl std::hash::Hash for NodeName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `str` hashes.
        state.write(self.bytes());
        state.write_u8(0xff);
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}
impl FromStr for NodeName {
    type Err = NodeNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeName::new(s)
    }
}
impl TryFrom<String> for NodeName {
    type Error = NodeNameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        NodeName::new(&s)
    }
}
impl From<NodeName> for String {
    fn from(n: NodeName) -> String {
        n.as_str().to_string()
    }
}
impl AsRef<str> for NodeName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}
impl JsonSchema for NodeName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NodeName".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "An RFC 1123 subdomain: lowercase letters, digits, '-' and '.'",
            "maxLength": 253,
            "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
        })
    }
}

/// A node name that is not an RFC 1123 subdomain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a valid node name: {reason}")]
pub struct NodeNameError {
    /// The name given.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
}

#[cfg(test)]
mod tests;
