//! Training code (cargo feature `train`): every zoo architecture trains for a few steps with
//! falling loss, and its ONNX export, read back by our loader (BatchNorm folded), gives the
//! logits burn computes. Runs on a slice of the vendored Fashion-MNIST test images, so it
//! needs no fetched asset.
#![cfg(feature = "train")]

use burn::tensor::{Device, Tensor, TensorData};
use strumlab::cpu::engine::{Engine, Mode};
use strumlab::data::repo_root;
use strumlab::model::{LoadOptions, Op, load_onnx_bytes};
use strumlab::train::recipe::Recipe;
use strumlab::train::{Augment, Images, Norm, TrainCall, normalised, train};

/// Exported ONNX vs burn on the same images. Both compute FP32 convolutions, but in
/// different orders (burn: im2col GEMM, ours: direct loops with BatchNorm folded into the
/// weights), so logits differ by rounding only; 1e-4 of the largest logit is far above that
/// and far below a wrong weight layout or a missed BatchNorm.
const EXPORT_REL_TOL: f32 = 1e-4;

#[test]
fn every_zoo_architecture_trains_and_exports_faithfully() {
    let recipe = Recipe::load(&repo_root().join(strumlab::train::RECIPE)).unwrap();
    assert_eq!(recipe.models.len(), 3);
    let mut slice = Images::fashion_test().unwrap();
    slice.truncate(256);
    let norm = Norm::of(&recipe);
    for (k, spec) in recipe.models.iter().enumerate() {
        let mut spec = spec.clone();
        spec.batch = 32;
        spec.warmup_steps = 0;
        let call = TrainCall {
            seed: 1 + k as u64,
            norm,
            augment: Augment {
                pad: recipe.crop_pad,
                hflip: recipe.hflip,
            },
            test: None,
            max_steps: Some(24),
            epochs: 3,
            quiet: true,
        };
        let mut lines = Vec::new();
        let t = train(&spec, &slice, &call, &mut |l| lines.push(l.to_string()));
        assert_eq!(t.step_losses.len(), 24, "{}", spec.name);
        assert_eq!(lines.len(), 3, "one line per epoch: {lines:?}");
        assert!(t.step_losses.iter().all(|l| l.is_finite()));
        let first: f32 = t.step_losses[..4].iter().sum::<f32>() / 4.0;
        let last: f32 = t.step_losses[20..].iter().sum::<f32>() / 4.0;
        eprintln!(
            "{}: mean loss of steps 1-4 {first:.3}, of steps 21-24 {last:.3}",
            spec.name
        );
        assert!(
            last < 0.8 * first,
            "{}: loss did not fall: first steps {first:.3}, last steps {last:.3} ({:?})",
            spec.name,
            t.step_losses
        );

        // Export, load back, and compare logits with burn's on 8 images.
        let bytes = t.net.to_onnx(&spec.name);
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.contains("BatchNormalization"),
            "BatchNorm exported as nodes"
        );
        let g = load_onnx_bytes(&bytes, &spec.name, &LoadOptions::default()).unwrap();
        assert!(
            !g.nodes.iter().any(|n| matches!(n.op, Op::Affine { .. })),
            "{}: every BatchNorm folds into its conv",
            spec.name
        );
        let e = Engine::new(&g, Mode::Fp32, None, None).unwrap();
        let n = 8;
        let mut x = Vec::new();
        for i in 0..n {
            x.extend(normalised(&slice, 100 + i, norm));
        }
        let burn_logits = t
            .net
            .forward(Tensor::from_data(
                TensorData::new(x.clone(), [n, 1, 28, 28]),
                &Device::flex(),
            ))
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        for i in 0..n {
            let (out, _) = e.run(&x[i * 784..(i + 1) * 784], false).unwrap();
            let ours = &out[0];
            let theirs = &burn_logits[i * 10..(i + 1) * 10];
            let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = ours
                .iter()
                .zip(theirs)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err <= EXPORT_REL_TOL * scale,
                "{} image {i}: max |ours - burn| = {err} (largest logit {scale})",
                spec.name
            );
        }
    }
}

#[test]
fn recipe_rejects_unknown_keys_and_bad_values() {
    let dir = std::env::temp_dir().join(format!("strumlab-recipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read_to_string(repo_root().join(strumlab::train::RECIPE)).unwrap();
    let cases = [
        (
            good.replace("crop_pad = 2", "crop_pad = 2\ncrop_padding = 3"),
            "crop_padding",
        ),
        (
            good.replacen("depth = [1, 1, 1]", "depth = [1, 1]", 1),
            "one entry per stage",
        ),
        (
            good.replacen("arch = \"vgg\"", "arch = \"alexnet\"", 1),
            "alexnet",
        ),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        assert_ne!(text, &good, "case {i} must change the recipe");
        let p = dir.join(format!("r{i}.toml"));
        std::fs::write(&p, text).unwrap();
        let e = Recipe::load(&p).unwrap_err().to_string();
        assert!(e.contains(needle), "case {i}: {e}");
    }
}
