//! Every WGSL kernel parses and validates with naga (no GPU needed), and every file in
//! kernels/ is registered.

use strumlab::gpu::kernels::{KERNELS, PRELUDE};

#[test]
fn every_kernel_validates() {
    for k in KERNELS {
        let src = k.module_source();
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{}: {}", k.name, e.emit_to_string(&src)));
        let mut v = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        );
        v.validate(&module)
            .unwrap_or_else(|e| panic!("{}: {e:?}", k.name));
        assert!(
            module.entry_points.iter().any(|e| e.name == "main"),
            "{}: no entry point main",
            k.name
        );
    }
    assert!(naga::front::wgsl::parse_str(PRELUDE).is_ok());
}

#[test]
fn every_wgsl_file_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|n| n != "prelude")
        .collect();
    files.sort();
    let mut reg: Vec<String> = KERNELS.iter().map(|k| k.name.to_string()).collect();
    reg.sort();
    assert_eq!(files, reg);
}

#[test]
fn every_kernel_names_its_cpu_mirror() {
    for k in KERNELS {
        assert!(
            k.source
                .contains(&format!("CPU mirror: cpu::kernels::{}", k.name)),
            "{}",
            k.name
        );
    }
}
