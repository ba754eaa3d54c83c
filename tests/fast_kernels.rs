//! The fast integer kernels (`cpu::gemm`: im2col + exact FP32-chunked GEMM) against the
//! reference kernels (`cpu::kernels`, the oracle), bit for bit: random geometries (strides,
//! dilations, groups, asymmetric padding, odd sizes, reductions around the 1024 chunk),
//! activations over the whole INT8 range (-128 included) and weights of -128..=128; then
//! whole models, every logit, fast engine vs reference engine.

mod common;

use proptest::prelude::*;
use strumlab::cpu::engine::{Engine, Kernels, Mode};
use strumlab::cpu::gemm;
use strumlab::cpu::kernels::{self, ConvGeom};

fn out_size(n: usize, k: usize, s: usize, d: usize, p0: usize, p1: usize) -> Option<usize> {
    let span = d * (k - 1) + 1;
    (n + p0 + p1 >= span).then(|| (n + p0 + p1 - span) / s + 1)
}

#[allow(clippy::type_complexity)]
fn geometry() -> impl Strategy<Value = (ConvGeom, u64)> {
    (
        (1usize..4, 1usize..7, 1usize..6),
        (1usize..12, 1usize..12),
        (1usize..4, 1usize..4, 1usize..3, 1usize..3),
        (0usize..3, 0usize..3, 0usize..3, 0usize..3),
        1usize..3,
        any::<u64>(),
    )
        .prop_filter_map(
            "kernel larger than the padded image",
            |((group, icg, ocg), (h, w), (kh, kw, sh, sw), (pt, pl, pb, pr), dil, seed)| {
                let oh = out_size(h, kh, sh, dil, pt, pb)?;
                let ow = out_size(w, kw, sw, dil, pl, pr)?;
                let g = ConvGeom {
                    c: group * icg,
                    h,
                    w,
                    oc: group * ocg,
                    icg,
                    kh,
                    kw,
                    sh,
                    sw,
                    dh: dil,
                    dw: dil,
                    pt,
                    pl,
                    oh,
                    ow,
                    group,
                };
                Some((g, seed))
            },
        )
}

/// Activations over -128..=127 (with extremes and zeros) and weights over -128..=128.
fn operands(g: &ConvGeom, seed: u64) -> (Vec<i8>, Vec<i32>, Vec<i32>) {
    let mut rng = common::Rng(seed | 1);
    let x = (0..g.c * g.h * g.w)
        .map(|_| match rng.below(8) {
            0 => 0,
            1 => -128,
            2 => 127,
            _ => (rng.below(256) as i32 - 128) as i8,
        })
        .collect();
    let w = (0..g.oc * g.icg * g.kh * g.kw)
        .map(|_| match rng.below(6) {
            0 => 128,
            1 => -128,
            2 => 0,
            _ => rng.below(257) as i32 - 128,
        })
        .collect();
    let bias = (0..g.oc)
        .map(|_| rng.below(1 << 20) as i32 - (1 << 19))
        .collect();
    (x, w, bias)
}

fn filled(bias: &[i32], per: usize) -> Vec<i32> {
    bias.iter()
        .flat_map(|&b| std::iter::repeat_n(b, per))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// The summed-area count of non-zero taps (`cpu::taps`, the activity statistics) equals
    /// the reference pass over output positions.
    #[test]
    fn nonzero_taps_fast_equals_reference((g, seed) in geometry()) {
        let (x, _, _) = operands(&g, seed);
        let nz: Vec<bool> = x.iter().map(|&v| v != 0).collect();
        prop_assert_eq!(
            strumlab::cpu::taps::nonzero_taps(&nz, &g),
            kernels::nonzero_taps(&nz, &g),
            "{:?}", g
        );
    }

    #[test]
    fn conv_gemm_equals_reference((g, seed) in geometry()) {
        let (x, w, bias) = operands(&g, seed);
        let per = g.oh * g.ow;
        let mut want = filled(&bias, per);
        kernels::conv2d(&x, &w, &g, &mut want, |v| v as i32);
        let wf: Vec<f32> = w.iter().map(|&v| v as f32).collect();
        let mut got = filled(&bias, per);
        gemm::conv_i8(&x, &wf, &g, &mut got, &mut Default::default());
        prop_assert_eq!(got, want, "{:?}", g);
    }

    #[test]
    fn dense_gemm_equals_reference(rows in 1usize..5, ic in 1usize..300, oc in 1usize..40, seed in any::<u64>()) {
        let g = ConvGeom { c: ic, h: 1, w: 1, oc, icg: ic, kh: 1, kw: 1, sh: 1, sw: 1, dh: 1, dw: 1,
                           pt: 0, pl: 0, oh: 1, ow: 1, group: 1 };
        let (x1, w, bias) = operands(&g, seed);
        let mut rng = common::Rng(seed ^ 0x9e37);
        let x: Vec<i8> = (0..rows * ic).map(|k| if k < ic { x1[k] } else { (rng.below(256) as i32 - 128) as i8 }).collect();
        let mut want: Vec<i32> = (0..rows * oc).map(|k| bias[k % oc]).collect();
        kernels::dense(&x, &w, ic, oc, &mut want, |v| v as i32);
        let wf: Vec<f32> = w.iter().map(|&v| v as f32).collect();
        let mut got: Vec<i32> = (0..rows * oc).map(|k| bias[k % oc]).collect();
        gemm::dense_i8(&x, &wf, ic, oc, &mut got, &mut Default::default());
        prop_assert_eq!(got, want);
    }
}

/// Reductions just below, at and above the 1024 chunk, with every product at its largest
/// magnitude (128 * -128), where a single FP32 sum would have left the exact range.
#[test]
fn chunk_boundaries_are_exact() {
    for k in [1023usize, 1024, 1025, 2049, 4100] {
        for (xv, wv) in [(-128i8, 128i32), (127, 128), (-128, -128)] {
            let x = vec![xv; 3 * k];
            let w = vec![wv; 2 * k];
            let mut want = vec![7i32; 3 * 2];
            kernels::dense(&x, &w, k, 2, &mut want, |v| v as i32);
            assert_eq!(want[0], 7 + k as i32 * xv as i32 * wv);
            let wf: Vec<f32> = w.iter().map(|&v| v as f32).collect();
            let mut got = vec![7i32; 3 * 2];
            gemm::dense_i8(&x, &wf, k, 2, &mut got, &mut Default::default());
            assert_eq!(got, want, "K = {k}");
        }
    }
}

/// Whole models in integer mode: every logit of the fast engine equals the reference
/// engine's (the same weights and scales), for INT8, MIP2Q and DLIQ (L = B included, so
/// weights of +-128 occur).
#[test]
fn whole_models_fast_equals_reference() {
    use strumlab::quant::{QuantConfig, Scheme, quantize_graph};
    for (model, data, n) in [
        ("mnist-8", "mnist-test", 200),
        ("fmnist-resnet", "fashion-test", 60),
        ("fmnist-mobilenetv2", "fashion-test", 60),
        ("fmnist-vgg", "fashion-test", 60),
    ] {
        let (g, card) =
            strumlab::zoo::resolve(model, &strumlab::model::LoadOptions::default()).unwrap();
        let ds = strumlab::data::load(data, &card, false).unwrap();
        let mut shape = ds.shape.clone();
        shape[0] = 32;
        let calib = strumlab::model::Tensor::new(shape, ds.images(0, 32).unwrap());
        let sc = strumlab::cpu::engine::calibrate(
            &g,
            &calib,
            strumlab::quant::config::Calib::Max,
            99.99,
        )
        .unwrap();
        for (scheme, low) in [
            (Scheme::Int8, 0),
            (Scheme::Mip2q, 4),
            (Scheme::Mip2q, 8),
            (Scheme::Dliq, 8),
        ] {
            let cfg = QuantConfig {
                scheme,
                low,
                ..Default::default()
            };
            let q = quantize_graph(&g, &cfg).unwrap();
            let fast = Engine::new(&g, Mode::Integer, Some(&q), Some(&sc)).unwrap();
            assert_eq!(fast.kernels, Kernels::Fast);
            let refr = Engine::new(&g, Mode::Integer, Some(&q), Some(&sc))
                .unwrap()
                .with_kernels(Kernels::Reference);
            for i in 0..n {
                let a = fast.run(&ds.image(i).unwrap(), false).unwrap().0;
                let b = refr.run(&ds.image(i).unwrap(), false).unwrap().0;
                assert_eq!(a, b, "{model} {} image {i}", cfg.label());
            }
        }
    }
}

/// `eval --check-reference` runs both kernel sets on every image and reports the count.
#[test]
fn eval_check_reference_reports_agreement() {
    let bin = env!("CARGO_BIN_EXE_strumlab");
    let o = std::process::Command::new(bin)
        .args(["eval", "--scheme", "dliq", "--low", "8", "--limit", "300"])
        .args(["--check-reference", "--json", "-q"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["summary"]["reference_mismatches"], 0);
    assert!(String::from_utf8_lossy(&o.stderr).contains("agree on every logit of all 300 images"));
    // Only integer mode on the CPU has two kernel sets: anything else is refused by name.
    let o = std::process::Command::new(bin)
        .args([
            "eval",
            "--scheme",
            "fp32",
            "--mode",
            "fp32",
            "--limit",
            "5",
            "--check-reference",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("check-reference"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// FP32 mode: the fast GEMM sums in another order, so it agrees with the reference
    /// within `gemm::FP32_REL_TOL` of the magnitude of each output's reduction.
    #[test]
    fn conv_f32_gemm_within_tolerance((g, seed) in geometry()) {
        let mut rng = common::Rng(seed | 1);
        let x: Vec<f32> = (0..g.c * g.h * g.w).map(|_| rng.normal()).collect();
        let w: Vec<f32> = (0..g.oc * g.icg * g.kh * g.kw).map(|_| rng.normal()).collect();
        let per = g.oh * g.ow;
        let bias: Vec<f32> = (0..g.oc).map(|_| rng.normal()).collect();
        let fill = || bias.iter().flat_map(|&b| std::iter::repeat_n(b, per)).collect::<Vec<f32>>();
        let mut want = fill();
        kernels::conv2d(&x, &w, &g, &mut want, |v| v);
        let xa: Vec<f32> = x.iter().map(|v| v.abs()).collect();
        let wa: Vec<f32> = w.iter().map(|v| v.abs()).collect();
        let mut mag: Vec<f32> = bias.iter().flat_map(|&b| std::iter::repeat_n(b.abs(), per)).collect();
        kernels::conv2d(&xa, &wa, &g, &mut mag, |v| v);
        let mut got = fill();
        gemm::conv_f32(&x, &w, &g, &mut got, &mut Default::default());
        for i in 0..got.len() {
            prop_assert!((got[i] - want[i]).abs() <= gemm::FP32_REL_TOL * mag[i].max(1e-30),
                "{:?} output {}: {} vs {}", g, i, got[i], want[i]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// FP32 depthwise (`cpu::dwconv`): the reference kernel's per-output order, so equal to
    /// it (f32 `==`: a zero's sign may differ) over strides, dilations, asymmetric padding
    /// and channel multipliers, zero weights included.
    #[test]
    fn depthwise_f32_equals_reference((g0, seed) in geometry()) {
        let group = g0.group.max(2);
        let ocg = g0.oc / g0.group;
        let g = ConvGeom { c: group, icg: 1, group, oc: group * ocg, ..g0 };
        let mut rng = common::Rng(seed | 1);
        let x: Vec<f32> = (0..g.c * g.h * g.w).map(|_| rng.normal()).collect();
        let w: Vec<f32> = (0..g.oc * g.kh * g.kw)
            .map(|i| if i % 5 == 3 { 0.0 } else { rng.normal() })
            .collect();
        let per = g.oh * g.ow;
        let bias: Vec<f32> = (0..g.oc).map(|_| rng.normal()).collect();
        let fill = || bias.iter().flat_map(|&b| std::iter::repeat_n(b, per)).collect::<Vec<f32>>();
        let mut want = fill();
        kernels::conv2d(&x, &w, &g, &mut want, |v| v);
        let mut got = fill();
        strumlab::cpu::dwconv::depthwise_f32(&x, &w, &g, &mut got, &mut Vec::new());
        prop_assert_eq!(got, want, "{:?}", g);
    }
}

/// Whole models in FP32 mode: fast and reference engines agree on the top-1 class of almost
/// every image and on every logit within a small multiple of the kernel tolerance.
#[test]
fn whole_models_fp32_fast_close_to_reference() {
    for (model, data) in [("mnist-8", "mnist-test"), ("fmnist-resnet", "fashion-test")] {
        let (g, card) =
            strumlab::zoo::resolve(model, &strumlab::model::LoadOptions::default()).unwrap();
        let ds = strumlab::data::load(data, &card, false).unwrap();
        let fast = Engine::new(&g, Mode::Fp32, None, None).unwrap();
        let refr = Engine::new(&g, Mode::Fp32, None, None)
            .unwrap()
            .with_kernels(Kernels::Reference);
        for i in 0..100 {
            let a = &fast.run(&ds.image(i).unwrap(), false).unwrap().0[0];
            let b = &refr.run(&ds.image(i).unwrap(), false).unwrap().0[0];
            let scale = b.iter().fold(1e-30f32, |m, v| m.max(v.abs()));
            for (p, q) in a.iter().zip(b) {
                // 100 x the kernel tolerance: errors of ~10 layers compound
                assert!(
                    (p - q).abs() <= 100.0 * gemm::FP32_REL_TOL * scale,
                    "{model} image {i}: {p} vs {q}"
                );
            }
        }
    }
}

/// `quantize1` (clamp, then the 1.5 * 2^23 rounding trick) equals rne(v).clamp(-127, 127)
/// on every tie, the extremes, non-finite values and a dense sweep of the range.
#[test]
fn quantize1_equals_round_ties_even_then_clamp() {
    let want = |v: f32| v.round_ties_even().clamp(-127.0, 127.0) as i8;
    let mut vals: Vec<f32> = (-300..=300).map(|k| k as f32 * 0.5).collect();
    vals.extend((-200_000..=200_000).map(|k| k as f32 * 0.001_37));
    vals.extend([
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        0.0,
        1e30,
        -1e30,
        126.5,
        -126.5,
        127.5,
        -127.5,
    ]);
    vals.extend([0.5f32, 1.5, 2.5, -0.5, -1.5, -2.5].map(|v| v.next_up()));
    vals.extend([0.5f32, 1.5, 2.5, -0.5, -1.5, -2.5].map(|v| v.next_down()));
    for v in vals {
        assert_eq!(kernels::quantize1(v), want(v), "{v}");
    }
}
