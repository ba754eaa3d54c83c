//! The FP32 reference of one (graph, images): the logits of every image and the per-layer
//! FP32 outputs of a prefix of the images (for output SQNR). Computed chunk by chunk with
//! the logits streamed into the reference-cache file and read back image by image, so that
//! memory does not grow with the number of images; the per-layer outputs stay in memory
//! (bounded by `SQNR_BUDGET_BYTES`).
//!
//! File layout (little-endian): `MAGIC`, key, images, classes, SQNR images `k`, layers (u64
//! each), each layer's output length (u64); the logits (f32, image-major); the layer outputs
//! of the `k` images (f32, image-major, layer by layer).

use std::borrow::Cow;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::reference::{SQNR_BUDGET_BYTES, STREAM_CHUNK};
use crate::cpu::engine::{Engine, Mode};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Graph;

const MAGIC: &[u8; 16] = b"strumlab-fp32ref";

enum Logits {
    Memory(Vec<f32>),
    /// In the reference file, from byte `offset`.
    File {
        file: File,
        path: PathBuf,
        offset: u64,
    },
}

/// The FP32 logits of every image and the per-layer FP32 outputs of the first
/// `sqnr_images` images.
pub struct Fp32Reference {
    pub images: usize,
    /// values of the first graph output per image
    pub classes: usize,
    logits: Logits,
    /// images whose per-layer outputs are kept
    pub sqnr_images: usize,
    /// `[image][weight layer]` FP32 outputs
    layer_out: Vec<Vec<Vec<f32>>>,
}

fn header(key: u64, images: usize, classes: usize, k: usize, sizes: &[usize]) -> Vec<u8> {
    let mut b = MAGIC.to_vec();
    let words = [key, images as u64, classes as u64, k as u64];
    for w in words.into_iter().chain([sizes.len() as u64]) {
        b.extend(w.to_le_bytes());
    }
    for &s in sizes {
        b.extend((s as u64).to_le_bytes());
    }
    b
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_le(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

impl Fp32Reference {
    /// The logits of image `i` (read from the reference file when it holds them).
    pub fn logits(&self, i: usize) -> Result<Cow<'_, [f32]>> {
        let c = self.classes;
        match &self.logits {
            Logits::Memory(v) => Ok(Cow::Borrowed(&v[i * c..(i + 1) * c])),
            Logits::File { file, path, offset } => {
                let mut b = vec![0u8; 4 * c];
                file.read_exact_at(&mut b, offset + (4 * i * c) as u64)
                    .map_err(|source| Error::Io {
                        path: path.clone(),
                        source,
                    })?;
                Ok(Cow::Owned(from_le(&b)))
            }
        }
    }
    /// The FP32 outputs of every weight layer for image `i`, if `i` is in the SQNR prefix.
    pub fn layer_outputs(&self, i: usize) -> Option<&[Vec<f32>]> {
        self.layer_out.get(i).map(|v| &v[..])
    }

    /// Images whose per-layer outputs fit the budget (at least one).
    fn sqnr_prefix(graph: &Graph, data: &Dataset, sqnr_images: usize) -> usize {
        let per_image_bytes: usize = graph
            .layers()
            .iter()
            .map(|(n, _)| {
                4 * graph
                    .shape(&graph.nodes[*n].output)
                    .iter()
                    .product::<usize>()
            })
            .sum();
        sqnr_images
            .min(data.len())
            .min((SQNR_BUDGET_BYTES / per_image_bytes.max(1)).max(1))
    }

    /// One FP32 pass over `data` (fast kernels, rayon over the images of a chunk). With
    /// `out` (a new file and its path), the file is written as it goes and keeps the logits;
    /// else they stay in memory.
    pub(super) fn compute(
        graph: &Graph,
        data: &Dataset,
        sqnr_images: usize,
        quiet: bool,
        out: Option<(File, &Path, u64)>,
    ) -> Result<Self> {
        let fp = Engine::new(graph, Mode::Fp32, None, None)?;
        let k = Self::sqnr_prefix(graph, data, sqnr_images);
        let progress = crate::progress::Progress::new("fp32 reference", data.len(), quiet);
        let per = data.per_image();
        let mut mem = Vec::new();
        let mut layer_out = Vec::with_capacity(k);
        let mut classes = 0;
        let mut head = Vec::new();
        let (file, path, key) = match out {
            Some((f, p, k)) => (Some(f), p.display().to_string(), k),
            None => (None, String::new(), 0),
        };
        let werr = |e: std::io::Error| Error::Output {
            path: path.clone(),
            reason: format!("FP32 reference cache ({e}); free space or set STRUMLAB_CACHE"),
        };
        let mut sink = match &file {
            Some(f) => Some(std::io::BufWriter::new(f.try_clone().map_err(werr)?)),
            None => None,
        };
        for a in (0..data.len()).step_by(STREAM_CHUNK) {
            let b = (a + STREAM_CHUNK).min(data.len());
            let x = data.images(a, b)?;
            let runs: Vec<(Vec<f32>, Vec<Vec<f32>>)> = (a..b)
                .into_par_iter()
                .map(|i| {
                    progress.check()?;
                    let xi = &x[(i - a) * per..(i - a + 1) * per];
                    let (o, obs) = fp.run(xi, i < k)?;
                    if !o.iter().flatten().all(|v| v.is_finite()) {
                        return Err(not_finite(&fp, xi, i, data));
                    }
                    progress.inc();
                    // every graph output of the image, back to back (`outputs::row_layout`)
                    Ok((o.concat(), obs.into_iter().map(|o| o.output).collect()))
                })
                .collect::<Result<_>>()?;
            for (l, layers) in runs {
                classes = l.len();
                if let Some(w) = &mut sink {
                    // the header needs the classes and the layer sizes: known after image 0
                    if head.is_empty() {
                        let sizes: Vec<usize> = layers.iter().map(|v| v.len()).collect();
                        head = header(key, data.len(), classes, k, &sizes);
                        w.write_all(&head).map_err(werr)?;
                    }
                    w.write_all(&f32_bytes(&l)).map_err(werr)?;
                } else {
                    mem.extend(l);
                }
                if !layers.is_empty() {
                    layer_out.push(layers);
                }
            }
        }
        if let Some(mut w) = sink {
            if head.is_empty() {
                head = header(key, 0, 0, 0, &[]);
                w.write_all(&head).map_err(werr)?;
            }
            for v in layer_out.iter().flatten() {
                w.write_all(&f32_bytes(v)).map_err(werr)?;
            }
            w.flush().map_err(werr)?;
        }
        let logits = match file {
            Some(file) => Logits::File {
                offset: head.len() as u64,
                file,
                path: PathBuf::from(path),
            },
            None => Logits::Memory(mem),
        };
        Ok(Fp32Reference {
            images: data.len(),
            classes,
            logits,
            sqnr_images: k,
            layer_out,
        })
    }

    /// Open a file written by `compute`; `None` for another key or a
    /// malformed file.
    pub(super) fn open(path: &Path, key: u64) -> Option<Self> {
        let file = File::open(path).ok()?;
        let len = file.metadata().ok()?.len();
        let mut head = [0u8; 16 + 5 * 8];
        file.read_exact_at(&mut head, 0).ok()?;
        (&head[..16] == MAGIC).then_some(())?;
        let word = |b: &[u8], i: usize| -> Option<usize> {
            usize::try_from(u64::from_le_bytes(
                b.get(8 * i..8 * i + 8)?.try_into().ok()?,
            ))
            .ok()
        };
        let w = &head[16..];
        let (file_key, images, classes, k, layers) = (
            word(w, 0)?,
            word(w, 1)?,
            word(w, 2)?,
            word(w, 3)?,
            word(w, 4)?,
        );
        (file_key as u64 == key && k <= images && layers < 1 << 20).then_some(())?;
        let mut sb = vec![0u8; 8 * layers];
        file.read_exact_at(&mut sb, head.len() as u64).ok()?;
        let sizes: Vec<usize> = (0..layers).map(|i| word(&sb, i)).collect::<Option<_>>()?;
        let offset = (head.len() + sb.len()) as u64;
        let per_k = sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s))?;
        let nlog = images.checked_mul(classes)?;
        let total = offset.checked_add(4 * (nlog.checked_add(k.checked_mul(per_k)?)?) as u64)?;
        (len == total).then_some(())?;
        // image by image: no second copy of the (up to SQNR_BUDGET_BYTES) layer outputs
        let mut lb = vec![0u8; 4 * per_k];
        let mut layer_out = Vec::with_capacity(k);
        for j in 0..k {
            let at = offset + 4 * (nlog + j * per_k) as u64;
            file.read_exact_at(&mut lb, at).ok()?;
            let mut pos = 0;
            let image: Vec<Vec<f32>> = sizes
                .iter()
                .map(|&s| {
                    pos += 4 * s;
                    from_le(&lb[pos - 4 * s..pos])
                })
                .collect();
            layer_out.push(image);
        }
        Some(Fp32Reference {
            images,
            classes,
            logits: Logits::File {
                file,
                path: path.to_path_buf(),
                offset,
            },
            sqnr_images: k,
            layer_out,
        })
    }
}

/// The error for an image whose FP32 outputs are NaN or infinite: accuracy, agreement and
/// SQNR against such a reference would mean nothing. Names the first value that overflows.
fn not_finite(fp: &Engine, x: &[f32], i: usize, data: &Dataset) -> Error {
    let mut first: Option<String> = None;
    let _ = fp.run_values(x, &mut |name, v| {
        if first.is_none() && !v.iter().all(|x| x.is_finite()) {
            first = Some(name.to_string());
        }
    });
    Error::InvalidModel(format!(
        "the FP32 outputs of image {i} of '{}' are NaN or infinite (first at '{}'): the model \
         overflows in FP32, so there is nothing to compare against",
        data.name,
        first.unwrap_or_else(|| "the output".into())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_file_round_trips_and_rejects_other_keys() {
        let dir = std::env::temp_dir().join(format!("strumlab-fp32ref-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (logits, layer_out) = (
            vec![1.0, -2.0, 0.5, 3.0, f32::MIN, 7.25],
            vec![
                vec![vec![1.0, 2.0, 3.0], vec![4.0]],
                vec![vec![5.0, 6.0, 7.0], vec![8.0]],
            ],
        );
        let mut b = header(42, 3, 2, 2, &[3, 1]);
        b.extend(f32_bytes(&logits));
        for v in layer_out.iter().flatten() {
            b.extend(f32_bytes(v));
        }
        let p = dir.join("r.bin");
        std::fs::write(&p, &b).unwrap();
        let back = Fp32Reference::open(&p, 42).expect("parses");
        assert_eq!(back.layer_out, layer_out);
        assert_eq!(&*back.logits(2).unwrap(), &[f32::MIN, 7.25]);
        assert_eq!(&*back.logits(0).unwrap(), &[1.0, -2.0]);
        assert!(Fp32Reference::open(&p, 43).is_none());
        std::fs::write(&p, &b[..b.len() - 1]).unwrap();
        assert!(Fp32Reference::open(&p, 42).is_none());
        std::fs::write(&p, &b[..20]).unwrap();
        assert!(Fp32Reference::open(&p, 42).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
