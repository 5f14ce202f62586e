//! Pooling: max-pooling (with the winners' indices kept for backward), average pooling and
//! global average pooling.

use super::cpu;
use super::params::Pool2dGeom;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Which input element won each max-pooling window, kept by the layer between forward and
/// backward; it lives where the pooled tensor does.
#[derive(Default)]
pub struct PoolIndices {
    host: Vec<u32>,
    /// Windows recorded by the last forward pass (the device buffer may hold more).
    len: usize,
    #[cfg(feature = "gpu")]
    device: Option<super::gpu::GpuBuffer>,
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

/// dx (n, c, h, w, as `x_shape`): each position of plane p receives `dy[p] / (h·w)`.
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

/// The GPU side: each operand's device buffer (every operand on the GPU of the first), outputs
/// shaped there, handed to the kernels of [`crate::ops::gpu`].
#[cfg(feature = "gpu")]
mod on_gpu {
    use super::PoolIndices;
    use crate::error::{Error, Result};
    use crate::ops::device::{on, output};
    use crate::ops::gpu;
    use crate::ops::params::Pool2dGeom;
    use crate::tensor::Tensor;

    pub fn max_pool2d(
        x: &Tensor,
        g: &Pool2dGeom,
        y: &mut Tensor,
        argmax: &mut PoolIndices,
        shape: &[usize],
    ) -> Result<()> {
        let xb = on("max_pool2d", x)?;
        let yb = output(y, shape, &xb)?;
        let n = y.len();
        let fits = matches!(&argmax.device, Some(b) if b.len() >= n && b.gpu().same(xb.gpu()));
        if !fits {
            argmax.device = Some(xb.gpu().upload_u32(&vec![0; n.max(1)])?);
        }
        argmax.len = n;
        let ab = argmax.device.as_ref().expect("made above");
        gpu::max_pool2d(&xb, x.rows() * x.shape()[1], g, &yb, ab)
    }

    pub fn max_pool2d_backward(dy: &Tensor, argmax: &PoolIndices, g: &Pool2dGeom, dx: &mut Tensor) -> Result<()> {
        let dyb = on("max_pool2d_backward", dy)?;
        let ab = argmax
            .device
            .as_ref()
            .ok_or_else(|| Error::arg("max_pool2d_backward", "the forward pass ran in host memory"))?;
        let s = dy.shape();
        let dxb = output(dx, &[s[0], s[1], g.h, g.w], &dyb)?;
        gpu::max_pool2d_backward(&dyb, ab, s[0] * s[1], g, &dxb)
    }

    pub fn avg_pool2d(x: &Tensor, g: &Pool2dGeom, y: &mut Tensor, shape: &[usize]) -> Result<()> {
        let xb = on("avg_pool2d", x)?;
        let yb = output(y, shape, &xb)?;
        gpu::avg_pool2d(&xb, shape[0] * shape[1], g, &yb)
    }

    pub fn avg_pool2d_backward(dy: &Tensor, g: &Pool2dGeom, dx: &mut Tensor) -> Result<()> {
        let dyb = on("avg_pool2d_backward", dy)?;
        let s = dy.shape();
        let dxb = output(dx, &[s[0], s[1], g.h, g.w], &dyb)?;
        gpu::avg_pool2d_backward(&dyb, s[0] * s[1], g, &dxb)
    }

    pub fn global_avg_pool(x: &Tensor, y: &mut Tensor) -> Result<()> {
        let xb = on("global_avg_pool", x)?;
        let s = x.shape();
        let yb = output(y, &[s[0], s[1], 1, 1], &xb)?;
        gpu::global_avg_pool(&xb, s[0] * s[1], s[2] * s[3], &yb)
    }

    pub fn global_avg_pool_backward(dy: &Tensor, x_shape: &[usize], dx: &mut Tensor) -> Result<()> {
        let dyb = on("global_avg_pool_backward", dy)?;
        let dxb = output(dx, x_shape, &dyb)?;
        gpu::global_avg_pool_backward(&dyb, x_shape[0] * x_shape[1], x_shape[2] * x_shape[3], &dxb)
    }
}
