//! Debian and Ubuntu: apt and dpkg.
//!
//! pkgs.k8s.io's repository is one line in `/etc/apt/sources.list.d/kubernetes.list`, signed by
//! the key in `/etc/apt/keyrings/kubernetes-apt-keyring.gpg` (the same key for every minor).
//! The packages are held with `apt-mark hold`, so an install unholds them, installs pinned
//! versions (`kubeadm=1.29.3-*`) and holds them again. apt reads a changed source list only
//! after `apt-get update`.
//!
//! An install first has dpkg take in what an interrupted run of it left (`dpkg --triggers-only
//! --pending`: it reads dpkg's journal in `/var/lib/dpkg/updates` into the status database and
//! runs pending triggers, nothing else; it does nothing when nothing is pending). A dpkg killed
//! mid-upgrade (a dropped SSH session, a crashed node, a full disk) leaves that journal, and apt
//! then refuses every install ("dpkg was interrupted, you must manually run 'dpkg --configure
//! -a'"), so the retries and every resume would fail alike. `dpkg --configure -a` itself fails
//! when the kill left the package half-configured and needing a reinstall ("package is in a very
//! bad inconsistent state"). Once the journal is read, the pinned `apt-get install` reinstalls
//! such a package (seen with real dpkg and apt on the test fleet, `scripts/fleet.sh test
//! --faults`, and in a bookworm chroot).

use std::time::Duration;

use crate::ports::CommandSpec;
use crate::{KubeVersion, Minor, OsFamily};

use super::{MIN, PRESTAGE_DIR, Package, PackageManager, package_pin, sudo};

/// The apt source list kubeadm's documentation uses.
pub const APT_LIST: &str = "/etc/apt/sources.list.d/kubernetes.list";
/// The apt keyring kubeadm's documentation uses.
pub const APT_KEYRING: &str = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg";

/// The apt source line for `minor`.
pub fn apt_source(minor: Minor) -> String {
    format!("deb [signed-by={APT_KEYRING}] https://pkgs.k8s.io/core:/stable:/v{minor}/deb/ /\n")
}

/// apt, on Debian and Ubuntu.
#[derive(Clone, Copy, Debug, Default)]
pub struct Apt;

impl PackageManager for Apt {
    fn family(&self) -> OsFamily {
        OsFamily::Debian
    }

    fn title(&self) -> &'static str {
        "Debian/Ubuntu"
    }

    fn recognises(&self, os_image: &str) -> bool {
        super::mentions(os_image, &["ubuntu", "debian"])
    }

    fn programs(&self) -> &'static [&'static str] {
        &["apt-get", "apt-mark", "dpkg"]
    }

    fn repository_path(&self) -> &'static str {
        APT_LIST
    }

    fn repository(&self, minor: Minor) -> String {
        apt_source(minor)
    }

    /// apt with a source list, a parts directory and an index of its own for `version`'s
    /// minor (under [`PRESTAGE_DIR`]), so that the node's configured source list and index are
    /// not touched, and without the package caches (built from the other index, they would be
    /// wrong for the node's own); `install --download-only` puts the `.deb` files into
    /// `/var/cache/apt/archives`, where the later `apt-get install` finds them by name and
    /// checksum. `--allow-change-held-packages` lets apt plan past the holds, which a
    /// download changes nothing of.
    fn download(&self, packages: &[Package], version: &KubeVersion) -> Option<Vec<CommandSpec>> {
        let minor = version.minor();
        let dir = format!("{PRESTAGE_DIR}/v{minor}");
        let options = [
            "-o".to_string(),
            format!("Dir::Etc::SourceList={dir}/sources.list"),
            "-o".to_string(),
            format!("Dir::Etc::SourceParts={dir}/sources.list.d"),
            "-o".to_string(),
            format!("Dir::State::Lists={dir}/lists"),
            "-o".to_string(),
            "Dir::Cache::pkgcache=".to_string(),
            "-o".to_string(),
            "Dir::Cache::srcpkgcache=".to_string(),
        ];
        let pin = package_pin(version);
        Some(vec![
            sudo("mkdir")
                .arg("-p")
                .arg(format!("{dir}/lists/partial"))
                .timeout(Duration::from_secs(MIN)),
            sudo("tee")
                .arg(format!("{dir}/sources.list"))
                .stdin(apt_source(minor))
                .timeout(Duration::from_secs(MIN)),
            sudo("apt-get")
                .args(options.clone())
                .arg("update")
                .timeout(Duration::from_secs(5 * MIN)),
            sudo("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(options)
                .args([
                    "install",
                    "-y",
                    "--download-only",
                    "--allow-change-held-packages",
                ])
                .args(packages.iter().map(|p| format!("{}={pin}", p.name())))
                .timeout(Duration::from_secs(15 * MIN)),
        ])
    }

    fn install(&self, packages: &[Package], version: &KubeVersion) -> Vec<CommandSpec> {
        let names = packages.iter().map(|p| p.name());
        let pin = package_pin(version);
        vec![
            sudo("dpkg")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["--triggers-only", "--pending"])
                .timeout(Duration::from_secs(15 * MIN)),
            sudo("apt-get")
                .arg("update")
                .timeout(Duration::from_secs(5 * MIN)),
            sudo("apt-mark")
                .arg("unhold")
                .args(names.clone())
                .timeout(Duration::from_secs(MIN)),
            sudo("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y"])
                .args(packages.iter().map(|p| format!("{}={pin}", p.name())))
                .timeout(Duration::from_secs(15 * MIN)),
            sudo("apt-mark")
                .arg("hold")
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
    fn install_unholds_pins_and_holds() {
        let a = Action::InstallPackages {
            packages: vec![Package::Kubelet, Package::Kubectl],
            version: "v1.29.3".parse().unwrap(),
        };
        assert_eq!(
            lines(&a, OsFamily::Debian),
            [
                "sudo -n env DEBIAN_FRONTEND=noninteractive dpkg --triggers-only --pending",
                "sudo -n apt-get update",
                "sudo -n apt-mark unhold kubelet kubectl",
                "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y 'kubelet=1.29.3-*' 'kubectl=1.29.3-*'",
                "sudo -n apt-mark hold kubelet kubectl",
            ]
        );
        let rc = Action::InstallPackages {
            packages: vec![Package::Kubeadm],
            version: "v1.30.0-rc.1".parse().unwrap(),
        };
        assert_eq!(
            lines(&rc, OsFamily::Debian)[3],
            "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y 'kubeadm=1.30.0~rc.1-*'"
        );
    }

    /// Regression (the fleet's dpkg fault, issue 15): a dpkg killed during an unpack makes
    /// real apt refuse every later install until dpkg has read its journal, so the retried
    /// install failed the same way on every resume. The install has dpkg take in its journal
    /// first, as root and non-interactively, before apt runs at all, and with a command that
    /// does not fail on the half-configured package a kill can leave (`--configure -a` does).
    #[test]
    fn install_first_takes_in_an_interrupted_dpkg() {
        let a = Action::InstallPackages {
            packages: vec![Package::Kubeadm],
            version: "v1.30.2".parse().unwrap(),
        };
        let l = lines(&a, OsFamily::Debian);
        let recover = l
            .iter()
            .position(|c| {
                c == "sudo -n env DEBIAN_FRONTEND=noninteractive dpkg --triggers-only --pending"
            })
            .expect("no dpkg --triggers-only --pending");
        let first_apt = l.iter().position(|c| c.contains("apt")).unwrap();
        assert!(recover < first_apt, "{l:?}");
        assert!(Apt.programs().contains(&"dpkg"));
    }

    #[test]
    fn the_source_list_names_the_minor_and_the_keyring() {
        let a = Action::SwitchRepository {
            minor: "1.30".parse().unwrap(),
        };
        let deb = super::super::node_commands(&a, OsFamily::Debian).unwrap();
        assert_eq!(
            deb.commands[0].to_shell_line(),
            "sudo -n tee /etc/apt/sources.list.d/kubernetes.list"
        );
        assert_eq!(
            String::from_utf8(deb.commands[0].stdin.clone().unwrap()).unwrap(),
            "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n"
        );
    }

    #[test]
    fn recognises_debian_and_ubuntu_images() {
        for image in ["ubuntu 22.04.4 lts", "debian gnu/linux 12 (bookworm)"] {
            assert!(Apt.recognises(image), "{image}");
        }
        assert!(!Apt.recognises("rocky linux 9.3 (blue onyx)"));
    }
}
