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
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt};
use kupgrade_core::NodeName;
use kupgrade_core::ports::{
    CommandHandle, CommandOutput, CommandRunner, CommandSpec, LineSink, Liveness, NodeLock,
    RunnerError, Tracking,
};

use crate::error::{runner_error, status_code};

mod pod;
#[cfg(test)]
mod tests;
mod watch;

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
}

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
