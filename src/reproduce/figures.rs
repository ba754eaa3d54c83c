//! The figures of `reproduce` drawn from the rows: accuracy against bits per weight (with
//! Wilson intervals and the Pareto front) and per-layer weight SQNR.

use std::path::Path;

use super::AccuracyRow;
use crate::error::Result;
use crate::model::LoadOptions;
use crate::plot::{Chart, Series};
use crate::quant::{QuantConfig, Scheme, quantize_graph};

/// Wilson 95 % score interval of a proportion `p` (%) over `n` trials, in %.
fn wilson95(p_pct: f64, n: usize) -> [f64; 2] {
    let (z, n) = (1.959_963_984_540_054f64, n.max(1) as f64);
    let p = p_pct / 100.0;
    let den = 1.0 + z * z / n;
    let mid = (p + z * z / (2.0 * n)) / den;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / den;
    [100.0 * (mid - half), 100.0 * (mid + half)]
}

/// Top-1 (or agreement) against bits/weight: one marker shape per scheme, each point tagged
/// with its L, Wilson 95 % intervals, FP32 as a dashed reference line, the Pareto front.
pub(super) fn accuracy_figure(
    m: &str,
    images: usize,
    mr: &[&AccuracyRow],
    fig: &Path,
) -> Result<()> {
    use crate::plot::Marker;
    let labelled = mr.iter().all(|r| r.top1_pct.is_some()) && images >= 1000;
    let y = |r: &AccuracyRow| {
        if labelled {
            r.top1_pct
        } else {
            r.agreement_top1_pct
        }
    };
    let mut series = Vec::new();
    for (name, s, b, marker) in [
        ("INT8", "int8", None, Marker::Square),
        ("DLIQ B=8", "dliq", Some(8), Marker::Triangle),
        ("DLIQ B=16", "dliq", Some(16), Marker::Cross),
        ("MIP2Q B=8", "mip2q", Some(8), Marker::Circle),
        ("MIP2Q B=16", "mip2q", Some(16), Marker::Ring),
    ] {
        let rows: Vec<&&AccuracyRow> = mr
            .iter()
            .filter(|r| r.scheme == s && (b.is_none() || r.block == b))
            .filter(|r| r.bits_per_weight.is_some() && y(r).is_some())
            .collect();
        // A spec may leave a column out for a model (the zoo runs B = 8 only): no legend
        // entry without points.
        if rows.is_empty() {
            continue;
        }
        series.push(Series {
            name: name.into(),
            points: rows
                .iter()
                .map(|r| (r.bits_per_weight.unwrap(), y(r).unwrap()))
                .collect(),
            markers: true,
            marker,
            point_labels: rows
                .iter()
                .map(|r| r.low.map(|l| format!("L={l}")).unwrap_or_default())
                .collect(),
            y_err: rows
                .iter()
                .map(|r| wilson95(y(r).unwrap(), r.images))
                .collect(),
            ..Default::default()
        });
    }
    let mut all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.points.clone()).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let mut front: Vec<(f64, f64)> = Vec::new();
    for p in all {
        if front.last().is_none_or(|l| p.1 > l.1) {
            front.push(p);
        }
    }
    series.push(Series {
        name: "Pareto front".into(),
        points: front,
        line: true,
        dashed: true,
        ..Default::default()
    });
    let fp32 = mr.iter().find(|r| r.scheme == "fp32").and_then(|r| y(r));
    let hlines = fp32
        .filter(|_| labelled)
        .map(|v| vec![(format!("FP32 ({v:.2} %)"), v)])
        .unwrap_or_default();
    crate::plot::save(
        &Chart::Xy {
            title: format!("{m}: accuracy vs weight storage ({images} images; bars: Wilson 95 %)"),
            x_label: "bits per weight (incl. block metadata)".into(),
            y_label: if labelled {
                "top-1 accuracy, %".into()
            } else {
                "top-1 agreement with FP32, %".into()
            },
            series,
            hlines,
        },
        &fig.join(format!("accuracy-vs-bits-{m}")),
    )?;
    Ok(())
}

/// Weight SQNR of every layer with every layer quantized (the default policy keeps the first
/// and last layers INT8; here they are quantized to show what StruM does to them): grouped
/// bars with layer names for small networks, markers by layer index for large ones.
pub(super) fn sqnr_figure(m: &str, fig: &Path) -> Result<()> {
    let (g, _) = crate::zoo::resolve(m, &LoadOptions::default())?;
    let schemes = [
        ("INT8", Scheme::Int8),
        ("DLIQ B=8 L=4", Scheme::Dliq),
        ("MIP2Q B=8 L=4", Scheme::Mip2q),
    ];
    let mut per: Vec<(String, Vec<f64>)> = Vec::new();
    let mut names = Vec::new();
    for (name, scheme) in schemes {
        let cfg = QuantConfig {
            scheme,
            quantize_first_last: true,
            ..Default::default()
        };
        let q = quantize_graph(&g, &cfg)?;
        names = q.layers.iter().map(|l| l.name.clone()).collect();
        per.push((
            name.into(),
            q.layers.iter().map(|l| l.stats.sqnr_db.min(80.0)).collect(),
        ));
    }
    let title = format!("{m}: weight SQNR per layer, every layer quantized");
    let chart = if names.len() <= 16 {
        let short = |n: &String| n.chars().take(12).collect::<String>();
        Chart::Bars {
            title,
            y_label: "weight SQNR, dB".into(),
            categories: names.iter().map(short).collect(),
            groups: per,
            stacked: false,
        }
    } else {
        use crate::plot::Marker;
        let shapes = [Marker::Square, Marker::Triangle, Marker::Circle];
        Chart::Xy {
            title,
            x_label: format!("weight layer, in execution order (0 = {})", names[0]),
            y_label: "weight SQNR, dB".into(),
            series: per
                .into_iter()
                .zip(shapes)
                .map(|((name, v), marker)| Series {
                    name,
                    points: v.iter().enumerate().map(|(i, &d)| (i as f64, d)).collect(),
                    markers: true,
                    marker,
                    ..Default::default()
                })
                .collect(),
            hlines: Vec::new(),
        }
    };
    crate::plot::save(&chart, &fig.join(format!("layer-sqnr-{m}")))?;
    Ok(())
}
