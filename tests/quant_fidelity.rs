//! The StruM quantizer's fidelity fixes and options on real models: the anchored MIP2Q
//! window, the khwc block order for layers with fewer input channels than B, weights of
//! +-128, the DLIQ shift rules, the least-squares refit, demotion from w / s, the ideal mask
//! cost and the output-error criterion of the dynamic L policy.

mod common;

use strumlab::model::LoadOptions;
use strumlab::quant::config::*;
use strumlab::quant::schemes::{Quantizer, Strum, WeightView};
use strumlab::quant::{Geometry, QuantConfig, Scheme, lowp, quantize_graph};

fn zoo(name: &str) -> strumlab::model::Graph {
    strumlab::zoo::resolve(name, &LoadOptions::default())
        .unwrap()
        .0
}

fn zoo_card(name: &str) -> (strumlab::model::Graph, strumlab::data::card::ModelCard) {
    strumlab::zoo::resolve(name, &LoadOptions::default()).unwrap()
}

fn strum(scheme: Scheme, block: usize, low: usize) -> QuantConfig {
    QuantConfig {
        scheme,
        block,
        low,
        ..Default::default()
    }
}

#[test]
fn anchored_window_follows_inq() {
    // e_max = floor(log2(4 max / 3)): 127 -> 7 (top level 128), 96 -> 7, 95 -> 6.
    assert_eq!(lowp::anchored_window(127), (1, 7));
    assert_eq!(lowp::anchored_window(96), (1, 7));
    assert_eq!(lowp::anchored_window(95), (0, 6));
    assert_eq!(lowp::anchored_window(3), (0, 2));
    assert_eq!(lowp::anchored_window(0), (0, 6));
    // Under the anchored default a channel maximum of 127 becomes 128, not 64.
    let w = [1.0f32, -0.9, 0.5, 0.01];
    let view = WeightView {
        data: &w,
        out_channels: 1,
        geometry: Geometry::new(1, 4, 1, 4),
    };
    let e = Strum {
        cfg: strum(Scheme::Mip2q, 4, 4),
        low: 4,
    }
    .quantize(&view)
    .unwrap();
    // 0.01 -> q8 1: halfway between 0 and 2 (the window [1, 7] has no 1), ties go down.
    assert_eq!(e.q, vec![128, -128, 64, 0]);
    let fixed = QuantConfig {
        p2_window: P2Window::Fixed,
        ..strum(Scheme::Mip2q, 4, 4)
    };
    let e = Strum { cfg: fixed, low: 4 }.quantize(&view).unwrap();
    assert_eq!(e.q, vec![64, -64, 64, 1]);
}

#[test]
fn mip2q_at_l_equal_b_keeps_the_largest_weights_on_the_zoo() {
    // The old fixed window [0, 6] saturated every |q8| of 97..127 at 64; the anchored one
    // reaches 128, so the weight SQNR at L = B rises on every zoo model (measured: +2.3 dB
    // ResNet, +2.0 dB VGG at this commit; the test asks for 1.5).
    for model in ["fmnist-resnet", "fmnist-mobilenetv2", "fmnist-vgg"] {
        let g = zoo(model);
        let anchored = quantize_graph(&g, &strum(Scheme::Mip2q, 8, 8)).unwrap();
        let fixed = QuantConfig {
            p2_window: P2Window::Fixed,
            ..strum(Scheme::Mip2q, 8, 8)
        };
        let old = quantize_graph(&g, &fixed).unwrap();
        assert!(
            anchored.summary.sqnr_db > old.summary.sqnr_db + 1.5,
            "{model}: {} vs {}",
            anchored.summary.sqnr_db,
            old.summary.sqnr_db
        );
        // ... and it does make +128, which the GPU's packed bytes cannot hold (tests/gpu.rs).
        let has_128 = anchored
            .layers
            .iter()
            .any(|l| l.encoded.q.iter().any(|&v| v == 128));
        assert!(has_128, "{model}");
        let auto = QuantConfig {
            p2_window: P2Window::Auto,
            ..strum(Scheme::Mip2q, 8, 8)
        };
        let a = quantize_graph(&g, &auto).unwrap();
        assert!(a.summary.mse <= anchored.summary.mse.max(old.summary.mse) + 1e-12);
    }
}

#[test]
fn b16_on_mnist8_demotes_real_weights_not_padding() {
    // conv2 of mnist-8 has 8 input channels: along `ic` every B = 16 block would be half
    // padding, and padding is demoted first, so L = 8 demoted nothing (14 bits/weight).
    let g = zoo("mnist-8");
    for axis in [BlockAxis::Ic, BlockAxis::Khwc] {
        let cfg = QuantConfig {
            block_axis: axis,
            ..strum(Scheme::Mip2q, 16, 8)
        };
        let q = quantize_graph(&g, &cfg).unwrap();
        let conv2 = &q.layers[1];
        assert_eq!(conv2.shape, vec![16, 8, 5, 5]);
        assert!(conv2.geometry.inner == 8, "{axis:?}: {:?}", conv2.geometry);
        // 200 weights per channel = 12 full blocks + one of 8 real lanes (8 padding lanes
        // take that block's demotions): 96 of 200 demoted.
        assert!(
            (conv2.stats.demoted_pct - 48.0).abs() < 1e-9,
            "{}",
            conv2.stats.demoted_pct
        );
        assert!(
            conv2.stats.bits_per_weight < 8.0,
            "{}",
            conv2.stats.bits_per_weight
        );
        assert!(conv2.stats.sqnr_db < 30.0);
    }
    // The ONNX (ic, kh, kw) order is still there on request.
    let flat = QuantConfig {
        block_axis: BlockAxis::Flat,
        ..strum(Scheme::Mip2q, 16, 8)
    };
    assert_eq!(
        quantize_graph(&g, &flat).unwrap().layers[1].geometry.inner,
        0
    );
}

#[test]
fn khwc_order_runs_input_channels_innermost() {
    // 1 output channel, 2 input channels, 3 taps: stored (ic, tap), blocked (tap, ic).
    let g = Geometry::khwc(1, 2, 3, 4);
    let lanes: Vec<Vec<Option<usize>>> = (0..g.num_blocks())
        .map(|b| g.block_lanes(b).collect())
        .collect();
    // r = tap * 2 + ic -> flat ic * 3 + tap
    assert_eq!(lanes[0], vec![Some(0), Some(3), Some(1), Some(4)]);
    assert_eq!(lanes[1], vec![Some(2), Some(5), None, None]);
}

#[test]
fn dliq_shift_rules() {
    // max rule: 113 > 7 << 4 takes k = 5; rounding rule: rne(113 / 16) = 7 fits k = 4.
    assert_eq!(lowp::dliq_min_shift(113), 5);
    assert_eq!(lowp::dliq_round_shift([113.0f32].into_iter()), 4);
    // The -8 side: -128 = -8 << 4.
    assert_eq!(lowp::dliq_round_shift([-128.0f32].into_iter()), 4);
    assert_eq!(lowp::dliq_round_shift([7.4f32, -8.0].into_iter()), 0);
    assert_eq!(lowp::dliq_round_shift([7.6f32].into_iter()), 1);
    // DLIQ at L = B with the block shift makes +128 from 127 (4 << 5).
    assert_eq!(lowp::dliq(127, 5).0, 128);
}

#[test]
fn channel_shift_is_one_shift_per_channel() {
    let g = zoo("fmnist-resnet");
    let cfg = QuantConfig {
        dliq_shift: DliqShift::Channel,
        ..strum(Scheme::Dliq, 8, 4)
    };
    let q = quantize_graph(&g, &cfg).unwrap();
    let block = quantize_graph(&g, &strum(Scheme::Dliq, 8, 4)).unwrap();
    for (l, b) in q
        .layers
        .iter()
        .zip(&block.layers)
        .filter(|(l, _)| l.encoded.low > 0)
    {
        let p = l.encoded.packed.as_ref().unwrap();
        let geom = p.geometry;
        let per_ch = geom.num_blocks() / l.shape[0];
        for ch in 0..l.shape[0] {
            let ks: std::collections::BTreeSet<u32> = (ch * per_ch..(ch + 1) * per_ch)
                .map(|blk| (p.shifts[blk / 8] >> (4 * (blk % 8))) & 0xF)
                .collect();
            assert_eq!(ks.len(), 1, "{} channel {ch}: {ks:?}", l.name);
        }
        // 3 bits per channel instead of 3 per block.
        let saved = (3 * geom.num_blocks() - 3 * l.shape[0]) as f64 / l.stats.params as f64;
        let d = b.stats.bits_per_weight - l.stats.bits_per_weight;
        assert!((d - saved).abs() < 1e-9, "{}: {d} vs {saved}", l.name);
    }
}

#[test]
fn refit_never_increases_a_channels_error() {
    let g = zoo("fmnist-vgg");
    for scheme in [Scheme::Mip2q, Scheme::Dliq] {
        let plain = quantize_graph(&g, &strum(scheme, 8, 8)).unwrap();
        let cfg = QuantConfig {
            refit: true,
            ..strum(scheme, 8, 8)
        };
        let refit = quantize_graph(&g, &cfg).unwrap();
        for (a, b) in plain.layers.iter().zip(&refit.layers) {
            // Same integer codes, least-squares scales: the error of each channel can only
            // fall (s* minimises |w - s c|^2 over s).
            assert_eq!(a.encoded.q, b.encoded.q, "{}", a.name);
            assert!(b.stats.mse <= a.stats.mse * (1.0 + 1e-6), "{}", a.name);
        }
        assert!(refit.summary.sqnr_db > plain.summary.sqnr_db, "{scheme:?}");
    }
}

#[test]
fn demotion_from_the_ratio_rounds_once() {
    // w / s = 2.9 with q8 = 3: from q8 the tie 3 goes down to 2, from the ratio 2.9 -> 2;
    // w / s = 3.4 (q8 = 3): from q8 -> 2 (tie, down), from the ratio -> 4.
    assert_eq!(lowp::mip2q_f(2.9, 0, 6, P2Round::Down), 2);
    assert_eq!(lowp::mip2q_f(3.4, 0, 6, P2Round::Down), 4);
    assert_eq!(lowp::mip2q(3, 0, 6, P2Round::Down).0, 2);
    assert_eq!(lowp::mip2q_f(-0.4, 0, 6, P2Round::Down), 0);
    assert_eq!(lowp::mip2q_f(-0.6, 0, 6, P2Round::Down), -1);
    assert_eq!(lowp::mip2q_f(200.0, 1, 7, P2Round::Down), 128);
    assert_eq!(lowp::dliq_f(-7.6, 0), -8);
    let g = zoo("fmnist-resnet");
    let cfg = QuantConfig {
        demote_from: DemoteFrom::Ratio,
        ..strum(Scheme::Dliq, 8, 8)
    };
    let q = quantize_graph(&g, &cfg).unwrap();
    let q8 = quantize_graph(&g, &strum(Scheme::Dliq, 8, 8)).unwrap();
    assert_ne!(q.summary.sqnr_db, q8.summary.sqnr_db);
    for l in &q.layers {
        assert_eq!(
            l.encoded.packed.as_ref().unwrap().decode(),
            l.encoded.q,
            "{}",
            l.name
        );
    }
}

#[test]
fn ideal_mask_costs_log2_of_the_binomial() {
    let g = zoo("fmnist-resnet");
    let q = quantize_graph(&g, &strum(Scheme::Mip2q, 8, 4)).unwrap();
    let l = q.layers.iter().find(|l| l.encoded.low == 4).unwrap();
    // per block: 8 mask bits vs log2 C(8, 4) = log2 70
    let blocks = l.encoded.packed.as_ref().unwrap().geometry.num_blocks() as f64;
    let d = (l.stats.bits_per_weight - l.stats.bits_per_weight_ideal_mask) * l.stats.params as f64;
    assert!((d - blocks * (8.0 - 70f64.log2())).abs() < 1e-6, "{d}");
    // L = B has no mask at all: both costs agree.
    let q = quantize_graph(&g, &strum(Scheme::Mip2q, 8, 8)).unwrap();
    let l = q.layers.iter().find(|l| l.encoded.low == 8).unwrap();
    assert_eq!(l.stats.bits_per_weight, l.stats.bits_per_weight_ideal_mask);
}

#[test]
fn output_criterion_needs_images_and_weighs_by_input_energy() {
    let (g, card) = zoo_card("fmnist-resnet");
    let cfg = QuantConfig {
        l_policy: LPolicy::Dynamic,
        dyn_criterion: DynCriterion::OutputSqnr,
        min_sqnr_db: 20.0,
        ..strum(Scheme::Mip2q, 8, 4)
    };
    let err = quantize_graph(&g, &cfg).unwrap_err().to_string();
    assert!(err.contains("output-sqnr"), "{err}");
    let ds = strumlab::data::load("fashion-test", &card, false).unwrap();
    let n = 16;
    let mut shape = ds.shape.clone();
    shape[0] = n;
    let x = strumlab::model::Tensor::new(shape, ds.images(0, n).unwrap());
    let energy = strumlab::quant::input_energy(&g, &x).unwrap();
    assert_eq!(energy.len(), g.layers().len());
    let q = strumlab::quant::quantize_graph_with(&g, &cfg, Some(&energy)).unwrap();
    let lows = |m: &strumlab::quant::ModelQuant| {
        m.layers.iter().map(|l| l.encoded.low).collect::<Vec<_>>()
    };
    assert!(lows(&q).iter().any(|&l| l > 0));
    // With every input channel of equal energy the estimate is the weight SQNR itself.
    let flat: strumlab::quant::InputEnergy = energy
        .iter()
        .map(|(k, v)| (*k, vec![1.0; v.len()]))
        .collect();
    for db in [15.0, 20.0, 25.0, 30.0] {
        let c = QuantConfig {
            min_sqnr_db: db,
            ..cfg.clone()
        };
        let w = QuantConfig {
            dyn_criterion: DynCriterion::WeightSqnr,
            ..c.clone()
        };
        assert_eq!(
            lows(&strumlab::quant::quantize_graph_with(&g, &c, Some(&flat)).unwrap()),
            lows(&quantize_graph(&g, &w).unwrap()),
            "{db} dB"
        );
    }
}

#[test]
fn sweep_ids_carry_the_quantizer_version() {
    let spec = strumlab::sweep::spec::SweepSpec::parse(
        r#"
        name = "t"
        [base]
        model = "mnist-8"
        [matrix]
        scheme = ["int8", "mip2q"]
        "#,
        "test",
    )
    .unwrap();
    let runs = spec.expand("test").unwrap();
    assert!(!runs[0].key.contains("quantizer"), "{}", runs[0].key);
    let want = format!("\"quantizer\":{}", strumlab::quant::QUANTIZER_VERSION);
    assert!(runs[1].key.contains(&want), "{}", runs[1].key);
}
