//! The training loop: Adam on a class-balanced, weighted binary cross-entropy, early stopping on
//! the validation split's PR-AUC, everything seeded.
//!
//! Rules:
//! - **Windows trained on**: training-split windows with a positive dataset weight (so sudden
//!   windows and, by default, averted windows are never trained on).
//! - **Imbalance**: by sampling and weighting. Each epoch takes every positive window and a
//!   fresh random sample of `negatives_per_positive ×` as many negatives (all negatives when
//!   0 or when there are fewer); negatives keep their dataset weight (1, or the averted
//!   down-weight) and every positive weighs `sampled negative weight / positives`, so both
//!   classes carry the same total weight. Probabilities are therefore not calibrated to the
//!   true base rate; the alarm threshold is chosen on the validation split.
//! - **Loss**: `Σ wᵢ·bce(zᵢ, yᵢ) / Σ wᵢ` with the logit form `max(z,0) − z·y + ln(1+e^{−|z|})`.
//! - **Early stopping**: after each epoch the validation windows (positive and negative only)
//!   are scored; the model with the best PR-AUC is kept and training stops after `patience`
//!   epochs without improvement. Without validation positives the training loss decides.
//! - **Determinism**: the burn device is seeded with `seed` (initial weights, dropout masks),
//!   and window order and negative sampling come from a ChaCha8 stream seeded with `seed`. On
//!   the single-threaded flex backend the same inputs give the same weights on one machine.

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use medic_detect::eval::metrics::average_precision;
use medic_detect::predict::dataset::{Split, WindowLabel};
use medic_detect::predict::{Dataset, LstmWeights};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Error;
use crate::export::to_weights;
use crate::net::{FailureNet, NetConfig};

/// How to train.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// LSTM hidden sizes (default 128, 64, 32).
    pub lstm: Vec<usize>,
    /// Hidden dense widths (default 16).
    pub dense: Vec<usize>,
    /// Dropout after each LSTM layer (default 0.2).
    pub dropout: f64,
    /// Adam learning rate (default 1e-3).
    pub learning_rate: f64,
    /// Windows per optimisation step (default 128).
    pub batch_size: usize,
    /// Upper bound on epochs (default 30).
    pub max_epochs: usize,
    /// Epochs without a better validation PR-AUC before stopping (default 4).
    pub patience: usize,
    /// Negatives sampled per positive each epoch; 0 = all negatives (default 3).
    pub negatives_per_positive: f64,
    /// Seed of the device and of the sampling (default 7).
    pub seed: u64,
    /// Windows per inference call when scoring (default 1024).
    pub eval_batch: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            lstm: vec![128, 64, 32],
            dense: vec![16],
            dropout: 0.2,
            learning_rate: 1e-3,
            batch_size: 128,
            max_epochs: 30,
            patience: 4,
            negatives_per_positive: 3.0,
            seed: 7,
            eval_batch: 1024,
        }
    }
}

impl TrainConfig {
    fn validate(&self) -> Result<(), Error> {
        if self.batch_size == 0 || self.max_epochs == 0 || self.eval_batch == 0 {
            return Err(Error::Config(
                "batch_size, max_epochs and eval_batch must be positive".into(),
            ));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(Error::Config(format!(
                "learning rate {} must be positive",
                self.learning_rate
            )));
        }
        if !(self.negatives_per_positive >= 0.0 && self.negatives_per_positive.is_finite()) {
            return Err(Error::Config(format!(
                "negatives_per_positive {} must be finite and not negative",
                self.negatives_per_positive
            )));
        }
        Ok(())
    }
}

/// What happened in one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Last epoch allowed.
    pub max_epochs: usize,
    /// Weighted mean training loss.
    pub loss: f64,
    /// Windows trained on in this epoch.
    pub windows: usize,
    /// Validation PR-AUC (`None` without validation positives).
    pub val_pr_auc: Option<f64>,
    /// Whether this epoch's model is the best so far (and kept).
    pub best: bool,
    /// Wall time of the epoch in seconds.
    pub seconds: f64,
}

/// A trained network.
#[derive(Debug)]
pub struct Trained {
    /// The best model, in validation mode on the plain (non-autodiff) device.
    pub net: FailureNet,
    /// The plain device the model lives on.
    pub device: Device,
    /// Its exported weights.
    pub weights: LstmWeights,
    /// Per-epoch reports.
    pub epochs: Vec<EpochReport>,
    /// Epoch of the kept model.
    pub best_epoch: usize,
    /// Validation PR-AUC of the kept model.
    pub best_val_pr_auc: Option<f64>,
    /// Positive and negative training windows available.
    pub train_windows: (usize, usize),
    /// Total training wall time in seconds.
    pub seconds: f64,
}

/// Gathers the windows `idx` of `ds` into one contiguous buffer.
pub(crate) fn gather(ds: &Dataset, idx: &[usize]) -> Vec<f32> {
    let mut x = Vec::with_capacity(idx.len() * ds.seq_len * ds.n_features);
    for &i in idx {
        x.extend_from_slice(ds.window(i));
    }
    x
}

/// Windows of `split` that count for evaluation: positives and negatives (not sudden, not
/// averted).
pub(crate) fn eval_indices(ds: &Dataset, split: Split) -> Vec<usize> {
    (0..ds.len())
        .filter(|&i| {
            let info = &ds.info[i];
            info.split == split
                && matches!(info.label, WindowLabel::Positive | WindowLabel::Negative)
        })
        .collect()
}

fn weighted_bce(logits: Tensor<1>, y: Tensor<1>, w: Tensor<1>, w_sum: f32) -> Tensor<1> {
    let per = logits.clone().clamp_min(0.0) - logits.clone() * y + logits.abs().neg().exp().log1p();
    (per * w).sum().div_scalar(w_sum)
}

/// Trains a network on `ds`, calling `on_epoch` after every epoch.
pub fn train(
    ds: &Dataset,
    cfg: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<Trained, Error> {
    cfg.validate()?;
    let net_cfg = NetConfig {
        n_features: ds.n_features,
        lstm: cfg.lstm.clone(),
        dense: cfg.dense.clone(),
        dropout: cfg.dropout,
    };
    net_cfg.validate()?;
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    for i in 0..ds.len() {
        if ds.info[i].split != Split::Train || ds.weight[i] <= 0.0 {
            continue;
        }
        if ds.y[i] > 0.5 { &mut pos } else { &mut neg }.push(i);
    }
    if pos.is_empty() || neg.is_empty() {
        return Err(Error::Data(format!(
            "training needs positive and negative windows, got {} and {}",
            pos.len(),
            neg.len()
        )));
    }
    let val_idx = eval_indices(ds, Split::Val);
    let val_labels: Vec<bool> = val_idx.iter().map(|&i| ds.y[i] > 0.5).collect();
    let val_x = gather(ds, &val_idx);
    let has_val = val_labels.iter().any(|&l| l) && val_labels.iter().any(|&l| !l);

    #[allow(clippy::disallowed_methods)] // wall time of training, reported, never decides
    let started = std::time::Instant::now();
    let plain = Device::flex();
    plain.seed(cfg.seed);
    let ad = plain.clone().autodiff();
    let mut model = FailureNet::new(&net_cfg, &ad)?;
    let mut optim = AdamConfig::new().init();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let (s, f) = (ds.seq_len, ds.n_features);

    let mut epochs = Vec::new();
    let mut best: Option<(FailureNet, usize, Option<f64>, f64)> = None;
    let mut since_best = 0;
    for epoch in 1..=cfg.max_epochs {
        #[allow(clippy::disallowed_methods)] // epoch wall time, reported only
        let t0 = std::time::Instant::now();
        let k = if cfg.negatives_per_positive == 0.0 {
            neg.len()
        } else {
            ((pos.len() as f64 * cfg.negatives_per_positive).ceil() as usize).min(neg.len())
        };
        // A partial Fisher–Yates shuffle draws k negatives without replacement.
        for j in 0..k {
            let r = rng.random_range(j..neg.len());
            neg.swap(j, r);
        }
        let neg_weight: f64 = neg[..k].iter().map(|&i| ds.weight[i] as f64).sum();
        let pos_weight = (neg_weight / pos.len() as f64) as f32;
        let mut order: Vec<usize> = pos.iter().chain(&neg[..k]).copied().collect();
        order.shuffle(&mut rng);

        let (mut loss_sum, mut weight_sum) = (0.0f64, 0.0f64);
        for batch in order.chunks(cfg.batch_size) {
            let b = batch.len();
            let x = gather(ds, batch);
            let y: Vec<f32> = batch.iter().map(|&i| ds.y[i]).collect();
            let w: Vec<f32> = batch
                .iter()
                .map(|&i| {
                    if ds.y[i] > 0.5 {
                        pos_weight
                    } else {
                        ds.weight[i]
                    }
                })
                .collect();
            let w_sum: f32 = w.iter().sum();
            if w_sum <= 0.0 {
                continue;
            }
            let xt = Tensor::<3>::from_data(TensorData::new(x, [b, s, f]), &ad);
            let yt = Tensor::<1>::from_data(TensorData::new(y, [b]), &ad);
            let wt = Tensor::<1>::from_data(TensorData::new(w, [b]), &ad);
            let logits = model.forward(xt).reshape([b]);
            let loss = weighted_bce(logits, yt, wt, w_sum);
            let value = loss.clone().into_scalar::<f32>() as f64;
            if !value.is_finite() {
                return Err(Error::Diverged { epoch, loss: value });
            }
            loss_sum += value * w_sum as f64;
            weight_sum += w_sum as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(cfg.learning_rate, model, grads);
        }
        let loss = loss_sum / weight_sum.max(f64::MIN_POSITIVE);

        let valid = model.valid();
        let val_pr_auc = if has_val {
            let p = valid.predict(&val_x, s, f, cfg.eval_batch, &plain);
            let scores: Vec<f64> = p.iter().map(|&v| v as f64).collect();
            average_precision(&scores, &val_labels)
        } else {
            None
        };
        let better = match (&best, val_pr_auc) {
            (None, _) => true,
            (Some((_, _, Some(b), _)), Some(v)) => v > *b + 1e-9,
            (Some((_, _, None, l)), None) => loss < *l,
            (Some(_), _) => false,
        };
        if better {
            best = Some((valid, epoch, val_pr_auc, loss));
            since_best = 0;
        } else {
            since_best += 1;
        }
        let report = EpochReport {
            epoch,
            max_epochs: cfg.max_epochs,
            loss,
            windows: order.len(),
            val_pr_auc,
            best: better,
            seconds: t0.elapsed().as_secs_f64(),
        };
        on_epoch(&report);
        epochs.push(report);
        if since_best >= cfg.patience.max(1) {
            break;
        }
    }
    // At least one epoch ran and the first epoch always becomes the best.
    let (net, best_epoch, best_val_pr_auc, _) = best.expect("one epoch ran");
    let weights = to_weights(&net, ds.seq_len)?;
    Ok(Trained {
        net,
        device: plain,
        weights,
        epochs,
        best_epoch,
        best_val_pr_auc,
        train_windows: (pos.len(), neg.len()),
        seconds: started.elapsed().as_secs_f64(),
    })
}
