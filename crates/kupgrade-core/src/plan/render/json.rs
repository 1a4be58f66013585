//! JSON and YAML: the serde form of [`UpgradePlan`], described by [`SCHEMA`](super::super::SCHEMA).
use std::io;

use crate::plan::UpgradePlan;

/// The plan as pretty-printed JSON (with a final newline).
pub fn to_json(plan: &UpgradePlan) -> String {
    let mut s = serde_json::to_string_pretty(plan).unwrap_or_default();
    s.push('\n');
    s
}

/// Writes [`to_json`] to `out` as it goes.
pub fn write_json(plan: &UpgradePlan, out: &mut dyn io::Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, plan)?;
    out.write_all(b"\n")
}

/// Writes [`to_yaml`] to `out` as it goes.
pub fn write_yaml(plan: &UpgradePlan, out: &mut dyn io::Write) -> io::Result<()> {
    serde_yaml_ng::to_writer(out, plan).map_err(io::Error::other)
}

/// The plan as YAML.
pub fn to_yaml(plan: &UpgradePlan) -> String {
    serde_yaml_ng::to_string(plan).unwrap_or_default()
}

/// Reads a plan written by [`to_json`].
pub fn from_json(text: &str) -> Result<UpgradePlan, String> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| format!("{}: {}", e.path(), e.inner()))
}

/// Reads a plan written by [`to_yaml`].
pub fn from_yaml(text: &str) -> Result<UpgradePlan, String> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| format!("{}: {}", e.path(), e.inner()))
}
