// clamp_i8: ReLU / Clip on INT8 values (exact; the scale is unchanged).
// CPU mirror: cpu::kernels::clamp_i8.

struct Params { n: u32, lo: i32, hi: i32, _p0: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<i32>;
@group(0) @binding(2) var<storage, read_write> y: array<i32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) { return; }
    y[i] = clamp(x[i], p.lo, p.hi);
}
