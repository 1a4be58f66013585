//! Workers: which move before a hop (kubeadm's way, or only those the policy would no longer
//! allow or the hop's kubeadm would refuse) or at the end, and why; their batches and windows,
//! one after another.
use crate::kubeadm::Edition;
use crate::skew::{Context, Severity, Summary};
use crate::{ClusterState, KubeVersion, Node};

use super::Planner;
use super::groups::{Head, Worker};
use super::steps::Batch;
use crate::plan::batch;
use crate::plan::step::Phase;
use crate::plan::{AddonsAt, Hop, PlanError, Strategy, WorkerPacing};

/// Why a group of workers moves now.
#[derive(Clone)]
pub(super) enum Why {
    /// Kubeadm's way: workers follow the control plane before it moves on to `next`.
    EveryHop { next: KubeVersion },
    /// The policy would not allow these kubelets once the control plane moves to `next`
    /// (`rule`), or ("in flight") they were cordoned mid-upgrade.
    CatchUp { next: KubeVersion, rule: String },
    /// kubeadm `next` would refuse `kubeadm upgrade apply` with these kubelets: more than
    /// `max_skew` minors older than `next` (its edition's kubelet skew).
    Kubeadm { next: KubeVersion, max_skew: u64 },
    /// The end of the plan: every worker moves (`deferred`: as late as the policy allowed).
    Final { deferred: bool },
}

impl Why {
    /// The reason of batch `i` of `n` (of `size` nodes) on its way to `goal`.
    fn reason(&self, goal: &KubeVersion, i: usize, n: usize, size: usize) -> String {
        let what = match self {
            Why::EveryHop { next } => format!(
                "workers follow the control plane to {goal} before it moves on to {next}, one minor at a time (kubeadm's way)"
            ),
            Why::CatchUp { next, rule } if rule != "in flight" => format!(
                "the policy would not allow these kubelets once the control plane moves to {next} ({rule}): they catch up to {goal} first"
            ),
            Why::CatchUp { .. } => {
                format!("these nodes were cordoned mid-upgrade: they finish at {goal} first")
            }
            Why::Kubeadm { next, max_skew } => format!(
                "kubeadm {} refuses `kubeadm upgrade apply {next}` (without --force) with kubelets more than {max_skew} minor{} older (kubeadm/kubelet-skew): these catch up to {goal} first",
                next.minor(),
                if *max_skew == 1 { "" } else { "s" }
            ),
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
}

impl Planner<'_, '_> {
    /// Before the control plane moves to `hop.to`: finish cordoned workers; then, kubeadm's
    /// way, bring every worker to the control plane's version, or (deferred) only those the
    /// policy would no longer allow once it has moved, then those whose kubelet the hop's
    /// kubeadm would refuse (before kubeadm 1.29, kubelets more than one minor older than its
    /// target: see [`Edition`]).
    ///
    /// Deciding this before a hop (rather than after the previous one) keeps the decision a
    /// function of the state alone, so that planning again mid-way agrees with the plan.
    pub(super) fn before_hop(&mut self, hop: &Hop) -> Result<(), PlanError> {
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
        )?;
        // Judged after the moves above: they renumber classes.
        let rules = Edition::of(&hop.to);
        let refused = self.kubeadm_refuses(&hop.to, rules);
        self.workers_to(
            &now,
            |k| refused[k as usize],
            Why::Kubeadm {
                next: hop.to.clone(),
                max_skew: rules.max_kubelet_skew,
            },
        )
    }

    /// The classes of workers (indexed by class) whose kubelet kubeadm `target`, deciding by
    /// `rules`, would object to in `kubeadm upgrade apply {target}`. (Control-plane kubelets
    /// follow every hop before it.)
    fn kubeadm_refuses(&self, target: &KubeVersion, rules: Edition) -> Vec<bool> {
        let mut refused = vec![false; self.sim.class_count()];
        for (k, class) in self.sim.present() {
            refused[k as usize] = !class.rep.is_control_plane()
                && class
                    .rep
                    .kubelet()
                    .is_some_and(|kubelet| rules.kubelet_too_old(kubelet, target));
        }
        refused
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

    /// Moves the workers `select` picks (by class) that run older than `goal`, and every one
    /// under way, to `goal`: group by group (nodes that need the same steps), in batches.
    pub(super) fn workers_to(
        &mut self,
        goal: &KubeVersion,
        select: impl Fn(u32) -> bool,
        why: Why,
    ) -> Result<(), PlanError> {
        let groups = self.worker_groups(goal, select);
        let work = self.cut_batches(groups)?;
        self.move_workers(work, goal, &why)
    }

    /// Each group's batches: at most the batch size, at most a zone's cap of one zone, the
    /// nodes named now (replacing moves nodes as the windows go); with `--batch auto`, as
    /// many as the budgets allow ([`Planner::auto_cut`]).
    fn cut_batches(
        &self,
        groups: Vec<(Head, Vec<Worker>)>,
    ) -> Result<Vec<(Head, Vec<Batch>)>, PlanError> {
        let replace = self.opts().strategy == Strategy::Replace;
        let fleet = &self.sim;
        let zone_names = fleet.zone_names();
        let cap = |z: u32| self.zone_cap(z);
        groups
            .into_iter()
            .map(|(head, mut items)| {
                // The state is in zone order, unless replacements moved nodes.
                if replace {
                    batch::sort_by_zone(&mut items, zone_names, |a, b| {
                        fleet.name(a.0).cmp(fleet.name(b.0))
                    });
                }
                let members = match &self.drain {
                    Some((model, demands)) => self.auto_cut(model, demands, items, cap)?,
                    None => batch::batches(items, self.batch_size, cap),
                };
                let batches = members
                    .into_iter()
                    .map(|members| Batch::at(fleet, members, self.positions))
                    .collect();
                Ok((head, batches))
            })
            .collect()
    }

    /// The most workers of zone `z` (an index into the zone names) in one batch.
    fn zone_cap(&self, z: u32) -> usize {
        let Some(max) = self.opts().max_per_zone else {
            return usize::MAX;
        };
        let zone = self.sim.zone_names().get(z as usize).unwrap_or(&None);
        max.of(self.zone_totals.get(zone).copied().unwrap_or(1))
    }

    /// One window per batch, in order, each saying why and which batch of how many it is.
    fn move_workers(
        &mut self,
        work: Vec<(Head, Vec<Batch>)>,
        goal: &KubeVersion,
        why: &Why,
    ) -> Result<(), PlanError> {
        let replace = self.opts().strategy == Strategy::Replace;
        let count: usize = work.iter().map(|w| w.1.len()).sum();
        let mut i = 0;
        for (head, batches) in work {
            for batch in batches {
                i += 1;
                let why = why.reason(goal, i, count, batch.nodes.len());
                if replace {
                    self.replace_window(&batch, &head, goal, why)?;
                } else {
                    self.in_place_window(Phase::Workers, &batch, head.clone(), goal, false, why)?;
                }
            }
        }
        Ok(())
    }
}
