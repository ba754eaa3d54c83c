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

use super::kernels;
use crate::error::Result;
use crate::exec::{LayerConsts, Plan, StepKind};
use crate::model::consts::{broadcast_to, transpose};
use crate::model::{Graph, Tensor};
use crate::quant::ModelQuant;
use crate::quant::calib::activation_scale;
use crate::quant::config::Calib;
use rayon::prelude::*;

pub use crate::exec::{Mode, Scales};

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
        if crate::exec::keeps_input_scale(&node.op) {
            let s = scales[&node.inputs[0]];
            scales.insert(node.output.clone(), s);
        }
    }
    Ok(scales)
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

/// The CPU interpreter of an [`exec::Plan`](crate::exec::Plan), with the reference or the
/// fast kernels.
pub struct Engine<'g> {
    pub graph: &'g Graph,
    pub mode: Mode,
    plan: Plan<'g>,
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

/// What a run records per weight layer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Observe {
    Nothing,
    Activity,
    WithOutputs,
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

/// `x` broadcast to `to` (a copy when it already has that shape).
fn bcast<T: Copy>(x: &[T], from: &[usize], to: &[usize]) -> Vec<T> {
    if from == to {
        x.to_vec()
    } else {
        broadcast_to(x, from, to)
    }
}

impl<'g> Engine<'g> {
    /// Prepare `graph` for `mode` (lowers it to an [`exec::Plan`](crate::exec::Plan)).
    /// `quant` and `scales` are required for the quantized modes.
    pub fn new(
        graph: &'g Graph,
        mode: Mode,
        quant: Option<&ModelQuant>,
        scales: Option<&Scales>,
    ) -> Result<Self> {
        Ok(Engine {
            graph,
            mode,
            plan: Plan::new(graph, mode, quant, scales)?,
            kernels: Kernels::Fast,
        })
    }

    /// The same engine with other integer-mode kernels (`Kernels::Reference`: the oracle).
    pub fn with_kernels(mut self, k: Kernels) -> Self {
        self.kernels = k;
        self
    }

    /// The plan this engine interprets (the GPU engine runs the same one).
    pub fn plan(&self) -> &Plan<'g> {
        &self.plan
    }

    /// The prepared integer constants of weight layer `node` (integer mode), shared with the
    /// GPU engine so both run on identical numbers.
    pub fn int_layer(&self, node: usize) -> Option<IntLayer<'_>> {
        let p = self.plan.layer(node)?;
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
        let p = self.plan.layer(node)?;
        (self.mode != Mode::Integer).then_some(&p.w_f[..])
    }

    /// The per-tensor activation scale of a value (quantized modes).
    pub fn scale(&self, name: &str) -> Option<f32> {
        self.plan.scale(name)
    }

    /// Run one image, calling `observe(value_name, values)` for the input and every node
    /// output (dequantized in integer mode). Used for calibration.
    pub fn run_values(
        &self,
        input: &[f32],
        observe: &mut dyn FnMut(&str, &[f32]),
    ) -> Result<Vec<Vec<f32>>> {
        Ok(self.run_inner(input, Observe::Nothing, Some(observe))?.0)
    }

    /// Run one image (`input` in the model's layout, batch 1). Returns the FP32 graph
    /// outputs and, if `observe`, one [`LayerObs`] per weight layer.
    pub fn run(&self, input: &[f32], observe: bool) -> Result<(Vec<Vec<f32>>, Vec<LayerObs>)> {
        let o = if observe {
            Observe::WithOutputs
        } else {
            Observe::Nothing
        };
        self.run_inner(input, o, None)
    }

    /// [`Self::run`] observing the activity of every weight layer, with its output
    /// (`LayerObs::output`) only if `outputs` (copying every layer output costs time).
    pub fn run_activity(
        &self,
        input: &[f32],
        outputs: bool,
    ) -> Result<(Vec<Vec<f32>>, Vec<LayerObs>)> {
        let o = if outputs {
            Observe::WithOutputs
        } else {
            Observe::Activity
        };
        self.run_inner(input, o, None)
    }

    fn run_inner(
        &self,
        input: &[f32],
        observe: Observe,
        mut values: Option<&mut dyn FnMut(&str, &[f32])>,
    ) -> Result<(Vec<Vec<f32>>, Vec<LayerObs>)> {
        let g = self.graph;
        let mut vals: HashMap<&str, V> = HashMap::new();
        let x0 = match self.mode {
            Mode::Integer => {
                let s = self.plan.scales[&g.input];
                V::Q(kernels::quantize(input, s), s)
            }
            _ => V::F(input.to_vec()),
        };
        if let Some(f) = values.as_mut() {
            f(&g.input, &x0.to_f32());
        }
        vals.insert(g.input.as_str(), x0);
        let mut obs = Vec::new();
        for step in &self.plan.steps {
            let ins: Vec<&V> = step.inputs.iter().map(|n| &vals[n.as_str()]).collect();
            let out = match &step.kind {
                StepKind::Layer { .. } => self.layer(step, ins[0], observe, &mut obs),
                _ => self.step(step, &ins),
            };
            if let Some(f) = values.as_mut() {
                f(&step.output, &out.to_f32());
            }
            vals.insert(step.output.as_str(), out);
        }
        let outs = g
            .outputs
            .iter()
            .map(|o| vals[o.as_str()].to_f32())
            .collect();
        Ok((outs, obs))
    }

    /// Integer mode: quantize an FP32 intermediate back to INT8; other modes keep FP32.
    fn requant_f(&self, v: Vec<f32>, so: f32) -> V {
        if self.mode == Mode::Integer {
            V::Q(kernels::quantize(&v, so), so)
        } else {
            V::F(v)
        }
    }

    /// Every step but Conv/Dense.
    fn step(&self, step: &crate::exec::Step, ins: &[&V]) -> V {
        let kind = &step.kind;
        match kind {
            StepKind::Layer { .. } => unreachable!("layers run in `layer`"),
            StepKind::Clamp { lo, hi, flo, fhi } => match ins[0] {
                V::Q(q, s) => V::Q(kernels::clamp_i8(q, *lo, *hi), *s),
                V::F(f) => V::F(f.iter().map(|&v| v.max(*flo).min(*fhi)).collect()),
            },
            StepKind::Unary {
                op,
                alpha,
                beta,
                lut,
            } => match ins[0] {
                V::Q(q, _) => V::Q(kernels::lut_i8(q, lut), step.so),
                V::F(x) => V::F(kernels::unary_f32(x, *op, *alpha, *beta)),
            },
            StepKind::Binary { .. } => self.binary(kind, ins),
            StepKind::Sum { s, so } => self.sum(ins, s, *so),
            StepKind::Affine {
                scale,
                shift,
                inner,
                channels,
                si,
                so,
            } => match ins[0] {
                V::Q(q, _) => V::Q(
                    q.iter()
                        .enumerate()
                        .map(|(j, &v)| {
                            let ch = (j / inner) % channels;
                            kernels::quantize1(
                                (v as f32).mul_add(scale[ch] * si / so, shift[ch] / so),
                            )
                        })
                        .collect(),
                    *so,
                ),
                V::F(x) => V::F(
                    x.iter()
                        .enumerate()
                        .map(|(j, &v)| {
                            let ch = (j / inner) % channels;
                            v * scale[ch] + shift[ch]
                        })
                        .collect(),
                ),
            },
            StepKind::MaxPool { geom } => match ins[0] {
                V::Q(q, s) => V::Q(kernels::maxpool(q, geom, i8::MIN), *s),
                V::F(x) => V::F(kernels::maxpool(x, geom, f32::NEG_INFINITY)),
            },
            StepKind::AvgPool {
                geom,
                include_pad,
                m,
            } => match ins[0] {
                V::Q(q, _) => V::Q(kernels::avgpool_i8(q, geom, *include_pad, m), step.so),
                V::F(x) => V::F(kernels::avgpool_f32(x, geom, *include_pad)),
            },
            StepKind::Gap { hw, k, .. } => match ins[0] {
                V::Q(q, _) => V::Q(kernels::gap_i8(q, *hw, *k), step.so),
                V::F(x) => V::F(
                    x.chunks(*hw)
                        .map(|c| c.iter().sum::<f32>() / *hw as f32)
                        .collect(),
                ),
            },
            StepKind::Copy => match ins[0] {
                V::Q(q, s) => V::Q(q.clone(), *s),
                V::F(x) => V::F(x.clone()),
            },
            StepKind::Transpose { shape, perm } => match ins[0] {
                V::Q(q, s) => V::Q(transpose(q, shape, perm), *s),
                V::F(x) => V::F(transpose(x, shape, perm)),
            },
            StepKind::Concat {
                outer,
                parts,
                r,
                so,
            } => self.concat(ins, *outer, parts, r, *so),
            StepKind::Pad {
                shape,
                pads,
                mode,
                fill,
                qfill,
            } => match ins[0] {
                V::Q(q, s) => V::Q(kernels::pad(q, shape, pads, *mode, *qfill), *s),
                V::F(x) => V::F(kernels::pad(x, shape, pads, *mode, *fill)),
            },
            StepKind::ReduceMean { shape, axes, k, so } => match ins[0] {
                V::Q(q, _) => {
                    let (sums, _) = kernels::reduce_sum(q, shape, axes, |v| v as i32);
                    V::Q(
                        sums.iter()
                            .map(|&a| kernels::quantize1(a as f32 * k))
                            .collect(),
                        *so,
                    )
                }
                V::F(x) => {
                    let (sums, n) = kernels::reduce_sum(x, shape, axes, |v| v);
                    V::F(sums.iter().map(|v| v / n as f32).collect())
                }
            },
            StepKind::Select { index, in_per } => match ins[0] {
                V::Q(q, s) => V::Q(kernels::select(q, *in_per, index, 0), *s),
                V::F(x) => V::F(kernels::select(x, *in_per, index, 0.0)),
            },
            StepKind::ResizeLinear { h, w, rows, cols } => match ins[0] {
                V::Q(q, s) => V::Q(kernels::resize_linear_i8(q, *h, *w, rows, cols), *s),
                V::F(x) => V::F(kernels::resize_linear_f32(x, *h, *w, rows, cols)),
            },
            StepKind::Lrn {
                channels,
                plane,
                size,
                p,
                si,
                so,
            } => match ins[0] {
                V::Q(q, _) => V::Q(
                    kernels::lrn_i8(q, *channels, *plane, *p, *size, *si, *so),
                    *so,
                ),
                V::F(x) => V::F(kernels::lrn_f32(x, *channels, *plane, *p, *size)),
            },
            StepKind::Softmax { shape, axis } => {
                let t = Tensor::new(shape.clone(), ins[0].to_f32());
                V::F(super::reference::softmax(&t, *axis).data)
            }
        }
    }

    fn binary(&self, kind: &StepKind, ins: &[&V]) -> V {
        let StepKind::Binary {
            add,
            a_shape,
            b_shape,
            out_shape,
            constant,
            sa,
            sb,
            so,
        } = kind
        else {
            unreachable!("binary() on a Binary step")
        };
        let (add, so) = (*add, *so);
        match (ins[0], ins.get(1), constant) {
            (V::Q(qa, _), None, Some(c)) => {
                let qa = bcast(qa, a_shape, out_shape);
                let cb = broadcast_to(&c.data, b_shape, out_shape);
                let r = qa.iter().zip(&cb);
                let r: Vec<i8> = if add {
                    r.map(|(&q, &c)| kernels::quantize1((q as f32).mul_add(sa / so, c / so)))
                        .collect()
                } else {
                    r.map(|(&q, &c)| kernels::quantize1(q as f32 * (sa * c / so)))
                        .collect()
                };
                V::Q(r, so)
            }
            (V::Q(qa, _), Some(V::Q(qb, _)), None) => {
                let qa = bcast(qa, a_shape, out_shape);
                let qb = bcast(qb, b_shape, out_shape);
                let r = if add {
                    kernels::add_i8(&qa, &qb, sa / so, sb / so)
                } else {
                    kernels::mul_i8(&qa, &qb, 1, sa * sb / so)
                };
                V::Q(r, so)
            }
            (a, b, _) => {
                let y = match constant {
                    Some(c) => c.data.clone(),
                    None => b.map(|v| v.to_f32()).unwrap_or_default(),
                };
                let xs = broadcast_to(&a.to_f32(), a_shape, out_shape);
                let ys = broadcast_to(&y, b_shape, out_shape);
                let r = xs
                    .iter()
                    .zip(&ys)
                    .map(|(&p, &q)| if add { p + q } else { p * q })
                    .collect();
                self.requant_f(r, so)
            }
        }
    }

    fn sum(&self, ins: &[&V], s: &[f32], so: f32) -> V {
        let all_q = ins.iter().all(|v| matches!(v, V::Q(..)));
        if all_q && self.mode == Mode::Integer {
            let n = match ins[0] {
                V::Q(q, _) => q.len(),
                V::F(_) => 0,
            };
            let mut acc = vec![0f32; n];
            for (v, &sk) in ins.iter().zip(s) {
                if let V::Q(q, _) = v {
                    let r = sk / so;
                    acc.iter_mut()
                        .zip(q)
                        .for_each(|(a, &v)| *a = (v as f32).mul_add(r, *a));
                }
            }
            V::Q(acc.iter().map(|&v| kernels::quantize1(v)).collect(), so)
        } else {
            let mut acc = ins[0].to_f32();
            for v in &ins[1..] {
                acc.iter_mut().zip(v.to_f32()).for_each(|(a, b)| *a += b);
            }
            self.requant_f(acc, so)
        }
    }

    fn concat(&self, ins: &[&V], outer: usize, parts: &[usize], r: &[f32], so: f32) -> V {
        if ins.iter().all(|v| matches!(v, V::Q(..))) {
            let mut out = Vec::new();
            for o in 0..outer {
                for ((v, &c), &r) in ins.iter().zip(parts).zip(r) {
                    if let V::Q(q, _) = v {
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
            let fs: Vec<Vec<f32>> = ins.iter().map(|v| v.to_f32()).collect();
            let mut out = Vec::new();
            for o in 0..outer {
                for (f, &c) in fs.iter().zip(parts) {
                    out.extend_from_slice(&f[o * c..(o + 1) * c]);
                }
            }
            self.requant_f(out, so)
        }
    }

    fn layer(
        &self,
        step: &crate::exec::Step,
        x: &V,
        observe: Observe,
        obs: &mut Vec<LayerObs>,
    ) -> V {
        let StepKind::Layer {
            geom,
            ic,
            oc,
            out_n,
            s_in,
        } = &step.kind
        else {
            unreachable!("layer() on a Layer step")
        };
        let (ic, oc, out_n) = (*ic, *oc, *out_n);
        let plan = self.plan.layer(step.node).expect("layer constants");
        // Fake-quant: quantize-dequantize the layer input.
        let xf_owned;
        let x = match (self.mode, x) {
            (Mode::FakeQuant, V::F(f)) => {
                xf_owned = V::F(kernels::fake_quant(f, *s_in));
                &xf_owned
            }
            (Mode::Integer, V::F(f)) => {
                xf_owned = V::Q(kernels::quantize(f, *s_in), *s_in);
                &xf_owned
            }
            _ => x,
        };
        let out = match x {
            V::Q(q, _) => self.layer_int(plan, q, geom.as_ref(), ic, oc, out_n, &step.output),
            V::F(f) => self.layer_f32(plan, f, geom.as_ref(), ic, oc, out_n),
        };
        if observe != Observe::Nothing {
            let fast = self.kernels == Kernels::Fast;
            let mut o = observe_layer(plan, step.node, x, geom.as_ref(), ic, fast);
            if observe == Observe::WithOutputs {
                o.output = out.to_f32();
            }
            obs.push(o);
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn layer_int(
        &self,
        plan: &LayerConsts,
        q: &[i8],
        gm: Option<&kernels::ConvGeom>,
        ic: usize,
        oc: usize,
        out_n: usize,
        output: &str,
    ) -> V {
        let per_out = out_n / oc;
        let mut acc: Vec<i32> = filled(&plan.bias_q, gm.is_some(), per_out, out_n);
        let fast = self.kernels == Kernels::Fast;
        match gm {
            Some(gm) if fast && super::gemm::takes(gm) => {
                SCRATCH.with_borrow_mut(|s| super::gemm::conv_i8(q, &plan.w_qf, gm, &mut acc, s))
            }
            Some(gm) => kernels::conv2d(q, &plan.w_q, gm, &mut acc, |v| v as i32),
            None if fast => SCRATCH
                .with_borrow_mut(|s| super::gemm::dense_i8(q, &plan.w_qf, ic, oc, &mut acc, s)),
            None => kernels::dense(q, &plan.w_q, ic, oc, &mut acc, |v| v as i32),
        }
        if plan.float_out {
            V::F(kernels::dequantize_acc(
                &acc,
                &plan.m,
                per_out,
                oc,
                gm.is_none(),
            ))
        } else {
            let so = self.plan.scales[output];
            V::Q(
                kernels::requantize(&acc, &plan.m, per_out, oc, gm.is_none()),
                so,
            )
        }
    }

    fn layer_f32(
        &self,
        plan: &LayerConsts,
        f: &[f32],
        gm: Option<&kernels::ConvGeom>,
        ic: usize,
        oc: usize,
        out_n: usize,
    ) -> V {
        let mut acc: Vec<f32> = filled(&plan.bias_f, gm.is_some(), out_n / oc, out_n);
        // fp32 mode only: fake-quant keeps the reference kernels (its INT8 roundings would
        // magnify the fast GEMM's different summation order).
        let fast = self.kernels == Kernels::Fast && self.mode == Mode::Fp32;
        match gm {
            Some(gm) if fast && super::gemm::takes(gm) => {
                SCRATCH.with_borrow_mut(|s| super::gemm::conv_f32(f, &plan.w_f, gm, &mut acc, s))
            }
            Some(gm) if fast && super::dwconv::takes(gm) => SCRATCH.with_borrow_mut(|s| {
                super::dwconv::depthwise_f32(f, &plan.w_f, gm, &mut acc, &mut s.pad)
            }),
            Some(gm) => kernels::conv2d(f, &plan.w_f, gm, &mut acc, |v| v),
            None if fast => super::gemm::dense_f32(f, &plan.w_f, ic, oc, &mut acc),
            None => kernels::dense(f, &plan.w_f, ic, oc, &mut acc, |v| v),
        }
        V::F(acc)
    }
}

/// The activity of one weight layer on one image: zero activations, and MACs by weight
/// class whose activation is non-zero.
fn observe_layer(
    plan: &LayerConsts,
    node: usize,
    x: &V,
    gm: Option<&kernels::ConvGeom>,
    ic: usize,
    fast: bool,
) -> LayerObs {
    let nz: Vec<bool> = match x {
        V::Q(q, _) => q.iter().map(|&v| v != 0).collect(),
        V::F(f) => f.iter().map(|&v| v != 0.0).collect(),
    };
    let zeros = nz.iter().filter(|&&b| !b).count() as u64;
    let mut pairs_nz = [0u64; 3];
    let counts = match gm {
        Some(gm) if fast => super::taps::nonzero_taps(&nz, gm),
        Some(gm) => kernels::nonzero_taps(&nz, gm),
        None => {
            let mut col = vec![0u64; ic];
            for row in nz.chunks(ic) {
                for (c, &b) in col.iter_mut().zip(row) {
                    *c += b as u64;
                }
            }
            col
        }
    };
    for (n, h) in counts.iter().zip(&plan.class_hist) {
        for c in 0..3 {
            pairs_nz[c] += n * h[c];
        }
    }
    LayerObs {
        node,
        act_elems: nz.len() as u64,
        act_zeros: zeros,
        pairs_dense: plan.pairs_dense,
        pairs_nz,
        output: Vec::new(),
    }
}
