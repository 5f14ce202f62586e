//! `Tensor`: an f32 array with a shape, contiguous, row-major, in host memory or on a GPU.
//!
//! Layers never loop over a tensor's elements themselves; they call [`crate::ops`], which checks
//! shapes once and sends each operation to the CPU kernels or the GPU ones, by where its operands
//! live. Buffers are reused across steps: an op shapes its output with [`Tensor::prepare`], which
//! keeps the allocation (host or device) when the size does not grow.

use crate::error::{Error, Result};
use crate::rng::Rng;

#[cfg(feature = "gpu")]
pub mod gpu;

#[cfg(feature = "gpu")]
pub use gpu::{Gpu, GpuBuffer};
#[cfg(not(feature = "gpu"))]
pub use no_gpu::{Gpu, GpuBuffer};

/// Stand-ins when the crate is built without feature "gpu": no value of them can exist, so every
/// device branch is unreachable and compiles to nothing.
#[cfg(not(feature = "gpu"))]
mod no_gpu {
    #[derive(Clone)]
    pub enum Gpu {}
    #[derive(Clone)]
    pub enum GpuBuffer {}
}

/// Where a tensor's values live.
#[derive(Clone, Default)]
pub enum Device {
    #[default]
    Cpu,
    Gpu(Gpu),
}

impl Device {
    pub fn is_cpu(&self) -> bool {
        matches!(self, Device::Cpu)
    }
    pub fn name(&self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Gpu(_) => "gpu",
        }
    }
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone)]
enum Storage {
    Host(Vec<f32>),
    /// At least as many values as the shape holds (a buffer is kept when a batch shrinks).
    Device(GpuBuffer),
}

#[derive(Clone)]
pub struct Tensor {
    shape: Vec<usize>,
    storage: Storage,
}

impl Default for Tensor {
    fn default() -> Self {
        Tensor { shape: Vec::new(), storage: Storage::Host(Vec::new()) }
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.storage {
            Storage::Host(d) => f.debug_struct("Tensor").field("shape", &self.shape).field("data", d).finish(),
            Storage::Device(_) => f.debug_struct("Tensor").field("shape", &self.shape).field("device", &"gpu").finish(),
        }
    }
}

/// Same shape and values; tensors on a GPU are read back to compare.
impl PartialEq for Tensor {
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape
            && match (self.to_vec(), other.to_vec()) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            }
    }
}

impl Tensor {
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor { shape: shape.to_vec(), storage: Storage::Host(vec![0.0; shape.iter().product()]) }
    }

    /// Zeros on `device` (a new device buffer is zeros: WebGPU initialises it).
    pub fn zeros_on(shape: &[usize], device: &Device) -> Result<Self> {
        match device {
            Device::Cpu => Ok(Tensor::zeros(shape)),
            Device::Gpu(g) => {
                Ok(Tensor { shape: shape.to_vec(), storage: Storage::Device(zeroed(g, shape.iter().product())?) })
            }
        }
    }

    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::arg(
                "Tensor::from_vec",
                format!("shape {shape:?} holds {n} values, got {}", data.len()),
            ));
        }
        Ok(Tensor { shape: shape.to_vec(), storage: Storage::Host(data) })
    }

    /// Normal(0, std²) values.
    pub fn randn(shape: &[usize], std: f32, rng: &mut Rng) -> Self {
        let n = shape.iter().product();
        Tensor { shape: shape.to_vec(), storage: Storage::Host((0..n).map(|_| rng.normal() * std).collect()) }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Size of the first dimension (the batch), 0 for a scalar-less empty tensor.
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// Elements per row: the product of all dimensions but the first.
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    pub fn device(&self) -> Device {
        match &self.storage {
            Storage::Host(_) => Device::Cpu,
            #[cfg_attr(not(feature = "gpu"), allow(unreachable_code))]
            Storage::Device(b) => Device::Gpu(gpu_of(b)),
        }
    }

    pub fn is_host(&self) -> bool {
        matches!(self.storage, Storage::Host(_))
    }

    /// The values of a tensor in host memory.
    ///
    /// # Panics
    /// On a GPU tensor: read those with [`Tensor::to_vec`]. Only the CPU kernels and code that
    /// made the tensor on the host call this.
    pub fn data(&self) -> &[f32] {
        match &self.storage {
            Storage::Host(d) => d,
            Storage::Device(_) => panic!("Tensor::data on a GPU tensor (read it with to_vec)"),
        }
    }

    /// See [`Tensor::data`].
    pub fn data_mut(&mut self) -> &mut [f32] {
        match &mut self.storage {
            Storage::Host(d) => d,
            Storage::Device(_) => panic!("Tensor::data_mut on a GPU tensor"),
        }
    }

    /// The host values, if the tensor is in host memory.
    pub fn host(&self) -> Option<&[f32]> {
        match &self.storage {
            Storage::Host(d) => Some(d),
            Storage::Device(_) => None,
        }
    }

    /// The device buffer, if the tensor is on a GPU.
    pub fn gpu_buffer(&self) -> Option<&GpuBuffer> {
        match &self.storage {
            Storage::Host(_) => None,
            Storage::Device(b) => Some(b),
        }
    }

    /// A copy of the values in host memory (read back from a GPU, which waits for its work).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        match &self.storage {
            Storage::Host(d) => Ok(d.clone()),
            Storage::Device(b) => download(b, self.len()),
        }
    }

    /// [`Tensor::to_vec`] without blocking: in a browser a GPU tensor's read-back is awaited;
    /// elsewhere this is [`Tensor::to_vec`], ready at once.
    pub async fn to_vec_async(&self) -> Result<Vec<f32>> {
        match &self.storage {
            Storage::Host(d) => Ok(d.clone()),
            Storage::Device(b) => download_async(b, self.len()).await,
        }
    }

    /// The values, consumed (host tensors give their allocation away).
    pub fn into_vec(self) -> Vec<f32> {
        match self.storage {
            Storage::Host(d) => d,
            Storage::Device(_) => self.to_vec().unwrap_or_default(),
        }
    }

    /// A copy of the tensor on `device`.
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        match device {
            Device::Cpu => Tensor::from_vec(&self.shape, self.to_vec()?),
            Device::Gpu(g) => {
                let host = self.to_vec()?;
                Ok(Tensor { shape: self.shape.clone(), storage: Storage::Device(upload(g, &host)?) })
            }
        }
    }

    /// Moves the tensor to `device` (nothing to do when it is there already).
    pub fn move_to(&mut self, device: &Device) -> Result<()> {
        if !same_device(&self.device(), device) {
            *self = self.to_device(device)?;
        }
        Ok(())
    }

    /// Gives a host tensor a new shape, keeping the allocation where it is large enough; a GPU
    /// tensor comes back to the host. Contents are unspecified afterwards: callers overwrite them.
    pub fn resize(&mut self, shape: &[usize]) {
        if self.shape != shape {
            self.shape.clear();
            self.shape.extend_from_slice(shape);
        }
        let n: usize = shape.iter().product();
        match &mut self.storage {
            Storage::Host(d) => d.resize(n, 0.0),
            Storage::Device(_) => self.storage = Storage::Host(vec![0.0; n]),
        }
    }

    /// Shapes the tensor as an op's output on `device`, keeping its allocation where it is on that
    /// device and large enough. Contents are unspecified afterwards.
    pub fn prepare(&mut self, shape: &[usize], device: &Device) -> Result<()> {
        let n: usize = shape.iter().product();
        match device {
            Device::Cpu => self.resize(shape),
            Device::Gpu(g) => {
                let fits = matches!(&self.storage, Storage::Device(b) if same_gpu(b, g) && buffer_len(b) >= n);
                if !fits {
                    self.storage = Storage::Device(zeroed(g, n)?);
                }
                if self.shape != shape {
                    self.shape.clear();
                    self.shape.extend_from_slice(shape);
                }
            }
        }
        Ok(())
    }

    /// Same values, another shape with the same number of elements.
    pub fn reshape(&mut self, shape: &[usize]) -> Result<()> {
        let n: usize = shape.iter().product();
        if n != self.len() {
            return Err(Error::shape("reshape", &self.shape, shape));
        }
        self.shape.clear();
        self.shape.extend_from_slice(shape);
        Ok(())
    }

    /// Overwrites the values with `src` (as many as the shape holds), uploading to a GPU tensor.
    pub fn copy_from_host(&mut self, src: &[f32]) -> Result<()> {
        if src.len() != self.len() {
            return Err(Error::shape("copy_from_host", &self.shape, &[src.len()]));
        }
        match &mut self.storage {
            Storage::Host(d) => {
                d[..src.len()].copy_from_slice(src);
                Ok(())
            }
            Storage::Device(b) => write(b, src),
        }
    }

    /// Whether every value is finite (a GPU tensor is read back; a failed read counts as not).
    pub fn all_finite(&self) -> bool {
        match &self.storage {
            Storage::Host(d) => d.iter().all(|v| v.is_finite()),
            Storage::Device(_) => self.to_vec().is_ok_and(|d| d.iter().all(|v| v.is_finite())),
        }
    }

    /// [`Tensor::all_finite`], awaiting a GPU tensor's read-back.
    pub async fn all_finite_async(&self) -> bool {
        self.to_vec_async().await.is_ok_and(|d| d.iter().all(|v| v.is_finite()))
    }
}

/// The outcome of `f`, a computation written once as async for the browser, where GPU read-backs
/// are awaited: elsewhere every read-back in it completes as it is made, so one poll finishes it.
/// A read-back still pending (only in a browser, where the blocking calls refuse to read) is an
/// error, never a hang.
pub fn ready<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(r) => r,
        std::task::Poll::Pending => {
            Err(Error::Gpu("this call would wait for the GPU, which a browser cannot: use its async form".into()))
        }
    }
}

/// Whether two devices are the same one.
pub fn same_device(a: &Device, b: &Device) -> bool {
    match (a, b) {
        (Device::Cpu, Device::Cpu) => true,
        (Device::Gpu(x), Device::Gpu(y)) => gpu_eq(x, y),
        _ => false,
    }
}

#[cfg(feature = "gpu")]
mod device_io {
    use super::*;
    pub fn gpu_of(b: &GpuBuffer) -> Gpu {
        b.gpu().clone()
    }
    pub fn download(b: &GpuBuffer, n: usize) -> Result<Vec<f32>> {
        let mut v = b.gpu().download(b)?;
        v.truncate(n);
        Ok(v)
    }
    pub async fn download_async(b: &GpuBuffer, n: usize) -> Result<Vec<f32>> {
        b.gpu().download_range_async(b, 0..n.min(b.len())).await
    }
    pub fn upload(g: &Gpu, data: &[f32]) -> Result<GpuBuffer> {
        g.upload(data)
    }
    pub fn zeroed(g: &Gpu, n: usize) -> Result<GpuBuffer> {
        g.zeros(n)
    }
    pub fn buffer_len(b: &GpuBuffer) -> usize {
        b.len()
    }
    pub fn same_gpu(b: &GpuBuffer, g: &Gpu) -> bool {
        b.gpu().same(g)
    }
    pub fn gpu_eq(a: &Gpu, b: &Gpu) -> bool {
        a.same(b)
    }
    pub fn write(b: &GpuBuffer, src: &[f32]) -> Result<()> {
        b.gpu().write(b, src)
    }
}

#[cfg(not(feature = "gpu"))]
mod device_io {
    use super::*;
    pub fn gpu_of(b: &GpuBuffer) -> Gpu {
        match *b {}
    }
    pub fn download(b: &GpuBuffer, _: usize) -> Result<Vec<f32>> {
        match *b {}
    }
    pub async fn download_async(b: &GpuBuffer, _: usize) -> Result<Vec<f32>> {
        match *b {}
    }
    pub fn upload(g: &Gpu, _: &[f32]) -> Result<GpuBuffer> {
        match *g {}
    }
    pub fn zeroed(g: &Gpu, _: usize) -> Result<GpuBuffer> {
        match *g {}
    }
    pub fn buffer_len(b: &GpuBuffer) -> usize {
        match *b {}
    }
    pub fn same_gpu(b: &GpuBuffer, _: &Gpu) -> bool {
        match *b {}
    }
    pub fn gpu_eq(a: &Gpu, _: &Gpu) -> bool {
        match *a {}
    }
    pub fn write(b: &GpuBuffer, _: &[f32]) -> Result<()> {
        match *b {}
    }
}

use device_io::*;
