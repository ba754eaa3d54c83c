//! Depthwise convolution over NHWC INT8 (one input and one output channel per group):
//! `acc[c] = bias[c] + sum over taps inside the image of x[iy][ix][c] * w[tap][c]`, the
//! taps in (ky, kx) order like the reference kernel (the sum is exact in INT32 anyway),
//! then the fused epilogue. AVX-512 VNNI: 32 channels at a time, taps in pairs through
//! `vpdpwssd` (INT16 x INT16 pairs summed into INT32: exact, and +-128 weights fit).

use super::epi::Epi;
use super::gemm::Isa;
use crate::exec::ConvGeom;

/// Weights of a depthwise layer: `[kh * kw][cp]` INT16 (channels padded to 32), bias and
/// factors padded likewise; and for the AVX-512 kernel, taps in pairs `(t, t + 1)` laid out
/// in the order `vpunpck{l,h}wd` interleaves two tap vectors, with the bias likewise.
pub struct DwW {
    pub c: usize,
    pub cp: usize,
    pub w: Vec<i16>,
    pub bias: Vec<i32>,
    pub m: Vec<f32>,
    /// `[pair][block of 32][lo | hi][16 dwords of (w_t, w_t+1)]`
    pub wp: Vec<i16>,
    /// `[block][lo | hi][16]`
    pub bp: Vec<i32>,
}

/// Channel of dword `d` of the low (`hi = 0`) or high half of a block after the unpack:
/// 128-bit lane `L = d / 4` holds channels `8 L + (d % 4)` (low) or `8 L + 4 + (d % 4)`.
fn unpacked_channel(d: usize, hi: usize) -> usize {
    8 * (d / 4) + 4 * hi + d % 4
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
        let (pairs, nblk) = (taps.div_ceil(2), cp / 32);
        let mut wp = vec![0i16; pairs * nblk * 64];
        let mut bp = vec![0i32; nblk * 32];
        let bias = pad(bias);
        for blk in 0..nblk {
            for hi in 0..2 {
                for d in 0..16 {
                    let ch = blk * 32 + unpacked_channel(d, hi);
                    bp[(blk * 2 + hi) * 16 + d] = bias[ch];
                    for p in 0..pairs {
                        let at = ((p * nblk + blk) * 2 + hi) * 32 + 2 * d;
                        for j in 0..2 {
                            let t = 2 * p + j;
                            if t < taps {
                                wp[at + j] = w[t * cp + ch];
                            }
                        }
                    }
                }
            }
        }
        DwW {
            c,
            cp,
            w,
            bias,
            m: mp,
            wp,
            bp,
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
        Isa::Avx512Vnni if g.kh * g.kw <= x86::MAX_TAPS => unsafe { x86::depthwise(x, n, g, w, e) },
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

    /// Most kernel taps this kernel takes (larger kernels run the portable loop).
    pub const MAX_TAPS: usize = 64;

    /// Taps in pairs: the two tap vectors (INT8 widened to INT16, zero for a tap outside
    /// the image) interleaved by `vpunpck{l,h}wd` and multiplied-accumulated by `vpdpwssd`
    /// into two INT32 halves, put back in channel order by `vpermt2d` before the epilogue.
    ///
    /// # Safety
    /// AVX-512F/BW/VL and VNNI must be available; `kh * kw <= MAX_TAPS`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn depthwise(x: &[i8], n: usize, g: &ConvGeom, w: &DwW, e: &Epi) {
        let (c, taps) = (g.c, g.kh * g.kw);
        let (pairs, nblk) = (taps.div_ceil(2), w.cp / 32);
        assert!(taps <= MAX_TAPS);
        let mut off = [usize::MAX; MAX_TAPS + 1];
        unsafe {
            let idx0 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
            let idx1 =
                _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
            let zero = _mm512_setzero_si512();
            // offset of each tap from the window's top-left input pixel
            let mut delta = [0usize; MAX_TAPS];
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    delta[ky * g.kw + kx] = (ky * g.dh * g.w + kx * g.dw) * c;
                }
            }
            let span_y = (g.kh - 1) * g.dh;
            let span_x = (g.kw - 1) * g.dw;
            for b in 0..n {
                for oy in 0..g.oh {
                    let y0 = (oy * g.sh) as isize - g.pt as isize;
                    let rows_in = y0 >= 0 && (y0 as usize + span_y) < g.h;
                    for ox in 0..g.ow {
                        let x0 = (ox * g.sw) as isize - g.pl as isize;
                        if rows_in && x0 >= 0 && (x0 as usize + span_x) < g.w {
                            // interior: every tap inside the image
                            let base = ((b * g.h + y0 as usize) * g.w + x0 as usize) * c;
                            for t in 0..taps {
                                off[t] = base + delta[t];
                            }
                        } else {
                            for ky in 0..g.kh {
                                let iy = src(oy, g.sh, ky, g.dh, g.pt, g.h);
                                for kx in 0..g.kw {
                                    let ix = src(ox, g.sw, kx, g.dw, g.pl, g.w);
                                    off[ky * g.kw + kx] = match (iy, ix) {
                                        (Some(iy), Some(ix)) => ((b * g.h + iy) * g.w + ix) * c,
                                        _ => usize::MAX,
                                    };
                                }
                            }
                        }
                        let row = (b * g.oh + oy) * g.ow + ox;
                        for blk in 0..nblk {
                            let c0 = blk * 32;
                            let left = c - c0;
                            let mask: __mmask32 = if left >= 32 {
                                u32::MAX
                            } else {
                                (1u32 << left) - 1
                            };
                            let load = |t: usize| {
                                if off[t] == usize::MAX {
                                    zero
                                } else {
                                    let p = x.as_ptr().add(off[t] + c0);
                                    _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(mask, p))
                                }
                            };
                            let bp = w.bp.as_ptr().add(blk * 32);
                            let mut lo = _mm512_loadu_si512(bp as *const _);
                            let mut hi = _mm512_loadu_si512(bp.add(16) as *const _);
                            for p in 0..pairs {
                                let (x0, x1) = (load(2 * p), load(2 * p + 1));
                                let wp = w.wp.as_ptr().add((p * nblk + blk) * 64);
                                let wl = _mm512_loadu_si512(wp as *const _);
                                let wh = _mm512_loadu_si512(wp.add(32) as *const _);
                                lo = _mm512_dpwssd_epi32(lo, _mm512_unpacklo_epi16(x0, x1), wl);
                                hi = _mm512_dpwssd_epi32(hi, _mm512_unpackhi_epi16(x0, x1), wh);
                            }
                            store16(e, _mm512_permutex2var_epi32(lo, idx0, hi), row, c0);
                            store16(e, _mm512_permutex2var_epi32(lo, idx1, hi), row, c0 + 16);
                        }
                    }
                }
            }
        }
    }
}
