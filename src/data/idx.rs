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

/// Read an IDX file of `u8` elements (`.gz` is decompressed).
pub fn read_idx_u8(path: &Path) -> Result<IdxU8> {
    let err = |reason: String| Error::Data {
        path: path.display().to_string(),
        reason,
    };
    let raw = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| err(format!("corrupt gzip stream ({e})")))?;
        out
    } else {
        raw
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(err("not an IDX file (bad magic)".into()));
    }
    if bytes[2] != 0x08 {
        return Err(err(format!(
            "IDX element type 0x{:02x} is not unsigned byte",
            bytes[2]
        )));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if rank == 0 || bytes.len() < header {
        return Err(err("truncated IDX header".into()));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|k| {
            u32::from_be_bytes(bytes[4 + 4 * k..8 + 4 * k].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| err("IDX dims overflow".into()))?;
    if bytes.len() != header + n {
        return Err(err(format!(
            "IDX payload has {} bytes, {} expected from dims {dims:?}",
            bytes.len() - header,
            n
        )));
    }
    Ok(IdxU8 {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// An image/label pair of IDX files as `[N, 1, H, W]` pixel values 0..255 and labels.
pub fn read_idx_dataset(images: &Path, labels: &Path) -> Result<(Vec<usize>, Vec<f32>, Vec<u32>)> {
    let im = read_idx_u8(images)?;
    let lb = read_idx_u8(labels)?;
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
    Ok((
        shape,
        im.data.iter().map(|&v| v as f32).collect(),
        lb.data.iter().map(|&v| v as u32).collect(),
    ))
}
