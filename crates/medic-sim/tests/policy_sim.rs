//! The policy simulator against the real engine and the shipped policies: scripted faults
//! end the way the fault model and the policies say, runs are reproducible, the engine keeps
//! its invariants, and a policy change shows in a comparison.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use medic_policy::TierPolicy;
use medic_sim::FaultKind;
use medic_sim::fleet::SimFleet;
use medic_sim::policy_sim::{self, Scenario, ScheduledFault, SimConfig, SimReport};

fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

fn shipped() -> BTreeMap<String, TierPolicy> {
    medic_policy::load_policies(&shipped_dir()).expect("shipped policies load")
}

/// Six targets, one of each agent type, no groups (so reroute does not apply); worker-3 has
/// no dependencies and nothing depends on anything.
fn small_fleet(tiers: BTreeMap<String, TierPolicy>) -> SimFleet {
    let mut f = SimFleet::generate(6, tiers);
    for t in &mut f.targets {
        t.engine.group = None;
        t.engine.depends_on.clear();
        t.engine.has_fallback = false;
    }
    f
}

fn two_hours(seed: u64) -> SimConfig {
    let mut cfg = SimConfig::standard(2.0 / 24.0, seed);
    cfg.human_fix_after = Duration::from_secs(3 * 3600);
    cfg
}

fn scripted(fleet: &SimFleet, cfg: &SimConfig, faults: Vec<ScheduledFault>) -> SimReport {
    let sc = Scenario {
        faults,
        windows: vec![],
    };
    let r = policy_sim::run(fleet, cfg, &sc).expect("runs");
    assert_eq!(r.violations, 0, "{:?}", r.violation_examples);
    r
}

fn started(r: &SimReport, s: &str) -> (u64, u64, u64) {
    r.actions_by_strategy
        .get(s)
        .map_or((0, 0, 0), |c| (c.started, c.success, c.failure))
}

#[test]
fn a_seen_leak_is_restarted_before_it_fails() {
    let fleet = small_fleet(shipped());
    let cfg = two_hours(1);
    // worker-3 (default tier): precursor at 10 min, failure at 30 min
    let r = scripted(
        &fleet,
        &cfg,
        vec![ScheduledFault::new(60, 3, FaultKind::MemoryLeak)],
    );
    let (n, ok, _) = started(&r, "restart");
    assert_eq!((n, ok), (1, 1), "{r:#?}");
    assert_eq!(r.averted, 1);
    assert_eq!(r.incidents, 0);
    assert_eq!(r.unresolved, 0);
    assert_eq!(r.escalations, 0);
}

#[test]
fn an_unseen_leak_fails_and_a_restart_heals_it() {
    let fleet = small_fleet(shipped());
    let cfg = two_hours(1);
    let mut f = ScheduledFault::new(60, 3, FaultKind::MemoryLeak);
    f.precursor_seen = false;
    let r = scripted(&fleet, &cfg, vec![f]);
    let (n, ok, _) = started(&r, "restart");
    assert_eq!((n, ok), (1, 1), "{r:#?}");
    assert_eq!((r.averted, r.incidents, r.healed_by_engine), (0, 1, 1));
    assert_eq!(r.mttr_samples, 1);
    // detection (30 s) + restart (10 s): well under the human's three hours
    assert!(r.mttr_mean_s < 600.0, "{r:#?}");
}

#[test]
fn a_bad_deploy_ends_in_rollback() {
    let fleet = small_fleet(shipped());
    let cfg = two_hours(1);
    let r = scripted(
        &fleet,
        &cfg,
        vec![ScheduledFault::new(60, 3, FaultKind::BadDeploy)],
    );
    let (n, ok, _) = started(&r, "rollback");
    assert_eq!((n, ok), (1, 1), "{r:#?}");
    assert!(r.approvals_requested >= 1, "rollback is high risk: {r:#?}");
    assert_eq!((r.healed_by_engine, r.unresolved, r.escalations), (1, 0, 0));
}

#[test]
fn a_crash_loop_ends_in_give_up_and_one_escalation() {
    // A tier that calls 2 crashes a loop gives up after the first restart failed (the
    // finding that opened the incident was the first crash).
    let mut tiers = shipped();
    for p in tiers.values_mut() {
        p.crash_loop.restarts = 2;
    }
    let fleet = small_fleet(tiers);
    let cfg = two_hours(1);
    let r = scripted(
        &fleet,
        &cfg,
        vec![ScheduledFault::new(60, 3, FaultKind::CrashLoop)],
    );
    assert_eq!(r.gave_up, 1, "{r:#?}");
    assert_eq!(r.escalations, 1, "{r:#?}");
    assert_eq!(r.escalations_by_reason.get("gave_up"), Some(&1));
    assert_eq!(r.healed_by_engine, 0);
    assert_eq!(r.unresolved, 1);
    // nothing fixes a crash loop: every heal failed
    assert!(
        r.actions_by_strategy.values().all(|c| c.success == 0),
        "{r:#?}"
    );
}

#[test]
fn a_crash_loop_under_the_shipped_policy_gives_up_with_exactly_one_escalation() {
    // The shipped policies file as it is, in each tier: worker-3 (default), autogpt-1
    // (critical_agents), semgrep-2 (lightweight_agents).
    let tiers = shipped();
    assert_eq!(tiers["default"].restart_cooldown, Duration::from_secs(300));
    for target in [3, 1, 2] {
        let fleet = small_fleet(tiers.clone());
        let cfg = two_hours(1);
        let r = scripted(
            &fleet,
            &cfg,
            vec![ScheduledFault::new(60, target, FaultKind::CrashLoop)],
        );
        let tier = &fleet.targets[target].engine.tier;
        assert_eq!(r.gave_up, 1, "{tier}: {r:#?}");
        assert_eq!(r.escalations, 1, "{tier}: {r:#?}");
        assert_eq!(r.escalations_by_reason.get("gave_up"), Some(&1), "{tier}");
        assert_eq!(r.unresolved, 1, "{tier}");
        assert_eq!(
            r.approvals_requested, 0,
            "{tier}: gave up before asking for a rollback"
        );
    }
}

/// 24 generated targets: the first block forms groups of four of one type; worker-9 is in
/// group worker-g0 with worker-3, -15 and -21.
fn grouped_fleet() -> SimFleet {
    let mut f = SimFleet::generate(24, shipped());
    for t in &mut f.targets {
        t.engine.depends_on.clear();
        t.engine.has_fallback = false;
    }
    assert_eq!(f.targets[9].engine.group.as_deref(), Some("worker-g0"));
    f
}

#[test]
fn a_crashed_instance_in_a_healthy_group_is_rerouted() {
    let fleet = grouped_fleet();
    let r = scripted(
        &fleet,
        &two_hours(1),
        vec![ScheduledFault::new(60, 9, FaultKind::SuddenCrash)],
    );
    assert_eq!(started(&r, "reroute"), (1, 1, 0), "{r:#?}");
    assert_eq!((r.healed_by_engine, r.escalations), (1, 0));
    // a fault every replica shares is not ended by ejecting one: the error burst is ridden
    // out by the circuit breaker instead
    let r = scripted(
        &fleet,
        &two_hours(1),
        vec![ScheduledFault::new(60, 9, FaultKind::ErrorBurst)],
    );
    let (_, ok, _) = started(&r, "reroute");
    assert_eq!(ok, 0, "{r:#?}");
}

#[test]
fn reroute_is_not_tried_where_it_cannot_help() {
    // worker-9's group is healthy otherwise, but none of these is the instance's own: load,
    // an error burst, an upstream outage, a bad configuration (worker-9 has no repair
    // action, so a rule ranked after the repair would be next), queue growth.
    let fleet = grouped_fleet();
    for kind in [
        FaultKind::Saturation,
        FaultKind::ErrorBurst,
        FaultKind::DependencyOutage,
        FaultKind::BadConfig,
        FaultKind::QueueGrowth,
    ] {
        let r = scripted(
            &fleet,
            &two_hours(1),
            vec![ScheduledFault::new(60, 9, kind)],
        );
        assert_eq!(started(&r, "reroute").0, 0, "{kind}: {r:#?}");
    }
    // a leak of its own is ejected before it fails
    let r = scripted(
        &fleet,
        &two_hours(1),
        vec![ScheduledFault::new(60, 9, FaultKind::MemoryLeak)],
    );
    assert_eq!(started(&r, "reroute"), (1, 1, 0), "{r:#?}");
    assert_eq!(r.averted, 1);
}

#[test]
fn over_a_day_a_reroute_fails_only_on_a_crash_loop() {
    // A thousand targets for a day with the shipped rules: a reroute is chosen only where
    // the fault model says ejecting the instance ends the fault, except a crash loop, which
    // looks like any crash at first and which nothing fixes.
    let fleet = SimFleet::generate(1000, shipped());
    let r = policy_sim::simulate(&fleet, &SimConfig::standard(1.0, 7)).expect("runs");
    assert_eq!(r.violations, 0, "{:?}", r.violation_examples);
    let (n, _, failed) = started(&r, "reroute");
    assert!(n > 50, "{r:#?}");
    let crash_loops = r.faults_by_kind.get("crash_loop").copied().unwrap_or(0);
    assert!(
        failed <= crash_loops,
        "{failed} failed reroutes, {crash_loops} crash loops"
    );
}

#[test]
fn a_bad_config_is_repaired_where_a_repair_action_exists() {
    // shellgpt-4 has a repair action (4 % 3 != 0); worker-3 has none
    let fleet = small_fleet(shipped());
    let r = scripted(
        &fleet,
        &two_hours(1),
        vec![ScheduledFault::new(60, 4, FaultKind::BadConfig)],
    );
    assert_eq!(started(&r, "repair"), (1, 1, 0), "{r:#?}");
    assert_eq!((r.healed_by_engine, r.escalations), (1, 0), "{r:#?}");
    let r = scripted(
        &fleet,
        &two_hours(1),
        vec![ScheduledFault::new(60, 3, FaultKind::BadConfig)],
    );
    assert_eq!(started(&r, "repair").0, 0, "no repair action: {r:#?}");
    assert_eq!(r.escalations, 1, "{r:#?}");
    assert!(r.engine.not_executable > 0);
}

#[test]
fn same_seed_same_report() {
    let tiers = shipped();
    let fleet = SimFleet::generate(600, tiers);
    let mut cfg = SimConfig::standard(0.5, 11);
    cfg.faults_per_target_day = 1.0;
    let a = policy_sim::simulate(&fleet, &cfg).expect("runs");
    let b = policy_sim::simulate(&fleet, &cfg).expect("runs");
    assert!(a.faults > 100 && a.actions > 100, "{a:#?}");
    assert_eq!(a, b);
    cfg.seed = 12;
    let c = policy_sim::simulate(&fleet, &cfg).expect("runs");
    assert_ne!(a, c, "another seed meets other faults");
}

#[test]
fn no_invariant_violation_over_random_seeds() {
    let fleet = SimFleet::generate(500, shipped());
    for seed in 1..=4 {
        let mut cfg = SimConfig::standard(1.0, seed);
        cfg.faults_per_target_day = 2.0;
        cfg.maintenance_per_target_day = 0.2;
        cfg.max_concurrent = 20;
        if seed % 2 == 0 {
            cfg.approval_delay = None;
        }
        let r = policy_sim::simulate(&fleet, &cfg).expect("runs");
        assert!(r.actions > 500, "seed {seed}: {}", r.actions);
        assert_eq!(r.violations, 0, "seed {seed}: {:?}", r.violation_examples);
    }
}

fn policies_with_attempts(n: u32) -> tempfile::TempDir {
    let text = std::fs::read_to_string(shipped_dir().join("tiers.yaml")).expect("read tiers");
    let mut out = String::new();
    for line in text.lines() {
        match line.split_once("max_restart_attempts:") {
            Some((indent, _)) => out.push_str(&format!("{indent}max_restart_attempts: {n}")),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tiers.yaml"), out).expect("write");
    dir
}

#[test]
fn max_restart_attempts_one_vs_five_differ_in_comparison() {
    let a_dir = policies_with_attempts(1);
    let b_dir = policies_with_attempts(5);
    let a_tiers = medic_policy::load_policies(a_dir.path()).expect("a loads");
    let b_tiers = medic_policy::load_policies(b_dir.path()).expect("b loads");
    assert!(a_tiers.values().all(|p| p.max_restart_attempts == 1));
    assert!(b_tiers.values().all(|p| p.max_restart_attempts == 5));
    let mut cfg = SimConfig::standard(1.0, 7);
    cfg.faults_per_target_day = 1.0;
    let a = policy_sim::simulate(&SimFleet::generate(600, a_tiers), &cfg).expect("a runs");
    let b = policy_sim::simulate(&SimFleet::generate(600, b_tiers), &cfg).expect("b runs");
    assert_eq!(a.faults, b.faults, "same seed, same faults");
    assert_eq!(a.faults_by_kind, b.faults_by_kind);
    let rows = policy_sim::compare(&a, &b);
    let differing: Vec<_> = rows
        .iter()
        .filter(|r| r.name.starts_with("actions") && r.a != r.b)
        .collect();
    assert!(!differing.is_empty(), "{rows:#?}");
    assert_eq!(a.violations + b.violations, 0);
}
