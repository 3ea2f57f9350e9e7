//! The failure-prediction network in burn: stacked forward LSTMs, dropout after each, dense
//! layers with ReLU, one logit. The sigmoid is applied by the loss during training and by
//! [`FailureNet::predict`]; the exported ONNX ends with an explicit `Sigmoid`.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, Lstm, LstmConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor, TensorData};

use crate::Error;

/// Sizes of the network.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfig {
    /// Features per step.
    pub n_features: usize,
    /// LSTM hidden sizes, first to last (the original design: 128, 64, 32).
    pub lstm: Vec<usize>,
    /// Hidden dense widths, each followed by ReLU (the original design: 16); a final 1-output
    /// layer is always appended.
    pub dense: Vec<usize>,
    /// Dropout probability after each LSTM layer, in `[0, 1)` (the original design: 0.2).
    pub dropout: f64,
}

impl NetConfig {
    /// The original design's sizes for `n_features` inputs: LSTM 128 → 64 → 32, dropout 0.2,
    /// dense 16.
    pub fn original(n_features: usize) -> Self {
        NetConfig {
            n_features,
            lstm: vec![128, 64, 32],
            dense: vec![16],
            dropout: 0.2,
        }
    }

    /// Checks the sizes.
    pub fn validate(&self) -> Result<(), Error> {
        if self.n_features == 0 || self.lstm.is_empty() || self.lstm.contains(&0) {
            return Err(Error::Config(format!(
                "need features and at least one non-empty lstm layer, got {} features and {:?}",
                self.n_features, self.lstm
            )));
        }
        if self.dense.contains(&0) {
            return Err(Error::Config(format!(
                "empty dense layer in {:?}",
                self.dense
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!(
                "dropout {} not in [0, 1)",
                self.dropout
            )));
        }
        Ok(())
    }
}

/// The network. Built on a device (seed the device first for reproducible initial weights).
#[derive(Module, Debug)]
pub struct FailureNet {
    /// LSTM layers (batch-first, forward only, with bias).
    pub lstm: Vec<Lstm>,
    /// Dense layers; ReLU after all but the last, which has one output (the logit).
    pub dense: Vec<Linear>,
    /// Dropout after each LSTM layer (active only on an autodiff device in training mode).
    pub dropout: Dropout,
}

impl FailureNet {
    /// A freshly initialised network (burn's default initialisers) on `device`.
    pub fn new(cfg: &NetConfig, device: &Device) -> Result<Self, Error> {
        cfg.validate()?;
        let mut width = cfg.n_features;
        let mut lstm = Vec::with_capacity(cfg.lstm.len());
        for &h in &cfg.lstm {
            lstm.push(LstmConfig::new(width, h, true).init(device));
            width = h;
        }
        let mut dense = Vec::with_capacity(cfg.dense.len() + 1);
        for &o in cfg.dense.iter().chain(std::iter::once(&1)) {
            dense.push(LinearConfig::new(width, o).init(device));
            width = o;
        }
        Ok(FailureNet {
            lstm,
            dense,
            dropout: DropoutConfig::new(cfg.dropout).init(),
        })
    }

    /// Logits `[batch, 1]` for windows `[batch, seq_len, n_features]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        let mut seq = x;
        let last = self.lstm.len() - 1;
        let mut z = None;
        for (k, layer) in self.lstm.iter().enumerate() {
            let (out, state) = layer.forward(seq, None);
            if k == last {
                z = Some(self.dropout.forward(state.hidden));
                break;
            }
            seq = self.dropout.forward(out);
        }
        // The loop always runs: `new` refuses an empty LSTM stack.
        let mut z = z.expect("at least one lstm layer");
        let n_dense = self.dense.len();
        for (k, d) in self.dense.iter().enumerate() {
            z = d.forward(z);
            if k + 1 < n_dense {
                z = relu(z);
            }
        }
        z
    }

    /// Probabilities of `n` windows stored row-major in `x` (`n × seq_len × n_features`),
    /// computed in batches of `batch` on `device` (which should be a plain, non-autodiff device
    /// with a model from [`Module::valid`]).
    pub fn predict(
        &self,
        x: &[f32],
        seq_len: usize,
        n_features: usize,
        batch: usize,
        device: &Device,
    ) -> Vec<f32> {
        let per = seq_len * n_features;
        let n = x.len() / per;
        let mut out = Vec::with_capacity(n);
        for chunk in x[..n * per].chunks(batch.max(1) * per) {
            let b = chunk.len() / per;
            let t = Tensor::<3>::from_data(
                TensorData::new(chunk.to_vec(), [b, seq_len, n_features]),
                device,
            );
            let p = sigmoid(self.forward(t));
            out.extend(tensor_values(p));
        }
        out
    }
}

/// The values of a tensor as `f32`, row-major.
pub(crate) fn tensor_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    // Float tensors of this crate are f32 on the flex backend, so the conversion cannot fail.
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 tensor data")
}
