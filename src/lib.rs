//! strumlab: structured mixed-precision (StruM) quantization and FlexNN accelerator
//! modelling for CNNs. Data flows one way:
//! `model -> quant -> exec -> eval -> hw -> report`; see ARCHITECTURE.md.

pub mod cli;
pub mod cpu;
pub mod data;
pub mod error;
pub mod eval;
pub mod exec;
pub mod gpu;
pub mod hash;
pub mod html;
pub mod hw;
pub mod model;
pub mod plot;
pub mod progress;
pub mod quant;
pub mod report;
pub mod reproduce;
pub mod run;
pub mod search;
pub mod stats;
pub mod sweep;
#[cfg(feature = "train")]
pub mod train;
pub mod zoo;

pub use error::{Error, Result};
