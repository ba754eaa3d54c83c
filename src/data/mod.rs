//! Datasets: labelled (or unlabelled) images, preprocessed into a model's input layout.

pub mod card;
pub mod idx;
pub mod images;

use std::path::{Path, PathBuf};

pub use card::ModelCard;

use crate::error::{Error, Result};

/// Images in a model's input layout (`[C, H, W]` each, FP32), with labels when known.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub name: String,
    /// Shape of one image, e.g. `[1, 1, 28, 28]` (batch 1).
    pub shape: Vec<usize>,
    pub images: Vec<f32>,
    pub labels: Option<Vec<u32>>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.images.len() / self.per_image().max(1)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn per_image(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn image(&self, i: usize) -> &[f32] {
        let p = self.per_image();
        &self.images[i * p..(i + 1) * p]
    }
    /// Images `a..b` (and their labels) as a dataset of their own, named `<name>[a..b]`.
    pub fn range(&self, a: usize, b: usize) -> Dataset {
        let p = self.per_image();
        let b = b.min(self.len());
        let a = a.min(b);
        Dataset {
            name: format!("{}[{a}..{b}]", self.name),
            shape: self.shape.clone(),
            images: self.images[a * p..b * p].to_vec(),
            labels: self.labels.as_ref().map(|l| l[a..b].to_vec()),
        }
    }
    /// Keep the first `n` images.
    pub fn truncate(&mut self, n: usize) {
        let p = self.per_image();
        self.images.truncate(n * p);
        if let Some(l) = &mut self.labels {
            l.truncate(n);
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
    load_limited(spec, card, skip_bad, None)
}

/// [`load`] keeping the first `limit` images; an image folder decodes only those.
pub fn load_limited(
    spec: &str,
    card: &ModelCard,
    skip_bad: bool,
    limit: Option<usize>,
) -> Result<Dataset> {
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
    let path = match NAMED.iter().find(|(n, _)| *n == spec) {
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
    };
    if path.is_dir() {
        return images::load_folder(&path, spec, card, skip_bad, limit);
    }
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
    let (shape, px, lb) = idx::read_idx_dataset(&path, &labels)?;
    if card.channels != 1 || card.size != [shape[2], shape[3]] {
        return Err(Error::Data {
            path: path.display().to_string(),
            reason: format!(
                "{}x{} grey images do not fit model '{}' ({} channels, {:?})",
                shape[2], shape[3], card.name, card.channels, card.size
            ),
        });
    }
    Ok(Dataset {
        name: spec.to_string(),
        shape: vec![1, 1, shape[2], shape[3]],
        images: px.iter().map(|&v| card.normalise(0, v)).collect(),
        labels: Some(lb),
    })
}
