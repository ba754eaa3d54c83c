//! The INT8 GEMM of the batched executor: `out[r][o] = epilogue(bias[o] + sum_k a[r][k] *
//! w[o][k])` over rows of INT8 activations (NHWC pixels, or im2col rows, or dense rows) and
//! integer weights in -128..=128, with the INT32 sum exact.
//!
//! Two kernels with the same result bit for bit (tests/fast_engine.rs):
//! * **AVX-512 VNNI** (`vpdpbusd`): weights packed once per configuration as
//!   `[block of 16 output channels][K / 4][16][4]` signed bytes; activations are read as
//!   they lie (a row of `K` bytes, `K` a multiple of 4) and offset to unsigned bytes
//!   (`x ^ 0x80 = x + 128`); the bias carries `-128 * sum_k w` to undo the offset. A weight
//!   of +128 (MIP2Q `e_max = 7`, DLIQ at L = B) does not fit a signed byte: it is stored as
//!   127 and a sparse correction adds `x[k]` for each such weight (`PackedW::fix`), so the
//!   sum stays exact. Intermediate INT32 sums may wrap; the final sum fits, so wrapping
//!   adds give it exactly.
//! * **portable**: plain INT32 loops over the unpacked weights.

use super::epi::Epi;

/// Output channels per block (one 512-bit register of INT32 accumulators).
pub const NR: usize = 16;

/// Weights of one Conv/Dense (or one group of it), prepared for both kernels.
pub struct PackedW {
    /// reduction length and its multiple of 4
    pub k: usize,
    pub kp: usize,
    pub oc: usize,
    /// blocks of [`NR`] output channels
    pub nb: usize,
    /// VNNI layout `[nb][kp / 4][NR][4]`, +128 stored as 127
    pub vnni: Vec<i8>,
    /// portable layout `[oc][kp]`, exact (+128 kept)
    pub w: Vec<i16>,
    /// INT32 bias per output channel, padded to `nb * NR`
    pub bias: Vec<i32>,
    /// `bias - 128 * sum_k vnni` (wrapping), for the offset activations
    pub bias_u8: Vec<i32>,
    /// (output channel, k) of every +128 weight
    pub fix: Vec<(u32, u32)>,
    /// requantization factor per output channel, padded to `nb * NR`
    pub m: Vec<f32>,
}

impl PackedW {
    /// Pack `w(o, k)` for `oc` output channels and reduction length `k`.
    pub fn new(
        oc: usize,
        k: usize,
        w: impl Fn(usize, usize) -> i32,
        bias: &[i32],
        m: &[f32],
    ) -> Self {
        let kp = k.div_ceil(4) * 4;
        let nb = oc.div_ceil(NR);
        let mut vnni = vec![0i8; nb * kp * NR];
        let mut wp = vec![0i16; oc * kp];
        let mut fix = Vec::new();
        let mut bias_p = vec![0i32; nb * NR];
        let mut bias_u8 = vec![0i32; nb * NR];
        let mut mp = vec![0f32; nb * NR];
        for o in 0..oc {
            let (b, lane) = (o / NR, o % NR);
            let mut colsum = 0i32;
            for kk in 0..k {
                let v = w(o, kk);
                debug_assert!((-128..=128).contains(&v), "weight {v} out of range");
                wp[o * kp + kk] = v as i16;
                let s = if v == 128 {
                    fix.push((o as u32, kk as u32));
                    127
                } else {
                    v
                };
                colsum += s;
                vnni[(b * (kp / 4) + kk / 4) * NR * 4 + lane * 4 + kk % 4] = s as i8;
            }
            bias_p[o] = bias[o];
            bias_u8[o] = bias[o].wrapping_sub(colsum.wrapping_mul(128));
            mp[o] = m[o];
        }
        PackedW {
            k,
            kp,
            oc,
            nb,
            vnni,
            w: wp,
            bias: bias_p,
            bias_u8,
            fix,
            m: mp,
        }
    }
}

/// The kernel family chosen once per process from the CPU's features
/// (`STRUMLAB_ISA=portable` forces the portable kernels, for tests and comparisons).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Avx512Vnni,
    Portable,
}

impl Isa {
    pub fn detect() -> Isa {
        if std::env::var("STRUMLAB_ISA").is_ok_and(|v| v == "portable") {
            return Isa::Portable;
        }
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni")
        {
            return Isa::Avx512Vnni;
        }
        Isa::Portable
    }
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512Vnni => "avx512-vnni",
            Isa::Portable => "portable",
        }
    }
}

/// Rows of one GEMM: `a[r * lda + k]` for `r < rows`, `k < kp` (bytes past `k` are read
/// but meet zero weights). With the VNNI kernel the last `rows % MR` rows are copied to a
/// padded scratch, so `a` needs no slack.
pub struct Rows<'a> {
    pub a: &'a [i8],
    pub lda: usize,
    pub rows: usize,
    /// the bytes already hold `x ^ 0x80` (im2col wrote them so, for the VNNI kernel only),
    /// which saves the kernel one instruction per broadcast
    pub offset: bool,
}

/// `out = epilogue(bias + a * w^T)` for all rows and output channels.
pub fn gemm(isa: Isa, r: &Rows, w: &PackedW, e: &Epi, scratch: &mut Vec<i8>) {
    assert!(
        r.rows == 0 || (r.rows - 1) * r.lda + w.kp <= r.a.len(),
        "rows out of range"
    );
    assert!(w.kp <= r.lda || r.rows <= 1);
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => unsafe { x86::gemm(r, w, e, scratch) },
        _ => portable(r, w, e),
    }
}

fn portable(r: &Rows, w: &PackedW, e: &Epi) {
    assert!(!r.offset, "the portable kernel takes plain INT8 rows");
    let mut corr_free = vec![0i32; w.oc];
    for row in 0..r.rows {
        let a = &r.a[row * r.lda..row * r.lda + w.k];
        for (o, c) in corr_free.iter_mut().enumerate() {
            let wr = &w.w[o * w.kp..o * w.kp + w.k];
            let mut acc = w.bias[o];
            for (&x, &v) in a.iter().zip(wr) {
                acc = acc.wrapping_add(x as i32 * v as i32);
            }
            *c = acc;
        }
        for (o, &acc) in corr_free.iter().enumerate() {
            // SAFETY: row < rows and o < oc address the output the caller gave.
            unsafe { e.store1(acc, row, o) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{NR, PackedW, Rows};
    use crate::cpu::fast::epi::{Epi, x86::store16};
    use std::arch::x86_64::*;

    /// Rows per register tile for `NZ` channel blocks (at most 24 accumulators).
    const fn mr(nz: usize) -> usize {
        match nz {
            4 => 6,
            3 => 8,
            2 => 12,
            _ => 16,
        }
    }

    /// Row tile: a multiple of every `mr`.
    const RT: usize = 48;

    /// One register tile: `MR` rows x `NZ` blocks of 16 channels, full K, then the
    /// epilogue. `a` points at the tile's first row; `corr` (if non-null) holds per-row
    /// corrections `[MR][nb * NR]` added to the accumulators.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const MR: usize, const NZ: usize, const PRE: bool>(
        a: *const i8,
        lda: usize,
        w: &PackedW,
        j0: usize,
        row0: usize,
        valid: usize,
        corr: *const i32,
        e: &Epi,
    ) {
        unsafe {
            let k4 = w.kp / 4;
            let flip = _mm512_set1_epi32(0x8080_8080u32 as i32);
            let mut acc = [[_mm512_setzero_si512(); NZ]; MR];
            for (r, row) in acc.iter_mut().enumerate() {
                for (z, v) in row.iter_mut().enumerate() {
                    let col = (j0 + z) * NR;
                    *v = _mm512_loadu_si512(w.bias_u8.as_ptr().add(col) as *const _);
                    if !corr.is_null() {
                        let c = _mm512_loadu_si512(corr.add(r * w.nb * NR + col) as *const _);
                        *v = _mm512_add_epi32(*v, c);
                    }
                }
            }
            let wb = w.vnni.as_ptr().add(j0 * k4 * NR * 4);
            let bstride = k4 * NR * 4;
            for k in 0..k4 {
                let mut wv = [_mm512_setzero_si512(); NZ];
                for (z, v) in wv.iter_mut().enumerate() {
                    *v = _mm512_loadu_si512(wb.add(z * bstride + k * 64) as *const _);
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let x = (a.add(r * lda + 4 * k) as *const i32).read_unaligned();
                    let av = if PRE {
                        _mm512_set1_epi32(x)
                    } else {
                        _mm512_xor_si512(_mm512_set1_epi32(x), flip)
                    };
                    for z in 0..NZ {
                        row[z] = _mm512_dpbusd_epi32(row[z], av, wv[z]);
                    }
                }
            }
            for (r, row) in acc.iter().enumerate().take(valid) {
                for (z, v) in row.iter().enumerate() {
                    store16(e, *v, row0 + r, (j0 + z) * NR);
                }
            }
        }
    }

    /// The +128 corrections of rows `row0..row0 + n`: `corr[r][o] = sum of a[r][k]` over the
    /// fixes (o, k).
    fn corrections(r: &Rows, w: &PackedW, row0: usize, n: usize, corr: &mut Vec<i32>) {
        corr.clear();
        corr.resize(mr(1).max(RT) * w.nb * NR, 0);
        for i in 0..n {
            let a = &r.a[(row0 + i) * r.lda..];
            let flip = if r.offset { 0x80u8 } else { 0 };
            for &(o, k) in &w.fix {
                corr[i * w.nb * NR + o as usize] += ((a[k as usize] as u8) ^ flip) as i8 as i32;
            }
        }
    }

    /// Run blocks `j0..j0 + NZ` over the rows `t0..t0 + n` of a row tile (`n <= RT`).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn blocks<const NZ: usize>(
        r: &Rows,
        w: &PackedW,
        e: &Epi,
        j0: usize,
        t0: usize,
        n: usize,
        corr: &[i32],
        scratch: &mut Vec<i8>,
    ) {
        let m = mr(NZ);
        let mut i = 0;
        while i < n {
            let valid = m.min(n - i);
            let c = if corr.is_empty() {
                std::ptr::null()
            } else {
                corr[i * w.nb * NR..].as_ptr()
            };
            let (ptr, lda) = if valid == m {
                (r.a[(t0 + i) * r.lda..].as_ptr(), r.lda)
            } else {
                // the last rows: copied to a zero-padded scratch of `m` rows
                scratch.clear();
                scratch.resize(m * w.kp, 0);
                for q in 0..valid {
                    let src = &r.a[(t0 + i + q) * r.lda..][..w.kp];
                    scratch[q * w.kp..(q + 1) * w.kp].copy_from_slice(src);
                }
                (scratch.as_ptr(), w.kp)
            };
            unsafe {
                match (NZ, r.offset) {
                    (4, false) => tile::<6, 4, false>(ptr, lda, w, j0, t0 + i, valid, c, e),
                    (3, false) => tile::<8, 3, false>(ptr, lda, w, j0, t0 + i, valid, c, e),
                    (2, false) => tile::<12, 2, false>(ptr, lda, w, j0, t0 + i, valid, c, e),
                    (_, false) => tile::<16, 1, false>(ptr, lda, w, j0, t0 + i, valid, c, e),
                    (4, true) => tile::<6, 4, true>(ptr, lda, w, j0, t0 + i, valid, c, e),
                    (3, true) => tile::<8, 3, true>(ptr, lda, w, j0, t0 + i, valid, c, e),
                    (2, true) => tile::<12, 2, true>(ptr, lda, w, j0, t0 + i, valid, c, e),
                    (_, true) => tile::<16, 1, true>(ptr, lda, w, j0, t0 + i, valid, c, e),
                }
            }
            i += valid;
        }
    }

    /// # Safety
    /// AVX-512 VNNI must be available; the rows must hold `kp` readable bytes each.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn gemm(r: &Rows, w: &PackedW, e: &Epi, scratch: &mut Vec<i8>) {
        let mut corr = Vec::new();
        for t0 in (0..r.rows).step_by(RT) {
            let n = RT.min(r.rows - t0);
            if !w.fix.is_empty() {
                corrections(r, w, t0, n, &mut corr);
            }
            let mut j0 = 0;
            while j0 < w.nb {
                let nz = (w.nb - j0).min(4);
                unsafe {
                    match nz {
                        4 => blocks::<4>(r, w, e, j0, t0, n, &corr, scratch),
                        3 => blocks::<3>(r, w, e, j0, t0, n, &corr, scratch),
                        2 => blocks::<2>(r, w, e, j0, t0, n, &corr, scratch),
                        _ => blocks::<1>(r, w, e, j0, t0, n, &corr, scratch),
                    }
                }
                j0 += nz;
            }
        }
    }
}
