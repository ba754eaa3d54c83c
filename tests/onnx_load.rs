//! ONNX loading: the real mnist-8 model against its shipped test vector, parsing of the
//! ONNX backend-test CNN graphs, fusions, padding and error reporting.

mod common;

use std::collections::HashMap;

use common::*;
use strumlab::Error;
use strumlab::cpu::reference;
use strumlab::model::{LoadOptions, Op, Tensor, load_onnx, load_onnx_bytes, read_tensor_pb};

fn load_bytes(b: &[u8]) -> strumlab::Result<strumlab::model::Graph> {
    load_onnx_bytes(b, "test.onnx", &LoadOptions::default())
}

/// Relative tolerance for FP32 reference vs. the ONNX test vector: summation order differs
/// from the exporting framework's, and mnist-8's logits reach ~6.6e3.
const TEST_VECTOR_RTOL: f32 = 1e-5;

#[test]
fn mnist8_matches_its_test_vector() {
    let g = load_onnx(&data("mnist-8.onnx"), &LoadOptions::default()).unwrap();
    let x = read_tensor_pb(&data("mnist-8-test-vector/input_0.pb")).unwrap();
    let want = read_tensor_pb(&data("mnist-8-test-vector/output_0.pb")).unwrap();
    let got = &reference::run(&g, &x, &HashMap::new()).unwrap()[0];
    assert_eq!(got.shape, vec![1, 10]);
    let scale = want.data.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (a, b) in got.data.iter().zip(&want.data) {
        assert!(
            (a - b).abs() <= TEST_VECTOR_RTOL * scale,
            "got {:?}\nwant {:?}",
            got.data,
            want.data
        );
    }
    // The bias Adds were folded into the Conv and MatMul layers.
    assert_eq!(g.layers().len(), 3);
    assert!(!g.nodes.iter().any(|n| matches!(n.op, Op::Add { .. })));
}

#[test]
fn backend_test_cnn_graphs_parse() {
    // (file, weight layers, parameters after BN folding)
    let cases = [
        ("light_resnet50.onnx", 54, 25_530_472u64),
        ("light_vgg19.onnx", 19, 143_667_240),
        ("light_squeezenet.onnx", 26, 1_235_496),
        ("light_densenet121.onnx", 121, 8_057_768),
        ("light_inception_v2.onnx", 70, 11_204_936),
        ("light_shufflenet.onnx", 50, 1_379_880),
        // LRN after its first two convolutions
        ("light_bvlc_alexnet.onnx", 8, 60_965_224),
    ];
    for (f, layers, params) in cases {
        let g = load_onnx(&data(&format!("onnx-light/{f}")), &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(g.layers().len(), layers, "{f}");
        assert_eq!(
            g.nodes.iter().map(|n| g.params(n)).sum::<u64>(),
            params,
            "{f}"
        );
        assert_eq!(
            g.shape(&g.outputs[0]).iter().product::<usize>(),
            1000,
            "{f}: 1000 classes"
        );
    }
    let g = load_onnx(
        &data("onnx-light/light_resnet50.onnx"),
        &LoadOptions::default(),
    )
    .unwrap();
    let macs: u64 = g.nodes.iter().map(|n| g.macs(n)).sum();
    assert_eq!(macs, 4_089_184_256, "ResNet-50 MACs at 224x224");
    // Every BatchNormalization of ResNet-50 follows a conv and is folded away.
    assert!(!g.nodes.iter().any(|n| matches!(n.op, Op::Affine { .. })));
}

#[test]
fn unsupported_op_is_named() {
    // AlexNet's LRN was the example until LRN was supported: an Einsum now
    let bytes = common::model(
        13,
        ("x", &[1, 3, 4, 4]),
        "y",
        vec![common::node(
            "Einsum",
            "e0",
            &["x"],
            &["y"],
            vec![common::string("equation", "nchw->nchw")],
        )],
        vec![],
    );
    let e =
        strumlab::model::load_onnx_bytes(&bytes, "einsum", &LoadOptions::default()).unwrap_err();
    match &e {
        Error::UnsupportedOp { op, .. } => assert_eq!(op, "Einsum"),
        other => panic!("unexpected {other}"),
    }
    assert!(e.to_string().contains("unsupported operator Einsum"), "{e}");
}

#[test]
fn truncated_and_empty_files_fail_cleanly() {
    let bytes = std::fs::read(data("mnist-8.onnx")).unwrap();
    for cut in [0, 1, 10, 100, 5000, bytes.len() - 1] {
        let e = load_bytes(&bytes[..cut]).unwrap_err();
        assert!(matches!(e, Error::OnnxDecode { .. }), "cut {cut}: {e}");
    }
    let e = load_onnx(
        std::path::Path::new("/nonexistent/model.onnx"),
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
}

fn conv_bn_model(bn_after_relu: bool) -> Vec<u8> {
    let w: Vec<f32> = (0..2 * 2 * 3 * 3)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0)
        .collect();
    let mut nodes = vec![node(
        "Conv",
        "conv",
        &["x", "w", "b"],
        &["c"],
        vec![ints("pads", &[1, 1, 1, 1])],
    )];
    if bn_after_relu {
        nodes.push(node("Relu", "relu", &["c"], &["r"], vec![]));
        nodes.push(node(
            "BatchNormalization",
            "bn",
            &["r", "g", "be", "m", "v"],
            &["y"],
            vec![float("epsilon", 1e-3)],
        ));
    } else {
        nodes.push(node(
            "BatchNormalization",
            "bn",
            &["c", "g", "be", "m", "v"],
            &["y"],
            vec![float("epsilon", 1e-3)],
        ));
    }
    model(
        13,
        ("x", &[1, 2, 4, 4]),
        "y",
        nodes,
        vec![
            f32_tensor("w", &[2, 2, 3, 3], &w),
            f32_tensor("b", &[2], &[0.1, -0.2]),
            f32_tensor("g", &[2], &[1.5, 0.5]),
            f32_tensor("be", &[2], &[0.25, -1.0]),
            f32_tensor("m", &[2], &[0.3, -0.4]),
            f32_tensor("v", &[2], &[2.0, 0.5]),
        ],
    )
}

#[test]
fn batchnorm_folds_into_conv_and_matches_the_formula() {
    let x = Tensor::new(
        vec![1, 2, 4, 4],
        (0..32).map(|i| (i as f32 * 0.37).sin()).collect(),
    );
    let folded = load_bytes(&conv_bn_model(false)).unwrap();
    assert_eq!(folded.nodes.len(), 1, "BN folded into the conv");
    let unfolded = load_bytes(&conv_bn_model(true)).unwrap();
    assert!(matches!(
        unfolded.nodes.last().unwrap().op,
        Op::Affine { .. }
    ));
    // Reference: conv alone, then BN by hand.
    let conv_only = load_bytes(&model(
        13,
        ("x", &[1, 2, 4, 4]),
        "c",
        vec![node(
            "Conv",
            "conv",
            &["x", "w", "b"],
            &["c"],
            vec![ints("pads", &[1, 1, 1, 1])],
        )],
        conv_bn_model(false).pipe(|b| {
            use prost::Message;
            strumlab::model::onnx_proto::ModelProto::decode(b.as_slice())
                .unwrap()
                .graph
                .unwrap()
                .initializer
        }),
    ))
    .unwrap();
    let c = &reference::run(&conv_only, &x, &HashMap::new()).unwrap()[0];
    let (g, be, m, v) = (
        [1.5f32, 0.5],
        [0.25f32, -1.0],
        [0.3f32, -0.4],
        [2.0f32, 0.5],
    );
    let bn = |val: f32, ch: usize| g[ch] * (val - m[ch]) / (v[ch] + 1e-3).sqrt() + be[ch];
    let y = &reference::run(&folded, &x, &HashMap::new()).unwrap()[0];
    let y2 = &reference::run(&unfolded, &x, &HashMap::new()).unwrap()[0];
    for i in 0..c.data.len() {
        let ch = i / 16;
        assert!((y.data[i] - bn(c.data[i], ch)).abs() < 1e-5);
        assert!((y2.data[i] - bn(c.data[i].max(0.0), ch)).abs() < 1e-5);
    }
}

trait Pipe: Sized {
    fn pipe<R>(self, f: impl FnOnce(Self) -> R) -> R {
        f(self)
    }
}
impl<T> Pipe for T {}

fn conv_pad_model(auto_pad: &str) -> Vec<u8> {
    model(
        13,
        ("x", &[1, 1, 4, 4]),
        "y",
        vec![node(
            "Conv",
            "conv",
            &["x", "w"],
            &["y"],
            vec![string("auto_pad", auto_pad), ints("strides", &[2, 2])],
        )],
        vec![f32_tensor("w", &[1, 1, 3, 3], &[1.0; 9])],
    )
}

#[test]
fn auto_pad_same_upper_and_lower_put_the_extra_pad_where_onnx_says() {
    let pads = |m: &str| match &load_bytes(&conv_pad_model(m)).unwrap().nodes[0].op {
        Op::Conv(c) => c.pads,
        _ => unreachable!(),
    };
    // out = ceil(4 / 2) = 2; total pad = (2 - 1) * 2 + 3 - 4 = 1
    assert_eq!(pads("SAME_UPPER"), [0, 0, 1, 1]);
    assert_eq!(pads("SAME_LOWER"), [1, 1, 0, 0]);
    assert_eq!(pads("VALID"), [0, 0, 0, 0]);
    let g = load_bytes(&conv_pad_model("SAME_UPPER")).unwrap();
    let x = Tensor::new(vec![1, 1, 4, 4], (0..16).map(|i| i as f32).collect());
    let y = &reference::run(&g, &x, &HashMap::new()).unwrap()[0];
    // Window at (0,0) covers rows 0..3, cols 0..3 (no top/left pad).
    let w00: f32 = [0, 1, 2, 4, 5, 6, 8, 9, 10].iter().map(|&i| i as f32).sum();
    assert_eq!(y.data[0], w00);
    // Window at (1,1) covers rows 2..4 and cols 2..4 with the bottom/right pad.
    let w11: f32 = [10, 11, 14, 15].iter().map(|&i| i as f32).sum();
    assert_eq!(y.data[3], w11);
}

#[test]
fn shape_mismatch_names_the_node() {
    let b = model(
        13,
        ("x", &[1, 1, 8, 8]),
        "y",
        vec![node("Conv", "the_conv", &["x", "w"], &["y"], vec![])],
        vec![f32_tensor("w", &[4, 3, 3, 3], &[0.0; 108])],
    );
    let e = load_bytes(&b).unwrap_err();
    let s = e.to_string();
    assert!(s.contains("the_conv") && s.contains("channels"), "{s}");

    let b = model(
        13,
        ("x", &[1, 10]),
        "y",
        vec![node("Reshape", "rs", &["x", "s"], &["y"], vec![])],
        vec![i64_tensor("s", &[3, 4])],
    );
    let s = load_bytes(&b).unwrap_err().to_string();
    assert!(s.contains("rs") && s.contains("cannot reshape"), "{s}");

    let b = model(
        13,
        ("x", &[1, 1, 2, 2]),
        "y",
        vec![node(
            "MaxPool",
            "pool",
            &["x"],
            &["y"],
            vec![ints("kernel_shape", &[3, 3])],
        )],
        vec![],
    );
    let s = load_bytes(&b).unwrap_err().to_string();
    assert!(s.contains("pool") && s.contains("does not fit"), "{s}");
}

#[test]
fn gemm_layouts_and_matmul_bias_fold() {
    // y = x W^T + b as Gemm(transB=1), Gemm(transB=0, W stored transposed) and MatMul+Add.
    let w: Vec<f32> = (0..12).map(|i| i as f32 - 5.0).collect(); // [3 out, 4 in]
    let wt: Vec<f32> = (0..12).map(|k| w[(k % 3) * 4 + k / 3]).collect(); // [4, 3]
    let b = [0.5f32, -1.0, 2.0];
    let x = Tensor::new(vec![2, 4], vec![1.0, 2.0, 3.0, 4.0, -1.0, 0.5, 0.0, 2.0]);
    let run = |bytes: Vec<u8>| {
        let g = load_bytes(&bytes).unwrap();
        assert_eq!(g.layers().len(), 1);
        assert_eq!(g.nodes.len(), 1, "bias folded");
        reference::run(&g, &x, &HashMap::new()).unwrap()[0]
            .data
            .clone()
    };
    let a = run(model(
        13,
        ("x", &[1, 4]),
        "y",
        vec![node(
            "Gemm",
            "g",
            &["x", "w", "b"],
            &["y"],
            vec![int("transB", 1)],
        )],
        vec![f32_tensor("w", &[3, 4], &w), f32_tensor("b", &[3], &b)],
    ));
    let c = run(model(
        13,
        ("x", &[1, 4]),
        "y",
        vec![node("Gemm", "g", &["x", "w", "b"], &["y"], vec![])],
        vec![f32_tensor("w", &[4, 3], &wt), f32_tensor("b", &[3], &b)],
    ));
    let d = run(model(
        13,
        ("x", &[1, 4]),
        "y",
        vec![
            node("MatMul", "mm", &["x", "w"], &["t"], vec![]),
            node("Add", "add", &["t", "b"], &["y"], vec![]),
        ],
        vec![f32_tensor("w", &[4, 3], &wt), f32_tensor("b", &[1, 3], &b)],
    ));
    let mut want = Vec::new();
    for r in 0..2 {
        for o in 0..3 {
            want.push(
                (0..4)
                    .map(|k| x.data[r * 4 + k] * w[o * 4 + k])
                    .sum::<f32>()
                    + b[o],
            );
        }
    }
    assert_eq!(a, want);
    assert_eq!(c, want);
    assert_eq!(d, want);
}

#[test]
fn model_level_errors() {
    let ok = conv_pad_model("VALID");
    // opset outside the range
    let b = model(
        22,
        ("x", &[1, 1, 4, 4]),
        "y",
        vec![node("Relu", "r", &["x"], &["y"], vec![])],
        vec![],
    );
    assert!(load_bytes(&b).unwrap_err().to_string().contains("opset 22"));
    // an input that no node produces
    let b = model(
        13,
        ("x", &[1, 1, 4, 4]),
        "y",
        vec![node("Relu", "r", &["nope"], &["y"], vec![])],
        vec![],
    );
    let s = load_bytes(&b).unwrap_err().to_string();
    assert!(s.contains("'r'") && s.contains("nope"), "{s}");
    // a ConstantOfShape claiming a gigantic tensor is refused, not allocated
    let b = model(
        13,
        ("x", &[1, 4]),
        "y",
        vec![
            node("ConstantOfShape", "big", &["s"], &["w"], vec![]),
            node("Add", "add", &["x", "w"], &["y"], vec![]),
        ],
        vec![i64_tensor("s", &[1 << 20, 1 << 20])],
    );
    let s = load_bytes(&b).unwrap_err().to_string();
    assert!(s.contains("big") && s.contains("elements"), "{s}");
    // custom-domain op
    let mut g = strumlab::model::onnx_proto::ModelProto::default();
    {
        use prost::Message;
        g.merge(ok.as_slice()).unwrap();
        g.graph.as_mut().unwrap().node[0].domain = Some("com.example".into());
        let s = load_bytes(&g.encode_to_vec()).unwrap_err().to_string();
        assert!(s.contains("com.example::Conv"), "{s}");
    }
}

#[test]
fn activation_calibration_on_real_mnist_images() {
    use strumlab::quant::config::Calib;
    let g = load_onnx(&data("mnist-8.onnx"), &LoadOptions::default()).unwrap();
    let (shape, px, labels) = strumlab::data::idx::read_idx_dataset(
        &data("mnist/t10k-images-idx3-ubyte.gz"),
        &data("mnist/t10k-labels-idx1-ubyte.gz"),
        None,
    )
    .unwrap();
    assert_eq!(shape, vec![10_000, 1, 28, 28]);
    assert_eq!(labels.len(), 10_000);
    let n = 32;
    let x = Tensor::new(
        vec![n, 1, 28, 28],
        px[..n * 784].iter().map(|&v| v as f32).collect(),
    );
    let max = strumlab::quant::calibrate_activations(&g, &x, Calib::Max, 100.0).unwrap();
    let pct = strumlab::quant::calibrate_activations(&g, &x, Calib::Percentile, 99.9).unwrap();
    assert_eq!(max.len(), 3);
    // The first layer sees raw pixels: max 255 -> scale 255 / 127.
    assert_eq!(max[0].1, 255.0 / 127.0);
    for (a, b) in max.iter().zip(&pct) {
        assert_eq!(a.0, b.0);
        assert!(b.1 <= a.1 && b.1 > 0.0);
    }
}

#[test]
fn pad_reducemean_slice_and_cast() {
    // x [1, 2, 3] -> Cast(float) -> Pad(edge, last axis 1+2) -> ReduceMean(axis 2, keepdims 0)
    // with the pads computed by a constant Slice of a longer constant.
    let b = model(
        13,
        ("x", &[1, 2, 3]),
        "y",
        vec![
            node("Cast", "cast", &["x"], &["c"], vec![int("to", 1)]),
            node("Slice", "sl", &["allp", "st", "en"], &["pads"], vec![]),
            node(
                "Pad",
                "pad",
                &["c", "pads"],
                &["p"],
                vec![string("mode", "edge")],
            ),
            node(
                "ReduceMean",
                "rm",
                &["p"],
                &["y"],
                vec![ints("axes", &[2]), int("keepdims", 0)],
            ),
        ],
        vec![
            i64_tensor("allp", &[9, 0, 0, 1, 0, 0, 2, 9]),
            i64_tensor("st", &[1]),
            i64_tensor("en", &[7]),
        ],
    );
    let g = load_bytes(&b).unwrap();
    assert_eq!(g.shape("p"), &[1, 2, 6]);
    assert_eq!(g.shape("y"), &[1, 2]);
    let x = Tensor::new(vec![1, 2, 3], vec![1.0, 2.0, 3.0, 10.0, 20.0, 30.0]);
    let y = &reference::run(&g, &x, &HashMap::new()).unwrap()[0];
    // edge padding: [1, 1,2,3, 3,3] -> mean 13/6; [10, 10,20,30, 30,30] -> 130/6
    assert_eq!(y.data, vec![13.0 / 6.0, 130.0 / 6.0]);
    let e = strumlab::cpu::engine::Engine::new(&g, strumlab::cpu::engine::Mode::Fp32, None, None)
        .unwrap();
    assert_eq!(e.run(&x.data, false).unwrap().0[0], y.data);
    // Padding the batch axis, or a Cast to an integer type of an activation, is refused.
    let b = model(
        13,
        ("x", &[1, 4]),
        "y",
        vec![node("Pad", "pad", &["x", "p"], &["y"], vec![])],
        vec![i64_tensor("p", &[1, 0, 0, 0])],
    );
    assert!(
        load_bytes(&b)
            .unwrap_err()
            .to_string()
            .contains("batch axis")
    );
    let b = model(
        13,
        ("x", &[1, 4]),
        "y",
        vec![node("Cast", "c", &["x"], &["y"], vec![int("to", 7)])],
        vec![],
    );
    assert!(load_bytes(&b).unwrap_err().to_string().contains("Cast"));
}
