//! Graph -> [`Plan`]: the one place that matches on graph ops.

use std::collections::HashMap;

use super::ConvGeom;
use super::{LayerConsts, Mode, Plan, Scales, Step, StepKind};
use crate::cpu::kernels;
use crate::error::{Error, Result};
use crate::model::{Graph, LayerRef, Node, Op, Pool};
use crate::quant::{ModelQuant, WClass};

/// Largest INT32 bias magnitude allowed (see [`int_consts`]): 2^30.
const BIAS_HEADROOM: f32 = 1_073_741_824.0;

/// Convolution / pooling geometry of a node over one image.
#[allow(clippy::too_many_arguments)]
fn geom(
    graph: &Graph,
    node: &Node,
    k: [usize; 2],
    s: [usize; 2],
    d: [usize; 2],
    pads: [usize; 4],
    oc: usize,
    icg: usize,
    group: usize,
) -> ConvGeom {
    let i = graph.shape(&node.inputs[0]);
    let o = graph.shape(&node.output);
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

fn pool_geom(graph: &Graph, node: &Node, p: &Pool) -> ConvGeom {
    let c = graph.shape(&node.inputs[0])[1];
    geom(graph, node, p.kernel, p.strides, [1, 1], p.pads, c, 1, c)
}

/// The `unary1` op code and parameters of an elementwise activation.
fn unary_op(op: &Op) -> (u32, f32, f32) {
    match op {
        Op::Sigmoid => (0, 0.0, 0.0),
        Op::HardSwish => (1, 0.0, 0.0),
        Op::HardSigmoid { alpha, beta } => (2, *alpha, *beta),
        _ => unreachable!("unary_op on a non-activation"),
    }
}

/// Ops whose output takes its input's activation scale (calibration), so that they stay
/// exact in integer mode: shape-only ops, ReLU / Clip, max pooling, padding.
pub fn keeps_input_scale(op: &Op) -> bool {
    matches!(
        op,
        Op::Relu
            | Op::Clip { .. }
            | Op::MaxPool(_)
            | Op::Flatten { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Identity
            | Op::Pad { .. }
            | Op::Select { .. }
            | Op::ResizeLinear { .. }
    )
}

fn need(mode: Mode, what: &str) -> Error {
    Error::InvalidArg {
        arg: "mode".into(),
        reason: format!("{} mode needs {what}", mode.as_str()),
    }
}

impl<'g> Plan<'g> {
    /// Lower `graph` for `mode`. `quant` and `scales` are required for the quantized modes.
    pub fn new(
        graph: &'g Graph,
        mode: Mode,
        quant: Option<&ModelQuant>,
        scales: Option<&Scales>,
    ) -> Result<Self> {
        if mode != Mode::Fp32 && (quant.is_none() || scales.is_none()) {
            return Err(need(mode, "quantized weights and activation scales"));
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
            let float_out = graph.outputs.contains(&node.output)
                || consumers
                    .get(node.output.as_str())
                    .is_some_and(|c| c.iter().all(|o| matches!(o, Op::Softmax { .. })));
            let lq = quant.and_then(|q| q.layers.iter().find(|l| l.node == idx));
            let c = layer_consts(graph, idx, layer, mode, lq, &scales, float_out)?;
            layers.insert(idx, c);
        }
        let mut plan = Plan {
            graph,
            mode,
            scales,
            steps: Vec::with_capacity(graph.nodes.len()),
            layers,
        };
        for (i, node) in graph.nodes.iter().enumerate() {
            let kind = plan.lower(node);
            plan.steps.push(Step {
                node: i,
                inputs: node.inputs.clone(),
                output: node.output.clone(),
                so: plan.s(&node.output),
                kind,
            });
        }
        Ok(plan)
    }

    /// A value's scale (1 where there is none: fp32 mode).
    fn s(&self, name: &str) -> f32 {
        self.scales.get(name).copied().unwrap_or(1.0)
    }

    fn lower(&self, node: &Node) -> StepKind {
        let g = self.graph;
        let shape = |k: usize| g.shape(&node.inputs[k]).to_vec();
        let si = self.s(&node.inputs[0]);
        let so = self.s(&node.output);
        let integer = self.mode == Mode::Integer;
        match &node.op {
            Op::Conv(c) => StepKind::Layer {
                geom: Some(geom(
                    g,
                    node,
                    c.kernel(),
                    c.strides,
                    c.dilations,
                    c.pads,
                    c.out_channels(),
                    c.in_channels_per_group(),
                    c.group,
                )),
                ic: 0,
                oc: c.out_channels(),
                out_n: g.shape(&node.output).iter().product(),
                s_in: si,
            },
            Op::Dense(d) => StepKind::Layer {
                geom: None,
                ic: d.weight.shape[1],
                oc: d.weight.shape[0],
                out_n: g.shape(&node.output).iter().product(),
                s_in: si,
            },
            Op::Relu => StepKind::Clamp {
                lo: 0,
                hi: 127,
                flo: 0.0,
                fhi: f32::INFINITY,
            },
            Op::Clip { min, max } => {
                let q = |v: f32, dflt: i8| {
                    if v.is_finite() {
                        kernels::quantize1(v / si)
                    } else {
                        dflt
                    }
                };
                StepKind::Clamp {
                    lo: q(*min, -127),
                    hi: q(*max, 127),
                    flo: *min,
                    fhi: *max,
                }
            }
            Op::HardSigmoid { .. } | Op::HardSwish | Op::Sigmoid => {
                let (op, alpha, beta) = unary_op(&node.op);
                let lut = if integer {
                    kernels::activation_lut(|v| kernels::unary1(v, op, alpha, beta), si, so)
                } else {
                    Vec::new()
                };
                StepKind::Unary {
                    op,
                    alpha,
                    beta,
                    lut,
                }
            }
            Op::Add { constant } | Op::Mul { constant } => StepKind::Binary {
                add: matches!(node.op, Op::Add { .. }),
                a_shape: shape(0),
                b_shape: match constant {
                    Some(t) => t.shape.clone(),
                    None => shape(1),
                },
                out_shape: g.shape(&node.output).to_vec(),
                constant: constant.clone(),
                sa: si,
                sb: if constant.is_some() {
                    1.0
                } else {
                    self.s(&node.inputs[1])
                },
                so,
            },
            Op::Sum => StepKind::Sum {
                s: node.inputs.iter().map(|n| self.s(n)).collect(),
                so,
            },
            Op::Affine { scale, shift } => {
                let shp = shape(0);
                StepKind::Affine {
                    scale: scale.clone(),
                    shift: shift.clone(),
                    inner: shp[2..].iter().product(),
                    channels: shp[1],
                    si,
                    so,
                }
            }
            Op::MaxPool(p) => StepKind::MaxPool {
                geom: pool_geom(g, node, p),
            },
            Op::AveragePool(p) => {
                let geom = pool_geom(g, node, p);
                StepKind::AvgPool {
                    geom,
                    include_pad: p.count_include_pad,
                    m: if integer {
                        kernels::avgpool_factors(si, so, geom.kh * geom.kw)
                    } else {
                        Vec::new()
                    },
                }
            }
            Op::GlobalAveragePool => {
                let shp = shape(0);
                let hw: usize = shp[2..].iter().product();
                StepKind::Gap {
                    planes: shp[1],
                    hw,
                    k: si / (hw as f32 * so),
                }
            }
            Op::Flatten { .. }
            | Op::Reshape { .. }
            | Op::Identity
            | Op::Transpose { .. }
            | Op::Concat { .. }
            | Op::Pad { .. }
            | Op::ReduceMean { .. }
            | Op::Select { .. }
            | Op::ResizeLinear { .. }
            | Op::Lrn { .. }
            | Op::Softmax { .. } => self.lower_data(node),
        }
    }

    /// [`Self::lower`] for the data-movement and normalising ops (no weights).
    fn lower_data(&self, node: &Node) -> StepKind {
        let g = self.graph;
        let shape = |k: usize| g.shape(&node.inputs[k]).to_vec();
        let si = self.s(&node.inputs[0]);
        let so = self.s(&node.output);
        match &node.op {
            Op::Flatten { .. } | Op::Reshape { .. } | Op::Identity => StepKind::Copy,
            Op::Transpose { perm } => StepKind::Transpose {
                shape: shape(0),
                perm: perm.clone(),
            },
            Op::Concat { axis } => StepKind::Concat {
                outer: g.shape(&node.output)[..*axis].iter().product(),
                parts: (0..node.inputs.len())
                    .map(|k| g.shape(&node.inputs[k])[*axis..].iter().product())
                    .collect(),
                r: node.inputs.iter().map(|n| self.s(n) / so).collect(),
                so,
            },
            Op::Pad { pads, mode } => {
                let fill = match mode {
                    crate::model::PadMode::Constant(v) => *v,
                    _ => 0.0,
                };
                StepKind::Pad {
                    shape: shape(0),
                    pads: pads.clone(),
                    mode: *mode,
                    fill,
                    qfill: kernels::quantize1(fill / si),
                }
            }
            Op::ReduceMean { axes, .. } => {
                let shp = shape(0);
                let n: usize = axes.iter().map(|&a| shp[a]).product::<usize>().max(1);
                StepKind::ReduceMean {
                    shape: shp,
                    axes: axes.clone(),
                    k: si / (n as f32 * so),
                    so,
                }
            }
            Op::Select { index, .. } => StepKind::Select {
                index: index.clone(),
                in_per: shape(0).iter().product(),
            },
            Op::ResizeLinear { rows, cols } => {
                let shp = shape(0);
                StepKind::ResizeLinear {
                    h: shp[2],
                    w: shp[3],
                    rows: rows.clone(),
                    cols: cols.clone(),
                }
            }
            Op::Lrn {
                size,
                alpha,
                beta,
                bias,
            } => {
                let shp = shape(0);
                StepKind::Lrn {
                    channels: shp[1],
                    plane: shp[2..].iter().product(),
                    size: *size,
                    p: [*alpha, *beta, *bias],
                    si,
                    so,
                }
            }
            Op::Softmax { axis } => StepKind::Softmax {
                shape: shape(0),
                axis: *axis,
            },
            other => unreachable!("`lower` handles {}", other.name()),
        }
    }
}

/// The constants of one weight layer for `mode`.
fn layer_consts(
    graph: &Graph,
    idx: usize,
    layer: LayerRef,
    mode: Mode,
    lq: Option<&crate::quant::LayerQuant>,
    scales: &Scales,
    float_out: bool,
) -> Result<LayerConsts> {
    let node = &graph.nodes[idx];
    let w = layer.weight();
    let bias = match layer {
        LayerRef::Conv(c) => &c.bias,
        LayerRef::Dense(d) => &d.bias,
    };
    let oc = w.shape[0];
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
    let class_hist = class_histogram(layer, &class);
    let mut c = LayerConsts {
        class_hist,
        w_f,
        w_q: Vec::new(),
        w_qf: Vec::new(),
        headroom: Vec::new(),
        class,
        bias_q: Vec::new(),
        bias_f: bias.clone(),
        m: Vec::new(),
        float_out,
        pairs_dense,
    };
    if mode == Mode::Integer {
        let l = lq.ok_or_else(|| need(mode, "every weight layer quantized"))?;
        int_consts(&mut c, l, bias, scales[&node.inputs[0]], float_out, || {
            scales[&node.output]
        })?;
    }
    Ok(c)
}

/// Weights per class and input tap (see `LayerConsts::class_hist`).
fn class_histogram(layer: LayerRef, class: &[WClass]) -> Vec<[u64; 3]> {
    let (per_tap, taps_of) = match layer {
        LayerRef::Conv(c) => {
            let [kh, kw] = c.kernel();
            let (icg, k) = (c.in_channels_per_group(), kh * kw);
            let ocg = c.out_channels() / c.group;
            let f = move |wi: usize| {
                let (o, rest) = (wi / (icg * k), wi % (icg * k));
                (o / ocg) * icg * k + rest
            };
            (
                c.group * icg * k,
                Box::new(f) as Box<dyn Fn(usize) -> usize>,
            )
        }
        LayerRef::Dense(d) => {
            let ic = d.weight.shape[1];
            (
                ic,
                Box::new(move |wi: usize| wi % ic) as Box<dyn Fn(usize) -> usize>,
            )
        }
    };
    let mut h = vec![[0u64; 3]; per_tap];
    for (wi, c) in class.iter().enumerate() {
        h[taps_of(wi)][*c as usize] += 1;
    }
    h
}

/// Integer-mode weights, INT32 bias and requantization factors of one layer.
///
/// INT32 headroom: a channel whose bias would need more than 2^30 on the accumulator scale
/// (tiny weights after BatchNorm folding next to a real bias) gets a coarser weight scale,
/// so that bias + products never overflow INT32 (products stay below 256 * 127 * K, far
/// below 2^30 for K < 33k). Its weights are negligible against its bias at that scale.
fn int_consts(
    c: &mut LayerConsts,
    l: &crate::quant::LayerQuant,
    bias: &[f32],
    s_in: f32,
    float_out: bool,
    s_out: impl Fn() -> f32,
) -> Result<()> {
    if l.encoded.q.is_empty() || l.encoded.scale_per == 0 {
        return Err(Error::InvalidArg {
            arg: "mode".into(),
            reason: format!(
                "integer mode needs integer weights with per-channel scales; layer '{}' is '{}' (use fake-quant)",
                l.name, l.applied
            ),
        });
    }
    let s_out = if float_out { 1.0 } else { s_out() };
    let oc = bias.len();
    let per = l.encoded.q.len() / oc;
    let mut sw = l.encoded.scales.clone();
    c.w_q = l.encoded.q.clone();
    c.headroom = vec![1.0; oc];
    for o in 0..oc {
        let need = bias[o].abs() / (s_in * BIAS_HEADROOM);
        if need > sw[o] {
            let r = sw[o] / need;
            c.headroom[o] = r;
            for w in &mut c.w_q[o * per..(o + 1) * per] {
                *w = crate::quant::calib::rne(*w as f32 * r) as i32;
            }
            sw[o] = need;
        }
    }
    c.bias_q = crate::quant::calib::quantize_bias(bias, &sw, s_in);
    c.m = sw.iter().map(|&w| s_in * w / s_out).collect();
    c.w_qf = c.w_q.iter().map(|&v| v as f32).collect();
    debug_assert_eq!(l.encoded.scale_per, per);
    Ok(())
}
