//! The Prometheus source against real servers: a real Prometheus (the Debian package's
//! binary, skipped with a printed reason when absent) scraping two small metrics servers
//! started here, and hostile HTTP servers on 127.0.0.1 for the error paths.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use medic_core::Timestamp;
use medic_train::prometheus::{
    ClientOptions, ColumnQuery, PromClient, PromError, PromSource, fetch,
};

/// Reads one request head (up to the blank line); returns false if the peer went away.
fn read_head(s: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return false,
        }
        if buf.len() > 64 * 1024 {
            return false;
        }
    }
    true
}

/// A metrics endpoint serving fixed gauges and a counter that counts its scrapes.
struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl MetricsServer {
    fn start(cpu: f64, rss_bytes: f64) -> MetricsServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let (stop2, served2) = (stop.clone(), served.clone());
        let handle = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut s) = conn else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                if !read_head(&mut s) {
                    continue;
                }
                let n = served2.fetch_add(1, Ordering::SeqCst) + 1;
                let body = format!(
                    "# TYPE test_cpu gauge\ntest_cpu {cpu}\n\
                     # TYPE test_rss_bytes gauge\ntest_rss_bytes {rss_bytes}\n\
                     # TYPE test_requests_total counter\ntest_requests_total {n}\n"
                );
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        MetricsServer {
            addr,
            stop,
            served,
            handle: Some(handle),
        }
    }

    /// Stops accepting: the port is closed afterwards, so scrapes fail (`up` becomes 0).
    fn shut_down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// The Prometheus child, killed (by its own pid) when dropped.
struct PromProcess {
    child: Child,
    _dir: tempfile::TempDir,
    url: String,
}

impl Drop for PromProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prometheus_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MEDIC_PROMETHEUS") {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_prometheus(bin: &PathBuf, targets: &[SocketAddr]) -> PromProcess {
    let dir = tempfile::tempdir().unwrap();
    let list: Vec<String> = targets.iter().map(|a| format!("'{a}'")).collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: medic-train-test\n    static_configs:\n      - targets: [{}]\n",
        list.join(", ")
    );
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, config).unwrap();
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    PromProcess {
        child,
        _dir: dir,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// Polls `cond` every 200 ms until it holds or `tries` run out (a bounded wait for the
/// server's state, not a timing assertion).
fn wait_for(what: &str, tries: usize, mut cond: impl FnMut() -> bool) {
    for _ in 0..tries {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("gave up waiting for {what}");
}

#[test]
fn real_prometheus_range_queries_become_agent_series() {
    let Some(bin) = prometheus_binary() else {
        eprintln!("skipping: no prometheus binary on PATH (apt-get install prometheus)");
        return;
    };
    let a = MetricsServer::start(0.25, 104_857_600.0);
    let mut b = MetricsServer::start(0.75, 209_715_200.0);
    let prom = start_prometheus(&bin, &[a.addr, b.addr]);
    let client = PromClient::new(
        &prom.url,
        ClientOptions {
            timeout: Duration::from_secs(5),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let mut t_start = None;
    wait_for("prometheus to answer", 300, || {
        t_start = client.server_time().ok();
        t_start.is_some()
    });
    // Whole seconds, so the grid lines up with 1 s steps.
    let start = Timestamp::from_secs(t_start.unwrap().as_millis() / 1000 + 1);
    let step = Duration::from_secs(1);
    // Enough scrapes of both targets.
    wait_for("12 scrapes of each target", 300, || {
        a.served.load(Ordering::SeqCst) >= 12 && b.served.load(Ordering::SeqCst) >= 12
    });
    b.shut_down();
    let b_served = b.served.load(Ordering::SeqCst);
    let b_instance = b.addr.to_string();
    wait_for("prometheus to see the second target down", 150, || {
        let Ok(now) = client.server_time() else {
            return false;
        };
        client
            .query_range("up == 0", start, now, step)
            .is_ok_and(|s| {
                s.iter()
                    .any(|r| r.labels.get("instance") == Some(&b_instance))
            })
    });
    // Two more steps so the end of the range is past the failure.
    wait_for("two more scrapes of the first target", 150, || {
        a.served.load(Ordering::SeqCst) >= b_served + 2
    });
    let end = client.server_time().unwrap();
    let a_served = a.served.load(Ordering::SeqCst);

    let queries = [
        "cpu=test_cpu",
        "rss_mb=test_rss_bytes / 1048576",
        "requests=test_requests_total",
    ];
    let src = PromSource {
        columns: queries
            .iter()
            .map(|q| q.parse::<ColumnQuery>().unwrap())
            .collect(),
        failure_query: Some("up == 0".into()),
        agent_label: "instance".into(),
        start,
        end,
        step,
    };
    let (series, report) = fetch(&client, &src).unwrap();
    let n = ((end.as_millis() - start.as_millis()) / 1000 + 1) as usize;
    assert_eq!(report.steps, n);
    let names: Vec<&str> = series.iter().map(|s| s.agent.as_str()).collect();
    let mut expected = vec![a.addr.to_string(), b.addr.to_string()];
    expected.sort();
    assert_eq!(names, expected);
    let sa = series
        .iter()
        .find(|s| s.agent == a.addr.to_string())
        .unwrap();
    let sb = series.iter().find(|s| s.agent == b_instance).unwrap();
    for s in [sa, sb] {
        assert_eq!(s.len(), n);
        assert_eq!(s.start, start);
        assert_eq!(s.step, step);
        let cols: Vec<&str> = s.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(cols, ["cpu", "rss_mb", "requests"]);
        s.validate().unwrap();
    }
    // Values are what the servers served.
    let present = |v: &[f32]| v.iter().filter(|x| !x.is_nan()).count();
    assert!(present(sa.column("cpu").unwrap()) >= 5);
    assert!(present(sb.column("cpu").unwrap()) >= 3);
    for (s, cpu, rss, served) in [(sa, 0.25, 100.0, a_served), (sb, 0.75, 200.0, b_served)] {
        for (i, &v) in s.column("cpu").unwrap().iter().enumerate() {
            assert!(v.is_nan() || v == cpu, "{} cpu[{i}] = {v}", s.agent);
        }
        for &v in s.column("rss_mb").unwrap() {
            assert!(v.is_nan() || v == rss, "{} rss_mb = {v}", s.agent);
        }
        let req: Vec<f32> = s
            .column("requests")
            .unwrap()
            .iter()
            .copied()
            .filter(|v| !v.is_nan())
            .collect();
        assert!(req.windows(2).all(|w| w[0] <= w[1]), "{req:?}");
        assert!(
            req.iter()
                .all(|&v| v >= 1.0 && v <= served as f32 && v.fract() == 0.0),
            "{req:?} served {served}"
        );
    }
    // Failure marks are exactly the steps where `up == 0` starts returning samples, as the
    // server reports them (a scrape that timed out under load is a failure too).
    let up0 = client.query_range("up == 0", start, end, step).unwrap();
    let mut expected_starts = 0;
    for s in [sa, sb] {
        let mut on = vec![false; n];
        if let Some(r) = up0.iter().find(|r| r.labels["instance"] == s.agent) {
            for &(t, _) in &r.points {
                on[((t.as_millis() - start.as_millis()) / 1000) as usize] = true;
            }
        }
        let starts: Vec<Timestamp> = (1..n)
            .filter(|&i| on[i] && !on[i - 1])
            .map(|i| Timestamp::from_millis(start.as_millis() + i as u64 * 1000))
            .collect();
        let marks: Vec<Timestamp> = s.failures.iter().map(|f| f.at).collect();
        assert_eq!(marks, starts, "{}", s.agent);
        expected_starts += starts.len();
    }
    assert_eq!(report.failures, expected_starts);
    // The stopped target: its last failure is the shutdown; from that step on nothing (dark).
    let f = sb
        .failures
        .last()
        .expect("the stopped target has a failure");
    let k = ((f.at.as_millis() - start.as_millis()) / 1000) as usize;
    assert!(k > 0 && k < n);
    assert!(
        sb.columns
            .iter()
            .all(|c| !c.values[k - 1].is_nan() || k < 2)
    );
    for c in &sb.columns {
        assert!(
            c.values[k..].iter().all(|v| v.is_nan()),
            "{} after the failure: {:?}",
            c.name,
            &c.values[k..]
        );
    }
    assert!(report.dark_rows >= n - k);
    if !sa.failures.is_empty() {
        eprintln!(
            "note: the running target had transient scrape failures: {:?}",
            sa.failures
        );
    }

    // A range longer than one request's 10,000 points is fetched in chunks and merged.
    let fine = Duration::from_millis(1);
    // The last 10.5 s: the first target was scraped throughout (at least 14 scrapes by now).
    let fine_start = Timestamp::from_millis(end.as_millis() - 10_500);
    let got = client
        .query_range(
            &format!("test_cpu{{instance=\"{}\"}}", a.addr),
            fine_start,
            end,
            fine,
        )
        .unwrap();
    assert_eq!(got.len(), 1);
    let pts = &got[0].points;
    assert_eq!(pts.len(), 10_501, "one point per step over both requests");
    assert!(pts.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(pts.iter().all(|&(_, v)| v == 0.25));

    // PromQL errors come back as Prometheus' own error.
    match client.query_range("rate(", start, end, step) {
        Err(PromError::Api { error_type, .. }) => assert_eq!(error_type, "bad_data"),
        other => panic!("expected a bad_data error, got {other:?}"),
    }
    // Two series for one agent are refused with a hint.
    let dup = PromSource {
        columns: vec![
            "cpu={__name__=~\"test_cpu|test_rss_bytes\"}"
                .parse()
                .unwrap(),
        ],
        failure_query: None,
        ..src
    };
    let e = fetch(&client, &dup).unwrap_err().to_string();
    assert!(e.contains("more than one series"), "{e}");
}

/// What a hostile server does with each request.
#[derive(Clone, Copy)]
enum Hostile {
    /// Answers 200 with a body far over the cap, without a length.
    Huge,
    /// Announces a huge Content-Length.
    HugeLength,
    /// Reads the request and never answers.
    Hang,
    /// Answers truncated JSON.
    BadJson,
    /// Answers Prometheus' error document with 400.
    ApiError,
    /// Answers 502 with HTML.
    BadGateway,
    /// Answers a success document of the wrong result type.
    WrongType,
    /// A matrix whose values are not numbers.
    BadValue,
}

fn hostile(mode: Hostile) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let done2 = done.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            if !read_head(&mut s) {
                continue;
            }
            let answer = |s: &mut TcpStream, status: &str, body: &str| {
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            };
            match mode {
                Hostile::Huge => {
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
                    );
                    let chunk = vec![b' '; 64 * 1024];
                    for _ in 0..64 {
                        if s.write_all(&chunk).is_err() {
                            break;
                        }
                    }
                }
                Hostile::HugeLength => {
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\nConnection: close\r\n\r\n{",
                    );
                }
                Hostile::Hang => {
                    // Hold the connection open until the test is over (bounded).
                    for _ in 0..100 {
                        if done2.load(Ordering::SeqCst) {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                Hostile::BadJson => answer(&mut s, "200 OK", "{\"status\":\"success\",\"data\":"),
                Hostile::ApiError => answer(
                    &mut s,
                    "400 Bad Request",
                    "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"1:6: parse error\"}",
                ),
                Hostile::BadGateway => {
                    answer(&mut s, "502 Bad Gateway", "<html>upstream down</html>")
                }
                Hostile::WrongType => answer(
                    &mut s,
                    "200 OK",
                    "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}}",
                ),
                Hostile::BadValue => answer(
                    &mut s,
                    "200 OK",
                    "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":\
                     [{\"metric\":{\"instance\":\"x\"},\"values\":[[1,\"one\"]]}]}}",
                ),
            }
            if done2.load(Ordering::SeqCst) {
                break;
            }
        }
    });
    (format!("http://user:secret@{addr}"), done)
}

fn query(url: &str, timeout: Duration) -> Result<(), PromError> {
    let client = PromClient::new(
        url,
        ClientOptions {
            timeout,
            max_body_bytes: 256 * 1024,
        },
    )?;
    client
        .query_range(
            "up",
            Timestamp::from_secs(1000),
            Timestamp::from_secs(1010),
            Duration::from_secs(1),
        )
        .map(|_| ())
}

/// A hostile behaviour and the error it must give.
type Case = (Hostile, fn(&PromError) -> bool);

#[test]
fn hostile_servers_give_clear_errors() {
    let cases: [Case; 8] = [
        (
            Hostile::Huge,
            |e| matches!(e, PromError::TooLarge { limit, .. } if *limit == 256 * 1024),
        ),
        (Hostile::HugeLength, |e| {
            matches!(e, PromError::TooLarge { .. })
        }),
        (Hostile::Hang, |e| {
            matches!(
                e,
                PromError::Timeout {
                    timeout_ms: 500,
                    ..
                }
            )
        }),
        (Hostile::BadJson, |e| {
            matches!(e, PromError::Malformed { .. })
        }),
        (Hostile::ApiError, |e| {
            matches!(e, PromError::Api { status: 400, error_type, error, .. }
                if error_type == "bad_data" && error.contains("parse error"))
        }),
        (
            Hostile::BadGateway,
            |e| matches!(e, PromError::Http { status: 502, snippet, .. } if snippet.contains("upstream")),
        ),
        (
            Hostile::WrongType,
            |e| matches!(e, PromError::Malformed { reason, .. } if reason.contains("vector")),
        ),
        (
            Hostile::BadValue,
            |e| matches!(e, PromError::Malformed { reason, .. } if reason.contains("one")),
        ),
    ];
    for (mode, expected) in cases {
        let (url, done) = hostile(mode);
        let err = query(&url, Duration::from_millis(500)).unwrap_err();
        done.store(true, Ordering::SeqCst);
        assert!(expected(&err), "unexpected error: {err:?}");
        // The server's user info never reaches the message.
        let text = format!("{err}");
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("127.0.0.1"), "{text}");
    }
    // Nothing listening.
    let port = free_port();
    let err = query(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2)).unwrap_err();
    assert!(matches!(err, PromError::Request { .. }), "{err:?}");
    // Unusable URLs and ranges.
    assert!(matches!(
        PromClient::new("https://127.0.0.1:1", ClientOptions::default()),
        Err(PromError::Url { .. })
    ));
    assert!(matches!(
        PromClient::new("not a url", ClientOptions::default()),
        Err(PromError::Url { .. })
    ));
    let client = PromClient::new("http://127.0.0.1:1", ClientOptions::default()).unwrap();
    assert!(matches!(
        client.query_range(
            "up",
            Timestamp::from_secs(10),
            Timestamp::from_secs(5),
            Duration::from_secs(1)
        ),
        Err(PromError::Config(_))
    ));
}
