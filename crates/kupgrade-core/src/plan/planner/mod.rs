//! The planner: ordering, batching, simulation and incremental checking.
//!
//! Everything is decided from the simulated state alone (no memory of what the plan did
//! except which package repository a node was last pointed at), which is what makes planning
//! again from any intermediate state give the rest of the plan.
//!
//! One file per phase, in the order a plan is made ([`Planner::run`] reads as that list):
//!
//! | file | phase |
//! |---|---|
//! | `mod.rs` | the entry point: options checked, target and hops resolved, the [`Planner`]'s state, the order of the phases |
//! | `preflight.rs` | before anything changes: the pre-flight checks, the configuration backup, a kube-proxy rollout under way |
//! | `control_plane.rs` | each hop: kubeadm on the control-plane nodes (`upgrade apply`, then `upgrade node`), kubeadm's verdict, the add-ons, kubectl, the control-plane kubelets |
//! | `workers.rs` | which workers move when (before a hop, kubeadm's way or as late as the policy and the hop's kubeadm allow; at the end) and why; their batches, one window after another |
//! | `groups.rs` | the workers that move to a goal, grouped by what decides their steps ([`Head`](groups::Head)) |
//! | `in_place.rs` | the in-place window: cordon, drain, the kubelet one minor at a time, uncordon |
//! | `replace.rs` | the replace strategy's window: new nodes join, the old ones are drained and removed |
//! | `names.rs` | the names of replacement nodes |
//! | `prestage.rs` | pre-staging: each window's downloads (and a hop's control-plane image pulls) in steps before it, on a lane of their own |
//! | `steps.rs` | how a step joins the plan: its id and commands, the model takes it, the policy is checked |
//! | `transient.rs` | the windows through which the rule the operator accepted may break (`acceptTransient`) |
//! | `costs.rs` | what the plan costs, counted step by step: drains, nodes out at once, nodes replaced |
//! | `summary.rs` | the finished plan: its nodes, estimate, components table and notes |
//!
//! What an action means (its facts, its change to the model, its commands) is not decided
//! here but in `plan/action.rs`; the phases only choose actions, their order and reasons.
use std::collections::BTreeMap;

use foldhash::{HashMap, HashSet, HashSetExt};

use crate::{ClusterState, KubeVersion, Minor, NodeName};

use super::action::Action;
use super::check::Checker;
use super::fleet::Fleet;
use super::hops;
use super::packages::validate_path;
use super::step::{Phase, Step, StepId};
use crate::readiness::{Demands, DrainModel};

use super::{
    BatchSize, Hop, PlanError, PlanOptions, PlanRequest, Strategy, TargetError, UpgradePlan,
    WorkerPacing,
};

mod auto_batch;
mod control_plane;
mod costs;
mod groups;
mod in_place;
mod names;
mod preflight;
mod prestage;
mod replace;
mod steps;
mod summary;
mod transient;
mod workers;

use costs::Costs;
use names::base_name;
use steps::Batch;
use workers::Why;

/// The plan for `state` that `req` asks for (what [`PlanRequest::plan`] answers).
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

/// Refuses options that cannot work, naming the option.
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
    if opts.max_per_zone.is_some_and(BatchSize::is_auto) {
        return Err(PlanError::InvalidOption {
            option: "maxPerZone",
            message: "auto is a batch size only; give a count or a percentage of the zone".into(),
        });
    }
    if opts.batch.is_auto() && req.workloads.is_none() {
        return Err(PlanError::InvalidOption {
            option: "batch",
            message: "auto sizes batches from the cluster's pods and PodDisruptionBudgets, and none were gathered: give evidence with workloads (plan --evidence FILE), or a count or percentage".into(),
        });
    }
    Ok(())
}

/// Control-plane kubelets beside the workers: the workers that follow them in the plan wait
/// only for `fork`, the step the kubelets wait for, and the first step after those workers
/// waits for both the last worker step and `tail`, the kubelets' last step. The policy allows
/// it: both move kubelets only once every API server runs the hop's version, on different
/// nodes, so any interleaving of the two passes through states each of them passes through.
#[derive(Clone, Debug)]
struct Side {
    /// The step both wait for.
    fork: StepId,
    /// The control-plane kubelets' last step.
    tail: StepId,
}

/// A plan being made. The phases (one file each) add steps through [`Planner::push`], which
/// keeps the model, the checker, the steps and the costs in step with one another.
struct Planner<'r, 'a> {
    // What was asked, fixed for the whole plan.
    /// The request: options, policy, calendar, date.
    req: &'r PlanRequest<'a>,
    /// The version the plan ends at.
    target: KubeVersion,
    /// The control plane's hops, one minor at a time.
    hops: Vec<Hop>,
    /// Whether node positions stay put (no step removes nodes: the in-place strategy).
    positions: bool,
    /// The most workers in one batch.
    batch_size: usize,
    /// Workers per zone at the start, for the per-zone cap (zones without workers absent).
    zone_totals: HashMap<Option<String>, usize>,
    /// Pods and budgets indexed for `--batch auto` (absent for fixed batch sizes), with what
    /// each node's drain asks of the budgets (nodes that ask nothing absent).
    drain: Option<(DrainModel<'a>, Demands)>,

    // The plan so far: `push` keeps these in step with one another, `run` sets the hop.
    /// The cluster as the steps so far leave it.
    sim: Fleet,
    /// The policy, checked after every step on what it changed.
    checker: Checker<'r>,
    /// The steps so far, each depending on the one before.
    steps: Vec<Step>,
    /// The ids of `steps`, to keep new ids unique.
    ids: HashSet<StepId>,
    /// The hop the steps being added belong to (none before the first and after the last).
    hop: Option<usize>,
    /// Drains, nodes out at once, nodes replaced.
    costs: Costs,
    /// The transient window open now, if any (`transient.rs`).
    window: Option<transient::OpenWindow>,
    /// The transient windows closed so far.
    transient: Vec<super::TransientWindow>,
    /// The control-plane kubelets just planned, which the workers after them do not wait
    /// for (`steps.rs`): they run side by side.
    side: Option<Side>,
    /// The last pre-stage step so far of each lane (`prestage.rs`: the control-plane nodes',
    /// the workers'), which the lane's next one waits for.
    lane: Vec<(Phase, StepId)>,
    /// The last step of each node's last window or control-plane work planned so far
    /// (`prestage.rs`), which a later pre-stage step on the node waits for.
    /// (An index into `done_ids`: a window's nodes share a few step ids, kept once.)
    done_on: HashMap<NodeName, u32>,
    /// The step ids `done_on` points at.
    done_ids: Vec<StepId>,

    // Remembered answers.
    /// The version a kubelet passes through at each minor (the calendar's latest patch).
    versions: BTreeMap<Minor, KubeVersion>,
    /// The versions whose kubeadm verdict was checked (a note says how).
    kubeadm_checked: Vec<KubeVersion>,
}

impl<'r, 'a> Planner<'r, 'a> {
    /// A planner at `state`: the model built and the policy checked on it (a violation
    /// refuses the start unless tolerated), the batch size and the zones' workers counted.
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
        let per_zone = workers_per_zone(&sim, req.options.strategy == Strategy::Replace);
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
        let drain = req
            .workloads
            .filter(|_| req.options.batch.is_auto())
            .map(|w| {
                let model = DrainModel::new(w, &req.options.drain);
                let demands = model.demands();
                (model, demands)
            });
        Ok(Planner {
            drain,
            req,
            costs: Costs::new(sim.cordoned()),
            sim,
            checker,
            steps: Vec::new(),
            ids: HashSet::new(),
            versions,
            hops,
            target,
            hop: None,
            positions: req.options.strategy == Strategy::InPlace,
            batch_size,
            zone_totals,
            kubeadm_checked: Vec::new(),
            window: None,
            transient: Vec::new(),
            side: None,
            lane: Vec::new(),
            done_on: HashMap::default(),
            done_ids: Vec::new(),
        })
    }

    /// The plan's options.
    fn opts(&self) -> &PlanOptions {
        &self.req.options
    }

    /// The whole plan, phase by phase: pre-flight, each hop (workers that must move first, then
    /// the control plane), then whatever is left, and the final check.
    fn run(&mut self, status: String) -> Result<(), PlanError> {
        let target = self.target.clone();
        self.preflight(status)?;
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
}

/// Workers per zone (by index into the zone names). Replacing, a replacement counts as the
/// node it replaces (distinct base names), so that the numbers stay put while a replacement is
/// under way.
fn workers_per_zone(sim: &Fleet, replace: bool) -> Vec<usize> {
    let mut per_zone: Vec<usize> = vec![0; sim.zone_names().len()];
    if replace {
        let mut bases: HashSet<(u32, String)> = HashSet::new();
        for i in 0..sim.len() {
            let class = sim.class(sim.class_of(i));
            if !class.rep.is_control_plane() && bases.insert((class.zone, base_name(sim.name(i)))) {
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
    per_zone
}
