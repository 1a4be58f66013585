//! Nodes: cgroup v1 and the container runtime against the kubelet minors each node reaches,
//! free disk where the plan writes.
use std::collections::BTreeSet;

use crate::readiness::evidence::{DiskSpace, NodeFacts};
use crate::readiness::facts::{DiskPurpose, RuntimeFloor};
use crate::readiness::finding::{Severity, Subject};
use crate::{KubeVersion, Minor, NodeName};

use super::{Ctx, Run};

fn node_subject(name: &NodeName) -> Subject {
    Subject::Node { node: name.clone() }
}

/// `node/cgroup-v1`.
pub(super) fn cgroup_v1(ctx: &Ctx<'_>, run: &mut Run) {
    let rules = ctx.facts.cgroup_v1();
    let Some(first) = rules.first() else {
        run.not_applicable = Some("the facts table has no cgroup rule".into());
        return;
    };
    run.not_applicable = Some(format!("no kubelet reaches {}", first.kubelet_from));
    for (n, node) in ctx.plan.nodes.iter().enumerate() {
        // The rule in force when the kubelet first reaches a ruled minor.
        let Some((step, version)) = ctx.timeline.kubelet_reaches(n, first.kubelet_from) else {
            continue;
        };
        let Some(rule) = ctx.facts.cgroup_rule(version.minor()) else {
            continue;
        };
        let hop = ctx.timeline.hop_of(step);
        if let Some(h) = hop {
            run.hops.insert(h);
        }
        let Some(cgroup) = ctx.node_fact_or_gap(run, &node.name, |f| &f.cgroup) else {
            continue;
        };
        run.gaps.looked();
        if !cgroup.is_v1() {
            continue;
        }
        let fs = cgroup.fs_type.trim();
        let setting = rule.setting.as_deref().unwrap_or("failCgroupV1");
        let d = if cgroup.fail_cgroup_v1 == Some(false) {
            run.draft(Severity::Warning, node_subject(&node.name))
                .message(format!(
                    "it runs cgroup v1 ({fs}) and its kubelet moves to {version} here; it starts only because its configuration sets {setting}: false, on a deprecated setup"
                ))
                .fix("move the node to cgroup v2 (a distribution that boots with the unified hierarchy)")
        } else {
            run.draft(rule.severity, node_subject(&node.name))
                .message(format!(
                    "it runs cgroup v1 ({fs}) and its kubelet moves to {version} here: {}",
                    rule.effect
                ))
                .fix(format!(
                    "move the node to cgroup v2 before this hop (a distribution that boots with the unified hierarchy, or systemd.unified_cgroup_hierarchy=1 on the kernel command line), or set {setting}: false in its kubelet configuration to keep a deprecated setup running"
                ))
        };
        let d = d
            .evidence(format!("stat -fc %T /sys/fs/cgroup: {fs}"))
            .source(&rule.source);
        run.findings.push(ctx.at_step(d, step));
    }
}

/// `containerd://1.7.24` as (`containerd`, `1.7.24`).
fn runtime_version(text: &str) -> Option<(&str, KubeVersion)> {
    let (name, version) = text.trim().split_once("://")?;
    let version = version.trim_start_matches('v');
    let plain = version.split(['-', '+', '~']).next().unwrap_or(version);
    Some((name, KubeVersion::parse(plain).ok()?))
}

/// The node's runtime, or a gap recorded.
fn runtime<'a>(ctx: &Ctx<'a>, run: &mut Run, node: &NodeName) -> Option<(&'a str, KubeVersion)> {
    let text = match ctx.node_fact(node.as_str(), |f: &'a NodeFacts| &f.runtime) {
        Ok(t) => t,
        Err(m) => {
            run.gaps.missing(format!("node {node}"), m);
            return None;
        }
    };
    match runtime_version(text) {
        Some(r) => {
            run.gaps.looked();
            Some(r)
        }
        None => {
            run.gaps.missing(
                format!("node {node}"),
                format!("runtime version {text:?} not understood"),
            );
            None
        }
    }
}

/// The first floor `version` of `runtime` falls below when the kubelet reaches `m`.
fn floor_below<'f>(
    floors: &'f [RuntimeFloor],
    runtime: &str,
    m: Minor,
    v: &KubeVersion,
) -> Option<&'f RuntimeFloor> {
    floors
        .iter()
        .filter(|f| f.runtime == runtime && f.kubelet_from <= m)
        .find(|f| v.release() < f.below.release())
}

/// `node/containerd-1x`.
pub(super) fn runtime_floor(ctx: &Ctx<'_>, run: &mut Run) {
    let floors = ctx.facts.runtime_floors();
    let Some(lowest) = floors.iter().map(|f| f.kubelet_from).min() else {
        run.not_applicable = Some("the facts table has no runtime floor".into());
        return;
    };
    run.not_applicable = Some(format!("no kubelet reaches {lowest}"));
    for (n, node) in ctx.plan.nodes.iter().enumerate() {
        if ctx.timeline.kubelet_reaches(n, lowest).is_none() {
            continue;
        }
        let Some((name, version)) = runtime(ctx, run, &node.name) else {
            continue;
        };
        for &(step, kubelet) in &ctx.timeline.kubelet_moves[n] {
            let Some(floor) = floor_below(floors, name, kubelet.minor(), &version) else {
                continue;
            };
            let hop = ctx.timeline.hop_of(step);
            if let Some(h) = hop {
                run.hops.insert(h);
            }
            let planned = if floor.planned { " (announced)" } else { "" };
            let d = run
                .draft(floor.severity, node_subject(&node.name))
                .message(format!(
                    "it runs {name} {} and its kubelet moves to {kubelet} here: {}{planned}",
                    version.to_plain_string(),
                    floor.effect
                ))
                .fix(format!(
                    "upgrade {name} on the node to {} or later before this hop",
                    floor.below.to_plain_string()
                ))
                .evidence(format!(
                    "containerRuntimeVersion: {name}://{}",
                    version.to_plain_string()
                ))
                .source(&floor.source);
            run.findings.push(ctx.at_step(d, step));
            break;
        }
    }
}

/// `node/runtime-version`.
pub(super) fn runtime_matrix(ctx: &Ctx<'_>, run: &mut Run) {
    let mut unknown_minors: BTreeSet<Minor> = BTreeSet::new();
    run.not_applicable = Some("no kubelet moves".into());
    for (n, node) in ctx.plan.nodes.iter().enumerate() {
        let moves = &ctx.timeline.kubelet_moves[n];
        if moves.is_empty() {
            continue;
        }
        let Some((name, version)) = runtime(ctx, run, &node.name) else {
            continue;
        };
        for &(step, kubelet) in moves {
            let m = kubelet.minor();
            if floor_below(ctx.facts.runtime_floors(), name, m, &version).is_some() {
                break; // node/containerd-1x reports it
            }
            let Some(row) = ctx.facts.runtime_row(name, m) else {
                if name == "containerd" {
                    unknown_minors.insert(m);
                }
                continue;
            };
            if let Some(h) = ctx.timeline.hop_of(step) {
                run.hops.insert(h);
            }
            if row.recommends(&version) {
                continue;
            }
            let supported: Vec<String> = row
                .supported
                .iter()
                .map(|v| format!("{}+", v.to_plain_string()))
                .collect();
            let d = run
                .draft(Severity::Warning, node_subject(&node.name))
                .message(format!(
                    "it runs {name} {} and its kubelet moves to {kubelet} here; {name} recommends {} for Kubernetes {m}",
                    version.to_plain_string(),
                    supported.join(", ")
                ))
                .fix(format!("upgrade {name} to one of the recommended versions"))
                .source(&row.source);
            run.findings.push(ctx.at_step(d, step));
            break;
        }
    }
    for m in unknown_minors {
        run.gaps.missing(
            format!("kubelet {m}"),
            "the containerd support matrix has no row for it",
        );
    }
}

/// `node/disk-space`.
pub(super) fn disk_space(ctx: &Ctx<'_>, run: &mut Run) {
    run.not_applicable = Some("the plan writes nothing on nodes".into());
    let t = &ctx.timeline;
    for (n, node) in ctx.plan.nodes.iter().enumerate() {
        let Some(step) = t.first_write[n] else {
            continue;
        };
        let mut needs: Vec<(DiskPurpose, u64)> = Vec::new();
        let floor = |p| ctx.facts.disk_floor(p).map_or(0, |f| f.min_free_mib);
        if !t.installs[n].is_empty() {
            needs.push((DiskPurpose::Packages, floor(DiskPurpose::Packages)));
        }
        if t.backups[n] + t.snapshots[n] > 0 {
            let db = ctx
                .node_fact(node.name.as_str(), |f| &f.etcd)
                .ok()
                .and_then(|e| e.db_size_bytes)
                .unwrap_or(0);
            let snapshots = (t.snapshots[n] as u64).saturating_mul(db) / (1024 * 1024);
            needs.push((
                DiskPurpose::Backups,
                floor(DiskPurpose::Backups) + snapshots,
            ));
        }
        if let Some(h) = t.hop_of(step) {
            run.hops.insert(h);
        }
        let Some(disk) = ctx.node_fact_or_gap(run, &node.name, |f| &f.disk) else {
            continue;
        };
        for (purpose, need) in needs {
            let Some(space) = disk.iter().find(|d| d.purpose == purpose) else {
                run.gaps.missing(
                    format!("node {} ({purpose})", node.name),
                    "no free-space figure for it",
                );
                continue;
            };
            run.gaps.looked();
            low_disk(ctx, run, node, step, space, need);
        }
    }
}

fn low_disk(
    ctx: &Ctx<'_>,
    run: &mut Run,
    node: &crate::plan::PlanNode,
    step: usize,
    space: &DiskSpace,
    need: u64,
) {
    let free = space.free_bytes / (1024 * 1024);
    if free >= need {
        return;
    }
    let source = ctx
        .facts
        .disk_floor(space.purpose)
        .map(|f| f.source.clone())
        .unwrap_or_default();
    let d = run
        .draft(Severity::Error, node_subject(&node.name))
        .message(format!(
            "{free} MiB free on {} ({}), where the plan needs at least {need} MiB",
            space.path, space.purpose
        ))
        .fix(format!("free space on {} before the run", space.path))
        .evidence(format!("{}: {} bytes free", space.path, space.free_bytes))
        .source(&source);
    run.findings.push(ctx.at_step(d, step));
}
