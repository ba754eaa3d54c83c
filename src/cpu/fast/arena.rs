//! Liveness -> storage slots, and the per-worker arena: one allocation per slot for a
//! given batch size, reused batch after batch.

use super::compile::{FOp, Program, Val};

/// The values an op reads and the value it writes.
pub fn io(op: &FOp) -> (Vec<usize>, usize) {
    match op {
        FOp::Quantize { out, .. } => (vec![], *out),
        FOp::Layer {
            input, out, epi, ..
        } => {
            let mut v = vec![*input];
            if let Some((o, ..)) = epi.add {
                v.push(o);
            }
            (v, *out)
        }
        FOp::MaxPool { input, out, .. }
        | FOp::Gap { input, out, .. }
        | FOp::Clamp { input, out, .. } => (vec![*input], *out),
        FOp::Add { a, b, out, .. } => (vec![*a, *b], *out),
    }
}

fn root(vals: &[Val], v: usize) -> usize {
    vals[v].alias_of.unwrap_or(v)
}

/// Slot of every value and bytes per image of every slot: a value's slot is free again
/// after the last op that reads it (or any of its aliases); the output is never freed. An
/// op's output never shares a slot with its inputs.
pub fn assign(vals: &[Val], ops: &[FOp], output: usize) -> (Vec<usize>, Vec<usize>) {
    let mut last = vec![0usize; vals.len()];
    for (i, op) in ops.iter().enumerate() {
        for v in io(op).0 {
            last[root(vals, v)] = i;
        }
    }
    last[root(vals, output)] = usize::MAX;
    let mut slot = vec![usize::MAX; vals.len()];
    let mut bytes: Vec<usize> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let (ins, out) = io(op);
        let need = vals[out].bytes();
        // best fit among the free slots: the smallest that holds it, else the largest
        let pick = free
            .iter()
            .enumerate()
            .filter(|(_, s)| bytes[**s] >= need)
            .min_by_key(|(_, s)| bytes[**s])
            .or_else(|| free.iter().enumerate().max_by_key(|(_, s)| bytes[**s]))
            .map(|(k, _)| k);
        let s = match pick {
            Some(k) => free.swap_remove(k),
            None => {
                bytes.push(0);
                bytes.len() - 1
            }
        };
        bytes[s] = bytes[s].max(need);
        slot[out] = s;
        for v in ins {
            let r = root(vals, v);
            if last[r] == i && !free.contains(&slot[r]) {
                free.push(slot[r]);
            }
        }
    }
    for v in 0..vals.len() {
        if let Some(r) = vals[v].alias_of {
            slot[v] = slot[r];
        }
    }
    (slot, bytes)
}

/// The storage of one worker for batches of up to `batch` images.
pub struct Arena {
    pub batch: usize,
    bufs: Vec<Vec<u64>>,
    /// im2col rows and tail scratch of the kernels
    pub rows: Vec<i8>,
    pub scratch: Vec<i8>,
    pub padded: Vec<i8>,
    pub sat: Vec<u32>,
    pub nz: Vec<u32>,
}

impl Arena {
    pub fn new(p: &Program, batch: usize) -> Self {
        let bufs = p
            .slot_bytes
            .iter()
            .map(|&b| vec![0u64; (b * batch).div_ceil(8) + 8])
            .collect();
        Arena {
            batch,
            bufs,
            rows: Vec::new(),
            scratch: Vec::new(),
            padded: Vec::new(),
            sat: Vec::new(),
            nz: Vec::new(),
        }
    }
    /// Base pointer of a slot (INT8 or FP32 view by the caller).
    pub fn ptr(&mut self, slot: usize) -> *mut u8 {
        self.bufs[slot].as_mut_ptr() as *mut u8
    }
    pub fn len(&self, slot: usize) -> usize {
        self.bufs[slot].len() * 8
    }
}

/// Arenas reused across calls and threads: a worker takes one for a call and gives it
/// back (rayon's `map_init` would allocate one per split job).
pub struct ArenaPool<'p> {
    program: &'p Program,
    batch: usize,
    free: std::sync::Mutex<Vec<Arena>>,
}

impl<'p> ArenaPool<'p> {
    pub fn new(program: &'p Program, batch: usize) -> Self {
        ArenaPool {
            program,
            batch,
            free: std::sync::Mutex::new(Vec::new()),
        }
    }
    /// Run `f` with an arena of this pool.
    pub fn with<R>(&self, f: impl FnOnce(&mut Arena) -> R) -> R {
        let taken = self.free.lock().expect("arena pool").pop();
        let mut a = taken.unwrap_or_else(|| Arena::new(self.program, self.batch));
        let r = f(&mut a);
        self.free.lock().expect("arena pool").push(a);
        r
    }
}
