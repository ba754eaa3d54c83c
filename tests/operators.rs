//! The operators beyond classifiers (Slice, Split, nearest Resize / Upsample, ConvTranspose,
//! LRN, folding of Range / Expand shape chains), each on a small graph built here:
//! FP32 outputs of the reference kernels within 1e-5 (relative to the output's largest
//! magnitude) of onnxruntime (scripts/ort-run.py in the peers venv, scripts/peers-setup.sh),
//! the fast FP32 engine close to the reference, and integer mode bit-identical between the
//! fast and reference kernels. A detection-style graph (Resize + Concat + Split + Sigmoid
//! head, two outputs) runs the same checks.

mod common;

use std::path::PathBuf;

use common::{Rng, f32_tensor, float, i64_tensor, int, ints, node, string, tmp};
use prost::Message;
use strumlab::cpu::engine::{Engine, Kernels, Mode};
use strumlab::model::onnx_proto::*;
use strumlab::model::{LoadOptions, Tensor, load_onnx_bytes};
use strumlab::quant::{QuantConfig, Scheme, quantize_graph};

/// A model with one input of `dims` and the named outputs (shapes left to the runtime).
fn graph(
    opset: i64,
    dims: &[i64],
    outputs: &[&str],
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
) -> Vec<u8> {
    let out = |n: &str| ValueInfoProto {
        name: Some(n.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: Some(1),
                shape: None,
            }),
        }),
    };
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        producer_name: Some("strumlab-tests".into()),
        graph: Some(GraphProto {
            node: nodes,
            name: Some("ops".into()),
            initializer: inits,
            input: vec![common::value_info("x", dims)],
            output: outputs.iter().map(|o| out(o)).collect(),
        }),
    }
    .encode_to_vec()
}

/// Seeded normal weights, scaled.
fn weights(rng: &mut Rng, name: &str, dims: &[i64], scale: f32) -> TensorProto {
    let n: i64 = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.normal() * scale).collect();
    f32_tensor(name, dims, &v)
}

fn conv(name: &str, x: &str, w: &str, out: &str, pads: i64, stride: i64) -> NodeProto {
    node(
        "Conv",
        name,
        &[x, w],
        &[out],
        vec![ints("pads", &[pads; 4]), ints("strides", &[stride, stride])],
    )
}

/// The cases: name and model bytes (input [1, C, H, W] given by the model).
fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let mut r = Rng(0x5eed_0f_0a5);
    let mut v = Vec::new();
    // Slice of channels (step 2) and width, then ReLU
    v.push((
        "slice",
        graph(
            13,
            &[1, 4, 6, 6],
            &["y"],
            vec![
                conv("c0", "x", "w0", "a", 1, 1),
                node(
                    "Slice",
                    "sl",
                    &["a", "st", "en", "ax", "sp"],
                    &["b"],
                    vec![],
                ),
                node("Relu", "r", &["b"], &["y"], vec![]),
            ],
            vec![
                weights(&mut r, "w0", &[8, 4, 3, 3], 0.3),
                i64_tensor("st", &[1, 1]),
                i64_tensor("en", &[7, -1]),
                i64_tensor("ax", &[1, 3]),
                i64_tensor("sp", &[2, 1]),
            ],
        ),
    ));
    // Split into unequal parts, different activations, Concat back
    v.push((
        "split-concat",
        graph(
            13,
            &[1, 4, 6, 6],
            &["y"],
            vec![
                conv("c0", "x", "w0", "a", 1, 1),
                node(
                    "Split",
                    "sp",
                    &["a", "parts"],
                    &["p", "q"],
                    vec![int("axis", 1)],
                ),
                node("Sigmoid", "s", &["p"], &["ps"], vec![]),
                node("Relu", "r", &["q"], &["qr"], vec![]),
                node("Concat", "cat", &["qr", "ps"], &["y"], vec![int("axis", 1)]),
            ],
            vec![
                weights(&mut r, "w0", &[6, 4, 3, 3], 0.3),
                i64_tensor("parts", &[2, 4]),
            ],
        ),
    ));
    // Resize nearest: scales with the defaults; sizes with asymmetric + floor; align_corners
    for (name, attrs, scales, sizes) in [
        ("resize-scales", vec![], Some([1.0, 1.0, 2.0, 2.0]), None),
        (
            "resize-sizes-asymmetric",
            vec![
                string("coordinate_transformation_mode", "asymmetric"),
                string("nearest_mode", "floor"),
            ],
            None,
            Some([1i64, 4, 9, 11]),
        ),
        (
            "resize-align-corners",
            vec![
                string("coordinate_transformation_mode", "align_corners"),
                string("nearest_mode", "round_prefer_ceil"),
            ],
            Some([1.0, 1.0, 1.5, 1.5]),
            None,
        ),
        (
            "resize-linear-scales",
            vec![string("mode", "linear")],
            Some([1.0, 1.0, 2.0, 2.0]),
            None,
        ),
        (
            "resize-linear-align-corners",
            vec![
                string("mode", "linear"),
                string("coordinate_transformation_mode", "align_corners"),
            ],
            None,
            Some([1i64, 4, 9, 11]),
        ),
        (
            "resize-linear-down-pytorch",
            vec![
                string("mode", "linear"),
                string("coordinate_transformation_mode", "pytorch_half_pixel"),
            ],
            None,
            Some([1i64, 4, 3, 4]),
        ),
    ] {
        let mut a = attrs;
        if !a.iter().any(|x| x.name.as_deref() == Some("mode")) {
            a.insert(0, string("mode", "nearest"));
        }
        let (ins, mut inits) = match (scales, sizes) {
            (Some(s), _) => (
                ["a", "", "scales"].to_vec(),
                vec![f32_tensor("scales", &[4], &s)],
            ),
            (_, Some(z)) => (
                ["a", "", "", "sizes"].to_vec(),
                vec![i64_tensor("sizes", &z)],
            ),
            _ => unreachable!(),
        };
        inits.push(weights(&mut r, "w0", &[4, 3, 3, 3], 0.3));
        v.push((
            name,
            graph(
                13,
                &[1, 3, 5, 7],
                &["y"],
                vec![
                    conv("c0", "x", "w0", "a", 1, 1),
                    node("Resize", "rs", &ins, &["y"], a),
                ],
                inits,
            ),
        ));
    }
    // Resize-10 shrinking (nearest: onnxruntime's "simple" rounding takes the ceiling)
    v.push((
        "resize-10-down",
        graph(
            10,
            &[1, 3, 8, 8],
            &["y"],
            vec![node(
                "Resize",
                "rs",
                &["x", "sc"],
                &["y"],
                vec![string("mode", "nearest")],
            )],
            vec![f32_tensor("sc", &[4], &[1.0, 1.0, 0.5, 0.75])],
        ),
    ));
    // Upsample-9 (nearest, scales input)
    v.push((
        "upsample-9",
        graph(
            9,
            &[1, 3, 4, 4],
            &["y"],
            vec![node(
                "Upsample",
                "up",
                &["x", "sc"],
                &["y"],
                vec![string("mode", "nearest")],
            )],
            vec![f32_tensor("sc", &[4], &[1.0, 1.0, 2.0, 3.0])],
        ),
    ));
    // ConvTranspose: stride 2, pads, output padding, bias; and grouped
    v.push((
        "conv-transpose",
        graph(
            13,
            &[1, 4, 5, 5],
            &["y"],
            vec![node(
                "ConvTranspose",
                "ct",
                &["x", "w", "b"],
                &["y"],
                vec![
                    ints("strides", &[2, 2]),
                    ints("pads", &[1, 1, 1, 1]),
                    ints("output_padding", &[1, 1]),
                ],
            )],
            vec![
                weights(&mut r, "w", &[4, 3, 3, 3], 0.3),
                weights(&mut r, "b", &[3], 0.1),
            ],
        ),
    ));
    v.push((
        "conv-transpose-grouped",
        graph(
            13,
            &[1, 4, 5, 5],
            &["y"],
            vec![node(
                "ConvTranspose",
                "ct",
                &["x", "w"],
                &["y"],
                vec![
                    ints("strides", &[2, 2]),
                    ints("pads", &[1, 0, 1, 0]),
                    int("group", 2),
                ],
            )],
            vec![weights(&mut r, "w", &[4, 2, 4, 4], 0.3)],
        ),
    ));
    // LRN after a conv (AlexNet's)
    v.push((
        "lrn",
        graph(
            13,
            &[1, 3, 6, 6],
            &["y"],
            vec![
                conv("c0", "x", "w0", "a", 1, 1),
                node(
                    "LRN",
                    "n",
                    &["a"],
                    &["y"],
                    vec![
                        int("size", 5),
                        float("alpha", 0.05),
                        float("beta", 0.75),
                        float("bias", 2.0),
                    ],
                ),
            ],
            vec![weights(&mut r, "w0", &[8, 3, 3, 3], 0.5)],
        ),
    ));
    // A shape chain of constants: Range -> Cast -> Reshape -> Expand, added to the input
    v.push((
        "range-expand",
        graph(
            13,
            &[1, 4, 3, 3],
            &["y"],
            vec![
                node("Range", "rg", &["r0", "r1", "r2"], &["ri"], vec![]),
                node("Cast", "cs", &["ri"], &["rf"], vec![int("to", 1)]),
                node("Reshape", "rh", &["rf", "shp"], &["r4"], vec![]),
                node("Expand", "ex", &["r4", "full"], &["re"], vec![]),
                node("Add", "add", &["x", "re"], &["y"], vec![]),
            ],
            vec![
                i64_tensor("r0", &[0]).with_dims(&[]),
                i64_tensor("r1", &[4]).with_dims(&[]),
                i64_tensor("r2", &[1]).with_dims(&[]),
                i64_tensor("shp", &[1, 4, 1, 1]),
                i64_tensor("full", &[1, 4, 3, 3]),
            ],
        ),
    ));
    v.push(("detection-head", detection(&mut r)));
    v.push(("all-ops-chain", all_ops(&mut r)));
    v
}

/// Two strided convs, the deeper map upsampled and concatenated with the shallower one, a
/// 1x1 head split into scores (Sigmoid) and boxes: two graph outputs.
fn detection(r: &mut Rng) -> Vec<u8> {
    graph(
        13,
        &[1, 3, 16, 16],
        &["scores", "boxes"],
        vec![
            conv("c1", "x", "w1", "f1", 1, 2),
            node("Relu", "r1", &["f1"], &["f1r"], vec![]),
            conv("c2", "f1r", "w2", "f2", 1, 2),
            node("Relu", "r2", &["f2"], &["f2r"], vec![]),
            node(
                "Resize",
                "up",
                &["f2r", "", "sc"],
                &["f2u"],
                vec![string("mode", "nearest")],
            ),
            node(
                "Concat",
                "cat",
                &["f1r", "f2u"],
                &["m"],
                vec![int("axis", 1)],
            ),
            conv("head", "m", "wh", "h", 0, 1),
            node(
                "Split",
                "split",
                &["h", "parts"],
                &["s", "boxes"],
                vec![int("axis", 1)],
            ),
            node("Sigmoid", "sig", &["s"], &["scores"], vec![]),
        ],
        vec![
            weights(r, "w1", &[8, 3, 3, 3], 0.4),
            weights(r, "w2", &[8, 8, 3, 3], 0.3),
            f32_tensor("sc", &[4], &[1.0, 1.0, 2.0, 2.0]),
            weights(r, "wh", &[12, 16, 1, 1], 0.3),
            i64_tensor("parts", &[4, 8]),
        ],
    )
}

/// The new ops in one chain on an RGB input (so that it runs from an image folder through
/// the binary): Conv, LRN, Slice of channels, ConvTranspose (x2), linear Resize (/2),
/// Split, Concat in swapped order, ReLU. (Nearest Resize runs in the detection graph.)
fn all_ops(r: &mut Rng) -> Vec<u8> {
    graph(
        13,
        &[1, 3, 16, 16],
        &["y"],
        vec![
            conv("c1", "x", "w1", "a", 1, 1),
            node(
                "LRN",
                "n",
                &["a"],
                &["b"],
                vec![int("size", 3), float("alpha", 0.01)],
            ),
            node("Slice", "sl", &["b", "s0", "s1", "s2"], &["s"], vec![]),
            node(
                "ConvTranspose",
                "ct",
                &["s", "wt"],
                &["t"],
                vec![ints("strides", &[2, 2])],
            ),
            node(
                "Resize",
                "down",
                &["t", "", "half"],
                &["d"],
                vec![string("mode", "linear")],
            ),
            node(
                "Split",
                "sp",
                &["d", "parts"],
                &["p", "q"],
                vec![int("axis", 1)],
            ),
            node("Concat", "cat", &["q", "p"], &["m"], vec![int("axis", 1)]),
            node("Relu", "r", &["m"], &["y"], vec![]),
        ],
        vec![
            weights(r, "w1", &[8, 3, 3, 3], 0.4),
            i64_tensor("s0", &[0]),
            i64_tensor("s1", &[6]),
            i64_tensor("s2", &[1]),
            weights(r, "wt", &[6, 4, 2, 2], 0.3),
            f32_tensor("half", &[4], &[1.0, 1.0, 0.5, 0.5]),
            i64_tensor("parts", &[1, 3]),
        ],
    )
}

trait WithDims {
    fn with_dims(self, d: &[i64]) -> Self;
}
impl WithDims for TensorProto {
    fn with_dims(mut self, d: &[i64]) -> Self {
        self.dims = d.to_vec();
        self
    }
}

/// The peers' Python (onnxruntime), or `None` (then the test says so, and fails where
/// assets are required).
fn peers_python() -> Option<PathBuf> {
    let p = std::env::var_os("STRUMLAB_PEERS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-peers/bin/python")
        });
    if p.is_file() {
        return Some(p);
    }
    assert!(
        std::env::var_os("STRUMLAB_REQUIRE_ASSETS").is_none(),
        "no onnxruntime at {}: run scripts/peers-setup.sh",
        p.display()
    );
    eprintln!(
        "onnxruntime not set up ({}): the cross-check is skipped",
        p.display()
    );
    None
}

/// onnxruntime's outputs of `model` on `x` (of `shape`, when the model's input is symbolic).
fn ort_shaped(
    py: &PathBuf,
    model: &[u8],
    x: &[f32],
    dir: &std::path::Path,
    name: &str,
    shape: Option<&[usize]>,
) -> Vec<Vec<f32>> {
    let m = dir.join(format!("{name}.onnx"));
    std::fs::write(&m, model).unwrap();
    let i = dir.join(format!("{name}.in.f32"));
    std::fs::write(
        &i,
        x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .unwrap();
    let prefix = dir.join(format!("{name}.out"));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/ort-run.py");
    let mut cmd = std::process::Command::new(py);
    cmd.arg(script).arg(&m).arg(&i).arg(&prefix);
    if let Some(s) = shape {
        let dims: Vec<String> = s.iter().map(|d| d.to_string()).collect();
        cmd.arg(dims.join(","));
    }
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{name}: onnxruntime: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (0..)
        .map(|k| PathBuf::from(format!("{}{k}.f32", prefix.display())))
        .take_while(|p| p.is_file())
        .map(|p| {
            std::fs::read(p)
                .unwrap()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect()
}

fn ort(py: &PathBuf, model: &[u8], x: &[f32], dir: &std::path::Path, name: &str) -> Vec<Vec<f32>> {
    ort_shaped(py, model, x, dir, name, None)
}

/// Largest |a - b| over the largest |b| (1 when b is all zero).
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn operators_match_onnxruntime_and_integer_kernels_agree() {
    let dir = tmp("operators");
    let py = peers_python();
    let mut rng = Rng(7);
    for (name, bytes) in cases() {
        let g = load_onnx_bytes(&bytes, name, &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let n: usize = g.input_shape.iter().product();
        let inputs: Vec<Vec<f32>> = (0..8)
            .map(|_| (0..n).map(|_| rng.normal()).collect())
            .collect();
        let refr = |x: &[f32]| -> Vec<Vec<f32>> {
            let t = Tensor::new(g.input_shape.clone(), x.to_vec());
            strumlab::cpu::reference::run(&g, &t, &Default::default())
                .unwrap()
                .into_iter()
                .map(|t| t.data)
                .collect()
        };
        let want = refr(&inputs[0]);
        assert_eq!(want.len(), g.outputs.len(), "{name}");
        if let Some(py) = &py {
            let got = ort(py, &bytes, &inputs[0], &dir, name);
            assert_eq!(got.len(), want.len(), "{name}: outputs");
            for (k, (o, w)) in got.iter().zip(&want).enumerate() {
                let e = rel_err(w, o);
                assert!(
                    e <= 1e-5,
                    "{name} output {k}: {e:e} relative to onnxruntime"
                );
            }
        }
        // the FP32 engine (fast kernels) against the reference kernels
        let fp = Engine::new(&g, Mode::Fp32, None, None).unwrap();
        for (o, w) in fp.run(&inputs[0], false).unwrap().0.iter().zip(&want) {
            assert!(rel_err(o, w) <= 1e-5, "{name}: FP32 engine");
        }
        // integer mode: fast kernels == reference kernels, bit for bit
        let calib = Tensor::new(
            [vec![inputs.len()], g.input_shape[1..].to_vec()].concat(),
            inputs.concat(),
        );
        let sc = strumlab::cpu::engine::calibrate(
            &g,
            &calib,
            strumlab::quant::config::Calib::Max,
            99.99,
        )
        .unwrap();
        for scheme in [Scheme::Int8, Scheme::Mip2q] {
            let q = quantize_graph(
                &g,
                &QuantConfig {
                    scheme,
                    ..Default::default()
                },
            )
            .unwrap();
            let fast = Engine::new(&g, Mode::Integer, Some(&q), Some(&sc)).unwrap();
            let slow = Engine::new(&g, Mode::Integer, Some(&q), Some(&sc))
                .unwrap()
                .with_kernels(Kernels::Reference);
            for x in &inputs {
                let (a, b) = (fast.run(x, false).unwrap().0, slow.run(x, false).unwrap().0);
                assert_eq!(a, b, "{name} {scheme:?}");
            }
        }
    }
}

#[test]
fn unsupported_resize_modes_and_sliced_batch_are_named() {
    let lin = graph(
        13,
        &[1, 3, 4, 4],
        &["y"],
        vec![node(
            "Resize",
            "rs",
            &["x", "", "sc"],
            &["y"],
            vec![string("mode", "cubic")],
        )],
        vec![f32_tensor("sc", &[4], &[1.0, 1.0, 2.0, 2.0])],
    );
    let e = load_onnx_bytes(&lin, "linear", &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("node 'rs': unsupported operator Resize in mode 'cubic'"),
        "{e}"
    );
    let batch = graph(
        13,
        &[1, 3, 4, 4],
        &["y"],
        vec![node(
            "Slice",
            "sl",
            &["x", "st", "en", "ax"],
            &["y"],
            vec![],
        )],
        vec![
            i64_tensor("st", &[1]),
            i64_tensor("en", &[2]),
            i64_tensor("ax", &[0]),
        ],
    );
    let e = load_onnx_bytes(&batch, "batch", &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("slices the batch axis"), "{e}");
}

#[test]
fn every_unsupported_operator_is_listed_at_once() {
    let g = graph(
        13,
        &[1, 3, 4, 4],
        &["y"],
        vec![
            node("Relu", "r", &["x"], &["a"], vec![]),
            node(
                "Einsum",
                "e",
                &["a"],
                &["b"],
                vec![string("equation", "ij->ji")],
            ),
            node("TopK", "t1", &["b", "k"], &["c", "ci"], vec![]),
            node("TopK", "t2", &["c", "k"], &["y", "yi"], vec![]),
        ],
        vec![i64_tensor("k", &[1])],
    );
    let e = load_onnx_bytes(&g, "unsupported", &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("node 'e': unsupported operator Einsum; the model also uses TopK (2 nodes)"),
        "{e}"
    );
}

/// The detection-style graph end to end through the binary: inspect, quantize, eval (per
/// output SQNR and largest error; no class-score metrics), eval with the integer reference
/// check, export; a card naming a class-score output that is not there is refused.
#[test]
fn detection_graph_evaluates_per_output() {
    let dir = tmp("detection");
    let model = dir.join("det.onnx");
    std::fs::write(&model, detection(&mut Rng(11))).unwrap();
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    for i in 0..6u32 {
        image::RgbImage::from_fn(20, 20, |x, y| {
            image::Rgb([(x * 12 + i * 30) as u8, (y * 12) as u8, (i * 40) as u8])
        })
        .save(images.join(format!("im{i}.png")))
        .unwrap();
    }
    let card = |extra: &str| {
        let p = dir.join("card.toml");
        std::fs::write(
            &p,
            format!(
                "name = \"det\"\nchannels = 3\nsize = [16, 16]\npixel_scale = 0.00392157\n\
                 mean = [0.5, 0.5, 0.5]\nstd = [0.25, 0.25, 0.25]\nresize_shorter = 16\n\
                 center_crop = true\n{extra}"
            ),
        )
        .unwrap();
        p
    };
    let c = card("");
    let (m, c, im) = (
        model.to_str().unwrap(),
        c.to_str().unwrap(),
        images.to_str().unwrap(),
    );
    for args in [vec!["inspect", m], vec!["quantize", m, "--scheme", "mip2q"]] {
        let (code, _, err) = common::strumlab(&args);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    let base = [
        "eval",
        "--model",
        m,
        "--card",
        c,
        "--data",
        im,
        "--scheme",
        "mip2q",
        "--no-cache",
        "-q",
    ];
    let (code, out, err) =
        common::strumlab(&[&base[..], &["--json", "--check-reference"]].concat());
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["summary"]["agreement_top1"].is_null(), "{out}");
    assert_eq!(v["summary"]["images"], 6, "{out}");
    assert_eq!(v["summary"]["reference_mismatches"], 0, "{out}");
    let outs = v["outputs"].as_array().unwrap();
    assert_eq!(outs.len(), 2);
    for (o, (name, n)) in outs.iter().zip([("scores", 4 * 64), ("boxes", 8 * 64)]) {
        assert_eq!(o["name"], name);
        assert_eq!(o["elems_per_image"], n);
        assert_eq!(o["class_scores"], false);
        let db = o["sqnr_db"].as_f64().unwrap();
        assert!(db > 15.0 && db < 80.0, "{name}: SQNR {db} dB");
        assert!(o["max_abs_err"].as_f64().unwrap() > 0.0);
    }
    let (code, table, err) = common::strumlab(&base);
    assert_eq!(code, 0, "{err}");
    assert!(
        table.contains("outputs against FP32:") && table.contains("boxes"),
        "{table}"
    );
    let exp = dir.join("export");
    let (code, _, err) = common::strumlab(&[
        "export",
        "--model",
        m,
        "--card",
        c,
        "--data",
        im,
        "--out",
        exp.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    // the chain of every new op, through the same commands (one output, 4 x 16 x 16)
    let chain = dir.join("chain.onnx");
    std::fs::write(&chain, all_ops(&mut Rng(5))).unwrap();
    let ch = chain.to_str().unwrap();
    for args in [
        vec!["inspect", ch],
        vec!["quantize", ch, "--scheme", "dliq"],
    ] {
        let (code, _, err) = common::strumlab(&args);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    let (code, out, err) = common::strumlab(
        &[
            &["eval", "--model", ch],
            &base[3..],
            &["--json", "--check-reference"],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["summary"]["reference_mismatches"], 0, "{out}");
    assert_eq!(v["outputs"][0]["elems_per_image"], 4 * 16 * 16, "{out}");
    assert!(v["outputs"][0]["sqnr_db"].as_f64().unwrap() > 10.0, "{out}");
    let exp = dir.join("export-chain");
    let (code, _, err) = common::strumlab(&[
        "export",
        "--model",
        ch,
        "--card",
        c,
        "--data",
        im,
        "--out",
        exp.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::metadata(exp.join("logits.f32")).unwrap().len(),
        6 * 1024 * 4
    );
    let bad = card("logits_output = \"classes\"\n");
    let (code, _, err) = common::strumlab(
        &[
            &base[..3],
            &["--card", bad.to_str().unwrap(), "--data", im, "-q"],
        ]
        .concat(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the model has no output 'classes' (its outputs: scores, boxes)"),
        "{err}"
    );
}

/// A real detector from a registry package (PP-OCRv4 text detection: 6 nearest Resize in
/// its FPN, 2 ConvTranspose in its head, a Sigmoid probability map) at 96 x 96: FP32 within
/// 1e-5 of onnxruntime, integer mode fast == reference kernels.
#[test]
fn real_text_detector_runs() {
    let path = strumlab::data::cache_dir().join("ppocr-det.onnx");
    if !path.is_file() {
        assert!(
            std::env::var_os("STRUMLAB_REQUIRE_ASSETS").is_none(),
            "{} missing: run scripts/fetch-assets.sh",
            path.display()
        );
        eprintln!("{} not fetched: skipped", path.display());
        return;
    }
    let shape = vec![1, 3, 96, 96];
    let opts = LoadOptions {
        input_shape: Some(shape.clone()),
        ..Default::default()
    };
    let g = strumlab::model::load_onnx(&path, &opts).unwrap();
    let kinds: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "Resize").count(), 6);
    assert_eq!(kinds.iter().filter(|k| **k == "ConvTranspose").count(), 2);
    let mut rng = Rng(99);
    let x: Vec<f32> = (0..96 * 96 * 3).map(|_| rng.normal()).collect();
    let fp = Engine::new(&g, Mode::Fp32, None, None).unwrap();
    let ours = fp.run(&x, false).unwrap().0.remove(0);
    if let Some(py) = peers_python() {
        let dir = tmp("ppocr-det");
        let bytes = std::fs::read(&path).unwrap();
        let theirs = ort_shaped(&py, &bytes, &x, &dir, "det", Some(&shape)).remove(0);
        // Absolute on a probability map: onnxruntime's Sigmoid (MLAS) is a rational
        // approximation with ~1e-7 absolute error, so near-zero probabilities differ in
        // relative terms while the logits before it agree to ~1e-6 relative.
        let e = ours
            .iter()
            .zip(&theirs)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(e <= 1e-5, "largest |difference| {e:e} against onnxruntime");
    }
    let calib = Tensor::new(shape.clone(), x.clone());
    let sc =
        strumlab::cpu::engine::calibrate(&g, &calib, strumlab::quant::config::Calib::Max, 99.99)
            .unwrap();
    let q = quantize_graph(
        &g,
        &QuantConfig {
            scheme: Scheme::Mip2q,
            ..Default::default()
        },
    )
    .unwrap();
    let fast = Engine::new(&g, Mode::Integer, Some(&q), Some(&sc)).unwrap();
    let slow = Engine::new(&g, Mode::Integer, Some(&q), Some(&sc))
        .unwrap()
        .with_kernels(Kernels::Reference);
    assert_eq!(
        fast.run(&x, false).unwrap().0,
        slow.run(&x, false).unwrap().0
    );
}
