//! Sweeps: expand a spec (spec.rs), evaluate every run (CPU or GPU engine), feed its
//! measured layer activity to the FlexNN model, and append one CSV row per run, flushed as
//! the run finishes. Resumable (rows already present are skipped), shardable (`--shard i/n`),
//! and mergeable (`merge`). Layout and columns: docs/sweeps.md, docs/csv-schemas.md.

pub mod spec;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::cpu::engine::Mode;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::{Device, EvalResult, Exec, RunConfig};
use crate::hw::pe::Variant;
use crate::model::{Graph, LoadOptions};
use crate::quant::Scheme;
mod resume;
use resume::{check_resume, lock_out};
pub use spec::{Run, Shard, SweepSpec};

/// Version of the sweep row layout (`schema` column).
pub const SWEEP_CSV_SCHEMA: u32 = 2;

/// One CSV row per run. Units are in the column names; empty cells mean "not applicable"
/// (e.g. no labels, no hardware model for the scheme, or a failed run).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RunRow {
    pub schema_version: u32,
    pub run_id: String,
    pub run_index: usize,
    /// `ok` or `error`
    pub status: String,
    pub error: String,
    pub model: String,
    pub dataset: String,
    pub images: usize,
    pub mode: String,
    pub device: String,
    pub config: String,
    pub scheme: String,
    pub block: usize,
    pub low: usize,
    pub l_policy: String,
    /// Non-default parameters of the run (JSON object).
    pub params: String,
    pub top1_pct: Option<f64>,
    pub top5_pct: Option<f64>,
    pub fp32_top1_pct: Option<f64>,
    pub agreement_top1_pct: Option<f64>,
    /// Top-1 change against FP32 on the same images, its 95 % interval (points) and the
    /// exact McNemar p-value (`stats`).
    pub top1_delta_pts: Option<f64>,
    pub top1_delta_ci95_lo_pts: Option<f64>,
    pub top1_delta_ci95_hi_pts: Option<f64>,
    pub mcnemar_p: Option<f64>,
    pub kl_mean_nats: Option<f64>,
    pub bits_per_weight: Option<f64>,
    pub weight_sqnr_db: Option<f64>,
    pub hw_arch: String,
    pub pe_area_baseline_um2: Option<f64>,
    pub pe_area_static_um2: Option<f64>,
    pub pe_area_dynamic_um2: Option<f64>,
    pub pe_array_power_baseline_mw: Option<f64>,
    pub pe_array_power_static_mw: Option<f64>,
    pub pe_array_power_dynamic_mw: Option<f64>,
    pub pe_power_reduction_static_pct: Option<f64>,
    pub pe_area_reduction_static_pct: Option<f64>,
    pub dpu_power_reduction_static_pct: Option<f64>,
    pub dpu_area_reduction_static_pct: Option<f64>,
    pub pe_power_reduction_dynamic_pct: Option<f64>,
    pub pe_area_reduction_dynamic_pct: Option<f64>,
    pub dpu_power_reduction_dynamic_pct: Option<f64>,
    pub dpu_area_reduction_dynamic_pct: Option<f64>,
    /// PE array + SRAM + DRAM energy, static StruM vs baseline, no calibration.
    pub dpu_energy_reduction_bottom_up_static_pct: Option<f64>,
    pub network_energy_baseline_uj: Option<f64>,
    pub eval_s: f64,
    pub hw_s: f64,
    pub finished_utc: String,
}

#[derive(Clone, Debug)]
pub struct SweepOptions {
    pub out: PathBuf,
    pub shard: Option<Shard>,
    /// Re-run the runs whose rows say `error` (their old rows are dropped).
    pub retry_failed: bool,
    /// Override every run's device.
    pub device: Option<Device>,
    /// Override every run's image limit.
    pub limit: Option<usize>,
    pub quiet: bool,
    pub verbose: bool,
    /// Path of the spec (recorded in the manifest).
    pub spec_path: String,
    /// Where FP32 references and activation scales are kept between sweeps (`None`: in
    /// memory only). The CLI passes `<asset cache>/fp32-reference`.
    pub reference_cache: Option<PathBuf>,
    /// Decode image folders into a temporary file instead of the preprocessed-image cache
    /// (`--no-cache`; `data::pcache`).
    pub no_image_cache: bool,
}

/// What a sweep did.
#[derive(Clone, Debug, Serialize)]
pub struct SweepSummary {
    pub out: String,
    pub rows_file: String,
    pub runs_in_spec: usize,
    pub runs_in_shard: usize,
    pub already_done: usize,
    pub ran: usize,
    pub failed: usize,
    /// FP32 passes and activation calibrations this sweep computed (the rest came from
    /// memory or from the reference cache on disk)
    pub fp32_passes: usize,
    pub calib_passes: usize,
    pub wall_s: f64,
}

/// File names inside a sweep directory.
pub fn rows_file(out: &Path, shard: Option<Shard>) -> PathBuf {
    out.join(format!(
        "runs{}.csv",
        shard.map(|s| s.suffix()).unwrap_or_default()
    ))
}
fn manifest_file(out: &Path, shard: Option<Shard>) -> PathBuf {
    out.join(format!(
        "manifest{}.json",
        shard.map(|s| s.suffix()).unwrap_or_default()
    ))
}
/// Per-layer eval CSV of a run.
pub fn layers_file(out: &Path, id: &str) -> PathBuf {
    out.join("layers").join(format!("{id}.csv"))
}

fn out_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Output {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Read the rows of a sweep CSV. A last line cut short by a kill (no trailing newline) is
/// removed from the file first: that run did not finish and will run again.
pub fn read_rows(path: &Path, repair: bool) -> Result<Vec<RunRow>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let keep = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None => 0,
    };
    if keep < bytes.len() && repair {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| out_err(path, e))?;
        f.set_len(keep as u64).map_err(|e| out_err(path, e))?;
    }
    let mut r = csv::Reader::from_reader(&bytes[..keep]);
    let want: Vec<String> = header();
    if keep > 0 {
        let have: Vec<String> = r
            .headers()
            .map_err(|e| data_err(path, e))?
            .iter()
            .map(String::from)
            .collect();
        if have != want {
            return Err(data_err(
                path,
                format!(
                    "columns differ from sweep CSV schema {SWEEP_CSV_SCHEMA}; write this sweep to a new directory"
                ),
            ));
        }
    }
    r.deserialize::<RunRow>()
        .map(|row| {
            let row = row.map_err(|e| data_err(path, e))?;
            if row.schema_version != SWEEP_CSV_SCHEMA {
                return Err(data_err(
                    path,
                    format!(
                        "run {} was written with sweep CSV schema_version {}, this strumlab writes {SWEEP_CSV_SCHEMA}; write this sweep to a new directory",
                        row.run_id, row.schema_version
                    ),
                ));
            }
            Ok(row)
        })
        .collect()
}

fn data_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Data {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Column names of [`RunRow`].
pub fn header() -> Vec<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.serialize(RunRow::default()).expect("serializes");
    let bytes = w.into_inner().expect("in memory");
    let text = String::from_utf8(bytes).expect("utf-8");
    text.lines()
        .next()
        .unwrap_or("")
        .split(',')
        .map(String::from)
        .collect()
}

fn row_bytes(row: &RunRow, with_header: bool) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(with_header)
        .from_writer(Vec::new());
    w.serialize(row).expect("serializes");
    w.into_inner().expect("in memory")
}

/// Current UTC time as RFC 3339 (seconds).
pub fn utc_now() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (s.div_euclid(86_400), s.rem_euclid(86_400));
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `git describe`-like revision of the repository we run from, `unknown` outside git.
pub fn git_revision() -> String {
    let root = crate::data::repo_root();
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(&root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "HEAD"]) {
        Some(rev) => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .map(|s| !s.is_empty())
                .unwrap_or(false);
            if dirty { format!("{rev}+dirty") } else { rev }
        }
        None => "unknown".into(),
    }
}

/// Models, datasets, hardware descriptions and the GPU context, loaded once per sweep.
#[derive(Default)]
pub struct Cache {
    graphs: HashMap<String, std::result::Result<(Graph, crate::data::card::ModelCard), String>>,
    /// by (model, data, image limit: 0 = all): an image folder decodes only what a run reads
    data: HashMap<(String, String, usize), std::result::Result<Dataset, String>>,
    hw: HashMap<
        String,
        std::result::Result<(crate::hw::config::Arch, crate::hw::config::Tech), String>,
    >,
    gpu: Option<std::result::Result<crate::gpu::GpuContext, String>>,
    /// FP32 references and activation scales (`eval::reference`): one FP32 pass per model
    /// and images for the whole sweep.
    pub refs: crate::eval::RefCache,
    /// `--no-cache`: image folders are not kept in the preprocessed-image cache.
    pub no_image_cache: bool,
    pub quiet: bool,
}

impl Cache {
    /// The run's model: its file (or zoo name), input shape and card.
    fn graph(&mut self, p: &spec::RunParams) -> Result<&(Graph, crate::data::card::ModelCard)> {
        let key = format!("{}\0{:?}\0{}", p.model, p.input_shape, p.card);
        self.graphs
            .entry(key)
            .or_insert_with(|| {
                let opts = LoadOptions {
                    input_shape: (!p.input_shape.is_empty()).then(|| p.input_shape.clone()),
                    ..Default::default()
                };
                let card = (!p.card.is_empty()).then(|| std::path::Path::new(&p.card));
                crate::zoo::resolve_with_card(&p.model, &opts, card).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| Error::Data {
                path: p.model.clone(),
                reason: e.clone(),
            })
    }
    fn dataset(&mut self, p: &spec::RunParams, limit: usize) -> Result<Dataset> {
        let card = self.graph(p)?.1.clone();
        let (model, data) = (&p.model, &p.data);
        let spec = if data.is_empty() {
            card.dataset.clone()
        } else {
            data.to_string()
        };
        self.data
            .entry((format!("{model}\0{}", p.card), spec.clone(), limit))
            .or_insert_with(|| {
                let o = crate::data::LoadOpts {
                    limit: (limit > 0).then_some(limit),
                    cache: !self.no_image_cache,
                    quiet: self.quiet,
                    ..Default::default()
                };
                crate::data::load_with(&spec, &card, &o).map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|e| Error::Data {
                path: spec,
                reason: e,
            })
    }
    fn hw(&mut self, path: &str) -> Result<&(crate::hw::config::Arch, crate::hw::config::Tech)> {
        self.hw
            .entry(path.to_string())
            .or_insert_with(|| {
                let p = if Path::new(path).exists() {
                    PathBuf::from(path)
                } else {
                    crate::data::repo_root().join(path)
                };
                crate::hw::config::load(&p).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| Error::Config {
                path: path.into(),
                reason: e.clone(),
            })
    }
    /// The GPU context, opened on first use.
    pub fn gpu(&mut self) -> Result<&crate::gpu::GpuContext> {
        self.gpu
            .get_or_insert_with(|| crate::gpu::GpuContext::new().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::Gpu(e.clone()))
    }
    /// The GPU adapter's name if one was opened.
    pub fn adapter(&self) -> Option<String> {
        match &self.gpu {
            Some(Ok(c)) => Some(format!("{} ({:?})", c.info.name, c.info.backend)),
            _ => None,
        }
    }
}

/// Evaluate one run: accuracy on the CPU or GPU engine, then the hardware model on the
/// measured layer activity. Returns the row and the eval result (for the per-layer CSV).
pub fn execute(run: &Run, cache: &mut Cache, opts: &SweepOptions) -> (RunRow, Option<EvalResult>) {
    let t0 = Instant::now();
    let mut row = RunRow {
        schema_version: SWEEP_CSV_SCHEMA,
        run_id: run.id.clone(),
        run_index: run.index,
        model: run.params.model.clone(),
        mode: run.params.mode.as_str().into(),
        config: if run.params.mode == Mode::Fp32 {
            "fp32".into()
        } else {
            run.quant.label()
        },
        scheme: run.quant.scheme.as_str().into(),
        block: run.quant.block,
        low: run.quant.low,
        l_policy: format!("{:?}", run.quant.l_policy).to_lowercase(),
        params: run.key.clone(),
        hw_arch: run.params.hw.clone(),
        ..Default::default()
    };
    let result = execute_inner(run, cache, opts, &mut row);
    row.finished_utc = utc_now();
    match result {
        Ok(r) => {
            row.status = "ok".into();
            (row, Some(r))
        }
        Err(e) => {
            row.status = "error".into();
            row.error = e.to_string();
            row.eval_s = t0.elapsed().as_secs_f64();
            (row, None)
        }
    }
}

fn execute_inner(
    run: &Run,
    cache: &mut Cache,
    opts: &SweepOptions,
    row: &mut RunRow,
) -> Result<EvalResult> {
    if let Some(why) = &run.invalid {
        return Err(Error::InvalidArg {
            arg: "run".into(),
            reason: why.clone(),
        });
    }
    let p = &run.params;
    let t0 = Instant::now();
    let limit = opts.limit.unwrap_or(p.limit);
    let mut data = cache.dataset(p, limit)?;
    if limit > 0 {
        data.truncate(limit);
    }
    let cfg = RunConfig {
        quant: run.quant.clone(),
        mode: p.mode,
        calib: crate::run::ActCalib {
            images: p.calib_images,
            method: p.act_calib,
            percentile: p.act_percentile,
        },
        quiet: true,
        check_reference: false,
        logits_output: cache.graph(p)?.1.logits_output.clone(),
        ..Default::default()
    };
    let device = opts.device.unwrap_or(p.device);
    let want_gpu = match device {
        Device::Cpu => false,
        Device::Gpu => true,
        // Software adapters (lavapipe) are slower than the CPU engine here (results/bench):
        // `auto` takes hardware GPUs only; `gpu` takes any adapter.
        Device::Auto => cache.gpu().is_ok_and(|c| c.is_hardware()),
    };
    let graph = cache.graph(p)?.0.clone();
    let r = if want_gpu {
        cache.gpu()?;
        let Cache {
            gpu: Some(Ok(ctx)),
            refs,
            ..
        } = &mut *cache
        else {
            unreachable!("the GPU context opened above")
        };
        let exec = Exec::Gpu {
            ctx,
            stats_images: 256,
            batch: 64,
            check_cpu: false,
        };
        match crate::eval::evaluate_with(&graph, &p.model, &data, &cfg, &exec, refs) {
            // auto: a model the GPU engine cannot run falls back to the CPU.
            Err(Error::UnsupportedOp { .. } | Error::Gpu(_)) if device == Device::Auto => {
                crate::eval::evaluate_with(&graph, &p.model, &data, &cfg, &Exec::Cpu, refs)?
            }
            other => other?,
        }
    } else {
        crate::eval::evaluate_with(&graph, &p.model, &data, &cfg, &Exec::Cpu, &mut cache.refs)?
    };
    row.eval_s = t0.elapsed().as_secs_f64();
    row.dataset = r.dataset.clone();
    row.images = r.summary.images;
    row.device = r.device.clone();
    let pct = |x: Option<f64>| x.map(|v| 100.0 * v);
    row.top1_pct = pct(r.summary.top1);
    row.top5_pct = pct(r.summary.top5);
    row.fp32_top1_pct = pct(r.summary.fp32_top1);
    row.agreement_top1_pct = r.summary.agreement_top1.map(|a| 100.0 * a);
    row.kl_mean_nats = r.summary.kl_mean;
    row.top1_delta_pts = r.summary.top1_delta_pts;
    row.top1_delta_ci95_lo_pts = r.summary.top1_delta_ci95.map(|c| c[0]);
    row.top1_delta_ci95_hi_pts = r.summary.top1_delta_ci95.map(|c| c[1]);
    row.mcnemar_p = r.summary.mcnemar_p;
    if p.mode != Mode::Fp32 {
        let q = r.quant.clone().expect("a quantized run keeps its weights");
        row.bits_per_weight = Some(q.summary.bits_per_weight);
        row.weight_sqnr_db = Some(q.summary.sqnr_db).filter(|v| v.is_finite());
        let hw_ok = run.quant.scheme.is_strum() || run.quant.scheme == Scheme::Int8;
        if !p.hw.is_empty() && hw_ok {
            let t1 = Instant::now();
            let (arch, tech) = cache.hw(&p.hw)?.clone();
            let act = crate::hw::activity_from_eval(&r.layers);
            let h = crate::hw::evaluate(&arch, &tech, &graph, &q, Some(&act))?;
            // A per-layer configuration has no static design: its static columns stay empty.
            let s = crate::hw::reductions(&h, Variant::Static);
            let d = crate::hw::reductions(&h, Variant::Dynamic).expect("always");
            let st = h.strum_static.as_ref();
            row.pe_area_baseline_um2 = Some(h.baseline.pe_area_um2);
            row.pe_area_static_um2 = st.map(|x| x.pe_area_um2);
            row.pe_area_dynamic_um2 = Some(h.strum_dynamic.pe_area_um2);
            row.pe_array_power_baseline_mw = Some(h.baseline.pe_array_power_mw);
            row.pe_array_power_static_mw = st.map(|x| x.pe_array_power_mw);
            row.pe_array_power_dynamic_mw = Some(h.strum_dynamic.pe_array_power_mw);
            row.pe_power_reduction_static_pct = s.as_ref().map(|x| x.pe_power_reduction_pct);
            row.pe_area_reduction_static_pct = s.as_ref().map(|x| x.pe_area_reduction_pct);
            row.dpu_power_reduction_static_pct = s.as_ref().map(|x| x.dpu_power_reduction_pct);
            row.dpu_area_reduction_static_pct = s.as_ref().map(|x| x.dpu_area_reduction_pct);
            row.pe_power_reduction_dynamic_pct = Some(d.pe_power_reduction_pct);
            row.pe_area_reduction_dynamic_pct = Some(d.pe_area_reduction_pct);
            row.dpu_power_reduction_dynamic_pct = Some(d.dpu_power_reduction_pct);
            row.dpu_area_reduction_dynamic_pct = Some(d.dpu_area_reduction_pct);
            row.dpu_energy_reduction_bottom_up_static_pct =
                s.as_ref().map(|x| x.dpu_power_reduction_bottom_up_pct);
            let flex = h
                .dataflow_totals_pj
                .last()
                .map(|(_, e)| *e)
                .unwrap_or_default();
            row.network_energy_baseline_uj = Some(flex * 1e-6);
            row.hw_s = t1.elapsed().as_secs_f64();
        }
    }
    Ok(r)
}

/// The manifest written next to the rows.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Manifest {
    pub sweep: String,
    pub spec_path: String,
    pub spec: SweepSpecRecord,
    /// Every run of the spec (all shards): index, id and parameters.
    pub runs: Vec<ManifestRun>,
    pub shard: Option<String>,
    pub git_revision: String,
    pub strumlab_version: String,
    pub adapter: Option<String>,
    pub cpu_threads: usize,
    pub started_utc: String,
    pub rows_csv_schema: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct SweepSpecRecord {
    pub base: toml::Table,
    pub matrix: toml::Table,
    pub exclude: Vec<toml::Table>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ManifestRun {
    pub index: usize,
    pub id: String,
    pub params: String,
    pub invalid: Option<String>,
}

/// Run (or resume) a sweep. Rows already in the output are skipped; each finished run is
/// appended and flushed before the next starts.
pub fn run_sweep(spec: &SweepSpec, opts: &SweepOptions) -> Result<SweepSummary> {
    let t0 = Instant::now();
    let spec = &spec.with_limit(opts.limit);
    let runs = spec.expand(&opts.spec_path)?;
    let mine: Vec<&Run> = runs
        .iter()
        .filter(|r| opts.shard.is_none_or(|s| s.owns(r.index)))
        .collect();
    std::fs::create_dir_all(opts.out.join("layers")).map_err(|e| out_err(&opts.out, e))?;
    let _lock = lock_out(&opts.out, opts.shard)?;
    let rows_path = rows_file(&opts.out, opts.shard);
    let mut existing = read_rows(&rows_path, true)?;
    check_resume(&mut existing, &runs, opts, &rows_path)?;
    let stale = |r: &RunRow| {
        (opts.retry_failed && r.status != "ok")
            || (r.status == "ok" && !layers_file(&opts.out, &r.run_id).is_file())
    };
    if existing.iter().any(stale) {
        existing.retain(|r| !stale(r));
        let mut bytes = Vec::new();
        for (i, r) in existing.iter().enumerate() {
            bytes.extend(row_bytes(r, i == 0));
        }
        crate::report::write_atomic(&rows_path, &bytes)?;
    }
    let done: HashSet<String> = existing.iter().map(|r| r.run_id.clone()).collect();
    let todo: Vec<&Run> = mine
        .iter()
        .copied()
        .filter(|r| !done.contains(&r.id))
        .collect();
    let mut cache = Cache {
        refs: opts
            .reference_cache
            .clone()
            .map_or_else(crate::eval::RefCache::memory, crate::eval::RefCache::in_dir),
        no_image_cache: opts.no_image_cache,
        quiet: opts.quiet,
        ..Default::default()
    };
    if opts.device != Some(Device::Cpu) && todo.iter().any(|r| r.params.device != Device::Cpu) {
        // Open the adapter once, up front, so the manifest names it.
        let _ = cache.gpu();
    }
    let manifest = Manifest {
        sweep: spec.name.clone(),
        spec_path: opts.spec_path.clone(),
        spec: SweepSpecRecord {
            base: spec.base.clone(),
            matrix: spec.matrix.clone(),
            exclude: spec.exclude.clone(),
        },
        runs: runs
            .iter()
            .map(|r| ManifestRun {
                index: r.index,
                id: r.id.clone(),
                params: r.key.clone(),
                invalid: r.invalid.clone(),
            })
            .collect(),
        shard: opts.shard.map(|s| format!("{}/{}", s.index, s.count)),
        git_revision: git_revision(),
        strumlab_version: env!("CARGO_PKG_VERSION").into(),
        adapter: cache.adapter(),
        cpu_threads: rayon::current_num_threads(),
        started_utc: utc_now(),
        rows_csv_schema: SWEEP_CSV_SCHEMA,
    };
    let mpath = manifest_file(&opts.out, opts.shard);
    crate::report::write_atomic(
        &mpath,
        serde_json::to_string_pretty(&manifest)
            .map_err(|e| out_err(&mpath, e))?
            .as_bytes(),
    )?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&rows_path)
        .map_err(|e| out_err(&rows_path, e))?;
    let mut need_header = f.metadata().map(|m| m.len() == 0).unwrap_or(true);
    let progress =
        crate::progress::Progress::new(&format!("sweep {}", spec.name), todo.len(), opts.quiet);
    let mut failed = 0;
    for run in &todo {
        progress.check()?;
        let (row, result) = execute(run, &mut cache, opts);
        // a run cut short by a cancel leaves no row: it runs again on resume
        progress.check()?;
        if let Some(r) = &result {
            crate::report::write_atomic(
                &layers_file(&opts.out, &run.id),
                &crate::report::eval_csv(r)?,
            )?;
        }
        if row.status != "ok" {
            failed += 1;
        }
        // One write per row, then flush to the OS and the disk: a kill loses at most the
        // run in progress, never a finished row.
        f.write_all(&row_bytes(&row, need_header))
            .and_then(|_| f.flush())
            .and_then(|_| f.sync_data())
            .map_err(|e| out_err(&rows_path, e))?;
        need_header = false;
        progress.inc();
        if opts.verbose {
            let extra = run.extra_params();
            eprintln!(
                "run {} [{}] {} {}{}{}: {} in {:.2} s (eval {:.2} s, hw {:.3} s){}",
                run.index,
                run.id,
                row.model,
                row.config,
                if extra.is_empty() { "" } else { " " },
                extra,
                row.status,
                row.eval_s + row.hw_s,
                row.eval_s,
                row.hw_s,
                if row.error.is_empty() {
                    String::new()
                } else {
                    format!(": {}", row.error)
                }
            );
        }
    }
    drop(progress);
    Ok(SweepSummary {
        out: opts.out.display().to_string(),
        rows_file: rows_path.display().to_string(),
        runs_in_spec: runs.len(),
        runs_in_shard: mine.len(),
        already_done: mine.len() - todo.len(),
        ran: todo.len(),
        failed,
        fp32_passes: cache.refs.fp32_passes,
        calib_passes: cache.refs.calib_passes,
        wall_s: t0.elapsed().as_secs_f64(),
    })
}

/// What `merge` found.
#[derive(Clone, Debug, Serialize)]
pub struct MergeSummary {
    pub files: Vec<String>,
    pub rows: usize,
    pub expected: usize,
    pub failed: usize,
    /// Rows of runs the manifest does not list (an earlier spec or `--limit` wrote them into
    /// the folder), not merged.
    pub left_out: usize,
    pub merged: String,
}

/// Join the shard outputs of a sweep directory into `merged.csv`, in run order, checking
/// that every run of the manifest appears exactly once; rows of other runs (an earlier spec
/// or image limit) are left out and counted.
pub fn merge(dir: &Path) -> Result<MergeSummary> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let mut row_files = Vec::new();
    let mut manifests = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("runs") && name.ends_with(".csv") {
            row_files.push(e.path());
        } else if name.starts_with("manifest") && name.ends_with(".json") {
            manifests.push(e.path());
        }
    }
    row_files.sort();
    manifests.sort();
    if manifests.is_empty() {
        return Err(data_err(dir, "no manifest*.json: not a sweep directory"));
    }
    let mut expected: Option<Vec<ManifestRun>> = None;
    for m in &manifests {
        let text = std::fs::read_to_string(m).map_err(|e| Error::Io {
            path: m.clone(),
            source: e,
        })?;
        let man: Manifest = serde_json::from_str(&text).map_err(|e| data_err(m, e))?;
        match &expected {
            None => expected = Some(man.runs),
            Some(x) if *x != man.runs => {
                return Err(data_err(
                    m,
                    "lists other runs than the first manifest: shards of different specs in one directory",
                ));
            }
            _ => {}
        }
    }
    let expected = expected.expect("at least one manifest");
    let mut by_id: HashMap<String, (RunRow, PathBuf)> = HashMap::new();
    let mut problems = Vec::new();
    for f in &row_files {
        for r in read_rows(f, false)? {
            if let Some((_, other)) = by_id.get(&r.run_id) {
                problems.push(format!(
                    "run {} appears twice ({} and {})",
                    r.run_id,
                    other.display(),
                    f.display()
                ));
                continue;
            }
            by_id.insert(r.run_id.clone(), (r, f.clone()));
        }
    }
    // Rows of runs the manifest does not list were kept by a sweep of another spec or
    // image limit into this folder (a quick `--limit 100` first): left out and counted.
    let ids: HashSet<&str> = expected.iter().map(|r| r.id.as_str()).collect();
    let before = by_id.len();
    by_id.retain(|id, _| ids.contains(id.as_str()));
    let left_out = before - by_id.len();
    let missing: Vec<&str> = expected
        .iter()
        .filter(|r| !by_id.contains_key(&r.id))
        .map(|r| r.id.as_str())
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "{} of {} runs have no row (first: {}); run the missing shards (a sweep resumes)",
            missing.len(),
            expected.len(),
            missing[..missing.len().min(5)].join(", ")
        ));
    }
    if !problems.is_empty() {
        return Err(data_err(dir, problems.join("; ")));
    }
    let mut rows: Vec<RunRow> = by_id.into_values().map(|(r, _)| r).collect();
    rows.sort_by_key(|r| r.run_index);
    let mut bytes = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        bytes.extend(row_bytes(r, i == 0));
    }
    let merged = dir.join("merged.csv");
    crate::report::write_atomic(&merged, &bytes)?;
    Ok(MergeSummary {
        files: row_files.iter().map(|p| p.display().to_string()).collect(),
        rows: rows.len(),
        expected: expected.len(),
        failed: rows.iter().filter(|r| r.status != "ok").count(),
        left_out,
        merged: merged.display().to_string(),
    })
}
