//! The inventory file: a [`ClusterState`] written as YAML or JSON, and its validation.
//!
//! ```yaml
//! apiVersion: kupgrade.dev/v1alpha1   # optional header
//! kind: Inventory
//! name: prod-eu
//! etcd: { mode: stacked }
//! addons: { kube-proxy: v1.28.9, coredns: v1.10.1 }
//! nodes:
//!   - name: cp-1
//!     roles: [control-plane]
//!     labels: { topology.kubernetes.io/zone: eu-1a }
//!     os: { family: debian, release: ubuntu-22.04 }
//!     versions: { kubelet: v1.28.9, kube-apiserver: v1.28.9, kube-controller-manager: v1.28.9,
//!                 kube-scheduler: v1.28.9, etcd: 3.5.9-0, kubeadm: v1.28.9 }
//!   - name: w-1
//!     versions: { kubelet: v1.28.9 }
//! ```
//!
//! A node's `os.family` (`debian`, `rhel`, `suse` or `other`, default `debian`) decides the
//! package commands its steps run; see [`crate::plan::packages`].
//!
//! Parsing never panics. Every problem found is reported at once, each naming the file, the node
//! and the field, with a line and column where they can be found:
//!
//! ```
//! let text = "nodes:\n  - name: cp-1\n    roles: [control-plane]\n    versions: { kubelet: 1.29.x }\n  - name: w-1\n    versions: { kubelet: v1.29.1, etcd: 3.5.9-0 }\n";
//! let err = kupgrade_core::inventory::parse(text, "inventory.yaml").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "inventory.yaml:4:26: node \"cp-1\": versions.kubelet: \"1.29.x\" is not a version: \
//!      unexpected character 'x' in patch\n\
//!      inventory.yaml:6:41: node \"w-1\": versions.etcd: a worker cannot run etcd: add the \
//!      control-plane role or remove the version"
//! );
//! ```
use std::collections::HashMap;
use std::fmt;

use serde_yaml_ng::Value;

use crate::diagnostics::{
    self, Entry, FileError, FileProblem, Locator, Step, from_value, kind_of, short,
};
use crate::{ClusterState, Component, Node};

/// The `apiVersion` an inventory may declare.
pub const API_VERSION: &str = "kupgrade.dev/v1alpha1";
/// The `kind` an inventory may declare.
pub const KIND: &str = "Inventory";

/// The inventory file's JSON Schema, generated from the types (kept in sync by a test).
pub const SCHEMA: &str = include_str!("../schema/inventory.schema.json");

/// An inventory that could not be read: every problem found, in file order.
pub type InventoryError = FileError<NodeEntry>;

/// One problem in an inventory.
pub type InventoryProblem = FileProblem<NodeEntry>;

/// The node an inventory problem is about: its name, or `#N` (its 1-based place in the list)
/// for an entry with no usable name. Said `node "w-1"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEntry(pub String);

impl fmt::Display for NodeEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {:?}", self.0)
    }
}

impl Entry for NodeEntry {}

/// Parses and validates an inventory in YAML or JSON (JSON is read as YAML, which contains it).
/// `file` only names the source in messages.
pub fn parse(text: &str, file: &str) -> Result<ClusterState, InventoryError> {
    let fail = |problems: Vec<InventoryProblem>| InventoryError {
        file: file.to_string(),
        problems,
    };
    let value = diagnostics::parse_yaml(text).map_err(|p| fail(vec![p]))?;
    let locator = Locator::new(text);
    let mut problems = Vec::new();
    let mut top = match value {
        Value::Mapping(m) => m,
        Value::Null => return Err(fail(vec![FileProblem::new("the file is empty")])),
        other => {
            return Err(fail(vec![FileProblem::new(format!(
                "expected a mapping with a `nodes` list, found {}",
                kind_of(&other)
            ))]));
        }
    };
    for (key, want) in [("apiVersion", API_VERSION), ("kind", KIND)] {
        if let Some(v) = top.remove(key)
            && v.as_str() != Some(want)
        {
            problems.push(
                FileProblem::new(format!("expected {want:?}, found {}", short(&v)))
                    .at(locator.value(&[Step::key(key)]))
                    .in_field(key),
            );
        }
    }
    let raw_nodes = match top.remove("nodes") {
        Some(Value::Sequence(s)) => s,
        Some(other) => {
            problems.push(
                FileProblem::new(format!(
                    "expected a list of nodes, found {}",
                    kind_of(&other)
                ))
                .at(locator.value(&[Step::key("nodes")]))
                .in_field("nodes"),
            );
            Vec::new()
        }
        None => {
            problems
                .push(FileProblem::new("missing: an inventory lists its nodes").in_field("nodes"));
            Vec::new()
        }
    };
    // Everything but the nodes, checked by serde (unknown fields refused).
    top.insert(Value::from("nodes"), Value::Sequence(Vec::new()));
    let mut state = match from_value::<ClusterState>(Value::Mapping(top)) {
        Ok(s) => Some(s),
        Err(refused) => {
            let location = refused
                .field
                .as_ref()
                .and_then(|_| locator.value(&refused.path));
            problems.push(FileProblem {
                location,
                entry: None,
                field: refused.field,
                message: refused.message,
            });
            None
        }
    };
    let nodes = read_nodes(raw_nodes, &locator, &mut problems);
    if problems.is_empty() {
        let mut state = state.take().expect("no problems means the header parsed");
        state.nodes = nodes.into();
        if state.control_plane().next().is_none() {
            problems.push(
                FileProblem::new(
                    "no node has the control-plane role: kupgrade needs to know where the API servers run",
                )
                .in_field("nodes"),
            );
        } else {
            return Ok(state);
        }
    }
    problems.sort_by_key(|p| p.location.unwrap_or((usize::MAX, 0)));
    Err(fail(problems))
}

/// The nodes of the file's `nodes` list that deserialize, each checked; the problems of all.
fn read_nodes(
    raw_nodes: Vec<Value>,
    locator: &Locator<'_>,
    problems: &mut Vec<InventoryProblem>,
) -> Vec<Node> {
    let mut nodes = Vec::with_capacity(raw_nodes.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in raw_nodes.into_iter().enumerate() {
        let name = raw
            .as_mapping()
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let label = NodeEntry(name.unwrap_or_else(|| format!("#{}", i + 1)));
        match from_value::<Node>(raw) {
            Ok(node) => {
                if let Some(first) = seen.insert(node.name.to_string(), i) {
                    problems.push(
                        FileProblem::new(format!(
                            "listed twice (entries {} and {})",
                            first + 1,
                            i + 1
                        ))
                        .at(locator.value(&node_path(first, "name")))
                        .in_entry(label.clone())
                        .in_field("name"),
                    );
                }
                check_node(&node, &label, Some((locator, i)), problems);
                nodes.push(node);
            }
            Err(refused) => {
                let location = match &refused.field {
                    Some(_) => {
                        let mut path = node_path(i, "");
                        path.extend(refused.path);
                        locator.value(&path)
                    }
                    None => locator.entry(&node_path(i, "")),
                };
                problems.push(FileProblem {
                    location,
                    entry: Some(label),
                    field: refused.field,
                    message: refused.message,
                });
            }
        }
    }
    nodes
}

/// The path of `field` (as messages write it) in the inventory's node `i`.
fn node_path(i: usize, field: &str) -> Vec<Step> {
    let mut path = vec![Step::key("nodes"), Step::Index(i)];
    path.extend(Step::of_field(field));
    path
}

/// Validates a state built in code (or discovered) with the same rules as the file parser.
pub fn validate(state: &ClusterState) -> Result<(), InventoryError> {
    let mut problems = Vec::new();
    let mut seen = HashMap::new();
    for (i, node) in state.nodes.iter().enumerate() {
        let label = NodeEntry(node.name.to_string());
        if let Some(first) = seen.insert(label.0.clone(), i) {
            problems.push(
                FileProblem::new(format!(
                    "listed twice (entries {} and {})",
                    first + 1,
                    i + 1
                ))
                .in_entry(label.clone())
                .in_field("name"),
            );
        }
        check_node(node, &label, None, &mut problems);
    }
    if state.control_plane().next().is_none() {
        problems.push(FileProblem::new("no node has the control-plane role").in_field("nodes"));
    }
    InventoryError::unless_any("<cluster state>", problems, ())
}

/// The rules a node must keep whatever the file said; `written` is where the file has it (a
/// locator and the node's index), when it came from a file.
fn check_node(
    node: &Node,
    label: &NodeEntry,
    written: Option<(&Locator<'_>, usize)>,
    out: &mut Vec<InventoryProblem>,
) {
    let name_at = || written.and_then(|(l, i)| l.value(&node_path(i, "name")));
    let at = |field: &str| {
        written
            .and_then(|(l, i)| l.value(&node_path(i, field)))
            .or_else(name_at)
    };
    let problem = |location, field: &str, message: String| {
        FileProblem::new(message)
            .at(location)
            .in_entry(label.clone())
            .in_field(field)
    };
    if node.versions.kubelet.is_none() {
        out.push(problem(
            at("versions"),
            "versions.kubelet",
            "missing: every node runs a kubelet".into(),
        ));
    }
    if node.is_control_plane() {
        if node.versions.kube_apiserver.is_none() {
            out.push(problem(
                name_at(),
                "versions.kube-apiserver",
                "a control-plane node must say which kube-apiserver version it runs".into(),
            ));
        }
    } else {
        for c in [
            Component::KubeApiserver,
            Component::KubeControllerManager,
            Component::KubeScheduler,
            Component::Etcd,
        ] {
            if node.versions.get(c).is_some() {
                let field = format!("versions.{}", c.name());
                out.push(problem(
                    at(&field),
                    &field,
                    format!(
                        "a worker cannot run {c}: add the control-plane role or remove the version"
                    ),
                ));
            }
        }
    }
    if let Some(ssh) = &node.ssh {
        for p in ssh.problems() {
            let field = format!("ssh.{}", p.field);
            out.push(problem(at(&field), &field, p.message));
        }
    }
    for (c, v) in node.versions.iter() {
        if c.version_line() == crate::VersionLine::Kubernetes && v.major() != 1 {
            let field = format!("versions.{}", c.name());
            out.push(problem(
                at(&field),
                &field,
                format!("{v} is not a Kubernetes 1.x version"),
            ));
        }
    }
}

/// The inventory's JSON Schema, freshly generated from the types.
pub fn schema_json() -> String {
    crate::schema::schema_json::<ClusterState>(&HEADER, &[("title", "kupgrade inventory")])
}

/// The inventory's optional header, as its schema describes it.
const HEADER: crate::schema::Header = crate::schema::Header {
    api_version: API_VERSION,
    api_version_doc: "Optional format header",
    kind: KIND,
    kind_doc: "Optional format header",
};

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
apiVersion: kupgrade.dev/v1alpha1
kind: Inventory
name: lab
addons: { kube-proxy: v1.28.9, coredns: v1.10.1 }
nodes:
  - name: cp-1
    roles: [control-plane]
    versions: { kubelet: v1.28.9, kube-apiserver: v1.28.9, etcd: 3.5.9-0 }
  - name: w-1
    labels: { topology.kubernetes.io/zone: a }
    os: { family: rhel, release: rocky-9 }
    versions: { kubelet: v1.27.3 }
";

    fn errors(text: &str) -> String {
        parse(text, "inv.yaml").unwrap_err().to_string()
    }

    #[test]
    fn reads_a_valid_inventory() {
        let s = parse(GOOD, "inv.yaml").unwrap();
        assert_eq!(s.name.as_deref(), Some("lab"));
        assert_eq!(s.nodes.len(), 2);
        assert_eq!(s.nodes[1].zone(), Some("a"));
        assert_eq!(s.nodes[1].os.family, crate::OsFamily::Rhel);
        assert!(!s.nodes[1].is_control_plane());
        assert_eq!(s.addons.coredns.as_ref().unwrap().to_string(), "v1.10.1");
        // JSON is accepted too and round-trips through serde.
        let json = serde_json::to_string_pretty(&s).unwrap();
        assert_eq!(parse(&json, "inv.json").unwrap(), s);
    }

    #[test]
    fn a_flow_map_broken_after_a_dotted_key_is_an_error_not_a_hang() {
        // Found by the inventory fuzzer: the error's field path ends in a dot, and locating
        // it searched for an empty key forever.
        let text = GOOD.replace(
            "labels: { topology.kubernetes.io/zone: a }",
            "labels: { topology.kubernetes.}",
        );
        let e = parse(&text, "inv.yaml").unwrap_err();
        assert_eq!(e.file, "inv.yaml");
        assert!(!e.problems.is_empty());
    }

    #[test]
    fn names_file_node_field_and_position() {
        let text = GOOD.replace("kubelet: v1.27.3", "kubelet: 1.27.x");
        assert_eq!(
            errors(&text),
            "inv.yaml:12:26: node \"w-1\": versions.kubelet: \"1.27.x\" is not a version: unexpected character 'x' in patch"
        );
        let text = GOOD.replace("name: w-1", "name: W_1");
        assert!(
            errors(&text)
                .starts_with("inv.yaml:9:11: node \"W_1\": name: \"W_1\" is not a valid node name"),
            "{}",
            errors(&text)
        );
        let text = GOOD.replace("name: w-1", "name: cp-1");
        assert_eq!(
            errors(&text),
            "inv.yaml:6:11: node \"cp-1\": name: listed twice (entries 1 and 2)"
        );
        let text = GOOD.replace(
            "versions: { kubelet: v1.27.3 }",
            "versions: { kubelet: v1.27.3, kube-apiserver: v1.27.3 }",
        );
        assert_eq!(
            errors(&text),
            "inv.yaml:12:51: node \"w-1\": versions.kube-apiserver: a worker cannot run kube-apiserver: add the control-plane role or remove the version"
        );
        let text = GOOD.replace("versions: { kubelet: v1.27.3 }", "versions: {}");
        assert_eq!(
            errors(&text),
            "inv.yaml:12:15: node \"w-1\": versions.kubelet: missing: every node runs a kubelet"
        );
        let text = GOOD.replace("roles: [control-plane]", "roles: [boss]");
        assert!(
            errors(&text)
                .starts_with("inv.yaml:7:12: node \"cp-1\": roles[0]: unknown variant `boss`"),
            "{}",
            errors(&text)
        );
        let text = GOOD.replace("kind: Inventory", "kind: Cluster");
        assert_eq!(
            errors(&text),
            "inv.yaml:2:7: kind: expected \"Inventory\", found \"Cluster\""
        );
    }

    #[test]
    fn reports_every_problem_and_never_panics_on_junk() {
        let text = GOOD
            .replace("kubelet: v1.27.3", "kubelet: nope")
            .replace("name: cp-1", "name: -cp");
        assert_eq!(errors(&text).lines().count(), 2, "{}", errors(&text));
        for junk in [
            "",
            "[]",
            "nodes: 3",
            "nodes: [1]",
            ":",
            "nodes:\n - {name: a, versions: {kubelet: v1.1.1}}",
            "\u{0}",
        ] {
            assert!(parse(junk, "j").is_err(), "{junk:?}");
        }
        assert!(
            errors("nodes:\n  - name: a\n    versions: { kubelet: v1.1.1 }\n")
                .contains("no node has the control-plane role")
        );
    }

    /// Nesting past the limit is refused by the pre-scan, where it starts, before the YAML
    /// parser (whose cost grows with the square of the depth) sees it.
    #[test]
    fn deep_nesting_is_refused_where_it_passes_the_limit() {
        let brackets = "[".repeat(100_000);
        let e = parse(&brackets, "deep.yaml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "deep.yaml:1:129: lists and mappings are nested more than 128 deep"
        );
        let text = format!(
            "nodes:\n  - name: a\n    labels: {{ x: {} }}\n",
            "{".repeat(200)
        );
        assert_eq!(
            errors(&text),
            "inv.yaml:3:145: lists and mappings are nested more than 128 deep"
        );
    }

    /// Every problem of a large file is found and located (in time in proportion to the file:
    /// see the `parse` bench).
    #[test]
    fn every_bad_entry_of_a_large_inventory_is_located() {
        let mut text = String::from(
            "nodes:\n  - name: cp\n    roles: [control-plane]\n    versions: { kubelet: v1.29.1, kube-apiserver: v1.29.1 }\n",
        );
        for i in 0..16_000 {
            text.push_str(&format!(
                "  - name: w-{i}\n    versions: {{ kubelet: 1.29.x }}\n"
            ));
        }
        let e = parse(&text, "big.yaml").unwrap_err();
        assert_eq!(e.problems.len(), 16_000);
        let shown = e.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(
            lines[0],
            "big.yaml:6:26: node \"w-0\": versions.kubelet: \"1.29.x\" is not a version: unexpected character 'x' in patch"
        );
        assert_eq!(
            lines[15_999],
            "big.yaml:32004:26: node \"w-15999\": versions.kubelet: \"1.29.x\" is not a version: unexpected character 'x' in patch"
        );
    }

    /// An entry is found by its place in the list, named or not, inline or not.
    #[test]
    fn entries_are_located_by_their_place() {
        let text = GOOD.replace("  - name: w-1\n", "  - nom: w-1\n");
        assert!(
            errors(&text).starts_with("inv.yaml:9:10: node \"#2\": nom: unknown field `nom`"),
            "{}",
            errors(&text)
        );
        assert_eq!(
            errors(&format!("{GOOD}  - 3\n")),
            "inv.yaml:13:5: node \"#3\": invalid type: integer `3`, expected struct Node"
        );
        let json = r#"{"nodes": [{"name": "cp", "roles": ["control-plane"], "versions": {"kubelet": "v1.29.1", "kube-apiserver": "v1.29.1"}},
  {"name": "w", "versions": {"kubelet": "v1.29.1", "etcd": "3.5.9-0"}}]}"#;
        assert_eq!(
            parse(json, "inv.json").unwrap_err().to_string(),
            "inv.json:2:60: node \"w\": versions.etcd: a worker cannot run etcd: add the control-plane role or remove the version"
        );
    }

    /// An SSH host or user that could reach a shell through the operator's `ssh` (a
    /// `ProxyCommand` with `%h` or `%r`) is refused where the file writes it.
    #[test]
    fn ssh_targets_are_checked_where_they_are_written() {
        let with_ssh = |ssh: &str| {
            GOOD.replace(
                "  - name: w-1\n",
                &format!("  - name: w-1\n    ssh: {ssh}\n"),
            )
        };
        let ok = parse(
            &with_ssh("{ host: \"[fd00::7]\", port: 2222, user: admin }"),
            "inv.yaml",
        )
        .unwrap();
        let t = ok.nodes[1].ssh.as_deref().unwrap();
        assert_eq!(t.ssh_host(), Some("fd00::7"));
        assert_eq!(
            errors(&with_ssh("{ host: \"x;touch /tmp/pwned\" }")),
            "inv.yaml:10:18: node \"w-1\": ssh.host: \"x;touch /tmp/pwned\" is not a DNS name or \
             an IP address: ';' is not allowed in a DNS name (letters, digits, '-' and '_' \
             between dots)"
        );
        assert_eq!(
            errors(&with_ssh("{ host: 10.0.0.7, user: \"$(id)\" }")),
            "inv.yaml:10:34: node \"w-1\": ssh.user: \"$(id)\" is not a POSIX user name: it \
             starts with a lower-case letter or '_', then lower-case letters, digits, '_' or '-' \
             (at most 32, a final '$' allowed)"
        );
        let both = errors(&with_ssh(
            "\n      host: \"-oProxyCommand=sh\"\n      port: 0\n      user: \"r\\u202e\"",
        ));
        let lines: Vec<&str> = both.lines().collect();
        assert_eq!(lines.len(), 3, "{both}");
        assert!(
            lines[0].starts_with("inv.yaml:11:13: node \"w-1\": ssh.host: \"-oProxyCommand=sh\""),
            "{both}"
        );
        assert_eq!(
            lines[1],
            "inv.yaml:12:13: node \"w-1\": ssh.port: 0 is not a port: use 1 to 65535"
        );
        assert!(
            lines[2].starts_with("inv.yaml:13:13: node \"w-1\": ssh.user: \"r\\u{202e}\" is not"),
            "{both}"
        );
        // A state built in code is held to the same rules.
        let mut state = parse(GOOD, "inv.yaml").unwrap();
        state.nodes[0].ssh = Some(Box::new(crate::SshTarget {
            host: Some("a b".into()),
            port: None,
            user: None,
        }));
        assert!(
            validate(&state)
                .unwrap_err()
                .to_string()
                .contains("node \"cp-1\": ssh.host: \"a b\" is not a DNS name"),
        );
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = parse("nodes: [\n  {name: a", "bad.yaml").unwrap_err();
        assert!(err.problems[0].location.is_some(), "{err}");
        assert!(err.to_string().starts_with("bad.yaml:"), "{err}");
    }
}
