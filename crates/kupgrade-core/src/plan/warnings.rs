//! Warnings: what may make a plan wrong or incomplete although every step checks out, because
//! the release data it rests on ends too early. Each is data (a kind, for tools) and a sentence;
//! every renderer shows them, and the examples print them for `apply` and `check` too.
use jiff::civil::Date;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Hop;
use crate::lifecycle::{ReleaseCalendar, STALE_AFTER_MONTHS};
use crate::{ClusterState, EtcdTopology, KubeVersion, Minor};

/// A warning about a plan: the release data it rests on ends too early for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanWarning {
    /// What it is about.
    pub kind: WarningKind,
    /// The warning in words, with what to do about it.
    pub message: String,
}

/// What a plan warning is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum WarningKind {
    /// The date is more than four months past the release calendar's end: newer patches (and
    /// perhaps a minor) are unknown, so `stable` and a minor's latest patch may be stale.
    StaleCalendar,
    /// Some hops go to minors for which the kubeadm version table has no etcd or CoreDNS
    /// version: the plan does not move them there, while that kubeadm will.
    MissingKubeadmVersions,
}

impl std::fmt::Display for PlanWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The warning for a calendar too old for `date` (more than four months past its end), if it
/// is: `releases after 2026-09-15 are unknown to this calendar (...)`.
///
/// ```
/// use jiff::civil::date;
/// use kupgrade_core::lifecycle::ReleaseCalendar;
/// use kupgrade_core::plan::{calendar_warning, WarningKind};
/// let calendar = ReleaseCalendar::embedded();
/// assert_eq!(calendar_warning(calendar, date(2026, 12, 1)), None);
/// let w = calendar_warning(calendar, date(2027, 6, 1)).unwrap();
/// assert_eq!(w.kind, WarningKind::StaleCalendar);
/// assert!(w.message.starts_with("releases after 2026-09-15 are unknown to this calendar"));
/// ```
pub fn calendar_warning(calendar: &ReleaseCalendar, date: Date) -> Option<PlanWarning> {
    let known = calendar.unknown_after(date)?;
    let newest = calendar
        .newest_stable(Some(date))
        .map_or_else(String::new, |v| {
            format!(", so the newest release it knows on {date} is {v}")
        });
    Some(PlanWarning {
        kind: WarningKind::StaleCalendar,
        message: format!(
            "releases after {known} are unknown to this calendar ({date} is more than {STALE_AFTER_MONTHS} months later): newer patches, and perhaps a newer minor, are missing{newest}; load a newer release calendar (--calendar) or read the release team's labels (--live-releases)"
        ),
    })
}

/// The warning for upgrades of `state` to `versions` (a plan's hops, or the upgrades on offer)
/// whose minors have no etcd or CoreDNS version in the calendar's kubeadm version table, if
/// any: etcd counts only when it is stacked, CoreDNS only when the cluster runs it.
pub fn kubeadm_versions_warning(
    state: &ClusterState,
    calendar: &ReleaseCalendar,
    versions: &[KubeVersion],
) -> Option<PlanWarning> {
    let stacked = matches!(state.etcd, EtcdTopology::Stacked);
    let coredns = state.addons.coredns.is_some();
    let mut no_etcd: Vec<Minor> = Vec::new();
    let mut no_coredns: Vec<Minor> = Vec::new();
    for v in versions {
        let m = v.minor();
        let row = calendar.bundled(m);
        if stacked && row.and_then(|r| r.etcd.as_ref()).is_none() && !no_etcd.contains(&m) {
            no_etcd.push(m);
        }
        if coredns && row.and_then(|r| r.coredns.as_ref()).is_none() && !no_coredns.contains(&m) {
            no_coredns.push(m);
        }
    }
    let list = |ms: &[Minor]| {
        ms.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let missing = match (no_etcd.is_empty(), no_coredns.is_empty()) {
        (true, true) => return None,
        (false, true) => format!("no etcd version for {}", list(&no_etcd)),
        (true, false) => format!("no CoreDNS version for {}", list(&no_coredns)),
        (false, false) if no_etcd == no_coredns => {
            format!("no etcd or CoreDNS version for {}", list(&no_etcd))
        }
        (false, false) => format!(
            "no etcd version for {} and no CoreDNS version for {}",
            list(&no_etcd),
            list(&no_coredns)
        ),
    };
    let example = versions
        .iter()
        .find(|v| no_etcd.contains(&v.minor()) || no_coredns.contains(&v.minor()))?;
    Some(PlanWarning {
        kind: WarningKind::MissingKubeadmVersions,
        message: format!(
            "the kubeadm version table has {missing}: a plan leaves them where they are on hops to those minors, but that kubeadm upgrades them to what it ships; see `kubeadm config images list --kubernetes-version {example}`, or load a newer kubeadm version table (--kubeadm-versions)"
        ),
    })
}

/// Every warning for a plan of `state` on `date` through `hops`.
pub(crate) fn plan_warnings(
    state: &ClusterState,
    calendar: &ReleaseCalendar,
    date: Date,
    hops: &[Hop],
) -> Vec<PlanWarning> {
    let versions: Vec<KubeVersion> = hops.iter().map(|h| h.to.clone()).collect();
    calendar_warning(calendar, date)
        .into_iter()
        .chain(kubeadm_versions_warning(state, calendar, &versions))
        .collect()
}
