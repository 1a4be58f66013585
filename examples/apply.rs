//! `cargo run --example apply`: carries an upgrade plan out, with a progress bar per node.
//!
//! With no arguments it upgrades the bundled HA sample (`clusters/ha.yaml`, 1.28) to the
//! newest stable release on a simulated cluster (`--executor sim`), in simulated time
//! (`--sim-speed`: simulated seconds per real second; 0 runs as fast as it can), and prints a
//! summary. Ctrl-C once lets the running steps finish; twice aborts them, and so do SIGTERM
//! and SIGHUP (the running commands are killed, the session recorded as cancelled). Either
//! way the journal stays consistent and `--resume` goes on.
//!
//! With a real executor one run drives a cluster: it holds the cluster's run lease (the Lease
//! `kube-system/kupgrade` with `--kubeconfig`, else the file `/var/lib/kupgrade/cluster.lease`
//! on the first control-plane node), renewed while it runs (`--lease-duration`) and given back
//! at its end, and a second run is refused, naming the holder (its run id, process, host and
//! since when). `--resume` of the same run takes its own lease back; `--force-lease` takes over
//! an expired lease the journal does not vouch for, `--force-lease=RUN` the lease of run RUN
//! at once. The journal records how the lease was taken. Each command holds a node-side lock
//! named by the plan and its step, so no two copies of a step overlap on a node, and its
//! process group or pod is journaled; on `--resume`, a command an earlier session left running
//! is waited for (`--on-survivor stop` stops it) before the run decides about its step.
//!
//! ```text
//! cargo run --example apply -- --target 1.30 --batch 2 --date 2025-03-01
//! cargo run --example apply -- --dry-run --target 1.29 --date 2025-01-15
//! cargo run --example apply -- --target 1.30 --date 2025-03-01 --journal /tmp/up.journal --sim-state /tmp/up.sim.json   # Ctrl-C, then:
//! cargo run --example apply -- --journal /tmp/up.journal --sim-state /tmp/up.sim.json --resume
//! cargo run --example plan -- --target 1.30 --date 2025-03-01 --format json > /tmp/up.plan.json   # review it, then:
//! cargo run --example apply -- --plan /tmp/up.plan.json
//! cargo run --example apply -- --executor ssh --cluster my-hosts.yaml --journal up.journal
//! cargo run --example apply -- --kubeconfig admin.conf --executor ssh --cluster my-hosts.yaml
//! cargo run --example apply -- --kubeconfig admin.conf --executor pod --journal up.journal
//! cargo run --example apply -- --kubeconfig admin.conf --executor ssh --ssh-node-names --target 1.30 --date 2025-06-20 --dry-run
//! ```
//!
//! `apply` takes every planning option `plan` takes (`--target`, `--date`, `--strategy`,
//! `--batch`, `--max-per-zone`, `--defer-workers`, `--patch-first`, `--policy`, what to accept,
//! the drain options) and checks each step against the chosen `--policy`. The plan and the
//! policy are kept beside the journal (`JOURNAL.plan.json`, `JOURNAL.policy.json`); `--resume`
//! goes on with both, refuses planning options, and refuses a `--policy` other than the one
//! the run started with.
//!
//! The release data comes from the options `plan` and `check` take too (`--calendar FILE`,
//! `--kubeadm-versions FILE`, `--live-releases` with `--release-base-url` and
//! `--release-timeout`); they are refused beside `--resume` and `--plan`, whose plan is made
//! already. The plan's warnings (a calendar too old for the date, hops past the kubeadm version
//! table) are printed before the run and in the summary.
//!
//! `--plan FILE` runs a plan reviewed beforehand (the output of `plan --format json`): the
//! fingerprint recorded in the file must match the plan in it (an edited file is refused), the
//! cluster must still be where the plan starts (each node's kubelet, the nodes, the oldest API
//! server; otherwise the differing nodes are named), and it is not planned again: planning
//! options beside it are refused, except `--policy`, which must give the policy the plan was
//! made with.
//!
//! Drains follow `kubectl drain`: DaemonSet pods stay (`--ignore-daemonsets=false` refuses
//! them), pods with emptyDir data or without a controller block the drain unless
//! `--delete-emptydir-data` or `--force`, and `--disable-eviction` (only by that name) deletes
//! pods instead of evicting them, so no PodDisruptionBudget is asked: the run and its summary
//! warn about it.
//!
//! On the test apiserver (`scripts/testenv.sh up DIR`, `scripts/seed-demo-cluster.sh DIR`), with
//! sandboxes standing in for the nodes, as `scripts/run-examples.sh` runs it:
//!
//! ```text
//! scripts/demo-sandboxes.sh /tmp/sb DIR demo-cp-1 demo-w-1 demo-w-2
//! cargo run --example apply -- --kubeconfig DIR/kubeconfig --executor local --sandbox /tmp/sb \
//!   --target 1.30 --date 2025-06-20 --drain-grace-period 0
//! ```
//!
//! # The replace strategy: a node provider
//!
//! `--strategy replace` upgrades the control plane in place, then joins a new node at the new
//! version for each worker (named after it: `w-1-v1-30-14`), drains the old one and removes it.
//! The simulator makes and deletes its own nodes; with the ssh, local and pod executors the
//! machines come from your own commands, run on this machine with `sh -c`:
//! `--provider-create CMD` and `--provider-remove CMD`, and `--provider-find CMD` so that a
//! resumed run can tell whether a crash left a node half made (without it such a run halts and
//! asks you). A plan that creates or removes nodes without them is refused before anything
//! runs. The commands read what to do from `KUPGRADE_*` variables (the new node's name, its
//! template node, version, roles, labels as JSON, OS family, zone, the cluster's name), never
//! from their command line; create prints `{"name": NODE, "ssh": {"host": ..., "port": ...,
//! "user": ...}}` on stdout (the SSH executor reaches the new node there), find prints
//! `{"exists": true}` or `{"exists": false}`, and logs go to stderr;
//! `kupgrade_exec::provider` documents the contract. Each command runs under a timeout
//! (`--provider-create-timeout`, `--provider-find-timeout`, `--provider-remove-timeout`, in
//! seconds), and a created node has `--provider-join-timeout` seconds to be Ready at its
//! version. On the test apiserver, `scripts/demo-provider.sh` makes a sandbox per new node and
//! registers it as its kubelet would, as `scripts/run-examples.sh` runs it:
//!
//! ```text
//! scripts/demo-sandboxes.sh /tmp/sb-replace DIR demo-cp-1 demo-w-1 demo-w-2
//! cargo run --example apply -- --kubeconfig DIR/kubeconfig --executor local --sandbox /tmp/sb-replace \
//!   --target 1.30 --date 2025-06-20 --drain-grace-period 0 --strategy replace \
//!   --provider-create 'scripts/demo-provider.sh /tmp/sb-replace' \
//!   --provider-find 'scripts/demo-provider.sh /tmp/sb-replace' \
//!   --provider-remove 'scripts/demo-provider.sh /tmp/sb-replace'
//! ```
//!
//! # Executors
//!
//! - `--executor ssh` reaches each node over OpenSSH (one connection per node, strict host
//!   keys, `--ssh-user`, `--ssh-key`, `--known-hosts`).
//! - `--executor pod` (needs `--kubeconfig`) runs each node command in a short-lived
//!   privileged pod pinned to the node (`--pod-namespace`, `--pod-image`; permissions and
//!   admission in `examples/rbac/node-command.yaml`). The pod runner carries a command's
//!   standard input (the repository file the plan writes with `tee`) base64-encoded in the
//!   pod's shell line, up to 64 KiB. On the test apiserver, `scripts/demo-kubelet.sh` answers the command pods in
//!   the demo sandboxes.
//! - `--executor local` runs every node's commands on this machine inside per-node sandbox
//!   directories (`--sandbox DIR`: node `N` runs in `DIR/N` with `DIR/N/bin` as its whole
//!   `PATH`, a strict sandbox: a program it lacks is not found, never this machine's own);
//!   `scripts/demo-sandboxes.sh` builds sandboxes that emulate kubeadm nodes against a test
//!   API server.
//!
//! # With `--kubeconfig`: a live cluster
//!
//! With `--kubeconfig` (and `--context`) the cluster's state is read through the Kubernetes
//! API (as the `discover` example reads it), and the cluster operations go through the API too:
//! cordon, a drain through the Eviction API that honours PodDisruptionBudgets
//! (`--drain-grace-period`, `--drain-timeout`, and the other drain options), uncordon, a watch for Ready at the new kubelet
//! version, and re-reading the state for the drift checks between steps. Permissions:
//! `examples/rbac/drain.yaml`. `--dry-run` reads the cluster and changes nothing. A step
//! that fails is retried (`--attempts`), then the run halts; `--resume` (with the same
//! `--kubeconfig` and executor flags, as the summary prints them) goes on from the journal.
//!
//! Nodes in the API carry no SSH address. With `--executor ssh`, each node's target comes from
//! the `ssh:` fields of the node of the same name in a `--cluster` inventory given beside
//! `--kubeconfig` (only its `ssh:` fields are used; versions come from the API). With
//! `--ssh-node-names`, nodes without such an entry are reached at their node name (as
//! `~/.ssh/config` or DNS resolves it). A node with neither stops the run before anything
//! starts, with an error naming it.
//!
//! # Without `--kubeconfig`
//!
//! The state comes from the `--cluster` inventory, and the ssh and local executors run the
//! cluster operations with `kubectl --kubeconfig /etc/kubernetes/admin.conf` on the first
//! control-plane node (`--kubectl-node`), through `kupgrade_exec::KubectlOps`.
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kupgrade_core::ClusterState;
use kupgrade_core::lifecycle::ReleaseCalendar;
use kupgrade_core::plan::{PlanRequest, UpgradePlan};
use kupgrade_core::ports::{Force, LeaseClaim, LeaseHolder, LeaseStore, Taking};
use kupgrade_core::readiness::Evidence;
use kupgrade_core::run::{Finished, Record, Resolution, Run};
use kupgrade_exec::driver::{
    Driver, JournalSink, NoJournal, NodeLocks, StopHandle, SurvivorPolicy, stop_channel,
};
use kupgrade_exec::events::{DEFAULT_OUTPUT_LINES, event_channel};
use kupgrade_exec::report::{ReportingJournal, RunReport};
use kupgrade_exec::{HeldLease, Journal, NodeLease};
use kupgrade_kube::{Discovery, KubeClusterOps, KubeLease};

#[path = "apply/args.rs"]
pub(crate) mod args;
#[path = "apply/backend.rs"]
mod backend;
#[path = "apply/display.rs"]
mod display;
#[path = "common/gates.rs"]
#[allow(dead_code)] // shared by the examples, each uses a part
pub(crate) mod gates;
#[path = "apply/hop_check.rs"]
mod hop_check;
#[path = "common/inventory.rs"]
mod inventory;
#[path = "common/planning.rs"]
pub(crate) mod planning;
#[path = "apply/provider.rs"]
pub(crate) mod provider;
#[path = "common/readiness.rs"]
#[allow(dead_code)] // shared by the examples, each uses a part
pub(crate) mod readiness;
#[path = "common/releases.rs"]
#[allow(dead_code)] // shared by the examples, each uses a part
pub(crate) mod releases;
#[path = "apply/resume.rs"]
mod resume;
#[path = "common/reviewed.rs"]
#[allow(dead_code)] // shared by the examples, each uses a part
pub(crate) mod reviewed;
#[path = "apply/session.rs"]
pub(crate) mod session;
#[path = "apply/summary.rs"]
mod summary;

use args::{Args, Executor, OnSurvivor};
use backend::{Backend, Source};
use display::Display;
use planning::PolicyFiles;
use session::Beside;
use summary::summary;

fn main() -> anyhow::Result<()> {
    let args = Args::from_command_line();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only for a person watching: a log file or a pipe gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Some(format) = &args.rollback_plan {
        return rollback_plan(&args, format);
    }
    if let Some(file) = &args.report_only {
        return report_only(&args, file);
    }
    let virtual_time = args.executor == Executor::Sim && args.sim_speed <= 0.0;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(virtual_time)
        .build()?;
    match runtime.block_on(apply(args))? {
        Finished::Completed => Ok(()),
        Finished::Cancelled => std::process::exit(130),
        Finished::Halted(_) => std::process::exit(2),
        _ => std::process::exit(1),
    }
}

/// `--rollback-plan`: what undoing the run in `--journal` means where it stopped, printed in
/// `format`. Reads the journal and the plan beside it; changes nothing.
fn rollback_plan(args: &Args, format: &str) -> anyhow::Result<()> {
    let path = args
        .journal
        .as_deref()
        .context("--rollback-plan needs --journal")?;
    let records = peek_journal(path, true)?;
    let beside = Beside::of(path);
    let plan = Arc::new(beside.read_plan()?);
    let run = Run::resume(
        plan.clone(),
        beside.read_policy()?.policy(),
        args.run_options(),
        &records,
    )?;
    let started = |step: &kupgrade_core::plan::StepId, node: Option<&kupgrade_core::NodeName>| {
        let task = kupgrade_core::run::TaskId::new(step.clone(), node.cloned());
        run.is_done(&task) || run.is_unsure(&task)
    };
    let r = kupgrade_core::plan::rollback::rollback(&plan, run.run_id(), started);
    let text = match format {
        "markdown" => r.markdown(),
        "json" => r.to_json(),
        "yaml" => r.to_yaml(),
        _ => r.text(),
    };
    print!("{text}");
    Ok(())
}

/// `--report-only FILE`: the HTML report of the run in `--journal` (going on or over), from
/// the journal and the plan beside it; changes nothing but FILE.
fn report_only(args: &Args, file: &Path) -> anyhow::Result<()> {
    let path = args
        .journal
        .as_deref()
        .context("--report-only needs --journal")?;
    // Read without the lock: a run may be writing it.
    let recovered = Journal::<Record>::read(path)?;
    let plan = Arc::new(Beside::of(path).read_plan()?);
    let resume = resume::line(&args.resume_words);
    RunReport::write_once(file, plan, &recovered.records, Some(&resume))?;
    eprintln!(
        "wrote {} ({} journal records)",
        file.display(),
        recovered.records.len()
    );
    Ok(())
}

/// The cluster to plan from (an inventory, or the live cluster), a name for messages, and
/// where the executors get the state from.
pub(crate) async fn load_cluster(args: &Args) -> anyhow::Result<(ClusterState, String, Source)> {
    let Some(path) = &args.kubeconfig else {
        let (cluster, name) = inventory::read(args.cluster.as_deref())?;
        return Ok((cluster, name, Source::Inventory));
    };
    let overlay = match args.cluster.as_deref() {
        Some(file) => Some(Box::new(inventory::read(Some(file))?.0)),
        None => None,
    };
    let client = kupgrade_kube::connect(Some(path), args.context.as_deref()).await?;
    let discovery = Discovery::new(client.clone());
    let cluster = discovery
        .run()
        .await
        .with_context(|| format!("discovering the cluster through {}", path.display()))?;
    let name = format!(
        "{} (live, {})",
        cluster.name.as_deref().unwrap_or("cluster"),
        path.display()
    );
    let ops = Box::new(KubeClusterOps::new(client).with_discovery(discovery));
    Ok((cluster, name, Source::Live { ops, overlay }))
}

/// What the run carries out: the plan, and the skew policy it checks before every step.
pub(crate) struct Work {
    pub(crate) plan: UpgradePlan,
    pub(crate) policy: PolicyFiles,
}

/// Planning options are refused where no plan is made: beside `--plan FILE` (the reviewed plan
/// runs as it is) and with `--resume` (the run goes on with the plan it started with).
/// `--policy` is the exception: it names the policy the run checks, and must match.
fn refuse_planning_options(args: &Args) -> anyhow::Result<()> {
    let (with, why) = if args.plan.is_some() {
        (
            "--plan",
            "the reviewed plan runs as it is; plan again with them and review the new plan",
        )
    } else if args.resume {
        (
            "--resume",
            "the run goes on with the plan it started with, kept beside its journal",
        )
    } else {
        return Ok(());
    };
    let refused: Vec<&str> = args
        .planning_given
        .iter()
        .map(String::as_str)
        .filter(|f| *f != "--policy")
        .chain(args.releases.given())
        .collect();
    if !refused.is_empty() {
        bail!("{} cannot be given with {with}: {why}", refused.join(", "));
    }
    Ok(())
}

/// The plan and policy of this session: the ones the journal's run started with (`--resume`),
/// the reviewed plan (`--plan`), or a new plan.
pub(crate) fn work(
    args: &Args,
    calendar: &ReleaseCalendar,
    cluster: &ClusterState,
    source: &str,
    evidence: Option<&Evidence>,
) -> anyhow::Result<Work> {
    let given = args.planning.policy.read()?;
    if let (true, Some(journal)) = (args.resume, &args.journal) {
        let beside = Beside::of(journal);
        let recorded = beside.read_policy()?;
        let same = given
            .0
            .iter()
            .map(|f| &f.rules)
            .eq(recorded.0.iter().map(|f| &f.rules));
        if !args.planning.policy.files.is_empty() && !same {
            bail!(
                "the run in {} checks {}, not {}: resume with the policy it started with (or leave --policy out)",
                journal.display(),
                recorded.describe(),
                given.describe()
            );
        }
        return Ok(Work {
            plan: beside.read_plan()?,
            policy: recorded,
        });
    }
    if let Some(file) = &args.plan {
        let plan = reviewed::read(file)?;
        let name = given.policy().name().to_string();
        if name != plan.policy {
            bail!(
                "{file} was planned with the {} policy, and this run would check the {name} policy ({}): give the --policy files it was planned with",
                plan.policy,
                given.describe()
            );
        }
        let differences = reviewed::differences(&plan, cluster);
        if !differences.is_empty() {
            bail!(
                "{file} does not fit {source} any more; plan again and review the new plan:\n  {}",
                differences.join("\n  ")
            );
        }
        return Ok(Work {
            plan,
            policy: given,
        });
    }
    let gates = args.planning.gates.load()?;
    let policy = given.policy();
    let request = PlanRequest::new(args.planning.target.clone(), args.planning.date())
        .calendar(calendar)
        .policy(policy.as_ref())
        .options(args.planning.options());
    let mut plan = if args.planning.batch.is_auto() {
        // `--batch auto` cuts batches from the evidence's pods and budgets.
        request
            .workloads(readiness::workloads(evidence)?)
            .plan(cluster)
    } else {
        request.plan(cluster)
    }
    .with_context(|| format!("planning the upgrade of {source}"))?;
    gates::insert(&mut plan, &gates);
    Ok(Work {
        plan,
        policy: given,
    })
}

/// The records of the journal at `path`, looked at without changing it: a run that is refused
/// leaves the file as it found it. A locked or corrupt journal is an error, also for a dry run.
/// With `resume`, a journal that records no run (missing, empty, a torn line only) is refused:
/// going on from nothing would start the plan over, its backups and snapshots included.
fn peek_journal(path: &Path, resume: bool) -> anyhow::Result<Vec<Record>> {
    let recovered = if resume {
        Journal::<Record>::peek_to_resume(path)?
    } else {
        match Journal::<Record>::peek(path)? {
            Some(recovered) => recovered,
            None => return Ok(Vec::new()),
        }
    };
    if let Some(torn) = &recovered.torn {
        eprintln!("note: {}: {torn}; ignored", path.display());
    }
    Ok(recovered.records)
}

/// Opens the journal for the run that now goes on (cutting off a torn last line); it must
/// still hold the `expected` records looked at before.
fn open_journal(path: &Path, expected: usize) -> anyhow::Result<Journal<Record>> {
    let (journal, recovered) = Journal::<Record>::open(path)?;
    if recovered.records.len() != expected {
        bail!(
            "journal {} changed while this run started ({} records, then {}): is another run using it? Start again",
            path.display(),
            expected,
            recovered.records.len()
        );
    }
    Ok(journal)
}

/// Where this run's lease is kept: the cluster's Lease object with --kubeconfig, a file on
/// the first control-plane node without (in its sandbox for --executor local); none for a dry
/// run or the simulated cluster.
fn lease_store(
    args: &Args,
    cluster: &ClusterState,
    source: &Source,
    backend: &Backend,
) -> anyhow::Result<Option<Arc<dyn LeaseStore>>> {
    Ok(match (source, args.dry_run, args.executor) {
        (_, true, _) | (Source::Inventory, _, Executor::Sim) => None,
        (Source::Live { ops, .. }, false, _) => {
            Some(Arc::new(KubeLease::new(ops.client().clone())))
        }
        (Source::Inventory, false, _) => {
            let node = cluster
                .control_plane()
                .next()
                .map(|n| n.name.clone())
                .context("the inventory has no control-plane node to hold the run lease")?;
            let mut store = NodeLease::new(backend.runner.clone(), node.clone());
            if let (Executor::Local, Some(root)) = (args.executor, &args.sandbox) {
                // Absolute: the node's commands run in its sandbox directory.
                let dir = std::path::absolute(root)?
                    .join(node.as_str())
                    .join("var/lib/kupgrade");
                store = store.dir(dir.to_string_lossy());
            }
            Some(Arc::new(store))
        }
    })
}

/// This machine's host name.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this host".into())
}

/// How long a command waits for the node-side lock of its step held by another copy.
const NODE_LOCK_WAIT: Duration = Duration::from_secs(60);

/// Who holds this run's node-side locks, for the next copy's error: host, process, journal.
fn holder(args: &Args) -> String {
    let host = host();
    let journal = match &args.journal {
        Some(p) => format!("journal {}", p.display()),
        None => "no journal".into(),
    };
    format!(
        "kupgrade apply (pid {} on {host}, {journal})",
        std::process::id()
    )
}

/// Ctrl-C: first finish the running steps, then abort. SIGTERM (CI cancellation, `timeout`,
/// systemd) and SIGHUP (the terminal or the SSH session closed) abort at once, as the second
/// Ctrl-C does: the running commands are killed and recorded as interrupted, the session as
/// cancelled.
fn stop_on_signals(handle: StopHandle) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let ctrl_c = handle.clone();
    tokio::spawn(async move {
        let mut presses = 0;
        while tokio::signal::ctrl_c().await.is_ok() {
            presses += 1;
            if presses == 1 {
                eprintln!("\nstopping once the running steps finish (Ctrl-C again to abort them)");
                ctrl_c.finish_current();
            } else {
                eprintln!("\naborting the running steps");
                ctrl_c.abort();
            }
        }
    });
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                Some(()) = term.recv() => "SIGTERM",
                Some(()) = hup.recv() => "SIGHUP",
                else => return,
            };
            // The terminal may be gone (SIGHUP): a failed write must not end the process.
            let _ = writeln!(std::io::stderr(), "\n{name}: aborting the running steps");
            handle.abort();
        }
    });
    Ok(())
}

/// `--sim-speed 0` runs the simulation in virtual time, where a real command's wait is over
/// at once: hooks and command gates (real commands on this machine) cannot run there.
fn refuse_real_commands_in_virtual_time(args: &Args, plan: &UpgradePlan) -> anyhow::Result<()> {
    if args.executor != Executor::Sim || args.sim_speed > 0.0 {
        return Ok(());
    }
    let real = plan.steps.iter().find(|s| match &s.action {
        kupgrade_core::plan::Action::Hook { .. } => true,
        kupgrade_core::plan::Action::Gate { gate, .. } => {
            matches!(
                gate.check(),
                Some(kupgrade_core::gate::GateCheck::Command(_))
            )
        }
        _ => false,
    });
    match real {
        Some(step) => bail!(
            "step {} runs a real command, and --sim-speed 0 simulates in virtual time, where a real command cannot be waited for: give --sim-speed a rate (100000: a fast simulation on the real clock)",
            step.id
        ),
        None => Ok(()),
    }
}

/// Plans (or reads the plan), then runs it; returns how the run ended.
pub(crate) async fn apply(args: Args) -> anyhow::Result<Finished> {
    refuse_planning_options(&args)?;
    let (cluster, source_name, source) = load_cluster(&args).await?;

    // The journal is looked at first; nothing changes until the run really goes on.
    let records = match &args.journal {
        Some(path) => peek_journal(path, args.resume)?,
        None => Vec::new(),
    };
    if let (Some(path), false, false) = (&args.journal, args.resume, records.is_empty()) {
        bail!(
            "journal {} already records a run ({} records): pass --resume to go on with it, or choose another --journal",
            path.display(),
            records.len()
        );
    }
    // Release data only where a plan is made (refused beside --resume and --plan).
    let calendar = if args.resume || args.plan.is_some() {
        ReleaseCalendar::embedded().clone()
    } else {
        let from = cluster.apiserver_min().map(|v| v.minor());
        args.releases.load(from).await?
    };
    // Readiness evidence: `--evidence FILE`, else gathered live with --kubeconfig (also on
    // --resume: the catalogue is evaluated again on what the cluster shows now).
    let client = match &source {
        Source::Live { ops, .. } => Some(ops.client()),
        Source::Inventory => None,
    };
    let mut evidence = args.evidence.load(client).await?;
    let work = work(&args, &calendar, &cluster, &source_name, evidence.as_ref())?;
    args.releases.print_warnings(&work.plan.warnings);
    let plan = Arc::new(work.plan);
    refuse_real_commands_in_virtual_time(&args, &plan)?;
    let mut run = Run::resume(
        plan.clone(),
        work.policy.policy(),
        args.run_options(),
        &records,
    )?;
    provider::refuse_without(&args.provider, args.executor == Executor::Sim, &run)?;
    // The ports (nothing runs yet).
    let backend = Backend::new(&args, &cluster, &source).await?;
    // `--gather-nodes`: what only the nodes can tell, read through the executor.
    if args.gather_nodes {
        if args.executor == Executor::Sim {
            bail!(
                "--gather-nodes reads the nodes through the executor, and the sim executor has no nodes to read: choose --executor ssh, pod or local, or leave --gather-nodes out"
            );
        }
        let sandbox = match args.executor {
            Executor::Local => args.sandbox.clone(),
            _ => None,
        };
        let root = |node: &kupgrade_core::NodeName| match &sandbox {
            Some(dir) => dir.join(node.as_str()).display().to_string(),
            None => String::new(),
        };
        let gathered = evidence.get_or_insert_with(Default::default);
        readiness::gather_nodes(gathered, backend.runner.as_ref(), &cluster, root).await?;
    }
    // Readiness: errors block the start (and a resume) unless accepted by check and subject.
    let findings = evidence.as_ref().map(|e| readiness::evaluate(&plan, e));
    if let Some(report) = &findings {
        let mut accepted: Vec<String> = run.accepted_findings().map(String::from).collect();
        accepted.extend(args.accept.iter().cloned());
        let taken = readiness::gate(report, &accepted)?;
        let new: Vec<(String, String)> = report
            .errors()
            .filter(|f| taken.contains(&f.key()) && !run.accepted_findings().any(|k| k == f.key()))
            .map(|f| (f.key(), f.to_string()))
            .collect();
        run.accept_findings(new);
    }
    if plan.options.drain.disable_eviction {
        eprintln!(
            "WARNING: --disable-eviction: drains delete pods without asking their PodDisruptionBudgets"
        );
    }
    let mut journal = match (&args.journal, args.dry_run) {
        (Some(path), false) => Some(open_journal(path, records.len())?),
        _ => None,
    };
    if let (Some(path), Some(_), false) = (&args.journal, &journal, args.resume) {
        Beside::of(path).write(&plan, &work.policy)?;
    }
    // The run's page, from the journal's records so far; the resume command only where
    // there is a journal to resume.
    let mut report = args.report.as_ref().map(|file| {
        let mut r = RunReport::new(file, plan.clone(), &records);
        if let Some(f) = &findings {
            r = r.readiness(f.clone());
        }
        match &args.journal {
            Some(_) => r.resume_command(resume::line(&args.resume_words)),
            None => r,
        }
    });
    if let Some(report) = &mut report {
        // Written once now, so a path that cannot be written stops the run before it starts.
        report.write()?;
    }
    for (list, resolution) in [
        (&args.mark_done, Resolution::MarkDone),
        (&args.retry, Resolution::Retry),
    ] {
        for text in list {
            let task = run.find_task(text)?;
            let out = run.resolve(&task, resolution, jiff::Timestamp::now())?;
            if let Some(j) = &mut journal {
                for r in &out.records {
                    j.append(r)?;
                }
            }
            if let Some(report) = &mut report {
                for r in &out.records {
                    report.push(r)?;
                }
            }
        }
    }

    let (stop, signal) = stop_channel();
    let mut driver = Driver::new(backend.runner.clone(), backend.ops.clone())
        .stop_on(signal)
        .dry_run(args.dry_run);
    if let Some(p) = &backend.provider {
        driver = driver.provider(p.clone());
    }
    // Gates read the live cluster through the API, or the simulated one; without either
    // (an inventory over SSH or locally) rollout, condition and regression gates halt as
    // unsupported, and command gates still run.
    let probe: Option<Arc<dyn kupgrade_core::ports::GateProbe>> = match (&source, &backend.sim) {
        (Source::Live { ops, .. }, _) => Some(Arc::new(kupgrade_kube::KubeGateProbe::new(
            ops.client().clone(),
        ))),
        (_, Some(sim)) => Some(Arc::new(sim.clone())),
        _ => None,
    };
    if let Some(p) = probe {
        driver = driver.gates(p);
    }
    // The readiness catalogue again before each hop after the first, on evidence read anew.
    if evidence.is_some() {
        let mut accepted: std::collections::BTreeSet<String> =
            run.accepted_findings().map(String::from).collect();
        accepted.extend(args.accept.iter().cloned());
        let sandbox = match args.executor {
            Executor::Local => args.sandbox.clone(),
            _ => None,
        };
        driver = driver.before_each_hop(Arc::new(hop_check::ReadinessBeforeHop {
            evidence: args.evidence.clone(),
            client: client.cloned(),
            nodes: args
                .gather_nodes
                .then(|| (backend.runner.clone(), cluster.clone(), sandbox)),
            accepted,
        }));
    }
    if args.executor != Executor::Sim {
        // No two copies of a step overlap on a node, whoever started them.
        driver = driver.node_locks(NodeLocks::new(holder(&args), NODE_LOCK_WAIT));
    }
    let bound = Duration::from_secs(args.survivor_timeout);
    driver = driver.on_survivor(match args.on_survivor {
        OnSurvivor::Wait => SurvivorPolicy::Wait(bound),
        OnSurvivor::Stop => SurvivorPolicy::Stop(bound),
    });
    // Bounded: output lines a slow display cannot keep up with are dropped and counted.
    let (tx, rx) = event_channel(DEFAULT_OUTPUT_LINES);
    let driver = driver.events(tx);
    stop_on_signals(stop.clone())?;

    // One run drives a cluster: with --kubeconfig, through its run Lease; without, through a
    // lease file on the first control-plane node. Taken before the first step (the
    // pre-flight) and journaled as the session opens; a lost lease aborts the run.
    let lease = match lease_store(&args, &cluster, &source, &backend)? {
        None => None,
        Some(store) => {
            let id = run.begin(jiff::Timestamp::now()).to_string();
            let claim = LeaseClaim::new(
                LeaseHolder::new(&id, &host(), std::process::id()),
                run.fingerprint(),
            )
            .resuming(args.resume && !records.is_empty())
            .force(
                match args.force_lease.as_deref() {
                    None => Force::No,
                    Some("") => Force::Expired,
                    Some(run) => Force::Run(run.to_string()),
                },
                "--force-lease",
            )
            .duration(Duration::from_secs(args.lease_duration));
            let lost = stop.clone();
            let held = HeldLease::acquire(store, claim, move |e| {
                let _ = writeln!(std::io::stderr(), "\n{e}: aborting the running steps");
                lost.abort();
            })
            .await?;
            if let Taking::TakenOver { from } | Taking::Broken { from } = held.taking() {
                eprintln!(
                    "note: took {} over from run {} (plan {}, expired at {})",
                    held.place(),
                    from.holder,
                    from.fingerprint,
                    from.expires()
                );
            }
            run.lease_taken(
                held.place(),
                held.claim().holder.to_string(),
                held.taking().clone(),
            );
            Some(held)
        }
    };
    let display = Display::new(&args, &plan, &records);
    let watcher = tokio::spawn(display.watch(rx));
    let started = Instant::now();
    let outcome = match (&mut journal, &mut report) {
        (Some(j), Some(r)) => {
            let mut sink = ReportingJournal::new(j, r);
            driver.drive(&mut run, &mut sink).await
        }
        (None, Some(r)) => {
            let mut none = NoJournal;
            let mut sink = ReportingJournal::new(&mut none, r);
            driver.drive(&mut run, &mut sink).await
        }
        (Some(j), None) => driver.drive(&mut run, j as &mut dyn JournalSink).await,
        (None, None) => driver.drive(&mut run, &mut NoJournal).await,
    };
    // The last page, also when the driver gave up (it then shows the session as not ended).
    if let Some(report) = &mut report {
        match report.finish() {
            Ok(()) => eprintln!("report: {}", report.path().display()),
            Err(e) => eprintln!("WARNING: {e}"),
        }
    }
    drop(driver);
    if let Some(lease) = lease
        && let Err(e) = lease.release().await
    {
        eprintln!("WARNING: {e}: the run lease expires on its own");
    }
    let counts = watcher.await?;
    let outcome = outcome?;
    summary(
        &args,
        &plan,
        &run,
        &outcome,
        counts,
        started.elapsed(),
        &backend,
    )
    .await;
    Ok(outcome)
}
