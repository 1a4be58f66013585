//! Reading the facts tables from JSON (the formats of `data/k8s-readiness.json` and
//! `data/k8s-api-removals.json`).
use std::collections::HashMap;
use std::fmt;

use jiff::civil::Date;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::diagnostics::{Entry, FileProblem, SourceError, json_document, json_message};

use super::{
    ApiRemoval, CgroupRule, DiskFloor, EtcdFloor, FactTables, KubeadmConfigApi, LegacyHost,
    RemovedFeatureGate, RuntimeFloor, RuntimeMatrixRow, guess_resource,
};

/// Why a facts table could not be read. The message names the file, the row and the field:
/// `newer.json: runtime_floors[1]: field below: "2.x" is not a version: ...`.
pub type TableError = SourceError<TableRow>;

/// The row a problem is about: `runtime_floors[1]`, or `api removal 3 (extensions/v1beta1
/// Ingress)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableRow(String);

impl fmt::Display for TableRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Entry for TableRow {
    const FIELD_PREFIX: &'static str = "field ";
}

impl TableError {
    /// The row at fault (`runtime_floors[1]`), when the problem is inside one.
    pub fn row(&self) -> Option<&str> {
        self.entry().map(|r| r.0.as_str())
    }
}

#[derive(Deserialize)]
struct RawFacts {
    as_of: Date,
    api_removals: RawRemovalsHeader,
    #[serde(default)]
    cgroup_v1: Vec<serde_json::Value>,
    #[serde(default)]
    runtime_floors: Vec<serde_json::Value>,
    #[serde(default)]
    runtime_matrix: Vec<serde_json::Value>,
    #[serde(default)]
    etcd_floors: Vec<serde_json::Value>,
    #[serde(default)]
    kubeadm_config_apis: Vec<serde_json::Value>,
    #[serde(default)]
    kubeadm_feature_gates_removed: Vec<serde_json::Value>,
    #[serde(default)]
    legacy_package_hosts: Vec<serde_json::Value>,
    #[serde(default)]
    disk_floors: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawRemovalsHeader {
    as_of: Date,
}

/// Reads one file's top level, reporting syntax errors with their position.
fn document<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T, TableError> {
    json_document(text).map_err(|p| TableError::new(origin, p))
}

/// Reads the rows of one table, each named `table[i]` in messages.
fn rows<T: DeserializeOwned>(
    table: &str,
    values: Vec<serde_json::Value>,
    origin: &str,
) -> Result<Vec<T>, TableError> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_path_to_error::deserialize(v).map_err(|e| {
                let path = e.path().to_string();
                let mut p = FileProblem::new(json_message(e.inner()))
                    .in_entry(TableRow(format!("{table}[{i}]")));
                if path != "." {
                    p = p.in_field(path);
                }
                TableError::new(origin, p)
            })
        })
        .collect()
}

impl FactTables {
    /// Reads the tables: `facts` in the format of the embedded `k8s-readiness.json`, `removals`
    /// in that of `k8s-api-removals.json` (unknown fields are ignored). The origins name the
    /// sources in error messages.
    ///
    /// ```
    /// use kupgrade_core::readiness::FactTables;
    /// let removals = FactTables::embedded_api_removals_json();
    /// let facts = r#"{"as_of": "2026-08-22", "api_removals": {"as_of": "2026-07-24"},
    ///     "runtime_floors": [{"runtime": "containerd", "kubelet_from": "1.36", "below": "2.x",
    ///                         "severity": "error", "effect": "", "source": ""}]}"#;
    /// let err = FactTables::from_json(facts, "newer.json", removals, "removals.json").unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "newer.json: runtime_floors[0]: field below: \"2.x\" is not a version: unexpected character 'x' in minor"
    /// );
    /// ```
    pub fn from_json(
        facts: &str,
        facts_origin: &str,
        removals: &str,
        removals_origin: &str,
    ) -> Result<FactTables, TableError> {
        let raw: RawFacts = document(facts, facts_origin)?;
        let removal_rows: Vec<serde_json::Value> = document(removals, removals_origin)?;
        let api_removals = removal_list(removal_rows, removals_origin)?;
        let o = facts_origin;
        let mut tables = FactTables {
            as_of: raw.as_of,
            removals_as_of: raw.api_removals.as_of,
            by_kind: HashMap::new(),
            by_resource: HashMap::new(),
            api_removals,
            cgroup_v1: rows::<CgroupRule>("cgroup_v1", raw.cgroup_v1, o)?,
            runtime_floors: rows::<RuntimeFloor>("runtime_floors", raw.runtime_floors, o)?,
            runtime_matrix: rows::<RuntimeMatrixRow>("runtime_matrix", raw.runtime_matrix, o)?,
            etcd_floors: rows::<EtcdFloor>("etcd_floors", raw.etcd_floors, o)?,
            kubeadm_config_apis: rows::<KubeadmConfigApi>(
                "kubeadm_config_apis",
                raw.kubeadm_config_apis,
                o,
            )?,
            kubeadm_feature_gates_removed: rows::<RemovedFeatureGate>(
                "kubeadm_feature_gates_removed",
                raw.kubeadm_feature_gates_removed,
                o,
            )?,
            legacy_package_hosts: rows::<LegacyHost>(
                "legacy_package_hosts",
                raw.legacy_package_hosts,
                o,
            )?,
            disk_floors: rows::<DiskFloor>("disk_floors", raw.disk_floors, o)?,
        };
        tables.cgroup_v1.sort_by_key(|r| r.kubelet_from);
        tables.runtime_floors.sort_by_key(|r| r.kubelet_from);
        tables.kubeadm_config_apis.sort_by_key(|r| r.read_from);
        tables.validate(o)?;
        for (i, r) in tables.api_removals.iter().enumerate() {
            tables
                .by_kind
                .insert((r.group_version.clone(), r.kind.clone()), i);
            tables
                .by_resource
                .insert((r.group_version.clone(), guess_resource(&r.kind)), i);
        }
        Ok(tables)
    }

    /// Checks what serde cannot: no empty matrix row, no API version read before it is
    /// introduced and after it is removed.
    fn validate(&self, origin: &str) -> Result<(), TableError> {
        let err = |row: String, field: &str, message: String| {
            TableError::new(
                origin,
                FileProblem::new(message)
                    .in_entry(TableRow(row))
                    .in_field(field),
            )
        };
        for (i, r) in self.runtime_matrix.iter().enumerate() {
            if r.supported.is_empty() {
                return Err(err(
                    format!("runtime_matrix[{i}]"),
                    "supported",
                    "lists no version".into(),
                ));
            }
        }
        for (i, a) in self.kubeadm_config_apis.iter().enumerate() {
            if let Some(r) = a.removed_in
                && r <= a.read_from
            {
                return Err(err(
                    format!("kubeadm_config_apis[{i}]"),
                    "removed_in",
                    format!("{r} is not after read_from ({})", a.read_from),
                ));
            }
        }
        Ok(())
    }
}

/// Reads the API removals, each named by its position and API in messages, refusing an API
/// listed twice and a removal not after its deprecation.
fn removal_list(
    values: Vec<serde_json::Value>,
    origin: &str,
) -> Result<Vec<ApiRemoval>, TableError> {
    let mut out: Vec<ApiRemoval> = Vec::with_capacity(values.len());
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for (i, v) in values.into_iter().enumerate() {
        let label = match (
            v.get("group_version").and_then(serde_json::Value::as_str),
            v.get("kind").and_then(serde_json::Value::as_str),
        ) {
            (Some(gv), Some(k)) => format!("entry {i} ({gv} {k})"),
            _ => format!("entry {i}"),
        };
        let err = |field: Option<String>, message: String| {
            let mut p = FileProblem::new(message).in_entry(TableRow(label.clone()));
            if let Some(f) = field {
                p = p.in_field(f);
            }
            TableError::new(origin, p)
        };
        let row: ApiRemoval = serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            err((path != ".").then_some(path), json_message(e.inner()))
        })?;
        if let Some(d) = row.deprecated_in
            && d >= row.removed_in
        {
            return Err(err(
                Some("removed_in".into()),
                format!("{} is not after deprecated_in ({d})", row.removed_in),
            ));
        }
        let key = (row.group_version.clone(), row.kind.clone());
        if let Some(first) = seen.insert(key, i) {
            return Err(err(
                Some("kind".into()),
                format!("listed twice (first as entry {first})"),
            ));
        }
        out.push(row);
    }
    Ok(out)
}
