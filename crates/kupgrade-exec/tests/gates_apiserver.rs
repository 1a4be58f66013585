//! Gates read through the Kubernetes API ([`KubeGateProbe`]) against the real test API server
//! (`scripts/testenv.sh up`), while the driver carries an upgrade out on the simulated
//! cluster (sped up: the node steps take no real time, the gates' waits do). The harness
//! plays the controllers: it writes the Deployment's and the pods' status as they would.
//!
//! Without `KUPGRADE_TEST_KUBECONFIG` the tests print "skipped" and pass, unless
//! `KUPGRADE_REQUIRE_REAL_SERVERS=1`, when they fail.
#[path = "../../kupgrade-kube/tests/support/mod.rs"]
mod apiserver;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver::{Kind, NodeSpec, Scope, labels};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kupgrade_core::gate::{
    ConditionCheck, Gate, GateCheck, GateSet, RegressionCheck, Rollout, WorkloadKind,
};
use kupgrade_core::plan::UpgradePlan;
use kupgrade_core::run::{Event, Finished, StopReason};
use kupgrade_exec::driver::Driver;
use kupgrade_exec::sim::{OpPhase, SimCluster};
use kupgrade_kube::KubeGateProbe;
use serde_json::{Value, json};
use support::fixtures::{drive_to_end, fast_sim, ha_plan};

fn plan_with(gates: Vec<Gate>) -> Arc<UpgradePlan> {
    ha_plan(|plan| GateSet::new(gates).unwrap().insert(plan))
}

fn count(sim: &SimCluster, what: &str) -> usize {
    (sim.snapshot().history.iter())
        .filter(|e| e.what == what)
        .count()
}

fn gate(name: &str, check: GateCheck, timeout: u64) -> Gate {
    let mut g = Gate::new(name, check);
    g.timeout_seconds = timeout;
    g.interval_seconds = 1;
    g
}

async fn drive(sim: &SimCluster, scope: &Scope, plan: &Arc<UpgradePlan>) -> (Finished, Vec<Event>) {
    let s = Arc::new(sim.clone());
    let probe = Arc::new(KubeGateProbe::new(scope.client.clone()));
    let driver = Driver::new(s.clone(), s.clone()).provider(s).gates(probe);
    let out = drive_to_end(driver, plan, &mut Vec::new()).await;
    (out.finished, out.events)
}

/// Creates Deployment `web` (3 replicas) in the scope's namespace with this status.
async fn deployment(scope: &Scope, status: Value) -> Api<Deployment> {
    let api: Api<Deployment> = Api::namespaced(scope.client.clone(), &scope.ns);
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "registry.example/web:v1"}]}}
        }
    }))
    .unwrap();
    api.create(&PostParams::default(), &d).await.unwrap();
    set_status(&api, status).await;
    api
}

async fn set_status(api: &Api<Deployment>, status: Value) {
    api.patch_status(
        "web",
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await
    .unwrap();
}

fn available(n: i64) -> Value {
    json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": n,
           "readyReplicas": n,
           "conditions": [{"type": "Available", "status": if n == 3 { "True" } else { "False" },
                           "reason": "MinimumReplicasUnavailable",
                           "lastUpdateTime": "2026-01-01T00:00:00Z",
                           "lastTransitionTime": "2026-01-01T00:00:00Z"}]})
}

fn web(scope: &Scope) -> Rollout {
    Rollout {
        kind: WorkloadKind::Deployment,
        namespace: Some(scope.ns.clone()),
        name: "web".into(),
    }
}

/// The harness keeps the Deployment unavailable for 4 s after the first batch: the run waits
/// at the gate (no other node is drained meanwhile) and goes on once it is available.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_kept_unavailable_holds_the_run_at_the_gate() {
    let Some(env) = apiserver::env().await else {
        return;
    };
    let scope = Scope::new(&env, "gate-hold").await;
    let api = deployment(&scope, available(1)).await;
    let plan = plan_with(vec![gate("web", GateCheck::Rollout(web(&scope)), 120)]);
    let sim = fast_sim();
    let watcher = sim.clone();
    let harness = tokio::spawn(async move {
        while count(&watcher, "uncordon") == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let held = Instant::now();
        tokio::time::sleep(Duration::from_secs(4)).await;
        let drains = count(&watcher, "drain");
        set_status(&api, available(3)).await;
        (held, drains)
    });
    let (finished, events) = drive(&sim, &scope, &plan).await;
    let (held, drains_while_held) = harness.await.unwrap();
    assert!(finished.is_completed(), "{:?}", finished.report());
    assert!(held.elapsed() >= Duration::from_secs(4));
    assert_eq!(
        drains_while_held, 1,
        "only the first batch moved while the gate held"
    );
    let lines: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::CommandOutput { line, .. } => Some(line.clone()),
            _ => None,
        })
        .collect();
    let want = format!(
        "gate web: waiting: Deployment {}/web: 1 of 3 replicas available",
        scope.ns
    );
    assert!(lines.contains(&want), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.starts_with("gate web passed")),
        "{lines:#?}"
    );
    scope.cleanup().await;
}

/// A gate that times out halts the run naming the object, and a condition gate (through the
/// dynamic API) names the condition and its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_that_times_out_halts_naming_the_object_or_condition() {
    let Some(env) = apiserver::env().await else {
        return;
    };
    let scope = Scope::new(&env, "gate-timeout").await;
    deployment(&scope, available(2)).await;
    let plan = plan_with(vec![gate("web", GateCheck::Rollout(web(&scope)), 2)]);
    let (finished, _) = drive(&fast_sim(), &scope, &plan).await;
    let report = finished.report().expect("halted");
    assert_eq!(report.reason, StopReason::StepFailed, "{report}");
    let want = format!(
        "gate web did not pass within 2s: Deployment {}/web: 2 of 3 replicas available",
        scope.ns
    );
    assert!(report.summary.contains(&want), "{report}");
    assert!(report.advice.contains("--mark-done"), "{report}");

    let available = ConditionCheck {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: Some(scope.ns.clone()),
        name: "web".into(),
        condition_type: "Available".into(),
        status: "True".into(),
    };
    let plan = plan_with(vec![gate("avail", GateCheck::Condition(available), 2)]);
    let (finished, _) = drive(&fast_sim(), &scope, &plan).await;
    let report = finished.report().expect("halted");
    let want = format!(
        "Deployment {}/web: condition Available is \"False\", expected \"True\" (reason: MinimumReplicasUnavailable)",
        scope.ns
    );
    assert!(report.summary.contains(&want), "{report}");
    // A missing object is named too.
    let gone = Rollout {
        name: "nope".into(),
        ..web(&scope)
    };
    let plan = plan_with(vec![gate("gone", GateCheck::Rollout(gone), 1)]);
    let (finished, _) = drive(&fast_sim(), &scope, &plan).await;
    let report = finished.report().expect("halted");
    let want = format!("Deployment {}/nope was not found", scope.ns);
    assert!(report.summary.contains(&want), "{report}");
    scope.cleanup().await;
}

/// A pod the harness turns crash-looping right after the first batch is caught by the
/// regression gate, which names it; its healthy neighbours are not named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_turned_crash_looping_after_a_batch_is_caught_by_the_regression_gate() {
    let Some(env) = apiserver::env().await else {
        return;
    };
    let scope = Scope::new(&env, "gate-crash").await;
    let node = scope.node("w", NodeSpec::worker("v1.28.15")).await;
    let l = labels(&[("app", "web")]);
    let mut pods = Vec::new();
    for _ in 0..3 {
        pods.push(scope.pod(&node, Kind::Replicated, &l).await.unwrap());
    }
    let victim = pods[1].clone();
    let check = GateCheck::Regression(RegressionCheck {
        namespace: Some(scope.ns.clone()),
        selector: Some("app=web".into()),
    });
    let plan = plan_with(vec![gate("pods", check, 3)]);
    let client = scope.client.clone();
    let ns = scope.ns.clone();
    let name = victim.name.clone();
    // Right when the first batch's node is uncordoned, before its gate runs.
    let sim = fast_sim().on_op(move |p| {
        if p.phase == OpPhase::After && p.what == "uncordon" {
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let status = json!({"status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{"name": "app", "ready": false, "restartCount": 3,
                    "image": "registry.example/app:v1", "imageID": "",
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]
            }});
            let name = name.clone();
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                        .await
                        .unwrap();
                })
            });
        }
    });
    let (finished, _) = drive(&sim, &scope, &plan).await;
    let report = finished.report().expect("halted");
    assert_eq!(report.reason, StopReason::StepFailed, "{report}");
    let who = format!("pod {}/{} on {node}", scope.ns, victim.name);
    assert!(
        report.summary.contains(&format!("{who} is crash-looping")),
        "{report}"
    );
    assert!(
        report.summary.contains(&format!(
            "{who} restarted 3 time(s) since (restarts 0 -> 3)"
        )),
        "{report}"
    );
    for other in [&pods[0], &pods[2]] {
        assert!(!report.summary.contains(&other.name), "{report}");
    }
    assert_eq!(count(&sim, "uncordon"), 1, "nothing after the first batch");
    scope.cleanup().await;
}
