//! Validation of the model against a published accelerator: a spec (experiments/hw/eyeriss.toml)
//! names an architecture file in our format, networks as lists of layer shapes with the
//! batch they ran at, and the published figures; [`run`] maps every layer with the
//! baseline PE and returns one row per figure: {metric, published, model, ratio}.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::mapper::LayerShape;
use super::pe::PeKind;
use super::{Activity, best_mapping};
use crate::error::{Error, Result};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: String,
    pub source: String,
    /// architecture file, relative to the spec
    pub arch: PathBuf,
    pub networks: Vec<Network>,
    pub published: Vec<Published>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub name: String,
    /// images per batch: weights are fetched from DRAM once per batch
    pub batch: f64,
    /// activation density assumed (no measured activity exists for these networks)
    pub act_density: f64,
    pub source: String,
    pub layers: Vec<Layer>,
}

/// One convolution: output channels K and input channels C per group, output P x Q,
/// kernel R x S, input H x W (all groups together: C x groups channels).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub name: String,
    #[serde(default = "one")]
    pub groups: usize,
    pub k: usize,
    pub c: usize,
    pub p: usize,
    pub q: usize,
    pub r: usize,
    pub s: usize,
    pub in_h: usize,
    pub in_w: usize,
}

fn one() -> usize {
    1
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Published {
    pub metric: String,
    pub network: String,
    /// `power_mw_at_fps` (with `fps`), `dram_accesses_per_mac` or `fps_at_clock`
    pub kind: String,
    #[serde(default)]
    pub fps: f64,
    pub value: f64,
    pub unit: String,
    pub source: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub metric: String,
    pub published: f64,
    pub model: f64,
    /// model / published
    pub ratio: f64,
    pub unit: String,
    pub within_2x: bool,
    pub source: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub name: String,
    pub source: String,
    pub arch: String,
    pub tech: String,
    pub networks: Vec<NetworkFigures>,
    pub rows: Vec<Row>,
}

/// What the model computes for one network, per image.
#[derive(Clone, Debug, Serialize)]
pub struct NetworkFigures {
    pub name: String,
    pub macs: f64,
    pub on_chip_energy_uj: f64,
    pub pe_energy_uj: f64,
    pub sram_energy_uj: f64,
    /// DRAM words (data_bytes each) with weights amortized over the batch
    pub dram_accesses: f64,
    pub cycles: f64,
}

fn shape(l: &Layer) -> LayerShape {
    LayerShape {
        groups: l.groups,
        k: l.k,
        c: l.c,
        p: l.p,
        q: l.q,
        r: l.r,
        s: l.s,
        inputs: l.groups * l.c * l.in_h * l.in_w,
        // the spec gives input and output sizes; the stride is what relates them
        stride: [
            (l.in_h.saturating_sub(l.r) / l.p.saturating_sub(1).max(1)).max(1),
            (l.in_w.saturating_sub(l.s) / l.q.saturating_sub(1).max(1)).max(1),
        ],
        dilation: [1, 1],
        in_hw: [l.in_h, l.in_w],
    }
}

fn network(arch: &super::config::Arch, t: &super::config::Tech, n: &Network) -> NetworkFigures {
    let mut f = NetworkFigures {
        name: n.name.clone(),
        macs: 0.0,
        on_chip_energy_uj: 0.0,
        pe_energy_uj: 0.0,
        sram_energy_uj: 0.0,
        dram_accesses: 0.0,
        cycles: 0.0,
    };
    for l in &n.layers {
        let s = shape(l);
        let macs = s.macs();
        let act = Activity {
            pairs_dense: [macs, 0.0, 0.0],
            pairs_nz_act: [macs * n.act_density, 0.0, 0.0],
            act_density: n.act_density,
            weight_density: 1.0,
            source: "density-model",
        };
        let (m, e) = best_mapping(
            arch,
            t,
            PeKind::Baseline,
            &act,
            &s,
            arch.data_bytes,
            Default::default(),
        );
        f.macs += macs;
        f.pe_energy_uj += e.pe_dynamic() * 1e-6;
        f.sram_energy_uj += e.sram_pj * 1e-6;
        f.on_chip_energy_uj += e.on_chip() * 1e-6;
        f.dram_accesses +=
            (m.dram_weight_bytes / n.batch + m.dram_input_bytes + m.dram_output_bytes)
                / arch.data_bytes;
        f.cycles += e.cycles;
    }
    f
}

pub fn run(spec_path: &Path) -> Result<Report> {
    let spec: Spec = super::config::read(spec_path)?;
    let dir = spec_path.parent().unwrap_or(Path::new("."));
    let (arch, tech) = super::config::load(&dir.join(&spec.arch))?;
    let nets: Vec<NetworkFigures> = spec
        .networks
        .iter()
        .map(|n| network(&arch, &tech, n))
        .collect();
    let mut rows = Vec::new();
    for p in &spec.published {
        let f = nets
            .iter()
            .find(|n| n.name == p.network)
            .ok_or_else(|| Error::Data {
                path: spec_path.display().to_string(),
                reason: format!(
                    "published row '{}' names network '{}', which the spec lacks",
                    p.metric, p.network
                ),
            })?;
        let model = match p.kind.as_str() {
            // on-chip energy per image x images per second; uJ x 1/s = uW
            "power_mw_at_fps" => f.on_chip_energy_uj * p.fps * 1e-3,
            "dram_accesses_per_mac" => f.dram_accesses / f.macs,
            // images per second at the architecture's clock
            "fps_at_clock" => arch.clock_mhz * 1e6 / f.cycles.max(1.0),
            other => {
                return Err(Error::Data {
                    path: spec_path.display().to_string(),
                    reason: format!("published row '{}': unknown kind '{other}'", p.metric),
                });
            }
        };
        let ratio = model / p.value;
        rows.push(Row {
            metric: p.metric.clone(),
            published: p.value,
            model,
            ratio,
            unit: p.unit.clone(),
            within_2x: (0.5..=2.0).contains(&ratio),
            source: p.source.clone(),
        });
    }
    Ok(Report {
        name: spec.name,
        source: spec.source,
        arch: arch.name.clone(),
        tech: tech.name.clone(),
        networks: nets,
        rows,
    })
}
