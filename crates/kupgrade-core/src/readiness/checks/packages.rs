//! Packages: every version the plan installs is offered by the node's repository, and no
//! package source points at the removed legacy repositories.
use std::collections::BTreeSet;

use crate::plan::packages::manager;
use crate::readiness::finding::{Severity, Subject};

use super::{Ctx, Run, some_of};

/// `packages/not-installable`.
pub(super) fn not_installable(ctx: &Ctx<'_>, run: &mut Run) {
    run.not_applicable = Some("the plan installs no package".into());
    for (n, node) in ctx.plan.nodes.iter().enumerate() {
        let installs = &ctx.timeline.installs[n];
        if installs.is_empty() {
            continue;
        }
        for i in installs {
            if let Some(h) = ctx.timeline.hop_of(i.step) {
                run.hops.insert(h);
            }
        }
        let Some(listings) = ctx.node_fact_or_gap(run, &node.name, |f| &f.packages) else {
            continue;
        };
        let mut unlisted: BTreeSet<String> = BTreeSet::new();
        let mut reported: BTreeSet<(&str, String)> = BTreeSet::new();
        for install in installs {
            let minor = install.version.minor();
            for package in install.packages {
                let name = package.name();
                let Some(listing) = listings
                    .iter()
                    .find(|l| l.minor == minor && l.package == name)
                else {
                    unlisted.insert(format!("{name} in the {minor} repository"));
                    continue;
                };
                run.gaps.looked();
                let wanted = install.version.release();
                if listing.versions.iter().any(|v| v.release() == wanted)
                    || !reported.insert((name, wanted.to_string()))
                {
                    continue;
                }
                let newest = {
                    let mut v: Vec<_> = listing.versions.iter().collect();
                    v.sort();
                    some_of(v.iter().rev().map(|v| v.to_string()), 5)
                };
                let d = run
                    .draft(Severity::Error, Subject::Node { node: node.name.clone() })
                    .message(format!(
                        "the plan installs {name} {wanted} here, which the node's {minor} repository does not offer"
                    ))
                    .fix("make the version available to the node (its repository or mirror), or plan for a version it offers")
                    .evidence(if newest.is_empty() {
                        format!("{name} in the {minor} repository: no versions")
                    } else {
                        format!("{name} in the {minor} repository offers {newest}")
                    });
                run.findings.push(ctx.at_step(d, install.step));
            }
        }
        for what in unlisted {
            run.gaps.missing(
                format!("node {}", node.name),
                format!("no listing of {what}"),
            );
        }
    }
}

/// `packages/legacy-repository`.
pub(super) fn legacy_repository(ctx: &Ctx<'_>, run: &mut Run) {
    run.not_applicable = Some("the plan installs no package".into());
    for (n, node) in ctx.plan.nodes.iter().enumerate() {
        let Some(first) = ctx.timeline.installs[n].first() else {
            continue;
        };
        if let Some(h) = ctx.timeline.hop_of(first.step) {
            run.hops.insert(h);
        }
        let Some(entries) = ctx.node_fact_or_gap(run, &node.name, |f| &f.repositories) else {
            continue;
        };
        run.gaps.looked();
        // The plan rewrites its own repository file before it installs anything.
        let rewritten = manager(node.os).map(|m| m.repository_path());
        for entry in entries {
            if Some(entry.file.as_str()) == rewritten {
                continue;
            }
            let Some(host) = ctx
                .facts
                .legacy_package_hosts()
                .iter()
                .find(|h| entry.line.contains(h.host.as_str()))
            else {
                continue;
            };
            let d = run
                .draft(Severity::Error, Subject::Node { node: node.name.clone() })
                .message(format!(
                    "{} still uses {}: {}; the plan's package index update fails on it",
                    entry.file, host.host, host.effect
                ))
                .fix(format!(
                    "remove that source from {} before the run (the plan writes pkgs.k8s.io's repository itself)",
                    entry.file
                ))
                .evidence(format!("{}: {}", entry.file, entry.line))
                .source(&host.source);
            run.findings.push(ctx.at_step(d, first.step));
            break;
        }
    }
}
