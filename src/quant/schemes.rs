//! One trait, many schemes: each a pure function from FP32 weights to integer codes, a
//! dequantized view, per-weight precision classes and storage bits.

use super::calib::{clip_value, rne, scale_from_clip};
use super::config::Calib;
use super::geometry::Geometry;
use super::packed::Packed;
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
    /// Storage with an ideal mask: log2 C(B, L) bits per mixed block instead of B (StruM);
    /// `storage_bits` otherwise.
    pub ideal_storage_bits: f64,
    /// Real (non-padding) weights placed in low-precision lanes (StruM; 0 otherwise).
    pub demoted: u64,
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
pub(super) fn per_channel_int(
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

pub(super) fn classes(q: &[i32], high: impl Fn(usize) -> bool) -> Vec<WClass> {
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

pub(super) fn dequant(q: &[i32], scales: &[f32], per: usize) -> Vec<f32> {
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
            ideal_storage_bits: 32.0 * w.data.len() as f64,
            demoted: 0,
            packed: None,
            low: 0,
        })
    }
}

pub use super::strum::Strum;

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
            ideal_storage_bits: 4.0 * q.len() as f64,
            demoted: 0,
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
            ideal_storage_bits: (g.num_blocks() as u64 * self.n as u64 * (8 + idx_bits)) as f64,
            demoted: 0,
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
            ideal_storage_bits: (g.num_blocks() as u64
                * (self.block as u64 * self.elem_bits as u64 + 8))
                as f64,
            demoted: 0,
            q,
            scales,
            scale_per: 0,
            packed: None,
            low: 0,
        })
    }
}
