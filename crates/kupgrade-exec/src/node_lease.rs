//! The run lease without a Kubernetes API: a file on the first control-plane node, read and
//! swapped through the node runner, so that two runs never drive one cluster.
//!
//! `DIR/cluster.lease` (default [`NodeLease::DEFAULT_DIR`], `/var/lib/kupgrade`, kept across
//! reboots) holds six lines: the file's generation (its version: a counter of writes, never
//! reset), the holder, the plan's fingerprint, when it was taken and last renewed (RFC 3339,
//! the operator's clock), and its duration in seconds. A release writes an empty holder, so
//! the generation goes on counting and a version once read never comes back. A swap runs in
//! one command under `flock` on `DIR/cluster.lease.lock` and writes only when the generation
//! is still the one read; the new file is written beside and renamed over the old one, so a
//! read never sees half a lease.
//!
//! Who may take the lease is decided by the rules every store shares
//! ([`kupgrade_core::ports::judge`], through [`LeaseStoreExt`](kupgrade_core::ports::LeaseStoreExt)).
//! The directory and every value reach the node as arguments of a fixed script, never as
//! shell text.
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kupgrade_core::NodeName;
use kupgrade_core::ports::{
    CommandRunner, CommandRunnerExt, CommandSpec, ExitStatus, LeaseError, LeaseRecord, LeaseStore,
    Stored,
};

/// The lease command: `sh -c SCRIPT kupgrade-lease DIR OP GEN [HOLDER FP ACQUIRED RENEWED
/// SECONDS]`, where OP is `read` (prints the file) or `swap` (writes the record, or an empty
/// holder when HOLDER is empty, if the generation is still GEN; else prints the generation it
/// found and ends with status 77).
const SCRIPT: &str = r#"d=$1 op=$2 want=$3
f="$d/cluster.lease"
if [ "$op" = read ]; then
  [ -f "$f" ] && exec cat "$f"
  exit 0
fi
[ -d "$d" ] || command -p mkdir -p "$d" || exit 70
exec 9>>"$f.lock" || exit 70
command -p flock -w 30 9 || exit 71
gen=
[ -s "$f" ] && IFS= read -r gen <"$f"
[ "$gen" = "$want" ] || { printf '%s\n' "$gen"; exit 77; }
printf '%s\n' "$((${gen:-0} + 1))" "$4" "$5" "$6" "$7" "$8" >"$f.new" && command -p mv -f "$f.new" "$f"
"#;

/// The run lease as a file on a node, reached through any [`CommandRunner`].
#[derive(Clone)]
pub struct NodeLease {
    runner: Arc<dyn CommandRunner>,
    node: NodeName,
    dir: String,
}

impl std::fmt::Debug for NodeLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeLease")
            .field("node", &self.node)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl NodeLease {
    /// Where the lease file is kept on the node unless told otherwise.
    pub const DEFAULT_DIR: &'static str = "/var/lib/kupgrade";

    /// The lease in [`NodeLease::DEFAULT_DIR`] on `node`, through `runner` (commands run with
    /// sudo).
    pub fn new(runner: Arc<dyn CommandRunner>, node: NodeName) -> Self {
        NodeLease {
            runner,
            node,
            dir: Self::DEFAULT_DIR.into(),
        }
    }

    /// Keeps the lease file in `dir` on the node instead.
    pub fn dir(mut self, dir: impl Into<String>) -> Self {
        self.dir = dir.into();
        self
    }

    fn file(&self) -> String {
        format!("{}/cluster.lease", self.dir)
    }

    fn error(&self, message: String, source: Option<kupgrade_core::ports::BoxError>) -> LeaseError {
        LeaseError::Store {
            place: self.place(),
            message,
            source,
        }
    }

    async fn exchange(&self, args: &[&str]) -> Result<(ExitStatus, String), LeaseError> {
        let spec = CommandSpec::new("sh")
            .args(["-c", SCRIPT, "kupgrade-lease", &self.dir])
            .args(args.iter().copied())
            .sudo()
            .timeout(Duration::from_secs(60));
        let out =
            self.runner.output(&self.node, &spec).await.map_err(|e| {
                self.error(format!("the lease command failed: {e}"), Some(Box::new(e)))
            })?;
        match out.status {
            ExitStatus::Code(0) | ExitStatus::Code(77) => Ok((out.status, out.stdout_text())),
            other => Err(self.error(
                format!(
                    "the lease command ended with {other} (is util-linux's flock installed?): {}",
                    out.stderr_text().trim()
                ),
                None,
            )),
        }
    }
}

/// Reads the file's lines: the generation, then the record (`None` when its holder is empty).
fn parse(text: &str) -> Result<(Option<String>, Option<LeaseRecord>), String> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(generation) = lines.first().filter(|g| !g.is_empty()) else {
        return Ok((None, None));
    };
    if lines.get(1).is_none_or(|h| h.is_empty()) {
        return Ok((Some(generation.to_string()), None));
    }
    let [_, holder, fingerprint, acquired, renewed, seconds] = lines[..] else {
        return Err(format!("{} lines, expected 6", lines.len()));
    };
    let time = |what: &str, s: &str| {
        s.parse()
            .map_err(|e| format!("{what} {s:?} is not a time: {e}"))
    };
    Ok((
        Some(generation.to_string()),
        Some(LeaseRecord {
            holder: holder.into(),
            fingerprint: fingerprint.into(),
            acquired: time("acquired", acquired)?,
            renewed: time("renewed", renewed)?,
            seconds: seconds
                .parse()
                .map_err(|e| format!("seconds {seconds:?}: {e}"))?,
        }),
    ))
}

#[async_trait]
impl LeaseStore for NodeLease {
    fn place(&self) -> String {
        format!("{}:{}", self.node, self.file())
    }

    async fn read(&self) -> Result<Stored, LeaseError> {
        let (_, text) = self.exchange(&["read", ""]).await?;
        let (version, record) = parse(&text)
            .map_err(|e| self.error(format!("{} is damaged: {e}", self.file()), None))?;
        Ok(Stored { record, version })
    }

    async fn swap(
        &self,
        version: Option<&str>,
        record: Option<&LeaseRecord>,
    ) -> Result<(), LeaseError> {
        let fields = match record {
            Some(r) => {
                if [&r.holder, &r.fingerprint]
                    .iter()
                    .any(|s| s.is_empty() || s.contains(['\n', '\r']))
                {
                    return Err(self.error(
                        format!(
                            "a lease's holder and plan must be one non-empty line each: {:?}, {:?}",
                            r.holder, r.fingerprint
                        ),
                        None,
                    ));
                }
                [
                    r.holder.clone(),
                    r.fingerprint.clone(),
                    r.acquired.to_string(),
                    r.renewed.to_string(),
                    r.seconds.to_string(),
                ]
            }
            None => Default::default(),
        };
        let mut args = vec!["swap", version.unwrap_or("")];
        args.extend(fields.iter().map(String::as_str));
        match self.exchange(&args).await? {
            (ExitStatus::Code(0), _) => Ok(()),
            _ => Err(LeaseError::Conflict {
                place: self.place(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn the_file_reads_back_and_damage_is_named() {
        assert_eq!(parse("").unwrap(), (None, None));
        assert_eq!(parse("7\n\n\n\n\n\n").unwrap(), (Some("7".into()), None));
        let (g, r) = parse(
            "3\nrun-a (pid 1 on ops-1)\nfp\n2026-12-07T04:00:00Z\n2026-12-07T04:00:20Z\n60\n",
        )
        .unwrap();
        assert_eq!(g.as_deref(), Some("3"));
        let r = r.unwrap();
        assert_eq!(
            (r.holder.as_str(), r.seconds),
            ("run-a (pid 1 on ops-1)", 60)
        );
        assert_eq!(r.renewed.to_string(), "2026-12-07T04:00:20Z");
        let e = parse("3\nrun-a\nfp\nyesterday\nnow\n60\n").unwrap_err();
        assert!(
            e.starts_with("acquired \"yesterday\" is not a time: "),
            "{e}"
        );
        assert_eq!(parse("3\nrun-a\n").unwrap_err(), "2 lines, expected 6");
    }
}
