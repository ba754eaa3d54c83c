//! Time per op of the batched executor, for finding what bounds a model
//! (`STRUMLAB_PROFILE_OPS=1`; `strumlab bench` prints the table).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use super::compile::{FOp, Kernel, Program};

static ON: AtomicU8 = AtomicU8::new(2);
static TIMES: Mutex<Vec<(String, f64, usize)>> = Mutex::new(Vec::new());

/// Whether `STRUMLAB_PROFILE_OPS` is set (read once).
pub fn enabled() -> bool {
    match ON.load(Ordering::Relaxed) {
        2 => {
            let on = std::env::var("STRUMLAB_PROFILE_OPS").is_ok_and(|v| v == "1");
            ON.store(on as u8, Ordering::Relaxed);
            on
        }
        v => v == 1,
    }
}

fn label(p: &Program, op: &FOp) -> String {
    match op {
        FOp::Quantize { .. } => "quantize input".into(),
        FOp::Layer { kernel, out, .. } => {
            let v = &p.vals[*out];
            match kernel {
                Kernel::Depthwise { geom: g, .. } => format!(
                    "depthwise {}x{} s{} {}x{}x{}",
                    g.kh, g.kw, g.sh, g.oh, g.ow, g.c
                ),
                Kernel::Gemm {
                    geom: Some(g),
                    im2col,
                    pw,
                } => format!(
                    "conv {}x{} s{} {}->{} {}x{}{} K={}",
                    g.kh,
                    g.kw,
                    g.sh,
                    g.c,
                    g.oc,
                    g.oh,
                    g.ow,
                    if *im2col { " im2col" } else { "" },
                    pw[0].kp
                ),
                Kernel::Gemm { geom: None, pw, .. } => format!("dense {}->{}", pw[0].k, v.c),
            }
        }
        FOp::MaxPool { .. } => "maxpool".into(),
        FOp::Gap { .. } => "gap".into(),
        FOp::Add { .. } => "add".into(),
        FOp::Clamp { .. } => "clamp".into(),
    }
}

pub fn add(p: &Program, k: usize, secs: f64, images: usize) {
    let mut t = TIMES.lock().expect("profile");
    if t.len() < p.ops.len() {
        *t = p.ops.iter().map(|op| (label(p, op), 0.0, 0)).collect();
    }
    t[k].1 += secs;
    t[k].2 += images;
}

/// The table of op, total seconds, microseconds per image, share.
pub fn report() -> String {
    let t = TIMES.lock().expect("profile");
    let total: f64 = t.iter().map(|r| r.1).sum();
    let mut s = String::from("op                                         s   us/image  share\n");
    for (l, secs, n) in t.iter() {
        s += &format!(
            "{l:<40} {secs:7.3} {:9.1} {:5.1}%\n",
            secs * 1e6 / (*n).max(1) as f64,
            100.0 * secs / total.max(1e-12)
        );
    }
    s
}
