//! The weights of the failure-prediction network, independent of any training framework.
//!
//! The network is a stack of LSTM layers (each reading the previous layer's full output
//! sequence; the last one's final hidden state is kept) followed by dense layers, the last of
//! which has one output passed through a sigmoid. Gate blocks follow PyTorch's order
//! `i, f, g, o` (input, forget, cell candidate, output); the ONNX writer converts to ONNX's
//! `i, o, f, c`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::PredictError;

/// One LSTM layer: `h_t = o ⊙ tanh(c_t)`, `c_t = f ⊙ c_{t−1} + i ⊙ g`, with
/// `[i f g o] = act(W_ih x_t + W_hh h_{t−1} + b)` (sigmoid for i, f, o; tanh for g).
#[derive(Debug, Clone, PartialEq)]
pub struct LstmLayer {
    /// Width of the input at each step.
    pub input: usize,
    /// Hidden (and cell) state width.
    pub hidden: usize,
    /// `[4*hidden, input]`, row-major, gate blocks in the order i, f, g, o.
    pub w_ih: Vec<f32>,
    /// `[4*hidden, hidden]`, row-major, gate blocks in the order i, f, g, o.
    pub w_hh: Vec<f32>,
    /// `[4*hidden]`, input and recurrent biases already summed, gate order i, f, g, o.
    pub b: Vec<f32>,
}

/// One dense layer: `y = W x + b`, then ReLU if `relu`.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseLayer {
    /// Input width.
    pub input: usize,
    /// Output width.
    pub output: usize,
    /// `[output, input]`, row-major.
    pub w: Vec<f32>,
    /// `[output]`.
    pub b: Vec<f32>,
    /// Whether a ReLU follows.
    pub relu: bool,
}

/// The whole network: input `[seq_len, n_features]` per window, output one probability.
///
/// The last dense layer has `output == 1` and no ReLU; a sigmoid follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LstmWeights {
    /// Steps per window.
    pub seq_len: usize,
    /// Features per step.
    pub n_features: usize,
    /// LSTM layers, first to last; at least one.
    pub lstm: Vec<LstmLayer>,
    /// Dense layers after the last LSTM's final hidden state; at least one.
    pub dense: Vec<DenseLayer>,
}

impl LstmWeights {
    /// Checks every width and length; a network that passes can be run and exported.
    pub fn validate(&self) -> Result<(), PredictError> {
        let bad = |m: String| Err(PredictError::Weights(m));
        if self.seq_len == 0 || self.n_features == 0 {
            return bad(format!(
                "seq_len {} and n_features {} must be positive",
                self.seq_len, self.n_features
            ));
        }
        if self.lstm.is_empty() || self.dense.is_empty() {
            return bad("need at least one lstm and one dense layer".into());
        }
        let mut width = self.n_features;
        for (k, l) in self.lstm.iter().enumerate() {
            if l.input != width || l.hidden == 0 {
                return bad(format!(
                    "lstm {k}: input {} hidden {}, expected input {width}",
                    l.input, l.hidden
                ));
            }
            let g = 4 * l.hidden;
            if l.w_ih.len() != g * l.input || l.w_hh.len() != g * l.hidden || l.b.len() != g {
                return bad(format!(
                    "lstm {k}: w_ih {} w_hh {} b {}, expected {} {} {}",
                    l.w_ih.len(),
                    l.w_hh.len(),
                    l.b.len(),
                    g * l.input,
                    g * l.hidden,
                    g
                ));
            }
            width = l.hidden;
        }
        for (k, d) in self.dense.iter().enumerate() {
            if d.input != width || d.output == 0 {
                return bad(format!(
                    "dense {k}: input {} output {}, expected input {width}",
                    d.input, d.output
                ));
            }
            if d.w.len() != d.input * d.output || d.b.len() != d.output {
                return bad(format!(
                    "dense {k}: w {} b {}, expected {} {}",
                    d.w.len(),
                    d.b.len(),
                    d.input * d.output,
                    d.output
                ));
            }
            width = d.output;
        }
        let last = &self.dense[self.dense.len() - 1];
        if last.output != 1 || last.relu {
            return bad("the last dense layer must have one output and no relu".into());
        }
        let finite = self
            .lstm
            .iter()
            .flat_map(|l| l.w_ih.iter().chain(&l.w_hh).chain(&l.b))
            .chain(self.dense.iter().flat_map(|d| d.w.iter().chain(&d.b)))
            .all(|v| v.is_finite());
        if !finite {
            return bad("a weight is not finite".into());
        }
        Ok(())
    }

    /// A network of the given sizes with uniform random weights in `±1/sqrt(width)` (PyTorch's
    /// default init range), deterministic in `seed`. For tests, benches and as a training start.
    ///
    /// `dense` lists the hidden dense widths (each followed by ReLU); a final 1-output layer is
    /// appended.
    pub fn random(
        seq_len: usize,
        n_features: usize,
        lstm: &[usize],
        dense: &[usize],
        seed: u64,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut draw = |n: usize, fan: usize| -> Vec<f32> {
            let k = 1.0 / (fan.max(1) as f32).sqrt();
            (0..n).map(|_| rng.random_range(-k..=k)).collect()
        };
        let mut width = n_features;
        let mut layers = Vec::with_capacity(lstm.len());
        for &h in lstm {
            layers.push(LstmLayer {
                input: width,
                hidden: h,
                w_ih: draw(4 * h * width, h),
                w_hh: draw(4 * h * h, h),
                b: draw(4 * h, h),
            });
            width = h;
        }
        let mut dl = Vec::with_capacity(dense.len() + 1);
        for (k, &o) in dense.iter().chain(std::iter::once(&1)).enumerate() {
            dl.push(DenseLayer {
                input: width,
                output: o,
                w: draw(o * width, width),
                b: draw(o, width),
                relu: k < dense.len(),
            });
            width = o;
        }
        LstmWeights {
            seq_len,
            n_features,
            lstm: layers,
            dense: dl,
        }
    }
}
