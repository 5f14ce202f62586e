//! The backend boundary: every numeric operation a layer, loss or optimizer performs.
//!
//! Layers call only these functions; none loops over tensor data itself. Each op checks shapes
//! once, then sends its operands to one backend by where the first lives: host slices to the CPU
//! kernels in `cpu`, or (feature "gpu") device buffers to the WGSL kernels in [`gpu`], whose
//! results stay on the device. The ops are grouped by family, one file each, with the GPU side of
//! each op (`mod on_gpu`) beside it; the kernels of both backends are grouped the same way:
//!
//! | family (`ops/`) | ops | kernels (`cpu/`, `gpu/`) |
//! |---|---|---|
//! | `matmul` | [`matmul`], [`add_matmul`] | `gemm` |
//! | `elementwise` | [`fill`], [`add_row_bias`], [`sum_rows`], [`leaky_relu`], [`dropout`], [`mul`], [`flip_width`], ... | `elementwise` |
//! | `conv` | [`conv2d`], [`conv2d_act`], [`conv2d_act_max_pool`], [`conv2d_backward`], [`im2col`], [`col2im`] | `conv` (CPU: a folder: `plan`, `im2col`, `shifted`, `direct`, `winograd`) |
//! | `pool` | [`max_pool2d`], [`avg_pool2d`], [`global_avg_pool`] and their backward passes | `pool` |
//! | `norm` | [`channel_moments`], [`batch_norm`], [`update_running`], [`batch_norm_backward`] | `norm` |
//! | `loss` | [`softmax`], [`softmax_cross_entropy`], [`StepStats`], [`argmax_rows`] | `softmax` |
//! | `optim` | [`sgd_step`], [`adam_step`] | `optim` |
//!
//! [`params`] holds the parameter structs (geometries, optimizer settings, [`ConvAlgorithm`])
//! that the ops and both backends' kernels share; `device` is where work runs ([`submit`],
//! [`run_batches`], the thread pool) and how the GPU side finds its operands' buffers.

pub(crate) mod cpu;
#[cfg(feature = "gpu")]
pub mod gpu;

mod check;
mod conv;
mod device;
mod elementwise;
mod loss;
mod matmul;
mod norm;
mod optim;
pub mod params;
mod pool;

#[cfg(test)]
pub(crate) use conv::test_geoms;
pub use conv::{
    ConvScratch, col2im, conv_algorithm, conv2d, conv2d_act, conv2d_act_backward, conv2d_act_max_pool, conv2d_backward,
    conv2d_fuses_max_pool, im2col, set_conv_algorithm,
};
pub use cpu::norm::NormScratch;
pub use cpu::softmax::argmax_rows;
pub use device::{run_batches, submit};
pub use elementwise::{
    add_row_bias, add_sum_rows, average_into, copy_reshaped, dropout, fill, flip_width, leaky_relu,
    leaky_relu_backward, mul, sum_rows,
};
pub use loss::{StepStats, softmax, softmax_cross_entropy, softmax_cross_entropy_recorded};
pub use matmul::{add_matmul, matmul};
pub use norm::{batch_norm, batch_norm_backward, channel_moments, update_running};
pub use optim::{adam_step, sgd_step};
pub use params::{AdamStep, Conv2dGeom, ConvAlgorithm, Pool2dGeom, SgdStep};
pub use pool::{
    PoolIndices, avg_pool2d, avg_pool2d_backward, global_avg_pool, global_avg_pool_backward, max_pool2d,
    max_pool2d_backward,
};

/// The door below the public API for the binary, the benches and the tests: the instruction-set
/// cap, the thread pool's entry points, and the allocation test's view of `gemm`. Not a stable
/// interface.
#[doc(hidden)]
pub mod internals {
    pub use super::cpu::gemm::in_gemm;
    pub use super::cpu::isa;
    pub use super::cpu::par::{keeps_pool_awake, on_worker, on_worker_awake};
}
