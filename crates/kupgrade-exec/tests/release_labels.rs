//! Reading the release team's version labels against local HTTP servers the tests start: one
//! that answers fixed files (and redirects), one that stalls past the deadline, one that
//! answers 500, and none at all.
#![cfg(feature = "live-releases")]

use std::time::{Duration, Instant};

use jiff::civil::date;
use kupgrade_core::lifecycle::ReleaseCalendar;
use kupgrade_core::{KubeVersion, Minor};
use kupgrade_exec::releases::{FetchErrorKind, LabelClient, LabelFetchError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One answer: path, status, extra header, body.
type Route = (&'static str, u16, Option<(&'static str, String)>, String);

/// A server answering `routes` (any other path: 404), one request per connection; its base URL.
async fn serve(routes: Vec<Route>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let routes = routes.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split(' ').nth(1).unwrap_or("").to_string();
                let (status, header, body) = routes
                    .iter()
                    .find(|r| r.0 == path)
                    .map(|r| (r.1, r.2.clone(), r.3.clone()))
                    .unwrap_or((404, None, "not found".into()));
                let extra = header.map_or(String::new(), |(k, v)| format!("{k}: {v}\r\n"));
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    base
}

fn file(path: &'static str, body: &str) -> Route {
    (path, 200, None, body.to_string())
}

fn v(s: &str) -> KubeVersion {
    s.parse().unwrap()
}

fn client(base: &str, timeout: Duration) -> LabelClient {
    LabelClient::new(base, timeout).unwrap()
}

/// Why the label of `minor` (`None`: stable) under `base` cannot be read (within 10 s).
async fn label_error(base: &str, minor: Option<Minor>) -> LabelFetchError {
    client(base, Duration::from_secs(10))
        .label(minor)
        .await
        .unwrap_err()
}

#[tokio::test]
async fn reads_stable_and_each_minor_and_merges_them_over_the_calendar() {
    let base = serve(vec![
        file("/release/stable.txt", "v1.38.2\n"),
        file("/release/stable-1.36.txt", "v1.36.9\n"),
        file("/release/stable-1.37.txt", "v1.37.6\n"),
        file("/release/stable-1.38.txt", "v1.38.2\n"),
    ])
    .await;
    let c = client(&format!("{base}/release/"), Duration::from_secs(10));
    assert_eq!(c.url(None), format!("{base}/release/stable.txt"));
    let fetched = c.fetch(Minor::new(1, 36)).await.unwrap();
    assert!(fetched.problems.is_empty(), "{:?}", fetched.problems);
    assert_eq!(fetched.labels.stable, Some(v("1.38.2")));
    assert_eq!(
        fetched.labels.minors,
        [v("1.36.9"), v("1.37.6"), v("1.38.2")]
    );

    let read_on = date(2027, 6, 1);
    let calendar = ReleaseCalendar::embedded()
        .merge_labels(&fetched.labels, read_on)
        .calendar;
    assert_eq!(calendar.newest_stable(Some(read_on)), Some(v("1.38.2")));
    assert_eq!(
        calendar.latest_patch_on(Minor::new(1, 37), read_on),
        Some(v("1.37.6"))
    );
    assert_eq!(
        calendar.unknown_after(read_on),
        None,
        "complete up to the day read"
    );
    assert_eq!(
        ReleaseCalendar::embedded().unknown_after(read_on),
        Some(date(2026, 9, 15)),
        "the embedded calendar alone is too old for that day"
    );
}

#[tokio::test]
async fn a_minor_label_that_fails_is_a_problem_not_the_end() {
    let base = serve(vec![
        file("/stable.txt", "v1.30.2"),
        file("/stable-1.30.txt", "v1.30.2"),
        file("/stable-1.29.txt", "<html>moved</html>"),
    ])
    .await;
    let fetched = client(&base, Duration::from_secs(10))
        .fetch(Minor::new(1, 28))
        .await
        .unwrap();
    assert_eq!(fetched.labels.minors, [v("1.30.2")]);
    let problems: Vec<String> = fetched.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            format!("could not reach {base}/stable-1.28.txt (HTTP 404 Not Found)"),
            format!(
                "could not reach {base}/stable-1.29.txt (stable-1.29.txt: \"<html>moved</html>\" is not a version: unexpected character '<' in major)"
            ),
        ]
    );
}

#[tokio::test]
async fn redirects_are_followed_within_bounds() {
    let cdn = serve(vec![file("/release/stable.txt", "v1.31.4\n")]).await;
    let base = serve(vec![
        // dl.k8s.io answers 302 to its CDN: an absolute Location.
        (
            "/release/stable.txt",
            302,
            Some(("location", format!("{cdn}/release/stable.txt"))),
            String::new(),
        ),
        // A relative one.
        (
            "/release/stable-1.31.txt",
            301,
            Some(("location", "/moved/stable-1.31.txt".into())),
            String::new(),
        ),
        file("/moved/stable-1.31.txt", "v1.31.4\n"),
        // A loop.
        (
            "/loop/stable.txt",
            302,
            Some(("location", "/loop/stable.txt".into())),
            String::new(),
        ),
    ])
    .await;
    let c = client(&format!("{base}/release"), Duration::from_secs(10));
    assert_eq!(c.label(None).await.unwrap(), v("1.31.4"));
    assert_eq!(c.label(Some(Minor::new(1, 31))).await.unwrap(), v("1.31.4"));
    let e = label_error(&format!("{base}/loop"), None).await;
    assert_eq!(
        e.to_string(),
        format!(
            "could not reach {base}/loop/stable.txt (redirect not followed: more than 5 redirects)"
        )
    );
}

/// A server that accepts and never answers: the deadline ends the wait.
#[tokio::test]
async fn a_server_that_stalls_past_the_deadline_is_given_up() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let e = client(&base, Duration::from_millis(300))
        .fetch(Minor::new(1, 30))
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        &FetchErrorKind::TimedOut(Duration::from_millis(300))
    );
    assert_eq!(
        e.to_string(),
        format!("could not reach {base}/stable.txt (no answer within 0.3 s)")
    );
    assert!(started.elapsed() < Duration::from_secs(10), "bounded");
}

#[tokio::test]
async fn a_server_error_and_no_server_are_errors_naming_the_url() {
    let base = serve(vec![("/stable.txt", 500, None, "boom".into())]).await;
    let e = client(&base, Duration::from_secs(10))
        .fetch(Minor::new(1, 30))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), &FetchErrorKind::Status(500));
    assert_eq!(
        e.to_string(),
        format!("could not reach {base}/stable.txt (HTTP 500 Internal Server Error)")
    );

    // A port nobody listens on (bound, then closed).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let e = label_error(&closed, None).await;
    assert!(matches!(e.kind(), FetchErrorKind::Connect(_)), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("could not reach {closed}/stable.txt (")),
        "{e}"
    );
}

#[tokio::test]
async fn answers_that_are_not_labels_are_refused() {
    let base = serve(vec![
        file("/big/stable.txt", &"v".repeat(5000)),
        file("/other/stable-1.30.txt", "v1.31.0\n"),
    ])
    .await;
    let e = label_error(&format!("{base}/big"), None).await;
    assert_eq!(
        e.to_string(),
        format!(
            "could not reach {base}/big/stable.txt (the answer is longer than 1024 bytes: not a version label)"
        )
    );
    let e = label_error(&format!("{base}/other"), Some(Minor::new(1, 30))).await;
    assert_eq!(
        e.kind(),
        &FetchErrorKind::NotALabel("stable-1.30.txt: v1.31.0 is not a patch of 1.30".into())
    );
}

#[test]
fn base_urls_are_checked() {
    for (url, why) in [
        ("dl.k8s.io/release", "expected http:// or https://"),
        ("ftp://mirror/release", "expected http:// or https://"),
        ("http://mirror/release?x=1", "a base URL has no query"),
        ("https:// bad", "it does not parse as a URL"),
    ] {
        let e = LabelClient::new(url, Duration::from_secs(1)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{url} is not a usable base URL: {why}")
        );
    }
}
