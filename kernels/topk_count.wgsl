// topk_count: per image, the K best classes of its logits (ties: the lower class index
// first, as eval::top_k), then counts accumulated atomically so that only the counts and
// one top-1 index per image come back to the host:
//   counts[0] images whose label is the top-1, counts[1] whose label is among the top K,
//   counts[2] whose top-1 equals the reference top-1 (e.g. FP32's), counts[3] labelled images.
// Logits are read as raw 32-bit words: FP32 values (is_int = 0) or INT8 codes stored as
// i32 (is_int = 1, ordered like their dequantized values since the scale is positive).
// Label or reference -1: none. NaN logits are never ranked above a number. Labels, references
// and top-1 are indexed from `offset` (a batch of a dataset resident on the GPU; the
// mirror takes slices).
// CPU mirror: cpu::kernels::topk_count.

override K: u32 = 5u;   // at most 8

struct Params { images: u32, classes: u32, is_int: u32, offset: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<u32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read> reference: array<i32>;
@group(0) @binding(4) var<storage, read_write> top1: array<i32>;
@group(0) @binding(5) var<storage, read_write> counts: array<atomic<u32>, 4>;

fn logit(i: u32) -> f32 {
    if (p.is_int != 0u) { return f32(bitcast<i32>(logits[i])); }
    return bitcast<f32>(logits[i]);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let img = flat_index(gid, nwg);
    if (img >= p.images) { return; }
    let k = min(min(K, 8u), p.classes);
    var best: array<f32, 8>;
    var idx: array<i32, 8>;
    var filled = 0u;
    for (var c = 0u; c < p.classes; c++) {
        let v = logit(img * p.classes + c);
        // First slot holding a smaller value (strictly: equal values keep index order).
        var pos = filled;
        for (var j = 0u; j < filled; j++) {
            if (v > best[j]) { pos = j; break; }
        }
        if (pos >= k) { continue; }
        var j = min(filled, k - 1u);
        while (j > pos) {
            best[j] = best[j - 1u];
            idx[j] = idx[j - 1u];
            j--;
        }
        best[pos] = v;
        idx[pos] = i32(c);
        filled = min(filled + 1u, k);
    }
    top1[p.offset + img] = idx[0];
    let y = labels[p.offset + img];
    if (y >= 0) {
        atomicAdd(&counts[3], 1u);
        if (idx[0] == y) { atomicAdd(&counts[0], 1u); }
        for (var j = 0u; j < k; j++) {
            if (idx[j] == y) { atomicAdd(&counts[1], 1u); break; }
        }
    }
    let r = reference[p.offset + img];
    if (r >= 0 && idx[0] == r) { atomicAdd(&counts[2], 1u); }
}
