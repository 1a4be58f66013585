//! The [`LeaseStore`] conformance suite.
//!
//! [`run_all`] takes two handles on one store (two clients, two processes' worth) that holds
//! no lease yet. Since the rules read time only from the caller ([`LeaseStoreExt`] takes
//! `now`), the suite runs on a clock of its own: no check waits. It checks:
//!
//! - an empty store reads as nobody; a lease written reads back the same (holder, plan, times
//!   to the second, duration) through the other handle;
//! - a second run is refused while the lease is held and renewed ([`LeaseError::Held`],
//!   naming the holder), and nothing it did changed the lease;
//! - a swap that names a version the store no longer holds writes nothing
//!   ([`LeaseError::Conflict`]), for a create, a replace and a removal;
//! - of two runs taking the lease at once, exactly one wins, in every round: over a free
//!   lease (both create it) and over an expired one both break (both replace one version);
//! - an expired lease goes to a forced run only; its old holder's renewal is then
//!   [`LeaseError::Lost`], and its release changes nothing;
//! - a release empties the store.
use std::time::Duration;

use jiff::Timestamp;

use super::{BoxFuture, join_all};
use crate::ports::{Force, LeaseClaim, LeaseError, LeaseHolder, LeaseStore, LeaseStoreExt, Taking};

/// The suite's clock: a whole second, so every store keeps it exactly.
fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).expect("in range")
}

fn claim(run: &str, pid: u32) -> LeaseClaim {
    LeaseClaim::new(
        LeaseHolder::new(run, "conformance-host", pid),
        format!("sha256:{run}"),
    )
    .duration(Duration::from_secs(30))
}

fn fail(check: &str, what: impl std::fmt::Display) -> ! {
    panic!("conformance/{check}: {what}")
}

/// Runs every check on the store behind `a` and `b` (two handles on one store holding no
/// lease); the store is empty again at the end.
pub async fn run_all(a: &dyn LeaseStore, b: &dyn LeaseStore) {
    round_trip_and_refusal(a, b).await;
    stale_versions_write_nothing(a, b).await;
    one_of_two_wins(a, b).await;
    expiry_and_force(a, b).await;
}

/// Empty reads as nobody; a lease reads back as written; a second run is refused while the
/// lease is renewed; release empties the store.
pub async fn round_trip_and_refusal(a: &dyn LeaseStore, b: &dyn LeaseStore) {
    const C: &str = "lease-round-trip";
    let empty = b.read().await.unwrap_or_else(|e| fail(C, e));
    if empty.record.is_some() {
        fail(C, format!("the store is not empty: {empty:?}"));
    }
    let first = claim("run-a", 1);
    match a.acquire(&first, t(0)).await {
        Ok(Taking::Free) => {}
        other => fail(C, format!("a free lease was not taken as free: {other:?}")),
    }
    let written = first.record(None, t(0));
    let seen = b.read().await.unwrap_or_else(|e| fail(C, e));
    if seen.record.as_ref() != Some(&written) {
        fail(
            C,
            format!(
                "wrote {written:?}, the other handle reads {:?}",
                seen.record
            ),
        );
    }
    let second = claim("run-b", 2);
    for (when, what) in [(t(10), "held"), (t(29), "just before expiry")] {
        match b.acquire(&second, when).await {
            Err(e @ LeaseError::Held { .. }) => {
                if !e.to_string().contains(&first.holder.to_string()) {
                    fail(C, format!("the refusal does not name the holder: {e}"));
                }
            }
            other => fail(C, format!("{what}: expected Held, got {other:?}")),
        }
    }
    if b.read()
        .await
        .unwrap_or_else(|e| fail(C, e))
        .record
        .as_ref()
        != Some(&written)
    {
        fail(C, "a refused run changed the lease");
    }
    // Renewed at 20 s: held past the first 30 s, taken time kept.
    a.renew(&first, t(20))
        .await
        .unwrap_or_else(|e| fail(C, format!("renewal: {e}")));
    let renewed = b.read().await.unwrap_or_else(|e| fail(C, e)).record;
    match &renewed {
        Some(r) if r.acquired == t(0) && r.renewed == t(20) => {}
        other => fail(C, format!("renewed at 20 s from 0 s, read {other:?}")),
    }
    if !matches!(
        b.acquire(&second, t(40)).await,
        Err(LeaseError::Held { .. })
    ) {
        fail(C, "a renewed lease was taken after its first expiry");
    }
    a.release(&first)
        .await
        .unwrap_or_else(|e| fail(C, format!("release: {e}")));
    let after = b.read().await.unwrap_or_else(|e| fail(C, e));
    if after.record.is_some() {
        fail(C, format!("released, yet {:?} is stored", after.record));
    }
}

/// A swap naming a version the store no longer has writes nothing.
pub async fn stale_versions_write_nothing(a: &dyn LeaseStore, b: &dyn LeaseStore) {
    const C: &str = "lease-compare-and-swap";
    let first = claim("run-a", 1);
    let other = claim("run-b", 2).record(None, t(0));
    let empty = a.read().await.unwrap_or_else(|e| fail(C, e));
    a.acquire(&first, t(0))
        .await
        .unwrap_or_else(|e| fail(C, format!("take: {e}")));
    // A create over a lease, a replace and a removal of an older version: refused.
    let conflict = |r: Result<(), LeaseError>, what: &str| match r {
        Err(LeaseError::Conflict { .. }) => {}
        other => fail(C, format!("{what}: expected Conflict, got {other:?}")),
    };
    conflict(
        b.swap(empty.version.as_deref(), Some(&other)).await,
        "a create over an existing lease",
    );
    let old = b.read().await.unwrap_or_else(|e| fail(C, e));
    a.renew(&first, t(5))
        .await
        .unwrap_or_else(|e| fail(C, format!("renewal: {e}")));
    conflict(
        b.swap(old.version.as_deref(), Some(&other)).await,
        "a replace of an older version",
    );
    conflict(
        b.swap(old.version.as_deref(), None).await,
        "a removal of an older version",
    );
    let now = a.read().await.unwrap_or_else(|e| fail(C, e));
    if now.record.as_ref().map(|r| r.holder.as_str()) != Some(&first.holder.to_string()) {
        fail(
            C,
            format!("a refused swap changed the lease: {:?}", now.record),
        );
    }
    a.release(&first)
        .await
        .unwrap_or_else(|e| fail(C, format!("release: {e}")));
}

/// Two runs take the lease at once: exactly one wins. Three rounds over a free lease (both
/// create it), three over an expired one both break by force (both replace the same version).
pub async fn one_of_two_wins(a: &dyn LeaseStore, b: &dyn LeaseStore) {
    const C: &str = "lease-race";
    for round in 0..6u32 {
        let over_expired = round >= 3;
        let (mut ca, mut cb) = (claim("run-a", 10 + round), claim("run-b", 20 + round));
        let old = claim("run-old", 30 + round);
        if over_expired {
            old_lease(a, &old, C).await;
            ca = ca.force(Force::Expired, "--force-lease");
            cb = cb.force(Force::Expired, "--force-lease");
        }
        let tries: Vec<BoxFuture<'_, Result<Taking, LeaseError>>> = vec![
            Box::pin(a.acquire(&ca, t(100))),
            Box::pin(b.acquire(&cb, t(100))),
        ];
        let results = join_all(tries).await;
        let won: Vec<bool> = results.iter().map(Result::is_ok).collect();
        for r in &results {
            match r {
                Err(LeaseError::Conflict { .. } | LeaseError::Held { .. }) => {}
                Err(e) => fail(C, format!("round {round}: a loser failed otherwise: {e}")),
                Ok(Taking::Free) if !over_expired => {}
                Ok(Taking::Broken { from })
                    if over_expired && from.holder == old.holder.to_string() => {}
                Ok(other) => fail(C, format!("round {round}: the winner took it as {other:?}")),
            }
        }
        let winner = match won[..] {
            [true, false] => &ca,
            [false, true] => &cb,
            _ => fail(
                C,
                format!("round {round}: not exactly one winner: {results:?}"),
            ),
        };
        let stored = a.read().await.unwrap_or_else(|e| fail(C, e));
        if stored.record.as_ref().map(|r| r.holder.as_str()) != Some(&winner.holder.to_string()) {
            fail(
                C,
                format!("round {round}: the winner does not hold it: {stored:?}"),
            );
        }
        a.release(winner)
            .await
            .unwrap_or_else(|e| fail(C, format!("release: {e}")));
    }
}

/// Leaves a lease of `old` taken at 0 s (expired at 30 s).
async fn old_lease(store: &dyn LeaseStore, old: &LeaseClaim, check: &str) {
    store
        .acquire(old, t(0))
        .await
        .unwrap_or_else(|e| fail(check, format!("the old run's lease: {e}")));
}

/// An expired lease goes to a forced run only; the old holder then has lost it.
pub async fn expiry_and_force(a: &dyn LeaseStore, b: &dyn LeaseStore) {
    const C: &str = "lease-expiry";
    let first = claim("run-a", 1);
    a.acquire(&first, t(0))
        .await
        .unwrap_or_else(|e| fail(C, format!("take: {e}")));
    let second = claim("run-b", 2);
    match b.acquire(&second, t(31)).await {
        Err(e @ LeaseError::Stale { .. }) => {
            if !e.to_string().contains("--force-lease") {
                fail(C, format!("the refusal does not name the option: {e}"));
            }
        }
        other => fail(
            C,
            format!("expired, not forced: expected Stale, got {other:?}"),
        ),
    }
    let forced = second.clone().force(Force::Expired, "--force-lease");
    match b.acquire(&forced, t(31)).await {
        Ok(Taking::Broken { from }) if from.holder == first.holder.to_string() => {}
        other => fail(
            C,
            format!("forced: expected Broken from run-a, got {other:?}"),
        ),
    }
    match a.renew(&first, t(32)).await {
        Err(LeaseError::Lost {
            holder: Some(h), ..
        }) if h.holder == second.holder.to_string() => {}
        other => fail(
            C,
            format!("the old holder's renewal: expected Lost, got {other:?}"),
        ),
    }
    a.release(&first)
        .await
        .unwrap_or_else(|e| fail(C, format!("the old holder's release: {e}")));
    let still = a.read().await.unwrap_or_else(|e| fail(C, e));
    if still.record.as_ref().map(|r| r.holder.as_str()) != Some(&second.holder.to_string()) {
        fail(C, format!("the old holder's release changed it: {still:?}"));
    }
    b.release(&forced)
        .await
        .unwrap_or_else(|e| fail(C, format!("release: {e}")));
    if a.read()
        .await
        .unwrap_or_else(|e| fail(C, e))
        .record
        .is_some()
    {
        fail(C, "released, yet a lease is stored");
    }
}
