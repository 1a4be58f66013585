//! The process groups commands run in, as the local and SSH runners track them: a token that
//! names a group for good, and how to tell from a node whether the group still runs.
//!
//! A process id can be reused once its process is gone, so a handle names its group by id
//! *and* by a token that the runner put in the command line of the group's leader (the local
//! runner's supervisor, the SSH session's login shell). Linux does not reuse an id while a
//! process group of that id has members, so:
//!
//! - no group of that id: ended;
//! - a group, and a process of that id whose command line holds the token: still running;
//! - a group, and a process of that id without the token: that process is another one, so
//!   the id was reused, so our group was gone first: ended;
//! - a group without a (live) process of that id: the leader ended, members it started
//!   remain: still running.
use std::sync::atomic::{AtomicU64, Ordering};

use kupgrade_core::ports::Liveness;

/// A token no other command of this or any other process will carry: `kupgrade-PID-NANOS-N`.
pub(crate) fn new_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "kupgrade-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether the group named by a handle still runs: `leader` is the command line of the process
/// whose id is the group's (`None` or empty: no live process of that id), `group` whether a
/// process group of that id exists.
pub(crate) fn judge(leader: Option<&[u8]>, group: bool, token: &str) -> Liveness {
    if !group {
        return Liveness::Ended;
    }
    match leader {
        Some(cmdline) if !cmdline.is_empty() => {
            if cmdline
                .windows(token.len().max(1))
                .any(|w| w == token.as_bytes())
            {
                Liveness::Running
            } else {
                Liveness::Ended
            }
        }
        _ => Liveness::Running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("kupgrade-{}-", std::process::id())));
    }

    #[test]
    fn judgements() {
        let t = "kupgrade-1-2-3";
        let ours = b"sh\0-c\0read\0kupgrade-supervisor\0kupgrade-1-2-3\0";
        assert_eq!(judge(Some(ours), true, t), Liveness::Running);
        assert_eq!(judge(Some(ours), false, t), Liveness::Ended);
        assert_eq!(judge(Some(b"bash\0"), true, t), Liveness::Ended);
        assert_eq!(judge(None, true, t), Liveness::Running);
        assert_eq!(judge(Some(b""), true, t), Liveness::Running);
        assert_eq!(judge(None, false, t), Liveness::Ended);
    }
}
