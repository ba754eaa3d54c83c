//! How a layer's weights are cut into blocks.
//!
//! A weight tensor is viewed as `[P][A][Q]` (row-major): blocks of B run along A, at fixed
//! (p, q). Blocks are numbered `(p * Q + q) * ceil(A / B) + a / B` and lane `a % B` holds
//! element `(p, a, q)`. A tail block with fewer than B real elements is padded with zero
//! lanes. Per-channel scales are indexed by output channel `idx / per_channel`.
//!
//! With `inner > 0` (the `khwc` order, `q == 1`) the A axis is a convolution's reduction
//! taken in (kh, kw, ic) order with ic innermost while the weights are stored (ic, kh, kw):
//! a-index `r` is element `(p, ic = r % inner, tap = r / inner)`, i.e. flat offset
//! `p * A + (r % inner) * (A / inner) + r / inner`.

use super::config::{BlockAxis, Depthwise};
use crate::model::LayerRef;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub p: usize,
    pub a: usize,
    pub q: usize,
    pub block: usize,
    /// Input channels per group of the `khwc` order (0: the plain `[P][A][Q]` view).
    pub inner: usize,
}

impl Geometry {
    pub fn new(p: usize, a: usize, q: usize, block: usize) -> Self {
        Geometry {
            p,
            a,
            q,
            block,
            inner: 0,
        }
    }
    /// `oc` rows of `icg * taps` weights stored (ic, tap), blocked in (tap, ic) order.
    pub fn khwc(oc: usize, icg: usize, taps: usize, block: usize) -> Self {
        Geometry {
            p: oc,
            a: icg * taps,
            q: 1,
            block,
            inner: icg,
        }
    }
    /// Flat element index of (p, a, q).
    fn index(&self, p: usize, a: usize, q: usize) -> usize {
        let a = match self.inner {
            0 => a,
            ic => (a % ic) * (self.a / ic) + a / ic,
        };
        (p * self.a + a) * self.q + q
    }
    pub fn blocks_along_a(&self) -> usize {
        self.a.div_ceil(self.block)
    }
    pub fn num_blocks(&self) -> usize {
        self.p * self.q * self.blocks_along_a()
    }
    pub fn len(&self) -> usize {
        self.p * self.a * self.q
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Flat element indices of block `b`, lane order; `None` for padding lanes.
    pub fn block_lanes(&self, b: usize) -> impl Iterator<Item = Option<usize>> + '_ {
        let nab = self.blocks_along_a();
        let ab = b % nab;
        let pq = b / nab;
        let (p, q) = (pq / self.q, pq % self.q);
        (0..self.block).map(move |lane| {
            let a = ab * self.block + lane;
            (a < self.a).then(|| self.index(p, a, q))
        })
    }
    /// Block number and lane of flat element `idx` (inverse of [`Self::block_lanes`]).
    pub fn locate(&self, idx: usize) -> (usize, usize) {
        let q = idx % self.q;
        let mut a = (idx / self.q) % self.a;
        let p = idx / (self.q * self.a);
        if self.inner > 0 {
            let taps = self.a / self.inner;
            a = (a % taps) * self.inner + a / taps;
        }
        (
            (p * self.q + q) * self.blocks_along_a() + a / self.block,
            a % self.block,
        )
    }
}

/// The block geometry of a layer for a given axis choice and depthwise policy.
pub fn layer_geometry(layer: LayerRef, axis: BlockAxis, dw: Depthwise, block: usize) -> Geometry {
    let s = &layer.weight().shape;
    match layer {
        LayerRef::Dense(_) => Geometry::new(s[0], s[1], 1, block),
        LayerRef::Conv(c) => {
            let (oc, icg, taps) = (s[0], s[1], s[2] * s[3]);
            if c.is_depthwise() && dw == Depthwise::Channel {
                return Geometry::new(1, oc, taps, block);
            }
            if c.is_depthwise() || axis == BlockAxis::Flat {
                return Geometry::new(oc, icg * taps, 1, block);
            }
            // `ic` with fewer input channels than B would fill blocks with padding.
            if axis == BlockAxis::Khwc || (icg < block && taps > 1) {
                return Geometry::khwc(oc, icg, taps, block);
            }
            Geometry::new(oc, icg, taps, block)
        }
    }
}
