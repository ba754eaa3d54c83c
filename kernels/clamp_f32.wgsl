// clamp_f32: Relu / Clip (ReLU6) on FP32 values: min(max(x, lo), hi). Exact.
// CPU mirror: cpu::kernels::clamp_f32.

struct Params { n: u32, lo: f32, hi: f32, _p0: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) { return; }
    y[i] = min(max(x[i], p.lo), p.hi);
}
