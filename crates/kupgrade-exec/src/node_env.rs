//! Per-node set-up applied to every command: a working directory, extra `PATH` entries and
//! environment variables.
//!
//! Tests and demos use it to run each "node" in its own sandbox directory with stub
//! `apt-get`/`kubeadm`/`systemctl` scripts first in `PATH`; both runners accept it through
//! `with_node_env`.
use std::fmt;
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
    /// Directories put before the inherited `PATH`, first one first.
    pub path_prefix: Vec<PathBuf>,
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

    /// The sandbox convention: `ROOT/NODE` as working directory, `ROOT/NODE/bin` first in
    /// `PATH`, `KUPGRADE_NODE_ROOT=ROOT/NODE` so stub scripts know where to keep state, and the
    /// node-side locks in `ROOT/NODE/run/kupgrade` (the node's `/run/kupgrade`).
    /// Node names are DNS names (no `/`, no empty label), so the directory stays under `root`.
    pub fn sandbox(root: impl AsRef<Path>, node: &NodeName) -> Self {
        let dir = root.as_ref().join(node.as_str());
        NodeEnv {
            path_prefix: vec![dir.join("bin")],
            env: vec![(
                "KUPGRADE_NODE_ROOT".to_string(),
                dir.to_string_lossy().into_owned(),
            )],
            lock_dir: Some(dir.join("run").join("kupgrade")),
            dir: Some(dir),
        }
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
            && self.env.is_empty()
            && self.lock_dir.is_none()
    }
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
