//! The run's cluster-wide Lease against the real test API server (`scripts/testenv.sh up`):
//! a second run is refused and told the holder; an expired lease goes only to the same plan's
//! run going on from its journal, or with the force option; releasing frees it; a renewed
//! lease stays held past its duration.
//!
//! Without `KUPGRADE_TEST_KUBECONFIG` the test prints "skipped" and passes, unless
//! `KUPGRADE_REQUIRE_REAL_SERVERS=1`, when it fails.
mod support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kupgrade_kube::lease::FINGERPRINT_ANNOTATION;
use kupgrade_kube::{Acquire, LeaseError, RunLease};
use support::Scope;

#[tokio::test]
async fn one_run_holds_the_cluster() {
    let Some(env) = support::env().await else {
        return;
    };
    let scope = Scope::with_kubelet(&env, "lease", false).await;
    let client = scope.client.clone();
    let how = |holder: &str, fp: &str| {
        Acquire::new(holder, fp)
            .lease(&scope.ns, "kupgrade")
            .duration(Duration::from_secs(3))
    };
    let a = RunLease::acquire(
        client.clone(),
        how("run A (pid 1 on ops-1, journal /j/a)", "fp-1"),
    )
    .await
    .unwrap();
    let leases: Api<Lease> = Api::namespaced(client.clone(), &scope.ns);
    let l = leases.get("kupgrade").await.unwrap();
    assert_eq!(
        l.spec.as_ref().unwrap().holder_identity.as_deref(),
        Some("run A (pid 1 on ops-1, journal /j/a)")
    );
    assert_eq!(
        l.metadata.annotations.as_ref().unwrap()[FINGERPRINT_ANNOTATION],
        "fp-1"
    );

    // A second run, whatever its plan or journal, is refused and told who holds the cluster,
    // also after the lease's duration, since A renews it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for b in [how("run B", "fp-2"), how("run B", "fp-1").resuming(true)] {
        match RunLease::acquire(client.clone(), b).await {
            Err(e @ LeaseError::Held { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("run A (pid 1 on ops-1, journal /j/a)"),
                    "{text}"
                );
                assert!(text.contains("fp-1"), "{text}");
            }
            other => panic!("expected Held, got {other:?}"),
        }
    }

    // A stops renewing (killed): once expired, only a resume of the same plan takes it over.
    drop(a);
    tokio::time::sleep(Duration::from_secs(4)).await;
    match RunLease::acquire(client.clone(), how("run B", "fp-2")).await {
        Err(e @ LeaseError::Stale { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("run A (pid 1 on ops-1, journal /j/a)"),
                "{text}"
            );
            assert!(text.contains("--force-lease"), "{text}");
            assert!(text.contains("runs another plan (fp-2)"), "{text}");
        }
        other => panic!("expected Stale, got {other:?}"),
    }
    match RunLease::acquire(client.clone(), how("run C", "fp-1")).await {
        Err(e @ LeaseError::Stale { .. }) => {
            assert!(e.to_string().contains("instead of resuming"), "{e}")
        }
        other => panic!("expected Stale for a fresh start, got {other:?}"),
    }
    let c = RunLease::acquire(client.clone(), how("run C", "fp-1").resuming(true))
        .await
        .unwrap();
    let l = leases.get("kupgrade").await.unwrap();
    assert_eq!(
        l.spec.as_ref().unwrap().holder_identity.as_deref(),
        Some("run C")
    );
    assert_eq!(l.spec.as_ref().unwrap().lease_transitions, Some(1));
    c.release().await.unwrap();
    assert!(
        leases.get_opt("kupgrade").await.unwrap().is_none(),
        "not released"
    );

    // Free again: anyone takes it; an expired one of another plan only by force.
    let d = RunLease::acquire(client.clone(), how("run D", "fp-3"))
        .await
        .unwrap();
    drop(d);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let e = RunLease::acquire(
        client.clone(),
        how("run E", "fp-4").force(true, "--force-lease"),
    )
    .await
    .unwrap();
    e.release().await.unwrap();
    scope.cleanup().await;
}
