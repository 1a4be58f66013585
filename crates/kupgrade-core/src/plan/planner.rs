//! The planner: ordering, batching, simulation and incremental checking.
//!
//! Everything is decided from the simulated state alone (no memory of what the plan did
//! except which package repository a node was last pointed at), which is what makes planning
//! again from any intermediate state give the rest of the plan.
use std::borrow::Cow;
use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::sync::Arc;

use crate::kubeadm::{UpgradeRequest, enforce_version_policies};
use crate::skew::{Context, Severity, Summary, Violation};
use crate::{
    ClusterState, Component, EtcdTopology, KubeVersion, Minor, Node, NodeName, OsFamily, Role,
};

use super::action::{Action, Executor};
use super::batch::{self, Item};
use super::check::Checker;
use super::estimate::Estimate;
use super::fleet::Fleet;
use super::hops;
use super::packages::{KUBELET_PACKAGES, node_commands, validate_path};
use super::step::{AddonVersions, NodeList, Package, Phase, PreflightCheck, Step, StepId};
use super::{
    API_VERSION, AddonsAt, ComponentChange, Hop, HopKind, KIND, PlanError, PlanNode, PlanRequest,
    Strategy, TargetError, UpgradePlan, VersionCount, WorkerPacing,
};

pub(crate) fn plan(state: &ClusterState, req: &PlanRequest<'_>) -> Result<UpgradePlan, PlanError> {
    let opts = &req.options;
    check_options(req)?;
    let lo = state
        .apiserver_min()
        .ok_or(PlanError::NoControlPlane)?
        .clone();
    let hi = state
        .apiserver_max()
        .ok_or(PlanError::NoControlPlane)?
        .clone();
    let target = hops::resolve(&req.target, req.calendar, req.date, opts)?;
    let cp_count = state.control_plane().count();
    let hops = hops::hops(&lo, &hi, &target, req.calendar, req.date, opts, cp_count)?;
    let status = match hops::supported(&target, req.calendar, req.date) {
        Ok(s) => s,
        // Already there (no hop): nothing is chosen, so an end of life is no refusal.
        Err(s) if opts.allow_unsupported_target || hops.is_empty() => s,
        Err(status) => {
            return Err(TargetError::Unsupported {
                version: target,
                status,
                date: req.date,
            }
            .into());
        }
    };
    if !opts.allow_not_ready {
        let mut not_ready: Vec<NodeName> = state
            .nodes
            .iter()
            .filter(|n| !n.ready)
            .map(|n| n.name.clone())
            .collect();
        if !not_ready.is_empty() {
            not_ready.sort();
            return Err(PlanError::NotReady { nodes: not_ready });
        }
    }
    let mut p = Planner::new(state, req, target, hops)?;
    p.run(status)?;
    p.finish(state, lo)
}

fn check_options(req: &PlanRequest<'_>) -> Result<(), PlanError> {
    let opts = &req.options;
    for (option, value) in [
        ("etcdSnapshotDir", &opts.etcd_snapshot_dir),
        ("backupDir", &opts.backup_dir),
    ] {
        if let Some(path) = value {
            validate_path(path).map_err(|e| PlanError::InvalidOption {
                option,
                message: e.to_string(),
            })?;
        }
    }
    if opts.strategy == Strategy::Replace && opts.max_surge == 0 {
        return Err(PlanError::InvalidOption {
            option: "maxSurge",
            message: "the replace strategy needs at least 1: new nodes join before old ones leave, so that planning again mid-way finds every node".into(),
        });
    }
    if opts.zone_key.is_empty() {
        return Err(PlanError::InvalidOption {
            option: "zoneKey",
            message: "the zone label key is empty".into(),
        });
    }
    Ok(())
}

/// The nodes of one step, the OS families among them and, when they cannot move, their
/// positions in the simulated state.
#[derive(Clone)]
struct Batch {
    nodes: NodeList,
    oses: Vec<OsFamily>,
    at: Option<Arc<[usize]>>,
}

impl Batch {
    fn none() -> Self {
        Batch {
            nodes: NodeList::empty(),
            oses: Vec::new(),
            at: Some(Arc::from(Vec::new())),
        }
    }
    fn members(members: Members, positions: bool) -> Self {
        let mut oses: Vec<OsFamily> = members.iter().map(|m| m.1).collect();
        oses.sort();
        oses.dedup();
        let at = positions.then(|| members.iter().map(|m| m.2).collect());
        Batch {
            nodes: NodeList::new(members.into_iter().map(|m| m.0).collect()),
            oses,
            at,
        }
    }
    /// The batch of the nodes at these positions now (with their OS families); `positions`:
    /// whether the positions stay put until the batch's steps are done.
    fn at(fleet: &Fleet, members: Vec<(usize, OsFamily)>, positions: bool) -> Self {
        let mut oses: Vec<OsFamily> = members.iter().map(|m| m.1).collect();
        oses.sort();
        oses.dedup();
        Batch {
            nodes: NodeList::new(members.iter().map(|m| fleet.name(m.0).clone()).collect()),
            oses,
            at: positions.then(|| members.iter().map(|m| m.0).collect()),
        }
    }
}

/// A worker to batch: its position and OS family.
type Worker = Item<(usize, OsFamily)>;

/// The names, OS families and positions of a batch's nodes.
type Members = Vec<(NodeName, OsFamily, usize)>;

/// What the nodes of a batch have in common: everything that decides their steps.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Head {
    /// How far the nodes got already (an interrupted plan): 0 cordoned, 1 kubeadm done but
    /// not cordoned yet, 2 untouched. Nodes under way go first, so that planning again
    /// mid-way continues with them.
    progress: u8,
    /// Cordoned nodes (an interrupted upgrade) go first.
    cordoned: bool,
    /// Replace strategy: the replacement already exists.
    has_replacement: bool,
    kubelet: Option<KubeVersion>,
    kubeadm: Option<KubeVersion>,
}

impl Head {
    /// The head of `n`'s class, its nodes cordoned or not.
    fn of(n: &Node, cordoned: bool) -> Self {
        Head {
            progress: if cordoned { 0 } else { 2 },
            cordoned,
            has_replacement: false,
            kubelet: n.kubelet().map(KubeVersion::release),
            kubeadm: n.versions.kubeadm.as_ref().map(KubeVersion::release),
        }
    }
    /// The minor the nodes' package repository points at: the minor of their kubeadm (or
    /// kubelet). Derived from the state alone, so planning again agrees with the plan.
    fn repo(&self) -> Minor {
        self.kubeadm
            .as_ref()
            .or(self.kubelet.as_ref())
            .map_or(Minor::new(0, 0), KubeVersion::minor)
    }
    fn order(&self) -> (u8, bool, &Option<KubeVersion>, &Option<KubeVersion>) {
        (
            self.progress,
            !self.has_replacement,
            &self.kubelet,
            &self.kubeadm,
        )
    }
}

/// Why a group of workers moves now.
#[derive(Clone)]
enum Why {
    EveryHop { next: KubeVersion },
    CatchUp { next: KubeVersion, rule: String },
    Final { deferred: bool },
}

struct Planner<'r, 'a> {
    req: &'r PlanRequest<'a>,
    /// The cluster as the steps so far leave it.
    sim: Fleet,
    checker: Checker<'r>,
    steps: Vec<Step>,
    ids: HashSet<StepId>,
    versions: BTreeMap<Minor, KubeVersion>,
    hops: Vec<Hop>,
    target: KubeVersion,
    hop: Option<usize>,
    /// Drains per node, by position (in place) or by name (replace: positions move).
    drains_at: Vec<usize>,
    drains: HashMap<NodeName, usize>,
    /// Whether node positions stay put (no step removes nodes: the in-place strategy).
    positions: bool,
    max_unavailable: usize,
    replaced: usize,
    batch_size: usize,
    zone_totals: HashMap<Option<String>, usize>,
    kubeadm_checked: Vec<KubeVersion>,
}

impl<'r, 'a> Planner<'r, 'a> {
    fn new(
        state: &ClusterState,
        req: &'r PlanRequest<'a>,
        target: KubeVersion,
        hops: Vec<Hop>,
    ) -> Result<Self, PlanError> {
        // Nodes by zone; within a zone in inventory order (in place: the model keeps that
        // order, so planning again mid-way sees it too) or by name (replacing moves nodes).
        // Batches take them in this order without sorting again.
        let zone_key = req.options.zone_key.as_str();
        let sim = Fleet::new(
            state,
            zone_key,
            req.options.strategy == Strategy::Replace,
            &req.policy.label_keys(),
        );
        let checker = Checker::start(req.policy, &sim, req.options.tolerate_initial_violations)
            .map_err(|violations| PlanError::InvalidStart {
                policy: req.policy.name().to_string(),
                violations,
            })?;
        let versions = BTreeMap::new();
        // Workers per zone. Replacing, a replacement counts as the node it replaces (distinct
        // base names), so that the numbers stay put while a replacement is under way.
        let mut per_zone: Vec<usize> = vec![0; sim.zone_names().len()];
        if req.options.strategy == Strategy::Replace {
            let mut bases: HashSet<(u32, String)> = HashSet::new();
            for i in 0..sim.len() {
                let class = sim.class(sim.class_of(i));
                if !class.rep.is_control_plane()
                    && bases.insert((class.zone, base_name(sim.name(i))))
                {
                    per_zone[class.zone as usize] += 1;
                }
            }
        } else {
            for (_, class) in sim.present() {
                if !class.rep.is_control_plane() {
                    per_zone[class.zone as usize] += class.count;
                }
            }
        }
        let workers = per_zone.iter().sum();
        let zone_totals: HashMap<Option<String>, usize> = per_zone
            .into_iter()
            .enumerate()
            .filter(|&(_, n)| n > 0)
            .map(|(z, n)| (sim.zone_names()[z].clone(), n))
            .collect();
        let mut batch_size = req.options.batch.of(workers);
        if req.options.strategy == Strategy::Replace {
            batch_size = batch_size.min(req.options.max_surge as usize).max(1);
        }
        Ok(Planner {
            req,
            max_unavailable: sim.cordoned(),
            sim,
            checker,
            steps: Vec::new(),
            ids: HashSet::new(),
            versions,
            hops,
            target,
            hop: None,
            drains_at: Vec::new(),
            drains: HashMap::new(),
            positions: req.options.strategy == Strategy::InPlace,
            replaced: 0,
            batch_size,
            zone_totals,
            kubeadm_checked: Vec::new(),
        })
    }

    /// The batch of these nodes (taken from the simulated state, so positions are fresh).
    fn batch_of(&self, nodes: &[&Node]) -> Batch {
        let members = nodes
            .iter()
            .map(|n| {
                let at = self.sim.position(&n.name).unwrap_or(usize::MAX);
                (n.name.clone(), n.os.family, at)
            })
            .collect::<Members>();
        let known = members.iter().all(|m| m.2 != usize::MAX);
        Batch::members(members, self.positions && known)
    }

    fn opts(&self) -> &super::PlanOptions {
        &self.req.options
    }

    /// The control-plane node called `name`.
    fn node(&self, name: &NodeName) -> Result<&Node, PlanError> {
        self.sim
            .control_plane()
            .iter()
            .find(|n| n.name == *name)
            .ok_or_else(|| {
                PlanError::Internal(super::SimulationError {
                    step: "(planning)".into(),
                    message: format!("node {name} vanished"),
                })
            })
    }

    /// The version a kubelet passes through at `minor` on its way to a newer one: the latest
    /// patch released by the plan's date (not the hops' versions, which depend on where the
    /// plan started).
    fn version_for(&mut self, minor: Minor) -> Result<KubeVersion, PlanError> {
        if let Some(v) = self.versions.get(&minor) {
            return Ok(v.clone());
        }
        let v = self
            .req
            .calendar
            .latest_patch_on(minor, self.req.date)
            .ok_or(TargetError::NoRelease {
                minor,
                date: self.req.date,
            })?;
        self.versions.insert(minor, v.clone());
        Ok(v)
    }

    // ---- steps ---------------------------------------------------------------------------

    fn push(
        &mut self,
        phase: Phase,
        batch: &Batch,
        action: Action,
        goal: &KubeVersion,
        reason: impl Into<String>,
    ) -> Result<(), PlanError> {
        let id = self.id(goal, &batch.nodes, &action);
        let commands = if action.executor() == Executor::Node {
            batch
                .oses
                .iter()
                .filter_map(|os| node_commands(&action, *os))
                .collect()
        } else {
            Vec::new()
        };
        let (pre, post) = action.facts(goal);
        let step = Step {
            id,
            hop: self.hop,
            phase,
            nodes: batch.nodes.clone(),
            commands,
            depends_on: self
                .steps
                .last()
                .map(|s| s.id.clone())
                .into_iter()
                .collect(),
            idempotent: !matches!(action, Action::ProvisionNodes { .. }),
            point_of_no_return: matches!(action, Action::KubeadmUpgradeApply { .. }),
            pre,
            post,
            duration_seconds: self.opts().durations.of(&action),
            reason: reason.into(),
            action,
        };
        if step.action.change().is_modelled() {
            let (effect, at) = match batch.at.as_deref() {
                Some(at) => (self.sim.apply_at(&step, at)?, Cow::Borrowed(at)),
                None => {
                    let before = self.sim.len();
                    let effect = self.sim.apply(&step)?;
                    // The positions of the nodes the step changed or added, now.
                    let at: Vec<usize> = match step.action {
                        Action::ProvisionNodes { .. } => (before..self.sim.len()).collect(),
                        Action::RemoveNodes => Vec::new(),
                        _ => step
                            .nodes
                            .iter()
                            .filter_map(|n| self.sim.position(n))
                            .collect(),
                    };
                    (effect, Cow::Owned(at))
                }
            };
            if let Err(v) = self.checker.after(&self.sim, effect, &at) {
                return Err(self.blocked(&step, v));
            }
        }
        match &step.action {
            Action::Drain { .. } => match batch.at.as_deref() {
                Some(at) => {
                    for &i in at {
                        if self.drains_at.len() <= i {
                            self.drains_at.resize(i + 1, 0);
                        }
                        self.drains_at[i] += 1;
                    }
                }
                None => {
                    for n in &step.nodes {
                        *self.drains.entry(n.clone()).or_default() += 1;
                    }
                }
            },
            Action::RemoveNodes => self.replaced += step.nodes.len(),
            _ => {}
        }
        self.max_unavailable = self.max_unavailable.max(self.sim.cordoned());
        self.ids.insert(step.id.clone());
        self.steps.push(step);
        Ok(())
    }

    fn id(&self, goal: &KubeVersion, nodes: &NodeList, action: &Action) -> StepId {
        let subject = match nodes.as_slice() {
            [] => "cluster".to_string(),
            [one] => one.to_string(),
            [first, rest @ ..] => format!("{first}+{}", rest.len()),
        };
        let base = format!("{goal}/{subject}/{}", action.verb());
        let mut id = StepId(base.clone());
        let mut k = 2;
        while self.ids.contains(&id) {
            id = StepId(format!("{base}#{k}"));
            k += 1;
        }
        id
    }

    fn blocked(&self, step: &Step, v: Box<Violation>) -> PlanError {
        let in_step = v
            .node
            .as_ref()
            .is_some_and(|n| step.nodes.iter().any(|s| s == n));
        let hint = match &step.action {
            Action::KubeadmUpgradeApply { version, addons, .. }
                if v.component == Component::KubeProxy && addons.kube_proxy.is_some() =>
            {
                Some(format!(
                    "kubeadm {} upgrades kube-proxy during `kubeadm upgrade apply`, while the other API servers are still older (kubeadm waits for the last control-plane node only since 1.28); no kubeadm plan for this hop keeps kube-proxy within the policy",
                    version.minor()
                ))
            }
            _ if v.component == Component::CloudControllerManager => Some(
                "kubeadm does not upgrade the cloud-controller-manager: upgrade it with your provider's tooling in step with the control plane".into(),
            ),
            _ if !in_step && v.node.is_some() => Some(format!(
                "this step leaves node {} outside the policy; upgrade that node first, or plan with a policy that allows the skew",
                v.node.as_ref().map(NodeName::as_str).unwrap_or_default()
            )),
            _ => None,
        };
        PlanError::Blocked {
            step: step.id.clone(),
            what: step.action.describe(),
            nodes: step.nodes.iter().take(10).cloned().collect(),
            violation: v,
            hint,
        }
    }

    /// Switches the batch's repository when it points elsewhere (`repo`, updated), then
    /// installs `packages` at `version`.
    #[allow(clippy::too_many_arguments)]
    fn packages(
        &mut self,
        phase: Phase,
        batch: &Batch,
        repo: &mut Minor,
        packages: &[Package],
        version: &KubeVersion,
        goal: &KubeVersion,
        reason: String,
    ) -> Result<(), PlanError> {
        let minor = version.minor();
        if *repo != minor {
            self.push(
                phase,
                batch,
                Action::SwitchRepository { minor },
                goal,
                format!(
                    "pkgs.k8s.io has one repository per minor: {version} comes from the v{minor} repository"
                ),
            )?;
            *repo = minor;
        }
        self.push(
            phase,
            batch,
            Action::InstallPackages {
                packages: packages.to_vec(),
                version: version.clone(),
            },
            goal,
            reason,
        )
    }

    // ---- the plan ------------------------------------------------------------------------

    fn run(&mut self, status: String) -> Result<(), PlanError> {
        let target = self.target.clone();
        let cp: Vec<NodeName> = self.control_plane_names();
        let mut checks = vec![
            PreflightCheck::NodesReady,
            PreflightCheck::PolicyHolds {
                policy: self.req.policy.name().to_string(),
            },
            PreflightCheck::TargetSupported {
                version: target.clone(),
                status,
            },
        ];
        let applied: Vec<KubeVersion> = self
            .hops
            .iter()
            .filter(|h| h.kind != HopKind::Resume)
            .map(|h| h.to.clone())
            .collect();
        if !applied.is_empty() {
            checks.push(PreflightCheck::KubeadmVerdict { versions: applied });
        }
        self.push(
            Phase::Preflight,
            &Batch::none(),
            Action::Preflight { checks },
            &target,
            "nothing changes before these checks pass",
        )?;
        if let Some(dir) = self.opts().backup_dir.clone()
            && !self.hops.is_empty()
        {
            let from = self.sim.summary().apiserver_min.unwrap_or(target.clone());
            let nodes: Vec<Node> = cp
                .iter()
                .map(|n| self.node(n).cloned())
                .collect::<Result<_, _>>()?;
            let refs: Vec<&Node> = nodes.iter().collect();
            self.push(
                Phase::Preflight,
                &self.batch_of(&refs),
                Action::BackupConfig {
                    path: format!("{}/etc-kubernetes-{from}", dir.trim_end_matches('/')),
                },
                &target,
                "a copy of each control-plane node's configuration before anything changes",
            )?;
        }
        self.finish_kube_proxy_rollout()?;
        for h in 0..self.hops.len() {
            self.hop = Some(h);
            self.run_hop(h)?;
        }
        self.hop = None;
        // Whatever is left: the add-ons, kubectl, the control-plane kubelets, every worker.
        self.ensure_addons(&target)?;
        self.control_plane_kubelets(&target)?;
        self.ensure_kubectl(&target, &target, false)?;
        let deferred = self.opts().pacing() == WorkerPacing::Deferred;
        self.workers_to(&target, |_| true, Why::Final { deferred })?;
        self.push(
            Phase::Verify,
            &Batch::none(),
            Action::Verify {
                version: target.clone(),
            },
            &target,
            format!("the plan ends when every node runs {target} and the policy holds"),
        )
    }

    /// Nodes whose kube-proxy pod runs another version than the DaemonSet (a rollout under
    /// way): wait for the rollout before anything moves.
    fn finish_kube_proxy_rollout(&mut self) -> Result<(), PlanError> {
        if !self
            .sim
            .present()
            .any(|(_, c)| c.rep.versions.kube_proxy.is_some())
        {
            return Ok(());
        }
        let state = self.sim.shell();
        let v = state.addons.kube_proxy.clone();
        let shown = v
            .as_ref()
            .map_or_else(|| "version unknown".into(), ToString::to_string);
        let timeout_seconds = self.opts().ready_timeout_seconds;
        self.push(
            Phase::Preflight,
            &Batch::none(),
            Action::WaitKubeProxyRollout {
                version: v,
                timeout_seconds,
            },
            &self.target.clone(),
            format!(
                "some kube-proxy pods still run another version than the DaemonSet ({shown}): the rollout finishes before anything moves"
            ),
        )
    }

    fn control_plane_names(&self) -> Vec<NodeName> {
        let mut names: Vec<NodeName> = self
            .sim
            .control_plane()
            .iter()
            .map(|n| n.name.clone())
            .collect();
        names.sort();
        names
    }

    fn run_hop(&mut self, h: usize) -> Result<(), PlanError> {
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
        for (i, name) in pending.iter().enumerate() {
            let node = self.node(name)?.clone();
            let batch = self.batch_of(&[&node]);
            let last = i + 1 == pending.len();
            if node.versions.kubeadm.as_ref().map(KubeVersion::release) != Some(v.clone()) {
                let mut repo = Head::of(&node, node.unschedulable).repo();
                self.packages(
                    Phase::ControlPlane,
                    &batch,
                    &mut repo,
                    &[Package::Kubeadm],
                    &v,
                    &v,
                    format!("kubeadm {v} must be on the node before it can move the control plane to {v}"),
                )?;
            }
            let etcd = self.etcd_for(&node, &v);
            if i == 0 && !started {
                self.push(
                    Phase::ControlPlane,
                    &batch,
                    Action::CheckKubeadmVersion { version: v.clone() },
                    &v,
                    format!("the kubeadm that runs next must be {v}"),
                )?;
                if let (Some(dir), EtcdTopology::Stacked) = (
                    self.opts().etcd_snapshot_dir.clone(),
                    &self.sim.shell().etcd,
                ) {
                    self.push(
                        Phase::ControlPlane,
                        &batch,
                        Action::EtcdSnapshot {
                            path: format!("{}/etcd-before-{v}.db", dir.trim_end_matches('/')),
                        },
                        &v,
                        "an etcd snapshot before the point of no return",
                    )?;
                }
                self.push(
                    Phase::ControlPlane,
                    &batch,
                    Action::KubeadmUpgradePlan { version: v.clone() },
                    &v,
                    format!("kubeadm's own pre-flight checks for {v}; changes nothing"),
                )?;
                self.kubeadm_verdict(&v)?;
                let addons = if hop.addons_at == AddonsAt::Apply {
                    self.addons_for(&v)
                } else {
                    AddonVersions::default()
                };
                let mut reason = format!(
                    "the first control-plane node ({name}) runs `kubeadm upgrade apply`: one minor per hop, since kubeadm refuses to skip minors; from here a downgrade is not supported"
                );
                if !addons.is_empty() {
                    reason.push_str(if cp.len() > 1 {
                        "; kubeadm before 1.28 moves kube-proxy and CoreDNS here"
                    } else {
                        "; as the only control-plane node it also moves kube-proxy and CoreDNS"
                    });
                }
                self.push(
                    Phase::ControlPlane,
                    &batch,
                    Action::KubeadmUpgradeApply {
                        version: v.clone(),
                        etcd,
                        addons,
                    },
                    &v,
                    reason,
                )?;
            } else {
                let addons = if last && hop.addons_at == AddonsAt::LastControlPlaneNode {
                    self.addons_for(&v)
                } else {
                    AddonVersions::default()
                };
                let mut reason = "the other control-plane nodes follow with `kubeadm upgrade node`, one at a time (API servers may be one minor apart meanwhile)".to_string();
                if !addons.is_empty() {
                    reason.push_str("; the last one also moves kube-proxy and CoreDNS (kubeadm 1.28 and later wait for every control-plane node)");
                }
                self.push(
                    Phase::ControlPlane,
                    &batch,
                    Action::KubeadmUpgradeNode {
                        control_plane: Some(v.clone()),
                        etcd,
                        addons,
                    },
                    &v,
                    reason,
                )?;
            }
        }
        self.ensure_addons(&v)?;
        self.control_plane_kubelets(&v)
    }

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
    fn addons_for(&self, v: &KubeVersion) -> AddonVersions {
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
    fn ensure_addons(&mut self, v: &KubeVersion) -> Result<(), PlanError> {
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
            },
            v,
            "the add-ons lag the control plane: `kubeadm upgrade node` on a control-plane node moves kube-proxy and CoreDNS once every control-plane node runs the new version",
        )
    }

    /// Upgrades the operators' kubectl to `v` when it is older than `below` (kubectl must stay
    /// within one minor of every API server): before a hop when it would fall out of range,
    /// and at the end.
    fn ensure_kubectl(
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

    /// Control-plane kubelets, one node at a time, once every API server runs `v`.
    fn control_plane_kubelets(&mut self, v: &KubeVersion) -> Result<(), PlanError> {
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
        Ok(())
    }

    // ---- workers -------------------------------------------------------------------------

    /// Before the control plane moves to `hop.to`: finish cordoned workers; then, kubeadm's
    /// way, bring every worker to the control plane's version, or (deferred) only those the
    /// policy would no longer allow once it has moved.
    ///
    /// Deciding this before a hop (rather than after the previous one) keeps the decision a
    /// function of the state alone, so that planning again mid-way agrees with the plan.
    fn before_hop(&mut self, hop: &Hop) -> Result<(), PlanError> {
        let Some(now) = self.sim.summary().apiserver_min.map(|v| v.release()) else {
            return Ok(());
        };
        // Add-ons and control-plane kubelets left behind (or cordoned mid-window) catch up
        // first.
        self.ensure_addons(&now)?;
        self.control_plane_kubelets(&now)?;
        if self.opts().pacing() == WorkerPacing::EveryHop {
            return self.workers_to(
                &now,
                |_| true,
                Why::EveryHop {
                    next: hop.to.clone(),
                },
            );
        }
        let (failing, rule) = self.probe(hop);
        self.workers_to(
            &now,
            |k| failing[k as usize],
            Why::CatchUp {
                next: hop.to.clone(),
                rule: rule.unwrap_or_else(|| "in flight".to_string()),
            },
        )
    }

    /// The classes of workers that would break the policy while or after the control plane
    /// moves to `hop.to` (indexed by class), and the rule the first of those workers by name
    /// would break.
    fn probe(&self, hop: &Hop) -> (Vec<bool>, Option<String>) {
        let v = &hop.to;
        let state = self.sim.shell();
        let mut cp: Vec<Node> = self.sim.control_plane().to_vec();
        cp.sort_by(|a, b| a.name.cmp(&b.name));
        let moved = self.addons_for(v);
        let mut addons_moved = state.addons.clone();
        if let Some(kp) = &moved.kube_proxy {
            addons_moved.kube_proxy = Some(kp.clone());
        }
        if let Some(dns) = &moved.coredns {
            addons_moved.coredns = Some(dns.clone());
        }
        let mut mid = ClusterState {
            name: None,
            etcd: state.etcd.clone(),
            addons: if hop.addons_at == AddonsAt::Apply {
                addons_moved.clone()
            } else {
                state.addons.clone()
            },
            kubectl: state.kubectl.clone(),
            nodes: cp.clone().into(),
        };
        if let Some(first) = mid.nodes.first_mut() {
            first.versions.kube_apiserver = Some(v.clone());
        }
        let mut end = ClusterState {
            addons: addons_moved,
            kubectl: state.kubectl.as_ref().map(|k| k.clone().max(v.clone())),
            nodes: cp.into(),
            ..mid.clone()
        };
        for n in &mut end.nodes {
            n.versions.kube_apiserver = Some(v.clone());
        }
        let probes = [(Summary::of(&mid), &mid), (Summary::of(&end), &end)];
        let fleet = &self.sim;
        let mut rules: Vec<Option<String>> = vec![None; fleet.class_count()];
        let mut buf = Vec::new();
        for (k, class) in fleet.present() {
            if class.rep.is_control_plane() {
                continue;
            }
            for (summary, st) in &probes {
                let cx = Context { state: st, summary };
                self.req.policy.check_node(&cx, &class.rep, &mut buf);
                let bad = buf.iter().find(|x| x.severity == Severity::Error);
                if let Some(bad) = bad {
                    rules[k as usize] = Some(bad.rule.to_string());
                }
                buf.clear();
                if rules[k as usize].is_some() {
                    break;
                }
            }
        }
        let first = (0..fleet.len())
            .filter(|&i| rules[fleet.class_of(i) as usize].is_some())
            .min_by(|&a, &b| fleet.name(a).cmp(fleet.name(b)));
        let rule = first.and_then(|i| rules[fleet.class_of(i) as usize].clone());
        (rules.iter().map(Option::is_some).collect(), rule)
    }

    /// Moves the workers `select` picks (and every cordoned one) that run older than `goal`
    /// to `goal`, group by group (nodes that need the same steps), in batches.
    fn workers_to(
        &mut self,
        goal: &KubeVersion,
        select: impl Fn(u32) -> bool,
        why: Why,
    ) -> Result<(), PlanError> {
        let replace = self.opts().strategy == Strategy::Replace;
        let max_per_zone = self.opts().max_per_zone;
        let totals = &self.zone_totals;
        let fleet = &self.sim;
        let zone_names = fleet.zone_names();
        let mut work: Vec<(Head, Vec<Batch>)> = Vec::new();
        {
            // Replacements at `goal` that exist already: nodes whose name carries its suffix
            // (none, unless a run was interrupted mid-way).
            let suffix = replacement_suffix(goal);
            let names: HashSet<&str> = if replace {
                (0..fleet.len())
                    .map(|i| fleet.name(i).as_str())
                    .filter(|n| n.contains(suffix.as_str()))
                    .collect()
            } else {
                HashSet::new()
            };
            let mut groups: Vec<(Head, Vec<Worker>)> = Vec::new();
            let mut index: HashMap<Head, usize> = HashMap::new();
            // Per class: whether its kubelet is behind `goal` and picked (None: no kubelet),
            // and (in place) the group of its nodes, cordoned or not.
            const UNSEEN: u8 = 0;
            const NO_KUBELET: u8 = 1;
            const PICKED: u8 = 2;
            const BEHIND: u8 = 3;
            const CURRENT: u8 = 4;
            let mut verdict = vec![UNSEEN; fleet.class_count()];
            let mut group_of = vec![[usize::MAX; 2]; fleet.class_count()];
            let mut cp = fleet.control_plane_positions().iter().copied().peekable();
            for at in 0..fleet.len() {
                // Control-plane positions come in order: no need to look at the node's roles.
                if cp.peek() == Some(&at) {
                    cp.next();
                    continue;
                }
                let k = fleet.class_of(at);
                let class = fleet.class(k);
                let node = &class.rep;
                if verdict[k as usize] == UNSEEN {
                    verdict[k as usize] = match node.kubelet() {
                        None => NO_KUBELET,
                        Some(kubelet) if kubelet.release() < *goal => {
                            if select(k) {
                                PICKED
                            } else {
                                BEHIND
                            }
                        }
                        Some(_) => CURRENT,
                    };
                }
                let v = verdict[k as usize];
                if v == NO_KUBELET {
                    continue;
                }
                let behind = v != CURRENT;
                let cordoned = fleet.is_cordoned(at);
                let name = fleet.name(at);
                let has_replacement = replace
                    && !names.is_empty()
                    && replacement_with(name, &suffix).is_some_and(|r| names.contains(r.as_str()));
                if !(cordoned || has_replacement || v == PICKED) {
                    continue;
                }
                if replace && !behind && !cordoned {
                    continue;
                }
                let item = Item {
                    zone: class.zone,
                    node: (at, node.os.family),
                };
                if !replace && group_of[k as usize][usize::from(cordoned)] != usize::MAX {
                    groups[group_of[k as usize][usize::from(cordoned)]]
                        .1
                        .push(item);
                    continue;
                }
                let head = if replace {
                    Head {
                        progress: u8::from(!cordoned),
                        cordoned,
                        has_replacement,
                        kubelet: None,
                        kubeadm: None,
                    }
                } else {
                    let mut head = Head::of(node, cordoned);
                    if !head.cordoned && head.kubeadm.as_ref().is_some_and(|k| k >= goal) {
                        head.progress = 1;
                    }
                    head
                };
                let g = *index.entry(head.clone()).or_insert_with(|| {
                    groups.push((head, Vec::new()));
                    groups.len() - 1
                });
                if !replace {
                    group_of[k as usize][usize::from(cordoned)] = g;
                }
                groups[g].1.push(item);
            }
            groups.sort_by(|a, b| a.0.order().cmp(&b.0.order()));
            let cap = |z: u32| match max_per_zone {
                Some(b) => b.of(totals
                    .get(zone_names.get(z as usize).unwrap_or(&None))
                    .copied()
                    .unwrap_or(1)),
                None => usize::MAX,
            };
            for (head, mut items) in groups {
                // The state is in zone order, unless replacements moved nodes.
                if replace {
                    batch::sort_by_zone(&mut items, zone_names, |a, b| {
                        fleet.name(a.0).cmp(fleet.name(b.0))
                    });
                }
                // Names now: replacing moves nodes as the windows go.
                let batches = batch::batches(items, self.batch_size, cap)
                    .into_iter()
                    .map(|members| Batch::at(fleet, members, self.positions))
                    .collect();
                work.push((head, batches));
            }
        }
        let count: usize = work.iter().map(|w| w.1.len()).sum();
        let mut i = 0;
        for (head, batches) in work {
            for batch in batches {
                i += 1;
                let why = self.why_text(&why, goal, i, count, batch.nodes.len());
                if replace {
                    self.replace_window(&batch, &head, goal, why)?;
                } else {
                    self.in_place_window(Phase::Workers, &batch, head.clone(), goal, false, why)?;
                }
            }
        }
        Ok(())
    }

    fn why_text(&self, why: &Why, goal: &KubeVersion, i: usize, n: usize, size: usize) -> String {
        let what = match why {
            Why::EveryHop { next } => format!(
                "workers follow the control plane to {goal} before it moves on to {next}, one minor at a time (kubeadm's way)"
            ),
            Why::CatchUp { next, rule } if rule != "in flight" => format!(
                "the policy would not allow these kubelets once the control plane moves to {next} ({rule}): they catch up to {goal} first"
            ),
            Why::CatchUp { .. } => {
                format!("these nodes were cordoned mid-upgrade: they finish at {goal} first")
            }
            Why::Final { deferred: true } => format!(
                "workers move to {goal}, deferred as long as the policy allowed (fewest drains)"
            ),
            Why::Final { deferred: false } => format!("workers move to {goal}"),
        };
        format!(
            "{what}; batch {i} of {n} ({size} node{} at once)",
            if size == 1 { "" } else { "s" }
        )
    }

    /// One drain window: cordon, drain, one kubelet minor at a time up to `goal` (kubeadm
    /// first on workers), uncordon. All nodes of `batch` are like `head`.
    fn in_place_window(
        &mut self,
        phase: Phase,
        batch: &Batch,
        head: Head,
        goal: &KubeVersion,
        control_plane: bool,
        why: String,
    ) -> Result<(), PlanError> {
        if batch.nodes.is_empty() {
            return Ok(());
        }
        let mut repo = head.repo();
        let kubeadm_behind = !control_plane && head.kubeadm.as_ref().is_none_or(|k| k < goal);
        let mut seq = Vec::new();
        if let Some(k) = &head.kubelet
            && k < goal
        {
            let mut m = k.minor();
            while m < goal.minor() {
                m = m.next();
                seq.push(if m == goal.minor() {
                    goal.clone()
                } else {
                    self.version_for(m)?
                });
            }
            if k.minor() == goal.minor() {
                seq.push(goal.clone());
            }
        }
        let worker = !control_plane;
        // On workers `kubeadm upgrade node` writes the kubelet configuration; it runs (again,
        // it is idempotent) whenever the kubelet is to reach `goal`, since nothing in the
        // cluster state shows whether it already did.
        let mut configured = !worker;
        // kubeadm's order for one minor: kubeadm and `kubeadm upgrade node` before the drain
        // (a shorter window). Across several minors kubeadm comes last: an older kubelet must
        // not restart with a newer kubelet configuration.
        if worker && !head.cordoned && seq.len() == 1 {
            self.worker_kubeadm(batch, &mut repo, goal, kubeadm_behind)?;
            configured = true;
        }
        if !head.cordoned {
            self.push(phase, batch, Action::Cordon, goal, why)?;
        }
        if !seq.is_empty() || !configured {
            self.push(
                phase,
                batch,
                Action::Drain {
                    options: self.opts().drain.clone(),
                },
                goal,
                "workloads leave the node before its kubelet changes",
            )?;
        }
        if head.cordoned
            && let Some(k) = &head.kubelet
        {
            // An interrupted window: make sure whatever was installed runs.
            self.push(
                    phase,
                    batch,
                    Action::RestartKubelet { version: k.clone() },
                    goal,
                    format!("the node was left cordoned mid-upgrade: the kubelet installed ({k}) runs once restarted"),
                )?;
            self.push(
                phase,
                batch,
                Action::WaitReady {
                    version: k.clone(),
                    timeout_seconds: self.opts().ready_timeout_seconds,
                },
                goal,
                format!("nothing else changes until the node is Ready and reports {k}"),
            )?;
        }
        for v in &seq {
            let last = v == goal;
            if last && !configured {
                self.worker_kubeadm(batch, &mut repo, goal, kubeadm_behind)?;
                configured = true;
            }
            let reason = if last {
                if control_plane {
                    format!(
                        "the kubelet may move to {} now that every API server runs {goal}",
                        goal.minor()
                    )
                } else {
                    format!("the kubelet follows the control plane to {goal}")
                }
            } else {
                format!("one minor at a time: the kubelet passes through {v} on its way to {goal}")
            };
            self.packages(phase, batch, &mut repo, &KUBELET_PACKAGES, v, goal, reason)?;
            self.push(
                phase,
                batch,
                Action::RestartKubelet { version: v.clone() },
                goal,
                format!("the kubelet runs {v} once restarted"),
            )?;
            self.push(
                phase,
                batch,
                Action::WaitReady {
                    version: v.clone(),
                    timeout_seconds: self.opts().ready_timeout_seconds,
                },
                goal,
                format!("nothing else changes until the node is Ready and reports {v}"),
            )?;
        }
        if !configured {
            self.worker_kubeadm(batch, &mut repo, goal, kubeadm_behind)?;
        }
        self.push(
            phase,
            batch,
            Action::Uncordon,
            goal,
            format!("the node runs {goal} and is Ready: workloads may return"),
        )
    }

    fn worker_kubeadm(
        &mut self,
        batch: &Batch,
        repo: &mut Minor,
        goal: &KubeVersion,
        install: bool,
    ) -> Result<(), PlanError> {
        if install {
            self.packages(
                Phase::Workers,
                batch,
                repo,
                &[Package::Kubeadm],
                goal,
                goal,
                format!("kubeadm {goal} writes the kubelet configuration of {goal} next"),
            )?;
        }
        self.push(
            Phase::Workers,
            batch,
            Action::KubeadmUpgradeNode {
                control_plane: None,
                etcd: None,
                addons: AddonVersions::default(),
            },
            goal,
            "on a worker `kubeadm upgrade node` writes the new kubelet configuration (one minor per run)",
        )
    }

    /// Replace: new nodes at `goal` join first (max surge), then the old ones are cordoned,
    /// drained and removed.
    fn replace_window(
        &mut self,
        old: &Batch,
        head: &Head,
        goal: &KubeVersion,
        why: String,
    ) -> Result<(), PlanError> {
        let mut new_names = Vec::new();
        let mut templates = Vec::new();
        let suffix = replacement_suffix(goal);
        for n in &old.nodes {
            let name = replacement_with(n, &suffix).ok_or_else(|| PlanError::InvalidOption {
                option: "strategy",
                message: format!(
                    "no valid name for a replacement of node {n} (names are limited to 253 characters)"
                ),
            })?;
            if self.sim.position(&name).is_none() {
                new_names.push(name);
                templates.push(n.clone());
            }
        }
        if !new_names.is_empty() {
            let fresh = Batch {
                nodes: NodeList::new(new_names),
                oses: old.oses.clone(),
                at: None,
            };
            self.push(
                Phase::Workers,
                &fresh,
                Action::ProvisionNodes {
                    version: goal.clone(),
                    templates: NodeList::new(templates),
                },
                goal,
                format!(
                    "{why}; new nodes join at the control plane's version before the old ones leave"
                ),
            )?;
        }
        if !head.cordoned {
            self.push(
                Phase::Workers,
                old,
                Action::Cordon,
                goal,
                "no new workloads on the nodes being replaced",
            )?;
        }
        self.push(
            Phase::Workers,
            old,
            Action::Drain {
                options: self.opts().drain.clone(),
            },
            goal,
            "workloads move to the new nodes",
        )?;
        self.push(
            Phase::Workers,
            old,
            Action::RemoveNodes,
            goal,
            "the drained nodes leave the cluster",
        )
    }

    // ---- the result ----------------------------------------------------------------------

    fn finish(self, start: &ClusterState, from: KubeVersion) -> Result<UpgradePlan, PlanError> {
        if self.checker.has_tolerated() {
            let errors = self.req.policy.errors(&self.sim.to_state());
            if !errors.is_empty() {
                return Err(PlanError::EndsInvalid { violations: errors });
            }
        }
        let zone_key = &self.req.options.zone_key;
        let plan_node = |n: &Node, provisioned: bool, zone: Option<String>| PlanNode {
            name: n.name.clone(),
            role: if n.is_control_plane() {
                Role::ControlPlane
            } else {
                Role::Worker
            },
            os: n.os.family,
            zone,
            kubelet: (!provisioned).then(|| n.kubelet().cloned()).flatten(),
            provisioned,
            removed: false,
        };
        // The nodes of the start by name; their zones as the model found them.
        let mut order: Vec<usize> = (0..start.nodes.len()).collect();
        let name = |i: &usize| &start.nodes[*i].name;
        // Strictly ascending names need neither sorting nor removing repeats.
        if !order.is_sorted_by(|a, b| name(a) < name(b)) {
            order.sort_by(|a, b| name(a).cmp(name(b)));
            order.dedup_by(|a, b| name(a) == name(b));
        }
        let mut nodes: Vec<PlanNode> = order
            .iter()
            .map(|&i| plan_node(&start.nodes[i], false, self.sim.start_zone(i).cloned()))
            .collect();
        let mut removed: HashSet<&NodeName> = HashSet::new();
        let mut provisioned = Vec::new();
        for s in &self.steps {
            match &s.action {
                Action::ProvisionNodes { templates, .. } => {
                    for (name, t) in s.nodes.iter().zip(templates) {
                        provisioned.push((name, t));
                    }
                }
                Action::RemoveNodes => removed.extend(s.nodes.iter()),
                _ => {}
            }
        }
        if !provisioned.is_empty() {
            let by_name: HashMap<&str, &Node> =
                start.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
            for (name, t) in provisioned {
                let now = by_name
                    .get(t.as_str())
                    .map(|&n| Cow::Borrowed(n))
                    .or_else(|| self.sim.node(t).map(Cow::Owned));
                let mut p = match now {
                    Some(t) => plan_node(&t, true, zone(&t, zone_key)),
                    None => PlanNode {
                        name: name.clone(),
                        role: Role::Worker,
                        os: OsFamily::default(),
                        zone: None,
                        kubelet: None,
                        provisioned: true,
                        removed: false,
                    },
                };
                p.name = name.clone();
                nodes.push(p);
            }
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            nodes.dedup_by(|a, b| a.name == b.name);
        }
        if !removed.is_empty() {
            for n in &mut nodes {
                n.removed = removed.contains(&n.name);
            }
        }
        let estimate = Estimate {
            total_seconds: self.steps.iter().map(|s| s.duration_seconds).sum(),
            steps: self.steps.len(),
            drains: self.drains.values().sum::<usize>() + self.drains_at.iter().sum::<usize>(),
            max_drains_per_node: self
                .drains
                .values()
                .chain(&self.drains_at)
                .copied()
                .max()
                .unwrap_or(0),
            max_unavailable: self.max_unavailable,
            nodes_replaced: self.replaced,
        };
        let notes = notes(start, &self);
        let components = components(start, &self.sim);
        let max_parallel = self.steps.iter().map(|s| s.nodes.len()).max().unwrap_or(0);
        Ok(UpgradePlan {
            api_version: API_VERSION.to_string(),
            kind: KIND.to_string(),
            cluster: start.name.clone(),
            date: self.req.date,
            policy: self.req.policy.name().to_string(),
            from,
            target: self.target.clone(),
            options: self.req.options.clone(),
            hops: self.hops.clone(),
            components,
            nodes,
            max_parallel,
            steps: self.steps,
            estimate,
            notes,
            warnings: Vec::new(),
        })
    }
}

fn zone(n: &Node, key: &str) -> Option<String> {
    n.labels.get(key).cloned()
}

/// The name without a replacement suffix (`-v1-30-10`).
pub(crate) fn base_name(name: &NodeName) -> String {
    let s = name.as_str();
    let (first, rest) = s.split_once('.').map_or((s, ""), |(a, b)| (a, b));
    let base = strip_version_suffix(first);
    if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}.{rest}")
    }
}

fn strip_version_suffix(label: &str) -> &str {
    // `-v` followed by at least three dash-separated numbers, at the end.
    if let Some(i) = label.rfind("-v") {
        let tail = &label[i + 2..];
        let parts: Vec<&str> = tail.split('-').collect();
        if parts.len() >= 3
            && parts[..3]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            && parts[3..]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()))
            && i > 0
        {
            return &label[..i];
        }
    }
    label
}

/// The name of the node that replaces `old` at `version`: the first DNS label gets a
/// `-v1-30-10` suffix (an earlier suffix is replaced), shortened to fit 63 characters.
#[cfg(test)]
fn replacement_name(old: &NodeName, version: &KubeVersion) -> Option<NodeName> {
    replacement_with(old, &replacement_suffix(version))
}

/// The suffix of replacements at `version` (`-v1-30-10`).
fn replacement_suffix(version: &KubeVersion) -> String {
    format!(
        "-v{}",
        version
            .to_plain_string()
            .replace(['.', '+'], "-")
            .to_ascii_lowercase()
    )
}

/// [`replacement_name`] with the version's suffix made already.
fn replacement_with(old: &NodeName, suffix: &str) -> Option<NodeName> {
    let s = old.as_str();
    let (first, rest) = s.split_once('.').map_or((s, ""), |(a, b)| (a, b));
    let base = strip_version_suffix(first);
    let keep = 63usize.checked_sub(suffix.len())?;
    let base = base[..base.len().min(keep)].trim_end_matches('-');
    let name = if rest.is_empty() {
        format!("{base}{suffix}")
    } else {
        format!("{base}{suffix}.{rest}")
    };
    NodeName::new(&name).ok()
}

/// Counts versions; clusters run few distinct ones, so a short list beats a map.
#[derive(Default)]
struct Tally<'a> {
    seen: Vec<(&'a KubeVersion, usize)>,
    last: usize,
}

impl<'a> Tally<'a> {
    fn add(&mut self, v: &'a KubeVersion, n: usize) {
        if let Some(e) = self.seen.get_mut(self.last)
            && e.0 == v
        {
            e.1 += n;
            return;
        }
        match self.seen.iter().position(|e| e.0 == v) {
            Some(i) => {
                self.seen[i].1 += n;
                self.last = i;
            }
            None => {
                self.seen.push((v, n));
                self.last = self.seen.len() - 1;
            }
        }
    }
    fn into_map(self) -> BTreeMap<KubeVersion, usize> {
        let mut m = BTreeMap::new();
        for (v, n) in self.seen {
            *m.entry(v.clone()).or_default() += n;
        }
        m
    }
}

/// The versions of component `c` in a cluster with these fields and nodes (each with how many
/// nodes are like it).
fn count<'a>(
    state: &'a ClusterState,
    nodes: impl Iterator<Item = (&'a Node, usize)>,
    c: Component,
) -> BTreeMap<KubeVersion, usize> {
    let mut m = Tally::default();
    match c {
        Component::CoreDns => {
            if let Some(v) = &state.addons.coredns {
                m.add(v, 1);
            }
        }
        Component::KubeProxy => {
            let mut any = false;
            for (node, n) in nodes {
                if let Some(v) = &node.versions.kube_proxy {
                    m.add(v, n);
                    any = true;
                }
            }
            if !any && let Some(v) = &state.addons.kube_proxy {
                m.add(v, 1);
            }
        }
        Component::Etcd if !matches!(state.etcd, EtcdTopology::Stacked) => {
            if let Some(v) = state.etcd_version() {
                m.add(v, 1);
            }
        }
        _ => {
            for (node, n) in nodes {
                if let Some(v) = node.versions.get(c) {
                    m.add(v, n);
                }
            }
        }
    }
    m.into_map()
}

fn components(start: &ClusterState, end: &Fleet) -> Vec<ComponentChange> {
    Component::ALL
        .into_iter()
        .filter_map(|c| {
            let before = count(start, end.start(), c);
            if before.is_empty() {
                return None;
            }
            let after = count(
                end.shell(),
                end.present().map(|(_, k)| (&k.rep, k.count)),
                c,
            );
            let target = (after != before)
                .then(|| after.keys().next_back().cloned())
                .flatten();
            Some(ComponentChange {
                component: c,
                current: before
                    .into_iter()
                    .map(|(version, count)| VersionCount { version, count })
                    .collect(),
                target,
            })
        })
        .collect()
}

fn notes(start: &ClusterState, p: &Planner<'_, '_>) -> Vec<String> {
    let mut notes = Vec::new();
    let has_packages = p.steps.iter().any(|s| {
        matches!(
            s.action,
            Action::InstallPackages { .. } | Action::SwitchRepository { .. }
        )
    });
    if has_packages {
        notes.push("Package commands assume the nodes install Kubernetes from pkgs.k8s.io (the legacy apt.kubernetes.io and yum.kubernetes.io repositories were removed on 2024-03-04) with the apt keyring at /etc/apt/keyrings/kubernetes-apt-keyring.gpg.".to_string());
    }
    // The model's classes at the start say whether any node qualifies; only then are the
    // nodes themselves read (for names).
    let vendor_build = |n: &Node| {
        n.versions
            .iter()
            .any(|(_, v)| v.vendor().is_some() && v.major() == 1)
    };
    let classes = || p.sim.start().map(|(n, _)| n);
    if classes().any(vendor_build) {
        let vendor: Vec<&str> = start
            .nodes
            .iter()
            .filter(|n| vendor_build(n))
            .map(|n| n.name.as_str())
            .take(5)
            .collect();
        notes.push(format!(
            "Some nodes run vendor builds (for example {}): the commands install upstream packages, which is only right for self-managed kubeadm clusters; managed offerings upgrade through their provider.",
            vendor.join(", ")
        ));
    }
    if let EtcdTopology::External { .. } = start.etcd {
        notes.push("etcd is external: kubeadm neither snapshots nor upgrades it. Back it up, and upgrade it to the version each hop's kubeadm ships, with your etcd tooling.".to_string());
    }
    if p.sim.start_cordoned() > 0 {
        let cordoned: Vec<&str> = start
            .nodes
            .iter()
            .filter(|n| n.unschedulable)
            .map(|n| n.name.as_str())
            .take(5)
            .collect();
        notes.push(format!(
            "Nodes cordoned now (for example {}) are taken as cordoned by an interrupted upgrade: the plan finishes and uncordons them first.",
            cordoned.join(", ")
        ));
    }
    if classes().any(|n| n.os.family == OsFamily::Other) {
        notes.push("Some nodes have OS family \"other\": their package steps are described, not rendered as commands.".to_string());
    }
    if p.steps.iter().any(|s| s.commands.iter().any(|c| c.manual.is_some()) && matches!(&s.action, Action::InstallPackages { version, .. } if version.minor() < super::packages::FIRST_PACKAGED_MINOR)) {
        notes.push(format!(
            "pkgs.k8s.io has no packages before v{}: steps through older minors need your own repository or mirror.",
            super::packages::FIRST_PACKAGED_MINOR
        ));
    }
    if classes().any(|n| n.versions.cloud_controller_manager.is_some()) {
        notes.push("kubeadm does not upgrade the cloud-controller-manager: keep it in step with the control plane yourself.".to_string());
    }
    if !p.kubeadm_checked.is_empty() {
        notes.push(
            "kubeadm's version policy is checked as kubeadm 1.29 and later decide it.".to_string(),
        );
    }
    if p.checker.has_tolerated() {
        notes.push("The cluster violated the policy at the start; those violations were tolerated until the plan removed them.".to_string());
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacement_names() {
        let v: KubeVersion = "v1.30.10".parse().unwrap();
        let n = |s: &str| NodeName::new(s).unwrap();
        assert_eq!(
            replacement_name(&n("worker-1"), &v).unwrap().as_str(),
            "worker-1-v1-30-10"
        );
        assert_eq!(
            replacement_name(&n("worker-1-v1-29-3"), &v)
                .unwrap()
                .as_str(),
            "worker-1-v1-30-10"
        );
        assert_eq!(
            replacement_name(&n("ip-10-0-2-20.ec2.internal"), &v)
                .unwrap()
                .as_str(),
            "ip-10-0-2-20-v1-30-10.ec2.internal"
        );
        let long = n(&"a".repeat(63));
        let r = replacement_name(&long, &v).unwrap();
        assert_eq!(r.as_str().len(), 63);
        assert!(r.as_str().ends_with("-v1-30-10"));
        assert_eq!(base_name(&n("worker-1-v1-30-10")), "worker-1");
        assert_eq!(base_name(&n("v1-2-3")), "v1-2-3");
    }
}
