//! Training data sources turned into [`AgentSeries`]: a simulated history (medic-sim) or a
//! history in medic-sim's CSV format (`samples.csv` + `labels.csv`).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use medic_detect::predict::AgentSeries;
use medic_sim::History;

use crate::Error;

/// One [`AgentSeries`] per agent of `history` (see [`AgentSeries::from_sim`]).
pub fn from_history(history: &History) -> Vec<AgentSeries> {
    AgentSeries::from_sim(history)
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
