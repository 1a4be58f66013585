//! The run state machine against a model cluster (the planner's own [`Simulation`]), crashes
//! replayed exactly.
use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::date;

use super::*;
use crate::NodeName;
use crate::plan::{Action, Executor, PlanOptions, PlanRequest, Simulation, Strategy};
use crate::ports::RUN_TOKEN;
use crate::skew::UpstreamPolicy;
use crate::testing::{succeeded, upstream_run};

const HA: &str = include_str!("../../../../examples/clusters/ha.yaml");

fn cluster() -> ClusterState {
    crate::inventory::parse(HA, "ha.yaml").unwrap()
}

fn plan_with(options: PlanOptions) -> Arc<UpgradePlan> {
    Arc::new(
        PlanRequest::new("1.29".parse().unwrap(), date(2024, 6, 1))
            .options(options)
            .plan(&cluster())
            .unwrap(),
    )
}

fn plan() -> Arc<UpgradePlan> {
    plan_with(PlanOptions::default())
}

fn replace_plan() -> Arc<UpgradePlan> {
    plan_with(PlanOptions {
        strategy: Strategy::Replace,
        batch: "2".parse().unwrap(),
        max_surge: 2,
        ..PlanOptions::default()
    })
}

fn t0() -> Timestamp {
    "2026-11-25T10:00:00Z".parse().unwrap()
}

/// Where a simulated process dies: before or after the effect of the n-th task it carries out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Crash {
    Before(usize),
    After(usize),
}

/// A test driver: carries tasks out on the model, one at a time, journaling as the real driver
/// does (records before tasks start).
struct Harness {
    plan: Arc<UpgradePlan>,
    model: Simulation,
    journal: Vec<Record>,
    events: Vec<Event>,
    /// How often each task's effect was applied.
    executed: HashMap<TaskId, usize>,
    /// Tasks carried out in this process (for crash points).
    count: usize,
    now: Timestamp,
    /// The command lines of the tasks started, as runners get them.
    lines: Vec<String>,
}

impl Harness {
    fn new(plan: Arc<UpgradePlan>) -> Self {
        Harness {
            plan,
            model: Simulation::new(cluster()),
            journal: Vec::new(),
            events: Vec::new(),
            executed: HashMap::new(),
            count: 0,
            now: t0(),
            lines: Vec::new(),
        }
    }

    fn take(&mut self, out: Output) -> Vec<Task> {
        // The journal is written through serde, as the file would be.
        for r in out.records {
            let line = serde_json::to_string(&r).unwrap();
            self.journal.push(serde_json::from_str(&line).unwrap());
        }
        self.events.extend(out.events);
        out.tasks
    }

    /// Drives `run` until it finishes or the crash point is reached (returns false then).
    fn drive(&mut self, run: &mut Run, crash: Option<Crash>) -> bool {
        while !run.is_finished() {
            assert!(run.wants_state(self.now), "stuck: {run:?}");
            let out = run.next(self.model.state(), self.now);
            let tasks = self.take(out);
            for task in tasks {
                if let Work::Commands { commands } = &task.work {
                    self.lines
                        .extend(commands.iter().map(|c| c.to_shell_line()));
                }
                self.count += 1;
                self.now += jiff::SignedDuration::from_secs(7);
                if crash == Some(Crash::Before(self.count)) {
                    return false;
                }
                let step = &self.plan.steps[task.step_index];
                self.model
                    .apply(&step.on_node(task.id.node.as_ref()))
                    .unwrap();
                *self.executed.entry(task.id.clone()).or_default() += 1;
                if crash == Some(Crash::After(self.count)) {
                    return false;
                }
                let out = run.record(succeeded(task), self.now).unwrap();
                let more = self.take(out);
                assert!(more.is_empty());
            }
        }
        true
    }

    /// Tasks the journal says finished.
    fn finished_tasks(&self) -> Vec<TaskId> {
        self.journal
            .iter()
            .filter_map(|r| match &r.kind {
                RecordKind::TaskFinished {
                    task,
                    end: TaskEnd::Succeeded { .. } | TaskEnd::AlreadyDone { .. },
                    ..
                } => Some(task.clone()),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn a_run_carries_out_every_task_once_and_ends_at_the_target() {
    let plan = plan();
    let mut h = Harness::new(plan.clone());
    let mut run = upstream_run(&plan, &[]);
    assert!(h.drive(&mut run, None));
    assert_eq!(run.finished(), Some(&Finished::Completed));
    let (done, total) = run.progress();
    assert_eq!(done, total);
    // Each node task ran once; check steps ran inside the machine.
    let node_tasks: usize = plan
        .steps
        .iter()
        .filter(|s| !matches!(s.action.executor(), Executor::Check | Executor::Operator))
        .map(|s| s.nodes.len())
        .sum();
    assert_eq!(h.executed.len(), node_tasks);
    assert!(h.executed.values().all(|&n| n == 1));
    for n in &h.model.state().nodes {
        assert_eq!(n.kubelet().unwrap().to_string(), "v1.29.5", "{}", n.name);
    }
    // Events: PlanStarted first, PlanFinished last, every task started before it finished.
    assert!(matches!(
        h.events.first(),
        Some(Event::PlanStarted { resumed: false, .. })
    ));
    assert!(matches!(
        h.events.last(),
        Some(Event::PlanFinished {
            outcome: Finished::Completed,
            ..
        })
    ));
    let mut open: HashMap<TaskId, usize> = HashMap::new();
    for e in &h.events {
        match e {
            Event::StepStarted { task, .. } => *open.entry(task.clone()).or_default() += 1,
            Event::StepFinished { task, .. } => {
                let n = open.get_mut(task).expect("finished before started");
                *n -= 1;
            }
            _ => {}
        }
    }
    assert!(open.values().all(|&n| n == 0));
    let ready = h
        .events
        .iter()
        .filter(|e| matches!(e, Event::NodeReady { .. }))
        .count();
    assert_eq!(ready, 9);
    // The journal opens with the plan's fingerprint and closes with the outcome.
    assert!(
        matches!(&h.journal[0].kind, RecordKind::RunStarted { plan: p, .. } if p == run.fingerprint())
    );
    assert!(matches!(
        &h.journal.last().unwrap().kind,
        RecordKind::Stopped {
            outcome: Finished::Completed
        }
    ));
}

/// Backups and snapshots are written under the run's id: a resume keeps it (a backup step the
/// crash interrupted completes its own copy), a new journal gets another (no run writes over
/// what an earlier run kept).
#[test]
fn backups_go_under_the_run_id_that_a_resume_keeps() {
    let plan = plan();
    let backups = |h: &Harness| -> Vec<String> {
        h.lines
            .iter()
            .filter(|l| l.contains("/var/backups/"))
            .cloned()
            .collect()
    };
    let mut h = Harness::new(plan.clone());
    let mut run = upstream_run(&plan, &[]);
    assert_eq!(run.run_id(), None, "no id before the run starts");
    assert!(!h.drive(&mut run, Some(Crash::After(2))));
    let id = run.run_id().expect("an id once started").to_string();
    let hash = run.fingerprint().trim_start_matches("fnv1a64:");
    assert_eq!(id, format!("20261125T100000.000Z-{}", &hash[..8]));
    let before = backups(&h);
    assert!(!before.is_empty(), "{:?}", h.lines);
    drop(run);
    let mut run = upstream_run(&plan, &h.journal);
    assert_eq!(run.run_id(), Some(id.as_str()), "a resume keeps the id");
    assert!(h.drive(&mut run, None));
    let all = backups(&h);
    assert!(all.len() > before.len(), "{all:?}");
    for line in &all {
        assert!(
            line.contains(&format!("/var/backups/kupgrade/{id}")) && !line.contains(RUN_TOKEN),
            "{line}"
        );
    }
    // A new journal a moment later: another id, other paths.
    let mut again = Harness::new(plan.clone());
    again.now = t0() + jiff::SignedDuration::from_millis(1);
    let mut run = upstream_run(&plan, &[]);
    assert!(!again.drive(&mut run, Some(Crash::After(2))));
    let other = run.run_id().unwrap();
    assert_ne!(other, id);
    assert!(
        backups(&again).iter().all(|l| l.contains(other)),
        "{:?}",
        again.lines
    );
}

/// A run named before it starts (the run lease's holder needs its id) keeps that id through
/// its first session and every resume; the lease it took is journaled after the session's
/// start record, and a resume reads past it.
#[test]
fn a_run_begun_early_keeps_its_id_and_journals_its_lease() {
    use crate::ports::{LeaseClaim, LeaseHolder, Taking};
    let plan = plan();
    let mut h = Harness::new(plan.clone());
    let mut run = upstream_run(&plan, &[]);
    let early = t0() - jiff::SignedDuration::from_secs(5);
    let id = run.begin(early).to_string();
    let hash = run.fingerprint().trim_start_matches("fnv1a64:");
    assert_eq!(id, format!("20261125T095955.000Z-{}", &hash[..8]));
    let holder = LeaseHolder::new(&id, "ops-1", 7);
    let from = LeaseClaim::new(LeaseHolder::new("other", "ops-2", 9), "fp").record(None, early);
    run.lease_taken(
        "cp-1:/var/lib/kupgrade/cluster.lease".into(),
        holder.to_string(),
        Taking::Broken { from: from.clone() },
    );
    assert!(!h.drive(&mut run, Some(Crash::After(2))));
    assert_eq!(run.run_id(), Some(id.as_str()));
    assert_eq!(h.journal[0].at, early, "the run starts when it was begun");
    match &h.journal[1].kind {
        RecordKind::LeaseTaken {
            place,
            holder: h,
            taking: Taking::Broken { from: f },
        } => {
            assert_eq!(place, "cp-1:/var/lib/kupgrade/cluster.lease");
            assert_eq!(h, &holder.to_string());
            assert_eq!(f, &from);
        }
        other => panic!("expected lease-taken second, got {other:?}"),
    }
    assert_eq!(h.journal[1].v, 3);
    let text = serde_json::to_string(&h.journal[1]).unwrap();
    assert!(
        text.contains(r#""record":"lease-taken""#)
            && text
                .contains(r#""taking":{"how":"broken","from":{"holder":"other (pid 9 on ops-2)""#),
        "{text}"
    );
    // A resume: the same id, whatever `begin` is told; its own lease record after its
    // session-started record.
    let mut run = upstream_run(&plan, &h.journal);
    assert_eq!(run.begin(t0() + jiff::SignedDuration::from_secs(60)), id);
    run.lease_taken("p".into(), "me".into(), Taking::Own);
    assert!(h.drive(&mut run, None));
    let opened = h
        .journal
        .iter()
        .position(|r| matches!(r.kind, RecordKind::SessionStarted { .. }))
        .unwrap();
    assert!(matches!(
        &h.journal[opened + 1].kind,
        RecordKind::LeaseTaken {
            taking: Taking::Own,
            ..
        }
    ));
}

#[test]
fn the_nodes_of_a_batch_start_together_up_to_the_limit() {
    let plan = plan_with(PlanOptions {
        batch: "3".parse().unwrap(),
        ..PlanOptions::default()
    });
    let batch = plan
        .steps
        .iter()
        .position(|s| s.action == Action::Cordon && s.nodes.len() == 3)
        .unwrap();
    // The first batch starts beside a control-plane kubelet's step, which comes first in plan
    // order: with room for three tasks, two go to the batch.
    for (limit, expect) in [(None, 3), (Some(3), 2)] {
        let mut run = Run::new(
            plan.clone(),
            Arc::new(UpstreamPolicy::new()),
            RunOptions {
                max_parallel: limit,
                ..RunOptions::default()
            },
        )
        .unwrap();
        let mut model = Simulation::new(cluster());
        let mut widest = 0;
        while !run.is_finished() {
            let out = run.next(model.state(), t0());
            let tasks = out.tasks;
            // Other steps' tasks may start beside the batch (control-plane kubelets).
            widest = widest.max(tasks.iter().filter(|t| t.step_index == batch).count());
            assert!(run.in_flight() <= limit.unwrap_or(plan.max_parallel));
            succeed_all(&plan, &mut run, &mut model, tasks);
        }
        assert_eq!(widest, expect, "limit {limit:?}");
    }
}

/// Every crash point of a whole run, replayed: the journal up to the crash (what reached the
/// disk) and the model with every effect that happened. The resumed run must end at the same
/// state; a task the journal had finished is never run again; a task in flight runs at most
/// once more.
#[test]
fn every_crash_point_resumes_to_the_same_end() {
    let plan = plan();
    let mut reference = Harness::new(plan.clone());
    assert!(reference.drive(&mut upstream_run(&plan, &[]), None));
    let total = reference.count;
    assert!(total > 80, "{total}");
    for n in 1..=total {
        for crash in [Crash::Before(n), Crash::After(n)] {
            let mut h = Harness::new(plan.clone());
            let mut run = upstream_run(&plan, &[]);
            assert!(!h.drive(&mut run, Some(crash)), "{crash:?}");
            let done_before = h.finished_tasks();
            let executed_before = h.executed.clone();
            drop(run);

            // A new process: the journal is all that is left of the run.
            let mut run = upstream_run(&plan, &h.journal);
            h.count = 0;
            assert!(h.drive(&mut run, None), "{crash:?}");
            assert_eq!(
                run.finished(),
                Some(&Finished::Completed),
                "{crash:?}: {:?}",
                run.finished()
            );
            assert_eq!(h.model.state(), reference.model.state(), "{crash:?}");
            for t in &done_before {
                assert_eq!(
                    h.executed.get(t),
                    executed_before.get(t),
                    "{crash:?}: {t} ran again after it was journaled as done"
                );
            }
            for (t, &k) in &h.executed {
                assert!(k <= 2, "{crash:?}: {t} ran {k} times");
            }
            // Only the crashed task may have run twice.
            let twice: Vec<&TaskId> = h
                .executed
                .iter()
                .filter(|(_, k)| **k == 2)
                .map(|(t, _)| t)
                .collect();
            assert!(twice.len() <= 1, "{crash:?}: {twice:?}");
            if let Crash::Before(_) = crash {
                assert!(twice.is_empty(), "{crash:?}: {twice:?}");
            }
        }
    }
}

/// Where a run of `plan` carries out the first task of step `step`: how many tasks it has carried
/// out by then (the crash point just after it), and the task.
fn crash_point(plan: &Arc<UpgradePlan>, step: usize) -> (usize, TaskId) {
    let mut h = Harness::new(plan.clone());
    let mut run = upstream_run(plan, &[]);
    let mut n = 0;
    while !run.is_finished() {
        let out = run.next(h.model.state(), t0());
        for t in h.take(out) {
            n += 1;
            if t.step_index == step {
                return (n, t.id);
            }
            h.model
                .apply(&plan.steps[t.step_index].on_node(t.id.node.as_ref()))
                .unwrap();
            let out = run.record(succeeded(t), t0()).unwrap();
            h.take(out);
        }
    }
    panic!("the run never reached step {step}")
}

#[test]
fn a_crashed_cordon_is_found_done_and_a_crashed_drain_is_drained_again() {
    let plan = plan();
    let cordon = plan
        .steps
        .iter()
        .position(|s| s.action == Action::Cordon)
        .unwrap();
    assert_eq!(plan.steps[cordon].nodes.len(), 1);
    assert_eq!(plan.steps[cordon + 1].nodes.len(), 1);
    // The crash points of the first cordon and of the drain after it.
    let (cordon_at, _) = crash_point(&plan, cordon);
    let (drain_at, _) = crash_point(&plan, cordon + 1);
    for (crash, cordon_end, drain_runs) in [
        (Crash::After(cordon_at), StepOutcome::AlreadyDone, 1),
        (Crash::After(drain_at), StepOutcome::Succeeded, 2),
    ] {
        let mut h = Harness::new(plan.clone());
        assert!(!h.drive(&mut upstream_run(&plan, &[]), Some(crash)));
        let mut run = upstream_run(&plan, &h.journal);
        h.events.clear();
        assert!(h.drive(&mut run, None));
        let first_end = h
            .events
            .iter()
            .find_map(|e| match e {
                Event::StepFinished { outcome, .. } => Some(*outcome),
                _ => None,
            })
            .unwrap();
        let drain = TaskId::new(
            plan.steps[cordon + 1].id.clone(),
            plan.steps[cordon + 1].nodes.as_slice().first().cloned(),
        );
        assert_eq!(h.executed[&drain], drain_runs, "{crash:?}");
        if drain_runs == 1 {
            assert_eq!(first_end, cordon_end, "{crash:?}");
        }
    }
}

/// Regression (issue 15: found when the SSH crash test's kills moved by one command): an
/// install killed after its packages were in but before the hold was put back showed its
/// versions, was taken as done, and left the packages unheld. It is installed again.
#[test]
fn a_crashed_install_is_run_again_for_its_hold() {
    let plan = plan();
    let install = plan
        .steps
        .iter()
        .position(|s| matches!(s.action, Action::InstallPackages { .. }))
        .unwrap();
    assert!(!plan.steps[install].post.is_empty());
    let (install_at, task) = crash_point(&plan, install);
    let mut h = Harness::new(plan.clone());
    assert!(!h.drive(
        &mut upstream_run(&plan, &[]),
        Some(Crash::After(install_at))
    ));
    let mut run = upstream_run(&plan, &h.journal);
    assert!(h.drive(&mut run, None));
    assert_eq!(h.executed[&task], 2);
    let ends: Vec<&TaskEnd> = h
        .journal
        .iter()
        .filter_map(|r| match &r.kind {
            RecordKind::TaskFinished { task: t, end, .. } if *t == task => Some(end),
            _ => None,
        })
        .collect();
    assert!(
        matches!(ends.as_slice(), [TaskEnd::Succeeded { .. }]),
        "{ends:?}"
    );
}

#[test]
fn a_step_not_safe_to_repeat_is_never_run_twice() {
    let plan = replace_plan();
    let provisions: Vec<usize> = plan
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.idempotent)
        .map(|(i, _)| i)
        .collect();
    assert!(!provisions.is_empty());
    let mut reference = Harness::new(plan.clone());
    assert!(reference.drive(&mut upstream_run(&plan, &[]), None));
    let mut halts = 0;
    for n in 1..=reference.count {
        for crash in [Crash::Before(n), Crash::After(n)] {
            let mut h = Harness::new(plan.clone());
            assert!(!h.drive(&mut upstream_run(&plan, &[]), Some(crash)));
            let mut run = upstream_run(&plan, &h.journal);
            h.count = 0;
            // Resume; when the run cannot tell whether a provision happened, play the operator:
            // look at the cluster and decide.
            loop {
                h.drive(&mut run, None);
                match run.finished() {
                    Some(Finished::Completed) => break,
                    Some(Finished::Halted(r)) if r.reason == StopReason::Unsure => {
                        halts += 1;
                        let task = r.task.clone().unwrap();
                        assert!(r.advice.contains("mark"), "{r}");
                        let exists = h.model.node(task.node.as_ref().unwrap()).is_some();
                        let mut again = upstream_run(&plan, &h.journal);
                        let resolution = if exists {
                            Resolution::MarkDone
                        } else {
                            Resolution::Retry
                        };
                        assert!(again.is_unsure(&task), "{crash:?}: {task}");
                        let out = again.resolve(&task, resolution, h.now).unwrap();
                        h.take(out);
                        assert!(!again.is_unsure(&task), "{crash:?}: {task} resolved");
                        run = again;
                    }
                    other => panic!("{crash:?}: {other:?}"),
                }
            }
            assert_eq!(h.model.state(), reference.model.state(), "{crash:?}");
            for (t, &k) in &h.executed {
                let step = plan.step(t.step.as_str()).unwrap();
                if !step.idempotent {
                    assert_eq!(k, 1, "{crash:?}: {t} ran {k} times");
                }
            }
        }
    }
    // Crashing just before a provision takes effect leaves the run unable to tell.
    assert!(halts > 0);
}

#[test]
fn a_node_upgraded_by_hand_stops_the_run_with_what_differs() {
    // Run until the first worker step, then upgrade worker-6's kubelet by hand.
    let plan = plan();
    let mut meddled = false;
    let run = drive_reading(&plan, |last, state| {
        meddled |= last
            .tasks
            .iter()
            .any(|t| plan.steps[t.step_index].phase == crate::plan::Phase::Workers);
        if meddled {
            // The operator's meddling persists in the live cluster, not in the model.
            let n = state.node_mut("worker-6").unwrap();
            n.versions.kubelet = Some("v1.30.1".parse().unwrap());
        }
    });
    let report = run.finished().unwrap().report().unwrap();
    assert_eq!(report.reason, StopReason::PolicyViolated, "{report}");
    let text = report.to_string();
    assert!(text.contains("worker-6"), "{text}");
    assert!(text.contains("v1.30.1"), "{text}");
    assert!(
        text.starts_with("the live cluster violates the upstream skew policy"),
        "{text}"
    );
}

/// Carries `tasks` of `plan` out on `model`, one after another, each succeeding.
fn succeed_all(plan: &UpgradePlan, run: &mut Run, model: &mut Simulation, tasks: Vec<Task>) {
    for t in tasks {
        model
            .apply(&plan.steps[t.step_index].on_node(t.id.node.as_ref()))
            .unwrap();
        run.record(succeeded(t), t0()).unwrap();
    }
}

/// Drives a run of `plan` to its end on the model, every task succeeding. Before each read of
/// the cluster, `read` is given what the run answered to the read before (nothing at first)
/// and the model's state, which it may change: the run sees the changed state.
fn drive_reading(plan: &Arc<UpgradePlan>, mut read: impl FnMut(&Output, &mut ClusterState)) -> Run {
    let mut run = upstream_run(plan, &[]);
    let mut model = Simulation::new(cluster());
    let mut last = Output::default();
    while !run.is_finished() {
        let mut state = model.state().clone();
        read(&last, &mut state);
        last = run.next(&state, t0());
        succeed_all(plan, &mut run, &mut model, last.tasks.clone());
    }
    run
}

/// Drives a run on the model, changing the state it reads with `meddle` once `after` tasks
/// ran; returns the report it stopped with.
fn halted_when(after: usize, meddle: impl Fn(&mut ClusterState)) -> StopReport {
    let mut steps = 0;
    let run = drive_reading(&plan(), |last, state| {
        steps += last.tasks.len();
        if steps > after {
            meddle(state);
        }
    });
    run.finished().unwrap().report().expect("halted").clone()
}

#[test]
fn a_node_that_leaves_the_cluster_stops_the_run_even_after_many_clean_reads() {
    // The run remembers the node list between reads: a node removed, or replaced by one of
    // another name (same count), must still be seen.
    let gone = halted_when(20, |s| s.nodes.retain(|n| n.name.as_str() != "worker-4"));
    let renamed = halted_when(20, |s| {
        let w = s
            .nodes
            .iter_mut()
            .find(|n| n.name.as_str() == "worker-4")
            .unwrap();
        w.name = "worker-4b".parse().unwrap();
    });
    for report in [gone, renamed] {
        assert_eq!(report.reason, StopReason::Drift, "{report}");
        assert_eq!(
            report.differences,
            [Difference {
                node: Some("worker-4".parse().unwrap()),
                expected: "present".into(),
                found: "absent".into()
            }]
        );
    }
}

#[test]
fn a_node_that_goes_not_ready_stops_the_run() {
    let report = halted_when(20, |s| s.node_mut("worker-3").unwrap().ready = false);
    assert_eq!(report.reason, StopReason::NodeNotReady);
    assert_eq!(
        report.differences,
        [Difference {
            node: Some("worker-3".parse().unwrap()),
            expected: "Ready".into(),
            found: "NotReady".into()
        }]
    );
    assert_eq!(
        report.to_string(),
        "1 node(s) went NotReady outside the plan's steps\n  - worker-3: expected Ready, found NotReady\nwhat to do: find out why (kubectl describe node), fix it, and resume once the nodes are Ready again"
    );
}

#[test]
fn a_restarted_kubelet_may_be_not_ready_until_its_wait() {
    let plan = plan();
    let mut restarting: Option<NodeName> = None;
    let run = drive_reading(&plan, |last, state| {
        for t in &last.tasks {
            match plan.steps[t.step_index].action {
                Action::RestartKubelet { .. } => restarting = t.id.node.clone(),
                Action::WaitReady { .. } => restarting = None,
                _ => {}
            }
        }
        if let Some(n) = &restarting {
            state.node_mut(n.as_str()).unwrap().ready = false;
        }
    });
    assert_eq!(run.finished(), Some(&Finished::Completed));
}

/// From the moment its provisioning is done, the run expects a new node: one that leaves the
/// cluster after that stops the run.
#[test]
fn a_provisioned_node_is_expected_once_its_task_is_done() {
    let plan = replace_plan();
    let mut provisioned: Option<NodeName> = None;
    let run = drive_reading(&plan, |last, state| {
        // The node shows until its task is done (the run checks that it does), then goes.
        for r in &last.records {
            if let RecordKind::TaskFinished { task, .. } = &r.kind
                && provisioned.is_none()
                && matches!(
                    plan.step(task.step.as_str()).map(|s| &s.action),
                    Some(Action::ProvisionNodes { .. })
                )
            {
                provisioned = task.node.clone();
            }
        }
        if let Some(n) = &provisioned {
            state.nodes.retain(|m| m.name != *n);
        }
    });
    let report = run.finished().unwrap().report().expect("halted");
    assert_eq!(report.reason, StopReason::Drift, "{report}");
    assert_eq!(
        report.differences,
        [Difference {
            node: provisioned,
            expected: "present".into(),
            found: "absent".into()
        }]
    );
}

/// The retries of `task` while `kinds` (cycled) fail it, each at the time of its retry: how
/// long after the first failure each retry was due, until the run gives up on it.
fn retries_while_failing(kinds: &[FailureKind]) -> Vec<i64> {
    let plan = plan();
    let mut run = upstream_run(&plan, &[]);
    let model = Simulation::new(cluster());
    let mut now = t0();
    let out = run.next(model.state(), now);
    let task = out.tasks[0].clone();
    let mut attempt = task.attempt;
    let mut due = Vec::new();
    for kind in kinds.iter().cycle() {
        let failed = Outcome {
            task: task.id.clone(),
            attempt,
            result: TaskResult::Failed(Failure::new(*kind, "boom")),
        };
        let out = run.record(failed, now).unwrap();
        let Some(at) = out.events.iter().find_map(|e| match e {
            Event::StepRetrying { retry_at, .. } => Some(*retry_at),
            _ => None,
        }) else {
            break;
        };
        due.push(at.duration_since(t0()).as_secs());
        now = at;
        let out = run.next(model.state(), now);
        attempt = out.tasks.iter().find(|t| t.id == task.id).unwrap().attempt;
    }
    due
}

#[test]
fn an_unreachable_node_is_waited_for_apart_from_the_attempts() {
    // A command that fails: three attempts (two retries, 5 and 10 s apart).
    assert_eq!(
        retries_while_failing(&[FailureKind::CommandFailed]),
        [5, 15]
    );
    // A node that cannot be reached is tried with the same backoff (5, 10, 20, 40, then
    // 60 s apart) for five minutes from the first failure: past the three attempts.
    assert_eq!(
        retries_while_failing(&[FailureKind::Unreachable]),
        [5, 15, 35, 75, 135, 195, 255]
    );
    // Both counted apart: the unreachable spells do not use up the command's attempts.
    let mixed = retries_while_failing(&[FailureKind::Unreachable, FailureKind::CommandFailed]);
    assert_eq!(mixed, [5, 10, 20, 30, 50]);
}

#[test]
fn failures_are_retried_with_backoff_only_when_safe() {
    // Without pre-staging: its image pulls on the control-plane nodes would start on the node
    // the failed task frees while the retry waits, which is right but not this test's point.
    let plan = plan_with(PlanOptions {
        prestage: false,
        ..PlanOptions::default()
    });
    let mut run = upstream_run(&plan, &[]);
    let model = Simulation::new(cluster());
    let now = t0();
    // Preflight and the backup run first; take the first node task.
    let out = run.next(model.state(), now);
    let task = out.tasks[0].clone();
    let fail = |kind| Outcome {
        task: task.id.clone(),
        attempt: task.attempt,
        result: TaskResult::Failed(Failure::new(kind, "boom").with_command("cp -a")),
    };
    let out = run.record(fail(FailureKind::CommandFailed), now).unwrap();
    let retry_at = now + jiff::SignedDuration::from_secs(5);
    assert!(
        matches!(&out.events[..], [Event::StepRetrying { retry_at: r, attempt: 1, .. }] if *r == retry_at)
    );
    // The other nodes of the batch are running; the retry waits for its time.
    assert_eq!(run.wake_at(), Some(retry_at));
    assert!(!run.wants_state(now));
    assert!(run.wants_state(retry_at));
    let out = run.next(model.state(), retry_at);
    let again = out.tasks.iter().find(|t| t.id == task.id).unwrap();
    assert_eq!(again.attempt, 2);
    // A refusal is not retried: the run halts once the running tasks end.
    let out = run
        .record(
            Outcome {
                task: task.id.clone(),
                attempt: 2,
                result: TaskResult::Failed(Failure::new(FailureKind::Refused, "host key changed")),
            },
            retry_at,
        )
        .unwrap();
    assert!(out.events.iter().any(|e| matches!(
        e,
        Event::StepFinished {
            outcome: StepOutcome::Failed,
            ..
        }
    )));
    assert!(!run.is_finished());
    assert!(!run.wants_state(retry_at));
    let others: Vec<Task> = out.tasks;
    assert!(others.is_empty());
    // Finish the other nodes of the batch.
    let running: Vec<TaskId> = plan.steps[task.step_index]
        .nodes
        .iter()
        .filter(|n| Some(*n) != task.id.node.as_ref())
        .map(|n| TaskId::new(task.id.step.clone(), Some(n.clone())))
        .collect();
    for id in running {
        run.record(
            Outcome {
                task: id,
                attempt: 1,
                result: TaskResult::Succeeded,
            },
            retry_at,
        )
        .unwrap();
    }
    let report = run.finished().unwrap().report().unwrap();
    assert_eq!(report.reason, StopReason::StepFailed);
    assert!(report.summary.contains("host key changed"), "{report}");
    assert!(report.advice.contains("safe to repeat"), "{report}");
}

#[test]
fn a_journal_of_another_plan_is_refused() {
    let plan = plan();
    let mut h = Harness::new(plan.clone());
    h.drive(&mut upstream_run(&plan, &[]), Some(Crash::After(3)));
    let other = replace_plan();
    let e = Run::resume(
        other,
        Arc::new(UpstreamPolicy::new()),
        RunOptions::default(),
        &h.journal,
    )
    .unwrap_err();
    assert!(matches!(e, RunError::OtherPlan { .. }));
    assert!(
        e.to_string()
            .starts_with("the journal belongs to another plan")
    );
    let mut newer = h.journal.clone();
    newer[2].v = FORMAT + 1;
    let e = Run::resume(
        plan.clone(),
        Arc::new(UpstreamPolicy::new()),
        RunOptions::default(),
        &newer,
    )
    .unwrap_err();
    assert_eq!(
        e,
        RunError::NewerFormat {
            record: 3,
            found: FORMAT + 1
        }
    );
    let e = Run::resume(
        plan,
        Arc::new(UpstreamPolicy::new()),
        RunOptions::default(),
        &h.journal[1..],
    )
    .unwrap_err();
    assert!(matches!(e, RunError::Malformed { record: 1, .. }), "{e}");
}

#[test]
fn cancelling_lets_running_tasks_end_and_resume_goes_on() {
    let plan = plan();
    let mut h = Harness::new(plan.clone());
    let mut run = upstream_run(&plan, &[]);
    let out = run.next(h.model.state(), t0());
    let tasks = h.take(out);
    assert!(!tasks.is_empty());
    let out = run.cancel(t0());
    h.take(out);
    assert!(!run.is_finished());
    assert!(!run.wants_state(t0()));
    // One task ends normally, the others are aborted.
    let mut iter = tasks.into_iter();
    let first = iter.next().unwrap();
    h.model
        .apply(&plan.steps[first.step_index].on_node(first.id.node.as_ref()))
        .unwrap();
    let out = run
        .record(
            Outcome {
                task: first.id,
                attempt: 1,
                result: TaskResult::Succeeded,
            },
            t0(),
        )
        .unwrap();
    h.take(out);
    for t in iter {
        let out = run
            .record(
                Outcome {
                    task: t.id,
                    attempt: 1,
                    result: TaskResult::Interrupted,
                },
                t0(),
            )
            .unwrap();
        h.take(out);
    }
    assert_eq!(run.finished(), Some(&Finished::Cancelled));
    let mut run = upstream_run(&plan, &h.journal);
    assert!(h.drive(&mut run, None));
    assert_eq!(run.finished(), Some(&Finished::Completed));
    assert!(matches!(
        h.events
            .iter()
            .rev()
            .find(|e| matches!(e, Event::PlanStarted { .. })),
        Some(Event::PlanStarted { resumed: true, .. })
    ));
}

#[test]
fn tasks_are_found_by_what_reports_print() {
    let plan = plan();
    let run = upstream_run(&plan, &[]);
    let backup = plan.steps.iter().find(|s| s.nodes.len() == 3).unwrap();
    let id = TaskId::new(backup.id.clone(), Some(backup.nodes.as_slice()[1].clone()));
    assert_eq!(run.find_task(&id.to_string()).unwrap(), id);
    assert_eq!(
        run.find_task(backup.id.as_str()).unwrap_err().to_string(),
        format!(
            "step {0} acts on 3 nodes: name one, as in '{0} on NODE'",
            backup.id
        )
    );
    let apply = "v1.29.5/cp-1/kubeadm-upgrade-apply";
    assert_eq!(
        run.find_task(apply).unwrap(),
        TaskId::new(StepId(apply.into()), Some("cp-1".parse().unwrap()))
    );
    assert_eq!(
        run.find_task("v1.29.5/cluster/verify").unwrap(),
        TaskId::new(StepId("v1.29.5/cluster/verify".into()), None)
    );
    assert!(matches!(
        run.find_task("nope"),
        Err(ResolveError::NoSuchStep(_))
    ));
    assert!(!run.is_done(&id));
}

#[test]
fn events_serialize_with_a_tag_and_flat_task() {
    let e = Event::StepStarted {
        at: t0(),
        task: TaskId::new(
            StepId("v1.29.5/cp-1/cordon".into()),
            Some("cp-1".parse().unwrap()),
        ),
        attempt: 1,
        action: "cordon".into(),
        executor: Executor::Cluster,
    };
    assert_eq!(
        serde_json::to_string(&e).unwrap(),
        r#"{"event":"step-started","at":"2026-11-25T10:00:00Z","step":"v1.29.5/cp-1/cordon","node":"cp-1","attempt":1,"action":"cordon","executor":"cluster"}"#
    );
}

#[test]
fn a_cluster_moved_since_the_plan_was_made_is_refused_before_any_task() {
    // A halted run upgraded cp-1's control plane; the plan is made from the old inventory.
    let plan = plan();
    let mut live = cluster();
    let cp1 = live.node_mut("cp-1").unwrap();
    let moved: crate::KubeVersion = "v1.29.5".parse().unwrap();
    cp1.versions.kubeadm = Some(moved.clone());
    cp1.versions.kube_apiserver = Some(moved.clone());
    cp1.versions.kube_controller_manager = Some(moved.clone());
    cp1.versions.kube_scheduler = Some(moved);
    let mut run = upstream_run(&plan, &[]);
    let out = run.next(&live, t0());
    assert!(out.tasks.is_empty(), "{:?}", out.tasks);
    assert!(run.is_finished());
    let report = run.finished().unwrap().report().expect("halted").clone();
    assert_eq!(report.reason, StopReason::Drift, "{report}");
    assert!(
        report
            .summary
            .contains("the live cluster is not where the plan starts"),
        "{report}"
    );
    let diffs: Vec<(String, String, String)> = report
        .differences
        .iter()
        .map(|d| {
            (
                d.node.as_ref().map(ToString::to_string).unwrap_or_default(),
                d.expected.clone(),
                d.found.clone(),
            )
        })
        .collect();
    let d = |c: &str| {
        (
            "cp-1".to_string(),
            format!("{c} v1.28.9, where the plan starts"),
            format!("{c} v1.29.5"),
        )
    };
    assert_eq!(
        diffs,
        [
            d("kubeadm"),
            d("kube-apiserver"),
            d("kube-controller-manager"),
            d("kube-scheduler")
        ]
    );
    assert!(
        report.advice.contains("resume it with its own journal"),
        "{report}"
    );
    // A worker's kubelet moved by hand counts too; a cluster where the plan starts passes.
    let mut live = cluster();
    live.node_mut("worker-1").unwrap().versions.kubelet = Some("v1.28.10".parse().unwrap());
    let mut run = upstream_run(&plan, &[]);
    assert!(run.next(&live, t0()).tasks.is_empty());
    let report = run.finished().unwrap().report().expect("halted").clone();
    assert_eq!(report.differences.len(), 1, "{report}");
    assert_eq!(report.differences[0].found, "kubelet v1.28.10");
    let mut run = upstream_run(&plan, &[]);
    assert!(!run.next(&cluster(), t0()).tasks.is_empty());
}
