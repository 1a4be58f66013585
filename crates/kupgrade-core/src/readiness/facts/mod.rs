//! The facts the catalogue checks an upgrade against (documented on [`FactTables`]).
use std::collections::HashMap;
use std::sync::OnceLock;

use jiff::ToSpan;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::{KubeVersion, Minor};

use super::finding::Severity;

mod parse;

pub use parse::{TableError, TableRow};

const EMBEDDED_FACTS: &str = include_str!("../../../data/k8s-readiness.json");
const EMBEDDED_REMOVALS: &str = include_str!("../../../data/k8s-api-removals.json");

/// A table is reported as possibly out of date once the plan's date is this many months past
/// its `as_of`.
pub const STALE_AFTER_MONTHS: i32 = 4;

/// One API that a minor stops serving (a row of `k8s-api-removals.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApiRemoval {
    /// `extensions/v1beta1`.
    pub group_version: String,
    /// `Ingress`.
    pub kind: String,
    /// The first minor that no longer serves it.
    pub removed_in: Minor,
    /// The minor that deprecated it, when known.
    #[serde(default)]
    pub deprecated_in: Option<Minor>,
    /// What to use instead (`networking.k8s.io/v1`), when there is something.
    #[serde(default)]
    pub replacement: Option<String>,
    /// `removed` or `planned` (a removal announced for a future minor).
    #[serde(default)]
    pub removal_status: Option<String>,
    /// Notes on migrating.
    #[serde(default)]
    pub notes: Option<String>,
    /// Where the row comes from.
    pub source: String,
}

impl ApiRemoval {
    /// The replacement, or `None` when the table says there is none.
    pub fn replacement(&self) -> Option<&str> {
        self.replacement
            .as_deref()
            .filter(|r| !r.is_empty() && *r != "none")
    }
}

/// What cgroup v1 means from a kubelet minor on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CgroupRule {
    /// The first kubelet minor the rule applies to.
    pub kubelet_from: Minor,
    /// How bad it is.
    pub severity: Severity,
    /// The kubelet setting that changes the outcome (`failCgroupV1`), if any.
    #[serde(default)]
    pub setting: Option<String>,
    /// What happens, in words.
    pub effect: String,
    /// Where the row comes from.
    pub source: String,
}

/// A container runtime version below which a kubelet minor (and later ones) does not work or
/// is not supported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RuntimeFloor {
    /// `containerd`.
    pub runtime: String,
    /// The first kubelet minor the floor applies to.
    pub kubelet_from: Minor,
    /// Versions below this one are refused.
    pub below: KubeVersion,
    /// How bad it is.
    pub severity: Severity,
    /// Announced for a minor not yet released.
    #[serde(default)]
    pub planned: bool,
    /// What happens, in words.
    pub effect: String,
    /// Where the row comes from.
    pub source: String,
}

/// The runtime versions recommended for one kubelet minor: the oldest patch of each release
/// line (`2.2.0`, `2.1.5`, `1.7.28`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RuntimeMatrixRow {
    /// `containerd`.
    pub runtime: String,
    /// The kubelet minor.
    pub kubelet: Minor,
    /// The oldest recommended patch of each supported line.
    pub supported: Vec<KubeVersion>,
    /// Where the row comes from.
    pub source: String,
}

impl RuntimeMatrixRow {
    /// Whether `v` is recommended: at or above the listed patch of its line, or on a line
    /// newer than every listed one.
    pub fn recommends(&self, v: &KubeVersion) -> bool {
        let line = |x: &KubeVersion| (x.major(), x.minor_number());
        if let Some(floor) = self.supported.iter().find(|s| line(s) == line(v)) {
            return v.release() >= floor.release();
        }
        self.supported.iter().all(|s| line(v) > line(s))
    }
}

/// The oldest etcd patch from which etcd may move to a newer minor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EtcdFloor {
    /// The etcd minor the move goes to (`3.6`).
    pub before: Minor,
    /// Every member must run at least this before the move (`3.5.32`).
    pub minimum: KubeVersion,
    /// Why, in words.
    pub effect: String,
    /// How the floor changed over time, when it did.
    #[serde(default)]
    pub history: Option<String>,
    /// Where the row comes from.
    pub source: String,
}

/// A kubeadm configuration API version and the kubeadm minors that read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KubeadmConfigApi {
    /// `kubeadm.k8s.io/v1beta3`.
    pub version: String,
    /// The first kubeadm minor that reads it (and, until a newer version appears, writes it).
    pub read_from: Minor,
    /// The first kubeadm minor that no longer reads it.
    #[serde(default)]
    pub removed_in: Option<Minor>,
    /// Where the row comes from.
    pub source: String,
}

impl KubeadmConfigApi {
    /// Whether kubeadm of minor `m` reads this version.
    pub fn read_by(&self, m: Minor) -> bool {
        m >= self.read_from && self.removed_in.is_none_or(|r| m < r)
    }
}

/// A kubeadm feature gate and the minor whose kubeadm no longer knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RemovedFeatureGate {
    /// `EtcdLearnerMode`.
    pub gate: String,
    /// The first kubeadm minor that refuses it.
    pub removed_in: Minor,
    /// Where the row comes from.
    pub source: String,
}

/// A package host that no longer serves Kubernetes packages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LegacyHost {
    /// `apt.kubernetes.io`.
    pub host: String,
    /// What happens, in words.
    pub effect: String,
    /// Where the row comes from.
    pub source: String,
}

/// What the free space on a node is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskPurpose {
    /// Where packages are downloaded and installed.
    Packages,
    /// Where the plan's backups and etcd snapshots go.
    Backups,
}

impl std::fmt::Display for DiskPurpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            DiskPurpose::Packages => "packages",
            DiskPurpose::Backups => "backups",
        })
    }
}

/// The least free space a purpose needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DiskFloor {
    /// What the space is for.
    pub purpose: DiskPurpose,
    /// The least free space, in MiB.
    pub min_free_mib: u64,
    /// Where the row comes from.
    pub source: String,
}

/// One table's date, and whether a plan's date lies too far past it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableStatus {
    /// The table's name (`k8s-readiness.json`).
    pub table: String,
    /// The date of its newest facts.
    pub as_of: Date,
    /// True when the plan's date is more than [`STALE_AFTER_MONTHS`] months past `as_of`:
    /// newer facts may be missing.
    pub stale: bool,
}

/// The facts tables.
///
/// The facts the catalogue checks an upgrade against: embedded, dated, sourced tables, and
/// the same tables read from JSON at run time.
///
/// Two files make the tables: `data/k8s-api-removals.json` (the project's reference copy,
/// embedded as it is: which group/version and kind a minor stops serving) and
/// `data/k8s-readiness.json` (owned by this project: cgroup v1 per kubelet minor, container
/// runtime floors and the containerd support matrix, etcd's minimum 3.5 patch before 3.6, the
/// kubeadm configuration API versions each kubeadm reads, kubeadm feature gates removed per
/// minor, the legacy package hosts and disk floors). Every row names its source
/// (`repo@commit:path`, a pull request or a URL), and each file has an `as_of` date: when a
/// plan's date lies more than [`STALE_AFTER_MONTHS`] months past it, the report says the
/// table may be out of date ([`FactTables::stale`]).
///
/// What the kubeadm feature gate table covers: kubeadm's own gates (`featureGates` in its
/// ClusterConfiguration), which kubeadm refuses once removed. Gates of the components
/// (`--feature-gates` of the API server or the kubelet) are not in it.
///
/// ```
/// use kupgrade_core::readiness::FactTables;
/// use kupgrade_core::Minor;
///
/// let facts = FactTables::embedded();
/// let ingress = facts.api_removal("extensions/v1beta1", "Ingress").unwrap();
/// assert_eq!(ingress.removed_in, Minor::new(1, 22));
/// assert_eq!(facts.etcd_floors()[0].minimum.to_string(), "v3.5.32");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FactTables {
    as_of: Date,
    removals_as_of: Date,
    api_removals: Vec<ApiRemoval>,
    by_kind: HashMap<(String, String), usize>,
    by_resource: HashMap<(String, String), usize>,
    cgroup_v1: Vec<CgroupRule>,
    runtime_floors: Vec<RuntimeFloor>,
    runtime_matrix: Vec<RuntimeMatrixRow>,
    etcd_floors: Vec<EtcdFloor>,
    kubeadm_config_apis: Vec<KubeadmConfigApi>,
    kubeadm_feature_gates_removed: Vec<RemovedFeatureGate>,
    legacy_package_hosts: Vec<LegacyHost>,
    disk_floors: Vec<DiskFloor>,
}

/// The name of the project's facts file in messages and reports.
pub const FACTS_TABLE: &str = "k8s-readiness.json";
/// The name of the API removals file in messages and reports.
pub const REMOVALS_TABLE: &str = "k8s-api-removals.json";

impl FactTables {
    /// The tables embedded in this crate, parsed once.
    pub fn embedded() -> &'static FactTables {
        static TABLES: OnceLock<FactTables> = OnceLock::new();
        TABLES.get_or_init(|| {
            FactTables::from_json(
                EMBEDDED_FACTS,
                "k8s-readiness.json (embedded)",
                EMBEDDED_REMOVALS,
                "k8s-api-removals.json (embedded)",
            )
            .expect("the embedded readiness tables are valid (tested)")
        })
    }

    /// The embedded API removals table's text, to edit and load again (tests, tools).
    pub fn embedded_api_removals_json() -> &'static str {
        EMBEDDED_REMOVALS
    }

    /// The embedded facts table's text.
    pub fn embedded_facts_json() -> &'static str {
        EMBEDDED_FACTS
    }

    /// The date of the newest facts in `k8s-readiness.json`.
    pub fn as_of(&self) -> Date {
        self.as_of
    }

    /// The date of the newest facts in the API removals table.
    pub fn api_removals_as_of(&self) -> Date {
        self.removals_as_of
    }

    /// Every API removal, in the table's order.
    pub fn api_removals(&self) -> &[ApiRemoval] {
        &self.api_removals
    }

    /// The removal of `kind` in `group_version` (`extensions/v1beta1`, `Ingress`).
    pub fn api_removal(&self, group_version: &str, kind: &str) -> Option<&ApiRemoval> {
        self.by_kind
            .get(&(group_version.to_string(), kind.to_string()))
            .map(|&i| &self.api_removals[i])
    }

    /// The removal of a resource (`ingresses`) in `group_version`, as the API server's
    /// metrics name it: the kind's lower-cased plural, guessed as the API machinery does.
    pub fn api_removal_by_resource(
        &self,
        group_version: &str,
        resource: &str,
    ) -> Option<&ApiRemoval> {
        self.by_resource
            .get(&(group_version.to_string(), resource.to_ascii_lowercase()))
            .map(|&i| &self.api_removals[i])
    }

    /// What cgroup v1 means per kubelet minor, oldest first.
    pub fn cgroup_v1(&self) -> &[CgroupRule] {
        &self.cgroup_v1
    }

    /// The rule in force for a kubelet of minor `m`: the newest one at or below it.
    pub fn cgroup_rule(&self, m: Minor) -> Option<&CgroupRule> {
        self.cgroup_v1.iter().rfind(|r| r.kubelet_from <= m)
    }

    /// Runtime floors, oldest first.
    pub fn runtime_floors(&self) -> &[RuntimeFloor] {
        &self.runtime_floors
    }

    /// The recommended runtime versions per kubelet minor.
    pub fn runtime_matrix(&self) -> &[RuntimeMatrixRow] {
        &self.runtime_matrix
    }

    /// The recommended versions of `runtime` for kubelet minor `m`, when the table has them.
    pub fn runtime_row(&self, runtime: &str, m: Minor) -> Option<&RuntimeMatrixRow> {
        self.runtime_matrix
            .iter()
            .find(|r| r.runtime == runtime && r.kubelet == m)
    }

    /// etcd's floors before a minor move.
    pub fn etcd_floors(&self) -> &[EtcdFloor] {
        &self.etcd_floors
    }

    /// The kubeadm configuration API versions, oldest first.
    pub fn kubeadm_config_apis(&self) -> &[KubeadmConfigApi] {
        &self.kubeadm_config_apis
    }

    /// The row for `version` (`kubeadm.k8s.io/v1beta3`).
    pub fn kubeadm_config_api(&self, version: &str) -> Option<&KubeadmConfigApi> {
        self.kubeadm_config_apis
            .iter()
            .find(|a| a.version == version)
    }

    /// The version kubeadm of minor `m` writes into the cluster: the newest it reads.
    pub fn kubeadm_config_written_by(&self, m: Minor) -> Option<&KubeadmConfigApi> {
        self.kubeadm_config_apis
            .iter()
            .filter(|a| a.read_by(m))
            .max_by_key(|a| a.read_from)
    }

    /// kubeadm feature gates removed, per minor.
    pub fn kubeadm_feature_gates_removed(&self) -> &[RemovedFeatureGate] {
        &self.kubeadm_feature_gates_removed
    }

    /// Package hosts that no longer serve packages.
    pub fn legacy_package_hosts(&self) -> &[LegacyHost] {
        &self.legacy_package_hosts
    }

    /// The floor for `purpose`, when the table has one.
    pub fn disk_floor(&self, purpose: DiskPurpose) -> Option<&DiskFloor> {
        self.disk_floors.iter().find(|d| d.purpose == purpose)
    }

    /// Each table's date and whether `date` lies more than [`STALE_AFTER_MONTHS`] months past
    /// it.
    pub fn stale(&self, date: Date) -> Vec<TableStatus> {
        let status = |table: &str, as_of: Date| TableStatus {
            table: table.to_string(),
            as_of,
            stale: as_of
                .checked_add(STALE_AFTER_MONTHS.months())
                .is_ok_and(|limit| date > limit),
        };
        vec![
            status(FACTS_TABLE, self.as_of),
            status(REMOVALS_TABLE, self.removals_as_of),
        ]
    }
}

/// The resource name the API machinery guesses for a kind: lower case, plural (`Ingress` →
/// `ingresses`, `NetworkPolicy` → `networkpolicies`, `Lease` → `leases`).
pub fn guess_resource(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if let Some(stem) = lower.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        return format!("{stem}ies");
    }
    if lower.ends_with('s')
        || lower.ends_with('x')
        || lower.ends_with("ch")
        || lower.ends_with("sh")
    {
        return format!("{lower}es");
    }
    format!("{lower}s")
}
