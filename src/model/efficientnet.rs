//! EfficientNet-Lite (Lite0..Lite4) from a PyTorch state dict (the `_conv_stem`, `_bn0`,
//! `_blocks.N._expand_conv / _depthwise_conv / _project_conv`, `_bnK`, `_conv_head`, `_fc`
//! naming), built directly as a graph IR with BatchNorm folded.
//!
//! Architecture (EfficientNet-Lite: MBConv without squeeze-excitation, ReLU6, fixed stem
//! and head): stages of strides 1, 2, 2, 2, 1, 2, 1; a stage starts at every block whose
//! input and output channel counts differ; skip connection when stride 1 and in == out.
//! Padding is TensorFlow SAME (extra row/column at the bottom/right). BN eps = 1e-3.

use std::collections::BTreeMap;

use super::ir::*;
use super::shape;
use crate::error::{Error, Result};

pub const BN_EPS: f32 = 1e-3;
const STAGE_STRIDES: [usize; 7] = [1, 2, 2, 2, 1, 2, 1];

struct Builder<'a> {
    sd: &'a BTreeMap<String, Tensor>,
    g: Graph,
    label: String,
}

impl Builder<'_> {
    fn t(&self, k: &str) -> Result<&Tensor> {
        self.sd.get(k).ok_or_else(|| Error::Data {
            path: self.label.clone(),
            reason: format!("state dict has no '{k}'"),
        })
    }
    fn last(&self) -> (String, Vec<usize>) {
        let n = self
            .g
            .nodes
            .last()
            .map(|n| n.output.clone())
            .unwrap_or_else(|| self.g.input.clone());
        let s = self.g.shapes[&n].clone();
        (n, s)
    }
    fn push(&mut self, name: &str, op: Op, inputs: Vec<String>, shape: Vec<usize>) -> String {
        let out = format!("{name}:out");
        self.g.shapes.insert(out.clone(), shape);
        self.g.nodes.push(Node {
            name: name.to_string(),
            op,
            inputs,
            output: out.clone(),
        });
        out
    }
    /// conv (SAME padding) + folded BN (+ ReLU6).
    fn conv_bn(
        &mut self,
        conv: &str,
        bn: &str,
        stride: usize,
        group: usize,
        relu6: bool,
    ) -> Result<String> {
        let (x, xs) = self.last();
        let w = self.t(&format!("{conv}.weight"))?.clone();
        if w.shape.len() != 4 || xs[1] != w.shape[1] * group {
            return Err(Error::Data {
                path: self.label.clone(),
                reason: format!("{conv}: weight {:?} does not fit input {xs:?}", w.shape),
            });
        }
        let oc = w.shape[0];
        let (gamma, beta, mean, var) = (
            self.t(&format!("{bn}.weight"))?.data.clone(),
            self.t(&format!("{bn}.bias"))?.data.clone(),
            self.t(&format!("{bn}.running_mean"))?.data.clone(),
            self.t(&format!("{bn}.running_var"))?.data.clone(),
        );
        let mut weight = w;
        let per = weight.numel() / oc;
        let mut bias = vec![0f32; oc];
        for o in 0..oc {
            let s = gamma[o] / (var[o] + BN_EPS).sqrt();
            weight.data[o * per..(o + 1) * per]
                .iter_mut()
                .for_each(|v| *v *= s);
            bias[o] = beta[o] - mean[o] * s;
        }
        let (kh, kw) = (weight.shape[2], weight.shape[3]);
        let (pt, pb) = shape::same_pads(xs[2], kh, stride, 1, true);
        let (pl, pr) = shape::same_pads(xs[3], kw, stride, 1, true);
        let oh = shape::window_out(xs[2], kh, stride, 1, pt, pb).map_err(|r| Error::Data {
            path: self.label.clone(),
            reason: r,
        })?;
        let ow = shape::window_out(xs[3], kw, stride, 1, pl, pr).map_err(|r| Error::Data {
            path: self.label.clone(),
            reason: r,
        })?;
        let c = Conv {
            weight,
            bias,
            strides: [stride, stride],
            dilations: [1, 1],
            pads: [pt, pl, pb, pr],
            group,
        };
        let out = self.push(conv, Op::Conv(c), vec![x], vec![1, oc, oh, ow]);
        if relu6 {
            return Ok(self.push(
                &format!("{conv}.relu6"),
                Op::Clip { min: 0.0, max: 6.0 },
                vec![out],
                vec![1, oc, oh, ow],
            ));
        }
        Ok(out)
    }
}

/// Build EfficientNet-Lite at input resolution `res` from its state dict.
pub fn build(sd: &BTreeMap<String, Tensor>, res: usize, name: &str) -> Result<Graph> {
    let mut b = Builder {
        sd,
        g: Graph {
            name: name.to_string(),
            opset: 13,
            input: "input".into(),
            input_shape: vec![1, 3, res, res],
            outputs: vec![],
            nodes: vec![],
            shapes: BTreeMap::from([("input".to_string(), vec![1, 3, res, res])]),
        },
        label: name.to_string(),
    };
    b.conv_bn("_conv_stem", "_bn0", 2, 1, true)?;
    let nblocks = (0..)
        .take_while(|i| sd.contains_key(&format!("_blocks.{i}._project_conv.weight")))
        .count();
    if nblocks == 0 {
        return Err(Error::Data {
            path: name.into(),
            reason: "no MBConv blocks in the state dict".into(),
        });
    }
    let mut stage = 0usize;
    for i in 0..nblocks {
        let p = format!("_blocks.{i}");
        let (x_in, xs) = b.last();
        let out_c = b.t(&format!("{p}._project_conv.weight"))?.shape[0];
        let first = i == 0 || xs[1] != out_c;
        if first && i > 0 {
            stage += 1;
        }
        let stride = if first {
            *STAGE_STRIDES.get(stage).unwrap_or(&1)
        } else {
            1
        };
        if sd.contains_key(&format!("{p}._expand_conv.weight")) {
            b.conv_bn(
                &format!("{p}._expand_conv"),
                &format!("{p}._bn0"),
                1,
                1,
                true,
            )?;
        }
        let ch = b.last().1[1];
        b.conv_bn(
            &format!("{p}._depthwise_conv"),
            &format!("{p}._bn1"),
            stride,
            ch,
            true,
        )?;
        let y = b.conv_bn(
            &format!("{p}._project_conv"),
            &format!("{p}._bn2"),
            1,
            1,
            false,
        )?;
        if stride == 1 && xs[1] == out_c {
            let s = b.g.shapes[&y].clone();
            b.push(
                &format!("{p}.add"),
                Op::Add { constant: None },
                vec![y, x_in],
                s,
            );
        }
    }
    b.conv_bn("_conv_head", "_bn1", 1, 1, true)?;
    let (x, xs) = b.last();
    let gap = b.push("gap", Op::GlobalAveragePool, vec![x], vec![1, xs[1], 1, 1]);
    let flat = b.push(
        "flatten",
        Op::Flatten { axis: 1 },
        vec![gap],
        vec![1, xs[1]],
    );
    let w = b.t("_fc.weight")?.clone();
    let bias = b.t("_fc.bias")?.data.clone();
    if w.shape != [bias.len(), xs[1]] {
        return Err(Error::Data {
            path: name.into(),
            reason: format!("_fc.weight {:?} does not fit {} features", w.shape, xs[1]),
        });
    }
    let n = bias.len();
    let out = b.push(
        "_fc",
        Op::Dense(Dense { weight: w, bias }),
        vec![flat],
        vec![1, n],
    );
    b.g.outputs = vec![out];
    b.g.check_finite()?;
    Ok(b.g)
}
