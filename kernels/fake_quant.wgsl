// fake_quant: per-tensor INT8 quantize-dequantize of FP32 values, quantize1(x / s) * s
// (fake-quant mode, at every weight layer's input). Exact on both sides.
// CPU mirror: cpu::kernels::fake_quant.

struct Params { n: u32, scale: f32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) { return; }
    y[i] = f32(quantize1(x[i] / p.scale)) * p.scale;
}
