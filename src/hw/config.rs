//! Architecture and technology configuration (TOML, unknown keys rejected).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MultiplierLaw {
    /// cost(a x b) = cost(8x8) * a*b/64
    Quadratic,
    /// cost(a x b) = cost(8x8) * (a+b)/16
    Linear,
    /// 8x4 from the synthesized components (experiments/hw/synth/components.json): area
    /// ratio of the netlists, energy ratio of their simulated toggles
    Synth,
}

impl MultiplierLaw {
    /// Area (`area = true`) or energy factor of an a x b multiplier against 8x8; the
    /// `synth` law reads the synthesized 8x4 ratio (`mult8x4_rel_mult8`) and knows no other.
    pub fn factor(self, t: &Tech, area: bool, a: u32, b: u32) -> f64 {
        match self {
            MultiplierLaw::Quadratic => (a * b) as f64 / 64.0,
            MultiplierLaw::Linear => (a + b) as f64 / 16.0,
            MultiplierLaw::Synth if area => t.a("mult8x4_rel_mult8"),
            MultiplierLaw::Synth => t.e("mult8x4_rel_mult8"),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            MultiplierLaw::Quadratic => "quadratic",
            MultiplierLaw::Linear => "linear",
            MultiplierLaw::Synth => "synth",
        }
    }
}

/// Which components count as "the PE" in PE area and PE power (docs/hardware.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Boundary {
    /// Multipliers or shifters, adder tree, accumulator, steering, control.
    Datapath,
    /// The datapath plus the register files.
    Rf,
    /// The datapath, the register files and the sparsity (find-first) logic.
    #[default]
    Full,
}

impl Boundary {
    pub const ALL: [Boundary; 3] = [Boundary::Datapath, Boundary::Rf, Boundary::Full];
    pub fn as_str(self) -> &'static str {
        match self {
            Boundary::Datapath => "datapath",
            Boundary::Rf => "rf",
            Boundary::Full => "full",
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArrayCfg {
    pub rows: usize,
    pub cols: usize,
    pub lanes: usize,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RfCfg {
    pub if_bytes: usize,
    pub fl_bytes: usize,
    pub of_entries: usize,
    /// width of a partial sum in the output RF and wherever it spills (default 32)
    #[serde(default = "psum_bits")]
    pub psum_bits: usize,
}

fn psum_bits() -> usize {
    32
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SramCfg {
    pub kib: usize,
    pub banks: usize,
    pub word_bytes: usize,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DramCfg {
    /// sustained DRAM bandwidth, bytes per DPU clock cycle
    pub bytes_per_cycle: f64,
}

/// Scale the technology table's absolute entries to another node. Unitless ratios
/// (entries named `*_rel_*` or `*_frac`) are not scaled.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeScaling {
    pub target_nm: u32,
    /// logic energy and area factors (every absolute entry but SRAM and DRAM)
    pub logic_energy: f64,
    pub logic_area: f64,
    /// SRAM energy factor (`sram_*` entries)
    pub sram_energy: f64,
    /// DRAM (`dram_*`) is off chip: never scaled
    pub source: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SparsityCfg {
    pub zero_skipping: bool,
    pub zvc: bool,
    pub default_act_density: f64,
    /// find-first window, bits of the combined bitmap each lane searches per step: 16 or
    /// 32 (the synthesized find_first16 / find_first32)
    #[serde(default = "window")]
    pub window: usize,
}

fn window() -> usize {
    16
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationCfg {
    pub pe_array_area_share: f64,
    pub pe_array_power_share: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Arch {
    pub name: String,
    pub tech: PathBuf,
    pub multiplier_law: MultiplierLaw,
    pub clock_mhz: f64,
    pub array: ArrayCfg,
    pub rf: RfCfg,
    pub sram: SramCfg,
    pub dram: DramCfg,
    pub sparsity: SparsityCfg,
    pub calibration: CalibrationCfg,
    #[serde(default)]
    pub node_scaling: Option<NodeScaling>,
    /// What PE area and power include (`--pe-boundary` overrides it).
    #[serde(default)]
    pub pe_boundary: Boundary,
    /// Bytes per activation, output and (baseline) weight value: 1 for INT8 (default), 2
    /// for a 16-bit design such as Eyeriss.
    #[serde(default = "one")]
    pub data_bytes: f64,
    /// The mapper and its search (defaults: the loop-nest mapper, LOMA's limits).
    #[serde(default)]
    pub mapper: MapperCfg,
}

/// Which mapper costs a layer: `nest` (model v3: loop nests with tiling at every level,
/// src/hw/nest.rs) or `descriptor` (model v2: 72 descriptors, kept for comparison).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MapperKind {
    #[default]
    Nest,
    Descriptor,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MapperCfg {
    #[serde(default)]
    pub kind: MapperKind,
    /// temporal loop prime factors kept after merging (ZigZag's LOMA `lpf_limit`, default 6)
    #[serde(default = "lpf_limit")]
    pub lpf_limit: usize,
    /// spatial unrollings searched per layer, best utilisation first (ZigZag default 3; 6 here)
    #[serde(default = "spatial_candidates")]
    pub spatial_candidates: usize,
    /// whether depthwise groups may be unrolled on the PE rows or columns
    #[serde(default = "yes")]
    pub unroll_groups: bool,
    /// what the search minimises: `edp` (energy x latency, default) or `energy`
    /// (ZigZag's default; ties by latency)
    #[serde(default)]
    pub objective: Objective,
    /// whether a layer's output may stay in the SRAM for the next layer (src/hw/network.rs);
    /// false sends every activation through DRAM, as ZigZag's per-layer runs do
    #[serde(default = "yes")]
    pub keep_activations_on_chip: bool,
}

/// The loop-nest search's objective.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// energy x latency: a mapping that saves 1 % of energy at 10x the cycles loses
    #[default]
    Edp,
    /// energy only, ties by latency
    Energy,
}

impl Objective {
    /// The score to minimise for a layer's energy (pJ) and latency (cycles).
    pub fn score(self, energy: f64, cycles: f64) -> f64 {
        match self {
            Objective::Edp => energy * cycles.max(1.0),
            Objective::Energy => energy,
        }
    }
}

fn lpf_limit() -> usize {
    6
}
fn spatial_candidates() -> usize {
    6
}
fn yes() -> bool {
    true
}

impl Default for MapperCfg {
    fn default() -> Self {
        MapperCfg {
            kind: MapperKind::Nest,
            lpf_limit: lpf_limit(),
            spatial_candidates: spatial_candidates(),
            unroll_groups: true,
            objective: Objective::Edp,
            keep_activations_on_chip: true,
        }
    }
}

fn one() -> f64 {
    1.0
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TechEntry {
    #[serde(default)]
    pub energy_pj: f64,
    #[serde(default)]
    pub area_um2: f64,
    pub source: String,
    /// A ratio of the synthesized components (`mip2q_lane/mult8x8`): the entry's area is
    /// the netlists' area ratio and its energy their toggle ratio (the area ratio where
    /// no toggle ratio was simulated), both read from the tech file's `synth` file.
    #[serde(default)]
    pub from_synth: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tech {
    pub name: String,
    pub node_nm: u32,
    pub voltage_v: f64,
    /// components.json of scripts/synth-components.sh, relative to the tech file
    #[serde(default)]
    pub synth: Option<PathBuf>,
    pub entries: BTreeMap<String, TechEntry>,
}

/// Entries every technology file must define.
pub const TECH_KEYS: &[&str] = &[
    "add8",
    "add32",
    "mult8",
    "register_bit",
    "sram_64b_32kib",
    "sram_64b_1mib",
    "dram_bit",
    "barrel_shifter_rel_mult8",
    "mult8x4_rel_mult8",
    "mult8_w4_rel_mult8",
    "dliq_shift_rel_mult8",
    "find_first16_rel_mult8",
    "find_first32_rel_mult8",
    "steering_rel_add8",
    "control_frac",
    "leakage_frac",
];

impl Tech {
    pub fn e(&self, k: &str) -> f64 {
        self.entries[k].energy_pj
    }
    pub fn a(&self, k: &str) -> f64 {
        self.entries[k].area_um2
    }
}

/// Read and deserialize a TOML file, naming the file in errors.
pub(crate) fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| Error::Data {
        path: path.display().to_string(),
        reason: crate::error::toml_reason(&text, &e),
    })
}

/// Load an architecture file and the technology file it names; validate both.
pub fn load(path: &Path) -> Result<(Arch, Tech)> {
    let arch: Arch = read(path)?;
    let tpath = path.parent().unwrap_or(Path::new(".")).join(&arch.tech);
    let mut tech: Tech = read(&tpath)?;
    resolve_synth(&mut tech, tpath.parent().unwrap_or(Path::new("."))).map_err(|reason| {
        Error::Data {
            path: tpath.display().to_string(),
            reason,
        }
    })?;
    validate(&arch, &tech).map_err(|reason| Error::Data {
        path: path.display().to_string(),
        reason,
    })?;
    if let Some(sc) = &arch.node_scaling {
        for (k, e) in tech.entries.iter_mut() {
            if k.contains("_rel_") || k.ends_with("_frac") || k.starts_with("dram_") {
                continue;
            }
            if k.starts_with("sram_") {
                e.energy_pj *= sc.sram_energy;
            } else {
                e.energy_pj *= sc.logic_energy;
            }
            e.area_um2 *= sc.logic_area;
        }
        tech.name = format!("{} scaled to {} nm", tech.name, sc.target_nm);
        tech.node_nm = sc.target_nm;
    }
    Ok((arch, tech))
}

/// Fill every `from_synth` entry from the synthesized components file.
fn resolve_synth(t: &mut Tech, dir: &Path) -> std::result::Result<(), String> {
    if !t.entries.values().any(|e| e.from_synth.is_some()) {
        return Ok(());
    }
    let rel = t
        .synth
        .clone()
        .ok_or("entries name from_synth but the file names no synth components file")?;
    let path = dir.join(&rel);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let j: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON ({e})", path.display()))?;
    for (k, e) in t.entries.iter_mut() {
        let Some(key) = &e.from_synth else { continue };
        // A toggle run of an existing netlist with other inputs (mult8x8_w4: the 8x8
        // multiplier fed 4-bit weights) has no area ratio of its own: the same netlist, 1.
        let area = j["ratios"][key.as_str()]
            .as_f64()
            .or_else(|| j["toggle_ratio"][key.as_str()].as_f64().map(|_| 1.0))
            .ok_or_else(|| format!("entry '{k}': {} has no ratio '{key}'", path.display()))?;
        e.area_um2 = area;
        e.energy_pj = j["toggle_ratio"][key.as_str()].as_f64().unwrap_or(area);
    }
    Ok(())
}

pub fn validate(a: &Arch, t: &Tech) -> std::result::Result<(), String> {
    let pos = |name: &str, v: usize| {
        if v == 0 {
            Err(format!("{name} must be positive"))
        } else {
            Ok(())
        }
    };
    pos("array.rows", a.array.rows)?;
    pos("array.cols", a.array.cols)?;
    pos("array.lanes", a.array.lanes)?;
    pos("rf.of_entries", a.rf.of_entries)?;
    pos("sram.kib", a.sram.kib)?;
    pos("sram.banks", a.sram.banks)?;
    pos("sram.word_bytes", a.sram.word_bytes)?;
    if a.rf.if_bytes < a.array.lanes {
        return Err(format!(
            "rf.if_bytes = {} does not hold one {}-lane input vector",
            a.rf.if_bytes, a.array.lanes
        ));
    }
    if a.rf.fl_bytes < a.array.lanes {
        return Err(format!(
            "rf.fl_bytes = {} does not hold one {}-lane weight vector",
            a.rf.fl_bytes, a.array.lanes
        ));
    }
    if ![16, 32].contains(&a.sparsity.window) {
        return Err(format!(
            "sparsity.window = {}: the synthesized find-first logic has windows 16 and 32",
            a.sparsity.window
        ));
    }
    if !(1..=64).contains(&a.rf.psum_bits) {
        return Err(format!(
            "rf.psum_bits = {} is not in 1..=64",
            a.rf.psum_bits
        ));
    }
    if !(a.dram.bytes_per_cycle > 0.0) {
        return Err("dram.bytes_per_cycle must be positive".into());
    }
    if let Some(sc) = &a.node_scaling
        && !(sc.logic_energy > 0.0 && sc.logic_area > 0.0 && sc.sram_energy > 0.0)
    {
        return Err("node_scaling factors must be positive".into());
    }
    if !(a.clock_mhz > 0.0) {
        return Err("clock_mhz must be positive".into());
    }
    let frac = |name: &str, v: f64| {
        if v > 0.0 && v <= 1.0 {
            Ok(())
        } else {
            Err(format!("{name} = {v} must lie in (0, 1]"))
        }
    };
    frac(
        "calibration.pe_array_area_share",
        a.calibration.pe_array_area_share,
    )?;
    frac(
        "calibration.pe_array_power_share",
        a.calibration.pe_array_power_share,
    )?;
    frac(
        "sparsity.default_act_density",
        a.sparsity.default_act_density,
    )?;
    for k in TECH_KEYS {
        let e = t
            .entries
            .get(*k)
            .ok_or_else(|| format!("technology '{}' lacks entry '{k}'", t.name))?;
        if e.energy_pj < 0.0
            || e.area_um2 < 0.0
            || !e.energy_pj.is_finite()
            || !e.area_um2.is_finite()
        {
            return Err(format!(
                "technology entry '{k}' has a negative or non-finite value"
            ));
        }
        if e.source.trim().is_empty() {
            return Err(format!("technology entry '{k}' has no source"));
        }
    }
    Ok(())
}
