//! Throughput measurements (not tests): the CPU engine alone, the GPU engine alone, and an
//! accuracy-only sweep on either (`strumlab bench`; scripts/bench-engines.py runs them next
//! to onnxruntime).

use rayon::prelude::*;
use serde::Serialize;

use crate::cpu::engine::{self, Engine, Mode};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{Graph, Tensor};
use crate::quant::{QuantConfig, quantize_graph};

use super::top_k;

/// Throughput of the engine alone (no FP32 reference run, no statistics): best images/s
/// over `repeat` passes of `images` images, in parallel over images. Calibration (for
/// quantized modes) uses the first 64 images and is not timed.
#[allow(clippy::too_many_arguments)]
pub fn bench(
    graph: &Graph,
    data: &Dataset,
    quant: &QuantConfig,
    mode: Mode,
    kernels: crate::cpu::engine::Kernels,
    images: usize,
    repeat: usize,
    batch: Option<usize>,
) -> Result<f64> {
    let q = quantize_graph(graph, quant)?;
    let scales = match mode {
        Mode::Fp32 => None,
        _ => Some(default_scales(graph, data)?),
    };
    let e = Engine::new(graph, mode, Some(&q), scales.as_ref())?.with_kernels(kernels);
    if kernels == crate::cpu::engine::Kernels::Fast
        && let Ok(p) =
            crate::cpu::fast::Program::compile(e.plan(), true, crate::cpu::fast::Isa::detect())
    {
        return bench_batched(&p, data, images, repeat, batch.unwrap_or(p.auto_batch()));
    }
    e.run(&data.image(0)?, false)?; // warm-up
    let mut best = 0f64;
    for _ in 0..repeat {
        let t = std::time::Instant::now();
        (0..images)
            .into_par_iter()
            .try_for_each(|i| e.run(&data.image(i % data.len())?, false).map(|_| ()))?;
        best = best.max(images as f64 / t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Activation scales of a benchmark: the run defaults (`run::ActCalib::default()`) on the
/// first images of `data`.
fn default_scales(graph: &Graph, data: &Dataset) -> Result<engine::Scales> {
    let c = crate::run::ActCalib::default();
    let n = c.images.min(data.len());
    let mut shape = data.shape.clone();
    shape[0] = n;
    engine::calibrate(
        graph,
        &Tensor::new(shape, data.images(0, n)?),
        c.method,
        c.percentile,
    )
}

/// Largest dataset (as FP32 input) a GPU sweep keeps resident on the device.
const RESIDENT_MAX_BYTES: usize = 1 << 30;

/// Throughput of the batched executor: best images/s over `repeat` passes of `images`
/// images (cycling through the dataset) in calls of `batch` images, rayon over calls, one
/// arena per worker.
fn bench_batched(
    p: &crate::cpu::fast::Program,
    data: &Dataset,
    images: usize,
    repeat: usize,
    batch: usize,
) -> Result<f64> {
    use crate::cpu::fast::{Arena, ArenaPool, Observe};
    let per = data.per_image();
    let batch = batch.clamp(1, data.len().max(1));
    // a pool of whole batches taken from the dataset, contiguous
    let calls = images.div_ceil(batch);
    let mut pool: Vec<f32> = Vec::with_capacity(batch * calls.min(64) * per);
    for i in 0..batch * calls.min(64) {
        pool.extend(data.image(i % data.len())?);
    }
    let slices = pool.len() / (batch * per);
    let run = |arena: &mut Arena, c: usize| {
        let x = &pool[(c % slices) * batch * per..][..batch * per];
        std::hint::black_box(p.run(arena, x, batch, &mut Observe::default()));
    };
    run(&mut Arena::new(p, batch), 0); // warm-up
    let pool_a = ArenaPool::new(p, batch);
    let mut best = 0f64;
    for _ in 0..repeat {
        let t = std::time::Instant::now();
        (0..calls)
            .into_par_iter()
            .for_each(|c| pool_a.with(|a| run(a, c)));
        best = best.max((calls * batch) as f64 / t.elapsed().as_secs_f64());
    }
    if crate::cpu::fast::profile::enabled() {
        eprint!("{}", crate::cpu::fast::profile::report());
    }
    Ok(best)
}

/// Throughput of the GPU engine (any numerics mode): best images/s over `repeat` passes of
/// `images` images in batches of `batch`, input upload and logit readback included.
#[allow(clippy::too_many_arguments)]
pub fn bench_gpu(
    ctx: &crate::gpu::GpuContext,
    graph: &Graph,
    data: &Dataset,
    quant: &QuantConfig,
    mode: Mode,
    images: usize,
    repeat: usize,
    batch: usize,
) -> Result<f64> {
    let q = quantize_graph(graph, quant)?;
    let scales = default_scales(graph, data)?;
    let cpu = Engine::new(
        graph,
        mode,
        Some(&q),
        (mode != Mode::Fp32).then_some(&scales),
    )?;
    let ge = crate::gpu::engine::GpuEngine::new(ctx, &cpu, batch)?;
    let per = data.per_image();
    // A batch of images cycling through the dataset.
    let mut pool: Vec<f32> = Vec::with_capacity(ge.batch * per);
    for i in 0..ge.batch {
        pool.extend(data.image(i % data.len())?);
    }
    ge.run(&pool[..per])?; // warm-up: pipelines compiled
    let mut best = 0f64;
    for _ in 0..repeat {
        let t = std::time::Instant::now();
        let mut done = 0;
        while done < images {
            let m = ge.batch.min(images - done);
            ge.run(&pool[..m * per])?;
            done += m;
        }
        best = best.max(images as f64 / t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// One configuration of [`bench_sweep`]: its label and top-1 hits on the images.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SweepPoint {
    pub config: String,
    pub top1_hits: u64,
    pub images: usize,
}

/// Accuracy-only sweep throughput: for each configuration, quantize, calibrate (64 images,
/// max), build the integer engine and count top-1 hits over every image of `data`. On the
/// CPU engine: rayon over images. On the GPU: one engine for the sweep, weights
/// re-quantized on the device per configuration (`strum_quantize`), the dataset uploaded
/// once, batches submitted back to back and reduced on the GPU (`topk_count`), so only four
/// counts per configuration come back. Returns the points and
/// the wall time in seconds (quantization and calibration included: a sweep pays them).
pub fn bench_sweep(
    graph: &Graph,
    data: &Dataset,
    configs: &[QuantConfig],
    gpu: Option<(&crate::gpu::GpuContext, usize)>,
) -> Result<(Vec<SweepPoint>, f64)> {
    let labels: Vec<i32> = match &data.labels {
        Some(l) => l.iter().map(|&y| y as i32).collect(),
        None => {
            return Err(Error::Data {
                path: data.name.clone(),
                reason: "the sweep benchmark needs labels".into(),
            });
        }
    };
    if configs.is_empty() {
        return Ok((Vec::new(), 0.0));
    }
    let t0 = std::time::Instant::now();
    let scales = default_scales(graph, data)?;
    let mut out = Vec::new();
    // GPU: one engine for the whole sweep; each configuration re-quantizes the resident
    // weights on the GPU (`strum_quantize`) instead of uploading them.
    let q0 = quantize_graph(graph, &configs[0])?;
    let e0 = Engine::new(graph, Mode::Integer, Some(&q0), Some(&scales))?;
    let mut ge = match gpu {
        Some((ctx, batch)) => {
            let mut ge = crate::gpu::engine::GpuEngine::new(ctx, &e0, batch)?;
            ge.enable_requantize(configs[0].weight_calib, configs[0].percentile);
            // The dataset is uploaded once for the whole sweep when it fits.
            let bytes = data.len() * data.per_image() * 4;
            let resident = match bytes <= RESIDENT_MAX_BYTES {
                true => ge.upload(&data.all()?, &labels).ok(),
                false => None,
            };
            Some((ge, resident))
        }
        None => None,
    };
    for cfg in configs {
        let hits: u64 = match &mut ge {
            None => {
                let q = quantize_graph(graph, cfg)?;
                let e = Engine::new(graph, Mode::Integer, Some(&q), Some(&scales))?;
                (0..data.len())
                    .into_par_iter()
                    .map(|i| -> Result<u64> {
                        let o = e.run(&data.image(i)?, false)?.0;
                        Ok((top_k(&o[0], 1)[0] as i32 == labels[i]) as u64)
                    })
                    .try_reduce(|| 0, |a, b| Ok(a + b))?
            }
            Some((ge, resident)) => {
                ge.requantize(cfg)?;
                match resident {
                    Some(r) => ge.count_resident(r)?[0] as u64,
                    // Too large to keep on the GPU: batch by batch.
                    None => {
                        let none = vec![-1i32; ge.batch];
                        let mut h = 0u64;
                        let mut done = 0;
                        while done < data.len() {
                            let m = ge.batch.min(data.len() - done);
                            let (_, c) = ge.run_topk(
                                &data.images(done, done + m)?,
                                &labels[done..done + m],
                                &none[..m],
                            )?;
                            h += c[0] as u64;
                            done += m;
                        }
                        h
                    }
                }
            }
        };
        out.push(SweepPoint {
            config: cfg.label(),
            top1_hits: hits,
            images: data.len(),
        });
    }
    Ok((out, t0.elapsed().as_secs_f64()))
}
