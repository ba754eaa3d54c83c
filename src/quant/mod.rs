//! Quantization schemes: FP32 weights -> encoded weights + dequantized view + statistics.
//!
//! [`quantize_graph`] applies a [`QuantConfig`] to every weight layer of a graph, honouring
//! the layer policy (first/last layer, depthwise) and the static/dynamic choice of L.

pub mod calib;
pub mod config;
pub mod geometry;
pub mod lowp;
pub mod packed;
pub mod schemes;
pub mod strum;

use serde::Serialize;

pub use config::{QuantConfig, Scheme};
pub use geometry::Geometry;
pub use packed::Packed;
pub use schemes::{Encoded, Quantizer, WClass, WeightView};

use crate::error::Result;

/// Version of the StruM quantizer's defaults and arithmetic, part of every StruM sweep run's
/// id so that a sweep directory never mixes rows of two versions. 2: anchored MIP2Q window,
/// `khwc` blocks for layers with fewer input channels than B.
pub const QUANTIZER_VERSION: u32 = 2;
use crate::model::{Graph, LayerRef};
use config::{Depthwise, LPolicy};

/// Per-layer statistics of a quantized weight tensor.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LayerStats {
    pub params: u64,
    /// Storage per weight including per-block metadata (masks, shifts, shared exponents).
    pub bits_per_weight: f64,
    /// The same with an ideal mask of log2 C(B, L) bits per mixed block (StruM).
    pub bits_per_weight_ideal_mask: f64,
    /// Real weights in low-precision lanes (StruM), as a percentage of `params`: blocks
    /// padded past the layer's reduction demote padding first, so this can be below L / B.
    pub demoted_pct: f64,
    pub high: u64,
    pub low: u64,
    pub zero: u64,
    pub mse: f64,
    /// 10 log10(sum w^2 / sum (w - w_q)^2); +inf when exact.
    pub sqnr_db: f64,
    pub max_abs_err: f64,
}

impl LayerStats {
    pub fn compute(w: &[f32], e: &Encoded) -> Self {
        let mut sig = 0f64;
        let mut err = 0f64;
        let mut maxe = 0f64;
        for (&a, &b) in w.iter().zip(&e.deq) {
            let d = (a - b) as f64;
            sig += (a as f64).powi(2);
            err += d * d;
            maxe = maxe.max(d.abs());
        }
        let n = w.len().max(1) as f64;
        let count = |c: WClass| e.class.iter().filter(|&&x| x == c).count() as u64;
        LayerStats {
            params: w.len() as u64,
            bits_per_weight: e.storage_bits as f64 / n,
            bits_per_weight_ideal_mask: e.ideal_storage_bits / n,
            demoted_pct: 100.0 * e.demoted as f64 / n,
            high: count(WClass::High),
            low: count(WClass::Low),
            zero: count(WClass::Zero),
            mse: err / n,
            sqnr_db: sqnr_db(sig, err),
            max_abs_err: maxe,
        }
    }
}

pub fn sqnr_db(signal: f64, noise: f64) -> f64 {
    if noise == 0.0 {
        f64::INFINITY
    } else if signal == 0.0 {
        f64::NEG_INFINITY
    } else {
        10.0 * (signal / noise).log10()
    }
}

/// One quantized layer.
#[derive(Clone, Debug)]
pub struct LayerQuant {
    /// Index of the node in `Graph::nodes`.
    pub node: usize,
    pub name: String,
    /// `conv`, `conv-dw`, `conv-grouped` or `dense`.
    pub kind: &'static str,
    pub shape: Vec<usize>,
    /// Scheme actually applied to this layer (e.g. `int8` for a protected first layer).
    pub applied: String,
    /// Why the scheme differs from the requested one, if it does.
    pub reason: Option<&'static str>,
    pub geometry: Geometry,
    pub encoded: Encoded,
    pub stats: LayerStats,
}

/// Whole-model summary over the quantized layers.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ModelSummary {
    pub label: String,
    pub layers: usize,
    pub params: u64,
    pub bits_per_weight: f64,
    pub bits_per_weight_ideal_mask: f64,
    /// Real weights in low-precision lanes, % of all weights of the quantized layers.
    pub demoted_pct: f64,
    pub high: u64,
    pub low: u64,
    pub zero: u64,
    /// Mean squared weight error over all weights of all layers.
    pub mse: f64,
    /// SQNR over all weights of all layers together.
    pub sqnr_db: f64,
    pub max_abs_err: f64,
}

#[derive(Clone, Debug)]
pub struct ModelQuant {
    pub config: QuantConfig,
    pub layers: Vec<LayerQuant>,
    pub summary: ModelSummary,
}

fn quantizer_for(cfg: &QuantConfig, low: usize) -> Box<dyn Quantizer> {
    match cfg.scheme {
        Scheme::Fp32 => Box::new(schemes::Fp32),
        Scheme::Int8 => Box::new(schemes::Strum::int8(cfg)),
        Scheme::Mip2q | Scheme::Dliq => Box::new(schemes::Strum {
            cfg: cfg.clone(),
            low,
        }),
        Scheme::Int4 => Box::new(schemes::Int4 {
            calib: cfg.weight_calib,
            percentile: cfg.percentile,
        }),
        Scheme::Nm => Box::new(schemes::NM {
            n: cfg.nm_n,
            m: cfg.nm_m,
            calib: cfg.weight_calib,
            percentile: cfg.percentile,
        }),
        Scheme::Mx => Box::new(schemes::Mx {
            block: cfg.block,
            elem_bits: cfg.mx_elem_bits,
        }),
    }
}

/// Quantize one layer with the scheme of `cfg` (no layer policy applied).
pub fn quantize_layer(
    cfg: &QuantConfig,
    layer: LayerRef,
    low: usize,
) -> Result<(Geometry, Encoded)> {
    let w = layer.weight();
    let g = geometry::layer_geometry(layer, cfg.block_axis, cfg.depthwise, cfg.block);
    let view = WeightView {
        data: &w.data,
        out_channels: w.shape[0],
        geometry: g,
    };
    Ok((g, quantizer_for(cfg, low).quantize(&view)?))
}

/// The layer policy: why the layer at position `pos` of `n` weight layers stays INT8 under
/// `cfg` (first / last layer, depthwise), or `None` when it gets the scheme.
pub fn kept_int8(cfg: &QuantConfig, pos: usize, n: usize, layer: LayerRef) -> Option<&'static str> {
    let edge = pos == 0 || pos + 1 == n;
    let dw = matches!(layer, LayerRef::Conv(c) if c.is_depthwise());
    if cfg.scheme == Scheme::Fp32 || cfg.scheme == Scheme::Int8 {
        None
    } else if edge && !cfg.quantize_first_last {
        Some(if pos == 0 {
            "first layer kept INT8"
        } else {
            "last layer kept INT8"
        })
    } else if dw && cfg.depthwise == Depthwise::Int8 {
        Some("depthwise kept INT8")
    } else {
        None
    }
}

/// Mean square of every input channel of every weight layer's input on calibration images
/// (node index -> one value per input channel), for `dyn_criterion = output-sqnr`.
pub type InputEnergy = std::collections::BTreeMap<usize, Vec<f64>>;

/// [`InputEnergy`] of `graph` on `images` (`[N, ...]`), with the FP32 reference executor.
pub fn input_energy(graph: &Graph, images: &crate::model::Tensor) -> Result<InputEnergy> {
    let mut sums: std::collections::BTreeMap<usize, (Vec<f64>, u64)> = Default::default();
    crate::cpu::reference::run_observed(graph, images, &Default::default(), &mut |node, x| {
        let c = x.shape.get(1).copied().unwrap_or(1).max(1);
        let inner: usize = x.shape.iter().skip(2).product::<usize>().max(1);
        let e = sums.entry(node).or_insert_with(|| (vec![0.0; c], 0));
        for (i, &v) in x.data.iter().enumerate() {
            e.0[(i / inner) % c] += (v as f64).powi(2);
        }
        e.1 += (x.data.len() / c) as u64;
    })?;
    Ok(sums
        .into_iter()
        .map(|(node, (s, n))| (node, s.iter().map(|v| v / n.max(1) as f64).collect()))
        .collect())
}

/// Estimated output SQNR of a layer: weight errors weighted by the mean square of their
/// input channel (`energy`, one value per input channel of the node's input).
fn output_sqnr_db(w: &crate::model::Tensor, e: &Encoded, energy: &[f64]) -> f64 {
    let oc = w.shape[0].max(1);
    let per = w.numel() / oc;
    let icg = w.shape.get(1).copied().unwrap_or(1).max(1);
    let taps = (per / icg).max(1);
    let groups = (energy.len() / icg).max(1);
    let (mut sig, mut err) = (0f64, 0f64);
    for (i, (&a, &b)) in w.data.iter().zip(&e.deq).enumerate() {
        let (o, ic) = (i / per, (i % per) / taps);
        let g = o / (oc / groups).max(1);
        let x = energy.get(g * icg + ic).copied().unwrap_or(0.0);
        sig += (a as f64).powi(2) * x;
        err += ((a - b) as f64).powi(2) * x;
    }
    sqnr_db(sig, err)
}

/// Quantize every weight layer of `graph`.
pub fn quantize_graph(graph: &Graph, cfg: &QuantConfig) -> Result<ModelQuant> {
    quantize_graph_with(graph, cfg, None)
}

/// [`quantize_graph`] with the input-channel energies that `dyn_criterion = output-sqnr`
/// needs (an error naming the option without them).
pub fn quantize_graph_with(
    graph: &Graph,
    cfg: &QuantConfig,
    energy: Option<&InputEnergy>,
) -> Result<ModelQuant> {
    cfg.validate()?;
    let output_crit = cfg.scheme.is_strum()
        && cfg.l_policy == LPolicy::Dynamic
        && cfg.dyn_criterion == config::DynCriterion::OutputSqnr;
    if output_crit && energy.is_none() {
        return Err(crate::error::Error::InvalidArg {
            arg: "dyn-criterion".into(),
            reason: "output-sqnr needs calibration images (eval, sweep); use weight-sqnr here"
                .into(),
        });
    }
    let layers = graph.layers();
    let n = layers.len();
    let int8_cfg = QuantConfig {
        scheme: Scheme::Int8,
        ..cfg.clone()
    };
    check_layer_names(graph, cfg)?;
    let mut out = Vec::with_capacity(n);
    for (pos, (node, layer)) in layers.into_iter().enumerate() {
        let w = layer.weight();
        let own = cfg.layers.get(&graph.nodes[node].name);
        let reason = match own {
            Some(_) => None,
            None => kept_int8(cfg, pos, n, layer),
        };
        let (g, enc) = if let Some(s) = own {
            let c = QuantConfig {
                scheme: s.scheme,
                ..int8_cfg.clone()
            };
            quantize_layer(&c, layer, if s.scheme.is_strum() { s.low } else { 0 })?
        } else if reason.is_some() {
            quantize_layer(&int8_cfg, layer, 0)?
        } else if cfg.scheme.is_strum() && cfg.l_policy == LPolicy::Dynamic {
            // Largest L whose weight SQNR meets the budget; L = 0 (INT8) otherwise.
            let mut chosen = None;
            for low in (1..=cfg.block).rev() {
                let (g, e) = quantize_layer(cfg, layer, low)?;
                let sqnr = match energy.and_then(|m| m.get(&node)).filter(|_| output_crit) {
                    Some(x) => output_sqnr_db(w, &e, x),
                    None => LayerStats::compute(&w.data, &e).sqnr_db,
                };
                if sqnr >= cfg.min_sqnr_db as f64 {
                    chosen = Some((g, e));
                    break;
                }
            }
            match chosen {
                Some(c) => c,
                None => quantize_layer(cfg, layer, 0)?,
            }
        } else {
            quantize_layer(cfg, layer, cfg.low)?
        };
        let stats = LayerStats::compute(&w.data, &enc);
        let applied = if let Some(s) = own {
            s.label()
        } else if reason.is_some() {
            "int8".to_string()
        } else if cfg.scheme.is_strum() {
            format!("{}-l{}", cfg.scheme.as_str(), enc.low)
        } else {
            cfg.scheme.as_str().to_string()
        };
        out.push(LayerQuant {
            node,
            name: graph.nodes[node].name.clone(),
            kind: layer.kind(),
            shape: w.shape.clone(),
            applied,
            reason,
            geometry: g,
            encoded: enc,
            stats,
        });
    }
    let summary = summarize(cfg, graph, &out);
    Ok(ModelQuant {
        config: cfg.clone(),
        layers: out,
        summary,
    })
}

/// Every layer a per-layer configuration names must be a weight layer of `graph`, and a
/// depthwise layer takes a StruM setting only when `depthwise` blocks it.
fn check_layer_names(graph: &Graph, cfg: &QuantConfig) -> Result<()> {
    let layers = graph.layers();
    for (name, s) in &cfg.layers {
        let found = layers.iter().find(|(i, _)| &graph.nodes[*i].name == name);
        let reason = match found {
            None => format!(
                "'{name}' is not a weight layer of the model (its weight layers: {})",
                layers
                    .iter()
                    .map(|(i, _)| graph.nodes[*i].name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some((_, LayerRef::Conv(c)))
                if c.is_depthwise() && s.scheme.is_strum() && cfg.depthwise == Depthwise::Int8 =>
            {
                format!(
                    "layer '{name}' is depthwise: a StruM setting there needs depthwise = kernel or channel"
                )
            }
            Some(_) => continue,
        };
        return Err(crate::error::Error::InvalidArg {
            arg: "layer-config".into(),
            reason,
        });
    }
    Ok(())
}

fn summarize(cfg: &QuantConfig, graph: &Graph, layers: &[LayerQuant]) -> ModelSummary {
    let mut s = ModelSummary {
        label: cfg.label(),
        layers: layers.len(),
        ..Default::default()
    };
    let (mut sig, mut err, mut bits) = (0f64, 0f64, 0f64);
    let (mut ideal, mut demoted) = (0f64, 0u64);
    for l in layers {
        let w = graph
            .layers()
            .into_iter()
            .find(|(i, _)| *i == l.node)
            .map(|(_, r)| r.weight());
        s.params += l.stats.params;
        s.high += l.stats.high;
        s.low += l.stats.low;
        s.zero += l.stats.zero;
        bits += l.encoded.storage_bits as f64;
        ideal += l.encoded.ideal_storage_bits;
        demoted += l.encoded.demoted;
        s.max_abs_err = s.max_abs_err.max(l.stats.max_abs_err);
        if let Some(w) = w {
            for (&a, &b) in w.data.iter().zip(&l.encoded.deq) {
                sig += (a as f64).powi(2);
                err += ((a - b) as f64).powi(2);
            }
        }
    }
    let per_param = |x: f64| {
        if s.params > 0 {
            x / s.params as f64
        } else {
            0.0
        }
    };
    s.bits_per_weight = per_param(bits);
    s.bits_per_weight_ideal_mask = per_param(ideal);
    s.demoted_pct = 100.0 * per_param(demoted as f64);
    s.sqnr_db = sqnr_db(sig, err);
    s.mse = if s.params > 0 {
        err / s.params as f64
    } else {
        0.0
    };
    s
}

/// Per-tensor INT8 scales of the input activation of every weight layer, calibrated on
/// `images` (`[N, ...]`, the model's input layout) with the FP32 reference executor.
/// Returns `(node index, scale)` in layer order.
pub fn calibrate_activations(
    graph: &Graph,
    images: &crate::model::Tensor,
    method: config::Calib,
    percentile: f32,
) -> Result<Vec<(usize, f32)>> {
    let mut seen: std::collections::BTreeMap<usize, Vec<f32>> = Default::default();
    crate::cpu::reference::run_observed(graph, images, &Default::default(), &mut |node, x| {
        seen.entry(node).or_default().extend_from_slice(&x.data);
    })?;
    Ok(seen
        .into_iter()
        .map(|(node, v)| (node, calib::activation_scale(&v, method, percentile)))
        .collect())
}
