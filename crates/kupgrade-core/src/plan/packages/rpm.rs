//! RHEL-like systems (RHEL, Rocky, Alma, CentOS Stream, Fedora, Amazon and Oracle Linux): dnf
//! (or yum) and rpm.
//!
//! pkgs.k8s.io's repository is described in `/etc/yum.repos.d/kubernetes.repo`, whose
//! `exclude=` line keeps the packages out of ordinary updates; installs lift it for one
//! command with `--disableexcludes=kubernetes` and pin versions as `kubeadm-1.29.3-*`. dnf
//! reads a changed repository file on its next run.
//!
//! An install first removes what an interrupted dnf left ([`DNF_REMOVE_DUPLICATES`]): rpm
//! installs a transaction's new packages before it erases the old ones, so a dnf killed in
//! between (a dropped SSH session, a crashed node, a full disk failing a download) leaves both
//! versions of a package in the rpm database. A later `dnf install` of the new version then
//! finds it installed and does nothing, the old entry stays, and `rpm -q kubelet` answers
//! twice. `dnf remove --duplicates` is the documented repair: it reinstalls the newest of each
//! duplicated package and removes the older ones from the database (seen with real dnf and
//! rpm on the test fleet, `scripts/fleet.sh test`, which starts a dnf node in that state).
use std::time::Duration;

use crate::ports::CommandSpec;
use crate::{KubeVersion, Minor, OsFamily};

use super::{MIN, Package, PackageManager, package_pin, sudo};

/// The yum/dnf repository file kubeadm's documentation uses.
pub const YUM_REPO: &str = "/etc/yum.repos.d/kubernetes.repo";

/// The yum/dnf repository file for `minor`.
pub fn yum_repo(minor: Minor) -> String {
    format!(
        "[kubernetes]\nname=Kubernetes\nbaseurl=https://pkgs.k8s.io/core:/stable:/v{minor}/rpm/\nenabled=1\ngpgcheck=1\ngpgkey=https://pkgs.k8s.io/core:/stable:/v{minor}/rpm/repodata/repomd.xml.key\nexclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n"
    )
}

/// The repair of an interrupted dnf transaction, run as root before every install: when rpm
/// lists one of pkgs.k8s.io's packages twice, `dnf remove --duplicates` (with the
/// repository's excludes lifted, so that it can reinstall the newest). Without duplicates it
/// does nothing, and needs nothing but `rpm` and the shell's builtins. (dnf's own
/// `remove --duplicates` fails when there is nothing to remove, hence the test first.)
pub const DNF_REMOVE_DUPLICATES: &str = "d=; s=\" \"; for n in $(rpm -qa --qf \"%{NAME} \" kubeadm kubelet kubectl cri-tools kubernetes-cni); do case $s in *\" $n \"*) d=1 ;; esac; s=\"$s$n \"; done; [ -z \"$d\" ] || dnf remove -y --duplicates --disableexcludes=kubernetes";

/// dnf, on RHEL-like systems.
#[derive(Clone, Copy, Debug, Default)]
pub struct Dnf;

impl PackageManager for Dnf {
    fn family(&self) -> OsFamily {
        OsFamily::Rhel
    }

    fn title(&self) -> &'static str {
        "RHEL-like"
    }

    fn recognises(&self, os_image: &str) -> bool {
        super::mentions(
            os_image,
            &[
                "red hat",
                "rhel",
                "rocky",
                "almalinux",
                "alma linux",
                "centos",
                "fedora",
                "amazon linux",
                "oracle linux",
            ],
        )
    }

    fn programs(&self) -> &'static [&'static str] {
        &["dnf"]
    }

    fn repository_path(&self) -> &'static str {
        YUM_REPO
    }

    fn repository(&self, minor: Minor) -> String {
        yum_repo(minor)
    }

    /// `dnf install --downloadonly` with the `kubernetes` repository's `baseurl` and `gpgkey`
    /// set to `version`'s minor for this one command (`--setopt`; the repository file is not
    /// changed) and its excludes lifted for it: dnf keeps the packages in that repository's
    /// cache, named after the `baseurl`, which is where the install finds them once the file
    /// names the same minor.
    fn download(&self, packages: &[Package], version: &KubeVersion) -> Option<Vec<CommandSpec>> {
        let minor = version.minor();
        let base = format!("https://pkgs.k8s.io/core:/stable:/v{minor}/rpm/");
        let pin = package_pin(version);
        Some(vec![
            sudo("dnf")
                .args([
                    "install",
                    "-y",
                    "--downloadonly",
                    "--disableexcludes=kubernetes",
                ])
                .arg(format!("--setopt=kubernetes.baseurl={base}"))
                .arg(format!(
                    "--setopt=kubernetes.gpgkey={base}repodata/repomd.xml.key"
                ))
                .args(packages.iter().map(|p| format!("{}-{pin}", p.name())))
                .timeout(Duration::from_secs(15 * MIN)),
        ])
    }

    fn install(&self, packages: &[Package], version: &KubeVersion) -> Vec<CommandSpec> {
        let pin = package_pin(version);
        vec![
            CommandSpec::shell(DNF_REMOVE_DUPLICATES)
                .sudo()
                .timeout(Duration::from_secs(15 * MIN)),
            sudo("dnf")
                .args(["install", "-y"])
                .args(packages.iter().map(|p| format!("{}-{pin}", p.name())))
                .arg("--disableexcludes=kubernetes")
                .timeout(Duration::from_secs(15 * MIN)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::lines;
    use super::*;
    use crate::plan::Action;

    #[test]
    fn install_lifts_the_excludes_for_one_command() {
        let a = Action::InstallPackages {
            packages: vec![Package::Kubelet, Package::Kubectl],
            version: "v1.29.3".parse().unwrap(),
        };
        assert_eq!(
            lines(&a, OsFamily::Rhel),
            [
                format!("sudo -n sh -c {}", crate::ports::shell_quote(DNF_REMOVE_DUPLICATES)),
                "sudo -n dnf install -y 'kubelet-1.29.3-*' 'kubectl-1.29.3-*' --disableexcludes=kubernetes".to_string()
            ]
        );
    }

    #[test]
    fn the_repository_file_names_the_minor_and_excludes_the_packages() {
        let a = Action::SwitchRepository {
            minor: "1.30".parse().unwrap(),
        };
        let rpm = super::super::node_commands(&a, OsFamily::Rhel).unwrap();
        assert_eq!(
            rpm.commands[0].to_shell_line(),
            "sudo -n tee /etc/yum.repos.d/kubernetes.repo"
        );
        let text = String::from_utf8(rpm.commands[0].stdin.clone().unwrap()).unwrap();
        assert!(text.contains("baseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/\n"));
        assert!(text.contains(
            "gpgkey=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/repodata/repomd.xml.key\n"
        ));
        assert!(text.ends_with("exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n"));
    }

    #[test]
    fn recognises_rhel_like_images() {
        for image in [
            "red hat enterprise linux 9.3 (plow)",
            "rocky linux 9.3 (blue onyx)",
            "almalinux 9.3 (shamrock pampas cat)",
            "centos stream 9",
            "fedora linux 39 (server edition)",
            "amazon linux 2023",
            "oracle linux server 8.9",
        ] {
            assert!(Dnf.recognises(image), "{image}");
        }
        assert!(!Dnf.recognises("opensuse leap 15.5"));
    }
}
