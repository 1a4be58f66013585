//! # kupgrade-core
//!
//! The pure heart of kupgrade: Kubernetes versions, components, the release calendar, cluster
//! state, version skew policies and kubeadm's upgrade rules. It does no I/O, starts no runtime
//! and never reads the clock: dates are arguments, data is embedded, so every answer is
//! reproducible and testable by value.
//!
//! ```
//! use kupgrade_core::{inventory, skew::{SkewPolicy, UpstreamPolicy}};
//!
//! let text = r#"
//! nodes:
//!   - name: cp-1
//!     roles: [control-plane]
//!     versions: { kubelet: v1.28.9, kube-apiserver: v1.28.9 }
//!   - name: w-1
//!     versions: { kubelet: v1.24.17 }
//! "#;
//! let cluster = inventory::parse(text, "inventory.yaml")?;
//! let violations = UpstreamPolicy::new().errors(&cluster);
//! assert_eq!(violations.len(), 1);
//! assert_eq!(violations[0].rule, "upstream/kubelet");
//! assert_eq!(violations[0].node.as_ref().unwrap().as_str(), "w-1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules, one concept each: [`version`] (versions and minors), [`component`], [`cluster`]
//! (state), [`inventory`] (the file format), [`diagnostics`] (problems in input files, said one
//! way), [`skew`] (policies), [`bundled`] (kubeadm's etcd
//! and CoreDNS per minor), [`lifecycle`] (the release calendar and support status), [`kubeadm`]
//! (kubeadm's own upgrade verdicts), [`plan`] (the upgrade planner, its steps and renderers),
//! [`ports`] (the traits adapters implement), [`capture`] (a command's bounded output and its
//! lines, for runner backends), [`run`] (carrying a plan out: the execution state machine, its journal records and events),
//! [`ssh_target`] (what an SSH target may hold), [`escape`] (outside text made safe for a
//! terminal, a report or a page),
//! [`readiness`] (the catalogue of checks that says which hop and batch of a plan will fail, and why).
//!
//! Property-testing your own policy takes about fifteen lines: with the `proptest` feature,
//! the `testing` module offers strategies (versions, cluster states that satisfy a policy,
//! declarative policies) and `check_policy`, which runs the library's invariants against any
//! [`skew::SkewPolicy`]; its documentation opens with that example.
#![cfg_attr(feature = "proptest", doc = "See [`testing`].")]

pub mod bundled;
pub mod capture;
pub mod cluster;
pub mod component;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod diagnostics;
pub mod escape;
pub mod gate;
pub mod hook;
pub mod inventory;
pub mod kubeadm;
pub mod lifecycle;
pub mod plan;
pub mod ports;
pub mod readiness;
pub mod run;
mod schema;
pub mod skew;
pub mod ssh_target;
#[cfg(feature = "proptest")]
pub mod testing;
pub mod version;

pub use cluster::{
    Addons, ClusterState, EtcdTopology, Labels, Node, NodeName, NodeNameError, NodeVersions, Nodes,
    Os, OsFamily, Role, Roles, SshTarget, ZONE_LABEL,
};
pub use component::{Component, Placement, VersionLine};
pub use lifecycle::{ReleaseCalendar, SupportStatus};
pub use version::{KubeVersion, Minor, PreRelease, ReleasePhase, VersionError};
