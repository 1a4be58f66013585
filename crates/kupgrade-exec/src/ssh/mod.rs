//! [`SshRunner`]: runs commands on nodes over OpenSSH, one multiplexed connection per node.
//!
//! # Why `openssh` and not `russh`
//!
//! The [`openssh`] crate drives the system's OpenSSH client. A cluster's operators already
//! have that client configured: `~/.ssh/config` host aliases, `ProxyJump` bastions,
//! certificates, hardware keys through the agent, `known_hosts` with hashed and `@cert-authority`
//! entries. Reusing it means kupgrade connects exactly where and as `ssh` does, with the same
//! host-key checks, and gets OpenSSH's security fixes with the system. `russh` is a fine
//! pure-Rust implementation, but kupgrade would have to re-implement config parsing, jump hosts
//! and known-hosts handling, and every difference from `ssh` would surprise the operator. With
//! the `native-mux` feature, each command is a new channel on the node's ControlMaster
//! connection opened straight over its control socket, with no `ssh` process per command, so a
//! round trip costs a few milliseconds (see `benches/benches/ssh.rs`).
//!
//! # Behaviour
//!
//! - One connection (a ControlMaster) per node, opened on first use and shared by all of its
//!   commands; at most [`SshConfig::max_sessions_per_node`] run at once. A connection that
//!   went away (idle timeout, network) is re-opened once before a command starts.
//! - A node's target is checked before a connection opens: a host that is not a DNS name
//!   or an IP address, or a user that is not a POSIX user name, is [`RunnerError::Invalid`]
//!   (see [`kupgrade_core::ssh_target`]). So is a connection that `ssh` itself refuses (a
//!   bad option, an unreadable configuration file), with what ssh said (`client.rs`).
//! - Host keys are checked strictly by default: an unknown or changed key is
//!   [`RunnerError::HostKey`], with what to do about it; trusting new keys is an explicit
//!   opt-in ([`SshConfig::accept_new_host_keys`]).
//! - Each command is sent as one quoted line ([`CommandSpec::to_shell_line`], so
//!   [`Privilege::Sudo`] becomes `sudo -n`) inside a small wrapper (see `wrapper.rs`) that
//!   reports the command's process group. A timeout kills that whole group on the node with
//!   `kill -KILL` over the same connection (through `sudo -n` for sudo commands), then returns
//!   [`RunnerError::TimedOut`]; so does dropping the `run` future.
//! - Output is bounded and streamed like the local runner's. Exit status 127 of a
//!   [`Program::Exec`] command is [`RunnerError::NotFound`]. A command killed by a signal
//!   reports `128 + signal` (OpenSSH's multiplexing protocol does not carry signal numbers).
//!   `command.rs` runs one command, phase by phase.
//! - The node's login shell must be POSIX-like (bash, dash, zsh, ksh); what its start-up files
//!   print before the command starts is discarded.
//!
//! [`CommandSpec::to_shell_line`]: kupgrade_core::ports::CommandSpec::to_shell_line
//! [`Privilege::Sudo`]: kupgrade_core::ports::Privilege::Sudo
//! [`Program::Exec`]: kupgrade_core::ports::Program::Exec
mod client;
mod command;
mod config;
mod wrapper;

use std::collections::HashMap;
use std::io;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kupgrade_core::ports::RunnerError;
use kupgrade_core::{ClusterState, NodeName, SshTarget};
use openssh::Session;
use tokio::sync::Semaphore;

use client::ClientSettings;
pub use config::{HostKeyPolicy, SshConfig, SshConfigError};

use crate::node_env::{NodeEnv, NodeEnvFn};

/// A node without a target is reached at its name, as the SSH client's configuration says.
const NO_TARGET: SshTarget = SshTarget {
    host: None,
    port: None,
    user: None,
};

/// Runs commands on nodes over SSH (see the [module documentation](self)).
///
/// ```no_run
/// use kupgrade_core::ports::{CommandRunnerExt, CommandSpec};
/// use kupgrade_core::SshTarget;
/// use kupgrade_exec::{SshConfig, SshRunner};
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = SshRunner::new(SshConfig::new().user("admin"))?
///     .with_target("cp-1".parse()?, SshTarget { host: Some("10.0.0.11".into()), port: None, user: None });
/// let out = runner.output(&"cp-1".parse()?, &CommandSpec::new("kubeadm").arg("version")).await?;
/// assert!(out.status.success());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SshRunner {
    config: Arc<SshConfig>,
    targets: Arc<HashMap<NodeName, SshTarget>>,
    /// Targets learned while the run goes on (nodes made by a node provider), shared by every
    /// clone; they take precedence over `targets`.
    learned: Arc<Mutex<HashMap<NodeName, SshTarget>>>,
    node_env: NodeEnvFn,
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    /// Control sockets and the generated config file live here.
    dir: tempfile::TempDir,
    config_file: Option<PathBuf>,
    slots: Mutex<HashMap<NodeName, Arc<Slot>>>,
}

impl Drop for State {
    fn drop(&mut self) {
        // openssh's own drop only asks a master to stop listening, which leaves it running
        // until its idle timeout: ask each to exit (all at once, then wait).
        let slots = std::mem::take(self.slots.get_mut().unwrap_or_else(|e| e.into_inner()));
        let exiting: Vec<_> = slots
            .values()
            .filter_map(|slot| slot.session.try_lock().ok()?.take())
            .filter_map(|session| exit_master(&session).spawn().ok())
            .collect();
        for mut child in exiting {
            let _ = child.wait();
        }
    }
}

/// `ssh -O exit` for a session's master: it closes the connection and exits.
fn exit_master(session: &Session) -> std::process::Command {
    let mut cmd = std::process::Command::new("ssh");
    cmd.arg("-S")
        .arg(session.control_socket())
        .args(["-O", "exit", "kupgrade-node"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

/// One node's connection and its session budget.
#[derive(Debug)]
struct Slot {
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
    permits: Semaphore,
}

impl Slot {
    /// Drops `session` from the cache if it is still the cached one.
    async fn forget(&self, session: &Arc<Session>) {
        let mut cached = self.session.lock().await;
        if cached.as_ref().is_some_and(|s| Arc::ptr_eq(s, session)) {
            *cached = None;
        }
    }
}

impl SshRunner {
    /// A runner with `config` and no explicit targets: a node is reached at its own name.
    pub fn new(config: SshConfig) -> Result<Self, SshConfigError> {
        let rendered = config.render_config_file()?;
        let parent = config.state_dir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("kupgrade-ssh-")
            .tempdir_in(&parent)
            .map_err(|source| SshConfigError::StateDir {
                dir: parent.clone(),
                source,
            })?;
        let config_file = match rendered {
            Some(text) => {
                let path = dir.path().join("ssh_config");
                std::fs::write(&path, text).map_err(|source| SshConfigError::StateDir {
                    dir: parent.clone(),
                    source,
                })?;
                Some(path)
            }
            None => config.config_file.clone(),
        };
        Ok(SshRunner {
            config: Arc::new(config),
            targets: Arc::new(HashMap::new()),
            learned: Arc::default(),
            node_env: NodeEnvFn::default(),
            state: Arc::new(State {
                dir,
                config_file,
                slots: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Reaches `node` at `target` (host defaults to the node name).
    pub fn with_target(mut self, node: NodeName, target: SshTarget) -> Self {
        Arc::make_mut(&mut self.targets).insert(node, target);
        self
    }

    /// Reaches each node at its target.
    pub fn with_targets(
        mut self,
        targets: impl IntoIterator<Item = (NodeName, SshTarget)>,
    ) -> Self {
        Arc::make_mut(&mut self.targets).extend(targets);
        self
    }

    /// Reaches `node` at `target` from now on, in this runner and every clone of it: for a
    /// node that did not exist when the runner was made (a node provider's new machine,
    /// `kupgrade_exec::provider::CommandProvider::on_ssh_target`). A connection already open
    /// to the node at another target is dropped; commands running on it go on.
    pub fn learn_target(&self, node: &NodeName, target: &SshTarget) {
        let old = self
            .learned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node.clone(), target.clone());
        let before = old.as_ref().or_else(|| self.targets.get(node));
        if before.unwrap_or(&NO_TARGET) != target {
            self.state
                .slots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(node);
        }
    }

    /// Takes the targets of the cluster's nodes that have one (`ssh:` in the inventory).
    pub fn with_cluster(self, cluster: &ClusterState) -> Self {
        let targets: Vec<_> = cluster
            .nodes
            .iter()
            .filter_map(|n| n.ssh.as_deref().map(|t| (n.name.clone(), t.clone())))
            .collect();
        self.with_targets(targets)
    }

    /// Applies `f(node)` to every command on that node (working directory, `PATH` prefix,
    /// environment; see [`NodeEnv`]). Paths are paths on the node.
    pub fn with_node_env(
        mut self,
        f: impl Fn(&NodeName) -> NodeEnv + Send + Sync + 'static,
    ) -> Self {
        self.node_env = NodeEnvFn::new(f);
        self
    }

    /// Where `node` is reached: `user@host:port` as far as known here.
    pub fn destination(&self, node: &NodeName) -> String {
        let t = self.target(node);
        let mut s = String::new();
        if let Some(user) = t.user.as_ref().or(self.config.user.as_ref()) {
            s.push_str(user);
            s.push('@');
        }
        s.push_str(t.host.as_deref().unwrap_or(node.as_str()));
        if let Some(port) = t.port {
            s.push_str(&format!(":{port}"));
        }
        s
    }

    /// Closes every open connection now; commands still running on them fail. (Connections
    /// also close when the last clone of the runner is dropped.)
    pub async fn close(&self) {
        let slots: Vec<Arc<Slot>> = self
            .state
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect();
        for slot in slots {
            if let Some(session) = slot.session.lock().await.take() {
                let status = tokio::process::Command::from(exit_master(&session))
                    .status()
                    .await;
                if !status.as_ref().is_ok_and(|s| s.success()) {
                    tracing::debug!(?status, "asking an SSH master to exit failed");
                }
            }
        }
    }

    fn target(&self, node: &NodeName) -> SshTarget {
        let learned = self.learned.lock().unwrap_or_else(|e| e.into_inner());
        learned
            .get(node)
            .or_else(|| self.targets.get(node))
            .unwrap_or(&NO_TARGET)
            .clone()
    }

    fn slot(&self, node: &NodeName) -> Arc<Slot> {
        let mut slots = self.state.slots.lock().unwrap();
        slots
            .entry(node.clone())
            .or_insert_with(|| {
                Arc::new(Slot {
                    session: tokio::sync::Mutex::new(None),
                    permits: Semaphore::new(self.config.max_sessions_per_node.max(1)),
                })
            })
            .clone()
    }

    /// The node's connection, opened on first use.
    async fn session(&self, node: &NodeName, slot: &Slot) -> Result<Arc<Session>, RunnerError> {
        let mut cached = slot.session.lock().await;
        if let Some(s) = &*cached {
            return Ok(s.clone());
        }
        let session = Arc::new(self.connect(node).await?);
        *cached = Some(session.clone());
        Ok(session)
    }

    /// The client options of `node`'s connection, once its target is checked (a host or user
    /// that could reach a shell through `ssh`'s configuration is refused here too, whatever
    /// built the target; see [`kupgrade_core::ssh_target`]).
    fn settings(&self, node: &NodeName) -> Result<ClientSettings, RunnerError> {
        let cfg = &self.config;
        let target = self.target(node);
        if let Some(p) = target.problems().into_iter().next() {
            return Err(RunnerError::Invalid {
                node: node.clone(),
                message: format!("its SSH target's {p}; nothing was run"),
            });
        }
        Ok(ClientSettings {
            host: target.ssh_host().unwrap_or(node.as_str()).to_string(),
            host_keys: cfg.host_keys,
            connect_timeout: cfg.connect_timeout.max(Duration::from_secs(1)),
            idle: NonZeroUsize::new(cfg.idle_timeout.as_secs() as usize)
                .unwrap_or(NonZeroUsize::MIN),
            server_alive_interval: cfg
                .server_alive_interval
                .map(|d| d.max(Duration::from_secs(1))),
            identity_file: cfg.identity_file.clone(),
            known_hosts_file: cfg.known_hosts_file.clone(),
            config_file: self.state.config_file.clone(),
            user: target.user.clone().or_else(|| cfg.user.clone()),
            port: target.port,
        })
    }

    async fn connect(&self, node: &NodeName) -> Result<Session, RunnerError> {
        let settings = self.settings(node)?;
        tracing::debug!(node = %node, destination = %self.destination(node), "opening SSH connection");
        let e = match settings
            .builder(self.state.dir.path())
            .connect_mux(&settings.host)
            .await
        {
            Ok(session) => return Ok(session),
            Err(e) => self.connect_error(node, &self.target(node), e),
        };
        // Not the node's host key nor its authentication: ssh may have refused its own
        // arguments or configuration, which trying again will not fix.
        if let RunnerError::Connect { .. } = e
            && let Some(said) = settings.refusal().await
        {
            return Err(RunnerError::Invalid {
                node: node.clone(),
                message: format!(
                    "ssh refused its arguments or configuration for {}, so nothing was run \
                     (ssh: {said})",
                    self.destination(node)
                ),
            });
        }
        Err(e)
    }

    fn connect_error(&self, node: &NodeName, target: &SshTarget, e: openssh::Error) -> RunnerError {
        let dest = self.destination(node);
        let text = match &e {
            openssh::Error::Connect(io) => io.to_string(),
            other => {
                return RunnerError::Connect {
                    node: node.clone(),
                    message: format!("cannot set up the SSH connection to {dest}: {other}"),
                    source: Some(Box::new(e)),
                };
            }
        };
        let said = |pick: &dyn Fn(&str) -> bool| -> String {
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('@') && pick(l))
                .collect();
            if lines.is_empty() {
                text.trim().to_string()
            } else {
                lines.join(" ")
            }
        };
        let known_hosts = self
            .config
            .known_hosts_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "~/.ssh/known_hosts".to_string());
        let host = target.ssh_host().unwrap_or(node.as_str());
        let host_spec = match target.port {
            Some(p) if p != 22 => format!("[{host}]:{p}"),
            _ => host.to_string(),
        };
        if text.contains("HOST IDENTIFICATION HAS CHANGED")
            || text.contains("has changed and you have requested strict checking")
        {
            return RunnerError::HostKey {
                node: node.clone(),
                message: format!(
                    "{dest} presented a host key that does NOT match the one recorded for it in \
                     {known_hosts}: the node was reinstalled, or someone is intercepting the \
                     connection. Nothing was run. If the node was reinstalled, confirm its new \
                     key's fingerprint out of band (on the node: ssh-keygen -lf \
                     /etc/ssh/ssh_host_ed25519_key.pub), then remove the old entry with \
                     `ssh-keygen -R '{host_spec}' -f {known_hosts}` and add the new one. \
                     (ssh: {})",
                    said(&|l| l.contains("ost key"))
                ),
            };
        }
        if text.contains("Host key verification failed") || text.contains("host key is known") {
            return RunnerError::HostKey {
                node: node.clone(),
                message: format!(
                    "{dest} presented a host key that is not in {known_hosts}, and unknown host \
                     keys are refused. Nothing was run. Confirm the key's fingerprint out of band \
                     (on the node: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and add it to \
                     {known_hosts} (for example the matching line of `ssh-keyscan {}{host}`), or \
                     opt in to trusting new keys on first use with \
                     SshConfig::accept_new_host_keys(). (ssh: {})",
                    target.port.map(|p| format!("-p {p} ")).unwrap_or_default(),
                    said(&|l| l.contains("ost key"))
                ),
            };
        }
        let io_kind = match &e {
            openssh::Error::Connect(io) => io.kind(),
            _ => io::ErrorKind::Other,
        };
        if io_kind == io::ErrorKind::PermissionDenied || text.contains("Permission denied (") {
            return RunnerError::Auth {
                node: node.clone(),
                message: format!(
                    "{dest} did not accept any offered key (ssh: {}). Check the user name, the \
                     identity file or the agent's keys, and the node's authorized_keys.",
                    said(&|l| l.contains("Permission denied"))
                ),
            };
        }
        let message = if io_kind == io::ErrorKind::NotFound && !text.contains("ssh") {
            format!("cannot run the local `ssh` client (is openssh-client installed?): {text}")
        } else {
            format!("{dest}: {}", said(&|_| true))
        };
        RunnerError::Connect {
            node: node.clone(),
            message,
            source: Some(Box::new(e)),
        }
    }
}
