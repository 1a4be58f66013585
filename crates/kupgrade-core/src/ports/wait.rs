//! Waits given by users (a drain timeout, a plan file's wait, a command's timeout) are
//! numbers of any size; the adapters add them to a clock's "now". [`capped`] keeps that sum
//! from overflowing (and panicking): a wait longer than [`MAX_WAIT`] is a wait of a century.
use std::time::Duration;

/// The longest wait a port ever counts down: about a century, far longer than any run, and
/// short enough to add to any clock's "now".
pub const MAX_WAIT: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `d`, at most [`MAX_WAIT`]: `Instant::now() + capped(d)` never overflows.
///
/// ```
/// use kupgrade_core::ports::{MAX_WAIT, capped};
/// use std::time::{Duration, Instant};
/// let huge = Duration::from_secs(u64::MAX);
/// assert_eq!(capped(huge), MAX_WAIT);
/// let _far = Instant::now() + capped(huge); // no panic
/// assert_eq!(capped(Duration::from_secs(5)), Duration::from_secs(5));
/// ```
pub fn capped(d: Duration) -> Duration {
    d.min(MAX_WAIT)
}

/// `d` in whole milliseconds, saturating at `u64::MAX` (for clocks counted in milliseconds).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
