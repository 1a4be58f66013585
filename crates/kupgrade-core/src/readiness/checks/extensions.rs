//! Extensions of the API that a drain can take away: admission webhooks that fail closed,
//! aggregated APIs, CRD conversion webhooks.
use crate::readiness::evidence::{Backend, Gathered};
use crate::readiness::finding::{Severity, Subject};

use super::{Ctx, Run, some_of};

/// Where a service's backends stand against the plan's drains.
enum Exposure {
    /// No ready backend now.
    NoneReady,
    /// Every ready backend sits on the nodes of one drain (an index into the drains), before
    /// any of them moved.
    OneDrain(usize),
    /// Spread over drains, or on nodes no drain touches.
    Spread,
}

fn exposure(ctx: &Ctx<'_>, backends: &[Backend]) -> Exposure {
    let mut ready = backends.iter().filter(|b| b.ready).peekable();
    if ready.peek().is_none() {
        return Exposure::NoneReady;
    }
    let mut first: Option<usize> = None;
    for b in ready {
        let Some(node) = &b.node else {
            return Exposure::Spread;
        };
        match (ctx.timeline.first_drain_of(node.as_str()), first) {
            (None, _) => return Exposure::Spread,
            (Some(d), None) => first = Some(d),
            (Some(d), Some(f)) if d == f => {}
            _ => return Exposure::Spread,
        }
    }
    first.map_or(Exposure::Spread, Exposure::OneDrain)
}

fn pods(backends: &[Backend]) -> String {
    some_of(
        backends.iter().filter(|b| b.ready).map(|b| match &b.node {
            Some(n) => format!("{} on {n}", b.pod),
            None => b.pod.clone(),
        }),
        5,
    )
}

fn drain_hops(ctx: &Ctx<'_>, run: &mut Run) {
    for &i in &ctx.timeline.drains {
        if let Some(h) = ctx.timeline.hop_of(i) {
            run.hops.insert(h);
        }
    }
}

/// `webhook/fail-closed-on-drained-node`.
pub(super) fn webhooks(ctx: &Ctx<'_>, run: &mut Run) {
    drain_hops(ctx, run);
    let list = match &ctx.evidence.webhooks {
        Gathered::Found(l) => l,
        Gathered::Missing(m) => return run.missing("admission webhooks", m),
    };
    run.gaps.looked();
    for w in list.iter().filter(|w| w.failure_policy == "Fail") {
        let Some(service) = &w.service else { continue };
        let subject = Subject::Object {
            api_version: "admissionregistration.k8s.io/v1".into(),
            kind: w.configuration_kind.clone(),
            namespace: None,
            name: w.configuration.clone(),
        };
        let fix = "run two or more backends on different nodes (topology spread or anti-affinity), or set failurePolicy: Ignore for the upgrade";
        match exposure(ctx, &w.backends) {
            Exposure::NoneReady => {
                let d = run
                    .draft(Severity::Error, subject)
                    .message(format!(
                        "webhook {} fails closed and its service {service} has no ready backend: every request it intercepts is refused now",
                        w.name
                    ))
                    .fix(fix);
                run.findings.push(d.build(None));
            }
            Exposure::OneDrain(d) => {
                let step = ctx.timeline.drains[d];
                let f = run
                    .draft(Severity::Error, subject)
                    .message(format!(
                        "webhook {} fails closed and every ready backend of {service} runs on nodes the drain of {} evicts: requests it intercepts are refused until a backend is ready elsewhere (if it intercepts pods, their replacements too)",
                        w.name,
                        ctx.step_nodes(step)
                    ))
                    .fix(fix)
                    .evidence(format!("backends: {}", pods(&w.backends)));
                run.findings.push(ctx.at_step(f, step));
            }
            Exposure::Spread => {}
        }
    }
}

/// `apiservice/unavailable`.
pub(super) fn api_services(ctx: &Ctx<'_>, run: &mut Run) {
    drain_hops(ctx, run);
    let list = match &ctx.evidence.api_services {
        Gathered::Found(l) => l,
        Gathered::Missing(m) => return run.missing("APIServices", m),
    };
    run.gaps.looked();
    for a in list {
        let subject = Subject::Object {
            api_version: "apiregistration.k8s.io/v1".into(),
            kind: "APIService".into(),
            namespace: None,
            name: a.name.clone(),
        };
        if !a.available {
            let d = run
                .draft(Severity::Error, subject)
                .message(format!(
                    "the aggregated API is not available{}: discovery of its group fails, which stalls namespace deletion and garbage collection and can fail kubectl drain and kubeadm's checks",
                    a.message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default()
                ))
                .fix("repair its backend, or delete the APIService if nothing uses it, before the run");
            run.findings.push(d.build(None));
            continue;
        }
        if a.service.is_none() {
            continue;
        }
        if let Exposure::OneDrain(d) = exposure(ctx, &a.backends) {
            let step = ctx.timeline.drains[d];
            let f = run
                .draft(Severity::Warning, subject)
                .message(format!(
                    "every ready backend of the aggregated API runs on nodes the drain of {} evicts: its group is unavailable until one is ready elsewhere",
                    ctx.step_nodes(step)
                ))
                .fix("run two or more backends on different nodes")
                .evidence(format!("backends: {}", pods(&a.backends)));
            run.findings.push(ctx.at_step(f, step));
        }
    }
}

/// `crd/conversion-webhook`.
pub(super) fn crds(ctx: &Ctx<'_>, run: &mut Run) {
    drain_hops(ctx, run);
    let list = match &ctx.evidence.crds {
        Gathered::Found(l) => l,
        Gathered::Missing(m) => return run.missing("CustomResourceDefinitions", m),
    };
    run.gaps.looked();
    for c in list {
        let Some(service) = &c.conversion_service else {
            continue;
        };
        let subject = Subject::Object {
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            namespace: None,
            name: c.name.clone(),
        };
        match exposure(ctx, &c.backends) {
            Exposure::NoneReady => {
                let d = run
                    .draft(Severity::Error, subject)
                    .message(format!(
                        "its conversion webhook {service} has no ready backend: reading or writing its resources in another version fails now"
                    ))
                    .fix("repair the conversion webhook before the run");
                run.findings.push(d.build(None));
            }
            Exposure::OneDrain(d) => {
                let step = ctx.timeline.drains[d];
                let f = run
                    .draft(Severity::Warning, subject)
                    .message(format!(
                        "every ready backend of its conversion webhook {service} runs on nodes the drain of {} evicts: conversions fail until one is ready elsewhere",
                        ctx.step_nodes(step)
                    ))
                    .fix("run two or more backends of the conversion webhook on different nodes")
                    .evidence(format!("backends: {}", pods(&c.backends)));
                run.findings.push(ctx.at_step(f, step));
            }
            Exposure::Spread => {}
        }
    }
}
