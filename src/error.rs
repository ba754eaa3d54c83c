//! The library's error type. Every fallible public function returns [`Result`].

use std::path::PathBuf;

/// Everything that can go wrong in strumlab, with enough context to act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a readable ONNX model: {reason}")]
    OnnxDecode { path: String, reason: String },
    #[error("node '{node}': unsupported operator {op}{detail}")]
    UnsupportedOp {
        node: String,
        op: String,
        detail: String,
    },
    #[error("node '{node}' ({op}): {reason}")]
    InvalidNode {
        node: String,
        op: String,
        reason: String,
    },
    #[error("model: {0}")]
    InvalidModel(String),
    #[error("invalid argument {arg}: {reason}")]
    InvalidArg { arg: String, reason: String },
    #[error("{path}: {reason}")]
    Data { path: String, reason: String },
    /// The caller asked the run to stop ([`crate::progress::Watch::cancel`]; Ctrl-C in Python).
    #[error("cancelled")]
    Cancelled,
    #[error("GPU: {0}")]
    Gpu(String),
    /// A plan the batched CPU executor cannot run (the per-image engine runs it instead).
    #[error("batched executor: {0}")]
    Unsupported(String),
    #[error("{path}: {reason}")]
    Config { path: String, reason: String },
    #[error("cannot write {path}: {reason}")]
    Output { path: String, reason: String },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn node(node: &str, op: &str, reason: impl Into<String>) -> Self {
        Error::InvalidNode {
            node: node.to_string(),
            op: op.to_string(),
            reason: reason.into(),
        }
    }
}

/// A TOML error on one line: `line L, column C (`the line`): message` (the `toml` crate's own display
/// spans several lines with a source excerpt).
pub fn toml_reason(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().replace('\n', "; ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let start = before.rfind('\n').map_or(0, |i| i + 1);
            let col = before.len() - start + 1;
            let src: String = text[start..]
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .chars()
                .take(120)
                .collect();
            format!("line {line}, column {col} (`{src}`): {msg}")
        }
        None => msg,
    }
}

/// Another library's error message on one line (some span lines: serde's, image's).
pub fn flat(e: impl std::fmt::Display) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
