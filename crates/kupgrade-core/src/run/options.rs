//! How a run behaves: how many tasks at once, and how failed tasks are retried.
use std::time::Duration;

/// How a run behaves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// The most tasks in flight at once; `None`: the plan's `maxParallel` (every node of the
    /// largest step at once).
    pub max_parallel: Option<usize>,
    /// Retries of failed tasks that are safe to repeat.
    pub retry: RetryPolicy,
}

/// Retries with exponential backoff, for tasks that are safe to repeat and failures that
/// trying again may cure. Counted per session: a resume starts afresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per task per session, the first included (1: no retries).
    pub max_attempts: u32,
    /// Wait before the first retry.
    pub initial: Duration,
    /// Each further wait is this many times the one before.
    pub factor: u32,
    /// The longest wait.
    pub max: Duration,
    /// How long a task whose node cannot be reached (connection refused or timed out, host
    /// down) is tried again, from its first such failure in the session, with the same
    /// backoff. These failures do not count against `max_attempts`: a node that reboots or
    /// whose sshd restarts is waited for rather than halting the run. Zero: an unreachable
    /// node is tried again only within `max_attempts`.
    pub unreachable_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial: Duration::from_secs(5),
            factor: 2,
            max: Duration::from_secs(60),
            unreachable_wait: Duration::from_secs(5 * 60),
        }
    }
}

impl RetryPolicy {
    /// No retries, not even for an unreachable node.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            unreachable_wait: Duration::ZERO,
            ..RetryPolicy::default()
        }
    }

    /// The wait after the `failures`-th failure (1-based).
    ///
    /// ```
    /// use kupgrade_core::run::RetryPolicy;
    /// use std::time::Duration;
    /// let p = RetryPolicy::default();
    /// assert_eq!(p.delay(1), Duration::from_secs(5));
    /// assert_eq!(p.delay(2), Duration::from_secs(10));
    /// assert_eq!(p.delay(9), Duration::from_secs(60));
    /// ```
    pub fn delay(&self, failures: u32) -> Duration {
        let mut d = self.initial;
        for _ in 1..failures {
            d = d.saturating_mul(self.factor.max(1));
            if d >= self.max {
                return self.max;
            }
        }
        d.min(self.max)
    }
}
