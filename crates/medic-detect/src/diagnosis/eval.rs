//! Evaluation of the analyzer on a labelled corpus (JSONL lines `{"text", "category"}`):
//! accuracy, per-category precision and recall, and the confusion matrix.

use std::path::Path;

use medic_core::DiagnosisCategory;
use serde::{Deserialize, Serialize};

use super::analyze::{Signals, diagnose};
use super::patterns::PatternLibrary;
use super::{Error, parse_category};

/// One labelled message.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The message as the program printed it (may span lines).
    pub text: String,
    /// Its true category.
    pub category: DiagnosisCategory,
}

#[derive(Deserialize)]
struct SampleLine {
    text: String,
    category: String,
}

/// Reads a JSONL corpus; blank lines are skipped, any bad line is an error with its number.
pub fn load_corpus(path: &Path) -> Result<Vec<Sample>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadCorpus {
        path: path.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: SampleLine =
            serde_json::from_str(line).map_err(|source| Error::CorpusLine {
                path: path.to_owned(),
                line: i + 1,
                source,
            })?;
        let category = parse_category(&parsed.category).ok_or_else(|| Error::CorpusCategory {
            path: path.to_owned(),
            line: i + 1,
            category: parsed.category.clone(),
        })?;
        out.push(Sample {
            text: parsed.text,
            category,
        });
    }
    Ok(out)
}

/// Figures of one category.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CategoryStats {
    /// The category.
    pub category: DiagnosisCategory,
    /// Samples labelled with it.
    pub support: usize,
    /// Samples predicted as it.
    pub predicted: usize,
    /// Samples labelled and predicted as it.
    pub correct: usize,
    /// `correct / predicted` (`None` when nothing was predicted as it).
    pub precision: Option<f64>,
    /// `correct / support` (`None` when nothing is labelled with it).
    pub recall: Option<f64>,
}

/// A misclassified sample.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Miss {
    /// Its text.
    pub text: String,
    /// The label.
    pub expected: DiagnosisCategory,
    /// The prediction.
    pub predicted: DiagnosisCategory,
    /// Confidence of the prediction.
    pub confidence: f64,
}

/// The result of [`evaluate`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalReport {
    /// Samples.
    pub n: usize,
    /// Correctly classified samples.
    pub correct: usize,
    /// `correct / n`.
    pub accuracy: f64,
    /// Wrong predictions made with confidence ≥ 0.85 (the default auto-execution threshold).
    pub confident_wrong: usize,
    /// One entry per category of [`DiagnosisCategory::ALL`].
    pub per_category: Vec<CategoryStats>,
    /// `confusion[actual][predicted]`, indices into [`DiagnosisCategory::ALL`].
    pub confusion: Vec<Vec<usize>>,
    /// The misclassified samples.
    pub misses: Vec<Miss>,
}

/// Classifies every sample (top cause, `unknown` when nothing matched) and scores the result.
pub fn evaluate(library: &PatternLibrary, samples: &[Sample]) -> EvalReport {
    let k = DiagnosisCategory::ALL.len();
    let index = |c: DiagnosisCategory| {
        DiagnosisCategory::ALL
            .iter()
            .position(|x| *x == c)
            .unwrap_or(k - 1)
    };
    let mut confusion = vec![vec![0usize; k]; k];
    let mut misses = Vec::new();
    let mut confident_wrong = 0;
    let signals = Signals::default();
    for s in samples {
        let d = diagnose(library, &s.text, &signals);
        let predicted = d.category();
        confusion[index(s.category)][index(predicted)] += 1;
        if predicted != s.category {
            if d.confidence() >= 0.85 {
                confident_wrong += 1;
            }
            misses.push(Miss {
                text: s.text.clone(),
                expected: s.category,
                predicted,
                confidence: d.confidence(),
            });
        }
    }
    let correct: usize = (0..k).map(|i| confusion[i][i]).sum();
    let per_category = DiagnosisCategory::ALL
        .iter()
        .enumerate()
        .map(|(i, &category)| {
            let support: usize = confusion[i].iter().sum();
            let predicted: usize = confusion.iter().map(|row| row[i]).sum();
            let hit = confusion[i][i];
            CategoryStats {
                category,
                support,
                predicted,
                correct: hit,
                precision: (predicted > 0).then(|| hit as f64 / predicted as f64),
                recall: (support > 0).then(|| hit as f64 / support as f64),
            }
        })
        .collect();
    EvalReport {
        n: samples.len(),
        correct,
        accuracy: if samples.is_empty() {
            0.0
        } else {
            correct as f64 / samples.len() as f64
        },
        confident_wrong,
        per_category,
        confusion,
        misses,
    }
}
