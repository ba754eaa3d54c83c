//! CPU execution of the graph IR.
//!
//! [`reference`] is the plain, obviously-correct FP32 interpreter: one loop nest per op,
//! no threading. Faster engines (and the WGSL kernels) are checked against it.

pub mod reference;

pub mod dwconv;
pub mod engine;
pub mod fast;
pub mod gemm;
pub mod kernels;
pub mod taps;
