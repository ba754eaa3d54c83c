//! Loading of the ONNX ops whose handling takes more than a few lines (MatMul, Clip, Sum,
//! pooling, Pad, ReduceMean); `Loader::dynamic` dispatches to them.

use super::*;

impl Loader {
    pub(super) fn matmul(
        &mut self,
        name: &str,
        op: &str,
        ins: &[&str],
        out: &str,
        a: &Attrs,
    ) -> Result<()> {
        let e = |r: String| Error::node(name, op, r);
        let (x, xs) = self.dyn_in(ins, 0, a)?;
        let w = self
            .cf(ins, 1)
            .ok_or_else(|| e("the second operand must be a constant weight (activation x activation MatMul is not supported)".into()))?;
        if w.shape().len() != 2 || xs.is_empty() {
            return Err(e(format!(
                "expects an activation of rank >= 1 and a 2-D weight, got {:?} x {:?}",
                xs,
                w.shape()
            )));
        }
        let (k, nout) = (w.shape()[0], w.shape()[1]);
        if *xs.last().unwrap() != k {
            return Err(e(format!(
                "activation {xs:?} does not fit weight {:?}",
                w.shape()
            )));
        }
        let wt = consts::transpose(&w.to_f32(), &[k, nout], &[1, 0]);
        let mut os = xs.clone();
        *os.last_mut().unwrap() = nout;
        let d = Dense {
            weight: Tensor::new(vec![nout, k], wt),
            bias: vec![0.0; nout],
        };
        self.push(name, Op::Dense(d), vec![x], out, os);
        Ok(())
    }

    pub(super) fn clip(
        &mut self,
        name: &str,
        op: &str,
        ins: &[&str],
        out: &str,
        a: &Attrs,
    ) -> Result<()> {
        let e = |r: String| Error::node(name, op, r);
        let (x, xs) = self.dyn_in(ins, 0, a)?;
        let (min, max) = if self.opset < 11 {
            (
                a.float("min", f32::NEG_INFINITY),
                a.float("max", f32::INFINITY),
            )
        } else {
            let scalar = |k: usize, d: f32| -> Result<f32> {
                match ins.get(k).filter(|s| !s.is_empty()) {
                    None => Ok(d),
                    Some(s) => match self.consts.get(*s) {
                        Some(v) if v.numel() == 1 => Ok(v.to_f32()[0]),
                        _ => Err(e("Clip bounds must be scalar constants".into())),
                    },
                }
            };
            (scalar(1, f32::NEG_INFINITY)?, scalar(2, f32::INFINITY)?)
        };
        if min > max {
            return Err(e(format!("Clip min {min} > max {max}")));
        }
        self.push(name, Op::Clip { min, max }, vec![x], out, xs);
        Ok(())
    }

    pub(super) fn sum(
        &mut self,
        name: &str,
        op: &str,
        ins: &[&str],
        out: &str,
        a: &Attrs,
    ) -> Result<()> {
        let e = |r: String| Error::node(name, op, r);
        let mut names = Vec::new();
        let mut s: Option<Vec<usize>> = None;
        for k in 0..ins.len() {
            let (x, xs) = self.dyn_in(ins, k, a)?;
            s = Some(match s {
                None => xs,
                Some(p) => shape::broadcast(&p, &xs).map_err(e)?,
            });
            names.push(x);
        }
        let s = s.ok_or_else(|| e("Sum without inputs".into()))?;
        for x in &names {
            if self.shapes[x] != s {
                return Err(e("Sum inputs must have equal shapes".into()));
            }
        }
        let o = if names.len() == 1 {
            Op::Identity
        } else {
            Op::Sum
        };
        self.push(name, o, names, out, s);
        Ok(())
    }

    pub(super) fn pool(
        &mut self,
        name: &str,
        op: &str,
        ins: &[&str],
        out: &str,
        a: &Attrs,
    ) -> Result<()> {
        let e = |r: String| Error::node(name, op, r);
        let (x, xs) = self.dyn_in(ins, 0, a)?;
        if xs.len() != 4 {
            return Err(e(format!(
                "only 2-D pooling over NCHW is supported, input is {xs:?}"
            )));
        }
        let kernel = a.usizes("kernel_shape", 2, 0)?;
        if a.ints("kernel_shape").is_none() {
            return Err(e("missing kernel_shape".into()));
        }
        let strides = a.usizes("strides", 2, 1)?;
        if a.usizes("dilations", 2, 1)? != [1, 1] {
            return Err(Error::UnsupportedOp {
                node: name.into(),
                op: op.into(),
                detail: " with dilations".into(),
            });
        }
        let mut pads = a.usizes("pads", 4, 0)?;
        resolve_auto_pad(a, &xs[2..], &kernel, &strides, &[1, 1], &mut pads)?;
        let ceil = a.int("ceil_mode", 0) != 0;
        let mut os = vec![xs[0], xs[1], 0, 0];
        for d in 0..2 {
            os[2 + d] =
                shape::window_out(xs[2 + d], kernel[d], strides[d], 1, pads[d], pads[d + 2])
                    .map_err(e)?;
            if ceil {
                let padded = xs[2 + d] + pads[d] + pads[d + 2];
                let c = (padded - kernel[d]).div_ceil(strides[d]) + 1;
                // ONNX: the last window must start inside the (begin-padded) input.
                let c = if (c - 1) * strides[d] >= xs[2 + d] + pads[d] {
                    c - 1
                } else {
                    c
                };
                pads[d + 2] += (c - os[2 + d]) * strides[d];
                os[2 + d] = c;
            }
        }
        let p = Pool {
            kernel: [kernel[0], kernel[1]],
            strides: [strides[0], strides[1]],
            pads: [pads[0], pads[1], pads[2], pads[3]],
            count_include_pad: a.int("count_include_pad", 0) != 0,
        };
        let o = if op == "MaxPool" {
            Op::MaxPool(p)
        } else {
            Op::AveragePool(p)
        };
        self.push(name, o, vec![x], out, os);
        Ok(())
    }

    pub(super) fn pad(
        &mut self,
        name: &str,
        op: &str,
        ins: &[&str],
        out: &str,
        a: &Attrs,
    ) -> Result<()> {
        let e = |r: String| Error::node(name, op, r);
        let (x, xs) = self.dyn_in(ins, 0, a)?;
        let rank = xs.len();
        let (pads, value) = if self.opset >= 11 {
            let p = self
                .cf(ins, 1)
                .ok_or_else(|| e("pads must be a constant".into()))?
                .to_i64();
            let v = match self.cf(ins, 2) {
                Some(c) if c.numel() == 1 => c.to_f32()[0],
                Some(_) => return Err(e("constant_value must be a scalar".into())),
                None => 0.0,
            };
            if ins.get(3).is_some_and(|s| !s.is_empty()) {
                return Err(Error::UnsupportedOp {
                    node: name.into(),
                    op: op.into(),
                    detail: " with an axes input".into(),
                });
            }
            (p, v)
        } else {
            (
                a.ints("pads").map(|v| v.to_vec()).unwrap_or_default(),
                a.float("value", 0.0),
            )
        };
        if pads.len() != 2 * rank || pads.iter().any(|&p| p < 0) {
            return Err(e(format!(
                "pads {pads:?} must be {} non-negative values",
                2 * rank
            )));
        }
        let pp: Vec<[usize; 2]> = (0..rank)
            .map(|k| [pads[k] as usize, pads[k + rank] as usize])
            .collect();
        let mode = match a.string("mode").as_deref().unwrap_or("constant") {
            "constant" => PadMode::Constant(value),
            "edge" => PadMode::Edge,
            "reflect" => PadMode::Reflect,
            m => {
                return Err(Error::UnsupportedOp {
                    node: name.into(),
                    op: op.into(),
                    detail: format!(" in mode {m}"),
                });
            }
        };
        let mut os = Vec::with_capacity(rank);
        for k in 0..rank {
            if matches!(mode, PadMode::Reflect) && (pp[k][0] >= xs[k] || pp[k][1] >= xs[k]) {
                return Err(e("reflect padding must be smaller than the axis".into()));
            }
            let grown = pp[k][0]
                .checked_add(pp[k][1])
                .and_then(|p| xs[k].checked_add(p));
            os.push(grown.ok_or_else(|| e("padding overflows".into()))?);
        }
        consts::numel_checked(&os).map_err(e)?;
        if pp.first().is_some_and(|p| p != &[0, 0]) {
            return Err(Error::UnsupportedOp {
                node: name.into(),
                op: op.into(),
                detail: " of the batch axis".into(),
            });
        }
        self.push(name, Op::Pad { pads: pp, mode }, vec![x], out, os);
        Ok(())
    }

    pub(super) fn reduce_mean(
        &mut self,
        name: &str,
        op: &str,
        ins: &[&str],
        out: &str,
        a: &Attrs,
    ) -> Result<()> {
        let e = |r: String| Error::node(name, op, r);
        let (x, xs) = self.dyn_in(ins, 0, a)?;
        let axes: Vec<i64> = if self.opset >= 18 {
            self.cf(ins, 1).map(|c| c.to_i64()).unwrap_or_default()
        } else {
            a.ints("axes").map(|v| v.to_vec()).unwrap_or_default()
        };
        let mut ax: Vec<usize> = if axes.is_empty() {
            (0..xs.len()).collect()
        } else {
            axes.iter()
                .map(|&v| shape::axis(v, xs.len(), false))
                .collect::<std::result::Result<_, _>>()
                .map_err(e)?
        };
        ax.sort_unstable();
        ax.dedup();
        if ax.contains(&0) {
            return Err(Error::UnsupportedOp {
                node: name.into(),
                op: op.into(),
                detail: " over the batch axis".into(),
            });
        }
        let keepdims = a.int("keepdims", 1) != 0;
        let os: Vec<usize> = (0..xs.len())
            .filter_map(|k| {
                if ax.contains(&k) {
                    keepdims.then_some(1)
                } else {
                    Some(xs[k])
                }
            })
            .collect();
        self.push(
            name,
            Op::ReduceMean { axes: ax, keepdims },
            vec![x],
            out,
            os,
        );
        Ok(())
    }
}
