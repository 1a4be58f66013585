//! The simulated cluster as readiness evidence: its pods and PodDisruptionBudgets, each
//! budget's status computed as the disruption controller would, so that `apply` on the
//! simulator can gate a run on the drains its budgets would stop. Only workloads are
//! gathered: everything else stays "not gathered", and the checks that need it say so.
use kupgrade_core::readiness::{self, Evidence, Gathered, Owner, PodVolume, Workloads};

use super::SimCluster;
use super::model::{Budget, Pod, PodKind};

impl SimCluster {
    /// Readiness evidence of the simulated cluster now: its workloads (pods, budgets and
    /// their status), nothing else.
    pub fn evidence(&self) -> Evidence {
        let inner = self.lock();
        let now = inner.now_ms();
        let state = &inner.state;
        let budgets = state
            .budgets
            .iter()
            .map(|b| {
                let healthy = state
                    .pods
                    .iter()
                    .filter(|p| b.covers(p) && p.ready(now))
                    .count() as u32;
                budget(b, healthy)
            })
            .collect();
        let pods = state
            .pods
            .iter()
            .map(|p| pod(p, &state.budgets, now))
            .collect();
        let mut evidence = Evidence::default();
        evidence.workloads = Gathered::Found(Workloads { budgets, pods });
        evidence
    }
}

/// `b`'s status with `healthy` Ready pods, as the disruption controller writes it.
fn budget(b: &Budget, healthy: u32) -> readiness::Budget {
    let (desired, spec) = match (b.min_available, b.max_unavailable) {
        (Some(min), _) => (min, Some(format!("minAvailable: {min}"))),
        (None, Some(max)) => (
            b.expected.saturating_sub(max),
            Some(format!("maxUnavailable: {max}")),
        ),
        (None, None) => (0, None),
    };
    readiness::Budget {
        namespace: b.namespace.clone(),
        name: b.name.clone(),
        disruptions_allowed: u32::try_from(b.allowed(healthy).max(0)).unwrap_or(u32::MAX),
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: b.expected,
        unhealthy_pod_eviction_policy: None,
        spec,
    }
}

/// `p` as a drain sees it, with the names of the budgets covering it.
fn pod(p: &Pod, budgets: &[Budget], now: u64) -> readiness::Pod {
    let owner = |kind: &str| {
        Some(Owner {
            kind: kind.into(),
            name: p
                .labels
                .get("app")
                .cloned()
                .unwrap_or_else(|| p.name.clone()),
            replicas: None,
        })
    };
    readiness::Pod {
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        node: p.node.clone(),
        owner: match p.kind {
            PodKind::Replicated => owner("ReplicaSet"),
            PodKind::DaemonSet => owner("DaemonSet"),
            PodKind::Mirror => owner("Node"),
            PodKind::Unreplicated => None,
        },
        healthy: p.ready(now),
        budgets: budgets
            .iter()
            .filter(|b| b.covers(p))
            .map(|b| b.name.clone())
            .collect(),
        volumes: if p.empty_dir {
            vec![PodVolume::EmptyDir {
                name: "data".into(),
            }]
        } else {
            vec![]
        },
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;
    use kupgrade_core::plan::{BatchSize, PlanError, PlanOptions, PlanRequest, Target};
    use kupgrade_core::readiness::{Catalogue, DrainModel};

    use crate::sim::{App, SimCluster, Workload};

    fn cluster(workers: usize) -> kupgrade_core::ClusterState {
        let v = "v1.29.10";
        let mut text = format!(
            "nodes:\n  - name: cp-1\n    roles: [control-plane]\n    versions: {{ kubelet: {v}, kubeadm: {v}, kube-apiserver: {v}, kube-controller-manager: {v}, kube-scheduler: {v}, etcd: 3.5.10-0 }}\n"
        );
        for i in 1..=workers {
            text.push_str(&format!(
                "  - name: w-{i}\n    versions: {{ kubelet: {v}, kubeadm: {v} }}\n"
            ));
        }
        kupgrade_core::inventory::parse(&text, "cluster.yaml").unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn the_sample_workload_is_evidence_with_budget_status() {
        let sim = SimCluster::new(cluster(3)).with_workload(&Workload::sample());
        tokio::time::advance(std::time::Duration::from_secs(3600)).await;
        let evidence = sim.evidence();
        let w = evidence.workloads.found().expect("workloads gathered");
        let web = w.budgets.iter().find(|b| b.name == "web").unwrap();
        assert_eq!(web.spec.as_deref(), Some("maxUnavailable: 1"));
        assert_eq!((web.expected_pods, web.desired_healthy), (6, 5));
        assert_eq!(web.disruptions_allowed, 1, "{web:?}");
        assert!(w.pods.iter().any(|p| p.budgets == ["web"] && p.healthy));
        // Nothing else was gathered: the checks that need it are not checkable, not passed.
        assert!(evidence.api_writers.found().is_none());
        let _ = DrainModel::new(w, &Default::default());
    }

    #[tokio::test(start_paused = true)]
    async fn a_budget_that_never_allows_blocks_planning_and_the_catalogue() {
        let workload = Workload::new().app(App::new("ledger", 3).max_unavailable(0));
        let sim = SimCluster::new(cluster(3)).with_workload(&workload);
        tokio::time::advance(std::time::Duration::from_secs(3600)).await;
        let evidence = sim.evidence();
        let w = evidence.workloads.found().unwrap();
        let request = || {
            PlanRequest::new(Target::Minor("1.30".parse().unwrap()), date(2025, 3, 1)).options(
                PlanOptions {
                    batch: BatchSize::Auto,
                    ..PlanOptions::default()
                },
            )
        };
        let e = request().workloads(w).plan(&cluster(3)).unwrap_err();
        assert!(
            matches!(&e, PlanError::DrainDeadlock { budget, .. } if budget.ends_with("/ledger")),
            "{e}"
        );
        let plan = PlanRequest::new(Target::Minor("1.30".parse().unwrap()), date(2025, 3, 1))
            .plan(&cluster(3))
            .unwrap();
        let report = Catalogue::embedded().evaluate(&plan, &evidence);
        assert!(report.has_errors(), "{report:?}");
        assert!(report.errors().any(|f| f.check.starts_with("drain/")));
    }
}
