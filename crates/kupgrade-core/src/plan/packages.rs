//! The commands a node step runs, per operating-system family.
//!
//! Facts (see the project's `k8s-packages.md`): pkgs.k8s.io has one repository per minor, from
//! v1.24 on. Debian and Ubuntu list it in `/etc/apt/sources.list.d/kubernetes.list`, signed by
//! the key in `/etc/apt/keyrings/kubernetes-apt-keyring.gpg` (the same key for every minor),
//! and hold the packages with `apt-mark`; versions are pinned as `1.29.3-*`. RHEL-like systems
//! describe it in `/etc/yum.repos.d/kubernetes.repo`, whose `exclude=` line keeps the packages
//! out of ordinary updates, so installs pass `--disableexcludes=kubernetes`.
//!
//! Commands are [`CommandSpec`]s (a program and its arguments), never shell text, except the
//! kubeadm version check, whose script is built from a parsed version and quoted. Writing a
//! repository file passes its content on standard input to `tee`. Every value in a command is
//! validated: versions are parsed [`KubeVersion`]s, paths are checked by [`validate_path`].
use std::time::Duration;

use crate::ports::{CommandSpec, shell_quote};
use crate::{KubeVersion, Minor, OsFamily};

use super::action::Action;
use super::step::{OsCommands, Package};

/// The apt source list kubeadm's documentation uses.
pub const APT_LIST: &str = "/etc/apt/sources.list.d/kubernetes.list";
/// The apt keyring kubeadm's documentation uses.
pub const APT_KEYRING: &str = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg";
/// The yum/dnf repository file kubeadm's documentation uses.
pub const YUM_REPO: &str = "/etc/yum.repos.d/kubernetes.repo";
/// The first minor pkgs.k8s.io publishes.
pub const FIRST_PACKAGED_MINOR: Minor = Minor::new(1, 24);

/// A path option that cannot safely be put into a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path:?} is not a usable path: {reason}")]
pub struct PathError {
    /// The path given.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// Accepts absolute paths made of letters, digits and `.`, `_`, `-`, `+`, `/`, without `..`
/// or empty segments, at most 1024 bytes.
///
/// ```
/// use kupgrade_core::plan::validate_path;
/// assert!(validate_path("/var/backups/kupgrade").is_ok());
/// assert_eq!(
///     validate_path("/tmp/$(reboot)").unwrap_err().reason,
///     "'$' is not allowed (letters, digits, '.', '_', '-', '+' and '/' only)"
/// );
/// assert!(validate_path("relative/dir").is_err());
/// assert!(validate_path("/var/../etc").is_err());
/// ```
pub fn validate_path(path: &str) -> Result<(), PathError> {
    let bad = |reason: &str| {
        Err(PathError {
            path: path.to_string(),
            reason: reason.to_string(),
        })
    };
    if !path.starts_with('/') {
        return bad("it must be absolute");
    }
    if path.len() > 1024 {
        return bad("it is longer than 1024 bytes");
    }
    if let Some(c) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-+/".contains(*c)))
    {
        return bad(&format!(
            "{c:?} is not allowed (letters, digits, '.', '_', '-', '+' and '/' only)"
        ));
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return bad("it is the root directory");
    }
    for seg in trimmed[1..].split('/') {
        if seg.is_empty() {
            return bad("it has an empty segment ('//')");
        }
        if seg == "." || seg == ".." {
            return bad("it has a '.' or '..' segment");
        }
    }
    Ok(())
}

/// The package version pin for `version`: `1.29.3-*` (pre-releases as `1.30.0~rc.1-*`, the
/// way Debian and RPM order them before the release).
pub fn package_pin(version: &KubeVersion) -> String {
    let base = format!(
        "{}.{}.{}",
        version.major(),
        version.minor_number(),
        version.patch()
    );
    match version.pre_release() {
        Some(pre) => format!("{base}~{pre}-*"),
        None => format!("{base}-*"),
    }
}

/// The apt source line for `minor`.
pub fn apt_source(minor: Minor) -> String {
    format!("deb [signed-by={APT_KEYRING}] https://pkgs.k8s.io/core:/stable:/v{minor}/deb/ /\n")
}

/// The yum/dnf repository file for `minor`.
pub fn yum_repo(minor: Minor) -> String {
    format!(
        "[kubernetes]\nname=Kubernetes\nbaseurl=https://pkgs.k8s.io/core:/stable:/v{minor}/rpm/\nenabled=1\ngpgcheck=1\ngpgkey=https://pkgs.k8s.io/core:/stable:/v{minor}/rpm/repodata/repomd.xml.key\nexclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n"
    )
}

const MIN: u64 = 60;

fn sudo(program: &str) -> CommandSpec {
    CommandSpec::new(program).sudo()
}

fn manual(os: OsFamily, what: String) -> OsCommands {
    OsCommands {
        os,
        commands: Vec::new(),
        manual: Some(what),
    }
}

/// The commands `action` runs on a node of family `os`, or `None` when the action runs no node
/// commands (cluster operations, checks, the provider).
///
/// ```
/// use kupgrade_core::plan::{node_commands, Action, Package};
/// use kupgrade_core::OsFamily;
/// let action = Action::InstallPackages {
///     packages: vec![Package::Kubeadm],
///     version: "v1.29.3".parse()?,
/// };
/// let lines: Vec<String> = node_commands(&action, OsFamily::Rhel).unwrap()
///     .commands.iter().map(|c| c.to_shell_line()).collect();
/// assert_eq!(lines, ["sudo -n dnf install -y 'kubeadm-1.29.3-*' --disableexcludes=kubernetes"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn node_commands(action: &Action, os: OsFamily) -> Option<OsCommands> {
    let commands = match action {
        Action::EtcdSnapshot { path } => {
            let dir = path.rsplit_once('/').map_or("/", |(d, _)| d);
            vec![
                sudo("mkdir")
                    .arg("-p")
                    .arg(if dir.is_empty() { "/" } else { dir }),
                sudo("etcdctl")
                    .env("ETCDCTL_API", "3")
                    .args([
                        "--endpoints=https://127.0.0.1:2379",
                        "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
                        "--cert=/etc/kubernetes/pki/etcd/server.crt",
                        "--key=/etc/kubernetes/pki/etcd/server.key",
                        "snapshot",
                        "save",
                    ])
                    .arg(path.as_str())
                    .timeout(Duration::from_secs(10 * MIN)),
            ]
        }
        Action::BackupConfig { path } => {
            let dir = path.rsplit_once('/').map_or("/", |(d, _)| d);
            vec![
                sudo("mkdir")
                    .arg("-p")
                    .arg(if dir.is_empty() { "/" } else { dir }),
                sudo("cp")
                    .args(["-a", "-T", "/etc/kubernetes"])
                    .arg(path.as_str())
                    .timeout(Duration::from_secs(5 * MIN)),
            ]
        }
        Action::SwitchRepository { minor } => {
            if *minor < FIRST_PACKAGED_MINOR {
                return Some(manual(
                    os,
                    format!(
                        "pkgs.k8s.io has no packages before v{FIRST_PACKAGED_MINOR}: point this node at a repository or mirror that carries Kubernetes v{minor}"
                    ),
                ));
            }
            match os {
                OsFamily::Debian => vec![
                    sudo("tee")
                        .arg(APT_LIST)
                        .stdin(apt_source(*minor))
                        .timeout(Duration::from_secs(MIN)),
                ],
                OsFamily::Rhel => vec![
                    sudo("tee")
                        .arg(YUM_REPO)
                        .stdin(yum_repo(*minor))
                        .timeout(Duration::from_secs(MIN)),
                ],
                OsFamily::Other => {
                    return Some(manual(
                        os,
                        format!(
                            "point this node's package manager at the Kubernetes v{minor} repository (kupgrade renders commands for Debian/Ubuntu and RHEL-like systems only)"
                        ),
                    ));
                }
            }
        }
        Action::InstallPackages { packages, version } => {
            let names: Vec<&str> = packages.iter().map(|p| p.name()).collect();
            if version.minor() < FIRST_PACKAGED_MINOR {
                return Some(manual(
                    os,
                    format!(
                        "install {} {version} from the repository or mirror this node uses (pkgs.k8s.io has no packages before v{FIRST_PACKAGED_MINOR}), then hold them",
                        names.join(", ")
                    ),
                ));
            }
            let pin = package_pin(version);
            match os {
                OsFamily::Debian => vec![
                    sudo("apt-get")
                        .arg("update")
                        .timeout(Duration::from_secs(5 * MIN)),
                    sudo("apt-mark")
                        .arg("unhold")
                        .args(names.iter().copied())
                        .timeout(Duration::from_secs(MIN)),
                    sudo("apt-get")
                        .env("DEBIAN_FRONTEND", "noninteractive")
                        .args(["install", "-y"])
                        .args(packages.iter().map(|p| format!("{}={pin}", p.name())))
                        .timeout(Duration::from_secs(15 * MIN)),
                    sudo("apt-mark")
                        .arg("hold")
                        .args(names.iter().copied())
                        .timeout(Duration::from_secs(MIN)),
                ],
                OsFamily::Rhel => vec![
                    sudo("dnf")
                        .args(["install", "-y"])
                        .args(packages.iter().map(|p| format!("{}-{pin}", p.name())))
                        .arg("--disableexcludes=kubernetes")
                        .timeout(Duration::from_secs(15 * MIN)),
                ],
                OsFamily::Other => {
                    return Some(manual(
                        os,
                        format!(
                            "install {} {version} with this node's package manager (kupgrade renders commands for Debian/Ubuntu and RHEL-like systems only)",
                            names.join(", ")
                        ),
                    ));
                }
            }
        }
        Action::CheckKubeadmVersion { version } => vec![
            CommandSpec::shell(format!(
                "test \"$(kubeadm version -o short)\" = {}",
                shell_quote(&version.to_string())
            ))
            .timeout(Duration::from_secs(MIN)),
        ],
        Action::KubeadmUpgradePlan { version } => vec![
            sudo("kubeadm")
                .args(["upgrade", "plan"])
                .arg(version.to_string())
                .timeout(Duration::from_secs(10 * MIN)),
        ],
        Action::KubeadmUpgradeApply { version, .. } => vec![
            sudo("kubeadm")
                .args(["upgrade", "apply"])
                .arg(version.to_string())
                .arg("--yes")
                .timeout(Duration::from_secs(30 * MIN)),
        ],
        Action::KubeadmUpgradeNode { .. } => vec![
            sudo("kubeadm")
                .args(["upgrade", "node"])
                .timeout(Duration::from_secs(30 * MIN)),
        ],
        Action::RestartKubelet { .. } => vec![
            sudo("systemctl")
                .arg("daemon-reload")
                .timeout(Duration::from_secs(MIN)),
            sudo("systemctl")
                .args(["restart", "kubelet"])
                .timeout(Duration::from_secs(2 * MIN)),
        ],
        Action::Preflight { .. }
        | Action::Cordon
        | Action::Drain { .. }
        | Action::WaitReady { .. }
        | Action::Uncordon
        | Action::WaitKubeProxyRollout { .. }
        | Action::UpgradeKubectlClient { .. }
        | Action::ProvisionNodes { .. }
        | Action::RemoveNodes
        | Action::Verify { .. } => return None,
    };
    Some(OsCommands {
        os,
        commands,
        manual: None,
    })
}

/// The packages a kubelet upgrade installs together.
pub(crate) const KUBELET_PACKAGES: [Package; 2] = [Package::Kubelet, Package::Kubectl];

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(action: &Action, os: OsFamily) -> Vec<String> {
        node_commands(action, os)
            .unwrap()
            .commands
            .iter()
            .map(|c| c.to_shell_line())
            .collect()
    }

    #[test]
    fn debian_install_unholds_pins_and_holds() {
        let a = Action::InstallPackages {
            packages: vec![Package::Kubelet, Package::Kubectl],
            version: "v1.29.3".parse().unwrap(),
        };
        assert_eq!(
            lines(&a, OsFamily::Debian),
            [
                "sudo -n apt-get update",
                "sudo -n apt-mark unhold kubelet kubectl",
                "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y 'kubelet=1.29.3-*' 'kubectl=1.29.3-*'",
                "sudo -n apt-mark hold kubelet kubectl",
            ]
        );
    }

    #[test]
    fn repository_files_name_the_minor() {
        let a = Action::SwitchRepository {
            minor: "1.30".parse().unwrap(),
        };
        let deb = node_commands(&a, OsFamily::Debian).unwrap();
        assert_eq!(
            deb.commands[0].to_shell_line(),
            "sudo -n tee /etc/apt/sources.list.d/kubernetes.list"
        );
        assert_eq!(
            String::from_utf8(deb.commands[0].stdin.clone().unwrap()).unwrap(),
            "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n"
        );
        let rpm = node_commands(&a, OsFamily::Rhel).unwrap();
        let text = String::from_utf8(rpm.commands[0].stdin.clone().unwrap()).unwrap();
        assert!(text.contains("baseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/\n"));
        assert!(text.contains(
            "gpgkey=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/repodata/repomd.xml.key\n"
        ));
        assert!(node_commands(&a, OsFamily::Other).unwrap().manual.is_some());
        let old = Action::SwitchRepository {
            minor: "1.23".parse().unwrap(),
        };
        let m = node_commands(&old, OsFamily::Debian).unwrap();
        assert!(m.commands.is_empty());
        assert!(m.manual.unwrap().contains("no packages before v1.24"));
    }

    #[test]
    fn kubeadm_commands() {
        let v: KubeVersion = "v1.30.2".parse().unwrap();
        let apply = Action::KubeadmUpgradeApply {
            version: v.clone(),
            etcd: None,
            addons: Default::default(),
        };
        assert_eq!(
            lines(&apply, OsFamily::Rhel),
            ["sudo -n kubeadm upgrade apply v1.30.2 --yes"]
        );
        let check = Action::CheckKubeadmVersion { version: v };
        assert_eq!(
            lines(&check, OsFamily::Debian),
            [r#"test "$(kubeadm version -o short)" = v1.30.2"#]
        );
        assert_eq!(
            package_pin(&"v1.30.0-rc.1".parse().unwrap()),
            "1.30.0~rc.1-*"
        );
    }

    #[test]
    fn paths_are_validated() {
        for ok in ["/var/backups/kupgrade", "/a/b.c/d_e-f+g/"] {
            assert!(validate_path(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("var/x", "it must be absolute"),
            ("/", "it is the root directory"),
            ("/a//b", "it has an empty segment ('//')"),
            ("/a/../b", "it has a '.' or '..' segment"),
            (
                "/a b",
                "' ' is not allowed (letters, digits, '.', '_', '-', '+' and '/' only)",
            ),
            (
                "/a';rm -rf /'",
                "'\\'' is not allowed (letters, digits, '.', '_', '-', '+' and '/' only)",
            ),
        ] {
            assert_eq!(validate_path(bad).unwrap_err().reason, why, "{bad}");
        }
    }
}
