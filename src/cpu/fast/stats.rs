//! Per-layer activity of the batched executor, counted on each layer's INT8 NHWC input in
//! the same pass: zero activations, and for every (input channel, kernel tap) the output
//! positions whose input there is non-zero (padding counts as zero), from summed-area
//! tables per stride phase (the NHWC form of `cpu::taps`, equal to the reference
//! `kernels::nonzero_taps`; tests/fast_engine.rs). Counts are integers, so their sums do
//! not depend on the order images are processed in.

use crate::exec::ConvGeom;

/// Activity summed over images, per weight layer (the program's layer order).
#[derive(Clone, Debug, Default)]
pub struct Activity {
    pub images: u64,
    pub act_elems: Vec<u64>,
    pub act_zeros: Vec<u64>,
    /// non-zero input count per tap `ci * kh * kw + tap` (conv) or per input feature in
    /// NCHW order (dense)
    pub taps: Vec<Vec<u64>>,
}

impl Activity {
    pub fn new(layers: usize) -> Self {
        Activity {
            images: 0,
            act_elems: vec![0; layers],
            act_zeros: vec![0; layers],
            taps: vec![Vec::new(); layers],
        }
    }
    pub fn merge(&mut self, o: &Activity) {
        self.images += o.images;
        for k in 0..self.act_elems.len() {
            self.act_elems[k] += o.act_elems[k];
            self.act_zeros[k] += o.act_zeros[k];
            if self.taps[k].is_empty() {
                self.taps[k] = o.taps[k].clone();
            } else {
                for (a, b) in self.taps[k].iter_mut().zip(&o.taps[k]) {
                    *a += b;
                }
            }
        }
    }
    /// MACs by weight class whose activation is non-zero, summed over the images.
    pub fn pairs_nz(&self, k: usize, class_hist: &[[u64; 3]]) -> [u64; 3] {
        let mut p = [0u64; 3];
        for (n, h) in self.taps[k].iter().zip(class_hist) {
            for c in 0..3 {
                p[c] += n * h[c];
            }
        }
        p
    }
}

/// Count the conv inputs of `n` images (`x`: `n` maps `[h][w][c]`) into layer `k`: the
/// non-zero flags are summed over the images first (tap counts are linear in them), so the
/// summed-area tables are built once per batch.
pub fn conv_input(
    a: &mut Activity,
    k: usize,
    x: &[i8],
    n: usize,
    g: &ConvGeom,
    sat: &mut Vec<u32>,
    nz: &mut Vec<u32>,
) {
    let c = g.c;
    let per = g.h * g.w * c;
    let x = &x[..n * per];
    a.act_elems[k] += x.len() as u64;
    // every entry is written by the first image (no zeroing pass)
    nz.resize(per, 0);
    a.act_zeros[k] += flags(x, per, nz);
    let x = &nz[..];
    let t = &mut a.taps[k];
    t.resize(c * g.kh * g.kw, 0);
    if g.is_pointwise() {
        // one tap that sees every position: the per-channel sums (what the tables give)
        pointwise_sums(x, c, t);
        return;
    }
    for ry in 0..g.sh.min(g.h) {
        for rx in 0..g.sw.min(g.w) {
            let mut built = false;
            for ky in 0..g.kh {
                let (y0, y1) = g.y_range(ky);
                for kx in 0..g.kw {
                    let (x0, x1) = g.x_range(kx);
                    if y0 >= y1 || x0 >= x1 {
                        continue;
                    }
                    let iy0 = y0 * g.sh + ky * g.dh - g.pt;
                    let ix0 = x0 * g.sw + kx * g.dw - g.pl;
                    if iy0 % g.sh != ry || ix0 % g.sw != rx {
                        continue;
                    }
                    let cols = (g.w - rx).div_ceil(g.sw);
                    if !built {
                        build(x, g, ry, rx, sat);
                        built = true;
                    }
                    let (a0, b0) = (iy0 / g.sh, ix0 / g.sw);
                    let (a1, b1) = (a0 + (y1 - y0), b0 + (x1 - x0));
                    let at = |r: usize, q: usize| (r * (cols + 1) + q) * c;
                    let (p11, p01) = (&sat[at(a1, b1)..][..c], &sat[at(a0, b1)..][..c]);
                    let (p10, p00) = (&sat[at(a1, b0)..][..c], &sat[at(a0, b0)..][..c]);
                    let tap = ky * g.kw + kx;
                    let taps = g.kh * g.kw;
                    for ch in 0..c {
                        t[ch * taps + tap] += (p11[ch] + p00[ch] - p01[ch] - p10[ch]) as u64;
                    }
                }
            }
        }
    }
}

/// Per-channel sums of the NHWC flags `x` added into `t` (vectorised like [`flags`]).
fn pointwise_sums(x: &[u32], c: usize, t: &mut [u64]) {
    #[inline(always)]
    fn body(x: &[u32], c: usize, t: &mut [u64]) {
        let mut s = vec![0u32; c];
        for px in x.chunks_exact(c) {
            for (a, &v) in s.iter_mut().zip(px) {
                *a += v;
            }
        }
        for (a, v) in t.iter_mut().zip(s) {
            *a += v as u64;
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        unsafe fn wide(x: &[u32], c: usize, t: &mut [u64]) {
            body(x, c, t)
        }
        if super::Isa::detect() == super::Isa::Avx512Vnni {
            // SAFETY: the features were detected.
            return unsafe { wide(x, c, t) };
        }
    }
    body(x, c, t)
}

/// Add each image's non-zero flags into `nz` and return the zeros (the loops vectorised
/// with AVX-512 where the CPU has it).
fn flags(x: &[i8], per: usize, nz: &mut [u32]) -> u64 {
    #[inline(always)]
    fn body(x: &[i8], per: usize, nz: &mut [u32]) -> u64 {
        let mut zeros = 0u64;
        for (i, img) in x.chunks_exact(per).enumerate() {
            for chunk in img.chunks(4096) {
                let z: u32 = chunk.iter().map(|&v| (v == 0) as u32).sum();
                zeros += z as u64;
            }
            if i == 0 {
                for (s, &v) in nz.iter_mut().zip(img) {
                    *s = (v != 0) as u32;
                }
            } else {
                for (s, &v) in nz.iter_mut().zip(img) {
                    *s += (v != 0) as u32;
                }
            }
        }
        zeros
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        unsafe fn wide(x: &[i8], per: usize, nz: &mut [u32]) -> u64 {
            body(x, per, nz)
        }
        if super::Isa::detect() == super::Isa::Avx512Vnni {
            // SAFETY: the features were detected.
            return unsafe { wide(x, per, nz) };
        }
    }
    body(x, per, nz)
}

/// Summed-area table of the (per-image summed) non-zero flags of phase (`ry`, `rx`), channel innermost:
/// `sat[((a + 1) * (cols + 1) + b + 1) * c + ch]`.
fn build(x: &[u32], g: &ConvGeom, ry: usize, rx: usize, sat: &mut Vec<u32>) {
    let rows = (g.h - ry).div_ceil(g.sh);
    let cols = (g.w - rx).div_ceil(g.sw);
    let line = (cols + 1) * g.c;
    // the interior is written below: only row 0 and column 0 need zeros
    sat.resize((rows + 1) * line, 0);
    sat[..line].fill(0);
    for a in 1..=rows {
        sat[a * line..a * line + g.c].fill(0);
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        unsafe fn wide(x: &[u32], g: &ConvGeom, ry: usize, rx: usize, sat: &mut [u32]) {
            fill(x, g, ry, rx, sat)
        }
        if super::Isa::detect() == super::Isa::Avx512Vnni {
            // SAFETY: the features were detected.
            return unsafe { wide(x, g, ry, rx, sat) };
        }
    }
    fill(x, g, ry, rx, sat)
}

/// The interior of [`build`]'s table: running row sums plus the row above.
#[inline(always)]
fn fill(x: &[u32], g: &ConvGeom, ry: usize, rx: usize, sat: &mut [u32]) {
    let c = g.c;
    let rows = (g.h - ry).div_ceil(g.sh);
    let cols = (g.w - rx).div_ceil(g.sw);
    let mut run = vec![0u32; c];
    let line = (cols + 1) * c;
    for a in 0..rows {
        run.iter_mut().for_each(|r| *r = 0);
        let (prev, cur) = sat.split_at_mut((a + 1) * line);
        let (prev, cur) = (&prev[a * line..], &mut cur[..line]);
        for b in 0..cols {
            let px = &x[((ry + a * g.sh) * g.w + rx + b * g.sw) * c..][..c];
            let up = &prev[(b + 1) * c..][..c];
            let out = &mut cur[(b + 1) * c..][..c];
            for ch in 0..c {
                run[ch] += px[ch];
                out[ch] = up[ch] + run[ch];
            }
        }
    }
}

/// Count one row of a dense input (`x` in NHWC order; `nchw` maps it to features).
pub fn dense_input(a: &mut Activity, k: usize, x: &[i8], nchw: Option<(usize, usize, usize)>) {
    a.act_elems[k] += x.len() as u64;
    a.act_zeros[k] += x.iter().filter(|&&v| v == 0).count() as u64;
    let t = &mut a.taps[k];
    t.resize(x.len(), 0);
    for (i, &v) in x.iter().enumerate() {
        let f = match nchw {
            Some((c, h, w)) => ((i % c) * h + (i / c) / w) * w + (i / c) % w,
            None => i,
        };
        t[f] += (v != 0) as u64;
    }
}
