//! The command line: every command's arguments (clap), with their help texts and value
//! parsers. `cli::run` executes them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::Result;
use crate::quant::config::*;

#[derive(Parser, Debug)]
#[command(
    name = "strumlab",
    version,
    about = "Structured mixed-precision (StruM) quantization and FlexNN accelerator modelling for CNNs",
    long_about = "strumlab loads a CNN from ONNX, quantizes its weights with StruM (MIP2Q, DLIQ) or a \
baseline scheme, and reports what that does to every layer."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the nodes of a model: op, output shape, parameters and MACs per image.
    Inspect(InspectArgs),
    /// Quantize a model's weights and report per-layer statistics (bits/weight, SQNR, ...).
    Quantize(QuantizeArgs),
    /// Evaluate a quantized model on images: accuracy, agreement with FP32, divergence, and
    /// per-layer activity (MACs by weight precision, activation/weight sparsity).
    Eval(EvalArgs),
    /// Export a model as ONNX with preprocessed inputs and our FP32 logits, for checking
    /// against a peer runtime (scripts/validate-onnxruntime.py).
    Export(ExportArgs),
    /// Measure images/s of the CPU or GPU engine (not a test; scripts/bench-engines.py runs both next to the peer).
    Bench(BenchArgs),
    /// FlexNN accelerator model: PE / PE-array / DPU area and power of the INT8 baseline and
    /// of StruM (static and dynamic) per network next to the paper's claims (`--layers`:
    /// per layer too; `--out`: the per-layer CSV).
    Hw(HwArgs),
    /// Check the hardware model against a published accelerator (default: Eyeriss v1): one
    /// row per published figure with the model's value and the ratio.
    HwValidate(HwValidateArgs),
    /// List the GPU adapters wgpu can use (name, backend, driver, limits that matter).
    Devices(DevicesArgs),
    /// Run (or resume) a sweep spec: every run's accuracy and FlexNN cost, one CSV row each
    /// (docs/sweeps.md).
    Sweep(SweepArgs),
    /// Join the shard outputs of a sweep directory into merged.csv, checking that every run
    /// appears exactly once.
    Merge(MergeArgs),
    /// Regenerate every table and figure of results/reproduce from the embedded default data
    /// (and the fetched assets when present).
    Reproduce(ReproduceArgs),
    /// Search per-layer StruM settings (scheme and L per layer) that save the most FlexNN
    /// energy within a top-1 budget; reports on held-out images (docs/search.md).
    Search(SearchArgs),
    /// Train the Fashion-MNIST reference zoo with burn, export ONNX + model cards (needs the
    /// `train` cargo feature: cargo run --release --features train -- train).
    Train(TrainArgs),
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training recipe (TOML).
    #[arg(long, default_value = "experiments/train/fashion-zoo.toml")]
    pub recipe: PathBuf,
    /// Train only these models of the recipe (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Override the recipe's epochs (a quick look; the committed models use the recipe's).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Train on the first N images only.
    #[arg(long)]
    pub limit_train: Option<usize>,
    /// Write the ONNX files and cards here instead of the recipe's out_dir and
    /// experiments/models (which hold the committed zoo).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Hide the progress lines.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Print the result as one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// The sweep spec (TOML), e.g. experiments/strum-mnist.toml.
    pub spec: PathBuf,
    /// Output directory (default: the spec's `out`, else results/sweeps/<name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run only shard i of n (i counts from 0): run k belongs to shard k mod n.
    #[arg(long)]
    pub shard: Option<crate::sweep::Shard>,
    /// List the expanded runs and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// Run again the runs whose rows say `error`.
    #[arg(long)]
    pub retry_failed: bool,
    /// Override every run's device.
    #[arg(long, value_enum)]
    pub device: Option<BenchDevice>,
    /// Override every run's image limit (0: all images).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Do not keep decoded image folders in the preprocessed-image cache
    /// (`<cache>/preprocessed`, capped by STRUMLAB_IMAGE_CACHE_MB): decode into a temporary
    /// file that goes away with the run.
    #[arg(long)]
    pub no_cache: bool,
    /// No progress line.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// One line per finished run with its timing.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Print the sweep summary as one JSON document (runs done, failed, FP32 passes).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// A sweep output directory (runs*.csv + manifest*.json).
    pub dir: PathBuf,
    /// Print the merge summary as one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ReproduceArgs {
    /// Output directory.
    #[arg(long, default_value = "results/reproduce")]
    pub out: PathBuf,
    /// Models to include (default: every model of experiments/reproduce.toml whose files
    /// are present).
    #[arg(long, value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// Override the image limit of every run (0: all images).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Override every run's device.
    #[arg(long, value_enum)]
    pub device: Option<BenchDevice>,
    /// Hide notices and the progress line.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Print each run's timing.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Folder of the configuration searches (one subfolder per model, as `strumlab search`
    /// writes); a search whose inputs did not change is reused from there [default:
    /// results/search with the default --out, else <out>/search].
    #[arg(long)]
    pub search_out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Zoo name or ONNX file.
    #[arg(long, default_value = "fmnist-resnet")]
    pub model: String,
    #[command(flatten)]
    pub src: SourceArgs,
    /// Labelled dataset; default: the model card's.
    #[arg(long)]
    pub data: Option<String>,
    /// Largest top-1 drop against FP32 allowed, points (on the held-out images).
    #[arg(long, default_value_t = 0.5)]
    pub max_drop: f64,
    /// StruM schemes a layer may take (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "mip2q,dliq")]
    pub schemes: Vec<Scheme>,
    /// Candidate L values per layer (comma separated); default: B/4, B/2, 3B/4, B.
    #[arg(long, value_delimiter = ',')]
    pub lows: Vec<usize>,
    /// What to minimise (on the dynamic StruM PE, which runs a different L per layer).
    #[arg(long, value_enum, default_value = "pe-power")]
    pub objective: crate::search::Objective,
    /// Use only the first N images of the dataset (0: all).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Fraction of the images (the first ones) the search tunes on; the rest is held out
    /// and reported.
    #[arg(long, default_value_t = 0.5)]
    pub search_frac: f64,
    /// Images (the first of the search part) behind the single-layer sensitivities.
    #[arg(long, default_value_t = 1000)]
    pub sens_images: usize,
    /// Single steps tried beyond the bisection's point on the greedy walk.
    #[arg(long, default_value_t = 8)]
    pub refine: usize,
    /// On the search part a configuration must keep its drop plus this many standard errors
    /// of the paired top-1 difference within the budget (0: the plain drop).
    #[arg(long, default_value_t = 1.0)]
    pub margin_se: f64,
    #[command(flatten)]
    pub quant: QuantArgs,
    #[command(flatten)]
    pub calib: ActCalibArgs,
    /// Architecture file of the FlexNN model.
    #[arg(long, default_value = "experiments/hw/flexnn.toml")]
    pub arch: PathBuf,
    /// Output folder [default: results/search/<model>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Do not keep decoded image folders in the preprocessed-image cache
    /// (`<cache>/preprocessed`, capped by STRUMLAB_IMAGE_CACHE_MB): decode into a temporary
    /// file that goes away with the run.
    #[arg(long)]
    pub no_cache: bool,
    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Activation calibration of `eval` and `search`.
#[derive(Args, Debug)]
pub struct ActCalibArgs {
    /// Images used to calibrate activation scales: the first N of the dataset (of the
    /// search part in `search`).
    #[arg(long, default_value_t = crate::run::CALIB_IMAGES)]
    pub calib_images: usize,
    /// Activation clipping: max, percentile or mse (per tensor).
    #[arg(long, value_enum, default_value = "max")]
    pub act_calib: Calib,
    /// Percentile for --act-calib percentile.
    #[arg(long, default_value_t = crate::run::ACT_PERCENTILE)]
    pub act_percentile: f32,
}

impl ActCalibArgs {
    /// The calibration setting (the percentile must lie in (0, 100]).
    pub(crate) fn to_calib(&self) -> Result<crate::run::ActCalib> {
        crate::run::ActCalib {
            images: self.calib_images,
            method: self.act_calib,
            percentile: self.act_percentile,
        }
        .checked()
    }
}

#[derive(Args, Debug)]
pub struct HwValidateArgs {
    /// Validation spec: architecture, networks, published figures.
    #[arg(long, default_value = "experiments/hw/eyeriss.toml")]
    pub spec: PathBuf,
    /// Write the rows as JSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DevicesArgs {
    /// Print the adapters as one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct HwArgs {
    /// Architecture file (names its technology table).
    #[arg(long, default_value = "experiments/hw/flexnn.toml")]
    pub arch: PathBuf,
    /// Zoo name or ONNX file.
    #[arg(long, default_value = "mnist-8")]
    pub model: String,
    #[command(flatten)]
    pub src: SourceArgs,
    /// Per-layer activity from `strumlab eval --out` with the same scheme; without it a
    /// density model is used (the output says which).
    #[arg(long)]
    pub stats: Option<PathBuf>,
    #[command(flatten)]
    pub quant: QuantArgs,
    /// Override the architecture's multiplier cost law (cost of an a x b multiplier).
    #[arg(long, value_enum)]
    pub multiplier_law: Option<crate::hw::config::MultiplierLaw>,
    /// What the headline PE area and power include: datapath (multipliers or shifters,
    /// adder tree, accumulator, steering, control), rf (plus register files) or full (plus
    /// the find-first logic) [default: the architecture's, full]; all three are printed.
    #[arg(long, value_enum)]
    pub pe_boundary: Option<crate::hw::config::Boundary>,
    /// Which StruM PE the headline figures describe [default: static; dynamic for a
    /// --layer-config, which only the dynamic PE runs].
    #[arg(long, value_enum)]
    pub variant: Option<crate::hw::pe::Variant>,
    /// The paper's claims to print next to ours.
    #[arg(long, default_value = "experiments/hw/strum-claims.toml")]
    pub claims: PathBuf,
    /// Also print one line per layer (MACs, dataflow descriptor, utilization, PE energy).
    #[arg(long)]
    pub layers: bool,
    /// Per-layer CSV (schema: docs/csv-schemas.md).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the figures, breakdown and per-layer mapping as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Also solve the paper's four bands for the PE they imply (multiplier shares, shifter
    /// ratios, PE-array shares; docs/hardware.md).
    #[arg(long)]
    pub solve: bool,
    /// Priors of --solve.
    #[arg(long, default_value = "experiments/hw/solve-priors.toml")]
    pub solve_priors: PathBuf,
    /// With --solve: write its figures (solve-power, solve-area; PNG and SVG) into this folder.
    #[arg(long)]
    pub figures: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Zoo name or ONNX file.
    #[arg(long, default_value = "mnist-8")]
    pub model: String,
    #[command(flatten)]
    pub src: SourceArgs,
    #[command(flatten)]
    pub quant: QuantArgs,
    /// Numerics: fp32, fake-quant or integer [default: integer; fp32 with --scheme fp32].
    #[arg(long, value_enum)]
    pub mode: Option<crate::cpu::engine::Mode>,
    /// Images per timed pass (taken from the model card's dataset, repeated if needed).
    #[arg(long, default_value_t = 256)]
    pub images: usize,
    /// Timed passes; the best is reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// cpu: the CPU engine; gpu: the WGSL engine on any adapter (every mode); auto: a
    /// hardware GPU when one opens, else cpu (with a one-line notice).
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: BenchDevice,
    /// Images per GPU batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Measure the machine's INT8 (vpdpbusd) and FP32 (FMA) multiply-accumulate peaks over
    /// every thread instead of a model (GMAC/s).
    #[arg(long)]
    pub peak: bool,
    /// CPU, integer mode: images per call of the batched executor on each worker (default:
    /// chosen from the model's largest activation).
    #[arg(long)]
    pub cpu_batch: Option<usize>,
    /// GPU: use the portable integer kernels instead of packed 4x8-bit dot products.
    #[arg(long)]
    pub portable_kernels: bool,
    /// CPU: the engine's Conv/Dense kernels: fast (im2col + exact GEMM) or reference (the
    /// direct loops, the oracle).
    #[arg(long, value_enum, default_value = "fast")]
    pub kernels: crate::cpu::engine::Kernels,
    /// Sweep benchmark instead: N StruM configurations (MIP2Q and DLIQ, L = 1, 2, ...) x every
    /// image of the model card's dataset, accuracy only, on the CPU engine and (with an
    /// adapter) the GPU engine in the same run; prints configurations per minute and the ratio.
    #[arg(long)]
    pub sweep: Option<usize>,
    /// Print the measurement as one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Zoo name or ONNX file.
    #[arg(long, default_value = "mnist-8")]
    pub model: String,
    #[command(flatten)]
    pub src: SourceArgs,
    /// Dataset (default: the model card's).
    #[arg(long)]
    pub data: Option<String>,
    /// Number of images to export (0: all).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Output directory: model.onnx, inputs.f32, logits.f32 (little-endian, row-major) and
    /// meta.json (shapes, labels).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Zoo name (see experiments/models/) or an ONNX file.
    #[arg(long, default_value = "mnist-8")]
    pub model: String,
    #[command(flatten)]
    pub src: SourceArgs,
    /// Dataset: mnist-test, fashion-test (vendored), imagenet-samples, photos (fetched), an
    /// IDX image file, or a folder of JPEG/PNG images; default: the model card's.
    #[arg(long)]
    pub data: Option<String>,
    #[command(flatten)]
    pub quant: QuantArgs,
    /// Numerics: fp32, fake-quant (dequantized weights, INT8 quantize-dequantize at layer
    /// inputs) or integer (INT8 x integer weights, INT32 accumulation, bit-exact)
    /// [default: integer; fp32 with --scheme fp32].
    #[arg(long, value_enum)]
    pub mode: Option<crate::cpu::engine::Mode>,
    /// Evaluate only the first N images (0: all).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Skip (and report) unreadable images instead of stopping.
    #[arg(long)]
    pub skip_bad_images: bool,
    #[command(flatten)]
    pub calib: ActCalibArgs,
    /// cpu; gpu: the quantized run on the WGSL engine on any adapter (fp32, fake-quant or
    /// integer); auto: a hardware GPU when one opens and the model runs there, else cpu with
    /// a one-line notice (software adapters such as lavapipe are slower than the CPU engine).
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: BenchDevice,
    /// With the GPU: images (the first N) behind the per-layer activity statistics, which
    /// the CPU engine computes.
    #[arg(long, default_value_t = crate::run::GPU_STATS_IMAGES)]
    pub stats_images: usize,
    /// With the GPU: also run the CPU engine on every image and fail unless every image's
    /// logits agree (integer mode: bit for bit; float modes: within 2e-3 of the largest logit).
    #[arg(long)]
    pub check_cpu: bool,
    /// Integer mode on the CPU: also run the reference kernels (the direct loops, the
    /// oracle) on every image and fail unless every logit equals the fast kernels'.
    #[arg(long)]
    pub check_reference: bool,
    /// Write per-layer results as CSV (schema: docs/csv-schemas.md).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Do not keep decoded image folders in the preprocessed-image cache
    /// (`<cache>/preprocessed`, capped by STRUMLAB_IMAGE_CACHE_MB): decode into a temporary
    /// file that goes away with the run.
    #[arg(long)]
    pub no_cache: bool,
    /// No progress line on stderr (it is shown only on a terminal).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

pub use crate::eval::Device as BenchDevice;

/// How a model file is read: its input shape and its card. Every command that runs a model
/// on images takes them (`inspect` and `quantize` take `--input-shape`).
#[derive(Args, Debug, Clone, Default)]
pub struct SourceArgs {
    /// Input shape at batch 1, comma separated (e.g. 1,3,48,192), for a file whose input has
    /// symbolic dimensions other than the batch (a symbolic batch is taken as 1).
    #[arg(long, value_parser = parse_shape)]
    pub input_shape: Option<ShapeArg>,
    /// A model card (TOML, docs/zoo.md): the preprocessing of an ONNX file the zoo does not
    /// know (size, channels, pixel scale, mean / std, resize and crop, BGR, NHWC) and its
    /// dataset; it replaces a zoo model's own card.
    #[arg(long)]
    pub card: Option<PathBuf>,
}

impl SourceArgs {
    /// Load `model` (zoo name or ONNX file) with this shape and card.
    pub fn resolve(
        &self,
        model: &str,
    ) -> Result<(crate::model::Graph, crate::data::card::ModelCard)> {
        crate::zoo::resolve_with_card(model, &self.load_options(), self.card.as_deref())
    }

    pub(crate) fn load_options(&self) -> crate::model::LoadOptions {
        crate::model::LoadOptions {
            input_shape: self.input_shape.as_ref().map(|s| s.0.clone()),
            ..Default::default()
        }
    }
}

#[derive(Args, Debug)]
pub struct ModelArgs {
    /// An ONNX model file, or a zoo name (experiments/models/*.toml, e.g. effnet-lite0).
    pub model: PathBuf,
    #[command(flatten)]
    pub src: SourceArgs,
}

/// A tensor shape given on the command line.
#[derive(Clone, Debug)]
pub struct ShapeArg(pub Vec<usize>);

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct QuantizeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub quant: QuantArgs,
    /// Write the per-layer statistics as CSV to this file (schema: docs/csv-schemas.md).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON document (`layers` array + `summary`) instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Quantization flags; defaults are documented in docs/quantization.md.
#[derive(Args, Debug, Clone)]
pub struct QuantArgs {
    /// Quantization scheme [default: int8; fp32 with --mode fp32].
    #[arg(long, value_enum)]
    pub scheme: Option<Scheme>,
    /// Block size B: weights per block along the block axis (StruM; MX block).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub block: u32,
    /// L: values per block demoted to 4 bits (StruM, 0..=B; static policy).
    #[arg(long, default_value_t = 4)]
    pub low: u32,
    /// Axis along which blocks run: input channels at a fixed kernel tap (layers with fewer
    /// input channels than B use khwc), the flattened (kh, kw, ic) order with ic innermost,
    /// or the flattened (ic, kh, kw) order of ONNX's layout.
    #[arg(long, value_enum, default_value = "ic")]
    pub block_axis: BlockAxis,
    /// Which values of a block are demoted: the smallest magnitudes, or those whose
    /// demotion changes them least.
    #[arg(long, value_enum, default_value = "magnitude")]
    pub selection: Selection,
    /// Per-output-channel weight clipping: max|w|, a percentile of |w|, or the MSE-optimal clip.
    #[arg(long, value_enum, default_value = "max")]
    pub weight_calib: Calib,
    /// Percentile for --weight-calib percentile.
    #[arg(long, default_value_t = 99.99)]
    pub percentile: f32,
    /// MIP2Q exponent window: anchored (per layer, top level = the largest |q8| rounded to
    /// the nearest power of two, 128 for 127, and the 6 below it), fixed (--p2-min-exp ..=
    /// --p2-max-exp), or auto (per layer the better of [0, 6] and [1, 7] by weight MSE).
    #[arg(long, value_enum, default_value = "anchored")]
    pub p2_window: P2Window,
    /// MIP2Q, --p2-window fixed: smallest exponent (values +-2^e). Giving it (or
    /// --p2-max-exp) without --p2-window selects fixed.
    #[arg(long)]
    pub p2_min_exp: Option<u32>,
    /// MIP2Q, --p2-window fixed: largest exponent (at most 7 exponents in all).
    #[arg(long)]
    pub p2_max_exp: Option<u32>,
    /// MIP2Q: tie rule for the nearest power of two.
    #[arg(long, value_enum, default_value = "down")]
    pub p2_round: P2Round,
    /// DLIQ: INT4 on the INT8 scale (none), INT4 with a per-block shift (block), or one shift
    /// per output channel (channel).
    #[arg(long, value_enum, default_value = "block")]
    pub dliq_shift: DliqShift,
    /// DLIQ shift rule: smallest k with max|v| <= 7 * 2^k (max), or smallest k with every
    /// rne(v / 2^k) in -8..=7 (rounding).
    #[arg(long, value_enum, default_value = "max")]
    pub dliq_shift_rule: DliqShiftRule,
    /// Round demoted values from the INT8 code q8 (two roundings) or from w / s (one).
    #[arg(long, value_enum, default_value = "q8")]
    pub demote_from: DemoteFrom,
    /// After demotion, refit each output channel's scale by least squares (s* = sum(w c) /
    /// sum(c^2) over the channel's integer codes).
    #[arg(long)]
    pub refit: bool,
    /// Quantize the first and last weight layers with the scheme too (default: INT8).
    #[arg(long)]
    pub quantize_first_last: bool,
    /// Depthwise convolutions: keep INT8, blocks over the kernel taps, or blocks along channels.
    #[arg(long, value_enum, default_value = "int8")]
    pub depthwise: Depthwise,
    /// Static: same L everywhere. Dynamic: per layer the largest L meeting --min-sqnr-db.
    #[arg(long, value_enum, default_value = "static")]
    pub l_policy: LPolicy,
    /// Dynamic policy: minimum SQNR per layer under --dyn-criterion, in dB.
    #[arg(long, default_value_t = 30.0)]
    pub min_sqnr_db: f32,
    /// Dynamic policy: SQNR of the weights, or of the layer output estimated from the weight
    /// error weighted by each input channel's mean square on the calibration images.
    #[arg(long, value_enum, default_value = "weight-sqnr")]
    pub dyn_criterion: DynCriterion,
    /// N:M sparsity pattern, e.g. 2:4 (scheme nm).
    #[arg(long, default_value = "2:4", value_parser = parse_nm)]
    pub nm: (usize, usize),
    /// MX element width in bits: 8 or 4 (scheme mx).
    #[arg(long, default_value_t = 8)]
    pub mx_elem_bits: u32,
    /// Per-layer settings (scheme and L per layer, e.g. written by `strumlab search`); the
    /// file's block replaces --block, layers it does not name follow --scheme.
    #[arg(long)]
    pub layer_config: Option<PathBuf>,
}

impl QuantArgs {
    /// `--p2-min-exp` / `--p2-max-exp` name a fixed window; with `--p2-window` anchored
    /// (the default) they would be ignored, so giving them selects `fixed`.
    fn p2_window_resolved(&self) -> P2Window {
        let explicit = self.p2_min_exp.is_some() || self.p2_max_exp.is_some();
        if explicit && self.p2_window == P2Window::Anchored {
            P2Window::Fixed
        } else {
            self.p2_window
        }
    }

    pub fn to_config(&self) -> Result<QuantConfig> {
        let d = QuantConfig::default();
        let c = QuantConfig {
            scheme: self.scheme.unwrap_or(Scheme::Int8),
            block: self.block as usize,
            low: self.low as usize,
            block_axis: self.block_axis,
            selection: self.selection,
            weight_calib: self.weight_calib,
            percentile: self.percentile,
            p2_window: self.p2_window_resolved(),
            p2_min_exp: self.p2_min_exp.unwrap_or(d.p2_min_exp),
            p2_max_exp: self.p2_max_exp.unwrap_or(d.p2_max_exp),
            p2_round: self.p2_round,
            dliq_shift: self.dliq_shift,
            dliq_shift_rule: self.dliq_shift_rule,
            demote_from: self.demote_from,
            refit: self.refit,
            quantize_first_last: self.quantize_first_last,
            depthwise: self.depthwise,
            l_policy: self.l_policy,
            min_sqnr_db: self.min_sqnr_db,
            dyn_criterion: self.dyn_criterion,
            nm_n: self.nm.0,
            nm_m: self.nm.1,
            mx_elem_bits: self.mx_elem_bits,
            layers: Default::default(),
        };
        let c = match &self.layer_config {
            Some(p) => crate::quant::config::LayerConfigFile::load(p)?.apply(&c),
            None => c,
        };
        c.validate()?;
        Ok(c)
    }
}

fn parse_shape(s: &str) -> std::result::Result<ShapeArg, String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<usize>()
                .map_err(|_| format!("'{p}' is not a positive integer"))
        })
        .collect::<std::result::Result<_, _>>()?;
    if v.is_empty() || v.contains(&0) {
        return Err("every dimension must be positive".into());
    }
    Ok(ShapeArg(v))
}

fn parse_nm(s: &str) -> std::result::Result<(usize, usize), String> {
    let (a, b) = s.split_once(':').ok_or("expected N:M, e.g. 2:4")?;
    let n = a
        .trim()
        .parse::<usize>()
        .map_err(|_| format!("N '{a}' is not an integer"))?;
    let m = b
        .trim()
        .parse::<usize>()
        .map_err(|_| format!("M '{b}' is not an integer"))?;
    if n == 0 || n > m || m > 32 {
        return Err(format!("{n}:{m} needs 0 < N <= M <= 32"));
    }
    Ok((n, m))
}
