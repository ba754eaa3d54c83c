//! Clipping-range calibration (weights per output channel, activations per tensor),
//! INT32 bias quantization, and the shared rounding rule (ties to even, as WGSL `round()`).

use super::config::Calib;

/// Round to nearest, ties to even: the rule used on every path (CPU and WGSL).
#[inline]
pub fn rne(x: f32) -> f32 {
    x.round_ties_even()
}

/// Symmetric quantize-dequantize error of `values` under clip `c` with `qmax` levels.
fn qdq_mse(values: &[f32], c: f32, qmax: f32) -> f64 {
    if c <= 0.0 {
        return values.iter().map(|&v| (v as f64).powi(2)).sum();
    }
    let s = c / qmax;
    values
        .iter()
        .map(|&v| {
            let q = rne(v / s).clamp(-qmax, qmax) * s;
            ((v - q) as f64).powi(2)
        })
        .sum()
}

/// Nearest-rank percentile of |values| (p in (0, 100]).
pub fn abs_percentile(values: &[f32], p: f32) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let mut a: Vec<f32> = values.iter().map(|v| v.abs()).collect();
    a.sort_unstable_by(|x, y| x.total_cmp(y));
    let rank = ((p as f64 / 100.0) * a.len() as f64).ceil() as usize;
    a[rank.clamp(1, a.len()) - 1]
}

/// Number of candidate clips tried by the MSE search, spread over [0.2, 1.0] x max|v|.
pub const MSE_GRID: usize = 81;

/// Clipping value for symmetric quantization with `qmax` positive levels.
/// `mse` searches a grid of [`MSE_GRID`] clips between 20 % and 100 % of max|v|.
pub fn clip_value(values: &[f32], method: Calib, percentile: f32, qmax: f32) -> f32 {
    let amax = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    match method {
        Calib::Max => amax,
        Calib::Percentile => abs_percentile(values, percentile),
        Calib::Mse => {
            let mut best = (qdq_mse(values, amax, qmax), amax);
            for k in 0..MSE_GRID - 1 {
                let c = amax * (0.2 + 0.8 * k as f32 / (MSE_GRID - 1) as f32);
                let e = qdq_mse(values, c, qmax);
                if e < best.0 {
                    best = (e, c);
                }
            }
            best.1
        }
    }
}

/// Scale for a clip value; an all-zero channel gets scale 1 so that nothing divides by zero.
pub fn scale_from_clip(c: f32, qmax: f32) -> f32 {
    if c > 0.0 && c.is_finite() {
        c / qmax
    } else {
        1.0
    }
}

/// Per-tensor INT8 activation scale from sampled activation values (symmetric, 127 levels).
pub fn activation_scale(samples: &[f32], method: Calib, percentile: f32) -> f32 {
    scale_from_clip(clip_value(samples, method, percentile, 127.0), 127.0)
}

/// INT32 bias on the accumulator scale `w_scale[oc] * act_scale`, saturating.
pub fn quantize_bias(bias: &[f32], w_scales: &[f32], act_scale: f32) -> Vec<i32> {
    bias.iter()
        .zip(w_scales)
        .map(|(&b, &s)| {
            let v = rne(b / (s * act_scale));
            v.clamp(i32::MIN as f32, i32::MAX as f32) as i32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_ties_to_even() {
        assert_eq!(rne(0.5), 0.0);
        assert_eq!(rne(1.5), 2.0);
        assert_eq!(rne(2.5), 2.0);
        assert_eq!(rne(-2.5), -2.0);
        assert_eq!(rne(-3.5), -4.0);
    }

    #[test]
    fn clip_methods() {
        let v: Vec<f32> = (1..=100).map(|i| i as f32).chain([-1000.0]).collect();
        assert_eq!(clip_value(&v, Calib::Max, 100.0, 127.0), 1000.0);
        assert_eq!(abs_percentile(&v, 50.0), 51.0);
        assert_eq!(clip_value(&v, Calib::Percentile, 99.0, 127.0), 100.0);
        // One large outlier: the MSE clip gives up the outlier for resolution on the rest.
        let c = clip_value(&v, Calib::Mse, 100.0, 7.0);
        assert!(c < 1000.0 && c >= 200.0, "{c}");
        let mse = |c: f32| qdq_mse(&v, c, 7.0);
        assert!(mse(c) <= mse(1000.0));
        assert_eq!(scale_from_clip(0.0, 127.0), 1.0);
        assert_eq!(
            activation_scale(&[0.0, 2.54, -1.0], Calib::Max, 100.0),
            0.02
        );
    }

    #[test]
    fn bias_on_accumulator_scale() {
        // b / (s_w * s_a) = 1.0 / (0.5 * 0.25) = 8; 0.3125 / 0.125 = 2.5 -> 2 (even).
        assert_eq!(
            quantize_bias(&[1.0, 0.3125, -0.4375], &[0.5, 0.5, 0.5], 0.25),
            vec![8, 2, -4]
        );
        assert_eq!(quantize_bias(&[1e30], &[1e-3], 1e-3), vec![i32::MAX]);
    }
}
