// quantize: FP32 -> INT8 values (stored as i32): quantize1(x[offset + i] / scale); the
// offset lets a batch be read from a dataset resident on the GPU (the mirror takes a slice).
// CPU mirror: cpu::kernels::quantize.

struct Params { n: u32, scale: f32, offset: u32, _p1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> q: array<i32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) { return; }
    q[i] = quantize1(x[p.offset + i] / p.scale);
}
