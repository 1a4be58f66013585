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
//! ```
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
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use jiff::civil::Date;
use kupgrade_core::plan::{BatchSize, PlanOptions, PlanRequest, Strategy, Target, UpgradePlan};
use kupgrade_core::ports::{DrainOptions, shell_quote};
use kupgrade_core::run::{
    Event, Finished, Record, RecordKind, Resolution, RetryPolicy, Run, RunOptions, TaskEnd, TaskId,
};
use kupgrade_core::skew::UpstreamPolicy;
use kupgrade_core::{ClusterState, KubeVersion, NodeName};
use kupgrade_exec::Journal;
use kupgrade_exec::driver::{Driver, JournalSink, NoJournal, stop_channel};
use kupgrade_kube::{Discovery, KubeClusterOps, PodRunner};

#[path = "apply/backend.rs"]
mod backend;

use backend::{Backend, Source};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Executor {
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
struct Args {
    /// The cluster inventory (YAML or JSON) [default: the bundled clusters/ha.yaml]. With
    /// --kubeconfig: only its nodes' `ssh:` fields are used, matched by node name.
    #[arg(long)]
    cluster: Option<String>,
    /// Upgrade the live cluster this kubeconfig reaches: state, cordon, drain, uncordon and
    /// the wait for Ready through the Kubernetes API.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// With --kubeconfig: the kubeconfig context (default: its current context).
    #[arg(long, requires = "kubeconfig")]
    context: Option<String>,
    /// Grace period of each evicted pod, in seconds (default: each pod's own).
    #[arg(long)]
    drain_grace_period: Option<u64>,
    /// Give up a drain after this many seconds.
    #[arg(long, default_value_t = 600)]
    drain_timeout: u64,
    /// The target: a version, a minor, `stable` or `latest`.
    #[arg(long, default_value = "stable")]
    target: Target,
    /// The date that decides which releases exist (default: today).
    #[arg(long)]
    date: Option<Date>,
    /// in-place or replace.
    #[arg(long, default_value = "in-place")]
    strategy: Strategy,
    /// Workers per batch: a count or a percentage.
    #[arg(long, default_value = "1")]
    batch: BatchSize,
    /// Replace strategy: new nodes beyond the old ones at once.
    #[arg(long, default_value_t = 1)]
    max_surge: u32,
    /// Accept a target past its end of life on the date.
    #[arg(long)]
    allow_unsupported_target: bool,
    /// Where the commands run.
    #[arg(long, value_enum, default_value = "sim")]
    executor: Executor,
    /// Print every command and operation instead of running it.
    #[arg(long)]
    dry_run: bool,
    /// The journal file (the plan is kept beside it, as JOURNAL.plan.json). Without one the
    /// run cannot be resumed.
    #[arg(long)]
    journal: Option<PathBuf>,
    /// Resume the run recorded in --journal (with the plan it started with).
    #[arg(long, requires = "journal")]
    resume: bool,
    /// Before resuming, mark this task done (`STEP` or `STEP on NODE`, as reports print it).
    #[arg(long, requires = "resume")]
    mark_done: Vec<String>,
    /// Before resuming, run this task again even if it is not safe to repeat.
    #[arg(long, requires = "resume")]
    retry: Vec<String>,
    /// Tasks in flight at once (default: the plan's largest batch).
    #[arg(long)]
    max_parallel: Option<usize>,
    /// Attempts of a failed step that is safe to repeat, the first included (1: stop at the
    /// first failure), before the run halts.
    #[arg(long, default_value_t = RetryPolicy::default().max_attempts)]
    attempts: u32,
    /// Print every event as a JSON line on stdout instead of progress bars.
    #[arg(long)]
    json_events: bool,
    /// sim: keep the simulated cluster in this file (loaded on --resume).
    #[arg(long)]
    sim_state: Option<PathBuf>,
    /// sim: simulated seconds per real second; 0 runs in virtual time, as fast as it can.
    #[arg(long, default_value_t = 3000.0)]
    sim_speed: f64,
    /// ssh: the user for nodes whose inventory names none.
    #[arg(long)]
    ssh_user: Option<String>,
    /// ssh: use only this private key.
    #[arg(long)]
    ssh_key: Option<PathBuf>,
    /// ssh: the known_hosts file (unknown host keys are refused).
    #[arg(long)]
    known_hosts: Option<PathBuf>,
    /// ssh with --kubeconfig: reach nodes that have no `ssh:` entry in --cluster at their
    /// node name.
    #[arg(long, requires = "kubeconfig")]
    ssh_node_names: bool,
    /// pod: the namespace of the command pods (it must admit privileged pods).
    #[arg(long, default_value = PodRunner::DEFAULT_NAMESPACE)]
    pod_namespace: String,
    /// pod: the image of the command pods (it must provide `nsenter`).
    #[arg(long, default_value = PodRunner::DEFAULT_IMAGE)]
    pod_image: String,
    /// ssh, local without --kubeconfig: the node whose kubectl runs the cluster operations
    /// (default: the first control-plane node).
    #[arg(long)]
    kubectl_node: Option<NodeName>,
    /// local: the directory holding one sandbox per node.
    #[arg(long, required_if_eq("executor", "local"))]
    sandbox: Option<PathBuf>,
}

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
            let plan = PlanRequest::new(args.target.clone(), date)
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

/// Progress bars, one per node, fed by the driver's events.
struct Display {
    mp: MultiProgress,
    bars: HashMap<Option<NodeName>, ProgressBar>,
    overall: ProgressBar,
    json: bool,
    dry_run: bool,
}

/// What the display saw.
#[derive(Default)]
struct Seen {
    retries: Vec<String>,
    operator: Vec<String>,
}

impl Display {
    fn new(args: &Args, plan: &UpgradePlan, records: &[Record]) -> Display {
        let visible = !args.json_events && !args.dry_run && std::io::stderr().is_terminal();
        let mp = MultiProgress::with_draw_target(if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let done: std::collections::HashSet<TaskId> = records
            .iter()
            .filter_map(|r| match &r.kind {
                RecordKind::TaskFinished {
                    task,
                    end: TaskEnd::Succeeded | TaskEnd::AlreadyDone { .. } | TaskEnd::Manual { .. },
                    ..
                } => Some(task.clone()),
                RecordKind::Resolved {
                    task,
                    resolution: Resolution::MarkDone,
                } => Some(task.clone()),
                _ => None,
            })
            .collect();
        let style = ProgressStyle::with_template(
            "{prefix:>18} [{bar:28.cyan/blue}] {pos:>3}/{len:3} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let mut totals: Vec<(Option<NodeName>, u64, u64)> = Vec::new();
        let mut index: HashMap<Option<NodeName>, usize> = HashMap::new();
        let mut count = |key: Option<NodeName>, done_now: bool| {
            let i = *index.entry(key.clone()).or_insert_with(|| {
                totals.push((key, 0, 0));
                totals.len() - 1
            });
            totals[i].1 += 1;
            if done_now {
                totals[i].2 += 1;
            }
        };
        let mut all = 0;
        for s in &plan.steps {
            if s.nodes.is_empty() {
                all += 1;
                count(None, done.contains(&TaskId::new(s.id.clone(), None)));
            }
            for n in &s.nodes {
                all += 1;
                count(
                    Some(n.clone()),
                    done.contains(&TaskId::new(s.id.clone(), Some(n.clone()))),
                );
            }
        }
        let overall = mp.add(ProgressBar::new(all as u64).with_style(style.clone()));
        overall.set_prefix(format!("{} -> {}", plan.from, plan.target));
        overall.set_position(done.len() as u64);
        let mut bars = HashMap::new();
        for (key, total, done) in totals {
            let bar = mp.add(ProgressBar::new(total).with_style(style.clone()));
            bar.set_prefix(
                key.as_ref()
                    .map_or("cluster".to_string(), |n| n.to_string()),
            );
            bar.set_position(done);
            bars.insert(key, bar);
        }
        Display {
            mp,
            bars,
            overall,
            json: args.json_events,
            dry_run: args.dry_run,
        }
    }

    async fn watch(self, mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>) -> Seen {
        let mut seen = Seen::default();
        while let Some(e) = rx.recv().await {
            if self.json {
                if let Ok(line) = serde_json::to_string(&e) {
                    println!("{line}");
                }
                continue;
            }
            let bar = |task: &TaskId| self.bars.get(&task.node);
            match &e {
                Event::StepStarted { task, action, .. } => {
                    if let Some(b) = bar(task) {
                        b.set_message(action.clone());
                    }
                }
                Event::StepFinished { task, outcome, .. } => {
                    if let Some(b) = bar(task) {
                        b.inc(1);
                        b.set_message(format!("{outcome:?}").to_lowercase());
                    }
                    self.overall.inc(1);
                }
                Event::StepRetrying { task, error, .. } => {
                    let line = format!("retrying {task}: {error}");
                    let _ = self.mp.println(&line);
                    seen.retries.push(line);
                }
                Event::NodeReady { node, version, .. } => {
                    if let Some(b) = self.bars.get(&Some(node.clone())) {
                        b.set_message(format!("Ready at {version}"));
                    }
                }
                Event::OperatorAction { instructions, .. } => {
                    let line = format!("for you to do: {instructions}");
                    let _ = self.mp.println(&line);
                    seen.operator.push(line);
                }
                Event::WouldRun { task, what } if self.dry_run => println!("{task}: {what}"),
                _ => {}
            }
        }
        for b in self.bars.values() {
            b.finish();
        }
        self.overall.finish();
        seen
    }
}

async fn summary(
    args: &Args,
    plan: &UpgradePlan,
    run: &Run,
    outcome: &Finished,
    seen: Seen,
    wall: Duration,
    backend: &Backend,
) {
    if args.json_events {
        return;
    }
    let (done, total) = run.progress();
    let c = run.counts();
    println!();
    println!(
        "{}: {} -> {} ({} hop(s), {} steps), executor {:?}{}",
        plan.cluster.as_deref().unwrap_or("cluster"),
        plan.from,
        plan.target,
        plan.hops.len(),
        plan.steps.len(),
        args.executor,
        if args.dry_run { ", dry run" } else { "" }
    );
    println!("outcome: {outcome}");
    println!(
        "tasks: {done}/{total} done; this session {} started, {} succeeded, {} found done, {} retried, {} failed, {} left to you",
        c.started, c.succeeded, c.already_done, c.retried, c.failed, c.manual
    );
    for line in seen.retries.iter().chain(&seen.operator) {
        println!("  {line}");
    }
    match &backend.sim {
        Some(sim) if !args.dry_run => {
            let simulated = sim.elapsed().as_secs();
            println!(
                "time: {}h {:02}m simulated, {:.1}s real",
                simulated / 3600,
                (simulated % 3600) / 60,
                wall.as_secs_f64()
            );
            let state = sim.cluster();
            let mut versions: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
            for n in &state.nodes {
                versions
                    .entry(n.kubelet().map_or("?".into(), KubeVersion::to_string))
                    .or_default()
                    .push(n.name.as_str());
            }
            for (v, nodes) in versions {
                println!("  kubelet {v}: {}", nodes.join(", "));
            }
            let problems = sim.snapshot().problems;
            if problems.is_empty() {
                println!(
                    "  no careless operation (drains before kubelet minors changed, no kubelet newer than an API server)"
                );
            }
            for p in problems {
                println!("  problem: {p}");
            }
        }
        _ => println!("time: {:.1}s", wall.as_secs_f64()),
    }
    if args.kubeconfig.is_some() && !args.dry_run {
        // What the API shows now, read as the drift checks read it.
        match backend.ops.state().await {
            Ok(state) => {
                for n in &state.nodes {
                    println!(
                        "  {}: kubelet {}, {}{}",
                        n.name,
                        n.kubelet().map_or("?".into(), KubeVersion::to_string),
                        if n.ready { "Ready" } else { "NotReady" },
                        if n.unschedulable { ", cordoned" } else { "" }
                    );
                }
            }
            Err(e) => println!("  could not read the cluster afterwards: {e}"),
        }
    }
    if let Some(j) = &args.journal
        && !outcome.is_completed()
        && !args.dry_run
    {
        let mut resume = format!(
            "cargo run --example apply -- --journal {} --resume",
            j.display()
        );
        // What the run was reached through, so the resume reaches the same cluster.
        let mut arg = |flag: &str, value: Option<String>| {
            if let Some(v) = value {
                resume.push_str(&format!(" {flag} {}", shell_quote(&v)));
            }
        };
        let show = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        arg("--sim-state", show(&args.sim_state));
        arg("--kubeconfig", show(&args.kubeconfig));
        arg("--context", args.context.clone());
        arg("--cluster", args.cluster.clone());
        if args.executor != Executor::Sim {
            arg(
                "--executor",
                args.executor
                    .to_possible_value()
                    .map(|v| v.get_name().to_string()),
            );
        }
        arg("--sandbox", show(&args.sandbox));
        println!("resume with: {resume}");
    }
}
