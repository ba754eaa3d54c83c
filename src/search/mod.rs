//! Configuration search: per-layer StruM settings (scheme and L per layer) that minimise a
//! FlexNN objective while the top-1 drop against FP32 stays within a budget.
//!
//! Method (docs/search.md): the images are split into a search part and a held-out part.
//! 1. Sensitivity: every eligible layer is demoted alone to every candidate (scheme, L), the
//!    rest INT8, on the first images of the search part: the damage is the rise of the mean
//!    KL divergence from FP32 over the all-INT8 run, the saving is the drop of the layer's
//!    energy in the FlexNN model under the activity that run measured.
//! 2. Allocation: per layer, the candidates on the upper convex hull of (damage, saving);
//!    a greedy walk takes the steepest hull step of any layer next (the Lagrangian
//!    relaxation of the multiple-choice knapsack), from all-INT8 to every layer at its
//!    largest saving.
//! 3. Real evaluations on the whole search part: the end of the walk, then a bisection for
//!    the last walk point within the budget, then single steps beyond it that keep it.
//! 4. Report: every evaluated point and the uniform configurations on the held-out part.

pub mod output;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::{EvalResult, Exec, RefCache, RunConfig};
use crate::exec::Mode;
use crate::hw::HwReport;
use crate::hw::config::{Arch, Tech};
use crate::hw::pe::Variant;
use crate::model::Graph;
use crate::quant::config::{LayerConfigFile, LayerSetting};
use crate::quant::{QuantConfig, Scheme};

/// What the search minimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// PE-array energy per image of the dynamic StruM PE (dynamic energy and leakage).
    PePower,
    /// Bottom-up on-chip DPU energy per image of the dynamic StruM PE (PE array and SRAM).
    DpuEnergy,
}

impl Objective {
    /// One layer's saving under the objective, pJ per image: the INT8 PE's energy minus
    /// the dynamic StruM PE's, both under the same measured activity (what the reported
    /// reductions compare, so zeros a scheme adds to the weights are not credited).
    fn layer_saving_pj(self, h: &HwReport, layer: &str) -> f64 {
        let l = h.layers.iter().find(|l| l.name == layer);
        l.map_or(0.0, |l| match self {
            Objective::PePower => l.baseline.pe_dynamic() - l.strum_dynamic.pe_dynamic(),
            Objective::DpuEnergy => l.baseline.on_chip() - l.strum_dynamic.on_chip(),
        })
    }
}

/// Everything a search needs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The model's name in outputs (zoo name or file).
    pub model: String,
    /// Largest top-1 drop against FP32 allowed, points.
    pub max_drop_pts: f64,
    pub schemes: Vec<Scheme>,
    /// Candidate L values; empty: B/4, B/2, 3B/4 and B.
    pub lows: Vec<usize>,
    pub objective: Objective,
    /// Fraction of the images the search tunes on (the first ones); the rest is held out.
    pub search_frac: f64,
    /// Images of the search part behind the single-layer sensitivities.
    pub sens_images: usize,
    /// Single steps tried beyond the bisection's point.
    pub refine: usize,
    /// A configuration meets the budget on the search part when its drop plus this many
    /// standard errors of the paired top-1 difference does (guards against choosing noise).
    pub margin_se: f64,
    /// Every other quantization parameter (B included).
    pub base: QuantConfig,
    /// activation calibration (on the first images of the search part)
    pub calib: crate::run::ActCalib,
    pub quiet: bool,
}

/// One evaluated configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Point {
    /// `int8`, a uniform label (`dliq-b8-l4`) or `walk-k` / `step-k`
    pub name: String,
    /// `uniform`, `walk` (a point of the greedy walk) or `step` (a single step beyond it)
    pub kind: String,
    pub config: String,
    /// top-1 on the search part, % (uniform points: not evaluated there)
    pub search_top1_pct: Option<f64>,
    pub heldout_top1_pct: f64,
    /// FP32 minus this configuration on the held-out part, points (positive: a loss)
    pub heldout_drop_pts: f64,
    pub pe_power_reduction_pct: f64,
    pub dpu_energy_reduction_pct: f64,
    pub bits_per_weight: f64,
    pub demoted_pct: f64,
    /// within the budget on the held-out part
    pub meets_budget: bool,
    /// meets the search part's rule (drop + margin_se standard errors within the budget)
    pub search_ok: bool,
    #[serde(skip)]
    pub layers: BTreeMap<String, LayerSetting>,
}

/// A single-layer sensitivity measurement.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sensitivity {
    pub layer: String,
    pub setting: String,
    /// rise of mean KL(FP32 || quantized) over the all-INT8 run, nats
    pub kl_rise_nats: f64,
    /// the layer's energy saving under the objective against INT8, pJ per image
    pub saving_pj: f64,
    pub top1_pct: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Outcome {
    /// everything the result depends on (model, images, options, quantizer and hardware
    /// model versions): `reproduce` reuses a search.json whose key matches
    pub key: String,
    pub model: String,
    pub dataset: String,
    pub objective: Objective,
    pub max_drop_pts: f64,
    pub margin_se: f64,
    pub block: usize,
    pub schemes: Vec<Scheme>,
    pub lows: Vec<usize>,
    pub search_images: usize,
    pub heldout_images: usize,
    pub sensitivity_images: usize,
    pub fp32_top1_search_pct: f64,
    pub fp32_top1: f64,
    pub chosen: Point,
    /// every point the search evaluated, in order
    pub frontier: Vec<Point>,
    pub uniform: Vec<Point>,
    /// the uniform configuration with the largest saving within the budget (held out)
    pub best_uniform: Option<String>,
    /// chosen saving minus the best uniform saving, points of the objective
    pub advantage_pts: Option<f64>,
    /// the uniform configuration with the largest saving that meets the search part's rule
    /// (what the same rule picks without per-layer freedom)
    pub uniform_by_rule: Option<String>,
    /// chosen saving minus that one's, points of the objective
    pub advantage_by_rule_pts: Option<f64>,
    pub sensitivity: Vec<Sensitivity>,
    pub evaluations: Evaluations,
    pub wall_s: f64,
    #[serde(skip)]
    pub chosen_file: LayerConfigFile,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Evaluations {
    pub sensitivity: usize,
    pub search: usize,
    pub heldout: usize,
}

/// The images the search uses.
struct Splits {
    sens: Dataset,
    search: Dataset,
    heldout: Dataset,
}

fn split(data: &Dataset, o: &Options) -> Result<Splits> {
    let n = data.len();
    let ns = ((n as f64) * o.search_frac).round() as usize;
    if data.labels.is_none() {
        return Err(Error::Data {
            path: data.name.clone(),
            reason: "a search needs labelled images (its budget is a top-1 drop)".into(),
        });
    }
    if ns < 1 || ns >= n {
        return Err(Error::InvalidArg {
            arg: "search-frac".into(),
            reason: format!(
                "{} of {n} images leaves no search or no held-out image",
                o.search_frac
            ),
        });
    }
    let search = data.range(0, ns);
    Ok(Splits {
        sens: search.range(0, o.sens_images.clamp(1, ns)),
        search,
        heldout: data.range(ns, n),
    })
}

/// The engine, the FlexNN model and the cached FP32 references behind every evaluation.
struct Evaluator<'a> {
    graph: &'a Graph,
    model: &'a str,
    arch: Arch,
    tech: Tech,
    refs: RefCache,
    calib: Dataset,
    o: &'a Options,
    evals: Evaluations,
    /// FP32 top-1 (%) of the search and held-out parts, from their first evaluation
    fp32_search: f64,
    fp32_heldout: f64,
}

#[derive(Clone, Copy, PartialEq)]
enum Part {
    Sens,
    Search,
    Heldout,
}

impl Evaluator<'_> {
    fn run(&mut self, s: &Splits, part: Part, q: &QuantConfig) -> Result<(EvalResult, HwReport)> {
        let data = match part {
            Part::Sens => &s.sens,
            Part::Search => &s.search,
            Part::Heldout => &s.heldout,
        };
        let cfg = RunConfig {
            quant: q.clone(),
            mode: Mode::Integer,
            calib: self.o.calib,
            quiet: true,
            check_reference: false,
            ..Default::default()
        };
        let r = crate::eval::evaluate_calibrated(
            self.graph,
            self.model,
            data,
            &self.calib,
            &cfg,
            &Exec::Cpu,
            &mut self.refs,
        )?;
        let act = crate::hw::activity_from_eval(&r.layers);
        let quant = r.quant.as_ref().expect("a quantized run keeps its weights");
        let h = crate::hw::evaluate(&self.arch, &self.tech, self.graph, quant, Some(&act))?;
        let fp32 = 100.0 * r.summary.fp32_top1.unwrap_or(0.0);
        match part {
            Part::Sens => self.evals.sensitivity += 1,
            Part::Search => (self.evals.search, self.fp32_search) = (self.evals.search + 1, fp32),
            Part::Heldout => {
                (self.evals.heldout, self.fp32_heldout) = (self.evals.heldout + 1, fp32)
            }
        }
        Ok((r, h))
    }
}

/// The configuration with per-layer `settings` (layers not named: INT8).
fn per_layer(base: &QuantConfig, settings: &BTreeMap<String, LayerSetting>) -> QuantConfig {
    QuantConfig {
        scheme: Scheme::Int8,
        layers: settings.clone(),
        ..base.clone()
    }
}

fn top1_pct(r: &EvalResult) -> f64 {
    100.0 * r.summary.top1.unwrap_or(0.0)
}

/// The search part's rule: the drop plus `margin_se` standard errors within the budget.
fn search_ok(ev: &Evaluator, o: &Options, r: &EvalResult) -> bool {
    ev.fp32_search - top1_pct(r) + o.margin_se * paired_se_pts(r) <= o.max_drop_pts + 1e-9
}

/// Standard error of the paired top-1 difference against FP32, points: from the
/// discordant images b (FP32 right only) and c (quantized right only) of n,
/// sqrt(b + c - (b - c)^2 / n) / n.
pub fn paired_se_pts(r: &EvalResult) -> f64 {
    let n = r.summary.images.max(1) as f64;
    let [b, c] = r.summary.discordant.unwrap_or([0, 0]).map(|x| x as f64);
    100.0 * (b + c - (b - c).powi(2) / n).max(0.0).sqrt() / n
}

/// The layers the scheme would quantize under the base configuration's layer policy.
fn eligible(graph: &Graph, o: &Options) -> Result<Vec<String>> {
    let probe = QuantConfig {
        scheme: o.schemes[0],
        ..o.base.clone()
    };
    let q = crate::quant::quantize_graph(graph, &probe)?;
    Ok(q.layers
        .iter()
        .filter(|l| l.reason.is_none())
        .map(|l| l.name.clone())
        .collect())
}

fn check(o: &Options) -> Result<Vec<usize>> {
    let bad = |arg: &str, reason: String| {
        Err(Error::InvalidArg {
            arg: arg.into(),
            reason,
        })
    };
    if !(o.max_drop_pts.is_finite() && o.max_drop_pts >= 0.0) {
        return bad(
            "max-drop",
            format!("{} is not a number of points >= 0", o.max_drop_pts),
        );
    }
    if !(o.margin_se.is_finite() && o.margin_se >= 0.0) {
        return bad("margin-se", format!("{} is not a number >= 0", o.margin_se));
    }
    if o.schemes.is_empty() || o.schemes.iter().any(|s| !s.is_strum()) {
        return bad("schemes", "give StruM schemes: mip2q, dliq or both".into());
    }
    let b = o.base.block;
    let lows: Vec<usize> = if o.lows.is_empty() {
        let mut v: Vec<usize> = [b / 4, b / 2, 3 * b / 4, b]
            .into_iter()
            .filter(|&l| l > 0)
            .collect();
        v.dedup();
        v
    } else {
        o.lows.clone()
    };
    if let Some(l) = lows.iter().find(|&&l| l == 0 || l > b) {
        return bad("lows", format!("L = {l} is outside 1..={b}"));
    }
    Ok(lows)
}

/// Run the search.
pub fn run(
    graph: &Graph,
    data: &Dataset,
    arch_path: &std::path::Path,
    o: &Options,
) -> Result<Outcome> {
    let t0 = Instant::now();
    let lows = check(o)?;
    if crate::eval::outputs::class_output(graph, None)?.is_none() {
        return Err(Error::InvalidArg {
            arg: "model".into(),
            reason: "search budgets top-1 and ranks by KL: it needs a model with one output of class scores".into(),
        });
    }
    let s = split(data, o)?;
    let (arch, tech) = crate::hw::config::load(arch_path)?;
    let mut ev = Evaluator {
        graph,
        model: &o.model,
        arch,
        tech,
        refs: RefCache::on_disk().without_sqnr(),
        calib: s.search.clone(),
        o,
        evals: Evaluations::default(),
        fp32_search: 0.0,
        fp32_heldout: 0.0,
    };
    let names = eligible(graph, o)?;
    let int8 = QuantConfig {
        scheme: Scheme::Int8,
        ..o.base.clone()
    };
    let (sens, moves) = sensitivity(&mut ev, &s, &names, &lows, &int8)?;
    if names.is_empty() {
        return Err(Error::InvalidArg {
            arg: "model".into(),
            reason: format!(
                "{}: no layer the layer policy lets StruM quantize (try --quantize-first-last)",
                o.model
            ),
        });
    }
    let walk = allocate(&names, &moves);
    let (evaluated, chosen_idx) = walk_and_refine(&mut ev, &s, &names, &walk)?;
    // Held-out: every evaluated point, then the uniform configurations.
    let mut frontier = Vec::new();
    for (name, kind, settings, search_top1, ok, _) in &evaluated {
        let q = per_layer(&o.base, settings);
        let (r, h) = ev.run(&s, Part::Heldout, &q)?;
        let mut p = point(name, kind, &r, &h, o);
        p.search_top1_pct = Some(*search_top1);
        p.search_ok = *ok;
        p.layers = settings.clone();
        frontier.push(p);
    }
    let uniform = uniform_points(&mut ev, &s)?;
    let chosen = frontier[chosen_idx].clone();
    let best_by = |f: &dyn Fn(&Point) -> bool| {
        uniform
            .iter()
            .filter(|p| f(p))
            .max_by(|a, b| objective_of(a, o).total_cmp(&objective_of(b, o)))
    };
    let best = best_by(&|p| p.meets_budget);
    let best_rule = best_by(&|p| p.search_ok);
    Ok(Outcome {
        key: key(o, data),
        model: o.model.clone(),
        dataset: data.name.clone(),
        objective: o.objective,
        max_drop_pts: o.max_drop_pts,
        margin_se: o.margin_se,
        block: o.base.block,
        schemes: o.schemes.clone(),
        lows,
        search_images: s.search.len(),
        heldout_images: s.heldout.len(),
        sensitivity_images: s.sens.len(),
        fp32_top1_search_pct: ev.fp32_search,
        fp32_top1: ev.fp32_heldout,
        best_uniform: best.map(|b| b.name.clone()),
        advantage_pts: best.map(|b| objective_of(&chosen, o) - objective_of(b, o)),
        uniform_by_rule: best_rule.map(|b| b.name.clone()),
        advantage_by_rule_pts: best_rule.map(|b| objective_of(&chosen, o) - objective_of(b, o)),
        chosen_file: LayerConfigFile {
            model: o.model.clone(),
            block: o.base.block,
            layers: chosen.layers.clone(),
        },
        chosen,
        frontier,
        uniform,
        sensitivity: sens,
        evaluations: ev.evals.clone(),
        wall_s: t0.elapsed().as_secs_f64(),
    })
}

fn objective_of(p: &Point, o: &Options) -> f64 {
    match o.objective {
        Objective::PePower => p.pe_power_reduction_pct,
        Objective::DpuEnergy => p.dpu_energy_reduction_pct,
    }
}

fn point(name: &str, kind: &'static str, r: &EvalResult, h: &HwReport, o: &Options) -> Point {
    let fp32_top1 = 100.0 * r.summary.fp32_top1.unwrap_or(0.0);
    let d = crate::hw::reductions(h, Variant::Dynamic).expect("dynamic always exists");
    let q = r.quant.as_ref().expect("a quantized run keeps its weights");
    let top1 = top1_pct(r);
    Point {
        name: name.into(),
        kind: kind.into(),
        config: r.label.clone(),
        search_top1_pct: None,
        heldout_top1_pct: top1,
        heldout_drop_pts: fp32_top1 - top1,
        pe_power_reduction_pct: d.pe_power_reduction_pct,
        dpu_energy_reduction_pct: d.dpu_power_reduction_bottom_up_pct,
        bits_per_weight: q.summary.bits_per_weight,
        demoted_pct: q.summary.demoted_pct,
        meets_budget: fp32_top1 - top1 <= o.max_drop_pts + 1e-9,
        search_ok: false,
        layers: BTreeMap::new(),
    }
}

/// One candidate step of a layer: from its previous hull point to `to`.
#[derive(Clone, Debug)]
struct Move {
    layer: usize,
    to: LayerSetting,
    /// saving gained per nat of KL rise (infinite when the damage does not rise)
    efficiency: f64,
}

/// Step 1 and the per-layer hulls: the moves of every layer, in hull order.
fn sensitivity(
    ev: &mut Evaluator,
    s: &Splits,
    names: &[String],
    lows: &[usize],
    int8: &QuantConfig,
) -> Result<(Vec<Sensitivity>, Vec<Vec<Move>>)> {
    let o = ev.o;
    let (r0, _) = ev.run(s, Part::Sens, int8)?;
    // a classifier (checked by `run`): KL is there
    let kl0 = r0.summary.kl_mean.unwrap_or(0.0);
    let total = names.len() * o.schemes.len() * lows.len();
    let progress = crate::progress::Progress::new("search: sensitivity", total, o.quiet);
    let mut rows = Vec::new();
    let mut moves = Vec::new();
    for (li, name) in names.iter().enumerate() {
        let mut cands = Vec::new();
        for &scheme in &o.schemes {
            for &low in lows {
                let setting = LayerSetting { scheme, low };
                let one = BTreeMap::from([(name.clone(), setting)]);
                let (r, h) = ev.run(s, Part::Sens, &per_layer(&o.base, &one))?;
                progress.inc();
                progress.check()?;
                let rise = r.summary.kl_mean.unwrap_or(0.0) - kl0;
                let saving = o.objective.layer_saving_pj(&h, name);
                rows.push(Sensitivity {
                    layer: name.clone(),
                    setting: setting.label(),
                    kl_rise_nats: rise,
                    saving_pj: saving,
                    top1_pct: r.summary.top1.map(|t| 100.0 * t),
                });
                cands.push((rise.max(0.0), saving, setting));
            }
        }
        moves.push(hull_moves(li, cands));
    }
    Ok((rows, moves))
}

/// The upper convex hull of (damage, saving) from (0, 0) (INT8), as successive moves with
/// falling efficiency. Candidates that save nothing never enter.
fn hull_moves(layer: usize, mut c: Vec<(f64, f64, LayerSetting)>) -> Vec<Move> {
    c.retain(|x| x.1 > 0.0);
    c.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let mut out = Vec::new();
    let (mut d, mut v) = (0.0f64, 0.0f64);
    loop {
        // The next hull point: the steepest rise from (d, v) among points saving more.
        let best = c
            .iter()
            .filter(|x| x.1 > v)
            .map(|x| {
                let dd = x.0 - d;
                let e = if dd <= 1e-15 {
                    f64::INFINITY
                } else {
                    (x.1 - v) / dd
                };
                (e, x)
            })
            .max_by(|a, b| a.0.total_cmp(&b.0).then(a.1.1.total_cmp(&b.1.1)));
        let Some((e, x)) = best else { break };
        out.push(Move {
            layer,
            to: x.2,
            efficiency: e,
        });
        (d, v) = (x.0.max(d), x.1);
    }
    out
}

/// Step 2: the greedy walk, as the list of moves in the order they are taken.
fn allocate(names: &[String], moves: &[Vec<Move>]) -> Vec<Move> {
    let mut next = vec![0usize; names.len()];
    let mut walk = Vec::new();
    loop {
        let pick = (0..names.len())
            .filter(|&l| next[l] < moves[l].len())
            .max_by(|&a, &b| {
                moves[a][next[a]]
                    .efficiency
                    .total_cmp(&moves[b][next[b]].efficiency)
                    .then(b.cmp(&a))
            });
        let Some(l) = pick else { break };
        walk.push(moves[l][next[l]].clone());
        next[l] += 1;
    }
    walk
}

/// name, kind, settings, top-1 on the search part (%), meets the search part's rule,
/// objective saving on the search part (%)
type Evaluated = (
    String,
    &'static str,
    BTreeMap<String, LayerSetting>,
    f64,
    bool,
    f64,
);

/// Step 3: evaluate the walk on the search part; returns every evaluated point and the
/// index of the chosen one.
fn walk_and_refine(
    ev: &mut Evaluator,
    s: &Splits,
    names: &[String],
    walk: &[Move],
) -> Result<(Vec<Evaluated>, usize)> {
    let o = ev.o;
    let settings_at = |k: usize| -> BTreeMap<String, LayerSetting> {
        let int8 = LayerSetting {
            scheme: Scheme::Int8,
            low: 0,
        };
        let mut m: BTreeMap<String, LayerSetting> =
            names.iter().map(|n| (n.clone(), int8)).collect();
        for mv in &walk[..k] {
            m.insert(names[mv.layer].clone(), mv.to);
        }
        m
    };
    let mut done: Vec<Evaluated> = Vec::new();
    let mut eval = |ev: &mut Evaluator, name: String, kind, m: BTreeMap<String, LayerSetting>| {
        let (r, h) = ev.run(s, Part::Search, &per_layer(&o.base, &m))?;
        let t = top1_pct(&r);
        let ok = search_ok(ev, o, &r);
        let saving = objective_of(&point(&name, kind, &r, &h, o), o);
        done.push((name, kind, m, t, ok, saving));
        Ok::<(bool, usize, f64), Error>((ok, done.len() - 1, saving))
    };
    // The end of the walk, then a bisection between INT8 (walk-0) and it.
    let k_max = walk.len();
    let (ok_end, i_end, s_end) = eval(ev, format!("walk-{k_max}"), "walk", settings_at(k_max))?;
    let (mut lo, mut hi, mut chosen, mut met) = (k_max, k_max, i_end, ok_end);
    let mut current_saving = s_end;
    if !ok_end && k_max > 0 {
        let (ok0, i0, s0) = eval(ev, "walk-0".into(), "walk", settings_at(0))?;
        (lo, hi, chosen, met) = (0, if ok0 { k_max } else { 0 }, i0, ok0);
        current_saving = s0;
    }
    while hi > lo + 1 {
        let mid = (lo + hi) / 2;
        let (ok, i, sv) = eval(ev, format!("walk-{mid}"), "walk", settings_at(mid))?;
        if ok {
            (lo, chosen, current_saving) = (mid, i, sv);
        } else {
            hi = mid;
        }
    }
    // Single steps beyond the walk point, in walk order; a layer whose step breaks the
    // budget takes no later (deeper) step.
    let mut current = settings_at(lo);
    let mut blocked = vec![false; names.len()];
    let mut tried = 0;
    // The bisection already evaluated walk-(lo+1), which broke the budget: its move is
    // not tried again, and its layer goes no deeper.
    let mut from = lo;
    if hi == lo + 1 && lo < k_max {
        blocked[walk[lo].layer] = true;
        from = lo + 1;
    }
    for mv in walk.iter().skip(from) {
        if tried >= o.refine || !met {
            break;
        }
        if blocked[mv.layer] {
            continue;
        }
        let mut m = current.clone();
        m.insert(names[mv.layer].clone(), mv.to);
        tried += 1;
        let (ok, i, saving) = eval(ev, format!("step-{tried}"), "step", m.clone())?;
        // A step is kept when it keeps the budget and saves more (a move chosen from the
        // single-layer measurements can save less once the other layers changed).
        if ok && saving > current_saving {
            (current, chosen, current_saving) = (m, i, saving);
        } else {
            blocked[mv.layer] = true;
        }
    }
    // The chosen point: the largest saving among the points that keep the budget on the
    // search part (walk-0 or the walk's end when none does).
    let best = done
        .iter()
        .enumerate()
        .filter(|(_, p)| p.4)
        .max_by(|a, b| a.1.5.total_cmp(&b.1.5))
        .map_or(chosen, |(i, _)| i);
    Ok((done, best))
}

/// INT8 and every L of every scheme at the search's B, uniform, on the held-out part.
fn uniform_points(ev: &mut Evaluator, s: &Splits) -> Result<Vec<Point>> {
    let o = ev.o;
    let mut cfgs = vec![QuantConfig {
        scheme: Scheme::Int8,
        ..o.base.clone()
    }];
    for &scheme in &o.schemes {
        for low in 1..=o.base.block {
            cfgs.push(QuantConfig {
                scheme,
                low,
                ..o.base.clone()
            });
        }
    }
    let progress = crate::progress::Progress::new("search: uniform", cfgs.len(), o.quiet);
    let mut out = Vec::new();
    for q in cfgs {
        // On the search part too, so that the same rule can pick a uniform configuration.
        let (rs, _) = ev.run(s, Part::Search, &q)?;
        let (r, h) = ev.run(s, Part::Heldout, &q)?;
        progress.inc();
        progress.check()?;
        let mut p = point(&q.label(), "uniform", &r, &h, o);
        p.search_top1_pct = Some(top1_pct(&rs));
        p.search_ok = search_ok(ev, o, &rs);
        out.push(p);
    }
    Ok(out)
}

/// Version of the search method, part of its key. 2: a candidate's saving is measured
/// against the INT8 PE under the candidate's own activity; 3: a step is kept only when it
/// saves more, and the chosen point is the largest saving within the rule.
pub const SEARCH_VERSION: u32 = 3;

/// What a search's result depends on, as one string.
pub fn key(o: &Options, data: &Dataset) -> String {
    format!(
        "search {SEARCH_VERSION}|{}|{}|{}|quantizer {}|hw model {}|{o:?}",
        o.model,
        data.name,
        data.len(),
        crate::quant::QUANTIZER_VERSION,
        crate::hw::HW_MODEL_VERSION
    )
}

/// The default output folder of a search: `results/search/<model stem>`.
pub fn default_out(model: &str) -> PathBuf {
    let stem = std::path::Path::new(model)
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| model.to_string());
    PathBuf::from("results/search").join(stem)
}
