// avgpool_i8: average pooling of INT8 images [C, H, W] (C may span a batch): the window's
// INT32 sum times a host-computed factor for its element count, m[count - 1] =
// s_in / (count * s_out), then quantize1. count = kh * kw with include_pad, else the
// in-bounds elements. Exact.
// CPU mirror: cpu::kernels::avgpool_i8.

struct Params {
    c: u32, h: u32, w: u32, kh: u32,
    kw: u32, sh: u32, sw: u32, pt: u32,
    pl: u32, oh: u32, ow: u32, include_pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<i32>;
@group(0) @binding(2) var<storage, read> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<i32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_index(gid, nwg);
    if (idx >= p.c * p.oh * p.ow) { return; }
    let c = idx / (p.oh * p.ow);
    let yo = (idx / p.ow) % p.oh;
    let xo = idx % p.ow;
    var s: i32 = 0;
    var cnt = 0u;
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = i32(yo * p.sh + ky) - i32(p.pt);
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = i32(xo * p.sw + kx) - i32(p.pl);
            if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
                s += x[(c * p.h + u32(iy)) * p.w + u32(ix)];
                cnt++;
            }
        }
    }
    if (p.include_pad != 0u) { cnt = p.kh * p.kw; }
    y[idx] = quantize1(f32(s) * m[max(cnt, 1u) - 1u]);
}
