//! Every graph output of a run against FP32: SQNR and largest absolute error per output,
//! accumulated image by image (streaming: nothing per image is kept), and which output, if
//! any, holds class scores.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::Graph;

/// One graph output of a quantized run against the FP32 run on the same images.
#[derive(Clone, Debug, Serialize)]
pub struct OutputEval {
    pub name: String,
    /// values per image
    pub elems_per_image: usize,
    /// whether top-1, agreement and KL were computed on it
    pub class_scores: bool,
    /// 10 log10(sum of FP32 values^2 / sum of errors^2) over every image, dB (infinite:
    /// exact; JSON null)
    pub sqnr_db: f64,
    /// largest |quantized - FP32| over every value of every image
    pub max_abs_err: f64,
}

/// Where each output sits in an FP32 reference row (every output of an image, back to back):
/// (offset, length).
pub fn row_layout(graph: &Graph) -> Vec<(usize, usize)> {
    let mut at = 0;
    graph
        .outputs
        .iter()
        .map(|o| {
            let n = graph.shape(o).iter().product::<usize>();
            at += n;
            (at - n, n)
        })
        .collect()
}

/// The index of the output holding class scores: the one `name`d (a card's
/// `logits_output`), else the only output of a single-output graph, else none.
pub fn class_output(graph: &Graph, name: Option<&str>) -> Result<Option<usize>> {
    match name {
        Some(n) => graph
            .outputs
            .iter()
            .position(|o| o == n)
            .map(Some)
            .ok_or_else(|| Error::InvalidArg {
                arg: "logits_output".into(),
                reason: format!(
                    "the model has no output '{n}' (its outputs: {})",
                    graph.outputs.join(", ")
                ),
            }),
        None => Ok((graph.outputs.len() == 1).then_some(0)),
    }
}

/// Sums behind [`OutputEval`], one entry per output.
#[derive(Clone, Debug, Default)]
pub struct OutAcc {
    sig: Vec<f64>,
    noise: Vec<f64>,
    max_err: Vec<f64>,
}

impl OutAcc {
    pub fn new(outputs: usize) -> Self {
        OutAcc {
            sig: vec![0.0; outputs],
            noise: vec![0.0; outputs],
            max_err: vec![0.0; outputs],
        }
    }
    /// One image: its FP32 reference row and the quantized run's outputs.
    pub fn add(&mut self, layout: &[(usize, usize)], row: &[f32], q: &[&[f32]]) {
        for (k, (&(at, n), qv)) in layout.iter().zip(q).enumerate() {
            for (&f, &v) in row[at..at + n].iter().zip(qv.iter()) {
                let e = (v - f) as f64;
                self.sig[k] += (f as f64).powi(2);
                self.noise[k] += e * e;
                self.max_err[k] = self.max_err[k].max(e.abs());
            }
        }
    }
    pub fn merge(&mut self, o: &OutAcc) {
        for k in 0..self.sig.len() {
            self.sig[k] += o.sig[k];
            self.noise[k] += o.noise[k];
            self.max_err[k] = self.max_err[k].max(o.max_err[k]);
        }
    }
    pub fn finish(&self, graph: &Graph, class: Option<usize>) -> Vec<OutputEval> {
        let layout = row_layout(graph);
        graph
            .outputs
            .iter()
            .enumerate()
            .map(|(k, name)| OutputEval {
                name: name.clone(),
                elems_per_image: layout[k].1,
                class_scores: class == Some(k),
                sqnr_db: crate::quant::sqnr_db(self.sig[k], self.noise[k]),
                max_abs_err: self.max_err[k],
            })
            .collect()
    }
}
