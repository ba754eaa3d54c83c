// dequantize_acc: INT32 accumulators -> FP32 outputs, f32(acc) * m[channel], for layers
// that feed graph outputs. Channel as in requantize.
// CPU mirror: cpu::kernels::dequantize_acc.

struct Params { n: u32, per_channel: u32, channels: u32, channel_last: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> acc: array<i32>;
@group(0) @binding(2) var<storage, read> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) { return; }
    var ch = (i / p.per_channel) % p.channels;
    if (p.channel_last != 0u) { ch = i % p.channels; }
    y[i] = f32(acc[i]) * m[ch];
}
