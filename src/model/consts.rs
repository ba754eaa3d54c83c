//! Constant values seen while loading (initializers, `Constant` nodes, folded results),
//! and the small constant-folding evaluator that CNN exports need (shape arithmetic,
//! weight reshapes and transposes, placeholder `ConstantOfShape` weights).

use super::onnx_proto::{TensorProto, dtype};
use super::shape;

/// Largest constant we are willing to materialise (elements). A corrupt file can claim
/// astronomically large dims; this turns that into an error instead of an allocation.
pub const MAX_CONST_ELEMS: usize = 1 << 28;

#[derive(Clone, Debug, PartialEq)]
pub enum CVal {
    F(Vec<usize>, Vec<f32>),
    I(Vec<usize>, Vec<i64>),
}

impl CVal {
    pub fn shape(&self) -> &[usize] {
        match self {
            CVal::F(s, _) | CVal::I(s, _) => s,
        }
    }
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            CVal::F(_, d) => d.clone(),
            CVal::I(_, d) => d.iter().map(|&v| v as f32).collect(),
        }
    }
    pub fn to_i64(&self) -> Vec<i64> {
        match self {
            CVal::I(_, d) => d.clone(),
            CVal::F(_, d) => d.iter().map(|&v| v as i64).collect(),
        }
    }
    pub fn numel(&self) -> usize {
        match self {
            CVal::F(_, d) => d.len(),
            CVal::I(_, d) => d.len(),
        }
    }
    pub fn with_shape(&self, shape: Vec<usize>) -> CVal {
        match self {
            CVal::F(_, d) => CVal::F(shape, d.clone()),
            CVal::I(_, d) => CVal::I(shape, d.clone()),
        }
    }
}

/// Checked element count of a shape, capped at [`MAX_CONST_ELEMS`].
pub fn numel_checked(dims: &[usize]) -> Result<usize, String> {
    let mut n: usize = 1;
    for &d in dims {
        n = n
            .checked_mul(d)
            .ok_or_else(|| format!("shape {dims:?} overflows"))?;
    }
    if n > MAX_CONST_ELEMS {
        return Err(format!(
            "tensor of shape {dims:?} has {n} elements, more than the {MAX_CONST_ELEMS} allowed"
        ));
    }
    Ok(n)
}

fn raw_chunks<const N: usize>(raw: &[u8], n: usize) -> Result<Vec<[u8; N]>, String> {
    let want = n.checked_mul(N).ok_or("size overflow")?;
    if raw.len() != want {
        return Err(format!(
            "raw_data holds {} bytes, {} expected for {} elements",
            raw.len(),
            want,
            n
        ));
    }
    Ok(raw
        .chunks_exact(N)
        .map(|c| c.try_into().expect("chunks_exact"))
        .collect())
}

fn check_len(have: usize, want: usize, field: &str) -> Result<(), String> {
    if have != want {
        return Err(format!(
            "{field} holds {have} values, {want} expected from dims"
        ));
    }
    Ok(())
}

/// Decode a `TensorProto` into a constant. Errors are plain strings; callers add context.
pub fn from_proto(t: &TensorProto) -> Result<CVal, String> {
    if t.data_location == Some(1) {
        return Err("tensor data is stored externally (external data is not supported)".into());
    }
    let mut dims = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        if d < 0 {
            return Err(format!("negative dimension {d}"));
        }
        dims.push(usize::try_from(d).map_err(|_| format!("dimension {d} too large"))?);
    }
    let n = numel_checked(&dims)?;
    let raw = t.raw_data.as_deref().filter(|r| !r.is_empty());
    let dt = t.data_type.unwrap_or(0);
    match dt {
        dtype::FLOAT => {
            let data = match raw {
                Some(r) => raw_chunks::<4>(r, n)?
                    .into_iter()
                    .map(f32::from_le_bytes)
                    .collect(),
                None => {
                    check_len(t.float_data.len(), n, "float_data")?;
                    t.float_data.clone()
                }
            };
            Ok(CVal::F(dims, data))
        }
        dtype::DOUBLE => {
            let data = match raw {
                Some(r) => raw_chunks::<8>(r, n)?
                    .into_iter()
                    .map(|b| f64::from_le_bytes(b) as f32)
                    .collect(),
                None => {
                    check_len(t.double_data.len(), n, "double_data")?;
                    t.double_data.iter().map(|&v| v as f32).collect()
                }
            };
            Ok(CVal::F(dims, data))
        }
        dtype::INT64 => {
            let data = match raw {
                Some(r) => raw_chunks::<8>(r, n)?
                    .into_iter()
                    .map(i64::from_le_bytes)
                    .collect(),
                None => {
                    check_len(t.int64_data.len(), n, "int64_data")?;
                    t.int64_data.clone()
                }
            };
            Ok(CVal::I(dims, data))
        }
        dtype::INT32 | dtype::INT8 | dtype::UINT8 | dtype::BOOL | 4 | 5 => {
            let data: Vec<i64> = match raw {
                Some(r) => match dt {
                    dtype::INT32 => raw_chunks::<4>(r, n)?
                        .into_iter()
                        .map(|b| i32::from_le_bytes(b) as i64)
                        .collect(),
                    dtype::INT8 => raw_chunks::<1>(r, n)?
                        .into_iter()
                        .map(|b| b[0] as i8 as i64)
                        .collect(),
                    4 => raw_chunks::<2>(r, n)?
                        .into_iter()
                        .map(|b| u16::from_le_bytes(b) as i64)
                        .collect(),
                    5 => raw_chunks::<2>(r, n)?
                        .into_iter()
                        .map(|b| i16::from_le_bytes(b) as i64)
                        .collect(),
                    _ => raw_chunks::<1>(r, n)?
                        .into_iter()
                        .map(|b| b[0] as i64)
                        .collect(),
                },
                None => {
                    check_len(t.int32_data.len(), n, "int32_data")?;
                    t.int32_data.iter().map(|&v| v as i64).collect()
                }
            };
            Ok(CVal::I(dims, data))
        }
        other => Err(format!("tensor data type {other} is not supported")),
    }
}

/// Index of the source element for output multi-index `out_idx` under numpy broadcasting.
fn bcast_offsets(out: &[usize], src: &[usize]) -> Vec<usize> {
    // Returns, for every output element, the flat index into `src`.
    let n: usize = out.iter().product();
    let rank = out.len();
    let pad = rank - src.len();
    let mut src_strides = vec![0usize; rank];
    let mut acc = 1usize;
    for k in (0..src.len()).rev() {
        src_strides[k + pad] = if src[k] == 1 { 0 } else { acc };
        acc *= src[k];
    }
    let mut idx = vec![0usize; rank];
    let mut res = Vec::with_capacity(n);
    for _ in 0..n {
        res.push(idx.iter().zip(&src_strides).map(|(i, s)| i * s).sum());
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

/// Expand `data` of shape `src` to shape `out` (which `src` must broadcast to).
pub fn broadcast_to<T: Copy>(data: &[T], src: &[usize], out: &[usize]) -> Vec<T> {
    // The common case (a residual Add of two equal shapes) needs no index table.
    let numel: usize = out.iter().product();
    if data.len() == numel && src.iter().product::<usize>() == numel {
        return data.to_vec();
    }
    bcast_offsets(out, src)
        .into_iter()
        .map(|i| data[i])
        .collect()
}

/// Elementwise binary op on two constants with broadcasting.
pub fn binary(a: &CVal, b: &CVal, op: &str) -> Result<CVal, String> {
    let out = shape::broadcast(a.shape(), b.shape())?;
    numel_checked(&out)?;
    match (a, b) {
        (CVal::I(sa, da), CVal::I(sb, db)) => {
            let x = broadcast_to(da, sa, &out);
            let y = broadcast_to(db, sb, &out);
            let r = x
                .iter()
                .zip(&y)
                .map(|(&p, &q)| match op {
                    "Add" => Ok(p.wrapping_add(q)),
                    "Sub" => Ok(p.wrapping_sub(q)),
                    "Mul" => Ok(p.wrapping_mul(q)),
                    _ => {
                        if q == 0 {
                            Err("integer division by zero".to_string())
                        } else {
                            Ok(p.wrapping_div(q))
                        }
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(CVal::I(out, r))
        }
        _ => {
            let x = broadcast_to(&a.to_f32(), a.shape(), &out);
            let y = broadcast_to(&b.to_f32(), b.shape(), &out);
            let r = x
                .iter()
                .zip(&y)
                .map(|(&p, &q)| match op {
                    "Add" => p + q,
                    "Sub" => p - q,
                    "Mul" => p * q,
                    _ => p / q,
                })
                .collect();
            Ok(CVal::F(out, r))
        }
    }
}

/// Permute the axes of a row-major array.
pub fn transpose<T: Copy>(data: &[T], dims: &[usize], perm: &[usize]) -> Vec<T> {
    let rank = dims.len();
    let out_dims: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
    let mut in_strides = vec![1usize; rank];
    for k in (0..rank.saturating_sub(1)).rev() {
        in_strides[k] = in_strides[k + 1] * dims[k + 1];
    }
    let strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let n = data.len();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; rank];
    for _ in 0..n {
        out.push(data[idx.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>()]);
        for k in (0..rank).rev() {
            idx[k] += 1;
            if idx[k] < out_dims[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

pub fn transpose_c(v: &CVal, perm: &[usize]) -> CVal {
    let dims = v.shape().to_vec();
    let out: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
    match v {
        CVal::F(_, d) => CVal::F(out, transpose(d, &dims, perm)),
        CVal::I(_, d) => CVal::I(out, transpose(d, &dims, perm)),
    }
}

/// Concatenate constants along `axis` (shapes already checked by the caller).
pub fn concat(vals: &[&CVal], axis: usize, out: Vec<usize>) -> CVal {
    let outer: usize = out[..axis].iter().product();
    let all_int = vals.iter().all(|v| matches!(v, CVal::I(..)));
    let chunk = |v: &CVal| -> usize { v.shape()[axis..].iter().product() };
    if all_int {
        let mut r = Vec::new();
        for o in 0..outer {
            for v in vals {
                let c = chunk(v);
                let d = v.to_i64();
                r.extend_from_slice(&d[o * c..(o + 1) * c]);
            }
        }
        CVal::I(out, r)
    } else {
        let mut r = Vec::new();
        for o in 0..outer {
            for v in vals {
                let c = chunk(v);
                let d = v.to_f32();
                r.extend_from_slice(&d[o * c..(o + 1) * c]);
            }
        }
        CVal::F(out, r)
    }
}

/// `Gather` along `axis` with (possibly negative) integer indices.
pub fn gather(data: &CVal, indices: &CVal, axis: usize) -> Result<CVal, String> {
    let ds = data.shape();
    let len = ds[axis] as i64;
    let idx: Vec<usize> = indices
        .to_i64()
        .into_iter()
        .map(|i| {
            let j = if i < 0 { i + len } else { i };
            if j < 0 || j >= len {
                Err(format!("index {i} out of range for axis of size {len}"))
            } else {
                Ok(j as usize)
            }
        })
        .collect::<Result<_, _>>()?;
    let outer: usize = ds[..axis].iter().product();
    let inner: usize = ds[axis + 1..].iter().product();
    let mut out_shape = ds[..axis].to_vec();
    out_shape.extend_from_slice(indices.shape());
    out_shape.extend_from_slice(&ds[axis + 1..]);
    numel_checked(&out_shape)?;
    let pick = |src_len: usize| -> Vec<usize> {
        let mut pos = Vec::new();
        for o in 0..outer {
            for &j in &idx {
                for k in 0..inner {
                    pos.push((o * ds[axis] + j) * inner + k);
                }
            }
        }
        debug_assert!(pos.iter().all(|&p| p < src_len));
        pos
    };
    Ok(match data {
        CVal::F(_, d) => CVal::F(out_shape, pick(d.len()).into_iter().map(|p| d[p]).collect()),
        CVal::I(_, d) => CVal::I(out_shape, pick(d.len()).into_iter().map(|p| d[p]).collect()),
    })
}

/// ONNX Range of scalar constants: `start, start + delta, ...` below `limit` (above it for a
/// negative delta), integer when all three are.
pub fn range(start: &CVal, limit: &CVal, delta: &CVal) -> Result<CVal, String> {
    if start.numel() != 1 || limit.numel() != 1 || delta.numel() != 1 {
        return Err("Range takes scalar start, limit and delta".into());
    }
    let (s, l, d) = (
        start.to_f32()[0] as f64,
        limit.to_f32()[0] as f64,
        delta.to_f32()[0] as f64,
    );
    if d == 0.0 || !(s.is_finite() && l.is_finite() && d.is_finite()) {
        return Err(format!("Range delta {d} with start {s} and limit {l}"));
    }
    let n = ((l - s) / d).ceil().max(0.0) as usize;
    numel_checked(&[n])?;
    Ok(match (start, limit, delta) {
        (CVal::I(_, a), CVal::I(..), CVal::I(_, c)) => {
            CVal::I(vec![n], (0..n as i64).map(|k| a[0] + k * c[0]).collect())
        }
        _ => CVal::F(vec![n], (0..n).map(|k| (s + k as f64 * d) as f32).collect()),
    })
}
