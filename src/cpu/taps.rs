//! Fast count of non-zero input taps per (input channel, kernel tap): the same numbers as
//! the reference `kernels::nonzero_taps` (tested bit for bit, tests/fast_kernels.rs) from
//! summed-area tables, one per stride phase of each input plane, so that each tap costs a
//! rectangle query instead of a pass over the output positions.

use super::kernels::ConvGeom;

/// Summed-area table of the non-zero flags of one stride phase `(ry, rx)` of a plane:
/// `t[(a + 1) * (cols + 1) + b + 1]` counts the flags at rows `ry + sh * a'`, columns
/// `rx + sw * b'` for `a' <= a`, `b' <= b`.
struct Phase {
    cols: usize,
    t: Vec<u32>,
}

impl Phase {
    fn new(plane: &[bool], g: &ConvGeom, ry: usize, rx: usize) -> Self {
        let rows = (g.h.saturating_sub(ry)).div_ceil(g.sh);
        let cols = (g.w.saturating_sub(rx)).div_ceil(g.sw);
        let mut t = vec![0u32; (rows + 1) * (cols + 1)];
        for a in 0..rows {
            let row = &plane[(ry + a * g.sh) * g.w..];
            let mut run = 0u32;
            for b in 0..cols {
                run += row[rx + b * g.sw] as u32;
                t[(a + 1) * (cols + 1) + b + 1] = t[a * (cols + 1) + b + 1] + run;
            }
        }
        Phase { cols, t }
    }
    /// Flags in rows `a0..a1`, columns `b0..b1` of the phase.
    fn rect(&self, a0: usize, a1: usize, b0: usize, b1: usize) -> u64 {
        let w = self.cols + 1;
        let at = |a: usize, b: usize| self.t[a * w + b] as i64;
        (at(a1, b1) - at(a0, b1) - at(a1, b0) + at(a0, b0)) as u64
    }
}

/// For every input channel and kernel tap, how many output positions read a non-zero
/// input there (padding counts as zero): `out[(ci * kh + ky) * kw + kx]`.
pub fn nonzero_taps(nz: &[bool], g: &ConvGeom) -> Vec<u64> {
    let mut out = vec![0u64; g.c * g.kh * g.kw];
    let hw = g.h * g.w;
    for ci in 0..g.c {
        let plane = &nz[ci * hw..(ci + 1) * hw];
        let mut phases: Vec<Option<Phase>> = (0..g.sh * g.sw).map(|_| None).collect();
        for ky in 0..g.kh {
            let (y0, y1) = g.y_range(ky);
            for kx in 0..g.kw {
                let (x0, x1) = g.x_range(kx);
                if y0 >= y1 || x0 >= x1 {
                    continue;
                }
                let iy0 = y0 * g.sh + ky * g.dh - g.pt;
                let ix0 = x0 * g.sw + kx * g.dw - g.pl;
                let (ry, rx) = (iy0 % g.sh, ix0 % g.sw);
                let p = phases[ry * g.sw + rx].get_or_insert_with(|| Phase::new(plane, g, ry, rx));
                let (a0, b0) = (iy0 / g.sh, ix0 / g.sw);
                out[(ci * g.kh + ky) * g.kw + kx] = p.rect(a0, a0 + (y1 - y0), b0, b0 + (x1 - x0));
            }
        }
    }
    out
}
