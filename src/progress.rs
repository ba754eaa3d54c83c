//! A minimal progress line with ETA on stderr for long loops. Shown only when stderr is a
//! terminal (never in pipes, CI logs or tests) and not disabled with `--quiet`.
//!
//! A caller that runs the library on a thread of its own (the Python package) can watch it:
//! [`watched`] makes every progress bar started on that thread report into a [`Watch`]
//! (label, done, total), and [`Watch::cancel`] makes the long loops stop with
//! `Error::Cancelled` at their next item.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct Progress {
    done: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    watch: Option<Arc<Watch>>,
}

/// What a watcher sees of the runs on a watched thread: the latest bar's label and counts,
/// and a flag that stops them.
#[derive(Debug, Default)]
pub struct Watch {
    label: std::sync::Mutex<String>,
    done: AtomicUsize,
    total: AtomicUsize,
    cancelled: AtomicBool,
}

impl Watch {
    /// The latest bar: (label, done, total).
    pub fn state(&self) -> (String, usize, usize) {
        let label = self.label.lock().map(|l| l.clone()).unwrap_or_default();
        (
            label,
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
    /// Ask the watched runs to stop at their next item.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
}

thread_local! {
    static WATCH: std::cell::RefCell<Option<Arc<Watch>>> = const { std::cell::RefCell::new(None) };
}

/// Run `f` with every progress bar it starts on this thread reporting into `watch`.
pub fn watched<T>(watch: Arc<Watch>, f: impl FnOnce() -> T) -> T {
    WATCH.with_borrow_mut(|w| *w = Some(watch));
    let r = f();
    WATCH.with_borrow_mut(|w| *w = None);
    r
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
        let watch = WATCH.with_borrow(|w| w.clone());
        if let Some(w) = &watch {
            if let Ok(mut l) = w.label.lock() {
                *l = label.to_string();
            }
            w.done.store(0, Ordering::Relaxed);
            w.total.store(total, Ordering::Relaxed);
        }
        Progress {
            done,
            stop,
            thread,
            watch,
        }
    }

    pub fn inc(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if let Some(w) = &self.watch {
            w.done.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `Err(Cancelled)` once a watcher cancelled the run (checked by the long loops).
    pub fn check(&self) -> crate::error::Result<()> {
        match &self.watch {
            Some(w) if w.cancelled.load(Ordering::Relaxed) => Err(crate::error::Error::Cancelled),
            _ => Ok(()),
        }
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
