//! The machine's measured multiply-accumulate peaks, the yardstick of the benchmarks: INT8
//! (`vpdpbusd` on 512-bit registers, 64 MACs per instruction) and FP32 (`vfmadd231ps`, 16
//! per instruction), 16 independent accumulator chains per thread so that latency hides,
//! every rayon thread at once (SMT siblings share a core's vector units, which this shows).

use rayon::prelude::*;

/// INT8 and FP32 GMAC/s over all threads, each the best of `repeat` runs of `iters` loop
/// iterations per thread; `None` without AVX-512 VNNI.
pub fn peaks(iters: u64, repeat: usize) -> Option<(f64, f64)> {
    #[cfg(target_arch = "x86_64")]
    if super::Isa::detect() == super::Isa::Avx512Vnni {
        let threads = rayon::current_num_threads();
        let best = |f: unsafe fn(u64) -> u64, macs_per_iter: f64| {
            (0..repeat.max(1))
                .map(|_| {
                    let t = std::time::Instant::now();
                    let sink: u64 = (0..threads)
                        .into_par_iter()
                        .map(|_| unsafe { f(iters) })
                        .sum();
                    std::hint::black_box(sink);
                    threads as f64 * iters as f64 * macs_per_iter / t.elapsed().as_secs_f64() / 1e9
                })
                .fold(0f64, f64::max)
        };
        return Some((best(x86::int8, 16.0 * 64.0), best(x86::fp32, 16.0 * 16.0)));
    }
    let _ = (iters, repeat);
    None
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn int8(iters: u64) -> u64 {
        let a = _mm512_set1_epi8(3);
        let b = _mm512_set1_epi8(-2);
        let mut acc = [_mm512_setzero_si512(); 16];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_dpbusd_epi32(*v, a, b);
            }
        }
        let s = acc
            .iter()
            .fold(_mm512_setzero_si512(), |s, v| _mm512_add_epi32(s, *v));
        _mm512_reduce_add_epi32(s) as u64
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn fp32(iters: u64) -> u64 {
        let a = _mm512_set1_ps(1.0000001);
        let b = _mm512_set1_ps(1e-9);
        let mut acc = [_mm512_set1_ps(1.0); 16];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        let s = acc
            .iter()
            .fold(_mm512_setzero_ps(), |s, v| _mm512_add_ps(s, *v));
        _mm512_reduce_add_ps(s) as u64
    }
}
