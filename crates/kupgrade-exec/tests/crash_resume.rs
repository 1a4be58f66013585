//! Crash and resume, with real processes: the runner is a child process (this test binary,
//! re-run as `crash_child`), killed with SIGKILL at deterministic points chosen by a seed,
//! then started again on the same journal until the upgrade is done.
//!
//! - `simulated_upgrades_survive_sigkill_at_50_seeds`: the HA sample (3 control-plane nodes,
//!   6 workers, a workload with disruption budgets) from 1.28 to 1.29 on the simulated
//!   cluster, its state in a file. Even seeds upgrade in place; odd seeds replace the workers
//!   (provisioning a node is not safe to repeat). Each seed kills the child once or twice,
//!   before or after the effect of its n-th operation, and sometimes leaves a torn last
//!   journal line behind (a crash in the middle of a write).
//! - `upgrades_over_a_real_sshd_survive_sigkill`: a control-plane node and two workers (one
//!   Debian, one RHEL), each a sandbox directory behind a real OpenSSH server whose `PATH`
//!   starts with stub `apt-get`, `apt-mark`, `dnf`, `kubeadm`, `systemctl`, `kubectl` (and
//!   `sudo`, `tee`, `mkdir`, `cp`, `etcdctl`) scripts that log what they were asked and keep
//!   versions in files; 8 seeds.
//! - `local_runs_survive_sigkill_sigterm_and_sighup_at_50_seeds`: the same sandboxes under the
//!   local executor, whose stubs also log when each copy starts and ends and notice a copy of
//!   the same command still running; the child is sent SIGKILL, SIGTERM or SIGHUP at seeded
//!   random moments (it handles SIGTERM and SIGHUP as `apply` does: abort). No two copies of
//!   any command overlap, no command outlives its child, steps that are not safe to repeat ran
//!   exactly once, and the backups hold what was there before the upgrade.
//!
//! After the last run: the cluster is at the target everywhere, no node is left cordoned,
//! the journal ends with a completed run, no task the journal had finished was started
//! again, every effect of a task had its start journaled first (write-ahead), and every step
//! that is not safe to repeat ran exactly once. When the runner cannot tell whether such a
//! step happened it halts and asks; the test answers as an operator would, from the cluster.
//!
//! Nothing outside the tests' temporary directories is touched: the stubs write under their
//! sandbox, the SSH client keeps its sockets in the test's directory.
mod support;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use jiff::civil::date;
use kupgrade_core::plan::{PlanOptions, PlanRequest, Strategy, UpgradePlan};
use kupgrade_core::ports::{
    ClusterOperations, CommandOutput, CommandRunner, CommandRunnerExt, CommandSpec, DrainOptions,
    DrainReport, LineSink, OpsError, RunnerError, Tracking,
};
use kupgrade_core::run::{
    Finished, Record, RecordKind, Resolution, Run, RunOptions, StopReason, TaskEnd, TaskId,
};
use kupgrade_core::skew::UpstreamPolicy;
use kupgrade_core::{ClusterState, KubeVersion, NodeName, SshTarget};
use kupgrade_exec::driver::{Driver, NodeLocks, SurvivorPolicy, stop_channel};
use kupgrade_exec::sim::{OpPhase, SimCluster, Workload};
use kupgrade_exec::{Journal, LocalRunner, NodeEnv, SshConfig, SshRunner};

const HA: &str = include_str!("../../../examples/clusters/ha.yaml");
const CHILD: &str = "KUPGRADE_CRASH_CHILD";
const CRASH_MARK: &str = "KUPGRADE-CRASH-POINT";
const OUTCOME_MARK: &str = "KUPGRADE-OUTCOME ";

// ---- seeds --------------------------------------------------------------------------------

/// splitmix64: a tiny deterministic generator (no dependency needed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One or two points, drawn from `rng`, where a child dies among its first `total` operations.
fn crash_points(rng: &mut Rng, total: u64) -> Vec<CrashAt> {
    (0..1 + rng.below(2))
        .map(|_| CrashAt {
            op: 1 + rng.below(total),
            after: rng.below(2) == 1,
        })
        .collect()
}

/// Where a child dies: before or after the effect of its n-th operation.
#[derive(Clone, Copy, Debug)]
struct CrashAt {
    op: u64,
    after: bool,
}

impl CrashAt {
    fn env(self) -> String {
        format!(
            "{}:{}",
            self.op,
            if self.after { "after" } else { "before" }
        )
    }
    fn parse(s: &str) -> Option<CrashAt> {
        let (op, phase) = s.split_once(':')?;
        Some(CrashAt {
            op: op.parse().ok()?,
            after: phase == "after",
        })
    }
}

// ---- the child ------------------------------------------------------------------------------

/// Not a test by itself: the child process the crash tests start (it returns at once unless
/// `KUPGRADE_CRASH_CHILD` is set).
#[test]
fn crash_child() {
    let Ok(kind) = std::env::var(CHILD) else {
        return;
    };
    let dir = PathBuf::from(std::env::var("KUPGRADE_CRASH_DIR").unwrap());
    let crash = std::env::var("KUPGRADE_CRASH_AT")
        .ok()
        .and_then(|s| CrashAt::parse(&s));
    let resolve = std::env::var("KUPGRADE_RESOLVE").unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(kind == "sim")
        .build()
        .unwrap();
    let outcome = if kind == "local" {
        runtime.block_on(local_child(&dir, &resolve))
    } else {
        runtime.block_on(child(&kind, &dir, crash, &resolve))
    };
    println!("{OUTCOME_MARK}{}", serde_json::to_string(&outcome).unwrap());
}

/// Stops the process at the crash point (operation `op`, before or after its effect): says
/// so, then waits to be killed.
fn crash_point(op: u64, crash: Option<CrashAt>, after: bool) {
    if let Some(c) = crash
        && c.after == after
        && c.op == op
    {
        println!("{CRASH_MARK} {}", c.env());
        let _ = std::io::stdout().flush();
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

/// The run of the plan in `dir` (its `plan.json`) resumed from the journal there, which it
/// returns open; the operator's answers in `resolve` (`retry=TASK` or `mark-done=TASK`,
/// separated by `;`) are journaled first.
fn resume_in(dir: &Path, resolve: &str) -> (Journal<Record>, Run) {
    let plan: UpgradePlan =
        serde_json::from_str(&std::fs::read_to_string(dir.join("plan.json")).unwrap()).unwrap();
    let (mut journal, recovered) = Journal::<Record>::open(dir.join("journal")).unwrap();
    let mut run = Run::resume(
        Arc::new(plan),
        Arc::new(UpstreamPolicy::new()),
        RunOptions::default(),
        &recovered.records,
    )
    .unwrap();
    for r in resolve.split(';').filter(|r| !r.is_empty()) {
        let (how, task) = r.split_once('=').unwrap();
        let how = if how == "retry" {
            Resolution::Retry
        } else {
            Resolution::MarkDone
        };
        let task = run.find_task(task).unwrap();
        for rec in run
            .resolve(&task, how, jiff::Timestamp::now())
            .unwrap()
            .records
        {
            journal.append(&rec).unwrap();
        }
    }
    (journal, run)
}

async fn child(kind: &str, dir: &Path, crash: Option<CrashAt>, resolve: &str) -> Finished {
    let (mut journal, mut run) = resume_in(dir, resolve);
    let counter = Arc::new(AtomicU64::new(0));
    let driver = match kind {
        "sim" => {
            let sim = SimCluster::load(dir.join("sim.json"))
                .unwrap()
                .on_op(move |p| crash_point(p.op, crash, p.phase == OpPhase::After));
            let s = Arc::new(sim);
            Driver::new(s.clone(), s.clone()).provider(s)
        }
        _ => {
            let ssh = ssh_child_runner(dir);
            let runner = Arc::new(Crashing {
                inner: ssh,
                counter: counter.clone(),
                crash,
            });
            let ops = SandboxOps {
                runner: runner.clone(),
                root: dir.join("nodes"),
                base: plan_cluster(dir),
            };
            Driver::new(runner, Arc::new(ops))
        }
    };
    driver.drive(&mut run, &mut journal).await.unwrap()
}

// ---- running children -----------------------------------------------------------------------

enum Ended {
    Crashed,
    Finished(Finished),
}

fn run_child(
    kind: &str,
    dir: &Path,
    crash: Option<CrashAt>,
    resolve: &str,
    env: &[(&str, String)],
) -> Ended {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd.args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, kind)
        .env("KUPGRADE_CRASH_DIR", dir)
        .env("KUPGRADE_RESOLVE", resolve)
        .env_remove("KUPGRADE_CRASH_AT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(c) = crash {
        cmd.env("KUPGRADE_CRASH_AT", c.env());
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut outcome = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        // libtest prints `test crash_child ... ` without a newline before the test's output.
        if line.contains(CRASH_MARK) {
            // SIGKILL, by the id of the process this test started.
            child.kill().unwrap();
            child.wait().unwrap();
            return Ended::Crashed;
        }
        if let Some((_, json)) = line.split_once(OUTCOME_MARK) {
            outcome = Some(serde_json::from_str(json).unwrap());
        }
    }
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "child {kind} in {} failed: {status}",
        dir.display()
    );
    Ended::Finished(outcome.expect("the child reported no outcome"))
}

/// Runs children until the upgrade completes: first with the seed's crash points, then
/// without, answering the runner's questions about steps that are not safe to repeat.
fn run_to_completion(
    kind: &str,
    dir: &Path,
    env: &[(&str, String)],
    crashes: &[CrashAt],
    torn_tail: bool,
    decide: impl Fn(&TaskId) -> Resolution,
) -> (usize, usize) {
    let mut crashed = 0;
    let mut asked = 0;
    let mut resolve = String::new();
    let mut pending = crashes.iter().copied();
    for _ in 0..20 {
        let crash = pending.next();
        match run_child(kind, dir, crash, &resolve, env) {
            Ended::Crashed => {
                crashed += 1;
                if torn_tail {
                    // A crash in the middle of a write leaves half a line behind.
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .open(dir.join("journal"))
                        .unwrap();
                    f.write_all(br#"{"v":1,"at":"2026-11-25T10:00:00Z","record":"task-sta"#)
                        .unwrap();
                }
                resolve.clear();
            }
            Ended::Finished(Finished::Completed) => return (crashed, asked),
            Ended::Finished(Finished::Halted(r)) if r.reason == StopReason::Unsure => {
                asked += 1;
                let task = r.task.clone().unwrap();
                let how = match decide(&task) {
                    Resolution::Retry => "retry",
                    _ => "mark-done",
                };
                resolve = format!("{how}={task}");
            }
            Ended::Finished(other) => panic!("{}: the run ended {other}", dir.display()),
        }
    }
    panic!("{}: no end after 20 runs", dir.display())
}

fn records(dir: &Path) -> Vec<Record> {
    Journal::<Record>::read(dir.join("journal"))
        .unwrap()
        .records
}

/// Journal invariants: it ends with a completed run; no task is started after the journal
/// recorded it done; returns how often each task was started.
fn check_journal(dir: &Path) -> HashMap<TaskId, usize> {
    let records = records(dir);
    assert!(
        matches!(
            records.last().map(|r| &r.kind),
            Some(RecordKind::Stopped {
                outcome: Finished::Completed
            })
        ),
        "{}: the journal does not end with a completed run",
        dir.display()
    );
    let mut done: HashMap<TaskId, usize> = HashMap::new();
    let mut started: HashMap<TaskId, usize> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        match &r.kind {
            RecordKind::TaskStarted { task, .. } => {
                assert!(
                    !done.contains_key(task),
                    "{}: {task} started again (record {}) after it was done (record {})",
                    dir.display(),
                    i + 1,
                    done[task] + 1
                );
                *started.entry(task.clone()).or_default() += 1;
            }
            RecordKind::TaskFinished {
                task,
                end: TaskEnd::Succeeded { .. } | TaskEnd::AlreadyDone { .. },
                ..
            } => {
                done.insert(task.clone(), i);
            }
            RecordKind::Resolved {
                task,
                resolution: Resolution::MarkDone,
            } => {
                done.insert(task.clone(), i);
            }
            _ => {}
        }
    }
    started
}

/// `KUPGRADE_CRASH_SEEDS=3,17` runs only those seeds (to look at one closely).
fn only_seeds() -> Option<Vec<u64>> {
    let s = std::env::var("KUPGRADE_CRASH_SEEDS").ok()?;
    Some(s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
}

/// A temporary directory that is kept when the test fails (its path is in the message).
struct Keep(Option<tempfile::TempDir>);

impl Keep {
    /// A new directory `kupgrade-crash-{name}-…` holding `plan` as `plan.json`, where the
    /// children read it.
    fn with_plan(name: &str, plan: &UpgradePlan) -> Keep {
        let dir = tempfile::Builder::new()
            .prefix(&format!("kupgrade-crash-{name}-"))
            .tempdir()
            .unwrap();
        std::fs::write(
            dir.path().join("plan.json"),
            serde_json::to_string(plan).unwrap(),
        )
        .unwrap();
        Keep(Some(dir))
    }

    fn path(&self) -> &Path {
        self.0
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("/nonexistent"))
    }
}

impl Drop for Keep {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(d) = self.0.take()
        {
            eprintln!("kept {}", d.keep().display());
        }
    }
}

// ---- the simulated upgrade ------------------------------------------------------------------

fn ha() -> ClusterState {
    kupgrade_core::inventory::parse(HA, "ha.yaml").unwrap()
}

fn sim_plan(replace: bool) -> UpgradePlan {
    let mut options = PlanOptions::default();
    if replace {
        options.strategy = Strategy::Replace;
        options.batch = "2".parse().unwrap();
        options.max_surge = 2;
    }
    PlanRequest::new("1.29".parse().unwrap(), date(2024, 6, 1))
        .options(options)
        .plan(&ha())
        .unwrap()
}

/// Operations in a whole uncrashed run of `plan` (counted in-process).
async fn count_ops(plan: &UpgradePlan) -> u64 {
    let counter = Arc::new(AtomicU64::new(0));
    let c = counter.clone();
    let sim = SimCluster::new(ha())
        .with_workload(&Workload::sample())
        .on_op(move |p| {
            if p.phase == OpPhase::Before {
                c.fetch_add(1, Ordering::SeqCst);
            }
        });
    let s = Arc::new(sim);
    let mut run = Run::new(
        Arc::new(plan.clone()),
        Arc::new(UpstreamPolicy::new()),
        RunOptions::default(),
    )
    .unwrap();
    let out = Driver::new(s.clone(), s.clone())
        .provider(s)
        .drive(&mut run, &mut Vec::new())
        .await
        .unwrap();
    assert!(out.is_completed());
    counter.load(Ordering::SeqCst)
}

fn sim_seed(seed: u64, plans: &[(UpgradePlan, u64); 2]) {
    let replace = seed % 2 == 1;
    let (plan, total) = &plans[usize::from(replace)];
    let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0xdead_beef);
    let crashes = crash_points(&mut rng, *total);
    let torn = rng.below(4) == 0;
    let dir = Keep::with_plan(&format!("sim-{seed}"), plan);
    let d = dir.path();
    SimCluster::new(ha())
        .with_workload(&Workload::sample())
        .persist_to(d.join("sim.json"))
        .unwrap();
    let state_file = d.join("sim.json");
    let (crashed, asked) = run_to_completion("sim", d, &[], &crashes, torn, |task| {
        // The operator looks: does the node exist?
        let sim = SimCluster::load(&state_file).unwrap();
        let exists = task
            .node
            .as_ref()
            .is_some_and(|n| sim.cluster().node(n.as_str()).is_some());
        if exists {
            Resolution::MarkDone
        } else {
            Resolution::Retry
        }
    });
    assert!(
        crashed >= 1 || crashes.iter().all(|c| c.op > *total),
        "seed {seed}: no crash at {crashes:?} of {total} operations"
    );

    // The cluster is at the target, nothing left cordoned, nothing careless done.
    let sim = SimCluster::load(d.join("sim.json")).unwrap();
    let state = sim.snapshot();
    let target = &plan.target;
    assert_eq!(state.cluster.nodes.len(), 9, "seed {seed}");
    for n in &state.cluster.nodes {
        assert_eq!(n.kubelet(), Some(target), "seed {seed}: {}", n.name);
        assert!(!n.unschedulable, "seed {seed}: {} left cordoned", n.name);
        if n.is_control_plane() {
            assert_eq!(
                n.versions.kube_apiserver.as_ref(),
                Some(target),
                "seed {seed}"
            );
        }
    }
    assert_eq!(
        state.cluster.addons.kube_proxy.as_ref(),
        Some(target),
        "seed {seed}"
    );
    assert!(
        state.problems.is_empty(),
        "seed {seed}: {:?}",
        state.problems
    );

    // Write-ahead: every effect of a task had its start journaled first; steps that are not
    // safe to repeat ran exactly once.
    let started = check_journal(d);
    let mut effects: HashMap<(String, String), usize> = HashMap::new();
    for e in &state.history {
        if let Some(t) = &e.task {
            *effects.entry((t.clone(), e.what.clone())).or_default() += 1;
        }
    }
    let by_name: HashMap<String, &TaskId> = started.keys().map(|t| (t.to_string(), t)).collect();
    for ((task, what), n) in &effects {
        let id = by_name
            .get(task)
            .unwrap_or_else(|| panic!("seed {seed}: {what} ran for {task}, never journaled"));
        assert!(
            *n <= started[*id],
            "seed {seed}: `{what}` ran {n} times for {task}, started {} times",
            started[*id]
        );
        let step = plan.step(id.step.as_str()).unwrap();
        if !step.idempotent {
            assert_eq!(
                *n, 1,
                "seed {seed}: {task} is not safe to repeat and ran {n} times"
            );
        }
    }
    for s in plan.steps.iter().filter(|s| !s.idempotent) {
        for node in &s.nodes {
            let t = TaskId::new(s.id.clone(), Some(node.clone())).to_string();
            let n: usize = effects
                .iter()
                .filter(|((task, _), _)| *task == t)
                .map(|(_, n)| n)
                .sum();
            assert_eq!(n, 1, "seed {seed}: {t} ran {n} times");
        }
    }
    eprintln!(
        "seed {seed}: {} crash(es) at {:?}{}, {crashed} crashed run(s), {asked} question(s) answered",
        crashes.len(),
        crashes.iter().map(|c| c.env()).collect::<Vec<_>>(),
        if torn { ", torn journal tails" } else { "" }
    );
}

#[test]
fn simulated_upgrades_survive_sigkill_at_50_seeds() {
    let plans = {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let a = sim_plan(false);
        let b = sim_plan(true);
        let (ta, tb) = rt.block_on(async { (count_ops(&a).await, count_ops(&b).await) });
        [(a, ta), (b, tb)]
    };
    assert!(plans[1].0.steps.iter().any(|s| !s.idempotent));
    // Two seeds at a time: the children spend most of their time in fsync.
    let next = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::SeqCst);
                    if seed >= 50 {
                        break;
                    }
                    if only_seeds().is_none_or(|s| s.contains(&seed)) {
                        sim_seed(seed, &plans);
                    }
                }
            });
        }
    });
}

/// A journal the test reads while the run writes it.
#[derive(Clone, Default)]
struct SharedJournal(Arc<std::sync::Mutex<Vec<Record>>>);

impl kupgrade_exec::driver::JournalSink for SharedJournal {
    fn append(&mut self, record: &Record) -> Result<(), kupgrade_exec::JournalError> {
        self.0.lock().unwrap().push(record.clone());
        Ok(())
    }
}

/// The tasks `records` shows started and neither verifying nor finished.
fn in_flight(records: &[Record]) -> Vec<TaskId> {
    let mut running: Vec<TaskId> = Vec::new();
    for r in records {
        match &r.kind {
            RecordKind::TaskStarted { task, .. } => running.push(task.clone()),
            RecordKind::TaskVerifying { task, .. } | RecordKind::TaskFinished { task, .. } => {
                running.retain(|t| t != task)
            }
            _ => {}
        }
    }
    running
}

/// A kill right after a pre-stage step's download (its effect on the node done, its end not
/// journaled), at a moment when only pre-stage tasks are in flight: the resumed run downloads
/// again (the step is repeatable, run again without asking) and repeats nothing else: the
/// tasks in flight at the kill (all pre-stage) start twice, every other task once, no task
/// the journal had finished starts again, and the upgrade completes.
#[test]
fn a_kill_during_a_pre_stage_step_repeats_that_step_and_nothing_else() {
    let plan = sim_plan(false);
    assert!(plan.steps.iter().any(|s| s.action.is_prestage()));
    // Where to kill: the first download ahead (`apt-get ... install --download-only` or
    // `dnf install --downloadonly`) with only pre-stage tasks in flight, found on an
    // uncrashed run.
    let found: Arc<std::sync::Mutex<Option<(u64, TaskId)>>> = Arc::default();
    let journal = SharedJournal::default();
    {
        let (found, seen) = (found.clone(), journal.0.clone());
        let plan_steps = plan.clone();
        let sim = SimCluster::new(ha())
            .with_workload(&Workload::sample())
            .on_op(move |p| {
                let download =
                    p.what.contains("--download-only") || p.what.contains("--downloadonly");
                let mut found = found.lock().unwrap();
                if p.phase != OpPhase::After || !download || found.is_some() {
                    return;
                }
                let running = in_flight(&seen.lock().unwrap());
                let prestage = |t: &TaskId| {
                    plan_steps
                        .step(t.step.as_str())
                        .is_some_and(|s| s.action.is_prestage())
                };
                let mine = running.iter().find(|t| t.node.as_ref() == Some(p.node));
                if let Some(task) = mine
                    && running.iter().all(prestage)
                {
                    *found = Some((p.op, task.clone()));
                }
            });
        let s = Arc::new(sim);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let mut run = Run::new(
            Arc::new(plan.clone()),
            Arc::new(UpstreamPolicy::new()),
            RunOptions::default(),
        )
        .unwrap();
        let mut sink = journal.clone();
        let out = rt
            .block_on(
                Driver::new(s.clone(), s.clone())
                    .provider(s)
                    .drive(&mut run, &mut sink),
            )
            .unwrap();
        assert!(out.is_completed());
    }
    let (op, task) = found
        .lock()
        .unwrap()
        .clone()
        .expect("no download ahead with only pre-stage tasks in flight");

    let dir = Keep::with_plan("prestage", &plan);
    let d = dir.path();
    SimCluster::new(ha())
        .with_workload(&Workload::sample())
        .persist_to(d.join("sim.json"))
        .unwrap();
    let crash = CrashAt { op, after: true };
    let (crashed, asked) = run_to_completion("sim", d, &[], &[crash], false, |t| {
        panic!("asked about {t}: a pre-stage step is repeatable")
    });
    assert_eq!((crashed, asked), (1, 0));

    // The kill landed inside the pre-stage task: its start journaled, not its end.
    let records = records(d);
    let second = records
        .iter()
        .enumerate()
        .find(|(_, r)| matches!(r.kind, RecordKind::SessionStarted { .. }))
        .map(|(i, _)| i)
        .expect("a second session");
    let killed = in_flight(&records[..second]);
    assert!(killed.contains(&task), "{task} not in flight: {killed:?}");
    assert!(
        killed
            .iter()
            .all(|t| plan.step(t.step.as_str()).unwrap().action.is_prestage()),
        "{killed:?}"
    );
    // Those started twice (the download ran twice), every other task once.
    let started = check_journal(d);
    assert_eq!(started[&task], 2, "{task}");
    for (t, n) in &started {
        let expected = if killed.contains(t) { 2 } else { 1 };
        assert_eq!(*n, expected, "{t} started {n} times");
    }
    let state = SimCluster::load(d.join("sim.json")).unwrap().snapshot();
    let downloads = state
        .history
        .iter()
        .filter(|h| h.task.as_deref() == Some(task.to_string().as_str()))
        .filter(|h| h.what.contains("--download-only") || h.what.contains("--downloadonly"))
        .count();
    assert_eq!(downloads, 2, "{task}");
    assert!(state.problems.is_empty(), "{:?}", state.problems);
    for n in &state.cluster.nodes {
        assert_eq!(n.kubelet(), Some(&plan.target), "{}", n.name);
        assert!(!n.unschedulable, "{} left cordoned", n.name);
    }
}

// ---- the real sshd --------------------------------------------------------------------------

const SMALL: &str = r#"
name: sandboxed
etcd: { mode: stacked }
nodes:
  - name: cp-1
    roles: [control-plane]
    os: { family: debian }
    versions: { kubelet: v1.28.9, kubeadm: v1.28.9, kubectl: v1.28.9, kube-apiserver: v1.28.9,
                kube-controller-manager: v1.28.9, kube-scheduler: v1.28.9, etcd: 3.5.9-0 }
  - name: w-deb
    os: { family: debian }
    versions: { kubelet: v1.28.9, kubeadm: v1.28.9, kubectl: v1.28.9 }
  - name: w-rhel
    os: { family: rhel }
    versions: { kubelet: v1.28.9, kubeadm: v1.28.9, kubectl: v1.28.9 }
"#;

fn small() -> ClusterState {
    kupgrade_core::inventory::parse(SMALL, "small.yaml").unwrap()
}

fn plan_cluster(dir: &Path) -> ClusterState {
    let _ = dir;
    small()
}

/// The stub programs of a sandbox node. Every stub logs its arguments to `$R/log`; state
/// lives in `$R/state`; files the commands would write go under `$R/fs`.
const STUBS: &[(&str, &str)] = &[
    (
        "apt-get",
        r#"if [ "$1" = -o ]; then
  # Pre-staging: its own source list and index; downloads only, the node's state unchanged.
  while [ "$1" = -o ]; do shift 2; done
  case "$1 $2 $3 $4" in
  "update   ") echo "Reading package lists... Done" ;;
  "install -y --download-only --allow-change-held-packages") shift 4; echo "$*" >> "$S/downloaded"; echo "Download complete and in download only mode" ;;
  *) echo "E: Invalid operation $*" >&2; exit 100 ;;
  esac
  exit 0
fi
case "$1" in
update) [ -f "$S/repo" ] && echo 1 > "$S/fresh"; echo "Reading package lists... Done" ;;
install)
  shift; [ "$1" = -y ] && shift
  for pin in "$@"; do
    name=${pin%%=*}; ver=${pin#*=}; ver=${ver%-\*}
    if [ "$(cat "$S/repo")" != "${ver%.*}" ] || [ "$(cat "$S/fresh")" != 1 ]; then
      echo "E: Version '$ver-*' for '$name' was not found" >&2; exit 100; fi
    if [ -f "$S/held.$name" ] && [ "$(cat "$S/$name.pkg")" != "$ver" ]; then
      echo "E: Held packages were changed and -y was used without --allow-change-held-packages." >&2; exit 100; fi
  done
  for pin in "$@"; do
    name=${pin%%=*}; ver=${pin#*=}; ver=${ver%-\*}
    echo "$ver" > "$S/$name.pkg"; echo "Setting up $name ($ver-1.1) ..."
  done ;;
*) echo "E: Invalid operation $1" >&2; exit 100 ;;
esac
"#,
    ),
    (
        "apt-mark",
        r#"verb=$1; shift
for p in "$@"; do
  case "$verb" in
    hold) : > "$S/held.$p"; echo "$p set on hold." ;;
    unhold) rm -f "$S/held.$p"; echo "Canceled hold on $p." ;;
    *) exit 1 ;;
  esac
done
"#,
    ),
    // Nothing is ever left half done by the stub apt-get.
    (
        "dpkg",
        r#"[ "$1 $2" = "--triggers-only --pending" ] || { echo "stub dpkg: $*" >&2; exit 2; }"#,
    ),
    (
        "dnf",
        r#"[ "$1" = install ] && [ "$2" = -y ] || exit 1
shift 2
case " $* " in *" --downloadonly "*) echo "$*" >> "$S/downloaded"; echo "Complete!"; exit 0 ;; esac
case " $* " in *" --disableexcludes=kubernetes "*) ;; *) echo "Error: Unable to find a match" >&2; exit 1 ;; esac
for a in "$@"; do
  case "$a" in --*) continue ;; esac
  name=${a%%-[0-9]*}; ver=${a#"$name"-}; ver=${ver%-\*}
  if [ "$(cat "$S/repo")" != "${ver%.*}" ]; then echo "Error: Unable to find a match: $a" >&2; exit 1; fi
  echo "$ver" > "$S/$name.pkg"; echo "Installed: $name-$ver"
done
"#,
    ),
    (
        "kubeadm",
        r#"case "$1 $2" in
"version -o") echo "v$(cat "$S/kubeadm.pkg")" ;;
"upgrade plan") echo "[upgrade/versions] Target version: $3" ;;
"config images") echo "$5" >> "$S/pulled"; echo "[config/images] Pulled registry.k8s.io/kube-apiserver:$5" ;;
"upgrade apply")
  v=${3#v}
  [ "$(cat "$S/kubeadm.pkg")" = "$v" ] || { echo "kubeadm is not $v" >&2; exit 1; }
  echo "$v" > "$S/apiserver"; echo "$v" > "$R/../cluster-version"
  echo "$v" > "$R/fs/etc/kubernetes/version"
  echo "[upgrade/successful] SUCCESS! Your cluster was upgraded to \"v$v\". Enjoy!" ;;
"upgrade node")
  cv=$(cat "$R/../cluster-version")
  [ -f "$S/apiserver" ] && echo "$cv" > "$S/apiserver"
  echo "${cv%.*}" > "$S/kubelet.config"
  echo "[upgrade] The configuration for this node was successfully updated!" ;;
*) echo "stub kubeadm: $*" >&2; exit 1 ;;
esac
"#,
    ),
    (
        "systemctl",
        r#"case "$1 $2" in
"daemon-reload ") ;;
"restart kubelet") /bin/cp "$S/kubelet.pkg" "$S/kubelet.running" ;;
*) exit 1 ;;
esac
"#,
    ),
    (
        "kubectl",
        r#"[ "$1" = --kubeconfig ] && shift 2
case "$1" in
cordon) : > "$S/cordoned"; echo "node/$2 cordoned" ;;
uncordon) rm -f "$S/cordoned"; echo "node/$2 uncordoned" ;;
drain) : > "$S/cordoned"; echo "node/$2 drained" ;;
*) exit 1 ;;
esac
"#,
    ),
    (
        "tee",
        r#"/bin/mkdir -p "$R/fs$(dirname "$1")"
/bin/cat > "$R/fs$1"
case "$1" in
/etc/apt/sources.list.d/kubernetes.list|/etc/yum.repos.d/kubernetes.repo)
  sed -n 's#.*/core:/stable:/v\([0-9.]*\)/.*#\1#p' "$R/fs$1" | head -n1 > "$S/repo"
  [ "$1" = /etc/apt/sources.list.d/kubernetes.list ] && echo 0 > "$S/fresh" ;;
esac
/bin/cat "$R/fs$1"
"#,
    ),
    (
        "mkdir",
        "[ \"$1\" = -p ] && shift\n/bin/mkdir -p \"$R/fs$1\"\n",
    ),
    (
        "cp",
        "[ \"$1 $2 $3\" = \"-a -T /etc/kubernetes\" ] || exit 1\n/bin/mkdir -p \"$R/fs$4\"\n/bin/cp -a -T \"$R/fs/etc/kubernetes\" \"$R/fs$4\"\n",
    ),
    (
        "etcdctl",
        "for last; do :; done\n/bin/mkdir -p \"$R/fs$(dirname \"$last\")\"\necho \"snapshot of $(cat \"$R/../cluster-version\")\" > \"$R/fs$last\"\n",
    ),
];

/// What each stub does before its own work under the local campaign: logs the start and the
/// end of its copy to `$R/events`, and an overlap to `$R/overlaps` when another copy of the same
/// command on the node still runs (found by its marker at the start, or by the marker taken
/// over before the end; a copy is its pid and the start time of that pid, since pids are
/// reused within a campaign, and a killed copy not yet reaped, a zombie, has ended); then sleeps `$R/../slow` seconds (`$R/../slow-apply` for `kubeadm
/// upgrade apply`, as the slowest command of a run), so kills land inside commands.
const WATCH: &str = r#"k=$(printf '%s' "$0 $*" | cksum | cut -d' ' -f1); m="$R/running.$k"
me="$$ $(cut -d' ' -f22 /proc/$$/stat)"
if [ -f "$m" ]; then read -r op ost < "$m"
  if [ -n "$op" ] && [ "$(cut -d' ' -f3,22 "/proc/$op/stat" 2>/dev/null)" != "Z $ost" ] \
    && [ "$(cut -d' ' -f22 "/proc/$op/stat" 2>/dev/null)" = "$ost" ]; then
    echo "${0##*/} $* started while copy $op runs" >> "$R/overlaps"; fi; fi
echo "$me" > "$m"; echo "start $$ ${0##*/} $*" >> "$R/events"
trap 'o=$(cat "$m" 2>/dev/null); [ "$o" = "$me" ] || echo "${0##*/} overlapped by copy ${o%% *}" >> "$R/overlaps"; rm -f "$m"; echo "end $$" >> "$R/events"' EXIT
case "${0##*/} $1 $2" in
"kubeadm upgrade apply") sleep "$(cat "$R/../slow-apply" 2>/dev/null || echo 0)" ;;
*) sleep "$(cat "$R/../slow" 2>/dev/null || echo 0)" ;;
esac
"#;

fn write_sandboxes(root: &Path, cluster: &ClusterState) {
    write_sandboxes_with(root, cluster, "");
}

fn write_sandboxes_with(root: &Path, cluster: &ClusterState, watch: &str) {
    for n in &cluster.nodes {
        let r = root.join(n.name.as_str());
        let bin = r.join("bin");
        let s = r.join("state");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&s).unwrap();
        support::write_stub_sudo(&bin);
        for (name, body) in STUBS {
            support::write_script(
                &bin,
                name,
                &format!(
                    "R=\"$KUPGRADE_NODE_ROOT\"; S=\"$R/state\"\necho \"{name} $*\" >> \"$R/log\"\n{watch}{body}"
                ),
            );
        }
        // A strict sandbox: its bin/ is the whole PATH, so it also holds the harmless
        // programs (after the stubs, which win).
        kupgrade_exec::node_env::provide_programs(&bin, kupgrade_exec::node_env::SANDBOX_PROGRAMS)
            .unwrap();
        let plain = |v: &Option<KubeVersion>| v.as_ref().unwrap().to_plain_string();
        let w = |f: &str, text: String| std::fs::write(s.join(f), text + "\n").unwrap();
        w("kubelet.pkg", plain(&n.versions.kubelet));
        w("kubelet.running", plain(&n.versions.kubelet));
        w("kubeadm.pkg", plain(&n.versions.kubeadm));
        w("kubectl.pkg", plain(&n.versions.kubectl));
        w(
            "repo",
            n.versions.kubeadm.as_ref().unwrap().minor().to_string(),
        );
        w("fresh", "1".into());
        let etc = r.join("fs/etc/kubernetes");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("version"), plain(&n.versions.kubeadm) + "\n").unwrap();
        for p in ["kubelet", "kubeadm", "kubectl"] {
            std::fs::write(s.join(format!("held.{p}")), "").unwrap();
        }
        if n.is_control_plane() {
            w("apiserver", plain(&n.versions.kube_apiserver));
            std::fs::write(
                root.join("cluster-version"),
                plain(&n.versions.kube_apiserver) + "\n",
            )
            .unwrap();
        }
    }
}

fn read(path: PathBuf) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The sandbox world's cluster API: what the nodes' state files say; cordon, drain and
/// uncordon through the `kubectl` stub on the node itself, over the (crashing) SSH runner.
struct SandboxOps {
    runner: Arc<dyn CommandRunner>,
    root: PathBuf,
    base: ClusterState,
}

impl SandboxOps {
    async fn kubectl(&self, node: &NodeName, verb: &str) -> Result<(), OpsError> {
        let spec = CommandSpec::new("kubectl")
            .args([
                "--kubeconfig",
                "/etc/kubernetes/admin.conf",
                verb,
                node.as_str(),
            ])
            .sudo()
            .timeout(Duration::from_secs(60));
        let out = self
            .runner
            .output(node, &spec)
            .await
            .map_err(|e| OpsError::Connect {
                message: e.to_string(),
                source: None,
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(OpsError::Other {
                message: out.stderr_text(),
                source: None,
            })
        }
    }
}

#[async_trait]
impl ClusterOperations for SandboxOps {
    async fn state(&self) -> Result<ClusterState, OpsError> {
        let mut state = self.base.clone();
        for n in &mut state.nodes {
            let s = self.root.join(n.name.as_str()).join("state");
            let v = |f: &str| read(s.join(f)).and_then(|t| KubeVersion::parse(&t).ok());
            n.versions.kubelet = v("kubelet.running");
            n.versions.kubeadm = v("kubeadm.pkg");
            n.versions.kubectl = v("kubectl.pkg");
            if n.is_control_plane() {
                let api = v("apiserver");
                n.versions.kube_apiserver = api.clone();
                n.versions.kube_controller_manager = api.clone();
                n.versions.kube_scheduler = api;
            }
            n.unschedulable = s.join("cordoned").exists();
        }
        Ok(state)
    }
    async fn cordon(&self, node: &NodeName) -> Result<(), OpsError> {
        self.kubectl(node, "cordon").await
    }
    async fn uncordon(&self, node: &NodeName) -> Result<(), OpsError> {
        self.kubectl(node, "uncordon").await
    }
    async fn drain(&self, node: &NodeName, _: &DrainOptions) -> Result<DrainReport, OpsError> {
        self.kubectl(node, "drain").await?;
        Ok(DrainReport::default())
    }
    async fn wait_ready(
        &self,
        node: &NodeName,
        version: &KubeVersion,
        timeout: Duration,
    ) -> Result<(), OpsError> {
        let s = self.root.join(node.as_str()).join("state");
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if read(s.join("kubelet.running")) == Some(version.to_plain_string()) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(OpsError::TimedOut {
                    what: format!("{node} at {version}"),
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The SSH runner, with the crash points around each command.
struct Crashing {
    inner: SshRunner,
    counter: Arc<AtomicU64>,
    crash: Option<CrashAt>,
}

#[async_trait]
impl CommandRunner for Crashing {
    async fn run_tracked(
        &self,
        node: &NodeName,
        spec: &CommandSpec,
        lines: &LineSink,
        tracking: &Tracking,
    ) -> Result<CommandOutput, RunnerError> {
        tracking.refuse_lock()?;
        let op = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        crash_point(op, self.crash, false);
        let out = self.inner.run(node, spec, lines).await;
        crash_point(op, self.crash, true);
        out
    }
}

fn ssh_child_runner(dir: &Path) -> SshRunner {
    let env = |k: &str| std::env::var(k).unwrap();
    let config = SshConfig::new()
        .identity_file(env("KUPGRADE_CRASH_SSH_KEY"))
        .known_hosts_file(env("KUPGRADE_CRASH_SSH_KNOWN_HOSTS"))
        .state_dir(dir.join("ssh"))
        // A killed child's connections close themselves soon.
        .idle_timeout(Duration::from_secs(2));
    let target = SshTarget {
        host: Some("127.0.0.1".into()),
        port: Some(env("KUPGRADE_CRASH_SSH_PORT").parse().unwrap()),
        user: Some(env("KUPGRADE_CRASH_SSH_USER")),
    };
    let root = dir.join("nodes");
    SshRunner::new(config)
        .unwrap()
        .with_targets(
            small()
                .nodes
                .iter()
                .map(|n| (n.name.clone(), target.clone())),
        )
        .with_node_env(move |n| NodeEnv::sandbox(&root, n))
}

#[test]
fn upgrades_over_a_real_sshd_survive_sigkill() {
    let Some(sshd) = support::sshd::Sshd::start() else {
        return;
    };
    let cluster = small();
    let plan = PlanRequest::new("1.29".parse().unwrap(), date(2024, 6, 1))
        .plan(&cluster)
        .unwrap();
    // Commands and cluster operations of a whole run (each goes through the runner).
    let total: u64 = plan
        .steps
        .iter()
        .map(|s| {
            let per_node =
                s.commands
                    .iter()
                    .map(|c| c.commands.len())
                    .max()
                    .unwrap_or(usize::from(matches!(
                        s.action,
                        kupgrade_core::plan::Action::Cordon
                            | kupgrade_core::plan::Action::Drain { .. }
                            | kupgrade_core::plan::Action::Uncordon
                    )));
            (per_node * s.nodes.len()) as u64
        })
        .sum();
    assert!(total > 30, "{total}");
    for seed in 0..8u64 {
        let mut rng = Rng(seed ^ 0x5eed_0000_55d0);
        let crashes = crash_points(&mut rng, total);
        let dir = Keep::with_plan(&format!("ssh-{seed}"), &plan);
        let d = dir.path();
        std::fs::create_dir_all(d.join("ssh")).unwrap();
        write_sandboxes(&d.join("nodes"), &cluster);
        let envs = [
            (
                "KUPGRADE_CRASH_SSH_KEY",
                sshd.client_key().display().to_string(),
            ),
            (
                "KUPGRADE_CRASH_SSH_KNOWN_HOSTS",
                sshd.known_hosts().display().to_string(),
            ),
            ("KUPGRADE_CRASH_SSH_PORT", sshd.port().to_string()),
            ("KUPGRADE_CRASH_SSH_USER", sshd.user().to_string()),
        ];
        let (crashed, _) = run_to_completion("ssh", d, &envs, &crashes, seed % 3 == 0, |_| {
            panic!("an in-place upgrade has no step that is not safe to repeat")
        });

        // Every node at the target, its packages held again, none cordoned.
        let root = d.join("nodes");
        for n in &cluster.nodes {
            let s = root.join(n.name.as_str()).join("state");
            for f in [
                "kubelet.running",
                "kubelet.pkg",
                "kubeadm.pkg",
                "kubectl.pkg",
            ] {
                assert_eq!(
                    read(s.join(f)).as_deref(),
                    Some("1.29.5"),
                    "seed {seed}: {} {f}",
                    n.name
                );
            }
            for p in ["kubelet", "kubeadm", "kubectl"] {
                assert!(
                    s.join(format!("held.{p}")).exists(),
                    "seed {seed}: {} {p} not held",
                    n.name
                );
            }
            assert!(
                !s.join("cordoned").exists(),
                "seed {seed}: {} cordoned",
                n.name
            );
            if n.is_control_plane() {
                assert_eq!(read(s.join("apiserver")).as_deref(), Some("1.29.5"));
            }
        }
        // Write-ahead: `kubeadm upgrade apply` ran at least once and never more often than
        // its task was journaled as started.
        let started = check_journal(d);
        let log = std::fs::read_to_string(root.join("cp-1").join("log")).unwrap();
        let applies = log
            .lines()
            .filter(|l| l.starts_with("kubeadm upgrade apply"))
            .count();
        let apply_task = started
            .iter()
            .find(|(t, _)| t.step.as_str().ends_with("kubeadm-upgrade-apply"))
            .map(|(_, n)| *n)
            .unwrap();
        assert!(
            (1..=apply_task).contains(&applies),
            "seed {seed}: apply ran {applies} times, journaled {apply_task}"
        );
        let kubeadm_upgrades: BTreeMap<String, usize> = cluster
            .nodes
            .iter()
            .map(|n| {
                let log = std::fs::read_to_string(root.join(n.name.as_str()).join("log")).unwrap();
                (
                    n.name.to_string(),
                    log.lines()
                        .filter(|l| l.starts_with("kubeadm upgrade"))
                        .count(),
                )
            })
            .collect();
        eprintln!(
            "ssh seed {seed}: crashes {:?}, {crashed} crashed run(s), kubeadm upgrade runs {kubeadm_upgrades:?}",
            crashes.iter().map(|c| c.env()).collect::<Vec<_>>()
        );
        // Connections of killed children: close them (by pid, only ours).
        for pid in support::processes_with(&d.display().to_string()) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

// ---- the local campaign: SIGKILL, SIGTERM, SIGHUP -------------------------------------------

const READY_MARK: &str = "KUPGRADE-READY";

/// The local child: the sandboxes under the local executor, node-side locks, and SIGTERM and
/// SIGHUP handled as `apply` handles them (abort: kill what runs, record it interrupted).
async fn local_child(dir: &Path, resolve: &str) -> Finished {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut journal, mut run) = resume_in(dir, resolve);
    let (stop, signal_rx) = stop_channel();
    let mut term = signal(SignalKind::terminate()).unwrap();
    let mut hup = signal(SignalKind::hangup()).unwrap();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        stop.abort();
    });
    println!("{READY_MARK}");
    let _ = std::io::stdout().flush();
    let root = dir.join("nodes");
    let runner: Arc<dyn CommandRunner> = Arc::new(
        LocalRunner::new()
            .allow_sudo()
            .with_node_env(move |n| NodeEnv::sandbox(&root, n)),
    );
    let ops = SandboxOps {
        runner: runner.clone(),
        root: dir.join("nodes"),
        base: small(),
    };
    Driver::new(runner, Arc::new(ops))
        .node_locks(NodeLocks::new(
            format!("crash child {}", std::process::id()),
            Duration::from_secs(30),
        ))
        .on_survivor(SurvivorPolicy::Wait(Duration::from_secs(30)))
        .stop_on(signal_rx)
        .drive(&mut run, &mut journal)
        .await
        .unwrap()
}

/// When the campaign signals a child: `after` its start, or that long after a copy of
/// `kubeadm upgrade apply` started (the issue's case: `apply` killed while it runs).
#[derive(Clone, Copy, Debug)]
struct Kill {
    signal: &'static str,
    after: Duration,
    in_apply: bool,
}

/// How many copies of `kubeadm upgrade apply` started on cp-1 so far.
fn applies_started(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("nodes/cp-1/events"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("start") && l.contains("kubeadm upgrade apply"))
        .count()
}

/// Runs the local child once, signalling it as `kill` says.
fn run_local_child(dir: &Path, resolve: &str, kill: Option<Kill>) -> Option<Finished> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "local")
        .env("KUPGRADE_CRASH_DIR", dir)
        .env("KUPGRADE_RESOLVE", resolve)
        .env_remove("KUPGRADE_CRASH_AT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let began = std::time::Instant::now();
    let applies = applies_started(dir);
    let mut outcome = None;
    let mut ready = false;
    let mut sent = false;
    let mut at: Option<std::time::Instant> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(10)) {
            Ok(line) => {
                if line.contains(READY_MARK) {
                    ready = true;
                    if let Some(k) = kill
                        && !k.in_apply
                    {
                        at = Some(std::time::Instant::now() + k.after);
                    }
                } else if let Some((_, json)) = line.split_once(OUTCOME_MARK) {
                    outcome = Some(serde_json::from_str::<Finished>(json).unwrap());
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                assert!(
                    began.elapsed() < Duration::from_secs(120) || child.kill().is_err(),
                    "{}: the child hangs",
                    dir.display()
                );
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let Some(k) = kill else { continue };
        if !ready || sent {
            continue;
        }
        if at.is_none() && k.in_apply && applies_started(dir) > applies {
            at = Some(std::time::Instant::now() + k.after);
        }
        if let Some(t) = at
            && std::time::Instant::now() >= t
        {
            // The signal, by the id of the process this test started.
            let _ = Command::new("kill")
                .args([&format!("-{}", k.signal), &pid.to_string()])
                .status();
            sent = true;
        }
    }
    let status = child.wait().unwrap();
    match (kill.map(|k| k.signal), sent) {
        (Some("KILL"), true) => {}
        (Some(name), true) => {
            // SIGTERM and SIGHUP: the child ends on its own, its session cancelled (or done).
            assert!(
                status.success(),
                "{}: SIG{name} ended the child without its handler: {status}",
                dir.display()
            );
            assert!(
                matches!(outcome, Some(Finished::Cancelled | Finished::Completed)),
                "{}: after SIG{name} the run ended {outcome:?}",
                dir.display()
            );
        }
        _ => assert!(
            status.success(),
            "{}: child failed: {status}",
            dir.display()
        ),
    }
    // Nothing it started outlives it by more than a moment (the stubs' command lines name the
    // sandbox; a `kubeadm upgrade apply` killed at most 0.8 s into its 2 s would run 1.2 s more).
    let root = dir.join("nodes").display().to_string();
    for _ in 0..100 {
        if support::processes_with(&root).is_empty() {
            return outcome;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let left = support::processes_with(&root);
    for p in &left {
        let _ = Command::new("kill")
            .args(["-KILL", &p.to_string()])
            .status();
    }
    panic!(
        "{}: processes {left:?} outlived their child by 1 s ({kill:?})",
        dir.display()
    )
}

#[test]
fn local_runs_survive_sigkill_sigterm_and_sighup_at_50_seeds() {
    let cluster = small();
    let plan = PlanRequest::new("1.29".parse().unwrap(), date(2024, 6, 1))
        .plan(&cluster)
        .unwrap();
    let once: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| !s.idempotent)
        .map(|s| s.id.as_str().to_string())
        .collect();
    let fresh = |name: &str| {
        let dir = Keep::with_plan(&format!("local-{name}"), &plan);
        let d = dir.path();
        write_sandboxes_with(&d.join("nodes"), &cluster, WATCH);
        std::fs::write(d.join("nodes/slow"), "0.03\n").unwrap();
        std::fs::write(d.join("nodes/slow-apply"), "2\n").unwrap();
        dir
    };
    // How long a whole run takes here: the kills land anywhere in it.
    let calibrate = fresh("calibrate");
    let t0 = std::time::Instant::now();
    assert_eq!(
        run_local_child(calibrate.path(), "", None),
        Some(Finished::Completed)
    );
    let whole = t0.elapsed().as_millis() as u64;
    drop(calibrate);
    let seeds = only_seeds().unwrap_or_else(|| (0..50).collect());
    for seed in seeds {
        let mut rng = Rng(seed ^ 0x10ca_1000_5eed);
        let name = ["KILL", "TERM", "HUP"][(seed % 3) as usize];
        // Half the kills land while `kubeadm upgrade apply` runs (0 to 0.8 s into its 2 s).
        let kills: Vec<Kill> = (0..1 + rng.below(2))
            .map(|_| {
                let in_apply = rng.below(2) == 1;
                let after = if in_apply {
                    rng.below(800)
                } else {
                    rng.below(whole.max(1))
                };
                Kill {
                    signal: name,
                    after: Duration::from_millis(after),
                    in_apply,
                }
            })
            .collect();
        let dir = fresh(&seed.to_string());
        let d = dir.path();
        let mut resolve = String::new();
        let mut pending = kills.iter().copied();
        let mut done = false;
        for _ in 0..20 {
            let kill = pending.next();
            match run_local_child(d, &resolve, kill) {
                Some(Finished::Completed) => {
                    done = true;
                    break;
                }
                Some(Finished::Halted(r)) if r.reason == StopReason::Unsure => {
                    // Not safe to repeat, and unsure: the operator looks at the sandbox.
                    panic!("seed {seed}: unsure about {:?}: {}", r.task, r.summary)
                }
                Some(Finished::Cancelled) | None => resolve.clear(),
                Some(other) => panic!("seed {seed}: the run ended {other}"),
            }
        }
        assert!(done, "seed {seed}: no end after 20 runs");

        let root = d.join("nodes");
        let mut starts = 0;
        for n in &cluster.nodes {
            let r = root.join(n.name.as_str());
            let overlaps = std::fs::read_to_string(r.join("overlaps")).unwrap_or_default();
            assert!(
                overlaps.is_empty(),
                "seed {seed} (SIG{name} at {kills:?}): copies overlapped on {}:\n{overlaps}",
                n.name
            );
            let log = std::fs::read_to_string(r.join("log")).unwrap();
            starts += log.lines().count();
            assert_eq!(
                read(r.join("state/kubelet.running")).as_deref(),
                Some("1.29.5"),
                "seed {seed}: {}",
                n.name
            );
            // The backups hold what was there before the upgrade (pre-staging's own source
            // lists, under /var/lib/kupgrade/prestage, are no backups).
            let backups = walk(&r.join("fs/var"));
            for backup in backups
                .iter()
                .filter(|p| !p.to_string_lossy().contains("/var/lib/kupgrade/prestage/"))
            {
                let text = std::fs::read_to_string(backup).unwrap();
                assert!(
                    text.contains("1.28.9"),
                    "seed {seed}: {} no longer holds the state before the upgrade: {text}",
                    backup.display()
                );
            }
        }
        // Steps that are not safe to repeat ran exactly once.
        let started = check_journal(d);
        for (task, n) in &started {
            if once.iter().any(|s| s == task.step.as_str()) {
                assert_eq!(*n, 1, "seed {seed}: {task} started {n} times");
            }
        }
        eprintln!(
            "local seed {seed}: SIG{name} at {kills:?} (a run takes {whole} ms), {starts} stub calls"
        );
    }
}

/// The files under `dir` (none when it does not exist).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            found.extend(walk(&p));
        } else {
            found.push(p);
        }
    }
    found
}
