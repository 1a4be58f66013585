//! The bounded event queue between a [`Driver`](crate::driver::Driver) and its watcher.
//!
//! A node command can print millions of lines; each would be an [`Event::CommandOutput`].
//! Sending never waits (a slow display must not slow the command), so the queue bounds what
//! it holds instead: at most `output_lines` output lines wait at a time, and a line that
//! finds the queue full is dropped and counted. The count reaches the watcher as one
//! [`Event::OutputDropped`] per task, where the gap was. Every other event (plan, step, node
//! events) is always queued: there are a few per task, so they are bounded by the plan.
//!
//! ```
//! use kupgrade_core::ports::Stream;
//! use kupgrade_core::plan::StepId;
//! use kupgrade_core::run::{Event, TaskId};
//! use kupgrade_exec::events::event_channel;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (tx, mut rx) = event_channel(2);
//! let task = TaskId::new(StepId("upgrade/cp-1/kubeadm".into()), None);
//! for n in 0..5 {
//!     tx.send(Event::CommandOutput { task: task.clone(), stream: Stream::Stdout, line: n.to_string() });
//! }
//! drop(tx);
//! let mut seen = Vec::new();
//! while let Some(e) = rx.recv().await {
//!     seen.push(e);
//! }
//! assert_eq!(seen.len(), 3);
//! assert_eq!(seen[2], Event::OutputDropped { task, lines: 3 });
//! assert_eq!(rx.dropped(), 3);
//! # }
//! ```
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use kupgrade_core::run::{Event, TaskId};
use tokio::sync::Notify;

/// How many output lines wait for a watcher, by default, before new ones are dropped.
pub const DEFAULT_OUTPUT_LINES: usize = 4096;

/// A connected [`EventSender`] and [`EventReceiver`] holding at most `output_lines` command
/// output lines (at least 1) at a time. See the [module documentation](self).
pub fn event_channel(output_lines: usize) -> (EventSender, EventReceiver) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            events: VecDeque::new(),
            output: 0,
            capacity: output_lines.max(1),
            gaps: Vec::new(),
            dropped: 0,
            senders: 1,
            receiving: true,
        }),
        notify: Notify::new(),
    });
    (
        EventSender {
            shared: shared.clone(),
        },
        EventReceiver { shared },
    )
}

struct Shared {
    queue: Mutex<Queue>,
    notify: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while the lock was held leaves a queue that is still consistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The queue. Invariant: `output` counts the output lines and gap markers in `events`; it is
/// at most `capacity` plus one marker per task whose gap another event closed; `gaps` holds,
/// per task, the lines dropped since its last marker.
struct Queue {
    events: VecDeque<Event>,
    output: usize,
    capacity: usize,
    gaps: Vec<(TaskId, u64)>,
    dropped: u64,
    senders: usize,
    receiving: bool,
}

impl Queue {
    fn push(&mut self, event: Event) {
        match event {
            Event::CommandOutput { ref task, .. } => {
                let gap = self.gaps.iter().position(|(t, _)| t == task);
                let needed = 1 + usize::from(gap.is_some());
                if self.output + needed > self.capacity {
                    self.dropped += 1;
                    match gap {
                        Some(i) => self.gaps[i].1 += 1,
                        None => self.gaps.push((task.clone(), 1)),
                    }
                    return;
                }
                if let Some(i) = gap {
                    let (task, lines) = self.gaps.remove(i);
                    self.events.push_back(Event::OutputDropped { task, lines });
                }
                self.output += needed;
                self.events.push_back(event);
            }
            event => {
                // The gaps come before whatever follows them (a task's `StepFinished`).
                self.flush_gaps();
                self.events.push_back(event);
            }
        }
    }

    fn flush_gaps(&mut self) {
        for (task, lines) in self.gaps.drain(..) {
            self.output += 1;
            self.events.push_back(Event::OutputDropped { task, lines });
        }
    }

    fn pop(&mut self) -> Option<Event> {
        if self.events.is_empty() {
            self.flush_gaps();
        }
        let e = self.events.pop_front()?;
        if matches!(e, Event::CommandOutput { .. } | Event::OutputDropped { .. }) {
            self.output = self.output.saturating_sub(1);
        }
        Some(e)
    }
}

/// The driver's side: queues events without ever waiting. Cheap to clone.
pub struct EventSender {
    shared: Arc<Shared>,
}

impl EventSender {
    /// Queues `event`; a command output line that finds the queue full is dropped and
    /// counted. Does nothing once the receiver is gone.
    pub fn send(&self, event: Event) {
        {
            let mut q = self.shared.lock();
            if !q.receiving {
                return;
            }
            q.push(event);
        }
        self.shared.notify.notify_one();
    }
}

impl Clone for EventSender {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        EventSender {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for EventSender {
    fn drop(&mut self) {
        self.shared.lock().senders -= 1;
        self.shared.notify.notify_one();
    }
}

impl std::fmt::Debug for EventSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSender").finish_non_exhaustive()
    }
}

/// The watcher's side.
pub struct EventReceiver {
    shared: Arc<Shared>,
}

impl EventReceiver {
    /// The next event, waiting for one; `None` once every sender is gone and the queue is
    /// empty.
    pub async fn recv(&mut self) -> Option<Event> {
        loop {
            {
                let mut q = self.shared.lock();
                if let Some(e) = q.pop() {
                    return Some(e);
                }
                if q.senders == 0 {
                    return None;
                }
            }
            // `notify_one` keeps a permit when nobody waits, so no wake-up is lost.
            self.shared.notify.notified().await;
        }
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.shared.lock().pop()
    }

    /// Every event queued now, oldest first, without waiting for more.
    pub fn take_queued(&mut self) -> Vec<Event> {
        let mut q = self.shared.lock();
        std::iter::from_fn(|| q.pop()).collect()
    }

    /// How many output lines were dropped so far, in all.
    pub fn dropped(&self) -> u64 {
        self.shared.lock().dropped
    }
}

impl Drop for EventReceiver {
    fn drop(&mut self) {
        let mut q = self.shared.lock();
        q.receiving = false;
        q.events.clear();
        q.gaps.clear();
        q.output = 0;
    }
}

impl std::fmt::Debug for EventReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReceiver").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kupgrade_core::ports::Stream;

    fn line(task: &TaskId, n: usize) -> Event {
        Event::CommandOutput {
            task: task.clone(),
            stream: Stream::Stdout,
            line: n.to_string(),
        }
    }

    fn task(s: &str) -> TaskId {
        TaskId::new(kupgrade_core::plan::StepId(s.into()), None)
    }

    #[test]
    fn drops_output_beyond_the_bound_and_reports_the_gap_before_the_step_ends() {
        let (tx, mut rx) = event_channel(3);
        let (a, b) = (task("s1@n-1"), task("s1@n-2"));
        for n in 0..10 {
            tx.send(line(&a, n));
        }
        tx.send(line(&b, 0));
        let op = Event::OperatorAction {
            at: jiff::Timestamp::UNIX_EPOCH,
            task: a.clone(),
            instructions: "x".into(),
        };
        tx.send(op.clone());
        let seen: Vec<Event> = std::iter::from_fn(|| rx.try_recv()).collect();
        assert_eq!(
            seen,
            [
                line(&a, 0),
                line(&a, 1),
                line(&a, 2),
                Event::OutputDropped {
                    task: a.clone(),
                    lines: 7
                },
                Event::OutputDropped { task: b, lines: 1 },
                op,
            ]
        );
        assert_eq!(rx.dropped(), 8);
    }

    #[test]
    fn a_gap_is_reported_where_the_task_output_resumes() {
        let (tx, mut rx) = event_channel(2);
        let a = task("s1@n-1");
        for n in 0..4 {
            tx.send(line(&a, n));
        }
        assert_eq!(rx.try_recv(), Some(line(&a, 0)));
        assert_eq!(rx.try_recv(), Some(line(&a, 1)));
        // Room for the marker and the next line.
        tx.send(line(&a, 4));
        assert_eq!(
            rx.try_recv(),
            Some(Event::OutputDropped {
                task: a.clone(),
                lines: 2
            })
        );
        assert_eq!(rx.try_recv(), Some(line(&a, 4)));
        assert_eq!(rx.try_recv(), None);
    }

    #[test]
    fn other_events_are_never_dropped() {
        let (tx, mut rx) = event_channel(1);
        let a = task("s1@n-1");
        tx.send(line(&a, 0));
        for _ in 0..100 {
            tx.send(Event::WouldRun {
                task: a.clone(),
                what: "x".into(),
            });
        }
        let seen: Vec<Event> = std::iter::from_fn(|| rx.try_recv()).collect();
        assert_eq!(seen.len(), 101);
    }

    #[tokio::test]
    async fn recv_ends_when_every_sender_is_gone() {
        let (tx, mut rx) = event_channel(8);
        let tx2 = tx.clone();
        let a = task("s1@n-1");
        let h = tokio::spawn(async move {
            tx2.send(line(&a, 0));
        });
        drop(tx);
        h.await.unwrap();
        assert!(rx.recv().await.is_some());
        assert_eq!(rx.recv().await, None);
    }
}
