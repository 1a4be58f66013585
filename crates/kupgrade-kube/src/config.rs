//! Client configuration, following kube-rs's conventions.
//!
//! [`infer_config`] reads what `kubectl` would: the `KUBECONFIG` files (or `~/.kube/config`)
//! with their current context, and inside a pod the service account. [`kubeconfig_config`]
//! reads one explicit file. Either way, [`client`] builds the [`Client`] with **kube's default
//! retry turned off**.
//!
//! # Why the default retry is off
//!
//! kube 5 wraps every request in a tower `RetryLayer` when [`Config::default_retry`] is true
//! (the default): answers 429, 503 and 504 are retried up to 15 times with exponential backoff
//! from 5 ms to 1000 s, inside the single call. An eviction refused by a PodDisruptionBudget
//! answers 429, so with that layer one blocked eviction takes about seven minutes before the
//! caller even hears of it, whatever deadline the drain has. The drain owns its retry policy
//! instead: it retries 429 with its own backoff until its own deadline, and then reports which
//! pods and which budgets blocked it. kube 5 has no per-request switch for this (the retry
//! layer sits in the client's service stack), so the knob is the `Config::default_retry` field,
//! set to `false` before the client is built.
//!
//! A [`Client`] built elsewhere with the retry on still works with
//! [`KubeClusterOps`](crate::KubeClusterOps): every request the drain makes is also bounded by
//! the drain's deadline, so a retry inside kube can delay the report until the deadline but
//! never past it.
use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Why a client configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No kubeconfig and no in-cluster service account.
    #[error(
        "no Kubernetes client configuration found (KUBECONFIG, ~/.kube/config, in-cluster): {0}"
    )]
    Infer(#[source] kube::config::InferConfigError),
    /// A kubeconfig could not be read or used.
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file, or `KUBECONFIG` when the default files were read.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The configuration was read but the client could not be built (TLS setup).
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

/// Reads the configuration the way `kubectl` does: the files named by `KUBECONFIG` (or
/// `~/.kube/config`) with `context` or their current context, and, when there is no
/// kubeconfig and no context was asked for, the in-cluster service account.
pub async fn infer_config(context: Option<&str>) -> Result<Config, ConfigError> {
    match context {
        None => Config::infer().await.map_err(ConfigError::Infer),
        Some(ctx) => {
            let options = KubeConfigOptions {
                context: Some(ctx.to_string()),
                ..KubeConfigOptions::default()
            };
            Config::from_kubeconfig(&options)
                .await
                .map_err(|source| ConfigError::Kubeconfig {
                    path: PathBuf::from("KUBECONFIG"),
                    source,
                })
        }
    }
}

/// Reads the kubeconfig at `path`, using `context` or its current context.
pub async fn kubeconfig_config(path: &Path, context: Option<&str>) -> Result<Config, ConfigError> {
    let err = |source| ConfigError::Kubeconfig {
        path: path.to_path_buf(),
        source,
    };
    let file = Kubeconfig::read_from(path).map_err(err)?;
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    Config::from_custom_kubeconfig(file, &options)
        .await
        .map_err(err)
}

/// Builds a client from `config` with kube's default retry of 429/503/504 turned off (see the
/// [module docs](self)).
pub fn client(mut config: Config) -> Result<Client, ConfigError> {
    config.default_retry = false;
    Client::try_from(config).map_err(ConfigError::Client)
}

/// [`kubeconfig_config`] or [`infer_config`], then [`client`]: the one call most tools need.
///
/// ```no_run
/// # async fn f() -> Result<(), kupgrade_kube::ConfigError> {
/// let client = kupgrade_kube::connect(Some("/etc/kubernetes/admin.conf".as_ref()), None).await?;
/// # Ok(()) }
/// ```
pub async fn connect(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<Client, ConfigError> {
    let config = match kubeconfig {
        Some(path) => kubeconfig_config(path, context).await?,
        None => infer_config(context).await?,
    };
    client(config)
}
