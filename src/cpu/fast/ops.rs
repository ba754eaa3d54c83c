//! The batched executor's data movement and elementwise ops over NHWC INT8, each with the
//! reference kernel's arithmetic (`cpu::kernels`).

use super::arena::Arena;
use super::compile::Program;
use crate::cpu::kernels::quantize1;
use crate::exec::ConvGeom;

/// FP32 NCHW images to INT8 NHWC: `quantize1(v / scale)` (`kernels::quantize`).
#[inline(never)]
pub fn quantize_nhwc(
    x: &[f32],
    n: usize,
    (c, h, w): (usize, usize, usize),
    scale: f32,
    o: &mut [i8],
) {
    let hw = h * w;
    for b in 0..n {
        let img = &x[b * c * hw..(b + 1) * c * hw];
        let out = &mut o[b * c * hw..(b + 1) * c * hw];
        if c == 1 {
            for (d, &v) in out.iter_mut().zip(img) {
                *d = quantize1(v / scale);
            }
            continue;
        }
        for (p, px) in out.chunks_exact_mut(c).enumerate() {
            for (ch, d) in px.iter_mut().enumerate() {
                *d = quantize1(img[ch * hw + p] / scale);
            }
        }
    }
}

/// Copy `n` bytes; small counts as fixed-size moves (no `memmove` call per tap).
#[inline(always)]
fn copy_small(dst: &mut [i8], src: &[i8], n: usize) {
    match n {
        1 => dst[0] = src[0],
        2 => dst[..2].copy_from_slice(&src[..2]),
        3 => dst[..3].copy_from_slice(&src[..3]),
        4 => dst[..4].copy_from_slice(&src[..4]),
        8 => dst[..8].copy_from_slice(&src[..8]),
        16 => dst[..16].copy_from_slice(&src[..16]),
        _ => dst[..n].copy_from_slice(&src[..n]),
    }
}

/// Rows `(ky, kx, ci)` of group `grp` for every output pixel of `n` images, each padded
/// to `kp` bytes with zeros (padding taps are zero too). Without groups or dilation the
/// image is first copied into a zero border (`padded`), so that each kernel row of a pixel
/// is one contiguous run of `kw * c` bytes, moved 32 bytes at a time (the bytes a move
/// writes past the run are overwritten by the next run, or land in the zero-weight tail of
/// the row or the next row, which is written after).
#[inline(never)]
#[allow(clippy::too_many_arguments)]
pub fn im2col(
    x: &[i8],
    n: usize,
    g: &ConvGeom,
    grp: usize,
    kp: usize,
    rows: &mut Vec<i8>,
    padded: &mut Vec<i8>,
    offset: bool,
) {
    if g.group == 1 && g.dh == 1 && g.dw == 1 {
        return im2col_runs(x, n, g, kp, rows, padded, offset);
    }
    im2col_taps(x, n, g, grp, kp, rows);
    if offset {
        rows.iter_mut().for_each(|v| *v = ((*v as u8) ^ 0x80) as i8);
    }
}

fn im2col_runs(
    x: &[i8],
    n: usize,
    g: &ConvGeom,
    kp: usize,
    rows: &mut Vec<i8>,
    padded: &mut Vec<i8>,
    offset: bool,
) {
    const V: usize = 32;
    let c = g.c;
    // border: enough that every window of every output pixel lies inside
    let pw = (g.ow - 1) * g.sw + g.kw;
    let ph = (g.oh - 1) * g.sh + g.kh;
    let (wp, hp) = (pw.max(g.w + g.pl), ph.max(g.h + g.pt));
    let run = g.kw * c;
    let npix = n * g.oh * g.ow;
    // every byte of K is written below (borders come from the zero padding); bytes past K
    // meet zero weights, so old contents may stay there
    if rows.len() < npix * kp + V {
        rows.resize(npix * kp + V, 0);
    }
    // the border stays zero (offset: 0x80) for every image: only the interior is copied in
    let (zero, flip) = if offset { (-128i8, 0x80u8) } else { (0, 0) };
    padded.clear();
    padded.resize(hp * wp * c + V, zero);
    for b in 0..n {
        for y in 0..g.h {
            let src = &x[((b * g.h + y) * g.w) * c..][..g.w * c];
            let dst = &mut padded[((y + g.pt) * wp + g.pl) * c..][..g.w * c];
            for (d, &v) in dst.iter_mut().zip(src) {
                *d = ((v as u8) ^ flip) as i8;
            }
        }
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let r = ((b * g.oh + oy) * g.ow + ox) * kp;
                for ky in 0..g.kh {
                    let s0 = ((oy * g.sh + ky) * wp + ox * g.sw) * c;
                    let d0 = r + ky * run;
                    // every move stays inside: s0 + run <= hp * wp * c and d0 + run <=
                    // npix * kp, and both buffers have V bytes of slack
                    debug_assert!(s0 + run.div_ceil(V) * V <= padded.len());
                    debug_assert!(d0 + run.div_ceil(V) * V <= rows.len());
                    let mut o = 0;
                    while o < run {
                        // SAFETY: in bounds (above); the buffers do not overlap.
                        unsafe {
                            std::ptr::copy_nonoverlapping(
                                padded.as_ptr().add(s0 + o),
                                rows.as_mut_ptr().add(d0 + o),
                                V,
                            )
                        };
                        o += V;
                    }
                }
            }
        }
    }
}

fn im2col_taps(x: &[i8], n: usize, g: &ConvGeom, grp: usize, kp: usize, rows: &mut Vec<i8>) {
    let npix = n * g.oh * g.ow;
    rows.clear();
    rows.resize(npix * kp, 0);
    let (c0, icg) = (grp * g.icg, g.icg);
    let xr: Vec<(usize, usize)> = (0..g.kw).map(|kx| g.x_range(kx)).collect();
    for b in 0..n {
        for oy in 0..g.oh {
            let row0 = (b * g.oh + oy) * g.ow;
            for ky in 0..g.kh {
                let iy = (oy * g.sh + ky * g.dh) as isize - g.pt as isize;
                if iy < 0 || iy >= g.h as isize {
                    continue;
                }
                let line = &x[(b * g.h + iy as usize) * g.w * g.c..][..g.w * g.c];
                for (kx, &(x0, x1)) in xr.iter().enumerate() {
                    let dst0 = (ky * g.kw + kx) * icg;
                    for ox in x0..x1 {
                        let ix = ox * g.sw + kx * g.dw - g.pl;
                        let d = &mut rows[(row0 + ox) * kp + dst0..];
                        copy_small(d, &line[ix * g.c + c0..], icg);
                    }
                }
            }
        }
    }
}

/// Dense rows of `k` values copied to rows of `kp` (zero padded; `offset`: as `x ^ 0x80`).
#[inline(never)]
pub fn pad_rows(x: &[i8], n: usize, k: usize, kp: usize, rows: &mut Vec<i8>, offset: bool) {
    let (zero, flip) = if offset { (-128i8, 0x80u8) } else { (0, 0) };
    rows.clear();
    rows.resize(n * kp, zero);
    for b in 0..n {
        for (d, &v) in rows[b * kp..b * kp + k]
            .iter_mut()
            .zip(&x[b * k..(b + 1) * k])
        {
            *d = ((v as u8) ^ flip) as i8;
        }
    }
}

/// Max pooling (`kernels::maxpool`): -128 where a window lies entirely in the padding.
#[inline(never)]
pub fn maxpool(x: &[i8], n: usize, g: &ConvGeom, o: &mut [i8]) {
    let c = g.c;
    for b in 0..n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let out = &mut o[((b * g.oh + oy) * g.ow + ox) * c..][..c];
                out.fill(i8::MIN);
                for ky in 0..g.kh {
                    let iy = (oy * g.sh + ky) as isize - g.pt as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    for kx in 0..g.kw {
                        let ix = (ox * g.sw + kx) as isize - g.pl as isize;
                        if ix < 0 || ix >= g.w as isize {
                            continue;
                        }
                        let px = &x[((b * g.h + iy as usize) * g.w + ix as usize) * c..][..c];
                        for (d, &v) in out.iter_mut().zip(px) {
                            *d = (*d).max(v);
                        }
                    }
                }
            }
        }
    }
}

/// Global average pooling (`kernels::gap_i8`): `quantize1(sum * k)` per channel.
#[inline(never)]
pub fn gap(x: &[i8], n: usize, hw: usize, c: usize, k: f32, o: &mut [i8]) {
    let mut sum = vec![0i32; c];
    for b in 0..n {
        sum.iter_mut().for_each(|s| *s = 0);
        for p in 0..hw {
            for (s, &v) in sum.iter_mut().zip(&x[(b * hw + p) * c..][..c]) {
                *s += v as i32;
            }
        }
        for (d, &s) in o[b * c..(b + 1) * c].iter_mut().zip(&sum) {
            *d = quantize1(s as f32 * k);
        }
    }
}

/// Residual add (`kernels::add_i8`): `quantize1(fma(a, ra, b * rb))` (AVX-512 where
/// available, the same single rounding as `f32::mul_add`).
#[inline(never)]
pub fn add(a: &[i8], b: &[i8], ra: f32, rb: f32, o: &mut [i8]) {
    #[cfg(target_arch = "x86_64")]
    if super::Isa::detect() == super::Isa::Avx512Vnni {
        // SAFETY: the features were detected.
        return unsafe { add_avx512(a, b, ra, rb, o) };
    }
    for ((d, &x), &y) in o.iter_mut().zip(a).zip(b) {
        *d = quantize1((x as f32).mul_add(ra, y as f32 * rb));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma")]
unsafe fn add_avx512(a: &[i8], b: &[i8], ra: f32, rb: f32, o: &mut [i8]) {
    use std::arch::x86_64::*;
    let n = o.len().min(a.len()).min(b.len());
    let mut i = 0;
    while i + 16 <= n {
        unsafe {
            let x = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                a.as_ptr().add(i) as *const _
            )));
            let y = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                b.as_ptr().add(i) as *const _
            )));
            let r = _mm512_fmadd_ps(x, _mm512_set1_ps(ra), _mm512_mul_ps(y, _mm512_set1_ps(rb)));
            let r = _mm512_min_ps(
                _mm512_max_ps(r, _mm512_set1_ps(-127.0)),
                _mm512_set1_ps(127.0),
            );
            _mm_storeu_si128(
                o.as_mut_ptr().add(i) as *mut _,
                _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(r)),
            );
        }
        i += 16;
    }
    for k in i..n {
        o[k] = quantize1((a[k] as f32).mul_add(ra, b[k] as f32 * rb));
    }
}

/// Append each image's output of layer `out` (dequantized, NCHW) to `outs[image]`.
#[inline(never)]
pub fn collect_output(
    p: &Program,
    arena: &mut Arena,
    out: usize,
    _layer: usize,
    n: usize,
    outs: &mut Vec<Vec<Vec<f32>>>,
) {
    let v = &p.vals[out];
    let per = v.elems();
    let hw = v.h * v.w;
    outs.resize(outs.len().max(n), Vec::new());
    let base = arena.ptr(p.slot[out]);
    for (b, o) in outs.iter_mut().enumerate().take(n) {
        let mut f = vec![0f32; per];
        for pix in 0..hw {
            for ch in 0..v.c {
                let i = b * per + pix * v.c + ch;
                // SAFETY: i < n * per, inside the slot written by the layer.
                let val = unsafe {
                    if v.f32 {
                        *(base as *const f32).add(i)
                    } else {
                        *(base as *const i8).add(i) as f32 * v.scale
                    }
                };
                f[ch * hw + pix] = val;
            }
        }
        o.push(f);
    }
}
