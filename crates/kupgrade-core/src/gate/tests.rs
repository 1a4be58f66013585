use serde_json::json;

use super::*;
use crate::plan::{Action, PlanRequest, UpgradePlan};

fn plan_of(cluster: &str, batch: &str) -> UpgradePlan {
    let cluster = crate::inventory::parse(cluster, "cluster.yaml").unwrap();
    let options = crate::plan::PlanOptions {
        batch: batch.parse().unwrap(),
        ..Default::default()
    };
    PlanRequest::new("1.30".parse().unwrap(), jiff::civil::date(2025, 3, 1))
        .options(options)
        .plan(&cluster)
        .unwrap()
}

/// One control-plane node and two workers at v1.29.10 (the hook tests use it too).
pub(crate) const CLUSTER: &str = r#"
addons: { kube-proxy: v1.29.10, coredns: v1.11.1 }
nodes:
  - name: cp-1
    roles: [control-plane]
    versions: { kubelet: v1.29.10, kubeadm: v1.29.10, kubectl: v1.29.10, kube-apiserver: v1.29.10,
                kube-controller-manager: v1.29.10, kube-scheduler: v1.29.10, etcd: 3.5.10-0 }
  - name: w-1
    versions: { kubelet: v1.29.10, kubeadm: v1.29.10, kubectl: v1.29.10 }
  - name: w-2
    versions: { kubelet: v1.29.10, kubeadm: v1.29.10, kubectl: v1.29.10 }
"#;

const GATES: &str = r#"apiVersion: kupgrade.dev/v1alpha1
kind: Gates
gates:
  - name: web
    rollout: { kind: Deployment, namespace: shop, name: web }
  - name: shop
    after: [batch, hop]
    timeoutSeconds: 30
    regression: { namespace: shop, selector: "app=web" }
"#;

#[test]
fn a_gates_file_reads_with_its_defaults() {
    let set = GateSet::parse(GATES, "gates.yaml").unwrap();
    let web = &set.gates()[0];
    assert_eq!(web.after, vec![GatePoint::Batch]);
    assert_eq!((web.interval_seconds, web.timeout_seconds), (10, 600));
    assert_eq!(web.on_timeout, OnTimeout::Halt);
    assert_eq!(
        web.describe(),
        "deployment shop/web rolled out and available"
    );
    assert_eq!(
        set.gates()[1].describe(),
        "no pod or budget worse off than before in shop (app=web)"
    );
}

/// Every problem is reported, each at its line and column, naming the gate and the field.
#[test]
fn gates_file_errors_name_file_line_gate_and_field() {
    let text = r#"kind: Gates
gates:
  - name: web
    rollout: { kind: Deployment, name: web }
  - name: Bad_Name
    command: { argv: [] }
  - name: two
    rollout: { kind: DaemonSet, name: agent }
    command: { argv: [ok] }
  - name: web
    intervalSeconds: 0
    condition: { apiVersion: ceph.rook.io/v1, kind: CephCluster, name: rook, type: Ready }
  - name: typo
    timeoutSecond: 5
    command: { argv: [ok] }
"#;
    let err = GateSet::parse(text, "gates.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "gates.yaml:5:11: gate 2 (\"Bad_Name\"): name: 'B' is not allowed (lower-case letters, digits and '-')\n\
         gates.yaml:6:22: gate 2 (\"Bad_Name\"): command.argv: name the program to run\n\
         gates.yaml:9:14: gate 3 (\"two\"): command: a gate checks one thing; this one also has `rollout`\n\
         gates.yaml:10:11: gate 4 (\"web\"): name: used twice (gates 1 and 4)\n\
         gates.yaml:11:22: gate 4 (\"web\"): intervalSeconds: must be at least 1\n\
         gates.yaml:14:20: gate 5 (\"typo\"): timeoutSecond: unknown field `timeoutSecond`, expected one of `name`, `after`, `intervalSeconds`, `timeoutSeconds`, `onTimeout`, `rollout`, `condition`, `regression`, `command`"
    );
}

#[test]
fn a_gates_file_that_is_not_one_says_so() {
    let e = |t: &str| GateSet::parse(t, "g.yaml").unwrap_err().to_string();
    assert_eq!(e(""), "g.yaml: the file is empty");
    assert_eq!(
        e("[1]"),
        "g.yaml: expected a mapping with a `gates` list, found a list"
    );
    assert_eq!(
        e("kind: Inventory\ngates: []\n"),
        "g.yaml:1:7: kind: expected \"Gates\", found \"Inventory\""
    );
    assert_eq!(
        e("gates: 3\n"),
        "g.yaml:1:8: gates: expected a list of gates, found a number"
    );
}

/// A gate after each batch follows its uncordon, a regression gate's snapshot precedes the
/// batch's first step, hop gates follow the hop's last step; each step waits for the one
/// before, ids are stable.
#[test]
fn gates_go_after_each_batch_and_hop_with_snapshots_before() {
    let mut plan = plan_of(CLUSTER, "1");
    let before = plan.steps.len();
    let set = GateSet::parse(GATES, "gates.yaml").unwrap();
    set.insert(&mut plan);
    let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
    // Each step put in waits for the step it follows (or takes over what the step it
    // precedes waited for), and that step waits for it; nothing waits for a later step.
    crate::plan::splice::assert_spliced(&plan);
    let uncordons: Vec<usize> = (plan.steps.iter().enumerate())
        .filter(|(_, s)| matches!(s.action, Action::Uncordon))
        .map(|(i, _)| i)
        .collect();
    assert!(uncordons.len() >= 3, "cp-1, w-1, w-2: {ids:?}");
    for &u in &uncordons {
        let prefix = plan.steps[u].id.as_str().rsplit_once('/').unwrap().0;
        // Both batch gates follow, in file order.
        assert_eq!(ids[u + 1], format!("{prefix}/gate-web"));
        assert_eq!(ids[u + 2], format!("{prefix}/gate-shop"));
        // The snapshot stands before the batch's first step.
        let base = format!("{prefix}/baseline-shop");
        let at = ids.iter().position(|i| *i == base).unwrap();
        assert!(at < u);
        let first = (at + 1..u)
            .find(|&i| plan.steps[i].action.executor() != crate::plan::Executor::Gate)
            .unwrap();
        assert_eq!(plan.steps[first].nodes, plan.steps[u].nodes);
        let before = (0..at)
            .rev()
            .find(|&i| plan.steps[i].action.executor() != crate::plan::Executor::Gate)
            .unwrap();
        // Only the batch's pre-stage steps, which run ahead of it, may be on its nodes.
        assert!(
            plan.steps[before].nodes != plan.steps[u].nodes
                || plan.steps[before].hop != plan.steps[u].hop
                || plan.steps[before].action.is_prestage()
        );
        let Action::Gate { baseline, .. } = &plan.steps[u + 2].action else {
            panic!()
        };
        assert_eq!(baseline.as_ref().unwrap().as_str(), base);
    }
    // The hop's gate ends the hop, before the final check.
    let hop = ids
        .iter()
        .position(|i| i.ends_with("/hop/gate-shop"))
        .unwrap();
    assert!(
        matches!(plan.steps[hop + 1].action, Action::Verify { .. }),
        "{ids:?}"
    );
    assert!(ids.iter().any(|i| i.ends_with("/hop/baseline-shop")));
    let added = plan.steps.len() - before;
    assert_eq!(added, uncordons.len() * 3 + 2);
    // Stable: the same input gives the same ids.
    let mut again = plan_of(CLUSTER, "1");
    set.insert(&mut again);
    assert_eq!(again.steps, plan.steps);
    // Gates are plan steps of their own: they show in JSON and round-trip.
    let text = serde_json::to_string(&plan).unwrap();
    let back: UpgradePlan = serde_json::from_str(&text).unwrap();
    assert_eq!(back, plan);
}

#[test]
fn gates_show_in_every_render_format() {
    let mut plan = plan_of(CLUSTER, "2");
    GateSet::parse(GATES, "gates.yaml")
        .unwrap()
        .insert(&mut plan);
    for format in crate::plan::render::Format::ALL {
        let out = format.render(&plan);
        assert!(out.contains("gate web"), "{format:?}:\n{out}");
        assert!(
            out.contains("gate-shop") || out.contains("gate shop"),
            "{format:?}"
        );
    }
    let text = crate::plan::render::Format::Text.render(&plan);
    assert!(
        text.contains("kubectl -n shop rollout status deployment/web --timeout=600s"),
        "{text}"
    );
}

fn deployment(replicas: i64, status: serde_json::Value) -> serde_json::Value {
    json!({
        "metadata": { "name": "web", "namespace": "shop", "generation": 2 },
        "spec": { "replicas": replicas },
        "status": status,
    })
}

#[test]
fn a_deployment_passes_once_rolled_out_and_available() {
    let r = Rollout {
        kind: WorkloadKind::Deployment,
        namespace: Some("shop".into()),
        name: "web".into(),
    };
    let o = r.object();
    let judge = |v: serde_json::Value| rollout_problems(r.kind, &o, Some(&v));
    assert_eq!(
        judge(deployment(
            3,
            json!({ "observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3 })
        )),
        Vec::<String>::new()
    );
    assert_eq!(
        judge(deployment(
            3,
            json!({ "observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 1 })
        )),
        vec!["Deployment shop/web: 1 of 3 replicas available"]
    );
    assert_eq!(
        judge(deployment(
            3,
            json!({ "observedGeneration": 1, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3 })
        )),
        vec![
            "Deployment shop/web: its controller has not yet seen generation 2 (it saw 1)",
            "Deployment shop/web: 1 old replica(s) still running"
        ]
    );
    assert_eq!(
        rollout_problems(r.kind, &o, None),
        vec!["Deployment shop/web was not found"]
    );
}

#[test]
fn statefulsets_and_daemonsets_are_judged_by_their_own_fields() {
    let sts = ObjectRef {
        api_version: "apps/v1".into(),
        kind: "StatefulSet".into(),
        namespace: Some("db".into()),
        name: "pg".into(),
    };
    let v = json!({ "metadata": {"generation": 1}, "spec": {"replicas": 3},
        "status": {"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 3,
                   "currentRevision": "pg-1", "updateRevision": "pg-2"}});
    assert_eq!(
        rollout_problems(WorkloadKind::StatefulSet, &sts, Some(&v)),
        vec!["StatefulSet db/pg: revision pg-2 is not yet current (pg-1 is)"]
    );
    let ds = ObjectRef {
        kind: "DaemonSet".into(),
        name: "agent".into(),
        ..sts
    };
    let v = json!({ "status": {"desiredNumberScheduled": 4, "updatedNumberScheduled": 4, "numberAvailable": 3}});
    assert_eq!(
        rollout_problems(WorkloadKind::DaemonSet, &ds, Some(&v)),
        vec!["DaemonSet db/agent: 3 of 4 pods available"]
    );
}

#[test]
fn a_condition_gate_names_the_condition_and_its_reason() {
    let c = ConditionCheck {
        api_version: "ceph.rook.io/v1".into(),
        kind: "CephCluster".into(),
        namespace: Some("rook".into()),
        name: "rook".into(),
        condition_type: "Ready".into(),
        status: "True".into(),
    };
    let with = |status: &str| {
        json!({"status": {"conditions": [
            {"type": "Progressing", "status": "True"},
            {"type": "Ready", "status": status, "reason": "Rebuilding", "message": "3 PGs degraded"}
        ]}})
    };
    assert!(condition_problems(&c, Some(&with("True"))).is_empty());
    assert_eq!(
        condition_problems(&c, Some(&with("False"))),
        vec![
            "CephCluster rook/rook: condition Ready is \"False\", expected \"True\" (reason: Rebuilding) (message: 3 PGs degraded)"
        ]
    );
    assert_eq!(
        condition_problems(&c, Some(&json!({"status": {}}))),
        vec!["CephCluster rook/rook has no condition \"Ready\" yet"]
    );
}

fn pod(name: &str, ready: bool, crash: bool, restarts: i64) -> serde_json::Value {
    let waiting = if crash {
        json!({"waiting": {"reason": "CrashLoopBackOff"}})
    } else {
        json!({"running": {}})
    };
    json!({
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"nodeName": "w-1"},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "containerStatuses": [{"restartCount": restarts, "state": waiting}]
        }
    })
}

#[test]
fn regressions_are_what_got_worse_since_the_snapshot() {
    let snap = |pods: Vec<serde_json::Value>, healthy: i64| WorkloadSnapshot {
        pods: pods.iter().filter_map(PodHealth::from_json).collect(),
        budgets: vec![
            BudgetHealth::from_json(&json!({
                "metadata": {"name": "web", "namespace": "shop"},
                "status": {"currentHealthy": healthy, "desiredHealthy": 2}
            }))
            .unwrap(),
        ],
    };
    let before = snap(
        vec![
            pod("web-a", true, false, 0),
            pod("web-b", true, false, 1),
            pod("old-bad", false, false, 0),
        ],
        3,
    );
    // Unchanged: nothing. A pod not Ready before and now is not a regression.
    assert!(before.regressions(Some(&before)).is_empty());
    let after = snap(
        vec![
            pod("web-a", false, true, 4),
            pod("web-b", true, false, 2),
            pod("old-bad", false, false, 0),
            pod("web-c", false, false, 0),
        ],
        1,
    );
    assert_eq!(
        after.regressions(Some(&before)),
        vec![
            "pod shop/web-a on w-1 is crash-looping",
            "pod shop/web-a on w-1 restarted 4 time(s) since (restarts 0 -> 4)",
            "pod shop/web-b on w-1 restarted 1 time(s) since (restarts 1 -> 2)",
            "pod shop/web-c on w-1 is not Ready (new since), phase Running",
            "disruption budget shop/web: 1 healthy, 2 desired",
        ]
    );
    // Without a snapshot: everything unhealthy counts, restarts do not.
    assert_eq!(
        before.regressions(None),
        vec!["pod shop/old-bad on w-1 is not Ready (new since), phase Running"]
    );
}

#[test]
fn a_gate_is_a_step_that_changes_nothing_and_is_safe_to_repeat() {
    let mut plan = plan_of(CLUSTER, "1");
    GateSet::parse(GATES, "gates.yaml")
        .unwrap()
        .insert(&mut plan);
    let gate = plan
        .steps
        .iter()
        .find(|s| matches!(s.action, Action::Gate { .. }))
        .unwrap();
    assert!(gate.idempotent);
    assert!(!gate.changes_state());
    assert_eq!(gate.action.executor(), crate::plan::Executor::Gate);
    // Its deadline covers its timeout, one more interval, and the slack.
    assert_eq!(
        gate.action.deadline(&[]),
        std::time::Duration::from_secs(600 + 10 + 60)
    );
}
