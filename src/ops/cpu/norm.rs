//! Batch normalisation over x (n, c, plane): per-channel moments, the normalisation as one
//! scale and shift per channel, and the backward pass as one affine map of (dy, x) per channel.
//!
//! Channel sums run over each channel's n planes in order (a plane sum in f32 lanes, planes added
//! in f64), one channel per task, so they do not depend on the thread count. The element-wise
//! passes split (n·c) planes into fixed chunks.

use super::multiversion::multiversion;
use super::par::for_each_chunk;

/// Elements per chunk of the element-wise passes (whole planes).
const CHUNK_ELEMS: usize = 1 << 14;

fn planes_per_chunk(plane: usize) -> usize {
    (CHUNK_ELEMS / plane.max(1)).max(1)
}

multiversion! {
    /// (Σ v, Σ (v − m)²) over a plane, in 16 f32 lanes (vectorised without reassociating a
    /// single sum), the lanes then added in f64.
    fn plane_sums(v: &[f32], m: f32) -> [f64; 2] {
        let (mut a, mut b) = ([0f32; 16], [0f32; 16]);
        let mut chunks = v.chunks_exact(16);
        for c in &mut chunks {
            for ((a, b), &x) in a.iter_mut().zip(b.iter_mut()).zip(c) {
                *a += x;
                *b += (x - m) * (x - m);
            }
        }
        let mut out = [0f64; 2];
        for &x in chunks.remainder() {
            out[0] += x as f64;
            out[1] += ((x - m) * (x - m)) as f64;
        }
        out[0] += a.iter().map(|&l| l as f64).sum::<f64>();
        out[1] += b.iter().map(|&l| l as f64).sum::<f64>();
        out
    }
}

multiversion! {
    /// (Σ g, Σ g·(x − m)) over a plane, g = dy·(slope where y ≤ 0, else 1), as [`plane_sums`].
    fn plane_grad_sums(dy: &[f32], y: &[f32], x: &[f32], m: f32, slope: f32) -> [f64; 2] {
        let (mut a, mut b) = ([0f32; 16], [0f32; 16]);
        let (mut cd, mut cy, mut cx) = (dy.chunks_exact(16), y.chunks_exact(16), x.chunks_exact(16));
        for ((d, o), v) in (&mut cd).zip(&mut cy).zip(&mut cx) {
            for ((((a, b), &d), &o), &v) in a.iter_mut().zip(b.iter_mut()).zip(d).zip(o).zip(v) {
                let g = d * (slope + (1.0 - slope) * (o > 0.0) as u32 as f32);
                *a += g;
                *b += g * (v - m);
            }
        }
        let mut out = [0f64; 2];
        for ((&d, &o), &v) in cd.remainder().iter().zip(cy.remainder()).zip(cx.remainder()) {
            let g = d * (slope + (1.0 - slope) * (o > 0.0) as u32 as f32);
            out[0] += g as f64;
            out[1] += (g * (v - m)) as f64;
        }
        out[0] += a.iter().map(|&l| l as f64).sum::<f64>();
        out[1] += b.iter().map(|&l| l as f64).sum::<f64>();
        out
    }
}

multiversion! {
    /// y = leaky_relu(x·s + t) with `slope` (1: no activation), as [`super::elementwise`] does.
    fn plane_scale_shift(x: &[f32], s: f32, t: f32, slope: f32, y: &mut [f32]) {
        for (o, &v) in y.iter_mut().zip(x) {
            let z = v * s + t;
            *o = z.max(0.0) + slope * z.min(0.0);
        }
    }
}

multiversion! {
    /// dx = a·g + b·x + d, g = dy·(slope where y ≤ 0, else 1).
    fn plane_affine_grad(dy: &[f32], y: &[f32], x: &[f32], coef: [f32; 3], slope: f32, dx: &mut [f32]) {
        let [a, b, d] = coef;
        for (((o, &g), &yo), &v) in dx.iter_mut().zip(dy).zip(y).zip(x) {
            let g = g * (slope + (1.0 - slope) * (yo > 0.0) as u32 as f32);
            *o = a * g + (b * v + d);
        }
    }
}

/// The planes of channel `ch` in x (n, c, plane).
fn channel_planes(x: &[f32], c: usize, plane: usize, ch: usize) -> impl Iterator<Item = &[f32]> {
    x.chunks_exact(plane).skip(ch).step_by(c)
}

/// mean[ch] and biased variance var[ch] of each channel (two passes: the mean, then squared
/// deviations from it, which keeps the variance accurate when the mean is large).
pub fn moments(x: &[f32], c: usize, plane: usize, mean: &mut [f32], var: &mut [f32]) {
    let count = (x.len() / c.max(1)) as f64;
    let mut both: Vec<[f32; 2]> = vec![[0.0; 2]; c];
    for_each_chunk(&mut both, 1, |ch, out| {
        let m = channel_planes(x, c, plane, ch).map(|p| plane_sums(p, 0.0)[0]).sum::<f64>() / count;
        let mf = m as f32;
        let v = channel_planes(x, c, plane, ch).map(|p| plane_sums(p, mf)[1]).sum::<f64>() / count;
        out[0] = [mf, v as f32];
    });
    for ((m, v), b) in mean.iter_mut().zip(var.iter_mut()).zip(&both) {
        (*m, *v) = (b[0], b[1]);
    }
}

/// The slope `plane_*` take: that of the leaky ReLU applied after the normalisation, 1 for none.
fn slope_of(slope: Option<f32>) -> f32 {
    slope.unwrap_or(1.0)
}

/// y = act(x·scale[ch] + shift[ch]).
pub fn scale_shift(x: &[f32], c: usize, plane: usize, scale: &[f32], shift: &[f32], slope: Option<f32>, y: &mut [f32]) {
    let per = planes_per_chunk(plane);
    for_each_chunk(y, per * plane, |ci, yc| {
        for (j, yp) in yc.chunks_mut(plane).enumerate() {
            let p = ci * per + j;
            plane_scale_shift(&x[p * plane..(p + 1) * plane], scale[p % c], shift[p % c], slope_of(slope), yp);
        }
    });
}

/// Per channel: Σ g and Σ g·(x − mean), g being the gradient before the activation.
#[allow(clippy::too_many_arguments)]
pub fn grad_sums(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    c: usize,
    plane: usize,
    mean: &[f32],
    slope: Option<f32>,
    sum_g: &mut [f64],
    sum_gx: &mut [f64],
) {
    let mut both: Vec<[f64; 2]> = vec![[0.0; 2]; c];
    for_each_chunk(&mut both, 1, |ch, out| {
        let planes = channel_planes(x, c, plane, ch).zip(channel_planes(y, c, plane, ch)).zip(channel_planes(dy, c, plane, ch));
        let mut acc = [0f64; 2];
        for ((xp, yp), dp) in planes {
            let s = plane_grad_sums(dp, yp, xp, mean[ch], slope_of(slope));
            acc = [acc[0] + s[0], acc[1] + s[1]];
        }
        out[0] = acc;
    });
    for ((a, b), s) in sum_g.iter_mut().zip(sum_gx.iter_mut()).zip(&both) {
        (*a, *b) = (s[0], s[1]);
    }
}

/// dx = alpha[ch]·g + beta[ch]·x + delta[ch].
#[allow(clippy::too_many_arguments)]
pub fn affine_grad(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    c: usize,
    plane: usize,
    slope: Option<f32>,
    coef: &[[f32; 3]],
    dx: &mut [f32],
) {
    let per = planes_per_chunk(plane);
    for_each_chunk(dx, per * plane, |ci, dc| {
        for (j, dp) in dc.chunks_mut(plane).enumerate() {
            let p = ci * per + j;
            let r = p * plane..(p + 1) * plane;
            plane_affine_grad(&dy[r.clone()], &y[r.clone()], &x[r], coef[p % c], slope_of(slope), dp);
        }
    });
}
