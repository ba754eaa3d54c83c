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

pub use super::fp32ref::Fp32Reference;
use crate::cpu::engine::{self, Scales};
use crate::data::{Dataset, evict};
use crate::error::{Error, Result};
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

/// Images normalised and run at a time by the FP32 pass (about 38 MB of input at 224x224).
pub(super) const STREAM_CHUNK: usize = 64;

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

    /// A new temporary file in the cache folder for `name` (`None`: memory only, or the
    /// folder cannot be written, with a note).
    fn new_file(&mut self, name: &str) -> Option<(std::fs::File, PathBuf)> {
        let dir = self.dir.clone()?;
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // unique per process and per call: threads may compute the same reference at once
        let tmp = dir.join(format!(".{name}.{}-{seq}.tmp", std::process::id()));
        let f = std::fs::create_dir_all(&dir).and_then(|_| {
            std::fs::File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
        });
        match f {
            Ok(f) => Some((f, tmp)),
            Err(e) => {
                self.warn(&tmp, e);
                None
            }
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
        let on_disk = self.dir.as_ref().map(|d| d.join(&name));
        if let Some(r) = on_disk.as_ref().and_then(|p| Fp32Reference::open(p, key)) {
            let r = Arc::new(r);
            self.refs.insert(key, r.clone());
            return Ok(r);
        }
        self.fp32_passes += 1;
        let r = match self.new_file(&name) {
            Some((file, tmp)) => {
                let r = Fp32Reference::compute(
                    graph,
                    data,
                    sqnr_images,
                    quiet,
                    Some((file, &tmp, key)),
                );
                let dir = self.dir.clone().expect("a file implies a folder");
                let fin = dir.join(&name);
                match r.and_then(|r| {
                    std::fs::rename(&tmp, &fin).map_err(|e| Error::Output {
                        path: fin.display().to_string(),
                        reason: e.to_string(),
                    })?;
                    Ok(r)
                }) {
                    Ok(r) => {
                        evict(&dir, &fin, cache_cap_bytes());
                        r
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e);
                    }
                }
            }
            None => Fp32Reference::compute(graph, data, sqnr_images, quiet, None)?,
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
