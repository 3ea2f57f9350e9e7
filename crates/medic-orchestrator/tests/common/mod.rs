//! Shared test helpers: policies with every field explicit, small fleets, a harness that
//! records commands and formats decision traces.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use medic_core::{Finding, HealthState, LevelSet, ProbeLevel, Risk, Timestamp};
use medic_orchestrator::*;
use medic_policy::{Backoff, CrashLoop, Replicas, Scaling, TierPolicy};

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn at(s: u64) -> Timestamp {
    Timestamp::from_secs(s)
}

/// A tier policy with every field stated.
pub fn policy(name: &str) -> TierPolicy {
    TierPolicy {
        name: name.to_owned(),
        agents: vec![],
        labels: BTreeMap::new(),
        max_restart_attempts: 3,
        restart_cooldown: secs(300),
        attempt_window: secs(3600),
        scale_threshold: 0.8,
        circuit_break_duration: secs(60),
        preemptive_scaling: false,
        backup_instances: 0,
        aggressive_recycling: false,
        memory_limit_buffer: 0.1,
        backoff: Backoff {
            initial: secs(10),
            max: secs(300),
            multiplier: 2.0,
            reset_after: secs(600),
        },
        crash_loop: CrashLoop {
            restarts: 5,
            window: secs(600),
        },
        max_concurrent: None,
        max_group_unavailable: 0.1,
        auto_approve_risk: Risk::Medium,
        confidence_threshold: 0.6,
        approval_timeout: secs(900),
        verify_deadline: secs(60),
        scaling: Scaling {
            tolerance: 0.1,
            scale_down_stabilization: secs(300),
        },
        rules: vec![],
    }
}

pub fn target(name: &str, tier: &str) -> EngineTarget {
    EngineTarget {
        name: name.into(),
        tier: tier.to_owned(),
        group: None,
        depends_on: vec![],
        has_fallback: false,
        startup_delay: secs(5),
        replicas: Replicas {
            initial: 2,
            min: 1,
            max: 10,
        },
        actions: None,
    }
}

pub fn tiers(list: Vec<TierPolicy>) -> BTreeMap<String, TierPolicy> {
    list.into_iter().map(|p| (p.name.clone(), p)).collect()
}

pub fn unhealthy(name: &str, t: u64) -> Finding {
    Finding::from_health(
        name.into(),
        at(t),
        HealthState::Unhealthy,
        [ProbeLevel::Liveness].into_iter().collect(),
    )
}

pub fn degraded(name: &str, t: u64) -> Finding {
    Finding::from_health(
        name.into(),
        at(t),
        HealthState::Degraded,
        [ProbeLevel::Performance].into_iter().collect(),
    )
}

pub fn healthy(name: &str, t: u64) -> Finding {
    Finding::from_health(name.into(), at(t), HealthState::Healthy, LevelSet::EMPTY)
}

/// Drives an engine and keeps everything it said.
pub struct Harness {
    pub engine: Engine,
    pub journal: Vec<JournalEntry>,
    pub all: Vec<(Timestamp, Command)>,
    pub targets: Vec<EngineTarget>,
    pub tiers: BTreeMap<String, TierPolicy>,
    pub config: EngineConfig,
}

impl Harness {
    pub fn new(
        targets: Vec<EngineTarget>,
        tiers: BTreeMap<String, TierPolicy>,
        config: EngineConfig,
    ) -> Self {
        let engine = Engine::new(targets.clone(), tiers.clone(), config.clone()).unwrap();
        Harness {
            engine,
            journal: vec![],
            all: vec![],
            targets,
            tiers,
            config,
        }
    }

    /// One step; returns the step's commands as trace lines.
    pub fn step(&mut self, t: u64, ev: Event) -> Vec<String> {
        self.step_at(at(t), ev)
    }

    pub fn step_at(&mut self, now: Timestamp, ev: Event) -> Vec<String> {
        let mut out = Vec::new();
        self.engine.step(now, ev, &mut out);
        let lines = out.iter().map(fmt).collect();
        for c in out {
            if let Command::Journal(j) = &c {
                self.journal.push(j.clone());
            }
            self.all.push((now, c));
        }
        lines
    }

    pub fn tick(&mut self, t: u64) -> Vec<String> {
        self.step(t, Event::Tick)
    }

    pub fn finding(&mut self, f: Finding) -> Vec<String> {
        let t = f.at;
        self.step_at(t, Event::Finding(f))
    }

    pub fn outcome(&mut self, t: u64, action: u64, outcome: medic_core::Outcome) -> Vec<String> {
        self.step(
            t,
            Event::ActionOutcome {
                action: ActionId(action),
                outcome,
            },
        )
    }

    pub fn verify(&mut self, t: u64, action: u64, outcome: medic_core::Outcome) -> Vec<String> {
        self.step(
            t,
            Event::VerifyResult {
                action: ActionId(action),
                outcome,
            },
        )
    }

    pub fn recovered(&self) -> Engine {
        Engine::recover(
            self.targets.clone(),
            self.tiers.clone(),
            self.config.clone(),
            self.journal.clone(),
        )
        .unwrap()
    }

    pub fn acts(&self) -> Vec<(Timestamp, Act)> {
        self.all
            .iter()
            .filter_map(|(t, c)| match c {
                Command::Act(a) => Some((*t, a.clone())),
                _ => None,
            })
            .collect()
    }
}

fn kind(k: &ActKind) -> String {
    match k {
        ActKind::Heal(s) => s.as_str().to_owned(),
        ActKind::Fallback => "fallback".to_owned(),
    }
}

/// One line per command: a readable decision trace.
pub fn fmt(c: &Command) -> String {
    match c {
        Command::Journal(j) => match j {
            JournalEntry::IncidentOpened {
                target, summary, ..
            } => format!("J incident {target}: {summary}"),
            JournalEntry::Intent {
                action,
                target,
                kind: k,
                replicas,
                ..
            } => format!(
                "J intent {action} {target} {}{}",
                kind(k),
                replicas.map(|r| format!(" x{r}")).unwrap_or_default()
            ),
            JournalEntry::Acted {
                action, outcome, ..
            } => format!("J acted {action} {}", outcome.as_str()),
            JournalEntry::Verified {
                action, outcome, ..
            } => format!("J verified {action} {}", outcome.as_str()),
            JournalEntry::Closed { action, result, .. } => {
                format!("J closed {action} {}", format!("{result:?}").to_lowercase())
            }
            JournalEntry::ApprovalRequested {
                approval,
                target,
                strategy,
                deadline,
                ..
            } => format!("J approval {approval} {target} {strategy} until {deadline}"),
            JournalEntry::ApprovalDecided {
                approval, decision, ..
            } => format!(
                "J decided {approval} {}",
                format!("{decision:?}").to_lowercase()
            ),
            JournalEntry::Escalated { target, reason, .. } => {
                format!("J escalated {target} {reason:?}")
            }
            JournalEntry::Resumed { target, .. } => format!("J resumed {target}"),
            JournalEntry::Recovered { target, .. } => format!("J recovered {target}"),
            JournalEntry::ApprovalWithdrawn {
                approval, target, ..
            } => format!("J withdrawn {approval} {target}"),
            JournalEntry::Degraded { target, .. } => format!("J degraded {target}"),
            JournalEntry::Breaker { target, state, .. } => format!("J breaker {target} {state:?}"),
            JournalEntry::BackoffReset { target, .. } => format!("J backoff-reset {target}"),
            JournalEntry::Maintenance { scope, until, .. } => {
                format!("J maintenance {scope:?} {until:?}")
            }
        },
        Command::Act(a) => format!(
            "act {} {} {}{}{}",
            a.action,
            a.target,
            kind(&a.kind),
            a.replicas.map(|r| format!(" x{r}")).unwrap_or_default(),
            if a.dry_run { " dry" } else { "" }
        ),
        Command::Verify {
            action,
            target,
            deadline,
        } => format!("verify {action} {target} by {deadline}"),
        Command::Circuit { target, state } => format!("circuit {target} {state:?}"),
        Command::Notify(n) => match n {
            Notice::ApprovalRequested {
                approval,
                target,
                strategy,
                ..
            } => format!("notify approval {approval} {target} {strategy}"),
            Notice::Degraded { target } => format!("notify degraded {target}"),
        },
        Command::Escalate(e) => format!("escalate {} {:?}", e.target, e.reason),
    }
}
