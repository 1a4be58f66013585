//! `apply --report FILE.html` as a process, on the simulated cluster (sped up): a run halted
//! by a failing command gate leaves a page that names the gate, what was wrong and the
//! command that resumes the run (with `--report`, so the resume goes on with the same page);
//! a hook's hostile output stays text; the pre-flight findings and the ones accepted are
//! listed; `--report-only` writes the page of the journal after the fact; the resumed run
//! finishes the page.
mod support;

use std::path::Path;

use support::{HA_TO_1_29, apply_sped_up, example, succeeded};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The status section of a run page.
fn status(page: &str) -> &str {
    let start = page
        .find("<section id=\"status\"")
        .expect("a status section");
    let end = page[start..].find("</section>").unwrap();
    &page[start..start + end]
}

#[test]
fn a_run_halted_at_a_gate_leaves_a_page_naming_the_gate_and_the_resume_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (flag, journal, report) = (d.join("flag"), d.join("journal"), d.join("run.html"));
    let (gates, hooks) = (d.join("gates.yaml"), d.join("hooks.yaml"));
    std::fs::write(
        &gates,
        format!(
            "apiVersion: kupgrade.dev/v1alpha1\nkind: Gates\ngates:\n  - name: smoke\n    after: [hop]\n    intervalSeconds: 1\n    timeoutSeconds: 2\n    command: {{ argv: [sh, -c, 'test -e {} || {{ echo \"smoke <b>failed</b>\" >&2; exit 1; }}'] }}\n",
            flag.display()
        ),
    )
    .unwrap();
    std::fs::write(
        &hooks,
        "apiVersion: kupgrade.dev/v1alpha1\nkind: Hooks\nhooks:\n  - name: announce\n    before: upgrade\n    argv: [sh, -c, 'echo \"<script>alert(1)</script> upgrading $KUPGRADE_FROM\"']\n",
    )
    .unwrap();
    let state = d.join("sim.json");
    let mut first = apply_sped_up(&journal, &state);
    first
        .args(HA_TO_1_29)
        .arg("--gates")
        .arg(&gates)
        .arg("--hooks")
        .arg(&hooks)
        .args(["--evidence", "readiness/ha-evidence.json"])
        .args(["--accept", "removed-api:flowschema/shop-priority"])
        .args(["--accept", "drain/emptydir:pod/shop/report"])
        .arg("--report")
        .arg(&report);
    let out = first.output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "the gate fails: {said}");

    let page = read(&report);
    let s = status(&page);
    assert!(s.contains("<h2>Halted: a step failed</h2>"), "{s}");
    assert!(
        s.contains("<strong class=\"stopped-at\">v1.29.15/hop/gate-smoke</strong>"),
        "{s}"
    );
    assert!(
        s.contains("gate smoke did not pass within 2s") && s.contains("smoke &lt;b&gt;failed"),
        "{s}"
    );
    // The resume command, as the summary prints it: it keeps --report.
    let resume = format!(
        "--journal {} --report {} ",
        journal.display(),
        report.display()
    );
    assert!(
        s.contains("<code class=\"resume\" id=\"resume\">cargo run --example apply --")
            && s.contains(&resume)
            && s.contains(" --resume</code>"),
        "{s}"
    );
    assert!(
        said.contains(&resume),
        "the summary's resume command is the page's: {said}"
    );
    // The gate's row and the hook's output, escaped.
    assert!(page.contains("<td class=\"gate-result\">fail: gate smoke did not pass"));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; upgrading v1.28.9\n</pre>"));
    assert!(
        !page.contains("<script"),
        "markup from a hook reached the page"
    );
    // The session's pre-flight findings, and the ones accepted (journaled).
    assert!(page.contains("<h2>Pre-flight findings</h2>"));
    assert!(page.contains("<td>removed-api:flowschema/shop-priority</td>"));

    // The page of the same journal, after the fact.
    let again = d.join("again.html");
    succeeded(
        example("apply")
            .arg("--journal")
            .arg(&journal)
            .arg("--report-only")
            .arg(&again),
    );
    let later = read(&again);
    assert!(status(&later).contains("v1.29.15/hop/gate-smoke"));
    // The same steps, gates, hooks, findings accepted and sessions; the pre-flight findings
    // are the session's (--report-only evaluates none).
    let body = |p: &str| {
        let steps = p.split("<h2>Steps</h2>").nth(1).unwrap().to_string();
        match (
            steps.find("<h2>Pre-flight findings</h2>"),
            steps.find("<h2>Sessions</h2>"),
        ) {
            (Some(a), Some(b)) => format!("{}{}", &steps[..a], &steps[b..]),
            _ => steps,
        }
    };
    assert_eq!(body(&later), body(&page));

    // The condition holds now; the resumed run (with the pasted options) finishes the page.
    std::fs::write(&flag, "").unwrap();
    succeeded(
        apply_sped_up(&journal, &state)
            .args(["--cluster", "clusters/ha.yaml", "--resume", "--report"])
            .arg(&report),
    );
    let page = read(&report);
    assert!(status(&page).contains("<h2>Completed</h2>"), "{page}");
    assert!(page.contains("· 2 session(s) ·"));
    assert!(
        page.contains("<td class=\"gate-result\">pass"),
        "the gate passed"
    );
    assert!(page.contains("<td>removed-api:flowschema/shop-priority</td>"));
    assert!(!page.contains("<script"));
    let names: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(names.is_empty(), "temporary files left: {names:?}");
}
