//! What the tests that run the examples as programs share.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The built example `name` (`target/<profile>/examples/<name>`, beside this test's `deps`),
/// to run in the examples' folder without `RUST_LOG` and `RUST_BACKTRACE` from the test's
/// environment.
pub fn example(name: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("examples").join(name))
        .unwrap();
    assert!(
        path.exists(),
        "{} is missing: `cargo test -p kupgrade-examples` builds the examples (with a --test filter, build them first: cargo build -p kupgrade-examples --examples)",
        path.display()
    );
    let mut command = Command::new(path);
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LOG");
    command
}

/// Runs `command` to its end, nothing on its stdin; it must succeed (else its stderr says why).
pub fn succeeded(command: &mut Command) -> Output {
    let out = command.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The planning options of the runs that gate the bundled HA sample's hops: to 1.29, planned
/// on 2025-11-01 (when 1.29 was no longer supported).
pub const HA_TO_1_29: [&str; 7] = [
    "--cluster",
    "clusters/ha.yaml",
    "--target",
    "1.29",
    "--date",
    "2025-11-01",
    "--allow-unsupported-target",
];

/// `apply` recording into `journal`, on the simulated cluster sped up 100,000 times with its
/// state kept in `state`; nothing on its stdin.
pub fn apply_sped_up(journal: &Path, state: &Path) -> Command {
    let mut command = example("apply");
    command
        .arg("--journal")
        .arg(journal)
        .arg("--sim-state")
        .arg(state)
        .args(["--sim-speed", "100000"])
        .stdin(Stdio::null());
    command
}
