//! Hardware-model output: the hw table, per-layer CSV and JSON, the PE-boundary block, the
//! solve summary and the validation table.

use serde::Serialize;

use crate::error::{Error, Result};

/// Version of the hw CSV layout.
pub const HW_CSV_SCHEMA: u32 = 1;

#[derive(Serialize)]
struct HwRow<'a> {
    schema_version: u32,
    model: &'a str,
    arch: &'a str,
    config: &'a str,
    multiplier_law: &'a str,
    activity_source: &'a str,
    layer: &'a str,
    macs_per_image: f64,
    descriptor: String,
    utilization_frac: f64,
    cycles: f64,
    baseline_pe_pj: f64,
    static_pe_pj: Option<f64>,
    dynamic_pe_pj: f64,
    baseline_sram_pj: f64,
    static_sram_pj: Option<f64>,
    baseline_dram_pj: f64,
    weight_stationary_pj: f64,
    output_stationary_pj: f64,
    input_stationary_pj: f64,
    row_stationary_pj: f64,
    flexible_pj: f64,
}

pub fn hw_csv(r: &crate::hw::HwReport, model: &str) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let e = |x: csv::Error| Error::Output {
        path: "csv".into(),
        reason: x.to_string(),
    };
    for l in &r.layers {
        w.serialize(HwRow {
            schema_version: HW_CSV_SCHEMA,
            model,
            arch: &r.arch,
            config: &r.scheme,
            multiplier_law: r.multiplier_law,
            activity_source: l.activity.source,
            layer: &l.name,
            macs_per_image: l.macs,
            descriptor: l.mapping_text(),
            utilization_frac: l.utilization,
            cycles: l.baseline.cycles,
            baseline_pe_pj: l.baseline.pe_dynamic(),
            static_pe_pj: l.strum_static.as_ref().map(|e| e.pe_dynamic()),
            dynamic_pe_pj: l.strum_dynamic.pe_dynamic(),
            baseline_sram_pj: l.baseline.sram_pj,
            static_sram_pj: l.strum_static.as_ref().map(|e| e.sram_pj),
            baseline_dram_pj: l.baseline.dram_pj,
            weight_stationary_pj: l.fixed_dataflow_pj[0].1,
            output_stationary_pj: l.fixed_dataflow_pj[1].1,
            input_stationary_pj: l.fixed_dataflow_pj[2].1,
            row_stationary_pj: l.fixed_dataflow_pj[3].1,
            flexible_pj: l.baseline.total_dynamic(),
        })
        .map_err(e)?;
    }
    w.into_inner().map_err(|x| Error::Output {
        path: "csv".into(),
        reason: x.to_string(),
    })
}

/// Where a reduction `v` (%, positive = saved) falls against the paper's band.
fn band(v: f64, b: [f64; 2]) -> &'static str {
    if v >= b[0] - 1e-9 && v <= b[1] + 1e-9 {
        "inside the band"
    } else if v < b[0] {
        "saves less"
    } else {
        "saves more"
    }
}

/// A reduction as a change (`-x`), without printing `-0.00`.
fn neg(x: f64) -> f64 {
    if x == 0.0 { 0.0 } else { -x }
}

/// A paper band of reductions `[lo, hi]` (%) as changes: `-34..-31`, or `-10` for one value.
fn band_as_change(b: [f64; 2]) -> String {
    if (b[1] - b[0]).abs() < 1e-9 {
        format!("{:.0}", -b[0])
    } else {
        format!("{:.0}..{:.0}", -b[1], -b[0])
    }
}

/// `hw --layers`: one line per weight layer: MACs, the mapper's descriptor, utilization
/// and PE dynamic energy of the baseline and of static / dynamic StruM.
pub fn hw_layers_table(r: &crate::hw::HwReport) -> String {
    let mut s = format!(
        "{:<28} {:>12} {:<44} {:>6} {:>12} {:>9} {:>9}\n",
        "layer", "MACs/image", "descriptor", "util", "INT8 PE uJ", "static %", "dynamic %"
    );
    let pct = |a: f64, b: f64| if b > 0.0 { 100.0 * (a - b) / b } else { 0.0 };
    for l in &r.layers {
        let base = l.baseline.pe_dynamic();
        s += &format!(
            "{:<28} {:>12.0} {:<44} {:>6.2} {:>12.3} {:>9} {:>9.2}\n",
            l.name,
            l.macs,
            l.mapping_text(),
            l.utilization,
            base * 1e-6,
            l.strum_static.as_ref().map_or("n/a".into(), |e| format!(
                "{:.2}",
                pct(e.pe_dynamic(), base)
            )),
            pct(l.strum_dynamic.pe_dynamic(), base),
        );
    }
    s + "(static % / dynamic %: change of the layer's PE dynamic energy vs INT8; negative saves)\n"
}

pub fn hw_json(
    r: &crate::hw::HwReport,
    c: &crate::hw::Claims,
    model: &str,
    v: crate::hw::pe::Variant,
) -> serde_json::Value {
    // The CLI refuses the static variant of a per-layer configuration before this.
    let red = crate::hw::reductions(r, v).expect("the chosen variant exists");
    let both: Vec<_> = [
        crate::hw::reductions(r, crate::hw::pe::Variant::Static),
        crate::hw::reductions(r, crate::hw::pe::Variant::Dynamic),
    ]
    .into_iter()
    .flatten()
    .collect();
    serde_json::json!({
        "model": model, "arch": r.arch, "tech": r.tech, "scheme": r.scheme, "multiplier_law": r.multiplier_law,
        "activity_source": r.activity_source, "variant": v,
        "pe_power_reduction_pct": red.pe_power_reduction_pct,
        "pe_area_reduction_pct": red.pe_area_reduction_pct,
        "dpu_power_reduction_pct": red.dpu_power_reduction_pct,
        "dpu_area_reduction_pct": red.dpu_area_reduction_pct,
        "dpu_power_reduction_bottom_up_pct": red.dpu_power_reduction_bottom_up_pct,
        "variants": both,
        "paper": c,
        "calibration": r.calibration,
        "pe_area_breakdown_um2": r.pe_area,
        "designs": {"baseline": r.baseline, "strum_static": r.strum_static, "strum_dynamic": r.strum_dynamic},
        "cycles_per_image": r.cycles, "time_us_per_image": r.time_us, "map_ms": r.map_ms, "mapper": r.mapper,
        "dataflow_totals_pj": r.dataflow_totals_pj,
        "dataflow_on_chip_pj": r.dataflow_on_chip_pj,
        "dataflow_cycles": r.dataflow_cycles,
        "pe_boundary": r.pe_boundary,
        "boundaries": r.boundaries,
        "dram_bytes_per_image": r.dram_bytes_per_image,
        "compulsory_dram_bytes_per_image": r.compulsory_dram_bytes_per_image,
        "network_compulsory_dram_bytes_per_image": r.network_compulsory_dram_bytes_per_image,
        "spills": r.spills,
        "system_energy_reduction_pct": red.system_energy_reduction_pct,
        "layers": r.layers,
    })
}

pub fn hw_table(
    r: &crate::hw::HwReport,
    c: &crate::hw::Claims,
    model: &str,
    v: crate::hw::pe::Variant,
) -> String {
    use crate::hw::pe::Variant;
    let mut s = format!(
        "{model} on {} ({}, multiplier law {}), {}; activity: {}\n{:.0} cycles/image = {:.1} us at the configured clock\n\n",
        r.arch, r.tech, r.multiplier_law, r.scheme, r.activity_source, r.cycles, r.time_us
    );
    let vname = match v {
        Variant::Static => "static",
        Variant::Dynamic => "dynamic",
    };
    s += &format!(
        "{:<34} {:>10} {:>10} {:>12}   {vname} (--variant) vs paper band\n",
        "change vs INT8 baseline (%)", "static", "dynamic", "paper",
    );
    let dy = crate::hw::reductions(r, Variant::Dynamic).expect("always");
    // A per-layer configuration has no static design: its column shows n/a.
    let st_opt = crate::hw::reductions(r, Variant::Static);
    let st = st_opt.clone().unwrap_or_else(|| dy.clone());
    let sel = crate::hw::reductions(r, v).expect("the chosen variant exists");
    let cell = |x: f64| match st_opt {
        Some(_) => format!("{:.2}", neg(x)),
        None => "n/a".into(),
    };
    let rows: [(&str, f64, f64, f64, [f64; 2]); 4] = [
        (
            "PE power",
            st.pe_power_reduction_pct,
            dy.pe_power_reduction_pct,
            sel.pe_power_reduction_pct,
            c.pe_power_reduction_pct,
        ),
        (
            "PE area",
            st.pe_area_reduction_pct,
            dy.pe_area_reduction_pct,
            sel.pe_area_reduction_pct,
            c.pe_area_reduction_pct,
        ),
        (
            "DPU area (calibrated share)",
            st.dpu_area_reduction_pct,
            dy.dpu_area_reduction_pct,
            sel.dpu_area_reduction_pct,
            c.dpu_area_reduction_pct,
        ),
        (
            "DPU power (calibrated share)",
            st.dpu_power_reduction_pct,
            dy.dpu_power_reduction_pct,
            sel.dpu_power_reduction_pct,
            c.dpu_power_reduction_pct,
        ),
    ];
    for (n, a, b, x, band_) in rows {
        s += &format!(
            "{:<34} {:>10} {:>10.2} {:>12}   {vname}: {:.2}, {}\n",
            n,
            cell(a),
            neg(b),
            band_as_change(band_),
            neg(x),
            band(x, band_),
        );
    }
    s += &format!(
        "{:<34} {:>10} {:>10.2} {:>12}\n(negative: StruM saves; CSV and JSON columns named *_reduction_pct carry the saving as a positive number)\n\n",
        "DPU power (bottom-up, on chip)",
        cell(st.dpu_power_reduction_bottom_up_pct),
        neg(dy.dpu_power_reduction_bottom_up_pct),
        "-"
    );
    let b = r.pe_area[0]
        .as_ref()
        .expect("the baseline always has an area");
    s += &format!(
        "PE area (um2): baseline {:.0} (multipliers {:.0}, adder tree {:.0}, RFs {:.0}, sparsity {:.0}, control {:.0})",
        b.total_um2,
        b.multipliers_um2,
        b.adder_tree_um2,
        b.register_files_um2,
        b.sparsity_logic_um2,
        b.control_um2,
    );
    for (name, a) in [("static", &r.pe_area[1]), ("dynamic", &r.pe_area[2])] {
        if let Some(a) = a {
            s += &format!(
                "; {name} StruM {:.0} (8x8 lanes {:.0}, cheap lanes {:.0}, steering {:.0})",
                a.total_um2, a.multipliers_um2, a.cheap_lanes_um2, a.steering_um2
            );
        }
    }
    s += "\n";
    s += &format!(
        "mapped {} layers ({}) in {:.1} ms\n",
        r.layers.len(),
        r.mapper,
        r.map_ms
    );
    s += &hw_boundaries(r);
    s += &format!(
        "DRAM per image (baseline PE): {:.3} MB; network floor (each weight, the network's input and output once) {:.3} MB, {:.2}x; per-layer floor (each layer's weights, input and output) {:.3} MB; DRAM energy {:.2} uJ, outside the DPU figures\n",
        r.dram_bytes_per_image / 1e6,
        r.network_compulsory_dram_bytes_per_image / 1e6,
        r.dram_bytes_per_image / r.network_compulsory_dram_bytes_per_image.max(1.0),
        r.compulsory_dram_bytes_per_image / 1e6,
        r.baseline.dram_energy_pj * 1e-6
    );
    if !r.spills.is_empty() {
        let bytes: f64 = r.spills.iter().map(|x| x.bytes).sum();
        s += &format!(
            "{} activations spill to DRAM ({:.3} MB written and read back; hw --json lists each with why)\n",
            r.spills.len(),
            bytes / 1e6
        );
    }
    s += "network energy per image by dataflow (baseline PE), uJ, on chip / with DRAM; cycles (DRAM stalls included):";
    let rows = r.dataflow_on_chip_pj.iter().zip(&r.dataflow_totals_pj);
    for (((n, c), (_, e)), (_, k)) in rows.zip(&r.dataflow_cycles) {
        s += &format!("  {n} {:.2} / {:.2}; {k:.0}", c * 1e-6, e * 1e-6);
    }
    s += "\n";
    s
}

/// PE power and area changes under every PE boundary (`--pe-boundary` picks the headline).
fn hw_boundaries(r: &crate::hw::HwReport) -> String {
    let mut s = format!(
        "PE boundary (headline: {}): change vs INT8 %      static power   static area   dynamic power   dynamic area\n",
        r.pe_boundary.as_str()
    );
    for b in &r.boundaries {
        let (sp, sa) = match &b.strum_static {
            Some(c) => (
                format!("{:.2}", neg(c.pe_power_reduction_pct)),
                format!("{:.2}", neg(c.pe_area_reduction_pct)),
            ),
            None => ("n/a".into(), "n/a".into()),
        };
        s += &format!(
            "  {:<44} {:>12} {:>13} {:>15.2} {:>14.2}\n",
            format!(
                "{} (baseline PE {:.0} um2)",
                b.boundary.as_str(),
                b.baseline_pe_area_um2
            ),
            sp,
            sa,
            neg(b.strum_dynamic.pe_power_reduction_pct),
            neg(b.strum_dynamic.pe_area_reduction_pct)
        );
    }
    s
}

/// `hw --solve`: whether the bands can hold inside the priors, the feasible ranges, the
/// nearest prior point, and where this model's PE sits.
pub fn solve_table(s: &crate::hw::solve::Solution, pts: &[crate::hw::solve::ModelPoint]) -> String {
    let mut t = format!(
        "\nsolve (the paper's bands as constraints, priors from experiments/hw/solve-priors.toml): feasible = {}\n",
        s.feasible
    );
    let fmt = |r: &std::collections::BTreeMap<String, [f64; 2]>| {
        crate::hw::solve::UNKNOWNS
            .iter()
            .filter_map(|k| r.get(*k).map(|v| format!("{k} {:.2}..{:.2}", v[0], v[1])))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if s.feasible {
        t += &format!("  feasible ranges: {}\n", fmt(&s.ranges));
    } else {
        t += &format!(
            "  nearest prior point: {}; it gives PE area {:.1} %, PE power {:.1} %, DPU area {:.1} %, DPU power {:.1} % (savings)\n",
            crate::hw::solve::UNKNOWNS
                .iter()
                .map(|k| format!("{k} {:.2}", s.nearest[*k]))
                .collect::<Vec<_>>()
                .join(", "),
            s.nearest_savings_pct["pe_area"],
            s.nearest_savings_pct["pe_power"],
            s.nearest_savings_pct["dpu_area"],
            s.nearest_savings_pct["dpu_power"]
        );
    }
    t += &format!(
        "  without priors (every unknown in [0, 1]): {}\n",
        fmt(&s.unconstrained_ranges)
    );
    for p in pts {
        t += &format!(
            "  this model, {} boundary: f_m {:.2}, g_m {:.2}, r_a {:.2}, r_e {:.2}\n",
            p.boundary, p.f_m, p.g_m, p.r_a, p.r_e
        );
    }
    t
}

/// `hw-validate`: one line per published figure, then what the model computed per network.
pub fn validate_table(r: &crate::hw::validate::Report) -> String {
    let mut t = format!("{} on {} ({}): {}\n", r.name, r.arch, r.tech, r.source);
    t += &format!(
        "{:<48} {:>12} {:>12} {:>8}  unit\n",
        "metric", "published", "model", "ratio"
    );
    for row in &r.rows {
        t += &format!(
            "{:<48} {:>12.4} {:>12.4} {:>8.2}  {}{}\n",
            row.metric,
            row.published,
            row.model,
            row.ratio,
            row.unit,
            if row.within_2x { "" } else { "  (outside 2x)" }
        );
    }
    for n in &r.networks {
        t += &format!(
            "{}: {:.0} MMACs, on chip {:.1} uJ/image (PE {:.1}, SRAM {:.1}), {:.0} DRAM accesses, {:.0} cycles\n",
            n.name,
            n.macs / 1e6,
            n.on_chip_energy_uj,
            n.pe_energy_uj,
            n.sram_energy_uj,
            n.dram_accesses,
            n.cycles
        );
    }
    t
}
