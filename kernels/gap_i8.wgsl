// gap_i8: global average pooling of INT8 planes of hw values: quantize1(f32(sum) * k),
// k = s_in / (hw * s_out). One invocation per plane (image, channel).
// CPU mirror: cpu::kernels::gap_i8.

struct Params { planes: u32, hw: u32, k: f32, _p0: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<i32>;
@group(0) @binding(2) var<storage, read_write> y: array<i32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.planes) { return; }
    var s: i32 = 0;
    for (var j = 0u; j < p.hw; j++) { s += x[i * p.hw + j]; }
    y[i] = quantize1(f32(s) * p.k);
}
