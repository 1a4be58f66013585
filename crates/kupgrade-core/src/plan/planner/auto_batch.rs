//! `--batch auto`: per wave, the largest batches that overdraw no PodDisruptionBudget.
//!
//! Each node comes with its *demand*: how many evictions its drain asks of each budget
//! ([`DrainModel::demand`](crate::readiness::DrainModel::demand)). Nodes are taken in order
//! (zone, then inventory or name) and each goes into the first batch it fits: the batch's
//! demand on every budget stays within the disruptions the budget allows now, the batch stays
//! within the size bound (the replace strategy's surge) and each zone within its cap. A batch
//! only grows, so a node that did not fit an earlier batch never fits it later: every batch is
//! *maximal* (no node of a later batch could join it without overdrawing a budget or a cap).
//!
//! A node whose own demand overdraws a budget fits no batch: it goes alone, after the others,
//! and is reported as *lone* (its drain waits for the budget, or never ends: see
//! [`Lone`]).
//!
//! Cost: every node is placed once; the first batch with room for each budget, zone and the
//! size is remembered, so a node starts looking at the latest of those, not at batch 0.
use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt};

use crate::NodeName;
use crate::plan::PlanError;
use crate::plan::batch::Item;
use crate::readiness::DrainModel;

use super::Planner;
use super::groups::Worker;

/// The most pods a deadlock names.
const SHOWN_PODS: usize = 10;

impl Planner<'_, '_> {
    /// A wave's batches under `--batch auto` (the nodes of each, in order), from `model`, with
    /// at most `cap(zone)` nodes of a zone in each; a node alone overdraws a budget that can never allow a disruption refuses the plan,
    /// naming the budget, its pods and their nodes.
    pub(super) fn auto_cut(
        &self,
        model: &DrainModel<'_>,
        demands: &HashMap<&str, Vec<(u32, u32)>>,
        items: Vec<Worker>,
        cap: impl Fn(u32) -> usize,
    ) -> Result<Vec<Vec<(usize, crate::OsFamily)>>, PlanError> {
        let fleet = &self.sim;
        let items: Vec<(Worker, &[(u32, u32)])> = items
            .into_iter()
            .map(|item| {
                let demand = demands.get(fleet.name(item.node.0).as_str());
                (item, demand.map_or(&[][..], Vec::as_slice))
            })
            .collect();
        // Each budget's allowance in one flat list: the cutting asks for it at every try.
        let allowed: Vec<u32> = (0..model.budget_count())
            .map(|b| model.budget(b).disruptions_allowed)
            .collect();
        let out = auto_batches(items, self.batch_size, cap, |b| allowed[b as usize]);
        // Budgets that never allow a disruption, with the lone nodes they stop.
        let mut stuck: BTreeMap<String, (usize, Vec<NodeName>)> = BTreeMap::new();
        for l in &out.lone {
            for &b in &l.budgets {
                let budget = model.budget(b as usize);
                if budget.never_allows() {
                    let entry = stuck.entry(budget.id()).or_insert((b as usize, Vec::new()));
                    entry.1.push(fleet.name(l.node.0).clone());
                }
            }
        }
        if let Some((id, (b, nodes))) = stuck.iter().next() {
            let mut pods: Vec<String> = nodes
                .iter()
                .flat_map(|n| model.pods_needing(n.as_str(), *b))
                .map(|p| model.pod(p).id())
                .collect();
            if pods.len() > SHOWN_PODS {
                let more = pods.len() - SHOWN_PODS;
                pods.truncate(SHOWN_PODS);
                pods.push(format!("and {more} more"));
            }
            return Err(PlanError::DrainDeadlock {
                budget: id.clone(),
                spec: model.budget(*b).spec.clone(),
                pods,
                nodes: nodes.clone(),
                more_budgets: stuck.len() - 1,
            });
        }
        Ok(out.batches)
    }
}

/// A node whose own drain asks more of a budget than it allows now.
pub(super) struct Lone<T> {
    /// The node.
    pub node: T,
    /// The budgets it overdraws by itself.
    pub budgets: Vec<u32>,
}

/// The batches `auto` cuts, then the nodes that go alone.
pub(super) struct AutoBatches<T> {
    /// The batches, in order (lone nodes last, one per batch).
    pub batches: Vec<Vec<T>>,
    /// The nodes that overdraw a budget by themselves, in the order of their batches.
    pub lone: Vec<Lone<T>>,
}

/// One batch being filled: its size and its nodes per zone (few zones: a short list).
#[derive(Default)]
struct Open {
    len: usize,
    zones: Vec<(u32, usize)>,
}

impl Open {
    fn in_zone(&self, zone: u32) -> usize {
        self.zones.iter().find(|z| z.0 == zone).map_or(0, |z| z.1)
    }
}

/// How much of each budget the batches use: per budget (budgets are dense indices, so a
/// vector, not a map), `(batch, count)` sorted by batch, only for the batches that use it
/// (memory in proportion to the demands placed, however many batches there are).
#[derive(Default)]
struct Fill {
    by_budget: Vec<Vec<(u32, u32)>>,
    /// Per budget, the last entry of its list (`NONE` for none), in one flat vector: nodes
    /// land mostly in the latest batches, and this answers those without touching the list.
    last: Vec<(u32, u32)>,
}

/// [`Fill::last`]'s mark of a budget no batch uses yet.
const NONE: u32 = u32::MAX;

impl Fill {
    fn list(&self, b: u32) -> &[(u32, u32)] {
        self.by_budget.get(b as usize).map_or(&[], Vec::as_slice)
    }

    fn used(&self, b: u32, k: usize) -> u32 {
        let Some(&(last, n)) = self.last.get(b as usize) else {
            return 0;
        };
        let k = k as u32;
        if last == NONE || k > last {
            return 0;
        }
        if k == last {
            return n;
        }
        let list = self.list(b);
        match list.binary_search_by_key(&k, |e| e.0) {
            Ok(i) => list[i].1,
            Err(_) => 0,
        }
    }

    /// The first batch from `k` on where budget `b` has room for `n` more (`allowed` in all):
    /// batches it does not use have room, so the walk stops at the first gap in its list.
    fn room_from(&self, b: u32, k: usize, n: u32, allowed: u32) -> usize {
        let list = self.list(b);
        let mut i = list.partition_point(|e| (e.0 as usize) < k);
        let mut k = k;
        while let Some(&(batch, used)) = list.get(i) {
            if batch as usize != k || used + n <= allowed {
                break;
            }
            k += 1;
            i += 1;
        }
        k
    }

    fn add(&mut self, b: u32, k: usize, n: u32) {
        if self.by_budget.len() <= b as usize {
            self.by_budget.resize_with(b as usize + 1, Vec::new);
            self.last.resize(b as usize + 1, (NONE, 0));
        }
        let list = &mut self.by_budget[b as usize];
        // Nodes mostly land in the latest batches: look from the end first.
        match list.last_mut() {
            Some(last) if last.0 == k as u32 => last.1 += n,
            Some(last) if last.0 < k as u32 => list.push((k as u32, n)),
            None => list.push((k as u32, n)),
            _ => match list.binary_search_by_key(&(k as u32), |e| e.0) {
                Ok(i) => list[i].1 += n,
                Err(i) => list.insert(i, (k as u32, n)),
            },
        }
        if let Some(&e) = list.last() {
            self.last[b as usize] = e;
        }
    }
}

/// Cuts `items` (in batching order, each with its demand) into batches. `size` bounds a
/// batch, `cap(zone)` a zone's nodes in it, `allowed(budget)` each budget's demand in it.
pub(super) fn auto_batches<T: Clone, D: AsRef<[(u32, u32)]>>(
    items: Vec<(Item<T>, D)>,
    size: usize,
    cap: impl Fn(u32) -> usize,
    allowed: impl Fn(u32) -> u32,
) -> AutoBatches<T> {
    let size = size.max(1);
    let mut open: Vec<Open> = Vec::new();
    let mut fill = Fill::default();
    let mut members: Vec<Vec<T>> = Vec::new();
    let mut lone = Vec::new();
    // The first batch that may have room: for the size, per zone, per budget.
    let mut first_sized = 0usize;
    let mut first_zone: HashMap<u32, usize> = HashMap::new();
    let mut first_budget: Vec<usize> = Vec::new();
    for (item, demand) in items {
        let demand = demand.as_ref();
        if demand.iter().any(|&(b, n)| n > allowed(b)) {
            lone.push(Lone {
                budgets: demand
                    .iter()
                    .filter(|&&(b, n)| n > allowed(b))
                    .map(|&(b, _)| b)
                    .collect(),
                node: item.node,
            });
            continue;
        }
        let zone_cap = cap(item.zone).max(1);
        let mut k = demand
            .iter()
            .map(|&(b, _)| first_budget.get(b as usize).copied().unwrap_or(0))
            .chain([
                first_sized,
                first_zone.get(&item.zone).copied().unwrap_or(0),
            ])
            .max()
            .unwrap_or(0);
        loop {
            if k == open.len() {
                open.push(Open::default());
                members.push(Vec::new());
            }
            let o = &open[k];
            if o.len >= size || o.in_zone(item.zone) >= zone_cap {
                k += 1;
                continue;
            }
            // The first budget without room here sends the node on to the first batch
            // where that budget has room (none between can take it).
            match demand
                .iter()
                .find(|&&(b, n)| fill.used(b, k) + n > allowed(b))
            {
                None => break,
                Some(&(b, n)) => k = fill.room_from(b, k, n, allowed(b)),
            }
        }
        let o = &mut open[k];
        o.len += 1;
        match o.zones.iter_mut().find(|z| z.0 == item.zone) {
            Some(z) => z.1 += 1,
            None => o.zones.push((item.zone, 1)),
        }
        for &(b, n) in demand {
            fill.add(b, k, n);
        }
        members[k].push(item.node);
        // Move the remembered first batches past the full ones.
        while open.get(first_sized).is_some_and(|o| o.len >= size) {
            first_sized += 1;
        }
        let z = first_zone.entry(item.zone).or_default();
        while open
            .get(*z)
            .is_some_and(|o| o.in_zone(item.zone) >= zone_cap)
        {
            *z += 1;
        }
        for &(b, _) in demand {
            if first_budget.len() <= b as usize {
                first_budget.resize(b as usize + 1, 0);
            }
            let f = &mut first_budget[b as usize];
            *f = fill.room_from(b, *f, 1, allowed(b)).min(open.len());
        }
    }
    members.extend(lone.iter().map(|l| vec![l.node.clone()]));
    AutoBatches {
        batches: members,
        lone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(
        zone: u32,
        node: &'static str,
        demand: &[(u32, u32)],
    ) -> (Item<&'static str>, Vec<(u32, u32)>) {
        (Item { zone, node }, demand.to_vec())
    }

    #[test]
    fn budgets_cut_batches_and_lone_nodes_go_last() {
        // Budget 0 allows 1, budget 1 allows 2, budget 2 allows none.
        let allowed = |b: u32| [1, 2, 0][b as usize];
        let items = vec![
            item(0, "a", &[(0, 1)]),
            item(0, "b", &[(0, 1), (1, 1)]),
            item(0, "c", &[(1, 1)]),
            item(0, "d", &[(2, 1)]),
            item(0, "e", &[]),
            item(0, "f", &[(1, 1)]),
            item(0, "g", &[(1, 2)]),
        ];
        let out = auto_batches(items, usize::MAX, |_| usize::MAX, allowed);
        assert_eq!(
            out.batches,
            [vec!["a", "c", "e", "f"], vec!["b"], vec!["g"], vec!["d"]]
        );
        assert_eq!(out.lone.len(), 1);
        assert_eq!(out.lone[0].node, "d");
        assert_eq!(out.lone[0].budgets, [2]);
    }

    #[test]
    fn size_and_zone_caps_bound_batches() {
        let items = || {
            vec![
                item(0, "a", &[]),
                item(0, "b", &[]),
                item(1, "c", &[]),
                item(1, "d", &[]),
                item(1, "e", &[]),
            ]
        };
        let out = auto_batches(items(), 2, |_| usize::MAX, |_| 0);
        assert_eq!(out.batches, [vec!["a", "b"], vec!["c", "d"], vec!["e"]]);
        let out = auto_batches(items(), 3, |_| 1, |_| 0);
        assert_eq!(out.batches, [vec!["a", "c"], vec!["b", "d"], vec!["e"]]);
    }
}
