//! The StruM quantizer (and INT8 as its L = 0 case): per-channel INT8, then in every block
//! the L lanes of smallest magnitude (or smallest demotion error) demoted to MIP2Q or DLIQ.
//!
//! Steps, each a parameter of [`QuantConfig`] (docs/quantization.md):
//! 1. per-channel INT8 codes `q8 = rne(w / s)`;
//! 2. the MIP2Q exponent window of the layer (`p2_window`: anchored to the layer's largest
//!    |q8|, fixed, or the better of two by weight MSE);
//! 3. per block: which lanes are demoted (`selection`) and, for DLIQ, the shift k (per
//!    block or per channel, `dliq_shift_rule`);
//! 4. demotion from q8 or from w / s (`demote_from`);
//! 5. optionally a least-squares refit of each channel's scale (`refit`).

use super::config::{
    DemoteFrom, DliqShift, DliqShiftRule, P2Window, QuantConfig, Scheme, Selection,
};
use super::lowp;
use super::packed::{LowFormat, Packed};
use super::schemes::{Encoded, Quantizer, WeightView, classes, dequant, per_channel_int};
use crate::error::Result;

/// StruM (and INT8 as its L = 0 case).
pub struct Strum {
    pub cfg: QuantConfig,
    /// Demoted lanes per block; 0 gives plain INT8.
    pub low: usize,
}

/// The INT8 starting point of a layer: per-channel scales, w / s and q8.
struct Base<'a> {
    w: &'a WeightView<'a>,
    scales: Vec<f32>,
    ratio: Vec<f32>,
    q8: Vec<i32>,
}

/// One block's decision: which lanes are demoted (rank order, first `low` demoted) and k.
struct BlockChoice {
    order: Vec<usize>,
    shift: u32,
}

impl Strum {
    pub fn int8(cfg: &QuantConfig) -> Self {
        Strum {
            cfg: cfg.clone(),
            low: 0,
        }
    }

    fn format(&self, emin: u32) -> LowFormat {
        match (self.low, self.cfg.scheme) {
            (0, _) => LowFormat::None,
            (_, Scheme::Mip2q) => LowFormat::Mip2q { emin },
            _ => LowFormat::Dliq {
                block_shift: self.cfg.dliq_shift != DliqShift::None,
            },
        }
    }

    /// The MIP2Q windows to try for this layer (one unless `p2_window = auto`).
    fn windows(&self, q8: &[i32]) -> Vec<(u32, u32)> {
        match self.cfg.p2_window {
            _ if self.cfg.scheme != Scheme::Mip2q || self.low == 0 => {
                vec![(self.cfg.p2_min_exp, self.cfg.p2_max_exp)]
            }
            P2Window::Fixed => vec![(self.cfg.p2_min_exp, self.cfg.p2_max_exp)],
            P2Window::Anchored => {
                vec![lowp::anchored_window(
                    q8.iter().map(|v| v.abs()).max().unwrap_or(0),
                )]
            }
            P2Window::Auto => vec![(0, 6), (1, 7)],
        }
    }

    /// The value a demoted lane is rounded from.
    fn source(&self, b: &Base, i: usize) -> f32 {
        match self.cfg.demote_from {
            DemoteFrom::Q8 => b.q8[i] as f32,
            DemoteFrom::Ratio => b.ratio[i],
        }
    }

    /// Demote one source value under window `win` and shift k.
    fn demote(&self, v: f32, win: (u32, u32), k: u32) -> i32 {
        match (self.cfg.scheme, self.cfg.demote_from) {
            (Scheme::Mip2q, DemoteFrom::Q8) => {
                lowp::mip2q(v as i32, win.0, win.1, self.cfg.p2_round).0
            }
            (Scheme::Mip2q, DemoteFrom::Ratio) => lowp::mip2q_f(v, win.0, win.1, self.cfg.p2_round),
            (_, DemoteFrom::Q8) => lowp::dliq(v as i32, k).0,
            (_, DemoteFrom::Ratio) => lowp::dliq_f(v, k),
        }
    }

    /// The 4-bit code of a demoted value (inverse of `lowp::*_decode`).
    fn code(&self, v: i32, emin: u32, k: u32) -> u32 {
        if self.cfg.scheme == Scheme::Mip2q {
            if v == 0 {
                return lowp::MIP2Q_ZERO_CODE;
            }
            let e = v.unsigned_abs().trailing_zeros();
            ((v < 0) as u32) << 3 | (e - emin)
        } else {
            ((v >> k) as u32) & 0xF
        }
    }

    /// DLIQ shift for a set of demoted source values under the configured rule.
    fn shift_for(&self, vals: &[f32]) -> u32 {
        match self.cfg.dliq_shift_rule {
            DliqShiftRule::Max => {
                let m = vals.iter().fold(0f32, |m, v| m.max(v.abs()));
                (0..=lowp::DLIQ_MAX_SHIFT)
                    .find(|&k| m <= (7u32 << k) as f32)
                    .unwrap_or(lowp::DLIQ_MAX_SHIFT)
            }
            DliqShiftRule::Rounding => lowp::dliq_round_shift(vals.iter().copied()),
        }
    }

    /// Rank the lanes of a block by `key` (padding first, then key, then |w / s|, then lane).
    fn rank(lanes: &[Option<usize>], b: &Base, key: &dyn Fn(usize) -> f32) -> Vec<usize> {
        let mag = |lane: usize| lanes[lane].map_or(-1.0, |i| b.ratio[i].abs());
        let mut order: Vec<usize> = (0..lanes.len()).collect();
        order.sort_by(|&x, &y| {
            lanes[x]
                .is_some()
                .cmp(&lanes[y].is_some())
                .then(key(x).total_cmp(&key(y)))
                .then(mag(x).total_cmp(&mag(y)))
                .then(x.cmp(&y))
        });
        order
    }

    /// Demoted lanes and shift of one block. `fixed_k`: the channel's shift (channel rule).
    fn choose(
        &self,
        lanes: &[Option<usize>],
        b: &Base,
        win: (u32, u32),
        fixed_k: Option<u32>,
    ) -> BlockChoice {
        let src = |lane: usize| lanes[lane].map_or(0.0, |i| self.source(b, i));
        let dliq_shift = self.cfg.scheme == Scheme::Dliq && self.cfg.dliq_shift != DliqShift::None;
        if self.low == 0 {
            return BlockChoice {
                order: (0..lanes.len()).collect(),
                shift: 0,
            };
        }
        match self.cfg.selection {
            Selection::Magnitude => {
                let order = Self::rank(lanes, b, &|lane| {
                    lanes[lane].map_or(-1.0, |i| b.ratio[i].abs())
                });
                let shift = match fixed_k {
                    Some(k) => k,
                    None if dliq_shift => {
                        let v: Vec<f32> = order[..self.low].iter().map(|&l| src(l)).collect();
                        self.shift_for(&v)
                    }
                    None => 0,
                };
                BlockChoice { order, shift }
            }
            Selection::Error => {
                // Jointly minimise the block's demotion error over the shift and the set.
                let ks: Vec<u32> = match fixed_k {
                    Some(k) => vec![k],
                    None if dliq_shift => (0..=lowp::DLIQ_MAX_SHIFT).collect(),
                    None => vec![0],
                };
                let mut best: Option<(f64, BlockChoice)> = None;
                for k in ks {
                    let err =
                        |lane: usize| (src(lane) - self.demote(src(lane), win, k) as f32).abs();
                    let order = Self::rank(lanes, b, &err);
                    let total: f64 = order[..self.low].iter().map(|&l| err(l) as f64).sum();
                    if best.as_ref().is_none_or(|(t, _)| total < *t) {
                        best = Some((total, BlockChoice { order, shift: k }));
                    }
                }
                best.expect("at least one shift choice").1
            }
        }
    }

    /// Per-output-channel DLIQ shifts (`dliq_shift = channel`): the rule over every value
    /// that magnitude selection demotes in the channel.
    fn channel_shifts(&self, b: &Base, win: (u32, u32)) -> Vec<u32> {
        let g = b.w.geometry;
        let per = b.w.per_channel().max(1);
        let mut vals: Vec<Vec<f32>> = vec![Vec::new(); b.w.out_channels.max(1)];
        let by_mag = Strum {
            cfg: QuantConfig {
                selection: Selection::Magnitude,
                dliq_shift: DliqShift::None,
                ..self.cfg.clone()
            },
            low: self.low,
        };
        for blk in 0..g.num_blocks() {
            let lanes: Vec<Option<usize>> = g.block_lanes(blk).collect();
            let c = by_mag.choose(&lanes, b, win, None);
            for &lane in &c.order[..self.low] {
                if let Some(i) = lanes[lane] {
                    vals[i / per].push(self.source(b, i));
                }
            }
        }
        vals.iter().map(|v| self.shift_for(v)).collect()
    }

    /// Encode the layer under one MIP2Q window.
    fn encode(&self, b: &Base, win: (u32, u32)) -> Encoded {
        let g = b.w.geometry;
        let per = b.w.per_channel().max(1);
        let fmt = self.format(win.0);
        let chan_k = (self.low > 0
            && self.cfg.scheme == Scheme::Dliq
            && self.cfg.dliq_shift == DliqShift::Channel)
            .then(|| self.channel_shifts(b, win));
        let mut packed = Packed::new(g, self.low, fmt);
        let mut q = b.q8.clone();
        let mut is_high = vec![true; q.len()];
        let mut demoted = 0u64;
        for blk in 0..g.num_blocks() {
            let lanes: Vec<Option<usize>> = g.block_lanes(blk).collect();
            // A block inside one channel takes that channel's shift; one spanning channels
            // (depthwise = channel) the largest of theirs.
            let fixed_k = chan_k.as_ref().map(|ks| {
                lanes
                    .iter()
                    .flatten()
                    .map(|&i| ks[i / per])
                    .max()
                    .unwrap_or(0)
            });
            let c = self.choose(&lanes, b, win, fixed_k);
            let mut hi_lane = vec![true; g.block];
            for &lane in &c.order[..self.low] {
                hi_lane[lane] = false;
            }
            let (mut hi_vals, mut lo_codes) = (Vec::new(), Vec::new());
            for (lane, idx) in lanes.iter().enumerate() {
                let q8 = idx.map_or(0, |i| b.q8[i]);
                if hi_lane[lane] {
                    hi_vals.push(q8);
                    continue;
                }
                let src = idx.map_or(0.0, |i| self.source(b, i));
                let r = self.demote(src, win, c.shift);
                lo_codes.push(self.code(r, win.0, c.shift));
                if let Some(i) = *idx {
                    q[i] = r;
                    is_high[i] = false;
                    demoted += 1;
                }
            }
            packed.put_block(blk, &hi_lane, &hi_vals, &lo_codes, c.shift);
        }
        let scales = if self.cfg.refit && self.low > 0 {
            refit_scales(b.w.data, &q, &b.scales, per)
        } else {
            b.scales.clone()
        };
        let (storage_bits, ideal_storage_bits) = self.storage(&packed, q.len(), chan_k.as_deref());
        Encoded {
            deq: dequant(&q, &scales, per),
            class: classes(&q, |i| is_high[i]),
            storage_bits,
            ideal_storage_bits,
            demoted,
            q,
            scales,
            scale_per: per,
            packed: Some(packed),
            low: self.low,
        }
    }

    /// (storage bits, storage bits with an ideal mask). A per-channel shift costs 3 bits per
    /// channel instead of 3 per block.
    fn storage(&self, p: &Packed, n: usize, chan_k: Option<&[u32]>) -> (u64, f64) {
        if self.low == 0 {
            return (8 * n as u64, 8.0 * n as f64);
        }
        let shift = match chan_k {
            Some(ks) => 3 * ks.len() as u64,
            None => p.shift_bits(),
        };
        let base = p.payload_bits() + shift;
        (base + p.mask_bits(), base as f64 + p.ideal_mask_bits())
    }
}

/// Least-squares scale per channel: s* = sum(w c) / sum(c^2); the INT8 scale where the
/// channel is all zero or the fit is not a positive finite number.
fn refit_scales(w: &[f32], c: &[i32], scales: &[f32], per: usize) -> Vec<f32> {
    scales
        .iter()
        .enumerate()
        .map(|(ch, &s)| {
            let r = ch * per..(ch + 1) * per;
            let (mut wc, mut cc) = (0f64, 0f64);
            for (&wi, &ci) in w[r.clone()].iter().zip(&c[r]) {
                wc += wi as f64 * ci as f64;
                cc += (ci as f64).powi(2);
            }
            let fit = (wc / cc) as f32;
            if cc > 0.0 && fit.is_finite() && fit > 0.0 {
                fit
            } else {
                s
            }
        })
        .collect()
}

/// Squared weight error of an encoding.
fn sq_error(w: &[f32], e: &Encoded) -> f64 {
    w.iter()
        .zip(&e.deq)
        .map(|(&a, &b)| ((a - b) as f64).powi(2))
        .sum()
}

impl Quantizer for Strum {
    fn name(&self) -> String {
        if self.low == 0 {
            "int8".into()
        } else {
            self.cfg.scheme.as_str().into()
        }
    }

    fn quantize(&self, w: &WeightView) -> Result<Encoded> {
        let (scales, ratio, q8) =
            per_channel_int(w, 127.0, self.cfg.weight_calib, self.cfg.percentile);
        let base = Base {
            w,
            scales,
            ratio,
            q8,
        };
        let mut best: Option<(f64, Encoded)> = None;
        for win in self.windows(&base.q8) {
            let e = self.encode(&base, win);
            let err = sq_error(w.data, &e);
            if best.as_ref().is_none_or(|(b, _)| err < *b) {
                best = Some((err, e));
            }
        }
        Ok(best.expect("at least one window").1)
    }
}
