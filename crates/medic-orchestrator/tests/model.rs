//! Model-based test, in the spirit of Vector's disk buffer model tests: a small reference
//! model of the rules for one target (ladder, cooldown, attempts per window, backoff, crash
//! loop counted in crashes, verification timing, escalation holds, backoff reset after
//! `reset_after` healthy), written independently of the engine, is run
//! side by side with the engine on random events; after every step both must have issued the
//! same acts, verifications and escalations.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use medic_core::{Outcome, Risk, Strategy, Timestamp};
use medic_orchestrator::*;
use proptest::prelude::{ProptestConfig, TestCaseError, prop_assert_eq, prop_oneof, proptest};
use proptest::strategy::Strategy as _;

#[derive(Clone, Copy, Debug)]
struct Params {
    cooldown: u64,
    max_attempts: u32,
    crash_restarts: u32,
    crash_window: u64,
    window: u64,
    backoff_initial: u64,
    backoff_max: u64,
    verify_deadline: u64,
}

#[derive(Clone, Debug)]
enum Op {
    Unhealthy,
    Healthy,
    Advance(u64),
    ActOk,
    ActFail,
    VerifyOk,
    VerifyFail,
    Resume,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Acting,
    Waiting(Timestamp),
    Verifying(Timestamp),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Res {
    Pending,
    Ok,
    Fail,
    Unknown,
}

#[derive(Debug)]
struct Model {
    p: Params,
    finding: bool,
    inflight: Option<(u64, Strategy, Phase)>,
    attempts: Vec<(Timestamp, Strategy, Res)>,
    incident_start: Timestamp,
    failures: u32,
    backoff_until: Timestamp,
    held: bool,
    gave_up: bool,
    next_id: u64,
    /// When the target went down: an unhealthy finding opening an incident, or a failed
    /// process-starting action.
    crashes: Vec<Timestamp>,
    /// Healthy since (a healthy finding or a verified heal; an unhealthy finding ends it).
    healthy_since: Option<Timestamp>,
}

const STARTUP: u64 = 5;
/// The default policy's `backoff.reset_after`.
const RESET_AFTER: u64 = 600;

impl Model {
    fn delay(&self) -> Duration {
        let mut d = self.p.backoff_initial;
        for _ in 1..self.failures {
            d = (d * 2).min(self.p.backoff_max);
        }
        secs(d.min(self.p.backoff_max))
    }

    fn close(&mut self, now: Timestamp, res: Res) {
        let (_, s, _) = self.inflight.take().unwrap();
        let a = self
            .attempts
            .iter_mut()
            .rev()
            .find(|a| a.1 == s && a.2 == Res::Pending)
            .unwrap();
        a.2 = res;
        if res == Res::Fail {
            self.failures += 1;
            self.backoff_until = now + self.delay();
            if matches!(
                s,
                Strategy::Restart | Strategy::Reset | Strategy::Recreate | Strategy::Rollback
            ) {
                self.crashes.push(now);
            }
        }
    }

    fn failed_in_incident(&self, s: Strategy, now: Timestamp) -> bool {
        let since = (now - secs(self.p.window)).max(self.incident_start);
        for a in self.attempts.iter().rev() {
            if a.0 < since || a.2 == Res::Ok {
                return false;
            }
            if a.1 == s && a.2 == Res::Fail {
                return true;
            }
        }
        false
    }

    fn count(&self, pred: impl Fn(Strategy) -> bool, since: Timestamp) -> u32 {
        self.attempts
            .iter()
            .filter(|a| a.0 >= since && pred(a.1))
            .count() as u32
    }

    /// Applies one op at `now`; returns the expected non-journal commands.
    fn step(&mut self, now: Timestamp, op: &Op) -> Vec<String> {
        let mut out = vec![];
        if matches!(op, Op::Unhealthy | Op::Healthy)
            && self.failures > 0
            && self
                .healthy_since
                .is_some_and(|h| now >= h + secs(RESET_AFTER))
        {
            self.failures = 0;
            self.backoff_until = Timestamp::ZERO;
        }
        match op {
            Op::Unhealthy => {
                self.healthy_since = None;
                if !self.finding && self.inflight.is_none() && !self.held && !self.gave_up {
                    self.crashes.push(now);
                }
                self.finding = true;
            }
            Op::Healthy => {
                self.finding = false;
                self.healthy_since.get_or_insert(now);
                if self.held_escalated() {
                    self.held = false;
                    self.incident_start = now;
                    self.crashes.clear();
                }
            }
            Op::ActOk => {
                if let Some((id, s, Phase::Acting)) = self.inflight {
                    self.inflight = Some((id, s, Phase::Waiting(now + secs(STARTUP))));
                }
            }
            Op::ActFail => {
                if let Some((_, _, Phase::Acting)) = self.inflight {
                    self.close(now, Res::Fail);
                }
            }
            Op::VerifyOk => {
                if let Some((_, _, Phase::Verifying(_))) = self.inflight {
                    self.close(now, Res::Ok);
                    self.finding = false;
                    self.healthy_since.get_or_insert(now);
                }
            }
            Op::VerifyFail => {
                if let Some((_, _, Phase::Verifying(_))) = self.inflight {
                    self.close(now, Res::Fail);
                }
            }
            Op::Resume => {
                if self.held || self.gave_up {
                    self.held = false;
                    self.gave_up = false;
                    self.incident_start = now;
                    self.crashes.clear();
                }
            }
            Op::Advance(_) => {
                match self.inflight {
                    Some((id, s, Phase::Waiting(due))) if now >= due => {
                        self.inflight =
                            Some((id, s, Phase::Verifying(now + secs(self.p.verify_deadline))));
                        out.push(format!("verify a{id}"));
                    }
                    Some((_, _, Phase::Verifying(deadline))) if now >= deadline => {
                        self.close(now, Res::Unknown);
                        self.finding = false;
                    }
                    _ => {}
                }
                self.dispatch(now, &mut out);
            }
        }
        out
    }

    fn held_escalated(&self) -> bool {
        self.held
    }

    fn dispatch(&mut self, now: Timestamp, out: &mut Vec<String>) {
        if !self.finding || self.inflight.is_some() || self.held || self.gave_up {
            return;
        }
        // a crash loop gives up at once, not after the backoff the last attempt earned
        let crash_since = now - secs(self.p.crash_window);
        if self.crashes.iter().filter(|c| **c >= crash_since).count() as u32
            >= self.p.crash_restarts
        {
            self.gave_up = true;
            out.push("escalate GaveUp".into());
            return;
        }
        if now < self.backoff_until {
            return;
        }
        let window_start = now - secs(self.p.window);
        let mut s = Strategy::Restart;
        while s != Strategy::Escalate
            && (self.failed_in_incident(s, now)
                || self.count(|x| x == s, window_start) >= self.p.max_attempts)
        {
            s = s.next_rung().unwrap();
        }
        if s == Strategy::Escalate {
            self.held = true;
            out.push("escalate LadderExhausted".into());
            return;
        }
        if let Some(last) = self.attempts.iter().rev().find(|a| a.1 == s)
            && now < last.0 + secs(self.p.cooldown)
        {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.attempts.push((now, s, Res::Pending));
        self.inflight = Some((id, s, Phase::Acting));
        out.push(format!("act a{id} {s}"));
    }
}

fn params() -> impl proptest::strategy::Strategy<Value = Params> {
    (
        0u64..120,
        1u32..4,
        2u32..6,
        60u64..900,
        300u64..1200,
        1u64..20,
        20u64..200,
        5u64..60,
    )
        .prop_map(|(cooldown, m, n, w, window, b0, bmax, vd)| Params {
            cooldown,
            max_attempts: m,
            crash_restarts: n,
            crash_window: w,
            window: window.max(cooldown + 1),
            backoff_initial: b0,
            backoff_max: bmax.max(b0),
            verify_deadline: vd,
        })
}

fn ops() -> impl proptest::strategy::Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        prop_oneof![
            3 => proptest::strategy::Just(Op::Unhealthy),
            1 => proptest::strategy::Just(Op::Healthy),
            5 => (1u64..60).prop_map(Op::Advance),
            2 => proptest::strategy::Just(Op::ActOk),
            2 => proptest::strategy::Just(Op::ActFail),
            2 => proptest::strategy::Just(Op::VerifyOk),
            2 => proptest::strategy::Just(Op::VerifyFail),
            1 => proptest::strategy::Just(Op::Resume),
        ],
        1..250,
    )
}

fn run(p: Params, ops: Vec<Op>) -> Result<BTreeMap<String, u64>, TestCaseError> {
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut pol = policy("default");
    pol.restart_cooldown = secs(p.cooldown);
    pol.max_restart_attempts = p.max_attempts;
    pol.attempt_window = secs(p.window);
    pol.crash_loop.restarts = p.crash_restarts;
    pol.crash_loop.window = secs(p.crash_window);
    pol.backoff.initial = secs(p.backoff_initial);
    pol.backoff.max = secs(p.backoff_max);
    pol.verify_deadline = secs(p.verify_deadline);
    pol.auto_approve_risk = Risk::High;
    let mut h = Harness::new(
        vec![target("api", "default")],
        tiers(vec![pol]),
        EngineConfig::standard(4),
    );
    let mut m = Model {
        p,
        finding: false,
        inflight: None,
        attempts: vec![],
        incident_start: Timestamp::ZERO,
        failures: 0,
        backoff_until: Timestamp::ZERO,
        held: false,
        gave_up: false,
        next_id: 1,
        crashes: vec![],
        healthy_since: None,
    };
    let mut now = at(1);
    for op in ops {
        if let Op::Advance(s) = op {
            now += secs(s);
        }
        let expected = m.step(now, &op);
        let id = m
            .inflight
            .map(|f| f.0)
            .unwrap_or(m.next_id.saturating_sub(1));
        let ev = match op {
            Op::Unhealthy => Event::Finding(unhealthy_at("api", now)),
            Op::Healthy => Event::Finding(healthy_at("api", now)),
            Op::Advance(_) => Event::Tick,
            Op::ActOk => act_outcome(id, Outcome::Success),
            Op::ActFail => act_outcome(id, Outcome::Failure("no".into())),
            Op::VerifyOk => verify(id, Outcome::Success),
            Op::VerifyFail => verify(id, Outcome::Failure("no".into())),
            Op::Resume => Event::Resume {
                target: "api".into(),
            },
        };
        let got: Vec<String> = h
            .step_at(now, ev)
            .into_iter()
            .filter(|l| !l.starts_with("J "))
            .map(|l| {
                if let Some(rest) = l.strip_prefix("act ") {
                    let mut it = rest.split(' ');
                    format!("act {} {}", it.next().unwrap(), it.nth(1).unwrap())
                } else if let Some(rest) = l.strip_prefix("verify ") {
                    format!("verify {}", rest.split(' ').next().unwrap())
                } else if let Some(rest) = l.strip_prefix("escalate api ") {
                    format!("escalate {rest}")
                } else {
                    l
                }
            })
            .collect();
        prop_assert_eq!(&got, &expected, "at {} after {:?}; model {:?}", now, op, m);
        let since = now - secs(p.crash_window);
        let engine_crashes: Vec<Timestamp> = h.engine.durable_state().targets[0]
            .crashes
            .iter()
            .copied()
            .filter(|c| *c >= since)
            .collect();
        let model_crashes: Vec<Timestamp> =
            m.crashes.iter().copied().filter(|c| *c >= since).collect();
        prop_assert_eq!(
            engine_crashes,
            model_crashes,
            "crashes at {} after {:?}; model {:?}",
            now,
            op,
            m
        );
        for l in got {
            let key = if l.starts_with("act ") {
                l.split(' ').nth(2).unwrap_or("").to_owned()
            } else {
                l.split(' ')
                    .next()
                    .map(|w| {
                        if w == "escalate" {
                            l.clone()
                        } else {
                            w.to_owned()
                        }
                    })
                    .unwrap_or_default()
            };
            *seen.entry(key).or_default() += 1;
        }
    }
    Ok(seen)
}

/// The random schedules reach every rule the model knows, so agreement is not vacuous.
#[test]
fn model_schedules_reach_every_rule() {
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[3; 32]),
    );
    let strat = (params(), ops());
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..200 {
        let (p, o) = proptest::strategy::ValueTree::current(&strat.new_tree(&mut runner).unwrap());
        for (k, v) in run(p, o).unwrap() {
            *total.entry(k).or_default() += v;
        }
    }
    eprintln!("{total:#?}");
    for k in [
        "restart",
        "reset",
        "recreate",
        "rollback",
        "verify",
        "escalate GaveUp",
        "escalate LadderExhausted",
    ] {
        assert!(
            total.get(k).copied().unwrap_or(0) > 0,
            "never reached {k}: {total:?}"
        );
    }
}

fn act_outcome(id: u64, outcome: Outcome) -> Event {
    Event::ActionOutcome {
        action: ActionId(id),
        outcome,
    }
}

fn verify(id: u64, outcome: Outcome) -> Event {
    Event::VerifyResult {
        action: ActionId(id),
        outcome,
    }
}

fn unhealthy_at(name: &str, now: Timestamp) -> medic_core::Finding {
    let mut f = unhealthy(name, 0);
    f.at = now;
    f
}

fn healthy_at(name: &str, now: Timestamp) -> medic_core::Finding {
    let mut f = healthy(name, 0);
    f.at = now;
    f
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_reference_model(p in params(), ops in ops()) {
        run(p, ops)?;
    }
}
