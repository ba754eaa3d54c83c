//! The execution plan: a graph lowered once, for one numerics mode, into steps whose
//! geometry, constants and scales are resolved, and the layer constants (FP32 or
//! quantized weights, INT32 biases, requantization factors). Three interpreters run it:
//! the CPU engine with the reference kernels (`cpu::kernels`, the oracle, mirrors of the
//! WGSL kernels), the CPU engine with the fast kernels (`cpu::gemm`), and the GPU engine
//! (`gpu::engine`). The `match` on graph ops exists here only; an interpreter matches on
//! [`StepKind`].

mod geom;
mod lower;

pub use geom::ConvGeom;

pub use lower::keeps_input_scale;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::model::{Graph, PadMode, Tensor};
use crate::quant::WClass;

/// Numerics of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// FP32 weights and activations.
    Fp32,
    /// The scheme's dequantized weights; every weight layer's input quantize-dequantized
    /// to per-tensor INT8.
    FakeQuant,
    /// INT8 tensors with per-tensor scales, INT32 accumulation, FP32 requantization.
    Integer,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Fp32 => "fp32",
            Mode::FakeQuant => "fake-quant",
            Mode::Integer => "integer",
        }
    }
}

/// Which engine a command uses. `auto`: a hardware GPU adapter when one opens and the run
/// can use it, else the CPU engine (software adapters such as lavapipe are slower than
/// the CPU engine: results/bench); `gpu`: any adapter, lavapipe included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Device {
    Cpu,
    Gpu,
    Auto,
}

impl Device {
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Gpu => "gpu",
            Device::Auto => "auto",
        }
    }
}

/// Per-tensor activation scales, keyed by value name.
pub type Scales = HashMap<String, f32>;

/// Prepared constants of one Conv/Dense layer.
pub struct LayerConsts {
    /// fp32 / fake-quant: the weights computed with (FP32 or the scheme's dequantized ones)
    pub w_f: Vec<f32>,
    /// integer mode: the integer weights (after INT32-headroom scaling)
    pub w_q: Vec<i32>,
    /// integer mode: `w_q` as f32, the operand of the exact GEMM (`cpu::gemm`)
    pub w_qf: Vec<f32>,
    /// per output channel: factor applied to the weights for INT32 headroom (1: none)
    pub headroom: Vec<f32>,
    pub class: Vec<WClass>,
    /// weights of each class (High, Low, Zero) per input tap: index `ci * KH * KW + tap`
    /// (conv, `ci` over all input channels) or input feature (dense); with the per-image
    /// count of non-zero activations per tap this gives the MACs by class whose activation
    /// is non-zero
    pub class_hist: Vec<[u64; 3]>,
    /// integer mode: INT32 bias on the accumulator scale
    pub bias_q: Vec<i32>,
    /// fp32 / fake-quant: the FP32 bias
    pub bias_f: Vec<f32>,
    /// integer mode: per output channel requantization factor (or dequantization factor
    /// when `float_out`)
    pub m: Vec<f32>,
    /// integer mode: the layer outputs FP32 (`acc * s_in * s_w`): it feeds only graph
    /// outputs or Softmax
    pub float_out: bool,
    /// MACs by weight class (High, Low, Zero) if every activation were non-zero
    pub pairs_dense: [u64; 3],
}

/// What one step computes, with everything the interpreters need resolved. Scales are the
/// per-tensor activation scales (1 in fp32 mode); `so` is the output's.
pub enum StepKind {
    /// Conv (`geom`) or Dense (`geom: None`, rows of `ic`) with `Plan::layer(node)`.
    Layer {
        geom: Option<ConvGeom>,
        ic: usize,
        oc: usize,
        /// output elements per image
        out_n: usize,
        /// scale of the input (fake-quant and the INT8 quantization of an FP32 input)
        s_in: f32,
    },
    /// Relu and Clip: INT8 bounds (integer) and FP32 bounds (`max(flo).min(fhi)`).
    Clamp {
        lo: i8,
        hi: i8,
        flo: f32,
        fhi: f32,
    },
    /// Sigmoid / HardSwish / HardSigmoid: `cpu::kernels::unary1` op code, and the INT8
    /// table (integer mode; empty otherwise).
    Unary {
        op: u32,
        alpha: f32,
        beta: f32,
        lut: Vec<i8>,
    },
    /// Add or Mul of two values or of a value and a constant, with broadcasting.
    Binary {
        add: bool,
        a_shape: Vec<usize>,
        b_shape: Vec<usize>,
        out_shape: Vec<usize>,
        constant: Option<Tensor>,
        sa: f32,
        sb: f32,
        so: f32,
    },
    /// N-ary sum; `s`: the scale of each input.
    Sum {
        s: Vec<f32>,
        so: f32,
    },
    /// Per-channel `x * scale + shift` over axis 1.
    Affine {
        scale: Vec<f32>,
        shift: Vec<f32>,
        inner: usize,
        channels: usize,
        si: f32,
        so: f32,
    },
    MaxPool {
        geom: ConvGeom,
    },
    /// `m`: integer-mode factor per window count (empty otherwise).
    AvgPool {
        geom: ConvGeom,
        include_pad: bool,
        m: Vec<f32>,
    },
    /// Mean over each of `planes` planes of `hw` values; `k = s_in / (hw * s_out)`.
    Gap {
        planes: usize,
        hw: usize,
        k: f32,
    },
    /// Flatten / Reshape / Identity: the values unchanged.
    Copy,
    Transpose {
        shape: Vec<usize>,
        perm: Vec<usize>,
    },
    /// `parts`: elements per outer index of each input; `r`: each input's scale / `so`.
    Concat {
        outer: usize,
        parts: Vec<usize>,
        r: Vec<f32>,
        so: f32,
    },
    /// `fill` (FP32) and `qfill` (INT8) for constant padding.
    Pad {
        shape: Vec<usize>,
        pads: Vec<[usize; 2]>,
        mode: PadMode,
        fill: f32,
        qfill: i8,
    },
    /// Mean over `axes`; integer mode rescales the INT32 sums by `k = s_in / (n * s_out)`.
    ReduceMean {
        shape: Vec<usize>,
        axes: Vec<usize>,
        k: f32,
        so: f32,
    },
    /// `Op::Select` per image of `in_per` elements (the INT8 zero is code 0).
    Select {
        index: std::sync::Arc<[u32]>,
        in_per: usize,
    },
    /// `Op::ResizeLinear` over planes of `h x w` (integer mode keeps the input's scale).
    ResizeLinear {
        h: usize,
        w: usize,
        rows: std::sync::Arc<[crate::model::ir::LinearTap]>,
        cols: std::sync::Arc<[crate::model::ir::LinearTap]>,
    },
    /// `Op::Lrn` over `channels` planes of `plane` elements; `p` = alpha, beta, bias;
    /// integer mode dequantizes with `si` and requantizes with `so`.
    Lrn {
        channels: usize,
        plane: usize,
        size: usize,
        p: [f32; 3],
        si: f32,
        so: f32,
    },
    /// FP32 softmax (its input dequantized).
    Softmax {
        shape: Vec<usize>,
        axis: usize,
    },
}

impl StepKind {
    /// A residual add: two dynamic values of one shape, `(ra, rb, so)` with
    /// `ra = s_a / s_out`, `rb = s_b / s_out` (`cpu::kernels::add_i8`).
    pub fn residual_add(&self) -> Option<(f32, f32, f32)> {
        match self {
            StepKind::Binary {
                add: true,
                constant: None,
                a_shape,
                b_shape,
                sa,
                sb,
                so,
                ..
            } if a_shape == b_shape => Some((sa / so, sb / so, *so)),
            _ => None,
        }
    }
}

/// One step: a graph node lowered.
pub struct Step {
    pub node: usize,
    pub inputs: Vec<String>,
    pub output: String,
    /// the output's activation scale (1 where there is none: fp32 mode)
    pub so: f32,
    pub kind: StepKind,
}

/// A graph lowered for one mode.
pub struct Plan<'g> {
    pub graph: &'g Graph,
    pub mode: Mode,
    pub scales: Scales,
    pub steps: Vec<Step>,
    layers: HashMap<usize, LayerConsts>,
}

impl Plan<'_> {
    /// The constants of weight layer `node`.
    pub fn layer(&self, node: usize) -> Option<&LayerConsts> {
        self.layers.get(&node)
    }
    /// The per-tensor activation scale of a value (quantized modes).
    pub fn scale(&self, name: &str) -> Option<f32> {
        self.scales.get(name).copied()
    }
}
