#!/usr/bin/env python3
"""Parse yosys `stat -liberty` reports and write / check experiments/hw/synth/components.json.

Called by scripts/synth-components.sh (run from the repository root):
  collect.py write TMP JSON LIB "COMPONENTS" FLOW   -- write the JSON
  collect.py check TMP JSON LIB "COMPONENTS"        -- compare cells/area with the JSON
The JSON is deterministic: sorted keys, fixed rounding, and the date is kept from the existing
file when nothing else changed, so a rerun on the same tools gives the same bytes.
"""
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys

SCHEMA = "strumlab-synth-components/1"
BASE = "mult8x8"
RATIO_OF = ["mult8x4", "mult8x9", "mip2q_lane", "mip2q_lane_e1_7", "dliq_mult", "dliq_shift",
            "adder_tree8", "acc32", "find_first16", "find_first32"]
DESCRIPTION = {
    "mult8x8": "signed 8-bit activation x signed 8-bit weight -> 16-bit product (baseline)",
    "mult8x9": "signed 8-bit activation x signed 9-bit weight -> 17-bit (weights up to +128 after StruM demotion)",
    "mult8x4": "signed 8-bit x signed 4-bit -> 12-bit product",
    "mip2q_lane": "MIP2Q lane: +/- (act << e), e = 0..6, code 7 = zero; shifter + conditional negate + zero gate",
    "mip2q_lane_e1_7": "MIP2Q lane, window e_min = 1: +/- (act << e), e = 1..7, code 7 = zero",
    "dliq_mult": "DLIQ lane multiply: signed 8-bit x signed 4-bit code -> 12-bit (same function as mult8x4)",
    "dliq_shift": "DLIQ per-block shifter: 12-bit sub-tree sum << k, k = 0..5 -> 17-bit (one per block, shared by its low lanes)",
    "adder_tree8": "sum of eight signed 16-bit products -> 19-bit",
    "acc32": "32-bit accumulator register: acc <= (clr ? 0 : acc) + sext(19-bit d), one clock (sequential)",
    "find_first16": "FlexNN find-first, 16-bit bitmap: lowest set bit index, valid, bitmap with that bit cleared",
    "find_first32": "FlexNN find-first, 32-bit bitmap: lowest set bit index, valid, bitmap with that bit cleared",
}
SEQUENTIAL_CELLS = {"DFF"}


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def parse_stat(path, top):
    text = open(path).read()
    m = re.search(r"Number of cells:\s+(\d+)\n((?:\s+\S+\s+\d+\n)*)", text)
    if not m:
        sys.exit(f"{path}: no 'Number of cells' in the yosys report")
    cells = int(m.group(1))
    counts = {}
    for line in m.group(2).splitlines():
        name, n = line.split()
        counts[name] = int(n)
    a = re.search(r"Chip area for module '\\?%s':\s+([0-9.]+)" % re.escape(top), text)
    if not a:
        sys.exit(f"{path}: no chip area for {top} in the yosys report")
    if sum(counts.values()) != cells:
        sys.exit(f"{path}: cell counts do not add up to {cells}")
    unknown = [c for c in counts if not re.fullmatch(r"[A-Z0-9]+", c)]
    if unknown:  # an unmapped yosys-internal cell ($_AND_ etc.) would have no library area
        sys.exit(f"{path}: cells not from the library: {unknown}")
    return {"cells": cells, "area": round(float(a.group(1)), 2), "cell_counts": counts,
            "flip_flops": sum(n for c, n in counts.items() if c in SEQUENTIAL_CELLS)}


def tool_versions():
    v = {"yosys": subprocess.run(["yosys", "-V"], capture_output=True, text=True).stdout.strip()}
    try:
        v["yosys_debian_package"] = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "yosys"], capture_output=True, text=True).stdout.strip()
    except FileNotFoundError:
        pass
    return v


def main():
    mode, tmp, json_path, lib = sys.argv[1:5]
    comps = sys.argv[5].split()
    results = {m: parse_stat(os.path.join(tmp, f"{m}.stat"), m) for m in comps}

    if mode == "check":
        ref = json.load(open(json_path))
        bad = []
        for m in comps:
            r = ref["components"][m]
            got = results[m]
            status = "ok"
            if (r["cells"], r["area"]) != (got["cells"], got["area"]):
                status = "DIFFERS"
                bad.append(m)
            print(f"{m}: cells {got['cells']} area {got['area']:.2f} GE "
                  f"(committed: cells {r['cells']} area {r['area']:.2f}) {status}")
        if ref["library"]["sha256"] != sha256(lib):
            print(f"note: {lib} changed since {json_path} was written")
        now = tool_versions()["yosys"]
        if bad:
            if now != ref["tools"]["yosys"]:
                print(f"note: yosys here is '{now}', the JSON was made with '{ref['tools']['yosys']}'")
            sys.exit(f"synth check failed for {', '.join(bad)}; rerun scripts/synth-components.sh")
        print(f"synth check passed ({now})")
        return

    flow = sys.argv[6].replace("{LIB}", lib)
    comp_json = {}
    for m in comps:
        src = f"scripts/synth/{m}.v"
        comp_json[m] = dict(results[m], description=DESCRIPTION[m], source=src,
                            source_sha256=sha256(src), top=m)
    base = results[BASE]["area"]
    ratios = {f"{m}/{BASE}": round(results[m]["area"] / base, 4) for m in RATIO_OF if m in results}
    doc = {
        "schema": SCHEMA,
        "generated_by": "scripts/synth-components.sh",
        "tools": tool_versions(),
        "library": {
            "file": lib,
            "sha256": sha256(lib),
            "area_unit": "NAND2 gate equivalents (GE), NAND2 = 1.0",
            "note": "generic library with textbook gate-equivalent areas, not a real PDK: use the "
                    "ratios; no absolute um^2 is implied",
        },
        "command": {
            "cwd": "repository root",
            "per_component": "yosys -q -l {TMP}/{M}.log -p '" + flow + "'",
            "placeholders": "{M}: component (= module = file name), {TMP}: scratch folder",
        },
        "components": comp_json,
        "ratios": ratios,
        "ratios_note": "area(component) / area(mult8x8), both synthesized with the same flow and library",
    }
    tog_path = os.path.join(tmp, "toggle.json")
    if os.path.exists(tog_path):
        doc.update(json.load(open(tog_path)))

    old_date = None
    if os.path.exists(json_path):
        try:
            old = json.load(open(json_path))
            old_date = old.pop("date", None)
            if old != json.loads(json.dumps(doc)):
                old_date = None
        except (ValueError, KeyError):
            old_date = None
    doc["date"] = old_date or datetime.date.today().isoformat()
    os.makedirs(os.path.dirname(json_path), exist_ok=True)
    with open(json_path, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")
    width = max(len(m) for m in comps)
    for m in comps:
        r = results[m]
        ratio = ratios.get(f"{m}/{BASE}", 1.0 if m == BASE else None)
        print(f"{m:<{width}}  cells {r['cells']:5d}  area {r['area']:8.2f} GE  ratio {ratio:.4f}")


if __name__ == "__main__":
    main()
