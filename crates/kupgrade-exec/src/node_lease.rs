//! The run lease without a Kubernetes API: a file on the first control-plane node, written
//! through the node runner, so that two runs never drive one cluster.
//!
//! `DIR/cluster.lease` (default `/run/kupgrade`) holds three lines: the holder (host, process,
//! journal), the plan's fingerprint, and the expiry in seconds since the epoch on the node's
//! clock. Every read-and-write happens in one command under `flock` on `DIR/cluster.lease.lock`,
//! so taking the lease is atomic. The rules are those of the Kubernetes Lease (see
//! `kupgrade_kube::lease`): free or ours, taken; held and not expired, refused naming the
//! holder; expired, taken over only by a resume of the same plan, or by force.
use std::sync::Arc;
use std::time::Duration;

use kupgrade_core::NodeName;
use kupgrade_core::ports::{CommandRunner, CommandRunnerExt, CommandSpec, ExitStatus, RunnerError};
use tokio::task::JoinHandle;

/// Who takes the lease, for which plan, and how.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Claim {
    /// Who takes it, in words (control characters become spaces).
    pub holder: String,
    /// The fingerprint of the run's plan.
    pub fingerprint: String,
    /// True when the run goes on from its journal: it may take over an expired lease of the
    /// same plan.
    pub resuming: bool,
    /// Take an expired lease whatever its plan.
    pub force: bool,
    /// The option that sets [`Claim::force`], for the refusal's message.
    pub force_flag: String,
    /// How long it lasts unless renewed (renewed every third of it).
    pub duration: Duration,
    /// The directory of the lease file on the node.
    pub dir: String,
}

impl Claim {
    /// A claim of `holder` for the plan `fingerprint`: not resuming, not forced, 60 s, in
    /// `/run/kupgrade`.
    pub fn new(holder: &str, fingerprint: impl Into<String>) -> Self {
        Claim {
            holder: holder
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
            fingerprint: fingerprint.into(),
            resuming: false,
            force: false,
            force_flag: "--force-lease".into(),
            duration: Duration::from_secs(60),
            dir: "/run/kupgrade".into(),
        }
    }
    /// Whether the run goes on from its journal.
    pub fn resuming(mut self, yes: bool) -> Self {
        self.resuming = yes;
        self
    }
    /// Whether to take an expired lease whatever its plan, and the option that says so.
    pub fn force(mut self, yes: bool, flag: impl Into<String>) -> Self {
        self.force = yes;
        self.force_flag = flag.into();
        self
    }
    /// How long it lasts unless renewed.
    pub fn duration(mut self, d: Duration) -> Self {
        self.duration = d;
        self
    }
    /// The directory of the lease file on the node.
    pub fn dir(mut self, dir: impl Into<String>) -> Self {
        self.dir = dir.into();
        self
    }
}

/// Why the lease was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeLeaseError {
    /// Another run holds it.
    #[error(
        "another run drives this cluster: {node}:{file} is held by {holder} (plan {fingerprint}) until {expires} (node clock, seconds since 1970); wait for it to end"
    )]
    Held {
        /// The node.
        node: NodeName,
        /// The lease file.
        file: String,
        /// Its holder.
        holder: String,
        /// The holder's plan.
        fingerprint: String,
        /// When it expires unless renewed.
        expires: String,
    },
    /// Its holder stopped renewing it, and this run is not that run going on.
    #[error(
        "{node}:{file} was held by {holder} (plan {fingerprint}) and expired at {expired} (node clock), but this run {why}: make sure that run is over, then pass {force_flag} to take the lease over"
    )]
    Stale {
        /// The node.
        node: NodeName,
        /// The lease file.
        file: String,
        /// Its last holder.
        holder: String,
        /// The holder's plan.
        fingerprint: String,
        /// When it expired.
        expired: String,
        /// Why the journal does not agree.
        why: String,
        /// The option that forces it.
        force_flag: String,
    },
    /// The command on the node failed.
    #[error("cannot use the run lease on {node}: {message}")]
    Node {
        /// The node.
        node: NodeName,
        /// What happened.
        message: String,
        /// The runner's error, if that was it.
        #[source]
        source: Option<RunnerError>,
    },
}

/// The lease command: `sh -c SCRIPT kupgrade-lease DIR MODE HOLDER FP SECONDS TAKEOVER`, where
/// MODE is `take`, `renew` or `release` and TAKEOVER is `any` (forced), `same` (a resume: an
/// expired lease of the same plan) or `none`. Prints `held|stale|lost HOLDER`, then `FP` and
/// `EXPIRY` lines, with exit status 77 when it did not write.
const SCRIPT: &str = r#"d=$1 mode=$2 me=$3 fp=$4 secs=$5 takeover=$6
f="$d/cluster.lease"
[ -d "$d" ] || command -p mkdir -p "$d" || exit 70
exec 9>>"$f.lock" || exit 70
command -p flock -w 30 9 || exit 71
now=$(command -p date +%s)
h= hfp= exp=0
if [ -s "$f" ]; then { IFS= read -r h; IFS= read -r hfp; IFS= read -r exp; } <"$f"; fi
if [ -n "$h" ] && [ "$h" != "$me" ]; then
  if [ "$mode" != take ]; then printf 'lost\n%s\n%s\n%s\n' "$h" "$hfp" "$exp"; exit 77; fi
  if [ "$exp" -gt "$now" ]; then printf 'held\n%s\n%s\n%s\n' "$h" "$hfp" "$exp"; exit 77; fi
  case "$takeover" in
    any) ;;
    same) [ "$hfp" = "$fp" ] || { printf 'stale\n%s\n%s\n%s\n' "$h" "$hfp" "$exp"; exit 77; } ;;
    *) printf 'stale\n%s\n%s\n%s\n' "$h" "$hfp" "$exp"; exit 77 ;;
  esac
fi
if [ "$mode" = release ]; then command -p rm -f "$f"; exit 0; fi
printf '%s\n%s\n%s\n' "$me" "$fp" "$((now + secs))" >"$f.new" && command -p mv -f "$f.new" "$f"
"#;

/// The run lease on a node, renewed in the background until [`NodeLease::release`] or drop.
pub struct NodeLease {
    runner: Arc<dyn CommandRunner>,
    node: NodeName,
    claim: Claim,
    renewer: JoinHandle<()>,
}

impl std::fmt::Debug for NodeLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeLease")
            .field("node", &self.node)
            .field("claim", &self.claim)
            .finish_non_exhaustive()
    }
}

/// What the lease command answered: `Ok` when it wrote, else the line it printed and the
/// holder, plan and expiry it found.
async fn exchange(
    runner: &dyn CommandRunner,
    node: &NodeName,
    claim: &Claim,
    mode: &str,
) -> Result<Result<(), [String; 4]>, NodeLeaseError> {
    let takeover = if claim.force {
        "any"
    } else if claim.resuming {
        "same"
    } else {
        "none"
    };
    let spec = CommandSpec::new("sh")
        .args([
            "-c",
            SCRIPT,
            "kupgrade-lease",
            &claim.dir,
            mode,
            &claim.holder,
            &claim.fingerprint,
            &claim.duration.as_secs().max(1).to_string(),
            takeover,
        ])
        .sudo()
        .timeout(Duration::from_secs(60));
    let out = runner
        .output(node, &spec)
        .await
        .map_err(|e| NodeLeaseError::Node {
            node: node.clone(),
            message: format!("the lease command failed: {e}"),
            source: Some(e),
        })?;
    match out.status {
        ExitStatus::Code(0) => Ok(Ok(())),
        ExitStatus::Code(77) => {
            let text = out.stdout_text();
            let mut lines = text.lines().map(str::to_string);
            let mut next = || lines.next().unwrap_or_default();
            Ok(Err([next(), next(), next(), next()]))
        }
        other => Err(NodeLeaseError::Node {
            node: node.clone(),
            message: format!(
                "the lease command in {} ended with {other} (is util-linux's flock installed?): {}",
                claim.dir,
                out.stderr_text().trim()
            ),
            source: None,
        }),
    }
}

impl NodeLease {
    /// Takes the lease on `node` as `claim` says, and starts renewing it.
    pub async fn acquire(
        runner: Arc<dyn CommandRunner>,
        node: NodeName,
        claim: Claim,
    ) -> Result<NodeLease, NodeLeaseError> {
        if let Err([what, holder, fingerprint, at]) =
            exchange(runner.as_ref(), &node, &claim, "take").await?
        {
            let file = format!("{}/cluster.lease", claim.dir);
            return Err(if what == "held" {
                NodeLeaseError::Held {
                    node,
                    file,
                    holder,
                    fingerprint,
                    expires: at,
                }
            } else {
                let why = if fingerprint != claim.fingerprint {
                    format!("runs another plan ({})", claim.fingerprint)
                } else {
                    "starts afresh instead of resuming its journal".into()
                };
                NodeLeaseError::Stale {
                    node,
                    file,
                    holder,
                    fingerprint,
                    expired: at,
                    why,
                    force_flag: claim.force_flag.clone(),
                }
            });
        }
        let (r, n, c) = (runner.clone(), node.clone(), claim.clone());
        let renewer = tokio::spawn(async move {
            let every = (c.duration / 3).max(Duration::from_secs(1));
            loop {
                tokio::time::sleep(every).await;
                match exchange(r.as_ref(), &n, &c, "renew").await {
                    Ok(Ok(())) => {}
                    Ok(Err([_, holder, ..])) => {
                        tracing::error!(
                            "the run lease on {n} is now held by {holder}: this run no longer holds the cluster"
                        );
                        return;
                    }
                    Err(e) => tracing::warn!("cannot renew the run lease: {e}"),
                }
            }
        });
        Ok(NodeLease {
            runner,
            node,
            claim,
            renewer,
        })
    }

    /// Stops renewing and removes the lease, if this run still holds it.
    pub async fn release(self) -> Result<(), NodeLeaseError> {
        self.renewer.abort();
        exchange(self.runner.as_ref(), &self.node, &self.claim, "release")
            .await
            .map(|_| ())
    }
}

impl Drop for NodeLease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}
