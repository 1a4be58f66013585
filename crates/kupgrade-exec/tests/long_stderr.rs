//! A command that prints one huge line on stderr and fails: the journal keeps a bounded tail
//! of it once, with a marker saying how much was cut, and what is printed stays short.
use std::sync::Arc;

use kupgrade_core::capture::STDERR_TAIL_MAX;
use kupgrade_core::plan::PlanRequest;
use kupgrade_core::run::{Event, Run, RunOptions};
use kupgrade_core::skew::UpstreamPolicy;
use kupgrade_exec::driver::Driver;
use kupgrade_exec::events::event_channel;
use kupgrade_exec::sim::{Fault, FaultKind, SimCluster};

#[tokio::test(start_paused = true)]
async fn a_one_mib_stderr_line_is_kept_once_bounded_and_printed_short() {
    let text = r#"
addons: { kube-proxy: v1.29.10, coredns: v1.11.1 }
nodes:
  - name: cp-1
    roles: [control-plane]
    versions: { kubelet: v1.29.10, kubeadm: v1.29.10, kubectl: v1.29.10,
                kube-apiserver: v1.29.10, kube-controller-manager: v1.29.10,
                kube-scheduler: v1.29.10, etcd: 3.5.10-0 }
"#;
    let cluster = kupgrade_core::inventory::parse(text, "cluster.yaml").unwrap();
    let plan = PlanRequest::new("1.30".parse().unwrap(), jiff::civil::date(2025, 3, 1))
        .plan(&cluster)
        .unwrap();
    let sim = Arc::new(SimCluster::new(cluster));
    // One line of 1 MiB (less its ending), without a newline.
    let stderr = "E".repeat((1 << 20) - 16) + " and the end";
    sim.inject(Fault::new(FaultKind::fail(1, stderr)).matching("kubeadm upgrade apply"));
    let mut run = Run::new(
        Arc::new(plan),
        Arc::new(UpstreamPolicy::new()),
        RunOptions::default(),
    )
    .unwrap();
    let (tx, mut rx) = event_channel(1 << 16);
    let mut journal = Vec::new();
    let finished = Driver::new(sim.clone(), sim.clone())
        .events(tx)
        .drive(&mut run, &mut journal)
        .await
        .unwrap();
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
    while let Some(e) = rx.try_recv() {
        if let Event::StepRetrying { error, .. } = e {
            assert!(error.len() < 1024, "a retry line of {} bytes", error.len());
        }
    }
}
