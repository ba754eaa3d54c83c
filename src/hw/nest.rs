//! The loop-nest mapper of FlexNN model v3 (docs/hardware.md, "Mapping").
//!
//! A mapping is a loop nest over the seven dimensions of a convolution (K, C, OY, OX, FY,
//! FX, G; batch 1): three loops unrolled in space (PE rows, PE columns, the MAC lanes of a
//! PE; the lanes feed one adder tree, so they unroll a reduction dimension) and the rest
//! temporal, ordered innermost first and split between three memory levels per operand:
//! the PE's register file (inputs, filters, 32-bit partial sums, each its own capacity),
//! the on-chip SRAM (shared by the three operands) and DRAM. Every operand keeps in its RF
//! the innermost loops whose data fits ("uneven" tiling: each operand its own boundary);
//! in the SRAM each operand likewise keeps its innermost loops while the three tiles fit
//! together.
//!
//! Access counts follow the reuse rules ZigZag uses (docs/zigzag-notes.md §1), so that our
//! numbers can be compared with that independent tool:
//! * crossing a level boundary, an operand moves (its tile below the boundary) x (the
//!   iterations of every loop above it); loops irrelevant to the operand above the boundary
//!   refetch, relevant ones fetch new data;
//! * a spatial loop irrelevant to an operand multicasts it (one SRAM read feeds every PE
//!   that shares it); a spatial reduction loop (C, FY, FX on rows or columns) sums partial
//!   sums on the array's network before they reach the SRAM;
//! * input tiles are sliding windows: rows = (OY - 1) x stride + (FY - 1) x dilation + 1,
//!   never more than the pixels actually used (OY x FY: a 1x1 stride-2 conv fetches only
//!   the pixels it reads) nor than the unpadded input (padding is generated, not fetched);
//! * at the innermost level a value reused by consecutive irrelevant loops is read once;
//! * partial sums move at `psum_bits` (32), finished outputs at the activation width; every level
//!   boundary a partial sum crosses twice costs a write and a read-back;
//! * DRAM fills and drains also write and read the SRAM.
//!
//! Latency: the temporal iterations plus bringing one array-wide slice of weights and
//! inputs from DRAM before the first MAC and draining the register files' last output tile
//! after the last (a pipeline's fill and drain), or the SRAM or DRAM transfer time when
//! longer (the levels overlap; DRAM stalls the array when it is the longer).
//!
//! The search (LOMA's method): the spatial unrollings of best utilisation, then for each
//! every order of the temporal loops' prime factors (merged to at most `lpf_limit`
//! factors); the least energy x latency wins (`objective = "edp"`, default) or the least
//! energy (`"energy"`, ZigZag's default), ties by latency. Results are cached per layer shape,
//! architecture and weight width, because `search` asks the model about every candidate.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde::Serialize;

use super::config::Arch;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Dim {
    K,
    C,
    Oy,
    Ox,
    Fy,
    Fx,
    G,
}

pub const DIMS: [Dim; 7] = [Dim::K, Dim::C, Dim::Oy, Dim::Ox, Dim::Fy, Dim::Fx, Dim::G];

/// The three operands, in the order of every `[_; 3]` below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Operand {
    W,
    I,
    O,
}

pub const OPERANDS: [Operand; 3] = [Operand::W, Operand::I, Operand::O];

impl Operand {
    /// Whether a loop over `d` touches different data of this operand (inputs: OY, OX,
    /// FY, FX are partially relevant and count as relevant).
    pub fn relevant(self, d: Dim) -> bool {
        match self {
            Operand::W => !matches!(d, Dim::Oy | Dim::Ox),
            Operand::I => d != Dim::K,
            Operand::O => matches!(d, Dim::K | Dim::Oy | Dim::Ox | Dim::G),
        }
    }
}

fn is_reduction(d: Dim) -> bool {
    matches!(d, Dim::C | Dim::Fy | Dim::Fx)
}

/// A layer's loop bounds and the geometry the input footprint needs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// indexed by `Dim as usize`
    pub bound: [usize; 7],
    /// [y, x]
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// input height and width without padding
    pub in_hw: [usize; 2],
}

impl Geometry {
    pub fn macs(&self) -> f64 {
        self.bound.iter().map(|&b| b as f64).product()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Loop {
    pub dim: Dim,
    pub size: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Spatial {
    pub rows: Loop,
    pub cols: Loop,
    pub lanes: Loop,
}

/// One mapping: the spatial unrolling, the temporal loops and where each level ends.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Nest {
    pub spatial: Spatial,
    /// temporal loops, innermost first
    pub loops: Vec<Loop>,
    /// per operand (W, I, O): how many of the innermost loops its PE register file holds
    pub rf_loops: [usize; 3],
    /// per operand (W, I, O): how many of the innermost loops the SRAM holds; the rest run
    /// from DRAM
    pub sram_loops: [usize; 3],
}

/// Bits moved at each level, per operand (W, I, O), and the latency parts, per image.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Traffic {
    pub rf_read_bits: [f64; 3],
    pub rf_write_bits: [f64; 3],
    pub sram_read_bits: [f64; 3],
    pub sram_write_bits: [f64; 3],
    pub dram_read_bits: [f64; 3],
    pub dram_write_bits: [f64; 3],
    /// temporal iterations (one per PE cycle)
    pub compute_cycles: f64,
    pub sram_cycles: f64,
    pub dram_cycles: f64,
    /// first RF tiles of weights and inputs brought from DRAM before the first MAC
    pub fill_cycles: f64,
    /// last output tile written to DRAM after the last MAC
    pub drain_cycles: f64,
    /// max(fill + compute + drain, SRAM, DRAM): the fill and drain are DRAM transfers, so a
    /// DRAM-bound layer's DRAM time already holds them
    pub latency_cycles: f64,
    /// useful MACs / (temporal iterations x array MACs)
    pub utilization: f64,
}

impl Traffic {
    pub fn rf_bits(&self) -> f64 {
        self.rf_read_bits.iter().chain(&self.rf_write_bits).sum()
    }
    pub fn sram_bits(&self) -> f64 {
        self.sram_read_bits
            .iter()
            .chain(&self.sram_write_bits)
            .sum()
    }
    pub fn dram_bits(&self) -> f64 {
        self.dram_read_bits
            .iter()
            .chain(&self.dram_write_bits)
            .sum()
    }
}

/// Energy per bit at each level, pJ (the search minimises their weighted sum).
#[derive(Clone, Copy, Debug)]
pub struct Costs {
    pub rf_bit: f64,
    pub sram_bit: f64,
    pub dram_bit: f64,
    /// the datapath's energy per MAC (the same for every mapping; it weighs latency against
    /// memory energy under the EDP objective)
    pub mac: f64,
}

impl Costs {
    /// Memory energy of a traffic, pJ.
    pub fn energy(&self, t: &Traffic) -> f64 {
        t.rf_bits() * self.rf_bit + t.sram_bits() * self.sram_bit + t.dram_bits() * self.dram_bit
    }
}

/// A constrained mapping (a fixed dataflow): the spatial unrolling is given and the
/// innermost temporal loop must be irrelevant to the stationary operand (when the layer has
/// such a loop), so that operand stays in its register file.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Fixed {
    pub rows: Dim,
    pub cols: Dim,
    pub lanes: Dim,
    pub stationary: Operand,
}

/// Per-dimension extents of a tile.
type Ext = [usize; 7];

fn footprint(op: Operand, g: &Geometry, e: &Ext) -> f64 {
    let x = |d: Dim| e[d as usize] as f64;
    match op {
        Operand::W => x(Dim::K) * x(Dim::C) * x(Dim::Fy) * x(Dim::Fx) * x(Dim::G),
        Operand::O => x(Dim::K) * x(Dim::Oy) * x(Dim::Ox) * x(Dim::G),
        Operand::I => {
            let win = |o: Dim, f: Dim, i: usize| -> f64 {
                let (eo, ef) = (e[o as usize], e[f as usize]);
                let span = (eo - 1) * g.stride[i] + (ef - 1) * g.dilation[i] + 1;
                span.min(eo * ef).min(g.in_hw[i]) as f64
            };
            x(Dim::C) * x(Dim::G) * win(Dim::Oy, Dim::Fy, 0) * win(Dim::Ox, Dim::Fx, 1)
        }
    }
}

fn grow(e: &mut Ext, l: Loop) {
    e[l.dim as usize] *= l.size;
}

fn product(loops: &[Loop]) -> f64 {
    loops.iter().map(|l| l.size as f64).product()
}

struct Widths {
    /// bits per weight (metadata included), per activation, per partial sum
    w: f64,
    a: f64,
    psum: f64,
}

impl Widths {
    fn of(&self, op: Operand) -> f64 {
        match op {
            Operand::W => self.w,
            Operand::I => self.a,
            Operand::O => self.a,
        }
    }
}

/// Cost one loop order: allocate the levels and count the traffic. `None` when the
/// lanes' own tile does not fit a register file.
fn cost(
    arch: &Arch,
    g: &Geometry,
    wd: &Widths,
    sp: Spatial,
    loops: Vec<Loop>,
) -> Option<(Nest, Traffic)> {
    let mut lane = [1usize; 7];
    grow(&mut lane, sp.lanes);
    let mut array = lane;
    grow(&mut array, sp.rows);
    grow(&mut array, sp.cols);
    let n = loops.len();
    let ext = |base: &Ext, j: usize| {
        let mut e = *base;
        loops[..j].iter().for_each(|&l| grow(&mut e, l));
        e
    };
    let reduction_above = |j: usize| loops[j..].iter().any(|l| is_reduction(l.dim));
    // SRAM, shared: each operand keeps its innermost loops as far as the three tiles fit
    // together ("uneven" allocation); at each loop the operand whose tile grows least
    // extends first, and an operand that cannot extend stops there.
    let sram_bits = (arch.sram.kib * 1024 * 8) as f64;
    let tile = |op: Operand, j: usize| {
        let bits = match op {
            Operand::W => wd.w,
            Operand::I => wd.a,
            Operand::O if reduction_above(j) => wd.psum,
            Operand::O => wd.a,
        };
        footprint(op, g, &ext(&array, j)) * bits
    };
    let mut k = [0usize; 3];
    let mut used: f64 = OPERANDS.iter().map(|&op| tile(op, 0)).sum();
    for j in 0..n {
        let mut grow_by: Vec<(f64, usize)> = (0..3)
            .filter(|&i| k[i] == j)
            .map(|i| (tile(OPERANDS[i], j + 1) - tile(OPERANDS[i], j), i))
            .collect();
        grow_by.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (d, i) in grow_by {
            if used + d <= sram_bits {
                used += d;
                k[i] = j + 1;
            }
        }
    }
    // Register files: each operand its innermost loops that fit, at most its SRAM's.
    let cap = [
        arch.rf.fl_bytes * 8,
        arch.rf.if_bytes * 8,
        arch.rf.of_entries * arch.rf.psum_bits,
    ]
    .map(|c| c as f64);
    let bits_rf = [wd.w, wd.a, wd.psum];
    let mut rf = [0usize; 3];
    for (i, op) in OPERANDS.iter().enumerate() {
        if footprint(*op, g, &lane) * bits_rf[i] > cap[i] {
            return None;
        }
        while rf[i] < k[i] && footprint(*op, g, &ext(&lane, rf[i] + 1)) * bits_rf[i] <= cap[i] {
            rf[i] += 1;
        }
    }
    let nest = Nest {
        spatial: sp,
        loops,
        rf_loops: rf,
        sram_loops: k,
    };
    let t = traffic(arch, g, wd, &nest, &lane, &array);
    Some((nest, t))
}

/// The traffic of an allocated nest (see the module's rules).
fn traffic(
    arch: &Arch,
    g: &Geometry,
    wd: &Widths,
    nest: &Nest,
    lane: &Ext,
    array: &Ext,
) -> Traffic {
    let loops = &nest.loops;
    let ext = |base: &Ext, j: usize| {
        let mut e = *base;
        loops[..j].iter().for_each(|&l| grow(&mut e, l));
        e
    };
    let above = |j: usize| product(&loops[j..]);
    let pes = (nest.spatial.rows.size * nest.spatial.cols.size) as f64;
    let iters = product(loops);
    let lanes = nest.spatial.lanes.size as f64;
    let full = ext(array, loops.len());
    let outputs = footprint(Operand::O, g, &full);
    let mut t = Traffic::default();
    for (i, op) in OPERANDS.iter().copied().enumerate() {
        let (j, k) = (nest.rf_loops[i], nest.sram_loops[i]);
        // innermost run of loops irrelevant to the operand, inside its RF
        let run: f64 = product(
            &loops[..j]
                .iter()
                .copied()
                .take_while(|l| !op.relevant(l.dim))
                .collect::<Vec<_>>(),
        );
        let rf_tiles = footprint(op, g, &ext(lane, j)) * pes * above(j);
        let to_sram = footprint(op, g, &ext(array, j)) * above(j);
        let to_dram = footprint(op, g, &ext(array, k)) * above(k);
        if op == Operand::O {
            // accumulate: read and write a partial sum per PE cycle, lanes reduced by the tree
            let acc = iters * pes / run;
            t.rf_read_bits[i] = acc * wd.psum;
            t.rf_write_bits[i] = acc * wd.psum;
            let spatial_red = [nest.spatial.rows, nest.spatial.cols]
                .iter()
                .any(|l| is_reduction(l.dim) && l.size > 1);
            let per_pe_outputs = footprint(op, g, &ext(lane, loops.len())) * pes;
            let finals_rf = if spatial_red { 0.0 } else { per_pe_outputs };
            t.rf_read_bits[i] += (rf_tiles - finals_rf) * wd.psum + finals_rf * wd.a;
            t.rf_write_bits[i] += (rf_tiles - per_pe_outputs).max(0.0) * wd.psum;
            let psums = |moves: f64| (moves - outputs).max(0.0);
            // SRAM: written once per drain from the array, psums read back
            t.sram_write_bits[i] = psums(to_sram) * wd.psum + outputs * wd.a;
            t.sram_read_bits[i] = psums(to_sram) * wd.psum;
            // DRAM: drained from the SRAM, psums read back through it
            t.dram_write_bits[i] = psums(to_dram) * wd.psum + outputs * wd.a;
            t.dram_read_bits[i] = psums(to_dram) * wd.psum;
            t.sram_read_bits[i] += t.dram_write_bits[i];
            t.sram_write_bits[i] += t.dram_read_bits[i];
        } else {
            let b = wd.of(op);
            let lanes_irr = if op.relevant(nest.spatial.lanes.dim) {
                1.0
            } else {
                lanes
            };
            t.rf_read_bits[i] = iters * pes * lanes / lanes_irr / run * b;
            t.rf_write_bits[i] = rf_tiles * b;
            t.sram_read_bits[i] = to_sram * b;
            t.dram_read_bits[i] = to_dram * b;
            t.sram_write_bits[i] = to_dram * b;
        }
    }
    let sram_bw = (arch.sram.banks * arch.sram.word_bytes * 8) as f64;
    let dram_bw = arch.dram.bytes_per_cycle * 8.0;
    t.compute_cycles = iters;
    t.sram_cycles = t.sram_bits() / sram_bw;
    t.dram_cycles = t.dram_bits() / dram_bw;
    // Before the first MAC: one array-wide slice of weights and inputs; after the last:
    // the output tile the register files hold.
    t.fill_cycles =
        (footprint(Operand::W, g, array) * wd.w + footprint(Operand::I, g, array) * wd.a) / dram_bw;
    t.drain_cycles = footprint(Operand::O, g, &ext(array, nest.rf_loops[2])) * wd.a / dram_bw;
    t.latency_cycles = (t.fill_cycles + t.compute_cycles + t.drain_cycles)
        .max(t.sram_cycles)
        .max(t.dram_cycles);
    let peak = (arch.array.rows * arch.array.cols * arch.array.lanes) as f64;
    t.utilization = g.macs() / (iters * peak);
    t
}

/// Remove the DRAM side of an input that is already in the SRAM (the previous layer left
/// it there) and of an output that stays there for the next layer (src/hw/network.rs).
/// Partial sums that go to DRAM and back still do.
pub fn keep_on_chip(arch: &Arch, t: &mut Traffic, input: bool, output: bool) {
    let (i, o) = (Operand::I as usize, Operand::O as usize);
    if input {
        t.sram_write_bits[i] -= t.dram_read_bits[i];
        t.dram_read_bits[i] = 0.0;
    }
    if output && t.dram_read_bits[o] == 0.0 {
        t.sram_read_bits[o] -= t.dram_write_bits[o];
        t.dram_write_bits[o] = 0.0;
        t.drain_cycles = 0.0;
    }
    let dram_bw = arch.dram.bytes_per_cycle * 8.0;
    let sram_bw = (arch.sram.banks * arch.sram.word_bytes * 8) as f64;
    t.sram_cycles = t.sram_bits() / sram_bw;
    t.dram_cycles = t.dram_bits() / dram_bw;
    t.latency_cycles = (t.fill_cycles + t.compute_cycles + t.drain_cycles)
        .max(t.sram_cycles)
        .max(t.dram_cycles);
}

/// The search's knobs (arch `[mapper]`).
#[derive(Clone, Copy, Debug)]
pub struct SearchCfg {
    /// temporal loop prime factors kept after merging (LOMA's lpf_limit)
    pub lpf_limit: usize,
    /// spatial unrollings searched per layer, best utilisation first
    pub spatial_candidates: usize,
    /// whether G (depthwise groups) may be unrolled on the PE rows or columns
    pub unroll_groups: bool,
    pub objective: super::config::Objective,
}

fn prime_factors(mut n: usize) -> Vec<usize> {
    let mut v = Vec::new();
    let mut p = 2;
    while p * p <= n {
        while n % p == 0 {
            v.push(p);
            n /= p;
        }
        p += 1;
    }
    if n > 1 {
        v.push(n);
    }
    v
}

/// The temporal loops left after the spatial unrolling, as prime factors merged (smallest
/// first, within a dimension) until at most `lpf` remain.
fn temporal_factors(g: &Geometry, sp: &Spatial, lpf: usize) -> Vec<Loop> {
    let mut by_dim: Vec<(Dim, Vec<usize>)> = DIMS
        .iter()
        .map(|&d| {
            let mut n = g.bound[d as usize];
            for l in [sp.rows, sp.cols, sp.lanes] {
                if l.dim == d {
                    n = n.div_ceil(l.size);
                }
            }
            (d, prime_factors(n))
        })
        .collect();
    let count = |v: &[(Dim, Vec<usize>)]| v.iter().map(|(_, f)| f.len()).sum::<usize>();
    while count(&by_dim) > lpf {
        let Some((_, f)) = by_dim
            .iter_mut()
            .filter(|(_, f)| f.len() >= 2)
            .min_by_key(|(_, f)| f[0] * f[1])
        else {
            break;
        };
        let merged = f[0] * f[1];
        f.drain(..2);
        let at = f.partition_point(|&x| x < merged);
        f.insert(at, merged);
    }
    by_dim
        .into_iter()
        .flat_map(|(dim, f)| f.into_iter().map(move |size| Loop { dim, size }))
        .collect()
}

/// Every distinct order of `items` (a multiset), passed to `f`.
fn permutations(items: &mut Vec<Loop>, f: &mut dyn FnMut(&[Loop])) {
    items.sort_by_key(|l| (l.dim, l.size));
    let n = items.len();
    let mut used = vec![false; n];
    let mut cur = Vec::with_capacity(n);
    fn rec(items: &[Loop], used: &mut [bool], cur: &mut Vec<Loop>, f: &mut dyn FnMut(&[Loop])) {
        if cur.len() == items.len() {
            f(cur);
            return;
        }
        for i in 0..items.len() {
            if used[i] || (i > 0 && items[i] == items[i - 1] && !used[i - 1]) {
                continue;
            }
            used[i] = true;
            cur.push(items[i]);
            rec(items, used, cur, f);
            cur.pop();
            used[i] = false;
        }
    }
    rec(items, &mut used, &mut cur, f);
}

/// The spatial unrollings to search: each dimension (or one dimension over both) on the
/// rows and columns, a reduction dimension on the lanes; sizes min(bound, array).
fn spatial_space(
    arch: &Arch,
    g: &Geometry,
    cfg: &SearchCfg,
    fixed: Option<&Fixed>,
) -> Vec<Spatial> {
    let a = &arch.array;
    let take = |d: Dim, left: &mut [usize; 7], n: usize| {
        let s = left[d as usize].min(n).max(1);
        left[d as usize] = left[d as usize].div_ceil(s);
        Loop { dim: d, size: s }
    };
    let make = |r: Dim, c: Dim, l: Dim| {
        let mut left = g.bound;
        let lanes = take(l, &mut left, a.lanes);
        let rows = take(r, &mut left, a.rows);
        let cols = take(c, &mut left, a.cols);
        Spatial { rows, cols, lanes }
    };
    if let Some(f) = fixed {
        // A dimension the layer does not have (FY on a 1x1 conv, OX on a dense layer)
        // leaves its array dimension to the input channels, as Eyeriss folds channels onto
        // idle PE rows.
        let or_c = |d: Dim| if g.bound[d as usize] > 1 { d } else { Dim::C };
        return vec![make(or_c(f.rows), or_c(f.cols), or_c(f.lanes))];
    }
    let mut out: Vec<(f64, Spatial)> = Vec::new();
    let pe_dims = DIMS
        .iter()
        .copied()
        .filter(|&d| d != Dim::G || cfg.unroll_groups);
    for r in pe_dims.clone() {
        for c in pe_dims.clone() {
            for l in [Dim::C, Dim::Fx, Dim::Fy] {
                let s = make(r, c, l);
                let used = (s.rows.size * s.cols.size * s.lanes.size) as f64;
                if out.iter().any(|(_, x)| *x == s) || (used == 1.0 && !out.is_empty()) {
                    continue;
                }
                let iters: f64 = DIMS
                    .iter()
                    .map(|&d| {
                        let mut n = g.bound[d as usize];
                        for x in [s.rows, s.cols, s.lanes] {
                            if x.dim == d {
                                n = n.div_ceil(x.size);
                            }
                        }
                        n as f64
                    })
                    .product();
                out.push((g.macs() / iters, s));
            }
        }
    }
    out.sort_by(|a, b| b.0.total_cmp(&a.0));
    out.truncate(cfg.spatial_candidates.max(1));
    out.into_iter().map(|(_, s)| s).collect()
}

/// The best mapping of a layer under `cfg.objective` (ties: lower latency); `w_bits` per
/// weight.
pub fn search(
    arch: &Arch,
    costs: &Costs,
    cfg: &SearchCfg,
    g: &Geometry,
    w_bits: f64,
    fixed: Option<&Fixed>,
) -> (Nest, Traffic) {
    type Key = (Geometry, String, u64, Option<String>);
    static CACHE: OnceLock<Mutex<HashMap<Key, (Nest, Traffic)>>> = OnceLock::new();
    let key: Key = (
        g.clone(),
        format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{}|{:?}",
            arch.array, arch.rf, arch.sram, arch.dram, costs, arch.data_bytes, cfg
        ),
        w_bits.to_bits(),
        fixed.map(|f| format!("{f:?}")),
    );
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(hit) = cache.lock().expect("mapper cache").get(&key) {
        return hit.clone();
    }
    let wd = widths(arch, w_bits);
    let mut best: Option<(f64, Nest, Traffic)> = None;
    for sp in spatial_space(arch, g, cfg, fixed) {
        let mut items = temporal_factors(g, &sp, cfg.lpf_limit);
        permutations(&mut items, &mut |order| {
            if let Some(f) = fixed {
                let first = order.first().map(|l| l.dim);
                let any_irr = order.iter().any(|l| !f.stationary.relevant(l.dim));
                if any_irr && first.is_some_and(|d| f.stationary.relevant(d)) {
                    return;
                }
            }
            let Some((nest, t)) = cost(arch, g, &wd, sp, order.to_vec()) else {
                return;
            };
            let e = cfg
                .objective
                .score(costs.energy(&t) + costs.mac * g.macs(), t.latency_cycles);
            let better = match &best {
                None => true,
                Some((be, _, bt)) => {
                    e < *be * (1.0 - 1e-12)
                        || (e <= *be * (1.0 + 1e-12) && t.latency_cycles < bt.latency_cycles)
                }
            };
            if better {
                best = Some((e, nest, t));
            }
        });
    }
    let (_, nest, t) =
        best.expect("a layer always has a legal mapping: one element per register file fits");
    cache
        .lock()
        .expect("mapper cache")
        .insert(key, (nest.clone(), t.clone()));
    (nest, t)
}

fn widths(arch: &Arch, w_bits: f64) -> Widths {
    Widths {
        w: w_bits,
        a: arch.data_bytes * 8.0,
        psum: arch.rf.psum_bits as f64,
    }
}

/// The traffic of a given nest with another weight width (a StruM design on the mapping
/// the baseline chose). The levels are re-allocated for the new width.
pub fn retime(arch: &Arch, g: &Geometry, nest: &Nest, w_bits: f64) -> Traffic {
    let wd = widths(arch, w_bits);
    match cost(arch, g, &wd, nest.spatial, nest.loops.clone()) {
        Some((_, t)) => t,
        None => {
            let mut lane = [1usize; 7];
            grow(&mut lane, nest.spatial.lanes);
            let mut array = lane;
            grow(&mut array, nest.spatial.rows);
            grow(&mut array, nest.spatial.cols);
            traffic(arch, g, &wd, nest, &lane, &array)
        }
    }
}
