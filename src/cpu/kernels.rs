//! Compute kernels of the CPU engine, one function per kernel, written as plain loops over
//! one image. The WGSL kernels of the GPU engine mirror these names and this arithmetic.
//! Accumulation order per output is fixed: bias first, then input channel, kernel row,
//! kernel column ascending (the same order as `cpu::reference`).

use crate::model::ir::LinearTap;
use std::ops::{AddAssign, Mul};

use crate::quant::calib::rne;

pub use crate::exec::ConvGeom;

/// Direct convolution accumulating into `acc` (`[OC, OH, OW]`, pre-filled with the bias).
/// Zero weights are skipped (exact in every numeric mode).
pub fn conv2d<T: Copy, A>(x: &[T], wt: &[A], g: &ConvGeom, acc: &mut [A], widen: impl Fn(T) -> A)
where
    A: Copy + AddAssign + Mul<Output = A> + PartialEq + Default,
{
    if g.is_pointwise() {
        return conv1x1(x, wt, g, acc, widen);
    }
    let ocg = g.oc / g.group;
    let zero = A::default();
    for o in 0..g.oc {
        let grp = o / ocg;
        let out = &mut acc[o * g.oh * g.ow..(o + 1) * g.oh * g.ow];
        for i in 0..g.icg {
            let ci = grp * g.icg + i;
            let plane = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let wv = wt[((o * g.icg + i) * g.kh + ky) * g.kw + kx];
                    if wv == zero {
                        continue;
                    }
                    let (x0, x1) = g.x_range(kx);
                    if x0 >= x1 {
                        // every column of this tap is padding (e.g. right pad >= the
                        // dilated kernel): nothing to add, and no slice to take
                        continue;
                    }
                    for y in 0..g.oh {
                        let iy = (y * g.sh + ky * g.dh) as isize - g.pt as isize;
                        if iy < 0 || iy >= g.h as isize {
                            continue;
                        }
                        let row = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                        let orow = &mut out[y * g.ow..(y + 1) * g.ow];
                        let base = kx * g.dw;
                        if g.sw == 1 {
                            let s = x0 + base - g.pl;
                            for (o, &v) in orow[x0..x1].iter_mut().zip(&row[s..s + (x1 - x0)]) {
                                *o += wv * widen(v);
                            }
                        } else {
                            for xo in x0..x1 {
                                orow[xo] += wv * widen(row[xo * g.sw + base - g.pl]);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Pointwise (1x1, stride 1, no padding) convolution as a register-blocked GEMM:
/// 4 output channels x 256 pixels per tile, input channels ascending (same per-output
/// order as [`conv2d`]).
pub fn conv1x1<T: Copy, A>(x: &[T], wt: &[A], g: &ConvGeom, acc: &mut [A], widen: impl Fn(T) -> A)
where
    A: Copy + AddAssign + Mul<Output = A> + Default,
{
    const OB: usize = 4;
    const PB: usize = 256;
    let (oc, ic, hw) = (g.oc, g.icg, g.h * g.w);
    let mut xb = [A::default(); PB];
    for p0 in (0..hw).step_by(PB) {
        let pn = PB.min(hw - p0);
        let mut o0 = 0;
        while o0 < oc {
            let on = OB.min(oc - o0);
            let mut tile = [[A::default(); PB]; OB];
            for (r, t) in tile.iter_mut().enumerate().take(on) {
                t[..pn].copy_from_slice(&acc[(o0 + r) * hw + p0..(o0 + r) * hw + p0 + pn]);
            }
            for i in 0..ic {
                for (d, &s) in xb[..pn].iter_mut().zip(&x[i * hw + p0..i * hw + p0 + pn]) {
                    *d = widen(s);
                }
                for (r, t) in tile.iter_mut().enumerate().take(on) {
                    let w = wt[(o0 + r) * ic + i];
                    for (a, &v) in t[..pn].iter_mut().zip(&xb[..pn]) {
                        *a += w * v;
                    }
                }
            }
            for (r, t) in tile.iter().enumerate().take(on) {
                acc[(o0 + r) * hw + p0..(o0 + r) * hw + p0 + pn].copy_from_slice(&t[..pn]);
            }
            o0 += on;
        }
    }
}

/// Fully connected: `acc[r, o] += sum_k x[r, k] * w[o, k]` (acc pre-filled with the bias).
pub fn dense<T: Copy, A>(
    x: &[T],
    wt: &[A],
    ic: usize,
    oc: usize,
    acc: &mut [A],
    widen: impl Fn(T) -> A,
) where
    A: Copy + AddAssign + Mul<Output = A>,
{
    let rows = x.len() / ic;
    for r in 0..rows {
        let xr = &x[r * ic..(r + 1) * ic];
        for o in 0..oc {
            let wr = &wt[o * ic..(o + 1) * ic];
            let mut a = acc[r * oc + o];
            for (&xv, &wv) in xr.iter().zip(wr) {
                a += wv * widen(xv);
            }
            acc[r * oc + o] = a;
        }
    }
}

/// Requantize INT32 accumulators to INT8: `clamp(round_even(acc * m[channel]), -127, 127)`,
/// channel = `(index / per_channel) % channels` (NCHW, any batch), or `index % channels`
/// when `channel_last` (row-major dense output).
pub fn requantize(
    acc: &[i32],
    m: &[f32],
    per_channel: usize,
    channels: usize,
    channel_last: bool,
) -> Vec<i8> {
    per_channel_map(acc, m, per_channel, channels, channel_last, |a, f| {
        quantize1(a as f32 * f)
    })
}

/// `f(acc[i], m[channel of i])` for every i, walking contiguous runs of one channel (no
/// division per element); channel `(i / per_channel) % channels`, or `i % channels` when
/// `channel_last`.
fn per_channel_map<T>(
    acc: &[i32],
    m: &[f32],
    per_channel: usize,
    channels: usize,
    channel_last: bool,
    f: impl Fn(i32, f32) -> T,
) -> Vec<T> {
    let mut out = Vec::with_capacity(acc.len());
    if channel_last {
        for row in acc.chunks(channels.max(1)) {
            out.extend(row.iter().zip(m).map(|(&a, &k)| f(a, k)));
        }
    } else {
        for (c, run) in acc.chunks(per_channel.max(1)).enumerate() {
            let k = m[c % channels.max(1)];
            out.extend(run.iter().map(|&a| f(a, k)));
        }
    }
    out
}

/// INT32 accumulators to FP32 outputs: `acc * m[channel]` (layers feeding graph outputs).
pub fn dequantize_acc(
    acc: &[i32],
    m: &[f32],
    per_channel: usize,
    channels: usize,
    channel_last: bool,
) -> Vec<f32> {
    per_channel_map(acc, m, per_channel, channels, channel_last, |a, k| {
        a as f32 * k
    })
}

/// ReLU / Clip on INT8 values: exact, the scale is unchanged.
pub fn clamp_i8(q: &[i8], lo: i8, hi: i8) -> Vec<i8> {
    q.iter().map(|&v| v.clamp(lo, hi)).collect()
}

/// Residual add of two INT8 tensors of equal shape: `quantize1(fma(a, ra, b * rb))` with
/// `ra = s_a / s_out`, `rb = s_b / s_out` (one fused multiply-add, one rounding).
pub fn add_i8(a: &[i8], b: &[i8], ra: f32, rb: f32) -> Vec<i8> {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| quantize1((x as f32).mul_add(ra, y as f32 * rb)))
        .collect()
}

/// Global average pooling of INT8 planes of `hw` values: `quantize1(sum * k)`, with
/// `k = s_in / (hw * s_out)`.
pub fn gap_i8(x: &[i8], hw: usize, k: f32) -> Vec<i8> {
    x.chunks(hw)
        .map(|c| quantize1(c.iter().map(|&v| v as i32).sum::<i32>() as f32 * k))
        .collect()
}

/// Top-k classes per image and the accuracy counts, as the `topk_count` kernel computes
/// them: `logits` are raw 32-bit words (FP32 bits, or INT8 codes as i32 when `is_int`),
/// `labels` / `reference` hold -1 for "none". Returns the top-1 class of every image and
/// `[top-1 hits, top-k hits, agreements with the reference, labelled images]`. Ties rank
/// the lower class first; a NaN is never ranked above a number.
pub fn topk_count(
    logits: &[u32],
    labels: &[i32],
    reference: &[i32],
    classes: usize,
    is_int: bool,
    k: usize,
) -> (Vec<i32>, [u32; 4]) {
    let k = k.min(8).min(classes);
    let mut counts = [0u32; 4];
    let mut top1 = Vec::with_capacity(labels.len());
    for (img, row) in logits.chunks(classes).enumerate() {
        let mut best = [0f32; 8];
        let mut idx = [0i32; 8];
        let mut filled = 0usize;
        for (c, &w) in row.iter().enumerate() {
            let v = if is_int {
                w as i32 as f32
            } else {
                f32::from_bits(w)
            };
            let pos = (0..filled).find(|&j| v > best[j]).unwrap_or(filled);
            if pos >= k {
                continue;
            }
            let mut j = filled.min(k - 1);
            while j > pos {
                best[j] = best[j - 1];
                idx[j] = idx[j - 1];
                j -= 1;
            }
            best[pos] = v;
            idx[pos] = c as i32;
            filled = (filled + 1).min(k);
        }
        top1.push(idx[0]);
        let y = labels[img];
        if y >= 0 {
            counts[3] += 1;
            counts[0] += (idx[0] == y) as u32;
            counts[1] += idx[..k].contains(&y) as u32;
        }
        let r = reference[img];
        counts[2] += (r >= 0 && idx[0] == r) as u32;
    }
    (top1, counts)
}

/// FP32 direct convolution of a batch, as the `conv2d_f32` kernel computes it: each
/// output starts from its bias and adds products in (input channel, kernel row, kernel
/// column) order. `x` holds `n` images.
pub fn conv2d_f32(x: &[f32], wt: &[f32], bias: &[f32], g: &ConvGeom, n: usize) -> Vec<f32> {
    let per_image = g.oc * g.oh * g.ow;
    let mut y = vec![0f32; n * per_image];
    let ocg = g.oc / g.group;
    for (idx, out) in y.iter_mut().enumerate() {
        let b = idx / per_image;
        let xb = &x[b * g.c * g.h * g.w..(b + 1) * g.c * g.h * g.w];
        let o = (idx % per_image) / (g.oh * g.ow);
        let (yy, xo) = ((idx / g.ow) % g.oh, idx % g.ow);
        let grp = o / ocg;
        let mut a = bias[o];
        for i in 0..g.icg {
            let ci = grp * g.icg + i;
            for ky in 0..g.kh {
                let iy = (yy * g.sh + ky * g.dh) as isize - g.pt as isize;
                if iy < 0 || iy >= g.h as isize {
                    continue;
                }
                for kx in 0..g.kw {
                    let ix = (xo * g.sw + kx * g.dw) as isize - g.pl as isize;
                    if ix < 0 || ix >= g.w as isize {
                        continue;
                    }
                    let xv = xb[(ci * g.h + iy as usize) * g.w + ix as usize];
                    a += wt[((o * g.icg + i) * g.kh + ky) * g.kw + kx] * xv;
                }
            }
        }
        *out = a;
    }
    y
}

/// FP32 pointwise convolution of `n` images, as `conv1x1_f32`: from the bias, input
/// channels ascending (the order of [`conv2d_f32`]).
pub fn conv1x1_f32(
    x: &[f32],
    wt: &[f32],
    bias: &[f32],
    n: usize,
    ic: usize,
    oc: usize,
    hw: usize,
) -> Vec<f32> {
    let mut y = vec![0f32; n * oc * hw];
    for b in 0..n {
        for o in 0..oc {
            for px in 0..hw {
                let mut a = bias[o];
                for i in 0..ic {
                    a += wt[o * ic + i] * x[(b * ic + i) * hw + px];
                }
                y[(b * oc + o) * hw + px] = a;
            }
        }
    }
    y
}

/// FP32 fully connected layer, as `dense_f32`: bias, then inputs in ascending order.
pub fn dense_f32(x: &[f32], wt: &[f32], bias: &[f32], ic: usize, oc: usize) -> Vec<f32> {
    let rows = x.len() / ic.max(1);
    let mut y = vec![0f32; rows * oc];
    for r in 0..rows {
        for o in 0..oc {
            let mut a = bias[o];
            for k in 0..ic {
                a += wt[o * ic + k] * x[r * ic + k];
            }
            y[r * oc + o] = a;
        }
    }
    y
}

/// Per-tensor INT8 quantize-dequantize: `quantize1(x / s) * s` (fake-quant mode).
pub fn fake_quant(x: &[f32], s: f32) -> Vec<f32> {
    x.iter().map(|&v| quantize1(v / s) as f32 * s).collect()
}

/// `min(max(x, lo), hi)` (Relu, Clip) on FP32 values.
pub fn clamp_f32(x: &[f32], lo: f32, hi: f32) -> Vec<f32> {
    x.iter().map(|&v| v.max(lo).min(hi)).collect()
}

/// Elementwise sum of two FP32 tensors of equal shape.
pub fn add_f32(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// Global average pooling of FP32 planes of `hw` values: ascending sum / hw.
pub fn gap_f32(x: &[f32], hw: usize) -> Vec<f32> {
    x.chunks(hw)
        .map(|c| c.iter().fold(0f32, |s, &v| s + v) / hw as f32)
        .collect()
}

/// Max pooling of FP32 images `[C, H, W]` (C may span a batch), as `maxpool_f32`.
pub fn maxpool_f32(x: &[f32], g: &ConvGeom) -> Vec<f32> {
    maxpool(x, g, -3.402823e38)
}

/// The 256-entry INT8 table of an elementwise activation `f` for input scale `s` and output
/// scale `so`: entry k + 128 is `quantize1(f(k * s) / so)`.
pub fn activation_lut(f: impl Fn(f32) -> f32, s: f32, so: f32) -> Vec<i8> {
    (-128i32..128)
        .map(|k| quantize1(f(k as f32 * s) / so))
        .collect()
}

/// Elementwise activation by table lookup (`lut_i8`): `lut[x + 128]`.
pub fn lut_i8(x: &[i8], lut: &[i8]) -> Vec<i8> {
    x.iter().map(|&v| lut[(v as i32 + 128) as usize]).collect()
}

/// Product of INT8 tensors (`mul_i8`): `quantize1((a * b[i / b_div]) * k)`,
/// `k = s_a * s_b / s_out`; `b_div` = 1 (same shape) or H*W (one value per plane).
pub fn mul_i8(a: &[i8], b: &[i8], b_div: usize, k: f32) -> Vec<i8> {
    a.iter()
        .enumerate()
        .map(|(i, &x)| quantize1((x as i32 * b[i / b_div] as i32) as f32 * k))
        .collect()
}

/// Product of FP32 tensors (`mul_f32`), `b` indexed like [`mul_i8`].
pub fn mul_f32(a: &[f32], b: &[f32], b_div: usize) -> Vec<f32> {
    a.iter()
        .enumerate()
        .map(|(i, &x)| x * b[i / b_div])
        .collect()
}

/// Elementwise FP32 activation (`unary_f32`): op 0 Sigmoid, 1 HardSwish, 2 HardSigmoid.
pub fn unary_f32(x: &[f32], op: u32, alpha: f32, beta: f32) -> Vec<f32> {
    x.iter().map(|&v| unary1(v, op, alpha, beta)).collect()
}

/// One value of [`unary_f32`].
pub fn unary1(v: f32, op: u32, alpha: f32, beta: f32) -> f32 {
    match op {
        0 => 1.0 / (1.0 + (-v).exp()),
        1 => v * (v / 6.0 + 0.5).clamp(0.0, 1.0),
        _ => (alpha * v + beta).clamp(0.0, 1.0),
    }
}

/// INT8 average pooling (`avgpool_i8`): window sum x `m[count - 1]`, then quantize1, where
/// `m[c - 1] = s_in / (c * s_out)` (see [`avgpool_factors`]).
pub fn avgpool_i8(x: &[i8], g: &ConvGeom, include_pad: bool, m: &[f32]) -> Vec<i8> {
    avgpool_sums(x, g, include_pad, |v| v as i32)
        .into_iter()
        .map(|(a, n)| quantize1(a as f32 * m[n - 1]))
        .collect()
}

/// The factors of [`avgpool_i8`] for counts 1..=kh*kw.
pub fn avgpool_factors(s_in: f32, s_out: f32, window: usize) -> Vec<f32> {
    (1..=window.max(1))
        .map(|n| s_in / (n as f32 * s_out))
        .collect()
}

/// FP32 average pooling (`avgpool_f32`): window sum / count.
pub fn avgpool_f32(x: &[f32], g: &ConvGeom, include_pad: bool) -> Vec<f32> {
    avgpool_sums(x, g, include_pad, |v| v)
        .into_iter()
        .map(|(a, n)| a / n as f32)
        .collect()
}

/// Packed StruM weights to integer weights, block by block, as the `strum_decode` kernel
/// does it (the decoding rules of docs/packed-format.md, shared with `Packed::lane_value`).
pub fn strum_decode(p: &crate::quant::Packed) -> Vec<i32> {
    p.decode()
}

/// Integer weights `[rows, cols]` packed four per u32 along `cols` (`pack_i8x4`): byte t of
/// word `r * ceil(cols / 4) + j` is `w[r, 4j + t]`, zero past `cols`.
pub fn pack_i8x4(w: &[i32], rows: usize, cols: usize) -> Vec<u32> {
    let c4 = cols.div_ceil(4);
    let mut out = vec![0u32; rows * c4];
    for r in 0..rows {
        for c in 0..cols {
            out[r * c4 + c / 4] |= ((w[r * cols + c] as u32) & 0xFF) << (8 * (c % 4));
        }
    }
    out
}

/// The 4-lane signed dot product of two packed words (`dot4I8Packed`).
pub fn dot4_i8(a: u32, b: u32) -> i32 {
    (0..4)
        .map(|t| ((a >> (8 * t)) as u8 as i8 as i32) * ((b >> (8 * t)) as u8 as i8 as i32))
        .sum()
}

fn pack_x4(v: [i32; 4]) -> u32 {
    v.iter()
        .enumerate()
        .fold(0u32, |w, (t, &x)| w | ((x as u32 & 0xFF) << (8 * t)))
}

/// Dense with packed dot products, as `dense_dp4a`: rows of `x` (INT8 as i32) times weights
/// packed by [`pack_i8x4`], from the INT32 bias.
pub fn dense_dp4a(x: &[i32], wp: &[u32], bias: &[i32], ic: usize, oc: usize) -> Vec<i32> {
    let ic4 = ic.div_ceil(4);
    let rows = x.len() / ic.max(1);
    let mut acc = vec![0i32; rows * oc];
    for r in 0..rows {
        for o in 0..oc {
            let mut a = bias[o];
            for k4 in 0..ic4 {
                let v = std::array::from_fn(|u| {
                    let k = 4 * k4 + u;
                    if k < ic { x[r * ic + k] } else { 0 }
                });
                a += dot4_i8(pack_x4(v), wp[o * ic4 + k4]);
            }
            acc[r * oc + o] = a;
        }
    }
    acc
}

/// Pointwise convolution of `n` images with packed dot products, as `conv1x1_dp4a`.
pub fn conv1x1_dp4a(
    x: &[i32],
    wp: &[u32],
    bias: &[i32],
    n: usize,
    ic: usize,
    oc: usize,
    hw: usize,
) -> Vec<i32> {
    let ic4 = ic.div_ceil(4);
    let mut acc = vec![0i32; n * oc * hw];
    for b in 0..n {
        for o in 0..oc {
            for px in 0..hw {
                let mut a = bias[o];
                for i4 in 0..ic4 {
                    let v = std::array::from_fn(|u| {
                        let i = 4 * i4 + u;
                        if i < ic { x[(b * ic + i) * hw + px] } else { 0 }
                    });
                    a += dot4_i8(pack_x4(v), wp[o * ic4 + i4]);
                }
                acc[(b * oc + o) * hw + px] = a;
            }
        }
    }
    acc
}

/// Parameters of [`strum_quantize`] (the `strum_quantize` kernel's uniform block).
#[derive(Clone, Copy, Debug)]
pub struct StrumQuantParams {
    pub geometry: crate::quant::Geometry,
    pub low: usize,
    /// 0 INT8 copy, 1 MIP2Q, 2 DLIQ
    pub scheme: u32,
    pub emin: u32,
    pub emax: u32,
    pub p2_round: crate::quant::config::P2Round,
    pub block_shift: bool,
    pub per_channel: usize,
}

/// StruM quantization from INT8 codes, as the `strum_quantize` kernel does it, one block at
/// a time: the L lanes first in (padding, |ratio|, lane) order are demoted (MIP2Q or DLIQ
/// with the block's smallest sufficient shift), then each value is scaled by its output
/// channel's INT32 headroom factor (`rne(v * r)` where `r != 1`).
pub fn strum_quantize(
    p: &StrumQuantParams,
    q8: &[i32],
    ratio: &[f32],
    headroom: &[f32],
) -> Vec<i32> {
    use crate::quant::lowp;
    let g = p.geometry;
    let low = if p.scheme == 0 { 0 } else { p.low };
    let mut w = vec![0i32; q8.len()];
    let mag = |i: Option<usize>| i.map_or(-1.0, |i| ratio[i].abs());
    for b in 0..g.num_blocks() {
        let lanes: Vec<Option<usize>> = g.block_lanes(b).collect();
        let before = |x: usize, y: usize| {
            let (px, py) = (lanes[x].is_some(), lanes[y].is_some());
            if px != py {
                return !px;
            }
            let (mx, my) = (mag(lanes[x]), mag(lanes[y]));
            if mx != my {
                return mx < my;
            }
            x < y
        };
        let mut demoted = vec![false; g.block];
        let mut mx = 0i32;
        for x in 0..g.block {
            let rank = (0..g.block).filter(|&y| y != x && before(y, x)).count();
            if rank < low {
                demoted[x] = true;
                if let Some(i) = lanes[x] {
                    mx = mx.max(q8[i].abs());
                }
            }
        }
        let k = if p.scheme == 2 && p.block_shift {
            lowp::dliq_min_shift(mx)
        } else {
            0
        };
        for (x, lane) in lanes.iter().enumerate() {
            let Some(i) = *lane else { continue };
            let mut v = q8[i];
            if demoted[x] {
                v = if p.scheme == 1 {
                    lowp::mip2q(v, p.emin, p.emax, p.p2_round).0
                } else {
                    lowp::dliq(v, k).0
                };
            }
            let r = headroom[i / p.per_channel];
            if r != 1.0 {
                v = rne(v as f32 * r) as i32;
            }
            w[i] = v;
        }
    }
    w
}

/// One FP32 value (already divided by the scale) to symmetric INT8.
#[inline]
pub fn quantize1(v: f32) -> i8 {
    // = rne(v).clamp(-127, 127): the bounds are integers, so clamping first changes
    // nothing, and for |v| <= 127 adding and subtracting 1.5 * 2^23 rounds to the nearest
    // integer with ties to even (the FPU's default mode) without a libm call. NaN stays NaN
    // and casts to 0 either way.
    const MAGIC: f32 = 12_582_912.0;
    let c = v.clamp(-127.0, 127.0);
    ((c + MAGIC) - MAGIC) as i8
}

/// Quantize FP32 values to INT8 with scale `s`.
pub fn quantize(x: &[f32], s: f32) -> Vec<i8> {
    x.iter().map(|&v| quantize1(v / s)).collect()
}

/// Max pooling of one image `[C, H, W]`; works for any ordered element type.
pub fn maxpool<T: Copy + PartialOrd>(x: &[T], g: &ConvGeom, lowest: T) -> Vec<T> {
    let mut out = vec![lowest; g.c * g.oh * g.ow];
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for y in 0..g.oh {
            for xo in 0..g.ow {
                let mut m = lowest;
                for ky in 0..g.kh {
                    let iy = (y * g.sh + ky) as isize - g.pt as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    for kx in 0..g.kw {
                        let ix = (xo * g.sw + kx) as isize - g.pl as isize;
                        if ix >= 0 && ix < g.w as isize {
                            let v = plane[iy as usize * g.w + ix as usize];
                            if v > m {
                                m = v;
                            }
                        }
                    }
                }
                out[(c * g.oh + y) * g.ow + xo] = m;
            }
        }
    }
    out
}

/// Window sums for average pooling: (sum, divisor) per output, over one image.
pub fn avgpool_sums<T: Copy, A: Copy + AddAssign + Default>(
    x: &[T],
    g: &ConvGeom,
    include_pad: bool,
    widen: impl Fn(T) -> A,
) -> Vec<(A, usize)> {
    let mut out = Vec::with_capacity(g.c * g.oh * g.ow);
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for y in 0..g.oh {
            for xo in 0..g.ow {
                let mut s = A::default();
                let mut n = 0;
                for ky in 0..g.kh {
                    let iy = (y * g.sh + ky) as isize - g.pt as isize;
                    for kx in 0..g.kw {
                        let ix = (xo * g.sw + kx) as isize - g.pl as isize;
                        if iy >= 0 && iy < g.h as isize && ix >= 0 && ix < g.w as isize {
                            s += widen(plane[iy as usize * g.w + ix as usize]);
                            n += 1;
                        }
                    }
                }
                out.push((s, if include_pad { g.kh * g.kw } else { n.max(1) }));
            }
        }
    }
    out
}

/// For zero-skipping statistics: for every (input channel, ky, kx) of a convolution, the
/// number of output positions whose input activation is non-zero (padding counts as zero).
pub fn nonzero_taps(nz: &[bool], g: &ConvGeom) -> Vec<u64> {
    let mut out = vec![0u64; g.c * g.kh * g.kw];
    for ci in 0..g.c {
        let plane = &nz[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let (x0, x1) = g.x_range(kx);
                let mut n = 0u64;
                for y in 0..g.oh {
                    let iy = (y * g.sh + ky * g.dh) as isize - g.pt as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    let row = &plane[iy as usize * g.w..];
                    for xo in x0..x1 {
                        n += row[xo * g.sw + kx * g.dw - g.pl] as u64;
                    }
                }
                out[(ci * g.kh + ky) * g.kw + kx] = n;
            }
        }
    }
    out
}

/// N-d padding. `fill` is used for constant mode; `edge` / `reflect` index into the input.
pub fn pad<T: Copy>(
    x: &[T],
    shape: &[usize],
    pads: &[[usize; 2]],
    mode: crate::model::PadMode,
    fill: T,
) -> Vec<T> {
    use crate::model::PadMode;
    let rank = shape.len();
    let out: Vec<usize> = (0..rank)
        .map(|k| shape[k] + pads[k][0] + pads[k][1])
        .collect();
    let strides: Vec<usize> = (0..rank).map(|k| shape[k + 1..].iter().product()).collect();
    let n: usize = out.iter().product();
    let mut res = Vec::with_capacity(n);
    let mut idx = vec![0usize; rank];
    for _ in 0..n {
        let mut src = 0usize;
        let mut inside = true;
        for k in 0..rank {
            let d = shape[k] as isize;
            let mut i = idx[k] as isize - pads[k][0] as isize;
            if i < 0 || i >= d {
                match mode {
                    PadMode::Constant(_) => {
                        inside = false;
                        break;
                    }
                    PadMode::Edge => i = i.clamp(0, d - 1),
                    PadMode::Reflect => i = if i < 0 { -i } else { 2 * (d - 1) - i },
                }
            }
            src += i as usize * strides[k];
        }
        res.push(if inside { x[src] } else { fill });
        for k in (0..rank).rev() {
            idx[k] += 1;
            if idx[k] < out[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    res
}

/// Sums over `axes` (output in row-major order of the kept axes) and the count per sum.
pub fn reduce_sum<T: Copy, A: Copy + AddAssign + Default>(
    x: &[T],
    shape: &[usize],
    axes: &[usize],
    widen: impl Fn(T) -> A,
) -> (Vec<A>, usize) {
    let rank = shape.len();
    let kept: Vec<usize> = (0..rank).filter(|k| !axes.contains(k)).collect();
    let out_n: usize = kept.iter().map(|&k| shape[k]).product();
    let count: usize = axes.iter().map(|&k| shape[k]).product();
    let mut sums = vec![A::default(); out_n];
    let mut idx = vec![0usize; rank];
    for &v in x {
        let mut o = 0usize;
        for &k in &kept {
            o = o * shape[k] + idx[k];
        }
        sums[o] += widen(v);
        for k in (0..rank).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    (sums, count.max(1))
}

/// `Op::Select` over images of `in_per` elements: output element `i` of an image is
/// `x[index[i]]` of that image, or `zero` where the index is `SELECT_ZERO`.
pub fn select<T: Copy>(x: &[T], in_per: usize, index: &[u32], zero: T) -> Vec<T> {
    let mut out = Vec::with_capacity(x.len() / in_per.max(1) * index.len());
    for img in x.chunks_exact(in_per) {
        out.extend(index.iter().map(|&i| {
            if i == crate::model::ir::SELECT_ZERO {
                zero
            } else {
                img[i as usize]
            }
        }));
    }
    out
}

/// LRN across the `channels` of each image (planes of `plane` elements, NCHW):
/// `y = x / (bias + alpha / size * sum of x^2 over channels c - (size-1)/2 ..= c + size/2) ^ beta`.
pub fn lrn_f32(x: &[f32], channels: usize, plane: usize, p: [f32; 3], size: usize) -> Vec<f32> {
    let [alpha, beta, bias] = p;
    let (lo, hi) = ((size - 1) / 2, size / 2);
    let mut out = vec![0f32; x.len()];
    for (img, o) in x
        .chunks_exact(channels * plane)
        .zip(out.chunks_exact_mut(channels * plane))
    {
        for c in 0..channels {
            let (a, b) = (c.saturating_sub(lo), (c + hi).min(channels - 1));
            for e in 0..plane {
                let sq: f32 = (a..=b)
                    .map(|k| img[k * plane + e] * img[k * plane + e])
                    .sum();
                let v = img[c * plane + e];
                o[c * plane + e] = v / (bias + alpha / size as f32 * sq).powf(beta);
            }
        }
    }
    out
}

/// [`lrn_f32`] in integer mode: INT8 codes of scale `si` in, codes of scale `so` out.
pub fn lrn_i8(
    q: &[i8],
    channels: usize,
    plane: usize,
    p: [f32; 3],
    size: usize,
    si: f32,
    so: f32,
) -> Vec<i8> {
    let x: Vec<f32> = q.iter().map(|&v| v as f32 * si).collect();
    lrn_f32(&x, channels, plane, p, size)
        .iter()
        .map(|&y| quantize1(y / so))
        .collect()
}

/// `Op::ResizeLinear` over `planes` planes of `h x w`: each output value is the weighted sum
/// of its four neighbours, in onnxruntime's order (`w1y w1x X11 + w1y w2x X12 + w2y w1x X21
/// + w2y w2x X22`, in f32).
pub fn resize_linear_f32(
    x: &[f32],
    h: usize,
    w: usize,
    rows: &[LinearTap],
    cols: &[LinearTap],
) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len() / (h * w) * rows.len() * cols.len());
    for p in x.chunks_exact(h * w) {
        for r in rows {
            let (a, b) = (&p[r.i1 as usize * w..], &p[r.i2 as usize * w..]);
            for c in cols {
                let (c1, c2) = (c.i1 as usize, c.i2 as usize);
                out.push(
                    c.w1 * r.w1 * a[c1]
                        + c.w2 * r.w1 * a[c2]
                        + c.w1 * r.w2 * b[c1]
                        + c.w2 * r.w2 * b[c2],
                );
            }
        }
    }
    out
}

/// [`resize_linear_f32`] on INT8 codes: the output keeps the input's scale (an
/// interpolation stays within its inputs' range), rounded to nearest, ties to even.
pub fn resize_linear_i8(
    q: &[i8],
    h: usize,
    w: usize,
    rows: &[LinearTap],
    cols: &[LinearTap],
) -> Vec<i8> {
    let x: Vec<f32> = q.iter().map(|&v| v as f32).collect();
    resize_linear_f32(&x, h, w, rows, cols)
        .into_iter()
        .map(quantize1)
        .collect()
}
