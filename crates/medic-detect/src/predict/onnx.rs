//! Writes [`LstmWeights`] as a standard ONNX model (opset 13, IR 7) with `tract_onnx::pb` and
//! `prost`.
//!
//! Graph, for input `input` of fixed shape `[1, seq_len, n_features]` (batch 1 in the file;
//! nothing in the graph depends on the batch size, so a runtime may fix another batch at load,
//! as [`super::Predictor`] does):
//!
//! ```text
//! input ─Transpose(1,0,2)─▶ [seq, batch, feat] ─LSTM─▶ Y ─Squeeze(1)─▶ LSTM ─▶ … ─▶ Y_h
//! Y_h ─Squeeze(0)─▶ [batch, hidden] ─Gemm(transB)─Relu─ … ─Gemm(transB)─Sigmoid─▶ probability [batch, 1]
//! ```
//! Each `LSTM` is forward only, no `clip`, no peepholes, `layout` 0 (ONNX Runtime does not
//! support batch-first recurrences). Gate blocks are converted from PyTorch's `i, f, g, o` to
//! ONNX's `i, o, f, c`; the summed bias goes in `Wb` and `Rb` is zero.

use std::path::Path;

use prost::Message;
use tract_onnx::pb;

use super::PredictError;
use super::card::{CARD_METADATA_KEY, PredictorCard, write_atomic};
use super::weights::LstmWeights;

/// Name of the graph input.
pub const INPUT_NAME: &str = "input";
/// Name of the graph output.
pub const OUTPUT_NAME: &str = "probability";
/// Opset of the written files.
pub const OPSET: i64 = 13;

/// ONNX block `k` comes from PyTorch block `PT_OF_ONNX[k]` (i, o, f, c ← i, f, g, o).
const PT_OF_ONNX: [usize; 4] = [0, 3, 1, 2];

fn reorder_gates(src: &[f32], hidden: usize, cols: usize) -> Vec<f32> {
    let block = hidden * cols;
    let mut out = Vec::with_capacity(src.len());
    for &pt in &PT_OF_ONNX {
        out.extend_from_slice(&src[pt * block..(pt + 1) * block]);
    }
    out
}

fn tensor_f32(name: &str, dims: &[usize], data: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_owned(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: data,
        ..Default::default()
    }
}

fn tensor_i64(name: &str, data: Vec<i64>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_owned(),
        dims: vec![data.len() as i64],
        data_type: pb::tensor_proto::DataType::Int64 as i32,
        int64_data: data,
        ..Default::default()
    }
}

fn attr_int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_owned(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn attr_ints(name: &str, v: Vec<i64>) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_owned(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v,
        ..Default::default()
    }
}

fn attr_string(name: &str, v: &str) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_owned(),
        r#type: pb::attribute_proto::AttributeType::String as i32,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.to_owned(),
        name: name.to_owned(),
        input: inputs.iter().map(|s| (*s).to_owned()).collect(),
        output: outputs.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[usize]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    pb::ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(Value::DimValue(d as i64)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The ONNX model of `weights` with `metadata` in `metadata_props`.
pub fn onnx_model(
    weights: &LstmWeights,
    metadata: &[(String, String)],
) -> Result<pb::ModelProto, PredictError> {
    weights.validate()?;
    let mut nodes = Vec::new();
    let mut init = Vec::new();
    nodes.push({
        let mut n = node("Transpose", "to_time_major", &[INPUT_NAME], &["x_tm"]);
        n.attribute.push(attr_ints("perm", vec![1, 0, 2]));
        n
    });
    init.push(tensor_i64("axes_1", vec![1]));
    init.push(tensor_i64("axes_0", vec![0]));
    let mut x = "x_tm".to_owned();
    let mut last_h = String::new();
    for (k, l) in weights.lstm.iter().enumerate() {
        let h = l.hidden;
        let (w, r, b) = (
            format!("lstm{k}_W"),
            format!("lstm{k}_R"),
            format!("lstm{k}_B"),
        );
        init.push(tensor_f32(
            &w,
            &[1, 4 * h, l.input],
            reorder_gates(&l.w_ih, h, l.input),
        ));
        init.push(tensor_f32(&r, &[1, 4 * h, h], reorder_gates(&l.w_hh, h, h)));
        let mut bias = reorder_gates(&l.b, h, 1);
        bias.resize(8 * h, 0.0);
        init.push(tensor_f32(&b, &[1, 8 * h], bias));
        let (y, yh) = (format!("lstm{k}_Y"), format!("lstm{k}_Y_h"));
        let mut n = node("LSTM", &format!("lstm{k}"), &[&x, &w, &r, &b], &[&y, &yh]);
        n.attribute.push(attr_int("hidden_size", h as i64));
        n.attribute.push(attr_string("direction", "forward"));
        nodes.push(n);
        if k + 1 < weights.lstm.len() {
            let next = format!("lstm{k}_seq");
            nodes.push(node(
                "Squeeze",
                &format!("lstm{k}_squeeze"),
                &[&y, "axes_1"],
                &[&next],
            ));
            x = next;
        }
        last_h = yh;
    }
    let mut z = "h_last".to_owned();
    nodes.push(node(
        "Squeeze",
        "h_last_squeeze",
        &[&last_h, "axes_0"],
        &[&z],
    ));
    for (k, d) in weights.dense.iter().enumerate() {
        let (w, b, y) = (
            format!("dense{k}_W"),
            format!("dense{k}_B"),
            format!("dense{k}_Y"),
        );
        init.push(tensor_f32(&w, &[d.output, d.input], d.w.clone()));
        init.push(tensor_f32(&b, &[d.output], d.b.clone()));
        let mut n = node("Gemm", &format!("dense{k}"), &[&z, &w, &b], &[&y]);
        n.attribute.push(attr_int("transB", 1));
        nodes.push(n);
        z = y;
        if d.relu {
            let y = format!("dense{k}_relu");
            nodes.push(node("Relu", &format!("dense{k}_relu"), &[&z], &[&y]));
            z = y;
        }
    }
    nodes.push(node("Sigmoid", "sigmoid", &[&z], &[OUTPUT_NAME]));
    let graph = pb::GraphProto {
        name: "medic_failure_lstm".into(),
        node: nodes,
        initializer: init,
        input: vec![value_info(
            INPUT_NAME,
            &[1, weights.seq_len, weights.n_features],
        )],
        output: vec![value_info(OUTPUT_NAME, &[1, 1])],
        ..Default::default()
    };
    Ok(pb::ModelProto {
        ir_version: 7,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "medic".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: "medic failure predictor: P(failure within the horizon) per window".into(),
        graph: Some(graph),
        metadata_props: metadata
            .iter()
            .map(|(k, v)| pb::StringStringEntryProto {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        ..Default::default()
    })
}

/// Writes `weights` as an ONNX file (no card in the metadata).
pub fn write_onnx(weights: &LstmWeights, path: &Path) -> Result<(), PredictError> {
    let model = onnx_model(weights, &[])?;
    write_atomic(path, &model.encode_to_vec())
}

/// Writes `weights` as an ONNX file with `card` in its `metadata_props` (key
/// [`CARD_METADATA_KEY`]) and the same card as `<model>.card.json` beside it. The card must
/// match the weights (seq_len, feature count).
pub fn write_model(
    weights: &LstmWeights,
    card: &PredictorCard,
    path: &Path,
) -> Result<(), PredictError> {
    card.validate()?;
    if card.seq_len != weights.seq_len || card.feature_names.len() != weights.n_features {
        return Err(PredictError::Card(format!(
            "card says seq_len {} with {} features, weights have {} and {}",
            card.seq_len,
            card.feature_names.len(),
            weights.seq_len,
            weights.n_features
        )));
    }
    let model = onnx_model(weights, &[(CARD_METADATA_KEY.to_owned(), card.to_json())])?;
    write_atomic(path, &model.encode_to_vec())?;
    card.save(&PredictorCard::path_for(path))
}
