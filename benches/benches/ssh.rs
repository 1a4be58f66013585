//! SSH command round trips, side by side against one real sshd on 127.0.0.1:
//!
//! - `kupgrade_reused_connection`: `SshRunner` running `true` over its node connection
//!   (opened once, before measuring; each command is a new channel on it, over OpenSSH's
//!   native multiplexing protocol);
//! - `ssh_per_command`: one `ssh HOST true` process per command (a full connection,
//!   key exchange and login each time);
//! - `controlmaster`: `ssh -S SOCKET HOST true` against an already open OpenSSH ControlMaster.
//!
//! The server is the test harness's (`crates/kupgrade-exec/tests/support/sshd.rs`): its
//! sessions get an empty `HOME` through sshd's `SetEnv`, so the login shell reads no start-up
//! files; otherwise root's `~/.bashrc` (~120 ms on these machines) would be measured instead of
//! SSH. The machine is not modified.
//!
//! Targets: kupgrade at least 20x faster than `ssh_per_command`, at most 1.5x `controlmaster`.
//! After criterion's report, the bench prints the medians of every measured iteration and the
//! ratios. Run: `cargo bench -p kupgrade-benches --bench ssh`.
#![allow(missing_docs)]

#[path = "../../crates/kupgrade-exec/tests/support/sshd.rs"]
mod sshd;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use kupgrade_core::ports::{CommandRunnerExt, CommandSpec};
use kupgrade_core::{NodeName, SshTarget};
use kupgrade_exec::{SshConfig, SshRunner};

/// Every measured iteration's duration, per benchmark (criterion reports means and slopes;
/// the targets are stated for medians).
type Samples = Arc<Mutex<Vec<(&'static str, Vec<Duration>)>>>;

fn timed(samples: &Samples, name: &'static str, iters: u64, mut f: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut mine = Vec::with_capacity(iters as usize);
    for _ in 0..iters {
        let start = Instant::now();
        f();
        let d = start.elapsed();
        total += d;
        mine.push(d);
    }
    let mut all = samples.lock().unwrap();
    match all.iter_mut().find(|(n, _)| *n == name) {
        Some((_, v)) => v.extend(mine),
        None => all.push((name, mine)),
    }
    total
}

fn ssh(sshd: &sshd::Sshd) -> Command {
    let mut c = Command::new("ssh");
    c.args(sshd.ssh_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("run ssh");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn bench_ssh(c: &mut Criterion, sshd: &sshd::Sshd, samples: &Samples) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let node: NodeName = "bench-1".parse().unwrap();
    let runner = SshRunner::new(
        SshConfig::new()
            .identity_file(sshd.client_key())
            .known_hosts_file(sshd.known_hosts())
            .state_dir(state.path()),
    )
    .unwrap()
    .with_target(
        node.clone(),
        SshTarget {
            host: Some("127.0.0.1".into()),
            port: Some(sshd.port()),
            user: Some(sshd.user().to_string()),
        },
    );
    let true_cmd = CommandSpec::new("true");
    let round_trip = || {
        let out = rt.block_on(runner.output(&node, &true_cmd)).unwrap();
        assert!(out.status.success());
    };
    round_trip(); // opens the connection
    // The login shell must not read root's ~/.bashrc (it would export PYENV_ROOT).
    let env = rt
        .block_on(runner.output(
            &node,
            &CommandSpec::shell("printf '%s|%s' \"$HOME\" \"${PYENV_ROOT-unset}\""),
        ))
        .unwrap();
    assert_eq!(
        env.stdout_text(),
        format!("{}|unset", sshd.home().display()),
        "the remote shell start-up is not empty"
    );

    // An OpenSSH ControlMaster, opened once.
    let socket: PathBuf = state.path().join("cm.sock");
    run_ok(
        ssh(sshd)
            .args(["-M", "-f", "-N", "-o", "ControlPersist=yes", "-S"])
            .arg(&socket)
            .arg("127.0.0.1"),
    );
    let via_master = |socket: &Path| {
        run_ok(ssh(sshd).arg("-S").arg(socket).args(["127.0.0.1", "true"]));
    };

    let mut g = c.benchmark_group("ssh_round_trip");
    g.sample_size(50).warm_up_time(Duration::from_secs(1));
    g.bench_function("kupgrade_reused_connection", |b| {
        b.iter_custom(|iters| timed(samples, "kupgrade_reused_connection", iters, round_trip))
    });
    g.bench_function("controlmaster", |b| {
        b.iter_custom(|iters| timed(samples, "controlmaster", iters, || via_master(&socket)))
    });
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("ssh_per_command", |b| {
        b.iter_custom(|iters| {
            timed(samples, "ssh_per_command", iters, || {
                run_ok(ssh(sshd).args(["127.0.0.1", "true"]))
            })
        })
    });
    g.finish();

    let _ = ssh(sshd)
        .arg("-S")
        .arg(&socket)
        .args(["-O", "exit", "127.0.0.1"])
        .output();
    rt.block_on(runner.close());
    assert_eq!(
        sshd.accepted_logins() as u64,
        // kupgrade and the ControlMaster log in once each; every `ssh_per_command` once more.
        2 + samples
            .lock()
            .unwrap()
            .iter()
            .find(|(n, _)| *n == "ssh_per_command")
            .map_or(0, |(_, v)| v.len() as u64),
        "unexpected number of SSH logins"
    );
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn report(samples: &Samples) {
    let mut all = samples.lock().unwrap();
    let mut med = std::collections::HashMap::new();
    println!("\nmedians of every measured iteration (warm-up included):");
    for (name, v) in all.iter_mut() {
        let m = median(v);
        println!(
            "  {name:<28} {:>10.3} ms  ({} iterations)",
            m.as_secs_f64() * 1e3,
            v.len()
        );
        med.insert(*name, m.as_secs_f64());
    }
    let (Some(k), Some(cm), Some(one)) = (
        med.get("kupgrade_reused_connection"),
        med.get("controlmaster"),
        med.get("ssh_per_command"),
    ) else {
        return; // a filter left some out
    };
    println!(
        "  ssh_per_command / kupgrade     {:>8.1}x  (target >= 20x: {})",
        one / k,
        if one / k >= 20.0 { "met" } else { "MISSED" }
    );
    println!(
        "  kupgrade / controlmaster       {:>8.2}x  (target <= 1.5x: {})",
        k / cm,
        if k / cm <= 1.5 { "met" } else { "MISSED" }
    );
}

fn benches(c: &mut Criterion) {
    let Some(sshd) = sshd::Sshd::start() else {
        return;
    };
    let samples: Samples = Arc::default();
    bench_ssh(c, &sshd, &samples);
    report(&samples);
}

criterion_group!(ssh_benches, benches);
criterion_main!(ssh_benches);
