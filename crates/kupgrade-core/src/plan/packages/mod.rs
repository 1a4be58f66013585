//! The commands a node step runs, and the package managers behind them: one file per
//! operating-system family.
//!
//! Facts (see the project's `k8s-packages.md`): pkgs.k8s.io has one repository per minor, from
//! v1.24 on, in a deb and an rpm layout. Each family's file ([`Apt`] for Debian and Ubuntu,
//! [`Dnf`] for RHEL-like systems, [`Zypper`] for openSUSE and SLES) says, as a
//! [`PackageManager`]: where the repository file lives and what it says for a minor, how
//! packages are installed at an exact version and kept there (holds, excludes, locks), the
//! family's title in rendered plans, and which OS images (`osImage` in a node's status) belong
//! to it. [`node_commands`] builds the commands of an action and asks the family for the
//! package-specific ones; discovery ([`family_of_os_image`]) and the simulated cluster ask the
//! same files.
//!
//! Adding a family: a file here implementing [`PackageManager`], a variant of [`OsFamily`]
//! (with its place in [`OsFamily::ALL`]), its arm in [`manager`], and the simulated cluster's
//! rule for its programs.
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

mod debian;
mod rpm;
mod zypper;

pub use debian::{APT_KEYRING, APT_LIST, Apt, apt_source};
pub use rpm::{DNF_REMOVE_DUPLICATES, Dnf, YUM_REPO, yum_repo};
pub use zypper::{ZYPPER_REPO, ZYPPER_REPO_ALIAS, Zypper, zypper_repo};

/// The first minor pkgs.k8s.io publishes.
pub const FIRST_PACKAGED_MINOR: Minor = Minor::new(1, 24);

/// What kupgrade needs to know about one family's package manager. Each implementation is one
/// file of this module; [`manager`] finds it for an [`OsFamily`].
pub trait PackageManager: Send + Sync {
    /// The family it serves.
    fn family(&self) -> OsFamily;

    /// The family's name in rendered plans (`Debian/Ubuntu`).
    fn title(&self) -> &'static str;

    /// Whether a node's OS image (`osImage` in its status, lower-cased: `ubuntu 22.04.4 lts`)
    /// is of this family.
    fn recognises(&self, os_image: &str) -> bool;

    /// The programs its commands run that only this family's nodes have (`apt-get`).
    fn programs(&self) -> &'static [&'static str];

    /// The file that describes the Kubernetes package repository.
    fn repository_path(&self) -> &'static str;

    /// The text of [`repository_path`](Self::repository_path) for `minor` (pkgs.k8s.io's
    /// layout).
    fn repository(&self, minor: Minor) -> String;

    /// The commands that install `packages` at exactly `version` (a minor pkgs.k8s.io
    /// publishes) and keep them there: lifting the hold, lock or exclude, installing, and
    /// putting it back.
    fn install(&self, packages: &[Package], version: &KubeVersion) -> Vec<CommandSpec>;

    /// The commands that download `packages` at exactly `version` from `version`'s
    /// repository into the cache the family's install reads, installing nothing and leaving
    /// the node's repository file and its holds, locks or excludes as they are (pre-staging);
    /// `None` when the family cannot do that (then nothing is pre-staged on its nodes).
    fn download(&self, _packages: &[Package], _version: &KubeVersion) -> Option<Vec<CommandSpec>> {
        None
    }

    /// The commands that point the node at `minor`'s repository: by default, the repository
    /// file written with `tee`.
    fn switch_repository(&self, minor: Minor) -> Vec<CommandSpec> {
        vec![
            sudo("tee")
                .arg(self.repository_path())
                .stdin(self.repository(minor))
                .timeout(Duration::from_secs(MIN)),
        ]
    }
}

/// The package manager of `os`, or `None` for [`OsFamily::Other`].
///
/// ```
/// use kupgrade_core::plan::packages::manager;
/// use kupgrade_core::OsFamily;
/// let suse = manager(OsFamily::Suse).unwrap();
/// assert_eq!(suse.repository_path(), "/etc/zypp/repos.d/kubernetes.repo");
/// assert_eq!(suse.title(), "openSUSE/SLES");
/// assert!(manager(OsFamily::Other).is_none());
/// ```
pub fn manager(os: OsFamily) -> Option<&'static dyn PackageManager> {
    match os {
        OsFamily::Debian => Some(&Apt),
        OsFamily::Rhel => Some(&Dnf),
        OsFamily::Suse => Some(&Zypper),
        OsFamily::Other => None,
    }
}

/// Every family's package manager, in the order of [`OsFamily::ALL`].
pub fn managers() -> impl Iterator<Item = &'static dyn PackageManager> {
    OsFamily::ALL.iter().filter_map(|os| manager(*os))
}

/// The family of a node's OS image (`osImage` in its status: `Ubuntu 22.04.4 LTS`,
/// `Rocky Linux 9.3 (Blue Onyx)`, `openSUSE Leap 15.5`): the first family that recognises it,
/// or [`OsFamily::Other`].
///
/// ```
/// use kupgrade_core::plan::packages::family_of_os_image;
/// use kupgrade_core::OsFamily;
/// assert_eq!(family_of_os_image("SUSE Linux Enterprise Server 15 SP5"), OsFamily::Suse);
/// assert_eq!(family_of_os_image("Bottlerocket OS 1.19.0 (aws-k8s-1.29)"), OsFamily::Other);
/// ```
pub fn family_of_os_image(os_image: &str) -> OsFamily {
    let image = os_image.to_ascii_lowercase();
    managers()
        .find(|m| m.recognises(&image))
        .map_or(OsFamily::Other, |m| m.family())
}

/// The family's name in rendered plans (`other OS` for [`OsFamily::Other`]).
pub fn title(os: OsFamily) -> &'static str {
    manager(os).map_or("other OS", |m| m.title())
}

/// Whether `text` contains one of `words`.
fn mentions(text: &str, words: &[&str]) -> bool {
    words.iter().any(|w| text.contains(w))
}

/// `Debian/Ubuntu, RHEL-like and openSUSE/SLES`: the families kupgrade renders commands for.
fn rendered_families() -> String {
    let titles: Vec<&str> = managers().map(|m| m.title()).collect();
    match titles.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => titles.concat(),
    }
}

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

/// The package version of `version` as Debian and RPM write it: `1.29.3`, pre-releases as
/// `1.30.0~rc.1` (which both order before the release).
pub(crate) fn package_version(version: &KubeVersion) -> String {
    let base = format!(
        "{}.{}.{}",
        version.major(),
        version.minor_number(),
        version.patch()
    );
    match version.pre_release() {
        Some(pre) => format!("{base}~{pre}"),
        None => base,
    }
}

/// The package version pin for `version`, any package revision: `1.29.3-*` (pre-releases as
/// `1.30.0~rc.1-*`, the way Debian and RPM order them before the release).
pub fn package_pin(version: &KubeVersion) -> String {
    format!("{}-*", package_version(version))
}

/// Where pre-staging keeps its own package-manager files on a node (a source list and the
/// index of each minor's repository, apart from the node's own).
pub const PRESTAGE_DIR: &str = "/var/lib/kupgrade/prestage";

/// Whether a node of `os` can download packages at `version` ahead of its install (a family
/// with [`PackageManager::download`], a minor pkgs.k8s.io publishes).
pub fn can_download(os: OsFamily, version: &KubeVersion) -> bool {
    version.minor() >= FIRST_PACKAGED_MINOR
        && manager(os).is_some_and(|m| m.download(&[Package::Kubeadm], version).is_some())
}

/// A minute, in seconds.
const MIN: u64 = 60;

fn sudo(program: &str) -> CommandSpec {
    CommandSpec::new(program).sudo()
}

/// `mkdir -p` of the directory `path` (a backup's or a snapshot's) goes into (`/` for a path
/// with no directory or one right under `/`).
fn make_parent(path: &str) -> CommandSpec {
    let dir = path.rsplit_once('/').map_or("/", |(d, _)| d);
    sudo("mkdir")
        .arg("-p")
        .arg(if dir.is_empty() { "/" } else { dir })
        .timeout(Duration::from_secs(MIN))
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
/// // First the repair of what an interrupted dnf may have left, then the pinned install.
/// assert!(lines[0].contains("dnf remove -y --duplicates"));
/// assert_eq!(lines[1], "sudo -n dnf install -y 'kubeadm-1.29.3-*' --disableexcludes=kubernetes");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn node_commands(action: &Action, os: OsFamily) -> Option<OsCommands> {
    let commands = match action {
        Action::EtcdSnapshot { path } => vec![
            make_parent(path),
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
        ],
        Action::BackupConfig { path } => vec![
            make_parent(path),
            sudo("cp")
                .args(["-a", "-T", "/etc/kubernetes"])
                .arg(path.as_str())
                .timeout(Duration::from_secs(5 * MIN)),
        ],
        Action::SwitchRepository { minor } => match switch_repository(*minor, os) {
            Ok(commands) => commands,
            Err(what) => return Some(manual(os, what)),
        },
        Action::InstallPackages { packages, version } => {
            match install_packages(packages, version, os) {
                Ok(commands) => commands,
                Err(what) => return Some(manual(os, what)),
            }
        }
        // Nothing to download where the family cannot: the planner pre-stages no such node.
        Action::DownloadPackages { packages, version } => match manager(os) {
            Some(m) if version.minor() >= FIRST_PACKAGED_MINOR => {
                m.download(packages, version).unwrap_or_default()
            }
            _ => Vec::new(),
        },
        // The node's own kubeadm lists the images of the version asked for; a kubeadm one
        // minor older names its own etcd and CoreDNS tags, which `kubeadm upgrade` then pulls
        // itself (see the module documentation of the planner's `prestage.rs`).
        Action::PullImages { version } => vec![
            sudo("kubeadm")
                .args(["config", "images", "pull", "--kubernetes-version"])
                .arg(version.to_string())
                .timeout(Duration::from_secs(15 * MIN)),
        ],
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
        | Action::Verify { .. }
        | Action::GateBaseline { .. }
        | Action::Gate { .. }
        | Action::Hook { .. } => return None,
    };
    Some(OsCommands {
        os,
        commands,
        manual: None,
    })
}

/// The commands that point a node of `os` at `minor`'s repository, or what to do by hand.
fn switch_repository(minor: Minor, os: OsFamily) -> Result<Vec<CommandSpec>, String> {
    if minor < FIRST_PACKAGED_MINOR {
        return Err(format!(
            "pkgs.k8s.io has no packages before v{FIRST_PACKAGED_MINOR}: point this node at a repository or mirror that carries Kubernetes v{minor}"
        ));
    }
    match manager(os) {
        Some(m) => Ok(m.switch_repository(minor)),
        None => Err(format!(
            "point this node's package manager at the Kubernetes v{minor} repository (kupgrade renders commands for {} systems only)",
            rendered_families()
        )),
    }
}

/// The commands that install `packages` at `version` on a node of `os`, or what to do by hand.
fn install_packages(
    packages: &[Package],
    version: &KubeVersion,
    os: OsFamily,
) -> Result<Vec<CommandSpec>, String> {
    let names = || {
        packages
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if version.minor() < FIRST_PACKAGED_MINOR {
        return Err(format!(
            "install {} {version} from the repository or mirror this node uses (pkgs.k8s.io has no packages before v{FIRST_PACKAGED_MINOR}), then hold them",
            names()
        ));
    }
    match manager(os) {
        Some(m) => Ok(m.install(packages, version)),
        None => Err(format!(
            "install {} {version} with this node's package manager (kupgrade renders commands for {} systems only)",
            names(),
            rendered_families()
        )),
    }
}

/// The packages a kubelet upgrade installs together.
pub(crate) const KUBELET_PACKAGES: [Package; 2] = [Package::Kubelet, Package::Kubectl];

#[cfg(test)]
mod tests {
    use super::*;

    /// The shell lines of `action`'s commands on a node of family `os`.
    pub(super) fn lines(action: &Action, os: OsFamily) -> Vec<String> {
        node_commands(action, os)
            .unwrap()
            .commands
            .iter()
            .map(|c| c.to_shell_line())
            .collect()
    }

    #[test]
    fn other_systems_and_old_minors_get_instructions_instead_of_commands() {
        let switch = Action::SwitchRepository {
            minor: "1.30".parse().unwrap(),
        };
        let other = node_commands(&switch, OsFamily::Other).unwrap();
        assert!(other.commands.is_empty());
        assert_eq!(
            other.manual.unwrap(),
            "point this node's package manager at the Kubernetes v1.30 repository (kupgrade renders commands for Debian/Ubuntu, RHEL-like and openSUSE/SLES systems only)"
        );
        let install = Action::InstallPackages {
            packages: vec![Package::Kubeadm],
            version: "v1.30.2".parse().unwrap(),
        };
        assert_eq!(
            node_commands(&install, OsFamily::Other)
                .unwrap()
                .manual
                .unwrap(),
            "install kubeadm v1.30.2 with this node's package manager (kupgrade renders commands for Debian/Ubuntu, RHEL-like and openSUSE/SLES systems only)"
        );
        let old = Action::SwitchRepository {
            minor: "1.23".parse().unwrap(),
        };
        for os in OsFamily::ALL {
            let m = node_commands(&old, os).unwrap();
            assert!(m.commands.is_empty(), "{os}");
            assert!(
                m.manual.unwrap().contains("no packages before v1.24"),
                "{os}"
            );
        }
    }

    #[test]
    fn every_family_file_answers_for_its_own_family() {
        let mut paths = Vec::new();
        let mut titles = Vec::new();
        for os in OsFamily::ALL {
            let Some(m) = manager(os) else {
                assert_eq!(os, OsFamily::Other);
                assert_eq!(title(os), "other OS");
                continue;
            };
            assert_eq!(m.family(), os);
            assert_eq!(title(os), m.title());
            validate_path(m.repository_path()).unwrap();
            paths.push(m.repository_path());
            titles.push(m.title());
            // Its install commands run its own programs, as root, each with a deadline.
            let v: KubeVersion = "v1.30.2".parse().unwrap();
            for c in m.install(&[Package::Kubeadm], &v) {
                match &c.program {
                    crate::ports::Program::Exec { program, .. } => {
                        assert!(m.programs().contains(&program.as_str()), "{os}: {program}")
                    }
                    // The one script: dnf's repair of an interrupted transaction.
                    crate::ports::Program::Shell { script } => {
                        assert_eq!(os, OsFamily::Rhel, "{os}: {script}");
                        assert_eq!(script, DNF_REMOVE_DUPLICATES);
                    }
                }
                assert_eq!(c.privilege, crate::ports::Privilege::Sudo, "{os}");
                assert!(c.timeout.is_some(), "{os}");
            }
            // Its repository names the minor in pkgs.k8s.io's layout.
            let text = m.repository("1.31".parse().unwrap());
            assert!(
                text.contains("https://pkgs.k8s.io/core:/stable:/v1.31/"),
                "{os}"
            );
        }
        paths.sort_unstable();
        paths.dedup();
        titles.sort_unstable();
        titles.dedup();
        assert_eq!(paths.len(), managers().count(), "{paths:?}");
        assert_eq!(titles.len(), managers().count(), "{titles:?}");
        // A program belongs to one family (the simulated cluster tells them apart by it).
        let mut programs: Vec<&str> = managers()
            .flat_map(|m| m.programs().iter().copied())
            .collect();
        let n = programs.len();
        programs.sort_unstable();
        programs.dedup();
        assert_eq!(programs.len(), n, "{programs:?}");
    }

    #[test]
    fn os_images_map_to_one_family() {
        for (image, family) in [
            ("Ubuntu 22.04.4 LTS", OsFamily::Debian),
            ("Debian GNU/Linux 12 (bookworm)", OsFamily::Debian),
            ("Red Hat Enterprise Linux 9.3 (Plow)", OsFamily::Rhel),
            ("Rocky Linux 9.3 (Blue Onyx)", OsFamily::Rhel),
            ("AlmaLinux 9.3 (Shamrock Pampas Cat)", OsFamily::Rhel),
            ("CentOS Stream 9", OsFamily::Rhel),
            ("Fedora Linux 39 (Server Edition)", OsFamily::Rhel),
            ("Amazon Linux 2023", OsFamily::Rhel),
            ("Oracle Linux Server 8.9", OsFamily::Rhel),
            ("openSUSE Leap 15.5", OsFamily::Suse),
            ("openSUSE Tumbleweed", OsFamily::Suse),
            ("SUSE Linux Enterprise Server 15 SP5", OsFamily::Suse),
            // A read-only root: packages go through transactional-update, not zypper install.
            ("SUSE Linux Enterprise Micro 5.5", OsFamily::Other),
            ("openSUSE MicroOS", OsFamily::Other),
            ("Bottlerocket OS 1.19.0 (aws-k8s-1.29)", OsFamily::Other),
            ("Container-Optimized OS from Google", OsFamily::Other),
            ("", OsFamily::Other),
        ] {
            assert_eq!(family_of_os_image(image), family, "{image}");
            // No other family claims it too.
            let lower = image.to_ascii_lowercase();
            let claims = managers().filter(|m| m.recognises(&lower)).count();
            assert!(claims <= 1, "{image}: {claims} families");
        }
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
