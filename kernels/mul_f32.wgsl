// mul_f32: product of two FP32 tensors, b of a's shape (b_div = 1) or one value per plane
// (b_div = H*W). Exact.
// CPU mirror: cpu::kernels::mul_f32.

struct Params { n: u32, b_div: u32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) { return; }
    y[i] = a[i] * b[i / p.b_div];
}
