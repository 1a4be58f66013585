//! Splitting nodes into batches: at most `size` nodes, at most a zone's cap of any one zone.
//!
//! Nodes are taken in (zone, name) order. Each batch visits the zones in order and takes from
//! each as many nodes as the zone's cap and the room left allow. Without caps this goes zone by
//! zone; with caps it spreads a batch over zones. Taking batches from what is left gives the
//! same batches as before, which keeps re-planning from the middle of a run stable.
use std::collections::VecDeque;

use crate::{NodeName, OsFamily};

/// One node to batch: its zone (if any), name and OS family.
pub(crate) struct Item<'a> {
    pub zone: Option<&'a str>,
    pub name: NodeName,
    pub os: OsFamily,
}

/// Splits `items` into batches of at most `size`, with at most `cap(zone)` nodes of one zone
/// (at least 1) in each.
pub(crate) fn batches(
    mut items: Vec<Item<'_>>,
    size: usize,
    cap: impl Fn(Option<&str>) -> usize,
) -> Vec<Vec<(NodeName, OsFamily)>> {
    items.sort_by(|a, b| a.zone.cmp(&b.zone).then_with(|| a.name.cmp(&b.name)));
    let mut zones: Vec<(usize, VecDeque<(NodeName, OsFamily)>)> = Vec::new();
    let mut last: Option<Option<&str>> = None;
    for item in items {
        if last != Some(item.zone) {
            zones.push((cap(item.zone).max(1), VecDeque::new()));
            last = Some(item.zone);
        }
        if let Some(z) = zones.last_mut() {
            z.1.push_back((item.name, item.os));
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

    fn items<'a>(spec: &[(&'a str, &str)]) -> Vec<Item<'a>> {
        spec.iter()
            .map(|(z, n)| Item {
                zone: Some(z),
                name: n.parse().unwrap(),
                os: OsFamily::Debian,
            })
            .collect()
    }

    fn names(b: &[Vec<(NodeName, OsFamily)>]) -> Vec<Vec<&str>> {
        b.iter()
            .map(|v| v.iter().map(|(n, _)| n.as_str()).collect())
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
        let b = batches(it, 2, |_| usize::MAX);
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
        let b = batches(it, 3, |_| 1);
        assert_eq!(
            names(&b),
            [vec!["w1", "w4", "w6"], vec!["w2", "w5"], vec!["w3"]]
        );
        // Batching what is left gives the rest of the batches.
        let rest = items(&[("a", "w2"), ("a", "w3"), ("b", "w5")]);
        assert_eq!(
            names(&batches(rest, 3, |_| 1)),
            [vec!["w2", "w5"], vec!["w3"]]
        );
    }

    #[test]
    fn nodes_without_zone_come_first_and_all_are_taken() {
        let mut it = items(&[("a", "w2")]);
        it.push(Item {
            zone: None,
            name: "w1".parse().unwrap(),
            os: OsFamily::Rhel,
        });
        let b = batches(it, 1, |_| 1);
        assert_eq!(names(&b), [vec!["w1"], vec!["w2"]]);
        assert!(batches(Vec::new(), 3, |_| 1).is_empty());
    }
}
