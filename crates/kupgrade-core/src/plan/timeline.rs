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
//!   shows them (`run/verify.rs`): at once when no other task of its step is in flight as it
//!   ends, otherwise at its first check, one check interval of its step later (or earlier, as
//!   soon as no task of its step is in flight). Its node and its place in flight are free
//!   meanwhile; what depends on it waits. Other steps' work in flight (pre-stage steps beside
//!   a window, for example) does not hold a check back.
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
        let mut list = ListSchedule::new(steps, limit.max(1), cordoned);
        loop {
            list.start_what_may_start();
            if !list.end_next_groups() {
                break;
            }
        }
        list.into_timeline()
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

/// The dependency graph of `steps`: for each step, the steps that depend on it, and how many
/// steps it waits for. A step without dependencies given waits for the one before it.
fn dependencies(steps: &[Step]) -> (Vec<Vec<usize>>, Vec<usize>) {
    let n = steps.len();
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
    (dependents, waiting)
}

/// A list schedule under way: which steps are ready, which of their tasks are still to
/// start, the groups of tasks in flight (ending in the order of the heap), and what the
/// timeline reports so far.
struct ListSchedule<'s> {
    steps: &'s [Step],
    /// The most tasks in flight at once (at least one).
    limit: usize,
    /// For each step, the steps that depend on it.
    dependents: Vec<Vec<usize>>,
    /// For each step, how many steps it still waits for.
    waiting: Vec<usize>,
    /// Steps no longer waiting, with tasks still to start.
    ready: BTreeSet<usize>,
    /// For each step, its tasks not started yet.
    pending: Vec<Pending>,
    /// For each step, its tasks not done yet.
    unfinished: Vec<u32>,
    /// Milliseconds inside (a check interval may be a fraction of a second), seconds out.
    starts: Vec<u64>,
    ends: Vec<u64>,
    /// Tasks whose work ended and whose first check is due: (when, step, tasks).
    checks: Vec<(u64, usize, u32)>,
    /// For each step whose tasks' postconditions are checked, the check interval (ms).
    check_ms: Vec<Option<u64>>,
    /// Groups started, `None` once ended.
    groups: Vec<Option<Group>>,
    /// When each group in flight ends, earliest first.
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    /// Steps with tasks in flight, and how many.
    running: HashMap<usize, usize>,
    overlaps: Overlaps,
    now: u64,
    in_flight: usize,
    max_in_flight: usize,
    unavailable: usize,
    max_unavailable: usize,
}

impl<'s> ListSchedule<'s> {
    /// Nothing started yet, with `cordoned` nodes cordoned.
    fn new(steps: &'s [Step], limit: usize, cordoned: usize) -> Self {
        let n = steps.len();
        let (dependents, waiting) = dependencies(steps);
        let pending: Vec<Pending> = steps
            .iter()
            .map(|s| Pending {
                skipped: Vec::new(),
                next: 0,
                len: s.nodes.len().max(1) as u32,
            })
            .collect();
        ListSchedule {
            steps,
            limit,
            unfinished: pending.iter().map(|p| p.len).collect(),
            ready: (0..n).filter(|&i| waiting[i] == 0).collect(),
            dependents,
            waiting,
            pending,
            starts: vec![u64::MAX; n],
            ends: vec![0u64; n],
            checks: Vec::new(),
            check_ms: steps
                .iter()
                .map(|s| {
                    needs_check(s).then(|| {
                        u64::try_from(interval(s.action.settle_window()).as_millis())
                            .unwrap_or(u64::MAX)
                    })
                })
                .collect(),
            groups: Vec::new(),
            heap: BinaryHeap::new(),
            running: HashMap::new(),
            overlaps: Overlaps::new(),
            now: 0,
            in_flight: 0,
            max_in_flight: 0,
            unavailable: cordoned,
            max_unavailable: cordoned,
        }
    }

    /// Looks at the ready steps in plan order, again and again, until nothing more starts at
    /// `now`; the look stops early once the limit of tasks in flight is reached.
    fn start_what_may_start(&mut self) {
        let mut progress = true;
        while progress {
            progress = false;
            let mut cursor = 0;
            while let Some(&si) = self.ready.range(cursor..).next() {
                cursor = si + 1;
                if self.in_flight >= self.limit {
                    break;
                }
                progress |= self.start_step(si);
            }
        }
    }

    /// Starts what may start of the tasks of step `si` at `now`; false when nothing did.
    /// Checks and operator steps are decided at once: they take a place in the look but none
    /// in flight, and end as they start.
    fn start_step(&mut self, si: usize) -> bool {
        let step = &self.steps[si];
        let inline = matches!(step.action.executor(), Executor::Check | Executor::Operator);
        let room = if inline {
            usize::MAX
        } else {
            self.limit - self.in_flight
        };
        let Some(tasks) = self.take_tasks(si, room) else {
            return false;
        };
        self.starts[si] = self.starts[si].min(self.now);
        let p = &self.pending[si];
        if p.skipped.is_empty() && p.next == p.len {
            self.ready.remove(&si);
        }
        if inline {
            self.tasks_ended(si, tasks.len());
        } else {
            self.start_group(si, tasks);
        }
        true
    }

    /// Takes up to `room` of the pending tasks of step `si` whose nodes run no other task:
    /// those skipped earlier first, then the ones not looked at yet, a busy one skipped for
    /// later. `None` when there is none.
    fn take_tasks(&mut self, si: usize, room: usize) -> Option<Tasks> {
        let steps = self.steps;
        let step = &steps[si];
        let busy = busy_nodes(steps, si, &self.running, &self.groups, &mut self.overlaps);
        let p = &mut self.pending[si];
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
        }
        let tasks = if contiguous {
            Tasks::Range(first_new, p.next)
        } else {
            Tasks::List(list)
        };
        (tasks.len() > 0).then_some(tasks)
    }

    /// Starts `tasks` of step `si` at `now`, as one group ending after the step's duration.
    fn start_group(&mut self, si: usize, tasks: Tasks) {
        let count = tasks.len();
        self.in_flight += count;
        self.max_in_flight = self.max_in_flight.max(self.in_flight);
        if makes_unavailable(self.steps, si) {
            self.unavailable += count;
            self.max_unavailable = self.max_unavailable.max(self.unavailable);
        }
        *self.running.entry(si).or_default() += count;
        let end = self
            .now
            .saturating_add(self.steps[si].duration_seconds.saturating_mul(1000));
        self.groups.push(Some(Group { step: si, tasks }));
        self.heap.push(Reverse((end, self.groups.len() - 1)));
    }

    /// Lets time pass to the next end or check, ends every group ending then and makes the
    /// checks due; false when no group is in flight and no check waits.
    fn end_next_groups(&mut self) -> bool {
        let next_end = self.heap.peek().map(|Reverse((t, _))| *t);
        let next_check = self.checks.iter().map(|c| c.0).min();
        let Some(t) = next_end.into_iter().chain(next_check).min() else {
            return false;
        };
        self.now = t;
        while let Some(&Reverse((t, g))) = self.heap.peek() {
            if t != self.now {
                break;
            }
            self.heap.pop();
            if let Some(group) = self.groups[g].take() {
                self.end_group(group);
            }
        }
        self.make_checks_due();
        true
    }

    /// The checks due: those whose time came, and those of steps with no task in flight;
    /// their tasks are done.
    fn make_checks_due(&mut self) {
        let now = self.now;
        let mut checks = std::mem::take(&mut self.checks);
        checks.retain(|&(at, si, count)| {
            if at > now && self.running.contains_key(&si) {
                return true;
            }
            self.tasks_ended(si, count as usize);
            false
        });
        self.checks = checks;
    }

    /// `group`'s work ends at `now`: its places in flight are free, its nodes available again
    /// after an uncordon or a removal; its tasks are done, or done at their first check when
    /// the step's postconditions are checked.
    fn end_group(&mut self, group: Group) {
        let si = group.step;
        let count = group.tasks.len();
        self.in_flight -= count;
        if let Some(r) = self.running.get_mut(&si) {
            *r -= count;
            if *r == 0 {
                self.running.remove(&si);
            }
        }
        if matches!(
            self.steps[si].action,
            Action::Uncordon | Action::RemoveNodes
        ) {
            self.unavailable = self.unavailable.saturating_sub(count);
        }
        match self.check_ms[si] {
            Some(wait) => self
                .checks
                .push((self.now.saturating_add(wait), si, count as u32)),
            None => self.tasks_ended(si, count),
        }
    }

    /// `count` tasks of step `si` are done at `now`; once all are, the steps that waited for it
    /// and wait no more become ready.
    fn tasks_ended(&mut self, si: usize, count: usize) {
        self.unfinished[si] -= count as u32;
        self.ends[si] = self.ends[si].max(self.now);
        if self.unfinished[si] > 0 {
            return;
        }
        for &d in &self.dependents[si] {
            self.waiting[d] -= 1;
            if self.waiting[d] == 0 {
                self.ready.insert(d);
            }
        }
    }

    /// The timeline, once nothing more starts or ends.
    fn into_timeline(self) -> Timeline {
        // Seconds, rounded up.
        let secs = |ms: u64| ms.div_ceil(1000);
        let ends: Vec<u64> = self.ends.into_iter().map(secs).collect();
        let mut starts: Vec<u64> = self
            .starts
            .into_iter()
            .map(|s| if s == u64::MAX { s } else { secs(s) })
            .collect();
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
            max_in_flight: self.max_in_flight,
            max_unavailable: self.max_unavailable,
        }
    }
}

/// True when the tasks of step `si` make their nodes unavailable: a cordon, or a drain that
/// no cordon of the same nodes comes right before.
fn makes_unavailable(steps: &[Step], si: usize) -> bool {
    let cordons_before = si.checked_sub(1).is_some_and(|p| {
        matches!(steps[p].action, Action::Cordon) && steps[p].nodes == steps[si].nodes
    });
    match steps[si].action {
        Action::Cordon => true,
        Action::Drain { .. } => !cordons_before,
        _ => false,
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
