//! Reference FP32 interpreter over the graph IR, batched along dimension 0.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::model::consts::{broadcast_to, transpose};
use crate::model::shape::broadcast;
use crate::model::{Conv, Dense, Graph, Op, Pool, Tensor};

/// Replacement weights (dequantized views) keyed by node index.
pub type WeightOverrides = HashMap<usize, Vec<f32>>;

/// Run `graph` on `input` (`[N, ...]`, matching the graph's input shape after the batch
/// axis) and return its outputs. `weights` replaces Conv/Dense weights by node index.
pub fn run(graph: &Graph, input: &Tensor, weights: &WeightOverrides) -> Result<Vec<Tensor>> {
    run_observed(graph, input, weights, &mut |_, _| {})
}

/// [`run`], calling `observe(node_index, first_input)` before every Conv/Dense node (used to
/// collect activation statistics for calibration).
pub fn run_observed(
    graph: &Graph,
    input: &Tensor,
    weights: &WeightOverrides,
    observe: &mut dyn FnMut(usize, &Tensor),
) -> Result<Vec<Tensor>> {
    let mut on_value = |_: &str, _: &Tensor| {};
    run_inner(graph, input, weights, observe, &mut on_value)
}

/// [`run`], calling `observe(value_name, value)` for the graph input and every node output.
pub fn run_values(
    graph: &Graph,
    input: &Tensor,
    weights: &WeightOverrides,
    observe: &mut dyn FnMut(&str, &Tensor),
) -> Result<Vec<Tensor>> {
    run_inner(graph, input, weights, &mut |_, _| {}, observe)
}

fn run_inner(
    graph: &Graph,
    input: &Tensor,
    weights: &WeightOverrides,
    observe: &mut dyn FnMut(usize, &Tensor),
    on_value: &mut dyn FnMut(&str, &Tensor),
) -> Result<Vec<Tensor>> {
    if input.shape.len() != graph.input_shape.len() || input.shape[1..] != graph.input_shape[1..] {
        return Err(Error::InvalidArg {
            arg: "input".into(),
            reason: format!(
                "shape {:?} does not fit the model input {:?}",
                input.shape, graph.input_shape
            ),
        });
    }
    let batch = input.shape[0];
    let mut vals: HashMap<&str, Tensor> = HashMap::new();
    on_value(&graph.input, input);
    vals.insert(graph.input.as_str(), input.clone());
    for (i, node) in graph.nodes.iter().enumerate() {
        let x = |k: usize| -> &Tensor { &vals[node.inputs[k].as_str()] };
        if matches!(node.op, Op::Conv(_) | Op::Dense(_)) {
            observe(i, x(0));
        }
        let out = match &node.op {
            Op::Conv(c) => conv2d(
                x(0),
                c,
                weights
                    .get(&i)
                    .map(|v| v.as_slice())
                    .unwrap_or(&c.weight.data),
            ),
            Op::Dense(d) => dense(
                x(0),
                d,
                weights
                    .get(&i)
                    .map(|v| v.as_slice())
                    .unwrap_or(&d.weight.data),
            ),
            Op::Relu => map(x(0), |v| v.max(0.0)),
            Op::Clip { min, max } => map(x(0), |v| v.clamp(*min, *max)),
            Op::HardSigmoid { alpha, beta } => map(x(0), |v| (alpha * v + beta).clamp(0.0, 1.0)),
            Op::HardSwish => map(x(0), |v| v * (v / 6.0 + 0.5).clamp(0.0, 1.0)),
            Op::Sigmoid => map(x(0), |v| 1.0 / (1.0 + (-v).exp())),
            Op::Add { constant } | Op::Mul { constant } => {
                let add = matches!(node.op, Op::Add { .. });
                let a = x(0);
                let b = match constant {
                    Some(t) => t,
                    None => x(1),
                };
                binary(
                    a,
                    b,
                    if add { |p, q| p + q } else { |p, q| p * q },
                    &node.name,
                )?
            }
            Op::Sum => {
                let mut acc = x(0).clone();
                for k in 1..node.inputs.len() {
                    acc.data
                        .iter_mut()
                        .zip(&x(k).data)
                        .for_each(|(a, b)| *a += b);
                }
                acc
            }
            Op::Affine { scale, shift } => affine(x(0), scale, shift),
            Op::MaxPool(p) => pool(x(0), p, true),
            Op::AveragePool(p) => pool(x(0), p, false),
            Op::GlobalAveragePool => global_avg(x(0)),
            Op::Flatten { .. }
            | Op::Reshape { .. }
            | Op::Identity
            | Op::Transpose { .. }
            | Op::Concat { .. }
            | Op::Softmax { .. }
            | Op::Select { .. }
            | Op::ResizeLinear { .. }
            | Op::Lrn { .. }
            | Op::Pad { .. }
            | Op::ReduceMean { .. } => {
                let ins: Vec<&Tensor> = (0..node.inputs.len()).map(x).collect();
                data_op(graph, node, &ins, batch)?
            }
        };
        on_value(&node.output, &out);
        vals.insert(node.output.as_str(), out);
    }
    graph
        .outputs
        .iter()
        .map(|o| {
            vals.get(o.as_str())
                .cloned()
                .ok_or_else(|| Error::InvalidModel(format!("output '{o}' was not computed")))
        })
        .collect()
}

fn map(x: &Tensor, f: impl Fn(f32) -> f32) -> Tensor {
    Tensor::new(x.shape.clone(), x.data.iter().map(|&v| f(v)).collect())
}

fn binary(a: &Tensor, b: &Tensor, f: fn(f32, f32) -> f32, node: &str) -> Result<Tensor> {
    let s = broadcast(&a.shape, &b.shape).map_err(|r| Error::node(node, "binary", r))?;
    let x = if a.shape == s {
        a.data.clone()
    } else {
        broadcast_to(&a.data, &a.shape, &s)
    };
    let y = if b.shape == s {
        b.data.clone()
    } else {
        broadcast_to(&b.data, &b.shape, &s)
    };
    Ok(Tensor::new(
        s,
        x.iter().zip(&y).map(|(&p, &q)| f(p, q)).collect(),
    ))
}

fn affine(x: &Tensor, scale: &[f32], shift: &[f32]) -> Tensor {
    let c = x.shape[1];
    let inner: usize = x.shape[2..].iter().product();
    let mut out = x.clone();
    for (j, v) in out.data.iter_mut().enumerate() {
        let ch = (j / inner) % c;
        *v = *v * scale[ch] + shift[ch];
    }
    out
}

/// Direct convolution, NCHW, groups, strides, dilations, explicit padding.
/// [`run_inner`] for the data-movement and normalising ops: `ins` are the node's inputs.
fn data_op(
    graph: &Graph,
    node: &crate::model::Node,
    ins: &[&Tensor],
    batch: usize,
) -> Result<Tensor> {
    Ok(match &node.op {
        Op::Flatten { .. } | Op::Reshape { .. } | Op::Identity => {
            let mut s = graph.shape(&node.output).to_vec();
            if matches!(node.op, Op::Identity) {
                s = ins[0].shape.clone();
            } else if s.first() == Some(&1) {
                s[0] = batch;
            } else if batch != 1 {
                return Err(Error::node(
                    &node.name,
                    node.op.name(),
                    "reshape folds the batch axis; run with batch 1",
                ));
            }
            Tensor::new(s, ins[0].data.clone())
        }
        Op::Transpose { perm } => {
            let t = ins[0];
            if perm[0] != 0 && batch != 1 {
                return Err(Error::node(
                    &node.name,
                    "Transpose",
                    "moves the batch axis; run with batch 1",
                ));
            }
            let s = perm.iter().map(|&p| t.shape[p]).collect();
            Tensor::new(s, transpose(&t.data, &t.shape, perm))
        }
        Op::Concat { axis } => {
            let parts: Vec<&Tensor> = ins.to_vec();
            concat(&parts, *axis)
        }
        Op::Softmax { axis } => softmax(ins[0], *axis),
        Op::Select { index, .. } => {
            let t = ins[0];
            let mut s = graph.shape(&node.output).to_vec();
            s[0] = batch;
            let per = t.numel() / batch.max(1);
            Tensor::new(s, super::kernels::select(&t.data, per, index, 0.0))
        }
        Op::ResizeLinear { rows, cols } => {
            let t = ins[0];
            let (h, w) = (t.shape[2], t.shape[3]);
            let s = vec![t.shape[0], t.shape[1], rows.len(), cols.len()];
            Tensor::new(
                s,
                super::kernels::resize_linear_f32(&t.data, h, w, rows, cols),
            )
        }
        Op::Lrn {
            size,
            alpha,
            beta,
            bias,
        } => {
            let t = ins[0];
            let plane = t.shape[2..].iter().product();
            let y =
                super::kernels::lrn_f32(&t.data, t.shape[1], plane, [*alpha, *beta, *bias], *size);
            Tensor::new(t.shape.clone(), y)
        }
        Op::Pad { pads, mode } => {
            let t = ins[0];
            let fill = match mode {
                crate::model::PadMode::Constant(v) => *v,
                _ => 0.0,
            };
            let s = t
                .shape
                .iter()
                .zip(pads)
                .map(|(d, p)| d + p[0] + p[1])
                .collect();
            Tensor::new(s, super::kernels::pad(&t.data, &t.shape, pads, *mode, fill))
        }
        Op::ReduceMean { axes, keepdims } => {
            let t = ins[0];
            let (sums, n) = super::kernels::reduce_sum(&t.data, &t.shape, axes, |v| v);
            let s = (0..t.shape.len())
                .filter_map(|k| {
                    if axes.contains(&k) {
                        keepdims.then_some(1)
                    } else {
                        Some(t.shape[k])
                    }
                })
                .collect();
            Tensor::new(s, sums.iter().map(|v| v / n as f32).collect())
        }
        other => unreachable!("`run_inner` handles {}", other.name()),
    })
}

pub fn conv2d(x: &Tensor, c: &Conv, w: &[f32]) -> Tensor {
    let (n, ic, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let (oc, icg, kh, kw) = (
        c.weight.shape[0],
        c.weight.shape[1],
        c.weight.shape[2],
        c.weight.shape[3],
    );
    let [sh, sw] = c.strides;
    let [dh, dw] = c.dilations;
    let [pt, pl, pb, pr] = c.pads;
    let oh = (h + pt + pb - dh * (kh - 1) - 1) / sh + 1;
    let ow = (wd + pl + pr - dw * (kw - 1) - 1) / sw + 1;
    let ocg = oc / c.group;
    let mut out = vec![0f32; n * oc * oh * ow];
    for b in 0..n {
        for o in 0..oc {
            let g = o / ocg;
            for y in 0..oh {
                for xo in 0..ow {
                    let mut acc = c.bias[o];
                    for i in 0..icg {
                        let ci = g * icg + i;
                        for ky in 0..kh {
                            let iy = (y * sh + ky * dh) as isize - pt as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            for kx in 0..kw {
                                let ix = (xo * sw + kx * dw) as isize - pl as isize;
                                if ix < 0 || ix >= wd as isize {
                                    continue;
                                }
                                let xv =
                                    x.data[((b * ic + ci) * h + iy as usize) * wd + ix as usize];
                                acc += xv * w[((o * icg + i) * kh + ky) * kw + kx];
                            }
                        }
                    }
                    out[((b * oc + o) * oh + y) * ow + xo] = acc;
                }
            }
        }
    }
    Tensor::new(vec![n, oc, oh, ow], out)
}

/// Fully connected over the last axis.
pub fn dense(x: &Tensor, d: &Dense, w: &[f32]) -> Tensor {
    let (oc, ic) = (d.weight.shape[0], d.weight.shape[1]);
    let rows = x.data.len() / ic;
    let mut out = vec![0f32; rows * oc];
    for r in 0..rows {
        let xr = &x.data[r * ic..(r + 1) * ic];
        for o in 0..oc {
            let wr = &w[o * ic..(o + 1) * ic];
            out[r * oc + o] = d.bias[o] + xr.iter().zip(wr).map(|(a, b)| a * b).sum::<f32>();
        }
    }
    let mut s = x.shape.clone();
    *s.last_mut().expect("rank >= 1") = oc;
    Tensor::new(s, out)
}

fn pool(x: &Tensor, p: &Pool, max: bool) -> Tensor {
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let [kh, kw] = p.kernel;
    let [sh, sw] = p.strides;
    let [pt, pl, pb, pr] = p.pads;
    let oh = (h + pt + pb - kh) / sh + 1;
    let ow = (w + pl + pr - kw) / sw + 1;
    let mut out = vec![0f32; n * c * oh * ow];
    for nc in 0..n * c {
        let plane = &x.data[nc * h * w..(nc + 1) * h * w];
        for y in 0..oh {
            for xo in 0..ow {
                let mut acc = if max { f32::NEG_INFINITY } else { 0.0 };
                let mut count = 0usize;
                for ky in 0..kh {
                    let iy = (y * sh + ky) as isize - pt as isize;
                    for kx in 0..kw {
                        let ix = (xo * sw + kx) as isize - pl as isize;
                        let inside = iy >= 0 && iy < h as isize && ix >= 0 && ix < w as isize;
                        if inside {
                            let v = plane[iy as usize * w + ix as usize];
                            acc = if max { acc.max(v) } else { acc + v };
                            count += 1;
                        }
                    }
                }
                let div = if p.count_include_pad {
                    kh * kw
                } else {
                    count.max(1)
                };
                out[(nc * oh + y) * ow + xo] = if max { acc } else { acc / div as f32 };
            }
        }
    }
    Tensor::new(vec![n, c, oh, ow], out)
}

fn global_avg(x: &Tensor) -> Tensor {
    let (n, c) = (x.shape[0], x.shape[1]);
    let hw: usize = x.shape[2..].iter().product();
    let out = x
        .data
        .chunks(hw)
        .map(|p| p.iter().sum::<f32>() / hw as f32)
        .collect();
    Tensor::new(vec![n, c, 1, 1], out)
}

fn concat(parts: &[&Tensor], axis: usize) -> Tensor {
    let mut s = parts[0].shape.clone();
    s[axis] = parts.iter().map(|t| t.shape[axis]).sum();
    let outer: usize = s[..axis].iter().product();
    let mut out = Vec::with_capacity(s.iter().product());
    for o in 0..outer {
        for t in parts {
            let c: usize = t.shape[axis..].iter().product();
            out.extend_from_slice(&t.data[o * c..(o + 1) * c]);
        }
    }
    Tensor::new(s, out)
}

/// Softmax along `axis` (max-subtracted), shared by both CPU executors.
pub fn softmax(x: &Tensor, axis: usize) -> Tensor {
    let len = x.shape[axis];
    let inner: usize = x.shape[axis + 1..].iter().product();
    let outer: usize = x.shape[..axis].iter().product();
    let mut out = x.data.clone();
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * len + k) * inner + i;
            let m = (0..len)
                .map(|k| x.data[at(k)])
                .fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = (0..len).map(|k| (x.data[at(k)] - m).exp()).sum();
            for k in 0..len {
                out[at(k)] = (x.data[at(k)] - m).exp() / sum;
            }
        }
    }
    out.shrink_to_fit();
    Tensor::new(x.shape.clone(), out)
}
