//! [`RunReport`]: the run's HTML page ([`html_run`]) kept in a file while the run goes on.
//!
//! The page is rendered from the plan and the journal's records only ([`RunSummary`]): a
//! report of a resumed run starts from the records of the sessions before, and
//! [`RunReport::write_once`] makes one from any journal after the fact.
//!
//! Guarantees:
//! - The file is replaced atomically: the page goes to a temporary file in the same folder,
//!   which is then renamed over it, so a reader sees the previous page or the new one, never
//!   half of one.
//! - Throttled: as records arrive ([`ReportingJournal`]), the page is rewritten (a step's
//!   start or end, an operator's decision, any record) only when [`RunReport::every`]
//!   (default [`DEFAULT_EVERY`]) has passed since the last write, and at least
//!   [`RunReport::ratio`] (default [`DEFAULT_RATIO`]: ten) times as long as the last write
//!   took: the page costs at most about a tenth of the run's time,
//!   however large the run (a page of tens of thousands of nodes takes a while to render). A
//!   session's end is always written, and [`RunReport::finish`] writes the last page.
//! - A report that cannot be written never stops the run: [`ReportingJournal`] logs the
//!   error (a `tracing` warning) and the run goes on; [`RunReport::finish`] returns it.
//!
//! ```
//! use std::sync::Arc;
//! use kupgrade_core::plan::PlanRequest;
//! use kupgrade_core::run::{Run, RunOptions};
//! use kupgrade_core::skew::UpstreamPolicy;
//! use kupgrade_exec::driver::Driver;
//! use kupgrade_exec::report::{ReportingJournal, RunReport};
//! use kupgrade_exec::sim::SimCluster;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let text = "nodes:\n  - name: cp-1\n    roles: [control-plane]\n    versions: { kubelet: v1.29.10, kubeadm: v1.29.10, kubectl: v1.29.10, kube-apiserver: v1.29.10, kube-controller-manager: v1.29.10, kube-scheduler: v1.29.10, etcd: 3.5.10-0 }\n";
//! let cluster = kupgrade_core::inventory::parse(text, "cluster.yaml")?;
//! let plan = Arc::new(PlanRequest::new("1.30".parse()?, jiff::civil::date(2025, 3, 1)).plan(&cluster)?);
//! let sim = Arc::new(SimCluster::new(cluster));
//! let mut run = Run::new(plan.clone(), Arc::new(UpstreamPolicy::new()), RunOptions::default())?;
//! let dir = tempfile::tempdir()?;
//! let mut report = RunReport::new(dir.path().join("run.html"), plan, &[]);
//! let mut journal = Vec::new();
//! let mut sink = ReportingJournal::new(&mut journal, &mut report);
//! Driver::new(sim.clone(), sim.clone()).drive(&mut run, &mut sink).await?;
//! report.finish()?;
//! let page = std::fs::read_to_string(dir.path().join("run.html"))?;
//! assert!(page.contains("<h2>Completed</h2>"));
//! # Ok(()) }
//! ```
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kupgrade_core::plan::UpgradePlan;
use kupgrade_core::plan::render::{RunHtmlExtras, html_run};
use kupgrade_core::readiness::Readiness;
use kupgrade_core::run::{Record, RecordKind, RunSummary};

use crate::driver::JournalSink;
use crate::journal::JournalError;

/// How often, at most, the page is rewritten while the run goes on: every 5 seconds.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(5);

/// The page is rewritten no sooner than ten times its last write took after it: at most about
/// a tenth of the run's time goes to the page.
pub const DEFAULT_RATIO: u32 = 10;

/// Why the report could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the run report {}: {source}", path.display())]
pub struct ReportError {
    /// The report file.
    pub path: PathBuf,
    /// What failed.
    #[source]
    pub source: io::Error,
}

/// The run's HTML page in a file, kept as the journal grows. See the
/// [module documentation](self).
#[derive(Debug)]
pub struct RunReport {
    path: PathBuf,
    plan: Arc<UpgradePlan>,
    summary: RunSummary,
    resume: Option<String>,
    readiness: Option<Readiness>,
    every: Duration,
    last_write: Option<Instant>,
    /// How long the last write took (rendering included).
    took: Duration,
    /// The page is rewritten no sooner than this many times `took` after the last write.
    ratio: u32,
    writes: u64,
}

impl RunReport {
    /// The report of a run of `plan` at `path`, with the `records` its journal already holds
    /// (a resume's earlier sessions; none for a new run). Nothing is written yet.
    pub fn new(path: impl Into<PathBuf>, plan: Arc<UpgradePlan>, records: &[Record]) -> Self {
        let summary = RunSummary::from_records(&plan, records);
        RunReport {
            path: path.into(),
            plan,
            summary,
            resume: None,
            readiness: None,
            every: DEFAULT_EVERY,
            last_write: None,
            took: Duration::ZERO,
            ratio: DEFAULT_RATIO,
            writes: 0,
        }
    }

    /// The command that resumes the run, shown when it stopped before the end.
    pub fn resume_command(mut self, line: impl Into<String>) -> Self {
        self.resume = Some(line.into());
        self
    }

    /// The pre-flight findings of this session, listed on the page hop by hop.
    pub fn readiness(mut self, findings: Readiness) -> Self {
        self.readiness = Some(findings);
        self
    }

    /// Rewrites the page at most this often while the run goes on.
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    /// Rewrites the page no sooner than `ratio` times its last write took after it (default
    /// [`DEFAULT_RATIO`]; 0: only [`RunReport::every`] throttles).
    pub fn ratio(mut self, ratio: u32) -> Self {
        self.ratio = ratio;
        self
    }

    /// The journal as read so far.
    pub fn summary(&self) -> &RunSummary {
        &self.summary
    }

    /// How many times the page was written.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// The report file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the journal's next record; rewrites the page when the throttle allows (see the
    /// [module documentation](self)), and always at a session's end.
    pub fn push(&mut self, r: &Record) -> Result<(), ReportError> {
        self.summary.push(r);
        let gap = self.every.max(self.took.saturating_mul(self.ratio));
        let due = matches!(r.kind, RecordKind::Stopped { .. })
            || self.last_write.is_none_or(|at| at.elapsed() >= gap);
        if due { self.write() } else { Ok(()) }
    }

    /// Writes the page now.
    pub fn write(&mut self) -> Result<(), ReportError> {
        let began = Instant::now();
        let mut page = String::new();
        let extras = RunHtmlExtras {
            resume: self.resume.as_deref(),
            readiness: self.readiness.as_ref(),
        };
        // Writing into a String cannot fail.
        let _ = html_run(&self.plan, &self.summary, extras, &mut page);
        let written = write_atomically(&self.path, page.as_bytes());
        // A failed attempt counts for the throttle too: a full disk does not make every
        // record render the page again.
        self.last_write = Some(Instant::now());
        self.took = began.elapsed();
        written.map_err(|source| ReportError {
            path: self.path.clone(),
            source,
        })?;
        self.writes += 1;
        Ok(())
    }

    /// Writes the last page (the run ended, halted, or its driver gave up).
    pub fn finish(&mut self) -> Result<(), ReportError> {
        self.write()
    }

    /// Writes the page of the run `records` tell (any journal of `plan`) to `path`, once.
    pub fn write_once(
        path: impl Into<PathBuf>,
        plan: Arc<UpgradePlan>,
        records: &[Record],
        resume: Option<&str>,
    ) -> Result<(), ReportError> {
        let mut r = RunReport::new(path, plan, records);
        r.resume = resume.map(String::from);
        r.write()
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".kupgrade-report")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.flush()?;
    // A page to share: readable by others, as a file written plainly would be (the
    // temporary file is made private).
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A [`JournalSink`] that appends to a journal and keeps a [`RunReport`] as it goes: each
/// record is appended first (the journal is the source of truth), then given to the report;
/// a report that cannot be written is logged, never a reason to stop the run.
pub struct ReportingJournal<'a> {
    journal: &'a mut dyn JournalSink,
    report: &'a mut RunReport,
    failed: bool,
}

impl<'a> ReportingJournal<'a> {
    /// Appends to `journal` and keeps `report`.
    pub fn new(journal: &'a mut dyn JournalSink, report: &'a mut RunReport) -> Self {
        ReportingJournal {
            journal,
            report,
            failed: false,
        }
    }
}

impl JournalSink for ReportingJournal<'_> {
    fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        self.journal.append(record)?;
        match self.report.push(record) {
            Ok(()) => self.failed = false,
            Err(e) if !self.failed => {
                // Said once until a write succeeds again.
                tracing::warn!("{e}; the run goes on");
                self.failed = true;
            }
            Err(_) => {}
        }
        Ok(())
    }
}
