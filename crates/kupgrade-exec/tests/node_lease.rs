//! The run lease without a Kubernetes API, through the local executor's sandbox: a file on the
//! first control-plane node. A second run is refused naming the holder; an expired lease goes
//! only to a resume of the same plan, or by force; a renewed one stays held; release frees it.
mod support;

use std::sync::Arc;
use std::time::Duration;

use kupgrade_core::NodeName;
use kupgrade_core::ports::CommandRunner;
use kupgrade_exec::{Claim, LocalRunner, NodeEnv, NodeLease, NodeLeaseError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_holds_the_cluster_through_a_node() {
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("cp-1/bin");
    std::fs::create_dir_all(&bin).unwrap();
    support::write_stub_sudo(&bin);
    kupgrade_exec::node_env::provide_programs(&bin, kupgrade_exec::node_env::SANDBOX_PROGRAMS)
        .unwrap();
    let r = root.path().to_path_buf();
    let runner: Arc<dyn CommandRunner> = Arc::new(
        LocalRunner::new()
            .allow_sudo()
            .with_node_env(move |n| NodeEnv::sandbox(&r, n)),
    );
    let node: NodeName = "cp-1".parse().unwrap();
    let dir = root.path().join("cp-1/run/kupgrade");
    let claim = |holder: &str, fp: &str| {
        Claim::new(holder, fp)
            .duration(Duration::from_secs(2))
            .dir(dir.to_str().unwrap())
    };
    let take = |c: Claim| NodeLease::acquire(runner.clone(), node.clone(), c);

    let a = take(claim("run A (pid 1 on ops-1, journal /j/a)", "fp-1"))
        .await
        .unwrap();
    let file = std::fs::read_to_string(dir.join("cluster.lease")).unwrap();
    assert!(
        file.starts_with("run A (pid 1 on ops-1, journal /j/a)\nfp-1\n"),
        "{file}"
    );
    // Held, and renewed past its 2 s: refused naming the holder, whatever the plan.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for b in [
        claim("run B", "fp-2"),
        claim("run B", "fp-1").resuming(true),
    ] {
        match take(b).await {
            Err(e @ NodeLeaseError::Held { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("run A (pid 1 on ops-1, journal /j/a)"),
                    "{text}"
                );
                assert!(text.contains("plan fp-1"), "{text}");
            }
            other => panic!("expected Held, got {other:?}"),
        }
    }
    // A stops renewing: expired, it goes to a resume of the same plan only.
    drop(a);
    tokio::time::sleep(Duration::from_secs(4)).await;
    match take(claim("run B", "fp-2")).await {
        Err(e @ NodeLeaseError::Stale { .. }) => {
            let text = e.to_string();
            assert!(text.contains("run A (pid 1"), "{text}");
            assert!(text.contains("--force-lease"), "{text}");
        }
        other => panic!("expected Stale, got {other:?}"),
    }
    match take(claim("run C", "fp-1")).await {
        Err(e @ NodeLeaseError::Stale { .. }) => {
            assert!(e.to_string().contains("instead of resuming"), "{e}")
        }
        other => panic!("expected Stale for a fresh start, got {other:?}"),
    }
    let c = take(claim("run C", "fp-1").resuming(true)).await.unwrap();
    c.release().await.unwrap();
    assert!(!dir.join("cluster.lease").exists(), "not released");
    let d = take(claim("run D", "fp-3")).await.unwrap();
    drop(d);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let e = take(claim("run E", "fp-4").force(true, "--force-lease"))
        .await
        .unwrap();
    e.release().await.unwrap();
}
