//! A real OpenSSH server for the tests and the SSH bench.
//!
//! [`Sshd::start`] runs `/usr/sbin/sshd -D -e -f CONFIG` on 127.0.0.1 and a free port, with a
//! host key and a client key generated for the run (`ssh-keygen`) in a temporary directory,
//! `StrictModes no` (the keys live under /tmp), and a `known_hosts` file for the client holding
//! the host key. The server is killed, by the PID this harness started, when the [`Sshd`] is
//! dropped. Nothing outside the temporary directory is changed, except that `/run/sshd` (sshd's
//! privilege-separation directory) is created if missing.
//!
//! Sessions get `HOME` set to an empty directory and `PATH` starting with [`Sshd::bin_dir`]
//! (sshd's `SetEnv`, applied after sshd sets `HOME` itself; verified): so the login shell reads
//! no start-up files (root's `~/.bashrc` costs ~120 ms on these machines), and tests can put
//! stub programs first in `PATH` without touching the machine.
//!
//! Without `/usr/sbin/sshd`, [`Sshd::start`] prints why and returns `None` so the test can
//! return early; with `KUPGRADE_REQUIRE_REAL_SERVERS=1` (CI, `scripts/test.sh`) it panics.
#![allow(dead_code)]

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd; killed on drop.
pub struct Sshd {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
    user: String,
}

impl Sshd {
    /// Starts a server, or returns `None` (after saying why) when openssh-server is missing
    /// and real servers are not required.
    pub fn start() -> Option<Sshd> {
        Sshd::start_with(&[])
    }

    /// Like [`Sshd::start`], with extra `sshd_config` lines (`"MaxSessions 2"`).
    pub fn start_with(extra_config: &[&str]) -> Option<Sshd> {
        if !Path::new(SSHD).exists() {
            if std::env::var("KUPGRADE_REQUIRE_REAL_SERVERS").as_deref() == Ok("1") {
                panic!(
                    "{SSHD} is missing and KUPGRADE_REQUIRE_REAL_SERVERS=1: install \
                     openssh-server (scripts/test.sh does)"
                );
            }
            eprintln!("skipped: openssh-server not installed (run scripts/test.sh)");
            return None;
        }
        Some(Sshd::start_real(extra_config))
    }

    fn start_real(extra_config: &[&str]) -> Sshd {
        ensure_privsep_dir();
        let dir = tempfile::Builder::new()
            .prefix("kupgrade-sshd-")
            .tempdir()
            .expect("temporary directory");
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("id"));
        fs::copy(d.join("id.pub"), d.join("authorized_keys")).expect("authorized_keys");
        fs::create_dir(d.join("home")).expect("home");
        fs::create_dir(d.join("bin")).expect("bin");
        let user = output(Command::new("id").arg("-un")).trim().to_string();

        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let config = d.join("sshd_config");
            fs::write(&config, sshd_config(d, port, extra_config)).expect("sshd_config");
            let log = fs::File::create(d.join("sshd.log")).expect("sshd.log");
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = child.try_wait().expect("sshd status") {
                    last_log = fs::read_to_string(d.join("sshd.log")).unwrap_or_default();
                    eprintln!("sshd exited ({status}) on port {port}: {last_log}");
                    break; // another process may have taken the port: try another
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    let sshd = Sshd {
                        dir,
                        child,
                        port,
                        user,
                    };
                    sshd.write_known_hosts(&sshd.known_hosts(), &sshd.dir().join("host_key.pub"));
                    return sshd;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "sshd did not listen on 127.0.0.1:{port} within 10 s; log: {}",
                        fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("sshd failed to start 5 times; last log: {last_log}");
    }

    /// The port it listens on (host 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user to log in as (the one running the tests).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The run's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The client's private key (authorized on the server).
    pub fn client_key(&self) -> PathBuf {
        self.dir().join("id")
    }

    /// A known_hosts file with the server's real host key.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir().join("known_hosts")
    }

    /// `HOME` of every session (empty).
    pub fn home(&self) -> PathBuf {
        self.dir().join("home")
    }

    /// The first directory in every session's `PATH`.
    pub fn bin_dir(&self) -> PathBuf {
        self.dir().join("bin")
    }

    /// Generates a new key pair at `path` (and `path.pub`).
    pub fn keygen(&self, path: &Path) {
        keygen(path)
    }

    /// Writes a known_hosts file that records `public_key` for this server.
    pub fn write_known_hosts(&self, path: &Path, public_key: &Path) {
        let key = fs::read_to_string(public_key).expect("public key");
        let mut fields = key.split_whitespace();
        let (kind, blob) = (fields.next().unwrap(), fields.next().unwrap());
        fs::write(path, format!("[127.0.0.1]:{} {kind} {blob}\n", self.port)).expect("known_hosts");
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir().join("sshd.log")).unwrap_or_default()
    }

    /// How many logins the server accepted (one per SSH connection).
    pub fn accepted_logins(&self) -> usize {
        self.log().matches("Accepted publickey for ").count()
    }

    /// `ssh` options that reach this server with the test key and strict host keys, for
    /// running the OpenSSH client directly.
    pub fn ssh_args(&self) -> Vec<String> {
        vec![
            "-p".into(),
            self.port.to_string(),
            "-i".into(),
            self.client_key().display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts().display()),
            "-o".into(),
            "LogLevel=ERROR".into(),
            "-l".into(),
            self.user.clone(),
        ]
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // Kill exactly the process this harness started.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sshd_config(d: &Path, port: u16, extra: &[&str]) -> String {
    let p = |name: &str| d.join(name).display().to_string();
    [
        "ListenAddress 127.0.0.1".to_string(),
        format!("Port {port}"),
        format!("HostKey {}", p("host_key")),
        "PidFile none".to_string(),
        format!("AuthorizedKeysFile {}", p("authorized_keys")),
        "PermitRootLogin prohibit-password".to_string(),
        "PasswordAuthentication no".to_string(),
        "KbdInteractiveAuthentication no".to_string(),
        "UsePAM no".to_string(),
        "StrictModes no".to_string(),
        "PrintMotd no".to_string(),
        format!(
            "SetEnv HOME={} PATH={}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            p("home"),
            p("bin")
        ),
    ]
    .into_iter()
    .chain(extra.iter().map(|l| l.to_string()))
    .collect::<Vec<_>>()
    .join("\n")
        + "\n"
}

/// sshd refuses to start without its privilege-separation directory.
fn ensure_privsep_dir() {
    let dir = Path::new("/run/sshd");
    if !dir.is_dir() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create /run/sshd for sshd: {e}"));
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod /run/sshd");
    }
}

fn keygen(path: &Path) {
    output(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "kupgrade-test", "-f"])
            .arg(path),
    );
}

fn free_port() -> u16 {
    let l = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local address").port()
}

fn output(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
