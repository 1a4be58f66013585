//! The planning options every example takes (`plan` and `apply` all of them, `check` the
//! policy), and the one place they become [`PlanOptions`] and a skew policy.
use std::sync::Arc;

use anyhow::Context;
use clap::{ArgAction, ArgMatches, Args, Command, parser::ValueSource};
use jiff::civil::Date;
use kupgrade_core::ZONE_LABEL;
use kupgrade_core::plan::{BatchSize, PlanOptions, Strategy, Target, WorkerPacing};
use kupgrade_core::ports::DrainOptions;
use kupgrade_core::skew::rules::RulePolicy;
use kupgrade_core::skew::{AllOf, SkewPolicy, UpstreamPolicy};

/// The longest wait an option accepts, in seconds (a week): every deadline computed from
/// one stays far from overflowing.
pub(crate) const MAX_WAIT_SECONDS: u64 = 7 * 24 * 3600;

/// How to plan: the target, the pacing, the policy, what to accept, how to drain.
#[derive(Args, Clone, Debug)]
pub(crate) struct Planning {
    /// The target: a version (v1.31.2), a minor (1.31 = its latest patch), `stable` or `latest`.
    #[arg(long, default_value = "stable")]
    pub(crate) target: Target,
    /// The date that decides which releases exist and are supported (default: today).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub(crate) date: Option<Date>,
    /// in-place (kubeadm's way) or replace (new nodes join, old ones leave).
    #[arg(long, default_value = "in-place")]
    pub(crate) strategy: Strategy,
    /// Workers per batch: a count (3) or a percentage (25%).
    #[arg(long, default_value = "1")]
    pub(crate) batch: BatchSize,
    /// At most this many nodes of one zone per batch: a count or a percentage of the zone.
    #[arg(long)]
    pub(crate) max_per_zone: Option<BatchSize>,
    /// Replace strategy: new nodes beyond the old ones at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_surge: u32,
    /// Move workers as late as the policy allows, several minors per drain (the default for
    /// the replace strategy).
    #[arg(long)]
    pub(crate) defer_workers: bool,
    /// First upgrade to the latest patch of the current minor.
    #[arg(long)]
    pub(crate) patch_first: bool,
    #[command(flatten)]
    pub(crate) policy: PolicyArgs,
    /// Plan even though the cluster violates the policy now (a repair).
    #[arg(long)]
    pub(crate) tolerate_initial_violations: bool,
    /// Let the plan pass through states that break this one rule, only where a step the tool
    /// cannot change breaks it (kubeadm before 1.28 moving kube-proxy at `upgrade apply`);
    /// each window is listed in the plan.
    #[arg(long, value_name = "RULE")]
    pub(crate) accept_transient: Option<String>,
    /// Do not pre-stage: download packages (and pull control-plane images) inside each
    /// node's drain window, as before pre-staging, instead of in steps ahead of its cordon.
    #[arg(long)]
    pub(crate) no_prestage: bool,
    /// Plan even though some nodes are not Ready.
    #[arg(long)]
    pub(crate) allow_not_ready: bool,
    /// Accept a target version the release calendar does not know.
    #[arg(long)]
    pub(crate) allow_unknown_versions: bool,
    /// Accept a pre-release target (alpha, beta, rc).
    #[arg(long)]
    pub(crate) allow_prerelease: bool,
    /// Accept a target past its end of life (or not yet released) on the date.
    #[arg(long)]
    pub(crate) allow_unsupported_target: bool,
    /// The node label that names a node's zone.
    #[arg(long, default_value = ZONE_LABEL, value_name = "LABEL")]
    pub(crate) zone_key: String,
    /// How long to wait for a node to come back Ready, in seconds.
    #[arg(long, default_value_t = 600, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=MAX_WAIT_SECONDS))]
    pub(crate) ready_timeout: u64,
    #[command(flatten)]
    pub(crate) drain: DrainArgs,
    #[command(flatten)]
    pub(crate) gates: super::gates::GateArgs,
}

/// How to drain a node, with `kubectl drain`'s names and meanings.
#[derive(Args, Clone, Debug)]
pub(crate) struct DrainArgs {
    /// Evict pods that use emptyDir volumes too (their data is lost).
    #[arg(long)]
    pub(crate) delete_emptydir_data: bool,
    /// Evict pods that no controller manages too (nothing recreates them).
    #[arg(long)]
    pub(crate) force: bool,
    /// Leave DaemonSet pods in place; `--ignore-daemonsets=false` refuses to drain a node
    /// that has any.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub(crate) ignore_daemonsets: bool,
    /// Grace period of each evicted pod, in seconds (default: each pod's own).
    #[arg(long, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(0..=MAX_WAIT_SECONDS))]
    pub(crate) drain_grace_period: Option<u64>,
    /// Give up a drain after this many seconds.
    #[arg(long, default_value_t = 600, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=MAX_WAIT_SECONDS))]
    pub(crate) drain_timeout: u64,
    /// DANGEROUS: delete the pods instead of evicting them, so no PodDisruptionBudget is
    /// asked and every replica of an application may go at once.
    #[arg(long)]
    pub(crate) disable_eviction: bool,
}

/// The skew policy: the upstream one, plus the rules of each `--policy` file.
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct PolicyArgs {
    /// Declarative skew rules (YAML or JSON) checked on top of the upstream policy; repeat
    /// it for several files.
    #[arg(long = "policy", value_name = "FILE")]
    pub(crate) files: Vec<String>,
}

impl Planning {
    /// The planning options, as `plan` and `apply` both use them.
    pub(crate) fn options(&self) -> PlanOptions {
        PlanOptions {
            strategy: self.strategy,
            worker_pacing: self.defer_workers.then_some(WorkerPacing::Deferred),
            batch: self.batch,
            max_surge: self.max_surge,
            zone_key: self.zone_key.clone(),
            max_per_zone: self.max_per_zone,
            drain: self.drain.options(),
            patch_first: self.patch_first,
            allow_unknown_versions: self.allow_unknown_versions,
            allow_prerelease: self.allow_prerelease,
            allow_unsupported_target: self.allow_unsupported_target,
            tolerate_initial_violations: self.tolerate_initial_violations,
            accept_transient: self.accept_transient.clone(),
            allow_not_ready: self.allow_not_ready,
            ready_timeout_seconds: self.ready_timeout,
            prestage: !self.no_prestage,
            ..PlanOptions::default()
        }
    }

    /// The date to plan for: `--date`, or today.
    pub(crate) fn date(&self) -> Date {
        self.date.unwrap_or_else(|| jiff::Zoned::now().date())
    }
}

impl DrainArgs {
    /// The drain options.
    pub(crate) fn options(&self) -> DrainOptions {
        DrainOptions {
            grace_period_seconds: self.drain_grace_period,
            timeout_seconds: self.drain_timeout,
            ignore_daemonsets: self.ignore_daemonsets,
            delete_emptydir_data: self.delete_emptydir_data,
            force: self.force,
            disable_eviction: self.disable_eviction,
        }
    }
}

/// The planning options given on the command line `matches` was parsed from, as `--name`,
/// in the order they are declared.
pub(crate) fn planning_flags_given(matches: &ArgMatches) -> Vec<String> {
    Planning::augment_args(Command::new("planning"))
        .get_arguments()
        .filter(|a| matches.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine))
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect()
}

/// One rules file of `--policy`: where it came from and its rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RulesFile {
    /// The file as given.
    pub(crate) file: String,
    /// Its rules.
    pub(crate) rules: RulePolicy,
}

/// The policy's parts: the upstream policy and these rules files, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PolicyFiles(pub(crate) Vec<RulesFile>);

impl PolicyArgs {
    /// Reads and parses every `--policy` file.
    pub(crate) fn read(&self) -> anyhow::Result<PolicyFiles> {
        let mut files = Vec::new();
        for file in &self.files {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
            files.push(RulesFile {
                file: file.clone(),
                rules: RulePolicy::parse(&text, file)?,
            });
        }
        Ok(PolicyFiles(files))
    }
}

impl PolicyFiles {
    /// The policy to plan and run with: upstream alone, or upstream and every rules file.
    pub(crate) fn policy(&self) -> Arc<dyn SkewPolicy> {
        if self.0.is_empty() {
            return Arc::new(UpstreamPolicy::new());
        }
        let mut parts: Vec<Box<dyn SkewPolicy>> = vec![Box::new(UpstreamPolicy::new())];
        parts.extend(
            self.0
                .iter()
                .map(|f| Box::new(f.rules.clone()) as Box<dyn SkewPolicy>),
        );
        Arc::new(AllOf::new(parts))
    }

    /// The files, for messages.
    pub(crate) fn describe(&self) -> String {
        if self.0.is_empty() {
            return "no --policy file".to_string();
        }
        let files: Vec<String> = self
            .0
            .iter()
            .map(|f| format!("{} ({})", f.file, f.rules.policy_name()))
            .collect();
        format!("--policy {}", files.join(", "))
    }
}
