//! The cluster inventory the examples read: a file, or the bundled HA sample.
use anyhow::Context;
use kupgrade_core::ClusterState;

/// The bundled HA sample (1.28, 3 control-plane nodes and 6 workers), compiled in so that the
/// examples find it wherever they run.
const BUNDLED: &str = include_str!("../clusters/ha.yaml");

/// How messages name the bundled sample.
pub(crate) const BUNDLED_NAME: &str = "clusters/ha.yaml (bundled)";

/// Reads and parses the inventory `file`, or the bundled sample when there is none; returns
/// the state and the name messages use for it.
pub(crate) fn read(file: Option<&str>) -> anyhow::Result<(ClusterState, String)> {
    let (text, name) = match file {
        Some(f) => (
            std::fs::read_to_string(f).with_context(|| format!("reading {f}"))?,
            f.to_string(),
        ),
        None => (BUNDLED.to_string(), BUNDLED_NAME.to_string()),
    };
    Ok((kupgrade_core::inventory::parse(&text, &name)?, name))
}
