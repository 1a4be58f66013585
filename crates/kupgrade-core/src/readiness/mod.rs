//! Readiness: a catalogue of checks that says, before the first command, which hop and which
//! batch of a plan will fail, and why.
//!
//! The plan already proves that every intermediate state satisfies the version skew policy.
//! Upgrades also fail for other reasons, each at a specific hop: manifests using an API the
//! hop removes, drains a PodDisruptionBudget stops, cgroup v1 nodes once the kubelet reaches
//! 1.35, containerd 1.x from 1.36, an etcd 3.5 below the patch etcd requires before 3.6,
//! certificates that expire mid-run, a kubeadm configuration stored in an API version the
//! next kubeadm no longer reads. The [`Catalogue`] evaluates a plan against:
//!
//! - [`Evidence`]: pure data the live gatherers fill (API usage in three tiers, pods and
//!   budgets, webhooks, APIServices, CRDs, kubeadm's stored configuration, facts from each
//!   node). Every piece is [`Gathered`]: found, or missing with a reason;
//! - [`FactTables`]: embedded, dated, sourced tables (API removals per minor, runtime and
//!   cgroup floors per kubelet minor, etcd's floor, kubeadm configuration API versions and
//!   feature gates per minor), which a newer JSON copy can replace. Which hop a finding
//!   lands on comes from these tables, not from code.
//!
//! Each check has a stable id (the [catalogue](Catalogue::checks): `removed-api`,
//! `drain/pdb-blocked`, `node/cgroup-v1`, ...), reports [`Finding`]s with a severity (an
//! error blocks the run; a warning is shown), a subject, a message, a remediation and the
//! evidence it used, placed at a hop and, for batch- and node-level checks, at the step
//! where it bites. Every check also reports its [`Coverage`]: checked, partly checked, not
//! checkable (and why), or not applicable. A check whose evidence is missing never passes:
//! empty evidence makes every check that needs data "not checkable".
//!
//! The drain forecast is a pure model of its own ([`DrainModel`]) that batch sizing can use.
//!
//! ```
//! use jiff::civil::date;
//! use kupgrade_core::plan::{PlanRequest, Target};
//! use kupgrade_core::readiness::{Catalogue, Coverage, Evidence};
//!
//! let cluster = kupgrade_core::inventory::parse(r#"
//! nodes:
//!   - name: cp-1
//!     roles: [control-plane]
//!     versions: { kubelet: v1.29.10, kubeadm: v1.29.10, kube-apiserver: v1.29.10,
//!                 kube-controller-manager: v1.29.10, kube-scheduler: v1.29.10, etcd: 3.5.10-0 }
//!   - name: w-1
//!     versions: { kubelet: v1.29.10, kubeadm: v1.29.10 }
//! "#, "cluster.yaml")?;
//! let plan = PlanRequest::new("1.31".parse()?, date(2025, 3, 1)).plan(&cluster)?;
//! let readiness = Catalogue::embedded().evaluate(&plan, &Evidence::default());
//! let cgroup = readiness.check("node/cgroup-v1").unwrap();
//! assert!(matches!(cgroup.coverage, Coverage::NotApplicable { .. })); // no kubelet reaches 1.35
//! let removed = readiness.check("removed-api").unwrap();
//! assert!(matches!(removed.coverage, Coverage::NotCheckable { .. })); // nothing gathered
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
use foldhash::HashMap;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::KubeVersion;
use crate::plan::UpgradePlan;

mod checks;
pub mod drain;
mod evidence;
mod facts;
mod finding;
pub mod render;
mod timeline;

#[cfg(test)]
mod tests;

pub use checks::CheckInfo;
pub use drain::{BatchForecast, BudgetBlock, Deadlock, Demands, DrainForecast, DrainModel};
pub use evidence::{
    ApiObject, ApiRequest, ApiService, Backend, Budget, Certificate, CertificateExpirationInfo,
    CgroupFacts, Crd, DiskSpace, EtcdFacts, Evidence, EvidenceError, Gathered, KubeadmConfig,
    KubeletServer, Missing, MissingReason, NodeFacts, Owner, PackageAvailability, Pod, PodVolume,
    RepositoryEntry, Webhook, Workloads,
};
pub use facts::{
    ApiRemoval, CgroupRule, DiskFloor, DiskPurpose, EtcdFloor, FACTS_TABLE, FactTables,
    KubeadmConfigApi, LegacyHost, REMOVALS_TABLE, RemovedFeatureGate, RuntimeFloor,
    RuntimeMatrixRow, STALE_AFTER_MONTHS, TableError, TableRow, TableStatus, guess_resource,
};
pub use finding::{Coverage, Finding, Gap, MAX_GAPS, Severity, Subject};

/// The `apiVersion` of a serialized readiness report.
pub const API_VERSION: &str = "kupgrade.dev/v1alpha1";
/// The `kind` of a serialized readiness report.
pub const KIND: &str = "ReadinessReport";

/// The catalogue of checks, over a set of facts tables.
#[derive(Clone, Copy, Debug)]
pub struct Catalogue<'f> {
    facts: &'f FactTables,
}

impl Catalogue<'static> {
    /// The catalogue over the embedded tables.
    pub fn embedded() -> Self {
        Catalogue {
            facts: FactTables::embedded(),
        }
    }
}

impl<'f> Catalogue<'f> {
    /// The catalogue over `facts` (a newer copy of the tables, or an edited one).
    pub fn new(facts: &'f FactTables) -> Self {
        Catalogue { facts }
    }

    /// The tables it reads.
    pub fn facts(&self) -> &'f FactTables {
        self.facts
    }

    /// Every check, in report order.
    pub fn checks() -> impl Iterator<Item = &'static CheckInfo> {
        checks::CATALOGUE.iter().map(|c| &c.info)
    }

    /// Runs every check on `plan` with `evidence`.
    pub fn evaluate(&self, plan: &UpgradePlan, evidence: &Evidence) -> Readiness {
        let ctx = checks::Ctx::new(plan, evidence, self.facts);
        let tables = self.facts.stale(plan.date);
        let step_index: HashMap<&str, usize> = plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let mut findings: Vec<(usize, Finding)> = Vec::new();
        let mut reports = Vec::with_capacity(checks::CATALOGUE.len());
        for (order, check) in checks::CATALOGUE.iter().enumerate() {
            let mut run = checks::Run::new(check.info.id);
            (check.run)(&ctx, &mut run);
            let coverage = run.coverage();
            let count = |s: Severity| run.findings.iter().filter(|f| f.severity == s).count();
            reports.push(CheckReport {
                id: check.info.id.to_string(),
                title: check.info.title.to_string(),
                coverage,
                hops: run.hops.iter().copied().collect(),
                errors: count(Severity::Error),
                warnings: count(Severity::Warning),
                stale_tables: tables
                    .iter()
                    .filter(|t| t.stale && check.info.tables.contains(&t.table.as_str()))
                    .map(|t| t.table.clone())
                    .collect(),
            });
            findings.extend(run.findings.into_iter().map(|f| (order, f)));
        }
        let position = |f: &Finding| {
            f.step
                .as_ref()
                .and_then(|s| step_index.get(s.as_str()).copied())
        };
        // Sort small keys (each finding's step looked up once), not the findings themselves;
        // the index last keeps equal keys in their order, as a stable sort would.
        let mut keys: Vec<(Option<usize>, Option<usize>, usize, usize)> = findings
            .iter()
            .enumerate()
            .map(|(i, (order, f))| (f.hop, position(f), *order, i))
            .collect();
        keys.sort_unstable_by(|a, b| {
            (a.0, a.1, a.2)
                .cmp(&(b.0, b.1, b.2))
                .then_with(|| findings[a.3].1.subject.cmp(&findings[b.3].1.subject))
                .then(a.3.cmp(&b.3))
        });
        let mut slots: Vec<Option<(usize, Finding)>> = findings.into_iter().map(Some).collect();
        let findings = keys.iter().filter_map(|k| slots[k.3].take());
        let mut hops: Vec<HopReadiness> = plan
            .hops
            .iter()
            .enumerate()
            .map(|(i, h)| HopReadiness {
                hop: i,
                from: h.from.clone(),
                to: h.to.clone(),
                findings: Vec::new(),
            })
            .collect();
        let mut before = Vec::new();
        for (_, f) in findings {
            match f.hop.and_then(|h| hops.get_mut(h)) {
                Some(h) => h.findings.push(f),
                None => before.push(f),
            }
        }
        Readiness {
            api_version: API_VERSION.to_string(),
            kind: KIND.to_string(),
            cluster: plan.cluster.clone(),
            date: plan.date,
            from: plan.from.clone(),
            target: plan.target.clone(),
            tables,
            before_hops: before,
            hops,
            checks: reports,
        }
    }
}

/// The findings of one hop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HopReadiness {
    /// The hop (an index into the plan's hops).
    pub hop: usize,
    /// The control plane's version before it.
    pub from: KubeVersion,
    /// The version it lands on.
    pub to: KubeVersion,
    /// What bites at this hop, in the order the plan meets it.
    pub findings: Vec<Finding>,
}

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    /// The check's stable id.
    pub id: String,
    /// What it checks.
    pub title: String,
    /// How much it could look at.
    pub coverage: Coverage,
    /// The hops it applies to (indices into the plan's hops), from the facts tables and the
    /// plan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hops: Vec<usize>,
    /// How many errors it found.
    pub errors: usize,
    /// How many warnings it found.
    pub warnings: usize,
    /// Tables it read that may be out of date for the plan's date.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stale_tables: Vec<String>,
}

/// A readiness report: findings per hop, and the coverage of every check. Serialized (JSON,
/// YAML) as a `ReadinessReport`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always [`KIND`].
    pub kind: String,
    /// The cluster's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The plan's date.
    pub date: Date,
    /// The plan's start.
    pub from: KubeVersion,
    /// The plan's target.
    pub target: KubeVersion,
    /// The facts tables' dates, and whether they may be out of date for `date`.
    pub tables: Vec<TableStatus>,
    /// What is wrong before the first hop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before_hops: Vec<Finding>,
    /// The findings of each hop, in order.
    pub hops: Vec<HopReadiness>,
    /// Every check, with its coverage.
    pub checks: Vec<CheckReport>,
}

impl Readiness {
    /// Every finding: before the hops, then hop by hop.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> + '_ {
        self.before_hops
            .iter()
            .chain(self.hops.iter().flat_map(|h| h.findings.iter()))
    }

    /// The errors (what blocks the run).
    pub fn errors(&self) -> impl Iterator<Item = &Finding> + '_ {
        self.findings().filter(|f| f.severity == Severity::Error)
    }

    /// True when something blocks the run.
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// The report of check `id`.
    pub fn check(&self, id: &str) -> Option<&CheckReport> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// The findings of check `id`.
    pub fn findings_of<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Finding> + 'a {
        self.findings().filter(move |f| f.check == id)
    }
}
