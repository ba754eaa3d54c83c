// conv1x1_dp4a: pointwise convolution as conv1x1 (OB output channels x PB pixels per
// invocation) with packed 4x8-bit dot products: weights packed by pack_i8x4 ([oc, ic4]),
// each pixel's activations packed four input channels at a time. Same INT32 result as
// conv1x1 (exact).
// CPU mirror: cpu::kernels::conv1x1_dp4a.

override OB: u32 = 4u;   // at most 8; chosen per adapter (GpuContext::tile)
override PB: u32 = 4u;   // at most 8

struct Params { n: u32, ic: u32, oc: u32, hw: u32, ic4: u32, _p0: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<i32>;
@group(0) @binding(2) var<storage, read> wp: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<i32>;
@group(0) @binding(4) var<storage, read_write> acc: array<i32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(gid, nwg);
    let ob = (p.oc + OB - 1u) / OB;
    let pb = (p.hw + PB - 1u) / PB;
    if (t >= p.n * ob * pb) { return; }
    let b = t / (ob * pb);
    let o0 = ((t / pb) % ob) * OB;
    let p0 = (t % pb) * PB;
    var a: array<array<i32, 8>, 8>;
    for (var j = 0u; j < OB; j++) {
        let bj = select(0, bias[min(o0 + j, p.oc - 1u)], o0 + j < p.oc);
        for (var k = 0u; k < PB; k++) { a[j][k] = bj; }
    }
    let xb = b * p.ic * p.hw;
    for (var i4 = 0u; i4 < p.ic4; i4++) {
        var xv: array<u32, 8>;
        for (var k = 0u; k < PB; k++) {
            var v = vec4<i32>(0, 0, 0, 0);
            if (p0 + k < p.hw) {
                for (var u = 0u; u < 4u; u++) {
                    let i = 4u * i4 + u;
                    if (i < p.ic) { v[u] = x[xb + i * p.hw + p0 + k]; }
                }
            }
            xv[k] = pack4xI8(v);
        }
        for (var j = 0u; j < OB; j++) {
            let w = select(0u, wp[min(o0 + j, p.oc - 1u) * p.ic4 + i4], o0 + j < p.oc);
            for (var k = 0u; k < PB; k++) { a[j][k] += dot4I8Packed(xv[k], w); }
        }
    }
    for (var j = 0u; j < OB; j++) {
        for (var k = 0u; k < PB; k++) {
            if (o0 + j < p.oc && p0 + k < p.hw) {
                acc[(b * p.oc + o0 + j) * p.hw + p0 + k] = a[j][k];
            }
        }
    }
}
