//! The command pod: what [`PodRunner::pod_for`] builds for a command (pinned, tolerant,
//! privileged, in the host's namespaces), and the shell line it runs there.
use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, SecurityContext, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kupgrade_core::NodeName;
use kupgrade_core::ports::{CommandSpec, Privilege, Program, RunnerError, capped, shell_quote};

use super::{COMPONENT_LABEL_VALUE, CONTAINER, NODE_ANNOTATION, PodRunner};

impl PodRunner {
    /// The pod that would run `spec` on `node`, for review. Refuses specs the runner cannot
    /// honour.
    pub fn pod_for(&self, node: &NodeName, spec: &CommandSpec) -> Result<Pod, RunnerError> {
        if !self.unpinned_image_allowed && !Self::is_pinned(&self.image) {
            return Err(RunnerError::Invalid {
                node: node.clone(),
                message: format!(
                    "the command pods' image {:?} is not named by digest (name@sha256:<64 hex \
                     digits>), and it would run privileged in the node's PID namespace: pin it, \
                     or accept a movable tag explicitly (PodRunner::allow_unpinned_image); \
                     nothing was run",
                    self.image
                ),
            });
        }
        let line = host_line(spec)?;
        let run_for = capped(spec.timeout.unwrap_or(self.default_timeout));
        // The API takes at most i32::MAX seconds (68 years).
        let deadline = (capped(self.start_timeout) + run_for)
            .as_secs_f64()
            .ceil()
            .clamp(1.0, f64::from(i32::MAX)) as i64;
        let mut command: Vec<String> = [
            "nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--", "sh", "-c",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        command.push(line);
        let prefix: String = node
            .as_str()
            .chars()
            .map(|c| if c == '.' { '-' } else { c })
            .take(40)
            .collect();
        let prefix = prefix.trim_end_matches('-');
        Ok(Pod {
            metadata: ObjectMeta {
                generate_name: Some(format!("kupgrade-{prefix}-")),
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([
                    ("app.kubernetes.io/name".to_string(), "kupgrade".to_string()),
                    (
                        "app.kubernetes.io/component".to_string(),
                        COMPONENT_LABEL_VALUE.to_string(),
                    ),
                ])),
                annotations: Some(BTreeMap::from([(
                    NODE_ANNOTATION.to_string(),
                    node.to_string(),
                )])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.to_string()),
                host_pid: Some(true),
                restart_policy: Some("Never".into()),
                active_deadline_seconds: Some(deadline),
                automount_service_account_token: Some(false),
                enable_service_links: Some(false),
                termination_grace_period_seconds: Some(0),
                tolerations: Some(vec![Toleration {
                    operator: Some("Exists".into()),
                    ..Toleration::default()
                }]),
                containers: vec![Container {
                    name: CONTAINER.into(),
                    image: Some(self.image.clone()),
                    command: Some(command),
                    security_context: Some(SecurityContext {
                        privileged: Some(true),
                        ..SecurityContext::default()
                    }),
                    termination_message_policy: Some("FallbackToLogsOnError".into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: None,
        })
    }
}

/// The line the host's `sh -c` runs for `spec`: its command line without `sudo` (the pod is
/// root on the host already: `sudo -n` would only add a dependency), fed its standard input
/// (see [Standard input](crate::runner#standard-input)).
pub(super) fn host_line(spec: &CommandSpec) -> Result<String, RunnerError> {
    let line = CommandSpec {
        privilege: Privilege::None,
        stdin: None,
        ..spec.clone()
    }
    .to_shell_line();
    let line = match spec.stdin.as_deref() {
        None => line,
        Some(input) if input.len() > PodRunner::MAX_STDIN => {
            return Err(RunnerError::Unsupported {
                what: format!(
                    "feed {} bytes of standard input to a command run in a pod: the limit is {} bytes (64 KiB), as the input travels base64-encoded in the pod's command line (command: {line})",
                    input.len(),
                    PodRunner::MAX_STDIN
                ),
            });
        }
        Some(input) => format!(
            "command -v base64 >/dev/null 2>&1 || {{ echo {} >&2; exit 127; }}\nprintf %s {} | base64 -d | {{\n{line}\n}}",
            shell_quote(BASE64_MISSING),
            shell_quote(&BASE64.encode(input)),
        ),
    };
    if line.len() > PodRunner::MAX_LINE {
        return Err(RunnerError::Unsupported {
            what: format!(
                "run a shell line of {} bytes in a pod: Linux limits one argument to {} bytes{}",
                line.len(),
                PodRunner::MAX_LINE,
                if spec.stdin.is_some() {
                    " (the line carries the command's standard input, base64-encoded)"
                } else {
                    ""
                }
            ),
        });
    }
    Ok(line)
}

/// The program a command that exited with status 127 did not find: `base64` when the line
/// feeding the command's stdin said so, otherwise the spec's program (the host's `sh` reports
/// a missing program as 127). `None` for a shell script, whose own exit code that is.
pub(super) fn missing_program(spec: &CommandSpec, output: &[u8]) -> Option<String> {
    if spec.stdin.is_some()
        && output
            .windows(BASE64_MISSING.len())
            .any(|w| w == BASE64_MISSING.as_bytes())
    {
        return Some("base64".into());
    }
    match &spec.program {
        Program::Exec { program, .. } => Some(program.clone()),
        Program::Shell { .. } => None,
    }
}

/// What the shell line prints when the node has no `base64` to decode a command's stdin.
pub(super) const BASE64_MISSING: &str =
    "kupgrade: base64 not found on the node; it is needed to feed the command's standard input";
