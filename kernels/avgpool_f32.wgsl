// avgpool_f32: average pooling of FP32 images [C, H, W] (C may span a batch): the window's
// sum (row-major order) divided by kh * kw with include_pad, else by the in-bounds count.
// The GPU's division is not correctly rounded: tests compare within FP32_KERNEL_REL_TOL.
// CPU mirror: cpu::kernels::avgpool_f32.

struct Params {
    c: u32, h: u32, w: u32, kh: u32,
    kw: u32, sh: u32, sw: u32, pt: u32,
    pl: u32, oh: u32, ow: u32, include_pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_index(gid, nwg);
    if (idx >= p.c * p.oh * p.ow) { return; }
    let c = idx / (p.oh * p.ow);
    let yo = (idx / p.ow) % p.oh;
    let xo = idx % p.ow;
    var s: f32 = 0.0;
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
    y[idx] = s / f32(max(cnt, 1u));
}
