//! An integer-mode [`Plan`] compiled for the batched executor: values in NHWC INT8 (FP32
//! for `float_out` layers), one op per step or per fused chain (Conv/Dense + requantize +
//! clamp + residual add + clamp), weights packed once, and arena slots from liveness.

use std::collections::HashMap;

use super::dw::DwW;
use super::gemm::{Isa, PackedW};
use crate::error::{Error, Result};
use crate::exec::{ConvGeom, Mode, Plan, StepKind};
use crate::model::Graph;

/// Shape of a value per image, stored row-major as `[h][w][c]` (NHWC); a flattened 4-D
/// tensor keeps the NHWC element order and remembers its NCHW dims (`nchw`), so that a
/// Dense reading it takes its weights permuted.
#[derive(Clone, Debug)]
pub struct Val {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub f32: bool,
    /// `(C, H, W)` of the 4-D tensor a flat value was made from, when `H * W > 1`
    pub nchw: Option<(usize, usize, usize)>,
    /// dequantization scale (INT8 values)
    pub scale: f32,
    /// the value whose storage this one shares (Flatten / Reshape / Identity)
    pub alias_of: Option<usize>,
}

impl Val {
    pub fn elems(&self) -> usize {
        self.h * self.w * self.c
    }
    pub fn bytes(&self) -> usize {
        self.elems() * if self.f32 { 4 } else { 1 }
    }
}

/// What a Conv/Dense does after its INT32 sum.
#[derive(Clone, Debug)]
pub struct EpiSpec {
    pub lo1: i32,
    pub hi1: i32,
    /// (other value, ra, rb, this layer's output is the first input)
    pub add: Option<(usize, f32, f32, bool)>,
    pub lo2: i32,
    pub hi2: i32,
    pub float_out: bool,
}

impl EpiSpec {
    fn plain(float_out: bool) -> Self {
        EpiSpec {
            lo1: -128,
            hi1: 127,
            add: None,
            lo2: -128,
            hi2: 127,
            float_out,
        }
    }
}

/// Statistics constants of one weight layer (in the plan's layer order).
pub struct LayerStat {
    pub node: usize,
    /// weights per class (High, Low, Zero) per input tap `ci * kh * kw + tap`, or per input
    /// feature in NCHW order (dense)
    pub class_hist: Vec<[u64; 3]>,
    pub pairs_dense: [u64; 3],
}

pub enum Kernel {
    /// Conv or Dense as a GEMM: `pw` one per group; `im2col` when the rows are gathered
    Gemm {
        geom: Option<ConvGeom>,
        pw: Vec<PackedW>,
        im2col: bool,
    },
    Depthwise {
        geom: ConvGeom,
        w: DwW,
    },
}

pub enum FOp {
    /// FP32 NCHW images to INT8 NHWC: `quantize1(v / scale)`
    Quantize {
        out: usize,
        scale: f32,
    },
    Layer {
        input: usize,
        out: usize,
        /// index into `Program::stats`
        layer: usize,
        kernel: Kernel,
        epi: EpiSpec,
    },
    MaxPool {
        input: usize,
        out: usize,
        geom: ConvGeom,
    },
    Gap {
        input: usize,
        out: usize,
        k: f32,
    },
    Add {
        a: usize,
        b: usize,
        out: usize,
        ra: f32,
        rb: f32,
    },
    Clamp {
        input: usize,
        out: usize,
        lo: i8,
        hi: i8,
    },
}

/// A plan compiled for the batched executor.
pub struct Program {
    pub isa: Isa,
    pub vals: Vec<Val>,
    pub ops: Vec<FOp>,
    pub output: usize,
    pub stats: Vec<LayerStat>,
    /// storage slot of every value (aliases share their source's)
    pub slot: Vec<usize>,
    /// bytes per image of each slot
    pub slot_bytes: Vec<usize>,
    /// per-image input elements (`[C, H, W]` of the model input, NCHW)
    pub input_chw: (usize, usize, usize),
}

fn unsupported(graph: &Graph, node: usize, why: &str) -> Error {
    let n = &graph.nodes[node];
    Error::Unsupported(format!(
        "node '{}' ({}): {why} in the batched executor",
        n.name,
        n.op.name()
    ))
}

/// `[C, H, W]` of a value (batch dim dropped); 2-D values are `[F, 1, 1]`.
fn chw(shape: &[usize]) -> Option<(usize, usize, usize)> {
    match shape {
        [_, c, h, w] => Some((*c, *h, *w)),
        [_, f] => Some((*f, 1, 1)),
        _ => None,
    }
}

struct Builder<'p, 'g> {
    plan: &'p Plan<'g>,
    vals: Vec<Val>,
    ids: HashMap<&'g str, usize>,
    ops: Vec<FOp>,
    stats: Vec<LayerStat>,
    /// steps folded into an earlier op's epilogue
    fused: Vec<bool>,
    consumers: HashMap<&'g str, Vec<usize>>,
    /// step index that produces each value name
    producer: HashMap<&'g str, usize>,
}

impl Program {
    /// Compile an integer-mode plan; `fuse` folds clamps and residual adds into the
    /// producing layer (off when every layer output is observed). An op the executor lacks
    /// is an error naming the node (the caller then runs the per-image engine).
    pub fn compile(plan: &Plan, fuse: bool, isa: Isa) -> Result<Program> {
        let g = plan.graph;
        if plan.mode != Mode::Integer {
            return Err(Error::Unsupported(format!(
                "the batched executor runs integer mode, not {}",
                plan.mode.as_str()
            )));
        }
        if g.outputs.len() != 1 {
            return Err(Error::Unsupported(
                "the batched executor runs single-output graphs".into(),
            ));
        }
        let mut b = Builder::new(plan);
        let (c, h, w) = chw(&g.input_shape)
            .filter(|_| g.input_shape.len() == 4)
            .ok_or_else(|| {
                Error::Unsupported("the batched executor needs an NCHW image input".into())
            })?;
        let s_in = plan.scale(&g.input).unwrap_or(1.0);
        let input = b.new_val(
            &g.input,
            Val {
                h,
                w,
                c,
                f32: false,
                nchw: None,
                scale: s_in,
                alias_of: None,
            },
        );
        b.ops.push(FOp::Quantize {
            out: input,
            scale: s_in,
        });
        for si in 0..plan.steps.len() {
            if !b.fused[si] {
                b.step(si, fuse)?;
            }
        }
        let output = *b
            .ids
            .get(g.outputs[0].as_str())
            .ok_or_else(|| Error::Unsupported("graph output not produced".into()))?;
        if b.vals[output].nchw.is_some() {
            return Err(Error::Unsupported(
                "a graph output in NHWC order (a flattened feature map)".into(),
            ));
        }
        let (slot, slot_bytes) = super::arena::assign(&b.vals, &b.ops, output);
        Ok(Program {
            isa,
            vals: b.vals,
            ops: b.ops,
            output,
            stats: b.stats,
            slot,
            slot_bytes,
            input_chw: (c, h, w),
        })
    }
}

impl<'p, 'g> Builder<'p, 'g> {
    fn new(plan: &'p Plan<'g>) -> Self {
        let g = plan.graph;
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut producer = HashMap::new();
        for (si, s) in plan.steps.iter().enumerate() {
            for i in &g.nodes[s.node].inputs {
                consumers.entry(i.as_str()).or_default().push(si);
            }
            producer.insert(g.nodes[s.node].output.as_str(), si);
        }
        Builder {
            plan,
            vals: Vec::new(),
            ids: HashMap::new(),
            ops: Vec::new(),
            stats: Vec::new(),
            fused: vec![false; plan.steps.len()],
            consumers,
            producer,
        }
    }

    fn new_val(&mut self, name: &'g str, v: Val) -> usize {
        self.vals.push(v);
        self.ids.insert(name, self.vals.len() - 1);
        self.vals.len() - 1
    }

    fn id(&self, si: usize, name: &str) -> Result<usize> {
        self.ids.get(name).copied().ok_or_else(|| {
            unsupported(
                self.plan.graph,
                self.plan.steps[si].node,
                "an input not produced by a supported op",
            )
        })
    }

    /// The single consumer step of `name`, unless it is a graph output.
    fn only_consumer(&self, name: &str) -> Option<usize> {
        if self.plan.graph.outputs.iter().any(|o| o == name) {
            return None;
        }
        match self.consumers.get(name).map(|v| &v[..]) {
            Some([c]) => Some(*c),
            _ => None,
        }
    }

    fn q_val(&self, like: usize, scale: f32) -> Val {
        Val {
            f32: false,
            scale,
            alias_of: None,
            nchw: None,
            ..self.vals[like].clone()
        }
    }

    fn step(&mut self, si: usize, fuse: bool) -> Result<()> {
        let plan = self.plan;
        let g = plan.graph;
        let st = &plan.steps[si];
        let node = &g.nodes[st.node];
        let out_name = node.output.as_str();
        let in0 = self.id(si, &node.inputs[0])?;
        if self.vals[in0].f32 && !matches!(st.kind, StepKind::Copy) {
            return Err(unsupported(g, st.node, "an op on an FP32 tensor"));
        }
        match &st.kind {
            StepKind::Layer { .. } => self.layer(si, in0, fuse)?,
            StepKind::Clamp { lo, hi, .. } => {
                let v = self.q_val(in0, self.vals[in0].scale);
                let out = self.new_val(out_name, v);
                self.ops.push(FOp::Clamp {
                    input: in0,
                    out,
                    lo: *lo,
                    hi: *hi,
                });
            }
            StepKind::MaxPool { geom } => {
                let v = Val {
                    h: geom.oh,
                    w: geom.ow,
                    ..self.q_val(in0, self.vals[in0].scale)
                };
                let out = self.new_val(out_name, v);
                self.ops.push(FOp::MaxPool {
                    input: in0,
                    out,
                    geom: *geom,
                });
            }
            StepKind::Gap { k, .. } => {
                let v = Val {
                    h: 1,
                    w: 1,
                    ..self.q_val(in0, st.so)
                };
                let out = self.new_val(out_name, v);
                self.ops.push(FOp::Gap {
                    input: in0,
                    out,
                    k: *k,
                });
            }
            kind if kind.residual_add().is_some() => {
                let (ra, rb, so) = kind.residual_add().expect("a residual add");
                let b = self.id(si, &node.inputs[1])?;
                if self.vals[b].f32 {
                    return Err(unsupported(g, st.node, "an add of an FP32 tensor"));
                }
                let out = self.new_val(out_name, self.q_val(in0, so));
                self.ops.push(FOp::Add {
                    a: in0,
                    b,
                    out,
                    ra,
                    rb,
                });
            }
            StepKind::Copy => {
                let shape = g.shape(out_name);
                let src = &self.vals[in0];
                let (c, h, w) = chw(shape).ok_or_else(|| {
                    unsupported(g, st.node, "a reshape to rank other than 2 or 4")
                })?;
                let nchw = if h * w == 1 && src.h * src.w > 1 {
                    Some((src.c, src.h, src.w))
                } else if (c, h, w) == (src.c, src.h, src.w) || (src.h * src.w == 1 && h * w == 1) {
                    src.nchw
                } else {
                    return Err(unsupported(g, st.node, "a reshape that reorders NHWC data"));
                };
                let root = src.alias_of.unwrap_or(in0);
                let v = Val {
                    h,
                    w,
                    c,
                    nchw,
                    alias_of: Some(root),
                    ..src.clone()
                };
                self.new_val(out_name, v);
            }
            _ => return Err(unsupported(g, st.node, "an op not supported")),
        }
        Ok(())
    }

    /// Conv/Dense with its fused chain.
    fn layer(&mut self, si: usize, in0: usize, fuse: bool) -> Result<()> {
        let plan = self.plan;
        let g = plan.graph;
        let st = &plan.steps[si];
        let StepKind::Layer { geom, ic, oc, .. } = &st.kind else {
            unreachable!("layer() on a Layer step")
        };
        let lc = plan
            .layer(st.node)
            .ok_or_else(|| unsupported(g, st.node, "a layer without constants"))?;
        let mut epi = EpiSpec::plain(lc.float_out);
        let mut out_name = g.nodes[st.node].output.as_str();
        let mut so = st.so;
        if fuse && !lc.float_out {
            out_name = self.fuse_chain(si, out_name, &mut epi, &mut so);
        }
        let src = self.vals[in0].clone();
        let kernel = match geom {
            Some(gm) => {
                if (src.c, src.h, src.w) != (gm.c, gm.h, gm.w) {
                    return Err(unsupported(
                        g,
                        st.node,
                        "a conv input that is not a 4-D map",
                    ));
                }
                conv_kernel(gm, lc)
            }
            None => dense_kernel(&src, *ic, *oc, lc),
        };
        let (h, w) = geom.map_or((1, 1), |gm| (gm.oh, gm.ow));
        let out = self.new_val(
            out_name,
            Val {
                h,
                w,
                c: *oc,
                f32: lc.float_out,
                nchw: None,
                scale: so,
                alias_of: None,
            },
        );
        // dense inputs are counted per NCHW feature (stats::dense_input maps NHWC back)
        self.stats.push(LayerStat {
            node: st.node,
            class_hist: lc.class_hist.clone(),
            pairs_dense: lc.pairs_dense,
        });
        let layer = self.stats.len() - 1;
        self.ops.push(FOp::Layer {
            input: in0,
            out,
            layer,
            kernel,
            epi,
        });
        Ok(())
    }

    /// Fold the clamp / add / clamp that follow a layer's output into `epi`; returns the
    /// name of the value the fused op now produces.
    fn fuse_chain(&mut self, si: usize, name: &'g str, epi: &mut EpiSpec, so: &mut f32) -> &'g str {
        let plan = self.plan;
        let g = plan.graph;
        let mut name = name;
        if let Some((lo, hi, out)) = self.fuse_clamp(name) {
            (epi.lo1, epi.hi1, name) = (lo, hi, out);
        }
        let Some(c) = self.only_consumer(name) else {
            return name;
        };
        let add = &plan.steps[c];
        let Some((ra, rb, so_add)) = add.kind.residual_add() else {
            return name;
        };
        let ins = &g.nodes[add.node].inputs;
        let first = ins[0] == name;
        let other = if first { &ins[1] } else { &ins[0] };
        if other == name {
            return name;
        }
        // the other operand must exist before this layer runs
        let ready = self.producer.get(other.as_str()).is_none_or(|&p| p < si);
        let Some(&ov) = self.ids.get(other.as_str()) else {
            return name;
        };
        if !ready || self.vals[ov].f32 {
            return name;
        }
        epi.add = Some((ov, ra, rb, first));
        *so = so_add;
        self.fused[c] = true;
        name = g.nodes[add.node].output.as_str();
        if let Some((lo, hi, out)) = self.fuse_clamp(name) {
            (epi.lo2, epi.hi2, name) = (lo, hi, out);
        }
        name
    }

    /// If `name`'s only consumer is a clamp, mark it fused and return its bounds and output.
    fn fuse_clamp(&mut self, name: &str) -> Option<(i32, i32, &'g str)> {
        let c = self.only_consumer(name)?;
        let StepKind::Clamp { lo, hi, .. } = self.plan.steps[c].kind else {
            return None;
        };
        self.fused[c] = true;
        let out = self.plan.graph.nodes[self.plan.steps[c].node]
            .output
            .as_str();
        Some((lo as i32, hi as i32, out))
    }
}

/// Conv weights for the depthwise kernel or as GEMM rows `(ky, kx, ci)` per group (the
/// order the NHWC im2col gathers).
fn conv_kernel(gm: &ConvGeom, lc: &crate::exec::LayerConsts) -> Kernel {
    if gm.icg == 1 && gm.group == gm.c && gm.oc == gm.c && gm.group > 1 {
        return Kernel::Depthwise {
            geom: *gm,
            w: DwW::new(gm, &lc.w_q, &lc.bias_q, &lc.m),
        };
    }
    let ocg = gm.oc / gm.group;
    let taps = gm.kh * gm.kw;
    let k = taps * gm.icg;
    let pw = (0..gm.group)
        .map(|grp| {
            let o0 = grp * ocg;
            PackedW::new(
                ocg,
                k,
                |o, kk| {
                    let (tap, ci) = (kk / gm.icg, kk % gm.icg);
                    lc.w_q[((o0 + o) * gm.icg + ci) * taps + tap]
                },
                &lc.bias_q[o0..o0 + ocg],
                &lc.m[o0..o0 + ocg],
            )
        })
        .collect();
    // rows read in place need a whole number of 4-byte groups
    let pointwise = gm.is_pointwise() && gm.c.is_multiple_of(4);
    Kernel::Gemm {
        geom: Some(*gm),
        pw,
        im2col: !pointwise,
    }
}

/// Dense weights, columns permuted to the NHWC order of a flattened feature map.
fn dense_kernel(src: &Val, ic: usize, oc: usize, lc: &crate::exec::LayerConsts) -> Kernel {
    let col = |k: usize| match src.nchw {
        // NHWC position k = (y * W + x) * C + c holds NCHW feature (c * H + y) * W + x
        Some((c, h, w)) => {
            let (pix, ch) = (k / c, k % c);
            (ch * h + pix / w) * w + pix % w
        }
        None => k,
    };
    let pw = PackedW::new(oc, ic, |o, k| lc.w_q[o * ic + col(k)], &lc.bias_q, &lc.m);
    Kernel::Gemm {
        geom: None,
        pw: vec![pw],
        im2col: !ic.is_multiple_of(4),
    }
}
