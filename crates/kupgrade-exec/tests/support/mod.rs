//! Shared test support: a real sshd, stub programs, the clusters, plans and runners the
//! driver tests share.
#![allow(dead_code)]

pub mod fixtures;
pub mod sshd;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes an executable script `dir/name`.
pub fn write_script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}")).expect("write script");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod script");
}

/// A stand-in for sudo (not installed on the test machines): it insists on `-n` (never
/// prompt), sets `SUDO_*` like sudo, and runs the command as the current user.
pub fn write_stub_sudo(dir: &Path) {
    write_script(
        dir,
        "sudo",
        r#"if [ "$1" != "-n" ]; then echo "stub sudo: called without -n" >&2; exit 1; fi
shift
SUDO_COMMAND="$*"; SUDO_UID=$(id -u); SUDO_USER=$(id -un)
export SUDO_COMMAND SUDO_UID SUDO_USER
exec "$@"
"#,
    );
}

/// The current user id, as `id -u` prints it.
pub fn uid() -> String {
    rustix::process::getuid().as_raw().to_string()
}

/// True while a process with `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// The ids of live processes whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) && alive(pid) {
                found.push(pid);
            }
        }
    }
    found
}
