//! Gates through the apply example, as a process: a run killed with SIGKILL while it waits at
//! a gate evaluates the gate again when resumed (it is never assumed passed), and goes on
//! only once the gate passes. The gate is a command gate run locally; the cluster is the
//! simulated one, sped up (node steps take no real time, the gate's waits do).
mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{HA_TO_1_29, apply_sped_up};

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(ToString::to_string)
        .collect()
}

/// The journal records of the gate's task: (record kind, attempt).
fn gate_records(journal: &Path) -> Vec<(String, u64)> {
    lines_of(journal)
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["step"] == "v1.29.15/hop/gate-smoke")
        .map(|r| {
            (
                r["record"].as_str().unwrap_or("").to_string(),
                r["attempt"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[test]
fn a_run_killed_at_a_gate_evaluates_it_again_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (count, flag, journal) = (d.join("count"), d.join("flag"), d.join("journal"));
    let gates = d.join("gates.yaml");
    std::fs::write(
        &gates,
        format!(
            "apiVersion: kupgrade.dev/v1alpha1\nkind: Gates\ngates:\n  - name: smoke\n    after: [hop]\n    intervalSeconds: 1\n    timeoutSeconds: 600\n    command: {{ argv: [sh, -c, 'echo x >> {}; test -e {}'] }}\n",
            count.display(),
            flag.display()
        ),
    )
    .unwrap();
    let apply = |extra: &[&str]| {
        let mut c = apply_sped_up(&journal, &d.join("sim.json"));
        c.args(extra)
            .arg("--json-events")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let mut child = apply(&HA_TO_1_29)
        .arg("--gates")
        .arg(&gates)
        .spawn()
        .unwrap();
    // Wait until the gate has been evaluated (and failed) twice: the run waits at it.
    let began = Instant::now();
    while lines_of(&count).len() < 2 {
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "the run never reached its gate"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL, by the id of the process this test started
    child.wait().unwrap();
    assert_eq!(
        gate_records(&journal),
        vec![("task-started".to_string(), 1)],
        "killed while the gate was in flight"
    );
    let evaluated = lines_of(&count).len();

    // The condition holds now; the resumed run evaluates the gate again, then finishes.
    std::fs::write(&flag, "").unwrap();
    let status = apply(&["--resume"]).status().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        lines_of(&count).len() > evaluated,
        "the gate's command ran again"
    );
    assert_eq!(
        gate_records(&journal),
        vec![
            ("task-started".to_string(), 1),
            ("task-started".to_string(), 2),
            // What the gate said (journal format 4), just before its end.
            ("task-output".to_string(), 2),
            ("task-finished".to_string(), 2),
        ]
    );
}
