//! What the operator's create and find commands print on stdout, read and checked.
use kupgrade_core::ports::CommandOutput;
use kupgrade_core::{NodeName, SshTarget};
use serde::Deserialize;

/// The most characters of a command's output an error message shows.
const SHOWN: usize = 400;

/// A machine as the create or find command describes it, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Machine {
    /// Where the node is reached over SSH, if the command said.
    pub(crate) ssh: Option<SshTarget>,
    /// The infrastructure's own name for the machine, if the command gave one.
    pub(crate) id: Option<String>,
}

impl Machine {
    /// The machine and its address, for logs: `i-0abc, admin@10.0.0.7:22`.
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(id) = &self.id {
            parts.push(id.clone());
        }
        if let Some(t) = &self.ssh {
            let mut s = String::new();
            if let Some(u) = &t.user {
                s.push_str(u);
                s.push('@');
            }
            s.push_str(t.host.as_deref().unwrap_or("(node name)"));
            if let Some(p) = t.port {
                s.push_str(&format!(":{p}"));
            }
            parts.push(s);
        }
        if parts.is_empty() {
            "no details given".into()
        } else {
            parts.join(", ")
        }
    }
}

/// The create command's reply.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Created {
    name: String,
    #[serde(default)]
    ssh: Option<SshTarget>,
    #[serde(default)]
    machine: Option<String>,
}

/// The find command's reply.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Found {
    exists: bool,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    ssh: Option<SshTarget>,
    #[serde(default)]
    machine: Option<String>,
}

/// Reads the create command's reply about `node`. The error says what is wrong, without
/// naming the command (the caller does).
pub(crate) fn created(out: &CommandOutput, node: &NodeName) -> Result<Machine, String> {
    let c: Created = parse(
        out,
        r#"{"name": "NODE", "ssh": {"host": "…", "port": 22, "user": "…"}}"#,
    )?;
    check_name(&c.name, node)?;
    machine(c.ssh, c.machine)
}

/// Reads the find command's reply about `node`: `None` when no machine exists.
pub(crate) fn found(out: &CommandOutput, node: &NodeName) -> Result<Option<Machine>, String> {
    let f: Found = parse(
        out,
        r#"{"exists": false} or {"exists": true, "name": "NODE", …}"#,
    )?;
    if !f.exists {
        if f.name.is_some() || f.ssh.is_some() || f.machine.is_some() {
            return Err("it says `\"exists\": false` but describes a machine".into());
        }
        return Ok(None);
    }
    if let Some(name) = &f.name {
        check_name(name, node)?;
    }
    machine(f.ssh, f.machine).map(Some)
}

fn parse<T: serde::de::DeserializeOwned>(out: &CommandOutput, expected: &str) -> Result<T, String> {
    let text = String::from_utf8_lossy(&out.stdout);
    let trimmed = text.trim();
    let why = if trimmed.is_empty() {
        "it printed nothing on stdout".to_string()
    } else {
        match serde_json::from_str::<T>(trimmed) {
            Ok(t) => return Ok(t),
            Err(e) => format!("its stdout is not the JSON reply expected ({e})"),
        }
    };
    let cut = if out.truncated {
        " (cut to its last bytes)"
    } else {
        ""
    };
    Err(format!(
        "{why}; expected one JSON object on stdout, like {expected}, and logs on stderr. stdout{cut}: {}; stderr: {}",
        excerpt(trimmed),
        excerpt(out.stderr_tail(5).trim())
    ))
}

/// `text` in quotes, at most [`SHOWN`] characters of it, or `(empty)`.
fn excerpt(text: &str) -> String {
    if text.is_empty() {
        return "(empty)".into();
    }
    match text.char_indices().nth(SHOWN) {
        Some((i, _)) => format!("{:?}…", &text[..i]),
        None => format!("{text:?}"),
    }
}

fn check_name(reported: &str, node: &NodeName) -> Result<(), String> {
    if reported == node.as_str() {
        return Ok(());
    }
    Err(format!(
        "it reports node {reported:?}, but the plan creates node {node}: the new node must join \
         under the name in KUPGRADE_NODE (the plan, the journal and the checks know it by that \
         name)"
    ))
}

fn machine(ssh: Option<SshTarget>, id: Option<String>) -> Result<Machine, String> {
    if let Some(t) = &ssh {
        for (field, value) in [("ssh.host", &t.host), ("ssh.user", &t.user)] {
            if let Some(v) = value
                && (v.is_empty()
                    || v.starts_with('-')
                    || v.chars().any(|c| c.is_whitespace() || c.is_control()))
            {
                return Err(format!(
                    "{field} {v:?} is not a host or user name (empty, leading '-', spaces or control characters)"
                ));
            }
        }
        if t.port == Some(0) {
            return Err("ssh.port 0 is not a port".into());
        }
    }
    if let Some(id) = &id
        && id.chars().any(char::is_control)
    {
        return Err(format!("machine {id:?} holds control characters"));
    }
    Ok(Machine { ssh, id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kupgrade_core::ports::ExitStatus;

    fn out(stdout: &str, stderr: &str) -> CommandOutput {
        CommandOutput {
            status: ExitStatus::Code(0),
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
            truncated: false,
        }
    }

    fn node(s: &str) -> NodeName {
        s.parse().unwrap()
    }

    #[test]
    fn a_created_machine_with_its_ssh_target() {
        let m = created(
            &out(
                "\n{\"name\": \"w-1-v1-30-14\", \"ssh\": {\"host\": \"10.0.0.7\", \"port\": 2222, \"user\": \"admin\"}, \"machine\": \"i-0abc\"}\n",
                "creating...\nwaiting for the join\n",
            ),
            &node("w-1-v1-30-14"),
        )
        .unwrap();
        assert_eq!(
            m.ssh,
            Some(SshTarget {
                host: Some("10.0.0.7".into()),
                port: Some(2222),
                user: Some("admin".into()),
            })
        );
        assert_eq!(m.describe(), "i-0abc, admin@10.0.0.7:2222");
        let bare = created(&out(r#"{"name":"w-1"}"#, ""), &node("w-1")).unwrap();
        assert_eq!(
            bare,
            Machine {
                ssh: None,
                id: None
            }
        );
        assert_eq!(bare.describe(), "no details given");
    }

    #[test]
    fn bad_replies_are_named_with_what_was_printed() {
        let n = node("w-1");
        let e = created(
            &out("Creating instance...\n{\"name\": \"w-1\"}", "boom"),
            &n,
        )
        .unwrap_err();
        assert!(
            e.starts_with(
                "its stdout is not the JSON reply expected (expected value at line 1 column 1)"
            ),
            "{e}"
        );
        assert!(
            e.contains(r#"stdout: "Creating instance...\n{\"name\": \"w-1\"}"; stderr: "boom""#),
            "{e}"
        );
        let e = created(&out("", ""), &n).unwrap_err();
        assert!(
            e.starts_with("it printed nothing on stdout; expected one JSON object"),
            "{e}"
        );
        assert!(e.ends_with("stdout: (empty); stderr: (empty)"), "{e}");
        let e = created(&out(r#"{"name": "w-1", "hostname": "x"}"#, ""), &n).unwrap_err();
        assert!(e.contains("unknown field `hostname`"), "{e}");
        let e = created(&out(r#"{"ssh": {"host": "x"}}"#, ""), &n).unwrap_err();
        assert!(e.contains("missing field `name`"), "{e}");
        let e = created(&out(r#"{"name": "w-2"}"#, ""), &n).unwrap_err();
        assert!(
            e.starts_with("it reports node \"w-2\", but the plan creates node w-1"),
            "{e}"
        );
        let e = created(
            &out(
                r#"{"name": "w-1", "ssh": {"host": "-oProxyCommand=x"}}"#,
                "",
            ),
            &n,
        )
        .unwrap_err();
        assert!(
            e.starts_with("ssh.host \"-oProxyCommand=x\" is not a host"),
            "{e}"
        );
        let e = created(&out(r#"{"name": "w-1", "ssh": {"user": "a b"}}"#, ""), &n).unwrap_err();
        assert!(e.starts_with("ssh.user \"a b\""), "{e}");
        let long = format!("{{\"name\": \"{}\"", "x".repeat(1000));
        let e = created(&out(&long, ""), &n).unwrap_err();
        assert!(e.contains("xxx\"…; stderr"), "{e}");
        assert!(e.len() < 1000, "{}", e.len());
    }

    #[test]
    fn find_replies() {
        let n = node("w-1");
        assert_eq!(found(&out(r#"{"exists": false}"#, ""), &n).unwrap(), None);
        let m = found(&out(r#"{"exists": true, "machine": "vm-7"}"#, ""), &n).unwrap();
        assert_eq!(m.unwrap().id.as_deref(), Some("vm-7"));
        let m = found(
            &out(
                r#"{"exists": true, "name": "w-1", "ssh": {"host": "h"}}"#,
                "",
            ),
            &n,
        );
        assert_eq!(m.unwrap().unwrap().ssh.unwrap().host.as_deref(), Some("h"));
        let e = found(&out(r#"{"exists": false, "machine": "vm-7"}"#, ""), &n).unwrap_err();
        assert!(e.contains("describes a machine"), "{e}");
        let e = found(&out(r#"{"exists": "yes"}"#, ""), &n).unwrap_err();
        assert!(
            e.contains("invalid type: string \"yes\", expected a boolean"),
            "{e}"
        );
        let e = found(&out(r#"{"exists": true, "name": "w-9"}"#, ""), &n).unwrap_err();
        assert!(e.contains("reports node \"w-9\""), "{e}");
    }
}
