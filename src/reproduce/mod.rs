//! `strumlab reproduce`: the accuracy sweep of experiments/reproduce.toml (resumable, like
//! any sweep), then the tables (accuracy, hardware, dataflow) and figures of
//! results/reproduce, all from the sweep's rows and per-layer statistics.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::data::repo_root;
use crate::error::{Error, Result};
use crate::eval::Device;
use crate::hw::pe::{PeKind, Variant};
use crate::model::LoadOptions;
use crate::plot::Chart;
use crate::quant::Scheme;
use crate::quant::config::DliqShift;
use crate::sweep::{RunRow, SweepOptions, SweepSpec};

mod figures;
mod hardware;
mod page;
mod search;

use figures::{accuracy_figure, sqnr_figure};
pub use page::cpu_model;
use page::html_report;

/// Version of the reproduction CSV layouts (accuracy.csv, hw.csv, dataflow.csv).
pub const REPRODUCE_CSV_SCHEMA: u32 = 3;

/// The sweep behind the accuracy table.
pub const SPEC: &str = "experiments/reproduce.toml";

pub struct Options {
    pub out: PathBuf,
    /// `<search_out>/<model>/`: the configuration searches (reused while current)
    pub search_out: PathBuf,
    pub models: Option<Vec<String>>,
    pub limit: Option<usize>,
    pub device: Option<Device>,
    pub quiet: bool,
    pub verbose: bool,
}

fn out_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Output {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Can `model` and its card's dataset be loaded here? (EfficientNet needs fetched assets.)
fn available(model: &str) -> std::result::Result<(), String> {
    let (_, card) =
        crate::zoo::resolve(model, &LoadOptions::default()).map_err(|e| e.to_string())?;
    crate::data::load(&card.dataset, &card, false).map_err(|e| e.to_string())?;
    Ok(())
}

fn csv_bytes<T: serde::Serialize>(rows: &[T]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r).map_err(|e| out_err(Path::new("csv"), e))?;
    }
    w.into_inner().map_err(|e| out_err(Path::new("csv"), e))
}

#[derive(serde::Serialize)]
pub(crate) struct AccuracyRow<'a> {
    schema_version: u32,
    model: &'a str,
    dataset: &'a str,
    images: usize,
    config: &'a str,
    scheme: &'a str,
    block: Option<usize>,
    low: Option<usize>,
    low_per_block: Option<f64>,
    bits_per_weight: Option<f64>,
    top1_pct: Option<f64>,
    fp32_top1_pct: Option<f64>,
    agreement_top1_pct: Option<f64>,
    top1_delta_pts: Option<f64>,
    top1_delta_ci95_lo_pts: Option<f64>,
    top1_delta_ci95_hi_pts: Option<f64>,
    mcnemar_p: Option<f64>,
    kl_mean_nats: Option<f64>,
    run_id: &'a str,
}

#[derive(serde::Serialize)]
struct HwRow {
    schema_version: u32,
    model: String,
    config: String,
    design: &'static str,
    pe_area_um2: f64,
    pe_array_power_mw: f64,
    pe_power_reduction_pct: f64,
    pe_area_reduction_pct: f64,
    dpu_power_reduction_pct: f64,
    dpu_area_reduction_pct: f64,
}

/// A reduction (%, positive = saved) printed as a change: `-17.8`, and `0.0` for none.
fn change(reduction: f64, digits: usize) -> String {
    if reduction == 0.0 {
        format!("{:.digits$}", 0.0)
    } else {
        format!("{:.digits$}", -reduction)
    }
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

/// Run everything; returns the text printed on stdout.
pub fn run(o: &Options) -> Result<String> {
    let t0 = Instant::now();
    let spec_path = repo_root().join(SPEC);
    let mut spec = SweepSpec::load(&spec_path)?;
    let listed: Vec<String> = match &o.models {
        Some(m) => m.clone(),
        None => spec
            .matrix
            .get("model")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_else(|| vec!["mnist-8".into()]),
    };
    let mut models = Vec::new();
    let mut skipped = Vec::new();
    for m in &listed {
        match available(m) {
            Ok(()) => models.push(m.clone()),
            Err(e) => {
                if !o.quiet {
                    eprintln!("notice: {m} left out: {e}");
                }
                skipped.push((m.clone(), e));
            }
        }
    }
    if models.is_empty() {
        return Err(Error::Data {
            path: SPEC.into(),
            reason: "none of its models can be loaded here".into(),
        });
    }
    let full_spec = spec.clone();
    spec.matrix.insert(
        "model".into(),
        toml::Value::Array(
            models
                .iter()
                .map(|m| toml::Value::String(m.clone()))
                .collect(),
        ),
    );
    let acc_dir = o.out.join("accuracy");
    let sopts = SweepOptions {
        out: acc_dir.clone(),
        shard: None,
        retry_failed: true,
        device: o.device,
        limit: o.limit,
        quiet: o.quiet,
        verbose: o.verbose,
        spec_path: SPEC.into(),
        reference_cache: Some(crate::data::cache_dir().join("fp32-reference")),
        no_image_cache: false,
    };
    let summary = crate::sweep::run_sweep(&spec, &sopts)?;
    let sweep_s = t0.elapsed().as_secs_f64();
    // Rows of every listed model: a model whose files are missing here keeps the rows an
    // earlier reproduce wrote (a clone without the fetched EfficientNets keeps theirs).
    let runs = full_spec.with_limit(o.limit).expand(SPEC)?;
    let ids: HashMap<&str, usize> = runs.iter().map(|r| (r.id.as_str(), r.index)).collect();
    let mut rows: Vec<RunRow> =
        crate::sweep::read_rows(&crate::sweep::rows_file(&acc_dir, None), false)?
            .into_iter()
            .filter(|r| ids.contains_key(r.run_id.as_str()))
            .collect();
    rows.sort_by_key(|r| ids[r.run_id.as_str()]);
    let reused = complete_models(&runs, &rows, &skipped);
    rows.retain(|r| models.contains(&r.model) || reused.contains(&r.model));
    let table_models: Vec<String> = listed
        .iter()
        .filter(|m| models.contains(m) || reused.contains(m))
        .cloned()
        .collect();
    let failed: Vec<&RunRow> = rows.iter().filter(|r| r.status != "ok").collect();
    if !failed.is_empty() {
        return Err(Error::Data {
            path: acc_dir.display().to_string(),
            reason: format!(
                "{} runs failed, first: {} {}: {}",
                failed.len(),
                failed[0].model,
                failed[0].config,
                failed[0].error
            ),
        });
    }
    let fig = o.out.join("figures");
    std::fs::create_dir_all(&fig).map_err(|e| out_err(&fig, e))?;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Reproduction tables\n\nGenerated by `strumlab reproduce` (schema {REPRODUCE_CSV_SCHEMA}); sweep spec {SPEC}; git {}.\n",
        crate::sweep::git_revision()
    );
    let left_out: Vec<&str> = skipped
        .iter()
        .map(|s| s.0.as_str())
        .filter(|m| !reused.iter().any(|r| r == m))
        .collect();
    if !left_out.is_empty() {
        let _ = writeln!(
            md,
            "Models left out (files not present, no earlier rows): {}.\n",
            left_out.join(", ")
        );
    }
    if !reused.is_empty() {
        let _ = writeln!(
            md,
            "Kept from earlier rows in accuracy/runs.csv (model files not present here, so not recomputed; their weight-SQNR figures are the earlier ones): {}.\n",
            reused.join(", ")
        );
    }

    // (a) accuracy
    let mut acc_rows = Vec::new();
    for r in &rows {
        let strum = r.scheme == "mip2q" || r.scheme == "dliq";
        acc_rows.push(AccuracyRow {
            schema_version: REPRODUCE_CSV_SCHEMA,
            model: &r.model,
            dataset: &r.dataset,
            images: r.images,
            config: &r.config,
            scheme: &r.scheme,
            block: strum.then_some(r.block),
            low: strum.then_some(r.low),
            low_per_block: strum.then(|| r.low as f64 / r.block as f64),
            bits_per_weight: if r.scheme == "fp32" {
                Some(32.0)
            } else {
                r.bits_per_weight
            },
            top1_pct: r.top1_pct,
            fp32_top1_pct: r.fp32_top1_pct,
            agreement_top1_pct: r.agreement_top1_pct,
            top1_delta_pts: r.top1_delta_pts.filter(|_| r.scheme != "fp32"),
            top1_delta_ci95_lo_pts: r.top1_delta_ci95_lo_pts.filter(|_| r.scheme != "fp32"),
            top1_delta_ci95_hi_pts: r.top1_delta_ci95_hi_pts.filter(|_| r.scheme != "fp32"),
            mcnemar_p: r.mcnemar_p.filter(|_| r.scheme != "fp32"),
            kl_mean_nats: r.kl_mean_nats,
            run_id: &r.run_id,
        });
    }
    crate::report::write_atomic(&o.out.join("accuracy.csv"), &csv_bytes(&acc_rows)?)?;
    let _ = writeln!(
        md,
        "## (a) Accuracy: top-1 % (agreement with FP32 top-1 %), integer mode\n\n\
         A `*` marks a top-1 change against FP32 that is significant at 5 % (exact McNemar \
         test on the images the two runs classify differently; accuracy.csv has the change, \
         its 95 % interval and p). Unmarked quantized cells do not differ significantly from \
         FP32. Bits/weight: storage of the whole model's weights under the default layer \
         policy (first, last and depthwise layers stay INT8 at 8 bits), counting each block's \
         B-bit precision mask and DLIQ's 3-bit shift; a layer's last block, padded to B, is \
         counted whole (docs/packed-format.md).\n"
    );
    let fracs = [0.25, 0.5, 0.75, 1.0];
    for m in &table_models {
        let mr: Vec<&AccuracyRow> = acc_rows.iter().filter(|r| r.model == m).collect();
        let Some(first) = mr.first() else { continue };
        let _ = writeln!(md, "### {m} ({}, {} images)\n", first.dataset, first.images);
        let _ = writeln!(
            md,
            "| scheme | B | L/B = 1/4 | 1/2 | 3/4 | 1 | bits/weight at L/B = 1/2 |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|");
        let cell = |r: &AccuracyRow| {
            let star = if r.mcnemar_p.is_some_and(|p| p < 0.05) {
                "*"
            } else {
                ""
            };
            format!(
                "{}{star} ({})",
                fmt_opt(r.top1_pct, 2),
                fmt_opt(r.agreement_top1_pct, 2)
            )
        };
        for s in ["fp32", "int8"] {
            if let Some(r) = mr.iter().find(|r| r.scheme == s) {
                let _ = writeln!(
                    md,
                    "| {} | – | {} | | | | {} |",
                    s.to_uppercase(),
                    cell(r),
                    fmt_opt(r.bits_per_weight, 3)
                );
            }
        }
        for s in ["dliq", "mip2q"] {
            for b in [8usize, 16] {
                let cells: Vec<String> = fracs
                    .iter()
                    .map(|f| {
                        mr.iter()
                            .find(|r| {
                                r.scheme == s && r.block == Some(b) && r.low_per_block == Some(*f)
                            })
                            .map(|r| cell(r))
                            .unwrap_or_else(|| "–".into())
                    })
                    .collect();
                let bits = mr
                    .iter()
                    .find(|r| r.scheme == s && r.block == Some(b) && r.low_per_block == Some(0.5))
                    .and_then(|r| r.bits_per_weight);
                let _ = writeln!(
                    md,
                    "| {} | {b} | {} | {} |",
                    s.to_uppercase(),
                    cells.join(" | "),
                    fmt_opt(bits, 3)
                );
            }
        }
        let _ = writeln!(md);
        // Figure: accuracy vs bits/weight, Pareto front.
        accuracy_figure(m, first.images, &mr, &fig)?;
        // Figure: per-layer weight SQNR, every layer quantized (needs the model's weights).
        if models.contains(m) {
            sqnr_figure(m, &fig)?;
        }
    }

    // (b) hardware
    let claims = crate::hw::load_claims(&repo_root().join("experiments/hw/strum-claims.toml"))?;
    let mut hw_rows = Vec::new();
    for r in rows
        .iter()
        .filter(|r| (r.scheme == "mip2q" || r.scheme == "dliq") && r.block == 8 && r.low == 4)
    {
        let (Some(base_p), Some(base_a)) = (r.pe_array_power_baseline_mw, r.pe_area_baseline_um2)
        else {
            continue;
        };
        let v = |x: Option<f64>| x.unwrap_or(f64::NAN);
        hw_rows.push(HwRow {
            schema_version: REPRODUCE_CSV_SCHEMA,
            model: r.model.clone(),
            config: r.config.clone(),
            design: "baseline INT8",
            pe_area_um2: base_a,
            pe_array_power_mw: base_p,
            pe_power_reduction_pct: 0.0,
            pe_area_reduction_pct: 0.0,
            dpu_power_reduction_pct: 0.0,
            dpu_area_reduction_pct: 0.0,
        });
        hw_rows.push(HwRow {
            schema_version: REPRODUCE_CSV_SCHEMA,
            model: r.model.clone(),
            config: r.config.clone(),
            design: "static StruM",
            pe_area_um2: v(r.pe_area_static_um2),
            pe_array_power_mw: v(r.pe_array_power_static_mw),
            pe_power_reduction_pct: v(r.pe_power_reduction_static_pct),
            pe_area_reduction_pct: v(r.pe_area_reduction_static_pct),
            dpu_power_reduction_pct: v(r.dpu_power_reduction_static_pct),
            dpu_area_reduction_pct: v(r.dpu_area_reduction_static_pct),
        });
        hw_rows.push(HwRow {
            schema_version: REPRODUCE_CSV_SCHEMA,
            model: r.model.clone(),
            config: r.config.clone(),
            design: "dynamic StruM",
            pe_area_um2: v(r.pe_area_dynamic_um2),
            pe_array_power_mw: v(r.pe_array_power_dynamic_mw),
            pe_power_reduction_pct: v(r.pe_power_reduction_dynamic_pct),
            pe_area_reduction_pct: v(r.pe_area_reduction_dynamic_pct),
            dpu_power_reduction_pct: v(r.dpu_power_reduction_dynamic_pct),
            dpu_area_reduction_pct: v(r.dpu_area_reduction_dynamic_pct),
        });
    }
    crate::report::write_atomic(&o.out.join("hw.csv"), &csv_bytes(&hw_rows)?)?;
    let _ = writeln!(
        md,
        "## (b) Hardware: FlexNN PE, B = 8, L = 4 (experiments/hw/flexnn.toml, measured layer activity)\n"
    );
    let _ = writeln!(
        md,
        "| model | config | design | PE area µm² | PE-array power mW | PE power change % | PE area change % | DPU power change % | DPU area change % |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for h in &hw_rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.2} | {} | {} | {} | {} |",
            h.model,
            h.config,
            h.design,
            h.pe_area_um2,
            h.pe_array_power_mw,
            change(h.pe_power_reduction_pct, 1),
            change(h.pe_area_reduction_pct, 1),
            change(h.dpu_power_reduction_pct, 1),
            change(h.dpu_area_reduction_pct, 2)
        );
    }
    // The paper's bands as changes: [31, 34] % saved -> "−34..−31".
    let r2 = |a: [f64; 2]| {
        if a[0] == a[1] {
            format!("about −{}", a[0])
        } else {
            format!("−{}..−{}", a[1], a[0])
        }
    };
    let _ = writeln!(
        md,
        "| paper | StruM | static (area), either (power) | | | {} | {} | {} | {} |\n\nChange vs the INT8 baseline: negative = StruM saves (hw.csv carries the same as positive `*_reduction_pct`). Paper: {}.\n",
        r2(claims.pe_power_reduction_pct),
        r2(claims.pe_area_reduction_pct),
        r2(claims.dpu_power_reduction_pct),
        r2(claims.dpu_area_reduction_pct),
        claims.source
    );
    // Figures: PE area breakdown (model independent) and PE-array power per model/design.
    let (arch, tech) = crate::hw::config::load(&repo_root().join(crate::sweep::spec::DEFAULT_HW))?;
    let kinds: Vec<(&str, PeKind)> = vec![
        ("INT8", PeKind::Baseline),
        (
            "MIP2Q static",
            PeKind::Strum {
                scheme: Scheme::Mip2q,
                dliq_shift: DliqShift::Block,
                block: 8,
                low: 4,
                variant: Variant::Static,
            },
        ),
        (
            "MIP2Q dynamic",
            PeKind::Strum {
                scheme: Scheme::Mip2q,
                dliq_shift: DliqShift::Block,
                block: 8,
                low: 4,
                variant: Variant::Dynamic,
            },
        ),
        (
            "DLIQ static",
            PeKind::Strum {
                scheme: Scheme::Dliq,
                dliq_shift: DliqShift::Block,
                block: 8,
                low: 4,
                variant: Variant::Static,
            },
        ),
        (
            "DLIQ dynamic",
            PeKind::Strum {
                scheme: Scheme::Dliq,
                dliq_shift: DliqShift::Block,
                block: 8,
                low: 4,
                variant: Variant::Dynamic,
            },
        ),
    ];
    let areas: Vec<crate::hw::pe::PeArea> = kinds
        .iter()
        .map(|(_, k)| crate::hw::pe::area(&arch, &tech, *k))
        .collect();
    // Each component as % of the INT8 PE's total area, so the bars read as "what is left".
    let base_total = areas.first().map_or(1.0, |a| {
        a.multipliers_um2
            + a.cheap_lanes_um2
            + a.adder_tree_um2
            + a.accumulator_um2
            + a.register_files_um2
            + a.sparsity_logic_um2
            + a.steering_um2
            + a.control_um2
    });
    let comp = |f: fn(&crate::hw::pe::PeArea) -> f64| {
        areas
            .iter()
            .map(|a| 100.0 * f(a) / base_total)
            .collect::<Vec<f64>>()
    };
    crate::plot::save(
        &Chart::Bars {
            title: format!(
                "PE area by component, B = 8, L = 4 ({}; INT8 PE = 100 % = {:.0} µm²)",
                arch.name, base_total
            ),
            y_label: "area, % of the INT8 PE".into(),
            categories: kinds.iter().map(|k| k.0.to_string()).collect(),
            groups: vec![
                ("INT8 multipliers".into(), comp(|a| a.multipliers_um2)),
                ("cheap lanes".into(), comp(|a| a.cheap_lanes_um2)),
                ("adder tree".into(), comp(|a| a.adder_tree_um2)),
                ("accumulator".into(), comp(|a| a.accumulator_um2)),
                ("register files".into(), comp(|a| a.register_files_um2)),
                ("sparsity logic".into(), comp(|a| a.sparsity_logic_um2)),
                ("steering".into(), comp(|a| a.steering_um2)),
                ("control".into(), comp(|a| a.control_um2)),
            ],
            stacked: true,
        },
        &fig.join("pe-area-breakdown"),
    )?;
    // PE power change per model, one bar per (scheme, variant): grouped by model, the
    // schemes in the legend, negative = saving (the sign used everywhere in the tables).
    let mut models_hw: Vec<String> = Vec::new();
    for h in &hw_rows {
        if !models_hw.contains(&h.model) {
            models_hw.push(h.model.clone());
        }
    }
    let mut groups = Vec::new();
    for (scheme, label) in [("mip2q", "MIP2Q"), ("dliq", "DLIQ")] {
        for (design, v) in [("static StruM", "static"), ("dynamic StruM", "dynamic")] {
            let vals: Vec<f64> = models_hw
                .iter()
                .map(|m| {
                    hw_rows
                        .iter()
                        .find(|h| {
                            &h.model == m && h.design == design && h.config.starts_with(scheme)
                        })
                        .map_or(f64::NAN, |h| -h.pe_power_reduction_pct)
                })
                .collect();
            groups.push((format!("{label} {v}"), vals));
        }
    }
    let short = |m: &String| m.replace("mobilenetv2", "mbv2").replace("effnet-", "");
    crate::plot::save(
        &Chart::Bars {
            title: "PE-array power change vs INT8, B = 8, L = 4, measured activity".into(),
            y_label: "PE-array power change, %".into(),
            categories: models_hw.iter().map(short).collect(),
            groups,
            stacked: false,
        },
        &fig.join("pe-power"),
    )?;

    // (c) dataflow, (d) PE boundaries
    let hw = hardware::Inputs {
        rows: &rows,
        acc_dir: &acc_dir,
        models: &models,
        arch: &arch,
        tech: &tech,
    };
    hardware::dataflow(&mut md, &hw, &reused, &o.out, &fig)?;
    hardware::boundaries(&mut md, &hw, &claims)?;
    search::section(&mut md, &o.search_out, &fig, &models, o.limit, o.quiet)?;
    let wall = t0.elapsed().as_secs_f64();
    let _ = writeln!(
        md,
        "\nSweep: {} runs ({} run now, {} reused from an earlier reproduce), {} threads; this reproduce took {:.0} s.",
        summary.runs_in_spec,
        summary.ran,
        summary.already_done,
        rayon::current_num_threads(),
        wall
    );
    crate::report::write_atomic(&o.out.join("tables.md"), md.as_bytes())?;
    let times = [sweep_s, wall - sweep_s, wall];
    let page = html_report(&o.out, &md, &claims, &summary, times)?;
    crate::report::write_atomic(&o.out.join("index.html"), page.as_bytes())?;
    Ok(format!(
        "{md}\nwrote {}/{{index.html, tables.md, accuracy.csv, hw.csv, dataflow.csv, figures/}} in {wall:.0} s\n",
        o.out.display()
    ))
}

/// Skipped models (files missing here) whose every run has an `ok` row already.
fn complete_models(
    runs: &[crate::sweep::Run],
    rows: &[RunRow],
    skipped: &[(String, String)],
) -> Vec<String> {
    skipped
        .iter()
        .map(|s| s.0.clone())
        .filter(|m| {
            let mine: Vec<&str> = runs
                .iter()
                .filter(|r| r.params.model == *m)
                .map(|r| r.id.as_str())
                .collect();
            !mine.is_empty()
                && mine
                    .iter()
                    .all(|id| rows.iter().any(|r| r.run_id == *id && r.status == "ok"))
        })
        .collect()
}
