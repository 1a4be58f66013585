//! The command-runner conformance checks of tracking
//! ([`CommandRunner::run_tracked`], [`CommandRunner::probe`], [`CommandRunner::stop`]), run by
//! [`super::command_runner::run_all`] with the same [`Capabilities`].
//!
//! With [`TrackingSupport::Full`]:
//!
//! - a command run with tracking reports exactly one handle, and once it has ended the handle
//!   is found ended;
//! - a running command is found running by its handle, and stopping it ends it and everything
//!   it started (a background child that would leave a file behind does not);
//! - two copies of a command under one node-side lock never overlap; a copy whose lock stays
//!   held past its wait fails with [`RunnerError::Locked`] naming the holder, and runs nothing.
//!
//! With [`TrackingSupport::None`]: a lock is refused with [`RunnerError::Unsupported`] and
//! nothing runs, no handle is reported, probing cannot tell and stopping is refused.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::command_runner::Capabilities;
use super::on_node::{
    exists, fresh_dir, join2, nothing_survived, ok_text, out, outlived_by_a_child,
};
use crate::NodeName;
use crate::ports::{
    CommandHandle, CommandRunner, CommandSpec, HandleSink, LOCK_REFUSAL, LineSink, Liveness,
    NodeLock, RunnerError, Tracking, shell_quote,
};

/// Whether a backend tracks the commands it starts
/// ([`CommandRunner::run_tracked`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrackingSupport {
    /// It reports a handle for each command, finds a command again by its handle (from
    /// another runner of the same kind too), stops it with everything it started, and holds
    /// node-side locks.
    Full,
    /// It does none of that: a lock is refused with [`RunnerError::Unsupported`] (nothing
    /// runs), no handle is reported, a command cannot be looked for
    /// ([`Liveness::Unknown`]) nor stopped (`Unsupported`).
    None,
}

/// Runs the tracking checks `caps.tracking` calls for.
pub async fn run_all(runner: &dyn CommandRunner, node: &NodeName, caps: &Capabilities) {
    match caps.tracking {
        TrackingSupport::Full => {
            handles_are_reported(runner, node, caps).await;
            running_commands_are_found_and_stopped(runner, node, caps).await;
            node_locks_keep_copies_apart(runner, node, caps).await;
        }
        TrackingSupport::None => tracking_is_refused(runner, node, caps).await,
    }
}

/// Handles a sink received.
type Handles = Arc<Mutex<Vec<CommandHandle>>>;

fn recording_handles() -> (HandleSink, Handles) {
    let got = Handles::default();
    let g = got.clone();
    (HandleSink::new(move |h| g.lock().unwrap().push(h)), got)
}

/// Waits a little on the node (the suite has no clock of its own).
async fn pause(runner: &dyn CommandRunner, node: &NodeName, check: &str, seconds: &str) {
    ok_text(runner, node, check, &CommandSpec::new("sleep").arg(seconds)).await;
}

async fn probe(
    runner: &dyn CommandRunner,
    node: &NodeName,
    check: &str,
    handle: &CommandHandle,
) -> Liveness {
    match runner.probe(node, handle).await {
        Ok(l) => l,
        Err(e) => panic!("conformance/{check}: probing {handle} failed: {e}"),
    }
}

/// Waits until `handle` is found ended (a runner may take a moment to tear a group down).
async fn until_ended(
    runner: &dyn CommandRunner,
    node: &NodeName,
    check: &str,
    handle: &CommandHandle,
) {
    for _ in 0..100 {
        match probe(runner, node, check, handle).await {
            Liveness::Ended => return,
            Liveness::Running => pause(runner, node, check, "0.2").await,
            Liveness::Unknown(why) => {
                panic!("conformance/{check}: {handle} cannot be told: {why}")
            }
        }
    }
    panic!("conformance/{check}: {handle} still runs after 20 s")
}

/// A command run with tracking reports one handle; once it ended, the handle is found ended.
pub async fn handles_are_reported(
    runner: &dyn CommandRunner,
    node: &NodeName,
    caps: &Capabilities,
) {
    let check = "handles_are_reported";
    let _ = caps;
    let (sink, got) = recording_handles();
    let spec = CommandSpec::new("echo")
        .arg("tracked")
        .timeout(Duration::from_secs(60));
    let o = runner
        .run_tracked(
            node,
            &spec,
            &LineSink::none(),
            &Tracking::new().started(sink),
        )
        .await
        .unwrap_or_else(|e| panic!("conformance/{check}: `{spec}` failed: {e}"));
    assert_eq!(o.stdout_text(), "tracked\n", "conformance/{check}: output");
    let handles = got.lock().unwrap().clone();
    assert_eq!(
        handles.len(),
        1,
        "conformance/{check}: expected one handle, got {handles:?}"
    );
    until_ended(runner, node, check, &handles[0]).await;
}

/// A running command is found running by its handle; stopping it ends it and what it started.
pub async fn running_commands_are_found_and_stopped(
    runner: &dyn CommandRunner,
    node: &NodeName,
    caps: &Capabilities,
) {
    let check = "running_commands_are_found_and_stopped";
    let dir = fresh_dir(runner, node, caps, check).await;
    let spec = outlived_by_a_child(&dir).timeout(Duration::from_secs(120));
    let (sink, got) = recording_handles();
    let tracking = Tracking::new().started(sink);
    let none = LineSink::none();
    let run = runner.run_tracked(node, &spec, &none, &tracking);
    let stopper = async {
        let mut handle = None;
        for _ in 0..300 {
            let h = got.lock().unwrap().first().cloned();
            if let Some(h) = h
                && exists(runner, node, check, &format!("{dir}/started")).await
            {
                handle = Some(h);
                break;
            }
            pause(runner, node, check, "0.1").await;
        }
        let handle = handle.unwrap_or_else(|| {
            panic!("conformance/{check}: no handle, or the command never started")
        });
        assert_eq!(
            probe(runner, node, check, &handle).await,
            Liveness::Running,
            "conformance/{check}: the running command is not found running"
        );
        if let Err(e) = runner.stop(node, &handle).await {
            panic!("conformance/{check}: stopping {handle} failed: {e}");
        }
        handle
    };
    // However the run ends (a status, an error), it must end long before its 60 s sleep.
    let (_, handle) = join2(Box::pin(run), Box::pin(stopper)).await;
    until_ended(runner, node, check, &handle).await;
    nothing_survived(runner, node, check, &dir, "stopped").await;
}

/// Two copies under one lock never overlap; a lock held past the wait fails naming the holder.
pub async fn node_locks_keep_copies_apart(
    runner: &dyn CommandRunner,
    node: &NodeName,
    caps: &Capabilities,
) {
    let check = "node_locks_keep_copies_apart";
    let dir = fresh_dir(runner, node, caps, check).await;
    let d = shell_quote(&dir);
    // The step's name is unique to this run of the suite (lock files stay behind).
    let step = dir.rsplit('/').next().unwrap_or(check).to_string();
    let lock = |holder: &str, wait: u64| {
        NodeLock::for_step(
            "conformance",
            &step,
            Some(node.as_str()),
            Duration::from_secs(wait),
            holder,
        )
    };
    let copy = |n: u32| {
        CommandSpec::shell(format!(
            "if [ -e {d}/in ]; then echo overlap; fi; touch {d}/in; sleep 1; rm {d}/in; echo copy-{n}"
        ))
        .timeout(Duration::from_secs(60))
    };
    let (a, b) = (copy(1), copy(2));
    let (ta, tb) = (
        Tracking::new().lock(lock("copy 1", 60)),
        Tracking::new().lock(lock("copy 2", 60)),
    );
    let none = LineSink::none();
    let (ra, rb) = join2(
        Box::pin(runner.run_tracked(node, &a, &none, &ta)),
        Box::pin(runner.run_tracked(node, &b, &none, &tb)),
    )
    .await;
    for (n, r) in [(1, ra), (2, rb)] {
        match r {
            // A backend that merges stderr into stdout shows the lock's waiting line there.
            Ok(o) => assert_eq!(
                o.stdout_text()
                    .lines()
                    .filter(|l| !l.starts_with(LOCK_REFUSAL))
                    .map(|l| format!("{l}\n"))
                    .collect::<String>(),
                format!("copy-{n}\n"),
                "conformance/{check}: copy {n} under one lock overlapped the other, or failed; stderr: {}",
                o.stderr_text()
            ),
            Err(e) => panic!("conformance/{check}: copy {n} failed: {e}"),
        }
    }

    // One copy holds the lock for 3 s; another, waiting 1 s, is refused and names it.
    let holder =
        CommandSpec::shell(format!("touch {d}/held; sleep 3")).timeout(Duration::from_secs(60));
    let late = CommandSpec::shell(format!("touch {d}/late-ran")).timeout(Duration::from_secs(60));
    let (th, tl) = (
        Tracking::new().lock(lock("the first copy", 60)),
        Tracking::new().lock(lock("the second copy", 1)),
    );
    let second = async {
        for _ in 0..300 {
            if exists(runner, node, check, &format!("{dir}/held")).await {
                return runner.run_tracked(node, &late, &none, &tl).await;
            }
            pause(runner, node, check, "0.1").await;
        }
        panic!("conformance/{check}: the first copy never took the lock")
    };
    let (first, second) = join2(
        Box::pin(runner.run_tracked(node, &holder, &none, &th)),
        Box::pin(second),
    )
    .await;
    if let Err(e) = first {
        panic!("conformance/{check}: the holding copy failed: {e}");
    }
    match second {
        Err(RunnerError::Locked { node: n, message }) => {
            assert_eq!(&n, node, "conformance/{check}: node");
            assert!(
                message.contains("the first copy"),
                "conformance/{check}: the refusal does not name the holder: {message}"
            );
        }
        other => panic!("conformance/{check}: expected Locked, got {other:?}"),
    }
    assert!(
        !exists(runner, node, check, &format!("{dir}/late-ran")).await,
        "conformance/{check}: the refused copy ran"
    );
}

/// A runner without tracking refuses a lock (running nothing) and reports no handle.
pub async fn tracking_is_refused(runner: &dyn CommandRunner, node: &NodeName, caps: &Capabilities) {
    let check = "tracking_is_refused";
    let dir = fresh_dir(runner, node, caps, check).await;
    let spec = CommandSpec::new("touch").arg(format!("{dir}/ran"));
    let lock = NodeLock::for_step("conformance", check, None, Duration::from_secs(1), "x");
    let (sink, got) = recording_handles();
    match runner
        .run_tracked(
            node,
            &spec,
            &LineSink::none(),
            &Tracking::new().lock(lock).started(sink.clone()),
        )
        .await
    {
        Err(RunnerError::Unsupported { .. }) => {}
        other => panic!("conformance/{check}: expected Unsupported for a lock, got {other:?}"),
    }
    assert!(
        !exists(runner, node, check, &format!("{dir}/ran")).await,
        "conformance/{check}: the refused command ran"
    );
    let o = out(runner, node, check, &CommandSpec::new("true")).await;
    assert!(o.status.success(), "conformance/{check}: `true` failed");
    let _ = runner
        .run_tracked(
            node,
            &CommandSpec::new("true"),
            &LineSink::none(),
            &Tracking::new().started(sink),
        )
        .await;
    assert!(
        got.lock().unwrap().is_empty(),
        "conformance/{check}: handles reported: {:?}",
        got.lock().unwrap()
    );
    let handle = CommandHandle::Pod {
        namespace: "conformance".into(),
        name: "none".into(),
    };
    assert!(
        matches!(runner.probe(node, &handle).await, Ok(Liveness::Unknown(_))),
        "conformance/{check}: probing should say it cannot tell"
    );
    assert!(
        matches!(
            runner.stop(node, &handle).await,
            Err(RunnerError::Unsupported { .. })
        ),
        "conformance/{check}: stopping should be refused"
    );
}
