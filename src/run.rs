//! One run policy: what an evaluation runs and where, with every default written once.
//! `eval`, `bench`, `sweep`, `search`, `reproduce` (and any other front end) build a
//! [`RunConfig`]; the CLI's flag defaults and the sweep spec's defaults are these.

use crate::data::LoadOpts;
use crate::error::{Error, Result};
use crate::exec::{Device, Mode};
use crate::quant::QuantConfig;
use crate::quant::config::Calib;

/// Default images calibrating the activation scales (the first N of the dataset).
pub const CALIB_IMAGES: usize = 64;
/// Default activation clipping.
pub const ACT_CALIB: Calib = Calib::Max;
/// Default percentile of `--act-calib percentile`.
pub const ACT_PERCENTILE: f32 = 99.99;
/// Default images behind the per-layer statistics of a GPU run (the CPU computes them).
pub const GPU_STATS_IMAGES: usize = 256;
/// Default batch of the GPU engine.
pub const GPU_BATCH: usize = 64;

/// Per-tensor activation calibration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActCalib {
    /// the first N images of the dataset (of the search part in a search)
    pub images: usize,
    pub method: Calib,
    /// for `Calib::Percentile`
    pub percentile: f32,
}

impl Default for ActCalib {
    fn default() -> Self {
        ActCalib {
            images: CALIB_IMAGES,
            method: ACT_CALIB,
            percentile: ACT_PERCENTILE,
        }
    }
}

impl ActCalib {
    /// The percentile must lie in (0, 100].
    pub fn checked(self) -> Result<Self> {
        if !(self.percentile > 0.0 && self.percentile <= 100.0) {
            return Err(Error::InvalidArg {
                arg: "act-percentile".into(),
                reason: format!("{} is outside (0, 100]", self.percentile),
            });
        }
        Ok(self)
    }
}

/// What an evaluation runs and where.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub quant: QuantConfig,
    pub mode: Mode,
    pub calib: ActCalib,
    /// `cpu`; `gpu` (any adapter); `auto` (a hardware GPU when one opens, else the CPU)
    pub device: Device,
    /// GPU batch (`None`: [`GPU_BATCH`]); the CPU's batched executor picks its own
    pub batch: Option<usize>,
    /// keep the first N images (`None`: all)
    pub limit: Option<usize>,
    /// keep decoded image folders in the preprocessed-image cache (`--no-cache`: false)
    pub image_cache: bool,
    /// GPU runs: images (the first N) behind the per-layer statistics
    pub gpu_stats_images: usize,
    /// GPU runs: also run the CPU engine on every image and count differing logits
    pub check_cpu: bool,
    /// integer CPU runs: also run the reference kernels on every image (`--check-reference`)
    pub check_reference: bool,
    /// the graph output holding class scores (a card's `logits_output`; `None`: the only
    /// output of a single-output model, else none)
    pub logits_output: Option<String>,
    /// hide progress lines and notices (presentation only: never part of a key)
    pub quiet: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            quant: QuantConfig::default(),
            mode: Mode::Integer,
            calib: ActCalib::default(),
            device: Device::Cpu,
            batch: None,
            limit: None,
            image_cache: true,
            gpu_stats_images: GPU_STATS_IMAGES,
            check_cpu: false,
            check_reference: false,
            logits_output: None,
            quiet: false,
        }
    }
}

impl RunConfig {
    /// The FP32 run (no quantization).
    pub fn fp32() -> Self {
        RunConfig {
            quant: QuantConfig {
                scheme: crate::quant::Scheme::Fp32,
                ..Default::default()
            },
            mode: Mode::Fp32,
            ..Default::default()
        }
    }
    /// How this run loads its dataset.
    pub fn load_opts(&self, skip_bad: bool) -> LoadOpts {
        LoadOpts {
            skip_bad,
            limit: self.limit,
            cache: self.image_cache,
            quiet: self.quiet,
        }
    }
    /// The GPU batch.
    pub fn gpu_batch(&self) -> usize {
        self.batch.unwrap_or(GPU_BATCH)
    }
}
