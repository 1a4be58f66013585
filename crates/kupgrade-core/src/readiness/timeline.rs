//! The plan as the checks read it: when each step starts, which minor each hop crosses, when
//! each node's kubelet moves, which steps drain which batches and install which packages.
use foldhash::HashMap;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::plan::{Action, Estimate, Package, Step, UpgradePlan};
use crate::{KubeVersion, Minor};

/// A package install on a node: the step and what it installs.
pub(crate) struct Install<'p> {
    pub step: usize,
    pub packages: &'p [Package],
    pub version: &'p KubeVersion,
}

/// The plan, indexed for the checks. Node indices are positions in `plan.nodes`.
pub(crate) struct Timeline<'p> {
    pub plan: &'p UpgradePlan,
    /// When the run starts.
    pub start: Timestamp,
    /// Each step's start, in seconds from `start`.
    pub step_start: Vec<u64>,
    /// Plan node index by name.
    pub node_index: HashMap<&'p str, usize>,
    /// Per node: the kubelet versions it restarts into, with the step, in order.
    pub kubelet_moves: Vec<Vec<(usize, &'p KubeVersion)>>,
    /// Per node: its package installs, in order.
    pub installs: Vec<Vec<Install<'p>>>,
    /// Per node: its first step that writes to disk (an install, a backup, a snapshot).
    pub first_write: Vec<Option<usize>>,
    /// Per node: how many etcd snapshots the plan writes on it.
    pub snapshots: Vec<usize>,
    /// Per node: how many copies of `/etc/kubernetes` the plan writes on it.
    pub backups: Vec<usize>,
    /// The drain steps, in order.
    pub drains: Vec<usize>,
    /// Per node: the first drain that holds it (an index into `drains`).
    pub first_drain: Vec<Option<usize>>,
    /// Per step: the hop it serves.
    step_hop: Vec<Option<usize>>,
}

/// The hop each step serves: none before the hops begin (pre-flight, whose ids carry the
/// plan's target); then the hop whose version is the step's goal (the version its id starts
/// with), so that a worker catching up to 1.35 belongs to the hop to 1.35 however late the
/// plan moves it; otherwise the plan's own hop; otherwise the last hop (the final check).
fn hop_of_steps(plan: &UpgradePlan) -> Vec<Option<usize>> {
    let hops = &plan.hops;
    let mut started = false;
    plan.steps
        .iter()
        .map(|step| {
            started |= step.hop.is_some();
            if !started {
                return None;
            }
            let goal = step
                .id
                .as_str()
                .split('/')
                .next()
                .and_then(|g| KubeVersion::parse(g).ok());
            if let Some(goal) = goal {
                if let Some(k) = hops.iter().position(|h| h.to == goal) {
                    return Some(k);
                }
                if let Some(k) = hops
                    .iter()
                    .position(|h| h.to.minor() == goal.minor() && h.from.minor() < goal.minor())
                {
                    return Some(k);
                }
            }
            step.hop.or_else(|| hops.len().checked_sub(1))
        })
        .collect()
}

impl<'p> Timeline<'p> {
    /// Indexes `plan`, starting at `start` (or the plan's date at midnight UTC).
    pub fn new(plan: &'p UpgradePlan, start: Option<Timestamp>) -> Self {
        let start = start.unwrap_or_else(|| {
            plan.date
                .to_zoned(TimeZone::UTC)
                .map(|z| z.timestamp())
                .unwrap_or(Timestamp::UNIX_EPOCH)
        });
        let n = plan.nodes.len();
        let node_index: HashMap<&str, usize> = plan
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (node.name.as_str(), i))
            .collect();
        let mut t = Timeline {
            plan,
            start,
            step_start: Estimate::start_times(plan),
            node_index,
            kubelet_moves: (0..n).map(|_| Vec::new()).collect(),
            installs: (0..n).map(|_| Vec::new()).collect(),
            first_write: vec![None; n],
            snapshots: vec![0; n],
            backups: vec![0; n],
            drains: Vec::new(),
            first_drain: vec![None; n],
            step_hop: hop_of_steps(plan),
        };
        for (i, step) in plan.steps.iter().enumerate() {
            t.index_step(i, step);
        }
        for (d, &i) in t.drains.iter().enumerate() {
            for name in &plan.steps[i].nodes {
                if let Some(&n) = t.node_index.get(name.as_str())
                    && t.first_drain[n].is_none()
                {
                    t.first_drain[n] = Some(d);
                }
            }
        }
        t
    }

    fn index_step(&mut self, i: usize, step: &'p Step) {
        let writes = matches!(
            step.action,
            Action::InstallPackages { .. }
                | Action::BackupConfig { .. }
                | Action::EtcdSnapshot { .. }
        );
        if let Action::Drain { .. } = step.action {
            self.drains.push(i);
        }
        for name in &step.nodes {
            let Some(&n) = self.node_index.get(name.as_str()) else {
                continue;
            };
            if writes && self.first_write[n].is_none() {
                self.first_write[n] = Some(i);
            }
            match &step.action {
                Action::RestartKubelet { version } => self.kubelet_moves[n].push((i, version)),
                Action::InstallPackages { packages, version } => self.installs[n].push(Install {
                    step: i,
                    packages,
                    version,
                }),
                Action::EtcdSnapshot { .. } => self.snapshots[n] += 1,
                Action::BackupConfig { .. } => self.backups[n] += 1,
                _ => {}
            }
        }
    }

    /// Step `i`.
    pub fn step(&self, i: usize) -> &'p Step {
        &self.plan.steps[i]
    }

    /// When step `i` starts.
    pub fn step_time(&self, i: usize) -> Timestamp {
        self.at(self.step_start.get(i).copied().unwrap_or(0))
    }

    /// When the run is expected to end.
    pub fn end(&self) -> Timestamp {
        self.at(self.plan.estimate.total_seconds)
    }

    fn at(&self, seconds: u64) -> Timestamp {
        let s = i64::try_from(seconds).unwrap_or(i64::MAX);
        self.start
            .checked_add(SignedDuration::from_secs(s))
            .unwrap_or(Timestamp::MAX)
    }

    /// The step running at `t` (the last one started by then), if the run has started.
    pub fn step_at(&self, t: Timestamp) -> Option<usize> {
        if t < self.start || self.plan.steps.is_empty() {
            return None;
        }
        let secs = u64::try_from(t.duration_since(self.start).as_secs()).unwrap_or(u64::MAX);
        let i = self.step_start.partition_point(|&s| s <= secs);
        Some(i.saturating_sub(1))
    }

    /// The control plane's minors before and after hop `k`.
    pub fn hop_minors(&self, k: usize) -> (Minor, Minor) {
        let h = &self.plan.hops[k];
        (h.from.minor(), h.to.minor())
    }

    /// The hop that brings the control plane to minor `m`: from below it to it or past it.
    pub fn hop_reaching(&self, m: Minor) -> Option<usize> {
        (0..self.plan.hops.len()).find(|&k| {
            let (from, to) = self.hop_minors(k);
            from < m && m <= to
        })
    }

    /// The control plane's minor before the plan.
    pub fn start_minor(&self) -> Minor {
        self.plan.from.minor()
    }

    /// The minor the plan ends at.
    pub fn target_minor(&self) -> Minor {
        self.plan.target.minor()
    }

    /// The hop step `i` serves (see `hop_of_steps`).
    pub fn hop_of(&self, i: usize) -> Option<usize> {
        self.step_hop.get(i).copied().flatten()
    }

    /// The first drain (an index into `drains`) that holds node `name`.
    pub fn first_drain_of(&self, name: &str) -> Option<usize> {
        self.node_index.get(name).and_then(|&n| self.first_drain[n])
    }

    /// The first step at which node `n`'s kubelet reaches minor `m` or later, with the
    /// version.
    pub fn kubelet_reaches(&self, n: usize, m: Minor) -> Option<(usize, &'p KubeVersion)> {
        self.kubelet_moves[n]
            .iter()
            .find(|(_, v)| v.minor() >= m)
            .copied()
    }
}
