//! Model loading: ONNX -> graph IR.

pub mod consts;
pub mod efficientnet;
pub mod export;
pub mod ir;
pub mod onnx;
pub mod onnx_proto;
pub mod pth;
pub mod shape;

pub use ir::{Conv, Dense, Graph, LayerRef, Node, Op, PadMode, Pool, Tensor};
pub use onnx::{LoadOptions, load_onnx, load_onnx_bytes, read_tensor_pb};
