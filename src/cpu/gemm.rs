//! Fast integer Conv/Dense for the CPU engine: im2col + an FP32 GEMM (`matrixmultiply`,
//! which picks AVX/FMA kernels at run time, portable code elsewhere) that is exact for
//! INT8 x StruM integer products.
//!
//! Why it is exact: activations are in -128..=127 and weights in -128..=128, so every
//! product is an integer of magnitude <= 2^14 and every partial sum over at most
//! [`K_CHUNK`] = 1024 products is an integer of magnitude <= 2^24. binary32 holds all such
//! integers, and add / mul / fma round the exact result once, so a representable result is
//! exact whatever the summation order or contraction. The reduction is therefore cut into
//! chunks of at most 1024, each chunk converted to i32 and summed in i32 with the INT32
//! bias. The result equals [`super::kernels::conv2d`] / [`super::kernels::dense`] (the
//! reference kernels, the oracle) bit for bit; tests/fast_kernels.rs checks it over random
//! geometries.
//!
//! Depthwise convolutions (one input channel per group) do not take the GEMM (one row per
//! group gains nothing): integer mode keeps the reference kernel, FP32 mode
//! [`super::dwconv`].
//!
//! FP32 mode uses the same lowering ([`conv_f32`], [`dense_f32`]) with the weights and
//! activations themselves; its sums run in the GEMM's order, not the reference kernel's, so
//! it agrees with the reference within [`FP32_REL_TOL`] (tests/fast_kernels.rs), not bit for
//! bit. Activation calibration keeps the reference kernels (`engine::calibrate`), so the
//! integer-mode scales, and every integer result, do not depend on this.

use super::kernels::ConvGeom;

/// Longest reduction summed in FP32 before converting to i32 (see the module docs).
pub const K_CHUNK: usize = 1024;

/// Largest |fast - reference| of an FP32 Conv/Dense output relative to the sum of the
/// absolute products behind it (the reduction's magnitude): a few ulps x log2 of the
/// reduction length; checked in tests/fast_kernels.rs.
pub const FP32_REL_TOL: f32 = 1e-5;

/// Does [`conv_i8`] take this geometry (else the reference kernel runs)?
pub fn takes(g: &ConvGeom) -> bool {
    g.icg * g.kh * g.kw >= 4 && !(g.icg == 1 && g.group > 1)
}

/// Reusable buffers of one thread.
#[derive(Default)]
pub struct Scratch {
    col: Vec<f32>,
    out: Vec<f32>,
    /// padded planes of [`super::dwconv::depthwise_f32`]
    pub pad: Vec<f32>,
}

/// im2col of group `grp` of one image `[C, H, W]`: rows `(ic, ky, kx)` in the OIHW
/// weight order, columns the `oh * ow` output pixels; padding taps are 0.
fn im2col<T: Copy + Into<f32>>(x: &[T], g: &ConvGeom, grp: usize, col: &mut Vec<f32>) {
    let p = g.oh * g.ow;
    let k = g.icg * g.kh * g.kw;
    col.clear();
    col.resize(k * p, 0.0);
    for i in 0..g.icg {
        let plane = &x[(grp * g.icg + i) * g.h * g.w..][..g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = &mut col[((i * g.kh + ky) * g.kw + kx) * p..][..p];
                // output columns whose input column lies inside the image: [x0, x1)
                let off = kx * g.dw;
                let (x0, x1) = g.x_range(kx);
                if x0 >= x1 {
                    continue;
                }
                for y in 0..g.oh {
                    let iy = (y * g.sh + ky * g.dh) as isize - g.pt as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    let src = &plane[iy as usize * g.w..][..g.w];
                    let dst = &mut row[y * g.ow..][..g.ow];
                    let first = x0 * g.sw + off - g.pl;
                    if g.sw == 1 {
                        for (d, &v) in dst[x0..x1].iter_mut().zip(&src[first..first + (x1 - x0)]) {
                            *d = v.into();
                        }
                    } else {
                        for (d, &v) in dst[x0..x1]
                            .iter_mut()
                            .zip(src[first..].iter().step_by(g.sw))
                        {
                            *d = v.into();
                        }
                    }
                }
            }
        }
    }
}

/// `acc[m][n] += a[m][k] * b[k][n]` exactly for integer-valued operands (row-major, leading
/// dimensions given), in K chunks of at most [`K_CHUNK`].
#[allow(clippy::too_many_arguments)]
fn gemm_exact(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    (rsb, csb): (usize, usize),
    acc: &mut [i32],
    out: &mut Vec<f32>,
) {
    // beta = 0: the GEMM overwrites `out`, so it needs no clearing, only the room.
    if out.len() < m * n {
        out.resize(m * n, 0.0);
    }
    for k0 in (0..k).step_by(K_CHUNK) {
        let kc = K_CHUNK.min(k - k0);
        // SAFETY: the pointers and strides describe in-bounds row-major matrices:
        // a: m x kc at a[k0..] with row stride lda >= k; b: kc x n at row k0 with strides
        // (rsb, csb); out: m x n with row stride n. Asserted below.
        assert!(m == 0 || (m - 1) * lda + k0 + kc <= a.len());
        assert!(kc == 0 || n == 0 || (k0 + kc - 1) * rsb + (n - 1) * csb < b.len());
        unsafe {
            matrixmultiply::sgemm(
                m,
                kc,
                n,
                1.0,
                a.as_ptr().add(k0),
                lda as isize,
                1,
                b.as_ptr().add(k0 * rsb),
                rsb as isize,
                csb as isize,
                0.0,
                out.as_mut_ptr(),
                n as isize,
                1,
            );
        }
        for (a, &v) in acc.iter_mut().zip(&out[..m * n]) {
            *a += v as i32;
        }
    }
}

/// Integer convolution of one image, as [`super::kernels::conv2d`]: `acc` (`[OC, OH, OW]`,
/// pre-filled with the INT32 bias) += weights (`wf`: the integer weights as f32, OIHW) *
/// INT8 input.
pub fn conv_i8(x: &[i8], wf: &[f32], g: &ConvGeom, acc: &mut [i32], s: &mut Scratch) {
    let p = g.oh * g.ow;
    let k = g.icg * g.kh * g.kw;
    let ocg = g.oc / g.group;
    for grp in 0..g.group {
        im2col(x, g, grp, &mut s.col);
        gemm_exact(
            ocg,
            k,
            p,
            &wf[grp * ocg * k..(grp + 1) * ocg * k],
            k,
            &s.col,
            (p, 1),
            &mut acc[grp * ocg * p..(grp + 1) * ocg * p],
            &mut s.out,
        );
    }
}

/// Integer fully connected layer, as [`super::kernels::dense`]: `acc[r, o]` (pre-filled with
/// the bias) += sum_k x[r, k] * w[o, k].
pub fn dense_i8(x: &[i8], wf: &[f32], ic: usize, oc: usize, acc: &mut [i32], s: &mut Scratch) {
    let rows = x.len() / ic.max(1);
    s.col.clear();
    s.col.extend(x.iter().map(|&v| v as f32));
    // acc[rows][oc] = x[rows][ic] * w^T, w^T read through strides (1, ic).
    gemm_exact(rows, ic, oc, &s.col, ic, wf, (1, ic), acc, &mut s.out);
}

/// `c[m][n] += a[m][k] * b[k][n]` in FP32 (row-major; `b` with strides (rsb, csb)).
#[allow(clippy::too_many_arguments)]
fn gemm_f32(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    (rsb, csb): (usize, usize),
    c: &mut [f32],
) {
    assert!(m == 0 || (m - 1) * lda + k <= a.len());
    assert!(k == 0 || n == 0 || (k - 1) * rsb + (n - 1) * csb < b.len());
    assert!(c.len() >= m * n);
    // SAFETY: in-bounds row-major matrices, asserted above.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            lda as isize,
            1,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            1.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// FP32 convolution of one image, as [`super::kernels::conv2d`] (within [`FP32_REL_TOL`]):
/// `acc` (`[OC, OH, OW]`, pre-filled with the bias) += weights (OIHW) * input.
pub fn conv_f32(x: &[f32], w: &[f32], g: &ConvGeom, acc: &mut [f32], s: &mut Scratch) {
    let p = g.oh * g.ow;
    let k = g.icg * g.kh * g.kw;
    let ocg = g.oc / g.group;
    let pointwise = g.kh == 1
        && g.kw == 1
        && g.sh == 1
        && g.sw == 1
        && g.pt == 0
        && g.pl == 0
        && g.oh == g.h
        && g.ow == g.w;
    for grp in 0..g.group {
        let b: &[f32] = if pointwise {
            &x[grp * g.icg * p..(grp + 1) * g.icg * p]
        } else {
            im2col(x, g, grp, &mut s.col);
            &s.col
        };
        gemm_f32(
            ocg,
            k,
            p,
            &w[grp * ocg * k..(grp + 1) * ocg * k],
            k,
            b,
            (p, 1),
            &mut acc[grp * ocg * p..(grp + 1) * ocg * p],
        );
    }
}

/// FP32 fully connected layer, as [`super::kernels::dense`] (within [`FP32_REL_TOL`]).
pub fn dense_f32(x: &[f32], w: &[f32], ic: usize, oc: usize, acc: &mut [f32]) {
    let rows = x.len() / ic.max(1);
    gemm_f32(rows, ic, oc, x, ic, w, (1, ic), acc);
}
