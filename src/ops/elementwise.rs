//! Element-wise ops, bias and row sums, copies, dropout, flips and averages.

use super::check::same_len;
use super::cpu;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// Sets every value of `x` to `v`.
pub fn fill(x: &mut Tensor, v: f32) -> Result<()> {
    #[cfg(feature = "gpu")]
    if !x.is_host() {
        return on_gpu::fill(x, v);
    }
    x.data_mut().fill(v);
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

/// The GPU side: each operand's device buffer (every operand on the GPU of the first), outputs
/// shaped there, handed to the kernels of [`crate::ops::gpu`].
#[cfg(feature = "gpu")]
mod on_gpu {
    use crate::error::Result;
    use crate::ops::device::{on, output};
    use crate::ops::gpu;
    use crate::rng::Rng;
    use crate::tensor::Tensor;

    pub fn fill(x: &Tensor, v: f32) -> Result<()> {
        gpu::fill(&on("fill", x)?, x.len(), v)
    }

    pub fn add_row_bias(y: &Tensor, b: &Tensor) -> Result<()> {
        gpu::add_row_bias(&on("add_row_bias", y)?, y.rows(), &on("add_row_bias", b)?, b.len())
    }

    pub fn add_sum_rows(dy: &Tensor, s: f32, db: &Tensor) -> Result<()> {
        gpu::add_sum_rows(&on("add_sum_rows", dy)?, dy.rows(), dy.row_len(), s, &on("add_sum_rows", db)?)
    }

    pub fn sum_rows(dy: &Tensor, db: &Tensor) -> Result<()> {
        gpu::sum_rows(&on("sum_rows", dy)?, dy.rows(), dy.row_len(), &on("sum_rows", db)?)
    }

    pub fn copy_reshaped(x: &Tensor, shape: &[usize], y: &mut Tensor) -> Result<()> {
        let xb = on("copy_reshaped", x)?;
        let yb = output(y, shape, &xb)?;
        gpu::copy(&xb, 0, &yb, 0, x.len())
    }

    pub fn leaky_relu(x: &Tensor, slope: f32, y: &mut Tensor) -> Result<()> {
        let xb = on("leaky_relu", x)?;
        let yb = output(y, x.shape(), &xb)?;
        gpu::leaky_relu(&xb, x.len(), slope, &yb)
    }

    pub fn leaky_relu_backward(y: &Tensor, dy: &Tensor, slope: f32, dx: &mut Tensor) -> Result<()> {
        let (yb, dyb) = (on("leaky_relu_backward", y)?, on("leaky_relu_backward", dy)?);
        let dxb = output(dx, y.shape(), &yb)?;
        gpu::leaky_relu_backward(&yb, &dyb, y.len(), slope, &dxb)
    }

    pub fn dropout(x: &Tensor, p: f32, rng: &mut Rng, mask: &mut Tensor, y: &mut Tensor) -> Result<()> {
        let xb = on("dropout", x)?;
        let mb = output(mask, x.shape(), &xb)?;
        let yb = output(y, x.shape(), &xb)?;
        gpu::dropout(&xb, x.len(), p, rng, &mb, &yb)
    }

    pub fn mul(a: &Tensor, b: &Tensor, out: &mut Tensor) -> Result<()> {
        let (ab, bb) = (on("mul", a)?, on("mul", b)?);
        let ob = output(out, a.shape(), &ab)?;
        gpu::mul(&ab, &bb, a.len(), &ob)
    }

    pub fn flip_width(x: &Tensor, w: usize) -> Result<()> {
        gpu::flip_width(&on("flip_width", x)?, x.len(), w)
    }

    pub fn average_into(a: &Tensor, b: &Tensor) -> Result<()> {
        gpu::average_into(&on("average_into", a)?, &on("average_into", b)?, a.len())
    }
}
