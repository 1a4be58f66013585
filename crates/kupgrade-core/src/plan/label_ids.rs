//! Numbers for node labels as a policy sees them, for the planner's class model (`fleet.rs`):
//! nodes whose labels get equal numbers are alike to the policy.
use std::hash::BuildHasher;

use foldhash::{HashMap, HashMapExt};

use crate::Labels;
use crate::skew::LabelKeys;

/// Numbers for what a policy sees of nodes' labels (see [`LabelKeys`]): equal numbers, equal
/// labels as far as the policy can tell. A node's labels are read once; with every label
/// counting, each distinct map is hashed once rather than with every node.
pub(super) enum LabelIds<'a> {
    /// Every label counts: whole maps.
    All {
        recent: Vec<(&'a Labels, u32)>,
        by_hash: HashMap<u64, Vec<(&'a Labels, u32)>>,
        next: u32,
    },
    /// Only the values of these keys count.
    Keys {
        keys: Vec<&'a str>,
        ids: HashMap<Vec<Option<&'a str>>, u32>,
        scratch: Vec<Option<&'a str>>,
    },
}

impl<'a> LabelIds<'a> {
    /// Numbers for the labels `keys` names, and `zone_key`.
    pub(super) fn new(keys: &'a LabelKeys, zone_key: &'a str) -> Self {
        match keys {
            LabelKeys::All => LabelIds::All {
                recent: Vec::new(),
                by_hash: HashMap::new(),
                next: 0,
            },
            LabelKeys::Only(keys) => {
                let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                if !keys.contains(&zone_key) {
                    keys.push(zone_key);
                }
                LabelIds::Keys {
                    keys,
                    ids: HashMap::new(),
                    scratch: Vec::new(),
                }
            }
        }
    }

    /// The number of `labels`, and whether it is new.
    pub(super) fn id(&mut self, labels: &'a Labels) -> (u32, bool) {
        match self {
            LabelIds::All {
                recent,
                by_hash,
                next,
            } => {
                if let Some(&(_, id)) = recent.iter().find(|(l, _)| l.ptr_eq(labels)) {
                    return (id, false);
                }
                if let Some(&(_, id)) = recent.iter().find(|(l, _)| *l == labels) {
                    return (id, false);
                }
                let h = foldhash::fast::FixedState::with_seed(1).hash_one(labels);
                let bucket = by_hash.entry(h).or_default();
                let (id, new) = match bucket.iter().find(|(l, _)| *l == labels) {
                    Some(&(_, id)) => (id, false),
                    None => {
                        let id = *next;
                        *next += 1;
                        bucket.push((labels, id));
                        (id, true)
                    }
                };
                if recent.len() == 4 {
                    recent.remove(0);
                }
                recent.push((labels, id));
                (id, new)
            }
            LabelIds::Keys { keys, ids, scratch } => {
                scratch.clear();
                scratch.extend(keys.iter().map(|k| labels.get(*k).map(String::as_str)));
                if let Some(&id) = ids.get(scratch.as_slice()) {
                    return (id, false);
                }
                let id = ids.len() as u32;
                ids.insert(scratch.clone(), id);
                (id, true)
            }
        }
    }
}
