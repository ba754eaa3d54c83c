//! How a layer's weights are cut into blocks.
//!
//! A weight tensor is viewed as `[P][A][Q]` (row-major): blocks of B run along A, at fixed
//! (p, q). Blocks are numbered `(p * Q + q) * ceil(A / B) + a / B` and lane `a % B` holds
//! element `(p, a, q)`. A tail block with fewer than B real elements is padded with zero
//! lanes. Per-channel scales are indexed by output channel `idx / per_channel`.

use super::config::{BlockAxis, Depthwise};
use crate::model::LayerRef;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub p: usize,
    pub a: usize,
    pub q: usize,
    pub block: usize,
}

impl Geometry {
    pub fn new(p: usize, a: usize, q: usize, block: usize) -> Self {
        Geometry { p, a, q, block }
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
            (a < self.a).then(|| (p * self.a + a) * self.q + q)
        })
    }
    /// Block number and lane of flat element `idx` (inverse of [`Self::block_lanes`]).
    pub fn locate(&self, idx: usize) -> (usize, usize) {
        let q = idx % self.q;
        let a = (idx / self.q) % self.a;
        let p = idx / (self.q * self.a);
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
            Geometry::new(oc, icg, taps, block)
        }
    }
}
