//! The port gates read the cluster through: an object as the API returns it, and the pods
//! and budgets a regression gate watches. How each is judged is the core's
//! ([`crate::gate`]); a backend only reads.
use async_trait::async_trait;
use std::sync::Arc;

use crate::gate::{ObjectRef, RegressionCheck, WorkloadSnapshot};

use super::OpsError;

/// Reads what gates judge. The kube backend is `kupgrade_kube::KubeGateProbe` (any kind,
/// custom resources included, through the dynamic API); the simulated cluster implements it
/// too.
#[async_trait]
pub trait GateProbe: Send + Sync {
    /// The object as the API returns it (JSON), or `None` when it does not exist.
    async fn object(&self, object: &ObjectRef) -> Result<Option<serde_json::Value>, OpsError>;
    /// The pods and disruption budgets `selector` picks, now.
    async fn workloads(&self, selector: &RegressionCheck) -> Result<WorkloadSnapshot, OpsError>;
}

forward_port!(GateProbe for [Arc] {
    async fn object(&self, object: &ObjectRef) -> Result<Option<serde_json::Value>, OpsError>;
    async fn workloads(&self, selector: &RegressionCheck) -> Result<WorkloadSnapshot, OpsError>;
});
