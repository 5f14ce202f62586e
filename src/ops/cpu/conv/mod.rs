//! 2-D convolution on the CPU, batch-parallel, by one of four algorithms ([`plan`]): im2col +
//! GEMM (the reference, and the path for strides above 1); for stride 1, the shifted products of
//! [`shifted`], which need no im2col / col2im, through `gemm` or fused in the register tiles of
//! [`direct`]; or [`winograd`] for 3x3 kernels. The last two where the CPU has a vector level.
//! [`crate::ops::set_conv_algorithm`] can force any path.
//!
//! Per image: `cols` (c·k·k, oh·ow) holds one input patch per column, so
//!   forward   y_n (f, oh·ow) = w (f, c·k·k) · cols_n + b
//!   backward  dw += dy_n · cols_nᵀ,  db += Σ_p dy_n,  dx_n = col2im(wᵀ · dy_n)
//! The backward pass rebuilds `cols` instead of keeping it from the forward pass: im2col is cheap
//! next to the products, and the CNN would otherwise hold ~60 MB of patches per batch.

mod batch;
pub mod direct;
mod im2col;
mod plan;
pub mod shifted;
#[cfg(test)]
mod tests;
pub mod winograd;

pub use batch::{ConvScratch, backward, forward, forward_max_pooled};
#[cfg(test)]
pub use im2col::forward_direct;
pub use im2col::{col2im, im2col};
pub use plan::fuses_max_pool;
