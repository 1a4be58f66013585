//! The components of a Kubernetes cluster, where each runs and which version line it follows.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A versioned component of a kubeadm-style cluster.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    /// The API server; the newest component of the cluster.
    KubeApiserver,
    /// The controller manager (static pod on control-plane nodes).
    KubeControllerManager,
    /// The scheduler (static pod on control-plane nodes).
    KubeScheduler,
    /// The cloud controller manager (control plane, or run by the provider).
    CloudControllerManager,
    /// The node agent, on every node.
    Kubelet,
    /// The service proxy, a DaemonSet on every node.
    KubeProxy,
    /// The command-line client.
    Kubectl,
    /// The cluster bootstrap and upgrade tool, on every node.
    Kubeadm,
    /// The key-value store; its own version line, bundled per minor by kubeadm.
    Etcd,
    /// The cluster DNS add-on; its own version line, bundled per minor by kubeadm.
    #[serde(rename = "coredns")]
    CoreDns,
}

/// Where a component runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// A static pod on each control-plane node.
    ControlPlane,
    /// On every node (a package, or a DaemonSet).
    EveryNode,
    /// A cluster add-on managed through the API (a Deployment).
    AddOn,
    /// Outside the cluster's nodes (a client, or an external service).
    External,
}

/// Which version numbers a component carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionLine {
    /// Released with Kubernetes and numbered like it.
    Kubernetes,
    /// Its own project and numbers (etcd, CoreDNS).
    Own,
}

impl Component {
    /// Every component, in a stable order.
    pub const ALL: [Component; 10] = [
        Component::KubeApiserver,
        Component::KubeControllerManager,
        Component::KubeScheduler,
        Component::CloudControllerManager,
        Component::Kubelet,
        Component::KubeProxy,
        Component::Kubectl,
        Component::Kubeadm,
        Component::Etcd,
        Component::CoreDns,
    ];

    /// The control-plane static-pod components that `kubeadm upgrade` moves.
    pub const CONTROL_PLANE: [Component; 4] = [
        Component::KubeApiserver,
        Component::KubeControllerManager,
        Component::KubeScheduler,
        Component::CloudControllerManager,
    ];

    /// The component's usual name (`kube-apiserver`, `coredns`).
    pub fn name(self) -> &'static str {
        match self {
            Component::KubeApiserver => "kube-apiserver",
            Component::KubeControllerManager => "kube-controller-manager",
            Component::KubeScheduler => "kube-scheduler",
            Component::CloudControllerManager => "cloud-controller-manager",
            Component::Kubelet => "kubelet",
            Component::KubeProxy => "kube-proxy",
            Component::Kubectl => "kubectl",
            Component::Kubeadm => "kubeadm",
            Component::Etcd => "etcd",
            Component::CoreDns => "coredns",
        }
    }

    /// Where the component runs in a kubeadm cluster. Etcd is a control-plane static pod when
    /// stacked (see [`crate::EtcdTopology`] for the external case).
    pub fn placement(self) -> Placement {
        match self {
            Component::KubeApiserver
            | Component::KubeControllerManager
            | Component::KubeScheduler
            | Component::CloudControllerManager
            | Component::Etcd => Placement::ControlPlane,
            Component::Kubelet | Component::KubeProxy | Component::Kubeadm => Placement::EveryNode,
            Component::CoreDns => Placement::AddOn,
            Component::Kubectl => Placement::External,
        }
    }

    /// Whether the component is numbered like Kubernetes or has its own versions.
    pub fn version_line(self) -> VersionLine {
        match self {
            Component::Etcd | Component::CoreDns => VersionLine::Own,
            _ => VersionLine::Kubernetes,
        }
    }

    /// True for the components only control-plane nodes run.
    pub fn is_control_plane(self) -> bool {
        Component::CONTROL_PLANE.contains(&self)
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// The name given is not a component.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown component {0:?} (expected one of kube-apiserver, kube-controller-manager, kube-scheduler, cloud-controller-manager, kubelet, kube-proxy, kubectl, kubeadm, etcd, coredns)"
)]
pub struct UnknownComponent(pub String);

impl FromStr for Component {
    type Err = UnknownComponent;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Component::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownComponent(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_the_kubernetes_line_first() {
        let line = Component::ALL
            .iter()
            .take_while(|c| c.version_line() == VersionLine::Kubernetes)
            .count();
        assert_eq!(line, 8, "the skew rules take the first 8 of ALL");
        assert!(
            Component::ALL[line..]
                .iter()
                .all(|c| c.version_line() == VersionLine::Own)
        );
    }

    #[test]
    fn names_round_trip_and_serde_agrees() {
        for c in Component::ALL {
            assert_eq!(c.name().parse::<Component>().unwrap(), c);
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.name())
            );
        }
        assert!("kube-api".parse::<Component>().is_err());
    }

    #[test]
    fn own_version_lines() {
        assert_eq!(Component::Etcd.version_line(), VersionLine::Own);
        assert_eq!(Component::CoreDns.version_line(), VersionLine::Own);
        assert_eq!(Component::Kubelet.version_line(), VersionLine::Kubernetes);
        assert_eq!(Component::CoreDns.placement(), Placement::AddOn);
        assert_eq!(Component::KubeProxy.placement(), Placement::EveryNode);
    }
}
