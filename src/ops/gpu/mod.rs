//! The GPU backend: wgpu compute shaders (WGSL) through Vulkan, Metal or DX12.
//!
//! [`Gpu`] holds the device; [`GpuBuffer`]s live on it (both in [`crate::tensor::gpu`], below the
//! tensors that use them, and re-exported here). Kernels are free functions with the
//! semantics of the CPU kernels in `ops::cpu`; they record work and return at once, and
//! [`Gpu::download`] (or [`Gpu::flush`]) submits it. Lengths are explicit, since a tensor may use
//! the start of a larger buffer. An output must not also be passed as an input of the same call.
//!
//! ```no_run
//! use scratchnet::ops::gpu::{self, Gpu};
//! # fn main() -> scratchnet::Result<()> {
//! let gpu = Gpu::new()?;
//! let x = gpu.upload(&[-1.0, 2.0])?;
//! let y = gpu.zeros(2)?;
//! gpu::leaky_relu(&x, 2, 0.1, &y)?;
//! assert_eq!(gpu.download(&y)?, [-0.1, 2.0]);
//! # Ok(())
//! # }
//! ```

mod conv;
mod elementwise;
mod gemm;
mod norm;
mod optim;
mod pool;
mod softmax;

pub use crate::tensor::gpu::{AdapterSummary, Gpu, GpuBuffer};
pub use conv::{conv2d, conv2d_backward};
pub use elementwise::{
    add_row_bias, add_sum_rows, average_into, axpy, copy, dropout, fill, flip_width, leaky_relu, leaky_relu_backward,
    mul, sum_rows,
};
pub use gemm::{GpuMat, matmul};
pub use norm::{NormDims, batch_norm, batch_norm_backward, channel_moments, update_running};
pub use optim::{adam_step, sgd_step};
pub use pool::{
    avg_pool2d, avg_pool2d_backward, global_avg_pool, global_avg_pool_backward, max_pool2d, max_pool2d_backward,
};
pub use softmax::{argmax_rows, softmax, softmax_cross_entropy};

#[cfg(test)]
mod test_skip;
#[cfg(test)]
mod tests;
