//! The training recipe (TOML): data preprocessing shared by every model, then one
//! `[[model]]` table per network. Unknown keys are errors.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Base seed; model k uses `seed + k` for its initialisation, shuffling and augmentation.
    pub seed: u64,
    /// Where the ONNX files go (relative to the repository root).
    pub out_dir: String,
    /// Input preprocessing written into every model card: `(pixel * pixel_scale - mean) / std`.
    pub pixel_scale: f32,
    pub mean: f32,
    pub std: f32,
    /// Random-crop padding in pixels (0: no crop) and horizontal flips (probability 1/2).
    #[serde(default)]
    pub crop_pad: usize,
    #[serde(default)]
    pub hflip: bool,
    #[serde(rename = "model")]
    pub models: Vec<ModelSpec>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// Basic residual blocks (two 3x3 conv + BN), 1x1 projection shortcuts when shapes change.
    Resnet,
    /// Inverted residuals: 1x1 expand, 3x3 depthwise, 1x1 linear projection, ReLU6.
    Mobilenetv2,
    /// Plain 3x3 conv + BN + ReLU stacks with 2x2 max pooling between stages.
    Vgg,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Resnet => "resnet",
            Arch::Mobilenetv2 => "mobilenetv2",
            Arch::Vgg => "vgg",
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Zoo name: the ONNX file is `<out_dir>/<name>.onnx`, the card `experiments/models/<name>.toml`.
    pub name: String,
    pub arch: Arch,
    /// Channels per stage (resolution halves between stages).
    pub widths: Vec<usize>,
    /// Blocks (or convs, for VGG) per stage.
    pub depth: Vec<usize>,
    /// Stride of the stem conv (ResNet and MobileNetV2; 2 halves the resolution up front, as
    /// their ImageNet versions do).
    #[serde(default = "one")]
    pub stem_stride: usize,
    /// Inverted-residual expansion factor (MobileNetV2 only).
    #[serde(default = "default_expand")]
    pub expand: usize,
    pub epochs: usize,
    pub batch: usize,
    /// Peak learning rate (AdamW), reached after `warmup_steps`, then cosine decay to 0.
    pub lr: f64,
    #[serde(default)]
    pub warmup_steps: usize,
    /// Decoupled weight decay (AdamW).
    pub weight_decay: f32,
    /// Label smoothing of the cross-entropy (0: none).
    #[serde(default)]
    pub label_smoothing: f32,
}

fn one() -> usize {
    1
}

fn default_expand() -> usize {
    4
}

impl Recipe {
    pub fn load(path: &Path) -> Result<Self> {
        let err = |reason: String| Error::Config {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let r: Recipe =
            toml::from_str(&text).map_err(|e| err(crate::error::toml_reason(&text, &e)))?;
        r.validate().map_err(err)?;
        Ok(r)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if !(self.pixel_scale > 0.0 && self.std > 0.0) {
            return Err("pixel_scale and std must be > 0".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for m in &self.models {
            if !seen.insert(m.name.as_str()) {
                return Err(format!("model '{}' appears twice", m.name));
            }
            if m.widths.is_empty() || m.widths.len() != m.depth.len() {
                return Err(format!(
                    "model '{}': widths and depth need one entry per stage",
                    m.name
                ));
            }
            if m.widths.len() > 3 {
                return Err(format!(
                    "model '{}': at most 3 stages for 28x28 inputs",
                    m.name
                ));
            }
            if m.widths.contains(&0)
                || m.depth.contains(&0)
                || m.batch == 0
                || m.expand == 0
                || !(1..=2).contains(&m.stem_stride)
            {
                return Err(format!(
                    "model '{}': widths, depth, batch and expand must be > 0, stem_stride 1 or 2",
                    m.name
                ));
            }
            if !(m.lr > 0.0) || !(0.0..1.0).contains(&m.label_smoothing) {
                return Err(format!(
                    "model '{}': lr must be > 0 and label_smoothing in [0, 1)",
                    m.name
                ));
            }
        }
        Ok(())
    }
}
