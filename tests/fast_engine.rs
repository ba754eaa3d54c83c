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
    let per = data.per_image();
    let n = n.min(data.len());
    let nc = 64.min(data.len());
    let mut cshape = data.shape.clone();
    cshape[0] = nc;
    let calib = Tensor::new(cshape, data.images[..nc * per].to_vec());
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
        let x = &data.images[i * per..(i + m) * per];
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
            let (r, obs) = e.run(data.image(i + b), true).expect("reference run");
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
        let obs = e2.run_activity(data.image(b), false).expect("run").1;
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
    let per = data.per_image();
    let nc = 64.min(data.len());
    let mut cshape = data.shape.clone();
    cshape[0] = nc;
    let calib = Tensor::new(cshape, data.images[..nc * per].to_vec());
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
            &data.images[i * per..(i + m) * per],
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
            .run_activity(data.image(i), false)
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
