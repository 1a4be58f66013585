//! Conformance suites for the ports: the behaviour every backend must show, as code.
//!
//! **Not semver-stable.** The suites grow as the ports' contracts are pinned down; a new
//! check may fail a backend that passed before, which is the point. Enable the
//! `conformance` feature in your backend's `[dev-dependencies]` only.
//!
//! Every backend, fake and wrapper runs the suite from its own tests, in the manner of
//! object_store's integration tests. The suites are plain `async fn`s that take the backend as
//! a trait object: they start no runtime and touch the node only through the port itself, so
//! kupgrade-core stays free of I/O and the backend's test drives them from its own runtime:
//!
//! ```ignore
//! #[tokio::test]
//! async fn local_runner_conforms() {
//!     let scratch = tempfile::tempdir().unwrap();
//!     let caps = Capabilities::new(scratch.path().to_str().unwrap());
//!     command_runner::run_all(&LocalRunner::new(), &"node-1".parse().unwrap(), &caps).await;
//! }
//! ```
//!
//! Differences between backends are arguments to a suite (a capabilities value), never
//! skipped checks: a backend that cannot do something must refuse it in a way the suite
//! verifies. Failures panic with `conformance/<check>: …`.
//!
//! - [`command_runner`]: [`CommandRunner`](crate::ports::CommandRunner) backends; its
//!   [`tracking`] checks (handles, probes, stops, node-side locks) run with it.
//! - [`lease`]: [`LeaseStore`](crate::ports::LeaseStore) backends (the run lease's
//!   compare-and-swap and its rules).
//! - [`join_all`]: runs futures concurrently without a runtime (used by the suites, and
//!   handy in their callers).

pub mod cluster_ops;
pub mod command_runner;
pub mod lease;
mod on_node;
pub mod tracking;

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// A boxed future, as the suites pass them around.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Polls every future until all are done and returns their outputs in order. Runtime-free:
/// it only combines futures, like `futures::future::join_all`.
pub async fn join_all<'a, T: Send + 'a>(futures: Vec<BoxFuture<'a, T>>) -> Vec<T> {
    let mut pending: Vec<Option<BoxFuture<'a, T>>> = futures.into_iter().map(Some).collect();
    let mut done: Vec<Option<T>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut all = true;
        for (slot, out) in pending.iter_mut().zip(done.iter_mut()) {
            if let Some(fut) = slot {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => all = false,
                }
            }
        }
        if all {
            Poll::Ready(
                done.iter_mut()
                    .map(|o| o.take().expect("polled once"))
                    .collect(),
            )
        } else {
            Poll::Pending
        }
    })
    .await
}
