//! Dataflow descriptors and the per-layer mapper.
//!
//! A descriptor assigns two loop dimensions to the PE rows and columns, one dimension to
//! the MAC lanes inside a PE, and names the operand kept stationary in the PE register
//! files. The mapper enumerates every legal descriptor of a layer and keeps the one of least
//! energy (ties: fewer cycles); the fixed dataflows (weight-, output-, input- and
//! row-stationary) are points of the same space, so the mapper is never worse than any.
//!
//! Access counts are reuse-based (docs/hardware.md): an operand kept stationary is read from
//! SRAM once; otherwise it is read once per use, divided by its spatial reuse (weights are
//! broadcast across PEs that unroll P or Q, inputs across PEs that unroll K, partial sums
//! are reduced across PEs that unroll C). Non-stationary outputs spill 32-bit partial sums
//! to SRAM (read + write) once per temporal reduction step. DRAM traffic comes from the
//! SRAM-level tiling ([`dram_traffic`]), per operand.

use serde::Serialize;

use super::config::Arch;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Dim {
    K,
    C,
    P,
    Q,
    S,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Stationary {
    Weight,
    Input,
    Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Descriptor {
    pub rows: Dim,
    pub cols: Dim,
    pub lanes: Dim,
    pub stationary: Stationary,
}

/// The fixed dataflows compared against the flexible mapper.
pub const FIXED: [(&str, Descriptor); 4] = [
    (
        "weight-stationary",
        Descriptor {
            rows: Dim::C,
            cols: Dim::K,
            lanes: Dim::C,
            stationary: Stationary::Weight,
        },
    ),
    (
        "output-stationary",
        Descriptor {
            rows: Dim::P,
            cols: Dim::Q,
            lanes: Dim::C,
            stationary: Stationary::Output,
        },
    ),
    (
        "input-stationary",
        Descriptor {
            rows: Dim::C,
            cols: Dim::Q,
            lanes: Dim::C,
            stationary: Stationary::Input,
        },
    ),
    // Row-stationary (Eyeriss-like): a filter row in the PE (lanes over S), output rows over
    // PE rows, output channels over columns, partial sums kept.
    (
        "row-stationary",
        Descriptor {
            rows: Dim::P,
            cols: Dim::K,
            lanes: Dim::S,
            stationary: Stationary::Output,
        },
    ),
];

/// One layer's loop bounds (per group) and activity.
#[derive(Clone, Debug, Serialize)]
pub struct LayerShape {
    pub groups: usize,
    pub k: usize,
    pub c: usize,
    pub p: usize,
    pub q: usize,
    pub r: usize,
    pub s: usize,
    /// input elements (all groups)
    pub inputs: usize,
    /// [y, x]
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// input height and width without padding (padding is never fetched)
    pub in_hw: [usize; 2],
}

impl LayerShape {
    pub fn macs(&self) -> f64 {
        (self.groups * self.k * self.c * self.p * self.q * self.r * self.s) as f64
    }
    pub fn weights(&self) -> f64 {
        (self.groups * self.k * self.c * self.r * self.s) as f64
    }
    pub fn outputs(&self) -> f64 {
        (self.groups * self.k * self.p * self.q) as f64
    }
    /// The loop bounds of the loop-nest mapper.
    pub fn geometry(&self) -> super::nest::Geometry {
        use super::nest::Dim;
        let mut bound = [1; 7];
        for (d, n) in [
            (Dim::K, self.k),
            (Dim::C, self.c),
            (Dim::Oy, self.p),
            (Dim::Ox, self.q),
            (Dim::Fy, self.r),
            (Dim::Fx, self.s),
            (Dim::G, self.groups),
        ] {
            bound[d as usize] = n.max(1);
        }
        super::nest::Geometry {
            bound,
            stride: self.stride.map(|x| x.max(1)),
            dilation: self.dilation.map(|x| x.max(1)),
            in_hw: self.in_hw.map(|x| x.max(1)),
        }
    }
}

/// Traffic and cycles of one layer under one descriptor (dense, before sparsity).
#[derive(Clone, Debug, Serialize)]
pub struct Mapping {
    /// the v2 descriptor (None for a loop nest)
    pub descriptor: Option<Descriptor>,
    /// the v3 loop nest and its traffic (None for a descriptor)
    pub nest: Option<super::nest::Nest>,
    pub traffic: Option<super::nest::Traffic>,
    pub cycles: f64,
    pub utilization: f64,
    pub sram_weight_bytes: f64,
    pub sram_input_bytes: f64,
    pub sram_output_bytes: f64,
    /// DRAM bytes per image by operand (dense, before compression), and their sum
    pub dram_weight_bytes: f64,
    pub dram_input_bytes: f64,
    pub dram_output_bytes: f64,
    pub dram_bytes: f64,
    /// every weight, the input and the output once
    pub compulsory_dram_bytes: f64,
}

/// DRAM bytes of one layer by operand.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Traffic {
    pub weights: f64,
    pub inputs: f64,
    pub outputs: f64,
}

/// DRAM traffic of a layer with `w` weight, `i` input and `o` output bytes and an SRAM of
/// `sram` bytes. Each operand once when all three fit. Otherwise half the SRAM holds a tile
/// of one operand while the other streams through the rest, and the cheaper of the two
/// SRAM-level loop orders is taken:
///
/// * weights outer (tiles of whole filters, i.e. of K): `w + i * ceil(w / (sram / 2)) + o`;
/// * inputs outer (tiles of input rows with every channel): `i + w * ceil(i / (sram / 2)) + o`.
///
/// Either way a tile's outputs are complete when it leaves (its reduction over C, R, S ran
/// on chip), so outputs are written once.
pub fn dram_traffic(w: f64, i: f64, o: f64, sram: f64) -> Traffic {
    if w + i + o <= sram {
        return Traffic {
            weights: w,
            inputs: i,
            outputs: o,
        };
    }
    let half = (sram / 2.0).max(1.0);
    let weights_outer = Traffic {
        weights: w,
        inputs: i * (w / half).ceil().max(1.0),
        outputs: o,
    };
    let inputs_outer = Traffic {
        weights: w * (i / half).ceil().max(1.0),
        inputs: i,
        outputs: o,
    };
    let sum = |t: &Traffic| t.weights + t.inputs + t.outputs;
    if sum(&inputs_outer) < sum(&weights_outer) {
        inputs_outer
    } else {
        weights_outer
    }
}

fn size(l: &LayerShape, d: Dim) -> usize {
    match d {
        Dim::K => l.k,
        Dim::C => l.c,
        Dim::P => l.p,
        Dim::Q => l.q,
        Dim::S => l.s,
    }
}

/// Map `l` with descriptor `d`; `weight_bytes_per_weight` is the storage of one weight
/// (bits per weight / 8, metadata included). `None` when the descriptor is illegal.
pub fn map(
    arch: &Arch,
    l: &LayerShape,
    d: Descriptor,
    weight_bytes_per_weight: f64,
) -> Option<Mapping> {
    if d.rows == d.cols || d.lanes == Dim::K || d.lanes == Dim::P || d.lanes == Dim::Q {
        return None;
    }
    let lanes = arch.array.lanes;
    // Loop sizes after the lanes take their share.
    let reduced = |dim: Dim| -> usize {
        let n = size(l, dim);
        if dim == d.lanes { n.div_ceil(lanes) } else { n }
    };
    let unroll = |dim: Dim| -> usize {
        if d.rows == dim {
            reduced(dim).min(arch.array.rows)
        } else if d.cols == dim {
            reduced(dim).min(arch.array.cols)
        } else {
            1
        }
    };
    let temporal = |dim: Dim| reduced(dim).div_ceil(unroll(dim)) as f64;
    let cycles = l.groups as f64
        * temporal(Dim::K)
        * temporal(Dim::C)
        * temporal(Dim::P)
        * temporal(Dim::Q)
        * l.r as f64
        * temporal(Dim::S);
    let peak = (arch.array.rows * arch.array.cols * lanes) as f64;
    let utilization = l.macs() / (cycles * peak);
    let m = l.macs();
    let (uk, up, uq) = (
        unroll(Dim::K) as f64,
        unroll(Dim::P) as f64,
        unroll(Dim::Q) as f64,
    );
    let wbytes = l.weights() * weight_bytes_per_weight;
    // Activations and outputs take `data_bytes` each (1: INT8).
    let ab = arch.data_bytes;
    let (ibytes, obytes) = (l.inputs as f64 * ab, l.outputs() * ab);
    // RF fit: a stationary operand that overflows its RF is refetched proportionally.
    let per_pe_w = (lanes * l.r * l.s) as f64 * weight_bytes_per_weight;
    let per_pe_i = (lanes * l.r * l.s) as f64 * ab;
    let w_refetch = (per_pe_w / arch.rf.fl_bytes as f64).ceil().max(1.0);
    let i_refetch = (per_pe_i / arch.rf.if_bytes as f64).ceil().max(1.0);
    let (sw, si) = match d.stationary {
        Stationary::Weight => (wbytes * w_refetch, m * ab / uk),
        Stationary::Input => (m * weight_bytes_per_weight / (up * uq), ibytes * i_refetch),
        Stationary::Output => (m * weight_bytes_per_weight / (up * uq), m * ab / uk),
    };
    // Temporal reduction steps per output, after lanes and the spatial C unroll.
    let red_steps = temporal(Dim::C) * l.r as f64 * temporal(Dim::S);
    let so = match d.stationary {
        Stationary::Output => obytes,
        _ => l.outputs() * (4.0 * (2.0 * red_steps - 1.0)).max(ab),
    };
    let t = dram_traffic(wbytes, ibytes, obytes, (arch.sram.kib * 1024) as f64);
    Some(Mapping {
        descriptor: Some(d),
        nest: None,
        traffic: None,
        cycles,
        utilization,
        sram_weight_bytes: sw,
        sram_input_bytes: si,
        sram_output_bytes: so,
        dram_weight_bytes: t.weights,
        dram_input_bytes: t.inputs,
        dram_output_bytes: t.outputs,
        dram_bytes: t.weights + t.inputs + t.outputs,
        compulsory_dram_bytes: wbytes + ibytes + obytes,
    })
}

/// Every descriptor the mapper considers.
pub fn space() -> Vec<Descriptor> {
    let dims = [Dim::K, Dim::C, Dim::P, Dim::Q];
    let mut v = Vec::new();
    for &rows in &dims {
        for &cols in &dims {
            for lanes in [Dim::C, Dim::S] {
                for stationary in [Stationary::Weight, Stationary::Input, Stationary::Output] {
                    let d = Descriptor {
                        rows,
                        cols,
                        lanes,
                        stationary,
                    };
                    if rows != cols {
                        v.push(d);
                    }
                }
            }
        }
    }
    v
}
