//! Facts gathered from each node: container runtime, cgroup file system, free disk, etcd,
//! certificates (in kubeadm's own output shape), the kubelet's API server, packages.
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::readiness::facts::DiskPurpose;
use crate::{KubeVersion, Minor, NodeName};

use super::Gathered;

/// The facts of one node; each is gathered on its own and may be missing on its own.
/// Control-plane facts (etcd, certificates, the kubelet's server) are only looked at on
/// control-plane nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct NodeFacts {
    /// The node.
    pub node: NodeName,
    /// `status.nodeInfo.containerRuntimeVersion` (`containerd://1.7.24`).
    #[serde(default)]
    pub runtime: Gathered<String>,
    /// The cgroup file system.
    #[serde(default)]
    pub cgroup: Gathered<CgroupFacts>,
    /// Free space where packages and backups go.
    #[serde(default)]
    pub disk: Gathered<Vec<DiskSpace>>,
    /// The node's etcd member (stacked etcd).
    #[serde(default)]
    pub etcd: Gathered<EtcdFacts>,
    /// `kubeadm certs check-expiration -o json` on the node.
    #[serde(default)]
    pub certificates: Gathered<CertificateExpirationInfo>,
    /// The `server:` of the kubelet's kubeconfig.
    #[serde(default)]
    pub kubelet_server: Gathered<KubeletServer>,
    /// Package versions its repositories offer, per minor.
    #[serde(default)]
    pub packages: Gathered<Vec<PackageAvailability>>,
    /// Its package sources (for legacy repositories).
    #[serde(default)]
    pub repositories: Gathered<Vec<RepositoryEntry>>,
}

impl NodeFacts {
    /// A node with nothing gathered.
    pub fn new(node: NodeName) -> Self {
        NodeFacts {
            node,
            runtime: Gathered::default(),
            cgroup: Gathered::default(),
            disk: Gathered::default(),
            etcd: Gathered::default(),
            certificates: Gathered::default(),
            kubelet_server: Gathered::default(),
            packages: Gathered::default(),
            repositories: Gathered::default(),
        }
    }
}

/// The cgroup file system of a node: `stat -fc %T /sys/fs/cgroup` prints `cgroup2fs` for
/// cgroup v2 and `tmpfs` for v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CgroupFacts {
    /// What `stat -fc %T /sys/fs/cgroup` printed.
    pub fs_type: String,
    /// The kubelet configuration's `failCgroupV1`, when it sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_cgroup_v1: Option<bool>,
}

impl CgroupFacts {
    /// True for cgroup v1 (anything but `cgroup2fs`).
    pub fn is_v1(&self) -> bool {
        self.fs_type.trim() != "cgroup2fs"
    }
}

/// Free space on the file system holding `path`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskSpace {
    /// The directory (`/var`, `/var/backups/kupgrade`).
    pub path: String,
    /// What it is for.
    pub purpose: DiskPurpose,
    /// Free bytes.
    pub free_bytes: u64,
}

/// A node's etcd member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdFacts {
    /// The version (the static pod's image tag, `3.5.21-0`).
    pub version: KubeVersion,
    /// Whether its health endpoint answered healthy, when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// The database's size in bytes, when known (a snapshot is about as large).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_size_bytes: Option<u64>,
}

/// `kubeadm certs check-expiration -o json` (`output.kubeadm.k8s.io/v1alpha3`,
/// `CertificateExpirationInfo`), as kubeadm prints it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateExpirationInfo {
    /// `output.kubeadm.k8s.io/v1alpha3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `CertificateExpirationInfo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The certificates and kubeconfig files.
    #[serde(default)]
    pub certificates: Vec<Certificate>,
    /// The certificate authorities.
    #[serde(default)]
    pub certificate_authorities: Vec<Certificate>,
}

/// One certificate in kubeadm's expiration report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    /// `apiserver`, `admin.conf`, `ca`.
    pub name: String,
    /// When it expires (RFC 3339).
    pub expiration_date: Timestamp,
    /// Seconds left when kubeadm looked.
    #[serde(default, rename = "residualTime")]
    pub residual_time_seconds: i64,
    /// Managed outside kubeadm (kubeadm will not renew it).
    #[serde(default)]
    pub externally_managed: bool,
    /// The CA that signed it (empty for a root CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_name: Option<String>,
    /// The file is missing.
    #[serde(default)]
    pub missing: bool,
}

/// The API server a node's kubelet talks to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeletServer {
    /// The `server:` of `/etc/kubernetes/kubelet.conf` (`https://lb.example:6443`).
    pub server: String,
    /// The node's own addresses (a server at one of them, or at localhost, is local).
    #[serde(default)]
    pub node_addresses: Vec<String>,
}

impl KubeletServer {
    /// The server's host, without scheme, port or brackets.
    pub fn host(&self) -> &str {
        let s = self.server.trim();
        let s = s.split_once("://").map_or(s, |(_, rest)| rest);
        let s = s.split(['/', '?']).next().unwrap_or(s);
        if let Some(rest) = s.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        match s.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
            _ => s,
        }
    }

    /// True when the kubelet talks to the API server on its own node.
    pub fn is_local(&self) -> bool {
        let host = self.host();
        matches!(host, "localhost" | "::1")
            || host.starts_with("127.")
            || self.node_addresses.iter().any(|a| a == host)
    }
}

/// The versions of one package that a node's repository for one minor offers
/// (`apt-cache madison kubelet`, `dnf list --showduplicates kubelet`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageAvailability {
    /// The repository's minor.
    pub minor: Minor,
    /// `kubelet`, `kubeadm` or `kubectl`.
    pub package: String,
    /// The versions offered (upstream versions, without the package revision).
    pub versions: Vec<KubeVersion>,
}

/// One package source line on a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryEntry {
    /// The file it is in (`/etc/apt/sources.list.d/kubernetes.list`).
    pub file: String,
    /// The line (`deb https://apt.kubernetes.io/ kubernetes-xenial main`).
    pub line: String,
}
