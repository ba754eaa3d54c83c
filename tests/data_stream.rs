//! The streaming data path: image folders go through the preprocessed-image cache
//! (`data::pcache`) and are read batch by batch, bit-identical to a direct decode.

use std::path::{Path, PathBuf};

use strumlab::data::{self, LoadOpts, ModelCard, images};

/// A folder of small PNGs whose pixels carry `nonce`, so that no other test (or earlier
/// run) shares their cache key.
fn folder(name: &str, n: usize, nonce: u32) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strumlab-stream-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..n {
        let img = image::RgbImage::from_fn(23 + i as u32 % 5, 19, |x, y| {
            let v = (x * 7 + y * 3 + i as u32 * 11) ^ nonce;
            image::Rgb([v as u8, (v >> 8) as u8, (x + y) as u8])
        });
        img.save(dir.join(format!("imagenet_{i:02}_{}.png", i % 10)))
            .unwrap();
    }
    dir
}

fn card(nhwc: bool) -> ModelCard {
    ModelCard {
        resize_shorter: Some(12),
        center_crop: true,
        pixel_scale: 1.0 / 255.0,
        mean: vec![0.485, 0.456, 0.406],
        std: vec![0.229, 0.224, 0.225],
        nhwc,
        ..ModelCard::plain(Path::new("m.onnx"), &[1, 3, 10, 10])
    }
}

fn nonce() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ std::process::id()
}

#[test]
fn cached_folder_reads_back_bit_identical_to_a_direct_decode() {
    for nhwc in [false, true] {
        let dir = folder(&format!("exact{nhwc}"), 9, nonce());
        let card = card(nhwc);
        let spec = dir.to_str().unwrap();
        let ds = data::load(spec, &card, false).unwrap();
        assert_eq!(ds.len(), 9);
        assert!(ds.source().ends_with(".u8"), "{}", ds.source());
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for (i, f) in files.iter().enumerate() {
            let want = images::preprocess(f, &card).unwrap();
            let got = ds.image(i).unwrap();
            assert!(
                want.iter()
                    .zip(&got)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "image {i} (nhwc {nhwc})"
            );
        }
        // a batch equals its images back to back; a view reads the same images
        let batch = ds.images(2, 7).unwrap();
        let per = ds.per_image();
        assert_eq!(&batch[per..2 * per], &ds.image(3).unwrap()[..]);
        let view = ds.range(2, 7);
        assert_eq!(view.images(0, 5).unwrap(), batch);
        assert_eq!(view.labels.as_deref(), Some(&[2, 3, 4, 5, 6][..]));
        assert_ne!(view.content_key(), ds.content_key());
        // the second load reads the cache file it wrote (same file, not rewritten)
        let meta = |p: &str| std::fs::metadata(p).unwrap().modified().unwrap();
        let (src, t0) = (ds.source(), meta(&ds.source()));
        let again = data::load(spec, &card, false).unwrap();
        assert_eq!((again.source(), meta(&again.source())), (src.clone(), t0));
        assert_eq!(again.content_key(), ds.content_key());
        assert_eq!(again.all().unwrap(), ds.all().unwrap());
        let _ = std::fs::remove_file(&src);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn no_cache_writes_nothing_to_the_cache_and_reads_the_same_pixels() {
    let dir = folder("nocache", 4, nonce());
    let card = card(false);
    let o = LoadOpts {
        cache: false,
        ..Default::default()
    };
    // the cached load names the file this folder maps to; without the cache that file
    // is not written (other tests write theirs concurrently, so look at this one only)
    let cached = data::load(dir.to_str().unwrap(), &card, false).unwrap();
    let file = PathBuf::from(cached.source());
    std::fs::remove_file(&file).unwrap();
    let ds = data::load_with(dir.to_str().unwrap(), &card, &o).unwrap();
    assert!(!file.exists(), "--no-cache wrote {}", file.display());
    assert!(ds.source().contains("temporary"), "{}", ds.source());
    assert_eq!(
        ds.all().unwrap(),
        cached.all().unwrap(),
        "the open cached file still reads"
    );
    assert_eq!(ds.content_key(), cached.content_key());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_image_is_fatal_again_on_a_warm_cache_built_with_skip_bad() {
    let dir = folder("bad", 5, nonce());
    std::fs::write(dir.join("imagenet_02_2.png"), b"not a png").unwrap();
    let card = card(false);
    let spec = dir.to_str().unwrap();
    let e = data::load(spec, &card, false).unwrap_err().to_string();
    assert!(
        e.contains("imagenet_02_2.png") && e.contains("decode"),
        "{e}"
    );
    let ds = data::load(spec, &card, true).unwrap();
    assert_eq!(ds.len(), 4);
    assert_eq!(ds.labels.as_deref(), Some(&[0, 1, 3, 4][..]));
    // warm: the cache knows the image was left out; without skip_bad that is an error
    // naming it, with the decoder's reason
    let e = data::load(spec, &card, false).unwrap_err().to_string();
    assert!(
        e.contains("imagenet_02_2.png") && e.contains("decode"),
        "{e}"
    );
    let warm = data::load(spec, &card, true).unwrap();
    assert_eq!(warm.source(), ds.source());
    assert_eq!(warm.all().unwrap(), ds.all().unwrap());
    let _ = std::fs::remove_file(ds.source());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn limit_decodes_a_prefix_and_labels_come_from_imagenet_val_csv() {
    let dir = folder("csv", 6, nonce());
    // LOC_val_solution.csv as distributed: a header, ids without extension, the synset
    // first in the prediction string
    let mut csv = String::from("ImageId,PredictionString\n");
    for i in 0..6 {
        let syn = ["n01440764", "n01443537"][i % 2];
        csv += &format!("imagenet_{i:02}_{},{syn} 1 2 30 40 {syn} 5 6 7 8\n", i % 10);
    }
    std::fs::write(dir.join("LOC_val_solution.csv"), csv).unwrap();
    let card = card(false);
    let o = LoadOpts {
        limit: Some(3),
        ..Default::default()
    };
    let ds = data::load_with(dir.to_str().unwrap(), &card, &o).unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.labels.as_deref(), Some(&[0, 1, 0][..]));
    let full = data::load(dir.to_str().unwrap(), &card, false).unwrap();
    assert_eq!(full.images(0, 3).unwrap(), ds.all().unwrap());
    for d in [&ds, &full] {
        let _ = std::fs::remove_file(d.source());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_devkit_ground_truth_file_is_refused_with_what_to_do() {
    let dir = folder("devkit", 2, nonce());
    std::fs::write(
        dir.join("ILSVRC2012_validation_ground_truth.txt"),
        "490\n361\n",
    )
    .unwrap();
    let e = data::load(dir.to_str().unwrap(), &card(false), false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ILSVRC2012_validation_ground_truth.txt") && e.contains("synset subfolders"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
