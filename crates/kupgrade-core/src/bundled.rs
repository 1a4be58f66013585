//! The etcd and CoreDNS versions kubeadm deploys with each Kubernetes minor.
//!
//! Embedded from `data/kubeadm-bundled-versions.json` (kept equal to the project's reference
//! copy by CI). Values are those of each minor's `.0` kubeadm; later kubeadm patches have
//! backported newer etcd builds, so treat a newer etcd than listed as fine.
use std::sync::OnceLock;

use serde::Deserialize;

use crate::{KubeVersion, Minor};

const DATA: &str = include_str!("../data/kubeadm-bundled-versions.json");

/// What kubeadm ships for one Kubernetes minor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundled {
    /// The Kubernetes minor.
    pub minor: Minor,
    /// The etcd image tag (`3.5.9-0`), when known.
    pub etcd: Option<KubeVersion>,
    /// The CoreDNS image tag (`v1.10.1`), when known.
    pub coredns: Option<KubeVersion>,
}

#[derive(Deserialize)]
struct File {
    minors: Vec<Row>,
}
#[derive(Deserialize)]
struct Row {
    minor: Minor,
    etcd: Option<KubeVersion>,
    coredns: Option<KubeVersion>,
}

fn table() -> &'static [Bundled] {
    static TABLE: OnceLock<Vec<Bundled>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let file: File =
            serde_json::from_str(DATA).expect("embedded kubeadm-bundled-versions.json is valid");
        file.minors
            .into_iter()
            .map(|r| Bundled {
                minor: r.minor,
                etcd: r.etcd,
                coredns: r.coredns,
            })
            .collect()
    })
}

/// What kubeadm ships for `minor`, if the table knows it (1.23 onwards).
pub fn bundled(minor: Minor) -> Option<&'static Bundled> {
    table().iter().find(|b| b.minor == minor)
}

/// Every known minor's bundle, oldest first.
pub fn all() -> &'static [Bundled] {
    table()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_the_reference_rows() {
        let b = bundled(Minor::new(1, 28)).unwrap();
        assert_eq!(b.etcd.as_ref().unwrap().to_plain_string(), "3.5.9-0");
        assert_eq!(b.coredns.as_ref().unwrap().to_string(), "v1.10.1");
        assert_eq!(bundled(Minor::new(1, 36)).unwrap().coredns, None);
        assert!(bundled(Minor::new(1, 22)).is_none());
        assert!(all().windows(2).all(|w| w[0].minor < w[1].minor));
    }
}
