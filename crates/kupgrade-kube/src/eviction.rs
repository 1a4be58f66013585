//! The Eviction API, spoken on purpose.
//!
//! kube 5.0's `Api::evict` sends the delete options under the key `delete_options`; API
//! servers expect `deleteOptions` and silently ignore the unknown key, so a grace period given
//! that way has no effect. This module builds the `Eviction` body itself:
//!
//! ```json
//! {"apiVersion": "policy/v1", "kind": "Eviction",
//!  "metadata": {"name": "web-1", "namespace": "shop"},
//!  "deleteOptions": {"gracePeriodSeconds": 30, "preconditions": {"uid": "…"}}}
//! ```
//!
//! The UID precondition makes sure the pod evicted is the pod that was listed, not a
//! replacement with the same name (a StatefulSet's).
//!
//! It is posted to `/api/v1/namespaces/{ns}/pods/{name}/eviction`. Servers since 1.22 take
//! `policy/v1`; older ones (1.20, the project's test server) know only `policy/v1beta1` and
//! answer 400 "no kind is registered" (or 404 where the subresource is missing). On such an
//! answer the evictor falls back to `policy/v1beta1` and remembers the choice for the rest of
//! its life.
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use kube::Client;
use kube::core::Status;
use kupgrade_core::ports::PodRef;
use serde_json::json;

use crate::error::status_code;

/// The `policy` API version of an Eviction body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PolicyVersion {
    V1,
    V1beta1,
}

impl PolicyVersion {
    pub(crate) fn api_version(self) -> &'static str {
        match self {
            PolicyVersion::V1 => "policy/v1",
            PolicyVersion::V1beta1 => "policy/v1beta1",
        }
    }
}

const UNKNOWN: u8 = 0;
const V1: u8 = 1;
const V1BETA1: u8 = 2;

/// Posts evictions, choosing and remembering the policy API version. Cheap to clone; clones
/// share what was learned.
#[derive(Clone)]
pub(crate) struct Evictor {
    client: Client,
    version: Arc<AtomicU8>,
}

impl Evictor {
    pub(crate) fn new(client: Client) -> Self {
        Evictor {
            client,
            version: Arc::new(AtomicU8::new(UNKNOWN)),
        }
    }

    /// The version learned so far (v1 until a server said otherwise).
    pub(crate) fn version(&self) -> PolicyVersion {
        match self.version.load(Ordering::Relaxed) {
            V1BETA1 => PolicyVersion::V1beta1,
            _ => PolicyVersion::V1,
        }
    }

    /// Posts one eviction of `pod` (with UID `uid`), falling back to `policy/v1beta1` when the
    /// server does not know `policy/v1`.
    pub(crate) async fn evict(
        &self,
        pod: &PodRef,
        uid: &str,
        grace: Option<u64>,
    ) -> Result<(), kube::Error> {
        let first = self.version();
        match self.post(first, pod, uid, grace).await {
            Err(e) if first == PolicyVersion::V1 && version_unsupported(&e, &pod.name) => {
                tracing::debug!(
                    "the server does not take policy/v1 Eviction ({}); using policy/v1beta1",
                    crate::error::describe(&e)
                );
                let r = self.post(PolicyVersion::V1beta1, pod, uid, grace).await;
                if !matches!(&r, Err(e) if version_unsupported(e, &pod.name)) {
                    self.version.store(V1BETA1, Ordering::Relaxed);
                }
                r
            }
            other => {
                if first == PolicyVersion::V1 && other.is_ok() {
                    self.version.store(V1, Ordering::Relaxed);
                }
                other
            }
        }
    }

    async fn post(
        &self,
        v: PolicyVersion,
        pod: &PodRef,
        uid: &str,
        grace: Option<u64>,
    ) -> Result<(), kube::Error> {
        let url = format!(
            "/api/v1/namespaces/{}/pods/{}/eviction",
            pod.namespace, pod.name
        );
        let body = eviction_body(v, pod, uid, grace);
        let req = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).expect("a JSON value serializes"))
            .map_err(kube::Error::HttpError)?;
        self.client.request_text(req).await.map(|_| ())
    }
}

/// The Eviction body for `pod`.
pub(crate) fn eviction_body(
    v: PolicyVersion,
    pod: &PodRef,
    uid: &str,
    grace: Option<u64>,
) -> serde_json::Value {
    let mut delete_options = json!({ "preconditions": { "uid": uid } });
    if let Some(g) = grace {
        delete_options["gracePeriodSeconds"] = json!(g);
    }
    json!({
        "apiVersion": v.api_version(),
        "kind": "Eviction",
        "metadata": { "name": pod.name, "namespace": pod.namespace },
        "deleteOptions": delete_options,
    })
}

/// True when `err` says the server does not serve this Eviction version (rather than
/// anything about the pod).
fn version_unsupported(err: &kube::Error, pod_name: &str) -> bool {
    let kube::Error::Api(s) = err else {
        return false;
    };
    match s.code {
        404 => !names_pod(s, pod_name),
        400 => {
            let m = &s.message;
            m.contains("policy/v1")
                && (m.contains("no kind")
                    || m.contains("not registered")
                    || m.contains("not supported"))
        }
        _ => false,
    }
}

/// True when a 404 is about the pod (it is gone) rather than about the endpoint.
pub(crate) fn names_pod(s: &Status, pod_name: &str) -> bool {
    s.details.as_ref().is_some_and(|d| d.name == pod_name)
        || s.message.contains(&format!("\"{pod_name}\" not found"))
}

/// True when an eviction error means the pod is already gone.
pub(crate) fn pod_is_gone(err: &kube::Error, pod_name: &str) -> bool {
    match err {
        kube::Error::Api(s) if s.code == 404 => names_pod(s, pod_name),
        _ => false,
    }
}

/// The server's full explanation of a refused eviction: its message and the causes' messages.
pub(crate) fn refusal_text(err: &kube::Error) -> String {
    let kube::Error::Api(s) = err else {
        return err.to_string();
    };
    let mut parts = vec![s.message.trim().to_string()];
    if let Some(d) = &s.details {
        for c in &d.causes {
            if !c.message.is_empty() && !s.message.contains(&c.message) {
                parts.push(c.message.trim().to_string());
            }
        }
    }
    parts.retain(|p| !p.is_empty());
    if parts.is_empty() {
        format!("HTTP {}", status_code(err).unwrap_or_default())
    } else {
        parts.join(" ")
    }
}

/// The budget a refusal names in its text (`The disruption budget web needs 2 healthy pods`,
/// `pod disruption budget web is still being processed by the server`).
pub(crate) fn budget_named_in(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("disruption budget ")?;
    let name = rest
        .split_whitespace()
        .next()?
        .trim_matches(|c: char| c == '"' || c == '\'' || c == ',' || c == '.' || c == ':');
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    valid.then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::response::{StatusCause, StatusDetails};

    fn pod() -> PodRef {
        PodRef {
            namespace: "shop".into(),
            name: "web-1".into(),
        }
    }

    #[test]
    fn body_uses_camel_case_delete_options_with_grace_and_uid() {
        let b = eviction_body(PolicyVersion::V1, &pod(), "u-1", Some(7));
        assert_eq!(
            b,
            json!({
                "apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": "web-1", "namespace": "shop"},
                "deleteOptions": {"gracePeriodSeconds": 7, "preconditions": {"uid": "u-1"}}
            })
        );
        let b = eviction_body(PolicyVersion::V1beta1, &pod(), "u-1", None);
        assert_eq!(b["apiVersion"], "policy/v1beta1");
        assert!(b["deleteOptions"].get("gracePeriodSeconds").is_none());
    }

    fn details(name: &str, causes: Vec<StatusCause>) -> StatusDetails {
        serde_json::from_value(json!({ "name": name, "kind": "pods" }))
            .map(|mut d: StatusDetails| {
                d.causes = causes;
                d
            })
            .unwrap()
    }

    fn api(code: u16, message: &str, details: Option<StatusDetails>) -> kube::Error {
        let mut s = Status::failure(message, "").with_code(code);
        s.details = details;
        kube::Error::Api(Box::new(s))
    }

    #[test]
    fn tells_an_unknown_version_from_a_missing_pod() {
        let missing_pod = api(
            404,
            r#"pods "web-1" not found"#,
            Some(details("web-1", vec![])),
        );
        assert!(!version_unsupported(&missing_pod, "web-1"));
        assert!(pod_is_gone(&missing_pod, "web-1"));
        let no_endpoint = api(
            404,
            "the server could not find the requested resource",
            None,
        );
        assert!(version_unsupported(&no_endpoint, "web-1"));
        assert!(!pod_is_gone(&no_endpoint, "web-1"));
        let old = api(
            400,
            r#"no kind "Eviction" is registered for version "policy/v1" in scheme "pkg/api/legacyscheme/scheme.go:30""#,
            None,
        );
        assert!(version_unsupported(&old, "web-1"));
        let other = api(400, "metadata.name: Invalid value", None);
        assert!(!version_unsupported(&other, "web-1"));
    }

    #[test]
    fn refusals_name_their_budget() {
        let e = api(
            429,
            "Cannot evict pod as it would violate the pod's disruption budget.",
            Some(details(
                "web-1",
                vec![StatusCause {
                    reason: "DisruptionBudget".into(),
                    message:
                        "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"
                            .into(),
                    field: String::new(),
                }],
            )),
        );
        let text = refusal_text(&e);
        assert_eq!(
            text,
            "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget web-pdb needs 2 healthy pods and has 2 currently"
        );
        assert_eq!(budget_named_in(&text).as_deref(), Some("web-pdb"));
        assert_eq!(
            budget_named_in("pod disruption budget db is still being processed by the server")
                .as_deref(),
            Some("db")
        );
        assert_eq!(
            budget_named_in("Cannot evict pod as it would violate the pod's disruption budget."),
            None
        );
    }
}
