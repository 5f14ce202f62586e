//! Batch normalisation (src/ops/cpu/norm.rs) over x (n, c, plane): per-channel moments, the
//! normalisation with its fused leaky ReLU, the running statistics' update, and the backward pass.
//! Channel sums are one workgroup per channel with a fixed tree (f32, where the CPU adds planes in
//! f64), so repeated runs are bit-identical; the backward pass keeps its per-channel sums in the
//! recording thread's scratch buffer between its two kernels.

use crate::error::{Error, Result};
use crate::tensor::gpu::{Bind, GROUP, Gpu, GpuBuffer, f, fits, u};

const SRC: &str = include_str!("norm.wgsl");

/// x (n, c, plane): images, channels, values per channel and image.
#[derive(Clone, Copy, Debug)]
pub struct NormDims {
    pub n: usize,
    pub c: usize,
    pub plane: usize,
}

impl NormDims {
    fn total(&self) -> usize {
        self.n * self.c * self.plane
    }
    fn count(&self) -> usize {
        self.n * self.plane
    }
}

/// The shader's `Params`.
#[derive(Default)]
struct P {
    total: usize,
    c: usize,
    plane: usize,
    count: usize,
    eps: f32,
    slope: f32,
    batch_stats: bool,
    momentum: f32,
    unbias: f32,
}

impl P {
    fn of(d: NormDims) -> P {
        P { total: d.total(), c: d.c, plane: d.plane, count: d.count(), slope: 1.0, ..P::default() }
    }
}

fn run(gpu: &Gpu, entry: &str, p: P, binds: &[(u32, Bind)], groups: usize) -> Result<()> {
    let k = gpu.kernel("norm", entry, || SRC.to_string())?;
    let words = [
        u(p.total),
        u(p.c),
        u(p.plane),
        u(p.count),
        f(p.eps),
        f(p.slope),
        p.batch_stats as u32,
        f(p.momentum),
        f(p.unbias),
    ];
    gpu.dispatch(&k, &words, binds, gpu.grid(groups as u64)?)
}

fn check(op: &'static str, d: NormDims, x: &GpuBuffer, channel_vecs: &[(&str, &GpuBuffer)]) -> Result<()> {
    if d.total() == 0 {
        return Err(Error::arg(op, "an empty batch"));
    }
    fits(op, "x", x, d.total())?;
    for (what, b) in channel_vecs {
        fits(op, what, b, d.c)?;
    }
    Ok(())
}

/// mean (c) and biased variance var (c) of each channel of x: the mean, then the squared
/// deviations from it.
pub fn channel_moments(x: &GpuBuffer, d: NormDims, mean: &GpuBuffer, var: &GpuBuffer) -> Result<()> {
    check("channel_moments", d, x, &[("mean", mean), ("var", var)])?;
    let binds = [(1, Bind::R(x)), (10, Bind::W(mean)), (11, Bind::W(var))];
    run(x.gpu(), "moments", P::of(d), &binds, d.c)
}

/// y = act(γ·(x − mean)/√(var + eps) + β) per channel, act a leaky ReLU with `slope` when given;
/// `stats` = (mean, var), `affine` = (γ, β).
pub fn batch_norm(
    x: &GpuBuffer,
    d: NormDims,
    stats: (&GpuBuffer, &GpuBuffer),
    affine: (&GpuBuffer, &GpuBuffer),
    eps: f32,
    slope: Option<f32>,
    y: &GpuBuffer,
) -> Result<()> {
    check("batch_norm", d, x, &[("mean", stats.0), ("var", stats.1), ("gamma", affine.0), ("beta", affine.1)])?;
    fits("batch_norm", "y", y, d.total())?;
    let binds = [
        (1, Bind::R(x)),
        (4, Bind::R(stats.0)),
        (5, Bind::R(stats.1)),
        (6, Bind::R(affine.0)),
        (7, Bind::R(affine.1)),
        (9, Bind::W(y)),
    ];
    let p = P { eps, slope: slope.unwrap_or(1.0), ..P::of(d) };
    run(x.gpu(), "forward", p, &binds, d.total().div_ceil(GROUP as usize))
}

/// running ← (1 − momentum)·running + momentum·batch for the mean and the variance (c values
/// each), the batch variance times count/(count − 1) as the CPU computes it.
pub fn update_running(
    running: (&GpuBuffer, &GpuBuffer),
    batch: (&GpuBuffer, &GpuBuffer),
    c: usize,
    momentum: f32,
    count: usize,
) -> Result<()> {
    let op = "update_running";
    for (what, b) in [("running mean", running.0), ("running var", running.1), ("mean", batch.0), ("var", batch.1)] {
        fits(op, what, b, c)?;
    }
    let unbias = if count > 1 { count as f32 / (count - 1) as f32 } else { 1.0 };
    let binds = [(4, Bind::R(batch.0)), (5, Bind::R(batch.1)), (10, Bind::W(running.0)), (11, Bind::W(running.1))];
    let p = P { c, momentum, unbias, ..P::default() };
    run(batch.0.gpu(), "update_running", p, &binds, c.div_ceil(GROUP as usize))
}

/// Gradients of [`batch_norm`] from its output y (the activated one with `slope`) and dy: dγ and
/// dβ to `grads`, and dx when given, with the batch-statistics terms when `batch_stats`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    x: &GpuBuffer,
    y: &GpuBuffer,
    dy: &GpuBuffer,
    d: NormDims,
    stats: (&GpuBuffer, &GpuBuffer),
    gamma: &GpuBuffer,
    eps: f32,
    slope: Option<f32>,
    batch_stats: bool,
    grads: (&GpuBuffer, &GpuBuffer),
    dx: Option<&GpuBuffer>,
) -> Result<()> {
    let op = "batch_norm_backward";
    check(op, d, x, &[("mean", stats.0), ("var", stats.1), ("gamma", gamma), ("dgamma", grads.0), ("dbeta", grads.1)])?;
    fits(op, "y", y, d.total())?;
    fits(op, "dy", dy, d.total())?;
    if let Some(dx) = dx {
        fits(op, "dx", dx, d.total())?;
    }
    let gpu = x.gpu();
    let sums = gpu.scratch(2 * d.c)?;
    let p = || P { eps, slope: slope.unwrap_or(1.0), batch_stats, ..P::of(d) };
    let binds = [
        (1, Bind::R(x)),
        (2, Bind::R(y)),
        (3, Bind::R(dy)),
        (4, Bind::R(stats.0)),
        (5, Bind::R(stats.1)),
        (10, Bind::W(grads.0)),
        (11, Bind::W(grads.1)),
        (12, Bind::W(&sums)),
    ];
    run(gpu, "backward_sums", p(), &binds, d.c)?;
    let Some(dx) = dx else { return Ok(()) };
    let binds = [
        (1, Bind::R(x)),
        (2, Bind::R(y)),
        (3, Bind::R(dy)),
        (4, Bind::R(stats.0)),
        (5, Bind::R(stats.1)),
        (6, Bind::R(gamma)),
        (8, Bind::R(&sums)),
        (9, Bind::W(dx)),
    ];
    run(gpu, "backward_dx", p(), &binds, d.total().div_ceil(GROUP as usize))
}
