//! Reading the Kubernetes release team's version labels over HTTP(S), as `kubeadm upgrade
//! plan` does: `stable.txt` and `stable-1.N.txt` under <https://dl.k8s.io/release> (or a
//! mirror). Parsing and merging them over a calendar are pure and live in kupgrade-core
//! ([`kupgrade_core::lifecycle::ReleaseLabels`]); this module only fetches.
//!
//! Every request is bounded: a deadline covers connecting, redirects (at most
//! [`MAX_REDIRECTS`], never from `https` to `http`) and the body, which may hold at most
//! [`MAX_BODY_BYTES`]. The client is hyper's, with rustls (ring) and the system's root
//! certificates: the stack kube already builds, so reading labels adds no crate to a build
//! that talks to a cluster.
//!
//! ```no_run
//! use std::time::Duration;
//! use kupgrade_core::Minor;
//! use kupgrade_exec::releases::LabelClient;
//!
//! # async fn run() -> Result<(), kupgrade_exec::releases::LabelFetchError> {
//! let client = LabelClient::new(LabelClient::DEFAULT_BASE_URL, Duration::from_secs(10))?;
//! let fetched = client.fetch(Minor::new(1, 30)).await?;
//! println!("stable: {:?}", fetched.labels.stable);
//! for problem in &fetched.problems {
//!     eprintln!("{problem}");
//! }
//! # Ok(()) }
//! ```
use std::fmt;
use std::time::Duration;

use http::Uri;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kupgrade_core::lifecycle::{LabelError, ReleaseLabels, label_file, parse_label};
use kupgrade_core::{KubeVersion, Minor};

/// The most redirects one label may take.
pub const MAX_REDIRECTS: usize = 5;
/// The most bytes read of a label's body.
pub const MAX_BODY_BYTES: usize = 1024;
/// The most `stable-1.N.txt` labels one [`LabelClient::fetch`] reads (the newest minors).
pub const MAX_MINOR_LABELS: usize = 12;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Reads version labels under one base URL, each request within a deadline.
#[derive(Clone)]
pub struct LabelClient {
    base: String,
    timeout: Duration,
    client: HttpsClient,
}

impl fmt::Debug for LabelClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabelClient")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Labels read by [`LabelClient::fetch`], and the labels that could not be read.
#[derive(Clone, Debug)]
pub struct LabelFetch {
    /// What was read.
    pub labels: ReleaseLabels,
    /// Each `stable-1.N.txt` that could not be read (a mirror may lack old ones).
    pub problems: Vec<LabelFetchError>,
}

/// A label that could not be read: the URL, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelFetchError {
    url: String,
    kind: FetchErrorKind,
}

/// Why a label could not be read, grouped by what the caller can do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchErrorKind {
    /// The base URL is not an `http` or `https` URL.
    BadUrl(String),
    /// No connection, TLS failure, or the connection broke (offline, a proxy, a firewall).
    Connect(String),
    /// No complete answer within the deadline.
    TimedOut(Duration),
    /// The server answered with this status.
    Status(u16),
    /// A redirect that is not followed (too many, no or a bad `Location`, `https` to `http`).
    Redirect(String),
    /// The answer is not a label (too long, not a version, another minor's version).
    NotALabel(String),
}

impl LabelFetchError {
    /// The URL that could not be read.
    pub fn url(&self) -> &str {
        &self.url
    }
    /// Why.
    pub fn kind(&self) -> &FetchErrorKind {
        &self.kind
    }
}

impl fmt::Display for FetchErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchErrorKind::BadUrl(r) => write!(f, "not a usable URL: {r}"),
            FetchErrorKind::Connect(r) => f.write_str(r),
            FetchErrorKind::TimedOut(t) => write!(f, "no answer within {} s", t.as_secs_f64()),
            FetchErrorKind::Status(s) => match http::StatusCode::from_u16(*s)
                .ok()
                .and_then(|c| c.canonical_reason())
            {
                Some(reason) => write!(f, "HTTP {s} {reason}"),
                None => write!(f, "HTTP {s}"),
            },
            FetchErrorKind::Redirect(r) => write!(f, "redirect not followed: {r}"),
            FetchErrorKind::NotALabel(r) => f.write_str(r),
        }
    }
}

impl fmt::Display for LabelFetchError {
    /// `could not reach https://dl.k8s.io/release/stable.txt (no answer within 10 s)`, or
    /// `dl.k8s.io/release is not a usable base URL: expected http:// or https://`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FetchErrorKind::BadUrl(r) => write!(f, "{} is not a usable base URL: {r}", self.url),
            kind => write!(f, "could not reach {} ({kind})", self.url),
        }
    }
}

impl std::error::Error for LabelFetchError {}

impl LabelClient {
    /// Where the Kubernetes release team publishes the labels.
    pub const DEFAULT_BASE_URL: &'static str = "https://dl.k8s.io/release";

    /// A client for the labels under `base_url` (`https://dl.k8s.io/release`, a mirror's
    /// `https://mirror.example/kubernetes/release`, or `http://` for a local one), each request
    /// given `timeout` in all.
    pub fn new(base_url: &str, timeout: Duration) -> Result<LabelClient, LabelFetchError> {
        let base = base_url.trim_end_matches('/').to_string();
        let bad = |reason: &str| LabelFetchError {
            url: base_url.to_string(),
            kind: FetchErrorKind::BadUrl(reason.to_string()),
        };
        let https = match base.split_once("://") {
            Some(("https", _)) => true,
            Some(("http", _)) => false,
            _ => return Err(bad("expected http:// or https://")),
        };
        let uri: Uri = base
            .parse()
            .map_err(|_| bad("it does not parse as a URL"))?;
        if uri.authority().is_none() {
            return Err(bad("it names no host"));
        }
        if uri.query().is_some() {
            return Err(bad("a base URL has no query"));
        }
        let provider = rustls::crypto::ring::default_provider();
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let tls = match builder.with_provider_and_native_roots(provider) {
            Ok(b) => b,
            // Without system roots, plain http still works; https is refused now, clearly.
            Err(e) if https => {
                return Err(LabelFetchError {
                    url: base,
                    kind: FetchErrorKind::Connect(format!("no TLS root certificates: {e}")),
                });
            }
            Err(_) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder_with_provider(
                    rustls::crypto::ring::default_provider().into(),
                )
                .with_safe_default_protocol_versions()
                .map_err(|e| bad(&e.to_string()))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
            ),
        };
        let connector = tls.https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(LabelClient {
            base,
            timeout,
            client,
        })
    }

    /// The URL of a label: `BASE/stable.txt` (`None`) or `BASE/stable-1.N.txt`.
    pub fn url(&self, minor: Option<Minor>) -> String {
        format!("{}/{}", self.base, label_file(minor))
    }

    /// Reads one label: `stable.txt` (`None`) or `stable-1.N.txt`.
    pub async fn label(&self, minor: Option<Minor>) -> Result<KubeVersion, LabelFetchError> {
        let url = self.url(minor);
        let fail = |kind| LabelFetchError {
            url: url.clone(),
            kind,
        };
        let body = tokio::time::timeout(self.timeout, self.get(&url))
            .await
            .map_err(|_| fail(FetchErrorKind::TimedOut(self.timeout)))?
            .map_err(fail)?;
        let text = String::from_utf8_lossy(&body);
        parse_label(&text, minor)
            .map_err(|e: LabelError| fail(FetchErrorKind::NotALabel(e.to_string())))
    }

    /// Reads `stable.txt`, then `stable-1.N.txt` for every minor from `from` to the stable
    /// release's (at most the newest [`MAX_MINOR_LABELS`]), those at the same time. Without
    /// `stable.txt` nothing is merged: that failure is the error (offline, most likely); a
    /// minor label that fails is listed in [`LabelFetch::problems`].
    pub async fn fetch(&self, from: Minor) -> Result<LabelFetch, LabelFetchError> {
        let stable = self.label(None).await?;
        let last = stable.minor().max(from);
        let mut minors = Vec::new();
        let mut m = from;
        while m <= last && m.major() == last.major() {
            minors.push(m);
            m = m.next();
        }
        let skip = minors.len().saturating_sub(MAX_MINOR_LABELS);
        let reads = minors[skip..].iter().map(|m| self.label(Some(*m)));
        let mut labels = ReleaseLabels {
            stable: Some(stable),
            minors: Vec::new(),
        };
        let mut problems = Vec::new();
        for result in futures::future::join_all(reads).await {
            match result {
                Ok(v) => labels.minors.push(v),
                Err(e) => problems.push(e),
            }
        }
        Ok(LabelFetch { labels, problems })
    }

    /// The body at `url`, following redirects.
    async fn get(&self, url: &str) -> Result<Bytes, FetchErrorKind> {
        let mut uri: Uri = url
            .parse()
            .map_err(|e| FetchErrorKind::BadUrl(format!("{e}")))?;
        for _ in 0..=MAX_REDIRECTS {
            let request = http::Request::get(uri.clone())
                .header(http::header::USER_AGENT, "kupgrade")
                .body(Empty::<Bytes>::new())
                .map_err(|e| FetchErrorKind::BadUrl(e.to_string()))?;
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| FetchErrorKind::Connect(error_chain(&e)))?;
            let status = response.status();
            if status.is_redirection() {
                uri = redirect_target(&uri, response.headers())?;
                continue;
            }
            if !status.is_success() {
                return Err(FetchErrorKind::Status(status.as_u16()));
            }
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        FetchErrorKind::NotALabel(format!(
                            "the answer is longer than {MAX_BODY_BYTES} bytes: not a version label"
                        ))
                    } else {
                        FetchErrorKind::Connect(error_chain(e.as_ref()))
                    }
                })?;
            return Ok(body.to_bytes());
        }
        Err(FetchErrorKind::Redirect(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }
}

/// Where a redirect from `from` leads: an absolute `Location`, or one relative to `from`'s
/// host; never from `https` to `http`.
fn redirect_target(from: &Uri, headers: &http::HeaderMap) -> Result<Uri, FetchErrorKind> {
    let location = headers
        .get(http::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| FetchErrorKind::Redirect("no Location".into()))?;
    let target: Uri = if location.starts_with('/') {
        let mut parts = http::uri::Parts::default();
        parts.scheme = from.scheme().cloned();
        parts.authority = from.authority().cloned();
        parts.path_and_query = location.parse().ok();
        Uri::from_parts(parts)
            .map_err(|_| FetchErrorKind::Redirect(format!("bad Location {location:?}")))?
    } else {
        location
            .parse()
            .map_err(|_| FetchErrorKind::Redirect(format!("bad Location {location:?}")))?
    };
    match (from.scheme_str(), target.scheme_str()) {
        (Some("https"), Some("https")) | (Some("http"), Some("http" | "https")) => Ok(target),
        (_, Some(other)) => Err(FetchErrorKind::Redirect(format!(
            "to {other}://, from {}://",
            from.scheme_str().unwrap_or("?")
        ))),
        (_, None) => Err(FetchErrorKind::Redirect(format!(
            "relative Location {location:?}"
        ))),
    }
}

/// An error and its sources, `: `-joined (hyper's own message alone says little).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(from: &str, location: &str) -> Result<String, FetchErrorKind> {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::LOCATION, location.parse().unwrap());
        redirect_target(&from.parse().unwrap(), &headers).map(|u| u.to_string())
    }

    #[test]
    fn redirects_never_leave_https() {
        let from = "https://dl.k8s.io/release/stable.txt";
        assert_eq!(
            target(from, "https://cdn.dl.k8s.io/release/stable.txt").unwrap(),
            "https://cdn.dl.k8s.io/release/stable.txt"
        );
        assert_eq!(
            target(from, "/other/stable.txt").unwrap(),
            "https://dl.k8s.io/other/stable.txt"
        );
        assert_eq!(
            target(from, "http://cdn.example/stable.txt").unwrap_err(),
            FetchErrorKind::Redirect("to http://, from https://".into())
        );
        assert_eq!(
            target("http://mirror/stable.txt", "https://mirror/stable.txt").unwrap(),
            "https://mirror/stable.txt"
        );
        assert_eq!(
            target(from, "stable-2.txt").unwrap_err(),
            FetchErrorKind::Redirect("relative Location \"stable-2.txt\"".into())
        );
    }
}
