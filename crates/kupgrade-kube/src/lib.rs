//! # kupgrade-kube
//!
//! kupgrade's Kubernetes API adapter. It reads a live kubeadm cluster into the core's
//! [`ClusterState`](kupgrade_core::ClusterState) and carries out the cluster side of an upgrade
//! through the API, with the semantics operators trust from `kubectl drain`:
//!
//! - [`discover()`] / [`Discovery`]: nodes, kubelet versions, roles, OS, control-plane versions
//!   per node from the static pods, stacked or external etcd, kube-proxy and CoreDNS. Whatever
//!   cannot be read is reported by object and field ([`DiscoverError`]), never guessed.
//! - [`KubeClusterOps`]: the core's
//!   [`ClusterOperations`](kupgrade_core::ports::ClusterOperations) port: cordon, uncordon,
//!   drain through the Eviction API (`policy/v1`, falling back to `policy/v1beta1`) with
//!   disruption budgets honoured until a deadline, and a watch for Ready at a kubelet version.
//! - [`PodRunner`]: the core's [`CommandRunner`](kupgrade_core::ports::CommandRunner) port,
//!   running a node command in a short-lived privileged pod pinned to the node.
//! - [`evidence::gather`]: readiness evidence for the core's catalogue (deprecated API use in
//!   three tiers, pods and budgets, webhooks, APIServices, CRDs, kubeadm's configuration),
//!   each piece found or missing with the reason.
//! - [`connect`], [`client`]: client configuration the kube-rs way (`KUBECONFIG`, contexts,
//!   in-cluster, or an explicit file), with kube's built-in 429 retry off, because the drain
//!   owns its retries and deadline ([`config`] explains why).
//!
//! Like kube-rs, this crate does not choose a Kubernetes API version: add `k8s-openapi` with
//! the feature for your cluster (`features = ["v1_33"]`) to your binary.
//!
//! Minimal permissions for each use are in `examples/rbac/` (read-only discovery; cordon and
//! drain, with the run lease; node commands; readiness evidence).
//!
//! Both ports pass kupgrade-core's conformance suites (`kupgrade_core::conformance`) against
//! a real API server, with a test harness playing the kubelet (`tests/apiserver.rs`,
//! `tests/pod_runner.rs`).
//!
//! Modules: [`discover`](mod@discover) (what is read where), [`drain`] (the drain, step by step),
//! [`runner`] (the command pod and the privileges it needs), [`config`] (client configuration
//! and the retry setting), [`ops`]. Their items are re-exported here.
//!
//! ```no_run
//! use kupgrade_core::ports::{ClusterOperations, CommandRunnerExt, CommandSpec, DrainOptions};
//! use kupgrade_kube::{KubeClusterOps, PodRunner};
//! use std::time::Duration;
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let client = kupgrade_kube::connect(Some("/etc/kubernetes/admin.conf".as_ref()), None).await?;
//! let ops = KubeClusterOps::new(client.clone());
//!
//! let state = ops.state().await?;
//! println!("control plane at {:?}", state.control_plane_minor());
//!
//! let node = "w-1".parse()?;
//! let report = ops.drain(&node, &DrainOptions { timeout_seconds: 300, ..Default::default() }).await?;
//! println!("evicted {:?}", report.evicted);
//!
//! let runner = PodRunner::new(client);
//! let out = runner.output(&node, &CommandSpec::new("kubelet").arg("--version")).await?;
//! println!("{}", out.stdout_text());
//!
//! ops.wait_ready(&node, &"v1.30.2".parse()?, Duration::from_secs(300)).await?;
//! ops.uncordon(&node).await?;
//! # Ok(()) }
//! ```

mod budgets;
pub mod config;
pub mod discover;
pub mod drain;
mod error;
mod eviction;
pub mod evidence;
mod gates;
pub mod lease;
pub mod ops;
pub mod runner;

pub use config::{ConfigError, client, connect, infer_config, kubeconfig_config};
pub use discover::{
    CONTROL_PLANE_LABEL, DiscoverError, Discovery, LEGACY_MASTER_LABEL, Problem, SYSTEM_NAMESPACE,
    discover, image_tag, os_family,
};
pub use drain::MIRROR_ANNOTATION;
pub use gates::KubeGateProbe;
pub use lease::KubeLease;
pub use ops::KubeClusterOps;
pub use runner::{COMPONENT_LABEL_VALUE, CONTAINER, NODE_ANNOTATION, PodRunner};
