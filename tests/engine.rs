//! The CPU engine against the reference interpreter, its integer mode, the activity
//! statistics, and the pinned FP32 accuracy of mnist-8 on the vendored MNIST test set.

mod common;

use std::collections::HashMap;

use common::*;
use strumlab::cpu::engine::{self, Engine, Mode};
use strumlab::cpu::kernels::{self, ConvGeom};
use strumlab::cpu::reference;
use strumlab::data::{self, ModelCard};
use strumlab::eval::{RunConfig, evaluate};
use strumlab::model::{Conv, LoadOptions, Tensor, load_onnx, load_onnx_bytes};
use strumlab::quant::config::Calib;
use strumlab::quant::{QuantConfig, Scheme, quantize_graph};

fn mnist() -> (strumlab::model::Graph, data::Dataset) {
    let g = load_onnx(&data("mnist-8.onnx"), &LoadOptions::default()).unwrap();
    let card = ModelCard::load(&data("../models/mnist-8.toml")).unwrap();
    (g, data::load("mnist-test", &card, false).unwrap())
}

fn cfg(scheme: Scheme, mode: Mode) -> RunConfig {
    RunConfig {
        quant: QuantConfig {
            scheme,
            ..Default::default()
        },
        mode,
        calib: strumlab::run::ActCalib {
            images: 64,
            method: Calib::Max,
            percentile: 99.99,
        },
        quiet: true,
        check_reference: false,
        ..Default::default()
    }
}

#[test]
fn conv_kernel_matches_reference_on_many_geometries() {
    let mut rng = Rng(7);
    // (c, h, w, oc, group, k, stride, dilation, pads)
    let cases = [
        (3, 7, 9, 4, 1, [3, 3], [1, 1], [1, 1], [1, 1, 1, 1]),
        (4, 8, 8, 4, 4, [3, 3], [2, 2], [1, 1], [0, 0, 1, 1]),
        (6, 9, 5, 4, 2, [3, 1], [2, 1], [2, 1], [2, 0, 1, 0]),
        (2, 5, 5, 3, 1, [5, 5], [1, 1], [1, 1], [2, 2, 2, 2]),
        (1, 4, 4, 2, 1, [2, 2], [3, 3], [1, 1], [1, 1, 0, 0]),
        (3, 6, 11, 2, 1, [1, 3], [1, 2], [1, 3], [0, 3, 0, 3]),
        // pointwise: the GEMM path (tile edges: 7 output channels, 300 pixels)
        (5, 15, 20, 7, 1, [1, 1], [1, 1], [1, 1], [0, 0, 0, 0]),
        (3, 2, 2, 9, 1, [1, 1], [1, 1], [1, 1], [0, 0, 0, 0]),
    ];
    for (c, h, w, oc, group, k, s, d, pads) in cases {
        let icg = c / group;
        let weight = Tensor::new(
            vec![oc, icg, k[0], k[1]],
            (0..oc * icg * k[0] * k[1]).map(|_| rng.normal()).collect(),
        );
        let conv = Conv {
            weight,
            bias: (0..oc).map(|_| rng.normal()).collect(),
            strides: s,
            dilations: d,
            pads,
            group,
        };
        let x = Tensor::new(
            vec![1, c, h, w],
            (0..c * h * w)
                .map(|_| if rng.below(3) == 0 { 0.0 } else { rng.normal() })
                .collect(),
        );
        let want = reference::conv2d(&x, &conv, &conv.weight.data);
        let g = ConvGeom {
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
            oh: want.shape[2],
            ow: want.shape[3],
            group,
        };
        let per = g.oh * g.ow;
        let mut acc: Vec<f32> = conv
            .bias
            .iter()
            .flat_map(|&b| std::iter::repeat_n(b, per))
            .collect();
        kernels::conv2d(&x.data, &conv.weight.data, &g, &mut acc, |v| v);
        // Same accumulation order as the reference: bit-identical.
        assert_eq!(
            acc, want.data,
            "geometry {c}x{h}x{w} -> {oc}, k {k:?} s {s:?} d {d:?} pads {pads:?}"
        );
        // Zero-skipping statistics against brute force.
        let nz: Vec<bool> = x.data.iter().map(|&v| v != 0.0).collect();
        let taps = kernels::nonzero_taps(&nz, &g);
        for ci in 0..c {
            for ky in 0..k[0] {
                for kx in 0..k[1] {
                    let mut n = 0;
                    for y in 0..g.oh {
                        for xo in 0..g.ow {
                            let iy = (y * s[0] + ky * d[0]) as isize - pads[0] as isize;
                            let ix = (xo * s[1] + kx * d[1]) as isize - pads[1] as isize;
                            if iy >= 0
                                && ix >= 0
                                && (iy as usize) < h
                                && (ix as usize) < w
                                && nz[(ci * h + iy as usize) * w + ix as usize]
                            {
                                n += 1;
                            }
                        }
                    }
                    assert_eq!(taps[(ci * k[0] + ky) * k[1] + kx], n);
                }
            }
        }
    }
}

#[test]
fn engine_fp32_matches_reference_on_mnist() {
    let (g, ds) = mnist();
    let e = Engine::new(&g, Mode::Fp32, None, None).unwrap();
    for i in 0..50 {
        let (out, _) = e.run(&ds.image(i).unwrap(), false).unwrap();
        let x = Tensor::new(ds.shape.clone(), ds.image(i).unwrap());
        let want = &reference::run(&g, &x, &HashMap::new()).unwrap()[0];
        let scale = want.data.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (a, b) in out[0].iter().zip(&want.data) {
            // Only the dense layer's summation order differs (bias added first vs last).
            assert!((a - b).abs() <= 1e-5 * scale, "image {i}: {a} vs {b}");
        }
    }
}

#[test]
fn mnist8_fp32_accuracy_is_pinned() {
    // onnxruntime 1.31 classifies 9891 of the 10,000 MNIST test images correctly.
    let (g, ds) = mnist();
    let r = evaluate(&g, "mnist-8", &ds, &cfg(Scheme::Fp32, Mode::Fp32)).unwrap();
    assert_eq!(r.summary.images, 10_000);
    assert_eq!(r.summary.top1, Some(0.9891));
    assert_eq!(r.summary.agreement_top1.unwrap(), 1.0);
    assert_eq!(r.summary.kl_mean.unwrap(), 0.0);
}

#[test]
fn integer_mode_is_deterministic_and_accurate() {
    let (g, mut ds) = mnist();
    ds.truncate(2000);
    let a = evaluate(&g, "mnist-8", &ds, &cfg(Scheme::Int8, Mode::Integer)).unwrap();
    let b = evaluate(&g, "mnist-8", &ds, &cfg(Scheme::Int8, Mode::Integer)).unwrap();
    assert_eq!(a.summary.top1, b.summary.top1);
    assert_eq!(
        a.summary.kl_mean.unwrap().to_bits(),
        b.summary.kl_mean.unwrap().to_bits(),
        "parallel reduction is order-independent"
    );
    let top1 = a.summary.top1.unwrap();
    let fp = a.summary.fp32_top1.unwrap();
    assert!((top1 - fp).abs() <= 0.005, "INT8 {top1} vs FP32 {fp}");
    assert!(a.summary.agreement_top1.unwrap() >= 0.99);
    // Same logits twice, image by image.
    let q = quantize_graph(
        &g,
        &QuantConfig {
            scheme: Scheme::Mip2q,
            ..Default::default()
        },
    )
    .unwrap();
    let calib = Tensor::new(vec![64, 1, 28, 28], ds.images(0, 64).unwrap());
    let sc = engine::calibrate(&g, &calib, Calib::Max, 100.0).unwrap();
    let e = Engine::new(&g, Mode::Integer, Some(&q), Some(&sc)).unwrap();
    for i in 0..20 {
        let (x, _) = e.run(&ds.image(i).unwrap(), false).unwrap();
        let (y, _) = e.run(&ds.image(i).unwrap(), false).unwrap();
        assert_eq!(x, y);
    }
}

#[test]
fn fake_quant_and_integer_agree_closely() {
    let (g, mut ds) = mnist();
    ds.truncate(1000);
    for scheme in [Scheme::Int8, Scheme::Mip2q, Scheme::Dliq] {
        let f = evaluate(&g, "mnist-8", &ds, &cfg(scheme, Mode::FakeQuant)).unwrap();
        let i = evaluate(&g, "mnist-8", &ds, &cfg(scheme, Mode::Integer)).unwrap();
        // Integer mode also quantizes intermediate tensors; the two differ by a few images.
        assert!(
            (f.summary.top1.unwrap() - i.summary.top1.unwrap()).abs() <= 0.01,
            "{scheme:?}"
        );
        assert!(
            f.summary.agreement_top1.unwrap() >= 0.98 && i.summary.agreement_top1.unwrap() >= 0.98,
            "{scheme:?}"
        );
    }
}

#[test]
fn activity_statistics_are_consistent() {
    let (g, mut ds) = mnist();
    ds.truncate(200);
    let r = evaluate(&g, "mnist-8", &ds, &cfg(Scheme::Mip2q, Mode::Integer)).unwrap();
    for l in &r.layers {
        let dense = l.macs_w_high_per_image + l.macs_w_low_per_image + l.macs_w_zero_per_image;
        assert!(
            (dense - l.macs_per_image).abs() < 1e-6,
            "{}: {dense} vs {}",
            l.name,
            l.macs_per_image
        );
        assert!(l.macs_nz_act_w_high_per_image <= l.macs_w_high_per_image);
        assert!(l.macs_nz_act_w_low_per_image <= l.macs_w_low_per_image);
        assert!(
            (0.0..=1.0).contains(&l.act_zero_frac) && (0.0..=1.0).contains(&l.weight_zero_frac)
        );
    }
    // The StruM layer (B = 8, L = 4) pairs about half of its MACs with low-precision weights.
    let mid = &r.layers[1];
    assert_eq!(mid.applied, "mip2q-l4");
    let low = mid.macs_w_low_per_image / mid.macs_per_image;
    assert!((0.45..=0.5).contains(&low), "{low}");
    // MNIST digits are mostly background: the first layer's input is mostly zeros.
    assert!(r.layers[0].act_zero_frac > 0.7);
}

#[test]
fn activity_counts_on_a_hand_checked_layer() {
    // 1 -> 1 channel, 3x3 kernel, pad 1 over a 3x3 input with 4 zeros.
    let w = [1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 4.0, 0.0, 5.0];
    let b = model(
        13,
        ("x", &[1, 1, 3, 3]),
        "y",
        vec![node(
            "Conv",
            "c",
            &["x", "w"],
            &["y"],
            vec![ints("pads", &[1, 1, 1, 1])],
        )],
        vec![f32_tensor("w", &[1, 1, 3, 3], &w)],
    );
    let g = load_onnx_bytes(&b, "t", &LoadOptions::default()).unwrap();
    let x = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0];
    let e = Engine::new(&g, Mode::Fp32, None, None).unwrap();
    let (_, obs) = e.run(&x, true).unwrap();
    let o = &obs[0];
    assert_eq!(o.act_elems, 9);
    assert_eq!(o.act_zeros, 4);
    // Dense: 9 outputs x (5 non-zero + 4 zero weights).
    assert_eq!(o.pairs_dense, [45, 0, 36]);
    // Brute force: for every output and tap, count in-bounds non-zero inputs by weight class.
    let mut want = [0u64; 3];
    for y in 0..3i32 {
        for xo in 0..3i32 {
            for ky in 0..3i32 {
                for kx in 0..3i32 {
                    let (iy, ix) = (y + ky - 1, xo + kx - 1);
                    if (0..3).contains(&iy)
                        && (0..3).contains(&ix)
                        && x[(iy * 3 + ix) as usize] != 0.0
                    {
                        want[if w[(ky * 3 + kx) as usize] != 0.0 {
                            0
                        } else {
                            2
                        }] += 1;
                    }
                }
            }
        }
    }
    assert_eq!(o.pairs_nz, want);
    assert_eq!(want, [13, 0, 12]);
}
