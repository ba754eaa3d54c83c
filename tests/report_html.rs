//! `reproduce` writes index.html: it links only files that exist, and it renders in
//! headless Chromium to a page that is not blank. Chromium is required where
//! STRUMLAB_REQUIRE_CHROMIUM is set (scripts/test.sh installs it and sets it); elsewhere
//! the rendering half is skipped with a message.

use std::path::Path;
use std::process::Command;

fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            out.push(part.split('"').next().unwrap().to_string());
        }
    }
    out
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[test]
fn reproduce_report_links_existing_files_and_renders() {
    let dir = std::env::temp_dir().join(format!("strumlab-html-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = Command::new(env!("CARGO_BIN_EXE_strumlab"))
        .args([
            "reproduce",
            "--models",
            "mnist-8",
            "--limit",
            "100",
            "-q",
            "--out",
        ])
        .arg(&dir)
        .env("STRUMLAB_CACHE", dir.join("cache"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let l = links(&html);
    assert!(
        l.iter().filter(|p| p.ends_with(".png")).count() >= 4,
        "{l:?}"
    );
    for p in &l {
        assert!(
            dir.join(p).is_file(),
            "index.html links {p}, which does not exist"
        );
    }
    assert!(html.contains("<table>") && html.contains("The paper's claims"));

    let Some(bin) = chromium() else {
        assert!(
            std::env::var_os("STRUMLAB_REQUIRE_CHROMIUM").is_none(),
            "STRUMLAB_REQUIRE_CHROMIUM is set but no chromium runs"
        );
        eprintln!("skipping the rendering check: no chromium");
        return;
    };
    let shot = dir.join("shot.png");
    let url = format!("file://{}", dir.join("index.html").display());
    let o = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg("--window-size=1280,1600")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .env("XDG_RUNTIME_DIR", &dir)
        .output()
        .unwrap();
    assert!(shot.is_file(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_not_blank(&shot);
    let _ = std::fs::remove_dir_all(&dir);
}

/// At least 3 % of the pixels are not background, and the images inside rendered (some
/// coloured pixels from the figures).
fn assert_not_blank(png: &Path) {
    let img = image::open(png).unwrap().to_rgb8();
    let px = img.pixels().count();
    let bg = *img.get_pixel(5, 5);
    let ink = img.pixels().filter(|p| **p != bg).count();
    let coloured = img
        .pixels()
        .filter(|p| {
            let [r, g, b] = p.0;
            r.max(g).max(b) - r.min(g).min(b) > 60
        })
        .count();
    assert!(
        ink * 100 > 3 * px,
        "{ink} of {px} pixels differ from the background"
    );
    assert!(
        coloured > 200,
        "only {coloured} coloured pixels: figures did not render"
    );
}
