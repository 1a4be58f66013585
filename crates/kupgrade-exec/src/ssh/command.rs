//! One command over SSH, in phases: open a channel on the node's connection (reusing it, or
//! opening it again once if it went away), feed stdin and stream the bounded output, wait for
//! the status under the command's deadline (killing the remote process group when it passes,
//! or when the `run` future is dropped), and map what came back to the port's answer.
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use kupgrade_core::NodeName;
use kupgrade_core::ports::{
    CommandHandle, CommandOutput, CommandRunner, CommandSpec, ExitStatus, HandleSink, LineSink,
    Liveness, NodeLock, Privilege, Program, RunnerError, Stream, Tracking,
};
use openssh::{Child, Session, Stdio};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::wrapper::{self, Marker, find_marker, remote_line};
use super::{Slot, SshRunner};
use crate::groups::{judge, new_token};
use crate::output::{StreamCapture, pump};

/// A running command's channel.
type RemoteChild = Child<Arc<Session>>;

/// What a command's channel gave back once drained: whether the command started, and the
/// status (or why there is none).
type Finished = (Start, Result<std::process::ExitStatus, openssh::Error>);

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

/// How long [`connection_answers`] waits for the node to run `true`.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// Whether `session`'s connection still carries commands: its master answers and the node
/// runs `true` on a new channel within [`ANSWER_WAIT`]. A master that has not yet noticed
/// its connection's end still answers the first question, never the second.
async fn connection_answers(session: &Arc<Session>) -> bool {
    if session.check().await.is_err() {
        return false;
    }
    let mut probe = Session::to_raw_command(session.clone(), "true");
    probe
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    matches!(tokio::time::timeout(ANSWER_WAIT, probe.status()).await, Ok(Ok(s)) if s.success())
}

/// Sends `SIGKILL` to process group `pgid` on the node, over `session` (`kill -KILL -PGID`:
/// dash's `kill` refuses `--`).
async fn kill_group(session: &Arc<Session>, node: &NodeName, pgid: u32, sudo: bool) {
    let line = if sudo {
        format!("sudo -n sh -c 'kill -KILL -{pgid}'")
    } else {
        format!("sh -c 'kill -KILL -{pgid}'")
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
    (pgid, started): (&AtomicU32, &(dyn Fn(u32) + Sync)),
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
                started(id);
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

/// Phase 2: feeds stdin (then EOF), streams stdout (after the wrapper's marker, which gives
/// the process group to `pgid`) and stderr into their bounded captures, and only then waits
/// for the status: the status ends the channel, and with it any output still in flight.
async fn exchange(
    mut child: RemoteChild,
    spec: &CommandSpec,
    lines: &LineSink,
    (out, err): (&mut StreamCapture, &mut StreamCapture),
    pgid: (&AtomicU32, &(dyn Fn(u32) + Sync)),
    node: &NodeName,
) -> Finished {
    let mut stdin = child.stdin().take();
    let mut stdout = child.stdout().take().expect("stdout is piped");
    let mut stderr = child.stderr().take().expect("stderr is piped");
    let feed = async {
        if let (Some(w), Some(bytes)) = (stdin.as_mut(), spec.stdin.as_deref()) {
            let _ = w.write_all(bytes).await;
            let _ = w.shutdown().await;
        }
        drop(stdin.take()); // EOF
    };
    let (_, started, e) = tokio::join!(
        feed,
        pump_marked(&mut stdout, out, lines, pgid),
        pump(&mut stderr, err, lines)
    );
    if let Err(e) = &e {
        tracing::debug!(node = %node, error = %e, "reading stderr failed");
    }
    (started, child.wait().await)
}

impl SshRunner {
    /// Phase 1: a channel running `line` on the node's connection (opened on first use). A
    /// connection that went away is opened again, once; sessions the server refuses (its
    /// `MaxSessions`, while ended commands' channels close) are retried for a few seconds.
    async fn spawn(
        &self,
        node: &NodeName,
        slot: &Slot,
        line: &str,
        spec: &CommandSpec,
    ) -> Result<(Arc<Session>, RemoteChild), RunnerError> {
        let mut reconnected = false;
        let mut refusals = 0u32;
        loop {
            let session = self.session(node, slot).await?;
            let spawned = Session::to_raw_command(session.clone(), line)
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
                Ok(child) => return Ok((session, child)),
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
        }
    }

    /// Phase 3: runs `work` (phase 2) under the spec's timeout. When it passes: learn the
    /// process group if it is not known yet, kill it, and let the channel close (which shows
    /// the group is gone), each within the grace period; then [`RunnerError::TimedOut`].
    async fn within_deadline(
        &self,
        node: &NodeName,
        session: &Arc<Session>,
        spec: &CommandSpec,
        pgid: &AtomicU32,
        work: impl Future<Output = Finished>,
    ) -> Result<Finished, RunnerError> {
        let mut work = pin!(work);
        // Every command has a time limit (its own, or the default).
        let after = spec.time_limit();
        tokio::select! {
            r = work.as_mut() => return Ok(r),
            _ = tokio::time::sleep(after) => {}
        }
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
                kill_group(session, node, id, spec.privilege == Privilege::Sudo).await;
                if tokio::time::timeout_at(deadline + self.config.kill_grace, work.as_mut())
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
            after,
            command: spec.to_shell_line(),
        })
    }

    /// The answer for a command whose connection went away while it ran: the connection is
    /// forgotten (the next command opens a new one) and the failure is
    /// [`RunnerError::Connect`], so that a run waits for the node as for a reboot.
    async fn lost(
        &self,
        node: &NodeName,
        slot: &Slot,
        session: &Arc<Session>,
        e: openssh::Error,
    ) -> RunnerError {
        slot.forget(session).await;
        RunnerError::Connect {
            node: node.clone(),
            message: format!(
                "the connection to {} was lost while the command ran; it may or may not have \
                 finished",
                self.destination(node)
            ),
            source: Some(Box::new(e)),
        }
    }

    /// Phase 4: the port's answer from what the channel gave back. A lost connection is
    /// forgotten (the next command opens a new one); a command that never started, or whose
    /// start cannot be told, is an error naming why; status 127 of a program is
    /// [`RunnerError::NotFound`].
    async fn outcome(
        &self,
        node: &NodeName,
        (slot, session): (&Slot, &Arc<Session>),
        spec: &CommandSpec,
        (started, status): Finished,
        (out, err, lines): (StreamCapture, StreamCapture, &LineSink),
    ) -> Result<CommandOutput, RunnerError> {
        let code = match status {
            Ok(s) => s.code(),
            // openssh reports status 127 as an error of its own.
            Err(openssh::Error::Remote(e)) if e.kind() == io::ErrorKind::NotFound => Some(127),
            Err(e @ openssh::Error::Disconnected) => {
                return Err(self.lost(node, slot, session, e).await);
            }
            // The multiplexing protocol says the same for a login shell killed by a signal
            // and for a connection that went away (the node went down, its sshd was killed):
            // ask the connection itself which it was.
            Err(e @ openssh::Error::RemoteProcessTerminated) => {
                if !connection_answers(session).await {
                    return Err(self.lost(node, slot, session, e).await);
                }
                return Err(RunnerError::Other {
                    node: node.clone(),
                    message: "the remote login shell was killed by a signal".into(),
                    source: Some(Box::new(e)),
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
        let (stdout, stderr) = (out.finish(lines), err.finish(lines));
        not_started(node, &started, code, &stderr.0)?;
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
            stdout: stdout.0,
            stderr: stderr.0,
            truncated: stdout.1 || stderr.1,
        })
    }
}

/// The error for a command that did not start ([`Start::Missing`]: the tail of stderr says
/// why) or whose start cannot be told ([`Start::Garbled`]).
fn not_started(
    node: &NodeName,
    started: &Start,
    code: Option<i32>,
    stderr: &[u8],
) -> Result<(), RunnerError> {
    let status_text = code.map_or("unknown".to_string(), |c| c.to_string());
    let message = match started {
        Start::Seen => return Ok(()),
        Start::Missing => {
            let text = String::from_utf8_lossy(stderr);
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(5)..].join(" / ");
            format!(
                "the command did not start (exit status {status_text}): {}",
                if tail.is_empty() { "no output" } else { &tail }
            )
        }
        Start::Garbled => format!(
            "kupgrade's start marker was not in the first {} KiB of output (do the login \
             shell's start-up files print that much?); the command may have run (exit status \
             {status_text})",
            wrapper::MAX_PRELUDE / 1024
        ),
    };
    Err(RunnerError::Other {
        node: node.clone(),
        message,
        source: None,
    })
}

#[async_trait]
impl CommandRunner for SshRunner {
    async fn run_tracked(
        &self,
        node: &NodeName,
        spec: &CommandSpec,
        lines: &LineSink,
        tracking: &Tracking,
    ) -> Result<CommandOutput, RunnerError> {
        let env = self.node_env.get(node);
        let locked = match &tracking.lock {
            None => None,
            Some(lock) => Some(lock.wrap(spec, &lock_dir(&env)?)),
        };
        let run_spec = locked.as_ref().unwrap_or(spec);
        let token = new_token();
        let line = remote_line(&env, run_spec, &token)?;
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
        let (session, child) = self.spawn(node, &slot, &line, run_spec).await?;
        tracing::debug!(node = %node, command = %spec, "running over SSH");

        let pgid = Arc::new(AtomicU32::new(0));
        let privileged = spec.privilege == Privilege::Sudo;
        let mut guard = RemoteKill {
            session: Some(session.clone()),
            pgid: pgid.clone(),
            sudo: privileged,
            node: node.clone(),
        };
        let report = |id: u32| report_handle(&tracking.started, id, &token, privileged);
        let mut out = StreamCapture::new(Stream::Stdout, spec.max_output, lines);
        let mut err = StreamCapture::new(Stream::Stderr, spec.max_output, lines);
        let work = exchange(
            child,
            run_spec,
            lines,
            (&mut out, &mut err),
            (&pgid, &report),
            node,
        );
        let finished = self
            .within_deadline(node, &session, run_spec, &pgid, work)
            .await;
        guard.disarm();
        let output = self
            .outcome(node, (&slot, &session), spec, finished?, (out, err, lines))
            .await?;
        match locked {
            Some(_) => NodeLock::checked(node, output),
            None => Ok(output),
        }
    }

    async fn probe(
        &self,
        node: &NodeName,
        handle: &CommandHandle,
    ) -> Result<Liveness, RunnerError> {
        let CommandHandle::Remote {
            pgid,
            token,
            privileged,
        } = handle
        else {
            return Ok(Liveness::Unknown(format!(
                "the SSH runner cannot look for {handle}"
            )));
        };
        self.remote_liveness(node, *pgid, token, *privileged).await
    }

    async fn stop(&self, node: &NodeName, handle: &CommandHandle) -> Result<(), RunnerError> {
        let CommandHandle::Remote {
            pgid,
            token,
            privileged,
        } = handle
        else {
            return Err(RunnerError::Unsupported {
                what: format!("stop {handle} over SSH"),
            });
        };
        if self
            .remote_liveness(node, *pgid, token, *privileged)
            .await?
            != Liveness::Running
        {
            return Ok(());
        }
        let slot = self.slot(node);
        let session = self.session(node, &slot).await?;
        kill_group(&session, node, *pgid, *privileged).await;
        Ok(())
    }
}

/// Reports the command's group as a handle, once its marker arrived.
fn report_handle(sink: &HandleSink, pgid: u32, token: &str, privileged: bool) {
    sink.report(CommandHandle::Remote {
        pgid,
        token: token.to_string(),
        privileged,
    });
}

/// The node's lock directory, as a path the remote shell takes.
fn lock_dir(env: &crate::NodeEnv) -> Result<String, RunnerError> {
    match &env.lock_dir {
        None => Ok(NodeLock::DEFAULT_DIR.to_string()),
        Some(d) => d
            .to_str()
            .map(str::to_string)
            .ok_or_else(|| RunnerError::Unsupported {
                what: format!("keep locks in the non-UTF-8 directory {}", d.display()),
            }),
    }
}

impl SshRunner {
    /// Whether group `pgid`, whose leader's command line holds `token`, still runs on the node:
    /// its leader's command line and whether the group exists, read in one command (through
    /// `sudo -n` for a privileged group, whose processes the user may not signal).
    async fn remote_liveness(
        &self,
        node: &NodeName,
        pgid: u32,
        token: &str,
        privileged: bool,
    ) -> Result<Liveness, RunnerError> {
        let script = format!(
            "cat /proc/{pgid}/cmdline 2>/dev/null; echo; \
             if kill -0 -{pgid} 2>/dev/null; then echo group-alive; else echo group-gone; fi"
        );
        let line = if privileged {
            format!(
                "sudo -n sh -c {}",
                kupgrade_core::ports::shell_quote(&script)
            )
        } else {
            format!("sh -c {}", kupgrade_core::ports::shell_quote(&script))
        };
        let slot = self.slot(node);
        let session = self.session(node, &slot).await?;
        let out = Session::to_raw_command(session.clone(), &line)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(|e| RunnerError::Connect {
                node: node.clone(),
                message: format!(
                    "cannot look for process group {pgid} on {}: {e}",
                    self.destination(node)
                ),
                source: Some(Box::new(e)),
            })?;
        let text = &out.stdout;
        let Some(at) = text.windows(7).rposition(|w| w == b"\ngroup-") else {
            return Ok(Liveness::Unknown(format!(
                "looking for process group {pgid} on {} printed no answer (status {}; {})",
                self.destination(node),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        };
        let group = text[at + 7..].starts_with(b"alive");
        Ok(judge(Some(&text[..at]), group, token))
    }
}
