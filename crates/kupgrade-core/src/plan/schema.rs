//! The JSON Schema of the serialized plan (JSON and YAML share it), checked in as
//! `schema/plan.schema.json` and kept in sync by a test.
use schemars::JsonSchema;

use super::{API_VERSION, KIND, UpgradePlan};

/// The plan format's JSON Schema, generated from the types (kept in sync by a test).
pub const SCHEMA: &str = include_str!("../../schema/plan.schema.json");

/// The serialized shape of [`crate::ports::CommandSpec`], for the schema.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct CommandSpecSchema {
    /// What to run.
    program: ProgramSchema,
    /// Extra environment variables, as `[name, value]` pairs.
    #[serde(default)]
    env: Vec<(String, String)>,
    /// Bytes written to standard input, which is then closed.
    #[serde(default)]
    stdin: Option<Vec<u8>>,
    /// Kill the command after this many seconds.
    #[serde(default)]
    timeout: Option<f64>,
    /// How the command gains privileges.
    #[serde(default)]
    privilege: PrivilegeSchema,
    /// The most bytes kept of each of stdout and stderr.
    #[serde(default)]
    max_output: u64,
}

/// The serialized shape of [`crate::ports::Program`].
#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case", tag = "kind")]
#[allow(dead_code)]
pub(crate) enum ProgramSchema {
    /// A program and its arguments, each one word.
    Exec {
        /// The program.
        program: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// A script for `sh -c`, built from validated and quoted values.
    Shell {
        /// The script.
        script: String,
    },
}

/// The serialized shape of [`crate::ports::Privilege`].
#[derive(JsonSchema, Default)]
#[serde(rename_all = "kebab-case")]
#[allow(dead_code)]
pub(crate) enum PrivilegeSchema {
    /// As the connecting user.
    #[default]
    None,
    /// Through `sudo -n`.
    Sudo,
}

/// The plan's JSON Schema, freshly generated from the types.
pub fn schema_json() -> String {
    crate::schema::schema_json::<UpgradePlan>(
        &HEADER,
        &[("$id", "https://kupgrade.dev/schema/plan.schema.json")],
    )
}

/// A plan's header, as its schema describes it.
const HEADER: crate::schema::Header = crate::schema::Header {
    api_version: API_VERSION,
    api_version_doc: "The format's version",
    kind: KIND,
    kind_doc: "Always UpgradePlan",
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::CommandSpec;

    /// The hand-written shape of `CommandSpec` names every field its serde form has.
    #[test]
    fn command_spec_mirror_matches_serde() {
        let spec = CommandSpec::new("tee")
            .arg("/x")
            .env("A", "b")
            .stdin("hi")
            .timeout(std::time::Duration::from_secs(3))
            .sudo();
        let json = serde_json::to_value(&spec).unwrap();
        let schema = serde_json::to_value(schemars::schema_for!(CommandSpecSchema)).unwrap();
        let props = schema["properties"].as_object().unwrap();
        for key in json.as_object().unwrap().keys() {
            assert!(
                props.contains_key(key),
                "schema lacks CommandSpec field {key}"
            );
        }
        assert_eq!(json["program"]["kind"], "exec");
        assert_eq!(json["privilege"], "sudo");
        let shell = serde_json::to_value(CommandSpec::shell("true")).unwrap();
        assert_eq!(shell["program"]["kind"], "shell");
    }
}
