//! Every endpoint against a real server on 127.0.0.1:0, spoken to with reqwest.

mod common;

use std::time::Duration;

use common::{TARGETS, start};
use medic_core::Severity;
use reqwest::{Client, StatusCode};
use serde_json::Value;

const TOKEN: &str = "correct horse battery staple";

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn json(resp: reqwest::Response) -> Value {
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn health_and_readiness() {
    let s = start(Some(TOKEN)).await;
    let c = client();
    let r = c.get(format!("{}/health", s.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r).await["status"], "ok");

    let r = c.get(format!("{}/ready", s.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(r).await["ready"], false);
    s.state.set_ready(true);
    let r = c.get(format!("{}/ready", s.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r).await["ready"], true);

    let r = c.get(format!("{}/nope", s.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(json(r).await["error"].is_string());
    s.stop().await;
}

#[tokio::test]
async fn read_endpoints_serve_the_view() {
    let s = start(Some(TOKEN)).await;
    let c = client();
    let get = |path: &str| c.get(format!("{}{path}", s.base)).send();

    let r = get("/api/v1/targets").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let targets = json(r).await;
    let names: Vec<&str> = targets
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, TARGETS.map(|(n, _)| n));
    assert_eq!(targets[1]["state"], "unhealthy");
    assert_eq!(targets[0]["anomaly"].as_array().unwrap().len(), 120);

    let one = json(get("/api/v1/targets/search").await.unwrap()).await;
    assert_eq!(one["tier"], "standard");
    assert_eq!(one["state"], "degraded");
    assert_eq!(one["last_finding"]["severity"], "warning");

    let r = get("/api/v1/targets/no-such-target").await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(json(r).await["error"], "no such target");

    let incidents = json(get("/api/v1/incidents").await.unwrap()).await;
    assert_eq!(incidents[0]["target"], "orders");
    assert_eq!(incidents[0]["status"], "healing");

    let actions = json(get("/api/v1/actions").await.unwrap()).await;
    assert_eq!(actions.as_array().unwrap().len(), 3);
    assert_eq!(actions[0]["outcome"], "success");
    assert_eq!(actions[0]["duration_ms"], 640);
    assert_eq!(actions[2]["outcome"], "pending");

    let m = json(get("/api/v1/maintenance").await.unwrap()).await;
    assert_eq!(m[0]["id"], 5);
    assert_eq!(m[0]["scope"]["tier"], "standard");

    let a = json(get("/api/v1/approvals").await.unwrap()).await;
    assert_eq!(a[0]["id"], 3);
    assert_eq!(a[0]["strategy"], "rollback");

    let learned = json(get("/api/v1/learned").await.unwrap()).await;
    assert_eq!(learned["observed"], 4);
    assert_eq!(learned["rates"][0]["strategy"], "restart");
    assert_eq!(learned["rates"][0]["attempts"], 4);

    let fleet = json(get("/api/v1/fleet").await.unwrap()).await;
    assert_eq!(fleet["mttr_seconds"], 0.64);
    assert_eq!(fleet["targets"].as_array().unwrap().len(), 6);

    let r = get("/").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.headers().contains_key("content-security-policy"));
    let html = r.text().await.unwrap();
    assert!(html.contains("/api/v1/fleet"));
    s.stop().await;
}

#[tokio::test]
async fn metrics_are_rendered_in_prometheus_text() {
    let s = start(Some(TOKEN)).await;
    medic_api::record_action("restart", "success", "critical", Duration::from_millis(640));
    medic_api::record_probe(Duration::from_millis(3));
    medic_api::set_mttr(0.64);
    medic_api::set_target_states([
        medic_core::HealthState::Healthy,
        medic_core::HealthState::Healthy,
        medic_core::HealthState::Unhealthy,
    ]);
    medic_api::set_prediction("search", 0.81);
    medic_api::record_prediction_alarm();
    medic_api::set_anomaly("search", 0.74);
    medic_api::set_queue_depth(2);

    let r = client()
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    for name in medic_api::names::ALL {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(
        text.contains(
            r#"medic_healing_actions_total{strategy="restart",outcome="success",tier="critical"} "#
        ),
        "{text}"
    );
    // Histograms with buckets, not summaries.
    assert!(
        text.contains(r#"medic_healing_duration_seconds_bucket{le="1"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"medic_probe_duration_seconds_bucket{le="0.005"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"medic_targets{state="healthy"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"medic_targets{state="degraded"} 0"#),
        "{text}"
    );
    assert!(text.contains("# HELP medic_mttr_seconds"), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn mutations_need_the_token() {
    let s = start(Some(TOKEN)).await;
    let c = client();
    let url = format!("{}/api/v1/maintenance", s.base);
    let body = r#"{"target":"orders","duration":"10m","reason":"deploy"}"#;

    let r = c.post(&url).body(body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert!(json(r).await["error"].as_str().unwrap().contains("Bearer"));

    let r = c
        .post(&url)
        .bearer_auth("correct horse battery stapler")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");

    let r = c
        .post(&url)
        .header("authorization", format!("Basic {TOKEN}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    for (method, path) in [
        (reqwest::Method::DELETE, "/api/v1/maintenance/5"),
        (reqwest::Method::POST, "/api/v1/approvals/p3"),
        (reqwest::Method::POST, "/api/v1/alerts/alertmanager"),
    ] {
        let r = c
            .request(method, format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    assert!(
        s.seen.lock().unwrap().is_empty(),
        "nothing reaches the daemon without the token"
    );

    let r = c
        .post(&url)
        .bearer_auth(TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(json(r).await["id"], 7);
    let seen = s.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].contains(r#"Target("orders")"#), "{seen:?}");
    assert!(seen[0].contains("600s"), "{seen:?}");
    s.stop().await;
}

#[tokio::test]
async fn mutations_are_refused_without_a_configured_token() {
    let s = start(None).await;
    let r = client()
        .post(format!("{}/api/v1/maintenance", s.base))
        .bearer_auth("anything")
        .body(r#"{"target":"orders","duration":60}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let msg = json(r).await["error"].as_str().unwrap().to_owned();
    assert!(msg.contains("MEDIC_API_TOKEN"), "{msg}");
    assert!(s.seen.lock().unwrap().is_empty());
    // Reading still works.
    let r = client()
        .get(format!("{}/api/v1/targets", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn bodies_are_capped_and_checked() {
    let s = start(Some(TOKEN)).await;
    let c = client();
    let url = format!("{}/api/v1/maintenance", s.base);

    let huge = format!(
        r#"{{"target":"orders","duration":60,"reason":"{}"}}"#,
        "x".repeat(200 * 1024)
    );
    let r = c
        .post(&url)
        .bearer_auth(TOKEN)
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let r = c
        .post(&url)
        .bearer_auth(TOKEN)
        .body(r#"{"target":"orders","duration":60"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let msg = json(r).await["error"].as_str().unwrap().to_owned();
    assert!(
        msg.starts_with("invalid JSON body: EOF while parsing"),
        "{msg}"
    );

    let r = c
        .post(&url)
        .bearer_auth(TOKEN)
        .body(r#"{"target":"orders","duration":60,"until":"tomorrow"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let msg = json(r).await["error"].as_str().unwrap().to_owned();
    assert!(msg.contains("unknown field `until`"), "{msg}");

    let r = c
        .post(&url)
        .bearer_auth(TOKEN)
        .body(r#"{"target":"orders","duration":"soon"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let msg = json(r).await["error"].as_str().unwrap().to_owned();
    assert!(msg.contains("cannot read duration"), "{msg}");

    let r = c
        .post(&url)
        .bearer_auth(TOKEN)
        .body(r#"{"target":"ghost","duration":"1h"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let r = c
        .post(&url)
        .bearer_auth(TOKEN)
        .body(r#"{"tier":"standard","duration":"1h30m"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(json(r).await["duration_s"], 5400.0);
    s.stop().await;
}

#[tokio::test]
async fn maintenance_can_be_ended_and_approvals_decided() {
    let s = start(Some(TOKEN)).await;
    let c = client();

    let r = c
        .delete(format!("{}/api/v1/maintenance/5", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r).await["ended"], true);
    let r = c
        .delete(format!("{}/api/v1/maintenance/99", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(json(r).await["error"], "no maintenance window 99");
    let r = c
        .delete(format!("{}/api/v1/maintenance/abc", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let approve = |id: &str, body: &'static str| {
        c.post(format!("{}/api/v1/approvals/{id}", s.base))
            .bearer_auth(TOKEN)
            .body(body)
            .send()
    };
    let r = approve("p3", r#"{"decision":"approve"}"#).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v = json(r).await;
    assert_eq!(v["approval"], "p3");
    assert_eq!(v["decision"], "approve");
    let r = approve("3", r#"{"decision":"deny"}"#).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = approve("p4", r#"{"decision":"deny"}"#).await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = approve("p9", r#"{"decision":"deny"}"#).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = approve("p3", r#"{"decision":"maybe"}"#).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let msg = json(r).await["error"].as_str().unwrap().to_owned();
    assert!(msg.contains("unknown variant `maybe`"), "{msg}");

    let seen = s.seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|r| r.contains("Approval { id: ApprovalId(3), decision: Approve")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|r| r.contains("Approval { id: ApprovalId(3), decision: Deny")),
        "{seen:?}"
    );
    s.stop().await;
}

/// A webhook body as Alertmanager 0.25+ posts it (`version: "4"`), including its habit of
/// writing an empty map as `null`.
const ALERTMANAGER_PAYLOAD: &str = r#"{
  "receiver": "medic",
  "status": "firing",
  "alerts": [
    {
      "status": "firing",
      "labels": {
        "alertname": "HighErrorRate",
        "instance": "127.0.0.1:8103",
        "job": "demo",
        "target": "payments",
        "severity": "critical"
      },
      "annotations": {
        "summary": "5xx rate above 5% for 2 minutes",
        "description": "payments answers 12% of requests with 5xx"
      },
      "startsAt": "2026-11-27T02:10:30.123Z",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "http://prometheus:9090/graph?g0.expr=rate%28http_requests_total%7Bcode%3D~%225..%22%7D%5B1m%5D%29+%3E+0.05&g0.tab=1",
      "fingerprint": "a3c4e1f2b1d09e77"
    },
    {
      "status": "resolved",
      "labels": { "alertname": "SlowResponses", "job": "search", "severity": "warning" },
      "annotations": { "description": "p99 latency back under 500ms" },
      "startsAt": "2026-11-27T01:55:00Z",
      "endsAt": "2026-11-27T02:09:00Z",
      "generatorURL": "http://prometheus:9090/graph?g0.expr=histogram_quantile%280.99%29",
      "fingerprint": "0f1e2d3c4b5a6978"
    },
    {
      "status": "firing",
      "labels": { "alertname": "Watchdog", "severity": "none" },
      "annotations": {},
      "startsAt": "2026-11-27T00:00:00Z",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "http://prometheus:9090/graph?g0.expr=vector%281%29",
      "fingerprint": "e0e0e0e0e0e0e0e0"
    },
    {
      "status": "firing",
      "labels": { "alertname": "DiskFull", "target": "not-in-fleet" },
      "annotations": null,
      "startsAt": "2026-11-27T02:00:00Z",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "",
      "fingerprint": "1111222233334444"
    }
  ],
  "groupLabels": { "alertname": "HighErrorRate" },
  "commonLabels": {},
  "commonAnnotations": null,
  "externalURL": "http://alertmanager:9093",
  "version": "4",
  "groupKey": "{}:{alertname=\"HighErrorRate\"}",
  "truncatedAlerts": 0
}"#;

#[tokio::test]
async fn alertmanager_webhook_becomes_alerts() {
    let s = start(Some(TOKEN)).await;
    let c = client();
    let r = c
        .post(format!("{}/api/v1/alerts/alertmanager", s.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(ALERTMANAGER_PAYLOAD)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v = json(r).await;
    assert_eq!(v["received"], 4);
    assert_eq!(v["without_target"], 1);
    assert_eq!(v["from_medic"], 0);
    assert_eq!(v["matched"], 2);

    let alerts = s.alerts.lock().unwrap().clone();
    assert_eq!(alerts.len(), 3);
    let pay = &alerts[0];
    assert_eq!(
        pay.target.as_str(),
        "payments",
        "`target` wins over instance and job"
    );
    assert_eq!(pay.alertname, "HighErrorRate");
    assert_eq!(pay.severity, Severity::Critical);
    assert!(pay.firing);
    assert_eq!(pay.summary, "5xx rate above 5% for 2 minutes");
    assert_eq!(pay.fingerprint, "a3c4e1f2b1d09e77");
    assert_eq!(pay.starts_at, "2026-11-27T02:10:30.123Z");
    let search = &alerts[1];
    assert_eq!(search.target.as_str(), "search", "falls back to job");
    assert!(!search.firing);
    assert_eq!(search.severity, Severity::Warning);
    assert_eq!(search.summary, "p99 latency back under 500ms");
    assert_eq!(alerts[2].target.as_str(), "not-in-fleet");
    assert_eq!(alerts[2].summary, "DiskFull");

    let r = c
        .post(format!("{}/api/v1/alerts/alertmanager", s.base))
        .bearer_auth(TOKEN)
        .body(r#"{"version":"4","alerts":[{"labels":{}}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "status is optional");
    let r = c
        .post(format!("{}/api/v1/alerts/alertmanager", s.base))
        .bearer_auth(TOKEN)
        .body(r#"{"version":"4","alerts":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let msg = json(r).await["error"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("invalid type: map, expected a sequence"),
        "{msg}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_daemon_that_is_gone_gives_503() {
    let metrics = medic_api::install_metrics();
    let view = std::sync::Arc::new(std::sync::RwLock::new(common::demo_view()));
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    drop(rx);
    let state = medic_api::ApiState::new(view, tx, Some(medic_api::Secret::new(TOKEN)), metrics);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(medic_api::serve(listener, state, std::future::pending()));
    let r = client()
        .post(format!("http://{addr}/api/v1/approvals/p3"))
        .bearer_auth(TOKEN)
        .body(r#"{"decision":"approve"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        json(r).await["error"],
        "the daemon is not accepting requests"
    );
    server.abort();
}

/// A payload a real Alertmanager delivered, captured by medic-notify's test: medic's own
/// escalation, which must not come back as a finding.
#[tokio::test]
async fn medics_own_notifications_are_not_taken_back() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../medic-notify/tests/fixtures/alertmanager_webhook.json");
    let Ok(body) = std::fs::read_to_string(&fixture) else {
        eprintln!("skipping: {} is absent", fixture.display());
        return;
    };
    let s = start(Some(TOKEN)).await;
    let r = client()
        .post(format!("{}/api/v1/alerts/alertmanager", s.base))
        .bearer_auth(TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v = json(r).await;
    assert!(v["received"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["from_medic"], v["received"], "{v}");
    assert_eq!(v["matched"], 0);
    assert!(s.seen.lock().unwrap().is_empty());
    s.stop().await;
}
