//! The notifier against real HTTP receivers on 127.0.0.1: deduplication, resolution,
//! retries, timeouts, isolation between sinks, dropped overflow, and secrets kept out of logs.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{BOUND, Receiver, Reply, T0, crash_loop, next_report, reports};
use medic_core::{Strategy, TargetId};
use medic_notify::{
    IncidentKey, IncidentKind, Notification, Notifier, NotifyConfig, NotifySettings, Retry, Sink,
    Status, Verdict, WebhookSink,
};
use medic_orchestrator::{ApprovalId, Command, Notice};

fn webhook(url: &str, headers: &[(&str, &str)]) -> Sink {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Sink::Webhook(WebhookSink::new(url, &headers).expect("valid webhook"))
}

fn settings(sinks: Vec<Sink>, retry: Retry) -> NotifySettings {
    NotifySettings {
        sinks,
        cooldown: Duration::from_secs(300),
        retry,
    }
}

fn fast_retry() -> Retry {
    Retry {
        attempts: 3,
        timeout: Duration::from_secs(10),
        backoff: Duration::from_millis(10),
    }
}

#[tokio::test]
async fn a_crash_loop_escalation_is_delivered_once_despite_repeats_and_resolved_after_healing() {
    let mut receiver = Receiver::start(vec![Reply::Status(200)]).await;
    let (on, mut rx) = reports();
    let sink = webhook(
        &receiver.url("/hook"),
        &[("Authorization", "Bearer s3cr3t-token")],
    );
    let mut notifier = Notifier::start(settings(vec![sink], fast_retry()), on).unwrap();

    let escalation = crash_loop("web");
    let command = Command::Escalate(Box::new(escalation));
    let mut verdicts = Vec::new();
    for i in 0..6u64 {
        let now = T0 + Duration::from_secs(i * 20);
        let n = Notification::from_command(&command, |_| "critical".to_owned(), now).unwrap();
        verdicts.push(notifier.notify(n, now));
    }
    assert!(verdicts[0].is_send());
    assert!(verdicts[1..].iter().all(|v| !v.is_send()), "{verdicts:?}");

    let r = next_report(&mut rx).await;
    assert!(r.result.is_ok(), "{r:?}");
    assert_eq!(r.status, Status::Firing);

    // Healed: one resolution; a second heal sends nothing.
    let healed_at = T0 + Duration::from_secs(200);
    assert_eq!(notifier.resolve_target(&TargetId::new("web"), healed_at), 1);
    assert_eq!(notifier.resolve_target(&TargetId::new("web"), healed_at), 0);
    let r = next_report(&mut rx).await;
    assert!(r.result.is_ok(), "{r:?}");
    assert_eq!(r.status, Status::Resolved);

    // Deliveries to one sink are in order: both are in.
    let firing = receiver.next(BOUND).await;
    let resolved = receiver.next(BOUND).await;
    assert_eq!(receiver.count(), 2, "exactly one firing and one resolution");
    assert_eq!(firing.method, "POST");
    assert_eq!(firing.path, "/hook");
    assert_eq!(firing.header("authorization"), Some("Bearer s3cr3t-token"));
    assert_eq!(firing.header("content-type"), Some("application/json"));

    let f = firing.json();
    assert_eq!(f["status"], "firing");
    assert_eq!(f["target"], "web");
    assert_eq!(f["tier"], "critical");
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["kind"]["type"], "escalation");
    assert_eq!(f["kind"]["reason"], "gave_up");
    assert_eq!(f["starts_at"], T0.as_millis());
    assert_eq!(f["ends_at"], serde_json::Value::Null);
    assert_eq!(f["details"]["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(f["details"]["finding"]["health"], "unhealthy");
    assert!(f["summary"].as_str().unwrap().contains("web"));
    let parsed: Notification =
        serde_json::from_value(f.clone()).expect("the body is a Notification");
    assert_eq!(parsed.id, format!("web/escalation/{}", T0.as_millis()));

    let r = resolved.json();
    assert_eq!(r["status"], "resolved");
    assert_eq!(r["id"], f["id"]);
    assert_eq!(r["starts_at"], f["starts_at"]);
    assert_eq!(r["ends_at"], healed_at.as_millis());
    assert_eq!(r["suppressed_repeats"], 5);

    let stats = notifier.stats();
    assert_eq!(stats.dedup.sent_firing, 1);
    assert_eq!(stats.dedup.suppressed_cooldown, 5);
    assert_eq!(stats.dedup.sent_resolved, 1);
    assert_eq!(stats.delivered, 2);
    assert_eq!(stats.failed, 0);
    assert_eq!(notifier.shutdown(Duration::from_secs(5)).await, 0);
}

#[tokio::test]
async fn a_sink_answering_500_then_200_is_retried() {
    let mut receiver = Receiver::start(vec![Reply::Status(500), Reply::Status(200)]).await;
    let (on, mut rx) = reports();
    let mut notifier = Notifier::start(
        settings(vec![webhook(&receiver.url("/"), &[])], fast_retry()),
        on,
    )
    .unwrap();
    let n = Notification::notice(
        &Notice::Degraded {
            target: TargetId::new("api"),
        },
        "web",
        T0,
    );
    assert!(notifier.notify(n, T0).is_send());
    let r = next_report(&mut rx).await;
    assert!(r.result.is_ok(), "{r:?}");
    assert_eq!(r.tries, 2);
    let first = receiver.next(BOUND).await;
    let second = receiver.next(BOUND).await;
    assert_eq!(
        first.body, second.body,
        "the retry sends the same notification"
    );
    assert_eq!(notifier.stats().delivered, 1);
}

#[tokio::test]
async fn a_4xx_answer_is_not_retried_and_reported_with_its_reason() {
    let receiver = Receiver::start(vec![Reply::Status(400)]).await;
    let (on, mut rx) = reports();
    let mut notifier = Notifier::start(
        settings(vec![webhook(&receiver.url("/"), &[])], fast_retry()),
        on,
    )
    .unwrap();
    let n = Notification::notice(
        &Notice::Degraded {
            target: TargetId::new("api"),
        },
        "web",
        T0,
    );
    notifier.notify(n, T0);
    let r = next_report(&mut rx).await;
    assert_eq!(r.tries, 1);
    let reason = r.result.unwrap_err();
    assert!(reason.contains("status 400"), "{reason}");
    assert_eq!(receiver.count(), 1);
    assert_eq!(notifier.stats().failed, 1);
}

#[tokio::test]
async fn a_hanging_sink_does_not_block_the_other_sink() {
    let mut hanging = Receiver::start(vec![Reply::Hang]).await;
    let good = Receiver::start(vec![Reply::Status(200)]).await;
    let (on, mut rx) = reports();
    // A deadline far beyond the test: only isolation can let the good sink's reports through.
    let retry = Retry {
        attempts: 1,
        timeout: Duration::from_secs(3_600),
        backoff: Duration::from_millis(10),
    };
    let mut notifier = Notifier::start(
        settings(
            vec![
                webhook(&hanging.url("/"), &[]),
                webhook(&good.url("/"), &[]),
            ],
            retry,
        ),
        on,
    )
    .unwrap();
    for (i, target) in ["a", "b", "c"].into_iter().enumerate() {
        let now = T0 + Duration::from_secs(i as u64);
        let n = Notification::notice(
            &Notice::Degraded {
                target: TargetId::new(target),
            },
            "web",
            now,
        );
        assert!(notifier.notify(n, now).is_send());
    }
    for _ in 0..3 {
        let r = next_report(&mut rx).await;
        assert!(r.sink.contains(&good.addr.port().to_string()), "{r:?}");
        assert!(r.result.is_ok(), "{r:?}");
    }
    assert_eq!(good.count(), 3);
    // The hanging receiver holds the first notification; the other two wait behind it.
    hanging.next(BOUND).await;
    assert_eq!(
        notifier.shutdown(Duration::ZERO).await,
        1,
        "the hung worker is aborted"
    );
}

#[tokio::test]
async fn a_hanging_sink_times_out_after_its_tries() {
    let receiver = Receiver::start(vec![Reply::Hang]).await;
    let (on, mut rx) = reports();
    let retry = Retry {
        attempts: 2,
        timeout: Duration::from_millis(200),
        backoff: Duration::from_millis(10),
    };
    let mut notifier =
        Notifier::start(settings(vec![webhook(&receiver.url("/"), &[])], retry), on).unwrap();
    let n = Notification::notice(
        &Notice::Degraded {
            target: TargetId::new("a"),
        },
        "web",
        T0,
    );
    notifier.notify(n, T0);
    let r = next_report(&mut rx).await;
    assert_eq!(r.tries, 2);
    let reason = r.result.unwrap_err();
    assert!(reason.contains("no response within 200ms"), "{reason}");
    assert_eq!(receiver.count(), 2);
}

#[tokio::test]
async fn a_full_queue_drops_and_reports_instead_of_blocking() {
    let receiver = Receiver::start(vec![Reply::Hang]).await;
    let (on, mut rx) = reports();
    let retry = Retry {
        attempts: 1,
        timeout: Duration::from_secs(3_600),
        backoff: Duration::from_millis(10),
    };
    let mut notifier =
        Notifier::start(settings(vec![webhook(&receiver.url("/"), &[])], retry), on).unwrap();
    let total = medic_notify::QUEUE_CAPACITY + 50;
    for i in 0..total {
        let n = Notification::notice(
            &Notice::Degraded {
                target: TargetId::new(format!("t{i}")),
            },
            "web",
            T0,
        );
        assert!(notifier.notify(n, T0).is_send());
    }
    // At most the queue plus the one in flight are kept; the rest were reported at once.
    let dropped = notifier.stats().failed;
    assert!(dropped >= 49, "dropped {dropped}");
    for _ in 0..dropped {
        let r = next_report(&mut rx).await;
        assert_eq!(r.tries, 0);
        assert!(r.result.unwrap_err().contains("queue full"));
    }
    notifier.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn approvals_are_their_own_incidents_and_resolved_by_key() {
    let mut receiver = Receiver::start(vec![Reply::Status(200)]).await;
    let (on, mut rx) = reports();
    let mut notifier = Notifier::start(
        settings(vec![webhook(&receiver.url("/"), &[])], fast_retry()),
        on,
    )
    .unwrap();
    for id in [1, 2] {
        let notice = Notice::ApprovalRequested {
            approval: ApprovalId(id),
            target: TargetId::new("db"),
            strategy: Strategy::Recreate,
            reason: "recreate needs approval in tier critical".to_owned(),
            deadline: T0 + Duration::from_secs(600),
        };
        let n = Notification::notice(&notice, "critical", T0);
        assert!(notifier.notify(n, T0).is_send());
    }
    // Healing the target does not answer an approval request.
    assert_eq!(notifier.resolve_target(&TargetId::new("db"), T0), 0);
    let key = IncidentKey::new(TargetId::new("db"), IncidentKind::Approval(ApprovalId(2)));
    assert!(
        notifier
            .resolve(&key, T0 + Duration::from_secs(5))
            .is_send()
    );
    assert_eq!(
        notifier.resolve(&key, T0 + Duration::from_secs(6)),
        Verdict::Suppress(medic_notify::Suppressed::NotOpen)
    );
    for _ in 0..3 {
        assert!(next_report(&mut rx).await.result.is_ok());
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(receiver.next(BOUND).await.json());
    }
    assert_eq!(
        got[0]["kind"],
        serde_json::json!({"type": "approval_requested", "id": 1})
    );
    assert_eq!(got[1]["kind"]["id"], 2);
    assert_eq!(got[2]["status"], "resolved");
    assert_eq!(got[2]["id"], got[1]["id"]);
    assert_eq!(notifier.open_incidents().len(), 1);
}

#[test]
fn config_problems_are_all_reported_with_their_paths() {
    let config: NotifyConfig = serde_json::from_value(serde_json::json!({
        "attempts": 0,
        "timeout": 0,
        "webhooks": [{"url": "ftp://example.invalid/x"}, {"url": "http://127.0.0.1:9/", "headers": {"bad header": "x"}}],
        "alertmanager": [{"url": "not a url"}]
    }))
    .unwrap();
    let err = config.validate().unwrap_err().to_string();
    for needle in [
        "notify.webhooks[0]: invalid url ftp://example.invalid: scheme ftp is not http or https",
        "notify.webhooks[1]: invalid header bad header",
        "notify.alertmanager[0]: invalid url <invalid url>",
        "notify.timeout: must be more than zero",
        "notify.attempts: 0 is not between 1 and 10",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }

    let unknown = serde_json::from_value::<NotifyConfig>(serde_json::json!({"webhook": []}));
    assert!(unknown.is_err(), "unknown keys are rejected");
    let bad_duration =
        serde_json::from_value::<NotifyConfig>(serde_json::json!({"cooldown": "5 parsecs"}));
    assert!(
        bad_duration
            .unwrap_err()
            .to_string()
            .contains("unknown unit")
    );

    let defaults: NotifyConfig = serde_json::from_value(serde_json::json!({})).unwrap();
    let s = defaults.validate().unwrap();
    assert!(s.sinks.is_empty());
    assert_eq!(s.cooldown, Duration::from_secs(300));
    assert_eq!(s.retry, Retry::standard());
    let custom: NotifyConfig =
        serde_json::from_value(serde_json::json!({"cooldown": "90s", "timeout": 1.5})).unwrap();
    let s = custom.validate().unwrap();
    assert_eq!(s.cooldown, Duration::from_secs(90));
    assert_eq!(s.retry.timeout, Duration::from_millis(1500));
}

#[tokio::test]
async fn open_incidents_are_reposted_to_alertmanagers_only_until_resolved() {
    // The receiver stands in for Alertmanager's API here (the real one is in alertmanager.rs).
    let mut am = Receiver::start(vec![Reply::Status(200)]).await;
    let mut hook = Receiver::start(vec![Reply::Status(200)]).await;
    let (on, mut rx) = reports();
    let sinks = vec![
        webhook(&hook.url("/"), &[]),
        Sink::Alertmanager(medic_notify::AlertmanagerSink::new(&am.url(""), None).unwrap()),
    ];
    let mut notifier = Notifier::start(settings(sinks, fast_retry()), on).unwrap();
    assert_eq!(notifier.tick(T0), 0, "the first tick starts the period");
    let n = Notification::escalation(&crash_loop("web"), "critical", T0);
    notifier.notify(n, T0);
    let refresh = medic_notify::ALERTMANAGER_REFRESH;
    assert_eq!(notifier.tick(T0 + refresh / 2), 0);
    assert_eq!(notifier.tick(T0 + refresh), 1);
    notifier.resolve_target(&TargetId::new("web"), T0 + refresh * 2);
    assert_eq!(notifier.tick(T0 + refresh * 3), 0, "nothing open");
    // webhook: firing, resolved; alertmanager: firing, refresh, resolved.
    for _ in 0..5 {
        assert!(next_report(&mut rx).await.result.is_ok());
    }
    let am_bodies: Vec<serde_json::Value> = am.drain().iter().map(|r| r.json()).collect();
    assert_eq!(am_bodies.len(), 3);
    assert_eq!(am_bodies[0], am_bodies[1], "the refresh is the same alert");
    assert_eq!(am_bodies[0][0]["labels"]["alertname"], "MedicEscalation");
    assert!(am_bodies[0][0].get("endsAt").is_none());
    assert!(am_bodies[2][0]["endsAt"].is_string());
    assert_eq!(am.count(), 3);
    assert_eq!(hook.drain().len(), 2);
}
