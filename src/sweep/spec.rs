//! Sweep specifications: a TOML file with a `base` run, a `matrix` of list-valued
//! parameters and `exclude` rules, expanded deterministically into runs with stable ids.
//! The format is documented in docs/sweeps.md.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cpu::engine::Mode;
use crate::error::{Error, Result};
use crate::eval::Device;
use crate::quant::config::{Calib, LPolicy};
use crate::quant::{QuantConfig, Scheme};

/// Parameters of one run that are not quantization parameters.
pub const RUN_KEYS: [&str; 13] = [
    "model",
    "input_shape",
    "card",
    "data",
    "mode",
    "device",
    "hw",
    "limit",
    "calib_images",
    "act_calib",
    "act_percentile",
    "low_frac",
    "layer_config",
];

/// The default hardware description of a run (`hw = ""` turns the hardware model off).
pub const DEFAULT_HW: &str = "experiments/hw/flexnn.toml";

/// Everything a run needs besides its quantization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunParams {
    /// Zoo name or ONNX file.
    pub model: String,
    /// Input shape at batch 1 for a file with symbolic dimensions (`--input-shape`); empty:
    /// the file's.
    pub input_shape: Vec<usize>,
    /// A model card file (`--card`; relative to the working directory); empty: the zoo's
    /// card, or a plain one.
    pub card: String,
    /// Dataset; empty: the model card's.
    pub data: String,
    pub mode: Mode,
    pub device: Device,
    /// Architecture file of the hardware model; empty: no hardware columns.
    pub hw: String,
    /// Evaluate only the first N images (0: all).
    pub limit: usize,
    pub calib_images: usize,
    pub act_calib: Calib,
    pub act_percentile: f32,
    /// L as a fraction of B (L = low_frac * B, which must be an integer); 0: use `low`.
    pub low_frac: f64,
    /// A per-layer configuration file (`strumlab search`); its block and settings replace
    /// `block` and, for the layers it names, `scheme` and `low`. Empty: none.
    pub layer_config: String,
}

impl Default for RunParams {
    fn default() -> Self {
        RunParams {
            model: "mnist-8".into(),
            input_shape: Vec::new(),
            card: String::new(),
            data: String::new(),
            mode: Mode::Integer,
            device: Device::Auto,
            hw: DEFAULT_HW.into(),
            limit: 0,
            calib_images: crate::run::CALIB_IMAGES,
            act_calib: crate::run::ACT_CALIB,
            act_percentile: crate::run::ACT_PERCENTILE,
            low_frac: 0.0,
            layer_config: String::new(),
        }
    }
}

/// One expanded run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Run {
    /// Position in the expansion (the order runs are executed and merged in).
    pub index: usize,
    /// 12 hex digits of a hash of the run's non-default parameters: stable across spec
    /// edits that do not change the run, and the key that resume and merge use.
    pub id: String,
    pub params: RunParams,
    pub quant: QuantConfig,
    /// The run's parameters that differ from the defaults, as one JSON object (sorted keys).
    pub key: String,
    /// Why the run cannot execute (bad parameter combination); it becomes an error row.
    pub invalid: Option<String>,
}

impl Run {
    /// The run's non-default parameters other than model, scheme, B and L (which its
    /// configuration label shows), as `key=value` pairs: with the label, a name no other
    /// run of the sweep has.
    pub fn extra_params(&self) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.key).unwrap_or_default();
        // model, scheme, B and L are in the label; the version keys are the same for
        // every run of a sweep.
        let shown = ["model", "scheme", "block", "low", "quantizer", "hw_model"];
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| !shown.contains(&k.as_str()))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    }
}

/// The TOML file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Output directory (relative to the working directory); default `results/sweeps/<name>`.
    #[serde(default)]
    pub out: Option<String>,
    /// Values shared by every run.
    #[serde(default)]
    pub base: toml::Table,
    /// Lists of values; every combination is a run.
    #[serde(default)]
    pub matrix: toml::Table,
    /// A run matching every key of one rule (a value or a list of values) is dropped.
    #[serde(default)]
    pub exclude: Vec<toml::Table>,
}

/// Every key a spec may use, in expansion order (the last key of the matrix varies fastest).
pub fn known_keys() -> Vec<String> {
    let q = toml::Table::try_from(QuantConfig::default()).expect("QuantConfig serializes");
    let mut keys: Vec<String> = vec![
        "model",
        "input_shape",
        "card",
        "data",
        "mode",
        "device",
        "hw",
        "limit",
        "calib_images",
        "act_calib",
        "act_percentile",
        "scheme",
        "block",
        "low_frac",
        "layer_config",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for k in q.keys() {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    // QuantConfig's serialized order is its field order; toml::Table sorts, so restore it.
    let order = [
        "scheme",
        "block",
        "low",
        "block_axis",
        "selection",
        "weight_calib",
        "percentile",
        "p2_window",
        "p2_min_exp",
        "p2_max_exp",
        "p2_round",
        "dliq_shift",
        "dliq_shift_rule",
        "demote_from",
        "refit",
        "quantize_first_last",
        "depthwise",
        "l_policy",
        "min_sqnr_db",
        "dyn_criterion",
        "nm_n",
        "nm_m",
        "mx_elem_bits",
    ];
    keys.sort_by_key(|k| {
        let run = RUN_KEYS.iter().position(|r| r == k);
        let q = order.iter().position(|r| r == k);
        match (k.as_str(), run, q) {
            ("scheme", ..) => 100,
            ("block", ..) => 101,
            ("low_frac", ..) => 102,
            (_, Some(i), _) => i,
            (_, _, Some(i)) => 103 + i,
            _ => 1000,
        }
    });
    keys
}

fn cfg_err(path: &str, reason: String) -> Error {
    Error::Config {
        path: path.to_string(),
        reason,
    }
}

impl SweepSpec {
    /// The spec with every run's image limit set to `limit` (`--limit`): the limit is part
    /// of each run's id, so rows of a limited run are never taken for full ones.
    pub fn with_limit(&self, limit: Option<usize>) -> SweepSpec {
        let mut s = self.clone();
        if let Some(n) = limit {
            s.matrix.remove("limit");
            s.base
                .insert("limit".into(), toml::Value::Integer(n as i64));
        }
        s
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// A spec given as JSON (the Python API's dicts): the same document as the TOML file,
    /// checked the same way.
    pub fn from_json(json: &str, origin: &str) -> Result<Self> {
        let v: toml::Value =
            serde_json::from_str(json).map_err(|e| cfg_err(origin, crate::error::flat(e)))?;
        let text = toml::to_string(&v).map_err(|e| cfg_err(origin, crate::error::flat(e)))?;
        Self::parse(&text, origin)
    }

    /// Parse and check every key (unknown keys are named in the error).
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let spec: SweepSpec = toml::from_str(text)
            .map_err(|e| cfg_err(origin, crate::error::toml_reason(text, &e)))?;
        let known = known_keys();
        let check = |section: &str, t: &toml::Table| -> Result<()> {
            for k in t.keys() {
                if !known.contains(k) {
                    return Err(cfg_err(
                        origin,
                        format!(
                            "unknown key '{k}' in [{section}]; known keys: {}",
                            known.join(", ")
                        ),
                    ));
                }
            }
            Ok(())
        };
        check("base", &spec.base)?;
        check("matrix", &spec.matrix)?;
        for (i, e) in spec.exclude.iter().enumerate() {
            check(&format!("exclude #{}", i + 1), e)?;
        }
        for (k, v) in &spec.matrix {
            match v {
                toml::Value::Array(a) if !a.is_empty() => {}
                _ => {
                    return Err(cfg_err(
                        origin,
                        format!("[matrix] {k} must be a non-empty list of values"),
                    ));
                }
            }
        }
        if spec.name.is_empty()
            || !spec
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(cfg_err(
                origin,
                format!(
                    "name '{}' must be non-empty ASCII letters, digits, '-' or '_'",
                    spec.name
                ),
            ));
        }
        // Type errors in the base surface now, not as a failed row per run.
        split(&spec.base, origin)?;
        spec.combinations()
            .map_err(|n| cfg_err(origin, format!("the matrix has {n} combinations; at most {MAX_RUNS} runs per spec (split it into several specs or shards of specs)")))?;
        spec.check_excludes(origin)?;
        Ok(spec)
    }

    /// The number of matrix combinations (runs before exclusion and deduplication), or
    /// `Err(description)` past [`MAX_RUNS`] (checked: the product of the list lengths can
    /// overflow).
    fn combinations(&self) -> std::result::Result<usize, String> {
        let mut n: u128 = 1;
        let mut over = false;
        for v in self.matrix.values() {
            let len = v.as_array().map_or(1, |a| a.len()) as u128;
            n = n.saturating_mul(len);
            over |= n > MAX_RUNS as u128;
        }
        if over {
            Err(if n == u128::MAX {
                "more than 2^128".into()
            } else {
                n.to_string()
            })
        } else {
            Ok(n as usize)
        }
    }

    /// Every value an `exclude` rule names must be one the matrix (or the base) can take,
    /// so that a typo (`MIP2Q`, `8.0` for an integer key) is an error, not a rule that
    /// silently excludes nothing.
    fn check_excludes(&self, origin: &str) -> Result<()> {
        for (i, rule) in self.exclude.iter().enumerate() {
            for (k, v) in rule {
                let wanted: Vec<&toml::Value> = match v {
                    toml::Value::Array(a) => a.iter().collect(),
                    one => vec![one],
                };
                let possible: Vec<&toml::Value> = match (self.matrix.get(k), self.base.get(k)) {
                    (Some(toml::Value::Array(a)), _) => a.iter().collect(),
                    (_, Some(b)) => vec![b],
                    _ => Vec::new(),
                };
                if let Some(w) = wanted.iter().find(|w| !possible.contains(w)) {
                    return Err(cfg_err(
                        origin,
                        format!(
                            "exclude #{}: {k} = {w} is not a value of the matrix or base ({}); the rule would exclude nothing",
                            i + 1,
                            if possible.is_empty() {
                                "the key is in neither".to_string()
                            } else {
                                possible
                                    .iter()
                                    .map(|p| p.to_string())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            }
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The runs, in order, with duplicates (after normalization) removed. Parameter values
    /// of the wrong type are an error; parameter combinations that cannot run (e.g. L > B)
    /// become runs with `invalid` set.
    pub fn expand(&self, origin: &str) -> Result<Vec<Run>> {
        let keys: Vec<String> = known_keys()
            .into_iter()
            .filter(|k| self.matrix.contains_key(k))
            .collect();
        let lists: Vec<&Vec<toml::Value>> = keys
            .iter()
            .map(|k| self.matrix[k].as_array().expect("checked in parse"))
            .collect();
        let total: usize = lists.iter().map(|l| l.len()).product();
        let mut runs: Vec<Run> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for n in 0..total {
            let mut t = self.base.clone();
            let mut rem = n;
            for (k, l) in keys.iter().zip(&lists).rev() {
                t.insert(k.clone(), l[rem % l.len()].clone());
                rem /= l.len();
            }
            if self.exclude.iter().any(|rule| matches(rule, &t)) {
                continue;
            }
            let (params, mut quant) = split(&t, origin)?;
            if !params.layer_config.is_empty() {
                let f =
                    crate::quant::config::LayerConfigFile::load(Path::new(&params.layer_config))?;
                quant = f.apply(&quant);
            }
            let mut invalid = None;
            if params.low_frac != 0.0 {
                let l = params.low_frac * quant.block as f64;
                if !(0.0..=1.0).contains(&params.low_frac) || (l - l.round()).abs() > 1e-9 {
                    invalid = Some(format!(
                        "low_frac {} x block {} is not a whole number of values in 0..=B",
                        params.low_frac, quant.block
                    ));
                } else {
                    quant.low = l.round() as usize;
                }
            }
            let mut params = params;
            if invalid.is_none() {
                // Resolved into `low`; an unresolvable fraction stays in the run's key.
                params.low_frac = 0.0;
            }
            normalize(&mut params, &mut quant);
            if invalid.is_none() {
                invalid = quant.validate().err().map(|e| e.to_string());
            }
            if invalid.is_none() && params.mode == Mode::Fp32 && quant.scheme != Scheme::Fp32 {
                invalid = Some(format!(
                    "mode fp32 with scheme {}: fp32 mode runs unquantized weights (use scheme fp32)",
                    quant.scheme.as_str()
                ));
            }
            let key = canonical_key(&params, &quant);
            let id = format!("{:012x}", fnv1a64(key.as_bytes()) >> 16);
            if !seen.insert(id.clone()) {
                continue;
            }
            runs.push(Run {
                index: runs.len(),
                id,
                params,
                quant,
                key,
                invalid,
            });
        }
        Ok(runs)
    }

    /// The output directory.
    pub fn out_dir(&self) -> std::path::PathBuf {
        match &self.out {
            Some(o) => o.into(),
            None => Path::new("results/sweeps").join(&self.name),
        }
    }
}

/// Does `run` (its merged table) match every key of `rule`?
fn matches(rule: &toml::Table, run: &toml::Table) -> bool {
    rule.iter().all(|(k, want)| {
        let have = run.get(k);
        match want {
            toml::Value::Array(a) => a.iter().any(|w| have == Some(w)),
            w => have == Some(w),
        }
    })
}

/// Split a merged table into run parameters and quantization parameters.
fn split(t: &toml::Table, origin: &str) -> Result<(RunParams, QuantConfig)> {
    let mut run = toml::Table::new();
    let mut quant = toml::Table::new();
    for (k, v) in t {
        if RUN_KEYS.contains(&k.as_str()) {
            run.insert(k.clone(), v.clone());
        } else {
            quant.insert(k.clone(), v.clone());
        }
    }
    let p: RunParams = toml::Value::Table(run)
        .try_into()
        .map_err(|e| cfg_err(origin, format!("run parameter: {}", crate::error::flat(e))))?;
    let q: QuantConfig = toml::Value::Table(quant).try_into().map_err(|e| {
        cfg_err(
            origin,
            format!("quantization parameter: {}", crate::error::flat(e)),
        )
    })?;
    Ok((p, q))
}

/// Reset the parameters a run's scheme does not read, so that e.g. INT8 x 4 values of L is
/// one run, not four identical ones.
pub fn normalize(p: &mut RunParams, q: &mut QuantConfig) {
    let d = QuantConfig::default();
    if q.scheme == Scheme::Fp32 {
        p.mode = Mode::Fp32;
        p.calib_images = RunParams::default().calib_images;
        p.act_calib = RunParams::default().act_calib;
        p.act_percentile = RunParams::default().act_percentile;
        q.weight_calib = d.weight_calib;
        q.percentile = d.percentile;
    }
    if !q.layers.is_empty() {
        // Per-layer StruM settings read every StruM parameter, whatever `scheme` says.
        return;
    }
    let block_scheme = matches!(q.scheme, Scheme::Mip2q | Scheme::Dliq | Scheme::Mx);
    if !block_scheme {
        q.block = d.block;
        q.block_axis = d.block_axis;
    }
    if !q.scheme.is_strum() {
        q.low = d.low;
        q.selection = d.selection;
        q.l_policy = d.l_policy;
        q.min_sqnr_db = d.min_sqnr_db;
        q.dyn_criterion = d.dyn_criterion;
        q.demote_from = d.demote_from;
        q.refit = d.refit;
    }
    if q.scheme != Scheme::Mip2q {
        q.p2_window = d.p2_window;
        q.p2_round = d.p2_round;
    }
    if q.scheme != Scheme::Mip2q || q.p2_window != crate::quant::config::P2Window::Fixed {
        q.p2_min_exp = d.p2_min_exp;
        q.p2_max_exp = d.p2_max_exp;
    }
    if q.scheme != Scheme::Dliq {
        q.dliq_shift = d.dliq_shift;
    }
    if q.scheme != Scheme::Dliq || q.dliq_shift == crate::quant::config::DliqShift::None {
        q.dliq_shift_rule = d.dliq_shift_rule;
    }
    if q.scheme != Scheme::Nm {
        q.nm_n = d.nm_n;
        q.nm_m = d.nm_m;
    }
    if q.scheme != Scheme::Mx {
        q.mx_elem_bits = d.mx_elem_bits;
    }
    if matches!(q.scheme, Scheme::Fp32 | Scheme::Int8) {
        // INT8 applies to every layer regardless of the layer policy.
        q.quantize_first_last = d.quantize_first_last;
        q.depthwise = d.depthwise;
    }
    if q.scheme.is_strum() {
        match q.l_policy {
            LPolicy::Static => {
                q.min_sqnr_db = d.min_sqnr_db;
                q.dyn_criterion = d.dyn_criterion;
            }
            LPolicy::Dynamic => q.low = d.low,
        }
    }
}

/// The non-default parameters as one JSON object with sorted keys.
pub fn canonical_key(p: &RunParams, q: &QuantConfig) -> String {
    let mut m = BTreeMap::new();
    let mut put = |v: serde_json::Value, d: serde_json::Value| {
        if let (serde_json::Value::Object(v), serde_json::Value::Object(d)) = (v, d) {
            for (k, x) in v {
                if d.get(&k) != Some(&x) {
                    m.insert(k, x);
                }
            }
        }
    };
    put(
        serde_json::to_value(p).expect("serializes"),
        serde_json::to_value(RunParams::default()).expect("serializes"),
    );
    // `scheme` always named, so that every key says what it runs.
    let mut qv = serde_json::to_value(q).expect("serializes");
    let scheme = qv["scheme"].clone();
    if let serde_json::Value::Object(o) = &mut qv {
        o.remove("scheme");
    }
    put(
        qv,
        serde_json::to_value(QuantConfig::default()).expect("serializes"),
    );
    if q.scheme.is_strum() || !q.layers.is_empty() {
        // StruM results change with the quantizer's defaults and arithmetic (FP32 and the
        // other schemes keep their version-1 ids: their results did not change).
        m.insert("quantizer".into(), crate::quant::QUANTIZER_VERSION.into());
    }
    if !p.hw.is_empty() && q.scheme != Scheme::Fp32 {
        // The hardware columns change with the FlexNN model (version 1 ids have none).
        m.insert("hw_model".into(), crate::hw::HW_MODEL_VERSION.into());
    }
    m.insert("scheme".into(), scheme);
    serde_json::to_string(&m).expect("serializes")
}

/// Most runs one spec may expand to: far above any sweep we know of (the reproduction has
/// 90), far below what would exhaust memory holding the runs (a run is ~1 KB).
pub const MAX_RUNS: usize = 1_000_000;

pub use crate::hash::fnv1a64;

/// A shard `i/n` (0-based i): run k belongs to shard k mod n.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (a, b) = s
            .split_once('/')
            .ok_or("expected i/n, e.g. 3/16 (i counts from 0)")?;
        let index: usize = a
            .trim()
            .parse()
            .map_err(|_| format!("'{a}' is not a shard index"))?;
        let count: usize = b
            .trim()
            .parse()
            .map_err(|_| format!("'{b}' is not a shard count"))?;
        if count == 0 || index >= count {
            return Err(format!(
                "shard {index}/{count}: need 0 <= i < n (i counts from 0, as SLURM_ARRAY_TASK_ID with --array=0-{})",
                count.max(1) - 1
            ));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    pub fn owns(&self, run_index: usize) -> bool {
        run_index % self.count == self.index
    }
    /// File-name suffix, e.g. `.shard-03-of-16`.
    pub fn suffix(&self) -> String {
        let w = (self.count - 1).to_string().len().max(2);
        format!(".shard-{:0w$}-of-{}", self.index, self.count, w = w)
    }
}
