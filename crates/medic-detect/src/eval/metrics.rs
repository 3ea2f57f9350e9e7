//! Ranking and classification metrics: ROC AUC, PR AUC, precision, recall, F1.
//!
//! Conventions: `scores` higher = more anomalous; `labels` `true` = anomalous (positive).
//! Ranking metrics return `None` when undefined (no positive or no negative, or lengths differ).
//! Scores must not be NaN for the ranking metrics to be meaningful; NaN sorts as the largest.

/// ROC AUC as the Mann–Whitney U statistic: the probability that a random positive scores
/// higher than a random negative, ties counting one half (average ranks).
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() {
        return None;
    }
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i+1..=j+1 share their average.
        let avg = (i + j + 2) as f64 / 2.0;
        let pos_in_group = order[i..=j].iter().filter(|&&k| labels[k]).count();
        rank_sum_pos += avg * pos_in_group as f64;
        i = j + 1;
    }
    let np = n_pos as f64;
    let u = rank_sum_pos - np * (np + 1.0) / 2.0;
    Some(u / (np * n_neg as f64))
}

/// Indices sorted by score, highest first, and the end of each group of tied scores.
fn descending_groups(scores: &[f64]) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut ends = Vec::new();
    for k in 0..order.len() {
        if k + 1 == order.len() || scores[order[k + 1]] != scores[order[k]] {
            ends.push(k + 1);
        }
    }
    (order, ends)
}

/// Average precision (area under the precision–recall curve, step-wise as scikit-learn's
/// `average_precision_score`): `Σ (R_k − R_{k−1}) P_k` over distinct score thresholds.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() {
        return None;
    }
    let n_pos = labels.iter().filter(|&&l| l).count();
    if n_pos == 0 {
        return None;
    }
    let (order, ends) = descending_groups(scores);
    let mut tp = 0usize;
    let mut start = 0;
    let mut prev_recall = 0.0;
    let mut ap = 0.0;
    for end in ends {
        tp += order[start..end].iter().filter(|&&k| labels[k]).count();
        let recall = tp as f64 / n_pos as f64;
        let precision = tp as f64 / end as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
        start = end;
    }
    Some(ap)
}

/// Confusion counts and the figures derived from them.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Prf {
    /// True positives.
    pub tp: usize,
    /// False positives.
    pub fp: usize,
    /// False negatives.
    pub fn_: usize,
    /// `tp / (tp + fp)`, 0 when nothing was predicted.
    pub precision: f64,
    /// `tp / (tp + fn)`, 0 when there is no positive.
    pub recall: f64,
    /// Harmonic mean of precision and recall, 0 when both are 0.
    pub f1: f64,
    /// The threshold used (`score >= threshold` is predicted positive), when one was.
    pub threshold: f64,
}

impl Prf {
    /// Figures from counts.
    pub fn from_counts(tp: usize, fp: usize, fn_: usize, threshold: f64) -> Self {
        let precision = if tp + fp > 0 {
            tp as f64 / (tp + fp) as f64
        } else {
            0.0
        };
        let recall = if tp + fn_ > 0 {
            tp as f64 / (tp + fn_) as f64
        } else {
            0.0
        };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Prf {
            tp,
            fp,
            fn_,
            precision,
            recall,
            f1,
            threshold,
        }
    }
}

/// Precision, recall and F1 of binary predictions.
pub fn prf(predicted: &[bool], labels: &[bool]) -> Prf {
    let (mut tp, mut fp, mut fn_) = (0, 0, 0);
    for (&p, &l) in predicted.iter().zip(labels) {
        match (p, l) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            (false, false) => {}
        }
    }
    Prf::from_counts(tp, fp, fn_, f64::NAN)
}

/// Precision, recall and F1 predicting `score >= threshold`.
pub fn prf_at(scores: &[f64], labels: &[bool], threshold: f64) -> Prf {
    let (mut tp, mut fp, mut fn_) = (0, 0, 0);
    for (&s, &l) in scores.iter().zip(labels) {
        match (s >= threshold, l) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            (false, false) => {}
        }
    }
    Prf::from_counts(tp, fp, fn_, threshold)
}

/// The best F1 over all thresholds (each distinct score), with the threshold reaching it.
/// `None` when there is no positive.
pub fn best_f1(scores: &[f64], labels: &[bool]) -> Option<Prf> {
    if scores.len() != labels.len() {
        return None;
    }
    let n_pos = labels.iter().filter(|&&l| l).count();
    if n_pos == 0 {
        return None;
    }
    let (order, ends) = descending_groups(scores);
    let mut tp = 0usize;
    let mut start = 0;
    let mut best: Option<Prf> = None;
    for end in ends {
        tp += order[start..end].iter().filter(|&&k| labels[k]).count();
        let fp = end - tp;
        let p = Prf::from_counts(tp, fp, n_pos - tp, scores[order[end - 1]]);
        if best.is_none_or(|b| p.f1 > b.f1) {
            best = Some(p);
        }
        start = end;
    }
    best
}

/// Contiguous runs of `true` in `labels`, as half-open `[start, end)` ranges.
pub fn segments(labels: &[bool]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < labels.len() {
        if labels[i] {
            let s = i;
            while i < labels.len() && labels[i] {
                i += 1;
            }
            out.push((s, i));
        } else {
            i += 1;
        }
    }
    out
}

/// Point adjustment of predictions (Xu et al. 2018, as used by OmniAnomaly): when any point
/// of a labelled anomaly segment is predicted, the whole segment counts as predicted.
/// Predictions outside segments are unchanged.
pub fn point_adjust(predicted: &[bool], labels: &[bool]) -> Vec<bool> {
    let mut out = predicted.to_vec();
    for (s, e) in segments(labels) {
        if predicted[s..e].iter().any(|&p| p) {
            out[s..e].fill(true);
        }
    }
    out
}

/// Scores under which thresholding equals point-adjusted thresholding: every point of a
/// labelled segment takes the segment's maximum score. `prf_at(&adjusted, labels, θ)` is then
/// the point-adjusted figure at θ, and `best_f1(&adjusted, labels)` the best point-adjusted F1.
pub fn point_adjusted_scores(scores: &[f64], labels: &[bool]) -> Vec<f64> {
    let mut out = scores.to_vec();
    for (s, e) in segments(labels) {
        let m = scores[s..e]
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        out[s..e].fill(m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_by_hand() {
        // pos scores {0.9, 0.4}, neg {0.5, 0.1}: pairs (0.9>0.5)(0.9>0.1)(0.4<0.5)(0.4>0.1) = 3/4.
        let s = [0.9, 0.5, 0.4, 0.1];
        let l = [true, false, true, false];
        assert_eq!(roc_auc(&s, &l), Some(0.75));
        // A tie between a positive and a negative counts one half: (1 + 0.5) / 2.
        let s = [0.7, 0.7, 0.2];
        let l = [true, false, false];
        assert_eq!(roc_auc(&s, &[true, false, true]), Some(0.25));
        assert_eq!(roc_auc(&s, &l), Some(0.75));
        assert_eq!(roc_auc(&[1.0, 2.0], &[true, true]), None);
        assert_eq!(roc_auc(&[0.1, 0.2, 0.3], &[false, false, true]), Some(1.0));
        assert_eq!(roc_auc(&[0.3, 0.2, 0.1], &[false, false, true]), Some(0.0));
    }

    #[test]
    fn average_precision_by_hand() {
        // Ranking: P N P N. Recall 0.5 at precision 1, recall 1 at precision 2/3.
        let s = [0.9, 0.8, 0.7, 0.6];
        let l = [true, false, true, false];
        let ap = average_precision(&s, &l).unwrap();
        assert!((ap - (0.5 * 1.0 + 0.5 * 2.0 / 3.0)).abs() < 1e-12);
        // Tied top group {P, N}: one step to recall 0.5 at precision 0.5, then 1 at 2/3.
        let s = [0.9, 0.9, 0.7, 0.1];
        let ap = average_precision(&s, &l).unwrap();
        assert!((ap - (0.5 * 0.5 + 0.5 * 2.0 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn f1_and_best_f1() {
        let s = [0.9, 0.8, 0.7, 0.6, 0.1];
        let l = [true, false, true, false, false];
        let p = prf_at(&s, &l, 0.75);
        assert_eq!((p.tp, p.fp, p.fn_), (1, 1, 1));
        assert!((p.f1 - 0.5).abs() < 1e-12);
        let b = best_f1(&s, &l).unwrap();
        // At 0.7: tp 2, fp 1 → P 2/3, R 1, F1 0.8.
        assert!((b.f1 - 0.8).abs() < 1e-12);
        assert_eq!(b.threshold, 0.7);
    }

    #[test]
    fn point_adjustment() {
        let labels = [false, true, true, true, false, true, true, false];
        let pred = [false, false, true, false, true, false, false, false];
        let adj = point_adjust(&pred, &labels);
        assert_eq!(adj, [false, true, true, true, true, false, false, false]);
        let p = prf(&adj, &labels);
        assert_eq!((p.tp, p.fp, p.fn_), (3, 1, 2));
        let scores = [0.1, 0.2, 0.9, 0.3, 0.8, 0.4, 0.5, 0.0];
        let a = point_adjusted_scores(&scores, &labels);
        assert_eq!(a, [0.1, 0.9, 0.9, 0.9, 0.8, 0.5, 0.5, 0.0]);
        let at = prf_at(&a, &labels, 0.8);
        assert_eq!((at.tp, at.fp, at.fn_), (3, 1, 2));
    }
}
