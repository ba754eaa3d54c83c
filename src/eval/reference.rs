//! The FP32 reference of an evaluation, computed once per (graph, images) and reused by
//! every configuration: the logits of every image, the FP32 output of every weight layer on
//! a prefix of the images (for output SQNR), and the activation scales per calibration
//! setting. Kept in memory for the life of a [`RefCache`] and on disk under
//! `<cache>/fp32-reference/`, keyed by a content hash of the graph (structure, weights,
//! constants) and of the images after preprocessing, so a resumed or repeated sweep reuses
//! them. A file that does not parse is recomputed and replaced.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use crate::cpu::engine::{self, Engine, Mode, Scales};
use crate::data::{Dataset, evict};
use crate::error::Result;
use crate::model::{Graph, Op, Tensor};
use crate::quant::config::Calib;

/// Bump when the FP32 engine's arithmetic or the file layout changes (old files are then
/// recomputed: the version is part of the key).
const REFERENCE_VERSION: u64 = 1;

/// Default images whose per-layer FP32 outputs are kept for output SQNR.
pub const SQNR_IMAGES: usize = 256;

/// Largest size of the kept per-layer outputs; the SQNR prefix shrinks to fit (at least one
/// image), so that a large model does not hold gigabytes.
pub const SQNR_BUDGET_BYTES: usize = 256 << 20;

const MAGIC: &[u8; 16] = b"strumlab-fp32ref";

/// Images normalised and run at a time by the FP32 pass (about 38 MB of input at 224x224).
const STREAM_CHUNK: usize = 64;

/// Default size cap of the on-disk reference cache (`STRUMLAB_REFERENCE_CACHE_MB` sets
/// another); past it the least recently written files are removed.
pub const CACHE_CAP_BYTES: u64 = 2 << 30;

fn cache_cap_bytes() -> u64 {
    std::env::var("STRUMLAB_REFERENCE_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(CACHE_CAP_BYTES, |mb| mb << 20)
}

/// 64-bit FNV-1a over 8-byte words (a cache key, not a digest).
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(0x0000_0100_0000_01b3);
    }
    fn bytes(&mut self, b: &[u8]) {
        self.word(b.len() as u64);
        for c in b.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.word(u64::from_le_bytes(w));
        }
    }
    fn f32s(&mut self, v: &[f32]) {
        self.word(v.len() as u64);
        for c in v.chunks(2) {
            let hi = c.get(1).map_or(0, |x| x.to_bits() as u64);
            self.word(c[0].to_bits() as u64 | (hi << 32));
        }
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

/// Content hash of a graph: structure, attributes, weights and constants.
fn hash_graph(h: &mut Fnv, g: &Graph) {
    h.str(&g.input);
    h.str(&format!("{:?}{:?}", g.input_shape, g.outputs));
    for n in &g.nodes {
        h.str(&n.name);
        h.str(&n.output);
        for i in &n.inputs {
            h.str(i);
        }
        match &n.op {
            Op::Conv(c) => {
                let attrs = (c.strides, c.dilations, c.pads, c.group, &c.weight.shape);
                h.str(&format!("conv{attrs:?}"));
                h.f32s(&c.weight.data);
                h.f32s(&c.bias);
            }
            Op::Dense(d) => {
                h.str(&format!("dense{:?}", d.weight.shape));
                h.f32s(&d.weight.data);
                h.f32s(&d.bias);
            }
            other => h.str(&format!("{other:?}")),
        }
    }
}

/// The FP32 logits of every image and the per-layer FP32 outputs of the first
/// `sqnr_images` images.
pub struct Fp32Reference {
    pub images: usize,
    /// values of the first graph output per image
    pub classes: usize,
    logits: Vec<f32>,
    /// images whose per-layer outputs are kept
    pub sqnr_images: usize,
    /// `[image][weight layer]` FP32 outputs
    layer_out: Vec<Vec<Vec<f32>>>,
}

impl Fp32Reference {
    pub fn logits(&self, i: usize) -> &[f32] {
        &self.logits[i * self.classes..(i + 1) * self.classes]
    }
    /// The FP32 outputs of every weight layer for image `i`, if `i` is in the SQNR prefix.
    pub fn layer_outputs(&self, i: usize) -> Option<&[Vec<f32>]> {
        self.layer_out.get(i).map(|v| &v[..])
    }

    /// One FP32 pass over `data` (fast kernels, rayon over images).
    fn compute(graph: &Graph, data: &Dataset, sqnr_images: usize, quiet: bool) -> Result<Self> {
        let fp = Engine::new(graph, Mode::Fp32, None, None)?;
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
        let k = sqnr_images
            .min(data.len())
            .min((SQNR_BUDGET_BYTES / per_image_bytes.max(1)).max(1));
        let progress = crate::progress::Progress::new("fp32 reference", data.len(), quiet);
        let per = data.per_image();
        let mut logits = Vec::new();
        let mut layer_out = Vec::with_capacity(k);
        let mut classes = 0;
        // chunks of images read and normalised at a time: memory stays bounded
        for a in (0..data.len()).step_by(STREAM_CHUNK) {
            let b = (a + STREAM_CHUNK).min(data.len());
            let x = data.images(a, b)?;
            let runs: Vec<(Vec<f32>, Vec<Vec<f32>>)> = (a..b)
                .into_par_iter()
                .map(|i| {
                    let (mut out, obs) = fp.run(&x[(i - a) * per..(i - a + 1) * per], i < k)?;
                    progress.inc();
                    let layers = obs.into_iter().map(|o| o.output).collect();
                    Ok((out.swap_remove(0), layers))
                })
                .collect::<Result<_>>()?;
            for (l, layers) in runs {
                classes = l.len();
                logits.extend(l);
                if !layers.is_empty() {
                    layer_out.push(layers);
                }
            }
        }
        Ok(Fp32Reference {
            images: data.len(),
            classes,
            logits,
            sqnr_images: k,
            layer_out,
        })
    }

    fn to_bytes(&self, key: u64) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        let layers = self.layer_out.first().map_or(0, |v| v.len());
        for w in [key, self.images as u64, self.classes as u64]
            .into_iter()
            .chain([self.sqnr_images as u64, layers as u64])
        {
            b.extend(w.to_le_bytes());
        }
        if let Some(first) = self.layer_out.first() {
            for l in first {
                b.extend((l.len() as u64).to_le_bytes());
            }
        }
        let vals = self.layer_out.iter().flatten().flatten();
        for v in self.logits.iter().chain(vals) {
            b.extend(v.to_le_bytes());
        }
        b
    }

    /// Parse a file written by `to_bytes`; `None` for another key or a malformed file.
    fn from_bytes(b: &[u8], key: u64) -> Option<Self> {
        let mut pos = MAGIC.len();
        (b.get(..pos)? == MAGIC).then_some(())?;
        let mut word = || -> Option<usize> {
            let w = u64::from_le_bytes(b.get(pos..pos + 8)?.try_into().ok()?);
            pos += 8;
            usize::try_from(w).ok()
        };
        let file_key = word()?;
        let (images, classes, k, layers) = (word()?, word()?, word()?, word()?);
        let sizes: Vec<usize> = (0..layers).map(|_| word()).collect::<Option<_>>()?;
        (file_key as u64 == key && k <= images).then_some(())?;
        let count = images.checked_mul(classes)?.checked_add(
            k.checked_mul(sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s))?)?,
        )?;
        let body = b.get(pos..)?;
        (body.len() == count.checked_mul(4)?).then_some(())?;
        let mut vals = body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        let logits: Vec<f32> = vals.by_ref().take(images * classes).collect();
        let layer_out = (0..k)
            .map(|_| {
                sizes
                    .iter()
                    .map(|&s| vals.by_ref().take(s).collect())
                    .collect()
            })
            .collect();
        Some(Fp32Reference {
            images,
            classes,
            logits,
            sqnr_images: k,
            layer_out,
        })
    }
}

/// Activation-calibration settings (the first `images` images of the dataset).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CalibKey {
    pub images: usize,
    pub method: Calib,
    pub percentile: f32,
}

/// FP32 references and activation scales computed so far, in memory and (when `dir` is
/// set) on disk. `fp32_passes` / `calib_passes` count what this cache had to compute.
#[derive(Default)]
pub struct RefCache {
    pub dir: Option<PathBuf>,
    refs: HashMap<u64, Arc<Fp32Reference>>,
    scales: HashMap<u64, Arc<Scales>>,
    pub fp32_passes: usize,
    pub calib_passes: usize,
    warned: bool,
    /// Evaluations through this cache skip the per-layer output SQNR (a search, which never
    /// reads it: its references then keep logits only).
    pub no_sqnr: bool,
}

impl RefCache {
    /// A cache in memory only.
    pub fn memory() -> Self {
        RefCache::default()
    }
    /// The same cache for evaluations that skip the per-layer output SQNR.
    pub fn without_sqnr(mut self) -> Self {
        self.no_sqnr = true;
        self
    }
    /// A cache backed by `<asset cache>/fp32-reference/` (`data::cache_dir`).
    pub fn on_disk() -> Self {
        Self::in_dir(crate::data::cache_dir().join("fp32-reference"))
    }
    /// A cache backed by `dir`.
    pub fn in_dir(dir: PathBuf) -> Self {
        RefCache {
            dir: Some(dir),
            ..Default::default()
        }
    }

    fn warn(&mut self, path: &Path, e: impl std::fmt::Display) {
        if !self.warned {
            eprintln!(
                "note: FP32 reference cache not written ({}: {e}); it stays in memory",
                path.display()
            );
            self.warned = true;
        }
    }

    fn read(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.as_ref()?.join(name)).ok()
    }

    fn write(&mut self, name: &str, bytes: &[u8]) {
        let Some(dir) = self.dir.clone() else { return };
        let path = dir.join(name);
        let r = std::fs::create_dir_all(&dir)
            .map_err(|e| e.to_string())
            .and_then(|_| crate::report::write_atomic(&path, bytes).map_err(|e| e.to_string()));
        if let Err(e) = r {
            self.warn(&path, e);
            return;
        }
        evict(&dir, &path, cache_cap_bytes());
    }

    /// The FP32 reference of `graph` on `data`: from memory, from disk, or one FP32 pass.
    pub fn reference(
        &mut self,
        graph: &Graph,
        data: &Dataset,
        sqnr_images: usize,
        quiet: bool,
    ) -> Result<Arc<Fp32Reference>> {
        let mut h = Fnv::new();
        h.word(REFERENCE_VERSION);
        h.word(sqnr_images as u64);
        hash_graph(&mut h, graph);
        h.word(data.content_key());
        let key = h.0;
        if let Some(r) = self.refs.get(&key) {
            return Ok(r.clone());
        }
        let name = format!("{key:016x}.bin");
        let r = match self
            .read(&name)
            .and_then(|b| Fp32Reference::from_bytes(&b, key))
        {
            Some(r) => r,
            None => {
                self.fp32_passes += 1;
                let r = Fp32Reference::compute(graph, data, sqnr_images, quiet)?;
                self.write(&name, &r.to_bytes(key));
                r
            }
        };
        let r = Arc::new(r);
        self.refs.insert(key, r.clone());
        Ok(r)
    }

    /// Per-tensor activation scales from the first `c.images` images of `data`
    /// (`cpu::engine::calibrate`): from memory, from disk, or one calibration pass.
    pub fn scales(&mut self, graph: &Graph, data: &Dataset, c: CalibKey) -> Result<Arc<Scales>> {
        let n = c.images.clamp(1, data.len());
        let mut shape = data.shape.clone();
        shape[0] = n;
        let mut h = Fnv::new();
        h.word(REFERENCE_VERSION);
        h.str(&format!("{:?}{}", c.method, c.percentile.to_bits()));
        hash_graph(&mut h, graph);
        h.word(data.range(0, n).content_key());
        let key = h.0;
        if let Some(s) = self.scales.get(&key) {
            return Ok(s.clone());
        }
        let name = format!("{key:016x}.scales.json");
        let disk = self
            .read(&name)
            .and_then(|b| serde_json::from_slice::<Scales>(&b).ok());
        let s = match disk {
            Some(s) => s,
            None => {
                self.calib_passes += 1;
                let calib = Tensor::new(shape, data.images(0, n)?);
                let s = engine::calibrate(graph, &calib, c.method, c.percentile)?;
                let json = serde_json::to_vec(&s).expect("scales serialize");
                self.write(&name, &json);
                s
            }
        };
        let s = Arc::new(s);
        self.scales.insert(key, s.clone());
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_file_round_trips_and_rejects_other_keys() {
        let r = Fp32Reference {
            images: 3,
            classes: 2,
            logits: vec![1.0, -2.0, 0.5, 3.0, f32::MIN, 7.25],
            sqnr_images: 2,
            layer_out: vec![
                vec![vec![1.0, 2.0, 3.0], vec![4.0]],
                vec![vec![5.0, 6.0, 7.0], vec![8.0]],
            ],
        };
        let b = r.to_bytes(42);
        let back = Fp32Reference::from_bytes(&b, 42).expect("parses");
        assert_eq!(back.logits, r.logits);
        assert_eq!(back.layer_out, r.layer_out);
        assert_eq!(back.logits(2), &[f32::MIN, 7.25]);
        assert!(Fp32Reference::from_bytes(&b, 43).is_none());
        assert!(Fp32Reference::from_bytes(&b[..b.len() - 1], 42).is_none());
        assert!(Fp32Reference::from_bytes(&b[..20], 42).is_none());
    }

    #[test]
    fn eviction_keeps_the_cache_under_its_cap_and_the_newest_file() {
        let dir = std::env::temp_dir().join(format!("strumlab-evict-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut paths = Vec::new();
        for i in 0..5 {
            let p = dir.join(format!("{i}.bin"));
            std::fs::write(&p, vec![0u8; 1000]).unwrap();
            // distinct modification times, oldest first
            let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i);
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(t)
                .unwrap();
            paths.push(p);
        }
        evict(&dir, &paths[0], 2500);
        let left: Vec<bool> = paths.iter().map(|p| p.exists()).collect();
        // the kept file stays although oldest; the oldest others go until 2,000 <= 2,500
        assert_eq!(left, [true, false, false, false, true]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hash_sees_one_changed_weight() {
        let (mut g, _) = crate::zoo::resolve("mnist-8", &Default::default()).expect("mnist-8");
        let key = |g: &Graph| {
            let mut h = Fnv::new();
            hash_graph(&mut h, g);
            h.0
        };
        let k0 = key(&g);
        for n in &mut g.nodes {
            if let Op::Conv(c) = &mut n.op {
                c.weight.data[7] = f32::from_bits(c.weight.data[7].to_bits() ^ 1);
                break;
            }
        }
        assert_ne!(k0, key(&g));
    }
}
