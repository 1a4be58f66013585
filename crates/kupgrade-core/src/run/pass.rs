//! One pass of the run over the ready steps ([`Run::next`](super::Run::next), once the
//! session is open): the postconditions due for a check are checked, then, unless the run
//! stops, what may start starts.
//!
//! What it guarantees:
//! - the due tasks of ready steps are looked at in plan order, a step's tasks in node order;
//!   the look stops at the first halt, once the limit of tasks in flight is reached, or once
//!   the run stops; a task whose node runs another task is skipped;
//! - the global checks (the policy, the nodes there and Ready) run once a pass, before the
//!   first task that would start, and a task starts only after its own preconditions hold;
//! - a pass that looked at every task and started none because every one was busy marks the
//!   schedule stalled.
use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::Arc;

use foldhash::HashSet;
use jiff::Timestamp;

use crate::plan::{Executor, UpgradePlan};
use crate::skew::SkewPolicy;
use crate::{ClusterState, NodeName};

use super::checks::{self, Decision};
use super::expect::NodeExpectations;
use super::facts::View;
use super::report::StopReport;
use super::schedule::Schedule;
use super::session::Session;
use super::task::{Pos, TaskState};
use super::{Output, RetryPolicy, Run, verify};

impl Run {
    /// Checks the postconditions of the tasks due for it (`verify.rs`), then, unless the run
    /// stops, starts what may start: the due tasks of ready steps, in plan order, up to the
    /// limit, one per node; the global checks come first, then each task's own.
    pub(super) fn advance(&mut self, state: &ClusterState, now: Timestamp, out: &mut Output) {
        self.expect.layout.follow(state);
        self.windows.follow(&self.plan, &self.schedule, now, out);
        // The view reads the layout, the tolerated violations and the rules accepted in the
        // windows the run is inside while the schedule, the nodes' expectations and the
        // session change below.
        let plan = Arc::clone(&self.plan);
        let view = View::new(
            state,
            &*self.policy,
            &self.expect.tolerated,
            &self.expect.layout,
        )
        .accepting(self.windows.accepted(&plan));
        let mut pass = Pass {
            plan: &plan,
            policy: &*self.policy,
            retry: &self.options.retry,
            run_id: self.run_id.as_deref(),
            not_ready_ok: &self.expect.not_ready_ok,
            schedule: &mut self.schedule,
            nodes: &mut self.expect.nodes,
            session: &mut self.session,
            view,
            now,
            out,
            globals_checked: false,
            started_any: false,
            skipped_busy: false,
        };
        pass.check_postconditions();
        if pass.session.stopping().is_none() {
            pass.start_what_may_start();
        }
        let presence_checked = pass.view.presence_checked;
        self.expect.layout.presence_ok = presence_checked;
    }
}

/// What one pass reads and changes, borrowed apart from what its view of the cluster reads
/// (the tolerated violations and the layout), and what it found so far.
struct Pass<'r, 'v> {
    plan: &'r UpgradePlan,
    policy: &'r dyn SkewPolicy,
    retry: &'r RetryPolicy,
    run_id: Option<&'r str>,
    /// The baseline's NotReady nodes: not drift.
    not_ready_ok: &'r HashSet<NodeName>,
    schedule: &'r mut Schedule,
    nodes: &'r mut NodeExpectations,
    session: &'r mut Session,
    view: View<'v>,
    now: Timestamp,
    out: &'r mut Output,
    /// True once the global checks held in this pass.
    globals_checked: bool,
    /// True once a task started or was decided in this pass.
    started_any: bool,
    /// True once a due task was skipped because its node runs another.
    skipped_busy: bool,
}

impl Pass<'_, '_> {
    /// Checks the postconditions of the tasks due for it; a failed check halts the run (and
    /// is retried instead while the run goes on and the retry policy allows).
    fn check_postconditions(&mut self) {
        if !self.schedule.check_due(self.now) {
            return;
        }
        let retry = self.session.stopping().is_none().then_some(self.retry);
        let report = verify::check_due(
            self.plan,
            self.schedule,
            self.nodes,
            &mut self.view,
            retry,
            self.now,
            self.out,
        );
        if let Some(report) = report {
            self.session.halt(*report);
        }
    }

    /// Looks at the due tasks of the ready steps and starts what may start; marks the
    /// schedule stalled when every due task waited for a busy node.
    fn start_what_may_start(&mut self) {
        self.schedule.set_stalled(false);
        let looked_at_all = self.look_at_ready().is_continue();
        if looked_at_all && !self.started_any && self.skipped_busy {
            self.schedule.set_stalled(true);
        }
    }

    /// The due tasks of the ready steps, in plan order; `Break` when the look stopped before
    /// the end.
    fn look_at_ready(&mut self) -> ControlFlow<()> {
        let mut cursor = 0;
        while let Some(si) = self.schedule.ready_from(cursor) {
            cursor = si + 1;
            for ti in 0..self.schedule.tasks_in(si) {
                self.look_at(Pos::new(si, ti))?;
            }
        }
        Continue(())
    }

    /// Looks at the task at `pos`: skips it unless it is due and its node free; otherwise,
    /// once the global checks hold, decides an unsure task by the evidence, checks its
    /// preconditions and carries it out. `Break`: nothing more starts in this pass.
    fn look_at(&mut self, pos: Pos) -> ControlFlow<()> {
        if self.session.stopping().is_some() {
            return Break(());
        }
        let task_state = self.schedule.task(pos).state;
        if !task_state.is_due(self.now) {
            return Continue(());
        }
        if self.schedule.is_full() {
            return Break(());
        }
        if self.schedule.is_busy(self.plan, pos) {
            self.skipped_busy = true;
            return Continue(());
        }
        self.check_globals_once()?;
        if let TaskState::Unsure(why) = task_state {
            match checks::decide_unsure(self.plan, pos, why, &mut self.view) {
                Decision::Done(evidence) => {
                    let (plan, now) = (self.plan, self.now);
                    self.schedule
                        .already_done(plan, self.nodes, pos, evidence, now, self.out);
                    self.started_any = true;
                    return Continue(());
                }
                Decision::Rerun => {}
                Decision::Halt(report) => return self.halt(*report),
            }
        }
        if let Err(report) = checks::pre(self.plan, pos, &mut self.view) {
            return self.halt(*report);
        }
        self.carry_out(pos)
    }

    /// The checks that apply before any task, once a pass.
    fn check_globals_once(&mut self) -> ControlFlow<()> {
        if self.globals_checked {
            return Continue(());
        }
        let checked = checks::globals(self.policy, self.nodes, self.not_ready_ok, &mut self.view);
        if let Err(report) = checked {
            return self.halt(*report);
        }
        self.globals_checked = true;
        Continue(())
    }

    /// Carries out the task at `pos`, its checks passed: a check or an operator step is
    /// decided at once, any other task's work starts.
    fn carry_out(&mut self, pos: Pos) -> ControlFlow<()> {
        let ended = match pos.step(self.plan).action.executor() {
            Executor::Check => checks::inline_check(
                self.plan,
                self.nodes,
                self.not_ready_ok,
                pos,
                &mut self.view,
            ),
            Executor::Operator => checks::operator(self.plan, pos, &mut self.view),
            Executor::Node
            | Executor::Cluster
            | Executor::Provider
            | Executor::Gate
            | Executor::Local => return self.start(pos),
        };
        let (plan, now) = (self.plan, self.now);
        if let Err(report) = self
            .schedule
            .finish_inline(plan, self.nodes, pos, ended, now, self.out)
        {
            self.session.halt(*report);
        }
        self.started_any = true;
        Continue(())
    }

    /// Starts the work of the task at `pos` (its backups named by the run's id).
    fn start(&mut self, pos: Pos) -> ControlFlow<()> {
        match checks::work(self.plan, pos, &self.view) {
            Ok(work) => {
                let work = match self.run_id {
                    Some(id) => work.for_run(id),
                    None => work,
                };
                let (plan, now) = (self.plan, self.now);
                self.schedule
                    .start(plan, self.nodes, pos, work, now, self.out);
                self.started_any = true;
                Continue(())
            }
            Err(report) => self.halt(*report),
        }
    }

    /// Stops the run for `report`: nothing more starts.
    fn halt(&mut self, report: StopReport) -> ControlFlow<()> {
        self.session.halt(report);
        Break(())
    }
}
