//! The CPU engine: runs the graph IR on one image at a time in one of three numerics
//! modes, and reports the per-layer activity the accelerator model consumes. Images run
//! in parallel (rayon) in `eval`.
//!
//! * `fp32`: FP32 weights and activations.
//! * `fake-quant`: the scheme's dequantized weights; the input activation of every weight
//!   layer is quantize-dequantized to per-tensor INT8.
//! * `integer`: every tensor is INT8 with a per-tensor scale (symmetric, zero point 0);
//!   Conv/Dense multiply INT8 activations by the integer weights with INT32 accumulation
//!   and an INT32 bias, then requantize with one FP32 multiply per output channel
//!   (`clamp(round_even(acc * s_in * s_w / s_out), -127, 127)`). Elementwise ops rescale
//!   with `mul_add`, LUTs or integer sums and one multiply; shape ops and max pooling are
//!   exact. Layers feeding only graph outputs (or Softmax) output FP32 `acc * s_in * s_w`.
//!   Deterministic and bit-exact for a given set of scales.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::kernels::{self, ConvGeom};
use crate::error::{Error, Result};
use crate::model::consts::{broadcast_to, transpose};
use crate::model::{Graph, Op, Pool, Tensor};
use crate::quant::calib::activation_scale;
use crate::quant::config::Calib;
use crate::quant::{ModelQuant, WClass};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Fp32,
    FakeQuant,
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

/// Per-tensor activation scales, keyed by value name.
pub type Scales = HashMap<String, f32>;

/// Largest INT32 bias magnitude allowed (see `Engine::new`): 2^30.
const BIAS_HEADROOM: f32 = 1_073_741_824.0;

/// Values kept per tensor for percentile / MSE calibration (deterministic stride sampling).
const CALIB_SAMPLES: usize = 1 << 22;

/// Calibrate a per-tensor INT8 scale for the graph input and every node output by running
/// the FP32 reference on `images` (`[N, ...]`). Shape-only ops, ReLU/Clip and max pooling
/// inherit their input's scale, so they stay exact in integer mode.
pub fn calibrate(graph: &Graph, images: &Tensor, method: Calib, percentile: f32) -> Result<Scales> {
    let n = images.shape[0];
    let per: usize = images.shape[1..].iter().product();
    // The FP32 engine observes every value; images run in parallel. Reference kernels, so
    // that the scales (and so every integer-mode result) do not depend on the fast FP32
    // GEMM's summation order.
    let fp = Engine::new(graph, Mode::Fp32, None, None)?.with_kernels(Kernels::Reference);
    let per_tensor: Vec<HashMap<String, (f32, Vec<f32>)>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut m: HashMap<String, (f32, Vec<f32>)> = HashMap::new();
            let mut obs = |name: &str, x: &[f32]| {
                let e = m.entry(name.to_string()).or_insert((0.0, Vec::new()));
                e.0 = x.iter().fold(e.0, |a, v| a.max(v.abs()));
                if method != Calib::Max {
                    let stride = (x.len() * n / CALIB_SAMPLES).max(1);
                    e.1.extend(x.iter().step_by(stride));
                }
            };
            fp.run_values(&images.data[i * per..(i + 1) * per], &mut obs)
                .map(|_| m)
        })
        .collect::<Result<_>>()?;
    let mut max: HashMap<String, f32> = HashMap::new();
    let mut samples: HashMap<String, Vec<f32>> = HashMap::new();
    for m in per_tensor {
        for (k, (mx, v)) in m {
            let e = max.entry(k.clone()).or_insert(0.0);
            *e = e.max(mx);
            samples.entry(k).or_default().extend(v);
        }
    }
    let mut scales: Scales = max
        .iter()
        .map(|(k, &m)| {
            let s = match method {
                Calib::Max => activation_scale(&[m], Calib::Max, 100.0),
                _ => activation_scale(&samples[k], method, percentile),
            };
            (k.clone(), s)
        })
        .collect();
    for node in &graph.nodes {
        if matches!(
            node.op,
            Op::Relu
                | Op::Clip { .. }
                | Op::MaxPool(_)
                | Op::Flatten { .. }
                | Op::Reshape { .. }
                | Op::Transpose { .. }
                | Op::Identity
                | Op::Pad { .. }
        ) {
            let s = scales[&node.inputs[0]];
            scales.insert(node.output.clone(), s);
        }
    }
    Ok(scales)
}

/// Prepared weights of one Conv/Dense layer.
struct LayerPlan {
    w_f: Vec<f32>,
    w_q: Vec<i32>,
    /// integer mode: `w_q` as f32, the operand of the exact GEMM (`cpu::gemm`)
    w_qf: Vec<f32>,
    /// per output channel: factor applied to the weights for INT32 headroom (1: none)
    headroom: Vec<f32>,
    class: Vec<WClass>,
    bias_q: Vec<i32>,
    /// integer mode: per output channel requantization factor (or dequantization factor
    /// when `float_out`)
    m: Vec<f32>,
    float_out: bool,
    /// MACs by weight class (High, Low, Zero) if every activation were non-zero
    pairs_dense: [u64; 3],
}

/// Integer constants of one weight layer (see [`Engine::int_layer`]).
pub struct IntLayer<'a> {
    pub w_q: &'a [i32],
    /// per output channel: INT32-headroom factor applied to the weights (1: none)
    pub headroom: &'a [f32],
    pub bias_q: &'a [i32],
    /// per output channel: requantization factor, or dequantization factor if `float_out`
    pub m: &'a [f32],
    pub float_out: bool,
}

/// What the engine observed at one weight layer for one image.
#[derive(Clone, Debug, Default)]
pub struct LayerObs {
    pub node: usize,
    /// input activation elements and how many of them are zero
    pub act_elems: u64,
    pub act_zeros: u64,
    /// MACs by weight class (High, Low, Zero) if every activation were non-zero
    pub pairs_dense: [u64; 3],
    /// MACs by weight class whose input activation is non-zero
    pub pairs_nz: [u64; 3],
    /// the layer's output as downstream sees it (dequantized in integer mode)
    pub output: Vec<f32>,
}

pub struct Engine<'g> {
    pub graph: &'g Graph,
    pub mode: Mode,
    layers: HashMap<usize, LayerPlan>,
    scales: Scales,
    /// Which Conv/Dense kernels integer and fp32 mode run (integer: both give the same
    /// bits; fp32: equal within `gemm::FP32_REL_TOL`; fake-quant always runs the reference).
    pub kernels: Kernels,
}

/// The Conv/Dense kernels of the CPU engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Kernels {
    /// im2col + exact FP32-chunked GEMM (`cpu::gemm`) where it applies (the default).
    Fast,
    /// The direct loops of `cpu::kernels` (the oracle, mirrors of the WGSL kernels).
    Reference,
}

/// An accumulator pre-filled with the bias: `per` copies of each channel's bias in turn
/// (NCHW), or the bias repeated row after row (dense, `n` elements).
fn filled<T: Copy>(bias: &[T], nchw: bool, per: usize, n: usize) -> Vec<T> {
    let mut acc = Vec::with_capacity(if nchw { bias.len() * per } else { n });
    if nchw {
        for &b in bias {
            acc.extend(std::iter::repeat_n(b, per));
        }
    } else {
        while acc.len() < n {
            acc.extend_from_slice(&bias[..bias.len().min(n - acc.len())]);
        }
    }
    acc
}

thread_local! {
    static SCRATCH: std::cell::RefCell<super::gemm::Scratch> = Default::default();
}

enum V {
    F(Vec<f32>),
    Q(Vec<i8>, f32),
}

impl V {
    fn to_f32(&self) -> Vec<f32> {
        match self {
            V::F(v) => v.clone(),
            V::Q(q, s) => q.iter().map(|&x| x as f32 * s).collect(),
        }
    }
}

/// Convolution / pooling geometry of a node over one image (shared with the GPU engine).
pub(crate) fn geom(
    graph: &Graph,
    input: &str,
    output: &str,
    k: [usize; 2],
    s: [usize; 2],
    d: [usize; 2],
    pads: [usize; 4],
    oc: usize,
    icg: usize,
    group: usize,
) -> ConvGeom {
    let i = graph.shape(input);
    let o = graph.shape(output);
    ConvGeom {
        c: i[1],
        h: i[2],
        w: i[3],
        oc,
        icg,
        kh: k[0],
        kw: k[1],
        sh: s[0],
        sw: s[1],
        dh: d[0],
        dw: d[1],
        pt: pads[0],
        pl: pads[1],
        oh: o[2],
        ow: o[3],
        group,
    }
}

/// The `unary_f32` op code and parameters of an elementwise activation node.
pub(crate) fn unary_op(op: &Op) -> (u32, f32, f32) {
    match op {
        Op::Sigmoid => (0, 0.0, 0.0),
        Op::HardSwish => (1, 0.0, 0.0),
        Op::HardSigmoid { alpha, beta } => (2, *alpha, *beta),
        _ => unreachable!("unary_op on a non-activation"),
    }
}

fn pool_geom(graph: &Graph, input: &str, output: &str, p: &Pool) -> ConvGeom {
    let c = graph.shape(input)[1];
    geom(
        graph,
        input,
        output,
        p.kernel,
        p.strides,
        [1, 1],
        p.pads,
        c,
        1,
        c,
    )
}

impl<'g> Engine<'g> {
    /// Prepare `graph` for `mode`. `quant` and `scales` are required for the quantized modes.
    pub fn new(
        graph: &'g Graph,
        mode: Mode,
        quant: Option<&ModelQuant>,
        scales: Option<&Scales>,
    ) -> Result<Self> {
        let need = |what: &str| Error::InvalidArg {
            arg: "mode".into(),
            reason: format!("{} mode needs {what}", mode.as_str()),
        };
        if mode != Mode::Fp32 && (quant.is_none() || scales.is_none()) {
            return Err(need("quantized weights and activation scales"));
        }
        let scales = scales.cloned().unwrap_or_default();
        let mut consumers: HashMap<&str, Vec<&Op>> = HashMap::new();
        for n in &graph.nodes {
            for i in &n.inputs {
                consumers.entry(i.as_str()).or_default().push(&n.op);
            }
        }
        let mut layers = HashMap::new();
        for (idx, layer) in graph.layers() {
            let node = &graph.nodes[idx];
            let w = layer.weight();
            let bias = match layer {
                crate::model::LayerRef::Conv(c) => &c.bias,
                crate::model::LayerRef::Dense(d) => &d.bias,
            };
            let lq = quant.and_then(|q| q.layers.iter().find(|l| l.node == idx));
            let oc = w.shape[0];
            let per = w.numel() / oc;
            let positions = (graph.shape(&node.output).iter().product::<usize>() / oc) as u64;
            let (w_f, class) = match (mode, lq) {
                (Mode::Fp32, _) | (_, None) => (
                    w.data.clone(),
                    w.data
                        .iter()
                        .map(|&v| if v == 0.0 { WClass::Zero } else { WClass::High })
                        .collect::<Vec<_>>(),
                ),
                (_, Some(l)) => (l.encoded.deq.clone(), l.encoded.class.clone()),
            };
            let mut pairs_dense = [0u64; 3];
            for c in &class {
                pairs_dense[*c as usize] += positions;
            }
            let float_out = graph.outputs.contains(&node.output)
                || consumers
                    .get(node.output.as_str())
                    .is_some_and(|c| c.iter().all(|o| matches!(o, Op::Softmax { .. })));
            let (mut w_q, mut bias_q, mut m) = (Vec::new(), Vec::new(), Vec::new());
            let mut headroom = Vec::new();
            if mode == Mode::Integer {
                let l = lq.ok_or_else(|| need("every weight layer quantized"))?;
                if l.encoded.q.is_empty() || l.encoded.scale_per == 0 {
                    return Err(Error::InvalidArg {
                        arg: "mode".into(),
                        reason: format!(
                            "integer mode needs integer weights with per-channel scales; layer '{}' is '{}' (use fake-quant)",
                            l.name, l.applied
                        ),
                    });
                }
                let s_in = scales[&node.inputs[0]];
                let s_out = if float_out { 1.0 } else { scales[&node.output] };
                // INT32 headroom: a channel whose bias would need more than 2^30 on the
                // accumulator scale (tiny weights after BatchNorm folding next to a real bias)
                // gets a coarser weight scale, so that bias + products never overflow INT32
                // (products stay below 256 * 127 * K, far below 2^30 for K < 33k). Its
                // weights are negligible against its bias at that scale.
                let mut sw = l.encoded.scales.clone();
                w_q = l.encoded.q.clone();
                headroom = vec![1.0; oc];
                for o in 0..oc {
                    let need = bias[o].abs() / (s_in * BIAS_HEADROOM);
                    if need > sw[o] {
                        let r = sw[o] / need;
                        headroom[o] = r;
                        for w in &mut w_q[o * per..(o + 1) * per] {
                            *w = crate::quant::calib::rne(*w as f32 * r) as i32;
                        }
                        sw[o] = need;
                    }
                }
                bias_q = crate::quant::calib::quantize_bias(bias, &sw, s_in);
                m = sw.iter().map(|&w| s_in * w / s_out).collect();
                debug_assert_eq!(l.encoded.scale_per, per);
            }
            layers.insert(
                idx,
                LayerPlan {
                    w_f,
                    w_qf: w_q.iter().map(|&v| v as f32).collect(),
                    w_q,
                    headroom,
                    class,
                    bias_q,
                    m,
                    float_out,
                    pairs_dense,
                },
            );
        }
        Ok(Engine {
            graph,
            mode,
            layers,
            scales,
            kernels: Kernels::Fast,
        })
    }

    /// The same engine with other integer-mode kernels (`Kernels::Reference`: the oracle).
    pub fn with_kernels(mut self, k: Kernels) -> Self {
        self.kernels = k;
        self
    }

    /// The prepared integer constants of weight layer `node` (integer mode), shared with the
    /// GPU engine so both run on identical numbers.
    pub fn int_layer(&self, node: usize) -> Option<IntLayer<'_>> {
        let p = self.layers.get(&node)?;
        (self.mode == Mode::Integer).then_some(IntLayer {
            w_q: &p.w_q,
            headroom: &p.headroom,
            bias_q: &p.bias_q,
            m: &p.m,
            float_out: p.float_out,
        })
    }

    /// The FP32 weights a layer computes with in fp32 / fake-quant mode (FP32 or the
    /// scheme's dequantized weights).
    pub fn float_weights(&self, node: usize) -> Option<&[f32]> {
        let p = self.layers.get(&node)?;
        (self.mode != Mode::Integer).then_some(&p.w_f[..])
    }

    /// The per-tensor activation scale of a value (quantized modes).
    pub fn scale(&self, name: &str) -> Option<f32> {
        self.scales.get(name).copied()
    }

    /// Run one image, calling `observe(value_name, values)` for the input and every node
    /// output (dequantized in integer mode). Used for calibration.
    pub fn run_values(
        &self,
        input: &[f32],
        observe: &mut dyn FnMut(&str, &[f32]),
    ) -> Result<Vec<Vec<f32>>> {
        Ok(self.run_inner(input, false, Some(observe))?.0)
    }

    /// Run one image (`input` in the model's layout, batch 1). Returns the FP32 graph
    /// outputs and, if `observe`, one [`LayerObs`] per weight layer.
    pub fn run(&self, input: &[f32], observe: bool) -> Result<(Vec<Vec<f32>>, Vec<LayerObs>)> {
        self.run_inner(input, observe, None)
    }

    fn run_inner(
        &self,
        input: &[f32],
        observe: bool,
        mut values: Option<&mut dyn FnMut(&str, &[f32])>,
    ) -> Result<(Vec<Vec<f32>>, Vec<LayerObs>)> {
        let g = self.graph;
        let mut vals: HashMap<&str, V> = HashMap::new();
        let x0 = match self.mode {
            Mode::Integer => {
                let s = self.scales[&g.input];
                V::Q(kernels::quantize(input, s), s)
            }
            _ => V::F(input.to_vec()),
        };
        if let Some(f) = values.as_mut() {
            f(&g.input, &x0.to_f32());
        }
        vals.insert(g.input.as_str(), x0);
        let mut obs = Vec::new();
        for (i, node) in g.nodes.iter().enumerate() {
            let out = self.node(i, &vals, observe, &mut obs)?;
            if let Some(f) = values.as_mut() {
                f(&node.output, &out.to_f32());
            }
            vals.insert(node.output.as_str(), out);
        }
        let outs = g
            .outputs
            .iter()
            .map(|o| vals[o.as_str()].to_f32())
            .collect();
        Ok((outs, obs))
    }

    fn out_scale(&self, name: &str) -> f32 {
        self.scales.get(name).copied().unwrap_or(1.0)
    }

    fn node(
        &self,
        i: usize,
        vals: &HashMap<&str, V>,
        observe: bool,
        obs: &mut Vec<LayerObs>,
    ) -> Result<V> {
        let g = self.graph;
        let node = &g.nodes[i];
        let inp = |k: usize| &vals[node.inputs[k].as_str()];
        let so = self.out_scale(&node.output);
        let v = match &node.op {
            Op::Conv(_) | Op::Dense(_) => return self.layer(i, inp(0), observe, obs),
            Op::Relu => match inp(0) {
                V::Q(q, s) => V::Q(kernels::clamp_i8(q, 0, 127), *s),
                V::F(f) => V::F(f.iter().map(|&v| v.max(0.0)).collect()),
            },
            Op::Clip { min, max } => match inp(0) {
                V::Q(q, s) => {
                    let lo = if min.is_finite() {
                        kernels::quantize1(min / s)
                    } else {
                        -127
                    };
                    let hi = if max.is_finite() {
                        kernels::quantize1(max / s)
                    } else {
                        127
                    };
                    V::Q(kernels::clamp_i8(q, lo, hi), *s)
                }
                V::F(f) => V::F(f.iter().map(|&v| v.clamp(*min, *max)).collect()),
            },
            Op::HardSigmoid { .. } | Op::HardSwish | Op::Sigmoid => {
                let (op, alpha, beta) = unary_op(&node.op);
                match inp(0) {
                    V::Q(q, s) => {
                        let lut = kernels::activation_lut(
                            |v| kernels::unary1(v, op, alpha, beta),
                            *s,
                            so,
                        );
                        V::Q(kernels::lut_i8(q, &lut), so)
                    }
                    V::F(x) => V::F(kernels::unary_f32(x, op, alpha, beta)),
                }
            }
            Op::Add { constant } | Op::Mul { constant } => {
                let add = matches!(node.op, Op::Add { .. });
                let out_shape = g.shape(&node.output).to_vec();
                let sa = g.shape(&node.inputs[0]).to_vec();
                let a = inp(0);
                let (bshape, b) = match constant {
                    Some(t) => (t.shape.clone(), None),
                    None => (g.shape(&node.inputs[1]).to_vec(), Some(inp(1))),
                };
                match (a, b, constant) {
                    (V::Q(qa, s_a), None, Some(c)) => {
                        let qa = if sa == out_shape {
                            qa.clone()
                        } else {
                            broadcast_to(qa, &sa, &out_shape)
                        };
                        let cb = broadcast_to(&c.data, &bshape, &out_shape);
                        let r: Vec<i8> = if add {
                            qa.iter()
                                .zip(&cb)
                                .map(|(&q, &c)| {
                                    kernels::quantize1((q as f32).mul_add(s_a / so, c / so))
                                })
                                .collect()
                        } else {
                            qa.iter()
                                .zip(&cb)
                                .map(|(&q, &c)| kernels::quantize1(q as f32 * (s_a * c / so)))
                                .collect()
                        };
                        V::Q(r, so)
                    }
                    (V::Q(qa, s_a), Some(V::Q(qb, s_b)), None) => {
                        let qa = if sa == out_shape {
                            qa.clone()
                        } else {
                            broadcast_to(qa, &sa, &out_shape)
                        };
                        let qb = if bshape == out_shape {
                            qb.clone()
                        } else {
                            broadcast_to(qb, &bshape, &out_shape)
                        };
                        let r: Vec<i8> = if add {
                            kernels::add_i8(&qa, &qb, s_a / so, s_b / so)
                        } else {
                            kernels::mul_i8(&qa, &qb, 1, s_a * s_b / so)
                        };
                        V::Q(r, so)
                    }
                    _ => {
                        let x = Tensor::new(sa, a.to_f32());
                        let y = match constant {
                            Some(c) => c.clone(),
                            None => Tensor::new(bshape, b.map(|v| v.to_f32()).unwrap_or_default()),
                        };
                        let xs = broadcast_to(&x.data, &x.shape, &out_shape);
                        let ys = broadcast_to(&y.data, &y.shape, &out_shape);
                        let r = xs
                            .iter()
                            .zip(&ys)
                            .map(|(&p, &q)| if add { p + q } else { p * q })
                            .collect();
                        self.requant_f(r, so)
                    }
                }
            }
            Op::Sum => {
                let all_q = node
                    .inputs
                    .iter()
                    .all(|n| matches!(vals[n.as_str()], V::Q(..)));
                if all_q && self.mode == Mode::Integer {
                    let n = match inp(0) {
                        V::Q(q, _) => q.len(),
                        _ => 0,
                    };
                    let mut acc = vec![0f32; n];
                    for k in 0..node.inputs.len() {
                        if let V::Q(q, s) = inp(k) {
                            let r = s / so;
                            acc.iter_mut()
                                .zip(q)
                                .for_each(|(a, &v)| *a = (v as f32).mul_add(r, *a));
                        }
                    }
                    V::Q(acc.iter().map(|&v| kernels::quantize1(v)).collect(), so)
                } else {
                    let mut acc = inp(0).to_f32();
                    for k in 1..node.inputs.len() {
                        acc.iter_mut()
                            .zip(inp(k).to_f32())
                            .for_each(|(a, b)| *a += b);
                    }
                    self.requant_f(acc, so)
                }
            }
            Op::Affine { scale, shift } => {
                let shp = g.shape(&node.inputs[0]);
                let inner: usize = shp[2..].iter().product();
                let c = shp[1];
                match inp(0) {
                    V::Q(q, s) => V::Q(
                        q.iter()
                            .enumerate()
                            .map(|(j, &v)| {
                                let ch = (j / inner) % c;
                                kernels::quantize1(
                                    (v as f32).mul_add(scale[ch] * s / so, shift[ch] / so),
                                )
                            })
                            .collect(),
                        so,
                    ),
                    V::F(x) => V::F(
                        x.iter()
                            .enumerate()
                            .map(|(j, &v)| v * scale[(j / inner) % c] + shift[(j / inner) % c])
                            .collect(),
                    ),
                }
            }
            Op::MaxPool(p) => {
                let gm = pool_geom(g, &node.inputs[0], &node.output, p);
                match inp(0) {
                    V::Q(q, s) => V::Q(kernels::maxpool(q, &gm, i8::MIN), *s),
                    V::F(x) => V::F(kernels::maxpool(x, &gm, f32::NEG_INFINITY)),
                }
            }
            Op::AveragePool(p) => {
                let gm = pool_geom(g, &node.inputs[0], &node.output, p);
                match inp(0) {
                    V::Q(q, s) => {
                        let m = kernels::avgpool_factors(*s, so, gm.kh * gm.kw);
                        V::Q(kernels::avgpool_i8(q, &gm, p.count_include_pad, &m), so)
                    }
                    V::F(x) => V::F(kernels::avgpool_f32(x, &gm, p.count_include_pad)),
                }
            }
            Op::GlobalAveragePool => {
                let shp = g.shape(&node.inputs[0]);
                let hw: usize = shp[2..].iter().product();
                match inp(0) {
                    V::Q(q, s) => V::Q(kernels::gap_i8(q, hw, s / (hw as f32 * so)), so),
                    V::F(x) => V::F(
                        x.chunks(hw)
                            .map(|c| c.iter().sum::<f32>() / hw as f32)
                            .collect(),
                    ),
                }
            }
            Op::Flatten { .. } | Op::Reshape { .. } | Op::Identity => match inp(0) {
                V::Q(q, s) => V::Q(q.clone(), *s),
                V::F(x) => V::F(x.clone()),
            },
            Op::Transpose { perm } => {
                let shp = g.shape(&node.inputs[0]);
                match inp(0) {
                    V::Q(q, s) => V::Q(transpose(q, shp, perm), *s),
                    V::F(x) => V::F(transpose(x, shp, perm)),
                }
            }
            Op::Concat { axis } => {
                let out_shape = g.shape(&node.output);
                let outer: usize = out_shape[..*axis].iter().product();
                let parts: Vec<(&V, usize)> = (0..node.inputs.len())
                    .map(|k| {
                        (
                            inp(k),
                            g.shape(&node.inputs[k])[*axis..].iter().product::<usize>(),
                        )
                    })
                    .collect();
                if parts.iter().all(|(v, _)| matches!(v, V::Q(..))) {
                    let mut out = Vec::new();
                    for o in 0..outer {
                        for (v, c) in &parts {
                            if let V::Q(q, s) = v {
                                let r = s / so;
                                out.extend(q[o * c..(o + 1) * c].iter().map(|&x| {
                                    if r == 1.0 {
                                        x
                                    } else {
                                        kernels::quantize1(x as f32 * r)
                                    }
                                }));
                            }
                        }
                    }
                    V::Q(out, so)
                } else {
                    let mut out = Vec::new();
                    let fs: Vec<(Vec<f32>, usize)> =
                        parts.iter().map(|(v, c)| (v.to_f32(), *c)).collect();
                    for o in 0..outer {
                        for (f, c) in &fs {
                            out.extend_from_slice(&f[o * c..(o + 1) * c]);
                        }
                    }
                    self.requant_f(out, so)
                }
            }
            Op::Pad { pads, mode } => {
                let shp = g.shape(&node.inputs[0]);
                let c = match mode {
                    crate::model::PadMode::Constant(v) => *v,
                    _ => 0.0,
                };
                match inp(0) {
                    V::Q(q, s) => V::Q(
                        kernels::pad(q, shp, pads, *mode, kernels::quantize1(c / s)),
                        *s,
                    ),
                    V::F(x) => V::F(kernels::pad(x, shp, pads, *mode, c)),
                }
            }
            Op::ReduceMean { axes, .. } => {
                let shp = g.shape(&node.inputs[0]);
                match inp(0) {
                    V::Q(q, s) => {
                        let (sums, n) = kernels::reduce_sum(q, shp, axes, |v| v as i32);
                        V::Q(
                            sums.iter()
                                .map(|&a| kernels::quantize1(a as f32 * (s / (n as f32 * so))))
                                .collect(),
                            so,
                        )
                    }
                    V::F(x) => {
                        let (sums, n) = kernels::reduce_sum(x, shp, axes, |v| v);
                        V::F(sums.iter().map(|v| v / n as f32).collect())
                    }
                }
            }
            Op::Softmax { axis } => {
                let t = Tensor::new(g.shape(&node.inputs[0]).to_vec(), inp(0).to_f32());
                V::F(super::reference::softmax(&t, *axis).data)
            }
        };
        Ok(v)
    }

    /// Integer mode: quantize an FP32 intermediate back to INT8; other modes keep FP32.
    fn requant_f(&self, v: Vec<f32>, so: f32) -> V {
        if self.mode == Mode::Integer {
            V::Q(kernels::quantize(&v, so), so)
        } else {
            V::F(v)
        }
    }

    fn layer(&self, i: usize, x: &V, observe: bool, obs: &mut Vec<LayerObs>) -> Result<V> {
        let g = self.graph;
        let node = &g.nodes[i];
        let plan = &self.layers[&i];
        let out_n: usize = g.shape(&node.output).iter().product();
        // Fake-quant: quantize-dequantize the layer input.
        let xf_owned;
        let x = match (self.mode, x) {
            (Mode::FakeQuant, V::F(f)) => {
                let s = self.scales[&node.inputs[0]];
                xf_owned = V::F(kernels::fake_quant(f, s));
                &xf_owned
            }
            (Mode::Integer, V::F(f)) => {
                let s = self.scales[&node.inputs[0]];
                xf_owned = V::Q(kernels::quantize(f, s), s);
                &xf_owned
            }
            _ => x,
        };
        let (bias, dims) = match &node.op {
            Op::Conv(c) => (&c.bias, Some(c)),
            Op::Dense(d) => (&d.bias, None),
            _ => unreachable!("layer() on a weight layer"),
        };
        let oc = bias.len();
        let per_out = out_n / oc;
        let gm = dims.map(|c| {
            geom(
                g,
                &node.inputs[0],
                &node.output,
                c.kernel(),
                c.strides,
                c.dilations,
                c.pads,
                oc,
                c.in_channels_per_group(),
                c.group,
            )
        });
        let ic = match &node.op {
            Op::Dense(d) => d.weight.shape[1],
            _ => 0,
        };
        let out = match x {
            V::Q(q, _) => {
                let mut acc: Vec<i32> = filled(&plan.bias_q, dims.is_some(), per_out, out_n);
                let fast = self.kernels == Kernels::Fast;
                match &gm {
                    Some(gm) if fast && super::gemm::takes(gm) => SCRATCH
                        .with_borrow_mut(|s| super::gemm::conv_i8(q, &plan.w_qf, gm, &mut acc, s)),
                    Some(gm) => kernels::conv2d(q, &plan.w_q, gm, &mut acc, |v| v as i32),
                    None if fast => SCRATCH.with_borrow_mut(|s| {
                        super::gemm::dense_i8(q, &plan.w_qf, ic, oc, &mut acc, s)
                    }),
                    None => kernels::dense(q, &plan.w_q, ic, oc, &mut acc, |v| v as i32),
                }
                if plan.float_out {
                    V::F(kernels::dequantize_acc(
                        &acc,
                        &plan.m,
                        per_out,
                        oc,
                        dims.is_none(),
                    ))
                } else {
                    let so = self.scales[&node.output];
                    V::Q(
                        kernels::requantize(&acc, &plan.m, per_out, oc, dims.is_none()),
                        so,
                    )
                }
            }
            V::F(f) => {
                let mut acc: Vec<f32> = filled(bias, dims.is_some(), per_out, out_n);
                // fp32 mode only: fake-quant keeps the reference kernels (its INT8 roundings
                // would magnify the fast GEMM's different summation order).
                let fast = self.kernels == Kernels::Fast && self.mode == Mode::Fp32;
                match &gm {
                    Some(gm) if fast && super::gemm::takes(gm) => SCRATCH
                        .with_borrow_mut(|s| super::gemm::conv_f32(f, &plan.w_f, gm, &mut acc, s)),
                    Some(gm) => kernels::conv2d(f, &plan.w_f, gm, &mut acc, |v| v),
                    None if fast => super::gemm::dense_f32(f, &plan.w_f, ic, oc, &mut acc),
                    None => kernels::dense(f, &plan.w_f, ic, oc, &mut acc, |v| v),
                }
                V::F(acc)
            }
        };
        if observe {
            let nz: Vec<bool> = match x {
                V::Q(q, _) => q.iter().map(|&v| v != 0).collect(),
                V::F(f) => f.iter().map(|&v| v != 0.0).collect(),
            };
            let zeros = nz.iter().filter(|&&b| !b).count() as u64;
            let mut pairs_nz = [0u64; 3];
            match &gm {
                Some(gm) => {
                    let taps = kernels::nonzero_taps(&nz, gm);
                    let ocg = gm.oc / gm.group;
                    let k = gm.kh * gm.kw;
                    for (wi, c) in plan.class.iter().enumerate() {
                        let o = wi / (gm.icg * k);
                        let rest = wi % (gm.icg * k);
                        let ci = (o / ocg) * gm.icg + rest / k;
                        pairs_nz[*c as usize] += taps[ci * k + rest % k];
                    }
                }
                None => {
                    let rows = nz.len() / ic;
                    let mut col = vec![0u64; ic];
                    for r in 0..rows {
                        for k in 0..ic {
                            col[k] += nz[r * ic + k] as u64;
                        }
                    }
                    for (wi, c) in plan.class.iter().enumerate() {
                        pairs_nz[*c as usize] += col[wi % ic];
                    }
                }
            }
            obs.push(LayerObs {
                node: i,
                act_elems: nz.len() as u64,
                act_zeros: zeros,
                pairs_dense: plan.pairs_dense,
                pairs_nz,
                output: out.to_f32(),
            });
        }
        Ok(out)
    }
}
