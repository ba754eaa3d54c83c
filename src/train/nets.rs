//! The three zoo networks as burn modules. Each one has a `forward` (training and test in
//! burn) and an `emit` that writes the same computation as ONNX nodes, BatchNormalization
//! kept as its own node after every (bias-free) Conv.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{relu, relu6};
use burn::tensor::{Device, Tensor};

use super::recipe::{Arch, ModelSpec};
use crate::model::export::OnnxBuilder;

/// Input side and classes of Fashion-MNIST.
pub const SIDE: usize = 28;
pub const CLASSES: usize = 10;

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 tensor data")
}

/// Activation after a conv + BN.
const ACT_NONE: usize = 0;
const ACT_RELU: usize = 1;
const ACT_RELU6: usize = 2;

fn act<const D: usize>(x: Tensor<D>, kind: usize) -> Tensor<D> {
    match kind {
        ACT_RELU => relu(x),
        ACT_RELU6 => relu6(x),
        _ => x,
    }
}

fn emit_act(b: &mut OnnxBuilder, x: String, kind: usize) -> String {
    match kind {
        ACT_RELU => b.relu(&x),
        ACT_RELU6 => b.clip(&x, 0.0, 6.0),
        _ => x,
    }
}

/// A bias-free conv (3x3 padded by 1, or 1x1) followed by BatchNorm and an activation.
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
    act: usize,
    stride: usize,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    fn new(
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        act: usize,
        dev: &Device,
    ) -> Self {
        let pad = kernel / 2;
        let conv = Conv2dConfig::new([cin, cout], [kernel, kernel])
            .with_stride([stride, stride])
            .with_groups(groups)
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_bias(false)
            .init(dev);
        ConvBn {
            conv,
            bn: BatchNormConfig::new(cout).init(dev),
            act,
            stride,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        act(self.bn.forward(self.conv.forward(x)), self.act)
    }

    fn emit(&self, b: &mut OnnxBuilder, x: &str) -> String {
        let w = self.conv.weight.val();
        let shape: [usize; 4] = w.dims();
        let y = b.conv(
            x,
            &values(w),
            shape,
            None,
            self.stride,
            shape[2] / 2,
            self.conv.groups,
        );
        let y = b.batchnorm(
            &y,
            &values(self.bn.gamma.val()),
            &values(self.bn.beta.val()),
            &values(self.bn.running_mean.value()),
            &values(self.bn.running_var.value()),
            self.bn.epsilon as f32,
        );
        emit_act(b, y, self.act)
    }
}

fn maxpool2(x: Tensor<4>) -> Tensor<4> {
    MaxPool2dConfig::new([2, 2])
        .with_strides([2, 2])
        .init()
        .forward(x)
}

/// Global average pooling to `[N, C]`.
fn gap(x: Tensor<4>) -> Tensor<2> {
    let [n, c, _, _] = x.dims();
    x.mean_dim(3).mean_dim(2).reshape([n, c])
}

fn emit_linear(b: &mut OnnxBuilder, l: &Linear, x: &str) -> String {
    let w = l.weight.val();
    let shape: [usize; 2] = w.dims();
    let bias = l
        .bias
        .as_ref()
        .map(|p| values(p.val()))
        .unwrap_or_else(|| vec![0.0; shape[1]]);
    b.gemm(x, &values(w), shape, &bias)
}

/// ResNet basic block: conv3x3-BN-ReLU, conv3x3-BN, plus the (projected) input, ReLU.
#[derive(Module, Debug)]
pub struct BasicBlock {
    c1: ConvBn,
    c2: ConvBn,
    down: Option<ConvBn>,
}

impl BasicBlock {
    fn new(cin: usize, cout: usize, stride: usize, dev: &Device) -> Self {
        BasicBlock {
            c1: ConvBn::new(cin, cout, 3, stride, 1, ACT_RELU, dev),
            c2: ConvBn::new(cout, cout, 3, 1, 1, ACT_NONE, dev),
            down: (stride != 1 || cin != cout)
                .then(|| ConvBn::new(cin, cout, 1, stride, 1, ACT_NONE, dev)),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let short = match &self.down {
            Some(d) => d.forward(x.clone()),
            None => x.clone(),
        };
        relu(self.c2.forward(self.c1.forward(x)) + short)
    }

    fn emit(&self, b: &mut OnnxBuilder, x: &str) -> String {
        let y = self.c1.emit(b, x);
        let y = self.c2.emit(b, &y);
        let short = match &self.down {
            Some(d) => d.emit(b, x),
            None => x.to_string(),
        };
        let s = b.add(&y, &short);
        b.relu(&s)
    }
}

/// MobileNetV2 inverted residual: 1x1 expand (ReLU6), 3x3 depthwise (ReLU6), 1x1 linear
/// projection; identity shortcut when stride 1 and the width is kept.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    expand: Option<ConvBn>,
    dw: ConvBn,
    project: ConvBn,
    residual: bool,
}

impl InvertedResidual {
    fn new(cin: usize, cout: usize, stride: usize, t: usize, dev: &Device) -> Self {
        let hid = cin * t;
        InvertedResidual {
            expand: (t != 1).then(|| ConvBn::new(cin, hid, 1, 1, 1, ACT_RELU6, dev)),
            dw: ConvBn::new(hid, hid, 3, stride, hid, ACT_RELU6, dev),
            project: ConvBn::new(hid, cout, 1, 1, 1, ACT_NONE, dev),
            residual: stride == 1 && cin == cout,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x.clone();
        if let Some(e) = &self.expand {
            y = e.forward(y);
        }
        let y = self.project.forward(self.dw.forward(y));
        if self.residual { y + x } else { y }
    }

    fn emit(&self, b: &mut OnnxBuilder, x: &str) -> String {
        let mut y = x.to_string();
        if let Some(e) = &self.expand {
            y = e.emit(b, &y);
        }
        let y = self.dw.emit(b, &y);
        let y = self.project.emit(b, &y);
        if self.residual { b.add(&y, x) } else { y }
    }
}

/// Stem conv, stages of residual blocks, global average pool, linear classifier.
#[derive(Module, Debug)]
pub struct ResNet {
    stem: ConvBn,
    blocks: Vec<BasicBlock>,
    fc: Linear,
}

/// Stem conv, inverted-residual stages, 1x1 head conv, global average pool, classifier.
#[derive(Module, Debug)]
pub struct MobileNetV2 {
    stem: ConvBn,
    blocks: Vec<InvertedResidual>,
    head: ConvBn,
    fc: Linear,
}

/// Plain 3x3 conv stacks, 2x2 max pooling after each stage, flatten, linear classifier.
#[derive(Module, Debug)]
pub struct Vgg {
    convs: Vec<ConvBn>,
    /// Number of convs in each stage (a max pool follows every stage).
    stage_len: Vec<usize>,
    fc: Linear,
}

/// One of the three zoo networks.
#[derive(Module, Debug)]
pub enum Net {
    ResNet(ResNet),
    MobileNetV2(MobileNetV2),
    Vgg(Vgg),
}

/// Spatial side after `stages` stride-2 steps that pad by 1 (3x3, stride 2: ceil(n / 2)).
fn side_after(mut n: usize, stages: usize, floor: bool) -> usize {
    for _ in 0..stages {
        n = if floor { n / 2 } else { n.div_ceil(2) };
    }
    n
}

impl Net {
    pub fn new(spec: &ModelSpec, dev: &Device) -> Self {
        let w = &spec.widths;
        let last = *w.last().expect("validated: at least one stage");
        match spec.arch {
            Arch::Resnet => {
                let mut blocks = Vec::new();
                let mut cin = w[0];
                for (s, (&cout, &d)) in w.iter().zip(&spec.depth).enumerate() {
                    for k in 0..d {
                        let stride = if s > 0 && k == 0 { 2 } else { 1 };
                        blocks.push(BasicBlock::new(cin, cout, stride, dev));
                        cin = cout;
                    }
                }
                Net::ResNet(ResNet {
                    stem: ConvBn::new(1, w[0], 3, spec.stem_stride, 1, ACT_RELU, dev),
                    blocks,
                    fc: LinearConfig::new(last, CLASSES).init(dev),
                })
            }
            Arch::Mobilenetv2 => {
                let mut blocks = Vec::new();
                let mut cin = w[0];
                for (s, (&cout, &d)) in w.iter().zip(&spec.depth).enumerate() {
                    for k in 0..d {
                        let stride = if s > 0 && k == 0 { 2 } else { 1 };
                        // The first block keeps the stem width, as in MobileNetV2 (t = 1).
                        let t = if s == 0 && k == 0 { 1 } else { spec.expand };
                        blocks.push(InvertedResidual::new(cin, cout, stride, t, dev));
                        cin = cout;
                    }
                }
                let head = last * spec.expand;
                Net::MobileNetV2(MobileNetV2 {
                    stem: ConvBn::new(1, w[0], 3, spec.stem_stride, 1, ACT_RELU6, dev),
                    blocks,
                    head: ConvBn::new(last, head, 1, 1, 1, ACT_RELU6, dev),
                    fc: LinearConfig::new(head, CLASSES).init(dev),
                })
            }
            Arch::Vgg => {
                let mut convs = Vec::new();
                let mut cin = 1;
                for (&cout, &d) in w.iter().zip(&spec.depth) {
                    for _ in 0..d {
                        convs.push(ConvBn::new(cin, cout, 3, 1, 1, ACT_RELU, dev));
                        cin = cout;
                    }
                }
                let side = side_after(SIDE, w.len(), true);
                Net::Vgg(Vgg {
                    convs,
                    stage_len: spec.depth.clone(),
                    fc: LinearConfig::new(last * side * side, CLASSES).init(dev),
                })
            }
        }
    }

    /// Logits `[N, 10]` of images `[N, 1, 28, 28]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Net::ResNet(m) => {
                let mut y = m.stem.forward(x);
                for b in &m.blocks {
                    y = b.forward(y);
                }
                m.fc.forward(gap(y))
            }
            Net::MobileNetV2(m) => {
                let mut y = m.stem.forward(x);
                for b in &m.blocks {
                    y = b.forward(y);
                }
                m.fc.forward(gap(m.head.forward(y)))
            }
            Net::Vgg(m) => {
                let mut y = x;
                let mut convs = m.convs.iter();
                for &n in &m.stage_len {
                    for c in convs.by_ref().take(n) {
                        y = c.forward(y);
                    }
                    y = maxpool2(y);
                }
                m.fc.forward(y.flatten(1, 3))
            }
        }
    }

    /// The network as an ONNX model: input `input` `[1, 1, 28, 28]`, logits `[1, 10]` out of the
    /// final Gemm.
    pub fn to_onnx(&self, name: &str) -> Vec<u8> {
        let mut b = OnnxBuilder::new();
        let x = "input".to_string();
        let y = match self {
            Net::ResNet(m) => {
                let mut y = m.stem.emit(&mut b, &x);
                for blk in &m.blocks {
                    y = blk.emit(&mut b, &y);
                }
                let p = b.global_avg_pool(&y);
                let f = b.flatten(&p);
                emit_linear(&mut b, &m.fc, &f)
            }
            Net::MobileNetV2(m) => {
                let mut y = m.stem.emit(&mut b, &x);
                for blk in &m.blocks {
                    y = blk.emit(&mut b, &y);
                }
                let h = m.head.emit(&mut b, &y);
                let p = b.global_avg_pool(&h);
                let f = b.flatten(&p);
                emit_linear(&mut b, &m.fc, &f)
            }
            Net::Vgg(m) => {
                let mut y = x.clone();
                let mut convs = m.convs.iter();
                for &n in &m.stage_len {
                    for c in convs.by_ref().take(n) {
                        y = c.emit(&mut b, &y);
                    }
                    y = b.maxpool(&y, 2, 2);
                }
                let f = b.flatten(&y);
                emit_linear(&mut b, &m.fc, &f)
            }
        };
        b.finish(name, (&x, &[1, 1, SIDE, SIDE]), (&y, &[1, CLASSES]))
    }

    /// Trainable parameters.
    pub fn params(&self) -> usize {
        self.num_params()
    }
}
