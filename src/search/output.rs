//! What a search writes: the chosen per-layer configuration (TOML, loadable by eval,
//! quantize, hw and sweeps), the frontier, the uniform points and the sensitivities (CSV),
//! one JSON document, a figure, and the terminal table. Schemas: docs/csv-schemas.md.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Objective, Outcome, Point};
use crate::error::{Error, Result};
use crate::plot::{Chart, Marker, Series};

/// Version of frontier.csv / uniform.csv / sensitivity.csv.
pub const SEARCH_CSV_SCHEMA: u32 = 1;

#[derive(Serialize)]
struct PointRow<'a> {
    schema_version: u32,
    model: &'a str,
    name: &'a str,
    kind: &'a str,
    config: &'a str,
    search_top1_pct: Option<f64>,
    heldout_top1_pct: f64,
    heldout_drop_pts: f64,
    pe_power_reduction_pct: f64,
    dpu_energy_reduction_pct: f64,
    bits_per_weight: f64,
    demoted_pct: f64,
    meets_budget: bool,
    search_ok: bool,
    /// `layer=setting` pairs separated by spaces (walk and step points)
    layers: String,
}

fn csv_err(e: impl std::fmt::Display) -> Error {
    Error::Output {
        path: "csv".into(),
        reason: e.to_string(),
    }
}

fn points_csv(model: &str, points: &[Point]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for p in points {
        let layers = p
            .layers
            .iter()
            .map(|(k, v)| format!("{k}={}", v.label()))
            .collect::<Vec<_>>()
            .join(" ");
        w.serialize(PointRow {
            schema_version: SEARCH_CSV_SCHEMA,
            model,
            name: &p.name,
            kind: &p.kind,
            config: &p.config,
            search_top1_pct: p.search_top1_pct,
            heldout_top1_pct: p.heldout_top1_pct,
            heldout_drop_pts: p.heldout_drop_pts,
            pe_power_reduction_pct: p.pe_power_reduction_pct,
            dpu_energy_reduction_pct: p.dpu_energy_reduction_pct,
            bits_per_weight: p.bits_per_weight,
            demoted_pct: p.demoted_pct,
            meets_budget: p.meets_budget,
            search_ok: p.search_ok,
            layers,
        })
        .map_err(csv_err)?;
    }
    w.into_inner().map_err(csv_err)
}

fn sensitivity_csv(o: &Outcome) -> Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Row<'a> {
        schema_version: u32,
        model: &'a str,
        layer: &'a str,
        setting: &'a str,
        kl_rise_nats: f64,
        saving_pj_per_image: f64,
        top1_pct: Option<f64>,
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    for s in &o.sensitivity {
        w.serialize(Row {
            schema_version: SEARCH_CSV_SCHEMA,
            model: &o.model,
            layer: &s.layer,
            setting: &s.setting,
            kl_rise_nats: s.kl_rise_nats,
            saving_pj_per_image: s.saving_pj,
            top1_pct: s.top1_pct,
        })
        .map_err(csv_err)?;
    }
    w.into_inner().map_err(csv_err)
}

/// The chosen configuration as a per-layer TOML file, with what it was chosen for.
pub fn chosen_toml(o: &Outcome) -> String {
    format!(
        "# strumlab search: {} on {} ({} search / {} held-out images), objective {:?},\n\
         # top-1 budget {:.2} points below FP32. Held out: top-1 {:.2} % (FP32 {:.2} %),\n\
         # {} saving {:.2} % on the dynamic StruM PE. Load with --layer-config or the sweep\n\
         # key layer_config.\n{}",
        o.model,
        o.dataset,
        o.search_images,
        o.heldout_images,
        o.objective,
        o.max_drop_pts,
        o.chosen.heldout_top1_pct,
        o.fp32_top1,
        objective_name(o.objective),
        saving(&o.chosen, o.objective),
        o.chosen_file.to_toml()
    )
}

fn objective_name(o: Objective) -> &'static str {
    match o {
        Objective::PePower => "PE power",
        Objective::DpuEnergy => "DPU energy (bottom-up)",
    }
}

fn saving(p: &Point, o: Objective) -> f64 {
    match o {
        Objective::PePower => p.pe_power_reduction_pct,
        Objective::DpuEnergy => p.dpu_energy_reduction_pct,
    }
}

pub fn json(o: &Outcome) -> serde_json::Value {
    let mut v = serde_json::to_value(o).expect("an outcome serializes");
    v["chosen"]["layers"] = serde_json::to_value(&o.chosen_file.layers).expect("serializes");
    v
}

/// Accuracy (held out) against the objective's change: every evaluated point, the chosen
/// one, and the uniform configurations by scheme.
pub fn figure(o: &Outcome) -> Chart {
    let x = |p: &Point| -saving(p, o.objective);
    // Points far below the budget would squeeze the region that matters; they stay in the
    // CSVs and the title says they are left out.
    let floor = o.fp32_top1 - (5.0 * o.max_drop_pts).max(2.0);
    let shown = |p: &Point| p.heldout_top1_pct >= floor;
    let hidden = o
        .uniform
        .iter()
        .chain(&o.frontier)
        .filter(|p| !shown(p))
        .count();
    let pts = |f: &dyn Fn(&Point) -> bool, from: &[Point]| -> Vec<(f64, f64)> {
        from.iter()
            .filter(|p| f(p) && shown(p))
            .map(|p| (x(p), p.heldout_top1_pct))
            .collect()
    };
    let mut series = Vec::new();
    let shapes = [Marker::Square, Marker::Triangle];
    for (k, s) in o.schemes.iter().enumerate() {
        let prefix = format!("{}-b{}-l", s.as_str(), o.block);
        let mut u: Vec<&Point> = o
            .uniform
            .iter()
            .filter(|p| p.config.starts_with(&prefix) && shown(p))
            .collect();
        u.sort_by(|a, b| x(a).total_cmp(&x(b)));
        series.push(Series {
            name: format!(
                "{} B={}, L=1..{}",
                s.as_str().to_uppercase(),
                o.block,
                o.block
            ),
            points: u.iter().map(|p| (x(p), p.heldout_top1_pct)).collect(),
            line: true,
            markers: true,
            marker: shapes[k % shapes.len()],
            dashed: true,
            ..Default::default()
        });
    }
    series.push(Series {
        name: "INT8".into(),
        points: pts(&|p| p.config == "int8", &o.uniform),
        markers: true,
        marker: Marker::Circle,
        ..Default::default()
    });
    series.push(Series {
        name: "search: evaluated".into(),
        points: pts(&|_| true, &o.frontier),
        markers: true,
        marker: Marker::Cross,
        ..Default::default()
    });
    series.push(Series {
        name: "search: chosen".into(),
        points: vec![(x(&o.chosen), o.chosen.heldout_top1_pct)],
        markers: true,
        marker: Marker::Ring,
        point_labels: vec!["chosen".into()],
        ..Default::default()
    });
    Chart::Xy {
        title: format!(
            "{}: held-out top-1 vs {}, budget {:.1} points",
            o.model,
            objective_name(o.objective),
            o.max_drop_pts
        ),
        x_label: format!(
            "{} change vs INT8, % (dynamic StruM PE; negative saves); {} held-out images{}",
            objective_name(o.objective),
            o.heldout_images,
            if hidden > 0 {
                format!("; {hidden} points below {floor:.1} % not drawn")
            } else {
                String::new()
            }
        ),
        y_label: "held-out top-1 accuracy, %".into(),
        series,
        hlines: vec![
            ("FP32".into(), o.fp32_top1),
            (
                format!("budget: FP32 - {:.1}", o.max_drop_pts),
                o.fp32_top1 - o.max_drop_pts,
            ),
        ],
    }
}

/// Write every output into `dir`; returns the paths written.
pub fn write(dir: &Path, o: &Outcome) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Output {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let files: [(&str, Vec<u8>); 5] = [
        ("chosen.toml", chosen_toml(o).into_bytes()),
        ("frontier.csv", points_csv(&o.model, &o.frontier)?),
        ("uniform.csv", points_csv(&o.model, &o.uniform)?),
        ("sensitivity.csv", sensitivity_csv(o)?),
        (
            "search.json",
            serde_json::to_vec_pretty(&json(o)).expect("serializes"),
        ),
    ];
    let mut out = Vec::new();
    for (name, bytes) in files {
        let p = dir.join(name);
        crate::report::write_atomic(&p, &bytes)?;
        out.push(p);
    }
    out.extend(crate::plot::save(&figure(o), &dir.join("frontier"))?);
    Ok(out)
}

/// The terminal summary.
pub fn table(o: &Outcome) -> String {
    let obj = objective_name(o.objective);
    let mut s = format!(
        "search {} on {}: {} search / {} held-out images, objective {obj} (dynamic StruM PE), budget {:.2} points\n\
         {} evaluations ({} single-layer on {} images, {} on the search part, {} held out) in {:.1} s\n\n",
        o.model,
        o.dataset,
        o.search_images,
        o.heldout_images,
        o.max_drop_pts,
        o.evaluations.sensitivity + o.evaluations.search + o.evaluations.heldout,
        o.evaluations.sensitivity,
        o.sensitivity_images,
        o.evaluations.search,
        o.evaluations.heldout,
        o.wall_s
    );
    s += &format!(
        "{:<26} {:>10} {:>12} {:>10} {:>12} {:>8}\n",
        "held out", "top-1 %", "drop pts", "budget", "saving %", "bits/w"
    );
    let line = |label: String, p: &Point| {
        format!(
            "{:<26} {:>10.2} {:>12.2} {:>10} {:>12.2} {:>8.3}\n",
            label,
            p.heldout_top1_pct,
            p.heldout_drop_pts,
            if p.meets_budget { "meets" } else { "misses" },
            saving(p, o.objective),
            p.bits_per_weight
        )
    };
    s += &format!("{:<26} {:>10.2}\n", "fp32", o.fp32_top1);
    s += &line(format!("chosen ({})", o.chosen.name), &o.chosen);
    if let Some(b) = o
        .best_uniform
        .as_ref()
        .and_then(|n| o.uniform.iter().find(|p| &p.name == n))
    {
        s += &line(format!("best uniform ({})", b.name), b);
    }
    if let Some(b) = o
        .uniform_by_rule
        .as_ref()
        .and_then(|n| o.uniform.iter().find(|p| &p.name == n))
    {
        s += &line(format!("uniform by rule ({})", b.name), b);
    }
    s += &match (o.advantage_pts, &o.best_uniform) {
        (Some(a), Some(b)) => format!(
            "\nchosen minus {b} (the best uniform configuration within the budget on the held-out images): {a:+.2} points of {obj} saving\n"
        ),
        _ => "\nno uniform configuration meets the budget on the held-out images\n".into(),
    };
    if let (Some(a), Some(b)) = (o.advantage_by_rule_pts, &o.uniform_by_rule) {
        s += &format!(
            "chosen minus {b} (the uniform configuration the search part's rule picks): {a:+.2} points\n"
        );
    }
    s += "\nchosen settings:";
    for (k, v) in &o.chosen_file.layers {
        s += &format!(" {k}={}", v.label());
    }
    s + "\n"
}
