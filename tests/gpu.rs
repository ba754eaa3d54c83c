//! GPU kernels against their CPU mirrors, bit for bit, on whatever adapter wgpu finds
//! (Mesa's lavapipe in CI). Without an adapter these tests skip with a message, unless
//! STRUMLAB_REQUIRE_GPU is set (as .ci/run does), where a missing adapter is a failure.

mod common;

use common::Rng;
use strumlab::cpu::kernels::{self, ConvGeom};
use strumlab::gpu::GpuContext;

fn gpu() -> Option<GpuContext> {
    match GpuContext::new() {
        Ok(g) => {
            eprintln!(
                "GPU adapter: {} ({:?}, {})",
                g.info.name, g.info.backend, g.info.driver_info
            );
            Some(g)
        }
        Err(e) => {
            assert!(
                std::env::var_os("STRUMLAB_REQUIRE_GPU").is_none(),
                "STRUMLAB_REQUIRE_GPU is set but: {e}"
            );
            eprintln!("skipping GPU test: {e}");
            None
        }
    }
}

/// A zoo model, a dataset and activation scales calibrated (max) on its first `n` images.
fn calibrated(
    model: &str,
    data: &str,
    n: usize,
) -> (
    strumlab::model::Graph,
    strumlab::data::Dataset,
    strumlab::cpu::engine::Scales,
) {
    let (graph, card) =
        strumlab::zoo::resolve(model, &strumlab::model::LoadOptions::default()).unwrap();
    let ds = strumlab::data::load(data, &card, false).unwrap();
    let n = n.min(ds.len());
    let mut shape = ds.shape.clone();
    shape[0] = n;
    let sc = strumlab::cpu::engine::calibrate(
        &graph,
        &strumlab::model::Tensor::new(shape, ds.images(0, n).unwrap()),
        strumlab::quant::config::Calib::Max,
        100.0,
    )
    .unwrap();
    (graph, ds, sc)
}

fn int8s(rng: &mut Rng, n: usize) -> Vec<i32> {
    (0..n)
        .map(|_| {
            if rng.below(3) == 0 {
                0
            } else {
                rng.below(255) as i32 - 127
            }
        })
        .collect()
}

#[test]
fn quantize_matches_cpu_including_ties() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng(11);
    // exact ties (k + 0.5) exercise round-half-to-even; large values the clamp
    let mut x: Vec<f32> = (-300..300).map(|k| k as f32 * 0.5).collect();
    x.extend((0..5000).map(|_| rng.normal() * 40.0));
    let want: Vec<i32> = kernels::quantize(&x, 1.0)
        .into_iter()
        .map(|v| v as i32)
        .collect();
    assert_eq!(g.quantize(&x, 1.0).unwrap(), want);
    let want: Vec<i32> = kernels::quantize(&x, 0.37)
        .into_iter()
        .map(|v| v as i32)
        .collect();
    assert_eq!(g.quantize(&x, 0.37).unwrap(), want);
}

#[test]
fn conv2d_matches_cpu_on_many_geometries() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng(5);
    // (c, h, w, oc, group, k, stride, dilation, pads [t, l, b, r])
    let cases = [
        (3, 9, 7, 5, 1, [3, 3], [1, 1], [1, 1], [1, 1, 1, 1]),
        (8, 8, 8, 8, 8, [3, 3], [2, 2], [1, 1], [0, 0, 1, 1]),
        (6, 7, 9, 4, 2, [5, 3], [1, 2], [1, 2], [2, 1, 2, 1]),
        (16, 5, 5, 24, 1, [1, 1], [1, 1], [1, 1], [0, 0, 0, 0]),
        (1, 28, 28, 8, 1, [5, 5], [1, 1], [1, 1], [2, 2, 2, 2]),
    ];
    for (c, h, w, oc, group, k, s, d, pads) in cases {
        let icg = c / group;
        let oh = (h + pads[0] + pads[2] - d[0] * (k[0] - 1) - 1) / s[0] + 1;
        let ow = (w + pads[1] + pads[3] - d[1] * (k[1] - 1) - 1) / s[1] + 1;
        let geo = ConvGeom {
            c,
            h,
            w,
            oc,
            icg,
            kh: k[0],
            kw: k[1],
            sh: s[0],
            sw: s[1],
            dh: d[0],
            dw: d[1],
            pt: pads[0],
            pl: pads[1],
            oh,
            ow,
            group,
        };
        let x = int8s(&mut rng, c * h * w);
        let wt = int8s(&mut rng, oc * icg * k[0] * k[1]);
        let bias: Vec<i32> = (0..oc).map(|_| rng.below(20001) as i32 - 10000).collect();
        let mut want: Vec<i32> = bias
            .iter()
            .flat_map(|&b| std::iter::repeat_n(b, oh * ow))
            .collect();
        kernels::conv2d(&x, &wt, &geo, &mut want, |v| v);
        assert_eq!(
            g.conv2d(&x, &wt, &bias, &geo).unwrap(),
            want,
            "geometry {geo:?}"
        );
    }
}

#[test]
fn dense_requantize_and_maxpool_match_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng(9);
    for (rows, ic, oc) in [(1, 256, 10), (3, 17, 9), (2, 1280, 1000)] {
        let x = int8s(&mut rng, rows * ic);
        let wt = int8s(&mut rng, oc * ic);
        let bias: Vec<i32> = (0..oc).map(|_| rng.below(2001) as i32 - 1000).collect();
        let mut want: Vec<i32> = (0..rows * oc).map(|k| bias[k % oc]).collect();
        kernels::dense(&x, &wt, ic, oc, &mut want, |v| v);
        let got = g.dense(&x, &wt, &bias, ic, oc).unwrap();
        assert_eq!(got, want, "{rows}x{ic}->{oc}");
        // requantize both layouts
        let m: Vec<f32> = (0..oc)
            .map(|_| (rng.below(1000) as f32 + 1.0) * 1e-5)
            .collect();
        let cpu: Vec<i32> = kernels::requantize(&got, &m, 1, oc, true)
            .into_iter()
            .map(|v| v as i32)
            .collect();
        assert_eq!(g.requantize(&got, &m, 1, oc, true).unwrap(), cpu);
    }
    let acc: Vec<i32> = (0..4 * 50)
        .map(|_| rng.below(200001) as i32 - 100000)
        .collect();
    let m = [1e-3f32, 2.5e-4, 7e-4, 1.1e-3];
    let cpu: Vec<i32> = kernels::requantize(&acc, &m, 50, 4, false)
        .into_iter()
        .map(|v| v as i32)
        .collect();
    assert_eq!(g.requantize(&acc, &m, 50, 4, false).unwrap(), cpu);
    for (c, h, w, k, s, p) in [
        (8, 28, 28, 2, 2, 0),
        (16, 14, 14, 3, 3, 0),
        (4, 9, 9, 3, 2, 1),
    ] {
        let oh = (h + 2 * p - k) / s + 1;
        let geo = ConvGeom {
            c,
            h,
            w,
            oc: c,
            icg: 1,
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            dh: 1,
            dw: 1,
            pt: p,
            pl: p,
            oh,
            ow: oh,
            group: c,
        };
        let x8: Vec<i8> = int8s(&mut rng, c * h * w)
            .into_iter()
            .map(|v| v as i8)
            .collect();
        let want: Vec<i32> = kernels::maxpool(&x8, &geo, i8::MIN)
            .into_iter()
            .map(|v| v as i32)
            .collect();
        let x: Vec<i32> = x8.iter().map(|&v| v as i32).collect();
        assert_eq!(g.maxpool(&x, &geo).unwrap(), want);
    }
}

#[test]
fn topk_count_matches_cpu_with_ties() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng(29);
    for (classes, is_int) in [
        (10usize, false),
        (10, true),
        (1000, false),
        (3, true),
        (7, false),
    ] {
        let n = 333;
        // Few distinct values, so ties are common; INT8 codes as i32 words or FP32 bits.
        let logits: Vec<u32> = (0..n * classes)
            .map(|_| {
                let v = rng.below(9) as i32 - 4;
                if is_int {
                    v as u32
                } else {
                    (v as f32 * 0.25).to_bits()
                }
            })
            .collect();
        let labels: Vec<i32> = (0..n).map(|_| rng.below(classes + 1) as i32 - 1).collect();
        let reference: Vec<i32> = (0..n).map(|_| rng.below(classes + 1) as i32 - 1).collect();
        let want = kernels::topk_count(&logits, &labels, &reference, classes, is_int, 5);
        let got = g
            .topk_count(&logits, &labels, &reference, classes, is_int)
            .unwrap();
        assert_eq!(got, want, "{classes} classes, int {is_int}");
        // The mirror ranks like eval::top_k (ties: lower index first).
        for (i, row) in logits.chunks(classes).enumerate() {
            let f: Vec<f32> = row
                .iter()
                .map(|&w| {
                    if is_int {
                        w as i32 as f32
                    } else {
                        f32::from_bits(w)
                    }
                })
                .collect();
            assert_eq!(want.0[i] as usize, strumlab::eval::top_k(&f, 1)[0]);
        }
    }
}

/// `strum_quantize` (GPU) = its CPU mirror = the library's StruM quantizer, on random layers
/// with padded blocks and on mnist-8's layers, for both strategies and many settings.
#[test]
fn strum_quantize_matches_mirror_and_quantizer() {
    use strumlab::quant::config::{BlockAxis, DliqShift, P2Round, P2Window};
    use strumlab::quant::{Geometry, QuantConfig, Scheme, schemes::int8_codes};
    let mut rng = Rng(41);
    let mut cases: Vec<(Vec<f32>, usize, Geometry)> = Vec::new();
    for (oc, a, q, block) in [
        (5, 12, 3, 8),
        (3, 8, 9, 8),
        (4, 20, 1, 16),
        (2, 7, 4, 4),
        (3, 33, 2, 32),
    ] {
        let w: Vec<f32> = (0..oc * a * q).map(|_| rng.normal()).collect();
        cases.push((w, oc, Geometry::new(oc, a, q, block)));
    }
    // The khwc order (input channels innermost, blocks straddling taps).
    for (oc, icg, taps, block) in [(4, 3, 9, 8), (2, 5, 25, 16)] {
        let w: Vec<f32> = (0..oc * icg * taps).map(|_| rng.normal()).collect();
        cases.push((w, oc, Geometry::khwc(oc, icg, taps, block)));
    }
    let (graph, _) =
        strumlab::zoo::resolve("mnist-8", &strumlab::model::LoadOptions::default()).unwrap();
    for (_, layer) in graph.layers() {
        let w = layer.weight();
        let g = strumlab::quant::geometry::layer_geometry(
            layer,
            BlockAxis::Ic,
            strumlab::quant::config::Depthwise::Int8,
            8,
        );
        cases.push((w.data.clone(), w.shape[0], g));
    }
    let ctx = gpu();
    for (w, oc, g) in &cases {
        let (_, ratio, q8) = int8_codes(w, *oc, *g, strumlab::quant::config::Calib::Max, 99.99);
        let per = w.len() / oc;
        let ones = vec![1.0f32; *oc];
        for (scheme, code) in [(Scheme::Mip2q, 1u32), (Scheme::Dliq, 2)] {
            for low in [0, 1, g.block / 2, g.block] {
                for (round, shift, window) in [
                    (P2Round::Down, DliqShift::Block, P2Window::Fixed),
                    (P2Round::Log, DliqShift::None, P2Window::Fixed),
                    (P2Round::Up, DliqShift::Block, P2Window::Fixed),
                    (P2Round::Down, DliqShift::Block, P2Window::Anchored),
                    (P2Round::Log, DliqShift::Block, P2Window::Anchored),
                ] {
                    let cfg = QuantConfig {
                        scheme,
                        block: g.block,
                        low,
                        p2_round: round,
                        dliq_shift: shift,
                        p2_window: window,
                        ..Default::default()
                    };
                    let (emin, emax) = match window {
                        P2Window::Anchored => strumlab::quant::lowp::anchored_window(
                            q8.iter().map(|v| v.abs()).max().unwrap_or(0),
                        ),
                        _ => (cfg.p2_min_exp, cfg.p2_max_exp),
                    };
                    let p = kernels::StrumQuantParams {
                        geometry: *g,
                        low,
                        scheme: code,
                        emin,
                        emax,
                        p2_round: round,
                        block_shift: shift == DliqShift::Block,
                        per_channel: per,
                    };
                    let mirror = kernels::strum_quantize(&p, &q8, &ratio, &ones);
                    let quantizer = strumlab::quant::schemes::Strum {
                        cfg: cfg.clone(),
                        low,
                    };
                    let view = strumlab::quant::WeightView {
                        data: w,
                        out_channels: *oc,
                        geometry: *g,
                    };
                    use strumlab::quant::Quantizer;
                    let want = quantizer.quantize(&view).unwrap().q;
                    assert_eq!(mirror, want, "{g:?} {cfg:?}");
                    if let Some(ctx) = &ctx {
                        assert_eq!(
                            ctx.strum_quantize(&p, &q8, &ratio, &ones).unwrap(),
                            mirror,
                            "{g:?} {cfg:?}"
                        );
                    }
                }
            }
        }
        // A headroom factor rescales a channel after demotion, on both sides alike.
        let mut hr = ones.clone();
        hr[0] = 0.37;
        let p = kernels::StrumQuantParams {
            geometry: *g,
            low: g.block / 2,
            scheme: 2,
            emin: 0,
            emax: 6,
            p2_round: P2Round::Down,
            block_shift: true,
            per_channel: per,
        };
        let mirror = kernels::strum_quantize(&p, &q8, &ratio, &hr);
        if let Some(ctx) = &ctx {
            assert_eq!(ctx.strum_quantize(&p, &q8, &ratio, &hr).unwrap(), mirror);
        }
    }
}

/// `strum_decode` (GPU) = `Packed::decode` = the quantizer's integer weights, for MIP2Q,
/// DLIQ with and without block shifts and plain INT8, with padded blocks.
#[test]
fn strum_decode_matches_packed_decode() {
    use strumlab::quant::config::DliqShift;
    use strumlab::quant::{Geometry, QuantConfig, Quantizer, Scheme, WeightView};
    let Some(g) = gpu() else { return };
    let mut rng = Rng(71);
    for (oc, a, q, block) in [(5, 12, 3, 8), (4, 20, 1, 16), (2, 7, 4, 4), (3, 33, 2, 32)] {
        let w: Vec<f32> = (0..oc * a * q).map(|_| rng.normal()).collect();
        let geometry = Geometry::new(oc, a, q, block);
        for (scheme, shift) in [
            (Scheme::Mip2q, DliqShift::Block),
            (Scheme::Dliq, DliqShift::Block),
            (Scheme::Dliq, DliqShift::None),
        ] {
            for low in [0, 1, block / 2, block] {
                let cfg = QuantConfig {
                    scheme,
                    block,
                    low,
                    dliq_shift: shift,
                    ..Default::default()
                };
                let enc = strumlab::quant::schemes::Strum {
                    cfg: cfg.clone(),
                    low,
                }
                .quantize(&WeightView {
                    data: &w,
                    out_channels: oc,
                    geometry,
                })
                .unwrap();
                let pk = enc.packed.as_ref().expect("StruM encodings are packed");
                let want = kernels::strum_decode(pk);
                assert_eq!(want, enc.q, "{cfg:?}");
                assert_eq!(g.strum_decode(pk).unwrap(), want, "{geometry:?} {cfg:?}");
            }
        }
    }
}

/// A GPU engine re-quantized in place computes the same logits as the CPU engine built for
/// each setting.
#[test]
fn requantized_gpu_engine_matches_cpu_engines() {
    use strumlab::cpu::engine::{Engine, Mode};
    use strumlab::quant::config::Calib;
    use strumlab::quant::{QuantConfig, Scheme};
    let Some(g) = gpu() else { return };
    let n = 64;
    let (graph, ds, sc) = calibrated("mnist-8", "mnist-test", n);
    let base = QuantConfig {
        scheme: Scheme::Int8,
        ..Default::default()
    };
    let q0 = strumlab::quant::quantize_graph(&graph, &base).unwrap();
    let e0 = Engine::new(&graph, Mode::Integer, Some(&q0), Some(&sc)).unwrap();
    let mut ge = strumlab::gpu::engine::GpuEngine::new(&g, &e0, 64).unwrap();
    ge.enable_requantize(Calib::Max, 99.99);
    for cfg in [
        QuantConfig {
            scheme: Scheme::Mip2q,
            low: 4,
            quantize_first_last: true,
            ..Default::default()
        },
        QuantConfig {
            scheme: Scheme::Dliq,
            block: 16,
            low: 12,
            ..Default::default()
        },
        QuantConfig {
            scheme: Scheme::Mip2q,
            low: 8,
            ..Default::default()
        },
        // Weights of +-128 (anchored MIP2Q window, DLIQ 4 << 5) in every layer, the dense
        // one (packed dot products where the adapter has them) included.
        QuantConfig {
            scheme: Scheme::Mip2q,
            low: 8,
            quantize_first_last: true,
            ..Default::default()
        },
        QuantConfig {
            scheme: Scheme::Dliq,
            low: 8,
            quantize_first_last: true,
            ..Default::default()
        },
        // B = 16 > 8 input channels of conv2: the khwc order.
        QuantConfig {
            scheme: Scheme::Mip2q,
            block: 16,
            low: 8,
            ..Default::default()
        },
        base.clone(),
    ] {
        ge.requantize(&cfg).unwrap();
        let q = strumlab::quant::quantize_graph(&graph, &cfg).unwrap();
        let e = Engine::new(&graph, Mode::Integer, Some(&q), Some(&sc)).unwrap();
        let got = ge.run(&ds.images(0, n).unwrap()).unwrap();
        for (i, l) in got.iter().enumerate() {
            assert_eq!(
                l,
                &e.run(&ds.image(i).unwrap(), false).unwrap().0[0],
                "{} image {i}",
                cfg.label()
            );
        }
    }
    // A resident dataset (uploaded once, 200 images = 4 batches of up to 64, the last one
    // partial) gives the same top-1 and counts as the CPU engine.
    let m = 200;
    let labels: Vec<i32> = ds.labels.as_ref().unwrap()[..m]
        .iter()
        .map(|&y| y as i32)
        .collect();
    let resident = ge.upload(&ds.images(0, m).unwrap(), &labels).unwrap();
    let cfg = QuantConfig {
        scheme: Scheme::Dliq,
        low: 6,
        ..Default::default()
    };
    ge.requantize(&cfg).unwrap();
    let counts = ge.count_resident(&resident).unwrap();
    let top1 = ge.resident_top1(&resident).unwrap();
    let q = strumlab::quant::quantize_graph(&graph, &cfg).unwrap();
    let e = Engine::new(&graph, Mode::Integer, Some(&q), Some(&sc)).unwrap();
    let want: Vec<i32> = (0..m)
        .map(|i| {
            strumlab::eval::top_k(&e.run(&ds.image(i).unwrap(), false).unwrap().0[0], 1)[0] as i32
        })
        .collect();
    assert_eq!(top1, want);
    let hits = want.iter().zip(&labels).filter(|(a, b)| a == b).count() as u32;
    assert_eq!((counts[0], counts[3]), (hits, m as u32));
    // Settings the kernel does not cover are refused, not approximated.
    let err = ge
        .requantize(&QuantConfig {
            scheme: Scheme::Dliq,
            selection: strumlab::quant::config::Selection::Error,
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("magnitude"), "{err}");
}

/// FP32 kernels: sums may be fused or reassociated by the driver, so conv / dense / GAP
/// results may differ from the mirror by rounding; relative to the largest |value| of the
/// output this stays below FP32_KERNEL_REL_TOL (a few ulps x the reduction length).
const FP32_KERNEL_REL_TOL: f32 = 1e-5;

/// Assert `|got - want| <= tol * max|want|` elementwise; returns the largest relative diff.
fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}");
    let scale = want.iter().fold(1e-30f32, |m, v| m.max(v.abs()));
    let mut worst = 0f32;
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * scale,
            "{what}: element {i}: {a} vs {b} (scale {scale})"
        );
        worst = worst.max((a - b).abs() / scale);
    }
    worst
}

#[test]
fn float_kernels_match_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng(53);
    for &(n, c, h, w, oc, k, s, d, pad, group) in &[
        (
            2usize, 3usize, 9usize, 7usize, 4usize, 3usize, 1usize, 1usize, 1usize, 1usize,
        ),
        (1, 4, 8, 8, 4, 3, 2, 1, 1, 4),
        (3, 6, 5, 5, 8, 1, 1, 1, 0, 1),
        (1, 2, 11, 11, 3, 5, 2, 2, 3, 1),
    ] {
        let oh = (h + 2 * pad - d * (k - 1) - 1) / s + 1;
        let ow = (w + 2 * pad - d * (k - 1) - 1) / s + 1;
        let gm = ConvGeom {
            c,
            h,
            w,
            oc,
            icg: c / group,
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            dh: d,
            dw: d,
            pt: pad,
            pl: pad,
            oh,
            ow,
            group,
        };
        let x: Vec<f32> = (0..n * c * h * w).map(|_| rng.normal()).collect();
        let wt: Vec<f32> = (0..oc * (c / group) * k * k)
            .map(|_| rng.normal())
            .collect();
        let b: Vec<f32> = (0..oc).map(|_| rng.normal()).collect();
        let want = kernels::conv2d_f32(&x, &wt, &b, &gm, n);
        let _ = assert_close(
            &g.conv2d_f32(&x, &wt, &b, &gm, n).unwrap(),
            &want,
            FP32_KERNEL_REL_TOL,
            &format!("conv2d_f32 {gm:?}"),
        );
    }
    for (n, ic, oc, hw) in [(1, 16, 24, 25), (3, 7, 9, 21), (2, 32, 4, 1)] {
        let x: Vec<f32> = (0..n * ic * hw).map(|_| rng.normal()).collect();
        let wt: Vec<f32> = (0..oc * ic).map(|_| rng.normal()).collect();
        let b: Vec<f32> = (0..oc).map(|_| rng.normal()).collect();
        let _ = assert_close(
            &g.conv1x1_f32(&x, &wt, &b, n, ic, oc, hw).unwrap(),
            &kernels::conv1x1_f32(&x, &wt, &b, n, ic, oc, hw),
            FP32_KERNEL_REL_TOL,
            "conv1x1_f32",
        );
    }
    let (ic, oc, rows) = (37, 10, 5);
    let x: Vec<f32> = (0..rows * ic).map(|_| rng.normal()).collect();
    let wt: Vec<f32> = (0..oc * ic).map(|_| rng.normal()).collect();
    let b: Vec<f32> = (0..oc).map(|_| rng.normal()).collect();
    assert_close(
        &g.dense_f32(&x, &wt, &b, ic, oc).unwrap(),
        &kernels::dense_f32(&x, &wt, &b, ic, oc),
        FP32_KERNEL_REL_TOL,
        "dense_f32",
    );
    let x: Vec<f32> = (0..4000).map(|_| rng.normal() * 3.0).collect();
    let y: Vec<f32> = (0..4000).map(|_| rng.normal()).collect();
    // Exact kernels: one rounding each, the same on both sides.
    assert_eq!(
        g.fake_quant(&x, 0.05).unwrap(),
        kernels::fake_quant(&x, 0.05)
    );
    assert_eq!(
        g.clamp_f32(&x, 0.0, 6.0).unwrap(),
        kernels::clamp_f32(&x, 0.0, 6.0)
    );
    assert_eq!(g.add_f32(&x, &y).unwrap(), kernels::add_f32(&x, &y));
    assert_close(
        &g.gap_f32(&x, 40).unwrap(),
        &kernels::gap_f32(&x, 40),
        FP32_KERNEL_REL_TOL,
        "gap_f32",
    );
    let gm = ConvGeom {
        c: 10,
        h: 20,
        w: 20,
        oc: 10,
        icg: 1,
        kh: 3,
        kw: 3,
        sh: 2,
        sw: 2,
        dh: 1,
        dw: 1,
        pt: 1,
        pl: 1,
        oh: 10,
        ow: 10,
        group: 10,
    };
    assert_eq!(
        g.maxpool_f32(&x, &gm).unwrap(),
        kernels::maxpool_f32(&x, &gm)
    );
}

/// fp32 and fake-quant on the GPU agree with the CPU engine layer by layer. The tolerance is
/// relative to each layer's largest |output|: FP32 rounding differences (fused multiply-adds)
/// grow through the layers; in fake-quant mode such a difference can also move a value across
/// an INT8 rounding boundary at the next layer's input, which changes that input by one
/// quantization step, so FLOAT_LAYER_REL_TOL allows a few steps' effect.
const FLOAT_LAYER_REL_TOL: f32 = 2e-3;

/// Compare per-layer GPU outputs (`run_layers` over the first images of `ds`) with the CPU
/// engine's within FLOAT_LAYER_REL_TOL; returns the largest relative difference and the
/// number of images whose top-1 agrees.
fn compare_float_layers(
    graph: &strumlab::model::Graph,
    cpu: &strumlab::cpu::engine::Engine,
    ds: &strumlab::data::Dataset,
    got: &[(usize, Vec<f32>)],
    logits: &[Vec<f32>],
    what: &str,
) -> (f32, usize) {
    let n = logits.len();
    let (mut worst, mut agree) = (0f32, 0);
    for i in 0..n {
        let (out, obs) = cpu.run(&ds.image(i).unwrap(), true).unwrap();
        for (node, v) in got {
            let per = v.len() / n;
            let o = obs
                .iter()
                .find(|o| o.node == *node)
                .expect("layer observed");
            worst = worst.max(assert_close(
                &v[i * per..(i + 1) * per],
                &o.output,
                FLOAT_LAYER_REL_TOL,
                &format!("{what} image {i} layer {}", graph.nodes[*node].name),
            ));
        }
        agree +=
            (strumlab::eval::top_k(&logits[i], 1) == strumlab::eval::top_k(&out[0], 1)) as usize;
    }
    (worst, agree)
}

#[test]
fn float_modes_match_cpu_per_layer() {
    use strumlab::cpu::engine::{Engine, Mode};
    use strumlab::quant::{QuantConfig, Scheme};
    let Some(g) = gpu() else { return };
    let n = 64;
    let (graph, ds, sc) = calibrated("mnist-8", "mnist-test", n);
    for (mode, scheme) in [
        (Mode::Fp32, Scheme::Fp32),
        (Mode::FakeQuant, Scheme::Mip2q),
        (Mode::FakeQuant, Scheme::Dliq),
    ] {
        let q = strumlab::quant::quantize_graph(
            &graph,
            &QuantConfig {
                scheme,
                ..Default::default()
            },
        )
        .unwrap();
        let cpu = Engine::new(&graph, mode, Some(&q), (mode != Mode::Fp32).then_some(&sc)).unwrap();
        let ge = strumlab::gpu::engine::GpuEngine::new(&g, &cpu, 64).unwrap();
        let got = ge.run_layers(&ds.images(0, n).unwrap()).unwrap();
        let logits = ge.run(&ds.images(0, n).unwrap()).unwrap();
        let (worst, agree) = compare_float_layers(
            &graph,
            &cpu,
            &ds,
            &got,
            &logits,
            &format!("{mode:?} {scheme:?}"),
        );
        eprintln!(
            "{mode:?} {scheme:?}: largest per-layer difference {worst:.2e} of the layer's max |value|; top-1 agrees on {agree}/{n}"
        );
        assert!(agree >= n - 1, "{mode:?}: top-1 agrees on {agree} of {n}");
    }
}

/// The integer elementwise kernels the whole-model tests use, each against its mirror.
#[test]
fn integer_elementwise_kernels_match_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng(89);
    let i8v = |v: &[i32]| v.iter().map(|&x| x as i8).collect::<Vec<i8>>();
    let wide = |v: Vec<i8>| v.into_iter().map(|x| x as i32).collect::<Vec<i32>>();
    let a = int8s(&mut rng, 6 * 49);
    let b = int8s(&mut rng, 6 * 49);
    assert_eq!(
        g.clamp_i8(&a, 0, 100).unwrap(),
        wide(kernels::clamp_i8(&i8v(&a), 0, 100))
    );
    assert_eq!(
        g.add_i8(&a, &b, 0.7, 1.3).unwrap(),
        wide(kernels::add_i8(&i8v(&a), &i8v(&b), 0.7, 1.3))
    );
    assert_eq!(
        g.gap_i8(&a, 49, 0.013).unwrap(),
        wide(kernels::gap_i8(&i8v(&a), 49, 0.013))
    );
    let acc: Vec<i32> = (0..6 * 49)
        .map(|_| rng.below(200_001) as i32 - 100_000)
        .collect();
    let m: Vec<f32> = (0..6).map(|_| rng.normal().abs() * 1e-3).collect();
    for channel_last in [false, true] {
        assert_eq!(
            g.dequantize_acc(&acc, &m, 49, 6, channel_last).unwrap(),
            kernels::dequantize_acc(&acc, &m, 49, 6, channel_last)
        );
    }
}

#[test]
fn elementwise_and_avgpool_kernels_match_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng(61);
    let a = int8s(&mut rng, 4 * 6 * 25);
    let b = int8s(&mut rng, 4 * 6 * 25);
    let gate = int8s(&mut rng, 4 * 6);
    let i8v = |v: &[i32]| v.iter().map(|&x| x as i8).collect::<Vec<i8>>();
    let wide = |v: Vec<i8>| v.into_iter().map(|x| x as i32).collect::<Vec<i32>>();
    // LUT activations, exactly as the CPU engine builds them.
    for op in 0..3u32 {
        let lut = kernels::activation_lut(|v| kernels::unary1(v, op, 0.2, 0.5), 0.05, 1.0 / 127.0);
        let want = wide(kernels::lut_i8(&i8v(&a), &lut));
        assert_eq!(g.lut_i8(&a, &wide(lut)).unwrap(), want, "lut op {op}");
    }
    // Products: same shape, and one gate value per plane (squeeze-and-excitation).
    assert_eq!(
        g.mul_i8(&a, &b, 1, 0.013).unwrap(),
        wide(kernels::mul_i8(&i8v(&a), &i8v(&b), 1, 0.013))
    );
    assert_eq!(
        g.mul_i8(&a, &gate, 25, 0.007).unwrap(),
        wide(kernels::mul_i8(&i8v(&a), &i8v(&gate), 25, 0.007))
    );
    // Average pooling with and without padded elements counted.
    let gm = ConvGeom {
        c: 24,
        h: 5,
        w: 5,
        oc: 24,
        icg: 1,
        kh: 3,
        kw: 3,
        sh: 2,
        sw: 2,
        dh: 1,
        dw: 1,
        pt: 1,
        pl: 1,
        oh: 3,
        ow: 3,
        group: 24,
    };
    for pad in [false, true] {
        let m = kernels::avgpool_factors(0.05, 0.04, 9);
        assert_eq!(
            g.avgpool_i8(&a, &gm, pad, &m).unwrap(),
            wide(kernels::avgpool_i8(&i8v(&a), &gm, pad, &m)),
            "avgpool_i8 include_pad {pad}"
        );
        let x: Vec<f32> = (0..600).map(|_| rng.normal()).collect();
        let _ = assert_close(
            &g.avgpool_f32(&x, &gm, pad).unwrap(),
            &kernels::avgpool_f32(&x, &gm, pad),
            FP32_KERNEL_REL_TOL,
            "avgpool_f32",
        );
    }
    let x: Vec<f32> = (0..600).map(|_| rng.normal() * 4.0).collect();
    let y: Vec<f32> = (0..24).map(|_| rng.normal()).collect();
    assert_eq!(g.mul_f32(&x, &y, 25).unwrap(), kernels::mul_f32(&x, &y, 25));
    for op in 0..3u32 {
        let _ = assert_close(
            &g.unary_f32(&x, op, 0.2, 0.5).unwrap(),
            &kernels::unary_f32(&x, op, 0.2, 0.5),
            FP32_KERNEL_REL_TOL,
            &format!("unary_f32 op {op}"),
        );
    }
}

/// A small squeeze-and-excitation graph (Conv, HardSwish, AveragePool, GlobalAveragePool,
/// Sigmoid, per-channel Mul, HardSigmoid, Gemm): integer mode bit-identical to the CPU
/// engine, fp32 within FLOAT_LAYER_REL_TOL per layer.
#[test]
fn squeeze_excitation_graph_matches_cpu() {
    use common::{f32_tensor, float, int, ints, model, node};
    use strumlab::cpu::engine::{self, Engine, Mode};
    use strumlab::model::Tensor;
    use strumlab::quant::config::Calib;
    use strumlab::quant::{QuantConfig, Scheme};
    let Some(g) = gpu() else { return };
    let mut rng = Rng(67);
    let mut w = |n: usize| (0..n).map(|_| rng.normal() * 0.4).collect::<Vec<f32>>();
    let b = model(
        14,
        ("x", &[1, 3, 8, 8]),
        "y",
        vec![
            node(
                "Conv",
                "c1",
                &["x", "w1", "b1"],
                &["c1"],
                vec![ints("pads", &[1, 1, 1, 1])],
            ),
            node("HardSwish", "hs", &["c1"], &["hs"], vec![]),
            node(
                "AveragePool",
                "ap",
                &["hs"],
                &["ap"],
                vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
            ),
            node("GlobalAveragePool", "gp", &["ap"], &["gp"], vec![]),
            node("Conv", "c2", &["gp", "w2", "b2"], &["c2"], vec![]),
            node("Sigmoid", "sg", &["c2"], &["sg"], vec![]),
            node("Mul", "se", &["ap", "sg"], &["se"], vec![]),
            node(
                "HardSigmoid",
                "hg",
                &["se"],
                &["hg"],
                vec![float("alpha", 0.3), float("beta", 0.4)],
            ),
            node("Flatten", "fl", &["hg"], &["fl"], vec![int("axis", 1)]),
            node(
                "Gemm",
                "fc",
                &["fl", "w3", "b3"],
                &["y"],
                vec![int("transB", 1)],
            ),
        ],
        vec![
            f32_tensor("w1", &[4, 3, 3, 3], &w(108)),
            f32_tensor("b1", &[4], &w(4)),
            f32_tensor("w2", &[4, 4, 1, 1], &w(16)),
            f32_tensor("b2", &[4], &w(4)),
            f32_tensor("w3", &[5, 64], &w(320)),
            f32_tensor("b3", &[5], &w(5)),
        ],
    );
    let graph = strumlab::model::load_onnx_bytes(&b, "se", &Default::default()).unwrap();
    let n = 16;
    let images: Vec<f32> = (0..n * 192).map(|_| rng.normal()).collect();
    let sc = engine::calibrate(
        &graph,
        &Tensor::new(vec![n, 3, 8, 8], images.clone()),
        Calib::Max,
        100.0,
    )
    .unwrap();
    let q = strumlab::quant::quantize_graph(
        &graph,
        &QuantConfig {
            scheme: Scheme::Int8,
            ..Default::default()
        },
    )
    .unwrap();
    let cpu = Engine::new(&graph, Mode::Integer, Some(&q), Some(&sc)).unwrap();
    let ge = strumlab::gpu::engine::GpuEngine::new(&g, &cpu, n).unwrap();
    let got = ge.run(&images).unwrap();
    for i in 0..n {
        assert_eq!(
            got[i],
            cpu.run(&images[i * 192..(i + 1) * 192], false).unwrap().0[0],
            "integer image {i}"
        );
    }
    let cpu = Engine::new(&graph, Mode::Fp32, None, None).unwrap();
    let ge = strumlab::gpu::engine::GpuEngine::new(&g, &cpu, n).unwrap();
    let got = ge.run(&images).unwrap();
    for i in 0..n {
        let want = &cpu.run(&images[i * 192..(i + 1) * 192], false).unwrap().0[0];
        let _ = assert_close(
            &got[i],
            want,
            FLOAT_LAYER_REL_TOL,
            &format!("fp32 image {i}"),
        );
    }
}

#[test]
fn packed_dot_product_kernels_match_cpu() {
    let Some(g) = gpu() else { return };
    eprintln!("packed 4x8-bit dot products in the engine: {}", g.dp4a);
    let mut rng = Rng(79);
    for (rows, ic, oc) in [(3, 37, 10), (2, 8, 4), (5, 1, 7)] {
        let x = int8s(&mut rng, rows * ic);
        let w = int8s(&mut rng, oc * ic);
        let bias: Vec<i32> = (0..oc).map(|_| rng.below(2001) as i32 - 1000).collect();
        let wp = kernels::pack_i8x4(&w, oc, ic);
        assert_eq!(g.pack_i8x4(&w, oc, ic).unwrap(), wp);
        let mut want: Vec<i32> = (0..rows * oc).map(|k| bias[k % oc]).collect();
        kernels::dense(&x, &w, ic, oc, &mut want, |v| v);
        assert_eq!(kernels::dense_dp4a(&x, &wp, &bias, ic, oc), want);
        assert_eq!(
            g.dense_dp4a(&x, &wp, &bias, ic, oc).unwrap(),
            want,
            "dense {rows}x{ic}x{oc}"
        );
    }
    for (n, ic, oc, hw) in [(1, 16, 24, 25), (3, 7, 9, 21), (2, 32, 4, 1)] {
        let x = int8s(&mut rng, n * ic * hw);
        let w = int8s(&mut rng, oc * ic);
        let bias: Vec<i32> = (0..oc).map(|_| rng.below(2001) as i32 - 1000).collect();
        let wp = kernels::pack_i8x4(&w, oc, ic);
        let want = kernels::conv1x1_dp4a(&x, &wp, &bias, n, ic, oc, hw);
        let geo = ConvGeom {
            c: ic,
            h: hw,
            w: 1,
            oc,
            icg: ic,
            kh: 1,
            kw: 1,
            sh: 1,
            sw: 1,
            dh: 1,
            dw: 1,
            pt: 0,
            pl: 0,
            oh: hw,
            ow: 1,
            group: 1,
        };
        for b in 0..n {
            let mut acc: Vec<i32> = (0..oc * hw).map(|k| bias[k / hw]).collect();
            kernels::conv1x1(
                &x[b * ic * hw..(b + 1) * ic * hw],
                &w,
                &geo,
                &mut acc,
                |v| v,
            );
            assert_eq!(&want[b * oc * hw..(b + 1) * oc * hw], &acc[..]);
        }
        assert_eq!(
            g.conv1x1_dp4a(&x, &wp, &bias, n, ic, oc, hw).unwrap(),
            want,
            "conv1x1 {n}x{ic}x{oc}x{hw}"
        );
    }
}

/// The sweep path (`eval::bench_sweep`): on the GPU one engine re-quantized per
/// configuration over a resident dataset gives the CPU engine's top-1 hits exactly.
#[test]
fn gpu_sweep_path_matches_cpu() {
    use strumlab::quant::{QuantConfig, Scheme};
    let Some(g) = gpu() else { return };
    let (graph, card) =
        strumlab::zoo::resolve("mnist-8", &strumlab::model::LoadOptions::default()).unwrap();
    let mut ds = strumlab::data::load("mnist-test", &card, false).unwrap();
    ds.truncate(300);
    let configs: Vec<QuantConfig> = [(Scheme::Mip2q, 8), (Scheme::Dliq, 2), (Scheme::Int8, 4)]
        .into_iter()
        .map(|(scheme, low)| QuantConfig {
            scheme,
            low,
            quantize_first_last: true,
            ..Default::default()
        })
        .collect();
    let (cpu, _) = strumlab::eval::bench_sweep(&graph, &ds, &configs, None).unwrap();
    let (gpu, _) = strumlab::eval::bench_sweep(&graph, &ds, &configs, Some((&g, 64))).unwrap();
    assert_eq!(cpu, gpu);
    assert!(
        cpu.iter().all(|p| p.images == 300 && p.top1_hits > 250),
        "{cpu:?}"
    );
}

/// The GEMM kernels with a tile other than the default (as chosen per adapter, or by
/// STRUMLAB_GEMM_TILE): override constants and dispatch counts agree.
#[test]
fn gemm_kernels_with_other_tiles_match_cpu() {
    let Some(mut g) = gpu() else { return };
    g.tile = (8, 3);
    let mut rng = Rng(83);
    for (n, ic, oc, hw) in [(2, 9, 19, 13), (1, 16, 8, 1)] {
        let x = int8s(&mut rng, n * ic * hw);
        let w = int8s(&mut rng, oc * ic);
        let bias: Vec<i32> = (0..oc).map(|_| rng.below(2001) as i32 - 1000).collect();
        let wp = kernels::pack_i8x4(&w, oc, ic);
        let want = kernels::conv1x1_dp4a(&x, &wp, &bias, n, ic, oc, hw);
        assert_eq!(g.conv1x1_dp4a(&x, &wp, &bias, n, ic, oc, hw).unwrap(), want);
        assert_eq!(g.conv1x1(&x, &w, &bias, n, ic, oc, hw).unwrap(), want);
        let rows = n * hw;
        let xd = int8s(&mut rng, rows * ic);
        let mut want: Vec<i32> = (0..rows * oc).map(|k| bias[k % oc]).collect();
        kernels::dense(&xd, &w, ic, oc, &mut want, |v| v);
        assert_eq!(g.dense(&xd, &w, &bias, ic, oc).unwrap(), want);
        assert_eq!(g.dense_dp4a(&xd, &wp, &bias, ic, oc).unwrap(), want);
        let xf: Vec<f32> = (0..n * ic * hw).map(|_| rng.normal()).collect();
        let wf: Vec<f32> = (0..oc * ic).map(|_| rng.normal()).collect();
        let bf: Vec<f32> = (0..oc).map(|_| rng.normal()).collect();
        let _ = assert_close(
            &g.conv1x1_f32(&xf, &wf, &bf, n, ic, oc, hw).unwrap(),
            &kernels::conv1x1_f32(&xf, &wf, &bf, n, ic, oc, hw),
            FP32_KERNEL_REL_TOL,
            "conv1x1_f32 8x3",
        );
    }
}

#[test]
fn large_dispatches_are_split() {
    let Some(g) = gpu() else { return };
    // more workgroups than one dimension allows on most adapters (64 x 70000 invocations)
    let n = 64 * 70_000;
    let x: Vec<f32> = (0..n).map(|i| (i % 1000) as f32 - 500.0).collect();
    let got = g.quantize(&x, 2.0).unwrap();
    let want: Vec<i32> = kernels::quantize(&x, 2.0)
        .into_iter()
        .map(|v| v as i32)
        .collect();
    assert_eq!(got, want);
}

fn integer_engine_pair(
    model: &str,
    data_name: &str,
    scheme: strumlab::quant::Scheme,
    calib: usize,
    n: usize,
) {
    use strumlab::cpu::engine::{self, Engine, Mode};
    use strumlab::model::{LoadOptions, Tensor};
    use strumlab::quant::config::Calib;
    let Some(mut g) = gpu() else { return };
    let (graph, card) = strumlab::zoo::resolve(model, &LoadOptions::default()).unwrap();
    let ds = strumlab::data::load(data_name, &card, false).unwrap();
    // Both paths for dense and pointwise layers: packed dot products (when the adapter
    // has them) and the portable kernels.
    for dp4a in [g.dp4a, false] {
        g.dp4a = dp4a;
        let q = strumlab::quant::quantize_graph(
            &graph,
            &strumlab::quant::QuantConfig {
                scheme,
                ..Default::default()
            },
        )
        .unwrap();
        let mut shape = ds.shape.clone();
        shape[0] = calib;
        let sc = engine::calibrate(
            &graph,
            &Tensor::new(shape, ds.images(0, calib).unwrap()),
            Calib::Max,
            100.0,
        )
        .unwrap();
        let cpu = Engine::new(&graph, Mode::Integer, Some(&q), Some(&sc)).unwrap();
        let ge = strumlab::gpu::engine::GpuEngine::new(&g, &cpu, 64).unwrap();
        let n = n.min(ds.len());
        let mut done = 0;
        while done < n {
            let m = ge.batch.min(n - done);
            let got = ge.run(&ds.images(done, done + m).unwrap()).unwrap();
            for (k, logits) in got.iter().enumerate() {
                let want = &cpu.run(&ds.image(done + k).unwrap(), false).unwrap().0[0];
                assert_eq!(
                    logits,
                    want,
                    "{model} {scheme:?}: image {} differs",
                    done + k
                );
            }
            // The on-GPU reduction agrees with top-k of the CPU engine's logits.
            let labels: Vec<i32> = (done..done + m)
                .map(|i| ds.labels.as_ref().map_or(-1, |l| l[i] as i32))
                .collect();
            let reference: Vec<i32> = got
                .iter()
                .map(|l| strumlab::eval::top_k(l, 1)[0] as i32)
                .collect();
            let (top1, counts) = ge
                .run_topk(&ds.images(done, done + m).unwrap(), &labels, &reference)
                .unwrap();
            assert_eq!(top1, reference, "{model} {scheme:?}: on-GPU top-1");
            let hits5 = got
                .iter()
                .zip(&labels)
                .filter(|(l, y)| **y >= 0 && strumlab::eval::top_k(l, 5).contains(&(**y as usize)))
                .count() as u32;
            let hits1 = top1.iter().zip(&labels).filter(|(t, y)| t == y).count() as u32;
            let labelled = labels.iter().filter(|y| **y >= 0).count() as u32;
            assert_eq!(counts, [hits1, hits5, m as u32, labelled]);
            done += m;
        }
        if !dp4a {
            break;
        }
    }
}

#[test]
fn whole_mnist8_integer_is_bit_identical_to_cpu() {
    for scheme in [
        strumlab::quant::Scheme::Int8,
        strumlab::quant::Scheme::Mip2q,
        strumlab::quant::Scheme::Dliq,
    ] {
        integer_engine_pair("mnist-8", "mnist-test", scheme, 64, 300);
    }
}

#[test]
fn whole_effnet_lite0_integer_is_bit_identical_to_cpu() {
    if !strumlab::data::cache_dir()
        .join("efficientnet-lite0.pth")
        .is_file()
    {
        assert!(
            std::env::var_os("STRUMLAB_REQUIRE_ASSETS").is_none(),
            "EfficientNet-Lite0 not fetched"
        );
        eprintln!("skipping: run scripts/fetch-assets.sh");
        return;
    }
    integer_engine_pair(
        "effnet-lite0",
        "imagenet-samples",
        strumlab::quant::Scheme::Mip2q,
        8,
        4,
    );
}

#[test]
fn unsupported_ops_are_named() {
    use strumlab::cpu::engine::{Engine, Mode};
    let Some(g) = gpu() else { return };
    use common::{f32_tensor, model, node};
    // Conv -> Softmax: the CPU engine runs it, the GPU engine has no Softmax kernel.
    let b = model(
        13,
        ("x", &[1, 1, 3, 3]),
        "y",
        vec![
            node("Conv", "c", &["x", "w"], &["h"], vec![]),
            node("Softmax", "the_softmax", &["h"], &["y"], vec![]),
        ],
        vec![f32_tensor("w", &[2, 1, 3, 3], &[0.5; 18])],
    );
    let graph = strumlab::model::load_onnx_bytes(&b, "t", &Default::default()).unwrap();
    let cpu = Engine::new(&graph, Mode::Fp32, None, None).unwrap();
    cpu.run(&[1.0; 9], false).unwrap();
    let e = strumlab::gpu::engine::GpuEngine::new(&g, &cpu, 8)
        .err()
        .expect("Softmax is not on the GPU")
        .to_string();
    assert!(e.contains("the_softmax") && e.contains("Softmax"), "{e}");
}

#[test]
fn devices_and_gpu_bench_commands_run() {
    let Some(_g) = gpu() else { return };
    let bin = env!("CARGO_BIN_EXE_strumlab");
    let o = std::process::Command::new(bin)
        .args(["devices", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!v["adapters"].as_array().unwrap().is_empty());
    let o = std::process::Command::new(bin)
        .args([
            "bench", "--device", "gpu", "--scheme", "mip2q", "--images", "64", "--repeat", "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["images_per_s"].as_f64().unwrap() > 0.0);
    // fp32 on the GPU runs too
    let o = std::process::Command::new(bin)
        .args([
            "bench", "--device", "gpu", "--mode", "fp32", "--images", "64", "--repeat", "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["mode"], "fp32");
    assert!(v["images_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn conv1x1_matches_cpu_across_tile_edges() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng(21);
    for (n, ic, oc, h, w) in [(1, 16, 24, 5, 5), (3, 7, 9, 3, 7), (2, 32, 4, 1, 1)] {
        let x = int8s(&mut rng, n * ic * h * w);
        let wt = int8s(&mut rng, oc * ic);
        let bias: Vec<i32> = (0..oc).map(|_| rng.below(2001) as i32 - 1000).collect();
        let geo = ConvGeom {
            c: ic,
            h,
            w,
            oc,
            icg: ic,
            kh: 1,
            kw: 1,
            sh: 1,
            sw: 1,
            dh: 1,
            dw: 1,
            pt: 0,
            pl: 0,
            oh: h,
            ow: w,
            group: 1,
        };
        let mut want = Vec::new();
        for b in 0..n {
            let mut acc: Vec<i32> = bias
                .iter()
                .flat_map(|&v| std::iter::repeat_n(v, h * w))
                .collect();
            kernels::conv1x1(
                &x[b * ic * h * w..(b + 1) * ic * h * w],
                &wt,
                &geo,
                &mut acc,
                |v| v,
            );
            want.extend(acc);
        }
        assert_eq!(
            g.conv1x1(&x, &wt, &bias, n, ic, oc, h * w).unwrap(),
            want,
            "{n}x{ic}x{h}x{w} -> {oc}"
        );
    }
}

#[test]
fn eval_on_gpu_reports_the_same_numbers_as_on_cpu() {
    let Some(_g) = gpu() else { return };
    let bin = env!("CARGO_BIN_EXE_strumlab");
    let run = |dev: &str| -> serde_json::Value {
        let o = std::process::Command::new(bin)
            .args([
                "eval",
                "--scheme",
                "dliq",
                "--limit",
                "500",
                "--stats-images",
                "100",
                "--device",
                dev,
                "--json",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let (c, g) = (run("cpu"), run("gpu"));
    for k in ["top1", "top5", "agreement_top1", "kl_mean", "images"] {
        assert_eq!(c["summary"][k], g["summary"][k], "{k}");
    }
    assert_eq!(c["device"], "cpu");
    assert!(g["device"].as_str().unwrap() != "cpu");
    assert_eq!(
        (
            c["layer_stats_images"].as_u64(),
            g["layer_stats_images"].as_u64()
        ),
        (Some(500), Some(100))
    );
    // fake-quant on the GPU: FP32 kernels, so a driver that fuses multiply-adds may flip an
    // image whose top two logits are within rounding; allow one image of 500.
    let run_fq = |dev: &str| -> serde_json::Value {
        let o = std::process::Command::new(bin)
            .args([
                "eval",
                "--scheme",
                "mip2q",
                "--mode",
                "fake-quant",
                "--limit",
                "500",
                "--device",
                dev,
                "--json",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let (c, g) = (run_fq("cpu"), run_fq("gpu"));
    assert_eq!(g["mode"], "fake-quant");
    assert!(g["device"].as_str().unwrap() != "cpu");
    let d = (c["summary"]["top1"].as_f64().unwrap() - g["summary"]["top1"].as_f64().unwrap()).abs();
    assert!(d <= 1.0 / 500.0 + 1e-12, "fake-quant top-1 differs by {d}");
}

/// EfficientNet-Lite0 (depthwise, pointwise, residual adds, ReLU6) in fake-quant mode on the
/// GPU against the CPU engine, layer by layer (FLOAT_LAYER_REL_TOL; the CPU computes
/// pointwise convs in another summation order than the direct GPU kernel).
#[test]
fn effnet_lite0_fake_quant_matches_cpu_per_layer() {
    use strumlab::cpu::engine::{Engine, Mode};
    use strumlab::quant::{QuantConfig, Scheme};
    if !strumlab::data::cache_dir()
        .join("efficientnet-lite0.pth")
        .exists()
    {
        assert!(
            std::env::var_os("STRUMLAB_REQUIRE_ASSETS").is_none(),
            "STRUMLAB_REQUIRE_ASSETS is set but EfficientNet-Lite0 is not fetched"
        );
        eprintln!("skipping: EfficientNet-Lite0 not fetched (scripts/fetch-assets.sh)");
        return;
    }
    let Some(g) = gpu() else { return };
    let n = 4;
    let (graph, ds, sc) = calibrated("effnet-lite0", "imagenet-samples", n);
    let x = &ds.images(0, n).unwrap();
    let q = strumlab::quant::quantize_graph(
        &graph,
        &QuantConfig {
            scheme: Scheme::Dliq,
            ..Default::default()
        },
    )
    .unwrap();
    let cpu = Engine::new(&graph, Mode::FakeQuant, Some(&q), Some(&sc)).unwrap();
    let ge = strumlab::gpu::engine::GpuEngine::new(&g, &cpu, n).unwrap();
    let got = ge.run_layers(x).unwrap();
    let logits = ge.run(x).unwrap();
    let (worst, _) = compare_float_layers(&graph, &cpu, &ds, &got, &logits, "Lite0 fake-quant");
    eprintln!("EfficientNet-Lite0 fake-quant: largest per-layer difference {worst:.2e}");
}

/// `eval --check-cpu`: the GPU run is checked image by image against the CPU engine (the
/// command fails on any difference); scripts/check-gpu.sh runs it on whole datasets.
#[test]
fn eval_check_cpu_confirms_agreement() {
    let Some(_g) = gpu() else { return };
    let bin = env!("CARGO_BIN_EXE_strumlab");
    for (scheme, mode) in [("mip2q", "integer"), ("dliq", "fake-quant")] {
        let o = std::process::Command::new(bin)
            .args([
                "eval",
                "--scheme",
                scheme,
                "--mode",
                mode,
                "--limit",
                "300",
                "--device",
                "gpu",
                "--check-cpu",
                "--json",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["summary"]["gpu_cpu_mismatches"], 0, "{scheme} {mode}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("agree on all 300 images"));
    }
    // Asking for the check without the GPU is an error, not a silent pass.
    let o = std::process::Command::new(bin)
        .args(["eval", "--limit", "10", "--device", "cpu", "--check-cpu"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("check-cpu"));
}

/// Weights of +128 (DLIQ 4 << 5 at L = B, MIP2Q 2^7 with the window [1, 7] or the anchored
/// default) cannot be packed into signed bytes for the packed dot-product kernels: the GPU
/// engine runs such layers with the portable kernels and stays bit-identical to the CPU.
#[test]
fn weights_of_128_agree_with_cpu_on_mobilenetv2() {
    let Some(_g) = gpu() else { return };
    let bin = env!("CARGO_BIN_EXE_strumlab");
    for args in [
        vec!["--scheme", "dliq", "--low", "8"],
        vec![
            "--scheme",
            "mip2q",
            "--low",
            "8",
            "--p2-min-exp",
            "1",
            "--p2-max-exp",
            "7",
        ],
        vec!["--scheme", "mip2q", "--low", "8"],
    ] {
        let o = std::process::Command::new(bin)
            .args(["eval", "--model", "fmnist-mobilenetv2", "--limit", "50"])
            .args(&args)
            .args(["--device", "gpu", "--check-cpu", "--json", "-q"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["summary"]["gpu_cpu_mismatches"], 0, "{args:?}");
        assert_eq!(v["summary"]["images"], 50, "{args:?}");
    }
}

/// One meaning of `--device`: cpu opens nothing, gpu takes any adapter, auto only a
/// hardware one (lavapipe is slower than the CPU engine).
#[test]
fn device_auto_takes_hardware_adapters_only() {
    use strumlab::exec::Device;
    let Some(g) = gpu() else { return };
    assert!(GpuContext::for_device(Device::Cpu, true).unwrap().is_none());
    assert!(GpuContext::for_device(Device::Gpu, true).unwrap().is_some());
    let auto = GpuContext::for_device(Device::Auto, true).unwrap();
    assert_eq!(auto.is_some(), g.is_hardware(), "{}", g.info.name);
}
