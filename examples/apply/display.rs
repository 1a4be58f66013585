//! Progress bars (or JSON lines) fed by the driver's events. What events carry from outside
//! (a node's error output, a task's description, the operator's instructions) is escaped for
//! the terminal (`kupgrade_core::escape`); JSON lines escape control characters themselves.
use std::collections::HashMap;
use std::io::{IsTerminal, Write as _};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kupgrade_core::NodeName;
use kupgrade_core::escape;
use kupgrade_core::plan::UpgradePlan;
use kupgrade_core::run::{Event, Record, RecordKind, Resolution, TaskEnd, TaskId};

use kupgrade_exec::events::EventReceiver;

use super::Args;

/// Progress bars, one per node, fed by the driver's events.
pub(crate) struct Display {
    mp: MultiProgress,
    bars: HashMap<Option<NodeName>, ProgressBar>,
    overall: ProgressBar,
    json: bool,
    dry_run: bool,
}

/// What the display saw.
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) retries: Vec<String>,
    pub(crate) operator: Vec<String>,
    /// Output lines the driver's bounded queue dropped because the display fell behind.
    pub(crate) dropped: u64,
}

impl Display {
    pub(crate) fn new(args: &Args, plan: &UpgradePlan, records: &[Record]) -> Display {
        let visible = !args.json_events && !args.dry_run && std::io::stderr().is_terminal();
        let mp = MultiProgress::with_draw_target(if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let done: std::collections::HashSet<TaskId> =
            records
                .iter()
                .filter_map(|r| match &r.kind {
                    RecordKind::TaskFinished {
                        task,
                        end:
                            TaskEnd::Succeeded { .. }
                            | TaskEnd::AlreadyDone { .. }
                            | TaskEnd::Manual { .. },
                        ..
                    } => Some(task.clone()),
                    RecordKind::Resolved {
                        task,
                        resolution: Resolution::MarkDone,
                    } => Some(task.clone()),
                    _ => None,
                })
                .collect();
        let style = ProgressStyle::with_template(
            "{prefix:>18} [{bar:28.cyan/blue}] {pos:>3}/{len:3} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let mut totals: Vec<(Option<NodeName>, u64, u64)> = Vec::new();
        let mut index: HashMap<Option<NodeName>, usize> = HashMap::new();
        let mut count = |key: Option<NodeName>, done_now: bool| {
            let i = *index.entry(key.clone()).or_insert_with(|| {
                totals.push((key, 0, 0));
                totals.len() - 1
            });
            totals[i].1 += 1;
            if done_now {
                totals[i].2 += 1;
            }
        };
        let mut all = 0;
        for s in &plan.steps {
            if s.nodes.is_empty() {
                all += 1;
                count(None, done.contains(&TaskId::new(s.id.clone(), None)));
            }
            for n in &s.nodes {
                all += 1;
                count(
                    Some(n.clone()),
                    done.contains(&TaskId::new(s.id.clone(), Some(n.clone()))),
                );
            }
        }
        let overall = mp.add(ProgressBar::new(all as u64).with_style(style.clone()));
        overall.set_prefix(format!("{} -> {}", plan.from, plan.target));
        overall.set_position(done.len() as u64);
        let mut bars = HashMap::new();
        for (key, total, done) in totals {
            let bar = mp.add(ProgressBar::new(total).with_style(style.clone()));
            bar.set_prefix(
                key.as_ref()
                    .map_or("cluster".to_string(), |n| n.to_string()),
            );
            bar.set_position(done);
            bars.insert(key, bar);
        }
        Display {
            mp,
            bars,
            overall,
            json: args.json_events,
            dry_run: args.dry_run,
        }
    }

    pub(crate) async fn watch(self, mut rx: EventReceiver) -> Seen {
        let mut seen = Seen::default();
        while let Some(e) = rx.recv().await {
            if self.json {
                // A closed stdout loses the lines, never the run.
                if let Ok(line) = serde_json::to_string(&e) {
                    let _ = writeln!(std::io::stdout(), "{line}");
                }
                continue;
            }
            let bar = |task: &TaskId| self.bars.get(&task.node);
            match &e {
                Event::StepStarted { task, action, .. } => {
                    if let Some(b) = bar(task) {
                        b.set_message(escape::text(action).into_owned());
                    }
                }
                Event::StepFinished { task, outcome, .. } => {
                    if let Some(b) = bar(task) {
                        b.inc(1);
                        b.set_message(format!("{outcome:?}").to_lowercase());
                    }
                    self.overall.inc(1);
                }
                Event::StepRetrying { task, error, .. } => {
                    let line = escape::text(&format!("retrying {task}: {error}")).into_owned();
                    let _ = self.mp.println(&line);
                    seen.retries.push(line);
                }
                Event::NodeReady { node, version, .. } => {
                    if let Some(b) = self.bars.get(&Some(node.clone())) {
                        b.set_message(format!("Ready at {version}"));
                    }
                }
                Event::OperatorAction { instructions, .. } => {
                    let line = escape::text(&format!("for you to do: {instructions}")).into_owned();
                    let _ = self.mp.println(&line);
                    seen.operator.push(line);
                }
                Event::WouldRun { task, what } if self.dry_run => {
                    let _ = writeln!(std::io::stdout(), "{task}: {}", escape::text_lines(what));
                }
                _ => {}
            }
        }
        seen.dropped = rx.dropped();
        for b in self.bars.values() {
            b.finish();
        }
        self.overall.finish();
        seen
    }
}
