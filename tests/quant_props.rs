//! Invariants of every quantization scheme, on random weight tensors (proptest), plus
//! exact tables for the low-precision formats.

mod common;

use proptest::prelude::*;
use strumlab::quant::config::*;
use strumlab::quant::lowp;
use strumlab::quant::schemes::{Int4, Mx, NM, Quantizer, Strum, WClass, WeightView};
use strumlab::quant::{Geometry, LayerStats};

/// A random conv-like weight tensor [oc][ic][taps] with a few exact zeros and outliers.
fn weights() -> impl Strategy<Value = (usize, usize, usize, Vec<f32>)> {
    (
        1usize..5,
        1usize..40,
        prop_oneof![Just(1usize), Just(9)],
        any::<u64>(),
    )
        .prop_map(|(oc, ic, taps, seed)| {
            let mut rng = common::Rng(seed | 1);
            let w = (0..oc * ic * taps)
                .map(|_| match rng.below(20) {
                    0 => 0.0,
                    1 => rng.normal() * 8.0,
                    _ => rng.normal() * 0.1,
                })
                .collect();
            (oc, ic, taps, w)
        })
}

fn geometry(oc: usize, ic: usize, taps: usize, axis: BlockAxis, b: usize) -> Geometry {
    match axis {
        BlockAxis::Ic => Geometry::new(oc, ic, taps, b),
        BlockAxis::Khwc => Geometry::khwc(oc, ic, taps, b),
        BlockAxis::Flat => Geometry::new(oc, ic * taps, 1, b),
    }
}

fn strum_cfg(scheme: Scheme, sel: Selection, shift: DliqShift, round: P2Round) -> QuantConfig {
    QuantConfig {
        scheme,
        selection: sel,
        dliq_shift: shift,
        p2_round: round,
        ..Default::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn strum_invariants(
        (oc, ic, taps, w) in weights(),
        b in prop_oneof![Just(4usize), Just(8), Just(16), Just(32)],
        lfrac in 0usize..=4,
        scheme in prop_oneof![Just(Scheme::Mip2q), Just(Scheme::Dliq)],
        sel in prop_oneof![Just(Selection::Magnitude), Just(Selection::Error)],
        shift in prop_oneof![Just(DliqShift::Block), Just(DliqShift::None)],
        round in prop_oneof![Just(P2Round::Down), Just(P2Round::Up), Just(P2Round::Log)],
        axis in prop_oneof![Just(BlockAxis::Ic), Just(BlockAxis::Khwc), Just(BlockAxis::Flat)],
        window in prop_oneof![Just(P2Window::Anchored), Just(P2Window::Fixed), Just(P2Window::Auto)],
    ) {
        let low = b * lfrac / 4;
        let cfg = QuantConfig { p2_window: window, ..strum_cfg(scheme, sel, shift, round) };
        let g = geometry(oc, ic, taps, axis, b);
        let view = WeightView { data: &w, out_channels: oc, geometry: g };
        let e = Strum { cfg: cfg.clone(), low }.quantize(&view).unwrap();
        let base = Strum::int8(&cfg).quantize(&view).unwrap();
        let p = e.packed.as_ref().unwrap();
        let per = w.len() / oc;

        // decode(encode(w)) equals the integer view, and the dequantized view is q * s exactly.
        prop_assert_eq!(&p.decode(), &e.q);
        for i in 0..w.len() {
            prop_assert_eq!(e.deq[i], e.q[i] as f32 * e.scales[i / per]);
        }
        // INT8 itself: |q8| <= 127 and within half a step of w / s.
        for i in 0..w.len() {
            prop_assert!(base.q[i].abs() <= 127);
            prop_assert!((base.q[i] as f32 - w[i] / base.scales[i / per]).abs() <= 0.5 + 1e-4);
        }
        // Every weight sits in exactly one lane of one block, and locate() inverts block_lanes().
        let mut seen = vec![0u8; w.len()];
        for blk in 0..g.num_blocks() {
            for (lane, idx) in g.block_lanes(blk).enumerate() {
                if let Some(i) = idx {
                    seen[i] += 1;
                    prop_assert_eq!(g.locate(i), (blk, lane));
                }
            }
        }
        prop_assert!(seen.iter().all(|&c| c == 1));
        let emin = match p.format {
            strumlab::quant::packed::LowFormat::Mip2q { emin } => emin,
            _ => 0,
        };
        for blk in 0..g.num_blocks() {
            let lanes: Vec<Option<usize>> = g.block_lanes(blk).collect();
            let mask = p.masks[blk];
            // Magnitude selection: no demoted value is larger than a kept one (|w / s|).
            if sel == Selection::Magnitude && low > 0 {
                let r = |i: usize| (w[i] / base.scales[i / per]).abs();
                let kept = lanes.iter().enumerate().filter(|(k, l)| l.is_some() && mask >> k & 1 == 1);
                let dem = lanes.iter().enumerate().filter(|(k, l)| l.is_some() && mask >> k & 1 == 0);
                let min_kept = kept.map(|(_, l)| r(l.unwrap())).fold(f32::INFINITY, f32::min);
                let max_dem = dem.map(|(_, l)| r(l.unwrap())).fold(0.0, f32::max);
                prop_assert!(min_kept >= max_dem, "block {blk}: kept {min_kept} < demoted {max_dem}");
            }
            // Exactly L lanes of every block are demoted (padding lanes count first).
            prop_assert_eq!(mask.count_ones() as usize, b - low);
            let real = lanes.iter().filter(|l| l.is_some()).count();
            let real_low = lanes.iter().enumerate().filter(|(k, l)| l.is_some() && mask >> k & 1 == 0).count();
            prop_assert_eq!(real_low, low.saturating_sub(b - real));
            for (lane, idx) in lanes.iter().enumerate() {
                let Some(i) = *idx else { continue };
                if mask >> lane & 1 == 1 {
                    // Kept values equal the INT8 values.
                    prop_assert_eq!(e.q[i], base.q[i]);
                } else {
                    let v = e.q[i];
                    match scheme {
                        // The window holds 7 exponents; the anchored one tops out at 2^7 = 128.
                        Scheme::Mip2q => prop_assert!(
                            v == 0
                                || (v.unsigned_abs().is_power_of_two()
                                    && v.unsigned_abs() <= 128
                                    && v.unsigned_abs() >= 1 << emin
                                    && v.unsigned_abs() <= 64 << emin),
                            "MIP2Q value {v} (emin {emin})"
                        ),
                        _ => match shift {
                            DliqShift::None => prop_assert!((-8..=7).contains(&v), "DLIQ value {v}"),
                            DliqShift::Block | DliqShift::Channel => {
                                let k = (p.shifts[blk / 8] >> (4 * (blk % 8))) & 0xF;
                                prop_assert!(k <= lowp::DLIQ_MAX_SHIFT);
                                prop_assert!(v % (1 << k) == 0 && (-8..=7).contains(&(v >> k)), "DLIQ value {v} shift {k}");
                            }
                        },
                    }
                    // A demoted non-zero weight is classed Low.
                    prop_assert!(v == 0 || e.class[i] == WClass::Low);
                }
            }
        }
        // Bit accounting, metadata included.
        let mask_bits = if low > 0 && low < b { b } else { 0 };
        let shift_bits = if scheme == Scheme::Dliq && shift == DliqShift::Block && low > 0 { 3 } else { 0 };
        let per_block = if low == 0 { 8 * b } else { (b - low) * 8 + low * 4 + mask_bits + shift_bits };
        let want = if low == 0 { 8 * w.len() } else { g.num_blocks() * per_block };
        prop_assert_eq!(e.storage_bits, want as u64);
        let s = LayerStats::compute(&w, &e);
        prop_assert_eq!(s.high + s.low + s.zero, w.len() as u64);
        prop_assert!(s.sqnr_db.is_nan() == false);
    }

    #[test]
    fn mip2q_error_grows_with_l(
        (oc, ic, taps, w) in weights(),
        b in prop_oneof![Just(4usize), Just(8), Just(16)],
    ) {
        // With magnitude selection the demoted set for L is contained in that for L + 1 and
        // each value's demotion does not depend on the set: the error cannot shrink.
        let cfg = strum_cfg(Scheme::Mip2q, Selection::Magnitude, DliqShift::Block, P2Round::Down);
        let g = geometry(oc, ic, taps, BlockAxis::Ic, b);
        let view = WeightView { data: &w, out_channels: oc, geometry: g };
        let mut prev = -1.0f64;
        for low in 0..=b {
            let e = Strum { cfg: cfg.clone(), low }.quantize(&view).unwrap();
            let mse = LayerStats::compute(&w, &e).mse;
            prop_assert!(mse >= prev, "L={low}: mse {mse} < {prev}");
            prev = mse;
        }
    }

    #[test]
    fn baseline_invariants((oc, ic, taps, w) in weights(), m in prop_oneof![Just(4usize), Just(8)], mxb in prop_oneof![Just(8usize), Just(32)]) {
        let g = Geometry::new(oc, ic, taps, 8);
        let view = WeightView { data: &w, out_channels: oc, geometry: g };
        let per = w.len() / oc;
        let i8 = Strum::int8(&QuantConfig::default()).quantize(&view).unwrap();

        let e = Int4 { calib: Calib::Max, percentile: 100.0 }.quantize(&view).unwrap();
        prop_assert!(e.q.iter().all(|v| (-7..=7).contains(v)));
        prop_assert_eq!(e.storage_bits, 4 * w.len() as u64);

        let n = m / 2;
        let e = NM { n, m, calib: Calib::Max, percentile: 100.0 }.quantize(&view).unwrap();
        let gm = Geometry::new(oc, ic, taps, m);
        for blk in 0..gm.num_blocks() {
            let idx: Vec<usize> = gm.block_lanes(blk).flatten().collect();
            prop_assert!(idx.iter().filter(|&&i| e.q[i] != 0).count() <= n);
            for &i in &idx {
                prop_assert!(e.q[i] == 0 || e.q[i] == i8.q[i]);
            }
        }
        for i in 0..w.len() {
            prop_assert_eq!(e.deq[i], e.q[i] as f32 * e.scales[i / per]);
        }

        for bits in [8u32, 4] {
            let e = Mx { block: mxb, elem_bits: bits }.quantize(&view).unwrap();
            let qmax = if bits == 8 { 127 } else { 7 };
            prop_assert!(e.q.iter().all(|v| v.abs() <= qmax));
            prop_assert!(e.scales.iter().all(|s| s.log2().fract() == 0.0), "shared scales are powers of two");
            let gx = Geometry::new(oc, ic, taps, mxb);
            for blk in 0..gx.num_blocks() {
                for i in gx.block_lanes(blk).flatten() {
                    prop_assert_eq!(e.deq[i], e.q[i] as f32 * e.scales[blk]);
                }
            }
            prop_assert_eq!(e.storage_bits, (gx.num_blocks() * (mxb * bits as usize + 8)) as u64);
        }
    }
}

#[test]
fn nearest_power_of_two_tables() {
    // Linear distance, ties down (the default), for the INT8 range 0..=6.
    let down = [
        (1, 1),
        (2, 2),
        (3, 2),
        (5, 4),
        (6, 4),
        (7, 8),
        (11, 8),
        (12, 8),
        (13, 16),
        (23, 16),
        (24, 16),
        (25, 32),
        (47, 32),
        (48, 32),
        (49, 64),
        (95, 64),
        (96, 64),
        (127, 64),
    ];
    for (m, want) in down {
        assert_eq!(lowp::mip2q(m, 0, 6, P2Round::Down).0, want, "down {m}");
        assert_eq!(lowp::mip2q(-m, 0, 6, P2Round::Down).0, -want, "down -{m}");
    }
    for (m, want) in [(3, 4), (6, 8), (12, 16), (96, 64), (127, 64), (5, 4)] {
        assert_eq!(lowp::mip2q(m, 0, 6, P2Round::Up).0, want, "up {m}");
    }
    // Log-nearest: 3 -> 4 (3^2 = 9 > 8), 5 -> 4 (25 < 32), 11 -> 8 (121 < 128), 12 -> 16.
    for (m, want) in [
        (3, 4),
        (5, 4),
        (6, 8),
        (11, 8),
        (12, 16),
        (90, 64),
        (91, 128 / 2),
    ] {
        assert_eq!(lowp::mip2q(m, 0, 6, P2Round::Log).0, want, "log {m}");
    }
    // A restricted range: below 2^emin the choice is 0 or 2^emin; above 2^emax it saturates.
    assert_eq!(lowp::mip2q(1, 1, 4, P2Round::Down).0, 0);
    assert_eq!(lowp::mip2q(1, 1, 4, P2Round::Up).0, 2);
    assert_eq!(lowp::mip2q(100, 1, 4, P2Round::Down).0, 16);
    assert_eq!(
        lowp::mip2q(0, 0, 6, P2Round::Down),
        (0, lowp::MIP2Q_ZERO_CODE)
    );
    // Codes round-trip.
    for q in -127..=127 {
        let (v, c) = lowp::mip2q(q, 0, 6, P2Round::Down);
        assert_eq!(lowp::mip2q_decode(c, 0), v);
        assert!(c < 16);
    }
}

#[test]
fn dliq_tables() {
    assert_eq!(lowp::dliq(13, 1).0, 12, "6.5 rounds to even 6");
    assert_eq!(
        lowp::dliq(15, 1).0,
        14,
        "7.5 rounds to even 8, clamped to 7"
    );
    assert_eq!(lowp::dliq(-100, 4).0, -96);
    assert_eq!(lowp::dliq(9, 0).0, 7, "no shift: clamp");
    assert_eq!(lowp::dliq(-9, 0).0, -8);
    for (m, k) in [
        (0, 0),
        (7, 0),
        (8, 1),
        (14, 1),
        (15, 2),
        (112, 4),
        (113, 5),
        (127, 5),
    ] {
        assert_eq!(lowp::dliq_min_shift(m), k, "shift for {m}");
    }
    for q in -127..=127 {
        for k in 0..=5 {
            let (v, c) = lowp::dliq(q, k);
            assert_eq!(lowp::dliq_decode(c, k), v);
        }
    }
}
