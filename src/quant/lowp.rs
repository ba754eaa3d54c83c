//! The 4-bit low-precision formats of StruM, on INT8 integer values `q8` (scale units).
//!
//! MIP2Q code (4 bits): bit 3 = sign (1 = negative); bits 0..2 = `e - p2_min_exp`, with the
//! field value 7 (and sign 0) reserved for zero. Value = sign * 2^e.
//! DLIQ code (4 bits): two's-complement INT4 `v` in -8..=7. Value = v << k, where k is the
//! block's shift (0 without a block shift).

use super::calib::rne;
use super::config::P2Round;

pub const MIP2Q_ZERO_CODE: u32 = 0b0111;
/// Largest DLIQ block shift: 7 * 2^5 = 224 covers every INT8 magnitude.
pub const DLIQ_MAX_SHIFT: u32 = 5;

/// Nearest element of {0} U {2^e : e in [emin, emax]} to `m >= 0` under the tie rule.
/// Zero vs 2^emin is always decided by linear distance (ties to zero under `down`).
pub fn nearest_p2(m: i32, emin: u32, emax: u32, rule: P2Round) -> Option<u32> {
    if m <= 0 {
        return None;
    }
    let lo = 1i32 << emin;
    if m < lo {
        let d0 = m;
        let d1 = lo - m;
        return match d0.cmp(&d1) {
            std::cmp::Ordering::Less => None,
            std::cmp::Ordering::Greater => Some(emin),
            std::cmp::Ordering::Equal => (rule == P2Round::Up).then_some(emin),
        };
    }
    // largest e in range with 2^e <= m
    let mut e = emin;
    while e < emax && (1i32 << (e + 1)) <= m {
        e += 1;
    }
    if e == emax || (1i32 << e) == m {
        return Some(e);
    }
    let (a, b) = (1i32 << e, 1i32 << (e + 1));
    let up = match rule {
        P2Round::Log => (m as i64) * (m as i64) > 1i64 << (2 * e + 1),
        _ => {
            let (da, db) = (m - a, b - m);
            da > db || (da == db && rule == P2Round::Up)
        }
    };
    Some(if up { e + 1 } else { e })
}

/// MIP2Q demotion of one INT8 value: (reconstructed value, 4-bit code).
pub fn mip2q(q8: i32, emin: u32, emax: u32, rule: P2Round) -> (i32, u32) {
    match nearest_p2(q8.abs(), emin, emax, rule) {
        None => (0, MIP2Q_ZERO_CODE),
        Some(e) => {
            let v = 1i32 << e;
            if q8 < 0 {
                (-v, 0b1000 | (e - emin))
            } else {
                (v, e - emin)
            }
        }
    }
}

pub fn mip2q_decode(code: u32, emin: u32) -> i32 {
    let field = code & 0b0111;
    if field == MIP2Q_ZERO_CODE {
        return 0;
    }
    let v = 1i32 << (field + emin);
    if code & 0b1000 != 0 { -v } else { v }
}

/// DLIQ demotion of one INT8 value under shift k: (reconstructed value, 4-bit code).
pub fn dliq(q8: i32, k: u32) -> (i32, u32) {
    let v = rne(q8 as f32 / (1u32 << k) as f32).clamp(-8.0, 7.0) as i32;
    (v << k, (v as u32) & 0xF)
}

pub fn dliq_decode(code: u32, k: u32) -> i32 {
    let v = ((code & 0xF) as i32) << 28 >> 28; // sign-extend the nibble
    v << k
}

/// MIP2Q on an unrounded ratio `r = w / s` (`demote_from = ratio`): the nearest element of
/// {0} U {2^e : e in [emin, emax]} to |r| under the tie rule (ties need exact equality and
/// practically never occur); returns the signed value.
pub fn mip2q_f(r: f32, emin: u32, emax: u32, rule: P2Round) -> i32 {
    let m = r.abs() as f64;
    let lo = (1u32 << emin) as f64;
    let e = if m < lo {
        let (d0, d1) = (m, lo - m);
        if d0 < d1 || (d0 == d1 && rule != P2Round::Up) {
            return 0;
        }
        emin
    } else {
        let mut e = emin;
        while e < emax && ((1u32 << (e + 1)) as f64) <= m {
            e += 1;
        }
        if e < emax {
            let (a, b) = ((1u32 << e) as f64, (1u32 << (e + 1)) as f64);
            let up = match rule {
                P2Round::Log => m * m > a * b,
                _ => m - a > b - m || (m - a == b - m && rule == P2Round::Up),
            };
            e + up as u32
        } else {
            e
        }
    };
    let v = 1i32 << e;
    if r < 0.0 { -v } else { v }
}

/// The anchored MIP2Q window of a layer whose largest |q8| is `max_abs` (INQ's rule): e_max =
/// floor(log2(4 max / 3)) (the largest e with 3 * 2^e <= 4 max), at most 7; e_min = e_max - 6
/// (at least 0). `[0, 6]` for an all-zero layer.
pub fn anchored_window(max_abs: i32) -> (u32, u32) {
    if max_abs <= 0 {
        return (0, 6);
    }
    let emax = (0..=7u32)
        .rev()
        .find(|&e| 3i64 << e <= 4 * max_abs as i64)
        .unwrap_or(0);
    (emax.saturating_sub(6), emax)
}

/// DLIQ demotion of an unrounded ratio under shift k: rne(r / 2^k) clamped to INT4, << k.
pub fn dliq_f(r: f32, k: u32) -> i32 {
    (rne(r / (1u32 << k) as f32).clamp(-8.0, 7.0) as i32) << k
}

/// Smallest shift k in 0..=5 with rne(v / 2^k) in -8..=7 for every value (the rounding-aware
/// rule: 113 takes k = 4 (113 / 16 rounds to 7), -128 takes k = 4 (-8 << 4)).
pub fn dliq_round_shift(vals: impl Iterator<Item = f32> + Clone) -> u32 {
    (0..=DLIQ_MAX_SHIFT)
        .find(|&k| {
            vals.clone()
                .all(|v| (-8.0..=7.0).contains(&rne(v / (1u32 << k) as f32)))
        })
        .unwrap_or(DLIQ_MAX_SHIFT)
}

/// Smallest shift k with max|q8| <= 7 * 2^k (DLIQ with per-block shift, magnitude rule).
pub fn dliq_min_shift(max_abs: i32) -> u32 {
    (0..=DLIQ_MAX_SHIFT)
        .find(|&k| max_abs <= 7 << k)
        .unwrap_or(DLIQ_MAX_SHIFT)
}
