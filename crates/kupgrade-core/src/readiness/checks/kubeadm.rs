//! kubeadm: the stored ClusterConfiguration's API version against the kubeadm of each hop,
//! and the kubeadm feature gates it sets against the minors that removed them.
use crate::readiness::evidence::Gathered;
use crate::readiness::finding::{Severity, Subject};

use super::{Ctx, Run};

fn config_subject() -> Subject {
    Subject::Object {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: Some("kube-system".into()),
        name: "kubeadm-config".into(),
    }
}

/// `kubeadm/config-api-version`.
pub(super) fn config_api(ctx: &Ctx<'_>, run: &mut Run) {
    let hops = &ctx.plan.hops;
    if hops.is_empty() {
        run.not_applicable = Some("the plan has no hop".into());
        return;
    }
    run.hops.extend(0..hops.len());
    let cfg = match &ctx.evidence.kubeadm_config {
        Gathered::Found(c) => c,
        Gathered::Missing(m) => return run.missing("kubeadm's stored ClusterConfiguration", m),
    };
    let Some(mut stored) = ctx.facts.kubeadm_config_api(&cfg.api_version) else {
        run.gaps.missing(
            format!("ClusterConfiguration {}", cfg.api_version),
            "the facts table does not know this API version",
        );
        return;
    };
    run.gaps.looked();
    for (k, hop) in hops.iter().enumerate() {
        let m = hop.to.minor();
        if !stored.read_by(m) {
            let last = stored
                .removed_in
                .and_then(|r| r.prev())
                .map(|p| p.to_string())
                .unwrap_or_else(|| "an older minor".into());
            let d = run
                .draft(Severity::Error, config_subject())
                .message(format!(
                    "kubeadm's stored ClusterConfiguration is {}, which kubeadm {m} no longer reads{}: kubeadm upgrade fails at hop {} ({})",
                    stored.version,
                    stored.removed_in.map(|r| format!(" (removed in {r})")).unwrap_or_default(),
                    k + 1,
                    hop.to
                ))
                .fix(format!(
                    "before this hop, store the ClusterConfiguration in a version kubeadm {m} reads: kubeadm {last} migrates it (kubeadm config migrate), and its kubeadm upgrade apply rewrites the ConfigMap in the newest version it knows"
                ))
                .evidence(format!(
                    "kube-system/kubeadm-config ClusterConfiguration apiVersion: {}",
                    cfg.api_version
                ))
                .source(&stored.source);
            run.findings.push(d.build(Some(k)));
            return;
        }
        // kubeadm upgrade apply stores the configuration again, in the newest version it knows.
        if let Some(written) = ctx.facts.kubeadm_config_written_by(m) {
            stored = written;
        }
    }
}

/// `kubeadm/feature-gate-removed`.
pub(super) fn feature_gates(ctx: &Ctx<'_>, run: &mut Run) {
    for r in ctx.facts.kubeadm_feature_gates_removed() {
        if let Some(k) = ctx.timeline.hop_reaching(r.removed_in) {
            run.hops.insert(k);
        }
    }
    let cfg = match &ctx.evidence.kubeadm_config {
        Gathered::Found(c) => c,
        Gathered::Missing(m) => return run.missing("kubeadm's stored ClusterConfiguration", m),
    };
    run.gaps.looked();
    let start = ctx.timeline.start_minor();
    for (gate, value) in &cfg.feature_gates {
        let Some(row) = ctx
            .facts
            .kubeadm_feature_gates_removed()
            .iter()
            .find(|r| &r.gate == gate)
        else {
            continue;
        };
        let hop = if row.removed_in <= start {
            None
        } else {
            match ctx.timeline.hop_reaching(row.removed_in) {
                Some(k) => Some(k),
                None => continue,
            }
        };
        let at = match hop {
            Some(k) => format!(
                "kubeadm refuses the configuration at hop {} ({})",
                k + 1,
                ctx.plan.hops[k].to
            ),
            None => "kubeadm refuses the configuration now".into(),
        };
        let d = run
            .draft(Severity::Error, config_subject())
            .message(format!(
                "kubeadm's ClusterConfiguration sets the feature gate {gate}={value}, which kubeadm {} removed: {at}",
                row.removed_in
            ))
            .fix(format!(
                "remove {gate} from featureGates in kube-system/kubeadm-config before that hop"
            ))
            .evidence(format!("ClusterConfiguration featureGates: {gate}: {value}"))
            .source(&row.source);
        run.findings.push(d.build(hop));
    }
}
