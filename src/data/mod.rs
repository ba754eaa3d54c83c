//! Datasets: labelled images as FP32 tensors in the layout a model expects.

pub mod idx;
