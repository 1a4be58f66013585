//! Carrying one task out through the ports: node commands through the runner (their output
//! lines as events, their handles to the session, under the task's node-side lock), cluster
//! operations, provisioning and removal, and how a port's error becomes the task's
//! [`Failure`].
use std::time::Duration;

use kupgrade_core::KubeVersion;
use kupgrade_core::NodeName;
use kupgrade_core::ports::{CommandSpec, HandleSink, LineSink, OpsError, RunnerError, Tracking};
use kupgrade_core::run::{Event, Failure, FailureKind, Task, TaskId, Work};

use super::Driver;
use super::lifetimes::StartedTx;
use super::notes::Notes;

impl Driver {
    /// The task's work, through the ports; what a gate sees goes to `notes`, and a command's
    /// output too with `kept`.
    pub(super) async fn work(
        &self,
        task: &Task,
        fingerprint: &str,
        handles: &StartedTx,
        notes: &Notes,
        kept: Option<&Notes>,
    ) -> Result<(), Failure> {
        let id = &task.id;
        let node = || {
            id.node
                .clone()
                .ok_or_else(|| Failure::new(FailureKind::Other, format!("{id} names no node")))
        };
        let started = || self.announce(id, || task.work.describe());
        match &task.work {
            Work::Commands { commands } => {
                let node = node()?;
                for (n, spec) in commands.iter().enumerate() {
                    self.run_command(task, n, &node, spec, fingerprint, handles, kept)
                        .await?;
                }
                Ok(())
            }
            Work::Cordon => {
                let node = node()?;
                started();
                self.ops.cordon(&node).await.map_err(ops_failure)
            }
            Work::Uncordon => {
                let node = node()?;
                started();
                self.ops.uncordon(&node).await.map_err(ops_failure)
            }
            Work::Drain { options } => {
                let node = node()?;
                started();
                let report = self.ops.drain(&node, options).await.map_err(ops_failure)?;
                let evicted = report.evicted.iter().map(|p| format!("evicted {p}"));
                let left =
                    (report.skipped.iter()).map(|(p, why)| format!("left {p} in place ({why})"));
                self.emit(
                    evicted
                        .chain(left)
                        .map(|line| Event::CommandOutput {
                            task: id.clone(),
                            stream: kupgrade_core::ports::Stream::Stdout,
                            line,
                        })
                        .collect(),
                );
                Ok(())
            }
            Work::WaitReady { version, timeout } => {
                let node = node()?;
                started();
                self.ops
                    .wait_ready(&node, version, *timeout)
                    .await
                    .map_err(ops_failure)
            }
            Work::WaitKubeProxyRollout { version, timeout } => {
                started();
                self.wait_kube_proxy(version.as_ref(), *timeout).await
            }
            Work::Provision { template, version } => {
                let node = node()?;
                started();
                let Some(p) = &self.provider else {
                    return Err(no_provider());
                };
                p.provision(&node, template, version)
                    .await
                    .map(|_| ())
                    .map_err(ops_failure)
            }
            Work::Remove => {
                let node = node()?;
                started();
                let Some(p) = &self.provider else {
                    return Err(no_provider());
                };
                p.remove(&node).await.map_err(ops_failure)
            }
            Work::GateBaseline { gate, regression } => {
                started();
                self.take_baseline(id, gate, regression, notes).await
            }
            Work::Gate { gate, baseline } => {
                started();
                self.evaluate_gate(id, gate, baseline.as_ref(), notes).await
            }
            Work::LocalCommand { spec } => self.run_local(id, spec, notes).await,
            w => Err(Failure::new(
                FailureKind::Unsupported,
                format!("this driver cannot carry out {}", w.describe()),
            )),
        }
    }

    /// Emits [`Event::CommandStarted`] for `task`; what it does is only written out when
    /// someone listens.
    pub(super) fn announce(&self, task: &TaskId, what: impl FnOnce() -> String) {
        if self.events.is_some() {
            self.emit(vec![Event::CommandStarted {
                task: task.clone(),
                command: what(),
            }])
        }
    }

    /// Where the output lines of a command of `task` go: to the events as
    /// [`Event::CommandOutput`], when someone listens.
    pub(super) fn output_lines(&self, task: &TaskId) -> LineSink {
        match &self.events {
            Some(tx) => {
                let (tx, id) = (tx.clone(), task.clone());
                LineSink::new(move |stream, text| {
                    tx.send(Event::CommandOutput {
                        task: id.clone(),
                        stream,
                        line: text.to_string(),
                    });
                })
            }
            None => LineSink::none(),
        }
    }

    /// Runs the `n`th command of `task` on `node`: its output lines go to the events (and,
    /// with `kept`, its output to the task's notes), its handle to `handles`, under the
    /// task's node-side lock when the driver has locks.
    #[allow(clippy::too_many_arguments)]
    async fn run_command(
        &self,
        task: &Task,
        n: usize,
        node: &NodeName,
        spec: &CommandSpec,
        fingerprint: &str,
        handles: &StartedTx,
        kept: Option<&Notes>,
    ) -> Result<(), Failure> {
        let id = &task.id;
        self.announce(id, || spec.to_shell_line());
        let (tx, at) = (handles.clone(), (id.clone(), task.attempt, n));
        // One handle per command, so the channel holds at most one per running task.
        let reported = std::sync::atomic::AtomicBool::new(false);
        let mut tracking = Tracking::new().started(HandleSink::new(move |h| {
            if !reported.swap(true, std::sync::atomic::Ordering::Relaxed) {
                let _ = tx.send((at.0.clone(), at.1, at.2, h));
            }
        }));
        if let Some(locks) = &self.locks {
            tracking = tracking.lock(locks.for_task(fingerprint, id));
        }
        let sink = self.output_lines(id);
        let result = self.runner.run_tracked(node, spec, &sink, &tracking).await;
        if let (Some(notes), Ok(out)) = (kept, &result) {
            notes.command(out);
        }
        match result {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => {
                let line = spec.to_shell_line();
                Err(Failure::new(
                    FailureKind::CommandFailed,
                    format!("`{line}` on {node} ended with {}", out.status),
                )
                .with_command(line)
                .with_stderr_tail(out.stderr_tail(5)))
            }
            Err(e) => Err(runner_failure(e).with_command(spec.to_shell_line())),
        }
    }

    /// Waits until every node runs kube-proxy at `version`, or `timeout` has passed.
    async fn wait_kube_proxy(
        &self,
        version: Option<&KubeVersion>,
        timeout: Duration,
    ) -> Result<(), Failure> {
        let deadline = tokio::time::Instant::now() + kupgrade_core::ports::capped(timeout);
        loop {
            let state = self.ops.state().await.map_err(ops_failure)?;
            let behind: Vec<String> = state
                .nodes_behind_kube_proxy(version)
                .map(|(n, running)| format!("{} ({running})", n.name))
                .collect();
            if behind.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let shown: Vec<&str> = behind.iter().take(5).map(String::as_str).collect();
                return Err(Failure::new(
                    FailureKind::TimedOut,
                    format!(
                        "after {}s kube-proxy still runs another version on {} node(s): {}",
                        timeout.as_secs(),
                        behind.len(),
                        shown.join(", ")
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
}

pub(super) fn no_provider() -> Failure {
    Failure::new(
        FailureKind::Unsupported,
        "no node provider is configured (the replace strategy needs one)",
    )
}

pub(super) fn runner_failure(e: RunnerError) -> Failure {
    let kind = match &e {
        RunnerError::Connect { .. } => FailureKind::Unreachable,
        RunnerError::Auth { .. } | RunnerError::HostKey { .. } | RunnerError::Invalid { .. } => {
            FailureKind::Refused
        }
        RunnerError::TimedOut { .. } => FailureKind::TimedOut,
        RunnerError::NotFound { .. } | RunnerError::Unsupported { .. } => FailureKind::Unsupported,
        _ => FailureKind::Other,
    };
    Failure::new(kind, e.to_string())
}

pub(super) fn ops_failure(e: OpsError) -> Failure {
    let kind = match &e {
        OpsError::Connect { .. } => FailureKind::Unreachable,
        OpsError::Forbidden { .. } => FailureKind::Refused,
        OpsError::DrainBlocked { .. } => FailureKind::DrainBlocked,
        OpsError::TimedOut { .. } => FailureKind::TimedOut,
        OpsError::Unsupported(_) => FailureKind::Unsupported,
        _ => FailureKind::Other,
    };
    Failure::new(kind, e.to_string())
}
