//! The apply example's command line.
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use jiff::civil::Date;
use kupgrade_core::NodeName;
use kupgrade_core::plan::{BatchSize, Strategy, Target};
use kupgrade_core::run::RetryPolicy;
use kupgrade_kube::PodRunner;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Executor {
    /// A simulated cluster (no machine is touched).
    Sim,
    /// Real hosts over SSH.
    Ssh,
    /// Privileged pods pinned to each node, through the Kubernetes API (needs --kubeconfig).
    Pod,
    /// This machine, one sandbox directory per node.
    Local,
}

/// Carry a Kubernetes upgrade out: plan it, then run it step by step, resumably.
#[derive(Parser)]
pub(crate) struct Args {
    /// The cluster inventory (YAML or JSON) [default: the bundled clusters/ha.yaml]. With
    /// --kubeconfig: only its nodes' `ssh:` fields are used, matched by node name.
    #[arg(long)]
    pub(crate) cluster: Option<String>,
    /// Upgrade the live cluster this kubeconfig reaches: state, cordon, drain, uncordon and
    /// the wait for Ready through the Kubernetes API.
    #[arg(long)]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// With --kubeconfig: the kubeconfig context (default: its current context).
    #[arg(long, requires = "kubeconfig")]
    pub(crate) context: Option<String>,
    /// Grace period of each evicted pod, in seconds (default: each pod's own).
    #[arg(long)]
    pub(crate) drain_grace_period: Option<u64>,
    /// Give up a drain after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub(crate) drain_timeout: u64,
    /// The target: a version, a minor, `stable` or `latest`.
    #[arg(long, default_value = "stable")]
    pub(crate) target: Target,
    /// The date that decides which releases exist (default: today).
    #[arg(long)]
    pub(crate) date: Option<Date>,
    /// in-place or replace.
    #[arg(long, default_value = "in-place")]
    pub(crate) strategy: Strategy,
    /// Workers per batch: a count or a percentage.
    #[arg(long, default_value = "1")]
    pub(crate) batch: BatchSize,
    /// Replace strategy: new nodes beyond the old ones at once.
    #[arg(long, default_value_t = 1)]
    pub(crate) max_surge: u32,
    /// Accept a target past its end of life on the date.
    #[arg(long)]
    pub(crate) allow_unsupported_target: bool,
    /// Where the commands run.
    #[arg(long, value_enum, default_value = "sim")]
    pub(crate) executor: Executor,
    /// Print every command and operation instead of running it.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// The journal file (the plan is kept beside it, as JOURNAL.plan.json). Without one the
    /// run cannot be resumed.
    #[arg(long)]
    pub(crate) journal: Option<PathBuf>,
    /// Resume the run recorded in --journal (with the plan it started with).
    #[arg(long, requires = "journal")]
    pub(crate) resume: bool,
    /// Before resuming, mark this task done (`STEP` or `STEP on NODE`, as reports print it).
    #[arg(long, requires = "resume")]
    pub(crate) mark_done: Vec<String>,
    /// Before resuming, run this task again even if it is not safe to repeat.
    #[arg(long, requires = "resume")]
    pub(crate) retry: Vec<String>,
    /// Tasks in flight at once (default: the plan's largest batch).
    #[arg(long)]
    pub(crate) max_parallel: Option<usize>,
    /// Attempts of a failed step that is safe to repeat, the first included (1: stop at the
    /// first failure), before the run halts.
    #[arg(long, default_value_t = RetryPolicy::default().max_attempts)]
    pub(crate) attempts: u32,
    /// Print every event as a JSON line on stdout instead of progress bars.
    #[arg(long)]
    pub(crate) json_events: bool,
    /// sim: keep the simulated cluster in this file (loaded on --resume).
    #[arg(long)]
    pub(crate) sim_state: Option<PathBuf>,
    /// sim: simulated seconds per real second; 0 runs in virtual time, as fast as it can.
    #[arg(long, default_value_t = 3000.0)]
    pub(crate) sim_speed: f64,
    /// ssh: the user for nodes whose inventory names none.
    #[arg(long)]
    pub(crate) ssh_user: Option<String>,
    /// ssh: use only this private key.
    #[arg(long)]
    pub(crate) ssh_key: Option<PathBuf>,
    /// ssh: the known_hosts file (unknown host keys are refused).
    #[arg(long)]
    pub(crate) known_hosts: Option<PathBuf>,
    /// ssh with --kubeconfig: reach nodes that have no `ssh:` entry in --cluster at their
    /// node name.
    #[arg(long, requires = "kubeconfig")]
    pub(crate) ssh_node_names: bool,
    /// pod: the namespace of the command pods (it must admit privileged pods).
    #[arg(long, default_value = PodRunner::DEFAULT_NAMESPACE)]
    pub(crate) pod_namespace: String,
    /// pod: the image of the command pods (it must provide `nsenter`).
    #[arg(long, default_value = PodRunner::DEFAULT_IMAGE)]
    pub(crate) pod_image: String,
    /// ssh, local without --kubeconfig: the node whose kubectl runs the cluster operations
    /// (default: the first control-plane node).
    #[arg(long)]
    pub(crate) kubectl_node: Option<NodeName>,
    /// local: the directory holding one sandbox per node.
    #[arg(long, required_if_eq("executor", "local"))]
    pub(crate) sandbox: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) releases: super::releases::ReleaseArgs,
}
