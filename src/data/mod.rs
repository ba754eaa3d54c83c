//! Datasets: labelled (or unlabelled) images, preprocessed into a model's input layout.

pub mod arrays;
pub mod card;
pub mod idx;
pub mod images;
pub mod pcache;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use card::ModelCard;
pub use pcache::LoadOpts;
use store::{Norm, Pixels, Store};

use crate::error::{Error, Result};

/// Images in a model's input layout, with labels when known. The pixels stay raw (u8) in
/// memory or in the preprocessed-image cache file and are normalised to FP32 only for the
/// images asked for ([`Dataset::images`]), so a dataset's size does not set the memory a
/// run needs. Cloning and [`Dataset::range`] share the pixels.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub name: String,
    /// Shape of one image, e.g. `[1, 1, 28, 28]` (batch 1).
    pub shape: Vec<usize>,
    pub labels: Option<Vec<u32>>,
    store: Arc<Store>,
    /// This view's images are `first..first + n` of the store.
    first: usize,
    n: usize,
}

impl Dataset {
    pub fn new(name: &str, shape: Vec<usize>, labels: Option<Vec<u32>>, store: Store) -> Self {
        let n = store.n;
        Dataset {
            name: name.to_string(),
            shape,
            labels,
            store: Arc::new(store),
            first: 0,
            n,
        }
    }
    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    pub fn per_image(&self) -> usize {
        self.shape.iter().product()
    }
    /// Images `a..b`, normalised, back to back (`(b - a) * per_image()` values).
    pub fn images(&self, a: usize, b: usize) -> Result<Vec<f32>> {
        assert!(a <= b && b <= self.n, "images {a}..{b} of {}", self.n);
        self.store.read(self.first + a, self.first + b)
    }
    /// Image `i`, normalised.
    pub fn image(&self, i: usize) -> Result<Vec<f32>> {
        self.images(i, i + 1)
    }
    /// Every image, normalised (for small sets: calibration, export).
    pub fn all(&self) -> Result<Vec<f32>> {
        self.images(0, self.n)
    }
    /// A hash of this view's pixels, how they were made and normalised (cache keys).
    pub fn content_key(&self) -> u64 {
        let mut w: Vec<u64> = vec![self.store.key, self.first as u64, self.n as u64];
        w.extend(self.shape.iter().map(|&d| d as u64));
        w.extend(self.store.norm.key_words());
        let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        crate::hash::fnv1a64(&bytes)
    }
    /// Where the pixels are read from: `memory` or the cache file's path.
    pub fn source(&self) -> String {
        match &self.store.pixels {
            Pixels::Memory(_) | Pixels::F32(_) => "memory".into(),
            Pixels::File { path, .. } => path.display().to_string(),
        }
    }
    /// Images `a..b` (and their labels) as a dataset of their own, named `<name>[a..b]`.
    pub fn range(&self, a: usize, b: usize) -> Dataset {
        let b = b.min(self.n);
        let a = a.min(b);
        Dataset {
            name: format!("{}[{a}..{b}]", self.name),
            shape: self.shape.clone(),
            labels: self.labels.as_ref().map(|l| l[a..b].to_vec()),
            store: self.store.clone(),
            first: self.first + a,
            n: b - a,
        }
    }
    /// Keep the first `n` images.
    pub fn truncate(&mut self, n: usize) {
        self.n = self.n.min(n);
        if let Some(l) = &mut self.labels {
            l.truncate(n);
        }
    }
}

/// Remove the oldest files of `dir` (by modification time) until it holds at most `cap`
/// bytes, never `keep` (the file just written) nor hidden files (builds in progress).
/// Errors are ignored: it is a cache.
pub(crate) fn evict(dir: &Path, keep: &Path, cap: u64) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            let name = e.file_name();
            let ours = name.to_string_lossy();
            if !m.is_file() || ours.starts_with('.') {
                return None;
            }
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort();
    for (_, len, p) in files {
        if total <= cap {
            break;
        }
        if p != keep && std::fs::remove_file(&p).is_ok() {
            total -= len;
        }
    }
}

/// The repository root: the current directory if it holds `experiments/`, else the source
/// tree this binary was built from.
pub fn repo_root() -> PathBuf {
    if let Ok(r) = std::env::var("STRUMLAB_ROOT") {
        return PathBuf::from(r);
    }
    if Path::new("experiments").is_dir() {
        return PathBuf::from(".");
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A path given relative to the repository (the default hardware files, say): as given
/// when it exists from the current folder, else under [`repo_root`].
pub fn repo_path(p: &Path) -> PathBuf {
    if p.is_absolute() || p.exists() {
        p.to_path_buf()
    } else {
        repo_root().join(p)
    }
}

/// The asset cache filled by scripts/fetch-assets.sh: `$STRUMLAB_CACHE`, else
/// `$XDG_CACHE_HOME/strumlab`, else `~/.cache/strumlab`.
pub fn cache_dir() -> PathBuf {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(c) = var("STRUMLAB_CACHE") {
        return PathBuf::from(c);
    }
    if let Some(x) = var("XDG_CACHE_HOME") {
        return PathBuf::from(x).join("strumlab");
    }
    PathBuf::from(var("HOME").unwrap_or_else(|| ".".into())).join(".cache/strumlab")
}

/// Named datasets: vendored in the repository, or fetched into the cache (`cache:`).
pub const NAMED: &[(&str, &str)] = &[
    (
        "mnist-test",
        "experiments/data/mnist/t10k-images-idx3-ubyte.gz",
    ),
    (
        "fashion-test",
        "experiments/data/fashion-mnist/t10k-images-idx3-ubyte.gz",
    ),
    ("imagenet-samples", "cache:imagenet-samples"),
    ("photos", "cache:photos"),
];

/// The label set of each named dataset (ImageNet photos and samples share theirs).
const LABEL_SETS: &[(&str, &str)] = &[
    ("mnist-test", "MNIST digits"),
    ("fashion-test", "Fashion-MNIST classes"),
    ("imagenet-samples", "ImageNet classes"),
    ("photos", "ImageNet classes"),
];

/// A warning when `spec` is a named dataset whose labels are not the ones the model's card
/// was made for (e.g. `--data mnist-test` on a Fashion-MNIST model: it runs, at chance).
pub fn label_mismatch(spec: &str, card: &ModelCard) -> Option<String> {
    let set = |n: &str| LABEL_SETS.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    let (given, made) = (set(spec)?, set(&card.dataset)?);
    (given != made).then(|| {
        format!(
            "warning: dataset '{spec}' has {given}, but model '{}' was made for '{}' ({made}); \
             its accuracy will be meaningless",
            card.name, card.dataset
        )
    })
}

/// Load a dataset by name (see [`NAMED`]) or path: an IDX image file whose labels file
/// sits beside it as `*labels-idx1*`, or a folder of photos ([`images`]).
pub fn load(spec: &str, card: &ModelCard, skip_bad: bool) -> Result<Dataset> {
    load_with(
        spec,
        card,
        &LoadOpts {
            skip_bad,
            ..Default::default()
        },
    )
}

/// [`load`] keeping the first `limit` images; an image folder decodes only those.
pub fn load_limited(
    spec: &str,
    card: &ModelCard,
    skip_bad: bool,
    limit: Option<usize>,
) -> Result<Dataset> {
    load_with(
        spec,
        card,
        &LoadOpts {
            skip_bad,
            limit,
            ..Default::default()
        },
    )
}

/// [`load`] with every option.
pub fn load_with(spec: &str, card: &ModelCard, o: &LoadOpts) -> Result<Dataset> {
    if spec.is_empty() {
        return Err(Error::InvalidArg {
            arg: "data".into(),
            reason: format!(
                "model '{}' has no card naming its dataset: give --data ({}, an IDX file or an image folder); \
                 without a card its pixels go in as 0..255, unnormalised (a card in {} sets the preprocessing)",
                card.name,
                NAMED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
                crate::zoo::CARDS_DIR
            ),
        });
    }
    let o = &LoadOpts {
        limit: o.limit.filter(|&n| n > 0),
        ..o.clone()
    };
    let path = resolve(spec)?;
    if path.is_dir() {
        return images::load_folder(&path, spec, card, o);
    }
    load_idx(&path, spec, card, o.limit)
}

/// The path of a named dataset, or `spec` itself.
fn resolve(spec: &str) -> Result<PathBuf> {
    Ok(match NAMED.iter().find(|(n, _)| *n == spec) {
        Some((_, p)) => match p.strip_prefix("cache:") {
            Some(rel) => {
                let p = cache_dir().join(rel);
                if !p.exists() {
                    return Err(Error::Data {
                        path: p.display().to_string(),
                        reason: format!(
                            "dataset '{spec}' is not fetched yet: run scripts/fetch-assets.sh"
                        ),
                    });
                }
                p
            }
            None => repo_root().join(p),
        },
        None => PathBuf::from(spec),
    })
}

/// An IDX image file and the labels file beside it (the first `limit` images), pixels kept
/// raw in memory.
fn load_idx(path: &Path, spec: &str, card: &ModelCard, limit: Option<usize>) -> Result<Dataset> {
    let fname = path
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if !fname.contains("idx3") {
        return Err(Error::Data {
            path: path.display().to_string(),
            reason: format!(
                "unknown dataset (named datasets: {}; or an IDX image file)",
                NAMED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
        });
    }
    let labels = path.with_file_name(fname.replace("images-idx3", "labels-idx1"));
    let (shape, px, lb) = idx::read_idx_dataset(path, &labels, limit)?;
    if card.channels != 1 || card.size != [shape[2], shape[3]] {
        return Err(Error::Data {
            path: path.display().to_string(),
            reason: format!(
                "{}x{} grey images do not fit model '{}' ({} channels, {:?})",
                shape[2], shape[3], card.name, card.channels, card.size
            ),
        });
    }
    let store = Store {
        key: crate::hash::fnv1a64(&px),
        pixels: Pixels::Memory(px),
        per_image: shape[2] * shape[3],
        n: shape[0],
        norm: Norm::of(card),
    };
    Ok(Dataset::new(
        spec,
        vec![1, 1, shape[2], shape[3]],
        Some(lb),
        store,
    ))
}
