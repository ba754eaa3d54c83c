// pack_i8x4: integer weights [rows, cols] (INT8 range, stored as i32) -> four per u32 along
// cols: byte t of word (r * cols4 + j) is w[r, 4j + t] (two's complement), zero past cols.
// Layout of the weights of the *_dp4a kernels; run after strum_quantize re-quantizes. Exact.
// CPU mirror: cpu::kernels::pack_i8x4.

struct Params { rows: u32, cols: u32, cols4: u32, _p0: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<i32>;
@group(0) @binding(2) var<storage, read_write> wp: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.rows * p.cols4) { return; }
    let r = i / p.cols4;
    let j = i % p.cols4;
    var v = vec4<i32>(0, 0, 0, 0);
    for (var t = 0u; t < 4u; t++) {
        let c = 4u * j + t;
        if (c < p.cols) { v[t] = w[r * p.cols + c]; }
    }
    wp[i] = pack4xI8(v);
}
