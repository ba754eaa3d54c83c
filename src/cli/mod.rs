//! Command-line interface: the commands, which only call into the library and print (their
//! arguments are in `args`). `main.rs` is a thin wrapper around [`run`].

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::model::LoadOptions;
use crate::quant::config::*;
use crate::quant::quantize_graph;
use crate::report;

mod args;
pub use args::*;

fn load(m: &ModelArgs) -> Result<crate::model::Graph> {
    Ok(m.src.resolve(&m.model.display().to_string())?.0)
}

/// Stand-in for a symbolic input height / width when only the weights are read.
const WEIGHTS_ONLY_SIZE: usize = 224;

/// [`load`] for work that reads the weights only: a file whose input has symbolic
/// dimensions (and no `--input-shape` or card that fixes them) loads with a stand-in size;
/// if the graph's shapes do not work out at that size, the original error stands.
fn load_weights(m: &ModelArgs) -> Result<crate::model::Graph> {
    match load(m) {
        Err(Error::InvalidModel(msg)) if msg.contains("is symbolic") => {
            let opts = LoadOptions {
                symbolic_size: Some(WEIGHTS_ONLY_SIZE),
                ..m.src.load_options()
            };
            let spec = m.model.display().to_string();
            crate::zoo::resolve_with_card(&spec, &opts, m.src.card.as_deref())
                .map(|(g, _)| g)
                .map_err(|_| Error::InvalidModel(msg))
        }
        other => other,
    }
}

fn to_json(v: &serde_json::Value) -> Result<String> {
    serde_json::to_string_pretty(v).map_err(|e| Error::Output {
        path: "stdout".into(),
        reason: e.to_string(),
    })
}

/// Run a parsed command; returns what to print on stdout.
pub fn run(cli: Cli) -> Result<String> {
    match cli.command {
        Command::Inspect(a) => cmd_inspect(a),
        Command::Quantize(a) => cmd_quantize(a),
        Command::Devices(a) => cmd_devices(a),
        Command::Hw(a) => cmd_hw(a),
        Command::Bench(a) if a.peak => bench_peak(a),
        Command::Bench(a) if a.sweep.is_some() => bench_sweep(a),
        Command::Bench(a) => bench(a),
        Command::Export(a) => cmd_export(a),
        Command::Sweep(a) => cmd_sweep(a),
        Command::Merge(a) => cmd_merge(a),
        Command::Train(a) => train(&a),
        Command::Search(a) => search(&a),
        Command::HwValidate(a) => cmd_hw_validate(a),
        Command::Reproduce(a) => cmd_reproduce(a),
        Command::Eval(a) => cmd_eval(a),
    }
}

fn cmd_inspect(a: InspectArgs) -> Result<String> {
    let g = load(&a.model)?;
    if a.json {
        to_json(&report::inspect_json(&g))
    } else {
        Ok(report::inspect_table(&g))
    }
}

fn cmd_quantize(a: QuantizeArgs) -> Result<String> {
    let cfg = a.quant.to_config()?;
    let g = load_weights(&a.model)?;
    let q = quantize_graph(&g, &cfg)?;
    let model = a.model.model.display().to_string();
    if let Some(out) = &a.out {
        report::write_atomic(out, &report::quant_csv(&model, &q)?)?;
    }
    if a.json {
        to_json(&report::quant_json(&model, &q))
    } else {
        Ok(report::quant_table(&q))
    }
}

fn cmd_devices(a: DevicesArgs) -> Result<String> {
    let list = crate::gpu::adapters();
    if a.json {
        return to_json(&serde_json::json!({ "adapters": list }));
    }
    if list.is_empty() {
        return Ok("no GPU adapter found (install a Vulkan driver, e.g. Debian's mesa-vulkan-drivers for software Vulkan)\n".into());
    }
    let mut s = String::new();
    for d in list {
        s += &format!(
            "{} [{} {}] driver {} {}; max storage binding {} MiB, max workgroups/dim {}, max invocations/workgroup {}; packed 4x8-bit dot products: {}; GEMM tile {}\n",
            d.name,
            d.backend,
            d.device_type,
            d.driver,
            d.driver_info,
            d.max_storage_buffer_binding_size >> 20,
            d.max_compute_workgroups_per_dimension,
            d.max_compute_invocations_per_workgroup,
            if d.packed_dot_products { "yes" } else { "no" },
            d.gemm_tile
                .map(|(a, b)| format!("{a} x {b}"))
                .unwrap_or_else(|| "invalid STRUMLAB_GEMM_TILE".into())
        );
    }
    Ok(s)
}

fn cmd_hw(a: HwArgs) -> Result<String> {
    let cfg = a.quant.to_config()?;
    let (g, _) = a.src.resolve(&a.model)?;
    let claims = crate::hw::load_claims(&crate::data::repo_path(&a.claims))?;
    let arch = crate::data::repo_path(&a.arch);
    let variant = crate::hw::pe::Variant::resolve(a.variant, !cfg.layers.is_empty())?;
    let r = crate::hw::run(
        &arch,
        a.multiplier_law,
        a.pe_boundary,
        &g,
        &cfg,
        a.stats.as_deref(),
    )?;
    if let Some(out) = &a.out {
        report::write_atomic(out, &report::hw_csv(&r, &a.model)?)?;
    }
    let solved = match a.solve {
        true => Some(crate::hw::solve::for_report(
            &claims,
            &crate::data::repo_path(&a.solve_priors),
            &arch,
            &r,
            &a.model,
            a.figures.as_deref(),
        )?),
        false => None,
    };
    if a.json {
        let mut j = report::hw_json(&r, &claims, &a.model, variant);
        if let Some((sol, pts)) = &solved {
            j["solve"] = serde_json::to_value(sol).expect("serializes");
            j["solve"]["model_points"] = serde_json::to_value(pts).expect("serializes");
        }
        to_json(&j)
    } else {
        let mut t = report::hw_table(&r, &claims, &a.model, variant);
        if let Some((sol, pts)) = &solved {
            t += &report::solve_table(sol, pts);
        }
        if a.layers {
            t = format!("{t}\n{}", report::hw_layers_table(&r));
        }
        Ok(t)
    }
}

fn bench_peak(a: BenchArgs) -> Result<String> {
    let threads = rayon::current_num_threads();
    let (i8p, f32p) =
        crate::cpu::fast::peak::peaks(50_000_000, 3).ok_or_else(|| Error::InvalidArg {
            arg: "peak".into(),
            reason: "the peak benchmark needs AVX-512 VNNI".into(),
        })?;
    let v = serde_json::json!({ "threads": threads, "int8_gmac_s": i8p, "fp32_gmac_s": f32p,
        "int8_instruction": "vpdpbusd zmm", "fp32_instruction": "vfmadd231ps zmm" });
    if a.json {
        return to_json(&v);
    }
    Ok(format!(
        "peak over {threads} threads: INT8 {i8p:.1} GMAC/s (vpdpbusd), FP32 {f32p:.1} GMAC/s (FMA)\n"
    ))
}

fn bench_sweep(a: BenchArgs) -> Result<String> {
    let n = a.sweep.unwrap_or(1).max(1);
    let base = a.quant.to_config()?;
    let configs: Vec<_> = (0..n)
        .map(|i| crate::quant::QuantConfig {
            scheme: if i % 2 == 0 {
                crate::quant::Scheme::Mip2q
            } else {
                crate::quant::Scheme::Dliq
            },
            low: (i / 2) % base.block + 1,
            ..base.clone()
        })
        .collect();
    let (g, card) = a.src.resolve(&a.model)?;
    let data = crate::data::load(&card.dataset, &card, false)?;
    let (cpu_pts, cpu_s) = crate::eval::bench_sweep(&g, &data, &configs, None)?;
    let per_min = |s: f64| n as f64 / s * 60.0;
    let mut v = serde_json::json!({
        "model": a.model, "images": data.len(), "configs": n,
        "cpu": { "device": format!("cpu, {} threads", rayon::current_num_threads()),
                 "wall_s": cpu_s, "configs_per_min": per_min(cpu_s) },
        "points": cpu_pts,
    });
    let mut gpu = crate::gpu::GpuContext::for_device(a.device, false)?;
    if let Some(c) = &mut gpu {
        c.dp4a &= !a.portable_kernels;
    }
    if let Some(ctx) = &gpu {
        let (gpu_pts, gpu_s) = crate::eval::bench_sweep(&g, &data, &configs, Some((ctx, a.batch)))?;
        if gpu_pts != cpu_pts {
            return Err(Error::Gpu(
                "GPU and CPU engines disagree on a configuration's accuracy".into(),
            ));
        }
        v["gpu"] = serde_json::json!({
            "device": format!("{} ({:?})", ctx.info.name, ctx.info.backend),
            "batch": a.batch, "wall_s": gpu_s, "configs_per_min": per_min(gpu_s),
            "gpu_over_cpu": cpu_s / gpu_s,
        });
    }
    if a.json {
        return to_json(&v);
    }
    let mut s = format!(
        "{} configurations x {} images of {}: CPU {:.1} configs/min ({:.1} s)\n",
        n,
        data.len(),
        a.model,
        per_min(cpu_s),
        cpu_s
    );
    if let Some(gv) = v.get("gpu") {
        s += &format!(
            "GPU {}: {:.1} configs/min ({:.1} s), {:.2}x the CPU engine; same accuracy for every configuration\n",
            gv["device"].as_str().unwrap_or(""),
            gv["configs_per_min"].as_f64().unwrap_or(0.0),
            gv["wall_s"].as_f64().unwrap_or(0.0),
            gv["gpu_over_cpu"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(s)
}

fn bench(a: BenchArgs) -> Result<String> {
    let mut cfg = a.quant.to_config()?;
    let (scheme, mode) = crate::eval::scheme_and_mode(a.quant.scheme, a.mode)?;
    cfg.scheme = scheme;
    let (g, card) = a.src.resolve(&a.model)?;
    let data = crate::data::load(&card.dataset, &card, false)?;
    let (r, dev) = if let Some(mut ctx) = crate::gpu::GpuContext::for_device(a.device, false)? {
        ctx.dp4a &= !a.portable_kernels;
        let name = format!(
            "{} ({:?}{})",
            ctx.info.name,
            ctx.info.backend,
            if ctx.dp4a {
                ", packed dot products"
            } else {
                ""
            }
        );
        let r = crate::eval::bench_gpu(
            &ctx,
            &g,
            &data,
            &cfg,
            mode,
            a.images.max(1),
            a.repeat.max(1),
            a.batch,
        )?;
        (r, name)
    } else {
        let r = crate::eval::bench(
            &g,
            &data,
            &cfg,
            mode,
            a.kernels,
            a.images.max(1),
            a.repeat.max(1),
            a.cpu_batch,
        )?;
        let k = match a.kernels {
            crate::cpu::engine::Kernels::Fast => "fast",
            crate::cpu::engine::Kernels::Reference => "reference",
        };
        (
            r,
            format!("cpu, {} threads, {k} kernels", rayon::current_num_threads()),
        )
    };
    let v = serde_json::json!({
        "model": a.model, "mode": mode.as_str(), "config": cfg.label(), "images": a.images,
        "device": dev, "images_per_s": r,
    });
    if a.json {
        to_json(&v)
    } else {
        Ok(format!(
            "{} [{} {}]: {:.1} images/s on {}\n",
            a.model,
            mode.as_str(),
            cfg.label(),
            r,
            dev
        ))
    }
}

fn cmd_export(a: ExportArgs) -> Result<String> {
    let (g, card) = a.src.resolve(&a.model)?;
    let spec = a.data.clone().unwrap_or_else(|| card.dataset.clone());
    let data = crate::data::load_limited(&spec, &card, false, Some(a.limit))?;
    // Graphs with ops the exporter lacks still get inputs and logits (the peer then
    // runs the original file).
    let onnx = crate::model::export::to_onnx(&g, &Default::default()).ok();
    let e = crate::cpu::engine::Engine::new(&g, crate::cpu::engine::Mode::Fp32, None, None)?;
    let mut logits = Vec::new();
    for i in 0..data.len() {
        let l = e.run(&data.image(i)?, false)?.0.remove(0);
        if !l.iter().all(|v| v.is_finite()) {
            return Err(Error::InvalidModel(format!(
                "the FP32 outputs of image {i} are NaN or infinite (the model overflows in FP32); nothing exported"
            )));
        }
        logits.extend(l);
    }
    if !a.out.exists() {
        std::fs::create_dir_all(&a.out).map_err(|e| Error::Output {
            path: a.out.display().to_string(),
            reason: format!("cannot create the folder: {e}"),
        })?;
    }
    if !a.out.is_dir() {
        return Err(Error::Output {
            path: a.out.display().to_string(),
            reason: "exists and is not a directory".into(),
        });
    }
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    if let Some(onnx) = &onnx {
        report::write_atomic(&a.out.join("model.onnx"), onnx)?;
    }
    report::write_atomic(&a.out.join("inputs.f32"), &bytes(&data.all()?))?;
    report::write_atomic(&a.out.join("logits.f32"), &bytes(&logits))?;
    let mut ishape = data.shape.clone();
    ishape[0] = data.len();
    let meta = serde_json::json!({
        "model": a.model, "dataset": spec, "input": g.input, "input_shape": ishape,
        "logits_shape": [data.len(), logits.len() / data.len().max(1)], "labels": data.labels,
        "onnx_exported": onnx.is_some(),
    });
    report::write_atomic(&a.out.join("meta.json"), to_json(&meta)?.as_bytes())?;
    Ok(format!(
        "exported {} images of {} to {}\n",
        data.len(),
        a.model,
        a.out.display()
    ))
}

fn cmd_sweep(a: SweepArgs) -> Result<String> {
    let spec = crate::sweep::SweepSpec::load(&a.spec)?;
    let origin = a.spec.display().to_string();
    if a.dry_run {
        let runs = spec.expand(&origin)?;
        if a.json {
            return to_json(&serde_json::json!({ "sweep": spec.name, "runs": runs }));
        }
        let mut s = format!("{} runs in {}\n", runs.len(), spec.name);
        for r in &runs {
            if a.shard.is_some_and(|sh| !sh.owns(r.index)) {
                continue;
            }
            s += &format!(
                "{:>4}  {}  {}{}\n",
                r.index,
                r.id,
                r.key,
                r.invalid
                    .as_ref()
                    .map(|w| format!("  INVALID: {w}"))
                    .unwrap_or_default()
            );
        }
        return Ok(s);
    }
    let opts = crate::sweep::SweepOptions {
        out: a.out.clone().unwrap_or_else(|| spec.out_dir()),
        shard: a.shard,
        retry_failed: a.retry_failed,
        device: a.device,
        limit: a.limit,
        quiet: a.quiet,
        verbose: a.verbose,
        spec_path: origin,
        reference_cache: Some(crate::data::cache_dir().join("fp32-reference")),
        no_image_cache: a.no_cache,
    };
    let r = crate::sweep::run_sweep(&spec, &opts)?;
    if r.ran > 0 && r.failed == r.ran {
        return Err(Error::Data {
            path: r.rows_file.clone(),
            reason: format!(
                "all {} runs failed; each row's `error` column says why",
                r.ran
            ),
        });
    }
    if a.json {
        to_json(&serde_json::to_value(&r).unwrap_or_default())
    } else {
        Ok(format!(
            "sweep {}: {} of {} runs in this shard already done, ran {} ({} failed) in {:.1} s; rows: {}\n",
            spec.name, r.already_done, r.runs_in_shard, r.ran, r.failed, r.wall_s, r.rows_file
        ))
    }
}

fn cmd_merge(a: MergeArgs) -> Result<String> {
    let m = crate::sweep::merge(&a.dir)?;
    if a.json {
        to_json(&serde_json::to_value(&m).unwrap_or_default())
    } else {
        let left = if m.left_out > 0 {
            format!(
                "; {} rows of runs the manifest does not list (an earlier spec or --limit) left out",
                m.left_out
            )
        } else {
            String::new()
        };
        Ok(format!(
            "merged {} files: {} rows ({} failed runs) of {} expected -> {}{left}\n",
            m.files.len(),
            m.rows,
            m.failed,
            m.expected,
            m.merged
        ))
    }
}

fn cmd_hw_validate(a: HwValidateArgs) -> Result<String> {
    let r = crate::hw::validate::run(&crate::data::repo_path(&a.spec))?;
    let j = serde_json::to_value(&r).expect("serializes");
    if let Some(out) = &a.out {
        let mut text = serde_json::to_string_pretty(&j).expect("serializes");
        text.push('\n');
        report::write_atomic(out, text.as_bytes())?;
    }
    if a.json {
        return to_json(&j);
    }
    Ok(report::validate_table(&r))
}

fn cmd_reproduce(a: ReproduceArgs) -> Result<String> {
    let opts = crate::reproduce::Options {
        out: a.out.clone(),
        search_out: a.search_out.clone().unwrap_or_else(|| {
            if a.out == std::path::Path::new("results/reproduce") {
                PathBuf::from("results/search")
            } else {
                a.out.join("search")
            }
        }),
        models: a.models.clone(),
        limit: a.limit,
        device: a.device,
        quiet: a.quiet,
        verbose: a.verbose,
    };
    let r = crate::reproduce::run(&opts)?;
    Ok(r)
}

fn cmd_eval(a: EvalArgs) -> Result<String> {
    let (scheme, mode) = crate::eval::scheme_and_mode(a.quant.scheme, a.mode)?;
    let mut cfg = crate::run::RunConfig {
        quant: QuantConfig {
            scheme,
            ..a.quant.to_config()?
        },
        mode,
        calib: a.calib.to_calib()?,
        device: a.device,
        limit: a.limit,
        image_cache: !a.no_cache,
        gpu_stats_images: a.stats_images,
        check_cpu: a.check_cpu,
        check_reference: a.check_reference,
        quiet: a.quiet,
        ..Default::default()
    };
    let (g, card) = a.src.resolve(&a.model)?;
    cfg.logits_output = card.logits_output.clone();
    let spec = a.data.clone().unwrap_or_else(|| card.dataset.clone());
    if let Some(w) = crate::data::label_mismatch(&spec, &card) {
        eprintln!("{w}");
    }
    let data = crate::data::load_with(&spec, &card, &cfg.load_opts(a.skip_bad_images))?;
    let mut refs = crate::eval::RefCache::on_disk();
    let r = crate::eval::run(&g, &a.model, &data, &cfg, &mut refs)?;
    if a.check_cpu {
        match r.summary.gpu_cpu_mismatches {
            Some(0) => eprintln!(
                "check: GPU ({}) and CPU engines agree on all {} images",
                r.device, r.summary.images
            ),
            Some(m) => {
                return Err(Error::Gpu(format!(
                    "--check-cpu: the GPU and CPU engines disagree on {m} of {} images",
                    r.summary.images
                )));
            }
            None => {
                return Err(Error::InvalidArg {
                    arg: "check-cpu".into(),
                    reason: "the run did not use the GPU (use --device gpu)".into(),
                });
            }
        }
    }
    match r.summary.reference_mismatches {
        Some(0) => eprintln!(
            "check: fast and reference kernels agree on every logit of all {} images",
            r.summary.images
        ),
        Some(m) => {
            return Err(Error::InvalidArg {
                arg: "check-reference".into(),
                reason: format!(
                    "the fast and reference kernels disagree on {m} of {} images",
                    r.summary.images
                ),
            });
        }
        None => {}
    }
    if let Some(out) = &a.out {
        report::write_atomic(out, &report::eval_csv(&r)?)?;
    }
    if a.json {
        to_json(&report::eval_json(&r))
    } else {
        Ok(report::eval_table(&r))
    }
}

fn search(a: &SearchArgs) -> Result<String> {
    let (g, card) = a.src.resolve(&a.model)?;
    let spec = a.data.clone().unwrap_or_else(|| card.dataset.clone());
    let lo = crate::data::LoadOpts {
        limit: a.limit,
        cache: !a.no_cache,
        quiet: a.quiet,
        ..Default::default()
    };
    let data = crate::data::load_with(&spec, &card, &lo)?;
    let opts = crate::search::Options {
        model: a.model.clone(),
        max_drop_pts: a.max_drop,
        schemes: a.schemes.clone(),
        lows: a.lows.clone(),
        objective: a.objective,
        search_frac: a.search_frac,
        sens_images: a.sens_images,
        refine: a.refine,
        margin_se: a.margin_se,
        base: a.quant.to_config()?,
        calib: a.calib.to_calib()?,
        quiet: a.quiet,
    };
    let arch = crate::data::repo_path(&a.arch);
    let o = crate::search::run(&g, &data, &arch, &opts)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| crate::search::default_out(&a.model));
    let files = crate::search::output::write(&out, &o)?;
    if a.json {
        return to_json(&crate::search::output::json(&o));
    }
    Ok(format!(
        "{}\nwrote {}\n",
        crate::search::output::table(&o),
        files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

#[cfg(feature = "train")]
fn train(a: &TrainArgs) -> Result<String> {
    let opts = crate::train::TrainOptions {
        recipe: a.recipe.clone(),
        models: a.models.clone(),
        epochs: a.epochs,
        limit_train: a.limit_train,
        out: a.out.clone(),
        quiet: a.quiet,
    };
    let done = crate::train::run(&opts)?;
    if a.json {
        return to_json(&serde_json::json!({ "models": done }));
    }
    let mut s = String::from(
        "model               arch         params  epochs  train s  ONNX bytes  FP32 top-1 %\n",
    );
    for m in &done {
        s += &format!(
            "{:<19} {:<12} {:>6} {:>7} {:>8.0} {:>11} {:>13.2}\n",
            m.name,
            m.arch,
            m.params,
            m.epochs.len(),
            m.train_wall_s,
            m.onnx_bytes,
            100.0 * m.fp32_top1
        );
    }
    Ok(s)
}

#[cfg(not(feature = "train"))]
fn train(_: &TrainArgs) -> Result<String> {
    Err(Error::InvalidArg {
        arg: "train".into(),
        reason: "this strumlab was built without the `train` feature; run: cargo run --release --features train -- train".into(),
    })
}
