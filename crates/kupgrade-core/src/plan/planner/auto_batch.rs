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
use crate::readiness::{Demands, DrainModel};

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
        demands: &Demands,
        items: Vec<Worker>,
        cap: impl Fn(u32) -> usize,
    ) -> Result<Vec<Vec<(usize, crate::OsFamily)>>, PlanError> {
        let fleet = &self.sim;
        // The nodes' demands copied side by side in the wave's order: the cutting then reads
        // them in a stream (the copy's reads from the model's order overlap each other).
        let mut flat: Vec<(u32, u32)> = Vec::new();
        let mut ends: Vec<usize> = Vec::with_capacity(items.len());
        for item in &items {
            if let Some(k) = model.node_of(fleet.name(item.node.0).as_str()) {
                flat.extend_from_slice(demands.of(k));
            }
            ends.push(flat.len());
        }
        let items: Vec<(Worker, &[(u32, u32)])> = items
            .into_iter()
            .zip(ends)
            .scan(0, |from, (item, to)| {
                let demand = &flat[*from..to];
                *from = to;
                Some((item, demand))
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

/// How much of each budget the batches use: per batch, its use of each budget it uses (a
/// map: memory in proportion to the demands placed, however many batches and budgets there
/// are), and per budget, the last batch that uses it, with that use.
#[derive(Default)]
struct Fill {
    by_batch: Vec<Row>,
    /// Per budget (budgets are dense indices, so a flat vector), the last batch that uses it
    /// and how much (`NONE` for none): nodes land mostly in the latest batches, and this
    /// answers those (and every batch after) without a lookup in a batch's map.
    last: Vec<(u32, u32)>,
}

/// One batch's use of the budgets: a map while the batch uses few of them; once it uses
/// one budget in 16 or more, a byte per budget (those allowing at most 255; the map keeps
/// the others) and a bit per budget set when the batch has no room left for one more of its
/// pods. Dense rows cost no more memory than the map (about 18 bytes per budget used) and
/// answer with one load where the map's probe would miss the cache; most questions are
/// whether one more pod fits, which the bits (a short list) answer.
#[derive(Default)]
struct Row {
    used: HashMap<u32, u32>,
    counts: Vec<u8>,
    full: Vec<u64>,
}

impl Row {
    fn dense(&self) -> bool {
        !self.counts.is_empty()
    }

    fn is_full(&self, b: u32) -> bool {
        let w = self.full.get(b as usize / 64).copied().unwrap_or(0);
        w >> (b % 64) & 1 == 1
    }

    fn set_full(&mut self, b: u32) {
        let w = b as usize / 64;
        if self.full.len() <= w {
            self.full.resize(w + 1, 0);
        }
        self.full[w] |= 1 << (b % 64);
    }

    /// How much of budget `b` (allowing `allowed`) the batch uses.
    fn used(&self, b: u32, allowed: u32) -> u32 {
        if self.dense() && allowed <= u32::from(u8::MAX) {
            return self.counts.get(b as usize).map_or(0, |&c| u32::from(c));
        }
        self.used.get(&b).copied().unwrap_or(0)
    }

    /// Takes `n` more of budget `b`'s pods (`allowed(b)` in all, at least the use after);
    /// the batch now uses `budgets` budgets in all. Returns the use after.
    fn add(&mut self, b: u32, n: u32, allowed: &impl Fn(u32) -> u32, budgets: usize) -> u32 {
        let a = allowed(b);
        let used = if self.dense() && a <= u32::from(u8::MAX) {
            if self.counts.len() <= b as usize {
                self.counts.resize(b as usize + 1, 0);
            }
            let c = &mut self.counts[b as usize];
            // Within `a`, so within a byte: the batch never overdraws.
            *c = (u32::from(*c) + n).min(a) as u8;
            u32::from(*c)
        } else {
            let u = self.used.entry(b).or_default();
            *u += n;
            *u
        };
        if self.dense() {
            if used >= a {
                self.set_full(b);
            }
        } else if self.used.len() * 16 >= budgets {
            // Dense enough: move the budgets that fit a byte out of the map.
            self.counts = vec![0; budgets.max(1)];
            let entries: Vec<(u32, u32)> = self.used.iter().map(|(&b, &u)| (b, u)).collect();
            for (b, u) in entries {
                let a = allowed(b);
                if a <= u32::from(u8::MAX) {
                    self.used.remove(&b);
                    if self.counts.len() <= b as usize {
                        self.counts.resize(b as usize + 1, 0);
                    }
                    self.counts[b as usize] = u.min(a) as u8;
                }
                if u >= a {
                    self.set_full(b);
                }
            }
        }
        used
    }
}

/// [`Fill::last`]'s mark of a budget no batch uses yet.
const NONE: u32 = u32::MAX;

impl Fill {
    /// Whether batch `k` has room for `n` more of budget `b`'s pods (`allowed` in all).
    fn fits(&self, b: u32, k: usize, n: u32, allowed: u32) -> bool {
        let Some(&(last, used)) = self.last.get(b as usize) else {
            return true;
        };
        if last == NONE || k > last as usize {
            return true;
        }
        if k == last as usize {
            return used + n <= allowed;
        }
        let Some(row) = self.by_batch.get(k) else {
            return n <= allowed;
        };
        if row.dense() {
            if row.is_full(b) {
                return false;
            }
            if n == 1 {
                return true;
            }
        }
        row.used(b, allowed) + n <= allowed
    }

    /// The first batch from `k` on where budget `b` has room for `n` more (`allowed` in all,
    /// at least `n`): every batch after the last that uses `b` has room.
    fn room_from(&self, b: u32, k: usize, n: u32, allowed: u32) -> usize {
        let last = self.last.get(b as usize).map_or(NONE, |l| l.0);
        let mut k = k;
        while last != NONE && k <= last as usize && !self.fits(b, k, n, allowed) {
            k += 1;
        }
        k
    }

    /// Batch `k` takes `n` more of budget `b`'s pods (`allowed(b)` in all).
    fn add(&mut self, b: u32, k: usize, n: u32, allowed: &impl Fn(u32) -> u32) {
        if self.last.len() <= b as usize {
            self.last.resize(b as usize + 1, (NONE, 0));
        }
        if self.by_batch.len() <= k {
            self.by_batch.resize_with(k + 1, Row::default);
        }
        let budgets = self.last.len();
        let used = self.by_batch[k].add(b, n, allowed, budgets);
        let last = &mut self.last[b as usize];
        if last.0 == NONE || last.0 <= k as u32 {
            *last = (k as u32, used);
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
                .find(|&&(b, n)| !fill.fits(b, k, n, allowed(b)))
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
            fill.add(b, k, n, &allowed);
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
    use proptest::prelude::*;

    /// A node with its demand.
    type Demanding = (Item<usize>, Vec<(u32, u32)>);

    /// A reference batch: its nodes, their zones, its use of each budget.
    type Plain = (Vec<usize>, Vec<u32>, HashMap<u32, u32>);

    /// First fit as the module documentation states it, batch by batch from the first, with
    /// no remembered answers: what [`auto_batches`] must give.
    fn first_fit(
        items: &[Demanding],
        size: usize,
        cap: usize,
        allowed: &impl Fn(u32) -> u32,
    ) -> Vec<Vec<usize>> {
        let mut batches: Vec<Plain> = Vec::new();
        let mut lone = Vec::new();
        for (item, demand) in items {
            if demand.iter().any(|&(b, n)| n > allowed(b)) {
                lone.push(vec![item.node]);
                continue;
            }
            let fits = |(nodes, zones, used): &Plain| {
                nodes.len() < size.max(1)
                    && zones.iter().filter(|&&z| z == item.zone).count() < cap.max(1)
                    && demand
                        .iter()
                        .all(|&(b, n)| used.get(&b).copied().unwrap_or(0) + n <= allowed(b))
            };
            let k = match batches.iter().position(fits) {
                Some(k) => k,
                None => {
                    batches.push(Default::default());
                    batches.len() - 1
                }
            };
            let (nodes, zones, used) = &mut batches[k];
            nodes.push(item.node);
            zones.push(item.zone);
            for &(b, n) in demand {
                *used.entry(b).or_default() += n;
            }
        }
        let mut out: Vec<Vec<usize>> = batches.into_iter().map(|b| b.0).collect();
        out.extend(lone);
        out
    }

    proptest! {
        /// Few budgets (every batch's use dense at once), thousands (sparse maps, dense once
        /// many nodes share a batch), and budgets allowing more than a byte counts: the
        /// batches are first fit's.
        #[test]
        fn batches_are_first_fit(
            budgets in prop_oneof![Just(3u32), Just(40), Just(3_000)],
            big in any::<bool>(),
            demands in prop::collection::vec(
                prop::collection::vec((any::<u32>(), 1u32..4), 0..6), 1..120),
            zones in 1u32..4,
            size in prop_oneof![Just(usize::MAX), 1usize..30],
            cap in prop_oneof![Just(usize::MAX), 1usize..10],
        ) {
            let allowed = |b: u32| match b % 7 {
                0 if big => 300,
                0 => 0,
                1 if big => 1_000,
                r => r.min(4),
            };
            let items: Vec<Demanding> = demands
                .into_iter()
                .enumerate()
                .map(|(i, d)| {
                    // One entry per budget, sorted, as the drain model gives them.
                    let mut d: Vec<(u32, u32)> = d
                        .into_iter()
                        .map(|(b, n)| (b % budgets, if big && b % 7 < 2 { n * 90 } else { n }))
                        .collect();
                    d.sort_unstable_by_key(|e| e.0);
                    d.dedup_by_key(|e| e.0);
                    (Item { zone: i as u32 % zones, node: i }, d)
                })
                .collect();
            let want = first_fit(&items, size, cap, &allowed);
            let got = auto_batches(items, size, |_| cap, allowed);
            prop_assert_eq!(got.batches, want);
        }
    }

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
