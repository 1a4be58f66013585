//! A chatty node command cannot exhaust the operator's machine: 10^7 output lines go through
//! the driver to a watcher that does not keep up, and the process's peak resident memory
//! stays under 100 MB. A test binary of its own, so that its peak is this test's alone.
#![cfg(target_os = "linux")]

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use kupgrade_core::NodeName;
use kupgrade_core::ports::{
    CommandOutput, CommandRunner, CommandSpec, LineSink, RunnerError, Stream, Tracking,
};
use kupgrade_core::run::{Event, Run, RunOptions};
use kupgrade_core::skew::UpstreamPolicy;
use kupgrade_exec::driver::Driver;
use kupgrade_exec::events::{DEFAULT_OUTPUT_LINES, event_channel};
use kupgrade_exec::sim::SimCluster;
use support::fixtures::two_nodes_plan;

const LINES: u64 = 10_000_000;

/// The simulated cluster, whose first command also prints [`LINES`] short lines (an
/// `apt-get update` with a very long mirror list).
struct Chatty {
    sim: Arc<SimCluster>,
    spoken: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl CommandRunner for Chatty {
    async fn run_tracked(
        &self,
        node: &NodeName,
        spec: &CommandSpec,
        lines: &LineSink,
        tracking: &Tracking,
    ) -> Result<CommandOutput, RunnerError> {
        if !self.spoken.swap(true, std::sync::atomic::Ordering::Relaxed) {
            let mut line = String::new();
            for n in 0..LINES {
                use std::fmt::Write as _;
                line.clear();
                let _ = write!(line, "Get:{n} http://deb.example/ stable InRelease [1 kB]");
                lines.line(Stream::Stdout, &line);
            }
        }
        // The cluster's own output is left out, so that every line counted is one of these;
        // the tracking is the cluster's (it refuses a lock).
        self.sim
            .run_tracked(node, spec, &LineSink::none(), tracking)
            .await
    }
}

/// The process's peak resident set, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kib * 1024
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn ten_million_output_lines_stay_under_100_mb() {
    let (cluster, plan) = two_nodes_plan();
    let sim = Arc::new(SimCluster::new(cluster));
    let runner = Arc::new(Chatty {
        sim: sim.clone(),
        spoken: false.into(),
    });
    let mut run = Run::new(plan, Arc::new(UpstreamPolicy::new()), RunOptions::default()).unwrap();
    let (tx, mut rx) = event_channel(DEFAULT_OUTPUT_LINES);
    let mut journal = Vec::new();
    // The watcher reads nothing until the run is over: the slowest display there is.
    let finished = Driver::new(runner, sim.clone())
        .events(tx)
        .drive(&mut run, &mut journal)
        .await
        .unwrap();
    assert!(finished.is_completed(), "{finished:?}");

    let (mut shown, mut dropped) = (0u64, 0u64);
    let (mut started, mut ended, mut plan_finished) = (0usize, 0usize, false);
    while let Some(e) = rx.recv().await {
        match e {
            Event::CommandOutput { .. } => shown += 1,
            Event::OutputDropped { lines, .. } => dropped += lines,
            Event::StepStarted { .. } => started += 1,
            Event::StepFinished { .. } => ended += 1,
            Event::PlanFinished { .. } => plan_finished = true,
            _ => {}
        }
    }
    let peak = peak_rss();
    assert!(peak < 100 << 20, "peak resident memory {} MiB", peak >> 20);
    eprintln!("peak resident memory: {} MiB", peak >> 20);
    assert_eq!(shown + dropped, LINES, "every line shown or counted");
    assert!(shown <= DEFAULT_OUTPUT_LINES as u64, "{shown} lines held");
    // Step and plan events are never dropped.
    assert!(
        started > 0 && started == ended && plan_finished,
        "{started} {ended}"
    );
}
