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

use crate::{ClusterState, Component, Node};

/// The `apiVersion` an inventory may declare.
pub const API_VERSION: &str = "kupgrade.dev/v1alpha1";
/// The `kind` an inventory may declare.
pub const KIND: &str = "Inventory";

/// The inventory file's JSON Schema, generated from the types (kept in sync by a test).
pub const SCHEMA: &str = include_str!("../schema/inventory.schema.json");

/// An inventory that could not be read: every problem found, in file order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InventoryError {
    /// The file name used in messages.
    pub file: String,
    /// What is wrong, at least one.
    pub problems: Vec<Problem>,
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.file)?;
            if let Some((line, col)) = p.location {
                write!(f, ":{line}:{col}")?;
            }
            write!(f, ": ")?;
            if let Some(node) = &p.node {
                write!(f, "node {node:?}: ")?;
            }
            if let Some(field) = &p.field {
                write!(f, "{field}: ")?;
            }
            write!(f, "{}", p.message)?;
        }
        Ok(())
    }
}

/// One problem in an inventory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line and column, where known.
    pub location: Option<(usize, usize)>,
    /// The node at fault (its name, or `#N` for an entry with no usable name).
    pub node: Option<String>,
    /// The field at fault, as a dotted path inside the node or the file.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Parses and validates an inventory in YAML or JSON (JSON is read as YAML, which contains it).
/// `file` only names the source in messages.
pub fn parse(text: &str, file: &str) -> Result<ClusterState, InventoryError> {
    let fail = |problems: Vec<Problem>| InventoryError {
        file: file.to_string(),
        problems,
    };
    let value: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let location = e.location().map(|l| (l.line(), l.column()));
        let message = e.to_string();
        // serde_yaml_ng appends " at line L column C"; the location is printed up front.
        let message = match message.find(" at line ") {
            Some(i) if location.is_some() => message[..i].to_string(),
            _ => message,
        };
        fail(vec![Problem {
            location,
            node: None,
            field: None,
            message,
        }])
    })?;
    let locator = Locator::new(text);
    let mut problems = Vec::new();
    let mut top = match value {
        Value::Mapping(m) => m,
        Value::Null => {
            return Err(fail(vec![problem(None, None, None, "the file is empty")]));
        }
        other => {
            return Err(fail(vec![problem(
                None,
                None,
                None,
                &format!(
                    "expected a mapping with a `nodes` list, found {}",
                    kind_of(&other)
                ),
            )]));
        }
    };
    for (key, want) in [("apiVersion", API_VERSION), ("kind", KIND)] {
        if let Some(v) = top.remove(key)
            && v.as_str() != Some(want)
        {
            problems.push(problem(
                locator.key(None, key),
                None,
                Some(key),
                &format!("expected {want:?}, found {}", short(&v)),
            ));
        }
    }
    let raw_nodes = match top.remove("nodes") {
        Some(Value::Sequence(s)) => s,
        Some(other) => {
            problems.push(problem(
                locator.key(None, "nodes"),
                None,
                Some("nodes"),
                &format!("expected a list of nodes, found {}", kind_of(&other)),
            ));
            Vec::new()
        }
        None => {
            problems.push(problem(
                None,
                None,
                Some("nodes"),
                "missing: an inventory lists its nodes",
            ));
            Vec::new()
        }
    };
    // Everything but the nodes, checked by serde (unknown fields refused).
    top.insert(Value::from("nodes"), Value::Sequence(Vec::new()));
    let mut state = match from_value::<ClusterState>(Value::Mapping(top)) {
        Ok(s) => Some(s),
        Err((field, message)) => {
            let loc = field
                .as_deref()
                .and_then(|f| locator.key(None, f.rsplit('.').next().unwrap_or(f)));
            problems.push(Problem {
                location: loc,
                node: None,
                field,
                message,
            });
            None
        }
    };
    let mut nodes = Vec::with_capacity(raw_nodes.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in raw_nodes.into_iter().enumerate() {
        let name = raw
            .as_mapping()
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let label = name.clone().unwrap_or_else(|| format!("#{}", i + 1));
        match from_value::<Node>(raw) {
            Ok(node) => {
                if let Some(first) = seen.insert(node.name.to_string(), i) {
                    problems.push(problem(
                        locator.node_entry(&label, 1),
                        Some(&label),
                        Some("name"),
                        &format!("listed twice (entries {} and {})", first + 1, i + 1),
                    ));
                }
                check_node(&node, &label, &locator, &mut problems);
                nodes.push(node);
            }
            Err((field, message)) => {
                let loc = match &field {
                    Some(f) => locator.field(name.as_deref(), f),
                    None => locator.node_entry(&label, 0),
                };
                problems.push(Problem {
                    location: loc,
                    node: Some(label),
                    field,
                    message,
                });
            }
        }
    }
    if problems.is_empty() {
        let mut state = state.take().expect("no problems means the header parsed");
        state.nodes = nodes.into();
        if state.control_plane().next().is_none() {
            problems.push(problem(
                None,
                None,
                Some("nodes"),
                "no node has the control-plane role: kupgrade needs to know where the API servers run",
            ));
        } else {
            return Ok(state);
        }
    }
    problems.sort_by_key(|p| p.location.unwrap_or((usize::MAX, 0)));
    Err(fail(problems))
}

/// Validates a state built in code (or discovered) with the same rules as the file parser.
pub fn validate(state: &ClusterState) -> Result<(), InventoryError> {
    let locator = Locator::new("");
    let mut problems = Vec::new();
    let mut seen = HashMap::new();
    for (i, node) in state.nodes.iter().enumerate() {
        let label = node.name.to_string();
        if let Some(first) = seen.insert(label.clone(), i) {
            problems.push(problem(
                None,
                Some(&label),
                Some("name"),
                &format!("listed twice (entries {} and {})", first + 1, i + 1),
            ));
        }
        check_node(node, &label, &locator, &mut problems);
    }
    if state.control_plane().next().is_none() {
        problems.push(problem(
            None,
            None,
            Some("nodes"),
            "no node has the control-plane role",
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(InventoryError {
            file: "<cluster state>".to_string(),
            problems,
        })
    }
}

fn check_node(node: &Node, label: &str, locator: &Locator<'_>, out: &mut Vec<Problem>) {
    let at = |field: &str| {
        locator
            .field(Some(label), field)
            .or(locator.node_entry(label, 1))
    };
    if node.versions.kubelet.is_none() {
        out.push(problem(
            at("versions"),
            Some(label),
            Some("versions.kubelet"),
            "missing: every node runs a kubelet",
        ));
    }
    if node.is_control_plane() {
        if node.versions.kube_apiserver.is_none() {
            out.push(problem(
                locator.node_entry(label, 1),
                Some(label),
                Some("versions.kube-apiserver"),
                "a control-plane node must say which kube-apiserver version it runs",
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
                    Some(label),
                    Some(&field),
                    &format!(
                        "a worker cannot run {c}: add the control-plane role or remove the version"
                    ),
                ));
            }
        }
    }
    for (c, v) in node.versions.iter() {
        if c.version_line() == crate::VersionLine::Kubernetes && v.major() != 1 {
            let field = format!("versions.{}", c.name());
            out.push(problem(
                at(&field),
                Some(label),
                Some(&field),
                &format!("{v} is not a Kubernetes 1.x version"),
            ));
        }
    }
}

fn problem(
    loc: Option<(usize, usize)>,
    node: Option<&str>,
    field: Option<&str>,
    msg: &str,
) -> Problem {
    Problem {
        location: loc,
        node: node.map(str::to_string),
        field: field.map(str::to_string),
        message: msg.to_string(),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn short(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => kind_of(other).to_string(),
    }
}

/// Deserializes `value`, keeping the path of the field at fault (`versions.kubelet`).
fn from_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, (Option<String>, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != "." && !path.is_empty()).then_some(path);
        (field, e.into_inner().to_string())
    })
}

/// Finds where a node's entry and fields are written, by reading the text the way a person would:
/// the line that names the node, then the first line after it with the field's key.
struct Locator<'a> {
    lines: Vec<&'a str>,
}

impl<'a> Locator<'a> {
    fn new(text: &'a str) -> Self {
        Locator {
            lines: text.lines().collect(),
        }
    }

    /// `which`: 0 for the entry's first line, 1 for the column of the name value.
    fn node_entry(&self, name: &str, which: u8) -> Option<(usize, usize)> {
        self.lines.iter().enumerate().find_map(|(i, line)| {
            let key = line.find("name")?;
            let after = &line[key + 4..];
            let after_q = after.trim_start_matches('"');
            let rest = after_q.trim_start().strip_prefix(':')?;
            let value = rest.trim_start().trim_start_matches(['"', '\'']);
            if !value.starts_with(name) {
                return None;
            }
            let tail = &value[name.len()..];
            if !(tail.is_empty() || tail.starts_with(['"', '\'', ',', ' ', '}'])) {
                return None;
            }
            let col = if which == 0 {
                line.find(|c: char| !c.is_whitespace() && c != '-')
                    .unwrap_or(0)
            } else {
                line.len() - rest.trim_start().trim_start_matches(['"', '\'']).len()
            };
            Some((i + 1, col + 1))
        })
    }

    /// The value of `field` (a dotted path, last part searched) within the node's entry.
    fn field(&self, node: Option<&str>, field: &str) -> Option<(usize, usize)> {
        let start = match node {
            Some(n) => self.node_entry(n, 0)?.0 - 1,
            None => 0,
        };
        let key = field.rsplit('.').next().unwrap_or(field);
        let key = key.split('[').next().unwrap_or(key);
        self.find_key(start, key, node.is_some())
    }

    fn key(&self, node: Option<&str>, key: &str) -> Option<(usize, usize)> {
        let start = match node {
            Some(n) => self.node_entry(n, 0)?.0 - 1,
            None => 0,
        };
        self.find_key(start, key, node.is_some())
    }

    fn find_key(&self, start: usize, key: &str, in_node: bool) -> Option<(usize, usize)> {
        if key.is_empty() {
            // A path ending in a dot (a label key such as `topology.kubernetes.`) names no key
            // to look for; searching for "" would never advance.
            return None;
        }
        for (i, line) in self.lines.iter().enumerate().skip(start) {
            if in_node && i > start && line.trim_start().starts_with("- ") && line.contains("name")
            {
                return None; // the next node's entry
            }
            let mut from = 0;
            while let Some(pos) = line[from..].find(key) {
                let at = from + pos;
                let before = line[..at].chars().last();
                let after = &line[at + key.len()..];
                let after = after.strip_prefix('"').unwrap_or(after);
                let boundary = before.is_none_or(|c| " {,\"'\t-".contains(c));
                if boundary && after.trim_start().starts_with(':') {
                    let rest = after.trim_start()[1..].trim_start();
                    let col = line.len() - rest.len();
                    return Some((i + 1, col + 1));
                }
                from = at + key.len();
            }
        }
        None
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

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = parse("nodes: [\n  {name: a", "bad.yaml").unwrap_err();
        assert!(err.problems[0].location.is_some(), "{err}");
        assert!(err.to_string().starts_with("bad.yaml:"), "{err}");
    }
}
