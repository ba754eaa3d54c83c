//! Mutated inputs of every other reader, beside tests/fuzz_loader.rs (ONNX): sweep specs
//! (TOML), hardware stats CSVs, IDX files, images, and the `.pth` reader (when the
//! EfficientNet weights are fetched). Each mutated input must give a value or a one-line
//! error, never a panic.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use common::{Rng, data, mutate, tmp};

/// Run `f` on `cases` mutations of `base`; every error must be one line.
fn fuzz<T>(name: &str, base: &[u8], cases: usize, f: impl Fn(&[u8]) -> strumlab::Result<T>) {
    let mut rng = Rng(0xF0CC_1A55 ^ name.len() as u64);
    let (mut ok, mut err) = (0, 0);
    for case in 0..cases {
        let m = mutate(&mut rng, base);
        match catch_unwind(AssertUnwindSafe(|| f(&m))) {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(e)) => {
                let msg = e.to_string();
                assert!(
                    !msg.contains('\n'),
                    "{name} case {case}: multi-line error: {msg}"
                );
                err += 1;
            }
            Err(_) => panic!("{name} case {case}: the reader panicked"),
        }
    }
    let peak = peak_rss_mib();
    eprintln!("{name}: {ok} read, {err} refused; peak RSS of the test process {peak} MiB");
    assert_eq!(ok + err, cases);
    // Bounded memory: the readers bound decoded sizes from headers before allocating
    // (a 20000 x 20000 PNG header, a gzip bomb of an IDX file). The peak is the whole test
    // process's (tests of this file run in parallel), so the bound is coarse: far below
    // what one unbounded allocation (GBs) would reach.
    assert!(
        peak < MAX_PEAK_MIB,
        "{name}: peak RSS {peak} MiB >= {MAX_PEAK_MIB} MiB"
    );
}

const MAX_PEAK_MIB: u64 = 1536;

/// Peak resident memory of this process so far (Linux `VmHWM`), MiB; 0 where unknown.
fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

fn at(dir: &Path, file: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(file);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn mutated_sweep_specs() {
    let base = std::fs::read(data("../reproduce.toml")).unwrap();
    fuzz("sweep spec", &base, 1500, |b| {
        let text = String::from_utf8_lossy(b);
        let s = strumlab::sweep::SweepSpec::parse(&text, "spec.toml")?;
        s.expand("spec.toml")
    });
}

#[test]
fn mutated_stats_csvs() {
    let dir = tmp("stats");
    let csv = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("results/eval/mnist-8-mip2q-l4.csv"),
    )
    .unwrap();
    fuzz("stats csv", &csv, 800, |b| {
        strumlab::hw::read_stats(&at(&dir, "s.csv", b), "mip2q-b8-l4")
    });
}

#[test]
fn mutated_idx_files() {
    let dir = tmp("idx");
    // the first 50 images of the MNIST test set as one raw IDX file, and gzipped
    let full = strumlab::data::idx::read_idx_u8(&data("mnist/t10k-images-idx3-ubyte.gz")).unwrap();
    let mut raw = vec![0, 0, 8, 3];
    for d in [50u32, 28, 28] {
        raw.extend(d.to_be_bytes());
    }
    raw.extend(&full.data[..50 * 784]);
    fuzz("idx", &raw, 800, |b| {
        strumlab::data::idx::read_idx_u8(&at(&dir, "x-images-idx3-ubyte", b))
    });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    let gz = gz.finish().unwrap();
    fuzz("idx.gz", &gz, 800, |b| {
        strumlab::data::idx::read_idx_u8(&at(&dir, "x-images-idx3-ubyte.gz", b))
    });
}

#[test]
fn mutated_images() {
    let dir = tmp("img");
    let card = strumlab::data::ModelCard::plain(Path::new("x.onnx"), &[1, 3, 32, 32]);
    let mut png = Vec::new();
    image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 90]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    fuzz("png", &png, 600, |b| {
        strumlab::data::images::preprocess(&at(&dir, "x.png", b), &card)
    });
    let mut jpg = Vec::new();
    image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 90]))
        .write_to(
            &mut std::io::Cursor::new(&mut jpg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    fuzz("jpeg", &jpg, 600, |b| {
        strumlab::data::images::preprocess(&at(&dir, "x.jpg", b), &card)
    });
}

#[test]
fn mutated_pth_state_dicts() {
    let p = strumlab::data::cache_dir().join("efficientnet-lite0.pth");
    let Ok(base) = std::fs::read(&p) else {
        assert!(
            std::env::var_os("STRUMLAB_REQUIRE_ASSETS").is_none(),
            "STRUMLAB_REQUIRE_ASSETS is set but {} is missing",
            p.display()
        );
        eprintln!("skipping: {} not fetched", p.display());
        return;
    };
    let dir = tmp("pth");
    // mutations of the pickle header (the first 64 KiB hold it), the storages kept after it
    let head = base.len().min(64 << 10);
    let mut rng = Rng(0x9A1D);
    for case in 0..60 {
        let mut m = mutate(&mut rng, &base[..head]);
        m.extend_from_slice(&base[head..]);
        let f = at(&dir, "x.pth", &m);
        match catch_unwind(|| strumlab::model::pth::read_state_dict(&f)) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => assert!(!e.to_string().contains('\n'), "case {case}: {e}"),
            Err(_) => panic!("pth case {case}: the reader panicked"),
        }
    }
}
