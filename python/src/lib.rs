//! `strumlab._strumlab`: the PyO3 layer of the Python package. Conversions only: every
//! computation is the strumlab library's; results cross as JSON documents (the CLI's
//! `--json` shapes) and numpy arrays; errors become the package's exception classes
//! (defined in `strumlab/_errors.py`) with the library's one-line message.

use numpy::{PyArray1, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use strumlab::data::{Dataset, ModelCard, arrays};
use strumlab::model::{Graph, LoadOptions};
use strumlab::quant::QuantConfig;
use strumlab::run::{ActCalib, RunConfig};

/// Raise the package's exception for a library error: `InvalidArgument` (also a
/// `ValueError`), `NotFound` (also a `FileNotFoundError`), else `StrumlabError`.
fn raise(e: strumlab::Error) -> PyErr {
    use strumlab::Error as E;
    let class = match &e {
        E::InvalidArg { .. } | E::Config { .. } | E::InvalidModel(_) => "InvalidArgument",
        E::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => "NotFound",
        E::Data { reason, .. } if reason.contains("not fetched") => "NotFound",
        _ => "StrumlabError",
    };
    invalid_with(class, e.to_string())
}

fn invalid_with(class: &str, msg: String) -> PyErr {
    Python::with_gil(|py| {
        let cls = py.import("strumlab._errors").and_then(|m| m.getattr(class));
        match cls {
            Ok(c) => match c.call1((msg,)) {
                Ok(v) => PyErr::from_value(v),
                Err(e) => e,
            },
            Err(e) => e,
        }
    })
}

fn invalid(msg: String) -> PyErr {
    invalid_with("InvalidArgument", msg)
}

/// Run `f` on a thread of its own while this (the calling, GIL-holding) thread polls every
/// 50 ms: Ctrl-C (`py.check_signals`) cancels the run and raises `KeyboardInterrupt`;
/// `progress` (a callable) is called with (label, done, total) of the run's latest bar.
fn watched<T: Send>(
    py: Python<'_>,
    progress: Option<&Bound<'_, PyAny>>,
    f: impl FnOnce() -> strumlab::Result<T> + Send,
) -> PyResult<T> {
    use strumlab::progress::{Watch, watched as watch_thread};
    let watch = std::sync::Arc::new(Watch::default());
    let w = watch.clone();
    std::thread::scope(|s| {
        let h = s.spawn(move || watch_thread(w, f));
        let mut last = (String::new(), usize::MAX);
        let stop = |e: PyErr| {
            watch.cancel();
            e
        };
        while !h.is_finished() {
            py.allow_threads(|| std::thread::sleep(std::time::Duration::from_millis(50)));
            let polled = py.check_signals().and_then(|_| match progress {
                Some(cb) => {
                    let (label, done, total) = watch.state();
                    if (label.clone(), done) != last {
                        last = (label.clone(), done);
                        cb.call1((label, done, total)).map(|_| ())
                    } else {
                        Ok(())
                    }
                }
                None => Ok(()),
            });
            if let Err(e) = polled {
                let e = stop(e);
                let _ = py.allow_threads(|| h.join());
                return Err(e);
            }
        }
        match h.join() {
            Ok(r) => r.map_err(raise),
            Err(_) => Err(invalid_with("StrumlabError", "the run panicked".into())),
        }
    })
}

/// A model: its graph and card (preprocessing).
#[pyclass(frozen, module = "strumlab._strumlab")]
struct Model {
    name: String,
    graph: Graph,
    card: ModelCard,
}

#[pymethods]
impl Model {
    /// The zoo name or file given to `load_model`.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }
    /// The graph's input shape (batch 1).
    #[getter]
    fn input_shape(&self) -> Vec<usize> {
        self.graph.input_shape.clone()
    }
    /// Names of the weight layers (Conv, Dense), in graph order.
    #[getter]
    fn layers(&self) -> Vec<String> {
        self.graph
            .layers()
            .iter()
            .map(|(n, _)| self.graph.nodes[*n].name.clone())
            .collect()
    }
    /// The dataset the model's card names ("" when none).
    #[getter]
    fn dataset(&self) -> &str {
        &self.card.dataset
    }
    fn __repr__(&self) -> String {
        format!(
            "Model('{}', input {:?}, {} weight layers)",
            self.name,
            self.graph.input_shape,
            self.graph.layers().len()
        )
    }
}

/// Load a zoo model by name or an ONNX file (`card`: a model card TOML;
/// `input_shape`: a shape for symbolic inputs).
#[pyfunction]
#[pyo3(signature = (spec, card=None, input_shape=None))]
fn load_model(
    py: Python<'_>,
    spec: String,
    card: Option<std::path::PathBuf>,
    input_shape: Option<Vec<usize>>,
) -> PyResult<Model> {
    let opts = LoadOptions {
        input_shape,
        ..Default::default()
    };
    let (graph, card) = py
        .allow_threads(|| strumlab::zoo::resolve_with_card(&spec, &opts, card.as_deref()))
        .map_err(raise)?;
    Ok(Model {
        name: spec,
        graph,
        card,
    })
}

fn quant_config(json: &str) -> PyResult<QuantConfig> {
    let q: QuantConfig =
        serde_json::from_str(json).map_err(|e| invalid(format!("quantization option: {e}")))?;
    q.validate().map_err(raise)?;
    Ok(q)
}

/// Quantize every weight layer: `(summary JSON, [per-layer dict])`, each layer dict with
/// its statistics and the integer weights `q`, the class mask `mask` (0 INT8, 1 4-bit,
/// 2 zero) and the dequantized FP32 weights `deq`, in the weight's shape.
#[pyfunction]
fn quantize<'py>(
    py: Python<'py>,
    model: &Model,
    config: &str,
) -> PyResult<(String, Bound<'py, PyList>)> {
    let q = quant_config(config)?;
    let mq = py
        .allow_threads(|| strumlab::quant::quantize_graph(&model.graph, &q))
        .map_err(raise)?;
    let summary = serde_json::to_string(&mq.summary).map_err(|e| invalid(e.to_string()))?;
    let layers = PyList::empty(py);
    for l in &mq.layers {
        let d = PyDict::new(py);
        d.set_item("name", &l.name)?;
        d.set_item("kind", l.kind)?;
        d.set_item("applied", &l.applied)?;
        d.set_item("reason", l.reason)?;
        d.set_item("shape", &l.shape)?;
        d.set_item(
            "stats",
            serde_json::to_string(&l.stats).map_err(|e| invalid(e.to_string()))?,
        )?;
        let shaped = |a: Bound<'py, PyAny>| a.call_method1("reshape", (l.shape.clone(),));
        let e = &l.encoded;
        if !e.q.is_empty() {
            d.set_item("q", shaped(PyArray1::from_slice(py, &e.q).into_any())?)?;
        }
        let mask: Vec<u8> = e.class.iter().map(|c| *c as u8).collect();
        if !mask.is_empty() {
            d.set_item("mask", shaped(PyArray1::from_vec(py, mask).into_any())?)?;
        }
        d.set_item("deq", shaped(PyArray1::from_slice(py, &e.deq).into_any())?)?;
        d.set_item("scales", PyArray1::from_slice(py, &e.scales))?;
        layers.append(d)?;
    }
    Ok((summary, layers))
}

/// A CLI word (`integer`, `auto`, `percentile`, ...) as its enum.
fn de<T: serde::de::DeserializeOwned>(x: serde_json::Value, what: &str) -> PyResult<T> {
    serde_json::from_value(x.clone()).map_err(|_| invalid(format!("{what}: unknown value {x}")))
}

/// The run policy from the wrapper's JSON (`quant`, `mode`, `device`, `limit`, `calib`...).
fn run_config(json: &str) -> PyResult<RunConfig> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
    let get = |k: &str| v.get(k).filter(|x| !x.is_null());
    let enum_of = |k: &str| -> PyResult<Option<serde_json::Value>> { Ok(get(k).cloned()) };
    let mut cfg = RunConfig {
        quant: quant_config(&get("quant").map_or("{}".into(), |q| q.to_string()))?,
        quiet: true,
        ..Default::default()
    };
    let mode = match enum_of("mode")? {
        Some(m) => Some(de(m, "mode")?),
        None => None,
    };
    if let Some(d) = enum_of("device")? {
        cfg.device = de(d, "device")?;
    }
    let mut c = ActCalib::default();
    if let Some(n) = get("calib_images").and_then(|x| x.as_u64()) {
        c.images = n as usize;
    }
    if let Some(m) = enum_of("act_calib")? {
        c.method = de(m, "act_calib")?;
    }
    if let Some(p) = get("act_percentile").and_then(|x| x.as_f64()) {
        c.percentile = p as f32;
    }
    cfg.calib = c.checked().map_err(raise)?;
    cfg.limit = get("limit").and_then(|x| x.as_u64()).map(|n| n as usize);
    cfg.image_cache = get("cache").and_then(|x| x.as_bool()).unwrap_or(true);
    let (scheme, mode) =
        strumlab::eval::scheme_and_mode(Some(cfg.quant.scheme), mode).map_err(raise)?;
    cfg.quant.scheme = scheme;
    cfg.mode = mode;
    Ok(cfg)
}

/// The dataset of an evaluation: a name/folder/IDX file, or a numpy array (u8 raw pixels
/// or FP32 preprocessed input) with optional labels.
fn dataset(
    py: Python<'_>,
    model: &Model,
    data: &Bound<'_, PyAny>,
    labels: Option<Vec<i64>>,
    cfg: &RunConfig,
) -> PyResult<Dataset> {
    if let Ok(spec) = data.extract::<String>() {
        let opts = cfg.load_opts(false);
        let card = &model.card;
        let mut d = py
            .allow_threads(|| strumlab::data::load_with(&spec, card, &opts))
            .map_err(raise)?;
        if let Some(l) = labels {
            d.labels = Some(to_u32(l, d.len())?);
        }
        return Ok(d);
    }
    let labels = labels.map(|l| to_u32(l.clone(), l.len())).transpose()?;
    let mut d = if let Ok(a) = data.extract::<PyReadonlyArrayDyn<'_, u8>>() {
        let dims = a.shape().to_vec();
        let px = a
            .as_slice()
            .map(|s| s.to_vec())
            .or_else(|_| Ok::<_, PyErr>(a.as_array().iter().copied().collect()))?;
        let layout = arrays::Layout::guess(&dims).map_err(raise)?;
        arrays::from_u8("array", &model.card, &dims, layout, &px, labels).map_err(raise)?
    } else if let Ok(a) = data.extract::<PyReadonlyArrayDyn<'_, f32>>() {
        let v: Vec<f32> = a.as_array().iter().copied().collect();
        arrays::from_f32("array", &model.card, v, labels).map_err(raise)?
    } else {
        return Err(invalid(
            "data: expected a dataset name, a folder or file path, or a numpy array of uint8 pixels or float32 inputs".into(),
        ));
    };
    if let Some(n) = cfg.limit {
        d.truncate(n);
    }
    Ok(d)
}

fn to_u32(l: Vec<i64>, n: usize) -> PyResult<Vec<u32>> {
    if l.len() != n {
        return Err(invalid(format!(
            "labels: {} labels for {n} images",
            l.len()
        )));
    }
    l.into_iter()
        .map(|v| u32::try_from(v).map_err(|_| invalid(format!("labels: {v} is not a class index"))))
        .collect()
}

/// Evaluate `model` on `data` under the run policy `config` (JSON): the CLI's `eval --json`
/// document, and its per-layer rows again with their fields in the CSV's column order. The
/// GIL is released while it runs.
#[pyfunction]
#[pyo3(signature = (model, data, config, labels=None, progress=None))]
fn evaluate(
    py: Python<'_>,
    model: &Model,
    data: &Bound<'_, PyAny>,
    config: &str,
    labels: Option<Vec<i64>>,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<(String, String)> {
    let mut cfg = run_config(config)?;
    cfg.logits_output = model.card.logits_output.clone();
    let ds = dataset(py, model, data, labels, &cfg)?;
    let r = watched(py, progress, || {
        let mut refs = strumlab::eval::RefCache::on_disk();
        strumlab::eval::run(&model.graph, &model.name, &ds, &cfg, &mut refs)
    })?;
    let rows = serde_json::to_string(&r.layers).map_err(|e| invalid(e.to_string()))?;
    Ok((strumlab::report::eval_json(&r).to_string(), rows))
}

/// The FlexNN model of `model` quantized per `config` (quantization JSON): the CLI's
/// `hw --json` document and the per-layer CSV (the hw CSV's columns). `stats`: an eval CSV
/// of measured activity; `variant`: static or dynamic; `boundary`: datapath, rf or full.
#[pyfunction]
#[pyo3(signature = (model, config, arch, claims, stats=None, variant=None, boundary=None))]
#[allow(clippy::too_many_arguments)]
fn hw(
    py: Python<'_>,
    model: &Model,
    config: &str,
    arch: String,
    claims: String,
    stats: Option<String>,
    variant: Option<String>,
    boundary: Option<String>,
) -> PyResult<(String, String)> {
    use strumlab::hw::pe::Variant;
    let q = quant_config(config)?;
    let asked = match variant.as_deref() {
        None => None,
        Some("static") => Some(Variant::Static),
        Some("dynamic") => Some(Variant::Dynamic),
        Some(v) => return Err(invalid(format!("variant: unknown value '{v}' (static, dynamic)"))),
    };
    let boundary = boundary.map(|b| de(serde_json::Value::String(b), "boundary")).transpose()?;
    let variant = Variant::resolve(asked, !q.layers.is_empty()).map_err(raise)?;
    let (arch, claims) = (strumlab::data::repo_path(arch.as_ref()), strumlab::data::repo_path(claims.as_ref()));
    let r = py
        .allow_threads(|| {
            let stats = stats.as_deref().map(std::path::Path::new);
            strumlab::hw::run(&arch, None, boundary, &model.graph, &q, stats)
        })
        .map_err(raise)?;
    let claims = strumlab::hw::load_claims(&claims).map_err(raise)?;
    let doc = strumlab::report::hw_json(&r, &claims, &model.name, variant);
    let csv = strumlab::report::hw_csv(&r, &model.name).map_err(raise)?;
    Ok((doc.to_string(), String::from_utf8_lossy(&csv).into_owned()))
}

/// Run (or resume) a sweep: `spec` is a spec file, or (with `is_json`) the spec as JSON.
/// Returns the sweep summary as JSON (its `rows_file` holds the rows). The GIL is released
/// while it runs.
#[pyfunction]
#[pyo3(signature = (spec, is_json, out=None, limit=None, device=None, progress=None))]
fn sweep(
    py: Python<'_>,
    spec: String,
    is_json: bool,
    out: Option<String>,
    limit: Option<usize>,
    device: Option<String>,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<String> {
    use strumlab::sweep::{SweepOptions, SweepSpec, run_sweep};
    let (s, origin) = if is_json {
        (SweepSpec::from_json(&spec, "sweep spec (dict)"), "python dict".to_string())
    } else {
        (SweepSpec::load(spec.as_ref()), spec.clone())
    };
    let s = s.map_err(raise)?;
    let device = device.map(|d| de(serde_json::Value::String(d), "device")).transpose()?;
    let opts = SweepOptions {
        out: out.map(Into::into).unwrap_or_else(|| s.out_dir()),
        shard: None,
        retry_failed: false,
        device,
        limit,
        quiet: true,
        verbose: false,
        spec_path: origin,
        reference_cache: Some(strumlab::data::cache_dir().join("fp32-reference")),
        no_image_cache: false,
    };
    let r = watched(py, progress, || run_sweep(&s, &opts))?;
    serde_json::to_string(&r).map_err(|e| invalid(e.to_string()))
}

/// Search per-layer StruM settings (as `strumlab search`): `config` is the run policy JSON
/// (quantization base, calibration, limit), `search` the search's own parameters as JSON
/// (`max_drop`, `schemes`, `lows`, `objective`, `search_frac`, `sens_images`, `refine`,
/// `margin_se`). Returns the `search --json` document. The GIL is released while it runs.
#[pyfunction]
#[pyo3(signature = (model, data, config, search, arch, labels=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn search(
    py: Python<'_>,
    model: &Model,
    data: &Bound<'_, PyAny>,
    config: &str,
    search: &str,
    arch: String,
    labels: Option<Vec<i64>>,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<String> {
    let cfg = run_config(config)?;
    let ds = dataset(py, model, data, labels, &cfg)?;
    let v: serde_json::Value = serde_json::from_str(search).map_err(|e| invalid(e.to_string()))?;
    let num = |k: &str, d: f64| v.get(k).and_then(|x| x.as_f64()).unwrap_or(d);
    let list = |k: &str| v.get(k).cloned().unwrap_or(serde_json::Value::Array(vec![]));
    let opts = strumlab::search::Options {
        model: model.name.clone(),
        max_drop_pts: num("max_drop", 0.5),
        schemes: de(list("schemes"), "schemes")?,
        lows: de(list("lows"), "lows")?,
        objective: de(v.get("objective").cloned().unwrap_or("pe-power".into()), "objective")?,
        search_frac: num("search_frac", 0.5),
        sens_images: num("sens_images", 1000.0) as usize,
        refine: num("refine", 8.0) as usize,
        margin_se: num("margin_se", 1.0),
        base: cfg.quant.clone(),
        calib: cfg.calib,
        quiet: true,
    };
    let arch = strumlab::data::repo_path(arch.as_ref());
    let o = watched(py, progress, || strumlab::search::run(&model.graph, &ds, &arch, &opts))?;
    Ok(strumlab::search::output::json(&o).to_string())
}

#[pymodule]
fn _strumlab(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(load_model, m)?)?;
    m.add_function(wrap_pyfunction!(quantize, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(hw, m)?)?;
    m.add_function(wrap_pyfunction!(sweep, m)?)?;
    m.add_function(wrap_pyfunction!(search, m)?)?;
    Ok(())
}
