use super::*;
use serde_json::{Value, json};

fn node(name: &str, cp: bool, kubelet: &str, os: &str, ready: &str) -> KNode {
    let mut labels = json!({ "kubernetes.io/hostname": name, "topology.kubernetes.io/zone": "z1" });
    if cp {
        labels[CONTROL_PLANE_LABEL] = json!("");
    }
    from(json!({
        "metadata": { "name": name, "labels": labels },
        "status": {
            "nodeInfo": node_info(kubelet, os),
            "conditions": [{ "type": "Ready", "status": ready }]
        }
    }))
}

fn node_info(kubelet: &str, os: &str) -> Value {
    json!({
        "kubeletVersion": kubelet, "osImage": os, "kubeProxyVersion": kubelet,
        "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "containerd://1.7.0",
        "kernelVersion": "6.1.0", "machineID": "", "operatingSystem": "linux", "systemUUID": ""
    })
}

fn static_pod(component: &str, node: &str, image: &str) -> Pod {
    from(json!({
        "metadata": {
            "name": format!("{component}-{node}"), "namespace": "kube-system",
            "labels": { "component": component, "tier": "control-plane" },
            "annotations": { MIRROR_KEY: "x" }
        },
        "spec": { "nodeName": node, "containers": [{ "name": component, "image": image }] }
    }))
}

const MIRROR_KEY: &str = "kubernetes.io/config.mirror";

fn workload(kind: &str, name: &str, container: &str, image: &str) -> Value {
    json!({
        "metadata": { "name": name, "namespace": "kube-system" },
        "spec": {
            "selector": { "matchLabels": { "k8s-app": name } },
            "template": { "spec": { "containers": [{ "name": container, "image": image }] } }
        },
        "kind": kind
    })
}

fn config(cluster_configuration: &str) -> ConfigMap {
    from(json!({
        "metadata": { "name": "kubeadm-config", "namespace": "kube-system" },
        "data": { "ClusterConfiguration": cluster_configuration }
    }))
}

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn kubeadm_cluster() -> Objects {
    let mut pods = Vec::new();
    for cp in ["cp-1", "cp-2"] {
        pods.push(static_pod(
            "kube-apiserver",
            cp,
            "registry.k8s.io/kube-apiserver:v1.29.3",
        ));
        pods.push(static_pod(
            "kube-controller-manager",
            cp,
            "registry.k8s.io/kube-controller-manager:v1.29.3",
        ));
        pods.push(static_pod(
            "kube-scheduler",
            cp,
            "registry.k8s.io/kube-scheduler:v1.29.3",
        ));
        pods.push(static_pod("etcd", cp, "registry.k8s.io/etcd:3.5.12-0"));
    }
    Objects {
        nodes: vec![
            node(
                "w-1",
                false,
                "v1.28.9",
                "Rocky Linux 9.3 (Blue Onyx)",
                "True",
            ),
            node("cp-2", true, "v1.29.3", "Ubuntu 22.04.4 LTS", "False"),
            node("cp-1", true, "v1.29.3", "Ubuntu 22.04.4 LTS", "True"),
        ],
        pods,
        config: Some(config(
            "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nclusterName: prod\netcd:\n  local:\n    dataDir: /var/lib/etcd\nkubernetesVersion: v1.29.3\n",
        )),
        proxy: Some(from(workload(
            "DaemonSet",
            "kube-proxy",
            "kube-proxy",
            "registry.k8s.io/kube-proxy:v1.29.3",
        ))),
        dns: Some(from(workload(
            "Deployment",
            "coredns",
            "coredns",
            "registry.k8s.io/coredns/coredns:v1.11.1",
        ))),
        all_nodes: true,
        namespace: "kube-system".into(),
    }
}

fn v(s: &str) -> Option<KubeVersion> {
    Some(s.parse().unwrap())
}

#[test]
fn a_kubeadm_cluster_reads_completely() {
    let (state, problems) = kubeadm_cluster().to_state();
    assert_eq!(problems, vec![]);
    let names: Vec<&str> = state.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["cp-1", "cp-2", "w-1"]);
    assert_eq!(state.name.as_deref(), Some("prod"));
    assert_eq!(state.etcd, EtcdTopology::Stacked);
    assert_eq!(state.addons.kube_proxy, v("v1.29.3"));
    assert_eq!(state.addons.coredns, v("v1.11.1"));
    let cp1 = state.node("cp-1").unwrap();
    assert_eq!(cp1.roles, vec![Role::ControlPlane]);
    assert_eq!(
        cp1.versions,
        NodeVersions {
            kubelet: v("v1.29.3"),
            kube_apiserver: v("v1.29.3"),
            kube_controller_manager: v("v1.29.3"),
            kube_scheduler: v("v1.29.3"),
            etcd: v("3.5.12-0"),
            ..NodeVersions::default()
        }
    );
    assert_eq!(cp1.os.family, OsFamily::Debian);
    assert_eq!(cp1.os.release.as_deref(), Some("Ubuntu 22.04.4 LTS"));
    assert_eq!(cp1.zone(), Some("z1"));
    assert!(cp1.ready);
    assert!(!state.node("cp-2").unwrap().ready);
    let w1 = state.node("w-1").unwrap();
    assert_eq!(w1.roles, vec![Role::Worker]);
    assert_eq!(w1.os.family, OsFamily::Rhel);
    assert_eq!(
        w1.versions,
        NodeVersions {
            kubelet: v("v1.28.9"),
            ..NodeVersions::default()
        }
    );
}

#[test]
fn external_etcd_comes_from_the_cluster_configuration() {
    let mut objects = kubeadm_cluster();
    objects
        .pods
        .retain(|p| p.labels().get("component").map(String::as_str) != Some("etcd"));
    objects.config = Some(config(
        "kind: ClusterConfiguration\netcd:\n  external:\n    endpoints: [https://10.0.0.5:2379, https://10.0.0.6:2379]\n    caFile: /etc/etcd/ca.crt\n",
    ));
    let (state, problems) = objects.to_state();
    assert_eq!(problems, vec![]);
    assert_eq!(
        state.etcd,
        EtcdTopology::External {
            version: None,
            endpoints: vec![
                "https://10.0.0.5:2379".into(),
                "https://10.0.0.6:2379".into()
            ],
        }
    );
    assert_eq!(state.name, None);
}

#[test]
fn without_kubeadm_config_etcd_pods_decide_and_their_absence_is_a_problem() {
    let mut objects = kubeadm_cluster();
    objects.config = None;
    let (state, problems) = objects.to_state();
    assert_eq!(problems, vec![]);
    assert_eq!(state.etcd, EtcdTopology::Stacked);

    objects
        .pods
        .retain(|p| p.labels().get("component").map(String::as_str) != Some("etcd"));
    let (_, problems) = objects.to_state();
    assert_eq!(
        problems.iter().map(Problem::to_string).collect::<Vec<_>>(),
        [
            "configmap kube-system/kubeadm-config: data.ClusterConfiguration: not found, and no etcd static pods: cannot tell whether etcd is stacked or external"
        ]
    );
}

#[test]
fn every_unreadable_value_is_reported_by_object_and_field() {
    let mut objects = kubeadm_cluster();
    objects.pods[0] = static_pod(
        "kube-apiserver",
        "cp-1",
        "registry.k8s.io/kube-apiserver:latest",
    );
    objects.pods[1] = static_pod(
        "kube-controller-manager",
        "cp-1",
        "registry.k8s.io/kube-controller-manager@sha256:abcd",
    );
    objects.pods.push(static_pod(
        "kube-scheduler",
        "gone-1",
        "registry.k8s.io/kube-scheduler:v1.29.3",
    ));
    objects.nodes.push(node(
        "w-2",
        false,
        "1.29.x",
        "Flatcar Container Linux 3815.2.0",
        "True",
    ));
    let mut missing_info = node("w-3", false, "v1.29.3", "", "True");
    missing_info.status.as_mut().unwrap().node_info = None;
    objects.nodes.push(missing_info);
    objects.config = Some(config("etcd: [not, a, map]"));
    objects.dns = Some(from(workload(
        "Deployment",
        "coredns",
        "coredns",
        "localhost:5000/coredns",
    )));
    let (state, problems) = objects.to_state();
    let text: Vec<String> = problems.iter().map(Problem::to_string).collect();
    assert_eq!(
        text[..6],
        [
            r#"node w-2: status.nodeInfo.kubeletVersion "1.29.x": not a version: unexpected character 'x' in patch"#,
            "node w-3: status.nodeInfo.kubeletVersion: missing",
            "node w-3: status.nodeInfo.osImage: missing",
            r#"pod kube-system/kube-apiserver-cp-1: spec.containers[0].image "registry.k8s.io/kube-apiserver:latest": tag is not a version"#,
            r#"pod kube-system/kube-controller-manager-cp-1: spec.containers[0].image "registry.k8s.io/kube-controller-manager@sha256:abcd": image has no tag, so its version is unknown"#,
            r#"pod kube-system/kube-scheduler-gone-1: spec.nodeName "gone-1": no such node"#,
        ]
    );
    assert!(
        text[6].starts_with("configmap kube-system/kubeadm-config: data.ClusterConfiguration: not a ClusterConfiguration: "),
        "{}",
        text[6]
    );
    assert_eq!(
        text[7],
        r#"deployment kube-system/coredns: spec.template.spec.containers[0].image "localhost:5000/coredns": image has no tag, so its version is unknown"#
    );
    assert_eq!(text.len(), 8);
    // What could be read is still read (callers see only the error, but nothing is invented).
    assert_eq!(state.node("cp-1").unwrap().versions.kube_apiserver, None);
    assert_eq!(state.node("w-2").unwrap().os.family, OsFamily::Other);
}

#[test]
fn label_selected_discovery_ignores_pods_on_other_nodes_and_reads_legacy_master() {
    let mut objects = kubeadm_cluster();
    objects.all_nodes = false;
    objects.nodes.retain(|n| n.name_any() != "cp-2");
    let legacy = objects
        .nodes
        .iter_mut()
        .find(|n| n.name_any() == "cp-1")
        .unwrap();
    let labels = legacy.metadata.labels.as_mut().unwrap();
    labels.remove(CONTROL_PLANE_LABEL);
    labels.insert(LEGACY_MASTER_LABEL.into(), String::new());
    let (state, problems) = objects.to_state();
    assert_eq!(problems, vec![]);
    assert_eq!(state.nodes.len(), 2);
    assert!(state.node("cp-1").unwrap().is_control_plane());
}

#[test]
fn two_pods_of_one_component_on_a_node_is_a_problem() {
    let mut objects = kubeadm_cluster();
    let mut dup = static_pod("etcd", "cp-1", "registry.k8s.io/etcd:3.5.9-0");
    dup.metadata.name = Some("etcd-cp-1-old".into());
    objects.pods.push(dup);
    let (_, problems) = objects.to_state();
    assert_eq!(
        problems.iter().map(Problem::to_string).collect::<Vec<_>>(),
        [
            r#"pod kube-system/etcd-cp-1-old: metadata.labels.component "etcd": node cp-1 already runs etcd in pod kube-system/etcd-cp-1"#
        ]
    );
}

#[test]
fn image_tags_and_os_families() {
    assert_eq!(
        image_tag("registry.k8s.io/kube-proxy:v1.29.3"),
        Some("v1.29.3")
    );
    assert_eq!(
        image_tag("localhost:5000/kube-proxy:v1.29.3"),
        Some("v1.29.3")
    );
    assert_eq!(image_tag("localhost:5000/kube-proxy"), None);
    assert_eq!(image_tag("kube-proxy:v1.29.3@sha256:0123"), Some("v1.29.3"));
    assert_eq!(image_tag("kube-proxy@sha256:0123"), None);
    assert_eq!(image_tag("kube-proxy:"), None);
    // The node's osImage is read by kupgrade-core's family_of_os_image (its tests go through
    // the images one by one).
    assert_eq!(os_family("Rocky Linux 9.3 (Blue Onyx)"), OsFamily::Rhel);
    assert_eq!(os_family("openSUSE MicroOS"), OsFamily::Other);
}
