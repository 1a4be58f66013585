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
//!     errors[0].message(),
//!     "kubelet on node \"w\" is v1.27.13, 2 minors behind the newest kube-apiserver (v1.29.4); \
//!      kubelet may be at most 1 minor behind the newest kube-apiserver (allowed: 1.28 or newer)"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    AllOf, Context, LabelKeys, MinorRange, Severity, SkewPolicy, UpstreamPolicy, Violation,
};
use crate::diagnostics::{FileError, FileProblem, ListEntry, ListKind};
use crate::lifecycle::{ReleaseCalendar, SupportStatus};
use crate::{Component, EtcdTopology, KubeVersion, Minor, Node, Role, VersionLine};
use jiff::civil::Date;

mod eval;
mod parse;
#[cfg(test)]
mod tests;

/// The `apiVersion` a rules file may declare.
pub const API_VERSION: &str = "kupgrade.dev/v1alpha1";
/// The `kind` a rules file may declare.
pub const KIND: &str = "SkewRules";
/// The rules file's JSON Schema, generated from the types (kept in sync by a test).
pub const SCHEMA: &str = include_str!("../../../schema/rules.schema.json");

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

/// The components numbered like Kubernetes, which the release calendar covers:
/// [`Component::ALL`] lists them first.
const KUBERNETES_LINE: &[Component] = Component::ALL.split_at(8).0;

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
pub type RulesError = FileError<RuleEntry>;

/// One problem in a rules file.
pub type RuleProblem = FileProblem<RuleEntry>;

/// The rules of a rules file, as the kind of their entries ([`RuleEntry`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleList {}

impl ListKind for RuleList {
    const NOUN: &'static str = "rule";
    const LIST: &'static str = "rules";
}

/// The rule a problem is about: its 1-based place in the file and its id (the entry's `name`)
/// when it has one. Said `rule 2 ("lag")`, or `rule 2`.
pub type RuleEntry = ListEntry<RuleList>;

impl RulePolicy {
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
}

/// `upstream` and `rules` combined: both must pass, upstream's violations first.
pub fn with_upstream(upstream: UpstreamPolicy, rules: RulePolicy) -> AllOf {
    AllOf::new(vec![Box::new(upstream), Box::new(rules)])
}

/// The rules file's JSON Schema, freshly generated from the types.
pub fn schema_json() -> String {
    crate::schema::schema_json::<RulePolicy>(&HEADER, &[])
}

/// A rules file's optional header, as its schema describes it.
const HEADER: crate::schema::Header = crate::schema::Header {
    api_version: API_VERSION,
    api_version_doc: "Optional format header",
    kind: KIND,
    kind_doc: "Optional format header",
};
