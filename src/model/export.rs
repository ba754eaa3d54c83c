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
    let outputs = g.outputs.iter().map(|o| vi(o, g.shape(o))).collect();
    Ok(model_bytes(
        "strumlab",
        &g.name,
        nodes,
        inits,
        vi(&g.input, &g.input_shape),
        outputs,
    ))
}

/// Serialise one graph as an opset-13 ONNX model (IR version 8) with one input.
fn model_bytes(
    producer: &str,
    name: &str,
    node: Vec<NodeProto>,
    initializer: Vec<TensorProto>,
    input: ValueInfoProto,
    output: Vec<ValueInfoProto>,
) -> Vec<u8> {
    let m = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        producer_name: Some(producer.into()),
        graph: Some(GraphProto {
            node,
            name: Some(name.into()),
            initializer,
            input: vec![input],
            output,
        }),
    };
    m.encode_to_vec()
}

/// Writes an ONNX graph node by node, for models that are not a [`Graph`] (the trained zoo
/// exports BatchNormalization as its own node, so the loader's folding path sees it).
/// Every method returns the name of the value it produced.
#[derive(Default)]
pub struct OnnxBuilder {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    count: usize,
}

impl OnnxBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a node named `<op>_<k>` whose single output has the same name.
    pub fn node(&mut self, op: &str, inputs: Vec<String>, attrs: Vec<AttributeProto>) -> String {
        self.count += 1;
        let name = format!("{}_{}", op.to_lowercase(), self.count);
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![name.clone()],
            name: Some(name.clone()),
            op_type: Some(op.into()),
            domain: None,
            attribute: attrs,
        });
        name
    }

    /// Add an FP32 initializer named `<owner>::<what>`.
    pub fn init(&mut self, owner: &str, what: &str, dims: &[usize], data: &[f32]) -> String {
        let name = format!("{owner}::{what}");
        self.inits.push(f32_init(&name, dims, data));
        name
    }

    /// The name the next node will get (for naming its initializers).
    fn next(&self, op: &str) -> String {
        format!("{}_{}", op.to_lowercase(), self.count + 1)
    }

    /// Conv with symmetric padding `pad` on both spatial axes; `weight` is OIHW.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &mut self,
        x: &str,
        weight: &[f32],
        shape: [usize; 4],
        bias: Option<&[f32]>,
        stride: usize,
        pad: usize,
        group: usize,
    ) -> String {
        let owner = self.next("Conv");
        let mut inputs = vec![x.to_string(), self.init(&owner, "w", &shape, weight)];
        if let Some(b) = bias {
            inputs.push(self.init(&owner, "b", &[b.len()], b));
        }
        let attrs = vec![
            ints("kernel_shape", &shape[2..]),
            ints("strides", &[stride, stride]),
            ints("pads", &[pad, pad, pad, pad]),
            int("group", group as i64),
        ];
        self.node("Conv", inputs, attrs)
    }

    pub fn batchnorm(
        &mut self,
        x: &str,
        gamma: &[f32],
        beta: &[f32],
        mean: &[f32],
        var: &[f32],
        epsilon: f32,
    ) -> String {
        let owner = self.next("BatchNormalization");
        let c = [gamma.len()];
        let inputs = vec![
            x.to_string(),
            self.init(&owner, "scale", &c, gamma),
            self.init(&owner, "bias", &c, beta),
            self.init(&owner, "mean", &c, mean),
            self.init(&owner, "var", &c, var),
        ];
        let eps = AttributeProto {
            name: Some("epsilon".into()),
            r#type: Some(1),
            f: Some(epsilon),
            ..Default::default()
        };
        self.node("BatchNormalization", inputs, vec![eps])
    }

    pub fn relu(&mut self, x: &str) -> String {
        self.node("Relu", vec![x.into()], vec![])
    }

    /// Clip with constant bounds (opset 13: bounds are inputs).
    pub fn clip(&mut self, x: &str, min: f32, max: f32) -> String {
        let owner = self.next("Clip");
        let inputs = vec![
            x.to_string(),
            self.init(&owner, "min", &[], &[min]),
            self.init(&owner, "max", &[], &[max]),
        ];
        self.node("Clip", inputs, vec![])
    }

    pub fn add(&mut self, a: &str, b: &str) -> String {
        self.node("Add", vec![a.into(), b.into()], vec![])
    }

    pub fn maxpool(&mut self, x: &str, kernel: usize, stride: usize) -> String {
        let attrs = vec![
            ints("kernel_shape", &[kernel, kernel]),
            ints("strides", &[stride, stride]),
            ints("pads", &[0, 0, 0, 0]),
        ];
        self.node("MaxPool", vec![x.into()], attrs)
    }

    pub fn global_avg_pool(&mut self, x: &str) -> String {
        self.node("GlobalAveragePool", vec![x.into()], vec![])
    }

    pub fn flatten(&mut self, x: &str) -> String {
        self.node("Flatten", vec![x.into()], vec![int("axis", 1)])
    }

    /// `x @ weight + bias` with `weight` stored `[in, out]` (Gemm, transB = 0).
    pub fn gemm(&mut self, x: &str, weight: &[f32], shape: [usize; 2], bias: &[f32]) -> String {
        let owner = self.next("Gemm");
        let inputs = vec![
            x.to_string(),
            self.init(&owner, "w", &shape, weight),
            self.init(&owner, "b", &[bias.len()], bias),
        ];
        self.node("Gemm", inputs, vec![])
    }

    /// Serialise as an opset-13 model with one FP32 input and one output.
    pub fn finish(self, name: &str, input: (&str, &[usize]), output: (&str, &[usize])) -> Vec<u8> {
        model_bytes(
            "strumlab train",
            name,
            self.nodes,
            self.inits,
            vi(input.0, input.1),
            vec![vi(output.0, output.1)],
        )
    }
}
