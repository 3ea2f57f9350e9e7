//! One test per documented semantic, on a manual clock with exact timestamps. Traces are
//! compared as plain strings: a behaviour change shows up as a readable diff.

mod common;

use common::*;
use medic_core::{Outcome, PredictionFinding, Severity, Strategy};
use medic_orchestrator::*;

fn one(name: &str) -> Harness {
    Harness::new(
        vec![target(name, "default")],
        tiers(vec![policy("default")]),
        EngineConfig::standard(10),
    )
}

#[test]
fn restart_verify_success_trace() {
    let mut h = one("api");
    assert_eq!(
        h.finding(unhealthy("api", 10)),
        ["J incident api: unhealthy (critical); failing liveness"],
        "findings only queue; the one that opens an incident is journaled"
    );
    assert!(
        h.finding(unhealthy("api", 10)).is_empty(),
        "a newer finding of the same incident is not journaled again"
    );
    assert_eq!(
        h.tick(10),
        ["J intent a1 api restart", "act a1 api restart"]
    );
    assert_eq!(h.outcome(12, 1, Outcome::Success), ["J acted a1 success"]);
    assert!(h.tick(16).is_empty(), "startup delay 5 s not over");
    assert_eq!(h.tick(17), ["verify a1 api by t+77.000s"]);
    assert_eq!(
        h.verify(20, 1, Outcome::Success),
        ["J verified a1 success", "J closed a1 success"]
    );
    assert!(h.tick(21).is_empty());
    assert_eq!(h.engine.stats().successes, 1);
    // the Act carries an idempotency key and follows its intent
    let acts = h.acts();
    assert_eq!(acts[0].1.idempotency_key, "api/a1");
}

#[test]
fn verification_deadline_gives_unknown() {
    let mut h = one("api");
    h.finding(unhealthy("api", 0));
    h.tick(0);
    h.outcome(1, 1, Outcome::Success);
    assert_eq!(h.tick(6), ["verify a1 api by t+66.000s"]);
    assert!(h.tick(65).is_empty());
    assert_eq!(h.tick(66), ["J verified a1 unknown", "J closed a1 unknown"]);
    // a late answer is stale
    assert!(h.verify(67, 1, Outcome::Success).is_empty());
    assert_eq!(h.engine.stats().stale_events, 1);
}

#[test]
fn verification_failure_climbs_ladder_after_backoff() {
    let mut h = one("api");
    h.finding(unhealthy("api", 0));
    h.tick(0);
    h.outcome(1, 1, Outcome::Success);
    h.tick(6);
    assert_eq!(
        h.verify(8, 1, Outcome::Failure("still down".into())),
        ["J verified a1 failure", "J closed a1 failure"]
    );
    // backoff 10 s from the failure at t=8
    assert!(h.tick(17).is_empty());
    assert_eq!(h.tick(18), ["J intent a2 api reset", "act a2 api reset"]);
    h.outcome(19, 2, Outcome::Failure("reset script failed".into()));
    // second failure: 20 s
    assert!(h.tick(38).is_empty());
    assert_eq!(
        h.tick(39),
        ["J intent a3 api recreate", "act a3 api recreate"]
    );
    h.outcome(40, 3, Outcome::Failure("x".into()));
    assert!(h.tick(79).is_empty(), "40 s backoff");
    // rollback is high risk: it waits for approval
    assert_eq!(
        h.tick(80),
        [
            "J approval p1 api rollback until t+980.000s",
            "notify approval p1 api rollback"
        ]
    );
}

#[test]
fn ladder_top_escalates_once_and_runs_fallback() {
    let mut t = target("api", "default");
    t.has_fallback = true;
    let mut p = policy("default");
    p.auto_approve_risk = medic_core::Risk::High; // let rollback run without approval
    p.crash_loop.restarts = 10; // the ladder, not crash-loop detection, is under test
    let mut h = Harness::new(vec![t], tiers(vec![p]), EngineConfig::standard(10));
    h.finding(unhealthy("api", 0));
    let mut now = 0;
    let mut seen = vec![];
    for id in 1..=4u64 {
        let lines = loop {
            let l = h.tick(now);
            if !l.is_empty() {
                break l;
            }
            now += 1;
        };
        seen.push(lines[1].clone());
        h.outcome(now, id, Outcome::Failure("no".into()));
    }
    assert_eq!(
        seen,
        [
            "act a1 api restart",
            "act a2 api reset",
            "act a3 api recreate",
            "act a4 api rollback"
        ]
    );
    let lines = loop {
        let l = h.tick(now);
        if !l.is_empty() {
            break l;
        }
        now += 1;
    };
    assert_eq!(
        lines,
        [
            "J escalated api LadderExhausted",
            "escalate api LadderExhausted",
            "J intent a5 api fallback",
            "act a5 api fallback"
        ]
    );
    assert_eq!(
        h.outcome(now + 1, 5, Outcome::Success),
        [
            "J acted a5 success",
            "J degraded api",
            "notify degraded api",
            "J closed a5 success"
        ]
    );
    let v = h.engine.target_view("api").unwrap();
    assert!(v.degraded && v.escalated);
    // held: new findings do nothing
    h.finding(unhealthy("api", now + 2000));
    assert!(h.tick(now + 2000).is_empty());
    // healthy ends the incident; the next failure starts over at restart
    assert_eq!(
        h.finding(healthy("api", now + 2001)),
        ["J resumed api", "J recovered api"]
    );
    h.finding(unhealthy("api", now + 2002));
    assert_eq!(h.tick(now + 2002)[1], "act a6 api restart");
}

#[test]
fn single_flight_newer_finding_updates_never_duplicates() {
    let mut h = one("api");
    h.finding(degraded("api", 0));
    h.finding(unhealthy("api", 1));
    h.finding(unhealthy("api", 2));
    assert_eq!(h.engine.n_queued(), 1);
    assert_eq!(h.tick(2), ["J intent a1 api restart", "act a1 api restart"]);
    h.finding(unhealthy("api", 3));
    assert!(h.tick(3).is_empty(), "in flight");
    assert_eq!(h.engine.n_queued(), 0);
    assert!(h.engine.target_view("api").unwrap().pending_finding);
}

#[test]
fn priority_severity_tier_and_aging() {
    let mut ts = vec![
        target("w", "default"),
        target("c", "default"),
        target("k", "critical"),
        target("late", "default"),
    ];
    ts[0].depends_on = vec![];
    let mut h = Harness::new(
        ts,
        tiers(vec![policy("default"), policy("critical")]),
        EngineConfig::standard(1),
    );
    let mut w = unhealthy("w", 0);
    w.severity = Severity::Warning;
    h.finding(w); // warning since t=0, unhealthy (ttf 0), rank 1 → key 0 + 60 s + 30 s = 90 s
    h.finding(unhealthy("c", 0)); // critical default tier → 0 + 30 s
    h.finding(unhealthy("k", 0)); // critical tier → 0
    assert_eq!(h.tick(0)[1], "act a1 k restart");
    h.outcome(0, 1, Outcome::Skipped("done elsewhere".into()));
    // budget 1 again free
    assert_eq!(h.tick(1)[1], "act a2 c restart");
    h.outcome(1, 2, Outcome::Skipped("done elsewhere".into()));
    // w (key 90 s) vs a critical of the same tier arriving at 61 s (key 61 + 30 = 91 s)
    h.finding(unhealthy("late", 61));
    let l = h.tick(61);
    assert_eq!(
        l[1], "act a3 w restart",
        "aged warning beats newer critical: {l:?}"
    );
}

#[test]
fn priority_predicted_time_to_failure_then_arrival_order() {
    let mut h = Harness::new(
        vec![
            target("far", "default"),
            target("near", "default"),
            target("same", "default"),
        ],
        tiers(vec![policy("default")]),
        EngineConfig::standard(1),
    );
    let predicted = |name: &str, horizon_s: u64| {
        let mut f = healthy(name, 0);
        f.severity = Severity::Warning;
        f.prediction = Some(PredictionFinding {
            probability: 0.95,
            alarm: true,
            horizon_s,
            factors: vec![],
            recommended: Strategy::Restart,
        });
        f
    };
    h.finding(predicted("far", 600));
    h.finding(predicted("near", 60));
    h.finding(predicted("same", 600));
    let mut order = vec![];
    for (k, t) in [0u64, 1, 2].into_iter().enumerate() {
        let l = h.tick(t);
        order.push(l[1].clone());
        h.outcome(t, k as u64 + 1, Outcome::Skipped("test".into()));
    }
    // shorter time to failure first; equal keys keep arrival order (stable)
    assert_eq!(
        order,
        [
            "act a1 near restart",
            "act a2 far restart",
            "act a3 same restart"
        ]
    );
}

#[test]
fn budgets_global_tier_and_group() {
    // global
    let ts: Vec<_> = (0..5)
        .map(|i| target(&format!("t{i}"), "default"))
        .collect();
    let mut h = Harness::new(
        ts,
        tiers(vec![policy("default")]),
        EngineConfig::standard(2),
    );
    for i in 0..5 {
        h.finding(unhealthy(&format!("t{i}"), 0));
    }
    assert_eq!(h.tick(0).len(), 4);
    assert_eq!(h.engine.n_active(), 2);
    assert!(h.tick(1).is_empty());
    h.outcome(2, 1, Outcome::Failure("x".into()));
    assert_eq!(h.tick(3).len(), 2, "one slot freed, one more act");

    // tier
    let mut p = policy("default");
    p.max_concurrent = Some(1);
    let ts: Vec<_> = (0..3)
        .map(|i| target(&format!("t{i}"), "default"))
        .collect();
    let mut h = Harness::new(ts, tiers(vec![p]), EngineConfig::standard(10));
    for i in 0..3 {
        h.finding(unhealthy(&format!("t{i}"), 0));
    }
    assert_eq!(h.tick(0).len(), 2);

    // group of 20 at 10 %: two at once; group of 5: at least one
    let mut p = policy("default");
    p.max_group_unavailable = 0.1;
    let mut ts: Vec<_> = (0..20)
        .map(|i| {
            let mut t = target(&format!("g{i}"), "default");
            t.group = Some("big".into());
            t
        })
        .collect();
    ts.extend((0..5).map(|i| {
        let mut t = target(&format!("s{i}"), "default");
        t.group = Some("small".into());
        t
    }));
    let mut h = Harness::new(ts, tiers(vec![p]), EngineConfig::standard(100));
    for i in 0..20 {
        h.finding(unhealthy(&format!("g{i}"), 0));
    }
    for i in 0..5 {
        h.finding(unhealthy(&format!("s{i}"), 0));
    }
    let acts = h.tick(0).iter().filter(|l| l.starts_with("act")).count();
    assert_eq!(acts, 3);
}

#[test]
fn cooldown_per_target_and_strategy() {
    let mut h = one("api");
    h.finding(unhealthy("api", 0));
    h.tick(0);
    h.outcome(1, 1, Outcome::Success);
    h.tick(6);
    h.verify(7, 1, Outcome::Success);
    h.finding(unhealthy("api", 100));
    assert!(h.tick(100).is_empty());
    assert!(h.tick(299).is_empty(), "restart cooldown 300 s from t=0");
    assert_eq!(
        h.tick(300),
        ["J intent a2 api restart", "act a2 api restart"]
    );
}

#[test]
fn max_attempts_per_window_then_next_rung() {
    let mut p = policy("default");
    p.restart_cooldown = secs(10);
    p.crash_loop.restarts = 100;
    let mut h = Harness::new(
        vec![target("api", "default")],
        tiers(vec![p]),
        EngineConfig::standard(10),
    );
    let mut acts = vec![];
    for (k, t0) in [0u64, 100, 200, 300].into_iter().enumerate() {
        h.finding(unhealthy("api", t0));
        let l = h.tick(t0);
        acts.push(l[1].clone());
        let id = k as u64 + 1;
        h.outcome(t0 + 1, id, Outcome::Success);
        h.tick(t0 + 6);
        h.verify(t0 + 7, id, Outcome::Success);
    }
    assert_eq!(
        acts,
        [
            "act a1 api restart",
            "act a2 api restart",
            "act a3 api restart",
            "act a4 api reset"
        ]
    );
    // after the window the first restart no longer counts
    h.finding(unhealthy("api", 3601));
    assert_eq!(h.tick(3601)[1], "act a5 api restart");
}

#[test]
fn backoff_doubles_and_caps() {
    let mut p = policy("default");
    p.backoff.max = secs(25);
    p.auto_approve_risk = medic_core::Risk::High;
    let mut h = Harness::new(
        vec![target("api", "default")],
        tiers(vec![p]),
        EngineConfig::standard(10),
    );
    h.finding(unhealthy("api", 0));
    h.tick(0);
    h.outcome(0, 1, Outcome::Failure("x".into()));
    assert!(h.tick(9).is_empty());
    assert_eq!(h.tick(10)[1], "act a2 api reset");
    h.outcome(10, 2, Outcome::Failure("x".into()));
    assert!(h.tick(29).is_empty());
    assert_eq!(h.tick(30)[1], "act a3 api recreate");
    h.outcome(30, 3, Outcome::Failure("x".into()));
    assert!(h.tick(54).is_empty(), "40 s capped at 25 s");
    assert_eq!(h.tick(55)[1], "act a4 api rollback");
}

#[test]
fn backoff_resets_after_reset_after_healthy() {
    // A failed restart, a verified reset, then healthy; the next incident's failed restart
    // backs off from the initial delay again (10 s) when it comes 10 min or more after the
    // target became healthy, and doubles on (20 s) when it comes sooner.
    let backoff_after_second_incident = |second: u64| {
        let mut h = one("api");
        h.finding(unhealthy("api", 0));
        h.tick(0);
        h.outcome(1, 1, Outcome::Failure("exit 1".into()));
        assert_eq!(h.tick(11)[1], "act a2 api reset");
        h.outcome(12, 2, Outcome::Success);
        h.tick(17);
        h.verify(18, 2, Outcome::Success);
        h.finding(healthy("api", 20));
        let opened = h.finding(unhealthy("api", second));
        assert_eq!(h.tick(second)[1], "act a3 api restart");
        h.outcome(second + 1, 3, Outcome::Failure("exit 1".into()));
        let t = &h.engine.durable_state().targets[0];
        (opened, t.backoff_until.since(at(second + 1)))
    };
    let (opened, backoff) = backoff_after_second_incident(18 + 600);
    assert_eq!(opened[0], "J backoff-reset api");
    assert_eq!(backoff, secs(10));
    let (opened, backoff) = backoff_after_second_incident(18 + 599);
    assert!(
        !opened.iter().any(|l| l.contains("backoff-reset")),
        "{opened:?}"
    );
    assert_eq!(backoff, secs(20));
}

#[test]
fn backoff_resets_on_a_prediction_of_a_long_healthy_target() {
    let mut h = one("api");
    h.finding(unhealthy("api", 0));
    h.tick(0);
    h.outcome(0, 1, Outcome::Failure("x".into()));
    h.finding(healthy("api", 5));
    // healthy for 10 min, then a prediction makes it actionable while still healthy
    let mut f = healthy("api", 605);
    f.severity = Severity::Warning;
    f.prediction = Some(PredictionFinding {
        probability: 0.9,
        alarm: true,
        horizon_s: 300,
        factors: vec![],
        recommended: Strategy::Restart,
    });
    assert_eq!(h.finding(f)[0], "J backoff-reset api");
}

#[test]
fn crash_loop_gives_up_and_escalates_exactly_once() {
    let mut p = policy("default");
    p.restart_cooldown = secs(1);
    p.max_restart_attempts = 10;
    p.crash_loop.restarts = 3;
    p.crash_loop.window = secs(600);
    let mut h = Harness::new(
        vec![target("api", "default")],
        tiers(vec![p]),
        EngineConfig::standard(10),
    );
    // each restart heals it, then it goes down again: crashes at 0 and 60 are restarted
    for (k, t0) in [0u64, 60].into_iter().enumerate() {
        h.finding(unhealthy("api", t0));
        let l = h.tick(t0);
        assert_eq!(l[1], format!("act a{} api restart", k + 1));
        h.outcome(t0 + 1, k as u64 + 1, Outcome::Success);
        h.tick(t0 + 6);
        h.verify(t0 + 7, k as u64 + 1, Outcome::Success);
    }
    // the third crash within the window is a crash loop
    h.finding(unhealthy("api", 120));
    assert_eq!(
        h.tick(120),
        ["J escalated api GaveUp", "escalate api GaveUp"]
    );
    for t in [121, 200, 5000] {
        h.finding(unhealthy("api", t));
        assert!(h.tick(t).is_empty());
    }
    h.finding(healthy("api", 5001));
    h.finding(unhealthy("api", 5002));
    assert!(
        h.tick(5002).is_empty(),
        "gave up holds through health; only resume ends it"
    );
    assert_eq!(h.engine.stats().escalations, 1);
    assert_eq!(
        h.step(
            5003,
            Event::Resume {
                target: "api".into()
            }
        ),
        ["J resumed api"]
    );
    assert_eq!(
        h.tick(5003)[1],
        "act a3 api restart",
        "resume forgets the crashes"
    );
}

#[test]
fn crash_loop_counts_crashes_not_restarts() {
    // With a 300 s cooldown medic restarts once; the target keeps dying on its own (its
    // supervisor restarts it, probes see it go down again): those crashes count too.
    let mut p = policy("default");
    p.restart_cooldown = secs(300);
    p.crash_loop.restarts = 3;
    p.crash_loop.window = secs(600);
    let mut h = Harness::new(
        vec![target("api", "default")],
        tiers(vec![p]),
        EngineConfig::standard(10),
    );
    h.finding(unhealthy("api", 0));
    assert_eq!(h.tick(0)[1], "act a1 api restart");
    h.outcome(1, 1, Outcome::Success);
    h.tick(6);
    h.verify(7, 1, Outcome::Success);
    h.finding(unhealthy("api", 30));
    assert!(h.tick(30).is_empty(), "restart is cooling down");
    h.finding(healthy("api", 40));
    h.finding(unhealthy("api", 50));
    assert_eq!(
        h.tick(50),
        ["J escalated api GaveUp", "escalate api GaveUp"]
    );
    assert_eq!(h.acts().len(), 1, "one restart by medic, three crashes");
    // the journal says why: three incidents opened by unhealthy findings
    let incidents = h
        .journal
        .iter()
        .filter(|j| matches!(j, JournalEntry::IncidentOpened { .. }))
        .count();
    assert_eq!(incidents, 3);
}

#[test]
fn crash_loop_counts_failed_restarts() {
    // Down and never up again: the first finding and every failed process start are
    // crashes; with 4 in 10 min the engine gives up after restart, reset and recreate
    // failed, before asking for a rollback. It gives up at the failure that makes the 4th
    // crash, not after the backoff that attempt earned (40 s here, 10 s doubling).
    let mut p = policy("default");
    p.crash_loop.restarts = 4;
    p.crash_loop.window = secs(600);
    let mut h = Harness::new(
        vec![target("api", "default")],
        tiers(vec![p]),
        EngineConfig::standard(10),
    );
    h.finding(unhealthy("api", 0));
    let mut lines = vec![];
    for now in 0..300 {
        for l in h.tick(now) {
            if let Some(rest) = l.strip_prefix("act ") {
                let id: u64 = rest.split(' ').next().unwrap()[1..].parse().unwrap();
                h.outcome(now, id, Outcome::Failure("still down".into()));
            }
            if !l.starts_with("J ") {
                lines.push((now, l));
            }
        }
    }
    let what: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        what,
        [
            "act a1 api restart",
            "act a2 api reset",
            "act a3 api recreate",
            "escalate api GaveUp"
        ]
    );
    let (last_attempt, gave_up) = (lines[2].0, lines[3].0);
    assert!(
        gave_up <= last_attempt + 1,
        "gave up {}s after the last attempt: {lines:?}",
        gave_up - last_attempt
    );
    let crashes = &h.engine.durable_state().targets[0].crashes;
    assert_eq!(crashes.len(), 4, "{crashes:?}");
}

#[test]
fn dependency_healed_first_dependents_not_restarted() {
    let mut api = target("api", "default");
    api.depends_on = vec!["db".into()];
    let mut h = Harness::new(
        vec![api, target("db", "default")],
        tiers(vec![policy("default")]),
        EngineConfig::standard(10),
    );
    h.finding(unhealthy("api", 0));
    h.finding(unhealthy("db", 0));
    assert_eq!(h.tick(0), ["J intent a1 db restart", "act a1 db restart"]);
    h.outcome(1, 1, Outcome::Success);
    h.tick(6);
    h.finding(unhealthy("api", 7));
    assert!(h.tick(7).is_empty());
    h.verify(8, 1, Outcome::Success);
    // api's failure was the db's: not restarted on the old finding
    assert!(h.tick(9).is_empty());
    // a fresh finding with db healthy is api's own
    h.finding(unhealthy("api", 10));
    assert_eq!(
        h.tick(10),
        ["J intent a2 api restart", "act a2 api restart"]
    );
}

#[test]
fn a_dependency_that_gave_up_blocks_its_dependents_only_until_it_is_healthy() {
    let mut api = target("api", "default");
    api.depends_on = vec!["db".into()];
    let mut p = policy("default");
    p.crash_loop.restarts = 2;
    let mut h = Harness::new(
        vec![api, target("db", "default")],
        tiers(vec![p]),
        EngineConfig::standard(10),
    );
    // db crash-loops: down, restarted, down again, the restart failed: gave up
    h.finding(unhealthy("db", 0));
    h.tick(0);
    h.outcome(1, 1, Outcome::Failure("exit 1".into()));
    assert_eq!(h.tick(20), ["J escalated db GaveUp", "escalate db GaveUp"]);
    // while db is down, api's failure is db's
    h.finding(unhealthy("api", 30));
    assert!(h.tick(30).is_empty());
    // a human fixes db; the engine still holds it (only a resume ends that), but api's
    // next failure is its own and is healed
    h.finding(healthy("db", 1800));
    h.finding(unhealthy("api", 1810));
    assert_eq!(
        h.tick(1810),
        ["J intent a2 api restart", "act a2 api restart"]
    );
    assert!(h.engine.target_view("db").unwrap().gave_up);
}

#[test]
fn maintenance_records_findings_and_acts_after_expiry_or_clear() {
    let mut h = Harness::new(
        vec![target("a", "default"), target("b", "other")],
        tiers(vec![policy("default"), policy("other")]),
        EngineConfig::standard(10),
    );
    assert_eq!(
        h.step(
            0,
            Event::Maintenance {
                scope: MaintenanceScope::Tier("default".into()),
                until: Some(at(100)),
            }
        ),
        ["J maintenance Tier(\"default\") Some(t+100.000s)"]
    );
    h.step(
        0,
        Event::Maintenance {
            scope: MaintenanceScope::Target("b".into()),
            until: Some(at(1000)),
        },
    );
    h.finding(unhealthy("a", 10));
    h.finding(unhealthy("b", 10));
    assert!(h.tick(10).is_empty());
    assert!(h.tick(99).is_empty());
    assert_eq!(h.engine.stats().findings_in_maintenance, 2);
    assert_eq!(h.tick(100), ["J intent a1 a restart", "act a1 a restart"]);
    h.step(
        200,
        Event::Maintenance {
            scope: MaintenanceScope::Target("b".into()),
            until: None,
        },
    );
    assert_eq!(h.tick(200), ["J intent a2 b restart", "act a2 b restart"]);
}

#[test]
fn approvals_wait_then_run_or_escalate() {
    let mut h = one("api");
    let mut f = unhealthy("api", 0);
    f.version_changed_at = Some(at(0));
    h.finding(f.clone());
    assert_eq!(
        h.tick(60),
        [
            "J approval p1 api rollback until t+960.000s",
            "notify approval p1 api rollback"
        ]
    );
    assert!(h.tick(61).is_empty(), "waiting");
    assert_eq!(
        h.step(
            70,
            Event::Approval {
                approval: ApprovalId(1),
                decision: Decision::Approve
            }
        ),
        ["J decided p1 approve"]
    );
    assert_eq!(
        h.tick(71),
        ["J intent a1 api rollback", "act a1 api rollback"]
    );

    // timeout → escalate
    let mut h = one("api");
    h.finding(f.clone());
    h.tick(0);
    assert!(h.tick(899).is_empty());
    assert_eq!(
        h.tick(900),
        [
            "J escalated api ApprovalTimedOut",
            "escalate api ApprovalTimedOut"
        ]
    );
    // deny → nothing runs, late approvals are stale
    let mut h = one("api");
    h.finding(f);
    h.tick(0);
    h.step(
        5,
        Event::Approval {
            approval: ApprovalId(1),
            decision: Decision::Deny,
        },
    );
    assert!(h.tick(6).is_empty());
    assert!(
        h.step(
            7,
            Event::Approval {
                approval: ApprovalId(1),
                decision: Decision::Approve
            }
        )
        .is_empty()
    );
}

#[test]
fn an_approval_is_withdrawn_when_the_target_recovers() {
    // A rollback waits for approval; the target heals on its own. A late "approve" must not
    // roll back a healthy service, and the deadline must not page anyone.
    let mut h = one("api");
    let mut f = unhealthy("api", 0);
    f.version_changed_at = Some(at(0));
    h.finding(f);
    assert_eq!(h.tick(60)[0], "J approval p1 api rollback until t+960.000s");
    assert_eq!(
        h.finding(healthy("api", 120)),
        ["J withdrawn p1 api", "J recovered api"]
    );
    let mut e = h.recovered();
    assert_eq!(e.durable_state(), h.engine.durable_state());
    assert_eq!(e.durable_state().targets[0].approval, None);
    let approve = Event::Approval {
        approval: ApprovalId(1),
        decision: Decision::Approve,
    };
    assert!(step_both(&mut h, &mut e, 130, approve).is_empty());
    assert!(step_both(&mut h, &mut e, 131, Event::Tick).is_empty());
    assert!(step_both(&mut h, &mut e, 960, Event::Tick).is_empty());
    // the next failure is a new incident that asks again
    let mut f = unhealthy("api", 1000);
    f.version_changed_at = Some(at(1000));
    h.finding(f);
    assert_eq!(
        h.tick(1000)[0],
        "J approval p2 api rollback until t+1900.000s"
    );
}

#[test]
fn scale_uses_hpa_rule_with_backup_instances() {
    let mut p = policy("critical");
    p.backup_instances = 1;
    let mut h = Harness::new(
        vec![target("api", "critical")],
        tiers(vec![p]),
        EngineConfig::standard(10),
    );
    let mut f = degraded("api", 0);
    f.utilization = Some(1.2); // 2 × 1.2 / 0.8 = 3, + 1 backup
    h.finding(f);
    assert_eq!(
        h.tick(0),
        ["J intent a1 api scale x4", "act a1 api scale x4"]
    );
    h.outcome(1, 1, Outcome::Success);
    assert_eq!(h.engine.target_view("api").unwrap().replicas, 4);
}

#[test]
fn a_scale_that_heals_never_removes_replicas() {
    // A failure predicted on a lightly loaded target of a preemptive-scaling tier: the HPA
    // rule alone would go from 4 to 2 (4 × 0.3 / 0.8 → 2), removing capacity from the target
    // about to fail; the preemptive scale adds one (plus backups) instead.
    let mut p = policy("critical");
    p.preemptive_scaling = true;
    p.backup_instances = 1;
    let mut t = target("api", "critical");
    t.replicas.initial = 4;
    let mut h = Harness::new(vec![t], tiers(vec![p]), EngineConfig::standard(10));
    let mut f = healthy("api", 0);
    f.severity = Severity::Warning;
    f.utilization = Some(0.3);
    f.prediction = Some(PredictionFinding {
        probability: 0.9,
        alarm: true,
        horizon_s: 600,
        factors: vec![],
        recommended: Strategy::Scale,
    });
    h.finding(f);
    assert_eq!(
        h.tick(0),
        ["J intent a1 api scale x6", "act a1 api scale x6"]
    );
}

#[test]
fn a_failing_target_whose_options_used_their_attempts_is_escalated_and_degraded() {
    // Scaled once (the one attempt the window allows); saturated again within the window:
    // no option has an attempt left, so a human is called and the fallback degrades the
    // target meanwhile (before, the plan was "observe" and nobody was told).
    let mut p = policy("default");
    p.max_restart_attempts = 1;
    let mut t = target("api", "default");
    t.has_fallback = true;
    let mut h = Harness::new(vec![t], tiers(vec![p]), EngineConfig::standard(10));
    let saturated = |at: u64| {
        let mut f = degraded("api", at);
        f.utilization = Some(1.2);
        f
    };
    h.finding(saturated(0));
    assert_eq!(h.tick(0)[1], "act a1 api scale x3");
    h.outcome(1, 1, Outcome::Success);
    h.tick(6);
    h.verify(7, 1, Outcome::Success);
    h.finding(healthy("api", 8));
    h.finding(saturated(100));
    assert_eq!(
        h.tick(100),
        [
            "J escalated api LadderExhausted",
            "escalate api LadderExhausted",
            "J intent a2 api fallback",
            "act a2 api fallback"
        ]
    );
}

#[test]
fn scale_down_waits_for_the_stabilisation_window() {
    let mut h = one("api");
    let mut f = degraded("api", 0);
    f.utilization = Some(1.2); // 2 × 1.2 / 0.8 = 3
    h.finding(f);
    assert_eq!(h.tick(0)[1], "act a1 api scale x3");
    h.outcome(1, 1, Outcome::Success);
    h.tick(6);
    h.verify(7, 1, Outcome::Success);
    let quiet = |t: u64| {
        let mut f = healthy("api", t);
        f.utilization = Some(0.2); // 3 × 0.2 / 0.8 → 1
        f
    };
    // within 300 s of the scale-up recommendation the highest one (3) holds
    h.finding(quiet(100));
    assert!(h.tick(100).is_empty());
    h.finding(quiet(301));
    assert_eq!(
        h.tick(301),
        ["J intent a2 api scale x1", "act a2 api scale x1"]
    );
    h.outcome(302, 2, Outcome::Success);
    assert_eq!(h.engine.target_view("api").unwrap().replicas, 1);
    // at min replicas a quiet target is left alone
    h.tick(307);
    h.verify(308, 2, Outcome::Success);
    h.finding(quiet(700));
    assert!(h.tick(700).is_empty());
}

#[test]
fn circuit_breaker_open_half_open_closed() {
    let mut h = one("api");
    let mut f = degraded("api", 0);
    f.error_rate = Some(0.7);
    h.finding(f);
    assert_eq!(h.tick(0)[1], "act a1 api circuit_break");
    assert_eq!(
        h.outcome(1, 1, Outcome::Success),
        [
            "J acted a1 success",
            "J breaker api Open { until: t+61.000s }",
            "circuit api Open { until: t+61.000s }"
        ]
    );
    assert!(h.tick(60).is_empty());
    assert_eq!(
        h.tick(61),
        [
            "J breaker api HalfOpen",
            "circuit api HalfOpen",
            "verify a1 api by t+121.000s"
        ]
    );
    assert_eq!(
        h.verify(62, 1, Outcome::Failure("errors".into())),
        [
            "J verified a1 failure",
            "J breaker api Open { until: t+122.000s }",
            "circuit api Open { until: t+122.000s }"
        ]
    );
    assert_eq!(h.tick(122).len(), 3);
    assert_eq!(
        h.verify(123, 1, Outcome::Success),
        [
            "J verified a1 success",
            "J breaker api Closed",
            "circuit api Closed",
            "J closed a1 success"
        ]
    );
}

#[test]
fn recover_keeps_the_failed_half_open_probes() {
    // max_restart_attempts 3: the third failed probe closes the circuit-break as failed,
    // whether or not medic restarted in between.
    let mut h = one("api");
    let mut f = degraded("api", 0);
    f.error_rate = Some(0.7);
    h.finding(f);
    assert_eq!(h.tick(0)[1], "act a1 api circuit_break");
    h.outcome(1, 1, Outcome::Success);
    let mut now = 2;
    let mut probes = 0;
    while probes < 2 {
        for l in h.tick(now) {
            if l.starts_with("verify a1") {
                probes += 1;
                h.verify(now, 1, Outcome::Failure("errors".into()));
            }
        }
        now += 1;
    }
    let e = h.recovered();
    assert_eq!(e.durable_state(), h.engine.durable_state());
    assert_eq!(e.durable_state().targets[0].half_open_failures, 2);
    // the recovered engine needs exactly one more failed probe
    let mut e = e;
    let mut out = vec![];
    let mut closed_after = None;
    for t in now..now + 400 {
        out.clear();
        e.step(at(t), Event::Tick, &mut out);
        let verify = out.iter().any(|c| matches!(c, Command::Verify { .. }));
        if verify {
            probes += 1;
            out.clear();
            e.step(
                at(t),
                Event::VerifyResult {
                    action: ActionId(1),
                    outcome: Outcome::Failure("errors".into()),
                },
                &mut out,
            );
            if out.iter().any(|c| {
                matches!(
                    c,
                    Command::Journal(JournalEntry::Closed {
                        result: medic_strategy::AttemptResult::Failure,
                        ..
                    })
                )
            }) {
                closed_after = Some(probes);
                break;
            }
        }
    }
    assert_eq!(closed_after, Some(3));
}

#[test]
fn repair_needs_a_repair_action() {
    let config_finding = |t: u64| {
        let mut f = unhealthy("api", t);
        f.diagnosis = Some(medic_core::DiagnosisFinding {
            category: medic_core::DiagnosisCategory::Configuration,
            confidence: 0.9,
            pattern_id: Some("bad-port".into()),
            evidence: vec![],
        });
        f
    };
    let mut p = policy("default");
    p.auto_approve_risk = medic_core::Risk::High;
    p.confidence_threshold = 0.0;
    // with a repair action, a configuration diagnosis is repaired
    let mut with = target("api", "default");
    with.actions = Some(vec![Strategy::Restart, Strategy::Repair]);
    let mut h = Harness::new(
        vec![with],
        tiers(vec![p.clone()]),
        EngineConfig::standard(10),
    );
    let l = h.finding(config_finding(0));
    assert_eq!(
        l,
        [
            "J incident api: unhealthy (critical); failing liveness; diagnosis configuration (0.90, pattern bad-port)"
        ]
    );
    assert_eq!(h.tick(0)[1], "act a1 api repair");
    // without one, the engine moves on and never sends an act that cannot run
    let mut without = target("api", "default");
    without.actions = Some(vec![Strategy::Restart]);
    let mut h = Harness::new(vec![without], tiers(vec![p]), EngineConfig::standard(10));
    h.finding(config_finding(0));
    assert_eq!(h.tick(0)[1], "act a1 api restart");
    h.outcome(1, 1, Outcome::Failure("still".into()));
    // restart failed; reset, recreate and rollback have no action: the ladder ends
    assert_eq!(
        h.tick(11),
        [
            "J escalated api LadderExhausted",
            "escalate api LadderExhausted"
        ]
    );
    assert!(h.engine.stats().not_executable > 0);
    assert!(
        h.acts()
            .iter()
            .all(|(_, a)| a.kind != ActKind::Heal(Strategy::Repair))
    );
}

#[test]
fn the_finding_behind_an_action_survives_a_crash_in_the_journal() {
    let mut h = one("api");
    let mut f = unhealthy("api", 0);
    f.memory_ratio = Some(0.97);
    h.finding(f);
    h.tick(0);
    // kill -9 here: the driver persisted the journal as JSON lines
    let lines: Vec<String> = h
        .journal
        .iter()
        .map(|j| serde_json::to_string(j).unwrap())
        .collect();
    let journal: Vec<JournalEntry> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    match &journal[..] {
        [
            JournalEntry::IncidentOpened {
                target, summary, ..
            },
            JournalEntry::Intent { reason, .. },
        ] => {
            assert_eq!(target.as_str(), "api");
            assert_eq!(
                summary,
                "unhealthy (critical); failing liveness; memory 97%"
            );
            assert_eq!(reason, "unresponsive: liveness failing");
        }
        other => panic!("{other:?}"),
    }
    let e = Engine::recover(
        h.targets.clone(),
        h.tiers.clone(),
        h.config.clone(),
        journal,
    )
    .unwrap();
    assert_eq!(e.durable_state(), h.engine.durable_state());
    assert_eq!(e.durable_state().targets[0].crashes, [at(0)]);
}

#[test]
fn recover_during_a_half_open_probe_probes_again() {
    let mut h = one("api");
    let mut f = degraded("api", 0);
    f.error_rate = Some(0.7);
    h.finding(f);
    h.tick(0);
    h.outcome(1, 1, Outcome::Success);
    assert_eq!(h.tick(61)[2], "verify a1 api by t+121.000s");
    // medic restarts before the probe answers
    let mut e = h.recovered();
    assert_eq!(e.durable_state(), h.engine.durable_state());
    let mut out = vec![];
    e.step(at(70), Event::Tick, &mut out);
    let lines: Vec<String> = out.iter().map(fmt).collect();
    assert_eq!(lines, ["verify a1 api by t+130.000s"]);
    out.clear();
    e.step(
        at(71),
        Event::VerifyResult {
            action: ActionId(1),
            outcome: Outcome::Success,
        },
        &mut out,
    );
    let lines: Vec<String> = out.iter().map(fmt).collect();
    assert_eq!(
        lines,
        [
            "J verified a1 success",
            "J breaker api Closed",
            "circuit api Closed",
            "J closed a1 success"
        ]
    );
}

#[test]
fn dry_run_same_decisions_nothing_executed() {
    let mut cfg = EngineConfig::standard(10);
    cfg.mode = RunMode::DryRun;
    let mut h = Harness::new(
        vec![target("api", "default")],
        tiers(vec![policy("default")]),
        cfg,
    );
    h.finding(unhealthy("api", 0));
    assert_eq!(
        h.tick(0),
        [
            "J intent a1 api restart",
            "act a1 api restart dry",
            "J closed a1 skipped"
        ]
    );
    assert!(
        h.finding(unhealthy("api", 10)).is_empty(),
        "nothing was done: still the same incident, not a new crash"
    );
    assert!(h.tick(10).is_empty(), "cooldown holds in dry run too");
    assert_eq!(h.tick(300)[1], "act a2 api restart dry");
}

fn dry_run(policy: medic_policy::TierPolicy) -> Harness {
    let mut cfg = EngineConfig::standard(10);
    cfg.mode = RunMode::DryRun;
    Harness::new(vec![target("api", "default")], tiers(vec![policy]), cfg)
}

#[test]
fn dry_run_never_pretends_restarts_happened() {
    // A target that stays down for two hours, probed every 10 s. A live run would restart,
    // see it fail and climb the ladder; a dry run knows nothing failed (nothing ran), so it
    // keeps planning the restart, once per cooldown: no attempt limit used up, no ladder, no
    // backoff, one incident and one crash, no give-up, no escalation.
    let mut p = policy("default");
    p.crash_loop.restarts = 2; // one pretended crash more would give up
    let mut h = dry_run(p);
    let mut acts = vec![];
    for now in 0..7200u64 {
        if now % 10 == 0 {
            h.finding(unhealthy("api", now));
        }
        for l in h.tick(now) {
            if l.starts_with("act ") {
                acts.push((now, l));
            }
        }
    }
    let expected: Vec<(u64, String)> = (0..24u64)
        .map(|k| (k * 300, format!("act a{} api restart dry", k + 1)))
        .collect();
    assert_eq!(acts, expected);
    let incidents = h
        .journal
        .iter()
        .filter(|j| matches!(j, JournalEntry::IncidentOpened { .. }))
        .count();
    assert_eq!(incidents, 1);
    let s = h.engine.stats();
    assert_eq!((s.escalations, s.gave_up, s.failures), (0, 0, 0));
    let d = &h.engine.durable_state().targets[0];
    assert_eq!(d.crashes, [at(0)]);
    assert_eq!(
        (d.failures, d.backoff_until),
        (0, medic_core::Timestamp::ZERO)
    );
    assert!(d.incident_open && !d.gave_up && !d.escalated);
}

#[test]
fn dry_run_gives_up_on_a_crash_loop_of_real_crashes_once() {
    // The target goes down, comes back and goes down again on its own: those are real
    // crashes (each a new incident), which a live run counts too. With 3 in 10 min the dry
    // run gives up at its next dispatch and escalates once, whatever follows.
    let mut p = policy("default");
    p.crash_loop.restarts = 3;
    let mut h = dry_run(p);
    h.finding(unhealthy("api", 0));
    assert_eq!(h.tick(0)[1], "act a1 api restart dry");
    h.finding(healthy("api", 20));
    assert_eq!(h.finding(unhealthy("api", 40)).len(), 1, "a new incident");
    assert!(h.tick(40).is_empty(), "restart cooling down until 300");
    h.finding(healthy("api", 60));
    h.finding(unhealthy("api", 80));
    let mut lines = vec![];
    for now in 81..2000u64 {
        if now % 40 == 0 {
            h.finding(healthy("api", now));
        } else if now % 20 == 0 {
            h.finding(unhealthy("api", now));
        }
        lines.extend(h.tick(now).into_iter().map(|l| format!("{now} {l}")));
    }
    // the third crash (at 80) gives up at the next tick, before any cooldown matters
    assert_eq!(
        lines,
        ["81 J escalated api GaveUp", "81 escalate api GaveUp"]
    );
    assert_eq!(h.engine.stats().escalations, 1);
}

#[test]
fn dry_run_decides_what_a_live_run_decides_from_the_same_journal() {
    // Live: the restart ran and failed its verification. A dry-run engine recovered from that
    // journal makes the decisions the live engine makes next (backoff, then the next rung),
    // only marked not executed.
    let mut h = one("api");
    h.finding(unhealthy("api", 0));
    h.tick(0);
    h.outcome(1, 1, Outcome::Success);
    h.tick(6);
    h.verify(7, 1, Outcome::Failure("still down".into()));
    let mut cfg = EngineConfig::standard(10);
    cfg.mode = RunMode::DryRun;
    let mut dry =
        Engine::recover(h.targets.clone(), h.tiers.clone(), cfg, h.journal.clone()).unwrap();
    let mut live_acts = vec![];
    let mut dry_acts = vec![];
    for now in 8..40u64 {
        let mut events = vec![Event::Tick];
        if now % 10 == 0 {
            events.insert(0, Event::Finding(unhealthy("api", now)));
        }
        for ev in events {
            let mut out = vec![];
            dry.step(at(now), ev.clone(), &mut out);
            dry_acts.extend(out.iter().filter(|c| matches!(c, Command::Act(_))).map(fmt));
            live_acts.extend(
                h.step(now, ev)
                    .into_iter()
                    .filter(|l| l.starts_with("act ")),
            );
        }
    }
    assert_eq!(live_acts, ["act a2 api reset"]);
    assert_eq!(dry_acts, ["act a2 api reset dry"]);
}

/// Steps the live harness and an engine recovered from its journal with the same event;
/// both must say the same and keep the same durable state.
fn step_both(h: &mut Harness, e: &mut Engine, t: u64, ev: Event) -> Vec<String> {
    let mut out = vec![];
    e.step(at(t), ev.clone(), &mut out);
    let recovered: Vec<String> = out.iter().map(fmt).collect();
    let live = h.step(t, ev);
    assert_eq!(recovered, live, "at {t}");
    assert_eq!(e.durable_state(), h.engine.durable_state(), "at {t}");
    live
}

#[test]
fn recovery_does_not_reopen_an_open_incident() {
    let mut p = policy("default");
    p.crash_loop.restarts = 3;
    let mut h = Harness::new(
        vec![target("api", "default")],
        tiers(vec![p]),
        EngineConfig::standard(10),
    );
    h.finding(unhealthy("api", 0));
    h.tick(0);
    h.outcome(1, 1, Outcome::Success);
    h.tick(6);
    h.verify(7, 1, Outcome::Failure("still down".into()));
    // medic restarts here, while the incident is open and the target backs off until 17
    let mut e = h.recovered();
    assert_eq!(e.durable_state(), h.engine.durable_state());
    assert!(e.durable_state().targets[0].incident_open);
    // the same events to both: the next finding of the open incident is not journaled
    // again (nor counted as a third crash, which would give up at once)
    assert!(step_both(&mut h, &mut e, 10, Event::Finding(unhealthy("api", 10))).is_empty());
    assert!(step_both(&mut h, &mut e, 16, Event::Tick).is_empty());
    assert_eq!(
        step_both(&mut h, &mut e, 17, Event::Tick),
        ["J intent a2 api reset", "act a2 api reset"]
    );
    let opened = |j: &[JournalEntry]| {
        j.iter()
            .filter(|j| matches!(j, JournalEntry::IncidentOpened { .. }))
            .count()
    };
    assert_eq!(opened(&h.journal), 1);
    assert_eq!(e.durable_state().targets[0].crashes, [at(0), at(7)]);
    // replaying the journal, including what the recovered engine went on to write, into a
    // fresh engine gives the same state again
    assert_eq!(h.recovered().durable_state(), e.durable_state());
    // the reset heals it; a later failure is a new incident, in both engines alike
    step_both(&mut h, &mut e, 18, act_ok(2));
    step_both(&mut h, &mut e, 23, Event::Tick);
    step_both(&mut h, &mut e, 24, verified(2, Outcome::Success));
    assert!(!e.durable_state().targets[0].incident_open);
    assert_eq!(
        step_both(&mut h, &mut e, 500, Event::Finding(unhealthy("api", 500))),
        ["J incident api: unhealthy (critical); failing liveness"]
    );
    assert_eq!(opened(&h.journal), 2);
}

#[test]
fn recovery_then_health_ends_the_incident() {
    // The journal says the incident is open; the first finding after the restart decides:
    // healthy ends it, so the next failure is a new incident (and a crash).
    let mut h = one("api");
    h.finding(unhealthy("api", 0));
    h.tick(0);
    h.outcome(1, 1, Outcome::Failure("exit 1".into()));
    let mut e = h.recovered();
    let mut out = vec![];
    e.step(at(20), Event::Finding(healthy("api", 20)), &mut out);
    e.step(at(30), Event::Finding(unhealthy("api", 30)), &mut out);
    let lines: Vec<String> = out.iter().map(fmt).collect();
    assert_eq!(
        lines,
        [
            "J recovered api",
            "J incident api: unhealthy (critical); failing liveness"
        ]
    );
    assert_eq!(e.durable_state().targets[0].crashes, [at(0), at(1), at(30)]);
}

#[test]
fn health_seen_before_a_restart_of_medic_ends_the_incident_for_the_recovered_engine() {
    // Seen healthy, then medic restarts, then the target fails with no finding in between
    // on the new engine's side: the journal says the incident ended, so this is a new one
    // (and a new crash), as it is for an engine that never restarted.
    let mut h = one("api");
    h.finding(unhealthy("api", 0));
    h.tick(0);
    h.outcome(1, 1, Outcome::Failure("exit 1".into()));
    assert_eq!(h.finding(healthy("api", 20)), ["J recovered api"]);
    // once per incident
    assert!(h.finding(healthy("api", 21)).is_empty());
    let mut e = h.recovered();
    assert!(!e.durable_state().targets[0].incident_open);
    assert_eq!(e.durable_state(), h.engine.durable_state());
    let lines = step_both(&mut h, &mut e, 30, Event::Finding(unhealthy("api", 30)));
    assert_eq!(
        lines,
        ["J incident api: unhealthy (critical); failing liveness"]
    );
    assert_eq!(e.durable_state().targets[0].crashes, [at(0), at(1), at(30)]);
}

#[test]
fn health_seen_during_an_action_ends_the_incident_when_the_action_closes() {
    // The verification fails while the target already reports healthy: the action's close
    // ends the incident, so the next failure is a new one.
    let mut h = one("api");
    h.finding(unhealthy("api", 0));
    h.tick(0);
    h.outcome(1, 1, Outcome::Success);
    assert!(h.finding(healthy("api", 3)).is_empty());
    h.tick(6);
    let closed = h.verify(7, 1, Outcome::Failure("still down".into()));
    assert_eq!(closed.last().map(String::as_str), Some("J recovered api"));
    assert!(!h.engine.durable_state().targets[0].incident_open);
}

fn act_ok(action: u64) -> Event {
    Event::ActionOutcome {
        action: ActionId(action),
        outcome: Outcome::Success,
    }
}

fn verified(action: u64, outcome: Outcome) -> Event {
    Event::VerifyResult {
        action: ActionId(action),
        outcome,
    }
}

#[test]
fn recover_verifies_unfinished_and_never_repeats_finished() {
    let mut h = Harness::new(
        vec![target("a", "default"), target("b", "default")],
        tiers(vec![policy("default")]),
        EngineConfig::standard(10),
    );
    h.finding(unhealthy("a", 0));
    h.finding(unhealthy("b", 0));
    h.tick(0); // a1 = a, a2 = b
    h.outcome(1, 1, Outcome::Success);
    h.tick(6);
    h.verify(7, 1, Outcome::Success); // a finished
    // crash: b's act has an intent but no outcome
    let mut e = h.recovered();
    assert_eq!(e.durable_state(), h.engine.durable_state());
    let mut out = vec![];
    e.step(at(8), Event::Tick, &mut out);
    let lines: Vec<String> = out.iter().map(fmt).collect();
    assert_eq!(lines, ["verify a2 b by t+68.000s"]);
    // a new finding for a within cooldown is not acted on: the finished restart counts
    e.step(at(9), Event::Finding(unhealthy("a", 9)), &mut out);
    out.clear();
    e.step(at(10), Event::Tick, &mut out);
    assert!(out.is_empty());
    // ids continue after the journal's
    e.step(
        at(11),
        Event::VerifyResult {
            action: ActionId(2),
            outcome: Outcome::Failure("x".into()),
        },
        &mut out,
    );
    // findings are not journaled: detection sends fresh ones after a restart
    e.step(at(12), Event::Finding(unhealthy("b", 12)), &mut out);
    out.clear();
    e.step(at(30), Event::Tick, &mut out);
    let lines: Vec<String> = out.iter().map(fmt).collect();
    assert_eq!(lines, ["J intent a3 b reset", "act a3 b reset"]);
}

#[test]
fn recover_keeps_an_approval_given_before_the_restart() {
    let mut h = one("api");
    let mut f = unhealthy("api", 0);
    f.version_changed_at = Some(at(0));
    h.finding(f);
    h.tick(0);
    h.step(
        5,
        Event::Approval {
            approval: ApprovalId(1),
            decision: Decision::Approve,
        },
    );
    // crash before the approved rollback was dispatched
    let mut e = h.recovered();
    assert_eq!(e.durable_state(), h.engine.durable_state());
    let mut out = vec![];
    e.step(at(6), Event::Tick, &mut out);
    let lines: Vec<String> = out.iter().map(fmt).collect();
    assert_eq!(lines, ["J intent a1 api rollback", "act a1 api rollback"]);
}

#[test]
fn bad_input_is_counted_not_fatal() {
    let mut h = one("api");
    h.finding(unhealthy("nobody", 0));
    h.outcome(1, 99, Outcome::Success);
    h.step(
        2,
        Event::Resume {
            target: "ghost".into(),
        },
    );
    h.step(
        2,
        Event::Maintenance {
            scope: MaintenanceScope::Tier("nope".into()),
            until: None,
        },
    );
    let s = h.engine.stats();
    assert_eq!((s.unknown_targets, s.stale_events), (1, 3));
    // invalid fleets are refused with a clear error
    let mut a = target("a", "default");
    a.depends_on = vec!["b".into()];
    let mut b = target("b", "default");
    b.depends_on = vec!["a".into()];
    let err = Engine::new(
        vec![a, b],
        tiers(vec![policy("default")]),
        EngineConfig::standard(1),
    )
    .err()
    .unwrap();
    assert_eq!(err.to_string(), "dependency cycle through target a");
    let err = Engine::new(
        vec![target("a", "gold")],
        tiers(vec![policy("default")]),
        EngineConfig::standard(1),
    )
    .err()
    .unwrap();
    assert_eq!(err.to_string(), "target a has unknown tier gold");
}

#[test]
fn runs_with_the_builtin_default_policy() {
    let p = medic_policy::TierPolicy::builtin_default();
    let mut h = Harness::new(
        vec![target("api", &p.name)],
        tiers(vec![p]),
        EngineConfig::standard(10),
    );
    h.finding(unhealthy("api", 0));
    // The shipped `unresponsive` rule (confidence 0.95, low risk) clears the default
    // confidence_threshold (0.85) and auto-approve risk, so a plain restart runs unattended.
    assert_eq!(h.tick(0), ["J intent a1 api restart", "act a1 api restart"]);
    // Raising the threshold above the rule's confidence sends the same restart to a human.
    let mut p = medic_policy::TierPolicy::builtin_default();
    p.confidence_threshold = 0.99;
    let mut h = Harness::new(
        vec![target("api", &p.name)],
        tiers(vec![p]),
        EngineConfig::standard(10),
    );
    h.finding(unhealthy("api", 0));
    assert_eq!(
        h.tick(0),
        [
            "J approval p1 api restart until t+900.000s",
            "notify approval p1 api restart"
        ]
    );
}
