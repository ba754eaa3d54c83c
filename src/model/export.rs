//! Graph IR -> ONNX (opset 13), for cross-checking our engines against a peer runtime.
//! Covers the ops the zoo's models use; anything else is an error naming the node.

use prost::Message;

use super::ir::*;
use super::onnx_proto::*;
use crate::error::{Error, Result};

fn f32_init(name: &str, dims: &[usize], data: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(dtype::FLOAT),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        name: Some(name.into()),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(7),
        ints: v.iter().map(|&x| x as i64).collect(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(2),
        i: Some(v),
        ..Default::default()
    }
}

fn vi(name: &str, shape: &[usize]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: Some(dtype::FLOAT),
                shape: Some(TensorShapeProto {
                    dim: shape
                        .iter()
                        .map(|&d| Dimension {
                            dim_value: Some(d as i64),
                            dim_param: None,
                        })
                        .collect(),
                }),
            }),
        }),
    }
}

/// Serialise `g` as an ONNX model. `weights` optionally replaces Conv/Dense weights by node
/// index (e.g. with a scheme's dequantized view).
pub fn to_onnx(g: &Graph, weights: &std::collections::HashMap<usize, Vec<f32>>) -> Result<Vec<u8>> {
    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let mk = |op: &str, inputs: Vec<String>, attrs: Vec<AttributeProto>| NodeProto {
            input: inputs,
            output: vec![n.output.clone()],
            name: Some(n.name.clone()),
            op_type: Some(op.into()),
            domain: None,
            attribute: attrs,
        };
        let p = |suffix: &str| format!("{}::{suffix}", n.name);
        let node = match &n.op {
            Op::Conv(c) => {
                let w = weights.get(&i).unwrap_or(&c.weight.data);
                inits.push(f32_init(&p("w"), &c.weight.shape, w));
                inits.push(f32_init(&p("b"), &[c.bias.len()], &c.bias));
                mk(
                    "Conv",
                    vec![n.inputs[0].clone(), p("w"), p("b")],
                    vec![
                        ints("kernel_shape", &c.kernel()),
                        ints("strides", &c.strides),
                        ints("dilations", &c.dilations),
                        ints("pads", &c.pads),
                        int("group", c.group as i64),
                    ],
                )
            }
            Op::Dense(d) => {
                if g.shape(&n.inputs[0]).len() != 2 {
                    return Err(Error::node(
                        &n.name,
                        "Dense",
                        "export supports 2-D inputs only",
                    ));
                }
                let w = weights.get(&i).unwrap_or(&d.weight.data);
                inits.push(f32_init(&p("w"), &d.weight.shape, w));
                inits.push(f32_init(&p("b"), &[d.bias.len()], &d.bias));
                mk(
                    "Gemm",
                    vec![n.inputs[0].clone(), p("w"), p("b")],
                    vec![int("transB", 1)],
                )
            }
            Op::Relu => mk("Relu", n.inputs.clone(), vec![]),
            Op::Clip { min, max } => {
                inits.push(f32_init(&p("min"), &[], &[*min]));
                inits.push(f32_init(&p("max"), &[], &[*max]));
                mk(
                    "Clip",
                    vec![n.inputs[0].clone(), p("min"), p("max")],
                    vec![],
                )
            }
            Op::Add { constant: None } => mk("Add", n.inputs.clone(), vec![]),
            Op::Sum => mk("Sum", n.inputs.clone(), vec![]),
            Op::GlobalAveragePool => mk("GlobalAveragePool", n.inputs.clone(), vec![]),
            Op::Flatten { axis } => {
                mk("Flatten", n.inputs.clone(), vec![int("axis", *axis as i64)])
            }
            Op::MaxPool(pl) => mk(
                "MaxPool",
                n.inputs.clone(),
                vec![
                    ints("kernel_shape", &pl.kernel),
                    ints("strides", &pl.strides),
                    ints("pads", &pl.pads),
                ],
            ),
            Op::Reshape { shape } => {
                inits.push(TensorProto {
                    dims: vec![shape.len() as i64],
                    data_type: Some(dtype::INT64),
                    int64_data: shape
                        .iter()
                        .enumerate()
                        .map(|(k, &d)| if k == 0 { -1 } else { d as i64 })
                        .collect(),
                    name: Some(p("shape")),
                    ..Default::default()
                });
                mk("Reshape", vec![n.inputs[0].clone(), p("shape")], vec![])
            }
            Op::Identity => mk("Identity", n.inputs.clone(), vec![]),
            other => {
                return Err(Error::node(
                    &n.name,
                    other.name(),
                    "not supported by the ONNX export",
                ));
            }
        };
        nodes.push(node);
    }
    let m = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        producer_name: Some("strumlab".into()),
        graph: Some(GraphProto {
            node: nodes,
            name: Some(g.name.clone()),
            initializer: inits,
            input: vec![vi(&g.input, &g.input_shape)],
            output: g.outputs.iter().map(|o| vi(o, g.shape(o))).collect(),
        }),
    };
    Ok(m.encode_to_vec())
}
