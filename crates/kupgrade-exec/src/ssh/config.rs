//! [`SshConfig`]: how the SSH runner connects.
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to do with a host key that is not in `known_hosts`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostKeyPolicy {
    /// Refuse unknown and changed keys (`StrictHostKeyChecking=yes`). The default.
    #[default]
    Strict,
    /// Trust an unknown key on first use and record it; still refuse a changed key
    /// (`StrictHostKeyChecking=accept-new`). An explicit opt-in: the first connection to each
    /// node is then not protected against interception.
    AcceptNew,
}

/// How [`SshRunner`](super::SshRunner) connects to nodes. Everything not set here comes from
/// the usual OpenSSH configuration (`~/.ssh/config`, `/etc/ssh/ssh_config`, the agent).
///
/// ```
/// use kupgrade_exec::SshConfig;
/// use std::time::Duration;
/// let config = SshConfig::new()
///     .user("admin")
///     .identity_file("/home/me/.ssh/id_ed25519")
///     .known_hosts_file("/home/me/.ssh/known_hosts_cluster")
///     .connect_timeout(Duration::from_secs(5))
///     .ssh_option("ServerAliveCountMax", "3");
/// assert_eq!(config.user.as_deref(), Some("admin"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SshConfig {
    /// The user for nodes whose target names none (default: OpenSSH's choice).
    pub user: Option<String>,
    /// Use only this private key (`-i FILE -o IdentitiesOnly=yes`); default: the agent and
    /// OpenSSH's default keys.
    pub identity_file: Option<PathBuf>,
    /// The known hosts file (`UserKnownHostsFile`); default: `~/.ssh/known_hosts`.
    pub known_hosts_file: Option<PathBuf>,
    /// What to do with unknown host keys (default: refuse them).
    pub host_keys: HostKeyPolicy,
    /// Give up connecting after this long (`ConnectTimeout`, whole seconds, at least 1).
    pub connect_timeout: Duration,
    /// Send keep-alives this often, so a dead node is noticed (`ServerAliveInterval`).
    pub server_alive_interval: Option<Duration>,
    /// Read this file instead of `~/.ssh/config` and `/etc/ssh/ssh_config` (`ssh -F`).
    pub config_file: Option<PathBuf>,
    /// Extra `ssh_config` options (`("ProxyJump", "bastion")`), applied before the usual
    /// configuration files, so they win over them.
    pub ssh_options: Vec<(String, String)>,
    /// Where the runner keeps its private directory (control sockets, generated config);
    /// default: the system temporary directory.
    pub state_dir: Option<PathBuf>,
    /// A connection with no command running for this long closes itself; the next command
    /// reconnects. It also bounds how long a connection outlives a killed runner.
    pub idle_timeout: Duration,
    /// The most commands run at once on one node. OpenSSH servers allow ten sessions per
    /// connection by default (`MaxSessions`); the runner keeps one free to kill timed-out
    /// commands.
    pub max_sessions_per_node: usize,
    /// How long to wait, after a timeout, for the remote command to report its process group
    /// and for the killed group's output to close.
    pub kill_grace: Duration,
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig {
            user: None,
            identity_file: None,
            known_hosts_file: None,
            host_keys: HostKeyPolicy::Strict,
            connect_timeout: Duration::from_secs(10),
            server_alive_interval: Some(Duration::from_secs(15)),
            config_file: None,
            ssh_options: Vec::new(),
            state_dir: None,
            idle_timeout: Duration::from_secs(300),
            max_sessions_per_node: 8,
            kill_grace: Duration::from_secs(5),
        }
    }
}

impl SshConfig {
    /// The defaults: strict host keys, OpenSSH's own configuration.
    pub fn new() -> Self {
        SshConfig::default()
    }
    /// Sets the default user.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }
    /// Uses only this private key.
    pub fn identity_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.identity_file = Some(path.into());
        self
    }
    /// Uses this known hosts file.
    pub fn known_hosts_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.known_hosts_file = Some(path.into());
        self
    }
    /// Trusts unknown host keys on first use (changed keys are still refused). Opt in only
    /// where the network between you and the nodes is trusted.
    pub fn accept_new_host_keys(mut self) -> Self {
        self.host_keys = HostKeyPolicy::AcceptNew;
        self
    }
    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
    /// Reads this `ssh_config` file instead of the usual ones.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }
    /// Adds an `ssh_config` option.
    pub fn ssh_option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.ssh_options.push((key.into(), value.into()));
        self
    }
    /// Keeps the private directory under `dir`.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }
    /// Sets how long an idle connection stays open.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }
    /// Sets the most commands run at once on one node (at least 1).
    pub fn max_sessions_per_node(mut self, n: usize) -> Self {
        self.max_sessions_per_node = n;
        self
    }

    /// Checks the options and renders the private `ssh_config` that applies `ssh_options`
    /// before the usual files; `None` when no file is needed.
    pub(crate) fn render_config_file(&self) -> Result<Option<String>, SshConfigError> {
        if self.max_sessions_per_node == 0 {
            return Err(SshConfigError::Invalid(
                "max_sessions_per_node must be at least 1".into(),
            ));
        }
        if let Some(user) = &self.user {
            kupgrade_core::ssh_target::check_user(user)
                .map_err(|e| SshConfigError::Invalid(format!("user: {e}")))?;
        }
        if self.ssh_options.is_empty() {
            return Ok(None);
        }
        let mut text = String::from(
            "# Written by kupgrade: its extra options first (the first value of an option \
             wins), then the usual files.\n",
        );
        for (key, value) in &self.ssh_options {
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(SshConfigError::Invalid(format!(
                    "ssh option name {key:?} is not an ssh_config keyword (letters and digits)"
                )));
            }
            if value.trim().is_empty() || value.chars().any(|c| c.is_control()) {
                return Err(SshConfigError::Invalid(format!(
                    "ssh option {key}: value {value:?} is empty or contains control characters"
                )));
            }
            text.push_str(&format!("{key} {value}\n"));
        }
        match &self.config_file {
            Some(file) => text.push_str(&format!("Include {}\n", quote_config(file)?)),
            None => text.push_str("Include ~/.ssh/config\nInclude /etc/ssh/ssh_config\n"),
        }
        Ok(Some(text))
    }
}

fn quote_config(path: &Path) -> Result<String, SshConfigError> {
    let s = path
        .to_str()
        .filter(|s| !s.contains(['"', '\n']))
        .ok_or_else(|| {
            SshConfigError::Invalid(format!(
                "config file path {} cannot be written in an ssh_config file",
                path.display()
            ))
        })?;
    Ok(format!("\"{s}\""))
}

/// Why an [`SshRunner`](super::SshRunner) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SshConfigError {
    /// An option is not usable.
    #[error("invalid SSH configuration: {0}")]
    Invalid(String),
    /// The private directory could not be created.
    #[error("cannot create the SSH runner's private directory in {dir}: {source}")]
    StateDir {
        /// Where it was to be created.
        dir: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_options_no_file() {
        assert_eq!(SshConfig::new().render_config_file().unwrap(), None);
    }

    #[test]
    fn options_come_before_the_usual_files() {
        let text = SshConfig::new()
            .ssh_option("ProxyJump", "bastion.example")
            .render_config_file()
            .unwrap()
            .unwrap();
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                "ProxyJump bastion.example",
                "Include ~/.ssh/config",
                "Include /etc/ssh/ssh_config"
            ]
        );
        let text = SshConfig::new()
            .config_file("/etc/kupgrade/ssh_config")
            .ssh_option("Port", "2222")
            .render_config_file()
            .unwrap()
            .unwrap();
        assert!(text.ends_with("Port 2222\nInclude \"/etc/kupgrade/ssh_config\"\n"));
    }

    #[test]
    fn bad_options_are_refused_by_name() {
        let e = SshConfig::new()
            .ssh_option("Proxy Command", "x")
            .render_config_file()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid SSH configuration: ssh option name \"Proxy Command\" is not an ssh_config \
             keyword (letters and digits)"
        );
        let e = SshConfig::new()
            .ssh_option("User", "root\nProxyCommand evil")
            .render_config_file()
            .unwrap_err();
        assert!(e.to_string().contains("ssh option User"), "{e}");
        assert!(
            SshConfig::new()
                .max_sessions_per_node(0)
                .render_config_file()
                .is_err()
        );
        let e = SshConfig::new()
            .user("root;touch /tmp/x")
            .render_config_file()
            .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "invalid SSH configuration: user: \"root;touch /tmp/x\" is not a POSIX user name"
            ),
            "{e}"
        );
    }
}
