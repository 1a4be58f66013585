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
//! ```
//!
//! `--executor ssh` reaches each node at its inventory `ssh` fields (OpenSSH, one connection
//! per node, strict host keys) and runs the cluster operations (cordon, drain, uncordon, wait
//! until Ready, reading the cluster) with `kubectl --kubeconfig /etc/kubernetes/admin.conf` on
//! the first control-plane node: the seam where kupgrade-kube's API client (`--kubeconfig`)
//! will plug in. `--executor local` runs every node's commands on this machine inside
//! per-node sandbox directories (`--sandbox DIR/NODE`, whose `bin/` holds the programs).
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_trait::async_trait;
use clap::{Parser, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use jiff::civil::Date;
use kupgrade_core::plan::{BatchSize, PlanOptions, PlanRequest, Strategy, Target, UpgradePlan};
use kupgrade_core::ports::{
    ClusterOperations, CommandRunner, CommandRunnerExt, CommandSpec, DrainOptions, DrainReport,
    NodeProvider, OpsError,
};
use kupgrade_core::run::{
    Event, Finished, Record, RecordKind, Resolution, Run, RunOptions, TaskEnd, TaskId,
};
use kupgrade_core::skew::UpstreamPolicy;
use kupgrade_core::{ClusterState, KubeVersion, Node, NodeName};
use kupgrade_exec::driver::{Driver, JournalSink, NoJournal, stop_channel};
use kupgrade_exec::sim::{SimCluster, Workload};
use kupgrade_exec::{Journal, LocalRunner, NodeEnv, SshConfig, SshRunner};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Executor {
    /// A simulated cluster (no machine is touched).
    Sim,
    /// Real hosts over SSH.
    Ssh,
    /// This machine, one sandbox directory per node.
    Local,
}

/// Carry a Kubernetes upgrade out: plan it, then run it step by step, resumably.
#[derive(Parser)]
struct Args {
    /// The cluster inventory (YAML or JSON).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/clusters/ha.yaml"))]
    cluster: String,
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
    /// ssh, local: the node whose kubectl runs the cluster operations (default: the first
    /// control-plane node).
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

async fn apply(args: Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.cluster)
        .with_context(|| format!("reading {}", args.cluster))?;
    let cluster = kupgrade_core::inventory::parse(&text, &args.cluster)?;

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
                ..PlanOptions::default()
            };
            let plan = PlanRequest::new(args.target.clone(), date)
                .options(options)
                .plan(&cluster)
                .with_context(|| format!("planning the upgrade of {}", args.cluster))?;
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
            ..RunOptions::default()
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
    let backend = Backend::new(&args, &cluster, plan.as_ref()).await?;
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

/// The ports for the chosen executor.
struct Backend {
    runner: Arc<dyn CommandRunner>,
    ops: Arc<dyn ClusterOperations>,
    provider: Option<Arc<dyn NodeProvider>>,
    sim: Option<SimCluster>,
}

impl Backend {
    async fn new(args: &Args, cluster: &ClusterState, plan: &UpgradePlan) -> anyhow::Result<Self> {
        let kubectl_node = || -> anyhow::Result<NodeName> {
            args.kubectl_node
                .clone()
                .or_else(|| cluster.control_plane().next().map(|n| n.name.clone()))
                .context("the inventory has no control-plane node to run kubectl on")
        };
        match args.executor {
            Executor::Sim => {
                let sim = match &args.sim_state {
                    Some(path) if args.resume && path.exists() => SimCluster::load(path)?,
                    Some(path) => SimCluster::new(cluster.clone())
                        .with_workload(&Workload::sample())
                        .persist_to(path)?,
                    None => SimCluster::new(cluster.clone()).with_workload(&Workload::sample()),
                };
                let sim = sim.with_speed(args.sim_speed.max(0.0));
                let s = Arc::new(sim.clone());
                Ok(Backend {
                    runner: s.clone(),
                    ops: s.clone(),
                    provider: Some(s),
                    sim: Some(sim),
                })
            }
            Executor::Ssh => {
                let mut config = SshConfig::new();
                if let Some(u) = &args.ssh_user {
                    config = config.user(u);
                }
                if let Some(k) = &args.ssh_key {
                    config = config.identity_file(k);
                }
                if let Some(k) = &args.known_hosts {
                    config = config.known_hosts_file(k);
                }
                let runner: Arc<dyn CommandRunner> =
                    Arc::new(SshRunner::new(config)?.with_cluster(cluster));
                let ops = KubectlOps::new(runner.clone(), kubectl_node()?, cluster.clone());
                if plan.options.strategy == Strategy::Replace {
                    eprintln!(
                        "note: the ssh executor has no node provider: provisioning steps will fail"
                    );
                }
                Ok(Backend {
                    ops: Arc::new(ops),
                    runner,
                    provider: None,
                    sim: None,
                })
            }
            Executor::Local => {
                let root = args.sandbox.clone().context("--sandbox is required")?;
                let runner: Arc<dyn CommandRunner> = Arc::new(
                    LocalRunner::new()
                        .allow_sudo()
                        .with_node_env(move |node| NodeEnv::sandbox(&root, node)),
                );
                let ops = KubectlOps::new(runner.clone(), kubectl_node()?, cluster.clone());
                Ok(Backend {
                    ops: Arc::new(ops),
                    runner,
                    provider: None,
                    sim: None,
                })
            }
        }
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
    if let Some(j) = &args.journal
        && !outcome.is_completed()
        && !args.dry_run
    {
        let mut resume = format!(
            "cargo run --example apply -- --journal {} --resume",
            j.display()
        );
        if let Some(s) = &args.sim_state {
            resume.push_str(&format!(" --sim-state {}", s.display()));
        }
        println!("resume with: {resume}");
    }
}

/// Cluster operations through `kubectl` on one node (over whatever runner reaches it), with
/// the admin kubeconfig kubeadm leaves on control-plane nodes. The cluster's state is the
/// inventory overlaid with what the API shows: nodes (presence, kubelet version, Ready,
/// cordoned) and the versions of the control-plane static pods, kube-proxy and CoreDNS. The
/// `kubeadm` and `kubectl` binaries on nodes are not visible to the API: they are reported as
/// unknown.
struct KubectlOps {
    runner: Arc<dyn CommandRunner>,
    on: NodeName,
    base: ClusterState,
}

impl KubectlOps {
    fn new(runner: Arc<dyn CommandRunner>, on: NodeName, base: ClusterState) -> Self {
        KubectlOps { runner, on, base }
    }

    fn kubectl<I, S>(args: I, timeout: Duration) -> CommandSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        CommandSpec::new("kubectl")
            .args(["--kubeconfig", "/etc/kubernetes/admin.conf"])
            .args(args)
            .sudo()
            .timeout(timeout)
    }

    async fn call(&self, spec: CommandSpec) -> Result<String, OpsError> {
        let out = self
            .runner
            .output(&self.on, &spec)
            .await
            .map_err(|e| OpsError::Connect {
                message: format!("running kubectl on {}: {e}", self.on),
                source: Some(Box::new(e)),
            })?;
        if out.status.success() {
            Ok(out.stdout_text())
        } else {
            let tail = out.stderr_tail(5);
            Err(if tail.contains("NotFound") || tail.contains("not found") {
                OpsError::Other {
                    message: format!("`{spec}` on {}: {tail}", self.on),
                    source: None,
                }
            } else if tail.contains("Forbidden") || tail.contains("forbidden") {
                OpsError::Forbidden { message: tail }
            } else {
                OpsError::Other {
                    message: format!("`{spec}` on {} ended with {}: {tail}", self.on, out.status),
                    source: None,
                }
            })
        }
    }

    async fn json(&self, args: &[&str]) -> Result<serde_json::Value, OpsError> {
        let text = self
            .call(Self::kubectl(args.iter().copied(), Duration::from_secs(60)))
            .await?;
        serde_json::from_str(&text).map_err(|e| OpsError::Other {
            message: format!("kubectl {} printed no JSON: {e}", args.join(" ")),
            source: None,
        })
    }
}

/// The version in an image reference (`registry.k8s.io/kube-apiserver:v1.29.3`).
fn image_version(pod: &serde_json::Value) -> Option<KubeVersion> {
    let image = pod["spec"]["containers"][0]["image"].as_str()?;
    let tag = image.rsplit_once(':')?.1;
    KubeVersion::parse(tag).ok()
}

#[async_trait]
impl ClusterOperations for KubectlOps {
    async fn state(&self) -> Result<ClusterState, OpsError> {
        let nodes = self.json(&["get", "nodes", "-o", "json"]).await?;
        let pods = self
            .json(&["get", "pods", "-n", "kube-system", "-o", "json"])
            .await?;
        let mut state = self.base.clone();
        let base: HashMap<String, Node> = state
            .nodes
            .drain(..)
            .map(|n| (n.name.to_string(), n))
            .collect();
        for item in nodes["items"].as_array().into_iter().flatten() {
            let Some(name) = item["metadata"]["name"].as_str() else {
                continue;
            };
            let Some(kubelet) = item["status"]["nodeInfo"]["kubeletVersion"]
                .as_str()
                .and_then(|v| KubeVersion::parse(v).ok())
            else {
                continue;
            };
            let mut node = match base.get(name) {
                Some(n) => n.clone(),
                None => match Node::worker(name, kubelet.clone()) {
                    Ok(n) => n,
                    Err(_) => continue,
                },
            };
            node.versions.kubelet = Some(kubelet);
            node.versions.kubeadm = None;
            node.versions.kubectl = None;
            node.unschedulable = item["spec"]["unschedulable"].as_bool().unwrap_or(false);
            node.ready = item["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            state.nodes.push(node);
        }
        for pod in pods["items"].as_array().into_iter().flatten() {
            let Some(v) = image_version(pod) else {
                continue;
            };
            let labels = &pod["metadata"]["labels"];
            match (labels["component"].as_str(), labels["k8s-app"].as_str()) {
                (Some(component), _) => {
                    let Some(node) = pod["spec"]["nodeName"].as_str() else {
                        continue;
                    };
                    let Some(n) = state.node_mut(node) else {
                        continue;
                    };
                    let slot = match component {
                        "kube-apiserver" => &mut n.versions.kube_apiserver,
                        "kube-controller-manager" => &mut n.versions.kube_controller_manager,
                        "kube-scheduler" => &mut n.versions.kube_scheduler,
                        "etcd" => &mut n.versions.etcd,
                        _ => continue,
                    };
                    *slot = Some(v);
                }
                (None, Some("kube-proxy")) => {
                    let a = &mut state.addons.kube_proxy;
                    if a.as_ref().is_none_or(|cur| v < *cur) {
                        *a = Some(v);
                    }
                }
                (None, Some("kube-dns")) => state.addons.coredns = Some(v),
                _ => {}
            }
        }
        Ok(state)
    }

    async fn cordon(&self, node: &NodeName) -> Result<(), OpsError> {
        self.call(Self::kubectl(
            ["cordon", node.as_str()],
            Duration::from_secs(60),
        ))
        .await
        .map(|_| ())
    }

    async fn uncordon(&self, node: &NodeName) -> Result<(), OpsError> {
        self.call(Self::kubectl(
            ["uncordon", node.as_str()],
            Duration::from_secs(60),
        ))
        .await
        .map(|_| ())
    }

    async fn drain(&self, node: &NodeName, o: &DrainOptions) -> Result<DrainReport, OpsError> {
        let mut args = vec!["drain".to_string(), node.to_string()];
        if o.ignore_daemonsets {
            args.push("--ignore-daemonsets".into());
        }
        if o.delete_emptydir_data {
            args.push("--delete-emptydir-data".into());
        }
        if o.force {
            args.push("--force".into());
        }
        if let Some(g) = o.grace_period_seconds {
            args.push(format!("--grace-period={g}"));
        }
        args.push(format!("--timeout={}s", o.timeout_seconds));
        let timeout = Duration::from_secs(o.timeout_seconds + 60);
        let text = self.call(Self::kubectl(args, timeout)).await?;
        let mut report = DrainReport::default();
        for line in text.lines() {
            // `pod/web-1 evicted`
            if let Some(name) = line
                .strip_prefix("pod/")
                .and_then(|l| l.strip_suffix(" evicted"))
            {
                report.evicted.push(kupgrade_core::ports::PodRef {
                    namespace: String::new(),
                    name: name.to_string(),
                });
            }
        }
        Ok(report)
    }

    async fn wait_ready(
        &self,
        node: &NodeName,
        version: &KubeVersion,
        timeout: Duration,
    ) -> Result<(), OpsError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let item = self
                .json(&["get", "node", node.as_str(), "-o", "json"])
                .await?;
            let ready = item["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            let at = item["status"]["nodeInfo"]["kubeletVersion"]
                .as_str()
                .and_then(|v| KubeVersion::parse(v).ok())
                .is_some_and(|v| v.release() == version.release());
            if ready && at {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(OpsError::TimedOut {
                    what: format!("node {node} to be Ready at {version}"),
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
}
