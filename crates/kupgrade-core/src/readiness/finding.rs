//! What a check reports: findings (severity, hop, step, subject, message, remediation,
//! evidence) and its coverage (checked, partly checked, not checkable, not applicable).
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::NodeName;
use crate::plan::StepId;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Shown; the run goes ahead.
    Warning,
    /// Blocks the run until fixed or accepted.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// What a finding is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum Subject {
    /// The cluster as a whole.
    Cluster,
    /// A node.
    Node {
        /// Its name.
        node: NodeName,
    },
    /// An object, as `group/version Kind namespace/name`.
    Object {
        /// `networking.k8s.io/v1beta1`.
        api_version: String,
        /// `Ingress`.
        kind: String,
        /// Its namespace (none for cluster-scoped objects).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        /// Its name.
        name: String,
    },
    /// Requests to a resource, as an API server's metrics count them (no object named).
    Resource {
        /// `extensions/v1beta1`.
        api_version: String,
        /// `ingresses`.
        resource: String,
    },
    /// A PodDisruptionBudget.
    Budget {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A pod.
    Pod {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A certificate on a control-plane node, by kubeadm's name for it.
    Certificate {
        /// The node.
        node: NodeName,
        /// `apiserver`, `ca`, `admin.conf`.
        name: String,
    },
}

impl Subject {
    /// A stable, short key for the subject, used to accept a finding by id and subject
    /// (`ingress/shop/web`, `node/w-1`, `pdb/shop/web`, `certificate/cp-1/apiserver`).
    pub fn key(&self) -> String {
        match self {
            Subject::Cluster => "cluster".into(),
            Subject::Node { node } => format!("node/{node}"),
            Subject::Object {
                kind,
                namespace,
                name,
                ..
            } => match namespace {
                Some(ns) => format!("{}/{ns}/{name}", kind.to_ascii_lowercase()),
                None => format!("{}/{name}", kind.to_ascii_lowercase()),
            },
            Subject::Resource {
                api_version,
                resource,
            } => format!("resource/{api_version}/{resource}"),
            Subject::Budget { namespace, name } => format!("pdb/{namespace}/{name}"),
            Subject::Pod { namespace, name } => format!("pod/{namespace}/{name}"),
            Subject::Certificate { node, name } => format!("certificate/{node}/{name}"),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Cluster => f.write_str("the cluster"),
            Subject::Node { node } => write!(f, "node {node}"),
            Subject::Object {
                api_version,
                kind,
                namespace,
                name,
            } => match namespace {
                Some(ns) => write!(f, "{api_version} {kind} {ns}/{name}"),
                None => write!(f, "{api_version} {kind} {name}"),
            },
            Subject::Resource {
                api_version,
                resource,
            } => write!(f, "requests to {api_version} {resource}"),
            Subject::Budget { namespace, name } => {
                write!(f, "PodDisruptionBudget {namespace}/{name}")
            }
            Subject::Pod { namespace, name } => write!(f, "pod {namespace}/{name}"),
            Subject::Certificate { node, name } => write!(f, "certificate {name} on {node}"),
        }
    }
}

/// One thing a check found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The check's stable id (`removed-api`).
    pub check: String,
    /// How bad it is.
    pub severity: Severity,
    /// The hop at which it bites (an index into the plan's hops); none for what is wrong
    /// before the first hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop: Option<usize>,
    /// The step (and so the batch of nodes) at which it bites, for batch- and node-level
    /// checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepId>,
    /// What it is about.
    pub subject: Subject,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub remediation: String,
    /// The evidence it rests on, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// The source of the fact it applies (a table row's source), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Finding {
    /// `check:subject` (`removed-api:ingress/shop/web`), the key an operator accepts it by.
    pub fn key(&self) -> String {
        format!("{}:{}", self.check, self.subject.key())
    }
}

impl fmt::Display for Finding {
    /// `error[removed-api] networking.k8s.io/v1beta1 Ingress shop/web: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}[{}] {}: {}",
            self.severity, self.check, self.subject, self.message
        )
    }
}

/// A subject a check could not look at, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gap {
    /// What was not looked at (`node w-4`, `requests tier`).
    pub subject: String,
    /// Why.
    pub reason: String,
}

/// How much of what a check needs it could look at. A check whose evidence is missing says
/// so: it never passes silently.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "status",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum Coverage {
    /// Every subject the check applies to was looked at.
    Checked,
    /// Looked at where the evidence was; these subjects were not.
    Partial {
        /// What was not looked at (at most [`MAX_GAPS`], then a count).
        gaps: Vec<Gap>,
        /// How many gaps in all.
        total: usize,
    },
    /// Nothing could be looked at.
    NotCheckable {
        /// Why.
        reason: String,
    },
    /// The check does not apply to this plan.
    NotApplicable {
        /// Why.
        reason: String,
    },
}

/// The most gaps a coverage lists by name.
pub const MAX_GAPS: usize = 20;

impl Coverage {
    /// True when every subject was looked at.
    pub fn is_checked(&self) -> bool {
        matches!(self, Coverage::Checked)
    }
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Coverage::Checked => f.write_str("checked"),
            Coverage::Partial { gaps, total } => {
                write!(f, "partly checked; not checkable for ")?;
                for (i, g) in gaps.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{} ({})", g.subject, g.reason)?;
                }
                if *total > gaps.len() {
                    write!(f, " and {} more", total - gaps.len())?;
                }
                Ok(())
            }
            Coverage::NotCheckable { reason } => write!(f, "not checkable: {reason}"),
            Coverage::NotApplicable { reason } => write!(f, "not applicable: {reason}"),
        }
    }
}

/// Gaps collected while a check runs, turned into a [`Coverage`] at the end.
#[derive(Debug, Default)]
pub(crate) struct Gaps {
    listed: Vec<Gap>,
    total: usize,
    looked: usize,
}

impl Gaps {
    /// `subject` could not be looked at, for `reason`.
    pub fn missing(&mut self, subject: impl fmt::Display, reason: impl fmt::Display) {
        self.total += 1;
        if self.listed.len() < MAX_GAPS {
            self.listed.push(Gap {
                subject: subject.to_string(),
                reason: reason.to_string(),
            });
        }
    }

    /// One subject was looked at.
    pub fn looked(&mut self) {
        self.looked += 1;
    }

    /// The coverage: checked when nothing was missing, not checkable when nothing was looked
    /// at (`none` says why when there was nothing to look at either), partial otherwise.
    pub fn coverage(self, none: impl FnOnce() -> Coverage) -> Coverage {
        if self.total == 0 {
            return if self.looked > 0 {
                Coverage::Checked
            } else {
                none()
            };
        }
        if self.looked > 0 {
            return Coverage::Partial {
                gaps: self.listed,
                total: self.total,
            };
        }
        let first = &self.listed[0];
        let reason = if self.total == 1 {
            format!("{}: {}", first.subject, first.reason)
        } else if self.listed.iter().all(|g| g.reason == first.reason) {
            format!(
                "{} ({} subjects, such as {})",
                first.reason, self.total, first.subject
            )
        } else {
            let listed: Vec<String> = self
                .listed
                .iter()
                .map(|g| format!("{} ({})", g.subject, g.reason))
                .collect();
            let more = self.total - self.listed.len();
            if more > 0 {
                format!("{} and {more} more", listed.join(", "))
            } else {
                listed.join(", ")
            }
        };
        Coverage::NotCheckable { reason }
    }
}
