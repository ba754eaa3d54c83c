//! ONNX file -> [`Graph`]: decoding, constant folding, shape inference and the fusions a
//! quantizer needs to see real layers (BatchNormalization and bias Adds folded into the
//! preceding Conv/Gemm/MatMul).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use prost::Message;

use super::consts::{self, CVal};
use super::ir::*;
use super::onnx_proto::*;
use super::shape;
use crate::error::{Error, Result};

#[path = "onnx_ops.rs"]
mod ops;
#[path = "onnx_select.rs"]
mod select;

/// Lowest and highest default-domain opset accepted.
pub const OPSET_MIN: i64 = 8;
pub const OPSET_MAX: i64 = 21;

/// Options for [`load_onnx`].
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Full input shape at batch 1 (e.g. `[1, 3, 224, 224]`), overriding the file's.
    pub input_shape: Option<Vec<usize>>,
    /// A symbolic input dimension other than the batch takes this value instead of being an
    /// error: for work that reads the weights only (`quantize`), where the shapes then
    /// describe a stand-in input.
    pub symbolic_size: Option<usize>,
}

/// Load an ONNX file.
pub fn load_onnx(path: &Path, opts: &LoadOptions) -> Result<Graph> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_onnx_bytes(&bytes, &path.display().to_string(), opts)
}

/// Load an ONNX model from memory; `label` names it in errors.
pub fn load_onnx_bytes(bytes: &[u8], label: &str, opts: &LoadOptions) -> Result<Graph> {
    let decode_err = |reason: String| Error::OnnxDecode {
        path: label.to_string(),
        reason,
    };
    if bytes.is_empty() {
        return Err(decode_err("the file is empty".into()));
    }
    let model = ModelProto::decode(bytes)
        .map_err(|e| decode_err(format!("truncated or corrupt protobuf ({e})")))?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| decode_err("the model has no graph".into()))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .and_then(|o| o.version)
        .ok_or_else(|| decode_err("no default-domain opset_import".into()))?;
    if !(OPSET_MIN..=OPSET_MAX).contains(&opset) {
        return Err(Error::InvalidModel(format!(
            "opset {opset} is outside the supported range {OPSET_MIN}..={OPSET_MAX}"
        )));
    }
    let g = Loader::new(graph, opset, opts)?.run(graph)?;
    g.check_finite()?;
    Ok(g)
}

/// Read one `TensorProto` file (the `.pb` files of ONNX test vectors) as FP32.
pub fn read_tensor_pb(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let err = |reason: String| Error::Data {
        path: path.display().to_string(),
        reason,
    };
    let t = TensorProto::decode(bytes.as_slice())
        .map_err(|e| err(format!("not a TensorProto ({e})")))?;
    let v = consts::from_proto(&t).map_err(err)?;
    Ok(Tensor::new(v.shape().to_vec(), v.to_f32()))
}

struct Attrs<'a> {
    node: &'a str,
    op: &'a str,
    list: &'a [AttributeProto],
}

impl<'a> Attrs<'a> {
    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.list.iter().find(|a| a.name.as_deref() == Some(name))
    }
    fn err(&self, reason: String) -> Error {
        Error::node(self.node, self.op, reason)
    }
    fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).and_then(|a| a.i).unwrap_or(default)
    }
    fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).and_then(|a| a.f).unwrap_or(default)
    }
    fn ints(&self, name: &str) -> Option<&'a [i64]> {
        self.get(name).map(|a| a.ints.as_slice())
    }
    fn string(&self, name: &str) -> Option<String> {
        self.get(name)
            .and_then(|a| a.s.as_ref())
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }
    /// A list of non-negative ints of exactly `n` entries, or `default`.
    fn usizes(&self, name: &str, n: usize, default: usize) -> Result<Vec<usize>> {
        match self.ints(name) {
            None => Ok(vec![default; n]),
            Some(v) if v.len() != n => Err(self.err(format!(
                "attribute {name} has {} entries, {n} expected",
                v.len()
            ))),
            Some(v) => v
                .iter()
                .map(|&x| {
                    usize::try_from(x)
                        .map_err(|_| self.err(format!("attribute {name} has negative entry {x}")))
                })
                .collect(),
        }
    }
}

struct Loader {
    opset: i64,
    consts: HashMap<String, CVal>,
    shapes: BTreeMap<String, Vec<usize>>,
    nodes: Vec<Node>,
    /// value name -> index of the IR node producing it
    producer: HashMap<String, usize>,
    /// number of consumers of every value name (node inputs + graph outputs)
    uses: HashMap<String, usize>,
    graph_outputs: HashSet<String>,
    input: String,
    input_shape: Vec<usize>,
}

/// Every operator the loader knows (some only when their inputs are constants).
const KNOWN_OPS: &[&str] = &[
    "Conv",
    "ConvTranspose",
    "Gemm",
    "MatMul",
    "BatchNormalization",
    "Relu",
    "Clip",
    "HardSigmoid",
    "HardSwish",
    "Sigmoid",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Sum",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Flatten",
    "Reshape",
    "Transpose",
    "Concat",
    "Softmax",
    "Identity",
    "Dropout",
    "Constant",
    "Pad",
    "ReduceMean",
    "Cast",
    "Slice",
    "Split",
    "Resize",
    "Upsample",
    "LRN",
    "Shape",
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "ConstantOfShape",
    "Range",
    "Expand",
];

/// An unsupported-operator error also names every other operator of the graph the loader
/// does not know, with its node count, so that one run lists them all.
fn with_other_unsupported(e: Error, g: &GraphProto) -> Error {
    let Error::UnsupportedOp { node, op, detail } = e else {
        return e;
    };
    let mut others: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &g.node {
        let t = n.op_type.as_deref().unwrap_or("");
        let foreign = !matches!(n.domain.as_deref(), None | Some("") | Some("ai.onnx"));
        let same = t == op || op.ends_with(&format!("::{t}"));
        if !same && (foreign || !KNOWN_OPS.contains(&t)) {
            *others.entry(t).or_default() += 1;
        }
    }
    if others.is_empty() {
        return Error::UnsupportedOp { node, op, detail };
    }
    let list: Vec<String> = others
        .iter()
        .map(|(t, n)| format!("{t} ({n} node{})", if *n == 1 { "" } else { "s" }))
        .collect();
    Error::UnsupportedOp {
        node,
        op,
        detail: format!("{detail}; the model also uses {}", list.join(", ")),
    }
}

fn to_usize_shape(dims: &[i64], what: &str) -> std::result::Result<Vec<usize>, String> {
    dims.iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("{what} has negative dimension {d}")))
        .collect()
}

impl Loader {
    fn new(g: &GraphProto, opset: i64, opts: &LoadOptions) -> Result<Self> {
        let mut consts = HashMap::new();
        for t in &g.initializer {
            let name = t.name.clone().unwrap_or_default();
            let v = consts::from_proto(t)
                .map_err(|r| Error::InvalidModel(format!("initializer '{name}': {r}")))?;
            consts.insert(name, v);
        }
        let inputs: Vec<&ValueInfoProto> = g
            .input
            .iter()
            .filter(|i| !consts.contains_key(i.name.as_deref().unwrap_or_default()))
            .collect();
        let inp = match inputs.as_slice() {
            [one] => *one,
            [] => {
                return Err(Error::InvalidModel(
                    "the graph has no (non-constant) input".into(),
                ));
            }
            many => {
                let names: Vec<&str> = many
                    .iter()
                    .map(|i| i.name.as_deref().unwrap_or("?"))
                    .collect();
                return Err(Error::InvalidModel(format!(
                    "the graph has {} inputs ({}); only single-input models are supported",
                    names.len(),
                    names.join(", ")
                )));
            }
        };
        let input = inp.name.clone().unwrap_or_default();
        let tt = inp.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
        if let Some(et) = tt.and_then(|t| t.elem_type)
            && et != dtype::FLOAT
        {
            return Err(Error::InvalidModel(format!(
                "input '{input}' has element type {et}; only FP32 inputs are supported"
            )));
        }
        let input_shape = match &opts.input_shape {
            Some(s) => s.clone(),
            None => {
                let dims = tt
                    .and_then(|t| t.shape.as_ref())
                    .map(|s| s.dim.as_slice())
                    .unwrap_or(&[]);
                if dims.is_empty() {
                    return Err(Error::InvalidModel(format!(
                        "input '{input}' has no shape; pass --input-shape"
                    )));
                }
                let mut s = Vec::new();
                for (k, d) in dims.iter().enumerate() {
                    match d.dim_value {
                        Some(v) if v > 0 => s.push(v as usize),
                        _ if k == 0 => s.push(1),
                        _ if opts.symbolic_size.is_some() => s.extend(opts.symbolic_size),
                        _ => {
                            return Err(Error::InvalidModel(format!(
                                "input '{input}' dimension {k} is symbolic; pass --input-shape"
                            )));
                        }
                    }
                }
                s
            }
        };
        if input_shape.contains(&0) || consts::numel_checked(&input_shape).is_err() {
            return Err(Error::InvalidModel(format!(
                "input shape {input_shape:?} is empty or too large"
            )));
        }
        let mut uses: HashMap<String, usize> = HashMap::new();
        for n in &g.node {
            for i in &n.input {
                *uses.entry(i.clone()).or_default() += 1;
            }
        }
        let mut graph_outputs = HashSet::new();
        for o in &g.output {
            let name = o.name.clone().unwrap_or_default();
            *uses.entry(name.clone()).or_default() += 1;
            graph_outputs.insert(name);
        }
        let mut shapes = BTreeMap::new();
        shapes.insert(input.clone(), input_shape.clone());
        Ok(Loader {
            opset,
            consts,
            shapes,
            nodes: Vec::new(),
            producer: HashMap::new(),
            uses,
            graph_outputs,
            input,
            input_shape,
        })
    }

    fn run(mut self, g: &GraphProto) -> Result<Graph> {
        for (idx, n) in g.node.iter().enumerate() {
            self.node(idx, n)
                .map_err(|e| with_other_unsupported(e, g))?;
        }
        let mut outputs = Vec::new();
        for o in &g.output {
            let name = o.name.clone().unwrap_or_default();
            if !self.shapes.contains_key(&name) {
                return Err(Error::InvalidModel(format!(
                    "graph output '{name}' is not computed from the input"
                )));
            }
            outputs.push(name);
        }
        if outputs.is_empty() {
            return Err(Error::InvalidModel("the graph has no outputs".into()));
        }
        Ok(Graph {
            name: g.name.clone().unwrap_or_default(),
            opset: self.opset,
            input: self.input,
            input_shape: self.input_shape,
            outputs,
            nodes: self.nodes,
            shapes: self.shapes,
        })
    }

    fn is_const(&self, name: &str) -> bool {
        self.consts.contains_key(name)
    }

    fn push(&mut self, name: &str, op: Op, inputs: Vec<String>, output: &str, shape: Vec<usize>) {
        self.producer.insert(output.to_string(), self.nodes.len());
        self.shapes.insert(output.to_string(), shape);
        self.nodes.push(Node {
            name: name.to_string(),
            op,
            inputs,
            output: output.to_string(),
        });
    }

    /// If `value` is produced by a Conv/Dense node whose output has no other consumer,
    /// return that node's index (so a following per-channel op can be folded into it).
    fn foldable_producer(&self, value: &str) -> Option<usize> {
        let &i = self.producer.get(value)?;
        let single =
            self.uses.get(value).copied().unwrap_or(0) == 1 && !self.graph_outputs.contains(value);
        (single && matches!(self.nodes[i].op, Op::Conv(_) | Op::Dense(_))).then_some(i)
    }

    /// Rename the output of node `i` to `new` (after folding the consumer into it).
    fn retarget(&mut self, i: usize, new: &str) {
        let old = std::mem::replace(&mut self.nodes[i].output, new.to_string());
        let s = self.shapes.remove(&old).unwrap_or_default();
        self.producer.remove(&old);
        self.shapes.insert(new.to_string(), s);
        self.producer.insert(new.to_string(), i);
    }

    fn node(&mut self, idx: usize, n: &NodeProto) -> Result<()> {
        let op = n.op_type.clone().unwrap_or_default();
        let out0 = n.output.first().cloned().unwrap_or_default();
        let name = match n.name.as_deref() {
            Some(s) if !s.is_empty() => s.to_string(),
            _ if !out0.is_empty() => out0.clone(),
            _ => format!("#{idx}"),
        };
        let nerr = |reason: String| Error::node(&name, &op, reason);
        match n.domain.as_deref() {
            None | Some("") | Some("ai.onnx") => {}
            Some(d) => {
                return Err(Error::UnsupportedOp {
                    node: name.clone(),
                    op: format!("{d}::{op}"),
                    detail: " (custom domain)".into(),
                });
            }
        }
        if out0.is_empty() {
            return Err(nerr("node has no output".into()));
        }
        let attrs = Attrs {
            node: &name,
            op: &op,
            list: &n.attribute,
        };
        // Optional inputs are given as "".
        let ins: Vec<&str> = n.input.iter().map(|s| s.as_str()).collect();
        for i in ins.iter().filter(|s| !s.is_empty()) {
            if !self.is_const(i) && !self.shapes.contains_key(*i) {
                return Err(nerr(format!(
                    "input '{i}' is not produced by any earlier node"
                )));
            }
        }
        if op == "Split" {
            let attrs = Attrs {
                node: &name,
                op: &op,
                list: &n.attribute,
            };
            return self.split(&name, &ins, &n.output, &attrs);
        }
        // Extra outputs (Dropout mask, MaxPool indices, BN training stats) must be unused.
        for extra in n.output.iter().skip(1) {
            if !extra.is_empty() && self.uses.get(extra).copied().unwrap_or(0) > 0 {
                return Err(nerr(format!(
                    "its extra output '{extra}' is used; only the first output is supported"
                )));
            }
        }

        if op == "Constant" {
            let v = self.constant_node(&attrs)?;
            self.consts.insert(out0, v);
            return Ok(());
        }
        let all_const = ins
            .iter()
            .filter(|s| !s.is_empty())
            .all(|i| self.is_const(i));
        if all_const && (!ins.is_empty() || op == "ConstantOfShape") {
            if let Some(v) = self.fold(&op, &ins, &attrs)? {
                consts::numel_checked(v.shape()).map_err(&nerr)?;
                self.consts.insert(out0, v);
                return Ok(());
            }
        }
        if op == "Shape" {
            let s = self.shapes[ins[0]]
                .iter()
                .map(|&d| d as i64)
                .collect::<Vec<_>>();
            self.consts.insert(out0, CVal::I(vec![s.len()], s));
            return Ok(());
        }
        self.dynamic(&name, &op, &ins, &out0, &attrs)
    }

    fn constant_node(&self, a: &Attrs) -> Result<CVal> {
        if let Some(t) = a.get("value").and_then(|x| x.t.as_ref()) {
            return consts::from_proto(t).map_err(|r| a.err(r));
        }
        if let Some(x) = a.get("value_float").and_then(|x| x.f) {
            return Ok(CVal::F(vec![], vec![x]));
        }
        if let Some(x) = a.get("value_floats") {
            return Ok(CVal::F(vec![x.floats.len()], x.floats.clone()));
        }
        if let Some(x) = a.get("value_int").and_then(|x| x.i) {
            return Ok(CVal::I(vec![], vec![x]));
        }
        if let Some(x) = a.get("value_ints") {
            return Ok(CVal::I(vec![x.ints.len()], x.ints.clone()));
        }
        Err(a.err("Constant without a supported value attribute".into()))
    }

    /// Evaluate a node whose inputs are all constants. `None`: not foldable here.
    fn fold(&self, op: &str, ins: &[&str], a: &Attrs) -> Result<Option<CVal>> {
        let c = |k: usize| -> Result<&CVal> {
            ins.get(k)
                .filter(|s| !s.is_empty())
                .and_then(|s| self.consts.get(*s))
                .ok_or_else(|| a.err(format!("missing input {k}")))
        };
        let e = |r: String| a.err(r);
        let v = match op {
            "Identity" | "Dropout" => c(0)?.clone(),
            "Add" | "Sub" | "Mul" | "Div" => consts::binary(c(0)?, c(1)?, op).map_err(e)?,
            "Reshape" => {
                let x = c(0)?;
                let spec = self.reshape_spec(ins, a)?;
                let s = shape::reshape(x.shape(), &spec, a.int("allowzero", 0) != 0).map_err(e)?;
                x.with_shape(s)
            }
            "Flatten" => {
                let x = c(0)?;
                let s = flatten_shape(x.shape(), a.int("axis", 1)).map_err(e)?;
                x.with_shape(s)
            }
            "Transpose" => {
                let x = c(0)?;
                let perm = perm_of(a, x.shape().len())?;
                consts::transpose_c(x, &perm)
            }
            "Unsqueeze" | "Squeeze" => {
                let x = c(0)?;
                let axes: Option<Vec<i64>> = if self.opset >= 13 {
                    ins.get(1)
                        .filter(|s| !s.is_empty())
                        .map(|_| c(1).map(|v| v.to_i64()))
                        .transpose()?
                } else {
                    a.ints("axes").map(|v| v.to_vec())
                };
                let s = if op == "Unsqueeze" {
                    unsqueeze_shape(x.shape(), axes.as_deref().unwrap_or(&[])).map_err(e)?
                } else {
                    squeeze_shape(x.shape(), axes.as_deref()).map_err(e)?
                };
                x.with_shape(s)
            }
            "Concat" => {
                let vals: Vec<&CVal> = (0..ins.len()).map(c).collect::<Result<_>>()?;
                let shapes: Vec<&[usize]> = vals.iter().map(|v| v.shape()).collect();
                let (ax, out) = concat_shape(&shapes, a.int("axis", 0)).map_err(e)?;
                consts::numel_checked(&out).map_err(e)?;
                consts::concat(&vals, ax, out)
            }
            "Gather" => {
                let x = c(0)?;
                if x.shape().is_empty() {
                    return Err(a.err("Gather on a scalar".into()));
                }
                let ax = shape::axis(a.int("axis", 0), x.shape().len(), false).map_err(e)?;
                consts::gather(x, c(1)?, ax).map_err(e)?
            }
            "Cast" => {
                let x = c(0)?;
                match a.int("to", 1) as i32 {
                    dtype::FLOAT | dtype::DOUBLE | 10 | 16 => {
                        CVal::F(x.shape().to_vec(), x.to_f32())
                    }
                    dtype::BOOL => CVal::I(
                        x.shape().to_vec(),
                        x.to_f32().iter().map(|&v| (v != 0.0) as i64).collect(),
                    ),
                    _ => CVal::I(x.shape().to_vec(), x.to_i64()),
                }
            }
            "Shape" => {
                let s: Vec<i64> = c(0)?.shape().iter().map(|&d| d as i64).collect();
                CVal::I(vec![s.len()], s)
            }
            "Slice" => {
                let x = c(0)?;
                let (starts, ends, axes, steps) = self.slice_params(ins, a)?;
                let ranges =
                    select::slice_axes(x.shape(), &starts, &ends, axes, steps).map_err(e)?;
                let out_shape: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
                consts::numel_checked(&out_shape).map_err(e)?;
                let wrapped: Vec<Vec<Option<usize>>> = ranges
                    .into_iter()
                    .map(|v| v.into_iter().map(Some).collect())
                    .collect();
                let pos = select::gather_index(x.shape(), &wrapped).map_err(e)?;
                match x {
                    CVal::F(_, d) => {
                        CVal::F(out_shape, pos.iter().map(|&p| d[p as usize]).collect())
                    }
                    CVal::I(_, d) => {
                        CVal::I(out_shape, pos.iter().map(|&p| d[p as usize]).collect())
                    }
                }
            }
            "Expand" => {
                // numpy broadcasting of x to the shape: x * ones(shape)
                let dims = to_usize_shape(&c(1)?.to_i64(), "Expand shape").map_err(e)?;
                let n = consts::numel_checked(&dims).map_err(e)?;
                let ones = match c(0)? {
                    CVal::I(..) => CVal::I(dims, vec![1; n]),
                    CVal::F(..) => CVal::F(dims, vec![1.0; n]),
                };
                consts::binary(c(0)?, &ones, "Mul").map_err(e)?
            }
            "Range" => consts::range(c(0)?, c(1)?, c(2)?).map_err(e)?,
            "ConstantOfShape" => {
                let dims = to_usize_shape(&c(0)?.to_i64(), "ConstantOfShape target").map_err(e)?;
                let n = consts::numel_checked(&dims).map_err(e)?;
                match a.get("value").and_then(|x| x.t.as_ref()) {
                    Some(t) => {
                        let v = consts::from_proto(t).map_err(e)?;
                        if v.numel() != 1 {
                            return Err(a.err("ConstantOfShape value must have one element".into()));
                        }
                        match v {
                            CVal::F(_, d) => CVal::F(dims, vec![d[0]; n]),
                            CVal::I(_, d) => CVal::I(dims, vec![d[0]; n]),
                        }
                    }
                    None => CVal::F(dims, vec![0.0; n]),
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(v))
    }

    fn reshape_spec(&self, ins: &[&str], a: &Attrs) -> Result<Vec<i64>> {
        if self.opset < 5 {
            return a
                .ints("shape")
                .map(|s| s.to_vec())
                .ok_or_else(|| a.err("missing shape".into()));
        }
        let s = ins.get(1).copied().unwrap_or("");
        match self.consts.get(s) {
            Some(v) => Ok(v.to_i64()),
            None => Err(a.err(
                "the target shape must be a constant (dynamic reshape is not supported)".into(),
            )),
        }
    }

    fn cf(&self, ins: &[&str], k: usize) -> Option<&CVal> {
        ins.get(k)
            .filter(|s| !s.is_empty())
            .and_then(|s| self.consts.get(*s))
    }

    /// The single dynamic input at position `k`.
    fn dyn_in(&self, ins: &[&str], k: usize, a: &Attrs) -> Result<(String, Vec<usize>)> {
        let s = ins.get(k).copied().unwrap_or("");
        if s.is_empty() {
            return Err(a.err(format!("missing input {k}")));
        }
        match self.shapes.get(s) {
            Some(sh) => Ok((s.to_string(), sh.clone())),
            None => Err(a.err(format!(
                "input '{s}' must be computed from the graph input, not a constant"
            ))),
        }
    }

    fn dynamic(&mut self, name: &str, op: &str, ins: &[&str], out: &str, a: &Attrs) -> Result<()> {
        let e = |r: String| Error::node(name, op, r);
        match op {
            "Conv" => self.conv(name, ins, out, a),
            "Gemm" => self.gemm(name, ins, out, a),
            "MatMul" => self.matmul(name, op, ins, out, a),
            "BatchNormalization" => self.batchnorm(name, ins, out, a),
            "Relu" | "Sigmoid" | "HardSwish" | "Identity" | "Dropout" => {
                let (x, xs) = self.dyn_in(ins, 0, a)?;
                let o = match op {
                    "Relu" => Op::Relu,
                    "Sigmoid" => Op::Sigmoid,
                    "HardSwish" => Op::HardSwish,
                    _ => Op::Identity,
                };
                self.push(name, o, vec![x], out, xs);
                Ok(())
            }
            "HardSigmoid" => {
                let (x, xs) = self.dyn_in(ins, 0, a)?;
                let o = Op::HardSigmoid {
                    alpha: a.float("alpha", 0.2),
                    beta: a.float("beta", 0.5),
                };
                self.push(name, o, vec![x], out, xs);
                Ok(())
            }
            "Clip" => self.clip(name, op, ins, out, a),
            "Add" | "Sub" | "Mul" | "Div" => self.binary(name, op, ins, out, a),
            "Sum" => self.sum(name, op, ins, out, a),
            "MaxPool" | "AveragePool" => self.pool(name, op, ins, out, a),
            "GlobalAveragePool" => {
                let (x, xs) = self.dyn_in(ins, 0, a)?;
                if xs.len() != 4 {
                    return Err(e(format!("expects NCHW input, got {xs:?}")));
                }
                self.push(
                    name,
                    Op::GlobalAveragePool,
                    vec![x],
                    out,
                    vec![xs[0], xs[1], 1, 1],
                );
                Ok(())
            }
            "Flatten" => {
                let (x, xs) = self.dyn_in(ins, 0, a)?;
                let s = flatten_shape(&xs, a.int("axis", 1)).map_err(e)?;
                let axis = shape::axis(a.int("axis", 1), xs.len(), true).map_err(e)?;
                self.push(name, Op::Flatten { axis }, vec![x], out, s);
                Ok(())
            }
            "Reshape" => {
                let (x, xs) = self.dyn_in(ins, 0, a)?;
                let spec = self.reshape_spec(ins, a)?;
                let s = shape::reshape(&xs, &spec, a.int("allowzero", 0) != 0).map_err(e)?;
                self.push(name, Op::Reshape { shape: s.clone() }, vec![x], out, s);
                Ok(())
            }
            "Transpose" => {
                let (x, xs) = self.dyn_in(ins, 0, a)?;
                let perm = perm_of(a, xs.len())?;
                let s = perm.iter().map(|&p| xs[p]).collect();
                self.push(name, Op::Transpose { perm }, vec![x], out, s);
                Ok(())
            }
            "Concat" => {
                let mut names = Vec::new();
                let mut shapes = Vec::new();
                for k in 0..ins.len() {
                    let (x, xs) = self.dyn_in(ins, k, a)?;
                    names.push(x);
                    shapes.push(xs);
                }
                let refs: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
                let (axis, s) = concat_shape(&refs, a.int("axis", 0)).map_err(e)?;
                self.push(name, Op::Concat { axis }, names, out, s);
                Ok(())
            }
            "Softmax" => {
                let (x, xs) = self.dyn_in(ins, 0, a)?;
                let default = if self.opset < 13 { 1 } else { -1 };
                let axis = shape::axis(a.int("axis", default), xs.len(), false).map_err(e)?;
                if self.opset < 13 && xs[axis + 1..].iter().any(|&d| d != 1) {
                    return Err(Error::UnsupportedOp {
                        node: name.into(),
                        op: op.into(),
                        detail: " with opset < 13 coercion over several axes".into(),
                    });
                }
                self.push(name, Op::Softmax { axis }, vec![x], out, xs);
                Ok(())
            }
            "Cast" if a.int("to", 0) as i32 == dtype::FLOAT => {
                let (x, xs) = self.dyn_in(ins, 0, a)?;
                self.push(name, Op::Identity, vec![x], out, xs);
                Ok(())
            }
            "Pad" => self.pad(name, op, ins, out, a),
            "ReduceMean" => self.reduce_mean(name, op, ins, out, a),
            "Slice" => self.slice(name, ins, out, a),
            "Resize" | "Upsample" => self.resize(name, op, ins, out, a),
            "ConvTranspose" => self.conv_transpose(name, ins, out, a),
            "LRN" => self.lrn(name, ins, out, a),
            "Unsqueeze" | "Squeeze" | "Gather" | "Cast" | "ConstantOfShape" => {
                Err(Error::UnsupportedOp {
                    node: name.into(),
                    op: op.into(),
                    detail: " on a non-constant input (only constant folding is supported)".into(),
                })
            }
            _ => Err(Error::UnsupportedOp {
                node: name.into(),
                op: op.into(),
                detail: String::new(),
            }),
        }
    }

    fn conv(&mut self, name: &str, ins: &[&str], out: &str, a: &Attrs) -> Result<()> {
        let e = |r: String| Error::node(name, "Conv", r);
        let (x, xs) = self.dyn_in(ins, 0, a)?;
        let w = self
            .cf(ins, 1)
            .ok_or_else(|| e("weights must be a constant".into()))?
            .clone();
        let ws = w.shape().to_vec();
        if xs.len() != 4 || ws.len() != 4 {
            return Err(e(format!(
                "only 2-D convolution over NCHW is supported (input {xs:?}, weight {ws:?})"
            )));
        }
        let group = usize::try_from(a.int("group", 1))
            .ok()
            .filter(|&g| g > 0)
            .ok_or_else(|| e("group must be positive".into()))?;
        let (oc, icg) = (ws[0], ws[1]);
        if icg.checked_mul(group) != Some(xs[1]) || oc % group != 0 || oc == 0 {
            return Err(e(format!(
                "input has {} channels but weight {ws:?} with group {group} expects {}",
                xs[1],
                icg.saturating_mul(group)
            )));
        }
        if let Some(k) = a.ints("kernel_shape")
            && (k.len() != 2 || k[0] != ws[2] as i64 || k[1] != ws[3] as i64)
        {
            return Err(e(format!(
                "kernel_shape {k:?} disagrees with weight {ws:?}"
            )));
        }
        let strides = a.usizes("strides", 2, 1)?;
        let dil = a.usizes("dilations", 2, 1)?;
        let mut pads = a.usizes("pads", 4, 0)?;
        resolve_auto_pad(a, &xs[2..], &ws[2..], &strides, &dil, &mut pads)?;
        let mut os = vec![xs[0], oc, 0, 0];
        for d in 0..2 {
            os[2 + d] = shape::window_out(
                xs[2 + d],
                ws[2 + d],
                strides[d],
                dil[d],
                pads[d],
                pads[d + 2],
            )
            .map_err(e)?;
        }
        let bias = self.conv_bias(ins, oc).map_err(e)?;
        let c = Conv {
            weight: Tensor::new(ws, w.to_f32()),
            bias,
            strides: [strides[0], strides[1]],
            dilations: [dil[0], dil[1]],
            pads: [pads[0], pads[1], pads[2], pads[3]],
            group,
        };
        self.push(name, Op::Conv(c), vec![x], out, os);
        Ok(())
    }

    /// The optional bias (input 2) of a Conv or ConvTranspose with `oc` output channels.
    fn conv_bias(&self, ins: &[&str], oc: usize) -> std::result::Result<Vec<f32>, String> {
        match self.cf(ins, 2) {
            Some(b) if b.numel() == oc => Ok(b.to_f32()),
            Some(b) => Err(format!(
                "bias has {} values for {oc} output channels",
                b.numel()
            )),
            None => Ok(vec![0.0; oc]),
        }
    }

    fn gemm(&mut self, name: &str, ins: &[&str], out: &str, a: &Attrs) -> Result<()> {
        let e = |r: String| Error::node(name, "Gemm", r);
        let (x, xs) = self.dyn_in(ins, 0, a)?;
        if a.int("transA", 0) != 0 {
            return Err(Error::UnsupportedOp {
                node: name.into(),
                op: "Gemm".into(),
                detail: " with transA=1".into(),
            });
        }
        let w = self
            .cf(ins, 1)
            .ok_or_else(|| e("B must be a constant weight".into()))?;
        if xs.len() != 2 || w.shape().len() != 2 {
            return Err(e(format!(
                "expects 2-D operands, got {xs:?} and {:?}",
                w.shape()
            )));
        }
        let alpha = a.float("alpha", 1.0);
        let beta = a.float("beta", 1.0);
        let (oc, ic, wt) = if a.int("transB", 0) != 0 {
            (w.shape()[0], w.shape()[1], w.to_f32())
        } else {
            let (k, n) = (w.shape()[0], w.shape()[1]);
            (n, k, consts::transpose(&w.to_f32(), &[k, n], &[1, 0]))
        };
        if xs[1] != ic {
            return Err(e(format!(
                "activation {xs:?} does not fit weight {:?}",
                w.shape()
            )));
        }
        let bias = match self.cf(ins, 2) {
            None => vec![0.0; oc],
            Some(c) => {
                let s = c.shape();
                if shape::broadcast(s, &[1, oc]).ok().as_deref() != Some(&[1, oc][..]) {
                    return Err(Error::UnsupportedOp {
                        node: name.into(),
                        op: "Gemm".into(),
                        detail: format!(" with bias C of shape {s:?} (per-row bias)"),
                    });
                }
                consts::broadcast_to(&c.to_f32(), s, &[oc])
                    .iter()
                    .map(|v| v * beta)
                    .collect()
            }
        };
        let d = Dense {
            weight: Tensor::new(vec![oc, ic], wt.iter().map(|v| v * alpha).collect()),
            bias,
        };
        self.push(name, Op::Dense(d), vec![x], out, vec![xs[0], oc]);
        Ok(())
    }

    fn batchnorm(&mut self, name: &str, ins: &[&str], out: &str, a: &Attrs) -> Result<()> {
        let e = |r: String| Error::node(name, "BatchNormalization", r);
        let (x, xs) = self.dyn_in(ins, 0, a)?;
        if xs.len() < 2 {
            return Err(e(format!("input {xs:?} has no channel axis")));
        }
        let c = xs[1];
        let mut p = Vec::new();
        for k in 1..5 {
            let v = self
                .cf(ins, k)
                .ok_or_else(|| e(format!("parameter input {k} must be a constant")))?;
            if v.numel() != c {
                return Err(e(format!(
                    "parameter input {k} has {} values for {c} channels",
                    v.numel()
                )));
            }
            p.push(v.to_f32());
        }
        let eps = a.float("epsilon", 1e-5);
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(e(format!(
                "epsilon {eps} is not a finite non-negative number"
            )));
        }
        if let Some(i) = (0..c).find(|&i| !(p[3][i] + eps > 0.0)) {
            return Err(e(format!(
                "variance + epsilon of channel {i} is {} (must be > 0)",
                p[3][i] + eps
            )));
        }
        let scale: Vec<f32> = (0..c).map(|i| p[0][i] / (p[3][i] + eps).sqrt()).collect();
        let shift: Vec<f32> = (0..c).map(|i| p[1][i] - p[2][i] * scale[i]).collect();
        if let Some(i) = self.foldable_producer(&x) {
            match &mut self.nodes[i].op {
                Op::Conv(cv) => {
                    let per = cv.weight.numel() / cv.out_channels();
                    for (o, chunk) in cv.weight.data.chunks_mut(per).enumerate() {
                        chunk.iter_mut().for_each(|w| *w *= scale[o]);
                        cv.bias[o] = cv.bias[o] * scale[o] + shift[o];
                    }
                }
                Op::Dense(d) if xs.len() == 2 => {
                    let per = d.weight.shape[1];
                    for (o, chunk) in d.weight.data.chunks_mut(per).enumerate() {
                        chunk.iter_mut().for_each(|w| *w *= scale[o]);
                        d.bias[o] = d.bias[o] * scale[o] + shift[o];
                    }
                }
                _ => {
                    self.push(name, Op::Affine { scale, shift }, vec![x], out, xs);
                    return Ok(());
                }
            }
            self.retarget(i, out);
            return Ok(());
        }
        self.push(name, Op::Affine { scale, shift }, vec![x], out, xs);
        Ok(())
    }

    fn binary(&mut self, name: &str, op: &str, ins: &[&str], out: &str, a: &Attrs) -> Result<()> {
        let e = |r: String| Error::node(name, op, r);
        if ins.len() != 2 {
            return Err(e(format!("expects 2 inputs, got {}", ins.len())));
        }
        let c0 = self.cf(ins, 0).cloned();
        let c1 = self.cf(ins, 1).cloned();
        match (c0, c1) {
            (None, None) => {
                let (x, xs) = self.dyn_in(ins, 0, a)?;
                let (y, ys) = self.dyn_in(ins, 1, a)?;
                let s = shape::broadcast(&xs, &ys).map_err(e)?;
                let o = match op {
                    "Add" => Op::Add { constant: None },
                    "Mul" => Op::Mul { constant: None },
                    _ => {
                        return Err(Error::UnsupportedOp {
                            node: name.into(),
                            op: op.into(),
                            detail: " of two activations".into(),
                        });
                    }
                };
                self.push(name, o, vec![x, y], out, s);
                Ok(())
            }
            (c0, c1) => {
                let (dyn_k, cv) = match (c0, c1) {
                    (None, Some(c)) => (0, c),
                    (Some(c), None) if op == "Add" || op == "Mul" => (1, c),
                    _ => {
                        return Err(Error::UnsupportedOp {
                            node: name.into(),
                            op: op.into(),
                            detail: " with a constant first operand".into(),
                        });
                    }
                };
                let (x, xs) = self.dyn_in(ins, dyn_k, a)?;
                let s = shape::broadcast(&xs, cv.shape()).map_err(e)?;
                let data = cv.to_f32();
                // Sub / Div by a constant become Add / Mul.
                let (is_add, data) = match op {
                    "Add" => (true, data),
                    "Sub" => (true, data.iter().map(|v| -v).collect()),
                    "Mul" => (false, data),
                    _ => (false, data.iter().map(|v| 1.0 / v).collect()),
                };
                let t = Tensor::new(cv.shape().to_vec(), data);
                if is_add && s == xs && self.try_fold_bias(&x, &t, out) {
                    return Ok(());
                }
                let o = if is_add {
                    Op::Add { constant: Some(t) }
                } else {
                    Op::Mul { constant: Some(t) }
                };
                self.push(name, o, vec![x], out, s);
                Ok(())
            }
        }
    }

    /// Fold `x + t` into the bias of the Conv/Dense producing `x` when `t` is per-channel.
    fn try_fold_bias(&mut self, x: &str, t: &Tensor, out: &str) -> bool {
        let Some(i) = self.foldable_producer(x) else {
            return false;
        };
        let xs = self.shapes[x].clone();
        let ch_axis = match self.nodes[i].op {
            Op::Conv(_) => 1,
            _ => xs.len() - 1,
        };
        let r = xs.len();
        if t.shape.len() > r {
            return false;
        }
        let pad = r - t.shape.len();
        let per_channel = (0..r).all(|k| {
            let d = if k >= pad { t.shape[k - pad] } else { 1 };
            d == 1 || (k == ch_axis && d == xs[k])
        });
        if !per_channel {
            return false;
        }
        let nch = xs[ch_axis];
        let vals: Vec<f32> = if t.numel() == 1 {
            vec![t.data[0]; nch]
        } else {
            t.data.clone()
        };
        match &mut self.nodes[i].op {
            Op::Conv(c) => c.bias.iter_mut().zip(&vals).for_each(|(b, v)| *b += v),
            Op::Dense(d) => d.bias.iter_mut().zip(&vals).for_each(|(b, v)| *b += v),
            _ => return false,
        }
        self.retarget(i, out);
        true
    }
}

fn resolve_auto_pad(
    a: &Attrs,
    spatial: &[usize],
    kernel: &[usize],
    strides: &[usize],
    dil: &[usize],
    pads: &mut [usize],
) -> Result<()> {
    match a.string("auto_pad").as_deref() {
        None | Some("NOTSET") | Some("") => Ok(()),
        Some("VALID") => {
            pads.iter_mut().for_each(|p| *p = 0);
            Ok(())
        }
        Some(m @ ("SAME_UPPER" | "SAME_LOWER")) => {
            for d in 0..2 {
                if strides[d] == 0 {
                    return Err(a.err("stride must be positive".into()));
                }
                let (b, e) =
                    shape::same_pads(spatial[d], kernel[d], strides[d], dil[d], m == "SAME_UPPER");
                pads[d] = b;
                pads[d + 2] = e;
            }
            Ok(())
        }
        Some(other) => Err(a.err(format!("unknown auto_pad '{other}'"))),
    }
}

fn perm_of(a: &Attrs, rank: usize) -> Result<Vec<usize>> {
    let perm: Vec<usize> = match a.ints("perm") {
        None => (0..rank).rev().collect(),
        Some(p) => p
            .iter()
            .map(|&v| usize::try_from(v).unwrap_or(usize::MAX))
            .collect(),
    };
    let mut seen = perm.clone();
    seen.sort_unstable();
    if seen != (0..rank).collect::<Vec<_>>() {
        return Err(a.err(format!("perm {perm:?} is not a permutation of 0..{rank}")));
    }
    Ok(perm)
}

fn flatten_shape(s: &[usize], axis: i64) -> std::result::Result<Vec<usize>, String> {
    let ax = shape::axis(axis, s.len(), true)?;
    Ok(vec![s[..ax].iter().product(), s[ax..].iter().product()])
}

fn unsqueeze_shape(s: &[usize], axes: &[i64]) -> std::result::Result<Vec<usize>, String> {
    let rank = s.len() + axes.len();
    let mut ax: Vec<usize> = axes
        .iter()
        .map(|&a| shape::axis(a, rank, false))
        .collect::<std::result::Result<_, _>>()?;
    ax.sort_unstable();
    ax.dedup();
    if ax.len() != axes.len() {
        return Err("repeated axis in Unsqueeze".into());
    }
    let mut out = Vec::with_capacity(rank);
    let mut it = s.iter();
    for k in 0..rank {
        if ax.contains(&k) {
            out.push(1);
        } else {
            out.push(*it.next().ok_or("bad Unsqueeze axes")?);
        }
    }
    Ok(out)
}

fn squeeze_shape(s: &[usize], axes: Option<&[i64]>) -> std::result::Result<Vec<usize>, String> {
    match axes {
        None => Ok(s.iter().copied().filter(|&d| d != 1).collect()),
        Some(axes) => {
            let ax: Vec<usize> = axes
                .iter()
                .map(|&a| shape::axis(a, s.len(), false))
                .collect::<std::result::Result<_, _>>()?;
            if ax.iter().any(|&k| s[k] != 1) {
                return Err(format!("cannot squeeze a non-unit axis of {s:?}"));
            }
            Ok(s.iter()
                .enumerate()
                .filter(|(k, _)| !ax.contains(k))
                .map(|(_, &d)| d)
                .collect())
        }
    }
}

fn concat_shape(
    shapes: &[&[usize]],
    axis: i64,
) -> std::result::Result<(usize, Vec<usize>), String> {
    let first = shapes.first().ok_or("Concat without inputs")?;
    let ax = shape::axis(axis, first.len(), false)?;
    let mut out = first.to_vec();
    for s in &shapes[1..] {
        if s.len() != first.len() || (0..s.len()).any(|k| k != ax && s[k] != first[k]) {
            return Err(format!(
                "Concat inputs {first:?} and {s:?} differ off axis {ax}"
            ));
        }
        out[ax] = out[ax].checked_add(s[ax]).ok_or("Concat overflows")?;
    }
    Ok((ax, out))
}
