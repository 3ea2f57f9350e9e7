//! Per-feature attribution of a row's score and the anomaly kind named from it.
//!
//! Contribution of a feature: over all trees, every split on the row's path credits its
//! feature with `max(0, log2(size(node) / size(child)) − 1)`: the bits of training mass that
//! split cut away from the row, beyond the one bit of an even halving, which any split gives an
//! ordinary row. A split that isolates the row early from most of the sample earns many bits; a
//! split that sends it with the majority earns none. The credits are normalised to sum to 1, so
//! they say which features isolate the row, how often and how early.

use medic_core::AnomalyKind;

use super::{Error, IsolationForest};

/// The family of signals a feature belongs to, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnomalyFamily {
    /// Probe or request latency.
    Latency,
    /// Error counts or rates.
    Errors,
    /// Memory, file descriptors, disk: things that leak.
    Resource,
    /// CPU, queue depth, threads: things that saturate.
    Saturation,
    /// Request or traffic rate.
    Traffic,
    /// A name that matches no family.
    Other,
}

/// The family of a feature name, by keywords (case-insensitive):
/// `latency|duration|response_time|rtt` → latency, `error|fail|5xx|timeout` → errors,
/// `rss|mem|heap|fd|disk|swap` → resource, `cpu|queue|load|thread|saturation|backlog` →
/// saturation, `request|rps|qps|traffic|throughput|rate` → traffic (checked last, so
/// `error_rate` is errors), anything else → other.
pub fn family_of(name: &str) -> AnomalyFamily {
    let n = name.to_ascii_lowercase();
    let has = |keys: &[&str]| keys.iter().any(|k| n.contains(k));
    if has(&["latency", "duration", "response_time", "rtt"]) {
        AnomalyFamily::Latency
    } else if has(&["error", "fail", "5xx", "timeout"]) {
        AnomalyFamily::Errors
    } else if has(&["rss", "mem", "heap", "fd", "disk", "swap"]) {
        AnomalyFamily::Resource
    } else if has(&["cpu", "queue", "load", "thread", "saturation", "backlog"]) {
        AnomalyFamily::Saturation
    } else if has(&["request", "rps", "qps", "traffic", "throughput", "rate"]) {
        AnomalyFamily::Traffic
    } else {
        AnomalyFamily::Other
    }
}

/// Share of the total contribution a family needs to name the anomaly; below it, `Mixed`.
pub const DOMINANT_SHARE: f64 = 0.5;

/// Names the anomaly from per-feature contributions (summing to 1).
///
/// The family with the largest total contribution names it if it holds at least
/// [`DOMINANT_SHARE`]; otherwise, or when that family is `Other`, the kind is `Mixed`. Traffic
/// features name a `TrafficDrop` when the row's traffic features are, weighted by contribution,
/// below the training centre (`scaled` values < 0, e.g. after a [`crate::scaler::Scaler`]), and
/// `Saturation` when above (a surge). Without `scaled`, traffic means a drop.
pub fn classify_anomaly(
    names: &[String],
    contributions: &[f64],
    scaled: Option<&[f64]>,
) -> AnomalyKind {
    const FAMILIES: [AnomalyFamily; 6] = [
        AnomalyFamily::Latency,
        AnomalyFamily::Errors,
        AnomalyFamily::Resource,
        AnomalyFamily::Saturation,
        AnomalyFamily::Traffic,
        AnomalyFamily::Other,
    ];
    let mut totals = [0.0; 6];
    let mut traffic_dir = 0.0;
    for (i, (name, &c)) in names.iter().zip(contributions).enumerate() {
        let fam = family_of(name);
        let k = FAMILIES.iter().position(|f| *f == fam).unwrap_or(5);
        totals[k] += c;
        if fam == AnomalyFamily::Traffic
            && let Some(v) = scaled.and_then(|s| s.get(i))
        {
            traffic_dir += c * v.signum();
        }
    }
    let sum: f64 = totals.iter().sum();
    if sum <= 0.0 {
        return AnomalyKind::Mixed;
    }
    let (best, share) = totals
        .iter()
        .enumerate()
        .map(|(k, t)| (k, t / sum))
        .fold((5, f64::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a });
    if share < DOMINANT_SHARE {
        return AnomalyKind::Mixed;
    }
    match FAMILIES[best] {
        AnomalyFamily::Latency => AnomalyKind::Latency,
        AnomalyFamily::Errors => AnomalyKind::Errors,
        AnomalyFamily::Resource => AnomalyKind::Resource,
        AnomalyFamily::Saturation => AnomalyKind::Saturation,
        AnomalyFamily::Traffic if traffic_dir > 0.0 => AnomalyKind::Saturation,
        AnomalyFamily::Traffic => AnomalyKind::TrafficDrop,
        AnomalyFamily::Other => AnomalyKind::Mixed,
    }
}

/// A row's explanation: top features and the anomaly kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    /// Up to `k` `(feature name, contribution)` pairs, largest first.
    pub top: Vec<(String, f64)>,
    /// The kind named from all contributions.
    pub kind: AnomalyKind,
}

impl IsolationForest {
    /// Writes the row's per-feature contributions (summing to 1, or all 0 when no split was on
    /// its path) into `out` (`n_features` long). Allocates nothing.
    pub fn attribute_into(&self, row: &[f64], out: &mut [f64]) -> Result<(), Error> {
        if row.len() != self.n_features || out.len() != self.n_features {
            return Err(Error::Shape(format!(
                "row has {} values and output {}, the model has {} features",
                row.len(),
                out.len(),
                self.n_features
            )));
        }
        out.fill(0.0);
        for &root in &self.roots {
            let mut idx = root as usize;
            loop {
                let node = &self.nodes[idx];
                if node.is_leaf(idx) {
                    break;
                }
                let f = node.feature as usize;
                let child = node.left as usize + usize::from(row[f] > node.split);
                let parent_n = f64::from(self.size[idx]);
                let child_n = f64::from(self.size[child]).max(1.0);
                out[f] += ((parent_n / child_n).log2() - 1.0).max(0.0);
                idx = child;
            }
        }
        let total: f64 = out.iter().sum();
        if total > 0.0 {
            for v in out.iter_mut() {
                *v /= total;
            }
        }
        Ok(())
    }

    /// Top-`k` features and the anomaly kind for one row; `names` are the model's feature
    /// names and `scaled` optionally the row relative to the training centre (see
    /// [`classify_anomaly`]). Allocates: meant for rows already found anomalous.
    pub fn explain(
        &self,
        row: &[f64],
        names: &[String],
        k: usize,
        scaled: Option<&[f64]>,
    ) -> Result<Attribution, Error> {
        if names.len() != self.n_features {
            return Err(Error::Shape(format!(
                "{} names for {} features",
                names.len(),
                self.n_features
            )));
        }
        let mut contrib = vec![0.0; self.n_features];
        self.attribute_into(row, &mut contrib)?;
        let kind = classify_anomaly(names, &contrib, scaled);
        let mut order: Vec<usize> = (0..contrib.len()).collect();
        order.sort_by(|&a, &b| contrib[b].total_cmp(&contrib[a]).then(a.cmp(&b)));
        let top = order
            .into_iter()
            .take(k)
            .filter(|&i| contrib[i] > 0.0)
            .map(|i| (names[i].clone(), contrib[i]))
            .collect();
        Ok(Attribution { top, kind })
    }
}
