// strum_quantize: StruM weight quantization on the GPU, so that a sweep re-quantizes the
// resident weights for each configuration instead of uploading them again. One invocation
// per block. Inputs are a layer's INT8 codes q8 and |w / s| ratios (per-channel scales do
// not depend on L or the strategy) laid out as the layer's geometry (p, a, q): block b
// covers a-indices [ab*B, ab*B + B) at one (p, q); lanes past `a` are padding; with
// inner > 0 a-index r is the weight (p, ic = r % inner, tap = r / inner) (khwc order).
// Selection by magnitude: padding first, then the smallest |ratio|, then the lower lane,
// are demoted (L of the B lanes). Demotion: MIP2Q = nearest signed power of two 2^e,
// e in [emin, emax], zero below (tie rule: 0 down, 1 up, 2 log); DLIQ = INT4 times 2^k,
// k per block = the smallest k in 0..=5 with max |q8 demoted| <= 7 * 2^k (block_shift = 1)
// or 0. Then the integer engine's INT32 headroom factor of the output channel (1 = none):
// round(f32(v) * r). Writes the layer's integer weights.
// CPU mirror: cpu::kernels::strum_quantize.

struct Params {
    blocks: u32, p: u32, a: u32, q: u32,
    block: u32, low: u32, scheme: u32, emin: u32,   // scheme: 0 INT8 copy, 1 MIP2Q, 2 DLIQ
    emax: u32, p2_round: u32, block_shift: u32, per_channel: u32,
    inner: u32, _p0: u32, _p1: u32, _p2: u32,   // inner > 0: the khwc order (quant::geometry)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q8: array<i32>;
@group(0) @binding(2) var<storage, read> ratio: array<f32>;
@group(0) @binding(3) var<storage, read> headroom: array<f32>;
@group(0) @binding(4) var<storage, read_write> w: array<i32>;

// Index of lane `lane` of block `b`, or -1 for padding.
fn lane_index(b: u32, lane: u32) -> i32 {
    let nab = (p.a + p.block - 1u) / p.block;
    let ab = b % nab;
    let pq = b / nab;
    let pp = pq / p.q;
    let qq = pq % p.q;
    let a = ab * p.block + lane;
    if (a >= p.a) { return -1; }
    var aa = a;
    if (p.inner > 0u) { aa = (a % p.inner) * (p.a / p.inner) + a / p.inner; }
    return i32((pp * p.a + aa) * p.q + qq);
}

fn mag(i: i32) -> f32 {
    if (i < 0) { return -1.0; }
    return abs(ratio[u32(i)]);
}

// Does lane x sort before lane y (padding first, then magnitude, then lane)?
fn before(x: u32, ix: i32, y: u32, iy: i32) -> bool {
    let px = ix >= 0;
    let py = iy >= 0;
    if (px != py) { return !px; }
    let mx = mag(ix);
    let my = mag(iy);
    if (mx != my) { return mx < my; }
    return x < y;
}

fn nearest_p2(m: i32) -> i32 {   // -1: zero
    if (m <= 0) { return -1; }
    let lo = 1 << p.emin;
    if (m < lo) {
        let d0 = m;
        let d1 = lo - m;
        if (d0 < d1) { return -1; }
        if (d0 > d1) { return i32(p.emin); }
        if (p.p2_round == 1u) { return i32(p.emin); }
        return -1;
    }
    var e = p.emin;
    while (e < p.emax && (1 << (e + 1u)) <= m) { e++; }
    if (e == p.emax || (1 << e) == m) { return i32(e); }
    let a = 1 << e;
    let b = 1 << (e + 1u);
    var up = false;
    if (p.p2_round == 2u) {
        // m^2 > 2^(2e+1), in 32 bits: m < 2^7 here, so m^2 < 2^14.
        up = m * m > (1 << (2u * e + 1u));
    } else {
        let da = m - a;
        let db = b - m;
        up = da > db || (da == db && p.p2_round == 1u);
    }
    if (up) { return i32(e + 1u); }
    return i32(e);
}

fn lower(v: i32, k: u32) -> i32 {
    if (p.scheme == 1u) {
        let e = nearest_p2(abs(v));
        if (e < 0) { return 0; }
        let m = 1 << u32(e);
        if (v < 0) { return -m; }
        return m;
    }
    let t = i32(clamp(round(f32(v) / f32(1u << k)), -8.0, 7.0));
    return t << k;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = flat_index(gid, nwg);
    if (b >= p.blocks) { return; }
    let low = select(p.low, 0u, p.scheme == 0u);
    // Demoted lanes: rank < L. Block shift from the demoted values (padding counts as 0).
    var demoted = 0u;   // bit mask over lanes (B <= 32)
    var mx = 0;
    for (var x = 0u; x < p.block; x++) {
        let ix = lane_index(b, x);
        var rank = 0u;
        for (var y = 0u; y < p.block; y++) {
            if (y != x && before(y, lane_index(b, y), x, ix)) { rank++; }
        }
        if (rank < low) {
            demoted |= 1u << x;
            if (ix >= 0) { mx = max(mx, abs(q8[u32(ix)])); }
        }
    }
    var k = 0u;
    if (p.scheme == 2u && p.block_shift != 0u) {
        k = 5u;
        for (var s = 0u; s <= 5u; s++) {
            if (mx <= (7 << s)) { k = s; break; }
        }
    }
    for (var x = 0u; x < p.block; x++) {
        let ix = lane_index(b, x);
        if (ix < 0) { continue; }
        let i = u32(ix);
        var v = q8[i];
        if ((demoted & (1u << x)) != 0u) { v = lower(v, k); }
        let r = headroom[i / p.per_channel];
        if (r != 1.0) { v = i32(round(f32(v) * r)); }
        w[i] = v;
    }
}
