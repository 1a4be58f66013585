//! How kube-rs errors become the core's port errors.
//!
//! The core groups errors by what the caller can do: reach the cluster ([`OpsError::Connect`]),
//! get a permission ([`OpsError::Forbidden`]), wait longer, or look at the message. Every
//! mapping here says what was being done (`cordon node w-1 (patch nodes)`), so a refusal names
//! the verb and the resource as well as the server's own sentence.
use kube::Error;
use kupgrade_core::NodeName;
use kupgrade_core::ports::{OpsError, RunnerError};

/// The HTTP status of an API error, if the server answered.
pub(crate) fn status_code(err: &Error) -> Option<u16> {
    match err {
        Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// True when the request never got an answer from the API server: DNS, TCP, TLS, a timeout,
/// a dropped connection, or credentials that could not even be loaded.
pub(crate) fn is_connect(err: &Error) -> bool {
    matches!(
        err,
        Error::HyperError(_)
            | Error::Service(_)
            | Error::RustlsTls(_)
            | Error::TlsRequired
            | Error::Auth(_)
            | Error::HttpError(_)
    )
}

/// A short text for an API error: the server's message with code and reason, or the
/// client's error.
pub(crate) fn describe(err: &Error) -> String {
    match err {
        Error::Api(s) if s.message.is_empty() => format!("HTTP {} {}", s.code, s.reason),
        Error::Api(s) => format!("{} (HTTP {} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

/// A watch error that ends the wait (a refusal), mapped; any other error is handed back so
/// the caller can let the watcher recover.
pub(crate) fn fatal_watch_error(
    what: &str,
    e: kube::runtime::watcher::Error,
) -> Result<OpsError, kube::runtime::watcher::Error> {
    use kube::runtime::watcher::Error as W;
    match e {
        W::InitialListFailed(ke) | W::WatchStartFailed(ke) | W::WatchFailed(ke)
            if matches!(status_code(&ke), Some(401 | 403)) =>
        {
            Ok(ops_error(what, ke))
        }
        W::WatchError(s) if s.code == 403 => Ok(OpsError::Forbidden {
            message: format!("{what}: {}", s.message),
        }),
        other => Err(other),
    }
}

/// Maps `err`, which happened while doing `what`, into an [`OpsError`].
pub(crate) fn ops_error(what: &str, err: Error) -> OpsError {
    match &err {
        Error::Api(s) if s.code == 403 => OpsError::Forbidden {
            message: format!("{what}: {}", s.message),
        },
        Error::Api(s) if s.code == 401 => OpsError::Forbidden {
            message: format!(
                "{what}: the API server rejected the credentials (HTTP 401 Unauthorized)"
            ),
        },
        e if is_connect(e) => OpsError::Connect {
            message: format!("{what}: {e}"),
            source: Some(Box::new(err)),
        },
        e => OpsError::Other {
            message: format!("{what}: {}", describe(e)),
            source: Some(Box::new(err)),
        },
    }
}

/// Maps `err`, which happened while doing `what` for a command on `node`, into a
/// [`RunnerError`]. A refusal by RBAC or admission is [`RunnerError::Auth`]: the credentials
/// lack a permission, and nothing ran.
pub(crate) fn runner_error(node: &NodeName, what: &str, err: Error) -> RunnerError {
    match &err {
        Error::Api(s) if s.code == 403 || s.code == 401 => RunnerError::Auth {
            node: node.clone(),
            message: format!("{what}: {}", describe(&err)),
        },
        e if is_connect(e) => RunnerError::Connect {
            node: node.clone(),
            message: format!("{what}: {e}"),
            source: Some(Box::new(err)),
        },
        e => RunnerError::Other {
            node: node.clone(),
            message: format!("{what}: {}", describe(e)),
            source: Some(Box::new(err)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, reason: &str, message: &str) -> Error {
        Error::Api(Box::new(Status::failure(message, reason).with_code(code)))
    }

    #[test]
    fn forbidden_names_the_operation_and_keeps_the_servers_sentence() {
        let err = ops_error(
            "cordon node w-1 (patch nodes)",
            api(
                403,
                "Forbidden",
                r#"nodes "w-1" is forbidden: User "limited" cannot patch resource "nodes" in API group "" at the cluster scope"#,
            ),
        );
        assert_eq!(
            err.to_string(),
            r#"forbidden: cordon node w-1 (patch nodes): nodes "w-1" is forbidden: User "limited" cannot patch resource "nodes" in API group "" at the cluster scope"#
        );
    }

    #[test]
    fn other_api_errors_keep_code_and_reason() {
        let err = ops_error("list pods", api(500, "InternalError", "etcd is down"));
        assert!(matches!(err, OpsError::Other { .. }));
        assert_eq!(
            err.to_string(),
            "list pods: etcd is down (HTTP 500 InternalError)"
        );
        let unauth = ops_error("list nodes", api(401, "Unauthorized", "Unauthorized"));
        assert!(matches!(unauth, OpsError::Forbidden { .. }), "{unauth}");
    }
}
