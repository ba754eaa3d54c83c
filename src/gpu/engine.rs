//! Whole-graph integer inference on the GPU: the CPU engine's integer plan (weights,
//! INT32 biases, requantization factors, activation scales) executed by the WGSL kernels
//! on a batch of images, with every intermediate tensor resident on the GPU. Bit-identical
//! to `cpu::engine` in integer mode (tested). fp32 and fake-quant modes run the `*_f32`
//! kernels and `fake_quant` (agreement within a tolerance: FP32 sums may be fused or
//! reassociated by the driver). Supports the ops of mnist-8 and
//! EfficientNet-Lite and squeeze-and-excitation blocks: Conv (any groups), Dense, Relu, Clip,
//! Sigmoid, HardSwish, HardSigmoid, MaxPool, AveragePool, GlobalAveragePool, residual Add,
//! Mul (same shape or per channel), Flatten/Reshape/Identity. Anything else (Pad, Concat,
//! Transpose, Softmax, ReduceMean, ...) is an error naming the node.

use std::collections::HashMap;

use bytemuck::{Pod, Zeroable};

use super::{GpuContext, conv_params};
use crate::cpu::engine::{Engine, Mode};
use crate::cpu::kernels::ConvGeom;
use crate::error::{Error, Result};
use crate::exec::StepKind;
use crate::model::Graph;
use crate::quant::config::Calib;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct P4([u32; 4]);

fn p4(a: u32, b: u32, c: u32, d: u32) -> P4 {
    P4([a, b, c, d])
}

enum Step {
    Conv {
        node: usize,
        geom: ConvGeom,
        per_image_out: usize,
    },
    Dense {
        node: usize,
        ic: usize,
        oc: usize,
        rows: usize,
    },
    Clamp {
        lo: i32,
        hi: i32,
        /// the same bounds on FP32 values (float modes)
        flo: f32,
        fhi: f32,
        per_image: usize,
    },
    MaxPool {
        geom: ConvGeom,
    },
    Gap {
        planes_per_image: usize,
        hw: usize,
        k: f32,
    },
    Add {
        ra: f32,
        rb: f32,
        per_image: usize,
    },
    /// Sigmoid / HardSwish / HardSigmoid: a LUT (integer) or `unary_f32` op (float)
    Unary {
        lut: wgpu::Buffer,
        op: u32,
        alpha: f32,
        beta: f32,
        per_image: usize,
    },
    /// product with a tensor of the same shape (b_div = 1) or one value per plane
    Mul {
        k: f32,
        b_div: usize,
        per_image: usize,
    },
    AvgPool {
        geom: ConvGeom,
        include_pad: bool,
        /// integer mode: factor per window count
        m: wgpu::Buffer,
    },
}

struct LayerBufs {
    w: wgpu::Buffer,
    bias: wgpu::Buffer,
    m: wgpu::Buffer,
    acc: wgpu::Buffer,
    float_out: bool,
    /// per output channel INT32-headroom factors (for `requantize`)
    headroom: wgpu::Buffer,
    /// INT8 codes and |w / s| of the layer, uploaded by `enable_requantize`
    codes: Option<(wgpu::Buffer, wgpu::Buffer)>,
    /// fake-quant: the layer's quantize-dequantized input
    xq: Option<(wgpu::Buffer, f32)>,
    /// integer weights packed four per u32 (`pack_i8x4`) for the `*_dp4a` kernels
    wp: Option<wgpu::Buffer>,
    /// whether `wp` holds the weights exactly: false while any weight is +128 (StruM can
    /// make +-128; a signed byte cannot hold +128), the layer then runs the portable kernel
    dp4a_exact: std::cell::Cell<bool>,
    /// largest |q8| of the layer's INT8 codes (`enable_requantize`; anchors the MIP2Q window)
    q8_max: i32,
}

impl LayerBufs {
    /// The packed weights, where the `*_dp4a` kernels compute exactly with them.
    fn packed(&self) -> Option<&wgpu::Buffer> {
        self.wp.as_ref().filter(|_| self.dp4a_exact.get())
    }
}

/// Integer weights packed four per u32 for the `*_dp4a` kernels, when the context uses
/// packed dot products and the engine runs integer mode.
fn packed_weights(
    ctx: &GpuContext,
    cpu: &Engine,
    i: usize,
    rows: usize,
    cols: usize,
) -> Option<wgpu::Buffer> {
    let l = cpu.int_layer(i).filter(|_| ctx.dp4a)?;
    Some(ctx.storage(&crate::cpu::kernels::pack_i8x4(l.w_q, rows, cols), false))
}

/// Do all integer weights fit a signed byte (so that `pack_i8x4` keeps them exactly)?
fn fits_i8(cpu: &Engine, i: usize) -> bool {
    cpu.int_layer(i)
        .is_some_and(|l| l.w_q.iter().all(|&v| (-128..=127).contains(&v)))
}

/// Buffers of one weight layer: integer weights, INT32 bias and requantization factors
/// (integer mode), or FP32 weights and bias (fp32 / fake-quant; `m`, `acc` and `headroom`
/// are then unused one-element buffers, `xq` holds the fake-quantized input).
fn layer_bufs(
    ctx: &GpuContext,
    cpu: &Engine,
    i: usize,
    out_elems: usize,
    batch: usize,
) -> Result<LayerBufs> {
    let n = &cpu.graph.nodes[i];
    let missing = || {
        Error::Gpu(format!(
            "node '{}': layer not prepared by the CPU engine",
            n.name
        ))
    };
    if cpu.mode == Mode::Integer {
        let l = cpu.int_layer(i).ok_or_else(missing)?;
        return Ok(LayerBufs {
            w: ctx.storage(l.w_q, false),
            bias: ctx.storage(l.bias_q, false),
            m: ctx.storage(l.m, false),
            acc: ctx.scratch((4 * out_elems * batch) as u64),
            float_out: l.float_out,
            headroom: ctx.storage(l.headroom, false),
            codes: None,
            xq: None,
            wp: None,
            dp4a_exact: std::cell::Cell::new(fits_i8(cpu, i)),
            q8_max: 0,
        });
    }
    let w = cpu.float_weights(i).ok_or_else(missing)?;
    let bias = &cpu.plan().layer(i).ok_or_else(missing)?.bias_f;
    let in_elems: usize = cpu.graph.shape(&n.inputs[0]).iter().product();
    Ok(LayerBufs {
        w: ctx.storage(w, false),
        bias: ctx.storage(bias, false),
        m: ctx.scratch(4),
        acc: ctx.scratch(4),
        float_out: true,
        headroom: ctx.scratch(4),
        codes: None,
        xq: match cpu.mode {
            Mode::FakeQuant => Some((
                ctx.scratch((4 * in_elems * batch) as u64),
                cpu.scale(&n.inputs[0]).ok_or_else(missing)?,
            )),
            _ => None,
        },
        wp: None,
        dp4a_exact: std::cell::Cell::new(false),
        q8_max: 0,
    })
}

/// A labelled dataset resident on the GPU ([`GpuEngine::upload`]).
pub struct Resident {
    images: wgpu::Buffer,
    labels: wgpu::Buffer,
    reference: wgpu::Buffer,
    top1: wgpu::Buffer,
    pub n: usize,
}

pub struct GpuEngine<'a> {
    ctx: &'a GpuContext,
    graph: &'a Graph,
    pub batch: usize,
    steps: Vec<(Step, Vec<String>, String)>,
    layers: HashMap<usize, LayerBufs>,
    /// value name -> (buffer, elements per image, FP32?)
    values: HashMap<String, (std::rc::Rc<wgpu::Buffer>, usize, bool)>,
    input_f32: wgpu::Buffer,
    input_scale: f32,
    output: String,
    output_scale: f32,
    codes_calib: Option<(Calib, f32)>,
    /// fp32 / fake-quant mode: every value FP32, the `*_f32` kernels
    float: bool,
    /// activation scale of every value (integer mode)
    scales_out: HashMap<String, f32>,
}

impl<'a> GpuEngine<'a> {
    /// Prepare `cpu` (an integer-mode engine) for batches of up to `batch` images.
    pub fn new(ctx: &'a GpuContext, cpu: &Engine<'a>, batch: usize) -> Result<Self> {
        let float = cpu.mode != Mode::Integer;
        let g = cpu.graph;
        let unsupported = |n: &crate::model::Node, why: &str| {
            Error::Gpu(format!(
                "node '{}' ({}): {why}; use --device cpu",
                n.name,
                n.op.name()
            ))
        };
        // Largest tensor per image bounds the batch (one storage binding each).
        let max_elems = g
            .shapes
            .values()
            .map(|s| s.iter().product::<usize>())
            .max()
            .unwrap_or(1);
        let limit = ctx.limits.max_storage_buffer_binding_size as usize;
        let batch = batch.clamp(1, (limit / (4 * max_elems)).max(1));
        let mut steps = Vec::new();
        let mut layers = HashMap::new();
        let mut values: HashMap<String, (std::rc::Rc<wgpu::Buffer>, usize, bool)> = HashMap::new();
        let per = |name: &str| g.shape(name).iter().product::<usize>();
        let new_buf = |n: usize| std::rc::Rc::new(ctx.scratch((4 * n * batch) as u64));
        let input_scale = match cpu.scale(&g.input) {
            Some(s) => s,
            None if float => 1.0,
            None => return Err(Error::Gpu("no input scale".into())),
        };
        values.insert(
            g.input.clone(),
            (new_buf(per(&g.input)), per(&g.input), float),
        );
        for ps in &cpu.plan().steps {
            let (i, n) = (ps.node, &g.nodes[ps.node]);
            let out_elems = per(&n.output);
            let step = match &ps.kind {
                StepKind::Layer {
                    geom: Some(geom), ..
                } => {
                    let mut l = layer_bufs(ctx, cpu, i, out_elems, batch)?;
                    if geom.is_pointwise() {
                        l.wp = packed_weights(ctx, cpu, i, geom.oc, geom.icg);
                    }
                    layers.insert(i, l);
                    Step::Conv {
                        node: i,
                        geom: *geom,
                        per_image_out: out_elems,
                    }
                }
                StepKind::Layer {
                    geom: None, ic, oc, ..
                } => {
                    let mut l = layer_bufs(ctx, cpu, i, out_elems, batch)?;
                    l.wp = packed_weights(ctx, cpu, i, *oc, *ic);
                    layers.insert(i, l);
                    Step::Dense {
                        node: i,
                        ic: *ic,
                        oc: *oc,
                        rows: out_elems / oc,
                    }
                }
                StepKind::Clamp { lo, hi, flo, fhi } => Step::Clamp {
                    lo: *lo as i32,
                    hi: *hi as i32,
                    flo: flo.max(f32::MIN),
                    fhi: fhi.min(f32::MAX),
                    per_image: out_elems,
                },
                StepKind::MaxPool { geom } => Step::MaxPool { geom: *geom },
                StepKind::Gap { planes, hw, k } => Step::Gap {
                    planes_per_image: *planes,
                    hw: *hw,
                    k: *k,
                },
                kind if kind.residual_add().is_some() => {
                    let (ra, rb, _) = kind.residual_add().expect("a residual add");
                    Step::Add {
                        ra,
                        rb,
                        per_image: out_elems,
                    }
                }
                StepKind::Unary {
                    op,
                    alpha,
                    beta,
                    lut,
                } => {
                    let lut: Vec<i32> = if lut.is_empty() {
                        vec![0]
                    } else {
                        lut.iter().map(|&v| v as i32).collect()
                    };
                    Step::Unary {
                        lut: ctx.storage(&lut, false),
                        op: *op,
                        alpha: *alpha,
                        beta: *beta,
                        per_image: out_elems,
                    }
                }
                StepKind::Binary {
                    add: false,
                    constant: None,
                    a_shape: sa,
                    b_shape: sb,
                    sa: ka,
                    sb: kb,
                    so,
                    ..
                } => {
                    let per_channel = sb.len() == 4
                        && sa.len() == 4
                        && sb[1] == sa[1]
                        && sb[2] == 1
                        && sb[3] == 1
                        && sb[0] == sa[0];
                    let b_div = if sa == sb {
                        1
                    } else if per_channel {
                        sa[2] * sa[3]
                    } else {
                        return Err(unsupported(
                            n,
                            "Mul broadcasting other than per channel is not on the GPU yet",
                        ));
                    };
                    Step::Mul {
                        k: ka * kb / so,
                        b_div,
                        per_image: out_elems,
                    }
                }
                StepKind::AvgPool {
                    geom,
                    include_pad,
                    m,
                } => {
                    let m = if m.is_empty() { vec![0.0] } else { m.clone() };
                    Step::AvgPool {
                        geom: *geom,
                        include_pad: *include_pad,
                        m: ctx.storage(&m, false),
                    }
                }
                StepKind::Copy => {
                    let v = values
                        .get(&n.inputs[0])
                        .cloned()
                        .ok_or_else(|| unsupported(n, "input not on the GPU"))?;
                    values.insert(n.output.clone(), (v.0, out_elems, v.2));
                    continue;
                }
                _ => return Err(unsupported(n, "not supported by the GPU engine yet")),
            };
            let float_out = matches!(step, Step::Conv { node, .. } | Step::Dense { node, .. } if layers[&node].float_out);
            if !float && values.get(&n.inputs[0]).is_some_and(|v| v.2) {
                return Err(unsupported(n, "consumes an FP32 tensor"));
            }
            values.insert(
                n.output.clone(),
                (new_buf(out_elems), out_elems, float_out || float),
            );
            steps.push((step, n.inputs.clone(), n.output.clone()));
        }
        let output = g.outputs[0].clone();
        let output_scale = cpu.scale(&output).unwrap_or(1.0);
        let input_f32 = ctx.scratch((4 * per(&g.input) * batch) as u64);
        Ok(GpuEngine {
            ctx,
            graph: g,
            batch,
            steps,
            layers,
            values,
            input_f32,
            input_scale,
            output,
            output_scale,
            codes_calib: None,
            float,
            scales_out: g
                .nodes
                .iter()
                .filter_map(|n| cpu.scale(&n.output).map(|s| (n.output.clone(), s)))
                .collect(),
        })
    }

    /// Run up to `batch` images (`images` holds them back to back, model layout) and return
    /// the FP32 graph output of each.
    pub fn run(&self, images: &[f32]) -> Result<Vec<Vec<f32>>> {
        let (enc, n) = self.encode_forward(images)?;
        let ctx = self.ctx;
        let (ob, per_out, is_f32) = &self.values[&self.output];
        let flat: Vec<f32> = if *is_f32 {
            ctx.read_back::<f32>(enc, ob, per_out * n)?
        } else {
            ctx.read_back::<i32>(enc, ob, per_out * n)?
                .into_iter()
                .map(|q| q as f32 * self.output_scale)
                .collect()
        };
        Ok(flat.chunks(*per_out).map(|c| c.to_vec()).collect())
    }

    /// Upload every weight layer's INT8 codes and |w / s| under `calib` once, so that
    /// [`Self::requantize`] can re-quantize the resident weights for other StruM settings.
    pub fn enable_requantize(&mut self, calib: Calib, pct: f32) {
        self.codes_calib = Some((calib, pct));
        for (node, layer) in self.graph.layers() {
            let Some(l) = self.layers.get_mut(&node) else {
                continue;
            };
            let w = layer.weight();
            let g = crate::quant::geometry::layer_geometry(
                layer,
                crate::quant::config::BlockAxis::Ic,
                crate::quant::config::Depthwise::Int8,
                8,
            );
            let (_, ratio, q8) =
                crate::quant::schemes::int8_codes(&w.data, w.shape[0], g, calib, pct);
            l.q8_max = q8.iter().map(|v| v.abs()).max().unwrap_or(0);
            l.codes = Some((
                self.ctx.storage(&q8, false),
                self.ctx.storage(&ratio, false),
            ));
        }
    }

    /// Re-quantize the resident weights for `cfg` with the `strum_quantize` kernel (no
    /// upload): INT8, or MIP2Q / DLIQ with static L and magnitude selection, under the
    /// weight calibration given to [`Self::enable_requantize`]. Biases, requantization
    /// factors and activation scales do not depend on these settings, so the engine then
    /// computes exactly what an engine built for `cfg` would (tested).
    pub fn requantize(&self, cfg: &crate::quant::QuantConfig) -> Result<()> {
        use crate::quant::Scheme;
        use crate::quant::config::{DliqShift, LPolicy, P2Window, Selection};
        let unsupported = |why: &str| Err(Error::Gpu(format!("requantize on the GPU: {why}")));
        if self.float {
            return unsupported("integer mode only (fake-quant weights are FP32)");
        }
        match self.codes_calib {
            Some((c, p)) if c == cfg.weight_calib && p == cfg.percentile => {}
            Some(_) => return unsupported("weight calibration differs from enable_requantize's"),
            None => return unsupported("call enable_requantize first"),
        }
        if !matches!(cfg.scheme, Scheme::Int8 | Scheme::Mip2q | Scheme::Dliq) {
            return unsupported("only INT8, MIP2Q and DLIQ");
        }
        if cfg.scheme != Scheme::Int8
            && (cfg.selection != Selection::Magnitude || cfg.l_policy != LPolicy::Static)
        {
            return unsupported("only magnitude selection with a static L");
        }
        let d = crate::quant::QuantConfig::default();
        if cfg.scheme.is_strum()
            && (cfg.refit != d.refit
                || cfg.demote_from != d.demote_from
                || cfg.dliq_shift_rule != d.dliq_shift_rule
                || cfg.dliq_shift == DliqShift::Channel
                || cfg.p2_window == P2Window::Auto)
        {
            return unsupported(
                "refit, demote-from ratio, the rounding shift rule, channel shifts and the auto \
                 MIP2Q window are CPU-only",
            );
        }
        cfg.validate()?;
        let layers = self.graph.layers();
        let n = layers.len();
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        for (pos, (node, layer)) in layers.into_iter().enumerate() {
            let l = &self.layers[&node];
            let (q8, ratio) = l
                .codes
                .as_ref()
                .expect("enable_requantize uploaded every layer");
            // A per-layer setting replaces the scheme, L and the layer policy.
            let own = cfg.layers.get(&self.graph.nodes[node].name);
            let kept = own.is_none() && crate::quant::kept_int8(cfg, pos, n, layer).is_some();
            let (lscheme, llow) = own.map_or((cfg.scheme, cfg.low), |s| (s.scheme, s.low));
            let g = crate::quant::geometry::layer_geometry(
                layer,
                cfg.block_axis,
                cfg.depthwise,
                cfg.block,
            );
            let scheme = match lscheme {
                _ if kept => 0,
                Scheme::Mip2q => 1,
                Scheme::Dliq => 2,
                _ => 0,
            };
            let w = layer.weight();
            let (emin, emax) = match cfg.p2_window {
                P2Window::Anchored => crate::quant::lowp::anchored_window(l.q8_max),
                _ => (cfg.p2_min_exp, cfg.p2_max_exp),
            };
            let block_shift = cfg.dliq_shift == DliqShift::Block;
            // Can this layer get a weight of +128 (MIP2Q 2^7; DLIQ 4 << 5, k = 5 only when a
            // demoted |q8| exceeds 7 << 4)? Then the portable kernels run it.
            let wide = match scheme {
                1 => emax >= 7,
                2 => block_shift && l.q8_max > 7 << 4,
                _ => false,
            };
            l.dp4a_exact.set(!wide);
            let p = crate::cpu::kernels::StrumQuantParams {
                geometry: g,
                low: if scheme == 0 { 0 } else { llow },
                scheme,
                emin,
                emax,
                p2_round: cfg.p2_round,
                block_shift,
                per_channel: w.numel() / w.shape[0].max(1),
            };
            self.ctx
                .encode_strum_quantize(&mut enc, &p, q8, ratio, &l.headroom, &l.w)?;
            if let (Some(wp), false) = (&l.wp, wide) {
                let (rows, cols) = (w.shape[0], w.numel() / w.shape[0].max(1));
                let c4 = cols.div_ceil(4);
                self.ctx.encode(
                    &mut enc,
                    "pack_i8x4",
                    bytemuck::bytes_of(&p4(rows as u32, cols as u32, c4 as u32, 0)),
                    &[&l.w, wp],
                    (rows * c4) as u32,
                )?;
            }
        }
        self.ctx.queue.submit([enc.finish()]);
        Ok(())
    }

    /// Run a batch and reduce its logits on the GPU with `topk_count` (top-5): only the
    /// top-1 class of each image and the counts `[top-1 hits, top-5 hits, agreements with
    /// reference, labelled]` come back. `labels` / `reference`: one per image, -1 = none.
    pub fn run_topk(
        &self,
        images: &[f32],
        labels: &[i32],
        reference: &[i32],
    ) -> Result<(Vec<i32>, [u32; 4])> {
        let (mut enc, n) = self.encode_forward(images)?;
        if labels.len() != n || reference.len() != n {
            return Err(Error::Gpu(format!(
                "run_topk: {n} images but {} labels and {} references",
                labels.len(),
                reference.len()
            )));
        }
        let ctx = self.ctx;
        let (ob, per_out, is_f32) = &self.values[&self.output];
        let (lb, rb) = (ctx.storage(labels, false), ctx.storage(reference, false));
        let top1 = ctx.scratch((n * 4) as u64);
        let counts = ctx.scratch(16);
        ctx.encode(
            &mut enc,
            "topk_count",
            bytemuck::bytes_of(&p4(n as u32, *per_out as u32, !*is_f32 as u32, 0)),
            &[ob, &lb, &rb, &top1, &counts],
            n as u32,
        )?;
        let c: Vec<u32> = ctx.read_back(enc, &counts, 4)?;
        let enc = ctx.device.create_command_encoder(&Default::default());
        let t: Vec<i32> = ctx.read_back(enc, &top1, n)?;
        Ok((t, [c[0], c[1], c[2], c[3]]))
    }

    /// Upload a whole labelled dataset once (images back to back, model layout; labels -1 =
    /// none), to be evaluated by [`Self::count_resident`] for any number of configurations.
    /// Errors when it exceeds the adapter's buffer limits (then evaluate batch by batch).
    pub fn upload(&self, images: &[f32], labels: &[i32]) -> Result<Resident> {
        let per_in: usize = self.graph.input_shape.iter().product();
        let n = images.len() / per_in.max(1);
        if n == 0 || images.len() != n * per_in || labels.len() != n {
            return Err(Error::Gpu(format!(
                "upload: {} values are not {} labelled images",
                images.len(),
                labels.len()
            )));
        }
        let bytes = (images.len() * 4) as u64;
        let lim = &self.ctx.limits;
        if bytes > lim.max_storage_buffer_binding_size || bytes > lim.max_buffer_size {
            return Err(Error::Gpu(format!(
                "a dataset of {} MiB exceeds the adapter's storage buffer limit ({} MiB)",
                bytes >> 20,
                lim.max_storage_buffer_binding_size >> 20
            )));
        }
        Ok(Resident {
            images: self.ctx.storage(images, false),
            labels: self.ctx.storage(labels, false),
            reference: self.ctx.storage(&vec![-1i32; n], false),
            top1: self.ctx.scratch((n * 4) as u64),
            n,
        })
    }

    /// Evaluate every image of a resident dataset: batches are recorded and submitted back
    /// to back without waiting, `topk_count` accumulates into one counts buffer, and only
    /// the four counts `[top-1 hits, top-5 hits, agreements, labelled]` are read back.
    pub fn count_resident(&self, data: &Resident) -> Result<[u32; 4]> {
        let ctx = self.ctx;
        let (ob, per_out, is_f32) = &self.values[&self.output];
        let counts = ctx.scratch(16);
        let mut done = 0;
        let mut last = None;
        while done < data.n {
            let m = self.batch.min(data.n - done);
            let mut enc = self.encode_forward_src(&data.images, done, m)?;
            ctx.encode(
                &mut enc,
                "topk_count",
                bytemuck::bytes_of(&p4(m as u32, *per_out as u32, !*is_f32 as u32, done as u32)),
                &[ob, &data.labels, &data.reference, &data.top1, &counts],
                m as u32,
            )?;
            done += m;
            if done < data.n {
                ctx.queue.submit([enc.finish()]);
            } else {
                last = Some(enc);
            }
        }
        let enc = last.expect("at least one batch");
        let c: Vec<u32> = ctx.read_back(enc, &counts, 4)?;
        Ok([c[0], c[1], c[2], c[3]])
    }

    /// Top-1 class of every image of the last [`Self::count_resident`] on `data`.
    pub fn resident_top1(&self, data: &Resident) -> Result<Vec<i32>> {
        let enc = self.ctx.device.create_command_encoder(&Default::default());
        self.ctx.read_back(enc, &data.top1, data.n)
    }

    /// Run a batch and read back the output of every weight layer (as FP32; integer values
    /// dequantized with their scale), keyed by node index: for per-layer comparisons.
    pub fn run_layers(&self, images: &[f32]) -> Result<Vec<(usize, Vec<f32>)>> {
        let ctx = self.ctx;
        let (enc, n) = self.encode_forward(images)?;
        ctx.queue.submit([enc.finish()]);
        let mut out = Vec::new();
        for (step, _, name) in &self.steps {
            let node = match step {
                Step::Conv { node, .. } | Step::Dense { node, .. } => *node,
                _ => continue,
            };
            let (buf, per, is_f32) = &self.values[name];
            let enc = ctx.device.create_command_encoder(&Default::default());
            let v: Vec<f32> = if *is_f32 {
                ctx.read_back::<f32>(enc, buf, per * n)?
            } else {
                let s = self.scales_out.get(name).copied().unwrap_or(1.0);
                ctx.read_back::<i32>(enc, buf, per * n)?
                    .into_iter()
                    .map(|q| q as f32 * s)
                    .collect()
            };
            out.push((node, v));
        }
        Ok(out)
    }

    /// Record one step of the fp32 / fake-quant forward pass.
    fn encode_float(
        &self,
        enc: &mut wgpu::CommandEncoder,
        step: &Step,
        ins: &[String],
        out: &str,
        n: usize,
    ) -> Result<()> {
        let ctx = self.ctx;
        let x = &self.values[&ins[0]].0;
        let y = &self.values[out].0;
        let nn = |v: usize| (v * n) as u32;
        // Fake-quant: the layer reads its quantize-dequantized input.
        let layer_input = |node: &usize, enc: &mut wgpu::CommandEncoder| -> Result<&wgpu::Buffer> {
            let l = &self.layers[node];
            match &l.xq {
                Some((xq, s)) => {
                    #[repr(C)]
                    #[derive(Clone, Copy, Pod, Zeroable)]
                    struct F(u32, f32, u32, u32);
                    let elems = nn(self.values[&ins[0]].1);
                    ctx.encode(
                        enc,
                        "fake_quant",
                        bytemuck::bytes_of(&F(elems, *s, 0, 0)),
                        &[x, xq],
                        elems,
                    )?;
                    Ok(xq)
                }
                None => Ok(x),
            }
        };
        match step {
            Step::Conv {
                node,
                geom,
                per_image_out,
            } => {
                let xin = layer_input(node, enc)?;
                let l = &self.layers[node];
                #[repr(C)]
                #[derive(Clone, Copy, Pod, Zeroable)]
                struct C([u32; 20]);
                if geom.is_pointwise() {
                    let hw = geom.h * geom.w;
                    ctx.encode(
                        enc,
                        "conv1x1_f32",
                        bytemuck::bytes_of(&p4(
                            n as u32,
                            geom.icg as u32,
                            geom.oc as u32,
                            hw as u32,
                        )),
                        &[xin, &l.w, &l.bias, y],
                        ctx.conv1x1_invocations(n, geom.oc, hw),
                    )?;
                } else {
                    ctx.encode(
                        enc,
                        "conv2d_f32",
                        bytemuck::bytes_of(&C(conv_params(geom, n))),
                        &[xin, &l.w, &l.bias, y],
                        nn(*per_image_out),
                    )?;
                }
            }
            Step::Dense { node, ic, oc, rows } => {
                let xin = layer_input(node, enc)?;
                let l = &self.layers[node];
                let r = (rows * n) as u32;
                ctx.encode(
                    enc,
                    "dense_f32",
                    bytemuck::bytes_of(&p4(r, *ic as u32, *oc as u32, 0)),
                    &[xin, &l.w, &l.bias, y],
                    ctx.dense_invocations(r as usize, *oc),
                )?;
            }
            Step::Clamp {
                flo,
                fhi,
                per_image,
                ..
            } => {
                #[repr(C)]
                #[derive(Clone, Copy, Pod, Zeroable)]
                struct K(u32, f32, f32, u32);
                ctx.encode(
                    enc,
                    "clamp_f32",
                    bytemuck::bytes_of(&K(nn(*per_image), *flo, *fhi, 0)),
                    &[x, y],
                    nn(*per_image),
                )?;
            }
            Step::MaxPool { geom } => {
                #[repr(C)]
                #[derive(Clone, Copy, Pod, Zeroable)]
                struct M([u32; 12]);
                ctx.encode(
                    enc,
                    "maxpool_f32",
                    bytemuck::bytes_of(&M(super::maxpool_params(geom, n))),
                    &[x, y],
                    nn(geom.c * geom.oh * geom.ow),
                )?;
            }
            Step::Gap {
                planes_per_image,
                hw,
                ..
            } => {
                ctx.encode(
                    enc,
                    "gap_f32",
                    bytemuck::bytes_of(&p4(nn(*planes_per_image), *hw as u32, 0, 0)),
                    &[x, y],
                    nn(*planes_per_image),
                )?;
            }
            Step::Unary {
                op,
                alpha,
                beta,
                per_image,
                ..
            } => {
                #[repr(C)]
                #[derive(Clone, Copy, Pod, Zeroable)]
                struct U(u32, u32, f32, f32);
                ctx.encode(
                    enc,
                    "unary_f32",
                    bytemuck::bytes_of(&U(nn(*per_image), *op, *alpha, *beta)),
                    &[x, y],
                    nn(*per_image),
                )?;
            }
            Step::Mul {
                b_div, per_image, ..
            } => {
                let b = &self.values[&ins[1]].0;
                ctx.encode(
                    enc,
                    "mul_f32",
                    bytemuck::bytes_of(&p4(nn(*per_image), *b_div as u32, 0, 0)),
                    &[x, b, y],
                    nn(*per_image),
                )?;
            }
            Step::AvgPool {
                geom, include_pad, ..
            } => {
                #[repr(C)]
                #[derive(Clone, Copy, Pod, Zeroable)]
                struct M([u32; 12]);
                let mut p = super::maxpool_params(geom, n);
                p[11] = *include_pad as u32;
                ctx.encode(
                    enc,
                    "avgpool_f32",
                    bytemuck::bytes_of(&M(p)),
                    &[x, y],
                    nn(geom.c * geom.oh * geom.ow),
                )?;
            }
            Step::Add { per_image, .. } => {
                let b = &self.values[&ins[1]].0;
                ctx.encode(
                    enc,
                    "add_f32",
                    bytemuck::bytes_of(&p4(nn(*per_image), 0, 0, 0)),
                    &[x, b, y],
                    nn(*per_image),
                )?;
            }
        }
        Ok(())
    }

    /// Record the whole forward pass of a batch; returns the encoder and the batch size.
    fn encode_forward(&self, images: &[f32]) -> Result<(wgpu::CommandEncoder, usize)> {
        let per_in: usize = self.graph.input_shape.iter().product();
        let n = images.len() / per_in;
        if n == 0 || n > self.batch || images.len() != n * per_in {
            return Err(Error::Gpu(format!(
                "run takes 1..={} whole images",
                self.batch
            )));
        }
        self.ctx
            .queue
            .write_buffer(&self.input_f32, 0, bytemuck::cast_slice(images));
        Ok((self.encode_forward_src(&self.input_f32, 0, n)?, n))
    }

    /// Record the forward pass of `n` images read from `src` starting at image `first`
    /// (the staging buffer, or a dataset resident on the GPU).
    fn encode_forward_src(
        &self,
        src: &wgpu::Buffer,
        first: usize,
        n: usize,
    ) -> Result<wgpu::CommandEncoder> {
        let per_in: usize = self.graph.input_shape.iter().product();
        let ctx = self.ctx;
        let (inb, _, _) = &self.values[&self.graph.input];
        if self.float {
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(
                src,
                (first * per_in * 4) as u64,
                inb,
                0,
                (n * per_in * 4) as u64,
            );
            for (step, ins, out) in &self.steps {
                self.encode_float(&mut enc, step, ins, out, n)?;
            }
            return Ok(enc);
        }
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct Q(u32, f32, u32, u32);
        ctx.encode(
            &mut enc,
            "quantize",
            bytemuck::bytes_of(&Q(
                (n * per_in) as u32,
                self.input_scale,
                (first * per_in) as u32,
                0,
            )),
            &[src, inb],
            (n * per_in) as u32,
        )?;
        let nn = |x: usize| (x * n) as u32;
        for (step, ins, out) in &self.steps {
            let x = &self.values[&ins[0]].0;
            let y = &self.values[out].0;
            match step {
                Step::Conv {
                    node,
                    geom,
                    per_image_out,
                } => {
                    let l = &self.layers[node];
                    #[repr(C)]
                    #[derive(Clone, Copy, Pod, Zeroable)]
                    struct C([u32; 20]);
                    let g = geom;
                    if let (true, Some(wp)) = (g.is_pointwise(), l.packed()) {
                        let hw = g.h * g.w;
                        let p = [
                            n as u32,
                            g.icg as u32,
                            g.oc as u32,
                            hw as u32,
                            g.icg.div_ceil(4) as u32,
                            0,
                            0,
                            0,
                        ];
                        let inv = ctx.conv1x1_invocations(n, g.oc, hw);
                        ctx.encode(
                            &mut enc,
                            "conv1x1_dp4a",
                            bytemuck::bytes_of(&p),
                            &[x, wp, &l.bias, &l.acc],
                            inv,
                        )?;
                    } else if g.is_pointwise() {
                        let hw = g.h * g.w;
                        let p = p4(n as u32, g.icg as u32, g.oc as u32, hw as u32);
                        let inv = ctx.conv1x1_invocations(n, g.oc, hw);
                        ctx.encode(
                            &mut enc,
                            "conv1x1",
                            bytemuck::bytes_of(&p),
                            &[x, &l.w, &l.bias, &l.acc],
                            inv,
                        )?;
                    } else {
                        let p = C(conv_params(geom, n));
                        ctx.encode(
                            &mut enc,
                            "conv2d",
                            bytemuck::bytes_of(&p),
                            &[x, &l.w, &l.bias, &l.acc],
                            nn(*per_image_out),
                        )?;
                    }
                    let per_ch = (geom.oh * geom.ow) as u32;
                    let name = if l.float_out {
                        "dequantize_acc"
                    } else {
                        "requantize"
                    };
                    ctx.encode(
                        &mut enc,
                        name,
                        bytemuck::bytes_of(&p4(nn(*per_image_out), per_ch, geom.oc as u32, 0)),
                        &[&l.acc, &l.m, y],
                        nn(*per_image_out),
                    )?;
                }
                Step::Dense { node, ic, oc, rows } => {
                    let l = &self.layers[node];
                    let r = (rows * n) as u32;
                    match l.packed() {
                        Some(wp) => ctx.encode(
                            &mut enc,
                            "dense_dp4a",
                            bytemuck::bytes_of(&p4(
                                r,
                                *ic as u32,
                                *oc as u32,
                                ic.div_ceil(4) as u32,
                            )),
                            &[x, wp, &l.bias, &l.acc],
                            ctx.dense_invocations(r as usize, *oc),
                        )?,
                        None => ctx.encode(
                            &mut enc,
                            "dense",
                            bytemuck::bytes_of(&p4(r, *ic as u32, *oc as u32, 0)),
                            &[x, &l.w, &l.bias, &l.acc],
                            ctx.dense_invocations(r as usize, *oc),
                        )?,
                    }
                    let name = if l.float_out {
                        "dequantize_acc"
                    } else {
                        "requantize"
                    };
                    ctx.encode(
                        &mut enc,
                        name,
                        bytemuck::bytes_of(&p4(r * *oc as u32, 1, *oc as u32, 1)),
                        &[&l.acc, &l.m, y],
                        r * *oc as u32,
                    )?;
                }
                Step::Clamp {
                    lo, hi, per_image, ..
                } => {
                    ctx.encode(
                        &mut enc,
                        "clamp_i8",
                        bytemuck::bytes_of(&p4(nn(*per_image), *lo as u32, *hi as u32, 0)),
                        &[x, y],
                        nn(*per_image),
                    )?;
                }
                Step::MaxPool { geom } => {
                    #[repr(C)]
                    #[derive(Clone, Copy, Pod, Zeroable)]
                    struct M([u32; 12]);
                    let g = geom;
                    let p = M(super::maxpool_params(g, n));
                    ctx.encode(
                        &mut enc,
                        "maxpool",
                        bytemuck::bytes_of(&p),
                        &[x, y],
                        nn(g.c * g.oh * g.ow),
                    )?;
                }
                Step::Gap {
                    planes_per_image,
                    hw,
                    k,
                } => {
                    #[repr(C)]
                    #[derive(Clone, Copy, Pod, Zeroable)]
                    struct G(u32, u32, f32, u32);
                    ctx.encode(
                        &mut enc,
                        "gap_i8",
                        bytemuck::bytes_of(&G(nn(*planes_per_image), *hw as u32, *k, 0)),
                        &[x, y],
                        nn(*planes_per_image),
                    )?;
                }
                Step::Unary { lut, per_image, .. } => {
                    ctx.encode(
                        &mut enc,
                        "lut_i8",
                        bytemuck::bytes_of(&p4(nn(*per_image), 0, 0, 0)),
                        &[x, lut, y],
                        nn(*per_image),
                    )?;
                }
                Step::Mul {
                    k,
                    b_div,
                    per_image,
                } => {
                    #[repr(C)]
                    #[derive(Clone, Copy, Pod, Zeroable)]
                    struct K(u32, u32, f32, u32);
                    let b = &self.values[&ins[1]].0;
                    ctx.encode(
                        &mut enc,
                        "mul_i8",
                        bytemuck::bytes_of(&K(nn(*per_image), *b_div as u32, *k, 0)),
                        &[x, b, y],
                        nn(*per_image),
                    )?;
                }
                Step::AvgPool {
                    geom,
                    include_pad,
                    m,
                } => {
                    #[repr(C)]
                    #[derive(Clone, Copy, Pod, Zeroable)]
                    struct M([u32; 12]);
                    let mut p = super::maxpool_params(geom, n);
                    p[11] = *include_pad as u32;
                    ctx.encode(
                        &mut enc,
                        "avgpool_i8",
                        bytemuck::bytes_of(&M(p)),
                        &[x, m, y],
                        nn(geom.c * geom.oh * geom.ow),
                    )?;
                }
                Step::Add { ra, rb, per_image } => {
                    #[repr(C)]
                    #[derive(Clone, Copy, Pod, Zeroable)]
                    struct A(u32, f32, f32, u32);
                    let b = &self.values[&ins[1]].0;
                    ctx.encode(
                        &mut enc,
                        "add_i8",
                        bytemuck::bytes_of(&A(nn(*per_image), *ra, *rb, 0)),
                        &[x, b, y],
                        nn(*per_image),
                    )?;
                }
            }
        }
        Ok(enc)
    }
}
