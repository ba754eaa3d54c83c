// gap_f32: global average pooling of FP32 planes of hw values: the sum in ascending order
// divided by hw. One invocation per plane (image, channel).
// CPU mirror: cpu::kernels::gap_f32.

struct Params { planes: u32, hw: u32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.planes) { return; }
    var s: f32 = 0.0;
    for (var j = 0u; j < p.hw; j++) { s += x[i * p.hw + j]; }
    y[i] = s / f32(p.hw);
}
