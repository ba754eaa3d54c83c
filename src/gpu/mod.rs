//! The GPU path: a wgpu context created once, pipelines cached by kernel name, and one
//! launcher per WGSL kernel (kernels/). Every launcher has a CPU mirror in `cpu::kernels`
//! with the same name and arithmetic; tests compare them bit for bit.
//!
//! Status: kernels and launchers for the integer path (quantize, conv2d, dense, requantize,
//! maxpool). The whole-graph GPU executor, float modes and the remaining kernels are the
//! rest of the GPU-engine issue.

pub mod engine;
pub mod kernels;

use std::collections::HashMap;
use std::sync::Mutex;

use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

use crate::cpu::kernels::ConvGeom;
use crate::error::{Error, Result};

/// The `conv2d` kernel's parameter block for a batch of `n` images.
pub(crate) fn conv_params(g: &ConvGeom, n: usize) -> [u32; 20] {
    let v = |x: usize| x as u32;
    [
        v(g.c),
        v(g.h),
        v(g.w),
        v(g.oc),
        v(g.icg),
        v(g.kh),
        v(g.kw),
        v(g.sh),
        v(g.sw),
        v(g.dh),
        v(g.dw),
        v(g.pt),
        v(g.pl),
        v(g.oh),
        v(g.ow),
        v(g.group),
        v(n),
        0,
        0,
        0,
    ]
}

/// The `maxpool` kernel's parameter block for a batch of `n` images (planes = n x C).
pub(crate) fn maxpool_params(g: &ConvGeom, n: usize) -> [u32; 12] {
    let v = |x: usize| x as u32;
    [
        v(g.c * n),
        v(g.h),
        v(g.w),
        v(g.kh),
        v(g.kw),
        v(g.sh),
        v(g.sw),
        v(g.pt),
        v(g.pl),
        v(g.oh),
        v(g.ow),
        0,
    ]
}

/// GEMM tile (OB output channels x PB pixels per invocation) for an adapter:
/// `STRUMLAB_GEMM_TILE=OB,PB` (each 1..=8) if set, else 8 x 4 on CPU adapters (lavapipe,
/// EfficientNet-Lite0 integer: 8x4 3.16 img/s, 8x2 3.10, 8x8 2.98, 4x4 2.85, 4x8 2.62, 2x2
/// 2.38) and the kernels' 4 x 4 default on GPUs (not tuned: no GPU was available). Errors on
/// a malformed variable.
pub fn gemm_tile(device_type: wgpu::DeviceType) -> Result<(u32, u32)> {
    if let Some(v) = std::env::var_os("STRUMLAB_GEMM_TILE").filter(|v| !v.is_empty()) {
        let v = v.to_string_lossy().to_string();
        let parse = || -> Option<(u32, u32)> {
            let (a, b) = v.split_once(',')?;
            let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            ((1..=8).contains(&a) && (1..=8).contains(&b)).then_some((a, b))
        };
        return parse().ok_or_else(|| Error::InvalidArg {
            arg: "STRUMLAB_GEMM_TILE".into(),
            reason: format!("'{v}' is not OB,PB with each in 1..=8"),
        });
    }
    Ok(match device_type {
        wgpu::DeviceType::Cpu => (8, 4),
        _ => (4, 4),
    })
}

/// What `strumlab devices` prints for one adapter.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub max_storage_buffer_binding_size: u64,
    pub max_compute_workgroups_per_dimension: u32,
    pub max_compute_invocations_per_workgroup: u32,
    /// WGSL `packed_4x8_integer_dot_product` available (the `*_dp4a` kernels are used)
    pub packed_dot_products: bool,
    /// (OB, PB) of the GEMM kernels on this adapter
    pub gemm_tile: Option<(u32, u32)>,
}

fn backends() -> wgpu::Backends {
    wgpu::Backends::from_env().unwrap_or(wgpu::Backends::VULKAN | wgpu::Backends::GL)
}

fn instance() -> wgpu::Instance {
    let mut d = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    d.backends = backends();
    wgpu::Instance::new(d)
}

/// Every adapter wgpu can see (Vulkan and GL; `WGPU_BACKEND` narrows it).
pub fn adapters() -> Vec<AdapterSummary> {
    let dp4a = instance()
        .wgsl_language_features()
        .contains(wgpu::WgslLanguageFeatures::Packed4x8IntegerDotProduct);
    pollster::block_on(instance().enumerate_adapters(backends()))
        .into_iter()
        .map(|a| {
            let i = a.get_info();
            let l = a.limits();
            AdapterSummary {
                name: i.name,
                backend: format!("{:?}", i.backend),
                device_type: format!("{:?}", i.device_type),
                driver: i.driver,
                driver_info: i.driver_info,
                max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
                max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
                max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
                packed_dot_products: dp4a,
                gemm_tile: gemm_tile(i.device_type).ok(),
            }
        })
        .collect()
}

pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    /// Use packed 4x8-bit dot products (`*_dp4a` kernels) for dense and pointwise layers in
    /// integer mode: on when WGSL's `packed_4x8_integer_dot_product` is available (naga emits
    /// SPIR-V OpSDot where the Vulkan device has integer dot products); set it to false for
    /// the portable kernels.
    pub dp4a: bool,
    /// GEMM tile (OB, PB) of conv1x1* / dense* kernels, passed as override constants when a
    /// pipeline is first built: change it only before the first dispatch.
    pub tile: (u32, u32),
    pipelines: Mutex<HashMap<&'static str, wgpu::ComputePipeline>>,
}

const WG: u32 = 64;

impl GpuContext {
    /// Open the default adapter. No adapter is an error that says how to get one.
    /// The GPU a run on `device` uses, by the one rule of `exec::Device`: `cpu` none;
    /// `gpu` any adapter (an error when none opens); `auto` a hardware adapter if one opens,
    /// else none, with a one-line notice on stderr unless `quiet`.
    pub fn for_device(device: crate::exec::Device, quiet: bool) -> Result<Option<Self>> {
        use crate::exec::Device;
        match device {
            Device::Cpu => Ok(None),
            Device::Gpu => Self::new().map(Some),
            Device::Auto => {
                let why = match Self::new() {
                    Ok(c) if c.is_hardware() => return Ok(Some(c)),
                    Ok(c) => format!("only a software adapter ({})", c.info.name),
                    Err(e) => e.to_string(),
                };
                if !quiet {
                    eprintln!("notice: {why}; running on the CPU (--device gpu forces it)");
                }
                Ok(None)
            }
        }
    }

    /// Whether the adapter is a hardware GPU (not a software rasterizer such as lavapipe,
    /// which is slower than the CPU engine: results/bench).
    pub fn is_hardware(&self) -> bool {
        self.info.device_type != wgpu::DeviceType::Cpu
    }

    pub fn new() -> Result<Self> {
        let inst = instance();
        let adapter = pollster::block_on(inst.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .map_err(|e| {
            Error::Gpu(format!(
                "no usable GPU adapter ({e}); on a machine without a GPU install Mesa's software Vulkan driver (Debian: mesa-vulkan-drivers) or use --device cpu"
            ))
        })?;
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("strumlab"),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::Gpu(format!("cannot open the GPU device: {e}")))?;
        let dp4a = inst
            .wgsl_language_features()
            .contains(wgpu::WgslLanguageFeatures::Packed4x8IntegerDotProduct);
        let info = adapter.get_info();
        let tile = gemm_tile(info.device_type)?;
        Ok(GpuContext {
            dp4a,
            tile,
            device,
            queue,
            info,
            limits,
            pipelines: Mutex::new(HashMap::new()),
        })
    }

    /// The override constants a kernel declares among those we set per adapter.
    fn overrides(&self, source: &str) -> Vec<(&'static str, f64)> {
        let mut v = Vec::new();
        if source.contains("override OB") {
            v.push(("OB", self.tile.0 as f64));
        }
        if source.contains("override PB") {
            v.push(("PB", self.tile.1 as f64));
        }
        v
    }

    /// Invocations of a `conv1x1*` kernel (OB x PB outputs each).
    pub(crate) fn conv1x1_invocations(&self, n: usize, oc: usize, hw: usize) -> u32 {
        (n * oc.div_ceil(self.tile.0 as usize) * hw.div_ceil(self.tile.1 as usize)) as u32
    }

    /// Invocations of a `dense*` kernel over `rows` rows (OB outputs each).
    pub(crate) fn dense_invocations(&self, rows: usize, oc: usize) -> u32 {
        (rows * oc.div_ceil(self.tile.0 as usize)) as u32
    }

    /// The compute pipeline of a registered kernel, compiled once. Shader or pipeline
    /// creation errors are returned with the kernel's name.
    pub(crate) fn pipeline(&self, name: &'static str) -> Result<wgpu::ComputePipeline> {
        if let Some(p) = self.pipelines.lock().expect("pipeline cache").get(name) {
            return Ok(p.clone());
        }
        let k = kernels::get(name)
            .ok_or_else(|| Error::Gpu(format!("kernel '{name}' is not registered")))?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(k.module_source().into()),
            });
        let p = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &self.overrides(k.source),
                    ..Default::default()
                },
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!("kernel '{name}': {e}")));
        }
        self.pipelines
            .lock()
            .expect("pipeline cache")
            .insert(name, p.clone());
        Ok(p)
    }

    pub(crate) fn storage<T: Pod>(&self, data: &[T], writable: bool) -> wgpu::Buffer {
        let usage = wgpu::BufferUsages::STORAGE
            | if writable {
                wgpu::BufferUsages::COPY_SRC
            } else {
                wgpu::BufferUsages::empty()
            };
        // wgpu rejects empty buffers: pad to one element.
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let pad = [0u8; 4];
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: if bytes.is_empty() { &pad } else { bytes },
                usage,
            })
    }

    /// Record one dispatch of kernel `name` over `n` invocations into `enc`, with `params`
    /// at binding 0 and `buffers` at bindings 1..; the grid is split to respect the
    /// adapter's per-dimension workgroup limit.
    pub(crate) fn encode(
        &self,
        enc: &mut wgpu::CommandEncoder,
        name: &'static str,
        params: &[u8],
        buffers: &[&wgpu::Buffer],
        n: u32,
    ) -> Result<()> {
        let pipe = self.pipeline(name)?;
        let ubuf = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: params,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: ubuf.as_entire_binding(),
        }];
        for (k, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: k as u32 + 1,
                resource: b.as_entire_binding(),
            });
        }
        let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(name),
            layout: &pipe.get_bind_group_layout(0),
            entries: &entries,
        });
        let groups = n.div_ceil(WG).max(1);
        let maxd = self.limits.max_compute_workgroups_per_dimension.max(1);
        let (gx, gy) = if groups <= maxd {
            (groups, 1)
        } else {
            (maxd, groups.div_ceil(maxd))
        };
        if gy > maxd {
            return Err(Error::Gpu(format!(
                "kernel '{name}': {n} invocations exceed the adapter's dispatch limits"
            )));
        }
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipe);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(gx, gy, 1);
        Ok(())
    }

    /// Copy `len` elements of `src` back to the host.
    pub(crate) fn read_back<T: Pod>(
        &self,
        mut enc: wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        len: usize,
    ) -> Result<Vec<T>> {
        let bytes = ((len * std::mem::size_of::<T>()) as u64).max(4);
        let read = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        enc.copy_buffer_to_buffer(src, 0, &read, 0, bytes);
        self.queue.submit([enc.finish()]);
        let slice = read.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("device poll: {e}")))?;
        rx.recv()
            .map_err(|e| Error::Gpu(format!("readback: {e}")))?
            .map_err(|e| Error::Gpu(format!("readback failed ({e})")))?;
        let view = slice
            .get_mapped_range()
            .map_err(|e| Error::Gpu(format!("cannot map the readback buffer ({e:?})")))?;
        Ok(bytemuck::cast_slice::<u8, T>(&view[..len * std::mem::size_of::<T>()]).to_vec())
    }

    /// A zero-initialised storage buffer of `bytes` bytes.
    pub(crate) fn scratch(&self, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("scratch"),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Run kernel `name` over `n` invocations with `params` at binding 0 and `buffers` at
    /// bindings 1.., then read back the last buffer as `len` elements of `T`.
    fn launch<P: Pod, T: Pod>(
        &self,
        name: &'static str,
        params: &P,
        buffers: &[&wgpu::Buffer],
        n: u32,
        len: usize,
    ) -> Result<Vec<T>> {
        let mut enc = self.device.create_command_encoder(&Default::default());
        self.encode(&mut enc, name, bytemuck::bytes_of(params), buffers, n)?;
        self.read_back(enc, buffers.last().expect("an output buffer"), len)
    }

    /// GPU `topk_count` with K = 5 (mirror: `cpu::kernels::topk_count`): top-1 per image
    /// and `[top-1 hits, top-5 hits, agreements, labelled]`.
    pub fn topk_count(
        &self,
        logits: &[u32],
        labels: &[i32],
        reference: &[i32],
        classes: usize,
        is_int: bool,
    ) -> Result<(Vec<i32>, [u32; 4])> {
        let n = labels.len();
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct P([u32; 4]);
        let (xb, lb, rb) = (
            self.storage(logits, false),
            self.storage(labels, false),
            self.storage(reference, false),
        );
        let top1 = self.scratch((n * 4) as u64);
        let counts = self.scratch(16);
        let mut enc = self.device.create_command_encoder(&Default::default());
        self.encode(
            &mut enc,
            "topk_count",
            bytemuck::bytes_of(&P([n as u32, classes as u32, is_int as u32, 0])),
            &[&xb, &lb, &rb, &top1, &counts],
            n as u32,
        )?;
        let c: Vec<u32> = self.read_back(enc, &counts, 4)?;
        let enc = self.device.create_command_encoder(&Default::default());
        let t: Vec<i32> = self.read_back(enc, &top1, n)?;
        Ok((t, [c[0], c[1], c[2], c[3]]))
    }

    /// GPU `strum_quantize` (mirror: `cpu::kernels::strum_quantize`).
    pub fn strum_quantize(
        &self,
        p: &crate::cpu::kernels::StrumQuantParams,
        q8: &[i32],
        ratio: &[f32],
        headroom: &[f32],
    ) -> Result<Vec<i32>> {
        let (qb, rb, hb) = (
            self.storage(q8, false),
            self.storage(ratio, false),
            self.storage(headroom, false),
        );
        let w = self.scratch((q8.len() * 4) as u64);
        let mut enc = self.device.create_command_encoder(&Default::default());
        self.encode_strum_quantize(&mut enc, p, &qb, &rb, &hb, &w)?;
        self.read_back(enc, &w, q8.len())
    }

    pub(crate) fn encode_strum_quantize(
        &self,
        enc: &mut wgpu::CommandEncoder,
        p: &crate::cpu::kernels::StrumQuantParams,
        q8: &wgpu::Buffer,
        ratio: &wgpu::Buffer,
        headroom: &wgpu::Buffer,
        w: &wgpu::Buffer,
    ) -> Result<()> {
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct P([u32; 16]);
        let g = p.geometry;
        if g.block > 32 {
            return Err(Error::Gpu("strum_quantize: blocks of at most 32".into()));
        }
        let round = match p.p2_round {
            crate::quant::config::P2Round::Down => 0,
            crate::quant::config::P2Round::Up => 1,
            crate::quant::config::P2Round::Log => 2,
        };
        let params = P([
            g.num_blocks() as u32,
            g.p as u32,
            g.a as u32,
            g.q as u32,
            g.block as u32,
            p.low as u32,
            p.scheme,
            p.emin,
            p.emax,
            round,
            p.block_shift as u32,
            p.per_channel.max(1) as u32,
            g.inner as u32,
            0,
            0,
            0,
        ]);
        self.encode(
            enc,
            "strum_quantize",
            bytemuck::bytes_of(&params),
            &[q8, ratio, headroom, w],
            g.num_blocks() as u32,
        )
    }

    /// GPU `strum_decode` (mirror: `cpu::kernels::strum_decode`): packed StruM weights to
    /// integer weights in the layer's flat order.
    pub fn strum_decode(&self, pk: &crate::quant::Packed) -> Result<Vec<i32>> {
        use crate::quant::packed::LowFormat;
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct P([u32; 12]);
        let g = pk.geometry;
        if g.block > 32 {
            return Err(Error::Gpu("strum_decode: blocks of at most 32".into()));
        }
        let (format, emin, block_shift) = match pk.format {
            LowFormat::None => (0, 0, 0),
            LowFormat::Mip2q { emin } => (1, emin, 0),
            LowFormat::Dliq { block_shift } => (2, 0, block_shift as u32),
        };
        let params = P([
            g.num_blocks() as u32,
            g.p as u32,
            g.a as u32,
            g.q as u32,
            g.block as u32,
            pk.hi_words() as u32,
            pk.lo_words() as u32,
            format,
            emin,
            block_shift,
            g.inner as u32,
            0,
        ]);
        let bufs = [
            self.storage(&pk.masks, false),
            self.storage(&pk.hi, false),
            self.storage(&pk.lo, false),
            self.storage(&pk.shifts, false),
            self.storage(&vec![0i32; g.len()], true),
        ];
        self.launch(
            "strum_decode",
            &params,
            &[&bufs[0], &bufs[1], &bufs[2], &bufs[3], &bufs[4]],
            g.num_blocks() as u32,
            g.len(),
        )
    }

    /// GPU `pack_i8x4` (mirror: `cpu::kernels::pack_i8x4`).
    pub fn pack_i8x4(&self, w: &[i32], rows: usize, cols: usize) -> Result<Vec<u32>> {
        let c4 = cols.div_ceil(4);
        let bufs = [
            self.storage(w, false),
            self.storage(&vec![0u32; rows * c4], true),
        ];
        self.launch(
            "pack_i8x4",
            &[rows as u32, cols as u32, c4 as u32, 0],
            &[&bufs[0], &bufs[1]],
            (rows * c4) as u32,
            rows * c4,
        )
    }

    /// GPU `dense_dp4a` (mirror: `cpu::kernels::dense_dp4a`).
    pub fn dense_dp4a(
        &self,
        x: &[i32],
        wp: &[u32],
        bias: &[i32],
        ic: usize,
        oc: usize,
    ) -> Result<Vec<i32>> {
        let rows = x.len() / ic.max(1);
        let bufs = [
            self.storage(x, false),
            self.storage(wp, false),
            self.storage(bias, false),
            self.storage(&vec![0i32; rows * oc], true),
        ];
        let p = [rows as u32, ic as u32, oc as u32, ic.div_ceil(4) as u32];
        self.launch(
            "dense_dp4a",
            &p,
            &[&bufs[0], &bufs[1], &bufs[2], &bufs[3]],
            self.dense_invocations(rows, oc),
            rows * oc,
        )
    }

    /// GPU `conv1x1_dp4a` over `n` images (mirror: `cpu::kernels::conv1x1_dp4a`).
    #[allow(clippy::too_many_arguments)]
    pub fn conv1x1_dp4a(
        &self,
        x: &[i32],
        wp: &[u32],
        bias: &[i32],
        n: usize,
        ic: usize,
        oc: usize,
        hw: usize,
    ) -> Result<Vec<i32>> {
        let bufs = [
            self.storage(x, false),
            self.storage(wp, false),
            self.storage(bias, false),
            self.storage(&vec![0i32; n * oc * hw], true),
        ];
        let p = [
            n as u32,
            ic as u32,
            oc as u32,
            hw as u32,
            ic.div_ceil(4) as u32,
            0,
            0,
            0,
        ];
        self.launch(
            "conv1x1_dp4a",
            &p,
            &[&bufs[0], &bufs[1], &bufs[2], &bufs[3]],
            self.conv1x1_invocations(n, oc, hw),
            n * oc * hw,
        )
    }

    /// GPU `quantize` (mirror: `cpu::kernels::quantize`).
    pub fn quantize(&self, x: &[f32], scale: f32) -> Result<Vec<i32>> {
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct P {
            n: u32,
            scale: f32,
            _p: [u32; 2],
        }
        let (xb, qb) = (
            self.storage(x, false),
            self.storage(&vec![0i32; x.len()], true),
        );
        self.launch(
            "quantize",
            &P {
                n: x.len() as u32,
                scale,
                _p: [0; 2],
            },
            &[&xb, &qb],
            x.len() as u32,
            x.len(),
        )
    }

    /// GPU `conv2d` over one image (mirror: `cpu::kernels::conv2d` with INT32 accumulators).
    pub fn conv2d(&self, x: &[i32], wt: &[i32], bias: &[i32], g: &ConvGeom) -> Result<Vec<i32>> {
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct P([u32; 20]);
        let p = P(conv_params(g, 1));
        let n = g.oc * g.oh * g.ow;
        let bufs = [
            self.storage(x, false),
            self.storage(wt, false),
            self.storage(bias, false),
            self.storage(&vec![0i32; n], true),
        ];
        self.launch(
            "conv2d",
            &p,
            &[&bufs[0], &bufs[1], &bufs[2], &bufs[3]],
            n as u32,
            n,
        )
    }

    /// GPU `conv1x1` over a batch of `n` images (mirror: `cpu::kernels::conv1x1`).
    #[allow(clippy::too_many_arguments)]
    pub fn conv1x1(
        &self,
        x: &[i32],
        wt: &[i32],
        bias: &[i32],
        n: usize,
        ic: usize,
        oc: usize,
        hw: usize,
    ) -> Result<Vec<i32>> {
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct P([u32; 4]);
        let out = n * oc * hw;
        let bufs = [
            self.storage(x, false),
            self.storage(wt, false),
            self.storage(bias, false),
            self.storage(&vec![0i32; out], true),
        ];
        let p = P([n as u32, ic as u32, oc as u32, hw as u32]);
        self.launch(
            "conv1x1",
            &p,
            &[&bufs[0], &bufs[1], &bufs[2], &bufs[3]],
            self.conv1x1_invocations(n, oc, hw),
            out,
        )
    }

    /// GPU `dense` (mirror: `cpu::kernels::dense` with INT32 accumulators).
    pub fn dense(
        &self,
        x: &[i32],
        wt: &[i32],
        bias: &[i32],
        ic: usize,
        oc: usize,
    ) -> Result<Vec<i32>> {
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct P([u32; 4]);
        let rows = x.len() / ic.max(1);
        let n = rows * oc;
        let bufs = [
            self.storage(x, false),
            self.storage(wt, false),
            self.storage(bias, false),
            self.storage(&vec![0i32; n], true),
        ];
        let p = P([rows as u32, ic as u32, oc as u32, 0]);
        self.launch(
            "dense",
            &p,
            &[&bufs[0], &bufs[1], &bufs[2], &bufs[3]],
            self.dense_invocations(rows, oc),
            n,
        )
    }

    /// GPU `requantize` (mirror: `cpu::kernels::requantize`).
    /// GPU `dequantize_acc` (mirror: `cpu::kernels::dequantize_acc`).
    pub fn dequantize_acc(
        &self,
        acc: &[i32],
        m: &[f32],
        per_channel: usize,
        channels: usize,
        channel_last: bool,
    ) -> Result<Vec<f32>> {
        let bufs = [
            self.storage(acc, false),
            self.storage(m, false),
            self.storage(&vec![0f32; acc.len()], true),
        ];
        let p = [
            acc.len() as u32,
            per_channel.max(1) as u32,
            channels.max(1) as u32,
            channel_last as u32,
        ];
        self.launch(
            "dequantize_acc",
            &p,
            &[&bufs[0], &bufs[1], &bufs[2]],
            acc.len() as u32,
            acc.len(),
        )
    }

    /// GPU `clamp_i8` (mirror: `cpu::kernels::clamp_i8`).
    pub fn clamp_i8(&self, x: &[i32], lo: i32, hi: i32) -> Result<Vec<i32>> {
        let bufs = [
            self.storage(x, false),
            self.storage(&vec![0i32; x.len()], true),
        ];
        let p = [x.len() as u32, lo as u32, hi as u32, 0];
        self.launch(
            "clamp_i8",
            &p,
            &[&bufs[0], &bufs[1]],
            x.len() as u32,
            x.len(),
        )
    }

    /// GPU `add_i8` (mirror: `cpu::kernels::add_i8`).
    pub fn add_i8(&self, a: &[i32], b: &[i32], ra: f32, rb: f32) -> Result<Vec<i32>> {
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct P(u32, f32, f32, u32);
        let bufs = [
            self.storage(a, false),
            self.storage(b, false),
            self.storage(&vec![0i32; a.len()], true),
        ];
        self.launch(
            "add_i8",
            &P(a.len() as u32, ra, rb, 0),
            &[&bufs[0], &bufs[1], &bufs[2]],
            a.len() as u32,
            a.len(),
        )
    }

    /// GPU `gap_i8` (mirror: `cpu::kernels::gap_i8`).
    pub fn gap_i8(&self, x: &[i32], hw: usize, k: f32) -> Result<Vec<i32>> {
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct P(u32, u32, f32, u32);
        let planes = x.len() / hw.max(1);
        let bufs = [
            self.storage(x, false),
            self.storage(&vec![0i32; planes], true),
        ];
        self.launch(
            "gap_i8",
            &P(planes as u32, hw as u32, k, 0),
            &[&bufs[0], &bufs[1]],
            planes as u32,
            planes,
        )
    }

    pub fn requantize(
        &self,
        acc: &[i32],
        m: &[f32],
        per_channel: usize,
        channels: usize,
        channel_last: bool,
    ) -> Result<Vec<i32>> {
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct P([u32; 4]);
        let bufs = [
            self.storage(acc, false),
            self.storage(m, false),
            self.storage(&vec![0i32; acc.len()], true),
        ];
        let p = P([
            acc.len() as u32,
            per_channel.max(1) as u32,
            channels.max(1) as u32,
            channel_last as u32,
        ]);
        self.launch(
            "requantize",
            &p,
            &[&bufs[0], &bufs[1], &bufs[2]],
            acc.len() as u32,
            acc.len(),
        )
    }

    /// GPU `maxpool` over one image (mirror: `cpu::kernels::maxpool`).
    /// GPU `conv2d_f32` over `n` images (mirror: `cpu::kernels::conv2d_f32`).
    pub fn conv2d_f32(
        &self,
        x: &[f32],
        wt: &[f32],
        bias: &[f32],
        g: &ConvGeom,
        n: usize,
    ) -> Result<Vec<f32>> {
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct P([u32; 20]);
        let len = n * g.oc * g.oh * g.ow;
        let bufs = [
            self.storage(x, false),
            self.storage(wt, false),
            self.storage(bias, false),
            self.storage(&vec![0f32; len], true),
        ];
        let p = P(conv_params(g, n));
        self.launch(
            "conv2d_f32",
            &p,
            &[&bufs[0], &bufs[1], &bufs[2], &bufs[3]],
            len as u32,
            len,
        )
    }

    /// GPU `conv1x1_f32` over `n` images (mirror: `cpu::kernels::conv1x1_f32`).
    #[allow(clippy::too_many_arguments)]
    pub fn conv1x1_f32(
        &self,
        x: &[f32],
        wt: &[f32],
        bias: &[f32],
        n: usize,
        ic: usize,
        oc: usize,
        hw: usize,
    ) -> Result<Vec<f32>> {
        let len = n * oc * hw;
        let bufs = [
            self.storage(x, false),
            self.storage(wt, false),
            self.storage(bias, false),
            self.storage(&vec![0f32; len], true),
        ];
        let p = [n as u32, ic as u32, oc as u32, hw as u32];
        self.launch(
            "conv1x1_f32",
            &p,
            &[&bufs[0], &bufs[1], &bufs[2], &bufs[3]],
            self.conv1x1_invocations(n, oc, hw),
            len,
        )
    }

    /// GPU `dense_f32` (mirror: `cpu::kernels::dense_f32`).
    pub fn dense_f32(
        &self,
        x: &[f32],
        wt: &[f32],
        bias: &[f32],
        ic: usize,
        oc: usize,
    ) -> Result<Vec<f32>> {
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct P([u32; 4]);
        let rows = x.len() / ic.max(1);
        let len = rows * oc;
        let bufs = [
            self.storage(x, false),
            self.storage(wt, false),
            self.storage(bias, false),
            self.storage(&vec![0f32; len], true),
        ];
        let p = P([rows as u32, ic as u32, oc as u32, 0]);
        self.launch(
            "dense_f32",
            &p,
            &[&bufs[0], &bufs[1], &bufs[2], &bufs[3]],
            self.dense_invocations(rows, oc),
            len,
        )
    }

    /// GPU `fake_quant` (mirror: `cpu::kernels::fake_quant`).
    pub fn fake_quant(&self, x: &[f32], scale: f32) -> Result<Vec<f32>> {
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct P(u32, f32, u32, u32);
        let bufs = [
            self.storage(x, false),
            self.storage(&vec![0f32; x.len()], true),
        ];
        self.launch(
            "fake_quant",
            &P(x.len() as u32, scale, 0, 0),
            &[&bufs[0], &bufs[1]],
            x.len() as u32,
            x.len(),
        )
    }

    /// GPU `clamp_f32` (mirror: `cpu::kernels::clamp_f32`).
    pub fn clamp_f32(&self, x: &[f32], lo: f32, hi: f32) -> Result<Vec<f32>> {
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct P(u32, f32, f32, u32);
        let bufs = [
            self.storage(x, false),
            self.storage(&vec![0f32; x.len()], true),
        ];
        self.launch(
            "clamp_f32",
            &P(x.len() as u32, lo, hi, 0),
            &[&bufs[0], &bufs[1]],
            x.len() as u32,
            x.len(),
        )
    }

    /// GPU `add_f32` (mirror: `cpu::kernels::add_f32`).
    pub fn add_f32(&self, a: &[f32], b: &[f32]) -> Result<Vec<f32>> {
        let bufs = [
            self.storage(a, false),
            self.storage(b, false),
            self.storage(&vec![0f32; a.len()], true),
        ];
        self.launch(
            "add_f32",
            &[a.len() as u32, 0, 0, 0],
            &[&bufs[0], &bufs[1], &bufs[2]],
            a.len() as u32,
            a.len(),
        )
    }

    /// GPU `gap_f32` (mirror: `cpu::kernels::gap_f32`).
    pub fn gap_f32(&self, x: &[f32], hw: usize) -> Result<Vec<f32>> {
        let planes = x.len() / hw.max(1);
        let bufs = [
            self.storage(x, false),
            self.storage(&vec![0f32; planes], true),
        ];
        self.launch(
            "gap_f32",
            &[planes as u32, hw as u32, 0, 0],
            &[&bufs[0], &bufs[1]],
            planes as u32,
            planes,
        )
    }

    /// GPU `maxpool_f32` (mirror: `cpu::kernels::maxpool_f32`).
    pub fn maxpool_f32(&self, x: &[f32], g: &ConvGeom) -> Result<Vec<f32>> {
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct P([u32; 12]);
        let n = g.c * g.oh * g.ow;
        let bufs = [self.storage(x, false), self.storage(&vec![0f32; n], true)];
        self.launch(
            "maxpool_f32",
            &P(maxpool_params(g, 1)),
            &[&bufs[0], &bufs[1]],
            n as u32,
            n,
        )
    }

    /// GPU `lut_i8` (mirror: `cpu::kernels::lut_i8`).
    pub fn lut_i8(&self, x: &[i32], lut: &[i32]) -> Result<Vec<i32>> {
        let bufs = [
            self.storage(x, false),
            self.storage(lut, false),
            self.storage(&vec![0i32; x.len()], true),
        ];
        self.launch(
            "lut_i8",
            &[x.len() as u32, 0, 0, 0],
            &[&bufs[0], &bufs[1], &bufs[2]],
            x.len() as u32,
            x.len(),
        )
    }

    /// GPU `mul_i8` (mirror: `cpu::kernels::mul_i8`).
    pub fn mul_i8(&self, a: &[i32], b: &[i32], b_div: usize, k: f32) -> Result<Vec<i32>> {
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct P(u32, u32, f32, u32);
        let bufs = [
            self.storage(a, false),
            self.storage(b, false),
            self.storage(&vec![0i32; a.len()], true),
        ];
        self.launch(
            "mul_i8",
            &P(a.len() as u32, b_div as u32, k, 0),
            &[&bufs[0], &bufs[1], &bufs[2]],
            a.len() as u32,
            a.len(),
        )
    }

    /// GPU `mul_f32` (mirror: `cpu::kernels::mul_f32`).
    pub fn mul_f32(&self, a: &[f32], b: &[f32], b_div: usize) -> Result<Vec<f32>> {
        let bufs = [
            self.storage(a, false),
            self.storage(b, false),
            self.storage(&vec![0f32; a.len()], true),
        ];
        self.launch(
            "mul_f32",
            &[a.len() as u32, b_div as u32, 0, 0],
            &[&bufs[0], &bufs[1], &bufs[2]],
            a.len() as u32,
            a.len(),
        )
    }

    /// GPU `unary_f32` (mirror: `cpu::kernels::unary_f32`).
    pub fn unary_f32(&self, x: &[f32], op: u32, alpha: f32, beta: f32) -> Result<Vec<f32>> {
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct P(u32, u32, f32, f32);
        let bufs = [
            self.storage(x, false),
            self.storage(&vec![0f32; x.len()], true),
        ];
        self.launch(
            "unary_f32",
            &P(x.len() as u32, op, alpha, beta),
            &[&bufs[0], &bufs[1]],
            x.len() as u32,
            x.len(),
        )
    }

    /// GPU `avgpool_i8` (mirror: `cpu::kernels::avgpool_i8`).
    pub fn avgpool_i8(
        &self,
        x: &[i32],
        g: &ConvGeom,
        include_pad: bool,
        m: &[f32],
    ) -> Result<Vec<i32>> {
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct P([u32; 12]);
        let mut p = maxpool_params(g, 1);
        p[11] = include_pad as u32;
        let n = g.c * g.oh * g.ow;
        let bufs = [
            self.storage(x, false),
            self.storage(m, false),
            self.storage(&vec![0i32; n], true),
        ];
        self.launch(
            "avgpool_i8",
            &P(p),
            &[&bufs[0], &bufs[1], &bufs[2]],
            n as u32,
            n,
        )
    }

    /// GPU `avgpool_f32` (mirror: `cpu::kernels::avgpool_f32`).
    pub fn avgpool_f32(&self, x: &[f32], g: &ConvGeom, include_pad: bool) -> Result<Vec<f32>> {
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct P([u32; 12]);
        let mut p = maxpool_params(g, 1);
        p[11] = include_pad as u32;
        let n = g.c * g.oh * g.ow;
        let bufs = [self.storage(x, false), self.storage(&vec![0f32; n], true)];
        self.launch("avgpool_f32", &P(p), &[&bufs[0], &bufs[1]], n as u32, n)
    }

    pub fn maxpool(&self, x: &[i32], g: &ConvGeom) -> Result<Vec<i32>> {
        #[repr(C)]
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct P([u32; 12]);
        let p = P(maxpool_params(g, 1));
        let n = g.c * g.oh * g.ow;
        let bufs = [self.storage(x, false), self.storage(&vec![0i32; n], true)];
        self.launch("maxpool", &p, &[&bufs[0], &bufs[1]], n as u32, n)
    }
}
