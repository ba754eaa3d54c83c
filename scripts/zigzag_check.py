#!/usr/bin/env python3
"""Cross-check of the FlexNN hardware model against ZigZag (issue #24).

Generates a ZigZag accelerator and mapping description from OUR architecture TOML
(experiments/hw/flexnn.toml and the technology table it names), runs ZigZag (LOMA temporal
mapping search, optimising energy) on an ONNX model whose shapes are inferred, and writes
results/hw/zigzag/<model>.json: per conv/dense layer ZigZag's loop dims, MACs, energy split
by memory level and operand, latency and chosen mapping, next to `strumlab hw --json`
(ours, per layer) and the ratios ours / ZigZag.

Run through scripts/zigzag-check.sh, which sets up the pinned virtual environment and
exports the model. Only ZigZag's energy/latency numbers come from ZigZag; every hardware
parameter comes from our TOML files and is listed with its source in the JSON
("generated_architecture").
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from importlib import metadata
from pathlib import Path

import onnx
import yaml

# --------------------------------------------------------------------------------------
# Architecture translation
# --------------------------------------------------------------------------------------

# ZigZag's names for our loop dimensions (mapper.rs: K, C, P = output rows, Q = output
# columns, S = kernel width; R = kernel height is never unrolled by our mapper).
OUR_TO_ZZ = {"K": "K", "C": "C", "P": "OY", "Q": "OX", "S": "FX"}


def add_energy(tech: dict, bits: float) -> float:
    """An adder of `bits` bits: linear between add8 and add32 (src/hw/pe.rs add_n)."""
    e8 = tech["entries"]["add8"]["energy_pj"]
    e32 = tech["entries"]["add32"]["energy_pj"]
    f = (bits - 8.0) / 24.0
    return e8 + f * (e32 - e8)


def sram_pj_per_byte(arch: dict, tech: dict) -> float:
    """src/hw/mod.rs sram_pj_per_byte: the 64-bit read energy of one bank, interpolated
    log-linearly between the 32 KiB and 1 MiB table points, per byte."""
    bank_kib = max(arch["sram"]["kib"] / arch["sram"]["banks"], 1.0)
    e32 = tech["entries"]["sram_64b_32kib"]["energy_pj"]
    e1m = tech["entries"]["sram_64b_1mib"]["energy_pj"]
    f = math.log(bank_kib / 32.0) / math.log(1024.0 / 32.0)
    f = min(max(f, -1.0), 1.5)
    return e32 * (e1m / e32) ** f / 8.0


def build_architecture(arch_path: Path, psum_bits: int, act_bits: int, w_bits: int):
    arch = tomllib.loads(arch_path.read_text())
    tech_path = (arch_path.parent / arch["tech"]).resolve()
    tech = tomllib.loads(tech_path.read_text())
    ent = tech["entries"]
    rows, cols, lanes = arch["array"]["rows"], arch["array"]["cols"], arch["array"]["lanes"]

    # --- MAC unit energy (pJ per MAC) ---------------------------------------------------
    mult = ent["mult8"]["energy_pj"]
    tree = (lanes - 1) * add_energy(tech, 18.0)  # pe.rs: lanes-1 18-bit adders per PE-cycle
    acc = ent["add32"]["energy_pj"]  # pe.rs: one 32-bit accumulate per PE-cycle
    unit_energy = mult + (tree + acc) / lanes

    reg_bit = ent["register_bit"]["energy_pj"]
    sram_byte = sram_pj_per_byte(arch, tech)
    dram_bit = ent["dram_bit"]["energy_pj"]

    # --- memories -------------------------------------------------------------------------
    lane_bw_a = lanes * act_bits  # one activation per lane per cycle
    lane_bw_w = lanes * w_bits
    sram_word_bits = arch["sram"]["word_bytes"] * 8
    sram_bw = arch["sram"]["banks"] * sram_word_bits
    dram_bw = int(round(arch["dram"]["bytes_per_cycle"] * 8))
    of_bits = arch["rf"]["of_entries"] * 32

    def port(name, typ, bmin, bmax, alloc):
        return {"name": name, "type": typ, "bandwidth_min": int(bmin), "bandwidth_max": int(bmax), "allocation": alloc}

    memories = {
        "rf_if": {
            "size": arch["rf"]["if_bytes"] * 8,
            "r_cost": reg_bit * lane_bw_a,
            "w_cost": reg_bit * lane_bw_a,
            "area": 0.0,
            "latency": 1,
            "operands": ["I1"],
            "ports": [
                port("r_port_1", "read", act_bits, lane_bw_a, ["I1, tl"]),
                port("w_port_1", "write", act_bits, lane_bw_a, ["I1, fh"]),
            ],
            "served_dimensions": ["D3"],
        },
        "rf_fl": {
            "size": arch["rf"]["fl_bytes"] * 8,
            "r_cost": reg_bit * lane_bw_w,
            "w_cost": reg_bit * lane_bw_w,
            "area": 0.0,
            "latency": 1,
            "operands": ["I2"],
            "ports": [
                port("r_port_1", "read", w_bits, lane_bw_w, ["I2, tl"]),
                port("w_port_1", "write", w_bits, lane_bw_w, ["I2, fh"]),
            ],
            "served_dimensions": ["D3"],
        },
        "rf_of": {
            "size": of_bits,
            "r_cost": reg_bit * psum_bits,
            "w_cost": reg_bit * psum_bits,
            "area": 0.0,
            "latency": 1,
            "operands": ["O"],
            "ports": [
                port("r_port_1", "read", act_bits, psum_bits, ["O, tl", "O, th"]),
                port("w_port_1", "write", act_bits, psum_bits, ["O, fh", "O, fl"]),
            ],
            "served_dimensions": ["D3"],
        },
        "sram": {
            "size": arch["sram"]["kib"] * 1024 * 8,
            "r_cost": sram_byte * sram_bw / 8,
            "w_cost": sram_byte * sram_bw / 8,
            "area": 0.0,
            "latency": 1,
            "operands": ["I1", "I2", "O"],
            "ports": [
                port(
                    "rw_port_1",
                    "read_write",
                    sram_word_bits,
                    sram_bw,
                    ["I1, fh", "I1, tl", "I2, fh", "I2, tl", "O, fh", "O, tl", "O, fl", "O, th"],
                )
            ],
            "served_dimensions": ["D1", "D2", "D3"],
        },
        "dram": {
            "size": 10_000_000_000,
            "r_cost": dram_bit * dram_bw,
            "w_cost": dram_bit * dram_bw,
            "area": 0.0,
            "latency": 1,
            "operands": ["I1", "I2", "O"],
            "ports": [
                port(
                    "rw_port_1",
                    "read_write",
                    8,
                    dram_bw,
                    ["I1, fh", "I1, tl", "I2, fh", "I2, tl", "O, fh", "O, tl", "O, fl", "O, th"],
                )
            ],
            "served_dimensions": ["D1", "D2", "D3"],
        },
    }
    accel = {
        "name": arch.get("name", arch_path.stem) + "-zigzag",
        "memories": memories,
        "operational_array": {
            "unit_energy": unit_energy,
            "unit_area": 0.0,
            "dimensions": ["D1", "D2", "D3"],
            "sizes": [rows, cols, lanes],
        },
    }
    # Spatial unrolling: our mapper (src/hw/mapper.rs) puts any two of K, C, P, Q on the PE
    # rows and columns and C or S on the MAC lanes. ZigZag gets the same choices as hints
    # and generates the best-utilised unrollings from them (divisors only, no padding).
    mapping = [
        {
            "name": "default",
            "spatial_mapping_hint": {
                "D1": ["K", "C", "OX", "OY"],
                "D2": ["K", "C", "OX", "OY"],
                "D3": ["C", "FX"],
            },
            "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"},
        }
    ]
    sources = [
        {"param": "operational_array.sizes", "value": [rows, cols, lanes],
         "source": f"{arch_path}: [array] rows, cols, lanes (D1 = PE rows, D2 = PE columns, D3 = MAC lanes in a PE)"},
        {"param": "operational_array.unit_energy_pj", "value": unit_energy,
         "source": f"{tech_path}: mult8 {mult} pJ + ((lanes-1) x add18 {add_energy(tech, 18.0):.5f} pJ + add32 {acc} pJ) / lanes; "
                   "add18 interpolated linearly between add8 and add32 as src/hw/pe.rs does; the per-PE-cycle adder tree and accumulator "
                   "are spread over the 8 lanes (exact only at full lane use)"},
        {"param": "rf_if", "value": {"size_bits": memories["rf_if"]["size"], "r_cost_pj_per_access": memories["rf_if"]["r_cost"], "bw_bits": lane_bw_a},
         "source": f"[rf] if_bytes = {arch['rf']['if_bytes']} per PE; register_bit {reg_bit} pJ/bit x {lane_bw_a}-bit access (8 lanes x {act_bits}-bit activations); write = read (assumption: our model charges no RF writes)"},
        {"param": "rf_fl", "value": {"size_bits": memories["rf_fl"]["size"], "r_cost_pj_per_access": memories["rf_fl"]["r_cost"], "bw_bits": lane_bw_w},
         "source": f"[rf] fl_bytes = {arch['rf']['fl_bytes']} per PE; register_bit x {lane_bw_w}-bit access; write = read (assumption)"},
        {"param": "rf_of", "value": {"size_bits": of_bits, "r_cost_pj_per_access": memories["rf_of"]["r_cost"], "bw_bits": psum_bits},
         "source": f"[rf] of_entries = {arch['rf']['of_entries']} x 32-bit partial sums per PE; register_bit x {psum_bits} bits per access (our model charges no OF-RF reads/writes, only the add32 accumulate)"},
        {"param": "sram", "value": {"size_bits": memories["sram"]["size"], "r_cost_pj_per_access": memories["sram"]["r_cost"], "bw_bits": sram_bw, "min_bw_bits": sram_word_bits, "pj_per_byte": sram_byte},
         "source": f"[sram] kib = {arch['sram']['kib']}, banks = {arch['sram']['banks']}, word_bytes = {arch['sram']['word_bytes']} (bandwidth = banks x word per cycle, granularity one word); "
                   f"energy = src/hw/mod.rs sram_pj_per_byte ({sram_byte:.4f} pJ/B: 64-bit read of a {arch['sram']['kib'] // arch['sram']['banks']} KiB bank, log-interpolated between sram_64b_32kib and sram_64b_1mib) x {sram_bw // 8} B per access; write = read, as ours; one port shared by all operands"},
        {"param": "dram", "value": {"r_cost_pj_per_access": memories["dram"]["r_cost"], "bw_bits": dram_bw},
         "source": f"[dram] bytes_per_cycle = {arch['dram']['bytes_per_cycle']}; dram_bit {dram_bit} pJ/bit x {dram_bw} bits per access; write = read"},
        {"param": "operand_precision", "value": {"W": w_bits, "I": act_bits, "O_final": act_bits, "O_partial": psum_bits},
         "source": "8-bit weights and activations (INT8 baseline); 32-bit partial sums as the OF RF and our psum spills (mapper.rs: 4 bytes), set on each ONNX node with ZigZag's output_size attribute"},
        {"param": "spatial_mapping_hint", "value": mapping[0]["spatial_mapping_hint"],
         "source": "src/hw/mapper.rs space(): rows/cols any two of K, C, P(=OY), Q(=OX); lanes C or S(=FX). ZigZag may put the same dim on D1 and D2 and uses divisors only; ours uses ceil-division (padding)"},
        {"param": "clock_mhz", "value": arch.get("clock_mhz"), "source": f"{arch_path} (cycles are compared, not time)"},
    ]
    return accel, mapping, sources, arch, tech_path


# --------------------------------------------------------------------------------------
# ZigZag run
# --------------------------------------------------------------------------------------

WEIGHT_OPS = {"Conv", "Gemm", "MatMul"}


def prepare_onnx(src: Path, dst: Path, psum_bits: int, act_bits: int, w_bits: int) -> None:
    model = onnx.load(str(src))
    model = onnx.shape_inference.infer_shapes(model)
    for node in model.graph.node:
        if node.op_type in WEIGHT_OPS:
            have = {a.name for a in node.attribute}
            for name, val in (("output_size", psum_bits), ("act_size", act_bits), ("weight_size", w_bits)):
                if name not in have:
                    node.attribute.append(onnx.helper.make_attribute(name, val))
    onnx.save(model, str(dst))


def dim_str(d) -> str:
    return str(d).replace("LayerDim.", "")


def cme_layer(cme) -> dict:
    acc = cme.accelerator
    layer = cme.layer
    dims = {dim_str(k): int(v) for k, v in layer.layer_dim_sizes.items()}
    energy_levels = []
    for layer_op, per_level in cme.mem_energy_breakdown.items():
        mem_op = cme.memory_operand_links.layer_to_mem_op(layer_op)
        levels = acc.memory_hierarchy.get_memory_levels(mem_op=mem_op)
        further = cme.mem_energy_breakdown_further[layer_op]
        accesses = cme.memory_word_access[layer_op]
        for lvl, e, ef, acc_ in zip(levels, per_level, further, accesses):
            energy_levels.append(
                {
                    "operand": str(layer_op),
                    "memory": lvl.name,
                    "energy_pj": float(e),
                    "energy_by_direction_pj": {str(k).split(".")[-1]: float(v) for k, v in ef.data.items()},
                    "word_accesses": {str(k).split(".")[-1]: int(v) for k, v in acc_.data.items()},
                }
            )
    by_mem: dict[str, float] = {}
    by_op: dict[str, float] = {}
    for r in energy_levels:
        by_mem[r["memory"]] = by_mem.get(r["memory"], 0.0) + r["energy_pj"]
        by_op[r["operand"]] = by_op.get(r["operand"], 0.0) + r["energy_pj"]
    tm = cme.temporal_mapping
    temporal = {}
    for op, levels in tm.mapping_dic_stationary.items():
        temporal[str(op)] = [[f"{dim_str(d)} {int(s) if float(s).is_integer() else s}" for d, s in lvl] for lvl in levels]
    return {
        "name": layer.name,
        "loop_dims": dims,
        "macs": int(layer.total_mac_count),
        "energy_pj": float(cme.energy_total),
        "mac_energy_pj": float(cme.mac_energy),
        "memory_energy_pj": float(cme.mem_energy),
        "energy_by_memory_pj": by_mem,
        "energy_by_operand_pj": by_op,
        "energy_by_level_operand": energy_levels,
        "latency_cycles": float(cme.latency_total2),
        "latency_parts": {
            "ideal_cycle_full_array": float(cme.ideal_cycle),
            "ideal_temporal_cycle": float(cme.ideal_temporal_cycle),
            "stall_slack_comb": float(cme.stall_slack_comb),
            "data_onloading_cycle": float(cme.data_onloading_cycle),
            "data_offloading_cycle": float(cme.data_offloading_cycle),
        },
        "mac_spatial_utilization": float(cme.mac_spatial_utilization),
        "mac_utilization_with_stalls": float(cme.mac_utilization2),
        "spatial_mapping": str(cme.spatial_mapping_int),
        "temporal_mapping_inner_to_outer": temporal,
    }


def run_zigzag(onnx_path: Path, accel_yaml: Path, mapping_yaml: Path, work: Path, lpf: int, nb_sm: int):
    from zigzag import api
    from zigzag.stages.stage import Stage

    class _NoVisualization(Stage):
        """ZigZag 3.9.1's VisualizationStage (loop-ordering printout) raises ValueError on a
        layer without temporal loops (print_mapping: max() of an empty sequence); it only
        draws, so it is replaced by a pass-through."""

        def run(self):
            sub = self.list_of_callables[0](self.list_of_callables[1:], **self.kwargs)
            yield from sub.run()

    api.VisualizationStage = _NoVisualization
    t0 = time.time()
    energy, latency, cmes = api.get_hardware_performance_zigzag(
        workload=str(onnx_path),
        accelerator=str(accel_yaml),
        mapping=str(mapping_yaml),
        opt="energy",
        dump_folder=str(work / "dump"),
        pickle_filename=str(work / "cmes.pickle"),
        lpf_limit=lpf,
        nb_spatial_mappings_generated=nb_sm,
        loma_show_progress_bar=False,
    )
    dt = time.time() - t0
    # cmes: [(CumulativeCME, [(layer CME, extra), ...])]
    layer_cmes = [c for c, _ in cmes[0][1]]
    return float(energy), float(latency), layer_cmes, dt


# --------------------------------------------------------------------------------------
# Ours
# --------------------------------------------------------------------------------------


def dense_arch(arch_path: Path, tech_path: Path, dst: Path) -> None:
    """Our architecture with sparsity features off, dense activations, no unrolling of
    groups, the energy objective and every activation through DRAM, so it is comparable
    with ZigZag (which models no zero-skipping or compression, gets no G in its spatial
    hint, minimises energy and maps each layer alone)."""
    lines = []
    section = ""
    for line in arch_path.read_text().splitlines():
        s = line.strip()
        if s.startswith("["):
            section = s.split("#")[0].strip()
        key = s.split("=")[0].strip() if "=" in s and not s.startswith("#") else ""
        if section == "" and key == "tech":
            line = f'tech = "{tech_path}"'
        elif section == "[sparsity]" and key in ("zero_skipping", "zvc"):
            line = f"{key} = false"
        elif section == "[sparsity]" and key == "default_act_density":
            line = "default_act_density = 1.0"
        elif section == "[mapper]" and key in ("unroll_groups", "objective", "keep_activations_on_chip"):
            continue
        lines.append(line)
    # ZigZag's spatial hint offers no G (groups) unrolling, it minimises energy and maps each
    # layer alone (every activation through DRAM): the same for ours.
    ours = ["unroll_groups = false", 'objective = "energy"', "keep_activations_on_chip = false"]
    headers = [l.split("#")[0].strip() for l in lines]
    if "[mapper]" in headers:
        i = headers.index("[mapper]")
        lines[i + 1:i + 1] = ours
    else:
        lines += ["", "[mapper]"] + ours
    dst.write_text("\n".join(lines) + "\n")


def run_ours(strumlab: str, model: str, arch: Path, cwd: Path):
    t0 = time.time()
    p = subprocess.run(
        [strumlab, "hw", "--model", model, "--arch", str(arch), "--json"],
        cwd=cwd, capture_output=True, text=True,
    )
    if p.returncode != 0:
        return None, f"strumlab hw failed ({p.returncode}): {p.stderr.strip()[-500:]}", time.time() - t0
    return json.loads(p.stdout), None, time.time() - t0


def ours_layer(l: dict) -> dict:
    b = l["baseline"]
    comparable = b["mac_pj"] + b["pe_cycle_pj"] + b["rf_pj"] + b["sram_pj"] + b["dram_pj"]
    return {
        "name": l["name"],
        "macs": l["macs"],
        "mapping": l.get("descriptor") or l.get("nest"),
        "utilization": l["utilization"],
        "cycles": b["cycles"],
        "energy_pj": comparable,
        "energy_parts_pj": {k: b[k] for k in ("mac_pj", "pe_cycle_pj", "rf_pj", "sram_pj", "dram_pj", "sparsity_pj")},
        "dram_bytes": b["dram_bytes"],
    }


def ratio(a, b):
    return a / b if b else None


def compare(zz_layers: list[dict], ours: dict | None, label: str) -> dict:
    if ours is None:
        return {"available": False}
    if "layers" not in ours:
        return {"available": False, "note": "ours has network totals only; per-layer ours not yet available"}
    ol = [ours_layer(l) for l in ours["layers"]]
    by_name = {l["name"]: l for l in ol}
    rows = []
    used = set()
    for i, z in enumerate(zz_layers):
        o = by_name.get(z["name"])
        how = "name"
        if o is None:  # fall back: same position among weight layers with equal MACs
            cand = [x for x in ol if x["name"] not in used and abs(x["macs"] - z["macs"]) < 0.5]
            o = cand[0] if cand else None
            how = "macs"
        if o is None:
            rows.append({"name": z["name"], "matched": False})
            continue
        used.add(o["name"])
        zm = z["energy_by_memory_pj"]
        ours_parts = o["energy_parts_pj"]
        rows.append(
            {
                "name": z["name"],
                "matched_by": how,
                "ours_name": o["name"],
                "macs_ours": o["macs"],
                "macs_zigzag": z["macs"],
                "ours_mapping": o["mapping"],
                "zigzag_spatial": z["spatial_mapping"],
                "energy_ours_pj": o["energy_pj"],
                "energy_zigzag_pj": z["energy_pj"],
                "energy_ratio_ours_over_zigzag": ratio(o["energy_pj"], z["energy_pj"]),
                "energy_on_chip_ours_pj": o["energy_pj"] - ours_parts["dram_pj"],
                "energy_on_chip_zigzag_pj": z["energy_pj"] - zm.get("dram", 0.0),
                "energy_on_chip_ratio_ours_over_zigzag": ratio(
                    o["energy_pj"] - ours_parts["dram_pj"], z["energy_pj"] - zm.get("dram", 0.0)
                ),
                "cycles_ours": o["cycles"],
                "latency_zigzag": z["latency_cycles"],
                "latency_ratio_ours_over_zigzag": ratio(o["cycles"], z["latency_cycles"]),
                "component_ratios_ours_over_zigzag": {
                    "mac (ours mac+pe_cycle / zz MAC)": ratio(ours_parts["mac_pj"] + ours_parts["pe_cycle_pj"], z["mac_energy_pj"]),
                    "rf (ours rf / zz rf_if+rf_fl+rf_of)": ratio(ours_parts["rf_pj"], sum(zm.get(k, 0.0) for k in ("rf_if", "rf_fl", "rf_of"))),
                    "sram": ratio(ours_parts["sram_pj"], zm.get("sram", 0.0)),
                    "dram": ratio(ours_parts["dram_pj"], zm.get("dram", 0.0)),
                },
                "within_15pct_energy": abs(ratio(o["energy_pj"], z["energy_pj"]) - 1) <= 0.15 if z["energy_pj"] else None,
                "within_20pct_latency": abs(ratio(o["cycles"], z["latency_cycles"]) - 1) <= 0.20 if z["latency_cycles"] else None,
            }
        )
    tot_o_e = sum(r.get("energy_ours_pj", 0.0) for r in rows)
    tot_z_e = sum(r.get("energy_zigzag_pj", 0.0) for r in rows)
    tot_o_oc = sum(r.get("energy_on_chip_ours_pj", 0.0) for r in rows)
    tot_z_oc = sum(r.get("energy_on_chip_zigzag_pj", 0.0) for r in rows)
    tot_o_c = sum(r.get("cycles_ours", 0.0) for r in rows)
    tot_z_c = sum(r.get("latency_zigzag", 0.0) for r in rows)
    unmatched_ours = [x["name"] for x in ol if x["name"] not in used]
    return {
        "available": True,
        "ours_variant": label,
        "energy_definition": "ours = mac_pj + pe_cycle_pj + rf_pj + sram_pj + dram_pj of the INT8 baseline (no find-first logic, no leakage: ZigZag models neither)",
        "layers": rows,
        "unmatched_ours_layers": unmatched_ours,
        "totals_matched_layers": {
            "energy_ours_pj": tot_o_e,
            "energy_zigzag_pj": tot_z_e,
            "energy_ratio": ratio(tot_o_e, tot_z_e),
            "energy_on_chip_ours_pj": tot_o_oc,
            "energy_on_chip_zigzag_pj": tot_z_oc,
            "energy_on_chip_ratio": ratio(tot_o_oc, tot_z_oc),
            "cycles_ours": tot_o_c,
            "latency_zigzag": tot_z_c,
            "latency_ratio": ratio(tot_o_c, tot_z_c),
        },
        "layers_within_15pct_energy": sum(1 for r in rows if r.get("within_15pct_energy")),
        "layers_within_20pct_latency": sum(1 for r in rows if r.get("within_20pct_latency")),
        "layers_within_15pct_energy_on_chip": sum(
            1 for r in rows if r.get("energy_on_chip_ratio_ours_over_zigzag") is not None
            and abs(r["energy_on_chip_ratio_ours_over_zigzag"] - 1) <= 0.15
        ),
        "layers_compared": sum(1 for r in rows if "energy_ours_pj" in r),
    }


# --------------------------------------------------------------------------------------


def recompare(args) -> int:
    dst = args.out / f"{args.model}.json"
    out = json.loads(dst.read_text())
    _, _, _, _, tech_path = build_architecture(args.arch, args.psum_bits, 8, 8)
    with tempfile.TemporaryDirectory(prefix="zigzag-check-") as td:
        dense_toml = Path(td) / "arch-dense.toml"
        dense_arch(args.arch, tech_path, dense_toml)
        ours_dense, err_d, _ = run_ours(args.strumlab, args.hw_model or args.model, dense_toml, Path.cwd())
    if ours_dense is None:
        print(err_d, file=sys.stderr)
        return 1
    out["comparison_dense"] = compare(out["zigzag_layers"], ours_dense, "dense")
    dst.write_text(json.dumps(out, indent=1) + "\n")
    print(f"recompared {dst}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="name used for the output file and for `strumlab hw --model`")
    ap.add_argument("--onnx", required=True, type=Path)
    ap.add_argument("--hw-model", default=None, help="what to pass to `strumlab hw --model` (default: --model)")
    ap.add_argument("--arch", type=Path, default=Path("experiments/hw/flexnn.toml"))
    ap.add_argument("--out", type=Path, default=Path("results/hw/zigzag"))
    ap.add_argument("--strumlab", default=os.environ.get("STRUMLAB", "target/release/strumlab"))
    ap.add_argument("--psum-bits", type=int, default=32)
    ap.add_argument("--lpf-limit", type=int, default=6)
    ap.add_argument("--nb-spatial", type=int, default=6)
    ap.add_argument("--export-seconds", type=float, default=None)
    ap.add_argument("--recompare", action="store_true",
                    help="do not run ZigZag: reload OUT/<model>.json and redo only ours and the comparison")
    args = ap.parse_args()
    if args.recompare:
        return recompare(args)
    repo = Path.cwd()
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    accel, mapping, sources, arch, tech_path = build_architecture(args.arch, args.psum_bits, 8, 8)
    with tempfile.TemporaryDirectory(prefix="zigzag-check-") as td:
        work = Path(td)
        accel_yaml = work / "accelerator.yaml"
        mapping_yaml = work / "mapping.yaml"
        accel_yaml.write_text(yaml.safe_dump(accel, sort_keys=False))
        mapping_yaml.write_text(yaml.safe_dump(mapping, sort_keys=False))
        onnx_in = work / "model.inferred.onnx"
        prepare_onnx(args.onnx, onnx_in, args.psum_bits, 8, 8)
        import logging

        e_tot, l_tot, layer_cmes, zz_seconds = run_zigzag(
            onnx_in, accel_yaml, mapping_yaml, work, args.lpf_limit, args.nb_spatial
        )
        logging.getLogger().setLevel(logging.WARNING)
        zz_layers = [cme_layer(c) for c in layer_cmes]

        dense_toml = work / "arch-dense.toml"
        dense_arch(args.arch, tech_path, dense_toml)
        hw_model = args.hw_model or args.model
        ours_dense, err_d, t_d = run_ours(args.strumlab, hw_model, dense_toml, repo)
        ours_cfg, err_c, t_c = run_ours(args.strumlab, hw_model, args.arch, repo)

    def sums(key):
        return sum(l[key] for l in zz_layers)

    by_mem: dict[str, float] = {}
    for l in zz_layers:
        for k, v in l["energy_by_memory_pj"].items():
            by_mem[k] = by_mem.get(k, 0.0) + v
    out = {
        "model": args.model,
        "onnx": str(args.onnx),
        "arch": str(args.arch),
        "zigzag_version": metadata.version("zigzag-dse"),
        "onnx_version": onnx.__version__,
        "zigzag_settings": {
            "opt": "energy",
            "temporal_mapping_search_engine": "loma",
            "lpf_limit": args.lpf_limit,
            "nb_spatial_mappings_generated": args.nb_spatial,
            "access_same_data_considered_as_no_access": True,
        },
        "run_seconds": {
            "export": args.export_seconds,
            "zigzag": zz_seconds,
            "ours_dense": t_d,
            "ours_configured": t_c,
            "total_script": time.time() - t_start,
        },
        "zigzag_totals": {
            "energy_pj": e_tot,
            "latency_cycles": l_tot,
            "layers": len(zz_layers),
            "macs": sums("macs"),
            "mac_energy_pj": sums("mac_energy_pj"),
            "memory_energy_pj": sums("memory_energy_pj"),
            "energy_by_memory_pj": by_mem,
        },
        "zigzag_layers": zz_layers,
        "ours": {
            "binary": args.strumlab,
            "per_layer_available": bool(ours_dense and "layers" in ours_dense),
            "dense": None if ours_dense is None else {
                "note": "our model with [sparsity] zero_skipping = false, zvc = false, default_act_density = 1.0 (comparable with ZigZag)",
                "cycles_per_image": ours_dense.get("cycles_per_image"),
                "dram_bytes_per_image": ours_dense.get("dram_bytes_per_image"),
                "dataflow_totals_pj": ours_dense.get("dataflow_totals_pj"),
                "baseline": ours_dense.get("designs", {}).get("baseline"),
            },
            "dense_error": err_d,
            "configured": None if ours_cfg is None else {
                "note": "our model as configured (zero-skipping, ZVC, 50 % activation density model): not comparable, for reference",
                "cycles_per_image": ours_cfg.get("cycles_per_image"),
                "dram_bytes_per_image": ours_cfg.get("dram_bytes_per_image"),
                "dataflow_totals_pj": ours_cfg.get("dataflow_totals_pj"),
                "baseline": ours_cfg.get("designs", {}).get("baseline"),
            },
            "configured_error": err_c,
        },
        "comparison_dense": compare(zz_layers, ours_dense, "dense"),
        "generated_architecture": {
            "sources": sources,
            "accelerator_yaml": yaml.safe_dump(accel, sort_keys=False),
            "mapping_yaml": yaml.safe_dump(mapping, sort_keys=False),
        },
    }
    dst = args.out / f"{args.model}.json"
    dst.write_text(json.dumps(out, indent=1) + "\n")
    c = out["comparison_dense"]
    print(f"{args.model}: ZigZag {e_tot / 1e6:.3f} uJ, {l_tot:.0f} cycles, {len(zz_layers)} layers, {zz_seconds:.1f} s")
    if c.get("available"):
        t = c["totals_matched_layers"]
        print(
            f"  ours (dense) / ZigZag: energy {t['energy_ratio']:.3f}, latency {t['latency_ratio']:.3f}; "
            f"{c['layers_within_15pct_energy']}/{c['layers_compared']} layers within 15 % energy, "
            f"{c['layers_within_20pct_latency']}/{c['layers_compared']} within 20 % latency"
        )
    print(f"  wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
