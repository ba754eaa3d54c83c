//! IDX files (MNIST, Fashion-MNIST), raw or gzip-compressed.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// An IDX array of unsigned bytes with its dimensions.
#[derive(Clone, Debug)]
pub struct IdxU8 {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Largest decompressed IDX file (1 GiB; the 60k Fashion-MNIST training images are 47 MB).
pub const MAX_IDX_BYTES: u64 = 1 << 30;

/// Read an IDX file of `u8` elements (`.gz` is decompressed). The header is read first and
/// the payload read up to the size its dims declare (at most [`MAX_IDX_BYTES`]), so a small
/// gzip bomb cannot take gigabytes.
pub fn read_idx_u8(path: &Path) -> Result<IdxU8> {
    read_idx_u8_first(path, None)
}

/// [`read_idx_u8`] keeping only the first `limit` items (the first dimension): the rest of
/// the payload is neither decompressed nor held, so `--limit 5` reads five images of any file.
pub fn read_idx_u8_first(path: &Path, limit: Option<usize>) -> Result<IdxU8> {
    let err = |reason: String| Error::Data {
        path: path.display().to_string(),
        reason,
    };
    let raw = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut stream: Box<dyn Read> = if raw.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(raw.as_slice()))
    } else {
        Box::new(raw.as_slice())
    };
    let gz = |e: std::io::Error| err(format!("corrupt gzip stream ({e})"));
    let mut head = [0u8; 4];
    let got = read_up_to(&mut stream, &mut head).map_err(gz)?;
    if got < 4 || head[0] != 0 || head[1] != 0 {
        return Err(err("not an IDX file (bad magic)".into()));
    }
    if head[2] != 0x08 {
        return Err(err(format!(
            "IDX element type 0x{:02x} is not unsigned byte",
            head[2]
        )));
    }
    let rank = head[3] as usize;
    let mut dims_raw = vec![0u8; 4 * rank];
    if rank == 0 || read_up_to(&mut stream, &mut dims_raw).map_err(gz)? < 4 * rank {
        return Err(err("truncated IDX header".into()));
    }
    let dims: Vec<usize> = dims_raw
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n as u64 <= MAX_IDX_BYTES)
        .ok_or_else(|| {
            err(format!(
                "dims {dims:?} declare more than {MAX_IDX_BYTES} bytes, larger than any IDX dataset we read"
            ))
        })?;
    let mut dims = dims;
    let items = limit.map_or(dims[0], |l| l.min(dims[0]));
    let partial = items < dims[0];
    let n = if partial { n / dims[0] * items } else { n };
    dims[0] = items;
    let mut data = Vec::with_capacity(n);
    (&mut stream)
        .take(n as u64 + (!partial) as u64)
        .read_to_end(&mut data)
        .map_err(gz)?;
    if data.len() != n {
        return Err(err(format!(
            "IDX payload has {}{} bytes, {n} expected from dims {dims:?}",
            if data.len() > n { "more than " } else { "" },
            data.len().min(n + 1) - (data.len() > n) as usize
        )));
    }
    Ok(IdxU8 { dims, data })
}

/// Fill `buf` as far as the stream goes; the bytes read.
fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..])? {
            0 => break,
            k => got += k,
        }
    }
    Ok(got)
}

/// An image/label pair of IDX files as `[N, 1, H, W]` pixel values 0..255 and labels.
/// Only the first `limit` images and labels are read.
pub fn read_idx_dataset(
    images: &Path,
    labels: &Path,
    limit: Option<usize>,
) -> Result<(Vec<usize>, Vec<u8>, Vec<u32>)> {
    let im = read_idx_u8_first(images, limit)?;
    let lb = read_idx_u8_first(labels, limit)?;
    if im.dims.len() != 3 || lb.dims.len() != 1 || im.dims[0] != lb.dims[0] {
        return Err(Error::Data {
            path: images.display().to_string(),
            reason: format!(
                "images {:?} and labels {:?} do not pair up",
                im.dims, lb.dims
            ),
        });
    }
    let shape = vec![im.dims[0], 1, im.dims[1], im.dims[2]];
    Ok((shape, im.data, lb.data.iter().map(|&v| v as u32).collect()))
}
