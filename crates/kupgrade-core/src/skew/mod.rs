//! Version skew policies: which mixes of component versions a cluster may run.
//!
//! A [`SkewPolicy`] looks at a [`ClusterState`] and returns every [`Violation`]. Policies are
//! split into a cluster-wide part and a per-node part so that the planner can re-check only
//! what a step changed: a step that upgrades one worker's kubelet re-runs
//! [`SkewPolicy::check_node`] for that node alone, and only steps that move the control plane
//! re-run everything.
//!
//! - [`UpstreamPolicy`]: the Kubernetes version skew policy, with its history.
//! - [`crate::skew::rules`]: declarative rules from YAML or JSON (`RulePolicy`).
//! - [`AllOf`]: several policies that must all pass.
use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
pub use smol_str::SmolStr;

use crate::{ClusterState, KubeVersion, Minor, Node};

mod all_of;
pub mod rules;
mod upstream;

pub use all_of::AllOf;
pub use upstream::{ControlPlaneEndpoint, UpstreamPolicy};

/// How serious a violation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Advice: the cluster works, but is not what kubeadm would set up.
    Warning,
    /// The state is outside the policy; the planner never produces it.
    Error,
}

/// A range of minors, both ends included; an end that is absent is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MinorRange {
    /// The oldest allowed minor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Minor>,
    /// The newest allowed minor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Minor>,
}

impl MinorRange {
    /// `min..=max`.
    pub fn new(min: Minor, max: Minor) -> Self {
        MinorRange {
            min: Some(min),
            max: Some(max),
        }
    }
    /// Whether `m` is inside the range.
    pub fn contains(&self, m: Minor) -> bool {
        self.min.is_none_or(|lo| m >= lo) && self.max.is_none_or(|hi| m <= hi)
    }
}

impl fmt::Display for MinorRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.min, self.max) {
            (Some(a), Some(b)) if a == b => write!(f, "{a}"),
            (Some(a), Some(b)) if a > b => write!(f, "none"),
            (Some(a), Some(b)) => write!(f, "{a} to {b}"),
            (Some(a), None) => write!(f, "{a} or newer"),
            (None, Some(b)) => write!(f, "{b} or older"),
            (None, None) => write!(f, "any"),
        }
    }
}

mod violation;
pub use violation::Violation;

/// Facts about the whole cluster that per-node rules compare against, computed once per state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Indices (in `state.nodes`) of the control-plane nodes.
    pub control_plane: Vec<usize>,
    /// The oldest kube-apiserver.
    pub apiserver_min: Option<KubeVersion>,
    /// The newest kube-apiserver.
    pub apiserver_max: Option<KubeVersion>,
}

impl Summary {
    /// Computes the summary of `state` (one pass over the nodes).
    pub fn of(state: &ClusterState) -> Self {
        Summary::of_nodes(&state.nodes, 0)
    }

    /// The summary of `nodes`, the nodes from position `offset` on.
    pub(crate) fn of_nodes(nodes: &[Node], offset: usize) -> Self {
        let mut s = Summary::default();
        for (i, n) in nodes.iter().enumerate() {
            if n.is_control_plane() {
                s.control_plane.push(offset + i);
                if let Some(v) = &n.versions.kube_apiserver {
                    if s.apiserver_min.as_ref().is_none_or(|m| v < m) {
                        s.apiserver_min = Some(v.clone());
                    }
                    if s.apiserver_max.as_ref().is_none_or(|m| v > m) {
                        s.apiserver_max = Some(v.clone());
                    }
                }
            }
        }
        s
    }

    /// The summary of two parts of a node list, `self` first.
    pub(crate) fn merge(mut self, other: Summary) -> Self {
        self.control_plane.extend(other.control_plane);
        self.apiserver_min = match (self.apiserver_min, other.apiserver_min) {
            (Some(a), Some(b)) => Some(if b < a { b } else { a }),
            (a, b) => a.or(b),
        };
        self.apiserver_max = match (self.apiserver_max, other.apiserver_max) {
            (Some(a), Some(b)) => Some(if b > a { b } else { a }),
            (a, b) => a.or(b),
        };
        self
    }

    /// The control-plane nodes of `state`.
    pub fn control_plane_nodes<'a>(
        &'a self,
        state: &'a ClusterState,
    ) -> impl Iterator<Item = &'a Node> + 'a {
        self.control_plane.iter().map(|&i| &state.nodes[i])
    }

    /// The minor of the oldest API server.
    pub fn min_minor(&self) -> Option<Minor> {
        self.apiserver_min.as_ref().map(KubeVersion::minor)
    }

    /// The minor of the newest API server.
    pub fn max_minor(&self) -> Option<Minor> {
        self.apiserver_max.as_ref().map(KubeVersion::minor)
    }
}

/// What a policy sees: the state and its summary.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The cluster.
    pub state: &'a ClusterState,
    /// Its summary.
    pub summary: &'a Summary,
}

/// The node labels a policy reads (see [`SkewPolicy::label_keys`]).
///
/// ```
/// use kupgrade_core::skew::LabelKeys;
/// let zone = LabelKeys::only(["topology.kubernetes.io/zone"]);
/// assert!(zone.contains("topology.kubernetes.io/zone"));
/// assert!(!zone.contains("kubernetes.io/hostname"));
/// assert_eq!(zone.clone().union(LabelKeys::All), LabelKeys::All);
/// assert_eq!(LabelKeys::none().union(zone.clone()), zone);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelKeys {
    /// Any label may matter.
    All,
    /// Only the labels with these keys.
    Only(BTreeSet<String>),
}

impl LabelKeys {
    /// No label matters.
    pub fn none() -> Self {
        LabelKeys::Only(BTreeSet::new())
    }

    /// Only these keys matter.
    pub fn only<S: Into<String>>(keys: impl IntoIterator<Item = S>) -> Self {
        LabelKeys::Only(keys.into_iter().map(Into::into).collect())
    }

    /// Whether label `key` matters.
    pub fn contains(&self, key: &str) -> bool {
        match self {
            LabelKeys::All => true,
            LabelKeys::Only(keys) => keys.contains(key),
        }
    }

    /// The labels either reads.
    pub fn union(self, other: LabelKeys) -> Self {
        match (self, other) {
            (LabelKeys::Only(mut a), LabelKeys::Only(b)) => {
                a.extend(b);
                LabelKeys::Only(a)
            }
            _ => LabelKeys::All,
        }
    }
}

/// A version skew policy.
///
/// Implement [`check_cluster`](SkewPolicy::check_cluster) for rules about the cluster as a whole
/// (API servers against each other, add-ons, etcd) and [`check_node`](SkewPolicy::check_node)
/// for rules about one node given the cluster's [`Summary`]. A per-node rule must depend only
/// on that node and the summary: the planner relies on it to re-check only changed nodes.
/// Results must not depend on the order of `state.nodes`.
///
/// # The contract the planner relies on
///
/// The planner (`crate::plan`) re-checks only what each simulated step changed, so a policy
/// must keep to these dependencies:
///
/// - `check_cluster` reads only the control-plane nodes (through [`Summary::control_plane`]),
///   the add-ons, etcd and the cluster's kubectl (`state.addons`, `state.etcd`,
///   `state.kubectl`), never a worker node.
/// - `check_node` reads only its `node`, the summary and the add-ons (`state.addons`), never
///   another node, etcd or the cluster's kubectl. Its `node` need not be in `state.nodes`
///   (the planner probes what a node would face after a control-plane move).
/// - Which rules a node breaks depends only on its versions, roles, labels and OS: not on its
///   name (messages name it, verdicts do not), whether it is Ready or cordoned, or how to
///   reach it. Nodes alike in those get the same verdict, so the planner checks a class of
///   equal nodes once.
/// - Of a node's labels, only those [`label_keys`](SkewPolicy::label_keys) names count (all of
///   them unless the policy says otherwise): nodes that differ only in other labels (every
///   node has its own `kubernetes.io/hostname`) are alike.
///
/// After a step that changes versions on workers the planner re-runs `check_node` for them
/// (one per class of equal nodes); a step that only cordons or uncordons is not re-checked;
/// after one that changes a control-plane node it also re-runs `check_cluster`, and
/// `check_node` for every class of nodes when the summary changed; after one that changes the
/// add-ons it re-runs everything, and after one that changes the cluster's kubectl,
/// `check_cluster`.
pub trait SkewPolicy: Send + Sync {
    /// A short name for reports (`upstream`, `strict-kubelet`).
    fn name(&self) -> &str;

    /// Appends the violations of cluster-wide rules.
    fn check_cluster(&self, cx: &Context<'_>, out: &mut Vec<Violation>);

    /// The node labels whose values the verdicts depend on. The default, [`LabelKeys::All`],
    /// is always right; naming the keys (or none) lets the planner judge nodes that differ
    /// only in other labels as one.
    fn label_keys(&self) -> LabelKeys {
        LabelKeys::All
    }

    /// Appends the violations of per-node rules for `node`.
    fn check_node(&self, cx: &Context<'_>, node: &Node, out: &mut Vec<Violation>);

    /// Every violation in `state`, cluster-wide ones first, then node by node.
    fn evaluate(&self, state: &ClusterState) -> Vec<Violation> {
        let summary = Summary::of(state);
        let cx = Context {
            state,
            summary: &summary,
        };
        let mut out = Vec::new();
        self.check_cluster(&cx, &mut out);
        for node in &state.nodes {
            self.check_node(&cx, node, &mut out);
        }
        out
    }

    /// The errors (not warnings) in `state`.
    fn errors(&self, state: &ClusterState) -> Vec<Violation> {
        let mut v = self.evaluate(state);
        v.retain(|v| v.severity == Severity::Error);
        v
    }
}

/// Implements [`SkewPolicy`] for a pointer to a policy by forwarding every method, the
/// provided ones included: a wrapper that fell back to a default would skip the policy's own
/// `evaluate`/`errors` (the upstream policy's parallel fast path). `missing_trait_methods`
/// makes a method added to the trait and not forwarded here a lint error.
macro_rules! forward_skew_policy {
    ($($pointer:ty),+ $(,)?) => {$(
        #[deny(clippy::missing_trait_methods)]
        impl<P: SkewPolicy + ?Sized> SkewPolicy for $pointer {
            fn name(&self) -> &str {
                (**self).name()
            }
            fn check_cluster(&self, cx: &Context<'_>, out: &mut Vec<Violation>) {
                (**self).check_cluster(cx, out)
            }
            fn label_keys(&self) -> LabelKeys {
                (**self).label_keys()
            }
            fn check_node(&self, cx: &Context<'_>, node: &Node, out: &mut Vec<Violation>) {
                (**self).check_node(cx, node, out)
            }
            fn evaluate(&self, state: &ClusterState) -> Vec<Violation> {
                (**self).evaluate(state)
            }
            fn errors(&self, state: &ClusterState) -> Vec<Violation> {
                (**self).errors(state)
            }
        }
    )+};
}

forward_skew_policy!(&P, Box<P>, std::sync::Arc<P>);

/// Renders violations as a report, errors first, one per line, or `no violations`.
pub fn report(violations: &[Violation]) -> String {
    if violations.is_empty() {
        return "no violations\n".to_string();
    }
    let mut sorted: Vec<&Violation> = violations.iter().collect();
    sorted.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.rule.cmp(&b.rule))
            .then_with(|| a.node.cmp(&b.node))
            .then_with(|| a.component.cmp(&b.component))
    });
    let mut s = String::new();
    for v in sorted {
        s.push_str(&v.to_string());
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::Component;

    /// A policy whose `evaluate` and `errors` answer what the trait's defaults (built on its
    /// silent `check_cluster` and `check_node`) never would.
    struct Overrides;

    impl Overrides {
        fn marked(rule: &str, severity: Severity) -> Vec<Violation> {
            let v = KubeVersion::new(1, 30, 0);
            vec![Violation::new(
                rule,
                severity,
                Component::Kubelet,
                v,
                "any",
                rule,
            )]
        }
    }

    impl SkewPolicy for Overrides {
        fn name(&self) -> &str {
            "overrides"
        }
        fn check_cluster(&self, _: &Context<'_>, _: &mut Vec<Violation>) {}
        fn check_node(&self, _: &Context<'_>, _: &Node, _: &mut Vec<Violation>) {}
        fn evaluate(&self, _: &ClusterState) -> Vec<Violation> {
            Overrides::marked("own-evaluate", Severity::Warning)
        }
        fn errors(&self, _: &ClusterState) -> Vec<Violation> {
            Overrides::marked("own-errors", Severity::Error)
        }
    }

    fn rules(v: &[Violation]) -> Vec<&str> {
        v.iter().map(|v| v.rule.as_str()).collect()
    }

    /// Every way of holding a policy answers with the policy's own `evaluate` and `errors`.
    #[test]
    fn wrappers_keep_the_policys_own_evaluate_and_errors() {
        let cp = Node::control_plane("cp", KubeVersion::new(1, 30, 1), None).unwrap();
        let worker = Node::worker("w", KubeVersion::new(1, 27, 1)).unwrap();
        let state = ClusterState::new(vec![cp, worker]);
        let arc: Arc<dyn SkewPolicy> = Arc::new(Overrides);
        let boxed: Box<dyn SkewPolicy> = Box::new(Overrides);
        let wrapped: [(&str, Box<dyn SkewPolicy>); 7] = [
            ("&P", Box::new(&Overrides)),
            ("Box<P>", Box::new(Box::new(Overrides))),
            ("Box<dyn>", Box::new(boxed)),
            ("Arc<P>", Box::new(Arc::new(Overrides))),
            ("Arc<dyn>", Box::new(arc.clone())),
            ("AllOf", Box::new(AllOf::new(vec![Box::new(arc.clone())]))),
            (
                "AllOf with upstream",
                Box::new(AllOf::new(vec![
                    Box::new(UpstreamPolicy::new()),
                    Box::new(arc),
                ])),
            ),
        ];
        for (how, policy) in &wrapped {
            assert!(
                rules(&policy.evaluate(&state)).contains(&"own-evaluate"),
                "{how}: evaluate fell back to the default"
            );
            assert!(
                rules(&policy.errors(&state)).contains(&"own-errors"),
                "{how}: errors fell back to the default"
            );
        }
    }
}
