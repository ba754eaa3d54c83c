//! Per-layer configurations (eval, quantize, hw, sweeps) and `strumlab search`.

mod common;
use common::{strumlab, tmp};

use std::collections::BTreeMap;

use strumlab::quant::config::{LayerConfigFile, LayerSetting};
use strumlab::quant::{QuantConfig, Scheme, quantize_graph};

fn mnist8() -> strumlab::model::Graph {
    strumlab::zoo::resolve("mnist-8", &Default::default())
        .unwrap()
        .0
}

/// A per-layer file naming every layer with the uniform configuration's own choice gives
/// bit-identical weights, for both schemes.
#[test]
fn per_layer_settings_equal_to_a_uniform_configuration_quantize_identically() {
    let g = mnist8();
    for scheme in [Scheme::Mip2q, Scheme::Dliq] {
        let uniform = QuantConfig {
            scheme,
            low: 6,
            ..Default::default()
        };
        let uq = quantize_graph(&g, &uniform).unwrap();
        let layers: BTreeMap<String, LayerSetting> = uq
            .layers
            .iter()
            .map(|l| {
                let s = if l.reason.is_some() {
                    LayerSetting {
                        scheme: Scheme::Int8,
                        low: 0,
                    }
                } else {
                    LayerSetting { scheme, low: 6 }
                };
                (l.name.clone(), s)
            })
            .collect();
        let per = QuantConfig {
            scheme: Scheme::Int8,
            layers,
            ..Default::default()
        };
        let pq = quantize_graph(&g, &per).unwrap();
        assert!(per.label().starts_with("perlayer-b8-"), "{}", per.label());
        for (a, b) in uq.layers.iter().zip(&pq.layers) {
            assert_eq!(a.encoded.deq, b.encoded.deq, "{scheme:?} layer {}", a.name);
            assert_eq!(
                a.encoded.class, b.encoded.class,
                "{scheme:?} layer {}",
                a.name
            );
        }
    }
}

fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    let f = LayerConfigFile {
        model: "mnist-8".into(),
        block: 8,
        layers: BTreeMap::from([
            (
                "Convolution28".into(),
                LayerSetting {
                    scheme: Scheme::Int8,
                    low: 0,
                },
            ),
            (
                "Convolution110".into(),
                LayerSetting {
                    scheme: Scheme::Mip2q,
                    low: 6,
                },
            ),
            (
                "Times212".into(),
                LayerSetting {
                    scheme: Scheme::Dliq,
                    low: 4,
                },
            ),
        ]),
    };
    let p = dir.join("layers.toml");
    std::fs::write(&p, f.to_toml()).unwrap();
    assert_eq!(
        LayerConfigFile::load(&p).unwrap(),
        f,
        "the file round-trips"
    );
    p
}

#[test]
fn per_layer_configuration_runs_in_quantize_eval_hw_and_sweeps() {
    let dir = tmp("search-roundtrip");
    let cfg = write_config(&dir);
    let c = cfg.to_str().unwrap();
    // quantize: each layer gets its own setting, the last one too (no layer policy).
    let (code, out, err) = strumlab(&["quantize", "mnist-8", "--layer-config", c, "--json"]);
    assert_eq!(code, 0, "{err}");
    let q: serde_json::Value = serde_json::from_str(&out).unwrap();
    let applied: Vec<&str> = q["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["applied"].as_str().unwrap())
        .collect();
    assert_eq!(applied, ["int8", "mip2q-l6", "dliq-l4"]);
    // eval and a sweep over the same file give the same accuracy and label.
    let (code, out, err) = strumlab(&[
        "eval",
        "--model",
        "mnist-8",
        "--layer-config",
        c,
        "--limit",
        "300",
        "--json",
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    let e: serde_json::Value = serde_json::from_str(&out).unwrap();
    let label = e["label"].as_str().unwrap().to_string();
    assert!(label.starts_with("perlayer-b8-"), "{label}");
    let spec = dir.join("s.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"lc\"\nout = \"{}\"\n[base]\nmodel = \"mnist-8\"\nlimit = 300\nlayer_config = \"{c}\"\n",
            dir.join("sweep").display()
        ),
    )
    .unwrap();
    let (code, _, err) = strumlab(&["sweep", spec.to_str().unwrap(), "-q"]);
    assert_eq!(code, 0, "{err}");
    let mut rows = csv::Reader::from_path(dir.join("sweep/runs.csv")).unwrap();
    let hdr = rows.headers().unwrap().clone();
    let row = rows.records().next().unwrap().unwrap();
    let col = |n: &str| row[hdr.iter().position(|h| h == n).unwrap()].to_string();
    assert_eq!(col("config"), label);
    let top1: f64 = col("top1_pct").parse().unwrap();
    let eval_top1 = 100.0 * e["summary"]["top1"].as_f64().unwrap();
    assert!(
        (top1 - eval_top1).abs() < 1e-9,
        "sweep {top1} vs eval {eval_top1}"
    );
    assert_eq!(
        col("pe_area_static_um2"),
        "",
        "no static design for per-layer settings"
    );
    assert!(!col("pe_power_reduction_dynamic_pct").is_empty());
    // hw: the dynamic variant by default, the static one refused.
    let (code, out, err) = strumlab(&["hw", "--model", "mnist-8", "--layer-config", c, "--json"]);
    assert_eq!(code, 0, "{err}");
    let h: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(h["variant"], "dynamic");
    assert_eq!(h["scheme"].as_str().unwrap(), label);
    assert!(h["pe_power_reduction_pct"].as_f64().unwrap() > 0.0);
    assert!(h["designs"]["strum_static"].is_null());
    let (code, _, err) = strumlab(&[
        "hw",
        "--model",
        "mnist-8",
        "--layer-config",
        c,
        "--variant",
        "static",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("dynamic PE only") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn bad_per_layer_files_get_one_line_errors() {
    let dir = tmp("search-bad");
    let cases = [
        (
            "block = 8\n[layers.conv9]\nscheme = \"dliq\"\nlow = 4\n",
            "'conv9' is not a weight layer",
        ),
        (
            "block = 8\n[layers.Convolution110]\nscheme = \"dliq\"\nlow = 9\n",
            "do not fit a block of 8",
        ),
        (
            "block = 8\n[layers.Convolution110]\nscheme = \"nm\"\n",
            "scheme nm",
        ),
        ("block = 8\n[layers]\n", "names no layer"),
        (
            "block = 8\nbogus = 1\n[layers.Convolution110]\nscheme = \"dliq\"\n",
            "bogus",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let p = dir.join(format!("bad{i}.toml"));
        std::fs::write(&p, text).unwrap();
        let (code, _, err) =
            strumlab(&["quantize", "mnist-8", "--layer-config", p.to_str().unwrap()]);
        assert_eq!(code, 2, "case {i}: {err}");
        assert!(err.contains(want), "case {i}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "case {i}: {err}");
    }
}

#[test]
fn search_reports_held_out_points_and_a_loadable_configuration() {
    let dir = tmp("search-run");
    let (code, out, err) = strumlab(&[
        "search",
        "--model",
        "mnist-8",
        "--limit",
        "600",
        "--sens-images",
        "200",
        "--lows",
        "4,8",
        "--refine",
        "2",
        "--out",
        dir.to_str().unwrap(),
        "--json",
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["search_images"], 300);
    assert_eq!(j["heldout_images"], 300);
    let fp32 = j["fp32_top1"].as_f64().unwrap();
    assert!(fp32 > 90.0, "{fp32}");
    // 1 eligible layer x 2 schemes x 2 L, plus the all-INT8 run.
    assert_eq!(j["evaluations"]["sensitivity"], 5);
    let uniform = j["uniform"].as_array().unwrap();
    assert_eq!(uniform.len(), 1 + 2 * 8, "INT8 and every L of both schemes");
    let frontier = j["frontier"].as_array().unwrap();
    assert!(!frontier.is_empty());
    for p in frontier.iter().chain(uniform) {
        let top1 = p["heldout_top1_pct"].as_f64().unwrap();
        let drop = p["heldout_drop_pts"].as_f64().unwrap();
        assert!((fp32 - top1 - drop).abs() < 1e-9);
        assert_eq!(p["meets_budget"].as_bool().unwrap(), drop <= 0.5 + 1e-9);
    }
    let chosen = &j["chosen"];
    assert!(
        frontier.iter().any(|p| p["name"] == chosen["name"]),
        "the chosen point is one of the evaluated ones"
    );
    assert!(chosen["search_ok"].as_bool().unwrap() || chosen["name"] == "walk-0");
    // The chosen file loads in eval and names the same configuration.
    let f = dir.join("chosen.toml");
    let (code, out, err) = strumlab(&[
        "eval",
        "--model",
        "mnist-8",
        "--layer-config",
        f.to_str().unwrap(),
        "--limit",
        "50",
        "--json",
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    let e: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(e["label"], chosen["config"]);
    for name in [
        "frontier.csv",
        "uniform.csv",
        "sensitivity.csv",
        "search.json",
        "frontier.png",
        "frontier.svg",
    ] {
        assert!(dir.join(name).is_file(), "{name}");
    }
}

/// A plain ONNX file with its preprocessing stated by `--card` evaluates like the zoo model
/// whose card says the same; a bad card is one line naming it.
#[test]
fn eval_card_states_the_preprocessing_of_a_plain_file() {
    let dir = tmp("search-card");
    let onnx = dir.join("digits.onnx");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/data/mnist-8.onnx"),
        &onnx,
    )
    .unwrap();
    let card = dir.join("digits.card.toml");
    std::fs::write(
        &card,
        "name = \"digits\"\ndataset = \"mnist-test\"\nchannels = 1\nsize = [28, 28]\npixel_scale = 1.0\nmean = [0.0]\nstd = [1.0]\n",
    )
    .unwrap();
    let top1 = |args: &[&str]| {
        let (code, out, err) = strumlab(args);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["summary"]["top1"].as_f64().unwrap()
    };
    let (o, c) = (onnx.to_str().unwrap(), card.to_str().unwrap());
    let with_card = top1(&[
        "eval", "--model", o, "--card", c, "--limit", "200", "--json", "-q",
    ]);
    let zoo = top1(&[
        "eval", "--model", "mnist-8", "--limit", "200", "--json", "-q",
    ]);
    assert_eq!(with_card, zoo);
    // Without the card the plain file has no dataset: refused in one line.
    let (code, _, err) = strumlab(&["eval", "--model", o, "--limit", "5"]);
    assert_eq!(code, 2, "{err}");
    std::fs::write(
        &card,
        "name = \"digits\"\nchannels = 1\nsize = [28, 28]\npixel_scale = 1.0\nmean = [0.0, 1.0]\nstd = [1.0]\n",
    )
    .unwrap();
    let (code, _, err) = strumlab(&["eval", "--model", o, "--card", c, "--data", "mnist-test"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("digits.card.toml") && err.contains("mean and std"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn search_refuses_bad_options_in_one_line() {
    let cases: [(&[&str], &str); 4] = [
        (&["--act-percentile", "0"], "act-percentile"),
        (&["--max-drop=-1"], "max-drop"),
        (&["--search-frac", "1.0"], "search-frac"),
        (&["--lows", "9"], "lows"),
    ];
    for (extra, want) in cases {
        let mut args = vec![
            "search", "--model", "mnist-8", "--limit", "40", "-q", "--out",
        ];
        let dir = tmp("search-bad-opts");
        args.push(dir.to_str().unwrap());
        args.extend_from_slice(extra);
        let (code, _, err) = strumlab(&args);
        assert_eq!(code, 2, "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{extra:?}: {err}");
        assert!(
            !dir.join("search.json").exists(),
            "{extra:?}: nothing written"
        );
    }
}
