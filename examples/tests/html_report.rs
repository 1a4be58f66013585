//! The HTML plan report in a real browser: headless Chromium (Debian's `chromium`) loads the
//! page `plan --format html` writes, takes a screenshot, and dumps the DOM it built, which
//! must hold one bar per step, one lane per node (and one for cluster-wide steps) and the
//! version band; the page logs no console error. The same for the run report
//! (`apply --report`) of a run halted at a gate: an estimated bar per step, a run bar per
//! step that started, the states done, failed and not started.
//!
//! With `KUPGRADE_SCREENSHOTS=DIR`, the screenshots are also copied to DIR (`plan.png`,
//! `run.png`) to refresh the README's.
//!
//! Without chromium the test says so and passes, unless `KUPGRADE_REQUIRE_REAL_SERVERS=1`
//! (CI, `scripts/test.sh`, which installs it), where a missing browser is a failure.
mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{HA_TO_1_29, apply_sped_up, example, succeeded};

const CHROMIUM: &str = "/usr/bin/chromium";

/// `plan` on the bundled old-1.24 sample (three hops, batches) in `format`.
fn plan(format: &str) -> String {
    let out = succeeded(
        example("plan")
            .args(["--cluster", "clusters/old-1.24.yaml", "--target", "1.27"])
            .args(["--date", "2024-06-01", "--format", format]),
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs chromium headless on `page` with `extra` flags; killed after two minutes.
fn chromium(profile: &Path, page: &Path, extra: &[String]) -> Output {
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "chromium did not finish in two minutes on {}",
                page.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// Console messages in chromium's log (`ERROR:CONSOLE`, `INFO:CONSOLE(..)] "Uncaught ..."`):
/// the page has no script, so any is an error.
fn console_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("Uncaught") || l.contains(":CONSOLE"))
        .collect()
}

/// True when chromium is here; false (the test then passes, saying why) when it is not,
/// unless `KUPGRADE_REQUIRE_REAL_SERVERS=1`.
fn have_chromium() -> bool {
    if !Path::new(CHROMIUM).exists() {
        if std::env::var("KUPGRADE_REQUIRE_REAL_SERVERS").as_deref() == Ok("1") {
            panic!(
                "{CHROMIUM} is missing and KUPGRADE_REQUIRE_REAL_SERVERS=1: install Debian's chromium package (scripts/testenv.sh packages does)"
            );
        }
        eprintln!(
            "skipped: {CHROMIUM} is missing (Debian's chromium package renders the HTML report)"
        );
        return false;
    }
    true
}

/// Takes a screenshot of `page` (checked: a PNG, no console error; copied to
/// `KUPGRADE_SCREENSHOTS` when set, as `name`), then returns the DOM chromium built.
fn render(dir: &Path, page: &Path, name: &str) -> String {
    let shot = dir.join(name);
    let out = chromium(
        &dir.join("profile-shot"),
        page,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1400,1000".to_string(),
        ],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium --screenshot: {log}");
    let png = std::fs::read(&shot).unwrap_or_default();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "no screenshot ({} bytes): {log}",
        png.len()
    );
    assert_eq!(console_errors(&log), Vec::<&str>::new());
    if let Some(keep) = std::env::var_os("KUPGRADE_SCREENSHOTS") {
        std::fs::copy(&shot, Path::new(&keep).join(name)).unwrap();
    }

    let out = chromium(&dir.join("profile-dom"), page, &["--dump-dom".to_string()]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium --dump-dom: {log}");
    assert_eq!(console_errors(&log), Vec::<&str>::new());
    let dom = String::from_utf8(out.stdout).unwrap();
    // Nothing the page holds reaches out: no script, no link, no remote source.
    for bad in ["<script", "<link", "src=\"http", "href=\"http"] {
        assert!(!dom.contains(bad), "the page holds {bad}");
    }
    dom
}

#[test]
fn the_report_renders_in_headless_chromium() {
    if !have_chromium() {
        return;
    }
    let json: serde_json::Value = serde_json::from_str(&plan("json")).unwrap();
    let steps = json["steps"].as_array().unwrap().len();
    let nodes = json["nodes"].as_array().unwrap().len();
    assert!(steps > 10 && nodes > 1, "{steps} steps, {nodes} nodes");

    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("plan.html");
    std::fs::write(&page, plan("html")).unwrap();

    let dom = render(dir.path(), &page, "plan.png");
    assert_eq!(
        dom.matches("<g class=\"bar ").count(),
        steps,
        "one bar per step"
    );
    assert_eq!(
        dom.matches("data-lane=\"node\"").count(),
        nodes,
        "one lane per node"
    );
    assert_eq!(
        dom.matches("data-lane=\"cluster\"").count(),
        1,
        "one cluster-wide lane"
    );
    assert!(dom.contains("<svg id=\"version-band\""), "no version band");
    assert!(
        dom.matches("class=\"band-kubelet\"").count() >= 2,
        "the kubelet band does not move"
    );
}

/// The run report of the ha sample halted at a failing command gate after its hop (the
/// simulated cluster, sped up).
#[test]
fn the_run_report_renders_in_headless_chromium() {
    if !have_chromium() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (gates, journal, page) = (d.join("gates.yaml"), d.join("journal"), d.join("run.html"));
    std::fs::write(
        &gates,
        "apiVersion: kupgrade.dev/v1alpha1\nkind: Gates\ngates:\n  - name: smoke\n    after: [hop]\n    intervalSeconds: 1\n    timeoutSeconds: 1\n    command: { argv: [sh, -c, 'echo \"<script>x</script>\" >&2; exit 1'] }\n",
    )
    .unwrap();
    let out = apply_sped_up(&journal, &d.join("sim.json"))
        .args(HA_TO_1_29)
        .arg("--gates")
        .arg(&gates)
        .arg("--report")
        .arg(&page)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the gate fails: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The plan beside the journal: its steps, and how many the journal says started.
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("journal.plan.json")).unwrap())
            .unwrap();
    let steps = plan["steps"].as_array().unwrap().len();
    let started: std::collections::BTreeSet<String> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["record"] == "task-started")
        .filter_map(|r| r["step"].as_str().map(String::from))
        .collect();
    assert!(
        started.len() > 10 && started.len() < steps,
        "{} of {steps}",
        started.len()
    );

    let dom = render(d, &page, "run.png");
    assert_eq!(
        dom.matches("<g class=\"est\"").count(),
        steps,
        "one estimated bar per step"
    );
    assert_eq!(
        dom.matches("<g class=\"run-bar ").count(),
        started.len(),
        "one run bar per step that started"
    );
    for class in ["run-bar done", "run-bar failed"] {
        assert!(dom.contains(&format!("<g class=\"{class}\"")), "no {class}");
    }
    for state in ["done", "failed", "not started"] {
        assert!(dom.contains(&format!("\">{state}</td>")), "no step {state}");
    }
    assert!(dom.contains("<h2>Halted: a step failed</h2>"));
    assert!(dom.contains("<code class=\"resume\" id=\"resume\">"));
}
