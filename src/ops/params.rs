//! The ops' parameter structs: geometries and optimizer settings, shared by the ops and both
//! backends' kernels (a leaf: it depends on nothing in the crate).

/// Geometry of a 2-D convolution over one image (c, h, w) with f filters of k x k.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub f: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Conv2dGeom {
    pub fn oh(&self) -> usize {
        (self.h + 2 * self.pad - self.k) / self.stride + 1
    }
    pub fn ow(&self) -> usize {
        (self.w + 2 * self.pad - self.k) / self.stride + 1
    }
    /// Rows of the im2col matrix: c·k·k.
    pub fn patch_len(&self) -> usize {
        self.c * self.k * self.k
    }
    pub fn out_plane(&self) -> usize {
        self.oh() * self.ow()
    }
    pub fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }
    pub fn out_len(&self) -> usize {
        self.f * self.out_plane()
    }
    /// Input row read by output row `oy` through kernel row `ki`, or None inside the padding.
    pub(crate) fn in_row(&self, oy: usize, ki: usize) -> Option<usize> {
        (oy * self.stride + ki).checked_sub(self.pad).filter(|&iy| iy < self.h)
    }
}

/// Geometry of max pooling over planes of h x w, window k, stride s (no padding, floor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dGeom {
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
}

impl Pool2dGeom {
    pub fn oh(&self) -> usize {
        (self.h - self.k) / self.stride + 1
    }
    pub fn ow(&self) -> usize {
        (self.w - self.k) / self.stride + 1
    }
}

/// One SGD update's settings.
#[derive(Clone, Copy, Debug)]
pub struct SgdStep {
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
}

/// One Adam update's settings; `step` counts from 1.
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub decoupled: bool,
    pub step: u64,
}

/// How convolutions are computed. `Auto` (the default), for stride 1 where the CPU has a vector
/// level (AVX-512, AVX2 + FMA, NEON): Winograd for 3x3 kernels (the forward pass everywhere, the
/// gradients too where vectors are narrower than AVX-512's, see `cpu::conv::winograd`), the direct
/// kernels otherwise; through `gemm` at the scalar level; im2col for other strides. `Winograd`:
/// Winograd for the forward pass and both gradients of 3x3 kernels at any vector level;
/// `WinogradForward`: for the forward pass only (what `Auto` runs on AVX-512). The forward pass
/// takes F(4x4, 3x3) where its tiles fit the output, else F(2x2, 3x3); `Winograd2x2`: as `Auto`,
/// with F(2x2, 3x3) for every forward pass. `Direct`: the direct
/// kernels only. `Shifted`: shifted products through `gemm` only. `Im2col`: the original's im2col
/// / col2im everywhere (the reference).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgorithm {
    Auto,
    Winograd,
    WinogradForward,
    Winograd2x2,
    Direct,
    Shifted,
    Im2col,
}

impl ConvAlgorithm {
    /// Every algorithm, `Auto` first and the reference (`Im2col`) last: what tests and benchmarks
    /// run side by side.
    pub const ALL: [ConvAlgorithm; 7] = [
        ConvAlgorithm::Auto,
        ConvAlgorithm::Winograd,
        ConvAlgorithm::WinogradForward,
        ConvAlgorithm::Winograd2x2,
        ConvAlgorithm::Direct,
        ConvAlgorithm::Shifted,
        ConvAlgorithm::Im2col,
    ];
}
