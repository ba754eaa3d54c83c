//! Quantization settings, shared by the CLI, sweep TOML files and CSV output. Scheme names
//! are the same everywhere: `fp32`, `int8`, `mip2q`, `dliq`, `int4`, `nm`, `mx`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// Identity (FP32 weights).
    Fp32,
    /// Symmetric per-output-channel INT8.
    Int8,
    /// StruM with signed powers of two for the demoted values (barrel-shifter lanes).
    Mip2q,
    /// StruM with 4-bit integers for the demoted values.
    Dliq,
    /// Uniform per-output-channel INT4.
    Int4,
    /// N:M magnitude sparsity on top of INT8.
    Nm,
    /// MX-style block integers: one shared power-of-two scale per block.
    Mx,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Fp32 => "fp32",
            Scheme::Int8 => "int8",
            Scheme::Mip2q => "mip2q",
            Scheme::Dliq => "dliq",
            Scheme::Int4 => "int4",
            Scheme::Nm => "nm",
            Scheme::Mx => "mx",
        }
    }
    pub fn is_strum(self) -> bool {
        matches!(self, Scheme::Mip2q | Scheme::Dliq)
    }
}

/// Which axis a block runs along.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BlockAxis {
    /// Along input channels at a fixed kernel tap (a PE's MAC lanes reduce over input channels);
    /// a layer with fewer input channels per group than B uses `khwc` instead, so that blocks
    /// are not mostly padding.
    Ic,
    /// Along the flattened (kh, kw, ic) reduction order, input channels innermost (NHWC /
    /// "Z-major"): a block may straddle kernel taps.
    Khwc,
    /// Along the flattened reduction order of ONNX's weight layout (ic, kh, kw).
    Flat,
}

/// MIP2Q exponent window: the 7 exponents the 3-bit field can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum P2Window {
    /// Per layer, the top exponent is the layer's largest |q8| rounded to the nearest power
    /// of two (INQ's rule: e_max = floor(log2(4 max / 3)), 7 for 127, at most 7); e_min =
    /// e_max - 6.
    Anchored,
    /// `p2_min_exp ..= p2_max_exp` in every layer (before this option: [0, 6]).
    Fixed,
    /// Per layer, the window [e, e + 6] (e in 0..=1) with the smaller weight MSE.
    Auto,
}

/// Which value a demoted weight is rounded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DemoteFrom {
    /// The INT8 code q8 = rne(w / s) (two roundings: to INT8, then to 4 bits).
    Q8,
    /// The unrounded ratio w / s (one rounding).
    Ratio,
}

/// How DLIQ picks its shift k (per block, or per channel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DliqShiftRule {
    /// Smallest k with max |v| <= 7 * 2^k over the demoted values.
    Max,
    /// Smallest k with rne(v / 2^k) in -8..=7 for every demoted value (rounding headroom and
    /// the -8 side counted).
    Rounding,
}

/// The per-layer criterion of the dynamic L policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DynCriterion {
    /// SQNR of the layer's weights.
    WeightSqnr,
    /// SQNR of the layer's output estimated from the weight error weighted by the mean square
    /// of each input channel on the calibration images (sum over oc, ic, tap of
    /// dw^2 E[x_ic^2], i.e. output error with input channels taken as uncorrelated).
    OutputSqnr,
}

/// Which values of a block are demoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// The L smallest magnitudes.
    Magnitude,
    /// The L values whose demotion changes them least.
    Error,
}

/// Clipping range for per-channel weight scales (and per-tensor activation scales).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Calib {
    Max,
    Percentile,
    Mse,
}

/// Tie rule for the nearest power of two (MIP2Q).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum P2Round {
    /// Linear distance; a tie (3, 6, 12, 24, 48, 96) goes to the smaller power.
    Down,
    /// Linear distance; a tie goes to the larger power.
    Up,
    /// Nearest in the log domain (no ties exist for integers).
    Log,
}

/// DLIQ low-precision format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DliqShift {
    /// INT4 on the INT8 scale: clamp(q8, -8, 7).
    None,
    /// INT4 times a per-block power of two: round(q8 / 2^k) << k, k stored per block (3 bits).
    Block,
    /// INT4 times one power of two per output channel (3 bits per channel).
    Channel,
}

/// What to do with depthwise convolutions under a block scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Depthwise {
    /// Keep them INT8.
    Int8,
    /// Blocks over the kh*kw taps of each channel.
    Kernel,
    /// Blocks along channels at a fixed tap.
    Channel,
}

/// Static: the same L in every layer. Dynamic: per layer, the largest L whose weight SQNR
/// stays at or above `min_sqnr_db`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LPolicy {
    Static,
    Dynamic,
}

/// Every quantization parameter, with documented defaults (see docs/quantization.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuantConfig {
    pub scheme: Scheme,
    /// Block size B (StruM, N:M uses `nm_m`, MX uses it as its block).
    pub block: usize,
    /// Demoted (low-precision) values per block, L (0..=B).
    pub low: usize,
    pub block_axis: BlockAxis,
    pub selection: Selection,
    pub weight_calib: Calib,
    /// Percentile of |w| for `weight_calib = percentile` (0 < p <= 100).
    pub percentile: f32,
    /// MIP2Q exponent window (anchored to each layer's maximum by default).
    pub p2_window: P2Window,
    /// MIP2Q exponent range [p2_min_exp, p2_max_exp] of `p2_window = fixed` (at most 7 values:
    /// 3-bit field, one code for zero).
    pub p2_min_exp: u32,
    pub p2_max_exp: u32,
    pub p2_round: P2Round,
    pub dliq_shift: DliqShift,
    pub dliq_shift_rule: DliqShiftRule,
    /// Round demoted values from q8 (default) or from w / s.
    pub demote_from: DemoteFrom,
    /// After demotion, refit each output channel's scale by least squares:
    /// s* = sum(w c) / sum(c^2) over the channel's integer codes c.
    pub refit: bool,
    /// Quantize the first and last weight layer with the scheme too (default: keep them INT8).
    pub quantize_first_last: bool,
    pub depthwise: Depthwise,
    pub l_policy: LPolicy,
    /// Dynamic policy: minimum SQNR per layer under `dyn_criterion`, dB.
    pub min_sqnr_db: f32,
    pub dyn_criterion: DynCriterion,
    /// N:M sparsity: keep N of every M.
    pub nm_n: usize,
    pub nm_m: usize,
    /// MX element width in bits (8 or 4).
    pub mx_elem_bits: u32,
    /// Per-layer settings (layer name -> scheme and L), e.g. from `strumlab search`: a
    /// named layer takes its own setting instead of `scheme` / `low` and the layer policy;
    /// the other layers follow `scheme` as usual. Empty: a uniform configuration.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub layers: BTreeMap<String, LayerSetting>,
}

/// One layer's setting in a per-layer configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerSetting {
    /// `int8`, `mip2q` or `dliq`.
    pub scheme: Scheme,
    /// Demoted values per block (StruM; 0..=B); ignored for INT8.
    #[serde(default)]
    pub low: usize,
}

impl LayerSetting {
    /// The label of the setting (`int8`, `mip2q-l4`).
    pub fn label(&self) -> String {
        if self.scheme.is_strum() {
            format!("{}-l{}", self.scheme.as_str(), self.low)
        } else {
            self.scheme.as_str().to_string()
        }
    }
}

impl Default for QuantConfig {
    fn default() -> Self {
        QuantConfig {
            scheme: Scheme::Int8,
            block: 8,
            low: 4,
            block_axis: BlockAxis::Ic,
            selection: Selection::Magnitude,
            weight_calib: Calib::Max,
            percentile: 99.99,
            p2_window: P2Window::Anchored,
            p2_min_exp: 0,
            p2_max_exp: 6,
            p2_round: P2Round::Down,
            dliq_shift: DliqShift::Block,
            dliq_shift_rule: DliqShiftRule::Max,
            demote_from: DemoteFrom::Q8,
            refit: false,
            quantize_first_last: false,
            depthwise: Depthwise::Int8,
            l_policy: LPolicy::Static,
            min_sqnr_db: 30.0,
            dyn_criterion: DynCriterion::WeightSqnr,
            nm_n: 2,
            nm_m: 4,
            mx_elem_bits: 8,
            layers: BTreeMap::new(),
        }
    }
}

impl QuantConfig {
    /// Reject out-of-range combinations with a message naming the parameter.
    pub fn validate(&self) -> Result<()> {
        let bad = |arg: &str, reason: String| {
            Err(Error::InvalidArg {
                arg: arg.to_string(),
                reason,
            })
        };
        if self.block == 0 || self.block > 32 {
            return bad("block", format!("{} is outside 1..=32", self.block));
        }
        if self.low > self.block {
            return bad(
                "low",
                format!(
                    "{} demoted values do not fit a block of {}",
                    self.low, self.block
                ),
            );
        }
        if !(self.percentile > 0.0 && self.percentile <= 100.0) {
            return bad(
                "percentile",
                format!("{} is outside (0, 100]", self.percentile),
            );
        }
        if self.p2_min_exp > self.p2_max_exp
            || self.p2_max_exp > 7
            || self.p2_max_exp - self.p2_min_exp > 6
        {
            return bad(
                "p2-exp",
                format!(
                    "range [{}, {}] must lie in 0..=7 and hold at most 7 exponents (3-bit field + zero code)",
                    self.p2_min_exp, self.p2_max_exp
                ),
            );
        }
        if self.nm_m == 0 || self.nm_m > 32 || self.nm_n == 0 || self.nm_n > self.nm_m {
            return bad(
                "nm",
                format!("{}:{} needs 0 < N <= M <= 32", self.nm_n, self.nm_m),
            );
        }
        if self.mx_elem_bits != 8 && self.mx_elem_bits != 4 {
            return bad(
                "mx-elem-bits",
                format!("{} is not 4 or 8", self.mx_elem_bits),
            );
        }
        if !self.min_sqnr_db.is_finite() {
            return bad("min-sqnr-db", "must be finite".into());
        }
        if !self.layers.is_empty() && !self.scheme.is_strum() && self.scheme != Scheme::Int8 {
            return bad(
                "layer-config",
                format!(
                    "per-layer settings need scheme int8, mip2q or dliq, not {}",
                    self.scheme.as_str()
                ),
            );
        }
        for (name, l) in &self.layers {
            if !(l.scheme.is_strum() || l.scheme == Scheme::Int8) {
                return bad(
                    "layer-config",
                    format!(
                        "layer '{name}': scheme {} (per-layer settings take int8, mip2q or dliq)",
                        l.scheme.as_str()
                    ),
                );
            }
            if l.scheme.is_strum() && l.low > self.block {
                return bad(
                    "layer-config",
                    format!(
                        "layer '{name}': {} demoted values do not fit a block of {}",
                        l.low, self.block
                    ),
                );
            }
        }
        Ok(())
    }

    /// A short, stable label such as `mip2q-b8-l4`; a per-layer configuration is
    /// `perlayer-b8-` and 8 hex digits of a hash of its settings.
    pub fn label(&self) -> String {
        if !self.layers.is_empty() {
            let text = serde_json::to_string(&self.layers).expect("serializes");
            let h = crate::hash::fnv1a64(text.as_bytes()) >> 32;
            return format!("perlayer-b{}-{h:08x}", self.block);
        }
        match self.scheme {
            Scheme::Fp32 | Scheme::Int8 | Scheme::Int4 => self.scheme.as_str().to_string(),
            Scheme::Mip2q | Scheme::Dliq => {
                let l = match self.l_policy {
                    LPolicy::Static => format!("l{}", self.low),
                    LPolicy::Dynamic => format!("dyn{}db", self.min_sqnr_db),
                };
                let name = match (self.scheme, self.dliq_shift) {
                    (Scheme::Dliq, DliqShift::None) => "dliq-noshift",
                    (Scheme::Dliq, DliqShift::Channel) => "dliq-chshift",
                    (s, _) => s.as_str(),
                };
                format!("{}-b{}-{}", name, self.block, l)
            }
            Scheme::Nm => format!("nm-{}of{}", self.nm_n, self.nm_m),
            Scheme::Mx => format!("mx-b{}-int{}", self.block, self.mx_elem_bits),
        }
    }
}

/// A per-layer configuration file: what `strumlab search` writes, and what `--layer-config`
/// (eval, quantize, hw) and the sweep key `layer_config` read. Format (docs/search.md):
///
/// ```toml
/// model = "fmnist-resnet"   # informational
/// block = 8
/// [layers.conv_4]
/// scheme = "dliq"
/// low = 8
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerConfigFile {
    /// The model the settings were chosen for (informational; layer names are checked).
    #[serde(default)]
    pub model: String,
    /// Block size B of every StruM layer.
    pub block: usize,
    pub layers: BTreeMap<String, LayerSetting>,
}

impl LayerConfigFile {
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |reason: String| Error::Config {
            path: path.display().to_string(),
            reason,
        };
        let f: LayerConfigFile =
            toml::from_str(&text).map_err(|e| bad(crate::error::toml_reason(&text, &e)))?;
        if f.layers.is_empty() {
            return Err(bad("[layers] names no layer".into()));
        }
        Ok(f)
    }

    /// `cfg` with this file's block and per-layer settings.
    pub fn apply(&self, cfg: &QuantConfig) -> QuantConfig {
        QuantConfig {
            block: self.block,
            layers: self.layers.clone(),
            ..cfg.clone()
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a layer configuration serializes")
    }
}
