//! The catalogue: every check, its stable id, what it needs, and the function that runs it.
//!
//! A check reads the plan (through [`Timeline`]), the evidence and the facts tables, pushes
//! findings, and records what it could not look at ([`Gaps`]); the coverage follows from
//! those. Checks are grouped by what they look at, one file each: API usage (`api.rs`),
//! drains (`drain.rs`), extensions of the API (`extensions.rs`), nodes (`nodes.rs`), the
//! control plane (`control_plane.rs`), kubeadm (`kubeadm.rs`) and packages (`packages.rs`).
//!
//! Adding a check: a function in the right file, and a row in [`CATALOGUE`] with a new id
//! (ids are stable: never rename one, operators accept findings by it).
use std::cell::OnceCell;
use std::collections::BTreeSet;
use std::fmt;

use foldhash::HashMap;
use serde::Serialize;

use crate::plan::{UpgradePlan, render::node_summary};

use super::drain::{DrainForecast, DrainModel};
use super::evidence::{Evidence, Gathered, Missing, NodeFacts};
use super::facts::FactTables;
use super::finding::{Coverage, Finding, Gaps, Severity, Subject};
use super::timeline::Timeline;

mod api;
mod control_plane;
mod drain;
mod extensions;
mod kubeadm;
mod nodes;
mod packages;

/// What the catalogue says about one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckInfo {
    /// The stable id (`removed-api`).
    pub id: &'static str,
    /// What it checks, in a few words.
    pub title: &'static str,
    /// The most severe finding it reports.
    pub severity: Severity,
    /// The evidence it needs.
    pub needs: &'static str,
    /// The facts tables it reads (none for checks of the plan and the evidence only).
    pub tables: &'static [&'static str],
}

/// One row of the catalogue.
pub(crate) struct Check {
    pub info: CheckInfo,
    pub run: fn(&Ctx<'_>, &mut Run),
}

const FACTS: &[&str] = &[super::facts::FACTS_TABLE];
const REMOVALS: &[&str] = &[super::facts::REMOVALS_TABLE];
const NONE: &[&str] = &[];

macro_rules! check {
    ($id:literal, $title:literal, $sev:ident, $needs:literal, $tables:expr, $run:path) => {
        Check {
            info: CheckInfo {
                id: $id,
                title: $title,
                severity: Severity::$sev,
                needs: $needs,
                tables: $tables,
            },
            run: $run,
        }
    };
}

/// Every check, in the order reports list them.
pub(crate) static CATALOGUE: &[Check] = &[
    check!(
        "removed-api",
        "APIs a hop stops serving, still in use",
        Error,
        "API requests (metrics), writers (managedFields), manifests (Helm, last-applied)",
        REMOVALS,
        api::removed
    ),
    check!(
        "deprecated-api",
        "deprecated APIs in use, removed after the target",
        Warning,
        "API requests (metrics), writers (managedFields), manifests (Helm, last-applied)",
        REMOVALS,
        api::deprecated
    ),
    check!(
        "drain/pdb-blocked",
        "drains a PodDisruptionBudget stops",
        Error,
        "pods and PodDisruptionBudgets",
        NONE,
        drain::pdb_blocked
    ),
    check!(
        "drain/deadlock",
        "drains no order of the batches can finish",
        Error,
        "pods and PodDisruptionBudgets",
        NONE,
        drain::deadlock
    ),
    check!(
        "drain/multi-pdb",
        "pods under two or more PodDisruptionBudgets",
        Error,
        "pods and PodDisruptionBudgets",
        NONE,
        drain::multi_pdb
    ),
    check!(
        "drain/bare-pod",
        "pods no controller manages",
        Error,
        "pods",
        NONE,
        drain::bare_pod
    ),
    check!(
        "drain/emptydir",
        "pods with emptyDir data",
        Error,
        "pods",
        NONE,
        drain::emptydir
    ),
    check!(
        "drain/daemonset",
        "DaemonSet pods a drain does not ignore",
        Error,
        "pods",
        NONE,
        drain::daemonset
    ),
    check!(
        "drain/single-replica",
        "single-replica workloads on drained nodes",
        Warning,
        "pods",
        NONE,
        drain::single_replica
    ),
    check!(
        "drain/local-pv",
        "pods bound to local persistent volumes",
        Error,
        "pods",
        NONE,
        drain::local_pv
    ),
    check!(
        "webhook/fail-closed-on-drained-node",
        "fail-closed webhooks served only from one batch",
        Error,
        "admission webhooks and their backends",
        NONE,
        extensions::webhooks
    ),
    check!(
        "apiservice/unavailable",
        "aggregated APIs not available",
        Error,
        "APIServices",
        NONE,
        extensions::api_services
    ),
    check!(
        "crd/conversion-webhook",
        "CRD conversion webhooks without a backend during a drain",
        Error,
        "CustomResourceDefinitions and their backends",
        NONE,
        extensions::crds
    ),
    check!(
        "node/cgroup-v1",
        "cgroup v1 nodes whose kubelet reaches a minor that refuses it",
        Error,
        "each node's cgroup file system",
        FACTS,
        nodes::cgroup_v1
    ),
    check!(
        "node/containerd-1x",
        "container runtimes below a kubelet minor's floor",
        Error,
        "each node's container runtime version",
        FACTS,
        nodes::runtime_floor
    ),
    check!(
        "node/runtime-version",
        "container runtimes below the recommended versions",
        Warning,
        "each node's container runtime version",
        FACTS,
        nodes::runtime_matrix
    ),
    check!(
        "node/disk-space",
        "free disk for packages and backups",
        Error,
        "free space on each node",
        FACTS,
        nodes::disk_space
    ),
    check!(
        "etcd/below-3.6-floor",
        "etcd below the patch etcd requires before 3.6",
        Error,
        "each control-plane node's etcd version",
        FACTS,
        control_plane::etcd_floor
    ),
    check!(
        "etcd/custom-image",
        "a custom etcd image kubeadm will not upgrade",
        Warning,
        "kubeadm's stored ClusterConfiguration",
        NONE,
        control_plane::etcd_custom_image
    ),
    check!(
        "certs/expire-during-upgrade",
        "certificates and CAs that expire before the run ends",
        Error,
        "kubeadm certs check-expiration on each control-plane node",
        NONE,
        control_plane::certificates
    ),
    check!(
        "kubelet/server-behind-load-balancer",
        "control-plane kubelets that could outrun an API server",
        Error,
        "each control-plane kubelet's kubeconfig server",
        NONE,
        control_plane::kubelet_server
    ),
    check!(
        "kubeadm/config-api-version",
        "a stored kubeadm configuration a hop's kubeadm cannot read",
        Error,
        "kubeadm's stored ClusterConfiguration",
        FACTS,
        kubeadm::config_api
    ),
    check!(
        "kubeadm/feature-gate-removed",
        "kubeadm feature gates a hop's kubeadm refuses",
        Error,
        "kubeadm's stored ClusterConfiguration",
        FACTS,
        kubeadm::feature_gates
    ),
    check!(
        "packages/not-installable",
        "package versions a node's repository does not offer",
        Error,
        "package listings on each node",
        NONE,
        packages::not_installable
    ),
    check!(
        "packages/legacy-repository",
        "package sources on the removed legacy repositories",
        Error,
        "package sources on each node",
        FACTS,
        packages::legacy_repository
    ),
];

/// What the checks read, built once per evaluation.
pub(crate) struct Ctx<'a> {
    pub plan: &'a UpgradePlan,
    pub evidence: &'a Evidence,
    pub facts: &'a FactTables,
    pub timeline: Timeline<'a>,
    node_facts: HashMap<&'a str, &'a NodeFacts>,
    drain: OnceCell<Option<(DrainModel<'a>, DrainForecast)>>,
}

impl<'a> Ctx<'a> {
    pub fn new(plan: &'a UpgradePlan, evidence: &'a Evidence, facts: &'a FactTables) -> Self {
        Ctx {
            plan,
            evidence,
            facts,
            timeline: Timeline::new(plan, evidence.gathered_at),
            node_facts: evidence
                .nodes
                .iter()
                .map(|n| (n.node.as_str(), n))
                .collect(),
            drain: OnceCell::new(),
        }
    }

    /// The facts gathered on node `name`.
    pub fn node(&self, name: &str) -> Option<&'a NodeFacts> {
        self.node_facts.get(name).copied()
    }

    /// Fact `pick` of node `name`: found, or why not (a node with no facts at all: not
    /// gathered).
    pub fn node_fact<T>(
        &self,
        name: &str,
        pick: impl Fn(&'a NodeFacts) -> &'a Gathered<T>,
    ) -> Result<&'a T, Missing> {
        match self.node(name) {
            Some(f) => pick(f).get().map_err(Clone::clone),
            None => Err(Missing::new(
                super::evidence::MissingReason::NotGathered,
                "no facts for this node",
            )),
        }
    }

    /// Fact `pick` of `node`; when it was not gathered, a gap in `run`'s coverage naming the
    /// node, and none.
    pub fn node_fact_or_gap<T>(
        &self,
        run: &mut Run,
        node: &crate::NodeName,
        pick: impl Fn(&'a NodeFacts) -> &'a Gathered<T>,
    ) -> Option<&'a T> {
        match self.node_fact(node.as_str(), pick) {
            Ok(found) => Some(found),
            Err(why) => {
                run.gaps.missing(format!("node {node}"), why);
                None
            }
        }
    }

    /// The drain model and the forecast of the plan's drains, computed once; none when the
    /// workloads were not gathered.
    pub fn drains(&self) -> Option<&(DrainModel<'a>, DrainForecast)> {
        self.drain
            .get_or_init(|| {
                let workloads = self.evidence.workloads.found()?;
                let model = DrainModel::new(workloads, &self.plan.options.drain);
                let batches: Vec<&[crate::NodeName]> = self
                    .timeline
                    .drains
                    .iter()
                    .map(|&i| self.timeline.step(i).nodes.as_slice())
                    .collect();
                let forecast = model.forecast(&batches);
                Some((model, forecast))
            })
            .as_ref()
    }

    /// A finding of `check`, placed at step `step` (its hop, its id).
    pub fn at_step(&self, f: FindingDraft, step: usize) -> Finding {
        let mut out = f.build(self.timeline.hop_of(step));
        out.step = Some(self.timeline.step(step).id.clone());
        out
    }

    /// `nodes` of step `i` in a short form (`w-1, w-2 and 3 more`).
    pub fn step_nodes(&self, i: usize) -> String {
        node_summary(self.timeline.step(i).nodes.as_slice(), 3)
    }
}

/// What one check produced while it ran.
pub(crate) struct Run {
    pub id: &'static str,
    pub findings: Vec<Finding>,
    pub gaps: Gaps,
    /// The hops the check applies to, from the data.
    pub hops: BTreeSet<usize>,
    /// Set when nothing at all could be checked.
    pub not_checkable: Option<String>,
    /// Why the check does not apply, when nothing was looked at and nothing was missing.
    pub not_applicable: Option<String>,
}

impl Run {
    pub fn new(id: &'static str) -> Self {
        Run {
            id,
            findings: Vec::new(),
            gaps: Gaps::default(),
            hops: BTreeSet::new(),
            not_checkable: None,
            not_applicable: None,
        }
    }

    /// A finding of this check.
    pub fn draft(&self, severity: Severity, subject: Subject) -> FindingDraft {
        FindingDraft {
            check: self.id,
            severity,
            subject,
            message: String::new(),
            remediation: String::new(),
            evidence: Vec::new(),
            source: None,
        }
    }

    /// Records that `what` is missing entirely: nothing can be checked.
    pub fn missing(&mut self, what: &str, why: &Missing) {
        self.not_checkable = Some(format!("{what}: {why}"));
    }

    /// The check's coverage.
    pub fn coverage(&mut self) -> Coverage {
        if let Some(reason) = self.not_checkable.take() {
            return Coverage::NotCheckable { reason };
        }
        let reason = self
            .not_applicable
            .take()
            .unwrap_or_else(|| "nothing in this plan for it to look at".into());
        std::mem::take(&mut self.gaps).coverage(|| Coverage::NotApplicable { reason })
    }
}

/// A finding being written.
pub(crate) struct FindingDraft {
    check: &'static str,
    severity: Severity,
    subject: Subject,
    message: String,
    remediation: String,
    evidence: Vec<String>,
    source: Option<String>,
}

impl FindingDraft {
    pub fn message(mut self, m: impl fmt::Display) -> Self {
        self.message = m.to_string();
        self
    }
    pub fn fix(mut self, r: impl fmt::Display) -> Self {
        self.remediation = r.to_string();
        self
    }
    pub fn evidence(mut self, e: impl fmt::Display) -> Self {
        self.evidence.push(e.to_string());
        self
    }
    pub fn source(mut self, s: &str) -> Self {
        self.source = Some(s.to_string());
        self
    }
    /// The finding, at `hop` (none: before the first hop).
    pub fn build(self, hop: Option<usize>) -> Finding {
        Finding {
            check: self.check.to_string(),
            severity: self.severity,
            hop,
            step: None,
            subject: self.subject,
            message: self.message,
            remediation: self.remediation,
            evidence: self.evidence,
            source: self.source,
        }
    }
}

/// Names for a list, at most `max` of them, then a count: `a, b, c and 4 more`.
pub(crate) fn some_of<T: fmt::Display>(items: impl IntoIterator<Item = T>, max: usize) -> String {
    let mut names = Vec::new();
    let mut total: usize = 0;
    for item in items {
        if names.len() < max {
            names.push(item.to_string());
        }
        total += 1;
    }
    match total.saturating_sub(names.len()) {
        0 => names.join(", "),
        more => format!("{} and {more} more", names.join(", ")),
    }
}

/// `n thing` or `n things`.
pub(crate) fn count(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}
