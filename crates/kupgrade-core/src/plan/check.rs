//! Incremental policy checking: after each simulated step, re-check only what it changed.
//!
//! This relies on the contract documented on [`SkewPolicy`]: `check_cluster` depends only on
//! the control-plane nodes and the cluster-wide fields (add-ons, etcd, the operators'
//! kubectl), `check_node` only on its node's versions, roles and labels, the [`Summary`] and
//! the add-ons, and neither on whether a node is cordoned. So:
//!
//! - a step that changes versions on worker nodes re-runs `check_node` for those nodes;
//! - a step that only cordons or uncordons re-runs nothing;
//! - a step that changes a control-plane node also re-runs `check_cluster`, and `check_node`
//!   for every node when the summary (the oldest and newest API server) changed;
//! - a step that changes the operators' kubectl re-runs `check_cluster`;
//! - a step that changes the add-ons re-runs everything.
use std::collections::{HashMap, HashSet};

use crate::skew::{Context, Severity, SkewPolicy, SmolStr, Summary, Violation};
use crate::{Component, NodeName};

use super::classes::Classes;
use super::simulate::{Effect, Simulation};
use super::step::Step;

type Key = (SmolStr, Component, Option<NodeName>);

fn key(v: &Violation) -> Key {
    (v.rule.clone(), v.component, v.node.clone())
}

/// Violations present at the start that the caller chose to tolerate. They may persist but
/// never come back once gone, and nothing new may appear.
#[derive(Default)]
struct Tolerated {
    cluster: HashSet<Key>,
    nodes: HashMap<NodeName, HashSet<Key>>,
}

pub(crate) struct Checker<'a> {
    policy: &'a dyn SkewPolicy,
    summary: Summary,
    tolerated: Option<Tolerated>,
    /// Node classes, when checking by class (node positions stay put, nothing tolerated).
    classes: Option<Classes>,
    buf: Vec<Violation>,
}

impl<'a> Checker<'a> {
    /// Checks the starting state in full. Without `tolerate`, any error is returned (all of
    /// them); with it, the errors found become the tolerated set.
    ///
    /// With `by_class` (node positions must stay put: no step removes nodes), nodes are
    /// checked one class of equal nodes at a time.
    pub(crate) fn start(
        policy: &'a dyn SkewPolicy,
        sim: &Simulation,
        tolerate: bool,
        by_class: bool,
    ) -> Result<Self, Vec<Violation>> {
        let summary = sim.summary();
        let state = sim.state();
        let cx = Context {
            state,
            summary: &summary,
        };
        if by_class && !tolerate {
            // One check per class; only when some class fails, every node (to list them all).
            let classes = Classes::of(state);
            let mut buf = Vec::new();
            policy.check_cluster(&cx, &mut buf);
            let mut bad = buf.iter().any(|v| v.severity == Severity::Error);
            for (_, rep) in classes.present() {
                if bad {
                    break;
                }
                buf.clear();
                policy.check_node(&cx, rep, &mut buf);
                bad = buf.iter().any(|v| v.severity == Severity::Error);
            }
            if !bad {
                buf.clear();
                return Ok(Checker {
                    policy,
                    summary,
                    tolerated: None,
                    classes: Some(classes),
                    buf,
                });
            }
        }
        let mut cluster = Vec::new();
        policy.check_cluster(&cx, &mut cluster);
        cluster.retain(|v| v.severity == Severity::Error);
        let mut all = cluster.clone();
        let mut tolerated = Tolerated {
            cluster: cluster.iter().map(key).collect(),
            nodes: HashMap::new(),
        };
        let mut buf = Vec::new();
        for node in &state.nodes {
            policy.check_node(&cx, node, &mut buf);
            for v in buf.drain(..) {
                if v.severity == Severity::Error {
                    tolerated
                        .nodes
                        .entry(node.name.clone())
                        .or_default()
                        .insert(key(&v));
                    all.push(v);
                }
            }
        }
        if !all.is_empty() && !tolerate {
            return Err(all);
        }
        Ok(Checker {
            policy,
            summary,
            tolerated: if all.is_empty() {
                None
            } else {
                Some(tolerated)
            },
            classes: None,
            buf,
        })
    }

    /// True while some tolerated violation from the start persists.
    pub(crate) fn has_tolerated(&self) -> bool {
        self.tolerated
            .as_ref()
            .is_some_and(|t| !t.cluster.is_empty() || t.nodes.values().any(|s| !s.is_empty()))
    }

    /// Re-checks what `effect` says `step` changed; `at` are the positions of the step's nodes
    /// when known. Returns the first new error.
    pub(crate) fn after(
        &mut self,
        sim: &Simulation,
        step: &Step,
        effect: Effect,
        at: Option<&[usize]>,
    ) -> Result<(), Box<Violation>> {
        let mut all_nodes = effect.addons;
        let cluster = effect.control_plane || effect.addons || effect.cluster_fields;
        if effect.control_plane || effect.addons {
            let summary = sim.summary();
            all_nodes |= summary != self.summary;
            self.summary = summary;
        }
        let state = sim.state();
        let Checker {
            policy,
            summary,
            tolerated,
            classes,
            buf,
        } = self;
        let cx = Context { state, summary };
        if let Some(classes) = classes {
            // Keep classes current, then check one member per class concerned.
            let members = match at {
                Some(at) if effect.nodes => classes.moved(state, at),
                None if effect.nodes => {
                    classes.moved_all(state);
                    Vec::new()
                }
                _ => Vec::new(),
            };
            if effect.addons {
                classes.moved_all(state);
            }
            if cluster {
                policy.check_cluster(&cx, buf);
                let bad = buf.iter().find(|v| v.severity == Severity::Error).cloned();
                buf.clear();
                if let Some(v) = bad {
                    return Err(Box::new(v));
                }
            }
            let first_error = |node: &crate::Node, buf: &mut Vec<Violation>| {
                policy.check_node(&cx, node, buf);
                let bad = buf.iter().find(|v| v.severity == Severity::Error).cloned();
                buf.clear();
                bad
            };
            if all_nodes || (effect.nodes && at.is_none()) {
                let failing: Vec<u32> = classes
                    .present()
                    .filter_map(|(k, rep)| first_error(rep, buf).map(|_| k))
                    .take(1)
                    .collect();
                if let Some(&k) = failing.first() {
                    // Report it on a node of the class that is in the cluster now.
                    let node = classes.member(k).map(|i| &state.nodes[i]);
                    let v = node.and_then(|n| first_error(n, buf));
                    return Err(Box::new(v.unwrap_or_else(|| {
                        Violation::new(
                            "internal",
                            Severity::Error,
                            Component::Kubelet,
                            crate::KubeVersion::new(0, 0, 0),
                            SmolStr::default(),
                            "a class of nodes failed but no member reproduces it",
                        )
                    })));
                }
            } else {
                for i in members {
                    if let Some(v) = first_error(&state.nodes[i], buf) {
                        return Err(Box::new(v));
                    }
                }
            }
            return Ok(());
        }
        let mut check = |node: Option<&NodeName>, buf: &mut Vec<Violation>| {
            let r = if buf.is_empty() && tolerated.is_none() {
                Ok(())
            } else {
                judge(tolerated, node, buf)
            };
            buf.clear();
            r
        };
        if cluster {
            policy.check_cluster(&cx, buf);
            check(None, buf)?;
        }
        if all_nodes {
            for node in &state.nodes {
                policy.check_node(&cx, node, buf);
                check(Some(&node.name), buf)?;
            }
        } else if effect.nodes {
            match at {
                Some(at) => {
                    for &i in at {
                        let node = &state.nodes[i];
                        policy.check_node(&cx, node, buf);
                        check(Some(&node.name), buf)?;
                    }
                }
                None => {
                    for name in &step.nodes {
                        // Removed nodes have nothing left to check.
                        let Some(node) = sim.node(name) else { continue };
                        policy.check_node(&cx, node, buf);
                        check(Some(name), buf)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Judges the full set of violations of one scope (the cluster, or one node).
fn judge(
    tolerated: &mut Option<Tolerated>,
    node: Option<&NodeName>,
    found: &[Violation],
) -> Result<(), Box<Violation>> {
    let Some(t) = tolerated else {
        return match found.iter().find(|v| v.severity == Severity::Error) {
            Some(v) => Err(Box::new(v.clone())),
            None => Ok(()),
        };
    };
    let mut errors = found
        .iter()
        .filter(|v| v.severity == Severity::Error)
        .peekable();
    let set = match node {
        None => &mut t.cluster,
        Some(n) => {
            if errors.peek().is_none() {
                t.nodes.remove(n);
                return Ok(());
            }
            match t.nodes.get_mut(n) {
                Some(set) => set,
                None => return errors.next().map_or(Ok(()), |v| Err(Box::new(v.clone()))),
            }
        }
    };
    let mut now = HashSet::new();
    for v in errors {
        let k = key(v);
        if !set.contains(&k) {
            return Err(Box::new(v.clone()));
        }
        now.insert(k);
    }
    set.retain(|k| now.contains(k));
    Ok(())
}
