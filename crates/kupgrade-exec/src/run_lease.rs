//! Holding the run lease while a run goes on: taken once, renewed in the background every
//! third of its duration, given back at the end, over any [`LeaseStore`] (the Kubernetes
//! Lease, a file on a node, the simulator's).
//!
//! A run that no longer holds the lease must stop driving the cluster: when a renewal finds
//! another holder (or none), or renewals have failed for as long as the lease lasts (so it
//! may have expired and been taken), [`HeldLease`] calls the `on_lost` it was given, once,
//! and stops renewing. The caller aborts its run there.
use std::sync::Arc;

use jiff::Timestamp;
use kupgrade_core::ports::{LeaseClaim, LeaseError, LeaseStore, LeaseStoreExt, Taking};
use tokio::task::JoinHandle;

/// A run lease this process holds, renewed in the background until [`HeldLease::release`]
/// or drop (a dropped lease is not given back: it expires).
#[derive(Debug)]
pub struct HeldLease {
    store: Arc<dyn LeaseStore>,
    claim: LeaseClaim,
    taking: Taking,
    renewer: JoinHandle<()>,
}

impl HeldLease {
    /// Takes the lease in `store` for `claim` now (as [`kupgrade_core::ports::judge`]
    /// allows) and starts renewing it; `on_lost` is called once if this process loses it.
    pub async fn acquire(
        store: Arc<dyn LeaseStore>,
        claim: LeaseClaim,
        on_lost: impl FnOnce(LeaseError) + Send + 'static,
    ) -> Result<HeldLease, LeaseError> {
        let taking = store.acquire(&claim, Timestamp::now()).await?;
        let renewer = tokio::spawn(renew(store.clone(), claim.clone(), on_lost));
        Ok(HeldLease {
            store,
            claim,
            taking,
            renewer,
        })
    }

    /// How the lease was taken (for the journal).
    pub fn taking(&self) -> &Taking {
        &self.taking
    }

    /// Where the lease is.
    pub fn place(&self) -> String {
        self.store.place()
    }

    /// The claim it is held by.
    pub fn claim(&self) -> &LeaseClaim {
        &self.claim
    }

    /// Stops renewing and gives the lease back, if this process still holds it.
    pub async fn release(self) -> Result<(), LeaseError> {
        self.renewer.abort();
        self.store.release(&self.claim).await
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Renews every third of the lease's duration; calls `on_lost` once and returns when the
/// lease is lost or has gone unrenewed for its whole duration.
async fn renew(
    store: Arc<dyn LeaseStore>,
    claim: LeaseClaim,
    on_lost: impl FnOnce(LeaseError) + Send + 'static,
) {
    let every = claim.renew_every();
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        match store.renew(&claim, Timestamp::now()).await {
            Ok(()) => last = tokio::time::Instant::now(),
            Err(e @ LeaseError::Lost { .. }) => {
                tracing::error!("{e}: this run no longer holds the cluster");
                on_lost(e);
                return;
            }
            Err(e) => {
                tracing::warn!("cannot renew {}: {e}", store.place());
                if last.elapsed() >= claim.duration {
                    on_lost(LeaseError::Store {
                        place: store.place(),
                        message: format!(
                            "not renewed for {} s, as long as it lasts: another run may hold it now (last error: {e})",
                            claim.duration.as_secs()
                        ),
                        source: Some(Box::new(e)),
                    });
                    return;
                }
            }
        }
    }
}
