//! `cargo run --example apply`: carries an upgrade plan out, with a progress bar per node.
//!
//! With no arguments it upgrades the bundled HA sample (`clusters/ha.yaml`, 1.28) to the
//! newest stable release on a simulated cluster (`--executor sim`), in simulated time
//! (`--sim-speed`: simulated seconds per real second; 0 runs as fast as it can), and prints a
//! summary. Ctrl-C once lets the running steps finish; twice aborts them. Either way the
//! journal stays consistent and `--resume` goes on.
//!
//! ```text
//! cargo run --example apply -- --target 1.30 --batch 2
//! cargo run --example apply -- --dry-run --target 1.29
//! cargo run --example apply -- --journal /tmp/up.journal --sim-state /tmp/up.sim.json   # Ctrl-C, then:
//! cargo run --example apply -- --journal /tmp/up.journal --sim-state /tmp/up.sim.json --resume
//! cargo run --example apply -- --executor ssh --cluster my-hosts.yaml --journal up.journal
//! cargo run --example apply -- --kubeconfig admin.conf --executor ssh --cluster my-hosts.yaml
//! cargo run --example apply -- --kubeconfig admin.conf --executor pod --journal up.journal
//! cargo run --example apply -- --kubeconfig admin.conf --executor ssh --ssh-node-names --dry-run
//! cargo run --example apply -- --live-releases --release-base-url https://mirror.example/release
//! ```
//!
//! Release data comes from the same options as in the `plan` example (`--calendar`,
//! `--kubeadm-versions`, `--live-releases`); the plan's warnings (a calendar too old for the
//! date, hops past the kubeadm version table) are printed before the run and in the summary.
//!
//! On the test apiserver (`scripts/testenv.sh up DIR`, `scripts/seed-demo-cluster.sh DIR`), with
//! sandboxes standing in for the nodes, as `scripts/run-examples.sh` runs it:
//!
//! ```text
//! scripts/demo-sandboxes.sh /tmp/sb DIR demo-cp-1 demo-w-1 demo-w-2
//! cargo run --example apply -- --kubeconfig DIR/kubeconfig --executor local --sandbox /tmp/sb \
//!   --target 1.30 --allow-unsupported-target --drain-grace-period 0
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
//!   directories (`--sandbox DIR`: node `N` runs in `DIR/N` with `DIR/N/bin` first in `PATH`);
//!   `scripts/demo-sandboxes.sh` builds sandboxes that emulate kubeadm nodes against a test
//!   API server.
//!
//! # With `--kubeconfig`: a live cluster
//!
//! With `--kubeconfig` (and `--context`) the cluster's state is read through the Kubernetes
//! API (as the `discover` example reads it), and the cluster operations go through the API too:
//! cordon, a drain through the Eviction API that honours PodDisruptionBudgets
//! (`--drain-grace-period`, `--drain-timeout`), uncordon, a watch for Ready at the new kubelet
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
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use kupgrade_core::ClusterState;
use kupgrade_core::plan::{PlanOptions, PlanRequest, UpgradePlan};
use kupgrade_core::ports::DrainOptions;
use kupgrade_core::run::{Finished, Record, Resolution, RetryPolicy, Run, RunOptions};
use kupgrade_core::skew::UpstreamPolicy;
use kupgrade_exec::Journal;
use kupgrade_exec::driver::{Driver, JournalSink, NoJournal, stop_channel};
use kupgrade_kube::{Discovery, KubeClusterOps};

#[path = "apply/args.rs"]
mod args;
#[path = "apply/backend.rs"]
mod backend;
#[path = "apply/display.rs"]
mod display;
#[path = "common/releases.rs"]
mod releases;
#[path = "apply/summary.rs"]
mod summary;

use args::{Args, Executor};
use backend::{Backend, Source};
use display::Display;
use summary::summary;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let virtual_time = args.executor == Executor::Sim && args.sim_speed <= 0.0;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(virtual_time)
        .build()?;
    runtime.block_on(apply(args))
}

/// The bundled HA sample, upgraded when neither --cluster nor --kubeconfig is given.
const DEFAULT_CLUSTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/clusters/ha.yaml");

fn read_inventory(file: &str) -> anyhow::Result<ClusterState> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    Ok(kupgrade_core::inventory::parse(&text, file)?)
}

/// The cluster to plan from (an inventory, or the live cluster), a name for messages, and
/// where the executors get the state from.
async fn load_cluster(args: &Args) -> anyhow::Result<(ClusterState, String, Source)> {
    let Some(path) = &args.kubeconfig else {
        let file = args.cluster.as_deref().unwrap_or(DEFAULT_CLUSTER);
        return Ok((read_inventory(file)?, file.to_string(), Source::Inventory));
    };
    let overlay = args
        .cluster
        .as_deref()
        .map(read_inventory)
        .transpose()?
        .map(Box::new);
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

async fn apply(args: Args) -> anyhow::Result<()> {
    let (cluster, source_name, source) = load_cluster(&args).await?;

    // The journal and the plan it belongs to.
    let plan_file = args
        .journal
        .as_ref()
        .map(|j| PathBuf::from(format!("{}.plan.json", j.display())));
    let (mut journal, records): (Option<Journal<Record>>, Vec<Record>) = match (
        &args.journal,
        args.dry_run,
    ) {
        (Some(path), false) => {
            let (j, recovered) = Journal::<Record>::open(path)?;
            if let Some(torn) = &recovered.torn {
                eprintln!("note: {}: {torn}; ignored", path.display());
            }
            if !args.resume && !recovered.records.is_empty() {
                bail!(
                    "journal {} already records a run ({} records): pass --resume to go on with it, or choose another --journal",
                    path.display(),
                    recovered.records.len()
                );
            }
            (Some(j), recovered.records)
        }
        (Some(path), true) => (
            None,
            Journal::<Record>::read(path)
                .map(|r| r.records)
                .unwrap_or_default(),
        ),
        (None, _) => (None, Vec::new()),
    };
    let plan: UpgradePlan = match (&plan_file, args.resume) {
        (Some(file), true) => {
            let text = std::fs::read_to_string(file).with_context(|| {
                format!("reading the plan the run started with ({})", file.display())
            })?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?
        }
        _ => {
            let date = args.date.unwrap_or_else(|| jiff::Zoned::now().date());
            let options = PlanOptions {
                strategy: args.strategy,
                batch: args.batch,
                max_surge: args.max_surge,
                allow_unsupported_target: args.allow_unsupported_target,
                drain: DrainOptions {
                    grace_period_seconds: args.drain_grace_period,
                    timeout_seconds: args.drain_timeout,
                    ..DrainOptions::default()
                },
                ..PlanOptions::default()
            };
            let from = cluster.apiserver_min().map(|v| v.minor());
            let calendar = args.releases.load(from).await?;
            let plan = PlanRequest::new(args.target.clone(), date)
                .calendar(&calendar)
                .options(options)
                .plan(&cluster)
                .with_context(|| format!("planning the upgrade of {source_name}"))?;
            if let (Some(file), false) = (&plan_file, args.dry_run) {
                std::fs::write(file, serde_json::to_string_pretty(&plan)?)
                    .with_context(|| format!("writing {}", file.display()))?;
            }
            plan
        }
    };
    args.releases.print_warnings(&plan.warnings);
    let plan = Arc::new(plan);
    let mut run = Run::resume(
        plan.clone(),
        Arc::new(UpstreamPolicy::new()),
        RunOptions {
            max_parallel: args.max_parallel,
            retry: RetryPolicy {
                max_attempts: args.attempts.max(1),
                ..RetryPolicy::default()
            },
        },
        &records,
    )?;
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
        }
    }

    // The ports.
    let backend = Backend::new(&args, &cluster, plan.as_ref(), &source).await?;
    let (stop, signal) = stop_channel();
    let mut driver = Driver::new(backend.runner.clone(), backend.ops.clone())
        .stop_on(signal)
        .dry_run(args.dry_run);
    if let Some(p) = &backend.provider {
        driver = driver.provider(p.clone());
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = driver.events(tx);

    // Ctrl-C: first finish the running steps, then abort.
    let handle = stop.clone();
    tokio::spawn(async move {
        let mut presses = 0;
        while tokio::signal::ctrl_c().await.is_ok() {
            presses += 1;
            if presses == 1 {
                eprintln!("\nstopping once the running steps finish (Ctrl-C again to abort them)");
                handle.finish_current();
            } else {
                eprintln!("\naborting the running steps");
                handle.abort();
            }
        }
    });

    let display = Display::new(&args, &plan, &records);
    let watcher = tokio::spawn(display.watch(rx));
    let started = Instant::now();
    let outcome = match &mut journal {
        Some(j) => driver.drive(&mut run, j as &mut dyn JournalSink).await,
        None => driver.drive(&mut run, &mut NoJournal).await,
    };
    drop(driver);
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
    match outcome {
        Finished::Completed => Ok(()),
        Finished::Cancelled => std::process::exit(130),
        Finished::Halted(_) => std::process::exit(2),
        _ => std::process::exit(1),
    }
}
