//! Gates: the snapshot a regression gate compares with, and a gate evaluated every interval
//! until it passes or its time is up (see [`kupgrade_core::gate`]).
//!
//! The snapshots live in the driver's memory for the session, keyed by the id of the step
//! that took them, and are journaled (`workloads-noted`, with the last one each regression
//! gate judged, for the run report); a resumed session starts from the journaled ones, so a
//! gate compares with the same baseline whichever session took it. Only a snapshot too large
//! to journal ([`SNAPSHOT_KEPT`](kupgrade_core::run::SNAPSHOT_KEPT) pods) is missing after a
//! resume: the gate is then judged without one (every pod it watches must be healthy,
//! restarts are not compared) and says so in its output. A gate is never assumed passed: a
//! resumed run evaluates it again. What a gate says, and its command's output, is journaled
//! too (`task-output`).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kupgrade_core::NodeName;
use kupgrade_core::gate::{
    Gate, GateCheck, RegressionCheck, WorkloadSnapshot, condition_problems, rollout_problems,
    summarize,
};
use kupgrade_core::plan::StepId;
use kupgrade_core::ports::{GateProbe, Stream};
use kupgrade_core::run::{Event, Failure, FailureKind, TaskId};

use super::Driver;
use super::notes::Notes;
use super::work::{ops_failure, runner_failure};

/// The snapshots taken in this session, by the id of the step that took them.
pub(super) type Baselines = Arc<Mutex<HashMap<StepId, WorkloadSnapshot>>>;

/// How many problems a gate's message names (the rest are counted).
const SHOWN: usize = 10;

impl Driver {
    /// Reads gates' objects and workloads through `probe` (without one, a plan's rollout,
    /// condition and regression gates fail as unsupported; command gates need none).
    pub fn gates(mut self, probe: Arc<dyn GateProbe>) -> Self {
        self.gate_probe = Some(probe);
        self
    }

    /// Runs gates' commands that name no node through `runner` (default: a
    /// [`LocalRunner`](crate::LocalRunner) on this machine, under the name `localhost`).
    pub fn local_runner(mut self, runner: Arc<dyn kupgrade_core::ports::CommandRunner>) -> Self {
        self.local = runner;
        self
    }

    fn probe(&self) -> Result<&Arc<dyn GateProbe>, Failure> {
        self.gate_probe.as_ref().ok_or_else(|| {
            Failure::new(
                FailureKind::Unsupported,
                "no gate probe is configured (Driver::gates): this gate cannot read the cluster",
            )
        })
    }

    fn say(&self, task: &TaskId, notes: &Notes, stream: Stream, line: String) {
        tracing::info!(task = %task, "{line}");
        notes.said(stream, &line);
        self.emit(vec![Event::CommandOutput {
            task: task.clone(),
            stream,
            line,
        }]);
    }

    /// Takes the snapshot of a regression gate's workloads and keeps it for the gate.
    pub(super) async fn take_baseline(
        &self,
        task: &TaskId,
        gate: &str,
        regression: &RegressionCheck,
        notes: &Notes,
    ) -> Result<(), Failure> {
        let snapshot = self
            .probe()?
            .workloads(regression)
            .await
            .map_err(ops_failure)?;
        self.say(
            task,
            notes,
            Stream::Stdout,
            format!(
                "gate {gate}: noted {} pod(s) and {} disruption budget(s)",
                snapshot.pods.len(),
                snapshot.budgets.len()
            ),
        );
        notes.workloads(snapshot.clone());
        self.baselines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(task.step.clone(), snapshot);
        Ok(())
    }

    /// Evaluates `gate` until it passes or its time is up.
    pub(super) async fn evaluate_gate(
        &self,
        task: &TaskId,
        gate: &Gate,
        baseline: Option<&StepId>,
        notes: &Notes,
    ) -> Result<(), Failure> {
        let before = baseline.and_then(|b| {
            (self.baselines.lock().unwrap_or_else(|e| e.into_inner()))
                .get(b)
                .cloned()
        });
        if gate.regression.is_some() && before.is_none() {
            self.say(
                task,
                notes,
                Stream::Stderr,
                format!(
                    "gate {}: no snapshot from before in this session (an earlier session took it): every pod it watches must be healthy, restarts are not compared",
                    gate.name
                ),
            );
        }
        let timeout = Duration::from_secs(gate.timeout_seconds);
        let deadline = tokio::time::Instant::now() + kupgrade_core::ports::capped(timeout);
        let interval = Duration::from_secs(gate.interval_seconds.max(1));
        let mut last: Vec<String> = Vec::new();
        let mut evaluations = 0u64;
        loop {
            let problems = self
                .gate_problems(task, gate, before.as_ref(), notes)
                .await?;
            evaluations += 1;
            if problems.is_empty() {
                self.say(
                    task,
                    notes,
                    Stream::Stdout,
                    format!("gate {} passed ({evaluations} evaluation(s))", gate.name),
                );
                return Ok(());
            }
            if problems != last {
                self.say(
                    task,
                    notes,
                    Stream::Stdout,
                    format!(
                        "gate {}: waiting: {}",
                        gate.name,
                        summarize(&problems, SHOWN)
                    ),
                );
                last = problems;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                let what = format!(
                    "gate {} did not pass within {}s: {}",
                    gate.name,
                    gate.timeout_seconds,
                    summarize(&last, SHOWN)
                );
                return match gate.on_timeout {
                    kupgrade_core::gate::OnTimeout::Halt => {
                        Err(Failure::new(FailureKind::GateFailed, what))
                    }
                    kupgrade_core::gate::OnTimeout::Warn => {
                        tracing::warn!(task = %task, "{what}; going on (on-timeout: warn)");
                        self.say(
                            task,
                            notes,
                            Stream::Stderr,
                            format!("warning: {what}; going on (on-timeout: warn)"),
                        );
                        Ok(())
                    }
                };
            }
            // One last evaluation at the deadline.
            tokio::time::sleep(interval.min(deadline - now)).await;
        }
    }

    /// What keeps `gate` from passing now (empty: it passes). Errors are failures the gate
    /// cannot wait out (no probe, a command that cannot be started).
    async fn gate_problems(
        &self,
        task: &TaskId,
        gate: &Gate,
        before: Option<&WorkloadSnapshot>,
        notes: &Notes,
    ) -> Result<Vec<String>, Failure> {
        let unreadable = |what: String, e: kupgrade_core::ports::OpsError| {
            vec![format!("cannot read {what}: {e}")]
        };
        Ok(match gate.check() {
            Some(GateCheck::Rollout(r)) => {
                let obj = r.object();
                match self.probe()?.object(&obj).await {
                    Ok(v) => rollout_problems(r.kind, &obj, v.as_ref()),
                    Err(e) => unreadable(obj.to_string(), e),
                }
            }
            Some(GateCheck::Condition(c)) => {
                let obj = c.object();
                match self.probe()?.object(&obj).await {
                    Ok(v) => condition_problems(&c, v.as_ref()),
                    Err(e) => unreadable(obj.to_string(), e),
                }
            }
            Some(GateCheck::Regression(r)) => match self.probe()?.workloads(&r).await {
                Ok(now) => {
                    let worse = now.regressions(before);
                    notes.workloads(now);
                    worse
                }
                Err(e) => unreadable("the workloads".into(), e),
            },
            Some(GateCheck::Command(c)) => {
                let spec = c.spec();
                let (runner, node) = match &c.node {
                    Some(n) => (&self.runner, n.clone()),
                    None => (&self.local, localhost()),
                };
                let sink = self.output_lines(task);
                let line = spec.to_shell_line();
                let on = c
                    .node
                    .as_ref()
                    .map(|n| format!(" on {n}"))
                    .unwrap_or_default();
                let result = runner.run(&node, &spec, &sink).await;
                if let Ok(out) = &result {
                    notes.command(out);
                }
                match result {
                    Ok(out) if out.status.success() => Vec::new(),
                    Ok(out) => {
                        let tail = out.stderr_tail(3);
                        let tail = if tail.trim().is_empty() {
                            out.stdout_text()
                                .lines()
                                .rev()
                                .take(3)
                                .collect::<Vec<_>>()
                                .into_iter()
                                .rev()
                                .collect::<Vec<_>>()
                                .join(" | ")
                        } else {
                            tail.lines().collect::<Vec<_>>().join(" | ")
                        };
                        vec![format!(
                            "`{line}`{on} ended with {}{}",
                            out.status,
                            if tail.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", kupgrade_core::escape::text(&tail))
                            }
                        )]
                    }
                    Err(e) => {
                        let f = runner_failure(e);
                        if f.kind.retryable() {
                            vec![format!("`{line}`{on} could not run: {f}")]
                        } else {
                            return Err(f.with_command(line));
                        }
                    }
                }
            }
            None => {
                return Err(Failure::new(
                    FailureKind::Refused,
                    format!("gate {} checks nothing", gate.name),
                ));
            }
        })
    }
}

impl Driver {
    /// Runs `spec` here (a hook that runs on the operator's machine) through the local
    /// runner: its output lines go to the events; it must exit 0.
    pub(super) async fn run_local(
        &self,
        task: &TaskId,
        spec: &kupgrade_core::ports::CommandSpec,
        notes: &Notes,
    ) -> Result<(), Failure> {
        let line = spec.to_shell_line();
        self.announce(task, || format!("here: {line}"));
        let sink = self.output_lines(task);
        let result = self.local.run(&localhost(), spec, &sink).await;
        if let Ok(out) = &result {
            notes.command(out);
        }
        match result {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(Failure::new(
                FailureKind::CommandFailed,
                format!("`{line}` here ended with {}", out.status),
            )
            .with_command(line)
            .with_stderr_tail(out.stderr_tail(5))),
            Err(e) => Err(runner_failure(e).with_command(line)),
        }
    }
}

/// The name a local gate command runs under.
fn localhost() -> NodeName {
    "localhost".parse().unwrap_or_else(|_| unreachable!())
}
