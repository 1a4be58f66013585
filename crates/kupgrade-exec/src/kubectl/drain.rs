//! Reading `kubectl drain`'s output back into a [`DrainReport`], and what a drain report needs
//! from the pods of the node: which pods are left on purpose, and which disruption budget
//! covers a pod whose eviction was refused.
//!
//! kubectl prints its progress and its refusals as text (there is no structured output for
//! a drain); the lines read here have kept their shape from kubectl 1.20 to 1.33:
//!
//! ```text
//! evicting pod NS/NAME
//! pod/NAME evicted
//! WARNING: ignoring DaemonSet-managed Pods: NS/NAME, ...
//! error when evicting pods/"NAME" -n "NS" (will retry after 5s): REASON
//! error when waiting for pod "NAME" terminating: REASON
//! cannot delete WHAT (use --force to override): NS/NAME, NS/NAME
//! ```
use kupgrade_core::ports::{BlockedPod, PodRef};
use serde_json::Value;

/// The annotation that marks the API's copy of a static pod.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// A pod named by kubectl: with its namespace, or (in a few messages) by name alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Named {
    /// Namespace and name.
    Ref(PodRef),
    /// The name only; the namespace is found among the node's pods.
    Name(String),
}

/// What one run of `kubectl drain` printed about pods.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct DrainOutput {
    /// Pods evicted (or deleted), in the order kubectl reported them.
    pub(super) evicted: Vec<Named>,
    /// Pods kubectl refused to touch or could not evict, with its first reason for each.
    pub(super) blocked: Vec<(Named, String)>,
}

impl DrainOutput {
    /// Reads kubectl's stdout and stderr (either may carry any of the lines).
    pub(super) fn parse(stdout: &str, stderr: &str) -> Self {
        let mut attempted: Vec<PodRef> = Vec::new();
        let mut done: Vec<&str> = Vec::new();
        let mut out = DrainOutput::default();
        for line in stdout.lines().chain(stderr.lines()) {
            let line = line.trim();
            let line = line.strip_prefix("error: ").unwrap_or(line);
            if let Some(pod) = line.strip_prefix("evicting pod ").and_then(pod_ref) {
                attempted.push(pod);
            } else if let Some(name) = line.strip_prefix("pod/").and_then(|l| {
                l.strip_suffix(" evicted")
                    .or_else(|| l.strip_suffix(" deleted"))
            }) {
                done.push(name);
            } else if let Some(rest) = line.strip_prefix("cannot delete ") {
                // `cannot delete WHAT (HINT): NS/NAME, NS/NAME`; WHAT may hold commas.
                let Some((what, pods)) = rest.rsplit_once(": ") else {
                    continue;
                };
                for pod in pods.split(", ").filter_map(pod_ref) {
                    out.block(Named::Ref(pod), format!("cannot delete {what}"));
                }
            } else if let Some((pod, reason)) = eviction_error(line) {
                out.block(pod, reason);
            }
        }
        for name in done {
            let named = match attempted.iter().find(|p| p.name == name) {
                Some(p) => Named::Ref(p.clone()),
                None => Named::Name(name.to_string()),
            };
            if !out.evicted.contains(&named) {
                out.evicted.push(named);
            }
        }
        out
    }

    fn block(&mut self, pod: Named, reason: String) {
        if !self.blocked.iter().any(|(p, _)| *p == pod) {
            self.blocked.push((pod, reason));
        }
    }
}

/// `NS/NAME`.
fn pod_ref(text: &str) -> Option<PodRef> {
    let (namespace, name) = text.trim().split_once('/')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(char::is_whitespace)).then(|| {
        PodRef {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    })
}

/// `error when evicting pods/"NAME" -n "NS" (will retry after 5s): REASON`,
/// `error when evicting pod "NAME" ...: REASON` (older kubectl), and
/// `error when waiting for pod "NAME" terminating: REASON`.
fn eviction_error(line: &str) -> Option<(Named, String)> {
    let rest = line
        .strip_prefix("error when evicting pods/")
        .or_else(|| line.strip_prefix("error when evicting pod "))
        .or_else(|| line.strip_prefix("error when waiting for pod "))?;
    let (name, rest) = quoted(rest)?;
    let (pod, rest) = match rest.trim_start().strip_prefix("-n ").and_then(quoted) {
        Some((namespace, rest)) => (
            Named::Ref(PodRef {
                namespace: namespace.to_string(),
                name: name.to_string(),
            }),
            rest,
        ),
        None => (Named::Name(name.to_string()), rest),
    };
    let (_, reason) = rest.split_once(": ")?;
    Some((pod, reason.trim().to_string()))
}

/// `"TEXT"rest` to `(TEXT, rest)`.
fn quoted(text: &str) -> Option<(&str, &str)> {
    let inner = text.strip_prefix('"')?;
    let end = inner.find('"')?;
    Some((&inner[..end], &inner[end + 1..]))
}

/// One pod of the node, as `kubectl get pods -o json` shows it.
#[derive(Clone, Debug)]
pub(super) struct NodePod {
    /// Namespace and name.
    pub(super) pod: PodRef,
    /// Its labels.
    pub(super) labels: serde_json::Map<String, Value>,
    /// Why a drain leaves it in place: mirror and DaemonSet pods.
    pub(super) kept_because: Option<&'static str>,
}

impl NodePod {
    /// The pods of a `PodList` that are not being deleted.
    pub(super) fn from_list(list: &Value) -> Vec<NodePod> {
        let items = list["items"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        items
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter_map(|p| {
                let meta = &p["metadata"];
                let pod = PodRef {
                    namespace: meta["namespace"].as_str()?.to_string(),
                    name: meta["name"].as_str()?.to_string(),
                };
                let mirror = meta["annotations"].get(MIRROR_ANNOTATION).is_some();
                let daemonset = meta["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|o| o["controller"] == true && o["kind"] == "DaemonSet");
                Some(NodePod {
                    pod,
                    labels: meta["labels"].as_object().cloned().unwrap_or_default(),
                    kept_because: if mirror {
                        Some("mirror pod of a static pod (the kubelet manages it)")
                    } else if daemonset {
                        Some("DaemonSet-managed pod")
                    } else {
                        None
                    },
                })
            })
            .collect()
    }
}

/// The pod `named` stands for among the node's `pods` (a bare name must be unique there).
pub(super) fn resolve(named: &Named, pods: &[NodePod]) -> PodRef {
    match named {
        Named::Ref(p) => p.clone(),
        Named::Name(name) => {
            let mut found = pods.iter().filter(|p| p.pod.name == *name);
            match (found.next(), found.next()) {
                (Some(p), None) => p.pod.clone(),
                _ => PodRef {
                    namespace: String::new(),
                    name: name.clone(),
                },
            }
        }
    }
}

/// The disruption budgets of a `PodDisruptionBudgetList` whose selector selects `labels`,
/// sorted. `policy/v1` budgets with an empty selector select every pod, `policy/v1beta1`
/// ones none (the two versions differ there); a missing selector selects nothing.
pub(super) fn budgets_covering(
    list: &Value,
    labels: &serde_json::Map<String, Value>,
) -> Vec<String> {
    let list_version = list["apiVersion"].as_str().unwrap_or_default();
    let mut names: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| {
            let version = b["apiVersion"].as_str().unwrap_or(list_version);
            selects(&b["spec"]["selector"], labels, version == "policy/v1")
        })
        .filter_map(|b| b["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// Whether a label selector selects `labels` (`matchLabels` and `matchExpressions`, as the
/// API server evaluates them; an unknown operator selects nothing).
fn selects(
    selector: &Value,
    labels: &serde_json::Map<String, Value>,
    empty_selects_all: bool,
) -> bool {
    let Some(sel) = selector.as_object() else {
        return false;
    };
    let match_labels = sel.get("matchLabels").and_then(Value::as_object);
    let exprs = sel.get("matchExpressions").and_then(Value::as_array);
    if match_labels.is_none_or(|m| m.is_empty()) && exprs.is_none_or(|e| e.is_empty()) {
        return empty_selects_all;
    }
    let labels_ok = match_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_ok
        && exprs.into_iter().flatten().all(|e| {
            let value = e["key"].as_str().and_then(|k| labels.get(k));
            let listed = || {
                e["values"]
                    .as_array()
                    .is_some_and(|vs| value.is_some_and(|v| vs.contains(v)))
            };
            match e["operator"].as_str() {
                Some("In") => listed(),
                Some("NotIn") => !listed(),
                Some("Exists") => value.is_some(),
                Some("DoesNotExist") => value.is_none(),
                _ => false,
            }
        })
}

/// The blocked pod `named`, with the budget that refused its eviction when the reason says a
/// budget did: the one named in the reason, otherwise the budgets covering the pod's labels
/// (`budgets` lists the pod's namespace).
pub(super) fn blocked_pod(
    pod: PodRef,
    reason: String,
    labels: Option<&serde_json::Map<String, Value>>,
    budgets: Option<&Value>,
) -> BlockedPod {
    let budget = if reason.contains("disruption budget") {
        named_budget(&reason).or_else(|| {
            let covering = budgets_covering(budgets?, labels?);
            (!covering.is_empty()).then(|| covering.join(", "))
        })
    } else {
        None
    };
    BlockedPod {
        pod,
        budget,
        reason,
    }
}

/// The budget a refusal names (`The disruption budget web needs 2 healthy pods ...`).
fn named_budget(reason: &str) -> Option<String> {
    let (_, rest) = reason.split_once("The disruption budget ")?;
    let name = rest.split_whitespace().next()?;
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(ns: &str, name: &str) -> PodRef {
        PodRef {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    // Printed by kubectl v1.20.2 against the test API server.
    const BLOCKED_STDOUT: &str = "node/p1 cordoned
evicting pod pr/db3
evicting pod pr/db1
evicting pod pr/db2
pod/db1 evicted
evicting pod pr/db3
evicting pod pr/db2
";
    const BLOCKED_STDERR: &str = r#"WARNING: ignoring DaemonSet-managed Pods: pr/ds1
error when evicting pods/"db3" -n "pr" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.
error when evicting pods/"db2" -n "pr" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.
There are pending pods in node "p1" when an error occurred: [error when evicting pods/"db3" -n "pr": global timeout reached: 2s, error when evicting pods/"db2" -n "pr": global timeout reached: 2s]
pod/db2
pod/db3
error: unable to drain node "p1", aborting command...

There are pending nodes to be drained:
 p1
error when evicting pods/"db3" -n "pr": global timeout reached: 2s
error when evicting pods/"db2" -n "pr": global timeout reached: 2s
"#;

    #[test]
    fn a_drain_blocked_by_a_budget_reads_back() {
        let out = DrainOutput::parse(BLOCKED_STDOUT, BLOCKED_STDERR);
        assert_eq!(out.evicted, [Named::Ref(r("pr", "db1"))]);
        let refused = "Cannot evict pod as it would violate the pod's disruption budget.";
        assert_eq!(
            out.blocked,
            [
                (Named::Ref(r("pr", "db3")), refused.to_string()),
                (Named::Ref(r("pr", "db2")), refused.to_string()),
            ]
        );
    }

    #[test]
    fn refusals_and_a_forced_drain_read_back() {
        let stderr = "error: unable to drain node \"p1\", aborting command...

There are pending nodes to be drained:
 p1
cannot delete Pods not managed by ReplicationController, ReplicaSet, Job, DaemonSet or StatefulSet (use --force to override): pr/bare1, other/bare2
cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): pr/ds1
";
        let out = DrainOutput::parse("node/p1 cordoned\n", stderr);
        assert!(out.evicted.is_empty());
        let blocked: Vec<(PodRef, &str)> = out
            .blocked
            .iter()
            .map(|(p, why)| (resolve(p, &[]), why.as_str()))
            .collect();
        assert_eq!(
            blocked,
            [
                (
                    r("pr", "bare1"),
                    "cannot delete Pods not managed by ReplicationController, ReplicaSet, Job, DaemonSet or StatefulSet (use --force to override)"
                ),
                (
                    r("other", "bare2"),
                    "cannot delete Pods not managed by ReplicationController, ReplicaSet, Job, DaemonSet or StatefulSet (use --force to override)"
                ),
                (
                    r("pr", "ds1"),
                    "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
                ),
            ]
        );

        let stdout = "node/p1 already cordoned
evicting pod pr/web2
evicting pod pr/bare1
evicting pod pr/web1
pod/web1 evicted
pod/web2 evicted
pod/bare1 evicted
node/p1 evicted
";
        let stderr = "WARNING: deleting Pods not managed by ReplicationController, ReplicaSet, Job, DaemonSet or StatefulSet: pr/bare1; ignoring DaemonSet-managed Pods: pr/ds1\n";
        let out = DrainOutput::parse(stdout, stderr);
        assert_eq!(
            out.evicted,
            [
                Named::Ref(r("pr", "web1")),
                Named::Ref(r("pr", "web2")),
                Named::Ref(r("pr", "bare1"))
            ]
        );
        assert!(out.blocked.is_empty());
    }

    #[test]
    fn bare_names_are_found_among_the_nodes_pods() {
        let out = DrainOutput::parse(
            "pod/web-1 evicted\n",
            "error when waiting for pod \"stuck\" terminating: global timeout reached: 2s\n",
        );
        let list = json!({ "items": [
            { "metadata": { "namespace": "a", "name": "web-1" } },
            { "metadata": { "namespace": "b", "name": "stuck", "labels": { "app": "s" } } },
            { "metadata": { "namespace": "c", "name": "stuck", "deletionTimestamp": "2026-01-01T00:00:00Z" } },
        ]});
        let pods = NodePod::from_list(&list);
        assert_eq!(pods.len(), 2);
        assert_eq!(resolve(&out.evicted[0], &pods), r("a", "web-1"));
        assert_eq!(out.blocked[0].1, "global timeout reached: 2s");
        assert_eq!(resolve(&out.blocked[0].0, &pods), r("b", "stuck"));
        assert_eq!(resolve(&Named::Name("gone".into()), &pods), r("", "gone"));
    }

    #[test]
    fn kept_pods_are_mirror_and_daemonset_pods() {
        let list = json!({ "items": [
            { "metadata": { "namespace": "kube-system", "name": "etcd-cp",
                "annotations": { "kubernetes.io/config.mirror": "abc" } } },
            { "metadata": { "namespace": "kube-system", "name": "kube-proxy-x",
                "ownerReferences": [{ "kind": "DaemonSet", "name": "kube-proxy", "controller": true }] } },
            { "metadata": { "namespace": "default", "name": "web",
                "ownerReferences": [{ "kind": "DaemonSet", "name": "x", "controller": false },
                                    { "kind": "ReplicaSet", "name": "web", "controller": true }] } },
        ]});
        let kept: Vec<Option<&str>> = NodePod::from_list(&list)
            .iter()
            .map(|p| p.kept_because)
            .collect();
        assert_eq!(
            kept,
            [
                Some("mirror pod of a static pod (the kubelet manages it)"),
                Some("DaemonSet-managed pod"),
                None
            ]
        );
    }

    #[test]
    fn budgets_cover_pods_by_selector() {
        let labels = json!({ "app": "db", "tier": "data" });
        let labels = labels.as_object().unwrap();
        let list = json!({ "apiVersion": "v1", "items": [
            { "apiVersion": "policy/v1beta1", "metadata": { "name": "by-label" },
              "spec": { "selector": { "matchLabels": { "app": "db" } } } },
            { "apiVersion": "policy/v1beta1", "metadata": { "name": "other-app" },
              "spec": { "selector": { "matchLabels": { "app": "web" } } } },
            { "apiVersion": "policy/v1beta1", "metadata": { "name": "v1beta1-empty" },
              "spec": { "selector": {} } },
            { "apiVersion": "policy/v1", "metadata": { "name": "v1-empty" },
              "spec": { "selector": {} } },
            { "apiVersion": "policy/v1", "metadata": { "name": "no-selector" }, "spec": {} },
            { "apiVersion": "policy/v1", "metadata": { "name": "exprs" },
              "spec": { "selector": { "matchExpressions": [
                  { "key": "tier", "operator": "In", "values": ["data", "cache"] },
                  { "key": "app", "operator": "NotIn", "values": ["web"] },
                  { "key": "app", "operator": "Exists" },
                  { "key": "canary", "operator": "DoesNotExist" } ] } } },
            { "apiVersion": "policy/v1", "metadata": { "name": "exprs-miss" },
              "spec": { "selector": { "matchExpressions": [
                  { "key": "tier", "operator": "NotIn", "values": ["data"] } ] } } },
            { "apiVersion": "policy/v1", "metadata": { "name": "bad-operator" },
              "spec": { "selector": { "matchExpressions": [
                  { "key": "app", "operator": "Like", "values": ["db"] } ] } } },
        ]});
        assert_eq!(
            budgets_covering(&list, labels),
            ["by-label", "exprs", "v1-empty"]
        );
    }

    #[test]
    fn a_blocked_pod_names_its_budget_only_when_a_budget_refused() {
        let labels = json!({ "app": "db" });
        let list = json!({ "items": [{ "apiVersion": "policy/v1beta1", "metadata": { "name": "pdb-db" },
            "spec": { "selector": { "matchLabels": { "app": "db" } } } }] });
        let refused = "Cannot evict pod as it would violate the pod's disruption budget.";
        let b = blocked_pod(
            r("pr", "db2"),
            refused.into(),
            labels.as_object(),
            Some(&list),
        );
        assert_eq!(b.budget.as_deref(), Some("pdb-db"));
        let b = blocked_pod(
            r("pr", "db2"),
            format!(
                "{refused} The disruption budget named-one needs 2 healthy pods and has 2 currently"
            ),
            labels.as_object(),
            Some(&list),
        );
        assert_eq!(b.budget.as_deref(), Some("named-one"));
        let b = blocked_pod(
            r("pr", "db2"),
            "global timeout reached: 2s".into(),
            labels.as_object(),
            Some(&list),
        );
        assert_eq!(b.budget, None);
    }
}
