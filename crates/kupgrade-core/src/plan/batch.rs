//! Splitting nodes into batches: at most `size` nodes, at most a zone's cap of any one zone.
//!
//! Nodes are taken in (zone, name) order. Each batch visits the zones in order and takes from
//! each as many nodes as the zone's cap and the room left allow. Without caps this goes zone by
//! zone; with caps it spreads a batch over zones. Taking batches from what is left gives the
//! same batches as before, which keeps re-planning from the middle of a run stable.
use std::cmp::Ordering;
use std::collections::VecDeque;

/// One node to batch: its zone (an index into the zone names) and what batches keep of it.
pub(crate) struct Item<T> {
    pub zone: u32,
    pub node: T,
}

/// Sorts `items` by zone name (`zones`: the zone names; nodes without a zone first), then by
/// node name (`by_name` compares two nodes' names).
pub(crate) fn sort_by_zone<T>(
    items: &mut [Item<T>],
    zones: &[Option<String>],
    by_name: impl Fn(&T, &T) -> Ordering,
) {
    let zone = |z: u32| zones.get(z as usize).and_then(Option::as_deref);
    items.sort_by(|a, b| {
        zone(a.zone)
            .cmp(&zone(b.zone))
            .then_with(|| by_name(&a.node, &b.node))
    });
}

/// Splits `items` into batches of at most `size`, with at most `cap(zone)` nodes of one zone
/// (at least 1) in each. Items must come in zone order (then name, or inventory order; see
/// [`sort_by_zone`]).
pub(crate) fn batches<T>(
    items: Vec<Item<T>>,
    size: usize,
    cap: impl Fn(u32) -> usize,
) -> Vec<Vec<T>> {
    let mut zones: Vec<(usize, VecDeque<T>)> = Vec::new();
    let mut last: Option<u32> = None;
    for item in items {
        if last != Some(item.zone) {
            zones.push((cap(item.zone).max(1), VecDeque::new()));
            last = Some(item.zone);
        }
        if let Some(z) = zones.last_mut() {
            z.1.push_back(item.node);
        }
    }
    let size = size.max(1);
    let mut out = Vec::new();
    let mut left: usize = zones.iter().map(|z| z.1.len()).sum();
    let mut empty = 0;
    while left > 0 {
        let mut batch = Vec::with_capacity(size.min(left));
        for (cap, queue) in zones.iter_mut() {
            if queue.is_empty() {
                continue;
            }
            let take = (size - batch.len()).min(*cap).min(queue.len());
            batch.extend(queue.drain(..take));
            if queue.is_empty() {
                empty += 1;
            }
            if batch.len() == size {
                break;
            }
        }
        left -= batch.len();
        // Drop emptied zones now and then, so that skipping them stays cheap.
        if empty * 2 > zones.len() {
            zones.retain(|(_, q)| !q.is_empty());
            empty = 0;
        }
        out.push(batch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeName;

    const ZONES: [Option<&str>; 4] = [None, Some("a"), Some("b"), Some("c")];

    fn names_of_zones() -> Vec<Option<String>> {
        ZONES.iter().map(|z| z.map(str::to_string)).collect()
    }

    fn items(spec: &[(&str, &str)]) -> Vec<Item<NodeName>> {
        spec.iter()
            .map(|(z, n)| Item {
                zone: ZONES.iter().position(|x| *x == Some(*z)).unwrap() as u32,
                node: n.parse().unwrap(),
            })
            .collect()
    }

    /// The batches of `items`, sorted first.
    fn batched(
        mut items: Vec<Item<NodeName>>,
        size: usize,
        cap: impl Fn(u32) -> usize,
    ) -> Vec<Vec<NodeName>> {
        sort_by_zone(&mut items, &names_of_zones(), NodeName::cmp);
        batches(items, size, cap)
    }

    fn names(b: &[Vec<NodeName>]) -> Vec<Vec<&str>> {
        b.iter()
            .map(|v| v.iter().map(NodeName::as_str).collect())
            .collect()
    }

    #[test]
    fn zone_by_zone_without_caps() {
        let it = items(&[
            ("b", "w4"),
            ("a", "w1"),
            ("a", "w2"),
            ("b", "w3"),
            ("c", "w5"),
        ]);
        let b = batched(it, 2, |_| usize::MAX);
        assert_eq!(names(&b), [vec!["w1", "w2"], vec!["w3", "w4"], vec!["w5"]]);
    }

    #[test]
    fn caps_spread_batches_over_zones() {
        let it = items(&[
            ("a", "w1"),
            ("a", "w2"),
            ("a", "w3"),
            ("b", "w4"),
            ("b", "w5"),
            ("c", "w6"),
        ]);
        let b = batched(it, 3, |_| 1);
        assert_eq!(
            names(&b),
            [vec!["w1", "w4", "w6"], vec!["w2", "w5"], vec!["w3"]]
        );
        // Batching what is left gives the rest of the batches.
        let rest = items(&[("a", "w2"), ("a", "w3"), ("b", "w5")]);
        assert_eq!(
            names(&batched(rest, 3, |_| 1)),
            [vec!["w2", "w5"], vec!["w3"]]
        );
    }

    #[test]
    fn nodes_without_zone_come_first_and_all_are_taken() {
        let mut it = items(&[("a", "w2")]);
        it.push(Item {
            zone: 0,
            node: "w1".parse().unwrap(),
        });
        let b = batched(it, 1, |_| 1);
        assert_eq!(names(&b), [vec!["w1"], vec!["w2"]]);
        assert!(batched(Vec::new(), 3, |_| 1).is_empty());
    }
}
