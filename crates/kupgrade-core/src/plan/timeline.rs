//! The plan's schedule in time: a list schedule of its dependency graph under the run's
//! parallelism limit, following the run's own rules (`run/schedule.rs` and `Run::next`), so
//! that the estimate is the time a run of the plan takes when every step takes its estimated
//! duration.
//!
//! The rules it follows, as the run does:
//! - a step is ready once every step it depends on is done (no dependency given: the step
//!   before); a step of no nodes is one task, a step of nodes one task per node;
//! - whenever something ends, the ready steps are looked at in plan order and their tasks in
//!   node order: a task starts unless the limit of tasks in flight is reached (then nothing
//!   more starts) or its node runs another task (then it is skipped and the look goes on);
//! - checks and operator steps (`Executor::Check`, `Executor::Operator`) are decided by the
//!   run itself when they are looked at: they need a free place in flight but take no time;
//! - every other task takes its step's `duration_seconds`;
//! - a task whose step's postconditions the cluster shows is done once a read of the cluster
//!   shows them (`run/verify.rs`): at once when nothing else is in flight as it ends, otherwise
//!   at its first check, one check interval of its step later (or earlier, as soon as nothing
//!   is in flight). Its node and its place in flight are free meanwhile; what depends on it
//!   waits. (A run with other work in flight, pre-stage steps beside a window for example,
//!   gains that interval on each such step.)
//!
//! Tasks of one step that start together end together, so the schedule is computed on groups
//! of tasks rather than on tasks: a plan of a few hundred steps over tens of thousands of
//! nodes is scheduled in time proportional to its steps, and nodes are compared only while
//! steps of different batches run at once.
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use super::action::{Action, Executor};
use super::step::{Phase, Step};
use crate::run::verify::{interval, needs_check};

/// When each step of a plan starts and ends under a list schedule, with what that schedule
/// shows: the makespan, the most tasks in flight and the most nodes unavailable at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    /// When each step's first task starts, in seconds from the start of the plan.
    pub starts: Vec<u64>,
    /// When each step's last task ends.
    pub ends: Vec<u64>,
    /// When the last task ends.
    pub makespan: u64,
    /// The most tasks in flight at once.
    pub max_in_flight: usize,
    /// The most nodes cordoned at once (from a cordon's start to its uncordon's or removal's
    /// end), the nodes cordoned at the start included.
    pub max_unavailable: usize,
}

/// Tasks of one step started at the same time.
struct Group {
    step: usize,
    /// Task indices of the step (a range when none was skipped).
    tasks: Tasks,
}

enum Tasks {
    Range(u32, u32),
    List(Vec<u32>),
}

impl Tasks {
    fn len(&self) -> usize {
        match self {
            Tasks::Range(a, b) => (b - a) as usize,
            Tasks::List(l) => l.len(),
        }
    }
    fn each(&self, mut f: impl FnMut(u32)) {
        match self {
            Tasks::Range(a, b) => (*a..*b).for_each(f),
            Tasks::List(l) => l.iter().for_each(|&t| f(t)),
        }
    }
}

/// A step's tasks not started yet: those skipped because their node was busy (in order),
/// then `next..len`.
#[derive(Default)]
struct Pending {
    skipped: Vec<u32>,
    next: u32,
    len: u32,
}

impl Timeline {
    /// The list schedule of `steps` with at most `limit` tasks in flight (at least one), with
    /// `cordoned` nodes cordoned at the start. Dependencies on unknown steps are ignored
    /// (the run refuses such plans before it starts).
    pub fn of(steps: &[Step], limit: usize, cordoned: usize) -> Timeline {
        let n = steps.len();
        let limit = limit.max(1);
        let chain = steps
            .iter()
            .enumerate()
            .all(|(i, s)| match s.depends_on.as_slice() {
                [] => true,
                [d] => i > 0 && steps[i - 1].id == *d,
                _ => false,
            });
        let index: HashMap<&str, usize> = if chain {
            // Chains name the step before: a lookup by position saves the map's build.
            HashMap::new()
        } else {
            steps
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id.as_str(), i))
                .collect()
        };
        let find = |i: usize, id: &str| -> Option<usize> {
            if i > 0 && steps[i - 1].id.as_str() == id {
                return Some(i - 1);
            }
            index.get(id).copied()
        };
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut waiting = vec![0usize; n];
        for (i, s) in steps.iter().enumerate() {
            if s.depends_on.is_empty() {
                if i > 0 {
                    dependents[i - 1].push(i);
                    waiting[i] = 1;
                }
            } else {
                for d in &s.depends_on {
                    if let Some(j) = find(i, d.as_str()).filter(|&j| j != i) {
                        dependents[j].push(i);
                        waiting[i] += 1;
                    }
                }
            }
        }
        let mut pending: Vec<Pending> = steps
            .iter()
            .map(|s| Pending {
                skipped: Vec::new(),
                next: 0,
                len: s.nodes.len().max(1) as u32,
            })
            .collect();
        let mut unfinished: Vec<u32> = pending.iter().map(|p| p.len).collect();
        let mut ready: BTreeSet<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
        // Milliseconds inside (a check interval may be a fraction of a second), seconds out.
        let mut starts = vec![u64::MAX; n];
        let mut ends = vec![0u64; n];
        // Tasks whose work ended and whose first check is due: (when, step, tasks).
        let mut checks: Vec<(u64, usize, u32)> = Vec::new();
        let check_ms: Vec<Option<u64>> = steps
            .iter()
            .map(|s| {
                needs_check(s).then(|| {
                    u64::try_from(interval(s.action.settle_window()).as_millis())
                        .unwrap_or(u64::MAX)
                })
            })
            .collect();
        let mut groups: Vec<Option<Group>> = Vec::new();
        let mut heap: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
        let (mut in_flight, mut max_in_flight) = (0usize, 0usize);
        let (mut unavailable, mut max_unavailable) = (cordoned, cordoned);
        let mut now = 0u64;
        // Steps with tasks in flight, and how many.
        let mut running: HashMap<usize, usize> = HashMap::new();
        let mut overlaps = Overlaps::new();
        loop {
            // Look at the ready steps in plan order until nothing more starts at `now`.
            let mut progress = true;
            while progress {
                progress = false;
                let mut cursor = 0;
                while let Some(&si) = ready.range(cursor..).next() {
                    cursor = si + 1;
                    if in_flight >= limit {
                        break;
                    }
                    let step = &steps[si];
                    let inline =
                        matches!(step.action.executor(), Executor::Check | Executor::Operator);
                    let busy = busy_nodes(steps, si, &running, &groups, &mut overlaps);
                    let p = &mut pending[si];
                    let room = if inline {
                        usize::MAX
                    } else {
                        limit - in_flight
                    };
                    // Tasks skipped earlier come first, then the ones not looked at yet.
                    let mut list: Vec<u32> = Vec::new();
                    let mut kept = Vec::new();
                    for &t in &p.skipped {
                        if list.len() < room && !is_busy(&busy, step, t) {
                            list.push(t);
                        } else {
                            kept.push(t);
                        }
                    }
                    p.skipped = kept;
                    let first_new = p.next;
                    let mut contiguous = list.is_empty();
                    if busy.is_none() {
                        let n = ((p.len - p.next) as usize).min(room - list.len()) as u32;
                        p.next += n;
                        if !contiguous {
                            list.extend(first_new..first_new + n);
                        }
                    } else {
                        while p.next < p.len && list.len() < room {
                            let t = p.next;
                            p.next += 1;
                            if is_busy(&busy, step, t) {
                                p.skipped.push(t);
                                contiguous = false;
                            } else {
                                list.push(t);
                            }
                        }
                        if contiguous {
                            list.clear();
                        }
                    }
                    let count = if contiguous {
                        (p.next - first_new) as usize
                    } else {
                        list.len()
                    };
                    if count == 0 {
                        continue;
                    }
                    progress = true;
                    starts[si] = starts[si].min(now);
                    if p.skipped.is_empty() && p.next == p.len {
                        ready.remove(&si);
                    }
                    if inline {
                        unfinished[si] -= count as u32;
                        ends[si] = ends[si].max(now);
                        if unfinished[si] == 0 {
                            finish(si, &dependents, &mut waiting, &mut ready);
                        }
                        continue;
                    }
                    let tasks = if contiguous {
                        Tasks::Range(first_new, first_new + count as u32)
                    } else {
                        Tasks::List(list)
                    };
                    in_flight += count;
                    max_in_flight = max_in_flight.max(in_flight);
                    if matches!(step.action, Action::Cordon)
                        || (matches!(step.action, Action::Drain { .. })
                            && !cordons_before(steps, si))
                    {
                        unavailable += count;
                        max_unavailable = max_unavailable.max(unavailable);
                    }
                    *running.entry(si).or_default() += count;
                    let end = now.saturating_add(step.duration_seconds.saturating_mul(1000));
                    groups.push(Some(Group { step: si, tasks }));
                    heap.push(Reverse((end, groups.len() - 1)));
                }
            }
            // Let time pass to the next end or check; every group ending then ends together.
            let next_end = heap.peek().map(|Reverse((t, _))| *t);
            let next_check = checks.iter().map(|c| c.0).min();
            let Some(t) = next_end.into_iter().chain(next_check).min() else {
                break;
            };
            now = t;
            while let Some(&Reverse((t, g))) = heap.peek() {
                if t != now {
                    break;
                }
                heap.pop();
                let Some(group) = groups[g].take() else {
                    continue;
                };
                let si = group.step;
                let count = group.tasks.len();
                in_flight -= count;
                if let Some(r) = running.get_mut(&si) {
                    *r -= count;
                    if *r == 0 {
                        running.remove(&si);
                    }
                }
                if matches!(steps[si].action, Action::Uncordon | Action::RemoveNodes) {
                    unavailable = unavailable.saturating_sub(count);
                }
                match check_ms[si] {
                    Some(wait) => checks.push((now.saturating_add(wait), si, count as u32)),
                    None => {
                        unfinished[si] -= count as u32;
                        ends[si] = ends[si].max(now);
                        if unfinished[si] == 0 {
                            finish(si, &dependents, &mut waiting, &mut ready);
                        }
                    }
                }
            }
            // The checks due: every one once nothing is in flight, else those whose time came.
            let idle = in_flight == 0;
            checks.retain(|&(at, si, count)| {
                if !idle && at > now {
                    return true;
                }
                unfinished[si] -= count;
                ends[si] = ends[si].max(now);
                if unfinished[si] == 0 {
                    finish(si, &dependents, &mut waiting, &mut ready);
                }
                false
            });
        }
        // Seconds, rounded up.
        let secs = |ms: u64| ms.div_ceil(1000);
        let ends: Vec<u64> = ends.into_iter().map(secs).collect();
        let starts: Vec<u64> = starts
            .into_iter()
            .map(|s| if s == u64::MAX { s } else { secs(s) })
            .collect();
        let mut starts = starts;
        for (s, e) in starts.iter_mut().zip(&ends) {
            if *s == u64::MAX {
                // Never started (a dependency in a circle): shown where it would end.
                *s = *e;
            }
        }
        Timeline {
            makespan: ends.iter().copied().max().unwrap_or(0),
            starts,
            ends,
            max_in_flight,
            max_unavailable,
        }
    }

    /// The lower bound of any schedule of `steps` that keeps the plan's rules: the control
    /// plane's own steps one after another (every step outside the control-plane kubelets and
    /// the workers), plus the longer of the control-plane kubelets' windows one after another
    /// and the workers' work (seconds of each worker step times its nodes) spread over the
    /// most workers a step takes at once (the budget of unavailable workers). Checks and
    /// operator steps take no time, as in the schedule; pre-stage steps, which may run beside
    /// all of these, count nothing.
    pub fn lower_bound(steps: &[Step]) -> u64 {
        let (mut path, mut kubelets, mut work, mut budget) = (0u64, 0u64, 0u128, 0usize);
        for s in steps {
            // Pre-stage steps run beside the windows, on no node's window or budget.
            if matches!(s.action.executor(), Executor::Check | Executor::Operator)
                || s.action.is_prestage()
            {
                continue;
            }
            match s.phase {
                Phase::Workers => {
                    work += u128::from(s.duration_seconds) * s.nodes.len().max(1) as u128;
                    budget = budget.max(s.nodes.len().max(1));
                }
                Phase::ControlPlaneKubelets => kubelets += s.duration_seconds,
                _ => path += s.duration_seconds,
            }
        }
        let spread = if budget == 0 {
            0
        } else {
            u64::try_from(work / budget as u128).unwrap_or(u64::MAX)
        };
        path.saturating_add(kubelets.max(spread))
    }
}

/// True when a step before `si` on the same nodes cordons them (then its drain adds no
/// unavailable node).
fn cordons_before(steps: &[Step], si: usize) -> bool {
    si.checked_sub(1).is_some_and(|p| {
        matches!(steps[p].action, Action::Cordon) && steps[p].nodes == steps[si].nodes
    })
}

/// Step `si` is all done: the steps that waited for it and wait no more become ready.
fn finish(
    si: usize,
    dependents: &[Vec<usize>],
    waiting: &mut [usize],
    ready: &mut BTreeSet<usize>,
) {
    for &d in &dependents[si] {
        waiting[d] -= 1;
        if waiting[d] == 0 {
            ready.insert(d);
        }
    }
}

/// Whether two steps' node lists share a node, by the lists' identity (the steps of one
/// batch share one list, so a plan has few distinct lists).
type Overlaps = HashMap<(usize, usize), bool>;

fn list_key(s: &Step) -> usize {
    s.nodes.as_slice().as_ptr() as usize
}

/// True when the nodes of steps `a` and `b` overlap.
fn overlap(steps: &[Step], a: usize, b: usize, cache: &mut Overlaps) -> bool {
    let (ka, kb) = (list_key(&steps[a]), list_key(&steps[b]));
    if ka == kb {
        return true;
    }
    *cache.entry((ka.min(kb), ka.max(kb))).or_insert_with(|| {
        let (small, large) = if steps[a].nodes.len() <= steps[b].nodes.len() {
            (&steps[a].nodes, &steps[b].nodes)
        } else {
            (&steps[b].nodes, &steps[a].nodes)
        };
        let set: HashSet<&str> = small.iter().map(|n| n.as_str()).collect();
        large.iter().any(|n| set.contains(n.as_str()))
    })
}

/// The nodes busy with tasks of steps other than `si`, when a step whose nodes overlap
/// `si`'s has tasks in flight.
fn busy_nodes<'s>(
    steps: &'s [Step],
    si: usize,
    running: &HashMap<usize, usize>,
    groups: &[Option<Group>],
    cache: &mut Overlaps,
) -> Option<HashSet<&'s str>> {
    if steps[si].nodes.is_empty() {
        return None;
    }
    let mut others: Vec<usize> = running
        .keys()
        .copied()
        .filter(|&r| r != si && !steps[r].nodes.is_empty())
        .collect();
    others.retain(|&r| overlap(steps, si, r, cache));
    if others.is_empty() {
        return None;
    }
    let mut busy = HashSet::new();
    for g in groups.iter().flatten() {
        if !others.contains(&g.step) {
            continue;
        }
        let nodes = steps[g.step].nodes.as_slice();
        g.tasks.each(|t| {
            busy.insert(nodes[t as usize].as_str());
        });
    }
    Some(busy)
}

fn is_busy(busy: &Option<HashSet<&str>>, step: &Step, t: u32) -> bool {
    match busy {
        None => false,
        Some(b) => step
            .nodes
            .as_slice()
            .get(t as usize)
            .is_some_and(|n| b.contains(n.as_str())),
    }
}

#[cfg(test)]
mod tests;
