//! The batched integer executor (`cpu::fast`) against the per-image engine with the
//! reference kernels (the oracle), bit for bit: every logit, every layer output of the
//! unfused program, and the per-layer activity counts, on the vendored zoo models with
//! INT8, MIP2Q and DLIQ (L = B gives +128 weights), batch sizes that leave partial tiles,
//! with the machine's kernels and with the portable ones.

mod common;

use strumlab::cpu::engine::{self, Engine, Kernels, Mode};
use strumlab::cpu::fast::{self, Activity, Arena, Isa, Observe, Program};
use strumlab::model::{LoadOptions, Tensor};
use strumlab::quant::config::Calib;
use strumlab::quant::{QuantConfig, Scheme, quantize_graph};

fn configs() -> Vec<QuantConfig> {
    let base = QuantConfig::default();
    vec![
        QuantConfig {
            scheme: Scheme::Int8,
            ..base.clone()
        },
        QuantConfig {
            scheme: Scheme::Mip2q,
            low: 4,
            ..base.clone()
        },
        QuantConfig {
            scheme: Scheme::Dliq,
            low: 8,
            ..base.clone()
        },
    ]
}

/// Compare the program with the reference engine on the first `n` images in batches of
/// `batch`; returns how many weights of +128 the packed layers held.
fn check(model: &str, cfg: &QuantConfig, n: usize, batch: usize, isa: Isa) -> usize {
    let (g, card) = strumlab::zoo::resolve(model, &LoadOptions::default()).expect("model");
    let data = strumlab::data::load(&card.dataset, &card, false).expect("data");
    let n = n.min(data.len());
    let nc = 64.min(data.len());
    let mut cshape = data.shape.clone();
    cshape[0] = nc;
    let calib = Tensor::new(cshape, data.images(0, nc).unwrap());
    let scales = engine::calibrate(&g, &calib, Calib::Max, 100.0).expect("scales");
    let q = quantize_graph(&g, cfg).expect("quantize");
    let e = Engine::new(&g, Mode::Integer, Some(&q), Some(&scales))
        .expect("engine")
        .with_kernels(Kernels::Reference);
    let fused = Program::compile(e.plan(), true, isa).expect("compiles fused");
    let plain = Program::compile(e.plan(), false, isa).expect("compiles unfused");
    let plus128: usize = plain
        .ops
        .iter()
        .filter_map(|op| match op {
            fast::compile::FOp::Layer {
                kernel: fast::compile::Kernel::Gemm { pw, .. },
                ..
            } => Some(pw.iter().map(|w| w.fix.len()).sum::<usize>()),
            _ => None,
        })
        .sum();
    let mut af = Arena::new(&fused, batch);
    let mut ap = Arena::new(&plain, batch);
    let mut act = Activity::new(plain.stats.len());
    let mut i = 0;
    while i < n {
        let m = batch.min(n - i);
        let x = &data.images(i, i + m).unwrap();
        let lf = fused.run(&mut af, x, m, &mut Observe::default());
        let mut outs = Vec::new();
        let lp = plain.run(
            &mut ap,
            x,
            m,
            &mut Observe {
                activity: Some(&mut act),
                outputs: Some(&mut outs),
            },
        );
        assert_eq!(
            lf,
            lp,
            "{model} {}: fused and unfused programs differ",
            cfg.label()
        );
        let k = fused.out_len();
        for b in 0..m {
            let (r, obs) = e
                .run(&data.image(i + b).unwrap(), true)
                .expect("reference run");
            assert_eq!(
                &lf[b * k..(b + 1) * k],
                &r[0][..],
                "{model} {} image {}: logits differ from the reference kernels",
                cfg.label(),
                i + b
            );
            for (l, o) in obs.iter().enumerate() {
                assert_eq!(outs[b][l], o.output, "{model} image {} layer {l}", i + b);
            }
        }
        i += m;
    }
    // activity against the reference engine's observations, summed over the same images
    let e2 = Engine::new(&g, Mode::Integer, Some(&q), Some(&scales)).expect("engine");
    for b in 0..n {
        let obs = e2
            .run_activity(&data.image(b).unwrap(), false)
            .expect("run")
            .1;
        for (l, o) in obs.iter().enumerate() {
            act.act_elems[l] -= o.act_elems;
            act.act_zeros[l] -= o.act_zeros;
        }
    }
    assert!(
        act.act_elems.iter().all(|&v| v == 0),
        "{model}: activation counts differ"
    );
    assert!(
        act.act_zeros.iter().all(|&v| v == 0),
        "{model}: zero counts differ"
    );
    plus128
}

/// MACs by class on non-zero activations, fast activity vs the reference engine.
fn check_pairs(model: &str) {
    let (g, card) = strumlab::zoo::resolve(model, &LoadOptions::default()).expect("model");
    let data = strumlab::data::load(&card.dataset, &card, false).expect("data");
    let nc = 64.min(data.len());
    let mut cshape = data.shape.clone();
    cshape[0] = nc;
    let calib = Tensor::new(cshape, data.images(0, nc).unwrap());
    let scales = engine::calibrate(&g, &calib, Calib::Max, 100.0).expect("scales");
    let cfg = &configs()[1];
    let q = quantize_graph(&g, cfg).expect("quantize");
    let e = Engine::new(&g, Mode::Integer, Some(&q), Some(&scales)).expect("engine");
    let p = Program::compile(e.plan(), true, Isa::detect()).expect("compiles");
    let mut a = Arena::new(&p, 16);
    let mut act = Activity::new(p.stats.len());
    let n = 40;
    for i in (0..n).step_by(16) {
        let m = 16.min(n - i);
        p.run(
            &mut a,
            &data.images(i, i + m).unwrap(),
            m,
            &mut Observe {
                activity: Some(&mut act),
                outputs: None,
            },
        );
    }
    let mut want = vec![[0u64; 3]; p.stats.len()];
    for i in 0..n {
        for (l, o) in e
            .run_activity(&data.image(i).unwrap(), false)
            .unwrap()
            .1
            .iter()
            .enumerate()
        {
            for c in 0..3 {
                want[l][c] += o.pairs_nz[c];
            }
        }
    }
    for (l, s) in p.stats.iter().enumerate() {
        assert_eq!(act.pairs_nz(l, &s.class_hist), want[l], "{model} layer {l}");
    }
    assert_eq!(act.images, n as u64);
}

#[test]
fn zoo_models_match_the_reference_kernels_bit_for_bit() {
    let mut plus128 = 0;
    for model in [
        "mnist-8",
        "fmnist-resnet",
        "fmnist-mobilenetv2",
        "fmnist-vgg",
    ] {
        for cfg in configs() {
            for isa in [Isa::detect(), Isa::Portable] {
                plus128 += check(model, &cfg, 45, 13, isa);
            }
        }
    }
    // DLIQ at L = B reaches +128 on these models: the correction path ran
    assert!(plus128 > 0, "no +128 weight was exercised");
}

#[test]
fn batch_sizes_1_to_67() {
    for batch in [1, 2, 7, 64, 67] {
        check("fmnist-resnet", &configs()[1], 70, batch, Isa::detect());
    }
}

#[test]
fn activity_pairs_match_the_reference() {
    for model in [
        "mnist-8",
        "fmnist-resnet",
        "fmnist-mobilenetv2",
        "fmnist-vgg",
    ] {
        check_pairs(model);
    }
}

#[test]
fn efficientnet_lite0_matches_when_fetched() {
    if strumlab::zoo::resolve("effnet-lite0", &LoadOptions::default()).is_err() {
        assert!(
            std::env::var("STRUMLAB_REQUIRE_ASSETS").is_err(),
            "effnet-lite0 missing"
        );
        return;
    }
    for cfg in configs() {
        check("effnet-lite0", &cfg, 5, 3, Isa::detect());
    }
}

mod geometries {
    //! Random Conv geometries (groups, depthwise, dilation, asymmetric padding, strides, odd
    //! sizes, C_in = 1 and 3), followed by ReLU, a max pool whose edge windows may lie
    //! entirely in the padding (-128), a flatten and a dense head, through the batched
    //! executor and the reference kernels: every logit equal.
    use super::common::{self, f32_tensor, ints, model, node};
    use proptest::prelude::*;
    use strumlab::cpu::engine::{self, Engine, Kernels, Mode};
    use strumlab::cpu::fast::{Arena, Isa, Observe, Program};
    use strumlab::model::{LoadOptions, Tensor, load_onnx_bytes};
    use strumlab::quant::config::{Calib, Depthwise};
    use strumlab::quant::{QuantConfig, Scheme, quantize_graph};

    fn rand_f32(rng: &mut common::Rng, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| ((rng.next() % 2001) as f32 / 1000.0 - 1.0) * scale)
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn graph(
        (group, icg, ocg): (usize, usize, usize),
        (h, w): (usize, usize),
        (kh, kw, s, d): (usize, usize, usize, usize),
        pads: [usize; 4],
        pool_pad: usize,
        seed: u64,
    ) -> Option<(Vec<u8>, usize)> {
        let (c, oc) = (group * icg, group * ocg);
        let span = |k: usize| d * (k - 1) + 1;
        if h + pads[0] + pads[2] < span(kh) || w + pads[1] + pads[3] < span(kw) {
            return None;
        }
        let oh = (h + pads[0] + pads[2] - span(kh)) / s + 1;
        let ow = (w + pads[1] + pads[3] - span(kw)) / s + 1;
        if oh + 2 * pool_pad < 2 || ow + 2 * pool_pad < 2 {
            return None;
        }
        let ph = (oh + 2 * pool_pad - 2) / 2 + 1;
        let pw = (ow + 2 * pool_pad - 2) / 2 + 1;
        let feat = oc * ph * pw;
        let mut rng = common::Rng(seed | 1);
        let wt = rand_f32(&mut rng, oc * icg * kh * kw, 1.0);
        let b = rand_f32(&mut rng, oc, 0.3);
        let fc = rand_f32(&mut rng, 7 * feat, 0.5);
        let nodes = vec![
            node(
                "Conv",
                "conv",
                &["x", "w", "b"],
                &["y"],
                vec![
                    ints("pads", &pads.map(|p| p as i64)),
                    ints("strides", &[s as i64, s as i64]),
                    ints("dilations", &[d as i64, d as i64]),
                    ints("kernel_shape", &[kh as i64, kw as i64]),
                    common::int("group", group as i64),
                ],
            ),
            node("Relu", "relu", &["y"], &["r"], vec![]),
            node(
                "MaxPool",
                "pool",
                &["r"],
                &["p"],
                vec![
                    ints("kernel_shape", &[2, 2]),
                    ints("strides", &[2, 2]),
                    ints("pads", &[pool_pad as i64; 4]),
                ],
            ),
            node("Flatten", "flat", &["p"], &["f"], vec![]),
            node(
                "Gemm",
                "fc",
                &["f", "fw"],
                &["out"],
                vec![common::int("transB", 1)],
            ),
        ];
        let inits = vec![
            f32_tensor("w", &[oc as i64, icg as i64, kh as i64, kw as i64], &wt),
            f32_tensor("b", &[oc as i64], &b),
            f32_tensor("fw", &[7, feat as i64], &fc),
        ];
        Some((
            model(
                13,
                ("x", &[1, c as i64, h as i64, w as i64]),
                "out",
                nodes,
                inits,
            ),
            c * h * w,
        ))
    }

    fn run_case(
        bytes: &[u8],
        per: usize,
        images: usize,
        scheme: Scheme,
        seed: u64,
    ) -> Result<(), TestCaseError> {
        let Ok(g) = load_onnx_bytes(bytes, "t", &LoadOptions::default()) else {
            return Err(TestCaseError::reject("loader refused the geometry"));
        };
        let mut rng = common::Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
        let x = rand_f32(&mut rng, images * per, 2.0);
        let mut shape = g.input_shape.clone();
        shape[0] = images;
        let scales =
            engine::calibrate(&g, &Tensor::new(shape, x.clone()), Calib::Max, 100.0).unwrap();
        let cfg = QuantConfig {
            scheme,
            low: if scheme == Scheme::Int8 { 0 } else { 8 },
            quantize_first_last: true,
            depthwise: Depthwise::Channel,
            ..QuantConfig::default()
        };
        let q = quantize_graph(&g, &cfg).unwrap();
        let e = Engine::new(&g, Mode::Integer, Some(&q), Some(&scales))
            .unwrap()
            .with_kernels(Kernels::Reference);
        for (isa, fuse) in [(Isa::detect(), true), (Isa::Portable, false)] {
            let p = Program::compile(e.plan(), fuse, isa).unwrap();
            let mut a = Arena::new(&p, images);
            let got = p.run(&mut a, &x, images, &mut Observe::default());
            let k = p.out_len();
            for i in 0..images {
                let want = e.run(&x[i * per..(i + 1) * per], false).unwrap().0;
                prop_assert_eq!(
                    &got[i * k..(i + 1) * k],
                    &want[0][..],
                    "image {} isa {:?}",
                    i,
                    isa
                );
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn random_geometries_match_the_reference(
            grp in prop_oneof![Just((1usize, 1usize, 5usize)), Just((1, 3, 17)), (1usize..4, 1usize..6, 1usize..7), (2usize..9).prop_map(|c| (c, 1, 1))],
            hw in (1usize..13, 1usize..13),
            k in (1usize..5, 1usize..5, 1usize..3, 1usize..3),
            pads in (0usize..3, 0usize..3, 0usize..3, 0usize..3),
            pool_pad in 0usize..3,
            images in 1usize..5,
            scheme in prop_oneof![Just(Scheme::Int8), Just(Scheme::Mip2q), Just(Scheme::Dliq)],
            seed in any::<u64>(),
        ) {
            let Some((bytes, per)) = graph(grp, hw, k, [pads.0, pads.1, pads.2, pads.3], pool_pad, seed) else {
                return Err(TestCaseError::reject("kernel larger than the padded image"));
            };
            run_case(&bytes, per, images, scheme, seed)?;
        }
    }
}
