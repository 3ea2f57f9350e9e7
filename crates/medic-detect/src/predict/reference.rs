//! A plain-Rust forward pass of [`LstmWeights`]: simple `f32` loops, no runtime. The ground
//! truth that the ONNX export run by tract is tested against, and usable wherever a model must
//! be run without loading ONNX.

use super::weights::LstmWeights;

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The probability of one window (`seq_len × n_features`, row-major). The weights must be
/// valid ([`LstmWeights::validate`]) and the window of the right length, else this panics on
/// an index; callers check both first.
pub fn forward(weights: &LstmWeights, window: &[f32]) -> f32 {
    let s = weights.seq_len;
    let mut seq: Vec<f32> = window.to_vec();
    let mut width = weights.n_features;
    let mut h_last = Vec::new();
    for l in &weights.lstm {
        let hd = l.hidden;
        let mut h = vec![0.0f32; hd];
        let mut c = vec![0.0f32; hd];
        let mut out = Vec::with_capacity(s * hd);
        let mut gates = vec![0.0f32; 4 * hd];
        for t in 0..s {
            let x = &seq[t * width..(t + 1) * width];
            for (r, g) in gates.iter_mut().enumerate() {
                let mut acc = l.b[r];
                for (w, xv) in l.w_ih[r * width..(r + 1) * width].iter().zip(x) {
                    acc += w * xv;
                }
                for (w, hv) in l.w_hh[r * hd..(r + 1) * hd].iter().zip(&h) {
                    acc += w * hv;
                }
                *g = acc;
            }
            for k in 0..hd {
                let i = sigmoid(gates[k]);
                let f = sigmoid(gates[hd + k]);
                let g = gates[2 * hd + k].tanh();
                let o = sigmoid(gates[3 * hd + k]);
                c[k] = f * c[k] + i * g;
                h[k] = o * c[k].tanh();
            }
            out.extend_from_slice(&h);
        }
        seq = out;
        width = hd;
        h_last = h;
    }
    let mut z = h_last;
    for d in &weights.dense {
        let mut y = d.b.clone();
        for (o, yo) in y.iter_mut().enumerate() {
            for (w, zv) in d.w[o * d.input..(o + 1) * d.input].iter().zip(&z) {
                *yo += w * zv;
            }
            if d.relu {
                *yo = yo.max(0.0);
            }
        }
        z = y;
    }
    sigmoid(z[0])
}
