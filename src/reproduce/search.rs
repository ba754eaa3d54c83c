//! Reproduce's configuration-search part: the frontier of mnist-8 and the Fashion-MNIST
//! zoo, each in `<search_out>/<model>/` (what `strumlab search` writes), reused while its
//! key (model, images, options, quantizer and hardware model versions) is unchanged.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::Result;
use crate::model::LoadOptions;
use crate::search::{Objective, Options, Outcome};

/// The models whose frontier reproduce gives.
pub const MODELS: [&str; 4] = [
    "mnist-8",
    "fmnist-resnet",
    "fmnist-mobilenetv2",
    "fmnist-vgg",
];

fn options(model: &str, quiet: bool) -> Options {
    Options {
        model: model.into(),
        max_drop_pts: 0.5,
        schemes: vec![crate::quant::Scheme::Mip2q, crate::quant::Scheme::Dliq],
        lows: Vec::new(),
        objective: Objective::PePower,
        search_frac: 0.5,
        sens_images: 1000,
        refine: 8,
        margin_se: 1.0,
        base: Default::default(),
        calib: crate::run::ActCalib::default(),
        quiet,
    }
}

/// The search of `model`: from `<dir>/search.json` when its key matches, else run.
fn outcome(model: &str, dir: &Path, limit: Option<usize>, quiet: bool) -> Result<(Outcome, bool)> {
    let (g, card) = crate::zoo::resolve(model, &LoadOptions::default())?;
    let mut data = crate::data::load_limited(&card.dataset, &card, false, limit)?;
    if let Some(n) = limit {
        data.truncate(n);
    }
    let o = options(model, quiet);
    let key = crate::search::key(&o, &data);
    let earlier = std::fs::read(dir.join("search.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Outcome>(&b).ok())
        .filter(|e| e.key == key);
    if let Some(e) = earlier {
        return Ok((e, true));
    }
    let arch = crate::data::repo_root().join(crate::sweep::spec::DEFAULT_HW);
    let r = crate::search::run(&g, &data, &arch, &o)?;
    crate::search::output::write(dir, &r)?;
    Ok((r, false))
}

/// Table (e) and one frontier figure per model in `fig`.
pub fn section(
    md: &mut String,
    out: &Path,
    fig: &Path,
    models: &[String],
    limit: Option<usize>,
    quiet: bool,
) -> Result<()> {
    let _ = writeln!(
        md,
        "\n## (e) Configuration search: per-layer StruM settings within 0.5 top-1 points of FP32 (docs/search.md)\n\n\
         Held-out half of the images; PE power saving of the dynamic StruM PE against INT8, %. *best uniform*: the uniform \
         configuration (INT8, or one scheme with one L at B = 8) saving the most within the budget on the held-out images; \
         *by rule*: the one the search part's rule picks.\n"
    );
    let _ = writeln!(
        md,
        "| model | chosen top-1 % (drop, pts) | chosen saving % | best uniform (saving %) | by rule (saving %) | evaluations | wall s |\n|---|---|---|---|---|---|---|"
    );
    for m in MODELS.iter().filter(|m| models.iter().any(|x| x == *m)) {
        let dir = out.join(m);
        let (r, reused) = outcome(m, &dir, limit, quiet)?;
        let find = |n: &Option<String>| {
            n.as_ref()
                .and_then(|n| r.uniform.iter().find(|p| &p.name == n))
                .map_or("none".to_string(), |p| {
                    format!("{} ({:.1})", p.name, p.pe_power_reduction_pct)
                })
        };
        let e = &r.evaluations;
        let _ = writeln!(
            md,
            "| {m} | {:.2} ({:.2}{}) | {:.1} | {} | {} | {} | {:.0}{} |",
            r.chosen.heldout_top1_pct,
            r.chosen.heldout_drop_pts,
            if r.chosen.meets_budget {
                ""
            } else {
                ", misses the budget"
            },
            r.chosen.pe_power_reduction_pct,
            find(&r.best_uniform),
            find(&r.uniform_by_rule),
            e.sensitivity + e.search + e.heldout,
            r.wall_s,
            if reused { " (earlier run)" } else { "" }
        );
        let chart = crate::search::output::figure(&r);
        crate::plot::save(&chart, &fig.join(format!("search-frontier-{m}")))?;
        if reused {
            // The figure's drawing may have changed since the search ran.
            crate::plot::save(&chart, &dir.join("frontier"))?;
        }
    }
    Ok(())
}
