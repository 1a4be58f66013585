//! The examples' release-data options, flattened into each command line with one line:
//! `--calendar FILE` and `--kubeadm-versions FILE` replace the embedded release calendar and
//! kubeadm version table (the JSON formats of kupgrade-core's `data/k8s-releases.json` and
//! `data/kubeadm-bundled-versions.json`); `--live-releases` reads the newest releases from
//! the release team's labels (`stable.txt`, `stable-1.N.txt` under `--release-base-url`), as
//! `kubeadm upgrade plan` does, and merges them over the calendar, falling back to the calendar
//! with a message when they cannot be read.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use kupgrade_core::Minor;
use kupgrade_core::bundled::BundleTable;
use kupgrade_core::lifecycle::ReleaseCalendar;
use kupgrade_core::plan::PlanWarning;
use kupgrade_exec::releases::LabelClient;

/// Where the release calendar and kubeadm's versions come from.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct ReleaseArgs {
    /// A release calendar (JSON, the format of kupgrade-core's data/k8s-releases.json) instead
    /// of the embedded one.
    #[arg(long, value_name = "FILE")]
    pub(crate) calendar: Option<PathBuf>,
    /// The etcd and CoreDNS versions kubeadm ships per minor (JSON, the format of
    /// kupgrade-core's data/kubeadm-bundled-versions.json) instead of the embedded table.
    #[arg(long, value_name = "FILE")]
    pub(crate) kubeadm_versions: Option<PathBuf>,
    /// Read the newest releases from the release team's version labels (stable.txt,
    /// stable-1.N.txt), as `kubeadm upgrade plan` does, and merge them over the calendar.
    #[arg(long)]
    pub(crate) live_releases: bool,
    /// With --live-releases: where the labels are (a mirror of dl.k8s.io/release).
    #[arg(long, value_name = "URL", default_value = LabelClient::DEFAULT_BASE_URL)]
    pub(crate) release_base_url: String,
    /// With --live-releases: seconds to wait for each label.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub(crate) release_timeout: u64,
}

impl ReleaseArgs {
    /// The release calendar to plan with (see the module docs), for a cluster whose oldest
    /// minor is `from` (the live labels are read from there to the newest). What the labels
    /// changed, and why they could not be read, goes to stderr.
    pub(crate) async fn load(&self, from: Option<Minor>) -> anyhow::Result<ReleaseCalendar> {
        let mut calendar = match &self.calendar {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                ReleaseCalendar::from_json(&text, &path.display().to_string())?
            }
            None => ReleaseCalendar::embedded().clone(),
        };
        if let Some(path) = &self.kubeadm_versions {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            calendar =
                calendar.with_bundles(BundleTable::from_json(&text, &path.display().to_string())?);
        }
        if !self.live_releases {
            return Ok(calendar);
        }
        let client = LabelClient::new(
            &self.release_base_url,
            Duration::from_secs(self.release_timeout),
        )?;
        let from = from
            .or_else(|| calendar.newest_stable(None).map(|v| v.minor()))
            .unwrap_or(Minor::new(1, 0));
        let fetched = match client.fetch(from).await {
            Ok(f) => f,
            Err(e) => {
                let known = calendar
                    .known_until()
                    .map_or_else(|| "unknown date".to_string(), |d| d.to_string());
                eprintln!("warning: {e}; using the calendar of {known}");
                return Ok(calendar);
            }
        };
        for problem in &fetched.problems {
            eprintln!("warning: {problem}; that minor's patches come from the calendar");
        }
        // The labels are as of today (the clock, not --date).
        let today = jiff::Zoned::now().date();
        let merged = calendar.merge_labels(&fetched.labels, today);
        let read = fetched.labels.minors.len() + 1;
        eprintln!(
            "live releases: {read} label(s) read from {} on {today}{}",
            self.release_base_url,
            if merged.changes.is_empty() {
                ", nothing new to the calendar"
            } else {
                ":"
            }
        );
        for change in &merged.changes {
            eprintln!("  {change}");
        }
        Ok(merged.calendar)
    }

    /// The release-data options given (`--calendar`, `--kubeadm-versions`, `--live-releases`),
    /// for refusing them where no plan is made.
    pub(crate) fn given(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.calendar.is_some() {
            out.push("--calendar");
        }
        if self.kubeadm_versions.is_some() {
            out.push("--kubeadm-versions");
        }
        if self.live_releases {
            out.push("--live-releases");
        }
        out
    }

    /// [`load`](Self::load) outside a runtime.
    pub(crate) fn load_blocking(&self, from: Option<Minor>) -> anyhow::Result<ReleaseCalendar> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(self.load(from))
    }

    /// Prints the warnings of a plan (or of the upgrades on offer) on stderr.
    pub(crate) fn print_warnings(&self, warnings: &[PlanWarning]) {
        for w in warnings {
            eprintln!("warning: {w}");
        }
    }
}
