//! What a run keeps beside its journal so that `--resume` goes on as it started: the plan
//! (`JOURNAL.plan.json`) and the skew policy the run checks (`JOURNAL.policy.json`: the rules
//! of each `--policy` file as they were read).
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kupgrade_core::plan::UpgradePlan;
use kupgrade_core::skew::rules::RulePolicy;
use serde_json::{Value, json};

use super::planning::{PolicyFiles, RulesFile};

/// The files kept beside a journal.
pub(crate) struct Beside {
    /// The plan the run started with.
    pub(crate) plan: PathBuf,
    /// The policy it checks.
    pub(crate) policy: PathBuf,
}

impl Beside {
    /// The files beside `journal`.
    pub(crate) fn of(journal: &Path) -> Beside {
        let with = |suffix: &str| PathBuf::from(format!("{}{suffix}", journal.display()));
        Beside {
            plan: with(".plan.json"),
            policy: with(".policy.json"),
        }
    }

    /// Records the plan and the policy of a run that starts.
    pub(crate) fn write(&self, plan: &UpgradePlan, policy: &PolicyFiles) -> anyhow::Result<()> {
        std::fs::write(&self.plan, serde_json::to_string_pretty(plan)?)
            .with_context(|| format!("writing {}", self.plan.display()))?;
        let rules: Vec<Value> = policy
            .0
            .iter()
            .map(|f| json!({ "file": f.file, "rules": f.rules.to_yaml() }))
            .collect();
        let record = json!({ "policy": plan.policy, "rules": rules });
        std::fs::write(&self.policy, serde_json::to_string_pretty(&record)?)
            .with_context(|| format!("writing {}", self.policy.display()))
    }

    /// The plan the run started with.
    pub(crate) fn read_plan(&self) -> anyhow::Result<UpgradePlan> {
        let file = &self.plan;
        let text = std::fs::read_to_string(file).with_context(|| {
            format!("reading the plan the run started with ({})", file.display())
        })?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))
    }

    /// The policy the run started with. A journal without the file was written before the
    /// policy was recorded, when every run checked the upstream policy alone.
    pub(crate) fn read_policy(&self) -> anyhow::Result<PolicyFiles> {
        let file = &self.policy;
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(PolicyFiles::default());
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        };
        let record: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        let mut files = Vec::new();
        for (i, entry) in record["rules"].as_array().into_iter().flatten().enumerate() {
            let (Some(from), Some(rules)) = (entry["file"].as_str(), entry["rules"].as_str())
            else {
                bail!(
                    "{}: rules[{i}] needs a `file` and its `rules`",
                    file.display()
                );
            };
            let name = format!("{} (rules[{i}], recorded from {from})", file.display());
            files.push(RulesFile {
                file: from.to_string(),
                rules: RulePolicy::parse(rules, &name)?,
            });
        }
        Ok(PolicyFiles(files))
    }
}
