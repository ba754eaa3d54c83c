#!/usr/bin/env python3
"""Zero-delay toggle counts of the synthesized gate-level netlists (iverilog), and a functional
check of every combinational netlist against a Python model of the function.

Called by scripts/synth-components.sh as: toggle.py TMP CELLS_V
TMP holds the netlists yosys wrote ({M}.gl.v); CELLS_V is scripts/synth/generic_cells.v.
Writes TMP/toggle.json ("toggle", "toggle_ratio" and "functional_check" entries of
components.json). Exits non-zero when a netlist disagrees with its model.

Method: the same seeded operand trace (own splitmix64 generator, so it does not depend on the
Python version) is applied, one vector per time step, to each netlist. Activations are
post-ReLU-like: 50 % zeros, the rest uniform in 1..127. Weights: uniform in -127..127 for
mult8x8, uniform in -7..7 for mult8x4 / dliq_mult, signed powers of two (+/-2^e, e uniform in
0..6, sign uniform) for the MIP2Q lanes and for the extra run mult8x8_pow2w (mult8x8 fed the
same powers of two, a like-for-like comparison). A toggle is a change of a cell output net's
settled value between consecutive vectors (VCD of the netlist's own nets); zero-delay
simulation, so glitches are not counted. "fanout_weighted" multiplies each net's toggles by
(1 + number of cell input pins it drives), a crude switched-capacitance proxy. Toggle ratios
are relative dynamic-energy indicators only: no capacitances, no wires, no clock.
"""
import json
import os
import re
import subprocess
import sys

SEED = 0x5EED_2024
N = 2000
MASK64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.s = seed & MASK64

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, n):  # uniform in 0..n-1 (rejection sampling, no modulo bias)
        lim = (1 << 64) - ((1 << 64) % n)
        while True:
            r = self.next()
            if r < lim:
                return r % n


def tc(v, bits):  # two's-complement encoding of v in `bits` bits
    return v & ((1 << bits) - 1)


def traces():
    g = SplitMix64(SEED)
    act = [0 if g.below(2) == 0 else 1 + g.below(127) for _ in range(N)]
    w8 = [g.below(255) - 127 for _ in range(N)]
    w4 = [g.below(15) - 7 for _ in range(N)]
    pw = [(g.below(2), g.below(7)) for _ in range(N)]  # (sign, e) with e in 0..6
    return g, act, w8, w4, pw


def runs():
    g, act, w8, w4, pw = traces()
    code = [(s << 3) | e for s, e in pw]
    pow2 = [(-1 if s else 1) << e for s, e in pw]
    pow2_e1 = [(-1 if s else 1) << (e + 1) for s, e in pw]
    A = ("a", 8, [tc(a, 8) for a in act])
    R = []

    def mul(name, mod, wport, wbits, ws, obits):
        R.append(dict(name=name, module=mod, toggles=True, inputs=[A, (wport, wbits, [tc(w, wbits) for w in ws])],
                      outputs=[("p", obits)], expect=[[tc(a * w, obits)] for a, w in zip(act, ws)]))

    mul("mult8x8", "mult8x8", "w", 8, w8, 16)
    mul("mult8x8_pow2w", "mult8x8", "w", 8, pow2, 16)
    # the dynamic DLIQ PE: its 8x8 multipliers fed the 4-bit weights, sign-extended
    mul("mult8x8_w4", "mult8x8", "w", 8, w4, 16)
    mul("mult8x9", "mult8x9", "w", 9, w8, 17)
    mul("mult8x4", "mult8x4", "w", 4, w4, 12)
    mul("dliq_mult", "dliq_mult", "q", 4, w4, 12)
    for name, vals in (("mip2q_lane", pow2), ("mip2q_lane_e1_7", pow2_e1)):
        R.append(dict(name=name, module=name, toggles=True, inputs=[A, ("code", 4, code)], outputs=[("p", 16)],
                      expect=[[tc(a * w, 16)] for a, w in zip(act, vals)]))
    # Functional checks only (no toggle entry): the zero code of the MIP2Q lanes, the shifter,
    # the adder tree and the find-first logic, on their own random inputs.
    zc = [(g.below(2) << 3) | 7 for _ in range(64)]
    for name in ("mip2q_lane", "mip2q_lane_e1_7"):
        R.append(dict(name=name + "_zero_code", module=name, toggles=False,
                      inputs=[("a", 8, [g.below(256) for _ in zc]), ("code", 4, zc)],
                      outputs=[("p", 16)], expect=[[0] for _ in zc]))
    xs = [g.below(1 << 12) - (1 << 11) for _ in range(500)]
    ks = [g.below(6) for _ in xs]
    R.append(dict(name="dliq_shift", module="dliq_shift", toggles=False,
                  inputs=[("x", 12, [tc(x, 12) for x in xs]), ("k", 3, ks)], outputs=[("y", 17)],
                  expect=[[tc(x << k, 17)] for x, k in zip(xs, ks)]))
    ps = [[g.below(1 << 16) - (1 << 15) for _ in range(8)] for _ in range(500)]
    R.append(dict(name="adder_tree8", module="adder_tree8", toggles=False,
                  inputs=[("pk", 128, [sum(tc(p, 16) << (16 * i) for i, p in enumerate(v)) for v in ps])],
                  outputs=[("s", 19)], expect=[[tc(sum(v), 19)] for v in ps]))
    for w in (16, 32):
        ms = [0, 1 << (w - 1), (1 << w) - 1]
        ms += [g.next() & ((1 << w) - 1) & (g.next() & ((1 << w) - 1)) for _ in range(497)]
        exp = []
        for m in ms:
            low = (m & -m)
            exp.append([low.bit_length() - 1 if m else 0, int(m != 0), m & ~low])
        lw = w.bit_length() - 1
        R.append(dict(name=f"find_first{w}", module=f"find_first{w}", toggles=False,
                      inputs=[("m", w, ms)], outputs=[("idx", lw), ("valid", 1), ("rest", w)],
                      expect=[[i if m else None, v, r] for (i, v, r), m in zip(exp, ms)]))
    return R


def testbench(run, tmp):
    n = len(run["expect"])
    obits = sum(b for _, b in run["outputs"])
    lines = ["`timescale 1ns/1ps", "module tb;"]
    for port, bits, vals in run["inputs"]:
        f = os.path.join(tmp, f"{run['name']}.{port}.hex")
        with open(f, "w") as fh:
            fh.write("".join(f"{v:x}\n" for v in vals))
        lines += [f"  reg [{bits - 1}:0] M_{port} [0:{n - 1}];", f"  reg [{bits - 1}:0] {port};"]
    # Expected outputs, concatenated in port order, with a care mask (None = don't care).
    ef, mf = os.path.join(tmp, f"{run['name']}.exp.hex"), os.path.join(tmp, f"{run['name']}.mask.hex")
    with open(ef, "w") as fe, open(mf, "w") as fm:
        for vec in run["expect"]:
            e = m = 0
            for (port, bits), v in zip(run["outputs"], vec):
                e, m = e << bits, m << bits
                if v is not None:
                    e |= v
                    m |= (1 << bits) - 1
            fe.write(f"{e:x}\n")
            fm.write(f"{m:x}\n")
    lines += [f"  reg [{obits - 1}:0] E [0:{n - 1}];", f"  reg [{obits - 1}:0] K [0:{n - 1}];"]
    for port, bits in run["outputs"]:
        lines.append(f"  wire [{bits - 1}:0] {port};")
    conns = [f".{p}({p})" for p, _, _ in run["inputs"]] + [f".{p}({p})" for p, _ in run["outputs"]]
    cat = "{" + ", ".join(p for p, _ in run["outputs"]) + "}"
    lines += [f"  {run['module']} dut ({', '.join(conns)});", "  integer i, err;", "  initial begin"]
    for port, _, _ in run["inputs"]:
        lines += [f'    $readmemh("{run["name"]}.{port}.hex", M_{port});', f"    {port} = 0;"]
    lines += [f'    $readmemh("{run["name"]}.exp.hex", E);', f'    $readmemh("{run["name"]}.mask.hex", K);',
              "    err = 0;", "    #5;"]
    if run["toggles"]:
        lines += [f'    $dumpfile("{run["name"]}.vcd");', "    $dumpvars(1, dut);"]
    lines.append(f"    for (i = 0; i < {n}; i = i + 1) begin")
    lines += [f"      {port} = M_{port}[i];" for port, _, _ in run["inputs"]]
    lines += ["      #10;",
              f"      if ((({cat}) ^ E[i]) & K[i]) begin",
              "        if (err < 5) $display(\"MISMATCH %0d got %h want %h\", i, " + cat + ", E[i]);",
              "        err = err + 1;", "      end",
              "      if (^(" + cat + ") === 1'bx) err = err + 1;",
              "    end", '    $display("ERRORS %0d", err);', "    $finish;", "  end", "endmodule", ""]
    path = os.path.join(tmp, f"tb_{run['name']}.v")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def acc32_testbench(tmp):
    """acc32 is sequential: first cycle clr = 1, then clr with probability 1/8; d uniform 19-bit."""
    g = SplitMix64(SEED ^ 0xACC32)
    n = 500
    clr = [1] + [int(g.below(8) == 0) for _ in range(n - 1)]
    d = [g.below(1 << 19) - (1 << 18) for _ in range(n)]
    acc, exp = 0, []
    for c, x in zip(clr, d):
        acc = tc((0 if c else acc) + x, 32)
        exp.append(acc)
    for name, vals in (("clr", clr), ("d", [tc(x, 19) for x in d]), ("exp", exp)):
        with open(os.path.join(tmp, f"acc32.{name}.hex"), "w") as f:
            f.write("".join(f"{v:x}\n" for v in vals))
    tb = f"""`timescale 1ns/1ps
module tb;
  reg M_clr [0:{n - 1}]; reg [18:0] M_d [0:{n - 1}]; reg [31:0] E [0:{n - 1}];
  reg clk, clr; reg [18:0] d; wire [31:0] acc;
  integer i, err;
  acc32 dut (.clk(clk), .clr(clr), .d(d), .acc(acc));
  initial begin
    $readmemh("acc32.clr.hex", M_clr); $readmemh("acc32.d.hex", M_d); $readmemh("acc32.exp.hex", E);
    err = 0; clk = 0;
    for (i = 0; i < {n}; i = i + 1) begin
      clr = M_clr[i]; d = M_d[i];
      #5 clk = 1;
      #5 clk = 0;
      if (acc !== E[i]) begin
        if (err < 5) $display("MISMATCH %0d got %h want %h", i, acc, E[i]);
        err = err + 1;
      end
    end
    $display("ERRORS %0d", err);
    $finish;
  end
endmodule
"""
    path = os.path.join(tmp, "tb_acc32.v")
    with open(path, "w") as f:
        f.write(tb)
    return dict(name="acc32", module="acc32", toggles=False, expect=exp), path


def netlist_nets(gl):
    """Cell output nets and their fanout (number of cell input pins) in a yosys netlist."""
    text = open(gl).read()
    outs, fan = set(), {}
    for pin, net in re.findall(r"\.([A-Z])\(([^()]+)\)", text):
        net = net.strip()
        if re.fullmatch(r"\d+'[bhd][0-9a-fA-FxXzZ]+", net):
            continue
        if pin in ("Y", "Q"):
            outs.add(net)
        else:
            fan[net] = fan.get(net, 0) + 1
    return outs, fan


def vcd_toggles(path, nets):
    """Toggles per net (name or name[bit]) between consecutive time steps of a VCD."""
    var = {}  # id -> (name, width, lsb)
    cur, prev = {}, {}
    counts = {}
    first = True
    with open(path) as f:
        body = False
        for line in f:
            t = line.split()
            if not t:
                continue
            if not body:
                if t[0] == "$var":
                    width, ident, name = int(t[2]), t[3], t[4]
                    lsb = 0
                    if len(t) > 6 and t[5].startswith("["):
                        r = t[5].strip("[]").split(":")
                        lsb = int(r[-1])
                    var.setdefault(ident, (name, width, lsb))
                elif t[0] == "$enddefinitions":
                    body = True
                continue
            tok = t[0]
            if tok.startswith("#"):
                if cur:
                    flush(var, prev, cur, counts, first)
                    first = False
                    cur = {}
                continue
            if tok.startswith("$"):
                continue
            if tok[0] in "bB":
                cur[t[1]] = tok[1:]
            else:
                cur[tok[1:]] = tok[0]
    if cur:
        flush(var, prev, cur, counts, first)
    total = weighted = 0
    outs, fan = nets
    for net in outs:
        c = counts.get(net)
        if c is None:
            m = re.fullmatch(r"(\S+)\[(\d+)\]", net)
            c = counts.get((m.group(1), int(m.group(2)))) if m else counts.get((net, 0))
        c = c or 0
        total += c
        weighted += c * (1 + fan.get(net, 0))
    return total, weighted


def flush(var, prev, cur, counts, first):
    for ident, val in cur.items():
        name, width, lsb = var[ident]
        if len(val) < width:
            val = (val[0] if val[0] in "xXzZ" else "0") * (width - len(val)) + val
        old = prev.get(ident)
        if old is not None and not first:
            for k in range(width):
                if val[width - 1 - k] != old[width - 1 - k]:
                    key = (name, lsb + k)
                    counts[key] = counts.get(key, 0) + 1
        prev[ident] = val


def main():
    tmp, cells_v = sys.argv[1], os.path.abspath(sys.argv[2])
    results, tog, failed = {}, {}, []
    for run in runs() + [None]:
        if run is None:
            run, tb = acc32_testbench(tmp)
        else:
            tb = testbench(run, tmp)
        gl = os.path.join(tmp, f"{run['module']}.gl.v")
        exe = os.path.join(tmp, f"{run['name']}.vvp")
        subprocess.run(["iverilog", "-g2005", "-o", exe, tb, gl, cells_v], check=True, cwd=tmp)
        out = subprocess.run(["vvp", "-n", exe], capture_output=True, text=True, cwd=tmp, check=True).stdout
        m = re.search(r"ERRORS (\d+)", out)
        errs = int(m.group(1)) if m else -1
        if errs != 0:
            failed.append(run["name"])
            print(out, file=sys.stderr)
        results[run["name"]] = {"errors": errs, "vectors": len(run["expect"]), "module": run["module"]}
        if run["toggles"]:
            t, w = vcd_toggles(os.path.join(tmp, f"{run['name']}.vcd"), netlist_nets(gl))
            n = len(run["expect"]) - 1  # transitions between consecutive vectors
            tog[run["name"]] = {"module": run["module"], "toggles_per_vector": round(t / n, 3),
                                "fanout_weighted_per_vector": round(w / n, 3)}
    if failed:
        sys.exit(f"gate-level netlists disagree with the model: {', '.join(failed)}")
    base = tog["mult8x8"]

    def ratios(key):
        out = {}
        for name in ("mult8x4", "mult8x9", "dliq_mult", "mip2q_lane", "mip2q_lane_e1_7", "mult8x8_pow2w",
                     "mult8x8_w4"):
            out[f"{name}/mult8x8"] = round(tog[name][key] / base[key], 4)
        out["mip2q_lane/mult8x8_pow2w"] = round(tog["mip2q_lane"][key] / tog["mult8x8_pow2w"][key], 4)
        return out

    doc = {
        "toggle": {
            "method": "iverilog zero-delay gate-level simulation of the abc netlists with "
                      "scripts/synth/generic_cells.v; toggles of cell output nets between "
                      "consecutive vectors, per vector; see scripts/synth/toggle.py",
            "seed": SEED, "vectors": N,
            "activations": "50 % zeros, rest uniform 1..127",
            "weights": {"mult8x8": "uniform -127..127", "mult8x9": "uniform -127..127",
                        "mult8x4": "uniform -7..7", "dliq_mult": "uniform -7..7",
                        "mip2q_lane": "+/-2^e, e uniform 0..6", "mip2q_lane_e1_7": "+/-2^e, e uniform 1..7",
                        "mult8x8_pow2w": "mult8x8 netlist, weights +/-2^e, e uniform 0..6 (same draws)",
                        "mult8x8_w4": "mult8x8 netlist, weights uniform -7..7 sign-extended to 8 bits (the mult8x4 draws)"},
            "runs": tog,
        },
        "toggle_ratio": ratios("toggles_per_vector"),
        "toggle_ratio_fanout_weighted": ratios("fanout_weighted_per_vector"),
        "functional_check": {"method": "every combinational netlist simulated against a Python model "
                                       "of its function; acc32 clocked for 500 cycles",
                             "runs": results},
    }
    with open(os.path.join(tmp, "toggle.json"), "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
