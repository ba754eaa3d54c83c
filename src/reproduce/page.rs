//! index.html of `reproduce`: what goes on the page (figures found in the folder, the
//! paper's claims, machine, commit and times); `crate::html` renders it.

use std::path::Path;

use super::out_err;
use crate::error::Result;

/// The CPU's model name (Linux), for reports.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.into())
}

/// index.html: the tables, every figure of `out/figures/`, the claims, machine and times
/// (`[sweep, tables and figures, total]`, s).
pub(super) fn html_report(
    out: &Path,
    md: &str,
    claims: &crate::hw::Claims,
    summary: &crate::sweep::SweepSummary,
    times: [f64; 3],
) -> Result<String> {
    let dir = out.join("figures");
    let mut figures: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| out_err(&dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png") && p.with_extension("svg").exists())
        .filter_map(|p| {
            p.file_stem()
                .map(|s| format!("figures/{}", s.to_string_lossy()))
        })
        .collect();
    figures.sort();
    let band = |b: [f64; 2]| {
        if b[0] == b[1] {
            format!("about −{} %", b[0])
        } else {
            format!("−{}..−{} %", b[1], b[0])
        }
    };
    let claims = vec![
        format!("PE power: {}", band(claims.pe_power_reduction_pct)),
        format!(
            "PE area (static StruM): {}",
            band(claims.pe_area_reduction_pct)
        ),
        format!("DPU power: {}", band(claims.dpu_power_reduction_pct)),
        format!(
            "DPU area (static StruM): {}",
            band(claims.dpu_area_reduction_pct)
        ),
        format!(
            "Top-1: less than {} point(s) below INT8 on ImageNet CNNs",
            claims.top1_loss_max_pts
        ),
        format!("Source: {}", claims.source),
    ];
    let meta = vec![
        (
            "machine".into(),
            format!("{}, {} threads", cpu_model(), rayon::current_num_threads()),
        ),
        ("commit".into(), crate::sweep::git_revision()),
        ("generated (UTC)".into(), crate::sweep::utc_now()),
        (
            "sweep".into(),
            format!(
                "{} runs ({} run now, {} reused) in {:.1} s",
                summary.runs_in_spec, summary.ran, summary.already_done, times[0]
            ),
        ),
        ("tables and figures".into(), format!("{:.1} s", times[1])),
        ("this reproduce".into(), format!("{:.1} s", times[2])),
    ];
    Ok(crate::html::render(&crate::html::Report {
        title: "strumlab reproduction: StruM accuracy and FlexNN PE cost",
        markdown: md,
        figures,
        claims,
        meta,
    }))
}
