//! Where a dataset's pixels live: raw 0..255 values in the model's input layout, in memory
//! (IDX digits) or in a file (the preprocessed-image cache, [`super::pcache`]), normalised to
//! FP32 only for the images a batch asks for. A file is read with positioned reads, not
//! mapped, so its pages never count against the process's resident set: peak memory does
//! not grow with the number of images.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::ModelCard;
use crate::error::{Error, Result};

/// The per-channel normalisation of a card, applied when pixels are read.
#[derive(Clone, Debug, PartialEq)]
pub struct Norm {
    pub pixel_scale: f32,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Channels last (`[H, W, C]`) instead of first.
    pub nhwc: bool,
    /// Pixels per channel plane (`H * W`).
    pub plane: usize,
}

impl Norm {
    pub fn of(card: &ModelCard) -> Self {
        Norm {
            pixel_scale: card.pixel_scale,
            mean: card.mean.clone(),
            std: card.std.clone(),
            nhwc: card.nhwc,
            plane: card.size[0] * card.size[1],
        }
    }
    /// The channel of element `e` of one image.
    #[inline]
    fn channel(&self, e: usize) -> usize {
        if self.nhwc {
            e % self.mean.len()
        } else {
            e / self.plane
        }
    }
    /// Normalise one image's raw pixels into `out` (the same arithmetic as
    /// [`ModelCard::normalise`], so values are bit-identical to a direct decode).
    pub fn apply(&self, px: &[u8], out: &mut [f32]) {
        for (e, (&p, o)) in px.iter().zip(out).enumerate() {
            let c = self.channel(e);
            *o = (p as f32 * self.pixel_scale - self.mean[c]) / self.std[c];
        }
    }
    /// Words for a content key.
    pub fn key_words(&self) -> Vec<u64> {
        let mut w = vec![
            self.pixel_scale.to_bits() as u64,
            self.nhwc as u64,
            self.plane as u64,
        ];
        w.extend(
            self.mean
                .iter()
                .chain(&self.std)
                .map(|v| v.to_bits() as u64),
        );
        w
    }
}

/// Raw pixels of `n` images of `per_image` bytes each (or FP32 input values).
#[derive(Debug)]
pub enum Pixels {
    Memory(Vec<u8>),
    /// Already the model's preprocessed input (the Python API's FP32 arrays): read as is.
    F32(Vec<f32>),
    /// A cache file: pixels start at byte `offset`.
    File {
        file: File,
        path: PathBuf,
        offset: u64,
    },
}

#[derive(Debug)]
pub struct Store {
    pub pixels: Pixels,
    pub per_image: usize,
    pub n: usize,
    pub norm: Norm,
    /// A hash of the pixels (with how they were made), for cache keys downstream.
    pub key: u64,
}

impl Store {
    /// Raw pixels of images `a..b` into `buf` (u8 stores only).
    fn read_raw(&self, a: usize, b: usize, buf: &mut Vec<u8>) -> Result<()> {
        let (lo, hi) = (a * self.per_image, b * self.per_image);
        match &self.pixels {
            Pixels::Memory(v) => {
                buf.clear();
                buf.extend_from_slice(&v[lo..hi]);
            }
            Pixels::F32(_) => unreachable!("FP32 inputs are read by `read`"),
            Pixels::File { file, path, offset } => {
                buf.resize(hi - lo, 0);
                file.read_exact_at(buf, offset + lo as u64)
                    .map_err(|source| Error::Io {
                        path: path.clone(),
                        source,
                    })?;
            }
        }
        Ok(())
    }

    /// Images `a..b`, normalised, back to back.
    pub fn read(&self, a: usize, b: usize) -> Result<Vec<f32>> {
        if let Pixels::F32(v) = &self.pixels {
            return Ok(v[a * self.per_image..b * self.per_image].to_vec());
        }
        let mut raw = Vec::new();
        self.read_raw(a, b, &mut raw)?;
        let mut out = vec![0f32; raw.len()];
        for (px, o) in raw
            .chunks_exact(self.per_image)
            .zip(out.chunks_exact_mut(self.per_image))
        {
            self.norm.apply(px, o);
        }
        Ok(out)
    }
}
