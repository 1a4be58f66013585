//! Resolving the target and computing the control plane's hops.
use jiff::civil::Date;

use crate::lifecycle::{ReleaseCalendar, SupportStatus};
use crate::{KubeVersion, Minor};

use super::{AddonsAt, Hop, HopKind, PlanError, PlanOptions, Target, TargetError};

/// kubeadm moves kube-proxy and CoreDNS when the last control-plane node is upgraded since
/// 1.28 (the `UpgradeAddonsBeforeControlPlane` feature gate, default off, removed in 1.31);
/// before, `kubeadm upgrade apply` moved them on the first node.
pub(crate) const ADDONS_AFTER_CONTROL_PLANE: Minor = Minor::new(1, 28);

/// The exact version a target means on `date`, refused when it is not acceptable.
pub(crate) fn resolve(
    target: &Target,
    calendar: &ReleaseCalendar,
    date: Date,
    options: &PlanOptions,
) -> Result<KubeVersion, PlanError> {
    let version = match target {
        Target::Version(v) => v.clone(),
        Target::Minor(m) => calendar
            .latest_patch_on(*m, date)
            .ok_or(TargetError::NoRelease { minor: *m, date })?,
        Target::Stable => calendar
            .newest_stable(Some(date))
            .ok_or(TargetError::NoRelease {
                minor: Minor::new(1, 0),
                date,
            })?,
    };
    if version.vendor().is_some() || version.build().is_some() {
        return Err(TargetError::VendorTarget {
            release: KubeVersion::new(version.major(), version.minor_number(), version.patch()),
            version,
        }
        .into());
    }
    if !version.is_stable() && !options.allow_prerelease {
        return Err(TargetError::PreRelease {
            phase: version.phase(),
            version,
        }
        .into());
    }
    if version.is_stable() && !calendar.knows(&version) && !options.allow_unknown_versions {
        return Err(TargetError::UnknownVersion {
            version,
            as_of: calendar.as_of(),
        }
        .into());
    }
    Ok(version)
}

/// Whether the target's minor is supported on `date`; `Err` with its status when it is not.
pub(crate) fn supported(
    version: &KubeVersion,
    calendar: &ReleaseCalendar,
    date: Date,
) -> Result<String, String> {
    let answer = calendar.status(version.minor(), date);
    let words = answer.to_string();
    match answer.status {
        SupportStatus::Supported { .. } | SupportStatus::MaintenanceMode { .. } => Ok(words),
        SupportStatus::Unknown if !version.is_stable() => Ok("a pre-release".to_string()),
        _ => Err(words),
    }
}

/// The hops from a control plane whose API servers run `lo` to `hi` (different versions mean
/// a hop under way) to `target`.
pub(crate) fn hops(
    lo: &KubeVersion,
    hi: &KubeVersion,
    target: &KubeVersion,
    calendar: &ReleaseCalendar,
    date: Date,
    options: &PlanOptions,
    control_plane_nodes: usize,
) -> Result<Vec<Hop>, PlanError> {
    let (lo, hi) = (lo.release(), hi.release());
    if target < &hi || target.minor() < hi.minor() {
        return Err(TargetError::Downgrade {
            from: hi,
            to: target.clone(),
        }
        .into());
    }
    if target.major() != hi.major() {
        return Err(TargetError::MajorChange {
            from: hi,
            to: target.clone(),
        }
        .into());
    }
    let mut out: Vec<(KubeVersion, KubeVersion, HopKind)> = Vec::new();
    let mut cur = lo.clone();
    if hi != lo {
        out.push((lo, hi.clone(), HopKind::Resume));
        cur = hi;
    }
    if options.patch_first
        && cur.minor() < target.minor()
        && let Some(latest) = calendar.latest_patch_on(cur.minor(), date)
        && latest > cur
    {
        out.push((cur, latest.clone(), HopKind::Patch));
        cur = latest;
    }
    if cur.minor() == target.minor() {
        if &cur < target {
            out.push((cur, target.clone(), HopKind::Patch));
        }
    } else {
        let mut m = cur.minor();
        while m < target.minor() {
            m = m.next();
            let to = if m == target.minor() {
                target.clone()
            } else {
                calendar
                    .latest_patch_on(m, date)
                    .ok_or(TargetError::NoRelease { minor: m, date })?
            };
            out.push((cur, to.clone(), HopKind::Minor));
            cur = to;
        }
    }
    Ok(out
        .into_iter()
        .map(|(from, to, kind)| {
            let bundle = calendar.bundled(to.minor());
            Hop {
                etcd: bundle.and_then(|b| b.etcd.clone()),
                coredns: bundle.and_then(|b| b.coredns.clone()),
                addons_at: if to.minor() >= ADDONS_AFTER_CONTROL_PLANE && control_plane_nodes > 1 {
                    AddonsAt::LastControlPlaneNode
                } else {
                    AddonsAt::Apply
                },
                from,
                to,
                kind,
            }
        })
        .collect())
}
