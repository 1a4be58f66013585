//! Following a command pod to its end: watching it until its container has terminated, then
//! reading its output from the log (or the termination message).
use std::time::Duration;

use futures::{AsyncReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use kube::api::{Api, LogParams};
use kube::runtime::watcher;
use kupgrade_core::NodeName;
use kupgrade_core::capture::StreamCapture;
use kupgrade_core::ports::{
    CommandOutput, CommandSpec, ExitStatus, LineSink, RunnerError, Stream, capped,
};
use tokio::time::{Instant, timeout, timeout_at};

use super::pod::missing_program;
use super::{CONTAINER, PodRunner, other};

impl PodRunner {
    async fn wait_terminated(
        &self,
        api: &Api<Pod>,
        node: &NodeName,
        name: &str,
        spec: &CommandSpec,
        line: &str,
    ) -> Result<ContainerStateTerminated, RunnerError> {
        let run_for = capped(spec.timeout.unwrap_or(self.default_timeout));
        let created = Instant::now();
        let start_deadline = created + capped(self.start_timeout);
        let mut run_deadline: Option<Instant> = None;
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut stream = watcher(api.clone(), config).boxed();
        let mut waiting = String::from("not yet scheduled by the kubelet");
        let timed_out = || RunnerError::TimedOut {
            node: node.clone(),
            after: run_for,
            command: line.to_string(),
        };
        loop {
            let until = run_deadline.unwrap_or(start_deadline);
            let event = match timeout_at(until, stream.try_next()).await {
                Err(_) if run_deadline.is_some() => return Err(timed_out()),
                Err(_) => {
                    return Err(RunnerError::Connect {
                        node: node.clone(),
                        message: format!(
                            "pod {}/{name} did not start within {:?} ({waiting})",
                            self.namespace, self.start_timeout
                        ),
                        source: None,
                    });
                }
                Ok(Ok(Some(e))) => e,
                Ok(Ok(None)) => {
                    return Err(other(
                        node,
                        format!("the watch of pod {}/{name} ended", self.namespace),
                    ));
                }
                Ok(Err(e)) => {
                    tracing::debug!("watching pod {}/{name}: {e}; retrying", self.namespace);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if Instant::now() >= until {
                        return Err(other(
                            node,
                            format!("watching pod {}/{name}: {e}", self.namespace),
                        ));
                    }
                    continue;
                }
            };
            let pod = match event {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => p,
                watcher::Event::Delete(_) => {
                    return Err(other(
                        node,
                        format!(
                            "pod {}/{name} was deleted before its command finished",
                            self.namespace
                        ),
                    ));
                }
                watcher::Event::Init | watcher::Event::InitDone => continue,
            };
            let Some(status) = pod.status else { continue };
            let container = status
                .container_statuses
                .as_ref()
                .and_then(|cs| cs.iter().find(|c| c.name == CONTAINER));
            let state = container.and_then(|c| c.state.as_ref());
            if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
                return Ok(t.clone());
            }
            if state.is_some_and(|s| s.running.is_some()) && run_deadline.is_none() {
                run_deadline = Some(Instant::now() + run_for);
            }
            if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
                let reason = w.reason.clone().unwrap_or_default();
                waiting = format!(
                    "container waiting: {reason} {}",
                    w.message.clone().unwrap_or_default()
                )
                .trim()
                .to_string();
                if matches!(
                    reason.as_str(),
                    "InvalidImageName"
                        | "ErrImageNeverPull"
                        | "CreateContainerConfigError"
                        | "CreateContainerError"
                ) {
                    return Err(other(
                        node,
                        format!("pod {}/{name} cannot start: {waiting}", self.namespace),
                    ));
                }
            }
            if status.phase.as_deref() == Some("Failed") {
                let reason = status.reason.unwrap_or_default();
                if reason == "DeadlineExceeded" {
                    return Err(timed_out());
                }
                return Err(other(
                    node,
                    format!(
                        "pod {}/{name} failed before its command ran: {reason} {}",
                        self.namespace,
                        status.message.unwrap_or_default()
                    ),
                ));
            }
        }
    }

    /// Reads the log, when the kubelet serves it, into `capture` (which keeps its tail and
    /// hands every line to `lines`); returns how many bytes it read, also when the read
    /// failed part of the way.
    async fn read_log(
        &self,
        api: &Api<Pod>,
        name: &str,
        capture: &mut StreamCapture,
        lines: &LineSink,
    ) -> (usize, Result<(), kube::Error>) {
        let params = LogParams {
            container: Some(CONTAINER.into()),
            ..LogParams::default()
        };
        let mut reader = match api.log_stream(name, &params).await {
            Ok(r) => r,
            Err(e) => return (0, Err(e)),
        };
        let mut chunk = vec![0u8; 16 * 1024];
        let mut read = 0;
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) => return (read, Ok(())),
                Ok(n) => {
                    read += n;
                    capture.push(&chunk[..n], lines);
                }
                Err(e) => return (read, Err(kube::Error::ReadEvents(e))),
            }
        }
    }

    pub(super) async fn run_in_pod(
        &self,
        api: &Api<Pod>,
        node: &NodeName,
        name: &str,
        spec: &CommandSpec,
        lines: &LineSink,
    ) -> Result<CommandOutput, RunnerError> {
        let line = spec.to_shell_line();
        let t = self.wait_terminated(api, node, name, spec, &line).await?;
        let status = match t.signal {
            Some(s) if s != 0 => ExitStatus::Signal(s),
            _ => ExitStatus::Code(t.exit_code),
        };
        let mut capture = StreamCapture::new(Stream::Stdout, spec.max_output, lines);
        let log = timeout(
            Duration::from_secs(30),
            self.read_log(api, name, &mut capture, lines),
        )
        .await;
        let read = match log {
            Ok((read, Ok(()))) => read,
            Ok((read, Err(e))) => {
                tracing::debug!(
                    "log of pod {}/{name} not served after {read} bytes ({})",
                    self.namespace,
                    crate::error::describe(&e)
                );
                read
            }
            Err(_) => {
                tracing::debug!("log of pod {}/{name} not read within 30 s", self.namespace);
                0
            }
        };
        if read == 0
            && let Some(m) = t.message.as_deref()
        {
            // The kubelet's copy of the log's tail, for a command that failed.
            capture.push(m.as_bytes(), lines);
        }
        let (stdout, truncated) = capture.finish(lines);
        if let ExitStatus::Code(127) = status
            && let Some(program) = missing_program(spec, &stdout)
        {
            return Err(RunnerError::NotFound {
                node: node.clone(),
                program,
            });
        }
        Ok(CommandOutput {
            status,
            stdout,
            stderr: Vec::new(),
            truncated,
        })
    }
}
