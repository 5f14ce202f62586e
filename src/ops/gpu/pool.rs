//! Max pooling (src/ops/cpu/pool.rs): window k, stride s, no padding, floor; the forward pass
//! records each output's winning index within its plane (u32, the first of equal maxima).

use super::device::{Bind, GROUP, Gpu, GpuBuffer, fits, u};
use crate::error::{Error, Result};
use crate::ops::Pool2dGeom;

const SRC: &str = include_str!("pool.wgsl");

fn run(gpu: &Gpu, entry: &str, n: usize, g: &Pool2dGeom, binds: &[(u32, Bind)]) -> Result<()> {
    if g.k == 0 || g.stride == 0 || g.h < g.k || g.w < g.k {
        return Err(Error::arg(
            "gpu max_pool2d",
            format!("window {} with stride {} on {}x{}", g.k, g.stride, g.h, g.w),
        ));
    }
    let k = gpu.kernel("pool", entry, || SRC.to_string())?;
    let words = [u(n), u(g.h), u(g.w), u(g.k), u(g.stride), u(g.oh()), u(g.ow())];
    gpu.dispatch(&k, &words, binds, gpu.grid(n.div_ceil(GROUP as usize) as u64)?)
}

/// y (planes, oh, ow) = max over each k x k window of x (planes, h, w); `argmax` (u32, one per
/// output) records the winners.
pub fn max_pool2d(x: &GpuBuffer, planes: usize, g: &Pool2dGeom, y: &GpuBuffer, argmax: &GpuBuffer) -> Result<()> {
    let outs = if g.h >= g.k && g.w >= g.k && g.stride > 0 { planes * g.oh() * g.ow() } else { 0 };
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
    let outs = if g.h >= g.k && g.w >= g.k && g.stride > 0 { planes * g.oh() * g.ow() } else { 0 };
    fits("max_pool2d_backward", "dy", dy, outs)?;
    fits("max_pool2d_backward", "argmax", argmax, outs)?;
    fits("max_pool2d_backward", "dx", dx, planes * g.h * g.w)?;
    let binds = [(1, Bind::R(dy)), (2, Bind::R(argmax)), (3, Bind::W(dx))];
    run(dy.gpu(), "backward", planes * g.h * g.w, g, &binds)
}
