//! APIs in use that a hop removes (`removed-api`) or that stay deprecated past the target
//! (`deprecated-api`), from three tiers of evidence: requests an API server counted,
//! objects written through an API version, manifests that will be applied again.
use std::collections::BTreeMap;

use crate::Minor;
use crate::readiness::evidence::{ApiObject, ApiRequest, Gathered};
use crate::readiness::facts::ApiRemoval;
use crate::readiness::finding::{Severity, Subject};

use super::{Ctx, Run};

/// One use of an API, from one tier.
struct Use<'a> {
    subject: Subject,
    removal: &'a ApiRemoval,
    /// Where it was seen, one line.
    evidence: String,
    /// Replaying it again is certain (a manifest), not only likely.
    replayed: bool,
}

/// Every use found in the tiers that were gathered; the tiers that were not are gaps.
fn uses<'a>(ctx: &Ctx<'a>, run: &mut Run) -> Vec<Use<'a>> {
    let e = ctx.evidence;
    let mut out = Vec::new();
    match &e.api_requests {
        Gathered::Found(list) => {
            run.gaps.looked();
            out.extend(list.iter().filter_map(|r| request_use(ctx, r)));
        }
        Gathered::Missing(m) => run.gaps.missing("requests tier (API server metrics)", m),
    }
    let tiers: [(&Gathered<Vec<ApiObject>>, &str, bool); 2] = [
        (&e.api_writers, "writers tier (managedFields)", false),
        (
            &e.api_manifests,
            "manifests tier (Helm releases, last-applied)",
            true,
        ),
    ];
    for (tier, name, replayed) in tiers {
        match tier {
            Gathered::Found(list) => {
                run.gaps.looked();
                for o in list {
                    if let Some(removal) = ctx.facts.api_removal(&o.api_version, &o.kind) {
                        out.push(Use {
                            subject: Subject::Object {
                                api_version: o.api_version.clone(),
                                kind: o.kind.clone(),
                                namespace: o.namespace.clone(),
                                name: o.name.clone(),
                            },
                            removal,
                            evidence: format!(
                                "{} ({})",
                                o.via,
                                name.split(' ').next().unwrap_or(name)
                            ),
                            replayed,
                        });
                    }
                }
            }
            Gathered::Missing(m) => run.gaps.missing(name, m),
        }
    }
    out
}

fn request_use<'a>(ctx: &Ctx<'a>, r: &ApiRequest) -> Option<Use<'a>> {
    let removal = ctx
        .facts
        .api_removal_by_resource(&r.group_version, &r.resource)?;
    let mut evidence = format!(
        "API server {}: apiserver_requested_deprecated_apis{{group_version={}, resource={}",
        r.api_server, r.group_version, r.resource
    );
    if let Some(s) = &r.subresource {
        evidence.push_str(&format!(", subresource={s}"));
    }
    if let Some(rr) = &r.removed_release {
        evidence.push_str(&format!(", removed_release={rr}"));
    }
    evidence.push('}');
    if let Some(since) = r.since {
        evidence.push_str(&format!(" (counting since {since})"));
    }
    Some(Use {
        subject: Subject::Resource {
            api_version: r.group_version.clone(),
            resource: r.resource.clone(),
        },
        removal,
        evidence,
        replayed: false,
    })
}

/// The hops whose minors cross a release in `releases`.
fn hops_crossing(ctx: &Ctx<'_>, releases: impl Iterator<Item = Minor>, run: &mut Run) {
    for m in releases {
        if let Some(k) = ctx.timeline.hop_reaching(m) {
            run.hops.insert(k);
        }
    }
}

/// Merges uses of one subject into one finding: `(hop, removal, evidence lines)`.
type Merged<'a> = BTreeMap<Subject, (Option<usize>, &'a ApiRemoval, Vec<String>, bool)>;

fn merge<'a>(uses: Vec<Use<'a>>, hop: impl Fn(&Use<'a>) -> Option<Option<usize>>) -> Merged<'a> {
    let mut out: Merged<'a> = BTreeMap::new();
    for u in uses {
        let Some(h) = hop(&u) else { continue };
        let entry = out
            .entry(u.subject.clone())
            .or_insert_with(|| (h, u.removal, Vec::new(), false));
        entry.2.push(u.evidence);
        entry.3 |= u.replayed;
    }
    out
}

fn migrate(r: &ApiRemoval) -> String {
    match r.replacement() {
        Some(to) => format!(
            "move it to {to} (change apiVersion in its manifest, Helm chart or client and apply it again){}",
            r.notes
                .as_deref()
                .filter(|n| !n.is_empty())
                .map(|n| format!("; note: {n}"))
                .unwrap_or_default()
        ),
        None => format!(
            "stop using {} {}: it has no replacement in the same kind",
            r.group_version, r.kind
        ),
    }
}

/// `removed-api`.
pub(super) fn removed(ctx: &Ctx<'_>, run: &mut Run) {
    hops_crossing(
        ctx,
        ctx.facts.api_removals().iter().map(|r| r.removed_in),
        run,
    );
    let start = ctx.timeline.start_minor();
    let merged = merge(uses(ctx, run), |u| {
        let m = u.removal.removed_in;
        if m <= start {
            // Already gone: only a manifest applied again still fails on it.
            return u.replayed.then_some(None);
        }
        ctx.timeline.hop_reaching(m).map(Some)
    });
    for (subject, (hop, r, evidence, replayed)) in merged {
        let when = match hop {
            Some(k) => format!(
                "Kubernetes {} no longer serves it (hop {} to {})",
                r.removed_in,
                k + 1,
                ctx.plan.hops[k].to
            ),
            None => format!(
                "Kubernetes {} already stopped serving it, so applying the manifest again fails",
                r.removed_in
            ),
        };
        let what = if matches!(subject, Subject::Resource { .. }) {
            format!("clients request {} ({})", r.group_version, r.kind)
        } else if replayed {
            format!(
                "a manifest that will be applied again uses {}",
                r.group_version
            )
        } else {
            format!("a client writes it through {}", r.group_version)
        };
        let mut d = run
            .draft(Severity::Error, subject)
            .message(format!("{what}; {when}"))
            .fix(migrate(r))
            .source(&r.source);
        for e in evidence {
            d = d.evidence(e);
        }
        run.findings.push(d.build(hop));
    }
}

/// `deprecated-api`.
pub(super) fn deprecated(ctx: &Ctx<'_>, run: &mut Run) {
    let target = ctx.timeline.target_minor();
    let start = ctx.timeline.start_minor();
    let lasting =
        |r: &ApiRemoval| r.removed_in > target && r.deprecated_in.is_some_and(|d| d <= target);
    hops_crossing(
        ctx,
        ctx.facts
            .api_removals()
            .iter()
            .filter(|r| lasting(r))
            .filter_map(|r| r.deprecated_in),
        run,
    );
    let merged = merge(uses(ctx, run), |u| {
        let r = u.removal;
        if !lasting(r) {
            return None;
        }
        let d = r.deprecated_in?;
        Some(if d <= start {
            None
        } else {
            ctx.timeline.hop_reaching(d)
        })
    });
    for (subject, (hop, r, evidence, _)) in merged {
        let planned = if r.removal_status.as_deref() == Some("planned") {
            " (planned)"
        } else {
            ""
        };
        let mut d = run
            .draft(Severity::Warning, subject)
            .message(format!(
                "{} is deprecated for {} since {} and removed in {}{planned}, after this plan's target ({target})",
                r.group_version,
                r.kind,
                r.deprecated_in.map(|d| d.to_string()).unwrap_or_default(),
                r.removed_in
            ))
            .fix(migrate(r))
            .source(&r.source);
        for e in evidence {
            d = d.evidence(e);
        }
        run.findings.push(d.build(hop));
    }
}
