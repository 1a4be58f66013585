//! The examples' command lines, in process: every planning option reaches the plan alike
//! through `plan` and `apply`; `apply --plan` runs a reviewed plan only unedited and only on
//! the cluster it was made for; a resume keeps its policy; a refused run leaves its journal
//! alone; and no error text names an option that does not exist.
//!
//! The examples are compiled in as modules (`#[path]`), so the tests call their functions.
// Each example brings its own copy of the shared modules (examples/common/), as it does when
// it is built as a program.
#![allow(clippy::duplicate_mod)]
#[allow(dead_code)]
#[path = "../apply.rs"]
mod apply;
#[allow(dead_code)]
#[path = "../check.rs"]
mod check;
#[allow(dead_code)]
#[path = "../discover.rs"]
mod discover;
#[allow(dead_code)]
#[path = "../plan.rs"]
mod plan;

use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};
use kupgrade_core::ClusterState;
use kupgrade_core::lifecycle::ReleaseCalendar;
use kupgrade_core::plan::{Action, UpgradePlan};
use kupgrade_core::ports::DrainOptions;
use kupgrade_core::readiness::Workloads;
use kupgrade_core::run::{Finished, Record, RetryPolicy, RunOptions, fingerprint};
use kupgrade_exec::Journal;

const DATE: &str = "2025-03-01";

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn cluster(name: &str) -> ClusterState {
    let file = sample(&format!("clusters/{name}"));
    let text = std::fs::read_to_string(&file).unwrap();
    kupgrade_core::inventory::parse(&text, name).unwrap()
}

/// `extra`, with `--date DATE` and `--target 1.30` unless it gives its own.
fn defaulted(extra: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    for (flag, value) in [("--date", DATE), ("--target", "1.30")] {
        if !extra.contains(&flag) {
            argv.extend([flag.to_string(), value.to_string()]);
        }
    }
    argv
}

/// `program`, then `extra` with the defaults of [`defaulted`].
fn argv(program: &str, extra: &[&str]) -> Vec<String> {
    [vec![program.to_string()], defaulted(extra)].concat()
}

fn apply_args<S: AsRef<str>>(extra: &[S]) -> apply::args::Args {
    let argv = std::iter::once("apply").chain(extra.iter().map(AsRef::as_ref));
    apply::args::Args::parse_from_iter(argv).unwrap()
}

/// What `apply` makes of `args` for the HA sample: its plan and its policy.
fn ha_work(args: &apply::args::Args) -> apply::Work {
    apply::work(
        args,
        ReleaseCalendar::embedded(),
        &cluster("ha.yaml"),
        "ha",
        None,
    )
    .unwrap()
}

/// The plan `plan` makes with `p` for the HA sample, with `workloads` when given.
fn ha_plan(p: &plan::Args, workloads: Option<&Workloads>) -> UpgradePlan {
    plan::plan_for(
        &p.planning,
        ReleaseCalendar::embedded(),
        &cluster("ha.yaml"),
        "ha",
        workloads,
    )
    .unwrap()
}

/// The plans `plan` and `apply` make with `extra`; their planning options must agree.
fn planned(
    extra: &[&str],
    cluster: &ClusterState,
) -> (anyhow::Result<UpgradePlan>, anyhow::Result<UpgradePlan>) {
    let p = plan::Args::try_parse_from(argv("plan", extra)).unwrap();
    let a = apply::args::Args::parse_from_iter(argv("apply", extra)).unwrap();
    assert_eq!(
        p.planning.options(),
        a.planning.options(),
        "plan and apply read {extra:?} differently"
    );
    (
        plan::plan_for(
            &p.planning,
            ReleaseCalendar::embedded(),
            cluster,
            "the cluster",
            None,
        ),
        apply::work(
            &a,
            ReleaseCalendar::embedded(),
            cluster,
            "the cluster",
            a.evidence.read().unwrap().as_ref(),
        )
        .map(|w| w.plan),
    )
}

/// The plan both make with `extra` (the same one).
fn both(extra: &[&str], cluster: &ClusterState) -> UpgradePlan {
    let (p, a) = planned(extra, cluster);
    let p = p.unwrap_or_else(|e| panic!("plan {extra:?}: {e:#}"));
    let a = a.unwrap_or_else(|e| panic!("apply {extra:?}: {e:#}"));
    assert_eq!(p, a, "plan and apply plan differently with {extra:?}");
    p
}

/// The error both give with `extra` (the same one).
fn both_refuse(extra: &[&str], cluster: &ClusterState) -> String {
    let (p, a) = planned(extra, cluster);
    let p = format!(
        "{:#}",
        p.err().unwrap_or_else(|| panic!("plan {extra:?} planned"))
    );
    let a = format!(
        "{:#}",
        a.err().unwrap_or_else(|| panic!("apply {extra:?} planned"))
    );
    assert_eq!(p, a);
    p
}

fn drains(plan: &UpgradePlan) -> usize {
    plan.steps
        .iter()
        .filter(|s| matches!(s.action, Action::Drain { .. }))
        .count()
}

fn provisions(plan: &UpgradePlan) -> usize {
    plan.steps
        .iter()
        .filter(|s| matches!(s.action, Action::ProvisionNodes { .. }))
        .count()
}

#[test]
fn every_planning_option_reaches_the_plan_of_plan_and_of_apply() {
    let ha = cluster("ha.yaml");
    let base = both(&[], &ha);
    assert_eq!(base.target.to_string(), "v1.30.10");

    // What to plan for.
    assert_eq!(
        both(&["--target", "1.31"], &ha).target.to_string(),
        "v1.31.6"
    );
    assert_eq!(
        both(&["--date", "2025-06-20"], &ha).target.to_string(),
        "v1.30.14"
    );
    assert_eq!(
        both(&["--patch-first"], &ha).hops.len(),
        base.hops.len() + 1,
        "--patch-first adds the hop to v1.28's last patch"
    );

    // How workers move.
    assert_eq!(provisions(&base), 0);
    let replace = both(&["--strategy", "replace", "--batch", "3"], &ha);
    assert!(provisions(&replace) > 0);
    // The surge bounds the batch of new nodes.
    let surge = both(
        &["--strategy", "replace", "--batch", "3", "--max-surge", "3"],
        &ha,
    );
    assert!(provisions(&surge) < provisions(&replace));
    assert!(drains(&both(&["--batch", "3"], &ha)) < drains(&base));
    assert!(
        drains(&both(&["--batch", "6", "--max-per-zone", "1"], &ha))
            > drains(&both(&["--batch", "6"], &ha))
    );
    assert!(drains(&both(&["--defer-workers"], &ha)) < drains(&base));
    let zoned = |p: &UpgradePlan| p.nodes.iter().filter(|n| n.zone.is_some()).count();
    assert_eq!(zoned(&base), 9);
    assert_eq!(zoned(&both(&["--zone-key", "example.com/rack"], &ha)), 0);

    // The policy.
    let one_behind = sample("policies/kubelet-one-behind.yaml");
    let with_policy = both(&["--policy", one_behind.to_str().unwrap()], &ha);
    assert_eq!(base.policy, "upstream");
    assert_eq!(with_policy.policy, "upstream+kubelet-one-behind");
    // The strict sample plans the HA sample, as its header says.
    let strict = sample("policies/strict.yaml");
    let strict = both(
        &["--policy", strict.to_str().unwrap(), "--target", "stable"],
        &ha,
    );
    assert_eq!(strict.policy, "upstream+strict");

    // What to accept: refused without the option (whose name the error gives), planned with it.
    let accepted = |cluster: &ClusterState, extra: &[&str], option: &str| -> UpgradePlan {
        let e = both_refuse(extra, cluster);
        assert!(e.contains(option), "{extra:?} without {option}: {e}");
        both(&[extra, &[option]].concat(), cluster)
    };
    let torn = cluster("mid-upgrade-docs-order.yaml");
    accepted(&torn, &[], "--tolerate-initial-violations");
    let mut not_ready = ha.clone();
    not_ready.node_mut("worker-1").unwrap().ready = false;
    accepted(&not_ready, &[], "--allow-not-ready");
    let late = ["--date", "2026-01-01"];
    accepted(&ha, &late, "--allow-unsupported-target");
    let unknown = ["--target", "v1.30.99"];
    let plan = accepted(&ha, &unknown, "--allow-unknown-versions");
    assert_eq!(plan.target.to_string(), "v1.30.99");
    let rc = ["--target", "v1.32.0-rc.0"];
    let plan = accepted(&ha, &rc, "--allow-prerelease");
    assert_eq!(plan.target.to_string(), "v1.32.0-rc.0");

    // How long to wait, how to drain.
    let ready_timeouts = |p: &UpgradePlan| -> Vec<u64> {
        p.steps
            .iter()
            .filter_map(|s| match s.action {
                Action::WaitReady {
                    timeout_seconds, ..
                } => Some(timeout_seconds),
                _ => None,
            })
            .collect()
    };
    assert!(ready_timeouts(&base).iter().all(|t| *t == 600));
    let waits = ready_timeouts(&both(&["--ready-timeout", "900"], &ha));
    assert!(!waits.is_empty() && waits.iter().all(|t| *t == 900));
    let drain_options = |p: &UpgradePlan| -> Vec<DrainOptions> {
        p.steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Drain { options } => Some(options.clone()),
                _ => None,
            })
            .collect()
    };
    assert!(
        drain_options(&base)
            .iter()
            .all(|o| *o == DrainOptions::default())
    );
    let kubectl_like = both(
        &[
            "--delete-emptydir-data",
            "--force",
            "--ignore-daemonsets=false",
            "--drain-grace-period",
            "5",
            "--drain-timeout",
            "60",
            "--disable-eviction",
        ],
        &ha,
    );
    let all = DrainOptions {
        grace_period_seconds: Some(5),
        timeout_seconds: 60,
        ignore_daemonsets: false,
        delete_emptydir_data: true,
        force: true,
        disable_eviction: true,
    };
    let options = drain_options(&kubectl_like);
    assert!(
        !options.is_empty() && options.iter().all(|o| *o == all),
        "{options:?}"
    );
    // `--ignore-daemonsets` alone keeps the default.
    assert!(
        drain_options(&both(&["--ignore-daemonsets"], &ha))
            .iter()
            .all(|o| o.ignore_daemonsets)
    );

    // Pre-staging: on by default, off with `--no-prestage`.
    let staged = |p: &UpgradePlan| p.steps.iter().filter(|s| s.action.is_prestage()).count();
    assert!(base.options.prestage && staged(&base) > 0);
    let unstaged = both(&["--no-prestage"], &ha);
    assert!(!unstaged.options.prestage);
    assert_eq!(staged(&unstaged), 0);
    assert!(unstaged.estimate.total_seconds > base.estimate.total_seconds);
}

/// The gate flags and a gates file reach the plans of `plan` and of `apply` alike, as gate
/// steps with the flags' times; a bad flag or file is refused by both, naming it.
#[test]
fn gate_flags_and_files_reach_the_plan_of_plan_and_of_apply() {
    use kupgrade_core::gate::{GatePoint, OnTimeout};
    let ha = cluster("ha.yaml");
    let gates = |plan: &UpgradePlan| -> Vec<(String, kupgrade_core::gate::Gate)> {
        plan.steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Gate { gate, .. } => Some((s.id.to_string(), (**gate).clone())),
                _ => None,
            })
            .collect()
    };
    let plan = both(
        &[
            "--gate-rollout",
            "deployment/shop/web",
            "--gate-regression",
            "shop:app=web",
            "--gate-command",
            "true",
            "--gate-after",
            "both",
            "--gate-timeout",
            "120",
            "--gate-interval",
            "3",
            "--gate-on-timeout",
            "warn",
        ],
        &ha,
    );
    let found = gates(&plan);
    let uncordons = plan
        .steps
        .iter()
        .filter(|s| matches!(s.action, Action::Uncordon))
        .count();
    // Three gates after each batch and after each hop.
    assert_eq!(plan.hops.len(), 2);
    assert_eq!(found.len(), 3 * (uncordons + 2), "{found:#?}");
    for (_, g) in &found {
        assert_eq!((g.timeout_seconds, g.interval_seconds), (120, 3));
        assert_eq!(g.on_timeout, OnTimeout::Warn);
        assert_eq!(g.after, vec![GatePoint::Batch, GatePoint::Hop]);
    }
    assert!(
        found
            .iter()
            .any(|(id, _)| id == "v1.30.10/hop/gate-regression-1")
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gates.yaml");
    std::fs::write(
        &file,
        "kind: Gates\ngates:\n  - name: web\n    after: [hop]\n    rollout: { kind: StatefulSet, namespace: db, name: pg }\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let plan = both(&["--gates", path], &ha);
    let ids: Vec<String> = gates(&plan).into_iter().map(|g| g.0).collect();
    assert_eq!(ids, ["v1.29.14/hop/gate-web", "v1.30.10/hop/gate-web"]);

    std::fs::write(
        &file,
        "gates:\n  - name: web\n    rollout: { kind: Job, name: x }\n",
    )
    .unwrap();
    let err = both_refuse(&["--gates", path], &ha);
    assert!(
        err.contains(&format!(
            "{path}:3:22: gate 1 (\"web\"): rollout.kind: unknown variant `Job`"
        )),
        "{err}"
    );
    let err = both_refuse(&["--gate-rollout", "job/shop/web"], &ha);
    assert!(err.contains("--gate-rollout \"job/shop/web\""), "{err}");
}

#[test]
fn waits_are_capped_so_no_deadline_overflows() {
    for flag in ["--drain-timeout", "--drain-grace-period", "--ready-timeout"] {
        let e = apply::args::Args::parse_from_iter(["apply", flag, "18446744073709551615"])
            .err()
            .unwrap_or_else(|| panic!("{flag} took u64::MAX"));
        let text = e.to_string();
        assert!(text.contains(flag) && text.contains("604800"), "{text}");
        assert!(plan::Args::try_parse_from(["plan", flag, "604801"]).is_err());
        assert!(plan::Args::try_parse_from(["plan", flag, "604800"]).is_ok());
    }
    assert!(apply::args::Args::parse_from_iter(["apply", "--drain-timeout", "0"]).is_err());
}

#[test]
fn disable_eviction_is_off_unless_asked_for_by_its_name() {
    assert!(
        !apply_args::<&str>(&[])
            .planning
            .options()
            .drain
            .disable_eviction
    );
    for abbreviation in ["--disable", "--disable-evict", "--no-eviction"] {
        assert!(
            apply::args::Args::parse_from_iter(["apply", abbreviation]).is_err(),
            "{abbreviation} was taken"
        );
    }
    assert!(
        apply_args(&["--disable-eviction"])
            .planning
            .options()
            .drain
            .disable_eviction
    );
}

#[test]
fn apply_maps_its_run_options() {
    assert_eq!(
        apply_args(&["--max-parallel", "4", "--attempts", "1"]).run_options(),
        RunOptions {
            max_parallel: Some(4),
            retry: RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            },
        }
    );
    assert_eq!(apply_args::<&str>(&[]).run_options(), RunOptions::default());
}

/// `plan --format json`'s document for the HA sample, written to `dir/plan.json`.
fn reviewed_plan(dir: &Path, extra: &[&str]) -> (PathBuf, UpgradePlan) {
    let plan = ha_plan(
        &plan::Args::try_parse_from(argv("plan", extra)).unwrap(),
        None,
    );
    let file = dir.join("plan.json");
    std::fs::write(&file, plan::reviewed::to_json(&plan)).unwrap();
    (file, plan)
}

/// `plan` streams its JSON document: the same bytes as the document built whole.
#[test]
fn the_streamed_plan_document_is_the_one_built_whole() {
    let plan = ha_plan(
        &plan::Args::try_parse_from(argv("plan", &[])).unwrap(),
        None,
    );
    let mut out = Vec::new();
    plan::reviewed::write_json(&plan, &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        plan::reviewed::to_json(&plan)
    );
}

/// The journal `up.journal` in `dir` of a completed run of the HA sample (in virtual time),
/// and the arguments of that run.
async fn finished_run(dir: &Path) -> (String, Vec<String>) {
    let journal = dir.join("up.journal").to_str().unwrap().to_string();
    let run = defaulted(&["--journal", &journal, "--sim-speed", "0"]);
    assert!(apply_ok(&run).await.is_completed());
    (journal, run)
}

/// How `apply` with `extra` ended (it ran).
async fn apply_ok(extra: &[impl AsRef<str>]) -> Finished {
    apply::apply(apply_args(extra)).await.unwrap()
}

/// The error `apply` with `extra` gives (it did not run).
async fn apply_err(extra: &[impl AsRef<str> + std::fmt::Debug]) -> String {
    match apply::apply(apply_args(extra)).await {
        Ok(outcome) => panic!("apply {extra:?} ran: {outcome}"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_reviewed_plan_runs_as_written_only() {
    let dir = tempfile::tempdir().unwrap();
    let (file, plan) = reviewed_plan(dir.path(), &[]);
    let file = file.to_str().unwrap();

    // The document is the plan, with its fingerprint.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(doc["fingerprint"], fingerprint(&plan));
    assert_eq!(doc["apiVersion"], "kupgrade.dev/v1alpha1");

    // Unedited, it runs on the cluster it was made for, as it is: the date it was made for
    // (when v1.30 was supported) is not looked at again.
    let outcome = apply_ok(&["--plan", file, "--sim-speed", "0"]).await;
    assert!(outcome.is_completed(), "{outcome}");

    // Edited after review: refused, naming the file and both fingerprints.
    let edited = dir.path().join("edited.json");
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains("\"batch\": \"1\""));
    std::fs::write(
        &edited,
        text.replace("\"batch\": \"1\"", "\"batch\": \"3\""),
    )
    .unwrap();
    let edited = edited.to_str().unwrap();
    let e = apply_err(&["--plan", edited, "--sim-speed", "0"]).await;
    assert!(
        e.contains(edited) && e.contains("edited after it was written"),
        "{e}"
    );
    assert!(e.contains(&fingerprint(&plan)), "{e}");
    assert_eq!(e.matches("fnv1a64:").count(), 2, "{e}");

    // Stale: the cluster is no longer where the plan starts; refused, naming the nodes.
    let moved = sample("clusters/mid-upgrade.yaml");
    let e = apply_err(&["--plan", file, "--cluster", moved.to_str().unwrap()]).await;
    assert!(e.contains("does not fit"), "{e}");
    assert!(
        e.contains("worker-3: kubelet v1.28.9 in the plan, v1.27.13 in the cluster"),
        "{e}"
    );
    assert!(
        e.contains("worker-5: in the plan, not in the cluster"),
        "{e}"
    );

    // Not planned again: planning options beside it are refused by name.
    let e = apply_err(&["--plan", file, "--target", "1.29", "--drain-timeout", "60"]).await;
    assert!(
        e.starts_with("--target, --drain-timeout cannot be given with --plan"),
        "{e}"
    );
    let e = apply_err(&["--plan", file, "--calendar", file]).await;
    assert!(
        e.starts_with("--calendar cannot be given with --plan"),
        "{e}"
    );

    // A document that records no fingerprint is not a reviewed plan.
    let bare = dir.path().join("bare.json");
    std::fs::write(&bare, serde_json::to_string(&plan).unwrap()).unwrap();
    let e = apply_err(&["--plan", bare.to_str().unwrap()]).await;
    assert!(e.contains("records no fingerprint"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn a_reviewed_plan_runs_with_the_policy_it_was_made_with() {
    let dir = tempfile::tempdir().unwrap();
    let policy = sample("policies/kubelet-one-behind.yaml");
    let policy = policy.to_str().unwrap();
    let (file, _) = reviewed_plan(dir.path(), &["--policy", policy]);
    let file = file.to_str().unwrap();
    let e = apply_err(&["--plan", file, "--sim-speed", "0"]).await;
    assert!(
        e.contains("planned with the upstream+kubelet-one-behind policy")
            && e.contains("would check the upstream policy"),
        "{e}"
    );
    let work = ha_work(&apply_args(&["--plan", file, "--policy", policy]));
    assert_eq!(work.policy.policy().name(), "upstream+kubelet-one-behind");
    let outcome = apply_ok(&["--plan", file, "--policy", policy, "--sim-speed", "0"]).await;
    assert!(outcome.is_completed(), "{outcome}");
}

#[tokio::test(start_paused = true)]
async fn a_resume_keeps_the_policy_the_run_started_with() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("up.journal");
    let journal = journal.to_str().unwrap();
    let one_behind = sample("policies/kubelet-one-behind.yaml");
    let one_behind = one_behind.to_str().unwrap();
    let start = defaulted(&[
        "--journal",
        journal,
        "--policy",
        one_behind,
        "--sim-speed",
        "0",
    ]);
    let work = ha_work(&apply_args(&start));
    assert_eq!(work.policy.policy().name(), "upstream+kubelet-one-behind");
    assert!(apply_ok(&start).await.is_completed());
    assert!(Path::new(&format!("{journal}.policy.json")).exists());

    // Without --policy, the resume checks the recorded policy; with the same file, too.
    for extra in [&[][..], &["--policy", one_behind][..]] {
        let work = ha_work(&apply_args(
            &[&["--journal", journal, "--resume"][..], extra].concat(),
        ));
        assert_eq!(work.policy.policy().name(), "upstream+kubelet-one-behind");
        assert_eq!(work.plan.policy, "upstream+kubelet-one-behind");
    }
    // Another policy is refused, naming both.
    let strict = sample("policies/strict.yaml");
    let e = apply_err(&[
        "--journal",
        journal,
        "--resume",
        "--policy",
        strict.to_str().unwrap(),
    ])
    .await;
    assert!(
        e.contains("checks --policy")
            && e.contains("(kubelet-one-behind), not --policy")
            && e.contains("(strict)"),
        "{e}"
    );
    // So are planning options.
    let e = apply_err(&["--journal", journal, "--resume", "--batch", "2"]).await;
    assert!(
        e.starts_with("--batch cannot be given with --resume"),
        "{e}"
    );
    // And the release data, which only planning reads.
    let e = apply_err(&["--journal", journal, "--resume", "--live-releases"]).await;
    assert!(
        e.starts_with("--live-releases cannot be given with --resume"),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_resume_without_a_recorded_run_is_refused_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A finished run leaves its plan beside the journal; then the journal is lost.
    let (journal, _) = finished_run(dir.path()).await;
    let journal = journal.as_str();
    assert!(Path::new(&format!("{journal}.plan.json")).exists());
    let resume = ["--journal", journal, "--resume", "--sim-speed", "0"];
    for (bytes, found) in [
        (None, "there is no such file"),
        (Some(&b""[..]), "the file is empty"),
        (
            Some(&b"{\"v\":1,\"at\":\"2026-"[..]),
            "the file holds only an incomplete line",
        ),
    ] {
        match bytes {
            None => std::fs::remove_file(journal).unwrap(),
            Some(b) => std::fs::write(journal, b).unwrap(),
        }
        let e = apply_err(&resume).await;
        assert!(
            e.starts_with(&format!("cannot resume from journal {journal}: {found}"))
                && e.contains("start a new run without --resume"),
            "{e}"
        );
        // Nothing was written: the journal is as it was.
        assert_eq!(std::fs::read(journal).ok().as_deref(), bytes, "{found}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_run_leaves_a_torn_journal_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, run) = finished_run(dir.path()).await;
    let journal = journal.as_str();
    let mut bytes = std::fs::read(journal).unwrap();
    bytes.extend_from_slice(b"{\"record\":\"sta");
    std::fs::write(journal, &bytes).unwrap();

    let e = apply_err(&run).await;
    assert!(e.contains("already records a run"), "{e}");
    let after = std::fs::read(journal).unwrap();
    assert!(
        after == bytes,
        "the refused run changed the journal ({} bytes, then {})",
        bytes.len(),
        after.len()
    );
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_reports_a_corrupt_or_locked_journal() {
    let dir = tempfile::tempdir().unwrap();
    let dry_run =
        |journal: &Path| defaulted(&["--dry-run", "--journal", journal.to_str().unwrap()]);
    let corrupt = dir.path().join("corrupt.journal");
    std::fs::write(&corrupt, "not a record\n").unwrap();
    let e = apply_err(&dry_run(&corrupt)).await;
    assert!(e.contains("corrupt.journal:1: not a valid record"), "{e}");

    let locked = dir.path().join("locked.journal");
    let (_held, _) = Journal::<Record>::open(&locked).unwrap();
    let e = apply_err(&dry_run(&locked)).await;
    assert!(e.contains("is in use by another kupgrade run"), "{e}");
}

#[test]
fn check_fails_on_errors_and_takes_policies() {
    let args =
        |extra: &[&str]| check::Args::try_parse_from([&["check"][..], extra].concat()).unwrap();
    let docs_order = sample("clusters/mid-upgrade-docs-order.yaml");
    let docs_order = docs_order.to_str().unwrap();
    let mid = sample("clusters/mid-upgrade.yaml");
    let mid = mid.to_str().unwrap();
    assert!(
        !check::report(args(&[docs_order, "--date", DATE]))
            .unwrap()
            .1
    );
    // Warnings alone pass.
    assert!(check::report(args(&[mid, "--date", DATE])).unwrap().1);
    // A house rule turns the mid-upgrade sample's lagging kubelets into errors.
    let one_behind = sample("policies/kubelet-one-behind.yaml");
    let policy = ["--policy", one_behind.to_str().unwrap()];
    let (text, clean) =
        check::report(args(&[&[mid, "--date", DATE][..], &policy].concat())).unwrap();
    assert!(!clean, "{text}");
    assert!(
        text.contains("Version skew (upstream+kubelet-one-behind policy):"),
        "{text}"
    );
}

// ---- error texts name only options that exist -----------------------------------------------

/// Flags of other programs that messages may name, with the program.
const OTHER_PROGRAMS: &[(&str, &[&str])] = &[
    (
        "kubeadm",
        &[
            "--allow-experimental-upgrades",
            "--allow-release-candidate-upgrades",
            "--force",
            "--kubernetes-version",
            "--version",
        ],
    ),
    ("kubectl", &["--client", "--for", "--timeout"]),
    ("zypper", &["--non-interactive", "--oldpackage"]),
    ("dnf", &["--duplicates", "--disableexcludes"]),
    ("rpm", &["--qf"]),
    (
        "apt-get",
        &["--allow-change-held-packages", "--allow-downgrades"],
    ),
    (
        "etcdutl",
        &[
            "--data-dir",
            "--initial-advertise-peer-urls",
            "--initial-cluster",
            "--name",
        ],
    ),
    ("cargo", &["--example"]),
];

/// Every long option of the examples' command lines.
fn example_options() -> std::collections::BTreeSet<String> {
    [
        plan::Args::command(),
        apply::args::Args::command(),
        check::Args::command(),
        discover::Args::command(),
    ]
    .iter()
    .flat_map(|c| {
        c.get_arguments()
            .filter_map(|a| a.get_long())
            .map(|l| format!("--{l}"))
            .collect::<Vec<_>>()
    })
    .collect()
}

/// The string literals of `source` outside comments and `#[cfg(test)]` modules, with their
/// line numbers. Literals that begin with `-` are arguments handed to a program, not prose.
fn prose_literals(source: &str) -> Vec<(usize, String)> {
    let code = match source.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &source[..i],
        None => source,
    };
    let bytes = code.as_bytes();
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => line += 1,
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            // A char literal ('"', '\'', '\u{22}') or a lifetime.
            b'\'' if bytes.get(i + 1) == Some(&b'\\') => {
                i += 3;
                while i < bytes.len() && bytes[i] != b'\'' {
                    i += 1;
                }
                i += 1;
                continue;
            }
            b'\'' if bytes.get(i + 2) == Some(&b'\'') => {
                i += 3;
                continue;
            }
            b'"' => {
                // A raw string r#"…"# ends at a quote followed by as many hashes.
                let hashes = bytes[..i].iter().rev().take_while(|b| **b == b'#').count();
                let raw = i > hashes && bytes[i - hashes - 1] == b'r';
                let end: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', if raw { hashes } else { 0 }))
                    .collect();
                let start = i + 1;
                let (mut j, first) = (start, line);
                while j < bytes.len() && !bytes[j..].starts_with(&end) {
                    if bytes[j] == b'\\' && !raw {
                        j += 1;
                    }
                    if bytes.get(j) == Some(&b'\n') {
                        line += 1;
                    }
                    j += 1;
                }
                let text = &code[start..j.min(code.len())];
                if !text.trim_start().starts_with('-') {
                    out.push((first, text.to_string()));
                }
                i = j + end.len();
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && path.file_name() != Some("tests".as_ref()) {
            rust_sources(&path, out);
        } else if path.extension() == Some("rs".as_ref())
            && path.file_name() != Some("tests.rs".as_ref())
        {
            out.push(path);
        }
    }
}

#[test]
fn error_texts_name_only_options_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for krate in std::fs::read_dir(root.join("crates")).unwrap() {
        rust_sources(&krate.unwrap().path().join("src"), &mut files);
    }
    rust_sources(&root.join("examples"), &mut files);
    assert!(files.len() > 50, "found only {} source files", files.len());

    let known = example_options();
    for flag in [
        "--tolerate-initial-violations",
        "--allow-prerelease",
        "--plan",
        "--policy",
    ] {
        assert!(
            known.contains(flag),
            "{flag} is not an option of the examples: {known:?}"
        );
    }
    let others: Vec<&str> = OTHER_PROGRAMS
        .iter()
        .flat_map(|(_, f)| f.iter().copied())
        .collect();
    let mut unknown = Vec::new();
    let mut seen = 0;
    let mut used_others = std::collections::BTreeSet::new();
    for file in &files {
        let source = std::fs::read_to_string(file).unwrap();
        for (line, text) in prose_literals(&source) {
            for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
                let Some(name) = word.strip_prefix("--") else {
                    continue;
                };
                if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
                    continue;
                }
                seen += 1;
                if others.contains(&word) {
                    used_others.insert(word.to_string());
                } else if !known.contains(word) {
                    let file = file.strip_prefix(root).unwrap().display();
                    unknown.push(format!("{file}:{line}: {word} in {text:?}"));
                }
            }
        }
    }
    assert!(
        seen > 20,
        "the scan found only {seen} options: is it reading the sources?"
    );
    let unused: Vec<&&str> = others
        .iter()
        .filter(|f| !used_others.contains(**f))
        .collect();
    assert!(
        unused.is_empty(),
        "OTHER_PROGRAMS lists flags no message names: {unused:?}"
    );
    assert!(
        unknown.is_empty(),
        "messages name options no example has (add the option, fix the text, or list another program's flag in OTHER_PROGRAMS):\n{}",
        unknown.join("\n")
    );
}

#[test]
fn the_scan_sees_an_option_in_an_error_text() {
    let source = "fn f() -> Result<(), E> {\n    // \"--not-this\" in a comment\n    let c = '\"';\n    bail!(\"try --no-such-option\")\n}\n#[cfg(test)]\nmod tests {\n    const T: &str = \"--test-only\";\n}\n";
    let found = prose_literals(source);
    assert_eq!(found, [(4, "try --no-such-option".to_string())]);
}

#[tokio::test(start_paused = true)]
async fn the_replace_strategy_needs_a_node_provider_outside_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("up.journal");
    let sandbox = dir.path().join("sb");
    let (journal, sandbox) = (journal.to_str().unwrap(), sandbox.to_str().unwrap());
    let replace = ["--strategy", "replace", "--journal", journal];
    let local = [&replace[..], &["--executor", "local", "--sandbox", sandbox]].concat();
    let e = apply_err(&defaulted(&local)).await;
    assert!(
        e.starts_with("the plan creates 6 node(s) (")
            && e.contains("no node provider is configured: nothing was run")
            && e.contains("give --provider-create CMD and --provider-remove CMD"),
        "{e}"
    );
    assert!(
        !Path::new(journal).exists(),
        "the refused run opened its journal"
    );
    assert!(
        !Path::new(sandbox).exists(),
        "the refused run touched a node"
    );
    // The create and remove commands go together.
    let lone = [&local[..], &["--provider-create", "true"]].concat();
    assert!(apply::args::Args::parse_from_iter(argv("apply", &lone)).is_err());
    // The simulator is its own provider.
    let sim = [&replace[..], &["--sim-speed", "0"]].concat();
    assert!(apply_ok(&defaulted(&sim)).await.is_completed());
}

// ---- readiness: findings with the plan, --batch auto, apply's gate ---------------------------

/// The bundled evidence for the HA sample.
fn ha_evidence() -> String {
    sample("readiness/ha-evidence.json")
        .to_str()
        .unwrap()
        .to_string()
}

/// The options of the readiness runs: the HA sample to 1.32 (four hops) with `evidence`, then
/// `extra`.
fn to_1_32<'a>(evidence: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    [
        &["--target", "1.32", "--date", DATE, "--evidence", evidence][..],
        extra,
    ]
    .concat()
}

#[test]
fn plan_shows_findings_per_hop_in_every_format_and_auto_batches_from_the_evidence() {
    let evidence = ha_evidence();
    let args = |format: &str| {
        let extra = to_1_32(&evidence, &["--batch", "auto", "--format", format]);
        plan::Args::try_parse_from(argv("plan", &extra)).unwrap()
    };
    let a = args("text");
    let e = a.evidence.read().unwrap().unwrap();
    let w = plan::readiness::workloads(Some(&e)).unwrap();
    let plan = ha_plan(&a, Some(w));
    // shop/web allows one disruption (its pods on worker-1, -2, -3), shop/cache two (on
    // worker-1, -4, -5, -6): three batches, none of which could take another node.
    let batches: Vec<Vec<&str>> = plan
        .steps
        .iter()
        .filter(|s| matches!(s.action, Action::Drain { .. }))
        .filter(|s| s.nodes.iter().all(|n| n.as_str().starts_with("worker")))
        .map(|s| s.nodes.iter().map(|n| n.as_str()).collect())
        .take(3)
        .collect();
    assert_eq!(
        batches,
        [
            vec!["worker-1", "worker-4"],
            vec!["worker-2", "worker-5", "worker-6"],
            vec!["worker-3"]
        ]
    );
    let report = plan::readiness::evaluate(&plan, &e);
    let key = "removed-api:flowschema/shop-priority";
    assert!(report.errors().any(|f| f.key() == key), "{report:?}");
    for format in ["text", "markdown", "json", "yaml"] {
        let a = args(format);
        let json = plan::reviewed::to_json(&plan);
        let out = plan::readiness::plan_with(&plan, &report, a.format, json);
        assert!(out.contains("shop-priority"), "{format}: {out}");
        // Coverage: the metrics tier was forbidden, which is no pass.
        assert!(out.contains("forbidden"), "{format}: {out}");
    }
    // The JSON document is still a reviewed plan, the readiness beside it.
    let json = plan::readiness::plan_with(
        &plan,
        &report,
        args("json").format,
        plan::reviewed::to_json(&plan),
    );
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["readiness"]["kind"], "ReadinessReport");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.json");
    std::fs::write(&file, &json).unwrap();
    assert_eq!(plan::reviewed::read(file.to_str().unwrap()).unwrap(), plan);
    // Without evidence, auto is refused naming what is missing.
    let a = plan::Args::try_parse_from(argv("plan", &["--batch", "auto"])).unwrap();
    let e = plan::readiness::workloads(a.evidence.read().unwrap().as_ref()).unwrap_err();
    assert!(e.to_string().contains("--evidence FILE"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn apply_refuses_readiness_errors_unless_each_is_accepted_and_journals_them() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("up.journal");
    let journal = journal.to_str().unwrap();
    let evidence = ha_evidence();
    let base = to_1_32(&evidence, &["--sim-speed", "0", "--journal", journal]);
    let e = apply_err(&base).await;
    assert!(e.contains("block the run"), "{e}");
    assert!(
        e.contains("--accept removed-api:flowschema/shop-priority"),
        "{e}"
    );
    assert!(
        !Path::new(journal).exists(),
        "a refused run wrote its journal"
    );
    // One accepted is not enough: the other is still named.
    let one = [
        &base[..],
        &["--accept", "removed-api:flowschema/shop-priority"],
    ]
    .concat();
    let e = apply_err(&one).await;
    assert!(
        e.contains("1 error finding(s)") && e.contains("--accept drain/emptydir:pod/shop/report"),
        "{e}"
    );
    let accepted = [&one[..], &["--accept", "drain/emptydir:pod/shop/report"]].concat();
    let outcome = apply_ok(&accepted).await;
    assert!(outcome.is_completed(), "{outcome}");
    let text = std::fs::read_to_string(journal).unwrap();
    let records: Vec<Record> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        records.iter().any(|r| matches!(&r.kind,
            kupgrade_core::run::RecordKind::FindingsAccepted { findings, .. }
                if findings.len() == 2 && findings.contains(&"removed-api:flowschema/shop-priority".to_string()))),
        "{text}"
    );
}

#[test]
fn check_with_a_target_is_a_readiness_report_that_fails_on_errors() {
    let evidence = ha_evidence();
    let args = |extra: &[&str]| {
        check::Args::try_parse_from(
            [&["check", "--target", "1.32", "--date", DATE][..], extra].concat(),
        )
        .unwrap()
    };
    let (text, clean) = check::report(args(&["--evidence", &evidence])).unwrap();
    assert!(!clean, "{text}");
    assert!(text.contains("Version skew (upstream policy):"), "{text}");
    assert!(text.contains("Hop 1: v1.28.9 -> v1.29.14"), "{text}");
    assert!(text.contains("Coverage:"), "{text}");
    // Without evidence nothing is found, and every check that needs data says so.
    let (text, clean) = check::report(args(&[])).unwrap();
    assert!(clean, "{text}");
    assert!(
        text.contains("removed-api") && text.contains("not checkable"),
        "{text}"
    );
    let (json, _) = check::report(args(&["--evidence", &evidence, "--format", "json"])).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["kind"], "ReadinessReport");
    assert_eq!(doc["hops"].as_array().map(Vec::len), Some(4));
    let (md, _) = check::report(args(&["--evidence", &evidence, "--format", "markdown"])).unwrap();
    assert!(md.contains("## Readiness"), "{md}");
}

/// `kubeadm certs check-expiration -o json` as kubeadm prints it, with its CA expiring at
/// `ca_expires`.
fn certs_json(ca_expires: &str) -> String {
    format!(
        r#"{{
  "kind": "CertificateExpirationInfo",
  "apiVersion": "output.kubeadm.k8s.io/v1alpha3",
  "certificates": [
    {{"name": "apiserver", "expirationDate": "2035-01-01T00:00:00Z", "residualTime": 310000000, "externallyManaged": false, "caName": "ca", "missing": false}}
  ],
  "certificateAuthorities": [
    {{"name": "ca", "expirationDate": "{ca_expires}", "residualTime": 300, "externallyManaged": false, "missing": false}}
  ]
}}
"#
    )
}

#[tokio::test]
async fn apply_gathers_node_evidence_through_the_executor_when_asked() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sandbox = dir.path().join("sb");
    // cp-1 answers kubeadm certs check-expiration; every other program is absent (strict
    // sandboxes), so those facts are not checkable, not a pass.
    let bin = sandbox.join("cp-1").join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = |name: &str, body: &str| {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script("sudo", "[ \"$1\" = -n ] || exit 1\nshift\nexec \"$@\"\n");
    let expiring = bin.join("certs.json");
    std::fs::write(&expiring, certs_json("2025-03-01T00:05:00Z")).unwrap();
    script(
        "kubeadm",
        &format!(
            "[ \"$*\" = 'certs check-expiration -o json' ] || exit 3\nwhile IFS= read -r l; do printf '%s\\n' \"$l\"; done < '{}'\n",
            expiring.display()
        ),
    );
    kupgrade_exec::node_env::provide_programs(&bin, kupgrade_exec::node_env::SANDBOX_PROGRAMS)
        .unwrap();
    let sandbox = sandbox.to_str().unwrap();
    let base = [
        "--target",
        "1.30",
        "--date",
        DATE,
        "--executor",
        "local",
        "--sandbox",
        sandbox,
        "--dry-run",
    ];
    // Past the readiness gate, the dry run reads the cluster through kubectl on cp-1, which
    // the sandbox does not have: that error shows a run the gate let through.
    let past_the_gate = |e: &str| e.contains("\"kubectl\" not found on node cp-1");
    // Without --gather-nodes nothing reads the nodes: no readiness, the run goes on.
    let e = apply_err(&base).await;
    assert!(past_the_gate(&e), "{e}");
    // With it, the CA that expires five minutes into the run blocks it, named.
    let gather = [&base[..], &["--gather-nodes"]].concat();
    let e = apply_err(&gather).await;
    assert!(
        e.contains("--accept certs/expire-during-upgrade:") && e.contains("cp-1"),
        "{e}"
    );
    // A CA valid long after the run: the gate lets the run go on.
    assert!(!past_the_gate(&e), "{e}");
    std::fs::write(&expiring, certs_json("2035-01-01T00:00:00Z")).unwrap();
    let e = apply_err(&gather).await;
    assert!(past_the_gate(&e), "{e}");
    // The simulator has no nodes to read: refused, naming the flag.
    let sim = ["--target", "1.30", "--date", DATE, "--gather-nodes"];
    let e = apply_err(&sim).await;
    assert!(
        e.contains("--gather-nodes") && e.contains("--executor ssh"),
        "{e}"
    );
}

/// Before each hop after the first, apply reads the evidence again: a FlowSchema that a client
/// starts writing through an API the last hop removes, while the run is under way (a hook
/// after each hop swaps the evidence file), halts the run before that hop, naming the finding
/// and its `--accept`; the resume that accepts it goes to the end.
#[tokio::test]
async fn apply_reads_the_evidence_again_before_each_hop() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (evidence, later, hooks, journal, state) = (
        path("evidence.json"),
        path("later.json"),
        path("hooks.yaml"),
        path("up.journal"),
        path("sim.json"),
    );
    std::fs::write(&evidence, "{}\n").unwrap();
    let text = std::fs::read_to_string(ha_evidence()).unwrap().replace(
        "flowcontrol.apiserver.k8s.io/v1beta2",
        "flowcontrol.apiserver.k8s.io/v1beta3",
    );
    std::fs::write(&later, text).unwrap();
    std::fs::write(
        &hooks,
        format!(
            "apiVersion: kupgrade.dev/v1alpha1\nkind: Hooks\nhooks:\n  - name: swap-evidence\n    after: hop\n    argv: [cp, {later}, {evidence}]\n"
        ),
    )
    .unwrap();
    let base = to_1_32(
        &evidence,
        &[
            "--hooks",
            &hooks,
            // A fast simulation on the real clock: the hook is a real local command, whose
            // start a paused clock would time out.
            "--sim-speed",
            "1000000",
            "--journal",
            &journal,
            "--sim-state",
            &state,
        ],
    );
    // In virtual time (--sim-speed 0) a real command cannot be waited for: refused, named.
    let virtual_time: Vec<&str> = base
        .iter()
        .map(|a| if *a == "1000000" { "0" } else { a })
        .collect();
    let e = apply_err(&virtual_time).await;
    assert!(
        e.contains("hook-after-hop-swap-evidence runs a real command") && e.contains("--sim-speed"),
        "{e}"
    );
    assert!(
        !Path::new(&journal).exists(),
        "a refused run wrote its journal"
    );
    let outcome = apply_ok(&base).await;
    let text = outcome.to_string();
    assert!(!outcome.is_completed(), "{text}");
    assert!(
        text.contains("the check before hop 4 (to v1.32.")
            && text.contains("--accept removed-api:flowschema/shop-priority"),
        "{text}"
    );
    // It halted before the last hop: the third hop's hook ran, no step of the fourth did.
    let records = std::fs::read_to_string(&journal).unwrap();
    assert!(records.contains("v1.31."), "the third hop ran");
    assert!(
        !records.contains("install-kubeadm@v1.32")
            && !records.contains("v1.32.2/cp-1/kubeadm-upgrade-apply"),
        "nothing of the fourth hop ran"
    );
    // The resume judges the evidence as it is now: both errors, each accepted, and it ends.
    let resume = [
        "--journal",
        &journal,
        "--sim-state",
        &state,
        "--resume",
        "--evidence",
        &evidence,
        // A fast simulation on the real clock: the hook is a real local command, whose
        // start a paused clock would time out.
        "--sim-speed",
        "1000000",
        "--accept",
        "removed-api:flowschema/shop-priority",
        "--accept",
        "drain/emptydir:pod/shop/report",
    ];
    let outcome = apply_ok(&resume).await;
    assert!(outcome.is_completed(), "{outcome}");
}
