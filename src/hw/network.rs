//! Network-level memory (model v3): which layer outputs stay in the SRAM for the next
//! layer instead of going through DRAM, and the network's compulsory DRAM traffic.
//!
//! Layers run one after another (batch 1). Layer i's output stays on chip when the next
//! layer reads it (directly, or through operators the model does not cost: activations,
//! pooling, element-wise adds, reshapes) and the SRAM holds it with each layer's working
//! set: with layer i's weights and input while i writes it, and with layer i+1's weights
//! and output while i+1 reads it (whole tensors: a conservative rule, since the nest may
//! tile them). Otherwise it spills: written to DRAM by layer i and read back by layer i+1.
//! A second input of an element-wise add (a residual branch) is not modelled.

use serde::Serialize;

use super::mapper::LayerShape;
use crate::model::Graph;

/// Whether a layer's input arrives in, and its output stays in, the SRAM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OnChip {
    pub input: bool,
    pub output: bool,
}

/// An activation tensor between two layers that goes through DRAM.
#[derive(Clone, Debug, Serialize)]
pub struct Spill {
    /// the layer that writes it
    pub layer: String,
    pub bytes: f64,
    pub reason: String,
}

/// One layer as the plan sees it: node index, name, shape, weight bytes.
pub struct PlanLayer<'a> {
    pub node: usize,
    pub name: &'a str,
    pub shape: &'a LayerShape,
    pub weight_bytes: f64,
}

/// The layer (index into `layers`) whose output `value` is, through uncosted operators.
fn producer(g: &Graph, layers: &[PlanLayer], value: &str) -> Option<usize> {
    let mut v = value.to_string();
    for _ in 0..g.nodes.len() {
        let (i, n) = g.nodes.iter().enumerate().find(|(_, n)| n.output == v)?;
        if let Some(l) = layers.iter().position(|l| l.node == i) {
            return Some(l);
        }
        v = n.inputs.first()?.clone();
    }
    None
}

/// Which tensors stay on chip, and every spill with its reason.
pub fn plan(
    g: &Graph,
    layers: &[PlanLayer],
    sram_bytes: f64,
    act_bytes: f64,
) -> (Vec<OnChip>, Vec<Spill>) {
    let mut on = vec![OnChip::default(); layers.len()];
    let mut spills = Vec::new();
    for i in 0..layers.len().saturating_sub(1) {
        let (a, b) = (&layers[i], &layers[i + 1]);
        let out_a = a.shape.outputs() * act_bytes;
        let in_b = b.shape.inputs as f64 * act_bytes;
        let spill = |reason: String| Spill {
            layer: a.name.to_string(),
            bytes: out_a,
            reason,
        };
        let input_value = &g.nodes[b.node].inputs[0];
        if producer(g, layers, input_value) != Some(i) {
            spills.push(spill(format!(
                "'{}' does not read it (another branch or layer reads it)",
                b.name
            )));
            continue;
        }
        let writer = out_a + a.weight_bytes + a.shape.inputs as f64 * act_bytes;
        let reader = in_b.max(out_a) + b.weight_bytes + b.shape.outputs() * act_bytes;
        if writer > sram_bytes {
            spills.push(spill(format!(
                "with its layer's weights and input: {writer:.0} B > SRAM {sram_bytes:.0} B"
            )));
        } else if reader > sram_bytes {
            spills.push(spill(format!(
                "with '{}''s weights and output: {reader:.0} B > SRAM {sram_bytes:.0} B",
                b.name
            )));
        } else {
            on[i].output = true;
            on[i + 1].input = true;
        }
    }
    (on, spills)
}

/// Every weight, the network's input and its last layer's output once (bytes, dense).
pub fn compulsory_bytes(layers: &[PlanLayer], act_bytes: f64) -> f64 {
    let w: f64 = layers.iter().map(|l| l.weight_bytes).sum();
    let input = layers
        .first()
        .map_or(0.0, |l| l.shape.inputs as f64 * act_bytes);
    let output = layers.last().map_or(0.0, |l| l.shape.outputs() * act_bytes);
    w + input + output
}
