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
//! - Host keys are checked strictly by default: an unknown or changed key is
//!   [`RunnerError::HostKey`], with what to do about it; trusting new keys is an explicit
//!   opt-in ([`SshConfig::accept_new_host_keys`]).
//! - Each command is sent as one quoted line ([`CommandSpec::to_shell_line`], so
//!   [`Privilege::Sudo`] becomes `sudo -n`) inside a small wrapper (see `wrapper.rs`) that
//!   reports the command's process group. A timeout kills that whole group on the node with
//!   `kill -KILL` over the same connection (through `sudo -n` for sudo commands), then returns
//!   [`RunnerError::TimedOut`]; so does dropping the `run` future.
//! - Output is bounded and streamed like the local runner's. Exit status 127 of a
//!   [`Program::Exec`] command is
//!   [`RunnerError::NotFound`]. A command killed by a signal reports `128 + signal` (OpenSSH's
//!   multiplexing protocol does not carry signal numbers).
//! - The node's login shell must be POSIX-like (bash, dash, zsh, ksh); what its start-up files
//!   print before the command starts is discarded.
mod config;
mod wrapper;

use std::collections::HashMap;
use std::io;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kupgrade_core::ports::{
    CommandOutput, CommandRunner, CommandSpec, ExitStatus, LineSink, Privilege, Program,
    RunnerError, Stream,
};
use kupgrade_core::{ClusterState, NodeName, SshTarget};
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::time::Instant;

pub use config::{HostKeyPolicy, SshConfig, SshConfigError};

use crate::node_env::{NodeEnv, NodeEnvFn};
use crate::output::{StreamCapture, pump};
use wrapper::{Marker, find_marker, remote_line};

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
        self.targets.get(node).cloned().unwrap_or(SshTarget {
            host: None,
            port: None,
            user: None,
        })
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

    async fn connect(&self, node: &NodeName) -> Result<Session, RunnerError> {
        let cfg = &self.config;
        let target = self.target(node);
        let host = target.host.as_deref().unwrap_or(node.as_str());
        if host.is_empty()
            || host.starts_with('-')
            || host.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(RunnerError::Connect {
                node: node.clone(),
                message: format!("{host:?} is not a host name or address"),
                source: None,
            });
        }
        let mut b = SessionBuilder::default();
        b.known_hosts_check(match cfg.host_keys {
            HostKeyPolicy::Strict => KnownHosts::Strict,
            HostKeyPolicy::AcceptNew => KnownHosts::Add,
        })
        .connect_timeout(cfg.connect_timeout.max(Duration::from_secs(1)))
        .control_persist(ControlPersist::IdleFor(
            NonZeroUsize::new(cfg.idle_timeout.as_secs() as usize).unwrap_or(NonZeroUsize::MIN),
        ))
        .control_directory(self.state.dir.path());
        if let Some(d) = cfg.server_alive_interval {
            b.server_alive_interval(d.max(Duration::from_secs(1)));
        }
        if let Some(f) = &cfg.identity_file {
            b.keyfile(f);
        }
        if let Some(f) = &cfg.known_hosts_file {
            b.user_known_hosts_file(f);
        }
        if let Some(f) = &self.state.config_file {
            b.config_file(f);
        }
        if let Some(user) = target.user.as_ref().or(cfg.user.as_ref()) {
            b.user(user.clone());
        }
        if let Some(port) = target.port {
            b.port(port);
        }
        tracing::debug!(node = %node, destination = %self.destination(node), "opening SSH connection");
        b.connect_mux(host)
            .await
            .map_err(|e| self.connect_error(node, &target, e))
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
        let host = target.host.as_deref().unwrap_or(node.as_str());
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

/// Kills the remote process group when dropped while armed (the `run` future was cancelled).
struct RemoteKill {
    session: Option<Arc<Session>>,
    pgid: Arc<AtomicU32>,
    sudo: bool,
    node: NodeName,
}

impl RemoteKill {
    fn disarm(&mut self) {
        self.session = None;
    }
}

impl Drop for RemoteKill {
    fn drop(&mut self) {
        let (Some(session), pgid) = (self.session.take(), self.pgid.load(Ordering::Acquire)) else {
            return;
        };
        if pgid == 0 {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (sudo, node) = (self.sudo, self.node.clone());
            handle.spawn(async move { kill_group(&session, &node, pgid, sudo).await });
        }
    }
}

/// How often a refused session is retried before giving up (about 5 s in all).
const MAX_REFUSALS: u32 = 25;

fn refusal_backoff(attempt: u32) -> Duration {
    Duration::from_millis((10 * u64::from(attempt)).min(250))
}

/// True when the server refused to open a session on the connection (nothing ran).
fn session_refused(e: &openssh::Error) -> bool {
    matches!(e, openssh::Error::SshMux(inner) if inner.to_string().contains("refused by peer"))
}

/// Sends `SIGKILL` to process group `pgid` on the node, over `session`.
async fn kill_group(session: &Arc<Session>, node: &NodeName, pgid: u32, sudo: bool) {
    let line = if sudo {
        format!("sudo -n sh -c 'kill -KILL -- -{pgid}'")
    } else {
        format!("kill -KILL -- -{pgid}")
    };
    let mut attempt = 0;
    let result = loop {
        let r = Session::to_raw_command(session.clone(), &line)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        match r {
            Err(e) if session_refused(&e) && attempt < MAX_REFUSALS => {
                attempt += 1;
                tokio::time::sleep(refusal_backoff(attempt)).await;
            }
            r => break r,
        }
    };
    match result {
        Ok(s) if s.success() => tracing::debug!(node = %node, pgid, "killed the remote command"),
        Ok(s) => {
            tracing::warn!(node = %node, pgid, status = %s, "killing the remote command failed (it may have ended already)")
        }
        Err(e) => {
            tracing::warn!(node = %node, pgid, error = %e, "could not kill the remote command")
        }
    }
}

/// What the start of stdout said about the command.
#[derive(Debug, PartialEq, Eq)]
enum Start {
    /// The wrapper reported the process group: the command ran.
    Seen,
    /// Stdout ended before the marker: the set-up failed and nothing ran.
    Missing,
    /// No marker in the first bytes: unknown whether the command ran.
    Garbled,
}

/// Reads stdout to its end: first the wrapper's marker (the process group), then the
/// command's output. Read errors end the stream (they are logged).
async fn pump_marked<R: AsyncRead + Unpin>(
    reader: &mut R,
    capture: &mut StreamCapture,
    sink: &LineSink,
    pgid: &AtomicU32,
) -> Start {
    let mut prelude = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "reading stdout failed");
                0
            }
        };
        if n == 0 {
            return Start::Missing;
        }
        prelude.extend_from_slice(&buf[..n]);
        match find_marker(&prelude) {
            Marker::Pending => continue,
            Marker::Invalid => {
                // Keep reading, so the remote side never blocks on a full pipe.
                while matches!(reader.read(&mut buf).await, Ok(n) if n > 0) {}
                return Start::Garbled;
            }
            Marker::Found { pgid: id, rest } => {
                if rest > MARKER_LINE_MAX {
                    tracing::debug!(
                        bytes = rest,
                        "discarded login shell output before the command"
                    );
                }
                pgid.store(id, Ordering::Release);
                capture.push(&prelude[rest..], sink);
                if let Err(e) = pump(reader, capture, sink).await {
                    tracing::debug!(error = %e, "reading stdout failed");
                }
                return Start::Seen;
            }
        }
    }
}

/// The marker line's longest possible length.
const MARKER_LINE_MAX: usize = wrapper::MARKER.len() + 11;

#[async_trait]
impl CommandRunner for SshRunner {
    async fn run(
        &self,
        node: &NodeName,
        spec: &CommandSpec,
        lines: &LineSink,
    ) -> Result<CommandOutput, RunnerError> {
        let line = remote_line(&self.node_env.get(node), spec)?;
        let slot = self.slot(node);
        let _permit = slot
            .permits
            .acquire()
            .await
            .map_err(|e| RunnerError::Other {
                node: node.clone(),
                message: "the runner is shutting down".into(),
                source: Some(Box::new(e)),
            })?;
        let mut reconnected = false;
        let mut refusals = 0u32;
        let (session, mut child) = loop {
            let session = self.session(node, &slot).await?;
            let spawned = Session::to_raw_command(session.clone(), &line)
                .stdin(if spec.stdin.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .await;
            match spawned {
                Ok(child) => break (session, child),
                // The connection went away (idle timeout, network) before the command
                // started: open a new one, once.
                Err(openssh::Error::Disconnected) if !reconnected => {
                    tracing::debug!(node = %node, "SSH connection gone; reconnecting");
                    slot.forget(&session).await;
                    reconnected = true;
                }
                // The server refused a new session: usually its MaxSessions, while the
                // sessions of commands that just ended are still being closed. Nothing ran;
                // try again shortly.
                Err(e) if session_refused(&e) && refusals < MAX_REFUSALS => {
                    refusals += 1;
                    tracing::debug!(node = %node, refusals, "session refused; retrying");
                    tokio::time::sleep(refusal_backoff(refusals)).await;
                }
                Err(e) if session_refused(&e) => {
                    return Err(RunnerError::Other {
                        node: node.clone(),
                        message: format!(
                            "{} kept refusing new sessions on its connection; its sshd \
                             MaxSessions may be lower than SshConfig::max_sessions_per_node ({})",
                            self.destination(node),
                            self.config.max_sessions_per_node
                        ),
                        source: Some(Box::new(e)),
                    });
                }
                Err(e) => {
                    if matches!(e, openssh::Error::Disconnected) {
                        slot.forget(&session).await;
                    }
                    return Err(RunnerError::Connect {
                        node: node.clone(),
                        message: format!(
                            "cannot start a command on {}: {e}",
                            self.destination(node)
                        ),
                        source: Some(Box::new(e)),
                    });
                }
            }
        };
        tracing::debug!(node = %node, command = %spec, "running over SSH");

        let pgid = Arc::new(AtomicU32::new(0));
        let sudo = spec.privilege == Privilege::Sudo;
        let mut guard = RemoteKill {
            session: Some(session.clone()),
            pgid: pgid.clone(),
            sudo,
            node: node.clone(),
        };
        let mut stdin = child.stdin().take();
        let mut stdout = child.stdout().take().expect("stdout is piped");
        let mut stderr = child.stderr().take().expect("stderr is piped");
        let mut out = StreamCapture::new(Stream::Stdout, spec.max_output, lines);
        let mut err = StreamCapture::new(Stream::Stderr, spec.max_output, lines);

        let work = async {
            let feed = async {
                if let (Some(w), Some(bytes)) = (stdin.as_mut(), spec.stdin.as_deref()) {
                    let _ = w.write_all(bytes).await;
                    let _ = w.shutdown().await;
                }
                drop(stdin.take()); // EOF
            };
            let (_, started, e) = tokio::join!(
                feed,
                pump_marked(&mut stdout, &mut out, lines, &pgid),
                pump(&mut stderr, &mut err, lines)
            );
            if let Err(e) = &e {
                tracing::debug!(node = %node, error = %e, "reading stderr failed");
            }
            // Wait for the status only once the output is drained: the status ends the
            // channel, and with it any output still in flight.
            (started, child.wait().await)
        };
        let finished = {
            let mut work = pin!(work);
            let finished = match spec.timeout {
                None => Some(work.as_mut().await),
                Some(after) => tokio::select! {
                    r = work.as_mut() => Some(r),
                    _ = tokio::time::sleep(after) => None,
                },
            };
            match finished {
                Some(r) => Ok(r),
                None => {
                    // Timed out: learn the process group if it is not known yet, kill it, and let the
                    // channel close (which shows the group is gone), each within the grace period.
                    let deadline = Instant::now() + self.config.kill_grace;
                    let mut done = false;
                    while pgid.load(Ordering::Acquire) == 0 && !done {
                        tokio::select! {
                            _ = work.as_mut() => done = true,
                            _ = tokio::time::sleep_until(deadline) => break,
                            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                        }
                    }
                    let id = pgid.load(Ordering::Acquire);
                    if !done {
                        if id != 0 {
                            kill_group(&session, node, id, sudo).await;
                            if tokio::time::timeout_at(
                                deadline + self.config.kill_grace,
                                work.as_mut(),
                            )
                            .await
                            .is_err()
                            {
                                tracing::warn!(node = %node, pgid = id, "the killed command's output did not close");
                            }
                        } else {
                            tracing::warn!(node = %node, "timed out before the remote command reported its process group; it may still run");
                        }
                    }
                    Err(RunnerError::TimedOut {
                        node: node.clone(),
                        after: spec.timeout.unwrap_or_default(),
                        command: spec.to_shell_line(),
                    })
                }
            }
        };
        guard.disarm();
        let (started, status) = finished?;

        let code = match status {
            Ok(s) => s.code(),
            // openssh reports status 127 as an error of its own.
            Err(openssh::Error::Remote(e)) if e.kind() == io::ErrorKind::NotFound => Some(127),
            Err(openssh::Error::Disconnected) => {
                slot.forget(&session).await;
                return Err(RunnerError::Connect {
                    node: node.clone(),
                    message: format!(
                        "the connection to {} was lost while the command ran; it may or may not \
                         have finished",
                        self.destination(node)
                    ),
                    source: Some(Box::new(openssh::Error::Disconnected)),
                });
            }
            Err(e) => {
                return Err(RunnerError::Other {
                    node: node.clone(),
                    message: format!("the remote command ended without a status: {e}"),
                    source: Some(Box::new(e)),
                });
            }
        };
        let (stdout, t1) = out.finish(lines);
        let (stderr, t2) = err.finish(lines);
        let status_text = code.map_or("unknown".to_string(), |c| c.to_string());
        match started {
            Start::Seen => {}
            Start::Missing => {
                let text = String::from_utf8_lossy(&stderr);
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(5)..].join(" / ");
                return Err(RunnerError::Other {
                    node: node.clone(),
                    message: format!(
                        "the command did not start (exit status {status_text}): {}",
                        if tail.is_empty() { "no output" } else { &tail }
                    ),
                    source: None,
                });
            }
            Start::Garbled => {
                return Err(RunnerError::Other {
                    node: node.clone(),
                    message: format!(
                        "kupgrade's start marker was not in the first {} KiB of output (do the \
                         login shell's start-up files print that much?); the command may have \
                         run (exit status {status_text})",
                        wrapper::MAX_PRELUDE / 1024
                    ),
                    source: None,
                });
            }
        }
        let Some(code) = code else {
            return Err(RunnerError::Other {
                node: node.clone(),
                message: "the remote login shell was killed by a signal".into(),
                source: None,
            });
        };
        if let (127, Program::Exec { program, .. }) = (code, &spec.program) {
            return Err(RunnerError::NotFound {
                node: node.clone(),
                program: program.clone(),
            });
        }
        Ok(CommandOutput {
            status: ExitStatus::Code(code),
            stdout,
            stderr,
            truncated: t1 || t2,
        })
    }
}
