//! The fused epilogue of the batched executor's Conv/Dense kernels: from the INT32
//! accumulator (bias included) to the stored value, with exactly the reference engine's
//! arithmetic, step by step:
//!
//! 1. integer layers: `quantize1(acc as f32 * m[oc])` (one FP32 multiply, clamp to
//!    +-127, round half to even), or `acc as f32 * m[oc]` stored as FP32 (`float_out`);
//! 2. optional clamp (a ReLU / Clip that was the layer's only consumer);
//! 3. optional residual add: `quantize1(fma(a, ra, b * rb))` with `a` the Add's first input
//!    and `b` its second (`cpu::kernels::add_i8`), the other operand read from its slot;
//! 4. optional clamp after the add.
//!
//! Each step applies the unfused op's formula to the same INT8 value, so fused and unfused
//! programs give identical bits (tests/fast_engine.rs).

use crate::cpu::kernels::quantize1;

/// The residual operand of a fused Add.
#[derive(Clone, Copy)]
pub struct AddIn {
    /// the other operand, INT8, same row-major layout as the output (row stride `ld`)
    pub other: *const i8,
    pub ld: usize,
    pub ra: f32,
    pub rb: f32,
    /// this layer's output is the Add's first input (`a`), else its second (`b`)
    pub self_first: bool,
}

/// Where and how a kernel stores its outputs. Rows are output pixels (or dense rows),
/// columns output channels; element (r, c) lives at `r * ld + c`.
#[derive(Clone, Copy)]
pub struct Epi<'a> {
    /// requantization (or dequantization) factor per output channel (padded to the kernel's
    /// channel blocks)
    pub m: &'a [f32],
    pub lo1: i32,
    pub hi1: i32,
    pub add: Option<AddIn>,
    pub lo2: i32,
    pub hi2: i32,
    /// INT8 output, or FP32 when `out_f32` is set (`float_out` layers)
    pub out_i8: *mut i8,
    pub out_f32: *mut f32,
    pub ld: usize,
    /// valid output channels (columns past it are not stored)
    pub cols: usize,
}

// The pointers refer to one worker's arena; an `Epi` never crosses threads.
impl Epi<'_> {
    /// Scalar epilogue of one accumulator (the portable kernels, and the oracle of the SIMD
    /// epilogue): stores element (`row`, `col`).
    ///
    /// # Safety
    /// `row`/`col` must address an element inside the output (and the residual operand).
    #[inline]
    pub unsafe fn store1(&self, acc: i32, row: usize, col: usize) {
        let at = row * self.ld + col;
        let v = acc as f32 * self.m[col];
        if !self.out_f32.is_null() {
            unsafe { *self.out_f32.add(at) = v };
            return;
        }
        let mut q = (quantize1(v) as i32).clamp(self.lo1, self.hi1);
        if let Some(a) = &self.add {
            let o = unsafe { *a.other.add(row * a.ld + col) } as f32;
            let s = q as f32;
            let (x, y) = if a.self_first { (s, o) } else { (o, s) };
            q = (quantize1(x.mul_add(a.ra, y * a.rb)) as i32).clamp(self.lo2, self.hi2);
        }
        unsafe { *self.out_i8.add(at) = q as i8 };
    }
}

#[cfg(target_arch = "x86_64")]
pub mod x86 {
    use super::Epi;
    use std::arch::x86_64::*;

    /// The AVX-512 epilogue of 16 accumulators: channels `col..col + 16` of row `row`
    /// (only the first `cols - col` stored). Same arithmetic as [`Epi::store1`]: the
    /// conversions round to nearest even (MXCSR default), `fmadd` rounds once like
    /// `f32::mul_add`.
    ///
    /// # Safety
    /// AVX-512F/BW/VL must be available; `row`/`col` must address the output.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn store16(e: &Epi, acc: __m512i, row: usize, col: usize) {
        let left = e.cols.saturating_sub(col);
        if left == 0 {
            return;
        }
        let mask: __mmask16 = if left >= 16 {
            0xFFFF
        } else {
            ((1u32 << left) - 1) as u16
        };
        let at = row * e.ld + col;
        unsafe {
            let m = _mm512_loadu_ps(e.m.as_ptr().add(col));
            let v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), m);
            if !e.out_f32.is_null() {
                _mm512_mask_storeu_ps(e.out_f32.add(at), mask, v);
                return;
            }
            let lim = _mm512_set1_ps(127.0);
            let nlim = _mm512_set1_ps(-127.0);
            if e.add.is_none() {
                // rne(clamp(v, a, b)) = clamp(rne(clamp(v, -127, 127)), lo1, hi1) for the
                // integer bounds a = max(-127, lo1), b = min(127, hi1): one clamp
                let a = _mm512_set1_ps(e.lo1.max(-127) as f32);
                let b = _mm512_set1_ps(e.hi1.min(127) as f32);
                let q = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(v, a), b));
                _mm512_mask_cvtepi32_storeu_epi8(e.out_i8.add(at), mask, q);
                return;
            }
            let q = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(v, nlim), lim));
            let mut q = _mm512_min_epi32(
                _mm512_max_epi32(q, _mm512_set1_epi32(e.lo1)),
                _mm512_set1_epi32(e.hi1),
            );
            if let Some(a) = &e.add {
                let o8 = _mm_maskz_loadu_epi8(mask, a.other.add(row * a.ld + col));
                let o = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(o8));
                let s = _mm512_cvtepi32_ps(q);
                let (x, y) = if a.self_first { (s, o) } else { (o, s) };
                let r = _mm512_fmadd_ps(
                    x,
                    _mm512_set1_ps(a.ra),
                    _mm512_mul_ps(y, _mm512_set1_ps(a.rb)),
                );
                let r = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(r, nlim), lim));
                q = _mm512_min_epi32(
                    _mm512_max_epi32(r, _mm512_set1_epi32(e.lo2)),
                    _mm512_set1_epi32(e.hi2),
                );
            }
            _mm512_mask_cvtepi32_storeu_epi8(e.out_i8.add(at), mask, q);
        }
    }
}
