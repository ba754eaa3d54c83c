//! The graph IR: a topologically ordered list of nodes over named values, with weights
//! attached to the nodes that own them. Shapes are static and recorded at batch size 1;
//! the executors treat dimension 0 as the batch.

use std::collections::BTreeMap;

/// A dense FP32 tensor in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor { shape, data }
    }
    pub fn numel(&self) -> usize {
        self.data.len()
    }
}

/// 2-D convolution over NCHW. Weight `[OC, IC/group, KH, KW]`.
#[derive(Clone, Debug)]
pub struct Conv {
    pub weight: Tensor,
    /// One bias per output channel (zeros when the model has none).
    pub bias: Vec<f32>,
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    /// Explicit padding `[top, left, bottom, right]` (auto_pad resolved at load time).
    pub pads: [usize; 4],
    pub group: usize,
}

impl Conv {
    pub fn out_channels(&self) -> usize {
        self.weight.shape[0]
    }
    pub fn in_channels_per_group(&self) -> usize {
        self.weight.shape[1]
    }
    pub fn kernel(&self) -> [usize; 2] {
        [self.weight.shape[2], self.weight.shape[3]]
    }
    /// Depthwise: one input channel per group and one output channel per group.
    pub fn is_depthwise(&self) -> bool {
        self.group > 1 && self.in_channels_per_group() == 1 && self.out_channels() == self.group
    }
}

/// Fully connected layer over the last axis. Weight `[OC, IC]`.
#[derive(Clone, Debug)]
pub struct Dense {
    pub weight: Tensor,
    pub bias: Vec<f32>,
}

/// Max or average pooling over the two spatial axes of NCHW.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    /// `[top, left, bottom, right]`; `ceil_mode` is folded into extra bottom/right padding.
    pub pads: [usize; 4],
    /// Average pooling only: whether padded cells count in the divisor.
    pub count_include_pad: bool,
}

#[derive(Clone, Debug)]
pub enum Op {
    Conv(Conv),
    Dense(Dense),
    Relu,
    Clip {
        min: f32,
        max: f32,
    },
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    HardSwish,
    Sigmoid,
    /// Elementwise add with numpy broadcasting; a constant operand, if any, is stored here.
    Add {
        constant: Option<Tensor>,
    },
    Mul {
        constant: Option<Tensor>,
    },
    /// N-ary elementwise sum of dynamic inputs of equal shape.
    Sum,
    /// Per-channel `x * scale + shift` over axis 1 (a BatchNormalization that could not be
    /// folded into a preceding Conv/Dense).
    Affine {
        scale: Vec<f32>,
        shift: Vec<f32>,
    },
    MaxPool(Pool),
    AveragePool(Pool),
    GlobalAveragePool,
    Flatten {
        axis: usize,
    },
    /// Target shape, fully resolved at batch size 1.
    Reshape {
        shape: Vec<usize>,
    },
    Transpose {
        perm: Vec<usize>,
    },
    Concat {
        axis: usize,
    },
    Softmax {
        axis: usize,
    },
    Identity,
    /// Pad every axis by `[begin, end]`.
    Pad {
        pads: Vec<[usize; 2]>,
        mode: PadMode,
    },
    /// Mean over `axes` (sorted), keeping them as size-1 axes when `keepdims`.
    ReduceMean {
        axes: Vec<usize>,
        keepdims: bool,
    },
    /// Every output element (at batch 1, row-major) copies input element `index[i]`, or is
    /// zero where `index[i] == SELECT_ZERO`: Slice, each output of a Split, nearest Resize,
    /// and the zero insertion of a ConvTranspose lowered to a Conv. Exact in integer mode
    /// (activations are symmetric: zero is code 0).
    Select {
        kind: SelectKind,
        index: std::sync::Arc<[u32]>,
    },
    /// Resize in `linear` mode over the two spatial axes of NCHW: per output row and column
    /// the two source coordinates and their weights, as [`LinearTap`]s.
    ResizeLinear {
        rows: std::sync::Arc<[LinearTap]>,
        cols: std::sync::Arc<[LinearTap]>,
    },
    /// Local response normalisation across channels (ONNX LRN):
    /// `y = x / (bias + alpha / size * sum of x^2 over size channels) ^ beta`.
    Lrn {
        size: usize,
        alpha: f32,
        beta: f32,
        bias: f32,
    },
}

/// One output coordinate of a linear resize: source coordinates `i1 <= i2` and their
/// weights `w1` (of `i1`) and `w2` (of `i2`), which add to 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearTap {
    pub i1: u32,
    pub i2: u32,
    pub w1: f32,
    pub w2: f32,
}

/// The `index` entry of an [`Op::Select`] output element that is zero.
pub const SELECT_ZERO: u32 = u32::MAX;

/// The ONNX operator an [`Op::Select`] stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectKind {
    Slice,
    Split,
    /// Resize (or Upsample) in `nearest` mode.
    ResizeNearest,
    /// The stride-zero insertion and padding in front of the Conv of a ConvTranspose.
    ConvTransposeUpsample,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadMode {
    Constant(f32),
    Edge,
    Reflect,
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv(_) => "Conv",
            Op::Dense(_) => "Dense",
            Op::Relu => "Relu",
            Op::Clip { .. } => "Clip",
            Op::HardSigmoid { .. } => "HardSigmoid",
            Op::HardSwish => "HardSwish",
            Op::Sigmoid => "Sigmoid",
            Op::Add { .. } => "Add",
            Op::Mul { .. } => "Mul",
            Op::Sum => "Sum",
            Op::Affine { .. } => "Affine",
            Op::MaxPool(_) => "MaxPool",
            Op::AveragePool(_) => "AveragePool",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::Flatten { .. } => "Flatten",
            Op::Reshape { .. } => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Concat { .. } => "Concat",
            Op::Softmax { .. } => "Softmax",
            Op::Identity => "Identity",
            Op::Pad { .. } => "Pad",
            Op::ReduceMean { .. } => "ReduceMean",
            Op::Select { kind, .. } => match kind {
                SelectKind::Slice => "Slice",
                SelectKind::Split => "Split",
                SelectKind::ResizeNearest => "Resize",
                SelectKind::ConvTransposeUpsample => "ConvTranspose",
            },
            Op::ResizeLinear { .. } => "Resize",
            Op::Lrn { .. } => "LRN",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    /// ONNX node name, or its first output's name when the node has none.
    pub name: String,
    pub op: Op,
    /// Names of the dynamic (non-constant) input values.
    pub inputs: Vec<String>,
    pub output: String,
}

/// A whole model: one image input, one or more outputs.
#[derive(Clone, Debug)]
pub struct Graph {
    pub name: String,
    pub opset: i64,
    pub input: String,
    /// Input shape at batch size 1, e.g. `[1, 1, 28, 28]`.
    pub input_shape: Vec<usize>,
    pub outputs: Vec<String>,
    pub nodes: Vec<Node>,
    /// The static shape (batch 1) of every dynamic value, keyed by value name.
    pub shapes: BTreeMap<String, Vec<usize>>,
}

/// A layer that carries weights, as the quantizers see it.
#[derive(Clone, Copy, Debug)]
pub enum LayerRef<'a> {
    Conv(&'a Conv),
    Dense(&'a Dense),
}

impl<'a> LayerRef<'a> {
    pub fn weight(&self) -> &'a Tensor {
        match self {
            LayerRef::Conv(c) => &c.weight,
            LayerRef::Dense(d) => &d.weight,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            LayerRef::Conv(c) if c.is_depthwise() => "conv-dw",
            LayerRef::Conv(c) if c.group > 1 => "conv-grouped",
            LayerRef::Conv(_) => "conv",
            LayerRef::Dense(_) => "dense",
        }
    }
}

/// The first non-finite value of `v`, as (index, value).
fn first_non_finite(v: &[f32]) -> Option<(usize, f32)> {
    v.iter().position(|x| !x.is_finite()).map(|i| (i, v[i]))
}

impl Graph {
    /// Refuse NaN and infinite weights, biases, constants and attributes, naming the node
    /// and tensor (Clip bounds may be infinite: no bound; never NaN).
    pub fn check_finite(&self) -> crate::Result<()> {
        for n in &self.nodes {
            let bad = |what: &str, at: Option<(usize, f32)>| match at {
                Some((i, v)) => Err(crate::Error::node(
                    &n.name,
                    n.op.name(),
                    format!("{what} holds {v} at index {i}; weights and constants must be finite"),
                )),
                None => Ok(()),
            };
            match &n.op {
                Op::Conv(c) => {
                    bad("weight", first_non_finite(&c.weight.data))?;
                    bad("bias", first_non_finite(&c.bias))?;
                }
                Op::Dense(d) => {
                    bad("weight", first_non_finite(&d.weight.data))?;
                    bad("bias", first_non_finite(&d.bias))?;
                }
                Op::Affine { scale, shift } => {
                    bad("BatchNormalization scale", first_non_finite(scale))?;
                    bad("BatchNormalization shift", first_non_finite(shift))?;
                }
                Op::Add { constant: Some(t) } | Op::Mul { constant: Some(t) } => {
                    bad("constant operand", first_non_finite(&t.data))?;
                }
                Op::Clip { min, max } if min.is_nan() || max.is_nan() => {
                    bad("min/max", Some((0, f32::NAN)))?;
                }
                Op::HardSigmoid { alpha, beta } => {
                    bad("alpha/beta", first_non_finite(&[*alpha, *beta]))?;
                }
                Op::Pad {
                    mode: PadMode::Constant(v),
                    ..
                } => bad("constant value", first_non_finite(&[*v]))?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Shape of a value at batch size 1.
    pub fn shape(&self, value: &str) -> &[usize] {
        self.shapes.get(value).map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// Weight layers (Conv and Dense) in execution order, with their node index.
    pub fn layers(&self) -> Vec<(usize, LayerRef<'_>)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match &n.op {
                Op::Conv(c) => Some((i, LayerRef::Conv(c))),
                Op::Dense(d) => Some((i, LayerRef::Dense(d))),
                _ => None,
            })
            .collect()
    }

    /// Multiply-accumulates of one node at batch size 1.
    pub fn macs(&self, node: &Node) -> u64 {
        let out = self.shape(&node.output);
        match &node.op {
            Op::Conv(c) => {
                let [kh, kw] = c.kernel();
                let per_out = (c.in_channels_per_group() * kh * kw) as u64;
                out.iter().product::<usize>() as u64 * per_out
            }
            Op::Dense(d) => out.iter().product::<usize>() as u64 * d.weight.shape[1] as u64,
            _ => 0,
        }
    }

    /// Parameters (weights + biases) of one node.
    pub fn params(&self, node: &Node) -> u64 {
        match &node.op {
            Op::Conv(c) => (c.weight.numel() + c.bias.len()) as u64,
            Op::Dense(d) => (d.weight.numel() + d.bias.len()) as u64,
            Op::Affine { scale, shift } => (scale.len() + shift.len()) as u64,
            Op::Add { constant: Some(t) } | Op::Mul { constant: Some(t) } => t.numel() as u64,
            _ => 0,
        }
    }
}
