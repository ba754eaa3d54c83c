//! The README's measured numbers come from committed results: the throughput table and the
//! sweep benchmark (results/bench/engines.json), the accuracy excerpt with its significance
//! marks (results/reproduce/accuracy.csv), the EfficientNet-Lite0 hardware table and the
//! dataflow sentence (results/hw/summary.json). A regenerated result that moves a number
//! fails here until the README says the new one.

use std::collections::HashMap;

use serde_json::Value;

fn root(p: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn readme() -> String {
    std::fs::read_to_string(root("README.md")).unwrap()
}

fn json(p: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root(p)).unwrap()).unwrap()
}

/// Table rows of the README whose first cell is `first`, below the header line containing
/// `header`, as cells.
fn rows(md: &str, header: &str) -> Vec<Vec<String>> {
    let start = md
        .find(header)
        .unwrap_or_else(|| panic!("README has no table '{header}'"));
    md[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// The number at the start of a cell: `20,990` -> 20990, `0.90x` -> 0.90, `-16.2 %` -> -16.2.
fn num(cell: &str) -> f64 {
    let s: String = cell
        .replace(',', "")
        .replace('−', "-")
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    s.parse()
        .unwrap_or_else(|_| panic!("no number in README cell '{cell}'"))
}

/// `x` as printed with the cell's own number of decimals.
fn close(cell: &str, x: f64, what: &str) {
    let digits = cell
        .replace(',', "")
        .split_whitespace()
        .next()
        .and_then(|t| {
            t.trim_end_matches(['x', '*'])
                .split('.')
                .nth(1)
                .map(str::len)
        })
        .unwrap_or(0);
    let tol = 0.5 * 10f64.powi(-(digits as i32)) + 1e-9;
    assert!(
        (num(cell) - x).abs() <= tol,
        "README says {cell} for {what}; the results say {x}"
    );
}

#[test]
fn throughput_table_and_sweep_match_results_bench() {
    let md = readme();
    let b = json("results/bench/engines.json");
    let models = b["models"].as_array().unwrap();
    let find = |model: &str| {
        models
            .iter()
            .find(|e| e["model"] == model)
            .unwrap_or_else(|| panic!("engines.json has no {model}"))
    };
    let names = HashMap::from([("EfficientNet-Lite0", "effnet-lite0")]);
    let table = rows(&md, "| model | ours integer MIP2Q B8 L4 | ours fp32 |");
    assert_eq!(table.len(), 5);
    for r in &table {
        let e = find(names.get(r[0].as_str()).copied().unwrap_or(&r[0]));
        let f = |path: &[&str]| {
            let mut v = e;
            for k in path {
                v = &v[*k];
            }
            v.as_f64()
                .unwrap_or_else(|| panic!("engines.json: no number at {path:?}"))
        };
        let ips = "images_per_s";
        close(
            &r[1],
            f(&["ours", "integer_mip2q_b8_l4_fast", ips]),
            "ours integer",
        );
        close(&r[2], f(&["ours", "fp32_fast", ips]), "ours fp32");
        close(
            &r[3],
            f(&["ours", "integer_mip2q_b8_l4_reference", ips]),
            "reference kernels",
        );
        close(
            &r[4],
            f(&["peers", "onnxruntime_fp32", ips]),
            "onnxruntime FP32",
        );
        close(
            &r[5],
            f(&["peers", "onnxruntime_int8_qdq", ips]),
            "onnxruntime INT8",
        );
        close(
            &r[6],
            f(&["peers", "openvino_int8_amx", ips]),
            "OpenVINO INT8 AMX",
        );
        close(
            &r[7],
            f(&["peers", "openvino_int8_vnni", ips]),
            "OpenVINO INT8 VNNI",
        );
        close(
            &r[8],
            f(&["ratios", "ours_integer_over_ort_fp32_best"]),
            "ratio ORT",
        );
        close(
            &r[9],
            f(&["ratios", "ours_integer_over_openvino_int8_best_vnni"]),
            "ratio OpenVINO VNNI",
        );
    }
    let s = &b["sweep"];
    let said = format!(
        "took {:.1} s, against {:.1} s for onnxruntime",
        s["strumlab_sweep_s"].as_f64().unwrap(),
        s["onnxruntime_fp32_80k_inferences_s"].as_f64().unwrap()
    );
    assert!(md.contains(&said), "README does not say '{said}'");
    let ratio = format!(
        "{:.2}x",
        s["ratio_sweep_over_onnxruntime"].as_f64().unwrap()
    );
    assert!(
        md.contains(&format!("same 80k images: {ratio}")),
        "sweep ratio {ratio}"
    );
    let peak = format!(
        "INT8 peak {:.0} GMAC/s",
        b["ours_peak"]["int8_gmacs"].as_f64().unwrap()
    );
    assert!(md.contains(&peak), "README does not say '{peak}'");
}

#[test]
fn accuracy_excerpt_matches_results_reproduce() {
    let md = readme();
    let mut rd = csv::Reader::from_path(root("results/reproduce/accuracy.csv")).unwrap();
    let mut acc: HashMap<(String, String), csv::StringRecord> = HashMap::new();
    let hdr = rd.headers().unwrap().clone();
    let col = |n: &str| hdr.iter().position(|h| h == n).unwrap();
    let (cm, cc, ct, ca, cp) = (
        col("model"),
        col("config"),
        col("top1_pct"),
        col("agreement_top1_pct"),
        col("mcnemar_p"),
    );
    for r in rd.records() {
        let r = r.unwrap();
        acc.insert((r[cm].to_string(), r[cc].to_string()), r);
    }
    let configs = [
        "fp32",
        "int8",
        "dliq-b8-l4",
        "mip2q-b8-l4",
        "dliq-b8-l8",
        "mip2q-b8-l8",
    ];
    let table = rows(&md, "| model (images) | FP32 | INT8 | DLIQ B8 L4 |");
    assert_eq!(table.len(), 7);
    for r in &table {
        let model = r[0]
            .split(" (")
            .next()
            .unwrap()
            .replace("EfficientNet-Lite", "effnet-lite");
        for (cell, cfg) in r[1..].iter().zip(configs) {
            let row = &acc[&(model.clone(), cfg.to_string())];
            let what = format!("{model} {cfg}");
            close(cell, row[ct].parse().unwrap(), &format!("{what} top-1"));
            if let Some(a) = cell.split('(').nth(1) {
                close(a, row[ca].parse().unwrap(), &format!("{what} agreement"));
            }
            let significant = row[cp].parse::<f64>().is_ok_and(|p| p < 0.05);
            assert_eq!(cell.contains('*'), significant, "{what}: the * mark");
        }
    }
}

#[test]
fn hardware_table_and_dataflow_sentence_match_results_hw() {
    let md = readme();
    let h = json("results/hw/summary.json");
    let run = |arch: &str, boundary: &str, variant: &str| {
        h["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| {
                r["model"] == "effnet-lite0"
                    && r["arch"] == arch
                    && r["scheme"] == "mip2q-b8-l4"
                    && r["law"] == "synth"
                    && r["activity"] == "measured"
                    && r["boundary"] == boundary
                    && r["variant"] == variant
            })
            .unwrap_or_else(|| panic!("no effnet-lite0 {arch} {boundary} {variant} run"))
            .clone()
    };
    let table = rows(&md, "| EfficientNet-Lite0 | PE power | PE area |");
    let (big, small) = ("flexnn-16x16x8", "flexnn-16x16x8-small-rf");
    let want = [
        (
            "static MIP2Q, datapath boundary",
            run(big, "datapath", "static"),
        ),
        ("static MIP2Q, rf boundary", run(big, "rf", "static")),
        ("static MIP2Q, full boundary", run(big, "full", "static")),
        (
            "static MIP2Q, full boundary, minimal RFs",
            run(small, "full", "static"),
        ),
        ("dynamic MIP2Q, full boundary", run(big, "full", "dynamic")),
    ];
    for (label, r) in &want {
        let row = table
            .iter()
            .find(|c| c[0] == *label)
            .unwrap_or_else(|| panic!("README hardware table has no '{label}' row"));
        for (cell, key) in row[1..]
            .iter()
            .zip(["pe_power", "pe_area", "dpu_power", "dpu_area"])
        {
            // the README writes changes (negative = saving); the results carry reductions
            close(cell, -r[key].as_f64().unwrap(), &format!("{label} {key}"));
        }
    }
    let d = &want[2].1["dataflows_on_chip_uj"];
    let flex = d["flexible (mapper)"].as_f64().unwrap();
    let more = |k: &str| 100.0 * (d[k].as_f64().unwrap() / flex - 1.0);
    let fixed = ["weight-stationary", "output-stationary", "input-stationary"].map(more);
    let (lo, hi) = (
        fixed.iter().cloned().fold(f64::MAX, f64::min),
        fixed.iter().cloned().fold(f64::MIN, f64::max),
    );
    let said = format!(
        "dataflows use {lo:.0}-{hi:.0} %\nmore on-chip energy than the flexible mapper's mapping, and row-stationary {:.1} % more",
        more("row-stationary")
    );
    let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat(&md).contains(&flat(&said)),
        "README does not say '{said}'"
    );
}
