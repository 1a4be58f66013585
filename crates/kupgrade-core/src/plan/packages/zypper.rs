//! openSUSE and SUSE Linux Enterprise: zypper and rpm.
//!
//! pkgs.k8s.io's rpm repository is described in `/etc/zypp/repos.d/kubernetes.repo` (the
//! repository alias is its section name, `kubernetes`). zypper has no `exclude=`: the packages
//! are kept where they are with package locks (`zypper addlock`), so an install removes the
//! locks, installs exact versions and locks them again. The versions are capabilities,
//! `kubeadm=1.29.3` (any release of that version), with `--oldpackage` so that the same
//! command also moves a package back.
//!
//! Every command runs with the global `--non-interactive`, which answers zypper's prompts with
//! their defaults. A changed repository file is read after `zypper refresh`, which is given
//! `--gpg-auto-import-keys` and only the `kubernetes` repository: the signing key named by the
//! `gpgkey=` line kupgrade wrote is trusted, as dnf trusts it; without that flag a
//! non-interactive refresh rejects a key it has not seen.
//!
//! Transactional systems (SLE Micro, openSUSE MicroOS, Leap Micro) have a read-only root and
//! install through `transactional-update`: they are not recognised as this family.
use std::time::Duration;

use crate::ports::CommandSpec;
use crate::{KubeVersion, Minor, OsFamily};

use super::{MIN, Package, PackageManager, package_version, sudo};

/// The zypper repository file the Kubernetes documentation uses.
pub const ZYPPER_REPO: &str = "/etc/zypp/repos.d/kubernetes.repo";
/// The repository's alias (its section name in [`ZYPPER_REPO`]).
pub const ZYPPER_REPO_ALIAS: &str = "kubernetes";

/// The zypper repository file for `minor`.
pub fn zypper_repo(minor: Minor) -> String {
    format!(
        "[{ZYPPER_REPO_ALIAS}]\nname=Kubernetes\nbaseurl=https://pkgs.k8s.io/core:/stable:/v{minor}/rpm/\nenabled=1\ngpgcheck=1\ngpgkey=https://pkgs.k8s.io/core:/stable:/v{minor}/rpm/repodata/repomd.xml.key\n"
    )
}

/// zypper, on openSUSE and SUSE Linux Enterprise.
#[derive(Clone, Copy, Debug, Default)]
pub struct Zypper;

/// `sudo -n zypper --non-interactive …`.
fn zypper() -> CommandSpec {
    sudo("zypper").arg("--non-interactive")
}

impl PackageManager for Zypper {
    fn family(&self) -> OsFamily {
        OsFamily::Suse
    }

    fn title(&self) -> &'static str {
        "openSUSE/SLES"
    }

    fn recognises(&self, os_image: &str) -> bool {
        super::mentions(os_image, &["opensuse", "suse linux enterprise", "sles"])
            && !super::mentions(os_image, &["micro"])
    }

    fn programs(&self) -> &'static [&'static str] {
        &["zypper"]
    }

    fn repository_path(&self) -> &'static str {
        ZYPPER_REPO
    }

    fn repository(&self, minor: Minor) -> String {
        zypper_repo(minor)
    }

    fn install(&self, packages: &[Package], version: &KubeVersion) -> Vec<CommandSpec> {
        let names = packages.iter().map(|p| p.name());
        let edition = package_version(version);
        vec![
            zypper()
                .args(["--gpg-auto-import-keys", "refresh", ZYPPER_REPO_ALIAS])
                .timeout(Duration::from_secs(5 * MIN)),
            zypper()
                .arg("removelock")
                .args(names.clone())
                .timeout(Duration::from_secs(MIN)),
            zypper()
                .args(["install", "--oldpackage"])
                .args(packages.iter().map(|p| format!("{}={edition}", p.name())))
                .timeout(Duration::from_secs(15 * MIN)),
            zypper()
                .arg("addlock")
                .args(names)
                .timeout(Duration::from_secs(MIN)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::lines;
    use super::*;
    use crate::plan::Action;

    #[test]
    fn install_refreshes_unlocks_installs_exact_versions_and_locks() {
        let a = Action::InstallPackages {
            packages: vec![Package::Kubelet, Package::Kubectl],
            version: "v1.29.3".parse().unwrap(),
        };
        assert_eq!(
            lines(&a, OsFamily::Suse),
            [
                "sudo -n zypper --non-interactive --gpg-auto-import-keys refresh kubernetes",
                "sudo -n zypper --non-interactive removelock kubelet kubectl",
                "sudo -n zypper --non-interactive install --oldpackage kubelet=1.29.3 kubectl=1.29.3",
                "sudo -n zypper --non-interactive addlock kubelet kubectl",
            ]
        );
        // A pre-release sorts before its release in rpm as `~rc.1`; the shell line quotes it.
        let rc = Action::InstallPackages {
            packages: vec![Package::Kubeadm],
            version: "v1.30.0-rc.1".parse().unwrap(),
        };
        assert_eq!(
            lines(&rc, OsFamily::Suse)[2],
            "sudo -n zypper --non-interactive install --oldpackage 'kubeadm=1.30.0~rc.1'"
        );
    }

    #[test]
    fn the_repository_file_is_the_rpm_repository_without_excludes() {
        let a = Action::SwitchRepository {
            minor: "1.30".parse().unwrap(),
        };
        let suse = super::super::node_commands(&a, OsFamily::Suse).unwrap();
        assert!(suse.manual.is_none());
        assert_eq!(
            suse.commands[0].to_shell_line(),
            "sudo -n tee /etc/zypp/repos.d/kubernetes.repo"
        );
        assert_eq!(
            String::from_utf8(suse.commands[0].stdin.clone().unwrap()).unwrap(),
            "[kubernetes]\nname=Kubernetes\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/\nenabled=1\ngpgcheck=1\ngpgkey=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/repodata/repomd.xml.key\n"
        );
    }

    #[test]
    fn recognises_opensuse_and_sles_but_not_the_transactional_systems() {
        for image in [
            "opensuse leap 15.5",
            "opensuse tumbleweed",
            "suse linux enterprise server 15 sp5",
            "sles 15-sp5",
        ] {
            assert!(Zypper.recognises(image), "{image}");
        }
        for image in [
            "suse linux enterprise micro 5.5",
            "opensuse microos",
            "opensuse leap micro 5.5",
            "ubuntu 22.04.4 lts",
        ] {
            assert!(!Zypper.recognises(image), "{image}");
        }
    }
}
