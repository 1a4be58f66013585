//! Property-testing support (feature `proptest`): strategies for kupgrade's types and
//! [`check_policy`], which runs the library's invariants against your own [`SkewPolicy`].
//!
//! # Property-testing a custom policy
//!
//! ```
//! use kupgrade_core::{Node, Minor, skew::{Context, LabelKeys, Severity, SkewPolicy, Violation}, testing};
//! use proptest::prelude::*;
//!
//! /// House rule: no kubelet older than 1.25.
//! struct KubeletFloor;
//! impl SkewPolicy for KubeletFloor {
//!     fn name(&self) -> &str { "kubelet-floor" }
//!     // Reads no labels: the planner may judge nodes that differ only in labels as one.
//!     fn label_keys(&self) -> LabelKeys { LabelKeys::none() }
//!     fn check_cluster(&self, _: &Context<'_>, _: &mut Vec<Violation>) {}
//!     fn check_node(&self, _: &Context<'_>, node: &Node, out: &mut Vec<Violation>) {
//!         let Some(v) = node.kubelet() else { return };
//!         if v.minor() < Minor::new(1, 25) {
//!             out.push(Violation::new("floor", Severity::Error, kupgrade_core::Component::Kubelet,
//!                 v.clone(), "1.25 or newer", format!("kubelet on node {:?} is {v}, too old", node.name.as_str()))
//!                 .on_node(node.name.clone()));
//!         }
//!     }
//! }
//!
//! testing::check_policy(&KubeletFloor); // order independence, locality, labels, ...
//! proptest!(|(state in testing::cluster_state_satisfying(KubeletFloor, 1..=30))| {
//!     prop_assert!(state.nodes.iter().all(|n| n.kubelet().unwrap().minor() >= Minor::new(1, 25)));
//! });
//! ```
//!
//! # Strategies
//!
//! Versions: [`stable_version`], [`version`] (pre-releases, vendor builds and build metadata
//! too), [`version_text`] (the spellings people write), [`minor`]. Clusters: [`node_name`],
//! [`cluster_state`] (valid inventories with realistic skew: 1 to 5 control-plane nodes,
//! sometimes mid-upgrade, workers lagging 0 to 4 minors, vendor builds now and then) and
//! [`cluster_state_satisfying`] (the same, repaired until a policy has no errors). Policies:
//! [`rule`] and [`rule_policy`] (declarative [`RulePolicy`]s).
//!
//! Strategies are deterministic functions of proptest's random source; nothing here reads the
//! clock or the environment (proptest's own runner may read `PROPTEST_*` variables).
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use proptest::collection::{SizeRange, vec};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRng, TestRunner};

use crate::skew::rules::{
    Apiserver, Check, MaxLag, MinorRangeRule, NodeSelector, NodeSkew, NotEndOfLife, Rule,
    RulePolicy, SameMinor,
};
use crate::skew::{Context, Severity, SkewPolicy, Summary, Violation};
use crate::{
    Addons, ClusterState, Component, EtcdTopology, KubeVersion, Minor, Node, NodeName, Role,
    ZONE_LABEL,
};

mod check;
mod clusters;
mod policies;
mod runs;
#[cfg(test)]
mod tests;
mod versions;

pub use check::{PolicyCheckError, check_policy, check_policy_with};
pub use clusters::{cluster_state, cluster_state_satisfying, node_name};
pub use policies::{rule, rule_policy};
pub use runs::{succeeded, upstream_errors, upstream_run};
pub use versions::{minor, stable_version, v, version, version_text};

/// The minors [`cluster_state`] puts its control plane at (kubeadm's bundled data covers them).
pub const CONTROL_PLANE_MINORS: std::ops::RangeInclusive<u64> = 22..=34;

/// The zones generated nodes are spread over.
const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
