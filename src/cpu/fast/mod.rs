//! The batched integer executor: a batch of images through each layer at a time,
//! activations INT8 in NHWC, each Conv/Dense one GEMM (or the depthwise kernel) per batch
//! writing through a fused epilogue into arena slots; kernels chosen once per process from
//! the CPU's features (AVX-512 VNNI, else portable). Bit-identical to the reference
//! kernels in integer mode (tests/fast_engine.rs; results/validation).

pub mod arena;
pub mod compile;
pub mod dw;
pub mod epi;
pub mod gemm;
mod ops;
pub mod peak;
pub mod profile;
pub mod stats;

pub use arena::{Arena, ArenaPool};
pub use compile::Program;
pub use gemm::Isa;
pub use stats::Activity;

use compile::{FOp, Kernel};
use epi::{AddIn, Epi};

/// What a run records besides the outputs.
#[derive(Default)]
pub struct Observe<'a> {
    /// per-layer activity of every image
    pub activity: Option<&'a mut Activity>,
    /// per image, per weight layer: its output dequantized, NCHW (needs a program compiled
    /// without fusion, so that every layer output exists)
    pub outputs: Option<&'a mut Vec<Vec<Vec<f32>>>>,
}

impl Program {
    /// Images per worker call when the caller does not choose: enough to fill the
    /// GEMM row tiles of small maps, few enough that one image's largest value stays near
    /// the core's L2 (measured on fmnist-resnet and EfficientNet-Lite0).
    pub fn auto_batch(&self) -> usize {
        let largest = self
            .vals
            .iter()
            .map(|v| v.bytes())
            .max()
            .unwrap_or(1)
            .max(1);
        ((512 << 10) / largest).clamp(1, 64)
    }

    /// Values per image of the graph output.
    pub fn out_len(&self) -> usize {
        self.vals[self.output].elems()
    }

    /// Run `n` images (`images`: `n` model inputs back to back, NCHW FP32) and return the
    /// graph output of each, back to back, as FP32 (INT8 outputs dequantized).
    pub fn run(&self, arena: &mut Arena, images: &[f32], n: usize, obs: &mut Observe) -> Vec<f32> {
        assert!(n <= arena.batch, "batch {n} > arena {}", arena.batch);
        let (c, h, w) = self.input_chw;
        assert_eq!(images.len(), n * c * h * w, "input size");
        let prof = profile::enabled();
        for (k, op) in self.ops.iter().enumerate() {
            let t = prof.then(std::time::Instant::now);
            self.op(op, arena, images, n, obs);
            if let Some(t) = t {
                profile::add(self, k, t.elapsed().as_secs_f64(), n);
            }
        }
        let v = &self.vals[self.output];
        let len = n * v.elems();
        let p = arena.ptr(self.slot[self.output]);
        if v.f32 {
            // SAFETY: the slot holds `n * elems` FP32 values written by the last op.
            unsafe { std::slice::from_raw_parts(p as *const f32, len) }.to_vec()
        } else {
            let q = unsafe { std::slice::from_raw_parts(p as *const i8, len) };
            q.iter().map(|&x| x as f32 * v.scale).collect()
        }
    }

    fn i8_of(&self, arena: &mut Arena, v: usize, n: usize) -> &'static mut [i8] {
        let len = n * self.vals[v].elems();
        let s = self.slot[v];
        assert!(len <= arena.len(s));
        // SAFETY: in bounds (asserted); slots of an op's inputs and output differ
        // (arena::assign), so the slices an op holds never overlap a written one.
        unsafe { std::slice::from_raw_parts_mut(arena.ptr(s) as *mut i8, len) }
    }

    fn op(&self, op: &FOp, arena: &mut Arena, images: &[f32], n: usize, obs: &mut Observe) {
        match op {
            FOp::Quantize { out, scale } => {
                let o = self.i8_of(arena, *out, n);
                ops::quantize_nhwc(images, n, self.input_chw, *scale, o);
            }
            FOp::Layer {
                input,
                out,
                layer,
                kernel,
                epi,
            } => {
                let x = self.i8_of(arena, *input, n);
                if let Some(a) = obs.activity.as_deref_mut() {
                    self.observe_input(
                        a,
                        *layer,
                        kernel,
                        *input,
                        x,
                        n,
                        (&mut arena.sat, &mut arena.nz),
                    );
                }
                self.layer(arena, kernel, x, *input, *out, epi, n);
                if let Some(outs) = obs.outputs.as_deref_mut() {
                    ops::collect_output(self, arena, *out, *layer, n, outs);
                }
            }
            FOp::MaxPool { input, out, geom } => {
                let (x, o) = (self.i8_of(arena, *input, n), self.i8_of(arena, *out, n));
                ops::maxpool(x, n, geom, o);
            }
            FOp::Gap { input, out, k } => {
                let v = &self.vals[*input];
                let (x, o) = (self.i8_of(arena, *input, n), self.i8_of(arena, *out, n));
                ops::gap(x, n, v.h * v.w, v.c, *k, o);
            }
            FOp::Add { a, b, out, ra, rb } => {
                let (x, y) = (self.i8_of(arena, *a, n), self.i8_of(arena, *b, n));
                ops::add(x, y, *ra, *rb, self.i8_of(arena, *out, n));
            }
            FOp::Clamp { input, out, lo, hi } => {
                let (x, o) = (self.i8_of(arena, *input, n), self.i8_of(arena, *out, n));
                for (d, &s) in o.iter_mut().zip(x.iter()) {
                    *d = s.clamp(*lo, *hi);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn observe_input(
        &self,
        a: &mut Activity,
        layer: usize,
        kernel: &Kernel,
        input: usize,
        x: &[i8],
        n: usize,
        (sat, nz): (&mut Vec<u32>, &mut Vec<u32>),
    ) {
        let per = self.vals[input].elems();
        a.images += (layer == 0) as u64 * n as u64;
        match kernel {
            Kernel::Gemm { geom: Some(g), .. } | Kernel::Depthwise { geom: g, .. } => {
                stats::conv_input(a, layer, x, n, g, sat, nz)
            }
            Kernel::Gemm { geom: None, .. } => {
                for b in 0..n {
                    let xi = &x[b * per..(b + 1) * per];
                    stats::dense_input(a, layer, xi, self.vals[input].nchw)
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn layer(
        &self,
        arena: &mut Arena,
        kernel: &Kernel,
        x: &[i8],
        input: usize,
        out: usize,
        spec: &compile::EpiSpec,
        n: usize,
    ) {
        let ov = &self.vals[out];
        let oc = ov.c;
        let outp = arena.ptr(self.slot[out]);
        assert!(n * ov.bytes() <= arena.len(self.slot[out]));
        let add = spec.add.map(|(v, ra, rb, first)| AddIn {
            other: self.i8_of(arena, v, n).as_ptr(),
            ld: oc,
            ra,
            rb,
            self_first: first,
        });
        let epi = |m, col0, cols| make_epi(spec, add, ov.f32, outp, oc, m, col0, cols);
        match kernel {
            Kernel::Depthwise { geom, w } => {
                dw::depthwise(self.isa, x, n, geom, w, &epi(&w.m, 0, oc));
            }
            Kernel::Gemm { geom, pw, im2col } => {
                let iv = &self.vals[input];
                for (grp, w) in pw.iter().enumerate() {
                    let e = epi(&w.m, grp * w.oc, w.oc);
                    // gathered rows are written offset for the VNNI kernel
                    let pre = self.isa == Isa::Avx512Vnni;
                    let (rows, a, lda, offset) = match (geom, im2col) {
                        (Some(g), true) => {
                            let (r, p) = (&mut arena.rows, &mut arena.padded);
                            ops::im2col(x, n, g, grp, w.kp, r, p, pre);
                            (n * g.oh * g.ow, &arena.rows[..], w.kp, pre)
                        }
                        (Some(g), false) => (n * g.oh * g.ow, x, g.c, false),
                        (None, true) => {
                            ops::pad_rows(x, n, iv.elems(), w.kp, &mut arena.rows, pre);
                            (n, &arena.rows[..], w.kp, pre)
                        }
                        (None, false) => (n, x, iv.elems(), false),
                    };
                    let r = gemm::Rows {
                        a,
                        lda,
                        rows,
                        offset,
                    };
                    gemm::gemm(self.isa, &r, w, &e, &mut arena.scratch);
                }
            }
        }
    }
}

/// The epilogue of output columns `col0..col0 + cols` of a layer whose output slot starts
/// at `outp` (row stride `oc`).
#[allow(clippy::too_many_arguments)]
fn make_epi<'m>(
    spec: &compile::EpiSpec,
    add: Option<AddIn>,
    f32_out: bool,
    outp: *mut u8,
    oc: usize,
    m: &'m [f32],
    col0: usize,
    cols: usize,
) -> Epi<'m> {
    // SAFETY (the pointer offsets): col0 < oc, inside every row of the slots.
    Epi {
        m,
        lo1: spec.lo1,
        hi1: spec.hi1,
        add: add.map(|a| AddIn {
            other: unsafe { a.other.add(col0) },
            ..a
        }),
        lo2: spec.lo2,
        hi2: spec.hi2,
        out_i8: if f32_out {
            std::ptr::null_mut()
        } else {
            unsafe { (outp as *mut i8).add(col0) }
        },
        out_f32: if f32_out {
            unsafe { (outp as *mut f32).add(col0) }
        } else {
            std::ptr::null_mut()
        },
        ld: oc,
        cols,
    }
}
