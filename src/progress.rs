//! A minimal progress line with ETA on stderr for long loops. Shown only when stderr is a
//! terminal (never in pipes, CI logs or tests) and not disabled with `--quiet`.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct Progress {
    done: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Start reporting `label` over `total` items (a no-op when hidden).
    pub fn new(label: &str, total: usize, quiet: bool) -> Self {
        let done = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let show = !quiet && std::io::stderr().is_terminal() && total > 0;
        let thread = show.then(|| {
            let (done, stop, label) = (done.clone(), stop.clone(), label.to_string());
            std::thread::spawn(move || {
                let t0 = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(250));
                    let d = done.load(Ordering::Relaxed);
                    let el = t0.elapsed().as_secs_f64();
                    let eta = if d > 0 {
                        format!("{:.0} s", el / d as f64 * (total - d.min(total)) as f64)
                    } else {
                        "?".into()
                    };
                    let mut e = std::io::stderr().lock();
                    let _ = write!(
                        e,
                        "\r{label}: {d}/{total} ({:.0} %), {el:.0} s elapsed, ETA {eta}   ",
                        100.0 * d as f64 / total as f64
                    );
                    let _ = e.flush();
                }
                let _ = write!(std::io::stderr(), "\r{}\r", " ".repeat(label.len() + 60));
            })
        });
        Progress { done, stop, thread }
    }

    pub fn inc(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
