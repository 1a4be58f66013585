use super::*;

/// Classes whose hashes collide share a chain: each is found, and taking any one out
/// (first, middle, last) leaves the others found.
#[test]
fn colliding_classes_share_a_chain() {
    let nodes = ["v1.31.1", "v1.30.1", "v1.29.1"]
        .iter()
        .enumerate()
        .map(|(i, v)| Node::worker(&format!("w-{i}"), v.parse().unwrap()).unwrap())
        .collect();
    let state = ClusterState::new(nodes);
    let mut fleet = Fleet::new(&state, crate::ZONE_LABEL, false, &LabelKeys::none());
    assert_eq!(fleet.class_count(), 3);
    for k in 0..3 {
        assert!(fleet.unlink(k));
        assert!(!fleet.unlink(k), "out of the chain already");
        fleet.classes[k as usize].hash = 42;
        fleet.link(k);
    }
    let found = |fleet: &Fleet, k: u32| {
        let c = &fleet.classes[k as usize];
        fleet.find(42, &c.rep, c.labels)
    };
    for k in 0..3 {
        assert_eq!(found(&fleet, k), Some(k));
    }
    // The chain is 2 -> 1 -> 0: take out the middle, then the head, then the last.
    assert!(fleet.unlink(1));
    assert_eq!(found(&fleet, 1), None);
    assert_eq!((found(&fleet, 0), found(&fleet, 2)), (Some(0), Some(2)));
    assert!(fleet.unlink(2));
    assert_eq!((found(&fleet, 0), found(&fleet, 2)), (Some(0), None));
    assert!(fleet.unlink(0));
    assert!(!fleet.by_hash.contains_key(&42));
}
