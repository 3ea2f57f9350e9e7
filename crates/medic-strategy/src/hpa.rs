//! The Kubernetes Horizontal Pod Autoscaler rule, as pure code.
//!
//! `desired = ceil(current × metric / target)`, unchanged while `|metric/target − 1| ≤
//! tolerance`. Scale-down is stabilised: the applied recommendation is the highest one made
//! within the stabilisation window, so a brief dip never removes replicas that a spike a
//! minute ago needed. The result is clamped to the target's min/max replicas, then the tier's
//! `backup_instances` are added on top (never beyond max). A recommendation equal to the
//! current count (within tolerance) changes nothing: the current count already holds its
//! backups.
//!
//! In medic the metric is the finding's utilisation and the target is the tier's
//! `scale_threshold`: a tier that scales above 0.8 keeps utilisation near 0.8.

use std::collections::VecDeque;
use std::time::Duration;

use medic_core::Timestamp;
use medic_policy::{Replicas, TierPolicy};

/// The raw HPA recommendation, before stabilisation and bounds.
///
/// Returns `current` when the ratio is within `tolerance` of 1, when `current` is 0 (the HPA
/// does not scale from zero), or when metric or target is not a positive finite number.
pub fn hpa_desired(current: u32, metric: f64, target: f64, tolerance: f64) -> u32 {
    if current == 0 || !metric.is_finite() || !target.is_finite() || target <= 0.0 || metric < 0.0 {
        return current;
    }
    let ratio = metric / target;
    if (ratio - 1.0).abs() <= tolerance {
        return current;
    }
    let desired = (f64::from(current) * ratio).ceil();
    if desired >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // `desired` is finite, non-negative and below u32::MAX here.
        desired as u32
    }
}

/// Recent recommendations of one target, for scale-down stabilisation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HpaState {
    recommendations: VecDeque<(Timestamp, u32)>,
}

impl HpaState {
    /// Recommendations kept at most; older ones are dropped first.
    pub const CAPACITY: usize = 16;

    /// No recommendations yet.
    pub fn new() -> Self {
        HpaState::default()
    }

    /// Records this step's raw recommendation and returns the replica count to apply.
    ///
    /// `utilization` is measured against the policy's `scale_threshold`; tolerance and window
    /// come from its `scaling`, extra replicas from its `backup_instances`.
    pub fn recommend(
        &mut self,
        now: Timestamp,
        current: u32,
        utilization: f64,
        policy: &TierPolicy,
        bounds: Replicas,
    ) -> u32 {
        let scaling = &policy.scaling;
        let backup_instances = policy.backup_instances;
        let raw = hpa_desired(
            current,
            utilization,
            policy.scale_threshold,
            scaling.tolerance,
        );
        self.push(now, raw, scaling.scale_down_stabilization);
        let stabilised = self.max_within(now, scaling.scale_down_stabilization);
        let lo = bounds.min.min(bounds.max);
        // Within tolerance (or held there by the window): no change. The current count holds
        // the backups added when it was set; adding them again would scale up a target whose
        // load asks for nothing.
        if stabilised == current && (lo..=bounds.max).contains(&current) {
            return current;
        }
        stabilised
            .clamp(lo, bounds.max)
            .saturating_add(backup_instances)
            .min(bounds.max)
    }

    fn push(&mut self, now: Timestamp, raw: u32, window: Duration) {
        let since = now - window;
        while self
            .recommendations
            .front()
            .is_some_and(|(t, _)| *t < since)
        {
            self.recommendations.pop_front();
        }
        if self.recommendations.len() == Self::CAPACITY {
            self.recommendations.pop_front();
        }
        self.recommendations.push_back((now, raw));
    }

    fn max_within(&self, now: Timestamp, window: Duration) -> u32 {
        let since = now - window;
        self.recommendations
            .iter()
            .filter(|(t, _)| *t >= since)
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medic_policy::Scaling;

    fn pol(backup: u32) -> TierPolicy {
        let mut p = crate::select::test_policy();
        p.scaling = SCALING;
        p.scale_threshold = 0.8;
        p.backup_instances = backup;
        p
    }

    const SCALING: Scaling = Scaling {
        tolerance: 0.1,
        scale_down_stabilization: Duration::from_secs(300),
    };
    const BOUNDS: Replicas = Replicas {
        initial: 2,
        min: 1,
        max: 10,
    };

    #[test]
    fn raw_rule_matches_kubernetes() {
        assert_eq!(hpa_desired(4, 0.9, 0.5, 0.1), 8); // ceil(4 × 1.8) = 8
        assert_eq!(hpa_desired(3, 1.0, 0.8, 0.1), 4); // ceil(3 × 1.25) = 4
        assert_eq!(hpa_desired(4, 0.85, 0.8, 0.1), 4); // 1.0625 within tolerance
        assert_eq!(hpa_desired(4, 0.2, 0.8, 0.1), 1); // ceil(4 × 0.25)
        assert_eq!(hpa_desired(0, 5.0, 0.8, 0.1), 0);
        assert_eq!(hpa_desired(3, f64::NAN, 0.8, 0.1), 3);
        assert_eq!(hpa_desired(3, 1.0, 0.0, 0.1), 3);
    }

    #[test]
    fn scale_down_is_stabilised_for_the_window() {
        let mut h = HpaState::new();
        let t0 = Timestamp::from_secs(1000);
        // spike: 2 replicas at 1.6 against 0.8 → 4
        assert_eq!(h.recommend(t0, 2, 1.6, &pol(0), BOUNDS), 4);
        // a dip 60 s later would say 1, but the spike is within 300 s
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(h.recommend(t1, 4, 0.2, &pol(0), BOUNDS), 4);
        // 301 s after the spike, only the dip remains in the window
        let t2 = t0 + Duration::from_secs(301);
        assert_eq!(h.recommend(t2, 4, 0.2, &pol(0), BOUNDS), 1);
    }

    #[test]
    fn bounds_then_backup_instances() {
        let mut h = HpaState::new();
        let t = Timestamp::from_secs(5);
        assert_eq!(h.recommend(t, 8, 1.6, &pol(0), BOUNDS), 10); // 16 → max 10
        let mut h = HpaState::new();
        assert_eq!(h.recommend(t, 2, 1.2, &pol(2), BOUNDS), 5); // 3 + 2 backups
        let mut h = HpaState::new();
        assert_eq!(h.recommend(t, 7, 1.2, &pol(2), BOUNDS), 10); // 9 + 2 capped at 10
        let mut h = HpaState::new();
        // within tolerance: unchanged, no backups on top of the ones already counted
        assert_eq!(h.recommend(t, 5, 0.85, &pol(2), BOUNDS), 5);
        let mut h = HpaState::new();
        // but never outside the bounds
        assert_eq!(h.recommend(t, 12, 0.8, &pol(2), BOUNDS), 10);
    }

    proptest::proptest! {
        #[test]
        fn always_within_bounds(current in 0u32..50, util in -1.0f64..20.0, min in 0u32..5, extra in 0u32..20, backup in 0u32..4) {
            let bounds = Replicas { initial: current, min, max: min + extra };
            let mut h = HpaState::new();
            let r = h.recommend(Timestamp::from_secs(1), current, util, &pol(backup), bounds);
            proptest::prop_assert!(r >= min.min(bounds.max) && r <= bounds.max);
        }
    }
}
