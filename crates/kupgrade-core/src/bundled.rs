//! The etcd and CoreDNS versions kubeadm deploys with each Kubernetes minor.
//!
//! Embedded from `data/kubeadm-bundled-versions.json` (kept equal to the project's reference
//! copy by CI); a newer table in the same format loads with [`BundleTable::from_json`] and
//! rides along with the release calendar ([`ReleaseCalendar::with_bundles`]), which is where
//! the planner reads it. Values are those of each minor's `.0` kubeadm; later kubeadm patches
//! have backported newer etcd builds, so treat a newer etcd than listed as fine.
//!
//! ```
//! use kupgrade_core::bundled::BundleTable;
//! use kupgrade_core::Minor;
//! let text = r#"{"minors": [
//!   {"minor": "1.37", "etcd": "3.6.9-0", "coredns": "v1.13.2"}
//! ]}"#;
//! let table = BundleTable::from_json(text, "kubeadm-versions.json")?;
//! let row = table.get(Minor::new(1, 37)).unwrap();
//! assert_eq!(row.coredns.as_ref().unwrap().to_string(), "v1.13.2");
//! # Ok::<(), kupgrade_core::lifecycle::CalendarError>(())
//! ```
//!
//! [`ReleaseCalendar::with_bundles`]: crate::lifecycle::ReleaseCalendar::with_bundles
use std::sync::OnceLock;

use serde::Deserialize;

use crate::lifecycle::{CalendarError, MinorsFile};
use crate::{KubeVersion, Minor};

const DATA: &str = include_str!("../data/kubeadm-bundled-versions.json");

/// What kubeadm ships for one Kubernetes minor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundled {
    /// The Kubernetes minor.
    pub minor: Minor,
    /// The etcd image tag (`3.5.9-0`), when known.
    pub etcd: Option<KubeVersion>,
    /// The CoreDNS image tag (`v1.10.1`), when known.
    pub coredns: Option<KubeVersion>,
}

/// A table of what kubeadm ships per minor, oldest first, one row per minor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleTable {
    rows: Vec<Bundled>,
}

#[derive(Deserialize)]
struct File {
    minors: Vec<serde_json::Value>,
}
#[derive(Deserialize)]
struct Row {
    minor: Minor,
    #[serde(default)]
    etcd: Option<KubeVersion>,
    #[serde(default)]
    coredns: Option<KubeVersion>,
}

impl BundleTable {
    /// The table embedded in this crate (1.23 onwards), parsed once.
    pub fn embedded() -> &'static BundleTable {
        static TABLE: OnceLock<BundleTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            BundleTable::from_json(DATA, "kubeadm-bundled-versions.json (embedded)")
                .expect("the embedded kubeadm version table is valid (tested)")
        })
    }

    /// Reads a table in the format of the embedded `kubeadm-bundled-versions.json`: an object
    /// whose `minors` lists `{"minor": "1.28", "etcd": "3.5.9-0", "coredns": "v1.10.1"}`
    /// (`null` or absent: unknown; other fields are ignored). `origin` names the source in
    /// error messages, which give the line, the minor and the field.
    ///
    /// ```
    /// use kupgrade_core::bundled::BundleTable;
    /// let text = "{\"minors\": [\n  {\"minor\": \"1.37\", \"etcd\": \"3.6.x\"}\n]}";
    /// let err = BundleTable::from_json(text, "kubeadm-versions.json").unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "kubeadm-versions.json:2:29: minor 1.37: field etcd: \"3.6.x\" is not a version: unexpected character 'x' in patch"
    /// );
    /// ```
    pub fn from_json(text: &str, origin: &str) -> Result<BundleTable, CalendarError> {
        let reader = MinorsFile::new(text, origin);
        let file: File = reader.top()?;
        let row = |r: Row| {
            Ok(Bundled {
                minor: r.minor,
                etcd: r.etcd,
                coredns: r.coredns,
            })
        };
        let mut rows = reader.entries(file.minors, row, |r: &Bundled| r.minor)?;
        rows.sort_by_key(|r| r.minor);
        Ok(BundleTable { rows })
    }

    /// What kubeadm ships for `minor`, if the table has a row for it.
    pub fn get(&self, minor: Minor) -> Option<&Bundled> {
        self.rows
            .binary_search_by_key(&minor, |r| r.minor)
            .ok()
            .map(|i| &self.rows[i])
    }

    /// Every row, oldest first.
    pub fn rows(&self) -> &[Bundled] {
        &self.rows
    }
}

/// What kubeadm ships for `minor` by the embedded table, if it knows it (1.23 onwards).
pub fn bundled(minor: Minor) -> Option<&'static Bundled> {
    BundleTable::embedded().get(minor)
}

/// Every minor's bundle in the embedded table, oldest first.
pub fn all() -> &'static [Bundled] {
    BundleTable::embedded().rows()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_the_reference_rows() {
        let b = bundled(Minor::new(1, 28)).unwrap();
        assert_eq!(b.etcd.as_ref().unwrap().to_plain_string(), "3.5.9-0");
        assert_eq!(b.coredns.as_ref().unwrap().to_string(), "v1.10.1");
        assert_eq!(bundled(Minor::new(1, 36)).unwrap().coredns, None);
        assert!(bundled(Minor::new(1, 22)).is_none());
        assert!(all().windows(2).all(|w| w[0].minor < w[1].minor));
    }

    #[test]
    fn a_table_from_a_file_replaces_the_embedded_rows() {
        let text = r#"{"note": "ignored", "minors": [
            {"minor": "1.38", "etcd": "3.6.10-0", "coredns": "v1.13.2"},
            {"minor": "1.37", "etcd": "3.6.9-0", "coredns": null}
        ]}"#;
        let t = BundleTable::from_json(text, "k.json").unwrap();
        let minors: Vec<String> = t.rows().iter().map(|r| r.minor.to_string()).collect();
        assert_eq!(minors, ["1.37", "1.38"], "sorted");
        assert_eq!(t.get(Minor::new(1, 37)).unwrap().coredns, None);
        assert!(t.get(Minor::new(1, 28)).is_none(), "only the file's rows");
    }

    #[test]
    fn errors_name_the_file_line_minor_and_field() {
        let cases = [
            (
                "{\"minors\": [\n  {\"minor\": \"1.30\"},\n  {\"minor\": \"1.30\", \"etcd\": \"3.5.12-0\"}\n]}",
                "k.json:3:13: minor 1.30: field minor: listed twice",
            ),
            (
                "{\"minors\": [\n  {\"etcd\": \"3.5.12-0\"}\n]}",
                "k.json:2:4: minors[0]: missing field `minor`",
            ),
            (
                "{\"minors\": [\n  {\"minor\": \"1.30\", \"coredns\": 7}\n]}",
                "k.json:2:32: minor 1.30: field coredns: invalid type: integer `7`, expected a string",
            ),
            (
                "{\"minors\": {}}",
                "k.json:1:12: field minors: invalid type: map, expected a sequence",
            ),
            (
                "{\"minors\": [\n  {,}\n]}",
                "k.json:2:4: key must be a string",
            ),
            ("{}", "k.json:1:1: missing field `minors`"),
        ];
        for (text, want) in cases {
            let e = BundleTable::from_json(text, "k.json").unwrap_err();
            assert_eq!(e.to_string(), want, "{text}");
        }
    }
}
