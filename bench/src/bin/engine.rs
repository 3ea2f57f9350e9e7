//! `bench/engine`: the healing engine at fleet scale, in virtual time.
//!
//! 1. One tick with 10,000 targets of which 5 % (500) have a new finding: the 500 finding
//!    steps plus the tick step, timed over repeated rounds (goal < 10 ms).
//! 2. Memory per target: bytes allocated by building the engine (counting allocator) and
//!    the engine's own estimate, divided by the number of targets.
//! 3. One virtual day of 10,000 targets at 1 s ticks (86,400 ticks) with a seeded fault
//!    schedule and a toy world that answers acts and verifications (goal < 60 s wall).
//!
//! Run: `cargo run --release -p medic-bench --bin engine [-- --seed 7 --targets 10000 --faults 5000]`

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use medic_core::{
    AnomalyFinding, AnomalyKind, Finding, HealthState, LevelSet, Outcome, ProbeLevel, Risk,
    Severity, Strategy, TargetId, Timestamp,
};
use medic_orchestrator::{
    ActKind, ActionId, Command, Decision, Engine, EngineConfig, EngineTarget, Event, Notice,
};
use medic_policy::{Backoff, CrashLoop, Replicas, Scaling, TierPolicy};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Counts live heap bytes so the memory figure is measured, not estimated.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// A counting wrapper around the system allocator: every call is forwarded unchanged.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout, as GlobalAlloc requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Wall-clock stopwatch: benches are the sanctioned place to measure elapsed real time.
#[allow(clippy::disallowed_methods)]
fn now_wall() -> std::time::Instant {
    std::time::Instant::now()
}

/// CPU time of this thread in ms: unlike wall time it excludes time the scheduler gave to
/// other processes, which on a shared 2-core machine dominates the outliers.
#[allow(unsafe_code)]
fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn policy(name: &str) -> TierPolicy {
    let critical = name == "critical";
    let light = name == "lightweight";
    TierPolicy {
        name: name.to_owned(),
        agents: vec![],
        labels: BTreeMap::new(),
        max_restart_attempts: if critical {
            5
        } else if light {
            2
        } else {
            3
        },
        restart_cooldown: secs(if critical { 180 } else { 300 }),
        attempt_window: secs(3600),
        scale_threshold: 0.8,
        circuit_break_duration: secs(60),
        preemptive_scaling: critical,
        backup_instances: if critical { 2 } else { 0 },
        aggressive_recycling: light,
        memory_limit_buffer: if light { 0.2 } else { 0.1 },
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
        max_concurrent: Some(if critical { 50 } else { 200 }),
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

const TIERS: [&str; 3] = ["critical", "default", "lightweight"];

fn fleet(n: usize) -> (Vec<EngineTarget>, BTreeMap<String, TierPolicy>) {
    let n_db = (n / 100).max(1);
    let targets = (0..n)
        .map(|i| {
            let tier = if i < n_db {
                "default"
            } else {
                TIERS[i % 10 / 4 % 3]
            };
            EngineTarget {
                name: TargetId::new(format!("t{i}")),
                tier: tier.to_owned(),
                group: (i >= n_db).then(|| format!("g{}", i / 10)),
                // a fifth of the services depend on one of the databases
                depends_on: if i >= n_db && i.is_multiple_of(5) {
                    vec![TargetId::new(format!("t{}", i % n_db))]
                } else {
                    vec![]
                },
                has_fallback: i.is_multiple_of(7),
                startup_delay: secs(5),
                replicas: Replicas {
                    initial: 2,
                    min: 1,
                    max: 10,
                },
                actions: None,
            }
        })
        .collect();
    let tiers = TIERS.iter().map(|t| (t.to_string(), policy(t))).collect();
    (targets, tiers)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Crash,
    Leak,
    BadDeploy,
    Saturation,
    ErrorBurst,
    CrashLoop,
}

const FAULTS: [Fault; 6] = [
    Fault::Crash,
    Fault::Leak,
    Fault::BadDeploy,
    Fault::Saturation,
    Fault::ErrorBurst,
    Fault::CrashLoop,
];

fn fixes(fault: Fault, kind: ActKind) -> bool {
    match (fault, kind) {
        (Fault::Crash | Fault::Leak, ActKind::Heal(s)) => {
            matches!(s, Strategy::Restart | Strategy::Reset | Strategy::Recreate)
        }
        (Fault::BadDeploy, ActKind::Heal(Strategy::Rollback)) => true,
        (Fault::Saturation, ActKind::Heal(Strategy::Scale)) => true,
        (Fault::ErrorBurst, ActKind::Heal(Strategy::CircuitBreak)) => true,
        _ => false,
    }
}

fn finding_for(name: &TargetId, now: Timestamp, fault: Fault, since: Timestamp) -> Finding {
    let unhealthy = |lv: ProbeLevel| {
        Finding::from_health(
            name.clone(),
            now,
            HealthState::Unhealthy,
            [lv].into_iter().collect(),
        )
    };
    let degraded = |lv: ProbeLevel| {
        Finding::from_health(
            name.clone(),
            now,
            HealthState::Degraded,
            [lv].into_iter().collect(),
        )
    };
    match fault {
        Fault::Crash | Fault::CrashLoop => unhealthy(ProbeLevel::Liveness),
        Fault::Leak => {
            let mut f = degraded(ProbeLevel::Resources);
            f.memory_ratio = Some(0.97);
            f.anomaly = Some(AnomalyFinding {
                score: 0.9,
                anomalous: true,
                kind: AnomalyKind::Resource,
                top_features: vec![],
                reason: String::new(),
            });
            f
        }
        Fault::BadDeploy => {
            let mut f = unhealthy(ProbeLevel::Liveness);
            f.version_changed_at = Some(since);
            f
        }
        Fault::Saturation => {
            let mut f = degraded(ProbeLevel::Performance);
            f.utilization = Some(1.3);
            f
        }
        Fault::ErrorBurst => {
            let mut f = degraded(ProbeLevel::Performance);
            f.error_rate = Some(0.7);
            f
        }
    }
}

fn tick_bench(n: usize) {
    let (targets, tiers) = fleet(n);
    let before = LIVE.load(Ordering::Relaxed);
    let mut engine = Engine::new(targets.clone(), tiers, EngineConfig::standard(200)).unwrap();
    let built = LIVE.load(Ordering::Relaxed) - before;
    let names: Vec<TargetId> = targets.iter().map(|t| t.name.clone()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let n_find = n / 20;
    let mut out = Vec::with_capacity(4096);
    // allocations of idle ticks (nothing due, nothing queued): the goal is none
    let a0 = ALLOCS.load(Ordering::Relaxed);
    for k in 0..1000u64 {
        engine.step(Timestamp::from_secs(k), Event::Tick, &mut out);
    }
    let idle_allocs = ALLOCS.load(Ordering::Relaxed) - a0;
    let mut times = Vec::new();
    let mut tick_only = Vec::new();
    let mut cpu = Vec::new();
    let mut finding_allocs = 0usize;
    let mut acts = 0usize;
    // pre-built findings so the timing is the engine's, not the test data's
    for round in 0..50u64 {
        let now = Timestamp::from_secs(1000 + round * 1000);
        let findings: Vec<Finding> = (0..n_find)
            .map(|_| {
                let i = rng.random_range(0..n);
                let fault = FAULTS[rng.random_range(0..5)];
                finding_for(&names[i], now, fault, now)
            })
            .collect();
        out.clear();
        let c0 = thread_cpu_ms();
        let a0 = ALLOCS.load(Ordering::Relaxed);
        let t0 = now_wall();
        for f in findings {
            engine.step(now, Event::Finding(f), &mut out);
        }
        let t1 = now_wall();
        finding_allocs += ALLOCS.load(Ordering::Relaxed) - a0;
        engine.step(now, Event::Tick, &mut out);
        let t2 = now_wall();
        cpu.push(thread_cpu_ms() - c0);
        times.push((t2 - t0).as_secs_f64() * 1e3);
        tick_only.push((t2 - t1).as_secs_f64() * 1e3);
        acts += out.iter().filter(|c| matches!(c, Command::Act(_))).count();
        // finish everything so the next round starts with free budgets
        let acts_now: Vec<ActionId> = out
            .iter()
            .filter_map(|c| match c {
                Command::Act(a) => Some(a.action),
                _ => None,
            })
            .collect();
        for a in acts_now {
            engine.step(
                now,
                Event::ActionOutcome {
                    action: a,
                    outcome: Outcome::Skipped("bench".into()),
                },
                &mut out,
            );
        }
    }
    let first = times[0];
    let slowest_round = (0..times.len())
        .max_by(|a, b| times[*a].total_cmp(&times[*b]))
        .unwrap_or(0);
    times.sort_by(f64::total_cmp);
    tick_only.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    println!("== one tick: {n} targets, {n_find} findings (5 %), 50 rounds, global budget 200");
    println!(
        "findings+tick: median {:.3} ms  p90 {:.3} ms  max {:.3} ms   (goal < 10 ms)",
        pct(&times, 0.5),
        pct(&times, 0.9),
        pct(&times, 1.0)
    );
    println!(
        "findings+tick thread CPU time: median {:.3} ms  p90 {:.3} ms  max {:.3} ms",
        pct(&cpu, 0.5),
        pct(&cpu, 0.9),
        pct(&cpu, 1.0)
    );
    println!(
        "first round (cold: queue, maps and heap grow) {first:.3} ms; slowest round #{slowest_round}"
    );
    println!(
        "tick alone (dispatch, ~{} acts/round): median {:.3} ms  max {:.3} ms",
        acts / 50,
        pct(&tick_only, 0.5),
        pct(&tick_only, 1.0)
    );
    println!(
        "allocations: {idle_allocs} in 1000 idle ticks; {:.3} per finding step (queue nodes)",
        finding_allocs as f64 / (50 * n_find) as f64
    );
    println!(
        "memory: {:.0} B/target allocated by Engine::new (measured), {:.0} B/target by the engine's estimate after 50 rounds",
        built as f64 / n as f64,
        engine.approx_bytes() as f64 / n as f64
    );
}

struct World {
    fault: Option<(Fault, Timestamp)>,
    down_since: Option<Timestamp>,
}

fn day_bench(n: usize, n_faults: usize, seed: u64) {
    let (targets, tiers) = fleet(n);
    let names: Vec<TargetId> = targets.iter().map(|t| t.name.clone()).collect();
    let index: std::collections::HashMap<TargetId, usize> = names
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, n)| (n, i))
        .collect();
    let mut engine = Engine::new(targets, tiers, EngineConfig::standard(200)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let day = 86_400u64;
    let mut schedule: Vec<(u64, usize, Fault)> = (0..n_faults)
        .map(|_| {
            let kind = match rng.random_range(0..100) {
                0..30 => Fault::Crash,
                30..50 => Fault::Leak,
                50..62 => Fault::BadDeploy,
                62..80 => Fault::Saturation,
                80..97 => Fault::ErrorBurst,
                _ => Fault::CrashLoop,
            };
            (rng.random_range(0..day), rng.random_range(0..n), kind)
        })
        .collect();
    schedule.sort_by_key(|s| s.0);
    let mut world: Vec<World> = (0..n)
        .map(|_| World {
            fault: None,
            down_since: None,
        })
        .collect();
    let mut next_fault = 0;
    // (due second, event)
    let mut pending: VecDeque<(u64, Event)> = VecDeque::new();
    let mut acts_of: std::collections::HashMap<ActionId, (usize, ActKind)> = Default::default();
    let mut out = Vec::with_capacity(4096);
    let mut repair_times = Vec::new();
    let mut incidents = 0u64;
    let mut escalations = 0u64;
    let mut commands = 0u64;
    let mut steps = 0u64;
    let mut human_fixes: VecDeque<(u64, usize)> = VecDeque::new();
    let t0 = now_wall();
    let c0 = thread_cpu_ms();
    for s in 0..day {
        let now = Timestamp::from_secs(s);
        // faults starting now
        while next_fault < schedule.len() && schedule[next_fault].0 == s {
            let (_, i, kind) = schedule[next_fault];
            next_fault += 1;
            if world[i].fault.is_none() {
                world[i].fault = Some((kind, now));
                world[i].down_since = Some(now);
                incidents += 1;
            }
        }
        // humans fix escalated targets an hour later
        while human_fixes.front().is_some_and(|(d, _)| *d <= s) {
            let (_, i) = human_fixes.pop_front().unwrap_or_default();
            if let Some(since) = world[i].down_since.take() {
                repair_times.push(now.since(since).as_secs());
            }
            world[i].fault = None;
            out.clear();
            engine.step(
                now,
                Event::Finding(Finding::from_health(
                    names[i].clone(),
                    now,
                    HealthState::Healthy,
                    LevelSet::EMPTY,
                )),
                &mut out,
            );
            engine.step(
                now,
                Event::Resume {
                    target: names[i].clone(),
                },
                &mut out,
            );
        }
        // detection: a finding every 10 s for each faulty target (staggered)
        for (i, w) in world.iter().enumerate() {
            if let Some((kind, since)) = w.fault
                && (s + i as u64).is_multiple_of(10)
            {
                out.clear();
                engine.step(
                    now,
                    Event::Finding(finding_for(&names[i], now, kind, since)),
                    &mut out,
                );
                steps += 1;
                commands += out.len() as u64;
            }
        }
        // the world answers what is due
        while pending.front().is_some_and(|(d, _)| *d <= s) {
            let Some((_, ev)) = pending.pop_front() else {
                break;
            };
            out.clear();
            engine.step(now, ev, &mut out);
            steps += 1;
            commands += out.len() as u64;
            handle(
                &out,
                s,
                now,
                &mut world,
                &mut acts_of,
                &mut pending,
                &names,
                &mut repair_times,
                &mut escalations,
                &mut human_fixes,
                &index,
                &mut engine,
            );
        }
        out.clear();
        engine.step(now, Event::Tick, &mut out);
        steps += 1;
        commands += out.len() as u64;
        handle(
            &out,
            s,
            now,
            &mut world,
            &mut acts_of,
            &mut pending,
            &names,
            &mut repair_times,
            &mut escalations,
            &mut human_fixes,
            &index,
            &mut engine,
        );
    }
    let wall = (now_wall() - t0).as_secs_f64();
    let cpu_s = (thread_cpu_ms() - c0) / 1e3;
    repair_times.sort_unstable();
    let mean = repair_times.iter().sum::<u64>() as f64 / repair_times.len().max(1) as f64;
    let p95 = repair_times
        .get(repair_times.len() * 95 / 100)
        .copied()
        .unwrap_or(0);
    let st = engine.stats();
    println!(
        "== one virtual day: {n} targets, 1 s ticks ({day} ticks), {n_faults} scheduled faults, seed {seed}"
    );
    println!(
        "wall {wall:.2} s, thread CPU {cpu_s:.2} s   (goal < 60 s)   steps {steps}  commands {commands}"
    );
    println!(
        "incidents {incidents}  repaired {}  MTTR mean {mean:.0} s  p95 {p95} s  escalations {escalations}  gave up {}",
        repair_times.len(),
        st.gave_up
    );
    let by: Vec<String> = Strategy::ALL
        .iter()
        .zip(st.acts_by_strategy)
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    println!(
        "acts {} ({}), fallbacks {}, successes {} failures {} unknown {}, approvals {}",
        st.acts,
        by.join(", "),
        st.fallbacks,
        st.successes,
        st.failures,
        st.unknowns,
        st.approvals_requested
    );
}

#[allow(clippy::too_many_arguments)]
fn handle(
    out: &[Command],
    s: u64,
    now: Timestamp,
    world: &mut [World],
    acts_of: &mut std::collections::HashMap<ActionId, (usize, ActKind)>,
    pending: &mut VecDeque<(u64, Event)>,
    names: &[TargetId],
    repair_times: &mut Vec<u64>,
    escalations: &mut u64,
    human_fixes: &mut VecDeque<(u64, usize)>,
    index: &std::collections::HashMap<TargetId, usize>,
    engine: &mut Engine,
) {
    let _ = (names, engine);
    for c in out {
        match c {
            Command::Act(a) => {
                let i = index[&a.target];
                acts_of.insert(a.action, (i, a.kind));
                // actuators take 2 s
                pending.push_back((
                    s + 2,
                    Event::ActionOutcome {
                        action: a.action,
                        outcome: Outcome::Success,
                    },
                ));
            }
            Command::Verify { action, .. } => {
                let Some(&(i, kind)) = acts_of.get(action) else {
                    continue;
                };
                let w = &mut world[i];
                let healed = match w.fault {
                    Some((f, _)) if fixes(f, kind) => {
                        w.fault = None;
                        if let Some(since) = w.down_since.take() {
                            repair_times.push(now.since(since).as_secs());
                        }
                        true
                    }
                    Some(_) => false,
                    None => true,
                };
                let outcome = if healed {
                    Outcome::Success
                } else {
                    Outcome::Failure("still failing".into())
                };
                pending.push_back((
                    s + 1,
                    Event::VerifyResult {
                        action: *action,
                        outcome,
                    },
                ));
            }
            Command::Notify(Notice::ApprovalRequested { approval, .. }) => {
                // an operator approves after 30 s
                pending.push_back((
                    s + 30,
                    Event::Approval {
                        approval: *approval,
                        decision: Decision::Approve,
                    },
                ));
            }
            Command::Escalate(e) => {
                *escalations += 1;
                human_fixes.push_back((s + 3600, index[&e.target]));
            }
            _ => {}
        }
    }
    // `pending` must stay ordered by due time: all pushes above are at most 30 s ahead, so
    // keep it sorted cheaply
    pending.make_contiguous().sort_by_key(|(d, _)| *d);
}

fn main() {
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at start: {}", l.trim());
    }
    let mut seed = 7u64;
    let mut n = 10_000usize;
    let mut n_faults = 5_000usize;
    let args: Vec<String> = std::env::args().collect();
    let mut k = 1;
    while k + 1 < args.len() {
        let v = &args[k + 1];
        match args[k].as_str() {
            "--seed" => seed = v.parse().unwrap_or(seed),
            "--targets" => n = v.parse().unwrap_or(n),
            "--faults" => n_faults = v.parse().unwrap_or(n_faults),
            other => eprintln!("ignoring unknown argument {other}"),
        }
        k += 2;
    }
    let _ = Severity::Info;
    tick_bench(n);
    day_bench(n, n_faults, seed);
}
