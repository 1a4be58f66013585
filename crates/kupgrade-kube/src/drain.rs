//! `kubectl drain`'s semantics through the Eviction API.
//!
//! 1. Cordon the node.
//! 2. List its pods (`fieldSelector=spec.nodeName=NODE`, every namespace) and sort each into
//!    skip, evict or refuse, as kubectl does:
//!    - mirror pods (annotation `kubernetes.io/config.mirror`: the kubelet's static pods) are
//!      skipped: the API cannot remove them;
//!    - pods controlled by a DaemonSet are skipped with `ignore_daemonsets`, refused otherwise
//!      (the DaemonSet controller would recreate them at once);
//!    - finished pods (Succeeded, Failed) are evicted without further checks;
//!    - pods with an `emptyDir` volume are refused unless `delete_emptydir_data`;
//!    - pods with no controller are refused unless `force` (nothing would recreate them).
//!
//!    If any pod is refused, nothing is evicted and the drain fails at once with
//!    [`OpsError::DrainBlocked`] listing each refused pod and why.
//! 3. Evict the rest in parallel (at most [`KubeClusterOps::eviction_concurrency`] at once),
//!    each with the grace period asked for and a UID precondition. An eviction refused with
//!    HTTP 429 (a PodDisruptionBudget would be violated) is retried with exponential backoff
//!    until the drain's deadline; then the pod is reported blocked, with the budget(s) whose
//!    selector matches it. With `disable_eviction` the pods are deleted instead (same grace
//!    period and UID precondition), as `kubectl drain --disable-eviction` does: no budget is
//!    asked, and the role needs `delete` on pods.
//! 4. Watch the node's pods until every evicted pod is gone (by UID: a replacement with the
//!    same name does not count), or until the deadline.
//!
//! The deadline is `options.timeout_seconds` from the start and bounds every request. The
//! node stays cordoned when the drain fails, as with kubectl; uncordon it to give up.
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use kupgrade_core::NodeName;
use kupgrade_core::ports::{BlockedPod, DrainOptions, DrainReport, OpsError, PodRef};
use tokio::time::{Instant, sleep, timeout_at};

use crate::budgets::{Budgets, list_budgets};
use crate::error::{fatal_watch_error, is_connect, ops_error, status_code};
use crate::eviction::{budget_named_in, pod_is_gone, refusal_text};
use crate::ops::KubeClusterOps;

/// The annotation the kubelet puts on the API's copy of a static pod.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// What a drain does with one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Disposition {
    Skip(String),
    Evict,
    Refuse(String),
}

/// kubectl's filters, in kubectl's order.
pub(crate) fn classify(pod: &Pod, options: &DrainOptions) -> Disposition {
    if pod.annotations().contains_key(MIRROR_ANNOTATION) {
        return Disposition::Skip("mirror pod of a static pod (the kubelet manages it)".into());
    }
    let controller = pod
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true));
    if controller.is_some_and(|c| c.kind == "DaemonSet") {
        return if options.ignore_daemonsets {
            Disposition::Skip("DaemonSet-managed pod".into())
        } else {
            Disposition::Refuse(
                "DaemonSet-managed pod: its DaemonSet would recreate it (set ignoreDaemonsets to leave it)"
                    .into(),
            )
        };
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return Disposition::Evict;
    }
    let empty_dir = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|vs| vs.iter().any(|v| v.empty_dir.is_some()));
    if empty_dir && !options.delete_emptydir_data {
        return Disposition::Refuse(
            "pod has emptyDir data that eviction deletes (set deleteEmptydirData to evict it)"
                .into(),
        );
    }
    if controller.is_none() && !options.force {
        return Disposition::Refuse(
            "pod has no controller, so nothing would recreate it (set force to evict it)".into(),
        );
    }
    Disposition::Evict
}

fn pod_ref(pod: &Pod) -> PodRef {
    PodRef {
        namespace: pod.namespace().unwrap_or_default(),
        name: pod.name_any(),
    }
}

/// How one eviction ended.
enum Outcome {
    /// Accepted: the pod is terminating.
    Evicted { pod: PodRef, uid: String },
    /// The pod (with that UID) was already gone.
    Gone(PodRef),
    /// Refused until the deadline (or for good).
    Blocked {
        pod: PodRef,
        labels: BTreeMap<String, String>,
        reason: String,
    },
    /// A failure that ends the drain (forbidden, unreachable, a server error).
    Failed(OpsError),
}

/// What the evictions of one drain came to.
#[derive(Default)]
struct Evictions {
    /// Accepted and terminating, by UID: the drain waits for them to go.
    pending: HashMap<String, PodRef>,
    /// Already gone.
    gone: Vec<PodRef>,
    /// Refused until the deadline, with the pod's labels (to find its budgets) and why.
    refused: Vec<(PodRef, BTreeMap<String, String>, String)>,
}

/// Sorts a node's pods into the ones to skip (in the report), to evict (returned), and to
/// refuse: any refused pod ends the drain before anything is evicted
/// ([`OpsError::DrainBlocked`] naming them all).
fn triage(
    node: &NodeName,
    pods: Vec<Pod>,
    options: &DrainOptions,
) -> Result<(DrainReport, Vec<Pod>), OpsError> {
    let mut report = DrainReport::default();
    let mut refused = Vec::new();
    let mut to_evict = Vec::new();
    for pod in pods {
        match classify(&pod, options) {
            Disposition::Skip(reason) => report.skipped.push((pod_ref(&pod), reason)),
            Disposition::Refuse(reason) => refused.push(BlockedPod {
                pod: pod_ref(&pod),
                budget: None,
                reason,
            }),
            Disposition::Evict => to_evict.push(pod),
        }
    }
    report.skipped.sort();
    if refused.is_empty() {
        return Ok((report, to_evict));
    }
    refused.sort_by(|a, b| a.pod.cmp(&b.pod));
    report.blocked = refused;
    Err(OpsError::DrainBlocked {
        node: node.clone(),
        report,
    })
}

impl KubeClusterOps {
    pub(crate) async fn drain_node(
        &self,
        node: &NodeName,
        options: &DrainOptions,
    ) -> Result<DrainReport, OpsError> {
        let limit = Duration::from_secs(options.timeout_seconds);
        let deadline = Instant::now() + kupgrade_core::ports::capped(limit);
        let timed_out = |what: &str| OpsError::TimedOut {
            what: format!("{what} (draining node {node})"),
            after: limit,
        };
        timeout_at(deadline, self.cordon_node(node))
            .await
            .map_err(|_| timed_out("cordon"))??;

        let pods_api: Api<Pod> = Api::all(self.client.clone());
        let selector = format!("spec.nodeName={node}");
        let pods = timeout_at(
            deadline,
            pods_api.list(&ListParams::default().fields(&selector)),
        )
        .await
        .map_err(|_| timed_out("list the node's pods"))?
        .map_err(|e| ops_error(&format!("list pods on node {node}"), e))?
        .items;

        let (mut report, to_evict) = triage(node, pods, options)?;
        let evictions = self.evict_all(to_evict, options, deadline).await?;
        let still_there = self
            .wait_gone(node, evictions.pending.clone(), deadline)
            .await?;
        let mut gone = evictions.gone;
        for (uid, pod) in evictions.pending {
            if !still_there.contains_key(&uid) {
                gone.push(pod);
            }
        }
        gone.sort();
        report.evicted = gone;

        report.blocked = self.explain_refusals(evictions.refused).await;
        for pod in still_there.into_values() {
            report.blocked.push(BlockedPod {
                pod,
                budget: None,
                reason: format!(
                    "evicted, but still on the node (terminating) when the drain's {}s deadline passed",
                    options.timeout_seconds
                ),
            });
        }
        report.blocked.sort_by(|a, b| a.pod.cmp(&b.pod));
        if report.blocked.is_empty() {
            Ok(report)
        } else {
            Err(OpsError::DrainBlocked {
                node: node.clone(),
                report,
            })
        }
    }

    /// Evicts (or deletes, with `disable_eviction`) every pod at once, up to the client's
    /// concurrency, and sorts the outcomes; the first failure that ends the drain is the error.
    async fn evict_all(
        &self,
        to_evict: Vec<Pod>,
        options: &DrainOptions,
        deadline: Instant,
    ) -> Result<Evictions, OpsError> {
        let grace = options.grace_period_seconds;
        let outcomes: Vec<Outcome> = futures::stream::iter(to_evict)
            .map(|pod| async move {
                if options.disable_eviction {
                    self.delete_pod(pod, grace, deadline).await
                } else {
                    self.evict_until(pod, grace, deadline).await
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;

        let mut out = Evictions::default();
        let mut failure = None;
        for o in outcomes {
            match o {
                Outcome::Evicted { pod, uid } => {
                    out.pending.insert(uid, pod);
                }
                Outcome::Gone(pod) => out.gone.push(pod),
                Outcome::Blocked {
                    pod,
                    labels,
                    reason,
                } => out.refused.push((pod, labels, reason)),
                Outcome::Failed(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// The refused evictions as blocked pods, each with the disruption budgets that cover it
    /// (listed once per namespace), or the budget the refusal names.
    async fn explain_refusals(
        &self,
        refused: Vec<(PodRef, BTreeMap<String, String>, String)>,
    ) -> Vec<BlockedPod> {
        let mut budgets: HashMap<String, Option<Budgets>> = HashMap::new();
        let mut blocked = Vec::with_capacity(refused.len());
        for (pod, labels, reason) in refused {
            if !budgets.contains_key(&pod.namespace) {
                let listed = self.budgets_in(&pod.namespace).await;
                budgets.insert(pod.namespace.clone(), listed);
            }
            let covering = budgets[&pod.namespace]
                .as_ref()
                .map(|b| b.covering(&labels))
                .unwrap_or_default();
            let budget = if covering.is_empty() {
                budget_named_in(&reason)
            } else {
                Some(covering.join(", "))
            };
            blocked.push(BlockedPod {
                pod,
                budget,
                reason,
            });
        }
        blocked
    }

    /// Evicts `pod`, retrying 429 refusals with backoff until `deadline`.
    async fn evict_until(&self, pod: Pod, grace: Option<u64>, deadline: Instant) -> Outcome {
        let r = pod_ref(&pod);
        let uid = pod.meta().uid.clone().unwrap_or_default();
        let labels = pod.labels().clone();
        let mut delay = self.backoff.0;
        let mut last: Option<String> = None;
        loop {
            let attempt = timeout_at(deadline, self.evictor.evict(&r, &uid, grace)).await;
            let err = match attempt {
                Err(_) => {
                    return Outcome::Blocked {
                        pod: r,
                        labels,
                        reason: last.unwrap_or_else(|| {
                            "the eviction got no answer before the drain's deadline".into()
                        }),
                    };
                }
                Ok(Ok(())) => return Outcome::Evicted { pod: r, uid },
                Ok(Err(e)) => e,
            };
            if pod_is_gone(&err, &r.name) {
                return Outcome::Gone(r);
            }
            match status_code(&err) {
                // Refused by a disruption budget (or the budget is not yet processed): retry.
                Some(429) => last = Some(refusal_text(&err)),
                // The UID precondition failed: the pod listed is gone, a new one has its name.
                Some(409)
                    if refusal_text(&err).contains("UID") || refusal_text(&err).contains("uid") =>
                {
                    return Outcome::Gone(r);
                }
                Some(409) => last = Some(refusal_text(&err)),
                // More than one budget covers the pod: the API server refuses for good.
                Some(500) if refusal_text(&err).contains("more than one PodDisruptionBudget") => {
                    return Outcome::Blocked {
                        pod: r,
                        labels,
                        reason: refusal_text(&err),
                    };
                }
                _ if is_connect(&err) || status_code(&err).is_some() => {
                    return Outcome::Failed(ops_error(
                        &format!("evict pod {r} (create pods/eviction)"),
                        err,
                    ));
                }
                _ => {
                    return Outcome::Failed(ops_error(&format!("evict pod {r}"), err));
                }
            }
            let now = Instant::now();
            if now + delay >= deadline {
                sleep(deadline.saturating_duration_since(now)).await;
                return Outcome::Blocked {
                    pod: r,
                    labels,
                    reason: last.unwrap_or_default(),
                };
            }
            sleep(delay).await;
            delay = (delay * 2).min(self.backoff.1);
        }
    }

    /// Deletes `pod` (UID precondition, grace period `grace`) instead of evicting it: no
    /// disruption budget is asked (`disable_eviction`).
    async fn delete_pod(&self, pod: Pod, grace: Option<u64>, deadline: Instant) -> Outcome {
        let r = pod_ref(&pod);
        let uid = pod.meta().uid.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &r.namespace);
        let params = DeleteParams {
            grace_period_seconds: grace.map(|g| u32::try_from(g).unwrap_or(u32::MAX)),
            preconditions: (!uid.is_empty()).then(|| Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match timeout_at(deadline, api.delete(&r.name, &params)).await {
            Err(_) => Outcome::Blocked {
                labels: pod.labels().clone(),
                pod: r,
                reason: "the deletion got no answer before the drain's deadline".into(),
            },
            Ok(Ok(_)) => Outcome::Evicted { pod: r, uid },
            Ok(Err(e)) if pod_is_gone(&e, &r.name) => Outcome::Gone(r),
            // The UID precondition failed: the pod listed is gone, a new one has its name.
            Ok(Err(e)) if status_code(&e) == Some(409) => Outcome::Gone(r),
            Ok(Err(e)) => Outcome::Failed(ops_error(&format!("delete pod {r} (delete pods)"), e)),
        }
    }

    /// Watches the node's pods until none of `pending` (by UID) is left, or `deadline`.
    /// Returns those still there. Always looks at least once, even past the deadline.
    async fn wait_gone(
        &self,
        node: &NodeName,
        mut pending: HashMap<String, PodRef>,
        deadline: Instant,
    ) -> Result<HashMap<String, PodRef>, OpsError> {
        if pending.is_empty() {
            return Ok(pending);
        }
        let api: Api<Pod> = Api::all(self.client.clone());
        let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let mut stream = watcher(api, config).boxed();
        // The first listing is always waited for (a few seconds at most), so that a drain whose
        // evictions used up the time still reports which pods are gone.
        let first_look = deadline.max(Instant::now() + Duration::from_secs(5));
        let mut listed = false;
        let mut present: HashMap<String, ()> = HashMap::new();
        loop {
            let until = if listed { deadline } else { first_look };
            let event = match timeout_at(until, stream.try_next()).await {
                Err(_) => return Ok(pending),
                Ok(Ok(Some(e))) => e,
                Ok(Ok(None)) => return Ok(pending),
                Ok(Err(e)) => {
                    let e = match fatal_watch_error(&format!("watch pods on node {node}"), e) {
                        Ok(fatal) => return Err(fatal),
                        Err(e) => e,
                    };
                    tracing::debug!("watching pods on node {node}: {e}; retrying");
                    if Instant::now() >= until {
                        return Ok(pending);
                    }
                    sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            match event {
                watcher::Event::Init => present.clear(),
                watcher::Event::InitApply(p) => {
                    if let Some(uid) = p.meta().uid.clone() {
                        present.insert(uid, ());
                    }
                }
                watcher::Event::InitDone => {
                    listed = true;
                    pending.retain(|uid, _| present.contains_key(uid));
                }
                watcher::Event::Apply(_) => {}
                watcher::Event::Delete(p) => {
                    if let Some(uid) = &p.meta().uid {
                        pending.remove(uid);
                    }
                }
            }
            if listed && pending.is_empty() {
                return Ok(pending);
            }
            if listed && Instant::now() >= deadline {
                return Ok(pending);
            }
        }
    }

    /// The disruption budgets of `namespace`, or `None` when they cannot be listed (the
    /// refusal's text then names the budget).
    async fn budgets_in(&self, namespace: &str) -> Option<Budgets> {
        let listed = tokio::time::timeout(
            Duration::from_secs(10),
            list_budgets(&self.client, self.evictor.version(), namespace),
        )
        .await;
        match listed {
            Ok(Ok(b)) => Some(b),
            Ok(Err(e)) => {
                tracing::debug!(
                    "listing disruption budgets in {namespace}: {}",
                    crate::error::describe(&e)
                );
                None
            }
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, PodSpec, PodStatus, Volume};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn pod(owner: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                owner_references: owner.map(|kind| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: kind.into(),
                        name: "owner".into(),
                        uid: "u".into(),
                        controller: Some(true),
                        block_owner_deletion: None,
                    }]
                }),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                ..PodStatus::default()
            }),
        }
    }

    fn with_empty_dir(mut p: Pod) -> Pod {
        p.spec.as_mut().unwrap().volumes = Some(vec![Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        }]);
        p
    }

    fn is_refused(d: &Disposition, needle: &str) -> bool {
        matches!(d, Disposition::Refuse(r) if r.contains(needle))
    }

    #[test]
    fn kubectl_filters() {
        let defaults = DrainOptions::default();
        assert_eq!(
            classify(&pod(Some("ReplicaSet")), &defaults),
            Disposition::Evict
        );

        let mut mirror = pod(None);
        mirror
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(MIRROR_ANNOTATION.into(), "abc".into());
        assert!(
            matches!(classify(&mirror, &defaults), Disposition::Skip(r) if r.starts_with("mirror pod"))
        );

        let ds = pod(Some("DaemonSet"));
        assert_eq!(
            classify(&ds, &defaults),
            Disposition::Skip("DaemonSet-managed pod".into())
        );
        let strict = DrainOptions {
            ignore_daemonsets: false,
            ..DrainOptions::default()
        };
        assert!(is_refused(&classify(&ds, &strict), "ignoreDaemonsets"));

        let bare = pod(None);
        assert!(is_refused(&classify(&bare, &defaults), "no controller"));
        let force = DrainOptions {
            force: true,
            ..DrainOptions::default()
        };
        assert_eq!(classify(&bare, &force), Disposition::Evict);

        let scratch = with_empty_dir(pod(Some("ReplicaSet")));
        assert!(is_refused(&classify(&scratch, &defaults), "emptyDir"));
        let lose = DrainOptions {
            delete_emptydir_data: true,
            ..DrainOptions::default()
        };
        assert_eq!(classify(&scratch, &lose), Disposition::Evict);

        // A finished pod goes whatever its volumes and owners.
        let mut done = with_empty_dir(pod(None));
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert_eq!(classify(&done, &defaults), Disposition::Evict);
    }
}
