//! What an [`SshTarget`] may hold: a host that is a DNS name or an IP address, a POSIX user
//! name, a port from 1 to 65535.
//!
//! The host and the user reach the local `ssh` client, and through it any `ProxyCommand`,
//! `LocalCommand` or `Match exec` of the operator's configuration, where `%h` and `%r` are
//! written into a shell command unquoted. OpenSSH refuses shell metacharacters in both only
//! since 9.6 (and in distributions' backports); before that, an inventory could run a command
//! on the operator's machine. So kupgrade refuses them itself, when the inventory is read
//! ([`crate::inventory::parse`]) and again before a connection is opened.
//!
//! ```
//! use kupgrade_core::SshTarget;
//! let ok = SshTarget { host: Some("10.0.0.11".into()), port: Some(22), user: Some("admin".into()) };
//! assert!(ok.problems().is_empty());
//! let bad = SshTarget { host: Some("a;b".into()), port: None, user: Some("$(id)".into()) };
//! let problems: Vec<String> = bad.problems().iter().map(ToString::to_string).collect();
//! assert_eq!(problems, [
//!     "host: \"a;b\" is not a DNS name or an IP address: ';' is not allowed in a DNS name \
//!      (letters, digits, '-' and '_' between dots)",
//!     "user: \"$(id)\" is not a POSIX user name: it starts with a lower-case letter or '_', \
//!      then lower-case letters, digits, '_' or '-' (at most 32, a final '$' allowed)",
//! ]);
//! ```
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::SshTarget;

/// The longest user name accepted (POSIX leaves it to the system; 32 is Linux's `useradd`).
pub const MAX_USER_LEN: usize = 32;

/// One field of an [`SshTarget`] that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SshTargetProblem {
    /// The field: `host`, `port` or `user`.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl SshTarget {
    /// Every field that cannot be used, in the order host, port, user (empty when the target
    /// is usable). See the [module documentation](crate::ssh_target).
    pub fn problems(&self) -> Vec<SshTargetProblem> {
        let mut out = Vec::new();
        if let Some(host) = &self.host
            && let Err(message) = check_host(host)
        {
            out.push(SshTargetProblem {
                field: "host",
                message,
            });
        }
        if let Some(port) = self.port
            && let Err(message) = check_port(port)
        {
            out.push(SshTargetProblem {
                field: "port",
                message,
            });
        }
        if let Some(user) = &self.user
            && let Err(message) = check_user(user)
        {
            out.push(SshTargetProblem {
                field: "user",
                message,
            });
        }
        out
    }

    /// The host as `ssh` takes it: an IPv6 address without the brackets an inventory may
    /// write around it (`[fd00::1]` is `fd00::1`), anything else as written.
    pub fn ssh_host(&self) -> Option<&str> {
        self.host.as_deref().map(unbracket)
    }
}

/// `host` without the brackets around an IPv6 address.
fn unbracket(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Checks a host: a DNS name (letters, digits, `-` and `_` between dots, each label 1 to 63
/// characters and not starting or ending with `-`, at most 253 in all, a final dot allowed),
/// an IPv4 address, or an IPv6 address, bare or in brackets, with an optional zone
/// (`fe80::1%eth0`). The error says what is wrong, quoting the host escaped.
///
/// ```
/// use kupgrade_core::ssh_target::check_host;
/// for good in ["cp-1", "cp-1.example.com.", "10.0.0.1", "fd00::1", "[fd00::1]", "fe80::1%eth0", "bastion_eu"] {
///     assert!(check_host(good).is_ok(), "{good}");
/// }
/// for bad in ["", "-oProxyCommand=x", "a b", "a;b", "$(id)", "10.0.0.256", "[cp-1]", "a..b", "x\u{202e}"] {
///     assert!(check_host(bad).is_err(), "{bad}");
/// }
/// ```
pub fn check_host(host: &str) -> Result<(), String> {
    let refuse = |why: String| {
        Err(format!(
            "{host:?} is not a DNS name or an IP address: {why}"
        ))
    };
    if host.is_empty() {
        return refuse("it is empty".into());
    }
    let inner = unbracket(host);
    if inner.len() != host.len() || host.contains(':') {
        return match check_ipv6(inner) {
            Ok(()) => Ok(()),
            Err(why) => refuse(why),
        };
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return match host.parse::<Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => refuse("digits and dots make an IPv4 address, and this is not one".into()),
        };
    }
    match check_dns_name(host) {
        Ok(()) => Ok(()),
        Err(why) => refuse(why),
    }
}

/// An IPv6 address with an optional `%zone` (an interface name).
fn check_ipv6(text: &str) -> Result<(), String> {
    let (address, zone) = match text.split_once('%') {
        Some((a, z)) => (a, Some(z)),
        None => (text, None),
    };
    if address.parse::<Ipv6Addr>().is_err() {
        return Err("it is written as an IPv6 address, and is not one".into());
    }
    if let Some(zone) = zone
        && (zone.is_empty()
            || zone.len() > 15
            || !zone
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
    {
        return Err(format!(
            "zone {zone:?} is not an interface name (letters, digits, '.', '_' or '-', at most 15)"
        ));
    }
    Ok(())
}

fn check_dns_name(name: &str) -> Result<(), String> {
    const RULE: &str = "(letters, digits, '-' and '_' between dots)";
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!("{c:?} is not allowed in a DNS name {RULE}"));
    }
    if trimmed.len() > 253 {
        return Err(format!(
            "{} characters; a DNS name has at most 253",
            trimmed.len()
        ));
    }
    for label in trimmed.split('.') {
        if label.is_empty() {
            return Err(format!(
                "an empty label (two dots in a row, or a dot first) {RULE}"
            ));
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 characters"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with '-'"));
        }
    }
    Ok(())
}

/// Checks a user name the POSIX portable way: `[a-z_][a-z0-9_-]*[$]?`, at most
/// [`MAX_USER_LEN`] characters. The error quotes the name escaped.
///
/// ```
/// use kupgrade_core::ssh_target::check_user;
/// for good in ["root", "admin", "_svc", "ci-bot_2", "machine$"] {
///     assert!(check_user(good).is_ok(), "{good}");
/// }
/// for bad in ["", "Admin", "-x", "a b", "a;b", "$(id)", "a$b", "r%r", &"a".repeat(33)] {
///     assert!(check_user(bad).is_err(), "{bad}");
/// }
/// ```
pub fn check_user(user: &str) -> Result<(), String> {
    let body = user.strip_suffix('$').unwrap_or(user);
    let mut chars = body.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
    if first_ok && rest_ok && user.len() <= MAX_USER_LEN {
        Ok(())
    } else {
        Err(format!(
            "{user:?} is not a POSIX user name: it starts with a lower-case letter or '_', then \
             lower-case letters, digits, '_' or '-' (at most {MAX_USER_LEN}, a final '$' allowed)"
        ))
    }
}

/// Checks a port: 1 to 65535 (0 is not a port).
pub fn check_port(port: u16) -> Result<(), String> {
    if port == 0 {
        Err("0 is not a port: use 1 to 65535".into())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for good in [
            "localhost",
            "cp-1",
            "CP-1.Example.COM",
            "node.example.com.",
            "xn--bcher-kva.example",
            "127.0.0.1",
            "::1",
            "[::1]",
            "2001:db8::17",
            "[fe80::1%eth0]",
            &"a".repeat(63),
        ] {
            assert_eq!(check_host(good), Ok(()), "{good}");
        }
        let e = |h: &str| check_host(h).unwrap_err();
        assert_eq!(
            e("-oProxyCommand=touch /tmp/x"),
            "\"-oProxyCommand=touch /tmp/x\" is not a DNS name or an IP address: '=' is not \
             allowed in a DNS name (letters, digits, '-' and '_' between dots)"
        );
        assert_eq!(
            e("-cp"),
            "\"-cp\" is not a DNS name or an IP address: label \"-cp\" starts or ends with '-'"
        );
        assert_eq!(
            e("h`id`"),
            "\"h`id`\" is not a DNS name or an IP address: '`' is not allowed in a DNS name \
             (letters, digits, '-' and '_' between dots)"
        );
        assert_eq!(
            e("x\u{202e}y"),
            "\"x\\u{202e}y\" is not a DNS name or an IP address: '\\u{202e}' is not allowed in a \
             DNS name (letters, digits, '-' and '_' between dots)"
        );
        assert!(e("300.1.1.1").contains("IPv4"));
        assert!(e("[::1").contains("IPv6"));
        assert!(e("::1%e;th0").contains("zone"));
        assert!(e("[cp-1]").contains("IPv6"));
        assert!(e(&"a".repeat(64)).contains("longer than 63"));
        assert!(e(&vec!["a"; 130].join(".")).contains("at most 253"));
        for bad in [
            "", ".", "a..b", ".a", "a b", "a\nb", "a|b", "a'b", "a\"b", "a\\b", "é.fr",
        ] {
            assert!(check_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn users() {
        for good in ["root", "_", "a", "a-b_c9", "svc$", &"a".repeat(32)] {
            assert_eq!(check_user(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "$",
            "9a",
            "-a",
            "Root",
            "a.b",
            "a b",
            "a;id",
            "a`id`",
            "a$b",
            "a$$",
            "%r",
            "a\u{202e}",
            &"a".repeat(33),
        ] {
            assert!(check_user(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ports_and_brackets() {
        assert!(check_port(0).is_err());
        assert!(check_port(1).is_ok() && check_port(65535).is_ok());
        let t = SshTarget {
            host: Some("[fd00::1]".into()),
            port: Some(0),
            user: None,
        };
        assert_eq!(t.ssh_host(), Some("fd00::1"));
        assert_eq!(
            t.problems(),
            [SshTargetProblem {
                field: "port",
                message: "0 is not a port: use 1 to 65535".into()
            }]
        );
    }
}
