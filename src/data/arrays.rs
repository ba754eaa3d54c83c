//! Datasets from arrays a caller already holds (the Python API's numpy input): raw u8 pixels
//! that get the card's preprocessing exactly as a decoded file would, or FP32 arrays taken
//! as the model's preprocessed input.

use super::store::{Norm, Pixels, Store};
use super::{Dataset, ModelCard};
use crate::error::{Error, Result};

/// How the axes of a u8 image array are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `N x H x W`: grey
    Nhw,
    /// `N x H x W x C`
    Nhwc,
    /// `N x C x H x W`
    Nchw,
}

impl Layout {
    /// The layout of an array of rank 3 or 4: `N x H x W`; for rank 4, channels last when the
    /// last axis is 1 or 3 and the second is not, else channels first.
    pub fn guess(dims: &[usize]) -> Result<Self> {
        match dims {
            [_, _, _] => Ok(Layout::Nhw),
            [_, c1, _, c3] if matches!(c3, 1 | 3) && !matches!(c1, 1 | 3) => Ok(Layout::Nhwc),
            [_, c1, _, _] if matches!(c1, 1 | 3) => Ok(Layout::Nchw),
            [_, _, _, c3] if matches!(c3, 1 | 3) => Ok(Layout::Nhwc),
            _ => Err(bad(format!(
                "image array of shape {dims:?}: expected N x H x W, N x H x W x C or N x C x H x W (C = 1 or 3)"
            ))),
        }
    }
}

fn bad(reason: String) -> Error {
    Error::InvalidArg {
        arg: "data".into(),
        reason,
    }
}

fn input_shape(card: &ModelCard) -> Vec<usize> {
    let [h, w] = card.size;
    if card.nhwc {
        vec![1, h, w, card.channels]
    } else {
        vec![1, card.channels, h, w]
    }
}

fn check_labels(labels: &Option<Vec<u32>>, n: usize) -> Result<()> {
    match labels {
        Some(l) if l.len() != n => Err(bad(format!("{} labels for {n} images", l.len()))),
        _ => Ok(()),
    }
}

/// Raw 0..255 pixels (`dims`, laid out as `layout`): grey images must already have the
/// model's size (as IDX digits); RGB images are resized and cropped as the card says
/// (`images::preprocess_rgb`, bit-identical to the same pixels decoded from a file).
pub fn from_u8(
    name: &str,
    card: &ModelCard,
    dims: &[usize],
    layout: Layout,
    px: &[u8],
    labels: Option<Vec<u32>>,
) -> Result<Dataset> {
    let (n, c, h, w) = match (layout, dims) {
        (Layout::Nhw, [n, h, w]) => (*n, 1, *h, *w),
        (Layout::Nhwc, [n, h, w, c]) => (*n, *c, *h, *w),
        (Layout::Nchw, [n, c, h, w]) => (*n, *c, *h, *w),
        _ => {
            return Err(bad(format!(
                "shape {dims:?} does not match layout {layout:?}"
            )));
        }
    };
    if px.len() != n * c * h * w {
        return Err(bad(format!("{} pixels for shape {dims:?}", px.len())));
    }
    check_labels(&labels, n)?;
    let out = if card.channels == 1 {
        if c != 1 || [h, w] != card.size {
            return Err(bad(format!(
                "model '{}' takes {}x{} grey images, got {c} channels of {h}x{w}",
                card.name, card.size[0], card.size[1]
            )));
        }
        px.to_vec()
    } else {
        rgb(card, px, (n, c, h, w), layout)?
    };
    let per_image = out.len() / n.max(1);
    let store = Store {
        key: crate::hash::fnv1a64(&out),
        pixels: Pixels::Memory(out),
        per_image,
        n,
        norm: Norm::of(card),
    };
    Ok(Dataset::new(name, input_shape(card), labels, store))
}

/// Each image to an `RgbImage` (grey replicated), then the card's resize and crop.
fn rgb(
    card: &ModelCard,
    px: &[u8],
    (n, c, h, w): (usize, usize, usize, usize),
    layout: Layout,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let per = c * h * w;
    for i in 0..n {
        let im = &px[i * per..(i + 1) * per];
        let at = |y: usize, x: usize, ch: usize| -> u8 {
            let ch = ch.min(c - 1);
            match layout {
                Layout::Nchw => im[(ch * h + y) * w + x],
                _ => im[(y * w + x) * c + ch],
            }
        };
        let img = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let (x, y) = (x as usize, y as usize);
            image::Rgb([at(y, x, 0), at(y, x, 1), at(y, x, 2)])
        });
        let v =
            super::images::preprocess_rgb(img, card).map_err(|r| bad(format!("image {i}: {r}")))?;
        out.extend(v);
    }
    Ok(out)
}

/// FP32 images already in the model's input layout (`per_image` values each), used as they
/// are.
pub fn from_f32(
    name: &str,
    card: &ModelCard,
    data: Vec<f32>,
    labels: Option<Vec<u32>>,
) -> Result<Dataset> {
    let shape = input_shape(card);
    let per_image: usize = shape.iter().product();
    if per_image == 0 || data.len() % per_image != 0 {
        return Err(bad(format!(
            "{} values are not a whole number of {shape:?} inputs",
            data.len()
        )));
    }
    let n = data.len() / per_image;
    check_labels(&labels, n)?;
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let store = Store {
        key: crate::hash::fnv1a64(&bytes),
        pixels: Pixels::F32(data),
        per_image,
        n,
        norm: Norm::of(card),
    };
    Ok(Dataset::new(name, shape, labels, store))
}
