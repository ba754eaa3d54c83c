// unary_f32: elementwise activations in FP32: op 0 Sigmoid 1 / (1 + exp(-x)); op 1 HardSwish
// x * clamp(x / 6 + 0.5, 0, 1); op 2 HardSigmoid clamp(alpha x + beta, 0, 1). The GPU's exp
// and division are not correctly rounded, so tests compare within FP32_KERNEL_REL_TOL.
// CPU mirror: cpu::kernels::unary_f32.

struct Params { n: u32, op: u32, alpha: f32, beta: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) { return; }
    let v = x[i];
    if (p.op == 0u) {
        y[i] = 1.0 / (1.0 + exp(-v));
    } else if (p.op == 1u) {
        y[i] = v * clamp(v / 6.0 + 0.5, 0.0, 1.0);
    } else {
        y[i] = clamp(p.alpha * v + p.beta, 0.0, 1.0);
    }
}
