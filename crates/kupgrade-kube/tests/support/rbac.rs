//! The RBAC manifests of `examples/rbac` applied to the test server, for the tests that check
//! what they grant (included by path: kupgrade-exec, which includes `support`, has no YAML
//! parser).
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use crate::support::{Scope, api_prefix};

/// Applies the manifests `files` of examples/rbac (server-side apply), to be deleted with
/// `scope`, and returns how many objects.
pub async fn apply(scope: &Scope, files: &[&str]) -> usize {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/rbac");
    let mut count = 0;
    for file in files {
        let text = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(doc).unwrap();
            let kind = value["kind"].as_str().unwrap();
            let ar = rbac_resource(kind).unwrap_or_else(|| {
                panic!("{file}: the RBAC manifests hold only RBAC objects, found {kind}")
            });
            let name = value["metadata"]["name"].as_str().unwrap().to_string();
            let ns = value["metadata"]["namespace"].as_str();
            let api: Api<DynamicObject> = match ns {
                Some(ns) => Api::namespaced_with(scope.client.clone(), ns, &ar),
                None => Api::all_with(scope.client.clone(), &ar),
            };
            api.patch(
                &name,
                &PatchParams::apply("kupgrade-tests").force(),
                &Patch::Apply(&value),
            )
            .await
            .unwrap_or_else(|e| panic!("{file}: apply {kind} {name}: {e}"));
            let ns = ns.map(|n| format!("/namespaces/{n}")).unwrap_or_default();
            scope.delete_later(format!("{}{ns}/{}/{name}", api_prefix(&ar), ar.plural));
            count += 1;
        }
    }
    count
}

/// The API resource of a kind the RBAC manifests hold.
fn rbac_resource(kind: &str) -> Option<ApiResource> {
    let (group, plural) = match kind {
        "Namespace" => ("", "namespaces"),
        "ServiceAccount" => ("", "serviceaccounts"),
        "ClusterRole" => ("rbac.authorization.k8s.io", "clusterroles"),
        "ClusterRoleBinding" => ("rbac.authorization.k8s.io", "clusterrolebindings"),
        "Role" => ("rbac.authorization.k8s.io", "roles"),
        "RoleBinding" => ("rbac.authorization.k8s.io", "rolebindings"),
        _ => return None,
    };
    let api_version = if group.is_empty() {
        "v1".to_string()
    } else {
        format!("{group}/v1")
    };
    Some(ApiResource {
        group: group.into(),
        version: "v1".into(),
        api_version,
        kind: kind.into(),
        plural: plural.into(),
    })
}
