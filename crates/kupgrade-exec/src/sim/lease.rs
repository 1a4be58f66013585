//! The run lease of the simulated cluster: in memory, shared by every clone.
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kupgrade_core::ports::{LeaseError, LeaseRecord, LeaseStore, Stored};

/// A [`LeaseStore`] in memory: every clone is a handle on the same lease, as two clients of
/// one API server are. The version is a counter of writes.
#[derive(Clone, Debug, Default)]
pub struct SimLease {
    inner: Arc<Mutex<(Option<LeaseRecord>, u64)>>,
}

impl SimLease {
    /// A store holding no lease.
    pub fn new() -> Self {
        SimLease::default()
    }
}

#[async_trait]
impl LeaseStore for SimLease {
    fn place(&self) -> String {
        "the simulated cluster's run lease".into()
    }

    async fn read(&self) -> Result<Stored, LeaseError> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Ok(Stored {
            record: g.0.clone(),
            version: g.0.as_ref().map(|_| g.1.to_string()),
        })
    }

    async fn swap(
        &self,
        version: Option<&str>,
        record: Option<&LeaseRecord>,
    ) -> Result<(), LeaseError> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = g.0.as_ref().map(|_| g.1.to_string());
        if now.as_deref() != version {
            return Err(LeaseError::Conflict {
                place: self.place(),
            });
        }
        g.0 = record.cloned();
        g.1 += 1;
        Ok(())
    }
}
