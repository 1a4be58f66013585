//! The cluster-wide lease of a run: a `coordination.k8s.io/v1` Lease that says which run drives
//! the cluster, so that two runs never do.
//!
//! A run takes the lease ([`RunLease::acquire`]) before it starts anything, renews it in the
//! background while it runs, and releases it at the end ([`RunLease::release`]). The Lease
//! carries the holder (host, process, journal) as its `holderIdentity` and the plan's
//! fingerprint as the annotation [`FINGERPRINT_ANNOTATION`]. Who may take it:
//!
//! - nobody holds it (no Lease, or one without a holder): taken;
//! - the same holder: taken again;
//! - another holder, not expired (`renewTime` + `leaseDurationSeconds` in the future):
//!   refused, naming the holder ([`LeaseError::Held`]);
//! - another holder, expired: taken over only when the run goes on with the same plan from its
//!   journal (the journal agrees: a resume, the same fingerprint), else refused naming the
//!   holder ([`LeaseError::Stale`]); [`Acquire::force`] takes it anyway.
//!
//! Every write carries the `resourceVersion` it read, so of two runs taking the lease at once
//! one wins and the other is refused.
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Error};
use tokio::task::JoinHandle;

use crate::error::status_code;

/// The annotation on the Lease naming the fingerprint of the plan its holder runs.
pub const FINGERPRINT_ANNOTATION: &str = "kupgrade.io/plan-fingerprint";

/// Why a run may not take the lease, or the lease could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// Another run holds it and renews it.
    #[error(
        "another run drives this cluster: Lease {namespace}/{name} is held by {holder} (plan {fingerprint}), renewed until {expires}; wait for it to end"
    )]
    Held {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// Its holder.
        holder: String,
        /// The fingerprint of the holder's plan.
        fingerprint: String,
        /// When it expires unless renewed.
        expires: String,
    },
    /// Its holder stopped renewing it, and this run is not the holder's run going on.
    #[error(
        "Lease {namespace}/{name} was held by {holder} (plan {fingerprint}) and expired at {expired}, but this run {why}: make sure that run is over, then pass {force_flag} to take the lease over"
    )]
    Stale {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// Its last holder.
        holder: String,
        /// The fingerprint of the holder's plan.
        fingerprint: String,
        /// When it expired.
        expired: String,
        /// Why the journal does not agree.
        why: String,
        /// The option that forces the take-over (as the caller names it).
        force_flag: String,
    },
    /// The API server refused or failed a request.
    #[error("cannot {what} Lease {namespace}/{name}: {source}")]
    Api {
        /// What was tried.
        what: &'static str,
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// The error.
        #[source]
        source: Error,
    },
}

/// How to take the lease: see [`RunLease::acquire`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Acquire {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// Who takes it, in words (host, process, journal).
    pub holder: String,
    /// The fingerprint of the run's plan.
    pub fingerprint: String,
    /// True when the run goes on from its journal (a resume): it may then take over an expired
    /// lease of the same plan.
    pub resuming: bool,
    /// Take the lease even when its holder's run is not known to be over.
    pub force: bool,
    /// The option that sets [`Acquire::force`], for the refusal's message.
    pub force_flag: String,
    /// How long the lease lasts unless renewed (renewed every third of it).
    pub duration: Duration,
}

impl Acquire {
    /// The default Lease name and namespace (`kube-system/kupgrade`), held 60 s per renewal.
    pub fn new(holder: impl Into<String>, fingerprint: impl Into<String>) -> Self {
        Acquire {
            namespace: "kube-system".into(),
            name: "kupgrade".into(),
            holder: holder.into(),
            fingerprint: fingerprint.into(),
            resuming: false,
            force: false,
            force_flag: "--force-lease".into(),
            duration: Duration::from_secs(60),
        }
    }
    /// The Lease's namespace and name.
    pub fn lease(mut self, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self.name = name.into();
        self
    }
    /// Whether the run goes on from its journal.
    pub fn resuming(mut self, yes: bool) -> Self {
        self.resuming = yes;
        self
    }
    /// Whether to take an expired lease whatever the journal says, and the option that says so.
    pub fn force(mut self, yes: bool, flag: impl Into<String>) -> Self {
        self.force = yes;
        self.force_flag = flag.into();
        self
    }
    /// How long the lease lasts unless renewed.
    pub fn duration(mut self, d: Duration) -> Self {
        self.duration = d;
        self
    }
}

/// A lease this run holds; renewed in the background until [`RunLease::release`] or drop.
#[derive(Debug)]
pub struct RunLease {
    api: Api<Lease>,
    how: Acquire,
    renewer: JoinHandle<()>,
}

impl RunLease {
    /// Takes the lease as `how` says (see the [module documentation](self)) and starts
    /// renewing it.
    pub async fn acquire(client: Client, how: Acquire) -> Result<RunLease, LeaseError> {
        let api: Api<Lease> = Api::namespaced(client, &how.namespace);
        let err = |what, source| LeaseError::Api {
            what,
            namespace: how.namespace.clone(),
            name: how.name.clone(),
            source,
        };
        let now = Timestamp::now();
        match api.get_opt(&how.name).await.map_err(|e| err("read", e))? {
            None => {
                api.create(&PostParams::default(), &lease(&how, None, now))
                    .await
                    .map_err(|e| match status_code(&e) {
                        // Another run created it first.
                        Some(409) => err("create (another run took it first)", e),
                        _ => err("create", e),
                    })?;
            }
            Some(found) => {
                judge(&how, &found, now).map_err(|e| *e)?;
                api.replace(
                    &how.name,
                    &PostParams::default(),
                    &lease(&how, Some(&found), now),
                )
                .await
                .map_err(|e| match status_code(&e) {
                    Some(409) => err("take (another run took it first)", e),
                    _ => err("take", e),
                })?;
            }
        }
        let renewer = tokio::spawn(renew(api.clone(), how.clone()));
        Ok(RunLease { api, how, renewer })
    }

    /// Stops renewing and deletes the lease, if this run still holds it.
    pub async fn release(self) -> Result<(), LeaseError> {
        self.renewer.abort();
        let how = &self.how;
        let err = |what, source| LeaseError::Api {
            what,
            namespace: how.namespace.clone(),
            name: how.name.clone(),
            source,
        };
        match self
            .api
            .get_opt(&how.name)
            .await
            .map_err(|e| err("read", e))?
        {
            Some(l) if holder(&l) == Some(how.holder.as_str()) => {
                match self.api.delete(&how.name, &DeleteParams::default()).await {
                    Ok(_) => Ok(()),
                    Err(e) if status_code(&e) == Some(404) => Ok(()),
                    Err(e) => Err(err("delete", e)),
                }
            }
            _ => Ok(()),
        }
    }
}

impl Drop for RunLease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

fn holder(l: &Lease) -> Option<&str> {
    l.spec
        .as_ref()?
        .holder_identity
        .as_deref()
        .filter(|h| !h.is_empty())
}

/// Refuses `found` unless `how` may take it at `now`.
fn judge(how: &Acquire, found: &Lease, now: Timestamp) -> Result<(), Box<LeaseError>> {
    let Some(them) = holder(found) else {
        return Ok(());
    };
    if them == how.holder {
        return Ok(());
    }
    let fingerprint = found
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(FINGERPRINT_ANNOTATION))
        .cloned()
        .unwrap_or_else(|| "unknown".into());
    let spec = found.spec.as_ref();
    let renewed = spec
        .and_then(|s| s.renew_time.as_ref().or(s.acquire_time.as_ref()))
        .map(|t| t.0);
    let seconds = spec.and_then(|s| s.lease_duration_seconds).unwrap_or(0);
    let expires = renewed.and_then(|t| {
        t.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(seconds.into()))
            .ok()
    });
    match expires {
        Some(at) if at > now => Err(Box::new(LeaseError::Held {
            namespace: how.namespace.clone(),
            name: how.name.clone(),
            holder: them.to_string(),
            fingerprint,
            expires: at.to_string(),
        })),
        _ if how.force => Ok(()),
        _ if how.resuming && fingerprint == how.fingerprint => Ok(()),
        at => Err(Box::new(LeaseError::Stale {
            namespace: how.namespace.clone(),
            name: how.name.clone(),
            holder: them.to_string(),
            fingerprint: fingerprint.clone(),
            expired: at.map_or_else(|| "an unknown time".into(), |t| t.to_string()),
            why: if fingerprint != how.fingerprint {
                format!("runs another plan ({})", how.fingerprint)
            } else {
                "starts afresh instead of resuming its journal".into()
            },
            force_flag: how.force_flag.clone(),
        })),
    }
}

/// The Lease `how` holds, over `found` (its metadata and transitions kept).
fn lease(how: &Acquire, found: Option<&Lease>, now: Timestamp) -> Lease {
    let mut metadata = found.map(|l| l.metadata.clone()).unwrap_or(ObjectMeta {
        name: Some(how.name.clone()),
        namespace: Some(how.namespace.clone()),
        ..ObjectMeta::default()
    });
    metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(FINGERPRINT_ANNOTATION.into(), how.fingerprint.clone());
    let old = found.and_then(|l| l.spec.clone()).unwrap_or_default();
    let ours = found.and_then(holder) == Some(how.holder.as_str());
    Lease {
        metadata,
        spec: Some(LeaseSpec {
            holder_identity: Some(how.holder.clone()),
            lease_duration_seconds: Some(how.duration.as_secs().clamp(1, i32::MAX as u64) as i32),
            acquire_time: if ours {
                old.acquire_time
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(
                old.lease_transitions.unwrap_or(0) + i32::from(!ours && found.is_some()),
            ),
            ..LeaseSpec::default()
        }),
    }
}

/// Renews the lease every third of its duration while this run holds it.
async fn renew(api: Api<Lease>, how: Acquire) {
    let every = (how.duration / 3).max(Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        let found = match api.get_opt(&how.name).await {
            Ok(Some(l)) => l,
            Ok(None) => {
                tracing::error!(
                    "Lease {}/{} is gone: another run may take it",
                    how.namespace,
                    how.name
                );
                return;
            }
            Err(e) => {
                tracing::warn!(
                    "cannot read Lease {}/{} to renew it: {e}",
                    how.namespace,
                    how.name
                );
                continue;
            }
        };
        if holder(&found) != Some(how.holder.as_str()) {
            tracing::error!(
                "Lease {}/{} is now held by {}: this run no longer holds the cluster",
                how.namespace,
                how.name,
                holder(&found).unwrap_or("nobody")
            );
            return;
        }
        let l = lease(&how, Some(&found), Timestamp::now());
        if let Err(e) = api.replace(&how.name, &PostParams::default(), &l).await {
            tracing::warn!("cannot renew Lease {}/{}: {e}", how.namespace, how.name);
        }
    }
}
