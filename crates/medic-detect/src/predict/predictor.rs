//! Inference with tract: load and optimise once, run many times without re-planning.
//!
//! [`Predictor::load`] reads the ONNX file and its card (`<model>.card.json`, else the card in
//! the file's metadata), checks that the graph's input is `[_, seq_len, n_features]` as the
//! card says, then builds two optimised plans with fixed input facts: batch 1 (one target) and
//! batch `B` ([`PredictorOptions::batch`], all targets due in one tick, padded to `B`). Each
//! plan has one `SimpleState` and one input tensor owned by the predictor and reused across
//! calls: after a run tract drops its references, so the tensor is written in place next time
//! (no allocation per call for the input; tract itself allocates its intermediate values).
//! [`Predictor::fork`] gives another worker its own states over the same plans. When the
//! graph transposes its input to time-major before the first `LSTM` (medic's export does), the
//! plans take time-major input and the runner transposes while copying (see
//! `drop_input_transpose`).
//!
//! Speed (README, "Failure prediction"): a large call runs fastest in chunks of 24–48 windows
//! (the default 32): each chunk's intermediate tensors stay in cache, while one plan of 1,024
//! windows streams ~40 MB gate tensors through memory and runs ~1.5–2× slower per window.
//!
//! A parse or optimisation failure of tract — including a panic inside tract on a hostile
//! file — becomes [`PredictError::Model`]; loading never panics.
//!
//! **Contributing factors** are per-feature occlusion: the window's whole sequence of one
//! feature is replaced by its training mean (0 after scaling) and the drop in probability is
//! the feature's contribution; the top 3 positive drops are reported, named. The
//! **recommended preemptive action** follows the dominant factor's raw series: memory, open
//! fds or restarts → restart (leaks live in the process); queue depth, request rate or cpu →
//! scale (saturation); error rate → circuit-break; latency → scale when queue or request rate
//! is also among the top factors (load), else restart (creeping latency without load is
//! in-process state).

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;

use medic_core::Strategy;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{SimpleState, TractErrorContext as _, ensure};
use tract_onnx::tract_core::ops::scan::Scan;
use tract_onnx::tract_hir::infer::{InferenceFact, InferenceModelPatch};
use tract_onnx::tract_hir::ops::array::PermuteAxes;
use tract_onnx::tract_hir::ops::expandable::Expansion;

use super::PredictError;
use super::card::{CARD_METADATA_KEY, PredictorCard};
use super::steps::StepFeaturizer;

/// How many factors [`Prediction::factors`] holds at most.
pub const TOP_FACTORS: usize = 3;

/// Load options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PredictorOptions {
    /// Planned batch size of the batch plan (≥ 1). Larger batches are run in chunks, smaller
    /// ones padded. The default, 32, is in the measured fastest range per window.
    pub batch: usize,
}

impl Default for PredictorOptions {
    fn default() -> Self {
        PredictorOptions { batch: 32 }
    }
}

/// One feature's contribution to a prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    /// Feature name, e.g. `rss_mb_slope`.
    pub feature: String,
    /// Probability minus the probability with this feature occluded (positive: it pushed the
    /// probability up).
    pub drop: f32,
}

/// A prediction for one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// P(failure within the card's horizon).
    pub probability: f32,
    /// Whether `probability ≥` the card's threshold.
    pub alarm: bool,
    /// Top contributing factors, largest drop first (only features with a positive drop).
    pub factors: Vec<Factor>,
    /// Recommended preemptive action, from the dominant factor (`None` without a factor).
    pub action: Option<Strategy>,
}

type Plan = Arc<TypedSimplePlan>;

struct Plans {
    single: Plan,
    batch: Plan,
    batch_size: usize,
    /// The plans take `[seq, batch, feat]` (see [`drop_input_transpose`]).
    time_major: bool,
}

struct Runner {
    state: TypedSimpleState,
    input: Arc<Tensor>,
    batch: usize,
    seq: usize,
    feat: usize,
    time_major: bool,
}

impl Runner {
    fn new(
        plan: &Plan,
        batch: usize,
        seq: usize,
        feat: usize,
        time_major: bool,
    ) -> TractResult<Self> {
        let shape = if time_major {
            [seq, batch, feat]
        } else {
            [batch, seq, feat]
        };
        Ok(Runner {
            state: SimpleState::new(plan)?,
            input: Arc::new(Tensor::zero::<f32>(&shape)?),
            batch,
            seq,
            feat,
            time_major,
        })
    }

    /// Runs `windows` (at most `batch` windows, padded with zeros) into `out`.
    /// Writes `windows` (at most `batch`, padded with zeros) into the input tensor.
    fn fill(&mut self, windows: &[f32]) -> TractResult<()> {
        if Arc::get_mut(&mut self.input).is_none() {
            // tract kept a reference (not expected after a run); start from a fresh tensor.
            let shape: TVec<usize> = self.input.shape().into();
            self.input = Arc::new(Tensor::zero::<f32>(&shape)?);
        }
        let t = Arc::get_mut(&mut self.input).context("input tensor still shared")?;
        let mut view = t.to_plain_array_view_mut::<f32>()?;
        let dst = view.as_slice_mut().context("input tensor not contiguous")?;
        if self.time_major {
            // Window i's step t goes to row t · batch + i; padding windows stay zero.
            let (b, f) = (self.batch, self.feat);
            dst.fill(0.0);
            for (i, w) in windows.chunks(self.seq * f).enumerate() {
                for (t, step) in w.chunks(f).enumerate() {
                    dst[(t * b + i) * f..(t * b + i + 1) * f].copy_from_slice(step);
                }
            }
        } else {
            dst[..windows.len()].copy_from_slice(windows);
            dst[windows.len()..].fill(0.0);
        }
        Ok(())
    }

    /// Runs `windows` (at most `batch` windows, padded with zeros) into `out`.
    fn run(&mut self, windows: &[f32], out: &mut [f32]) -> TractResult<()> {
        self.fill(windows)?;
        let result = self
            .state
            .run(tvec![TValue::from_const(self.input.clone())])?;
        let probs = result[0].to_plain_array_view::<f32>()?;
        let probs = probs.as_slice().context("output not contiguous")?;
        ensure!(
            probs.len() == self.batch,
            "output has {} values for a batch of {}",
            probs.len(),
            self.batch
        );
        out.copy_from_slice(&probs[..out.len()]);
        Ok(())
    }

    /// Mean wall time per run of each node over `runs` runs of `windows` (a scan's time
    /// includes its whole loop).
    // Profiling measures elapsed wall time by definition; nothing decides on it.
    #[allow(clippy::disallowed_methods)]
    fn profile(&mut self, windows: &[f32], runs: usize) -> TractResult<Vec<NodeTime>> {
        let plan = self.state.plan().clone();
        let model = plan.model();
        let mut total = vec![0.0f64; model.nodes.len()];
        for _ in 0..runs {
            self.fill(windows)?;
            let input = tvec![TValue::from_const(self.input.clone())];
            self.state
                .run_plan_with_eval(input, |ctx, state, node, inputs| {
                    let t0 = std::time::Instant::now();
                    let r = tract_onnx::tract_core::plan::eval(ctx, state, node, inputs);
                    total[node.id] += t0.elapsed().as_secs_f64();
                    r
                })?;
        }
        Ok(model
            .nodes
            .iter()
            .map(|n| NodeTime {
                op: n.op.name().to_string(),
                name: n.name.clone(),
                micros: total[n.id] / runs.max(1) as f64 * 1e6,
            })
            .collect())
    }
}

/// One node of an optimised plan and its mean time per run ([`Predictor::profile_batch`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeTime {
    /// tract's operator, e.g. `OptMatMul`, `Scan`, `MoveAxis`.
    pub op: String,
    /// The node's name in the optimised graph (derived from the ONNX node names).
    pub name: String,
    /// Mean wall time per run, µs.
    pub micros: f64,
}

/// A loaded failure-prediction model.
pub struct Predictor {
    card: PredictorCard,
    path: String,
    plans: Arc<Plans>,
    single: Runner,
    batch: Runner,
    featurizer: StepFeaturizer,
    feat_scratch: Vec<f64>,
    occl: Vec<f32>,
    occl_out: Vec<f32>,
}

impl std::fmt::Debug for Predictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Predictor")
            .field("path", &self.path)
            .field("seq_len", &self.card.seq_len)
            .field("features", &self.card.feature_names)
            .field("batch", &self.plans.batch_size)
            .finish()
    }
}

fn model_err(path: &str, message: impl std::fmt::Display) -> PredictError {
    PredictError::Model {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// The input dims of a proto's single input (`None` for a symbolic dim).
fn proto_input_dims(proto: &pb::ModelProto) -> Result<Vec<Option<i64>>, String> {
    use pb::tensor_shape_proto::dimension::Value;
    let graph = proto.graph.as_ref().ok_or("no graph")?;
    let inits: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !inits.contains(&i.name.as_str()))
        .collect();
    if inputs.len() != 1 || graph.output.len() != 1 {
        return Err(format!(
            "expected one input and one output, found {} and {}",
            inputs.len(),
            graph.output.len()
        ));
    }
    let Some(pb::type_proto::Value::TensorType(t)) =
        inputs[0].r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err("input is not a tensor".into());
    };
    if t.elem_type != pb::tensor_proto::DataType::Float as i32 {
        return Err("input is not float32".into());
    }
    let shape = t.shape.as_ref().ok_or("input has no shape")?;
    Ok(shape
        .dim
        .iter()
        .map(|d| match d.value {
            Some(Value::DimValue(v)) => Some(v),
            _ => None,
        })
        .collect())
}

/// When the graph's input goes straight into a `Transpose` to time-major (`perm [1, 0, 2]`:
/// `[seq, batch, feat]`, the layout an ONNX `LSTM` reads, as medic's export writes it), drops
/// that transpose so the plan takes time-major input, and the runner transposes while it
/// copies the windows in. tract would otherwise move the axis after the first layer's input
/// projection, which it hoists out of the loop: on a tensor `4 × hidden / feat` times larger
/// (51× for 128 units over 10 features). Returns whether it did; any other graph is left as
/// it is.
fn drop_input_transpose(model: &mut InferenceModel) -> TractResult<bool> {
    let input = model.input_outlets()?[0];
    let successors = &model.node(input.node).outputs[0].successors;
    let [only] = successors.as_slice() else {
        return Ok(false);
    };
    let node = model.node(only.node);
    let perm = node
        .op_as::<Box<dyn Expansion>>()
        .and_then(|e| e.as_any().downcast_ref::<PermuteAxes>())
        .and_then(|p| p.axes.as_deref());
    if perm != Some(&[1, 0, 2][..]) {
        return Ok(false);
    }
    let Some(patch) = InferenceModelPatch::shunt_one_op(model, node)? else {
        return Ok(false);
    };
    patch.apply(model)?;
    model.compact()?;
    Ok(true)
}

/// The optimised plan of `model` for `batch` windows; with `allow_time_major` it takes
/// time-major input where [`drop_input_transpose`] applies (the returned flag says so).
fn build_plan(
    model: &InferenceModel,
    batch: usize,
    seq: usize,
    feat: usize,
    allow_time_major: bool,
) -> TractResult<(Plan, bool)> {
    let mut m = model.clone();
    let time_major = allow_time_major && drop_input_transpose(&mut m)?;
    let shape = if time_major {
        [seq, batch, feat]
    } else {
        [batch, seq, feat]
    };
    m.set_input_fact(0, f32::fact(shape).into())?;
    *m.output_fact_mut(0)? = InferenceFact::default();
    let mut typed = m.into_typed()?;
    // tract runs an ONNX LSTM as a `Scan` that, by default, carries its hidden state from one
    // run to the next (streaming). Every window here is a sequence of its own: start each run
    // from the zero initial state, or a reused `SimpleState` leaks one batch into the next.
    for node in &mut typed.nodes {
        if let Some(scan) = node.op_as_mut::<Scan>() {
            scan.reset_every_turn = true;
        }
    }
    let typed = typed.into_optimized()?;
    let out = typed.output_fact(0)?;
    let shape = out.shape.as_concrete().map(|s| s.to_vec());
    ensure!(
        out.datum_type == f32::datum_type() && shape.as_deref() == Some(&[batch, 1][..]),
        "output is {out:?}, expected f32 [{batch}, 1]"
    );
    Ok((typed.into_runnable()?, time_major))
}

impl Predictor {
    /// Loads `path` with default options (batch 32).
    pub fn load(path: &Path) -> Result<Self, PredictError> {
        Self::load_with(path, PredictorOptions::default())
    }

    /// Loads `path`: the card from `<model>.card.json` if present, else from the ONNX
    /// metadata; checks the graph input against the card; builds the optimised plans.
    pub fn load_with(path: &Path, opts: PredictorOptions) -> Result<Self, PredictError> {
        let p = path.display().to_string();
        if opts.batch == 0 {
            return Err(model_err(&p, "batch size 0"));
        }
        let bytes = std::fs::read(path).map_err(|source| PredictError::Io {
            path: p.clone(),
            source,
        })?;
        let onnx = tract_onnx::onnx();
        let proto = onnx
            .proto_model_for_read(&mut bytes.as_slice())
            .map_err(|e| model_err(&p, format!("not an onnx model: {e:#}")))?;
        let card_path = PredictorCard::path_for(path);
        let card = if card_path.exists() {
            PredictorCard::load(&card_path)?
        } else {
            let text = proto
                .metadata_props
                .iter()
                .find(|e| e.key == CARD_METADATA_KEY)
                .map(|e| e.value.as_str())
                .ok_or_else(|| {
                    PredictError::Card(format!(
                        "no {} and no card in the model's metadata",
                        card_path.display()
                    ))
                })?;
            PredictorCard::from_json(text)?
        };
        let (seq, feat) = (card.seq_len, card.feature_names.len());
        let dims = proto_input_dims(&proto).map_err(|m| model_err(&p, m))?;
        if dims.len() != 3 || dims[1] != Some(seq as i64) || dims[2] != Some(feat as i64) {
            return Err(PredictError::Mismatch(format!(
                "{p}: input shape {dims:?}, the card says [batch, {seq}, {feat}]"
            )));
        }
        let featurizer = StepFeaturizer::new(card.feature_spec.clone(), card.feature_window)?;
        // tract is a third-party parser of an untrusted file; a panic inside it must not take
        // the caller down.
        let built = std::panic::catch_unwind(AssertUnwindSafe(|| -> TractResult<Plans> {
            let model = onnx.model_for_proto_model(&proto)?;
            let (single, time_major) = build_plan(&model, 1, seq, feat, true)?;
            let batch = if opts.batch == 1 {
                single.clone()
            } else {
                build_plan(&model, opts.batch, seq, feat, true)?.0
            };
            Ok(Plans {
                single,
                batch,
                batch_size: opts.batch,
                time_major,
            })
        }));
        let plans = match built {
            Ok(Ok(plans)) => Arc::new(plans),
            Ok(Err(e)) => return Err(model_err(&p, format!("{e:#}"))),
            Err(_) => return Err(model_err(&p, "tract panicked while loading the model")),
        };
        Self::with_plans(card, p, plans, featurizer)
    }

    fn with_plans(
        card: PredictorCard,
        path: String,
        plans: Arc<Plans>,
        featurizer: StepFeaturizer,
    ) -> Result<Self, PredictError> {
        let (seq, feat) = (card.seq_len, card.feature_names.len());
        let err = |e: TractError| model_err(&path, format!("{e:#}"));
        let tm = plans.time_major;
        let single = Runner::new(&plans.single, 1, seq, feat, tm).map_err(err)?;
        let batch = Runner::new(&plans.batch, plans.batch_size, seq, feat, tm).map_err(err)?;
        Ok(Predictor {
            single,
            batch,
            featurizer,
            feat_scratch: Vec::new(),
            occl: Vec::new(),
            occl_out: Vec::new(),
            card,
            path,
            plans,
        })
    }

    /// Another predictor over the same optimised plans with its own states (one per worker).
    pub fn fork(&self) -> Result<Self, PredictError> {
        Self::with_plans(
            self.card.clone(),
            self.path.clone(),
            self.plans.clone(),
            self.featurizer.clone(),
        )
    }

    /// Refuses the model when a raw series it needs is not in `available` (what the fleet
    /// provides), naming the missing ones.
    pub fn check_series(&self, available: &[&str]) -> Result<(), PredictError> {
        let missing: Vec<String> = self
            .featurizer
            .raw_names()
            .into_iter()
            .filter(|n| !available.contains(&n.as_str()))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(PredictError::Mismatch(format!(
                "the model needs series {missing:?} which the fleet does not provide"
            )))
        }
    }

    /// Refuses the model unless its feature names are exactly `expected` (names and order).
    pub fn check_features(&self, expected: &[String]) -> Result<(), PredictError> {
        if self.card.feature_names == expected {
            Ok(())
        } else {
            Err(PredictError::Mismatch(format!(
                "model features {:?}, expected {:?}",
                self.card.feature_names, expected
            )))
        }
    }

    /// The model card.
    pub fn card(&self) -> &PredictorCard {
        &self.card
    }

    /// Steps per window.
    pub fn seq_len(&self) -> usize {
        self.card.seq_len
    }

    /// Features per step.
    pub fn n_features(&self) -> usize {
        self.card.feature_names.len()
    }

    /// Values per window (`seq_len × n_features`).
    pub fn window_len(&self) -> usize {
        self.seq_len() * self.n_features()
    }

    /// The planned batch size.
    pub fn batch_size(&self) -> usize {
        self.plans.batch_size
    }

    /// Raw rows needed to build one window: `seq_len + feature_window − 1`.
    pub fn raw_rows(&self) -> usize {
        self.card.seq_len + self.card.feature_window - 1
    }

    /// Names of the raw series a window is built from, in the order `columns` must follow.
    pub fn raw_series(&self) -> Vec<String> {
        self.featurizer.raw_names()
    }

    /// Builds one scaled window into `out` (`window_len()` values) from raw columns: `times`
    /// (seconds) and `columns` (one per [`Self::raw_series`]) hold at least
    /// [`Self::raw_rows`] rows; the last ones are used. Same feature path as training.
    pub fn window_from_raw(
        &mut self,
        times: &[f64],
        columns: &[&[f64]],
        out: &mut [f32],
    ) -> Result<(), PredictError> {
        let need = self.raw_rows();
        if times.len() < need {
            return Err(PredictError::Data(format!(
                "{} raw rows, the model needs {need}",
                times.len()
            )));
        }
        if out.len() != self.window_len() {
            return Err(PredictError::Data(format!(
                "window buffer of {} for {} values",
                out.len(),
                self.window_len()
            )));
        }
        let first = times.len() - self.seq_len();
        let w = self.n_features();
        // Only the trailing `need` rows matter; slicing keeps the work per window constant.
        let lo = times.len() - need;
        let cols: Vec<&[f64]> = columns.iter().map(|c| c.get(lo..).unwrap_or(c)).collect();
        self.feat_scratch.resize(self.seq_len() * w, 0.0);
        self.featurizer
            .featurize_into(&times[lo..], &cols, first - lo, &mut self.feat_scratch)?;
        let sc = &self.card.scaler;
        for (k, (o, v)) in out.iter_mut().zip(&self.feat_scratch).enumerate() {
            let j = k % w;
            *o = if v.is_nan() {
                0.0
            } else {
                ((v - sc.center[j]) / sc.scale[j]) as f32
            };
        }
        Ok(())
    }

    /// Probabilities of `out.len()` scaled windows (`windows` holds `out.len() ×
    /// window_len()` values). One window runs on the batch-1 plan; more run on the batch plan
    /// in chunks of [`Self::batch_size`], the last chunk padded.
    pub fn predict_into(&mut self, windows: &[f32], out: &mut [f32]) -> Result<(), PredictError> {
        let wl = self.window_len();
        if windows.len() != out.len() * wl {
            return Err(PredictError::Data(format!(
                "{} values for {} windows of {wl}",
                windows.len(),
                out.len()
            )));
        }
        let path = &self.path;
        let err = |e: TractError| model_err(path, format!("{e:#}"));
        if out.len() == 1 {
            return self.single.run(windows, out).map_err(err);
        }
        let b = self.batch.batch;
        for (w, o) in windows.chunks(b * wl).zip(out.chunks_mut(b)) {
            self.batch.run(w, o).map_err(err)?;
        }
        Ok(())
    }

    /// Where a batch-plan run spends its time: each node of the optimised batch plan in plan
    /// order with its mean wall time over `runs` runs of `windows` (at most
    /// [`Self::batch_size`] scaled windows). For benches; a `Scan` node's time covers its whole
    /// loop over the steps.
    pub fn profile_batch(
        &mut self,
        windows: &[f32],
        runs: usize,
    ) -> Result<Vec<NodeTime>, PredictError> {
        let wl = self.window_len();
        if !windows.len().is_multiple_of(wl) || windows.len() / wl > self.batch.batch {
            return Err(PredictError::Data(format!(
                "{} values is not a whole number of at most {} windows of {wl}",
                windows.len(),
                self.batch.batch
            )));
        }
        let path = &self.path;
        self.batch
            .profile(windows, runs)
            .map_err(|e| model_err(path, format!("{e:#}")))
    }

    /// The probability of one scaled window.
    pub fn predict_one(&mut self, window: &[f32]) -> Result<f32, PredictError> {
        let mut p = [0.0f32];
        self.predict_into(window, &mut p)?;
        Ok(p[0])
    }

    /// Probability, alarm, contributing factors and recommended action for one window whose
    /// probability is already known (e.g. from a batch).
    pub fn explain(
        &mut self,
        window: &[f32],
        probability: f32,
    ) -> Result<Prediction, PredictError> {
        let (wl, w) = (self.window_len(), self.n_features());
        if window.len() != wl {
            return Err(PredictError::Data(format!(
                "window of {} values, expected {wl}",
                window.len()
            )));
        }
        // One occluded copy per feature, run as one batch.
        self.occl.clear();
        for j in 0..w {
            let start = self.occl.len();
            self.occl.extend_from_slice(window);
            for t in 0..self.seq_len() {
                self.occl[start + t * w + j] = 0.0;
            }
        }
        self.occl_out.resize(w, 0.0);
        let occl = std::mem::take(&mut self.occl);
        let mut occl_out = std::mem::take(&mut self.occl_out);
        let r = self.predict_into(&occl, &mut occl_out);
        self.occl = occl;
        self.occl_out = occl_out;
        r?;
        let mut order: Vec<usize> = (0..w).collect();
        order.sort_by(|&a, &b| {
            (probability - self.occl_out[b]).total_cmp(&(probability - self.occl_out[a]))
        });
        let factors: Vec<Factor> = order
            .into_iter()
            .map(|j| Factor {
                feature: self.card.feature_names[j].clone(),
                drop: probability - self.occl_out[j],
            })
            .filter(|f| f.drop > 0.0)
            .take(TOP_FACTORS)
            .collect();
        let action = self.recommend(&factors);
        Ok(Prediction {
            probability,
            alarm: f64::from(probability) >= self.card.threshold,
            factors,
            action,
        })
    }

    /// Predicts every window (`windows` holds `n × window_len()` values) and explains the
    /// ones that alarm (factors and action; others get none). For `medic heal --preemptive`:
    /// all targets due in one tick in one call.
    pub fn predict_batch(&mut self, windows: &[f32]) -> Result<Vec<Prediction>, PredictError> {
        let wl = self.window_len();
        if !windows.len().is_multiple_of(wl) {
            return Err(PredictError::Data(format!(
                "{} values is not a whole number of windows of {wl}",
                windows.len()
            )));
        }
        let mut probs = vec![0.0f32; windows.len() / wl];
        self.predict_into(windows, &mut probs)?;
        let mut out = Vec::with_capacity(probs.len());
        for (i, &p) in probs.iter().enumerate() {
            if f64::from(p) >= self.card.threshold {
                out.push(self.explain(&windows[i * wl..(i + 1) * wl], p)?);
            } else {
                out.push(Prediction {
                    probability: p,
                    alarm: false,
                    factors: Vec::new(),
                    action: None,
                });
            }
        }
        Ok(out)
    }

    /// The raw series a feature is computed from.
    fn series_of(&self, feature: &str) -> Option<&str> {
        let idx = self.card.feature_names.iter().position(|f| f == feature)?;
        let series = self.card.feature_spec.series_of_feature();
        Some(self.card.feature_spec.series[series[idx]].name.as_str())
    }

    fn recommend(&self, factors: &[Factor]) -> Option<Strategy> {
        let dominant = self.series_of(&factors.first()?.feature)?;
        let load_among = factors.iter().any(|f| {
            matches!(
                self.series_of(&f.feature),
                Some(s) if s.starts_with("queue") || s.starts_with("request_rate")
            )
        });
        Some(recommend_for_series(dominant, load_among))
    }
}

/// The preemptive action for a dominant raw series (see the module docs); `load_among` says
/// whether queue depth or request rate is also among the top factors.
pub fn recommend_for_series(series: &str, load_among: bool) -> Strategy {
    let s = series;
    if s.starts_with("rss") || s.contains("fd") || s.starts_with("restart") || s.contains("mem") {
        Strategy::Restart
    } else if s.starts_with("error") {
        Strategy::CircuitBreak
    } else if s.starts_with("queue") || s.starts_with("request_rate") || s.starts_with("cpu") {
        Strategy::Scale
    } else if s.starts_with("latency") {
        if load_among {
            Strategy::Scale
        } else {
            Strategy::Restart
        }
    } else {
        Strategy::Observe
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predict::{LstmWeights, write_model};

    /// A model of random weights (LSTM 16 → 8, dense 4) in `dir`, identity scaler.
    fn small_model(dir: &Path) -> std::path::PathBuf {
        let w = LstmWeights::random(20, 10, &[16, 8], &[4], 11);
        let card = PredictorCard::untrained(&[16, 8], &[4]);
        let path = dir.join("small.onnx");
        write_model(&w, &card, &path).expect("write model");
        path
    }

    fn windows(n: usize) -> Vec<f32> {
        (0..n * 200)
            .map(|i| ((i * 7919 % 1000) as f32 / 250.0) - 2.0)
            .collect()
    }

    #[test]
    fn the_time_major_plan_computes_what_the_graph_as_written_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = small_model(dir.path());
        let model = tract_onnx::onnx().model_for_path(&path).unwrap();
        let (tm_plan, tm) = build_plan(&model, 5, 20, 10, true).unwrap();
        let (bm_plan, bm) = build_plan(&model, 5, 20, 10, false).unwrap();
        assert!(
            tm,
            "medic's export transposes its input: the rewrite applies"
        );
        assert!(!bm);
        let mut tm_run = Runner::new(&tm_plan, 5, 20, 10, true).unwrap();
        let mut bm_run = Runner::new(&bm_plan, 5, 20, 10, false).unwrap();
        // 3 windows in a batch of 5: the padding is checked too.
        let x = windows(3);
        let (mut a, mut b) = ([0.0f32; 3], [0.0f32; 3]);
        tm_run.run(&x, &mut a).unwrap();
        bm_run.run(&x, &mut b).unwrap();
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 1e-6, "{a:?} vs {b:?}");
        }
        assert!(
            a.iter().any(|p| (p - a[0]).abs() > 1e-6),
            "distinct windows differ"
        );
    }

    #[test]
    fn a_profile_names_the_plans_nodes_and_refuses_an_oversized_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = small_model(dir.path());
        let mut p = Predictor::load_with(&path, PredictorOptions { batch: 4 }).unwrap();
        let nodes = p.profile_batch(&windows(4), 2).unwrap();
        assert_eq!(
            nodes.iter().filter(|n| n.op == "Scan").count(),
            2,
            "{nodes:?}"
        );
        assert!(nodes.iter().all(|n| n.micros >= 0.0));
        assert!(matches!(
            p.profile_batch(&windows(5), 1),
            Err(PredictError::Data(_))
        ));
    }
}
