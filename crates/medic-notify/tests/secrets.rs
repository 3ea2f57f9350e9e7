//! Secrets in the notify configuration (header values, URL credentials, paths, queries) never
//! reach Debug output, delivery reports or logs. A test binary of its own because it installs
//! the global `tracing` subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{T0, crash_loop, next_report, reports};
use medic_notify::{Notification, Notifier, NotifyConfig};

/// Captures log lines written by the `tracing` subscriber installed for one test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_reach_debug_output_logs_or_reports() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    // Global, in a test binary of its own: a thread-scoped subscriber misses events whose
    // callsites other test threads registered first.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    // Nothing listens on port 1: every try fails, and every failure is logged.
    let config: NotifyConfig = serde_json::from_value(serde_json::json!({
        "timeout": "2s",
        "attempts": 2,
        "webhooks": [{
            "url": "http://user:pa55word@127.0.0.1:1/hooks/T0K3N?key=qu3ry",
            "headers": {"Authorization": "Bearer s3cr3t-token"}
        }],
        "alertmanager": [{"url": "http://am:pa55word@127.0.0.1:1/"}]
    }))
    .unwrap();
    let settings = config.validate().unwrap();
    let debug = format!("{config:?} {settings:?}");
    let (on, mut rx) = reports();
    let mut notifier = Notifier::start(settings, on).unwrap();
    let n = Notification::escalation(&crash_loop("web"), "critical", T0);
    notifier.notify(n, T0);
    let mut texts = vec![debug];
    for _ in 0..2 {
        let r = next_report(&mut rx).await;
        assert!(r.result.is_err());
        texts.push(format!("{r:?}"));
    }
    texts.push(String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned());
    let all = texts.join("\n");
    assert!(all.contains("not delivered"), "failures are logged: {all}");
    assert!(
        all.contains("127.0.0.1:1"),
        "sinks are named by origin: {all}"
    );
    for secret in ["s3cr3t", "pa55word", "T0K3N", "qu3ry"] {
        assert!(!all.contains(secret), "{secret} leaked: {all}");
    }
}
