//! Training data sources turned into [`AgentSeries`]: a simulated history (medic-sim) or a
//! history in medic-sim's CSV format (`samples.csv` + `labels.csv`).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::time::Duration;

use medic_detect::predict::AgentSeries;
use medic_detect::predict::dataset::{Column, EpisodeMark, FailureMark};
use medic_sim::{History, Metric};

use crate::Error;

/// One [`AgentSeries`] per agent of `history`, columns named as [`Metric::name`].
pub fn from_history(history: &History) -> Vec<AgentSeries> {
    let step = Duration::from_secs(history.step_s);
    history
        .agents
        .iter()
        .enumerate()
        .map(|(a, agent)| AgentSeries {
            agent: agent.name.clone(),
            start: history.start,
            step,
            columns: Metric::ALL
                .iter()
                .map(|&m| Column {
                    name: m.name().to_owned(),
                    values: agent.series(m).collect(),
                })
                .collect(),
            failures: history
                .failures
                .iter()
                .filter(|f| f.agent == a)
                .map(|f| FailureMark {
                    at: history.timestamp(f.at_step),
                    predictable: f.predictable(),
                    kind: f.kind.name().to_owned(),
                })
                .collect(),
            lookalikes: history
                .episodes
                .iter()
                .filter(|e| e.agent == a)
                .map(|e| EpisodeMark {
                    start: history.timestamp(e.start),
                    end: history.timestamp(e.end),
                    kind: e.kind.name().to_owned(),
                })
                .collect(),
            preemptive_actions: Vec::new(),
        })
        .collect()
}

/// Reads `samples.csv` and `labels.csv` from `dir` (medic-sim's CSV format).
pub fn read_csv_dir(dir: &Path) -> Result<History, Error> {
    let open = |name: &str| {
        let path = dir.join(name);
        File::open(&path)
            .map(BufReader::new)
            .map_err(|source| Error::Io {
                path: path.display().to_string(),
                source,
            })
    };
    let samples = open("samples.csv")?;
    let labels = open("labels.csv")?;
    Ok(medic_sim::csv::read(samples, labels)?)
}
