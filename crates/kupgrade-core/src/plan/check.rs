//! Incremental policy checking: after each simulated step, re-check only what it changed.
//!
//! This relies on the contract documented on [`SkewPolicy`]: `check_cluster` depends only on
//! the control-plane nodes and the cluster-wide fields (add-ons, etcd, the cluster's kubectl),
//! and `check_node` only on its node, the [`Summary`] and those cluster-wide fields. So:
//!
//! - a step that changes worker nodes re-runs `check_node` for those nodes;
//! - a step that changes a control-plane node also re-runs `check_cluster`, and every node when
//!   the summary (the oldest and newest API server) changed;
//! - a step that changes a cluster-wide field re-runs everything.
use std::collections::{HashMap, HashSet};

use crate::skew::{Context, Severity, SkewPolicy, Summary, Violation};
use crate::{Component, NodeName};

use super::simulate::{Effect, Simulation};
use super::step::Step;

type Key = (String, Component, Option<NodeName>);

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
    buf: Vec<Violation>,
}

impl<'a> Checker<'a> {
    /// Checks the starting state in full. Without `tolerate`, any error is returned (all of
    /// them); with it, the errors found become the tolerated set.
    pub(crate) fn start(
        policy: &'a dyn SkewPolicy,
        sim: &Simulation,
        tolerate: bool,
    ) -> Result<Self, Vec<Violation>> {
        let summary = sim.summary();
        let state = sim.state();
        let cx = Context {
            state,
            summary: &summary,
        };
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
            buf,
        })
    }

    /// True while some tolerated violation from the start persists.
    pub(crate) fn has_tolerated(&self) -> bool {
        self.tolerated
            .as_ref()
            .is_some_and(|t| !t.cluster.is_empty() || t.nodes.values().any(|s| !s.is_empty()))
    }

    /// Re-checks what `effect` says `step` changed. Returns the first new error.
    pub(crate) fn after(
        &mut self,
        sim: &Simulation,
        step: &Step,
        effect: Effect,
    ) -> Result<(), Box<Violation>> {
        let mut all_nodes = false;
        let mut cluster = false;
        if effect.control_plane || effect.cluster_fields {
            let summary = sim.summary();
            all_nodes = effect.cluster_fields || summary != self.summary;
            self.summary = summary;
            cluster = true;
        }
        let state = sim.state();
        let Checker {
            policy,
            summary,
            tolerated,
            buf,
        } = self;
        let cx = Context { state, summary };
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
            for name in &step.nodes {
                // Removed nodes have nothing left to check.
                let Some(node) = sim.node(name) else { continue };
                policy.check_node(&cx, node, buf);
                check(Some(name), buf)?;
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
