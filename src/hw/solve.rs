//! Inverse solve: what PE the paper's four bands imply.
//!
//! For static StruM at a demoted fraction l = L/B, to first order
//!
//! * PE area saving  = l (1 - r_a) f_m - steer
//! * PE power saving = l (1 - r_e) g_m
//! * DPU area saving = s_a x PE area saving,  DPU power saving = s_p x PE power saving
//!
//! with f_m / g_m the multipliers' share of the baseline PE's area / power, r_a / r_e the
//! cheap lane's area / energy against a multiplier, steer the steering muxes' share of PE
//! area and s_a / s_p the PE array's share of DPU area / power. Each unknown has a prior
//! range with its source (experiments/hw/solve-priors.toml). A grid over the priors finds
//! the feasible set: `feasible`, the range of every unknown inside it, and, when it is
//! empty, the prior point nearest to the bands. docs/hardware.md reads the result.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Claims;
use crate::error::Result;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Prior {
    pub lo: f64,
    pub hi: f64,
    pub source: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Priors {
    /// L/B of the paper's static configuration
    pub low_frac: f64,
    /// half-width (points) given to a claim stated as one value ("about 10 %")
    pub point_halfwidth_pct: f64,
    /// f_m, g_m, r_a, r_e, steer, s_a, s_p
    pub unknowns: BTreeMap<String, Prior>,
}

pub const UNKNOWNS: [&str; 7] = ["f_m", "g_m", "r_a", "r_e", "steer", "s_a", "s_p"];

pub fn load_priors(path: &Path) -> Result<Priors> {
    let p: Priors = super::config::read(path)?;
    for k in UNKNOWNS {
        let Some(u) = p.unknowns.get(k) else {
            return Err(crate::error::Error::Data {
                path: path.display().to_string(),
                reason: format!("no prior for unknown '{k}'"),
            });
        };
        if !(u.lo.is_finite() && u.hi.is_finite() && u.lo <= u.hi) {
            return Err(crate::error::Error::Data {
                path: path.display().to_string(),
                reason: format!("prior of '{k}': [{}, {}] is not a range", u.lo, u.hi),
            });
        }
    }
    Ok(p)
}

/// The solve's answer.
#[derive(Clone, Debug, Serialize)]
pub struct Solution {
    pub feasible: bool,
    /// feasible range of every unknown (absent when infeasible)
    pub ranges: BTreeMap<String, [f64; 2]>,
    /// the grid point of the priors nearest to the bands (every unknown), and the four
    /// savings it gives, %
    pub nearest: BTreeMap<String, f64>,
    pub nearest_savings_pct: BTreeMap<String, f64>,
    /// the same solve with every unknown free in its physical range [0, 1]
    pub unconstrained_ranges: BTreeMap<String, [f64; 2]>,
    pub bands_pct: BTreeMap<String, [f64; 2]>,
    pub grid_points_per_unknown: usize,
}

const N: usize = 41;

fn grid(lo: f64, hi: f64) -> Vec<f64> {
    (0..N)
        .map(|i| lo + (hi - lo) * i as f64 / (N - 1) as f64)
        .collect()
}

/// Distance of `v` outside `[lo, hi]`, in band widths (0 inside).
fn outside(v: f64, b: [f64; 2]) -> f64 {
    let w = (b[1] - b[0]).max(0.5);
    if v < b[0] {
        (b[0] - v) / w
    } else if v > b[1] {
        (v - b[1]) / w
    } else {
        0.0
    }
}

struct Bands {
    pe_area: [f64; 2],
    pe_power: [f64; 2],
    dpu_area: [f64; 2],
    dpu_power: [f64; 2],
}

fn bands(c: &Claims, p: &Priors) -> Bands {
    let widen = |b: [f64; 2]| {
        if (b[1] - b[0]).abs() < 1e-9 {
            [b[0] - p.point_halfwidth_pct, b[1] + p.point_halfwidth_pct]
        } else {
            b
        }
    };
    Bands {
        pe_area: widen(c.pe_area_reduction_pct),
        pe_power: widen(c.pe_power_reduction_pct),
        dpu_area: widen(c.dpu_area_reduction_pct),
        dpu_power: widen(c.dpu_power_reduction_pct),
    }
}

type Ranges = BTreeMap<String, [f64; 2]>;

fn widen_range(r: &mut Ranges, k: &str, v: f64) {
    let e = r.entry(k.to_string()).or_insert([v, v]);
    e[0] = e[0].min(v);
    e[1] = e[1].max(v);
}

/// Feasible ranges under `box_` (unknown -> [lo, hi]); empty when infeasible.
fn feasible_ranges(b: &Bands, l: f64, box_: &BTreeMap<&str, [f64; 2]>) -> Ranges {
    let g = |k: &str| grid(box_[k][0], box_[k][1]);
    let (mut area, mut power) = (Ranges::new(), Ranges::new());
    // Area subsystem with s_a.
    for &f in &g("f_m") {
        for &ra in &g("r_a") {
            for &st in &g("steer") {
                let a = 100.0 * (l * (1.0 - ra) * f - st);
                if outside(a, b.pe_area) > 0.0 || a <= 0.0 {
                    continue;
                }
                let (lo, hi) = (b.dpu_area[0] / a, b.dpu_area[1] / a);
                let (lo, hi) = (lo.max(box_["s_a"][0]), hi.min(box_["s_a"][1]));
                if lo > hi {
                    continue;
                }
                for (k, v) in [
                    ("f_m", f),
                    ("r_a", ra),
                    ("steer", st),
                    ("s_a", lo),
                    ("s_a", hi),
                ] {
                    widen_range(&mut area, k, v);
                }
            }
        }
    }
    for &gm in &g("g_m") {
        for &re in &g("r_e") {
            let p = 100.0 * l * (1.0 - re) * gm;
            if outside(p, b.pe_power) > 0.0 || p <= 0.0 {
                continue;
            }
            let (lo, hi) = (b.dpu_power[0] / p, b.dpu_power[1] / p);
            let (lo, hi) = (lo.max(box_["s_p"][0]), hi.min(box_["s_p"][1]));
            if lo > hi {
                continue;
            }
            for (k, v) in [("g_m", gm), ("r_e", re), ("s_p", lo), ("s_p", hi)] {
                widen_range(&mut power, k, v);
            }
        }
    }
    if area.is_empty() || power.is_empty() {
        return Ranges::new();
    }
    area.extend(power);
    area
}

/// The savings (%) a point gives.
fn savings(l: f64, x: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let a = 100.0 * (l * (1.0 - x["r_a"]) * x["f_m"] - x["steer"]);
    let p = 100.0 * l * (1.0 - x["r_e"]) * x["g_m"];
    BTreeMap::from([
        ("pe_area".to_string(), a),
        ("pe_power".to_string(), p),
        ("dpu_area".to_string(), x["s_a"] * a),
        ("dpu_power".to_string(), x["s_p"] * p),
    ])
}

/// The prior point nearest to the bands (sum of squared distances in band widths); the
/// subsystems are independent, so each is searched on its own.
fn nearest(b: &Bands, l: f64, box_: &BTreeMap<&str, [f64; 2]>) -> BTreeMap<String, f64> {
    let g = |k: &str| grid(box_[k][0], box_[k][1]);
    let mut best_a = (f64::INFINITY, [0.0; 4]);
    for &f in &g("f_m") {
        for &ra in &g("r_a") {
            for &st in &g("steer") {
                let a = 100.0 * (l * (1.0 - ra) * f - st);
                for &sa in &g("s_a") {
                    let d = outside(a, b.pe_area).powi(2) + outside(sa * a, b.dpu_area).powi(2);
                    if d < best_a.0 {
                        best_a = (d, [f, ra, st, sa]);
                    }
                }
            }
        }
    }
    let mut best_p = (f64::INFINITY, [0.0; 3]);
    for &gm in &g("g_m") {
        for &re in &g("r_e") {
            let p = 100.0 * l * (1.0 - re) * gm;
            for &sp in &g("s_p") {
                let d = outside(p, b.pe_power).powi(2) + outside(sp * p, b.dpu_power).powi(2);
                if d < best_p.0 {
                    best_p = (d, [gm, re, sp]);
                }
            }
        }
    }
    let [f, ra, st, sa] = best_a.1;
    let [gm, re, sp] = best_p.1;
    [
        ("f_m", f),
        ("r_a", ra),
        ("steer", st),
        ("s_a", sa),
        ("g_m", gm),
        ("r_e", re),
        ("s_p", sp),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

pub fn solve(c: &Claims, p: &Priors) -> Solution {
    let b = bands(c, p);
    let l = p.low_frac;
    let prior_box: BTreeMap<&str, [f64; 2]> = UNKNOWNS
        .iter()
        .map(|&k| (k, [p.unknowns[k].lo, p.unknowns[k].hi]))
        .collect();
    let free: BTreeMap<&str, [f64; 2]> = UNKNOWNS
        .iter()
        .map(|&k| (k, if k == "steer" { [0.0, 0.2] } else { [0.0, 1.0] }))
        .collect();
    let ranges = feasible_ranges(&b, l, &prior_box);
    let near = nearest(&b, l, &prior_box);
    Solution {
        feasible: !ranges.is_empty(),
        nearest_savings_pct: savings(l, &near),
        nearest: near,
        ranges,
        unconstrained_ranges: feasible_ranges(&b, l, &free),
        bands_pct: BTreeMap::from([
            ("pe_area".to_string(), b.pe_area),
            ("pe_power".to_string(), b.pe_power),
            ("dpu_area".to_string(), b.dpu_area),
            ("dpu_power".to_string(), b.dpu_power),
        ]),
        grid_points_per_unknown: N,
    }
}

/// Where a modelled PE sits: (boundary, f_m, g_m) of the baseline design.
#[derive(Clone, Debug, Serialize)]
pub struct ModelPoint {
    pub boundary: String,
    pub f_m: f64,
    pub g_m: f64,
    pub r_a: f64,
    pub r_e: f64,
}

/// The unknowns of our own model at every boundary.
pub fn model_points(r: &super::HwReport, t: &super::config::Tech) -> Vec<ModelPoint> {
    let base = r.pe_area[0].as_ref().expect("baseline area");
    let mac: f64 = r.layers.iter().map(|l| l.baseline.mac_pj).sum();
    r.boundaries
        .iter()
        .map(|b| ModelPoint {
            boundary: b.boundary.as_str().into(),
            f_m: base.multipliers_um2 / base.within(b.boundary),
            g_m: mac / b.baseline_pe_energy_pj,
            r_a: t.a("barrel_shifter_rel_mult8"),
            r_e: t.e("barrel_shifter_rel_mult8"),
        })
        .collect()
}

/// Two figures: the power band in (g_m, r_e) and the area band in (f_m, r_a), each with
/// the prior box and our model's points.
pub fn figures(
    s: &Solution,
    p: &Priors,
    pts: &[ModelPoint],
    config: &str,
) -> Vec<(String, crate::plot::Chart)> {
    use crate::plot::{Chart, Marker, Series};
    let l = p.low_frac;
    let curve = |saving: f64, name: String| Series {
        name,
        points: (1..=100)
            .map(|i| i as f64 / 100.0)
            .filter_map(|x| {
                let y = 1.0 - saving / 100.0 / (l * x);
                (0.0..=1.0).contains(&y).then_some((x, y))
            })
            .collect(),
        line: true,
        ..Default::default()
    };
    let boxed = |xk: &str, yk: &str| {
        let (x, y) = (&p.unknowns[xk], &p.unknowns[yk]);
        Series {
            name: "priors".into(),
            points: vec![
                (x.lo, y.lo),
                (x.hi, y.lo),
                (x.hi, y.hi),
                (x.lo, y.hi),
                (x.lo, y.lo),
            ],
            line: true,
            dashed: true,
            ..Default::default()
        }
    };
    let ours = |f: &dyn Fn(&ModelPoint) -> (f64, f64)| Series {
        name: "this model's PE".into(),
        points: pts.iter().map(f).collect(),
        markers: true,
        marker: Marker::Square,
        point_labels: pts.iter().map(|m| m.boundary.clone()).collect(),
        ..Default::default()
    };
    let pw = s.bands_pct["pe_power"];
    let ar = s.bands_pct["pe_area"];
    vec![
        (
            "solve-power".into(),
            Chart::Xy {
                title: format!(
                    "What a PE power saving of {:.0}..{:.0} % at L/B = {l} needs",
                    pw[0], pw[1]
                ),
                x_label: format!(
                    "g_m: multipliers' share of the INT8 PE's power (points: {config})"
                ),
                y_label: "r_e: shifter energy / 8x8 multiplier energy".into(),
                series: vec![
                    curve(pw[0], format!("saving {:.0} %", pw[0])),
                    curve(pw[1], format!("saving {:.0} %", pw[1])),
                    boxed("g_m", "r_e"),
                    ours(&|m| (m.g_m, m.r_e)),
                ],
                hlines: vec![],
            },
        ),
        (
            "solve-area".into(),
            Chart::Xy {
                title: format!(
                    "What a PE area saving of {:.0}..{:.0} % at L/B = {l} needs (no steering)",
                    ar[0], ar[1]
                ),
                x_label: format!(
                    "f_m: multipliers' share of the INT8 PE's area (points: {config})"
                ),
                y_label: "r_a: shifter area / 8x8 multiplier area".into(),
                series: vec![
                    curve(ar[0], format!("saving {:.0} %", ar[0])),
                    curve(ar[1], format!("saving {:.0} %", ar[1])),
                    boxed("f_m", "r_a"),
                    ours(&|m| (m.f_m, m.r_a)),
                ],
                hlines: vec![],
            },
        ),
    ]
}

/// `hw --solve`: the solution for `claims` under the priors at `priors`, this model's PE
/// points from `r` (the report of `model`), and (with `figures`) the two figures written
/// there.
pub fn for_report(
    claims: &Claims,
    priors: &Path,
    arch: &Path,
    r: &super::HwReport,
    model: &str,
    figures: Option<&Path>,
) -> Result<(Solution, Vec<ModelPoint>)> {
    let priors = load_priors(priors)?;
    let (_, tech) = super::config::load(arch)?;
    let sol = solve(claims, &priors);
    let pts = model_points(r, &tech);
    if let Some(dir) = figures {
        std::fs::create_dir_all(dir).map_err(|e| crate::error::Error::Output {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let config = format!("{model} {}, {}", r.scheme, r.activity_source);
        for (name, chart) in self::figures(&sol, &priors, &pts, &config) {
            crate::plot::save(&chart, &dir.join(name))?;
        }
    }
    Ok((sol, pts))
}
