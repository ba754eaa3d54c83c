//! The bad inputs of the "any CNN a user brings" issue, each run as a child process of the
//! binary (the release build under the test command, `STRUMLAB_RELEASE_BIN`): a one-line
//! error (exit 2) or the documented behaviour, and a peak resident set below 1 GiB
//! (ru_maxrss of that child). docs/robustness.md lists them.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Measured, data, f32_tensor, idx_gz, model, node, strumlab_measured, tmp};

const GIB: u64 = 1 << 30;
const LIMIT: Duration = Duration::from_secs(300);

/// Run, check the peak memory, return the outcome.
fn run(args: &[&str]) -> Measured {
    let m = strumlab_measured(args, LIMIT);
    eprintln!("peak RSS {:>5} MiB: {}", m.max_rss >> 20, args.join(" "));
    assert!(
        m.max_rss < GIB,
        "{args:?}: peak RSS {} MiB (>= 1 GiB); stderr: {}",
        m.max_rss >> 20,
        m.stderr
    );
    m
}

/// Exit 0.
fn ok(args: &[&str]) -> Measured {
    let m = run(args);
    assert_eq!(m.code, Some(0), "{args:?}: {}", m.stderr);
    m
}

/// Exit 2 with one `error:` line containing `needle`.
fn refused(args: &[&str], needle: &str) {
    let m = run(args);
    assert_eq!(m.code, Some(2), "{args:?}: {}", m.stderr);
    assert!(
        m.stderr.contains(needle),
        "{args:?}: want '{needle}' in {}",
        m.stderr
    );
    assert_eq!(
        m.stderr.trim_end().lines().count(),
        1,
        "{args:?}: {}",
        m.stderr
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// 1: an IDX file declaring just under 1 GiB with 4 MiB behind it: `--limit 5` reads five
/// images; without it the short payload is named, and neither run holds the declared size.
#[test]
fn idx_reads_only_what_limit_asks() {
    let dir = tmp("rep-idx");
    let n = 1_369_000u32; // x 784 = 1,073,296,000 bytes, under the 1 GiB cap
    let im = dir.join("big-images-idx3-ubyte.gz");
    idx_gz(&im, &[n, 28, 28], 4 << 20);
    idx_gz(&dir.join("big-labels-idx1-ubyte.gz"), &[n], 100);
    let m = ok(&[
        "eval",
        "--model",
        "mnist-8",
        "--data",
        s(&im),
        "--limit",
        "5",
        "--scheme",
        "int8",
        "-q",
    ]);
    assert!(m.stdout.contains("(5 images)"), "{}", m.stdout);
    refused(
        &["eval", "--model", "mnist-8", "--data", s(&im), "-q"],
        "IDX payload has 4194304 bytes",
    );
}

/// 2: a finite but huge weight overflows the FP32 run: eval and export refuse, naming the
/// image and the first value that overflows; export writes nothing.
#[test]
fn fp32_overflow_is_an_error_not_a_result() {
    let dir = tmp("rep-nan");
    let w: Vec<f32> = (0..10).map(|i| 0.1 * (i as f32 + 1.0)).collect();
    let bytes = model(
        13,
        ("x", &[1, 1, 28, 28]),
        "y",
        vec![
            node("Conv", "big", &["x", "k"], &["c"], vec![]),
            node("GlobalAveragePool", "gap", &["c"], &["p"], vec![]),
            node("Flatten", "flat", &["p"], &["f"], vec![]),
            node(
                "Gemm",
                "fc",
                &["f", "w"],
                &["y"],
                vec![common::int("transB", 1)],
            ),
        ],
        vec![
            f32_tensor("k", &[1, 1, 1, 1], &[3e38]),
            f32_tensor("w", &[10, 1], &w),
        ],
    );
    let p = dir.join("huge.onnx");
    std::fs::write(&p, bytes).unwrap();
    let eval = [
        "eval",
        "--model",
        s(&p),
        "--data",
        "mnist-test",
        "--limit",
        "20",
        "-q",
    ];
    refused(&eval, "are NaN or infinite (first at 'c')");
    let out = dir.join("export");
    let export = [
        "export",
        "--model",
        s(&p),
        "--data",
        "mnist-test",
        "--out",
        s(&out),
    ];
    refused(&export, "NaN or infinite");
    assert!(!out.exists(), "export created {}", out.display());
}

/// 3: a quick `--limit` sweep, then the full one into the same folder: merge leaves the
/// quick run's rows out and says so. 7 (part): rows of another schema_version are refused.
#[test]
fn quick_then_full_sweep_merges() {
    let dir = tmp("rep-sweep");
    let spec = dir.join("quick.toml");
    std::fs::write(
        &spec,
        "name = \"quick\"\n[base]\nmodel = \"mnist-8\"\nlimit = 40\nhw = \"\"\ndevice = \"cpu\"\n\
         [matrix]\nscheme = [\"int8\", \"mip2q\"]\n",
    )
    .unwrap();
    let out = dir.join("out");
    let sweep = ["sweep", s(&spec), "--out", s(&out), "-q"];
    ok(&[&sweep[..], &["--limit", "10"]].concat());
    ok(&sweep);
    let m = ok(&["merge", s(&out)]);
    assert!(
        m.stdout.contains("2 rows (0 failed runs) of 2 expected"),
        "{}",
        m.stdout
    );
    assert!(
        m.stdout
            .contains("2 rows of runs the manifest does not list"),
        "{}",
        m.stdout
    );
    let merged = std::fs::read_to_string(out.join("merged.csv")).unwrap();
    assert_eq!(merged.lines().count(), 3, "{merged}");
    // a rows file of a newer schema with the same columns: refused, not resumed
    let rows = out.join("runs.csv");
    let text = std::fs::read_to_string(&rows).unwrap();
    let (head, body) = text.split_once('\n').unwrap();
    let bumped: String = body
        .lines()
        .map(|l| format!("99{}\n", &l[l.find(',').unwrap()..]))
        .collect();
    std::fs::write(&rows, format!("{head}\n{bumped}")).unwrap();
    refused(&sweep, "schema_version 99");
    refused(&["merge", s(&out)], "schema_version 99");
    // so is an eval CSV of another schema given to hw --stats
    let layers = std::fs::read_dir(out.join("layers"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&layers).unwrap();
    let (head, body) = text.split_once('\n').unwrap();
    let bumped: String = body
        .lines()
        .map(|l| format!("99{}\n", &l[l.find(',').unwrap()..]))
        .collect();
    std::fs::write(&layers, format!("{head}\n{bumped}")).unwrap();
    refused(
        &["hw", "--model", "mnist-8", "--stats", s(&layers)],
        "eval CSV schema_version 99",
    );
}

/// The first `n` Fashion-MNIST test images as grey PNGs with a labels.txt.
fn fashion_folder(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let (_, px, labels) = strumlab::data::idx::read_idx_dataset(
        &data("fashion-mnist/t10k-images-idx3-ubyte.gz"),
        &data("fashion-mnist/t10k-labels-idx1-ubyte.gz"),
        Some(n),
    )
    .unwrap();
    let mut txt = String::new();
    for i in 0..n {
        let img = image::GrayImage::from_raw(28, 28, px[i * 784..(i + 1) * 784].to_vec()).unwrap();
        img.save(dir.join(format!("img{i:03}.png"))).unwrap();
        txt += &format!("img{i:03}.png {}\n", labels[i]);
    }
    std::fs::write(dir.join("labels.txt"), txt).unwrap();
}

/// The accuracy lines of an eval table (all but the first, which names the dataset).
fn accuracy_lines(out: &str) -> String {
    out.lines().skip(1).take(2).collect::<Vec<_>>().join("\n")
}

/// 4: a greyscale model evaluates an image folder (grey PNGs decode to the same pixels as
/// the IDX file: same accuracy and agreement); an empty folder says it has no images.
/// 7 (part): `--limit 0` means all images, as in sweeps; a labels file naming an image twice
/// is refused.
#[test]
fn grey_folders_and_limit_zero() {
    let dir = tmp("rep-grey");
    let folder = dir.join("fashion");
    fashion_folder(&folder, 48);
    let base = [
        "eval",
        "--model",
        "fmnist-resnet",
        "--scheme",
        "mip2q",
        "--no-cache",
        "-q",
    ];
    let from_folder = ok(&[&base[..], &["--data", s(&folder), "--limit", "0"]].concat());
    assert!(
        from_folder.stdout.contains("(48 images)"),
        "{}",
        from_folder.stdout
    );
    let from_idx = ok(&[&base[..], &["--data", "fashion-test", "--limit", "48"]].concat());
    assert_eq!(
        accuracy_lines(&from_folder.stdout),
        accuracy_lines(&from_idx.stdout)
    );
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    refused(
        &[&base[..], &["--data", s(&empty)]].concat(),
        "no .jpg/.jpeg/.png images",
    );
    let mut txt = std::fs::read_to_string(folder.join("labels.txt")).unwrap();
    txt += "img003.png 4\n";
    std::fs::write(folder.join("labels.txt"), txt).unwrap();
    refused(
        &[&base[..], &["--data", s(&folder)]].concat(),
        "line 49: 'img003.png' is labelled twice (first on line 4)",
    );
}

/// 5: a PNG far larger than any photo is refused from its header; one of 64 Mpixel
/// (the largest accepted) is decoded within the memory bound. 6: a FIFO named like an image
/// is an error naming it, or skipped with --skip-bad-images. 7 (part): a truncated JPEG is
/// an error naming it, or skipped.
#[test]
fn huge_fifo_and_truncated_images() {
    let dir = tmp("rep-images");
    let folder = dir.join("f");
    fashion_folder(&folder, 2);
    std::fs::remove_file(folder.join("labels.txt")).unwrap();
    let base = [
        "eval",
        "--model",
        "fmnist-resnet",
        "--scheme",
        "int8",
        "--no-cache",
        "-q",
    ];
    let with = |extra: &[&'static str]| [&base[..], &["--data", s(&folder)], extra].concat();
    // 16384 x 16384 grey, ~800 KB of PNG
    let huge = folder.join("huge.png");
    image::GrayImage::new(16384, 16384).save(&huge).unwrap();
    refused(
        &with(&[]),
        "16384 x 16384 pixels, larger than the 64 Mpixel",
    );
    std::fs::remove_file(&huge).unwrap();
    image::GrayImage::new(8000, 8000).save(&huge).unwrap();
    let m = ok(&with(&[]));
    assert!(m.stdout.contains("(3 images)"), "{}", m.stdout);
    std::fs::remove_file(&huge).unwrap();
    // a FIFO: nothing ever writes to it, so opening it would block forever
    let fifo = folder.join("x.jpg");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    refused(&with(&[]), "x.jpg: not a regular file");
    let m = ok(&with(&["--skip-bad-images"]));
    assert!(m.stdout.contains("(2 images)"), "{}", m.stdout);
    assert!(m.stderr.contains("skipped:"), "{}", m.stderr);
    std::fs::remove_file(&fifo).unwrap();
    // a JPEG cut in half
    let jpg = folder.join("cut.jpg");
    image::RgbImage::from_fn(256, 256, |x, y| {
        image::Rgb([x as u8, y as u8, (x ^ y) as u8])
    })
    .save(&jpg)
    .unwrap();
    ok(&with(&[]));
    // cut inside the entropy-coded scan: decoders fill the missing rows without a word
    let b = std::fs::read(&jpg).unwrap();
    let sos = b.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap();
    std::fs::write(&jpg, &b[..sos + (b.len() - sos) / 2]).unwrap();
    refused(&with(&[]), "truncated JPEG");
    let m = ok(&with(&["--skip-bad-images"]));
    assert!(m.stdout.contains("(2 images)"), "{}", m.stdout);
}
