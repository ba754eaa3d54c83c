//! The committed Fashion-MNIST zoo (trained here by `strumlab train`, ONNX with BatchNorm
//! nodes under experiments/data/fashion-zoo): FP32 accuracy on the vendored 10k test set is
//! pinned to the figure in each model card, and stays above the zoo's targets.

use strumlab::data;
use strumlab::eval::{RunConfig, evaluate};
use strumlab::model::{LoadOptions, Op};

/// (zoo name, minimum FP32 top-1 the zoo promises on the 10k test set).
const ZOO: [(&str, f64); 3] = [
    ("fmnist-resnet", 0.92),
    ("fmnist-mobilenetv2", 0.91),
    ("fmnist-vgg", 0.92),
];

#[test]
fn committed_zoo_fp32_accuracy_is_pinned() {
    for (name, floor) in ZOO {
        let (g, card) = strumlab::zoo::resolve(name, &LoadOptions::default()).unwrap();
        assert_eq!(g.input_shape, vec![1, 1, 28, 28], "{name}");
        assert!(
            !g.nodes.iter().any(|n| matches!(n.op, Op::Affine { .. })),
            "{name}: BatchNorm nodes fold into the convs"
        );
        let pinned = card
            .fp32_top1_reference
            .unwrap_or_else(|| panic!("{name}: card has no fp32_top1_reference"));
        let ds = data::load(&card.dataset, &card, false).unwrap();
        assert_eq!(ds.len(), 10_000);
        let cfg = RunConfig {
            calib: strumlab::run::ActCalib {
                images: 0,
                ..Default::default()
            },
            quiet: true,
            ..RunConfig::fp32()
        };
        let r = evaluate(&g, name, &ds, &cfg).unwrap();
        assert_eq!(r.summary.top1, Some(pinned), "{name}");
        assert!(pinned >= floor, "{name}: {pinned} below the zoo's {floor}");
    }
}
