//! The run report through the driver, over the simulated cluster on a paused tokio clock (so
//! every duration is the sim's virtual time and the page is deterministic): a run that a
//! regression gate halts after a pod starts crash-looping, with a hook whose output is
//! hostile HTML; the page of that run (a snapshot, with the journal's wall clock pinned);
//! the regression gate's baseline journaled, so a resumed session judges against the same
//! one; the report file kept as the journal grows (throttled, replaced atomically) and
//! going on, on resume, with the same page.
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use kupgrade_core::NodeName;
use kupgrade_core::gate::GateSet;
use kupgrade_core::hook::HookSet;
use kupgrade_core::plan::UpgradePlan;
use kupgrade_core::plan::render::{RunHtmlExtras, html_run};
use kupgrade_core::ports::{
    CommandOutput, CommandRunner, CommandSpec, ExitStatus, LineSink, Program, RunnerError, Tracking,
};
use kupgrade_core::run::{Finished, Record, RecordKind, RunSummary, StopReason};
use kupgrade_exec::driver::Driver;
use kupgrade_exec::report::RunReport;
use kupgrade_exec::sim::SimCluster;
use support::fixtures::{drive_reporting, ha_plan, halted_at, pods_gate, sample_sim, troubled_sim};

const HOSTILE: &str = "<script>alert('owned')</script> & \u{1b}[2J";
const RESUME: &str = "cargo run --example apply -- --journal 'j' --resume";

/// The hook's program answers with hostile text (or fails while `failing`); every other
/// command goes to the simulated node.
struct HookStub {
    sim: SimCluster,
    failing: Arc<AtomicBool>,
}

#[async_trait]
impl CommandRunner for HookStub {
    async fn run_tracked(
        &self,
        node: &NodeName,
        spec: &CommandSpec,
        lines: &LineSink,
        tracking: &Tracking,
    ) -> Result<CommandOutput, RunnerError> {
        match &spec.program {
            Program::Exec { program, .. } if program == "announce-hook" => {
                let failing = self.failing.load(Ordering::SeqCst);
                Ok(CommandOutput {
                    status: ExitStatus::Code(if failing { 7 } else { 0 }),
                    stdout: format!("{HOSTILE} upgrading\n").into_bytes(),
                    stderr: if failing {
                        b"cannot reach the pager\n".to_vec()
                    } else {
                        Vec::new()
                    },
                    truncated: false,
                })
            }
            _ => self.sim.run_tracked(node, spec, lines, tracking).await,
        }
    }
}

fn plan() -> Arc<UpgradePlan> {
    ha_plan(|plan| {
        HookSet::parse(
            "apiVersion: kupgrade.dev/v1alpha1\nkind: Hooks\nhooks:\n  - name: announce\n    before: upgrade\n    argv: [announce-hook]\n",
            "hooks.yaml",
        )
        .unwrap()
        .insert(plan);
        GateSet::new(vec![pods_gate()]).unwrap().insert(plan);
    })
}

fn driver(sim: &SimCluster, failing: &Arc<AtomicBool>) -> Driver {
    let s = Arc::new(sim.clone());
    let runner = Arc::new(HookStub {
        sim: sim.clone(),
        failing: failing.clone(),
    });
    Driver::new(runner.clone(), s.clone())
        .provider(s.clone())
        .gates(s)
        .local_runner(runner)
}

/// Drives one session of `plan` on `sim` (the hook failing while `failing` holds) over
/// `journal` (the records so far), appending to it (and to `report` when given); returns how
/// it ended and the lines the driver printed.
async fn session(
    sim: &SimCluster,
    failing: &Arc<AtomicBool>,
    plan: &Arc<UpgradePlan>,
    journal: &mut Vec<Record>,
    report: Option<&mut RunReport>,
) -> (Finished, Vec<String>) {
    let out = drive_reporting(driver(sim, failing), plan, journal, report).await;
    let lines = out.lines();
    (out.finished, lines)
}

/// The records with the journal's wall clock moved so the first is at 2025-11-01 09:00 UTC
/// (the driver's clock starts from the real time; the offsets are the sim's virtual time).
fn pinned(records: &[Record]) -> Vec<Record> {
    let pin: jiff::Timestamp = "2025-11-01T09:00:00Z".parse().unwrap();
    let first = records[0].at;
    records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.at = pin.saturating_add(r.at.duration_since(first)).unwrap();
            r
        })
        .collect()
}

fn page(plan: &UpgradePlan, records: &[Record]) -> String {
    let summary = RunSummary::from_records(plan, records);
    let mut out = String::new();
    let extras = RunHtmlExtras {
        resume: Some(RESUME),
        readiness: None,
    };
    html_run(plan, &summary, extras, &mut out).unwrap();
    out
}

/// A step's row in the steps table.
fn row<'a>(page: &'a str, step: &str) -> &'a str {
    let start = page
        .find(&format!("<tr data-step=\"{step}\""))
        .unwrap_or_else(|| panic!("no row for {step}"));
    let end = page[start..].find("</tr>").unwrap();
    &page[start..start + end]
}

#[tokio::test(start_paused = true)]
async fn the_page_of_a_run_halted_by_a_regression_gate_names_the_gate_the_pod_and_the_resume() {
    let plan = plan();
    let (sim, victim) = troubled_sim(&plan);
    let failing = Arc::new(AtomicBool::new(false));
    let mut journal = Vec::new();
    let (finished, _) = session(&sim, &failing, &plan, &mut journal, None).await;
    let (_, gate_step) = halted_at(&finished, StopReason::StepFailed, "/gate-pods");

    // The hook's output (a success) and the gate's snapshots are journaled.
    assert!(journal.iter().any(|r| matches!(&r.kind,
        RecordKind::TaskOutput { task, stdout, .. } if task.step.as_str().ends_with("hook-before-upgrade-announce") && stdout.contains(HOSTILE))));
    let noted: Vec<&str> = (journal.iter())
        .filter_map(|r| match &r.kind {
            RecordKind::WorkloadsNoted { task, .. } => Some(task.step.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        noted.iter().any(|s| s.ends_with("/baseline-pods")),
        "{noted:?}"
    );
    assert!(noted.contains(&gate_step.as_str()), "{noted:?}");

    let html = page(&plan, &pinned(&journal));
    // Where and why it stopped, and how to go on.
    let status = &html[html.find("<section id=\"status\"").unwrap()..];
    let status = &status[..status.find("</section>").unwrap()];
    assert!(
        status.contains("<h2>Halted: a step failed</h2>"),
        "{status}"
    );
    assert!(
        status.contains(&format!(
            "<strong class=\"stopped-at\">{gate_step}</strong>"
        )),
        "{status}"
    );
    assert!(html.contains("cargo run --example apply -- --journal &#39;j&#39; --resume"));
    // Each step's state: done before the gate, failed at it, not started after it.
    assert!(row(&html, &gate_step).contains("<td class=\"failed\">failed</td>"));
    let states: Vec<&str> = ["done", "failed", "not started"]
        .into_iter()
        .filter(|s| html.contains(&format!("\">{s}</td>")))
        .collect();
    assert_eq!(states, ["done", "failed", "not started"]);
    // The gate's result names the pod; the workloads before and after show it.
    let who = format!("pod default/{} on ", victim.name);
    let gates = &html[html.find("<table id=\"gates\">").unwrap()..];
    assert!(gates.contains(&who) && gates.contains("is crash-looping"));
    let workloads = &html[html.find("<h2>Workloads before and after</h2>").unwrap()..];
    assert!(workloads.contains(&who));
    // Hostile output stays text.
    assert!(
        !html.contains("<script"),
        "markup from a hook reached the page"
    );
    assert!(html.contains(
        "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt; &amp; \\u{1b}[2J upgrading\n"
    ));
    // One run bar per started step, none for the others.
    let started = (0..plan.steps.len())
        .filter(|&i| {
            RunSummary::from_records(&plan, &journal)
                .step_times(i)
                .is_some()
        })
        .count();
    assert_eq!(html.matches("<g class=\"run-bar ").count(), started);
    assert_eq!(html.matches("<g class=\"est\"").count(), plan.steps.len());

    insta::assert_snapshot!("halted_at_a_regression_gate", html);

    // The page as it was while the gate ran (the journal up to its start).
    let at = journal
        .iter()
        .position(|r| matches!(&r.kind, RecordKind::TaskStarted { task, .. } if task.step.as_str() == gate_step))
        .unwrap();
    let html = page(&plan, &pinned(&journal[..=at]));
    let status = &html[html.find("<section id=\"status\"").unwrap()..];
    assert!(
        status.starts_with("<section id=\"status\" class=\"status running\"><h2>Running</h2>"),
        "{status}"
    );
    assert!(row(&html, &gate_step).contains("<td class=\"running\">running</td>"));
    assert!(html.contains("<li>the latest session has not ended</li>"));
    assert!(html.contains(&format!(
        "<g class=\"run-bar running\" data-step=\"{gate_step}\">"
    )));
}

/// The baseline is journaled: a resumed session (a new driver, with nothing in memory)
/// compares with it. The pod has stopped crash-looping but restarted 3 times since the
/// baseline: only a gate that has the baseline sees that (without one, restarts are not
/// compared and the gate would pass).
#[tokio::test(start_paused = true)]
async fn a_resumed_gate_judges_against_the_journaled_baseline() {
    let plan = plan();
    let (sim, victim) = troubled_sim(&plan);
    let failing = Arc::new(AtomicBool::new(false));
    let mut journal = Vec::new();
    let (first, _) = session(&sim, &failing, &plan, &mut journal, None).await;
    assert!(first.report().is_some());
    sim.set_pod_trouble(&victim, false, 3);
    let (second, lines) = session(&sim, &failing, &plan, &mut journal, None).await;
    let report = second.report().expect("halted again");
    assert!(
        report
            .summary
            .contains(&format!("pod default/{} on ", victim.name))
            && report.summary.contains("restarted 3 time(s) since"),
        "{report}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("no snapshot from before")),
        "{lines:#?}"
    );
}

/// The file through [`ReportingJournal`]: written at the first record and at the session's
/// end only when the throttle is long; at every record without one;
/// replaced atomically (nothing else left in the folder); a resumed session's report starts
/// from the journal and the page tells both sessions.
#[tokio::test(start_paused = true)]
async fn the_report_file_is_throttled_and_a_resume_goes_on_with_the_same_page() {
    let plan = plan();
    let sim = sample_sim();
    let failing = Arc::new(AtomicBool::new(true));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.html");
    let mut journal = Vec::new();

    // The hook fails: the run halts there.
    let mut report = RunReport::new(&file, plan.clone(), &journal)
        .resume_command(RESUME)
        .every(Duration::from_secs(3600));
    let (first, _) = session(&sim, &failing, &plan, &mut journal, Some(&mut report)).await;
    assert!(first.report().is_some());
    assert_eq!(
        report.writes(),
        2,
        "the first task's end and the session's end"
    );
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(html.contains("<h2>Halted: a step failed</h2>"));
    assert!(
        html.contains("cannot reach the pager"),
        "a failed hook's output"
    );
    assert!(html.contains("&#39;j&#39; --resume"));
    report.finish().unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["run.html"], "no temporary file left");

    // Resumed with the hook fixed: the same page goes on to the end.
    failing.store(false, Ordering::SeqCst);
    let before = journal.len();
    let mut report = RunReport::new(&file, plan.clone(), &journal)
        .resume_command(RESUME)
        .every(Duration::ZERO)
        .ratio(0);
    let (second, _) = session(&sim, &failing, &plan, &mut journal, Some(&mut report)).await;
    assert!(matches!(second, Finished::Completed), "{second:?}");
    // Without a throttle, one write a record.
    assert_eq!(report.writes(), (journal.len() - before) as u64);
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(html.contains("<h2>Completed</h2>"), "{html}");
    assert!(html.contains("· 2 session(s) ·"));
    assert!(html.contains("hook-before-upgrade-announce"));
    assert!(!html.contains("the latest session has not ended"));
    // The page from the whole journal after the fact is the same page.
    let again = dir.path().join("again.html");
    RunReport::write_once(&again, plan.clone(), &journal, Some(RESUME)).unwrap();
    assert_eq!(std::fs::read_to_string(&again).unwrap(), html);
}

/// A report that cannot be written never stops the run: the run completes, nothing was
/// written, and `finish` names the file.
#[tokio::test(start_paused = true)]
async fn a_report_that_cannot_be_written_does_not_stop_the_run() {
    let plan = plan();
    let sim = sample_sim();
    let failing = Arc::new(AtomicBool::new(false));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("no-such-folder").join("run.html");
    let mut journal = Vec::new();
    let mut report = RunReport::new(&file, plan.clone(), &journal).ratio(0);
    let (finished, _) = session(&sim, &failing, &plan, &mut journal, Some(&mut report)).await;
    assert!(matches!(finished, Finished::Completed), "{finished:?}");
    assert_eq!(report.writes(), 0);
    let e = report.finish().unwrap_err();
    assert!(e.to_string().contains("no-such-folder/run.html"), "{e}");
}
