//! Sweeps: spec checking and expansion, sharding, the runner's rows (accuracy and hardware
//! columns), resume after SIGKILL, merge, and the figures.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::strumlab;
use strumlab::sweep::{self, RunRow, Shard, SweepSpec};

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("strumlab-sweep-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn rows(path: &Path) -> Vec<RunRow> {
    sweep::read_rows(path, false).unwrap()
}

const SMALL: &str = r#"
name = "small"
[base]
model = "mnist-8"
device = "cpu"
limit = 300
[matrix]
scheme = ["int8", "mip2q", "dliq"]
low = [4, 9]
"#;

#[test]
fn unknown_keys_are_named() {
    let bad = "name = \"x\"\n[matrix]\nblok = [8]\n";
    let e = SweepSpec::parse(bad, "bad.toml").unwrap_err().to_string();
    assert!(e.contains("blok") && e.contains("bad.toml"), "{e}");
    let bad = "name = \"x\"\ncolour = 1\n";
    let e = SweepSpec::parse(bad, "bad.toml").unwrap_err().to_string();
    assert!(e.contains("colour"), "{e}");
    let bad = "name = \"x\"\n[base]\nblock = \"eight\"\n";
    let e = SweepSpec::parse(bad, "bad.toml").unwrap_err().to_string();
    assert!(e.contains("block") || e.contains("invalid type"), "{e}");
    let bad = "name = \"x\"\n[matrix]\nblock = 8\n";
    let e = SweepSpec::parse(bad, "bad.toml").unwrap_err().to_string();
    assert!(e.contains("list"), "{e}");
}

#[test]
fn expansion_is_deterministic_deduplicated_and_ids_are_stable() {
    let s = SweepSpec::parse(SMALL, "small").unwrap();
    let runs = s.expand("small").unwrap();
    // int8 ignores L: one run; mip2q and dliq: L = 4 and the invalid L = 9 > B.
    assert_eq!(runs.len(), 5);
    assert_eq!(runs[0].quant.scheme.as_str(), "int8");
    assert_eq!(
        runs.iter().filter(|r| r.invalid.is_some()).count(),
        2,
        "L = 9 > B = 8 is an invalid run"
    );
    let idx: Vec<usize> = runs.iter().map(|r| r.index).collect();
    assert_eq!(idx, (0..5).collect::<Vec<_>>());
    // The same runs written differently (a matrix value moved to the base, defaults spelled
    // out, keys reordered) get the same ids.
    let other = r#"
name = "other"
[base]
device = "cpu"
block = 8
limit = 300
model = "mnist-8"
mode = "integer"
[matrix]
low = [4, 9]
scheme = ["int8", "mip2q", "dliq"]
"#;
    let o = SweepSpec::parse(other, "other")
        .unwrap()
        .expand("other")
        .unwrap();
    let a: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    let b: Vec<&str> = o.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(a, b);
    // Pinned: ids must not change between versions, or resumes would redo finished runs.
    // (INT8 without hardware columns keeps its version-1 id.)
    let one = SweepSpec::parse("name = \"p\"\n[base]\nscheme = \"fp32\"\n", "p")
        .unwrap()
        .expand("p")
        .unwrap();
    assert_eq!(one[0].key, r#"{"mode":"fp32","scheme":"fp32"}"#);
    assert_eq!(one[0].id, "198ef3c50663");
    // Runs with hardware columns carry the FlexNN model version (3: loop-nest mapper,
    // network-level memory, static PE slowdown, measured dynamic DLIQ), so old cost columns
    // are never reused.
    let hw = SweepSpec::parse("name = \"p\"\n[base]\nscheme = \"int8\"\n", "p")
        .unwrap()
        .expand("p")
        .unwrap();
    assert_eq!(hw[0].key, r#"{"hw_model":3,"scheme":"int8"}"#);
    // StruM ids carry the quantizer version (2: anchored MIP2Q window, khwc blocks), so a
    // directory of version-1 rows recomputes them instead of mixing.
    let two = SweepSpec::parse("name = \"p\"\n[base]\nscheme = \"mip2q\"\n", "p")
        .unwrap()
        .expand("p")
        .unwrap();
    assert_eq!(
        two[0].key,
        r#"{"hw_model":3,"quantizer":2,"scheme":"mip2q"}"#
    );
}

#[test]
fn exclude_rules_and_low_frac() {
    let spec = r#"
name = "ex"
[matrix]
scheme = ["mip2q", "dliq"]
block = [8, 16]
low_frac = [0.25, 0.3]
[[exclude]]
scheme = "dliq"
block = [16]
"#;
    let runs = SweepSpec::parse(spec, "ex").unwrap().expand("ex").unwrap();
    assert_eq!(
        runs.len(),
        6,
        "2 schemes x 2 B x 2 fractions minus dliq B=16"
    );
    assert!(
        !runs
            .iter()
            .any(|r| r.quant.scheme.as_str() == "dliq" && r.quant.block == 16)
    );
    for r in &runs {
        let frac_ok = r.invalid.is_none();
        // 0.25 x 8 = 2 and 0.25 x 16 = 4 are whole; 0.3 x B is not.
        if frac_ok {
            assert_eq!(r.quant.low * 4, r.quant.block);
        } else {
            assert!(r.invalid.as_ref().unwrap().contains("low_frac"));
        }
    }
}

#[test]
fn shards_partition_the_runs() {
    let runs = SweepSpec::parse(SMALL, "s").unwrap().expand("s").unwrap();
    for n in 1..=6 {
        let mut seen = vec![0; runs.len()];
        for i in 0..n {
            let s: Shard = format!("{i}/{n}").parse().unwrap();
            for r in &runs {
                if s.owns(r.index) {
                    seen[r.index] += 1;
                }
            }
        }
        assert!(seen.iter().all(|&c| c == 1), "n = {n}: {seen:?}");
    }
    assert!("4/4".parse::<Shard>().is_err());
    assert!("1/0".parse::<Shard>().is_err());
    assert!("x".parse::<Shard>().is_err());
}

/// Two shards, then merge: every run exactly once, accuracy and hardware columns filled,
/// the invalid runs as error rows; a missing row makes merge fail.
#[test]
fn sharded_sweep_then_merge() {
    let dir = tmp("shards");
    let spec = dir.join("small.toml");
    std::fs::write(&spec, SMALL).unwrap();
    let out = dir.join("out");
    for s in ["0/2", "1/2"] {
        let (rc, o, e) = strumlab(&[
            "sweep",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--shard",
            s,
            "-q",
        ]);
        assert_eq!(rc, 0, "{o}{e}");
    }
    let (rc, o, e) = strumlab(&["merge", out.to_str().unwrap()]);
    assert_eq!(rc, 0, "{o}{e}");
    let merged = rows(&out.join("merged.csv"));
    let expected = SweepSpec::parse(SMALL, "s").unwrap().expand("s").unwrap();
    assert_eq!(merged.len(), expected.len());
    for (r, x) in merged.iter().zip(&expected) {
        assert_eq!(r.run_id, x.id);
        assert_eq!(r.schema_version, sweep::SWEEP_CSV_SCHEMA);
        if x.invalid.is_some() {
            assert_eq!(r.status, "error");
            assert!(r.error.contains("9"), "{}", r.error);
            continue;
        }
        assert_eq!(r.status, "ok", "{}", r.error);
        assert_eq!(r.images, 300);
        let top1 = r.top1_pct.unwrap();
        assert!(top1 > 90.0 && top1 <= 100.0, "{top1}");
        assert!(r.agreement_top1_pct.unwrap() > 95.0);
        assert!(
            out.join("layers")
                .join(format!("{}.csv", r.run_id))
                .is_file()
        );
        if r.scheme == "int8" {
            assert_eq!(r.pe_power_reduction_static_pct, Some(0.0));
        } else {
            let p = r.pe_power_reduction_static_pct.unwrap();
            assert!(p > 0.0 && p < 60.0, "{p}");
            assert!(r.pe_area_static_um2.unwrap() < r.pe_area_baseline_um2.unwrap());
            assert!(r.bits_per_weight.unwrap() < 8.0);
        }
    }
    // Merge refuses a directory with a run missing.
    let shard0 = out.join(format!(
        "runs{}.csv",
        "0/2".parse::<Shard>().unwrap().suffix()
    ));
    let text = std::fs::read_to_string(&shard0).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.pop();
    std::fs::write(&shard0, lines.join("\n") + "\n").unwrap();
    let (rc, _, e) = strumlab(&["merge", out.to_str().unwrap()]);
    assert_eq!(rc, 2);
    assert!(e.contains("have no row"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kill a running sweep with SIGKILL, resume it, and check every run has exactly one row.
#[test]
fn killed_sweep_resumes_without_losing_or_repeating_rows() {
    let dir = tmp("kill");
    let spec = dir.join("kill.toml");
    std::fs::write(
        &spec,
        r#"
name = "kill"
[base]
device = "cpu"
limit = 2000
hw = ""
[matrix]
scheme = ["mip2q", "dliq"]
low = [1, 2, 3, 4, 5, 6]
"#,
    )
    .unwrap();
    let out = dir.join("out");
    let args = [
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ];
    let rows_path = out.join("runs.csv");
    let mut child = Command::new(env!("CARGO_BIN_EXE_strumlab"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    // Kill as soon as the first row is on disk.
    loop {
        let n = std::fs::read_to_string(&rows_path)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if n >= 2 || t0.elapsed() > Duration::from_secs(300) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let before = rows(&rows_path);
    assert!(!before.is_empty());
    assert!(
        before.len() < 12,
        "the sweep finished before the kill; nothing was resumed"
    );
    let (rc, o, e) = strumlab(&args);
    assert_eq!(rc, 0, "{o}{e}");
    assert!(
        o.contains(&format!(
            "{} of 12 runs in this shard already done",
            before.len()
        )),
        "{o}"
    );
    let after = rows(&rows_path);
    let ids: Vec<&str> = after.iter().map(|r| r.run_id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 12);
    assert_eq!(unique.len(), 12);
    assert!(after.iter().all(|r| r.status == "ok"));
    // The rows written before the kill are kept as they were.
    assert_eq!(&after[..before.len()], &before[..]);
    // A third call has nothing left to do.
    let (rc, o, _) = strumlab(&args);
    assert_eq!(rc, 0);
    assert!(o.contains("ran 0"), "{o}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_spec_fails_cleanly_before_writing_anything() {
    let dir = tmp("bad");
    let spec = dir.join("bad.toml");
    std::fs::write(&spec, "name = \"bad\"\n[base]\nsheme = \"int8\"\n").unwrap();
    let out = dir.join("out");
    let (rc, _, e) = strumlab(&[
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(rc, 2);
    assert!(e.contains("sheme"), "{e}");
    assert!(!out.exists());
    let (rc, _, e) = strumlab(&["sweep", dir.join("missing.toml").to_str().unwrap()]);
    assert_eq!(rc, 2);
    assert!(e.contains("missing.toml"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn figures_are_written_as_png_and_svg() {
    use strumlab::plot::{Chart, Series, save};
    let dir = tmp("plot");
    let files = save(
        &Chart::Xy {
            title: "Accuracy check".into(),
            x_label: "bits".into(),
            y_label: "top-1 %".into(),
            series: vec![Series {
                name: "MIP2Q".into(),
                points: vec![(6.0, 98.0), (7.0, 98.5)],
                line: true,
                markers: true,
                marker: strumlab::plot::Marker::Triangle,
                point_labels: vec!["L=8".into(), "L=4".into()],
                y_err: vec![[97.7, 98.3], [98.2, 98.8]],
                ..Default::default()
            }],
            hlines: vec![("FP32 (98.9 %)".into(), 98.9)],
        },
        &dir.join("xy"),
    )
    .unwrap();
    assert_eq!(files.len(), 2);
    let svg = std::fs::read_to_string(dir.join("xy.svg")).unwrap();
    assert!(svg.contains("Accuracy check") && svg.contains("MIP2Q"));
    assert!(
        svg.contains("L=8") && svg.contains("FP32 (98.9 %)"),
        "point labels and reference line"
    );
    let png = image::open(dir.join("xy.png")).unwrap().to_rgb8();
    assert_eq!(png.dimensions(), strumlab::plot::SIZE);
    // Something other than the white background was drawn.
    let dark = png
        .pixels()
        .filter(|p| p.0.iter().all(|&c| c < 100))
        .count();
    assert!(dark > 1000, "{dark} dark pixels");
    save(
        &Chart::Bars {
            title: "Bars".into(),
            y_label: "mW".into(),
            categories: vec!["a".into(), "b".into()],
            groups: vec![("x".into(), vec![1.0, 2.0]), ("y".into(), vec![0.5, 1.0])],
            stacked: true,
        },
        &dir.join("bars"),
    )
    .unwrap();
    assert!(dir.join("bars.png").is_file() && dir.join("bars.svg").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

/// One FP32 pass and one calibration for a whole multi-configuration sweep; none when the
/// same images are swept again with the reference cache on disk; and the same numbers as a
/// run that computes its reference itself.
#[test]
fn sweep_computes_the_fp32_reference_once() {
    let dir = tmp("fp32-once");
    let text = "name = \"once\"\n[base]\nmodel = \"mnist-8\"\ndevice = \"cpu\"\n\
                [matrix]\nscheme = [\"int8\", \"mip2q\", \"dliq\"]\nlow = [2, 4]\n";
    let spec = SweepSpec::parse(text, "small").unwrap();
    let opts = |out: &str| sweep::SweepOptions {
        out: dir.join(out),
        shard: None,
        retry_failed: false,
        device: None,
        limit: Some(120),
        quiet: true,
        verbose: false,
        spec_path: "small".into(),
        reference_cache: Some(dir.join("refs")),
        no_image_cache: false,
    };
    let first = sweep::run_sweep(&spec, &opts("a")).unwrap();
    assert!(first.ran >= 3 && first.failed == 0, "{first:?}");
    assert_eq!((first.fp32_passes, first.calib_passes), (1, 1));
    let second = sweep::run_sweep(&spec, &opts("b")).unwrap();
    assert_eq!(second.ran, first.ran);
    assert_eq!((second.fp32_passes, second.calib_passes), (0, 0));
    let key = |r: &RunRow| {
        (
            r.run_id.clone(),
            r.top1_pct,
            r.agreement_top1_pct,
            r.kl_mean_nats.map(f64::to_bits),
        )
    };
    let a: Vec<_> = rows(&sweep::rows_file(&dir.join("a"), None))
        .iter()
        .map(key)
        .collect();
    let b: Vec<_> = rows(&sweep::rows_file(&dir.join("b"), None))
        .iter()
        .map(key)
        .collect();
    assert_eq!(a, b);
    // the same run evaluated on its own, reference computed inside
    let (g, card) = strumlab::zoo::resolve("mnist-8", &Default::default()).unwrap();
    let mut data = strumlab::data::load(&card.dataset, &card, false).unwrap();
    data.truncate(120);
    // `--limit` is part of a run's id
    let run = &spec.with_limit(Some(120)).expand("small").unwrap()[1];
    assert_eq!(run.params.limit, 120);
    let cfg = strumlab::eval::RunConfig {
        quant: run.quant.clone(),
        mode: run.params.mode,
        calib: strumlab::run::ActCalib {
            images: run.params.calib_images,
            method: run.params.act_calib,
            percentile: run.params.act_percentile,
        },
        quiet: true,
        check_reference: false,
        ..Default::default()
    };
    let alone = strumlab::eval::evaluate(&g, "mnist-8", &data, &cfg).unwrap();
    let row = a.iter().find(|r| r.0 == run.id).unwrap();
    assert_eq!(row.1, alone.summary.top1.map(|t| 100.0 * t));
    assert_eq!(row.3, Some(alone.summary.kl_mean.unwrap().to_bits()));
}

/// `sweep -v` names every run by all of its non-default parameters: two runs that differ
/// only in `quantize_first_last` print different labels.
#[test]
fn verbose_labels_tell_runs_apart() {
    let dir = tmp("labels");
    let spec = dir.join("s.toml");
    std::fs::write(
        &spec,
        "name = \"labels\"\n[base]\nmodel = \"mnist-8\"\ndevice = \"cpu\"\nlimit = 20\nhw = \"\"\n\
         scheme = \"mip2q\"\nblock = 4\nlow = 1\n[matrix]\nquantize_first_last = [false, true]\n",
    )
    .unwrap();
    let out = dir.join("out");
    let (code, _, err) = strumlab(&[
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-v",
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    let labels: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("run "))
        .map(|l| l.split("] ").nth(1).unwrap().split(": ").next().unwrap())
        .collect();
    assert_eq!(labels.len(), 2, "{err}");
    assert_ne!(labels[0], labels[1], "{err}");
    assert!(labels[1].contains("quantize_first_last=true"), "{err}");
}
