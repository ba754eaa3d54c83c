// Shared prelude, prepended to every kernel (src/gpu/kernels.rs). No templating: kernels are
// specialised with `override` constants only.

// Invocations per workgroup (1-D kernels).
override WG: u32 = 64u;

// Round half to even (WGSL round() is ties-to-even), clamp to symmetric INT8.
fn quantize1(v: f32) -> i32 {
    return i32(clamp(round(v), -127.0, 127.0));
}

// Flat invocation index of a 1-D kernel dispatched as a 2-D grid of workgroups (so that
// more than 65535 workgroups fit the per-dimension limit).
fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * nwg.x * WG + gid.x;
}
