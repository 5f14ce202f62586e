//! Where ops run: submitting recorded GPU work, running batches on the CPU's thread pool, and
//! the operands' device buffers the GPU side of each op takes.

use super::cpu;
#[cfg(feature = "gpu")]
use super::gpu::GpuBuffer;
#[cfg(feature = "gpu")]
use crate::error::Error;
use crate::error::Result;
use crate::tensor::Device;
#[cfg(feature = "gpu")]
use crate::tensor::Tensor;

/// Starts the work recorded so far on `device` without waiting for it (a GPU records kernels and
/// runs them when submitted; the CPU has run them already). A training step submits its work, so
/// the GPU runs it while the next step is recorded.
pub fn submit(device: &Device) -> Result<()> {
    match device {
        Device::Cpu => Ok(()),
        #[cfg(feature = "gpu")]
        Device::Gpu(g) => g.flush(),
        #[cfg(not(feature = "gpu"))]
        Device::Gpu(g) => match *g {},
    }
}

/// Runs `f`, work made of batches of `macs` multiply-adds each (training or evaluation), the way
/// `device` runs it best: on the CPU on a worker of the thread pool (`cpu::par::on_worker_for`);
/// on a GPU as it is (the calling thread only records the work).
pub fn run_batches<R: Send>(device: &Device, macs: usize, f: impl FnOnce() -> R + Send) -> R {
    match device {
        Device::Cpu => cpu::par::on_worker_for(macs, f),
        Device::Gpu(_) => f(),
    }
}

/// The device buffer of an operand that must be on the GPU.
#[cfg(feature = "gpu")]
pub(super) fn on(op: &'static str, t: &Tensor) -> Result<GpuBuffer> {
    t.gpu_buffer()
        .cloned()
        .ok_or_else(|| Error::arg(op, "operands on different devices: one on the GPU, one in host memory"))
}

/// Shapes `t` as an output on the GPU of `like` and returns its buffer.
#[cfg(feature = "gpu")]
pub(super) fn output(t: &mut Tensor, shape: &[usize], like: &GpuBuffer) -> Result<GpuBuffer> {
    t.prepare(shape, &Device::Gpu(like.gpu().clone()))?;
    on("output", t)
}
