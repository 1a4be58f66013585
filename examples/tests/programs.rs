//! The examples as programs: what a user sees at the shell (exit statuses, pipes, terminal
//! escapes, the names in messages). `cargo test` builds the examples before it runs tests;
//! these run the binaries it built.
mod support;

use std::process::{Command, Output, Stdio};

use support::{example, succeeded};

/// `apply` on the bundled HA sample to 1.30 on 2025-03-01, the simulated cluster at `speed`
/// (0: in virtual time).
fn apply_sim(speed: &str) -> Command {
    let mut command = example("apply");
    command.args([
        "--date",
        "2025-03-01",
        "--target",
        "1.30",
        "--sim-speed",
        speed,
    ]);
    command
}

fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    for (name, args) in [
        ("plan", &["--date", "2025-03-01", "--format", "json"][..]),
        ("plan", &["--date", "2025-03-01"][..]),
        ("check", &["--date", "2025-03-01"][..]),
    ] {
        let mut child = example(name)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `| head -0`: the reader is gone before the first write.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert!(
            out.status.success(),
            "{name} into a closed pipe: {:?}\n{err}",
            out.status
        );
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
}

#[test]
fn log_lines_carry_no_terminal_escapes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("up.journal");
    // A torn journal tail is logged as a warning when the run opens the journal.
    succeeded(apply_sim("0").arg("--journal").arg(&journal));
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes.extend_from_slice(b"{\"torn");
    std::fs::write(&journal, bytes).unwrap();

    let out = run(example("apply")
        .args(["--resume", "--journal", journal.to_str().unwrap()])
        .env("RUST_LOG", "warn"));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("WARN") && err.contains("ignoring it"),
        "no log line: {err}"
    );
    assert!(
        !err.contains('\u{1b}'),
        "escapes in a log read by a pipe: {err:?}"
    );
}

#[test]
fn the_bundled_inventory_is_named_not_its_build_path() {
    let out = run(example("plan").args(["--target", "v1.20.0"]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("planning the upgrade of clusters/ha.yaml (bundled)"),
        "{err}"
    );
    assert!(!err.contains(env!("CARGO_MANIFEST_DIR")), "{err}");
    // It is found from any directory.
    let out = succeeded(example("check").arg("--date=2025-03-01").current_dir("/"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("(clusters/ha.yaml (bundled))"));
}

#[test]
fn check_exits_1_when_the_cluster_violates_the_policy() {
    let out = run(example("check").args([
        "clusters/mid-upgrade-docs-order.yaml",
        "--date",
        "2025-03-01",
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("error[upstream/kubelet]"));
    // Warnings alone: 0.
    let out = run(example("check").args(["clusters/mid-upgrade.yaml", "--date", "2025-03-01"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_drain_timeout_past_the_cap_is_a_usage_error_not_a_panic() {
    let out = run(example("apply").args(["--drain-timeout", "18446744073709551615"]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--drain-timeout") && err.contains("not in 1..=604800"),
        "{err}"
    );
}

#[test]
fn a_run_that_deletes_pods_past_their_budgets_says_so_loudly() {
    let out = run(apply_sim("0").arg("--disable-eviction"));
    let (stdout, err) = (String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(out.status.success(), "{err}");
    assert!(err.contains("WARNING: --disable-eviction"), "{err}");
    assert!(
        stdout.contains("WARNING: --disable-eviction: the drains deleted pods"),
        "{stdout}"
    );
    let quiet = run(&mut apply_sim("0"));
    assert!(!String::from_utf8_lossy(&quiet.stdout).contains("WARNING"));
}

#[test]
fn sigterm_and_sighup_abort_apply_and_record_the_session_cancelled() {
    for signal in ["TERM", "HUP"] {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("up.journal");
        let child = apply_sim("20")
            .arg("--journal")
            .arg(&journal)
            .arg("--sim-state")
            .arg(dir.path().join("sim.json"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Until a task has started (its record is in the journal).
        let started = std::time::Instant::now();
        while !std::fs::read_to_string(&journal)
            .unwrap_or_default()
            .contains("\"task-started\"")
        {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "SIG{signal}: no task started"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // The signal, by the id of the process this test started.
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(130),
            "SIG{signal}: {:?}\n{}",
            out.status,
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(&format!("SIG{signal}: aborting the running steps")),
            "{}",
            stderr(&out)
        );
        let text = std::fs::read_to_string(&journal).unwrap();
        let last = text.lines().last().unwrap();
        assert!(
            last.contains("\"stopped\"") && last.contains("cancelled"),
            "SIG{signal}: the journal does not end with a cancelled session: {last}"
        );
        assert!(
            text.contains("\"interrupted\""),
            "SIG{signal}: no task recorded as interrupted:\n{text}"
        );
    }
}
