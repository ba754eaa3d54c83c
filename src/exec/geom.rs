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

impl ConvGeom {
    /// Output columns `xo` whose input column `xo*sw + kx*dw - pl` lies inside the image.
    #[inline]
    pub fn x_range(&self, kx: usize) -> (usize, usize) {
        let off = kx * self.dw;
        let lo = if off >= self.pl {
            0
        } else {
            (self.pl - off).div_ceil(self.sw)
        };
        // need xo*sw + off - pl <= w - 1
        let lim = self.w + self.pl;
        let hi = if lim <= off {
            0
        } else {
            ((lim - off - 1) / self.sw + 1).min(self.ow)
        };
        (lo.min(hi), hi)
    }
}
