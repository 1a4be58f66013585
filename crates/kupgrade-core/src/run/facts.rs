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
        let state = self.state;
        let on_node = |f: &dyn Fn(&Node) -> Verdict| -> Verdict {
            match node {
                None => Verdict::Unknown("the step names no node".into()),
                Some(name) => match self.node(name) {
                    Some(n) => f(n),
                    None => Verdict::Fails("the node is not in the cluster".into()),
                },
            }
        };
        match fact {
            Fact::Version { component, version } => {
                on_node(&|n| match component_version(state, n, *component) {
                    Some(v) if same_release(v, version) => Verdict::Holds,
                    Some(v) => Verdict::Fails(format!("{component} is {v}")),
                    None => Verdict::Unknown(format!("the cluster does not report {component}")),
                })
            }
            Fact::Below { component, version } => {
                on_node(&|n| match component_version(state, n, *component) {
                    Some(v) if v.release() < version.release() => Verdict::Holds,
                    Some(v) => Verdict::Fails(format!("{component} is already {v}")),
                    None => Verdict::Unknown(format!("the cluster does not report {component}")),
                })
            }
            Fact::Cordoned => on_node(&|n| {
                if n.unschedulable {
                    Verdict::Holds
                } else {
                    Verdict::Fails("schedulable".into())
                }
            }),
            Fact::Schedulable => on_node(&|n| {
                if n.unschedulable {
                    Verdict::Fails("cordoned".into())
                } else {
                    Verdict::Holds
                }
            }),
            Fact::Ready => on_node(&|n| {
                if n.ready {
                    Verdict::Holds
                } else {
                    Verdict::Fails("not Ready".into())
                }
            }),
            Fact::Present => on_node(&|_| Verdict::Holds),
            Fact::Absent => match node {
                None => Verdict::Unknown("the step names no node".into()),
                Some(name) if self.contains(name) => {
                    Verdict::Fails("the node is in the cluster".into())
                }
                Some(_) => Verdict::Holds,
            },
            Fact::Addon { component, version } => {
                let found = match component {
                    Component::KubeProxy => state.addons.kube_proxy.as_ref(),
                    Component::CoreDns => state.addons.coredns.as_ref(),
                    _ => None,
                };
                match found {
                    Some(v) if same_release(v, version) => Verdict::Holds,
                    Some(v) => Verdict::Fails(format!("add-on {component} is {v}")),
                    None => Verdict::Unknown(format!("the cluster does not report {component}")),
                }
            }
            Fact::ControlPlaneStarted { version } => {
                let mut seen = Vec::new();
                for n in self.control_plane() {
                    if let Some(v) = &n.versions.kube_apiserver {
                        if same_release(v, version) {
                            return Verdict::Holds;
                        }
                        seen.push(format!("{} runs {v}", n.name));
                    }
                }
                if seen.is_empty() {
                    Verdict::Unknown("the cluster reports no kube-apiserver".into())
                } else {
                    Verdict::Fails(format!("no kube-apiserver runs it ({})", seen.join(", ")))
                }
            }
            Fact::ControlPlaneAt { version } => {
                let mut off = Vec::new();
                let mut any = false;
                for n in self.control_plane() {
                    if let Some(v) = &n.versions.kube_apiserver {
                        any = true;
                        if !same_release(v, version) {
                            off.push(format!("{} runs {v}", n.name));
                        }
                    }
                }
                if !any {
                    Verdict::Unknown("the cluster reports no kube-apiserver".into())
                } else if off.is_empty() {
                    Verdict::Holds
                } else {
                    Verdict::Fails(off.join(", "))
                }
            }
            Fact::ControlPlaneAtLeast { minor } => {
                let mut older = Vec::new();
                let mut any = false;
                for n in self.control_plane() {
                    if let Some(v) = &n.versions.kube_apiserver {
                        any = true;
                        if v.minor() < *minor {
                            older.push(format!("{} runs {v}", n.name));
                        }
                    }
                }
                if !any {
                    Verdict::Unknown("the cluster reports no kube-apiserver".into())
                } else if older.is_empty() {
                    Verdict::Holds
                } else {
                    Verdict::Fails(older.join(", "))
                }
            }
            Fact::KubectlClient { version } => match &state.kubectl {
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
