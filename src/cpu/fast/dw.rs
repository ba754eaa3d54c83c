//! Depthwise convolution over NHWC INT8 (one input and one output channel per group):
//! `acc[c] = bias[c] + sum over taps inside the image of x[iy][ix][c] * w[tap][c]`, the
//! taps in (ky, kx) order like the reference kernel (the sum is exact in INT32 anyway),
//! then the fused epilogue. AVX-512BW: 32 channels at a time, INT16 products (|x| <= 128,
//! |w| <= 128, so every product fits INT16) widened into two INT32 accumulators.

use super::epi::Epi;
use super::gemm::Isa;
use crate::exec::ConvGeom;

/// Weights of a depthwise layer: `[kh * kw][cp]` INT16 (channels padded to 32), bias and
/// factors padded likewise.
pub struct DwW {
    pub c: usize,
    pub cp: usize,
    pub w: Vec<i16>,
    pub bias: Vec<i32>,
    pub m: Vec<f32>,
}

impl DwW {
    pub fn new(g: &ConvGeom, w_q: &[i32], bias: &[i32], m: &[f32]) -> Self {
        let c = g.oc;
        let cp = c.div_ceil(32) * 32;
        let taps = g.kh * g.kw;
        let mut w = vec![0i16; taps * cp];
        for ch in 0..c {
            for t in 0..taps {
                w[t * cp + ch] = w_q[ch * taps + t] as i16;
            }
        }
        let pad = |v: &[i32]| {
            let mut p = v.to_vec();
            p.resize(cp, 0);
            p
        };
        let mut mp = m.to_vec();
        mp.resize(cp, 0.0);
        DwW {
            c,
            cp,
            w,
            bias: pad(bias),
            m: mp,
        }
    }
}

/// Input rows `iy` (or columns) a tap reads for output `o`: `o * s + k * d - p`.
#[inline]
fn src(o: usize, s: usize, k: usize, d: usize, p: usize, n: usize) -> Option<usize> {
    let v = (o * s + k * d) as isize - p as isize;
    (v >= 0 && (v as usize) < n).then_some(v as usize)
}

/// Depthwise convolution of `n` images (`x`: `[n][h][w][c]`), outputs through `e` (row =
/// output pixel over the batch, column = channel).
pub fn depthwise(isa: Isa, x: &[i8], n: usize, g: &ConvGeom, w: &DwW, e: &Epi) {
    assert!(x.len() >= n * g.h * g.w * g.c);
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => unsafe { x86::depthwise(x, n, g, w, e) },
        _ => portable(x, n, g, w, e),
    }
}

fn portable(x: &[i8], n: usize, g: &ConvGeom, w: &DwW, e: &Epi) {
    let c = g.c;
    let mut acc = vec![0i32; c];
    for b in 0..n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                acc.copy_from_slice(&w.bias[..c]);
                for ky in 0..g.kh {
                    let Some(iy) = src(oy, g.sh, ky, g.dh, g.pt, g.h) else {
                        continue;
                    };
                    for kx in 0..g.kw {
                        let Some(ix) = src(ox, g.sw, kx, g.dw, g.pl, g.w) else {
                            continue;
                        };
                        let px = &x[((b * g.h + iy) * g.w + ix) * c..][..c];
                        let wt = &w.w[(ky * g.kw + kx) * w.cp..][..c];
                        for ((a, &v), &k) in acc.iter_mut().zip(px).zip(wt) {
                            *a += v as i32 * k as i32;
                        }
                    }
                }
                let row = (b * g.oh + oy) * g.ow + ox;
                for (ch, &a) in acc.iter().enumerate() {
                    // SAFETY: row and ch address the output the caller gave.
                    unsafe { e.store1(a, row, ch) };
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{DwW, src};
    use crate::cpu::fast::epi::{Epi, x86::store16};
    use crate::exec::ConvGeom;
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX-512F/BW/VL must be available.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn depthwise(x: &[i8], n: usize, g: &ConvGeom, w: &DwW, e: &Epi) {
        let c = g.c;
        for b in 0..n {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let row = (b * g.oh + oy) * g.ow + ox;
                    let mut c0 = 0;
                    while c0 < c {
                        let left = c - c0;
                        let mask: __mmask32 = if left >= 32 {
                            u32::MAX
                        } else {
                            (1u32 << left) - 1
                        };
                        unsafe {
                            let mut lo = _mm512_loadu_si512(w.bias.as_ptr().add(c0) as *const _);
                            let mut hi =
                                _mm512_loadu_si512(w.bias.as_ptr().add(c0 + 16) as *const _);
                            for ky in 0..g.kh {
                                let Some(iy) = src(oy, g.sh, ky, g.dh, g.pt, g.h) else {
                                    continue;
                                };
                                for kx in 0..g.kw {
                                    let Some(ix) = src(ox, g.sw, kx, g.dw, g.pl, g.w) else {
                                        continue;
                                    };
                                    let p = x.as_ptr().add(((b * g.h + iy) * g.w + ix) * c + c0);
                                    let xv = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(mask, p));
                                    let wv = _mm512_loadu_si512(
                                        w.w.as_ptr().add((ky * g.kw + kx) * w.cp + c0) as *const _,
                                    );
                                    let pr = _mm512_mullo_epi16(xv, wv);
                                    lo = _mm512_add_epi32(
                                        lo,
                                        _mm512_cvtepi16_epi32(_mm512_castsi512_si256(pr)),
                                    );
                                    hi = _mm512_add_epi32(
                                        hi,
                                        _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64::<1>(pr)),
                                    );
                                }
                            }
                            store16(e, lo, row, c0);
                            store16(e, hi, row, c0 + 16);
                        }
                        c0 += 32;
                    }
                }
            }
        }
    }
}
