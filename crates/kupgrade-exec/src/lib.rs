//! # kupgrade-exec
//!
//! Carries kupgrade's plans out into the world. This crate holds the adapters behind
//! kupgrade-core's ports that touch processes, networks and files:
//!
//! - [`LocalRunner`]: a [`CommandRunner`](kupgrade_core::ports::CommandRunner) over local
//!   processes, with optional per-node sandboxes ([`NodeEnv`]) for tests and demos.
//! - [`SshRunner`]: a `CommandRunner` over OpenSSH, one multiplexed connection per node,
//!   strict host-key checking, timeouts that kill the remote process group
//!   ([`ssh`] explains the choices, and why the `openssh` crate rather than `russh`).
//! - [`KubectlOps`]: a [`ClusterOperations`](kupgrade_core::ports::ClusterOperations)
//!   backend through `kubectl` on one node, over any runner, for clusters reached only
//!   through their nodes ([`kubectl`] says how each operation is done).
//! - [`CommandProvider`]: a [`NodeProvider`](kupgrade_core::ports::NodeProvider) for the
//!   replace strategy that runs the operator's own commands (a cloud CLI, terraform, a
//!   script) to create, look for and remove nodes ([`provider`] states their contract).
//! - [`node_evidence`]: readiness facts read on the nodes through any runner (cgroup file
//!   system, free disk, kubeadm's certificate expiry, etcd's version, the kubelet's API
//!   server, packages offered and package sources), each found or missing with the reason.
//! - [`Journal`]: the crash-safe, append-only JSON-lines file a run records its progress in,
//!   so an interrupted upgrade resumes where it stopped.
//! - [`report`]: the run's HTML page kept in a file as the journal grows (throttled, replaced
//!   atomically) and finished at the end ([`RunReport`](report::RunReport)).
//! - [`driver`]: the async [`Driver`](driver::Driver) that carries a plan out by moving data
//!   between kupgrade-core's run state machine (`kupgrade_core::run::Run`) and these ports:
//!   concurrency within a batch, timeouts, retries with backoff, Ctrl-C (finish the current
//!   step or abort it), dry runs, an event stream and `tracing` spans per step.
//! - `releases` (feature `live-releases`, on by default): reads the version labels the
//!   Kubernetes release team publishes (`stable.txt`, `stable-1.N.txt`), as `kubeadm upgrade
//!   plan` does, to merge the newest patches over the release calendar.
//! - [`sim`]: a simulated kubeadm cluster ([`SimCluster`](sim::SimCluster)) behind all three
//!   ports, in virtual time, with fault injection and a state file that survives a killed
//!   process: the test bed of the driver, the examples and the benches.
//!
//! Both runners pass kupgrade-core's command-runner conformance suite
//! (`kupgrade_core::conformance`, feature `conformance`): the SSH runner against a real `sshd`
//! started by the tests. `KubectlOps` passes the cluster-operations suite against a real API
//! server, through kubectl and the local runner.
//!
//! ```
//! use kupgrade_core::ports::{CommandRunnerExt, CommandSpec, ExitStatus};
//! use kupgrade_exec::LocalRunner;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runner = LocalRunner::new();
//! let node = "w-1".parse()?;
//! let cmd = CommandSpec::new("sh")
//!     .args(["-c", "read name; echo \"hello $name\"; exit 3"])
//!     .stdin("kupgrade\n")
//!     .timeout(Duration::from_secs(10));
//! let out = runner.output(&node, &cmd).await?;
//! assert_eq!(out.stdout_text(), "hello kupgrade\n");
//! assert_eq!(out.status, ExitStatus::Code(3));
//! # Ok(()) }
//! ```
//!
//! Every runner is used through the port, so a plan executor takes an
//! `Arc<dyn CommandRunner>` and works the same over the simulated cluster, a local sandbox or
//! real nodes.

pub mod driver;
pub mod events;
mod groups;
pub mod journal;
pub mod kubectl;
mod local;
pub mod node_env;
pub mod node_evidence;
pub mod node_lease;
mod node_state;
mod output;
pub mod provider;
#[cfg(feature = "live-releases")]
pub mod releases;
pub mod report;
pub mod run_lease;
pub mod sim;
pub mod ssh;

pub use journal::{Journal, JournalError, Recovered, TornTail};
pub use kubectl::KubectlOps;
pub use local::LocalRunner;
pub use node_env::NodeEnv;
pub use node_lease::NodeLease;
pub use node_state::NodeReadOps;
pub use provider::CommandProvider;
pub use run_lease::HeldLease;
pub use ssh::{HostKeyPolicy, SshConfig, SshConfigError, SshRunner};
