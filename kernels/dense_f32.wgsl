// dense_f32: fully connected layer in FP32 from the FP32 bias, inputs in ascending order.
// Register-blocked: each invocation computes OB outputs of one row.
// CPU mirror: cpu::kernels::dense_f32.

override OB: u32 = 4u;   // at most 8; chosen per adapter (GpuContext::tile)

struct Params { rows: u32, ic: u32, oc: u32, _p0: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(gid, nwg);
    let blocks = (p.oc + OB - 1u) / OB;
    if (t >= p.rows * blocks) { return; }
    let r = t / blocks;
    let o0 = (t % blocks) * OB;
    var a: array<f32, 8>;
    for (var j = 0u; j < OB; j++) {
        if (o0 + j < p.oc) { a[j] = bias[o0 + j]; }
    }
    for (var k = 0u; k < p.ic; k++) {
        let xv = x[r * p.ic + k];
        for (var j = 0u; j < OB; j++) {
            if (o0 + j < p.oc) { a[j] += wt[(o0 + j) * p.ic + k] * xv; }
        }
    }
    for (var j = 0u; j < OB; j++) {
        if (o0 + j < p.oc) { y[r * p.oc + o0 + j] = a[j]; }
    }
}
