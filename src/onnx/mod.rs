//! Export to ONNX: a model's network as an ONNX graph that ONNX Runtime (servers, phones, browsers)
//! and other runtimes run, with the same outputs as scratchnet (tested against ONNX Runtime to
//! 1e-5 in `tests/interop.rs`).
//!
//! The graph (opset [`OPSET`], so runtimes of the last years take it):
//! - input `pixels`, float32 `[batch, c, h, w]`, raw pixel values 0-255 (light on dark, as the
//!   datasets); `batch` is a named, free dimension;
//! - the model file's input normalisation folded in: `Mul` by `scale`, then `Add` of `offset`
//!   when it is not 0 (x = pixel·scale + offset);
//! - one node per layer, named and with initializers named as in the model file
//!   (`layers.0.weight`): `Conv` (pads, strides), `MaxPool` (floor mode), `LeakyRelu`, `Relu`,
//!   `Flatten` (axis 1), `Gemm` (transB: weights are [out, in]); dropout is the identity at
//!   inference and emits no node;
//! - output `logits` `[batch, classes]`, or with [`ExportOptions::softmax`] `probabilities`;
//!   with [`Tta::HFlip`] (needs softmax) the network also runs on the left-right mirrored input
//!   and the two probability tables are averaged, as `scratchnet predict --tta hflip` does.
//!
//! The class names, data set, normalisation and spec are in the model's `metadata_props`.
//!
//! ```
//! use scratchnet::model::{Sequential, presets};
//! use scratchnet::model_file::ModelInfo;
//! use scratchnet::onnx::{ExportOptions, to_bytes};
//!
//! let model = Sequential::new(presets::mlp_spec(0.2), 0)?;
//! let info = ModelInfo {
//!     spec: model.spec().clone(),
//!     classes: (0..10).map(|i| i.to_string()).collect(),
//!     dataset: "mnist".into(),
//!     input: Default::default(),
//!     training: None,
//!     tta: Default::default(),
//! };
//! let bytes = to_bytes(&model, &info, &ExportOptions { softmax: true, ..Default::default() })?;
//! assert!(bytes.len() > 4 * model.spec().num_params());
//! # Ok::<(), scratchnet::Error>(())
//! ```

pub mod proto;

use prost::Message;

use crate::error::{Error, Result};
use crate::model::{LayerSpec, Sequential, Tta};
use crate::model_file::ModelInfo;
use proto::tensor_shape_proto::{Dimension, dimension};
use proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, attribute_type, type_proto,
};

/// The operator set: 13 has every operator used here in its current form (Slice with steps,
/// Softmax over one axis) and is supported by ONNX Runtime since 1.6 (2020).
pub const OPSET: i64 = 13;
/// The IR version that goes with opset 13 (ONNX 1.8).
pub const IR_VERSION: i64 = 7;
pub const INPUT: &str = "pixels";
pub const LOGITS: &str = "logits";
pub const PROBABILITIES: &str = "probabilities";
/// The name of the free batch dimension.
pub const BATCH: &str = "batch";

/// `TensorProto.DataType.INT64`, for Slice's index inputs.
const INT64: i32 = 7;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExportOptions {
    /// End in Softmax: output `probabilities` instead of `logits`.
    pub softmax: bool,
    /// Test-time augmentation folded into the graph (hflip needs `softmax`).
    pub tta: Tta,
}

/// The ONNX model (protobuf bytes) of `model`, described by `info`.
pub fn to_bytes(model: &Sequential, info: &ModelInfo, opts: &ExportOptions) -> Result<Vec<u8>> {
    Ok(to_proto(model, info, opts)?.encode_to_vec())
}

/// The ONNX model of `model` as messages.
pub fn to_proto(model: &Sequential, info: &ModelInfo, opts: &ExportOptions) -> Result<ModelProto> {
    let bad = |msg: String| Error::InvalidArgument { op: "ONNX export", msg };
    if opts.tta == Tta::HFlip && !opts.softmax {
        return Err(bad("test-time augmentation averages probabilities: it needs the softmax output".into()));
    }
    let spec = model.spec();
    let classes = spec.num_classes()?;
    if info.classes.len() != classes {
        return Err(bad(format!("{} class names for {classes} outputs", info.classes.len())));
    }
    let mut g = Builder::default();
    // A batch norm's step counter only matters to training.
    for (name, t) in model.named_state().into_iter().filter(|(n, _)| !crate::model_file::is_counter(n)) {
        let dims = t.shape().iter().map(|&d| d as i64).collect();
        g.initializer(&name, proto::FLOAT, dims, t.to_vec()?.iter().flat_map(|v| v.to_le_bytes()).collect());
    }

    g.initializer("input.scale", proto::FLOAT, vec![], info.input.scale.to_le_bytes().to_vec());
    let mut x = g.node("Mul", "input.scaled", &[INPUT, "input.scale"], vec![]);
    if info.input.offset != 0.0 {
        g.initializer("input.offset", proto::FLOAT, vec![], info.input.offset.to_le_bytes().to_vec());
        x = g.node("Add", "input.normalised", &[&x, "input.offset"], vec![]);
    }

    let logits = layers(&mut g, &spec.layers, &x, "");
    let output = match (opts.softmax, opts.tta) {
        (false, _) => LOGITS,
        (true, Tta::None) => {
            g.node("Softmax", "softmax", &[&logits], vec![int("axis", 1)]);
            PROBABILITIES
        }
        (true, Tta::HFlip) => {
            let plain = g.node("Softmax", "softmax", &[&logits], vec![int("axis", 1)]);
            // x[:, :, :, ::-1]: from the last column (-1) past the first (i64::MIN), step -1.
            let int64 = |v: i64| v.to_le_bytes().to_vec();
            g.initializer("mirror.starts", INT64, vec![1], int64(-1));
            g.initializer("mirror.ends", INT64, vec![1], int64(i64::MIN));
            g.initializer("mirror.axes", INT64, vec![1], int64(3));
            g.initializer("mirror.steps", INT64, vec![1], int64(-1));
            let flipped = g.node(
                "Slice",
                "mirror.input",
                &[&x, "mirror.starts", "mirror.ends", "mirror.axes", "mirror.steps"],
                vec![],
            );
            let mirrored = layers(&mut g, &spec.layers, &flipped, "mirror.");
            let mirrored = g.node("Softmax", "mirror.softmax", &[&mirrored], vec![int("axis", 1)]);
            let sum = g.node("Add", "tta.sum", &[&plain, &mirrored], vec![]);
            g.initializer("tta.half", proto::FLOAT, vec![], 0.5f32.to_le_bytes().to_vec());
            g.node("Mul", "tta.mean", &[&sum, "tta.half"], vec![]);
            PROBABILITIES
        }
    };
    // The last node's output is the graph's output; nothing reads it inside the graph.
    if let Some(last) = g.nodes.last_mut() {
        last.output = vec![output.to_string()];
    }

    let [c, h, w] = spec.input;
    let batch = || Dimension { value: Some(dimension::Value::DimParam(BATCH.into())) };
    let fixed = |d: usize| Dimension { value: Some(dimension::Value::DimValue(d as i64)) };
    let value_info = |name: &str, dims: Vec<Dimension>, doc: String| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: proto::FLOAT,
                shape: Some(TensorShapeProto { dim: dims }),
            })),
        }),
        doc_string: doc,
    };
    let input_doc = format!(
        "raw pixel values 0-255 (light on dark, as {}); the graph computes pixel * {} + {}",
        info.dataset, info.input.scale, info.input.offset
    );
    let output_doc = format!("class {output}, in the order of metadata 'classes'");
    let graph = GraphProto {
        name: "scratchnet".into(),
        node: g.nodes,
        initializer: g.initializers,
        doc_string: String::new(),
        input: vec![value_info(INPUT, vec![batch(), fixed(c), fixed(h), fixed(w)], input_doc)],
        output: vec![value_info(output, vec![batch(), fixed(classes)], output_doc)],
    };
    let meta = [
        ("classes", json(&info.classes)),
        ("dataset", info.dataset.clone()),
        ("input", json(&info.input)),
        ("spec", json(spec)),
        ("tta", opts.tta.name().to_string()),
    ];
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "scratchnet".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "scratchnet {} classifier, {} classes: input '{INPUT}' float32 [batch, {c}, {h}, {w}], 0-255; output \
             '{output}' [batch, {classes}]",
            info.dataset, classes
        ),
        graph: Some(graph),
        metadata_props: meta.into_iter().map(|(k, v)| StringStringEntryProto { key: k.into(), value: v }).collect(),
    })
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serialises")
}

/// Appends one node per layer reading `x`; returns the name of the last output. Node and value
/// names are `{prefix}layers.{i}`; parameters are the shared initializers `layers.{i}.weight`.
fn layers(g: &mut Builder, layers: &[LayerSpec], x: &str, prefix: &str) -> String {
    let mut x = x.to_string();
    for (i, layer) in layers.iter().enumerate() {
        let name = format!("{prefix}layers.{i}");
        let (weight, bias) = (format!("layers.{i}.weight"), format!("layers.{i}.bias"));
        x = match *layer {
            LayerSpec::Conv2d { kernel_size: k, stride, padding, .. } => {
                let (k, s, p) = (k as i64, stride as i64, padding as i64);
                let attrs = vec![
                    ints("kernel_shape", &[k, k]),
                    ints("strides", &[s, s]),
                    ints("pads", &[p, p, p, p]),
                    ints("dilations", &[1, 1]),
                    int("group", 1),
                ];
                g.node("Conv", &name, &[&x, &weight, &bias], attrs)
            }
            LayerSpec::MaxPool2d { kernel_size: k, stride } => {
                let (k, s) = (k as i64, stride.unwrap_or(k) as i64);
                g.node("MaxPool", &name, &[&x], vec![ints("kernel_shape", &[k, k]), ints("strides", &[s, s])])
            }
            // Dropout is the identity at inference.
            LayerSpec::Dropout { .. } => continue,
            LayerSpec::Flatten => g.node("Flatten", &name, &[&x], vec![int("axis", 1)]),
            // y = x·Wᵀ + b, W [out, in].
            LayerSpec::Linear { .. } => g.node("Gemm", &name, &[&x, &weight, &bias], vec![int("transB", 1)]),
            LayerSpec::LeakyRelu { negative_slope } => {
                g.node("LeakyRelu", &name, &[&x], vec![float("alpha", negative_slope)])
            }
            LayerSpec::Relu => g.node("Relu", &name, &[&x], vec![]),
            // Inference form: the running statistics (BatchNormalization's training_mode is 0).
            LayerSpec::BatchNorm2d { eps, momentum, .. } | LayerSpec::BatchNorm1d { eps, momentum, .. } => {
                let (mean, var) = (format!("layers.{i}.running_mean"), format!("layers.{i}.running_var"));
                // ONNX's momentum weighs the old running value: PyTorch's 1 - momentum.
                let attrs = vec![float("epsilon", eps), float("momentum", 1.0 - momentum)];
                g.node("BatchNormalization", &name, &[&x, &weight, &bias, &mean, &var], attrs)
            }
            LayerSpec::AvgPool2d { kernel_size: k, stride } => {
                let (k, s) = (k as i64, stride.unwrap_or(k) as i64);
                g.node("AveragePool", &name, &[&x], vec![ints("kernel_shape", &[k, k]), ints("strides", &[s, s])])
            }
            LayerSpec::AdaptiveAvgPool2d { .. } => g.node("GlobalAveragePool", &name, &[&x], vec![]),
        };
    }
    x
}

#[derive(Default)]
struct Builder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl Builder {
    /// Adds a node whose one output is named like the node; returns that name.
    fn node(&mut self, op: &str, name: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![name.to_string()],
            name: name.to_string(),
            op_type: op.to_string(),
            attribute,
        });
        name.to_string()
    }

    fn initializer(&mut self, name: &str, data_type: i32, dims: Vec<i64>, raw_data: Vec<u8>) {
        self.initializers.push(TensorProto { dims, data_type, name: name.to_string(), raw_data });
    }
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::INT, i, ..Default::default() }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::INTS, ints: v.to_vec(), ..Default::default() }
}

fn float(name: &str, f: f32) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::FLOAT, f, ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::presets;

    fn info(model: &Sequential, tta: Tta) -> ModelInfo {
        ModelInfo {
            spec: model.spec().clone(),
            classes: (0..10).map(|i| i.to_string()).collect(),
            dataset: "fashion-mnist".into(),
            input: crate::model_file::InputNorm { scale: 0.5, offset: -1.0 },
            training: None,
            tta,
        }
    }

    /// The bytes decode to the same messages; every layer but dropout is one node, named after
    /// its layer, reading initializers named as in the model file.
    #[test]
    fn cnn_graph_has_a_node_per_layer_and_decodes() {
        let model = Sequential::new(presets::cnn_spec(), 1).unwrap();
        let opts = ExportOptions { softmax: true, tta: Tta::None };
        let m = to_proto(&model, &info(&model, Tta::None), &opts).unwrap();
        assert_eq!(ModelProto::decode(&to_bytes(&model, &info(&model, Tta::None), &opts).unwrap()[..]).unwrap(), m);
        let g = m.graph.as_ref().unwrap();
        let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
        let layer_ops: Vec<&str> = model
            .spec()
            .layers
            .iter()
            .filter_map(|l| match l {
                LayerSpec::Conv2d { .. } => Some("Conv"),
                LayerSpec::MaxPool2d { .. } => Some("MaxPool"),
                LayerSpec::Dropout { .. } => None,
                LayerSpec::Flatten => Some("Flatten"),
                LayerSpec::Linear { .. } => Some("Gemm"),
                LayerSpec::LeakyRelu { .. } => Some("LeakyRelu"),
                LayerSpec::Relu => Some("Relu"),
                LayerSpec::BatchNorm2d { .. } | LayerSpec::BatchNorm1d { .. } => Some("BatchNormalization"),
                LayerSpec::AvgPool2d { .. } => Some("AveragePool"),
                LayerSpec::AdaptiveAvgPool2d { .. } => Some("GlobalAveragePool"),
            })
            .collect();
        assert_eq!(ops, [&["Mul", "Add"][..], &layer_ops, &["Softmax"]].concat());
        assert_eq!(g.node.last().unwrap().output, [PROBABILITIES]);
        assert_eq!(g.node[2].input, ["input.normalised", "layers.0.weight", "layers.0.bias"]);
        let weights = g.initializer.iter().find(|t| t.name == "layers.0.weight").unwrap();
        assert_eq!(weights.dims, [32, 1, 3, 3]);
        assert_eq!(weights.raw_data.len(), 4 * 32 * 9);
    }

    #[test]
    fn hflip_runs_the_layers_twice_and_needs_softmax() {
        let model = Sequential::new(presets::mlp_spec(0.2), 1).unwrap();
        let plain = ExportOptions { softmax: false, tta: Tta::HFlip };
        let e = to_proto(&model, &info(&model, Tta::HFlip), &plain).unwrap_err().to_string();
        assert!(e.contains("needs the softmax"), "{e}");
        let m = to_proto(&model, &info(&model, Tta::HFlip), &ExportOptions { softmax: true, tta: Tta::HFlip }).unwrap();
        let g = m.graph.unwrap();
        assert_eq!(g.node.iter().filter(|n| n.op_type == "Gemm").count(), 6);
        assert_eq!(g.node.iter().filter(|n| n.op_type == "Slice").count(), 1);
        assert_eq!(g.output[0].name, PROBABILITIES);
    }
}
