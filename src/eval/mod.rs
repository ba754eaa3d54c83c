//! Evaluation: FP32 vs quantized accuracy, agreement and divergence, plus the per-layer
//! activity statistics the accelerator model consumes.

mod batched;
pub mod bench;
mod fp32ref;
pub mod outputs;
pub mod reference;

use rayon::prelude::*;
use serde::Serialize;

pub use bench::{SweepPoint, bench, bench_gpu, bench_sweep};
pub use outputs::OutputEval;
pub use reference::{CalibKey, Fp32Reference, RefCache};

use crate::cpu::engine::{Engine, Mode};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{Graph, Op, Tensor};
use crate::quant::{ModelQuant, Scheme, sqnr_db};

/// Version of the eval CSV layouts (docs/csv-schemas.md).
pub const EVAL_CSV_SCHEMA: u32 = 4;

pub use crate::run::RunConfig;

pub use crate::exec::Device;

/// Where the quantized run executes.
pub enum Exec<'a> {
    Cpu,
    /// The WGSL engine (any mode): logits of every image on the GPU; per-layer activity
    /// statistics from the CPU engine on the first `stats_images` images.
    Gpu {
        ctx: &'a crate::gpu::GpuContext,
        stats_images: usize,
        batch: usize,
        /// Also run the CPU engine on every image and count the images whose logits differ
        /// (integer mode: any bit; float modes: beyond [`GPU_FLOAT_CHECK_REL_TOL`]).
        check_cpu: bool,
    },
}

/// `--check-cpu` in fp32 / fake-quant mode: GPU logits may differ from the CPU engine's by
/// FP32 rounding (a driver may fuse multiply-adds; in fake-quant mode that can move one
/// activation across an INT8 rounding boundary), relative to the image's largest |logit|.
pub const GPU_FLOAT_CHECK_REL_TOL: f32 = 2e-3;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub images: usize,
    pub labelled: bool,
    /// Fractions in [0, 1] (null without labels).
    pub top1: Option<f64>,
    pub top5: Option<f64>,
    pub fp32_top1: Option<f64>,
    pub fp32_top5: Option<f64>,
    /// `--check-cpu`: images whose GPU logits differ from the CPU engine's (null without).
    pub gpu_cpu_mismatches: Option<usize>,
    /// `--check-reference`: images whose fast-kernel logits differ from the reference
    /// kernels' (null without).
    pub reference_mismatches: Option<usize>,
    /// Top-1 change against FP32 on the same images, percentage points (null without labels).
    pub top1_delta_pts: Option<f64>,
    /// 95 % interval of that change, points (Agresti-Min paired interval; `stats`).
    pub top1_delta_ci95: Option<[f64; 2]>,
    /// Exact McNemar p-value of the change (discordant pairs only).
    pub mcnemar_p: Option<f64>,
    /// Labelled images FP32 gets right and the quantized run wrong, and the reverse.
    pub discordant: Option<[usize; 2]>,
    /// Fraction of images whose top-1 class equals FP32's (null: no output holds class
    /// scores, `outputs` then has the per-output errors).
    pub agreement_top1: Option<f64>,
    /// Mean KL(P_fp32 || P_quant) over images, nats (null as agreement).
    pub kl_mean: Option<f64>,
    pub bits_per_weight: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct LayerEval {
    pub name: String,
    pub kind: String,
    pub applied: String,
    pub macs_per_image: f64,
    pub act_zero_frac: f64,
    pub weight_zero_frac: f64,
    /// MACs per image by weight class (INT8 / low-precision / zero), dense.
    pub macs_w_high_per_image: f64,
    pub macs_w_low_per_image: f64,
    pub macs_w_zero_per_image: f64,
    /// MACs per image whose activation is non-zero, by weight class; after two-sided
    /// zero skipping only the `high` and `low` ones remain.
    pub macs_nz_act_w_high_per_image: f64,
    pub macs_nz_act_w_low_per_image: f64,
    pub macs_nz_act_w_zero_per_image: f64,
    /// Output SQNR of this layer vs the FP32 run, dB (inputs differ: errors accumulate).
    pub output_sqnr_db: f64,
    pub bits_per_weight: f64,
    /// With an ideal mask of log2 C(B, L) bits per mixed block.
    pub bits_per_weight_ideal_mask: f64,
    /// Real weights in low-precision lanes, % of the layer's weights.
    pub demoted_pct: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct EvalResult {
    pub model: String,
    pub dataset: String,
    pub label: String,
    pub mode: &'static str,
    /// `cpu` or the GPU adapter's name
    pub device: String,
    /// which interpreter ran the quantized pass: `batched (<kernels>)` (`cpu::fast`),
    /// `per-image`, or `gpu`
    pub engine: String,
    /// images behind the per-layer statistics (all of them on the CPU)
    pub layer_stats_images: usize,
    /// images behind the per-layer output SQNR: a prefix of the images
    /// (`reference::SQNR_IMAGES`, fewer where the model's FP32 layer outputs would exceed
    /// `reference::SQNR_BUDGET_BYTES`)
    pub sqnr_images: usize,
    pub summary: Summary,
    /// Every graph output against FP32 (SQNR, largest error), in graph order.
    pub outputs: Vec<OutputEval>,
    pub layers: Vec<LayerEval>,
    /// The quantized weights the run used (so that callers do not quantize again).
    #[serde(skip)]
    pub quant: Option<ModelQuant>,
}

#[derive(Clone, Default)]
struct Acc {
    n: usize,
    n_stats: usize,
    n_sqnr: usize,
    top1: usize,
    top5: usize,
    fp_top1: usize,
    fp_top5: usize,
    agree: usize,
    gpu_mismatch: usize,
    ref_mismatch: usize,
    /// labelled images by (FP32 right, quantized right): [both, FP32 only, quant only, neither]
    paired: [usize; 4],
    kl: f64,
    act_elems: Vec<u64>,
    act_zeros: Vec<u64>,
    dense: Vec<[u64; 3]>,
    nz: Vec<[u64; 3]>,
    sig: Vec<f64>,
    noise: Vec<f64>,
    /// per graph output, against FP32
    out: outputs::OutAcc,
}

impl Acc {
    fn new(layers: usize, outputs: usize) -> Self {
        Acc {
            out: outputs::OutAcc::new(outputs),
            act_elems: vec![0; layers],
            act_zeros: vec![0; layers],
            dense: vec![[0; 3]; layers],
            nz: vec![[0; 3]; layers],
            sig: vec![0.0; layers],
            noise: vec![0.0; layers],
            ..Default::default()
        }
    }
    /// Score one image's class scores, FP32 and quantized, against its label (the caller
    /// counts the image in `n`).
    fn score(&mut self, f: &[f32], qv: &[f32], label: Option<usize>, already_probs: bool) {
        let ft = top_k(f, 5);
        let qt = top_k(qv, 5);
        if let Some(y) = label {
            self.top1 += (qt[0] == y) as usize;
            self.top5 += qt.contains(&y) as usize;
            self.fp_top1 += (ft[0] == y) as usize;
            self.fp_top5 += ft.contains(&y) as usize;
            let cell = match (ft[0] == y, qt[0] == y) {
                (true, true) => 0,
                (true, false) => 1,
                (false, true) => 2,
                (false, false) => 3,
            };
            self.paired[cell] += 1;
        }
        self.agree += (ft[0] == qt[0]) as usize;
        self.kl += kl(&probs(f, already_probs), &probs(qv, already_probs));
    }

    /// Add the output SQNR sums of one image (`f`: FP32 layer outputs, `q`: quantized).
    fn sqnr(&mut self, f: &[Vec<f32>], q: &[&[f32]]) {
        self.n_sqnr += 1;
        for (k, (p, r)) in f.iter().zip(q).enumerate() {
            for (&p, &r) in p.iter().zip(r.iter()) {
                self.sig[k] += (p as f64).powi(2);
                self.noise[k] += ((p - r) as f64).powi(2);
            }
        }
    }

    fn merge(mut self, o: Acc) -> Acc {
        self.n += o.n;
        self.n_stats += o.n_stats;
        self.n_sqnr += o.n_sqnr;
        self.top1 += o.top1;
        self.top5 += o.top5;
        self.fp_top1 += o.fp_top1;
        self.fp_top5 += o.fp_top5;
        self.agree += o.agree;
        self.gpu_mismatch += o.gpu_mismatch;
        self.ref_mismatch += o.ref_mismatch;
        for k in 0..4 {
            self.paired[k] += o.paired[k];
        }
        self.kl += o.kl;
        self.out.merge(&o.out);
        for k in 0..self.sig.len() {
            self.act_elems[k] += o.act_elems[k];
            self.act_zeros[k] += o.act_zeros[k];
            self.sig[k] += o.sig[k];
            self.noise[k] += o.noise[k];
            for c in 0..3 {
                self.dense[k][c] += o.dense[k][c];
                self.nz[k][c] += o.nz[k][c];
            }
        }
        self
    }
}

/// Indices of the k largest values, largest first (ties: lower index first).
pub fn top_k(v: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

fn probs(v: &[f32], already: bool) -> Vec<f64> {
    if already {
        return v.iter().map(|&x| x as f64).collect();
    }
    let m = v.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let e: Vec<f64> = v.iter().map(|&x| (x as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// KL(p || q) in nats, with q floored at 1e-12. KL is never negative; a sum of rounded
/// terms can come out a few ulps below zero when p = q almost everywhere, so it is clamped.
pub fn kl(p: &[f64], q: &[f64]) -> f64 {
    let d: f64 = p
        .iter()
        .zip(q)
        .filter(|(a, b)| **a > 0.0 && a != b)
        .map(|(a, b)| a * (a / b.max(1e-12)).ln())
        .sum();
    d.max(0.0)
}

/// The one rule that joins `--scheme` and `--mode` (eval, bench): either flag alone set to
/// fp32 gives the FP32 run; neither gives INT8 in integer mode; a quantized scheme alone runs
/// in integer mode, a quantized mode alone with INT8; fp32 with a quantized counterpart is
/// an error naming both.
pub fn scheme_and_mode(scheme: Option<Scheme>, mode: Option<Mode>) -> Result<(Scheme, Mode)> {
    match (scheme, mode) {
        (None, None) => Ok((Scheme::Int8, Mode::Integer)),
        (Some(Scheme::Fp32), None) | (None, Some(Mode::Fp32)) => Ok((Scheme::Fp32, Mode::Fp32)),
        (Some(s), None) => Ok((s, Mode::Integer)),
        (None, Some(m)) => Ok((Scheme::Int8, m)),
        (Some(Scheme::Fp32), Some(m)) if m != Mode::Fp32 => Err(Error::InvalidArg {
            arg: "mode".into(),
            reason: format!(
                "--scheme fp32 has nothing to quantize in {} mode; drop --mode or pick a scheme",
                m.as_str()
            ),
        }),
        (Some(s), Some(Mode::Fp32)) if s != Scheme::Fp32 => Err(Error::InvalidArg {
            arg: "mode".into(),
            reason: format!(
                "--mode fp32 runs unquantized weights, not --scheme {}; drop one of them",
                s.as_str()
            ),
        }),
        (Some(s), Some(m)) => Ok((s, m)),
    }
}

/// Evaluate `graph` on `data` with `cfg`. FP32 always runs too (the agreement reference).
pub fn evaluate(graph: &Graph, model: &str, data: &Dataset, cfg: &RunConfig) -> Result<EvalResult> {
    evaluate_on(graph, model, data, cfg, &Exec::Cpu)
}

/// [`evaluate`] with the quantized run on `exec`.
pub fn evaluate_on(
    graph: &Graph,
    model: &str,
    data: &Dataset,
    cfg: &RunConfig,
    exec: &Exec,
) -> Result<EvalResult> {
    evaluate_with(graph, model, data, cfg, exec, &mut RefCache::memory())
}

/// [`evaluate_on`] taking the FP32 reference and the activation scales from `refs` (one
/// FP32 pass per graph and images, one calibration per setting, however many
/// configurations are evaluated).
pub fn evaluate_with(
    graph: &Graph,
    model: &str,
    data: &Dataset,
    cfg: &RunConfig,
    exec: &Exec,
    refs: &mut RefCache,
) -> Result<EvalResult> {
    evaluate_calibrated(graph, model, data, data, cfg, exec, refs)
}

/// Evaluate on the device `cfg` names: the CPU; any GPU adapter (`gpu`); or a hardware GPU
/// when one opens and the model runs there, else the CPU with a one-line notice (`auto`).
pub fn run(
    graph: &Graph,
    model: &str,
    data: &Dataset,
    cfg: &RunConfig,
    refs: &mut RefCache,
) -> Result<EvalResult> {
    let Some(ctx) = crate::gpu::GpuContext::for_device(cfg.device, cfg.quiet)? else {
        return evaluate_with(graph, model, data, cfg, &Exec::Cpu, refs);
    };
    let exec = Exec::Gpu {
        ctx: &ctx,
        stats_images: cfg.gpu_stats_images,
        batch: cfg.gpu_batch(),
        check_cpu: cfg.check_cpu,
    };
    match evaluate_with(graph, model, data, cfg, &exec, refs) {
        Err(e) if cfg.device == Device::Auto => {
            if !cfg.quiet {
                eprintln!("notice: {e}; running on the CPU");
            }
            evaluate_with(graph, model, data, cfg, &Exec::Cpu, refs)
        }
        other => other,
    }
}

/// [`evaluate_with`] with the activation scales calibrated on the first images of `calib`
/// instead of `data` (a search reports held-out images under the scales of its search
/// split).
pub fn evaluate_calibrated(
    graph: &Graph,
    model: &str,
    data: &Dataset,
    calib: &Dataset,
    cfg: &RunConfig,
    exec: &Exec,
    refs: &mut RefCache,
) -> Result<EvalResult> {
    check_inputs(graph, data, cfg)?;
    let q = quantize_for(graph, calib, cfg)?;
    let scales = if cfg.mode != Mode::Fp32 {
        let key = CalibKey {
            images: cfg.calib.images,
            method: cfg.calib.method,
            percentile: cfg.calib.percentile,
        };
        Some(refs.scales(graph, calib, key)?)
    } else {
        None
    };
    let sqnr_images = if refs.no_sqnr {
        0
    } else {
        reference::SQNR_IMAGES
    };
    let reference = refs.reference(graph, data, sqnr_images, cfg.quiet)?;
    let scales = scales.as_deref();
    let qe = Engine::new(graph, cfg.mode, Some(&q), scales)?;
    if cfg.check_reference && (cfg.mode != Mode::Integer || !matches!(exec, Exec::Cpu)) {
        return Err(Error::InvalidArg {
            arg: "check-reference".into(),
            reason: "compares the CPU engine's fast and reference integer kernels: needs \
                     --mode integer and --device cpu"
                .into(),
        });
    }
    let qr = cfg
        .check_reference
        .then(|| Engine::new(graph, cfg.mode, Some(&q), scales))
        .transpose()?
        .map(|e| e.with_kernels(crate::cpu::engine::Kernels::Reference));
    // Labels that do not index the model's classes (e.g. ImageNet labels for a 2-class
    // model) are ignored: the run then reports agreement only. A model without a
    // class-score output gets per-output errors only.
    let class = outputs::class_output(graph, cfg.logits_output.as_deref())?;
    let layout = outputs::row_layout(graph);
    let labels = match class {
        Some(c) => usable_labels(data, layout[c].1, cfg.quiet)?,
        None => None,
    };
    let already_probs = class.is_some_and(|c| {
        graph
            .nodes
            .iter()
            .any(|n| n.output == graph.outputs[c] && matches!(n.op, Op::Softmax { .. }))
    });
    let layers = graph.layers();
    let nl = layers.len();
    // GPU: every image's quantized logits first, in batches; statistics on a prefix.
    let (gpu_logits, stats_n, device) = gpu_pass(&qe, data, exec)?;
    let progress = crate::progress::Progress::new(&format!("eval {model}"), data.len(), cfg.quiet);
    let check_cpu = matches!(
        exec,
        Exec::Gpu {
            check_cpu: true,
            ..
        }
    );
    let fast = match exec {
        Exec::Cpu if cfg.mode == Mode::Integer => {
            let pass = batched::Pass {
                reference: &reference,
                labels,
                already_probs,
                class,
                layout: &layout,
                check: qr.as_ref(),
                layers: nl,
                progress: &progress,
            };
            batched::run(&qe, data, &pass)?
        }
        _ => None,
    };
    let engine = match (&fast, exec) {
        (Some(_), _) => format!("batched ({})", crate::cpu::fast::Isa::detect().name()),
        (None, Exec::Gpu { .. }) => "gpu".to_string(),
        (None, Exec::Cpu) => "per-image".to_string(),
    };
    let acc = match fast {
        Some(a) => a,
        None => {
            let pass = batched::Pass {
                reference: &reference,
                labels,
                already_probs,
                class,
                layout: &layout,
                check: qr.as_ref(),
                layers: nl,
                progress: &progress,
            };
            let gpu = gpu_logits.as_deref().map(|g| (g, check_cpu));
            per_image_pass(&qe, data, &pass, gpu, stats_n)?
        }
    };
    let summary = summarize(
        &acc,
        labels.is_some(),
        class.is_some(),
        check_cpu,
        qr.is_some(),
        &q,
    );
    let outputs = acc.out.finish(graph, class);
    let layers = layer_evals(graph, &acc, &q, cfg.mode);
    Ok(EvalResult {
        model: model.to_string(),
        dataset: data.name.clone(),
        label: if cfg.mode == Mode::Fp32 {
            "fp32".into()
        } else {
            cfg.quant.label()
        },
        mode: cfg.mode.as_str(),
        device,
        engine,
        layer_stats_images: acc.n_stats,
        sqnr_images: acc.n_sqnr,
        summary,
        outputs,
        layers,
        quant: Some(q),
    })
}

/// Images that fit the model, and a scheme that fits the mode.
fn check_inputs(graph: &Graph, data: &Dataset, cfg: &RunConfig) -> Result<()> {
    if data.is_empty() {
        return Err(Error::Data {
            path: data.name.clone(),
            reason: "no images".into(),
        });
    }
    if data.shape[1..] != graph.input_shape[1..] {
        return Err(Error::Data {
            path: data.name.clone(),
            reason: format!(
                "images of shape {:?} do not fit the model input {:?}",
                data.shape, graph.input_shape
            ),
        });
    }
    match (cfg.mode, cfg.quant.scheme) {
        (Mode::Fp32, s) if s != Scheme::Fp32 => {
            return Err(Error::InvalidArg {
                arg: "mode".into(),
                reason: format!(
                    "fp32 mode ignores --scheme {}; use --scheme fp32, or mode fake-quant / integer",
                    s.as_str()
                ),
            });
        }
        (m, Scheme::Fp32) if m != Mode::Fp32 => {
            return Err(Error::InvalidArg {
                arg: "mode".into(),
                reason: format!(
                    "{} mode needs a quantization scheme other than fp32",
                    m.as_str()
                ),
            });
        }
        _ => {}
    }
    Ok(())
}

/// On the GPU: the quantized logits of every image (batched), the images behind the activity
/// statistics, and the device's name; on the CPU nothing yet, every image, `cpu`.
#[allow(clippy::type_complexity)]
fn gpu_pass(
    qe: &Engine,
    data: &Dataset,
    exec: &Exec,
) -> Result<(Option<Vec<Vec<f32>>>, usize, String)> {
    Ok(match exec {
        Exec::Gpu {
            ctx,
            stats_images,
            batch,
            ..
        } => {
            if qe.plan().graph.outputs.len() > 1 {
                return Err(Error::Gpu(
                    "the GPU engine runs models with one output; this one has several (use --device cpu)"
                        .into(),
                ));
            }
            let ge = crate::gpu::engine::GpuEngine::new(ctx, qe, *batch)?;
            let mut out = Vec::with_capacity(data.len());
            let mut done = 0;
            while done < data.len() {
                let m = ge.batch.min(data.len() - done);
                out.extend(ge.run(&data.images(done, done + m)?)?);
                done += m;
            }
            (
                Some(out),
                (*stats_images).min(data.len()),
                format!("{} ({:?})", ctx.info.name, ctx.info.backend),
            )
        }
        Exec::Cpu => (None, data.len(), "cpu".to_string()),
    })
}

/// The quantized pass image by image on the per-image engine (plans the batched executor
/// cannot run, fp32 / fake-quant modes, and the GPU's statistics and `--check-cpu`): `gpu`
/// holds the GPU logits of every image and whether to compare them with the CPU engine;
/// activity is observed on the first `stats_n` images.
fn per_image_pass(
    qe: &Engine,
    data: &Dataset,
    p: &batched::Pass,
    gpu: Option<(&[Vec<f32>], bool)>,
    stats_n: usize,
) -> Result<Acc> {
    let (reference, labels, already_probs, progress, nl) =
        (p.reference, p.labels, p.already_probs, p.progress, p.layers);
    let nout = p.layout.len();
    let (gpu_logits, check_cpu) = (gpu.map(|g| g.0), gpu.is_some_and(|g| g.1));
    let qr = p.check;
    let mode = qe.mode;
    (0..data.len())
        .into_par_iter()
        .try_fold(
            || Acc::new(nl, nout),
            |mut a, i| -> Result<Acc> {
                progress.check()?;
                let x = &data.image(i)?;
                let observe = i < stats_n;
                if let (true, Some(g)) = (check_cpu, gpu_logits) {
                    let c = &qe.run(x, false)?.0[0];
                    let differs = if mode == Mode::Integer {
                        c != &g[i]
                    } else {
                        let scale = c.iter().fold(1e-30f32, |m, v| m.max(v.abs()));
                        c.iter()
                            .zip(&g[i])
                            .any(|(p, q)| (p - q).abs() > GPU_FLOAT_CHECK_REL_TOL * scale)
                    };
                    a.gpu_mismatch += differs as usize;
                }
                let (f, fobs) = (reference.logits(i)?, reference.layer_outputs(i));
                let (qo, qobs) = match gpu_logits {
                    Some(g) => {
                        let obs = if observe {
                            qe.run_activity(x, fobs.is_some())?.1
                        } else {
                            Vec::new()
                        };
                        (vec![g[i].clone()], obs)
                    }
                    None if observe => qe.run_activity(x, fobs.is_some())?,
                    None => qe.run(x, false)?,
                };
                if let Some(r) = qr {
                    // the reference kernels on the same image: every logit must be equal
                    a.ref_mismatch += (r.run(x, false)?.0 != qo) as usize;
                }
                a.n_stats += observe as usize;
                progress.inc();
                let qs: Vec<&[f32]> = qo.iter().map(|v| &v[..]).collect();
                a.n += 1;
                a.out.add(p.layout, &f, &qs);
                if let Some(c) = p.class {
                    let (at, n) = p.layout[c];
                    a.score(
                        &f[at..at + n],
                        &qo[c],
                        labels.map(|l| l[i] as usize),
                        already_probs,
                    );
                }
                for (k, ql) in qobs.iter().enumerate() {
                    a.act_elems[k] += ql.act_elems;
                    a.act_zeros[k] += ql.act_zeros;
                    for c in 0..3 {
                        a.dense[k][c] += ql.pairs_dense[c];
                        a.nz[k][c] += ql.pairs_nz[c];
                    }
                }
                if let (Some(fl), false) = (fobs, qobs.is_empty()) {
                    let q: Vec<&[f32]> = qobs.iter().map(|o| &o.output[..]).collect();
                    a.sqnr(fl, &q);
                }
                Ok(a)
            },
        )
        .try_reduce(|| Acc::new(nl, nout), |a, b| Ok(a.merge(b)))
}

/// The summary of a pass: accuracy, agreement, divergence and the paired test.
fn summarize(
    acc: &Acc,
    labelled: bool,
    classifier: bool,
    check_cpu: bool,
    check_ref: bool,
    q: &ModelQuant,
) -> Summary {
    let n = acc.n as f64;
    let frac = |c: usize| c as f64 / n;
    let paired = labelled.then_some(crate::stats::PairedTop1 {
        both: acc.paired[0],
        only_reference: acc.paired[1],
        only_candidate: acc.paired[2],
        neither: acc.paired[3],
    });
    Summary {
        images: acc.n,
        labelled,
        top1: labelled.then(|| frac(acc.top1)),
        top5: labelled.then(|| frac(acc.top5)),
        fp32_top1: labelled.then(|| frac(acc.fp_top1)),
        fp32_top5: labelled.then(|| frac(acc.fp_top5)),
        agreement_top1: classifier.then(|| frac(acc.agree)),
        gpu_cpu_mismatches: check_cpu.then_some(acc.gpu_mismatch),
        reference_mismatches: check_ref.then_some(acc.ref_mismatch),
        top1_delta_pts: paired.map(|p| p.delta_pts()),
        top1_delta_ci95: paired.map(|p| p.ci95_pts()),
        mcnemar_p: paired.map(|p| p.mcnemar_p()),
        discordant: paired.map(|p| [p.only_reference, p.only_candidate]),
        kl_mean: classifier.then(|| acc.kl / n),
        bits_per_weight: q.summary.bits_per_weight,
    }
}

/// One row per weight layer: activity per image, output SQNR, storage.
fn layer_evals(graph: &Graph, acc: &Acc, q: &ModelQuant, mode: Mode) -> Vec<LayerEval> {
    let ns = acc.n_stats.max(1) as f64;
    graph
        .layers()
        .iter()
        .enumerate()
        .map(|(k, (node, lr))| {
            let lq = q
                .layers
                .iter()
                .find(|l| l.node == *node)
                .expect("every layer quantized");
            let w = lr.weight();
            LayerEval {
                name: graph.nodes[*node].name.clone(),
                kind: lr.kind().into(),
                applied: if mode == Mode::Fp32 {
                    "fp32".into()
                } else {
                    lq.applied.clone()
                },
                macs_per_image: graph.macs(&graph.nodes[*node]) as f64,
                act_zero_frac: acc.act_zeros[k] as f64 / acc.act_elems[k].max(1) as f64,
                weight_zero_frac: if mode == Mode::Fp32 {
                    w.data.iter().filter(|&&v| v == 0.0).count() as f64 / w.numel() as f64
                } else {
                    lq.stats.zero as f64 / lq.stats.params as f64
                },
                macs_w_high_per_image: acc.dense[k][0] as f64 / ns,
                macs_w_low_per_image: acc.dense[k][1] as f64 / ns,
                macs_w_zero_per_image: acc.dense[k][2] as f64 / ns,
                macs_nz_act_w_high_per_image: acc.nz[k][0] as f64 / ns,
                macs_nz_act_w_low_per_image: acc.nz[k][1] as f64 / ns,
                macs_nz_act_w_zero_per_image: acc.nz[k][2] as f64 / ns,
                output_sqnr_db: sqnr_db(acc.sig[k], acc.noise[k]),
                bits_per_weight: if mode == Mode::Fp32 {
                    32.0
                } else {
                    lq.stats.bits_per_weight
                },
                bits_per_weight_ideal_mask: if mode == Mode::Fp32 {
                    32.0
                } else {
                    lq.stats.bits_per_weight_ideal_mask
                },
                demoted_pct: if mode == Mode::Fp32 {
                    0.0
                } else {
                    lq.stats.demoted_pct
                },
            }
        })
        .collect()
}

/// The dataset's labels if they index the model's `classes`. Labels of another label set
/// altogether (every one out of range, e.g. ImageNet labels on a 2-class model) leave the
/// run unlabelled, with a notice; some in range and some not is an error naming the first.
fn usable_labels<'d>(data: &'d Dataset, classes: usize, quiet: bool) -> Result<Option<&'d [u32]>> {
    let Some(l) = data.labels.as_deref() else {
        return Ok(None);
    };
    let out: Vec<usize> = (0..l.len()).filter(|&i| l[i] as usize >= classes).collect();
    if out.is_empty() {
        return Ok(Some(l));
    }
    if out.len() == l.len() {
        if !quiet {
            eprintln!(
                "notice: {}: no label is one of the model's {classes} classes; reporting agreement only",
                data.name
            );
        }
        return Ok(None);
    }
    Err(Error::Data {
        path: data.name.clone(),
        reason: format!(
            "label {} of image {} is not one of the model's {classes} classes ({} of {} labels are out of range)",
            l[out[0]],
            out[0],
            out.len(),
            l.len()
        ),
    })
}

/// Quantize `graph` for `cfg` (the output-SQNR dynamic criterion weighs by the input
/// energy of the calibration images).
fn quantize_for(graph: &Graph, data: &Dataset, cfg: &RunConfig) -> Result<ModelQuant> {
    let energy = if cfg.quant.l_policy == crate::quant::config::LPolicy::Dynamic
        && cfg.quant.dyn_criterion == crate::quant::config::DynCriterion::OutputSqnr
    {
        let n = cfg.calib.images.clamp(1, data.len());
        let mut shape = data.shape.clone();
        shape[0] = n;
        let calib = Tensor::new(shape, data.images(0, n)?);
        Some(crate::quant::input_energy(graph, &calib)?)
    } else {
        None
    };
    crate::quant::quantize_graph_with(graph, &cfg.quant, energy.as_ref())
}
