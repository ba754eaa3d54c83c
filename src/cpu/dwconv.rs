//! FP32 depthwise convolution (one input channel per group) for the per-image engine's
//! FP32 mode, the FP32 reference of every evaluation.
//!
//! Each input channel is copied once into a zero-padded plane split into `sh x sw` phases
//! (rows and columns by their remainder modulo the stride), and the outputs are computed
//! as wide as a phase row, so that every kernel tap is one contiguous multiply-add run over
//! all output rows (strides included) that vectorizes even on 7x7 maps; the body is
//! compiled for AVX-512F and AVX2 and chosen at run time. Per output the sum is the
//! reference kernel's ([`super::kernels::conv2d`]): the bias, then `w * x` for taps
//! `(ky, kx)` ascending, multiply then add, never fused. The taps the reference skips
//! (padding) add `w * 0`, which leaves a finite sum unchanged, so the outputs equal the
//! reference kernel's (tests/fast_kernels.rs), up to the sign of a zero.

use super::kernels::ConvGeom;

/// Does [`depthwise_f32`] take this geometry?
pub fn takes(g: &ConvGeom) -> bool {
    g.icg == 1 && g.group > 1 && g.group == g.c
}

/// Depthwise convolution of one image `[C, H, W]` accumulating into `acc`
/// (`[OC, OH, OW]`, pre-filled with the bias); `scratch` is reused between calls.
pub fn depthwise_f32(x: &[f32], wt: &[f32], g: &ConvGeom, acc: &mut [f32], scratch: &mut Vec<f32>) {
    assert!(takes(g), "depthwise_f32 needs one input channel per group");
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked above).
            return unsafe { dw_avx512(x, wt, g, acc, scratch) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked above).
            return unsafe { dw_avx2(x, wt, g, acc, scratch) };
        }
    }
    dw_body(x, wt, g, acc, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dw_avx512(x: &[f32], wt: &[f32], g: &ConvGeom, acc: &mut [f32], s: &mut Vec<f32>) {
    dw_body(x, wt, g, acc, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dw_avx2(x: &[f32], wt: &[f32], g: &ConvGeom, acc: &mut [f32], s: &mut Vec<f32>) {
    dw_body(x, wt, g, acc, s)
}

/// The padded plane of one input channel split into `sh x sw` phases: phase `(a, b)` holds
/// the padded rows `a, a + sh, ...` and columns `b, b + sw, ...`, each `rows x cols`.
struct Phases {
    rows: usize,
    cols: usize,
}

impl Phases {
    fn new(g: &ConvGeom) -> Self {
        // rows and columns of the padded plane that the outputs read
        let ph = (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1;
        let pw = (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1;
        Phases {
            rows: ph.div_ceil(g.sh),
            cols: pw.div_ceil(g.sw),
        }
    }

    /// Where tap `(ky, kx)` of output `(0, 0)` reads.
    fn start(&self, g: &ConvGeom, ky: usize, kx: usize) -> usize {
        let (r, c) = (ky * g.dh, kx * g.dw);
        let phase = (r % g.sh) * g.sw + c % g.sw;
        (phase * self.rows + r / g.sh) * self.cols + c / g.sw
    }
}

#[inline(always)]
fn dw_body(x: &[f32], wt: &[f32], g: &ConvGeom, acc: &mut [f32], scratch: &mut Vec<f32>) {
    if g.oh == 0 || g.ow == 0 {
        return;
    }
    let ph = Phases::new(g);
    let size = g.sh * g.sw * ph.rows * ph.cols;
    // outputs are computed `cols` wide, so that a tap is one run over every output row
    // (the columns past `ow` are discarded)
    let n = (g.oh - 1) * ph.cols + g.ow;
    scratch.clear();
    scratch.resize(size + n, 0.0);
    let (pad, wide) = scratch.split_at_mut(size);
    let ocg = g.oc / g.group;
    let plane = g.oh * g.ow;
    for ci in 0..g.c {
        fill_phases(&x[ci * g.h * g.w..(ci + 1) * g.h * g.w], g, &ph, pad);
        for o in ci * ocg..(ci + 1) * ocg {
            let out = &mut acc[o * plane..(o + 1) * plane];
            for (y, row) in out.chunks_exact(g.ow).enumerate() {
                wide[y * ph.cols..y * ph.cols + g.ow].copy_from_slice(row);
            }
            let w = &wt[o * g.kh * g.kw..(o + 1) * g.kh * g.kw];
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let wv = w[ky * g.kw + kx];
                    if wv == 0.0 {
                        continue;
                    }
                    let s = ph.start(g, ky, kx);
                    for (o, &v) in wide.iter_mut().zip(&pad[s..s + n]) {
                        *o += wv * v;
                    }
                }
            }
            for (y, row) in out.chunks_exact_mut(g.ow).enumerate() {
                row.copy_from_slice(&wide[y * ph.cols..y * ph.cols + g.ow]);
            }
        }
    }
}

/// Copy one input plane into its padded phases; positions outside the input are 0.
#[inline(always)]
fn fill_phases(x: &[f32], g: &ConvGeom, ph: &Phases, pad: &mut [f32]) {
    for a in 0..g.sh {
        for b in 0..g.sw {
            let phase = a * g.sw + b;
            for i in 0..ph.rows {
                let at = (phase * ph.rows + i) * ph.cols;
                let row = &mut pad[at..at + ph.cols];
                let iy = (i * g.sh + a) as isize - g.pt as isize;
                if iy < 0 || iy >= g.h as isize {
                    row.fill(0.0);
                    continue;
                }
                let src = &x[iy as usize * g.w..(iy as usize + 1) * g.w];
                // the columns j with 0 <= j * sw + b - pl < w
                let lo = g.pl.saturating_sub(b).div_ceil(g.sw).min(ph.cols);
                let hi = (g.w + g.pl)
                    .saturating_sub(b)
                    .div_ceil(g.sw)
                    .clamp(lo, ph.cols);
                row[..lo].fill(0.0);
                row[hi..].fill(0.0);
                if lo < hi {
                    let first = lo * g.sw + b - g.pl;
                    let dst = &mut row[lo..hi];
                    if g.sw == 1 {
                        dst.copy_from_slice(&src[first..first + dst.len()]);
                    } else {
                        for (v, &s) in dst.iter_mut().zip(src[first..].iter().step_by(g.sw)) {
                            *v = s;
                        }
                    }
                }
            }
        }
    }
}
