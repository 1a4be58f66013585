//! Reading a release calendar from JSON (the format of `data/k8s-releases.json`).
use std::fmt;

use jiff::civil::Date;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{MinorRelease, PatchRelease, ReleaseCalendar};
use crate::diagnostics::{
    Entry, FileProblem, Locator, SourceError, Step, json_document, json_message,
};
use crate::{KubeVersion, Minor};

/// Why a release calendar (or a kubeadm version table, [`crate::bundled::BundleTable`]) could
/// not be read. The message names the source, the line and column, the minor and the field:
/// `newer.json:40:19: minor 1.28: field patches[2].version: v1.29.1 is not a patch of 1.28`.
pub type CalendarError = SourceError<MinorEntry>;

/// The calendar entry a problem is about: its minor (`1.28`), or `minors[3]` when it has no
/// readable one. Said `minor 1.28`, or `minors[3]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinorEntry(String);

impl fmt::Display for MinorEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.starts_with("minors[") {
            f.write_str(&self.0)
        } else {
            write!(f, "minor {}", self.0)
        }
    }
}

impl Entry for MinorEntry {
    const FIELD_PREFIX: &'static str = "field ";
}

impl CalendarError {
    /// The minor entry at fault (`1.28`, or `minors[3]` when it has no readable name).
    pub fn minor(&self) -> Option<&str> {
        self.entry().map(|m| m.0.as_str())
    }

    /// A problem with the file `origin`, at `location` (line, column) where known, in the entry
    /// of minor `minor` (or `minors[3]`), at `field` inside it.
    pub(crate) fn at(
        origin: &str,
        location: Option<(usize, usize)>,
        minor: Option<String>,
        field: Option<String>,
        reason: String,
    ) -> CalendarError {
        SourceError::new(
            origin,
            FileProblem {
                location,
                entry: minor.map(MinorEntry),
                field,
                message: reason,
            },
        )
    }
}

/// A JSON file whose `minors` lists one entry per Kubernetes minor (the release calendar,
/// the kubeadm version table [`crate::bundled::BundleTable`]), read so that every problem
/// names the file, the line and column of the value at fault, the entry's minor and the field.
pub(crate) struct MinorsFile<'t> {
    text: &'t str,
    origin: &'t str,
    locator: Locator<'t>,
}

impl<'t> MinorsFile<'t> {
    /// The file `origin`, whose content is `text`.
    pub fn new(text: &'t str, origin: &'t str) -> Self {
        MinorsFile {
            text,
            origin,
            locator: Locator::new(text),
        }
    }

    /// A problem at `field` of the entry at `index` of `minors` (named by its minor, or
    /// `minors[3]`), located at the value at fault, else at its entry, else at the file's
    /// first value.
    pub fn error(
        &self,
        index: Option<usize>,
        minor: Option<String>,
        field: Option<String>,
        reason: String,
    ) -> CalendarError {
        let at = locate(&self.locator, index, field.as_deref());
        CalendarError::at(self.origin, at, minor, field, reason)
    }

    /// The file's top level as `T`; a syntax error is located where the parser stopped, and
    /// nothing may follow the document.
    pub fn top<T: DeserializeOwned>(&self) -> Result<T, CalendarError> {
        json_document(self.text).map_err(|p: FileProblem<MinorEntry>| match p.location {
            Some(_) => CalendarError::new(self.origin, p),
            None => self.error(None, None, p.field, p.message),
        })
    }

    /// The entries of `minors` (the file's list, in order), each read as `R` and checked by
    /// `check` (a refusal is `(field, reason)`); a minor (`minor_of`) listed twice is refused.
    pub fn entries<R: DeserializeOwned, T>(
        &self,
        minors: Vec<serde_json::Value>,
        check: impl Fn(R) -> Result<T, (String, String)>,
        minor_of: impl Fn(&T) -> Minor,
    ) -> Result<Vec<T>, CalendarError> {
        let mut entries: Vec<T> = Vec::with_capacity(minors.len());
        for (index, value) in minors.into_iter().enumerate() {
            let label = value
                .get("minor")
                .and_then(serde_json::Value::as_str)
                .map_or_else(|| format!("minors[{index}]"), str::to_string);
            let raw: R = serde_path_to_error::deserialize(value).map_err(|e| {
                let path = e.path().to_string();
                let field = (path != ".").then_some(path);
                let reason = json_message(e.inner());
                self.error(Some(index), Some(label.clone()), field, reason)
            })?;
            let entry = check(raw).map_err(|(field, reason)| {
                self.error(Some(index), Some(label.clone()), Some(field), reason)
            })?;
            if entries.iter().any(|e| minor_of(e) == minor_of(&entry)) {
                let twice = "listed twice".to_string();
                return Err(self.error(Some(index), Some(label), Some("minor".into()), twice));
            }
            entries.push(entry);
        }
        Ok(entries)
    }
}

/// Where the problem at `field` of the entry at `index` of a file's `minors` list is written:
/// the value at fault, else (a missing field) its entry, else the file's first value.
fn locate(
    locator: &Locator<'_>,
    index: Option<usize>,
    field: Option<&str>,
) -> Option<(usize, usize)> {
    let entry: Vec<Step> = match index {
        Some(i) => vec![Step::key("minors"), Step::Index(i)],
        None => Vec::new(),
    };
    let mut path = entry.clone();
    path.extend(field.map(Step::of_field).unwrap_or_default());
    let field_at = field.and_then(|_| locator.value(&path));
    field_at.or_else(|| match index {
        Some(_) => locator.entry(&entry),
        None => locator.value(&[]),
    })
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    as_of: Option<Date>,
    minors: Vec<serde_json::Value>,
}

#[derive(Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawStatus {
    #[default]
    Released,
    Planned,
}

#[derive(Deserialize)]
struct RawMinor {
    minor: Minor,
    #[serde(default)]
    status: RawStatus,
    #[serde(default)]
    released: Option<Date>,
    #[serde(default)]
    planned_release: Option<Date>,
    #[serde(default)]
    maintenance_mode_start: Option<Date>,
    #[serde(default)]
    end_of_life: Option<Date>,
    #[serde(default)]
    end_of_life_planned: Option<Date>,
    #[serde(default)]
    final_patch: Option<KubeVersion>,
    #[serde(default)]
    patches: Vec<PatchRelease>,
    #[serde(default)]
    upcoming_patches: Vec<RawUpcoming>,
}

#[derive(Deserialize)]
struct RawUpcoming {
    version: KubeVersion,
    #[serde(default)]
    target_date: Option<Date>,
}

impl ReleaseCalendar {
    /// Reads a calendar in the format of the embedded `k8s-releases.json` (unknown fields are
    /// ignored, `null` means unknown). `origin` names the source in error messages.
    ///
    /// ```
    /// use kupgrade_core::lifecycle::ReleaseCalendar;
    /// let text = r#"{"minors": [{"minor": "1.28", "released": "2023-08-15",
    ///     "patches": [{"version": "1.28.0", "date": "2023-08-15"},
    ///                 {"version": "1.29.1", "date": "2023-09-13"}]}]}"#;
    /// let err = ReleaseCalendar::from_json(text, "newer.json").unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "newer.json:3:29: minor 1.28: field patches[1].version: v1.29.1 is not a patch of 1.28"
    /// );
    /// assert_eq!(err.location(), Some((3, 29)));
    /// ```
    pub fn from_json(text: &str, origin: &str) -> Result<ReleaseCalendar, CalendarError> {
        // Every problem names the line of the value at fault (the entry's, for a missing
        // field).
        let reader = MinorsFile::new(text, origin);
        let file: RawFile = reader.top()?;
        let minors = reader.entries(file.minors, validate, |m: &MinorRelease| m.minor)?;
        Ok(ReleaseCalendar::from_minors(minors, file.as_of))
    }
}

/// Checks one entry; an error is `(field, reason)`.
fn validate(raw: RawMinor) -> Result<MinorRelease, (String, String)> {
    let m = raw.minor;
    let mut patches = raw.patches;
    for (i, p) in patches.iter().enumerate() {
        if p.version.minor() != m {
            return Err((
                format!("patches[{i}].version"),
                format!("{} is not a patch of {m}", p.version),
            ));
        }
        if patches[..i].iter().any(|q| q.version == p.version) {
            return Err((
                format!("patches[{i}].version"),
                format!("{} is listed twice", p.version),
            ));
        }
    }
    for (i, p) in raw.upcoming_patches.iter().enumerate() {
        if p.version.minor() != m {
            return Err((
                format!("upcoming_patches[{i}].version"),
                format!("{} is not a patch of {m}", p.version),
            ));
        }
    }
    if let Some(v) = &raw.final_patch
        && v.minor() != m
    {
        return Err(("final_patch".into(), format!("{v} is not a patch of {m}")));
    }
    let order = [
        ("released", raw.released.or(raw.planned_release)),
        ("maintenance_mode_start", raw.maintenance_mode_start),
        ("end_of_life", raw.end_of_life),
    ];
    for (i, (later, later_date)) in order.iter().enumerate() {
        for (earlier, earlier_date) in &order[..i] {
            if let (Some(a), Some(b)) = (earlier_date, later_date)
                && b < a
            {
                return Err((
                    (*later).to_string(),
                    format!("{b} is before {earlier} ({a})"),
                ));
            }
        }
    }
    patches.sort_by(|a, b| a.version.cmp(&b.version));
    Ok(MinorRelease {
        minor: m,
        released: raw.released,
        planned_release: raw.planned_release,
        maintenance_mode_start: raw.maintenance_mode_start,
        end_of_life: raw.end_of_life,
        end_of_life_planned: raw.end_of_life_planned,
        final_patch: raw.final_patch,
        patches,
        upcoming_patches: raw
            .upcoming_patches
            .into_iter()
            .map(|u| PatchRelease {
                version: u.version,
                date: u.target_date,
            })
            .collect(),
        planned: raw.status == RawStatus::Planned,
    })
}
