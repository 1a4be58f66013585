//! What to plan for and how: the target, the strategy, the batch size, the pacing of the
//! workers and the options that gather them.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Durations;
use crate::ports::DrainOptions;
use crate::{KubeVersion, Minor, ZONE_LABEL};

/// What to upgrade to.
///
/// ```
/// use kupgrade_core::plan::Target;
/// assert_eq!("v1.31.2".parse::<Target>()?, Target::Version("1.31.2".parse()?));
/// assert_eq!("1.31".parse::<Target>()?, Target::Minor("1.31".parse()?));
/// assert_eq!("latest".parse::<Target>()?, Target::Stable);
/// assert_eq!(
///     "1.x".parse::<Target>().unwrap_err().to_string(),
///     r#""1.x" is not a target: expected a version (v1.31.2), a minor (1.31), "stable" or "latest""#
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// Exactly this version.
    Version(KubeVersion),
    /// The latest patch of this minor released by the plan's date.
    Minor(Minor),
    /// The newest stable release by the plan's date (`stable` or `latest`).
    Stable,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Version(v) => write!(f, "{v}"),
            Target::Minor(m) => write!(f, "{m}"),
            Target::Stable => f.write_str("stable"),
        }
    }
}

/// A target that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a target: expected a version (v1.31.2), a minor (1.31), \"stable\" or \"latest\""
)]
pub struct TargetParseError(pub String);

impl FromStr for Target {
    type Err = TargetParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stable" | "latest" => return Ok(Target::Stable),
            _ => {}
        }
        if let Ok(m) = Minor::parse(s) {
            return Ok(Target::Minor(m));
        }
        KubeVersion::parse(s)
            .map(Target::Version)
            .map_err(|_| TargetParseError(s.to_string()))
    }
}

/// How worker nodes get the new version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Upgrade the packages on each node, kubeadm's way.
    #[default]
    InPlace,
    /// Join new nodes at the control plane's version, then drain and remove the old ones (as
    /// cloud node groups and Cluster API do). The control plane is still upgraded in place.
    Replace,
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Strategy::InPlace => "in-place",
            Strategy::Replace => "replace",
        })
    }
}

/// A strategy that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a strategy: expected \"in-place\" or \"replace\"")]
pub struct StrategyParseError(pub String);

impl FromStr for Strategy {
    type Err = StrategyParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "in-place" => Ok(Strategy::InPlace),
            "replace" => Ok(Strategy::Replace),
            _ => Err(StrategyParseError(s.to_string())),
        }
    }
}

/// When workers move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerPacing {
    /// After every hop of the control plane, one minor at a time (kubeadm's way).
    EveryHop,
    /// As late as the policy and each hop's kubeadm allow, then several minors in one drain
    /// window (or one replacement): the fewest drains.
    Deferred,
}

/// How many nodes a batch takes: a count, a percentage of the workers (rounded up), or `auto`:
/// per wave, the largest batches that overdraw no PodDisruptionBudget, from the cluster's pods
/// and budgets ([`PlanRequest::workloads`](super::PlanRequest::workloads)).
///
/// ```
/// use kupgrade_core::plan::BatchSize;
/// assert_eq!("25%".parse::<BatchSize>()?.of(10), 3);
/// assert_eq!("2".parse::<BatchSize>()?.of(10), 2);
/// assert_eq!("auto".parse::<BatchSize>()?.of(10), 10); // the budgets decide
/// assert!("auto".parse::<BatchSize>()?.is_auto());
/// assert!("0".parse::<BatchSize>().is_err());
/// assert!("120%".parse::<BatchSize>().is_err());
/// # Ok::<(), kupgrade_core::plan::BatchSizeParseError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BatchSize {
    /// This many nodes (at least 1).
    Count(u32),
    /// This percentage of the nodes, rounded up (1 to 100).
    Percent(u8),
    /// As many as the PodDisruptionBudgets allow (batches only; every node out of `total`
    /// as an upper bound).
    Auto,
}

impl BatchSize {
    /// The number of nodes out of `total` (at least 1); for [`Auto`](BatchSize::Auto), all of
    /// them: the budgets cut the batches.
    pub fn of(self, total: usize) -> usize {
        match self {
            BatchSize::Count(n) => (n as usize).max(1),
            BatchSize::Percent(p) => (total * p as usize).div_ceil(100).max(1),
            BatchSize::Auto => total.max(1),
        }
    }

    /// True for [`Auto`](BatchSize::Auto).
    pub fn is_auto(self) -> bool {
        self == BatchSize::Auto
    }
}

impl Default for BatchSize {
    fn default() -> Self {
        BatchSize::Count(1)
    }
}

impl fmt::Display for BatchSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchSize::Count(n) => write!(f, "{n}"),
            BatchSize::Percent(p) => write!(f, "{p}%"),
            BatchSize::Auto => f.write_str("auto"),
        }
    }
}

/// A batch size that could not be parsed; each variant holds the text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchSizeParseError {
    /// Neither a count nor a percentage.
    #[error("{0:?} is not a batch size: expected a count (3), a percentage (25%) or auto")]
    Malformed(String),
    /// A percentage of 0 or over 100.
    #[error("{0:?} is not a batch size: a percentage is 1% to 100%")]
    PercentOutOfRange(String),
    /// A count of 0.
    #[error("{0:?} is not a batch size: at least 1 node")]
    Zero(String),
}

impl FromStr for BatchSize {
    type Err = BatchSizeParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BatchSizeParseError::Malformed(s.to_string());
        if s == "auto" {
            return Ok(BatchSize::Auto);
        }
        if let Some(p) = s.strip_suffix('%') {
            let p: u8 = p.parse().map_err(|_| bad())?;
            if p == 0 || p > 100 {
                return Err(BatchSizeParseError::PercentOutOfRange(s.to_string()));
            }
            Ok(BatchSize::Percent(p))
        } else {
            let n: u32 = s.parse().map_err(|_| bad())?;
            if n == 0 {
                return Err(BatchSizeParseError::Zero(s.to_string()));
            }
            Ok(BatchSize::Count(n))
        }
    }
}

impl Serialize for BatchSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for BatchSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
impl JsonSchema for BatchSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "BatchSize".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A count of nodes (3), a percentage (25%) or auto (as many as the PodDisruptionBudgets allow)",
            "pattern": r"^([1-9][0-9]*%?|auto)$"
        })
    }
}

/// How to plan. `Default` gives kubeadm's way: in place, one node at a time, workers after
/// every hop, an etcd snapshot and a copy of `/etc/kubernetes` before the control plane moves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct PlanOptions {
    /// In place or by replacement (workers).
    pub strategy: Strategy,
    /// When workers move; by default after every hop in place, and as late as the policy
    /// allows when replacing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_pacing: Option<WorkerPacing>,
    /// How many workers one batch takes (all of them are unavailable at once).
    pub batch: BatchSize,
    /// Replace strategy: how many new nodes may exist beyond the old ones at once (at least 1).
    pub max_surge: u32,
    /// The label that names a node's zone.
    pub zone_key: String,
    /// The most nodes of one zone in a batch (a percentage counts that zone's workers); no
    /// limit beyond the batch size when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_per_zone: Option<BatchSize>,
    /// How to drain.
    pub drain: DrainOptions,
    /// Before moving to a newer minor, first upgrade to the latest patch of the current one.
    pub patch_first: bool,
    /// Where an etcd snapshot is written on the first control-plane node before each
    /// `kubeadm upgrade apply` (stacked etcd); none when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_snapshot_dir: Option<String>,
    /// Where each control-plane node's `/etc/kubernetes` is copied before anything changes;
    /// none when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_dir: Option<String>,
    /// Accept a target version the calendar does not know.
    pub allow_unknown_versions: bool,
    /// Accept a pre-release target (alpha, beta, rc).
    pub allow_prerelease: bool,
    /// Accept a target minor that is past its end of life (or not yet released) on the date.
    pub allow_unsupported_target: bool,
    /// Plan even though the cluster violates the policy now: those violations may persist
    /// until the plan removes them, nothing new may appear, and the final state must be clean.
    pub tolerate_initial_violations: bool,
    /// A rule the plan may break for a while, only where a step the tool cannot change breaks
    /// it (kubeadm before 1.28 moving kube-proxy at `kubeadm upgrade apply` while other API
    /// servers are older); each such window is listed in the plan's `transient`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_transient: Option<String>,
    /// Plan even though some nodes are not Ready.
    pub allow_not_ready: bool,
    /// How long to wait for a node to become Ready, in seconds.
    pub ready_timeout_seconds: u64,
    /// Per-step duration estimates.
    pub durations: Durations,
    /// Pre-stage: before a node is cordoned, download its packages for every version it
    /// installs and (control-plane nodes) pull the hop's images, in steps that may run
    /// batches ahead, so that its drain window installs from the cache. Plans written before
    /// the option existed load with it on (their steps are what they are).
    pub prestage: bool,
}

/// The default directory for backups and snapshots on control-plane nodes.
pub const DEFAULT_BACKUP_DIR: &str = "/var/backups/kupgrade";

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            strategy: Strategy::InPlace,
            worker_pacing: None,
            batch: BatchSize::Count(1),
            max_surge: 1,
            zone_key: ZONE_LABEL.to_string(),
            max_per_zone: None,
            drain: DrainOptions::default(),
            patch_first: false,
            etcd_snapshot_dir: Some(DEFAULT_BACKUP_DIR.to_string()),
            backup_dir: Some(DEFAULT_BACKUP_DIR.to_string()),
            allow_unknown_versions: false,
            allow_prerelease: false,
            allow_unsupported_target: false,
            tolerate_initial_violations: false,
            accept_transient: None,
            allow_not_ready: false,
            ready_timeout_seconds: 600,
            durations: Durations::default(),
            prestage: true,
        }
    }
}

impl PlanOptions {
    /// The pacing in effect: the explicit one, or the strategy's default.
    pub fn pacing(&self) -> WorkerPacing {
        self.worker_pacing.unwrap_or(match self.strategy {
            Strategy::InPlace => WorkerPacing::EveryHop,
            Strategy::Replace => WorkerPacing::Deferred,
        })
    }
}
