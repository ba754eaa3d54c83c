// add_i8: residual add of two INT8 tensors of equal shape:
// quantize1(fma(a, ra, b * rb)), ra = s_a / s_out, rb = s_b / s_out.
// CPU mirror: cpu::kernels::add_i8.

struct Params { n: u32, ra: f32, rb: f32, _p0: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<i32>;
@group(0) @binding(2) var<storage, read> b: array<i32>;
@group(0) @binding(3) var<storage, read_write> y: array<i32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) { return; }
    y[i] = quantize1(fma(f32(a[i]), p.ra, f32(b[i]) * p.rb));
}
