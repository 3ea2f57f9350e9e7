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
//! **LSTM lowering** ([`LstmLowering`]): tract lowers an ONNX `LSTM` to a `Scan` whose
//! input projection `x · Wᵀ` is hoisted out of the loop for all steps (a `steps × batch ×
//! 4·hidden` tensor written, then read back one step at a time and added to a k = hidden
//! product; for the first layer a product of k = 10, which tract's kernels run at a third of
//! their speed). By default the predictor rewrites each such layer, before tract optimises the
//! graph, into a scan doing one product per step of `[x_t, h_{t-1}]` with the constant
//! `[W | R]` (k = input + hidden) followed by tract's own fused LSTM cell: the same arithmetic
//! summed in another order (outputs within ~1e-7), no large intermediate tensor, larger products.
//! See `fold_lstm_input_projections`; a layer of any other form keeps tract's lowering.
//!
//! The batch-1 plan keeps tract's lowering (for one window the hoisted projection is a single
//! small product; the fold measured slower there).
//!
//! Speed (README, "Failure prediction"): a large call runs in chunks of the planned batch
//! (default 64): each chunk's intermediate tensors stay in cache, while one plan of 1,024
//! windows streams large tensors through memory and runs slower per window.
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
use tract_onnx::tract_core::ops::scan::{OptScan, Scan};
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
    /// ones padded. The default, 64, was measured fastest per window at batch 64 and 1,024 with
    /// the folded LSTM lowering (README, "Failure prediction").
    pub batch: usize,
}

impl Default for PredictorOptions {
    fn default() -> Self {
        PredictorOptions { batch: 64 }
    }
}

/// How the model's ONNX `LSTM` layers become tract operators in the batch plan (the batch-1
/// plan always keeps tract's lowering, measured faster for one window).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LstmLowering {
    /// Each layer computes one matrix product per step, of `[x_t, h_{t-1}]` with the constant
    /// `[W | R]`, and tract's fused LSTM cell (see the module docs). The default: the fastest
    /// measured for batches (README, "Failure prediction").
    #[default]
    Folded,
    /// tract's own lowering: each layer's input projection `x · Wᵀ` for all steps hoisted out
    /// of the loop, a product with `R` in each step. Outputs differ from [`Self::Folded`] only
    /// by rounding (another summation order).
    Tract,
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
    /// LSTM layers lowered by [`fold_lstm_input_projections`].
    folded: usize,
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

/// Folds the input projection of LSTM layers into their recurrent product: one matrix
/// product per step of `[x_t, h_{t-1}]` with the constant `[W | R]` (k = input + hidden)
/// instead of tract's lowering, which hoists `x · Wᵀ` for all steps out of the loop (a
/// `steps × batch × 4·hidden` tensor written, then read back one step at a time) and adds it
/// to a k = hidden product in the loop. Same arithmetic, summed in another order.
///
/// Applies to each `Scan` of `typed` (undecluttered, as `into_typed` left it) that is tract's
/// ONNX `LSTM` with the fused cell (`LstmEpilogue`: standard activations, no peepholes),
/// forward, with constant weights and bias; the layer is replaced by an already optimised scan, which the outer optimisation passes leave alone
/// (tract's declutter would split the concatenation again, `ConcatThenEinsum`). Returns how
/// many layers were folded; any other graph is left as it is.
fn fold_lstm_input_projections(typed: &mut TypedModel) -> TractResult<usize> {
    typed.prop_consts()?;
    let scans: Vec<usize> = typed
        .nodes
        .iter()
        .filter(|n| n.op_is::<Scan>())
        .map(|n| n.id)
        .collect();
    let mut folded = 0;
    for id in scans {
        let node = typed.node(id);
        let Some(scan) = node.op_as::<Scan>() else {
            continue;
        };
        let Some(op) = folded_lstm_scan(typed, node, scan)? else {
            continue;
        };
        let inputs = [node.inputs[0], node.inputs[4], node.inputs[5]];
        let patch = TypedModelPatch::replace_single_op(typed, node, &inputs, op)?;
        patch.apply(typed)?;
        folded += 1;
    }
    typed.compact()?;
    Ok(folded)
}

/// The folded, optimised scan for one LSTM `Scan` node (see
/// [`fold_lstm_input_projections`]), or `None` when the node is not the expected LSTM.
fn folded_lstm_scan(
    typed: &TypedModel,
    node: &TypedNode,
    scan: &Scan,
) -> TractResult<Option<OptScan>> {
    use tract_onnx::tract_core::ops::array::TypedConcat;
    use tract_onnx::tract_core::ops::change_axes::AxisOp;
    use tract_onnx::tract_core::ops::einsum::EinSum;
    use tract_onnx::tract_core::ops::lstm_cell::LstmEpilogue;
    use tract_onnx::tract_core::ops::math::add;
    use tract_onnx::tract_core::ops::scan::InputMapping;

    // ONNX LSTM as tract imports it: inputs x (scanned on axis 1, forward, one step), W, R,
    // b (full), h0, c0 (states).
    let forward_step = |m: &InputMapping| matches!(m, InputMapping::Scan(info) if info.axis == 1 && info.chunk == 1);
    if node.inputs.len() != 6
        || scan.input_mapping.len() != 6
        || !forward_step(&scan.input_mapping[0])
        || !scan.input_mapping[1..4]
            .iter()
            .all(|m| *m == InputMapping::Full)
        || !scan.input_mapping[4..].iter().all(|m| m.is_state())
        || scan.output_mapping.len() != 2
    {
        return Ok(None);
    }
    let Some(cell) = scan
        .body
        .nodes
        .iter()
        .find_map(|n| n.op_as::<LstmEpilogue>())
    else {
        return Ok(None);
    };
    let hidden = cell.hidden;
    let konst = |ix: usize| typed.outlet_fact(node.inputs[ix]).map(|f| f.konst.clone());
    let (Some(w), Some(r), Some(b)) = (konst(1)?, konst(2)?, konst(3)?) else {
        return Ok(None);
    };
    let x_fact = typed.outlet_fact(node.inputs[0])?;
    let h_fact = typed.outlet_fact(node.inputs[4])?;
    let c_fact = typed.outlet_fact(node.inputs[5])?;
    let (Some(x_shape), Some(h_shape)) = (x_fact.shape.as_concrete(), h_fact.shape.as_concrete())
    else {
        return Ok(None);
    };
    let input = w.shape().get(1).copied().unwrap_or(0);
    if x_fact.datum_type != f32::datum_type()
        || x_shape.len() != 3
        || x_shape[2] != input
        || h_shape.len() != 3
        || h_shape[2] != hidden
        || w.shape() != [4 * hidden, input]
        || r.shape() != [4 * hidden, hidden]
        || b.shape() != [1, 8 * hidden]
    {
        return Ok(None);
    }
    let batch = x_shape[0];
    // [W | R]: row g holds W[g] then R[g]; the bias is Wb + Rb, as tract's cell adds them.
    let values = |t: &Tensor| -> TractResult<Vec<f32>> {
        Ok(t.to_plain_array_view::<f32>()?.iter().copied().collect())
    };
    let (w, r, b) = (values(&w)?, values(&r)?, values(&b)?);
    let k = input + hidden;
    let mut wr = Vec::with_capacity(4 * hidden * k);
    for g in 0..4 * hidden {
        wr.extend_from_slice(&w[g * input..(g + 1) * input]);
        wr.extend_from_slice(&r[g * hidden..(g + 1) * hidden]);
    }
    let bias: Vec<f32> = (0..4 * hidden).map(|g| b[g] + b[4 * hidden + g]).collect();

    let mut body = TypedModel::default();
    let x = body.add_source("x_source", f32::fact([batch, 1, input]))?;
    let h = body.add_source("h_source", f32::fact([batch, 1, hidden]))?;
    let c = body.add_source("c_source", c_fact.datum_type.fact([batch, 1, hidden]))?;
    let wr = body.add_const("WR", tensor1(&wr).into_shape(&[4 * hidden, k])?)?;
    let bias = body.add_const("bias", tensor1(&bias).into_shape(&[1, 4 * hidden])?)?;
    let xh = body.wire_node("xh", TypedConcat { axis: 2 }, &[x, h])?[0];
    let prod = body.wire_node(
        "preact0",
        EinSum::new("mak,nk->mn".parse()?, f32::datum_type()),
        &[xh, wr],
    )?[0];
    let preact = body.wire_node("preact", add(), &[prod, bias])?[0];
    let c_prev = body.wire_node("Ct_1", AxisOp::Rm(1), &[c])?[0];
    let cell = body.wire_node("lstm_cell", LstmEpilogue { hidden }, &[preact, c_prev])?;
    let ht = body.wire_node("Ht_fixed", AxisOp::Add(1), &[cell[0]])?[0];
    let ct = body.wire_node("Ct_fixed", AxisOp::Add(1), &[cell[1]])?[0];
    body.select_output_outlets(&[ht, ct])?;
    // Code generation only: tract's declutter passes would split the concatenation.
    body.optimize()?;
    let input_mapping = vec![
        scan.input_mapping[0].clone(),
        InputMapping::State,
        InputMapping::State,
    ];
    let mut folded = Scan::new(body, input_mapping, scan.output_mapping.clone(), scan.skip)?;
    folded.reset_every_turn = scan.reset_every_turn;
    // The body is optimised already: make the runnable scan of it as it is.
    Ok(Some(folded.to_codegen_op(false)?))
}

/// An optimised plan and how it was built.
struct Built {
    plan: Plan,
    /// The plan takes `[seq, batch, feat]` (see [`drop_input_transpose`]).
    time_major: bool,
    /// LSTM layers lowered by [`fold_lstm_input_projections`].
    folded: usize,
}

/// The optimised plan of `model` for `batch` windows; with `allow_time_major` it takes
/// time-major input where [`drop_input_transpose`] applies, and with
/// [`LstmLowering::Folded`] its LSTM layers are lowered by [`fold_lstm_input_projections`].
fn build_plan(
    model: &InferenceModel,
    batch: usize,
    seq: usize,
    feat: usize,
    allow_time_major: bool,
    lowering: LstmLowering,
) -> TractResult<Built> {
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
    let folded = match lowering {
        LstmLowering::Folded => fold_lstm_input_projections(&mut typed)?,
        LstmLowering::Tract => 0,
    };
    let typed = typed.into_optimized()?;
    let out = typed.output_fact(0)?;
    let shape = out.shape.as_concrete().map(|s| s.to_vec());
    ensure!(
        out.datum_type == f32::datum_type() && shape.as_deref() == Some(&[batch, 1][..]),
        "output is {out:?}, expected f32 [{batch}, 1]"
    );
    Ok(Built {
        plan: typed.into_runnable()?,
        time_major,
        folded,
    })
}

impl Predictor {
    /// Loads `path` with default options (batch 64).
    pub fn load(path: &Path) -> Result<Self, PredictError> {
        Self::load_with(path, PredictorOptions::default())
    }

    /// Loads `path`: the card from `<model>.card.json` if present, else from the ONNX
    /// metadata; checks the graph input against the card; builds the optimised plans (LSTM
    /// layers lowered as [`LstmLowering::Folded`]).
    pub fn load_with(path: &Path, opts: PredictorOptions) -> Result<Self, PredictError> {
        Self::load_lowered(path, opts, LstmLowering::default())
    }

    /// [`Self::load_with`], the LSTM layers lowered as `lowering` says.
    pub fn load_lowered(
        path: &Path,
        opts: PredictorOptions,
        lowering: LstmLowering,
    ) -> Result<Self, PredictError> {
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
            // The batch-1 plan keeps tract's lowering: for one window the hoisted projection
            // is one small product and the step's product a matrix-vector one, and the fold
            // measured slower there (batch-1 latency 195 vs 172 µs, README).
            let single = build_plan(&model, 1, seq, feat, true, LstmLowering::Tract)?;
            let batch = if opts.batch == 1 {
                Built {
                    plan: single.plan.clone(),
                    ..single
                }
            } else {
                build_plan(&model, opts.batch, seq, feat, true, lowering)?
            };
            ensure!(
                batch.time_major == single.time_major,
                "the plans disagree on the input layout"
            );
            Ok(Plans {
                single: single.plan,
                batch: batch.plan,
                batch_size: opts.batch,
                time_major: single.time_major,
                folded: batch.folded,
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

    /// How many LSTM layers the batch plan runs with their input projection folded into the
    /// recurrent product ([`LstmLowering::Folded`]; 0 with [`LstmLowering::Tract`], with a
    /// planned batch of 1, or when no layer has the expected form). The batch-1 plan always
    /// keeps tract's lowering.
    pub fn folded_layers(&self) -> usize {
        self.plans.folded
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

    /// The optimised batch plan, one line per node in plan order (a `Scan`'s body follows it,
    /// indented): tract's operator, the node's name and tract's own description of it (for a
    /// matrix product its m, k, n and the kernel it picked). For benches.
    pub fn describe_batch_plan(&self) -> Vec<String> {
        let mut lines = Vec::new();
        describe_model(self.plans.batch.model(), 0, &mut lines);
        lines
    }

    /// Where one step of each LSTM layer's loop spends its time: for every `Scan` of the batch
    /// plan, its body run `runs` times on inputs of the body's shapes (a ramp of values in
    /// [-1, 1]), each node with its mean wall time per step. For benches.
    // Profiling measures elapsed wall time by definition; nothing decides on it.
    #[allow(clippy::disallowed_methods)]
    pub fn profile_scan_bodies(
        &self,
        runs: usize,
    ) -> Result<Vec<(String, Vec<NodeTime>)>, PredictError> {
        let err = |e: TractError| model_err(&self.path, format!("{e:#}"));
        let mut out = Vec::new();
        for node in &self.plans.batch.model().nodes {
            let Some(scan) = node.op_as::<OptScan>() else {
                continue;
            };
            let body = scan.plan.model();
            let mut inputs = TVec::new();
            for ix in 0..body.inputs.len() {
                let fact = body.input_fact(ix).map_err(err)?;
                let shape = fact
                    .shape
                    .as_concrete()
                    .map(|s| s.to_vec())
                    .unwrap_or_default();
                let n: usize = shape.iter().product();
                let v: Vec<f32> = (0..n).map(|i| (i % 200) as f32 / 100.0 - 1.0).collect();
                let t = Tensor::from_shape(&shape, &v).map_err(err)?;
                inputs.push(TValue::from_const(Arc::new(t)));
            }
            let mut state = SimpleState::new(&scan.plan).map_err(err)?;
            let mut total = vec![0.0f64; body.nodes.len()];
            for _ in 0..runs.max(1) {
                state
                    .run_plan_with_eval(inputs.clone(), |ctx, state, node, inputs| {
                        let t0 = std::time::Instant::now();
                        let r = tract_onnx::tract_core::plan::eval(ctx, state, node, inputs);
                        total[node.id] += t0.elapsed().as_secs_f64();
                        r
                    })
                    .map_err(err)?;
            }
            let times = body
                .nodes
                .iter()
                .map(|n| NodeTime {
                    op: n.op.name().to_string(),
                    name: n.name.clone(),
                    micros: total[n.id] / runs.max(1) as f64 * 1e6,
                })
                .collect();
            out.push((node.name.clone(), times));
        }
        Ok(out)
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

/// Appends one line per node of `model` (see [`Predictor::describe_batch_plan`]).
fn describe_model(model: &TypedModel, depth: usize, lines: &mut Vec<String>) {
    let indent = "  ".repeat(depth);
    for node in &model.nodes {
        let info = node.op.info().map(|i| i.join("; ")).unwrap_or_default();
        lines.push(format!("{indent}{} {}: {info}", node.op.name(), node.name));
        if let Some(scan) = node.op_as::<OptScan>() {
            describe_model(scan.plan.model(), depth + 1, lines);
        }
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
    use crate::predict::{LstmWeights, reference, write_model};

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
        let tm = build_plan(&model, 5, 20, 10, true, LstmLowering::Tract).unwrap();
        let bm = build_plan(&model, 5, 20, 10, false, LstmLowering::Tract).unwrap();
        assert!(
            tm.time_major,
            "medic's export transposes its input: the rewrite applies"
        );
        assert!(!bm.time_major);
        let mut tm_run = Runner::new(&tm.plan, 5, 20, 10, true).unwrap();
        let mut bm_run = Runner::new(&bm.plan, 5, 20, 10, false).unwrap();
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
    fn the_folded_lstm_layers_compute_what_tracts_lowering_and_the_reference_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = small_model(dir.path());
        let weights = LstmWeights::random(20, 10, &[16, 8], &[4], 11);
        // medic's export puts the summed bias in Wb and zeros in Rb: move a third of each
        // bias to Rb (the same network) so that the fold's Wb + Rb is checked too.
        let onnx = tract_onnx::onnx();
        let mut proto = onnx.proto_model_for_path(&path).unwrap();
        let graph = proto.graph.as_mut().unwrap();
        let mut split = 0;
        for t in graph
            .initializer
            .iter_mut()
            .filter(|t| t.name.ends_with("_B"))
        {
            if t.name.starts_with("lstm") {
                let half = t.float_data.len() / 2;
                for g in 0..half {
                    let moved = t.float_data[g] / 3.0;
                    t.float_data[g] -= moved;
                    t.float_data[half + g] += moved;
                }
                split += 1;
            }
        }
        assert_eq!(split, 2, "one bias per LSTM layer");
        let model = onnx.model_for_proto_model(&proto).unwrap();
        let folded = build_plan(&model, 5, 20, 10, true, LstmLowering::Folded).unwrap();
        let tract = build_plan(&model, 5, 20, 10, true, LstmLowering::Tract).unwrap();
        assert_eq!(folded.folded, 2, "both LSTM layers have the expected form");
        assert_eq!(tract.folded, 0);
        let mut f_run = Runner::new(&folded.plan, 5, 20, 10, true).unwrap();
        let mut t_run = Runner::new(&tract.plan, 5, 20, 10, true).unwrap();
        // 3 windows in a batch of 5 (padding), twice: each run starts from the zero state.
        let x = windows(3);
        let (mut a, mut b) = ([0.0f32; 3], [0.0f32; 3]);
        for _ in 0..2 {
            f_run.run(&x, &mut a).unwrap();
            t_run.run(&x, &mut b).unwrap();
            for (i, w) in x.chunks(200).enumerate() {
                let r = reference::forward(&weights, w);
                assert!((a[i] - b[i]).abs() < 1e-6, "{a:?} vs {b:?}");
                assert!(
                    (a[i] - r).abs() < 1e-5,
                    "window {i}: {} vs reference {r}",
                    a[i]
                );
            }
        }
        // Through the predictor: the batch plan is folded, the batch-1 plan is not.
        let mut p = Predictor::load(&path).unwrap();
        assert_eq!(p.folded_layers(), 2);
        let mut out = [0.0f32; 3];
        p.predict_into(&x, &mut out).unwrap();
        let one = p.predict_one(&x[..200]).unwrap();
        for (i, w) in x.chunks(200).enumerate() {
            assert!((out[i] - reference::forward(&weights, w)).abs() < 1e-5);
        }
        assert!((one - out[0]).abs() < 1e-5);
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
