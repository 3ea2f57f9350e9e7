//! Collection into history, end to end: a real HTTP server on loopback serves a metrics page
//! (with one malformed line), medic scrapes it, the samples go into a real SQLite store, and a
//! reopened store reads them back.

use std::time::Duration;

use medic_core::{TargetId, Timestamp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const PAGE: &str = "\
# HELP demo_queue_depth Work items waiting.
# TYPE demo_queue_depth gauge
demo_queue_depth 7
# TYPE demo_requests_total counter
demo_requests_total{code=\"200\",path=\"/work\"} 1027
demo_requests_total{code=\"500\",path=\"/work\"} 3
this line is not exposition format
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 5.24288e+07
";

/// Serves `PAGE` to every connection, as a minimal HTTP/1.1 server.
async fn serve_metrics() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = sock.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    PAGE.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(PAGE.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn scraped_samples_are_stored_and_read_back_after_reopen() {
    let addr = serve_metrics().await;
    let client = medic_collect::http::client().unwrap();
    let target = TargetId::new("worker-1");
    let now = Timestamp::from_secs(1_767_225_600);
    let report = medic_collect::scrape::scrape(
        &client,
        &target,
        &format!("http://{addr}/metrics"),
        Duration::from_secs(2),
        1 << 20,
        now,
    )
    .await
    .unwrap();
    assert_eq!(report.samples.len(), 4);
    assert_eq!(
        report.skipped_lines, 1,
        "the malformed line is skipped and counted"
    );

    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = medic_store::Store::open_data_dir(dir.path()).unwrap();
        assert_eq!(store.insert_samples(&report.samples).unwrap(), 4);
    }
    let store = medic_store::Store::open_data_dir(dir.path()).unwrap();
    let window = now..now + Duration::from_secs(1);
    let queue = store
        .samples("worker-1", "demo_queue_depth", window.clone())
        .unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].value, 7.0);
    assert_eq!(queue[0].at, now);
    let requests = store
        .samples("worker-1", "demo_requests_total", window.clone())
        .unwrap();
    let mut by_code: Vec<(String, f64)> = requests
        .iter()
        .map(|s| {
            let code = s
                .labels
                .iter()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.clone());
            (code.unwrap_or_default(), s.value)
        })
        .collect();
    by_code.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        by_code,
        [("200".to_owned(), 1027.0), ("500".to_owned(), 3.0)]
    );
    let rss = store
        .samples("worker-1", "process_resident_memory_bytes", window)
        .unwrap();
    assert_eq!(rss[0].value, 52_428_800.0);
}
