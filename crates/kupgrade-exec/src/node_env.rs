//! Per-node set-up applied to every command: a working directory, `PATH` entries and
//! environment variables.
//!
//! Tests and demos use it to run each "node" in its own sandbox directory with stub
//! `apt-get`/`kubeadm`/`systemctl` scripts; both runners accept it through `with_node_env`.
//! There are two ways to put the stubs in `PATH`, and only one is a sandbox:
//!
//! - **Strict** ([`NodeEnv::sandbox`], [`NodeEnv::path_only`]): `PATH` is the sandbox's `bin/`
//!   and nothing else. A program the sandbox does not provide is not found
//!   ([`RunnerError::NotFound`](kupgrade_core::ports::RunnerError::NotFound)), so a plan
//!   command without a stub fails instead of running the machine's own program, and `sudo`
//!   is whatever the sandbox's `sudo` is. Put harmless programs the stubs and plans need
//!   (`sh`, `cat`, `mkdir`...) in `bin/` with [`provide_programs`]; [`SANDBOX_PROGRAMS`] is
//!   the usual list. Every test and demo uses this mode.
//! - **Prefix** ([`NodeEnv::sandbox_over_path`], [`NodeEnv::path_prefix`] alone): the
//!   directories go before the inherited `PATH`. This is *not* a sandbox: a command without a
//!   stub runs the machine's program, and under `sudo` (when the runner allows it and
//!   `sudo` is the real one) as root. Use it only to put tools in front of a real system.
//!
//! Either way `PATH` only decides how bare program names are found: a command that names an
//! absolute path (`sh -c /usr/bin/x`) still runs it. The sandbox keeps a plan's commands
//! (which name programs, never paths) from reaching the machine; it does not contain a
//! hostile command.
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kupgrade_core::NodeName;

/// What a runner sets up before each command on one node.
///
/// ```
/// use kupgrade_exec::NodeEnv;
/// use kupgrade_core::NodeName;
/// let node: NodeName = "w-1".parse()?;
/// let env = NodeEnv::sandbox("/tmp/sandboxes", &node);
/// assert_eq!(env.dir.as_deref(), Some(std::path::Path::new("/tmp/sandboxes/w-1")));
/// assert_eq!(env.path_prefix, [std::path::PathBuf::from("/tmp/sandboxes/w-1/bin")]);
/// assert!(env.path_only, "nothing but the sandbox's bin/ in PATH");
/// assert_eq!(env.env, [("KUPGRADE_NODE_ROOT".to_string(), "/tmp/sandboxes/w-1".to_string())]);
/// assert_eq!(env.lock_dir.as_deref(), Some(std::path::Path::new("/tmp/sandboxes/w-1/run/kupgrade")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeEnv {
    /// The working directory of every command (it must exist). `None`: the runner's default
    /// (the current directory locally, the login directory over SSH).
    pub dir: Option<PathBuf>,
    /// Directories put before the inherited `PATH`, first one first; with `path_only`, the
    /// whole `PATH`.
    pub path_prefix: Vec<PathBuf>,
    /// `PATH` is `path_prefix` and nothing else (a strict sandbox, see the
    /// [module documentation](self)); `false`: the prefix goes before the inherited `PATH`.
    pub path_only: bool,
    /// Extra environment variables, set before the command's own (which win).
    pub env: Vec<(String, String)>,
    /// Where node-side locks live ([`NodeLock`](kupgrade_core::ports::NodeLock)); `None`:
    /// [`NodeLock::DEFAULT_DIR`](kupgrade_core::ports::NodeLock::DEFAULT_DIR).
    pub lock_dir: Option<PathBuf>,
}

impl NodeEnv {
    /// Nothing changed.
    pub fn new() -> Self {
        NodeEnv::default()
    }

    /// A strict sandbox: `ROOT/NODE` as working directory, `ROOT/NODE/bin` as the whole
    /// `PATH` (a program not there is not found; see the [module documentation](self)),
    /// `KUPGRADE_NODE_ROOT=ROOT/NODE` so stub scripts know where to keep state, and the
    /// node-side locks in `ROOT/NODE/run/kupgrade` (the node's `/run/kupgrade`). Node names are
    /// DNS names (no `/`, no empty label), so the directory stays under `root`.
    pub fn sandbox(root: impl AsRef<Path>, node: &NodeName) -> Self {
        NodeEnv {
            path_only: true,
            ..NodeEnv::sandbox_over_path(root, node)
        }
    }

    /// Like [`NodeEnv::sandbox`], but with `ROOT/NODE/bin` *before* the inherited `PATH`: not
    /// a sandbox, since a command without a stub runs the machine's own program (see the
    /// [module documentation](self)).
    pub fn sandbox_over_path(root: impl AsRef<Path>, node: &NodeName) -> Self {
        let dir = root.as_ref().join(node.as_str());
        NodeEnv {
            path_prefix: vec![dir.join("bin")],
            path_only: false,
            env: vec![(
                "KUPGRADE_NODE_ROOT".to_string(),
                dir.to_string_lossy().into_owned(),
            )],
            lock_dir: Some(dir.join("run").join("kupgrade")),
            dir: Some(dir),
        }
    }

    /// Makes `PATH` the prefix and nothing else (a strict sandbox), builder style.
    pub fn path_only(mut self) -> Self {
        self.path_only = true;
        self
    }

    /// Sets the working directory, builder style.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Adds a directory to the end of the `PATH` prefix, builder style.
    pub fn path_prefix(mut self, dir: impl Into<PathBuf>) -> Self {
        self.path_prefix.push(dir.into());
        self
    }

    /// Sets an environment variable, builder style.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Keeps node-side locks in `dir`, builder style.
    pub fn lock_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.lock_dir = Some(dir.into());
        self
    }

    /// True when this changes nothing.
    pub fn is_empty(&self) -> bool {
        self.dir.is_none()
            && self.path_prefix.is_empty()
            && !self.path_only
            && self.env.is_empty()
            && self.lock_dir.is_none()
    }
}

/// Harmless programs a strict sandbox usually provides ([`provide_programs`]): a shell and
/// the text and file tools stubs and plan checks use (`rm` because stubs drop their state
/// files: `apt-mark unhold` removes its hold). Nothing here changes a system beyond creating
/// and removing the files a command names, and `sudo`, package managers, `kubeadm`, `kubectl`,
/// `systemctl`, `cp` and `tee` are deliberately absent: a sandbox stubs those.
/// (`scripts/demo-sandboxes.sh` provides the same list; a test keeps them equal.)
pub const SANDBOX_PROGRAMS: &[&str] = &[
    "sh", "env", "cat", "echo", "printf", "test", "true", "false", "id", "sleep", "mkdir", "touch",
    "ls", "grep", "sed", "awk", "head", "tail", "tr", "cut", "wc", "sort", "uniq", "date",
    "dirname", "basename", "base64", "mktemp", "chmod", "yes", "seq", "rm",
];

/// Provides each of `programs` in the directory `bin` (a strict sandbox's `bin/`), as found on
/// this process's `PATH`: `bin/NAME` becomes a two-line script that `exec`s the machine's
/// program. A name `bin` already holds (a stub) is left alone; a program found nowhere is an
/// error naming it.
///
/// Scripts, not symbolic links: a stub written later under the same name (`fs::write`, `>`)
/// would follow a link and overwrite the machine's own program (that happened once, to
/// `/usr/bin/mkdir`); it replaces a script in `bin/` and nothing else.
///
/// ```
/// let bin = tempfile::tempdir()?;
/// kupgrade_exec::node_env::provide_programs(bin.path(), &["sh", "cat"])?;
/// let cat = std::fs::read_to_string(bin.path().join("cat"))?;
/// assert!(cat.starts_with("#!/bin/sh\nexec '/") && cat.ends_with("/cat' \"$@\"\n"), "{cat}");
/// assert!(!bin.path().join("cat").symlink_metadata()?.file_type().is_symlink());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn provide_programs(bin: &Path, programs: &[&str]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(bin)?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in programs {
        let script = bin.join(name);
        if script.symlink_metadata().is_ok() {
            continue;
        }
        let found = std::env::split_paths(&path)
            .filter(|d| d.is_absolute() && d != bin)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "{name} is not on PATH, so it cannot be provided in {}",
                        bin.display()
                    ),
                )
            })?;
        let target = found
            .to_str()
            .filter(|t| !t.contains('\''))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} cannot be written in a script", found.display()),
                )
            })?;
        // create_new: never through an existing file or link.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(&script)?;
        io::Write::write_all(
            &mut file,
            format!("#!/bin/sh\nexec '{target}' \"$@\"\n").as_bytes(),
        )?;
    }
    Ok(())
}

/// Maps a node to its [`NodeEnv`]; shared by the runners.
#[derive(Clone, Default)]
pub(crate) struct NodeEnvFn(Option<Arc<NodeEnvCallback>>);

type NodeEnvCallback = dyn Fn(&NodeName) -> NodeEnv + Send + Sync;

impl NodeEnvFn {
    pub(crate) fn new(f: impl Fn(&NodeName) -> NodeEnv + Send + Sync + 'static) -> Self {
        NodeEnvFn(Some(Arc::new(f)))
    }

    pub(crate) fn get(&self, node: &NodeName) -> NodeEnv {
        match &self.0 {
            Some(f) => f(node),
            None => NodeEnv::default(),
        }
    }
}

impl fmt::Debug for NodeEnvFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}
