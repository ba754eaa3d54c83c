// conv2d_f32: direct 2-D convolution in FP32 (fp32 and fake-quant modes), accumulation
// from the FP32 bias in the CPU engine's order: input channel, kernel row, kernel column
// ascending. Any geometry (groups, strides, dilations, explicit padding, pointwise).
// One invocation per output (image, oc, y, x). Not bit-exact with the CPU (the driver may
// fuse multiply-adds); tests compare within FP32_LAYER_REL_TOL.
// CPU mirror: cpu::kernels::conv2d_f32.

struct Params {
    c: u32, h: u32, w: u32, oc: u32,
    icg: u32, kh: u32, kw: u32, sh: u32,
    sw: u32, dh: u32, dw: u32, pt: u32,
    pl: u32, oh: u32, ow: u32, group: u32,
    n: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_index(gid, nwg);
    let per_image = p.oc * p.oh * p.ow;
    if (idx >= p.n * per_image) { return; }
    let b = idx / per_image;
    let xbase = b * p.c * p.h * p.w;
    let o = (idx % per_image) / (p.oh * p.ow);
    let yy = (idx / p.ow) % p.oh;
    let xo = idx % p.ow;
    let grp = o / (p.oc / p.group);
    var a: f32 = bias[o];
    for (var i = 0u; i < p.icg; i++) {
        let ci = grp * p.icg + i;
        for (var ky = 0u; ky < p.kh; ky++) {
            let iy = i32(yy * p.sh + ky * p.dh) - i32(p.pt);
            if (iy < 0 || iy >= i32(p.h)) { continue; }
            for (var kx = 0u; kx < p.kw; kx++) {
                let ix = i32(xo * p.sw + kx * p.dw) - i32(p.pl);
                if (ix < 0 || ix >= i32(p.w)) { continue; }
                let xv = x[xbase + (ci * p.h + u32(iy)) * p.w + u32(ix)];
                a += wt[((o * p.icg + i) * p.kh + ky) * p.kw + kx] * xv;
            }
        }
    }
    y[idx] = a;
}
