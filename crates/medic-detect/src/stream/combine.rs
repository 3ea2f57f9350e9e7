//! Combining the streaming detectors and an optional isolation-forest score.

use std::fmt::Write as _;

use medic_core::Timestamp;

use super::{
    Cusum, Detection, Ewma, RollingMad, RollingZScore, StreamDetector, StreamError, Trend, check,
};

/// The inputs of a [`Combiner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// Isolation-forest score of the target's feature vector.
    IForest,
    /// Rolling z-score (a spike against the recent window).
    ZScore,
    /// Robust (median/MAD) z-score.
    Mad,
    /// EWMA control chart (a sustained shift of the level).
    Ewma,
    /// CUSUM (a change point).
    Cusum,
    /// Least-squares trend (a degradation over the window).
    Trend,
}

impl Part {
    /// All parts, in the order of [`CombinerWeights`] and [`Combined::parts`].
    pub const ALL: [Part; 6] = [
        Part::IForest,
        Part::ZScore,
        Part::Mad,
        Part::Ewma,
        Part::Cusum,
        Part::Trend,
    ];

    /// Short name used in reasons.
    pub fn name(self) -> &'static str {
        match self {
            Part::IForest => "iforest",
            Part::ZScore => "zscore",
            Part::Mad => "mad",
            Part::Ewma => "ewma",
            Part::Cusum => "cusum",
            Part::Trend => "trend",
        }
    }

    fn meaning(self) -> &'static str {
        match self {
            Part::IForest => "unusual feature vector",
            Part::ZScore => "spike",
            Part::Mad => "robust outlier",
            Part::Ewma => "level shift",
            Part::Cusum => "change point",
            Part::Trend => "trend",
        }
    }
}

/// Weight of each part in `[0, 1]`: how much a score of 1 from that part alone counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CombinerWeights {
    /// Isolation forest.
    pub iforest: f64,
    /// Rolling z-score.
    pub zscore: f64,
    /// Robust z-score.
    pub mad: f64,
    /// EWMA chart.
    pub ewma: f64,
    /// CUSUM.
    pub cusum: f64,
    /// Trend.
    pub trend: f64,
}

impl CombinerWeights {
    fn as_array(&self) -> [f64; 6] {
        [
            self.iforest,
            self.zscore,
            self.mad,
            self.ewma,
            self.cusum,
            self.trend,
        ]
    }
}

/// One combined score for a target at a timestamp.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Combined {
    /// When the sample was taken.
    pub at: Timestamp,
    /// Anomaly score in `[0, 1]`.
    pub score: f64,
    /// Whether any weighted part crossed its alarm limit.
    pub flag: bool,
    /// Each part's own score in [`Part::ALL`] order (`None` for an absent iForest score).
    pub parts: [Option<f64>; 6],
}

/// Merges part scores with a weighted noisy-OR, `1 − Π (1 − w_i s_i)`: any single strong part
/// can carry the score towards 1, agreeing parts reinforce each other, and the result stays in
/// `[0, 1]`. An absent iForest score simply drops out.
#[derive(Debug, Clone)]
pub struct Combiner {
    weights: [f64; 6],
    last: Option<Combined>,
}

impl Combiner {
    /// A combiner with weights in `[0, 1]`.
    pub fn new(weights: CombinerWeights) -> Result<Combiner, StreamError> {
        let w = weights.as_array();
        for (part, value) in Part::ALL.iter().zip(w) {
            check(
                part.name(),
                value,
                (0.0..=1.0).contains(&value),
                "in [0, 1]",
            )?;
        }
        Ok(Combiner {
            weights: w,
            last: None,
        })
    }

    /// Combines one timestamp's part scores.
    pub fn combine(
        &mut self,
        at: Timestamp,
        iforest: Option<f64>,
        detections: [Detection; 5],
    ) -> Combined {
        let mut parts = [None; 6];
        parts[0] = iforest.map(|s| if s.is_nan() { 0.0 } else { s.clamp(0.0, 1.0) });
        let mut flag = false;
        for (slot, d) in parts[1..].iter_mut().zip(detections) {
            *slot = Some(d.score);
        }
        let mut keep = 1.0;
        for (i, part) in parts.iter().enumerate() {
            if let Some(s) = part {
                keep *= 1.0 - self.weights[i] * s;
                flag |= self.weights[i] > 0.0 && *s >= 0.5;
            }
        }
        let combined = Combined {
            at,
            score: (1.0 - keep).clamp(0.0, 1.0),
            flag,
            parts,
        };
        self.last = Some(combined);
        combined
    }

    /// Why the last combined score is what it is: the parts by weighted contribution, e.g.
    /// `score 0.93: cusum 0.91 (change point), zscore 0.70 (spike)`. Built only when asked.
    pub fn reason(&self) -> String {
        let Some(last) = self.last else {
            return "no samples yet".to_owned();
        };
        let mut ranked: Vec<(Part, f64, f64)> = Part::ALL
            .iter()
            .zip(last.parts)
            .zip(self.weights)
            .filter_map(|((p, s), w)| s.map(|s| (*p, s, w * s)))
            .filter(|(_, _, c)| *c > 0.0)
            .collect();
        ranked.sort_by(|a, b| b.2.total_cmp(&a.2));
        let mut out = format!("score {:.2}", last.score);
        for (i, (part, score, _)) in ranked.iter().enumerate() {
            let sep = if i == 0 { ": " } else { ", " };
            let _ = write!(out, "{sep}{} {score:.2} ({})", part.name(), part.meaning());
        }
        out
    }
}

/// The streaming detectors of one target and their combiner: feed one sample (and optionally
/// the isolation-forest score of the target's features) per timestamp.
#[derive(Debug, Clone)]
pub struct TargetStream {
    /// Rolling z-score.
    pub zscore: RollingZScore,
    /// Robust z-score.
    pub mad: RollingMad,
    /// EWMA chart.
    pub ewma: Ewma,
    /// CUSUM.
    pub cusum: Cusum,
    /// Trend test.
    pub trend: Trend,
    /// The combiner.
    pub combiner: Combiner,
}

impl TargetStream {
    /// Default detectors: z-score window 100 limit 4, MAD rate 0.01 limit 5, EWMA λ 0.2 L 3,
    /// CUSUM k 0.5 h 8, trend window 60 α 0.001, combined with `weights`.
    pub fn new(weights: CombinerWeights) -> Result<TargetStream, StreamError> {
        Ok(TargetStream {
            zscore: RollingZScore::new(100, 4.0)?,
            mad: RollingMad::new(0.01, 5.0)?,
            ewma: Ewma::new(0.2, 3.0, 0.01)?,
            cusum: Cusum::new(0.5, 8.0, 0.01)?,
            trend: Trend::new(60, 0.001)?,
            combiner: Combiner::new(weights)?,
        })
    }

    /// Scores the sample `x` taken at `at`.
    pub fn update(&mut self, at: Timestamp, x: f64, iforest: Option<f64>) -> Combined {
        let detections = [
            self.zscore.update(x),
            self.mad.update(x),
            self.ewma.update(x),
            self.cusum.update(x),
            self.trend.update(x),
        ];
        self.combiner.combine(at, iforest, detections)
    }

    /// The reason for the last score (allocates; call only when reporting).
    pub fn reason(&self) -> String {
        self.combiner.reason()
    }
}
