//! The GPU context a tensor can live on: adapter choice, buffers, and the recorder that the
//! kernels of [`crate::ops::gpu`] append to. It sits below [`crate::tensor`], whose device
//! storage is a [`GpuBuffer`], and below the kernels.
//!
//! Kernels are recorded, not run one by one: the context keeps one open command encoder with one
//! compute pass, each kernel call adds a dispatch to it and returns, and the work is submitted by
//! [`Gpu::flush`], by a read-back ([`Gpu::download`]) or when the recording grows large. WebGPU
//! makes each dispatch its own usage scope, so a kernel sees the writes of the ones before it.
//!
//! Each dispatch's small parameter block gets its own 256-byte slot of one uniform buffer, written
//! in one `write_buffer` just before the submission that reads it (a single shared block would be
//! seen by every dispatch of the submission with its last value).
//!
//! Errors the device reports asynchronously (validation, out of memory, device lost) are recorded
//! by a handler and returned by the next flush, read-back or dispatch; allocations are checked at
//! once through error scopes.
//!
//! In a browser (wasm32, wgpu's WebGPU backend) nothing may block: the device is opened by
//! [`Gpu::new_async`], values are read back by the `_async` downloads, and allocations and
//! shader compilations are not waited on: their errors reach the same handler and are returned by
//! the next flush, read-back or dispatch. The kernels and the recording are the same.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use crate::error::{Error, Result};

/// Bytes per dispatch's parameter slot (WebGPU's largest uniform offset alignment).
const SLOT: usize = 256;
/// Parameter slots per submission: recording this many dispatches submits them.
const SLOTS: usize = 1024;
/// Threads per workgroup of the one-dimensional kernels.
pub(crate) const GROUP: u32 = 256;

/// In a browser: WebGPU, where a read-back is awaited, never waited for.
const WEB: bool = cfg!(all(target_arch = "wasm32", target_os = "unknown"));

const BLOCKS_ON_WEB: &str = "reading GPU memory back cannot block in a browser: use the async call \
                             (download_async, Tensor::to_vec_async, Trainer::run_epoch_async, evaluate_async)";

/// What `scratchnet devices` lists about an adapter.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    pub max_compute_workgroup_size_x: u32,
    /// A CPU emulation (e.g. Mesa's lavapipe): right results, for testing only.
    pub emulated: bool,
}

/// A GPU device and its queue. Cheap to clone (shared); usable from several threads, whose
/// recorded work is serialised in the order the calls take the recorder's lock.
#[derive(Clone)]
pub struct Gpu {
    inner: Arc<Inner>,
}

struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    summary: AdapterSummary,
    max_groups: u32,
    /// The first asynchronous error (validation, out of memory); sticky.
    fault: Arc<Mutex<Option<String>>>,
    /// Why the device was lost, if it was: reported before `fault`, which it causes.
    lost: Arc<Mutex<Option<String>>>,
    params: wgpu::Buffer,
    kernels: Mutex<HashMap<String, Arc<Kernel>>>,
    rec: Mutex<Recorder>,
    /// Scratch memory for kernels' intermediate results, one per recording thread: a thread's
    /// calls are recorded in order, so its next use sees the previous one finished.
    /// (Buffers, not `GpuBuffer`s: those hold the context, a cycle.)
    scratch: Mutex<HashMap<std::thread::ThreadId, (Arc<wgpu::Buffer>, usize)>>,
}

#[derive(Default)]
struct Recorder {
    // Declared before the encoder: the pass must end (drop) first.
    pass: Option<wgpu::ComputePass<'static>>,
    encoder: Option<wgpu::CommandEncoder>,
    /// The parameter slots used since the last submission, as they will be uploaded.
    params: Vec<u8>,
}

/// A compiled compute pipeline and its bind group layout.
pub(crate) struct Kernel {
    key: String,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// A buffer of `len` 32-bit values on one [`Gpu`]. Clones share the buffer.
#[derive(Clone)]
pub struct GpuBuffer {
    buf: Arc<wgpu::Buffer>,
    len: usize,
    gpu: Gpu,
}

impl GpuBuffer {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
    /// Whether both are the same device buffer.
    pub fn same(&self, other: &GpuBuffer) -> bool {
        Arc::ptr_eq(&self.buf, &other.buf)
    }
}

impl std::fmt::Debug for GpuBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBuffer({} values on {})", self.len, self.gpu.summary().name)
    }
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({})", self.summary().name)
    }
}

/// A buffer bound to a dispatch: read-only or written.
pub(crate) enum Bind<'a> {
    R(&'a GpuBuffer),
    W(&'a GpuBuffer),
}

impl Bind<'_> {
    pub(crate) fn buffer(&self) -> &GpuBuffer {
        match self {
            Bind::R(b) | Bind::W(b) => b,
        }
    }
}

const NO_ADAPTER: &str = "no GPU adapter found: install the GPU vendor's Vulkan driver (Metal on macOS, DX12 on \
                          Windows), or, for a CPU emulation to test with, Debian's `mesa-vulkan-drivers`";

/// One instance per process: creating one probes every driver (and Mesa's prints a line about
/// XDG_RUNTIME_DIR each time when there is no display session).
fn instance() -> &'static wgpu::Instance {
    static INSTANCE: std::sync::OnceLock<wgpu::Instance> = std::sync::OnceLock::new();
    INSTANCE.get_or_init(|| wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env()))
}

/// Preference order: discrete, integrated, virtual, then CPU emulation.
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

fn summarize(a: &wgpu::Adapter) -> AdapterSummary {
    let info = a.get_info();
    let limits = a.limits();
    let driver = match (info.driver.is_empty(), info.driver_info.is_empty()) {
        (false, false) => format!("{} {}", info.driver, info.driver_info),
        (false, true) => info.driver.clone(),
        _ => info.driver_info.clone(),
    };
    AdapterSummary {
        name: info.name.clone(),
        backend: info.backend.to_string(),
        device_type: format!("{:?}", info.device_type),
        driver,
        max_buffer_size: limits.max_buffer_size,
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_compute_workgroup_size_x: limits.max_compute_workgroup_size_x,
        emulated: info.device_type == wgpu::DeviceType::Cpu,
    }
}

fn sorted_adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters.sort_by_key(|a| rank(a.get_info().device_type));
    adapters
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while recording leaves at worst an encoder the device rejects: reported as a fault.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// wgpu's multi-line reports ("Validation Error\n\nCaused by:\n  In a ...") as one line.
fn gpu_err(what: impl std::fmt::Display) -> Error {
    let text = what.to_string();
    let parts: Vec<&str> =
        text.lines().map(|l| l.trim().trim_end_matches(':')).filter(|l| !l.is_empty() && *l != "Caused by").collect();
    Error::Gpu(parts.join(": "))
}

impl Gpu {
    /// The best adapter: discrete > integrated > virtual > CPU emulation. An error, never a
    /// panic, when there is none, saying what to install. In a browser: [`Gpu::new_async`].
    pub fn new() -> Result<Gpu> {
        if WEB {
            return Err(gpu_err("in a browser the GPU is opened by Gpu::new_async"));
        }
        let adapter = sorted_adapters(instance()).into_iter().next().ok_or_else(|| gpu_err(NO_ADAPTER))?;
        let limits = adapter.limits();
        pollster::block_on(Gpu::open(adapter, limits))
    }

    /// [`Gpu::new`] without blocking: in a browser, WebGPU's adapter (the browser's choice, asked
    /// for high performance) with WebGPU's default limits (128 MiB storage buffers, 256 threads
    /// and 16 KiB of memory per workgroup), so that what runs on one browser's GPU runs on every
    /// one's; elsewhere the same as [`Gpu::new`].
    pub async fn new_async() -> Result<Gpu> {
        if !WEB {
            return Gpu::new();
        }
        let adapter = instance()
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|_| {
                gpu_err("the browser offers no WebGPU adapter (WebGPU switched off, or no GPU it supports)")
            })?;
        Gpu::open(adapter, wgpu::Limits::default()).await
    }

    async fn open(adapter: wgpu::Adapter, limits: wgpu::Limits) -> Result<Gpu> {
        let mut summary = summarize(&adapter);
        summary.max_buffer_size = limits.max_buffer_size;
        summary.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size;
        summary.max_compute_workgroup_size_x = limits.max_compute_workgroup_size_x;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("scratchnet"),
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| gpu_err(format!("{}: cannot open the device: {e}", summary.name)))?;
        let fault: Arc<Mutex<Option<String>>> = Arc::default();
        let f = fault.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let msg = match e {
                wgpu::Error::OutOfMemory { .. } => "out of GPU memory".to_string(),
                e => e.to_string(),
            };
            lock(&f).get_or_insert(msg);
        }));
        let lost: Arc<Mutex<Option<String>>> = Arc::default();
        let l = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            lock(&l).get_or_insert(format!("the device was lost ({reason:?}): {msg}"));
        });
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: (SLOT * SLOTS) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Gpu {
            inner: Arc::new(Inner {
                device,
                queue,
                summary,
                max_groups: limits.max_compute_workgroups_per_dimension,
                fault,
                lost,
                params,
                kernels: Mutex::default(),
                rec: Mutex::default(),
                scratch: Mutex::default(),
            }),
        })
    }

    /// Every adapter the installed drivers offer, best first (the one [`Gpu::new`] takes). None
    /// in a browser, which offers one adapter, through [`Gpu::new_async`].
    pub fn adapters() -> Vec<AdapterSummary> {
        if WEB {
            return Vec::new();
        }
        sorted_adapters(instance()).iter().map(summarize).collect()
    }

    pub fn summary(&self) -> &AdapterSummary {
        &self.inner.summary
    }

    /// Whether both handles are the same device.
    pub fn same(&self, other: &Gpu) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The first asynchronous error the device reported, if any.
    fn check(&self) -> Result<()> {
        let fault = lock(&self.inner.fault).clone();
        if fault.is_some() {
            // Runs a pending device-lost callback: the cause, when there is one.
            let _ = self.inner.device.poll(wgpu::PollType::Poll);
        }
        match lock(&self.inner.lost).clone().or(fault) {
            Some(msg) => Err(gpu_err(msg)),
            None => Ok(()),
        }
    }

    /// A device buffer of `len` values (at least 4 bytes: WebGPU has no empty bindings).
    fn alloc(&self, len: usize, mapped: bool, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
        self.check()?;
        let s = &self.inner.summary;
        let bytes = (len.max(1) as u64).saturating_mul(4);
        let limit = s.max_buffer_size.min(s.max_storage_buffer_binding_size);
        if len > u32::MAX as usize || bytes > limit {
            return Err(gpu_err(format!(
                "a buffer of {len} values ({} MiB) exceeds this adapter's limit of {} MiB per buffer ({})",
                bytes >> 20,
                limit >> 20,
                s.name
            )));
        }
        let device = &self.inner.device;
        if WEB {
            // Not waited on: a refusal reaches the error handler, and the next check reports it.
            return Ok(device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: bytes,
                usage,
                mapped_at_creation: mapped,
            }));
        }
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let invalid = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes,
            usage,
            mapped_at_creation: mapped,
        });
        let invalid = pollster::block_on(invalid.pop());
        let oom = pollster::block_on(oom.pop());
        if let Some(e) = oom.or(invalid) {
            return Err(gpu_err(format!("allocating {} MiB: {e}", bytes >> 20)));
        }
        Ok(buf)
    }

    fn storage(&self, len: usize, init: Option<&[u8]>) -> Result<GpuBuffer> {
        use wgpu::BufferUsages as U;
        let buf = self.alloc(len, init.is_some(), U::STORAGE | U::COPY_SRC | U::COPY_DST)?;
        if let Some(bytes) = init {
            fill_mapped(&buf, bytes)?;
        }
        Ok(GpuBuffer { buf: Arc::new(buf), len, gpu: self.clone() })
    }

    pub fn upload(&self, data: &[f32]) -> Result<GpuBuffer> {
        self.storage(data.len(), Some(bytemuck::cast_slice(data)))
    }

    pub fn upload_u32(&self, data: &[u32]) -> Result<GpuBuffer> {
        self.storage(data.len(), Some(bytemuck::cast_slice(data)))
    }

    /// A buffer of `len` zeros (WebGPU zero-initialises new buffers).
    pub fn zeros(&self, len: usize) -> Result<GpuBuffer> {
        self.storage(len, None)
    }

    /// Overwrites the first `data.len()` values of `b`, in order with the recorded kernels: those
    /// recorded before see the old values, those after the new ones.
    pub fn write(&self, b: &GpuBuffer, data: &[f32]) -> Result<()> {
        self.write_bytes(b, bytemuck::cast_slice(data), data.len())
    }

    pub fn write_u32(&self, b: &GpuBuffer, data: &[u32]) -> Result<()> {
        self.write_bytes(b, bytemuck::cast_slice(data), data.len())
    }

    fn write_bytes(&self, b: &GpuBuffer, bytes: &[u8], len: usize) -> Result<()> {
        self.owns(b, "write")?;
        if len > b.len {
            return Err(Error::arg("gpu write", format!("{len} values into a buffer of {}", b.len)));
        }
        if len == 0 {
            return Ok(());
        }
        let staging = self.alloc(len, true, wgpu::BufferUsages::COPY_SRC)?;
        fill_mapped(&staging, bytes)?;
        let mut rec = lock(&self.inner.rec);
        self.end_pass(&mut rec).copy_buffer_to_buffer(&staging, 0, &b.buf, 0, bytes.len() as u64);
        Ok(())
    }

    /// Submits what was recorded.
    pub fn flush(&self) -> Result<()> {
        let mut rec = lock(&self.inner.rec);
        self.submit(&mut rec);
        drop(rec);
        self.check()
    }

    /// Submits pending work and reads the whole buffer back.
    pub fn download(&self, b: &GpuBuffer) -> Result<Vec<f32>> {
        self.download_range(b, 0..b.len)
    }

    pub fn download_u32(&self, b: &GpuBuffer) -> Result<Vec<u32>> {
        Ok(self.read_back(b, 0..b.len)?.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// Reads back values `range` of `b` (a tensor may use the start of a larger buffer).
    pub fn download_range(&self, b: &GpuBuffer, range: std::ops::Range<usize>) -> Result<Vec<f32>> {
        Ok(self.read_back(b, range)?.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// [`Gpu::download`] without blocking: in a browser the read-back is awaited (the page's
    /// event loop runs while the GPU works); elsewhere it is [`Gpu::download`], ready at once.
    pub async fn download_async(&self, b: &GpuBuffer) -> Result<Vec<f32>> {
        self.download_range_async(b, 0..b.len).await
    }

    pub async fn download_u32_async(&self, b: &GpuBuffer) -> Result<Vec<u32>> {
        let bytes = self.read_back_async(b, 0..b.len).await?;
        Ok(bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    pub async fn download_range_async(&self, b: &GpuBuffer, range: std::ops::Range<usize>) -> Result<Vec<f32>> {
        let bytes = self.read_back_async(b, range).await?;
        Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    fn read_back(&self, b: &GpuBuffer, range: std::ops::Range<usize>) -> Result<Vec<u8>> {
        if WEB {
            return Err(gpu_err(BLOCKS_ON_WEB));
        }
        let Some((staging, mapped)) = self.start_read_back(b, range)? else {
            return Ok(Vec::new());
        };
        self.inner.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| gpu_err(format!("waiting: {e}")))?;
        self.check()?;
        finish_read_back(&staging, mapped.wait(&self.inner.device)?)
    }

    async fn read_back_async(&self, b: &GpuBuffer, range: std::ops::Range<usize>) -> Result<Vec<u8>> {
        if !WEB {
            return self.read_back(b, range);
        }
        let Some((staging, mapped)) = self.start_read_back(b, range)? else {
            return Ok(Vec::new());
        };
        let result = mapped.await;
        // A lost device rejects the mapping: its cause first.
        self.check()?;
        finish_read_back(&staging, result)
    }

    /// Copies values `range` of `b` into a new mappable buffer after the recorded work, submits,
    /// and asks for the mapping; None for an empty range (the work is submitted all the same).
    fn start_read_back(&self, b: &GpuBuffer, range: std::ops::Range<usize>) -> Result<Option<(wgpu::Buffer, Mapped)>> {
        self.owns(b, "download")?;
        if range.start > range.end || range.end > b.len {
            return Err(Error::arg("gpu download", format!("values {range:?} of a buffer of {}", b.len)));
        }
        let len = range.end - range.start;
        if len == 0 {
            self.flush()?;
            return Ok(None);
        }
        let staging = self.alloc(len, false, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST)?;
        let mut rec = lock(&self.inner.rec);
        self.end_pass(&mut rec).copy_buffer_to_buffer(&b.buf, 4 * range.start as u64, &staging, 0, 4 * len as u64);
        self.submit(&mut rec);
        drop(rec);
        self.check()?;
        let mapped = Mapped::default();
        let slot = mapped.0.clone();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let mut s = lock(&slot.0);
            s.value = Some(r);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
            slot.1.notify_all();
        });
        Ok(Some((staging, mapped)))
    }

    fn owns(&self, b: &GpuBuffer, op: &'static str) -> Result<()> {
        if !self.same(&b.gpu) {
            return Err(Error::arg(op, "a buffer of another GPU context"));
        }
        Ok(())
    }

    /// The encoder, with no pass open (for copies).
    fn end_pass<'r>(&self, rec: &'r mut Recorder) -> &'r mut wgpu::CommandEncoder {
        rec.pass = None;
        rec.encoder.get_or_insert_with(|| self.inner.device.create_command_encoder(&Default::default()))
    }

    fn submit(&self, rec: &mut Recorder) {
        rec.pass = None;
        if let Some(encoder) = rec.encoder.take() {
            if !rec.params.is_empty() {
                self.inner.queue.write_buffer(&self.inner.params, 0, &rec.params);
                rec.params.clear();
            }
            self.inner.queue.submit([encoder.finish()]);
        }
    }

    /// Scratch memory of at least `len` values for this thread's next kernels (see `Inner::scratch`).
    pub(crate) fn scratch(&self, len: usize) -> Result<GpuBuffer> {
        let id = std::thread::current().id();
        if let Some((buf, n)) = lock(&self.inner.scratch).get(&id).filter(|(_, n)| *n >= len) {
            return Ok(GpuBuffer { buf: buf.clone(), len: *n, gpu: self.clone() });
        }
        let b = self.zeros(len.next_power_of_two())?;
        lock(&self.inner.scratch).insert(id, (b.buf.clone(), b.len));
        Ok(b)
    }

    /// Entry point `entry` of the module `module` (the name of its source and specialisation),
    /// compiled from `source()` on first use.
    pub(crate) fn kernel(&self, module: &str, entry: &str, source: impl FnOnce() -> String) -> Result<Arc<Kernel>> {
        let key = format!("{module}:{entry}");
        if let Some(k) = lock(&self.inner.kernels).get(&key) {
            return Ok(k.clone());
        }
        let device = &self.inner.device;
        // In a browser a compilation error is not waited on: it reaches the error handler, and
        // the next check reports it.
        let scope = (!WEB).then(|| device.push_error_scope(wgpu::ErrorFilter::Validation));
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&key),
            source: wgpu::ShaderSource::Wgsl(source().into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&key),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        if let Some(e) = scope.and_then(|scope| pollster::block_on(scope.pop())) {
            return Err(gpu_err(format!("kernel {key}: {e}")));
        }
        let layout = pipeline.get_bind_group_layout(0);
        let k = Arc::new(Kernel { key: key.clone(), pipeline, layout });
        lock(&self.inner.kernels).insert(key, k.clone());
        Ok(k)
    }

    /// Workgroup counts (x, y) for `groups` workgroups in a row, folded into two dimensions;
    /// shaders read their linear index as `wid.y * nwg.x + wid.x` and skip those past the end.
    pub(crate) fn grid(&self, groups: u64) -> Result<[u32; 3]> {
        let max = self.inner.max_groups.max(1) as u64;
        let x = groups.min(max);
        let y = groups.div_ceil(x.max(1));
        if y > max {
            return Err(gpu_err(format!("{groups} workgroups exceed this adapter's limit of {max}²")));
        }
        Ok([x as u32, y as u32, 1])
    }

    /// Records one dispatch of `kernel` with parameter block `params` (binding 0) and buffers
    /// `binds` at the given bindings.
    pub(crate) fn dispatch(
        &self,
        kernel: &Kernel,
        params: &[u32],
        binds: &[(u32, Bind)],
        groups: [u32; 3],
    ) -> Result<()> {
        self.check()?;
        for (i, (_, b)) in binds.iter().enumerate() {
            self.owns(b.buffer(), "gpu dispatch")?;
            if let Bind::W(w) = b
                && binds.iter().enumerate().any(|(j, (_, o))| j != i && o.buffer().same(w))
            {
                return Err(Error::arg("gpu dispatch", "an output is also bound as another operand"));
            }
        }
        assert!(params.len() * 4 <= SLOT, "parameter block too large");
        if groups.contains(&0) {
            return Ok(());
        }
        let mut rec = lock(&self.inner.rec);
        if rec.params.len() == SLOT * SLOTS {
            self.submit(&mut rec);
        }
        let offset = rec.params.len();
        rec.params.extend_from_slice(bytemuck::cast_slice(params));
        rec.params.resize(offset + SLOT, 0);
        let device = &self.inner.device;
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.inner.params,
                offset: offset as u64,
                size: NonZeroU64::new(SLOT as u64),
            }),
        }];
        entries.extend(
            binds
                .iter()
                .map(|(i, b)| wgpu::BindGroupEntry { binding: *i, resource: b.buffer().buf.as_entire_binding() }),
        );
        let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&kernel.key),
            layout: &kernel.layout,
            entries: &entries,
        });
        let rec = &mut *rec;
        let pass = match &mut rec.pass {
            Some(p) => p,
            None => {
                let encoder = rec.encoder.get_or_insert_with(|| device.create_command_encoder(&Default::default()));
                rec.pass.insert(encoder.begin_compute_pass(&Default::default()).forget_lifetime())
            }
        };
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        Ok(())
    }
}

/// A mapping's outcome, set by its callback; awaited in a browser, read after a blocking poll
/// elsewhere.
#[derive(Default)]
struct Mapped(Arc<(Mutex<MapSlot>, std::sync::Condvar)>);

#[derive(Default)]
struct MapSlot {
    value: Option<std::result::Result<(), wgpu::BufferAsyncError>>,
    waker: Option<Waker>,
}

impl Future for Mapped {
    type Output = std::result::Result<(), wgpu::BufferAsyncError>;
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let mut s = lock(&self.0.0);
        match s.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Mapped {
    /// Blocks until the mapping's callback has run. After a finished wait the callback may still
    /// be running on another thread whose own poll collected it.
    fn wait(&self, device: &wgpu::Device) -> Result<std::result::Result<(), wgpu::BufferAsyncError>> {
        let (slot, ready) = &*self.0;
        let start = std::time::Instant::now();
        let mut s = lock(slot);
        loop {
            if let Some(v) = s.value.take() {
                return Ok(v);
            }
            if start.elapsed() > std::time::Duration::from_secs(60) {
                return Err(gpu_err("the read-back was not answered within 60 s"));
            }
            s = ready.wait_timeout(s, std::time::Duration::from_millis(10)).unwrap_or_else(|e| e.into_inner()).0;
            if s.value.is_none() {
                drop(s);
                let _ = device.poll(wgpu::PollType::Poll);
                s = lock(slot);
            }
        }
    }
}

/// The mapped bytes of `staging`, once its mapping gave `result`.
fn finish_read_back(
    staging: &wgpu::Buffer,
    result: std::result::Result<(), wgpu::BufferAsyncError>,
) -> Result<Vec<u8>> {
    result.map_err(|e| gpu_err(format!("reading back: {e}")))?;
    let bytes = staging.slice(..).get_mapped_range().map_err(|e| gpu_err(format!("reading back: {e}")))?.to_vec();
    staging.unmap();
    Ok(bytes)
}

/// Copies `bytes` into a buffer created mapped, and unmaps it.
fn fill_mapped(buf: &wgpu::Buffer, bytes: &[u8]) -> Result<()> {
    {
        let mut view =
            buf.slice(..).get_mapped_range_mut().map_err(|e| gpu_err(format!("writing to a new buffer: {e}")))?;
        view.slice(..bytes.len()).copy_from_slice(bytes);
    }
    buf.unmap();
    Ok(())
}

/// Parameters as the 32-bit words of a WGSL struct of `u32` and `f32` fields.
pub(crate) fn f(v: f32) -> u32 {
    v.to_bits()
}

/// A count as a WGSL `u32`; sizes were checked against the buffers, which hold fewer than 2³²
/// values.
pub(crate) fn u(v: usize) -> u32 {
    v as u32
}

/// Checks that `b` holds at least `need` values.
pub(crate) fn fits(op: &'static str, what: &str, b: &GpuBuffer, need: usize) -> Result<()> {
    if need > b.len {
        return Err(Error::arg(op, format!("{what} needs {need} values, its buffer holds {}", b.len)));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) fn fault(gpu: &Gpu) -> Option<String> {
    lock(&gpu.inner.fault).clone()
}

/// Destroys the device, as a driver reset would lose it.
#[cfg(test)]
pub(crate) fn lose(gpu: &Gpu) {
    gpu.inner.device.destroy();
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Gpu>();
    send_sync::<GpuBuffer>();
};
