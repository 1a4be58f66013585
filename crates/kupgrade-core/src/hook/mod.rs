//! User hooks: the operator's commands before or after the whole upgrade, each hop, each batch
//! or each step of a kind (`before: drain`, `after: kubeadm-upgrade-apply`), as typed steps of
//! a plan.
//!
//! A [`Hook`] is declared in a hooks file ([`HookSet::parse`], YAML or JSON, errors said like
//! the inventory's). [`HookSet::insert`] puts one [`Action::Hook`] step at each place it
//! names. A hook runs here (`on: local`, through the driver's local runner) or on each of the
//! step's nodes (`on: nodes`, through the run's command runner, like any node step). Its
//! program and arguments are words, never a shell line; the step's facts reach it as
//! environment variables ([`Action::Hook`]'s `env`: `KUPGRADE_HOOK`, `KUPGRADE_POINT`,
//! `KUPGRADE_STEP`, `KUPGRADE_HOP`, `KUPGRADE_FROM`, `KUPGRADE_TARGET`, `KUPGRADE_VERSION`,
//! `KUPGRADE_NODES`).
//!
//! A hook that fails halts the run (after the retries of a step that is safe to repeat). A
//! hook declares whether it is safe to repeat (`repeatable`, default true): the journal
//! treats it like any step, so a hook that is not repeatable and was in flight when a session
//! died is unsure, and the run asks the operator (mark it done, or retry it) before going on.
//!
//! ```
//! use kupgrade_core::hook::HookSet;
//! let text = r#"
//! kind: Hooks
//! hooks:
//!   - name: notify
//!     before: batch
//!     argv: [/usr/local/bin/notify, starting]
//!   - name: snapshot-volumes
//!     before: drain
//!     on: nodes
//!     repeatable: false
//!     argv: [/usr/local/sbin/snapshot]
//! "#;
//! let hooks = HookSet::parse(text, "hooks.yaml")?;
//! assert_eq!(hooks.hooks().len(), 2);
//! let err = HookSet::parse("hooks:\n  - name: x\n    before: dran\n    argv: [true]\n", "hooks.yaml").unwrap_err();
//! assert!(err.to_string().starts_with("hooks.yaml:3:13: hook 1 (\"x\"): before: \"dran\" is not a place"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Action::Hook`]: crate::plan::Action::Hook
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::diagnostics::{FileError, FileProblem, ListEntry, check_argv, check_named_entries};

mod insert;
#[cfg(test)]
mod tests;

/// The `apiVersion` of a hooks file.
pub const API_VERSION: &str = "kupgrade.dev/v1alpha1";
/// The `kind` of a hooks file.
pub const KIND: &str = "Hooks";

/// The JSON Schema of the hooks file, as checked in (`schema/hooks.schema.json`).
pub const SCHEMA: &str = include_str!("../../schema/hooks.schema.json");

/// The JSON Schema of the hooks file, generated from the types.
pub fn schema_json() -> String {
    crate::schema::schema_json::<HookSet>(
        &crate::schema::Header {
            api_version: API_VERSION,
            api_version_doc: "The file format's version.",
            kind: KIND,
            kind_doc: "Always `Hooks`.",
        },
        &[
            ("title", "kupgrade hooks"),
            ("$id", "https://kupgrade.dev/schema/hooks.schema.json"),
        ],
    )
}

/// The step kinds a hook may name (`before: drain`): a step's verb without its version.
pub const STEP_KINDS: [&str; 24] = [
    "preflight",
    "etcd-snapshot",
    "backup-config",
    "pull-images",
    "download",
    "repository",
    "install-kubeadm",
    "install-kubelet-kubectl",
    "install-kubelet",
    "kubeadm-version",
    "kubeadm-upgrade-plan",
    "kubeadm-upgrade-apply",
    "kubeadm-upgrade-node",
    "kubeadm-upgrade-node-config",
    "kubeadm-upgrade-node-addons",
    "cordon",
    "drain",
    "restart-kubelet",
    "wait-ready",
    "uncordon",
    "kube-proxy-rollout",
    "provision",
    "remove",
    "verify",
];

/// The kind of a step by its verb (`install-kubelet-kubectl@v1.30.1` is
/// `install-kubelet-kubectl`, `repository-1.30` is `repository`, every pre-stage download
/// `download-kubeadm-kubelet-kubectl@v1.30.1` is `download`).
pub fn step_kind(verb: &str) -> &str {
    if verb.starts_with("repository-") {
        return "repository";
    }
    if verb.starts_with("download-") {
        return "download";
    }
    verb.split('@').next().unwrap_or(verb)
}

/// The hooks of a run, as a hooks file declares them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HookSet {
    /// The hooks, each with a name unique in the file.
    #[serde(default)]
    hooks: Vec<Hook>,
}

/// One hook: where it runs, what, and whether it is safe to repeat.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hook {
    /// Its name (lower-case letters, digits and `-`), part of its steps' ids.
    pub name: String,
    /// Run before this place: `upgrade`, `hop`, `batch`, or a step kind (`drain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<HookPlace>,
    /// Run after this place (one of `before` and `after`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<HookPlace>,
    /// The program and its arguments (no shell: each is one word).
    pub argv: Vec<String>,
    /// Where it runs: here, or on each of the batch's or step's nodes (default: here).
    #[serde(default)]
    pub on: HookTarget,
    /// Safe to run again after a failure or a crash (default true). One that is not, and
    /// may or may not have run, is left to the operator to decide.
    #[serde(default = "yes")]
    pub repeatable: bool,
    /// How long it may take (default 300).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn yes() -> bool {
    true
}
fn default_timeout() -> u64 {
    300
}

impl Hook {
    /// `before` or `after`, and the place.
    pub fn when(&self) -> Option<(&'static str, &HookPlace)> {
        match (&self.before, &self.after) {
            (Some(p), None) => Some(("before", p)),
            (None, Some(p)) => Some(("after", p)),
            _ => None,
        }
    }

    /// The command with `env` (the step's facts) set, as a runner runs it.
    pub fn spec(&self, env: &[(String, String)]) -> crate::ports::CommandSpec {
        let (program, args) = self
            .argv
            .split_first()
            .map_or(("", &[][..]), |(p, a)| (p.as_ref(), a));
        let mut spec = crate::ports::CommandSpec::new(program)
            .args(args.iter())
            .timeout(std::time::Duration::from_secs(self.timeout_seconds))
            .max_output(64 * 1024);
        for (k, v) in env {
            spec = spec.env(k, v);
        }
        spec
    }
}

/// Where a hook runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HookTarget {
    /// Here, on the operator's machine.
    #[default]
    Local,
    /// On each of the batch's or step's nodes.
    Nodes,
}

/// A place in the upgrade.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub enum HookPlace {
    /// The whole upgrade.
    Upgrade,
    /// Each hop.
    Hop,
    /// Each batch of nodes.
    Batch,
    /// Each step of this kind (see [`STEP_KINDS`]).
    Step(String),
}

impl TryFrom<String> for HookPlace {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.as_str() {
            "upgrade" => HookPlace::Upgrade,
            "hop" => HookPlace::Hop,
            "batch" => HookPlace::Batch,
            k if STEP_KINDS.contains(&k) => HookPlace::Step(s),
            _ => {
                return Err(format!(
                    "{s:?} is not a place: `upgrade`, `hop`, `batch` or a step kind ({})",
                    STEP_KINDS.join(", ")
                ));
            }
        })
    }
}

impl From<HookPlace> for String {
    fn from(p: HookPlace) -> String {
        p.to_string()
    }
}

impl fmt::Display for HookPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HookPlace::Upgrade => "upgrade",
            HookPlace::Hop => "hop",
            HookPlace::Batch => "batch",
            HookPlace::Step(s) => s,
        })
    }
}

crate::diagnostics::list_file! {
    /// A set of these hooks, checked like a file's.
    HookSet { hooks: Hook }, HookList, HooksError, "hook", "hooks"
}

impl HookSet {
    /// The hooks, in order.
    pub fn hooks(&self) -> &[Hook] {
        &self.hooks
    }
}

/// Checks every hook; problems name the hook by its place and name.
fn validate(hooks: &[Hook], out: &mut Vec<HookProblem>) {
    check_named_entries(
        hooks,
        |h| &h.name,
        out,
        |hook, bad| {
            match (&hook.before, &hook.after) {
                (None, None) => bad("name", "say when: `before` or `after`".into()),
                (Some(_), Some(_)) => bad(
                    "after",
                    "a hook runs at one place: give `before` or `after`, not both".into(),
                ),
                _ => {}
            }
            if let Some((when, place)) = hook.when()
                && hook.on == HookTarget::Nodes
                && matches!(place, HookPlace::Upgrade | HookPlace::Hop)
            {
                bad(
                    "on",
                    format!(
                        "a hook {when} each {place} runs here (`on: local`): no nodes are its own"
                    ),
                );
            }
            check_argv(bad, "argv", &hook.argv);
            if hook.timeout_seconds == 0 {
                bad("timeoutSeconds", "must be at least 1".into());
            }
        },
    );
}

/// The hooks of a hooks file, as the kind of their entries ([`HookEntry`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookList {}

/// The hook a problem is about: its 1-based place in the file and its name when it has one.
/// Said `hook 2 ("web")`, or `hook 2`.
pub type HookEntry = ListEntry<HookList>;

/// One problem in a hooks file.
pub type HookProblem = FileProblem<HookEntry>;
/// A hooks file that could not be read: every problem, one per line.
pub type HooksError = FileError<HookEntry>;
