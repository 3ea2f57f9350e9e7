//! `medic simulate`: what would these policies have done over a simulated fleet and days.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use medic_sim::fleet::SimFleet;
use medic_sim::policy_sim::{self, SimConfig, SimReport};

/// Arguments of `medic simulate`.
#[derive(clap::Args)]
pub struct Args {
    /// A fleet file; without it, `--targets` targets are generated from the tiers.
    #[arg(long)]
    pub fleet: Option<PathBuf>,
    /// The directory of tier policy files.
    #[arg(long, default_value = "policies")]
    pub policies: PathBuf,
    /// Targets to generate (ignored with --fleet).
    #[arg(long, default_value_t = 1000)]
    pub targets: usize,
    /// Virtual days to simulate.
    #[arg(long, default_value_t = 1.0)]
    pub days: f64,
    /// Seeds the fault schedule.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Faults per target per day.
    #[arg(long, default_value_t = 0.2)]
    pub fault_rate: f64,
    /// The engine's global budget of concurrent actions.
    #[arg(long, default_value_t = 200)]
    pub max_concurrent: u32,
    /// Engine tick cadence in seconds while anything is open.
    #[arg(long, default_value_t = 1.0)]
    pub tick: f64,
    /// Nobody answers approval requests (they time out into escalations).
    #[arg(long)]
    pub no_approvals: bool,
    /// One JSON object instead of the readable report.
    #[arg(long)]
    pub json: bool,
    /// Run two policy directories on the same fleet and faults and print them side by side.
    #[arg(long, num_args = 2, value_names = ["DIR_A", "DIR_B"])]
    pub compare: Option<Vec<PathBuf>>,
    /// Learning from outcomes during the run: the engine re-ranks plans by the success it
    /// has seen per failure signature and strategy (`on`), or not (`off`, the default).
    #[arg(long, value_enum, default_value_t = Learning::Off)]
    pub learning: Learning,
    /// Run the same fleet and faults with learning off and on, and print both with the
    /// ratio of failed actions per incident.
    #[arg(long, conflicts_with = "compare")]
    pub compare_learning: bool,
    /// Start learning from this model (`outcome_signatures.json` from `medic train
    /// signatures`); turns learning on.
    #[arg(long, value_name = "FILE")]
    pub signatures: Option<PathBuf>,
}

/// `--learning on|off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Learning {
    /// The engine learns from verified outcomes as they happen.
    On,
    /// Plans rank by their base confidence only.
    Off,
}

/// Runs `medic simulate`: exit 0 when the engine kept every invariant, 1 when any was
/// violated, 2 on bad input.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !(args.days > 0.0 && args.days.is_finite()) {
        bail!("--days must be a positive number, found {}", args.days);
    }
    if !(args.tick > 0.0 && args.tick.is_finite()) {
        bail!(
            "--tick must be a positive number of seconds, found {}",
            args.tick
        );
    }
    let mut cfg = SimConfig::standard(args.days, args.seed);
    cfg.faults_per_target_day = args.fault_rate.max(0.0);
    cfg.max_concurrent = args.max_concurrent.max(1);
    cfg.tick = std::time::Duration::from_secs_f64(args.tick);
    if args.no_approvals {
        cfg.approval_delay = None;
    }
    cfg.learning = args.learning == Learning::On;
    if let Some(path) = &args.signatures {
        let model = medic_detect::diagnosis::outcomes::OutcomeModel::load(path)?;
        cfg.prior_learner = Some(model.learner());
        cfg.learning = true;
    }
    if args.compare_learning {
        let off = SimConfig {
            learning: false,
            ..cfg.clone()
        };
        let on = SimConfig {
            learning: true,
            ..cfg
        };
        let (a, wall_a) = run_one(&args, &args.policies, &off)?;
        let (b, wall_b) = run_one(&args, &args.policies, &on)?;
        let ratio = if a.failed_actions_per_incident > 0.0 {
            b.failed_actions_per_incident / a.failed_actions_per_incident
        } else {
            f64::NAN
        };
        if args.json {
            let v = serde_json::json!({
                "off": { "report": a, "wall_s": wall_a },
                "on": { "report": b, "wall_s": wall_b },
                "rows": policy_sim::compare(&a, &b),
                "failed_actions_per_incident_ratio": ratio,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            print_compare(
                Path::new("learning off"),
                Path::new("learning on"),
                &a,
                &b,
                wall_a,
                wall_b,
            );
            println!(
                "failed actions per incident: off {:.3} ({} / {}), on {:.3} ({} / {}); on/off = {ratio:.3} ({} outcomes learned)",
                a.failed_actions_per_incident,
                a.failed_actions,
                a.incidents,
                b.failed_actions_per_incident,
                b.failed_actions,
                b.incidents,
                b.outcomes_learned
            );
        }
        return Ok(exit(a.violations + b.violations));
    }
    match &args.compare {
        Some(dirs) if dirs.len() == 2 => {
            let (a, wall_a) = run_one(&args, &dirs[0], &cfg)?;
            let (b, wall_b) = run_one(&args, &dirs[1], &cfg)?;
            if args.json {
                let rows = policy_sim::compare(&a, &b);
                let v = serde_json::json!({
                    "a": { "policies": dirs[0], "report": a, "wall_s": wall_a },
                    "b": { "policies": dirs[1], "report": b, "wall_s": wall_b },
                    "rows": rows,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_compare(&dirs[0], &dirs[1], &a, &b, wall_a, wall_b);
            }
            Ok(exit(a.violations + b.violations))
        }
        _ => {
            let (r, wall) = run_one(&args, &args.policies, &cfg)?;
            if args.json {
                let mut v = serde_json::to_value(&r)?;
                if let Some(o) = v.as_object_mut() {
                    o.insert("wall_s".into(), serde_json::json!(wall));
                    o.insert("policies".into(), serde_json::json!(args.policies));
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_report(&args.policies, &r, wall);
            }
            Ok(exit(r.violations))
        }
    }
}

fn exit(violations: u64) -> ExitCode {
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn load_fleet(args: &Args, policies: &Path) -> anyhow::Result<SimFleet> {
    let show = |e: medic_policy::ValidationErrors| {
        e.errors
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    match &args.fleet {
        Some(f) => {
            let fleet = medic_policy::load(f, policies)
                .map_err(|e| anyhow::anyhow!("invalid fleet or policies:\n{}", show(e)))?;
            Ok(SimFleet::from_fleet(&fleet))
        }
        None => {
            let tiers = medic_policy::load_policies(policies)
                .map_err(|e| anyhow::anyhow!("invalid policies:\n{}", show(e)))?;
            Ok(SimFleet::generate(args.targets, tiers))
        }
    }
}

/// Wall-clock stopwatch for the report's "wall" figure only; decisions never see it.
#[allow(clippy::disallowed_methods)]
fn wall_now() -> std::time::Instant {
    std::time::Instant::now()
}

fn run_one(args: &Args, policies: &Path, cfg: &SimConfig) -> anyhow::Result<(SimReport, f64)> {
    let fleet = load_fleet(args, policies)?;
    let t0 = wall_now();
    let report = policy_sim::simulate(&fleet, cfg)
        .with_context(|| format!("simulating with policies {}", policies.display()))?;
    Ok((report, t0.elapsed().as_secs_f64()))
}

fn print_report(policies: &Path, r: &SimReport, wall: f64) {
    println!(
        "simulated {} targets for {:.2} days (seed {}, policies {}) in {wall:.2} s wall",
        r.targets,
        r.virtual_secs as f64 / 86_400.0,
        r.seed,
        policies.display()
    );
    let tiers: Vec<String> = r.tiers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    println!("tiers: {}", tiers.join(", "));
    let kinds: Vec<String> = r
        .faults_by_kind
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "faults: {} ({}; {} skipped: target already faulty)",
        r.faults,
        kinds.join(", "),
        r.faults_skipped_overlap
    );
    println!(
        "incidents: {}   cascaded to dependents: {}   averted by preemptive actions: {}",
        r.incidents, r.cascaded, r.averted
    );
    println!(
        "resolved: by the engine {}, by a human after escalation {}, on their own {}; still open at the end {}",
        r.healed_by_engine, r.healed_by_human, r.ended_on_their_own, r.unresolved
    );
    println!(
        "MTTR (failure onset → fault gone, {} incidents): mean {:.1} s   p95 {:.1} s",
        r.mttr_samples, r.mttr_mean_s, r.mttr_p95_s
    );
    println!(
        "actions: {} ({} fallbacks)   approvals requested: {}",
        r.actions, r.fallbacks, r.approvals_requested
    );
    println!(
        "failed actions: {} ({:.3} per incident)   learning: {}{}",
        r.failed_actions,
        r.failed_actions_per_incident,
        if r.learning { "on" } else { "off" },
        if r.learning {
            format!(" ({} outcomes learned)", r.outcomes_learned)
        } else {
            String::new()
        }
    );
    println!(
        "  {:<14} {:>8} {:>8} {:>8} {:>8}",
        "strategy", "started", "success", "failure", "unknown"
    );
    for (s, c) in &r.actions_by_strategy {
        println!(
            "  {:<14} {:>8} {:>8} {:>8} {:>8}",
            s, c.started, c.success, c.failure, c.unknown
        );
    }
    let reasons: Vec<String> = r
        .escalations_by_reason
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "escalations: {} ({})   gave up (crash loops): {}",
        r.escalations,
        reasons.join(", "),
        r.gave_up
    );
    println!(
        "engine: {} findings, {} ticks, {} journal entries, {} incidents opened, {} options skipped for want of an action",
        r.findings, r.ticks, r.engine.journal_entries, r.engine.incidents, r.engine.not_executable
    );
    println!("violations: {}", r.violations);
    for (k, v) in &r.violations_by_kind {
        println!("  {k}: {v}");
    }
    for e in &r.violation_examples {
        println!("  e.g. {e}");
    }
}

fn print_compare(a_dir: &Path, b_dir: &Path, a: &SimReport, b: &SimReport, wa: f64, wb: f64) {
    println!(
        "same fleet ({} targets), same faults (seed {}, {:.2} days); wall {wa:.2} s and {wb:.2} s",
        a.targets,
        a.seed,
        a.virtual_secs as f64 / 86_400.0
    );
    let an = a_dir.display().to_string();
    let bn = b_dir.display().to_string();
    println!("{:<34} {:>14} {:>14} {:>12}", "measure", an, bn, "b - a");
    for row in policy_sim::compare(a, b) {
        let d = row.b - row.a;
        let mark = if d != 0.0 {
            format!("{d:+.1}")
        } else {
            String::new()
        };
        println!(
            "{:<34} {:>14} {:>14} {:>12}",
            row.name,
            fmt_num(row.a),
            fmt_num(row.b),
            mark
        );
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}
