//! Model cards: a small TOML per model describing its file and input preprocessing.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// How the model file is stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelFormat {
    #[default]
    Onnx,
    /// Legacy PyTorch state dict of an EfficientNet-Lite (see `model::efficientnet`).
    EfficientnetLitePth,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    pub name: String,
    /// Model file, relative to the repository root (or absolute), or to the asset cache
    /// when `cached` is true. A card given with `--card` may leave it out (the model is the
    /// file named on the command line).
    #[serde(default)]
    pub file: PathBuf,
    #[serde(default)]
    pub format: ModelFormat,
    /// The file is fetched into the cache by scripts/fetch-assets.sh.
    #[serde(default)]
    pub cached: bool,
    #[serde(default)]
    pub source: String,
    /// Default dataset name for this model (empty: none, give `--data`).
    #[serde(default)]
    pub dataset: String,
    pub channels: usize,
    /// Network input size [height, width].
    pub size: [usize; 2],
    /// Multiplier applied to 0..255 pixel values before mean/std normalisation.
    pub pixel_scale: f32,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Photos: resize the shorter side to this many pixels (bilinear) ...
    #[serde(default)]
    pub resize_shorter: Option<usize>,
    /// Photos: or resize to exactly [height, width] (aspect not kept) ...
    #[serde(default)]
    pub resize: Option<[usize; 2]>,
    /// ... then crop the centre to `size`.
    #[serde(default)]
    pub center_crop: bool,
    /// Channel order BGR instead of RGB (mean/std are given in the model's order).
    #[serde(default)]
    pub bgr: bool,
    /// The model takes NHWC input instead of NCHW.
    #[serde(default)]
    pub nhwc: bool,
    /// FP32 top-1 on the card's dataset, as measured by a peer runtime (for checks).
    #[serde(default)]
    pub fp32_top1_reference: Option<f64>,
    /// The graph output holding class scores (top-1, agreement, KL). Default: the only
    /// output of a single-output model; a model with several outputs has none unless named
    /// here. Every output gets SQNR and largest error against FP32.
    #[serde(default)]
    pub logits_output: Option<String>,
}

impl ModelCard {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let card: ModelCard = toml::from_str(&text).map_err(|e| Error::Data {
            path: path.display().to_string(),
            reason: crate::error::toml_reason(&text, &e),
        })?;
        if card.mean.len() != card.channels
            || card.std.len() != card.channels
            || card.std.contains(&0.0)
        {
            return Err(Error::Data {
                path: path.display().to_string(),
                reason: format!("mean and std need {} non-zero entries", card.channels),
            });
        }
        Ok(card)
    }

    /// A card for an ONNX file without one: pixels 0..255 as they are.
    pub fn plain(file: &Path, input_shape: &[usize]) -> Self {
        let c = input_shape.get(1).copied().unwrap_or(1);
        ModelCard {
            name: file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("model")
                .to_string(),
            file: file.to_path_buf(),
            format: ModelFormat::Onnx,
            cached: false,
            source: "user file".into(),
            dataset: String::new(),
            channels: c,
            size: [
                input_shape.get(2).copied().unwrap_or(1),
                input_shape.get(3).copied().unwrap_or(1),
            ],
            pixel_scale: 1.0,
            mean: vec![0.0; c],
            std: vec![1.0; c],
            resize_shorter: None,
            resize: None,
            center_crop: false,
            bgr: false,
            nhwc: false,
            fp32_top1_reference: None,
            logits_output: None,
        }
    }

    /// Normalise one channel's raw 0..255 pixel value.
    #[inline]
    pub fn normalise(&self, channel: usize, pixel: f32) -> f32 {
        (pixel * self.pixel_scale - self.mean[channel]) / self.std[channel]
    }
}
