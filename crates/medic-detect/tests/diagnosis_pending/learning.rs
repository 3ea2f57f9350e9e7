// NOT YET COMPILED OR RUN (2026-11-27): written before the deadline, when the release test
// build of medic-detect could not finish on the shared machine. It sits outside cargo's test
// discovery (a subdirectory without main.rs) so it cannot break the build. To enable: move it
// to crates/medic-detect/tests/diagnosis_learning.rs, run it, and fix what fails.

//! Learning on vs off over a simulated week: the diagnosis planner's options, re-ranked (or
//! not) by the Beta success rates of `diagnosis::learning`, executed against medic-sim's fault
//! model (`FaultKind::fixed_by`) with its action durations, approval delay and human fix time.
//!
//! The week: seeded incidents of four kinds, each with real error text diagnosed by the
//! shipped pattern library:
//! - a crash after a configuration push (a panic whose text also names the bad value): the
//!   planner ranks restart first (crash → restart), but 85 % of these are a bad
//!   configuration that only repair fixes (`FaultKind::BadConfig`), 15 % a plain crash that a
//!   restart fixes (`FaultKind::SuddenCrash`) — restart rarely fixes this cause;
//! - a segfault: a sudden crash, restart fixes it;
//! - an OOM kill at a sustained 97 % of the limit: a leak (restart fixes) or a limit set too
//!   low (only repair, i.e. raising the limit, fixes);
//! - an upstream timeout: creeping latency (restart fixes) or a timeout set too low (repair).
//!
//! Each incident runs the plan's options in order (manual steps skipped): an option that needs
//! approval waits for the simulated human's approval delay; an action takes
//! `policy_sim::action_duration`; a failed action is seen at the next probe refresh; escalation
//! means a human fixes it after `human_fix_after`. With learning on, every attempt is recorded
//! against the incident's signature and the next plan is re-ranked.

use std::path::Path;
use std::time::Duration;

use medic_core::{DiagnosisCategory, Strategy};
use medic_detect::diagnosis::learning::{Signature, SuccessRates, rerank};
use medic_detect::diagnosis::planner::{self, Approval, AutoPolicy, OptionKind};
use medic_detect::diagnosis::{PatternLibrary, Signals, diagnose, fixes};
use medic_orchestrator::ActKind;
use medic_sim::FaultKind;
use medic_sim::policy_sim::{REFRESH, SimConfig, action_duration};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn library() -> PatternLibrary {
    PatternLibrary::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/patterns.yaml"),
    )
    .expect("shipped patterns")
}

/// One kind of incident: its text, what fixes are configured, and which fault it really is.
struct Kind {
    name: &'static str,
    text: &'static str,
    inputs: fixes::FixInputs,
    bounds: fixes::FixBounds,
    /// (probability, fault): the true cause behind the text.
    faults: &'static [(f64, FaultKind)],
}

fn kinds() -> Vec<Kind> {
    let gib = 1u64 << 30;
    vec![
        Kind {
            name: "crash after config push",
            text: "thread 'main' panicked at src/config.rs:41:10:\ncalled `Result::unwrap()` on an `Err` value: invalid configuration: compression level 'fastest' is not one of 0-9\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
            inputs: fixes::FixInputs {
                config_backup: Some((
                    "/etc/app/app.conf".to_owned(),
                    "/var/lib/medic/app.conf.good".to_owned(),
                )),
                ..Default::default()
            },
            bounds: fixes::FixBounds::default(),
            faults: &[(0.85, FaultKind::BadConfig), (0.15, FaultKind::SuddenCrash)],
        },
        Kind {
            name: "segfault",
            text: "Segmentation fault (core dumped)",
            inputs: fixes::FixInputs::default(),
            bounds: fixes::FixBounds::default(),
            faults: &[(1.0, FaultKind::SuddenCrash)],
        },
        Kind {
            name: "oom kill",
            text: "[88213.551021] Out of memory: Killed process 4411 (java) total-vm:8412344kB, anon-rss:1031012kB, file-rss:0kB, shmem-rss:0kB",
            inputs: fixes::FixInputs {
                memory_limit_bytes: Some(gib),
                memory_usage_ratio: Some(0.97),
                ..Default::default()
            },
            bounds: fixes::FixBounds {
                max_memory_bytes: Some(4 * gib),
                max_timeout: None,
            },
            faults: &[(0.5, FaultKind::MemoryLeak), (0.5, FaultKind::BadConfig)],
        },
        Kind {
            name: "upstream timeout",
            text: "2024/05/01 10:00:00 [error] 31#31: *881 upstream timed out (110: Connection timed out) while reading response header from upstream, client: 10.0.0.7, server: shop, request: \"GET /cart HTTP/1.1\", upstream: \"http://10.0.3.4:8080/cart\"",
            inputs: fixes::FixInputs {
                timeout: Some(Duration::from_secs(5)),
                ..Default::default()
            },
            bounds: fixes::FixBounds {
                max_timeout: Some(Duration::from_secs(30)),
                max_memory_bytes: None,
            },
            faults: &[(0.6, FaultKind::LatencyCreep), (0.4, FaultKind::BadConfig)],
        },
    ]
}

#[derive(Debug, Default, Clone, PartialEq)]
struct Totals {
    incidents: usize,
    first_action_fixed: usize,
    failed_actions: usize,
    escalations: usize,
    heal_secs: f64,
}

impl Totals {
    fn first_success(&self) -> f64 {
        self.first_action_fixed as f64 / self.incidents.max(1) as f64
    }
    fn mean_heal_min(&self) -> f64 {
        self.heal_secs / 60.0 / self.incidents.max(1) as f64
    }
    fn failed_per_incident(&self) -> f64 {
        self.failed_actions as f64 / self.incidents.max(1) as f64
    }
}

/// Runs the week; per-day totals.
fn week(learning: bool, seed: u64) -> Vec<Totals> {
    let lib = library();
    let kinds = kinds();
    let cfg = SimConfig::standard(7.0, seed);
    let approval = cfg.approval_delay.expect("standard config approves");
    let policy = AutoPolicy::DEFAULT;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rates = SuccessRates::default();
    let mut days = vec![Totals::default(); 7];
    // 40 incidents a day across the fleet.
    for (day, totals) in days.iter_mut().enumerate() {
        for _ in 0..40 {
            let kind = &kinds[rng.random_range(0..kinds.len())];
            let mut u: f64 = rng.random();
            let fault = kind
                .faults
                .iter()
                .find(|(p, _)| {
                    u -= p;
                    u < 0.0
                })
                .map_or(kind.faults[kind.faults.len() - 1].1, |(_, f)| *f);
            let diagnosis = diagnose(&lib, kind.text, &Signals::default());
            let proposals = fixes::propose(&diagnosis, &kind.inputs, &kind.bounds);
            let mut plan = planner::plan(&diagnosis, None, &proposals.fixes, &policy);
            let key = Signature {
                category: diagnosis.category(),
                anomaly: None,
                failing_levels: vec!["liveness".to_owned()],
                tier: "standard".to_owned(),
            }
            .key();
            if learning {
                rerank(&mut plan, &key, &rates, &policy);
            }
            let mut elapsed = Duration::ZERO;
            let mut first = true;
            totals.incidents += 1;
            for option in plan.options.iter().filter(|o| o.kind != OptionKind::Manual) {
                let strategy = option.option.strategy;
                if option.kind == OptionKind::Escalate {
                    totals.escalations += 1;
                    elapsed += cfg.human_fix_after;
                    break;
                }
                if matches!(option.approval, Approval::NeedsApproval(_)) {
                    elapsed += approval;
                }
                elapsed += action_duration(ActKind::Heal(strategy));
                let fixed = fault.fixed_by(strategy);
                if learning {
                    rates.observe(&key, strategy, fixed);
                }
                if fixed {
                    if first {
                        totals.first_action_fixed += 1;
                    }
                    break;
                }
                totals.failed_actions += 1;
                elapsed += REFRESH;
                first = false;
            }
            totals.heal_secs += elapsed.as_secs_f64();
        }
        let _ = day;
    }
    days
}

fn sum(days: &[Totals]) -> Totals {
    days.iter().fold(Totals::default(), |mut a, d| {
        a.incidents += d.incidents;
        a.first_action_fixed += d.first_action_fixed;
        a.failed_actions += d.failed_actions;
        a.escalations += d.escalations;
        a.heal_secs += d.heal_secs;
        a
    })
}

#[test]
fn the_crash_after_config_push_is_planned_restart_first_without_learning() {
    // The premise of the simulation: the planner's prior is wrong for this text.
    let lib = library();
    let k = &kinds()[0];
    let d = diagnose(&lib, k.text, &Signals::default());
    assert_eq!(d.category(), DiagnosisCategory::Crash, "{d:#?}");
    let proposals = fixes::propose(&d, &k.inputs, &k.bounds);
    let plan = planner::plan(&d, None, &proposals.fixes, &AutoPolicy::DEFAULT);
    assert_eq!(plan.options[0].option.strategy, Strategy::Restart);
    assert!(
        plan.options
            .iter()
            .any(|o| o.kind == OptionKind::Repair && o.fix.is_some()),
        "{plan:#?}"
    );
}

#[test]
fn learning_raises_first_action_success_and_cuts_time_to_heal_over_a_week() {
    for seed in [7, 11, 23] {
        let off = week(false, seed);
        let on = week(true, seed);
        assert_eq!(off.len(), 7);
        // Same seed, same incidents.
        assert_eq!(sum(&off).incidents, sum(&on).incidents);
        eprintln!(
            "seed {seed}: day  first-action success off/on   mean time-to-heal (min) off/on   failed actions per incident off/on"
        );
        for (d, (a, b)) in off.iter().zip(&on).enumerate() {
            eprintln!(
                "         {}    {:.2} / {:.2}                      {:.2} / {:.2}                          {:.2} / {:.2}",
                d + 1,
                a.first_success(),
                b.first_success(),
                a.mean_heal_min(),
                b.mean_heal_min(),
                a.failed_per_incident(),
                b.failed_per_incident()
            );
        }
        let (a, b) = (sum(&off), sum(&on));
        eprintln!(
            "  week: first-action success {:.3} → {:.3}, mean time-to-heal {:.2} → {:.2} min, failed actions/incident {:.3} → {:.3}, escalations {} → {}",
            a.first_success(),
            b.first_success(),
            a.mean_heal_min(),
            b.mean_heal_min(),
            a.failed_per_incident(),
            b.failed_per_incident(),
            a.escalations,
            b.escalations
        );
        // Day 1 learns from scratch; by the last three days the difference is clear.
        let late_off = sum(&off[4..]);
        let late_on = sum(&on[4..]);
        assert!(
            late_on.first_success() >= late_off.first_success() + 0.1,
            "seed {seed}: {late_off:?} vs {late_on:?}"
        );
        assert!(
            late_on.mean_heal_min() < late_off.mean_heal_min(),
            "seed {seed}"
        );
        assert!(
            b.failed_per_incident() < a.failed_per_incident(),
            "seed {seed}"
        );
        // Learning off is the same every day but for the draw of incidents: no trend.
        assert!(
            (sum(&off[..3]).first_success() - late_off.first_success()).abs() < 0.15,
            "seed {seed}"
        );
    }
}
