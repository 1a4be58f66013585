//! Drain feasibility, as pure functions of pods' placement and budgets' headroom.
//!
//! [`DrainModel`] indexes the pods by node and the budgets by name once (linear in pods and
//! budgets); [`DrainModel::forecast`] then walks a plan's batches in order and predicts, for
//! each, what a `kubectl drain` of its nodes would run into:
//!
//! - a budget that allows no disruption now while the batch holds pods it protects: the
//!   eviction API answers 429 until the drain times out ([`BudgetBlock`]); when the budget can
//!   never allow one (it wants every pod it expects healthy: `maxUnavailable: 0`, or
//!   `minAvailable` equal to the replicas) the block is *permanent*;
//! - pods covered by two or more budgets: the eviction API answers 500 for them, never 429,
//!   so retrying is pointless;
//! - pods the drain refuses to touch without an option (bare pods without `--force`, pods
//!   with `emptyDir` data without `--delete-emptydir-data`, DaemonSet pods without
//!   `--ignore-daemonsets`), and pods whose move costs something (single replicas, local
//!   persistent volumes).
//!
//! Where pods go after a drain is not known, so each node's pods are judged at the first
//! batch that drains the node. A permanent block stops the plan in every order of its
//! batches, since each of those pods must be evicted at some point: that is reported as a
//! [`Deadlock`], naming the budgets.
//!
//! [`DrainModel::overdraws`] answers the question batch sizing asks: which budgets a set of
//! nodes would overdraw (more of their pods on it than disruptions allowed now).
//!
//! ```
//! use kupgrade_core::NodeName;
//! use kupgrade_core::ports::DrainOptions;
//! use kupgrade_core::readiness::{Budget, DrainModel, Pod, Workloads};
//!
//! let node = |n: &str| NodeName::new(n).unwrap();
//! let budget = Budget {
//!     namespace: "shop".into(), name: "web".into(), disruptions_allowed: 0,
//!     current_healthy: 2, desired_healthy: 2, expected_pods: 2,
//!     unhealthy_pod_eviction_policy: None, spec: Some("maxUnavailable: 0".into()),
//! };
//! let pod = |name: &str, on: &str| Pod {
//!     namespace: "shop".into(), name: name.into(), node: Some(node(on)), owner: None,
//!     healthy: true, budgets: vec!["web".into()], volumes: vec![],
//! };
//! let workloads = Workloads { budgets: vec![budget], pods: vec![pod("web-1", "w-1"), pod("web-2", "w-2")] };
//! let model = DrainModel::new(&workloads, &DrainOptions { force: true, ..DrainOptions::default() });
//! let forecast = model.forecast(&[vec![node("w-1")], vec![node("w-2")]]);
//! assert_eq!(forecast.batches[0].blocked.len(), 1);
//! let deadlock = forecast.deadlock.unwrap();
//! assert!(deadlock.every_batch);
//! assert_eq!(model.budget(deadlock.budgets[0]).id(), "shop/web");
//! ```
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use smol_str::SmolStr;

use crate::NodeName;
use crate::ports::DrainOptions;

use super::evidence::{Budget, Pod, PodVolume, Workloads};

/// Pods and budgets indexed for drain forecasts. See the [module documentation](self).
#[derive(Debug)]
pub struct DrainModel<'w> {
    workloads: &'w Workloads,
    options: DrainOptions,
    /// Node names to their index in `node_pods`, the names held in the table (inline up to
    /// 23 bytes): a lookup compares against the bucket it probes, not against a string in
    /// some pod far away in memory (with a million pods, one cache miss each).
    node_index: HashMap<SmolStr, u32>,
    /// Per node (by index), its pods.
    node_pods: Vec<(&'w str, Vec<u32>)>,
    /// Per pod, its node's index ([`NO_NODE`] when unscheduled): later passes over the pods
    /// touch no string (a million pods' names are a million cache misses).
    pod_node: Vec<u32>,
    /// Per pod, whether a drain evicts it at all (not a mirror, not an ignored DaemonSet pod).
    evicted: Vec<bool>,
    /// For each pod, the indices of its budgets (`budget_of[start[i]..start[i + 1]]`).
    budget_of: Vec<u32>,
    start: Vec<u32>,
    unknown_budgets: usize,
}

/// [`DrainModel`]'s mark of a pod on no node.
const NO_NODE: u32 = u32::MAX;

/// A budget that stops a batch's drain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetBlock {
    /// The budget (an index for [`DrainModel::budget`]).
    pub budget: usize,
    /// The pods on the batch that need its permission (indices for [`DrainModel::pod`]).
    pub pods: Vec<usize>,
    /// The budget can never allow a disruption.
    pub permanent: bool,
}

/// What a batch's drain would run into. Pod lists hold indices for [`DrainModel::pod`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchForecast {
    /// Budgets that stop the drain.
    pub blocked: Vec<BudgetBlock>,
    /// Pods covered by two or more budgets (the eviction API answers 500).
    pub multi_budget: Vec<usize>,
    /// Pods no controller manages.
    pub bare: Vec<usize>,
    /// Pods with `emptyDir` volumes.
    pub empty_dir: Vec<usize>,
    /// DaemonSet pods, when the drain does not ignore them.
    pub daemonset: Vec<usize>,
    /// Pods whose controller runs a single replica.
    pub single_replica: Vec<usize>,
    /// Pods with local persistent volumes.
    pub local_pv: Vec<usize>,
    /// How many pods the drain would evict (or delete).
    pub evicted: usize,
}

/// The plan's drains cannot all finish, in any order of the batches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deadlock {
    /// The budgets that can never allow a disruption (indices for [`DrainModel::budget`]).
    pub budgets: Vec<usize>,
    /// The batches they stop (indices into the batches forecast).
    pub batches: Vec<usize>,
    /// Every batch is stopped.
    pub every_batch: bool,
}

/// The forecast for a list of batches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainForecast {
    /// One per batch, in order.
    pub batches: Vec<BatchForecast>,
    /// Set when permanent blocks stop the plan whatever the order of its batches.
    pub deadlock: Option<Deadlock>,
}

impl<'w> DrainModel<'w> {
    /// Indexes `workloads` for drains made with `options`.
    pub fn new(workloads: &'w Workloads, options: &DrainOptions) -> Self {
        // Budgets by `namespace/name` (a `/` is in neither), held in the table like the
        // nodes below; each pod's keys are written into one reused buffer.
        let mut key = String::new();
        let mut budget_index: HashMap<SmolStr, u32> =
            HashMap::with_capacity(workloads.budgets.len());
        for (i, b) in workloads.budgets.iter().enumerate() {
            budget_index.insert(
                SmolStr::new(budget_key(&mut key, &b.namespace, &b.name)),
                i as u32,
            );
        }
        let mut node_index: HashMap<SmolStr, u32> = HashMap::new();
        let mut node_pods: Vec<(&'w str, Vec<u32>)> = Vec::new();
        let mut pod_node = Vec::with_capacity(workloads.pods.len());
        let mut evicted = Vec::with_capacity(workloads.pods.len());
        let mut budget_of = Vec::new();
        let mut start = Vec::with_capacity(workloads.pods.len() + 1);
        let mut unknown_budgets = 0;
        for (i, p) in workloads.pods.iter().enumerate() {
            start.push(budget_of.len() as u32);
            for name in &p.budgets {
                match budget_index.get(budget_key(&mut key, &p.namespace, name)) {
                    Some(&b) => budget_of.push(b),
                    None => unknown_budgets += 1,
                }
            }
            evicted.push(Self::evicted_by(p, options));
            let node = match &p.node {
                Some(n) => {
                    let k = match node_index.get(n.as_str()) {
                        Some(&k) => k,
                        None => {
                            let k = node_pods.len() as u32;
                            node_index.insert(SmolStr::new(n.as_str()), k);
                            node_pods.push((n.as_str(), Vec::new()));
                            k
                        }
                    };
                    node_pods[k as usize].1.push(i as u32);
                    k
                }
                None => NO_NODE,
            };
            pod_node.push(node);
        }
        start.push(budget_of.len() as u32);
        DrainModel {
            workloads,
            options: options.clone(),
            node_index,
            node_pods,
            pod_node,
            evicted,
            budget_of,
            start,
            unknown_budgets,
        }
    }

    /// Pod `i`.
    pub fn pod(&self, i: usize) -> &'w Pod {
        &self.workloads.pods[i]
    }

    /// Budget `i`.
    pub fn budget(&self, i: usize) -> &'w Budget {
        &self.workloads.budgets[i]
    }

    /// How many budgets there are (budget indices run below it).
    pub fn budget_count(&self) -> usize {
        self.workloads.budgets.len()
    }

    /// The budgets of pod `i` (indices for [`budget`](Self::budget)).
    pub fn budgets_of(&self, i: usize) -> &[u32] {
        &self.budget_of[self.start[i] as usize..self.start[i + 1] as usize]
    }

    /// How many pods name a budget the workloads do not list.
    pub fn unknown_budgets(&self) -> usize {
        self.unknown_budgets
    }

    /// The nodes that run pods (in no particular order).
    pub fn nodes(&self) -> impl Iterator<Item = &'w str> + '_ {
        self.node_pods.iter().map(|(name, _)| *name)
    }

    /// The pods on node `name`.
    pub fn pods_on(&self, name: &str) -> &[u32] {
        self.node_index
            .get(name)
            .map_or(&[], |&k| self.node_pods[k as usize].1.as_slice())
    }

    /// Whether evicting pod `i` needs its budget's permission: healthy pods do; unhealthy ones
    /// only under `IfHealthyBudget` while the budget is below its desired health.
    fn needs_permission(&self, pod: &Pod, budget: &Budget) -> bool {
        pod.healthy
            || (!budget.always_allows_unhealthy()
                && budget.current_healthy < budget.desired_healthy)
    }

    /// Whether a drain evicts pod `p` at all (mirror pods and ignored DaemonSet pods stay).
    fn evicts(&self, p: &Pod) -> bool {
        Self::evicted_by(p, &self.options)
    }

    /// Whether a drain made with `options` evicts pod `p` at all.
    fn evicted_by(p: &Pod, options: &DrainOptions) -> bool {
        !(p.is_mirror() || (p.is_daemonset() && options.ignore_daemonsets))
    }

    /// Forecasts the drains of `batches`, in order; each node's pods are judged at the first
    /// batch that holds the node.
    pub fn forecast<B: AsRef<[NodeName]>>(&self, batches: &[B]) -> DrainForecast {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut out = DrainForecast::default();
        let mut per_budget: HashMap<u32, Vec<usize>> = HashMap::new();
        for batch in batches {
            let mut f = BatchForecast::default();
            per_budget.clear();
            for node in batch.as_ref() {
                if !seen.insert(node.as_str()) {
                    continue;
                }
                for &pi in self.pods_on(node.as_str()) {
                    self.judge(pi as usize, &mut f, &mut per_budget);
                }
            }
            let mut blocked: Vec<BudgetBlock> = per_budget
                .drain()
                .filter_map(|(b, pods)| {
                    let budget = self.budget(b as usize);
                    (budget.disruptions_allowed == 0).then(|| BudgetBlock {
                        budget: b as usize,
                        pods,
                        permanent: budget.never_allows(),
                    })
                })
                .collect();
            blocked.sort_by_key(|b| b.budget);
            f.blocked = blocked;
            out.batches.push(f);
        }
        out.deadlock = deadlock(&out.batches);
        out
    }

    /// Sorts pod `pi` into the forecast of its batch.
    fn judge(&self, pi: usize, f: &mut BatchForecast, per_budget: &mut HashMap<u32, Vec<usize>>) {
        let p = self.pod(pi);
        if p.is_mirror() {
            return;
        }
        if p.is_daemonset() {
            if !self.options.ignore_daemonsets {
                f.daemonset.push(pi);
            }
            return;
        }
        f.evicted += 1;
        if p.owner.is_none() {
            f.bare.push(pi);
        }
        if p.volumes
            .iter()
            .any(|v| matches!(v, PodVolume::EmptyDir { .. }))
        {
            f.empty_dir.push(pi);
        }
        if p.volumes
            .iter()
            .any(|v| matches!(v, PodVolume::LocalPersistentVolume { .. }))
        {
            f.local_pv.push(pi);
        }
        if p.owner.as_ref().is_some_and(|o| o.replicas == Some(1)) {
            f.single_replica.push(pi);
        }
        if self.options.disable_eviction {
            return;
        }
        let budgets = self.budgets_of(pi);
        if budgets.len() > 1 {
            f.multi_budget.push(pi);
            return;
        }
        if let Some(&b) = budgets.first()
            && self.needs_permission(p, self.budget(b as usize))
        {
            per_budget.entry(b).or_default().push(pi);
        }
    }

    /// What draining node `name` asks of each budget: `(budget, permissions)` pairs, sorted by
    /// budget, counted as [`overdraws`](Self::overdraws) counts them (written into `out`,
    /// which is cleared first). Empty under `disable_eviction`.
    pub fn demand(&self, name: &str, out: &mut Vec<(u32, u32)>) {
        out.clear();
        if self.options.disable_eviction {
            return;
        }
        for &pi in self.pods_on(name) {
            let p = self.pod(pi as usize);
            if !self.evicts(p) {
                continue;
            }
            for &b in self.budgets_of(pi as usize) {
                if self.needs_permission(p, self.budget(b as usize)) {
                    out.push((b, 1));
                }
            }
        }
        out.sort_unstable_by_key(|d| d.0);
        out.dedup_by(|next, kept| {
            let same = next.0 == kept.0;
            if same {
                kept.1 += next.1;
            }
            same
        });
    }

    /// [`demand`](Self::demand) of every node that asks something, in one pass over the pods
    /// in their order (far fewer cache misses than asking node by node).
    pub fn demands(&self) -> HashMap<&'w str, Vec<(u32, u32)>> {
        if self.options.disable_eviction {
            return HashMap::new();
        }
        // Per node index first (integers only), then keyed by name once per node.
        let mut by_node: Vec<Vec<(u32, u32)>> = vec![Vec::new(); self.node_pods.len()];
        for (i, p) in self.workloads.pods.iter().enumerate() {
            let node = self.pod_node[i];
            if node == NO_NODE || !self.evicted[i] {
                continue;
            }
            for &b in self.budgets_of(i) {
                if self.needs_permission(p, self.budget(b as usize)) {
                    by_node[node as usize].push((b, 1));
                }
            }
        }
        let mut out: HashMap<&'w str, Vec<(u32, u32)>> = HashMap::new();
        for (k, mut list) in by_node.into_iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            list.sort_unstable_by_key(|d| d.0);
            list.dedup_by(|next, kept| {
                let same = next.0 == kept.0;
                if same {
                    kept.1 += next.1;
                }
                same
            });
            out.insert(self.node_pods[k].0, list);
        }
        out
    }

    /// The pods on node `name` that need budget `b`'s permission to leave (indices for
    /// [`pod`](Self::pod)).
    pub fn pods_needing(&self, name: &str, b: usize) -> Vec<usize> {
        self.pods_on(name)
            .iter()
            .map(|&pi| pi as usize)
            .filter(|&pi| {
                let p = self.pod(pi);
                self.evicts(p)
                    && self.budgets_of(pi).contains(&(b as u32))
                    && self.needs_permission(p, self.budget(b))
            })
            .collect()
    }

    /// The budgets the drain of `nodes` would overdraw: more of their pods needing
    /// permission on these nodes than disruptions allowed now, with that count (pods under
    /// several budgets count for each). Under `disable_eviction` nothing is overdrawn.
    pub fn overdraws(&self, nodes: &[NodeName]) -> Vec<(usize, usize)> {
        if self.options.disable_eviction {
            return Vec::new();
        }
        let mut count: HashMap<u32, usize> = HashMap::new();
        for node in nodes {
            for &pi in self.pods_on(node.as_str()) {
                let p = self.pod(pi as usize);
                if !self.evicts(p) {
                    continue;
                }
                for &b in self.budgets_of(pi as usize) {
                    if self.needs_permission(p, self.budget(b as usize)) {
                        *count.entry(b).or_default() += 1;
                    }
                }
            }
        }
        let mut out: Vec<(usize, usize)> = count
            .into_iter()
            .filter(|&(b, n)| n > self.budget(b as usize).disruptions_allowed as usize)
            .map(|(b, n)| (b as usize, n))
            .collect();
        out.sort_unstable();
        out
    }
}

/// `namespace/name`, written into `buf`.
fn budget_key<'b>(buf: &'b mut String, namespace: &str, name: &str) -> &'b str {
    buf.clear();
    buf.push_str(namespace);
    buf.push('/');
    buf.push_str(name);
    buf
}

/// The deadlock in `batches`: budgets that can never allow a disruption and still hold pods
/// the plan must evict.
fn deadlock(batches: &[BatchForecast]) -> Option<Deadlock> {
    let mut budgets: Vec<usize> = Vec::new();
    let mut stopped: Vec<usize> = Vec::new();
    for (i, f) in batches.iter().enumerate() {
        let permanent: Vec<usize> = f
            .blocked
            .iter()
            .filter(|b| b.permanent)
            .map(|b| b.budget)
            .collect();
        if !permanent.is_empty() {
            stopped.push(i);
            budgets.extend(permanent);
        }
    }
    if stopped.is_empty() {
        return None;
    }
    budgets.sort_unstable();
    budgets.dedup();
    Some(Deadlock {
        budgets,
        every_batch: stopped.len() == batches.len(),
        batches: stopped,
    })
}
