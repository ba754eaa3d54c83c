//! `strumlab train` (cargo feature `train`): trains the Fashion-MNIST reference zoo with burn
//! on the CPU (`flex` backend + autodiff), exports each network to ONNX (BatchNormalization
//! kept as nodes) and writes its model card with the FP32 accuracy our own engine measures
//! on the exported file. Recipe: experiments/train/fashion-zoo.toml.

pub mod nets;
pub mod recipe;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::{ModelCard, repo_root};
use crate::error::{Error, Result};
use nets::{CLASSES, Net, SIDE};
use recipe::{ModelSpec, Recipe};

/// Default recipe, relative to the repository root.
pub const RECIPE: &str = "experiments/train/fashion-zoo.toml";
/// Where `scripts/fetch-assets.sh` puts the Fashion-MNIST training split (inside the cache).
pub const TRAIN_IMAGES: &str = "fashion-mnist/train-images-idx3-ubyte.gz";

/// 28x28 grey images with labels 0..9.
#[derive(Clone, Debug)]
pub struct Images {
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Images {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The first `n` images.
    pub fn truncate(&mut self, n: usize) {
        self.labels.truncate(n);
        self.pixels.truncate(n * SIDE * SIDE);
    }

    /// An IDX image file and the `*labels-idx1*` file beside it.
    pub fn load(images: &Path) -> Result<Self> {
        let name = images
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let labels = images.with_file_name(name.replace("images-idx3", "labels-idx1"));
        let im = crate::data::idx::read_idx_u8(images)?;
        let lb = crate::data::idx::read_idx_u8(&labels)?;
        if im.dims != [lb.dims[0], SIDE, SIDE] || lb.dims.len() != 1 {
            return Err(Error::Data {
                path: images.display().to_string(),
                reason: format!(
                    "expected N x {SIDE} x {SIDE} images with N labels, got {:?} and {:?}",
                    im.dims, lb.dims
                ),
            });
        }
        if let Some(&bad) = lb.data.iter().find(|&&l| l as usize >= CLASSES) {
            return Err(Error::Data {
                path: labels.display().to_string(),
                reason: format!("label {bad} is not a Fashion-MNIST class (0..9)"),
            });
        }
        Ok(Images {
            pixels: im.data,
            labels: lb.data,
        })
    }

    /// The 60k training split from the cache (fetched from Debian's dataset-fashion-mnist).
    pub fn fashion_train() -> Result<Self> {
        let p = crate::data::cache_dir().join(TRAIN_IMAGES);
        if !p.exists() {
            return Err(Error::Data {
                path: p.display().to_string(),
                reason: "the Fashion-MNIST training split is not fetched yet: run scripts/fetch-assets.sh".into(),
            });
        }
        Self::load(&p)
    }

    /// The vendored 10k test split.
    pub fn fashion_test() -> Result<Self> {
        Self::load(&repo_root().join("experiments/data/fashion-mnist/t10k-images-idx3-ubyte.gz"))
    }
}

/// SplitMix64: shuffling and augmentation draws (independent of burn's RNG).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle(&mut self, v: &mut [usize]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// Preprocessing of the recipe: `(pixel * scale - mean) / std`.
#[derive(Clone, Copy, Debug)]
pub struct Norm {
    pub scale: f32,
    pub mean: f32,
    pub std: f32,
}

impl Norm {
    pub fn of(r: &Recipe) -> Self {
        Norm {
            scale: r.pixel_scale,
            mean: r.mean,
            std: r.std,
        }
    }

    fn apply(&self, p: u8) -> f32 {
        (p as f32 * self.scale - self.mean) / self.std
    }
}

/// Random shift by up to `pad` pixels (zero fill, i.e. a padded random crop) and horizontal flip.
#[derive(Clone, Copy, Debug, Default)]
pub struct Augment {
    pub pad: usize,
    pub hflip: bool,
}

/// Images `idx` as a normalised `[B, 1, 28, 28]` batch and their labels.
fn batch(
    data: &Images,
    idx: &[usize],
    norm: Norm,
    aug: Option<(Augment, &mut Rng)>,
    dev: &Device,
) -> (Tensor<4>, Tensor<1, Int>) {
    let px = SIDE * SIDE;
    let mut x = Vec::with_capacity(idx.len() * px);
    let mut aug = aug;
    for &i in idx {
        let img = &data.pixels[i * px..(i + 1) * px];
        let (dy, dx, flip) = match aug.as_mut() {
            Some((a, rng)) if a.pad > 0 || a.hflip => {
                let span = 2 * a.pad + 1;
                let dy = rng.below(span) as isize - a.pad as isize;
                let dx = rng.below(span) as isize - a.pad as isize;
                (dy, dx, a.hflip && rng.below(2) == 1)
            }
            _ => (0, 0, false),
        };
        for r in 0..SIDE as isize {
            for c in 0..SIDE as isize {
                let (sr, sc0) = (r + dy, c + dx);
                let sc = if flip { SIDE as isize - 1 - sc0 } else { sc0 };
                let inside = (0..SIDE as isize).contains(&sr) && (0..SIDE as isize).contains(&sc);
                let p = if inside {
                    img[sr as usize * SIDE + sc as usize]
                } else {
                    0
                };
                x.push(norm.apply(p));
            }
        }
    }
    let y: Vec<i64> = idx.iter().map(|&i| data.labels[i] as i64).collect();
    (
        Tensor::from_data(TensorData::new(x, [idx.len(), 1, SIDE, SIDE]), dev),
        Tensor::from_data(TensorData::new(y, [idx.len()]), dev),
    )
}

/// Image `i` normalised as the cards say (what our engine is fed), `28 * 28` values.
pub fn normalised(data: &Images, i: usize, norm: Norm) -> Vec<f32> {
    let px = SIDE * SIDE;
    data.pixels[i * px..(i + 1) * px]
        .iter()
        .map(|&p| norm.apply(p))
        .collect()
}

/// Top-1 accuracy of `net` (in inference mode) on `data`.
pub fn accuracy(net: &Net, data: &Images, norm: Norm) -> f64 {
    let net = net.valid();
    let dev = Device::flex();
    let all: Vec<usize> = (0..data.len()).collect();
    let mut right = 0usize;
    for chunk in all.chunks(500) {
        let (x, y) = batch(data, chunk, norm, None, &dev);
        let pred = net.forward(x).argmax(1).reshape([chunk.len()]);
        let eq = pred.equal(y).int().sum();
        right += eq.into_scalar::<i64>() as usize;
    }
    right as f64 / data.len().max(1) as f64
}

/// One epoch's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    /// Burn's own test accuracy after the epoch (`None` when no test set was given).
    pub test_top1: Option<f64>,
    pub seconds: f64,
}

pub struct Trained {
    pub net: Net,
    pub epochs: Vec<EpochLog>,
    /// Loss of every optimizer step, in order.
    pub step_losses: Vec<f32>,
    pub wall_s: f64,
}

/// Learning rate at `step` of `total`: linear warm-up to `peak`, then cosine decay to 0.
pub fn lr_at(step: usize, total: usize, warmup: usize, peak: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let t = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
    peak * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
}

/// Settings of one training call that are not part of the recipe.
pub struct TrainCall<'a> {
    pub seed: u64,
    pub norm: Norm,
    pub augment: Augment,
    /// Test set evaluated after every epoch.
    pub test: Option<&'a Images>,
    /// Stop after this many optimizer steps (CI's smoke test); the schedule still spans
    /// the recipe's epochs.
    pub max_steps: Option<usize>,
    pub epochs: usize,
    pub quiet: bool,
}

/// Train `spec` on `train` (AdamW, warm-up + cosine, cross-entropy) and report per epoch.
pub fn train(
    spec: &ModelSpec,
    train: &Images,
    call: &TrainCall,
    log: &mut dyn FnMut(&str),
) -> Trained {
    let t0 = Instant::now();
    let dev = Device::flex();
    dev.seed(call.seed);
    let adev = dev.clone().autodiff();
    let mut net = Net::new(spec, &adev);
    let mut optim = AdamWConfig::new()
        .with_weight_decay(spec.weight_decay)
        .init();
    let smoothing = (spec.label_smoothing > 0.0).then_some(spec.label_smoothing);
    let loss_fn = CrossEntropyLossConfig::new()
        .with_smoothing(smoothing)
        .init(&adev);
    let mut rng = Rng(call.seed ^ 0x5eed_f00d);
    let steps_per_epoch = train.len().div_ceil(spec.batch);
    let total = steps_per_epoch * call.epochs;
    let limit = call.max_steps.unwrap_or(usize::MAX).min(total);
    let mut step = 0usize;
    let mut step_losses = Vec::new();
    let mut epochs = Vec::new();
    let mut order: Vec<usize> = (0..train.len()).collect();
    for epoch in 1..=call.epochs {
        if step >= limit {
            break;
        }
        let te = Instant::now();
        rng.shuffle(&mut order);
        let bar = crate::progress::Progress::new(
            &format!("{} epoch {epoch}/{}", spec.name, call.epochs),
            steps_per_epoch.min(limit - step),
            call.quiet,
        );
        let (mut sum, mut n) = (0.0f64, 0usize);
        for idx in order.chunks(spec.batch) {
            if step >= limit {
                break;
            }
            let (x, y) = batch(train, idx, call.norm, Some((call.augment, &mut rng)), &adev);
            let loss = loss_fn.forward(net.forward(x), y);
            let l = loss.clone().into_scalar::<f32>();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(lr_at(step, total, spec.warmup_steps, spec.lr), net, grads);
            step_losses.push(l);
            sum += l as f64 * idx.len() as f64;
            n += idx.len();
            step += 1;
            bar.inc();
        }
        drop(bar);
        let test_top1 = call.test.map(|t| accuracy(&net, t, call.norm));
        let e = EpochLog {
            epoch,
            train_loss: sum / n.max(1) as f64,
            test_top1,
            seconds: te.elapsed().as_secs_f64(),
        };
        log(&format!(
            "{} epoch {epoch}/{}: train loss {:.4}, test top-1 {}, {:.0} s",
            spec.name,
            call.epochs,
            e.train_loss,
            e.test_top1
                .map(|a| format!("{:.2} %", 100.0 * a))
                .unwrap_or_else(|| "-".into()),
            e.seconds
        ));
        epochs.push(e);
    }
    Trained {
        net: net.valid(),
        epochs,
        step_losses,
        wall_s: t0.elapsed().as_secs_f64(),
    }
}

/// What `strumlab train` does.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub recipe: PathBuf,
    /// Train only these models (all when empty).
    pub models: Vec<String>,
    /// Override the recipe's epochs.
    pub epochs: Option<usize>,
    /// Use only the first N training images.
    pub limit_train: Option<usize>,
    /// Write ONNX files and cards here instead of the recipe's out_dir and experiments/models.
    pub out: Option<PathBuf>,
    pub quiet: bool,
}

/// One trained and exported model.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainSummary {
    pub name: String,
    pub arch: String,
    pub params: usize,
    pub epochs: Vec<EpochLog>,
    pub train_wall_s: f64,
    pub onnx: String,
    pub onnx_bytes: usize,
    /// FP32 top-1 of the exported ONNX on the 10k test set, measured by our CPU engine.
    pub fp32_top1: f64,
    pub card: String,
}

fn card_text(
    spec: &ModelSpec,
    r: &Recipe,
    file: &str,
    s: &TrainSummary,
    burn_top1: Option<f64>,
) -> String {
    format!(
        "# Model card: {name}, a {arch}-style CNN trained in this project on Fashion-MNIST\n\
         # (60k training images, Debian dataset-fashion-mnist, MIT) by `strumlab train`\n\
         # (burn 0.22 flex backend, CPU) from the recipe {recipe}.\n\
         # widths {widths:?}, depth {depth:?}{expand}; {params} parameters; {epochs} epochs,\n\
         # batch {batch}, AdamW peak lr {lr}, weight decay {wd}; training wall time {wall:.0} s\n\
         # on the machine that trained it; burn's own test top-1 after the last epoch: {burn}.\n\
         name = \"{name}\"\n\
         file = \"{file}\"\n\
         source = \"trained here by `strumlab train` ({recipe}); ONNX written by strumlab with BatchNormalization kept as nodes\"\n\
         dataset = \"fashion-test\"\n\
         channels = 1\n\
         size = [28, 28]\n\
         pixel_scale = {scale:?}\n\
         mean = [{mean:?}]\n\
         std = [{std:?}]\n\
         # FP32 top-1 on the 10k Fashion-MNIST test set, measured by `strumlab eval` (CPU engine)\n\
         # on the exported ONNX; pinned by tests/fashion_zoo.rs.\n\
         fp32_top1_reference = {top1}\n",
        name = spec.name,
        arch = spec.arch.name(),
        recipe = RECIPE,
        widths = spec.widths,
        depth = spec.depth,
        expand = if spec.arch == recipe::Arch::Mobilenetv2 {
            format!(", expansion {}", spec.expand)
        } else {
            String::new()
        },
        params = s.params,
        epochs = s.epochs.len(),
        batch = spec.batch,
        lr = spec.lr,
        wd = spec.weight_decay,
        wall = s.train_wall_s,
        burn = burn_top1
            .map(|a| format!("{:.2} %", 100.0 * a))
            .unwrap_or_else(|| "-".into()),
        scale = r.pixel_scale,
        mean = r.mean,
        std = r.std,
        top1 = s.fp32_top1,
    )
}

/// Train the recipe's models (or those named), export them and write their cards.
pub fn run(opts: &TrainOptions) -> Result<Vec<TrainSummary>> {
    let recipe = Recipe::load(&opts.recipe)?;
    for m in &opts.models {
        if !recipe.models.iter().any(|s| &s.name == m) {
            return Err(Error::InvalidArg {
                arg: "model".into(),
                reason: format!(
                    "'{m}' is not in {} (models: {})",
                    opts.recipe.display(),
                    recipe
                        .models
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    if opts.epochs == Some(0) {
        return Err(Error::InvalidArg {
            arg: "epochs".into(),
            reason: "must be > 0".into(),
        });
    }
    let mut train_set = Images::fashion_train()?;
    if let Some(n) = opts.limit_train {
        train_set.truncate(n);
    }
    let test = Images::fashion_test()?;
    let root = repo_root();
    let (onnx_dir, card_dir) = match &opts.out {
        Some(d) => (d.clone(), d.clone()),
        None => (root.join(&recipe.out_dir), root.join(crate::zoo::CARDS_DIR)),
    };
    std::fs::create_dir_all(&onnx_dir).map_err(|e| Error::Output {
        path: onnx_dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let norm = Norm::of(&recipe);
    let mut out = Vec::new();
    for (k, spec) in recipe.models.iter().enumerate() {
        if !opts.models.is_empty() && !opts.models.contains(&spec.name) {
            continue;
        }
        let call = TrainCall {
            seed: recipe.seed + k as u64,
            norm,
            augment: Augment {
                pad: recipe.crop_pad,
                hflip: recipe.hflip,
            },
            test: Some(&test),
            max_steps: None,
            epochs: opts.epochs.unwrap_or(spec.epochs),
            quiet: opts.quiet,
        };
        let t = train(spec, &train_set, &call, &mut |l| eprintln!("{l}"));
        let bytes = t.net.to_onnx(&spec.name);
        let onnx_path = onnx_dir.join(format!("{}.onnx", spec.name));
        let file = match &opts.out {
            None => format!("{}/{}.onnx", recipe.out_dir, spec.name),
            Some(_) => onnx_path.display().to_string(),
        };
        let mut s = TrainSummary {
            name: spec.name.clone(),
            arch: spec.arch.name().into(),
            params: t.net.params(),
            epochs: t.epochs.clone(),
            train_wall_s: t.wall_s,
            onnx: file.clone(),
            onnx_bytes: bytes.len(),
            fp32_top1: 0.0,
            card: String::new(),
        };
        // Measure the exported file with our own loader and engine before writing anything.
        let g = crate::model::load_onnx_bytes(&bytes, &spec.name, &Default::default())?;
        let probe = card_text(spec, &recipe, &file, &s, None);
        let card: ModelCard = toml::from_str(&probe).map_err(|e| Error::Config {
            path: spec.name.clone(),
            reason: format!("generated card does not parse: {e}"),
        })?;
        let ds = crate::data::load("fashion-test", &card, false)?;
        let cfg = crate::run::RunConfig {
            quiet: true,
            ..crate::run::RunConfig::fp32()
        };
        let r = crate::eval::evaluate(&g, &spec.name, &ds, &cfg)?;
        s.fp32_top1 = r.summary.top1.unwrap_or(0.0);
        let burn_top1 = t.epochs.last().and_then(|e| e.test_top1);
        let text = card_text(spec, &recipe, &file, &s, burn_top1);
        crate::report::write_atomic(&onnx_path, &bytes)?;
        let card_path = card_dir.join(format!("{}.toml", spec.name));
        crate::report::write_atomic(&card_path, text.as_bytes())?;
        s.card = card_path.display().to_string();
        eprintln!(
            "{}: wrote {} ({} bytes) and {}; FP32 top-1 (strumlab engine) {:.2} %",
            spec.name,
            onnx_path.display(),
            bytes.len(),
            card_path.display(),
            100.0 * s.fp32_top1
        );
        out.push(s);
    }
    Ok(out)
}
