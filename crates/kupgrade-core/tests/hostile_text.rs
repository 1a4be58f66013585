//! Hostile text in everything a plan's human formats show: control characters, bidirectional
//! overrides, invisible characters, HTML and Markdown in the cluster's name, a zone, the zone
//! label, a policy's name and a rule's message, and (in a plan read back from a hand-edited
//! file) in reasons, notes and commands. Node names and versions cannot hold them: they are
//! validated when parsed.
use jiff::civil::date;
use kupgrade_core::Component;
use kupgrade_core::escape::is_hidden;
use kupgrade_core::inventory;
use kupgrade_core::plan::render::{self, Format};
use kupgrade_core::plan::{BatchSize, PlanOptions, PlanRequest, UpgradePlan};
use kupgrade_core::ports::Program;
use kupgrade_core::skew::rules::RulePolicy;
use kupgrade_core::skew::{Severity, SkewPolicy, UpstreamPolicy, Violation};

/// A cluster whose name and zones carry a terminal escape sequence, a carriage return, a
/// right-to-left override, a zero-width space, HTML and a Markdown link.
const INVENTORY: &str = r#"
name: "prod\e[2J\e]0;owned\a\rok <script>alert(1)</script> [x](javascript:alert(1)) | `c` \u202Eexe.txt\u200B"
nodes:
  - name: cp-1
    roles: [control-plane]
    labels: { topology.kubernetes.io/zone: "eu-1a\u2066<b>\u2069", tier: "x\e[31m" }
    versions: { kubelet: v1.28.9, kubeadm: v1.28.9, kube-apiserver: v1.28.9, kube-controller-manager: v1.28.9, kube-scheduler: v1.28.9, etcd: 3.5.9-0 }
  - name: w-1
    labels: { topology.kubernetes.io/zone: "eu-1b\u202E<i>" }
    versions: { kubelet: v1.28.9, kubeadm: v1.28.9 }
"#;

/// A house policy whose name and rule description carry the same (rule ids are validated).
const RULES: &str = r#"
name: "house\u202E<img src=x onerror=alert(1)>\e[5m"
rules:
  - id: house/old-kubelet
    description: "kubelets \u2067must\u2069 be <b>new</b>\r[ok](javascript:x)"
    kind: minor-range
    component: kubelet
    min: "1.20"
"#;

fn hostile_plan() -> UpgradePlan {
    let state = inventory::parse(INVENTORY, "hostile.yaml").unwrap();
    let house = RulePolicy::parse(RULES, "house.yaml").unwrap();
    let policy = house.with_upstream();
    let options = PlanOptions {
        zone_key: "topology.kubernetes.io/zone\u{202e}\u{1b}[0m".into(),
        max_per_zone: Some(BatchSize::Count(1)),
        ..PlanOptions::default()
    };
    PlanRequest::new("1.29".parse().unwrap(), date(2024, 6, 1))
        .policy(&policy)
        .options(options)
        .plan(&state)
        .unwrap()
}

/// The same plan as a hand-edited plan file could hold it: hostile reasons, notes and
/// commands.
fn edited_plan() -> UpgradePlan {
    let mut plan = hostile_plan();
    plan.notes
        .push("note\u{1b}[2J <script>x</script> [a](javascript:b) \u{202e}".into());
    let step = plan
        .steps
        .iter_mut()
        .find(|s| s.commands.iter().any(|c| !c.commands.is_empty()))
        .unwrap();
    step.reason = "because\r\n```\n<img src=x onerror=alert(1)>\u{2066}".into();
    let cmd = &mut step.commands[0].commands[0];
    if let Program::Exec { args, .. } = &mut cmd.program {
        args.push("x\n```\n<b>hi</b>\u{1b}[8m\u{202e}".into());
    }
    plan
}

/// Characters that reach the reader raw: the hidden ones other than the line breaks the
/// format writes itself.
fn raw_hidden(s: &str) -> Vec<char> {
    s.chars().filter(|&c| is_hidden(c) && c != '\n').collect()
}

#[test]
fn text_shows_hostile_values_escaped() {
    for plan in [hostile_plan(), edited_plan()] {
        let out = render::text(&plan);
        assert_eq!(raw_hidden(&out), [], "{out}");
        let first = out.lines().next().unwrap();
        assert_eq!(
            first,
            "Upgrade plan for prod\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\rok <script>alert(1)</script> \
             [x](javascript:alert(1)) | `c` \\u{202e}exe.txt\\u{200b}: v1.28.9 to v1.29.5"
        );
        assert!(
            out.contains(
                "policy upstream+house\\u{202e}<img src=x onerror=alert(1)>\\u{1b}[5m, strategy"
            ),
            "{out}"
        );
        assert!(
            out.contains("at most 1 per zone (topology.kubernetes.io/zone\\u{202e}\\u{1b}[0m)"),
            "{out}"
        );
    }
    let out = render::text(&edited_plan());
    assert!(out.contains("why: because\\r\\n```\\n<img"), "{out}");
    // A command keeps its exact value when pasted: hidden characters as printf escapes.
    assert!(
        out.contains(
            "'x\n```\n<b>hi</b>'\"$(printf '\\033')\"'[8m'\"$(printf '\\342\\200\\256')\""
        ),
        "{out}"
    );
}

/// Lines of a Markdown document outside its fenced code blocks, and the blocks' contents, as
/// CommonMark reads fences: a fence closes only with a run of backticks at least as long.
fn split_fences(md: &str) -> (Vec<&str>, Vec<&str>) {
    let (mut prose, mut code) = (Vec::new(), Vec::new());
    let mut open: Option<usize> = None;
    for line in md.lines() {
        let ticks = line.len() - line.trim_start_matches('`').len();
        match open {
            None if ticks >= 3 => open = Some(ticks),
            None => prose.push(line),
            Some(n) if ticks >= n && line.trim_start_matches('`').trim().is_empty() => open = None,
            Some(_) => code.push(line),
        }
    }
    assert_eq!(open, None, "a code block is left open");
    (prose, code)
}

#[test]
fn markdown_holds_no_markup_from_outside() {
    for plan in [hostile_plan(), edited_plan()] {
        let out = render::markdown(&plan);
        assert_eq!(raw_hidden(&out), [], "{out}");
        let (prose, code) = split_fences(&out);
        for line in &prose {
            assert!(!line.contains(['<', '>']), "HTML in {line:?}");
            // A link is `[text](url)`: every `](` of the values is escaped as `\](`.
            assert!(
                line.match_indices("](")
                    .all(|(i, _)| line[..i].ends_with('\\')),
                "a link in {line:?}"
            );
        }
        // Commands stay commands: each line of a block is a command's own text.
        assert!(code.iter().all(|l| !l.contains('\u{1b}')), "{code:?}");
        assert!(
            prose[0].starts_with(
                "# Upgrade plan: prod\\\\u{1b}\\[2J\\\\u{1b}\\]0;owned\\\\u{7}\\\\rok \
                 &lt;script&gt;alert(1)&lt;/script&gt; \\[x\\](javascript:alert(1)) \\| \\`c\\` \
                 \\\\u{202e}exe.txt\\\\u{200b}, v1.28.9 to v1.29.5"
            ),
            "{}",
            prose[0]
        );
        assert!(
            out.contains("policy upstream+house\\\\u{202e}&lt;img src=x onerror=alert(1)&gt;"),
            "{out}"
        );
    }
    // The hostile argument's "```" line stays inside its block: the fence is longer.
    let out = render::markdown(&edited_plan());
    assert!(out.contains("\n````sh\n"), "{out}");
    let (_, code) = split_fences(&out);
    assert!(code.contains(&"```"), "{code:?}");
    assert!(
        out.contains("_Why:_ because\\\\r\\\\n```\\\\n&lt;img src=x onerror=alert(1)&gt;"),
        "{out}"
    );
}

#[test]
fn mermaid_labels_hold_no_markup_from_outside() {
    for plan in [hostile_plan(), edited_plan()] {
        let out = render::mermaid(&plan);
        assert_eq!(raw_hidden(&out), [], "{out}");
        assert!(!out.contains(['<', '>', '`']), "{out}");
        let title = out.lines().nth(1).unwrap();
        // The estimate's figures follow; the name is what comes from outside.
        let (title, figures) = title.split_once(" (estimated ").unwrap();
        assert_eq!(
            title,
            "    title prod\\u{1b}[2J\\u{1b}]0 owned\\u{7}\\rok #60;script#62;alert(1)#60;/script#62; \
             [x](javascript alert(1)) | #96;c#96; \\u{202e}exe.txt\\u{200b} from v1.28.9 to v1.29.5"
        );
        assert!(
            figures.contains(", lower bound ") && figures.ends_with(')'),
            "{figures}"
        );
        // Every line but the header is a section or a task: no label broke a line.
        for line in out.lines().skip(4) {
            assert!(
                line.starts_with("    section ")
                    || line.contains(" :s")
                    || line.contains(" :crit, s"),
                "{line:?}"
            );
        }
    }
}

#[test]
fn violations_and_planning_errors_are_said_escaped() {
    let mut state = inventory::parse(INVENTORY, "hostile.yaml").unwrap();
    for n in state.nodes.iter_mut().filter(|n| !n.is_control_plane()) {
        n.versions.kubelet = Some("v1.19.16".parse().unwrap());
    }
    let house = RulePolicy::parse(RULES, "house.yaml").unwrap();
    let violations = house.evaluate(&state);
    assert_eq!(violations.len(), 1);
    let report = kupgrade_core::skew::report(&violations);
    assert_eq!(raw_hidden(&report), [], "{report}");
    assert!(report.starts_with("error[house/old-kubelet]: "), "{report}");
    assert!(
        report.contains("kubelets \\u{2067}must\\u{2069} be <b>new</b>\\r[ok]"),
        "{report}"
    );
    // The data keeps the rule's text as written.
    assert!(violations[0].message().contains('\u{2067}'));
    let e = PlanRequest::new("1.29".parse().unwrap(), date(2024, 6, 1))
        .policy(&house)
        .plan(&state)
        .unwrap_err()
        .to_string();
    assert_eq!(raw_hidden(&e), [], "{e}");
    assert!(
        e.starts_with("the cluster already violates the house\\u{202e}<img"),
        "{e}"
    );
    // A policy written in code may name its rules anything.
    let v = Violation::new(
        "mine/\u{1b}[2Jrule",
        Severity::Warning,
        Component::Kubelet,
        "v1.29.1".parse().unwrap(),
        "any",
        "kubelet \u{202e}is odd",
    );
    assert_eq!(
        v.to_string(),
        "warning[mine/\\u{1b}[2Jrule]: kubelet \\u{202e}is odd"
    );
    let upstream = UpstreamPolicy::new();
    assert!(
        upstream
            .evaluate(&state)
            .iter()
            .all(|v| raw_hidden(&v.to_string()).is_empty())
    );
}

#[test]
fn html_holds_no_markup_from_outside() {
    let state = inventory::parse(INVENTORY, "hostile.yaml").unwrap();
    for plan in [hostile_plan(), edited_plan()] {
        let mut out = String::new();
        let extras = render::HtmlExtras {
            start: Some(&state),
            readiness: None,
        };
        render::html(&plan, extras, &mut out).unwrap();
        assert_eq!(raw_hidden(&out), [], "{out}");
        for markup in ["<script", "<img", "<b>", "<i>", "javascript:alert(1)\""] {
            assert!(!out.contains(markup), "{markup} in {out}");
        }
        assert!(
            out.contains(
                "<h1>prod\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\rok &lt;script&gt;alert(1)&lt;/script&gt;"
            ),
            "{out}"
        );
        assert!(
            out.contains("policy upstream+house\\u{202e}&lt;img src=x onerror=alert(1)&gt;"),
            "{out}"
        );
        // The page still holds its own markup: the timeline and the version band.
        assert!(out.contains("<svg id=\"timeline\""), "{out}");
        assert!(out.contains("<svg id=\"version-band\""), "{out}");
    }
}

/// Escaping changes nothing for ordinary text: the bundled samples render as their snapshots
/// (checked byte for byte by `plan_snapshots`), and a plain plan has nothing to escape.
#[test]
fn ordinary_plans_are_unchanged() {
    let text = include_str!("../../../examples/clusters/ha.yaml");
    let state = inventory::parse(text, "ha.yaml").unwrap();
    let plan = PlanRequest::new("1.29".parse().unwrap(), date(2024, 6, 1))
        .plan(&state)
        .unwrap();
    for f in [
        Format::Text,
        Format::Markdown,
        Format::Mermaid,
        Format::Html,
    ] {
        let out = f.render(&plan);
        assert!(!out.contains("\\u{"), "{out}");
    }
}
