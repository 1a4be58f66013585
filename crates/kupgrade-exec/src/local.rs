//! [`LocalRunner`]: runs commands on this machine with `tokio::process`.
use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use async_trait::async_trait;
use kupgrade_core::NodeName;
use kupgrade_core::ports::{
    CommandOutput, CommandRunner, CommandSpec, ExitStatus, LineSink, Privilege, Program,
    RunnerError, Stream,
};
use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

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
/// - Every command runs in its own process group. On timeout (or when the `run` future is
///   dropped) the whole group gets `SIGKILL`, so children and grandchildren die too, and the
///   result is [`RunnerError::TimedOut`].
/// - A program that cannot be found is [`RunnerError::NotFound`], and so is exit status 127 of
///   a [`Program::Exec`] command (how `sudo -n env` and shells report a missing program). A
///   shell script whose own command is missing exits 127 and is reported as output.
/// - [`Privilege::Sudo`] is refused with [`RunnerError::Unsupported`] unless
///   [`LocalRunner::allow_sudo`] was called; then the command runs as
///   `sudo -n env VAR=VALUE… program args…` (`sudo` looked up in the node's `PATH`).
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

    fn command(
        &self,
        node: &NodeName,
        spec: &CommandSpec,
    ) -> Result<(Command, String), RunnerError> {
        let env = self.node_env.get(node);
        let (program, args): (&str, Vec<&str>) = match &spec.program {
            Program::Exec { program, args } => {
                (program.as_str(), args.iter().map(String::as_str).collect())
            }
            Program::Shell { script } => ("sh", vec!["-c", script.as_str()]),
        };
        let path = joined_path(&env)?;

        let mut vars: Vec<(OsString, OsString)> =
            env.env.iter().map(|(k, v)| (k.into(), v.into())).collect();
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
        cmd.envs(vars);
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
        .stderr(Stdio::piped())
        .process_group(0);
        Ok((cmd, shown))
    }
}

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

/// Kills a process group when dropped, unless disarmed: the command dies with its `run`
/// future, whether it timed out or was cancelled.
struct GroupKill(Option<Pid>);

impl GroupKill {
    fn kill(&mut self) {
        if let Some(pid) = self.0.take() {
            // ESRCH (already gone) is fine.
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }
}

impl Drop for GroupKill {
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

#[async_trait]
impl CommandRunner for LocalRunner {
    async fn run(
        &self,
        node: &NodeName,
        spec: &CommandSpec,
        lines: &LineSink,
    ) -> Result<CommandOutput, RunnerError> {
        let (mut cmd, program) = self.command(node, spec)?;
        tracing::debug!(node = %node, command = %spec, "running locally");
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
        let mut group = GroupKill(child.id().and_then(|id| Pid::from_raw(id as i32)));

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
        let status = match spec.timeout {
            None => work.await,
            Some(after) => match tokio::time::timeout(after, work).await {
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
            },
        }
        .map_err(|e| other(node, format!("waiting for {program:?} failed: {e}"), e))?;
        // The command has exited and closed its output; nothing is left to kill.
        group.0 = None;

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
        Ok(CommandOutput {
            status,
            stdout,
            stderr,
            truncated: t1 || t2,
        })
    }
}
