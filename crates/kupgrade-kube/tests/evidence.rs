//! Readiness evidence gathered from a real kube-apiserver v1.20.2 (which still serves the APIs
//! 1.22 and 1.25 remove), then evaluated by the catalogue against a plan from 1.20.
//!
//! Reads `KUPGRADE_TEST_KUBECONFIG` like `tests/apiserver.rs`; the harness in `support` plays
//! the kubelet and the disruption controller (it writes budgets' status).
#[path = "support/rbac.rs"]
mod rbac;
mod support;

use std::io::Write;

use base64::Engine;
use jiff::civil::date;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kupgrade_core::plan::{PlanRequest, UpgradePlan};
use kupgrade_core::readiness::{ApiObject, Catalogue, Coverage, Evidence, Gathered, MissingReason};
use kupgrade_kube::evidence::{GatherOptions, gather};
use serde_json::json;
use support::{Kind, NodeSpec, labels};

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// A plan from 1.20 to 1.25 for a cluster of `nodes` (the first is the control plane).
fn plan_from_1_20(nodes: &[&str]) -> UpgradePlan {
    let mut yaml = String::from("nodes:\n");
    for (i, n) in nodes.iter().enumerate() {
        if i == 0 {
            yaml += &format!(
                "  - name: {n}\n    roles: [control-plane]\n    versions: {{ kubelet: v1.20.2, kubeadm: v1.20.2, kube-apiserver: v1.20.2, kube-controller-manager: v1.20.2, kube-scheduler: v1.20.2, etcd: 3.4.13-0 }}\n"
            );
        } else {
            yaml +=
                &format!("  - name: {n}\n    versions: {{ kubelet: v1.20.2, kubeadm: v1.20.2 }}\n");
        }
    }
    let cluster = kupgrade_core::inventory::parse(&yaml, "cluster.yaml").unwrap();
    PlanRequest::new("1.25".parse().unwrap(), date(2022, 10, 1))
        .plan(&cluster)
        .unwrap()
}

/// The hop of `plan` that reaches `minor`.
fn hop_to(plan: &UpgradePlan, minor: u64) -> Option<usize> {
    plan.hops.iter().position(|h| h.to.minor_number() == minor)
}

/// A Helm 3 release secret as Helm writes it: the release's JSON, gzip, base64, in the
/// secret's `release` key.
fn helm_secret(ns: &str, release: &str, manifest: &str) -> Secret {
    let body = serde_json::to_vec(&json!({
        "name": release, "namespace": ns, "version": 1,
        "info": {"status": "deployed"}, "manifest": manifest,
        "chart": {"metadata": {"name": release, "version": "0.1.0"}},
    }))
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&body).unwrap();
    let text = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
    serde_json::from_value(json!({
        "metadata": {"name": format!("sh.helm.release.v1.{release}.v1"), "namespace": ns,
                     "labels": {"owner": "helm", "name": release, "status": "deployed", "version": "1"}},
        "type": "helm.sh/release.v1",
        // The API's own base64 over Helm's: the client undoes the first, `data` holds Helm's text.
        "data": {"release": base64::engine::general_purpose::STANDARD.encode(text.as_bytes())},
    }))
    .unwrap()
}

fn named<'a>(objects: &'a [ApiObject], ns: Option<&str>, name: &str) -> Vec<&'a ApiObject> {
    objects
        .iter()
        .filter(|o| o.name == name && o.namespace.as_deref() == ns)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deprecated_apis_are_found_by_each_tier_and_land_on_the_hop_that_removes_them() {
    let Some((_, scope)) = support::scope("deprecated").await else {
        return;
    };
    let ns = scope.ns.clone();
    let client = scope.client.clone();
    let backend = json!({"serviceName": "web", "servicePort": 80});

    // Writers: objects written through the APIs 1.22 and 1.25 remove.
    scope
        .create_dynamic(
            &ns,
            &resource("extensions", "v1beta1", "Ingress", "ingresses"),
            json!({"apiVersion": "extensions/v1beta1", "kind": "Ingress",
                   "metadata": {"name": "old-web"}, "spec": {"backend": backend}}),
        )
        .await
        .unwrap();
    let applied = json!({"apiVersion": "networking.k8s.io/v1beta1", "kind": "Ingress",
                         "metadata": {"name": "shop", "namespace": ns}, "spec": {"backend": backend}});
    scope
        .create_dynamic(
            &ns,
            &resource("networking.k8s.io", "v1beta1", "Ingress", "ingresses"),
            json!({"apiVersion": "networking.k8s.io/v1beta1", "kind": "Ingress",
                   "metadata": {"name": "shop", "annotations": {
                       "kubectl.kubernetes.io/last-applied-configuration": applied.to_string()}},
                   "spec": {"backend": backend}}),
        )
        .await
        .unwrap();
    scope
        .create_dynamic(
            &ns,
            &resource("batch", "v1beta1", "CronJob", "cronjobs"),
            json!({"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "nightly"},
                   "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
                       "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "registry.example/job:v1"}]}}}}}}),
        )
        .await
        .unwrap();
    let pdb = scope.budget(&labels(&[("app", "old")]), 1).await.unwrap();
    let crd_name = format!("widgets.{}.example.com", scope.id);
    let crd_ar = resource(
        "apiextensions.k8s.io",
        "v1beta1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
    );
    Api::<DynamicObject>::all_with(client.clone(), &crd_ar)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "apiextensions.k8s.io/v1beta1", "kind": "CustomResourceDefinition",
                "metadata": {"name": crd_name},
                "spec": {"group": format!("{}.example.com", scope.id), "version": "v1", "scope": "Namespaced",
                         "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    scope.delete_later(format!(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd_name}"
    ));
    // Manifests: a Helm release that will apply a removed Ingress and CronJob again.
    let manifest = "---\n# Source: shop/templates/ingress.yaml\napiVersion: extensions/v1beta1\nkind: Ingress\nmetadata:\n  name: helm-web\nspec:\n  backend:\n    serviceName: web\n    servicePort: 80\n---\n# Source: shop/templates/cron.yaml\napiVersion: batch/v1beta1\nkind: CronJob\nmetadata:\n  name: helm-cron\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n";
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &helm_secret(&ns, "shop", manifest))
        .await
        .unwrap();

    let evidence = gather(&client, &GatherOptions::default()).await;

    // Tier 1: the server counted the requests above, for the APIs it marks deprecated (1.20
    // marks those 1.22 removes; batch/v1beta1 and policy/v1beta1 only from 1.21 on, so on
    // this server only the other tiers see the CronJob and the budget).
    let requests = evidence
        .api_requests
        .found()
        .expect("metrics readable by admin");
    for (gv, resource) in [
        ("extensions/v1beta1", "ingresses"),
        ("networking.k8s.io/v1beta1", "ingresses"),
        ("apiextensions.k8s.io/v1beta1", "customresourcedefinitions"),
    ] {
        assert!(
            requests
                .iter()
                .any(|r| r.group_version == gv && r.resource == resource && r.since.is_some()),
            "no request of {gv} {resource} in {requests:#?}"
        );
    }
    // Tier 2: managedFields name the version each object was written through.
    let writers = evidence.api_writers.found().expect("writers");
    for (name, av, kind) in [
        ("old-web", "extensions/v1beta1", "Ingress"),
        ("shop", "networking.k8s.io/v1beta1", "Ingress"),
        ("nightly", "batch/v1beta1", "CronJob"),
        (pdb.as_str(), "policy/v1beta1", "PodDisruptionBudget"),
    ] {
        let found = named(writers, Some(&ns), name);
        assert!(
            found.iter().any(|o| o.api_version == av && o.kind == kind),
            "{kind} {name} through {av}: {found:#?}"
        );
    }
    let crd = named(writers, None, &crd_name);
    assert!(
        crd.iter()
            .any(|o| o.api_version == "apiextensions.k8s.io/v1beta1"),
        "{crd:#?}"
    );
    // Tier 3: the Helm release's removed objects, and the last-applied manifest.
    let manifests = evidence.api_manifests.found().expect("manifests");
    let helm_web = named(manifests, Some(&ns), "helm-web");
    assert_eq!(helm_web.len(), 1, "{manifests:#?}");
    assert_eq!(helm_web[0].api_version, "extensions/v1beta1");
    assert!(
        helm_web[0].via.contains("Helm release"),
        "{}",
        helm_web[0].via
    );
    assert_eq!(named(manifests, Some(&ns), "helm-cron")[0].kind, "CronJob");
    assert!(
        named(manifests, Some(&ns), "web").is_empty(),
        "a Service is not removed"
    );
    let last = named(manifests, Some(&ns), "shop");
    assert!(
        last.iter()
            .any(|o| o.api_version == "networking.k8s.io/v1beta1"
                && o.via.contains("last-applied-configuration")),
        "{last:#?}"
    );

    // The catalogue puts each on the hop that removes its API.
    let plan = plan_from_1_20(&["cp-1", "w-1"]);
    let readiness = Catalogue::embedded().evaluate(&plan, &evidence);
    let hop_of = |key: &str| {
        readiness
            .findings_of("removed-api")
            .find(|f| f.key() == key)
            .unwrap_or_else(|| {
                panic!(
                    "no finding {key} in {:#?}",
                    readiness
                        .findings_of("removed-api")
                        .map(|f| f.key())
                        .collect::<Vec<_>>()
                )
            })
            .hop
    };
    let (to_122, to_125) = (hop_to(&plan, 22), hop_to(&plan, 25));
    assert!(to_122.is_some() && to_125.is_some());
    assert_eq!(hop_of(&format!("removed-api:ingress/{ns}/old-web")), to_122);
    assert_eq!(
        hop_of(&format!("removed-api:ingress/{ns}/helm-web")),
        to_122
    );
    assert_eq!(
        hop_of(&format!("removed-api:customresourcedefinition/{crd_name}")),
        to_122
    );
    assert_eq!(hop_of(&format!("removed-api:cronjob/{ns}/nightly")), to_125);
    assert_eq!(
        hop_of(&format!("removed-api:poddisruptionbudget/{ns}/{pdb}")),
        to_125
    );
    assert_eq!(
        readiness.check("removed-api").unwrap().coverage,
        Coverage::Checked
    );
    scope.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_denied_by_rbac_make_the_requests_tier_not_checkable() {
    let Some(env) = support::env().await else {
        return;
    };
    // A user without grants: GET /metrics is forbidden; the rest is read as admin.
    let denied = support::impersonating(&env, "kupgrade-no-metrics", &[]).await;
    let options = GatherOptions {
        api_servers: vec![("cp-1".to_string(), denied)],
        ..GatherOptions::default()
    };
    let evidence: Evidence = gather(&env.client, &options).await;
    match &evidence.api_requests {
        Gathered::Missing(m) => {
            assert_eq!(m.reason, MissingReason::Forbidden, "{m}");
            assert!(m.detail.contains("GET /metrics on cp-1"), "{m}");
        }
        found => panic!("a refused /metrics is not a pass: {found:?}"),
    }
    assert!(evidence.api_writers.found().is_some());
    let plan = plan_from_1_20(&["cp-1", "w-1"]);
    let readiness = Catalogue::embedded().evaluate(&plan, &evidence);
    let coverage = &readiness.check("removed-api").unwrap().coverage;
    assert_ne!(coverage, &Coverage::Checked);
    assert!(
        format!("{coverage:?}").contains("forbidden"),
        "the coverage says why: {coverage:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_that_never_allow_a_disruption_on_every_node_are_a_named_deadlock() {
    let Some((_, scope)) = support::scope("deadlock").await else {
        return;
    };
    let cp = scope.node("cp", NodeSpec::control_plane("v1.20.2")).await;
    let mut workers = Vec::new();
    for w in ["w1", "w2", "w3"] {
        let node = scope.node(w, NodeSpec::worker("v1.20.2")).await;
        scope
            .pod(&node, Kind::Replicated, &labels(&[("app", "db")]))
            .await
            .unwrap();
        workers.push(node);
    }
    // One pod under two budgets.
    let web = scope
        .pod(
            &workers[0],
            Kind::Replicated,
            &labels(&[("app", "web"), ("tier", "front")]),
        )
        .await
        .unwrap();
    // maxUnavailable 0 over the db pods; the harness writes the status a disruption
    // controller would (0 allowed).
    let db = scope.budget(&labels(&[("app", "db")]), 0).await.unwrap();
    let web_a = scope.budget(&labels(&[("app", "web")]), 1).await.unwrap();
    let web_b = scope
        .budget(&labels(&[("tier", "front")]), 1)
        .await
        .unwrap();

    let evidence = gather(&scope.client, &GatherOptions::default()).await;
    let workloads = evidence.workloads.found().expect("workloads");
    let budget = workloads
        .budgets
        .iter()
        .find(|b| b.namespace == scope.ns && b.name == db)
        .unwrap();
    assert_eq!((budget.disruptions_allowed, budget.expected_pods), (0, 3));
    assert!(budget.never_allows());
    let web_pod = workloads
        .pods
        .iter()
        .find(|p| p.namespace == scope.ns && p.name == web.name)
        .unwrap();
    let mut both = [web_a.clone(), web_b.clone()];
    both.sort();
    assert_eq!(web_pod.budgets, both);

    let names: Vec<&str> = std::iter::once(cp.as_str())
        .chain(workers.iter().map(|w| w.as_str()))
        .collect();
    let plan = plan_from_1_20(&names);
    let readiness = Catalogue::embedded().evaluate(&plan, &evidence);
    let deadlock: Vec<_> = readiness.findings_of("drain/deadlock").collect();
    assert!(
        deadlock
            .iter()
            .any(|f| f.key() == format!("drain/deadlock:pdb/{}/{db}", scope.ns)),
        "{:#?}",
        deadlock.iter().map(|f| f.key()).collect::<Vec<_>>()
    );
    let multi: Vec<_> = readiness.findings_of("drain/multi-pdb").collect();
    assert!(
        multi.iter().any(
            |f| f.key() == format!("drain/multi-pdb:pod/{}/{}", scope.ns, web.name)
                && f.hop.is_none_or(|h| h == 0)
        ),
        "{:#?}",
        multi.iter().map(|f| (f.key(), f.hop)).collect::<Vec<_>>()
    );
    scope.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_api_server_is_read_on_its_own_and_an_unreachable_one_is_not_a_pass() {
    let Some(env) = support::env().await else {
        return;
    };
    let config = kupgrade_kube::kubeconfig_config(&env.kubeconfig, None)
        .await
        .unwrap();
    // The test server never writes its Endpoints (its address is a loopback one): none, and
    // the endpoints are named here: the server itself, by its address, and one that is down.
    assert_eq!(
        kupgrade_kube::evidence::api_server_endpoints(&env.client)
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    let url = config.cluster_url.to_string();
    let url = url.trim_end_matches('/');
    let up = kupgrade_kube::evidence::client_for(&config, url).unwrap();
    let options = GatherOptions {
        api_servers: vec![("cp-1".to_string(), up.clone())],
        ..GatherOptions::default()
    };
    let evidence = gather(&env.client, &options).await;
    let requests = evidence.api_requests.found().expect("cp-1 answers");
    assert!(requests.iter().all(|r| r.api_server == "cp-1"));

    let down = kupgrade_kube::evidence::client_for(&config, "https://127.0.0.1:1").unwrap();
    let options = GatherOptions {
        api_servers: vec![("cp-1".to_string(), up), ("cp-2".to_string(), down)],
        ..GatherOptions::default()
    };
    match gather(&env.client, &options).await.api_requests {
        Gathered::Missing(m) => {
            assert_eq!(m.reason, MissingReason::Unreachable, "{m}");
            assert!(m.detail.contains("cp-2"), "{m}");
        }
        found => panic!("cp-2's requests are unknown: {found:?}"),
    }
    assert!(kupgrade_kube::evidence::client_for(&config, "not a url").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_evidence_rbac_manifest_grants_every_piece() {
    let Some((env, scope)) = support::scope("evidencerbac").await else {
        return;
    };
    rbac::apply(&scope, &["namespace.yaml", "evidence.yaml"]).await;
    let sa = "system:serviceaccount:kupgrade-system:kupgrade-evidence";
    let groups = [
        "system:serviceaccounts",
        "system:serviceaccounts:kupgrade-system",
    ];
    let client = support::impersonating(&env, sa, &groups).await;
    let evidence = gather(&client, &GatherOptions::default()).await;
    let refused = |name: &str, missing: Option<&kupgrade_core::readiness::Missing>| {
        assert!(missing.is_none(), "{name}: {missing:?}");
    };
    refused("apiRequests", evidence.api_requests.get().err());
    refused("apiWriters", evidence.api_writers.get().err());
    refused("apiManifests", evidence.api_manifests.get().err());
    refused("workloads", evidence.workloads.get().err());
    refused("webhooks", evidence.webhooks.get().err());
    refused("apiServices", evidence.api_services.get().err());
    refused("crds", evidence.crds.get().err());
    // kubeadm-config exists only while another test builds a kubeadm cluster: found, or
    // absent, never forbidden.
    if let Gathered::Missing(m) = &evidence.kubeadm_config {
        assert_eq!(m.reason, MissingReason::NotSupported, "{m}");
    }
    // Without the grants, the same user sees every piece refused.
    let other = support::impersonating(
        &env,
        "system:serviceaccount:kupgrade-system:nobody",
        &groups,
    )
    .await;
    let denied = gather(&other, &GatherOptions::default()).await;
    for (name, g) in [
        ("apiRequests", denied.api_requests.get().err()),
        ("workloads", denied.workloads.get().err()),
        ("webhooks", denied.webhooks.get().err()),
    ] {
        assert_eq!(
            g.map(|m| m.reason),
            Some(MissingReason::Forbidden),
            "{name}"
        );
    }
    scope.cleanup().await;
}

/// Validating and mutating webhooks are both read, each with its configuration's kind and
/// name, its failure policy (the server defaults an unset one to `Fail`) and its service.
#[tokio::test]
async fn validating_and_mutating_webhooks_are_read_alike() {
    use k8s_openapi::api::admissionregistration::v1::{
        MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
    };
    let Some((_, scope)) = support::scope("webhooks").await else {
        return;
    };
    // No rules: they match no request, so the other tests' requests never call them.
    let hook = |name: &str, policy: Option<&str>| {
        let mut w = json!({ "name": name, "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "clientConfig": { "service": { "namespace": scope.ns, "name": "guard" } }, "rules": [] });
        if let Some(p) = policy {
            w["failurePolicy"] = json!(p);
        }
        w
    };
    let (validating, mutating) = (format!("{}-v", scope.id), format!("{}-m", scope.id));
    let v: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": { "name": validating }, "webhooks": [hook("check.kupgrade.test", Some("Ignore"))]
    }))
    .unwrap();
    let m: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": { "name": mutating }, "webhooks": [hook("mutate.kupgrade.test", None)]
    }))
    .unwrap();
    let (v_api, m_api) = (
        Api::all(scope.client.clone()),
        Api::all(scope.client.clone()),
    );
    v_api.create(&PostParams::default(), &v).await.unwrap();
    m_api.create(&PostParams::default(), &m).await.unwrap();

    let evidence = gather(&scope.client, &GatherOptions::default()).await;
    let _ = v_api.delete(&validating, &Default::default()).await;
    let _ = m_api.delete(&mutating, &Default::default()).await;
    let webhooks = evidence.webhooks.found().expect("webhooks");
    let ours: Vec<_> = (webhooks.iter())
        .filter(|w| w.configuration == validating || w.configuration == mutating)
        .map(|w| {
            let kind = w.configuration_kind.as_str();
            let service = w.service.as_deref();
            (kind, w.name.as_str(), w.failure_policy.as_str(), service)
        })
        .collect();
    let service = format!("{}/guard", scope.ns);
    assert_eq!(
        ours,
        [
            (
                "ValidatingWebhookConfiguration",
                "check.kupgrade.test",
                "Ignore",
                Some(&*service)
            ),
            (
                "MutatingWebhookConfiguration",
                "mutate.kupgrade.test",
                "Fail",
                Some(&*service)
            ),
        ]
    );
    scope.cleanup().await;
}
