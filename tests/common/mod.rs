//! Helpers shared by the integration tests: paths of vendored assets and a tiny builder
//! that writes ONNX models with the crate's own protobuf structs.
#![allow(dead_code)]

use std::path::PathBuf;

use prost::Message;
use strumlab::model::onnx_proto::*;

pub fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("experiments/data")
        .join(rel)
}

pub fn f32_tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: Some(dtype::FLOAT),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        name: Some(name.into()),
        ..Default::default()
    }
}

pub fn i64_tensor(name: &str, data: &[i64]) -> TensorProto {
    TensorProto {
        dims: vec![data.len() as i64],
        data_type: Some(dtype::INT64),
        int64_data: data.to_vec(),
        name: Some(name.into()),
        ..Default::default()
    }
}

pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(7),
        ints: v.to_vec(),
        ..Default::default()
    }
}
pub fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(2),
        i: Some(v),
        ..Default::default()
    }
}
pub fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(1),
        f: Some(v),
        ..Default::default()
    }
}
pub fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(3),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

pub fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: Some(name.into()),
        op_type: Some(op.into()),
        domain: None,
        attribute: attrs,
    }
}

pub fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: Some(dtype::FLOAT),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            dim_value: Some(d),
                            dim_param: None,
                        })
                        .collect(),
                }),
            }),
        }),
    }
}

/// Serialise a single-input model.
pub fn model(
    opset: i64,
    input: (&str, &[i64]),
    output: &str,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
) -> Vec<u8> {
    ModelProto {
        ir_version: Some(7),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        producer_name: Some("strumlab-tests".into()),
        graph: Some(GraphProto {
            node: nodes,
            name: Some("test".into()),
            initializer: inits,
            input: vec![value_info(input.0, input.1)],
            output: vec![value_info(output, &[])],
        }),
    }
    .encode_to_vec()
}

/// Deterministic pseudo-random numbers (xorshift64*), so failures reproduce.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545F4914F6CDD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn normal(&mut self) -> f32 {
        // Box-Muller
        let u1 = ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let u2 = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

/// A fresh empty temporary folder for one test: `strumlab-<name>-<pid>`.
pub fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("strumlab-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// Run the `strumlab` binary: (exit code, stdout, stderr).
pub fn strumlab(args: &[&str]) -> (i32, String, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_strumlab"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

/// One random mutation of `base` (fuzzing): truncation, overwritten bytes, a flipped bit, a
/// deleted run, or an inserted copy of another part.
pub fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    match rng.below(5) {
        0 => b.truncate(rng.below(base.len())),
        1 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
        }
        2 => {
            let i = rng.below(b.len());
            b[i] ^= 1 << rng.below(8);
        }
        3 => {
            let i = rng.below(b.len());
            let n = 1 + rng.below(16);
            b.drain(i..(i + n).min(b.len()));
        }
        _ => {
            let i = rng.below(b.len());
            let j = rng.below(b.len());
            let n = 1 + rng.below(64);
            let chunk: Vec<u8> = b[j..(j + n).min(b.len())].to_vec();
            b.splice(i..i, chunk);
        }
    }
    b
}

/// The outcome of [`strumlab_measured`].
pub struct Measured {
    /// Exit code; `None` when the run was killed at the time limit.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Peak resident set of the child (ru_maxrss of wait4), bytes.
    pub max_rss: u64,
}

/// Run the `strumlab` binary as a child process with a time limit, reading its own peak
/// memory from wait4 (other tests' children do not count). The binary is the release build
/// when `STRUMLAB_RELEASE_BIN` names it (the test command builds it and sets it), else the
/// test build's.
pub fn strumlab_measured(args: &[&str], limit: std::time::Duration) -> Measured {
    use std::io::Read;
    let bin = std::env::var_os("STRUMLAB_RELEASE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_strumlab")));
    let mut child = std::process::Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let t0 = std::time::Instant::now();
    let (mut status, mut ru): (libc::c_int, libc::rusage) = (0, unsafe { std::mem::zeroed() });
    let mut killed = false;
    loop {
        // SAFETY: plain syscall on our own child; `status` and `ru` outlive it.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        assert!(r >= 0, "wait4 failed");
        if r == pid {
            break;
        }
        if t0.elapsed() > limit && !killed {
            // SAFETY: signalling our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Measured {
        code: if killed { None } else { code },
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        max_rss: ru.ru_maxrss as u64 * 1024,
    }
}

/// A gzipped IDX file of u8 elements: the header with `dims`, then `payload` bytes of zeros
/// (which need not match the dims: the bad-input tests use that).
pub fn idx_gz(path: &std::path::Path, dims: &[u32], payload: usize) {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&[0, 0, 8, dims.len() as u8]).unwrap();
    for d in dims {
        gz.write_all(&d.to_be_bytes()).unwrap();
    }
    let zeros = vec![0u8; 1 << 20];
    let mut left = payload;
    while left > 0 {
        let k = left.min(zeros.len());
        gz.write_all(&zeros[..k]).unwrap();
        left -= k;
    }
    std::fs::write(path, gz.finish().unwrap()).unwrap();
}
