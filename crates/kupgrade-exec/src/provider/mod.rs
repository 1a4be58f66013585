//! [`CommandProvider`]: a [`NodeProvider`] that runs the operator's own commands (a cloud
//! CLI, terraform, a script) to create, look for and remove nodes, for the replace strategy.
//!
//! # The commands' contract
//!
//! Each command is the operator's own text, run with `sh -c` on the operator's machine (by
//! default; [`CommandProvider::runner`] picks another [`CommandRunner`]). What it acts on
//! arrives in its environment, never in the command line, so a node name or label cannot
//! change what the shell runs:
//!
//! | variable | create | find, remove |
//! |---|---|---|
//! | `KUPGRADE_PROVIDER_ACTION` | `create` | `find` or `remove` |
//! | `KUPGRADE_NODE` | the new node's name, as the plan gives it | the node |
//! | `KUPGRADE_CLUSTER` | the cluster's name (empty when unknown) | the same |
//! | `KUPGRADE_VERSION` | the Kubernetes version it joins with (`v1.30.14`) | |
//! | `KUPGRADE_TEMPLATE_NODE` | the node it replaces, whose machine it copies | |
//! | `KUPGRADE_ROLES` | the template's roles, comma-separated (`worker`, `control-plane`) | |
//! | `KUPGRADE_LABELS` | the template's labels, a JSON object, without `kubernetes.io/hostname` | |
//! | `KUPGRADE_OS_FAMILY` | `debian`, `rhel`, `suse` or `other` | |
//! | `KUPGRADE_OS_RELEASE` | the template's OS release (`ubuntu-22.04`; empty when unknown) | |
//! | `KUPGRADE_ZONE` | the template's `topology.kubernetes.io/zone` (empty when none) | |
//!
//! Logs go to stderr (their last lines appear in error messages); stdout holds the reply only,
//! one JSON object. A command that exits non-zero has failed.
//!
//! - **create** makes a machine that joins the cluster as node `KUPGRADE_NODE`, with kubelet
//!   `KUPGRADE_VERSION`, and prints
//!   `{"name": "w-1-v1-30-14", "ssh": {"host": "10.0.0.7", "port": 22, "user": "admin"},
//!   "machine": "i-0abc"}`. `name` is required and must be `KUPGRADE_NODE`; `ssh` (each of its
//!   fields optional) says where the SSH executor reaches the node
//!   ([`CommandProvider::on_ssh_target`]); `machine` is the infrastructure's name for it, for
//!   logs. With [`CommandProvider::wait_ready`] the provider then waits until the node is Ready
//!   at the version; without it, create must not exit before.
//! - **find** changes nothing and prints `{"exists": false}`, or `{"exists": true}` with the
//!   same optional fields as create's reply. A machine still being created exists. It is asked
//!   after a crash left a creation unsure, before the node is created again (see
//!   [`NodeProvider::find`]); when it fails, or none is configured, the run asks its operator.
//! - **remove** deletes the node from the cluster (`kubectl delete node "$KUPGRADE_NODE"`) and
//!   its machine. It runs again after a failure or a crash, so a node or machine already gone
//!   is success. Its stdout is not read.
//!
//! Each command runs under its timeout: the one set on its [`CommandSpec`], else
//! [`DEFAULT_CREATE_TIMEOUT`], [`DEFAULT_FIND_TIMEOUT`] or [`DEFAULT_REMOVE_TIMEOUT`]; the
//! runner kills it (and its process group) when it runs out. A plan gives a provisioning task
//! an hour in all, so create's timeout plus the wait for Ready should stay below that.
//!
//! Creating a node is not safe to repeat, and a command killed with kupgrade (a `kill -9`, a
//! lost machine) may leave its machine half made: a find command that reports machines being
//! created, and a create command keyed by the node's name where the tool allows it (a
//! terraform resource per name, an idempotency token), keep a crash from paying for two.
//!
//! ```
//! use std::sync::Arc;
//! use kupgrade_core::Node;
//! use kupgrade_core::ports::{CommandSpec, MachineLookup, NodeProvider};
//! use kupgrade_exec::provider::CommandProvider;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?; // stands in for the infrastructure
//! let provider = CommandProvider::new(
//!     CommandSpec::shell(r#"touch "$MACHINES/$KUPGRADE_NODE"; printf '{"name": "%s"}' "$KUPGRADE_NODE""#),
//!     CommandSpec::shell(r#"rm -f "$MACHINES/$KUPGRADE_NODE""#),
//! )
//! .find_command(CommandSpec::shell(
//!     r#"if [ -e "$MACHINES/$KUPGRADE_NODE" ]; then echo '{"exists": true}'; else echo '{"exists": false}'; fi"#,
//! ))
//! .env("MACHINES", dir.path().to_str().unwrap());
//! let template = Node::worker("w-1", "v1.29.10".parse()?)?;
//! let name = "w-1-v1-30-6".parse()?;
//! assert_eq!(provider.find(&name).await?, MachineLookup::Absent);
//! let node = provider.provision(&name, &template, &"v1.30.6".parse()?).await?;
//! assert_eq!(node.name, name);
//! assert!(matches!(provider.find(&name).await?, MachineLookup::Present { .. }));
//! provider.remove(&name).await?;
//! assert_eq!(provider.find(&name).await?, MachineLookup::Absent);
//! # Ok(()) }
//! ```
mod reply;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kupgrade_core::ports::{
    ClusterOperations, CommandOutput, CommandRunner, CommandSpec, LineSink, MachineLookup,
    NodeProvider, OpsError, RunnerError, Stream,
};
use kupgrade_core::{KubeVersion, Node, NodeName, SshTarget};

use crate::LocalRunner;

/// The create command's timeout when its [`CommandSpec`] sets none: 30 minutes.
pub const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The find command's timeout when its [`CommandSpec`] sets none: 2 minutes.
pub const DEFAULT_FIND_TIMEOUT: Duration = Duration::from_secs(2 * 60);
/// The remove command's timeout when its [`CommandSpec`] sets none: 15 minutes.
pub const DEFAULT_REMOVE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The label the kubelet sets to its own host name: never copied from the template.
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// Which command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Create,
    Find,
    Remove,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Create => "create",
            Action::Find => "find",
            Action::Remove => "remove",
        })
    }
}

type TargetFn = dyn Fn(&NodeName, &SshTarget) + Send + Sync;

/// Creates, looks for and removes nodes with the operator's own commands (see the
/// [module documentation](self) for the contract they follow).
#[derive(Clone)]
pub struct CommandProvider {
    create: CommandSpec,
    find: Option<CommandSpec>,
    remove: CommandSpec,
    env: Vec<(String, String)>,
    cluster: Option<String>,
    runner: Arc<dyn CommandRunner>,
    host: NodeName,
    ready: Option<(Arc<dyn ClusterOperations>, Duration)>,
    on_target: Option<Arc<TargetFn>>,
}

impl fmt::Debug for CommandProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandProvider")
            .field("create", &self.create.to_shell_line())
            .field("find", &self.find.as_ref().map(CommandSpec::to_shell_line))
            .field("remove", &self.remove.to_shell_line())
            .field("cluster", &self.cluster)
            .field("host", &self.host)
            .field("wait_ready", &self.ready.as_ref().map(|(_, d)| d))
            .finish_non_exhaustive()
    }
}

impl CommandProvider {
    /// A provider that creates nodes with `create` and removes them with `remove`, run on
    /// this machine ([`LocalRunner`]); it has no lookup until [`CommandProvider::find_command`].
    /// Commands without a timeout get the defaults.
    pub fn new(create: CommandSpec, remove: CommandSpec) -> Self {
        CommandProvider {
            create: with_timeout(create, DEFAULT_CREATE_TIMEOUT),
            find: None,
            remove: with_timeout(remove, DEFAULT_REMOVE_TIMEOUT),
            env: Vec::new(),
            cluster: None,
            runner: Arc::new(LocalRunner::new()),
            host: NodeName::new("localhost").expect("a valid node name"),
            ready: None,
            on_target: None,
        }
    }

    /// Looks for a node's machine with `find` (see the module documentation); without one,
    /// [`NodeProvider::find`] cannot tell.
    pub fn find_command(mut self, find: CommandSpec) -> Self {
        self.find = Some(with_timeout(find, DEFAULT_FIND_TIMEOUT));
        self
    }

    /// Runs the commands through `runner` on `host` (as that runner names machines) instead
    /// of on this machine.
    pub fn runner(mut self, runner: Arc<dyn CommandRunner>, host: NodeName) -> Self {
        self.runner = runner;
        self.host = host;
        self
    }

    /// Gives every command `KUPGRADE_CLUSTER=name`.
    pub fn cluster_name(mut self, name: impl Into<String>) -> Self {
        self.cluster = Some(name.into());
        self
    }

    /// Sets an extra environment variable for every command (before kupgrade's own, which
    /// win).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// After create, waits through `ops` until the node is Ready at its version, for at most
    /// `timeout`.
    pub fn wait_ready(mut self, ops: Arc<dyn ClusterOperations>, timeout: Duration) -> Self {
        self.ready = Some((ops, timeout));
        self
    }

    /// Calls `f(node, target)` when a create or find command says where a node is reached
    /// over SSH; for example `move |n, t| ssh.learn_target(n, t)` with an
    /// [`SshRunner`](crate::SshRunner).
    pub fn on_ssh_target(
        mut self,
        f: impl Fn(&NodeName, &SshTarget) + Send + Sync + 'static,
    ) -> Self {
        self.on_target = Some(Arc::new(f));
        self
    }

    /// The variables every command gets, for `node`.
    fn base_env(&self, action: Action, node: &NodeName) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        env.push(("KUPGRADE_PROVIDER_ACTION".into(), action.to_string()));
        env.push(("KUPGRADE_NODE".into(), node.to_string()));
        env.push((
            "KUPGRADE_CLUSTER".into(),
            self.cluster.clone().unwrap_or_default(),
        ));
        env
    }

    /// The create command's variables.
    fn create_env(
        &self,
        node: &NodeName,
        template: &Node,
        version: &KubeVersion,
    ) -> Vec<(String, String)> {
        let mut env = self.base_env(Action::Create, node);
        let roles: Vec<String> = template.roles.iter().map(|r| r.to_string()).collect();
        let labels: std::collections::BTreeMap<&String, &String> = template
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != HOSTNAME_LABEL)
            .collect();
        env.extend(
            [
                ("KUPGRADE_VERSION", version.to_string()),
                ("KUPGRADE_TEMPLATE_NODE", template.name.to_string()),
                (
                    "KUPGRADE_ROLES",
                    if roles.is_empty() {
                        "worker".into()
                    } else {
                        roles.join(",")
                    },
                ),
                (
                    "KUPGRADE_LABELS",
                    serde_json::to_string(&labels).unwrap_or_else(|_| "{}".into()),
                ),
                ("KUPGRADE_OS_FAMILY", template.os.family.to_string()),
                (
                    "KUPGRADE_OS_RELEASE",
                    template.os.release.clone().unwrap_or_default(),
                ),
                (
                    "KUPGRADE_ZONE",
                    template.zone().unwrap_or_default().to_string(),
                ),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        env
    }

    /// Runs `spec` for `node` with `env`; a command that could not run, timed out or exited
    /// non-zero is an error naming the command and what it printed.
    async fn invoke(
        &self,
        action: Action,
        node: &NodeName,
        spec: &CommandSpec,
        env: Vec<(String, String)>,
    ) -> Result<CommandOutput, OpsError> {
        let mut spec = spec.clone();
        spec.env.extend(env);
        let line = spec_line(&spec);
        tracing::info!(node = %node, "node provider: {action}: {line}");
        let logs = {
            let node = node.clone();
            LineSink::new(move |stream, text| {
                if stream == Stream::Stderr {
                    tracing::info!(node = %node, "node provider: {action}: {text}");
                }
            })
        };
        let what = || format!("the node provider's {action} command for node {node} (`{line}`)");
        match self.runner.run(&self.host, &spec, &logs).await {
            Ok(out) if out.status.success() => Ok(out),
            Ok(out) => Err(OpsError::Other {
                message: format!("{} ended with {}: {}", what(), out.status, tail(&out)),
                source: None,
            }),
            Err(RunnerError::TimedOut { after, .. }) => Err(OpsError::TimedOut {
                what: format!("{} (it was killed)", what()),
                after,
            }),
            Err(e) => Err(OpsError::Other {
                message: format!("{} could not run: {e}", what()),
                source: Some(Box::new(e)),
            }),
        }
    }

    /// Tells whoever listens where `node` is reached.
    fn learned(&self, node: &NodeName, machine: &reply::Machine) {
        if let (Some(f), Some(t)) = (&self.on_target, &machine.ssh) {
            f(node, t);
        }
    }
}

/// The command's own line, without the variables kupgrade adds (they are in every message's
/// node name already, and labels can be long).
fn spec_line(spec: &CommandSpec) -> String {
    CommandSpec {
        env: Vec::new(),
        ..spec.clone()
    }
    .to_shell_line()
}

/// The last lines of stderr, or a note that there were none.
fn tail(out: &CommandOutput) -> String {
    let t = out.stderr_tail(5);
    if t.trim().is_empty() {
        "no output on stderr".into()
    } else {
        format!("stderr: {}", t.trim())
    }
}

fn with_timeout(spec: CommandSpec, default: Duration) -> CommandSpec {
    match spec.timeout {
        Some(_) => spec,
        None => spec.timeout(default),
    }
}

/// A reply that does not follow the contract, as an error naming the command.
fn bad_reply(action: Action, node: &NodeName, spec: &CommandSpec, why: String) -> OpsError {
    OpsError::Other {
        message: format!(
            "the node provider's {action} command for node {node} (`{}`) exited 0, but {why}",
            spec_line(spec)
        ),
        source: None,
    }
}

#[async_trait]
impl NodeProvider for CommandProvider {
    async fn provision(
        &self,
        name: &NodeName,
        template: &Node,
        version: &KubeVersion,
    ) -> Result<Node, OpsError> {
        let env = self.create_env(name, template, version);
        let out = self.invoke(Action::Create, name, &self.create, env).await?;
        let machine = reply::created(&out, name)
            .map_err(|why| bad_reply(Action::Create, name, &self.create, why))?;
        tracing::info!(node = %name, "node provider: created {name} ({})", machine.describe());
        self.learned(name, &machine);
        if let Some((ops, timeout)) = &self.ready {
            ops.wait_ready(name, version, *timeout).await?;
        }
        let mut node = Node::provisioned(name, template, version);
        node.ssh = machine.ssh.map(Box::new);
        Ok(node)
    }

    async fn remove(&self, node: &NodeName) -> Result<(), OpsError> {
        let env = self.base_env(Action::Remove, node);
        self.invoke(Action::Remove, node, &self.remove, env).await?;
        Ok(())
    }

    async fn find(&self, name: &NodeName) -> Result<MachineLookup, OpsError> {
        let Some(spec) = &self.find else {
            return Ok(MachineLookup::Unknown);
        };
        let env = self.base_env(Action::Find, name);
        let out = self.invoke(Action::Find, name, spec, env).await?;
        match reply::found(&out, name).map_err(|why| bad_reply(Action::Find, name, spec, why))? {
            None => Ok(MachineLookup::Absent),
            Some(machine) => {
                self.learned(name, &machine);
                Ok(MachineLookup::Present {
                    detail: machine.describe(),
                })
            }
        }
    }
}
