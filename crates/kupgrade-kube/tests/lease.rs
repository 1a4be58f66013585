//! The run's cluster-wide Lease against the real test API server (`scripts/testenv.sh up`):
//! the lease conformance suite through two clients (two runs), which includes two runs taking
//! a free lease at once, exactly one winning, five rounds over; then what the Lease object
//! carries, and a renewed lease held past its first expiry.
//!
//! Without `KUPGRADE_TEST_KUBECONFIG` the tests print "skipped" and pass, unless
//! `KUPGRADE_REQUIRE_REAL_SERVERS=1`, when they fail.
mod support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kupgrade_core::conformance;
use kupgrade_core::ports::{LeaseClaim, LeaseError, LeaseHolder, LeaseStoreExt, Taking};
use kupgrade_kube::KubeLease;
use kupgrade_kube::lease::FINGERPRINT_ANNOTATION;

/// A second client of the test server, as another run on another machine has.
async fn another_client(env: &support::Env) -> kube::Client {
    let config = kupgrade_kube::kubeconfig_config(&env.kubeconfig, None)
        .await
        .unwrap();
    kupgrade_kube::client(config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_conforms_and_of_two_runs_one_wins() {
    let Some((env, scope)) = support::scope("leaseconf").await else {
        return;
    };
    let a = KubeLease::named(scope.client.clone(), &scope.ns, "kupgrade");
    let b = KubeLease::named(another_client(&env).await, &scope.ns, "kupgrade");
    conformance::lease::run_all(&a, &b).await;
    scope.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lease_is_renewed_and_carries_its_holder() {
    let Some((_, scope)) = support::scope("lease").await else {
        return;
    };
    let store = KubeLease::named(scope.client.clone(), &scope.ns, "kupgrade");
    let holder = LeaseHolder::new("20261207T040000.000Z-0123abcd", "ops-1", 42);
    let claim =
        LeaseClaim::new(holder.clone(), "fnv1a64:0123abcd").duration(Duration::from_secs(3));
    let taking = store.acquire(&claim, jiff::Timestamp::now()).await.unwrap();
    assert_eq!(taking, Taking::Free);
    let leases: Api<Lease> = Api::namespaced(scope.client.clone(), &scope.ns);
    let l = leases.get("kupgrade").await.unwrap();
    let spec = l.spec.as_ref().unwrap();
    assert_eq!(
        spec.holder_identity.as_deref(),
        Some("20261207T040000.000Z-0123abcd (pid 42 on ops-1)")
    );
    assert_eq!(spec.lease_duration_seconds, Some(3));
    assert_eq!(
        l.metadata.annotations.as_ref().unwrap()[FINGERPRINT_ANNOTATION],
        "fnv1a64:0123abcd"
    );
    // Past its first expiry, renewed: another run is refused, naming it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    store.renew(&claim, jiff::Timestamp::now()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let other = LeaseClaim::new(LeaseHolder::new("run-b", "ops-2", 7), "fp-b");
    match store.acquire(&other, jiff::Timestamp::now()).await {
        Err(e @ LeaseError::Held { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("held by run 20261207T040000.000Z-0123abcd (pid 42 on ops-1) since "),
                "{text}"
            );
            assert!(
                text.contains("--force-lease=20261207T040000.000Z-0123abcd"),
                "{text}"
            );
        }
        other => panic!("expected Held, got {other:?}"),
    }
    store.release(&claim).await.unwrap();
    assert!(
        leases.get_opt("kupgrade").await.unwrap().is_none(),
        "not released"
    );
    scope.cleanup().await;
}
