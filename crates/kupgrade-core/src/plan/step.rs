//! One step of an upgrade plan: what it does, where, what must hold before it and what it
//! leaves behind.
//!
//! A [`Step`] is data an executor can act on without interpreting prose:
//!
//! - [`Step::nodes`]: the nodes it acts on. A step with several nodes may act on them in any
//!   order or all at once: the planner only batches changes that per-node rules judge, so every
//!   partial application is as valid as the whole.
//! - [`Step::action`]: a typed [`Action`]; [`Action::executor`] says which port carries it out
//!   (node commands, cluster operations, the node provider, a check, or the operator). What
//!   an action means (its executor, facts, change, deadline) is answered in one place,
//!   `action.rs`; this file holds the step around it.
//! - [`Step::commands`]: for node actions, the commands per operating-system family
//!   ([`OsCommands`]), already validated and quoted.
//! - [`Step::pre`] and [`Step::post`]: [`Fact`]s to re-check on the live cluster before the step
//!   and after it (or after a crash, to decide whether it already happened).
//! - [`Step::idempotent`], [`Step::point_of_no_return`], [`Step::duration_seconds`] and
//!   [`Step::reason`], the rule that put the step where it stands.
use std::fmt;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ports::CommandSpec;
use crate::{Component, KubeVersion, Minor, NodeName, OsFamily};

use super::action::Action;

/// A step's identifier, stable for the same input and, for steps that change the cluster,
/// the same when the plan is made again from any intermediate state (so journals survive a
/// re-plan). Shaped `<goal version>/<subject>/<verb>`, for example
/// `v1.29.15/cp-1/kubeadm-upgrade-apply` or `v1.29.15/worker-1+4/drain` (a batch of five).
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct StepId(pub String);

impl StepId {
    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A shared, immutable list of node names. The steps of one batch share one allocation, which
/// keeps plans for tens of thousands of nodes small. Serialized as a list of names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NodeList(Arc<[NodeName]>);

impl NodeList {
    /// A list of these names.
    pub fn new(names: Vec<NodeName>) -> Self {
        NodeList(names.into())
    }
    /// No nodes (a cluster-wide step).
    pub fn empty() -> Self {
        NodeList::default()
    }
    /// The names.
    pub fn as_slice(&self) -> &[NodeName] {
        &self.0
    }
    /// How many nodes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The names, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, NodeName> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a NodeList {
    type Item = &'a NodeName;
    type IntoIter = std::slice::Iter<'a, NodeName>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Serialize for NodeList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
impl<'de> Deserialize<'de> for NodeList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<NodeName>::deserialize(d).map(NodeList::new)
    }
}
impl JsonSchema for NodeList {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NodeList".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <Vec<NodeName>>::json_schema(generator)
    }
}

/// Where a step stands in the upgrade.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Checks and backups before anything changes.
    Preflight,
    /// kubeadm moves the control-plane components, node by node.
    ControlPlane,
    /// The kubelets of control-plane nodes, one node at a time.
    ControlPlaneKubelets,
    /// Worker nodes, in batches.
    Workers,
    /// The final check.
    Verify,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Phase::Preflight => "pre-flight",
            Phase::ControlPlane => "control plane",
            Phase::ControlPlaneKubelets => "control-plane kubelets",
            Phase::Workers => "workers",
            Phase::Verify => "verify",
        })
    }
}

/// A Kubernetes package on a node.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Package {
    /// `kubeadm`.
    Kubeadm,
    /// `kubelet`.
    Kubelet,
    /// `kubectl`.
    Kubectl,
}

impl Package {
    /// The package (and binary) name.
    pub fn name(self) -> &'static str {
        match self {
            Package::Kubeadm => "kubeadm",
            Package::Kubelet => "kubelet",
            Package::Kubectl => "kubectl",
        }
    }
    /// The component the package installs.
    pub fn component(self) -> Component {
        match self {
            Package::Kubeadm => Component::Kubeadm,
            Package::Kubelet => Component::Kubelet,
            Package::Kubectl => Component::Kubectl,
        }
    }
}

impl fmt::Display for Package {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// The add-on versions a kubeadm step deploys (absent: unchanged).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct AddonVersions {
    /// The kube-proxy DaemonSet's new version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_proxy: Option<KubeVersion>,
    /// The CoreDNS Deployment's new version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coredns: Option<KubeVersion>,
}

impl AddonVersions {
    /// True when nothing moves.
    pub fn is_empty(&self) -> bool {
        self.kube_proxy.is_none() && self.coredns.is_none()
    }
}

/// A check the pre-flight step makes (the planner made it on the model; an executor makes it
/// again on the live cluster).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "check",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum PreflightCheck {
    /// Every node reports Ready.
    NodesReady,
    /// The skew policy holds now.
    PolicyHolds {
        /// The policy's name.
        policy: String,
    },
    /// The target is a supported release on the plan's date.
    TargetSupported {
        /// The target.
        version: KubeVersion,
        /// Its support status on the plan's date, in words.
        status: String,
    },
    /// kubeadm's own version policy accepts every hop (nothing mandatory, nothing that would
    /// need `--force`).
    KubeadmVerdict {
        /// The hops' versions, in order.
        versions: Vec<KubeVersion>,
    },
    /// The live cluster is where the plan starts: each node's kubelet is the one the plan's
    /// node list gives it, and each control-plane component the version listed here. A run
    /// halts before anything changes when they differ (an earlier run, halted, or a hand
    /// moved the cluster after the inventory was read): repeating the plan's first steps
    /// would redo its backups and snapshots over the ones made before.
    StartMatches {
        /// The control-plane nodes' components at the start.
        control_plane: Vec<StartVersion>,
    },
}

/// A component's version on a node where a plan starts ([`PreflightCheck::StartMatches`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartVersion {
    /// The node.
    pub node: NodeName,
    /// The component.
    pub component: Component,
    /// Its version at the start.
    pub version: KubeVersion,
}

impl fmt::Display for PreflightCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PreflightCheck::NodesReady => write!(f, "every node is Ready"),
            PreflightCheck::PolicyHolds { policy } => {
                write!(f, "the {policy} skew policy holds now")
            }
            PreflightCheck::TargetSupported { version, status } => {
                write!(f, "target {version} is {status}")
            }
            PreflightCheck::KubeadmVerdict { versions } => {
                let v: Vec<String> = versions.iter().map(ToString::to_string).collect();
                write!(f, "kubeadm's version policy accepts {}", v.join(", "))
            }
            PreflightCheck::StartMatches { control_plane } => {
                let mut nodes: Vec<&str> = control_plane.iter().map(|s| s.node.as_str()).collect();
                nodes.dedup();
                write!(
                    f,
                    "the live cluster is where the plan starts: every node's kubelet"
                )?;
                if !nodes.is_empty() {
                    write!(f, ", the control plane of {}", nodes.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

/// A fact about the cluster an executor can check. Node facts hold for every node of the step;
/// the others are about the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "fact",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum Fact {
    /// `component` on each node runs the same release as `version` (vendor suffixes ignored).
    /// For the kubelet this is the installed package until the kubelet restarts, and the
    /// reported version after.
    Version {
        /// The component.
        component: Component,
        /// The release.
        version: KubeVersion,
    },
    /// `component` on each node is older than `version` (not yet upgraded).
    Below {
        /// The component.
        component: Component,
        /// The release it has not reached.
        version: KubeVersion,
    },
    /// Each node is cordoned.
    Cordoned,
    /// Each node is schedulable.
    Schedulable,
    /// Each node reports Ready.
    Ready,
    /// Each node exists.
    Present,
    /// No node of the step exists.
    Absent,
    /// The cluster add-on `component` runs `version`.
    Addon {
        /// kube-proxy or CoreDNS.
        component: Component,
        /// The release.
        version: KubeVersion,
    },
    /// Some API server already runs `version` (`kubeadm upgrade apply` has happened).
    ControlPlaneStarted {
        /// The hop's version.
        version: KubeVersion,
    },
    /// Every API server runs `version`.
    ControlPlaneAt {
        /// The version.
        version: KubeVersion,
    },
    /// Every API server runs `minor` or a newer minor (so a kubelet of `minor` is newer than
    /// none of them, and an API server moving to the minor after it stays within one minor of
    /// the others).
    ControlPlaneAtLeast {
        /// The oldest minor allowed.
        minor: Minor,
    },
    /// The operator's kubectl is at least `version`.
    KubectlClient {
        /// The version.
        version: KubeVersion,
    },
    /// The skew policy holds.
    PolicyHolds,
    /// Every kube-proxy pod runs one version, the DaemonSet's: no node reports a pod of
    /// another release (a rollout under way, or one that never happened).
    KubeProxyRolledOut,
}

impl fmt::Display for Fact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fact::Version { component, version } => write!(f, "{component} is {version}"),
            Fact::Below { component, version } => write!(f, "{component} is older than {version}"),
            Fact::Cordoned => f.write_str("cordoned"),
            Fact::Schedulable => f.write_str("schedulable"),
            Fact::Ready => f.write_str("Ready"),
            Fact::Present => f.write_str("present"),
            Fact::Absent => f.write_str("absent"),
            Fact::Addon { component, version } => write!(f, "add-on {component} is {version}"),
            Fact::ControlPlaneStarted { version } => {
                write!(f, "some kube-apiserver runs {version}")
            }
            Fact::ControlPlaneAt { version } => write!(f, "every kube-apiserver runs {version}"),
            Fact::ControlPlaneAtLeast { minor } => {
                write!(f, "every kube-apiserver runs {minor} or newer")
            }
            Fact::KubectlClient { version } => write!(f, "your kubectl is at least {version}"),
            Fact::PolicyHolds => f.write_str("the skew policy holds"),
            Fact::KubeProxyRolledOut => f.write_str("every kube-proxy pod runs one version"),
        }
    }
}

/// The commands of a node step for one operating-system family.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OsCommands {
    /// The family these commands are for.
    pub os: OsFamily,
    /// The commands, in order; each must succeed.
    #[schemars(with = "Vec<super::schema::CommandSpecSchema>")]
    pub commands: Vec<CommandSpec>,
    /// When kupgrade cannot render the commands (an unknown OS, a release with no package
    /// repository), what the operator must do by hand instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual: Option<String>,
}

/// One step of an [`UpgradePlan`](super::UpgradePlan).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Stable identifier.
    pub id: StepId,
    /// The hop it belongs to (an index into the plan's hops), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop: Option<usize>,
    /// Where it stands.
    pub phase: Phase,
    /// The nodes it acts on (none for cluster-wide steps).
    #[serde(default, skip_serializing_if = "NodeList::is_empty")]
    pub nodes: NodeList,
    /// What it does.
    pub action: Action,
    /// For node actions: the commands per OS family present among the nodes, run on each
    /// node in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<OsCommands>,
    /// Steps that must have finished first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<StepId>,
    /// Safe to run again after a failure or a crash.
    pub idempotent: bool,
    /// After this step, going back is not supported (kubeadm cannot downgrade).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub point_of_no_return: bool,
    /// What must hold before it starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre: Vec<Fact>,
    /// What holds once it has finished (check it after a crash before running it again).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post: Vec<Fact>,
    /// Estimated wall time, in seconds (the nodes of a step run at the same time).
    pub duration_seconds: u64,
    /// Why the step stands where it stands.
    pub reason: String,
}

impl Step {
    /// The commands for a node of family `os` (empty for non-node steps).
    pub fn commands_for(&self, os: OsFamily) -> &[CommandSpec] {
        self.commands
            .iter()
            .find(|c| c.os == os)
            .map_or(&[], |c| c.commands.as_slice())
    }

    /// True when the step changes the modelled cluster state (versions, schedulability,
    /// membership, add-ons, the operators' kubectl: see
    /// [`Change::is_modelled`](super::Change::is_modelled)); checks, backups, repository
    /// switches, restarts and waits do not.
    pub fn changes_state(&self) -> bool {
        self.action.change().is_modelled()
    }
}
