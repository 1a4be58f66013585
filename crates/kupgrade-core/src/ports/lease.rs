//! The run lease: one run drives a cluster at a time (see [`LeaseStore`]).
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::BoxError;

/// Who holds a lease: one process of one run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseHolder {
    /// The run's id (the same in every session of one journal; see `Run::run_id`).
    pub run: String,
    /// The host the process runs on.
    pub host: String,
    /// The process id.
    pub pid: u32,
}

impl LeaseHolder {
    /// The holder `pid` on `host` of run `run`; whitespace and control characters in `run`
    /// and `host` become `_`, so that the holder reads back ([`LeaseHolder::parse`]).
    pub fn new(run: &str, host: &str, pid: u32) -> Self {
        let clean = |s: &str| -> String {
            let s: String = s
                .chars()
                .map(|c| {
                    if c.is_whitespace() || c.is_control() || c == '(' || c == ')' {
                        '_'
                    } else {
                        c
                    }
                })
                .collect();
            if s.is_empty() { "_".into() } else { s }
        };
        LeaseHolder {
            run: clean(run),
            host: clean(host),
            pid,
        }
    }

    /// Reads a holder as [`fmt::Display`] writes it (`RUN (pid PID on HOST)`).
    pub fn parse(text: &str) -> Option<LeaseHolder> {
        let (run, rest) = text.split_once(" (pid ")?;
        let (pid, host) = rest.strip_suffix(')')?.split_once(" on ")?;
        Some(LeaseHolder {
            run: run.to_string(),
            host: host.to_string(),
            pid: pid.parse().ok()?,
        })
    }
}

impl fmt::Display for LeaseHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (pid {} on {})", self.run, self.pid, self.host)
    }
}

/// The lease as a store keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseRecord {
    /// Its holder, as [`LeaseHolder`] writes it (another tool's holder may be any text).
    pub holder: String,
    /// The fingerprint of the holder's plan.
    pub fingerprint: String,
    /// When the holder took it.
    pub acquired: Timestamp,
    /// When the holder last renewed it.
    pub renewed: Timestamp,
    /// How long it lasts after `renewed`, in seconds.
    pub seconds: u32,
}

impl LeaseRecord {
    /// When it expires unless renewed.
    pub fn expires(&self) -> Timestamp {
        self.renewed
            .checked_add(SignedDuration::from_secs(self.seconds.into()))
            .unwrap_or(Timestamp::MAX)
    }

    /// The holder's run id, when the holder is a [`LeaseHolder`].
    pub fn run(&self) -> Option<String> {
        LeaseHolder::parse(&self.holder).map(|h| h.run)
    }
}

/// What a store holds now: the record (`None`: nobody) and the version a swap must name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    /// The lease, if anybody holds it.
    pub record: Option<LeaseRecord>,
    /// The store's version of it (`None`: there is nothing stored).
    pub version: Option<String>,
}

/// Taking a lease whose holder is not known to be gone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Force {
    /// Never.
    #[default]
    No,
    /// Once it has expired, whoever held it.
    Expired,
    /// The lease of this run id, expired or not (the operator knows that run is over).
    Run(String),
}

/// How a run wants the lease.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseClaim {
    /// Who takes it.
    pub holder: LeaseHolder,
    /// The fingerprint of the run's plan.
    pub fingerprint: String,
    /// True when the run goes on from its journal (a resume).
    pub resuming: bool,
    /// Whether to take a lease whose holder is not known to be gone.
    pub force: Force,
    /// The option that forces it, for the refusal's message.
    pub force_flag: String,
    /// How long it lasts unless renewed (renewed every third of it).
    pub duration: Duration,
}

impl LeaseClaim {
    /// The claim of `holder` for the plan `fingerprint`: a new run, not forced, 60 s, forced
    /// with `--force-lease`.
    pub fn new(holder: LeaseHolder, fingerprint: impl Into<String>) -> Self {
        LeaseClaim {
            holder,
            fingerprint: fingerprint.into(),
            resuming: false,
            force: Force::No,
            force_flag: "--force-lease".into(),
            duration: Duration::from_secs(60),
        }
    }
    /// Whether the run goes on from its journal.
    pub fn resuming(mut self, yes: bool) -> Self {
        self.resuming = yes;
        self
    }
    /// Whether to force, and the option that does.
    pub fn force(mut self, force: Force, flag: impl Into<String>) -> Self {
        self.force = force;
        self.force_flag = flag.into();
        self
    }
    /// How long it lasts unless renewed (at least a second).
    pub fn duration(mut self, d: Duration) -> Self {
        self.duration = d.max(Duration::from_secs(1));
        self
    }
    /// How often the holder renews it: a third of its duration, at least a second.
    pub fn renew_every(&self) -> Duration {
        (self.duration / 3).max(Duration::from_secs(1))
    }

    /// The record this claim writes at `now` over `found` (its acquisition time kept when it
    /// was already this holder's).
    pub fn record(&self, found: Option<&LeaseRecord>, now: Timestamp) -> LeaseRecord {
        let me = self.holder.to_string();
        let acquired = match found {
            Some(f) if f.holder == me => f.acquired,
            _ => now,
        };
        LeaseRecord {
            holder: me,
            fingerprint: self.fingerprint.clone(),
            acquired,
            renewed: now,
            seconds: self.duration.as_secs().clamp(1, u64::from(u32::MAX)) as u32,
        }
    }
}

/// How a run took the lease; the journal records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "how",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum Taking {
    /// Nobody held it.
    Free,
    /// This holder, or this run in an earlier session on this host, held it.
    Own,
    /// It had expired, and this run goes on from the journal of the run that held it.
    TakenOver {
        /// The lease as it was.
        from: LeaseRecord,
    },
    /// Broken by force from another run.
    Broken {
        /// The lease as it was.
        from: LeaseRecord,
    },
}

/// Why the lease was not taken, kept or given back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// Another run holds it and renews it.
    #[error(
        "another run drives this cluster: {place} is held by run {} since {} (plan {}), renewed until {}; wait for it to end, or once it is known to be over pass {force_flag}={}",
        .holder.holder, .holder.acquired, .holder.fingerprint, .holder.expires(), .holder.run().unwrap_or_else(|| "RUN".into())
    )]
    Held {
        /// Where the lease is.
        place: String,
        /// The lease.
        holder: Box<LeaseRecord>,
        /// The option that breaks it.
        force_flag: String,
    },
    /// Its holder stopped renewing it, and this run is not that run going on.
    #[error(
        "{place} was held by run {} since {} (plan {}) and expired at {}, but this run {why}: make sure that run is over, then pass {force_flag} to take the lease over",
        .holder.holder, .holder.acquired, .holder.fingerprint, .holder.expires()
    )]
    Stale {
        /// Where the lease is.
        place: String,
        /// The lease.
        holder: Box<LeaseRecord>,
        /// Why the journal does not agree.
        why: String,
        /// The option that forces it.
        force_flag: String,
    },
    /// Another run wrote the lease between this run's read and its write.
    #[error("{place} changed while this run took it: another run took it first")]
    Conflict {
        /// Where the lease is.
        place: String,
    },
    /// This run held the lease and no longer does.
    #[error("{place} is no longer this run's: {}", .holder.as_ref().map_or_else(|| "nobody holds it".to_string(), |h| format!("run {} holds it since {}", h.holder, h.acquired)))]
    Lost {
        /// Where the lease is.
        place: String,
        /// Who holds it now.
        holder: Option<Box<LeaseRecord>>,
    },
    /// The store could not be read or written.
    #[error("cannot use {place}: {message}")]
    Store {
        /// Where the lease is.
        place: String,
        /// What failed.
        message: String,
        /// The backend's error.
        #[source]
        source: Option<BoxError>,
    },
}

/// Says whether `claim` may take the lease `found` at `now`, and how (the rules are listed on
/// [`LeaseStore`]); `place` names the store for the refusal.
pub fn judge(
    claim: &LeaseClaim,
    found: Option<&LeaseRecord>,
    now: Timestamp,
    place: &str,
) -> Result<Taking, LeaseError> {
    let Some(found) = found.filter(|f| !f.holder.is_empty()) else {
        return Ok(Taking::Free);
    };
    let me = &claim.holder;
    if found.holder == me.to_string() {
        return Ok(Taking::Own);
    }
    let theirs = LeaseHolder::parse(&found.holder);
    let same_run = theirs.as_ref().is_some_and(|h| h.run == me.run);
    if claim.resuming && same_run && theirs.as_ref().is_some_and(|h| h.host == me.host) {
        return Ok(Taking::Own);
    }
    let named =
        matches!(&claim.force, Force::Run(r) if theirs.as_ref().is_some_and(|h| &h.run == r));
    let from = || Box::new(found.clone());
    if named {
        return Ok(Taking::Broken { from: *from() });
    }
    if found.expires() > now {
        return Err(LeaseError::Held {
            place: place.into(),
            holder: from(),
            force_flag: claim.force_flag.clone(),
        });
    }
    if claim.force == Force::Expired {
        return Ok(Taking::Broken { from: *from() });
    }
    if claim.resuming && same_run {
        return Ok(Taking::TakenOver { from: *from() });
    }
    let why = if found.fingerprint != claim.fingerprint {
        format!("runs another plan ({})", claim.fingerprint)
    } else if claim.resuming {
        format!("goes on from another journal (run {})", me.run)
    } else {
        "starts afresh instead of resuming that run's journal".into()
    };
    Err(LeaseError::Stale {
        place: place.into(),
        holder: from(),
        why,
        force_flag: claim.force_flag.clone(),
    })
}

/// Where a run lease is kept: read it, and replace it only if nobody changed it since. One
/// run drives a cluster at a time.
///
/// A run holds the cluster's lease from before its first step to its end. The lease is one
/// record ([`LeaseRecord`]: who holds it, for which plan, since when, until when unless
/// renewed) kept in a store: a `coordination.k8s.io/v1` Lease with `--kubeconfig`, a
/// file on the first control-plane node without, memory in the simulator. A store knows only
/// two things, reading the record and replacing it if nobody else changed it since
/// (compare-and-swap); the rules of who may take the lease live once ([`judge`]), and
/// every backend gets [`LeaseStoreExt::acquire`], [`LeaseStoreExt::renew`] and
/// [`LeaseStoreExt::release`] from them. Of two runs taking the lease at once, one wins: the
/// other's swap finds the version changed ([`LeaseError::Conflict`]).
///
/// Who may take the lease ([`judge`]):
///
/// - nobody holds it: taken ([`Taking::Free`]);
/// - the same holder, or the same run going on from its journal on the same host (a resume:
///   the journal's lock says the earlier process is gone): taken ([`Taking::Own`]);
/// - another holder whose lease has not expired (`renewed` + `duration` after now): refused,
///   naming the holder ([`LeaseError::Held`]), unless the operator names that holder's run
///   ([`Force::Run`]): broken ([`Taking::Broken`]);
/// - another holder whose lease expired: taken over by a resume of the same run (the journal
///   agrees, [`Taking::TakenOver`]), broken by force ([`Force::Expired`] or [`Force::Run`]),
///   else refused naming the holder and the option that forces it ([`LeaseError::Stale`]).
///
/// Times are the operator's clock, as for Kubernetes's own Leases: clocks of two operators'
/// machines must agree to well within a lease's duration. Every store runs the conformance
/// suite `conformance::lease` (feature `conformance`).
#[async_trait]
pub trait LeaseStore: Send + Sync + fmt::Debug {
    /// Where the lease lives, for messages (`Lease kube-system/kupgrade`,
    /// `cp-1:/var/lib/kupgrade/cluster.lease`).
    fn place(&self) -> String;

    /// The lease as stored now.
    async fn read(&self) -> Result<Stored, LeaseError>;

    /// Replaces the lease stored at `version` (`None`: nothing stored) with `record`
    /// (`None`: removes it). When the store holds another version now, nothing is written
    /// and the answer is [`LeaseError::Conflict`].
    async fn swap(
        &self,
        version: Option<&str>,
        record: Option<&LeaseRecord>,
    ) -> Result<(), LeaseError>;
}

/// Taking, renewing and giving back a run lease, over any [`LeaseStore`].
#[async_trait]
pub trait LeaseStoreExt: LeaseStore {
    /// Takes the lease for `claim` at `now`, as [`judge`] allows.
    async fn acquire(&self, claim: &LeaseClaim, now: Timestamp) -> Result<Taking, LeaseError> {
        let stored = self.read().await?;
        let taking = judge(claim, stored.record.as_ref(), now, &self.place())?;
        let record = claim.record(stored.record.as_ref(), now);
        self.swap(stored.version.as_deref(), Some(&record)).await?;
        Ok(taking)
    }

    /// Renews the lease this claim holds; [`LeaseError::Lost`] when another holder (or
    /// nobody) has it now.
    async fn renew(&self, claim: &LeaseClaim, now: Timestamp) -> Result<(), LeaseError> {
        let stored = self.read().await?;
        match &stored.record {
            Some(r) if r.holder == claim.holder.to_string() => {
                let record = claim.record(Some(r), now);
                self.swap(stored.version.as_deref(), Some(&record)).await
            }
            other => Err(LeaseError::Lost {
                place: self.place(),
                holder: other.clone().map(Box::new),
            }),
        }
    }

    /// Gives the lease back if this claim still holds it (else changes nothing).
    async fn release(&self, claim: &LeaseClaim) -> Result<(), LeaseError> {
        let stored = self.read().await?;
        match &stored.record {
            Some(r) if r.holder == claim.holder.to_string() => {
                self.swap(stored.version.as_deref(), None).await
            }
            _ => Ok(()),
        }
    }
}

impl<T: LeaseStore + ?Sized> LeaseStoreExt for T {}

#[async_trait]
impl<T: LeaseStore + ?Sized> LeaseStore for std::sync::Arc<T> {
    fn place(&self) -> String {
        (**self).place()
    }
    async fn read(&self) -> Result<Stored, LeaseError> {
        (**self).read().await
    }
    async fn swap(
        &self,
        version: Option<&str>,
        record: Option<&LeaseRecord>,
    ) -> Result<(), LeaseError> {
        (**self).swap(version, record).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u32) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + i64::from(s)).unwrap()
    }

    fn claim(run: &str, host: &str, pid: u32) -> LeaseClaim {
        LeaseClaim::new(LeaseHolder::new(run, host, pid), format!("fp-{run}"))
            .duration(Duration::from_secs(10))
    }

    #[test]
    fn a_holder_reads_back_and_odd_text_cannot_forge_one() {
        let h = LeaseHolder::new("20261207T000000.000Z-0123abcd", "ops-1", 42);
        assert_eq!(
            h.to_string(),
            "20261207T000000.000Z-0123abcd (pid 42 on ops-1)"
        );
        assert_eq!(LeaseHolder::parse(&h.to_string()), Some(h));
        let odd = LeaseHolder::new("r (pid 1 on x)", "a b\nc", 7);
        assert_eq!(odd.to_string(), "r__pid_1_on_x_ (pid 7 on a_b_c)");
        assert_eq!(LeaseHolder::parse(&odd.to_string()), Some(odd));
        assert_eq!(LeaseHolder::parse("someone else"), None);
    }

    #[test]
    fn the_rules() {
        let a = claim("run-a", "ops-1", 1);
        let held = a.record(None, at(0));
        let place = "the place";
        assert_eq!(judge(&a, None, at(0), place).unwrap(), Taking::Free);
        assert_eq!(judge(&a, Some(&held), at(5), place).unwrap(), Taking::Own);
        // Another run, before expiry: refused naming the holder, whatever it asks.
        for b in [
            claim("run-b", "ops-1", 2),
            claim("run-b", "ops-1", 2).resuming(true),
            claim("run-b", "ops-1", 2).force(Force::Expired, "--force-lease"),
            claim("run-b", "ops-1", 2).force(Force::Run("run-c".into()), "--force-lease"),
        ] {
            let e = judge(&b, Some(&held), at(9), place).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, LeaseError::Held { .. }), "{text}");
            assert!(
                text.contains("held by run run-a (pid 1 on ops-1) since 2023-11-14T22:13:20Z"),
                "{text}"
            );
            assert!(text.contains("--force-lease=run-a"), "{text}");
        }
        // ... unless it names that run.
        let named = claim("run-b", "ops-1", 2).force(Force::Run("run-a".into()), "--force-lease");
        assert!(matches!(
            judge(&named, Some(&held), at(9), place),
            Ok(Taking::Broken { .. })
        ));
        // The same run resumed on the same host (another pid) takes its own at once; on
        // another host only after expiry.
        let resumed = claim("run-a", "ops-1", 3).resuming(true);
        assert_eq!(
            judge(&resumed, Some(&held), at(1), place).unwrap(),
            Taking::Own
        );
        let elsewhere = claim("run-a", "ops-2", 3).resuming(true);
        assert!(matches!(
            judge(&elsewhere, Some(&held), at(9), place),
            Err(LeaseError::Held { .. })
        ));
        assert!(matches!(
            judge(&elsewhere, Some(&held), at(10), place),
            Ok(Taking::TakenOver { .. })
        ));
        // Expired: another run is refused unless forced; a fresh start of the same run too.
        let b = claim("run-b", "ops-1", 2);
        let e = judge(&b, Some(&held), at(10), place).unwrap_err();
        assert!(matches!(e, LeaseError::Stale { .. }), "{e}");
        assert!(
            e.to_string().contains("runs another plan (fp-run-b)"),
            "{e}"
        );
        assert!(e.to_string().contains("pass --force-lease to take"), "{e}");
        let fresh = claim("run-a", "ops-1", 4);
        assert!(
            judge(&fresh, Some(&held), at(10), place)
                .unwrap_err()
                .to_string()
                .contains("starts afresh")
        );
        let forced = b.force(Force::Expired, "--force-lease");
        assert!(matches!(
            judge(&forced, Some(&held), at(10), place),
            Ok(Taking::Broken { .. })
        ));
    }

    #[test]
    fn a_renewal_keeps_the_time_it_was_taken() {
        let a = claim("run-a", "ops-1", 1);
        let first = a.record(None, at(0));
        let again = a.record(Some(&first), at(4));
        assert_eq!((again.acquired, again.renewed), (at(0), at(4)));
        assert_eq!(again.expires(), at(14));
        let b = claim("run-b", "ops-1", 2).record(Some(&again), at(20));
        assert_eq!(b.acquired, at(20));
    }
}
