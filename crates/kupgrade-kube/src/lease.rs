//! The cluster-wide lease of a run as a `coordination.k8s.io/v1` Lease, so that two runs
//! never drive one cluster.
//!
//! [`KubeLease`] is a [`LeaseStore`]: it reads the Lease and replaces it naming the
//! `resourceVersion` it read, so that of two runs taking the lease at once the API server
//! lets one write and answers the other 409 Conflict ([`LeaseError::Conflict`]). A release
//! deletes the Lease with that `resourceVersion` as its precondition. Who may take the lease
//! is decided by the rules every store shares ([`kupgrade_core::ports::judge`], through
//! [`LeaseStoreExt`](kupgrade_core::ports::LeaseStoreExt)).
//!
//! The Lease carries the holder as `holderIdentity`, the taking and renewal times as
//! `acquireTime` and `renewTime`, the duration as `leaseDurationSeconds`, and the plan's
//! fingerprint as the annotation [`FINGERPRINT_ANNOTATION`]; `leaseTransitions` counts the
//! changes of holder.
use async_trait::async_trait;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::{Client, Error};
use kupgrade_core::ports::{LeaseError, LeaseRecord, LeaseStore, Stored};

use crate::error::status_code;

/// The annotation on the Lease naming the fingerprint of the plan its holder runs.
pub const FINGERPRINT_ANNOTATION: &str = "kupgrade.io/plan-fingerprint";

/// The run lease as a Lease object.
#[derive(Clone)]
pub struct KubeLease {
    api: Api<Lease>,
    namespace: String,
    name: String,
}

impl std::fmt::Debug for KubeLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeLease")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl KubeLease {
    /// The Lease's namespace unless told otherwise.
    pub const DEFAULT_NAMESPACE: &'static str = "kube-system";
    /// The Lease's name unless told otherwise.
    pub const DEFAULT_NAME: &'static str = "kupgrade";

    /// The Lease `kube-system/kupgrade`, through `client`.
    pub fn new(client: Client) -> Self {
        Self::named(client, Self::DEFAULT_NAMESPACE, Self::DEFAULT_NAME)
    }

    /// The Lease `namespace/name`, through `client`.
    pub fn named(client: Client, namespace: &str, name: &str) -> Self {
        KubeLease {
            api: Api::namespaced(client, namespace),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn error(&self, what: &str, e: Error) -> LeaseError {
        if status_code(&e) == Some(409) {
            return LeaseError::Conflict {
                place: self.place(),
            };
        }
        LeaseError::Store {
            place: self.place(),
            message: format!("cannot {what} it: {e}"),
            source: Some(Box::new(e)),
        }
    }

    fn conflict(&self) -> LeaseError {
        LeaseError::Conflict {
            place: self.place(),
        }
    }
}

/// The record a Lease carries (`None`: nobody holds it).
fn record(l: &Lease) -> Option<LeaseRecord> {
    let spec = l.spec.as_ref()?;
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty())?;
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    Some(LeaseRecord {
        holder,
        fingerprint: l
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(FINGERPRINT_ANNOTATION))
            .cloned()
            .unwrap_or_else(|| "unknown".into()),
        acquired: spec.acquire_time.as_ref().map_or(renewed, |t| t.0),
        renewed,
        seconds: spec
            .lease_duration_seconds
            .map_or(0, |s| u32::try_from(s).unwrap_or(0)),
    })
}

/// The Lease carrying `r`, over `found` (its metadata and transitions kept).
fn lease(ns: &str, name: &str, r: &LeaseRecord, found: Option<&Lease>) -> Lease {
    let mut metadata = found.map(|l| l.metadata.clone()).unwrap_or(ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        ..ObjectMeta::default()
    });
    metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(FINGERPRINT_ANNOTATION.into(), r.fingerprint.clone());
    let old = found.and_then(|l| l.spec.clone()).unwrap_or_default();
    let changed = found
        .and_then(record)
        .is_some_and(|before| before.holder != r.holder);
    Lease {
        metadata,
        spec: Some(LeaseSpec {
            holder_identity: Some(r.holder.clone()),
            lease_duration_seconds: Some(i32::try_from(r.seconds).unwrap_or(i32::MAX)),
            acquire_time: Some(MicroTime(r.acquired)),
            renew_time: Some(MicroTime(r.renewed)),
            lease_transitions: Some(old.lease_transitions.unwrap_or(0) + i32::from(changed)),
            ..LeaseSpec::default()
        }),
    }
}

#[async_trait]
impl LeaseStore for KubeLease {
    fn place(&self) -> String {
        format!("Lease {}/{}", self.namespace, self.name)
    }

    async fn read(&self) -> Result<Stored, LeaseError> {
        let found = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.error("read", e))?;
        Ok(Stored {
            record: found.as_ref().and_then(record),
            version: found.and_then(|l| l.metadata.resource_version),
        })
    }

    async fn swap(
        &self,
        version: Option<&str>,
        record: Option<&LeaseRecord>,
    ) -> Result<(), LeaseError> {
        let pp = PostParams::default();
        match (version, record) {
            (None, Some(r)) => {
                let l = lease(&self.namespace, &self.name, r, None);
                self.api
                    .create(&pp, &l)
                    .await
                    .map_err(|e| self.error("create", e))?;
            }
            (Some(v), Some(r)) => {
                let found = self
                    .api
                    .get_opt(&self.name)
                    .await
                    .map_err(|e| self.error("read", e))?;
                let mut l = lease(&self.namespace, &self.name, r, found.as_ref());
                // The version read before, not the one just read: the API server refuses a
                // replace of another version with 409.
                l.metadata.resource_version = Some(v.to_string());
                self.api
                    .replace(&self.name, &pp, &l)
                    .await
                    .map_err(|e| match status_code(&e) {
                        // Deleted since: another run's write came between.
                        Some(404) => self.conflict(),
                        _ => self.error("replace", e),
                    })?;
            }
            (Some(v), None) => {
                let dp = DeleteParams::default().preconditions(Preconditions {
                    resource_version: Some(v.to_string()),
                    uid: None,
                });
                match self.api.delete(&self.name, &dp).await {
                    Ok(_) => {}
                    Err(e) if status_code(&e) == Some(404) => return Err(self.conflict()),
                    Err(e) => return Err(self.error("delete", e)),
                }
            }
            (None, None) => {
                if self.read().await?.version.is_some() {
                    return Err(self.conflict());
                }
            }
        }
        Ok(())
    }
}
