// maxpool_f32: max pooling of one FP32 image [C, H, W] (fp32 and fake-quant modes); padding is ignored. Exact.
// CPU mirror: cpu::kernels::maxpool_f32.

struct Params {
    c: u32, h: u32, w: u32, kh: u32,
    kw: u32, sh: u32, sw: u32, pt: u32,
    pl: u32, oh: u32, ow: u32, _p0: u32,
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
    var m: f32 = -3.402823e38;
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = i32(yo * p.sh + ky) - i32(p.pt);
        if (iy < 0 || iy >= i32(p.h)) { continue; }
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = i32(xo * p.sw + kx) - i32(p.pl);
            if (ix >= 0 && ix < i32(p.w)) {
                m = max(m, x[(c * p.h + u32(iy)) * p.w + u32(ix)]);
            }
        }
    }
    y[idx] = m;
}
