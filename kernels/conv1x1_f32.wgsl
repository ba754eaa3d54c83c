// conv1x1_f32: pointwise convolution (1x1, stride 1, no padding, one group) in FP32 as a register-blocked
// GEMM over a batch: out[b, o, p] = bias[o] + sum_i w[o, i] * x[b, i, p]. Each invocation
// computes OB output channels x PB pixels, reading each activation once for OB channels and
// each weight once for PB pixels. Input channels ascending from the bias, as conv2d_f32.
// CPU mirror: cpu::kernels::conv1x1_f32.

override OB: u32 = 4u;   // at most 8; chosen per adapter (GpuContext::tile)
override PB: u32 = 4u;   // at most 8

struct Params { n: u32, ic: u32, oc: u32, hw: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(gid, nwg);
    let ob = (p.oc + OB - 1u) / OB;
    let pb = (p.hw + PB - 1u) / PB;
    if (t >= p.n * ob * pb) { return; }
    let b = t / (ob * pb);
    let o0 = ((t / pb) % ob) * OB;
    let p0 = (t % pb) * PB;
    var a: array<array<f32, 8>, 8>;
    for (var j = 0u; j < OB; j++) {
        let bj = select(0.0, bias[min(o0 + j, p.oc - 1u)], o0 + j < p.oc);
        for (var k = 0u; k < PB; k++) { a[j][k] = bj; }
    }
    let xb = b * p.ic * p.hw;
    for (var i = 0u; i < p.ic; i++) {
        var xv: array<f32, 8>;
        for (var k = 0u; k < PB; k++) {
            xv[k] = select(0.0, x[xb + i * p.hw + min(p0 + k, p.hw - 1u)], p0 + k < p.hw);
        }
        for (var j = 0u; j < OB; j++) {
            let w = select(0.0, wt[min(o0 + j, p.oc - 1u) * p.ic + i], o0 + j < p.oc);
            for (var k = 0u; k < PB; k++) { a[j][k] += w * xv[k]; }
        }
    }
    for (var j = 0u; j < OB; j++) {
        for (var k = 0u; k < PB; k++) {
            if (o0 + j < p.oc && p0 + k < p.hw) {
                y[(b * p.oc + o0 + j) * p.hw + p0 + k] = a[j][k];
            }
        }
    }
}
