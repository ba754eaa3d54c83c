//! The registry of WGSL kernels: every file in `kernels/` except the prelude is listed
//! here (a test checks the directory against this list), and each is compiled as
//! `prelude + kernel` with entry point `main`.

/// The shared prelude, prepended to every kernel.
pub const PRELUDE: &str = include_str!("../../kernels/prelude.wgsl");

/// A registered kernel: its name (= file stem = CPU mirror in `cpu::kernels`) and source.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    pub name: &'static str,
    pub source: &'static str,
}

pub const KERNELS: &[Kernel] = &[
    Kernel {
        name: "quantize",
        source: include_str!("../../kernels/quantize.wgsl"),
    },
    Kernel {
        name: "conv2d",
        source: include_str!("../../kernels/conv2d.wgsl"),
    },
    Kernel {
        name: "dense",
        source: include_str!("../../kernels/dense.wgsl"),
    },
    Kernel {
        name: "requantize",
        source: include_str!("../../kernels/requantize.wgsl"),
    },
    Kernel {
        name: "maxpool",
        source: include_str!("../../kernels/maxpool.wgsl"),
    },
    Kernel {
        name: "dequantize_acc",
        source: include_str!("../../kernels/dequantize_acc.wgsl"),
    },
    Kernel {
        name: "clamp_i8",
        source: include_str!("../../kernels/clamp_i8.wgsl"),
    },
    Kernel {
        name: "add_i8",
        source: include_str!("../../kernels/add_i8.wgsl"),
    },
    Kernel {
        name: "gap_i8",
        source: include_str!("../../kernels/gap_i8.wgsl"),
    },
    Kernel {
        name: "conv1x1",
        source: include_str!("../../kernels/conv1x1.wgsl"),
    },
    Kernel {
        name: "topk_count",
        source: include_str!("../../kernels/topk_count.wgsl"),
    },
    Kernel {
        name: "strum_quantize",
        source: include_str!("../../kernels/strum_quantize.wgsl"),
    },
    Kernel {
        name: "conv2d_f32",
        source: include_str!("../../kernels/conv2d_f32.wgsl"),
    },
    Kernel {
        name: "dense_f32",
        source: include_str!("../../kernels/dense_f32.wgsl"),
    },
    Kernel {
        name: "fake_quant",
        source: include_str!("../../kernels/fake_quant.wgsl"),
    },
    Kernel {
        name: "clamp_f32",
        source: include_str!("../../kernels/clamp_f32.wgsl"),
    },
    Kernel {
        name: "add_f32",
        source: include_str!("../../kernels/add_f32.wgsl"),
    },
    Kernel {
        name: "gap_f32",
        source: include_str!("../../kernels/gap_f32.wgsl"),
    },
    Kernel {
        name: "maxpool_f32",
        source: include_str!("../../kernels/maxpool_f32.wgsl"),
    },
    Kernel {
        name: "lut_i8",
        source: include_str!("../../kernels/lut_i8.wgsl"),
    },
    Kernel {
        name: "mul_i8",
        source: include_str!("../../kernels/mul_i8.wgsl"),
    },
    Kernel {
        name: "mul_f32",
        source: include_str!("../../kernels/mul_f32.wgsl"),
    },
    Kernel {
        name: "unary_f32",
        source: include_str!("../../kernels/unary_f32.wgsl"),
    },
    Kernel {
        name: "avgpool_i8",
        source: include_str!("../../kernels/avgpool_i8.wgsl"),
    },
    Kernel {
        name: "avgpool_f32",
        source: include_str!("../../kernels/avgpool_f32.wgsl"),
    },
    Kernel {
        name: "strum_decode",
        source: include_str!("../../kernels/strum_decode.wgsl"),
    },
    Kernel {
        name: "pack_i8x4",
        source: include_str!("../../kernels/pack_i8x4.wgsl"),
    },
    Kernel {
        name: "dense_dp4a",
        source: include_str!("../../kernels/dense_dp4a.wgsl"),
    },
    Kernel {
        name: "conv1x1_dp4a",
        source: include_str!("../../kernels/conv1x1_dp4a.wgsl"),
    },
    Kernel {
        name: "conv1x1_f32",
        source: include_str!("../../kernels/conv1x1_f32.wgsl"),
    },
];

impl Kernel {
    /// The full WGSL module: prelude followed by the kernel.
    pub fn module_source(&self) -> String {
        format!("{PRELUDE}\n{}", self.source)
    }
}

pub fn get(name: &str) -> Option<&'static Kernel> {
    KERNELS.iter().find(|k| k.name == name)
}
