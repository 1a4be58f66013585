//! The three ports over the simulated cluster: [`CommandRunner`] (node commands through the
//! `node` rules, with faults, output limits and simulated durations), [`ClusterOperations`]
//! (cordon, drain through the workload model and its budgets, uncordon, readiness) and
//! [`NodeProvider`] (create, find and remove machines from the templates). Each operation
//! locks the model, applies its effect, saves the state when it is persisted, and calls the
//! test hooks before and after ([`SimCluster::on_op`]).
fn bounded(mut bytes: Vec<u8>, max: usize) -> (Vec<u8>, bool) {
    if bytes.len() > max {
        bytes.drain(..bytes.len() - max);
        (bytes, true)
    } else {
        (bytes, false)
    }
}

use std::time::Duration;

use async_trait::async_trait;
use kupgrade_core::ports::{
    ClusterOperations, CommandOutput, CommandRunner, CommandSpec, DrainOptions, DrainReport,
    ExitStatus, LineSink, MachineLookup, NodeProvider, OpsError, RunnerError, Stream, Tracking,
};
use kupgrade_core::{ClusterState, KubeVersion, Node, NodeName};

use super::{FaultKind, Host, OpPhase, PodKind, SimCluster, fault, node, ops_err, workload};

#[async_trait]
impl CommandRunner for SimCluster {
    async fn run_tracked(
        &self,
        node: &NodeName,
        spec: &CommandSpec,
        lines: &LineSink,
        tracking: &Tracking,
    ) -> Result<CommandOutput, RunnerError> {
        tracking.refuse_lock()?;
        self.charge().await;
        let line = spec.to_shell_line();
        let (fault, d) = {
            let mut inner = self.lock();
            if !inner.has(node) {
                return Err(RunnerError::Connect {
                    node: node.clone(),
                    message: "no such host in the simulated cluster".into(),
                    source: None,
                });
            }
            let fault = fault::take_command_fault(&mut inner.state.faults, node, &line);
            let none = std::collections::BTreeSet::new();
            let downloaded = inner.state.hosts.get(node).map_or(&none, |h| &h.downloaded);
            (fault, node::duration(spec, &inner.timings, downloaded))
        };
        if fault == Some(FaultKind::Unreachable) {
            return Err(RunnerError::Connect {
                node: node.clone(),
                message: "connection timed out (simulated)".into(),
                source: None,
            });
        }
        let op = self.begin(node, &line).map_err(|_| RunnerError::Connect {
            node: node.clone(),
            message: "no such host in the simulated cluster".into(),
            source: None,
        })?;
        // Every command has a time limit (its own, or the default), as with the real runners.
        let t = spec.time_limit();
        let timed_out = || RunnerError::TimedOut {
            node: node.clone(),
            after: t,
            command: line.clone(),
        };
        match &fault {
            Some(FaultKind::CommandHangs) => {
                self.pass(t).await;
                return Err(timed_out());
            }
            _ if d > t => {
                self.pass(t).await;
                return Err(timed_out());
            }
            _ => self.pass(d).await,
        }
        let exec = {
            let mut inner = self.lock();
            if !inner.has(node) {
                return Err(RunnerError::Connect {
                    node: node.clone(),
                    message: "the node left the simulated cluster".into(),
                    source: None,
                });
            }
            let exec = match fault {
                Some(FaultKind::CommandFails { code, stderr }) => node::Exec {
                    code,
                    stderr,
                    ..node::Exec::default()
                },
                _ => {
                    let now = inner.now_ms();
                    node::exec(&mut inner, node, spec, now)
                }
            };
            if exec.changed {
                inner.record(node, line.clone());
            }
            // Faults are counted down even when nothing else changed.
            inner.save().map_err(|e| RunnerError::Other {
                node: node.clone(),
                message: e.to_string(),
                source: Some(Box::new(e)),
            })?;
            exec
        };
        self.hook(op, OpPhase::After, node, &line);
        for l in exec.stdout.lines() {
            lines.line(Stream::Stdout, l);
        }
        for l in exec.stderr.lines() {
            lines.line(Stream::Stderr, l);
        }
        let (stdout, t1) = bounded(exec.stdout.into_bytes(), spec.max_output);
        let (stderr, t2) = bounded(exec.stderr.into_bytes(), spec.max_output);
        Ok(CommandOutput {
            status: ExitStatus::Code(exec.code),
            stdout,
            stderr,
            truncated: t1 || t2,
        })
    }
}

#[async_trait]
impl ClusterOperations for SimCluster {
    async fn state(&self) -> Result<ClusterState, OpsError> {
        self.charge().await;
        Ok(self.cluster())
    }

    async fn cordon(&self, node: &NodeName) -> Result<(), OpsError> {
        self.set_cordon(node, true).await
    }

    async fn uncordon(&self, node: &NodeName) -> Result<(), OpsError> {
        self.set_cordon(node, false).await
    }

    async fn drain(
        &self,
        node: &NodeName,
        options: &DrainOptions,
    ) -> Result<DrainReport, OpsError> {
        self.charge().await;
        let op = self.begin(node, "drain")?;
        let (cordon, eviction, retry) = {
            let t = &self.lock().timings;
            (t.cordon, t.eviction, t.eviction_retry)
        };
        self.pass(cordon).await;
        let deadline = {
            let mut inner = self.lock();
            if !inner.has(node) {
                return Err(OpsError::NodeNotFound(node.clone()));
            }
            if !inner.node(node).unschedulable {
                inner.node_mut(node).unschedulable = true;
                inner.record(node, "cordon".into());
                inner.save().map_err(ops_err)?;
            }
            inner
                .now_ms()
                .saturating_add(options.timeout_seconds.saturating_mul(1000))
        };
        let mut report = DrainReport::default();
        loop {
            let done = {
                let mut inner = self.lock();
                workload::evict_round(&mut inner, node, options, &mut report)
            };
            match done {
                workload::Round::Refused => {
                    self.hook(op, OpPhase::After, node, "drain");
                    return Err(OpsError::DrainBlocked {
                        node: node.clone(),
                        report,
                    });
                }
                workload::Round::Done => break,
                workload::Round::Blocked => {
                    let now = self.lock().now_ms();
                    if now >= deadline {
                        self.hook(op, OpPhase::After, node, "drain");
                        return Err(OpsError::DrainBlocked {
                            node: node.clone(),
                            report,
                        });
                    }
                    let wait =
                        Duration::from_millis((deadline - now).min(retry.as_millis() as u64));
                    self.pass(wait).await;
                }
                workload::Round::Progress => self.pass(eviction).await,
            }
        }
        {
            let mut inner = self.lock();
            inner.record(node, "drain".into());
            inner.save().map_err(ops_err)?;
        }
        self.hook(op, OpPhase::After, node, "drain");
        Ok(report)
    }

    async fn wait_ready(
        &self,
        node: &NodeName,
        version: &KubeVersion,
        timeout: Duration,
    ) -> Result<(), OpsError> {
        self.charge().await;
        let (start, poll) = {
            let inner = self.lock();
            if !inner.has(node) {
                return Err(OpsError::NodeNotFound(node.clone()));
            }
            (inner.now_ms(), inner.timings.poll)
        };
        let deadline = start.saturating_add(kupgrade_core::ports::millis(timeout));
        loop {
            let (ok, now, ready_at) = {
                let inner = self.lock();
                if !inner.has(node) {
                    return Err(OpsError::NodeNotFound(node.clone()));
                }
                let i = inner.index[node];
                let n = &inner.state.cluster.nodes[i];
                let at = n
                    .versions
                    .kubelet
                    .as_ref()
                    .is_some_and(|k| k.release() == version.release());
                let ready_at = inner.state.hosts.get(node).and_then(|h| h.ready_at_ms);
                (at && inner.ready(i), inner.now_ms(), ready_at)
            };
            if ok {
                // The kubelet is back: that no longer depends on the clock (a cluster loaded
                // later, whose clock resumes from its last save, must not see it NotReady).
                let mut inner = self.lock();
                inner.restarting.remove(node);
                if inner.host(node).ready_at_ms.take().is_some() {
                    inner.save().map_err(ops_err)?;
                }
                return Ok(());
            }
            if now >= deadline {
                return Err(OpsError::TimedOut {
                    what: format!("node {node} to be Ready at {version}"),
                    after: timeout,
                });
            }
            let next = ready_at
                .filter(|t| *t > now)
                .unwrap_or(now + poll.as_millis() as u64);
            let wait = next.min(deadline).saturating_sub(now).max(1);
            self.pass(Duration::from_millis(wait)).await;
        }
    }
}

#[async_trait]
impl NodeProvider for SimCluster {
    async fn provision(
        &self,
        name: &NodeName,
        template: &Node,
        version: &KubeVersion,
    ) -> Result<Node, OpsError> {
        self.charge().await;
        let what = format!("provision {name} at {version}");
        let op = {
            let mut inner = self.lock();
            inner.ops += 1;
            inner.ops
        };
        self.hook(op, OpPhase::Before, name, &what);
        let d = self.lock().timings.provision;
        self.pass(d).await;
        let (node, never) = {
            let mut inner = self.lock();
            if inner.has(name) {
                return Err(OpsError::Other {
                    message: format!("node {name} already exists"),
                    source: None,
                });
            }
            let node = Node::provisioned(name, template, version);
            let never = fault::node_fault(
                &mut inner.state.faults,
                name,
                |k| *k == FaultKind::NeverReady,
                false,
            )
            .is_some();
            let mut host = Host::of(&node);
            if never {
                host.ready_at_ms = Some(u64::MAX);
            }
            inner.state.hosts.insert(name.clone(), host);
            inner.state.cluster.nodes.push(node.clone());
            inner.reindex();
            inner.record(name, what.clone());
            inner.schedule_pending();
            inner.save().map_err(ops_err)?;
            (node, never)
        };
        self.hook(op, OpPhase::After, name, &what);
        if never {
            return Err(OpsError::TimedOut {
                what: format!("node {name} to join and become Ready"),
                after: d,
            });
        }
        Ok(node)
    }

    async fn remove(&self, node: &NodeName) -> Result<(), OpsError> {
        self.charge().await;
        let op = {
            let mut inner = self.lock();
            inner.ops += 1;
            inner.ops
        };
        self.hook(op, OpPhase::Before, node, "remove");
        let d = self.lock().timings.remove;
        self.pass(d).await;
        {
            let mut inner = self.lock();
            if !inner.has(node) {
                // Already gone: removing is idempotent.
                return Ok(());
            }
            let left = inner.workload_pods_on(node);
            if left > 0 {
                inner.problem(format!(
                    "node {node} was removed with {left} workload pod(s) still on it"
                ));
            }
            inner
                .state
                .pods
                .retain(|p| p.node.as_ref() != Some(node) || p.kind == PodKind::Replicated);
            for p in &mut inner.state.pods {
                if p.node.as_ref() == Some(node) {
                    p.node = None;
                    p.ready_at_ms = None;
                }
            }
            let i = inner.index[node];
            inner.state.cluster.nodes.remove(i);
            inner.state.hosts.remove(node);
            inner.reindex();
            inner.record(node, "remove".into());
            inner.schedule_pending();
            inner.save().map_err(ops_err)?;
        }
        self.hook(op, OpPhase::After, node, "remove");
        Ok(())
    }

    /// A simulated machine exists from the moment its node is created (it joins at once).
    async fn find(&self, name: &NodeName) -> Result<MachineLookup, OpsError> {
        Ok(match self.lock().state.hosts.contains_key(name) {
            true => MachineLookup::Present {
                detail: format!("simulated host {name}"),
            },
            false => MachineLookup::Absent,
        })
    }
}
