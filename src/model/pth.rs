//! Reader for PyTorch's legacy (pre-zip) `.pth` serialisation of a state dict, in pure
//! Rust: a protocol-2 pickle subset, persistent storage ids, then raw little-endian
//! storages. Layout: magic pickle, protocol pickle, sys-info pickle, the state-dict pickle
//! (tensors are `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` with
//! persistent ids `('storage', FloatStorage, key, 'cpu', numel)`), a pickle of the storage
//! keys, then per key an 8-byte element count and the data.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::Tensor;
use crate::error::{Error, Result};

const LEGACY_MAGIC: u128 = 0x1950a86a20f9469cfc6c;

#[derive(Clone, Debug)]
#[allow(dead_code)] // scalar payloads are parsed but only ints and strings are read
enum P {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Tuple(Vec<P>),
    List(Vec<P>),
    Dict(Vec<(P, P)>),
    Global(String, String),
    Pid(Box<P>),
    Tensor {
        key: String,
        dtype: String,
        offset: usize,
        size: Vec<usize>,
        stride: Vec<usize>,
    },
    Other,
    Mark,
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or("unexpected end of file")?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> std::result::Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn line(&mut self) -> std::result::Result<String, String> {
        let start = self.pos;
        let nl = self.b[start..]
            .iter()
            .position(|&c| c == b'\n')
            .ok_or("unterminated line")?;
        self.pos = start + nl + 1;
        Ok(String::from_utf8_lossy(&self.b[start..start + nl]).into_owned())
    }

    /// Unpickle one object.
    fn pickle(&mut self) -> std::result::Result<P, String> {
        let mut stack: Vec<P> = Vec::new();
        let mut memo: HashMap<u32, P> = HashMap::new();
        let pop_mark = |stack: &mut Vec<P>| -> std::result::Result<Vec<P>, String> {
            let k = stack
                .iter()
                .rposition(|p| matches!(p, P::Mark))
                .ok_or("MARK not found")?;
            let items = stack.split_off(k + 1);
            stack.pop();
            Ok(items)
        };
        let pop = |stack: &mut Vec<P>| stack.pop().ok_or_else(|| "stack underflow".to_string());
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?;
                } // PROTO
                b'.' => return pop(&mut stack), // STOP
                b'(' => stack.push(P::Mark),
                b'N' => stack.push(P::None),
                0x88 => stack.push(P::Bool(true)),
                0x89 => stack.push(P::Bool(false)),
                b'K' => {
                    let v = self.u8()?;
                    stack.push(P::Int(v as i128))
                }
                b'M' => {
                    let v = self.u16()?;
                    stack.push(P::Int(v as i128))
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    stack.push(P::Int(v as i128))
                }
                0x8a => {
                    // LONG1
                    let n = self.u8()? as usize;
                    let bytes = self.take(n)?;
                    if n > 16 {
                        return Err("integer too long".into());
                    }
                    let mut v: i128 = 0;
                    for (k, &b) in bytes.iter().enumerate() {
                        v |= (b as i128) << (8 * k);
                    }
                    if n > 0 && n < 16 && bytes[n - 1] & 0x80 != 0 {
                        v -= 1i128 << (8 * n);
                    }
                    stack.push(P::Int(v))
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap());
                    stack.push(P::Float(v))
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    stack.push(P::Str(s))
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    stack.push(P::Str(s))
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    stack.push(P::Str(s))
                }
                b'T' | b'B' => {
                    let n = self.u32()? as usize;
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    stack.push(P::Str(s))
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    self.take(n)?;
                    stack.push(P::Other)
                }
                b'c' => {
                    let m = self.line()?;
                    let n = self.line()?;
                    stack.push(P::Global(m, n))
                }
                b')' => stack.push(P::Tuple(vec![])),
                b']' => stack.push(P::List(vec![])),
                b'}' => stack.push(P::Dict(vec![])),
                b't' => {
                    let items = pop_mark(&mut stack)?;
                    stack.push(P::Tuple(items))
                }
                b'l' => {
                    let items = pop_mark(&mut stack)?;
                    stack.push(P::List(items))
                }
                0x85 => {
                    let a = pop(&mut stack)?;
                    stack.push(P::Tuple(vec![a]))
                }
                0x86 => {
                    let b = pop(&mut stack)?;
                    let a = pop(&mut stack)?;
                    stack.push(P::Tuple(vec![a, b]))
                }
                0x87 => {
                    let c = pop(&mut stack)?;
                    let b = pop(&mut stack)?;
                    let a = pop(&mut stack)?;
                    stack.push(P::Tuple(vec![a, b, c]))
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    memo.insert(k, stack.last().cloned().ok_or("BINPUT on empty stack")?);
                }
                b'r' => {
                    let k = self.u32()?;
                    memo.insert(
                        k,
                        stack.last().cloned().ok_or("LONG_BINPUT on empty stack")?,
                    );
                }
                b'h' => {
                    let k = self.u8()? as u32;
                    stack.push(memo.get(&k).cloned().ok_or("BINGET of unknown memo")?)
                }
                b'j' => {
                    let k = self.u32()?;
                    stack.push(memo.get(&k).cloned().ok_or("LONG_BINGET of unknown memo")?)
                }
                b'Q' => {
                    let pid = pop(&mut stack)?;
                    stack.push(P::Pid(Box::new(pid)))
                }
                b'a' => {
                    let v = pop(&mut stack)?;
                    if let Some(P::List(l)) = stack.last_mut() {
                        l.push(v)
                    }
                }
                b'e' => {
                    let items = pop_mark(&mut stack)?;
                    if let Some(P::List(l)) = stack.last_mut() {
                        l.extend(items)
                    }
                }
                b's' => {
                    let v = pop(&mut stack)?;
                    let k = pop(&mut stack)?;
                    if let Some(P::Dict(d)) = stack.last_mut() {
                        d.push((k, v))
                    }
                }
                b'u' => {
                    let items = pop_mark(&mut stack)?;
                    if let Some(P::Dict(d)) = stack.last_mut() {
                        let mut it = items.into_iter();
                        while let (Some(k), Some(v)) = (it.next(), it.next()) {
                            d.push((k, v));
                        }
                    }
                }
                b'b' => {
                    // BUILD: set state on the object (OrderedDict metadata): ignored.
                    pop(&mut stack)?;
                }
                b'R' => {
                    let args = pop(&mut stack)?;
                    let f = pop(&mut stack)?;
                    stack.push(reduce(f, args)?)
                }
                0x81 => {
                    // NEWOBJ
                    pop(&mut stack)?;
                    pop(&mut stack)?;
                    stack.push(P::Other)
                }
                other => {
                    return Err(format!(
                        "unsupported pickle opcode 0x{other:02x} at byte {}",
                        self.pos - 1
                    ));
                }
            }
        }
    }
}

fn reduce(f: P, args: P) -> std::result::Result<P, String> {
    match (&f, args) {
        (P::Global(m, n), _) if m == "collections" && n == "OrderedDict" => Ok(P::Dict(vec![])),
        (P::Global(m, n), P::Tuple(a)) if m == "torch._utils" && n == "_rebuild_tensor_v2" => {
            let bad = || "malformed _rebuild_tensor_v2 arguments".to_string();
            let (key, dtype) = match a.first() {
                Some(P::Pid(pid)) => match pid.as_ref() {
                    P::Tuple(t) if t.len() >= 3 => match (&t[1], &t[2]) {
                        (P::Global(_, d), P::Str(k)) => (k.clone(), d.clone()),
                        _ => return Err(bad()),
                    },
                    _ => return Err(bad()),
                },
                _ => return Err(bad()),
            };
            let int = |p: &P| match p {
                P::Int(v) if *v >= 0 => Ok(*v as usize),
                _ => Err(bad()),
            };
            let list = |p: Option<&P>| match p {
                Some(P::Tuple(v)) => v
                    .iter()
                    .map(int)
                    .collect::<std::result::Result<Vec<_>, _>>(),
                _ => Err(bad()),
            };
            Ok(P::Tensor {
                key,
                dtype,
                offset: int(a.get(1).ok_or_else(bad)?)?,
                size: list(a.get(2))?,
                stride: list(a.get(3))?,
            })
        }
        _ => Ok(P::Other),
    }
}

/// Read the FP32 tensors of a legacy `.pth` state dict (others, e.g. `num_batches_tracked`,
/// are skipped). Non-contiguous strides are honoured.
pub fn read_state_dict(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let err = |reason: String| Error::Data {
        path: path.display().to_string(),
        reason,
    };
    if bytes.starts_with(b"PK") {
        return Err(err(
            "zip-format .pth (torch >= 1.6) is not supported; only the legacy format".into(),
        ));
    }
    let mut r = Reader { b: &bytes, pos: 0 };
    match r.pickle().map_err(&err)? {
        P::Int(m) if m as u128 == LEGACY_MAGIC => {}
        _ => return Err(err("not a legacy PyTorch file (bad magic number)".into())),
    }
    r.pickle().map_err(&err)?; // protocol version
    r.pickle().map_err(&err)?; // sys info
    let sd = r.pickle().map_err(&err)?;
    let keys = match r.pickle().map_err(&err)? {
        P::List(k) => k,
        _ => return Err(err("storage key list missing".into())),
    };
    let mut storages: HashMap<String, (usize, usize)> = HashMap::new(); // key -> (byte pos, numel)
    for k in keys {
        let P::Str(k) = k else {
            return Err(err("storage key is not a string".into()));
        };
        let n = u64::from_le_bytes(r.take(8).map_err(&err)?.try_into().unwrap()) as usize;
        let start = r.pos;
        storages.insert(k.clone(), (start, n));
        // element size is known from the tensor's dtype; skip by the largest plausible size
        // only after we know it: record and skip lazily below.
        let size =
            sd_elem_size(&sd, &k).ok_or_else(|| err(format!("storage {k} has no tensor")))?;
        r.take(
            n.checked_mul(size)
                .ok_or_else(|| err("storage size overflows".into()))?,
        )
        .map_err(&err)?;
    }
    let P::Dict(items) = sd else {
        return Err(err("the main object is not a state dict".into()));
    };
    let mut out = BTreeMap::new();
    for (k, v) in items {
        let (
            P::Str(name),
            P::Tensor {
                key,
                dtype,
                offset,
                size,
                stride,
            },
        ) = (k, v)
        else {
            continue;
        };
        if dtype != "FloatStorage" {
            continue;
        }
        let (pos, numel) = storages[&key];
        let n: usize = size.iter().product();
        let mut data = Vec::with_capacity(n);
        let mut idx = vec![0usize; size.len()];
        for _ in 0..n {
            let e = offset + idx.iter().zip(&stride).map(|(i, s)| i * s).sum::<usize>();
            if e >= numel {
                return Err(err(format!("tensor {name} reads past its storage")));
            }
            let b = &bytes[pos + 4 * e..pos + 4 * e + 4];
            data.push(f32::from_le_bytes(b.try_into().unwrap()));
            for d in (0..size.len()).rev() {
                idx[d] += 1;
                if idx[d] < size[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        out.insert(name, Tensor::new(size, data));
    }
    Ok(out)
}

fn sd_elem_size(sd: &P, key: &str) -> Option<usize> {
    let P::Dict(items) = sd else { return None };
    items.iter().find_map(|(_, v)| match v {
        P::Tensor { key: k, dtype, .. } if k == key => Some(match dtype.as_str() {
            "DoubleStorage" | "LongStorage" => 8,
            "HalfStorage" | "ShortStorage" | "BFloat16Storage" => 2,
            "ByteStorage" | "CharStorage" | "BoolStorage" => 1,
            _ => 4,
        }),
        _ => None,
    })
}
