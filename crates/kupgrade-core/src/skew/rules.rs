//! Declarative skew rules: a house policy written in YAML or JSON, checked like any other
//! [`SkewPolicy`].
//!
//! ```yaml
//! apiVersion: kupgrade.dev/v1alpha1   # optional header
//! kind: SkewRules
//! name: strict
//! rules:
//!   - id: strict/kubelet-lag
//!     kind: max-lag                   # kubelets at most one minor behind the newest API server
//!     component: kubelet
//!     apiserver: newest
//!     minors: 1
//!   - id: strict/kubectl
//!     kind: same-minor                # kubectl at the API server's minor
//!     component: kubectl
//!   - id: strict/kube-proxy
//!     kind: node-skew                 # kube-proxy at its kubelet's minor, node by node
//!     component: kube-proxy
//!     other: kubelet
//!     max: 0
//!   - id: strict/no-end-of-life
//!     kind: not-end-of-life           # nothing on an end-of-life minor on that date
//!     date: 2025-12-31
//!   - id: strict/canary-zone
//!     severity: warning
//!     nodes: { role: worker, labels: { topology.kubernetes.io/zone: eu-west-1a } }
//!     kind: minor-range
//!     component: kubelet
//!     min: "1.29"                     # quote minors: YAML reads 1.30 as the number 1.3
//! ```
//!
//! Every rule has an `id` (reported as the violation's rule), a `severity` (`error`, the
//! default, or `warning`), an optional `description` (said in each violation's sentence
//! instead of the generated requirement) and an optional `nodes` selector. The kinds are
//! [`Check`]'s variants. Where each rule looks:
//!
//! - On every node (that the selector matches): the versions the node lists. For
//!   [`NodeSkew`] the node's kube-proxy is the node's own value or else the add-on's.
//! - Cluster-wide, only for rules without a selector: the operators' kubectl, the kube-proxy
//!   DaemonSet, the CoreDNS Deployment and an external etcd.
//!
//! Rules that compare with kube-apiserver are silent on a state with no API server version.
//!
//! Errors name the file, the rule (its 1-based index and id) and the field:
//!
//! ```
//! use kupgrade_core::skew::rules::RulePolicy;
//! let text = "rules:\n  - id: lag\n    kind: max-lag\n    component: kubelet\n    minors: one\n";
//! let err = RulePolicy::parse(text, "strict.yaml").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "strict.yaml:5:13: rule 1 (\"lag\"): minors: invalid type: string \"one\", expected u32"
//! );
//! ```
//!
//! Rules add to a policy; combine them with the upstream one with [`RulePolicy::with_upstream`]:
//!
//! ```
//! use kupgrade_core::{inventory, skew::{SkewPolicy, rules::RulePolicy}};
//! let rules = RulePolicy::parse(
//!     "name: strict\nrules:\n  - { id: strict/kubelet-lag, kind: max-lag, component: kubelet, minors: 1 }\n",
//!     "strict.yaml",
//! )?;
//! let policy = rules.with_upstream();
//! assert_eq!(policy.name(), "upstream+strict");
//! let cluster = inventory::parse(
//!     "nodes:\n  - { name: cp, roles: [control-plane], versions: { kubelet: v1.29.4, kube-apiserver: v1.29.4 } }\n  - { name: w, versions: { kubelet: v1.27.13 } }\n",
//!     "inventory.yaml",
//! )?;
//! let errors = policy.errors(&cluster);
//! assert_eq!(errors.len(), 1);
//! assert_eq!(
//!     errors[0].message,
//!     "kubelet on node \"w\" is v1.27.13, 2 minors behind the newest kube-apiserver (v1.29.4); \
//!      kubelet may be at most 1 minor behind the newest kube-apiserver (allowed: 1.28 or newer)"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_yaml_ng::{Mapping, Value};

use super::{AllOf, Context, MinorRange, Severity, SkewPolicy, UpstreamPolicy, Violation};
use crate::lifecycle::{ReleaseCalendar, SupportStatus};
use crate::{Component, EtcdTopology, KubeVersion, Minor, Node, Role, VersionLine};
use jiff::civil::Date;

/// The `apiVersion` a rules file may declare.
pub const API_VERSION: &str = "kupgrade.dev/v1alpha1";
/// The `kind` a rules file may declare.
pub const KIND: &str = "SkewRules";
/// The rules file's JSON Schema, generated from the types (kept in sync by a test).
pub const SCHEMA: &str = include_str!("../../schema/rules.schema.json");

/// A policy made of declarative [`Rule`]s.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    title = "kupgrade skew rules",
    description = "Declarative version skew rules, checked like any kupgrade skew policy.",
    deny_unknown_fields
)]
pub struct RulePolicy {
    /// The policy's name in reports (`strict`); `rules` when the file gives none.
    #[serde(default = "default_name")]
    name: String,
    /// The rules, checked in order.
    rules: Vec<Rule>,
}

/// One declarative rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("unevaluatedProperties" = false))]
pub struct Rule {
    /// The rule's id, reported as each violation's `rule` (`strict/kubelet-lag`): letters,
    /// digits, `-`, `_`, `.` and `/`, unique in its file.
    pub id: String,
    /// How serious a violation is (`error` unless said otherwise).
    #[serde(default = "error", skip_serializing_if = "is_error")]
    #[schemars(with = "SeveritySchema")]
    pub severity: Severity,
    /// Why the rule exists; said in each violation instead of the generated requirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Which nodes the rule looks at; a rule with a selector only looks at nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodeSelector>,
    /// What the rule checks.
    #[serde(flatten)]
    pub check: Check,
}

/// How serious a violation is.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "Severity")]
#[allow(dead_code)]
enum SeveritySchema {
    /// Advice: reported, but the state is acceptable.
    Warning,
    /// The state is outside the policy.
    Error,
}

fn default_name() -> String {
    "rules".into()
}
fn error() -> Severity {
    Severity::Error
}
fn is_error(s: &Severity) -> bool {
    *s == Severity::Error
}

/// Which nodes a rule looks at: all conditions must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSelector {
    /// Only nodes with this role (`worker` means every node that is not control plane).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Only nodes carrying every one of these labels with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl NodeSelector {
    /// Whether `node` is selected.
    pub fn matches(&self, node: &Node) -> bool {
        let role_ok = match self.role {
            None => true,
            Some(Role::ControlPlane) => node.is_control_plane(),
            Some(Role::Worker) => !node.is_control_plane(),
        };
        role_ok
            && self
                .labels
                .iter()
                .all(|(k, v)| node.labels.get(k).is_some_and(|x| x == v))
    }
}

/// What a rule checks; the `kind` field of a rule names the variant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Check {
    /// A component at most some minors behind kube-apiserver.
    MaxLag(MaxLag),
    /// A component at exactly the minor of kube-apiserver.
    SameMinor(SameMinor),
    /// Two components on one node at most some minors apart.
    NodeSkew(NodeSkew),
    /// A component's minor within a range.
    MinorRange(MinorRangeRule),
    /// No component on a minor past its end of life on a date.
    NotEndOfLife(NotEndOfLife),
}

impl Check {
    /// The name of the kind, as written in files (`max-lag`).
    pub fn kind(&self) -> &'static str {
        match self {
            Check::MaxLag(_) => "max-lag",
            Check::SameMinor(_) => "same-minor",
            Check::NodeSkew(_) => "node-skew",
            Check::MinorRange(_) => "minor-range",
            Check::NotEndOfLife(_) => "not-end-of-life",
        }
    }

    /// Every kind, as written in files.
    pub const KINDS: [&'static str; 5] = [
        "max-lag",
        "same-minor",
        "node-skew",
        "minor-range",
        "not-end-of-life",
    ];
}

/// Which kube-apiserver a rule compares with when the API servers differ (mid-upgrade).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Apiserver {
    /// The newest kube-apiserver (how the upstream policy measures lag).
    #[default]
    Newest,
    /// The oldest kube-apiserver (the minor the control plane is at).
    Oldest,
}

impl fmt::Display for Apiserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Apiserver::Newest => "newest",
            Apiserver::Oldest => "oldest",
        })
    }
}

/// `kind: max-lag`: `component` at most `minors` minors behind kube-apiserver (newer is not
/// this rule's concern).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaxLag {
    /// The component checked (numbered like Kubernetes).
    pub component: Component,
    /// The API server compared with (`newest` unless said otherwise).
    #[serde(default)]
    pub apiserver: Apiserver,
    /// How many minors behind it may be.
    pub minors: u32,
}

/// `kind: same-minor`: `component` at exactly the minor of kube-apiserver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SameMinor {
    /// The component checked (numbered like Kubernetes).
    pub component: Component,
    /// The API server compared with (`newest` unless said otherwise).
    #[serde(default)]
    pub apiserver: Apiserver,
}

/// `kind: node-skew`: on each node running both, `component` at most `max` minors from
/// `other`, either way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSkew {
    /// The component checked (reported as at fault).
    pub component: Component,
    /// The component on the same node it is compared with.
    pub other: Component,
    /// How many minors apart they may be.
    pub max: u32,
}

/// `kind: minor-range`: `component`'s minor within `min..=max` (either end may be left out,
/// not both).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MinorRangeRule {
    /// The component checked (etcd and CoreDNS are compared by their own minors).
    pub component: Component,
    /// The oldest minor allowed (write it quoted: `"1.30"`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "quoted_minor"
    )]
    pub min: Option<Minor>,
    /// The newest minor allowed (write it quoted).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "quoted_minor"
    )]
    pub max: Option<Minor>,
}

impl MinorRangeRule {
    /// The range as a [`MinorRange`].
    pub fn range(&self) -> MinorRange {
        MinorRange {
            min: self.min,
            max: self.max,
        }
    }
}

/// `kind: not-end-of-life`: no component on a minor that is past its end of life on `date`,
/// by the embedded [`ReleaseCalendar`] (estimated dates count).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotEndOfLife {
    /// The date to judge on (`2025-06-01`): the policy never reads the clock.
    #[schemars(with = "String", extend("format" = "date"))]
    #[serde(deserialize_with = "date_field")]
    pub date: Date,
    /// The components checked; every component numbered like Kubernetes when left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
}

/// The components numbered like Kubernetes, which the release calendar covers.
const KUBERNETES_LINE: [Component; 8] = [
    Component::KubeApiserver,
    Component::KubeControllerManager,
    Component::KubeScheduler,
    Component::CloudControllerManager,
    Component::Kubelet,
    Component::KubeProxy,
    Component::Kubectl,
    Component::Kubeadm,
];

/// A date, with the input quoted when it is not one.
fn date_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(|e| {
        serde::de::Error::custom(format!("{s:?} is not a date (write YYYY-MM-DD): {e}"))
    })
}

/// A minor, with a hint when YAML turned it into a number.
fn quoted_minor<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Minor>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(f64),
    }
    match Raw::deserialize(d)? {
        Raw::Text(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
        Raw::Number(n) => Err(serde::de::Error::custom(format!(
            "a minor must be quoted: {n} is a number (YAML reads 1.30 as 1.3); write \"1.30\""
        ))),
    }
}

/// A rules file that could not be read: every problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct RulesError {
    /// The file name used in messages.
    pub file: String,
    /// What is wrong, at least one.
    pub problems: Vec<RuleProblem>,
}

/// One problem in a rules file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleProblem {
    /// 1-based line and column, where known.
    pub location: Option<(usize, usize)>,
    /// The rule at fault: its 1-based index and its id when it has one.
    pub rule: Option<(usize, Option<String>)>,
    /// The field at fault, as a path inside the rule or the file (`nodes.role`).
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RulesError {
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
            match &p.rule {
                Some((n, Some(id))) => write!(f, "rule {n} ({id:?}): ")?,
                Some((n, None)) => write!(f, "rule {n}: ")?,
                None => {}
            }
            if let Some(field) = &p.field {
                write!(f, "{field}: ")?;
            }
            write!(f, "{}", p.message)?;
        }
        Ok(())
    }
}

const RULE_KEYS: [&str; 4] = ["id", "severity", "description", "nodes"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    id: String,
    #[serde(default = "error")]
    severity: Severity,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    nodes: Option<NodeSelector>,
}

impl RulePolicy {
    /// A policy from rules built in code, checked like a file's (ids unique and well formed,
    /// components fit for the rule's kind).
    pub fn new(name: impl Into<String>, rules: Vec<Rule>) -> Result<Self, RulesError> {
        let policy = RulePolicy {
            name: name.into(),
            rules,
        };
        let mut problems = Vec::new();
        let indices: Vec<usize> = (0..policy.rules.len()).collect();
        policy.validate(&indices, &mut problems);
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(RulesError {
                file: "<rules>".into(),
                problems,
            })
        }
    }

    /// Parses a rules file in YAML or JSON. `file` only names the source in messages. Every
    /// problem found is reported.
    pub fn parse(text: &str, file: &str) -> Result<Self, RulesError> {
        let fail = |problems: Vec<RuleProblem>| RulesError {
            file: file.to_string(),
            problems,
        };
        let value: Value = serde_yaml_ng::from_str(text).map_err(|e| {
            let location = e.location().map(|l| (l.line(), l.column()));
            let message = e.to_string();
            let message = match message.find(" at line ") {
                Some(i) if location.is_some() => message[..i].to_string(),
                _ => message,
            };
            fail(vec![problem(location, None, None, message)])
        })?;
        let locator = Locator::new(text);
        let mut top = match value {
            Value::Mapping(m) => m,
            Value::Null => return Err(fail(vec![problem(None, None, None, "the file is empty")])),
            other => {
                return Err(fail(vec![problem(
                    None,
                    None,
                    None,
                    format!(
                        "expected a mapping with a `rules` list, found {}",
                        kind_of(&other)
                    ),
                )]));
            }
        };
        let mut problems = Vec::new();
        for (key, want) in [("apiVersion", API_VERSION), ("kind", KIND)] {
            if let Some(v) = top.remove(key)
                && v.as_str() != Some(want)
            {
                problems.push(problem(
                    locator.top_key(key),
                    None,
                    Some(key.into()),
                    format!("expected {want:?}, found {}", short(&v)),
                ));
            }
        }
        let name = match top.remove("name") {
            None => "rules".to_string(),
            Some(Value::String(s)) if !s.trim().is_empty() => s,
            Some(other) => {
                problems.push(problem(
                    locator.top_key("name"),
                    None,
                    Some("name".into()),
                    format!("expected a non-empty string, found {}", short(&other)),
                ));
                "rules".to_string()
            }
        };
        let raw_rules = match top.remove("rules") {
            Some(Value::Sequence(s)) => s,
            Some(Value::Null) => Vec::new(),
            Some(other) => {
                problems.push(problem(
                    locator.top_key("rules"),
                    None,
                    Some("rules".into()),
                    format!("expected a list of rules, found {}", kind_of(&other)),
                ));
                Vec::new()
            }
            None => {
                problems.push(problem(
                    None,
                    None,
                    Some("rules".into()),
                    "missing: a rules file lists its rules",
                ));
                Vec::new()
            }
        };
        for (key, _) in top {
            let key = short(&key);
            problems.push(problem(
                None,
                None,
                None,
                format!(
                    "unknown field {key}, expected one of `apiVersion`, `kind`, `name`, `rules`"
                ),
            ));
        }
        let mut rules = Vec::with_capacity(raw_rules.len());
        let mut indices = Vec::with_capacity(raw_rules.len());
        for (i, raw) in raw_rules.into_iter().enumerate() {
            match parse_rule(raw, i, &locator) {
                Ok(rule) => {
                    rules.push(rule);
                    indices.push(i);
                }
                Err(p) => problems.push(p),
            }
        }
        let policy = RulePolicy { name, rules };
        // The rules that did parse are checked too, so one pass reports every problem.
        let mut found = Vec::new();
        policy.validate(&indices, &mut found);
        for p in &mut found {
            if let Some((n, _)) = &p.rule {
                p.location = locator.rule_field(n - 1, p.field.as_deref());
            }
        }
        problems.extend(found);
        problems.sort_by_key(|p| p.rule.as_ref().map_or(0, |r| r.0));
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(fail(problems))
        }
    }

    /// The policy's name.
    pub fn policy_name(&self) -> &str {
        &self.name
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The policy as a rules file (YAML) that [`RulePolicy::parse`] reads back to the same
    /// policy.
    pub fn to_yaml(&self) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct File<'a> {
            api_version: &'a str,
            kind: &'a str,
            #[serde(flatten)]
            policy: &'a RulePolicy,
        }
        serde_yaml_ng::to_string(&File {
            api_version: API_VERSION,
            kind: KIND,
            policy: self,
        })
        .expect("rules serialize to YAML")
    }

    /// The upstream policy and these rules: both must pass.
    pub fn with_upstream(self) -> AllOf {
        with_upstream(UpstreamPolicy::new(), self)
    }

    /// Checks the rules; `indices[i]` is rule `i`'s 0-based position in its file.
    fn validate(&self, indices: &[usize], out: &mut Vec<RuleProblem>) {
        if self.name.trim().is_empty() {
            out.push(problem(
                None,
                None,
                Some("name".into()),
                "a policy needs a name",
            ));
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (&i, rule) in indices.iter().zip(&self.rules) {
            let at = Some((i + 1, Some(rule.id.clone())));
            let mut bad = |field: &str, message: String| {
                out.push(problem(None, at.clone(), Some(field.into()), message));
            };
            if rule.id.is_empty() {
                bad("id", "an id cannot be empty".into());
            } else if let Some(c) = rule
                .id
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "-_./".contains(*c)))
            {
                bad(
                    "id",
                    format!("{c:?} is not allowed (letters, digits, '-', '_', '.' and '/')"),
                );
            }
            if let Some(first) = seen.insert(&rule.id, i) {
                bad(
                    "id",
                    format!("used twice (rules {} and {})", first + 1, i + 1),
                );
            }
            let kind = rule.check.kind();
            let kubernetes_line = |field: &str, c: Component, bad: &mut dyn FnMut(&str, String)| {
                if c.version_line() == VersionLine::Own {
                    bad(
                        field,
                        format!(
                            "{c} has its own version numbers; a {kind} rule compares Kubernetes minors"
                        ),
                    );
                }
            };
            match &rule.check {
                Check::MaxLag(MaxLag { component, .. })
                | Check::SameMinor(SameMinor { component, .. }) => {
                    kubernetes_line("component", *component, &mut bad);
                }
                Check::NodeSkew(NodeSkew {
                    component, other, ..
                }) => {
                    kubernetes_line("component", *component, &mut bad);
                    kubernetes_line("other", *other, &mut bad);
                    if component == other {
                        bad("other", format!("compares {component} with itself"));
                    }
                }
                Check::MinorRange(r) => {
                    if r.min.is_none() && r.max.is_none() {
                        bad("min", "give min, max or both".into());
                    }
                    if let (Some(lo), Some(hi)) = (r.min, r.max)
                        && lo > hi
                    {
                        bad("max", format!("{hi} is older than min {lo}"));
                    }
                }
                Check::NotEndOfLife(r) => {
                    for (i, c) in r.components.iter().enumerate() {
                        if c.version_line() == VersionLine::Own {
                            bad(
                                &format!("components[{i}]"),
                                format!(
                                    "{c} has its own version numbers; the release calendar covers Kubernetes minors"
                                ),
                            );
                        }
                    }
                }
            }
            if rule.nodes.is_some() && rule.components() == [Component::CoreDns] {
                bad(
                    "nodes",
                    "coredns is a cluster add-on, not on any node; drop the selector".into(),
                );
            }
        }
    }
}

/// `upstream` and `rules` combined: both must pass, upstream's violations first.
pub fn with_upstream(upstream: UpstreamPolicy, rules: RulePolicy) -> AllOf {
    AllOf::new(vec![Box::new(upstream), Box::new(rules)])
}

fn parse_rule(raw: Value, i: usize, locator: &Locator<'_>) -> Result<Rule, RuleProblem> {
    let id = raw
        .as_mapping()
        .and_then(|m| m.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let at = Some((i + 1, id.clone()));
    let locate = |field: Option<&str>| locator.rule_field(i, field);
    let fail = |field: Option<&str>, message: String| RuleProblem {
        location: locate(field),
        rule: at.clone(),
        field: field.map(str::to_string),
        message,
    };
    let Value::Mapping(map) = raw else {
        return Err(fail(
            None,
            format!("expected a mapping, found {}", kind_of(&raw)),
        ));
    };
    let mut common = Mapping::new();
    let mut params = Mapping::new();
    let mut kind = None;
    for (k, v) in map {
        match k.as_str() {
            Some("kind") => kind = Some(v),
            Some(key) if RULE_KEYS.contains(&key) => {
                common.insert(k, v);
            }
            _ => {
                params.insert(k, v);
            }
        }
    }
    let kinds = Check::KINDS.join(", ");
    let kind = match kind {
        None => {
            return Err(fail(
                Some("kind"),
                format!("missing: say which kind of rule this is ({kinds})"),
            ));
        }
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(fail(
                Some("kind"),
                format!("expected one of {kinds}, found {}", short(&other)),
            ));
        }
    };
    let c: Common =
        from_value(Value::Mapping(common)).map_err(|(field, msg)| fail(field.as_deref(), msg))?;
    let params = Value::Mapping(params);
    let de = |r: Result<Check, (Option<String>, String)>| {
        r.map_err(|(field, msg)| fail(field.as_deref(), msg))
    };
    let check = match kind.as_str() {
        "max-lag" => de(from_value(params).map(Check::MaxLag))?,
        "same-minor" => de(from_value(params).map(Check::SameMinor))?,
        "node-skew" => de(from_value(params).map(Check::NodeSkew))?,
        "minor-range" => de(from_value(params).map(Check::MinorRange))?,
        "not-end-of-life" => de(from_value(params).map(Check::NotEndOfLife))?,
        other => {
            return Err(fail(
                Some("kind"),
                format!("unknown kind {other:?}, expected one of {kinds}"),
            ));
        }
    };
    Ok(Rule {
        id: c.id,
        severity: c.severity,
        description: c.description,
        nodes: c.nodes,
        check,
    })
}

/// Deserializes `value`, keeping the path of the field at fault (`nodes.role`).
fn from_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, (Option<String>, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != "." && !path.is_empty()).then_some(path);
        let message = e.into_inner().to_string();
        // serde names the field in "missing field `x`"; say it the way the rest of the file does.
        match message.strip_prefix("missing field `") {
            Some(rest) if field.is_none() => {
                let name = rest.trim_end_matches('`').to_string();
                (Some(name), "missing".to_string())
            }
            _ => (field, message),
        }
    })
}

fn problem(
    location: Option<(usize, usize)>,
    rule: Option<(usize, Option<String>)>,
    field: Option<String>,
    message: impl Into<String>,
) -> RuleProblem {
    RuleProblem {
        location,
        rule,
        field,
        message: message.into(),
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

/// Finds where a rule and its fields are written: the line that gives the rule's id, then the
/// first line of that rule with the field's key.
struct Locator<'a> {
    lines: Vec<&'a str>,
}

impl<'a> Locator<'a> {
    fn new(text: &'a str) -> Self {
        Locator {
            lines: text.lines().collect(),
        }
    }

    fn top_key(&self, key: &str) -> Option<(usize, usize)> {
        self.lines.iter().enumerate().find_map(|(i, line)| {
            let rest = line.strip_prefix(key)?.trim_start().strip_prefix(':')?;
            Some((i + 1, line.len() - rest.trim_start().len() + 1))
        })
    }

    /// Where `key: value` is written on `line`, as the column of the value.
    fn value_col(line: &str, key: &str) -> Option<usize> {
        let mut from = 0;
        while let Some(pos) = line[from..].find(key) {
            let at = from + pos;
            let before = line[..at].chars().last();
            let after = &line[at + key.len()..];
            let after = after.strip_prefix('"').unwrap_or(after);
            if before.is_none_or(|c| " {,\"'\t-".contains(c))
                && let Some(rest) = after.trim_start().strip_prefix(':')
            {
                return Some(line.len() - rest.trim_start().len() + 1);
            }
            from = at + key.len();
        }
        None
    }

    /// The lines of each entry of the top-level `rules:` list written in block style
    /// (`start..end`); empty when the list is written inline.
    fn entries(&self) -> Vec<(usize, usize)> {
        let indent = |l: &str| l.len() - l.trim_start().len();
        let skip = |l: &str| l.trim().is_empty() || l.trim_start().starts_with('#');
        let Some(top) = self.lines.iter().position(|l| {
            l.strip_prefix("rules")
                .is_some_and(|r| r.trim() == ":" || r.trim_start().starts_with(": #"))
        }) else {
            return Vec::new();
        };
        let mut out: Vec<(usize, usize)> = Vec::new();
        let mut item_indent = None;
        for (i, line) in self.lines.iter().enumerate().skip(top + 1) {
            if skip(line) {
                continue;
            }
            let at = indent(line);
            let dash = line.trim_start().starts_with('-');
            match item_indent {
                None if dash => item_indent = Some(at),
                None => break,
                Some(n) if at < n || (at == n && !dash) => break,
                _ => {}
            }
            if dash && Some(at) == item_indent {
                if let Some(last) = out.last_mut() {
                    last.1 = i;
                }
                out.push((i, i + 1));
            } else if let Some(last) = out.last_mut() {
                last.1 = i + 1;
            }
        }
        out
    }

    /// Where rule `index` (0-based) writes `field` (its last part), or where the rule starts.
    fn rule_field(&self, index: usize, field: Option<&str>) -> Option<(usize, usize)> {
        let (start, end) = *self.entries().get(index)?;
        let first = self.lines[start];
        let entry_col = first.len() - first.trim_start_matches([' ', '-', '{']).len() + 1;
        let Some(field) = field else {
            return Some((start + 1, entry_col));
        };
        let key = field.rsplit('.').next().unwrap_or(field);
        let key = key.split('[').next().unwrap_or(key);
        (start..end)
            .find_map(|i| Self::value_col(self.lines[i], key).map(|col| (i + 1, col)))
            .or(Some((start + 1, entry_col)))
    }
}

/// Where a checked version was found.
#[derive(Clone, Copy)]
enum Place<'a> {
    Node(&'a Node),
    Cluster,
}

impl Place<'_> {
    fn subject(self, c: Component) -> String {
        match self {
            Place::Node(n) => format!("{c} on node {:?}", n.name.as_str()),
            Place::Cluster => match c {
                Component::Kubectl => "the cluster's kubectl".into(),
                Component::KubeProxy => "the kube-proxy DaemonSet".into(),
                Component::CoreDns => "the CoreDNS Deployment".into(),
                Component::Etcd => "the external etcd".into(),
                other => other.to_string(),
            },
        }
    }
    fn node(self) -> Option<crate::NodeName> {
        match self {
            Place::Node(n) => Some(n.name.clone()),
            Place::Cluster => None,
        }
    }
}

fn minors(n: i64) -> String {
    if n == 1 {
        "1 minor".into()
    } else {
        format!("{n} minors")
    }
}

fn minus(m: Minor, n: u32) -> Minor {
    Minor::new(m.major(), m.minor().saturating_sub(u64::from(n)))
}

impl Rule {
    /// The components the rule checks (the one at fault in its violations).
    pub fn components(&self) -> &[Component] {
        match &self.check {
            Check::MaxLag(r) => std::slice::from_ref(&r.component),
            Check::SameMinor(r) => std::slice::from_ref(&r.component),
            Check::NodeSkew(r) => std::slice::from_ref(&r.component),
            Check::MinorRange(r) => std::slice::from_ref(&r.component),
            Check::NotEndOfLife(r) if r.components.is_empty() => &KUBERNETES_LINE,
            Check::NotEndOfLife(r) => &r.components,
        }
    }

    fn violation(
        &self,
        place: Place<'_>,
        c: Component,
        found: &KubeVersion,
        fact: String,
        requirement: String,
        allowed: String,
    ) -> Violation {
        let requirement = self.description.as_deref().unwrap_or(&requirement);
        Violation {
            rule: self.id.clone(),
            severity: self.severity,
            component: c,
            node: place.node(),
            found: found.clone(),
            message: format!(
                "{} is {found}, {fact}; {requirement} (allowed: {allowed})",
                place.subject(c)
            ),
            allowed,
        }
    }

    /// Checks the version of component `c` found at `place`.
    fn check(
        &self,
        cx: &Context<'_>,
        place: Place<'_>,
        c: Component,
        found: &KubeVersion,
        out: &mut Vec<Violation>,
    ) {
        let s = cx.summary;
        let apiserver = |which: Apiserver| match which {
            Apiserver::Newest => s.apiserver_max.as_ref(),
            Apiserver::Oldest => s.apiserver_min.as_ref(),
        };
        let m = found.minor();
        match &self.check {
            Check::MaxLag(r) => {
                let Some(api) = apiserver(r.apiserver) else {
                    return;
                };
                let lag = m.skew_to(api.minor());
                if lag > i64::from(r.minors) {
                    let allowed = MinorRange {
                        min: Some(minus(api.minor(), r.minors)),
                        max: None,
                    };
                    out.push(self.violation(
                        place,
                        c,
                        found,
                        format!(
                            "{} behind the {} kube-apiserver ({api})",
                            minors(lag),
                            r.apiserver
                        ),
                        if r.minors == 0 {
                            format!(
                                "{} may not be behind the {} kube-apiserver",
                                r.component, r.apiserver
                            )
                        } else {
                            format!(
                                "{} may be at most {} behind the {} kube-apiserver",
                                r.component,
                                minors(r.minors.into()),
                                r.apiserver
                            )
                        },
                        allowed.to_string(),
                    ));
                }
            }
            Check::SameMinor(r) => {
                let Some(api) = apiserver(r.apiserver) else {
                    return;
                };
                if m != api.minor() {
                    let d = m.skew_to(api.minor());
                    let fact = if d > 0 {
                        format!(
                            "{} behind the {} kube-apiserver ({api})",
                            minors(d),
                            r.apiserver
                        )
                    } else {
                        format!(
                            "{} ahead of the {} kube-apiserver ({api})",
                            minors(-d),
                            r.apiserver
                        )
                    };
                    out.push(self.violation(
                        place,
                        c,
                        found,
                        fact,
                        format!(
                            "{} must be at the minor of the {} kube-apiserver",
                            r.component, r.apiserver
                        ),
                        api.minor().to_string(),
                    ));
                }
            }
            Check::NodeSkew(r) => {
                let Place::Node(node) = place else { return };
                let other = if r.other == Component::KubeProxy {
                    cx.state.kube_proxy_on(node)
                } else {
                    node.versions.get(r.other)
                };
                let Some(other) = other else { return };
                let om = other.minor();
                let d = om.skew_to(m);
                if d.abs() > i64::from(r.max) {
                    let allowed = MinorRange::new(
                        minus(om, r.max),
                        Minor::new(om.major(), om.minor() + u64::from(r.max)),
                    );
                    let (n, way) = if d > 0 { (d, "newer") } else { (-d, "older") };
                    let requirement = if r.max == 0 {
                        format!(
                            "{} must be at the minor of the {} on its node",
                            r.component, r.other
                        )
                    } else {
                        format!(
                            "{} must be within {} of the {} on its node",
                            r.component,
                            minors(r.max.into()),
                            r.other
                        )
                    };
                    out.push(self.violation(
                        place,
                        c,
                        found,
                        format!(
                            "{} {way} than the {} beside it ({other})",
                            minors(n),
                            r.other
                        ),
                        requirement,
                        allowed.to_string(),
                    ));
                }
            }
            Check::MinorRange(r) => {
                let range = r.range();
                if !range.contains(m) {
                    let fact = match (r.min, r.max) {
                        (Some(lo), _) if m < lo => format!("older than {lo}"),
                        _ => format!("newer than {}", r.max.unwrap_or(m)),
                    };
                    out.push(self.violation(
                        place,
                        c,
                        found,
                        fact,
                        format!("{} must be at {range}", r.component),
                        range.to_string(),
                    ));
                }
            }
            Check::NotEndOfLife(r) => {
                let calendar = ReleaseCalendar::embedded();
                let answer = calendar.status(m, r.date);
                if let SupportStatus::EndOfLife { since } = answer.status {
                    let estimated = if answer.estimated { " (estimated)" } else { "" };
                    let supported = calendar.supported_minors(r.date);
                    let allowed = match (supported.first(), supported.last()) {
                        (Some(lo), Some(hi)) => MinorRange::new(*lo, *hi).to_string(),
                        _ => "none known".to_string(),
                    };
                    out.push(self.violation(
                        place,
                        c,
                        found,
                        format!("and {m} reached its end of life on {since}{estimated}"),
                        if r.components.is_empty() {
                            format!("no component may run an end-of-life minor on {}", r.date)
                        } else {
                            format!("{c} may not run an end-of-life minor on {}", r.date)
                        },
                        allowed,
                    ));
                }
            }
        }
    }
}

impl SkewPolicy for RulePolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn check_cluster(&self, cx: &Context<'_>, out: &mut Vec<Violation>) {
        let state = cx.state;
        for rule in &self.rules {
            if rule.nodes.is_some() {
                continue;
            }
            for &c in rule.components() {
                let found = match c {
                    Component::Kubectl => state.kubectl.as_ref(),
                    Component::KubeProxy => state.addons.kube_proxy.as_ref(),
                    Component::CoreDns => state.addons.coredns.as_ref(),
                    Component::Etcd => match &state.etcd {
                        EtcdTopology::External { version, .. } => version.as_ref(),
                        EtcdTopology::Stacked => None,
                    },
                    _ => None,
                };
                if let Some(found) = found {
                    rule.check(cx, Place::Cluster, c, found, out);
                }
            }
        }
    }

    fn check_node(&self, cx: &Context<'_>, node: &Node, out: &mut Vec<Violation>) {
        for rule in &self.rules {
            if rule.nodes.as_ref().is_some_and(|sel| !sel.matches(node)) {
                continue;
            }
            for &c in rule.components() {
                let found = match &rule.check {
                    // Skew on a node is about what runs there, the add-on's kube-proxy included.
                    Check::NodeSkew(_) if c == Component::KubeProxy => cx.state.kube_proxy_on(node),
                    _ => node.versions.get(c),
                };
                if let Some(found) = found {
                    rule.check(cx, Place::Node(node), c, found, out);
                }
            }
        }
    }
}

/// The rules file's JSON Schema, freshly generated from the types.
pub fn schema_json() -> String {
    let mut schema = schemars::schema_for!(RulePolicy);
    if let Some(props) = schema
        .as_object_mut()
        .and_then(|o| o.get_mut("properties"))
        .and_then(|p| p.as_object_mut())
    {
        props.insert(
            "apiVersion".into(),
            serde_json::json!({ "const": API_VERSION, "description": "Optional format header" }),
        );
        props.insert(
            "kind".into(),
            serde_json::json!({ "const": KIND, "description": "Optional format header" }),
        );
    }
    let mut s = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClusterState, inventory};

    const MID_UPGRADE: &str = "\
addons: { kube-proxy: v1.29.4, coredns: v1.11.1 }
kubectl: v1.27.1
nodes:
  - name: cp-1
    roles: [control-plane]
    versions: { kubelet: v1.29.4, kubectl: v1.29.4, kube-apiserver: v1.29.4 }
  - name: cp-2
    roles: [control-plane]
    versions: { kubelet: v1.28.9, kubectl: v1.28.9, kube-apiserver: v1.28.9 }
  - name: w-1
    labels: { topology.kubernetes.io/zone: a }
    versions: { kubelet: v1.28.9, kube-proxy: v1.28.9 }
  - name: w-2
    labels: { topology.kubernetes.io/zone: b }
    versions: { kubelet: v1.27.13 }
";

    fn state() -> ClusterState {
        inventory::parse(MID_UPGRADE, "inv.yaml").unwrap()
    }

    fn policy(rules: &str) -> RulePolicy {
        RulePolicy::parse(&format!("name: t\nrules:\n{rules}"), "t.yaml").unwrap()
    }

    /// `rule node` for every violation, in evaluation order.
    fn found(p: &RulePolicy, s: &ClusterState) -> Vec<String> {
        p.evaluate(s)
            .iter()
            .map(|v| {
                let node = v.node.as_ref().map_or("-", |n| n.as_str());
                format!("{} {} {node}", v.rule, v.component)
            })
            .collect()
    }

    fn err(text: &str) -> String {
        RulePolicy::parse(text, "r.yaml").unwrap_err().to_string()
    }

    #[test]
    fn max_lag_against_newest_or_oldest() {
        let p = policy("  - { id: lag, kind: max-lag, component: kubelet, minors: 1 }\n");
        assert_eq!(found(&p, &state()), ["lag kubelet w-2"]);
        let v = &p.evaluate(&state())[0];
        assert_eq!(v.allowed, "1.28 or newer");
        assert_eq!(v.found.to_string(), "v1.27.13");
        assert_eq!(
            v.message,
            "kubelet on node \"w-2\" is v1.27.13, 2 minors behind the newest kube-apiserver (v1.29.4); kubelet may be at most 1 minor behind the newest kube-apiserver (allowed: 1.28 or newer)"
        );
        // Against the oldest API server (1.28), 1.27 is one behind: fine. Zero lag forbids it.
        let p = policy(
            "  - { id: lag, kind: max-lag, component: kubelet, apiserver: oldest, minors: 1 }\n",
        );
        assert!(found(&p, &state()).is_empty());
        let p = policy(
            "  - { id: lag, kind: max-lag, component: kubelet, apiserver: oldest, minors: 0 }\n",
        );
        assert_eq!(found(&p, &state()), ["lag kubelet w-2"]);
        // The cluster's kubectl is checked cluster-wide; newer than the API server is not lag.
        let p = policy("  - { id: k, kind: max-lag, component: kubectl, minors: 1 }\n");
        assert_eq!(found(&p, &state()), ["k kubectl -"]);
        let mut s = state();
        s.kubectl = Some("v1.31.0".parse().unwrap());
        assert!(found(&p, &s).is_empty());
    }

    #[test]
    fn same_minor_as_the_apiserver() {
        let p = policy("  - { id: eq, kind: same-minor, component: kubectl }\n");
        assert_eq!(
            found(&p, &state()),
            ["eq kubectl -", "eq kubectl cp-2"],
            "the cluster's kubectl (1.27) and cp-2's (1.28) are not at 1.29"
        );
        let v = &p.evaluate(&state())[0];
        assert_eq!(v.allowed, "1.29");
        assert_eq!(
            v.message,
            "the cluster's kubectl is v1.27.1, 2 minors behind the newest kube-apiserver (v1.29.4); kubectl must be at the minor of the newest kube-apiserver (allowed: 1.29)"
        );
        let p = policy("  - { id: eq, kind: same-minor, component: kubectl, apiserver: oldest }\n");
        assert_eq!(found(&p, &state()), ["eq kubectl -", "eq kubectl cp-1"]);
        assert!(p.evaluate(&state())[1].message.contains("1 minor ahead of"));
    }

    #[test]
    fn node_skew_uses_the_add_on_when_the_node_has_no_own_value() {
        let p = policy(
            "  - { id: px, kind: node-skew, component: kube-proxy, other: kubelet, max: 0 }\n",
        );
        // w-1 runs its own 1.28 kube-proxy beside a 1.28 kubelet; cp-2 and w-2 get the 1.29
        // add-on beside older kubelets.
        assert_eq!(
            found(&p, &state()),
            ["px kube-proxy cp-2", "px kube-proxy w-2"]
        );
        let v = &p.evaluate(&state())[1];
        assert_eq!(v.allowed, "1.27");
        assert_eq!(
            v.message,
            "kube-proxy on node \"w-2\" is v1.29.4, 2 minors newer than the kubelet beside it (v1.27.13); kube-proxy must be at the minor of the kubelet on its node (allowed: 1.27)"
        );
        let p = policy(
            "  - { id: px, kind: node-skew, component: kube-proxy, other: kubelet, max: 1 }\n",
        );
        assert_eq!(found(&p, &state()), ["px kube-proxy w-2"]);
        // Either way: a kubelet newer than kubeadm on the node counts too.
        let p =
            policy("  - { id: ka, kind: node-skew, component: kubelet, other: kubectl, max: 0 }\n");
        let mut s = state();
        s.nodes[0].versions.kubectl = Some("v1.28.0".parse().unwrap());
        assert_eq!(found(&p, &s), ["ka kubelet cp-1"]);
    }

    #[test]
    fn minor_range_and_selectors() {
        let p = policy(
            "  - id: r\n    kind: minor-range\n    component: kubelet\n    min: \"1.28\"\n    max: \"1.28\"\n    severity: warning\n    description: the fleet stays on 1.28 this quarter\n",
        );
        assert_eq!(found(&p, &state()), ["r kubelet cp-1", "r kubelet w-2"]);
        let all = p.evaluate(&state());
        assert!(all.iter().all(|v| v.severity == Severity::Warning));
        assert_eq!(
            all[0].message,
            "kubelet on node \"cp-1\" is v1.29.4, newer than 1.28; the fleet stays on 1.28 this quarter (allowed: 1.28)"
        );
        assert_eq!(all[1].allowed, "1.28");
        assert!(all[1].message.contains("older than 1.28"));
        // Selectors: role and labels, all must hold.
        let sel = |nodes: &str| {
            policy(&format!(
                "  - {{ id: r, kind: minor-range, component: kubelet, min: \"1.29\", nodes: {nodes} }}\n"
            ))
        };
        assert_eq!(
            found(&sel("{ role: worker }"), &state()),
            ["r kubelet w-1", "r kubelet w-2"]
        );
        assert_eq!(
            found(&sel("{ role: control-plane }"), &state()),
            ["r kubelet cp-2"]
        );
        assert_eq!(
            found(
                &sel("{ role: worker, labels: { topology.kubernetes.io/zone: b } }"),
                &state()
            ),
            ["r kubelet w-2"]
        );
        assert!(
            found(
                &sel("{ labels: { topology.kubernetes.io/zone: c } }"),
                &state()
            )
            .is_empty()
        );
        // A selector keeps a rule off the cluster-wide versions.
        let p = policy(
            "  - { id: k, kind: minor-range, component: kubectl, min: \"1.29\", nodes: { role: control-plane } }\n",
        );
        assert_eq!(found(&p, &state()), ["k kubectl cp-2"]);
    }

    #[test]
    fn end_of_life_on_a_date() {
        // 1.27 reached its end of life on 2024-07-16, 1.28 on 2024-10-22.
        let p = policy("  - { id: eol, kind: not-end-of-life, date: 2024-07-16 }\n");
        assert_eq!(
            found(&p, &state()),
            ["eol kubectl -", "eol kubelet w-2"],
            "the cluster's kubectl (1.27) and w-2's kubelet (1.27)"
        );
        let v = &p.evaluate(&state())[1];
        assert_eq!(
            v.message,
            "kubelet on node \"w-2\" is v1.27.13, and 1.27 reached its end of life on 2024-07-16; no component may run an end-of-life minor on 2024-07-16 (allowed: 1.28 to 1.30)"
        );
        // A day earlier nothing is past its end of life.
        let p = policy("  - { id: eol, kind: not-end-of-life, date: 2024-07-15 }\n");
        assert!(found(&p, &state()).is_empty());
        // Later, more minors fall out; `components` narrows what is checked.
        let p = policy(
            "  - { id: eol, kind: not-end-of-life, date: 2024-11-01, components: [kube-apiserver] }\n",
        );
        assert_eq!(found(&p, &state()), ["eol kube-apiserver cp-2"]);
        let p = policy(
            "  - { id: eol, kind: not-end-of-life, date: 2024-11-01, nodes: { role: worker } }\n",
        );
        assert_eq!(
            found(&p, &state()),
            ["eol kubelet w-1", "eol kube-proxy w-1", "eol kubelet w-2"]
        );
        assert_eq!(
            err("rules:\n  - id: e\n    kind: not-end-of-life\n    date: 2024-13-01\n"),
            "r.yaml:4:11: rule 1 (\"e\"): date: \"2024-13-01\" is not a date (write YYYY-MM-DD): failed to parse two digit integer as month: parameter 'month' is not in the required range of 1..=12"
        );
        assert_eq!(
            err(
                "rules:\n  - { id: e, kind: not-end-of-life, date: 2024-01-01, components: [kubelet, etcd] }\n"
            ),
            "r.yaml:2:67: rule 1 (\"e\"): components[1]: etcd has its own version numbers; the release calendar covers Kubernetes minors"
        );
    }

    #[test]
    fn rules_without_an_apiserver_are_silent() {
        let mut s = state();
        for n in &mut s.nodes {
            n.versions.kube_apiserver = None;
        }
        let p = policy(
            "  - { id: a, kind: max-lag, component: kubelet, minors: 0 }\n  - { id: b, kind: same-minor, component: kubelet }\n",
        );
        assert!(p.evaluate(&s).is_empty());
        assert_eq!(p.evaluate(&state()).len(), 6);
    }

    #[test]
    fn combines_with_upstream() {
        let p = policy("  - { id: lag, kind: max-lag, component: kubelet, minors: 0 }\n");
        let both = p.clone().with_upstream();
        assert_eq!(both.name(), "upstream+t");
        let s = state();
        let mut want = UpstreamPolicy::new().evaluate(&s);
        let ours = p.evaluate(&s);
        assert!(!ours.is_empty());
        want.extend(ours);
        let mut got = both.evaluate(&s);
        let key = |v: &Violation| (v.rule.clone(), v.node.clone(), v.component);
        got.sort_by_key(key);
        want.sort_by_key(key);
        assert_eq!(got, want);
    }

    #[test]
    fn errors_name_file_rule_and_field() {
        assert_eq!(
            err("rules:\n  - id: a\n    kind: max-lag\n    component: kublet\n    minors: 1\n"),
            "r.yaml:4:16: rule 1 (\"a\"): component: unknown variant `kublet`, expected one of `kube-apiserver`, `kube-controller-manager`, `kube-scheduler`, `cloud-controller-manager`, `kubelet`, `kube-proxy`, `kubectl`, `kubeadm`, `etcd`, `coredns`"
        );
        assert_eq!(
            err("rules:\n  - id: a\n    kind: max-lagg\n"),
            "r.yaml:3:11: rule 1 (\"a\"): kind: unknown kind \"max-lagg\", expected one of max-lag, same-minor, node-skew, minor-range, not-end-of-life"
        );
        assert_eq!(
            err("rules:\n  - { id: a, kind: max-lag, component: kubelet }\n"),
            "r.yaml:2:7: rule 1 (\"a\"): minors: missing"
        );
        assert_eq!(
            err("rules:\n  - { kind: same-minor, component: kubelet }\n"),
            "r.yaml:2:7: rule 1: id: missing"
        );
        assert_eq!(
            err(
                "rules:\n  - { id: a, kind: same-minor, component: kubelet }\n  - id: b\n    kind: minor-range\n    component: kubelet\n    min: 1.30\n"
            ),
            "r.yaml:6:10: rule 2 (\"b\"): min: a minor must be quoted: 1.3 is a number (YAML reads 1.30 as 1.3); write \"1.30\""
        );
        assert_eq!(
            err(
                "rules:\n  - { id: a, kind: same-minor, component: kubelet, nodes: { role: boss } }\n"
            ),
            "r.yaml:2:67: rule 1 (\"a\"): nodes.role: unknown variant `boss`, expected `control-plane` or `worker`"
        );
        assert_eq!(
            err("rules:\n  - { id: a, kind: same-minor, component: kubelet, minors: 2 }\n"),
            "r.yaml:2:60: rule 1 (\"a\"): minors: unknown field `minors`, expected `component` or `apiserver`"
        );
    }

    #[test]
    fn validation_reports_every_problem() {
        let text = "\
rules:
  - { id: a, kind: same-minor, component: etcd }
  - { id: a, kind: node-skew, component: kubelet, other: kubelet, max: 1 }
  - { id: 'bad id', kind: minor-range, component: kubelet }
  - { id: r, kind: minor-range, component: kubelet, min: '1.30', max: '1.29' }
  - { id: d, kind: minor-range, component: coredns, min: '1.10', nodes: { role: worker } }
";
        assert_eq!(
            err(text),
            "r.yaml:2:43: rule 1 (\"a\"): component: etcd has its own version numbers; a same-minor rule compares Kubernetes minors
r.yaml:3:11: rule 2 (\"a\"): id: used twice (rules 1 and 2)
r.yaml:3:58: rule 2 (\"a\"): other: compares kubelet with itself
r.yaml:4:11: rule 3 (\"bad id\"): id: ' ' is not allowed (letters, digits, '-', '_', '.' and '/')
r.yaml:4:7: rule 3 (\"bad id\"): min: give min, max or both
r.yaml:5:71: rule 4 (\"r\"): max: 1.29 is older than min 1.30
r.yaml:6:73: rule 5 (\"d\"): nodes: coredns is a cluster add-on, not on any node; drop the selector"
        );
    }

    #[test]
    fn file_level_errors() {
        assert_eq!(err(""), "r.yaml: the file is empty");
        assert_eq!(
            err("[1]"),
            "r.yaml: expected a mapping with a `rules` list, found a list"
        );
        assert_eq!(
            err("kind: Inventory\nrules: []\nextra: 1\n"),
            "r.yaml:1:7: kind: expected \"SkewRules\", found \"Inventory\"\nr.yaml: unknown field \"extra\", expected one of `apiVersion`, `kind`, `name`, `rules`"
        );
        assert_eq!(
            err("name: x\n"),
            "r.yaml: rules: missing: a rules file lists its rules"
        );
        assert_eq!(
            err("rules: 3\n"),
            "r.yaml:1:8: rules: expected a list of rules, found a number"
        );
        assert_eq!(
            err("rules:\n  - 3\n"),
            "r.yaml:2:5: rule 1: expected a mapping, found a number"
        );
        // Inline lists have no per-rule positions.
        assert_eq!(
            err("rules: [{ id: a, kind: x }]\n"),
            "r.yaml: rule 1 (\"a\"): kind: unknown kind \"x\", expected one of max-lag, same-minor, node-skew, minor-range, not-end-of-life"
        );
        assert!(
            err("rules: [\n").starts_with("r.yaml:"),
            "{}",
            err("rules: [\n")
        );
        // JSON is YAML.
        let p = RulePolicy::parse(
            r#"{"name": "j", "rules": [{"id": "x", "kind": "max-lag", "component": "kubelet", "minors": 2}]}"#,
            "r.json",
        )
        .unwrap();
        assert_eq!(p.policy_name(), "j");
        assert_eq!(p.rules().len(), 1);
        assert_eq!(
            RulePolicy::parse("rules: []", "r").unwrap().policy_name(),
            "rules"
        );
    }

    #[test]
    fn yaml_round_trip() {
        let p = policy(
            "  - { id: a, kind: max-lag, component: kubelet, apiserver: oldest, minors: 1, severity: warning, description: 'why: because' }\n  - { id: b, kind: same-minor, component: kubectl }\n  - { id: c, kind: node-skew, component: kube-proxy, other: kubelet, max: 0, nodes: { role: worker, labels: { zone: a } } }\n  - { id: d, kind: minor-range, component: etcd, min: '3.5', max: '3.10' }\n",
        );
        let text = p.to_yaml();
        assert!(
            text.starts_with("apiVersion: kupgrade.dev/v1alpha1\nkind: SkewRules\nname: t\n"),
            "{text}"
        );
        assert_eq!(RulePolicy::parse(&text, "again.yaml").unwrap(), p);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(RulePolicy::parse(&json, "again.json").unwrap(), p);
    }

    #[test]
    fn the_sample_file_parses() {
        let text = include_str!("../../../../examples/policies/strict.yaml");
        let p = RulePolicy::parse(text, "strict.yaml").unwrap();
        assert_eq!(p.policy_name(), "strict");
        assert!(p.rules().len() >= 5);
    }

    /// The checked-in schema matches the types. `KUPGRADE_BLESS=1 cargo test -p kupgrade-core
    /// schema` rewrites it.
    #[test]
    #[allow(clippy::disallowed_methods)]
    fn schema_is_in_sync() {
        let fresh = schema_json();
        if fresh != SCHEMA {
            if std::env::var_os("KUPGRADE_BLESS").is_some() {
                let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/rules.schema.json");
                std::fs::write(path, &fresh).unwrap();
            } else {
                panic!(
                    "schema/rules.schema.json is stale: run `KUPGRADE_BLESS=1 cargo test -p kupgrade-core schema` and review the diff"
                );
            }
        }
    }
}
