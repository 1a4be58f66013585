//! The run lease's stores in this crate: the simulator's (memory) and the node's (a file on
//! the first control-plane node, here through the local executor's sandbox), each through the
//! lease conformance suite; the node's file as an operator finds it, under a directory whose
//! name a shell would run; and a lease held in the background: renewed past its duration,
//! and a run told when another run broke it, or when it went unrenewed for as long as it
//! lasts (its store unreachable).
mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kupgrade_core::NodeName;
use kupgrade_core::conformance;
use kupgrade_core::ports::{
    CommandRunner, Force, LeaseClaim, LeaseError, LeaseHolder, LeaseStore, LeaseStoreExt, Taking,
};
use kupgrade_exec::sim::SimLease;
use kupgrade_exec::{HeldLease, LocalRunner, NodeEnv, NodeLease};

/// A sandboxed `cp-1` under `root` with what the lease command needs, and its lease in `dir`.
fn node_lease(root: &Path, dir: &Path) -> NodeLease {
    let bin = root.join("cp-1/bin");
    std::fs::create_dir_all(&bin).unwrap();
    support::write_stub_sudo(&bin);
    kupgrade_exec::node_env::provide_programs(&bin, kupgrade_exec::node_env::SANDBOX_PROGRAMS)
        .unwrap();
    let r = root.to_path_buf();
    let runner: Arc<dyn CommandRunner> = Arc::new(
        LocalRunner::new()
            .allow_sudo()
            .with_node_env(move |n| NodeEnv::sandbox(&r, n)),
    );
    let node: NodeName = "cp-1".parse().unwrap();
    NodeLease::new(runner, node).dir(dir.to_str().unwrap())
}

#[tokio::test]
async fn the_simulated_lease_conforms() {
    let a = SimLease::new();
    conformance::lease::run_all(&a, &a.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_lease_conforms_and_its_file_reads_plainly() {
    let root = tempfile::tempdir().unwrap();
    // A directory name that runs a command if it ever reaches a shell unquoted.
    let dir = root
        .path()
        .join("cp-1/var/lib/kupgrade $(touch pwned) `touch pwned2`; x");
    let a = node_lease(root.path(), &dir);
    let b = a.clone();
    conformance::lease::run_all(&a, &b).await;
    assert!(!root.path().join("pwned").exists() && !Path::new("pwned").exists());
    assert!(!Path::new("pwned2").exists());

    let holder = LeaseHolder::new("20261207T040000.000Z-0123abcd", "ops-1", 42);
    let claim = LeaseClaim::new(holder, "fnv1a64:0123abcd");
    let now: jiff::Timestamp = "2026-12-07T04:00:00Z".parse().unwrap();
    assert_eq!(a.acquire(&claim, now).await.unwrap(), Taking::Free);
    let file = std::fs::read_to_string(dir.join("cluster.lease")).unwrap();
    let mut lines = file.lines();
    let generation: u64 = lines.next().unwrap().parse().unwrap();
    assert!(
        generation > 10,
        "the conformance suite wrote it often: {generation}"
    );
    assert_eq!(
        lines.collect::<Vec<_>>(),
        [
            "20261207T040000.000Z-0123abcd (pid 42 on ops-1)",
            "fnv1a64:0123abcd",
            "2026-12-07T04:00:00Z",
            "2026-12-07T04:00:00Z",
            "60",
        ]
    );
    assert!(
        a.place().ends_with("; x/cluster.lease") && a.place().starts_with("cp-1:/"),
        "{}",
        a.place()
    );
    a.release(&claim).await.unwrap();
    // Released: an empty holder, the generation counting on.
    let file = std::fs::read_to_string(dir.join("cluster.lease")).unwrap();
    assert_eq!(file, format!("{}\n\n\n\n\n\n", generation + 1));
    assert!(a.read().await.unwrap().record.is_none());
    // A holder that would add a line to the file is refused before anything runs.
    let mut odd = claim.record(None, now);
    odd.holder = "run\nfnv1a64:forged".into();
    let version = a.read().await.unwrap().version;
    match a.swap(version.as_deref(), Some(&odd)).await {
        Err(e @ LeaseError::Store { .. }) => {
            assert!(e.to_string().contains("one non-empty line"), "{e}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lease_is_renewed_and_its_holder_told_when_it_is_broken() {
    let store = Arc::new(SimLease::new());
    let claim = LeaseClaim::new(LeaseHolder::new("run-a", "ops-1", 1), "fp-a")
        .duration(Duration::from_secs(3));
    let lost = Arc::new(AtomicUsize::new(0));
    let l = lost.clone();
    let held = HeldLease::acquire(store.clone(), claim, move |e| {
        assert!(
            e.to_string()
                .contains("run run-b (pid 2 on ops-2) holds it"),
            "{e}"
        );
        l.fetch_add(1, Ordering::SeqCst);
    })
    .await
    .unwrap();
    assert_eq!(held.taking(), &Taking::Free);
    // Past its duration: renewed, so another run is refused.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let b = LeaseClaim::new(LeaseHolder::new("run-b", "ops-2", 2), "fp-b");
    assert!(matches!(
        store.acquire(&b, jiff::Timestamp::now()).await,
        Err(LeaseError::Held { .. })
    ));
    // The operator breaks it by naming the run: the holder is told at its next renewal.
    let b = b.force(Force::Run("run-a".into()), "--force-lease");
    assert!(matches!(
        store.acquire(&b, jiff::Timestamp::now()).await,
        Ok(Taking::Broken { .. })
    ));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(lost.load(Ordering::SeqCst), 1);
    // Its release leaves the new holder alone.
    held.release().await.unwrap();
    let now = store.read().await.unwrap().record.unwrap();
    assert_eq!(now.holder, "run-b (pid 2 on ops-2)");
}

/// A store that stops answering when told to, as an API server or a node can.
#[derive(Debug, Default)]
struct Unreachable {
    inner: SimLease,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl LeaseStore for Unreachable {
    fn place(&self) -> String {
        self.inner.place()
    }
    async fn read(&self) -> Result<kupgrade_core::ports::Stored, LeaseError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(LeaseError::Store {
                place: self.place(),
                message: "connection refused".into(),
                source: None,
            });
        }
        self.inner.read().await
    }
    async fn swap(
        &self,
        version: Option<&str>,
        record: Option<&kupgrade_core::ports::LeaseRecord>,
    ) -> Result<(), LeaseError> {
        self.inner.swap(version, record).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_cannot_be_renewed_for_its_duration_counts_as_lost() {
    let store = Arc::new(Unreachable::default());
    let claim = LeaseClaim::new(LeaseHolder::new("run-a", "ops-1", 1), "fp-a")
        .duration(Duration::from_secs(3));
    let told = Arc::new(std::sync::Mutex::new(Vec::new()));
    let t = told.clone();
    let held = HeldLease::acquire(store.clone(), claim, move |e| {
        t.lock().unwrap().push(e.to_string())
    })
    .await
    .unwrap();
    store.down.store(true, Ordering::SeqCst);
    // Renewals fail at 1 s and 2 s (only warned), and at 3 s the lease may have expired.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        told.lock().unwrap().is_empty(),
        "{:?}",
        told.lock().unwrap()
    );
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let told = told.lock().unwrap().clone();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].contains("not renewed for 3 s, as long as it lasts: another run may hold it now")
            && told[0].contains("connection refused"),
        "{}",
        told[0]
    );
    drop(held);
}
