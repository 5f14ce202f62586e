//! Convolution: forward (with a fused leaky ReLU, and a fused 2x2 max-pool in evaluation),
//! gradients, and im2col / col2im (the CPU reference). The CPU's algorithm is chosen per process
//! ([`set_conv_algorithm`]); a GPU runs implicit-GEMM kernels.

use super::check::same_len;
use super::cpu;
use super::elementwise::fill;
use super::params::{Conv2dGeom, ConvAlgorithm, Pool2dGeom};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Per-layer scratch memory for convolution, reused across steps.
pub type ConvScratch = cpu::conv::ConvScratch;

static CONV_ALGORITHM: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Sets the convolution algorithm for the whole process.
pub fn set_conv_algorithm(a: ConvAlgorithm) {
    let i = ConvAlgorithm::ALL.iter().position(|&x| x == a).unwrap_or(0);
    CONV_ALGORITHM.store(i as u8, std::sync::atomic::Ordering::Relaxed);
}

pub fn conv_algorithm() -> ConvAlgorithm {
    ConvAlgorithm::ALL[CONV_ALGORITHM.load(std::sync::atomic::Ordering::Relaxed) as usize]
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

/// y (n, f, oh, ow) = conv2d(x (n, c, h, w), w (f, c, k, k)) + b (f); on the CPU by the
/// algorithm [`conv_algorithm`] picks (see [`ConvAlgorithm`]).
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

/// The GPU side: each operand's device buffer (every operand on the GPU of the first), outputs
/// shaped there, handed to the kernels of [`crate::ops::gpu`].
#[cfg(feature = "gpu")]
mod on_gpu {
    use crate::error::Result;
    use crate::ops::device::{on, output};
    use crate::ops::gpu;
    use crate::ops::params::Conv2dGeom;
    use crate::tensor::Tensor;

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
}

/// Convolution geometries with a batch size, padding and strides included, for tests here and of
/// the layers.
#[cfg(test)]
pub(crate) fn test_geoms() -> Vec<(usize, Conv2dGeom)> {
    let g = |c, h, w, f, k, stride, pad| Conv2dGeom { c, h, w, f, k, stride, pad };
    vec![
        (1, g(1, 5, 5, 2, 3, 1, 0)),
        (3, g(2, 6, 7, 3, 3, 1, 0)),
        (2, g(3, 7, 6, 2, 3, 2, 1)),
        (9, g(2, 5, 5, 4, 2, 1, 2)),
        (5, g(1, 8, 8, 3, 3, 3, 1)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn im2col_and_col2im_are_adjoint() {
        // <im2col(x), y> = <x, col2im(y)> for every geometry, padding and stride included.
        let mut rng = Rng::new(5);
        for (_, g) in test_geoms() {
            let x = Tensor::randn(&[g.c, g.h, g.w], 1.0, &mut rng);
            let y = Tensor::randn(&[g.patch_len(), g.out_plane()], 1.0, &mut rng);
            let (mut cols, mut back) = (Tensor::default(), Tensor::default());
            im2col(&x, &g, &mut cols).unwrap();
            col2im(&y, &g, &mut back).unwrap();
            let dot =
                |a: &Tensor, b: &Tensor| a.data().iter().zip(b.data()).map(|(p, q)| *p as f64 * *q as f64).sum::<f64>();
            let (lhs, rhs) = (dot(&cols, &y), dot(&x, &back));
            assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "{lhs} vs {rhs} for {g:?}");
        }
    }
}
