//! Renderers: text for a terminal ([`text`]), a Markdown runbook ([`markdown`]), JSON and
//! YAML ([`to_json`], [`to_yaml`]: one versioned format, described by
//! [`SCHEMA`](super::SCHEMA)), a Mermaid gantt chart of the estimated schedule
//! ([`mermaid`]), and a self-contained HTML report ([`html`]; of a run: [`html_run`]). Each is a pure function of the
//! plan: same plan, same bytes.
//!
//! Each also writes to a sink as it goes ([`Format::write`], [`write_text`], ...), so a plan
//! of a hundred thousand nodes is never held a second time as one string.
use std::fmt::Write as _;
use std::{fmt, io};

use crate::NodeName;
use crate::escape::shell_word;
use crate::ports::{CommandSpec, Privilege, Program, shell_quote};

use super::action::Action;
use super::step::Step;

mod html;
mod html_run;
mod json;
mod markdown;
mod mermaid;
mod text;

pub use html::{HtmlExtras, html};
pub use html_run::{RunHtmlExtras, html_run};
pub use json::{from_json, from_yaml, to_json, to_yaml, write_json, write_yaml};
pub use markdown::{markdown, write_markdown};
pub use mermaid::{mermaid, write_mermaid};
pub use text::{text, write_text};

/// The output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// [`text`].
    Text,
    /// [`markdown`].
    Markdown,
    /// [`to_json`].
    Json,
    /// [`to_yaml`].
    Yaml,
    /// [`mermaid`].
    Mermaid,
    /// [`html`], without the starting state or readiness findings.
    Html,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 6] = [
        Format::Text,
        Format::Markdown,
        Format::Json,
        Format::Yaml,
        Format::Mermaid,
        Format::Html,
    ];

    /// Its name on a command line (`text`, `markdown`, `json`, `yaml`, `mermaid`, `html`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Json => "json",
            Format::Yaml => "yaml",
            Format::Mermaid => "mermaid",
            Format::Html => "html",
        }
    }

    /// Writes `plan` to `out` as it goes: the same bytes as [`Format::render`], never held
    /// whole. The first error of `out` comes back as it was (a closed pipe stays
    /// [`io::ErrorKind::BrokenPipe`]) and nothing more is written.
    ///
    /// ```
    /// # use kupgrade_core::plan::{PlanRequest, render::Format};
    /// # let text = "nodes:\n  - name: cp-1\n    roles: [control-plane]\n    versions: { kubelet: v1.29.10, kubeadm: v1.29.10, kubectl: v1.29.10, kube-apiserver: v1.29.10, kube-controller-manager: v1.29.10, kube-scheduler: v1.29.10, etcd: 3.5.10-0 }\n";
    /// # let cluster = kupgrade_core::inventory::parse(text, "cluster.yaml").unwrap();
    /// # let plan = PlanRequest::new("1.30".parse().unwrap(), jiff::civil::date(2025, 3, 1)).plan(&cluster).unwrap();
    /// for format in Format::ALL {
    ///     let mut out = Vec::new();
    ///     format.write(&plan, &mut out).unwrap();
    ///     assert_eq!(out, format.render(&plan).into_bytes());
    /// }
    /// ```
    pub fn write(self, plan: &super::UpgradePlan, out: &mut dyn io::Write) -> io::Result<()> {
        let mut sink = Sink { out, error: None };
        let done = match self {
            Format::Text => write_text(plan, &mut sink).map_err(|_| None),
            Format::Markdown => write_markdown(plan, &mut sink).map_err(|_| None),
            Format::Mermaid => write_mermaid(plan, &mut sink).map_err(|_| None),
            Format::Json => write_json(plan, &mut sink).map_err(Some),
            Format::Yaml => write_yaml(plan, &mut sink).map_err(Some),
            Format::Html => html(plan, HtmlExtras::default(), &mut sink).map_err(|_| None),
        };
        match (done, sink.error) {
            (_, Some(e)) => Err(e),
            (Err(Some(e)), None) => Err(e),
            (Err(None), None) => Err(io::Error::other(format!(
                "rendering {} failed",
                self.name()
            ))),
            (Ok(()), None) => Ok(()),
        }
    }

    /// Renders `plan` into one string (see [`Format::write`] to stream it).
    pub fn render(self, plan: &super::UpgradePlan) -> String {
        match self {
            Format::Text => text(plan),
            Format::Markdown => markdown(plan),
            Format::Json => to_json(plan),
            Format::Yaml => to_yaml(plan),
            Format::Mermaid => mermaid(plan),
            Format::Html => {
                let mut page = String::new();
                // Writing to a String cannot fail.
                let _ = html(plan, HtmlExtras::default(), &mut page);
                page
            }
        }
    }
}

/// An `io::Write` seen as a `fmt::Write` (for the text renderers) and as an `io::Write` (for
/// serde), keeping its first error as it was; after an error, every write fails at once.
struct Sink<'a> {
    out: &'a mut dyn io::Write,
    error: Option<io::Error>,
}

impl Sink<'_> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.error.is_some() {
            return Err(io::Error::other("an earlier write failed"));
        }
        self.out.write_all(bytes).map_err(|e| {
            let again = io::Error::new(e.kind(), e.to_string());
            self.error = Some(e);
            again
        })
    }
}

impl fmt::Write for Sink<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put(s.as_bytes()).map_err(|_| fmt::Error)
    }
}

impl io::Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.put(buf).map(|()| buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.error.is_some() {
            return Err(io::Error::other("an earlier write failed"));
        }
        self.out.flush()
    }
}

/// A format that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a format: expected text, markdown, json, yaml, mermaid or html")]
pub struct FormatParseError(pub String);

impl std::str::FromStr for Format {
    type Err = FormatParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s || (s == "md" && *f == Format::Markdown))
            .ok_or_else(|| FormatParseError(s.to_string()))
    }
}

/// A command as a person types it: `sudo` (not `sudo -n`), environment variables as
/// `NAME=value` prefixes, standard input as a quoted here-document. Every word is quoted where
/// needed, hidden characters written as `printf` escapes ([`shell_word`]).
///
/// ```
/// use kupgrade_core::plan::render::human_line;
/// use kupgrade_core::ports::CommandSpec;
/// let cmd = CommandSpec::new("tee").arg("/etc/x.list").stdin("deb x /\n").sudo();
/// assert_eq!(human_line(&cmd), "sudo tee /etc/x.list <<'EOF'\ndeb x /\nEOF");
/// let cmd = CommandSpec::new("apt-get").env("DEBIAN_FRONTEND", "noninteractive")
///     .args(["install", "-y", "kubelet=1.30.1-*"]).sudo();
/// assert_eq!(human_line(&cmd), "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y 'kubelet=1.30.1-*'");
/// ```
pub fn human_line(spec: &CommandSpec) -> String {
    let mut words: Vec<String> = Vec::new();
    let sudo = spec.privilege == Privilege::Sudo;
    if sudo {
        words.push("sudo".into());
    }
    for (k, v) in &spec.env {
        words.push(format!("{k}={}", shell_word(v)));
    }
    match &spec.program {
        Program::Exec { program, args } => {
            words.push(shell_word(program).into_owned());
            words.extend(args.iter().map(|a| shell_word(a).into_owned()));
        }
        Program::Shell { script } => {
            if words.is_empty() {
                words.push(script.clone());
            } else {
                words.extend(["sh".to_string(), "-c".to_string(), shell_quote(script)]);
            }
        }
    }
    let mut line = words.join(" ");
    if let Some(stdin) = &spec.stdin {
        let text = String::from_utf8_lossy(stdin);
        if text.ends_with('\n') && !text.lines().any(|l| l == "EOF") {
            let _ = write!(line, " <<'EOF'\n{text}EOF");
        } else {
            line = format!("printf '%s' {} | {line}", shell_quote(&text));
        }
    }
    line
}

/// What a person runs for a step that is not a node command: `kubectl` lines for cluster
/// operations, prose for the provider and the operator, one item per check.
pub fn manual_lines(step: &Step) -> Vec<String> {
    let nodes = step.nodes.as_slice();
    let each = |cmd: &dyn Fn(&str) -> String| -> Vec<String> {
        match nodes {
            [] => Vec::new(),
            [one] => vec![cmd(&shell_quote(one.as_str()))],
            many => vec![format!(
                "for node in {}; do {}; done",
                many.iter()
                    .map(|n| shell_quote(n.as_str()))
                    .collect::<Vec<_>>()
                    .join(" "),
                cmd("\"$node\"")
            )],
        }
    };
    match &step.action {
        Action::Cordon => each(&|n| format!("kubectl cordon {n}")),
        Action::Uncordon => each(&|n| format!("kubectl uncordon {n}")),
        Action::Drain { options } => {
            let mut flags = String::new();
            if options.ignore_daemonsets {
                flags.push_str(" --ignore-daemonsets");
            }
            if options.delete_emptydir_data {
                flags.push_str(" --delete-emptydir-data");
            }
            if options.force {
                flags.push_str(" --force");
            }
            if options.disable_eviction {
                flags.push_str(" --disable-eviction");
            }
            if let Some(g) = options.grace_period_seconds {
                let _ = write!(flags, " --grace-period={g}");
            }
            let _ = write!(flags, " --timeout={}s", options.timeout_seconds);
            each(&|n| format!("kubectl drain {n}{flags}"))
        }
        Action::WaitReady {
            version,
            timeout_seconds,
        } => each(&|n| {
            format!(
                "kubectl wait --for=condition=Ready node/{n} --timeout={timeout_seconds}s && kubectl get node {n} -o jsonpath='{{.status.nodeInfo.kubeletVersion}}'  # expect {version}"
            )
        }),
        Action::WaitKubeProxyRollout {
            version,
            timeout_seconds,
        } => vec![format!(
            "kubectl -n kube-system rollout status daemonset/kube-proxy --timeout={timeout_seconds}s{}",
            version
                .as_ref()
                .map(|v| format!("  # every pod at {v}"))
                .unwrap_or_default()
        )],
        Action::ProvisionNodes { version, templates } => nodes
            .iter()
            .zip(templates)
            .map(|(n, t)| {
                format!("create node {n} like {t} (roles, labels, OS) at {version} with your provider, and wait until it is Ready")
            })
            .collect(),
        Action::RemoveNodes => each(&|n| format!("kubectl delete node {n}"))
            .into_iter()
            .chain(std::iter::once(
                "then delete the machines with your provider".to_string(),
            ))
            .collect(),
        Action::UpgradeKubectlClient { version } => vec![format!(
            "upgrade the kubectl you use to {version}; `kubectl version --client` must say {version}"
        )],
        Action::Preflight { checks } => checks.iter().map(ToString::to_string).collect(),
        Action::Verify { version } => vec![
            format!("every node runs kubelet {version}: kubectl get nodes"),
            "the skew policy holds".to_string(),
        ],
        Action::GateBaseline { regression, .. } => vec![format!(
            "note which pods are Ready, crash-looping or restarting, and which disruption budgets are below their desired count{}",
            regression_scope(regression)
        )],
        Action::Gate { gate, .. } => gate_lines(gate),
        Action::Hook { hook, env } => vec![format!(
            "{}{}",
            env.iter()
                .map(|(k, v)| format!("{k}={} ", shell_quote(v)))
                .collect::<String>(),
            hook.spec(&[]).to_shell_line()
        )],
        _ => Vec::new(),
    }
}

/// Where a regression gate looks, as words (` in shop (app=web)`), its selector quoted.
fn regression_scope(r: &crate::gate::RegressionCheck) -> String {
    let mut s = String::new();
    if let Some(ns) = &r.namespace {
        let _ = write!(s, " in namespace {ns}");
    }
    if let Some(sel) = &r.selector {
        let _ = write!(s, " with labels {}", shell_quote(sel));
    }
    s
}

/// How a person checks a gate by hand, and for how long.
fn gate_lines(gate: &crate::gate::Gate) -> Vec<String> {
    let until = format!(
        "every {}s for at most {}s; then {}",
        gate.interval_seconds,
        gate.timeout_seconds,
        match gate.on_timeout {
            crate::gate::OnTimeout::Halt => "stop",
            crate::gate::OnTimeout::Warn => "go on with a warning",
        }
    );
    let ns = |n: &Option<String>| {
        n.as_deref()
            .map(|n| format!(" -n {}", shell_quote(n)))
            .unwrap_or_default()
    };
    let first = match gate.check() {
        Some(crate::gate::GateCheck::Rollout(r)) => format!(
            "kubectl{} rollout status {}/{} --timeout={}s",
            ns(&Some(
                r.namespace.clone().unwrap_or_else(|| "default".into())
            )),
            r.kind.as_str().to_lowercase(),
            shell_quote(&r.name),
            gate.timeout_seconds
        ),
        Some(crate::gate::GateCheck::Condition(c)) => format!(
            "kubectl{} wait --for=condition={}={} {}/{} --timeout={}s",
            ns(&c.namespace),
            shell_quote(&c.condition_type),
            shell_quote(&c.status),
            shell_quote(&c.kind.to_lowercase()),
            shell_quote(&c.name),
            gate.timeout_seconds
        ),
        Some(crate::gate::GateCheck::Regression(r)) => format!(
            "compare with the note taken before: no pod newly not Ready or crash-looping, no restarts, no disruption budget newly below its desired count{}",
            regression_scope(&r)
        ),
        Some(crate::gate::GateCheck::Command(c)) => {
            let line = c.spec().to_shell_line();
            match &c.node {
                Some(n) => format!("on {n}: {line}  # must exit 0"),
                None => format!("{line}  # must exit 0"),
            }
        }
        None => "nothing to check".into(),
    };
    vec![first, until]
}

/// Where a step's section belongs in the runbook: with the hop whose version the step moves
/// nodes to. Steps that catch nodes up before a hop (workers, control-plane kubelets, add-ons
/// following the control plane) carry that hop's index, but move nodes to the version of the
/// hop before it, and are listed under that one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Section {
    /// Part of the hop at this index (or catching up to its version).
    Hop(usize),
    /// Catching up to the starting version (the second field), before the hop at this index.
    Before(usize, crate::KubeVersion),
    /// No hop: before the first or after the last.
    Outside,
}

impl Section {
    /// The section of `step` in `plan`.
    pub(crate) fn of(plan: &super::UpgradePlan, step: &Step) -> Section {
        let Some(h) = step.hop else {
            return Section::Outside;
        };
        // The goal is the first part of a step's id (`v1.29.4/worker-4/cordon`).
        let goal = step
            .id
            .as_str()
            .split('/')
            .next()
            .and_then(|g| g.parse::<crate::KubeVersion>().ok());
        let Some(goal) = goal else {
            return Section::Hop(h);
        };
        match plan.hops.iter().take(h + 1).rposition(|hop| hop.to == goal) {
            Some(d) => Section::Hop(d),
            None if plan.hops.get(h).is_some_and(|x| goal < x.to) => Section::Before(h, goal),
            None => Section::Hop(h),
        }
    }
}

/// `a, b, c` or `a, b, c (+N more)` beyond `max` names.
pub(crate) fn node_summary(nodes: &[NodeName], max: usize) -> String {
    let shown: Vec<&str> = nodes.iter().take(max).map(NodeName::as_str).collect();
    let mut s = shown.join(", ");
    if nodes.len() > max {
        let _ = write!(s, " (+{} more)", nodes.len() - max);
    }
    s
}

/// The OS family's name in runbooks (its package manager's title).
pub(crate) fn os_title(os: crate::OsFamily) -> &'static str {
    super::packages::title(os)
}

/// A version as its project writes it: etcd without the `v` (`3.5.12-0`), the others with.
pub(crate) fn show_version(c: crate::Component, v: &crate::KubeVersion) -> String {
    if c == crate::Component::Etcd {
        v.to_plain_string()
    } else {
        v.to_string()
    }
}
