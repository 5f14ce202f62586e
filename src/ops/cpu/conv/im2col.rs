//! im2col and its adjoint col2im: the patches of an image as the columns of a matrix, for
//! convolution as one product (the original's algorithm, used for strides above 1); and the
//! plain-loop convolution every path is tested against.

use crate::ops::cpu::multiversion::multiversion;
use crate::ops::params::Conv2dGeom;

multiversion! {
    /// Patches of one image: x (c, h, w) -> cols (c·k·k, oh·ow). Out-of-image taps (padding) are 0.
    pub fn im2col(x: &[f32], g: &Conv2dGeom, cols: &mut [f32]) {
        let (oh, ow) = (g.oh(), g.ow());
        let p = oh * ow;
        for c in 0..g.c {
            let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
            for ki in 0..g.k {
                for kj in 0..g.k {
                    let row = &mut cols[((c * g.k + ki) * g.k + kj) * p..][..p];
                    for oy in 0..oh {
                        let dst = &mut row[oy * ow..(oy + 1) * ow];
                        match g.in_row(oy, ki) {
                            None => dst.fill(0.0),
                            Some(iy) => gather_row(&plane[iy * g.w..(iy + 1) * g.w], g, kj, dst),
                        }
                    }
                }
            }
        }
    }
}

multiversion! {
    /// The adjoint of [`im2col`]: adds each column entry back to the pixel it was copied from, so the
    /// gradients of overlapping patches sum. dx (c, h, w) is accumulated into, not overwritten.
    pub fn col2im(cols: &[f32], g: &Conv2dGeom, dx: &mut [f32]) {
        let (oh, ow) = (g.oh(), g.ow());
        let p = oh * ow;
        for c in 0..g.c {
            let plane = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
            for ki in 0..g.k {
                for kj in 0..g.k {
                    let row = &cols[((c * g.k + ki) * g.k + kj) * p..][..p];
                    for oy in 0..oh {
                        if let Some(iy) = g.in_row(oy, ki) {
                            scatter_row(&row[oy * ow..(oy + 1) * ow], g, kj, &mut plane[iy * g.w..(iy + 1) * g.w]);
                        }
                    }
                }
            }
        }
    }
}

/// Output columns `ox` whose tap `kj` lands inside the input row: ix = ox·stride + kj - pad.
fn valid_cols(g: &Conv2dGeom, kj: usize) -> (usize, usize) {
    let lo = g.pad.saturating_sub(kj).div_ceil(g.stride);
    let hi = if g.w + g.pad > kj { ((g.w + g.pad - kj - 1) / g.stride + 1).min(g.ow()) } else { 0 };
    (lo.min(hi), hi)
}

#[inline(always)]
fn gather_row(src: &[f32], g: &Conv2dGeom, kj: usize, dst: &mut [f32]) {
    let (lo, hi) = valid_cols(g, kj);
    dst[..lo].fill(0.0);
    dst[hi..].fill(0.0);
    if lo == hi {
        return;
    }
    let start = lo * g.stride + kj - g.pad;
    if g.stride == 1 {
        dst[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
    } else {
        for (d, s) in dst[lo..hi].iter_mut().zip(src[start..].iter().step_by(g.stride)) {
            *d = *s;
        }
    }
}

#[inline(always)]
fn scatter_row(src: &[f32], g: &Conv2dGeom, kj: usize, dst: &mut [f32]) {
    let (lo, hi) = valid_cols(g, kj);
    if lo == hi {
        return;
    }
    let start = lo * g.stride + kj - g.pad;
    if g.stride == 1 {
        for (d, s) in dst[start..start + (hi - lo)].iter_mut().zip(&src[lo..hi]) {
            *d += *s;
        }
    } else {
        for (d, s) in dst[start..].iter_mut().step_by(g.stride).zip(&src[lo..hi]) {
            *d += *s;
        }
    }
}

/// Direct-loop convolution: the reference the im2col path is tested against.
#[cfg(test)]
pub fn forward_direct(x: &[f32], w: &[f32], b: &[f32], g: &Conv2dGeom, n: usize) -> Vec<f32> {
    let (oh, ow) = (g.oh(), g.ow());
    let mut y = vec![0.0; n * g.out_len()];
    for img in 0..n {
        for f in 0..g.f {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b[f];
                    for c in 0..g.c {
                        for ki in 0..g.k {
                            for kj in 0..g.k {
                                let iy = (oy * g.stride + ki) as isize - g.pad as isize;
                                let ix = (ox * g.stride + kj) as isize - g.pad as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                                    acc += x[img * g.in_len() + (c * g.h + iy as usize) * g.w + ix as usize]
                                        * w[((f * g.c + c) * g.k + ki) * g.k + kj];
                                }
                            }
                        }
                    }
                    y[img * g.out_len() + (f * oh + oy) * ow + ox] = acc;
                }
            }
        }
    }
    y
}
