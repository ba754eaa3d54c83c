//! Hostile and odd inputs get one-line errors (exit 2) or the documented behaviour
//! (docs/robustness.md): non-finite weights and statistics, BatchNorm epsilon, matrix size
//! and exclude typos, output paths that are not regular files, a locked sweep folder, a
//! duplicated row, a sweep whose runs all fail, partial labels, images that declare huge
//! sizes, gzip bombs in IDX files.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{f32_tensor, float, model, node, strumlab, tmp};
use strumlab::sweep::SweepSpec;

/// exit 2 and one `error:` line containing `needle`
fn fails_with(args: &[&str], needle: &str) {
    let (code, _, err) = strumlab(args);
    assert_eq!(code, 2, "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected '{needle}' in: {err}"
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: not one line: {err}"
    );
}

/// A 1x1 conv on a 1x2x2 input with the given weight, then BatchNorm with `eps`.
fn conv_bn(w: f32, eps: f32) -> Vec<u8> {
    let conv = node("Conv", "conv0", &["x", "w"], &["y"], vec![]);
    let bn = node(
        "BatchNormalization",
        "bn0",
        &["y", "s", "b", "m", "v"],
        &["z"],
        vec![float("epsilon", eps)],
    );
    model(
        13,
        ("x", &[1, 1, 2, 2]),
        "z",
        vec![conv, bn],
        vec![
            f32_tensor("w", &[1, 1, 1, 1], &[w]),
            f32_tensor("s", &[1], &[1.0]),
            f32_tensor("b", &[1], &[0.0]),
            f32_tensor("m", &[1], &[0.0]),
            f32_tensor("v", &[1], &[1.0]),
        ],
    )
}

#[test]
fn non_finite_weights_and_bad_epsilon_are_refused_by_name() {
    let dir = tmp("nan");
    let ok = dir.join("ok.onnx");
    std::fs::write(&ok, conv_bn(0.5, 1e-5)).unwrap();
    let (code, _, err) = strumlab(&["inspect", ok.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let nan = dir.join("nan.onnx");
    std::fs::write(&nan, conv_bn(f32::NAN, 1e-5)).unwrap();
    fails_with(
        &["quantize", nan.to_str().unwrap()],
        "node 'conv0' (Conv): weight holds NaN at index 0",
    );
    let eps = dir.join("eps.onnx");
    std::fs::write(&eps, conv_bn(0.5, -2.0)).unwrap();
    fails_with(
        &["inspect", eps.to_str().unwrap()],
        "node 'bn0' (BatchNormalization): epsilon -2",
    );
}

#[test]
fn stats_csv_with_nan_or_not_a_file_is_refused() {
    let dir = tmp("stats");
    let csv = dir.join("layers.csv");
    let (code, _, err) = strumlab(&[
        "eval",
        "--model",
        "mnist-8",
        "--scheme",
        "mip2q",
        "--limit",
        "20",
        "-q",
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let hdr: Vec<&str> = lines[0].split(',').collect();
    let k = hdr.iter().position(|h| *h == "act_zero_frac").unwrap();
    let mut cells: Vec<String> = lines[1].split(',').map(String::from).collect();
    cells[k] = "NaN".into();
    lines[1] = cells.join(",");
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();
    let args = ["hw", "--model", "mnist-8", "--scheme", "mip2q", "--stats"];
    fails_with(
        &[&args[..], &[csv.to_str().unwrap()]].concat(),
        "act_zero_frac is NaN",
    );
    fails_with(&[&args[..], &["/dev/zero"]].concat(), "not a regular file");
}

#[test]
fn matrix_size_is_capped_and_exclude_typos_are_named() {
    let big: Vec<String> = (0..65536).map(|i| i.to_string()).collect();
    let list = format!("[{}]", big.join(","));
    let text = format!(
        "name = \"big\"\n[matrix]\nlimit = {list}\ncalib_images = {list}\nblock = {list}\nlow = {list}\n"
    );
    let e = SweepSpec::parse(&text, "big.toml").unwrap_err().to_string();
    assert!(e.contains("more than") || e.contains("combinations"), "{e}");
    assert!(e.contains("at most 1000000 runs"), "{e}");
    let typo = "name = \"t\"\n[matrix]\nscheme = [\"mip2q\", \"dliq\"]\nblock = [8, 16]\n\
                [[exclude]]\nscheme = \"MIP2Q\"\n";
    let e = SweepSpec::parse(typo, "t.toml").unwrap_err().to_string();
    assert!(
        e.contains("exclude #1: scheme = \"MIP2Q\" is not a value"),
        "{e}"
    );
    let float = "name = \"t\"\n[matrix]\nblock = [8, 16]\n[[exclude]]\nblock = 8.0\n";
    assert!(SweepSpec::parse(float, "t.toml").is_err());
    let good = "name = \"t\"\n[matrix]\nblock = [8, 16]\n[[exclude]]\nblock = 8\n";
    assert_eq!(
        SweepSpec::parse(good, "t.toml")
            .unwrap()
            .expand("t")
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn outputs_are_written_only_to_regular_files_or_new_paths() {
    let dir = tmp("out");
    let target = dir.join("target.csv");
    std::fs::write(&target, "keep me\n").unwrap();
    let link = dir.join("link.csv");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let base = ["quantize", "mnist-8", "--out"];
    fails_with(
        &[&base[..], &[link.to_str().unwrap()]].concat(),
        "not a regular file",
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
    let fifo = dir.join("fifo.csv");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    fails_with(
        &[&base[..], &[fifo.to_str().unwrap()]].concat(),
        "not a regular file",
    );
    let fresh = dir.join("fresh.csv");
    let (code, _, err) = strumlab(&[&base[..], &[fresh.to_str().unwrap()]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(
        std::fs::read_to_string(&fresh)
            .unwrap()
            .starts_with("schema_version")
    );
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "temp files left behind: {left:?}");
}

fn spec_file(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("s.toml");
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn a_locked_sweep_folder_refuses_a_second_sweep_and_duplicates_are_named() {
    let dir = tmp("lock");
    let spec = spec_file(
        &dir,
        "name = \"l\"\n[base]\nmodel = \"mnist-8\"\ndevice = \"cpu\"\nlimit = 20\nhw = \"\"\n\
         [matrix]\nscheme = [\"int8\", \"mip2q\"]\n",
    );
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let held = std::fs::File::create(out.join(".lock")).unwrap();
    held.try_lock().unwrap();
    let args = [
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ];
    fails_with(&args, "another sweep (pid");
    drop(held);
    let (code, _, err) = strumlab(&args);
    assert_eq!(code, 0, "{err}");
    // a row written twice (two writers): resume refuses and names the run
    let rows = out.join("runs.csv");
    let text = std::fs::read_to_string(&rows).unwrap();
    let last = text.lines().last().unwrap().to_string();
    std::fs::write(&rows, format!("{text}{last}\n")).unwrap();
    fails_with(&args, "has two rows");
}

#[test]
fn a_sweep_whose_runs_all_fail_exits_2() {
    let dir = tmp("allfail");
    let spec = spec_file(
        &dir,
        "name = \"f\"\n[base]\nmodel = \"mnist-8\"\ndevice = \"cpu\"\nlimit = 5\nhw = \"\"\n\
         scheme = \"mip2q\"\nblock = 4\n[matrix]\nlow = [5, 6]\n",
    );
    let out = dir.join("out");
    fails_with(
        &[
            "sweep",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ],
        "all 2 runs failed",
    );
}

fn write_png(path: &Path, w: u32, h: u32) {
    image::RgbImage::from_pixel(w, h, image::Rgb([120, 30, 200]))
        .save(path)
        .unwrap();
}

/// Rewrite a PNG's IHDR to declare `w` x `h` (with a valid CRC), leaving the data as is.
fn declare_size(path: &Path, w: u32, h: u32) {
    let mut b = std::fs::read(path).unwrap();
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&b[12..29]);
    b[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    std::fs::write(path, b).unwrap();
}

#[test]
fn image_folders_bound_sizes_and_refuse_partial_labels() {
    let dir = tmp("img");
    let huge = dir.join("huge");
    std::fs::create_dir_all(&huge).unwrap();
    write_png(&huge.join("a.png"), 8, 8);
    declare_size(&huge.join("a.png"), 20000, 20000);
    let args = ["eval", "--model", "effnet-lite0", "-q", "--data"];
    let card_ok = strumlab(&["inspect", "effnet-lite0"]).0 == 0;
    if card_ok {
        fails_with(
            &[&args[..], &[huge.to_str().unwrap()]].concat(),
            "image is 20000 x 20000 pixels, larger than the 64 Mpixel",
        );
    }
    // labels for 2 of 4 images: an error naming an unlabelled one
    let part = dir.join("part");
    std::fs::create_dir_all(&part).unwrap();
    for n in ["a", "b", "c", "d"] {
        write_png(&part.join(format!("{n}.png")), 16, 16);
    }
    std::fs::write(part.join("labels.txt"), "a.png 1\nb.png 2\n").unwrap();
    if card_ok {
        fails_with(
            &[&args[..], &[part.to_str().unwrap()]].concat(),
            "2 of 4 images have labels",
        );
        // one label outside the model's 1000 classes: named, not a silently unlabelled run
        std::fs::write(
            part.join("labels.txt"),
            "a.png 1\nb.png 2\nc.png 5000\nd.png 3\n",
        )
        .unwrap();
        fails_with(
            &[&args[..], &[part.to_str().unwrap()]].concat(),
            "label 5000 of image 2 is not one of the model's 1000 classes",
        );
        // `--limit` decodes only the first images: a corrupt last one is never read
        let lazy = dir.join("lazy");
        std::fs::create_dir_all(&lazy).unwrap();
        write_png(&lazy.join("a.png"), 16, 16);
        std::fs::write(lazy.join("z.png"), b"not a png").unwrap();
        let (code, _, err) =
            strumlab(&[&args[..], &[lazy.to_str().unwrap(), "--limit", "1"]].concat());
        assert_eq!(code, 0, "{err}");
        fails_with(&[&args[..], &[lazy.to_str().unwrap()]].concat(), "z.png");
    } else {
        eprintln!("EfficientNet-Lite0 not fetched: image-folder checks skipped");
        assert!(std::env::var_os("STRUMLAB_REQUIRE_ASSETS").is_none());
    }
}

#[test]
fn idx_gzip_bombs_are_bounded() {
    let dir = tmp("idx");
    let gz_file = |name: &str, dims: &[u32], zeros_mib: usize| {
        let p = dir.join(name);
        common::idx_gz(&p, dims, zeros_mib << 20);
        p
    };
    // dims declaring 1.6 GB: refused from the header, nothing decompressed
    let p = gz_file("big-images-idx3-ubyte.gz", &[100_000, 128, 128], 1);
    let e = strumlab::data::idx::read_idx_u8(&p)
        .unwrap_err()
        .to_string();
    assert!(e.contains("declare more than"), "{e}");
    // 5 images of 28 x 28 declared, 64 MiB of zeros behind them: read stops past 3,920 bytes
    let p = gz_file("long-images-idx3-ubyte.gz", &[5, 28, 28], 64);
    let e = strumlab::data::idx::read_idx_u8(&p)
        .unwrap_err()
        .to_string();
    assert!(e.contains("payload has more than 3920 bytes"), "{e}");
}

/// A model whose input has symbolic height and width: every command that runs it says to
/// pass `--input-shape`, and `eval --input-shape` runs it (a symbolic batch is 1).
#[test]
fn symbolic_spatial_dims_take_input_shape() {
    use prost::Message;
    use strumlab::model::onnx_proto::*;
    let dir = tmp("symbolic");
    let dims = |names: &[(&str, i64)]| TensorShapeProto {
        dim: names
            .iter()
            .map(|(p, v)| Dimension {
                dim_value: (*v > 0).then_some(*v),
                dim_param: (!p.is_empty()).then(|| p.to_string()),
            })
            .collect(),
    };
    let vi = |name: &str, s: TensorShapeProto| ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: Some(1),
                shape: Some(s),
            }),
        }),
    };
    let w: Vec<f32> = (0..10).map(|i| 0.01 * (i as f32 + 1.0)).collect();
    let bytes = ModelProto {
        ir_version: Some(7),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        producer_name: Some("strumlab-tests".into()),
        graph: Some(GraphProto {
            node: vec![
                node("GlobalAveragePool", "gap", &["x"], &["p"], vec![]),
                node("Flatten", "flat", &["p"], &["f"], vec![]),
                node(
                    "Gemm",
                    "fc",
                    &["f", "w"],
                    &["y"],
                    vec![common::int("transB", 1)],
                ),
            ],
            name: Some("sym".into()),
            initializer: vec![f32_tensor("w", &[10, 1], &w)],
            input: vec![vi("x", dims(&[("N", 0), ("", 1), ("H", 0), ("W", 0)]))],
            output: vec![vi("y", dims(&[]))],
        }),
    }
    .encode_to_vec();
    let p = dir.join("sym.onnx");
    std::fs::write(&p, bytes).unwrap();
    let m = p.to_str().unwrap();
    fails_with(
        &["inspect", m],
        "dimension 2 is symbolic; pass --input-shape",
    );
    fails_with(
        &["eval", "--model", m, "--data", "mnist-test", "-q"],
        "pass --input-shape",
    );
    let (code, out, err) = strumlab(&[
        "eval",
        "--model",
        m,
        "--data",
        "mnist-test",
        "--limit",
        "10",
        "--input-shape",
        "1,1,28,28",
        "--scheme",
        "int8",
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("10 images"), "{out}");
    // quantize reads the weights only: it needs no shape
    let (code, out, err) = strumlab(&["quantize", m, "--scheme", "mip2q"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("fc"), "{out}");
    // the other commands that load a model take --input-shape as their error asks
    fails_with(&["hw", "--model", m], "pass --input-shape");
    let (code, out, err) = strumlab(&["hw", "--model", m, "--input-shape", "1,1,28,28"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("PE"), "{out}");
    let exp = dir.join("export");
    let (code, _, err) = strumlab(&[
        "export",
        "--model",
        m,
        "--data",
        "mnist-test",
        "--limit",
        "3",
        "--out",
        exp.to_str().unwrap(),
        "--input-shape",
        "1,1,28,28",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::metadata(exp.join("logits.f32")).unwrap().len(),
        3 * 10 * 4
    );
    // and so do sweep specs
    let spec = dir.join("sym-sweep.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"sym\"\n[base]\nmodel = {m:?}\ninput_shape = [1, 1, 28, 28]\n\
             data = \"mnist-test\"\nlimit = 10\nhw = \"\"\ndevice = \"cpu\"\n\
             [matrix]\nscheme = [\"int8\"]\n"
        ),
    )
    .unwrap();
    let out_dir = dir.join("sweep-out");
    let (code, _, err) = strumlab(&[
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    let rows = std::fs::read_to_string(out_dir.join("runs.csv")).unwrap();
    assert_eq!(rows.lines().count(), 2, "{rows}");
    assert!(rows.lines().nth(1).unwrap().contains(",ok,"), "{rows}");
}

/// A real model with a symbolic input and Constant-node weights (the PP-OCR text-direction
/// classifier): its card's size gives the input shape, so inspect, quantize and eval run it
/// without flags; `--input-shape` still overrides.
#[test]
fn ppocr_classifier_runs_from_its_card() {
    let have = strumlab::data::cache_dir().join("ppocr-cls.onnx").is_file();
    if !have {
        assert!(
            std::env::var_os("STRUMLAB_REQUIRE_ASSETS").is_none(),
            "STRUMLAB_REQUIRE_ASSETS is set but ppocr-cls.onnx is not fetched"
        );
        eprintln!("skipping: ppocr-cls.onnx not fetched (scripts/fetch-assets.sh)");
        return;
    }
    let (code, out, err) = strumlab(&["inspect", "ppocr-cls"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("54 weight layers"), "{out}");
    let (code, out, err) = strumlab(&["quantize", "ppocr-cls", "--scheme", "mip2q"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("mip2q-b8-l4"), "{out}");
    let (code, out, err) = strumlab(&[
        "eval",
        "--model",
        "ppocr-cls",
        "--scheme",
        "int8",
        "--limit",
        "4",
        "-q",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["summary"]["images"], 4);
    assert!(v["summary"]["agreement_top1"].as_f64().is_some());
    let (code, out, err) = strumlab(&["inspect", "ppocr-cls", "--input-shape", "1,3,48,96"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[1, 2]"), "{out}");
}
