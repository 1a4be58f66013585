//! Pods and PodDisruptionBudgets, as drains see them.
use serde::{Deserialize, Serialize};

use crate::NodeName;

/// The cluster's pods and PodDisruptionBudgets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workloads {
    /// Every PodDisruptionBudget with its status.
    #[serde(default)]
    pub budgets: Vec<Budget>,
    /// Every pod.
    #[serde(default)]
    pub pods: Vec<Pod>,
}

/// A PodDisruptionBudget and its status, as the disruption controller wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `status.disruptionsAllowed`: evictions allowed now.
    pub disruptions_allowed: u32,
    /// `status.currentHealthy`.
    pub current_healthy: u32,
    /// `status.desiredHealthy`.
    pub desired_healthy: u32,
    /// `status.expectedPods`.
    pub expected_pods: u32,
    /// `spec.unhealthyPodEvictionPolicy` (`IfHealthyBudget`, the default, or `AlwaysAllow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_pod_eviction_policy: Option<String>,
    /// The spec in words, for messages (`maxUnavailable: 0`, `minAvailable: 2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
}

impl Budget {
    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// True when unhealthy pods may always be evicted (`AlwaysAllow`).
    pub fn always_allows_unhealthy(&self) -> bool {
        self.unhealthy_pod_eviction_policy.as_deref() == Some("AlwaysAllow")
    }

    /// True when the budget can never allow a disruption, whatever happens: it wants every
    /// pod it expects healthy (`maxUnavailable: 0`, or `minAvailable` equal to the replicas).
    pub fn never_allows(&self) -> bool {
        self.desired_healthy >= self.expected_pods && self.expected_pods > 0
    }
}

/// The controller that owns a pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    /// `ReplicaSet`, `StatefulSet`, `DaemonSet`, `Job`, `Node` (a static pod's mirror).
    pub kind: String,
    /// Its name (for a ReplicaSet, the Deployment's when known).
    pub name: String,
    /// How many replicas it wants, when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
}

/// A volume of a pod that matters to a drain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum PodVolume {
    /// An `emptyDir` (its data is lost when the pod is evicted).
    EmptyDir {
        /// The volume's name.
        name: String,
    },
    /// A claim bound to a local PersistentVolume (tied to this node).
    LocalPersistentVolume {
        /// The claim.
        claim: String,
        /// The PersistentVolume.
        volume: String,
    },
}

/// A pod, where it runs and what a drain needs to know about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The node it runs on (none while pending).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeName>,
    /// Its controller; none for a bare pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// Ready (a budget counts it as healthy).
    #[serde(default = "yes")]
    pub healthy: bool,
    /// The names of the budgets (in its namespace) whose selector matches it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<String>,
    /// Its volumes that matter to a drain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<PodVolume>,
}

fn yes() -> bool {
    true
}

impl Pod {
    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// True for a DaemonSet's pod.
    pub fn is_daemonset(&self) -> bool {
        self.owner.as_ref().is_some_and(|o| o.kind == "DaemonSet")
    }

    /// True for a static pod's mirror (drains leave it alone).
    pub fn is_mirror(&self) -> bool {
        self.owner.as_ref().is_some_and(|o| o.kind == "Node")
    }
}
