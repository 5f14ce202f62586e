//! The ops of [`crate::ops`] for tensors on a GPU: [`crate::ops`] checks shapes, then sends an op
//! here when its first operand is on the device. Every other operand must be there too; outputs
//! are made there. The kernels are in [`super::gpu`].

use super::gpu::{self, GpuBuffer, GpuMat};
use super::{AdamStep, Conv2dGeom, Pool2dGeom, PoolIndices, SgdStep, StepStats};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::{Device, Tensor};

/// The device buffer of an operand that must be on the GPU.
fn on(op: &'static str, t: &Tensor) -> Result<GpuBuffer> {
    t.gpu_buffer()
        .cloned()
        .ok_or_else(|| Error::arg(op, "operands on different devices: one on the GPU, one in host memory"))
}

/// Shapes `t` as an output on the GPU of `like` and returns its buffer.
fn output(t: &mut Tensor, shape: &[usize], like: &GpuBuffer) -> Result<GpuBuffer> {
    t.prepare(shape, &Device::Gpu(like.gpu().clone()))?;
    on("output", t)
}

/// A tensor as a matrix (first dimension, product of the rest), transposed if asked.
fn mat<'a>(b: &'a GpuBuffer, t: &Tensor, trans: bool) -> GpuMat<'a> {
    let m = GpuMat::new(b, t.rows(), t.row_len());
    if trans { m.t() } else { m }
}

pub fn matmul(a: &Tensor, trans_a: bool, b: &Tensor, trans_b: bool, c: &mut Tensor, shape: [usize; 2]) -> Result<()> {
    let (ab, bb) = (on("matmul", a)?, on("matmul", b)?);
    let cb = output(c, &shape, &ab)?;
    gpu::matmul(mat(&ab, a, trans_a), mat(&bb, b, trans_b), &cb, 0, false, 1.0)
}

pub fn add_matmul(a: &Tensor, trans_a: bool, b: &Tensor, trans_b: bool, c: &Tensor, s: f32) -> Result<()> {
    let (ab, bb, cb) = (on("add_matmul", a)?, on("add_matmul", b)?, on("add_matmul", c)?);
    gpu::matmul(mat(&ab, a, trans_a), mat(&bb, b, trans_b), &cb, 0, true, s)
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

#[allow(clippy::too_many_arguments)]
pub fn conv2d_act(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    g: &Conv2dGeom,
    slope: Option<f32>,
    y: &mut Tensor,
    shape: &[usize],
) -> Result<()> {
    let xb = on("conv2d", x)?;
    let yb = output(y, shape, &xb)?;
    gpu::conv2d(&xb, &on("conv2d", w)?, &on("conv2d", b)?, x.rows(), g, slope, &yb)
}

#[allow(clippy::too_many_arguments)]
pub fn conv2d_act_backward(
    x: &Tensor,
    w: &Tensor,
    act: Option<(f32, &Tensor)>,
    dy: &Tensor,
    g: &Conv2dGeom,
    dw: &Tensor,
    db: &Tensor,
    dx: Option<&mut Tensor>,
) -> Result<()> {
    let xb = on("conv2d_backward", x)?;
    let y = match act {
        Some((slope, y)) => Some((slope, on("conv2d_backward", y)?)),
        None => None,
    };
    let dxb = match dx {
        Some(dx) => Some(output(dx, x.shape(), &xb)?),
        None => None,
    };
    gpu::conv2d_backward(
        &xb,
        &on("conv2d_backward", w)?,
        y.as_ref().map(|(s, y)| (*s, y)),
        &on("conv2d_backward", dy)?,
        x.rows(),
        g,
        &on("conv2d_backward", dw)?,
        &on("conv2d_backward", db)?,
        dxb.as_ref(),
    )
}

pub fn max_pool2d(x: &Tensor, g: &Pool2dGeom, y: &mut Tensor, argmax: &mut PoolIndices, shape: &[usize]) -> Result<()> {
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
    gpu::batch_norm_backward(&xb, &yb, &dyb, d, (&mb, &vb), &gb, eps, slope, batch_stats, (&dgb, &dbb), dxb.as_ref())
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

pub fn flip_width(x: &Tensor, w: usize) -> Result<()> {
    gpu::flip_width(&on("flip_width", x)?, x.len(), w)
}

pub fn average_into(a: &Tensor, b: &Tensor) -> Result<()> {
    gpu::average_into(&on("average_into", a)?, &on("average_into", b)?, a.len())
}

pub fn softmax(logits: &Tensor, probs: &mut Tensor) -> Result<()> {
    let lb = on("softmax", logits)?;
    let pb = output(probs, logits.shape(), &lb)?;
    gpu::softmax(&lb, logits.rows(), logits.row_len(), &pb)
}

/// The mean loss is read back: the caller needs it now.
pub fn softmax_cross_entropy(
    logits: &Tensor,
    labels: &[u32],
    smoothing: f32,
    probs: &mut Tensor,
    dlogits: &mut Tensor,
) -> Result<f32> {
    let lb = on("softmax_cross_entropy", logits)?;
    let gpu = lb.gpu().clone();
    let pb = output(probs, logits.shape(), &lb)?;
    let db = output(dlogits, logits.shape(), &lb)?;
    let labels_b = gpu.upload_u32(labels)?;
    let (loss, correct) = (gpu.zeros(1)?, gpu.upload_u32(&[0])?);
    gpu::softmax_cross_entropy(
        &lb,
        &labels_b,
        logits.rows(),
        logits.row_len(),
        smoothing,
        &pb,
        &db,
        &loss,
        &correct,
        0,
    )?;
    Ok(gpu.download(&loss)?[0])
}

/// Per-step loss and correct count slots on the device, and the labels' buffer.
pub struct DeviceStats {
    loss: GpuBuffer,
    correct: GpuBuffer,
    labels: GpuBuffer,
    pub recorded: usize,
}

impl DeviceStats {
    pub fn take(&mut self) -> Result<Vec<(f32, u32)>> {
        let n = std::mem::take(&mut self.recorded);
        if n == 0 {
            return Ok(Vec::new());
        }
        let gpu = self.loss.gpu();
        let loss = gpu.download_range(&self.loss, 0..n)?;
        let correct = gpu.download_u32(&self.correct)?;
        Ok(loss.into_iter().zip(correct).collect())
    }
}

pub fn softmax_cross_entropy_recorded(
    logits: &Tensor,
    labels: &[u32],
    smoothing: f32,
    probs: &mut Tensor,
    dlogits: &mut Tensor,
    stats: &mut StepStats,
) -> Result<()> {
    let lb = on("softmax_cross_entropy", logits)?;
    let gpu = lb.gpu().clone();
    let fits = matches!(&stats.device, Some(d) if d.labels.len() >= labels.len() && d.loss.gpu().same(&gpu));
    if !fits {
        if stats.device.as_ref().is_some_and(|d| d.recorded > 0) {
            return Err(Error::arg("softmax_cross_entropy", "recorded steps not taken before the batch grew"));
        }
        stats.device = Some(DeviceStats {
            loss: gpu.zeros(StepStats::CAPACITY)?,
            correct: gpu.upload_u32(&[0; StepStats::CAPACITY])?,
            labels: gpu.upload_u32(&vec![0; labels.len().max(1)])?,
            recorded: 0,
        });
    }
    let d = stats.device.as_mut().expect("made above");
    if d.recorded >= StepStats::CAPACITY {
        return Err(Error::arg("softmax_cross_entropy", "step statistics full: take them first"));
    }
    gpu.write_u32(&d.labels, labels)?;
    let pb = output(probs, logits.shape(), &lb)?;
    let db = output(dlogits, logits.shape(), &lb)?;
    let (rows, k) = (logits.rows(), logits.row_len());
    gpu::softmax_cross_entropy(&lb, &d.labels, rows, k, smoothing, &pb, &db, &d.loss, &d.correct, d.recorded)?;
    d.recorded += 1;
    Ok(())
}

pub fn sgd_step(param: &Tensor, grad: &Tensor, velocity: Option<&Tensor>, h: &SgdStep) -> Result<()> {
    let v = velocity.map(|v| on("sgd_step", v)).transpose()?;
    gpu::sgd_step(&on("sgd_step", param)?, &on("sgd_step", grad)?, v.as_ref(), param.len(), h)
}

pub fn adam_step(param: &Tensor, grad: &Tensor, m: &Tensor, v: &Tensor, h: &AdamStep) -> Result<()> {
    let (pb, gb) = (on("adam_step", param)?, on("adam_step", grad)?);
    gpu::adam_step(&pb, &gb, &on("adam_step", m)?, &on("adam_step", v)?, param.len(), h)
}
