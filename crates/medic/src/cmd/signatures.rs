//! `medic train signatures`: cluster recorded failures into signatures and write the model;
//! argument handling, reading the sources and printing only; the clustering lives in
//! `medic_detect::diagnosis::signatures`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use medic_core::DiagnosisCategory;
use medic_detect::diagnosis::signatures::{self, FailureRecord, TrainParams};
use medic_detect::diagnosis::{PatternLibrary, Signals, analyze::json_strings, diagnose, eval};

/// Arguments of `medic train signatures`.
#[derive(clap::Args)]
pub struct Args {
    /// A labelled JSONL corpus (`{"text","category"}` per line; `unknown` lines are skipped as
    /// they are not failures), or medic's data directory (holding medic.db), whose incidents
    /// are read.
    #[arg(long)]
    pub from: PathBuf,
    /// Output directory for signatures.json and signatures.card.json.
    #[arg(long, default_value = "models")]
    pub out: PathBuf,
    /// The pattern library; names the clusters of unlabelled failures (from a store) by their
    /// diagnosis.
    #[arg(long, default_value = "policies/patterns.yaml")]
    pub patterns: PathBuf,
    /// Smallest k tried.
    #[arg(long, default_value_t = TrainParams::default().k_min)]
    pub k_min: usize,
    /// Largest k tried (capped at a third of the failures).
    #[arg(long, default_value_t = TrainParams::default().k_max)]
    pub k_max: usize,
    /// Failures a term must appear in to enter the vocabulary.
    #[arg(long, default_value_t = TrainParams::default().min_df)]
    pub min_df: usize,
    /// k-means restarts per k.
    #[arg(long, default_value_t = TrainParams::default().n_runs)]
    pub runs: usize,
    /// Divisor of the novelty floor (larger: fewer failures called novel).
    #[arg(long, default_value_t = TrainParams::default().novelty_margin)]
    pub novelty_margin: f64,
    /// Print the card as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `medic train signatures`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (records, source) = if args.from.is_dir() {
        let library = PatternLibrary::load(&args.patterns)?;
        (
            store_failures(&args.from, &library)?,
            format!("incidents of {}", args.from.display()),
        )
    } else {
        (
            corpus_failures(&args.from)?,
            args.from.display().to_string(),
        )
    };
    let params = TrainParams {
        k_min: args.k_min,
        k_max: args.k_max,
        min_df: args.min_df,
        n_runs: args.runs,
        novelty_margin: args.novelty_margin,
        source,
        ..TrainParams::default()
    };
    let report = signatures::train(&records, &params)?;
    let (model_path, card_path) = report.model.save(&args.out)?;
    let card = report.model.card();
    if args.json {
        println!("{}", serde_json::to_string(card)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} failures ({} without known terms skipped), vocabulary {} terms",
        card.records, card.skipped_empty, card.vocabulary_size
    );
    println!("k scan (silhouette):");
    for s in &card.scan {
        let mark = if s.silhouette == card.silhouette {
            "  ← chosen"
        } else {
            ""
        };
        println!("  k {:>3}  {:.3}{mark}", s.k, s.silhouette);
    }
    println!(
        "k {}  silhouette {:.3}  purity {}",
        card.k,
        card.silhouette,
        card.purity
            .map_or("- (unlabelled)".to_owned(), |p| format!("{p:.3}"))
    );
    println!(
        "\n{:>3} {:>5}  {:<20} {:>6} {:>7}  top terms",
        "id", "size", "category", "share", "min sim"
    );
    for c in &card.clusters {
        println!(
            "{:>3} {:>5}  {:<20} {:>6} {:>7.3}  {}",
            c.id,
            c.size,
            c.category.as_deref().unwrap_or("-"),
            c.category_share
                .map_or("-".to_owned(), |s| format!("{s:.2}")),
            c.min_similarity,
            c.top_terms.join(", ")
        );
    }
    println!(
        "\nwrote {} and {}",
        model_path.display(),
        card_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn corpus_failures(path: &Path) -> anyhow::Result<Vec<FailureRecord>> {
    Ok(eval::load_corpus(path)?
        .into_iter()
        .filter(|s| s.category != DiagnosisCategory::Unknown)
        .map(|s| FailureRecord {
            text: s.text,
            signals: Signals::default(),
            label: Some(s.category),
        })
        .collect())
}

/// Every incident of the store as a failure: the strings of its signature and summary. Its
/// label is the pattern library's diagnosis of that text (none when it says `unknown`).
fn store_failures(dir: &Path, library: &PatternLibrary) -> anyhow::Result<Vec<FailureRecord>> {
    // Opening would create an empty database; a wrong path should be an error instead.
    let db = dir.join(medic_store::DB_FILE);
    if !db.is_file() {
        anyhow::bail!("no medic database at {}", db.display());
    }
    let store = medic_store::Store::open_data_dir(dir)
        .with_context(|| format!("opening the store in {}", dir.display()))?;
    let incidents = store.incidents(
        None,
        medic_core::Timestamp::ZERO..medic_core::Timestamp::from_millis(u64::MAX),
    )?;
    let mut out = Vec::new();
    for incident in &incidents {
        let mut lines = Vec::new();
        json_strings(&incident.signature, 1000, &mut lines);
        json_strings(&incident.summary, 1000, &mut lines);
        let text = lines.join("\n");
        let category = diagnose(library, &text, &Signals::default()).category();
        out.push(FailureRecord {
            text,
            signals: Signals::default(),
            label: (category != DiagnosisCategory::Unknown).then_some(category),
        });
    }
    Ok(out)
}
