//! Ports: the traits through which a run touches the world.
//!
//! - [`CommandRunner`]: run one command on one node (local shell, SSH, a pod, a simulation).
//! - [`ClusterOperations`]: read the cluster, cordon, drain, uncordon, wait for Ready.
//! - [`NodeProvider`]: create, look for and remove nodes, for the replace strategy.
//! - [`LeaseStore`]: where the run lease is kept, so that one run drives a cluster at a time
//!   (the rules of who may take it: [`judge`]).
//!
//! Each trait has few required methods; conveniences live in extension traits with blanket
//! impls ([`CommandRunnerExt`]). Errors are grouped by what the caller can do about them; each
//! backend keeps its detailed error as the `source`.
//!
//! Backends never drop a field of a [`CommandSpec`] they cannot honour: they refuse the command
//! with [`RunnerError::Unsupported`].
//!
//! A command a run starts can be tracked ([`CommandRunner::run_tracked`]): the runner reports a
//! [`CommandHandle`] to find it again on its node and holds a [`NodeLock`] while it runs; a
//! later process looks for it ([`CommandRunner::probe`]) and stops it
//! ([`CommandRunner::stop`]). The `tracking` module says why.
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{ClusterState, KubeVersion, Node, NodeName};

mod lease;
mod tracking;
mod wait;

pub use lease::{
    Force, LeaseClaim, LeaseError, LeaseHolder, LeaseRecord, LeaseStore, LeaseStoreExt, Stored,
    Taking, judge,
};
pub use tracking::{
    CommandHandle, HandleFn, HandleSink, LOCK_REFUSAL, LOCK_REFUSAL_STATUS, Liveness, NodeLock,
    Tracking,
};
pub use wait::{MAX_WAIT, capped, millis};

/// A boxed error from a backend, kept as the `source` of a port error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What to execute.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Program {
    /// A program and its arguments, each passed as one word (quoted by backends that go
    /// through a shell).
    Exec {
        /// The program name or path.
        program: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// A script for `sh -c`, used exactly as written. Use only with text you wrote or quoted
    /// with [`shell_quote`].
    Shell {
        /// The script.
        script: String,
    },
}

/// How a command gains privileges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Privilege {
    /// Run as the connecting user.
    #[default]
    None,
    /// Run through `sudo -n` (never prompts; fails if a password would be needed).
    Sudo,
}

/// A command to run on a node, in the style of [`std::process::Command`].
///
/// ```
/// use kupgrade_core::ports::CommandSpec;
/// use std::time::Duration;
/// let cmd = CommandSpec::new("apt-mark").arg("hold").args(["kubelet", "kubectl"])
///     .sudo().timeout(Duration::from_secs(60));
/// assert_eq!(cmd.to_shell_line(), "sudo -n apt-mark hold kubelet kubectl");
/// let odd = CommandSpec::new("echo").arg("it's; rm -rf /");
/// assert_eq!(odd.to_shell_line(), r"echo 'it'\''s; rm -rf /'");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandSpec {
    /// What to run.
    pub program: Program,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
    /// Bytes written to standard input, which is then closed. With `None`, stdin is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<Vec<u8>>,
    /// Kill the command after this long; without one, after [`DEFAULT_COMMAND_TIMEOUT`]
    /// ([`CommandSpec::time_limit`]).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_secs")]
    pub timeout: Option<Duration>,
    /// How to gain privileges.
    #[serde(default)]
    pub privilege: Privilege,
    /// The most bytes kept of each of stdout and stderr (the tail is kept).
    #[serde(default = "default_max_output")]
    pub max_output: usize,
}

/// How long a command built without a timeout may run before its runner kills it: 10 minutes.
/// Every command has a time limit, so every task has a deadline.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// The default bound on captured output per stream: 1 MiB.
pub const DEFAULT_MAX_OUTPUT: usize = 1 << 20;

fn default_max_output() -> usize {
    DEFAULT_MAX_OUTPUT
}

mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let v = Option::<f64>::deserialize(d)?;
        match v {
            Some(x) if x.is_finite() && (0.0..1e12).contains(&x) => {
                Ok(Some(Duration::from_secs_f64(x)))
            }
            Some(x) => Err(serde::de::Error::custom(format!(
                "{x} is not a timeout in seconds"
            ))),
            None => Ok(None),
        }
    }
}

/// Stands for the run's id ([`Run::run_id`](crate::run::Run::run_id)) in a plan's command
/// arguments: the run puts its id there when it hands the command to a runner
/// ([`CommandSpec::for_run`]). Backups and snapshots are written under it, so that no run
/// ever writes over the way back an earlier run left (a resumed run keeps its id, and
/// completes what it started). Braces never occur in a validated path option.
pub const RUN_TOKEN: &str = "{run}";

impl CommandSpec {
    /// This command as run `run` carries it out: [`RUN_TOKEN`] in its arguments replaced by
    /// `run` (an id of digits, letters, `.` and `-`, from the run itself).
    ///
    /// ```
    /// use kupgrade_core::ports::CommandSpec;
    /// let spec = CommandSpec::new("mkdir").args(["-p", "/var/backups/kupgrade/{run}"]);
    /// assert_eq!(
    ///     spec.for_run("20240601T000000.000Z-0123abcd").to_shell_line(),
    ///     "mkdir -p /var/backups/kupgrade/20240601T000000.000Z-0123abcd"
    /// );
    /// ```
    pub fn for_run(mut self, run: &str) -> Self {
        if let Program::Exec { args, .. } = &mut self.program {
            for a in args.iter_mut().filter(|a| a.contains(RUN_TOKEN)) {
                *a = a.replace(RUN_TOKEN, run);
            }
        }
        self
    }

    /// Runs `program` with no arguments.
    pub fn new(program: impl Into<String>) -> Self {
        CommandSpec {
            program: Program::Exec {
                program: program.into(),
                args: Vec::new(),
            },
            env: Vec::new(),
            stdin: None,
            timeout: None,
            privilege: Privilege::None,
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }

    /// Runs `script` with `sh -c`, exactly as written.
    pub fn shell(script: impl Into<String>) -> Self {
        CommandSpec {
            program: Program::Shell {
                script: script.into(),
            },
            ..CommandSpec::new("")
        }
    }

    /// Adds one argument. On a [`Program::Shell`] command it is appended to the script, quoted.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        match &mut self.program {
            Program::Exec { args, .. } => args.push(arg.into()),
            Program::Shell { script } => {
                script.push(' ');
                script.push_str(&shell_quote(&arg.into()));
            }
        }
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Feeds `bytes` to standard input.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Kills the command after `d`.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// How long the command may run: its timeout, or [`DEFAULT_COMMAND_TIMEOUT`].
    ///
    /// ```
    /// use kupgrade_core::ports::{CommandSpec, DEFAULT_COMMAND_TIMEOUT};
    /// use std::time::Duration;
    /// assert_eq!(CommandSpec::new("mkdir").time_limit(), DEFAULT_COMMAND_TIMEOUT);
    /// let d = Duration::from_secs(5);
    /// assert_eq!(CommandSpec::new("mkdir").timeout(d).time_limit(), d);
    /// ```
    pub fn time_limit(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_COMMAND_TIMEOUT)
    }

    /// Runs through `sudo -n`.
    pub fn sudo(mut self) -> Self {
        self.privilege = Privilege::Sudo;
        self
    }

    /// Keeps at most `bytes` of each output stream.
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes;
        self
    }

    /// The command as one POSIX shell line, every word quoted where needed: what a person would
    /// paste, and what shell-based backends send. Environment variables are prefixed with
    /// `env`; stdin and the timeout are not part of the line.
    pub fn to_shell_line(&self) -> String {
        let mut words: Vec<String> = Vec::new();
        if self.privilege == Privilege::Sudo {
            words.push("sudo".into());
            words.push("-n".into());
        }
        if !self.env.is_empty() {
            words.push("env".into());
            for (k, v) in &self.env {
                words.push(shell_quote(&format!("{k}={v}")));
            }
        }
        match &self.program {
            Program::Exec { program, args } => {
                words.push(shell_quote(program));
                words.extend(args.iter().map(|a| shell_quote(a)));
            }
            Program::Shell { script } => {
                if words.is_empty() {
                    return script.clone();
                }
                words.push("sh".into());
                words.push("-c".into());
                words.push(shell_quote(script));
            }
        }
        words.join(" ")
    }
}

impl fmt::Display for CommandSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_shell_line())
    }
}

/// Quotes `word` for a POSIX shell: unchanged when it is made only of safe characters,
/// otherwise in single quotes with embedded single quotes escaped.
///
/// ```
/// use kupgrade_core::ports::shell_quote;
/// assert_eq!(shell_quote("kubelet=1.29.3-*"), "'kubelet=1.29.3-*'");
/// assert_eq!(shell_quote("w-1.example"), "w-1.example");
/// assert_eq!(shell_quote(""), "''");
/// assert_eq!(shell_quote("a'b"), r"'a'\''b'");
/// ```
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitStatus {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal (where the backend can tell).
    Signal(i32),
}

impl ExitStatus {
    /// True for exit code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// What a finished command produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutput {
    /// How it ended.
    pub status: ExitStatus,
    /// Standard output (the last `max_output` bytes).
    pub stdout: Vec<u8>,
    /// Standard error (the last `max_output` bytes).
    pub stderr: Vec<u8>,
    /// True when either stream was cut to `max_output`.
    pub truncated: bool,
}

impl CommandOutput {
    /// Stdout as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// Stderr as text (lossy).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    /// The last `n` lines of stderr, for error messages, at most
    /// [`STDERR_TAIL_MAX`](crate::capture::STDERR_TAIL_MAX) bytes (a long line is cut, with a
    /// marker saying how much).
    pub fn stderr_tail(&self, n: usize) -> String {
        let text = self.stderr_text();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(n)..].join("\n");
        crate::capture::tail_text(&tail, crate::capture::STDERR_TAIL_MAX).into_owned()
    }
}

/// Which stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Receives output lines as they arrive (without the newline). Cheap to clone.
#[derive(Clone, Default)]
pub struct LineSink(Option<Arc<LineFn>>);

/// The callback inside a [`LineSink`].
pub type LineFn = dyn Fn(Stream, &str) + Send + Sync;

impl LineSink {
    /// A sink that drops every line.
    pub fn none() -> Self {
        LineSink(None)
    }
    /// A sink that calls `f` for each line.
    pub fn new(f: impl Fn(Stream, &str) + Send + Sync + 'static) -> Self {
        LineSink(Some(Arc::new(f)))
    }
    /// Delivers one line.
    pub fn line(&self, stream: Stream, line: &str) {
        if let Some(f) = &self.0 {
            f(stream, line)
        }
    }
    /// True when lines are wanted.
    pub fn is_active(&self) -> bool {
        self.0.is_some()
    }
}

impl fmt::Debug for LineSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "LineSink(..)"
        } else {
            "LineSink(none)"
        })
    }
}

/// Why a command could not be run to completion. A command that ran and failed is *not* an
/// error here: it is a [`CommandOutput`] with a non-zero status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// The node could not be reached.
    #[error("cannot connect to node {node}: {message}")]
    Connect {
        /// The node.
        node: NodeName,
        /// What failed.
        message: String,
        /// The backend's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The node refused our credentials.
    #[error("authentication to node {node} failed: {message}")]
    Auth {
        /// The node.
        node: NodeName,
        /// What failed.
        message: String,
    },
    /// The node's host key is unknown or changed; nothing was run.
    #[error("host key of node {node} not trusted: {message}")]
    HostKey {
        /// The node.
        node: NodeName,
        /// What the SSH client said.
        message: String,
    },
    /// The runner, or the client program it drives (`ssh`), refused what it was given for
    /// the node: a target, an option or a configuration file it cannot use. Nothing was run,
    /// and trying again will not help until the setting is fixed.
    #[error("cannot reach node {node} as configured: {message}")]
    Invalid {
        /// The node.
        node: NodeName,
        /// What was refused, with the client's own words.
        message: String,
    },
    /// The command ran longer than its timeout and was killed.
    #[error("command on node {node} timed out after {after:?} and was killed: {command}")]
    TimedOut {
        /// The node.
        node: NodeName,
        /// The timeout.
        after: Duration,
        /// The command line.
        command: String,
    },
    /// The program does not exist on the node.
    #[error("program {program:?} not found on node {node}")]
    NotFound {
        /// The node.
        node: NodeName,
        /// The program.
        program: String,
    },
    /// The node-side lock of the command ([`NodeLock`]) stayed held by another copy of the
    /// step; nothing was run.
    #[error("node {node}: {message}")]
    Locked {
        /// The node.
        node: NodeName,
        /// What the lock wrapper said (the lock and its holder).
        message: String,
    },
    /// The backend cannot honour part of the spec; nothing was run.
    #[error("this runner cannot {what}")]
    Unsupported {
        /// What it cannot do.
        what: String,
    },
    /// Anything else.
    #[error("running a command on node {node} failed: {message}")]
    Other {
        /// The node.
        node: NodeName,
        /// What failed.
        message: String,
        /// The backend's error.
        #[source]
        source: Option<BoxError>,
    },
}

/// Runs commands on nodes.
///
/// One required method, [`CommandRunner::run_tracked`]; [`CommandRunner::run`] is
/// `run_tracked` with no tracking ([`Tracking::default`]), written once here. The others have
/// defaults for runners that cannot track what they start: [`CommandRunner::probe`] cannot
/// tell, [`CommandRunner::stop`] refuses. Such a runner opens its `run_tracked` with
/// [`Tracking::refuse_lock`] and reports no handle:
///
/// ```
/// use async_trait::async_trait;
/// use kupgrade_core::NodeName;
/// use kupgrade_core::ports::{
///     CommandOutput, CommandRunner, CommandSpec, ExitStatus, LineSink, RunnerError, Tracking,
/// };
///
/// /// Every command succeeds at once, printing nothing.
/// struct Succeeds;
///
/// #[async_trait]
/// impl CommandRunner for Succeeds {
///     async fn run_tracked(
///         &self,
///         _node: &NodeName,
///         _spec: &CommandSpec,
///         _lines: &LineSink,
///         tracking: &Tracking,
///     ) -> Result<CommandOutput, RunnerError> {
///         tracking.refuse_lock()?;
///         Ok(CommandOutput {
///             status: ExitStatus::Code(0),
///             stdout: Vec::new(),
///             stderr: Vec::new(),
///             truncated: false,
///         })
///     }
/// }
/// ```
///
/// (Before, `run` was the required method and `run_tracked` defaulted to it; a runner that
/// tracks had to write both, the one forwarding to the other.)
#[async_trait]
pub trait CommandRunner: Send + Sync {
    /// Runs `spec` on `node`, delivering output lines to `lines` as they arrive: `run_tracked`
    /// without a lock, its handle dropped.
    async fn run(
        &self,
        node: &NodeName,
        spec: &CommandSpec,
        lines: &LineSink,
    ) -> Result<CommandOutput, RunnerError> {
        self.run_tracked(node, spec, lines, &Tracking::default())
            .await
    }

    /// Runs `spec` on `node`, delivering output lines to `lines` as they arrive, holding
    /// `tracking`'s node-side lock while it runs (a held lock is [`RunnerError::Locked`] once
    /// its wait is over) and reporting the command's [`CommandHandle`] to `tracking.started`
    /// once it runs on the node, before it ends.
    ///
    /// A runner that cannot hold a lock refuses one with [`Tracking::refuse_lock`]
    /// ([`RunnerError::Unsupported`], running nothing); one that cannot report a handle
    /// reports none.
    async fn run_tracked(
        &self,
        node: &NodeName,
        spec: &CommandSpec,
        lines: &LineSink,
        tracking: &Tracking,
    ) -> Result<CommandOutput, RunnerError>;

    /// Whether the command `handle` names, started on `node` by this process or an earlier
    /// one, still runs. The default cannot tell.
    async fn probe(
        &self,
        node: &NodeName,
        handle: &CommandHandle,
    ) -> Result<Liveness, RunnerError> {
        let _ = (node, handle);
        Ok(Liveness::Unknown(
            "this runner cannot look for commands started earlier".into(),
        ))
    }

    /// Stops the command `handle` names on `node` and everything it started (its process
    /// group, its pod), if it still runs; returns once it is asked to stop (look with
    /// [`CommandRunner::probe`] to see it gone). The default refuses with
    /// [`RunnerError::Unsupported`].
    async fn stop(&self, node: &NodeName, handle: &CommandHandle) -> Result<(), RunnerError> {
        let _ = node;
        Err(RunnerError::Unsupported {
            what: format!("stop a command started earlier ({handle})"),
        })
    }
}

/// Conveniences over [`CommandRunner`].
#[async_trait]
pub trait CommandRunnerExt: CommandRunner {
    /// Runs `spec` without streaming.
    async fn output(
        &self,
        node: &NodeName,
        spec: &CommandSpec,
    ) -> Result<CommandOutput, RunnerError> {
        self.run(node, spec, &LineSink::none()).await
    }
}
impl<T: CommandRunner + ?Sized> CommandRunnerExt for T {}

/// Implements a port for pointers to an implementation (`Arc<T>`, `Box<T>`) by forwarding
/// every method listed, the provided ones included: a pointer that fell back to a default would
/// silently lose the backend's own. `missing_trait_methods` makes a method added to the port
/// and not listed here a lint error.
macro_rules! forward_port {
    (@one $port:ident for $ptr:ident {
        $(async fn $method:ident(&self $(, $arg:ident: $ty:ty)*) -> $out:ty;)+
    }) => {
        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<T: $port + ?Sized> $port for $ptr<T> {
            $(async fn $method(&self $(, $arg: $ty)*) -> $out {
                (**self).$method($($arg),*).await
            })+
        }
    };
    ($port:ident for [$($ptr:ident),+] $methods:tt) => {
        $(forward_port!(@one $port for $ptr $methods);)+
    };
}

// After the macro: the gates port uses it.
mod gates;
pub use gates::GateProbe;

forward_port!(CommandRunner for [Arc, Box] {
    async fn run(&self, node: &NodeName, spec: &CommandSpec, lines: &LineSink) -> Result<CommandOutput, RunnerError>;
    async fn run_tracked(&self, node: &NodeName, spec: &CommandSpec, lines: &LineSink, tracking: &Tracking) -> Result<CommandOutput, RunnerError>;
    async fn probe(&self, node: &NodeName, handle: &CommandHandle) -> Result<Liveness, RunnerError>;
    async fn stop(&self, node: &NodeName, handle: &CommandHandle) -> Result<(), RunnerError>;
});

/// How to drain a node, with `kubectl drain`'s meanings.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DrainOptions {
    /// Grace period given to each pod, in seconds (`None`: the pod's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<u64>,
    /// Give up after this many seconds (never wait forever).
    #[serde(default = "default_drain_timeout")]
    pub timeout_seconds: u64,
    /// Leave DaemonSet pods alone instead of refusing to drain.
    #[serde(default = "yes")]
    pub ignore_daemonsets: bool,
    /// Evict pods with emptyDir volumes (their data is lost).
    #[serde(default)]
    pub delete_emptydir_data: bool,
    /// Delete pods no controller manages (they will not come back).
    #[serde(default)]
    pub force: bool,
    /// Delete the pods instead of evicting them (`kubectl drain --disable-eviction`): no
    /// PodDisruptionBudget is consulted, so a drain can take down every replica of an
    /// application at once. Off unless asked for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_eviction: bool,
}

fn default_drain_timeout() -> u64 {
    600
}
fn yes() -> bool {
    true
}

impl Default for DrainOptions {
    fn default() -> Self {
        DrainOptions {
            grace_period_seconds: None,
            timeout_seconds: default_drain_timeout(),
            ignore_daemonsets: true,
            delete_emptydir_data: false,
            force: false,
            disable_eviction: false,
        }
    }
}

/// A pod, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A pod a drain could not evict, and why.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlockedPod {
    /// The pod.
    pub pod: PodRef,
    /// The disruption budget that refused the eviction, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
    /// What the server or the drain said.
    pub reason: String,
}

/// What a drain did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainReport {
    /// Pods evicted (and gone).
    pub evicted: Vec<PodRef>,
    /// Pods left in place on purpose (DaemonSet and mirror pods), with the reason.
    pub skipped: Vec<(PodRef, String)>,
    /// Pods that blocked the drain.
    pub blocked: Vec<BlockedPod>,
}

/// Why a cluster operation failed, grouped by what the caller can do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpsError {
    /// The cluster could not be reached.
    #[error("cannot reach the cluster: {message}")]
    Connect {
        /// What failed.
        message: String,
        /// The backend's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The credentials lack a permission.
    #[error("forbidden: {message}")]
    Forbidden {
        /// What the server said (verb, resource).
        message: String,
    },
    /// No such node.
    #[error("node {0} not found")]
    NodeNotFound(NodeName),
    /// The drain could not evict every pod before its deadline (or refused to start).
    #[error("drain of node {node} blocked: {}", summarize_blocked(&report.blocked))]
    DrainBlocked {
        /// The node.
        node: NodeName,
        /// What was evicted and what blocked.
        report: DrainReport,
    },
    /// A wait ran out of time.
    #[error("timed out after {after:?} waiting for {what}")]
    TimedOut {
        /// What was awaited.
        what: String,
        /// How long.
        after: Duration,
    },
    /// The backend does not support this operation.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// Anything else.
    #[error("{message}")]
    Other {
        /// What failed.
        message: String,
        /// The backend's error.
        #[source]
        source: Option<BoxError>,
    },
}

fn summarize_blocked(b: &[BlockedPod]) -> String {
    b.iter()
        .map(|p| match &p.budget {
            Some(budget) => format!("{} (disruption budget {budget}: {})", p.pod, p.reason),
            None => format!("{} ({})", p.pod, p.reason),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The cluster side of an upgrade.
#[async_trait]
pub trait ClusterOperations: Send + Sync {
    /// Reads the cluster's current state.
    async fn state(&self) -> Result<ClusterState, OpsError>;
    /// Marks the node unschedulable (idempotent).
    async fn cordon(&self, node: &NodeName) -> Result<(), OpsError>;
    /// Marks the node schedulable (idempotent).
    async fn uncordon(&self, node: &NodeName) -> Result<(), OpsError>;
    /// Cordons the node and evicts its pods, honouring disruption budgets, within
    /// `options.timeout_seconds`.
    async fn drain(&self, node: &NodeName, options: &DrainOptions)
    -> Result<DrainReport, OpsError>;
    /// Waits until the node is Ready and its kubelet reports `version` (same release; vendor
    /// suffixes ignored), for at most `timeout`.
    async fn wait_ready(
        &self,
        node: &NodeName,
        version: &KubeVersion,
        timeout: Duration,
    ) -> Result<(), OpsError>;
}

forward_port!(ClusterOperations for [Arc] {
    async fn state(&self) -> Result<ClusterState, OpsError>;
    async fn cordon(&self, node: &NodeName) -> Result<(), OpsError>;
    async fn uncordon(&self, node: &NodeName) -> Result<(), OpsError>;
    async fn drain(&self, node: &NodeName, options: &DrainOptions) -> Result<DrainReport, OpsError>;
    async fn wait_ready(&self, node: &NodeName, version: &KubeVersion, timeout: Duration) -> Result<(), OpsError>;
});

/// What a [`NodeProvider`] found when asked about a node's machine
/// ([`NodeProvider::find`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MachineLookup {
    /// No machine for the node exists (nor is one being made): creating it is safe.
    Absent,
    /// A machine for the node exists; it may or may not have joined the cluster yet.
    Present {
        /// What the provider found (an instance id, an address), for logs and reports.
        detail: String,
    },
    /// The provider cannot look (it has no lookup).
    Unknown,
}

/// Creates and removes nodes, for the replace strategy (cloud instance groups, Cluster API
/// machines, the user's own commands, or the simulated cluster).
///
/// Creating a node is not safe to repeat: a second machine would be paid for and join under
/// the same name. After a crash in the middle of [`provision`](Self::provision), a run asks
/// [`find`](Self::find) before it creates the node again.
#[async_trait]
pub trait NodeProvider: Send + Sync {
    /// Creates a node like `template` (roles, labels, OS) named `name`, running `version`, and
    /// waits until it has joined and is Ready. Returns the node as it joined.
    async fn provision(
        &self,
        name: &NodeName,
        template: &Node,
        version: &KubeVersion,
    ) -> Result<Node, OpsError>;
    /// Removes a drained node from the cluster and deletes its machine.
    async fn remove(&self, node: &NodeName) -> Result<(), OpsError>;
    /// Looks, changing nothing, whether a machine for node `name` exists. The default cannot
    /// tell ([`MachineLookup::Unknown`]), and the run then asks its operator.
    async fn find(&self, name: &NodeName) -> Result<MachineLookup, OpsError> {
        let _ = name;
        Ok(MachineLookup::Unknown)
    }
}

forward_port!(NodeProvider for [Arc] {
    async fn provision(&self, name: &NodeName, template: &Node, version: &KubeVersion) -> Result<Node, OpsError>;
    async fn remove(&self, node: &NodeName) -> Result<(), OpsError>;
    async fn find(&self, name: &NodeName) -> Result<MachineLookup, OpsError>;
});
