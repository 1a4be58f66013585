//! The planner's rules, one test each: kubeadm's order, add-ons, targets, strategies,
//! batching, stricter policies and the errors that name what blocks.
use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::{Date, date};
use kupgrade_core::kubeadm::{UpgradeRequest, enforce_version_policies};
use kupgrade_core::plan::{
    Action, AddonsAt, BatchSize, HopKind, Phase, PlanError, PlanOptions, PlanRequest, Simulation,
    Strategy, Target, TargetError, UpgradePlan, WorkerPacing,
};
use kupgrade_core::ports::{Program, shell_quote};
use kupgrade_core::skew::rules::RulePolicy;
use kupgrade_core::skew::{SkewPolicy, UpstreamPolicy};
use kupgrade_core::{ClusterState, EtcdTopology, KubeVersion, inventory};

const HA: &str = include_str!("../../../examples/clusters/ha.yaml");
const SINGLE: &str = include_str!("../../../examples/clusters/single-node.yaml");
const OLD: &str = include_str!("../../../examples/clusters/old-1.24.yaml");
const MID: &str = include_str!("../../../examples/clusters/mid-upgrade-docs-order.yaml");
const JUNE_2024: Date = date(2024, 6, 1);
const JUNE_2025: Date = date(2025, 6, 1);

fn cluster(text: &str) -> ClusterState {
    inventory::parse(text, "cluster.yaml").unwrap()
}

fn plan_with(
    state: &ClusterState,
    target: &str,
    day: Date,
    options: PlanOptions,
) -> Result<UpgradePlan, PlanError> {
    PlanRequest::new(target.parse().unwrap(), day)
        .options(options)
        .plan(state)
}

fn plan(state: &ClusterState, target: &str, day: Date) -> UpgradePlan {
    plan_with(state, target, day, PlanOptions::default()).unwrap()
}

fn v(s: &str) -> KubeVersion {
    s.parse().unwrap()
}

/// Replays the plan with a full check after every step; returns the final state.
fn replay(state: &ClusterState, plan: &UpgradePlan, policy: &dyn SkewPolicy) -> ClusterState {
    let mut sim = Simulation::new(state.clone());
    for s in &plan.steps {
        sim.apply(s).unwrap();
        let errors = policy.errors(sim.state());
        assert!(errors.is_empty(), "after {}: {errors:?}", s.id);
    }
    sim.into_state()
}

fn drains(plan: &UpgradePlan) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for s in &plan.steps {
        if let Action::Drain { .. } = s.action {
            for n in &s.nodes {
                *out.entry(n.to_string()).or_default() += 1;
            }
        }
    }
    out
}

fn position(plan: &UpgradePlan, id: &str) -> usize {
    plan.steps
        .iter()
        .position(|s| s.id.as_str() == id)
        .unwrap_or_else(|| panic!("no step {id}"))
}

#[test]
fn kubeadm_order_on_an_ha_cluster() {
    let state = cluster(HA);
    // The steps as kubeadm orders them; pre-staging's downloads ahead are tested on their own
    // (the snapshots, `tests/prestage.rs` of kupgrade-exec).
    let options = PlanOptions {
        prestage: false,
        ..PlanOptions::default()
    };
    let p = plan_with(&state, "1.29", JUNE_2024, options).unwrap();
    assert_eq!(p.hops.len(), 1);
    assert_eq!(p.hops[0].to, v("v1.29.5"));
    assert_eq!(p.hops[0].addons_at, AddonsAt::LastControlPlaneNode);
    // One point of no return: `kubeadm upgrade apply` on the first control-plane node.
    let pnr: Vec<&str> = p
        .steps
        .iter()
        .filter(|s| s.point_of_no_return)
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(pnr, ["v1.29.5/cp-1/kubeadm-upgrade-apply"]);
    let apply = position(&p, "v1.29.5/cp-1/kubeadm-upgrade-apply");
    let cp2 = position(&p, "v1.29.5/cp-2/kubeadm-upgrade-node");
    let cp3 = position(&p, "v1.29.5/cp-3/kubeadm-upgrade-node");
    assert!(apply < cp2 && cp2 < cp3);
    // The snapshot and kubeadm's own plan come right before the apply.
    assert!(position(&p, "v1.29.5/cp-1/etcd-snapshot") < apply);
    assert!(position(&p, "v1.29.5/cp-1/kubeadm-upgrade-plan") < apply);
    // kube-proxy and CoreDNS move with the last control-plane node (kubeadm 1.28 and later).
    match &p.steps[cp3].action {
        Action::KubeadmUpgradeNode { addons, .. } => {
            assert_eq!(addons.kube_proxy, Some(v("v1.29.5")));
            assert_eq!(addons.coredns, Some(v("v1.11.1")));
        }
        other => panic!("{other:?}"),
    }
    // Control-plane kubelets only after every API server moved, then workers.
    let first_kubelet = p
        .steps
        .iter()
        .position(|s| matches!(&s.action, Action::InstallPackages { packages, .. } if packages.contains(&kupgrade_core::plan::Package::Kubelet)))
        .unwrap();
    assert!(first_kubelet > cp3);
    assert_eq!(p.steps[first_kubelet].phase, Phase::ControlPlaneKubelets);
    assert!(
        p.steps[first_kubelet].reason.contains("every API server"),
        "{}",
        p.steps[first_kubelet].reason
    );
    let first_worker = p
        .steps
        .iter()
        .position(|s| s.phase == Phase::Workers)
        .unwrap();
    let last_cp_kubelet = p
        .steps
        .iter()
        .rposition(|s| s.phase == Phase::ControlPlaneKubelets)
        .unwrap();
    assert!(last_cp_kubelet < first_worker);
    assert!(p.steps.iter().all(|s| !s.reason.is_empty()));
    assert_eq!(p.estimate.drains, 9);
    // A control-plane node beside a worker: the workers after the control-plane kubelets
    // wait only for what the kubelets wait for.
    assert_eq!(p.estimate.max_unavailable, 2);
    let first_cp_kubelet = p
        .steps
        .iter()
        .position(|s| s.phase == Phase::ControlPlaneKubelets)
        .unwrap();
    assert_eq!(
        p.steps[first_worker].depends_on,
        [p.steps[first_cp_kubelet - 1].id.clone()]
    );
    assert_eq!(p.estimate.max_drains_per_node, 1);
    replay(&state, &p, &UpstreamPolicy::new());
}

#[test]
fn rhel_nodes_get_dnf_and_debian_nodes_apt() {
    let state = cluster(HA);
    let p = plan(&state, "1.29", JUNE_2024);
    let install = p
        .steps
        .iter()
        .find(|s| s.id.as_str() == "v1.29.5/worker-3/install-kubeadm@v1.29.5")
        .unwrap();
    let lines: Vec<String> = p
        .commands_for(install, "worker-3")
        .iter()
        .map(|c| c.to_shell_line())
        .collect();
    assert_eq!(
        lines,
        [
            format!(
                "sudo -n sh -c {}",
                shell_quote(kupgrade_core::plan::packages::DNF_REMOVE_DUPLICATES)
            ),
            "sudo -n dnf install -y 'kubeadm-1.29.5-*' --disableexcludes=kubernetes".to_string()
        ]
    );
    let install = p
        .steps
        .iter()
        .find(|s| s.id.as_str() == "v1.29.5/worker-1/install-kubeadm@v1.29.5")
        .unwrap();
    assert_eq!(
        p.commands_for(install, "worker-1")[3].to_shell_line(),
        "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y 'kubeadm=1.29.5-*'"
    );
    // Only the kubeadm version check (which holds a parsed version) and dnf's fixed repair
    // script use a shell.
    for s in &p.steps {
        for c in s.commands.iter().flat_map(|c| &c.commands) {
            if let Program::Shell { script } = &c.program {
                assert!(
                    script.starts_with("test \"$(kubeadm version -o short)\" = v1.")
                        || script == kupgrade_core::plan::packages::DNF_REMOVE_DUPLICATES,
                    "{script}"
                );
            }
        }
    }
}

#[test]
fn kubeadm_before_1_28_moves_kube_proxy_too_early_for_ha() {
    let state = cluster(
        &HA.replace("v1.28.9", "v1.26.15")
            .replace("3.5.9-0", "3.5.6-0"),
    );
    let err = plan_with(&state, "1.27", JUNE_2024, PlanOptions::default()).unwrap_err();
    assert_eq!(err.rule(), Some("upstream/kube-proxy"));
    assert_eq!(err.node().map(|n| n.as_str()), Some("cp-1"));
    let text = err.to_string();
    assert!(
        text.starts_with("no valid plan: step v1.27.14/cp-1/kubeadm-upgrade-apply (kubeadm upgrade apply v1.27.14 on cp-1) would break rule upstream/kube-proxy: the kube-proxy DaemonSet is v1.27.14, newer than the oldest kube-apiserver (v1.26.15)"),
        "{text}"
    );
    assert!(
        text.contains("hint: kubeadm 1.27 upgrades kube-proxy during `kubeadm upgrade apply`"),
        "{text}"
    );
    // A single control-plane node has no older API server left behind.
    let single = cluster(
        &SINGLE
            .replace("v1.28.9", "v1.26.15")
            .replace("3.5.9-0", "3.5.6-0"),
    );
    let p = plan(&single, "1.27", JUNE_2024);
    assert_eq!(p.hops[0].addons_at, AddonsAt::Apply);
    replay(&single, &p, &UpstreamPolicy::new());
}

#[test]
fn targets_are_resolved_or_refused_with_reasons() {
    let state = cluster(HA);
    let err = |target: &str, day: Date, options: PlanOptions| {
        plan_with(&state, target, day, options)
            .unwrap_err()
            .to_string()
    };
    let d = PlanOptions::default;
    assert_eq!(
        err("1.27", JUNE_2024, d()),
        "target v1.27.14 is older than the control plane (v1.28.9): downgrades are not supported"
    );
    assert_eq!(
        err("v1.29.99", JUNE_2024, d()),
        "v1.29.99 is not a known Kubernetes release (the release calendar goes up to 2026-09-15); allow unknown versions (--allow-unknown-versions) to plan for it anyway"
    );
    assert_eq!(
        err("v1.31.0-rc.1", JUNE_2024, d()),
        "v1.31.0-rc.1 is a pre-release (rc); allow pre-releases (--allow-prerelease) to plan for it"
    );
    assert_eq!(
        err("v1.30.1-eks-1234567", JUNE_2024, d()),
        "v1.30.1-eks-1234567 is a vendor build; give the upstream release (v1.30.1) as the target, vendor builds are upgraded by their vendor"
    );
    assert_eq!(
        err("1.45", JUNE_2024, d()),
        "no release of Kubernetes 1.45 is known by 2024-06-01, so the upgrade cannot pass through it"
    );
    assert_eq!(
        err("1.29", date(2026, 11, 25), d()),
        "target v1.29.15 is end of life since 2025-02-28 on 2026-11-25; allow unsupported targets (--allow-unsupported-target) to plan for it anyway"
    );
    assert!(matches!(
        plan_with(&state, "2.0.0", JUNE_2024, PlanOptions { allow_unknown_versions: true, allow_unsupported_target: true, ..d() }).unwrap_err(),
        PlanError::Target(t) if matches!(*t, TargetError::MajorChange { .. })
    ));
    // `stable` and `latest` are the newest release by the date; a minor its latest patch.
    assert_eq!(plan(&state, "stable", JUNE_2024).target, v("v1.30.1"));
    assert_eq!(plan(&state, "latest", JUNE_2024).target, v("v1.30.1"));
    assert_eq!(plan(&state, "1.30", JUNE_2025).target, v("v1.30.13"));
    // Allowed on request.
    let p = plan_with(
        &state,
        "v1.29.99",
        JUNE_2024,
        PlanOptions {
            allow_unknown_versions: true,
            ..d()
        },
    )
    .unwrap();
    assert_eq!(p.target, v("v1.29.99"));
}

#[test]
fn patch_upgrades_and_nothing_to_do() {
    let state = cluster(&HA.replace("v1.28.9", "v1.28.3"));
    let p = plan(&state, "v1.28.9", JUNE_2024);
    assert_eq!(p.hops.len(), 1);
    assert_eq!(p.hops[0].kind, HopKind::Patch);
    // Same minor: no repository switch.
    assert!(
        !p.steps
            .iter()
            .any(|s| matches!(s.action, Action::SwitchRepository { .. }))
    );
    replay(&state, &p, &UpstreamPolicy::new());
    let at_target = plan(&cluster(HA), "v1.28.9", JUNE_2024);
    assert!(at_target.is_empty());
    assert_eq!(at_target.steps.len(), 2, "pre-flight and verify only");
    // Patch first, then the next minor.
    let p = plan_with(
        &state,
        "1.29",
        JUNE_2024,
        PlanOptions {
            patch_first: true,
            ..PlanOptions::default()
        },
    )
    .unwrap();
    let hops: Vec<(KubeVersion, HopKind)> = p.hops.iter().map(|h| (h.to.clone(), h.kind)).collect();
    assert_eq!(
        hops,
        [
            (v("v1.28.10"), HopKind::Patch),
            (v("v1.29.5"), HopKind::Minor)
        ]
    );
}

#[test]
fn a_cluster_that_violates_the_policy_is_refused_or_repaired() {
    let state = cluster(MID);
    let err = plan_with(&state, "1.29", JUNE_2024, PlanOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the cluster already violates the upstream policy, so no plan can keep every step valid (tolerate initial violations with --tolerate-initial-violations to plan a repair):\n\
         error[upstream/kube-proxy]: the kube-proxy DaemonSet is v1.29.4, newer than the oldest kube-apiserver (v1.28.9); kube-proxy at 1.29 may be at most 3 minors older and never newer (allowed: 1.26 to 1.28)\n\
         error[upstream/kubelet]: kubelet on node \"cp-1\" is v1.29.4, newer than the oldest kube-apiserver (v1.28.9); a kubelet at 1.29 may be at most 3 minors older and never newer (allowed: 1.26 to 1.28)"
    );
    let options = PlanOptions {
        tolerate_initial_violations: true,
        ..PlanOptions::default()
    };
    let p = plan_with(&state, "1.29", JUNE_2024, options).unwrap();
    assert_eq!(p.hops[0].kind, HopKind::Resume);
    assert_eq!(p.hops[0].to, v("v1.29.4"));
    // The hop under way is finished first: no second `kubeadm upgrade apply`.
    assert!(
        !p.steps
            .iter()
            .any(|s| s.point_of_no_return && s.hop == Some(0))
    );
    let end = Simulation::new(state.clone());
    let mut sim = end;
    for s in &p.steps {
        sim.apply(s).unwrap();
    }
    assert!(UpstreamPolicy::new().errors(sim.state()).is_empty());
}

#[test]
fn deferred_workers_catch_up_in_one_drain_window() {
    let state = cluster(HA);
    let every = plan(&state, "1.31", JUNE_2025);
    assert_eq!(every.hops.len(), 3);
    let deferred = plan_with(
        &state,
        "1.31",
        JUNE_2025,
        PlanOptions {
            worker_pacing: Some(WorkerPacing::Deferred),
            ..PlanOptions::default()
        },
    )
    .unwrap();
    let (e, d) = (drains(&every), drains(&deferred));
    assert_eq!(e["worker-1"], 3, "every hop: {e:?}");
    assert_eq!(d["worker-1"], 1, "deferred: {d:?}");
    // Control-plane nodes follow every hop either way.
    assert_eq!(d["cp-1"], 3);
    assert!(deferred.estimate.drains < every.estimate.drains);
    // In the one window the kubelet passes through every minor and, as a careful operator
    // does, `kubeadm upgrade node` of each minor writes that minor's kubelet configuration
    // before the kubelet moves to it (never a kubelet ahead of its configuration, nor one
    // restarted with a newer one).
    let order: Vec<String> = deferred
        .steps
        .iter()
        .filter(|s| s.nodes.iter().any(|n| n.as_str() == "worker-1"))
        .filter_map(|s| match &s.action {
            Action::InstallPackages { packages, version }
                if packages.contains(&kupgrade_core::plan::Package::Kubelet) =>
            {
                Some(format!("kubelet {version}"))
            }
            Action::KubeadmUpgradeNode { kubeadm, .. } => Some(format!(
                "config {}",
                kubeadm.as_ref().map_or("v1.31.9".into(), |k| k.to_string())
            )),
            _ => None,
        })
        .collect();
    let versions: Vec<&str> = order
        .iter()
        .filter_map(|o| o.strip_prefix("kubelet "))
        .collect();
    assert_eq!(versions, ["v1.29.15", "v1.30.13", "v1.31.9"]);
    assert_eq!(
        order,
        [
            "config v1.29.15",
            "kubelet v1.29.15",
            "config v1.30.13",
            "kubelet v1.30.13",
            "config v1.31.9",
            "kubelet v1.31.9"
        ]
    );
    replay(&state, &deferred, &UpstreamPolicy::new());
}

/// kubeadm before 1.29 refuses `kubeadm upgrade apply` (without `--force`) while a kubelet is
/// more than one minor older than its target, whatever the skew policy allows: deferred
/// workers on the old sample catch up before every hop, and no apply runs with kubelets two
/// minors behind.
#[test]
fn deferred_workers_catch_up_before_each_hop_kubeadm_before_1_29_would_refuse() {
    let state = cluster(OLD);
    let p = plan_with(
        &state,
        "1.28",
        date(2026, 12, 6),
        PlanOptions {
            worker_pacing: Some(WorkerPacing::Deferred),
            allow_unsupported_target: true,
            ..PlanOptions::default()
        },
    )
    .unwrap();
    let mut sim = Simulation::new(state.clone());
    let mut applied = Vec::new();
    for s in &p.steps {
        if let Action::KubeadmUpgradeApply { version, .. } = &s.action {
            let lagging: Vec<String> = sim
                .state()
                .nodes
                .iter()
                .filter(|n| n.kubelet().unwrap().minor_number() + 1 < version.minor_number())
                .map(|n| format!("{} at {}", n.name, n.kubelet().unwrap()))
                .collect();
            assert!(lagging.is_empty(), "{}: {lagging:?}", s.id);
            let request =
                UpgradeRequest::for_cluster(sim.state(), version.clone(), version.clone()).unwrap();
            let findings = enforce_version_policies(&request);
            assert!(findings.is_clear(), "{}: {findings}", s.id);
            applied.push(version.to_string());
        }
        sim.apply(s).unwrap();
    }
    assert_eq!(applied, ["v1.25.16", "v1.26.15", "v1.27.16", "v1.28.15"]);
    // The first window takes the workers from 1.22 to 1.24 (the policy's doing); each later
    // hop's kubeadm wants them one minor behind its target, which the policy does not: one
    // window per hop, then the last one to 1.28.
    assert_eq!(drains(&p)["node-1"], 5, "{:?}", drains(&p));
    let why: Vec<&str> = p
        .steps
        .iter()
        .filter(|s| s.phase == Phase::Workers && s.nodes.iter().any(|n| n.as_str() == "node-1"))
        .filter(|s| matches!(s.action, Action::Cordon))
        .map(|s| s.reason.split(';').next().unwrap())
        .collect();
    assert_eq!(
        why,
        [
            "the policy would not allow these kubelets once the control plane moves to v1.25.16 (upstream/kubelet): they catch up to v1.24.17 first",
            "kubeadm 1.26 refuses `kubeadm upgrade apply v1.26.15` (without --force) with kubelets more than 1 minor older (kubeadm/kubelet-skew): these catch up to v1.25.16 first",
            "kubeadm 1.27 refuses `kubeadm upgrade apply v1.27.16` (without --force) with kubelets more than 1 minor older (kubeadm/kubelet-skew): these catch up to v1.26.15 first",
            "kubeadm 1.28 refuses `kubeadm upgrade apply v1.28.15` (without --force) with kubelets more than 1 minor older (kubeadm/kubelet-skew): these catch up to v1.27.16 first",
            "workers move to v1.28.15, deferred as long as the policy allowed (fewest drains)",
        ]
    );
    replay(&state, &p, &UpstreamPolicy::new());
}

/// A stricter house policy shapes the plan: kubelets at most one minor behind force the
/// workers along every hop even when deferring.
#[test]
fn a_stricter_policy_forces_workers_along_every_hop() {
    let strict = RulePolicy::parse(
        "name: strict\nrules:\n  - { id: strict/kubelet-lag, kind: max-lag, component: kubelet, apiserver: newest, minors: 1 }\n",
        "strict.yaml",
    )
    .unwrap()
    .with_upstream();
    let state = cluster(HA);
    let options = PlanOptions {
        worker_pacing: Some(WorkerPacing::Deferred),
        ..PlanOptions::default()
    };
    let p = PlanRequest::new("1.31".parse().unwrap(), JUNE_2025)
        .policy(&strict)
        .options(options)
        .plan(&state)
        .unwrap();
    assert_eq!(p.policy, "upstream+strict");
    assert_eq!(drains(&p)["worker-1"], 3);
    let catch_up = p
        .steps
        .iter()
        .find(|s| s.phase == Phase::Workers && matches!(s.action, Action::Cordon))
        .unwrap();
    assert!(
        catch_up.reason.contains("(strict/kubelet-lag)"),
        "{}",
        catch_up.reason
    );
    replay(&state, &p, &strict);
}

#[test]
fn replace_strategy_joins_new_nodes_before_removing_old_ones() {
    let state = cluster(HA);
    let options = PlanOptions {
        strategy: Strategy::Replace,
        max_surge: 2,
        batch: BatchSize::Count(3),
        ..PlanOptions::default()
    };
    let p = plan_with(&state, "1.31", JUNE_2025, options).unwrap();
    // Workers are replaced once, at the end, by nodes at the target; batches of the surge.
    assert_eq!(p.estimate.nodes_replaced, 6);
    let mut provisioned = BTreeSet::new();
    for (i, s) in p.steps.iter().enumerate() {
        match &s.action {
            Action::ProvisionNodes { version, templates } => {
                assert_eq!(version, &v("v1.31.9"));
                assert!(s.nodes.len() <= 2);
                for (n, t) in s.nodes.iter().zip(templates) {
                    assert_eq!(n.as_str(), format!("{t}-v1-31-9"));
                    provisioned.insert(t.to_string());
                }
                assert!(!s.idempotent);
            }
            Action::RemoveNodes => {
                for n in &s.nodes {
                    assert!(
                        provisioned.contains(n.as_str()),
                        "{n} removed before its replacement joined (step {i})"
                    );
                }
            }
            Action::InstallPackages { .. } => assert_ne!(s.phase, Phase::Workers),
            _ => {}
        }
    }
    let end = replay(&state, &p, &UpstreamPolicy::new());
    let mut names: Vec<&str> = end.workers().map(|n| n.name.as_str()).collect();
    names.sort();
    assert_eq!(names[0], "worker-1-v1-31-9");
    assert_eq!(names.len(), 6);
    let new = end.node("worker-3-v1-31-9").unwrap();
    assert_eq!(new.os.family, kupgrade_core::OsFamily::Rhel);
    assert_eq!(new.zone(), Some("eu-west-1c"));
    assert_eq!(
        plan_with(
            &state,
            "1.31",
            JUNE_2025,
            PlanOptions {
                strategy: Strategy::Replace,
                max_surge: 0,
                ..PlanOptions::default()
            }
        )
        .unwrap_err()
        .to_string(),
        "option maxSurge: the replace strategy needs at least 1: new nodes join before old ones leave, so that planning again mid-way finds every node"
    );
}

#[test]
fn batches_respect_zone_caps() {
    let state = cluster(HA);
    let zone = |n: &str| state.node(n).unwrap().zone().unwrap().to_string();
    let batches = |options: PlanOptions| -> Vec<Vec<String>> {
        plan_with(&state, "1.29", JUNE_2024, options)
            .unwrap()
            .steps
            .iter()
            .filter(|s| s.phase == Phase::Workers && matches!(s.action, Action::Cordon))
            .map(|s| s.nodes.iter().map(|n| n.to_string()).collect())
            .collect()
    };
    // Without a cap, batches go zone by zone.
    let plain = batches(PlanOptions {
        batch: BatchSize::Count(2),
        ..PlanOptions::default()
    });
    assert_eq!(plain[0], ["worker-1", "worker-4"]);
    // With one node per zone, a batch spreads over zones.
    let capped = batches(PlanOptions {
        batch: BatchSize::Percent(50),
        max_per_zone: Some(BatchSize::Count(1)),
        ..PlanOptions::default()
    });
    assert_eq!(capped.len(), 2);
    for b in &capped {
        let zones: BTreeSet<String> = b.iter().map(|n| zone(n)).collect();
        assert_eq!(zones.len(), b.len(), "{b:?}");
    }
    let p = plan_with(
        &state,
        "1.29",
        JUNE_2024,
        PlanOptions {
            batch: BatchSize::Percent(50),
            max_per_zone: Some(BatchSize::Count(1)),
            ..PlanOptions::default()
        },
    )
    .unwrap();
    // A batch of three workers, and a control-plane kubelet beside it; the next batch's
    // downloads (pre-staging) may run beside them too.
    assert_eq!(p.estimate.max_unavailable, 4);
    assert_eq!(p.max_parallel, 6);
}

#[test]
fn old_kubelets_catch_up_before_the_control_plane_moves() {
    let state = cluster(OLD);
    let p = plan(&state, "1.25", JUNE_2024.min(date(2023, 6, 1)));
    let apply = position(&p, "v1.25.10/master-1/kubeadm-upgrade-apply");
    let through = position(&p, "v1.24.17/node-1/install-kubelet-kubectl@v1.23.17");
    assert!(through < apply);
    // pkgs.k8s.io has nothing before 1.24: that step is described, not rendered.
    let s = &p.steps[through];
    assert!(s.commands[0].commands.is_empty());
    assert!(
        s.commands[0]
            .manual
            .as_ref()
            .unwrap()
            .contains("pkgs.k8s.io has no packages before v1.24")
    );
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("no packages before v1.24"))
    );
    replay(&state, &p, &UpstreamPolicy::new());
}

#[test]
fn kubeadm_does_not_upgrade_the_cloud_controller_manager() {
    let state = cluster(&HA.replace(
        "      kube-scheduler: v1.28.9\n",
        "      kube-scheduler: v1.28.9\n      cloud-controller-manager: v1.28.9\n",
    ));
    let err = plan_with(&state, "1.30", JUNE_2024, PlanOptions::default()).unwrap_err();
    assert_eq!(err.rule(), Some("upstream/control-plane"));
    assert!(
        err.to_string()
            .contains("hint: kubeadm does not upgrade the cloud-controller-manager"),
        "{err}"
    );
    // One hop is fine (one minor older is allowed), and the plan says so.
    let p = plan(&state, "1.29", JUNE_2024);
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("cloud-controller-manager"))
    );
}

#[test]
fn external_etcd_gets_no_snapshot_but_a_note() {
    let mut state = cluster(HA);
    state.etcd = EtcdTopology::External {
        version: Some(v("3.5.9-0")),
        endpoints: vec![],
    };
    for n in &mut state.nodes {
        n.versions.etcd = None;
    }
    let p = plan(&state, "1.29", JUNE_2024);
    assert!(
        !p.steps
            .iter()
            .any(|s| matches!(s.action, Action::EtcdSnapshot { .. }))
    );
    assert!(p.notes.iter().any(|n| n.starts_with("etcd is external")));
}

#[test]
fn the_operators_kubectl_stays_within_one_minor() {
    let mut state = cluster(HA);
    state.kubectl = Some(v("v1.28.9"));
    let p = plan(&state, "1.31", JUNE_2025);
    let kubectl: Vec<(usize, String)> = p
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match &s.action {
            Action::UpgradeKubectlClient { version } => Some((i, version.to_string())),
            _ => None,
        })
        .collect();
    // Before the second hop (1.28 would be two behind 1.30), then at the end.
    assert_eq!(
        kubectl.iter().map(|k| k.1.as_str()).collect::<Vec<_>>(),
        ["v1.30.13", "v1.31.9"]
    );
    assert!(kubectl[0].0 < position(&p, "v1.30.13/cp-1/kubeadm-upgrade-apply"));
    replay(&state, &p, &UpstreamPolicy::new());
}

#[test]
fn bad_input_is_refused_with_the_option_or_node_named() {
    let mut state = cluster(HA);
    state.nodes[4].ready = false;
    assert_eq!(
        plan_with(&state, "1.29", JUNE_2024, PlanOptions::default())
            .unwrap_err()
            .to_string(),
        "nodes not Ready: worker-2; fix them first (or allow not-ready nodes: --allow-not-ready)"
    );
    let state = cluster(HA);
    let options = PlanOptions {
        backup_dir: Some("/tmp/$(reboot)".into()),
        ..PlanOptions::default()
    };
    assert_eq!(
        plan_with(&state, "1.29", JUNE_2024, options)
            .unwrap_err()
            .to_string(),
        "option backupDir: \"/tmp/$(reboot)\" is not a usable path: '$' is not allowed (letters, digits, '.', '_', '-', '+' and '/' only)"
    );
    assert_eq!(
        "1.x".parse::<Target>().unwrap_err().to_string(),
        "\"1.x\" is not a target: expected a version (v1.31.2), a minor (1.31), \"stable\" or \"latest\""
    );
}

#[test]
fn steps_say_what_an_executor_needs() {
    let state = cluster(HA);
    let p = plan(&state, "1.29", JUNE_2024);
    // Every step but the first names what it waits for, all of it before it in the plan.
    for (i, s) in p.steps.iter().enumerate().skip(1) {
        assert!(!s.depends_on.is_empty(), "{}", s.id);
        for d in &s.depends_on {
            assert!(p.steps[..i].iter().any(|e| e.id == *d), "{}: {d}", s.id);
        }
    }
    let ids: BTreeSet<&str> = p.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), p.steps.len(), "ids are unique");
    let apply = &p.steps[position(&p, "v1.29.5/cp-1/kubeadm-upgrade-apply")];
    assert!(apply.idempotent && apply.point_of_no_return);
    assert!(!apply.pre.is_empty() && !apply.post.is_empty());
    assert!(apply.duration_seconds > 0);
    // The estimate is the schedule's makespan: less than the steps one after another.
    let total: u64 = p.steps.iter().map(|s| s.duration_seconds).sum();
    let timeline = kupgrade_core::plan::Timeline::of(&p.steps, p.max_parallel, 0);
    assert_eq!(p.estimate.total_seconds, timeline.makespan);
    assert!(p.estimate.total_seconds < total);
}
