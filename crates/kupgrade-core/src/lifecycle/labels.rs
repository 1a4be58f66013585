//! The version labels the Kubernetes release team publishes, as `kubeadm upgrade plan` reads
//! them: `stable.txt` (the newest stable release) and `stable-1.N.txt` (the newest patch of
//! 1.N) under `https://dl.k8s.io/release` or a mirror, each holding one version (`v1.31.2`).
//! Reading them is the caller's business (kupgrade-core does no I/O); here they are parsed
//! and merged over a calendar ([`ReleaseCalendar::merge_labels`] says how).
use std::fmt;

use jiff::civil::Date;

use super::{MinorRelease, PatchRelease, ReleaseCalendar};
use crate::{KubeVersion, Minor};

/// The labels read on one day.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReleaseLabels {
    /// `stable.txt`: the newest stable release, if read.
    pub stable: Option<KubeVersion>,
    /// `stable-1.N.txt`: the newest patch of each minor read.
    pub minors: Vec<KubeVersion>,
}

/// The file name of a label: `stable.txt` (`None`), `stable-1.29.txt`.
pub fn label_file(minor: Option<Minor>) -> String {
    match minor {
        None => "stable.txt".to_string(),
        Some(m) => format!("stable-{m}.txt"),
    }
}

/// A label whose content is not what it should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelError {
    file: String,
    reason: String,
}

impl LabelError {
    /// The label's file name (`stable-1.29.txt`).
    pub fn file(&self) -> &str {
        &self.file
    }
    /// What is wrong.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.reason)
    }
}

impl std::error::Error for LabelError {}

/// The most bytes a label may hold (a version and a newline; anything longer is not one).
pub const MAX_LABEL_BYTES: usize = 64;

/// Reads the content of a label: one stable upstream version and an optional final newline.
/// `minor` is the minor of a `stable-1.N.txt` label (`None`: `stable.txt`).
///
/// ```
/// use kupgrade_core::lifecycle::parse_label;
/// use kupgrade_core::Minor;
/// assert_eq!(parse_label("v1.29.3\n", Some(Minor::new(1, 29)))?.to_string(), "v1.29.3");
/// let e = parse_label("v1.30.1\n", Some(Minor::new(1, 29))).unwrap_err();
/// assert_eq!(e.to_string(), "stable-1.29.txt: v1.30.1 is not a patch of 1.29");
/// let e = parse_label("<html>Not found</html>", None).unwrap_err();
/// assert_eq!(
///     e.to_string(),
///     r#"stable.txt: "<html>Not found</html>" is not a version: unexpected character '<' in major"#
/// );
/// # Ok::<(), kupgrade_core::lifecycle::LabelError>(())
/// ```
pub fn parse_label(text: &str, minor: Option<Minor>) -> Result<KubeVersion, LabelError> {
    let err = |reason: String| LabelError {
        file: label_file(minor),
        reason,
    };
    if text.len() > MAX_LABEL_BYTES {
        return Err(err(format!(
            "{} bytes, more than a version label holds ({MAX_LABEL_BYTES})",
            text.len()
        )));
    }
    let line = text.trim();
    if line.is_empty() {
        return Err(err("empty: expected a version such as v1.31.2".into()));
    }
    let v = KubeVersion::parse(line).map_err(|e| {
        let shown: String = line.chars().take(40).collect();
        err(format!("{shown:?} is not a version: {}", e.reason()))
    })?;
    if !v.is_stable() {
        return Err(err(format!(
            "{v} is a pre-release ({}); a stable label names a release",
            v.phase()
        )));
    }
    if v.vendor().is_some() || v.build().is_some() {
        return Err(err(format!("{v} is not an upstream release")));
    }
    if let Some(m) = minor
        && v.minor() != m
    {
        return Err(err(format!("{v} is not a patch of {m}")));
    }
    Ok(v)
}

/// A calendar with labels merged over it, and what the labels changed, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelMerge {
    /// The merged calendar.
    pub calendar: ReleaseCalendar,
    /// One sentence per change (or ignored label), in version order.
    pub changes: Vec<String>,
}

impl ReleaseCalendar {
    /// This calendar with `labels`, read on `read_on`, merged over it.
    ///
    /// # Merged conservatively
    ///
    /// A label proves that its version was released by the day it was read, and nothing about
    /// when. So:
    ///
    /// - a version the calendar lists changes nothing (its recorded date stands);
    /// - a newer patch of a minor the calendar knows is added, dated the day the labels were read
    ///   (so a plan dated earlier does not use it);
    /// - a minor the calendar has as planned becomes released on its planned date, or on the day
    ///   read if that is earlier;
    /// - a minor the calendar lacks is added, released on the date the release cadence predicts
    ///   or the day read, whichever is earlier (the earlier release gives the earlier end of life,
    ///   so support is never overstated), with maintenance mode and end of life estimated by the
    ///   12 + 2 month rule and marked estimated;
    /// - a label older than the calendar's newest patch of its minor (a stale mirror) is ignored,
    ///   and said so;
    /// - with `stable.txt` read (and not older than the calendar's newest release), the calendar
    ///   is complete up to the day read ([`as_of`](ReleaseCalendar::as_of) moves there).
    ///
    /// ```
    /// use jiff::civil::date;
    /// use kupgrade_core::lifecycle::{ReleaseCalendar, ReleaseLabels, parse_label};
    /// use kupgrade_core::Minor;
    ///
    /// let labels = ReleaseLabels {
    ///     stable: Some(parse_label("v1.39.2\n", None)?),
    ///     minors: vec![parse_label("v1.37.4\n", Some(Minor::new(1, 37)))?],
    /// };
    /// let merged = ReleaseCalendar::embedded().merge_labels(&labels, date(2027, 6, 10));
    /// let calendar = merged.calendar;
    /// assert_eq!(calendar.latest_patch(Minor::new(1, 37)).unwrap().to_string(), "v1.37.4");
    /// assert_eq!(calendar.newest_stable(Some(date(2027, 6, 10))).unwrap().to_string(), "v1.39.2");
    /// assert_eq!(calendar.as_of(), Some(date(2027, 6, 10)));
    /// assert!(calendar.status(Minor::new(1, 39), date(2027, 6, 10)).estimated);
    /// # Ok::<(), kupgrade_core::lifecycle::LabelError>(())
    /// ```
    pub fn merge_labels(&self, labels: &ReleaseLabels, read_on: Date) -> LabelMerge {
        let mut calendar = self.clone();
        let mut changes = Vec::new();
        let mut versions: Vec<&KubeVersion> =
            labels.minors.iter().chain(labels.stable.iter()).collect();
        versions.sort();
        versions.dedup();
        for v in versions {
            if let Some(change) = calendar.merge_one(v, read_on) {
                changes.push(change);
            }
        }
        // `stable.txt` names the newest release, unless it comes from a stale mirror.
        let current = labels
            .stable
            .as_ref()
            .is_some_and(|s| self.newest_stable(None).is_none_or(|n| *s >= n));
        if current && calendar.as_of.is_none_or(|d| d < read_on) {
            calendar.as_of = Some(read_on);
        }
        LabelMerge { calendar, changes }
    }

    /// Merges one label's version; what changed, if anything.
    fn merge_one(&mut self, v: &KubeVersion, read_on: Date) -> Option<String> {
        let m = v.minor();
        let dated = PatchRelease {
            version: v.clone(),
            date: Some(read_on),
        };
        if self.minors.first().is_some_and(|first| m < first.minor) {
            return Some(format!(
                "{v}: older than every minor this calendar lists; ignored"
            ));
        }
        let Some(i) = self.minors.iter().position(|r| r.minor == m) else {
            // A minor the calendar lacks: released when the cadence says, or when read.
            let estimate = self.window(m).and_then(|w| w.released);
            let released = estimate.map_or(read_on, |e| e.min(read_on));
            self.minors.push(MinorRelease {
                minor: m,
                released: Some(released),
                planned_release: None,
                maintenance_mode_start: None,
                end_of_life: None,
                end_of_life_planned: None,
                final_patch: None,
                patches: vec![dated],
                upcoming_patches: Vec::new(),
                planned: false,
            });
            self.minors.sort_by_key(|r| r.minor);
            return Some(format!(
                "{v}: {m} is new to this calendar; taken as released on {released} (the earlier of the release cadence's estimate and the day read), maintenance mode and end of life estimated"
            ));
        };
        let entry = &mut self.minors[i];
        if entry.patches.iter().any(|p| p.version == *v) {
            return None;
        }
        if let Some(newest) = entry.patches.iter().map(|p| &p.version).max()
            && newest > v
        {
            return Some(format!(
                "{v}: older than the calendar's newest patch of {m} ({newest}); ignored"
            ));
        }
        entry.patches.push(dated);
        entry.patches.sort_by(|a, b| a.version.cmp(&b.version));
        if entry.released.is_none() {
            let released = entry.planned_release.map_or(read_on, |p| p.min(read_on));
            entry.released = Some(released);
            entry.planned = false;
            return Some(format!(
                "{v}: {m} is released (planned in this calendar); taken as released on {released}"
            ));
        }
        Some(format!("{v}: a newer patch of {m}, released by {read_on}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::v;
    use jiff::civil::date;

    #[test]
    fn label_contents_are_checked() {
        let m29 = Some(Minor::new(1, 29));
        assert_eq!(parse_label("v1.29.3", m29).unwrap(), v("1.29.3"));
        assert_eq!(parse_label("  v1.29.3\r\n", m29).unwrap(), v("1.29.3"));
        let cases = [
            (
                "",
                m29,
                "stable-1.29.txt: empty: expected a version such as v1.31.2",
            ),
            (
                "v1.30.0-rc.1\n",
                None,
                "stable.txt: v1.30.0-rc.1 is a pre-release (rc); a stable label names a release",
            ),
            (
                "v1.29.3-eks-5e0fdde\n",
                m29,
                "stable-1.29.txt: v1.29.3-eks-5e0fdde is not an upstream release",
            ),
        ];
        for (text, minor, want) in cases {
            assert_eq!(parse_label(text, minor).unwrap_err().to_string(), want);
        }
        let long = "v1.29.3".repeat(20);
        assert_eq!(
            parse_label(&long, None).unwrap_err().reason(),
            "140 bytes, more than a version label holds (64)"
        );
    }

    #[test]
    fn newer_patches_are_dated_the_day_read_and_known_ones_change_nothing() {
        let cal = ReleaseCalendar::embedded();
        let read_on = date(2026, 11, 20);
        let newest_34 = cal.latest_patch(Minor::new(1, 34)).unwrap();
        let labels = ReleaseLabels {
            stable: None,
            minors: vec![newest_34.clone(), v("1.35.99"), v("1.33.0")],
        };
        let merged = cal.merge_labels(&labels, read_on);
        assert_eq!(
            merged.changes,
            ["v1.35.99: a newer patch of 1.35, released by 2026-11-20"]
        );
        let c = &merged.calendar;
        assert_eq!(
            c.latest_patch_on(Minor::new(1, 35), read_on),
            Some(v("1.35.99"))
        );
        assert_ne!(
            c.latest_patch_on(Minor::new(1, 35), date(2026, 11, 19)),
            Some(v("1.35.99")),
            "not before the day read"
        );
        assert_eq!(c.as_of(), cal.as_of(), "no stable.txt: as_of stays");
        assert_eq!(c.minor(Minor::new(1, 34)), cal.minor(Minor::new(1, 34)));
    }

    #[test]
    fn a_label_older_than_the_calendars_newest_patch_is_ignored() {
        let text = r#"{"minors": [{"minor": "1.30", "released": "2024-04-17", "patches": [
            {"version": "1.30.0", "date": "2024-04-17"}, {"version": "1.30.2", "date": "2024-06-11"}]}]}"#;
        let cal = ReleaseCalendar::from_json(text, "c.json").unwrap();
        let labels = ReleaseLabels {
            stable: Some(v("1.30.1")),
            minors: vec![v("1.29.9")],
        };
        let merged = cal.merge_labels(&labels, date(2024, 7, 1));
        assert_eq!(
            merged.changes,
            [
                "v1.29.9: older than every minor this calendar lists; ignored",
                "v1.30.1: older than the calendar's newest patch of 1.30 (v1.30.2); ignored",
            ]
        );
        assert_eq!(merged.calendar.minors(), cal.minors());
        assert_eq!(
            merged.calendar.as_of(),
            None,
            "a stale stable.txt proves nothing"
        );
    }

    #[test]
    fn a_planned_minor_becomes_released_and_a_new_one_is_estimated_conservatively() {
        let cal = ReleaseCalendar::embedded();
        // 1.38 is planned for 2026-12-16 in the embedded calendar.
        let read_on = date(2027, 9, 1);
        let labels = ReleaseLabels {
            stable: Some(v("1.39.1")),
            minors: vec![v("1.38.3")],
        };
        let merged = cal.merge_labels(&labels, read_on);
        let c = &merged.calendar;
        let r38 = c.minor(Minor::new(1, 38)).unwrap();
        assert_eq!(r38.released, Some(date(2026, 12, 16)));
        assert!(!r38.planned);
        // 1.39: the cadence says 2027-04-16, before the day read.
        let r39 = c.minor(Minor::new(1, 39)).unwrap();
        assert_eq!(r39.released, Some(date(2027, 4, 16)));
        let status = c.status(Minor::new(1, 39), read_on);
        assert!(status.estimated);
        assert_eq!(
            status.status,
            crate::SupportStatus::Supported {
                maintenance_from: Some(date(2028, 4, 28))
            }
        );
        assert_eq!(c.newest_stable(Some(read_on)), Some(v("1.39.1")));
        assert_eq!(c.as_of(), Some(read_on));
        assert_eq!(c.unknown_after(read_on), None);
        // Read before the cadence's date, the day read is the release date.
        let early = cal.merge_labels(&labels, date(2027, 3, 1)).calendar;
        assert_eq!(
            early.minor(Minor::new(1, 39)).unwrap().released,
            Some(date(2027, 3, 1))
        );
        assert_eq!(merged.changes.len(), 2);
        assert!(
            merged.changes[1].starts_with(
                "v1.39.1: 1.39 is new to this calendar; taken as released on 2027-04-16"
            ),
            "{:?}",
            merged.changes
        );
    }
}
