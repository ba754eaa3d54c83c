//! The packed StruM encoding that a GPU kernel decodes (documented in docs/packed-format.md).
//!
//! Per block of B lanes (B <= 32), with K = B - L INT8 lanes and L low lanes:
//! * `masks[b]`: bit `lane` set <=> the lane holds an INT8 value. Exactly K bits are set.
//! * `hi[b * hi_words ..]`: the K INT8 values in lane order, one byte each, byte j at bits
//!   `8 * (j % 4)` of word `j / 4` (two's complement), `hi_words = ceil(K / 4)`.
//! * `lo[b * lo_words ..]`: the L 4-bit codes in lane order, nibble j at bits `4 * (j % 8)`
//!   of word `j / 8`, `lo_words = ceil(L / 8)`.
//! * `shifts`: DLIQ with block shift only: the block's k in bits `4 * (b % 8)` of word `b / 8`.
//!
//! The value of lane `lane`: if its mask bit is set, byte `popcount(mask & ((1 << lane) - 1))`
//! of the block's `hi` stream; otherwise nibble `lane - that rank` of the `lo` stream,
//! decoded by [`super::lowp`].

use serde::Serialize;

use super::geometry::Geometry;
use super::lowp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum LowFormat {
    /// No low lanes (plain INT8, L = 0).
    None,
    Mip2q {
        emin: u32,
    },
    Dliq {
        block_shift: bool,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Packed {
    pub geometry: Geometry,
    pub low: usize,
    pub format: LowFormat,
    pub masks: Vec<u32>,
    pub hi: Vec<u32>,
    pub lo: Vec<u32>,
    pub shifts: Vec<u32>,
}

impl Packed {
    pub fn hi_words(&self) -> usize {
        (self.geometry.block - self.low).div_ceil(4)
    }
    pub fn lo_words(&self) -> usize {
        self.low.div_ceil(8)
    }

    /// Empty containers for `geometry` with L low lanes per block.
    pub fn new(geometry: Geometry, low: usize, format: LowFormat) -> Self {
        let nb = geometry.num_blocks();
        let k = geometry.block - low;
        let shifts = match format {
            LowFormat::Dliq { block_shift: true } => vec![0; nb.div_ceil(8)],
            _ => Vec::new(),
        };
        Packed {
            geometry,
            low,
            format,
            masks: vec![0; nb],
            hi: vec![0; nb * k.div_ceil(4)],
            lo: vec![0; nb * low.div_ceil(8)],
            shifts,
        }
    }

    /// Store block `b`: `lanes[lane] = Some(int8)` for INT8 lanes, `None` + code for low lanes.
    pub fn put_block(
        &mut self,
        b: usize,
        hi_lane: &[bool],
        hi_vals: &[i32],
        lo_codes: &[u32],
        shift: u32,
    ) {
        let (hw, lw) = (self.hi_words(), self.lo_words());
        let mut mask = 0u32;
        for (lane, &h) in hi_lane.iter().enumerate() {
            if h {
                mask |= 1 << lane;
            }
        }
        self.masks[b] = mask;
        for (j, &v) in hi_vals.iter().enumerate() {
            self.hi[b * hw + j / 4] |= ((v as u32) & 0xFF) << (8 * (j % 4));
        }
        for (j, &c) in lo_codes.iter().enumerate() {
            self.lo[b * lw + j / 8] |= (c & 0xF) << (4 * (j % 8));
        }
        if !self.shifts.is_empty() {
            self.shifts[b / 8] |= (shift & 0xF) << (4 * (b % 8));
        }
    }

    /// Integer value of lane `lane` of block `b`.
    pub fn lane_value(&self, b: usize, lane: usize) -> i32 {
        let mask = self.masks[b];
        let rank = (mask & ((1u32 << lane) - 1)).count_ones() as usize;
        if mask >> lane & 1 == 1 {
            let w = self.hi[b * self.hi_words() + rank / 4];
            ((w >> (8 * (rank % 4))) & 0xFF) as u8 as i8 as i32
        } else {
            let j = lane - rank;
            let code = (self.lo[b * self.lo_words() + j / 8] >> (4 * (j % 8))) & 0xF;
            match self.format {
                LowFormat::None => 0,
                LowFormat::Mip2q { emin } => lowp::mip2q_decode(code, emin),
                LowFormat::Dliq { block_shift } => {
                    let k = if block_shift {
                        (self.shifts[b / 8] >> (4 * (b % 8))) & 0xF
                    } else {
                        0
                    };
                    lowp::dliq_decode(code, k)
                }
            }
        }
    }

    /// Decode the whole layer to integer weights in the original flat order.
    pub fn decode(&self) -> Vec<i32> {
        let g = &self.geometry;
        let mut out = vec![0i32; g.len()];
        for b in 0..g.num_blocks() {
            for (lane, idx) in g.block_lanes(b).enumerate() {
                if let Some(i) = idx {
                    out[i] = self.lane_value(b, lane);
                }
            }
        }
        out
    }

    /// Storage in bits, metadata included: INT8 and 4-bit payloads, the B-bit mask when a
    /// block mixes precisions (0 < L < B), and 3 bits of shift per block for DLIQ block shift.
    /// (The arrays themselves store a u32 mask per block, word-padded streams and 4-bit shift
    /// slots: docs/packed-format.md.)
    pub fn storage_bits(&self) -> u64 {
        self.payload_bits() + self.mask_bits() + self.shift_bits()
    }

    /// INT8 and 4-bit payload bits, padding lanes included.
    pub fn payload_bits(&self) -> u64 {
        let (b, l) = (self.geometry.block as u64, self.low as u64);
        self.geometry.num_blocks() as u64 * ((b - l) * 8 + l * 4)
    }

    fn mixed(&self) -> bool {
        self.low > 0 && self.low < self.geometry.block
    }

    /// B mask bits per block when the block mixes precisions.
    pub fn mask_bits(&self) -> u64 {
        if self.mixed() {
            (self.geometry.num_blocks() * self.geometry.block) as u64
        } else {
            0
        }
    }

    /// An ideal mask: log2 C(B, L) bits per mixed block (an index of the kept lanes).
    pub fn ideal_mask_bits(&self) -> f64 {
        if !self.mixed() {
            return 0.0;
        }
        let (b, l) = (self.geometry.block, self.low);
        let log2_choose: f64 = (0..l)
            .map(|i| ((b - i) as f64 / (i + 1) as f64).log2())
            .sum();
        self.geometry.num_blocks() as f64 * log2_choose
    }

    /// 3 bits of shift per block (DLIQ with a shift), else 0.
    pub fn shift_bits(&self) -> u64 {
        if matches!(self.format, LowFormat::Dliq { block_shift: true }) && self.low > 0 {
            3 * self.geometry.num_blocks() as u64
        } else {
            0
        }
    }
}
