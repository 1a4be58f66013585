//! The test harness for the real API server: it plays the parts a cluster has and the test
//! server lacks (kubelet, controllers), as kwok does.
//!
//! - [`env`] reads `KUPGRADE_TEST_KUBECONFIG` (written by `scripts/testenv.sh up DIR`).
//! - [`Scope`] gives a test its own namespace and node names, so tests run in parallel, and
//!   removes everything at the end (also when the test panics).
//! - Nodes are created shaped like a kubeadm cluster's (labels, `nodeInfo`, Ready).
//! - Pods are created bound to a node and marked Running and Ready through `/status`.
//! - PodDisruptionBudgets are created as `policy/v1beta1` (all a 1.20 server has) and their
//!   status computed by the harness (no disruption controller runs).
//! - A simulated kubelet per scope watches the scope's namespace: it finalizes pods marked for
//!   deletion (delete with grace 0) and completes node-command pods with the exit code and
//!   message the test chose.
//! - `rbac.rs` (not a submodule here either: kupgrade-exec has no YAML parser) applies the
//!   RBAC manifests of `examples/rbac`.
//! - `kubelet.rs` (not a submodule here: `tests/pod_runner.rs` includes it, as it needs TLS)
//!   is a kubelet that really runs node-command pods as local processes and serves their logs.
//!
//! kupgrade-exec's `tests/kubectl_ops.rs` includes this module too.
#![allow(dead_code)]

pub mod cluster_ops;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node as KNode, Pod};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use kupgrade_core::ports::{DrainOptions, DrainReport, OpsError, PodRef};
use kupgrade_core::{KubeVersion, NodeName};
use serde_json::{Value, json};

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The test server's connection.
#[derive(Clone)]
pub struct Env {
    /// An admin client (system:masters), kube's retry off.
    pub client: Client,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The kubeconfig of user `limited`, who has no RBAC grants.
    pub limited: Option<PathBuf>,
}

/// The test server, or `None` (after saying so) when there is none and none is required.
pub async fn env() -> Option<Env> {
    let Some(path) = std::env::var_os("KUPGRADE_TEST_KUBECONFIG") else {
        if std::env::var("KUPGRADE_REQUIRE_REAL_SERVERS").as_deref() == Ok("1") {
            panic!(
                "KUPGRADE_REQUIRE_REAL_SERVERS=1 but KUPGRADE_TEST_KUBECONFIG is not set: start the \
                 test apiserver (scripts/testenv.sh up DIR; source DIR/env), or run scripts/test.sh"
            );
        }
        println!("skipped: no test apiserver (run scripts/test.sh)");
        return None;
    };
    let kubeconfig = PathBuf::from(path);
    let config = kupgrade_kube::kubeconfig_config(&kubeconfig, None)
        .await
        .unwrap_or_else(|e| panic!("test kubeconfig: {e}"));
    let client = kupgrade_kube::client(config).unwrap_or_else(|e| panic!("test client: {e}"));
    let limited = std::env::var_os("KUPGRADE_TEST_KUBECONFIG_LIMITED").map(PathBuf::from);
    Some(Env {
        client,
        kubeconfig,
        limited,
    })
}

/// The test server and a [`Scope`] on it for `test`, or `None` (after saying so) when there is
/// none and none is required.
pub async fn scope(test: &str) -> Option<(Env, Scope)> {
    let env = env().await?;
    let scope = Scope::new(&env, test).await;
    Some((env, scope))
}

/// A client for the admin user impersonating `user` (and `groups`).
pub async fn impersonating(env: &Env, user: &str, groups: &[&str]) -> Client {
    let mut config = kupgrade_kube::kubeconfig_config(&env.kubeconfig, None)
        .await
        .unwrap();
    config.auth_info.impersonate = Some(user.to_string());
    config.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
    kupgrade_kube::client(config).unwrap()
}

/// What the simulated kubelet does with a node-command pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The container exits with this code; the kubelet writes this termination message.
    Exit(i32, String),
    /// The container starts and never ends.
    Hang,
}

type Replier = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// Runs a node-command pod's shell line with the local `sh` in `dir`, as the node's shell
/// would after `nsenter`, and replies with its exit code and its output (stdout then stderr,
/// lossy UTF-8) as the termination message. Only for lines the test chose to run.
pub fn run_here(line: &str, dir: &std::path::Path) -> Reply {
    match std::process::Command::new("sh")
        .arg("-c")
        .arg(line)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(out) => {
            let mut message = out.stdout;
            message.extend_from_slice(&out.stderr);
            Reply::Exit(
                out.status.code().unwrap_or(128),
                String::from_utf8_lossy(&message).into_owned(),
            )
        }
        Err(e) => Reply::Exit(127, format!("sh: {e}")),
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// One test's corner of the server.
pub struct Scope {
    pub env: Env,
    pub client: Client,
    /// A short unique id; node names start with it.
    pub id: String,
    /// The test's namespace.
    pub ns: String,
    nodes: Mutex<Vec<String>>,
    pods: AtomicUsize,
    kubelet: Option<tokio::task::JoinHandle<()>>,
    extra_kubelets: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    replier: Arc<Mutex<Option<Replier>>>,
    /// Extra objects to delete at the end: (api path, name).
    extra: Mutex<Vec<String>>,
    cleaned: bool,
}

impl Scope {
    /// A scope with a simulated kubelet that finalizes deleted pods.
    pub async fn new(env: &Env, test: &str) -> Scope {
        Self::with_kubelet(env, test, true).await
    }

    /// A scope; `finalize` false leaves deleted pods terminating forever (no kubelet).
    pub async fn with_kubelet(env: &Env, test: &str, finalize: bool) -> Scope {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let short: String = test
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(10)
            .collect();
        let id = format!("{}-{}{n}", short.to_lowercase(), std::process::id() % 10000);
        let ns = format!("t-{id}");
        let client = env.client.clone();
        let api: Api<Namespace> = Api::all(client.clone());
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": ns } })).unwrap(),
        )
        .await
        .unwrap_or_else(|e| panic!("create namespace {ns}: {e}"));
        let replier: Arc<Mutex<Option<Replier>>> = Arc::default();
        let kubelet = Some(tokio::spawn(kubelet(
            client.clone(),
            ns.clone(),
            finalize,
            replier.clone(),
        )));
        Scope {
            env: env.clone(),
            client,
            id,
            ns,
            nodes: Mutex::default(),
            pods: AtomicUsize::new(0),
            kubelet,
            extra_kubelets: Mutex::default(),
            replier,
            extra: Mutex::default(),
            cleaned: false,
        }
    }

    /// How the simulated kubelet answers node-command pods (by their shell line).
    pub fn reply_with(&self, f: impl Fn(&str) -> Reply + Send + Sync + 'static) {
        *self.replier.lock().unwrap() = Some(Arc::new(f));
    }

    /// Runs a simulated kubelet for `ns` too (finalizing, answering command pods), until the
    /// scope ends.
    pub fn kubelet_for(&self, ns: &str) {
        let task = tokio::spawn(kubelet(
            self.client.clone(),
            ns.to_string(),
            true,
            self.replier.clone(),
        ));
        self.extra_kubelets.lock().unwrap().push(task);
    }

    /// The node called `{id}-{suffix}`.
    pub fn node_name(&self, suffix: &str) -> NodeName {
        format!("{}-{suffix}", self.id).parse().unwrap()
    }

    /// Creates a kubeadm-shaped node: kubelet version, OS image, zone, role label, Ready.
    pub async fn node(&self, suffix: &str, spec: NodeSpec<'_>) -> NodeName {
        let name = self.node_name(suffix);
        let mut labels = json!({
            "kubernetes.io/hostname": name.as_str(),
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kupgrade-test": self.id,
        });
        if spec.control_plane {
            labels["node-role.kubernetes.io/control-plane"] = json!("");
        }
        if let Some(z) = spec.zone {
            labels["topology.kubernetes.io/zone"] = json!(z);
        }
        let api: Api<KNode> = Api::all(self.client.clone());
        let node: KNode = serde_json::from_value(
            json!({ "metadata": { "name": name.as_str(), "labels": labels } }),
        )
        .unwrap();
        api.create(&PostParams::default(), &node)
            .await
            .unwrap_or_else(|e| panic!("create node {name}: {e}"));
        self.nodes.lock().unwrap().push(name.to_string());
        self.set_node_status(&name, spec.kubelet, spec.os, spec.ready)
            .await
            .unwrap();
        name
    }

    /// Reports kubelet `version`, `os` and Ready through the node's `/status`, as a kubelet
    /// does.
    pub async fn set_node_status(
        &self,
        node: &NodeName,
        kubelet: &str,
        os: &str,
        ready: bool,
    ) -> Result<()> {
        let api: Api<KNode> = Api::all(self.client.clone());
        let status = json!({ "status": {
            "nodeInfo": {
                "kubeletVersion": kubelet, "kubeProxyVersion": kubelet, "osImage": os,
                "operatingSystem": "linux", "architecture": "amd64", "kernelVersion": "6.1.0-18-amd64",
                "containerRuntimeVersion": "containerd://1.7.13", "machineID": "m", "systemUUID": "s", "bootID": "b"
            },
            "conditions": [{
                "type": "Ready", "status": if ready { "True" } else { "False" },
                "reason": if ready { "KubeletReady" } else { "KubeletNotReady" },
                "message": "set by the kupgrade test harness",
                "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"
            }]
        }});
        api.patch_status(
            node.as_str(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await?;
        Ok(())
    }

    /// Creates a Running, Ready pod on `node` in the scope's namespace.
    pub async fn pod(
        &self,
        node: &NodeName,
        kind: Kind,
        labels: &BTreeMap<String, String>,
    ) -> Result<PodRef> {
        let n = self.pods.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{n}", kind.prefix());
        self.pod_in(
            &self.ns.clone(),
            &name,
            node,
            kind,
            labels,
            "registry.example/app:v1",
        )
        .await?;
        Ok(PodRef {
            namespace: self.ns.clone(),
            name,
        })
    }

    /// Creates a Running, Ready pod named `name` in `ns`.
    pub async fn pod_in(
        &self,
        ns: &str,
        name: &str,
        node: &NodeName,
        kind: Kind,
        labels: &BTreeMap<String, String>,
        image: &str,
    ) -> Result<Pod> {
        let mut meta = json!({ "name": name, "namespace": ns, "labels": labels });
        match kind {
            Kind::Replicated => meta["ownerReferences"] = owner("apps/v1", "ReplicaSet", "rs"),
            Kind::DaemonSet => meta["ownerReferences"] = owner("apps/v1", "DaemonSet", "ds"),
            Kind::Mirror => {
                meta["annotations"] = json!({ "kubernetes.io/config.mirror": "0123456789abcdef", "kubernetes.io/config.source": "file" });
                meta["ownerReferences"] = owner("v1", "Node", node.as_str());
            }
            Kind::Unreplicated => {}
            Kind::EmptyDir => meta["ownerReferences"] = owner("apps/v1", "ReplicaSet", "rs"),
        }
        let container_name = labels
            .get("component")
            .cloned()
            .unwrap_or_else(|| "app".to_string());
        let mut spec = json!({
            "nodeName": node.as_str(),
            "containers": [{ "name": container_name, "image": image }],
        });
        if kind == Kind::EmptyDir {
            spec["volumes"] = json!([{ "name": "scratch", "emptyDir": {} }]);
        }
        let pod: Pod = serde_json::from_value(json!({ "metadata": meta, "spec": spec }))?;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        api.create(&PostParams::default(), &pod).await?;
        if ns != self.ns {
            self.extra.lock().unwrap().push(format!(
                "/api/v1/namespaces/{ns}/pods/{name}?gracePeriodSeconds=0"
            ));
        }
        let status = json!({ "status": {
            "phase": "Running",
            "conditions": [{ "type": "Ready", "status": "True" }],
            "containerStatuses": [{
                "name": container_name, "ready": true, "restartCount": 0, "image": image,
                "imageID": "", "started": true, "state": { "running": { "startedAt": "2026-01-01T00:00:00Z" } }
            }]
        }});
        Ok(api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await?)
    }

    /// Creates a `policy/v1beta1` PodDisruptionBudget selecting `labels` and computes its
    /// status as the disruption controller would, allowing `allowed` disruptions.
    pub async fn budget(&self, labels: &BTreeMap<String, String>, allowed: u32) -> Result<String> {
        let name = format!(
            "pdb-{}",
            labels.values().cloned().collect::<Vec<_>>().join("-")
        );
        let ar = pdb_resource();
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &self.ns, &ar);
        let obj = DynamicObject::new(&name, &ar).data(json!({
            "spec": { "maxUnavailable": allowed, "selector": { "matchLabels": labels } }
        }));
        let created = api.create(&PostParams::default(), &obj).await?;
        let selector = labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        let healthy = pods
            .list(&ListParams::default().labels(&selector))
            .await?
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .count() as u32;
        let status = json!({ "status": {
            "observedGeneration": created.metadata.generation.unwrap_or(1),
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": healthy.saturating_sub(allowed),
            "expectedPods": healthy,
        }});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        Ok(name)
    }

    /// The pods on `node` (any namespace) not being deleted, sorted.
    pub async fn pods_on(&self, node: &NodeName) -> Result<Vec<PodRef>> {
        let api: Api<Pod> = Api::all(self.client.clone());
        let mut pods: Vec<PodRef> = api
            .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
            .await?
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| PodRef {
                namespace: p.namespace().unwrap_or_default(),
                name: p.name_any(),
            })
            .collect();
        pods.sort();
        Ok(pods)
    }

    /// Whether the node is cordoned.
    pub async fn is_cordoned(&self, node: &NodeName) -> Result<bool> {
        let api: Api<KNode> = Api::all(self.client.clone());
        let n = api.get(node.as_str()).await?;
        Ok(n.spec.and_then(|s| s.unschedulable).unwrap_or(false))
    }

    /// Creates `obj` (any kind) in the scope's namespace through `ar`, to be deleted at the end.
    pub async fn create_dynamic(
        &self,
        ns: &str,
        ar: &ApiResource,
        data: Value,
    ) -> Result<DynamicObject> {
        let obj: DynamicObject = serde_json::from_value(data)?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, ar);
        let created = api.create(&PostParams::default(), &obj).await?;
        self.extra.lock().unwrap().push(format!(
            "{}/namespaces/{ns}/{}/{}",
            api_prefix(ar),
            ar.plural,
            created.name_any()
        ));
        Ok(created)
    }

    fn stop_kubelets(&mut self) {
        if let Some(k) = self.kubelet.take() {
            k.abort();
        }
        for k in self.extra_kubelets.lock().unwrap().drain(..) {
            k.abort();
        }
    }

    /// A node-command runner for the scope's namespace, whose pods must start within
    /// `start_timeout`.
    pub fn pod_runner(&self, start_timeout: std::time::Duration) -> kupgrade_kube::PodRunner {
        kupgrade_kube::PodRunner::new(self.client.clone())
            .namespace(&self.ns)
            .start_timeout(start_timeout)
    }

    /// Deletes the object at this API path when the scope ends (a namespace is finalized too).
    pub fn delete_later(&self, path: String) {
        self.extra.lock().unwrap().push(path);
    }

    /// Removes everything the scope made: its nodes, every object in its namespace, the
    /// namespace (finalized by hand: no namespace controller runs), and extra objects.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        self.stop_kubelets();
        let nodes = std::mem::take(&mut *self.nodes.lock().unwrap());
        let extra = std::mem::take(&mut *self.extra.lock().unwrap());
        if let Err(e) = remove_all(&self.client, &self.ns, &nodes, &extra).await {
            eprintln!("cleanup of {}: {e}", self.ns);
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        self.stop_kubelets();
        if self.cleaned {
            return;
        }
        // The test panicked: clean up on a thread with its own runtime.
        let client_config = self.env.kubeconfig.clone();
        let ns = self.ns.clone();
        let nodes = std::mem::take(&mut *self.nodes.lock().unwrap());
        let extra = std::mem::take(&mut *self.extra.lock().unwrap());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let config = kupgrade_kube::kubeconfig_config(&client_config, None)
                    .await
                    .unwrap();
                let client = kupgrade_kube::client(config).unwrap();
                let _ = remove_all(&client, &ns, &nodes, &extra).await;
            });
        })
        .join();
    }
}

async fn remove_all(client: &Client, ns: &str, nodes: &[String], extra: &[String]) -> Result<()> {
    let now = DeleteParams::default().grace_period(0);
    for path in extra.iter().rev() {
        let req = http::Request::delete(path.as_str()).body(Vec::new())?;
        let _ = client.request_text(req).await;
        if let Some(ns) = path
            .strip_prefix("/api/v1/namespaces/")
            .filter(|n| !n.contains('/'))
        {
            finalize_namespace(client, ns).await?;
        }
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let _ = pods.delete_collection(&now, &ListParams::default()).await;
    for (prefix, plural) in [
        ("/apis/policy/v1beta1", "poddisruptionbudgets"),
        ("/api/v1", "configmaps"),
        ("/apis/apps/v1", "daemonsets"),
        ("/apis/apps/v1", "deployments"),
        ("/apis/rbac.authorization.k8s.io/v1", "roles"),
        ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    ] {
        let req =
            http::Request::delete(format!("{prefix}/namespaces/{ns}/{plural}")).body(Vec::new())?;
        let _ = client.request_text(req).await;
    }
    let api: Api<KNode> = Api::all(client.clone());
    for n in nodes {
        let _ = api.delete(n, &DeleteParams::default()).await;
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(ns, &DeleteParams::default()).await;
    finalize_namespace(client, ns).await?;
    Ok(())
}

/// Empties a deleted namespace's finalizers, as the namespace controller (not running here)
/// would once the namespace is empty.
async fn finalize_namespace(client: &Client, ns: &str) -> Result<()> {
    let finalize = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns }, "spec": { "finalizers": [] } });
    let req = http::Request::put(format!("/api/v1/namespaces/{ns}/finalize"))
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&finalize)?)?;
    let _ = client.request_text(req).await;
    Ok(())
}

fn owner(api_version: &str, kind: &str, name: &str) -> Value {
    json!([{ "apiVersion": api_version, "kind": kind, "name": name, "uid": format!("uid-{kind}-{name}"), "controller": true }])
}

/// `/api/v1` or `/apis/GROUP/VERSION`.
pub fn api_prefix(ar: &ApiResource) -> String {
    if ar.group.is_empty() {
        format!("/api/{}", ar.version)
    } else {
        format!("/apis/{}/{}", ar.group, ar.version)
    }
}

/// `policy/v1beta1` PodDisruptionBudget, the only version a 1.20 server has.
pub fn pdb_resource() -> ApiResource {
    ApiResource {
        group: "policy".into(),
        version: "v1beta1".into(),
        api_version: "policy/v1beta1".into(),
        kind: "PodDisruptionBudget".into(),
        plural: "poddisruptionbudgets".into(),
    }
}

/// The kinds of pod the harness makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Replicated,
    DaemonSet,
    Mirror,
    Unreplicated,
    EmptyDir,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Replicated => "rs",
            Kind::DaemonSet => "ds",
            Kind::Mirror => "mirror",
            Kind::Unreplicated => "bare",
            Kind::EmptyDir => "scratch",
        }
    }
}

/// How to shape a node.
#[derive(Clone, Copy, Debug)]
pub struct NodeSpec<'a> {
    pub control_plane: bool,
    pub kubelet: &'a str,
    pub os: &'a str,
    pub zone: Option<&'a str>,
    pub ready: bool,
}

impl NodeSpec<'_> {
    /// A Ready Ubuntu worker at `kubelet`.
    pub fn worker(kubelet: &str) -> NodeSpec<'_> {
        NodeSpec {
            control_plane: false,
            kubelet,
            os: "Ubuntu 22.04.4 LTS",
            zone: None,
            ready: true,
        }
    }

    /// A Ready Ubuntu control-plane node at `kubelet`.
    pub fn control_plane(kubelet: &str) -> NodeSpec<'_> {
        NodeSpec {
            control_plane: true,
            ..NodeSpec::worker(kubelet)
        }
    }
}

/// Drain options with only a deadline.
pub fn within(timeout_seconds: u64) -> DrainOptions {
    DrainOptions {
        timeout_seconds,
        ..DrainOptions::default()
    }
}

/// The report of a drain that ended blocked.
pub fn blocked(err: &OpsError) -> &DrainReport {
    let OpsError::DrainBlocked { report, .. } = err else {
        panic!("{err}")
    };
    report
}

/// Labels from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The next event of a pod watch, `None` once the watch ends. An error is reported (by
/// `who`) and the watch read on after a pause, as a kubelet keeps watching.
pub async fn next_event<S>(events: &mut S, who: &str) -> Option<watcher::Event<Pod>>
where
    S: futures::Stream<Item = std::result::Result<watcher::Event<Pod>, watcher::Error>> + Unpin,
{
    loop {
        match events.try_next().await {
            Ok(event) => return event,
            Err(e) => {
                eprintln!("{who}: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
}

/// The simulated kubelet of one namespace.
async fn kubelet(client: Client, ns: String, finalize: bool, replier: Arc<Mutex<Option<Replier>>>) {
    let api: Api<Pod> = Api::namespaced(client, &ns);
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    let who = format!("simulated kubelet in {ns}");
    loop {
        let pod = match next_event(&mut events, &who).await {
            Some(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
            Some(_) => continue,
            None => return,
        };
        let name = pod.name_any();
        if pod.metadata.deletion_timestamp.is_some() {
            if finalize {
                let _ = api
                    .delete(&name, &DeleteParams::default().grace_period(0))
                    .await;
            }
            continue;
        }
        let is_command = pod
            .labels()
            .get("app.kubernetes.io/component")
            .map(String::as_str)
            == Some(kupgrade_kube::COMPONENT_LABEL_VALUE);
        if !is_command {
            continue;
        }
        let state = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.first())
            .and_then(|c| c.state.clone());
        if state
            .as_ref()
            .is_some_and(|s| s.terminated.is_some() || s.running.is_some())
        {
            continue;
        }
        let spec = pod.spec.as_ref().unwrap();
        let container = &spec.containers[0];
        let line = container
            .command
            .as_ref()
            .and_then(|c| c.last())
            .cloned()
            .unwrap_or_default();
        let reply = replier.lock().unwrap().clone().map(|f| f(&line));
        let image = container.image.clone().unwrap_or_default();
        let status = match reply {
            None => continue,
            Some(Reply::Hang) => json!({ "status": {
                "phase": "Running",
                "containerStatuses": [{
                    "name": container.name, "ready": true, "restartCount": 0, "image": image, "imageID": "",
                    "state": { "running": { "startedAt": "2026-01-01T00:00:00Z" } }
                }]
            }}),
            Some(Reply::Exit(code, message)) => json!({ "status": {
                "phase": if code == 0 { "Succeeded" } else { "Failed" },
                "containerStatuses": [{
                    "name": container.name, "ready": false, "restartCount": 0, "image": image, "imageID": "",
                    "state": { "terminated": {
                        "exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" },
                        "message": message,
                        "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:01Z"
                    } }
                }]
            }}),
        };
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            eprintln!("simulated kubelet: completing {ns}/{name}: {e}");
        }
    }
}

/// Parses a version, for brevity.
pub fn v(s: &str) -> KubeVersion {
    s.parse().unwrap()
}
