//! The backend boundary: every numeric operation a layer, loss or optimizer performs.
//!
//! Layers call only these functions; none loops over tensor data itself. Each function checks
//! shapes, then hands raw slices to the CPU kernels in [`cpu`]. A GPU backend plugs in here, the
//! way CuPy replaced NumPy in the original: give [`Tensor`] a device storage and dispatch each
//! function on it (see docs/ARCHITECTURE.md); the layers do not change.

pub mod cpu;
#[cfg(feature = "gpu")]
pub mod gpu;
#[cfg(feature = "gpu")]
mod on_gpu;

use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::{Device, Tensor};
use cpu::gemm::Mat;

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

pub use cpu::par::{keeps_pool_awake, on_worker, on_worker_awake};
pub use cpu::softmax::argmax_rows;

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
/// `device` runs it best: on the CPU on a worker of the thread pool ([`cpu::par::on_worker_for`]);
/// on a GPU as it is (the calling thread only records the work).
pub fn run_batches<R: Send>(device: &Device, macs: usize, f: impl FnOnce() -> R + Send) -> R {
    match device {
        Device::Cpu => cpu::par::on_worker_for(macs, f),
        Device::Gpu(_) => f(),
    }
}

/// Per-layer scratch memory for convolution, reused across steps.
pub type ConvScratch = cpu::conv::ConvScratch;

/// How convolutions are computed. `Auto` (the default), for stride 1 where the CPU has a vector
/// level (AVX-512, AVX2 + FMA, NEON): Winograd for 3x3 kernels (the forward pass everywhere, the
/// gradients too where vectors are narrower than AVX-512's, see `cpu::winograd`), the direct
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

static CONV_ALGORITHM: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Sets the convolution algorithm for the whole process.
pub fn set_conv_algorithm(a: ConvAlgorithm) {
    let i = ConvAlgorithm::ALL.iter().position(|&x| x == a).unwrap_or(0);
    CONV_ALGORITHM.store(i as u8, std::sync::atomic::Ordering::Relaxed);
}

pub fn conv_algorithm() -> ConvAlgorithm {
    ConvAlgorithm::ALL[CONV_ALGORITHM.load(std::sync::atomic::Ordering::Relaxed) as usize]
}

fn same_len(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.len() != b.len() {
        return Err(Error::shape(op, a.shape(), b.shape()));
    }
    Ok(())
}

/// Treats a tensor as a matrix (first dimension, product of the rest), transposed if asked.
fn as_mat(t: &Tensor, trans: bool) -> Mat<'_> {
    let m = Mat::new(t.data(), t.rows(), t.row_len());
    if trans { m.t() } else { m }
}

/// c = op(a)·op(b), operands read as matrices (rows = first dimension); `c` is resized to (m, n).
pub fn matmul(a: &Tensor, trans_a: bool, b: &Tensor, trans_b: bool, c: &mut Tensor) -> Result<()> {
    #[cfg(feature = "gpu")]
    if !a.is_host() {
        let (m, k) = if trans_a { (a.row_len(), a.rows()) } else { (a.rows(), a.row_len()) };
        let (kb, n) = if trans_b { (b.row_len(), b.rows()) } else { (b.rows(), b.row_len()) };
        if k != kb {
            return Err(Error::shape("matmul", &[m, k], &[kb, n]));
        }
        return on_gpu::matmul(a, trans_a, b, trans_b, c, [m, n]);
    }
    let (a, b) = (as_mat(a, trans_a), as_mat(b, trans_b));
    if a.cols != b.rows {
        return Err(Error::shape("matmul", &[a.rows, a.cols], &[b.rows, b.cols]));
    }
    c.resize(&[a.rows, b.cols]);
    cpu::gemm::gemm_par(a, b, c.data_mut(), false, 1.0);
    Ok(())
}

/// c += s·op(a)·op(b) (c already shaped (m, n)): a scaled product added in place, e.g. an SGD
/// step θ -= lr·∇θ applied straight from the factors of the gradient.
pub fn add_matmul(a: &Tensor, trans_a: bool, b: &Tensor, trans_b: bool, c: &mut Tensor, s: f32) -> Result<()> {
    #[cfg(feature = "gpu")]
    if !a.is_host() {
        let (m, k) = if trans_a { (a.row_len(), a.rows()) } else { (a.rows(), a.row_len()) };
        let (kb, n) = if trans_b { (b.row_len(), b.rows()) } else { (b.rows(), b.row_len()) };
        if k != kb || c.rows() != m || c.row_len() != n {
            return Err(Error::shape("add_matmul", &[m, k, kb, n], c.shape()));
        }
        return on_gpu::add_matmul(a, trans_a, b, trans_b, c, s);
    }
    let (a, b) = (as_mat(a, trans_a), as_mat(b, trans_b));
    if a.cols != b.rows || c.rows() != a.rows || c.row_len() != b.cols {
        return Err(Error::shape("add_matmul", &[a.rows, a.cols, b.rows, b.cols], c.shape()));
    }
    cpu::gemm::gemm_par(a, b, c.data_mut(), true, s);
    Ok(())
}

/// y (n, out) += b (out) on every row.
pub fn add_row_bias(y: &mut Tensor, b: &Tensor) -> Result<()> {
    if y.row_len() != b.len() {
        return Err(Error::shape("add_row_bias", y.shape(), b.shape()));
    }
    #[cfg(feature = "gpu")]
    if !y.is_host() {
        return on_gpu::add_row_bias(y, b);
    }
    cpu::elementwise::add_row_bias(y.data_mut(), b.data());
    Ok(())
}

/// db (out) += s·Σ_n dy (n, out).
pub fn add_sum_rows(dy: &Tensor, s: f32, db: &mut Tensor) -> Result<()> {
    if dy.row_len() != db.len() {
        return Err(Error::shape("add_sum_rows", dy.shape(), db.shape()));
    }
    #[cfg(feature = "gpu")]
    if !dy.is_host() {
        return on_gpu::add_sum_rows(dy, s, db);
    }
    cpu::elementwise::add_sum_rows(dy.data(), s, db.data_mut());
    Ok(())
}

/// db (out) = Σ_n dy (n, out).
pub fn sum_rows(dy: &Tensor, db: &mut Tensor) -> Result<()> {
    if dy.row_len() != db.len() {
        return Err(Error::shape("sum_rows", dy.shape(), db.shape()));
    }
    #[cfg(feature = "gpu")]
    if !dy.is_host() {
        return on_gpu::sum_rows(dy, db);
    }
    cpu::elementwise::sum_rows(dy.data(), db.data_mut());
    Ok(())
}

/// Sets every value of `x` to `v`.
pub fn fill(x: &mut Tensor, v: f32) -> Result<()> {
    #[cfg(feature = "gpu")]
    if let Some(b) = x.gpu_buffer() {
        return gpu::fill(b, x.len(), v);
    }
    x.data_mut().fill(v);
    Ok(())
}

/// y = x, reshaped to `shape` (same element count).
pub fn copy_reshaped(x: &Tensor, shape: &[usize], y: &mut Tensor) -> Result<()> {
    if shape.iter().product::<usize>() != x.len() {
        return Err(Error::shape("copy_reshaped", x.shape(), shape));
    }
    #[cfg(feature = "gpu")]
    if !x.is_host() {
        return on_gpu::copy_reshaped(x, shape, y);
    }
    y.resize(shape);
    y.data_mut().copy_from_slice(x.data());
    Ok(())
}

pub fn leaky_relu(x: &Tensor, slope: f32, y: &mut Tensor) -> Result<()> {
    #[cfg(feature = "gpu")]
    if !x.is_host() {
        return on_gpu::leaky_relu(x, slope, y);
    }
    y.resize(x.shape());
    cpu::elementwise::leaky_relu(x.data(), slope, y.data_mut());
    Ok(())
}

/// dL/dx of y = leaky_relu(x), from the output y: dy where y > 0, slope·dy elsewhere.
pub fn leaky_relu_backward(y: &Tensor, dy: &Tensor, slope: f32, dx: &mut Tensor) -> Result<()> {
    same_len("leaky_relu_backward", y, dy)?;
    #[cfg(feature = "gpu")]
    if !y.is_host() {
        return on_gpu::leaky_relu_backward(y, dy, slope, dx);
    }
    dx.resize(y.shape());
    cpu::elementwise::leaky_relu_backward(y.data(), dy.data(), slope, dx.data_mut());
    Ok(())
}

/// Inverted dropout in training: draws `mask` (0 or 1/(1-p)) and sets y = x·mask.
pub fn dropout(x: &Tensor, p: f32, rng: &mut Rng, mask: &mut Tensor, y: &mut Tensor) -> Result<()> {
    #[cfg(feature = "gpu")]
    if !x.is_host() {
        return on_gpu::dropout(x, p, rng, mask, y);
    }
    mask.resize(x.shape());
    y.resize(x.shape());
    cpu::elementwise::dropout(x.data(), p, rng, mask.data_mut(), y.data_mut());
    Ok(())
}

/// out = a·b element-wise (dropout's backward: dx = dy·mask).
pub fn mul(a: &Tensor, b: &Tensor, out: &mut Tensor) -> Result<()> {
    same_len("mul", a, b)?;
    #[cfg(feature = "gpu")]
    if !a.is_host() {
        return on_gpu::mul(a, b, out);
    }
    out.resize(a.shape());
    cpu::elementwise::mul(a.data(), b.data(), out.data_mut());
    Ok(())
}

fn conv_check(x: &Tensor, w: &Tensor, g: &Conv2dGeom) -> Result<usize> {
    if x.shape().len() != 4 || x.shape()[1..] != [g.c, g.h, g.w] {
        return Err(Error::shape("conv2d input", x.shape(), &[0, g.c, g.h, g.w]));
    }
    if w.shape() != [g.f, g.c, g.k, g.k] {
        return Err(Error::shape("conv2d weight", w.shape(), &[g.f, g.c, g.k, g.k]));
    }
    Ok(x.rows())
}

/// [`conv_check`] and the bias's length, for the forward passes.
fn conv_forward_check(x: &Tensor, w: &Tensor, b: &Tensor, g: &Conv2dGeom) -> Result<usize> {
    let n = conv_check(x, w, g)?;
    if b.len() != g.f {
        return Err(Error::shape("conv2d bias", b.shape(), &[g.f]));
    }
    Ok(n)
}

/// y (n, f, oh, ow) = conv2d(x (n, c, h, w), w (f, c, k, k)) + b (f), by im2col + GEMM.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    g: &Conv2dGeom,
    scratch: &mut ConvScratch,
    y: &mut Tensor,
) -> Result<()> {
    conv2d_act(x, w, b, g, None, scratch, y)
}

/// [`conv2d`] followed by leaky ReLU with `slope` when given, in one pass over each image's
/// output (fused: the activation costs no extra trip through memory).
pub fn conv2d_act(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    g: &Conv2dGeom,
    slope: Option<f32>,
    scratch: &mut ConvScratch,
    y: &mut Tensor,
) -> Result<()> {
    let n = conv_forward_check(x, w, b, g)?;
    #[cfg(feature = "gpu")]
    if !x.is_host() {
        let _ = scratch;
        return on_gpu::conv2d_act(x, w, b, g, slope, y, &[n, g.f, g.oh(), g.ow()]);
    }
    y.resize(&[n, g.f, g.oh(), g.ow()]);
    cpu::conv::forward(x.data(), w.data(), b.data(), g, n, conv_algorithm(), slope, scratch, y.data_mut());
    Ok(())
}

/// Whether [`conv2d_act_max_pool`] runs for x: on the CPU, where the convolution takes its
/// Winograd path, for a 2x2 max-pool with stride 2 over the convolution's output.
pub fn conv2d_fuses_max_pool(x: &Tensor, g: &Conv2dGeom, pool: &Pool2dGeom) -> bool {
    x.is_host()
        && (pool.k, pool.stride, pool.h, pool.w) == (2, 2, g.oh(), g.ow())
        && cpu::conv::fuses_max_pool(g, conv_algorithm())
}

/// [`conv2d_act`] followed by the max-pool `pool`, y (n, f, oh / 2, ow / 2), pooled as each
/// image's output is computed (the same values; no indices are kept, so for inference). Needs
/// [`conv2d_fuses_max_pool`].
#[allow(clippy::too_many_arguments)]
pub fn conv2d_act_max_pool(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    g: &Conv2dGeom,
    slope: Option<f32>,
    pool: &Pool2dGeom,
    scratch: &mut ConvScratch,
    y: &mut Tensor,
) -> Result<()> {
    let n = conv_forward_check(x, w, b, g)?;
    if !conv2d_fuses_max_pool(x, g, pool) {
        return Err(Error::arg("conv2d_act_max_pool", "this convolution and pooling do not fuse here"));
    }
    y.resize(&[n, g.f, pool.oh(), pool.ow()]);
    cpu::conv::forward_max_pooled(x.data(), w.data(), b.data(), g, n, conv_algorithm(), slope, scratch, y.data_mut());
    Ok(())
}

/// Writes dL/dw, dL/db to `dw`, `db` and dL/dx to `dx` when given (the first layer skips it).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward(
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    g: &Conv2dGeom,
    scratch: &mut ConvScratch,
    dw: &mut Tensor,
    db: &mut Tensor,
    dx: Option<&mut Tensor>,
) -> Result<()> {
    conv2d_act_backward(x, w, None, dy, g, scratch, dw, db, dx)
}

/// Backward of [`conv2d_act`]: with `act` = (slope, y), dy is the gradient of the activated
/// output y, turned into the convolution's output gradient image by image.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_act_backward(
    x: &Tensor,
    w: &Tensor,
    act: Option<(f32, &Tensor)>,
    dy: &Tensor,
    g: &Conv2dGeom,
    scratch: &mut ConvScratch,
    dw: &mut Tensor,
    db: &mut Tensor,
    dx: Option<&mut Tensor>,
) -> Result<()> {
    let n = conv_check(x, w, g)?;
    if dy.shape() != [n, g.f, g.oh(), g.ow()] {
        return Err(Error::shape("conv2d_backward dy", dy.shape(), &[n, g.f, g.oh(), g.ow()]));
    }
    if let Some((_, y)) = act {
        same_len("conv2d_backward y", y, dy)?;
    }
    if dw.shape() != w.shape() || db.len() != g.f {
        return Err(Error::shape("conv2d_backward dw", dw.shape(), w.shape()));
    }
    #[cfg(feature = "gpu")]
    if !x.is_host() {
        let _ = scratch;
        return on_gpu::conv2d_act_backward(x, w, act, dy, g, dw, db, dx);
    }
    let dx = dx.map(|dx| {
        dx.resize(x.shape());
        dx.data_mut()
    });
    cpu::conv::backward(
        x.data(),
        w.data(),
        act.map(|(slope, y)| (slope, y.data())),
        dy.data(),
        g,
        n,
        conv_algorithm(),
        scratch,
        dw.data_mut(),
        db.data_mut(),
        dx,
    );
    Ok(())
}

/// cols (c·k·k, oh·ow) of one image x (c, h, w).
pub fn im2col(x: &Tensor, g: &Conv2dGeom, cols: &mut Tensor) -> Result<()> {
    if x.len() != g.in_len() {
        return Err(Error::shape("im2col", x.shape(), &[g.c, g.h, g.w]));
    }
    if !x.is_host() {
        return Err(Error::arg("im2col", "runs in host memory only (the CPU reference)"));
    }
    cols.resize(&[g.patch_len(), g.out_plane()]);
    cpu::conv::im2col(x.data(), g, cols.data_mut());
    Ok(())
}

/// dx (c, h, w) = col2im(cols): the adjoint of [`im2col`], overlapping patches summed.
pub fn col2im(cols: &Tensor, g: &Conv2dGeom, dx: &mut Tensor) -> Result<()> {
    if cols.shape() != [g.patch_len(), g.out_plane()] {
        return Err(Error::shape("col2im", cols.shape(), &[g.patch_len(), g.out_plane()]));
    }
    if !cols.is_host() {
        return Err(Error::arg("col2im", "runs in host memory only (the CPU reference)"));
    }
    dx.resize(&[g.c, g.h, g.w]);
    fill(dx, 0.0)?;
    cpu::conv::col2im(cols.data(), g, dx.data_mut());
    Ok(())
}

/// Which input element won each max-pooling window, kept by the layer between forward and
/// backward; it lives where the pooled tensor does.
#[derive(Default)]
pub struct PoolIndices {
    host: Vec<u32>,
    /// Windows recorded by the last forward pass (the device buffer may hold more).
    len: usize,
    #[cfg(feature = "gpu")]
    device: Option<gpu::GpuBuffer>,
}

impl PoolIndices {
    /// Windows recorded by the last forward pass (0 after [`PoolIndices::clear`]).
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn clear(&mut self) {
        self.host.clear();
        self.len = 0;
    }
}

/// y (n, c, oh, ow) = max over each k x k window of x (n, c, h, w); `argmax` records the winners.
pub fn max_pool2d(x: &Tensor, g: &Pool2dGeom, y: &mut Tensor, argmax: &mut PoolIndices) -> Result<()> {
    let s = x.shape();
    if s.len() != 4 || s[2..] != [g.h, g.w] {
        return Err(Error::shape("max_pool2d", s, &[0, 0, g.h, g.w]));
    }
    #[cfg(feature = "gpu")]
    if !x.is_host() {
        return on_gpu::max_pool2d(x, g, y, argmax, &[s[0], s[1], g.oh(), g.ow()]);
    }
    y.resize(&[s[0], s[1], g.oh(), g.ow()]);
    argmax.host.resize(y.len(), 0);
    argmax.len = y.len();
    cpu::pool::forward(x.data(), g, y.data_mut(), &mut argmax.host);
    Ok(())
}

pub fn max_pool2d_backward(dy: &Tensor, argmax: &PoolIndices, g: &Pool2dGeom, dx: &mut Tensor) -> Result<()> {
    if dy.len() != argmax.len() {
        return Err(Error::arg("max_pool2d_backward", "dy does not match the forward pass"));
    }
    #[cfg(feature = "gpu")]
    if !dy.is_host() {
        return on_gpu::max_pool2d_backward(dy, argmax, g, dx);
    }
    if argmax.host.len() != argmax.len {
        return Err(Error::arg("max_pool2d_backward", "the forward pass ran on the GPU"));
    }
    let s = dy.shape();
    dx.resize(&[s[0], s[1], g.h, g.w]);
    cpu::pool::backward(dy.data(), &argmax.host, g, dx.data_mut());
    Ok(())
}

/// A batch norm's input x (n, c, ...) as (n, c, values per channel and image).
fn channel_dims(op: &'static str, x: &Tensor, c: usize) -> Result<(usize, usize)> {
    let s = x.shape();
    if s.len() < 2 || s[1] != c || x.is_empty() {
        return Err(Error::shape(op, s, &[0, c]));
    }
    Ok((s[0], s[2..].iter().product()))
}

fn vec_of(op: &'static str, t: &Tensor, c: usize) -> Result<()> {
    if t.len() != c {
        return Err(Error::shape(op, t.shape(), &[c]));
    }
    Ok(())
}

/// A batch norm's per-channel scratch (sums, coefficients), kept by its layer so that steps do
/// not allocate.
#[derive(Default)]
pub struct NormScratch {
    sums: Vec<f64>,
    /// Per (image, channel) plane sums.
    partial: Vec<[f64; 2]>,
    coef2: Vec<[f32; 2]>,
    coef3: Vec<[f32; 3]>,
}

/// Batch statistics of x (n, c, ...): the mean and biased variance of each channel, over the
/// batch and every position.
pub fn channel_moments(
    x: &Tensor,
    c: usize,
    mean: &mut Tensor,
    var: &mut Tensor,
    scratch: &mut NormScratch,
) -> Result<()> {
    let (_, plane) = channel_dims("channel_moments", x, c)?;
    #[cfg(feature = "gpu")]
    if !x.is_host() {
        return on_gpu::channel_moments(x, c, plane, mean, var);
    }
    mean.resize(&[c]);
    var.resize(&[c]);
    scratch.sums.resize(2 * c, 0.0);
    cpu::norm::moments(x.data(), c, plane, &mut scratch.partial, &mut scratch.sums);
    for (i, (m, v)) in mean.data_mut().iter_mut().zip(var.data_mut()).enumerate() {
        (*m, *v) = (scratch.sums[2 * i] as f32, scratch.sums[2 * i + 1] as f32);
    }
    Ok(())
}

/// y = act(γ·(x − mean)/√(var + eps) + β) per channel of x (n, c, ...), act a leaky ReLU with
/// `slope` when given; `stats` = (mean, var), `affine` = (γ, β).
pub fn batch_norm(
    x: &Tensor,
    stats: (&Tensor, &Tensor),
    affine: (&Tensor, &Tensor),
    eps: f32,
    slope: Option<f32>,
    y: &mut Tensor,
    scratch: &mut NormScratch,
) -> Result<()> {
    let c = affine.0.len();
    let (_, plane) = channel_dims("batch_norm", x, c)?;
    for t in [stats.0, stats.1, affine.1] {
        vec_of("batch_norm", t, c)?;
    }
    #[cfg(feature = "gpu")]
    if !x.is_host() {
        return on_gpu::batch_norm(x, plane, stats, affine, eps, slope, y);
    }
    let (mean, var, gamma, beta) = (stats.0.data(), stats.1.data(), affine.0.data(), affine.1.data());
    scratch.coef2.clear();
    scratch.coef2.extend((0..c).map(|i| {
        let scale = gamma[i] / (var[i] + eps).sqrt();
        [scale, beta[i] - mean[i] * scale]
    }));
    y.resize(x.shape());
    cpu::norm::scale_shift(x.data(), c, plane, &scratch.coef2, slope, y.data_mut());
    Ok(())
}

/// running ← (1 − momentum)·running + momentum·batch for the mean and the variance, the batch
/// variance made unbiased (× count/(count − 1), count values per channel) as PyTorch does.
pub fn update_running(
    running: (&mut Tensor, &mut Tensor),
    batch: (&Tensor, &Tensor),
    momentum: f32,
    count: usize,
) -> Result<()> {
    let c = running.0.len();
    for t in [&*running.1, batch.0, batch.1] {
        vec_of("update_running", t, c)?;
    }
    #[cfg(feature = "gpu")]
    if !running.0.is_host() || !batch.0.is_host() {
        return on_gpu::update_running((&*running.0, &*running.1), batch, momentum, count);
    }
    let unbias = if count > 1 { count as f32 / (count - 1) as f32 } else { 1.0 };
    for (r, &b) in running.0.data_mut().iter_mut().zip(batch.0.data()) {
        *r = (1.0 - momentum) * *r + momentum * b;
    }
    for (r, &b) in running.1.data_mut().iter_mut().zip(batch.1.data()) {
        *r = (1.0 - momentum) * *r + momentum * b * unbias;
    }
    Ok(())
}

/// Gradients of [`batch_norm`]: dγ, dβ and, when asked, dx. `y` is the forward output (the
/// activated one with `slope`). With `batch_stats` the statistics were the batch's own, so they
/// depend on x and dx has the two extra terms; otherwise (running statistics, evaluation mode)
/// they are constants.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    x: &Tensor,
    y: &Tensor,
    dy: &Tensor,
    stats: (&Tensor, &Tensor),
    gamma: &Tensor,
    eps: f32,
    slope: Option<f32>,
    batch_stats: bool,
    grads: (&mut Tensor, &mut Tensor),
    dx: Option<&mut Tensor>,
    scratch: &mut NormScratch,
) -> Result<()> {
    let c = gamma.len();
    let (n, plane) = channel_dims("batch_norm_backward", x, c)?;
    same_len("batch_norm_backward", x, dy)?;
    same_len("batch_norm_backward", x, y)?;
    for t in [stats.0, stats.1] {
        vec_of("batch_norm_backward", t, c)?;
    }
    #[cfg(feature = "gpu")]
    if !x.is_host() {
        return on_gpu::batch_norm_backward(x, y, dy, plane, stats, gamma, eps, slope, batch_stats, grads, dx);
    }
    let (mean, var) = (stats.0.data(), stats.1.data());
    scratch.sums.resize(2 * c, 0.0);
    cpu::norm::grad_sums(x.data(), y.data(), dy.data(), c, plane, mean, slope, &mut scratch.partial, &mut scratch.sums);
    let sums = &scratch.sums;
    let invstd = |i: usize| 1.0 / (var[i] as f64 + eps as f64).sqrt();
    grads.0.resize(&[c]);
    grads.1.resize(&[c]);
    for i in 0..c {
        grads.0.data_mut()[i] = (sums[2 * i + 1] * invstd(i)) as f32;
        grads.1.data_mut()[i] = sums[2 * i] as f32;
    }
    let Some(dx) = dx else { return Ok(()) };
    let m = (n * plane) as f64;
    scratch.coef3.clear();
    scratch.coef3.extend((0..c).map(|i| {
        let k = gamma.data()[i] as f64 * invstd(i);
        if !batch_stats {
            return [k as f32, 0.0, 0.0];
        }
        let beta = -k * invstd(i) * invstd(i) * sums[2 * i + 1] / m;
        let delta = -k * sums[2 * i] / m - beta * mean[i] as f64;
        [k as f32, beta as f32, delta as f32]
    }));
    dx.resize(x.shape());
    cpu::norm::affine_grad(x.data(), y.data(), dy.data(), c, plane, slope, &scratch.coef3, dx.data_mut());
    Ok(())
}

/// y (n, c, oh, ow) = the mean of each k x k window of x (n, c, h, w).
pub fn avg_pool2d(x: &Tensor, g: &Pool2dGeom, y: &mut Tensor) -> Result<()> {
    let s = x.shape();
    if s.len() != 4 || s[2..] != [g.h, g.w] {
        return Err(Error::shape("avg_pool2d", s, &[0, 0, g.h, g.w]));
    }
    #[cfg(feature = "gpu")]
    if !x.is_host() {
        return on_gpu::avg_pool2d(x, g, y, &[s[0], s[1], g.oh(), g.ow()]);
    }
    y.resize(&[s[0], s[1], g.oh(), g.ow()]);
    cpu::pool::avg_forward(x.data(), g, y.data_mut());
    Ok(())
}

pub fn avg_pool2d_backward(dy: &Tensor, g: &Pool2dGeom, dx: &mut Tensor) -> Result<()> {
    let s = dy.shape();
    if s.len() != 4 || s[2..] != [g.oh(), g.ow()] {
        return Err(Error::shape("avg_pool2d_backward", s, &[0, 0, g.oh(), g.ow()]));
    }
    #[cfg(feature = "gpu")]
    if !dy.is_host() {
        return on_gpu::avg_pool2d_backward(dy, g, dx);
    }
    dx.resize(&[s[0], s[1], g.h, g.w]);
    cpu::pool::avg_backward(dy.data(), g, dx.data_mut());
    Ok(())
}

/// y (n, c, 1, 1) = the mean of each plane of x (n, c, h, w): global average pooling.
pub fn global_avg_pool(x: &Tensor, y: &mut Tensor) -> Result<()> {
    let s = x.shape();
    if s.len() != 4 || x.is_empty() {
        return Err(Error::shape("global_avg_pool", s, &[0, 0, 0, 0]));
    }
    #[cfg(feature = "gpu")]
    if !x.is_host() {
        return on_gpu::global_avg_pool(x, y);
    }
    y.resize(&[s[0], s[1], 1, 1]);
    cpu::pool::mean_planes(x.data(), s[2] * s[3], y.data_mut());
    Ok(())
}

/// dx (n, c, h, w, as `x_shape`): each position of plane p receives dy[p] / (h·w).
pub fn global_avg_pool_backward(dy: &Tensor, x_shape: &[usize], dx: &mut Tensor) -> Result<()> {
    if x_shape.len() != 4 || dy.len() != x_shape[0] * x_shape[1] || dy.is_empty() {
        return Err(Error::shape("global_avg_pool_backward", dy.shape(), x_shape));
    }
    #[cfg(feature = "gpu")]
    if !dy.is_host() {
        return on_gpu::global_avg_pool_backward(dy, x_shape, dx);
    }
    dx.resize(x_shape);
    cpu::pool::mean_planes_backward(dy.data(), x_shape[2] * x_shape[3], dx.data_mut());
    Ok(())
}

/// Mirrors images left-right in place: reverses the last axis of x (…, w).
pub fn flip_width(x: &mut Tensor) -> Result<()> {
    let w = x.shape().last().copied().unwrap_or(1).max(1);
    #[cfg(feature = "gpu")]
    if !x.is_host() {
        return on_gpu::flip_width(x, w);
    }
    cpu::elementwise::reverse_rows(x.data_mut(), w);
    Ok(())
}

/// a = (a + b) / 2, element-wise.
pub fn average_into(a: &mut Tensor, b: &Tensor) -> Result<()> {
    same_len("average_into", a, b)?;
    #[cfg(feature = "gpu")]
    if !a.is_host() {
        return on_gpu::average_into(a, b);
    }
    cpu::elementwise::average_into(a.data_mut(), b.data());
    Ok(())
}

/// probs (n, k) = softmax(logits (n, k)).
pub fn softmax(logits: &Tensor, probs: &mut Tensor) -> Result<()> {
    #[cfg(feature = "gpu")]
    if !logits.is_host() {
        return on_gpu::softmax(logits, probs);
    }
    probs.resize(logits.shape());
    cpu::softmax::softmax(logits.data(), logits.row_len(), probs.data_mut());
    Ok(())
}

/// Mean softmax cross-entropy over the batch; writes ŷ to `probs` and (ŷ - y)/n to `dlogits`.
pub fn softmax_cross_entropy(
    logits: &Tensor,
    labels: &[u32],
    smoothing: f32,
    probs: &mut Tensor,
    dlogits: &mut Tensor,
) -> Result<f32> {
    check_labels(logits, labels)?;
    let k = logits.row_len();
    #[cfg(feature = "gpu")]
    if !logits.is_host() {
        return on_gpu::softmax_cross_entropy(logits, labels, smoothing, probs, dlogits);
    }
    probs.resize(logits.shape());
    dlogits.resize(logits.shape());
    Ok(cpu::softmax::cross_entropy(logits.data(), labels, k, smoothing, probs.data_mut(), dlogits.data_mut()))
}

/// The loss and correct count of training steps, recorded where the steps run and read back in
/// batches ([`StepStats::take`]): on a GPU a read waits for all the work recorded before it, so
/// reading each step's loss would stall the device at every step.
#[derive(Default)]
pub struct StepStats {
    /// Steps recorded and not yet taken: their (loss, correct) on the host.
    host: Vec<(f32, u32)>,
    #[cfg(feature = "gpu")]
    device: Option<on_gpu::DeviceStats>,
}

impl StepStats {
    /// Steps a GPU records before they must be taken.
    pub const CAPACITY: usize = 256;

    /// Steps recorded and not yet taken.
    pub fn pending(&self) -> usize {
        #[cfg(feature = "gpu")]
        if let Some(d) = &self.device {
            return d.recorded;
        }
        self.host.len()
    }

    /// (mean loss, correct predictions) of each step recorded since the last call, in order.
    pub fn take(&mut self) -> Result<Vec<(f32, u32)>> {
        #[cfg(feature = "gpu")]
        if let Some(d) = &mut self.device {
            return d.take();
        }
        Ok(std::mem::take(&mut self.host))
    }
}

/// [`softmax_cross_entropy`] that records the step's mean loss and correct count (first maximum of
/// ŷ equal to the label) in `stats` instead of returning them.
pub fn softmax_cross_entropy_recorded(
    logits: &Tensor,
    labels: &[u32],
    smoothing: f32,
    probs: &mut Tensor,
    dlogits: &mut Tensor,
    stats: &mut StepStats,
) -> Result<()> {
    #[cfg(feature = "gpu")]
    if !logits.is_host() {
        check_labels(logits, labels)?;
        return on_gpu::softmax_cross_entropy_recorded(logits, labels, smoothing, probs, dlogits, stats);
    }
    let loss = softmax_cross_entropy(logits, labels, smoothing, probs, dlogits)?;
    let k = logits.row_len();
    let correct = argmax_rows(probs.data(), k).zip(labels).filter(|(p, y)| *p == **y as usize).count();
    stats.host.push((loss, correct as u32));
    Ok(())
}

fn check_labels(logits: &Tensor, labels: &[u32]) -> Result<()> {
    let (n, k) = (logits.rows(), logits.row_len());
    if labels.len() != n {
        return Err(Error::shape("softmax_cross_entropy", logits.shape(), &[labels.len()]));
    }
    if let Some(&bad) = labels.iter().find(|&&y| y as usize >= k) {
        return Err(Error::arg("softmax_cross_entropy", format!("label {bad} outside the {k} classes")));
    }
    Ok(())
}

/// One SGD update; `velocity` is the momentum buffer (None for plain SGD).
pub fn sgd_step(param: &mut Tensor, grad: &Tensor, velocity: Option<&mut Tensor>, h: &SgdStep) -> Result<()> {
    same_len("sgd_step", param, grad)?;
    if let Some(v) = &velocity {
        same_len("sgd_step", param, v)?;
    }
    #[cfg(feature = "gpu")]
    if !param.is_host() {
        return on_gpu::sgd_step(param, grad, velocity.map(|v| &*v), h);
    }
    cpu::elementwise::sgd(param.data_mut(), grad.data(), velocity.map(|v| v.data_mut()), h);
    Ok(())
}

pub fn adam_step(param: &mut Tensor, grad: &Tensor, m: &mut Tensor, v: &mut Tensor, h: &AdamStep) -> Result<()> {
    same_len("adam_step", param, grad)?;
    same_len("adam_step", param, m)?;
    same_len("adam_step", param, v)?;
    #[cfg(feature = "gpu")]
    if !param.is_host() {
        return on_gpu::adam_step(param, grad, m, v, h);
    }
    cpu::elementwise::adam(param.data_mut(), grad.data(), m.data_mut(), v.data_mut(), h);
    Ok(())
}
