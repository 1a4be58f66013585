//! Kubernetes versions (`v1.29.3`, `v1.30.0-rc.0`, `v1.29.3-eks-5e0fdde`, `v1.29.3+k3s1`) and
//! minors (`1.29`).
//!
//! # Grammar
//!
//! ```text
//! version  = ["v"] major "." minor "." patch ["-" suffix] ["+" build]
//! suffix   = ("alpha" | "beta" | "rc") ["." number] ["." ident]*   ; a pre-release
//!          | ident ["." ident | "-" ident]*                          ; a vendor build
//! build    = ident ["." ident]*
//! ```
//!
//! Kubernetes pre-releases are only ever `alpha`, `beta` and `rc`. Any other suffix after the
//! patch (`-eks-5e0fdde`, `-gke.1000000`, etcd's `-0` image revision) is a **vendor build of a
//! stable release**, not a pre-release: managed offerings ship their own builds of upstream
//! `v1.29.3`, and for every version-skew purpose they *are* 1.29.3.
//!
//! # Ordering
//!
//! The order is total and consistent with equality. Versions compare by
//! `(major, minor, patch)`, then by release phase (`alpha < beta < rc < stable`, the phase
//! number and further identifiers breaking ties), then a release with no vendor suffix sorts
//! before any vendor build of it (`v1.29.3 < v1.29.3-eks-5e0fdde < v1.29.4`), vendor suffixes
//! compare identifier by identifier (numeric identifiers numerically, so `gke.999 < gke.1000`),
//! and finally build metadata breaks the last ties the same way (none first). Use
//! [`KubeVersion::release`] to compare releases while ignoring vendor and build parts.
use std::cmp::Ordering;
use std::fmt::{self, Write as _};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Kubernetes-style version: `v1.29.3`, `1.30.0-alpha.1`, `v1.29.3-eks-5e0fdde`, `v1.29.3+k3s1`.
///
/// The same syntax is used by etcd and CoreDNS image tags (`3.5.9-0`, `v1.10.1`), so this type
/// also carries their versions. Serialized as a string.
///
/// ```
/// use kupgrade_core::KubeVersion;
/// let v: KubeVersion = "v1.29.3-eks-5e0fdde".parse()?;
/// assert_eq!(v.minor().to_string(), "1.29");
/// assert!(v.is_stable());
/// assert_eq!(v.vendor(), Some("eks-5e0fdde"));
/// assert!(v > "v1.29.3".parse()?);
/// assert!(v < "v1.29.4-rc.0".parse()?);
/// # Ok::<(), kupgrade_core::VersionError>(())
/// ```
///
/// # Size
///
/// A version is 24 bytes, and so is `Option<KubeVersion>`: the major number is a `u16` and
/// the patch a `u32` (the parser refuses larger ones; the minor keeps [`Minor`]'s full `u64`
/// range) and the rare textual parts (pre-release, vendor suffix, build metadata) share one box that plain
/// releases do without. A node lists up to nine versions and a
/// cluster may have tens of thousands of nodes, so compact versions keep skew evaluation in
/// cache.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KubeVersion {
    minor: u64,
    patch: u32,
    major: u16,
    /// The phase of `extra.pre` (stable without one), kept inline so that `phase` and
    /// `is_stable` need no pointer chase; it also gives `Option<KubeVersion>` its niche.
    phase: ReleasePhase,
    /// `None` exactly when there is no pre-release, vendor suffix or build metadata, so that
    /// equal versions are equal field by field.
    extra: Option<Box<Extra>>,
}

/// The textual parts of a version, rare in practice (at least one is present).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Extra {
    pre: Option<PreRelease>,
    vendor: Option<Box<str>>,
    build: Option<Box<str>>,
}

/// The phase of a release: pre-releases (`alpha`, `beta`, `rc`) and stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleasePhase {
    /// `-alpha.N`: feature development.
    Alpha,
    /// `-beta.N`: feature freeze passed.
    Beta,
    /// `-rc.N`: release candidate.
    Rc,
    /// A released version (vendor builds included).
    Stable,
}

impl fmt::Display for ReleasePhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReleasePhase::Alpha => "alpha",
            ReleasePhase::Beta => "beta",
            ReleasePhase::Rc => "rc",
            ReleasePhase::Stable => "stable",
        })
    }
}

/// A pre-release tag such as `alpha.1`, `rc.0` or the development build `alpha.1.12`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PreRelease {
    phase: ReleasePhase,
    number: Option<u64>,
    rest: Option<Box<str>>,
}

impl PreRelease {
    /// The phase (never [`ReleasePhase::Stable`]).
    pub fn phase(&self) -> ReleasePhase {
        self.phase
    }
    /// The number after the phase (`1` in `alpha.1`), if any.
    pub fn number(&self) -> Option<u64> {
        self.number
    }
}

impl Ord for PreRelease {
    fn cmp(&self, other: &Self) -> Ordering {
        self.phase
            .cmp(&other.phase)
            .then(self.number.cmp(&other.number))
            .then_with(|| cmp_idents(self.rest.as_deref(), other.rest.as_deref()))
    }
}
impl PartialOrd for PreRelease {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for PreRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.phase)?;
        if let Some(n) = self.number {
            write!(f, ".{n}")?;
        }
        if let Some(rest) = &self.rest {
            write!(f, ".{rest}")?;
        }
        Ok(())
    }
}

/// Compares dot/dash separated identifiers: numeric ones numerically and before alphanumeric
/// ones, others as strings, a shorter list before a longer one it prefixes. `None` sorts first.
fn cmp_idents(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(raw_a), Some(raw_b)) => {
            let a: Vec<&str> = raw_a.split(['.', '-']).collect();
            let b: Vec<&str> = raw_b.split(['.', '-']).collect();
            for (x, y) in a.iter().zip(b.iter()) {
                let o = match (x.parse::<u128>(), y.parse::<u128>()) {
                    (Ok(p), Ok(q)) => p.cmp(&q).then_with(|| x.len().cmp(&y.len())),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            // Same identifiers: the separators decide, so that the order agrees with `==`.
            a.len().cmp(&b.len()).then_with(|| raw_a.cmp(raw_b))
        }
    }
}

impl KubeVersion {
    /// A stable version `major.minor.patch` with no suffix.
    ///
    /// # Panics
    ///
    /// If `major` is larger than `u16::MAX` (65535) or `patch` larger than `u32::MAX`
    /// (4294967295). No Kubernetes, etcd or CoreDNS version comes near; [`KubeVersion::parse`]
    /// refuses such input with an error instead.
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        assert!(
            major <= MAX_MAJOR && patch <= MAX_PATCH,
            "KubeVersion::new: major numbers are at most 65535 and patch numbers at most 4294967295"
        );
        KubeVersion {
            major: major as u16,
            minor,
            patch: patch as u32,
            phase: ReleasePhase::Stable,
            extra: None,
        }
    }

    /// `self` with these textual parts (replacing any it had).
    fn with_parts(
        mut self,
        pre: Option<PreRelease>,
        vendor: Option<Box<str>>,
        build: Option<Box<str>>,
    ) -> Self {
        self.phase = pre.as_ref().map_or(ReleasePhase::Stable, |p| p.phase);
        self.extra = if pre.is_none() && vendor.is_none() && build.is_none() {
            None
        } else {
            Some(Box::new(Extra { pre, vendor, build }))
        };
        self
    }

    /// Parses a version; see the [module documentation](self) for the grammar.
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        Parser::new(input).version()
    }

    /// The major number (always 1 for Kubernetes so far).
    pub fn major(&self) -> u64 {
        u64::from(self.major)
    }
    /// The minor number (`29` in `v1.29.3`).
    pub fn minor_number(&self) -> u64 {
        self.minor
    }
    /// The patch number.
    pub fn patch(&self) -> u64 {
        u64::from(self.patch)
    }
    /// The minor this version belongs to (`1.29` for `v1.29.3`).
    pub fn minor(&self) -> Minor {
        Minor::new(u64::from(self.major), self.minor)
    }
    /// The pre-release tag, if any.
    pub fn pre_release(&self) -> Option<&PreRelease> {
        self.extra.as_ref().and_then(|e| e.pre.as_ref())
    }
    /// The release phase: alpha, beta, rc or stable.
    pub fn phase(&self) -> ReleasePhase {
        self.phase
    }
    /// True for released versions, vendor builds included.
    pub fn is_stable(&self) -> bool {
        self.phase == ReleasePhase::Stable
    }
    /// The vendor suffix (`eks-5e0fdde` in `v1.29.3-eks-5e0fdde`), if any.
    pub fn vendor(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.vendor.as_deref())
    }
    /// The build metadata (`k3s1` in `v1.29.3+k3s1`), if any.
    pub fn build(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.build.as_deref())
    }
    /// The upstream release this version is (or is a build of): vendor suffix and build metadata
    /// removed, pre-release kept.
    pub fn release(&self) -> KubeVersion {
        KubeVersion::new(self.major(), self.minor_number(), self.patch()).with_parts(
            self.pre_release().cloned(),
            None,
            None,
        )
    }
    /// The version without the leading `v`, as package managers and kubeadm's flags spell it
    /// (`1.29.3`, `1.30.0-rc.0`).
    pub fn to_plain_string(&self) -> String {
        let mut s = String::new();
        // Writing to a `String` cannot fail.
        let _ = self.write_plain(&mut s);
        s
    }
    /// The same version as a [`semver::Version`]. Vendor suffixes become build metadata there
    /// (semver would order them as pre-releases otherwise).
    pub fn to_semver(&self) -> semver::Version {
        let mut v = semver::Version::new(self.major(), self.minor_number(), self.patch());
        if let Some(p) = self.pre_release() {
            v.pre = semver::Prerelease::new(&p.to_string()).unwrap_or(semver::Prerelease::EMPTY);
        }
        let build: Vec<&str> = [self.vendor(), self.build()]
            .into_iter()
            .flatten()
            .collect();
        if !build.is_empty() {
            v.build = semver::BuildMetadata::new(&build.join("."))
                .unwrap_or(semver::BuildMetadata::EMPTY);
        }
        v
    }
}

impl Ord for KubeVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let numbers =
            (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch));
        let (Some(a), Some(b)) = (&self.extra, &other.extra) else {
            // At most one side has textual parts: a pre-release sorts first, a vendor build
            // or build metadata after the plain release.
            return numbers.then_with(|| match (&self.extra, &other.extra) {
                (None, None) => Ordering::Equal,
                (Some(a), _) if a.pre.is_some() => Ordering::Less,
                (Some(_), _) => Ordering::Greater,
                (_, Some(b)) if b.pre.is_some() => Ordering::Greater,
                (_, Some(_)) => Ordering::Less,
            });
        };
        numbers
            .then_with(|| match (&a.pre, &b.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            })
            .then_with(|| cmp_idents(a.vendor.as_deref(), b.vendor.as_deref()))
            .then_with(|| cmp_idents(a.build.as_deref(), b.build.as_deref()))
    }
}
impl PartialOrd for KubeVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for KubeVersion {
    /// Prints the canonical form with a leading `v` (width and alignment are honoured).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.width().is_some() {
            let mut s = String::from("v");
            self.write_plain(&mut s)?;
            return f.pad(&s);
        }
        f.write_char('v')?;
        self.write_plain(f)
    }
}

impl KubeVersion {
    /// Writes the version without its leading `v`.
    fn write_plain(&self, f: &mut impl fmt::Write) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(e) = &self.extra {
            if let Some(p) = &e.pre {
                write!(f, "-{p}")?;
            }
            if let Some(v) = &e.vendor {
                write!(f, "-{v}")?;
            }
            if let Some(b) = &e.build {
                write!(f, "+{b}")?;
            }
        }
        Ok(())
    }
}
impl fmt::Debug for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KubeVersion({self})")
    }
}

impl FromStr for KubeVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KubeVersion::parse(s)
    }
}

impl Serialize for KubeVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for KubeVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
impl schemars::JsonSchema for KubeVersion {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "KubeVersion".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A Kubernetes version such as v1.29.3, 1.30.0-rc.0, v1.29.3-eks-5e0fdde or v1.29.3+k3s1",
            "pattern": r"^v?\d+\.\d+\.\d+([-+].*)?$"
        })
    }
}

/// A Kubernetes minor release line, such as `1.29`.
///
/// ```
/// use kupgrade_core::Minor;
/// let m: Minor = "1.29".parse()?;
/// assert_eq!(m.next().to_string(), "1.30");
/// assert_eq!(m.skew_to("1.31".parse()?), 2);
/// # Ok::<(), kupgrade_core::VersionError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Minor {
    major: u64,
    minor: u64,
}

impl Minor {
    /// The minor `major.minor`.
    pub const fn new(major: u64, minor: u64) -> Self {
        Minor { major, minor }
    }
    /// Parses `1.29` or `v1.29` (a full version is refused: use [`KubeVersion::minor`]).
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        Parser::new(input).minor_only()
    }
    /// The major number.
    pub fn major(self) -> u64 {
        self.major
    }
    /// The minor number.
    pub fn minor(self) -> u64 {
        self.minor
    }
    /// The next minor (`1.30` after `1.29`); the largest minor number has no next and gives
    /// itself (no real version comes near, and `next` never panics on parsed input).
    pub fn next(self) -> Minor {
        Minor::new(self.major, self.minor.saturating_add(1))
    }
    /// The previous minor, or `None` at `x.0`.
    pub fn prev(self) -> Option<Minor> {
        self.minor.checked_sub(1).map(|m| Minor::new(self.major, m))
    }
    /// `other - self` counted in minors (negative when `other` is older). Minors of different
    /// majors are treated as 1000 minors apart per major, which every skew rule rejects.
    pub fn skew_to(self, other: Minor) -> i64 {
        let major = other.major as i64 - self.major as i64;
        major * 1000 + (other.minor as i64 - self.minor as i64)
    }
    /// The `.0` version of this minor.
    pub fn first_patch(self) -> KubeVersion {
        KubeVersion::new(self.major, self.minor, 0)
    }
    /// The version `self.patch`.
    pub fn with_patch(self, patch: u64) -> KubeVersion {
        KubeVersion::new(self.major, self.minor, patch)
    }
}

impl fmt::Display for Minor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.width().is_some() {
            return f.pad(&format!("{}.{}", self.major, self.minor));
        }
        write!(f, "{}.{}", self.major, self.minor)
    }
}
impl fmt::Debug for Minor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Minor({self})")
    }
}
impl FromStr for Minor {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Minor::parse(s)
    }
}
impl Serialize for Minor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for Minor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
impl schemars::JsonSchema for Minor {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Minor".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A Kubernetes minor such as 1.29",
            "pattern": r"^v?\d+\.\d+$"
        })
    }
}

/// Why a version string could not be parsed. Its message quotes the input and says what was
/// expected where.
///
/// ```
/// let err = kupgrade_core::KubeVersion::parse("1.29.x").unwrap_err();
/// assert_eq!(err.to_string(), r#""1.29.x" is not a version: unexpected character 'x' in patch"#);
/// assert_eq!(err.reason(), "unexpected character 'x' in patch");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a {what}: {reason}")]
pub struct VersionError {
    input: String,
    what: &'static str,
    offset: usize,
    reason: String,
}

impl VersionError {
    /// The input that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }
    /// The byte offset in the input where parsing failed.
    pub fn offset(&self) -> usize {
        self.offset
    }
    /// What was wrong, without the input (`unexpected character 'x' in patch`).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

const MAX_LEN: usize = 256;
/// The largest major number a version or minor holds.
const MAX_MAJOR: u64 = u16::MAX as u64;
/// The largest patch number a version holds.
const MAX_PATCH: u64 = u32::MAX as u64;

struct Parser<'a> {
    input: &'a str,
    pos: usize,
    what: &'static str,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Parser {
            input,
            pos: 0,
            what: "version",
        }
    }

    fn err(&self, reason: impl Into<String>) -> VersionError {
        VersionError {
            input: self.input.to_string(),
            what: self.what,
            offset: self.pos,
            reason: reason.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn start(&mut self) -> Result<(), VersionError> {
        if self.input.is_empty() {
            return Err(self.err("empty string"));
        }
        if self.input.len() > MAX_LEN {
            return Err(self.err(format!("longer than {MAX_LEN} bytes")));
        }
        if self.input.trim() != self.input {
            return Err(self.err("leading or trailing whitespace"));
        }
        if self.peek() == Some('v') {
            self.pos += 1;
        }
        Ok(())
    }

    /// A number of at most `max`: versions keep major numbers in `u16`s and patch numbers in
    /// `u32`s (see `KubeVersion`'s size), minors in `u64`s.
    fn number(&mut self, field: &str, max: u64) -> Result<u64, VersionError> {
        let rest = &self.input[self.pos..];
        let len = rest.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return Err(match self.peek() {
                None => self.err(format!("missing {field}")),
                Some(c) => self.err(format!("unexpected character {c:?} in {field}")),
            });
        }
        let digits = &rest[..len];
        if len > 1 && digits.starts_with('0') {
            return Err(self.err(format!("leading zero in {field}")));
        }
        let n = digits
            .parse::<u64>()
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| self.err(format!("{field} is too large")))?;
        self.pos += len;
        Ok(n)
    }

    fn expect_dot(&mut self, after: &str, next: &str) -> Result<(), VersionError> {
        match self.peek() {
            Some('.') => {
                self.pos += 1;
                Ok(())
            }
            None => Err(self.err(format!("missing {next} after {after}"))),
            Some(c) => Err(self.err(format!("unexpected character {c:?} in {after}"))),
        }
    }

    fn minor_only(mut self) -> Result<Minor, VersionError> {
        self.what = "minor";
        self.start()?;
        let major = self.number("major", MAX_MAJOR)?;
        self.expect_dot("major", "minor")?;
        let minor = self.number("minor", u64::MAX)?;
        match self.peek() {
            None => Ok(Minor::new(major, minor)),
            Some('.') => Err(self.err("a minor has no patch (write 1.29, not 1.29.3)")),
            Some(c) => Err(self.err(format!("unexpected character {c:?} in minor"))),
        }
    }

    fn version(mut self) -> Result<KubeVersion, VersionError> {
        self.start()?;
        let major = self.number("major", MAX_MAJOR)?;
        self.expect_dot("major", "minor")?;
        let minor = self.number("minor", u64::MAX)?;
        self.expect_dot("minor", "patch")?;
        let patch = self.number("patch", MAX_PATCH)?;
        let v = KubeVersion::new(major, minor, patch);
        let (mut pre, mut vendor) = (None, None);
        match self.peek() {
            None => return Ok(v),
            Some('-') => {
                self.pos += 1;
                let end = self.input[self.pos..]
                    .find('+')
                    .map_or(self.input.len(), |i| self.pos + i);
                let suffix = &self.input[self.pos..end];
                self.idents(suffix, "pre-release or vendor suffix", true)?;
                let mut parts = suffix.splitn(2, '.');
                let head = parts.next().unwrap_or_default();
                let phase = match head {
                    "alpha" => Some(ReleasePhase::Alpha),
                    "beta" => Some(ReleasePhase::Beta),
                    "rc" => Some(ReleasePhase::Rc),
                    _ => None,
                };
                match phase {
                    Some(phase) => {
                        let tail = parts.next();
                        if let Some(t) = tail {
                            self.no_leading_zeros(t, self.pos + head.len() + 1)?;
                        }
                        let (number, rest) = match tail {
                            None => (None, None),
                            Some(t) => {
                                let mut it = t.splitn(2, '.');
                                let n = it.next().unwrap_or_default();
                                match n.parse::<u64>() {
                                    Ok(n) => (Some(n), it.next()),
                                    Err(_) => (None, Some(t)),
                                }
                            }
                        };
                        pre = Some(PreRelease {
                            phase,
                            number,
                            rest: rest.map(Into::into),
                        });
                    }
                    None => vendor = Some(suffix.into()),
                }
                self.pos = end;
            }
            Some('+') => {}
            Some(c) => return Err(self.err(format!("unexpected character {c:?} in patch"))),
        }
        let mut build = None;
        if self.peek() == Some('+') {
            self.pos += 1;
            let text = &self.input[self.pos..];
            self.idents(text, "build metadata", false)?;
            build = Some(text.into());
        }
        Ok(v.with_parts(pre, vendor, build))
    }

    /// Refuses numeric identifiers with a leading zero in the dot-separated pre-release tail
    /// `tail` (which starts at byte `base`), as semver does: `alpha.01` would otherwise read
    /// as `alpha.1`. Vendor suffixes and build metadata may have them (etcd's `-0`, commit
    /// hashes).
    fn no_leading_zeros(&mut self, tail: &str, base: usize) -> Result<(), VersionError> {
        let mut at = base;
        for (i, ident) in tail.split('.').enumerate() {
            if ident.len() > 1
                && ident.starts_with('0')
                && ident.bytes().all(|b| b.is_ascii_digit())
            {
                self.pos = at;
                return Err(self.err(if i == 0 {
                    "leading zero in pre-release number".to_string()
                } else {
                    format!("leading zero in pre-release identifier {ident:?}")
                }));
            }
            at += ident.len() + 1;
        }
        Ok(())
    }

    /// Checks a dot (and, when allowed, dash) separated list of non-empty `[0-9A-Za-z]`
    /// identifiers, advancing the position on errors so they point at the culprit.
    fn idents(&mut self, s: &str, field: &str, dashes: bool) -> Result<(), VersionError> {
        let base = self.pos;
        if s.is_empty() {
            return Err(self.err(format!("empty {field}")));
        }
        let mut prev_sep = true;
        for (i, c) in s.char_indices() {
            let sep = c == '.' || (dashes && c == '-');
            if sep {
                if prev_sep {
                    self.pos = base + i;
                    return Err(self.err(format!("empty identifier in {field}")));
                }
            } else if !c.is_ascii_alphanumeric() {
                self.pos = base + i;
                return Err(self.err(format!("unexpected character {c:?} in {field}")));
            }
            prev_sep = sep;
        }
        if prev_sep {
            self.pos = base + s.len();
            return Err(self.err(format!("empty identifier at the end of {field}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
