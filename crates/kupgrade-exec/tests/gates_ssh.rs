//! A command gate on a named node through the SSH runner, against a real OpenSSH server on
//! 127.0.0.1 (see support/sshd.rs). The upgrade itself runs on the simulated cluster (sped
//! up); the gate's command goes over SSH to the node `cp-1` (this machine): it holds the run
//! until the command exits 0, and a gate that times out names the command, the node and its
//! output.
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kupgrade_core::SshTarget;
use kupgrade_core::gate::{Gate, GateCheck, GateCommand, GatePoint, GateSet};
use kupgrade_core::ports::{CommandSpec, Program};
use kupgrade_core::run::{Finished, StopReason};
use kupgrade_core::testing::upstream_run;
use kupgrade_exec::driver::{Driver, JournalSink};
use kupgrade_exec::{SshConfig, SshRunner};
use support::fixtures::{Split, fast_sim, ha_plan, halted};
use support::sshd::Sshd;

/// `sh` (the gate's program), which goes over SSH; everything else runs on the simulated nodes.
fn is_sh(spec: &CommandSpec) -> bool {
    matches!(&spec.program, Program::Exec { program, .. } if program == "sh")
}

async fn drive(sshd: &Sshd, state: &std::path::Path, gate: Gate) -> Finished {
    let sim = fast_sim();
    let ssh = SshRunner::new(
        SshConfig::new()
            .identity_file(sshd.client_key())
            .known_hosts_file(sshd.known_hosts())
            .state_dir(state),
    )
    .unwrap()
    .with_target(
        "cp-1".parse().unwrap(),
        SshTarget {
            host: Some("127.0.0.1".into()),
            port: Some(sshd.port()),
            user: Some(sshd.user().to_string()),
        },
    );
    let s = Arc::new(sim.clone());
    let runner = Arc::new(Split {
        pick: is_sh,
        picked: ssh,
        sim,
    });
    let plan = ha_plan(|plan| GateSet::new(vec![gate]).unwrap().insert(plan));
    let mut journal = Vec::new();
    let mut run = upstream_run(&plan, &journal);
    Driver::new(runner, s.clone())
        .provider(s)
        .drive(&mut run, &mut journal as &mut dyn JournalSink)
        .await
        .unwrap()
}

fn gate(script: String, timeout: u64) -> Gate {
    let mut g = Gate::new(
        "replication",
        GateCheck::Command(GateCommand {
            argv: vec!["sh".into(), "-c".into(), script],
            node: Some("cp-1".parse().unwrap()),
            timeout_seconds: 30,
        }),
    );
    g.after = vec![GatePoint::Hop];
    g.interval_seconds = 1;
    g.timeout_seconds = timeout;
    g
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_gate_on_a_node_runs_over_ssh() {
    let Some(sshd) = Sshd::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("caught-up");
    let script = format!(
        "test -e {} || {{ echo 'replica lag 12s' >&2; exit 1; }}",
        flag.display()
    );
    // The flag appears 3 s into the run: the gate holds it until then.
    let f = flag.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        std::fs::write(f, "").unwrap();
    });
    let began = Instant::now();
    let finished = drive(&sshd, dir.path(), gate(script.clone(), 60)).await;
    assert!(finished.is_completed(), "{:?}", finished.report());
    assert!(began.elapsed() >= Duration::from_secs(3));
    assert!(sshd.accepted_logins() >= 1, "{}", sshd.log());

    // Never there: the gate times out naming the node and the command's output.
    std::fs::remove_file(&flag).unwrap();
    let finished = drive(&sshd, dir.path(), gate(script, 2)).await;
    let report = halted(&finished, StopReason::StepFailed);
    assert!(
        report
            .summary
            .contains("on cp-1 ended with exit code 1: replica lag 12s"),
        "{report}"
    );
}
