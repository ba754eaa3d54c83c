//! PE micro-model: components, area, and energy per action, for the baseline INT8 PE and
//! the StruM PEs (MIP2Q / DLIQ, static or dynamic).
//!
//! * Baseline: `lanes` 8x8 multipliers, an adder tree, a 32-bit accumulator, IF/FL/OF
//!   register files, find-first sparsity logic, control.
//! * Static StruM: of every B lanes, L are built cheap (MIP2Q: barrel shifter; DLIQ: 8x4
//!   multiplier, with block shift plus one shifter per block of low lanes), plus operand
//!   steering muxes; the filter RF holds the same weights packed. Area and power fall.
//! * Dynamic StruM: the baseline PE, configurable per layer. DLIQ: a low-precision product
//!   runs on the lane's 8x8 multiplier with the 4-bit weight sign-extended, costing what
//!   the synthesized netlist toggles for such weights (0.95 of an 8-bit weight's; no gating
//!   of partial products is built); power falls little, area does not. MIP2Q: every lane also has a barrel shifter next to its
//!   multiplier (a power-of-two weight on an 8x8 multiplier would still toggle most of it),
//!   and a low-precision product runs on the shifter; power falls further, area grows by the
//!   shifters and their steering. The precision mask is decoded by the bitmap logic FlexNN
//!   already has for sparsity (assumption; docs/hardware.md).

use serde::Serialize;

use super::config::{Arch, Boundary, Tech};
use crate::quant::Scheme;
use crate::quant::config::DliqShift;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    Static,
    Dynamic,
}

impl Variant {
    /// The PE a report describes: the one asked for, else static for one setting everywhere
    /// and dynamic for a per-layer configuration, which only the dynamic PE runs.
    pub fn resolve(asked: Option<Variant>, per_layer: bool) -> crate::error::Result<Variant> {
        match (asked, per_layer) {
            (Some(Variant::Static), true) => Err(crate::error::Error::InvalidArg {
                arg: "variant".into(),
                reason: "a per-layer configuration runs on the dynamic PE only (a static PE has one lane split); use --variant dynamic".into(),
            }),
            (Some(v), _) => Ok(v),
            (None, false) => Ok(Variant::Static),
            (None, true) => Ok(Variant::Dynamic),
        }
    }
}

/// Which PE is modelled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PeKind {
    Baseline,
    Strum {
        scheme: Scheme,
        dliq_shift: DliqShift,
        block: usize,
        low: usize,
        variant: Variant,
    },
}

/// Area of one PE by component, µm².
#[derive(Clone, Debug, Default, Serialize)]
pub struct PeArea {
    pub multipliers_um2: f64,
    pub cheap_lanes_um2: f64,
    pub adder_tree_um2: f64,
    pub accumulator_um2: f64,
    pub register_files_um2: f64,
    pub sparsity_logic_um2: f64,
    pub steering_um2: f64,
    /// `control_frac` of the datapath components
    pub control_um2: f64,
    /// everything (the `full` boundary)
    pub total_um2: f64,
}

impl PeArea {
    /// The PE's area inside `b` (docs/hardware.md).
    pub fn within(&self, b: Boundary) -> f64 {
        let datapath = self.multipliers_um2
            + self.cheap_lanes_um2
            + self.adder_tree_um2
            + self.accumulator_um2
            + self.steering_um2
            + self.control_um2;
        match b {
            Boundary::Datapath => datapath,
            Boundary::Rf => datapath + self.register_files_um2,
            Boundary::Full => datapath + self.register_files_um2 + self.sparsity_logic_um2,
        }
    }
}

/// Energy of one action, pJ.
#[derive(Clone, Debug, Serialize)]
pub struct PeEnergy {
    /// a MAC whose weight is INT8
    pub mac_high_pj: f64,
    /// a MAC whose weight is low precision
    pub mac_low_pj: f64,
    /// adder tree + accumulator, per PE cycle
    pub cycle_pj: f64,
    /// sparsity (find-first) logic, per PE cycle
    pub sparsity_pj: f64,
    /// RF traffic per MAC (input byte + weight bits)
    pub rf_high_pj: f64,
    pub rf_low_pj: f64,
}

fn add_n(t: &Tech, bits: f64) -> (f64, f64) {
    // Linear interpolation between the 8- and 32-bit adders (assumption, docs/hardware.md).
    let f = (bits - 8.0) / 24.0;
    (
        t.a("add8") + f * (t.a("add32") - t.a("add8")),
        t.e("add8") + f * (t.e("add32") - t.e("add8")),
    )
}

/// An 8x4 multiplier, (area, energy), under the architecture's multiplier law.
fn mult84(arch: &Arch, t: &Tech) -> (f64, f64) {
    let law = arch.multiplier_law;
    (
        t.a("mult8") * law.factor(t, true, 8, 4),
        t.e("mult8") * law.factor(t, false, 8, 4),
    )
}

/// The find-first unit of one MAC lane, (area, energy) relative to the 8x8 multiplier, for
/// the configured window (synthesized; energy = the area ratio, no toggle run).
fn find_first(arch: &Arch, t: &Tech) -> (f64, f64) {
    let k = match arch.sparsity.window {
        32 => "find_first32_rel_mult8",
        _ => "find_first16_rel_mult8",
    };
    (t.a(k), t.e(k))
}

/// Cycles per MAC position of a PE whose lanes skip zero pairs with a windowed find-first
/// (relative to dense execution): every lane finds one non-zero pair of its W-bit window per
/// cycle, an empty window still takes a cycle, and the lanes feed one adder tree, so a
/// window step lasts as long as its busiest lane: E[max over lanes of max(1, X)] / W with
/// X ~ Binomial(W, d) non-zero pairs per lane window (independent positions: an assumption).
pub fn skip_cycles(d: f64, lanes: usize, window: usize) -> f64 {
    let d = d.clamp(0.0, 1.0);
    let w = window as i32;
    // P(X <= k), k = 0..W
    let mut cdf = Vec::with_capacity(window + 1);
    let (mut acc, mut c) = (0.0, 1.0f64); // c = binomial(W, k)
    for k in 0..=w {
        if k > 0 {
            c *= (w - k + 1) as f64 / k as f64;
        }
        acc += c * d.powi(k) * (1.0 - d).powi(w - k);
        cdf.push(acc.min(1.0));
    }
    // Y = max(1, X): P(Y <= 0) = 0, P(Y <= k) = P(X <= k) for k >= 1
    let mut e = 0.0;
    for k in 0..w {
        let f = if k == 0 { 0.0 } else { cdf[k as usize] };
        e += 1.0 - f.powi(lanes as i32);
    }
    e / window as f64
}

fn shifter(t: &Tech) -> (f64, f64) {
    (
        t.a("mult8") * t.a("barrel_shifter_rel_mult8"),
        t.e("mult8") * t.e("barrel_shifter_rel_mult8"),
    )
}

/// DLIQ's per-block shifter, which shifts the sum of a block's low-lane products once.
fn dliq_shifter(t: &Tech) -> (f64, f64) {
    (
        t.a("mult8") * t.a("dliq_shift_rel_mult8"),
        t.e("mult8") * t.e("dliq_shift_rel_mult8"),
    )
}

/// Low-lane groups of a PE: one per block the lanes hold at once (at least one).
fn groups(arch: &Arch, block: usize) -> f64 {
    (arch.array.lanes as f64 / block.max(1) as f64)
        .ceil()
        .max(1.0)
}

/// Area of the `cheap` low lanes of a static StruM PE, their shifters included.
fn cheap_lanes_area(
    arch: &Arch,
    t: &Tech,
    scheme: Scheme,
    shift: DliqShift,
    block: usize,
    cheap: f64,
) -> f64 {
    match (scheme, shift) {
        (Scheme::Mip2q, _) => cheap * shifter(t).0,
        (_, DliqShift::Block) => {
            cheap * mult84(arch, t).0 + groups(arch, block) * dliq_shifter(t).0
        }
        _ => cheap * mult84(arch, t).0,
    }
}

/// Energy of one low-precision MAC on a static StruM lane: DLIQ's block shift is shared
/// by the block's low lanes.
fn cheap_mac_energy(
    arch: &Arch,
    t: &Tech,
    scheme: Scheme,
    shift: DliqShift,
    block: usize,
    low: usize,
) -> f64 {
    let cheap = arch.array.lanes as f64 * low as f64 / block.max(1) as f64;
    match (scheme, shift) {
        (Scheme::Mip2q, _) => shifter(t).1,
        (_, DliqShift::Block) => {
            mult84(arch, t).1 + dliq_shifter(t).1 * groups(arch, block) / cheap.max(1.0)
        }
        _ => mult84(arch, t).1,
    }
}

/// Bits of the filter RF per stored weight: 8, or a static StruM PE's packed blocks
/// ((B - L) INT8 + L 4-bit values + a B-bit precision mask per block).
fn fl_bits_per_weight(kind: PeKind) -> f64 {
    match kind {
        PeKind::Strum {
            block,
            low,
            variant: Variant::Static,
            ..
        } if low > 0 && block > 0 => {
            (8.0 * (block - low) as f64 + 4.0 * low as f64 + block as f64) / block as f64
        }
        _ => 8.0,
    }
}

pub fn area(arch: &Arch, t: &Tech, kind: PeKind) -> PeArea {
    let lanes = arch.array.lanes as f64;
    let (tree_a, _) = add_n(t, 18.0);
    // A static StruM filter RF holds as many weights as the baseline's, packed.
    let fl_bits = arch.rf.fl_bytes as f64 * fl_bits_per_weight(kind);
    let rf_bits = arch.rf.if_bytes as f64 * 8.0
        + fl_bits
        + arch.rf.of_entries as f64 * arch.rf.psum_bits as f64;
    let mut a = PeArea {
        adder_tree_um2: (lanes - 1.0) * tree_a,
        accumulator_um2: t.a("add32"),
        register_files_um2: rf_bits * t.a("register_bit"),
        sparsity_logic_um2: lanes * t.a("mult8") * find_first(arch, t).0,
        ..Default::default()
    };
    let steering = lanes * t.a("add8") * t.a("steering_rel_add8");
    match kind {
        PeKind::Strum {
            scheme,
            dliq_shift,
            block,
            low,
            variant: Variant::Static,
        } if low > 0 => {
            let cheap = lanes * low as f64 / block as f64;
            a.multipliers_um2 = (lanes - cheap) * t.a("mult8");
            a.cheap_lanes_um2 = cheap_lanes_area(arch, t, scheme, dliq_shift, block, cheap);
            a.steering_um2 = steering;
        }
        PeKind::Strum {
            scheme: Scheme::Mip2q,
            variant: Variant::Dynamic,
            ..
        } => {
            a.multipliers_um2 = lanes * t.a("mult8");
            a.cheap_lanes_um2 = lanes * shifter(t).0;
            a.steering_um2 = steering;
        }
        _ => a.multipliers_um2 = lanes * t.a("mult8"),
    }
    let datapath = a.multipliers_um2
        + a.cheap_lanes_um2
        + a.adder_tree_um2
        + a.accumulator_um2
        + a.steering_um2;
    a.control_um2 = datapath * t.a("control_frac");
    a.total_um2 = a.within(Boundary::Datapath) + a.register_files_um2 + a.sparsity_logic_um2;
    a
}

pub fn energy(arch: &Arch, t: &Tech, kind: PeKind) -> PeEnergy {
    let lanes = arch.array.lanes as f64;
    let (_, tree_e) = add_n(t, 18.0);
    let reg = t.e("register_bit");
    let mac_high = t.e("mult8");
    // Bits of an activation and of a baseline weight read from the RFs per MAC.
    let bits = 8.0 * arch.data_bytes;
    let (mac_low, low_bits) = match kind {
        PeKind::Baseline => (mac_high, bits),
        PeKind::Strum {
            scheme: Scheme::Mip2q,
            variant: Variant::Dynamic,
            ..
        } => (shifter(t).1, 4.0),
        // The dynamic DLIQ PE's 8x8 multiplier fed a sign-extended 4-bit weight (measured
        // toggles of the synthesized netlist; no gating of partial products).
        PeKind::Strum {
            variant: Variant::Dynamic,
            ..
        } => (mac_high * t.e("mult8_w4_rel_mult8"), 4.0),
        PeKind::Strum {
            scheme,
            dliq_shift,
            block,
            low,
            ..
        } => (
            cheap_mac_energy(arch, t, scheme, dliq_shift, block, low),
            4.0,
        ),
    };
    PeEnergy {
        mac_high_pj: mac_high,
        mac_low_pj: mac_low,
        cycle_pj: (lanes - 1.0) * tree_e + t.e("add32"),
        sparsity_pj: lanes * t.e("mult8") * find_first(arch, t).1,
        rf_high_pj: (bits + bits) * reg,
        rf_low_pj: (bits + low_bits) * reg,
    }
}
