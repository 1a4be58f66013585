//! Available upgrades, as `kubeadm upgrade plan` lists them: the latest patch of the current
//! minor, the next minor, and the newest stable release, each with the etcd and CoreDNS
//! versions kubeadm would bring.
use jiff::civil::Date;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::PlanOptions;
use crate::lifecycle::ReleaseCalendar;
use crate::{ClusterState, KubeVersion};

/// One upgrade the cluster could take.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AvailableUpgrade {
    /// What it is (`latest patch of 1.28`, `next minor`, `newest stable`); several when one
    /// version is more than one of them.
    pub labels: Vec<String>,
    /// The version.
    pub version: KubeVersion,
    /// How many control-plane hops it takes.
    pub hops: u64,
    /// The etcd version kubeadm ships with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<KubeVersion>,
    /// The CoreDNS version kubeadm ships with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coredns: Option<KubeVersion>,
    /// Its minor's support status on the date.
    pub status: String,
}

/// The upgrades available to `state` on `date`, oldest first; empty when the control plane is
/// already at the newest release (or has no version): [`nothing_available`] says why.
///
/// As `kubeadm upgrade plan` sees it, the cluster's version is its newest API server (the one
/// `kubeadm upgrade apply` moved first); a cluster caught mid-upgrade is also offered the end
/// of the hop under way. The hop counts are those of the plan.
///
/// ```
/// use jiff::civil::date;
/// use kupgrade_core::{lifecycle::ReleaseCalendar, plan::available_upgrades, ClusterState, Node};
/// let state = ClusterState::new(vec![Node::control_plane("cp", "v1.28.3".parse()?, None)?]);
/// let up = available_upgrades(&state, ReleaseCalendar::embedded(), date(2024, 6, 1));
/// let versions: Vec<String> = up.iter().map(|u| u.version.to_string()).collect();
/// assert_eq!(versions, ["v1.28.10", "v1.29.5", "v1.30.1"]);
/// assert_eq!(up[1].labels, ["next minor"]);
/// assert_eq!(up[2].hops, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn available_upgrades(
    state: &ClusterState,
    calendar: &ReleaseCalendar,
    date: Date,
) -> Vec<AvailableUpgrade> {
    let (Some(lo), Some(hi)) = (state.apiserver_min(), state.apiserver_max()) else {
        return Vec::new();
    };
    let (lo, now) = (lo.release(), hi.release());
    let mut found: Vec<(String, KubeVersion)> = Vec::new();
    if lo < now {
        found.push(("finishes the upgrade under way".to_string(), now.clone()));
    }
    if let Some(v) = calendar.latest_patch_on(now.minor(), date) {
        found.push((format!("latest patch of {}", now.minor()), v));
    }
    if let Some(v) = calendar.latest_patch_on(now.minor().next(), date) {
        found.push(("next minor".to_string(), v));
    }
    if let Some(v) = calendar.newest_stable(Some(date)) {
        found.push(("newest stable".to_string(), v));
    }
    let control_plane_nodes = state.control_plane().count();
    let mut out: Vec<AvailableUpgrade> = Vec::new();
    for (label, version) in found {
        if version < now || (version == now && lo == now) {
            continue;
        }
        if let Some(existing) = out.iter_mut().find(|u| u.version == version) {
            existing.labels.push(label);
            continue;
        }
        // The planner's own hops; a version it cannot reach (a minor on the way without a
        // release by the date) is not offered.
        let Ok(hops) = super::hops::hops(
            &lo,
            &now,
            &version,
            calendar,
            date,
            &PlanOptions::default(),
            control_plane_nodes,
        ) else {
            continue;
        };
        let bundle = calendar.bundled(version.minor());
        out.push(AvailableUpgrade {
            labels: vec![label],
            hops: hops.len() as u64,
            etcd: bundle.and_then(|b| b.etcd.clone()),
            coredns: bundle.and_then(|b| b.coredns.clone()),
            status: calendar.status(version.minor(), date).to_string(),
            version,
        });
    }
    out.sort_by(|a, b| a.version.cmp(&b.version));
    out
}

/// Why [`available_upgrades`] offers nothing, in words: `already at the newest release
/// v1.30.1 on 2024-06-01`, or what stands in the way.
pub fn nothing_available(state: &ClusterState, calendar: &ReleaseCalendar, date: Date) -> String {
    let Some(now) = state.apiserver_max().map(KubeVersion::release) else {
        return "the cluster has no control-plane node with a kube-apiserver version".to_string();
    };
    match calendar.newest_stable(Some(date)) {
        Some(newest) if newest == now => {
            format!("already at the newest release {newest} on {date}")
        }
        Some(newest) if newest < now => format!(
            "the cluster runs {now}, newer than the newest release the calendar knows on {date} ({newest})"
        ),
        Some(newest) => format!(
            "no upgrade from {now} to {newest} can be planned on {date} (a minor on the way has no release by then)"
        ),
        None => format!("the calendar knows no release by {date}"),
    }
}
