//! `scrape` against real HTTP servers on 127.0.0.1 started by the test.

use std::time::Duration;

use medic_collect::http;
use medic_collect::scrape::{ScrapeError, scrape};
use medic_core::{TargetId, Timestamp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `status` and `body` as Prometheus text to every connection; returns the metrics URL.
async fn serve(status: u16, body: Vec<u8>) -> String {
    serve_as(status, "text/plain; version=0.0.4", body).await
}

/// Serves `status` and `body` with this `Content-Type` to every connection.
async fn serve_as(status: u16, content_type: &'static str, body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}/metrics")
}

const PAGE: &str =
    "# TYPE up gauge\nup 1\nbroken{ 2\nrequests_total{code=\"200\"} 7 1700000000000\n";

#[tokio::test]
async fn scrape_returns_samples_and_counts_skips() {
    let url = serve(200, PAGE.as_bytes().to_vec()).await;
    let client = http::client().unwrap();
    let target = TargetId::new("svc");
    let now = Timestamp::from_secs(42);
    let r = scrape(&client, &target, &url, Duration::from_secs(5), 1 << 20, now)
        .await
        .unwrap();
    assert_eq!(r.samples.len(), 2);
    assert_eq!(r.skipped_lines, 1);
    assert_eq!(r.stats.errors[0].line, 3);
    assert!(!r.truncated);
    assert_eq!(
        (
            r.samples[0].name.as_str(),
            r.samples[0].value,
            r.samples[0].at
        ),
        ("up", 1.0, now)
    );
    assert_eq!(r.samples[0].target, target);
    assert_eq!(r.samples[1].labels, [("code".to_owned(), "200".to_owned())]);
    assert_eq!(r.samples[1].at, Timestamp::from_millis(1_700_000_000_000));
}

#[tokio::test]
async fn body_over_the_cap_is_truncated_at_a_line() {
    let mut body = String::new();
    for i in 0..10_000 {
        body.push_str(&format!("m{{i=\"{i}\"}} {i}\n"));
    }
    let url = serve(200, body.into_bytes()).await;
    let client = http::client().unwrap();
    let r = scrape(
        &client,
        &TargetId::new("t"),
        &url,
        Duration::from_secs(5),
        4096,
        Timestamp::ZERO,
    )
    .await
    .unwrap();
    assert!(r.truncated);
    assert_eq!(
        r.skipped_lines, 0,
        "the partial last line is dropped, not counted"
    );
    assert!(!r.samples.is_empty() && r.samples.len() < 10_000);
    for (i, s) in r.samples.iter().enumerate() {
        assert_eq!(s.value, i as f64);
    }
}

/// An OpenMetrics page longer than the cap loses its `# EOF`; the response's
/// `Content-Type` still says OpenMetrics, so its timestamps are read as seconds.
#[tokio::test]
async fn an_openmetrics_page_cut_at_the_cap_is_parsed_as_openmetrics() {
    let mut body = String::from("# TYPE m gauge\n");
    for i in 0..10_000 {
        body.push_str(&format!("m{{i=\"{i}\"}} {i} 1700000000.25\n"));
    }
    body.push_str("# EOF\n");
    let url = serve_as(
        200,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        body.into_bytes(),
    )
    .await;
    let client = http::client().unwrap();
    let r = scrape(
        &client,
        &TargetId::new("t"),
        &url,
        Duration::from_secs(5),
        4096,
        Timestamp::ZERO,
    )
    .await
    .unwrap();
    assert!(r.truncated);
    assert_eq!(r.skipped_lines, 0);
    assert!(!r.samples.is_empty());
    for s in &r.samples {
        assert_eq!(s.at, Timestamp::from_millis(1_700_000_000_250), "{s:?}");
    }
}

#[tokio::test]
async fn large_page_is_parsed_off_the_async_workers() {
    // above the blocking-pool threshold; the result must be the same
    let mut body = String::from("# TYPE g gauge\n");
    for i in 0..40_000 {
        body.push_str(&format!("g{{instance=\"host-{i}\",job=\"node\"}} {i}.5\n"));
    }
    assert!(body.len() > 256 * 1024);
    let url = serve(200, body.into_bytes()).await;
    let client = http::client().unwrap();
    let r = scrape(
        &client,
        &TargetId::new("t"),
        &url,
        Duration::from_secs(10),
        8 << 20,
        Timestamp::ZERO,
    )
    .await
    .unwrap();
    assert_eq!(r.samples.len(), 40_000);
    assert_eq!(r.samples[39_999].value, 39_999.5);
}

#[tokio::test]
async fn error_status_and_closed_port_are_errors() {
    let url = serve(500, b"oops".to_vec()).await;
    let client = http::client().unwrap();
    let err = scrape(
        &client,
        &TargetId::new("t"),
        &url,
        Duration::from_secs(5),
        1 << 20,
        Timestamp::ZERO,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ScrapeError::Status { status: 500, .. }),
        "{err:?}"
    );

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = scrape(
        &client,
        &TargetId::new("t"),
        &format!("http://{addr}/metrics"),
        Duration::from_secs(5),
        1 << 20,
        Timestamp::ZERO,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ScrapeError::Fetch { .. }), "{err:?}");
    assert!(err.to_string().starts_with("fetching metrics from"));
}
