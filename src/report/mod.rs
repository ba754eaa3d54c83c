//! Reports: human tables on stdout, CSV files (units in column names, schema version in
//! every row) and JSON documents. Files are written to a temporary sibling and renamed into
//! place, so an interrupted or failed write never leaves a half-written file.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::Graph;
use crate::quant::{LayerQuant, ModelQuant};

/// Version of the `quantize` CSV layout (docs/csv-schemas.md).
pub const QUANT_CSV_SCHEMA: u32 = 2;

/// Write `bytes` to `path` atomically: a new temp file (unique name, created exclusively) in
/// the same directory, fsynced, renamed over `path`, then the directory fsynced. `path`
/// must be a regular file or not exist: a symlink, FIFO, device or folder there is refused
/// (renaming over it would replace it).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let err = |reason: String| Error::Output {
        path: path.display().to_string(),
        reason,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(err(format!("directory {} does not exist", dir.display())));
    }
    if let Ok(m) = std::fs::symlink_metadata(path)
        && !m.file_type().is_file()
    {
        return Err(err(
            "exists and is not a regular file (a link, folder, FIFO or device); \
             give a new path or remove it"
                .into(),
        ));
    }
    let tmp = dir.join(format!(
        ".{}.tmp{}-{}",
        path.file_name().and_then(|s| s.to_str()).unwrap_or("out"),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // the rename itself reaches the disk with the directory
        std::fs::File::open(dir).and_then(|d| d.sync_all())
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e.to_string()));
    }
    Ok(())
}

/// One row of the `quantize` CSV.
#[derive(Serialize)]
pub struct QuantRow<'a> {
    pub schema_version: u32,
    pub model: &'a str,
    pub config: &'a str,
    pub layer: &'a str,
    pub kind: &'a str,
    pub weight_shape: String,
    pub applied: &'a str,
    pub params: u64,
    pub bits_per_weight: f64,
    pub bits_per_weight_ideal_mask: f64,
    pub demoted_pct: f64,
    pub high_weights: u64,
    pub low_weights: u64,
    pub zero_weights: u64,
    pub weight_mse: f64,
    pub sqnr_db: f64,
    pub max_abs_err: f64,
}

fn shape_str(s: &[usize]) -> String {
    s.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

fn layer_row<'a>(model: &'a str, label: &'a str, l: &'a LayerQuant) -> QuantRow<'a> {
    QuantRow {
        schema_version: QUANT_CSV_SCHEMA,
        model,
        config: label,
        layer: &l.name,
        kind: l.kind,
        weight_shape: shape_str(&l.shape),
        applied: &l.applied,
        params: l.stats.params,
        bits_per_weight: l.stats.bits_per_weight,
        bits_per_weight_ideal_mask: l.stats.bits_per_weight_ideal_mask,
        demoted_pct: l.stats.demoted_pct,
        high_weights: l.stats.high,
        low_weights: l.stats.low,
        zero_weights: l.stats.zero,
        weight_mse: l.stats.mse,
        sqnr_db: l.stats.sqnr_db,
        max_abs_err: l.stats.max_abs_err,
    }
}

/// CSV text of a quantization: one row per layer and a final `__total__` row.
pub fn quant_csv(model: &str, q: &ModelQuant) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let label = q.summary.label.as_str();
    let e = |x: csv::Error| Error::Output {
        path: "csv".into(),
        reason: x.to_string(),
    };
    for l in &q.layers {
        w.serialize(layer_row(model, label, l)).map_err(e)?;
    }
    let s = &q.summary;
    w.serialize(QuantRow {
        schema_version: QUANT_CSV_SCHEMA,
        model,
        config: label,
        layer: "__total__",
        kind: "total",
        weight_shape: String::new(),
        applied: label,
        params: s.params,
        bits_per_weight: s.bits_per_weight,
        bits_per_weight_ideal_mask: s.bits_per_weight_ideal_mask,
        demoted_pct: s.demoted_pct,
        high_weights: s.high,
        low_weights: s.low,
        zero_weights: s.zero,
        weight_mse: s.mse,
        sqnr_db: s.sqnr_db,
        max_abs_err: s.max_abs_err,
    })
    .map_err(e)?;
    w.into_inner().map_err(|x| Error::Output {
        path: "csv".into(),
        reason: x.to_string(),
    })
}

/// JSON document of a quantization (non-finite numbers become null).
pub fn quant_json(model: &str, q: &ModelQuant) -> serde_json::Value {
    let layers: Vec<serde_json::Value> = q
        .layers
        .iter()
        .map(|l| {
            serde_json::json!({
                "name": l.name,
                "kind": l.kind,
                "weight_shape": l.shape,
                "applied": l.applied,
                "reason": l.reason,
                "params": l.stats.params,
                "bits_per_weight": l.stats.bits_per_weight,
                "high_weights": l.stats.high,
                "low_weights": l.stats.low,
                "zero_weights": l.stats.zero,
                "weight_mse": l.stats.mse,
                "sqnr_db": finite(l.stats.sqnr_db),
                "max_abs_err": l.stats.max_abs_err,
            })
        })
        .collect();
    let s = &q.summary;
    serde_json::json!({
        "model": model,
        "config": q.config,
        "label": s.label,
        "layers": layers,
        "summary": {
            "layers": s.layers,
            "params": s.params,
            "bits_per_weight": s.bits_per_weight,
            "high_weights": s.high,
            "low_weights": s.low,
            "zero_weights": s.zero,
            "weight_mse": s.mse,
            "sqnr_db": finite(s.sqnr_db),
            "max_abs_err": s.max_abs_err,
        }
    })
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn fmt_db(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "exact".into()
    }
}

/// Human-readable per-layer table.
pub fn quant_table(q: &ModelQuant) -> String {
    let mut s = format!(
        "{:<28} {:<12} {:<16} {:<10} {:>9} {:>8} {:>10} {:>8} {:>8} {:>8} {:>10}\n",
        "layer",
        "kind",
        "weights",
        "applied",
        "params",
        "bits/w",
        "demoted %",
        "high",
        "low",
        "zero",
        "SQNR dB"
    );
    for l in &q.layers {
        s += &format!(
            "{:<28} {:<12} {:<16} {:<10} {:>9} {:>8.3} {:>10.1} {:>8} {:>8} {:>8} {:>10}\n",
            truncate(&l.name, 28),
            l.kind,
            shape_str(&l.shape),
            l.applied,
            l.stats.params,
            l.stats.bits_per_weight,
            l.stats.demoted_pct,
            l.stats.high,
            l.stats.low,
            l.stats.zero,
            fmt_db(l.stats.sqnr_db)
        );
    }
    let m = &q.summary;
    s += &format!(
        "{:<28} {:<12} {:<16} {:<10} {:>9} {:>8.3} {:>10.1} {:>8} {:>8} {:>8} {:>10}\n",
        "total",
        "",
        "",
        m.label,
        m.params,
        m.bits_per_weight,
        m.demoted_pct,
        m.high,
        m.low,
        m.zero,
        fmt_db(m.sqnr_db)
    );
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}~", s.chars().take(n - 1).collect::<String>())
    }
}

/// `inspect`: one row per node.
pub fn inspect_table(g: &Graph) -> String {
    let mut s = format!(
        "model '{}' (opset {}), input {} {:?}\n{:<4} {:<28} {:<18} {:<20} {:>10} {:>14}\n",
        g.name,
        g.opset,
        g.input,
        g.input_shape,
        "#",
        "node",
        "op",
        "output shape",
        "params",
        "MACs"
    );
    let (mut tp, mut tm) = (0u64, 0u64);
    for (i, n) in g.nodes.iter().enumerate() {
        let (p, m) = (g.params(n), g.macs(n));
        tp += p;
        tm += m;
        let op = match &n.op {
            crate::model::Op::Conv(c) if c.is_depthwise() => "Conv (depthwise)".to_string(),
            crate::model::Op::Conv(c) if c.group > 1 => format!("Conv (group {})", c.group),
            o => o.name().to_string(),
        };
        s += &format!(
            "{:<4} {:<28} {:<18} {:<20} {:>10} {:>14}\n",
            i,
            truncate(&n.name, 28),
            op,
            format!("{:?}", g.shape(&n.output)),
            p,
            m
        );
    }
    s += &format!(
        "total: {} nodes, {} weight layers, {} params, {} MACs per image\n",
        g.nodes.len(),
        g.layers().len(),
        tp,
        tm
    );
    s
}

pub fn inspect_json(g: &Graph) -> serde_json::Value {
    let nodes: Vec<serde_json::Value> = g
        .nodes
        .iter()
        .map(|n| {
            serde_json::json!({
                "name": n.name, "op": n.op.name(), "inputs": n.inputs, "output": n.output,
                "output_shape": g.shape(&n.output), "params": g.params(n), "macs": g.macs(n),
            })
        })
        .collect();
    serde_json::json!({
        "name": g.name, "opset": g.opset, "input": g.input, "input_shape": g.input_shape,
        "outputs": g.outputs, "nodes": nodes,
        "weight_layers": g.layers().len(),
        "params": g.nodes.iter().map(|n| g.params(n)).sum::<u64>(),
        "macs": g.nodes.iter().map(|n| g.macs(n)).sum::<u64>(),
    })
}

/// One row of the `eval` CSV: a weight layer, with the run's summary repeated.
#[derive(Serialize)]
struct EvalRow<'a> {
    schema_version: u32,
    model: &'a str,
    dataset: &'a str,
    config: &'a str,
    mode: &'a str,
    device: &'a str,
    images: usize,
    layer_stats_images: usize,
    sqnr_images: usize,
    top1_frac: Option<f64>,
    top5_frac: Option<f64>,
    fp32_top1_frac: Option<f64>,
    agreement_top1_frac: Option<f64>,
    kl_mean_nats: Option<f64>,
    layer: &'a str,
    kind: &'a str,
    applied: &'a str,
    bits_per_weight: f64,
    bits_per_weight_ideal_mask: f64,
    demoted_pct: f64,
    macs_per_image: f64,
    act_zero_frac: f64,
    weight_zero_frac: f64,
    macs_w_high_per_image: f64,
    macs_w_low_per_image: f64,
    macs_w_zero_per_image: f64,
    macs_nz_act_w_high_per_image: f64,
    macs_nz_act_w_low_per_image: f64,
    macs_nz_act_w_zero_per_image: f64,
    output_sqnr_db: f64,
}

pub fn eval_csv(r: &crate::eval::EvalResult) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let e = |x: csv::Error| Error::Output {
        path: "csv".into(),
        reason: x.to_string(),
    };
    let s = &r.summary;
    for l in &r.layers {
        w.serialize(EvalRow {
            schema_version: crate::eval::EVAL_CSV_SCHEMA,
            model: &r.model,
            dataset: &r.dataset,
            config: &r.label,
            mode: r.mode,
            device: &r.device,
            images: s.images,
            layer_stats_images: r.layer_stats_images,
            sqnr_images: r.sqnr_images,
            top1_frac: s.top1,
            top5_frac: s.top5,
            fp32_top1_frac: s.fp32_top1,
            agreement_top1_frac: s.agreement_top1,
            kl_mean_nats: s.kl_mean,
            layer: &l.name,
            kind: &l.kind,
            applied: &l.applied,
            bits_per_weight: l.bits_per_weight,
            bits_per_weight_ideal_mask: l.bits_per_weight_ideal_mask,
            demoted_pct: l.demoted_pct,
            macs_per_image: l.macs_per_image,
            act_zero_frac: l.act_zero_frac,
            weight_zero_frac: l.weight_zero_frac,
            macs_w_high_per_image: l.macs_w_high_per_image,
            macs_w_low_per_image: l.macs_w_low_per_image,
            macs_w_zero_per_image: l.macs_w_zero_per_image,
            macs_nz_act_w_high_per_image: l.macs_nz_act_w_high_per_image,
            macs_nz_act_w_low_per_image: l.macs_nz_act_w_low_per_image,
            macs_nz_act_w_zero_per_image: l.macs_nz_act_w_zero_per_image,
            output_sqnr_db: l.output_sqnr_db,
        })
        .map_err(e)?;
    }
    w.into_inner().map_err(|x| Error::Output {
        path: "csv".into(),
        reason: x.to_string(),
    })
}

pub fn eval_json(r: &crate::eval::EvalResult) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or(serde_json::Value::Null);
    // JSON has no infinities: exact layers report null SQNR.
    if let Some(ls) = v.get_mut("layers").and_then(|l| l.as_array_mut()) {
        for (l, src) in ls.iter_mut().zip(&r.layers) {
            l["output_sqnr_db"] = serde_json::json!(finite(src.output_sqnr_db));
        }
    }
    v["schema_version"] = serde_json::json!(crate::eval::EVAL_CSV_SCHEMA);
    v
}

/// One line per graph output: its SQNR and largest error against FP32.
fn outputs_table(outs: &[crate::eval::OutputEval]) -> String {
    let mut t = String::from("  outputs against FP32:\n");
    for o in outs {
        t += &format!(
            "    {:<20} {:>8} values/image  SQNR {:>7} dB  max |error| {:.3e}{}\n",
            o.name,
            o.elems_per_image,
            if o.sqnr_db.is_finite() {
                format!("{:.2}", o.sqnr_db)
            } else {
                "exact".into()
            },
            o.max_abs_err,
            if o.class_scores {
                "  (class scores)"
            } else {
                ""
            }
        );
    }
    t
}

pub fn eval_table(r: &crate::eval::EvalResult) -> String {
    let s = &r.summary;
    let pct = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.2} %", 100.0 * v));
    let mut out = format!(
        "{} on {} ({} images), {} [{}] on {}\n  top-1 {}  top-5 {}  (FP32: top-1 {}  top-5 {})\n  agreement with FP32 top-1 {}, mean KL {} nats, {:.3} bits/weight\n\n",
        r.model,
        r.dataset,
        s.images,
        r.label,
        r.mode,
        if r.layer_stats_images < s.images {
            format!(
                "{} (per-layer statistics from the first {} images, CPU)",
                r.device, r.layer_stats_images
            )
        } else {
            r.device.clone()
        },
        pct(s.top1),
        pct(s.top5),
        pct(s.fp32_top1),
        pct(s.fp32_top5),
        pct(s.agreement_top1),
        s.kl_mean.map_or("-".to_string(), |k| format!("{k:.3e}")),
        s.bits_per_weight
    );
    if r.outputs.len() > 1 || !r.outputs.iter().any(|o| o.class_scores) {
        out.pop();
        out += &outputs_table(&r.outputs);
        out.push('\n');
    }
    if let (Some(d), Some([lo, hi]), Some(p), Some([b, c])) = (
        s.top1_delta_pts,
        s.top1_delta_ci95,
        s.mcnemar_p,
        s.discordant,
    ) {
        if r.mode != "fp32" {
            let verdict = if p < 0.05 {
                "significant at 5 %"
            } else {
                "not significant: no difference from FP32 can be concluded"
            };
            // insert before the blank line that ends the summary
            out.pop();
            out += &format!(
                "  top-1 change vs FP32 {d:+.2} points, 95 % interval [{lo:+.2}, {hi:+.2}], exact McNemar p = {p:.3} ({b} images lost, {c} gained; {verdict})\n\n"
            );
        }
    }
    if r.mode != "fp32" {
        let strum: Vec<&str> = r
            .layers
            .iter()
            .filter(|l| l.applied != "int8" && l.applied != "fp32")
            .map(|l| l.name.as_str())
            .collect();
        let others = if r.label.starts_with("perlayer-") {
            "the others INT8 by their per-layer settings"
        } else {
            "the others INT8 under the layer policy"
        };
        out += &format!(
            "  {} of {} weight layers get {} ({others}){}\n\n",
            strum.len(),
            r.layers.len(),
            r.label,
            if strum.is_empty() || strum.len() == r.layers.len() {
                String::new()
            } else {
                format!(": {}", strum.join(", "))
            }
        );
    }
    out += &format!(
        "{:<28} {:<10} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12}\n",
        "layer",
        "applied",
        "MACs/img",
        "act=0 %",
        "w=0 %",
        "MAC w8 %",
        "MAC w4 %",
        "MAC w0 %",
        "out SQNR dB"
    );
    for l in &r.layers {
        let tot = l.macs_per_image.max(1.0);
        out += &format!(
            "{:<28} {:<10} {:>12.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>12}\n",
            truncate(&l.name, 28),
            l.applied,
            l.macs_per_image,
            100.0 * l.act_zero_frac,
            100.0 * l.weight_zero_frac,
            100.0 * l.macs_w_high_per_image / tot,
            100.0 * l.macs_w_low_per_image / tot,
            100.0 * l.macs_w_zero_per_image / tot,
            fmt_db(l.output_sqnr_db)
        );
    }
    out += "  act=0 %: zero input activations; w=0 %: zero weights; MAC w8 / w4 / w0 %: MACs whose \
            weight is INT8, 4-bit or zero (they add to 100); out SQNR: the layer output against FP32.\n";
    out
}

mod hw;
pub use hw::*;
