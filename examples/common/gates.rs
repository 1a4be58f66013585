//! Gates and hooks for a plan: a gates file (`--gates FILE`) and flags for the common
//! cases; a hooks file (`--hooks FILE`).
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use kupgrade_core::gate::{
    Gate, GateCheck, GateCommand, GatePoint, GateSet, OnTimeout, RegressionCheck, Rollout,
    WorkloadKind,
};
use kupgrade_core::hook::HookSet;
use kupgrade_core::plan::UpgradePlan;

/// When the gates given by flags are evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum After {
    /// After each batch of nodes.
    Batch,
    /// After each hop.
    Hop,
    /// Both.
    Both,
}

/// Workload health gates between the batches and hops.
#[derive(Args, Clone, Debug)]
pub(crate) struct GateArgs {
    /// A gates file (YAML or JSON; schema: crates/kupgrade-core/schema/gates.schema.json):
    /// object readiness, workload regression and command gates, each with its interval,
    /// timeout and on-timeout.
    #[arg(long, value_name = "FILE")]
    pub(crate) gates: Option<String>,
    /// A hooks file (YAML or JSON; schema: crates/kupgrade-core/schema/hooks.schema.json):
    /// your commands before or after the upgrade, each hop, each batch or each step of a
    /// kind, here or on the step's nodes, with the step's facts in KUPGRADE_* variables.
    #[arg(long, value_name = "FILE")]
    pub(crate) hooks: Option<String>,
    /// Gate: this Deployment, StatefulSet or DaemonSet rolled out and available
    /// (`deployment/NAMESPACE/NAME`). Repeatable.
    #[arg(long, value_name = "KIND/NAMESPACE/NAME")]
    pub(crate) gate_rollout: Vec<String>,
    /// Gate: no pod newly not Ready, crash-looping or restarting, no disruption budget newly
    /// below its desired count, in NAMESPACE (empty: every namespace), optionally only pods
    /// with the labels SELECTOR (`shop:app=web`). Repeatable.
    #[arg(long, value_name = "NAMESPACE[:SELECTOR]")]
    pub(crate) gate_regression: Vec<String>,
    /// Gate: this command, run here, must exit 0 (words separated by spaces, no quoting; a
    /// gates file takes any arguments). Repeatable.
    #[arg(long, value_name = "COMMAND")]
    pub(crate) gate_command: Vec<String>,
    /// The flags' gates: after each batch, each hop, or both.
    #[arg(long, value_enum, default_value = "batch")]
    pub(crate) gate_after: After,
    /// The flags' gates: how long each may take to pass, in seconds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub(crate) gate_timeout: u64,
    /// The flags' gates: seconds between two evaluations.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub(crate) gate_interval: u64,
    /// The flags' gates: what a timeout does (halt the run, or warn and go on).
    #[arg(long, value_enum, default_value = "halt")]
    pub(crate) gate_on_timeout: OnTimeoutArg,
}

/// [`OnTimeout`] on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum OnTimeoutArg {
    /// Halt the run.
    #[default]
    Halt,
    /// Warn and go on.
    Warn,
}

impl GateArgs {
    /// The gates the file and the flags declare (none: an empty set).
    pub(crate) fn read(&self) -> anyhow::Result<GateSet> {
        let mut gates: Vec<Gate> = match &self.gates {
            Some(file) => {
                let text =
                    std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
                GateSet::parse(&text, file)?.gates().to_vec()
            }
            None => Vec::new(),
        };
        let after = match self.gate_after {
            After::Batch => vec![GatePoint::Batch],
            After::Hop => vec![GatePoint::Hop],
            After::Both => vec![GatePoint::Batch, GatePoint::Hop],
        };
        let mut flag = |name: String, check: GateCheck| {
            let mut g = Gate::new(name, check);
            g.after = after.clone();
            g.timeout_seconds = self.gate_timeout;
            g.interval_seconds = self.gate_interval;
            g.on_timeout = match self.gate_on_timeout {
                OnTimeoutArg::Halt => OnTimeout::Halt,
                OnTimeoutArg::Warn => OnTimeout::Warn,
            };
            gates.push(g);
        };
        for (i, text) in self.gate_rollout.iter().enumerate() {
            let parts: Vec<&str> = text.split('/').collect();
            let [kind, namespace, name] = parts[..] else {
                bail!(
                    "--gate-rollout {text:?}: expected KIND/NAMESPACE/NAME (deployment/shop/web)"
                );
            };
            let kind = match kind.to_ascii_lowercase().as_str() {
                "deployment" | "deploy" => WorkloadKind::Deployment,
                "statefulset" | "sts" => WorkloadKind::StatefulSet,
                "daemonset" | "ds" => WorkloadKind::DaemonSet,
                other => bail!(
                    "--gate-rollout {text:?}: {other:?} is not deployment, statefulset or daemonset"
                ),
            };
            flag(
                format!("rollout-{}", i + 1),
                GateCheck::Rollout(Rollout {
                    kind,
                    namespace: Some(namespace.to_string()),
                    name: name.to_string(),
                }),
            );
        }
        for (i, text) in self.gate_regression.iter().enumerate() {
            let (ns, selector) = text.split_once(':').unwrap_or((text, ""));
            flag(
                format!("regression-{}", i + 1),
                GateCheck::Regression(RegressionCheck {
                    namespace: (!ns.is_empty()).then(|| ns.to_string()),
                    selector: (!selector.is_empty()).then(|| selector.to_string()),
                }),
            );
        }
        for (i, text) in self.gate_command.iter().enumerate() {
            flag(
                format!("command-{}", i + 1),
                GateCheck::Command(GateCommand {
                    argv: text.split_whitespace().map(ToString::to_string).collect(),
                    node: None,
                    timeout_seconds: 60,
                }),
            );
        }
        let set = GateSet::new(gates).map_err(|mut e| {
            e.file = "the gate flags and file".into();
            e
        })?;
        Ok(set)
    }

    /// The hooks of `--hooks` (none: an empty set).
    pub(crate) fn read_hooks(&self) -> anyhow::Result<HookSet> {
        let Some(file) = &self.hooks else {
            return Ok(HookSet::default());
        };
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
        Ok(HookSet::parse(&text, file)?)
    }

    /// Reads the gates and hooks (every problem before any planning).
    pub(crate) fn load(&self) -> anyhow::Result<(GateSet, HookSet)> {
        Ok((self.read()?, self.read_hooks()?))
    }
}

/// Puts `gates`, then `hooks`, into `plan` (an `after: batch` hook runs once the batch's
/// gates have passed).
pub(crate) fn insert(plan: &mut UpgradePlan, (gates, hooks): &(GateSet, HookSet)) {
    gates.insert(plan);
    hooks.insert(plan);
}
