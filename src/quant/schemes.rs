//! One trait, many schemes: each a pure function from FP32 weights to integer codes, a
//! dequantized view, per-weight precision classes and storage bits.

use super::calib::{clip_value, rne, scale_from_clip};
use super::config::{Calib, DliqShift, QuantConfig, Scheme, Selection};
use super::geometry::Geometry;
use super::lowp;
use super::packed::{LowFormat, Packed};
use crate::error::Result;

/// Precision class of one weight after quantization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum WClass {
    /// Non-zero, kept at full (8-bit or FP32) precision.
    High = 0,
    /// Non-zero, demoted to a low-precision (4-bit) format.
    Low = 1,
    /// Zero after quantization (pruned, or rounded to zero).
    Zero = 2,
}

/// A layer's weights, as a quantizer sees them.
#[derive(Clone, Copy, Debug)]
pub struct WeightView<'a> {
    pub data: &'a [f32],
    pub out_channels: usize,
    pub geometry: Geometry,
}

impl WeightView<'_> {
    pub fn per_channel(&self) -> usize {
        self.data.len() / self.out_channels.max(1)
    }
}

/// Output of a quantizer.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// Integer weight values in scale units (empty for FP32).
    pub q: Vec<i32>,
    /// Dequantized FP32 view: what the quantized layer computes with.
    pub deq: Vec<f32>,
    pub class: Vec<WClass>,
    /// Scale of each integer weight: per output channel, or per block for MX (see `scale_per`).
    pub scales: Vec<f32>,
    /// Number of consecutive weights (flat order) sharing one scale; 0 = per block (MX).
    pub scale_per: usize,
    /// Storage in bits, metadata included (per-channel FP32 scales excluded: common to all schemes).
    pub storage_bits: u64,
    /// The packed form (INT8 and StruM schemes).
    pub packed: Option<Packed>,
    /// L actually used (StruM), 0 otherwise.
    pub low: usize,
}

pub trait Quantizer {
    fn name(&self) -> String;
    fn quantize(&self, w: &WeightView) -> Result<Encoded>;
}

/// INT8 view of a layer's weights under `calib`: per-channel scales, `w / s` ratios and
/// INT8 codes (what StruM starts from; the GPU `strum_quantize` kernel's inputs).
pub fn int8_codes(
    data: &[f32],
    out_channels: usize,
    geometry: crate::quant::Geometry,
    calib: Calib,
    pct: f32,
) -> (Vec<f32>, Vec<f32>, Vec<i32>) {
    per_channel_int(
        &WeightView {
            data,
            out_channels,
            geometry,
        },
        127.0,
        calib,
        pct,
    )
}

/// Per-output-channel symmetric scales and rounded integers.
fn per_channel_int(
    w: &WeightView,
    qmax: f32,
    calib: Calib,
    pct: f32,
) -> (Vec<f32>, Vec<f32>, Vec<i32>) {
    let per = w.per_channel();
    let scales: Vec<f32> = w
        .data
        .chunks(per.max(1))
        .map(|ch| scale_from_clip(clip_value(ch, calib, pct, qmax), qmax))
        .collect();
    let ratio: Vec<f32> = w
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| v / scales[i / per])
        .collect();
    let q = ratio
        .iter()
        .map(|&r| rne(r).clamp(-qmax, qmax) as i32)
        .collect();
    (scales, ratio, q)
}

fn classes(q: &[i32], high: impl Fn(usize) -> bool) -> Vec<WClass> {
    q.iter()
        .enumerate()
        .map(|(i, &v)| {
            if v == 0 {
                WClass::Zero
            } else if high(i) {
                WClass::High
            } else {
                WClass::Low
            }
        })
        .collect()
}

fn dequant(q: &[i32], scales: &[f32], per: usize) -> Vec<f32> {
    q.iter()
        .enumerate()
        .map(|(i, &v)| v as f32 * scales[i / per])
        .collect()
}

pub struct Fp32;

impl Quantizer for Fp32 {
    fn name(&self) -> String {
        "fp32".into()
    }
    fn quantize(&self, w: &WeightView) -> Result<Encoded> {
        Ok(Encoded {
            q: Vec::new(),
            deq: w.data.to_vec(),
            class: w
                .data
                .iter()
                .map(|&v| if v == 0.0 { WClass::Zero } else { WClass::High })
                .collect(),
            scales: Vec::new(),
            scale_per: w.per_channel(),
            storage_bits: 32 * w.data.len() as u64,
            packed: None,
            low: 0,
        })
    }
}

/// StruM (and INT8 as its L = 0 case): per-channel INT8, then L lanes of every block demoted.
pub struct Strum {
    pub cfg: QuantConfig,
    /// Demoted lanes per block; 0 gives plain INT8.
    pub low: usize,
}

impl Strum {
    pub fn int8(cfg: &QuantConfig) -> Self {
        Strum {
            cfg: cfg.clone(),
            low: 0,
        }
    }
    fn format(&self) -> LowFormat {
        match (self.low, self.cfg.scheme) {
            (0, _) => LowFormat::None,
            (_, Scheme::Mip2q) => LowFormat::Mip2q {
                emin: self.cfg.p2_min_exp,
            },
            _ => LowFormat::Dliq {
                block_shift: self.cfg.dliq_shift == DliqShift::Block,
            },
        }
    }
    /// Demote one value under shift k: (value, code).
    fn demote(&self, q8: i32, k: u32) -> (i32, u32) {
        match self.format() {
            LowFormat::Mip2q { .. } => lowp::mip2q(
                q8,
                self.cfg.p2_min_exp,
                self.cfg.p2_max_exp,
                self.cfg.p2_round,
            ),
            LowFormat::Dliq { .. } => lowp::dliq(q8, k),
            LowFormat::None => (q8, 0),
        }
    }
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
        let g = w.geometry;
        let per = w.per_channel();
        let (scales, ratio, q8) =
            per_channel_int(w, 127.0, self.cfg.weight_calib, self.cfg.percentile);
        let fmt = self.format();
        let mut packed = Packed::new(g, self.low, fmt);
        let mut q = q8.clone();
        let mut is_high = vec![true; q.len()];
        let shift_choices: Vec<u32> = match fmt {
            LowFormat::Dliq { block_shift: true } => (0..=lowp::DLIQ_MAX_SHIFT).collect(),
            _ => vec![0],
        };
        let mut order: Vec<usize> = Vec::with_capacity(g.block);
        for b in 0..g.num_blocks() {
            let lanes: Vec<Option<usize>> = g.block_lanes(b).collect();
            let val = |lane: usize| lanes[lane].map_or(0, |i| q8[i]);
            let mag = |lane: usize| lanes[lane].map_or(-1.0, |i| ratio[i].abs());
            // Rank lanes: padding first, then by key, then by lane index.
            let rank = |order: &mut Vec<usize>, key: &dyn Fn(usize) -> f32| {
                order.clear();
                order.extend(0..g.block);
                order.sort_by(|&x, &y| {
                    let px = lanes[x].is_some();
                    let py = lanes[y].is_some();
                    px.cmp(&py)
                        .then(key(x).total_cmp(&key(y)))
                        .then(mag(x).total_cmp(&mag(y)))
                        .then(x.cmp(&y))
                });
            };
            let mut shift = 0u32;
            if self.low > 0 {
                match self.cfg.selection {
                    Selection::Magnitude => {
                        rank(&mut order, &|lane| mag(lane));
                        if let LowFormat::Dliq { block_shift: true } = fmt {
                            let m = order[..self.low]
                                .iter()
                                .map(|&l| val(l).abs())
                                .max()
                                .unwrap_or(0);
                            shift = lowp::dliq_min_shift(m);
                        }
                    }
                    Selection::Error => {
                        // Jointly minimise the block's demotion error over the shift and the set.
                        let mut best: Option<(i64, u32, Vec<usize>)> = None;
                        for &k in &shift_choices {
                            let err = |lane: usize| {
                                (val(lane) - self.demote(val(lane), k).0).abs() as f32
                            };
                            rank(&mut order, &err);
                            let total: i64 = order[..self.low].iter().map(|&l| err(l) as i64).sum();
                            if best.as_ref().is_none_or(|b| total < b.0) {
                                best = Some((total, k, order.clone()));
                            }
                        }
                        let (_, k, o) = best.expect("at least one shift choice");
                        shift = k;
                        order = o;
                    }
                }
            } else {
                order.clear();
                order.extend(0..g.block);
            }
            let mut hi_lane = vec![true; g.block];
            for &lane in &order[..self.low] {
                hi_lane[lane] = false;
            }
            let mut hi_vals = Vec::with_capacity(g.block - self.low);
            let mut lo_codes = Vec::with_capacity(self.low);
            for lane in 0..g.block {
                let v = val(lane);
                if hi_lane[lane] {
                    hi_vals.push(v);
                } else {
                    let (r, code) = self.demote(v, shift);
                    lo_codes.push(code);
                    if let Some(i) = lanes[lane] {
                        q[i] = r;
                        is_high[i] = false;
                    }
                }
            }
            packed.put_block(b, &hi_lane, &hi_vals, &lo_codes, shift);
        }
        let deq = dequant(&q, &scales, per);
        let class = classes(&q, |i| is_high[i]);
        Ok(Encoded {
            storage_bits: if self.low == 0 {
                8 * q.len() as u64
            } else {
                packed.storage_bits()
            },
            q,
            deq,
            class,
            scales,
            scale_per: per,
            packed: Some(packed),
            low: self.low,
        })
    }
}

/// Uniform per-channel INT4 (levels -7..=7).
pub struct Int4 {
    pub calib: Calib,
    pub percentile: f32,
}

impl Quantizer for Int4 {
    fn name(&self) -> String {
        "int4".into()
    }
    fn quantize(&self, w: &WeightView) -> Result<Encoded> {
        let per = w.per_channel();
        let (scales, _, q) = per_channel_int(w, 7.0, self.calib, self.percentile);
        Ok(Encoded {
            deq: dequant(&q, &scales, per),
            class: classes(&q, |_| false),
            storage_bits: 4 * q.len() as u64,
            q,
            scales,
            scale_per: per,
            packed: None,
            low: 0,
        })
    }
}

/// N:M magnitude sparsity on INT8: in every group of M along the block axis keep the N
/// largest magnitudes. Storage: N INT8 values + N lane indices of ceil(log2 M) bits per group.
pub struct NM {
    pub n: usize,
    pub m: usize,
    pub calib: Calib,
    pub percentile: f32,
}

impl Quantizer for NM {
    fn name(&self) -> String {
        "nm".into()
    }
    fn quantize(&self, w: &WeightView) -> Result<Encoded> {
        let per = w.per_channel();
        let g = Geometry::new(w.geometry.p, w.geometry.a, w.geometry.q, self.m);
        let (scales, ratio, mut q) = per_channel_int(w, 127.0, self.calib, self.percentile);
        for b in 0..g.num_blocks() {
            let mut idx: Vec<usize> = g.block_lanes(b).flatten().collect();
            idx.sort_by(|&x, &y| ratio[y].abs().total_cmp(&ratio[x].abs()).then(x.cmp(&y)));
            for &i in idx.iter().skip(self.n) {
                q[i] = 0;
            }
        }
        let idx_bits = (usize::BITS - (self.m - 1).leading_zeros()) as u64;
        Ok(Encoded {
            deq: dequant(&q, &scales, per),
            class: classes(&q, |_| true),
            storage_bits: g.num_blocks() as u64 * self.n as u64 * (8 + idx_bits),
            q,
            scales,
            scale_per: per,
            packed: None,
            low: 0,
        })
    }
}

/// MX-style block integers: per block of B a shared power-of-two scale 2^e (8-bit exponent)
/// with e = ceil(log2(max|w| / qmax)), elements round(w / 2^e) clamped to +-qmax.
pub struct Mx {
    pub block: usize,
    pub elem_bits: u32,
}

impl Quantizer for Mx {
    fn name(&self) -> String {
        "mx".into()
    }
    fn quantize(&self, w: &WeightView) -> Result<Encoded> {
        let g = Geometry::new(w.geometry.p, w.geometry.a, w.geometry.q, self.block);
        let qmax = if self.elem_bits == 8 { 127.0f32 } else { 7.0 };
        let mut q = vec![0i32; w.data.len()];
        let mut elem_scale = vec![1.0f32; w.data.len()];
        let mut scales = Vec::with_capacity(g.num_blocks());
        for b in 0..g.num_blocks() {
            let idx: Vec<usize> = g.block_lanes(b).flatten().collect();
            let amax = idx.iter().fold(0.0f32, |m, &i| m.max(w.data[i].abs()));
            let e = if amax > 0.0 {
                (amax / qmax).log2().ceil().clamp(-127.0, 127.0)
            } else {
                0.0
            };
            let s = e.exp2();
            scales.push(s);
            for &i in &idx {
                q[i] = rne(w.data[i] / s).clamp(-qmax, qmax) as i32;
                elem_scale[i] = s;
            }
        }
        let low = self.elem_bits < 8;
        Ok(Encoded {
            deq: q
                .iter()
                .zip(&elem_scale)
                .map(|(&v, &s)| v as f32 * s)
                .collect(),
            class: classes(&q, |_| !low),
            storage_bits: g.num_blocks() as u64 * (self.block as u64 * self.elem_bits as u64 + 8),
            q,
            scales,
            scale_per: 0,
            packed: None,
            low: 0,
        })
    }
}
