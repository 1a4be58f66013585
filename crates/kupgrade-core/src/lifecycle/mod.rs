//! The Kubernetes release calendar: when each minor was (or will be) released, when it enters
//! maintenance mode and reaches end of life, and every patch release with its date.
//!
//! The calendar ships inside the crate ([`ReleaseCalendar::embedded`], built from
//! `data/k8s-releases.json`, which CI keeps equal to the project's reference copy), and a newer
//! one in the same format can be loaded at run time with [`ReleaseCalendar::from_json`]. Every
//! query takes the date as an argument: nothing here reads the clock.
//!
//! # Newer release data
//!
//! The embedded data ends on a date ([`ReleaseCalendar::as_of`]); a date more than four months
//! later is too late for it ([`ReleaseCalendar::unknown_after`], which the planner turns into a
//! warning). A newer calendar loads from a file ([`ReleaseCalendar::from_json`]), a newer table
//! of kubeadm's etcd and CoreDNS versions rides along with it
//! ([`ReleaseCalendar::with_bundles`]), and the release team's version labels (`stable.txt`,
//! `stable-1.N.txt`, which the caller reads) merge over it, conservatively
//! ([`parse_label`], [`ReleaseCalendar::merge_labels`]).
//!
//! # Support windows
//!
//! Since 1.19 a minor is supported for about 14 months (KEP-1498): 12 months of standard
//! support, then 2 months of maintenance mode (only CVE, dependency and critical fixes), then
//! end of life. The calendar's own dates win wherever it has them. Where it has none (a planned
//! minor, or a minor past the end of the table) [`ReleaseCalendar::status`] estimates them and
//! marks the answer [`StatusAnswer::estimated`]:
//!
//! - a minor is expected about 4 months after the previous one (three releases a year), on
//!   the same day of the month (capped at the 28th);
//! - maintenance mode starts on the 28th of the 12th month after the release month, end of life
//!   on the 28th of the 14th month (the dates the release team sets: 1.29, released 2023-12-13,
//!   entered maintenance mode on 2024-12-28 and reached end of life on 2025-02-28).
//!
//! Day boundaries: a minor is released *on* its release date, in maintenance mode *from* its
//! maintenance-mode start, and end of life *from* its end-of-life date.
//!
//! ```
//! use jiff::civil::date;
//! use kupgrade_core::{lifecycle::ReleaseCalendar, lifecycle::SupportStatus, Minor};
//!
//! let calendar = ReleaseCalendar::embedded();
//! let answer = calendar.status(Minor::new(1, 28), date(2024, 9, 1));
//! assert_eq!(
//!     answer.status,
//!     SupportStatus::MaintenanceMode { end_of_life: Some(date(2024, 10, 22)) }
//! );
//! assert!(!answer.estimated);
//! assert_eq!(calendar.latest_patch(Minor::new(1, 28)).unwrap().to_string(), "v1.28.15");
//! ```
use std::fmt;
use std::sync::OnceLock;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::bundled::{BundleTable, Bundled};
use crate::{KubeVersion, Minor};

mod labels;
mod parse;

pub use labels::{LabelError, LabelMerge, MAX_LABEL_BYTES, ReleaseLabels, label_file, parse_label};
pub(crate) use parse::MinorsFile;
pub use parse::{CalendarError, MinorEntry};

const EMBEDDED: &str = include_str!("../../data/k8s-releases.json");

/// Months of standard support before maintenance mode (KEP-1498).
pub const STANDARD_SUPPORT_MONTHS: i32 = 12;
/// Months of maintenance mode before end of life (KEP-1498).
pub const MAINTENANCE_MONTHS: i32 = 2;
/// Months between two minor releases, for estimates (three releases a year).
pub const RELEASE_CADENCE_MONTHS: i32 = 4;
/// Months past a calendar's [`as_of`](ReleaseCalendar::as_of) after which a date is too late
/// for it: a release cadence, so a whole minor may be missing.
pub const STALE_AFTER_MONTHS: i32 = 4;

/// One Kubernetes minor release line and its lifecycle dates. `None` means unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MinorRelease {
    /// The minor (`1.28`).
    pub minor: Minor,
    /// The date of the `x.0` release, once released.
    pub released: Option<Date>,
    /// The planned date of the `x.0` release, for a minor not yet released.
    pub planned_release: Option<Date>,
    /// The first day of maintenance mode.
    pub maintenance_mode_start: Option<Date>,
    /// The end-of-life date: the recorded one for branches that reached it (which can be the
    /// date of the final patch), otherwise the scheduled one.
    pub end_of_life: Option<Date>,
    /// The end-of-life date scheduled while the branch was active, when known.
    pub end_of_life_planned: Option<Date>,
    /// The final patch release, once the branch is closed and it is recorded.
    pub final_patch: Option<KubeVersion>,
    /// Every known patch release (`x.0` included), oldest first.
    pub patches: Vec<PatchRelease>,
    /// Patch releases scheduled but **not** confirmed released (their `date` is the target
    /// date). Never used by the queries.
    pub upcoming_patches: Vec<PatchRelease>,
    /// True for a minor that is only planned (not released when the calendar was made).
    pub planned: bool,
}

/// One patch release (`v1.28.15`) and its date (`None` when unknown).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PatchRelease {
    /// The version.
    pub version: KubeVersion,
    /// The release date (the announced target date where known, otherwise the tag date).
    pub date: Option<Date>,
}

/// Where a minor stands in its support lifecycle on a given date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SupportStatus {
    /// Fully supported: regular patch releases.
    Supported {
        /// When maintenance mode starts, if known.
        maintenance_from: Option<Date>,
    },
    /// Maintenance mode: only CVE, dependency and critical fixes.
    MaintenanceMode {
        /// When support ends, if known.
        end_of_life: Option<Date>,
    },
    /// No more patches.
    EndOfLife {
        /// The end-of-life date.
        since: Date,
    },
    /// Not released yet on that date.
    NotYetReleased {
        /// The (planned or actual) release date, if known.
        expected: Option<Date>,
    },
    /// The calendar cannot say (a minor it does not know and cannot estimate).
    Unknown,
}

impl SupportStatus {
    /// True while the minor receives patches (supported or maintenance mode).
    pub fn is_supported(&self) -> bool {
        matches!(
            self,
            SupportStatus::Supported { .. } | SupportStatus::MaintenanceMode { .. }
        )
    }
    /// True once the minor is past its end of life.
    pub fn is_end_of_life(&self) -> bool {
        matches!(self, SupportStatus::EndOfLife { .. })
    }
}

impl fmt::Display for SupportStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            SupportStatus::Supported {
                maintenance_from: Some(d),
            } => format!("supported (maintenance mode from {d})"),
            SupportStatus::Supported {
                maintenance_from: None,
            } => "supported".to_string(),
            SupportStatus::MaintenanceMode {
                end_of_life: Some(d),
            } => format!("maintenance mode (end of life {d})"),
            SupportStatus::MaintenanceMode { end_of_life: None } => "maintenance mode".to_string(),
            SupportStatus::EndOfLife { since } => format!("end of life since {since}"),
            SupportStatus::NotYetReleased { expected: Some(d) } => {
                format!("not yet released (expected {d})")
            }
            SupportStatus::NotYetReleased { expected: None } => "not yet released".to_string(),
            SupportStatus::Unknown => "unknown".to_string(),
        };
        f.pad(&text)
    }
}

/// The answer to [`ReleaseCalendar::status`]: the status, and whether any date it rests on
/// was estimated by the support-window rule rather than read from the calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StatusAnswer {
    /// The support status.
    #[serde(flatten)]
    pub status: SupportStatus,
    /// True when the status rests on estimated dates (see the [module docs](self)).
    pub estimated: bool,
}

impl fmt::Display for StatusAnswer {
    /// `end of life since 2024-10-22`, or with ` (estimated)` appended.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.estimated {
            f.pad(&format!("{} (estimated)", self.status))
        } else {
            fmt::Display::fmt(&self.status, f)
        }
    }
}

/// The release calendar: every known minor, oldest first, and what kubeadm ships with each
/// (the embedded [`BundleTable`] unless another is given). See the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseCalendar {
    minors: Vec<MinorRelease>,
    as_of: Option<Date>,
    /// `None`: the embedded table.
    bundles: Option<BundleTable>,
}

/// Lifecycle dates of one minor, some perhaps estimated.
struct Window {
    released: Option<Date>,
    maintenance: Option<Date>,
    end_of_life: Option<Date>,
    /// The release date itself is an estimate (a minor past the table).
    release_estimated: bool,
    /// `released` is a planned date: once it passes, the release is assumed.
    release_planned: bool,
    /// Maintenance-mode start or end of life is an estimate.
    dates_estimated: bool,
}

impl ReleaseCalendar {
    /// The calendar embedded in this crate (1.19 to 1.38), parsed once.
    pub fn embedded() -> &'static ReleaseCalendar {
        static CALENDAR: OnceLock<ReleaseCalendar> = OnceLock::new();
        CALENDAR.get_or_init(|| {
            ReleaseCalendar::from_json(EMBEDDED, "k8s-releases.json (embedded)")
                .expect("the embedded release calendar is valid (tested)")
        })
    }

    /// Builds a calendar from minors; they are sorted oldest first. Minors must be distinct
    /// (the JSON loader checks it and reports duplicates).
    pub fn from_minors(mut minors: Vec<MinorRelease>, as_of: Option<Date>) -> ReleaseCalendar {
        minors.sort_by_key(|m| m.minor);
        minors.dedup_by_key(|m| m.minor);
        ReleaseCalendar {
            minors,
            as_of,
            bundles: None,
        }
    }

    /// Uses `table` for what kubeadm ships with each minor (etcd, CoreDNS) instead of the
    /// embedded table.
    pub fn with_bundles(mut self, table: BundleTable) -> ReleaseCalendar {
        self.bundles = Some(table);
        self
    }

    /// The table of what kubeadm ships with each minor.
    pub fn bundles(&self) -> &BundleTable {
        self.bundles
            .as_ref()
            .unwrap_or_else(|| BundleTable::embedded())
    }

    /// What kubeadm ships with minor `m` (etcd, CoreDNS), if the table has a row for it.
    pub fn bundled(&self, m: Minor) -> Option<&Bundled> {
        self.bundles().get(m)
    }

    /// The date of the newest release event the calendar knows about, when it says.
    /// Releases after it are missing from the calendar.
    pub fn as_of(&self) -> Option<Date> {
        self.as_of
    }

    /// The date the calendar is complete up to: its `as_of`, or else the date of the newest
    /// patch it lists.
    pub fn known_until(&self) -> Option<Date> {
        self.as_of.or_else(|| {
            self.minors
                .iter()
                .flat_map(|m| m.patches.iter().filter_map(|p| p.date))
                .max()
        })
    }

    /// When `date` is more than [`STALE_AFTER_MONTHS`] past [`known_until`](Self::known_until),
    /// that date: releases after it are unknown to this calendar, so on `date` the newest
    /// patches (and perhaps a minor) are missing and [`newest_stable`](Self::newest_stable)
    /// answers an older release than the real one.
    ///
    /// ```
    /// use jiff::civil::date;
    /// use kupgrade_core::lifecycle::ReleaseCalendar;
    /// let calendar = ReleaseCalendar::embedded(); // as of 2026-09-15
    /// assert_eq!(calendar.unknown_after(date(2027, 1, 15)), None);
    /// assert_eq!(calendar.unknown_after(date(2027, 1, 16)), Some(date(2026, 9, 15)));
    /// ```
    pub fn unknown_after(&self, date: Date) -> Option<Date> {
        let known = self.known_until()?;
        let limit = known
            .checked_add(jiff::Span::new().months(STALE_AFTER_MONTHS))
            .ok()?;
        (date > limit).then_some(known)
    }

    /// The entry for minor `m`.
    pub fn minor(&self, m: Minor) -> Option<&MinorRelease> {
        self.minors
            .binary_search_by_key(&m, |r| r.minor)
            .ok()
            .map(|i| &self.minors[i])
    }

    /// Every known minor, oldest first.
    pub fn minors(&self) -> &[MinorRelease] {
        &self.minors
    }

    /// The newest known patch of `m` (for example `v1.28.15`).
    pub fn latest_patch(&self, m: Minor) -> Option<KubeVersion> {
        self.minor(m)?
            .patches
            .iter()
            .map(|p| &p.version)
            .max()
            .cloned()
    }

    /// The newest patch of `m` released on or before `date` (patches with an unknown date are
    /// not counted).
    pub fn latest_patch_on(&self, m: Minor, date: Date) -> Option<KubeVersion> {
        released_by(&self.minor(m)?.patches, date).max().cloned()
    }

    /// The newest stable release the calendar knows, or, given a date, the newest one released
    /// on or before it.
    pub fn newest_stable(&self, date: Option<Date>) -> Option<KubeVersion> {
        let all = self.minors.iter().flat_map(|m| m.patches.iter());
        match date {
            None => all.map(|p| &p.version).max().cloned(),
            Some(d) => all
                .filter(|p| p.date.is_some_and(|pd| pd <= d))
                .map(|p| &p.version)
                .max()
                .cloned(),
        }
    }

    /// Whether `v`'s upstream release (vendor suffix and build metadata ignored) is a listed
    /// patch release.
    pub fn knows(&self, v: &KubeVersion) -> bool {
        let release = v.release();
        self.minor(v.minor())
            .is_some_and(|m| m.patches.iter().any(|p| p.version == release))
    }

    /// The support status of minor `m` on `date`. Minors past the table (and a planned minor's
    /// missing dates) are estimated by the 12 + 2 month rule and marked so; minors older than
    /// the table are end of life once the oldest listed minor is, with that date as an upper
    /// bound (estimated).
    pub fn status(&self, m: Minor, date: Date) -> StatusAnswer {
        let unknown = StatusAnswer {
            status: SupportStatus::Unknown,
            estimated: false,
        };
        if let Some(first) = self.minors.first()
            && m < first.minor
        {
            // Older than the table: end of life no later than the oldest listed minor.
            return match self.window_of(first).end_of_life {
                Some(eol) if date >= eol && m.major() == first.minor.major() => StatusAnswer {
                    status: SupportStatus::EndOfLife { since: eol },
                    estimated: true,
                },
                _ => unknown,
            };
        }
        let Some(w) = self.window(m) else {
            return unknown;
        };
        match w.released {
            None if w.release_planned => StatusAnswer {
                status: SupportStatus::NotYetReleased { expected: None },
                estimated: false,
            },
            None => unknown,
            Some(r) if date < r => StatusAnswer {
                status: SupportStatus::NotYetReleased { expected: Some(r) },
                estimated: w.release_estimated,
            },
            Some(_) => {
                let status = match (w.maintenance, w.end_of_life) {
                    (_, Some(eol)) if date >= eol => SupportStatus::EndOfLife { since: eol },
                    (Some(mm), eol) if date >= mm => {
                        SupportStatus::MaintenanceMode { end_of_life: eol }
                    }
                    (mm, _) => SupportStatus::Supported {
                        maintenance_from: mm,
                    },
                };
                StatusAnswer {
                    status,
                    estimated: w.release_estimated || w.release_planned || w.dates_estimated,
                }
            }
        }
    }

    /// The minors supported (standard or maintenance mode) on `date`, oldest first, estimated
    /// ones past the table included.
    pub fn supported_minors(&self, date: Date) -> Vec<Minor> {
        let Some(first) = self.minors.first() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut m = first.minor;
        loop {
            let answer = self.status(m, date);
            if answer.status.is_supported() {
                out.push(m);
            }
            let past_table = self.minors.last().is_some_and(|l| m >= l.minor);
            if past_table && matches!(answer.status, SupportStatus::NotYetReleased { .. }) {
                break;
            }
            if past_table && answer.status == SupportStatus::Unknown {
                break;
            }
            m = m.next();
        }
        out
    }

    /// The lifecycle dates of `m` (at or after the first listed minor), estimated where the
    /// calendar has none.
    fn window(&self, m: Minor) -> Option<Window> {
        if let Some(entry) = self.minor(m) {
            return Some(self.window_of(entry));
        }
        let last = self.minors.last()?;
        if m.major() != last.minor.major() || m < last.minor {
            return None;
        }
        // Past the table: count release cadences from the newest dated minor.
        let (anchor, anchor_date) = self
            .minors
            .iter()
            .rev()
            .find_map(|r| r.released.or(r.planned_release).map(|d| (r.minor, d)))?;
        let steps = i32::try_from(anchor.skew_to(m)).ok()?;
        let released = add_months(anchor_date, steps.checked_mul(RELEASE_CADENCE_MONTHS)?)?;
        let (maintenance, end_of_life) = support_window(released);
        Some(Window {
            released: Some(released),
            maintenance,
            end_of_life,
            release_estimated: true,
            release_planned: false,
            dates_estimated: true,
        })
    }

    fn window_of(&self, r: &MinorRelease) -> Window {
        let (released, release_planned) = match (r.released, r.planned_release) {
            (Some(d), _) => (Some(d), false),
            (None, Some(p)) => (Some(p), true),
            (None, None) => (None, r.planned),
        };
        let mut w = Window {
            released,
            maintenance: r.maintenance_mode_start,
            end_of_life: r.end_of_life.or(r.end_of_life_planned),
            release_estimated: false,
            release_planned,
            dates_estimated: false,
        };
        if let Some(rel) = released {
            let (mm, eol) = support_window(rel);
            if w.maintenance.is_none() {
                w.maintenance = mm;
                w.dates_estimated = true;
            }
            if w.end_of_life.is_none() {
                w.end_of_life = eol;
                w.dates_estimated = true;
            }
        }
        w
    }
}

/// Patches of a list released on or before `date`.
fn released_by(patches: &[PatchRelease], date: Date) -> impl Iterator<Item = &KubeVersion> {
    patches
        .iter()
        .filter(move |p| p.date.is_some_and(|d| d <= date))
        .map(|p| &p.version)
}

/// Maintenance-mode start and end of life for a minor released on `released`: the 28th of the
/// 12th and 14th month after the release month.
pub fn support_window(released: Date) -> (Option<Date>, Option<Date>) {
    let on_28th = |months: i32| {
        add_months(released, months).and_then(|d| Date::new(d.year(), d.month(), 28).ok())
    };
    (
        on_28th(STANDARD_SUPPORT_MONTHS),
        on_28th(STANDARD_SUPPORT_MONTHS + MAINTENANCE_MONTHS),
    )
}

/// `date` plus `months`, the day capped at the 28th so every month has it.
fn add_months(date: Date, months: i32) -> Option<Date> {
    let index = i32::from(date.year()) * 12 + i32::from(date.month()) - 1 + months;
    let year = i16::try_from(index.div_euclid(12)).ok()?;
    let month = i8::try_from(index.rem_euclid(12) + 1).ok()?;
    Date::new(year, month, date.day().min(28)).ok()
}
