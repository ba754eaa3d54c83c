//! The preprocessed-image cache: every image of a folder decoded, resized and cropped once
//! into raw 0..255 pixels in the model's input layout, one file per (file contents in order,
//! card preprocessing), so that the second configuration of a sweep (and every later run)
//! decodes nothing. Built by a bounded parallel pipeline (chunks of [`CHUNK`] images decoded
//! in parallel and appended in order), so memory does not grow with the folder.
//!
//! Location: `<asset cache>/preprocessed/` (`data::cache_dir`); size cap
//! [`CACHE_CAP_BYTES`] (`STRUMLAB_IMAGE_CACHE_MB` sets another; least recently written files
//! go first). With `cache: false` (`--no-cache`) the pixels go to an unnamed temporary file
//! that disappears with the process.
//!
//! File layout (little-endian): `MAGIC`, key, files listed, bytes per image, images kept
//! (u64 each); the kept images' pixels back to back; the index (u32) of each kept image in
//! the listing. Images that fail to decode are kept out only with `skip_bad`.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::ModelCard;
use super::images::preprocess_u8;
use super::store::{Norm, Pixels, Store};
use crate::error::{Error, Result};

/// Bump when decoding, resizing or the file layout changes (old files are then rebuilt).
const PIXELS_VERSION: u64 = 1;
const MAGIC: &[u8; 16] = b"strumlab-pixels1";
const HEADER: u64 = 16 + 4 * 8;
/// Images decoded in parallel before they are appended (about 38 MB at 224x224x3).
pub const CHUNK: usize = 256;
/// Default size cap of the preprocessed-image cache (ImageNet-val at 224x224 is 7.5 GB).
pub const CACHE_CAP_BYTES: u64 = 16 << 30;

/// How a folder is loaded.
#[derive(Clone, Debug)]
pub struct LoadOpts {
    pub skip_bad: bool,
    /// Keep the first `limit` images (in path order); only those are read. `Some(0)` means
    /// all, as the sweep key `limit = 0` and every command's `--limit 0`.
    pub limit: Option<usize>,
    /// Use the on-disk cache (`false`: `--no-cache`).
    pub cache: bool,
    /// Hide progress lines (presentation only: never part of a key).
    pub quiet: bool,
}

impl Default for LoadOpts {
    fn default() -> Self {
        LoadOpts {
            skip_bad: false,
            limit: None,
            cache: true,
            quiet: false,
        }
    }
}

pub fn dir() -> PathBuf {
    super::cache_dir().join("preprocessed")
}

fn cap_bytes() -> u64 {
    std::env::var("STRUMLAB_IMAGE_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(CACHE_CAP_BYTES, |mb| mb << 20)
}

/// The key of a folder's pixels: every file's contents in order and the card's
/// preprocessing (normalisation is applied at read time and is not part of it).
fn key(files: &[PathBuf], card: &ModelCard, quiet: bool) -> Result<u64> {
    let progress = crate::progress::Progress::new("hashing images", files.len(), quiet);
    let hashes: Vec<u64> = files
        .par_iter()
        .map(|p| {
            let b = std::fs::read(p).map_err(|source| Error::Io {
                path: p.clone(),
                source,
            })?;
            progress.inc();
            Ok(crate::hash::fnv1a64(&b))
        })
        .collect::<Result<_>>()?;
    let prep = format!(
        "{PIXELS_VERSION}{:?}{:?}{:?}{:?}{}{}{}",
        card.channels,
        card.size,
        card.resize_shorter,
        card.resize,
        card.center_crop,
        card.bgr,
        card.nhwc
    );
    let mut words: Vec<u8> = prep.into_bytes();
    for h in hashes {
        words.extend(h.to_le_bytes());
    }
    Ok(crate::hash::fnv1a64(&words))
}

/// The pixels of `files` (decoded now or read from the cache) and the listing index of
/// each image kept.
pub fn load(files: &[PathBuf], card: &ModelCard, o: &LoadOpts) -> Result<(Store, Vec<usize>)> {
    let per_image = card.channels * card.size[0] * card.size[1];
    let key = key(files, card, o.quiet)?;
    let path = dir().join(format!("{key:016x}.u8"));
    if o.cache
        && let Some(hit) = open(&path, key, files.len(), per_image)
    {
        let (file, kept) = hit;
        report_skipped(files, &kept, card, o.skip_bad)?;
        return Ok((store(file, path, kept.len(), per_image, card, key), kept));
    }
    let (file, tmp) = create(o.cache)?;
    let built = build(&file, &tmp, files, card, o, key, per_image);
    let kept = match built {
        Ok(k) => k,
        Err(e) => {
            if let Some(t) = &tmp {
                let _ = std::fs::remove_file(t);
            }
            return Err(e);
        }
    };
    let final_path = match tmp {
        Some(t) => match std::fs::rename(&t, &path) {
            Ok(()) => {
                super::evict(&dir(), &path, cap_bytes());
                path
            }
            Err(_) => t,
        },
        None => std::env::temp_dir().join("(unnamed temporary file)"),
    };
    Ok((
        store(file, final_path, kept.len(), per_image, card, key),
        kept,
    ))
}

fn store(
    file: File,
    path: PathBuf,
    n: usize,
    per_image: usize,
    card: &ModelCard,
    key: u64,
) -> Store {
    Store {
        pixels: Pixels::File {
            file,
            path,
            offset: HEADER,
        },
        per_image,
        n,
        norm: Norm::of(card),
        key,
    }
}

/// Open a cache file and check its header and index; `None` when absent or not ours.
fn open(path: &Path, key: u64, files: usize, per_image: usize) -> Option<(File, Vec<usize>)> {
    let f = File::open(path).ok()?;
    let mut head = [0u8; HEADER as usize];
    f.read_exact_at(&mut head, 0).ok()?;
    let word = |i: usize| u64::from_le_bytes(head[16 + 8 * i..24 + 8 * i].try_into().unwrap());
    let ok = &head[..16] == MAGIC
        && word(0) == key
        && word(1) == files as u64
        && word(2) == per_image as u64;
    let kept = usize::try_from(word(3))
        .ok()
        .filter(|&k| ok && k <= files)?;
    let at = HEADER + (kept * per_image) as u64;
    let len = f.metadata().ok()?.len();
    (len == at + 4 * kept as u64).then_some(())?;
    let mut idx = vec![0u8; 4 * kept];
    f.read_exact_at(&mut idx, at).ok()?;
    let kept: Vec<usize> = idx
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as usize)
        .collect();
    kept.iter().all(|&i| i < files).then_some((f, kept))
}

/// A cached folder with images left out (built with `skip_bad`): report them again, or
/// fail on the first one (decoding it again for its message) when bad images are fatal.
fn report_skipped(
    files: &[PathBuf],
    kept: &[usize],
    card: &ModelCard,
    skip_bad: bool,
) -> Result<()> {
    let mut k = kept.iter().peekable();
    for (i, p) in files.iter().enumerate() {
        if k.peek() == Some(&&i) {
            k.next();
            continue;
        }
        let e = preprocess_u8(p, card).err().unwrap_or_else(|| Error::Data {
            path: p.display().to_string(),
            reason: "left out of the preprocessed-image cache".into(),
        });
        if !skip_bad {
            return Err(e);
        }
        eprintln!("skipped: {e}");
    }
    Ok(())
}

/// A file to build into: a temporary name in the cache folder (renamed when complete), or
/// an unnamed temporary file (`--no-cache`, or a cache folder that cannot be created).
fn create(cache: bool) -> Result<(File, Option<PathBuf>)> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!(".build-{}-{seq}.tmp", std::process::id());
    let d = dir();
    if cache {
        match std::fs::create_dir_all(&d) {
            Ok(()) => {
                let p = d.join(&name);
                let f = rw(&p)?;
                return Ok((f, Some(p)));
            }
            Err(e) => eprintln!(
                "note: preprocessed-image cache not written ({}: {e}); using a temporary file",
                d.display()
            ),
        }
    }
    let p = std::env::temp_dir().join(format!("strumlab-pixels{name}"));
    let f = rw(&p)?;
    let _ = std::fs::remove_file(&p); // unnamed: gone when the process ends
    Ok((f, None))
}

fn rw(p: &Path) -> Result<File> {
    File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(p)
        .map_err(|e| write_error(p, e, 0))
}

/// A write error in one line; a full disk says what to do about it.
fn write_error(p: &Path, e: std::io::Error, bytes: u64) -> Error {
    let reason = if e.kind() == std::io::ErrorKind::StorageFull {
        format!(
            "disk full writing preprocessed images ({} MB needed): free space, move the cache \
             with STRUMLAB_CACHE (or TMPDIR with --no-cache), or use --limit",
            bytes >> 20
        )
    } else {
        format!("cannot write preprocessed images ({e})")
    };
    Error::Output {
        path: p.display().to_string(),
        reason,
    }
}

/// Decode `files` chunk by chunk in parallel and append them in order; the index of the
/// images kept.
fn build(
    f: &File,
    tmp: &Option<PathBuf>,
    files: &[PathBuf],
    card: &ModelCard,
    o: &LoadOpts,
    key: u64,
    per_image: usize,
) -> Result<Vec<usize>> {
    let shown = tmp.clone().unwrap_or_else(std::env::temp_dir);
    let need = HEADER + (files.len() * (per_image + 4)) as u64;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let werr = |e| write_error(&shown, e, need);
    w.write_all(&[0u8; HEADER as usize]).map_err(werr)?;
    let progress = crate::progress::Progress::new("decoding images", files.len(), o.quiet);
    let mut kept = Vec::with_capacity(files.len());
    for (c, chunk) in files.chunks(CHUNK).enumerate() {
        progress.check()?;
        let px: Vec<Result<Vec<u8>>> = chunk
            .par_iter()
            .map(|p| {
                let r = preprocess_u8(p, card);
                progress.inc();
                r
            })
            .collect();
        for (j, r) in px.into_iter().enumerate() {
            match r {
                Ok(v) => {
                    w.write_all(&v).map_err(werr)?;
                    kept.push(c * CHUNK + j);
                }
                Err(e) if o.skip_bad => eprintln!("skipped: {e}"),
                Err(e) => return Err(e),
            }
        }
    }
    for &i in &kept {
        w.write_all(&(i as u32).to_le_bytes()).map_err(werr)?;
    }
    w.flush().map_err(werr)?;
    drop(w);
    let mut head = MAGIC.to_vec();
    for v in [key, files.len() as u64, per_image as u64, kept.len() as u64] {
        head.extend(v.to_le_bytes());
    }
    f.write_all_at(&head, 0).map_err(werr)?;
    Ok(kept)
}
