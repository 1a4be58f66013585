//! The upgrade planner: from a cluster state and a target, the step-by-step plan a careful
//! operator would follow, in which every intermediate state satisfies the skew policy.
//!
//! ```
//! use jiff::civil::date;
//! use kupgrade_core::plan::{PlanRequest, Target};
//!
//! let text = r#"
//! addons: { kube-proxy: v1.29.10, coredns: v1.11.1 }
//! nodes:
//!   - name: cp-1
//!     roles: [control-plane]
//!     versions: { kubelet: v1.29.10, kubeadm: v1.29.10, kube-apiserver: v1.29.10,
//!                 kube-controller-manager: v1.29.10, kube-scheduler: v1.29.10, etcd: 3.5.10-0 }
//!   - name: w-1
//!     versions: { kubelet: v1.29.10, kubeadm: v1.29.10 }
//! "#;
//! let cluster = kupgrade_core::inventory::parse(text, "cluster.yaml")?;
//! let plan = PlanRequest::new("1.31".parse()?, date(2025, 3, 1)).plan(&cluster)?;
//! let hops: Vec<String> = plan.hops.iter().map(|h| h.to.to_string()).collect();
//! assert_eq!(hops, ["v1.30.10", "v1.31.6"]); // latest patches on that date
//! assert!(plan.steps.iter().any(|s| s.point_of_no_return));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How a plan is made
//!
//! 1. The target is resolved ([`Target`]) and the hops computed: one minor at a time for the
//!    control plane, landing on the latest patch of each intermediate minor released by the
//!    plan's date; an interrupted hop (API servers at different versions) is finished first.
//! 2. For each hop, kubeadm's way: on the first control-plane node `kubeadm upgrade apply`
//!    (the point of no return), on the others `kubeadm upgrade node`, one at a time; the
//!    add-ons move when the last control-plane node is upgraded (kubeadm 1.28 and later) or at
//!    `apply` (before 1.28). Then the control-plane kubelets, one node at a time, drained: a
//!    kubelet may not be newer than any API server, so they wait for the last API server.
//! 3. Workers: in place, in batches (a count or a percentage, never more of one zone than
//!    allowed), either after every hop ([`WorkerPacing::EveryHop`], kubeadm's way) or as late as
//!    the policy and each hop's kubeadm allow ([`WorkerPacing::Deferred`]; kubeadm before 1.29
//!    refuses `upgrade apply` with kubelets more than one minor older than its target), catching
//!    up several minors in one drain window. With [`Strategy::Replace`], new nodes join at the control plane's version and the
//!    old ones are drained and removed, as few times as the policy allows.
//! 4. Every step is simulated on the model and the policy checked after it (only what the
//!    step changed is checked again, once per class of equal nodes; [`Simulation`] applies
//!    the same changes node by node, to replay a plan). The planner returns a plan whose every
//!    intermediate state is valid, or a [`PlanError`] naming the rule and the node in the way.
//!
//! What an [`Action`] means (which port carries it out, its facts, the [`Change`] both models
//! apply and the run expects, its deadline) is answered in one file, `plan/action.rs`, whose
//! documentation also says what to edit to add an action. The planner that chooses and
//! orders the steps lives in `plan/planner/`, one file per phase (pre-flight, control plane,
//! workers, the in-place and replace windows, the summary); its module documentation says
//! which file holds which.
//!
//! Making the plan again from any state the plan passes through gives the rest of the plan
//! (the same steps that change the cluster, with the same ids), after a fresh pre-flight: a
//! run can always be resumed by planning again.
use std::sync::LazyLock;

use jiff::civil::Date;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::lifecycle::ReleaseCalendar;
use crate::readiness::Workloads;
use crate::skew::{SkewPolicy, UpstreamPolicy, Violation};
use crate::{ClusterState, Component, KubeVersion, Minor, NodeName, OsFamily, Role};

mod action;
mod available;
mod batch;
mod change;
mod check;
mod estimate;
mod fleet;
mod hops;
mod label_ids;
mod options;
pub mod packages;
mod planner;
pub mod render;
pub mod rollback;
mod schema;
mod simulate;
pub(crate) mod splice;
mod step;
mod timeline;
mod transient;
mod warnings;

pub use action::{Action, Executor};
pub use available::{AvailableUpgrade, available_upgrades, nothing_available};
pub use change::{Change, NodeExpectation, Presence};
pub use estimate::{Durations, Estimate, human_duration};
pub use options::{
    BatchSize, BatchSizeParseError, PlanOptions, Strategy, StrategyParseError, Target,
    TargetParseError, WorkerPacing,
};
pub use packages::{PathError, apt_source, node_commands, package_pin, validate_path, yum_repo};
pub use schema::{SCHEMA, schema_json};
pub use simulate::{Effect, Simulation, SimulationError};
pub(crate) use splice::splice;
pub use step::{
    AddonVersions, Fact, NodeList, OsCommands, Package, Phase, PreflightCheck, StartVersion, Step,
    StepId,
};
pub use timeline::Timeline;
pub use transient::TransientWindow;
pub use warnings::{PlanWarning, WarningKind, calendar_warning, kubeadm_versions_warning};

/// The `apiVersion` of the serialized plan format.
pub const API_VERSION: &str = "kupgrade.dev/v1alpha1";
/// The `kind` of the serialized plan format.
pub const KIND: &str = "UpgradePlan";

static UPSTREAM: LazyLock<UpstreamPolicy> = LazyLock::new(UpstreamPolicy::new);

/// Everything the planner needs besides the cluster: the target, the date, the release
/// calendar, the policy and the options.
pub struct PlanRequest<'a> {
    /// What to upgrade to.
    pub target: Target,
    /// The date: which releases exist, whether the target is supported.
    pub date: Date,
    /// The release calendar.
    pub calendar: &'a ReleaseCalendar,
    /// The skew policy every intermediate state must satisfy.
    pub policy: &'a dyn SkewPolicy,
    /// The options.
    pub options: PlanOptions,
    /// The cluster's pods and PodDisruptionBudgets, gathered: [`BatchSize::Auto`] cuts
    /// batches from them (and refuses without them).
    pub workloads: Option<&'a Workloads>,
}

impl PlanRequest<'static> {
    /// A request with the embedded calendar, the upstream policy and default options.
    pub fn new(target: Target, date: Date) -> Self {
        PlanRequest {
            target,
            date,
            calendar: ReleaseCalendar::embedded(),
            policy: &*UPSTREAM,
            options: PlanOptions::default(),
            workloads: None,
        }
    }
}

impl<'a> PlanRequest<'a> {
    /// Uses `policy` instead.
    pub fn policy<'b>(self, policy: &'b dyn SkewPolicy) -> PlanRequest<'b>
    where
        'a: 'b,
    {
        PlanRequest {
            policy,
            calendar: self.calendar,
            target: self.target,
            date: self.date,
            options: self.options,
            workloads: self.workloads,
        }
    }

    /// Uses `calendar` instead.
    pub fn calendar<'b>(self, calendar: &'b ReleaseCalendar) -> PlanRequest<'b>
    where
        'a: 'b,
    {
        PlanRequest {
            calendar,
            policy: self.policy,
            target: self.target,
            date: self.date,
            options: self.options,
            workloads: self.workloads,
        }
    }

    /// Uses `options` instead.
    pub fn options(mut self, options: PlanOptions) -> Self {
        self.options = options;
        self
    }

    /// Sizes `--batch auto` batches from `workloads` (pods and budgets, gathered).
    pub fn workloads<'b>(self, workloads: &'b Workloads) -> PlanRequest<'b>
    where
        'a: 'b,
    {
        PlanRequest {
            workloads: Some(workloads),
            calendar: self.calendar,
            policy: self.policy,
            target: self.target,
            date: self.date,
            options: self.options,
        }
    }

    /// Plans the upgrade of `state`, with [warnings](PlanWarning) where the release data ends
    /// too early for it.
    pub fn plan(&self, state: &ClusterState) -> Result<UpgradePlan, PlanError> {
        let mut plan = planner::plan(state, self)?;
        plan.warnings = warnings::plan_warnings(state, self.calendar, self.date, &plan.hops);
        Ok(plan)
    }
}

/// How a hop came about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HopKind {
    /// Finishes a hop already under way (API servers at different versions).
    Resume,
    /// A patch release of the same minor.
    Patch,
    /// The next minor.
    Minor,
}

/// When a hop's add-ons (kube-proxy, CoreDNS) move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AddonsAt {
    /// During `kubeadm upgrade apply` (kubeadm before 1.28, or a single control-plane node).
    Apply,
    /// When the last control-plane node is upgraded (kubeadm 1.28 and later).
    LastControlPlaneNode,
}

/// One move of the control plane.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hop {
    /// The oldest API server before the hop.
    pub from: KubeVersion,
    /// The version the control plane lands on.
    pub to: KubeVersion,
    /// Resume, patch or minor.
    pub kind: HopKind,
    /// The etcd version kubeadm ships with the hop's minor, when known; it is deployed on
    /// control-plane nodes (stacked etcd) that run an older one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<KubeVersion>,
    /// The CoreDNS version kubeadm ships with the hop's minor, when known; it is deployed when
    /// the cluster runs an older one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coredns: Option<KubeVersion>,
    /// When the add-ons move.
    pub addons_at: AddonsAt,
}

/// How many nodes run a version of a component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionCount {
    /// The version.
    pub version: KubeVersion,
    /// How many nodes (1 for cluster add-ons).
    pub count: usize,
}

/// A component's versions now and after the plan, as `kubeadm upgrade plan` shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentChange {
    /// The component.
    pub component: Component,
    /// Its versions now, oldest first.
    pub current: Vec<VersionCount>,
    /// Its version after the plan (absent: not changed by kubeadm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<KubeVersion>,
}

/// A node as the plan knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanNode {
    /// The name.
    pub name: NodeName,
    /// Control plane or worker.
    pub role: Role,
    /// Which commands it gets.
    pub os: OsFamily,
    /// Its zone (the `zoneKey` label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Its kubelet at the start (absent for nodes the plan provisions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet: Option<KubeVersion>,
    /// Created by the plan (replace strategy).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provisioned: bool,
    /// Removed by the plan (replace strategy).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

/// An upgrade plan: hops, steps and estimates. Serialized (JSON, YAML) in a versioned format
/// whose JSON Schema is [`SCHEMA`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradePlan {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always [`KIND`].
    pub kind: String,
    /// The cluster's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The date the plan was made for.
    #[schemars(with = "String")]
    pub date: Date,
    /// The skew policy checked after every step.
    pub policy: String,
    /// The oldest API server at the start.
    pub from: KubeVersion,
    /// The target.
    pub target: KubeVersion,
    /// The options it was made with.
    pub options: PlanOptions,
    /// The control plane's hops, in order.
    pub hops: Vec<Hop>,
    /// Components now and after.
    pub components: Vec<ComponentChange>,
    /// Every node the plan touches or creates, sorted by name.
    pub nodes: Vec<PlanNode>,
    /// The most tasks the run lets run at once: the most nodes any one step acts on, or
    /// more where steps run side by side (control-plane kubelets beside a worker batch).
    pub max_parallel: usize,
    /// The steps, in order (each depends on the steps it names, or on the one before).
    pub steps: Vec<Step>,
    /// Time and disruption estimates.
    pub estimate: Estimate,
    /// The windows through which the rule named by `acceptTransient` breaks, in plan order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transient: Vec<TransientWindow>,
    /// Things the operator should know.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Where the release data the plan rests on ends too early (a calendar too old for the
    /// date, hops without kubeadm's etcd and CoreDNS versions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<PlanWarning>,
}

impl UpgradePlan {
    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&PlanNode> {
        self.nodes
            .binary_search_by(|n| n.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }

    /// The commands `step` runs on `node` (empty for steps that run no commands).
    pub fn commands_for<'s>(&self, step: &'s Step, node: &str) -> &'s [crate::ports::CommandSpec] {
        match self.node(node) {
            Some(n) => step.commands_for(n.os),
            None => &[],
        }
    }

    /// The step called `id`.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id.as_str() == id)
    }

    /// True when there is nothing to do (every node already at the target).
    pub fn is_empty(&self) -> bool {
        !self.steps.iter().any(Step::changes_state)
    }
}

/// A target that cannot be planned for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// The target is older than the control plane.
    #[error("target {to} is older than the control plane ({from}): downgrades are not supported")]
    Downgrade {
        /// The control plane's version.
        from: KubeVersion,
        /// The target.
        to: KubeVersion,
    },
    /// The calendar does not know the target.
    #[error(
        "{version} is not a known Kubernetes release{}; allow unknown versions (--allow-unknown-versions) to plan for it anyway",
        match as_of { Some(d) => format!(" (the release calendar goes up to {d})"), None => String::new() }
    )]
    UnknownVersion {
        /// The target.
        version: KubeVersion,
        /// How recent the calendar is.
        as_of: Option<Date>,
    },
    /// A pre-release target without permission.
    #[error(
        "{version} is a pre-release ({phase}); allow pre-releases (--allow-prerelease) to plan for it"
    )]
    PreRelease {
        /// The target.
        version: KubeVersion,
        /// Its phase.
        phase: crate::ReleasePhase,
    },
    /// A vendor build as the target.
    #[error(
        "{version} is a vendor build; give the upstream release ({release}) as the target, vendor builds are upgraded by their vendor"
    )]
    VendorTarget {
        /// The target.
        version: KubeVersion,
        /// The upstream release.
        release: KubeVersion,
    },
    /// A hop needs a minor that has no release by the date.
    #[error(
        "no release of Kubernetes {minor} is known by {date}, so the upgrade cannot pass through it"
    )]
    NoRelease {
        /// The minor.
        minor: Minor,
        /// The plan's date.
        date: Date,
    },
    /// The target is not supported on the date.
    #[error(
        "target {version} is {status} on {date}; allow unsupported targets (--allow-unsupported-target) to plan for it anyway"
    )]
    Unsupported {
        /// The target.
        version: KubeVersion,
        /// Its status, in words.
        status: String,
        /// The plan's date.
        date: Date,
    },
    /// The target is of another major version.
    #[error("target {to} is of another major version than the control plane ({from})")]
    MajorChange {
        /// The control plane's version.
        from: KubeVersion,
        /// The target.
        to: KubeVersion,
    },
}

impl From<TargetError> for PlanError {
    fn from(e: TargetError) -> Self {
        PlanError::Target(Box::new(e))
    }
}

/// Why no plan could be made. Each says what blocks and, where there is one, the rule and the
/// node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The target cannot be planned for.
    #[error(transparent)]
    Target(Box<TargetError>),
    /// No API server version is known.
    #[error("the cluster has no control-plane node with a kube-apiserver version")]
    NoControlPlane,
    /// Some nodes are not Ready.
    #[error(
        "nodes not Ready: {}; fix them first (or allow not-ready nodes: --allow-not-ready)",
        names(nodes)
    )]
    NotReady {
        /// The nodes.
        nodes: Vec<NodeName>,
    },
    /// The cluster violates the policy now.
    #[error(
        "the cluster already violates the {} policy, so no plan can keep every step valid (tolerate initial violations with --tolerate-initial-violations to plan a repair):\n{}",
        crate::escape::text(policy), crate::skew::report(violations).trim_end()
    )]
    InvalidStart {
        /// The policy.
        policy: String,
        /// Every error.
        violations: Vec<Violation>,
    },
    /// A step would break the policy.
    #[error(
        "no valid plan: step {step} ({what}{}) would break rule {}: {}{}",
        on_nodes(nodes), crate::escape::text(&violation.rule), crate::escape::text(&violation.message()),
        hint.as_ref().map(|h| format!("\nhint: {h}")).unwrap_or_default()
    )]
    Blocked {
        /// The step that would break it.
        step: StepId,
        /// What the step does.
        what: String,
        /// The step's nodes.
        nodes: Vec<NodeName>,
        /// The violation.
        violation: Box<Violation>,
        /// What could help.
        hint: Option<String>,
    },
    /// The plan would end with violations (tolerated initial ones that never went away).
    #[error(
        "the plan ends with violations the upgrade does not remove:\n{}",
        crate::skew::report(violations).trim_end()
    )]
    EndsInvalid {
        /// The remaining errors.
        violations: Vec<Violation>,
    },
    /// kubeadm's own version policy would refuse a hop.
    #[error("kubeadm would refuse `kubeadm upgrade apply {version}`: {findings}")]
    Kubeadm {
        /// The hop's version.
        version: KubeVersion,
        /// kubeadm's findings, in words.
        findings: String,
    },
    /// An option has a bad value.
    #[error("option {option}: {message}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// What is wrong.
        message: String,
    },
    /// `--batch auto` found nodes no batch can drain: a budget that can never allow a
    /// disruption protects pods on them, so every order of the drains stops there.
    #[error(
        "drain deadlock: PodDisruptionBudget {}{} can never allow a disruption, and the plan must evict its pods {} on nodes {}{}; no order of the batches avoids it (scale the workload up, relax the budget, or move the pods off first)",
        crate::escape::text(budget),
        spec.as_ref().map(|s| format!(" ({})", crate::escape::text(s))).unwrap_or_default(),
        crate::escape::text(&pods.join(", ")),
        names(nodes),
        if *more_budgets > 0 { format!("; {more_budgets} more budget(s) do the same") } else { String::new() }
    )]
    DrainDeadlock {
        /// The budget (`namespace/name`).
        budget: String,
        /// Its spec in words, when known.
        spec: Option<String>,
        /// Its pods the plan must evict (`namespace/name`).
        pods: Vec<String>,
        /// The nodes they run on.
        nodes: Vec<NodeName>,
        /// How many other budgets stop drains the same way.
        more_budgets: usize,
    },
    /// The planner made a step that does not fit its own model (a bug).
    #[error("internal error: {0}")]
    Internal(#[from] SimulationError),
}

impl PlanError {
    /// The rule in the way, for policy errors.
    pub fn rule(&self) -> Option<&str> {
        match self {
            PlanError::Blocked { violation, .. } => Some(&violation.rule),
            PlanError::InvalidStart { violations, .. } | PlanError::EndsInvalid { violations } => {
                violations.first().map(|v| v.rule.as_str())
            }
            _ => None,
        }
    }

    /// The node in the way, where there is one.
    pub fn node(&self) -> Option<&NodeName> {
        match self {
            PlanError::Blocked {
                violation, nodes, ..
            } => violation.node.as_ref().or(nodes.first()),
            PlanError::InvalidStart { violations, .. } | PlanError::EndsInvalid { violations } => {
                violations.iter().find_map(|v| v.node.as_ref())
            }
            PlanError::NotReady { nodes } => nodes.first(),
            _ => None,
        }
    }
}

fn names(nodes: &[NodeName]) -> String {
    const SHOWN: usize = 10;
    let mut s: Vec<&str> = nodes.iter().take(SHOWN).map(NodeName::as_str).collect();
    let more;
    if nodes.len() > SHOWN {
        more = format!("and {} more", nodes.len() - SHOWN);
        s.push(&more);
    }
    s.join(", ")
}

fn on_nodes(nodes: &[NodeName]) -> String {
    if nodes.is_empty() {
        String::new()
    } else {
        format!(" on {}", names(nodes))
    }
}

#[cfg(test)]
mod tests {
    use super::render::{Format, FormatParseError};
    use super::*;

    /// What a command line's parser (clap) needs of a `FromStr` error.
    fn is_a_shareable_error<E: std::error::Error + Send + Sync + 'static>(_: &E) {}

    /// Options parse into typed errors that say what was given and what is expected.
    #[test]
    fn option_parse_errors_are_typed_and_say_what_is_expected() {
        let e = "sideways".parse::<Strategy>().unwrap_err();
        is_a_shareable_error(&e);
        assert_eq!(e, StrategyParseError("sideways".into()));
        assert_eq!(
            e.to_string(),
            "\"sideways\" is not a strategy: expected \"in-place\" or \"replace\""
        );
        for (text, want, message) in [
            (
                "three",
                BatchSizeParseError::Malformed("three".into()),
                "\"three\" is not a batch size: expected a count (3), a percentage (25%) or auto",
            ),
            (
                "101%",
                BatchSizeParseError::PercentOutOfRange("101%".into()),
                "\"101%\" is not a batch size: a percentage is 1% to 100%",
            ),
            (
                "0",
                BatchSizeParseError::Zero("0".into()),
                "\"0\" is not a batch size: at least 1 node",
            ),
        ] {
            let e = text.parse::<BatchSize>().unwrap_err();
            is_a_shareable_error(&e);
            assert_eq!(e, want);
            assert_eq!(e.to_string(), message);
        }
        let e = "pdf".parse::<Format>().unwrap_err();
        is_a_shareable_error(&e);
        assert_eq!(e, FormatParseError("pdf".into()));
        assert_eq!(
            e.to_string(),
            "\"pdf\" is not a format: expected text, markdown, json, yaml, mermaid or html"
        );
        assert_eq!("md".parse::<Format>(), Ok(Format::Markdown));
        assert_eq!("replace".parse::<Strategy>(), Ok(Strategy::Replace));
    }
}
