//! Max and average pooling (src/ops/cpu/pool.rs): window k, stride s, no padding, floor; the
//! max-pool forward pass records each output's winning index within its plane (u32, the first of
//! equal maxima). Global average pooling: the mean of each plane.

use crate::error::{Error, Result};
use crate::ops::params::Pool2dGeom;
use crate::tensor::gpu::{Bind, GROUP, Gpu, GpuBuffer, f, fits, u};

const SRC: &str = include_str!("pool.wgsl");

fn run(gpu: &Gpu, entry: &str, n: usize, g: &Pool2dGeom, binds: &[(u32, Bind)]) -> Result<()> {
    if g.k == 0 || g.stride == 0 || g.h < g.k || g.w < g.k {
        return Err(Error::arg("gpu pool2d", format!("window {} with stride {} on {}x{}", g.k, g.stride, g.h, g.w)));
    }
    let inv = 1.0 / (g.k * g.k) as f32;
    dispatch(gpu, entry, [u(n), u(g.h), u(g.w), u(g.k), u(g.stride), u(g.oh()), u(g.ow()), f(inv)], binds)
}

/// Records `entry` over `words[0]` threads.
fn dispatch(gpu: &Gpu, entry: &str, words: [u32; 8], binds: &[(u32, Bind)]) -> Result<()> {
    let k = gpu.kernel("pool", entry, || SRC.to_string())?;
    gpu.dispatch(&k, &words, binds, gpu.grid((words[0] as usize).div_ceil(GROUP as usize) as u64)?)
}

/// Outputs of pooling `planes` planes, 0 for a window that does not fit (refused by `run`).
fn outputs(planes: usize, g: &Pool2dGeom) -> usize {
    if g.h >= g.k && g.w >= g.k && g.stride > 0 { planes * g.oh() * g.ow() } else { 0 }
}

/// y (planes, oh, ow) = max over each k x k window of x (planes, h, w); `argmax` (u32, one per
/// output) records the winners.
pub fn max_pool2d(x: &GpuBuffer, planes: usize, g: &Pool2dGeom, y: &GpuBuffer, argmax: &GpuBuffer) -> Result<()> {
    let outs = outputs(planes, g);
    fits("max_pool2d", "x", x, planes * g.h * g.w)?;
    fits("max_pool2d", "y", y, outs)?;
    fits("max_pool2d", "argmax", argmax, outs)?;
    run(x.gpu(), "forward", outs, g, &[(1, Bind::R(x)), (3, Bind::W(y)), (4, Bind::W(argmax))])
}

/// dx (planes, h, w): each window's dy at its recorded maximum, 0 elsewhere.
pub fn max_pool2d_backward(
    dy: &GpuBuffer,
    argmax: &GpuBuffer,
    planes: usize,
    g: &Pool2dGeom,
    dx: &GpuBuffer,
) -> Result<()> {
    let outs = outputs(planes, g);
    fits("max_pool2d_backward", "dy", dy, outs)?;
    fits("max_pool2d_backward", "argmax", argmax, outs)?;
    fits("max_pool2d_backward", "dx", dx, planes * g.h * g.w)?;
    let binds = [(1, Bind::R(dy)), (2, Bind::R(argmax)), (3, Bind::W(dx))];
    run(dy.gpu(), "backward", planes * g.h * g.w, g, &binds)
}

/// y (planes, oh, ow) = the mean of each k x k window of x (planes, h, w).
pub fn avg_pool2d(x: &GpuBuffer, planes: usize, g: &Pool2dGeom, y: &GpuBuffer) -> Result<()> {
    let outs = outputs(planes, g);
    fits("avg_pool2d", "x", x, planes * g.h * g.w)?;
    fits("avg_pool2d", "y", y, outs)?;
    run(x.gpu(), "avg_forward", outs, g, &[(1, Bind::R(x)), (3, Bind::W(y))])
}

/// dx (planes, h, w): each input receives dy/k² of every window it is in.
pub fn avg_pool2d_backward(dy: &GpuBuffer, planes: usize, g: &Pool2dGeom, dx: &GpuBuffer) -> Result<()> {
    fits("avg_pool2d_backward", "dy", dy, outputs(planes, g))?;
    fits("avg_pool2d_backward", "dx", dx, planes * g.h * g.w)?;
    run(dy.gpu(), "avg_backward", planes * g.h * g.w, g, &[(1, Bind::R(dy)), (3, Bind::W(dx))])
}

/// `y[p]` = the mean of plane p of x (planes of `plane` values): global average pooling.
pub fn global_avg_pool(x: &GpuBuffer, planes: usize, plane: usize, y: &GpuBuffer) -> Result<()> {
    fits("global_avg_pool", "x", x, planes * plane)?;
    fits("global_avg_pool", "y", y, planes)?;
    dispatch(
        x.gpu(),
        "mean_planes",
        global_words("global_avg_pool", planes, plane)?,
        &[(1, Bind::R(x)), (3, Bind::W(y))],
    )
}

/// dx (planes, plane): every value of plane p receives `dy[p] / plane`.
pub fn global_avg_pool_backward(dy: &GpuBuffer, planes: usize, plane: usize, dx: &GpuBuffer) -> Result<()> {
    let op = "global_avg_pool_backward";
    fits(op, "dy", dy, planes)?;
    fits(op, "dx", dx, planes * plane)?;
    let mut words = global_words(op, planes, plane)?;
    words[0] = u(planes * plane);
    dispatch(dy.gpu(), "mean_planes_backward", words, &[(1, Bind::R(dy)), (3, Bind::W(dx))])
}

/// The parameters of global pooling over `planes` planes of `plane` values (h = plane, inv = 1/plane).
fn global_words(op: &'static str, planes: usize, plane: usize) -> Result<[u32; 8]> {
    if plane == 0 {
        return Err(Error::arg(op, "planes of 0 values"));
    }
    Ok([u(planes), u(plane), 1, 1, 1, 1, 1, f(1.0 / plane as f32)])
}
