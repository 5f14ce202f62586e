//! Batch normalisation: per-channel moments, the normalisation (with a fused leaky ReLU), running
//! statistics, and the backward pass.

use super::check::same_len;
use super::cpu::{self, norm::NormScratch};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

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
    cpu::norm::channel_moments(x.data(), c, plane, scratch, mean.data_mut(), var.data_mut());
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
    y.resize(x.shape());
    let (stats, affine) = ((stats.0.data(), stats.1.data()), (affine.0.data(), affine.1.data()));
    cpu::norm::batch_norm(x.data(), c, plane, stats, affine, eps, slope, scratch, y.data_mut());
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
    cpu::norm::update_running(
        (running.0.data_mut(), running.1.data_mut()),
        (batch.0.data(), batch.1.data()),
        momentum,
        count,
    );
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
    grads.0.resize(&[c]);
    grads.1.resize(&[c]);
    let dx = dx.map(|dx| {
        dx.resize(x.shape());
        dx.data_mut()
    });
    let (stats, grads) = ((stats.0.data(), stats.1.data()), (grads.0.data_mut(), grads.1.data_mut()));
    let (x, y, dy) = (x.data(), y.data(), dy.data());
    cpu::norm::batch_norm_backward(
        x,
        y,
        dy,
        n,
        c,
        plane,
        stats,
        gamma.data(),
        eps,
        slope,
        batch_stats,
        grads,
        dx,
        scratch,
    );
    Ok(())
}

/// The GPU side: each operand's device buffer (every operand on the GPU of the first), outputs
/// shaped there, handed to the kernels of [`crate::ops::gpu`].
#[cfg(feature = "gpu")]
mod on_gpu {
    use crate::error::Result;
    use crate::ops::device::{on, output};
    use crate::ops::gpu;
    use crate::tensor::Tensor;

    /// x (n, c, plane) as the batch-norm kernels take it.
    fn norm_dims(x: &Tensor, c: usize, plane: usize) -> gpu::NormDims {
        gpu::NormDims { n: x.rows(), c, plane }
    }

    pub fn channel_moments(x: &Tensor, c: usize, plane: usize, mean: &mut Tensor, var: &mut Tensor) -> Result<()> {
        let xb = on("channel_moments", x)?;
        let mb = output(mean, &[c], &xb)?;
        let vb = output(var, &[c], &xb)?;
        gpu::channel_moments(&xb, norm_dims(x, c, plane), &mb, &vb)
    }

    pub fn batch_norm(
        x: &Tensor,
        plane: usize,
        stats: (&Tensor, &Tensor),
        affine: (&Tensor, &Tensor),
        eps: f32,
        slope: Option<f32>,
        y: &mut Tensor,
    ) -> Result<()> {
        let op = "batch_norm";
        let xb = on(op, x)?;
        let (mb, vb, gb, bb) = (on(op, stats.0)?, on(op, stats.1)?, on(op, affine.0)?, on(op, affine.1)?);
        let yb = output(y, x.shape(), &xb)?;
        gpu::batch_norm(&xb, norm_dims(x, affine.0.len(), plane), (&mb, &vb), (&gb, &bb), eps, slope, &yb)
    }

    pub fn update_running(
        running: (&Tensor, &Tensor),
        batch: (&Tensor, &Tensor),
        momentum: f32,
        count: usize,
    ) -> Result<()> {
        let op = "update_running";
        let (rm, rv) = (on(op, running.0)?, on(op, running.1)?);
        gpu::update_running((&rm, &rv), (&on(op, batch.0)?, &on(op, batch.1)?), running.0.len(), momentum, count)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm_backward(
        x: &Tensor,
        y: &Tensor,
        dy: &Tensor,
        plane: usize,
        stats: (&Tensor, &Tensor),
        gamma: &Tensor,
        eps: f32,
        slope: Option<f32>,
        batch_stats: bool,
        grads: (&mut Tensor, &mut Tensor),
        dx: Option<&mut Tensor>,
    ) -> Result<()> {
        let op = "batch_norm_backward";
        let c = gamma.len();
        let xb = on(op, x)?;
        let (yb, dyb, mb, vb, gb) = (on(op, y)?, on(op, dy)?, on(op, stats.0)?, on(op, stats.1)?, on(op, gamma)?);
        let (dgb, dbb) = (output(grads.0, &[c], &xb)?, output(grads.1, &[c], &xb)?);
        let dxb = match dx {
            Some(dx) => Some(output(dx, x.shape(), &xb)?),
            None => None,
        };
        let d = norm_dims(x, c, plane);
        gpu::batch_norm_backward(
            &xb,
            &yb,
            &dyb,
            d,
            (&mb, &vb),
            &gb,
            eps,
            slope,
            batch_stats,
            (&dgb, &dbb),
            dxb.as_ref(),
        )
    }
}
