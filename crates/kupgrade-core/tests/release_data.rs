//! Release data from files and its limits: a kubeadm version table loaded from a file changes
//! the plan, and a plan made past the end of its calendar or of its kubeadm version table
//! says so in every format.
use jiff::civil::{Date, date};
use kupgrade_core::bundled::BundleTable;
use kupgrade_core::lifecycle::ReleaseCalendar;
use kupgrade_core::plan::render::{self, Format};
use kupgrade_core::plan::{Action, PlanRequest, UpgradePlan, WarningKind};
use kupgrade_core::{ClusterState, inventory};

const HA: &str = include_str!("../../../examples/clusters/ha.yaml");
/// Within four months of the embedded calendar's end (2026-09-15).
const RECENT: Date = date(2027, 1, 1);
/// More than four months past it.
const LATE: Date = date(2027, 6, 1);

fn ha() -> ClusterState {
    inventory::parse(HA, "ha.yaml").unwrap()
}

fn plan_on(calendar: &ReleaseCalendar, target: &str, day: Date) -> UpgradePlan {
    PlanRequest::new(target.parse().unwrap(), day)
        .calendar(calendar)
        .plan(&ha())
        .unwrap_or_else(|e| panic!("{target} on {day}: {e}"))
}

fn kinds(plan: &UpgradePlan) -> Vec<WarningKind> {
    plan.warnings.iter().map(|w| w.kind).collect()
}

/// `stable` long after the calendar's end is its last known release: the plan says so.
#[test]
fn a_date_past_the_calendar_is_a_warning_in_every_format() {
    let calendar = ReleaseCalendar::embedded();
    let recent = plan_on(calendar, "1.36", RECENT);
    assert!(!kinds(&recent).contains(&WarningKind::StaleCalendar));

    let late = plan_on(calendar, "1.36", LATE);
    assert!(kinds(&late).contains(&WarningKind::StaleCalendar));
    let message = &late.warnings[0].message;
    assert_eq!(
        message,
        "releases after 2026-09-15 are unknown to this calendar (2027-06-01 is more than 4 months later): newer patches, and perhaps a newer minor, are missing, so the newest release it knows on 2027-06-01 is v1.37.1; load a newer release calendar (--calendar) or read the release team's labels (--live-releases)"
    );
    for f in Format::ALL {
        let out = f.render(&late);
        let shown = match f {
            Format::Text => format!("  ! {message}"),
            Format::Markdown => format!("> **Warning:** {message}"),
            Format::Mermaid => format!("    %% warning: {message}"),
            Format::Json => format!("\"message\": {}", serde_json::to_string(message).unwrap()),
            Format::Yaml => "kind: stale-calendar".to_string(),
            Format::Html => format!(
                "<p class=\"warning\">warning: {}</p>",
                kupgrade_core::escape::html(message)
            ),
        };
        assert!(out.contains(&shown), "{}: {shown}", f.name());
    }
    // The field reads back.
    assert_eq!(render::from_json(&render::to_json(&late)).unwrap(), late);
    assert_eq!(render::from_yaml(&render::to_yaml(&late)).unwrap(), late);
}

/// The embedded kubeadm table ends at 1.36 (CoreDNS at 1.35): hops past it name those minors.
#[test]
fn hops_past_the_kubeadm_table_are_a_warning_naming_the_minors() {
    let plan = plan_on(ReleaseCalendar::embedded(), "1.37", RECENT);
    assert_eq!(kinds(&plan), [WarningKind::MissingKubeadmVersions]);
    assert_eq!(
        plan.warnings[0].message,
        "the kubeadm version table has no etcd version for 1.37 and no CoreDNS version for 1.36, 1.37: a plan leaves them where they are on hops to those minors, but that kubeadm upgrades them to what it ships; see `kubeadm config images list --kubernetes-version v1.36.4`, or load a newer kubeadm version table (--kubeadm-versions)"
    );
    let hop = |m: &str| plan.hops.iter().find(|h| h.to.minor().to_string() == m);
    assert_eq!(hop("1.37").unwrap().etcd, None);
    // One minor short of both (as `plan --available` offers it).
    let offered = kupgrade_core::plan::kubeadm_versions_warning(
        &ha(),
        ReleaseCalendar::embedded(),
        &["v1.37.1".parse().unwrap()],
    )
    .unwrap();
    assert!(
        offered
            .message
            .starts_with("the kubeadm version table has no etcd or CoreDNS version for 1.37: "),
        "{offered}"
    );
    // Within the table: no warning.
    let within = plan_on(ReleaseCalendar::embedded(), "1.35", RECENT);
    assert!(within.warnings.is_empty(), "{:?}", within.warnings);
}

/// A kubeadm version table from a file fills the gap: the hops carry its versions, the
/// control plane's etcd moves to them, and the warning is gone.
#[test]
fn a_kubeadm_table_from_a_file_is_planned_with() {
    let mut text = String::from("{\"minors\": [\n");
    for row in BundleTable::embedded().rows() {
        let etcd = row.etcd.as_ref().map(|e| e.to_plain_string());
        let coredns = row.coredns.as_ref().map(|c| c.to_string());
        text.push_str(&format!(
            "  {{\"minor\": \"{}\", \"etcd\": {}, \"coredns\": {}}},\n",
            row.minor,
            serde_json::to_string(&etcd.or(Some("3.6.9-0".into()))).unwrap(),
            serde_json::to_string(&coredns.or(Some("v1.13.1".into()))).unwrap(),
        ));
    }
    text.push_str("  {\"minor\": \"1.37\", \"etcd\": \"3.6.11-0\", \"coredns\": \"v1.13.2\"}\n]}");
    let table = BundleTable::from_json(&text, "kubeadm-versions.json").unwrap();
    let calendar = ReleaseCalendar::embedded().clone().with_bundles(table);
    let plan = plan_on(&calendar, "1.37", RECENT);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let last = plan.hops.last().unwrap();
    assert_eq!(last.to.minor().to_string(), "1.37");
    assert_eq!(last.etcd.as_ref().unwrap().to_plain_string(), "3.6.11-0");
    assert_eq!(last.coredns.as_ref().unwrap().to_string(), "v1.13.2");
    let deploys_etcd = plan.steps.iter().any(|s| {
        matches!(&s.action, Action::KubeadmUpgradeApply { etcd: Some(e), .. } if e.to_plain_string() == "3.6.11-0")
    });
    assert!(
        deploys_etcd,
        "the 1.37 hop moves etcd to the table's version"
    );
}
