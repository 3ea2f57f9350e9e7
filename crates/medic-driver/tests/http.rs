//! The http actuator against a real HTTP server on 127.0.0.1, started by each test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use medic_core::Outcome;
use medic_driver::http::{self, HttpRequest};

/// What the server saw of one request.
#[derive(Debug)]
struct Seen {
    method: String,
    path: String,
    body: String,
}

/// How the server answers.
#[derive(Clone)]
enum Answer {
    /// A complete response with this status and body.
    Status(u16, String),
    /// Headers announcing `len` bytes, then that many bytes of `x`.
    Huge(usize),
    /// Reads the request, then neither answers nor closes until the client goes away.
    Never,
}

/// Starts a server on 127.0.0.1 answering each connection with `answer`; returns its base
/// URL and what it saw.
fn serve(answer: Answer) -> (String, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            let answer = answer.clone();
            std::thread::spawn(move || handle(stream, &answer, &tx));
        }
    });
    (url, rx)
}

fn handle(stream: TcpStream, answer: &Answer, tx: &mpsc::Sender<Seen>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut len = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            len = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let _ = tx.send(Seen {
        method,
        path,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let mut stream = stream;
    match answer {
        Answer::Status(status, body) => {
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        Answer::Huge(n) => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {n}\r\nconnection: close\r\n\r\n"
            );
            let chunk = vec![b'x'; 64 * 1024];
            let mut left = *n;
            while left > 0 {
                let k = left.min(chunk.len());
                // The client stops reading at its cap and hangs up: the write then fails.
                if stream.write_all(&chunk[..k]).is_err() {
                    return;
                }
                left -= k;
            }
        }
        Answer::Never => {
            // Block until the client closes the connection.
            let mut sink = [0u8; 1024];
            while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("the action did not return within 30 s")
}

#[tokio::test]
async fn method_body_and_expected_status() {
    let (url, seen) = serve(Answer::Status(204, String::new()));
    let report = bounded(http::run(
        &client(),
        HttpRequest {
            method: "put",
            url: &format!("{url}/drain"),
            body: Some(r#"{"mode":"drain"}"#),
            expect_status: Some(204),
        },
        Duration::from_secs(10),
        1024,
    ))
    .await;
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    assert_eq!(report.status, Some(204));
    let seen = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(seen.method, "PUT");
    assert_eq!(seen.path, "/drain");
    assert_eq!(seen.body, r#"{"mode":"drain"}"#);
}

#[tokio::test]
async fn any_2xx_passes_when_no_status_is_expected() {
    let (url, _seen) = serve(Answer::Status(201, "created".to_owned()));
    let report = bounded(http::run(
        &client(),
        HttpRequest {
            method: "POST",
            url: &url,
            body: None,
            expect_status: None,
        },
        Duration::from_secs(10),
        1024,
    ))
    .await;
    assert_eq!(report.outcome, Outcome::Success);
    assert_eq!(report.body, b"created");
    assert!(!report.truncated);
}

#[tokio::test]
async fn an_unexpected_status_is_a_failure_with_the_body() {
    let (url, _seen) = serve(Answer::Status(503, "  draining already\n".to_owned()));
    let report = bounded(http::run(
        &client(),
        HttpRequest {
            method: "POST",
            url: &url,
            body: None,
            expect_status: None,
        },
        Duration::from_secs(10),
        1024,
    ))
    .await;
    assert_eq!(report.status, Some(503));
    assert_eq!(
        report.outcome,
        Outcome::Failure("status 503, expected 2xx: draining already".to_owned())
    );

    // A 200 where 204 was expected fails too.
    let (url, _seen) = serve(Answer::Status(200, String::new()));
    let report = bounded(http::run(
        &client(),
        HttpRequest {
            method: "POST",
            url: &url,
            body: None,
            expect_status: Some(204),
        },
        Duration::from_secs(10),
        1024,
    ))
    .await;
    assert_eq!(
        report.outcome,
        Outcome::Failure("status 200, expected 204".to_owned())
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let (url, seen) = serve(Answer::Never);
    let report = bounded(http::run(
        &client(),
        HttpRequest {
            method: "POST",
            url: &url,
            body: Some("x"),
            expect_status: None,
        },
        Duration::from_millis(300),
        1024,
    ))
    .await;
    assert_eq!(report.status, None);
    assert!(
        matches!(&report.outcome, Outcome::Failure(r) if r.contains("no complete response") && r.contains("300ms")),
        "{report:?}"
    );
    // The request did reach the server: the timeout is the missing answer's.
    assert_eq!(seen.recv_timeout(Duration::from_secs(5)).unwrap().body, "x");
}

#[tokio::test]
async fn a_huge_body_is_cut_at_the_cap() {
    let (url, _seen) = serve(Answer::Huge(50 * 1024 * 1024));
    let report = bounded(http::run(
        &client(),
        HttpRequest {
            method: "GET",
            url: &url,
            body: None,
            expect_status: Some(200),
        },
        Duration::from_secs(20),
        100_000,
    ))
    .await;
    assert_eq!(report.outcome, Outcome::Success);
    assert_eq!(report.body.len(), 100_000);
    assert!(report.truncated);
    assert!(report.body.iter().all(|&b| b == b'x'));
}

#[tokio::test]
async fn a_body_of_exactly_the_cap_is_not_truncated() {
    let (url, _seen) = serve(Answer::Status(200, "y".repeat(4096)));
    let report = bounded(http::run(
        &client(),
        HttpRequest {
            method: "GET",
            url: &url,
            body: None,
            expect_status: None,
        },
        Duration::from_secs(10),
        4096,
    ))
    .await;
    assert_eq!(report.body.len(), 4096);
    assert!(!report.truncated);
}

#[tokio::test]
async fn refused_connections_and_bad_methods_are_failures() {
    // Bind and drop to find a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let report = bounded(http::run(
        &client(),
        HttpRequest {
            method: "POST",
            url: &format!("http://127.0.0.1:{port}/x"),
            body: None,
            expect_status: None,
        },
        Duration::from_secs(10),
        1024,
    ))
    .await;
    assert!(
        matches!(&report.outcome, Outcome::Failure(r) if r.starts_with("connect to")),
        "{report:?}"
    );
    let report = bounded(http::run(
        &client(),
        HttpRequest {
            method: "NOT A METHOD",
            url: "http://127.0.0.1:1/",
            body: None,
            expect_status: None,
        },
        Duration::from_secs(10),
        1024,
    ))
    .await;
    assert_eq!(
        report.outcome,
        Outcome::Failure("invalid http method \"NOT A METHOD\"".to_owned())
    );
}

/// A fleet of one target `gw` whose circuit-break action closes with `close` (YAML).
fn circuit_target(close: &str) -> medic_policy::Target {
    let tiers =
        medic_policy::parse_policies_str("healing_policies:\n  default: {}\n", "tiers.yaml")
            .unwrap();
    let fleet = medic_policy::parse_fleet_str(
        &format!(
            "targets:\n  - name: gw\n    actions:\n      circuit_break:\n        http: {{ url: \"http://127.0.0.1:9/open\" }}\n{close}"
        ),
        "fleet.yaml",
        &tiers,
    )
    .unwrap();
    fleet.targets[0].clone()
}

fn dispatcher() -> medic_driver::dispatch::Dispatcher {
    let client = client();
    let prober = medic_collect::probe::Prober::new(client.clone(), 1 << 20);
    medic_driver::dispatch::Dispatcher::new(client, prober, None)
}

#[tokio::test]
async fn the_circuit_close_action_runs_and_its_post_condition_is_checked() {
    let (url, seen) = serve(Answer::Status(200, "closed\n".into()));
    let target = circuit_target(&format!(
        "        close: {{ http: {{ method: POST, url: \"{url}/admin/circuit/close\" }} }}\n"
    ));
    let report = bounded(dispatcher().close_circuit(&target))
        .await
        .expect("a close action is configured");
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    assert_eq!(report.via, "http");
    let s = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        (s.method.as_str(), s.path.as_str()),
        ("POST", "/admin/circuit/close")
    );

    // Without a close, nothing runs.
    assert!(
        bounded(dispatcher().close_circuit(&circuit_target("")))
            .await
            .is_none()
    );

    // A close that says it worked but whose post-condition fails is a shadow error.
    let (bad, _) = serve(Answer::Status(503, "still open\n".into()));
    let target = circuit_target(&format!(
        "        close:\n          http: {{ url: \"{url}/admin/circuit/close\" }}\n          post_condition: {{ http: {{ url: \"{bad}/ready\" }} }}\n"
    ));
    let report = bounded(dispatcher().close_circuit(&target)).await.unwrap();
    match &report.outcome {
        Outcome::Failure(why) => assert!(why.starts_with("shadow error:"), "{why}"),
        other => panic!("expected a shadow error, found {other:?}"),
    }
}
