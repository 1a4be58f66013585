//! [`LocalRunner`]: runs commands on this machine with `tokio::process`.
use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use kupgrade_core::NodeName;
use kupgrade_core::ports::{
    CommandHandle, CommandOutput, CommandRunner, CommandSpec, ExitStatus, LineSink, Liveness,
    NodeLock, Privilege, Program, RunnerError, Stream, Tracking,
};
use rustix::io::Errno;
use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::groups::{judge, new_token};
use crate::node_env::{NodeEnv, NodeEnvFn};
use crate::output::{StreamCapture, pump};

/// Runs each command as a local process, whatever the node; the node name only selects its
/// [`NodeEnv`] and labels errors.
///
/// - [`Program::Exec`] runs the program directly (no shell); [`Program::Shell`] runs `sh -c`.
/// - stdin gets the spec's bytes and is then closed; without bytes it is empty (`/dev/null`),
///   never inherited.
/// - stdout and stderr are captured separately, each bounded to `max_output` (the tail is
///   kept), and streamed line by line to the [`LineSink`].
/// - Every command runs in its own process group, led by a small supervisor (see below). On
///   timeout (or when the `run` future is dropped) the whole group gets `SIGKILL`, so
///   children and grandchildren die too, and the result is [`RunnerError::TimedOut`].
/// - **Commands die with the process that runs them**, even when it is killed with `SIGKILL`
///   (see *Supervision*).
/// - [`CommandRunner::run_tracked`] reports the group as a [`CommandHandle::Local`] (its id
///   and a token in its leader's command line) and holds the node-side lock
///   ([`NodeLock`](kupgrade_core::ports::NodeLock)) in the node's
///   [`NodeEnv::lock_dir`] (default `/run/kupgrade`); [`CommandRunner::probe`] and
///   [`CommandRunner::stop`] find such a group again, from this or another process.
/// - A program that cannot be found is [`RunnerError::NotFound`], and so is exit status 127 of
///   a [`Program::Exec`] command (how `sudo -n env` and shells report a missing program). A
///   shell script whose own command is missing exits 127 and is reported as output.
/// - [`Privilege::Sudo`] is refused with [`RunnerError::Unsupported`] unless
///   [`LocalRunner::allow_sudo`] was called; then the command runs as
///   `sudo -n env VAR=VALUE… program args…` (`sudo` looked up in the node's `PATH`).
///
/// # Supervision
///
/// Before the command, the runner starts its supervisor, `sh -c 'echo ready; IFS= read -r
/// word; [ "$word" = done ] || kill -KILL 0' kupgrade-supervisor TOKEN`, as the leader of a new
/// process group, with a pipe from the runner as its standard input; the command then joins
/// that group. The runner writes `done` when the command has ended. If the runner's process
/// dies instead, however it dies, the kernel closes the pipe, the supervisor reads end of file
/// and kills the whole group. Without `unsafe` there is no `prctl(PR_SET_PDEATHSIG)` before
/// `exec`, and `setpriv --pdeathsig` would not do: the kernel ties the parent-death signal to
/// the thread that forked (a tokio worker), clears it when a set-user-ID program such as `sudo`
/// changes credentials (checked: a setuid program started that way by an unprivileged user
/// outlived its killed parent, a plain one did not), and it reaches only the process itself,
/// not what it started. For a [`Privilege::Sudo`] command run by a user other than root, the
/// supervisor runs through `sudo -n` too, so it may kill what sudo started.
///
/// ```no_run
/// use kupgrade_core::ports::{CommandRunnerExt, CommandSpec};
/// use kupgrade_exec::{LocalRunner, NodeEnv};
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = LocalRunner::new()
///     .with_node_env(|node| NodeEnv::sandbox("/tmp/kupgrade-sandboxes", node));
/// let out = runner.output(&"w-1".parse()?, &CommandSpec::new("kubeadm").arg("version")).await?;
/// println!("{}", out.stdout_text());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct LocalRunner {
    sudo: bool,
    node_env: NodeEnvFn,
}

impl LocalRunner {
    /// A runner that refuses sudo and changes nothing per node.
    pub fn new() -> Self {
        LocalRunner::default()
    }

    /// Runs [`Privilege::Sudo`] commands through `sudo -n` instead of refusing them.
    pub fn allow_sudo(mut self) -> Self {
        self.sudo = true;
        self
    }

    /// Applies `f(node)` to every command on that node (see [`NodeEnv::sandbox`]).
    pub fn with_node_env(
        mut self,
        f: impl Fn(&NodeName) -> NodeEnv + Send + Sync + 'static,
    ) -> Self {
        self.node_env = NodeEnvFn::new(f);
        self
    }

    /// The command for `spec` with `env` applied, the name to show for its program, and the
    /// variables it gets (the supervisor of a sudo command needs the same `PATH`).
    fn command(
        &self,
        env: &NodeEnv,
        node: &NodeName,
        spec: &CommandSpec,
    ) -> Result<(Command, String, Vars), RunnerError> {
        let (program, args): (&str, Vec<&str>) = match &spec.program {
            Program::Exec { program, args } => {
                (program.as_str(), args.iter().map(String::as_str).collect())
            }
            Program::Shell { script } => ("sh", vec!["-c", script.as_str()]),
        };
        let path = joined_path(env)?;

        let mut vars: Vars = env.env.iter().map(|(k, v)| (k.into(), v.into())).collect();
        if let Some(path) = path {
            vars.push(("PATH".into(), path));
        }
        vars.extend(spec.env.iter().map(|(k, v)| (k.into(), v.into())));

        let (mut cmd, shown) = match spec.privilege {
            Privilege::None => {
                let mut cmd = Command::new(program);
                cmd.args(&args);
                (cmd, program.to_string())
            }
            Privilege::Sudo if !self.sudo => {
                return Err(RunnerError::Unsupported {
                    what: "run commands with sudo (LocalRunner refuses Privilege::Sudo \
                           unless built with LocalRunner::allow_sudo())"
                        .to_string(),
                });
            }
            Privilege::Sudo => {
                // sudo resets the environment, so variables travel through `env`; the outer
                // process keeps them too, so `sudo` itself is found on the node's PATH.
                let mut cmd = Command::new("sudo");
                cmd.arg("-n");
                if !vars.is_empty() {
                    cmd.arg("env");
                    for (k, v) in &vars {
                        let mut kv = k.clone();
                        kv.push("=");
                        kv.push(v);
                        cmd.arg(kv);
                    }
                }
                cmd.arg(program).args(&args);
                (cmd, "sudo".to_string())
            }
        };
        cmd.envs(vars.iter().cloned());
        if let Some(dir) = &env.dir {
            if !dir.is_dir() {
                return Err(RunnerError::Other {
                    node: node.clone(),
                    message: format!(
                        "the working directory {} set for this node does not exist",
                        dir.display()
                    ),
                    source: None,
                });
            }
            cmd.current_dir(dir);
        }
        cmd.stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        Ok((cmd, shown, vars))
    }

    /// Starts the supervisor of a new process group (see *Supervision* on [`LocalRunner`])
    /// and waits until it runs. `privileged`: through `sudo -n`, with `vars` (the node's
    /// `PATH` finds the same `sudo` as the command's).
    async fn supervise(
        &self,
        node: &NodeName,
        vars: &Vars,
        privileged: bool,
    ) -> Result<Group, RunnerError> {
        let token = new_token();
        let mut cmd = if privileged {
            let mut cmd = Command::new("sudo");
            cmd.arg("-n").arg("sh").envs(vars.iter().cloned());
            cmd
        } else {
            Command::new("sh")
        };
        cmd.args(["-c", SUPERVISOR, "kupgrade-supervisor", &token])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| {
            other(
                node,
                format!("cannot start the supervisor of the command: {e}"),
                e,
            )
        })?;
        let pgid = child.id().and_then(|id| Pid::from_raw(id as i32));
        let (Some(pgid), Some(lifeline), Some(out), Some(mut err)) = (
            pgid,
            child.stdin.take(),
            child.stdout.take(),
            child.stderr.take(),
        ) else {
            return Err(RunnerError::Other {
                node: node.clone(),
                message: "the supervisor of the command ended at once".into(),
                source: None,
            });
        };
        let mut group = Group {
            pgid: Some(pgid),
            lifeline: Some(lifeline),
            supervisor: Some(child),
            token,
        };
        let mut line = String::new();
        let ready =
            tokio::time::timeout(SUPERVISOR_START, BufReader::new(out).read_line(&mut line)).await;
        if !matches!(ready, Ok(Ok(_)) if line == "ready\n") {
            let mut said = String::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(1), err.read_to_string(&mut said)).await;
            group.kill();
            return Err(RunnerError::Other {
                node: node.clone(),
                message: format!(
                    "the supervisor of the command did not start{}: {}",
                    if privileged { " (through sudo -n)" } else { "" },
                    if said.trim().is_empty() {
                        "no message"
                    } else {
                        said.trim()
                    }
                ),
                source: None,
            });
        }
        Ok(group)
    }
}

/// Environment variables of a command.
type Vars = Vec<(OsString, OsString)>;

/// The supervisor's script: see *Supervision* on [`LocalRunner`].
const SUPERVISOR: &str = r#"echo ready; IFS= read -r word; [ "$word" = done ] || kill -KILL 0"#;

/// How long the supervisor may take to start (sudo's authentication included).
const SUPERVISOR_START: Duration = Duration::from_secs(30);

/// `PATH` with the node's prefix in front (or, for a strict sandbox, the prefix alone), or
/// `None` when nothing changes it.
fn joined_path(env: &NodeEnv) -> Result<Option<OsString>, RunnerError> {
    if env.path_prefix.is_empty() && !env.path_only {
        return Ok(None);
    }
    let inherited = match env.path_only {
        true => OsString::new(),
        false => std::env::var_os("PATH").unwrap_or_default(),
    };
    let dirs = env
        .path_prefix
        .iter()
        .cloned()
        .chain(std::env::split_paths(&inherited).filter(|_| !env.path_only));
    std::env::join_paths(dirs)
        .map(Some)
        .map_err(|e| RunnerError::Unsupported {
            what: format!("use this PATH prefix: {e}"),
        })
}

/// A command's process group and its supervisor: killed when dropped, unless released. The
/// command dies with its `run` future, whether it timed out or was cancelled.
struct Group {
    pgid: Option<Pid>,
    /// The supervisor's standard input: closing it without `done` makes it kill the group.
    lifeline: Option<ChildStdin>,
    supervisor: Option<Child>,
    token: String,
}

impl Group {
    /// Kills the group: directly, and through the supervisor (which may have the privileges
    /// the runner lacks). The supervisor, killed too, is reaped by tokio.
    fn kill(&mut self) {
        drop(self.lifeline.take());
        if let Some(pid) = self.pgid.take() {
            // ESRCH (already gone) and EPERM (the supervisor does it) are fine.
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }

    /// The command has ended: tells the supervisor to go without killing anything.
    async fn release(&mut self) {
        self.pgid = None;
        if let Some(mut w) = self.lifeline.take() {
            let _ = w.write_all(b"done\n").await;
            drop(w);
        }
        if let Some(mut child) = self.supervisor.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

fn other(node: &NodeName, message: String, e: io::Error) -> RunnerError {
    RunnerError::Other {
        node: node.clone(),
        message,
        source: Some(Box::new(e)),
    }
}

/// Whether the group `pgid` whose leader carries `token` still runs on this machine.
fn local_liveness(pgid: u32, token: &str) -> Liveness {
    let Some(pid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) else {
        return Liveness::Ended;
    };
    let leader = std::fs::read(format!("/proc/{pgid}/cmdline")).ok();
    let group = match test_kill_process_group(pid) {
        Ok(()) => true,
        Err(e) => e == Errno::PERM,
    };
    judge(leader.as_deref(), group, token)
}

#[async_trait]
impl CommandRunner for LocalRunner {
    async fn run_tracked(
        &self,
        node: &NodeName,
        spec: &CommandSpec,
        lines: &LineSink,
        tracking: &Tracking,
    ) -> Result<CommandOutput, RunnerError> {
        let env = self.node_env.get(node);
        let locked = tracking.lock.as_ref().map(|lock| {
            let dir = env.lock_dir.as_deref().and_then(|d| d.to_str());
            lock.wrap(spec, dir.unwrap_or(NodeLock::DEFAULT_DIR))
        });
        let (mut cmd, program, vars) = self.command(&env, node, locked.as_ref().unwrap_or(spec))?;
        let sudo = spec.privilege == Privilege::Sudo;
        let privileged = sudo && !rustix::process::geteuid().is_root();
        let mut group = self.supervise(node, &vars, privileged).await?;
        let pgid = group.pgid.map_or(0, |p| p.as_raw_pid());
        cmd.process_group(pgid);
        tracing::debug!(node = %node, command = %spec, pgid, "running locally");
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(RunnerError::NotFound {
                    node: node.clone(),
                    program,
                });
            }
            Err(e) => return Err(other(node, format!("cannot start {program:?}: {e}"), e)),
        };
        tracking.started.report(CommandHandle::Local {
            pgid: pgid as u32,
            token: group.token.clone(),
            privileged: sudo,
        });

        let mut stdin = child.stdin.take();
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let mut out = StreamCapture::new(Stream::Stdout, spec.max_output, lines);
        let mut err = StreamCapture::new(Stream::Stderr, spec.max_output, lines);

        let work = async {
            let feed = async {
                if let (Some(w), Some(bytes)) = (stdin.as_mut(), spec.stdin.as_deref()) {
                    // A command that exits without reading all of its input is not an error.
                    let _ = w.write_all(bytes).await;
                }
                drop(stdin.take()); // EOF
            };
            let (_, o, e, status) = tokio::join!(
                feed,
                pump(&mut stdout, &mut out, lines),
                pump(&mut stderr, &mut err, lines),
                child.wait()
            );
            for r in [o, e] {
                if let Err(e) = r {
                    tracing::debug!(node = %node, error = %e, "reading command output failed");
                }
            }
            status
        };
        // Every command has a time limit (its own, or the default).
        let after = locked.as_ref().unwrap_or(spec).time_limit();
        let status = match tokio::time::timeout(after, work).await {
            Ok(status) => status,
            Err(_) => {
                group.kill();
                let _ = child.wait().await;
                return Err(RunnerError::TimedOut {
                    node: node.clone(),
                    after,
                    command: spec.to_shell_line(),
                });
            }
        }
        .map_err(|e| other(node, format!("waiting for {program:?} failed: {e}"), e))?;
        // The command has exited and closed its output; what it left behind on purpose stays.
        group.release().await;

        let status = match (status.code(), status.signal()) {
            (Some(code), _) => ExitStatus::Code(code),
            (None, Some(sig)) => ExitStatus::Signal(sig),
            (None, None) => {
                return Err(RunnerError::Other {
                    node: node.clone(),
                    message: format!("{program:?} ended with an unknown status {status}"),
                    source: None,
                });
            }
        };
        if let (ExitStatus::Code(127), Program::Exec { program, .. }) = (status, &spec.program) {
            // `sudo -n env … program` and shells report a missing program as 127.
            return Err(RunnerError::NotFound {
                node: node.clone(),
                program: program.clone(),
            });
        }
        let (stdout, t1) = out.finish(lines);
        let (stderr, t2) = err.finish(lines);
        let output = CommandOutput {
            status,
            stdout,
            stderr,
            truncated: t1 || t2,
        };
        match locked {
            Some(_) => NodeLock::checked(node, output),
            None => Ok(output),
        }
    }

    async fn probe(
        &self,
        _node: &NodeName,
        handle: &CommandHandle,
    ) -> Result<Liveness, RunnerError> {
        Ok(match handle {
            CommandHandle::Local { pgid, token, .. } => local_liveness(*pgid, token),
            other => Liveness::Unknown(format!("the local runner cannot look for {other}")),
        })
    }

    async fn stop(&self, node: &NodeName, handle: &CommandHandle) -> Result<(), RunnerError> {
        let CommandHandle::Local {
            pgid,
            token,
            privileged,
        } = handle
        else {
            return Err(RunnerError::Unsupported {
                what: format!("stop {handle} (not a local process group)"),
            });
        };
        if local_liveness(*pgid, token) != Liveness::Running {
            return Ok(());
        }
        let Some(pid) = i32::try_from(*pgid).ok().and_then(Pid::from_raw) else {
            return Ok(());
        };
        match kill_process_group(pid, Signal::KILL) {
            Ok(()) => Ok(()),
            Err(e) if e == Errno::PERM && *privileged && self.sudo => {
                let env = self.node_env.get(node);
                let mut cmd = Command::new("sudo");
                cmd.args(["-n", "kill", "-KILL", &format!("-{pgid}")])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                if let Some(path) = joined_path(&env)? {
                    cmd.env("PATH", path);
                }
                let out = cmd.output().await.map_err(|e| {
                    other(node, format!("cannot run sudo to stop {handle}: {e}"), e)
                })?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(RunnerError::Other {
                        node: node.clone(),
                        message: format!(
                            "sudo -n kill -KILL -{pgid} failed: {}",
                            String::from_utf8_lossy(&out.stderr).trim()
                        ),
                        source: None,
                    })
                }
            }
            Err(e) if e == Errno::SRCH => Ok(()),
            Err(e) => Err(other(
                node,
                format!("cannot stop {handle}: {e}"),
                io::Error::from(e),
            )),
        }
    }
}
