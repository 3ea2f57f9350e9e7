//! The streaming detector configurations evaluated on NAB.

use super::{AnomalyLikelihood, Cusum, Detection, Ewma, RollingMad, RollingZScore, StreamDetector};

/// A named detector configuration for `medic eval nab`; one configuration for every file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NabDetectorKind {
    /// Rolling z-score over 100 samples, score `min(1, |z| / 6)`: the baseline.
    ZScore,
    /// medic's combined detector (see [`NabDetector`]).
    Medic,
}

impl NabDetectorKind {
    /// Every configuration.
    pub const ALL: [NabDetectorKind; 2] = [NabDetectorKind::ZScore, NabDetectorKind::Medic];

    /// The name used for results directories (`<results>/<name>/...`).
    pub fn name(self) -> &'static str {
        match self {
            NabDetectorKind::ZScore => "zscore",
            NabDetectorKind::Medic => "medic",
        }
    }

    /// Looks a configuration up by name.
    pub fn from_name(name: &str) -> Option<NabDetectorKind> {
        NabDetectorKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A detector for one NAB file. `update` sees one row at a time (no look-ahead).
#[derive(Debug, Clone)]
pub struct NabDetector {
    kind: NabDetectorKind,
    zscore: RollingZScore,
    mad: RollingMad,
    ewma: Ewma,
    cusum: Cusum,
    likelihood: AnomalyLikelihood,
}

impl NabDetector {
    /// A fresh detector of the given configuration.
    pub fn new(kind: NabDetectorKind) -> NabDetector {
        // The parameters are constants in range, so construction cannot fail.
        let build = || -> Result<NabDetector, super::StreamError> {
            Ok(NabDetector {
                kind,
                zscore: RollingZScore::new(100, 3.0)?,
                mad: RollingMad::new(0.01, 4.0)?,
                ewma: Ewma::new(0.2, 3.0, 0.01)?,
                cusum: Cusum::new(0.5, 8.0, 0.01)?,
                likelihood: AnomalyLikelihood::new(10, 2000, 100, 1.5e-5)?,
            })
        };
        build().expect("NAB detector constants are valid")
    }

    /// Scores the row `(t, x)`, `t` in microseconds since the epoch.
    pub fn update(&mut self, _t: i64, x: f64) -> f64 {
        let z = self.zscore.update(x);
        match self.kind {
            NabDetectorKind::ZScore => z.score,
            NabDetectorKind::Medic => {
                let parts: [Detection; 4] = [
                    z,
                    self.mad.update(x),
                    self.ewma.update(x),
                    self.cusum.update(x),
                ];
                let raw = 1.0 - parts.iter().map(|d| 1.0 - d.score).product::<f64>();
                self.likelihood.update(raw)
            }
        }
    }
}
