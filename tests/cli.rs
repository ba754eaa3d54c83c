//! The `strumlab` binary end to end: JSON and CSV output, and clear failures on bad input.

mod common;

use std::process::Command;

use common::{data, strumlab};

#[test]
fn quantize_json_reports_every_layer() {
    let m = data("mnist-8.onnx");
    let (rc, out, err) = strumlab(&[
        "quantize",
        m.to_str().unwrap(),
        "--scheme",
        "mip2q",
        "--block",
        "8",
        "--low",
        "4",
        "--json",
    ]);
    assert_eq!(rc, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("stdout is one JSON document");
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    for l in layers {
        assert!(l["name"].is_string());
        let bpw = l["bits_per_weight"].as_f64().unwrap();
        let sqnr = l["sqnr_db"].as_f64().unwrap();
        assert!(bpw > 4.0 && bpw <= 8.0 && sqnr > 10.0, "{l}");
    }
    // First and last layers stay INT8 by default; the middle conv is MIP2Q at 7 bits/weight.
    assert_eq!(layers[0]["applied"], "int8");
    assert_eq!(layers[1]["applied"], "mip2q-l4");
    assert_eq!(layers[1]["bits_per_weight"].as_f64().unwrap(), 7.0);
    assert_eq!(layers[2]["applied"], "int8");
    assert_eq!(v["summary"]["params"].as_u64().unwrap(), 200 + 3200 + 2560);
    assert_eq!(v["config"]["scheme"], "mip2q");
}

#[test]
fn quantize_writes_csv_with_units_and_schema() {
    let dir = std::env::temp_dir().join(format!("strumlab-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("q.csv");
    let m = data("mnist-8.onnx");
    let (rc, out, err) = strumlab(&[
        "quantize",
        m.to_str().unwrap(),
        "--scheme",
        "dliq",
        "--quantize-first-last",
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("dliq-l4"));
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let h = r.headers().unwrap().clone();
    for col in [
        "schema_version",
        "layer",
        "bits_per_weight",
        "sqnr_db",
        "weight_mse",
        "high_weights",
        "low_weights",
    ] {
        assert!(h.iter().any(|c| c == col), "missing column {col}");
    }
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    assert_eq!(rows.len(), 4, "3 layers + total");
    assert_eq!(&rows[3][3], "__total__");
    // With --quantize-first-last every layer is DLIQ: the first conv has 1 input channel, so
    // its blocks run along the 25 taps (khwc order): 4 blocks of 4*8 + 4*4 + 8 + 3 bits for
    // 25 weights (along `ic` they would be 7/8 padding: 59 bits for one weight).
    assert_eq!(&rows[0][6], "dliq-l4");
    assert_eq!(rows[0][8].parse::<f64>().unwrap(), 4.0 * 59.0 / 25.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inspect_lists_layers_and_macs() {
    let m = data("mnist-8.onnx");
    let (rc, out, err) = strumlab(&["inspect", m.to_str().unwrap(), "--json"]);
    assert_eq!(rc, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["weight_layers"], 3);
    assert_eq!(v["macs"], 786_560);
    assert_eq!(v["input_shape"], serde_json::json!([1, 1, 28, 28]));
}

#[test]
fn bad_input_fails_with_a_clear_message() {
    let dir = std::env::temp_dir().join(format!("strumlab-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = std::fs::read(data("mnist-8.onnx")).unwrap();
    let trunc = dir.join("trunc.onnx");
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
    let m = data("mnist-8.onnx");
    let m = m.to_str().unwrap();
    let missing_dir_out = dir.join("no/such/dir/q.csv");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["inspect", trunc.to_str().unwrap()],
            "not a readable ONNX model",
        ),
        (vec!["inspect", "/no/such/model.onnx"], "cannot read"),
        (vec!["quantize", m, "--block", "0"], "--block"),
        (vec!["quantize", m, "--block", "64"], "--block"),
        (
            vec!["quantize", m, "--scheme", "mip2q", "--low", "9"],
            "low",
        ),
        (vec!["quantize", m, "--scheme", "int3"], "int3"),
        (vec!["quantize", m, "--scheme", "nm", "--nm", "5:4"], "5:4"),
        (
            vec!["quantize", m, "--scheme", "mip2q", "--p2-max-exp", "9"],
            "p2-exp",
        ),
        (
            vec!["quantize", m, "--scheme", "mx", "--mx-elem-bits", "6"],
            "mx-elem-bits",
        ),
        (
            vec!["quantize", m, "--out", missing_dir_out.to_str().unwrap()],
            "does not exist",
        ),
        (vec!["inspect", m, "--input-shape", "1,x,28"], "input-shape"),
        (vec!["inspect", m, "--input-shape", "1,3,28,28"], "channels"),
    ];
    for (args, needle) in cases {
        let (rc, out, err) = strumlab(&args);
        assert_ne!(rc, 0, "{args:?} succeeded");
        assert!(
            err.contains(needle),
            "{args:?}: stderr lacks '{needle}':\n{err}"
        );
        assert!(out.is_empty(), "{args:?} printed to stdout: {out}");
    }
    assert!(!missing_dir_out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn train_rejects_a_bad_recipe_before_writing_anything() {
    let dir = std::env::temp_dir().join(format!("strumlab-cli-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recipe = dir.join("recipe.toml");
    let good = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/train/fashion-zoo.toml"),
    )
    .unwrap();
    std::fs::write(
        &recipe,
        good.replace("hflip = true", "hflip = true\nmixup = 0.2"),
    )
    .unwrap();
    let out = dir.join("out");
    let (rc, _, err) = strumlab(&[
        "train",
        "--recipe",
        recipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(rc, 2, "{err}");
    if cfg!(feature = "train") {
        assert!(err.contains("mixup"), "names the unknown key: {err}");
    } else {
        assert!(
            err.contains("--features train"),
            "says how to get it: {err}"
        );
    }
    assert!(!out.exists(), "nothing written");
    let (rc, _, err) = strumlab(&[
        "train",
        "--models",
        "fmnist-alexnet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(rc, 2, "{err}");
    if cfg!(feature = "train") {
        assert!(
            err.contains("fmnist-alexnet") && err.contains("fmnist-vgg"),
            "{err}"
        );
    }
    assert!(!out.exists(), "nothing written");
}

/// `strumlab reproduce` end to end on mnist-8 (500 images, CPU): every table, CSV and figure
/// is written, a row of accuracy.csv equals what `strumlab eval` measures for the same
/// configuration, and a second run reuses every run instead of evaluating again.
#[test]
fn reproduce_writes_tables_csv_figures_and_resumes() {
    let dir = std::env::temp_dir().join(format!("strumlab-reproduce-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.to_str().unwrap();
    let args = [
        "reproduce",
        "--models",
        "mnist-8",
        "--limit",
        "500",
        "--device",
        "cpu",
        "--out",
        out,
        "-q",
    ];
    let (rc, stdout, err) = strumlab(&args);
    assert_eq!(rc, 0, "{err}");
    // mnist-8 x {FP32, INT8} + {DLIQ, MIP2Q} x B {8, 16} x L/B {1/4, 1/2, 3/4, 1}.
    assert!(
        stdout.contains("Sweep: 18 runs (18 run now, 0 reused"),
        "{stdout}"
    );

    let mut rd = csv::Reader::from_path(dir.join("accuracy.csv")).unwrap();
    let head = rd.headers().unwrap().clone();
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 18);
    assert!(rows.iter().all(|r| &r[col("images")] == "500"));
    let row = rows
        .iter()
        .find(|r| &r[col("config")] == "mip2q-b8-l8")
        .expect("a MIP2Q B=8 L=8 row");
    let (rc, eval, err) = strumlab(&[
        "eval",
        "--model",
        "mnist-8",
        "--scheme",
        "mip2q",
        "--block",
        "8",
        "--low",
        "8",
        "--limit",
        "500",
        "--calib-images",
        "64",
        "--device",
        "cpu",
        "--json",
    ]);
    assert_eq!(rc, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&eval).unwrap();
    let pct = |x: &serde_json::Value| x.as_f64().unwrap() * 100.0;
    let top1: f64 = row[col("top1_pct")].parse().unwrap();
    let agree: f64 = row[col("agreement_top1_pct")].parse().unwrap();
    assert!(
        (top1 - pct(&v["summary"]["top1"])).abs() < 1e-9,
        "{top1} vs {eval}"
    );
    assert!(
        (agree - pct(&v["summary"]["agreement_top1"])).abs() < 1e-9,
        "{agree} vs {eval}"
    );

    let tables = std::fs::read_to_string(dir.join("tables.md")).unwrap();
    for section in [
        "### mnist-8 (mnist-test, 500 images)",
        "## (b) Hardware",
        "## (c) FlexNN dataflows",
    ] {
        assert!(tables.contains(section), "tables.md lacks {section:?}");
    }
    // Two configurations (DLIQ, MIP2Q at B = 8, L = 4) x three designs.
    let hw = std::fs::read_to_string(dir.join("hw.csv")).unwrap();
    assert_eq!(
        hw.lines().filter(|l| l.contains(",mnist-8,")).count(),
        6,
        "{hw}"
    );
    for fig in [
        "accuracy-vs-bits-mnist-8",
        "layer-sqnr-mnist-8",
        "pe-power",
        "pe-area-breakdown",
        "dataflow-energy",
    ] {
        let png = std::fs::read(dir.join("figures").join(format!("{fig}.png"))).unwrap();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
            "{fig}.png"
        );
        let svg = std::fs::read_to_string(dir.join("figures").join(format!("{fig}.svg"))).unwrap();
        assert!(svg.contains("<svg"), "{fig}.svg");
    }

    // Again: nothing is evaluated twice, and the accuracy table is unchanged.
    let before = std::fs::read(dir.join("accuracy.csv")).unwrap();
    let (rc, stdout, err) = strumlab(&args);
    assert_eq!(rc, 0, "{err}");
    assert!(
        stdout.contains("Sweep: 18 runs (0 run now, 18 reused"),
        "{stdout}"
    );
    assert_eq!(std::fs::read(dir.join("accuracy.csv")).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One rule joins --scheme and --mode: either flag alone set to fp32 is the FP32 run.
#[test]
fn scheme_fp32_or_mode_fp32_alone_is_the_fp32_run() {
    for args in [
        &["--scheme", "fp32"][..],
        &["--mode", "fp32"][..],
        &["--scheme", "fp32", "--mode", "fp32"][..],
    ] {
        let mut a = vec!["eval", "--limit", "20", "--json", "-q"];
        a.extend_from_slice(args);
        let (rc, out, err) = strumlab(&a);
        assert_eq!(rc, 0, "{args:?}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["mode"], "fp32", "{args:?}");
        assert_eq!(v["label"], "fp32", "{args:?}");
    }
    // Contradictions name both flags' values.
    let (rc, _, err) = strumlab(&[
        "eval", "--limit", "5", "--scheme", "fp32", "--mode", "integer",
    ]);
    assert_eq!(rc, 2);
    assert!(err.contains("fp32") && err.contains("integer"), "{err}");
    let (rc, _, err) = strumlab(&["eval", "--limit", "5", "--scheme", "dliq", "--mode", "fp32"]);
    assert_eq!(rc, 2);
    assert!(err.contains("dliq"), "{err}");
}

/// Small things a user trips over: an I/O error names its cause once, a GPU command prints
/// no driver complaint about XDG_RUNTIME_DIR, `export` creates its folder, KL is never
/// negative.
#[test]
fn errors_once_no_driver_noise_export_creates_folder_kl_non_negative() {
    let (rc, _, err) = strumlab(&["eval", "--model", "/nonexistent/model.onnx"]);
    assert_eq!(rc, 2);
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    let o = Command::new(env!("CARGO_BIN_EXE_strumlab"))
        .args(["devices"])
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("XDG_RUNTIME_DIR"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let dir = std::env::temp_dir().join(format!("strumlab-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.join("a/b");
    let (rc, _, err) = strumlab(&["export", "--limit", "2", "--out", out.to_str().unwrap()]);
    assert_eq!(rc, 0, "{err}");
    assert!(out.join("meta.json").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
    for scheme in ["fp32", "int8", "mip2q"] {
        let (rc, out, err) =
            strumlab(&["eval", "--limit", "100", "--scheme", scheme, "--json", "-q"]);
        assert_eq!(rc, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(
            v["summary"]["kl_mean"].as_f64().unwrap() >= 0.0,
            "{scheme}: {}",
            v["summary"]["kl_mean"]
        );
    }
}

/// eval reports the paired top-1 change against FP32 with a 95 % interval and McNemar's p.
#[test]
fn eval_reports_significance_of_the_top1_change() {
    let (rc, out, err) = strumlab(&[
        "eval", "--scheme", "mip2q", "--low", "8", "--limit", "500", "--json", "-q",
    ]);
    assert_eq!(rc, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let s = &v["summary"];
    let d = s["top1_delta_pts"].as_f64().unwrap();
    let ci = s["top1_delta_ci95"].as_array().unwrap();
    let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
    assert!(lo <= d && d <= hi, "{lo} {d} {hi}");
    let p = s["mcnemar_p"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p));
    let disc = s["discordant"].as_array().unwrap();
    let (b, c) = (disc[0].as_f64().unwrap(), disc[1].as_f64().unwrap());
    assert!((d - 100.0 * (c - b) / 500.0).abs() < 1e-9);
    let (rc, out, _) = strumlab(&[
        "eval", "--scheme", "mip2q", "--low", "8", "--limit", "500", "-q",
    ]);
    assert_eq!(rc, 0);
    assert!(out.contains("McNemar p ="), "{out}");
    // The layer table says which layers got the scheme, has units, and its MAC shares add up.
    assert!(
        out.contains("1 of 3 weight layers get mip2q-b8-l8"),
        "{out}"
    );
    assert!(
        out.contains("MAC w0 %") && out.contains("out SQNR dB"),
        "{out}"
    );
    for line in out.lines().filter(|l| {
        l.contains("mip2q-l8") || l.starts_with("Convolution") || l.starts_with("Times")
    }) {
        let v: Vec<f64> = line
            .split_whitespace()
            .filter_map(|t| t.parse().ok())
            .collect();
        if v.len() >= 7 {
            let (w8, w4, w0) = (v[v.len() - 4], v[v.len() - 3], v[v.len() - 2]);
            assert!((w8 + w4 + w0 - 100.0).abs() < 0.15, "{line}");
        }
    }
}

/// A named dataset with other labels than the model's card runs, but says so.
#[test]
fn eval_warns_when_the_dataset_labels_do_not_match_the_model() {
    let args = [
        "eval",
        "--model",
        "fmnist-vgg",
        "--limit",
        "20",
        "-q",
        "--scheme",
        "int8",
    ];
    let (code, _, err) = strumlab(&[&args[..], &["--data", "mnist-test"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: dataset 'mnist-test' has MNIST digits, but model 'fmnist-vgg'"),
        "{err}"
    );
    let (code, _, err) = strumlab(&[&args[..], &["--data", "fashion-test"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
}

/// A model file without a card: `eval` without `--data` says to give one; a file named like
/// a zoo model says it takes that model's card.
#[test]
fn model_files_without_a_card_ask_for_data_and_named_ones_say_whose_card() {
    let dir = std::env::temp_dir().join(format!("strumlab-cardless-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = data("mnist-8.onnx");
    let plain = dir.join("my-net.onnx");
    let named = dir.join("mnist-8.onnx");
    std::fs::copy(&src, &plain).unwrap();
    std::fs::copy(&src, &named).unwrap();
    let (code, _, err) = strumlab(&["eval", "--model", plain.to_str().unwrap(), "-q"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("model 'my-net' has no card naming its dataset: give --data"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let args = [
        "eval",
        "--model",
        named.to_str().unwrap(),
        "--limit",
        "10",
        "-q",
    ];
    let (code, _, err) = strumlab(&args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("is named like zoo model 'mnist-8'"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `hw` prints changes (negative = saving) against the paper's bands as changes, names the
/// variant in its verdict, never a `10..10` band, and per-layer lines with `--layers`.
#[test]
fn hw_prints_changes_the_variant_and_layers() {
    let (code, out, err) = strumlab(&["hw", "--model", "mnist-8", "--scheme", "mip2q", "--layers"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("change vs INT8 baseline (%)"), "{out}");
    assert!(
        out.contains("-34..-31") && out.contains("-26..-23"),
        "{out}"
    );
    assert!(!out.contains("10..10") && !out.contains("-0.00"), "{out}");
    let pe = out.lines().find(|l| l.starts_with("PE power")).unwrap();
    assert!(pe.contains("static: -"), "{pe}");
    let static_change: f64 = pe.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(static_change < 0.0, "{pe}");
    assert!(
        out.lines().any(|l| l.starts_with("Convolution28 ")),
        "{out}"
    );
    let (_, plain, _) = strumlab(&["hw", "--model", "mnist-8", "--scheme", "mip2q"]);
    assert!(
        !plain.lines().any(|l| l.starts_with("Convolution28 ")),
        "{plain}"
    );
}
