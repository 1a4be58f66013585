//! Workload health gates: "wait until my workloads are healthy again" as typed steps of a plan.
//!
//! A [`Gate`] is declared in a gates file ([`GateSet::parse`], YAML or JSON, errors said like
//! the inventory's: `gates.yaml:7:11: gate 2 ("web"): rollout.kind: ...`) or built in code
//! (the apply example's flags). [`GateSet::insert`] puts one [`Action::Gate`] step after each
//! batch and/or each hop, as each gate declares, and, for a regression gate, one
//! [`Action::GateBaseline`] step before the batch or hop it judges, whose workload snapshot
//! the gate compares with.
//!
//! What a gate checks, and how it is judged, is answered here, purely:
//!
//! - object readiness ([`Rollout`]: a Deployment, StatefulSet or DaemonSet fully rolled out
//!   and available; [`ConditionCheck`]: any object's `status.conditions[type=X]` equal to a
//!   value, custom resources included): [`rollout_problems`] and [`condition_problems`] judge
//!   the object as the API returns it (JSON);
//! - workload regression ([`RegressionCheck`]): [`WorkloadSnapshot::regressions`] compares the
//!   pods and disruption budgets a selector picks with the snapshot taken before;
//! - a command ([`GateCommand`]): run locally or on a named node through the executors; exit 0
//!   passes.
//!
//! Reading the cluster is a port ([`GateProbe`](crate::ports::GateProbe)): the kube backend
//! is in kupgrade-kube, the simulated one in kupgrade-exec; the driver polls a gate every
//! [`Gate::interval_seconds`] until it passes or [`Gate::timeout_seconds`] has passed, then
//! halts or goes on with a warning ([`OnTimeout`]). A gate is a step like any other: journaled,
//! and evaluated again on resume (it changes nothing and is safe to repeat, so an interrupted
//! gate is never assumed passed).
//!
//! ```
//! use kupgrade_core::gate::GateSet;
//! let text = r#"
//! apiVersion: kupgrade.dev/v1alpha1
//! kind: Gates
//! gates:
//!   - name: web
//!     rollout: { kind: Deployment, namespace: shop, name: web }
//!   - name: shop-pods
//!     after: [batch, hop]
//!     regression: { namespace: shop }
//! "#;
//! let gates = GateSet::parse(text, "gates.yaml")?;
//! assert_eq!(gates.gates().len(), 2);
//! let err = GateSet::parse("gates:\n  - name: web\n    rollout: { kind: Job, name: x }\n", "gates.yaml").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "gates.yaml:3:22: gate 1 (\"web\"): rollout.kind: unknown variant `Job`, expected one of `Deployment`, `StatefulSet`, `DaemonSet`"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Action::Gate`]: crate::plan::Action::Gate
//! [`Action::GateBaseline`]: crate::plan::Action::GateBaseline
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::NodeName;
use crate::diagnostics::{FileError, FileProblem, ListEntry, check_argv, check_named_entries};

pub(crate) mod insert;
mod verdict;

pub use verdict::{
    BudgetHealth, PodHealth, WorkloadSnapshot, condition_problems, rollout_problems, summarize,
};

/// The `apiVersion` of a gates file.
pub const API_VERSION: &str = "kupgrade.dev/v1alpha1";
/// The `kind` of a gates file.
pub const KIND: &str = "Gates";

/// The JSON Schema of the gates file, as checked in (`schema/gates.schema.json`).
pub const SCHEMA: &str = include_str!("../../schema/gates.schema.json");

/// The JSON Schema of the gates file, generated from the types.
pub fn schema_json() -> String {
    crate::schema::schema_json::<GateSet>(
        &crate::schema::Header {
            api_version: API_VERSION,
            api_version_doc: "The file format's version.",
            kind: KIND,
            kind_doc: "Always `Gates`.",
        },
        &[
            ("title", "kupgrade gates"),
            ("$id", "https://kupgrade.dev/schema/gates.schema.json"),
        ],
    )
}

/// The gates of a run, as a gates file declares them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GateSet {
    /// The gates, each with a name unique in the file.
    #[serde(default)]
    gates: Vec<Gate>,
}

crate::diagnostics::list_file! {
    /// A set of these gates, checked like a file's (names well formed and unique, exactly one
    /// check each, sensible times).
    GateSet { gates: Gate }, GateList, GatesError, "gate", "gates"
}

impl GateSet {
    /// The gates, in order.
    pub fn gates(&self) -> &[Gate] {
        &self.gates
    }

    /// True when there is no gate.
    pub fn is_empty(&self) -> bool {
        self.gates.is_empty()
    }
}

/// Checks every gate; problems name the gate by its place and name.
fn validate(gates: &[Gate], out: &mut Vec<GateProblem>) {
    check_named_entries(
        gates,
        |g| &g.name,
        out,
        |gate, bad| {
            let checks = [
                ("rollout", gate.rollout.is_some()),
                ("condition", gate.condition.is_some()),
                ("regression", gate.regression.is_some()),
                ("command", gate.command.is_some()),
            ];
            let given: Vec<&str> = checks.iter().filter(|c| c.1).map(|c| c.0).collect();
            match given.len() {
                1 => {}
                0 => bad(
                    "name",
                    "says nothing to check: give one of `rollout`, `condition`, `regression`, `command`".into(),
                ),
                _ => bad(
                    given[1],
                    format!("a gate checks one thing; this one also has `{}`", given[0]),
                ),
            }
            if gate.after.is_empty() {
                bad("after", "say when: `batch`, `hop` or both".into());
            }
            if gate.interval_seconds == 0 {
                bad("intervalSeconds", "must be at least 1".into());
            }
            if gate.timeout_seconds == 0 {
                bad("timeoutSeconds", "must be at least 1".into());
            }
            if let Some(r) = &gate.rollout {
                object_names(&mut *bad, "rollout", r.namespace.as_deref(), &r.name);
            }
            if let Some(c) = &gate.condition {
                object_names(&mut *bad, "condition", c.namespace.as_deref(), &c.name);
                if c.kind.is_empty() || !c.kind.chars().all(|c| c.is_ascii_alphanumeric()) {
                    bad("condition.kind", format!("{:?} is not a kind", c.kind));
                }
                if !api_version_ok(&c.api_version) {
                    bad(
                        "condition.apiVersion",
                        format!("{:?} is not an apiVersion (`v1`, `apps/v1`)", c.api_version),
                    );
                }
                if c.condition_type.is_empty() {
                    bad("condition.type", "cannot be empty".into());
                }
            }
            if let Some(r) = &gate.regression {
                if let Some(ns) = &r.namespace
                    && !dns_label(ns)
                {
                    bad(
                        "regression.namespace",
                        format!("{ns:?} is not a namespace name"),
                    );
                }
                if let Some(s) = &r.selector
                    && let Some(c) = s
                        .chars()
                        .find(|c| !(c.is_ascii_alphanumeric() || "-_./=!,() ".contains(*c)))
                {
                    bad(
                        "regression.selector",
                        format!("{c:?} is not allowed in a label selector"),
                    );
                }
            }
            if let Some(c) = &gate.command {
                check_argv(bad, "command.argv", &c.argv);
                if c.timeout_seconds == 0 {
                    bad("command.timeoutSeconds", "must be at least 1".into());
                }
            }
        },
    );
}

fn object_names(
    bad: &mut dyn FnMut(&str, String),
    what: &str,
    namespace: Option<&str>,
    name: &str,
) {
    if let Some(ns) = namespace
        && !dns_label(ns)
    {
        bad(
            &format!("{what}.namespace"),
            format!("{ns:?} is not a namespace name"),
        );
    }
    if name.is_empty()
        || name.len() > 253
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        bad(
            &format!("{what}.name"),
            format!("{name:?} is not an object name"),
        );
    }
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn api_version_ok(s: &str) -> bool {
    let (group, version) = s.rsplit_once('/').unwrap_or(("", s));
    !version.is_empty()
        && version.chars().all(|c| c.is_ascii_alphanumeric())
        && group
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

/// One gate: what it checks, when, how often and for how long.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gate {
    /// Its name (lower-case letters, digits and `-`), part of its steps' ids.
    pub name: String,
    /// When it is evaluated: after each batch of nodes, after each hop, or both
    /// (default: after each batch).
    #[serde(default = "default_after")]
    pub after: Vec<GatePoint>,
    /// How long between two evaluations while it does not pass (default 10).
    #[serde(default = "default_interval")]
    pub interval_seconds: u64,
    /// How long it may take to pass (default 600).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// What happens when it has not passed in time (default: halt).
    #[serde(default)]
    pub on_timeout: OnTimeout,
    /// A workload rolled out and available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// An object's condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<ConditionCheck>,
    /// No workload worse off than before the batch or hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression: Option<RegressionCheck>,
    /// A command that must exit 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<GateCommand>,
}

fn default_after() -> Vec<GatePoint> {
    vec![GatePoint::Batch]
}
fn default_interval() -> u64 {
    10
}
fn default_timeout() -> u64 {
    600
}

impl Gate {
    /// A gate called `name` checking `check`, with the defaults (after each batch, every 10 s,
    /// for 600 s, halting on timeout).
    pub fn new(name: impl Into<String>, check: GateCheck) -> Self {
        let mut gate = Gate {
            name: name.into(),
            after: default_after(),
            interval_seconds: default_interval(),
            timeout_seconds: default_timeout(),
            on_timeout: OnTimeout::Halt,
            rollout: None,
            condition: None,
            regression: None,
            command: None,
        };
        match check {
            GateCheck::Rollout(r) => gate.rollout = Some(r),
            GateCheck::Condition(c) => gate.condition = Some(c),
            GateCheck::Regression(r) => gate.regression = Some(r),
            GateCheck::Command(c) => gate.command = Some(c),
        }
        gate
    }

    /// What it checks (a validated gate has exactly one check; `None` otherwise).
    pub fn check(&self) -> Option<GateCheck> {
        match (
            &self.rollout,
            &self.condition,
            &self.regression,
            &self.command,
        ) {
            (Some(r), None, None, None) => Some(GateCheck::Rollout(r.clone())),
            (None, Some(c), None, None) => Some(GateCheck::Condition(c.clone())),
            (None, None, Some(r), None) => Some(GateCheck::Regression(r.clone())),
            (None, None, None, Some(c)) => Some(GateCheck::Command(c.clone())),
            _ => None,
        }
    }

    /// What it checks, in a few words (`deployment shop/web rolled out and available`).
    pub fn describe(&self) -> String {
        match self.check() {
            Some(c) => c.to_string(),
            None => "nothing (an invalid gate)".into(),
        }
    }
}

/// What a gate checks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GateCheck {
    /// A workload rolled out and available.
    Rollout(Rollout),
    /// An object's condition.
    Condition(ConditionCheck),
    /// No workload worse off than before.
    Regression(RegressionCheck),
    /// A command that must exit 0.
    Command(GateCommand),
}

impl fmt::Display for GateCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateCheck::Rollout(r) => write!(
                f,
                "{} {} rolled out and available",
                r.kind.as_str().to_lowercase(),
                qualified(r.namespace.as_deref(), &r.name)
            ),
            GateCheck::Condition(c) => write!(
                f,
                "{} {} has condition {}={}",
                c.kind,
                qualified(c.namespace.as_deref(), &c.name),
                c.condition_type,
                c.status
            ),
            GateCheck::Regression(r) => {
                write!(f, "no pod or budget worse off than before")?;
                match (&r.namespace, &r.selector) {
                    (Some(ns), Some(s)) => write!(f, " in {ns} ({s})"),
                    (Some(ns), None) => write!(f, " in {ns}"),
                    (None, Some(s)) => write!(f, " ({s})"),
                    (None, None) => Ok(()),
                }
            }
            GateCheck::Command(c) => {
                let line = crate::ports::CommandSpec::new(&c.argv[0])
                    .args(c.argv.iter().skip(1))
                    .to_shell_line();
                match &c.node {
                    Some(n) => write!(f, "`{line}` exits 0 on {n}"),
                    None => write!(f, "`{line}` exits 0 here"),
                }
            }
        }
    }
}

/// `namespace/name`, or `name`.
pub(crate) fn qualified(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// When a gate is evaluated.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum GatePoint {
    /// After each batch of nodes (its uncordon, or its removal).
    Batch,
    /// After each hop (the hop's last step).
    Hop,
}

/// What happens when a gate has not passed in its time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnTimeout {
    /// The run halts, saying what was wrong.
    #[default]
    Halt,
    /// The run goes on; what was wrong is said as a warning.
    Warn,
}

/// The workload kinds a rollout gate knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
}

impl WorkloadKind {
    /// The kind's name (`Deployment`).
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }
}

/// A Deployment, StatefulSet or DaemonSet that must be fully rolled out and available.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollout {
    /// Its kind.
    pub kind: WorkloadKind,
    /// Its namespace (default: `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

impl Rollout {
    /// The object to read.
    pub fn object(&self) -> ObjectRef {
        ObjectRef {
            api_version: "apps/v1".into(),
            kind: self.kind.as_str().into(),
            namespace: Some(self.namespace.clone().unwrap_or_else(|| "default".into())),
            name: self.name.clone(),
        }
    }
}

/// Any object (custom resources included) whose `status.conditions` must hold a condition
/// of `type` with `status`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConditionCheck {
    /// Its `apiVersion` (`v1`, `apps/v1`, `ceph.rook.io/v1`).
    pub api_version: String,
    /// Its kind.
    pub kind: String,
    /// Its namespace, for namespaced kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// The condition's `type`.
    #[serde(rename = "type")]
    pub condition_type: String,
    /// The `status` it must have (default `True`).
    #[serde(default = "true_status")]
    pub status: String,
}

fn true_status() -> String {
    "True".into()
}

impl ConditionCheck {
    /// The object to read.
    pub fn object(&self) -> ObjectRef {
        ObjectRef {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

/// An object a gate reads through a [`GateProbe`](crate::ports::GateProbe).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// `apps/v1`, `v1`, `ceph.rook.io/v1`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// Its namespace (`None`: cluster-scoped).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.kind,
            qualified(self.namespace.as_deref(), &self.name)
        )
    }
}

/// The pods and disruption budgets a regression gate watches: by namespace, label selector,
/// or both (neither: every namespace).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegressionCheck {
    /// Only this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Only pods (and budgets) matching this label selector (`app=web,tier!=cache`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

/// A command that must exit 0: run here (the operator's machine) or on a named node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GateCommand {
    /// The program and its arguments (no shell: each is one word).
    pub argv: Vec<String>,
    /// The node it runs on, through the run's command runner (absent: here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub node: Option<NodeName>,
    /// How long one evaluation may take (default 60).
    #[serde(default = "default_command_timeout")]
    pub timeout_seconds: u64,
}

fn default_command_timeout() -> u64 {
    60
}

impl GateCommand {
    /// The command as a runner runs it.
    pub fn spec(&self) -> crate::ports::CommandSpec {
        let (program, args) = self
            .argv
            .split_first()
            .map_or(("", &[][..]), |(p, a)| (p.as_ref(), a));
        crate::ports::CommandSpec::new(program)
            .args(args.iter())
            .timeout(std::time::Duration::from_secs(self.timeout_seconds))
            .max_output(64 * 1024)
    }
}

/// The gates of a gates file, as the kind of their entries ([`GateEntry`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateList {}

/// The gate a problem is about: its 1-based place in the file and its name when it has one.
/// Said `gate 2 ("web")`, or `gate 2`.
pub type GateEntry = ListEntry<GateList>;

/// One problem in a gates file.
pub type GateProblem = FileProblem<GateEntry>;
/// A gates file that could not be read: every problem, one per line.
pub type GatesError = FileError<GateEntry>;

#[cfg(test)]
pub(crate) mod tests;
