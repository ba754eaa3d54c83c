//! Reproduce's hardware parts beyond table (b): (c) the dataflow comparison with
//! dataflow.csv and its figure, (d) every PE figure under the three PE boundaries.

use std::fmt::Write as _;
use std::path::Path;

use super::{REPRODUCE_CSV_SCHEMA, change, csv_bytes, out_err};
use crate::error::Result;
use crate::hw::config::{Arch, Tech};
use crate::model::LoadOptions;
use crate::plot::Chart;
use crate::quant::{QuantConfig, Scheme, quantize_graph};
use crate::sweep::RunRow;

/// What both parts read: the sweep's rows and folder, the models and the architecture.
pub struct Inputs<'a> {
    pub rows: &'a [RunRow],
    pub acc_dir: &'a Path,
    pub models: &'a [String],
    pub arch: &'a Arch,
    pub tech: &'a Tech,
}

#[derive(serde::Serialize)]
struct DataflowRow<'a> {
    schema_version: u32,
    model: &'a str,
    layer: &'a str,
    macs_per_image: f64,
    dataflow: &'a str,
    /// on chip and DRAM
    energy_pj_per_image: f64,
    /// PE array and SRAM only
    on_chip_energy_pj_per_image: f64,
}

/// Table (c) with dataflow.csv: every layer's energy under each dataflow, from the INT8
/// run's measured activity (a model whose files are missing here keeps its earlier rows).
pub fn dataflow(
    md: &mut String,
    hw: &Inputs,
    reused: &[String],
    out: &Path,
    fig: &Path,
) -> Result<()> {
    let (rows, acc_dir, models, arch, tech) = (hw.rows, hw.acc_dir, hw.models, hw.arch, hw.tech);
    let mut df_rows_owned: Vec<DataflowCells> = Vec::new();
    for m in models {
        let Some(r) = rows.iter().find(|r| r.model == *m && r.scheme == "int8") else {
            continue;
        };
        let stats = crate::hw::read_stats(&crate::sweep::layers_file(acc_dir, &r.run_id), "int8")?;
        let (g, _) = crate::zoo::resolve(m, &LoadOptions::default())?;
        let q = quantize_graph(&g, &QuantConfig::default())?;
        let h = crate::hw::evaluate(arch, tech, &g, &q, Some(&stats))?;
        for l in &h.layers {
            for ((d, e), (_, c)) in l.fixed_dataflow_pj.iter().zip(&l.fixed_dataflow_on_chip_pj) {
                df_rows_owned.push((m.clone(), l.name.clone(), l.macs, d.clone(), *e, *c));
            }
        }
    }
    if !reused.is_empty() {
        let earlier = earlier_dataflow(&out.join("dataflow.csv"), reused)?;
        df_rows_owned.extend(earlier);
    }
    let df_rows: Vec<DataflowRow> = df_rows_owned
        .iter()
        .map(|(m, l, macs, d, e, c)| DataflowRow {
            schema_version: REPRODUCE_CSV_SCHEMA,
            model: m,
            layer: l,
            macs_per_image: *macs,
            dataflow: d,
            energy_pj_per_image: *e,
            on_chip_energy_pj_per_image: *c,
        })
        .collect();
    crate::report::write_atomic(&out.join("dataflow.csv"), &csv_bytes(&df_rows)?)?;
    dataflow_section(md, &df_rows_owned, fig)
}

/// One dataflow.csv row: (model, layer, MACs, dataflow, pJ with DRAM, pJ on chip).
type DataflowCells = (String, String, f64, String, f64, f64);

/// Per model, per dataflow (in order): (name, pJ with DRAM, pJ on chip).
fn dataflow_totals(cells: &[DataflowCells]) -> Vec<(String, Vec<(String, f64, f64)>)> {
    let mut out: Vec<(String, Vec<(String, f64, f64)>)> = Vec::new();
    for (m, _, _, d, e, c) in cells {
        if out.last().is_none_or(|x| &x.0 != m) {
            out.push((m.clone(), Vec::new()));
        }
        let t = &mut out.last_mut().expect("pushed").1;
        match t.iter_mut().find(|x| &x.0 == d) {
            Some(x) => (x.1, x.2) = (x.1 + e, x.2 + c),
            None => t.push((d.clone(), *e, *c)),
        }
    }
    out
}

/// Table (c) and its figure: on-chip energy by dataflow against the flexible mapper, and
/// the energy with DRAM, which does not depend on the PE-level dataflow.
fn dataflow_section(md: &mut String, cells: &[DataflowCells], fig: &Path) -> Result<()> {
    let totals = dataflow_totals(cells);
    let _ = writeln!(
        md,
        "## (c) FlexNN dataflows: energy per image, INT8 baseline PE: on chip (PE array + SRAM) / with DRAM, µJ (× = on chip relative to the flexible mapper)\n"
    );
    let Some((_, first)) = totals.first() else {
        return Ok(());
    };
    let names: Vec<&str> = first.iter().map(|d| d.0.as_str()).collect();
    let _ = writeln!(md, "| model | {} |", names.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(first.len()));
    let flex = |t: &[(String, f64, f64)]| t.last().map(|x| x.2).unwrap_or(1.0);
    for (m, t) in &totals {
        let cells: Vec<String> = t
            .iter()
            .map(|(_, e, c)| format!("{:.3} ({:.2}×) / {:.3}", c * 1e-6, c / flex(t), e * 1e-6))
            .collect();
        let _ = writeln!(md, "| {m} | {} |", cells.join(" | "));
    }
    crate::plot::save(
        &Chart::Bars {
            title: "On-chip energy by dataflow, relative to the flexible mapper (INT8 PE)".into(),
            y_label: "on-chip energy / flexible".into(),
            categories: first.iter().map(|d| d.0.replace(" (mapper)", "")).collect(),
            groups: totals
                .iter()
                .map(|(m, t)| (m.clone(), t.iter().map(|x| x.2 / flex(t)).collect()))
                .collect(),
            stacked: false,
        },
        &fig.join("dataflow-energy"),
    )?;
    Ok(())
}

/// Rows of `models` in an earlier dataflow.csv.
fn earlier_dataflow(path: &Path, models: &[String]) -> Result<Vec<DataflowCells>> {
    #[derive(serde::Deserialize)]
    struct Row {
        model: String,
        layer: String,
        macs_per_image: f64,
        dataflow: String,
        energy_pj_per_image: f64,
        #[serde(default)]
        on_chip_energy_pj_per_image: f64,
    }
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let mut r = csv::Reader::from_path(path).map_err(|e| out_err(path, e))?;
    let mut out = Vec::new();
    for row in r.deserialize::<Row>() {
        let row = row.map_err(|e| out_err(path, e))?;
        if models.contains(&row.model) {
            out.push((
                row.model,
                row.layer,
                row.macs_per_image,
                row.dataflow,
                row.energy_pj_per_image,
                row.on_chip_energy_pj_per_image,
            ));
        }
    }
    Ok(out)
}

/// Table (d): static and dynamic MIP2Q / DLIQ B8 L4 under every PE boundary, measured
/// activity, next to the paper's bands.
pub fn boundaries(md: &mut String, hw: &Inputs, claims: &crate::hw::Claims) -> Result<()> {
    let (rows, acc_dir, models, arch, tech) = (hw.rows, hw.acc_dir, hw.models, hw.arch, hw.tech);
    let _ = writeln!(
        md,
        "\n## (d) PE boundary: B = 8, L = 4, measured activity: PE power / PE area change vs INT8, %\n\n\
         datapath = multipliers or shifters, adder tree, accumulator, steering, control; rf = + register files; full = + find-first logic (the headline of (b)). Paper: PE power −{}..−{}, PE area (static) −{}..−{}.\n",
        claims.pe_power_reduction_pct[1],
        claims.pe_power_reduction_pct[0],
        claims.pe_area_reduction_pct[1],
        claims.pe_area_reduction_pct[0]
    );
    let _ = writeln!(
        md,
        "| model | config | boundary | static power | static area | dynamic power | dynamic area |\n|---|---|---|---|---|---|---|"
    );
    for m in models {
        for scheme in [Scheme::Mip2q, Scheme::Dliq] {
            let Some(r) = rows.iter().find(|r| {
                r.model == *m && r.scheme == scheme.as_str() && r.block == 8 && r.low == 4
            }) else {
                continue;
            };
            let cfg = QuantConfig {
                scheme,
                ..Default::default()
            };
            let stats = crate::hw::read_stats(
                &crate::sweep::layers_file(acc_dir, &r.run_id),
                &cfg.label(),
            )?;
            let (g, _) = crate::zoo::resolve(m, &LoadOptions::default())?;
            let q = quantize_graph(&g, &cfg)?;
            let h = crate::hw::evaluate(arch, tech, &g, &q, Some(&stats))?;
            for b in &h.boundaries {
                let st = b.strum_static.as_ref().expect("a uniform configuration");
                let _ = writeln!(
                    md,
                    "| {m} | {} | {} | {} | {} | {} | {} |",
                    cfg.label(),
                    b.boundary.as_str(),
                    change(st.pe_power_reduction_pct, 1),
                    change(st.pe_area_reduction_pct, 1),
                    change(b.strum_dynamic.pe_power_reduction_pct, 1),
                    change(b.strum_dynamic.pe_area_reduction_pct, 1)
                );
            }
        }
    }
    Ok(())
}
