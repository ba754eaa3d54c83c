//! FlexNN accelerator model: PE, PE-array and DPU area and power for the baseline INT8
//! design and the StruM designs, per layer and per network, from a model's layers, its
//! quantized weights and (optionally) the activity measured by `strumlab eval`.
//! Pure CPU and deterministic. See docs/hardware.md.

pub mod config;
pub mod mapper;
pub mod nest;
pub mod network;
pub mod pe;
pub mod solve;
pub mod validate;

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Graph, LayerRef};
use crate::quant::{ModelQuant, QuantConfig, Scheme};
use config::{Arch, Boundary, Tech};
use mapper::{Descriptor, LayerShape, Mapping};
use pe::{PeKind, Variant};

/// Version of the FlexNN model's arithmetic, part of every sweep run id with hardware
/// columns (the first version is not named): 2 since per-operand DRAM traffic, PE
/// boundaries, synthesized ratios and dynamic MIP2Q shifter lanes; 3 since the loop-nest
/// mapper (src/hw/nest.rs).
pub const HW_MODEL_VERSION: u32 = 3;

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
    schema_version: u32,
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
        if row.schema_version != crate::eval::EVAL_CSV_SCHEMA {
            return Err(err(format!(
                "row {}: eval CSV schema_version {}, this strumlab reads {}; run eval --out again",
                line + 2,
                row.schema_version,
                crate::eval::EVAL_CSV_SCHEMA
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
    let in_shape = g.shape(&n.inputs[0]);
    let inputs = in_shape.iter().product();
    let in_hw = match in_shape.len() {
        4 => [in_shape[2], in_shape[3]],
        _ => [1, 1],
    };
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
                stride: c.strides,
                dilation: c.dilations,
                in_hw,
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
                stride: [1, 1],
                dilation: [1, 1],
                in_hw: [1, 1],
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
    /// find-first sparsity logic, per image
    pub sparsity_pj: f64,
    pub sram_pj: f64,
    pub dram_pj: f64,
    pub dram_bytes: f64,
    pub cycles: f64,
}

impl LayerEnergy {
    /// PE dynamic energy inside the boundary.
    pub fn pe(&self, b: Boundary) -> f64 {
        match b {
            Boundary::Datapath => self.mac_pj + self.pe_cycle_pj,
            Boundary::Rf => self.mac_pj + self.pe_cycle_pj + self.rf_pj,
            Boundary::Full => self.mac_pj + self.pe_cycle_pj + self.rf_pj + self.sparsity_pj,
        }
    }
    /// Every PE component's dynamic energy.
    pub fn pe_dynamic(&self) -> f64 {
        self.pe(Boundary::Full)
    }
    /// On chip: the PE array and the SRAM.
    pub fn on_chip(&self) -> f64 {
        self.pe_dynamic() + self.sram_pj
    }
    /// On chip and DRAM.
    pub fn total_dynamic(&self) -> f64 {
        self.on_chip() + self.dram_pj
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
    let slow = static_slowdown(kind, act);
    if let Some(tr) = &m.traffic {
        return nest_energy(arch, t, &e, act, tr, [high, low], [density, slow]);
    }
    let compute_cycles = m.cycles * skip_share(arch, density) * slow;
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
    // Outputs are written dense: their zeros are known only to the next layer's statistics.
    let dram_bytes = zvc(m.dram_weight_bytes, act.weight_density)
        + zvc(m.dram_input_bytes, act.act_density)
        + m.dram_output_bytes;
    // cycles = max(compute, SRAM bandwidth, DRAM bandwidth)
    let sram_cycles = sram_bytes / (arch.sram.banks * arch.sram.word_bytes) as f64;
    let dram_cycles = dram_bytes / arch.dram.bytes_per_cycle;
    let cycles = compute_cycles.max(sram_cycles).max(dram_cycles);
    LayerEnergy {
        mac_pj: high * e.mac_high_pj + low * e.mac_low_pj,
        rf_pj: high * e.rf_high_pj + low * e.rf_low_pj,
        pe_cycle_pj: compute_cycles * active_pes * e.cycle_pj,
        // the find-first logic is clock-gated when skipping is off
        sparsity_pj: if arch.sparsity.zero_skipping {
            compute_cycles * active_pes * e.sparsity_pj
        } else {
            0.0
        },
        sram_pj: sram_bytes * sram_pj_per_byte(arch, t),
        dram_pj: dram_bytes * 8.0 * t.e("dram_bit"),
        dram_bytes,
        cycles,
    }
}

/// The share of dense cycles a layer takes with zero-skipping at `density` executed pairs
/// (1 without skipping): windowed find-first with lane imbalance ([`pe::skip_cycles`]).
fn skip_share(arch: &Arch, density: f64) -> f64 {
    if !arch.sparsity.zero_skipping {
        return 1.0;
    }
    pe::skip_cycles(density, arch.array.lanes, arch.sparsity.window)
}

/// How much longer a layer runs on a static StruM PE than on the baseline: of every B lanes
/// only B - L have 8x8 multipliers, so a layer whose share h of weight positions needs them
/// (h = (B - L) / B on a StruM layer; 1 on a layer kept INT8 minus its zeros) takes
/// max(1, h B / (B - L)) times the cycles. At L = B the PE has no 8x8 lane; such a layer
/// is not modelled (factor 1; docs/hardware.md).
pub fn static_slowdown(kind: PeKind, act: &Activity) -> f64 {
    match kind {
        PeKind::Strum {
            variant: Variant::Static,
            block,
            low,
            ..
        } if low < block => {
            let all = act.pairs_dense.iter().sum::<f64>();
            if all <= 0.0 {
                return 1.0;
            }
            (act.pairs_dense[0] / all * block as f64 / (block - low) as f64).max(1.0)
        }
        _ => 1.0,
    }
}

/// Energy of a layer mapped as a loop nest: MACs as [`layer_energy`], RF, SRAM and DRAM
/// from the nest's traffic (register-file bits at `register_bit`; weight and input traffic
/// compressed by ZVC where configured; RF reads and partial-sum updates only for executed
/// MACs when zero-skipping), latency from the nest with the compute part scaled likewise
/// and by the static PE's slowdown ([`static_slowdown`]).
fn nest_energy(
    arch: &Arch,
    t: &Tech,
    e: &pe::PeEnergy,
    act: &Activity,
    tr: &nest::Traffic,
    [high, low]: [f64; 2],
    [density, slow]: [f64; 2],
) -> LayerEnergy {
    let executed = density;
    let compute_cycles = tr.compute_cycles * skip_share(arch, density) * slow;
    let active_pes = (arch.array.rows * arch.array.cols) as f64 * tr.utilization.min(1.0);
    let zvc = |d: f64| {
        if arch.sparsity.zvc {
            (0.125 + d).min(1.0)
        } else {
            1.0
        }
    };
    let comp = [zvc(act.weight_density), zvc(act.act_density), 1.0];
    let by = |v: &[f64; 3]| v.iter().zip(comp).map(|(b, c)| b * c).sum::<f64>();
    // RF: reads feeding the MACs and partial-sum updates scale with executed MACs; fills
    // and drains move (compressed) tiles.
    let rf_bits = tr
        .rf_read_bits
        .iter()
        .zip(tr.rf_write_bits)
        .enumerate()
        .map(|(i, (r, w))| {
            if i == 2 {
                (r + w) * executed
            } else {
                r * executed + w * comp[i]
            }
        });
    let rf_bits: f64 = rf_bits.sum();
    let sram_bits = by(&tr.sram_read_bits) + by(&tr.sram_write_bits);
    let dram_bits = by(&tr.dram_read_bits) + by(&tr.dram_write_bits);
    let sram_bw = (arch.sram.banks * arch.sram.word_bytes * 8) as f64;
    let dram_bw = arch.dram.bytes_per_cycle * 8.0;
    let cycles = (tr.fill_cycles + compute_cycles + tr.drain_cycles)
        .max(sram_bits / sram_bw)
        .max(dram_bits / dram_bw);
    LayerEnergy {
        mac_pj: high * e.mac_high_pj + low * e.mac_low_pj,
        rf_pj: rf_bits * t.e("register_bit"),
        pe_cycle_pj: compute_cycles * active_pes * e.cycle_pj,
        // the find-first logic is clock-gated when skipping is off
        sparsity_pj: if arch.sparsity.zero_skipping {
            compute_cycles * active_pes * e.sparsity_pj
        } else {
            0.0
        },
        sram_pj: sram_bits / 8.0 * sram_pj_per_byte(arch, t),
        dram_pj: dram_bits * t.e("dram_bit"),
        dram_bytes: dram_bits / 8.0,
        cycles,
    }
}

/// The loop-nest mapper's energy per bit at each level.
pub fn nest_costs(arch: &Arch, t: &Tech) -> nest::Costs {
    let e = pe::energy(arch, t, PeKind::Baseline);
    nest::Costs {
        rf_bit: t.e("register_bit"),
        sram_bit: sram_pj_per_byte(arch, t) / 8.0,
        dram_bit: t.e("dram_bit"),
        mac: e.mac_high_pj + e.cycle_pj / arch.array.lanes as f64,
    }
}

fn search_cfg(arch: &Arch) -> nest::SearchCfg {
    nest::SearchCfg {
        lpf_limit: arch.mapper.lpf_limit,
        spatial_candidates: arch.mapper.spatial_candidates,
        unroll_groups: arch.mapper.unroll_groups,
        objective: arch.mapper.objective,
    }
}

/// A loop-nest mapping as a [`Mapping`] (bytes per operand from its traffic).
fn nest_mapping(
    l: &LayerShape,
    n: nest::Nest,
    tr: nest::Traffic,
    weight_bytes: f64,
    ab: f64,
) -> Mapping {
    let b = |v: [f64; 3], i: usize| v[i] / 8.0;
    let sram = |i| b(tr.sram_read_bits, i) + b(tr.sram_write_bits, i);
    let dram = |i| b(tr.dram_read_bits, i) + b(tr.dram_write_bits, i);
    Mapping {
        descriptor: None,
        cycles: tr.latency_cycles,
        utilization: tr.utilization,
        sram_weight_bytes: sram(0),
        sram_input_bytes: sram(1),
        sram_output_bytes: sram(2),
        dram_weight_bytes: dram(0),
        dram_input_bytes: dram(1),
        dram_output_bytes: dram(2),
        dram_bytes: dram(0) + dram(1) + dram(2),
        compulsory_dram_bytes: l.weights() * weight_bytes + (l.inputs as f64 + l.outputs()) * ab,
        nest: Some(n),
        traffic: Some(tr),
    }
}

/// Map `l` as a loop nest: the least-energy nest (`fixed`: constrained to a fixed
/// dataflow), or `reuse`'s nest re-costed with another weight width; `on_chip` says which
/// of its input and output stay in the SRAM between layers (src/hw/network.rs).
pub fn map_nest(
    arch: &Arch,
    t: &Tech,
    l: &LayerShape,
    weight_bytes: f64,
    fixed: Option<&nest::Fixed>,
    reuse: Option<&nest::Nest>,
    on_chip: network::OnChip,
) -> Mapping {
    let g = l.geometry();
    let (n, mut tr) = match reuse {
        Some(n) => (n.clone(), nest::retime(arch, &g, n, weight_bytes * 8.0)),
        None => nest::search(
            arch,
            &nest_costs(arch, t),
            &search_cfg(arch),
            &g,
            weight_bytes * 8.0,
            fixed,
        ),
    };
    nest::keep_on_chip(arch, &mut tr, on_chip.input, on_chip.output);
    nest_mapping(l, n, tr, weight_bytes, arch.data_bytes)
}

/// The fixed dataflows as constrained loop nests (model v3): the spatial unrolling each
/// names, and the stationary operand's data kept in its register file by an innermost loop
/// irrelevant to it. Row-stationary is Eyeriss's: filter rows down the PE rows, output
/// rows across the columns, a filter row's taps on the lanes, output columns innermost.
/// A dimension a layer lacks (FY, FX of a 1x1 conv) leaves its place to input channels.
pub const FIXED_NESTS: [(&str, nest::Fixed); 4] = {
    use nest::{Dim, Fixed, Operand};
    [
        (
            "weight-stationary",
            Fixed {
                rows: Dim::C,
                cols: Dim::K,
                lanes: Dim::C,
                stationary: Operand::W,
            },
        ),
        (
            "output-stationary",
            Fixed {
                rows: Dim::Oy,
                cols: Dim::Ox,
                lanes: Dim::C,
                stationary: Operand::O,
            },
        ),
        (
            "input-stationary",
            Fixed {
                rows: Dim::C,
                cols: Dim::Ox,
                lanes: Dim::C,
                stationary: Operand::I,
            },
        ),
        (
            "row-stationary",
            Fixed {
                rows: Dim::Fy,
                cols: Dim::Oy,
                lanes: Dim::Fx,
                stationary: Operand::W,
            },
        ),
    ]
};

type Named = Vec<(String, f64)>;

/// The flexible mapping of a layer on the baseline PE, and each fixed dataflow's energy
/// (total, on chip). The fixed dataflows are points of the flexible mapper's space, so it
/// takes one of them when the search (which keeps the spatial unrollings of best
/// utilisation) found nothing better under the EDP objective. Under the energy objective
/// it keeps that restriction, as ZigZag does: a fixed dataflow that idles most of the
/// array may then use a little less energy than the flexible mapping, at many times its
/// cycles.
fn map_layer(
    arch: &Arch,
    t: &Tech,
    act: &Activity,
    shape: &LayerShape,
    on_chip: network::OnChip,
) -> (Mapping, LayerEnergy, [Named; 3]) {
    let wb = arch.data_bytes;
    let (mut m, mut base) = best_mapping(arch, t, PeKind::Baseline, act, shape, wb, on_chip);
    let (mut fixed, mut fixed_chip, mut fixed_cycles) = (Vec::new(), Vec::new(), Vec::new());
    let nested = arch.mapper.kind == config::MapperKind::Nest;
    for (i, (fname, d)) in mapper::FIXED.iter().enumerate() {
        let fm = if nested {
            map_nest(arch, t, shape, wb, Some(&FIXED_NESTS[i].1), None, on_chip)
        } else {
            mapper::map(arch, shape, *d, wb).expect("fixed dataflows are legal")
        };
        let e = layer_energy(arch, t, PeKind::Baseline, act, &fm);
        fixed.push((fname.to_string(), e.total_dynamic()));
        fixed_chip.push((fname.to_string(), e.on_chip()));
        fixed_cycles.push((fname.to_string(), e.cycles));
        let score = |x: &LayerEnergy| arch.mapper.objective.score(x.total_dynamic(), x.cycles);
        if arch.mapper.objective == config::Objective::Edp && score(&e) < score(&base) {
            (m, base) = (fm, e);
        }
    }
    fixed.push(("flexible (mapper)".into(), base.total_dynamic()));
    fixed_chip.push(("flexible (mapper)".into(), base.on_chip()));
    fixed_cycles.push(("flexible (mapper)".into(), base.cycles));
    (m, base, [fixed, fixed_chip, fixed_cycles])
}

/// The mapper: the least-energy legal mapping (ties: fewer cycles).
pub fn best_mapping(
    arch: &Arch,
    t: &Tech,
    kind: PeKind,
    act: &Activity,
    l: &LayerShape,
    wbytes: f64,
    on_chip: network::OnChip,
) -> (Mapping, LayerEnergy) {
    if arch.mapper.kind == config::MapperKind::Nest {
        let m = map_nest(arch, t, l, wbytes, None, None, on_chip);
        let e = layer_energy(arch, t, kind, act, &m);
        return (m, e);
    }
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
    /// the v2 descriptor (mapper `descriptor`)
    pub descriptor: Option<Descriptor>,
    /// the v3 loop nest (mapper `nest`): spatial unrolling, temporal loops innermost first,
    /// the loops each operand's RF holds and the loops the SRAM holds
    pub nest: Option<nest::Nest>,
    /// the loop nest's traffic per level and operand (bits, dense) and latency parts
    pub traffic: Option<nest::Traffic>,
    pub utilization: f64,
    pub baseline: LayerEnergy,
    /// None for a per-layer configuration (no static PE runs it)
    pub strum_static: Option<LayerEnergy>,
    pub strum_dynamic: LayerEnergy,
    /// total dynamic energy (on chip + DRAM) of the baseline design under each fixed
    /// dataflow, pJ
    pub fixed_dataflow_pj: Vec<(String, f64)>,
    /// the same on chip only (PE array + SRAM), pJ
    pub fixed_dataflow_on_chip_pj: Vec<(String, f64)>,
    /// the same dataflows' cycles
    pub fixed_dataflow_cycles: Vec<(String, f64)>,
    /// every weight, the input and the output once, bytes
    pub compulsory_dram_bytes: f64,
}

impl LayerReport {
    /// The mapping in one line: the descriptor, or the loop nest (spatial unrolling, temporal
    /// loops innermost first, the loops each RF and the SRAM hold).
    pub fn mapping_text(&self) -> String {
        if let Some(d) = &self.descriptor {
            return format!(
                "rows={:?} cols={:?} lanes={:?} {:?}-stationary",
                d.rows, d.cols, d.lanes, d.stationary
            );
        }
        let Some(n) = &self.nest else {
            return String::new();
        };
        let l = |x: &nest::Loop| format!("{:?}{}", x.dim, x.size).to_uppercase();
        let sp = &n.spatial;
        let loops: Vec<String> = n.loops.iter().map(l).collect();
        format!(
            "rows {} cols {} lanes {}; loops {}; RF W{} I{} O{}; SRAM W{} I{} O{}",
            l(&sp.rows),
            l(&sp.cols),
            l(&sp.lanes),
            if loops.is_empty() {
                "-".into()
            } else {
                loops.join(" ")
            },
            n.rf_loops[0],
            n.rf_loops[1],
            n.rf_loops[2],
            n.sram_loops[0],
            n.sram_loops[1],
            n.sram_loops[2]
        )
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct DesignSummary {
    /// inside the report's PE boundary
    pub pe_area_um2: f64,
    pub pe_array_area_mm2: f64,
    /// inside the report's PE boundary, leakage included
    pub pe_energy_pj: f64,
    pub pe_array_power_mw: f64,
    /// on chip: every PE component (leakage included) and the SRAM, per image
    pub dpu_energy_bottom_up_pj: f64,
    /// off chip, per image
    pub dram_energy_pj: f64,
    pub dram_bytes: f64,
    /// this design's cycles per image (a static StruM PE runs layers kept at INT8 slower)
    pub cycles_per_image: f64,
}

/// PE savings of one design at one boundary.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub pe_power_reduction_pct: f64,
    pub pe_area_reduction_pct: f64,
}

/// The PE figures under one boundary (`hw` reports all three).
#[derive(Clone, Debug, Serialize)]
pub struct BoundaryFigures {
    pub boundary: Boundary,
    pub baseline_pe_area_um2: f64,
    pub baseline_pe_energy_pj: f64,
    /// None for a per-layer configuration
    pub strum_static: Option<Change>,
    pub strum_dynamic: Change,
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
    /// baseline, static StruM (None for a per-layer configuration), dynamic StruM
    pub pe_area: [Option<pe::PeArea>; 3],
    pub baseline: DesignSummary,
    pub strum_static: Option<DesignSummary>,
    pub strum_dynamic: DesignSummary,
    pub layers: Vec<LayerReport>,
    /// network energy (on chip + DRAM) per fixed dataflow vs the flexible mapper, baseline
    /// design, pJ
    pub dataflow_totals_pj: Vec<(String, f64)>,
    /// the same on chip only (PE array + SRAM), pJ
    pub dataflow_on_chip_pj: Vec<(String, f64)>,
    /// the same dataflows' cycles per image, DRAM stalls included
    pub dataflow_cycles: Vec<(String, f64)>,
    /// the boundary of pe_area / pe_energy in the design summaries
    pub pe_boundary: Boundary,
    /// PE power and area under every boundary
    pub boundaries: Vec<BoundaryFigures>,
    /// DRAM bytes per image of the baseline design (compressed by ZVC where configured)
    pub dram_bytes_per_image: f64,
    /// every layer's weights, input and output once, dense, bytes per image (a per-layer floor)
    pub compulsory_dram_bytes_per_image: f64,
    /// the network's floor: every weight, the network's input and its output once, dense
    pub network_compulsory_dram_bytes_per_image: f64,
    /// activations between layers that go through DRAM, with why (loop-nest mapper)
    pub spills: Vec<network::Spill>,
    pub calibration: config::CalibrationCfg,
    /// wall time of mapping every layer (three PE designs, fixed dataflows), ms
    pub map_ms: f64,
    /// which mapper ran, in words
    pub mapper: String,
}

/// Which activations stay on chip between layers (loop-nest mapper with
/// `keep_activations_on_chip`; otherwise every layer's input and output go through DRAM),
/// the spills, and the network's
/// compulsory DRAM bytes (weights at their quantized width, input, output).
fn plan_network(arch: &Arch, graph: &Graph) -> (Vec<network::OnChip>, Vec<network::Spill>, f64) {
    let layers = graph.layers();
    let shapes: Vec<LayerShape> = layers
        .iter()
        .map(|&(n, lr)| shape_of(graph, n, lr))
        .collect();
    let plan: Vec<network::PlanLayer> = layers
        .iter()
        .zip(&shapes)
        .map(|(&(node, _), shape)| network::PlanLayer {
            node,
            name: &graph.nodes[node].name,
            shape,
            weight_bytes: shape.weights() * arch.data_bytes,
        })
        .collect();
    let compulsory = network::compulsory_bytes(&plan, arch.data_bytes);
    if arch.mapper.kind != config::MapperKind::Nest || !arch.mapper.keep_activations_on_chip {
        return (
            vec![network::OnChip::default(); plan.len()],
            Vec::new(),
            compulsory,
        );
    }
    let sram = (arch.sram.kib * 1024) as f64;
    let (on, spills) = network::plan(graph, &plan, sram, arch.data_bytes);
    (on, spills, compulsory)
}

/// Which mapper runs, in words (`hw` prints it with the mapping time).
fn mapper_description(arch: &Arch) -> String {
    let m = &arch.mapper;
    match m.kind {
        config::MapperKind::Nest => format!(
            "loop nests, objective {:?}, lpf {}, {} spatial candidates{}",
            m.objective,
            m.lpf_limit,
            m.spatial_candidates,
            if m.unroll_groups {
                ", groups unrolled"
            } else {
                ""
            }
        ),
        config::MapperKind::Descriptor => format!("{} v2 descriptors", mapper::space().len()),
    }
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
    let kind = |scheme: Scheme, low: usize, variant| {
        if scheme.is_strum() {
            PeKind::Strum {
                scheme,
                dliq_shift: cfg.dliq_shift,
                block: cfg.block,
                low,
                variant,
            }
        } else {
            PeKind::Baseline
        }
    };
    // A per-layer configuration runs on the dynamic PE only: a static PE has one split of
    // its lanes into INT8 and cheap lanes, which a layer with another L cannot use.
    let per_layer = !cfg.layers.is_empty();
    let k_base = PeKind::Baseline;
    let k_stat = (!per_layer).then(|| kind(cfg.scheme, cfg.low, Variant::Static));
    let layer_kind = |name: &str| match cfg.layers.get(name) {
        Some(s) => kind(s.scheme, s.low, Variant::Dynamic),
        None => kind(cfg.scheme, cfg.low, Variant::Dynamic),
    };
    // The dynamic PE carries MIP2Q shifter lanes when any layer runs MIP2Q.
    let dyn_scheme = if per_layer {
        let uses = |x: Scheme| {
            cfg.layers.values().any(|s| s.scheme == x)
                || (cfg.scheme == x && graph.layers().len() > cfg.layers.len())
        };
        [Scheme::Mip2q, Scheme::Dliq]
            .into_iter()
            .find(|&x| uses(x))
            .unwrap_or(Scheme::Int8)
    } else {
        cfg.scheme
    };
    let k_dyn_area = kind(dyn_scheme, cfg.low, Variant::Dynamic);
    let mut layers = Vec::new();
    let mut sources = std::collections::BTreeSet::new();
    let t0 = std::time::Instant::now();
    let plan = plan_network(arch, graph);
    let (on_chip, spills, network_compulsory) = (&plan.0, plan.1, plan.2);
    for (li, (node, lr)) in graph.layers().into_iter().enumerate() {
        let name = graph.nodes[node].name.clone();
        let lq = q
            .layers
            .iter()
            .find(|l| l.node == node)
            .expect("every layer quantized");
        let shape = shape_of(graph, node, lr);
        let act = layer_activity(arch, stats, &name, lq, &shape)?;
        sources.insert(act.source);
        let wbytes_strum = lq.stats.bits_per_weight / 8.0;
        let (m, base, [fixed, fixed_chip, fixed_cycles]) =
            map_layer(arch, t, &act, &shape, on_chip[li]);
        let strum_map = match (&m.descriptor, &m.nest) {
            (Some(d), _) => mapper::map(arch, &shape, *d, wbytes_strum).expect("legal"),
            (None, n) => map_nest(arch, t, &shape, wbytes_strum, None, n.as_ref(), on_chip[li]),
        };
        let stat = k_stat.map(|k| layer_energy(arch, t, k, &act, &strum_map));
        let dynm = layer_energy(arch, t, layer_kind(&name), &act, &strum_map);
        layers.push(LayerReport {
            name,
            macs: shape.macs(),
            activity: act,
            descriptor: m.descriptor,
            nest: m.nest.clone(),
            traffic: m.traffic.clone(),
            utilization: m.utilization,
            compulsory_dram_bytes: m.compulsory_dram_bytes,
            baseline: base,
            strum_static: stat,
            strum_dynamic: dynm,
            fixed_dataflow_pj: fixed,
            fixed_dataflow_on_chip_pj: fixed_chip,
            fixed_dataflow_cycles: fixed_cycles,
        });
    }
    let map_ms = t0.elapsed().as_secs_f64() * 1e3;
    let cycles: f64 = layers.iter().map(|l| l.baseline.cycles).sum();
    let time_us = cycles / arch.clock_mhz;
    let areas = [
        Some(pe::area(arch, t, k_base)),
        k_stat.map(|k| pe::area(arch, t, k)),
        Some(pe::area(arch, t, k_dyn_area)),
    ];
    let designs = Designs {
        layers: &layers,
        areas: &areas,
        leakage_frac: t.e("leakage_frac"),
        time_us,
        npe: (arch.array.rows * arch.array.cols) as f64,
    };
    let b = arch.pe_boundary;
    let sum_by = |f: &dyn Fn(&LayerReport) -> &[(String, f64)]| -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> = Vec::new();
        for l in &layers {
            for (i, (n, e)) in f(l).iter().enumerate() {
                match out.get_mut(i) {
                    Some(x) => x.1 += e,
                    None => out.push((n.clone(), *e)),
                }
            }
        }
        out
    };
    Ok(HwReport {
        arch: arch.name.clone(),
        tech: t.name.clone(),
        multiplier_law: arch.multiplier_law.as_str(),
        scheme: cfg.label(),
        activity_source: sources.into_iter().collect::<Vec<_>>().join("+"),
        cycles,
        time_us,
        baseline: designs.summary(0, b),
        strum_static: areas[1].as_ref().map(|_| designs.summary(1, b)),
        strum_dynamic: designs.summary(2, b),
        boundaries: Boundary::ALL.iter().map(|&x| designs.boundary(x)).collect(),
        pe_boundary: b,
        pe_area: areas.clone(),
        dataflow_totals_pj: sum_by(&|l| &l.fixed_dataflow_pj),
        dataflow_on_chip_pj: sum_by(&|l| &l.fixed_dataflow_on_chip_pj),
        dataflow_cycles: sum_by(&|l| &l.fixed_dataflow_cycles),
        dram_bytes_per_image: layers.iter().map(|l| l.baseline.dram_bytes).sum(),
        compulsory_dram_bytes_per_image: layers.iter().map(|l| l.compulsory_dram_bytes).sum(),
        network_compulsory_dram_bytes_per_image: network_compulsory,
        spills,
        layers,
        calibration: arch.calibration.clone(),
        map_ms,
        mapper: mapper_description(arch),
    })
}

/// A layer's activity: measured (an eval's statistics) or, without them, the density model
/// (weight classes from the quantized weights, activations `default_act_density` dense).
fn layer_activity(
    arch: &Arch,
    stats: Option<&HashMap<String, Activity>>,
    name: &str,
    lq: &crate::quant::LayerQuant,
    shape: &LayerShape,
) -> Result<Activity> {
    if let Some(s) = stats {
        return s.get(name).cloned().ok_or_else(|| Error::Data {
            path: "stats".into(),
            reason: format!("no row for layer '{name}'"),
        });
    }
    let positions = (shape.p * shape.q) as f64;
    let d = arch.sparsity.default_act_density;
    let mut dense = [0.0; 3];
    for c in &lq.encoded.class {
        dense[*c as usize] += positions;
    }
    let total = lq.encoded.class.len() as f64;
    Ok(Activity {
        pairs_dense: dense,
        pairs_nz_act: [dense[0] * d, dense[1] * d, dense[2] * d],
        act_density: d,
        weight_density: 1.0 - lq.stats.zero as f64 / total,
        source: "density-model",
    })
}

/// The per-layer energies and PE areas of the three designs (0 baseline, 1 static, 2
/// dynamic), summed into network figures.
struct Designs<'a> {
    layers: &'a [LayerReport],
    areas: &'a [Option<pe::PeArea>; 3],
    leakage_frac: f64,
    time_us: f64,
    npe: f64,
}

impl Designs<'_> {
    fn energies(&self, idx: usize) -> Vec<&LayerEnergy> {
        self.layers
            .iter()
            .map(|l| match idx {
                0 => &l.baseline,
                1 => l
                    .strum_static
                    .as_ref()
                    .expect("a static design has every layer"),
                _ => &l.strum_dynamic,
            })
            .collect()
    }
    fn area(&self, idx: usize, b: Boundary) -> f64 {
        self.areas[idx].as_ref().map_or(0.0, |a| a.within(b))
    }
    /// PE energy inside `b`, leakage included: `leakage_frac` of the baseline PE's power at
    /// the baseline's area (same boundary), scaling with area and with the design's cycles
    /// (leakage is power x time: a static StruM PE that runs INT8 layers at half speed
    /// leaks longer).
    fn pe_energy(&self, idx: usize, b: Boundary) -> f64 {
        let dynamic = |i: usize| self.energies(i).iter().map(|e| e.pe(b)).sum::<f64>();
        let cycles = |i: usize| self.energies(i).iter().map(|e| e.cycles).sum::<f64>();
        let lf = self.leakage_frac;
        let leak_base = dynamic(0) * lf / (1.0 - lf);
        dynamic(idx)
            + leak_base * self.area(idx, b) / self.area(0, b).max(1e-30) * cycles(idx)
                / cycles(0).max(1e-30)
    }
    fn summary(&self, idx: usize, b: Boundary) -> DesignSummary {
        let es = self.energies(idx);
        let pe_energy = self.pe_energy(idx, b);
        let sram: f64 = es.iter().map(|e| e.sram_pj).sum();
        let cycles: f64 = es.iter().map(|e| e.cycles).sum();
        let base_cycles: f64 = self.energies(0).iter().map(|e| e.cycles).sum();
        let time_us = self.time_us * cycles / base_cycles.max(1e-30);
        DesignSummary {
            pe_area_um2: self.area(idx, b),
            pe_array_area_mm2: self.area(idx, b) * self.npe / 1e6,
            pe_energy_pj: pe_energy,
            pe_array_power_mw: pe_energy / time_us.max(1e-12) * 1e-3,
            cycles_per_image: cycles,
            dpu_energy_bottom_up_pj: self.pe_energy(idx, Boundary::Full) + sram,
            dram_energy_pj: es.iter().map(|e| e.dram_pj).sum(),
            dram_bytes: es.iter().map(|e| e.dram_bytes).sum(),
        }
    }
    fn change(&self, idx: usize, b: Boundary) -> Change {
        Change {
            pe_power_reduction_pct: 100.0 * (1.0 - self.pe_energy(idx, b) / self.pe_energy(0, b)),
            pe_area_reduction_pct: 100.0 * (1.0 - self.area(idx, b) / self.area(0, b)),
        }
    }
    fn boundary(&self, b: Boundary) -> BoundaryFigures {
        BoundaryFigures {
            boundary: b,
            baseline_pe_area_um2: self.area(0, b),
            baseline_pe_energy_pj: self.pe_energy(0, b),
            strum_static: self.areas[1].as_ref().map(|_| self.change(1, b)),
            strum_dynamic: self.change(2, b),
        }
    }
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
    /// from the mapped on-chip energy: PE array + SRAM, no calibration
    pub dpu_power_reduction_bottom_up_pct: f64,
    /// on chip and DRAM together
    pub system_energy_reduction_pct: f64,
}

/// None for the static variant of a per-layer configuration.
pub fn reductions(r: &HwReport, variant: Variant) -> Option<Reductions> {
    let s = match variant {
        Variant::Static => r.strum_static.as_ref()?,
        Variant::Dynamic => &r.strum_dynamic,
    };
    let b = &r.baseline;
    let pe_p = 100.0 * (1.0 - s.pe_energy_pj / b.pe_energy_pj);
    let pe_a = 100.0 * (1.0 - s.pe_area_um2 / b.pe_area_um2);
    Some(Reductions {
        variant,
        pe_power_reduction_pct: pe_p,
        pe_area_reduction_pct: pe_a,
        dpu_power_reduction_pct: r.calibration.pe_array_power_share * pe_p,
        dpu_area_reduction_pct: r.calibration.pe_array_area_share * pe_a,
        dpu_power_reduction_bottom_up_pct: 100.0
            * (1.0 - s.dpu_energy_bottom_up_pj / b.dpu_energy_bottom_up_pj),
        system_energy_reduction_pct: 100.0
            * (1.0
                - (s.dpu_energy_bottom_up_pj + s.dram_energy_pj)
                    / (b.dpu_energy_bottom_up_pj + b.dram_energy_pj)),
    })
}

/// Convenience: quantize and evaluate.
pub fn run(
    arch_path: &Path,
    law: Option<config::MultiplierLaw>,
    boundary: Option<Boundary>,
    graph: &Graph,
    cfg: &QuantConfig,
    stats: Option<&Path>,
) -> Result<HwReport> {
    let (mut arch, tech) = config::load(arch_path)?;
    if let Some(l) = law {
        arch.multiplier_law = l;
    }
    if let Some(b) = boundary {
        arch.pe_boundary = b;
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
