//! Static shape arithmetic shared by the loader and the executors. All functions return
//! a plain reason string on failure; the loader wraps it with the node's name.

/// Numpy-style broadcast of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for k in 0..rank {
        let da = if k + a.len() >= rank {
            a[k + a.len() - rank]
        } else {
            1
        };
        let db = if k + b.len() >= rank {
            b[k + b.len() - rank]
        } else {
            1
        };
        out[k] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        };
    }
    Ok(out)
}

/// Normalise a possibly negative axis against `rank` (`allow_end` admits `axis == rank`).
pub fn axis(a: i64, rank: usize, allow_end: bool) -> Result<usize, String> {
    let r = rank as i64;
    let hi = if allow_end { r } else { r - 1 };
    let v = if a < 0 { a + r } else { a };
    if v < 0 || v > hi {
        return Err(format!("axis {a} out of range for rank {rank}"));
    }
    Ok(v as usize)
}

/// Output length of one spatial axis of a convolution or pooling window.
pub fn window_out(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad_begin: usize,
    pad_end: usize,
) -> Result<usize, String> {
    if stride == 0 || dilation == 0 || kernel == 0 {
        return Err("kernel, stride and dilation must be positive".into());
    }
    let span = dilation
        .checked_mul(kernel - 1)
        .and_then(|v| v.checked_add(1))
        .ok_or("kernel span overflows")?;
    let padded = input
        .checked_add(pad_begin)
        .and_then(|v| v.checked_add(pad_end))
        .ok_or("padding overflows")?;
    if padded < span {
        return Err(format!(
            "window of span {span} does not fit an input of {input} (+{pad_begin}+{pad_end} padding)"
        ));
    }
    Ok((padded - span) / stride + 1)
}

/// Resolve `auto_pad` SAME_UPPER / SAME_LOWER into explicit (begin, end) padding.
pub fn same_pads(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    upper: bool,
) -> (usize, usize) {
    let out = input.div_ceil(stride.max(1));
    let span = dilation * (kernel.max(1) - 1) + 1;
    let need = ((out.max(1) - 1) * stride + span).saturating_sub(input);
    let small = need / 2;
    let big = need - small;
    if upper { (small, big) } else { (big, small) }
}

/// Resolve a `Reshape` target (with 0 = copy and -1 = infer) against an input shape.
pub fn reshape(input: &[usize], spec: &[i64], allowzero: bool) -> Result<Vec<usize>, String> {
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (k, &s) in spec.iter().enumerate() {
        match s {
            -1 => {
                if infer.replace(k).is_some() {
                    return Err("more than one -1 in reshape target".into());
                }
                out.push(1);
            }
            0 if !allowzero => {
                let d = *input.get(k).ok_or_else(|| {
                    format!("reshape target {spec:?}: 0 at axis {k} has no input axis to copy")
                })?;
                out.push(d);
            }
            s if s < 0 => return Err(format!("invalid reshape target {spec:?}")),
            s => out.push(usize::try_from(s).map_err(|_| "reshape dimension too large")?),
        }
    }
    let known = out
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("reshape target overflows")?;
    if let Some(k) = infer {
        if known == 0 || total % known != 0 {
            return Err(format!(
                "cannot reshape {input:?} ({total} elements) to {spec:?}"
            ));
        }
        out[k] = total / known;
    } else if known != total {
        return Err(format!(
            "cannot reshape {input:?} ({total} elements) to {spec:?}"
        ));
    }
    Ok(out)
}
