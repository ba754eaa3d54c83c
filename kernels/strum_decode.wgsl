// strum_decode: packed StruM weights (docs/packed-format.md) -> integer weights in the
// layer's flat order, one invocation per block: lane value = byte r of the block's hi
// words when its mask bit is set (r = set bits below the lane), else 4-bit code
// (lane - r) of its lo words, decoded as MIP2Q (format 1: sign bit 3, exponent field
// e - emin in bits 0..2, field 7 = zero) or DLIQ (format 2: INT4 << k, k from the block's
// shift nibble when block_shift = 1). Format 0: no low lanes. Exact.
// CPU mirror: cpu::kernels::strum_decode.

struct Params {
    blocks: u32, p: u32, a: u32, q: u32,
    block: u32, hi_words: u32, lo_words: u32, format: u32,
    emin: u32, block_shift: u32, inner: u32, _p1: u32,   // inner > 0: khwc order
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> masks: array<u32>;
@group(0) @binding(2) var<storage, read> hi: array<u32>;
@group(0) @binding(3) var<storage, read> lo: array<u32>;
@group(0) @binding(4) var<storage, read> shifts: array<u32>;
@group(0) @binding(5) var<storage, read_write> w: array<i32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = flat_index(gid, nwg);
    if (b >= p.blocks) { return; }
    let nab = (p.a + p.block - 1u) / p.block;
    let ab = b % nab;
    let pq = b / nab;
    let pp = pq / p.q;
    let qq = pq % p.q;
    let mask = masks[b];
    var k = 0u;
    if (p.format == 2u && p.block_shift != 0u) { k = (shifts[b / 8u] >> (4u * (b % 8u))) & 0xFu; }
    for (var lane = 0u; lane < p.block; lane++) {
        let a = ab * p.block + lane;
        if (a >= p.a) { break; }
        let r = countOneBits(mask & ((1u << lane) - 1u));
        var v: i32 = 0;
        if (((mask >> lane) & 1u) == 1u) {
            let word = hi[b * p.hi_words + r / 4u];
            // sign-extend byte r % 4
            v = (bitcast<i32>(word << (24u - 8u * (r % 4u)))) >> 24u;
        } else if (p.format != 0u) {
            let j = lane - r;
            let code = (lo[b * p.lo_words + j / 8u] >> (4u * (j % 8u))) & 0xFu;
            if (p.format == 1u) {
                let field = code & 7u;
                if (field != 7u) {
                    let m = 1 << (field + p.emin);
                    v = select(m, -m, (code & 8u) != 0u);
                }
            } else {
                v = (bitcast<i32>(code << 28u) >> 28u) << k;
            }
        }
        var aa = a;
        if (p.inner > 0u) { aa = (a % p.inner) * (p.a / p.inner) + a / p.inner; }
        w[(pp * p.a + aa) * p.q + qq] = v;
    }
}
