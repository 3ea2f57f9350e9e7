//! The history sources of `medic train` beyond the simulator and CSV (a Prometheus server,
//! medic's own store) and `medic train iforest`. Argument parsing and printing only; the
//! sources live in `medic_train::prometheus` and `medic_train::store`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use medic_core::Timestamp;
use medic_detect::iforest::{Contamination, Params};
use medic_detect::predict::AgentSeries;
use medic_detect::predict::steps::RAW_SERIES;
use medic_sim::HistoryConfig;
use medic_train::prometheus::{
    self, ClientOptions, ColumnQuery, PromClient, PromSource, format_time, parse_duration,
    parse_time,
};
use medic_train::store::{StoreColumn, StoreSource};

use super::Source;

/// Arguments of the Prometheus and store sources.
#[derive(clap::Args, Debug, Clone)]
pub struct ExternalArgs {
    /// `--from prometheus`: one raw column per query, `NAME=PROMQL` (repeat for every column
    /// the features read: cpu, rss_mb, latency_p50_ms, …).
    #[arg(long = "query", value_name = "NAME=PROMQL")]
    pub queries: Vec<String>,
    /// `--from prometheus`: failures start where this query starts returning a sample, e.g.
    /// `up == 0` or `changes(process_start_time_seconds[2m]) > 0` (no `bool` modifier).
    #[arg(long, value_name = "PROMQL")]
    pub failure_query: Option<String>,
    /// Failure labels in medic-sim's labels.csv format
    /// (`agent,timestamp_ms,kind,precursor_start_ms`), added to the source's own.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// `--from prometheus`: the label whose value names an agent.
    #[arg(long, default_value = "instance")]
    pub agent_label: String,
    /// First time: Unix seconds, RFC 3339 UTC (2026-01-01T00:00:00Z), or a duration before
    /// `--end` (e.g. 7d). Prometheus default: 1d; store default: the whole history.
    #[arg(long)]
    pub start: Option<String>,
    /// Last time: Unix seconds, RFC 3339 UTC, or `now` (Prometheus: the server's time, the
    /// default). Store default: the whole history.
    #[arg(long)]
    pub end: Option<String>,
    /// Time between steps (Prometheus and store).
    #[arg(long, default_value = "60s")]
    pub step: String,
    /// `--from store`: one raw column per stored metric: `NAME=METRIC`,
    /// `NAME=METRIC{label="v"}`, `NAME=rate(METRIC)`, optionally `*FACTOR` or `/DIVISOR`
    /// (repeat for every column the features read).
    #[arg(long = "metric", value_name = "NAME=SPEC")]
    pub metrics: Vec<String>,
    /// `--from prometheus`: seconds per request before giving up.
    #[arg(long, default_value_t = 30)]
    pub timeout_s: u64,
    /// `--from prometheus`: largest response accepted, in MiB.
    #[arg(long, default_value_t = 64)]
    pub max_body_mib: usize,
}

fn needed_columns(flag: &str, example: &str) -> String {
    format!(
        "needs {flag} for each raw column the features read: {} (e.g. {example})",
        RAW_SERIES.join(", ")
    )
}

fn add_labels(series: &mut [AgentSeries], ext: &ExternalArgs) -> anyhow::Result<Option<String>> {
    let Some(path) = &ext.labels else {
        return Ok(None);
    };
    let labels = prometheus::read_labels_csv(path)?;
    let unknown = prometheus::apply_labels(series, &labels);
    println!(
        "labels: {} failures from {} ({unknown} of agents without history, ignored)",
        labels.len(),
        path.display()
    );
    Ok(Some(format!("labels {}", path.display())))
}

/// `--from prometheus URL`.
pub fn load_prometheus(
    url: &str,
    ext: &ExternalArgs,
) -> anyhow::Result<(Vec<AgentSeries>, String)> {
    if ext.queries.is_empty() {
        bail!(
            "--from prometheus {}",
            needed_columns(
                "--query NAME=PROMQL",
                "--query 'cpu=rate(process_cpu_seconds_total[1m])'"
            )
        );
    }
    let columns = ext
        .queries
        .iter()
        .map(|q| q.parse::<ColumnQuery>())
        .collect::<Result<Vec<_>, _>>()?;
    let client = PromClient::new(
        url,
        ClientOptions {
            timeout: Duration::from_secs(ext.timeout_s.max(1)),
            max_body_bytes: ext.max_body_mib.max(1).saturating_mul(1 << 20),
        },
    )?;
    let end = match ext.end.as_deref() {
        None | Some("now") => client
            .server_time()
            .context("asking the server for its time (--end now)")?,
        Some(t) => parse_time(t)?,
    };
    let start = resolve_start(ext.start.as_deref().unwrap_or("1d"), Some(end))?;
    let step = parse_duration(&ext.step)?;
    let src = PromSource {
        columns,
        failure_query: ext.failure_query.clone(),
        agent_label: ext.agent_label.clone(),
        start,
        end,
        step,
    };
    let (mut series, r) = prometheus::fetch(&client, &src)?;
    println!(
        "prometheus {}: {} agents × {} steps of {:?} from {} to {}; {} values, {} missing, \
         {} dark rows, {} off-grid samples; {} failures marked ({} already failing at the start, \
         {} of unknown agents)",
        client.server(),
        r.agents,
        r.steps,
        step,
        format_time(start),
        format_time(end),
        r.values,
        r.missing,
        r.dark_rows,
        r.off_grid,
        r.failures,
        r.failures_open_at_start,
        r.failures_unknown_agent
    );
    for (c, n) in src.columns.iter().zip(&r.column_values) {
        let of = r.agents * r.steps;
        println!("  {:<16} {n}/{of} values  ({})", c.column, c.query);
        if *n == 0 {
            println!(
                "  warning: column {} is empty: its query returns nothing",
                c.column
            );
        }
    }
    let labels = add_labels(&mut series, ext)?;
    let queries: Vec<String> = src
        .columns
        .iter()
        .map(|c| format!("{}={}", c.column, c.query))
        .collect();
    let mut source = format!(
        "prometheus {} {}..{} step {}s; columns {}; failures: {}",
        client.server(),
        format_time(start),
        format_time(end),
        step.as_secs_f64(),
        queries.join("; "),
        src.failure_query
            .as_deref()
            .unwrap_or("none from prometheus")
    );
    if let Some(l) = labels {
        source.push_str("; ");
        source.push_str(&l);
    }
    Ok((series, source))
}

fn resolve_start(text: &str, end: Option<Timestamp>) -> anyhow::Result<Timestamp> {
    if let Ok(t) = parse_time(text) {
        return Ok(t);
    }
    let back = parse_duration(text)
        .with_context(|| format!("--start {text:?}: neither a time nor a duration"))?;
    let Some(end) = end else {
        bail!("--start {text:?} is relative: give --end as well");
    };
    Ok(Timestamp::from_millis(end.as_millis().saturating_sub(
        u64::try_from(back.as_millis()).unwrap_or(u64::MAX),
    )))
}

/// `--from store DATA_DIR`.
pub fn load_store(dir: &Path, ext: &ExternalArgs) -> anyhow::Result<(Vec<AgentSeries>, String)> {
    if ext.metrics.is_empty() {
        bail!(
            "--from store {}",
            needed_columns(
                "--metric NAME=SPEC",
                "--metric 'rss_mb=process_resident_memory_bytes/1048576'"
            )
        );
    }
    let columns = ext
        .metrics
        .iter()
        .map(|m| m.parse::<StoreColumn>())
        .collect::<Result<Vec<_>, _>>()?;
    let db = dir.join(medic_store::DB_FILE);
    if !db.is_file() {
        bail!(
            "no medic store at {} (expected {})",
            dir.display(),
            db.display()
        );
    }
    let end = ext.end.as_deref().map(parse_time).transpose()?;
    let start = ext
        .start
        .as_deref()
        .map(|s| resolve_start(s, end))
        .transpose()?;
    let all = StoreSource::all_time();
    let range = start.unwrap_or(all.start)..end.map_or(all.end, |e| e + Duration::from_millis(1));
    let step = parse_duration(&ext.step)?;
    let store = medic_store::Store::open(&db)?;
    let src = StoreSource {
        columns,
        step,
        range,
        targets: None,
    };
    let (mut series, r) = medic_train::store::read(&store, &src)?;
    println!(
        "store {}: {} targets ({} without the columns' metrics), {} steps of {:?} from {} \
         samples; {} values, {} missing, {} dark rows; {} failures, {} preemptive actions \
         (their windows are labelled averted)",
        dir.display(),
        r.targets,
        r.targets_without_samples,
        r.steps,
        step,
        r.samples,
        r.values,
        r.missing,
        r.dark_rows,
        r.failures,
        r.preemptive_actions
    );
    let labels = add_labels(&mut series, ext)?;
    let specs: Vec<&str> = ext.metrics.iter().map(String::as_str).collect();
    let mut source = format!(
        "medic store {} step {}s; columns {}; failures from incidents and the journal, \
         preemptive actions from the journal",
        dir.display(),
        step.as_secs_f64(),
        specs.join("; ")
    );
    if let Some(l) = labels {
        source.push_str("; ");
        source.push_str(&l);
    }
    Ok((series, source))
}

/// Arguments of `medic train iforest`.
#[derive(clap::Args)]
pub struct IforestArgs {
    /// Data source.
    #[arg(long, value_enum, default_value = "sim")]
    pub from: Source,
    /// The data directory (`csv`, `store`) or the server URL (`prometheus`).
    pub path: Option<String>,
    /// Seed of the simulated history (with `--from sim`) and of the forest.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Simulated agents.
    #[arg(long, default_value_t = 20)]
    pub agents: usize,
    /// Simulated days.
    #[arg(long, default_value_t = 4.0)]
    pub days: f64,
    /// Prometheus and store options.
    #[command(flatten)]
    pub ext: ExternalArgs,
    /// Trees.
    #[arg(long, default_value_t = 100)]
    pub trees: usize,
    /// Subsample size ψ.
    #[arg(long, default_value_t = 256)]
    pub samples: usize,
    /// Fraction of training rows above the threshold, or `auto` (score 0.5).
    #[arg(long, default_value = "0.1")]
    pub contamination: String,
    /// Fraction of the time range, at the end, scored for the card's figures.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Minutes before a failure in which a row counts as pre-failure (figures only).
    #[arg(long, default_value_t = 30)]
    pub horizon_min: u64,
    /// Output directory.
    #[arg(long, default_value = "models")]
    pub out: PathBuf,
    /// File stem of the model (`<name>.json`).
    #[arg(long, default_value = "anomaly_iforest")]
    pub name: String,
}

/// Loads the history of any source as series (with a description for the card).
pub fn load(
    from: Source,
    path: Option<&str>,
    seed: u64,
    agents: usize,
    days: f64,
    ext: &ExternalArgs,
) -> anyhow::Result<(Vec<AgentSeries>, String)> {
    match from {
        Source::Sim => {
            if agents == 0 || !(days > 0.0 && days.is_finite()) {
                bail!("--agents and --days must be positive");
            }
            let h = medic_sim::generate(&HistoryConfig::new(seed, agents, days));
            println!(
                "history: {agents} agents over {days} days, {} failures",
                h.failures.len()
            );
            Ok((
                medic_train::source::from_history(&h),
                format!("medic-sim history seed={seed} agents={agents} days={days}"),
            ))
        }
        Source::Csv => {
            let Some(dir) = path else {
                bail!("--from csv needs the data directory (samples.csv, labels.csv) as PATH");
            };
            let h = medic_train::source::read_csv_dir(Path::new(dir))
                .with_context(|| format!("reading {dir}"))?;
            Ok((medic_train::source::from_history(&h), format!("csv {dir}")))
        }
        Source::Prometheus => {
            let Some(url) = path else {
                bail!("--from prometheus needs the server URL as PATH, e.g. http://127.0.0.1:9090");
            };
            load_prometheus(url, ext)
        }
        Source::Store => {
            let Some(dir) = path else {
                bail!("--from store needs medic's data directory as PATH");
            };
            load_store(Path::new(dir), ext)
        }
    }
}

/// `medic train iforest`.
pub fn iforest(args: IforestArgs) -> anyhow::Result<ExitCode> {
    let contamination = match args.contamination.trim() {
        "auto" => Contamination::Auto,
        v => Contamination::Fraction(
            v.parse()
                .ok()
                .filter(|f: &f64| *f > 0.0 && *f <= 0.5)
                .with_context(|| {
                    format!("--contamination {v:?}: auto or a fraction in (0, 0.5]")
                })?,
        ),
    };
    let (series, source) = load(
        args.from,
        args.path.as_deref(),
        args.seed,
        args.agents,
        args.days,
        &args.ext,
    )?;
    let cfg = medic_train::iforest::IforestConfig {
        params: Params {
            n_trees: args.trees,
            max_samples: args.samples,
            seed: args.seed,
            contamination,
        },
        test_fraction: args.test_fraction,
        horizon: Duration::from_secs(args.horizon_min * 60),
        source,
        out_dir: args.out.clone(),
        model_name: args.name.clone(),
        ..medic_train::iforest::IforestConfig::default()
    };
    let r = medic_train::iforest::run(&series, &cfg)?;
    println!(
        "fitted {} trees (ψ {}) on {} rows of {} features; {} rows skipped (a feature missing); \
         threshold {:.4}",
        r.model.card.n_trees,
        r.model.card.psi,
        r.train_rows,
        r.model.card.feature_names.len(),
        r.skipped_rows,
        r.model.card.threshold
    );
    let m = &r.metrics;
    let fig = |k: &str| m.get(k).map_or("-".into(), |v| format!("{v:.3}"));
    println!(
        "test: {} rows, {} pre-failure; ROC AUC pre-failure vs other {}; flagged: pre-failure {}, other {}",
        r.test_rows,
        r.test_pre_failure_rows,
        fig("test_auc_pre_failure"),
        fig("test_flagged_pre_failure"),
        fig("test_flagged_other")
    );
    println!("wrote {}", r.model_path.display());
    Ok(ExitCode::SUCCESS)
}
