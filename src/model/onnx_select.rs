//! Loading of the ops that pick elements of an activation (Slice, Split, nearest Resize /
//! Upsample) or reshape a layer into ones the engines run (ConvTranspose -> zero insertion +
//! Conv), and LRN. Each becomes an [`Op::Select`] (an index per output element) or a plain
//! op; docs/operators.md lists what is supported.

use std::sync::Arc;

use super::{Attrs, CVal, Loader};
use crate::error::{Error, Result};
use crate::model::ir::*;

/// Row-major positions in a tensor of `shape` of the cartesian product of `per_axis` (one
/// list of source coordinates per axis; `None`: a zero element), as [`Op::Select`] indices.
pub(super) fn gather_index(
    shape: &[usize],
    per_axis: &[Vec<Option<usize>>],
) -> std::result::Result<Vec<u32>, String> {
    let out: Vec<usize> = per_axis.iter().map(|v| v.len()).collect();
    let n = super::consts::numel_checked(&out)?;
    if super::consts::numel_checked(shape)? >= SELECT_ZERO as usize {
        return Err(format!("input {shape:?} has too many elements to index"));
    }
    let rank = shape.len();
    let strides: Vec<usize> = (0..rank).map(|k| shape[k + 1..].iter().product()).collect();
    let mut idx = Vec::with_capacity(n);
    let mut id = vec![0usize; rank];
    for _ in 0..n {
        let pos = (0..rank).try_fold(0usize, |acc, k| {
            per_axis[k][id[k]].map(|c| acc + c * strides[k])
        });
        idx.push(pos.map_or(SELECT_ZERO, |p| p as u32));
        for k in (0..rank).rev() {
            id[k] += 1;
            if id[k] < out[k] {
                break;
            }
            id[k] = 0;
        }
    }
    Ok(idx)
}

/// The coordinates ONNX Slice keeps along an axis of length `d`.
pub(super) fn slice_range(d: usize, start: i64, end: i64, step: i64) -> Vec<usize> {
    let d = d as i64;
    let norm = |v: i64| if v < 0 { v + d } else { v };
    let mut idx = Vec::new();
    if step > 0 {
        let (mut i, end) = (norm(start).clamp(0, d), norm(end).clamp(0, d));
        while i < end {
            idx.push(i as usize);
            i += step;
        }
    } else {
        let (mut i, end) = (norm(start).clamp(-1, d - 1), norm(end).clamp(-1, d - 1));
        while i > end {
            idx.push(i as usize);
            i += step;
        }
    }
    idx
}

/// Source coordinate of output coordinate `o` of a nearest-neighbour resize along an axis
/// (ONNX Resize: `coordinate_transformation_mode`, `nearest_mode`), in f32 as runtimes do.
fn nearest(o: usize, len_in: usize, len_out: usize, scale: f32, ctm: &str, mode: &str) -> usize {
    let (o, li, lo) = (o as f32, len_in as f32, len_out as f32);
    let x = match ctm {
        "asymmetric" => o / scale,
        "align_corners" if len_out > 1 => o * (li - 1.0) / (lo - 1.0),
        "align_corners" => 0.0,
        "pytorch_half_pixel" if len_out > 1 => (o + 0.5) / scale - 0.5,
        "pytorch_half_pixel" => 0.0,
        "tf_half_pixel_for_nn" => (o + 0.5) / scale,
        _ => (o + 0.5) / scale - 0.5, // half_pixel
    };
    let r = match mode {
        // Upsample and Resize-10: truncation when enlarging, ceil when shrinking (onnxruntime)
        "simple" if scale < 1.0 => x.ceil(),
        "floor" | "simple" => x.floor(),
        "ceil" => x.ceil(),
        "round_prefer_ceil" => (x + 0.5).floor(),
        // round_prefer_floor (the default): halves go down
        _ if x.fract() == 0.5 => x.floor(),
        _ => x.round(),
    };
    (r.max(0.0) as usize).min(len_in - 1)
}

/// One output coordinate of a linear resize along an axis, as onnxruntime computes it: the
/// source coordinate clamped to the input, its two neighbours, and their weights (0.5 each
/// when both are the same pixel).
fn linear(o: usize, len_in: usize, len_out: usize, scale: f32, ctm: &str) -> LinearTap {
    let (of, li, lo) = (o as f32, len_in as f32, len_out as f32);
    let x = match ctm {
        "asymmetric" => of / scale,
        "align_corners" if len_out > 1 => of * (li - 1.0) / (lo - 1.0),
        "align_corners" => 0.0,
        "pytorch_half_pixel" if len_out > 1 => (of + 0.5) / scale - 0.5,
        "pytorch_half_pixel" => 0.0,
        _ => (of + 0.5) / scale - 0.5, // half_pixel
    };
    let x = x.max(0.0).min(li - 1.0);
    let i1 = (x as usize).min(len_in - 1);
    let i2 = (i1 + 1).min(len_in - 1);
    let (mut d1, mut d2) = ((x - i1 as f32).abs(), (x - i2 as f32).abs());
    if i1 == i2 {
        (d1, d2) = (0.5, 0.5);
    }
    // the weight of i1 is the distance to i2, and the reverse
    LinearTap {
        i1: i1 as u32,
        i2: i2 as u32,
        w1: d2,
        w2: d1,
    }
}

/// Slice's starts, ends, axes and steps.
pub(super) type SliceParams = (Vec<i64>, Vec<i64>, Option<Vec<i64>>, Option<Vec<i64>>);

impl Loader {
    /// Slice's parameters: constant inputs 1..=4 (opset >= 10) or attributes (before).
    pub(super) fn slice_params(&self, ins: &[&str], a: &Attrs) -> Result<SliceParams> {
        if self.opset < 10 {
            let g = |n: &str| a.ints(n).map(|v| v.to_vec());
            return Ok((
                g("starts").unwrap_or_default(),
                g("ends").unwrap_or_default(),
                g("axes"),
                None,
            ));
        }
        let konst = |k: usize| -> Result<Option<Vec<i64>>> {
            match ins.get(k).filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => self
                    .consts
                    .get(*s)
                    .map(|v| Some(v.to_i64()))
                    .ok_or_else(|| a.err(format!("input {k} ('{s}') must be a constant"))),
            }
        };
        let need = |k: usize| konst(k)?.ok_or_else(|| a.err(format!("missing input {k}")));
        Ok((need(1)?, need(2)?, konst(3)?, konst(4)?))
    }

    fn push_select(
        &mut self,
        name: &str,
        kind: SelectKind,
        x: String,
        out: &str,
        os: Vec<usize>,
        index: Vec<u32>,
    ) {
        let op = Op::Select {
            kind,
            index: Arc::from(index),
        };
        self.push(name, op, vec![x], out, os);
    }

    /// Slice of an activation (constant starts / ends / axes / steps). The batch axis stays.
    pub(super) fn slice(&mut self, name: &str, ins: &[&str], out: &str, a: &Attrs) -> Result<()> {
        let e = |r: String| Error::node(name, "Slice", r);
        let (x, xs) = self.dyn_in(ins, 0, a)?;
        let (starts, ends, axes, steps) = self.slice_params(ins, a)?;
        let per_axis = slice_axes(&xs, &starts, &ends, axes, steps).map_err(e)?;
        if per_axis[0].len() != 1 {
            return Err(e("slices the batch axis".into()));
        }
        let os: Vec<usize> = per_axis.iter().map(|v| v.len()).collect();
        let wrapped: Vec<Vec<Option<usize>>> = per_axis
            .into_iter()
            .map(|v| v.into_iter().map(Some).collect())
            .collect();
        let index = gather_index(&xs, &wrapped).map_err(e)?;
        self.push_select(name, SelectKind::Slice, x, out, os, index);
        Ok(())
    }

    /// Split along an axis into consecutive parts (the `split` sizes, or equal parts): one
    /// Select node per output, named `<name>`, `<name>.1`, ...
    pub(super) fn split(
        &mut self,
        name: &str,
        ins: &[&str],
        outs: &[String],
        a: &Attrs,
    ) -> Result<()> {
        let e = |r: String| Error::node(name, "Split", r);
        let (x, xs) = self.dyn_in(ins, 0, a)?;
        let ax = super::shape::axis(a.int("axis", 0), xs.len(), false).map_err(e)?;
        if ax == 0 {
            return Err(e("splits the batch axis".into()));
        }
        let sizes: Vec<i64> = match (self.opset >= 13, ins.get(1).filter(|s| !s.is_empty())) {
            (true, Some(s)) => self
                .consts
                .get(*s)
                .map(CVal::to_i64)
                .ok_or_else(|| e(format!("split sizes '{s}' must be a constant")))?,
            (false, _) if a.ints("split").is_some() => a.ints("split").unwrap_or_default().to_vec(),
            _ => {
                let n = outs.len().max(1);
                let part = xs[ax].div_ceil(n);
                (0..n)
                    .map(|k| part.min(xs[ax].saturating_sub(k * part)) as i64)
                    .collect()
            }
        };
        if sizes.len() != outs.len()
            || sizes.iter().any(|&s| s < 0)
            || sizes.iter().sum::<i64>() != xs[ax] as i64
        {
            return Err(e(format!(
                "split sizes {sizes:?} do not cut axis {ax} of {xs:?} into {} outputs",
                outs.len()
            )));
        }
        let mut at = 0usize;
        for (k, (out, &len)) in outs.iter().zip(&sizes).enumerate() {
            let mut per_axis: Vec<Vec<Option<usize>>> =
                xs.iter().map(|&d| (0..d).map(Some).collect()).collect();
            per_axis[ax] = (at..at + len as usize).map(Some).collect();
            at += len as usize;
            if out.is_empty() {
                continue;
            }
            let mut os = xs.clone();
            os[ax] = len as usize;
            let index = gather_index(&xs, &per_axis).map_err(e)?;
            let n = if k == 0 {
                name.to_string()
            } else {
                format!("{name}.{k}")
            };
            self.push_select(&n, SelectKind::Split, x.clone(), out, os, index);
        }
        Ok(())
    }

    /// Resize / Upsample in `nearest` mode over the spatial axes of NCHW (scales or sizes).
    pub(super) fn resize(
        &mut self,
        name: &str,
        op: &str,
        ins: &[&str],
        out: &str,
        a: &Attrs,
    ) -> Result<()> {
        let e = |r: String| Error::node(name, op, r);
        let (x, xs) = self.dyn_in(ins, 0, a)?;
        let mode = a.string("mode").unwrap_or_else(|| "nearest".into());
        if mode != "nearest" && mode != "linear" {
            return Err(Error::UnsupportedOp {
                node: name.into(),
                op: op.into(),
                detail: format!(" in mode '{mode}' (nearest and linear are supported)"),
            });
        }
        let cval = |k: usize| {
            ins.get(k)
                .filter(|s| !s.is_empty())
                .and_then(|s| self.consts.get(*s))
        };
        // Upsample-7 and Resize-10: scales; Resize-11+: roi, scales, sizes
        let (scales_at, sizes_at) = if op == "Resize" && self.opset >= 11 {
            (2, 3)
        } else {
            (1, usize::MAX)
        };
        let attr_scales = a.get("scales").map(|s| s.floats.clone());
        let (scales, sizes): (Vec<f32>, Vec<usize>) =
            match (cval(sizes_at), cval(scales_at), attr_scales) {
                (Some(s), _, _) if s.numel() > 0 => {
                    let sizes: Vec<usize> = s.to_i64().iter().map(|&v| v.max(0) as usize).collect();
                    let sc = sizes
                        .iter()
                        .zip(&xs)
                        .map(|(&o, &i)| o as f32 / i as f32)
                        .collect();
                    (sc, sizes)
                }
                (_, Some(s), _) if s.numel() > 0 => scaled(&xs, s.to_f32()),
                (_, _, Some(s)) => scaled(&xs, s),
                _ => return Err(e("needs constant scales or sizes".into())),
            };
        if sizes.len() != xs.len()
            || xs.len() != 4
            || sizes[0] != xs[0]
            || sizes[1] != xs[1]
            || sizes.contains(&0)
        {
            return Err(e(format!(
                "resizes {xs:?} to {sizes:?}: only the two spatial axes of NCHW may change"
            )));
        }
        let ctm = a
            .string("coordinate_transformation_mode")
            .unwrap_or_else(|| {
                if op == "Resize" && self.opset >= 11 {
                    "half_pixel"
                } else {
                    "asymmetric"
                }
                .into()
            });
        let nm = a.string("nearest_mode").unwrap_or_else(|| {
            if op == "Resize" && self.opset >= 11 {
                "round_prefer_floor"
            } else {
                "simple"
            }
            .into()
        });
        if mode == "linear" {
            if ctm == "tf_crop_and_resize" {
                return Err(e(
                    "coordinate_transformation_mode tf_crop_and_resize is not supported".into(),
                ));
            }
            let taps = |k: usize| -> Arc<[LinearTap]> {
                (0..sizes[k])
                    .map(|o| linear(o, xs[k], sizes[k], scales[k], &ctm))
                    .collect()
            };
            let op = Op::ResizeLinear {
                rows: taps(2),
                cols: taps(3),
            };
            self.push(name, op, vec![x], out, sizes);
            return Ok(());
        }
        let per_axis: Vec<Vec<Option<usize>>> = (0..4)
            .map(|k| match k {
                0 | 1 => (0..xs[k]).map(Some).collect(),
                _ => (0..sizes[k])
                    .map(|o| Some(nearest(o, xs[k], sizes[k], scales[k], &ctm, &nm)))
                    .collect(),
            })
            .collect();
        let index = gather_index(&xs, &per_axis).map_err(e)?;
        self.push_select(name, SelectKind::ResizeNearest, x, out, sizes, index);
        Ok(())
    }

    /// ConvTranspose as zero insertion (stride - 1 zeros between inputs, the transposed
    /// padding around them) followed by a stride-1 Conv with the flipped, transposed kernel.
    /// The hardware model sees that Conv and its inserted zeros (which FlexNN skips).
    pub(super) fn conv_transpose(
        &mut self,
        name: &str,
        ins: &[&str],
        out: &str,
        a: &Attrs,
    ) -> Result<()> {
        let e = |r: String| Error::node(name, "ConvTranspose", r);
        let (x, xs) = self.dyn_in(ins, 0, a)?;
        let w = self
            .cf(ins, 1)
            .ok_or_else(|| e("weights must be a constant".into()))?
            .clone();
        let ws = w.shape().to_vec();
        let group = usize::try_from(a.int("group", 1))
            .ok()
            .filter(|&g| g > 0)
            .ok_or_else(|| e("group must be positive".into()))?;
        if xs.len() != 4 || ws.len() != 4 || ws[0] != xs[1] || xs[1] % group != 0 {
            return Err(e(format!(
                "expects NCHW input and weight [C, M/group, kH, kW] (input {xs:?}, weight {ws:?}, group {group})"
            )));
        }
        if a.usizes("dilations", 2, 1)? != [1, 1] || a.get("output_shape").is_some() {
            return Err(Error::UnsupportedOp {
                node: name.into(),
                op: "ConvTranspose".into(),
                detail: " with dilations or output_shape".into(),
            });
        }
        if a.string("auto_pad").is_some_and(|p| p != "NOTSET") {
            return Err(Error::UnsupportedOp {
                node: name.into(),
                op: "ConvTranspose".into(),
                detail: " with auto_pad".into(),
            });
        }
        let s = a.usizes("strides", 2, 1)?;
        let p = a.usizes("pads", 4, 0)?;
        let op_ = a.usizes("output_padding", 2, 0)?;
        let (icg, ocg, k) = (ws[0] / group, ws[1], [ws[2], ws[3]]);
        let oc = ocg * group;
        let mut os = vec![xs[0], oc, 0, 0];
        let mut per_axis: Vec<Vec<Option<usize>>> =
            vec![vec![Some(0)], (0..xs[1]).map(Some).collect()];
        for d in 0..2 {
            let full = (xs[2 + d] - 1) * s[d] + k[d] + op_[d];
            os[2 + d] = full
                .checked_sub(p[d] + p[d + 2])
                .filter(|&v| v > 0)
                .ok_or_else(|| e(format!("pads {p:?} leave no output")))?;
            // zero-inserted, padded input of the equivalent stride-1 Conv: k - 1 - pad_begin before
            let lead = k[d] as i64 - 1 - p[d] as i64;
            per_axis.push(
                (0..os[2 + d] + k[d] - 1)
                    .map(|z| {
                        let t = z as i64 - lead;
                        (t >= 0 && t % s[d] as i64 == 0 && ((t / s[d] as i64) as usize) < xs[2 + d])
                            .then(|| (t / s[d] as i64) as usize)
                    })
                    .collect(),
            );
        }
        let wf = w.to_f32();
        let mut wt = vec![0f32; oc * icg * k[0] * k[1]];
        for g in 0..group {
            for i in 0..icg {
                for o in 0..ocg {
                    for y in 0..k[0] {
                        for xk in 0..k[1] {
                            let src = (((g * icg + i) * ocg + o) * k[0] + y) * k[1] + xk;
                            let dst = (((g * ocg + o) * icg + i) * k[0] + (k[0] - 1 - y)) * k[1]
                                + (k[1] - 1 - xk);
                            wt[dst] = wf[src];
                        }
                    }
                }
            }
        }
        let bias = self.conv_bias(ins, oc).map_err(e)?;
        let zs: Vec<usize> = per_axis.iter().map(|v| v.len()).collect();
        let index = gather_index(&xs, &per_axis).map_err(e)?;
        let up = format!("{out}::upsampled");
        self.push_select(
            &format!("{name}.upsample"),
            SelectKind::ConvTransposeUpsample,
            x,
            &up,
            zs,
            index,
        );
        let c = Conv {
            weight: Tensor::new(vec![oc, icg, k[0], k[1]], wt),
            bias,
            strides: [1, 1],
            dilations: [1, 1],
            pads: [0; 4],
            group,
        };
        self.push(name, Op::Conv(c), vec![up], out, os);
        Ok(())
    }

    /// LRN across channels of NCHW.
    pub(super) fn lrn(&mut self, name: &str, ins: &[&str], out: &str, a: &Attrs) -> Result<()> {
        let e = |r: String| Error::node(name, "LRN", r);
        let (x, xs) = self.dyn_in(ins, 0, a)?;
        let size = usize::try_from(a.int("size", 0))
            .ok()
            .filter(|&s| s > 0)
            .ok_or_else(|| e("size must be positive".into()))?;
        let (alpha, beta, bias) = (
            a.float("alpha", 1e-4),
            a.float("beta", 0.75),
            a.float("bias", 1.0),
        );
        if xs.len() < 3 || ![alpha, beta, bias].iter().all(|v| v.is_finite()) || bias <= 0.0 {
            return Err(e(format!(
                "needs an N x C x ... input and finite alpha, beta, bias > 0 (input {xs:?}, bias {bias})"
            )));
        }
        self.push(
            name,
            Op::Lrn {
                size,
                alpha,
                beta,
                bias,
            },
            vec![x],
            out,
            xs,
        );
        Ok(())
    }
}

/// Output sizes (floor of input x scale) and the scales themselves.
fn scaled(xs: &[usize], sc: Vec<f32>) -> (Vec<f32>, Vec<usize>) {
    let sizes = xs
        .iter()
        .zip(&sc)
        .map(|(&i, &s)| (i as f32 * s).floor().max(0.0) as usize)
        .collect();
    (sc, sizes)
}

/// Per-axis coordinates of a Slice (`axes` default 0.., `steps` default 1).
pub(super) fn slice_axes(
    shape: &[usize],
    starts: &[i64],
    ends: &[i64],
    axes: Option<Vec<i64>>,
    steps: Option<Vec<i64>>,
) -> std::result::Result<Vec<Vec<usize>>, String> {
    let axes: Vec<i64> = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if axes.len() != starts.len() || ends.len() != starts.len() || steps.len() != starts.len() {
        return Err("Slice starts/ends/axes/steps lengths differ".into());
    }
    let mut ranges: Vec<Vec<usize>> = shape.iter().map(|&d| (0..d).collect()).collect();
    for k in 0..axes.len() {
        let ax = super::shape::axis(axes[k], shape.len(), false)?;
        if steps[k] == 0 {
            return Err("Slice step 0".into());
        }
        ranges[ax] = slice_range(shape[ax], starts[k], ends[k], steps[k]);
    }
    Ok(ranges)
}
