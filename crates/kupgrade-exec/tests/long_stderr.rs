//! A command that prints one huge line on stderr and fails: the journal keeps a bounded tail
//! of it once, with a marker saying how much was cut, and what is printed stays short.
mod support;

use std::sync::Arc;

use kupgrade_core::capture::STDERR_TAIL_MAX;
use kupgrade_core::run::Event;
use kupgrade_exec::driver::Driver;
use kupgrade_exec::sim::{Fault, FaultKind, SimCluster};
use support::fixtures::{Outcome, drive_to_end, two_nodes_plan};

#[tokio::test(start_paused = true)]
async fn a_one_mib_stderr_line_is_kept_once_bounded_and_printed_short() {
    let (cluster, plan) = two_nodes_plan();
    let sim = Arc::new(SimCluster::new(cluster));
    // One line of 1 MiB (less its ending), without a newline.
    let stderr = "E".repeat((1 << 20) - 16) + " and the end";
    sim.inject(Fault::new(FaultKind::fail(1, stderr)).matching("kubeadm upgrade apply"));
    let mut journal = Vec::new();
    let Outcome { finished, events } =
        drive_to_end(Driver::new(sim.clone(), sim.clone()), &plan, &mut journal).await;
    assert!(!finished.is_completed(), "the failing step halts the run");

    let mut kept = 0;
    for record in &journal {
        let line = serde_json::to_string(record).unwrap();
        // Each record holds the tail at most once, and is small.
        let marks = line.matches("bytes cut]").count();
        assert!(marks <= 1, "{marks} tails in one record");
        assert!(
            line.len() < 2 * STDERR_TAIL_MAX,
            "a record of {} bytes",
            line.len()
        );
        if marks == 1 {
            assert!(
                line.contains("and the end"),
                "the tail is the end of stderr"
            );
            kept += 1;
        }
    }
    assert!(kept >= 1, "the failure keeps the tail of its stderr");
    // What is printed (the outcome, the retry lines) is short.
    let printed = finished.to_string();
    assert!(
        printed.len() < 1024,
        "the outcome prints {} bytes",
        printed.len()
    );
    assert!(printed.contains("and the end"), "{printed}");
    for e in events {
        if let Event::StepRetrying { error, .. } = e {
            assert!(error.len() < 1024, "a retry line of {} bytes", error.len());
        }
    }
}
