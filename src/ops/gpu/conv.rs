//! 2-D convolution (NCHW, weights (f, c, k, k)) as implicit GEMMs on gemm.wgsl's core: no im2col
//! buffer, any k, stride and padding. Per batch of n images, with P = oh·ow:
//!   forward  y (f, n·P) = w (f, c·k·k) · cols (c·k·k, n·P) + b, leaky ReLU fused on store
//!            (cols gathered from x as read, conv_gather.wgsl, shared with dw)
//!   dx       (c, n·h·w) = wᵀ · dy, gathered per input pixel (conv_dx.wgsl)
//!   dw       (f, c·k·k) = dy (f, n·P) · colsᵀ, split along n·P into a fixed number of partial
//!            sums when the output is small, added in order (conv_reduce.wgsl)
//!   db       (f) = Σ dy, one workgroup per filter, fixed tree
//! With a fused activation, dy is the gradient of the activated output y and is turned into the
//! convolution's output gradient where it is read.

use super::gemm::{GemmParams, PARAMS_SRC, run_gemm};
use crate::error::{Error, Result};
use crate::ops::params::Conv2dGeom;
use crate::tensor::gpu::{Bind, GROUP, GpuBuffer, fits};

const FORWARD_SRC: &str = include_str!("conv_forward.wgsl");
const DX_SRC: &str = include_str!("conv_dx.wgsl");
const DW_SRC: &str = include_str!("conv_dw.wgsl");
const GATHER_SRC: &str = include_str!("conv_gather.wgsl");
const REDUCE_SRC: &str = include_str!("conv_reduce.wgsl");

/// `dyact(i)`: the output gradient at index i of dy, through leaky ReLU's backward (the CPU's
/// formula) when the forward pass fused it; `dy` is declared by the including shader.
fn dyact_src(act: bool) -> &'static str {
    if act {
        "@group(0) @binding(4) var<storage, read> y_act: array<f32>;\n\
         fn dyact(i: u32) -> f32 {\n\
         \x20   let positive = select(0.0, 1.0, y_act[i] > 0.0);\n\
         \x20   return dy[i] * (p.slope + (1.0 - p.slope) * positive);\n\
         }\n"
    } else {
        "fn dyact(i: u32) -> f32 {\n    return dy[i];\n}\n"
    }
}

/// The geometry as WGSL constants (see conv_forward.wgsl), and a name for it in kernel keys.
fn geometry_src(g: &Conv2dGeom) -> String {
    let consts = [
        ("G_C", g.c),
        ("G_H", g.h),
        ("G_W", g.w),
        ("G_F", g.f),
        ("G_K", g.k),
        ("G_S", g.stride),
        ("G_P", g.pad),
        ("G_OH", g.oh()),
        ("G_OW", g.ow()),
    ];
    consts.iter().map(|(name, v)| format!("const {name}: u32 = {v}u;\n")).collect()
}

fn geometry_key(g: &Conv2dGeom) -> String {
    format!("c{}h{}w{}f{}k{}s{}p{}", g.c, g.h, g.w, g.f, g.k, g.stride, g.pad)
}

/// `binds`, and the activation's output at binding 4 when there is one.
fn with_act<'a>(act: Option<(f32, &'a GpuBuffer)>, mut binds: Vec<(u32, Bind<'a>)>) -> Vec<(u32, Bind<'a>)> {
    if let Some((_, y)) = act {
        binds.push((4, Bind::R(y)));
    }
    binds
}

fn check(op: &'static str, g: &Conv2dGeom) -> Result<()> {
    if g.k == 0 || g.stride == 0 || g.h + 2 * g.pad < g.k || g.w + 2 * g.pad < g.k {
        return Err(Error::arg(
            op,
            format!("kernel {} with stride {} and padding {} does not fit {}x{}", g.k, g.stride, g.pad, g.h, g.w),
        ));
    }
    Ok(())
}

fn params(g: &Conv2dGeom, n: usize, slope: f32) -> GemmParams {
    GemmParams { conv: Some(*g), images: n, slope, ..GemmParams::default() }
}

/// y (n, f, oh, ow) = conv2d(x (n, c, h, w), w (f, c, k, k)) + b (f), then leaky ReLU with
/// `slope` when given.
pub fn conv2d(
    x: &GpuBuffer,
    w: &GpuBuffer,
    b: &GpuBuffer,
    n: usize,
    g: &Conv2dGeom,
    slope: Option<f32>,
    y: &GpuBuffer,
) -> Result<()> {
    check("gpu conv2d", g)?;
    fits("conv2d", "x", x, n * g.in_len())?;
    fits("conv2d", "w", w, g.f * g.patch_len())?;
    fits("conv2d", "b", b, g.f)?;
    fits("conv2d", "y", y, n * g.out_len())?;
    let p = GemmParams { m: g.f, n: n * g.out_plane(), k: g.patch_len(), ..params(g, n, slope.unwrap_or(0.0)) };
    let act = slope.is_some();
    run_gemm(
        x.gpu(),
        &format!("conv_forward_{}_{}", act as u8, geometry_key(g)),
        || format!("const ACT: bool = {act};\n{}{GATHER_SRC}", geometry_src(g)),
        FORWARD_SRC,
        p,
        &[(1, Bind::R(x)), (2, Bind::R(w)), (3, Bind::W(y)), (4, Bind::R(b))],
    )
}

/// Writes dL/dw to `dw` (f, c, k, k), dL/db to `db` (f) and dL/dx to `dx` (n, c, h, w) when given.
/// With `act` = (slope, y), the forward pass fused leaky ReLU, y is its output and dy the
/// gradient of y.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward(
    x: &GpuBuffer,
    w: &GpuBuffer,
    act: Option<(f32, &GpuBuffer)>,
    dy: &GpuBuffer,
    n: usize,
    g: &Conv2dGeom,
    dw: &GpuBuffer,
    db: &GpuBuffer,
    dx: Option<&GpuBuffer>,
) -> Result<()> {
    let (m, cols, k) = (g.f, g.patch_len(), n * g.out_plane());
    backward_split(x, w, act, dy, n, g, dw, db, dx, dw_splits(m, cols, k))
}

/// Splits of the weight gradient's sum: enough workgroups to fill a large GPU when the output
/// is small, each still summing at least 1024 terms. A function of the shapes alone, so that
/// results do not depend on the device.
pub(crate) fn dw_splits(m: usize, n: usize, k: usize) -> usize {
    let tiles = m.div_ceil(64) * n.div_ceil(64);
    256usize.div_ceil(tiles).min(k / 1024).clamp(1, 64)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_split(
    x: &GpuBuffer,
    w: &GpuBuffer,
    act: Option<(f32, &GpuBuffer)>,
    dy: &GpuBuffer,
    n: usize,
    g: &Conv2dGeom,
    dw: &GpuBuffer,
    db: &GpuBuffer,
    dx: Option<&GpuBuffer>,
    splits: usize,
) -> Result<()> {
    check("gpu conv2d_backward", g)?;
    fits("conv2d_backward", "x", x, n * g.in_len())?;
    fits("conv2d_backward", "w", w, g.f * g.patch_len())?;
    fits("conv2d_backward", "dy", dy, n * g.out_len())?;
    fits("conv2d_backward", "dw", dw, g.f * g.patch_len())?;
    fits("conv2d_backward", "db", db, g.f)?;
    if let Some((_, y)) = act {
        fits("conv2d_backward", "y", y, n * g.out_len())?;
    }
    let gpu = x.gpu();
    let (slope, is_act) = (act.map_or(0.0, |(s, _)| s), act.is_some());
    let prefix = || format!("{}{}", dyact_src(is_act), geometry_src(g));
    let key = geometry_key(g);
    let base = params(g, n, slope);

    if let Some(dx) = dx {
        fits("conv2d_backward", "dx", dx, n * g.in_len())?;
        let p = GemmParams { m: g.c, n: n * g.h * g.w, k: g.f * g.k * g.k, ..base };
        let binds = with_act(act, vec![(1, Bind::R(w)), (2, Bind::R(dy)), (3, Bind::W(dx))]);
        run_gemm(gpu, &format!("conv_dx_{}_{key}", is_act as u8), prefix, DX_SRC, p, &binds)?;
    }

    let (m, cols) = (g.f, g.patch_len());
    let p = GemmParams { m, n: cols, k: n * g.out_plane(), splits: splits.max(1), ..base };
    let dw_module = format!("conv_dw_{}_{key}", is_act as u8);
    let dw_prefix = || format!("{}{GATHER_SRC}", prefix());
    if p.splits == 1 {
        let binds = with_act(act, vec![(1, Bind::R(dy)), (2, Bind::R(x)), (3, Bind::W(dw))]);
        run_gemm(gpu, &dw_module, dw_prefix, DW_SRC, p, &binds)?;
    } else {
        let part = gpu.scratch(p.splits * m * cols)?;
        let binds = with_act(act, vec![(1, Bind::R(dy)), (2, Bind::R(x)), (3, Bind::W(&part))]);
        run_gemm(gpu, &dw_module, dw_prefix, DW_SRC, p, &binds)?;
        let k = gpu.kernel(&format!("conv_reduce_0_{key}"), "sum_splits", || {
            format!("{}{PARAMS_SRC}\n{}\n{REDUCE_SRC}", geometry_src(g), dyact_src(false))
        })?;
        let grid = gpu.grid((m * cols).div_ceil(GROUP as usize) as u64)?;
        gpu.dispatch(&k, &p.words(), &[(1, Bind::R(&part)), (3, Bind::W(dw))], grid)?;
    }

    let k = gpu.kernel(&format!("conv_reduce_{}_{key}", is_act as u8), "bias_grad", || {
        format!("{}{PARAMS_SRC}\n{}\n{REDUCE_SRC}", geometry_src(g), dyact_src(is_act))
    })?;
    let binds = with_act(act, vec![(2, Bind::R(dy)), (3, Bind::W(db))]);
    gpu.dispatch(&k, &base.words(), &binds, gpu.grid(g.f as u64)?)
}
