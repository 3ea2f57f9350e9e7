//! Prometheus metrics: the names medic exports, the recorder behind `GET /metrics`, and small
//! recording helpers that keep label sets bounded.
//!
//! Every metric name is a const in [`names`]; raw names appear nowhere else. Labels take only
//! bounded values: strategy and outcome names, tier names and target names from the fleet file.

use std::sync::OnceLock;
use std::time::Duration;

use medic_core::HealthState;
use metrics::Unit;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// The metric names medic exports.
pub mod names {
    /// Counter: actions closed, labels `strategy` (a strategy name or `fallback`), `outcome`
    /// (`success`, `failure`, `unknown`, `skipped`), `tier`.
    pub const HEALING_ACTIONS_TOTAL: &str = "medic_healing_actions_total";
    /// Histogram: seconds from an action's intent to its close (buckets in
    /// [`super::HEALING_BUCKETS`]).
    pub const HEALING_DURATION_SECONDS: &str = "medic_healing_duration_seconds";
    /// Gauge: mean time to recovery over the incidents healed so far, in seconds.
    pub const MTTR_SECONDS: &str = "medic_mttr_seconds";
    /// Gauge: targets per health state, label `state` (`healthy`, `degraded`, `unhealthy`,
    /// `unknown`).
    pub const TARGETS: &str = "medic_targets";
    /// Histogram: probe latency in seconds (buckets in [`super::PROBE_BUCKETS`]).
    pub const PROBE_DURATION_SECONDS: &str = "medic_probe_duration_seconds";
    /// Gauge: the latest predicted failure probability, label `target`.
    pub const PREDICTION_PROBABILITY: &str = "medic_prediction_probability";
    /// Counter: predictions that crossed the alarm threshold.
    pub const PREDICTION_ALARMS_TOTAL: &str = "medic_prediction_alarms_total";
    /// Gauge: the latest anomaly score, label `target`.
    pub const ANOMALY_SCORE: &str = "medic_anomaly_score";
    /// Gauge: findings waiting in the engine's queue.
    pub const QUEUE_DEPTH: &str = "medic_queue_depth";

    /// Every name above.
    pub const ALL: [&str; 9] = [
        HEALING_ACTIONS_TOTAL,
        HEALING_DURATION_SECONDS,
        MTTR_SECONDS,
        TARGETS,
        PROBE_DURATION_SECONDS,
        PREDICTION_PROBABILITY,
        PREDICTION_ALARMS_TOTAL,
        ANOMALY_SCORE,
        QUEUE_DEPTH,
    ];
}

/// Buckets of [`names::HEALING_DURATION_SECONDS`]: a supervised restart takes well under a
/// second, a verified restart of a slow service minutes.
pub const HEALING_BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Buckets of [`names::PROBE_DURATION_SECONDS`]: loopback probes take a millisecond, a probe
/// timing out takes its timeout (seconds).
pub const PROBE_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the process's global `metrics` recorder and returns
/// the handle `GET /metrics` renders from.
///
/// Idempotent: the first call installs, later calls return the same handle. If another
/// recorder was installed first (by something other than this function), the returned handle
/// belongs to a recorder that is not global: `/metrics` then works but shows only the metric
/// descriptions; a warning is logged.
pub fn install_metrics() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = match builder() {
                Ok(b) => b.build_recorder(),
                Err(error) => {
                    tracing::warn!(%error, "metric buckets refused; histograms become summaries");
                    PrometheusBuilder::new().build_recorder()
                }
            };
            let handle = recorder.handle();
            if let Err(error) = metrics::set_global_recorder(recorder) {
                tracing::warn!(%error, "another metrics recorder is installed; /metrics will not see medic's metrics");
            }
            describe();
            handle
        })
        .clone()
}

fn builder() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(names::HEALING_DURATION_SECONDS.to_owned()),
            &HEALING_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(names::PROBE_DURATION_SECONDS.to_owned()),
            &PROBE_BUCKETS,
        )
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        names::HEALING_ACTIONS_TOTAL,
        Unit::Count,
        "Healing actions closed, by strategy, outcome and tier."
    );
    describe_histogram!(
        names::HEALING_DURATION_SECONDS,
        Unit::Seconds,
        "Time from an action's journaled intent to its close."
    );
    describe_gauge!(
        names::MTTR_SECONDS,
        Unit::Seconds,
        "Mean time to recovery over the incidents healed so far."
    );
    describe_gauge!(names::TARGETS, Unit::Count, "Targets per health state.");
    describe_histogram!(
        names::PROBE_DURATION_SECONDS,
        Unit::Seconds,
        "Probe latency."
    );
    describe_gauge!(
        names::PREDICTION_PROBABILITY,
        "Latest predicted probability that the target fails within the model's horizon."
    );
    describe_counter!(
        names::PREDICTION_ALARMS_TOTAL,
        Unit::Count,
        "Failure predictions that crossed the alarm threshold."
    );
    describe_gauge!(
        names::ANOMALY_SCORE,
        "Latest anomaly score of the target (higher is stranger)."
    );
    describe_gauge!(
        names::QUEUE_DEPTH,
        Unit::Count,
        "Findings waiting in the engine's queue."
    );
}

/// Records a closed action: one count in [`names::HEALING_ACTIONS_TOTAL`] and its duration in
/// [`names::HEALING_DURATION_SECONDS`].
pub fn record_action(strategy: &str, outcome: &str, tier: &str, duration: Duration) {
    metrics::counter!(
        names::HEALING_ACTIONS_TOTAL,
        "strategy" => strategy.to_owned(),
        "outcome" => outcome.to_owned(),
        "tier" => tier.to_owned()
    )
    .increment(1);
    metrics::histogram!(names::HEALING_DURATION_SECONDS).record(duration.as_secs_f64());
}

/// Sets [`names::MTTR_SECONDS`].
pub fn set_mttr(seconds: f64) {
    metrics::gauge!(names::MTTR_SECONDS).set(seconds);
}

/// Sets [`names::TARGETS`] for every state from `states` (states absent from it are set to 0,
/// so a state that empties does not keep its last count).
pub fn set_target_states(states: impl IntoIterator<Item = HealthState>) {
    let mut counts = [0u64; 4];
    for s in states {
        counts[state_index(s)] += 1;
    }
    for s in [
        HealthState::Healthy,
        HealthState::Degraded,
        HealthState::Unhealthy,
        HealthState::Unknown,
    ] {
        metrics::gauge!(names::TARGETS, "state" => s.as_str()).set(counts[state_index(s)] as f64);
    }
}

fn state_index(s: HealthState) -> usize {
    match s {
        HealthState::Healthy => 0,
        HealthState::Degraded => 1,
        HealthState::Unhealthy => 2,
        HealthState::Unknown => 3,
    }
}

/// Records one probe's latency in [`names::PROBE_DURATION_SECONDS`].
pub fn record_probe(latency: Duration) {
    metrics::histogram!(names::PROBE_DURATION_SECONDS).record(latency.as_secs_f64());
}

/// Sets [`names::PREDICTION_PROBABILITY`] for `target`.
pub fn set_prediction(target: &str, probability: f64) {
    metrics::gauge!(names::PREDICTION_PROBABILITY, "target" => target.to_owned()).set(probability);
}

/// Counts one prediction alarm in [`names::PREDICTION_ALARMS_TOTAL`].
pub fn record_prediction_alarm() {
    metrics::counter!(names::PREDICTION_ALARMS_TOTAL).increment(1);
}

/// Sets [`names::ANOMALY_SCORE`] for `target`.
pub fn set_anomaly(target: &str, score: f64) {
    metrics::gauge!(names::ANOMALY_SCORE, "target" => target.to_owned()).set(score);
}

/// Sets [`names::QUEUE_DEPTH`].
pub fn set_queue_depth(depth: usize) {
    metrics::gauge!(names::QUEUE_DEPTH).set(depth as f64);
}
