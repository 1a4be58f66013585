//! Faults to inject into the simulated cluster.
use kupgrade_core::NodeName;
use serde::{Deserialize, Serialize};

/// A fault: what goes wrong, where, and how many times.
///
/// ```
/// use kupgrade_exec::sim::{Fault, FaultKind};
/// // The first `apt-get update` on worker-2 fails; the retry succeeds.
/// let f = Fault::new(FaultKind::fail(100, "E: Could not get lock /var/lib/apt/lists/lock"))
///     .on_node("worker-2".parse()?)
///     .matching("apt-get update")
///     .times(1);
/// assert_eq!(f.remaining, Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// What happens.
    pub kind: FaultKind,
    /// Only on this node (any node when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeName>,
    /// Only for commands whose line contains this text (any command when `None`). Ignored by
    /// faults that are not about commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matching: Option<String>,
    /// How many more times it strikes (`None`: always).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u32>,
}

/// What goes wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum FaultKind {
    /// A command exits with `code`, printing `stderr`, and changes nothing.
    CommandFails {
        /// The exit code.
        code: i32,
        /// What it prints on standard error.
        stderr: String,
    },
    /// A command never ends (until its timeout kills it); it changes nothing.
    CommandHangs,
    /// The node's kubelet never reports Ready after a restart (or after provisioning).
    NeverReady,
    /// Evictions from the node are refused, as a disruption budget allowing no disruption
    /// would.
    EvictionBlocked {
        /// The budget named in the refusal.
        budget: String,
    },
    /// The node cannot be reached at all: every command fails to connect.
    Unreachable,
}

impl FaultKind {
    /// A command that fails with `code` and `stderr`.
    pub fn fail(code: i32, stderr: impl Into<String>) -> Self {
        FaultKind::CommandFails {
            code,
            stderr: stderr.into(),
        }
    }
}

impl Fault {
    /// `kind` on any node, for any command, always.
    pub fn new(kind: FaultKind) -> Self {
        Fault {
            kind,
            node: None,
            matching: None,
            remaining: None,
        }
    }

    /// Only on `node`.
    pub fn on_node(mut self, node: NodeName) -> Self {
        self.node = Some(node);
        self
    }

    /// Only for command lines containing `text`.
    pub fn matching(mut self, text: impl Into<String>) -> Self {
        self.matching = Some(text.into());
        self
    }

    /// Only `n` times.
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    pub(crate) fn applies(&self, node: &NodeName, line: Option<&str>) -> bool {
        if self.remaining == Some(0) {
            return false;
        }
        if self.node.as_ref().is_some_and(|n| n != node) {
            return false;
        }
        match (&self.matching, line) {
            (Some(m), Some(l)) => l.contains(m.as_str()),
            _ => true,
        }
    }
}

/// Takes the first fault that applies and is command-related (fails, hangs, unreachable),
/// counting it down.
pub(crate) fn take_command_fault(
    faults: &mut [Fault],
    node: &NodeName,
    line: &str,
) -> Option<FaultKind> {
    for f in faults.iter_mut() {
        let about_commands = matches!(
            f.kind,
            FaultKind::CommandFails { .. } | FaultKind::CommandHangs | FaultKind::Unreachable
        );
        if about_commands && f.applies(node, Some(line)) {
            if let Some(n) = &mut f.remaining {
                *n -= 1;
            }
            return Some(f.kind.clone());
        }
    }
    None
}

/// Whether a node-level fault (`NeverReady`, `EvictionBlocked`) applies to `node`; the
/// fault is counted down when `consume`.
pub(crate) fn node_fault<'a>(
    faults: &'a mut [Fault],
    node: &NodeName,
    pick: impl Fn(&FaultKind) -> bool,
    consume: bool,
) -> Option<&'a FaultKind> {
    for f in faults.iter_mut() {
        if pick(&f.kind) && f.applies(node, None) {
            if consume && let Some(n) = &mut f.remaining {
                *n -= 1;
            }
            return Some(&f.kind);
        }
    }
    None
}
