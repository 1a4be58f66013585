//! Readiness reports as text for a terminal and as a Markdown section, and plans rendered
//! with their findings per hop ([`plan_text`], [`plan_markdown`]: the plan's own renderer,
//! then the readiness section; the plan's own output is unchanged). JSON and YAML are the
//! serde form of [`Readiness`] ([`to_json`], [`to_yaml`]). Findings carry text from the
//! cluster (names, status messages, managers): the text renderers pass it through
//! [`escape`], as the plan's renderers do.
use std::fmt::Write as _;

use crate::escape;
use crate::plan::UpgradePlan;
use crate::plan::render::{markdown, text as plan_text_only};

use super::{Coverage, Finding, Readiness, STALE_AFTER_MONTHS};

/// The report as JSON (pretty, with a final newline).
pub fn to_json(r: &Readiness) -> String {
    let mut s = serde_json::to_string_pretty(r).expect("a readiness report serializes");
    s.push('\n');
    s
}

/// The report as YAML.
pub fn to_yaml(r: &Readiness) -> String {
    serde_yaml_ng::to_string(r).expect("a readiness report serializes")
}

/// `3 errors, 1 warning`.
fn totals(r: &Readiness) -> String {
    let errors = r.errors().count();
    let warnings = r.findings().count() - errors;
    let plural = |n: usize, w: &str| {
        if n == 1 {
            format!("1 {w}")
        } else {
            format!("{n} {w}s")
        }
    };
    format!(
        "{}, {}",
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

fn tables_line(r: &Readiness) -> String {
    r.tables
        .iter()
        .map(|t| format!("{} as of {}", t.table, t.as_of))
        .collect::<Vec<_>>()
        .join(", ")
}

fn stale_notes(r: &Readiness) -> Vec<String> {
    r.tables
        .iter()
        .filter(|t| t.stale)
        .map(|t| {
            format!(
                "{} is as of {}, more than {STALE_AFTER_MONTHS} months before {}: newer facts may be missing",
                t.table, t.as_of, r.date
            )
        })
        .collect()
}

fn hop_list(hops: &[usize]) -> String {
    hops.iter()
        .map(|h| (h + 1).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The report as text for a terminal: the findings per hop, then every check's coverage.
pub fn text(r: &Readiness) -> String {
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(
        o,
        "Readiness for {} to {}: {} (facts: {}).",
        r.from,
        r.target,
        totals(r),
        tables_line(r)
    );
    for note in stale_notes(r) {
        let _ = writeln!(o, "Note: {note}.");
    }
    if !r.before_hops.is_empty() {
        let _ = writeln!(o, "\nBefore the first hop:");
        for f in &r.before_hops {
            finding_text(o, f);
        }
    }
    for h in &r.hops {
        let _ = write!(o, "\nHop {}: {} -> {}", h.hop + 1, h.from, h.to);
        if h.findings.is_empty() {
            let _ = writeln!(o, ": nothing found.");
            continue;
        }
        let _ = writeln!(o);
        for f in &h.findings {
            finding_text(o, f);
        }
    }
    let _ = writeln!(o, "\nCoverage:");
    let width = r.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
    for c in &r.checks {
        let coverage = c.coverage.to_string();
        let _ = write!(o, "  {:<width$}  {}", c.id, escape::text(&coverage));
        if !c.hops.is_empty() && !matches!(c.coverage, Coverage::NotApplicable { .. }) {
            let _ = write!(o, " (hops {})", hop_list(&c.hops));
        }
        if !c.stale_tables.is_empty() {
            let _ = write!(o, " [facts may be out of date]");
        }
        let _ = writeln!(o);
    }
    out
}

fn finding_text(o: &mut String, f: &Finding) {
    let _ = writeln!(o, "  {}", escape::text(&f.to_string()));
    if let Some(step) = &f.step {
        let _ = writeln!(o, "      at step {}", escape::text(step.as_str()));
    }
    for e in &f.evidence {
        let _ = writeln!(o, "      evidence: {}", escape::text(e));
    }
    let _ = writeln!(o, "      fix: {}", escape::text(&f.remediation));
}

/// The report as a Markdown section (`## Readiness`), for a runbook.
pub fn markdown_section(r: &Readiness) -> String {
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(o, "## Readiness\n");
    let _ = writeln!(
        o,
        "{} to {}: {}. Facts: {}.",
        r.from,
        r.target,
        totals(r),
        tables_line(r)
    );
    for note in stale_notes(r) {
        let _ = writeln!(o, "\n> **Note:** {note}.");
    }
    if !r.before_hops.is_empty() {
        let _ = writeln!(o, "\n### Before the first hop\n");
        for f in &r.before_hops {
            finding_markdown(o, f);
        }
    }
    for h in &r.hops {
        let _ = writeln!(o, "\n### Hop {}: `{}` → `{}`\n", h.hop + 1, h.from, h.to);
        if h.findings.is_empty() {
            let _ = writeln!(o, "Nothing found.");
        }
        for f in &h.findings {
            finding_markdown(o, f);
        }
    }
    let _ = writeln!(o, "\n### Coverage\n");
    let _ = writeln!(o, "| Check | Coverage | Hops | Errors | Warnings |");
    let _ = writeln!(o, "|---|---|---|---|---|");
    for c in &r.checks {
        let mut coverage = escape::markdown_prose(&c.coverage.to_string()).replace('|', "\\|");
        if !c.stale_tables.is_empty() {
            coverage.push_str(" (facts may be out of date)");
        }
        let _ = writeln!(
            o,
            "| `{}` | {coverage} | {} | {} | {} |",
            c.id,
            hop_list(&c.hops),
            c.errors,
            c.warnings
        );
    }
    out
}

fn finding_markdown(o: &mut String, f: &Finding) {
    let _ = writeln!(
        o,
        "- **{}** `{}` {}: {}",
        f.severity,
        f.check,
        escape::markdown_prose(&f.subject.to_string()),
        escape::markdown_prose(&f.message)
    );
    if let Some(step) = &f.step {
        let _ = writeln!(o, "  - at step `{step}`");
    }
    for e in &f.evidence {
        let _ = writeln!(o, "  - evidence: {}", escape::markdown_prose(e));
    }
    let _ = writeln!(o, "  - fix: {}", escape::markdown_prose(&f.remediation));
    let _ = writeln!(o, "  - accept: `{}`", f.key());
}

/// The plan as text (its own renderer, unchanged), followed by the findings per hop.
pub fn plan_text(plan: &UpgradePlan, readiness: &Readiness) -> String {
    let mut out = plan_text_only(plan);
    out.push('\n');
    out.push_str(&text(readiness));
    out
}

/// The plan as a Markdown runbook (its own renderer, unchanged), followed by the readiness
/// section.
pub fn plan_markdown(plan: &UpgradePlan, readiness: &Readiness) -> String {
    let mut out = markdown(plan);
    out.push('\n');
    out.push_str(&markdown_section(readiness));
    out
}
