//! PE micro-model: components, area, and energy per action, for the baseline INT8 PE and
//! the StruM PEs (MIP2Q / DLIQ, static or dynamic).
//!
//! * Baseline: `lanes` 8x8 multipliers, an adder tree, a 32-bit accumulator, IF/FL/OF
//!   register files, find-first sparsity logic, control.
//! * Static StruM: of every B lanes, L are built cheap (MIP2Q: barrel shifter; DLIQ with
//!   block shift: 8x4 multiplier + shifter; DLIQ without: 8x4 multiplier), plus operand
//!   steering muxes. Area and power fall.
//! * Dynamic StruM: the baseline PE; a low-precision product runs on a full lane with the
//!   unused partial products gated, costing an 8x4 multiply. Power falls, area does not. The
//!   precision mask is decoded by the bitmap logic FlexNN already has for sparsity
//!   (assumption; docs/hardware.md).

use serde::Serialize;

use super::config::{Arch, Tech};
use crate::quant::Scheme;
use crate::quant::config::DliqShift;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    Static,
    Dynamic,
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
    pub control_um2: f64,
    pub total_um2: f64,
}

/// Energy of one action, pJ.
#[derive(Clone, Debug, Serialize)]
pub struct PeEnergy {
    /// a MAC whose weight is INT8
    pub mac_high_pj: f64,
    /// a MAC whose weight is low precision
    pub mac_low_pj: f64,
    /// adder tree + accumulator + sparsity logic, per PE cycle
    pub cycle_pj: f64,
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

/// Cheap-lane area and per-use energy for a StruM scheme.
fn cheap_lane(arch: &Arch, t: &Tech, scheme: Scheme, shift: DliqShift) -> (f64, f64) {
    let sh = (
        t.a("mult8") * t.a("barrel_shifter_rel_mult8"),
        t.e("mult8") * t.e("barrel_shifter_rel_mult8"),
    );
    let m84 = arch.multiplier_law.factor(8, 4);
    let mul = (t.a("mult8") * m84, t.e("mult8") * m84);
    match (scheme, shift) {
        (Scheme::Mip2q, _) => sh,
        (_, DliqShift::Block) => (mul.0 + sh.0, mul.1 + sh.1),
        _ => mul,
    }
}

pub fn area(arch: &Arch, t: &Tech, kind: PeKind) -> PeArea {
    let lanes = arch.array.lanes as f64;
    let (tree_a, _) = add_n(t, 18.0);
    let rf_bits = ((arch.rf.if_bytes + arch.rf.fl_bytes) * 8 + arch.rf.of_entries * 32) as f64;
    let mut a = PeArea {
        adder_tree_um2: (lanes - 1.0) * tree_a,
        accumulator_um2: t.a("add32"),
        register_files_um2: rf_bits * t.a("register_bit"),
        sparsity_logic_um2: t.a("add32") * t.a("sparsity_logic_rel_add32"),
        ..Default::default()
    };
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
            a.cheap_lanes_um2 = cheap * cheap_lane(arch, t, scheme, dliq_shift).0;
            a.steering_um2 = lanes * t.a("add8") * t.a("steering_rel_add8");
        }
        _ => a.multipliers_um2 = lanes * t.a("mult8"),
    }
    let datapath = a.multipliers_um2
        + a.cheap_lanes_um2
        + a.adder_tree_um2
        + a.accumulator_um2
        + a.register_files_um2
        + a.sparsity_logic_um2
        + a.steering_um2;
    a.control_um2 = datapath * t.a("control_frac");
    a.total_um2 = datapath + a.control_um2;
    a
}

pub fn energy(arch: &Arch, t: &Tech, kind: PeKind) -> PeEnergy {
    let lanes = arch.array.lanes as f64;
    let (_, tree_e) = add_n(t, 18.0);
    let reg = t.e("register_bit");
    let mac_high = t.e("mult8");
    let (mac_low, low_bits) = match kind {
        PeKind::Baseline => (mac_high, 8.0),
        PeKind::Strum {
            variant: Variant::Dynamic,
            ..
        } => (t.e("mult8") * arch.multiplier_law.factor(8, 4), 4.0),
        PeKind::Strum {
            scheme, dliq_shift, ..
        } => (cheap_lane(arch, t, scheme, dliq_shift).1, 4.0),
    };
    PeEnergy {
        mac_high_pj: mac_high,
        mac_low_pj: mac_low,
        cycle_pj: (lanes - 1.0) * tree_e
            + t.e("add32")
            + t.e("add32") * t.e("sparsity_logic_rel_add32"),
        rf_high_pj: (8.0 + 8.0) * reg,
        rf_low_pj: (8.0 + low_bits) * reg,
    }
}
