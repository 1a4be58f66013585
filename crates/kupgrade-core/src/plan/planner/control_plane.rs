//! The control plane, hop by hop: kubeadm's apply and node, the add-ons, kubectl and the
//! control-plane kubelets.
use foldhash::{HashSet, HashSetExt};

use crate::kubeadm::{UpgradeRequest, enforce_version_policies};
use crate::{EtcdTopology, KubeVersion, Node, NodeName};

use super::Planner;
use super::groups::Head;
use super::names::backup_path;
use super::steps::Batch;
use crate::plan::action::Action;
use crate::plan::step::{AddonVersions, Package, Phase};
use crate::plan::{AddonsAt, Hop, PlanError, SimulationError};

impl Planner<'_, '_> {
    /// The control-plane node called `name`.
    pub(super) fn node(&self, name: &NodeName) -> Result<&Node, PlanError> {
        self.sim
            .control_plane()
            .iter()
            .find(|n| n.name == *name)
            .ok_or_else(|| {
                PlanError::Internal(SimulationError {
                    step: "(planning)".into(),
                    message: format!("node {name} vanished"),
                })
            })
    }

    /// The names of the control-plane nodes, sorted: the order they move in.
    pub(super) fn control_plane_names(&self) -> Vec<NodeName> {
        let mut names: Vec<NodeName> = self
            .sim
            .control_plane()
            .iter()
            .map(|n| n.name.clone())
            .collect();
        names.sort();
        names
    }

    /// Hop `h`: unless it started already, the workers that must move first and kubectl;
    /// then each control-plane node not at the hop's version yet, one at a time (`kubeadm
    /// upgrade apply` on the first, `kubeadm upgrade node` on the others); then the add-ons
    /// and the control-plane kubelets.
    pub(super) fn run_hop(&mut self, h: usize) -> Result<(), PlanError> {
        let hop = self.hops[h].clone();
        let v = hop.to.clone();
        let cp = self.control_plane_names();
        let at = |p: &Self, n: &NodeName| {
            p.node(n)
                .ok()
                .and_then(|n| n.versions.kube_apiserver.as_ref())
                .is_some_and(|a| a.release() == v)
        };
        let started = cp.iter().any(|n| at(self, n));
        if !started {
            self.before_hop(&hop)?;
            // kubectl may be at most one minor older than the newest API server.
            let floor = v.minor().prev().unwrap_or(v.minor()).first_patch();
            self.ensure_kubectl(&v, &floor, true)?;
        }
        let pending: Vec<NodeName> = cp.iter().filter(|n| !at(self, n)).cloned().collect();
        let start = self.steps.len();
        if self.opts().accept_transient.is_some()
            && !started
            && hop.addons_at == AddonsAt::Apply
            && pending.len() > 1
        {
            // A transient window may open at `kubeadm upgrade apply`: kubeadm goes onto every
            // control-plane node first, so that only their upgrades run inside it.
            for name in &pending {
                let node = self.node(name)?.clone();
                let batch = self.batch_of(&[&node]);
                self.control_plane_kubeadm(&node, &batch, &v)?;
            }
        }
        for (i, name) in pending.iter().enumerate() {
            let node = self.node(name)?.clone();
            let batch = self.batch_of(&[&node]);
            self.control_plane_kubeadm(&node, &batch, &v)?;
            let etcd = self.etcd_for(&node, &v);
            if i == 0 && !started {
                self.upgrade_apply(&hop, name, &batch, etcd, cp.len())?;
            } else {
                self.upgrade_node(&hop, &batch, etcd, i + 1 == pending.len())?;
            }
        }
        // The control plane's kubeadm downloads and images, before it moves.
        let nodes: Vec<Node> = pending
            .iter()
            .map(|n| self.node(n).cloned())
            .collect::<Result<_, _>>()?;
        let pull = self.batch_of(&nodes.iter().collect::<Vec<_>>());
        self.prestage_since(start, &v, Some(&pull), true)?;
        self.ensure_addons(&v)?;
        self.control_plane_kubelets(&v)
    }

    /// Installs kubeadm `v` on a control-plane node that runs another one.
    fn control_plane_kubeadm(
        &mut self,
        node: &Node,
        batch: &Batch,
        v: &KubeVersion,
    ) -> Result<(), PlanError> {
        if node.versions.kubeadm.as_ref().map(KubeVersion::release) == Some(v.clone()) {
            return Ok(());
        }
        let mut repo = Head::of(node, node.unschedulable).repo();
        self.packages(
            Phase::ControlPlane,
            batch,
            &mut repo,
            &[Package::Kubeadm],
            v,
            v,
            format!("kubeadm {v} must be on the node before it can move the control plane to {v}"),
        )
    }

    /// The first control-plane node of a hop (called `name`; `cp_count` of them): kubeadm's
    /// version checked, an etcd snapshot (stacked etcd, with a snapshot directory),
    /// `kubeadm upgrade plan`, kubeadm's verdict on the kubelets, then `kubeadm upgrade
    /// apply`, the point of no return.
    fn upgrade_apply(
        &mut self,
        hop: &Hop,
        name: &NodeName,
        batch: &Batch,
        etcd: Option<KubeVersion>,
        cp_count: usize,
    ) -> Result<(), PlanError> {
        let v = &hop.to;
        self.push(
            Phase::ControlPlane,
            batch,
            Action::CheckKubeadmVersion { version: v.clone() },
            v,
            format!("the kubeadm that runs next must be {v}"),
        )?;
        if let (Some(dir), EtcdTopology::Stacked) = (
            self.opts().etcd_snapshot_dir.clone(),
            &self.sim.shell().etcd,
        ) {
            self.push(
                Phase::ControlPlane,
                batch,
                Action::EtcdSnapshot {
                    path: backup_path(&dir, &format!("etcd-before-{v}.db")),
                },
                v,
                "an etcd snapshot before the point of no return",
            )?;
        }
        self.push(
            Phase::ControlPlane,
            batch,
            Action::KubeadmUpgradePlan { version: v.clone() },
            v,
            format!("kubeadm's own pre-flight checks for {v}; changes nothing"),
        )?;
        self.kubeadm_verdict(v)?;
        let addons = if hop.addons_at == AddonsAt::Apply {
            self.addons_for(v)
        } else {
            AddonVersions::default()
        };
        let mut reason = format!(
            "the first control-plane node ({name}) runs `kubeadm upgrade apply`: one minor per hop, since kubeadm refuses to skip minors; from here a downgrade is not supported"
        );
        if !addons.is_empty() {
            reason.push_str(if cp_count > 1 {
                "; kubeadm before 1.28 moves kube-proxy and CoreDNS here"
            } else {
                "; as the only control-plane node it also moves kube-proxy and CoreDNS"
            });
        }
        self.push(
            Phase::ControlPlane,
            batch,
            Action::KubeadmUpgradeApply {
                version: v.clone(),
                etcd,
                addons,
            },
            v,
            reason,
        )
    }

    /// Another control-plane node of a hop: `kubeadm upgrade node`; on the `last` one it also
    /// moves the add-ons (kubeadm 1.28 and later).
    fn upgrade_node(
        &mut self,
        hop: &Hop,
        batch: &Batch,
        etcd: Option<KubeVersion>,
        last: bool,
    ) -> Result<(), PlanError> {
        let v = &hop.to;
        let addons = if last && hop.addons_at == AddonsAt::LastControlPlaneNode {
            self.addons_for(v)
        } else {
            AddonVersions::default()
        };
        let mut reason = "the other control-plane nodes follow with `kubeadm upgrade node`, one at a time (API servers may be one minor apart meanwhile)".to_string();
        if !addons.is_empty() {
            reason.push_str("; the last one also moves kube-proxy and CoreDNS (kubeadm 1.28 and later wait for every control-plane node)");
        }
        self.push(
            Phase::ControlPlane,
            batch,
            Action::KubeadmUpgradeNode {
                control_plane: Some(v.clone()),
                etcd,
                addons,
                kubeadm: None,
            },
            v,
            reason,
        )
    }

    /// kubeadm's version policy for `v` on the kubelets (one node per kubelet version,
    /// every node when something is found); its findings stop the plan.
    fn kubeadm_verdict(&mut self, v: &KubeVersion) -> Result<(), PlanError> {
        let state = self.sim.shell();
        let Some(cluster) = state.apiserver_min().cloned() else {
            return Err(PlanError::NoControlPlane);
        };
        let allow = self.opts().allow_prerelease;
        let request = |kubelets: Vec<(NodeName, KubeVersion)>| {
            UpgradeRequest::new(cluster.clone(), v.clone(), v.clone())
                .with_kubelets(kubelets)
                .allow_experimental_upgrades(allow)
                .allow_release_candidate_upgrades(allow)
        };
        // kubeadm judges kubelet versions, not nodes: one node per version decides, and every
        // node is listed only when there is something to report.
        let fleet = &self.sim;
        let mut class_seen = vec![false; fleet.class_count()];
        let mut seen: HashSet<&KubeVersion> = HashSet::new();
        let mut some = Vec::new();
        for i in 0..fleet.len() {
            let k = fleet.class_of(i);
            if std::mem::replace(&mut class_seen[k as usize], true) {
                continue;
            }
            if let Some(kubelet) = fleet.class(k).rep.kubelet()
                && seen.insert(kubelet)
            {
                some.push((fleet.name(i).clone(), kubelet.clone()));
            }
        }
        let mut findings = enforce_version_policies(&request(some));
        if !findings.is_clear() {
            let all = (0..fleet.len())
                .filter_map(|i| {
                    let kubelet = fleet.rep(i).kubelet()?;
                    Some((fleet.name(i).clone(), kubelet.clone()))
                })
                .collect();
            findings = enforce_version_policies(&request(all));
        }
        if !findings.is_clear() {
            return Err(PlanError::Kubeadm {
                version: v.clone(),
                findings: findings.to_string().trim_end().replace('\n', "; "),
            });
        }
        self.kubeadm_checked.push(v.clone());
        Ok(())
    }

    /// The stacked etcd version `kubeadm upgrade` deploys on `node` for `v` (never older).
    fn etcd_for(&self, node: &Node, v: &KubeVersion) -> Option<KubeVersion> {
        if !matches!(self.sim.shell().etcd, EtcdTopology::Stacked) {
            return None;
        }
        let want = self.req.calendar.bundled(v.minor())?.etcd.clone()?;
        let have = node.versions.etcd.as_ref()?;
        (have.release() < want.release()).then_some(want)
    }

    /// The add-on versions kubeadm deploys for `v`, where the cluster runs older ones.
    pub(super) fn addons_for(&self, v: &KubeVersion) -> AddonVersions {
        let addons = &self.sim.shell().addons;
        AddonVersions {
            kube_proxy: addons
                .kube_proxy
                .as_ref()
                .filter(|kp| kp.release() < *v)
                .map(|_| v.clone()),
            coredns: match (&addons.coredns, self.req.calendar.bundled(v.minor())) {
                (Some(have), Some(b)) => b
                    .coredns
                    .clone()
                    .filter(|want| have.release() < want.release()),
                _ => None,
            },
        }
    }

    /// Moves add-ons that lag the control plane at `v` (all of it there already).
    pub(super) fn ensure_addons(&mut self, v: &KubeVersion) -> Result<(), PlanError> {
        let addons = self.addons_for(v);
        if addons.is_empty() {
            return Ok(());
        }
        let cp = self.control_plane_names();
        let all_at = cp.iter().all(|n| {
            self.node(n)
                .ok()
                .and_then(|n| n.versions.kube_apiserver.as_ref())
                .is_some_and(|a| a.release() == *v)
        });
        let Some(last) = cp.last().filter(|_| all_at) else {
            return Ok(());
        };
        let node = self.node(last)?.clone();
        self.push(
            Phase::ControlPlane,
            &self.batch_of(&[&node]),
            Action::KubeadmUpgradeNode {
                control_plane: None,
                etcd: None,
                addons,
                kubeadm: None,
            },
            v,
            "the add-ons lag the control plane: `kubeadm upgrade node` on a control-plane node moves kube-proxy and CoreDNS once every control-plane node runs the new version",
        )
    }

    /// Upgrades the operators' kubectl to `v` when it is older than `below` (kubectl must stay
    /// within one minor of every API server): before a hop when it would fall out of range,
    /// and at the end.
    pub(super) fn ensure_kubectl(
        &mut self,
        v: &KubeVersion,
        below: &KubeVersion,
        hop: bool,
    ) -> Result<(), PlanError> {
        let lags = self
            .sim
            .shell()
            .kubectl
            .as_ref()
            .is_some_and(|k| k.release() < *below);
        if !lags {
            return Ok(());
        }
        let why = if hop {
            format!(
                "kubectl must stay within one minor of every API server: before the control plane moves to {v}, your kubectl moves there (it may be one minor ahead)"
            )
        } else {
            "kubectl must stay within one minor of every API server: it ends at the target with the cluster".to_string()
        };
        self.push(
            Phase::ControlPlane,
            &Batch::none(),
            Action::UpgradeKubectlClient { version: v.clone() },
            v,
            why,
        )
    }

    /// Control-plane kubelets, one node at a time, once every API server runs `v`; the
    /// workers that follow them run beside them (see [`Side`](super::Side)).
    pub(super) fn control_plane_kubelets(&mut self, v: &KubeVersion) -> Result<(), PlanError> {
        let fork = self.steps.last().map(|s| s.id.clone());
        let before = self.steps.len();
        for name in self.control_plane_names() {
            let node = self.node(&name)?.clone();
            let Some(kubelet) = node.kubelet() else {
                continue;
            };
            if kubelet.release() >= *v && !node.unschedulable {
                continue;
            }
            let why = format!(
                "control-plane kubelets move only once every API server runs {v} (a kubelet must not be newer than any API server it talks to), one control-plane node at a time"
            );
            let batch = self.batch_of(&[&node]);
            self.in_place_window(
                Phase::ControlPlaneKubelets,
                &batch,
                Head::of(&node, node.unschedulable),
                v,
                true,
                why,
            )?;
        }
        if let (Some(fork), Some(last)) = (fork, self.steps.last())
            && self.steps.len() > before
        {
            self.side = Some(super::Side {
                fork,
                tail: last.id.clone(),
            });
        }
        Ok(())
    }
}
