//! Keeping track of the commands a run starts: how to find one again on its node (a
//! [`CommandHandle`], journaled as soon as the command runs), whether it still runs
//! ([`Liveness`]), and the node-side lock ([`NodeLock`]) that keeps two copies of one step from
//! ever running at the same time on a node, whoever started them.
//!
//! A command can outlive the process that started it: `apply` killed with SIGKILL, a lost SSH
//! connection (the remote command goes on), a command pod that runs until its deadline. The
//! next session then finds the task in flight and, before it decides anything, looks for that
//! command through [`CommandRunner::probe`](super::CommandRunner::probe) and waits for it or
//! stops it ([`CommandRunner::stop`](super::CommandRunner::stop)). The lock covers what the
//! journal cannot: a command whose handle was never written down (the process died between
//! the start and the record), or another run of the same plan.
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{CommandOutput, CommandSpec, ExitStatus, Program};

/// How to find a started command again on its node.
///
/// Process groups carry a token that the runner put in the command line of the group's leader,
/// so a process id reused by an unrelated process is never taken for the command.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum CommandHandle {
    /// A process group on the machine the run executes on (the local runner).
    Local {
        /// The process group id (its leader is the runner's supervisor process).
        pgid: u32,
        /// The token in the leader's command line.
        token: String,
        /// True when the group was started through `sudo` (stopping it needs `sudo` too).
        privileged: bool,
    },
    /// A process group on the node, reached over SSH.
    Remote {
        /// The process group id on the node (its leader is the login shell of the session).
        pgid: u32,
        /// The token in the leader's command line.
        token: String,
        /// True when the command runs through `sudo`.
        privileged: bool,
    },
    /// A pod that runs the command.
    Pod {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

impl fmt::Display for CommandHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandHandle::Local { pgid, .. } => {
                write!(f, "process group {pgid} on this machine")
            }
            CommandHandle::Remote { pgid, .. } => write!(f, "process group {pgid} on the node"),
            CommandHandle::Pod { namespace, name } => write!(f, "pod {namespace}/{name}"),
        }
    }
}

/// Whether a command started earlier still runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// It (or something it started, in its process group) still runs, or its pod may still
    /// start or run.
    Running,
    /// Nothing of it is left.
    Ended,
    /// The runner cannot tell (why, in a sentence).
    Unknown(String),
}

/// Receives the handle of a command once it runs on its node. Cheap to clone.
#[derive(Clone, Default)]
pub struct HandleSink(Option<Arc<HandleFn>>);

/// The callback inside a [`HandleSink`].
pub type HandleFn = dyn Fn(CommandHandle) + Send + Sync;

impl HandleSink {
    /// A sink that drops every handle.
    pub fn none() -> Self {
        HandleSink(None)
    }
    /// A sink that calls `f` with each handle.
    pub fn new(f: impl Fn(CommandHandle) + Send + Sync + 'static) -> Self {
        HandleSink(Some(Arc::new(f)))
    }
    /// Delivers a handle.
    pub fn report(&self, handle: CommandHandle) {
        if let Some(f) = &self.0 {
            f(handle)
        }
    }
}

impl fmt::Debug for HandleSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "HandleSink(..)"
        } else {
            "HandleSink(none)"
        })
    }
}

/// What a caller asks of a runner besides running a command: the node-side lock to hold while
/// it runs, and where to report its handle. See
/// [`CommandRunner::run_tracked`](super::CommandRunner::run_tracked).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Tracking {
    /// The lock to hold on the node while the command runs.
    pub lock: Option<NodeLock>,
    /// Receives the command's handle once it runs.
    pub started: HandleSink,
}

impl Tracking {
    /// No lock, handles dropped.
    pub fn new() -> Self {
        Tracking::default()
    }
    /// Holds `lock` while the command runs.
    pub fn lock(mut self, lock: NodeLock) -> Self {
        self.lock = Some(lock);
        self
    }
    /// Reports the command's handle to `sink`.
    pub fn started(mut self, sink: HandleSink) -> Self {
        self.started = sink;
        self
    }
    /// For a runner that cannot hold a node-side lock, the first line of its
    /// [`run_tracked`](super::CommandRunner::run_tracked): a lock asked for is refused with
    /// [`RunnerError::Unsupported`](super::RunnerError::Unsupported) before anything runs.
    ///
    /// ```
    /// use kupgrade_core::ports::{NodeLock, Tracking};
    /// use std::time::Duration;
    /// assert!(Tracking::new().refuse_lock().is_ok());
    /// let lock = NodeLock::for_step("0123456789abcdef", "s", None, Duration::ZERO, "me");
    /// let e = Tracking::new().lock(lock).refuse_lock().unwrap_err();
    /// assert_eq!(
    ///     e.to_string(),
    ///     "this runner cannot hold the node-side lock 0123456789abcdef.s while a command runs"
    /// );
    /// ```
    pub fn refuse_lock(&self) -> Result<(), super::RunnerError> {
        match &self.lock {
            Some(lock) => Err(super::RunnerError::Unsupported {
                what: format!("hold the node-side lock {} while a command runs", lock.name),
            }),
            None => Ok(()),
        }
    }
}

/// A lock on a node that a command holds while it runs, so that no two copies of one step
/// overlap on that node, whoever started them (this run after a crash, another process).
///
/// It is a file `DIR/NAME.lock` locked with `flock` (util-linux), taken by a small `sh`
/// wrapper around the command ([`NodeLock::wrap`]) with the command's own privileges, so the
/// lock works through `sudo`. The command inherits the locked descriptor: the lock is held as
/// long as anything the command started runs. The holder's description goes to
/// `DIR/NAME.holder`. A second copy waits up to [`NodeLock::wait`], then fails with exit status
/// 75 and a line naming the holder, which runners report as
/// [`RunnerError::Locked`](super::RunnerError::Locked) ([`NodeLock::refusal`]).
///
/// `mkdir` and `flock` are run with `command -p` (the system's standard `PATH`), so a node's
/// own `PATH` (a test sandbox's stubs) does not change how the lock is taken.
///
/// ```
/// use kupgrade_core::ports::{CommandSpec, NodeLock, Program};
/// use std::time::Duration;
/// let lock = NodeLock::for_step("0123456789abcdef0123", "v1.29.5/cp-1/kubeadm-upgrade-apply", Some("cp-1"),
///     Duration::from_secs(60), "pid 42 on ops-1");
/// assert_eq!(lock.name, "0123456789abcdef.v1.29.5_cp-1_kubeadm-upgrade-apply.cp-1");
/// let spec = CommandSpec::new("kubeadm").args(["upgrade", "apply", "v1.29.5"]).sudo()
///     .timeout(Duration::from_secs(600));
/// let wrapped = lock.wrap(&spec, NodeLock::DEFAULT_DIR);
/// assert_eq!(wrapped.timeout, Some(Duration::from_secs(660)));
/// assert!(wrapped.to_shell_line().starts_with("sudo -n sh -c "));
/// assert!(wrapped.to_shell_line().ends_with(" kupgrade-lock /run/kupgrade \
///     0123456789abcdef.v1.29.5_cp-1_kubeadm-upgrade-apply.cp-1 60 'pid 42 on ops-1' kubeadm upgrade apply v1.29.5"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeLock {
    /// The lock's name: a file name (letters, digits, `.`, `_`, `-`).
    pub name: String,
    /// How long a second copy waits for the lock before it fails.
    pub wait: Duration,
    /// Who holds it, in words (written beside the lock for the next copy's error message).
    pub holder: String,
}

/// What the lock wrapper prints before a line saying why it did not run the command.
pub const LOCK_REFUSAL: &str = "kupgrade-lock: ";

/// The exit status of the lock wrapper when it did not run the command (EX_TEMPFAIL).
pub const LOCK_REFUSAL_STATUS: i32 = 75;

/// The wrapper: `sh -c SCRIPT kupgrade-lock DIR NAME WAIT HOLDER PROGRAM ARGS...`.
const LOCK_SCRIPT: &str = r#"d=$1 n=$2 w=$3 h=$4; shift 4
l="$d/$n.lock"
fail() { printf 'kupgrade-lock: %s\n' "$*" >&2; exit 75; }
holder() { held=; read -r held 2>/dev/null <"$d/$n.holder"; printf '%s' "${held:-another process}"; }
[ -d "$d" ] || command -p mkdir -p "$d" || fail "cannot create the lock directory $d"
printf '' 2>/dev/null >>"$l" || fail "cannot open the lock file $l"
exec 9>>"$l"
command -p flock -n 9; s=$?
if [ "$s" -eq 1 ]; then
  printf 'kupgrade-lock: waiting up to %ss for %s, held by %s\n' "$w" "$l" "$(holder)" >&2
  command -p flock -w "$w" 9; s=$?
  [ "$s" -eq 1 ] && fail "$l is still held after ${w}s by $(holder): another copy of this step runs on this node"
fi
[ "$s" -eq 0 ] || fail "flock (util-linux) failed with status $s on $l: is it installed?"
printf '%s (pid %s)\n' "$h" "$$" >"$d/$n.holder"
exec "$@""#;

impl NodeLock {
    /// Where locks live on a node unless the runner is told otherwise (`/run` is a tmpfs: a
    /// reboot, which ends every command, frees them).
    pub const DEFAULT_DIR: &'static str = "/run/kupgrade";

    /// The lock of task `node` of step `step` of the plan with `fingerprint` (its first 16
    /// characters name it), held by `holder` (control characters become spaces).
    pub fn for_step(
        fingerprint: &str,
        step: &str,
        node: Option<&str>,
        wait: Duration,
        holder: &str,
    ) -> Self {
        let mut name: String = fingerprint.chars().take(16).collect();
        name.push('.');
        name.push_str(step);
        if let Some(node) = node {
            name.push('.');
            name.push_str(node);
        }
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .take(200)
            .collect();
        let holder = holder
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        NodeLock { name, wait, holder }
    }

    /// `spec` wrapped so it runs under this lock in directory `dir` on the node (same
    /// privilege and environment; its timeout, if any, grows by [`NodeLock::wait`]).
    pub fn wrap(&self, spec: &CommandSpec, dir: &str) -> CommandSpec {
        let mut args = vec![
            "-c".to_string(),
            LOCK_SCRIPT.to_string(),
            "kupgrade-lock".to_string(),
            dir.to_string(),
            self.name.clone(),
            self.wait.as_secs().max(1).to_string(),
            self.holder.clone(),
        ];
        match &spec.program {
            Program::Exec { program, args: a } => {
                args.push(program.clone());
                args.extend(a.iter().cloned());
            }
            Program::Shell { script } => {
                args.extend(["sh".to_string(), "-c".to_string(), script.clone()]);
            }
        }
        CommandSpec {
            program: Program::Exec {
                program: "sh".into(),
                args,
            },
            timeout: Some(spec.time_limit().saturating_add(self.wait)),
            ..spec.clone()
        }
    }

    /// Why the lock wrapper did not run the command, if that is what `output` shows: exit
    /// status 75 and a `kupgrade-lock: ` line on stderr (or on stdout, for runners that merge
    /// the two).
    pub fn refusal(output: &CommandOutput) -> Option<String> {
        if output.status != ExitStatus::Code(LOCK_REFUSAL_STATUS) {
            return None;
        }
        [&output.stderr, &output.stdout]
            .into_iter()
            .find_map(|bytes| {
                String::from_utf8_lossy(bytes)
                    .lines()
                    .rev()
                    .find_map(|l| l.strip_prefix(LOCK_REFUSAL).map(str::to_string))
            })
    }

    /// The output of a command run on `node` under the lock wrapper, or
    /// [`RunnerError::Locked`](super::RunnerError::Locked) when the wrapper refused to run it
    /// ([`NodeLock::refusal`]). Every runner ends a locked command with this.
    pub fn checked(
        node: &crate::NodeName,
        output: CommandOutput,
    ) -> Result<CommandOutput, super::RunnerError> {
        match NodeLock::refusal(&output) {
            Some(message) => Err(super::RunnerError::Locked {
                node: node.clone(),
                message,
            }),
            None => Ok(output),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_are_file_names() {
        let l = NodeLock::for_step(
            "ab",
            "v1/w-1+2/it's $(x)",
            Some("w-1"),
            Duration::ZERO,
            "a\nb",
        );
        assert_eq!(l.name, "ab.v1_w-1_2_it_s___x_.w-1");
        assert_eq!(l.holder, "a b");
        let long = NodeLock::for_step("f", &"s".repeat(500), None, Duration::ZERO, "");
        assert_eq!(long.name.len(), 200);
    }

    #[test]
    fn wrapping_keeps_privilege_environment_and_scripts() {
        let lock = NodeLock::for_step("fp", "st", None, Duration::from_secs(5), "me");
        let spec = CommandSpec::shell("echo $A; exit 3").env("A", "b").sudo();
        let w = lock.wrap(&spec, "/tmp/l");
        // A command without a timeout gets the default, and the lock's wait on top.
        assert_eq!(
            w.timeout,
            Some(crate::ports::DEFAULT_COMMAND_TIMEOUT + Duration::from_secs(5))
        );
        assert_eq!(w.env, spec.env);
        let line = w.to_shell_line();
        assert!(line.starts_with("sudo -n env A=b sh -c "), "{line}");
        assert!(
            line.ends_with(" kupgrade-lock /tmp/l fp.st 5 me sh -c 'echo $A; exit 3'"),
            "{line}"
        );
    }

    #[test]
    fn refusals_are_told_by_status_and_line() {
        let out = |code, err: &str| CommandOutput {
            status: ExitStatus::Code(code),
            stdout: Vec::new(),
            stderr: err.as_bytes().to_vec(),
            truncated: false,
        };
        assert_eq!(
            NodeLock::refusal(&out(
                75,
                "kupgrade-lock: waiting\nkupgrade-lock: held by x\n"
            )),
            Some("held by x".into())
        );
        assert_eq!(NodeLock::refusal(&out(75, "other\n")), None);
        assert_eq!(NodeLock::refusal(&out(1, "kupgrade-lock: x\n")), None);
    }
}
