//! What the text, Markdown and Mermaid renderers walk alike, in one place: the plan's parts
//! as values each renderer only formats.
//!
//! - [`to_string`]: a streaming renderer's output as one string;
//! - [`hops`] and [`ships`]: the hops, numbered, their kinds in words, and what kubeadm ships
//!   with each (etcd, CoreDNS);
//! - [`current`] and [`target`]: a component's versions now and after, as its project writes
//!   them;
//! - [`runbook`]: the steps in order, each with the section it opens;
//! - [`instructions`]: what a person does for a step, by who carries it out.
use std::fmt;

use crate::plan::action::Executor;
use crate::plan::step::{OsCommands, Phase, Step};
use crate::plan::{ComponentChange, Hop, HopKind, UpgradePlan};

use super::{Section, manual_lines, show_version};

/// What `write` writes for `plan`, as one string.
pub(super) fn to_string(
    plan: &UpgradePlan,
    write: fn(&UpgradePlan, &mut dyn fmt::Write) -> fmt::Result,
) -> String {
    let mut out = String::new();
    // Writing to a `String` cannot fail.
    let _ = write(plan, &mut out);
    out
}

/// The hops, numbered from 1, each with its kind in words: `resume` for the hop under way,
/// else `patch` or `minor`.
pub(super) fn hops<'p>(
    plan: &'p UpgradePlan,
    resume: &'static str,
) -> impl Iterator<Item = (usize, &'p Hop, &'static str)> + 'p {
    plan.hops.iter().enumerate().map(move |(i, h)| {
        let kind = match h.kind {
            HopKind::Resume => resume,
            HopKind::Patch => "patch",
            HopKind::Minor => "minor",
        };
        (i + 1, h, kind)
    })
}

/// What kubeadm ships with `hop` besides the control plane, each as (name, version): etcd
/// (written without the `v`), then CoreDNS.
pub(super) fn ships(hop: &Hop) -> impl Iterator<Item = (&'static str, String)> + '_ {
    let etcd = hop.etcd.iter().map(|e| ("etcd", e.to_plain_string()));
    let coredns = hop.coredns.iter().map(|c| ("CoreDNS", c.to_string()));
    etcd.chain(coredns)
}

/// The versions of a component running now, each with how many run it.
pub(super) fn current(c: &ComponentChange) -> impl Iterator<Item = (String, usize)> + '_ {
    c.current
        .iter()
        .map(|v| (show_version(c.component, &v.version), v.count))
}

/// The version a component goes to; `None`: unchanged.
pub(super) fn target(c: &ComponentChange) -> Option<String> {
    c.target.as_ref().map(|t| show_version(c.component, t))
}

/// The runbook: each step with its index in the plan and, when it opens a new section (of a
/// hop, a part of the hop and a phase), that section.
pub(super) fn runbook(
    plan: &UpgradePlan,
) -> impl Iterator<Item = (usize, &Step, Option<Section>)> + '_ {
    let mut section: Option<(Option<usize>, Section, Phase)> = None;
    plan.steps.iter().enumerate().map(move |(i, step)| {
        let here = (step.hop, Section::of(plan, step), step.phase);
        if section.as_ref() == Some(&here) {
            return (i, step, None);
        }
        let opened = here.1.clone();
        section = Some(here);
        (i, step, Some(opened))
    })
}

/// What a person does for a step, by who carries it out.
pub(super) enum Instructions<'a> {
    /// Node commands, for each OS family among the step's nodes.
    Commands(&'a [OsCommands]),
    /// `kubectl` lines (cluster operations).
    Shell(Vec<String>),
    /// What to do or check, an item a line; `checklist` for the checks.
    Items {
        /// The items.
        lines: Vec<String>,
        /// True for a check step: each item is to be ticked.
        checklist: bool,
    },
}

/// The [`Instructions`] of `step`.
pub(super) fn instructions(step: &Step) -> Instructions<'_> {
    match step.action.executor() {
        Executor::Node => Instructions::Commands(&step.commands),
        Executor::Cluster => Instructions::Shell(manual_lines(step)),
        executor @ (Executor::Provider
        | Executor::Check
        | Executor::Operator
        | Executor::Gate
        | Executor::Local) => Instructions::Items {
            lines: manual_lines(step),
            checklist: executor == Executor::Check,
        },
    }
}
