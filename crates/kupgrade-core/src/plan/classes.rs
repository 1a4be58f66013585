//! Node equivalence classes, so that large clusters are checked class by class.
//!
//! Two nodes with the same versions, roles, labels and OS get the same verdict from a skew
//! policy (the contract on [`SkewPolicy`](crate::skew::SkewPolicy)): a cluster of 65,000 nodes
//! is a few dozen classes. The planner keeps each node's class as steps change nodes (a batch's
//! nodes of one class all move to the same new class, so the new class is found once per old
//! class and step) and checks one member per class instead of every node.
use std::hash::{BuildHasher, Hash, Hasher};

use foldhash::{HashMap, HashMapExt};

use crate::{ClusterState, Node};

/// A class: a node with the content every member shares, and how many members it has.
pub(crate) struct Class {
    /// A copy of a node of the class (its name is any member's).
    pub rep: Node,
    /// Members now.
    pub count: usize,
}

pub(crate) struct Classes {
    /// Each node's class, by position in the state.
    of: Vec<u32>,
    classes: Vec<Class>,
    by_hash: HashMap<u64, Vec<u32>>,
}

/// The part of a node a policy may judge (not its name, readiness, schedulability or SSH).
fn same(a: &Node, b: &Node) -> bool {
    a.versions == b.versions && a.roles == b.roles && a.labels == b.labels && a.os == b.os
}

fn hash(n: &Node) -> u64 {
    // A fixed seed: the same classes in the same order on every run.
    let mut h = foldhash::fast::FixedState::with_seed(0).build_hasher();
    n.roles.hash(&mut h);
    n.labels.hash(&mut h);
    n.os.family.hash(&mut h);
    n.os.release.hash(&mut h);
    for (c, v) in n.versions.iter() {
        c.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

impl Classes {
    /// Classifies every node of `state`.
    pub(crate) fn of(state: &ClusterState) -> Self {
        let mut c = Classes {
            of: Vec::with_capacity(state.nodes.len()),
            classes: Vec::new(),
            by_hash: HashMap::new(),
        };
        let mut last: Option<u32> = None;
        for n in &state.nodes {
            // Neighbours are often alike: try the previous node's class first.
            let k = match last {
                Some(k) if same(&c.classes[k as usize].rep, n) => k,
                _ => c.find_or_add(n),
            };
            c.classes[k as usize].count += 1;
            c.of.push(k);
            last = Some(k);
        }
        c
    }

    fn find_or_add(&mut self, n: &Node) -> u32 {
        let h = hash(n);
        let bucket = self.by_hash.entry(h).or_default();
        if let Some(&k) = bucket
            .iter()
            .find(|&&k| same(&self.classes[k as usize].rep, n))
        {
            return k;
        }
        let k = self.classes.len() as u32;
        self.classes.push(Class {
            rep: n.clone(),
            count: 0,
        });
        bucket.push(k);
        k
    }

    /// Re-classifies the nodes at `at` after a step changed them; returns, for each class the
    /// changed nodes are in now, one position of a member among them.
    pub(crate) fn moved(&mut self, state: &ClusterState, at: &[usize]) -> Vec<usize> {
        let mut memo: Vec<(u32, u32)> = Vec::new();
        let mut members: Vec<(u32, usize)> = Vec::new();
        for &i in at {
            let old = self.of[i];
            let new = match memo.iter().find(|m| m.0 == old) {
                Some(m) => m.1,
                None => {
                    let k = self.find_or_add(&state.nodes[i]);
                    memo.push((old, k));
                    k
                }
            };
            if new != old {
                self.classes[old as usize].count -= 1;
                self.classes[new as usize].count += 1;
                self.of[i] = new;
            }
            if !members.iter().any(|m| m.0 == new) {
                members.push((new, i));
            }
        }
        members.into_iter().map(|m| m.1).collect()
    }

    /// Re-classifies every node (after a change to many of them).
    pub(crate) fn moved_all(&mut self, state: &ClusterState) {
        let all: Vec<usize> = (0..state.nodes.len()).collect();
        self.moved(state, &all);
    }

    /// The classes with members, each with its representative node.
    pub(crate) fn present(&self) -> impl Iterator<Item = (u32, &Node)> + '_ {
        self.classes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.count > 0)
            .map(|(k, c)| (k as u32, &c.rep))
    }

    /// The position of some member of class `k`.
    pub(crate) fn member(&self, k: u32) -> Option<usize> {
        self.of.iter().position(|&c| c == k)
    }
}
