//! [`Violation`]: one broken rule.
use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smol_str::SmolStr;

use super::Severity;
use crate::{Component, KubeVersion, NodeName};

/// One broken rule: data for programs and a sentence for people.
///
/// Policies build violations with [`Violation::new`] (and [`Violation::on_node`]); the
/// sentence is [`Violation::message`]. Serialized, a violation is an object with the public
/// fields and `message`. Displayed (`severity[rule]: message`), it is for people: control and
/// invisible characters a rules file put in the rule or the message are escaped
/// ([`crate::escape::text`]).
///
/// ```
/// use kupgrade_core::{Component, NodeName, skew::{Severity, Violation}};
///
/// let v = Violation::new("house/kubelet-floor", Severity::Error, Component::Kubelet,
///     "v1.24.17".parse()?, "1.25 or newer", "kubelet on node \"w-1\" is v1.24.17, older than 1.25")
///     .on_node(NodeName::new("w-1")?);
/// assert_eq!(v.to_string(), "error[house/kubelet-floor]: kubelet on node \"w-1\" is v1.24.17, older than 1.25");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Violation {
    /// A stable rule identifier, such as `upstream/kubelet`. ([`SmolStr`] is a string that
    /// clones without allocating: rule ids and ranges are shared by many violations.)
    pub rule: SmolStr,
    /// How serious it is.
    pub severity: Severity,
    /// The component at fault.
    pub component: Component,
    /// The node it runs on, for per-node components.
    pub node: Option<NodeName>,
    /// The version found.
    pub found: KubeVersion,
    /// What would have been allowed, in words (`1.25 to 1.28`, `v3.5.9-0`).
    pub allowed: SmolStr,
    /// The sentence; see [`Violation::message`].
    message: Message,
}

/// How a violation keeps its sentence.
#[derive(Clone)]
enum Message {
    /// The sentence itself.
    Text(Box<str>),
    /// `kubectl installed on node "{node}" is {found}{tail}`: on large fleets this warning is
    /// frequent, and its tail is the same for the whole cluster, so it is shared and the
    /// sentence written only when asked for.
    KubectlOnNode { tail: SmolStr },
}

impl Violation {
    /// A violation of `rule` by `component`, found at version `found`; `allowed` says what
    /// would have been allowed, `message` says it all in a sentence a person understands
    /// (name the node, the version found and what is allowed).
    pub fn new(
        rule: impl Into<SmolStr>,
        severity: Severity,
        component: Component,
        found: KubeVersion,
        allowed: impl Into<SmolStr>,
        message: impl Into<String>,
    ) -> Self {
        Violation {
            rule: rule.into(),
            severity,
            component,
            node: None,
            found,
            allowed: allowed.into(),
            message: Message::Text(message.into().into_boxed_str()),
        }
    }

    /// The warning that kubectl installed on `node` is at `found`, outside `allowed`; `tail`
    /// is the rest of the sentence after the version (shared by every such warning).
    pub(crate) fn kubectl_on_node(
        rule: SmolStr,
        severity: Severity,
        node: NodeName,
        found: KubeVersion,
        allowed: SmolStr,
        tail: SmolStr,
    ) -> Self {
        Violation {
            rule,
            severity,
            component: Component::Kubectl,
            node: Some(node),
            found,
            allowed,
            message: Message::KubectlOnNode { tail },
        }
    }

    /// The same violation, on node `node` (`None`: on no node).
    pub fn on_node(mut self, node: impl Into<Option<NodeName>>) -> Self {
        self.node = node.into();
        self
    }

    /// The sentence a person understands: what was found where, and what is allowed.
    pub fn message(&self) -> Cow<'_, str> {
        match &self.message {
            Message::Text(text) => Cow::Borrowed(text),
            Message::KubectlOnNode { tail } => {
                let name = self.node.as_ref().map_or("", NodeName::as_str);
                let mut out = String::with_capacity(name.len() + tail.len() + 48);
                // Node names are RFC 1123 subdomains: quoting them needs no escapes.
                out.push_str("kubectl installed on node \"");
                out.push_str(name);
                out.push_str("\" is ");
                use fmt::Write as _;
                let _ = write!(out, "{}{tail}", self.found);
                Cow::Owned(out)
            }
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{sev}[{}]: {}",
            crate::escape::text(&self.rule),
            crate::escape::text(&self.message())
        )
    }
}

impl fmt::Debug for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Violation")
            .field("rule", &self.rule)
            .field("severity", &self.severity)
            .field("component", &self.component)
            .field("node", &self.node)
            .field("found", &self.found)
            .field("allowed", &self.allowed)
            .field("message", &self.message())
            .finish()
    }
}

/// Violations are equal when everything, the sentence included, reads the same.
impl PartialEq for Violation {
    fn eq(&self, other: &Self) -> bool {
        self.rule == other.rule
            && self.severity == other.severity
            && self.component == other.component
            && self.node == other.node
            && self.found == other.found
            && self.allowed == other.allowed
            && self.message() == other.message()
    }
}

impl Eq for Violation {}

impl Hash for Violation {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.rule.hash(state);
        self.severity.hash(state);
        self.component.hash(state);
        self.node.hash(state);
        self.found.hash(state);
        self.allowed.hash(state);
        self.message().hash(state);
    }
}

/// The serialized form: the fields, and the sentence as `message`.
#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    rule: SmolStr,
    severity: Severity,
    component: Component,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<NodeName>,
    found: KubeVersion,
    allowed: SmolStr,
    #[serde(borrow)]
    message: Cow<'a, str>,
}

impl Serialize for Violation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Wire {
            rule: self.rule.clone(),
            severity: self.severity,
            component: self.component,
            node: self.node.clone(),
            found: self.found.clone(),
            allowed: self.allowed.clone(),
            message: self.message(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Violation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(deserializer)?;
        let mut v = Violation::new(
            w.rule,
            w.severity,
            w.component,
            w.found,
            w.allowed,
            w.message.into_owned(),
        );
        v.node = w.node;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubectl() -> Violation {
        Violation::kubectl_on_node(
            "upstream/kubectl".into(),
            Severity::Warning,
            NodeName::new("w-1").unwrap(),
            "v1.29.3".parse().unwrap(),
            "1.30 to 1.32".into(),
            "; kubectl must be within 1 minor".into(),
        )
    }

    #[test]
    fn shared_sentences_read_like_written_ones_and_round_trip() {
        let v = kubectl();
        let said = "kubectl installed on node \"w-1\" is v1.29.3; kubectl must be within 1 minor";
        assert_eq!(v.message(), said);
        let written = Violation::new(
            v.rule.clone(),
            v.severity,
            v.component,
            v.found.clone(),
            v.allowed.clone(),
            said,
        )
        .on_node(v.node.clone().unwrap());
        assert_eq!(v, written);
        let hash = |v: &Violation| {
            let mut h = std::hash::DefaultHasher::new();
            v.hash(&mut h);
            h.finish()
        };
        assert_eq!(hash(&v), hash(&written));
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(
            json,
            r#"{"rule":"upstream/kubectl","severity":"warning","component":"kubectl","node":"w-1","found":"v1.29.3","allowed":"1.30 to 1.32","message":"kubectl installed on node \"w-1\" is v1.29.3; kubectl must be within 1 minor"}"#
        );
        let back: Violation = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
        assert!(format!("{v:?}").contains(said.replace('"', "\\\"").as_str()));
        let mut other = written.clone();
        other.allowed = "1.31".into();
        assert_ne!(other, v);
    }
}
