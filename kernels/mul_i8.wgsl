// mul_i8: product of two INT8 tensors, b either of a's shape (b_div = 1) or one value per
// plane (b_div = H*W: squeeze-and-excitation gates): quantize1(f32(a * b) * k) with
// k = s_a * s_b / s_out. One rounding, exact.
// CPU mirror: cpu::kernels::mul_i8.

struct Params { n: u32, b_div: u32, k: f32, _p0: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<i32>;
@group(0) @binding(2) var<storage, read> b: array<i32>;
@group(0) @binding(3) var<storage, read_write> y: array<i32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) { return; }
    y[i] = quantize1(f32(a[i] * b[i / p.b_div]) * p.k);
}
