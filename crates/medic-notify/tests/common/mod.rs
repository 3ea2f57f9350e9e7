//! A real HTTP receiver on 127.0.0.1 for the tests: records every request and answers with a
//! scripted status, or never answers (a hanging receiver).

#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use medic_core::{Finding, HealthState, LevelSet, ProbeLevel, Strategy, TargetId, Timestamp};
use medic_notify::{DeliveryReport, OnReport, Status};
use medic_orchestrator::{Escalation, EscalationReason};
use medic_strategy::{Attempt, AttemptResult};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How the receiver answers its n-th request.
#[derive(Clone, Copy, Debug)]
pub enum Reply {
    /// Answer with this status.
    Status(u16),
    /// Read the request, then never answer (the connection stays open).
    Hang,
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    /// Method.
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A running receiver.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    requests: mpsc::UnboundedReceiver<Request>,
    count: Arc<AtomicUsize>,
}

impl Receiver {
    /// Starts a receiver answering its n-th request (from 0) with `script[n]`, and the last
    /// entry for every later one.
    pub async fn start(script: Vec<Reply>) -> Receiver {
        assert!(!script.is_empty());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, requests) = mpsc::unbounded_channel();
        let count = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(script);
        let counter = Arc::clone(&count);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let tx = tx.clone();
                let script = Arc::clone(&script);
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    serve(stream, tx, script, counter).await;
                });
            }
        });
        Receiver {
            addr,
            requests,
            count,
        }
    }

    /// `http://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next request, waiting at most `within` (a generous bound, not a timing assertion).
    pub async fn next(&mut self, within: Duration) -> Request {
        tokio::time::timeout(within, self.requests.recv())
            .await
            .expect("no request within the bound")
            .expect("receiver stopped")
    }

    /// Requests received so far and not yet taken with [`Receiver::next`].
    pub fn drain(&mut self) -> Vec<Request> {
        let mut v = Vec::new();
        while let Ok(r) = self.requests.try_recv() {
            v.push(r);
        }
        v
    }

    /// Requests received in total.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

async fn serve(
    mut stream: TcpStream,
    tx: mpsc::UnboundedSender<Request>,
    script: Arc<Vec<Reply>>,
    counter: Arc<AtomicUsize>,
) {
    // One request per connection: the answer says `Connection: close`.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let mut body = buf[head_end..].to_vec();
    if chunked {
        while find(&body, b"0\r\n\r\n").is_none() {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        body = dechunk(&body);
    } else {
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while body.len() < len {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        body.truncate(len);
    }
    let n = counter.fetch_add(1, Ordering::SeqCst);
    let reply = script[n.min(script.len() - 1)];
    let _ = tx.send(Request {
        method,
        path,
        headers,
        body,
    });
    match reply {
        Reply::Status(status) => {
            let text = format!("status {status}");
            let answer = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        Reply::Hang => {
            // Keep the connection open and silent until the client gives up.
            let mut sink = [0u8; 1024];
            while let Ok(n) = stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(raw, b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        let end = (start + size).min(raw.len());
        out.extend_from_slice(&raw[start..end]);
        raw = &raw[(end + 2).min(raw.len())..];
    }
    out
}

/// A generous bound on waiting for something that should happen at once (not a timing
/// assertion: it only keeps a broken test from hanging).
pub const BOUND: Duration = Duration::from_secs(30);
/// The tests' start time.
pub const T0: Timestamp = Timestamp::from_secs(1_795_746_000);

/// A crash-loop escalation of `target` after three failed restarts.
pub fn crash_loop(target: &str) -> Escalation {
    let t = TargetId::new(target);
    let mut levels = LevelSet::default();
    levels.insert(ProbeLevel::Liveness);
    let finding = Finding::from_health(t.clone(), T0, HealthState::Unhealthy, levels);
    Escalation {
        target: t,
        reason: EscalationReason::GaveUp,
        finding: Some(finding),
        history: (0..3)
            .map(|i| Attempt {
                strategy: Strategy::Restart,
                at: T0 - Duration::from_secs(30 - i * 10),
                result: AttemptResult::Failure,
            })
            .collect(),
    }
}

/// A delivery report as the test keeps it: the error as its displayed chain.
#[derive(Debug)]
pub struct Got {
    pub sink: String,
    pub status: Status,
    pub tries: u32,
    pub result: Result<(), String>,
}

/// A report callback and the channel it feeds.
pub fn reports() -> (OnReport, mpsc::UnboundedReceiver<Got>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let on: OnReport = Arc::new(move |r: &DeliveryReport| {
        let result = r.result.as_ref().map_err(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        });
        let _ = tx.send(Got {
            sink: r.sink.clone(),
            status: r.status,
            tries: r.tries,
            result: result.map(|_| ()),
        });
    });
    (on, rx)
}

/// The next report, within [`BOUND`].
pub async fn next_report(rx: &mut mpsc::UnboundedReceiver<Got>) -> Got {
    tokio::time::timeout(BOUND, rx.recv())
        .await
        .expect("no report within the bound")
        .expect("reports closed")
}
