use super::*;
use crate::gate::GateSet;
use crate::gate::tests::CLUSTER;
use crate::plan::{Action, Executor, PlanRequest, UpgradePlan};

const HOOKS: &str = r#"kind: Hooks
hooks:
  - name: start
    before: upgrade
    argv: [notify, start]
  - name: end
    after: upgrade
    argv: [notify, end]
  - name: hop
    after: hop
    argv: [notify, hop]
  - name: pre
    before: batch
    argv: [notify, batch]
  - name: post
    after: batch
    argv: [notify, batch-done]
  - name: snap
    before: drain
    on: nodes
    repeatable: false
    argv: [/usr/local/sbin/snapshot, --all]
"#;

fn plan() -> UpgradePlan {
    let cluster = crate::inventory::parse(CLUSTER, "cluster.yaml").unwrap();
    PlanRequest::new("1.30".parse().unwrap(), jiff::civil::date(2025, 3, 1))
        .plan(&cluster)
        .unwrap()
}

fn ids(plan: &UpgradePlan) -> Vec<&str> {
    plan.steps.iter().map(|s| s.id.as_str()).collect()
}

fn env<'s>(step: &'s crate::plan::Step, key: &str) -> &'s str {
    let Action::Hook { env, .. } = &step.action else {
        panic!("{} is not a hook", step.id)
    };
    env.iter().find(|(k, _)| k == key).map_or("", |(_, v)| v)
}

#[test]
fn hooks_go_where_they_say_in_order_with_their_facts() {
    let mut plan = plan();
    let before = plan.steps.len();
    HookSet::parse(HOOKS, "hooks.yaml")
        .unwrap()
        .insert(&mut plan);
    let ids = ids(&plan);
    assert_eq!(ids[0], "v1.30.10/upgrade/hook-before-upgrade-start");
    assert_eq!(
        ids[ids.len() - 1],
        "v1.30.10/upgrade/hook-after-upgrade-end"
    );
    // Each step put in waits for the step it follows (or takes over what the step it
    // precedes waited for), and that step waits for it; nothing waits for a later step.
    crate::plan::splice::assert_spliced(&plan);
    // w-1's batch: the batch hook, then the drain's own hook right before the drain.
    let at = |id: &str| {
        ids.iter()
            .position(|i| *i == id)
            .unwrap_or_else(|| panic!("{id}: {ids:#?}"))
    };
    let pre = at("v1.30.10/w-1/hook-before-batch-pre");
    assert_eq!(ids[pre + 1], "v1.30.10/w-1/repository-1.30");
    let snap = at("v1.30.10/w-1/hook-before-drain-snap");
    assert_eq!(ids[snap + 1], "v1.30.10/w-1/drain");
    let post = at("v1.30.10/w-1/hook-after-batch-post");
    assert_eq!(ids[post - 1], "v1.30.10/w-1/uncordon");
    // The hop ends with its control plane; its hook follows cp-1's batch hook.
    let hop = at("v1.30.10/hop/hook-after-hop-hop");
    assert!(hop > at("v1.30.10/cp-1/hook-after-batch-post"));
    // Facts, as environment variables.
    let s = &plan.steps[snap];
    assert_eq!(env(s, "KUPGRADE_POINT"), "before drain");
    assert_eq!(env(s, "KUPGRADE_STEP"), "v1.30.10/w-1/drain");
    assert_eq!(env(s, "KUPGRADE_NODES"), "w-1");
    assert_eq!(env(s, "KUPGRADE_FROM"), "v1.29.10");
    assert_eq!(env(s, "KUPGRADE_TARGET"), "v1.30.10");
    assert_eq!(env(s, "KUPGRADE_VERSION"), "v1.30.10");
    // A node hook runs on the step's nodes, as node commands, the facts in its environment;
    // one that is not safe to repeat says so.
    assert_eq!(s.action.executor(), Executor::Node);
    assert_eq!(s.nodes.as_slice()[0].as_str(), "w-1");
    assert!(!s.idempotent);
    let cmd = &s.commands[0].commands[0];
    assert_eq!(
        cmd.to_shell_line(),
        "env KUPGRADE_HOOK=snap 'KUPGRADE_POINT=before drain' KUPGRADE_STEP=v1.30.10/w-1/drain \
         KUPGRADE_FROM=v1.29.10 KUPGRADE_TARGET=v1.30.10 KUPGRADE_VERSION=v1.30.10 \
         KUPGRADE_NODES=w-1 KUPGRADE_HOP=1 /usr/local/sbin/snapshot --all"
    );
    assert!(
        cmd.env
            .contains(&("KUPGRADE_NODES".to_string(), "w-1".to_string()))
    );
    // A local hook runs here.
    let s = &plan.steps[pre];
    assert_eq!(s.action.executor(), Executor::Local);
    assert!(s.nodes.is_empty() && s.idempotent);
    assert_eq!(env(s, "KUPGRADE_HOP"), "1");
    assert_eq!(env(&plan.steps[hop], "KUPGRADE_HOP"), "1");
    assert_eq!(env(&plan.steps[0], "KUPGRADE_NODES"), "");
    // 2 upgrade hooks, 1 hop hook, 2 per batch (3 batches), one per drain (3).
    assert_eq!(plan.steps.len() - before, 2 + 1 + 2 * 3 + 3);
    assert_eq!(plan.estimate.steps, plan.steps.len());
}

/// With gates, `after: batch` runs once the batch's gates passed, and `before: batch` before
/// the batch's snapshot.
#[test]
fn batch_hooks_go_around_the_batch_s_gates() {
    let mut plan = plan();
    let gates = "gates:\n  - name: pods\n    regression: { namespace: shop }\n";
    GateSet::parse(gates, "gates.yaml")
        .unwrap()
        .insert(&mut plan);
    HookSet::parse(HOOKS, "hooks.yaml")
        .unwrap()
        .insert(&mut plan);
    let ids = ids(&plan);
    let at = |id: &str| ids.iter().position(|i| *i == id).unwrap();
    assert_eq!(
        ids[at("v1.30.10/w-2/hook-before-batch-pre") + 1],
        "v1.30.10/w-2/baseline-pods"
    );
    assert_eq!(
        ids[at("v1.30.10/w-2/hook-after-batch-post") - 1],
        "v1.30.10/w-2/gate-pods"
    );
}

#[test]
fn hooks_file_errors_name_file_line_hook_and_field() {
    let text = r#"hooks:
  - name: a
    before: dran
    argv: [x]
  - name: b
    before: hop
    on: nodes
    argv: [x]
  - name: c
    before: drain
    after: drain
    argv: []
  - name: a
    argv: [x]
"#;
    let err = HookSet::parse(text, "hooks.yaml").unwrap_err().to_string();
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].starts_with(
            "hooks.yaml:3:13: hook 1 (\"a\"): before: \"dran\" is not a place: `upgrade`, `hop`, `batch` or a step kind (preflight, "
        ),
        "{err}"
    );
    assert_eq!(
        &lines[1..],
        [
            "hooks.yaml:7:9: hook 2 (\"b\"): on: a hook before each hop runs here (`on: local`): no nodes are its own",
            "hooks.yaml:11:12: hook 3 (\"c\"): after: a hook runs at one place: give `before` or `after`, not both",
            "hooks.yaml:12:11: hook 3 (\"c\"): argv: name the program to run",
            "hooks.yaml:13:11: hook 4 (\"a\"): name: say when: `before` or `after`",
        ],
        "{err}"
    );
}

#[test]
fn step_kinds_are_verbs_without_versions() {
    assert_eq!(
        step_kind("install-kubelet-kubectl@v1.30.1"),
        "install-kubelet-kubectl"
    );
    assert_eq!(step_kind("repository-1.30"), "repository");
    assert_eq!(step_kind("drain"), "drain");
    // Every kind a plan has is one a hook may name.
    let mut plan = plan();
    GateSet::default().insert(&mut plan);
    for s in &plan.steps {
        let kind = step_kind(&s.action.verb()).to_string();
        assert!(STEP_KINDS.contains(&kind.as_str()), "{kind}");
    }
}
