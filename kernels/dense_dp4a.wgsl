// dense_dp4a: dense (fully connected) INT8 x INT8 -> INT32 with packed 4x8-bit dot products
// (dot4I8Packed; naga emits SPIR-V OpSDot where the Vulkan device has integer dot products,
// else a shift-and-multiply sequence). Weights packed by pack_i8x4 ([oc, ic4]); activations
// packed in registers four input channels at a time. OB outputs per invocation, as dense.
// Same INT32 result as dense (integer sums: exact in any order).
// CPU mirror: cpu::kernels::dense_dp4a.

override OB: u32 = 4u;   // at most 8; chosen per adapter (GpuContext::tile)

struct Params { rows: u32, ic: u32, oc: u32, ic4: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<i32>;
@group(0) @binding(2) var<storage, read> wp: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<i32>;
@group(0) @binding(4) var<storage, read_write> acc: array<i32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(gid, nwg);
    let blocks = (p.oc + OB - 1u) / OB;
    if (t >= p.rows * blocks) { return; }
    let r = t / blocks;
    let o0 = (t % blocks) * OB;
    var a: array<i32, 8>;
    for (var j = 0u; j < OB; j++) {
        if (o0 + j < p.oc) { a[j] = bias[o0 + j]; }
    }
    for (var k4 = 0u; k4 < p.ic4; k4++) {
        var v = vec4<i32>(0, 0, 0, 0);
        for (var u = 0u; u < 4u; u++) {
            let k = 4u * k4 + u;
            if (k < p.ic) { v[u] = x[r * p.ic + k]; }
        }
        let xv = pack4xI8(v);
        for (var j = 0u; j < OB; j++) {
            if (o0 + j < p.oc) { a[j] += dot4I8Packed(xv, wp[(o0 + j) * p.ic4 + k4]); }
        }
    }
    for (var j = 0u; j < OB; j++) {
        if (o0 + j < p.oc) { acc[r * p.oc + o0 + j] = a[j]; }
    }
}
