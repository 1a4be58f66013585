//! What the cluster can upgrade to (`available_upgrades`, as `kubeadm upgrade plan` lists it)
//! and targets at the edges: the version the cluster already runs, the newest release.
use jiff::civil::{Date, date};
use kupgrade_core::lifecycle::ReleaseCalendar;
use kupgrade_core::plan::{
    PlanOptions, PlanRequest, Target, UpgradePlan, available_upgrades, nothing_available,
};
use kupgrade_core::{ClusterState, inventory};

const HA: &str = include_str!("../../../examples/clusters/ha.yaml");
const MID: &str = include_str!("../../../examples/clusters/mid-upgrade.yaml");
const JUNE_2025: Date = date(2025, 6, 1);

fn cluster(text: &str) -> ClusterState {
    inventory::parse(text, "cluster.yaml").unwrap()
}

fn offers(state: &ClusterState, day: Date) -> Vec<(String, Vec<String>, u64)> {
    available_upgrades(state, ReleaseCalendar::embedded(), day)
        .into_iter()
        .map(|u| (u.version.to_string(), u.labels, u.hops))
        .collect()
}

fn labels(l: &[&str]) -> Vec<String> {
    l.iter().map(|s| s.to_string()).collect()
}

/// Mid-upgrade (cp-1's API server at v1.29.4, the others at v1.28.9), kubeadm takes the
/// cluster's version from the API server `upgrade apply` moved: no 1.28 patch is offered (the
/// planner would refuse it as a downgrade), and each hop count is the plan's.
#[test]
fn mid_upgrade_offers_nothing_older_than_the_newest_api_server_and_counts_the_plans_hops() {
    let state = cluster(MID);
    let offered = offers(&state, JUNE_2025);
    assert_eq!(
        offered,
        [
            (
                "v1.29.4".to_string(),
                labels(&["finishes the upgrade under way"]),
                1
            ),
            ("v1.29.15".to_string(), labels(&["latest patch of 1.29"]), 2),
            ("v1.30.13".to_string(), labels(&["next minor"]), 2),
            ("v1.33.1".to_string(), labels(&["newest stable"]), 5),
        ]
    );
    // Every offer plans, with as many hops as offered.
    for (version, _, hops) in offered {
        let options = PlanOptions {
            allow_unsupported_target: true,
            ..PlanOptions::default()
        };
        let plan = PlanRequest::new(Target::Version(version.parse().unwrap()), JUNE_2025)
            .options(options)
            .plan(&state)
            .unwrap_or_else(|e| panic!("{version}: {e}"));
        assert_eq!(plan.hops.len() as u64, hops, "{version}");
    }
}

/// A cluster at the newest release is told so, rather than shown an empty list.
#[test]
fn a_cluster_at_the_newest_release_is_told_so() {
    let newest = ReleaseCalendar::embedded()
        .newest_stable(Some(JUNE_2025))
        .unwrap();
    let text = HA.replace("v1.28.9", &newest.to_string());
    let state = cluster(&text);
    assert!(offers(&state, JUNE_2025).is_empty());
    assert_eq!(
        nothing_available(&state, ReleaseCalendar::embedded(), JUNE_2025),
        format!("already at the newest release {newest} on 2025-06-01")
    );
    let newer = cluster(&HA.replace("v1.28.9", "v1.40.0"));
    assert_eq!(
        nothing_available(&newer, ReleaseCalendar::embedded(), JUNE_2025),
        format!(
            "the cluster runs v1.40.0, newer than the newest release the calendar knows on 2025-06-01 ({newest})"
        )
    );
}

fn plan(state: &ClusterState, target: &str, day: Date) -> UpgradePlan {
    PlanRequest::new(target.parse().unwrap(), day)
        .plan(state)
        .unwrap_or_else(|e| panic!("{target}: {e}"))
}

/// The version the cluster runs is "nothing to do", even long after its end of life (the
/// target is not a choice of an unsupported release: the cluster is there already).
#[test]
fn a_target_equal_to_the_current_version_is_nothing_to_do_even_past_end_of_life() {
    let state = cluster(HA);
    let p = plan(&state, "v1.28.9", JUNE_2025);
    assert!(p.is_empty(), "{:?}", p.steps);
    assert!(p.hops.is_empty());
    assert_eq!(p.target.to_string(), "v1.28.9");
    // A newer patch of an end-of-life minor is still refused.
    let e = PlanRequest::new("v1.28.15".parse().unwrap(), JUNE_2025)
        .plan(&state)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "target v1.28.15 is end of life since 2024-10-22 on 2025-06-01; allow unsupported targets (--allow-unsupported-target) to plan for it anyway"
    );
}
