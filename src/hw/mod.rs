//! FlexNN accelerator model: PE, PE-array and DPU area and power for the baseline INT8
//! design and the StruM designs, per layer and per network, from a model's layers, its
//! quantized weights and (optionally) the activity measured by `strumlab eval`.
//! Pure CPU and deterministic. See docs/hardware.md.

pub mod config;
pub mod mapper;
pub mod pe;

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Graph, LayerRef};
use crate::quant::{ModelQuant, QuantConfig, Scheme};
use config::{Arch, Tech};
use mapper::{Descriptor, LayerShape, Mapping};
use pe::{PeKind, Variant};

/// Per-image activity of one layer, by weight class (INT8, low, zero).
#[derive(Clone, Debug, Serialize)]
pub struct Activity {
    pub pairs_dense: [f64; 3],
    /// pairs whose activation is non-zero
    pub pairs_nz_act: [f64; 3],
    pub act_density: f64,
    pub weight_density: f64,
    /// "measured" (stats file) or "density-model"
    pub source: &'static str,
}

/// The columns of an eval CSV that the hardware model reads.
#[derive(Debug, Deserialize)]
struct StatsRow {
    config: String,
    layer: String,
    act_zero_frac: f64,
    weight_zero_frac: f64,
    macs_w_high_per_image: f64,
    macs_w_low_per_image: f64,
    macs_w_zero_per_image: f64,
    macs_nz_act_w_high_per_image: f64,
    macs_nz_act_w_low_per_image: f64,
    macs_nz_act_w_zero_per_image: f64,
}

/// Read the per-layer activity of an eval CSV, checking that it was measured with `label`.
pub fn read_stats(path: &Path, label: &str) -> Result<HashMap<String, Activity>> {
    let err = |reason: String| Error::Data {
        path: path.display().to_string(),
        reason,
    };
    // A stats file is a few KB per model; refuse what is not a regular file of sane size
    // (`/dev/zero` would otherwise be read as one endless record).
    const MAX_BYTES: u64 = 64 << 20;
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => return Err(err("not a regular file".into())),
        Ok(m) if m.len() > MAX_BYTES => {
            return Err(err(format!(
                "{} bytes: larger than any eval CSV ({MAX_BYTES} bytes at most)",
                m.len()
            )));
        }
        _ => {}
    }
    let mut r = csv::Reader::from_path(path).map_err(|e| err(e.to_string()))?;
    let mut out = HashMap::new();
    for (line, row) in r.deserialize::<StatsRow>().enumerate() {
        let row = row.map_err(|e| err(format!("not an eval CSV ({e})")))?;
        let cols = [
            ("act_zero_frac", row.act_zero_frac),
            ("weight_zero_frac", row.weight_zero_frac),
            ("macs_w_high_per_image", row.macs_w_high_per_image),
            ("macs_w_low_per_image", row.macs_w_low_per_image),
            ("macs_w_zero_per_image", row.macs_w_zero_per_image),
            (
                "macs_nz_act_w_high_per_image",
                row.macs_nz_act_w_high_per_image,
            ),
            (
                "macs_nz_act_w_low_per_image",
                row.macs_nz_act_w_low_per_image,
            ),
            (
                "macs_nz_act_w_zero_per_image",
                row.macs_nz_act_w_zero_per_image,
            ),
        ];
        if let Some((c, v)) = cols.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
            return Err(err(format!(
                "row {} (layer '{}'): {c} is {v}; activity must be finite and >= 0",
                line + 2,
                row.layer
            )));
        }
        if row.act_zero_frac > 1.0 || row.weight_zero_frac > 1.0 {
            return Err(err(format!(
                "row {} (layer '{}'): a zero fraction above 1",
                line + 2,
                row.layer
            )));
        }
        if row.config != label {
            return Err(err(format!(
                "measured with '{}', but the scheme is '{label}'",
                row.config
            )));
        }
        out.insert(
            row.layer,
            Activity {
                pairs_dense: [
                    row.macs_w_high_per_image,
                    row.macs_w_low_per_image,
                    row.macs_w_zero_per_image,
                ],
                pairs_nz_act: [
                    row.macs_nz_act_w_high_per_image,
                    row.macs_nz_act_w_low_per_image,
                    row.macs_nz_act_w_zero_per_image,
                ],
                act_density: 1.0 - row.act_zero_frac,
                weight_density: 1.0 - row.weight_zero_frac,
                source: "measured",
            },
        );
    }
    Ok(out)
}

/// The per-layer activity of an in-memory eval result (what [`read_stats`] reads from CSV).
pub fn activity_from_eval(layers: &[crate::eval::LayerEval]) -> HashMap<String, Activity> {
    layers
        .iter()
        .map(|l| {
            (
                l.name.clone(),
                Activity {
                    pairs_dense: [
                        l.macs_w_high_per_image,
                        l.macs_w_low_per_image,
                        l.macs_w_zero_per_image,
                    ],
                    pairs_nz_act: [
                        l.macs_nz_act_w_high_per_image,
                        l.macs_nz_act_w_low_per_image,
                        l.macs_nz_act_w_zero_per_image,
                    ],
                    act_density: 1.0 - l.act_zero_frac,
                    weight_density: 1.0 - l.weight_zero_frac,
                    source: "measured",
                },
            )
        })
        .collect()
}

fn shape_of(g: &Graph, node: usize, layer: LayerRef) -> LayerShape {
    let n = &g.nodes[node];
    let out = g.shape(&n.output);
    let inputs = g.shape(&n.inputs[0]).iter().product();
    match layer {
        LayerRef::Conv(c) => {
            let [r, s] = c.kernel();
            LayerShape {
                groups: c.group,
                k: c.out_channels() / c.group,
                c: c.in_channels_per_group(),
                p: out[2],
                q: out[3],
                r,
                s,
                inputs,
            }
        }
        LayerRef::Dense(d) => {
            let rows = out.iter().product::<usize>() / d.weight.shape[0];
            LayerShape {
                groups: 1,
                k: d.weight.shape[0],
                c: d.weight.shape[1],
                p: rows,
                q: 1,
                r: 1,
                s: 1,
                inputs,
            }
        }
    }
}

/// Energy of one layer on one PE design under one mapping, pJ per image, by component.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LayerEnergy {
    pub mac_pj: f64,
    pub rf_pj: f64,
    pub pe_cycle_pj: f64,
    pub sram_pj: f64,
    pub dram_pj: f64,
    pub cycles: f64,
}

impl LayerEnergy {
    pub fn pe_dynamic(&self) -> f64 {
        self.mac_pj + self.rf_pj + self.pe_cycle_pj
    }
    pub fn total_dynamic(&self) -> f64 {
        self.pe_dynamic() + self.sram_pj + self.dram_pj
    }
}

/// SRAM energy per byte: the 64-bit read energy of a bank of the configured size,
/// interpolated log-linearly between the table's 32 KiB and 1 MiB points.
pub fn sram_pj_per_byte(arch: &Arch, t: &Tech) -> f64 {
    let bank_kib = (arch.sram.kib as f64 / arch.sram.banks as f64).max(1.0);
    let (e32, e1m) = (t.e("sram_64b_32kib"), t.e("sram_64b_1mib"));
    let f = ((bank_kib / 32.0).ln() / (1024.0f64 / 32.0).ln()).clamp(-1.0, 1.5);
    e32 * (e1m / e32).powf(f) / 8.0
}

/// Energy of a layer for a PE design, activity and mapping.
pub fn layer_energy(
    arch: &Arch,
    t: &Tech,
    kind: PeKind,
    act: &Activity,
    m: &Mapping,
) -> LayerEnergy {
    let e = pe::energy(arch, t, kind);
    let skip = arch.sparsity.zero_skipping;
    // Executed MACs: with two-sided skipping only pairs of non-zero activation and weight.
    let (high, low) = if skip {
        (act.pairs_nz_act[0], act.pairs_nz_act[1])
    } else {
        (act.pairs_dense[0], act.pairs_dense[1] + act.pairs_dense[2])
    };
    let (high, low) = match kind {
        PeKind::Baseline => (high + low, 0.0),
        _ => (high, low),
    };
    let dense = act.pairs_dense.iter().sum::<f64>().max(1.0);
    let density = if skip { (high + low) / dense } else { 1.0 };
    let compute_cycles = m.cycles * density.max(1.0 / arch.array.lanes as f64);
    let active_pes = (arch.array.rows * arch.array.cols) as f64 * m.utilization.min(1.0);
    let zvc = |bytes: f64, d: f64| {
        if arch.sparsity.zvc {
            bytes * (0.125 + d).min(1.0)
        } else {
            bytes
        }
    };
    let sram_bytes = zvc(m.sram_weight_bytes, act.weight_density)
        + zvc(m.sram_input_bytes, act.act_density)
        + m.sram_output_bytes;
    let word = arch.sram.word_bytes as f64;
    let sram_bytes = (sram_bytes / word).ceil() * word;
    let dram_bytes = zvc(m.dram_bytes, 0.5 * (act.act_density + act.weight_density));
    // cycles = max(compute, SRAM bandwidth, DRAM bandwidth)
    let sram_cycles = sram_bytes / (arch.sram.banks * arch.sram.word_bytes) as f64;
    let dram_cycles = dram_bytes / arch.dram.bytes_per_cycle;
    let cycles = compute_cycles.max(sram_cycles).max(dram_cycles);
    LayerEnergy {
        mac_pj: high * e.mac_high_pj + low * e.mac_low_pj,
        rf_pj: high * e.rf_high_pj + low * e.rf_low_pj,
        pe_cycle_pj: compute_cycles * active_pes * e.cycle_pj,
        sram_pj: sram_bytes * sram_pj_per_byte(arch, t),
        dram_pj: dram_bytes * t.e("dram_64b") / 8.0,
        cycles,
    }
}

/// The mapper: the least-energy legal descriptor (ties: fewer cycles).
pub fn best_mapping(
    arch: &Arch,
    t: &Tech,
    kind: PeKind,
    act: &Activity,
    l: &LayerShape,
    wbytes: f64,
) -> (Mapping, LayerEnergy) {
    let mut best: Option<(Mapping, LayerEnergy)> = None;
    for d in mapper::space() {
        let Some(m) = mapper::map(arch, l, d, wbytes) else {
            continue;
        };
        let e = layer_energy(arch, t, kind, act, &m);
        let better = match &best {
            None => true,
            Some((bm, be)) => {
                let (a, b) = (e.total_dynamic(), be.total_dynamic());
                a < b || (a == b && m.cycles < bm.cycles)
            }
        };
        if better {
            best = Some((m, e));
        }
    }
    best.expect("the descriptor space is never empty")
}

#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    pub name: String,
    pub macs: f64,
    pub activity: Activity,
    pub descriptor: Descriptor,
    pub utilization: f64,
    pub baseline: LayerEnergy,
    pub strum_static: LayerEnergy,
    pub strum_dynamic: LayerEnergy,
    /// total dynamic energy of the baseline design under each fixed dataflow, pJ
    pub fixed_dataflow_pj: Vec<(String, f64)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DesignSummary {
    pub pe_area_um2: f64,
    pub pe_array_area_mm2: f64,
    pub pe_energy_pj: f64,
    pub pe_array_power_mw: f64,
    pub dpu_energy_bottom_up_pj: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct HwReport {
    pub arch: String,
    pub tech: String,
    pub multiplier_law: &'static str,
    pub scheme: String,
    pub activity_source: String,
    pub cycles: f64,
    pub time_us: f64,
    pub pe_area: [pe::PeArea; 3],
    pub baseline: DesignSummary,
    pub strum_static: DesignSummary,
    pub strum_dynamic: DesignSummary,
    pub layers: Vec<LayerReport>,
    /// network energy per fixed dataflow vs the flexible mapper, baseline design, pJ
    pub dataflow_totals_pj: Vec<(String, f64)>,
    pub calibration: config::CalibrationCfg,
    /// wall time of mapping every layer (all descriptors, three PE designs), ms
    pub map_ms: f64,
}

/// Evaluate `graph` quantized by `q` on the architecture; `stats` from an eval CSV.
pub fn evaluate(
    arch: &Arch,
    t: &Tech,
    graph: &Graph,
    q: &ModelQuant,
    stats: Option<&HashMap<String, Activity>>,
) -> Result<HwReport> {
    let cfg: &QuantConfig = &q.config;
    if !cfg.scheme.is_strum() && cfg.scheme != Scheme::Int8 {
        return Err(Error::InvalidArg {
            arg: "scheme".into(),
            reason: "the hardware model compares StruM (mip2q, dliq) with INT8".into(),
        });
    }
    // INT8 runs on the baseline PE: all three designs are the baseline (0 % reductions).
    let kinds = |variant| {
        if cfg.scheme == Scheme::Int8 {
            PeKind::Baseline
        } else {
            PeKind::Strum {
                scheme: cfg.scheme,
                dliq_shift: cfg.dliq_shift,
                block: cfg.block,
                low: cfg.low,
                variant,
            }
        }
    };
    let (k_base, k_stat, k_dyn) = (
        PeKind::Baseline,
        kinds(Variant::Static),
        kinds(Variant::Dynamic),
    );
    let mut layers = Vec::new();
    let mut fixed_tot = vec![0.0f64; mapper::FIXED.len()];
    let mut flex_tot = 0.0;
    let mut sources = std::collections::BTreeSet::new();
    let t0 = std::time::Instant::now();
    for (node, lr) in graph.layers() {
        let name = graph.nodes[node].name.clone();
        let lq = q
            .layers
            .iter()
            .find(|l| l.node == node)
            .expect("every layer quantized");
        let shape = shape_of(graph, node, lr);
        let positions = (shape.p * shape.q) as f64;
        let act = match stats {
            Some(s) => s.get(&name).cloned().ok_or_else(|| Error::Data {
                path: "stats".into(),
                reason: format!("no row for layer '{name}'"),
            })?,
            None => {
                let d = arch.sparsity.default_act_density;
                let mut dense = [0.0; 3];
                for c in &lq.encoded.class {
                    dense[*c as usize] += positions;
                }
                let total = lq.encoded.class.len() as f64;
                Activity {
                    pairs_dense: dense,
                    pairs_nz_act: [dense[0] * d, dense[1] * d, dense[2] * d],
                    act_density: d,
                    weight_density: 1.0 - lq.stats.zero as f64 / total,
                    source: "density-model",
                }
            }
        };
        sources.insert(act.source);
        let wbytes_base = 1.0;
        let wbytes_strum = lq.stats.bits_per_weight / 8.0;
        let (m, base) = best_mapping(arch, t, k_base, &act, &shape, wbytes_base);
        let stat = layer_energy(
            arch,
            t,
            k_stat,
            &act,
            &mapper::map(arch, &shape, m.descriptor, wbytes_strum).expect("legal"),
        );
        let dynm = layer_energy(
            arch,
            t,
            k_dyn,
            &act,
            &mapper::map(arch, &shape, m.descriptor, wbytes_strum).expect("legal"),
        );
        let mut fixed = Vec::new();
        for (k, (fname, d)) in mapper::FIXED.iter().enumerate() {
            let fm = mapper::map(arch, &shape, *d, wbytes_base).expect("fixed dataflows are legal");
            let e = layer_energy(arch, t, k_base, &act, &fm).total_dynamic();
            fixed_tot[k] += e;
            fixed.push((fname.to_string(), e));
        }
        flex_tot += base.total_dynamic();
        layers.push(LayerReport {
            name,
            macs: shape.macs(),
            activity: act,
            descriptor: m.descriptor,
            utilization: m.utilization,
            baseline: base,
            strum_static: stat,
            strum_dynamic: dynm,
            fixed_dataflow_pj: fixed,
        });
    }
    let map_ms = t0.elapsed().as_secs_f64() * 1e3;
    let cycles: f64 = layers.iter().map(|l| l.baseline.cycles).sum();
    let time_us = cycles / arch.clock_mhz;
    let areas = [
        pe::area(arch, t, k_base),
        pe::area(arch, t, k_stat),
        pe::area(arch, t, k_dyn),
    ];
    let npe = (arch.array.rows * arch.array.cols) as f64;
    // Leakage: a fraction of the baseline PE power at the baseline area, scaling with area.
    let lf = t.e("leakage_frac");
    let base_dyn: f64 = layers.iter().map(|l| l.baseline.pe_dynamic()).sum();
    let leak_base = base_dyn * lf / (1.0 - lf);
    let summary = |idx: usize, f: &dyn Fn(&LayerReport) -> &LayerEnergy| {
        let dynamic: f64 = layers.iter().map(|l| f(l).pe_dynamic()).sum();
        let mem: f64 = layers.iter().map(|l| f(l).sram_pj + f(l).dram_pj).sum();
        let pe_energy = dynamic + leak_base * areas[idx].total_um2 / areas[0].total_um2;
        DesignSummary {
            pe_area_um2: areas[idx].total_um2,
            pe_array_area_mm2: areas[idx].total_um2 * npe / 1e6,
            pe_energy_pj: pe_energy,
            pe_array_power_mw: pe_energy / time_us.max(1e-12) * 1e-3,
            dpu_energy_bottom_up_pj: pe_energy + mem,
        }
    };
    let baseline = summary(0, &|l| &l.baseline);
    let strum_static = summary(1, &|l| &l.strum_static);
    let strum_dynamic = summary(2, &|l| &l.strum_dynamic);
    let mut dataflow_totals: Vec<(String, f64)> = mapper::FIXED
        .iter()
        .zip(&fixed_tot)
        .map(|((n, _), &e)| (n.to_string(), e))
        .collect();
    dataflow_totals.push(("flexible (mapper)".into(), flex_tot));
    Ok(HwReport {
        arch: arch.name.clone(),
        tech: t.name.clone(),
        multiplier_law: arch.multiplier_law.as_str(),
        scheme: cfg.label(),
        activity_source: sources.into_iter().collect::<Vec<_>>().join("+"),
        cycles,
        time_us,
        pe_area: areas,
        baseline,
        strum_static,
        strum_dynamic,
        layers,
        dataflow_totals_pj: dataflow_totals,
        calibration: arch.calibration.clone(),
        map_ms,
    })
}

/// The four headline reductions (percent) for a variant.
#[derive(Clone, Debug, Serialize)]
pub struct Reductions {
    pub variant: Variant,
    pub pe_power_reduction_pct: f64,
    pub pe_area_reduction_pct: f64,
    /// calibrated PE-array share x PE reduction
    pub dpu_power_reduction_pct: f64,
    pub dpu_area_reduction_pct: f64,
    /// from the mapped network energy: PE array + SRAM + DRAM, no calibration
    pub dpu_power_reduction_bottom_up_pct: f64,
}

pub fn reductions(r: &HwReport, variant: Variant) -> Reductions {
    let s = match variant {
        Variant::Static => &r.strum_static,
        Variant::Dynamic => &r.strum_dynamic,
    };
    let b = &r.baseline;
    let pe_p = 100.0 * (1.0 - s.pe_energy_pj / b.pe_energy_pj);
    let pe_a = 100.0 * (1.0 - s.pe_area_um2 / b.pe_area_um2);
    Reductions {
        variant,
        pe_power_reduction_pct: pe_p,
        pe_area_reduction_pct: pe_a,
        dpu_power_reduction_pct: r.calibration.pe_array_power_share * pe_p,
        dpu_area_reduction_pct: r.calibration.pe_array_area_share * pe_a,
        dpu_power_reduction_bottom_up_pct: 100.0
            * (1.0 - s.dpu_energy_bottom_up_pj / b.dpu_energy_bottom_up_pj),
    }
}

/// Convenience: quantize and evaluate.
pub fn run(
    arch_path: &Path,
    law: Option<config::MultiplierLaw>,
    graph: &Graph,
    cfg: &QuantConfig,
    stats: Option<&Path>,
) -> Result<HwReport> {
    let (mut arch, tech) = config::load(arch_path)?;
    if let Some(l) = law {
        arch.multiplier_law = l;
    }
    let q = crate::quant::quantize_graph(graph, cfg)?;
    let st = match stats {
        Some(p) => Some(read_stats(p, &cfg.label())?),
        None => None,
    };
    if cfg.scheme == Scheme::Fp32 {
        return Err(Error::InvalidArg {
            arg: "scheme".into(),
            reason: "fp32 has no hardware model".into(),
        });
    }
    evaluate(&arch, &tech, graph, &q, st.as_ref())
}

/// The paper's claims (experiments/hw/strum-claims.toml).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub source: String,
    pub pe_power_reduction_pct: [f64; 2],
    pub pe_area_reduction_pct: [f64; 2],
    pub dpu_area_reduction_pct: [f64; 2],
    pub dpu_power_reduction_pct: [f64; 2],
    /// top-1 points StruM loses at most against INT8 (ImageNet CNNs)
    pub top1_loss_max_pts: f64,
}

pub fn load_claims(path: &Path) -> Result<Claims> {
    config::read(path)
}
