//! `medic train signatures`: cluster the signatures of finished incidents from medic's
//! journal and write the per cluster × strategy success model with its card (see
//! `medic_detect::diagnosis::outcomes`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use medic_detect::diagnosis::outcomes::{self, Method};

/// Arguments of `medic train signatures`.
#[derive(clap::Args)]
pub struct SignaturesArgs {
    /// medic's data directory (the daemon's store).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Output directory.
    #[arg(long, default_value = "models")]
    pub out: PathBuf,
    /// k-means with this many clusters (the default method, k = 8).
    #[arg(long, conflicts_with = "dbscan")]
    pub k: Option<usize>,
    /// DBSCAN instead of k-means: `EPS,MIN_POINTS`, e.g. `1.0,3`.
    #[arg(long, value_name = "EPS,MIN")]
    pub dbscan: Option<String>,
    /// The fleet file, to name each target's tier (without it every tier is `unknown`).
    #[arg(long)]
    pub fleet: Option<PathBuf>,
    /// The tier policies for `--fleet`.
    #[arg(long, default_value = "policies")]
    pub policies: PathBuf,
}

fn method(args: &SignaturesArgs) -> anyhow::Result<Method> {
    if let Some(spec) = &args.dbscan {
        let Some((eps, min)) = spec.split_once(',') else {
            bail!("--dbscan wants EPS,MIN_POINTS, found {spec:?}");
        };
        let eps: f64 = eps
            .trim()
            .parse()
            .with_context(|| format!("--dbscan eps {eps:?}"))?;
        let min_points: usize = min
            .trim()
            .parse()
            .with_context(|| format!("--dbscan min points {min:?}"))?;
        if !(eps > 0.0 && eps.is_finite()) || min_points < 2 {
            bail!("--dbscan needs eps > 0 and at least 2 points, found {spec:?}");
        }
        return Ok(Method::Dbscan { eps, min_points });
    }
    let k = args.k.unwrap_or(8);
    if k == 0 {
        bail!("--k must be at least 1");
    }
    Ok(Method::KMeans { k, n_runs: 8 })
}

/// Runs `medic train signatures`.
pub fn run(args: SignaturesArgs) -> anyhow::Result<ExitCode> {
    let method = method(&args)?;
    let db = args.data_dir.join(medic_store::DB_FILE);
    if !db.is_file() {
        bail!("no medic store at {}", db.display());
    }
    let tiers: HashMap<String, String> = match &args.fleet {
        Some(f) => {
            let fleet = medic_policy::load(f, &args.policies).map_err(|e| {
                let msgs: Vec<String> = e.errors.iter().map(|x| x.to_string()).collect();
                anyhow::anyhow!("invalid fleet or policies:\n{}", msgs.join("\n"))
            })?;
            fleet
                .targets
                .iter()
                .map(|t| (t.name.as_str().to_owned(), t.tier.clone()))
                .collect()
        }
        None => HashMap::new(),
    };
    let store = medic_store::Store::open(&db)
        .with_context(|| format!("opening the store {}", db.display()))?;
    let rows = store.journal_all().context("reading the journal")?;
    let (entries, skipped) = outcomes::journal_entries(rows.iter().map(|r| &r.entry.payload));
    let tier_of = |name: &str| {
        tiers
            .get(name)
            .cloned()
            .unwrap_or_else(|| "unknown".to_owned())
    };
    let read = outcomes::records_from_journal(&entries, &tier_of);
    println!(
        "journal: {} rows ({} not engine entries), {} incidents, {} with a verified outcome, {} without",
        rows.len(),
        skipped,
        read.incidents,
        read.records.len(),
        read.without_outcome
    );
    let source = format!("store {}", args.data_dir.display());
    // The mark lets a daemon over this store replay only the outcomes after it.
    let last_seq = rows.last().map_or(0, |r| r.seq);
    let model = outcomes::train(&read.records, method, &source)
        .context("clustering incident signatures")?
        .with_journal(outcomes::TrainedJournal::new(&args.data_dir, last_seq));
    let card = model.card();
    let method_s = match card.method {
        Method::KMeans { k, n_runs } => {
            format!("k-means k={k} ({n_runs} runs, seed {})", card.seed)
        }
        Method::Dbscan { eps, min_points } => format!("dbscan eps={eps} min_points={min_points}"),
    };
    println!(
        "{method_s}: {} clusters over {} incidents ({} noise), silhouette {:.3}, {} verified attempts",
        card.k, card.incidents, card.noise, card.silhouette, card.attempts
    );
    println!(
        "  {:<8} {:>5}  {:<14} {:>9} {:>9}  typical signature",
        "cluster", "size", "strategy>failed", "succ/att", "estimate"
    );
    for c in &card.clusters {
        let mut first = true;
        for r in model.rates().iter().filter(|r| r.cluster == c.id) {
            println!(
                "  {:<8} {:>5}  {:<14} {:>9} {:>9.2}  {}",
                if first {
                    c.id.to_string()
                } else {
                    String::new()
                },
                if first {
                    c.size.to_string()
                } else {
                    String::new()
                },
                // `reset>restart`: reset chosen after restart had failed in the incident.
                if r.after_failed.is_empty() {
                    r.strategy.as_str().to_owned()
                } else {
                    let after: Vec<&str> = r.after_failed.iter().map(|s| s.as_str()).collect();
                    format!("{}>{}", r.strategy, after.join(","))
                },
                format!("{}/{}", r.successes, r.attempts),
                r.estimate,
                if first { c.typical.as_str() } else { "" }
            );
            first = false;
        }
    }
    let (path, card_path) = model.save(&args.out)?;
    println!("wrote {} and {}", path.display(), card_path.display());
    Ok(ExitCode::SUCCESS)
}
