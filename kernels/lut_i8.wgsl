// lut_i8: an elementwise activation (Sigmoid, HardSwish, HardSigmoid) in integer mode by
// table lookup: y = lut[x + 128], the 256-entry table built on the host from the input and
// output scales (cpu::kernels::activation_lut). Exact.
// CPU mirror: cpu::kernels::lut_i8.

struct Params { n: u32, _p0: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<i32>;
@group(0) @binding(2) var<storage, read> lut: array<i32>;
@group(0) @binding(3) var<storage, read_write> y: array<i32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) { return; }
    y[i] = lut[u32(x[i] + 128)];
}
