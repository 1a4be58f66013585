//! The control plane: etcd's floor before 3.6 and a custom etcd image, certificates that
//! expire before the run ends, control-plane kubelets that could outrun an API server.
use jiff::Timestamp;

use crate::plan::{Action, PlanNode};
use crate::readiness::evidence::{Certificate, Gathered};
use crate::readiness::finding::{Severity, Subject};
use crate::{KubeVersion, Role};

use super::{Ctx, Run};

fn control_plane<'p>(ctx: &Ctx<'p>) -> impl Iterator<Item = (usize, &'p PlanNode)> + 'p {
    ctx.plan
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.role == Role::ControlPlane && !n.provisioned)
}

/// The step of hop `k` whose kubeadm upgrades node `n`'s control plane.
fn kubeadm_step(ctx: &Ctx<'_>, k: usize, node: &PlanNode) -> Option<usize> {
    ctx.plan.steps.iter().position(|s| {
        s.hop == Some(k)
            && s.nodes.iter().any(|x| *x == node.name)
            && matches!(
                s.action,
                Action::KubeadmUpgradeApply { .. }
                    | Action::KubeadmUpgradeNode {
                        control_plane: Some(_),
                        ..
                    }
            )
    })
}

/// `etcd/below-3.6-floor`.
pub(super) fn etcd_floor(ctx: &Ctx<'_>, run: &mut Run) {
    let hops = &ctx.plan.hops;
    if let Gathered::Found(cfg) = &ctx.evidence.kubeadm_config {
        if cfg.external_etcd {
            run.not_applicable = Some("etcd is external: kubeadm does not upgrade it".into());
            return;
        }
        if cfg.etcd_image_tag.is_some() {
            run.not_applicable =
                Some("kubeadm-config pins etcd's image: kubeadm does not upgrade it".into());
            return;
        }
    }
    for floor in ctx.facts.etcd_floors() {
        let crosses = |k: usize| {
            hops[k]
                .etcd
                .as_ref()
                .is_some_and(|e| e.minor() >= floor.before)
        };
        let Some(first) = (0..hops.len()).find(|&k| crosses(k)) else {
            continue;
        };
        run.hops.insert(first);
        for (_, node) in control_plane(ctx) {
            let Some(etcd) = ctx.node_fact_or_gap(run, &node.name, |f| &f.etcd) else {
                continue;
            };
            run.gaps.looked();
            // etcd's version when each hop starts: kubeadm moves it forward, never back.
            let mut current: KubeVersion = etcd.version.clone();
            for (k, hop) in hops.iter().enumerate() {
                let Some(next) = &hop.etcd else { continue };
                if next.release() <= current.release() {
                    continue;
                }
                if next.minor() >= floor.before
                    && current.minor() < floor.before
                    && current.release() < floor.minimum.release()
                {
                    let d = run
                        .draft(Severity::Error, Subject::Node { node: node.name.clone() })
                        .message(format!(
                            "its etcd runs {} when hop {} ({}) moves it to {}: {}",
                            current.to_plain_string(),
                            k + 1,
                            hop.to,
                            next.to_plain_string(),
                            floor.effect
                        ))
                        .fix(format!(
                            "move every etcd member to {} or later before hop {} (for example a newer patch of the current kubeadm, or etcd.local.imageTag in kubeadm's ClusterConfiguration and kubeadm upgrade apply of the current version)",
                            floor.minimum.to_plain_string(),
                            k + 1
                        ))
                        .evidence(format!("etcd static pod image tag: {}", etcd.version.to_plain_string()))
                        .source(&floor.source);
                    run.findings.push(match kubeadm_step(ctx, k, node) {
                        Some(step) => ctx.at_step(d, step),
                        None => d.build(Some(k)),
                    });
                    break;
                }
                current = next.clone();
            }
        }
    }
    if run.hops.is_empty() {
        run.not_applicable = Some("no hop moves etcd to a minor with a floor".into());
    }
}

/// `etcd/custom-image`.
pub(super) fn etcd_custom_image(ctx: &Ctx<'_>, run: &mut Run) {
    let first = ctx.plan.hops.iter().position(|h| h.etcd.is_some());
    let Some(k) = first else {
        run.not_applicable = Some("no hop moves etcd".into());
        return;
    };
    run.hops.insert(k);
    let cfg = match &ctx.evidence.kubeadm_config {
        Gathered::Found(c) => c,
        Gathered::Missing(m) => return run.missing("kubeadm's stored ClusterConfiguration", m),
    };
    run.gaps.looked();
    let Some(tag) = &cfg.etcd_image_tag else {
        return;
    };
    if cfg.external_etcd {
        return;
    }
    let hop = &ctx.plan.hops[k];
    let ships = hop
        .etcd
        .as_ref()
        .map(KubeVersion::to_plain_string)
        .unwrap_or_default();
    let d = run
        .draft(Severity::Warning, Subject::Cluster)
        .message(format!(
            "kube-system/kubeadm-config sets etcd.local.imageTag {tag}: kubeadm leaves etcd there instead of deploying {ships} with {}, so etcd falls behind what each hop is tested with",
            hop.to
        ))
        .fix("remove etcd.local.imageTag before the run (kubeadm then upgrades etcd), or upgrade etcd yourself at each hop")
        .evidence(format!("ClusterConfiguration etcd.local.imageTag: {tag}"));
    run.findings.push(d.build(Some(k)));
}

/// `certs/expire-during-upgrade`.
pub(super) fn certificates(ctx: &Ctx<'_>, run: &mut Run) {
    let t = &ctx.timeline;
    let end = t.end();
    run.not_applicable = Some("the plan has no control-plane node".into());
    for (_, node) in control_plane(ctx) {
        let Some(info) = ctx.node_fact_or_gap(run, &node.name, |f| &f.certificates) else {
            continue;
        };
        run.gaps.looked();
        // kubeadm renews the certificates it manages when it upgrades the node.
        let renewed_at: Option<Timestamp> = ctx
            .plan
            .steps
            .iter()
            .position(|s| {
                s.nodes.iter().any(|x| *x == node.name)
                    && matches!(
                        s.action,
                        Action::KubeadmUpgradeApply { .. }
                            | Action::KubeadmUpgradeNode {
                                control_plane: Some(_),
                                ..
                            }
                    )
            })
            .map(|i| t.step_time(i));
        let all = info
            .certificates
            .iter()
            .map(|c| (c, false))
            .chain(info.certificate_authorities.iter().map(|c| (c, true)));
        for (cert, is_ca) in all {
            if cert.missing || cert.expiration_date >= end {
                continue;
            }
            let renewable = !is_ca && !cert.externally_managed;
            if renewable && renewed_at.is_some_and(|r| r < cert.expiration_date) {
                continue;
            }
            expiring(ctx, run, node, cert, is_ca, end);
        }
    }
}

fn expiring(
    ctx: &Ctx<'_>,
    run: &mut Run,
    node: &PlanNode,
    cert: &Certificate,
    is_ca: bool,
    end: Timestamp,
) {
    let t = &ctx.timeline;
    let exp = cert.expiration_date;
    let step = t.step_at(exp);
    let hop = step.and_then(|s| t.hop_of(s));
    if let Some(h) = hop {
        run.hops.insert(h);
    }
    let what = if is_ca {
        "it is a CA, which kubeadm never renews"
    } else if cert.externally_managed {
        "it is managed outside kubeadm, which does not renew it"
    } else {
        "kubeadm renews it only when it upgrades this node, after it expires"
    };
    let when = if exp <= t.start {
        "it has expired".to_string()
    } else {
        format!("it expires before the run's estimated end ({end})")
    };
    let fix = if is_ca {
        "renew the CA and the certificates it signed before the run (see kubeadm's certificate management)".to_string()
    } else if cert.externally_managed {
        "renew it through whatever manages it, before the run".to_string()
    } else {
        format!("renew it before the run: kubeadm certs renew {}", cert.name)
    };
    let d = run
        .draft(
            Severity::Error,
            Subject::Certificate {
                node: node.name.clone(),
                name: cert.name.clone(),
            },
        )
        .message(format!("{} expires on {exp}: {when}; {what}", cert.name))
        .fix(fix)
        .evidence(format!(
            "kubeadm certs check-expiration: {} expirationDate {exp}, residualTime {}s",
            cert.name, cert.residual_time_seconds
        ));
    run.findings.push(match step {
        Some(s) if exp > t.start => ctx.at_step(d, s),
        _ => d.build(None),
    });
}

/// `kubelet/server-behind-load-balancer`.
pub(super) fn kubelet_server(ctx: &Ctx<'_>, run: &mut Run) {
    let hops = ctx.plan.hops.len();
    // Per hop, the last step that moves an API server.
    let mut last_apiserver: Vec<Option<usize>> = vec![None; hops];
    for (i, s) in ctx.plan.steps.iter().enumerate() {
        if let (Some(k), true) = (
            s.hop,
            matches!(
                s.action,
                Action::KubeadmUpgradeApply { .. }
                    | Action::KubeadmUpgradeNode {
                        control_plane: Some(_),
                        ..
                    }
            ),
        ) && k < hops
        {
            last_apiserver[k] = Some(i);
        }
    }
    run.not_applicable = Some("no control-plane kubelet moves".into());
    for (n, node) in control_plane(ctx) {
        let moves = &ctx.timeline.kubelet_moves[n];
        if moves.is_empty() {
            continue;
        }
        for &(step, _) in moves {
            if let Some(h) = ctx.timeline.hop_of(step) {
                run.hops.insert(h);
            }
        }
        let Some(server) = ctx.node_fact_or_gap(run, &node.name, |f| &f.kubelet_server) else {
            continue;
        };
        run.gaps.looked();
        if server.is_local() {
            continue;
        }
        for &(step, version) in moves {
            let Some(k) = ctx.timeline.hop_of(step) else {
                continue;
            };
            let Some(last) = last_apiserver.get(k).copied().flatten() else {
                continue;
            };
            if step > last {
                continue;
            }
            let d = run
                .draft(Severity::Error, Subject::Node { node: node.name.clone() })
                .message(format!(
                    "its kubelet talks to {} (not its own API server) and moves to {version} before every API server does: behind that address it can reach an older API server, which the skew policy forbids",
                    server.server
                ))
                .fix("move control-plane kubelets only after every API server of the hop (kupgrade's own plans do), or point the kubelet at its local API server")
                .evidence(format!("kubelet.conf server: {}", server.server));
            run.findings.push(ctx.at_step(d, step));
            break;
        }
    }
}
