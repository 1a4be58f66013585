use std::collections::HashMap;
use std::io::Write;

use base64::Engine;
use k8s_openapi::api::core::v1::{Endpoints, Pod as KPod};
use kube::api::DynamicObject;
use kupgrade_core::readiness::PodVolume;
use serde_json::json;

use super::cluster::{backends_by_service, parse_cluster_configuration};
use super::helm::manifest_objects;
use super::metrics::deprecated_requests;
use super::workloads::{read_budget, to_workloads};
use super::*;

const METRICS: &str = r#"# HELP apiserver_requested_deprecated_apis [ALPHA] Gauge of deprecated APIs that have been requested.
# TYPE apiserver_requested_deprecated_apis gauge
apiserver_requested_deprecated_apis{group="extensions",removed_release="1.22",resource="ingresses",subresource="",version="v1beta1"} 1
apiserver_requested_deprecated_apis{group="batch",removed_release="1.25",resource="cronjobs",subresource="status",version="v1beta1"} 1
apiserver_requested_deprecated_apis{group="policy",removed_release="1.25",resource="poddisruptionbudgets",subresource="",version="v1beta1"} 0
apiserver_request_total{code="200",verb="GET"} 12
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.76506368e+09
"#;

#[test]
fn deprecated_requests_come_with_their_removal_and_window() {
    let r = deprecated_requests("cp-1", METRICS).unwrap();
    assert_eq!(r.len(), 2, "{r:?}"); // the sample at 0 is skipped
    assert_eq!(r[0].group_version, "extensions/v1beta1");
    assert_eq!(r[0].resource, "ingresses");
    assert_eq!(r[0].subresource, None);
    assert_eq!(r[0].removed_release.as_deref(), Some("1.22"));
    assert_eq!(r[0].api_server, "cp-1");
    assert_eq!(r[0].since.unwrap().as_second(), 1_765_063_680);
    assert_eq!(r[1].subresource.as_deref(), Some("status"));
}

#[test]
fn metrics_labels_with_escapes_and_bad_lines() {
    let s = parse_metrics(
        "m{a=\"x\\\"y\",b=\"1\\\\2\\n\"} 3 1700000000\nother 1\n",
        &["m"],
    )
    .unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].labels["a"], "x\"y");
    assert_eq!(s[0].labels["b"], "1\\2\n");
    assert_eq!(s[0].value, 3.0);
    let e = parse_metrics("x 1\nm{a=\"open} 1\n", &["m"]).unwrap_err();
    assert!(e.contains("line 2"), "{e}");
    let e = parse_metrics("m{a=\"b\"} many\n", &["m"]).unwrap_err();
    assert!(e.contains("not a number"), "{e}");
    let e = deprecated_requests("cp", "apiserver_requested_deprecated_apis{group=\"x\"} 1\n")
        .unwrap_err();
    assert!(e.contains("no version or resource"), "{e}");
}

fn helm_value(release: &serde_json::Value, gzip: bool) -> Vec<u8> {
    let json = serde_json::to_vec(release).unwrap();
    let raw = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&json).unwrap();
        enc.finish().unwrap()
    } else {
        json
    };
    base64::engine::general_purpose::STANDARD
        .encode(raw)
        .into_bytes()
}

const MANIFEST: &str = "---\n# Source: shop/templates/ingress.yaml\napiVersion: extensions/v1beta1\nkind: Ingress\nmetadata:\n  name: web\n---\n# Source: shop/templates/empty.yaml\n---\napiVersion: apiextensions.k8s.io/v1beta1\nkind: CustomResourceDefinition\nmetadata:\n  name: carts.shop.example\n  namespace: ''\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: other\n";

#[test]
fn helm_releases_decode_from_base64_gzip_json() {
    let release = json!({"name": "shop", "namespace": "store", "version": 3,
        "info": {"status": "deployed"}, "manifest": MANIFEST});
    for gzip in [true, false] {
        let r = decode_release(&helm_value(&release, gzip)).unwrap();
        assert_eq!(
            (r.name.as_str(), r.namespace.as_str(), r.version),
            ("shop", "store", 3)
        );
        assert_eq!(r.status, "deployed");
        let kinds: Vec<_> = r
            .objects
            .iter()
            .map(|o| (o.api_version.as_str(), o.kind.as_str(), o.name.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("extensions/v1beta1", "Ingress", "web"),
                (
                    "apiextensions.k8s.io/v1beta1",
                    "CustomResourceDefinition",
                    "carts.shop.example"
                ),
                ("v1", "Service", "web"),
            ]
        );
        assert_eq!(r.objects[1].namespace, None);
        assert_eq!(r.objects[2].namespace.as_deref(), Some("other"));
    }
}

#[test]
fn a_bad_release_says_which_step_failed() {
    assert!(decode_release(b"%%%").unwrap_err().contains("not base64"));
    let gz_broken = base64::engine::general_purpose::STANDARD.encode([0x1f, 0x8b, 8, 0, 1, 2]);
    assert!(
        decode_release(gz_broken.as_bytes())
            .unwrap_err()
            .contains("gzip")
    );
    let not_json = base64::engine::general_purpose::STANDARD.encode("{nope");
    assert!(
        decode_release(not_json.as_bytes())
            .unwrap_err()
            .contains("JSON")
    );
    let e = manifest_objects("a: 1\n---\nkind: [\n").unwrap_err();
    assert!(e.contains("document 2"), "{e}");
}

fn budget(name: &str, v1: bool, selector: serde_json::Value, allowed: u32) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": if v1 { "policy/v1" } else { "policy/v1beta1" },
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"maxUnavailable": 0, "selector": selector, "unhealthyPodEvictionPolicy": "AlwaysAllow"},
        "status": {"disruptionsAllowed": allowed, "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 2}
    }))
    .unwrap()
}

fn pod(name: &str, labels: serde_json::Value, extra: serde_json::Value) -> KPod {
    let mut p = json!({
        "metadata": {"name": name, "namespace": "shop", "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f",
                                 "uid": "u", "controller": true}]},
        "spec": {"nodeName": "w-1", "containers": [{"name": "app"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    });
    if let serde_json::Value::Object(m) = extra {
        for (k, v) in m {
            p["spec"][k] = v;
        }
    }
    serde_json::from_value(p).unwrap()
}

#[test]
fn budgets_resolve_their_selectors_to_pods() {
    let budgets = [
        read_budget(
            &budget("web", true, json!({"matchLabels": {"app": "web"}}), 0),
            true,
        ),
        read_budget(
            &budget(
                "tier",
                true,
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}),
                0,
            ),
            true,
        ),
        read_budget(&budget("all-v1", true, json!({}), 1), true),
        read_budget(&budget("none-beta", false, json!({}), 1), false),
    ];
    assert_eq!(budgets[0].budget.spec.as_deref(), Some("maxUnavailable: 0"));
    assert!(budgets[0].budget.always_allows_unhealthy());
    assert!(budgets[0].budget.never_allows());
    let pods = [
        pod(
            "web-1",
            json!({"app": "web", "tier": "front"}),
            json!({
                "volumes": [{"name": "scratch", "emptyDir": {}}, {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}}]
            }),
        ),
        pod("db-1", json!({"app": "db"}), json!({})),
    ];
    let owners = HashMap::from([(
        (
            "ReplicaSet".to_string(),
            "shop".to_string(),
            "web-5d8f".to_string(),
        ),
        (Some("web".to_string()), Some(1)),
    )]);
    let local = HashMap::from([(
        ("shop".to_string(), "data-web-1".to_string()),
        "local-pv-1".to_string(),
    )]);
    let w = to_workloads(&pods, &budgets, &owners, &local);
    assert_eq!(w.budgets.len(), 4);
    assert_eq!(w.pods[0].budgets, ["all-v1", "tier", "web"]);
    assert_eq!(w.pods[1].budgets, ["all-v1"]);
    let owner = w.pods[0].owner.as_ref().unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.replicas),
        ("ReplicaSet", "web", Some(1))
    );
    assert_eq!(
        w.pods[0].volumes,
        [
            PodVolume::EmptyDir {
                name: "scratch".into()
            },
            PodVolume::LocalPersistentVolume {
                claim: "data-web-1".into(),
                volume: "local-pv-1".into()
            },
        ]
    );
    assert!(w.pods[0].healthy);
    assert_eq!(w.pods[0].node.as_ref().map(|n| n.as_str()), Some("w-1"));
}

/// A static pod's mirror is known by its annotation when it names no owner (as the seeded demo
/// cluster's and some kubelets' mirrors do): the readiness checks then leave it alone, as the
/// drain does, instead of calling it a bare pod.
#[test]
fn a_mirror_pod_without_an_owner_is_owned_by_its_node() {
    let mut mirror: serde_json::Value = json!({
        "metadata": {"name": "kube-apiserver-cp-1", "namespace": "kube-system",
            "annotations": {"kubernetes.io/config.mirror": "0123"}},
        "spec": {"nodeName": "cp-1", "containers": [{"name": "kube-apiserver"}]},
        "status": {"phase": "Running"}
    });
    let pods: Vec<KPod> = vec![serde_json::from_value(mirror.clone()).unwrap(), {
        mirror["metadata"]["annotations"] = json!({});
        mirror["metadata"]["name"] = json!("bare");
        serde_json::from_value(mirror).unwrap()
    }];
    let w = to_workloads(&pods, &[], &HashMap::new(), &HashMap::new());
    assert!(w.pods[0].is_mirror(), "{:?}", w.pods[0].owner);
    assert_eq!(w.pods[0].owner.as_ref().unwrap().name, "cp-1");
    assert!(!w.pods[1].is_mirror());
    assert!(w.pods[1].owner.is_none());
}

#[test]
fn services_map_to_their_pods_and_nodes() {
    let ep: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "hook", "namespace": "policy"},
        "subsets": [{
            "addresses": [{"ip": "10.0.0.1", "nodeName": "w-1", "targetRef": {"kind": "Pod", "name": "hook-a", "namespace": "policy"}}],
            "notReadyAddresses": [{"ip": "10.0.0.2", "nodeName": "w-2", "targetRef": {"kind": "Pod", "name": "hook-b"}}]
        }]
    }))
    .unwrap();
    let b = backends_by_service(&[ep]);
    let hook = &b["policy/hook"];
    assert_eq!(hook.len(), 2);
    assert_eq!(hook[0].pod, "policy/hook-a");
    assert!(hook[0].ready);
    assert_eq!(hook[1].node.as_ref().map(|n| n.as_str()), Some("w-2"));
    assert!(!hook[1].ready);
}

#[test]
fn kubeadm_cluster_configuration() {
    let c = parse_cluster_configuration(
        "apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\netcd:\n  local:\n    imageTag: 3.4.13-0\n    dataDir: /var/lib/etcd\nfeatureGates:\n  IPv6DualStack: true\n",
    )
    .unwrap();
    assert_eq!(c.api_version, "kubeadm.k8s.io/v1beta2");
    assert_eq!(c.etcd_image_tag.as_deref(), Some("3.4.13-0"));
    assert!(!c.external_etcd);
    assert_eq!(c.feature_gates.get("IPv6DualStack"), Some(&true));
    let ext = parse_cluster_configuration(
        "apiVersion: kubeadm.k8s.io/v1beta3\netcd:\n  external:\n    endpoints: [https://e:2379]\n",
    )
    .unwrap();
    assert!(ext.external_etcd);
    assert_eq!(ext.etcd_image_tag, None);
    let e = parse_cluster_configuration("apiVersion: kubeadm.k8s.io/v1beta3\nfeatureGates: [1]\n")
        .unwrap_err();
    assert!(e.contains("featureGates"), "{e}");
    assert!(
        parse_cluster_configuration("kind: X\n")
            .unwrap_err()
            .contains("apiVersion")
    );
}

#[test]
fn a_refusal_is_forbidden_and_a_missing_api_not_supported() {
    let api = |code: u16| {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("denied", "Forbidden").with_code(code),
        ))
    };
    assert_eq!(
        missing("GET /metrics", &api(403)).reason,
        MissingReason::Forbidden
    );
    assert!(
        missing("GET /metrics", &api(403))
            .detail
            .starts_with("GET /metrics: denied")
    );
    assert_eq!(missing("x", &api(404)).reason, MissingReason::NotSupported);
    assert_eq!(missing("x", &api(500)).reason, MissingReason::Failed);
}

#[test]
fn api_server_endpoints_become_urls_on_the_https_port() {
    let ep: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "kubernetes", "namespace": "default"},
        "subsets": [{
            "addresses": [{"ip": "10.0.0.11"}, {"ip": "fd00::12"}],
            "notReadyAddresses": [{"ip": "10.0.0.13"}, {"ip": "10.0.0.11"}],
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]
        }]
    }))
    .unwrap();
    assert_eq!(
        super::endpoint_urls(&ep),
        [
            "https://10.0.0.11:6443",
            "https://[fd00::12]:6443",
            "https://10.0.0.13:6443"
        ]
    );
}
