//! Behaviour of API servers newer than the 1.20 test server (policy/v1 only, v1 budgets), and
//! failures that a real server cannot be made to produce on demand, as request/response
//! scenarios against a mock API (tower-test) handed to `kube::Client::new`.
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use kupgrade_core::ports::{ClusterOperations, DrainOptions, OpsError, PodRef};
use kupgrade_kube::KubeClusterOps;
use serde_json::{Value, json};
use support::{blocked, within};

/// One request the mock received.
#[derive(Clone, Debug)]
struct Call {
    method: String,
    path: String,
    query: String,
    body: Value,
}

impl Call {
    fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }
    fn watching(&self) -> bool {
        self.query.split('&').any(|p| p == "watch=true")
    }
}

enum Answer {
    Json(u16, Value),
    /// Raw body bytes with status 200 (watch streams).
    Stream(Vec<u8>),
    /// Never answer (an open watch).
    Hang,
    /// The connection fails.
    Fail,
}

struct Mock {
    client: Client,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Mock {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    fn evictions(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.path.ends_with("/eviction"))
            .collect()
    }
    fn ops(&self) -> KubeClusterOps {
        KubeClusterOps::new(self.client.clone())
            .eviction_backoff(Duration::from_millis(10), Duration::from_millis(50))
    }
}

fn mock(mut route: impl FnMut(&Call) -> Answer + Send + 'static) -> Mock {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let log = calls.clone();
    tokio::spawn(async move {
        let mut handle = Box::pin(handle);
        let mut open = Vec::new();
        while let Some((req, send)) = handle.next_request().await {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await.unwrap();
            let call = Call {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or("").to_string(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let answer = route(&call);
            log.lock().unwrap().push(call);
            match answer {
                Answer::Json(code, v) => send.send_response(
                    Response::builder()
                        .status(code)
                        .header("content-type", "application/json")
                        .body(Body::from(serde_json::to_vec(&v).unwrap()))
                        .unwrap(),
                ),
                Answer::Stream(bytes) => send.send_response(Response::new(Body::from(bytes))),
                Answer::Hang => open.push(send),
                Answer::Fail => send.send_error("connection refused (mock)"),
            }
        }
    });
    Mock {
        client: Client::new(svc, "default"),
        calls,
    }
}

fn status(code: u16, reason: &str, message: &str, details: Value) -> Answer {
    Answer::Json(
        code,
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "details": details, "code": code }),
    )
}

/// The generic 404 of a path the server does not serve.
fn not_found() -> Answer {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource",
        json!({}),
    )
}

/// The answer to the cordon's PATCH of node w-1.
fn cordoned() -> Answer {
    Answer::Json(
        200,
        json!({ "apiVersion": "v1", "kind": "Node", "metadata": { "name": "w-1" } }),
    )
}

fn accepted() -> Answer {
    Answer::Json(
        201,
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201 }),
    )
}

fn budget_refusal() -> Answer {
    status(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
        json!({ "causes": [{ "reason": "DisruptionBudget",
                "message": "The disruption budget web-budget needs 2 healthy pods and has 2 currently" }] }),
    )
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "shop", "uid": format!("uid-{name}"),
            "labels": { "app": "web", "tier": "front" },
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-6d4b", "uid": "rs", "controller": true }]
        },
        "spec": { "nodeName": "w-1", "containers": [{ "name": "web", "image": "web:1" }] },
        "status": { "phase": "Running" }
    })
}

fn pod_list(items: Vec<Value>) -> Answer {
    Answer::Json(
        200,
        json!({ "apiVersion": "v1", "kind": "PodList", "metadata": { "resourceVersion": "7" }, "items": items }),
    )
}

/// A node with one or more replicated pods. `evict` answers each eviction; evicted pods are
/// gone from later listings.
fn node_with_pods(names: &[&str], mut evict: impl FnMut(&Call) -> Answer + Send + 'static) -> Mock {
    let remaining = Arc::new(Mutex::new(
        names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    ));
    mock(move |c| {
        if c.is("PATCH", "/api/v1/nodes/w-1") {
            return cordoned();
        }
        if c.is("GET", "/api/v1/pods") {
            if c.watching() {
                return Answer::Hang;
            }
            let items = remaining.lock().unwrap().iter().map(|n| pod(n)).collect();
            return pod_list(items);
        }
        if c.method == "POST" && c.path.ends_with("/eviction") {
            let answer = evict(c);
            if let Answer::Json(code, _) = &answer
                && *code < 300
            {
                let name = c.body["metadata"]["name"].as_str().unwrap().to_string();
                remaining.lock().unwrap().retain(|n| *n != name);
            }
            return answer;
        }
        not_found()
    })
}

fn w1() -> kupgrade_core::NodeName {
    "w-1".parse().unwrap()
}

fn web(name: &str) -> PodRef {
    PodRef {
        namespace: "shop".into(),
        name: name.into(),
    }
}

#[tokio::test]
async fn a_drain_cordons_lists_by_field_selector_and_evicts_with_policy_v1_delete_options() {
    let m = node_with_pods(&["web-1"], |_| accepted());
    let options = DrainOptions {
        grace_period_seconds: Some(17),
        ..within(10)
    };
    let report = m.ops().drain(&w1(), &options).await.unwrap();
    assert_eq!(report.evicted, [web("web-1")]);

    let calls = m.calls();
    assert!(calls[0].is("PATCH", "/api/v1/nodes/w-1"), "{calls:?}");
    assert_eq!(calls[0].body, json!({ "spec": { "unschedulable": true } }));
    assert!(calls[1].is("GET", "/api/v1/pods"), "{calls:?}");
    assert!(
        calls[1].query.contains("fieldSelector=spec.nodeName%3Dw-1"),
        "{}",
        calls[1].query
    );
    assert!(
        calls[2].is("POST", "/api/v1/namespaces/shop/pods/web-1/eviction"),
        "{calls:?}"
    );
    assert_eq!(
        calls[2].body,
        json!({
            "apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": { "name": "web-1", "namespace": "shop" },
            "deleteOptions": { "gracePeriodSeconds": 17, "preconditions": { "uid": "uid-web-1" } }
        })
    );
    // Then the node's pods are listed (and watched) until the evicted UID is gone.
    assert!(
        calls[3].is("GET", "/api/v1/pods") && !calls[3].watching(),
        "{calls:?}"
    );
    assert!(calls[3].query.contains("fieldSelector=spec.nodeName%3Dw-1"));
}

#[tokio::test]
async fn budget_refusals_are_retried_until_the_eviction_is_accepted() {
    let tries = Arc::new(AtomicUsize::new(0));
    let t = tries.clone();
    let m = node_with_pods(&["web-1"], move |_| {
        if t.fetch_add(1, Ordering::Relaxed) < 2 {
            budget_refusal()
        } else {
            accepted()
        }
    });
    let report = m.ops().drain(&w1(), &within(10)).await.unwrap();
    assert_eq!(report.evicted, [web("web-1")]);
    assert!(report.blocked.is_empty());
    assert_eq!(m.evictions().len(), 3);
    assert_eq!(tries.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn a_404_for_policy_v1_falls_back_to_v1beta1_and_is_remembered() {
    let m = node_with_pods(&["web-1", "web-2"], |c| {
        if c.body["apiVersion"] == "policy/v1" {
            not_found()
        } else {
            accepted()
        }
    });
    let report = m
        .ops()
        .eviction_concurrency(1)
        .drain(&w1(), &within(10))
        .await
        .unwrap();
    assert_eq!(report.evicted, [web("web-1"), web("web-2")]);
    let versions: Vec<Value> = m
        .evictions()
        .iter()
        .map(|c| c.body["apiVersion"].clone())
        .collect();
    assert_eq!(versions, ["policy/v1", "policy/v1beta1", "policy/v1beta1"]);
}

#[tokio::test]
async fn a_pod_already_gone_counts_as_evicted_without_fallback() {
    let m = node_with_pods(&["web-1"], |_| {
        status(
            404,
            "NotFound",
            r#"pods "web-1" not found"#,
            json!({ "name": "web-1", "kind": "pods" }),
        )
    });
    let report = m.ops().drain(&w1(), &within(10)).await.unwrap();
    assert_eq!(report.evicted, [web("web-1")]);
    assert_eq!(m.evictions().len(), 1);
}

#[tokio::test]
async fn a_budget_blocking_until_the_deadline_is_named_from_policy_v1_budgets() {
    let m = mock_with_budgets(Some(pdb_list_for_test()));
    let err = m.ops().drain(&w1(), &within(1)).await.unwrap_err();
    let report = blocked(&err);
    assert!(report.evicted.is_empty());
    assert_eq!(report.blocked.len(), 1);
    // policy/v1 semantics: the empty selector selects every pod, the missing one none.
    assert_eq!(
        report.blocked[0].budget.as_deref(),
        Some("everything, web-budget")
    );
    assert_eq!(
        report.blocked[0].reason,
        "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget web-budget needs 2 healthy pods and has 2 currently"
    );
    assert!(
        m.evictions().len() >= 2,
        "refusals are retried until the deadline"
    );
    assert!(
        !m.calls().iter().any(|c| c.path.contains("v1beta1")),
        "no fallback on a v1 server"
    );
}

fn pdb_list_for_test() -> Value {
    let pdb = |name: &str, selector: Value| json!({ "metadata": { "name": name, "namespace": "shop" }, "spec": { "selector": selector } });
    json!({ "apiVersion": "policy/v1", "kind": "PodDisruptionBudgetList", "metadata": {}, "items": [
        pdb("db-budget", json!({ "matchLabels": { "app": "db" } })),
        pdb("web-budget", json!({ "matchExpressions": [{ "key": "app", "operator": "In", "values": ["web", "api"] }] })),
        pdb("everything", json!({})),
        pdb("nothing", Value::Null),
    ]})
}

fn mock_with_budgets(pdbs: Option<Value>) -> Mock {
    mock(move |c| {
        if c.is("PATCH", "/api/v1/nodes/w-1") {
            return cordoned();
        }
        if c.is("GET", "/api/v1/pods") {
            return if c.watching() {
                Answer::Hang
            } else {
                pod_list(vec![pod("web-1")])
            };
        }
        if c.is(
            "GET",
            "/apis/policy/v1/namespaces/shop/poddisruptionbudgets",
        ) {
            return match &pdbs {
                Some(list) => Answer::Json(200, list.clone()),
                None => status(
                    403,
                    "Forbidden",
                    r#"poddisruptionbudgets.policy is forbidden: User "ci" cannot list resource "poddisruptionbudgets""#,
                    json!({}),
                ),
            };
        }
        if c.path.ends_with("/eviction") {
            return budget_refusal();
        }
        not_found()
    })
}

#[tokio::test]
async fn without_permission_to_list_budgets_the_refusal_names_the_budget() {
    let m = mock_with_budgets(None);
    let err = m.ops().drain(&w1(), &within(1)).await.unwrap_err();
    let report = blocked(&err);
    assert_eq!(report.blocked[0].budget.as_deref(), Some("web-budget"));
    assert!(
        m.calls()
            .iter()
            .any(|c| c.path == "/apis/policy/v1/namespaces/shop/poddisruptionbudgets")
    );
}

#[tokio::test]
async fn a_forbidden_eviction_names_the_verb_and_resource() {
    let m = node_with_pods(&["web-1"], |_| {
        status(
            403,
            "Forbidden",
            r#"pods "web-1" is forbidden: User "ci" cannot create resource "pods/eviction" in API group "" in the namespace "shop""#,
            json!({ "name": "web-1", "kind": "pods" }),
        )
    });
    let err = m.ops().drain(&w1(), &within(10)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"forbidden: evict pod shop/web-1 (create pods/eviction): pods "web-1" is forbidden: User "ci" cannot create resource "pods/eviction" in API group "" in the namespace "shop""#
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_connect_error() {
    let m = mock(|_| Answer::Fail);
    let err = m.ops().cordon(&w1()).await.unwrap_err();
    assert!(matches!(err, OpsError::Connect { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("cannot reach the cluster: cordon node w-1 (patch nodes): "),
        "{err}"
    );
}

fn node(ready: &str, kubelet: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": { "name": "w-1", "resourceVersion": "8" },
        "status": {
            "conditions": [{ "type": "Ready", "status": ready }],
            "nodeInfo": { "kubeletVersion": kubelet, "osImage": "Ubuntu", "architecture": "amd64", "bootID": "",
                "containerRuntimeVersion": "", "kernelVersion": "", "kubeProxyVersion": "", "machineID": "",
                "operatingSystem": "linux", "systemUUID": "" }
        }
    })
}

#[tokio::test]
async fn wait_ready_follows_a_watch_and_ignores_vendor_suffixes() {
    let m = mock(|c| {
        if c.is("GET", "/api/v1/nodes") && !c.watching() {
            return Answer::Json(
                200,
                json!({ "apiVersion": "v1", "kind": "NodeList", "metadata": { "resourceVersion": "8" },
                "items": [node("False", "v1.29.6")] }),
            );
        }
        if c.is("GET", "/api/v1/nodes") {
            let mut events = Vec::new();
            for (ready, version) in [("False", "v1.30.2"), ("True", "v1.30.2-eks-1a2b3c")] {
                events.extend(
                    serde_json::to_vec(
                        &json!({ "type": "MODIFIED", "object": node(ready, version) }),
                    )
                    .unwrap(),
                );
                events.push(b'\n');
            }
            return Answer::Stream(events);
        }
        status(404, "NotFound", "not found", json!({}))
    });
    m.ops()
        .wait_ready(&w1(), &"v1.30.2".parse().unwrap(), Duration::from_secs(10))
        .await
        .unwrap();
    let calls = m.calls();
    assert_eq!(calls.len(), 2, "one list, one watch, no polling: {calls:?}");
    assert!(
        calls[0].query.contains("fieldSelector=metadata.name%3Dw-1"),
        "{}",
        calls[0].query
    );
    assert!(calls[1].watching());
}

#[tokio::test]
async fn wait_ready_times_out_with_what_it_last_saw() {
    let m = mock(|c| {
        if c.watching() {
            return Answer::Hang;
        }
        Answer::Json(
            200,
            json!({ "apiVersion": "v1", "kind": "NodeList", "metadata": { "resourceVersion": "8" },
            "items": [node("True", "v1.29.6")] }),
        )
    });
    let err = m
        .ops()
        .wait_ready(
            &w1(),
            &"v1.30.2".parse().unwrap(),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "timed out after 300ms waiting for node w-1 to be Ready with kubelet v1.30.2 (last seen: Ready=True, kubelet v1.29.6)"
    );
}
