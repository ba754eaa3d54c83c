//! The quantized pass of an integer-mode CPU evaluation on the batched executor
//! (`cpu::fast`): calls of a few images, rayon over calls, arenas reused; every reduction in
//! image order (calls are merged in order), so results do not depend on the thread count.
//! Images in the SQNR prefix run the unfused program, which keeps every layer output.

use rayon::prelude::*;

use super::{Acc, Fp32Reference};
use crate::cpu::engine::Engine;
use crate::cpu::fast::{Activity, ArenaPool, Isa, Observe, Program};
use crate::data::Dataset;
use crate::error::Result;

/// What the batched pass needs besides the engine and the images.
pub(super) struct Pass<'a> {
    pub reference: &'a Fp32Reference,
    pub labels: Option<&'a [u32]>,
    pub already_probs: bool,
    /// the graph output holding class scores, if any
    pub class: Option<usize>,
    /// (offset, length) of each graph output in an FP32 reference row
    pub layout: &'a [(usize, usize)],
    /// `--check-reference`: the reference-kernel engine, run on every image
    pub check: Option<&'a Engine<'a>>,
    pub layers: usize,
    pub progress: &'a crate::progress::Progress,
}

/// Run the quantized pass; `None` when the plan has an op the batched executor lacks (the
/// caller then runs the per-image engine).
pub(super) fn run(qe: &Engine, data: &Dataset, p: &Pass) -> Result<Option<Acc>> {
    if p.layout.len() != 1 {
        return Ok(None); // the batched executor computes one output
    }
    let isa = Isa::detect();
    let (Ok(fused), Ok(plain)) = (
        Program::compile(qe.plan(), true, isa),
        Program::compile(qe.plan(), false, isa),
    ) else {
        return Ok(None);
    };
    let batch = fused.auto_batch();
    let calls = data.len().div_ceil(batch);
    let (pf, pp) = (ArenaPool::new(&fused, batch), ArenaPool::new(&plain, batch));
    let mut acc = Acc::new(p.layers, 1);
    let mut act = Activity::new(p.layers);
    // groups of calls in parallel, merged in call order
    for g0 in (0..calls).step_by(64) {
        let parts: Vec<(Acc, Activity)> = (g0..(g0 + 64).min(calls))
            .into_par_iter()
            .map(|c| call(data, p, c * batch, batch, (&fused, &pf), (&plain, &pp)))
            .collect::<Result<_>>()?;
        for (a, s) in parts {
            acc = acc.merge(a);
            act.merge(&s);
        }
    }
    acc.n_stats = act.images as usize;
    for (k, s) in fused.stats.iter().enumerate() {
        acc.act_elems[k] = act.act_elems[k];
        acc.act_zeros[k] = act.act_zeros[k];
        acc.nz[k] = act.pairs_nz(k, &s.class_hist);
        acc.dense[k] = s.pairs_dense.map(|v| v * act.images);
    }
    Ok(Some(acc))
}

/// One call: images `i0..i0 + batch` (fewer at the end).
fn call(
    data: &Dataset,
    p: &Pass,
    i0: usize,
    batch: usize,
    (fused, pf): (&Program, &ArenaPool),
    (plain, pp): (&Program, &ArenaPool),
) -> Result<(Acc, Activity)> {
    p.progress.check()?;
    let m = batch.min(data.len() - i0);
    let x = &data.images(i0, i0 + m)?;
    let mut act = Activity::new(p.layers);
    let mut outs = Vec::new();
    let sqnr = i0 < p.reference.sqnr_images;
    let logits = if sqnr {
        let mut obs = Observe {
            activity: Some(&mut act),
            outputs: Some(&mut outs),
        };
        pp.with(|a| plain.run(a, x, m, &mut obs))
    } else {
        let mut obs = Observe {
            activity: Some(&mut act),
            outputs: None,
        };
        pf.with(|a| fused.run(a, x, m, &mut obs))
    };
    let k = fused.out_len();
    let mut acc = Acc::new(p.layers, 1);
    for b in 0..m {
        let i = i0 + b;
        let qv = &logits[b * k..(b + 1) * k];
        if let Some(r) = p.check {
            acc.ref_mismatch += (r.run(&data.image(i)?, false)?.0[0] != qv) as usize;
        }
        let f = &p.reference.logits(i)?;
        acc.n += 1;
        acc.out.add(p.layout, f, &[qv]);
        if p.class.is_some() {
            acc.score(f, qv, p.labels.map(|l| l[i] as usize), p.already_probs);
        }
        if let Some(fl) = p.reference.layer_outputs(i) {
            let q: Vec<&[f32]> = outs[b].iter().map(|v| &v[..]).collect();
            acc.sqnr(fl, &q);
        }
        p.progress.inc();
    }
    Ok((acc, act))
}
