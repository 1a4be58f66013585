//! Checking a plan's [`Fact`]s against a live [`ClusterState`].
//!
//! A fact holds, fails (with what was found instead), or cannot be told from the cluster
//! state: the API does not show the `kubeadm` binary installed on a node, nor the operator's
//! own kubectl. Unknown is neither: a precondition that cannot be checked does not stop the
//! run (the step's own commands check it, `kubeadm version` for instance), and a
//! postcondition that cannot be checked is no proof that a step happened.
use foldhash::HashSet;

use crate::plan::Fact;
use crate::skew::{Severity, SkewPolicy, Violation};
use crate::{ClusterState, Component, KubeVersion, Node, NodeName};

use super::expect::Layout;
use super::record::ViolationKey;

/// What checking one fact found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It holds.
    Holds,
    /// It does not; what was found instead.
    Fails(String),
    /// The cluster state cannot tell; why.
    Unknown(String),
}

/// A cluster state indexed by node name, with the policy's errors computed once.
pub(crate) struct View<'a> {
    pub state: &'a ClusterState,
    layout: &'a Layout,
    /// Set by the run's global check: the presence generation verified against this state.
    pub presence_checked: Option<u64>,
    policy: &'a dyn SkewPolicy,
    tolerated: &'a HashSet<ViolationKey>,
    /// The rules of the transient windows the run is inside: their violations are accepted.
    accepted: Vec<&'a str>,
    errors: Option<Vec<Violation>>,
    control_plane: Option<Vec<&'a Node>>,
}

impl<'a> View<'a> {
    pub fn new(
        state: &'a ClusterState,
        policy: &'a dyn SkewPolicy,
        tolerated: &'a HashSet<ViolationKey>,
        layout: &'a Layout,
    ) -> Self {
        View {
            state,
            layout,
            presence_checked: layout.presence_ok,
            policy,
            tolerated,
            accepted: Vec::new(),
            errors: None,
            control_plane: None,
        }
    }

    /// Accepts violations of `rules` (those of the transient windows the run is inside).
    pub fn accepting(mut self, rules: Vec<&'a str>) -> Self {
        self.accepted = rules;
        self
    }

    pub fn node(&self, name: &NodeName) -> Option<&'a Node> {
        let i = self.layout.position(name)?;
        self.state.nodes.get(i)
    }

    pub fn contains(&self, name: &NodeName) -> bool {
        self.layout.position(name).is_some()
    }

    /// The control-plane nodes (found once).
    fn control_plane(&mut self) -> &[&'a Node] {
        let state = self.state;
        self.control_plane
            .get_or_insert_with(|| state.control_plane().collect())
    }

    /// The policy errors that were not tolerated at the start, nor accepted in a transient
    /// window the run is inside.
    pub fn policy_errors(&mut self) -> &[Violation] {
        if self.errors.is_none() {
            let mut e = self.policy.errors(self.state);
            e.retain(|v| {
                v.severity == Severity::Error
                    && !self.tolerated.contains(&v.into())
                    && !self.accepted.contains(&v.rule.as_str())
            });
            self.errors = Some(e);
        }
        self.errors.as_deref().unwrap_or_default()
    }

    /// Checks `fact`; node facts are checked on `node` (a cluster-wide step passes `None`, and
    /// node facts then cannot be told).
    pub fn check(&mut self, fact: &Fact, node: Option<&NodeName>) -> Verdict {
        match fact {
            Fact::Version { .. }
            | Fact::Below { .. }
            | Fact::Cordoned
            | Fact::Schedulable
            | Fact::Ready
            | Fact::Present => match node {
                None => Verdict::Unknown("the step names no node".into()),
                Some(name) => match self.node(name) {
                    Some(n) => node_fact(self.state, fact, n),
                    None => Verdict::Fails("the node is not in the cluster".into()),
                },
            },
            Fact::Absent => match node {
                None => Verdict::Unknown("the step names no node".into()),
                Some(name) if self.contains(name) => {
                    Verdict::Fails("the node is in the cluster".into())
                }
                Some(_) => Verdict::Holds,
            },
            Fact::Addon { component, version } => {
                let found = match component {
                    Component::KubeProxy => self.state.addons.kube_proxy.as_ref(),
                    Component::CoreDns => self.state.addons.coredns.as_ref(),
                    _ => None,
                };
                match found {
                    Some(v) if same_release(v, version) => Verdict::Holds,
                    Some(v) => Verdict::Fails(format!("add-on {component} is {v}")),
                    None => Verdict::Unknown(format!("the cluster does not report {component}")),
                }
            }
            Fact::KubeProxyRolledOut => kube_proxy_rolled_out(self.state),
            Fact::ControlPlaneStarted { .. }
            | Fact::ControlPlaneAt { .. }
            | Fact::ControlPlaneAtLeast { .. } => self.control_plane_fact(fact),
            Fact::KubectlClient { version } => match &self.state.kubectl {
                Some(v) if v.release() >= version.release() => Verdict::Holds,
                Some(v) => Verdict::Fails(format!("your kubectl is {v}")),
                None => Verdict::Unknown("your kubectl's version is not known".into()),
            },
            Fact::PolicyHolds => {
                let errors = self.policy_errors();
                if errors.is_empty() {
                    Verdict::Holds
                } else {
                    Verdict::Fails(describe_violations(errors))
                }
            }
        }
    }

    /// Checks a fact about the kube-apiservers of the control plane (a fact of another kind
    /// cannot be told here).
    fn control_plane_fact(&mut self, fact: &Fact) -> Verdict {
        let apiservers: Vec<(&NodeName, &KubeVersion)> = self
            .control_plane()
            .iter()
            .filter_map(|n| Some((&n.name, n.versions.kube_apiserver.as_ref()?)))
            .collect();
        if apiservers.is_empty() {
            return Verdict::Unknown("the cluster reports no kube-apiserver".into());
        }
        // The kube-apiservers `pick` selects, as `name runs version`.
        let runs = |pick: &dyn Fn(&KubeVersion) -> bool| -> Vec<String> {
            apiservers
                .iter()
                .filter(|(_, v)| pick(v))
                .map(|(n, v)| format!("{n} runs {v}"))
                .collect()
        };
        let off = match fact {
            Fact::ControlPlaneStarted { version } => {
                if apiservers.iter().any(|(_, v)| same_release(v, version)) {
                    return Verdict::Holds;
                }
                let seen = runs(&|_| true).join(", ");
                return Verdict::Fails(format!("no kube-apiserver runs it ({seen})"));
            }
            Fact::ControlPlaneAt { version } => runs(&|v| !same_release(v, version)),
            Fact::ControlPlaneAtLeast { minor } => runs(&|v| v.minor() < *minor),
            other => return Verdict::Unknown(format!("{other} is not a control-plane fact")),
        };
        if off.is_empty() {
            Verdict::Holds
        } else {
            Verdict::Fails(off.join(", "))
        }
    }
}

/// Checks a fact about one node, `n` (a fact of another kind cannot be told here).
/// Every kube-proxy pod runs one version. A node reports its pod's version only when it
/// differs from the DaemonSet's (or when the cluster does not report the DaemonSet's).
fn kube_proxy_rolled_out(state: &ClusterState) -> Verdict {
    let mut one = state.addons.kube_proxy.as_ref();
    for n in &state.nodes {
        let Some(v) = &n.versions.kube_proxy else {
            continue;
        };
        match one {
            Some(o) if same_release(o, v) => {}
            Some(o) => {
                return Verdict::Fails(format!("kube-proxy on {} runs {v}, not {o}", n.name));
            }
            None => one = Some(v),
        }
    }
    Verdict::Holds
}

fn node_fact(state: &ClusterState, fact: &Fact, n: &Node) -> Verdict {
    let flag = |holds: bool, otherwise: &str| {
        if holds {
            Verdict::Holds
        } else {
            Verdict::Fails(otherwise.into())
        }
    };
    match fact {
        Fact::Version { component, version } => match component_version(state, n, *component) {
            Some(v) if same_release(v, version) => Verdict::Holds,
            Some(v) => Verdict::Fails(format!("{component} is {v}")),
            None => Verdict::Unknown(format!("the cluster does not report {component}")),
        },
        Fact::Below { component, version } => match component_version(state, n, *component) {
            Some(v) if v.release() < version.release() => Verdict::Holds,
            Some(v) => Verdict::Fails(format!("{component} is already {v}")),
            None => Verdict::Unknown(format!("the cluster does not report {component}")),
        },
        Fact::Cordoned => flag(n.unschedulable, "schedulable"),
        Fact::Schedulable => flag(!n.unschedulable, "cordoned"),
        Fact::Ready => flag(n.ready, "not Ready"),
        Fact::Present => Verdict::Holds,
        other => Verdict::Unknown(format!("{other} is not a fact about one node")),
    }
}

/// The version of `component` on `node` as the cluster reports it (kube-proxy falls back to
/// the add-on's version).
fn component_version<'a>(
    state: &'a ClusterState,
    node: &'a Node,
    component: Component,
) -> Option<&'a KubeVersion> {
    match component {
        Component::KubeProxy => state.kube_proxy_on(node),
        Component::CoreDns => state.addons.coredns.as_ref(),
        c => node.versions.get(c),
    }
}

/// The same upstream release (vendor suffixes and build metadata ignored).
pub(crate) fn same_release(a: &KubeVersion, b: &KubeVersion) -> bool {
    a.major() == b.major()
        && a.minor_number() == b.minor_number()
        && a.patch() == b.patch()
        && a.pre_release() == b.pre_release()
}

/// A few violations in one line.
pub(crate) fn describe_violations(v: &[Violation]) -> String {
    const SHOWN: usize = 3;
    let mut parts: Vec<String> = v
        .iter()
        .take(SHOWN)
        .map(|v| format!("{}: {}", v.rule, v.message()))
        .collect();
    if v.len() > SHOWN {
        parts.push(format!("and {} more", v.len() - SHOWN));
    }
    parts.join("; ")
}
