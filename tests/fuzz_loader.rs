//! Thousands of randomly mutated and truncated copies of mnist-8: each must load into a
//! valid graph or give an error, never panic or hang. Graphs that load are also run
//! through the reference executor, which must not panic either.

mod common;

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::Duration;

use common::{Rng, data, mutate};
use strumlab::cpu::reference;
use strumlab::model::{LoadOptions, Tensor, load_onnx_bytes};

const CASES: usize = 3000;
/// Hang detector, not a speed assertion: the whole loop takes a few seconds here.
const WATCHDOG: Duration = Duration::from_secs(300);

#[test]
fn mutated_models_never_panic() {
    let base = std::fs::read(data("mnist-8.onnx")).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut rng = Rng(0x5712_0A1B);
        let (mut ok, mut err) = (0usize, 0usize);
        let mut panics = Vec::new();
        for case in 0..CASES {
            let m = mutate(&mut rng, &base);
            let r = catch_unwind(AssertUnwindSafe(|| {
                match load_onnx_bytes(&m, "mutant.onnx", &LoadOptions::default()) {
                    Ok(g) => {
                        let n: usize = g.input_shape.iter().product();
                        if n <= 1 << 16 {
                            let x = Tensor::new(g.input_shape.clone(), vec![0.5; n]);
                            let _ = reference::run(&g, &x, &HashMap::new());
                        }
                        true
                    }
                    Err(e) => {
                        assert!(!e.to_string().is_empty());
                        false
                    }
                }
            }));
            match r {
                Ok(true) => ok += 1,
                Ok(false) => err += 1,
                Err(_) => panics.push(case),
            }
        }
        tx.send((ok, err, panics)).unwrap();
    });
    let (ok, err, panics) = rx
        .recv_timeout(WATCHDOG)
        .expect("the loader hung on a mutated model");
    assert!(panics.is_empty(), "panicked on cases {panics:?}");
    assert_eq!(ok + err, CASES);
    // Both outcomes occur: the mutations are neither all harmless nor all fatal.
    assert!(ok > 0 && err > 0, "ok {ok}, err {err}");
    eprintln!("{ok} mutants loaded, {err} rejected with an error");
}
