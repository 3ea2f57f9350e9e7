//! Copies a trained [`FailureNet`] into framework-independent [`LstmWeights`].
//!
//! burn 0.22.1 keeps one `GateController` per gate (`input_gate`, `forget_gate`, `cell_gate`,
//! `output_gate`), each with an input and a hidden `Linear`; a burn `Linear` stores its weight
//! as `[d_input, d_output]` and computes `x W + b`. [`LstmWeights`] wants PyTorch's layout: gate
//! blocks `i, f, g, o` stacked into `w_ih [4H, I]` and `w_hh [4H, H]` (row = output unit) and
//! one summed bias. So each gate's weights are transposed into its block, and the input and
//! hidden biases are added. Dense layers are transposed the same way.

use burn::nn::{Linear, Lstm};
use medic_detect::predict::{DenseLayer, LstmLayer, LstmWeights};

use crate::Error;
use crate::net::{FailureNet, tensor_values};

/// `(weight [in, out] row-major, bias [out] or zeros, in, out)` of a burn `Linear`.
fn linear_parts(l: &Linear) -> (Vec<f32>, Vec<f32>, usize, usize) {
    let [d_in, d_out] = l.weight.val().dims();
    let w = tensor_values(l.weight.val());
    let b = l
        .bias
        .as_ref()
        .map_or_else(|| vec![0.0; d_out], |b| tensor_values(b.val()));
    (w, b, d_in, d_out)
}

/// Writes the transpose of `w` (`[rows, cols]`) into `out` (`[cols, rows]`).
fn transpose_into(w: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = w[r * cols + c];
        }
    }
}

fn lstm_layer(l: &Lstm) -> Result<LstmLayer, Error> {
    let forget = l.forget_gate.as_ref().ok_or_else(|| {
        Error::Config("lstm with a coupled input/forget gate cannot be exported".into())
    })?;
    let hidden = l.d_hidden;
    let [input, _] = l.input_gate.input_transform.weight.val().dims();
    let mut w_ih = vec![0.0; 4 * hidden * input];
    let mut w_hh = vec![0.0; 4 * hidden * hidden];
    let mut b = vec![0.0; 4 * hidden];
    // PyTorch's block order: i, f, g (cell candidate), o.
    for (k, gate) in [&l.input_gate, forget, &l.cell_gate, &l.output_gate]
        .into_iter()
        .enumerate()
    {
        let (wi, bi, i_in, i_out) = linear_parts(&gate.input_transform);
        let (wh, bh, h_in, h_out) = linear_parts(&gate.hidden_transform);
        if i_in != input || i_out != hidden || h_in != hidden || h_out != hidden {
            return Err(Error::Config(format!(
                "lstm gate {k}: shapes [{i_in}, {i_out}] and [{h_in}, {h_out}] do not match \
                 input {input} hidden {hidden}"
            )));
        }
        transpose_into(
            &wi,
            input,
            hidden,
            &mut w_ih[k * hidden * input..(k + 1) * hidden * input],
        );
        transpose_into(
            &wh,
            hidden,
            hidden,
            &mut w_hh[k * hidden * hidden..(k + 1) * hidden * hidden],
        );
        for h in 0..hidden {
            b[k * hidden + h] = bi[h] + bh[h];
        }
    }
    Ok(LstmLayer {
        input,
        hidden,
        w_ih,
        w_hh,
        b,
    })
}

/// The weights of `net` for windows of `seq_len` steps, validated.
pub fn to_weights(net: &FailureNet, seq_len: usize) -> Result<LstmWeights, Error> {
    let lstm = net
        .lstm
        .iter()
        .map(lstm_layer)
        .collect::<Result<Vec<_>, _>>()?;
    let n_dense = net.dense.len();
    let dense = net
        .dense
        .iter()
        .enumerate()
        .map(|(k, l)| {
            let (w, b, input, output) = linear_parts(l);
            let mut wt = vec![0.0; w.len()];
            transpose_into(&w, input, output, &mut wt);
            DenseLayer {
                input,
                output,
                w: wt,
                b,
                relu: k + 1 < n_dense,
            }
        })
        .collect();
    let n_features = lstm.first().map_or(0, |l: &LstmLayer| l.input);
    let weights = LstmWeights {
        seq_len,
        n_features,
        lstm,
        dense,
    };
    weights.validate()?;
    Ok(weights)
}
