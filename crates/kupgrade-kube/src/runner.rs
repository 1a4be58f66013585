//! [`PodRunner`]: run a node command in a short-lived privileged pod pinned to the node.
//!
//! # How a command runs
//!
//! For each command the runner creates one pod in its namespace:
//!
//! - `spec.nodeName` set to the node: the scheduler is bypassed, so the pod lands there even
//!   when the node is cordoned;
//! - tolerations `[{operator: Exists}]`: it tolerates every taint, including the control
//!   plane's `NoSchedule` and the `NoExecute` taints of an unhealthy node;
//! - `hostPID: true` and a container with `securityContext.privileged: true`, whose command is
//!   `nsenter -t 1 -m -u -i -n -p -- sh -c '<the command line>'`: the command runs as root in
//!   the mount, UTS, IPC, network and PID namespaces of the node's PID 1, that is, on the host,
//!   exactly as a root shell over SSH would run it (the host's `sh`, the host's binaries);
//! - `restartPolicy: Never`, `activeDeadlineSeconds` (start-up time plus the command's
//!   timeout) so the kubelet stops it even if kupgrade goes away, no service account token,
//!   and `terminationMessagePolicy: FallbackToLogsOnError`.
//!
//! It then watches the pod (no polling) until the container has terminated, takes the exit code
//! (or signal) from the container's terminated state, reads the output from the pod's log
//! (which the API server fetches from the kubelet), or, when the log cannot be served, from the
//! termination message (where the kubelet puts the log's tail when the command failed). The
//! pod is **always deleted** afterwards, with grace period 0: after success, failure, timeout,
//! an error, and also when the future is dropped (the deletion is then spawned on the runtime).
//!
//! Output is bounded like the other runners' (the last `max_output` bytes are kept) and every
//! line of it reaches the [`LineSink`]. A command of a program (not a shell script) that exits
//! with status 127 is [`RunnerError::NotFound`], as the host's `sh` reports a missing program
//! that way (or, for a command given stdin, a missing `base64`).
//!
//! # Tracking
//!
//! [`CommandRunner::run_tracked`] reports the pod as a [`CommandHandle::Pod`] as soon as it is
//! created (before it starts: a pod created by a process that then dies still runs later),
//! and takes the node-side lock ([`NodeLock`]) in [`NodeLock::DEFAULT_DIR`] on the host
//! ([`PodRunner::lock_dir`]), as the command does, through `nsenter`. [`CommandRunner::probe`] reads the pod: running until it
//! is gone or its phase is `Succeeded` or `Failed`; [`CommandRunner::stop`] deletes it with
//! grace period 0 (the kubelet then kills its container).
//!
//! Limits: stdout and stderr arrive merged in the order they were written (the kubelet's log
//! does not keep them apart), as [`CommandOutput::stdout`]; output lines are delivered to the
//! [`LineSink`] when the command has finished, not while it runs. A command killed by a
//! signal reports the container's exit code, `128 + signal` (the kubelet has the signal from
//! containerd only as that code). `sudo` is dropped from the command
//! line, since the command already runs as root on the host. The runner passes kupgrade-core's
//! command-runner conformance suite with these as its capabilities (`tests/pod_runner.rs`).
//!
//! # Standard input
//!
//! The runner does not attach to the container, so a [`CommandSpec`]'s `stdin` travels inside
//! the pod spec: it is base64-encoded into the shell line, which then reads
//!
//! ```text
//! command -v base64 >/dev/null 2>&1 || { echo 'kupgrade: ...' >&2; exit 127; }
//! printf %s 'BASE64' | base64 -d | {
//! <the command line>
//! }
//! ```
//!
//! The command (the whole line, for a shell script) reads exactly the given bytes, then end of
//! file; any bytes pass (NUL, non-UTF-8), and nothing in them is ever parsed by a shell, as
//! the base64 alphabet has no shell syntax in it and is quoted anyway. The input is limited to
//! [`PodRunner::MAX_STDIN`] (64 KiB): the whole line is one argument of `nsenter` and of the
//! host's `sh`, and Linux refuses a single argument over 128 KiB (`MAX_ARG_STRLEN`), which the
//! encoded input (4/3 of its size) must share with the command. Bigger input, or a line over
//! [`PodRunner::MAX_LINE`] however it got there, is refused with [`RunnerError::Unsupported`]
//! naming both sizes, and no pod is created. The input is visible to whoever may read the pods
//! of the namespace: it must not be a secret. Without `stdin`, the command's standard input
//! is the container's, which is empty.
//!
//! # Privileges it needs
//!
//! This runner is root on every node it touches; grant it accordingly.
//!
//! - RBAC, in the runner's namespace only (`examples/rbac/node-command.yaml`): `pods`: create,
//!   get, list, watch, delete; `pods/log`: get.
//! - Admission: the namespace must admit privileged, host-PID pods. With Pod Security
//!   Admission, the label `pod-security.kubernetes.io/enforce: privileged` on the namespace
//!   (the manifest creates `kupgrade-node-commands` so labelled, with nothing else in it); with
//!   PodSecurityPolicy (before 1.25), `use` of a policy allowing `privileged` and `hostPID`;
//!   other policy engines (Kyverno, Gatekeeper) need an exception for the namespace.
//! - The image (default [`PodRunner::DEFAULT_IMAGE`]) must be pullable on the nodes and provide
//!   `nsenter` (busybox and util-linux both do). It runs privileged in the host's PID
//!   namespace, so it is named by digest (`name@sha256:...`): a tag can be moved to other
//!   content by whoever controls the registry or sits between it and the node. An image
//!   without a digest is refused (nothing runs) unless the caller opts in with
//!   [`PodRunner::allow_unpinned_image`].
//! - The node itself must have `sh`, and, for commands given standard input, `base64`
//!   (GNU coreutils and busybox both have it): after `nsenter` into PID 1's mount namespace
//!   the line runs with the node's own binaries, not the image's. A node without `base64`
//!   fails such a command with exit code 127 and a message naming `base64`.
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::{AsyncReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{
    Container, ContainerStateTerminated, Pod, PodSpec, SecurityContext, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use kupgrade_core::NodeName;
use kupgrade_core::capture::StreamCapture;
use kupgrade_core::ports::{
    CommandHandle, CommandOutput, CommandRunner, CommandSpec, ExitStatus, LineSink, Liveness,
    NodeLock, Privilege, Program, RunnerError, Stream, Tracking, capped, shell_quote,
};
use tokio::time::{Instant, timeout, timeout_at};

use crate::error::{runner_error, status_code};

/// The container's name in a command pod.
pub const CONTAINER: &str = "command";
/// The label value (`app.kubernetes.io/component`) that marks command pods.
pub const COMPONENT_LABEL_VALUE: &str = "node-command";
/// The annotation naming the node a command pod runs on.
pub const NODE_ANNOTATION: &str = "kupgrade.io/node";

/// Runs commands on nodes in privileged pods; see the [module docs](crate::runner).
///
/// ```no_run
/// use kupgrade_core::ports::{CommandRunnerExt, CommandSpec};
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let client = kupgrade_kube::connect(None, None).await?;
/// let runner = kupgrade_kube::PodRunner::new(client)
///     .image("registry.example/tools/busybox:1.36@sha256:73aaf090f3d85aa34ee199857f03fa3a95c8ede2ffd4cc2cdb5b94e566b11662");
/// let out = runner.output(&"w-1".parse()?, &CommandSpec::new("kubelet").arg("--version")).await?;
/// println!("{} {}", out.status, out.stdout_text());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PodRunner {
    client: Client,
    namespace: String,
    image: String,
    unpinned_image_allowed: bool,
    start_timeout: Duration,
    default_timeout: Duration,
    lock_dir: String,
}

impl fmt::Debug for PodRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PodRunner")
            .field("namespace", &self.namespace)
            .field("image", &self.image)
            .field("unpinned_image_allowed", &self.unpinned_image_allowed)
            .field("start_timeout", &self.start_timeout)
            .field("default_timeout", &self.default_timeout)
            .field("lock_dir", &self.lock_dir)
            .finish_non_exhaustive()
    }
}

impl PodRunner {
    /// The default image: busybox 1.36.1, whose `nsenter` applet is all the runner needs,
    /// pinned by the digest of the multi-platform index that the `1.36` tag named (the tag is
    /// kept for people; the runtime pulls by the digest).
    pub const DEFAULT_IMAGE: &'static str = "docker.io/library/busybox:1.36@sha256:73aaf090f3d85aa34ee199857f03fa3a95c8ede2ffd4cc2cdb5b94e566b11662";
    /// The default namespace, created (and admitted for privileged pods) by
    /// `examples/rbac/node-command.yaml`.
    pub const DEFAULT_NAMESPACE: &'static str = "kupgrade-node-commands";
    /// How long a pod may take to start (image pull included) by default.
    pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(300);
    /// The timeout of a command whose spec gives none.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
    /// The most standard input a command may be given, in bytes (64 KiB): it travels
    /// base64-encoded in the shell line, see [Standard input](crate::runner#standard-input).
    pub const MAX_STDIN: usize = 64 * 1024;
    /// The longest shell line, in bytes: Linux's limit on one argument (`MAX_ARG_STRLEN`,
    /// 128 KiB with the terminating NUL).
    pub const MAX_LINE: usize = 128 * 1024 - 1;

    /// A runner with the default namespace, image and timeouts.
    pub fn new(client: Client) -> Self {
        PodRunner {
            client,
            namespace: Self::DEFAULT_NAMESPACE.into(),
            image: Self::DEFAULT_IMAGE.into(),
            unpinned_image_allowed: false,
            start_timeout: Self::DEFAULT_START_TIMEOUT,
            default_timeout: Self::DEFAULT_TIMEOUT,
            lock_dir: NodeLock::DEFAULT_DIR.to_string(),
        }
    }

    /// Creates the pods in `namespace`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Uses `image` (it must provide `nsenter`), named by digest (`name[:tag]@sha256:HEX`);
    /// see [`PodRunner::allow_unpinned_image`] for anything else.
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = image.into();
        self
    }

    /// True when `image` is named by a sha256 digest: `NAME[:TAG]@sha256:` and 64 lower-case
    /// hex digits (the only images the runner uses without
    /// [`PodRunner::allow_unpinned_image`]).
    ///
    /// ```
    /// use kupgrade_kube::PodRunner;
    /// assert!(PodRunner::is_pinned(PodRunner::DEFAULT_IMAGE));
    /// assert!(!PodRunner::is_pinned("docker.io/library/busybox:1.36"));
    /// ```
    pub fn is_pinned(image: &str) -> bool {
        image.rsplit_once("@sha256:").is_some_and(|(name, hex)| {
            !name.is_empty()
                && hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
    }

    /// Runs an image given without a digest (a tag, which the registry may move) in the
    /// privileged pods: an explicit acceptance that whatever the tag names when a node pulls
    /// it runs as root on that node.
    pub fn allow_unpinned_image(mut self) -> Self {
        self.unpinned_image_allowed = true;
        self
    }

    /// Gives up when a pod has not started its container after `d` (image pull included).
    pub fn start_timeout(mut self, d: Duration) -> Self {
        self.start_timeout = d;
        self
    }

    /// The timeout of commands whose spec has none.
    pub fn default_timeout(mut self, d: Duration) -> Self {
        self.default_timeout = d;
        self
    }

    /// Keeps node-side locks in `dir` on the hosts instead of [`NodeLock::DEFAULT_DIR`].
    pub fn lock_dir(mut self, dir: impl Into<String>) -> Self {
        self.lock_dir = dir.into();
        self
    }

    /// The pod that would run `spec` on `node`, for review. Refuses specs the runner cannot
    /// honour.
    pub fn pod_for(&self, node: &NodeName, spec: &CommandSpec) -> Result<Pod, RunnerError> {
        if !self.unpinned_image_allowed && !Self::is_pinned(&self.image) {
            return Err(RunnerError::Invalid {
                node: node.clone(),
                message: format!(
                    "the command pods' image {:?} is not named by digest (name@sha256:<64 hex \
                     digits>), and it would run privileged in the node's PID namespace: pin it, \
                     or accept a movable tag explicitly (PodRunner::allow_unpinned_image); \
                     nothing was run",
                    self.image
                ),
            });
        }
        let line = host_line(spec)?;
        let run_for = capped(spec.timeout.unwrap_or(self.default_timeout));
        // The API takes at most i32::MAX seconds (68 years).
        let deadline = (capped(self.start_timeout) + run_for)
            .as_secs_f64()
            .ceil()
            .clamp(1.0, f64::from(i32::MAX)) as i64;
        let mut command: Vec<String> = [
            "nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--", "sh", "-c",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        command.push(line);
        let prefix: String = node
            .as_str()
            .chars()
            .map(|c| if c == '.' { '-' } else { c })
            .take(40)
            .collect();
        let prefix = prefix.trim_end_matches('-');
        Ok(Pod {
            metadata: ObjectMeta {
                generate_name: Some(format!("kupgrade-{prefix}-")),
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([
                    ("app.kubernetes.io/name".to_string(), "kupgrade".to_string()),
                    (
                        "app.kubernetes.io/component".to_string(),
                        COMPONENT_LABEL_VALUE.to_string(),
                    ),
                ])),
                annotations: Some(BTreeMap::from([(
                    NODE_ANNOTATION.to_string(),
                    node.to_string(),
                )])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.to_string()),
                host_pid: Some(true),
                restart_policy: Some("Never".into()),
                active_deadline_seconds: Some(deadline),
                automount_service_account_token: Some(false),
                enable_service_links: Some(false),
                termination_grace_period_seconds: Some(0),
                tolerations: Some(vec![Toleration {
                    operator: Some("Exists".into()),
                    ..Toleration::default()
                }]),
                containers: vec![Container {
                    name: CONTAINER.into(),
                    image: Some(self.image.clone()),
                    command: Some(command),
                    security_context: Some(SecurityContext {
                        privileged: Some(true),
                        ..SecurityContext::default()
                    }),
                    termination_message_policy: Some("FallbackToLogsOnError".into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: None,
        })
    }

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

    async fn run_in_pod(
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

/// The line the host's `sh -c` runs for `spec`: its command line without `sudo` (the pod is
/// root on the host already: `sudo -n` would only add a dependency), fed its standard input
/// (see [Standard input](crate::runner#standard-input)).
fn host_line(spec: &CommandSpec) -> Result<String, RunnerError> {
    let line = CommandSpec {
        privilege: Privilege::None,
        stdin: None,
        ..spec.clone()
    }
    .to_shell_line();
    let line = match spec.stdin.as_deref() {
        None => line,
        Some(input) if input.len() > PodRunner::MAX_STDIN => {
            return Err(RunnerError::Unsupported {
                what: format!(
                    "feed {} bytes of standard input to a command run in a pod: the limit is {} bytes (64 KiB), as the input travels base64-encoded in the pod's command line (command: {line})",
                    input.len(),
                    PodRunner::MAX_STDIN
                ),
            });
        }
        Some(input) => format!(
            "command -v base64 >/dev/null 2>&1 || {{ echo {} >&2; exit 127; }}\nprintf %s {} | base64 -d | {{\n{line}\n}}",
            shell_quote(BASE64_MISSING),
            shell_quote(&BASE64.encode(input)),
        ),
    };
    if line.len() > PodRunner::MAX_LINE {
        return Err(RunnerError::Unsupported {
            what: format!(
                "run a shell line of {} bytes in a pod: Linux limits one argument to {} bytes{}",
                line.len(),
                PodRunner::MAX_LINE,
                if spec.stdin.is_some() {
                    " (the line carries the command's standard input, base64-encoded)"
                } else {
                    ""
                }
            ),
        });
    }
    Ok(line)
}

/// The program a command that exited with status 127 did not find: `base64` when the line
/// feeding the command's stdin said so, otherwise the spec's program (the host's `sh` reports
/// a missing program as 127). `None` for a shell script, whose own exit code that is.
fn missing_program(spec: &CommandSpec, output: &[u8]) -> Option<String> {
    if spec.stdin.is_some()
        && output
            .windows(BASE64_MISSING.len())
            .any(|w| w == BASE64_MISSING.as_bytes())
    {
        return Some("base64".into());
    }
    match &spec.program {
        Program::Exec { program, .. } => Some(program.clone()),
        Program::Shell { .. } => None,
    }
}

/// What the shell line prints when the node has no `base64` to decode a command's stdin.
const BASE64_MISSING: &str =
    "kupgrade: base64 not found on the node; it is needed to feed the command's standard input";

fn other(node: &NodeName, message: String) -> RunnerError {
    RunnerError::Other {
        node: node.clone(),
        message,
        source: None,
    }
}

/// Deletes the pod if the run is dropped before it could (cancellation).
struct Cleanup {
    api: Api<Pod>,
    name: String,
    armed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let api = self.api.clone();
            let name = std::mem::take(&mut self.name);
            rt.spawn(async move {
                if let Err(e) = api
                    .delete(&name, &DeleteParams::default().grace_period(0))
                    .await
                    && status_code(&e) != Some(404)
                {
                    tracing::warn!("could not delete command pod {name}: {e}");
                }
            });
        }
    }
}

#[async_trait]
impl CommandRunner for PodRunner {
    async fn run(
        &self,
        node: &NodeName,
        spec: &CommandSpec,
        lines: &LineSink,
    ) -> Result<CommandOutput, RunnerError> {
        self.run_tracked(node, spec, lines, &Tracking::default())
            .await
    }

    async fn run_tracked(
        &self,
        node: &NodeName,
        spec: &CommandSpec,
        lines: &LineSink,
        tracking: &Tracking,
    ) -> Result<CommandOutput, RunnerError> {
        let locked = tracking
            .lock
            .as_ref()
            .map(|lock| lock.wrap(spec, &self.lock_dir));
        let run_spec = locked.as_ref().unwrap_or(spec);
        let pod = self.pod_for(node, run_spec)?;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let created = api
            .create(&PostParams::default(), &pod)
            .await
            .map_err(|e| {
                runner_error(
                    node,
                    &format!(
                        "create a command pod in namespace {} (create pods)",
                        self.namespace
                    ),
                    e,
                )
            })?;
        let name = created.name_any();
        tracing::debug!(
            "running on node {node} in pod {}/{name}: {spec}",
            self.namespace
        );
        let mut cleanup = Cleanup {
            api: api.clone(),
            name: name.clone(),
            armed: true,
        };
        tracking.started.report(CommandHandle::Pod {
            namespace: self.namespace.clone(),
            name: name.clone(),
        });
        let result = self.run_in_pod(&api, node, &name, run_spec, lines).await;
        cleanup.armed = false;
        match api
            .delete(&name, &DeleteParams::default().grace_period(0))
            .await
        {
            Ok(_) => {}
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => {
                tracing::warn!(
                    "could not delete command pod {}/{name}: {}",
                    self.namespace,
                    crate::error::describe(&e)
                );
                if result.is_ok() {
                    return Err(runner_error(
                        node,
                        &format!(
                            "the command finished, but its pod {}/{name} could not be deleted (delete pods)",
                            self.namespace
                        ),
                        e,
                    ));
                }
            }
        }
        let output = result?;
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
        let CommandHandle::Pod { namespace, name } = handle else {
            return Ok(Liveness::Unknown(format!(
                "the pod runner cannot look for {handle}"
            )));
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await {
            Ok(None) => Ok(Liveness::Ended),
            Ok(Some(pod)) => {
                let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                Ok(match phase {
                    Some("Succeeded" | "Failed") => Liveness::Ended,
                    _ => Liveness::Running,
                })
            }
            Err(e) => Err(runner_error(
                node,
                &format!("read the command pod {namespace}/{name} (get pods)"),
                e,
            )),
        }
    }

    async fn stop(&self, node: &NodeName, handle: &CommandHandle) -> Result<(), RunnerError> {
        let CommandHandle::Pod { namespace, name } = handle else {
            return Err(RunnerError::Unsupported {
                what: format!("stop {handle} through the Kubernetes API"),
            });
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        match api
            .delete(name, &DeleteParams::default().grace_period(0))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(runner_error(
                node,
                &format!("delete the command pod {namespace}/{name} (delete pods)"),
                e,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner() -> PodRunner {
        // A client that is never used: pod_for is pure.
        let (svc, _handle) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        PodRunner::new(Client::new(svc, "default")).namespace("ops")
    }

    /// The default image is named by digest, and a movable tag is refused unless accepted
    /// explicitly (the pods run privileged in the node's PID namespace).
    #[tokio::test]
    async fn the_image_is_pinned_by_digest_or_explicitly_unpinned() {
        let node: NodeName = "w-1".parse().unwrap();
        let spec = CommandSpec::new("true");
        assert!(
            PodRunner::is_pinned(PodRunner::DEFAULT_IMAGE),
            "{}",
            PodRunner::DEFAULT_IMAGE
        );
        let pod = runner().pod_for(&node, &spec).unwrap();
        assert_eq!(
            pod.spec.unwrap().containers[0].image.as_deref(),
            Some(PodRunner::DEFAULT_IMAGE)
        );
        for tag in [
            "docker.io/library/busybox:1.36",
            "busybox",
            "busybox@sha256:abc",
            "busybox@sha256:73AAF090F3D85AA34EE199857F03FA3A95C8EDE2FFD4CC2CDB5B94E566B11662",
            "@sha256:73aaf090f3d85aa34ee199857f03fa3a95c8ede2ffd4cc2cdb5b94e566b11662",
        ] {
            let err = runner().image(tag).pod_for(&node, &spec).unwrap_err();
            let RunnerError::Invalid { message, .. } = &err else {
                panic!("expected Invalid for {tag}, got {err:?}")
            };
            assert!(message.contains("is not named by digest"), "{message}");
            let pod = runner()
                .image(tag)
                .allow_unpinned_image()
                .pod_for(&node, &spec)
                .unwrap();
            assert_eq!(pod.spec.unwrap().containers[0].image.as_deref(), Some(tag));
        }
        let pinned = "registry.example:5000/tools/util-linux@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert!(runner().image(pinned).pod_for(&node, &spec).is_ok());
    }

    #[tokio::test]
    async fn pod_is_privileged_pinned_tolerant_and_quotes_the_command() {
        let node: NodeName = "cp-1.example".parse().unwrap();
        let spec = CommandSpec::new("echo")
            .arg("it's; rm -rf /")
            .sudo()
            .env("A", "b c")
            .timeout(Duration::from_secs(60));
        let pod = runner().pod_for(&node, &spec).unwrap();
        let s = pod.spec.as_ref().unwrap();
        assert_eq!(
            pod.metadata.generate_name.as_deref(),
            Some("kupgrade-cp-1-example-")
        );
        assert_eq!(pod.metadata.namespace.as_deref(), Some("ops"));
        assert_eq!(s.node_name.as_deref(), Some("cp-1.example"));
        assert_eq!(s.host_pid, Some(true));
        assert_eq!(s.restart_policy.as_deref(), Some("Never"));
        assert_eq!(s.active_deadline_seconds, Some(360));
        let tol = s.tolerations.as_ref().unwrap();
        assert_eq!(tol.len(), 1);
        assert_eq!(tol[0].operator.as_deref(), Some("Exists"));
        assert_eq!(tol[0].key, None);
        assert_eq!(tol[0].effect, None);
        let c = &s.containers[0];
        assert_eq!(c.security_context.as_ref().unwrap().privileged, Some(true));
        assert_eq!(
            c.termination_message_policy.as_deref(),
            Some("FallbackToLogsOnError")
        );
        assert_eq!(
            c.command.as_ref().unwrap(),
            &[
                "nsenter",
                "-t",
                "1",
                "-m",
                "-u",
                "-i",
                "-n",
                "-p",
                "--",
                "sh",
                "-c",
                r"env 'A=b c' echo 'it'\''s; rm -rf /'"
            ]
        );
    }

    /// Runs the host line of `pod` with the local `sh`, as `nsenter ... sh -c LINE` would.
    /// The shell line the pod's container runs (`... sh -c LINE`).
    fn shell_line(pod: &Pod) -> &str {
        let command = pod.spec.as_ref().unwrap().containers[0]
            .command
            .as_ref()
            .unwrap();
        assert_eq!(command[command.len() - 3..command.len() - 1], ["sh", "-c"]);
        command.last().unwrap()
    }

    fn run_line(pod: &Pod) -> std::process::Output {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(shell_line(pod))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run sh")
    }

    fn tricky_input() -> Vec<u8> {
        let mut input = b"it's \"quoted\"; $(touch /nonexistent/x) `id`\n\nline 3\\\n\x00\xff\xfe not utf-8 \xe2\x9c\x93".to_vec();
        input.extend(0..=255u8);
        input
    }

    #[tokio::test]
    async fn stdin_reaches_the_command_byte_for_byte_through_the_host_shell() {
        let node: NodeName = "w-1".parse().unwrap();
        let input = tricky_input();
        let spec = CommandSpec::new("cat").stdin(input.clone()).sudo();
        let pod = runner().pod_for(&node, &spec).unwrap();
        let line = shell_line(&pod).to_string();
        assert!(line.is_ascii(), "{line}");
        assert!(!line.contains("sudo"), "{line}");
        assert!(line.ends_with("| base64 -d | {\ncat\n}"), "{line}");
        let out = run_line(&pod);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(out.stdout, input);
        assert!(out.stderr.is_empty(), "{out:?}");

        // A script gets the input as a whole (not only its first command), keeps its exit
        // code and its environment.
        let spec =
            CommandSpec::shell("read -r first; printf '%s|%s|' \"$first\" \"$A\"; cat; exit 4")
                .env("A", "b 'c'")
                .stdin(input.clone());
        let out = run_line(&runner().pod_for(&node, &spec).unwrap());
        assert_eq!(out.status.code(), Some(4), "{out:?}");
        let first_line_end = input.iter().position(|&b| b == b'\n').unwrap();
        let mut expected = input[..first_line_end].to_vec();
        expected.extend_from_slice(b"|b 'c'|");
        expected.extend_from_slice(&input[first_line_end + 1..]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&expected)
        );
        assert_eq!(out.stdout, expected);

        // Empty input is end of file at once.
        let spec = CommandSpec::shell("wc -c | tr -d ' '").stdin(Vec::new());
        let out = run_line(&runner().pod_for(&node, &spec).unwrap());
        assert_eq!(out.stdout, b"0\n");
    }

    #[tokio::test]
    async fn stdin_up_to_the_limit_fits_one_argument_and_more_is_refused() {
        let node: NodeName = "w-1".parse().unwrap();
        let input: Vec<u8> = (0..PodRunner::MAX_STDIN)
            .map(|i| (i * 7 % 256) as u8)
            .collect();
        let spec = CommandSpec::shell("wc -c | tr -d ' '").stdin(input);
        let pod = runner().pod_for(&node, &spec).unwrap();
        let line = shell_line(&pod).len();
        assert!(line <= PodRunner::MAX_LINE, "{line}");
        let out = run_line(&pod);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{}\n", PodRunner::MAX_STDIN)
        );

        let err = runner()
            .pod_for(
                &node,
                &CommandSpec::new("cat").stdin(vec![b'x'; PodRunner::MAX_STDIN + 1]),
            )
            .unwrap_err();
        assert!(matches!(err, RunnerError::Unsupported { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("65537 bytes of standard input"), "{msg}");
        assert!(msg.contains("the limit is 65536 bytes"), "{msg}");

        let err = runner()
            .pod_for(
                &node,
                &CommandSpec::new("echo").arg("y".repeat(PodRunner::MAX_LINE)),
            )
            .unwrap_err();
        assert!(matches!(err, RunnerError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("131071 bytes"), "{err}");
    }

    #[tokio::test]
    async fn a_node_without_base64_is_told_so() {
        let node: NodeName = "w-1".parse().unwrap();
        let pod = runner()
            .pod_for(&node, &CommandSpec::new("cat").stdin("x"))
            .unwrap();
        let line = shell_line(&pod).to_string();
        // `command` is a shell builtin; an empty PATH hides every program, base64 included.
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&line)
            .env("PATH", "")
            .output()
            .expect("run sh");
        assert_eq!(out.status.code(), Some(127), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("base64 not found on the node"),
            "{out:?}"
        );
    }
}
