//! The FlexNN model: hand-computed mappings, invariants, configuration errors.

mod common;

use std::path::{Path, PathBuf};

use strumlab::hw::config::{self, Arch, Tech};
use strumlab::hw::mapper::{self, Descriptor, Dim, LayerShape, Stationary};
use strumlab::hw::pe::{self, PeKind, Variant};
use strumlab::hw::{Activity, layer_energy};
use strumlab::model::LoadOptions;
use strumlab::quant::config::DliqShift;
use strumlab::quant::{QuantConfig, Scheme};

fn arch_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("experiments/hw/flexnn.toml")
}

fn load() -> (Arch, Tech) {
    config::load(&arch_path()).unwrap()
}

#[test]
fn hand_computed_pointwise_layer_weight_stationary() {
    let (arch, _) = load();
    // 1x1 conv, K = 16, C = 8, 4x4 outputs on a 16x16 array with 8 lanes.
    let l = LayerShape {
        groups: 1,
        k: 16,
        c: 8,
        p: 4,
        q: 4,
        r: 1,
        s: 1,
        inputs: 8 * 4 * 4,
        stride: [1, 1],
        dilation: [1, 1],
        in_hw: [4, 4],
    };
    let d = Descriptor {
        rows: Dim::C,
        cols: Dim::K,
        lanes: Dim::C,
        stationary: Stationary::Weight,
    };
    let m = mapper::map(&arch, &l, d, 1.0).unwrap();
    // C/8 lanes = 1 step, K over 16 columns = 1 step, P x Q = 16 temporal steps.
    assert_eq!(m.cycles, 16.0);
    assert_eq!(m.utilization, 2048.0 / (16.0 * 2048.0));
    assert_eq!(m.sram_weight_bytes, 128.0, "each weight read once");
    assert_eq!(
        m.sram_input_bytes,
        2048.0 / 16.0,
        "inputs broadcast across the 16 K columns"
    );
    // one reduction step per output: a 32-bit partial sum written once (2 * 1 - 1 accesses)
    assert_eq!(m.sram_output_bytes, 256.0 * 4.0);
    assert_eq!(m.dram_bytes, 128.0 + 128.0 + 256.0);
    // Output-stationary over (P, Q): weights re-read per use, shared by the 16 PEs.
    let os = mapper::map(
        &arch,
        &l,
        Descriptor {
            rows: Dim::P,
            cols: Dim::Q,
            lanes: Dim::C,
            stationary: Stationary::Output,
        },
        1.0,
    )
    .unwrap();
    assert_eq!(os.cycles, 16.0, "K temporal");
    assert_eq!(os.sram_weight_bytes, 2048.0 / 16.0);
    assert_eq!(os.sram_output_bytes, 256.0);
    // Illegal: lanes over K, or the same dimension twice.
    assert!(
        mapper::map(
            &arch,
            &l,
            Descriptor {
                rows: Dim::C,
                cols: Dim::C,
                lanes: Dim::C,
                stationary: Stationary::Weight
            },
            1.0
        )
        .is_none()
    );
    assert!(
        mapper::map(
            &arch,
            &l,
            Descriptor {
                rows: Dim::C,
                cols: Dim::P,
                lanes: Dim::K,
                stationary: Stationary::Weight
            },
            1.0
        )
        .is_none()
    );
}

fn activity(act_density: f64, low_frac: f64) -> Activity {
    let macs = 2048.0;
    let dense = [macs * (1.0 - low_frac), macs * low_frac, 0.0];
    Activity {
        pairs_dense: dense,
        pairs_nz_act: [dense[0] * act_density, dense[1] * act_density, 0.0],
        act_density,
        weight_density: 1.0,
        source: "density-model",
    }
}

#[test]
fn sparsity_invariants() {
    let (mut arch, tech) = load();
    let l = LayerShape {
        groups: 1,
        k: 16,
        c: 8,
        p: 4,
        q: 4,
        r: 1,
        s: 1,
        inputs: 128,
        stride: [1, 1],
        dilation: [1, 1],
        in_hw: [4, 4],
    };
    let d = mapper::FIXED[0].1;
    let m = mapper::map(&arch, &l, d, 1.0).unwrap();
    let strum = PeKind::Strum {
        scheme: Scheme::Mip2q,
        dliq_shift: DliqShift::Block,
        block: 8,
        low: 4,
        variant: Variant::Static,
    };
    for kind in [PeKind::Baseline, strum] {
        // No zeros: skipping buys nothing, and costs its find-first logic (clock-gated when
        // skipping is off).
        arch.sparsity.zero_skipping = true;
        arch.sparsity.zvc = false;
        let on = layer_energy(&arch, &tech, kind, &activity(1.0, 0.5), &m);
        arch.sparsity.zero_skipping = false;
        let off = layer_energy(&arch, &tech, kind, &activity(1.0, 0.5), &m);
        assert!(on.sparsity_pj > 0.0 && off.sparsity_pj == 0.0);
        assert_eq!(on.total_dynamic() - on.sparsity_pj, off.total_dynamic());
        assert_eq!(on.cycles, off.cycles);
        // More zeros never cost more.
        arch.sparsity.zero_skipping = true;
        arch.sparsity.zvc = true;
        let mut prev = f64::INFINITY;
        for k in 0..=10 {
            let e = layer_energy(
                &arch,
                &tech,
                kind,
                &activity(1.0 - k as f64 / 10.0, 0.5),
                &m,
            );
            assert!(
                e.total_dynamic() <= prev + 1e-9,
                "density {}",
                1.0 - k as f64 / 10.0
            );
            prev = e.total_dynamic();
        }
    }
}

#[test]
fn area_ordering_static_dynamic_baseline() {
    let (arch, tech) = load();
    for scheme in [Scheme::Mip2q, Scheme::Dliq] {
        for shift in [DliqShift::Block, DliqShift::None] {
            for low in [1usize, 2, 4, 6, 8] {
                let k = |variant| PeKind::Strum {
                    scheme,
                    dliq_shift: shift,
                    block: 8,
                    low,
                    variant,
                };
                let base = pe::area(&arch, &tech, PeKind::Baseline).total_um2;
                let st = pe::area(&arch, &tech, k(Variant::Static)).total_um2;
                let dy = pe::area(&arch, &tech, k(Variant::Dynamic)).total_um2;
                // Dynamic DLIQ gates the baseline's lanes; dynamic MIP2Q adds a shifter and a
                // steering mux per lane.
                match scheme {
                    Scheme::Dliq => assert_eq!(dy, base, "{shift:?} L={low}"),
                    _ => assert!(dy > base, "{shift:?} L={low}: dynamic MIP2Q {dy} <= {base}"),
                }
                // Static StruM adds operand steering on every lane (~144 um2 per PE) and a
                // precision mask to the filter RF (B bits per block: packed blocks are larger
                // than INT8 ones below L = B/4); with few demoted lanes these outweigh the
                // cheap lanes' saving. From L = B/2 (the paper's regime) static is always the
                // smallest.
                if low >= 4 {
                    assert!(
                        st < dy,
                        "{scheme:?} {shift:?} L={low}: static {st} >= dynamic {dy}"
                    );
                }
                // Power: a low-precision MAC never costs more than an INT8 one.
                let e = pe::energy(&arch, &tech, k(Variant::Static));
                assert!(e.mac_low_pj < e.mac_high_pj);
            }
        }
    }
}

#[test]
fn mapper_never_loses_to_a_fixed_dataflow() {
    for model in [
        "mnist-8",
        "experiments/data/onnx-light/light_resnet50.onnx",
        "experiments/data/onnx-light/light_squeezenet.onnx",
    ] {
        let path = if model.ends_with(".onnx") {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join(model)
                .display()
                .to_string()
        } else {
            model.to_string()
        };
        let (g, _) = strumlab::zoo::resolve(&path, &LoadOptions::default()).unwrap();
        let cfg = QuantConfig {
            scheme: Scheme::Mip2q,
            ..Default::default()
        };
        let r = strumlab::hw::run(&arch_path(), None, None, &g, &cfg, None).unwrap();
        assert_eq!(r.activity_source, "density-model");
        // The default objective is energy x latency: per layer, the flexible mapping's EDP
        // is never above a fixed dataflow's (it takes the fixed one otherwise).
        for l in &r.layers {
            let flex = l.baseline.total_dynamic() * l.baseline.cycles;
            for ((name, e), (_, c)) in l.fixed_dataflow_pj.iter().zip(&l.fixed_dataflow_cycles) {
                assert!(
                    flex <= e * c * (1.0 + 1e-12),
                    "{model} {}: flexible worse than {name}",
                    l.name
                );
            }
        }
        let red = strumlab::hw::reductions(&r, Variant::Static).unwrap();
        assert!(red.pe_power_reduction_pct > 0.0 && red.pe_area_reduction_pct > 0.0);
        let dy = strumlab::hw::reductions(&r, Variant::Dynamic).unwrap();
        assert!(
            dy.pe_area_reduction_pct < 0.0,
            "dynamic MIP2Q adds shifter lanes"
        );
        assert!(dy.pe_power_reduction_pct > 0.0);
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    // A copied technology file reads its synthesized ratios beside it.
    if name.starts_with("tech") {
        let synth = arch_path().with_file_name("synth/components.json");
        write(
            dir,
            "synth/components.json",
            &std::fs::read_to_string(synth).unwrap(),
        );
    }
    p
}

#[test]
fn configuration_errors_are_clear() {
    let dir = std::env::temp_dir().join(format!("strumlab-hw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = std::fs::read_to_string(arch_path()).unwrap();
    let tech = std::fs::read_to_string(arch_path().with_file_name("tech-45nm.toml")).unwrap();
    write(&dir, "tech-45nm.toml", &tech);
    let cases = [
        (
            base.replace("[array]\n", "[array]\nbogus_key = 3\n"),
            "bogus_key",
        ),
        (base.replace("rows = 16", "rows = -16"), "rows"),
        (
            base.replace("rows = 16", "rows = 0"),
            "array.rows must be positive",
        ),
        (
            base.replace("if_bytes = 128", "if_bytes = 4"),
            "does not hold one 8-lane input vector",
        ),
        (
            base.replace("pe_array_area_share = 0.105", "pe_array_area_share = 1.5"),
            "pe_array_area_share",
        ),
        (
            base.replace("multiplier_law = \"synth\"", "multiplier_law = \"cubic\""),
            "cubic",
        ),
        (
            base.replace("objective = \"edp\"", "objective = \"speed\""),
            "speed",
        ),
        (base.replace("lpf_limit = 6", "lpf = 6"), "lpf"),
        (
            base.replace("window = 16", "window = 8"),
            "sparsity.window = 8",
        ),
        (
            base.replace("of_entries = 16", "of_entries = 16\npsum_bits = 0"),
            "rf.psum_bits = 0",
        ),
    ];
    for (text, needle) in cases {
        let p = write(&dir, "arch.toml", &text);
        let e = config::load(&p).unwrap_err().to_string();
        assert!(e.contains(needle), "expected '{needle}' in: {e}");
    }
    write(
        &dir,
        "tech-45nm.toml",
        &tech.replace("[entries.mult8]\n", "[entries.mult8x]\n"),
    );
    let p = write(&dir, "arch.toml", &base);
    assert!(
        config::load(&p)
            .unwrap_err()
            .to_string()
            .contains("lacks entry 'mult8'")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn hw_command_json_and_stats_mismatch() {
    let bin = env!("CARGO_BIN_EXE_strumlab");
    let o = std::process::Command::new(bin)
        .args(["hw", "--model", "mnist-8", "--scheme", "mip2q", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in [
        "pe_power_reduction_pct",
        "pe_area_reduction_pct",
        "dpu_power_reduction_pct",
        "dpu_area_reduction_pct",
    ] {
        assert!(v[k].is_number(), "{k}");
    }
    assert_eq!(v["variant"], "static");
    assert_eq!(v["multiplier_law"], "synth");
    // A stats file measured with another scheme is refused.
    let dir = std::env::temp_dir().join(format!("strumlab-hwcli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stats = dir.join("s.csv");
    let o = std::process::Command::new(bin)
        .args([
            "eval",
            "--scheme",
            "dliq",
            "--limit",
            "50",
            "--out",
            stats.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    let o = std::process::Command::new(bin)
        .args([
            "hw",
            "--scheme",
            "mip2q",
            "--stats",
            stats.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("measured with 'dliq-b8-l4'"));
    let o = std::process::Command::new(bin)
        .args([
            "hw",
            "--scheme",
            "dliq",
            "--stats",
            stats.to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["activity_source"], "measured");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn hand_computed_energy_of_the_pointwise_layer() {
    let (mut arch, tech) = load();
    arch.sparsity.zvc = true;
    arch.sparsity.zero_skipping = true;
    let l = LayerShape {
        groups: 1,
        k: 16,
        c: 8,
        p: 4,
        q: 4,
        r: 1,
        s: 1,
        inputs: 128,
        stride: [1, 1],
        dilation: [1, 1],
        in_hw: [4, 4],
    };
    let m = mapper::map(&arch, &l, mapper::FIXED[0].1, 1.0).unwrap();
    let e = layer_energy(&arch, &tech, PeKind::Baseline, &activity(1.0, 0.0), &m);
    let close = |a: f64, b: f64| assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} vs {b}");
    close(e.mac_pj, 2048.0 * 0.2); // 8x8 multiply, 45 nm table
    close(e.rf_pj, 2048.0 * 16.0 * 0.009); // 8-bit activation + 8-bit weight register reads
    // SRAM: 128 B weights + 128 B inputs + 1024 B partial sums, at a 64 KiB bank's energy:
    // 20 pJ * (100 / 20)^(ln 2 / ln 32) per 64 bits.
    close(
        e.sram_pj,
        1280.0 * 20.0 * 5f64.powf(2f64.ln() / 32f64.ln()) / 8.0,
    );
    // Cycles: 16 compute; SRAM 1280 / 256 B per cycle = 5; DRAM 512 / 32 = 16.
    close(e.cycles, 16.0);
    // Per PE-cycle: 7 18-bit adders (interpolated between 8 and 32 bits) + accumulator +
    // find-first logic, on the 16 active PEs.
    let add18 = 0.03 + (10.0 / 24.0) * (0.1 - 0.03);
    close(e.pe_cycle_pj, 16.0 * 16.0 * (7.0 * add18 + 0.1));
    // find-first: one synthesized find_first16 per lane, energy = its area ratio to the 8x8
    // multiplier (components.json), per PE-cycle
    let ff16 = tech.e("find_first16_rel_mult8");
    assert!(
        (ff16 - 0.1506).abs() < 1e-9,
        "components.json find_first16/mult8x8"
    );
    close(e.sparsity_pj, 16.0 * 16.0 * 8.0 * 0.2 * ff16);
    // DRAM: 512 B at 6 pJ per bit (tech-45nm.toml dram_bit).
    close(e.dram_pj, 512.0 * 8.0 * 6.0);
}

#[test]
fn node_scaling_scales_absolute_values_only() {
    let dir = std::env::temp_dir().join(format!("strumlab-hwscale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tech = std::fs::read_to_string(arch_path().with_file_name("tech-45nm.toml")).unwrap();
    write(&dir, "tech-45nm.toml", &tech);
    let base = std::fs::read_to_string(arch_path()).unwrap();
    let scaled = format!(
        "{base}\n[node_scaling]\ntarget_nm = 28\nlogic_energy = 0.5\nlogic_area = 0.25\nsram_energy = 0.8\nsource = \"test\"\n"
    );
    let p = write(&dir, "arch.toml", &scaled);
    let (a1, t1) = load();
    let (a2, t2) = config::load(&p).unwrap();
    assert_eq!(t2.node_nm, 28);
    assert_eq!(t2.e("mult8"), 0.1);
    assert_eq!(
        t2.e("sram_64b_32kib"),
        0.8 * t1.e("sram_64b_32kib"),
        "SRAM has its own factor"
    );
    assert_eq!(
        t2.e("dram_bit"),
        t1.e("dram_bit"),
        "DRAM is off chip: not scaled"
    );
    assert_eq!(
        t2.a("barrel_shifter_rel_mult8"),
        t1.a("barrel_shifter_rel_mult8"),
        "ratios unscaled"
    );
    let k = PeKind::Strum {
        scheme: Scheme::Mip2q,
        dliq_shift: DliqShift::Block,
        block: 8,
        low: 4,
        variant: Variant::Static,
    };
    let (b1, b2) = (
        pe::area(&a1, &t1, PeKind::Baseline).total_um2,
        pe::area(&a2, &t2, PeKind::Baseline).total_um2,
    );
    assert!((b2 - 0.25 * b1).abs() < 1e-6 * b1);
    let (s1, s2) = (
        pe::area(&a1, &t1, k).total_um2,
        pe::area(&a2, &t2, k).total_um2,
    );
    assert!(
        ((1.0 - s1 / b1) - (1.0 - s2 / b2)).abs() < 1e-12,
        "relative savings do not depend on the node"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dram_traffic_tiles_the_sram_per_operand() {
    use mapper::{Traffic, dram_traffic};
    // Fits: each operand once.
    let t = dram_traffic(100.0, 200.0, 50.0, 1000.0);
    assert_eq!(
        t,
        Traffic {
            weights: 100.0,
            inputs: 200.0,
            outputs: 50.0
        }
    );
    // A large FC layer (VGG fc6: weights >> SRAM, small input): weights stream once,
    // the input tile stays (inputs outer).
    let (w, i, o, s) = (102.8e6, 25_088.0, 4096.0, 1_048_576.0);
    let t = dram_traffic(w, i, o, s);
    assert_eq!(
        t,
        Traffic {
            weights: w,
            inputs: i,
            outputs: o
        }
    );
    // A large input with small weights: inputs stream once, weights stay (weights outer).
    let t = dram_traffic(36_864.0, 3.2e6, 3.2e6, s);
    assert_eq!(
        t,
        Traffic {
            weights: 36_864.0,
            inputs: 3.2e6,
            outputs: 3.2e6
        }
    );
    // Both larger than half the SRAM: the cheaper order refetches the smaller one.
    let t = dram_traffic(2e6, 3e6, 1e5, s);
    assert_eq!(t.weights, 2e6, "weights outer");
    assert_eq!(t.inputs, 3e6 * (2e6f64 / (s / 2.0)).ceil());
}

#[test]
fn vgg19_dram_traffic_is_near_compulsory() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("experiments/data/onnx-light/light_vgg19.onnx");
    let (g, _) = strumlab::zoo::resolve(path.to_str().unwrap(), &LoadOptions::default()).unwrap();
    let r = strumlab::hw::run(&arch_path(), None, None, &g, &QuantConfig::default(), None).unwrap();
    let ratio = r.dram_bytes_per_image / r.compulsory_dram_bytes_per_image;
    assert!(
        ratio <= 1.5,
        "VGG-19 DRAM {:.1} MB is {ratio:.2}x compulsory",
        r.dram_bytes_per_image / 1e6
    );
    // DRAM sits outside the DPU's on-chip figures.
    for (chip, total) in r.dataflow_on_chip_pj.iter().zip(&r.dataflow_totals_pj) {
        assert!(chip.1 < total.1, "{}", chip.0);
    }
}

#[test]
fn pe_boundaries_nest_and_the_headline_follows_the_choice() {
    let (g, _) = strumlab::zoo::resolve("fmnist-resnet", &LoadOptions::default()).unwrap();
    let cfg = QuantConfig {
        scheme: Scheme::Mip2q,
        ..Default::default()
    };
    let base = strumlab::hw::run(&arch_path(), None, None, &g, &cfg, None).unwrap();
    let b = &base.boundaries;
    assert_eq!(b.len(), 3);
    assert!(b[0].baseline_pe_area_um2 < b[1].baseline_pe_area_um2);
    assert!(b[1].baseline_pe_area_um2 < b[2].baseline_pe_area_um2);
    // The register files dilute the multipliers' saving: the datapath saves the most.
    let st = |i: usize| b[i].strum_static.as_ref().unwrap().pe_area_reduction_pct;
    assert!(
        st(0) > st(1) && st(1) > st(2),
        "{} {} {}",
        st(0),
        st(1),
        st(2)
    );
    for (i, bd) in [
        config::Boundary::Datapath,
        config::Boundary::Rf,
        config::Boundary::Full,
    ]
    .into_iter()
    .enumerate()
    {
        let r = strumlab::hw::run(&arch_path(), None, Some(bd), &g, &cfg, None).unwrap();
        let red = strumlab::hw::reductions(&r, Variant::Static).unwrap();
        assert!((red.pe_area_reduction_pct - st(i)).abs() < 1e-9);
        let p = b[i].strum_static.as_ref().unwrap().pe_power_reduction_pct;
        assert!((red.pe_power_reduction_pct - p).abs() < 1e-9);
    }
}

#[test]
fn tech_ratios_come_from_the_synthesized_components() {
    let (_, tech) = load();
    let j: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(arch_path().with_file_name("synth/components.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        tech.a("barrel_shifter_rel_mult8"),
        j["ratios"]["mip2q_lane/mult8x8"].as_f64().unwrap()
    );
    assert_eq!(
        tech.e("barrel_shifter_rel_mult8"),
        j["toggle_ratio"]["mip2q_lane/mult8x8"].as_f64().unwrap()
    );
    assert_eq!(
        tech.a("mult8x4_rel_mult8"),
        j["ratios"]["mult8x4/mult8x8"].as_f64().unwrap()
    );
    assert_eq!(
        tech.e("mult8x4_rel_mult8"),
        j["toggle_ratio"]["mult8x4/mult8x8"].as_f64().unwrap()
    );
}

#[test]
fn solve_reports_feasibility_ranges_and_the_nearest_point() {
    use strumlab::hw::solve;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("experiments/hw");
    let claims = strumlab::hw::load_claims(&root.join("strum-claims.toml")).unwrap();
    let mut priors = solve::load_priors(&root.join("solve-priors.toml")).unwrap();
    let s = solve::solve(&claims, &priors);
    // Every range lies inside its prior and a point inside the ranges meets the bands.
    if s.feasible {
        for k in solve::UNKNOWNS {
            let (r, p) = (s.ranges[k], &priors.unknowns[k]);
            assert!(r[0] >= p.lo - 1e-12 && r[1] <= p.hi + 1e-12, "{k}");
        }
    }
    // A prior box that cannot reach a 31 % power saving (r_e >= 0.6 at l = 0.5 caps it
    // at 20 %) is infeasible, and the nearest point sits on the box's edge.
    priors.unknowns.get_mut("r_e").unwrap().lo = 0.6;
    priors.unknowns.get_mut("r_e").unwrap().hi = 0.9;
    let s = solve::solve(&claims, &priors);
    assert!(!s.feasible && s.ranges.is_empty());
    assert!((s.nearest["r_e"] - 0.6).abs() < 1e-12);
    assert!(s.nearest_savings_pct["pe_power"] < 31.0);
    // The CLI reports the same in JSON.
    let bin = env!("CARGO_BIN_EXE_strumlab");
    let o = std::process::Command::new(bin)
        .args([
            "hw", "--model", "mnist-8", "--scheme", "mip2q", "--solve", "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["solve"]["feasible"].is_boolean());
    assert_eq!(v["solve"]["model_points"].as_array().unwrap().len(), 3);
}

#[test]
fn eyeriss_validation_rows_compare_published_and_model() {
    let bin = env!("CARGO_BIN_EXE_strumlab");
    let o = std::process::Command::new(bin)
        .args(["hw-validate", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert!(rows.len() >= 3);
    for r in rows {
        let (p, m, ratio) = (
            r["published"].as_f64().unwrap(),
            r["model"].as_f64().unwrap(),
            r["ratio"].as_f64().unwrap(),
        );
        assert!(p > 0.0 && m > 0.0 && (ratio - m / p).abs() < 1e-12, "{r}");
        assert_eq!(
            r["within_2x"].as_bool().unwrap(),
            (0.5..=2.0).contains(&ratio)
        );
    }
    // AlexNet's conv layers: 666 M MACs (Krizhevsky's grouped network).
    let alex = &v["networks"][0];
    assert!(
        (alex["macs"].as_f64().unwrap() / 1e6 - 665.8).abs() < 1.0,
        "{alex}"
    );
    // The committed rows are what the command gives.
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results/hw/eyeriss-validation.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(committed["rows"], v["rows"]);
}

#[test]
fn windowed_find_first_cycles_match_enumeration() {
    // Exact expectation by enumerating every combined bitmap of `lanes` windows of W bits.
    let brute = |d: f64, lanes: usize, w: usize| -> f64 {
        let bits = lanes * w;
        let mut e = 0.0;
        for m in 0u32..(1 << bits) {
            let ones = m.count_ones() as i32;
            let p = d.powi(ones) * (1.0 - d).powi(bits as i32 - ones);
            let step = (0..lanes)
                .map(|l| ((m >> (l * w)) & ((1 << w) - 1)).count_ones().max(1))
                .max()
                .unwrap();
            e += p * step as f64;
        }
        e / w as f64
    };
    for (lanes, w) in [(1, 4), (2, 4), (3, 3), (2, 6)] {
        for d in [0.0, 0.1, 0.3, 0.5, 0.9, 1.0] {
            let (a, b) = (pe::skip_cycles(d, lanes, w), brute(d, lanes, w));
            assert!(
                (a - b).abs() < 1e-12,
                "lanes {lanes} W {w} d {d}: {a} vs {b}"
            );
        }
    }
    // Dense: one cycle per position; empty: one cycle per window; lanes wait for each other.
    assert_eq!(pe::skip_cycles(1.0, 8, 16), 1.0);
    assert!((pe::skip_cycles(0.0, 8, 16) - 1.0 / 16.0).abs() < 1e-15);
    assert!(pe::skip_cycles(0.3, 8, 16) > pe::skip_cycles(0.3, 1, 16));
}
