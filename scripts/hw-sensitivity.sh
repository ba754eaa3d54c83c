#!/usr/bin/env bash
# Which assumptions of the FlexNN model move the headline, and by how much:
# EfficientNet-Lite0, MIP2Q and DLIQ B8 L4, measured activity (results/eval), with one
# assumption of experiments/hw/flexnn.toml or tech-45nm.toml changed at a time.
# Writes results/hw/sensitivity.md (and .json).
#
#   scripts/hw-sensitivity.sh          # builds the release binary if needed
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
BIN=target/release/strumlab OUT=results/hw python3 - <<'EOF'
import json, os, re, subprocess, tempfile
from pathlib import Path

bin_, out = os.environ["BIN"], Path(os.environ["OUT"])
hw = Path("experiments/hw")
arch0, tech0 = (hw / "flexnn.toml").read_text(), (hw / "tech-45nm.toml").read_text()


def set_entry(tech, name, value):
    """energy_pj of [entries.NAME] set to VALUE."""
    pat = re.compile(r"(\[entries\." + re.escape(name) + r"\]\n(?:[^\[]*?\n)?energy_pj = )[^\n]*")
    assert pat.search(tech), name
    return pat.sub(lambda m: m.group(1) + repr(value), tech, count=1)


def set_key(arch, key, value):
    pat = re.compile(r"^(" + re.escape(key) + r" = )[^#\n]*", re.M)
    assert pat.search(arch), key
    return pat.sub(lambda m: m.group(1) + value + " ", arch, count=1)


cases = [
    ("as committed", arch0, tech0),
    ("register bit energy x2 (0.018 pJ)", arch0, set_entry(tech0, "register_bit", 0.018)),
    ("register bit energy /2 (0.0045 pJ)", arch0, set_entry(tech0, "register_bit", 0.0045)),
    ("leakage 0 % of PE power", arch0, set_entry(tech0, "leakage_frac", 0.0)),
    ("leakage 20 % of PE power", arch0, set_entry(tech0, "leakage_frac", 0.2)),
    ("DRAM 3.9 pJ/bit (HBM2-class)", arch0, set_entry(tech0, "dram_bit", 3.9)),
    ("mapper objective: energy", set_key(arch0, "objective", '"energy"'), tech0),
    ("activations never kept on chip", set_key(arch0, "keep_activations_on_chip", "false"), tech0),
    ("find-first window 32", set_key(arch0, "window", "32"), tech0),
    ("no zero-skipping, no ZVC", set_key(set_key(arch0, "zero_skipping", "false"), "zvc", "false"), tech0),
    ("mapper v2 (descriptors)", set_key(arch0, "kind", '"descriptor"'), tech0),
]
rows = []
with tempfile.TemporaryDirectory() as td:
    for label, arch, tech in cases:
        d = Path(td) / str(len(rows))
        d.mkdir()
        (d / "tech-45nm.toml").write_text(tech.replace('synth = "synth/components.json"',
                                                       f'synth = "{(hw / "synth/components.json").resolve()}"'))
        (d / "flexnn.toml").write_text(arch)
        row = {"case": label}
        for scheme in ("mip2q", "dliq"):
            stats = f"results/eval/effnet-lite0-imagenet-samples-{scheme}-l4.csv"
            for boundary in ("full", "datapath"):
                p = subprocess.run([bin_, "hw", "--model", "effnet-lite0", "--scheme", scheme, "--block", "8",
                                    "--low", "4", "--stats", stats, "--arch", str(d / "flexnn.toml"),
                                    "--pe-boundary", boundary, "--json"], capture_output=True, text=True, check=True)
                j = json.loads(p.stdout)
                v = {x["variant"]: x for x in j["variants"]}
                row[f"{scheme}_static_{boundary}_pe_power_pct"] = -v["static"]["pe_power_reduction_pct"]
                row[f"{scheme}_dynamic_{boundary}_pe_power_pct"] = -v["dynamic"]["pe_power_reduction_pct"]
                if boundary == "full":
                    row[f"{scheme}_static_dpu_bottom_up_pct"] = -v["static"]["dpu_power_reduction_bottom_up_pct"]
        rows.append(row)
(out / "sensitivity.json").write_text(json.dumps(rows, indent=1) + "\n")
cols = [("MIP2Q static, full", "mip2q_static_full_pe_power_pct"),
        ("MIP2Q static, datapath", "mip2q_static_datapath_pe_power_pct"),
        ("MIP2Q dynamic, full", "mip2q_dynamic_full_pe_power_pct"),
        ("DLIQ static, full", "dliq_static_full_pe_power_pct"),
        ("DLIQ dynamic, full", "dliq_dynamic_full_pe_power_pct"),
        ("MIP2Q static, DPU bottom-up", "mip2q_static_dpu_bottom_up_pct")]
with open(out / "sensitivity.md", "w") as m:
    m.write("# Sensitivity of the headline to the model's assumptions (scripts/hw-sensitivity.sh)\n\n"
            "EfficientNet-Lite0, B = 8, L = 4, measured activity (results/eval), experiments/hw/flexnn.toml and "
            "tech-45nm.toml with one change per row. PE power change against the INT8 baseline, % "
            "(negative = StruM saves); the paper's band is -31..-34 %.\n\n")
    m.write("| assumption | " + " | ".join(c for c, _ in cols) + " |\n" + "|---" * (len(cols) + 1) + "|\n")
    for r in rows:
        m.write(f"| {r['case']} | " + " | ".join(f"{r[k]:.1f}" for _, k in cols) + " |\n")
print(f"wrote {out}/sensitivity.md")
EOF
