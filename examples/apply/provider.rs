//! The apply example's node provider for the replace strategy: the operator's own commands
//! (`--provider-create`, `--provider-remove`, `--provider-find`), run on this machine through
//! `kupgrade_exec::provider::CommandProvider`, whose documentation states their contract.
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use kupgrade_core::ports::{ClusterOperations, CommandSpec, NodeProvider};
use kupgrade_core::run::Run;
use kupgrade_exec::SshRunner;
use kupgrade_exec::driver::provider_needed;
use kupgrade_exec::provider::{
    CommandProvider, DEFAULT_CREATE_TIMEOUT, DEFAULT_FIND_TIMEOUT, DEFAULT_REMOVE_TIMEOUT,
};

/// The node provider's options.
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct ProviderArgs {
    /// Replace strategy: the shell command that creates a node (a cloud CLI, terraform, a
    /// script). It reads what to create from KUPGRADE_NODE, KUPGRADE_TEMPLATE_NODE,
    /// KUPGRADE_VERSION, KUPGRADE_ROLES, KUPGRADE_LABELS (JSON), KUPGRADE_OS_FAMILY,
    /// KUPGRADE_ZONE, KUPGRADE_CLUSTER, and prints `{"name": NODE, "ssh": {"host": ..., "port":
    /// ..., "user": ...}}` on stdout (logs on stderr).
    #[arg(long, value_name = "CMD", requires = "provider_remove")]
    pub(crate) provider_create: Option<String>,
    /// Replace strategy: the shell command that deletes node KUPGRADE_NODE from the cluster and
    /// its machine (a node already gone is success).
    #[arg(long, value_name = "CMD", requires = "provider_create")]
    pub(crate) provider_remove: Option<String>,
    /// Replace strategy: the shell command that looks, changing nothing, whether node
    /// KUPGRADE_NODE's machine exists and prints `{"exists": true}` or `{"exists": false}`. A
    /// resumed run asks it before creating a node again that a crash left half made; without
    /// it, such a run halts and asks you.
    #[arg(long, value_name = "CMD", requires = "provider_create")]
    pub(crate) provider_find: Option<String>,
    /// Seconds the create command may run before it is killed.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_CREATE_TIMEOUT.as_secs())]
    pub(crate) provider_create_timeout: u64,
    /// Seconds the find command may run before it is killed.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_FIND_TIMEOUT.as_secs())]
    pub(crate) provider_find_timeout: u64,
    /// Seconds the remove command may run before it is killed.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_REMOVE_TIMEOUT.as_secs())]
    pub(crate) provider_remove_timeout: u64,
    /// Seconds to wait, after the create command, for the new node to be Ready at its version.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub(crate) provider_join_timeout: u64,
}

impl ProviderArgs {
    /// The provider the flags describe, if any: the commands run on this machine; a new node's
    /// SSH target, when the create or find command gives one, goes to `ssh`.
    pub(crate) fn provider(
        &self,
        ops: &Arc<dyn ClusterOperations>,
        ssh: Option<&SshRunner>,
        cluster: Option<&str>,
    ) -> Option<Arc<dyn NodeProvider>> {
        let (Some(create), Some(remove)) = (&self.provider_create, &self.provider_remove) else {
            return None;
        };
        let spec =
            |cmd: &str, secs: u64| CommandSpec::shell(cmd).timeout(Duration::from_secs(secs));
        let mut provider = CommandProvider::new(
            spec(create, self.provider_create_timeout),
            spec(remove, self.provider_remove_timeout),
        )
        .wait_ready(ops.clone(), Duration::from_secs(self.provider_join_timeout));
        if let Some(find) = &self.provider_find {
            provider = provider.find_command(spec(find, self.provider_find_timeout));
        }
        if let Some(name) = cluster {
            provider = provider.cluster_name(name);
        }
        if let Some(ssh) = ssh {
            let ssh = ssh.clone();
            provider = provider.on_ssh_target(move |node, target| ssh.learn_target(node, target));
        }
        Some(Arc::new(provider))
    }
}

/// Refuses, before the journal is opened and anything runs, a run that creates or removes
/// nodes when the executor has no provider: the simulator has its own; the others need the
/// `--provider-*` commands.
pub(crate) fn refuse_without(
    args: &ProviderArgs,
    simulated: bool,
    run: &Run,
) -> anyhow::Result<()> {
    if simulated || args.provider_create.is_some() {
        return Ok(());
    }
    if let Some(what) = provider_needed(run) {
        bail!(
            "the plan {what}, and no node provider is configured: nothing was run. The replace \
             strategy creates and removes machines through your own commands: give \
             --provider-create CMD and --provider-remove CMD (and --provider-find CMD, so that a \
             resumed run can tell whether a crash left a node half made), or plan with \
             --strategy in-place"
        );
    }
    Ok(())
}
