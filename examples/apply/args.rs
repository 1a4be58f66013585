//! The apply example's command line.
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use kupgrade_core::NodeName;
use kupgrade_core::run::{RetryPolicy, RunOptions};
use kupgrade_kube::PodRunner;

use super::planning::Planning;

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

/// What a resumed run does about a command an earlier session left running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum OnSurvivor {
    /// Wait for it to end.
    Wait,
    /// Stop it.
    Stop,
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
    /// Run this reviewed plan (the output of `plan --format json`, unchanged) instead of
    /// planning. It is checked against the cluster before anything runs; planning options are
    /// refused beside it, except `--policy`, which must name the policy it was made with.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub(crate) plan: Option<String>,
    #[command(flatten)]
    pub(crate) planning: Planning,
    #[command(flatten)]
    pub(crate) evidence: super::readiness::EvidenceArgs,
    /// Start (or resume) despite this readiness error, named by check and subject as the
    /// refusal prints it (`removed-api:ingress/shop/web`); repeat it for each. Accepted
    /// findings are journaled and stay accepted on --resume.
    #[arg(long, value_name = "CHECK:SUBJECT")]
    pub(crate) accept: Vec<String>,
    /// Also read the readiness evidence only the nodes can give (cgroup version, free disk,
    /// certificate expiry, the etcd image, the kubelet's API server, the package versions each
    /// node's repository offers) through the executor (ssh, pod or local: read-only commands),
    /// before the findings are judged; on --resume, again.
    #[arg(long)]
    pub(crate) gather_nodes: bool,
    #[command(flatten)]
    pub(crate) releases: super::releases::ReleaseArgs,
    #[command(flatten)]
    pub(crate) provider: super::provider::ProviderArgs,
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
    /// Resume the run recorded in --journal, with the plan and the policy it started with
    /// (kept beside the journal); planning options are refused, `--policy` must match.
    #[arg(long, requires = "journal")]
    pub(crate) resume: bool,
    /// Print what undoing the run recorded in --journal means where it stopped, and exit
    /// (changes nothing): before the hop's `kubeadm upgrade apply`, ordinary steps putting
    /// packages and repositories back; after it, the disaster-recovery procedure with the
    /// snapshot files named. FORMAT: text (default), markdown, json or yaml.
    #[arg(long, requires = "journal", value_name = "FORMAT", num_args = 0..=1, default_missing_value = "text", value_parser = ["text", "markdown", "json", "yaml"])]
    pub(crate) rollback_plan: Option<String>,
    /// Keep the run's HTML report in this file: every step's state and real duration beside
    /// its estimate, gate results, hook output, the workloads before and after, where and why
    /// the run stopped with the command that resumes it. Rewritten as steps end (at most
    /// every 5 seconds, replaced atomically) and finished when the session ends; with
    /// --resume the page goes on from the journal.
    #[arg(long, value_name = "FILE.html", conflicts_with = "dry_run")]
    pub(crate) report: Option<PathBuf>,
    /// Write the HTML report of the run recorded in --journal (going on or over) to this file
    /// and exit; changes nothing.
    #[arg(long, value_name = "FILE.html", requires = "journal", conflicts_with_all = ["report", "rollback_plan", "resume", "dry_run"])]
    pub(crate) report_only: Option<PathBuf>,
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
    /// ssh: the user for nodes whose inventory names none (a POSIX user name).
    #[arg(long, value_parser = posix_user)]
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
    /// pod: the image of the command pods (it must provide `nsenter`), named by digest
    /// (`NAME[:TAG]@sha256:...`): the pods run privileged in each node's PID namespace.
    #[arg(long, default_value = PodRunner::DEFAULT_IMAGE)]
    pub(crate) pod_image: String,
    /// pod: accept a --pod-image without a digest (a tag, which whoever controls the registry
    /// can move to other content that then runs as root on the nodes).
    #[arg(long)]
    pub(crate) pod_image_unpinned: bool,
    /// ssh, local without --kubeconfig: the node whose kubectl runs the cluster operations
    /// (default: the first control-plane node).
    #[arg(long)]
    pub(crate) kubectl_node: Option<NodeName>,
    /// local: the directory holding one sandbox per node.
    #[arg(long, required_if_eq("executor", "local"))]
    pub(crate) sandbox: Option<PathBuf>,
    /// On --resume, a command an earlier session left running on its node: wait for it to
    /// end, or stop it (its process group, its pod); either way for up to
    /// --survivor-timeout seconds, then the run halts and names it.
    #[arg(long, value_enum, default_value = "wait")]
    pub(crate) on_survivor: OnSurvivor,
    /// Take the cluster's run lease from another run: alone, once that run's lease has expired
    /// (it stopped renewing it: killed, or its machine gone) and this run does not go on from
    /// that run's journal; `--force-lease=RUN`, from the run with that id even before expiry
    /// (when it is known to be over). The journal records the lease as broken.
    #[arg(long, value_name = "RUN", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    pub(crate) force_lease: Option<String>,
    /// How long the run lease lasts unless renewed, in seconds (it is renewed every third of
    /// it): a run killed without a chance to give it back holds the cluster this long.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(3..=3600))]
    pub(crate) lease_duration: u64,
    /// How long --on-survivor waits for such a command to be gone, in seconds.
    #[arg(long, default_value_t = 2400, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub(crate) survivor_timeout: u64,
    /// The planning options given on the command line (filled in after parsing).
    #[arg(skip)]
    pub(crate) planning_given: Vec<String>,
    /// Not an option: the arguments of the command that resumes this session
    /// (`resume::words`, from the options given; filled in after parsing).
    #[arg(skip)]
    pub(crate) resume_words: Vec<std::ffi::OsString>,
}

impl Args {
    /// Parses the command line, noting which planning options it gives.
    pub(crate) fn from_command_line() -> Args {
        Args::parse_from_iter(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// Parses `argv` (the program name first), noting which planning options it gives and
    /// the arguments of the command that would resume the session.
    pub(crate) fn parse_from_iter<I, T>(argv: I) -> Result<Args, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Args::command().try_get_matches_from(argv)?;
        let mut args = Args::from_arg_matches(&matches)?;
        args.planning_given = super::planning::planning_flags_given(&matches);
        args.resume_words = super::resume::words(&matches);
        Ok(args)
    }

    /// How the run behaves.
    pub(crate) fn run_options(&self) -> RunOptions {
        RunOptions {
            max_parallel: self.max_parallel,
            retry: RetryPolicy {
                max_attempts: self.attempts.max(1),
                ..RetryPolicy::default()
            },
        }
    }
}

/// `--ssh-user`: a POSIX user name, refused otherwise (it reaches `ssh`, and through it any
/// `ProxyCommand` that writes `%r`).
fn posix_user(text: &str) -> Result<String, String> {
    kupgrade_core::ssh_target::check_user(text).map(|()| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::Args;

    /// The user reaches `ssh` (and any `ProxyCommand` writing `%r`): only a POSIX user name
    /// is taken.
    #[test]
    fn ssh_user_must_be_a_posix_user_name() {
        let parse =
            |user: &str| Args::parse_from_iter(["apply".to_string(), format!("--ssh-user={user}")]);
        assert_eq!(parse("admin").unwrap().ssh_user.as_deref(), Some("admin"));
        for bad in ["root;id", "$(id)", "Admin", "-oProxyCommand=x", "a b"] {
            let e = parse(bad).err().unwrap().to_string();
            assert!(e.contains("is not a POSIX user name"), "{bad}: {e}");
        }
    }
}
