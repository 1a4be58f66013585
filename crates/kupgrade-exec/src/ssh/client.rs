//! What kupgrade asks of the local `ssh` client for one node, and what the client says when it
//! refuses.
//!
//! [`ClientSettings`] decides a connection's options in one place: they are given to
//! openssh's [`SessionBuilder`] to connect, and written as the same command-line arguments for
//! `ssh -G`, which reads the arguments and the configuration files exactly as a connection
//! would, prints the result and connects nowhere. The builder's `ssh` runs with its standard
//! error closed, so when ssh refuses an argument (`invalid time value`) nothing of what it said
//! survives, and a refused configuration file looks like any failed connection. So when a
//! connection fails for a reason that is not the node's (its host key, its authentication),
//! [`ClientSettings::refusal`] asks `ssh -G`: an error there is ssh refusing its own arguments
//! or configuration, reported with its words and not retried; success means the failure was
//! the network's or the node's.
//!
//! `ssh -G` evaluates `Match exec` lines of the configuration like a connection does; it runs
//! only after a failed connection.
use std::ffi::OsString;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use openssh::{ControlPersist, KnownHosts, SessionBuilder};

use super::HostKeyPolicy;

/// How long `ssh -G` may take before its answer is given up.
const DIAGNOSIS_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of ssh's own words a refusal keeps.
const MAX_SAID: usize = 2048;

/// The options of one connection (see the module documentation).
#[derive(Clone, Debug)]
pub(super) struct ClientSettings {
    /// The host as `ssh` takes it (an IPv6 address without brackets).
    pub(super) host: String,
    pub(super) host_keys: HostKeyPolicy,
    /// Whole seconds, at least 1.
    pub(super) connect_timeout: Duration,
    /// `ControlPersist`, in seconds.
    pub(super) idle: NonZeroUsize,
    /// Whole seconds, at least 1.
    pub(super) server_alive_interval: Option<Duration>,
    pub(super) identity_file: Option<PathBuf>,
    pub(super) known_hosts_file: Option<PathBuf>,
    pub(super) config_file: Option<PathBuf>,
    pub(super) user: Option<String>,
    pub(super) port: Option<u16>,
}

impl ClientSettings {
    /// The builder of a connection with these options, its control sockets in `control_dir`.
    pub(super) fn builder(&self, control_dir: &Path) -> SessionBuilder {
        let mut b = SessionBuilder::default();
        b.known_hosts_check(match self.host_keys {
            HostKeyPolicy::Strict => KnownHosts::Strict,
            HostKeyPolicy::AcceptNew => KnownHosts::Add,
        })
        .connect_timeout(self.connect_timeout)
        .control_persist(ControlPersist::IdleFor(self.idle))
        .control_directory(control_dir);
        if let Some(d) = self.server_alive_interval {
            b.server_alive_interval(d);
        }
        if let Some(f) = &self.identity_file {
            b.keyfile(f);
        }
        if let Some(f) = &self.known_hosts_file {
            b.user_known_hosts_file(f);
        }
        if let Some(f) = &self.config_file {
            b.config_file(f);
        }
        if let Some(user) = &self.user {
            b.user(user.clone());
        }
        if let Some(port) = self.port {
            b.port(port);
        }
        b
    }

    /// The same options as `ssh` command-line arguments, as openssh's builder writes them for
    /// its master connection (without the master's own `-M -f -N -S -E`), the host last.
    pub(super) fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut option = |text: String| {
            args.push("-o".into());
            args.push(text.into());
        };
        option(format!("ControlPersist={}s", self.idle));
        option("BatchMode=yes".into());
        option(
            match self.host_keys {
                HostKeyPolicy::Strict => "StrictHostKeyChecking=yes",
                HostKeyPolicy::AcceptNew => "StrictHostKeyChecking=accept-new",
            }
            .into(),
        );
        option(format!("ConnectTimeout={}", self.connect_timeout.as_secs()));
        if let Some(d) = self.server_alive_interval {
            option(format!("ServerAliveInterval={}", d.as_secs()));
        }
        if let Some(port) = self.port {
            args.extend(["-p".into(), port.to_string().into()]);
        }
        if let Some(user) = &self.user {
            args.extend(["-l".into(), user.into()]);
        }
        if let Some(f) = &self.identity_file {
            args.extend(["-o".into(), "IdentitiesOnly=yes".into(), "-i".into()]);
            args.push(f.into());
        }
        if let Some(f) = &self.config_file {
            args.push("-F".into());
            args.push(f.into());
        }
        if let Some(f) = &self.known_hosts_file {
            let mut o = OsString::from("UserKnownHostsFile=");
            o.push(f);
            args.extend(["-o".into(), o]);
        }
        args.push(self.host.clone().into());
        args
    }

    /// What `ssh` says when it refuses these options (`ssh -G`, see the module
    /// documentation); `None` when it accepts them, or cannot be asked.
    pub(super) async fn refusal(&self) -> Option<String> {
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.arg("-G")
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = tokio::time::timeout(DIAGNOSIS_TIMEOUT, cmd.output())
            .await
            .ok()?
            .ok()?;
        if out.status.success() {
            return None;
        }
        let said = String::from_utf8_lossy(&out.stderr);
        let said: Vec<&str> = said
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let mut said = said.join("; ");
        if said.is_empty() {
            said = format!("it exited with {} and said nothing", out.status);
        }
        if said.len() > MAX_SAID {
            let mut end = MAX_SAID;
            while !said.is_char_boundary(end) {
                end -= 1;
            }
            said.truncate(end);
            said.push_str(" [...]");
        }
        Some(said)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClientSettings {
        ClientSettings {
            host: "fd00::1".into(),
            host_keys: HostKeyPolicy::Strict,
            connect_timeout: Duration::from_secs(10),
            idle: NonZeroUsize::new(300).unwrap(),
            server_alive_interval: Some(Duration::from_secs(15)),
            identity_file: Some("/k/id".into()),
            known_hosts_file: Some("/k/known hosts".into()),
            config_file: None,
            user: Some("admin".into()),
            port: Some(2222),
        }
    }

    #[test]
    fn arguments_say_every_option_and_end_with_the_host() {
        let args: Vec<String> = settings()
            .args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "-o",
                "ControlPersist=300s",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "ServerAliveInterval=15",
                "-p",
                "2222",
                "-l",
                "admin",
                "-o",
                "IdentitiesOnly=yes",
                "-i",
                "/k/id",
                "-o",
                "UserKnownHostsFile=/k/known hosts",
                "fd00::1"
            ]
        );
    }

    /// ssh accepts what kupgrade asks by default, and refuses a bad option in its words.
    #[tokio::test]
    async fn ssh_g_tells_a_refusal_from_an_acceptance() {
        if which_ssh().is_none() {
            assert_ne!(
                std::env::var("KUPGRADE_REQUIRE_REAL_SERVERS").as_deref(),
                Ok("1"),
                "ssh is missing"
            );
            return;
        }
        assert_eq!(settings().refusal().await, None);
        let mut bad = settings();
        bad.connect_timeout = Duration::from_secs(1 << 40);
        let said = bad.refusal().await.unwrap();
        assert!(said.contains("invalid time value"), "{said}");
    }

    fn which_ssh() -> Option<PathBuf> {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|d| Path::new(d).join("ssh"))
            .find(|p| p.exists())
    }
}
