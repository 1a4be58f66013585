//! The simulated cluster's rules, the driver over it, and the cluster-operations conformance
//! suite. Every test runs on a paused tokio clock: hours of simulated upgrade, no sleeping.
use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::civil::date;
use kupgrade_core::plan::{PlanOptions, PlanRequest, Strategy, UpgradePlan};
use kupgrade_core::ports::{
    BoxError, ClusterOperations, CommandRunnerExt, CommandSpec, ExitStatus, PodRef,
};
use kupgrade_core::run::{
    Event, Finished, Record, RecordKind, RetryPolicy, StepOutcome, StopReason, TaskEnd,
};
use kupgrade_core::testing::upstream_run;
use kupgrade_core::{ClusterState, KubeVersion, Node, NodeName};

use super::*;
use crate::driver::{Driver, JournalSink, stop_channel};

const HA: &str = include_str!("../../../../examples/clusters/ha.yaml");
const MIXED_OS: &str = include_str!("../../../../examples/clusters/mixed-os.yaml");

fn ha() -> ClusterState {
    kupgrade_core::inventory::parse(HA, "ha.yaml").unwrap()
}

/// A SLES control plane; Ubuntu, Rocky and openSUSE Leap workers; all at v1.29.4.
fn mixed_os() -> ClusterState {
    kupgrade_core::inventory::parse(MIXED_OS, "mixed-os.yaml").unwrap()
}

fn name(s: &str) -> NodeName {
    s.parse().unwrap()
}

fn v(s: &str) -> KubeVersion {
    s.parse().unwrap()
}

/// The HA sample's plan to `target` with `options`.
fn plan(target: &str, options: PlanOptions) -> Arc<UpgradePlan> {
    plan_of(&ha(), target, options)
}

/// `cluster`'s plan to `target` with `options`, planned on 2025-11-01 (unsupported targets
/// allowed).
fn plan_of(cluster: &ClusterState, target: &str, options: PlanOptions) -> Arc<UpgradePlan> {
    let options = PlanOptions {
        allow_unsupported_target: true,
        ..options
    };
    Arc::new(
        PlanRequest::new(target.parse().unwrap(), date(2025, 11, 1))
            .options(options)
            .plan(cluster)
            .unwrap(),
    )
}

struct Outcome {
    finished: Finished,
    events: Vec<Event>,
}

async fn drive_with(driver: Driver, plan: &Arc<UpgradePlan>, journal: &mut Vec<Record>) -> Outcome {
    // Room for every line: these tests look at all of them.
    let (tx, mut rx) = crate::events::event_channel(1 << 20);
    let mut run = upstream_run(plan, journal);
    let finished = driver
        .events(tx)
        .drive(&mut run, journal as &mut dyn JournalSink)
        .await
        .unwrap();
    let events = rx.take_queued();
    Outcome { finished, events }
}

fn driver(sim: &SimCluster) -> Driver {
    let s = Arc::new(sim.clone());
    Driver::new(s.clone(), s.clone()).provider(s)
}

// ---- node commands -----------------------------------------------------------------------

async fn sh(sim: &SimCluster, node: &str, spec: CommandSpec) -> (i32, String) {
    let out = sim.output(&name(node), &spec).await.unwrap();
    let ExitStatus::Code(c) = out.status else {
        panic!("{:?}", out.status)
    };
    (c, out.stderr_text() + &out.stdout_text())
}

fn sudo(program: &str, args: &[&str]) -> CommandSpec {
    CommandSpec::new(program).args(args.iter().copied()).sudo()
}

#[tokio::test(start_paused = true)]
async fn packages_follow_repositories_holds_and_excludes() {
    let sim = SimCluster::new(ha());
    // Held: apt refuses.
    let install = sudo("apt-get", &["install", "-y", "kubeadm=1.28.15-*"]);
    let (code, text) = sh(&sim, "worker-1", install.clone()).await;
    assert_eq!(code, 100);
    assert!(text.contains("Held packages were changed"), "{text}");
    sh(&sim, "worker-1", sudo("apt-mark", &["unhold", "kubeadm"])).await;
    assert_eq!(sh(&sim, "worker-1", install).await.0, 0);
    // Another minor: not in the 1.28 repository, nor before `apt-get update`.
    let next = sudo("apt-get", &["install", "-y", "kubeadm=1.29.15-*"]);
    assert_eq!(sh(&sim, "worker-1", next.clone()).await.0, 100);
    let repo = sudo("tee", &["/etc/apt/sources.list.d/kubernetes.list"])
        .stdin(kupgrade_core::plan::apt_source("1.29".parse().unwrap()));
    assert_eq!(sh(&sim, "worker-1", repo).await.0, 0);
    let (code, text) = sh(&sim, "worker-1", next.clone()).await;
    assert_eq!(code, 100, "{text}");
    assert!(text.contains("Version '1.29.15-*' for 'kubeadm' was not found"));
    sh(&sim, "worker-1", sudo("apt-get", &["update"])).await;
    assert_eq!(sh(&sim, "worker-1", next).await.0, 0);
    // A version that was never released is not found either.
    let bogus = sudo("apt-get", &["install", "-y", "kubeadm=1.29.99-*"]);
    assert_eq!(sh(&sim, "worker-1", bogus).await.0, 100);
    // RHEL: dnf needs --disableexcludes, apt does not exist.
    assert_eq!(
        sh(&sim, "worker-3", sudo("apt-get", &["update"])).await.0,
        127
    );
    let dnf = sudo("dnf", &["install", "-y", "kubeadm-1.28.15-*"]);
    let (code, text) = sh(&sim, "worker-3", dnf).await;
    assert_eq!(code, 1);
    assert!(text.contains("Unable to find a match"), "{text}");
    let dnf = sudo(
        "dnf",
        &[
            "install",
            "-y",
            "kubeadm-1.28.15-*",
            "--disableexcludes=kubernetes",
        ],
    );
    assert_eq!(sh(&sim, "worker-3", dnf).await.0, 0);
    // Without sudo, nothing.
    let plain = CommandSpec::new("apt-get").arg("update");
    assert_eq!(sh(&sim, "worker-1", plain).await.0, 100);
    // Unknown commands are not modelled.
    assert_eq!(sh(&sim, "worker-1", sudo("reboot", &[])).await.0, 127);
    let state = sim.cluster();
    assert_eq!(
        state.node("worker-1").unwrap().versions.kubeadm,
        Some(v("v1.29.15"))
    );
    assert_eq!(
        state.node("worker-3").unwrap().versions.kubeadm,
        Some(v("v1.28.15"))
    );
}

#[tokio::test(start_paused = true)]
async fn zypper_follows_its_repository_refreshes_and_locks() {
    let sim = SimCluster::new(mixed_os());
    let zypper = |args: &[&str]| {
        CommandSpec::new("zypper")
            .arg("--non-interactive")
            .args(args.iter().copied())
            .sudo()
    };
    let kubeadm = |sim: &SimCluster| {
        sim.cluster()
            .node("leap-1")
            .unwrap()
            .versions
            .kubeadm
            .clone()
    };
    // Locked (as kubeadm clusters keep them): a solver problem.
    let install = |v: &str| zypper(&["install", "--oldpackage", v]);
    let (code, text) = sh(&sim, "leap-1", install("kubeadm=1.29.5")).await;
    assert_eq!(code, 4, "{text}");
    assert!(
        text.contains("the installed kubeadm-1.29.4 is locked"),
        "{text}"
    );
    // Interactive or without sudo: nothing.
    let prompt = CommandSpec::new("zypper")
        .args(["removelock", "kubeadm"])
        .sudo();
    assert_eq!(sh(&sim, "leap-1", prompt).await.0, 1);
    let plain = CommandSpec::new("zypper").args(["--non-interactive", "removelock", "kubeadm"]);
    assert_eq!(sh(&sim, "leap-1", plain).await.0, 5);
    assert_eq!(
        sh(&sim, "leap-1", zypper(&["removelock", "kubeadm"]))
            .await
            .0,
        0
    );
    assert_eq!(sh(&sim, "leap-1", install("kubeadm=1.29.5")).await.0, 0);
    assert_eq!(kubeadm(&sim), Some(v("v1.29.5")));
    // Another minor: not in the 1.29 repository, nor before `zypper refresh`.
    let (code, text) = sh(&sim, "leap-1", install("kubeadm=1.30.2")).await;
    assert_eq!(code, 104, "{text}");
    assert!(
        text.contains("No provider of 'kubeadm=1.30.2' found."),
        "{text}"
    );
    // The 1.30 repository's file, as the plan writes it.
    let repo_1_30 = || {
        CommandSpec::new("tee")
            .arg("/etc/zypp/repos.d/kubernetes.repo")
            .stdin(kupgrade_core::plan::packages::zypper_repo(
                "1.30".parse().unwrap(),
            ))
            .sudo()
    };
    assert_eq!(sh(&sim, "leap-1", repo_1_30()).await.0, 0);
    assert_eq!(sh(&sim, "leap-1", install("kubeadm=1.30.2")).await.0, 104);
    let refresh = zypper(&["--gpg-auto-import-keys", "refresh", "kubernetes"]);
    assert_eq!(sh(&sim, "leap-1", refresh).await.0, 0);
    assert_eq!(sh(&sim, "leap-1", install("kubeadm=1.30.2")).await.0, 0);
    assert_eq!(kubeadm(&sim), Some(v("v1.30.2")));
    // A version that was never released is not found either.
    assert_eq!(sh(&sim, "leap-1", install("kubeadm=1.30.99")).await.0, 104);
    // Without --oldpackage zypper only says it would go back, and succeeds.
    let back = zypper(&["install", "kubeadm=1.30.1"]);
    let (code, text) = sh(&sim, "leap-1", back).await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("has lower version than the installed one"),
        "{text}"
    );
    assert_eq!(kubeadm(&sim), Some(v("v1.30.2")));
    assert_eq!(sh(&sim, "leap-1", install("kubeadm=1.30.1")).await.0, 0);
    assert_eq!(kubeadm(&sim), Some(v("v1.30.1")));
    // addlock puts the lock back.
    assert_eq!(
        sh(&sim, "leap-1", zypper(&["addlock", "kubeadm"])).await.0,
        0
    );
    assert_eq!(sh(&sim, "leap-1", install("kubeadm=1.30.2")).await.0, 4);
    assert!(
        sim.snapshot().hosts[&name("leap-1")]
            .held
            .contains(&kupgrade_core::plan::Package::Kubeadm)
    );
    // Each family has its own package manager only; the zypper file is not dnf's.
    assert_eq!(
        sh(&sim, "leap-1", sudo("apt-get", &["update"])).await.0,
        127
    );
    assert_eq!(
        sh(&sim, "rocky-1", zypper(&["addlock", "kubeadm"])).await.0,
        127
    );
    let rocky_repo = |sim: &SimCluster| sim.snapshot().hosts[&name("rocky-1")].repo.clone();
    let before = rocky_repo(&sim);
    assert_eq!(sh(&sim, "rocky-1", repo_1_30()).await.0, 0);
    assert_eq!(rocky_repo(&sim), before);
}

/// A command refused for want of root writes nothing (it used to record the backup or the
/// snapshot it refused to write).
#[tokio::test(start_paused = true)]
async fn commands_refused_without_root_write_no_file() {
    let sim = SimCluster::new(ha());
    let files = |sim: &SimCluster| sim.snapshot().hosts[&name("cp-1")].files.clone();
    let backup = CommandSpec::new("cp").args(["-a", "-T", "/etc/kubernetes", "/var/backups/k"]);
    let snapshot = CommandSpec::new("etcdctl").args(["snapshot", "save", "/var/backups/etcd.db"]);
    for spec in [&backup, &snapshot] {
        let (code, text) = sh(&sim, "cp-1", spec.clone()).await;
        assert_eq!(code, 1, "{text}");
        assert!(text.contains("Permission denied"), "{text}");
    }
    assert!(files(&sim).is_empty(), "{:?}", files(&sim));
    for spec in [backup, snapshot] {
        assert_eq!(sh(&sim, "cp-1", spec.sudo()).await.0, 0);
    }
    assert_eq!(
        files(&sim).into_iter().collect::<Vec<_>>(),
        ["/var/backups/etcd.db", "/var/backups/k"]
    );
}

#[tokio::test(start_paused = true)]
async fn kubeadm_moves_the_control_plane_one_minor_at_a_time() {
    let sim = SimCluster::new(ha());
    let cp = "cp-1";
    let apply = |ver: &str| sudo("kubeadm", &["upgrade", "apply", ver, "--yes"]);
    // kubeadm must be upgraded first.
    let (code, text) = sh(&sim, cp, apply("v1.29.15")).await;
    assert_eq!(code, 1);
    assert!(text.contains("higher than the kubeadm version"), "{text}");
    let host = |sim: &SimCluster| sim.snapshot().hosts[&name(cp)].clone();
    // Give cp-1 kubeadm 1.30 straight away (as if by hand): a minor may not be skipped.
    {
        let mut inner = sim.lock();
        inner
            .host(&name(cp))
            .installed
            .insert(kupgrade_core::plan::Package::Kubeadm, v("v1.30.14"));
    }
    let (code, text) = sh(&sim, cp, apply("v1.30.14")).await;
    assert_eq!(code, 1);
    assert!(text.contains("only 1 minor version at a time"), "{text}");
    assert_eq!(sh(&sim, cp, apply("v1.29.15")).await.0, 0);
    let state = sim.cluster();
    let n = state.node(cp).unwrap();
    assert_eq!(n.versions.kube_apiserver, Some(v("v1.29.15")));
    assert_eq!(n.versions.kube_scheduler, Some(v("v1.29.15")));
    assert_eq!(
        n.versions.etcd.as_ref().unwrap().to_plain_string(),
        "3.5.10-0"
    );
    // Two control-plane nodes are behind: the add-ons wait for the last (kubeadm >= 1.28).
    assert_eq!(state.addons.kube_proxy, Some(v("v1.28.9")));
    assert_eq!(host(&sim).kubelet_config, Some("1.29".parse().unwrap()));
    for other in ["cp-2", "cp-3"] {
        {
            let mut inner = sim.lock();
            inner
                .host(&name(other))
                .installed
                .insert(kupgrade_core::plan::Package::Kubeadm, v("v1.29.15"));
        }
        let (code, text) = sh(&sim, other, sudo("kubeadm", &["upgrade", "node"])).await;
        assert_eq!(code, 0, "{text}");
    }
    let state = sim.cluster();
    assert_eq!(state.addons.kube_proxy, Some(v("v1.29.15")));
    assert_eq!(state.addons.coredns, Some(v("v1.11.1")));
    assert_eq!(state.apiserver_min(), Some(&v("v1.29.15")));
}

#[tokio::test(start_paused = true)]
async fn kubeadm_upgrade_node_deploys_the_version_kubeadm_config_records() {
    // Caught mid-upgrade: cp-1 ran `kubeadm upgrade apply v1.29.4`, cp-2 has kubeadm 1.29.4 and
    // an API server at 1.28.9. kubeadm reads its target from the kubeadm-config that
    // `upgrade apply` wrote (the newest API server's version), not from the oldest API server.
    const MID: &str = include_str!("../../../../examples/clusters/mid-upgrade.yaml");
    let sim = SimCluster::new(kupgrade_core::inventory::parse(MID, "mid-upgrade.yaml").unwrap());
    assert_eq!(sim.lock().cluster_version(), Some(v("v1.29.4")));
    let (code, text) = sh(&sim, "cp-2", sudo("kubeadm", &["upgrade", "node"])).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("to version \"v1.29.4\""), "{text}");
    let state = sim.cluster();
    let cp2 = state.node("cp-2").unwrap();
    assert_eq!(cp2.versions.kube_apiserver, Some(v("v1.29.4")));
    assert_eq!(cp2.versions.kube_scheduler, Some(v("v1.29.4")));
    // The saved state carries the recorded version.
    assert_eq!(sim.snapshot().kubeadm_config, Some(v("v1.29.4")));
}

#[tokio::test(start_paused = true)]
async fn a_kubelet_restart_changes_the_reported_version_after_a_while() {
    let sim = SimCluster::new(ha());
    {
        let mut inner = sim.lock();
        inner
            .host(&name("cp-1"))
            .installed
            .insert(kupgrade_core::plan::Package::Kubelet, v("v1.28.15"));
    }
    assert_eq!(
        sim.cluster().node("cp-1").unwrap().versions.kubelet,
        Some(v("v1.28.9"))
    );
    sh(&sim, "cp-1", sudo("systemctl", &["restart", "kubelet"])).await;
    let n = sim.cluster().node("cp-1").unwrap().clone();
    assert_eq!(n.versions.kubelet, Some(v("v1.28.15")));
    assert!(!n.ready);
    sim.wait_ready(
        &name("cp-1"),
        &v("v1.28.15"),
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert!(sim.cluster().node("cp-1").unwrap().ready);
    // The patch changed, the minor did not: nothing to complain about.
    assert!(sim.snapshot().problems.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_state_survives_a_save_and_a_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.json");
    let sim = SimCluster::new(ha())
        .with_workload(&Workload::sample())
        .persist_to(&path)
        .unwrap();
    sim.cordon(&name("worker-2")).await.unwrap();
    sim.inject(Fault::new(FaultKind::NeverReady).on_node(name("worker-1")));
    let loaded = SimCluster::load(&path).unwrap();
    assert_eq!(loaded.snapshot().history, sim.snapshot().history);
    assert_eq!(loaded.snapshot().history.len(), 1);
    assert_eq!(loaded.snapshot().cluster, sim.snapshot().cluster);
    assert_eq!(loaded.snapshot().pods, sim.snapshot().pods);
    assert_eq!(loaded.snapshot().faults.len(), 1);
    assert!(loaded.cluster().node("worker-2").unwrap().unschedulable);
    std::fs::write(&path, "{\"format\": 9}").unwrap();
    let e = SimCluster::load(&path).unwrap_err();
    assert!(e.to_string().contains("format 9 is newer"), "{e}");
}

// ---- the driver over the simulation -------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_ha_sample_upgrades_to_the_newest_stable_release() {
    let plan = plan("stable", PlanOptions::default());
    let sim = SimCluster::new(ha()).with_workload(&Workload::sample());
    let mut journal = Vec::new();
    let out = drive_with(driver(&sim), &plan, &mut journal).await;
    assert_eq!(out.finished, Finished::Completed, "{}", out.finished);
    let state = sim.cluster();
    for n in &state.nodes {
        assert_eq!(n.kubelet(), Some(&plan.target), "{}", n.name);
        assert!(n.ready && !n.unschedulable, "{}", n.name);
        if n.is_control_plane() {
            assert_eq!(n.versions.kube_apiserver.as_ref(), Some(&plan.target));
        }
    }
    assert_eq!(state.addons.kube_proxy.as_ref(), Some(&plan.target));
    let snap = sim.snapshot();
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    // Drains went through the budgets; every workload pod is Ready again on a worker.
    assert!(
        snap.history
            .iter()
            .any(|e| e.what.starts_with("evict default/db-"))
    );
    // `kubeadm upgrade apply` ran once per hop, on cp-1, labelled with its task.
    let applies: Vec<&HistoryEntry> = snap
        .history
        .iter()
        .filter(|e| e.what.contains("kubeadm upgrade apply"))
        .collect();
    assert_eq!(applies.len(), plan.hops.len());
    assert!(applies.iter().all(|e| {
        e.node.as_str() == "cp-1"
            && e.task
                .as_deref()
                .is_some_and(|t| t.ends_with("/cp-1/kubeadm-upgrade-apply"))
    }));
    // Hours of simulated time.
    assert!(sim.elapsed() > std::time::Duration::from_secs(3600 * 3));
    // Events bracket the run; command output arrives between a task's start and end.
    assert!(matches!(
        out.events.first(),
        Some(Event::PlanStarted { .. })
    ));
    assert!(matches!(
        out.events.last(),
        Some(Event::PlanFinished { .. })
    ));
    assert!(out.events.iter().any(|e| matches!(e, Event::CommandOutput { line, .. } if line.contains("SUCCESS! Your cluster was upgraded"))));
    let mut open = std::collections::HashSet::new();
    for e in &out.events {
        match e {
            Event::StepStarted { task, .. } => assert!(open.insert(task.clone())),
            Event::StepFinished { task, .. } | Event::StepRetrying { task, .. } => {
                assert!(open.remove(task), "{task} ended but was not running")
            }
            Event::CommandStarted { task, .. } | Event::CommandOutput { task, .. } => {
                assert!(open.contains(task), "{task}: output outside its step")
            }
            _ => {}
        }
    }
    // The journal says every task finished.
    let finished = journal
        .iter()
        .filter(|r| matches!(r.kind, RecordKind::TaskFinished { .. }))
        .count();
    assert_eq!(finished, upstream_run(&plan, &[]).progress().1);
}

/// A plan for the mixed-OS sample runs through apt, dnf and zypper: every node reaches the
/// target, through its own family's commands.
#[tokio::test(start_paused = true)]
async fn the_mixed_os_sample_upgrades_through_each_family_s_package_manager() {
    let plan = plan_of(&mixed_os(), "1.31", PlanOptions::default());
    assert_eq!(plan.hops.len(), 2);
    let sim = SimCluster::new(mixed_os()).with_workload(&Workload::sample());
    let out = drive_with(driver(&sim), &plan, &mut Vec::new()).await;
    assert_eq!(out.finished, Finished::Completed, "{}", out.finished);
    let state = sim.cluster();
    for n in &state.nodes {
        assert_eq!(n.kubelet(), Some(&plan.target), "{}", n.name);
        assert_eq!(
            n.versions.kubeadm.as_ref(),
            Some(&plan.target),
            "{}",
            n.name
        );
        assert!(n.ready && !n.unschedulable, "{}", n.name);
    }
    assert_eq!(
        state.node("cp-1").unwrap().versions.kube_apiserver.as_ref(),
        Some(&plan.target)
    );
    let snap = sim.snapshot();
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    let ran = |node: &str, what: &str| {
        snap.history
            .iter()
            .filter(|e| e.node.as_str() == node && e.what.contains(what))
            .count()
    };
    let target = plan.target.to_plain_string();
    for suse in ["cp-1", "leap-1"] {
        // Per hop: kubeadm, then kubelet and kubectl, each unlocked, installed and locked.
        assert_eq!(
            ran(suse, "zypper --non-interactive install --oldpackage"),
            4
        );
        assert_eq!(ran(suse, "zypper --non-interactive removelock"), 4);
        assert_eq!(ran(suse, "zypper --non-interactive addlock"), 4);
        assert_eq!(ran(suse, &format!("kubelet={target} kubectl={target}")), 1);
        assert_eq!(ran(suse, "/etc/zypp/repos.d/kubernetes.repo"), 2);
        assert_eq!(ran(suse, "apt-get") + ran(suse, "dnf"), 0);
        let host = &snap.hosts[&name(suse)];
        assert_eq!(host.repo.as_ref().unwrap().kind, RepoKind::Zypper);
        assert_eq!(host.held.len(), 3, "{suse}: every package locked again");
    }
    // Installs, and one download ahead per hop (pre-staging: apt and dnf, not zypper).
    assert_eq!(ran("ubuntu-1", "apt-get install"), 4);
    assert_eq!(ran("ubuntu-1", "install -y --download-only"), 2);
    assert_eq!(ran("rocky-1", "dnf install"), 4 + 2);
    assert_eq!(ran("rocky-1", "--downloadonly"), 2);
    assert_eq!(ran("ubuntu-1", "zypper") + ran("rocky-1", "zypper"), 0);
}

#[tokio::test(start_paused = true)]
async fn the_replace_strategy_provisions_and_removes_through_the_provider() {
    let options = PlanOptions {
        strategy: Strategy::Replace,
        batch: "2".parse().unwrap(),
        max_surge: 2,
        ..PlanOptions::default()
    };
    let plan = plan("1.30", options);
    let sim = SimCluster::new(ha()).with_workload(&Workload::sample());
    let out = drive_with(driver(&sim), &plan, &mut Vec::new()).await;
    assert_eq!(out.finished, Finished::Completed, "{}", out.finished);
    let state = sim.cluster();
    assert!(state.node("worker-1").is_none());
    assert_eq!(
        state.node("worker-1-v1-30-14").unwrap().kubelet(),
        Some(&v("v1.30.14"))
    );
    assert_eq!(state.workers().count(), 6);
    assert!(
        sim.snapshot().problems.is_empty(),
        "{:?}",
        sim.snapshot().problems
    );
    // Without a provider, the run is refused before its first step: nothing ran (not even
    // the control plane's upgrade), nothing was journaled.
    let sim = SimCluster::new(ha());
    let s = Arc::new(sim.clone());
    let mut journal = Vec::new();
    let mut run = upstream_run(&plan, &journal);
    let err = Driver::new(s.clone(), s)
        .drive(&mut run, &mut journal as &mut dyn JournalSink)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, crate::driver::DriverError::NoProvider { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(
            "the plan creates 6 node(s) (worker-1-v1-30-14, worker-4-v1-30-14, worker-2-v1-30-14 \
             and 3 more) and removes 6 (worker-1, worker-4, worker-2 and 3 more), and no node \
             provider is configured (the replace strategy needs one): nothing was run"
        ) && text.contains("--provider-create CMD"),
        "{text}"
    );
    assert!(journal.is_empty());
    assert!(sim.snapshot().history.is_empty());
    // A dry run rehearses the real run: refused too.
    let err = Driver::new(Arc::new(sim.clone()), Arc::new(sim.clone()))
        .dry_run(true)
        .drive(
            &mut upstream_run(&plan, &[]),
            &mut Vec::new() as &mut dyn JournalSink,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no node provider"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn failures_and_hangs_of_repeatable_steps_are_retried() {
    let plan = plan("1.29", PlanOptions::default());
    let sim = SimCluster::new(ha());
    sim.inject(
        Fault::new(FaultKind::fail(
            100,
            "E: Could not get lock /var/lib/dpkg/lock-frontend",
        ))
        .on_node(name("worker-2"))
        .matching("apt-get install")
        .times(2),
    );
    sim.inject(
        Fault::new(FaultKind::CommandHangs)
            .matching("kubeadm upgrade plan")
            .times(1),
    );
    let mut journal = Vec::new();
    let out = drive_with(driver(&sim), &plan, &mut journal).await;
    assert_eq!(out.finished, Finished::Completed, "{}", out.finished);
    let retries: Vec<String> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::StepRetrying { task, error, .. } => Some(format!("{task}: {error}")),
            _ => None,
        })
        .collect();
    assert_eq!(retries.len(), 3, "{retries:#?}");
    assert!(retries[0].contains("kubeadm-upgrade-plan") && retries[0].contains("timed out"));
    assert!(retries[1].contains("worker-2") && retries[1].contains("Could not get lock"));
    let Some(Event::PlanFinished { counts, .. }) = out.events.last() else {
        panic!()
    };
    assert_eq!(counts.retried, 3);
    assert_eq!(counts.failed, 0);
}

#[tokio::test(start_paused = true)]
async fn a_node_that_never_becomes_ready_halts_the_run() {
    let plan = plan("1.29", PlanOptions::default());
    let sim = SimCluster::new(ha());
    sim.inject(Fault::new(FaultKind::NeverReady).on_node(name("worker-4")));
    let out = drive_with(driver(&sim), &plan, &mut Vec::new()).await;
    let report = out.finished.report().unwrap();
    assert_eq!(report.reason, StopReason::StepFailed, "{report}");
    assert_eq!(
        report.task.as_ref().unwrap().to_string(),
        "v1.29.15/worker-4/wait-ready@v1.29.15"
    );
    assert!(report.summary.contains("timed out"), "{report}");
    // It was tried three times; nothing ran after it.
    let tries = out
        .events
        .iter()
        .filter(|e| matches!(e, Event::StepStarted { task, .. } if task.step.as_str().contains("worker-4/wait-ready")))
        .count();
    assert_eq!(tries, 3);
    assert!(
        !sim.snapshot()
            .history
            .iter()
            .any(|e| e.node.as_str() == "worker-4" && e.what == "uncordon")
    );
}

#[tokio::test(start_paused = true)]
async fn a_blocked_eviction_halts_with_the_budget_named() {
    let plan = plan("1.29", PlanOptions::default());
    let sim = SimCluster::new(ha()).with_workload(&Workload::sample());
    sim.inject(
        Fault::new(FaultKind::EvictionBlocked {
            budget: "payments-pdb".into(),
        })
        .on_node(name("worker-1")),
    );
    let out = drive_with(driver(&sim), &plan, &mut Vec::new()).await;
    let report = out.finished.report().unwrap();
    assert_eq!(report.reason, StopReason::StepFailed);
    assert!(
        report.summary.contains("disruption budget payments-pdb"),
        "{report}"
    );
    assert!(sim.cluster().node("worker-1").unwrap().unschedulable);
}

/// The HA sample's sim, on which `meddle` acts (given the sim) right after each operation
/// `at` picks.
fn meddled(
    at: impl Fn(&OpPoint<'_>) -> bool + Send + Sync + 'static,
    meddle: impl Fn(&SimCluster) + Send + Sync + 'static,
) -> SimCluster {
    let sim = SimCluster::new(ha());
    let meddler = sim.clone();
    sim.on_op(move |p| {
        if p.phase == OpPhase::After && at(p) {
            meddle(&meddler);
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_node_upgraded_by_hand_halts_the_run_before_its_turn() {
    let plan = plan("1.29", PlanOptions::default());
    // Right after `kubeadm upgrade apply` on cp-1, someone upgrades worker-6's kubelet by hand.
    let sim = meddled(
        |p| p.what.contains("kubeadm upgrade apply"),
        |sim| sim.lock().node_mut(&name("worker-6")).versions.kubelet = Some(v("v1.29.15")),
    );
    let out = drive_with(driver(&sim), &plan, &mut Vec::new()).await;
    let report = out.finished.report().expect("halted");
    // The kubelet is now newer than two API servers: the policy check catches it at once.
    assert_eq!(report.reason, StopReason::PolicyViolated, "{report}");
    let text = report.to_string();
    assert!(text.contains("worker-6: expected kubelet within"), "{text}");
    assert!(text.contains("found v1.29.15"), "{text}");
    // Nothing ran after the apply.
    let history = sim.snapshot().history;
    assert!(
        history
            .last()
            .unwrap()
            .what
            .contains("kubeadm upgrade apply")
    );
}

#[tokio::test(start_paused = true)]
async fn a_cordon_undone_at_once_fails_its_postcondition() {
    // Someone uncordons worker-1 each time the run cordons it: the cordon "succeeds" but the
    // cluster never shows it cordoned, so the cordon fails (after its retries) and the drain
    // never starts.
    let plan = plan("1.29", PlanOptions::default());
    let sim = meddled(
        |p| p.what == "cordon" && p.node.as_str() == "worker-1",
        |sim| sim.lock().node_mut(&name("worker-1")).unschedulable = false,
    );
    let out = drive_with(driver(&sim), &plan, &mut Vec::new()).await;
    let report = out.finished.report().expect("halted");
    assert_eq!(report.reason, StopReason::StepFailed, "{report}");
    assert_eq!(
        report.to_string(),
        "v1.29.15/worker-1/cordon (cordon) reported success, but the cluster did not show its postconditions within 30s\n  - worker-1: expected cordoned, found schedulable\nwhat to do: find out why the step reports success without taking effect (a command that exits 0 without doing its work, a package that did not change), fix it, then resume: the step is safe to repeat and runs again"
    );
    let attempts = out
        .events
        .iter()
        .filter(|e| matches!(e, Event::StepStarted { task, .. } if task.to_string() == "v1.29.15/worker-1/cordon"))
        .count();
    assert_eq!(attempts as u32, RetryPolicy::default().max_attempts);
    assert!(!out.events.iter().any(
        |e| matches!(e, Event::StepStarted { task, .. } if task.to_string() == "v1.29.15/worker-1/drain")
    ));
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_touches_nothing_and_lists_every_command() {
    let plan = plan("1.29", PlanOptions::default());
    let sim = SimCluster::new(ha()).with_workload(&Workload::sample());
    let before = sim.snapshot();
    let mut journal = Vec::new();
    let out = drive_with(driver(&sim).dry_run(true), &plan, &mut journal).await;
    assert_eq!(out.finished, Finished::Completed);
    let after = sim.snapshot();
    assert_eq!(after.cluster, before.cluster);
    assert_eq!(after.hosts, before.hosts);
    assert!(after.history.is_empty());
    assert!(journal.is_empty());
    let would: Vec<String> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::WouldRun { task, what } => Some(format!("{task}: {what}")),
            _ => None,
        })
        .collect();
    assert!(
        would.contains(
            &"v1.29.15/cp-1/kubeadm-upgrade-apply: sudo -n kubeadm upgrade apply v1.29.15 --yes"
                .to_string()
        ),
        "{would:#?}"
    );
    assert!(would.iter().any(|w| w.starts_with(
        "v1.29.15/worker-3/install-kubelet-kubectl@v1.29.15: sudo -n dnf install -y"
    )));
    assert!(
        would
            .iter()
            .any(|w| w
                .starts_with("v1.29.15/worker-1/drain: drain (timeout 600s, ignore DaemonSets"))
    );
}

/// A session of the HA sample's 1.29 plan that `stop` ends (given the session's stop handle)
/// at the operations `at` picks (at `phase`): it ends cancelled. Returns the plan, that
/// session's journal and outcome, and its sim (`stop` still hooked in).
async fn cancelled_at(
    phase: OpPhase,
    at: impl Fn(&OpPoint<'_>) -> bool + Send + Sync + 'static,
    stop: impl Fn(&crate::driver::StopHandle) + Send + Sync + 'static,
) -> (Arc<UpgradePlan>, Vec<Record>, Outcome, SimCluster) {
    let plan = plan("1.29", PlanOptions::default());
    let (handle, signal) = stop_channel();
    let sim = SimCluster::new(ha()).on_op(move |p| {
        if p.phase == phase && at(p) {
            stop(&handle);
        }
    });
    let mut journal = Vec::new();
    let out = drive_with(driver(&sim).stop_on(signal), &plan, &mut journal).await;
    assert_eq!(out.finished, Finished::Cancelled);
    (plan, journal, out, sim)
}

#[tokio::test(start_paused = true)]
async fn stopping_finishes_the_current_step_and_a_resume_goes_on() {
    // Ask to stop while cp-1's kubeadm upgrade apply runs.
    let (plan, mut journal, _, sim) = cancelled_at(
        OpPhase::Before,
        |p| p.what.contains("kubeadm upgrade apply"),
        |h| h.finish_current(),
    )
    .await;
    // The apply finished and was journaled; nothing started after it.
    let last_start = journal
        .iter()
        .rev()
        .find_map(|r| match &r.kind {
            RecordKind::TaskStarted { task, .. } => Some(task.clone()),
            _ => None,
        })
        .unwrap();
    assert!(last_start.step.as_str().ends_with("kubeadm-upgrade-apply"));
    assert!(matches!(
        &journal[journal.len() - 2].kind,
        RecordKind::TaskFinished {
            end: TaskEnd::Succeeded { .. },
            ..
        }
    ));
    let sim2 = SimCluster::from_state(sim.snapshot());
    let out = drive_with(driver(&sim2), &plan, &mut journal).await;
    assert_eq!(out.finished, Finished::Completed);
    assert_eq!(
        sim2.snapshot()
            .history
            .iter()
            .filter(|e| e.what.contains("kubeadm upgrade apply"))
            .count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn aborting_interrupts_the_step_and_a_resume_checks_it() {
    let (plan, mut journal, out, sim) = cancelled_at(
        OpPhase::Before,
        |p| p.what == "drain" && p.node.as_str() == "worker-2",
        |h| h.abort(),
    )
    .await;
    assert!(out.events.iter().any(|e| matches!(e, Event::StepFinished { outcome: StepOutcome::Interrupted, task, .. } if task.step.as_str() == "v1.29.15/worker-2/drain")));
    // The drain (whose postcondition, cordoned, already held before it) runs again.
    let sim2 = SimCluster::from_state(sim.snapshot());
    let out = drive_with(driver(&sim2), &plan, &mut journal).await;
    assert_eq!(out.finished, Finished::Completed);
    assert!(
        matches!(out.events.iter().find(|e| matches!(e, Event::StepStarted { .. })), Some(Event::StepStarted { task, attempt: 2, .. }) if task.step.as_str() == "v1.29.15/worker-2/drain")
    );
}

/// Every backup and snapshot file on the simulated nodes, as `node:path`.
fn backup_files(sim: &SimCluster) -> std::collections::BTreeSet<String> {
    sim.snapshot()
        .hosts
        .iter()
        .flat_map(|(n, h)| h.files.iter().map(move |f| format!("{n}:{f}")))
        .filter(|f| f.contains("/var/backups/kupgrade/"))
        .collect()
}

/// The run directories backups were written under.
fn run_dirs(files: &std::collections::BTreeSet<String>) -> std::collections::BTreeSet<String> {
    files
        .iter()
        .filter_map(|f| f.split("/var/backups/kupgrade/").nth(1)?.split('/').next())
        .map(str::to_string)
        .collect()
}

/// The way back is never written over: backups go under the run's id. A run aborted in the
/// middle of its backups (cp-1's copy made, the step interrupted) completes them under the
/// same id when resumed; a new run (a new journal) writes its own beside the first run's and
/// touches none of them.
#[tokio::test(start_paused = true)]
async fn a_resumed_backup_completes_and_a_new_run_writes_beside_an_earlier_one() {
    let (plan, mut journal, _, sim) = cancelled_at(
        OpPhase::After,
        |p| p.node.as_str() == "cp-1" && p.what.contains("cp -a -T /etc/kubernetes"),
        |h| h.abort(),
    )
    .await;
    let first = backup_files(&sim);
    assert_eq!(run_dirs(&first).len(), 1, "{first:?}");
    assert!(first.iter().any(|f| f.starts_with("cp-1:")), "{first:?}");
    assert!(
        !first.iter().any(|f| f.contains("etcd-before-")),
        "{first:?}"
    );

    // Resumed (the same journal): the interrupted backup completes, under the same id.
    let resumed = SimCluster::from_state(sim.snapshot());
    let out = drive_with(driver(&resumed), &plan, &mut journal).await;
    assert_eq!(out.finished, Finished::Completed);
    let all = backup_files(&resumed);
    assert_eq!(run_dirs(&all), run_dirs(&first), "{all:?}");
    for cp in ["cp-1", "cp-2", "cp-3"] {
        assert!(
            all.iter()
                .any(|f| f.starts_with(&format!("{cp}:")) && f.contains("etc-kubernetes-")),
            "{cp}: {all:?}"
        );
    }

    // A new run instead (a new journal, a moment later): its own directory; the first run's
    // files are all still there and none of its writes went to them.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let again = SimCluster::from_state(sim.snapshot());
    let earlier = sim.snapshot().history.len();
    let out = drive_with(driver(&again), &plan, &mut Vec::new()).await;
    assert_eq!(out.finished, Finished::Completed);
    let both = backup_files(&again);
    assert!(first.is_subset(&both), "{both:?}");
    let dirs = run_dirs(&both);
    assert_eq!(dirs.len(), 2, "{both:?}");
    let ours = dirs
        .iter()
        .find(|d| !run_dirs(&first).contains(*d))
        .unwrap();
    let written: Vec<String> = again
        .snapshot()
        .history
        .into_iter()
        .skip(earlier)
        .map(|h| h.what)
        .filter(|w| w.contains("/var/backups/kupgrade/"))
        .collect();
    assert!(!written.is_empty());
    for w in written {
        assert!(
            w.contains(ours.as_str()),
            "the second run wrote outside its own directory: {w}"
        );
    }
}

// ---- conformance ----------------------------------------------------------------------------

struct Fixture {
    sim: SimCluster,
    next: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl kupgrade_core::conformance::cluster_ops::ClusterFixture for Fixture {
    fn ops(&self) -> &dyn ClusterOperations {
        &self.sim
    }
    async fn add_node(&self, version: &KubeVersion) -> Result<NodeName, BoxError> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let node = Node::worker(&format!("conformance-{n}"), version.clone())?;
        let name = node.name.clone();
        self.sim.add_node(node)?;
        Ok(name)
    }
    async fn add_pod(
        &self,
        node: &NodeName,
        kind: kupgrade_core::conformance::cluster_ops::PodKind,
        labels: &BTreeMap<String, String>,
    ) -> Result<PodRef, BoxError> {
        use kupgrade_core::conformance::cluster_ops::PodKind as K;
        if kind == K::EmptyDir {
            return Ok(self.sim.add_pod_with_empty_dir(node, labels.clone())?);
        }
        let kind = match kind {
            K::Replicated => PodKind::Replicated,
            K::DaemonSet => PodKind::DaemonSet,
            K::Mirror => PodKind::Mirror,
            K::Unreplicated => PodKind::Unreplicated,
            other => return Err(format!("unknown pod kind {other:?}").into()),
        };
        Ok(self.sim.add_pod(node, kind, labels.clone())?)
    }
    async fn add_budget(
        &self,
        labels: &BTreeMap<String, String>,
        disruptions: u32,
    ) -> Result<String, BoxError> {
        Ok(self.sim.add_budget(labels.clone(), disruptions))
    }
    async fn pods_on(&self, node: &NodeName) -> Result<Vec<PodRef>, BoxError> {
        Ok(self.sim.pods_on(node))
    }
    async fn is_cordoned(&self, node: &NodeName) -> Result<bool, BoxError> {
        Ok(self
            .sim
            .cluster()
            .node(node.as_str())
            .ok_or("no such node")?
            .unschedulable)
    }
    async fn set_kubelet(
        &self,
        node: &NodeName,
        version: &KubeVersion,
        ready: bool,
    ) -> Result<(), BoxError> {
        Ok(self.sim.set_kubelet(node, version, ready)?)
    }
}

/// A plan whose drains and waits were given `u64::MAX` seconds (a plan file, or an option
/// past the command line's cap) runs like one with long waits: no duration overflows.
#[tokio::test(start_paused = true)]
async fn a_plan_with_huge_waits_runs_without_overflow() {
    let options = PlanOptions {
        drain: kupgrade_core::ports::DrainOptions {
            timeout_seconds: u64::MAX,
            ..Default::default()
        },
        ready_timeout_seconds: u64::MAX,
        ..PlanOptions::default()
    };
    let plan = plan("stable", options);
    let sim = SimCluster::new(ha());
    let out = drive_with(driver(&sim), &plan, &mut Vec::new()).await;
    assert!(out.finished.is_completed(), "{:?}", out.finished);
}

#[tokio::test(start_paused = true)]
async fn the_simulation_passes_the_cluster_operations_conformance_suite() {
    use kupgrade_core::conformance::cluster_ops::{Capabilities, run_all};
    let fixture = Fixture {
        // Evicted pods are not replaced during a check (the suite's contract).
        sim: SimCluster::new(ClusterState::new(Vec::new())).with_rescheduling(false),
        next: Default::default(),
    };
    run_all(&fixture, &Capabilities::default()).await;
}

#[tokio::test(start_paused = true)]
async fn an_unfinished_kube_proxy_rollout_is_waited_for() {
    let mut cluster = ha();
    cluster.node_mut("worker-2").unwrap().versions.kube_proxy = Some(v("v1.28.8"));
    let plan = plan_of(&cluster, "1.29", PlanOptions::default());
    assert!(
        plan.steps
            .iter()
            .any(|s| s.id.as_str().ends_with("kube-proxy-rollout"))
    );
    let sim = SimCluster::new(cluster.clone());
    let out = drive_with(driver(&sim), &plan, &mut Vec::new()).await;
    assert_eq!(out.finished, Finished::Completed, "{}", out.finished);
    // A rollout that never finishes makes the wait time out, and the run halt.
    let stuck = SimCluster::new(cluster).with_timings(Timings {
        daemonset_rollout: std::time::Duration::from_secs(86_400),
        ..Timings::default()
    });
    let out = drive_with(driver(&stuck), &plan, &mut Vec::new()).await;
    let report = out.finished.report().expect("halted");
    assert!(
        report
            .summary
            .contains("kube-proxy still runs another version on 1 node(s): worker-2 (v1.28.8)"),
        "{report}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_run_of_a_plan_from_before_a_halted_run_is_refused_before_any_command() {
    // The first run is stopped right after `kubeadm upgrade apply` on cp-1.
    let (plan, _, _, sim) = cancelled_at(
        OpPhase::After,
        |p| p.what.contains("kubeadm upgrade apply"),
        |h| h.finish_current(),
    )
    .await;
    assert!(
        sim.snapshot()
            .history
            .last()
            .unwrap()
            .what
            .contains("kubeadm upgrade apply")
    );
    let before = sim.snapshot();
    assert!(
        before.hosts[&name("cp-1")]
            .files
            .iter()
            .any(|f| f.contains("etcd-before-"))
    );

    // The same plan again, as a new run (a new journal): refused at the pre-flight check.
    let second = drive_with(driver(&sim), &plan, &mut Vec::new()).await;
    let report = second.finished.report().expect("halted");
    assert_eq!(report.reason, StopReason::Drift, "{report}");
    assert_eq!(
        report.task.as_ref().unwrap().step.as_str(),
        plan.steps[0].id.as_str()
    );
    let text = report.to_string();
    for component in [
        "kubeadm",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        assert!(
            text.contains(&format!(
                "cp-1: expected {component} v1.28.9, where the plan starts, found {component} v1.29.15"
            )),
            "{text}"
        );
    }
    // Not a command ran, not a file changed.
    let after = sim.snapshot();
    assert_eq!(after.history.len(), before.history.len());
    assert_eq!(after.hosts, before.hosts);
}

// ---- rollback runbooks ------------------------------------------------------------------

/// The node commands of `step` on each of its nodes, as run `run` carries them out; every one
/// must succeed.
async fn run_step(
    sim: &SimCluster,
    plan: &UpgradePlan,
    step: &kupgrade_core::plan::Step,
    run: &str,
) {
    for node in &step.nodes {
        for spec in plan.commands_for(step, node.as_str()) {
            let (code, text) = sh(sim, node.as_str(), spec.clone().for_run(run)).await;
            assert_eq!(code, 0, "{} on {node}: {spec}: {text}", step.id);
        }
    }
}

/// The ordinary part of a rollback runbook, run on the simulated nodes with their package
/// managers, puts every package and repository back where the run started: stopped just
/// before the first hop's point of no return, after its repository switch and kubeadm install.
#[tokio::test(start_paused = true)]
async fn a_rollback_before_the_point_of_no_return_runs_back_to_the_start() {
    use kupgrade_core::plan::Action;
    use kupgrade_core::plan::rollback::{RollbackKind, rollback};
    let plan = plan("1.30", PlanOptions::default());
    let run = "1762000000000-0a1b2c3d";
    let pnr = plan
        .steps
        .iter()
        .position(|s| s.point_of_no_return)
        .unwrap();
    let sim = SimCluster::new(ha());
    let start = sim.snapshot();
    // The node steps before it, as the run would have carried them out.
    for step in &plan.steps[..pnr] {
        if !step.nodes.is_empty() && !step.commands.is_empty() {
            run_step(&sim, &plan, step, run).await;
        }
    }
    let moved = sim.snapshot();
    let kubeadm =
        |s: &crate::sim::SimState, n: &str| s.cluster.node(n).unwrap().versions.kubeadm.clone();
    assert_ne!(
        kubeadm(&moved, "cp-1"),
        kubeadm(&start, "cp-1"),
        "kubeadm moved"
    );
    assert!(
        plan.steps[..pnr]
            .iter()
            .any(|s| matches!(s.action, Action::SwitchRepository { .. }))
    );
    let started = |id: &kupgrade_core::plan::StepId, _: Option<&NodeName>| {
        plan.steps[..pnr].iter().any(|s| &s.id == id)
    };
    let r = rollback(&plan, Some(run), started);
    assert_eq!(r.kind, RollbackKind::Ordinary, "{}", r.text());
    for step in &r.steps {
        run_step(&sim, &plan, step, run).await;
    }
    let back = sim.snapshot();
    for node in &start.cluster.nodes {
        let n = node.name.as_str();
        assert_eq!(kubeadm(&back, n), kubeadm(&start, n), "{n}: kubeadm");
        assert_eq!(
            back.cluster.node(n).unwrap().versions.kubelet,
            node.versions.kubelet,
            "{n}: kubelet"
        );
        assert_eq!(
            back.hosts[&node.name].repo, start.hosts[&node.name].repo,
            "{n}: repository"
        );
        assert_eq!(
            back.hosts[&node.name].held, start.hosts[&node.name].held,
            "{n}: holds"
        );
    }
}

/// At every hop, stopped just before its point of no return, the rollback's ordinary steps
/// put the packages and repositories that hop moved beyond its starting version back where
/// the hop found them: the state that the same run reaches without those steps. Workers the
/// hop brought up to the version the control plane already runs (catching up, so that the
/// next apply keeps them within the skew) stay there: a rollback never downgrades a kubelet
/// that finished its upgrade to a version the policy allows.
#[tokio::test(start_paused = true)]
async fn a_rollback_before_each_hops_point_of_no_return_runs_back_to_the_hops_start() {
    use kupgrade_core::plan::rollback::{RollbackKind, rollback};
    let plan = plan("1.30", PlanOptions::default());
    let run = "1762000000000-0a1b2c3d";
    let pnrs: Vec<usize> = (0..plan.steps.len())
        .filter(|&i| plan.steps[i].point_of_no_return)
        .collect();
    assert_eq!(pnrs.len(), plan.hops.len(), "one apply per hop");
    assert!(pnrs.len() >= 2, "the HA sample has two hops");
    let runs =
        |step: &kupgrade_core::plan::Step| !step.nodes.is_empty() && !step.commands.is_empty();
    for (k, &pnr) in pnrs.iter().enumerate() {
        // Where the hop found the nodes: everything before its apply but the hop's own steps
        // toward its target (their ids start with it; the catch-up steps of the hop's
        // workers, to the version it starts from, stay).
        let toward = format!("{}/", plan.hops[k].to);
        let beyond = |step: &kupgrade_core::plan::Step| {
            step.hop == Some(k) && step.id.0.starts_with(&toward)
        };
        let reference = SimCluster::new(ha());
        for step in plan.steps[..pnr].iter().filter(|s| !beyond(s)) {
            if runs(step) {
                run_step(&reference, &plan, step, run).await;
            }
        }
        let sim = SimCluster::new(ha());
        for step in &plan.steps[..pnr] {
            if runs(step) {
                run_step(&sim, &plan, step, run).await;
            }
        }
        let found = reference.snapshot();
        let moved = sim.snapshot();
        assert_ne!(
            moved.hosts, found.hosts,
            "hop {k}: its steps before the apply moved packages or repositories"
        );
        let started = |id: &kupgrade_core::plan::StepId, _: Option<&NodeName>| {
            plan.steps[..pnr].iter().any(|s| &s.id == id)
        };
        let r = rollback(&plan, Some(run), started);
        assert_eq!(r.kind, RollbackKind::Ordinary, "hop {k}: {}", r.text());
        assert!(!r.steps.is_empty(), "hop {k}: executable steps");
        for step in &r.steps {
            run_step(&sim, &plan, step, run).await;
        }
        let back = sim.snapshot();
        for node in &found.cluster.nodes {
            let n = &node.name;
            let (b, f) = (back.cluster.node(n.as_str()).unwrap(), node);
            assert_eq!(
                b.versions.kubeadm, f.versions.kubeadm,
                "hop {k}, {n}: kubeadm"
            );
            assert_eq!(
                b.versions.kubelet, f.versions.kubelet,
                "hop {k}, {n}: kubelet"
            );
            assert_eq!(
                back.hosts[n].repo, found.hosts[n].repo,
                "hop {k}, {n}: repository"
            );
            assert_eq!(
                back.hosts[n].held, found.hosts[n].held,
                "hop {k}, {n}: holds"
            );
        }
    }
}
