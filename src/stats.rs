//! Paired significance of a top-1 change: the quantized run and FP32 classify the same
//! images, so the comparison is paired. With `b` = images FP32 gets right and the quantized
//! run wrong, `c` = the reverse, and `n` images:
//!
//! * change = (c - b) / n;
//! * 95 % interval: Agresti and Min's adjusted Wald interval for a difference of paired
//!   proportions (Statistics in Medicine 24, 2005): add 1/2 to each of the four cells, then
//!   Wald, clamped to [-1, 1]. It keeps close to nominal coverage down to small n, where the
//!   plain Wald interval collapses to zero width when b = c = 0;
//! * exact McNemar test: two-sided p = min(1, 2 P[X <= min(b, c)]), X ~ Binomial(b + c, 1/2)
//!   (1 when b + c = 0).

use serde::Serialize;

/// The paired comparison of two classifiers on the same labelled images.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PairedTop1 {
    /// Images both get right / only FP32 / only the quantized run / neither.
    pub both: usize,
    pub only_reference: usize,
    pub only_candidate: usize,
    pub neither: usize,
}

/// z of a two-sided 95 % interval.
const Z95: f64 = 1.959_963_984_540_054;

impl PairedTop1 {
    pub fn n(&self) -> usize {
        self.both + self.only_reference + self.only_candidate + self.neither
    }

    /// Top-1 change of the candidate against the reference, in percentage points.
    pub fn delta_pts(&self) -> f64 {
        100.0 * (self.only_candidate as f64 - self.only_reference as f64) / self.n().max(1) as f64
    }

    /// Agresti-Min 95 % interval of the change, percentage points.
    pub fn ci95_pts(&self) -> [f64; 2] {
        let (b, c) = (
            self.only_reference as f64 + 0.5,
            self.only_candidate as f64 + 0.5,
        );
        let n = self.n() as f64 + 2.0;
        let d = (c - b) / n;
        let var = ((b + c) - (c - b).powi(2) / n) / (n * n);
        let h = Z95 * var.max(0.0).sqrt();
        [100.0 * (d - h).max(-1.0), 100.0 * (d + h).min(1.0)]
    }

    /// Exact two-sided McNemar p-value on the discordant pairs.
    pub fn mcnemar_p(&self) -> f64 {
        let (b, c) = (self.only_reference, self.only_candidate);
        let m = b + c;
        if b == c {
            return 1.0; // the two tails cover everything (exactly, not up to rounding)
        }
        (2.0 * binomial_half_cdf(b.min(c), m)).min(1.0)
    }

    /// Is the change significant at the 5 % level (McNemar)?
    pub fn significant(&self) -> bool {
        self.mcnemar_p() < 0.05
    }
}

/// P[X <= k] for X ~ Binomial(m, 1/2), summed in the log domain (no underflow for large m).
fn binomial_half_cdf(k: usize, m: usize) -> f64 {
    let ln2 = std::f64::consts::LN_2;
    let mut ln_choose = 0.0f64; // ln C(m, 0)
    let mut acc = f64::NEG_INFINITY;
    for j in 0..=k {
        if j > 0 {
            ln_choose += ((m - j + 1) as f64).ln() - (j as f64).ln();
        }
        let t = ln_choose - m as f64 * ln2;
        let (hi, lo) = if acc > t { (acc, t) } else { (t, acc) };
        acc = hi + (lo - hi).exp().ln_1p();
    }
    acc.exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(b: usize, c: usize, n: usize) -> PairedTop1 {
        PairedTop1 {
            both: n - b - c,
            only_reference: b,
            only_candidate: c,
            neither: 0,
        }
    }

    #[test]
    fn mcnemar_exact_values() {
        // b = 0, c = 5: 2 * 0.5^5 = 0.0625
        assert!((p(0, 5, 100).mcnemar_p() - 0.0625).abs() < 1e-12);
        // b = 1, c = 9: 2 * (1 + 10) / 1024
        assert!((p(1, 9, 100).mcnemar_p() - 22.0 / 1024.0).abs() < 1e-12);
        assert_eq!(p(0, 0, 20).mcnemar_p(), 1.0);
        assert_eq!(p(7, 7, 100).mcnemar_p(), 1.0);
        // large m stays finite: 4000 vs 4100 discordant
        let q = p(4000, 4100, 10_000).mcnemar_p();
        assert!(q > 0.2 && q < 0.3, "{q}");
    }

    #[test]
    fn interval_covers_the_change_and_is_wide_for_few_images() {
        let a = p(30, 10, 10_000);
        let [lo, hi] = a.ci95_pts();
        assert!(lo < a.delta_pts() && a.delta_pts() < hi);
        assert!(hi < 0.0, "{lo} {hi}");
        assert!(a.significant());
        // 20 images, one discordant pair: nothing can be concluded
        let s = p(1, 0, 20);
        let [lo, hi] = s.ci95_pts();
        assert!(lo < -10.0 && hi > 0.0, "{lo} {hi}");
        assert!(!s.significant());
    }
}
