//! Tests of the catalogue: coverage on empty evidence, hop attribution from the tables, each
//! check's findings, drains, rendering.
use jiff::civil::{Date, date};
use jiff::{Timestamp, ToSpan};

use super::*;
use crate::plan::{Action, BatchSize, PlanOptions, PlanRequest, Target, UpgradePlan};
use crate::ports::DrainOptions;
use crate::{ClusterState, Minor, NodeName};

/// A kubeadm cluster at `version` (stacked etcd at `etcd`): `cps` control-plane nodes and
/// `workers` workers.
fn cluster(version: &str, etcd: &str, cps: usize, workers: usize) -> ClusterState {
    let mut text =
        format!("name: demo\naddons: {{ kube-proxy: {version}, coredns: v1.11.1 }}\nnodes:\n");
    for i in 1..=cps {
        text.push_str(&format!(
            "  - name: cp-{i}\n    roles: [control-plane]\n    versions: {{ kubelet: {version}, kubeadm: {version}, kubectl: {version}, kube-apiserver: {version}, kube-controller-manager: {version}, kube-scheduler: {version}, etcd: {etcd} }}\n"
        ));
    }
    for i in 1..=workers {
        text.push_str(&format!(
            "  - name: w-{i}\n    versions: {{ kubelet: {version}, kubeadm: {version}, kubectl: {version} }}\n"
        ));
    }
    crate::inventory::parse(&text, "cluster.yaml").expect("a valid inventory")
}

fn plan_to(state: &ClusterState, target: &str, on: Date) -> UpgradePlan {
    PlanRequest::new(Target::Minor(target.parse().unwrap()), on)
        .options(PlanOptions {
            batch: BatchSize::Count(1),
            ..PlanOptions::default()
        })
        .plan(state)
        .expect("a plan")
}

/// 1.33 to 1.36: etcd moves to 3.6 at 1.34, kubelets reach 1.35 and 1.36.
fn plan_133_to_136(cps: usize, workers: usize) -> UpgradePlan {
    let state = cluster("v1.33.4", "3.5.21-0", cps, workers);
    let plan = plan_to(&state, "1.36", date(2026, 9, 1));
    assert_eq!(plan.hops.len(), 3);
    plan
}

/// 1.33 to 1.34, one hop.
fn plan_133_to_134(cps: usize, workers: usize) -> UpgradePlan {
    plan_to(
        &cluster("v1.33.4", "3.5.21-0", cps, workers),
        "1.34",
        date(2026, 9, 1),
    )
}

fn node(name: &str) -> NodeName {
    NodeName::new(name).unwrap()
}

fn hop_to(plan: &UpgradePlan, minor: &str) -> usize {
    let m: Minor = minor.parse().unwrap();
    plan.hops.iter().position(|h| h.to.minor() == m).unwrap()
}

fn evaluate(plan: &UpgradePlan, evidence: &Evidence) -> Readiness {
    Catalogue::embedded().evaluate(plan, evidence)
}

fn found<T>(t: T) -> Gathered<T> {
    Gathered::Found(t)
}

fn facts_of(name: &str) -> NodeFacts {
    NodeFacts::new(node(name))
}

/// The facts of `name` with one part set by `set`.
fn facts_with(name: &str, set: impl FnOnce(&mut NodeFacts)) -> NodeFacts {
    let mut f = facts_of(name);
    set(&mut f);
    f
}

/// The findings of check `id`, which must be `count` of them (the report shows otherwise).
fn findings<'r>(r: &'r Readiness, id: &'r str, count: usize) -> Vec<&'r Finding> {
    let found: Vec<&Finding> = r.findings_of(id).collect();
    assert_eq!(found.len(), count, "{id}: {}", render::text(r));
    found
}

/// The step a finding sits at.
fn step_of<'p>(plan: &'p UpgradePlan, f: &Finding) -> &'p crate::plan::Step {
    let id = f.step.as_ref().expect("a step");
    plan.step(id.as_str()).expect("a step of the plan")
}

#[test]
fn embedded_tables_parse_and_every_row_has_a_source() {
    let facts = FactTables::embedded();
    assert_eq!(facts.api_removals().len(), 74);
    assert!(facts.api_removals().iter().all(|r| !r.source.is_empty()));
    assert!(facts.cgroup_v1().iter().all(|r| !r.source.is_empty()));
    assert!(facts.runtime_floors().iter().all(|r| !r.source.is_empty()));
    assert!(facts.runtime_matrix().iter().all(|r| !r.source.is_empty()));
    assert!(facts.etcd_floors().iter().all(|r| !r.source.is_empty()));
    assert!(
        facts
            .kubeadm_config_apis()
            .iter()
            .all(|r| !r.source.is_empty())
    );
    assert!(
        facts
            .kubeadm_feature_gates_removed()
            .iter()
            .all(|r| !r.source.is_empty())
    );
    assert!(
        facts
            .legacy_package_hosts()
            .iter()
            .all(|r| !r.source.is_empty())
    );
    assert_eq!(facts.as_of(), date(2026, 8, 22));
    assert_eq!(facts.api_removals_as_of(), date(2026, 7, 24));
    assert_eq!(
        facts
            .cgroup_rule(Minor::new(1, 35))
            .unwrap()
            .setting
            .as_deref(),
        Some("failCgroupV1")
    );
    assert!(facts.cgroup_rule(Minor::new(1, 34)).is_none());
    assert_eq!(
        facts
            .api_removal_by_resource("networking.k8s.io/v1beta1", "ingresses")
            .unwrap()
            .kind,
        "Ingress"
    );
    // kubeadm 1.31 to 1.35 read v1beta3 and v1beta4, and write v1beta4.
    assert_eq!(
        facts
            .kubeadm_config_written_by(Minor::new(1, 33))
            .unwrap()
            .version,
        "kubeadm.k8s.io/v1beta4"
    );
    assert!(
        !facts
            .kubeadm_config_api("kubeadm.k8s.io/v1beta3")
            .unwrap()
            .read_by(Minor::new(1, 36))
    );
}

#[test]
fn guessed_resources_follow_the_api_machinery() {
    assert_eq!(guess_resource("Ingress"), "ingresses");
    assert_eq!(guess_resource("NetworkPolicy"), "networkpolicies");
    assert_eq!(guess_resource("Lease"), "leases");
    assert_eq!(guess_resource("CSIStorageCapacity"), "csistoragecapacities");
    assert_eq!(guess_resource("Gateway"), "gateways");
}

#[test]
fn table_errors_name_the_row_and_the_field() {
    let removals = FactTables::embedded_api_removals_json();
    let err = FactTables::from_json("{ \"as_of\": ", "f.json", removals, "r.json").unwrap_err();
    assert_eq!(err.location(), Some((1, 11)));
    let mut rows: Vec<serde_json::Value> = serde_json::from_str(removals).unwrap();
    let copy = rows[0].clone();
    rows.push(copy);
    let twice = serde_json::to_string(&rows).unwrap();
    let err = FactTables::from_json(
        FactTables::embedded_facts_json(),
        "f.json",
        &twice,
        "r.json",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "r.json: entry 74 (apps/v1beta1 Deployment): field kind: listed twice (first as entry 0)"
    );
    let mut facts: serde_json::Value =
        serde_json::from_str(FactTables::embedded_facts_json()).unwrap();
    facts["kubeadm_config_apis"][0]["removed_in"] = "1.12".into();
    let err = FactTables::from_json(&facts.to_string(), "f.json", removals, "r.json").unwrap_err();
    assert_eq!(err.row(), Some("kubeadm_config_apis[0]"));
    assert_eq!(err.field(), Some("removed_in"));
}

/// Checks that need no evidence, or do not apply with the default options.
const NEED_NOTHING: &[&str] = &["drain/daemonset"];

#[test]
fn empty_evidence_makes_every_check_that_needs_data_not_checkable() {
    let plan = plan_133_to_136(1, 2);
    let r = evaluate(&plan, &Evidence::default());
    assert_eq!(r.findings().count(), 0, "{}", render::text(&r));
    for c in &r.checks {
        assert!(
            !matches!(c.coverage, Coverage::Checked | Coverage::Partial { .. }),
            "{} passed on empty evidence: {}",
            c.id,
            c.coverage
        );
        if NEED_NOTHING.contains(&c.id.as_str()) {
            assert!(
                matches!(c.coverage, Coverage::NotApplicable { .. }),
                "{}",
                c.id
            );
        } else {
            assert!(
                matches!(c.coverage, Coverage::NotCheckable { .. }),
                "{}: {}",
                c.id,
                c.coverage
            );
        }
    }
    assert_eq!(r.checks.len(), Catalogue::checks().count());
}

/// A plan from 1.20 to 1.25 on the date the test apiserver's removals bite.
fn plan_120_to_125() -> UpgradePlan {
    let state = cluster("v1.20.15", "3.4.13-0", 1, 1);
    let plan = plan_to(&state, "1.25", date(2023, 6, 1));
    assert_eq!(plan.hops.len(), 5);
    plan
}

fn object(api_version: &str, kind: &str, ns: &str, name: &str, via: &str) -> ApiObject {
    ApiObject {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: Some(ns.into()),
        name: name.into(),
        via: via.into(),
    }
}

fn api_evidence() -> Evidence {
    Evidence {
        api_requests: found(vec![ApiRequest {
            api_server: "cp-1".into(),
            group_version: "networking.k8s.io/v1beta1".into(),
            resource: "ingresses".into(),
            subresource: None,
            removed_release: Some("1.22".into()),
            since: None,
        }]),
        api_writers: found(vec![
            object(
                "extensions/v1beta1",
                "Ingress",
                "shop",
                "web",
                "managedFields (manager kubectl)",
            ),
            object(
                "batch/v1beta1",
                "CronJob",
                "shop",
                "nightly",
                "managedFields (manager helm)",
            ),
            object(
                "extensions/v1beta1",
                "Deployment",
                "shop",
                "old",
                "managedFields (manager kubectl)",
            ),
        ]),
        api_manifests: found(vec![
            object(
                "policy/v1beta1",
                "PodDisruptionBudget",
                "shop",
                "web",
                "Helm release shop/web v3",
            ),
            object(
                "extensions/v1beta1",
                "Deployment",
                "shop",
                "legacy",
                "last-applied-configuration",
            ),
        ]),
        ..Evidence::default()
    }
}

#[test]
fn removed_apis_land_on_the_hop_that_removes_them_in_every_tier() {
    let plan = plan_120_to_125();
    let r = evaluate(&plan, &api_evidence());
    let at = |key: &str| {
        r.findings_of("removed-api")
            .find(|f| f.subject.key() == key)
            .unwrap_or_else(|| panic!("no finding for {key}:\n{}", render::text(&r)))
            .hop
    };
    assert_eq!(
        at("resource/networking.k8s.io/v1beta1/ingresses"),
        Some(hop_to(&plan, "1.22"))
    );
    assert_eq!(at("ingress/shop/web"), Some(hop_to(&plan, "1.22")));
    assert_eq!(at("cronjob/shop/nightly"), Some(hop_to(&plan, "1.25")));
    assert_eq!(
        at("poddisruptionbudget/shop/web"),
        Some(hop_to(&plan, "1.25"))
    );
    // Removed in 1.16, before the plan: a manifest applied again fails; a writer's old
    // managedFields entry does not matter.
    assert_eq!(at("deployment/shop/legacy"), None);
    assert!(
        r.findings_of("removed-api")
            .all(|f| f.subject.key() != "deployment/shop/old")
    );
    assert!(
        r.findings_of("removed-api")
            .all(|f| f.severity == Severity::Error)
    );
    assert_eq!(r.check("removed-api").unwrap().coverage, Coverage::Checked);
    assert_eq!(
        r.check("removed-api").unwrap().hops,
        vec![hop_to(&plan, "1.22"), hop_to(&plan, "1.25")]
    );
    let ingress = r
        .findings_of("removed-api")
        .find(|f| f.subject.key() == "ingress/shop/web")
        .unwrap();
    assert_eq!(ingress.key(), "removed-api:ingress/shop/web");
    assert!(
        ingress.remediation.contains("networking.k8s.io/v1"),
        "{}",
        ingress.remediation
    );
    assert!(
        ingress
            .source
            .as_deref()
            .unwrap()
            .contains("deprecation-guide")
    );
}

#[test]
fn hop_attribution_comes_from_the_table() {
    let plan = plan_120_to_125();
    let mut rows: Vec<serde_json::Value> =
        serde_json::from_str(FactTables::embedded_api_removals_json()).unwrap();
    for row in rows.iter_mut() {
        if row["group_version"] == "extensions/v1beta1" && row["kind"] == "Ingress" {
            row["removed_in"] = "1.25".into();
        }
    }
    let edited = FactTables::from_json(
        FactTables::embedded_facts_json(),
        "k8s-readiness.json",
        &serde_json::to_string(&rows).unwrap(),
        "edited.json",
    )
    .unwrap();
    let evidence = api_evidence();
    let hop = |r: &Readiness| {
        r.findings_of("removed-api")
            .find(|f| f.subject.key() == "ingress/shop/web")
            .unwrap()
            .hop
    };
    let before = evaluate(&plan, &evidence);
    let after = Catalogue::new(&edited).evaluate(&plan, &evidence);
    assert_eq!(hop(&before), Some(hop_to(&plan, "1.22")));
    assert_eq!(hop(&after), Some(hop_to(&plan, "1.25")));
}

#[test]
fn a_tier_denied_by_rbac_is_a_gap_not_a_pass() {
    let plan = plan_120_to_125();
    let mut evidence = api_evidence();
    evidence.api_requests = Gathered::missing(MissingReason::Forbidden, "RBAC denied GET /metrics");
    let r = evaluate(&plan, &evidence);
    match &r.check("removed-api").unwrap().coverage {
        Coverage::Partial { gaps, total } => {
            assert_eq!(*total, 1);
            assert_eq!(gaps[0].subject, "requests tier (API server metrics)");
            assert_eq!(gaps[0].reason, "forbidden: RBAC denied GET /metrics");
        }
        other => panic!("expected a partial coverage, got {other}"),
    }
    let only_requests = Evidence {
        api_requests: evidence.api_requests.clone(),
        ..Evidence::default()
    };
    let r = evaluate(&plan, &only_requests);
    assert!(matches!(
        r.check("removed-api").unwrap().coverage,
        Coverage::NotCheckable { .. }
    ));
}

#[test]
fn deprecated_apis_removed_after_the_target_are_warnings() {
    let plan = plan_to(
        &cluster("v1.20.15", "3.4.13-0", 1, 0),
        "1.22",
        date(2022, 6, 1),
    );
    let evidence = Evidence {
        api_writers: found(vec![object(
            "batch/v1beta1",
            "CronJob",
            "shop",
            "nightly",
            "managedFields",
        )]),
        api_requests: found(vec![]),
        api_manifests: found(vec![]),
        ..Evidence::default()
    };
    let r = evaluate(&plan, &evidence);
    let f = findings(&r, "deprecated-api", 1);
    assert_eq!(f[0].severity, Severity::Warning);
    // Deprecated in 1.21: the hop to 1.21.
    assert_eq!(f[0].hop, Some(hop_to(&plan, "1.21")));
    assert!(f[0].message.contains("removed in 1.25"), "{}", f[0].message);
    assert_eq!(r.findings_of("removed-api").count(), 0);
}

// --- drains ---

fn budget(name: &str, allowed: u32, healthy: u32, desired: u32, expected: u32) -> Budget {
    Budget {
        namespace: "shop".into(),
        name: name.into(),
        disruptions_allowed: allowed,
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: expected,
        unhealthy_pod_eviction_policy: None,
        spec: None,
    }
}

fn pod(name: &str, on: &str, budgets: &[&str]) -> Pod {
    Pod {
        namespace: "shop".into(),
        name: name.into(),
        node: Some(node(on)),
        owner: Some(Owner {
            kind: "ReplicaSet".into(),
            name: "web".into(),
            replicas: Some(3),
        }),
        healthy: true,
        budgets: budgets.iter().map(|b| b.to_string()).collect(),
        volumes: vec![],
    }
}

/// 1.34 with `drain` and otherwise the default options.
fn plan_134_draining(state: &ClusterState, drain: DrainOptions) -> UpgradePlan {
    PlanRequest::new(Target::Minor(Minor::new(1, 34)), date(2026, 9, 1))
        .options(PlanOptions {
            drain,
            ..PlanOptions::default()
        })
        .plan(state)
        .unwrap()
}

fn with_nodes(nodes: Vec<NodeFacts>) -> Evidence {
    Evidence {
        nodes,
        ..Evidence::default()
    }
}

fn with_workloads(w: Workloads) -> Evidence {
    Evidence {
        workloads: found(w),
        ..Evidence::default()
    }
}

#[test]
fn one_unevictable_pod_per_node_is_a_named_deadlock() {
    let plan = plan_133_to_134(1, 3);
    let names: Vec<String> = plan.nodes.iter().map(|n| n.name.to_string()).collect();
    let mut b = budget("pinned", 0, 4, 4, 4);
    b.spec = Some("maxUnavailable: 0".into());
    let pods = names
        .iter()
        .map(|n| pod(&format!("pinned-{n}"), n, &["pinned"]))
        .collect();
    let r = evaluate(
        &plan,
        &with_workloads(Workloads {
            budgets: vec![b],
            pods,
        }),
    );
    let deadlock = findings(&r, "drain/deadlock", 1);
    assert_eq!(deadlock[0].subject.key(), "pdb/shop/pinned");
    assert!(deadlock[0].message.contains("maxUnavailable: 0"));
    assert!(
        deadlock[0].message.contains("every one of the plan's"),
        "{}",
        deadlock[0].message
    );
    // Named at the plan's first drain.
    let first_drain = plan
        .steps
        .iter()
        .find(|s| matches!(s.action, Action::Drain { .. }))
        .unwrap();
    assert_eq!(deadlock[0].step.as_ref(), Some(&first_drain.id));
    // Each drain of a node that holds one of the pods is blocked; later drains of the same
    // node are not judged again (its pods' placement is unknown by then).
    let blocked = findings(&r, "drain/pdb-blocked", names.len());
    assert!(blocked.iter().all(|f| f.message.contains("it never will")));
    assert!(r.has_errors());
}

#[test]
fn a_budget_that_can_recover_blocks_without_a_deadlock() {
    let plan = plan_133_to_134(1, 2);
    // Three replicas, minAvailable 2, one unhealthy: nothing allowed now, but it can recover.
    let w = Workloads {
        budgets: vec![budget("web", 0, 2, 2, 3)],
        pods: vec![pod("web-1", "w-1", &["web"])],
    };
    let r = evaluate(&plan, &with_workloads(w));
    assert_eq!(r.findings_of("drain/pdb-blocked").count(), 1);
    assert!(
        !r.findings_of("drain/pdb-blocked")
            .next()
            .unwrap()
            .message
            .contains("never")
    );
    assert_eq!(r.findings_of("drain/deadlock").count(), 0);
    assert_eq!(
        r.check("drain/deadlock").unwrap().coverage,
        Coverage::Checked
    );
}

#[test]
fn unhealthy_pods_under_always_allow_do_not_block() {
    let mut b = budget("web", 0, 1, 2, 3);
    b.unhealthy_pod_eviction_policy = Some("AlwaysAllow".into());
    let mut p = pod("web-1", "w-1", &["web"]);
    p.healthy = false;
    let workloads = Workloads {
        budgets: vec![b.clone()],
        pods: vec![p.clone()],
    };
    let model = DrainModel::new(&workloads, &DrainOptions::default());
    assert!(
        model.forecast(&[vec![node("w-1")]]).batches[0]
            .blocked
            .is_empty()
    );
    // IfHealthyBudget, below its desired health: the unhealthy pod needs the budget.
    b.unhealthy_pod_eviction_policy = None;
    let workloads = Workloads {
        budgets: vec![b],
        pods: vec![p],
    };
    let model = DrainModel::new(&workloads, &DrainOptions::default());
    assert_eq!(
        model.forecast(&[vec![node("w-1")]]).batches[0]
            .blocked
            .len(),
        1
    );
}

#[test]
fn pods_under_two_budgets_fail_the_eviction_api() {
    let plan = plan_133_to_134(1, 2);
    let w = Workloads {
        budgets: vec![budget("a", 1, 3, 2, 3), budget("b", 1, 3, 2, 3)],
        pods: vec![
            pod("web-1", "w-2", &["a", "b"]),
            pod("web-2", "w-1", &["a"]),
        ],
    };
    let r = evaluate(&plan, &with_workloads(w));
    let multi = findings(&r, "drain/multi-pdb", 1);
    assert_eq!(multi[0].subject.key(), "pod/shop/web-1");
    assert!(multi[0].message.contains("500"));
    assert!(
        multi[0].message.contains("shop/a, shop/b"),
        "{}",
        multi[0].message
    );
    let step = step_of(&plan, multi[0]);
    assert!(matches!(step.action, Action::Drain { .. }));
    assert!(step.nodes.iter().any(|n| n.as_str() == "w-2"));
    assert_eq!(r.findings_of("drain/pdb-blocked").count(), 0);
}

#[test]
fn drain_refusals_follow_the_drain_options() {
    let state = cluster("v1.33.4", "3.5.21-0", 1, 1);
    let mut bare = pod("bare", "w-1", &[]);
    bare.owner = None;
    let mut scratch = pod("scratch", "w-1", &[]);
    scratch.volumes = vec![PodVolume::EmptyDir { name: "tmp".into() }];
    let mut single = pod("single", "w-1", &[]);
    single.owner.as_mut().unwrap().replicas = Some(1);
    let mut mirror = pod("kube-apiserver-cp-1", "cp-1", &[]);
    mirror.owner = Some(Owner {
        kind: "Node".into(),
        name: "cp-1".into(),
        replicas: None,
    });
    mirror.volumes = vec![PodVolume::EmptyDir { name: "x".into() }];
    let evidence = with_workloads(Workloads {
        budgets: vec![],
        pods: vec![bare, scratch, single, mirror],
    });
    let plan = plan_to(&state, "1.34", date(2026, 9, 1));
    let r = evaluate(&plan, &evidence);
    let sev = |id: &str| r.findings_of(id).map(|f| f.severity).collect::<Vec<_>>();
    assert_eq!(sev("drain/bare-pod"), vec![Severity::Error]);
    assert_eq!(sev("drain/emptydir"), vec![Severity::Error]); // the mirror pod is left alone
    assert_eq!(sev("drain/single-replica"), vec![Severity::Warning]);
    let lenient = plan_134_draining(
        &state,
        DrainOptions {
            force: true,
            delete_emptydir_data: true,
            ..DrainOptions::default()
        },
    );
    let r = evaluate(&lenient, &evidence);
    assert_eq!(
        r.findings_of("drain/bare-pod").next().unwrap().severity,
        Severity::Warning
    );
    assert_eq!(
        r.findings_of("drain/emptydir").next().unwrap().severity,
        Severity::Warning
    );
}

#[test]
fn disabled_eviction_consults_no_budget() {
    let state = cluster("v1.33.4", "3.5.21-0", 1, 1);
    let plan = plan_134_draining(
        &state,
        DrainOptions {
            disable_eviction: true,
            ..DrainOptions::default()
        },
    );
    let w = Workloads {
        budgets: vec![budget("web", 0, 1, 1, 1)],
        pods: vec![pod("web-1", "w-1", &["web"])],
    };
    let r = evaluate(&plan, &with_workloads(w));
    for id in ["drain/pdb-blocked", "drain/deadlock", "drain/multi-pdb"] {
        assert!(
            matches!(
                r.check(id).unwrap().coverage,
                Coverage::NotApplicable { .. }
            ),
            "{id}"
        );
    }
}

#[test]
fn overdraws_count_pods_against_headroom() {
    let w = Workloads {
        budgets: vec![budget("web", 1, 3, 2, 3)],
        pods: vec![
            pod("web-1", "w-1", &["web"]),
            pod("web-2", "w-2", &["web"]),
            pod("web-3", "w-3", &["web"]),
        ],
    };
    let model = DrainModel::new(&w, &DrainOptions::default());
    assert!(model.overdraws(&[node("w-1")]).is_empty());
    assert_eq!(model.overdraws(&[node("w-1"), node("w-2")]), vec![(0, 2)]);
}

// --- nodes ---

#[test]
fn cgroup_v1_bites_where_the_kubelet_reaches_1_35() {
    let plan = plan_133_to_136(1, 3);
    let cgroup = |n: &str, fs_type: &str, fail_cgroup_v1: Option<bool>| {
        facts_with(n, |f| {
            f.cgroup = found(CgroupFacts {
                fs_type: fs_type.into(),
                fail_cgroup_v1,
            })
        })
    };
    let evidence = with_nodes(vec![
        cgroup("w-1", "tmpfs", None),
        cgroup("w-2", "tmpfs", Some(false)),
        cgroup("cp-1", "cgroup2fs", None),
    ]);
    let r = evaluate(&plan, &evidence);
    let f = findings(&r, "node/cgroup-v1", 2);
    let error = f.iter().find(|f| f.subject.key() == "node/w-1").unwrap();
    assert_eq!(error.severity, Severity::Error);
    assert_eq!(error.hop, Some(hop_to(&plan, "1.35")));
    match &step_of(&plan, error).action {
        Action::RestartKubelet { version } => assert_eq!(version.minor(), Minor::new(1, 35)),
        other => panic!("expected a kubelet restart, got {other:?}"),
    }
    assert!(error.source.as_deref().unwrap().contains("cgroups.md"));
    let warning = f.iter().find(|f| f.subject.key() == "node/w-2").unwrap();
    assert_eq!(warning.severity, Severity::Warning);
    // w-3 has no facts: the check is partial, not passed.
    match &r.check("node/cgroup-v1").unwrap().coverage {
        Coverage::Partial { gaps, .. } => assert_eq!(gaps[0].subject, "node w-3"),
        other => panic!("expected partial coverage, got {other}"),
    }
    assert_eq!(
        r.check("node/cgroup-v1").unwrap().hops,
        vec![hop_to(&plan, "1.35")]
    );
}

#[test]
fn containerd_1x_bites_at_1_36_and_old_2x_lines_warn() {
    let plan = plan_133_to_136(1, 3);
    let runtime = |n: &str, v: &str| facts_with(n, |f| f.runtime = found(v.to_string()));
    let evidence = with_nodes(vec![
        runtime("cp-1", "containerd://2.2.1"),
        runtime("w-1", "containerd://1.7.28"),
        runtime("w-2", "containerd://2.0.6"),
        runtime("w-3", "cri-o://1.33.2"),
    ]);
    let r = evaluate(&plan, &evidence);
    let floor = findings(&r, "node/containerd-1x", 1);
    assert_eq!(floor[0].subject.key(), "node/w-1");
    assert_eq!(floor[0].hop, Some(hop_to(&plan, "1.36")));
    assert_eq!(floor[0].severity, Severity::Error);
    // 2.0.6 is fine for 1.34 but not recommended for 1.35 (2.2.0+, 2.1.5+, 1.7.28+).
    let matrix = findings(&r, "node/runtime-version", 1);
    assert_eq!(matrix[0].subject.key(), "node/w-2");
    assert_eq!(matrix[0].hop, Some(hop_to(&plan, "1.35")));
    assert_eq!(
        r.check("node/containerd-1x").unwrap().coverage,
        Coverage::Checked
    );
}

#[test]
fn low_disk_bites_at_the_first_write() {
    let plan = plan_133_to_136(1, 1);
    let mut cp = facts_of("cp-1");
    cp.disk = found(vec![
        DiskSpace {
            path: "/var".into(),
            purpose: DiskPurpose::Packages,
            free_bytes: 4 << 30,
        },
        DiskSpace {
            path: "/var/backups/kupgrade".into(),
            purpose: DiskPurpose::Backups,
            free_bytes: 600 << 20,
        },
    ]);
    cp.etcd = found(EtcdFacts {
        version: "3.5.21-0".parse().unwrap(),
        healthy: Some(true),
        db_size_bytes: Some(200 << 20),
    });
    let mut w = facts_of("w-1");
    w.disk = found(vec![DiskSpace {
        path: "/var".into(),
        purpose: DiskPurpose::Packages,
        free_bytes: 100 << 20,
    }]);
    let r = evaluate(&plan, &with_nodes(vec![cp, w]));
    // cp-1: 600 MiB free for backups; 512 MiB plus three 200 MiB snapshots needed.
    let f = findings(&r, "node/disk-space", 2);
    assert!(
        f.iter()
            .any(|f| f.subject.key() == "node/cp-1" && f.message.contains("1112 MiB"))
    );
    let w = f.iter().find(|f| f.subject.key() == "node/w-1").unwrap();
    assert!(matches!(
        step_of(&plan, w).action,
        Action::InstallPackages { .. } | Action::SwitchRepository { .. }
    ));
}

// --- control plane ---

#[test]
fn etcd_below_the_floor_bites_at_the_hop_that_moves_it_to_3_6() {
    let plan = plan_133_to_136(3, 0);
    let etcd = |n: &str, v: &str| {
        facts_with(n, |f| {
            f.etcd = found(EtcdFacts {
                version: v.parse().unwrap(),
                healthy: Some(true),
                db_size_bytes: None,
            })
        })
    };
    let evidence = with_nodes(vec![
        etcd("cp-1", "3.5.21-0"),
        etcd("cp-2", "3.5.32-0"),
        etcd("cp-3", "3.5.21-0"),
    ]);
    let r = evaluate(&plan, &evidence);
    let f = findings(&r, "etcd/below-3.6-floor", 2);
    assert!(f.iter().all(|f| f.hop == Some(hop_to(&plan, "1.34"))));
    assert!(f[0].message.contains("3.5.32") || f[0].remediation.contains("3.5.32"));
    assert!(f[0].source.as_deref().unwrap().contains("upgrade_3_6.md"));
    // The finding sits at the node's own kubeadm step.
    assert!(matches!(
        step_of(&plan, f[0]).action,
        Action::KubeadmUpgradeApply { .. } | Action::KubeadmUpgradeNode { .. }
    ));
    // A pinned etcd image: kubeadm does not move etcd, the custom-image check says so.
    let mut pinned = evidence.clone();
    pinned.kubeadm_config = found(KubeadmConfig {
        api_version: "kubeadm.k8s.io/v1beta4".into(),
        etcd_image_tag: Some("3.5.21-0".into()),
        ..KubeadmConfig::default()
    });
    let r = evaluate(&plan, &pinned);
    assert_eq!(r.findings_of("etcd/below-3.6-floor").count(), 0);
    assert_eq!(r.findings_of("etcd/custom-image").count(), 1);
}

fn cert(name: &str, expires: Timestamp) -> Certificate {
    Certificate {
        name: name.into(),
        expiration_date: expires,
        residual_time_seconds: 0,
        externally_managed: false,
        ca_name: Some("ca".into()),
        missing: false,
    }
}

#[test]
fn certificates_that_expire_before_their_renewal_are_errors_at_their_hop() {
    let plan = plan_133_to_136(1, 2);
    let start: Timestamp = "2026-09-01T08:00:00Z".parse().unwrap();
    let end = start + (plan.estimate.total_seconds as i64).seconds();
    let mid = start + ((plan.estimate.total_seconds / 2) as i64).seconds();
    let mut cp = facts_of("cp-1");
    let mut ca = cert("ca", mid);
    ca.ca_name = None;
    cp.certificates = found(CertificateExpirationInfo {
        api_version: Some("output.kubeadm.k8s.io/v1alpha3".into()),
        kind: Some("CertificateExpirationInfo".into()),
        certificates: vec![
            // Renewed by kubeadm upgrade on cp-1 (early in the run) before it expires.
            cert("apiserver", mid),
            // Expires before cp-1's first kubeadm upgrade.
            cert("admin.conf", start + 60.seconds()),
            cert("front-proxy-client", start - 1.hours()),
            cert("etcd-server", end + 1.hours()),
        ],
        certificate_authorities: vec![ca],
    });
    let evidence = Evidence {
        gathered_at: Some(start),
        nodes: vec![cp],
        ..Evidence::default()
    };
    let r = evaluate(&plan, &evidence);
    let keys: Vec<String> = r
        .findings_of("certs/expire-during-upgrade")
        .map(|f| f.subject.key())
        .collect();
    assert_eq!(
        keys,
        [
            "certificate/cp-1/front-proxy-client",
            "certificate/cp-1/admin.conf",
            "certificate/cp-1/ca"
        ],
        "{}",
        render::text(&r)
    );
    let ca = r
        .findings_of("certs/expire-during-upgrade")
        .find(|f| f.subject.key() == "certificate/cp-1/ca")
        .unwrap();
    let step = plan
        .steps
        .iter()
        .position(|s| Some(&s.id) == ca.step.as_ref())
        .unwrap();
    let starts = crate::plan::Estimate::start_times(&plan);
    let at = start + (starts[step] as i64).seconds();
    assert!(
        at <= mid,
        "the CA's finding sits at the step running when it expires"
    );
    assert!(ca.message.contains("kubeadm never renews"));
    let expired = &r.before_hops[0];
    assert_eq!(expired.subject.key(), "certificate/cp-1/front-proxy-client");
}

#[test]
fn control_plane_kubelets_behind_a_load_balancer_must_wait_for_every_api_server() {
    let mut plan = plan_133_to_134(2, 0);
    let lb = |n: &str| {
        facts_with(n, |f| {
            f.kubelet_server = found(KubeletServer {
                server: "https://lb.example:6443".into(),
                node_addresses: vec!["10.0.0.1".into()],
            })
        })
    };
    let evidence = with_nodes(vec![lb("cp-1"), lb("cp-2")]);
    let r = evaluate(&plan, &evidence);
    assert_eq!(
        r.findings_of("kubelet/server-behind-load-balancer").count(),
        0
    );
    assert_eq!(
        r.check("kubelet/server-behind-load-balancer")
            .unwrap()
            .coverage,
        Coverage::Checked
    );
    // An edited plan that restarts cp-1's kubelet before cp-2's API server moves.
    let restart = plan
        .steps
        .iter()
        .position(|s| matches!(s.action, Action::RestartKubelet { .. }))
        .unwrap();
    let node_upgrade = plan
        .steps
        .iter()
        .position(|s| {
            matches!(
                s.action,
                Action::KubeadmUpgradeNode {
                    control_plane: Some(_),
                    ..
                }
            )
        })
        .unwrap();
    assert!(node_upgrade < restart);
    let step = plan.steps.remove(restart);
    plan.steps.insert(node_upgrade, step);
    let r = evaluate(&plan, &evidence);
    let f = findings(&r, "kubelet/server-behind-load-balancer", 1);
    assert!(f[0].message.contains("lb.example"));
    // A local server is fine whatever the order.
    let local = KubeletServer {
        server: "https://[::1]:6443".into(),
        node_addresses: vec![],
    };
    assert!(local.is_local());
    let own = KubeletServer {
        server: "https://10.0.0.1:6443/".into(),
        node_addresses: vec!["10.0.0.1".into()],
    };
    assert!(own.is_local());
}

// --- kubeadm ---

fn kubeadm(api: &str, gates: &[(&str, bool)]) -> Evidence {
    Evidence {
        kubeadm_config: found(KubeadmConfig {
            api_version: api.into(),
            feature_gates: gates.iter().map(|(g, v)| (g.to_string(), *v)).collect(),
            ..KubeadmConfig::default()
        }),
        ..Evidence::default()
    }
}

#[test]
fn a_stored_kubeadm_config_is_rewritten_by_each_hop_until_one_cannot_read_it() {
    // 1.33 to 1.36 from v1beta3: kubeadm 1.34 reads it and stores v1beta4, which 1.36 reads.
    let plan = plan_133_to_136(1, 0);
    let r = evaluate(&plan, &kubeadm("kubeadm.k8s.io/v1beta3", &[]));
    assert_eq!(r.findings_of("kubeadm/config-api-version").count(), 0);
    assert_eq!(
        r.check("kubeadm/config-api-version").unwrap().coverage,
        Coverage::Checked
    );
    // From 1.35 with v1beta3 still stored: kubeadm 1.36 no longer reads it.
    let plan = plan_to(
        &cluster("v1.35.4", "3.6.6-0", 1, 0),
        "1.36",
        date(2026, 9, 1),
    );
    let r = evaluate(&plan, &kubeadm("kubeadm.k8s.io/v1beta3", &[]));
    let f = findings(&r, "kubeadm/config-api-version", 1);
    assert_eq!(f[0].hop, Some(0));
    assert!(
        f[0].remediation.contains("kubeadm 1.35"),
        "{}",
        f[0].remediation
    );
    assert!(f[0].source.as_deref().unwrap().contains("#136016"));
    // An API version the table does not know: not checkable.
    let r = evaluate(&plan, &kubeadm("kubeadm.k8s.io/v2", &[]));
    assert!(matches!(
        r.check("kubeadm/config-api-version").unwrap().coverage,
        Coverage::NotCheckable { .. }
    ));
}

#[test]
fn removed_kubeadm_feature_gates_bite_at_their_hop() {
    let plan = plan_133_to_136(1, 0);
    let r = evaluate(
        &plan,
        &kubeadm(
            "kubeadm.k8s.io/v1beta4",
            &[("PublicKeysECDSA", true), ("RootlessControlPlane", false)],
        ),
    );
    let f = findings(&r, "kubeadm/feature-gate-removed", 1);
    assert!(f[0].message.contains("PublicKeysECDSA"));
    assert_eq!(f[0].hop, Some(hop_to(&plan, "1.36")));
}

// --- packages ---

#[test]
fn packages_a_repository_does_not_offer_and_legacy_sources_are_errors() {
    let plan = plan_133_to_134(1, 1);
    let target = plan.target.clone();
    let listing = |package: &str, versions: &[&str]| PackageAvailability {
        minor: Minor::new(1, 34),
        package: package.into(),
        versions: versions.iter().map(|v| v.parse().unwrap()).collect(),
    };
    let offered = target.to_string();
    let mut cp = facts_of("cp-1");
    cp.packages = found(vec![
        listing("kubeadm", &[&offered]),
        listing("kubelet", &[&offered]),
        listing("kubectl", &[&offered]),
    ]);
    cp.repositories = found(vec![RepositoryEntry {
        file: "/etc/apt/sources.list.d/kubernetes.list".into(),
        line: "deb https://apt.kubernetes.io/ kubernetes-xenial main".into(),
    }]);
    let mut w = facts_of("w-1");
    w.packages = found(vec![
        listing("kubeadm", &["v1.34.0"]),
        listing("kubelet", &["v1.34.0"]),
    ]);
    w.repositories = found(vec![RepositoryEntry {
        file: "/etc/apt/sources.list.d/google.list".into(),
        line: "deb https://apt.kubernetes.io/ kubernetes-xenial main".into(),
    }]);
    let r = evaluate(&plan, &with_nodes(vec![cp, w]));
    let missing: Vec<&Finding> = r.findings_of("packages/not-installable").collect();
    assert!(!missing.is_empty());
    assert!(
        missing.iter().all(|f| f.subject.key() == "node/w-1"),
        "{}",
        render::text(&r)
    );
    assert!(matches!(
        step_of(&plan, missing[0]).action,
        Action::InstallPackages { .. }
    ));
    // w-1 has no kubectl listing: that part is a gap.
    assert!(matches!(
        r.check("packages/not-installable").unwrap().coverage,
        Coverage::Partial { .. }
    ));
    // The legacy line in the file the plan rewrites does not matter; another file does.
    let legacy = findings(&r, "packages/legacy-repository", 1);
    assert_eq!(legacy[0].subject.key(), "node/w-1");
}

// --- extensions ---

fn backend(pod: &str, on: &str) -> Backend {
    Backend {
        pod: pod.into(),
        node: Some(node(on)),
        ready: true,
    }
}

#[test]
fn webhooks_apiservices_and_conversion_webhooks() {
    let plan = plan_133_to_134(1, 3);
    let webhook = |name: &str, policy: &str, backends: Vec<Backend>| Webhook {
        configuration_kind: "ValidatingWebhookConfiguration".into(),
        configuration: name.into(),
        name: format!("{name}.example.com"),
        failure_policy: policy.into(),
        service: Some(format!("system/{name}")),
        backends,
    };
    let evidence = Evidence {
        webhooks: found(vec![
            webhook("gate", "Fail", vec![backend("system/gate-1", "w-2")]),
            webhook(
                "spread",
                "Fail",
                vec![backend("system/s-1", "w-1"), backend("system/s-2", "w-3")],
            ),
            webhook("lenient", "Ignore", vec![backend("system/l-1", "w-2")]),
            webhook("down", "Fail", vec![]),
        ]),
        api_services: found(vec![ApiService {
            name: "v1beta1.metrics.k8s.io".into(),
            service: Some("kube-system/metrics-server".into()),
            available: false,
            message: Some("FailedDiscoveryCheck".into()),
            backends: vec![],
        }]),
        crds: found(vec![Crd {
            name: "widgets.example.com".into(),
            conversion_service: Some("system/convert".into()),
            backends: vec![backend("system/convert-1", "w-3")],
        }]),
        ..Evidence::default()
    };
    let r = evaluate(&plan, &evidence);
    let hooks = findings(&r, "webhook/fail-closed-on-drained-node", 2);
    let gate = hooks
        .iter()
        .find(|f| f.subject.key() == "validatingwebhookconfiguration/gate")
        .unwrap();
    assert!(
        step_of(&plan, gate)
            .nodes
            .iter()
            .any(|n| n.as_str() == "w-2")
    );
    let down = hooks
        .iter()
        .find(|f| f.subject.key() == "validatingwebhookconfiguration/down")
        .unwrap();
    assert_eq!(down.hop, None);
    let api = findings(&r, "apiservice/unavailable", 1);
    assert_eq!(api[0].hop, None);
    assert!(api[0].message.contains("FailedDiscoveryCheck"));
    let crd = findings(&r, "crd/conversion-webhook", 1);
    assert_eq!(crd[0].severity, Severity::Warning);
}

// --- the report ---

#[test]
fn text_from_the_cluster_is_escaped_in_both_renderers() {
    let plan = plan_133_to_134(1, 1);
    let evidence = Evidence {
        api_services: found(vec![ApiService {
            name: "v1beta1.metrics.k8s.io".into(),
            service: Some("kube-system/metrics-server".into()),
            available: false,
            message: Some("down\u{1b}[2J\u{202e} <img src=x> [x](javascript:y)".into()),
            backends: vec![],
        }]),
        ..Evidence::default()
    };
    let r = evaluate(&plan, &evidence);
    assert_eq!(r.findings_of("apiservice/unavailable").count(), 1);
    let text = render::text(&r);
    assert!(!text.contains(['\u{1b}', '\u{202e}']), "{text}");
    assert!(text.contains("down\\u{1b}[2J\\u{202e}"), "{text}");
    let md = render::markdown_section(&r);
    assert!(!md.contains(['\u{1b}', '\u{202e}', '<']), "{md}");
    assert!(
        md.contains("&lt;img src=x&gt; \\[x\\](javascript:y)"),
        "{md}"
    );
}

#[test]
fn tables_past_four_months_are_reported_as_possibly_out_of_date() {
    let facts = FactTables::embedded();
    let fresh = facts.stale(date(2026, 11, 20));
    assert!(fresh.iter().all(|t| !t.stale), "{fresh:?}");
    let old = facts.stale(date(2026, 12, 23));
    assert_eq!(old.iter().filter(|t| t.stale).count(), 2);
    let state = cluster("v1.36.4", "3.6.9-0", 1, 0);
    let plan = PlanRequest::new(Target::Minor(Minor::new(1, 37)), date(2027, 2, 1))
        .options(PlanOptions {
            allow_unsupported_target: true,
            ..PlanOptions::default()
        })
        .plan(&state)
        .unwrap();
    let r = evaluate(&plan, &Evidence::default());
    assert!(r.tables.iter().all(|t| t.stale));
    assert_eq!(
        r.check("removed-api").unwrap().stale_tables,
        vec!["k8s-api-removals.json"]
    );
    assert!(
        r.check("drain/pdb-blocked")
            .unwrap()
            .stale_tables
            .is_empty()
    );
    assert!(render::text(&r).contains(
        "Note: k8s-api-removals.json is as of 2026-07-24, more than 4 months before 2027-02-01"
    ));
}

#[test]
fn reports_round_trip_through_json_and_yaml() {
    let plan = plan_120_to_125();
    let r = evaluate(&plan, &api_evidence());
    let json = render::to_json(&r);
    assert_eq!(serde_json::from_str::<Readiness>(&json).unwrap(), r);
    let yaml = render::to_yaml(&r);
    assert_eq!(serde_yaml_ng::from_str::<Readiness>(&yaml).unwrap(), r);
    let evidence = api_evidence();
    let text = serde_json::to_string(&evidence).unwrap();
    assert_eq!(Evidence::from_json(&text, "e.json").unwrap(), evidence);
}

#[test]
fn evidence_errors_name_the_field() {
    let err = Evidence::from_json(
        r#"{"nodes": [{"node": "w-1", "runtime": {"found": 3}}]}"#,
        "evidence.json",
    )
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("nodes[0].runtime.found"));
    assert!(
        err.to_string()
            .starts_with("evidence.json: nodes[0].runtime.found: invalid type"),
        "{err}"
    );
    let err = Evidence::from_yaml("nodes:\n  - node: \"bad name!\"\n", "e.yaml").unwrap_err();
    assert_eq!(err.field.as_deref(), Some("nodes[0].node"));
}

#[test]
fn plans_render_with_their_findings_per_hop_and_the_plan_text_unchanged() {
    let plan = plan_120_to_125();
    let r = evaluate(&plan, &api_evidence());
    let text = render::plan_text(&plan, &r);
    assert!(text.starts_with(&crate::plan::render::text(&plan)));
    assert!(text.contains("Hop 2: v1.21.14 -> v1.22.17"), "{text}");
    let md = render::plan_markdown(&plan, &r);
    assert!(md.starts_with(&crate::plan::render::markdown(&plan)));
    assert!(md.contains("accept: `removed-api:ingress/shop/web`"));
    insta::assert_snapshot!("readiness_text", render::text(&r));
    insta::assert_snapshot!("readiness_markdown", render::markdown_section(&r));
}
