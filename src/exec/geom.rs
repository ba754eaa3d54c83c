//! Convolution and pooling geometry, shared by every interpreter of a plan.

/// Geometry of one 2-D convolution (or pooling window) over one image.
#[derive(Clone, Copy, Debug)]
pub struct ConvGeom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oc: usize,
    pub icg: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub pt: usize,
    pub pl: usize,
    pub oh: usize,
    pub ow: usize,
    pub group: usize,
}

/// Output positions `o < out` whose input coordinate `o * s + off - p` lies in `0..n`, as a
/// half-open range.
#[inline]
pub fn inside(out: usize, s: usize, off: usize, p: usize, n: usize) -> (usize, usize) {
    let lo = if off >= p { 0 } else { (p - off).div_ceil(s) };
    // need o * s + off - p <= n - 1
    let lim = n + p;
    let hi = if lim <= off {
        0
    } else {
        ((lim - off - 1) / s + 1).min(out)
    };
    (lo.min(hi), hi)
}

impl ConvGeom {
    /// Output columns `xo` whose input column `xo*sw + kx*dw - pl` lies inside the image.
    #[inline]
    pub fn x_range(&self, kx: usize) -> (usize, usize) {
        inside(self.ow, self.sw, kx * self.dw, self.pl, self.w)
    }
    /// A 1x1, stride-1, unpadded, ungrouped convolution: a GEMM over the pixels as they lie.
    #[inline]
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.pt == 0
            && self.pl == 0
            && self.group == 1
            && self.oh == self.h
            && self.ow == self.w
    }
    /// Output rows `y` whose input row `y*sh + ky*dh - pt` lies inside the image.
    #[inline]
    pub fn y_range(&self, ky: usize) -> (usize, usize) {
        inside(self.oh, self.sh, ky * self.dh, self.pt, self.h)
    }
}
