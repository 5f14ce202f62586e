//! The CPU backend: plain Rust loops and `gemm`, parallel over fixed chunks.

pub mod conv;
pub mod elementwise;
pub mod gemm;
pub mod isa;
pub mod multiversion;
pub mod norm;
pub mod optim;
pub mod par;
pub mod pool;
pub mod simd;
pub mod softmax;
