//! What each call of the run returns.
use super::event::Event;
use super::record::Record;
use super::task::Task;

/// What [`Run::next`], [`Run::record`], [`Run::resolve`] and [`Run::cancel`] return: tasks
/// to start, journal records to append (before starting the tasks), and events.
///
/// [`Run::next`]: super::Run::next
/// [`Run::record`]: super::Run::record
/// [`Run::resolve`]: super::Run::resolve
/// [`Run::cancel`]: super::Run::cancel
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    /// Tasks to start now (only from [`Run::next`](super::Run::next)).
    pub tasks: Vec<Task>,
    /// Records for the journal, in order.
    pub records: Vec<Record>,
    /// Events for watchers, in order.
    pub events: Vec<Event>,
}
