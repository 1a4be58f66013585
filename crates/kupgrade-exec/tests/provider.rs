//! The replace strategy's node provider: [`CommandProvider`] running stub scripts (what its
//! commands get in their environment, how their replies are read, their timeouts), and the
//! driver looking for a node's machine before it creates the node again after a failed or
//! interrupted creation (on the simulated cluster).
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jiff::civil::date;
use kupgrade_core::plan::{PlanOptions, PlanRequest, Strategy, UpgradePlan};
use kupgrade_core::ports::{CommandSpec, MachineLookup, NodeProvider, OpsError};
use kupgrade_core::run::{Finished, Record, RecordKind, Run, RunOptions};
use kupgrade_core::skew::UpstreamPolicy;
use kupgrade_core::{KubeVersion, Node, NodeName, SshTarget};
use kupgrade_exec::CommandProvider;
use kupgrade_exec::driver::{Driver, JournalSink};
use kupgrade_exec::sim::{SimCluster, Workload};

const HA: &str = include_str!("../../../examples/clusters/ha.yaml");

fn name(s: &str) -> NodeName {
    s.parse().unwrap()
}

fn v(s: &str) -> KubeVersion {
    s.parse().unwrap()
}

/// A worker like the HA sample's, with a zone and a label whose value a shell would expand.
fn template() -> Node {
    let mut t = Node::worker("w-1", v("v1.29.10")).unwrap();
    t.labels
        .insert("topology.kubernetes.io/zone".into(), "eu-1a".into());
    t.labels.insert("team".into(), "$(touch pwned)`id`".into());
    t.labels
        .insert("kubernetes.io/hostname".into(), "w-1".into());
    t
}

/// A provider whose create and find commands are `create` and `find`, run in `dir`.
fn provider(dir: &Path, create: &str, find: &str) -> CommandProvider {
    let cd = |s: &str| CommandSpec::shell(format!("cd {} && {s}", dir.display()));
    CommandProvider::new(cd(create), cd("rm -f machine; echo removed >&2"))
        .find_command(cd(find))
        .cluster_name("prod eu")
}

#[tokio::test]
async fn create_gets_its_inputs_in_the_environment_and_its_reply_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let learned = Arc::new(Mutex::new(Vec::new()));
    let seen = learned.clone();
    let p = provider(
        dir.path(),
        r#"env | grep -E '^KUPGRADE_(CLUSTER|LABELS|NODE|OS_[A-Z]+|PROVIDER_ACTION|ROLES|TEMPLATE_NODE|VERSION|ZONE)=' | sort > env.txt; touch machine; echo 'booting...' >&2
           printf '{"name": "%s", "ssh": {"host": "10.0.0.7", "port": 2222, "user": "admin"}, "machine": "i-0abc"}' "$KUPGRADE_NODE""#,
        "exit 3",
    )
    .on_ssh_target(move |n, t| seen.lock().unwrap().push((n.clone(), t.clone())));
    let node = p
        .provision(&name("w-1-v1-30-6"), &template(), &v("v1.30.6"))
        .await
        .unwrap();
    let env = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
    let expected = [
        "KUPGRADE_CLUSTER=prod eu",
        "KUPGRADE_LABELS={\"team\":\"$(touch pwned)`id`\",\"topology.kubernetes.io/zone\":\"eu-1a\"}",
        "KUPGRADE_NODE=w-1-v1-30-6",
        "KUPGRADE_OS_FAMILY=debian",
        "KUPGRADE_OS_RELEASE=",
        "KUPGRADE_PROVIDER_ACTION=create",
        "KUPGRADE_ROLES=worker",
        "KUPGRADE_TEMPLATE_NODE=w-1",
        "KUPGRADE_VERSION=v1.30.6",
        "KUPGRADE_ZONE=eu-1a",
    ];
    assert_eq!(env.lines().collect::<Vec<_>>(), expected, "{env}");
    assert!(!dir.path().join("pwned").exists(), "a label was run");
    let target = SshTarget {
        host: Some("10.0.0.7".into()),
        port: Some(2222),
        user: Some("admin".into()),
    };
    assert_eq!(node.name, name("w-1-v1-30-6"));
    assert_eq!(node.kubelet(), Some(&v("v1.30.6")));
    assert_eq!(node.ssh.as_deref(), Some(&target));
    assert_eq!(
        *learned.lock().unwrap(),
        vec![(name("w-1-v1-30-6"), target)]
    );
}

#[tokio::test]
async fn find_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(
        dir.path(),
        r#"touch machine; printf '{"name": "%s"}' "$KUPGRADE_NODE""#,
        r#"[ "$KUPGRADE_PROVIDER_ACTION" = find ] || exit 9
           if [ -e machine ]; then echo '{"exists": true, "machine": "vm-7"}'; else echo '{"exists": false}'; fi"#,
    );
    let n = name("w-1-v1-30-6");
    assert_eq!(p.find(&n).await.unwrap(), MachineLookup::Absent);
    p.provision(&n, &template(), &v("v1.30.6")).await.unwrap();
    assert_eq!(
        p.find(&n).await.unwrap(),
        MachineLookup::Present {
            detail: "vm-7".into()
        }
    );
    p.remove(&n).await.unwrap();
    assert_eq!(p.find(&n).await.unwrap(), MachineLookup::Absent);
    // Without a find command, the provider cannot tell.
    let blind = CommandProvider::new(CommandSpec::shell("exit 1"), CommandSpec::shell("exit 1"));
    assert_eq!(blind.find(&n).await.unwrap(), MachineLookup::Unknown);
}

#[tokio::test]
async fn bad_replies_and_failures_name_the_command_and_what_it_printed() {
    let dir = tempfile::tempdir().unwrap();
    let n = name("w-1-v1-30-6");
    let err = |p: CommandProvider| async move {
        p.provision(&name("w-1-v1-30-6"), &template(), &v("v1.30.6"))
            .await
            .unwrap_err()
            .to_string()
    };
    let e = err(provider(
        dir.path(),
        "echo 'Creating instance...'; echo '{}'",
        "",
    ))
    .await;
    assert!(
        e.starts_with(&format!(
            "the node provider's create command for node {n} (`cd {} && echo 'Creating instance...'; echo '{{}}'`) exited 0, but its stdout is not the JSON reply expected",
            dir.path().display()
        )),
        "{e}"
    );
    assert!(e.contains(r#"stdout: "Creating instance...\n{}""#), "{e}");
    let e = err(provider(
        dir.path(),
        "echo 'quota exceeded' >&2; exit 4",
        "",
    ))
    .await;
    assert!(
        e.contains("create command for node w-1-v1-30-6")
            && e.contains("ended with exit code 4")
            && e.ends_with("stderr: quota exceeded"),
        "{e}"
    );
    let e = err(provider(dir.path(), r#"echo '{"name": "other"}'"#, "")).await;
    assert!(e.contains("it reports node \"other\""), "{e}");
    let p = provider(dir.path(), "", "echo '{\"exists\": 1}'");
    let e = p.find(&n).await.unwrap_err().to_string();
    assert!(
        e.starts_with("the node provider's find command for node w-1-v1-30-6")
            && e.contains("invalid type: integer `1`, expected a boolean"),
        "{e}"
    );
}

#[tokio::test]
async fn each_command_runs_under_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let n = name("w-1-v1-30-6");
    let p = CommandProvider::new(
        CommandSpec::shell("sleep 30").timeout(Duration::from_millis(300)),
        CommandSpec::shell("sleep 30").timeout(Duration::from_millis(300)),
    )
    .find_command(
        CommandSpec::shell(format!("cd {} && sleep 30", dir.path().display()))
            .timeout(Duration::from_millis(300)),
    );
    let started = std::time::Instant::now();
    let e = p
        .provision(&n, &template(), &v("v1.30.6"))
        .await
        .unwrap_err();
    assert!(matches!(e, OpsError::TimedOut { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("create command for node w-1-v1-30-6 (`sleep 30`) (it was killed)"),
        "{e}"
    );
    let e = p.find(&n).await.unwrap_err();
    assert!(matches!(e, OpsError::TimedOut { .. }), "{e}");
    let e = p.remove(&n).await.unwrap_err();
    assert!(matches!(e, OpsError::TimedOut { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

// ---- the driver, on the simulated cluster ---------------------------------------------------

fn replace_plan() -> Arc<UpgradePlan> {
    let cluster = kupgrade_core::inventory::parse(HA, "ha.yaml").unwrap();
    let options = PlanOptions {
        strategy: Strategy::Replace,
        allow_unsupported_target: true,
        ..PlanOptions::default()
    };
    Arc::new(
        PlanRequest::new("1.29".parse().unwrap(), date(2025, 11, 1))
            .options(options)
            .plan(&cluster)
            .unwrap(),
    )
}

/// The simulator's provider, whose first creation of `flaky` fails: after the machine was
/// made (`made: true`: the create lost its connection; the machine joins 2 s later, after the
/// simulator's provisioning time) or before (`made: false`). With `lookup`, it finds the
/// machines it made, joined or not.
struct Flaky {
    sim: SimCluster,
    flaky: NodeName,
    made: bool,
    lookup: bool,
    machines: Mutex<Vec<NodeName>>,
    creates: AtomicUsize,
    calls: AtomicUsize,
}

#[async_trait]
impl NodeProvider for Flaky {
    async fn provision(
        &self,
        name: &NodeName,
        template: &Node,
        version: &KubeVersion,
    ) -> Result<Node, OpsError> {
        if *name != self.flaky {
            return self.sim.provision(name, template, version).await;
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.calls.load(Ordering::SeqCst) == 1 && !self.made {
            return Err(OpsError::Other {
                message: "the cloud API refused the request".into(),
                source: None,
            });
        }
        self.creates.fetch_add(1, Ordering::SeqCst);
        self.machines.lock().unwrap().push(name.clone());
        if self.calls.load(Ordering::SeqCst) == 1 {
            let (sim, name, template, version) = (
                self.sim.clone(),
                name.clone(),
                template.clone(),
                version.clone(),
            );
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                sim.provision(&name, &template, &version).await.unwrap();
            });
            return Err(OpsError::Other {
                message: "the cloud API connection was lost".into(),
                source: None,
            });
        }
        self.sim.provision(name, template, version).await
    }
    async fn remove(&self, node: &NodeName) -> Result<(), OpsError> {
        self.sim.remove(node).await
    }
    async fn find(&self, name: &NodeName) -> Result<MachineLookup, OpsError> {
        if !self.lookup {
            return Ok(MachineLookup::Unknown);
        }
        if self.machines.lock().unwrap().contains(name) {
            return Ok(MachineLookup::Present {
                detail: "booting".into(),
            });
        }
        self.sim.find(name).await
    }
}

async fn session(sim: &SimCluster, provider: Arc<Flaky>, journal: &mut Vec<Record>) -> Finished {
    let plan = replace_plan();
    let mut run = Run::resume(
        plan,
        Arc::new(UpstreamPolicy::new()),
        RunOptions::default(),
        journal,
    )
    .unwrap();
    let s = Arc::new(sim.clone());
    Driver::new(s.clone(), s)
        .provider(provider)
        .join_wait(Duration::from_secs(3600))
        .drive(&mut run, journal as &mut dyn JournalSink)
        .await
        .unwrap()
}

const FLAKY: &str = "worker-1-v1-29-15";

/// Runs the replace plan with a creation of worker-1's replacement that fails once (with
/// `crash`, the journal is then cut right after that creation started, as a SIGKILL leaves
/// it), then resumes; returns how the second session ended, how often the machine was
/// created, and the cluster.
async fn fail_then_resume(made: bool, lookup: bool, crash: bool) -> (Finished, usize, SimCluster) {
    let sim = SimCluster::new(kupgrade_core::inventory::parse(HA, "ha.yaml").unwrap())
        .with_workload(&Workload::sample());
    let flaky = Arc::new(Flaky {
        sim: sim.clone(),
        flaky: name(FLAKY),
        made,
        lookup,
        machines: Mutex::new(Vec::new()),
        creates: AtomicUsize::new(0),
        calls: AtomicUsize::new(0),
    });
    let mut journal = Vec::new();
    let first = session(&sim, flaky.clone(), &mut journal).await;
    let report = first.report().expect("the failed creation stops the run");
    assert!(report.summary.contains(FLAKY), "{report}");
    if crash {
        let started = journal
            .iter()
            .position(|r| {
                matches!(&r.kind, RecordKind::TaskStarted { task, .. }
                    if task.node.as_ref().is_some_and(|n| n.as_str() == FLAKY))
            })
            .unwrap();
        journal.truncate(started + 1);
    }
    let second = session(&sim, flaky.clone(), &mut journal).await;
    (second, flaky.creates.load(Ordering::SeqCst), sim)
}

#[tokio::test(start_paused = true)]
async fn a_machine_made_before_the_failure_is_not_created_again_and_joins() {
    for crash in [false, true] {
        let (finished, creates, sim) = fail_then_resume(true, true, crash).await;
        assert_eq!(finished, Finished::Completed, "crash {crash}: {finished}");
        assert_eq!(creates, 1, "crash {crash}: the machine was created again");
        assert_eq!(
            sim.cluster().node(FLAKY).unwrap().kubelet(),
            Some(&v("v1.29.15"))
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_machine_the_provider_does_not_find_is_created_again() {
    for crash in [false, true] {
        let (finished, creates, sim) = fail_then_resume(false, true, crash).await;
        assert_eq!(finished, Finished::Completed, "crash {crash}: {finished}");
        assert_eq!(creates, 1, "crash {crash}");
        assert!(sim.cluster().node(FLAKY).is_some());
        assert!(sim.cluster().node("worker-1").is_none());
    }
}

#[tokio::test(start_paused = true)]
async fn without_a_lookup_an_unjoined_machine_halts_and_asks_the_operator() {
    for made in [false, true] {
        let (finished, creates, _) = fail_then_resume(made, false, true).await;
        let report = finished.report().expect("halted");
        assert_eq!(creates, usize::from(made), "made {made}: created again");
        assert!(report.summary.contains(FLAKY), "made {made}: {report}");
        assert!(report.task.is_some(), "made {made}: {report}");
    }
}
