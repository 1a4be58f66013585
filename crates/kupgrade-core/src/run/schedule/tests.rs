use super::*;
use crate::plan::PlanRequest;

const HA: &str = include_str!("../../../../../examples/clusters/ha.yaml");

fn plan() -> UpgradePlan {
    let cluster = crate::inventory::parse(HA, "ha.yaml").unwrap();
    PlanRequest::new("1.29".parse().unwrap(), jiff::civil::date(2024, 6, 1))
        .plan(&cluster)
        .unwrap()
}

fn t0() -> Timestamp {
    "2026-11-25T10:00:00Z".parse().unwrap()
}

#[test]
fn the_check_finds_each_figure_that_disagrees_with_the_states() {
    let plan = plan();
    let mut nodes = NodeExpectations::new(&plan);
    let fresh = Schedule::new(&plan, 2).unwrap();
    assert_eq!(fresh.check(&plan), Ok(()));
    assert_eq!(fresh.startable, 1, "only the first step is ready");

    let mut s = Schedule::new(&plan, 2).unwrap();
    s.startable += 1;
    assert!(s.check(&plan).unwrap_err().contains("startable"));

    // A task marked running behind the schedule's back.
    let mut s = Schedule::new(&plan, 2).unwrap();
    s.task_mut(Pos::new(0, 0)).state = TaskState::Running { since: t0() };
    assert!(s.check(&plan).unwrap_err().contains("startable"));
    s.startable -= 1;
    assert!(s.check(&plan).unwrap_err().contains("in flight"));

    // Started and ended through the schedule, the figures follow; a step left out of
    // `ready` is found.
    let mut s = Schedule::new(&plan, 2).unwrap();
    let mut out = Output::default();
    let first = Pos::new(0, 0);
    let work = Work::Commands {
        commands: Vec::new(),
    };
    s.start(&plan, &mut nodes, first, work, t0(), &mut out);
    assert_eq!(s.check(&plan), Ok(()));
    let ran = s.release(&first.id(&plan), 1).unwrap();
    s.succeeded(&plan, &mut nodes, ran, TaskEnd::succeeded(), t0(), &mut out);
    assert_eq!(s.check(&plan), Ok(()));
    assert_eq!(s.progress().0, 1);
    let next = s.ready_from(0).unwrap();
    s.ready.remove(&next);
    assert!(s.check(&plan).unwrap_err().contains("ready"));

    // A first check counted due although no task waits for one; a step's tasks in flight
    // miscounted.
    let mut s = Schedule::new(&plan, 2).unwrap();
    s.unchecked_idle += 1;
    assert!(s.check(&plan).unwrap_err().contains("checks"));
    let mut s = Schedule::new(&plan, 2).unwrap();
    s.running_in[0] += 1;
    assert!(s.check(&plan).unwrap_err().contains("by step"));

    // A retry the schedule does not know of.
    let mut s = Schedule::new(&plan, 2).unwrap();
    s.retries.insert((t0(), Pos::new(0, 0)));
    assert!(s.check(&plan).unwrap_err().contains("retries"));
}
