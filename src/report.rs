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
pub const QUANT_CSV_SCHEMA: u32 = 1;

/// Write `bytes` to `path` atomically (temp file in the same directory, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
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
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|s| s.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
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
        "{:<28} {:<12} {:<16} {:<10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10}\n",
        "layer", "kind", "weights", "applied", "params", "bits/w", "high", "low", "zero", "SQNR dB"
    );
    for l in &q.layers {
        s += &format!(
            "{:<28} {:<12} {:<16} {:<10} {:>9} {:>8.3} {:>8} {:>8} {:>8} {:>10}\n",
            truncate(&l.name, 28),
            l.kind,
            shape_str(&l.shape),
            l.applied,
            l.stats.params,
            l.stats.bits_per_weight,
            l.stats.high,
            l.stats.low,
            l.stats.zero,
            fmt_db(l.stats.sqnr_db)
        );
    }
    let m = &q.summary;
    s += &format!(
        "{:<28} {:<12} {:<16} {:<10} {:>9} {:>8.3} {:>8} {:>8} {:>8} {:>10}\n",
        "total",
        "",
        "",
        m.label,
        m.params,
        m.bits_per_weight,
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
    images: usize,
    top1_frac: Option<f64>,
    top5_frac: Option<f64>,
    fp32_top1_frac: Option<f64>,
    agreement_top1_frac: f64,
    kl_mean_nats: f64,
    layer: &'a str,
    kind: &'a str,
    applied: &'a str,
    bits_per_weight: f64,
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
            images: s.images,
            top1_frac: s.top1,
            top5_frac: s.top5,
            fp32_top1_frac: s.fp32_top1,
            agreement_top1_frac: s.agreement_top1,
            kl_mean_nats: s.kl_mean,
            layer: &l.name,
            kind: &l.kind,
            applied: &l.applied,
            bits_per_weight: l.bits_per_weight,
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

pub fn eval_table(r: &crate::eval::EvalResult) -> String {
    let s = &r.summary;
    let pct = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.2} %", 100.0 * v));
    let mut out = format!(
        "{} on {} ({} images), {} [{}]\n  top-1 {}  top-5 {}  (FP32: top-1 {}  top-5 {})\n  agreement with FP32 top-1 {:.2} %, mean KL {:.3e} nats, {:.3} bits/weight\n\n",
        r.model,
        r.dataset,
        s.images,
        r.label,
        r.mode,
        pct(s.top1),
        pct(s.top5),
        pct(s.fp32_top1),
        pct(s.fp32_top5),
        100.0 * s.agreement_top1,
        s.kl_mean,
        s.bits_per_weight
    );
    out += &format!(
        "{:<28} {:<10} {:>12} {:>8} {:>8} {:>10} {:>10} {:>10}\n",
        "layer", "applied", "MACs/img", "act 0 %", "w 0 %", "MAC int8 %", "MAC low %", "out SQNR"
    );
    for l in &r.layers {
        let tot = l.macs_per_image.max(1.0);
        out += &format!(
            "{:<28} {:<10} {:>12.0} {:>8.1} {:>8.1} {:>10.1} {:>10.1} {:>10}\n",
            truncate(&l.name, 28),
            l.applied,
            l.macs_per_image,
            100.0 * l.act_zero_frac,
            100.0 * l.weight_zero_frac,
            100.0 * l.macs_w_high_per_image / tot,
            100.0 * l.macs_w_low_per_image / tot,
            fmt_db(l.output_sqnr_db)
        );
    }
    out
}
