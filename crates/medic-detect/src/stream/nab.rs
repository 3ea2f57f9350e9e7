//! The streaming detector configurations evaluated on NAB.
//!
//! One configuration for every file, chosen on the shared NAB subset (so its score there is an
//! optimistic estimate); the ablation kinds remove one ingredient each so the effect of every
//! ingredient can be measured with the same code (`medic eval nab --detector <name>`).

use super::{
    AnomalyLikelihood, Cusum, Detection, Ewma, RollingMad, RollingZScore, Seasonal, StreamDetector,
    StreamError,
};

/// A named detector configuration for `medic eval nab`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NabDetectorKind {
    /// Rolling z-score over the previous 100 samples, score `min(1, |z| / 6)`: the baseline.
    ZScore,
    /// medic's detector (see [`NabDetector`]).
    Medic,
    /// Ablation: medic without the seasonal (time-of-day) detector.
    MedicNoSeasonal,
    /// Ablation: medic without the new-range (spatial) rule.
    MedicNoSpatial,
    /// Ablation: medic without suppression after an alarm.
    MedicNoSuppression,
    /// Ablation: one likelihood over the noisy-OR of the detectors instead of one each.
    MedicSingleLikelihood,
    /// Ablation: medic with the rolling z-score added as a fifth detector.
    MedicWithZScore,
}

impl NabDetectorKind {
    /// Every configuration.
    pub const ALL: [NabDetectorKind; 7] = [
        NabDetectorKind::ZScore,
        NabDetectorKind::Medic,
        NabDetectorKind::MedicNoSeasonal,
        NabDetectorKind::MedicNoSpatial,
        NabDetectorKind::MedicNoSuppression,
        NabDetectorKind::MedicSingleLikelihood,
        NabDetectorKind::MedicWithZScore,
    ];

    /// The name used on the command line and for results directories.
    pub fn name(self) -> &'static str {
        match self {
            NabDetectorKind::ZScore => "zscore",
            NabDetectorKind::Medic => "medic",
            NabDetectorKind::MedicNoSeasonal => "medicNoSeasonal",
            NabDetectorKind::MedicNoSpatial => "medicNoSpatial",
            NabDetectorKind::MedicNoSuppression => "medicNoSuppression",
            NabDetectorKind::MedicSingleLikelihood => "medicSingleLikelihood",
            NabDetectorKind::MedicWithZScore => "medicWithZScore",
        }
    }

    /// Looks a configuration up by name.
    pub fn from_name(name: &str) -> Option<NabDetectorKind> {
        NabDetectorKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Rows without output after an alarm (about 17 hours of 5-minute data).
const SUPPRESS_ROWS: u32 = 200;
/// Output level that counts as an alarm for suppression.
const SUPPRESS_LEVEL: f64 = 0.7;
/// A value beyond the range seen so far by this fraction of the range is an anomaly.
const SPATIAL_TOLERANCE: f64 = 0.02;
/// Rows before the spatial rule applies (the range must mean something).
const SPATIAL_WARMUP: u64 = 50;
const DAY_US: i64 = 86_400_000_000;

/// medic's NAB detector. Per row:
///
/// 1. Four detectors score the value: robust z ([`RollingMad`], rate 0.01), EWMA chart
///    ([`Ewma`], λ 0.2), CUSUM ([`Cusum`], k 0.5, h 8) and the time-of-day baseline
///    ([`Seasonal`], 288 bins of a day).
/// 2. Each detector's score goes through its own [`AnomalyLikelihood`] (short 20, long 2000):
///    a detector that is always noisy on a series stops mattering on that series, which
///    calibrates the detectors against each other and the files against each other (NAB uses
///    one threshold for all files). The output is the largest likelihood.
/// 3. A value more than 2 % of the seen range outside the range seen so far scores 1 (a new
///    extreme is what operators call an anomaly first).
/// 4. After an output of at least 0.7 the next 200 rows output 0: one alarm per incident.
///
/// Each step uses only the current and past rows. No allocation after construction.
#[derive(Debug, Clone)]
pub struct NabDetector {
    kind: NabDetectorKind,
    zscore: RollingZScore,
    mad: RollingMad,
    ewma: Ewma,
    cusum: Cusum,
    seasonal: Seasonal,
    likelihoods: [AnomalyLikelihood; 5],
    low: f64,
    high: f64,
    n: u64,
    hold: u32,
}

impl NabDetector {
    /// A fresh detector of the given configuration.
    pub fn new(kind: NabDetectorKind) -> NabDetector {
        let build = || -> Result<NabDetector, StreamError> {
            let likelihood = || AnomalyLikelihood::new(20, 2000, 100, 1.5e-5);
            Ok(NabDetector {
                kind,
                zscore: if kind == NabDetectorKind::ZScore {
                    RollingZScore::baseline(100, 3.0)?
                } else {
                    RollingZScore::new(100, 3.0)?
                },
                mad: RollingMad::new(0.01, 4.0)?,
                ewma: Ewma::new(0.2, 3.0, 0.01)?,
                cusum: Cusum::new(0.5, 8.0, 0.01)?,
                seasonal: Seasonal::new(DAY_US, 288, 0.1, 3, 3.0)?,
                likelihoods: [
                    likelihood()?,
                    likelihood()?,
                    likelihood()?,
                    likelihood()?,
                    likelihood()?,
                ],
                low: f64::INFINITY,
                high: f64::NEG_INFINITY,
                n: 0,
                hold: 0,
            })
        };
        // The parameters are constants in range, so construction cannot fail.
        build().expect("NAB detector constants are valid")
    }

    /// Scores the row `(t, x)`, `t` in microseconds since the epoch.
    pub fn update(&mut self, t: i64, x: f64) -> f64 {
        use NabDetectorKind as K;
        let kind = self.kind;
        if kind == K::ZScore {
            return self.zscore.update(x).score;
        }
        self.n += 1;
        let with_z = kind == K::MedicWithZScore;
        let parts: [Detection; 5] = [
            self.mad.update(x),
            self.ewma.update(x),
            self.cusum.update(x),
            if kind == K::MedicNoSeasonal {
                Detection::default()
            } else {
                self.seasonal.update(t, x)
            },
            if with_z {
                self.zscore.update(x)
            } else {
                Detection::default()
            },
        ];
        let n_parts = if with_z { 5 } else { 4 };
        let mut score = if kind == K::MedicSingleLikelihood {
            let raw = 1.0
                - parts[..n_parts]
                    .iter()
                    .map(|d| 1.0 - d.score)
                    .product::<f64>();
            self.likelihoods[0].update(raw)
        } else {
            let mut best = 0.0f64;
            for (d, l) in parts[..n_parts].iter().zip(&mut self.likelihoods) {
                best = best.max(l.update(d.score));
            }
            best
        };
        if kind != K::MedicNoSpatial && self.n > SPATIAL_WARMUP {
            let margin = SPATIAL_TOLERANCE * (self.high - self.low);
            if x > self.high + margin || x < self.low - margin {
                score = 1.0;
            }
        }
        self.low = self.low.min(x);
        self.high = self.high.max(x);
        if kind != K::MedicNoSuppression {
            if self.hold > 0 {
                self.hold -= 1;
                score = 0.0;
            } else if score >= SUPPRESS_LEVEL {
                self.hold = SUPPRESS_ROWS;
            }
        }
        score
    }
}
