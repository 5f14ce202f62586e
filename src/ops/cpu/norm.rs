//! Batch normalisation over x (n, c, plane): per-channel moments, the normalisation as one
//! scale and shift per channel, and the backward pass as one affine map of (dy, x) per channel.
//!
//! Channel sums take two passes: one over x in memory order that sums each (image, channel) plane
//! (in f32 lanes, the lanes added in f64), then one per channel that adds its n plane sums in image
//! order, so they do not depend on the thread count. Reading x channel by channel instead jumps
//! c·plane values between planes, which defeats the prefetcher. The element-wise passes split
//! (n·c) planes into fixed chunks.

use super::multiversion::multiversion;
use super::par::for_each_chunk;

/// Elements per chunk of the element-wise passes (whole planes).
const CHUNK_ELEMS: usize = 1 << 14;

fn planes_per_chunk(plane: usize) -> usize {
    (CHUNK_ELEMS / plane.max(1)).max(1)
}

/// dy through the leaky ReLU with `slope` that made output y: dy where y > 0, slope·dy elsewhere,
/// without a branch (so that the loops vectorise).
#[inline(always)]
fn pre_activation(dy: f32, y: f32, slope: f32) -> f32 {
    dy * (slope + (1.0 - slope) * (y > 0.0) as u32 as f32)
}

multiversion! {
    /// (Σ (v − s), Σ (v − s)²) over a plane, in 16 f32 lanes (vectorised without reassociating
    /// a single sum), the lanes then added in f64.
    fn plane_sums(v: &[f32], s: f32) -> [f64; 2] {
        let (mut a, mut b) = ([0f32; 16], [0f32; 16]);
        let mut chunks = v.chunks_exact(16);
        for c in &mut chunks {
            for ((a, b), &x) in a.iter_mut().zip(b.iter_mut()).zip(c) {
                *a += x - s;
                *b += (x - s) * (x - s);
            }
        }
        let mut out = [0f64; 2];
        for &x in chunks.remainder() {
            out[0] += (x - s) as f64;
            out[1] += ((x - s) * (x - s)) as f64;
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
                let g = pre_activation(d, o, slope);
                *a += g;
                *b += g * (v - m);
            }
        }
        let mut out = [0f64; 2];
        for ((&d, &o), &v) in cd.remainder().iter().zip(cy.remainder()).zip(cx.remainder()) {
            let g = pre_activation(d, o, slope);
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
            let g = pre_activation(g, yo, slope);
            *o = a * g + (b * v + d);
        }
    }
}

/// Planes of under 16 values (a dense layer's batch norm has planes of 1): the sums of
/// [`plane_sums`] without its vector set-up, which would cost more than the plane.
fn small_plane_sums(v: &[f32], s: f32) -> [f64; 2] {
    v.iter().fold([0f64; 2], |acc, &x| [acc[0] + (x - s) as f64, acc[1] + ((x - s) * (x - s)) as f64])
}

/// [`plane_grad_sums`] for planes of under 16 values, as [`small_plane_sums`].
fn small_plane_grad_sums(dy: &[f32], y: &[f32], x: &[f32], m: f32, slope: f32) -> [f64; 2] {
    dy.iter().zip(y).zip(x).fold([0f64; 2], |acc, ((&d, &o), &v)| {
        let g = pre_activation(d, o, slope);
        [acc[0] + g as f64, acc[1] + (g * (v - m)) as f64]
    })
}

/// `partial[p] = sum(p)` for every plane p of x's n·c, in memory order, in fixed chunks.
fn per_plane(x_len: usize, plane: usize, partial: &mut Vec<[f64; 2]>, sum: impl Fn(usize) -> [f64; 2] + Sync + Send) {
    partial.resize(x_len / plane.max(1), [0.0; 2]);
    let per = planes_per_chunk(plane);
    for_each_chunk(partial, per, |ci, out| {
        for (j, o) in out.iter_mut().enumerate() {
            *o = sum(ci * per + j);
        }
    });
}

/// Σ over the n images, in image order, of channel `ch`'s plane sums.
fn channel_total(partial: &[[f64; 2]], c: usize, ch: usize) -> [f64; 2] {
    partial.iter().skip(ch).step_by(c).fold([0f64; 2], |acc, v| [acc[0] + v[0], acc[1] + v[1]])
}

/// sums[2·ch] = the mean and sums[2·ch + 1] the biased variance of each channel; `partial` holds
/// (n·c) plane sums.
pub fn moments(x: &[f32], c: usize, plane: usize, partial: &mut Vec<[f64; 2]>, sums: &mut [f64]) {
    let count = (x.len() / c.max(1)) as f64;
    // The sums are taken about a value of the channel (its first) rather than 0, so that
    // E[(x−s)²] − E[x−s]² does not cancel away the variance when the mean is large.
    per_plane(x.len(), plane, partial, |p| {
        let (v, s) = (&x[p * plane..(p + 1) * plane], x[(p % c) * plane]);
        if plane < 16 { small_plane_sums(v, s) } else { plane_sums(v, s) }
    });
    for (ch, out) in sums[..2 * c].chunks_exact_mut(2).enumerate() {
        let [d, d2] = channel_total(partial, c, ch);
        let (shift, var) = (d / count, d2 / count);
        out.copy_from_slice(&[x[ch * plane] as f64 + shift, (var - shift * shift).max(0.0)]);
    }
}

/// The slope `plane_*` take: that of the leaky ReLU applied after the normalisation, 1 for none.
fn slope_of(slope: Option<f32>) -> f32 {
    slope.unwrap_or(1.0)
}

/// `y = act(x·scale[ch] + shift[ch])`, `coef[ch] = [scale, shift]`.
pub fn scale_shift(x: &[f32], c: usize, plane: usize, coef: &[[f32; 2]], slope: Option<f32>, y: &mut [f32]) {
    let per = planes_per_chunk(plane);
    for_each_chunk(y, per * plane, |ci, yc| {
        for (j, yp) in yc.chunks_mut(plane).enumerate() {
            let p = ci * per + j;
            let [scale, shift] = coef[p % c];
            plane_scale_shift(&x[p * plane..(p + 1) * plane], scale, shift, slope_of(slope), yp);
        }
    });
}

/// Per channel: sums[2·ch] = Σ g and sums[2·ch + 1] = Σ g·(x − mean), g being the gradient
/// before the activation; `partial` holds (n·c) plane sums.
#[allow(clippy::too_many_arguments)]
pub fn grad_sums(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    c: usize,
    plane: usize,
    mean: &[f32],
    slope: Option<f32>,
    partial: &mut Vec<[f64; 2]>,
    sums: &mut [f64],
) {
    let slope = slope_of(slope);
    per_plane(x.len(), plane, partial, |p| {
        let r = p * plane..(p + 1) * plane;
        let (d, o, v, m) = (&dy[r.clone()], &y[r.clone()], &x[r], mean[p % c]);
        if plane < 16 { small_plane_grad_sums(d, o, v, m, slope) } else { plane_grad_sums(d, o, v, m, slope) }
    });
    for (ch, out) in sums[..2 * c].chunks_exact_mut(2).enumerate() {
        out.copy_from_slice(&channel_total(partial, c, ch));
    }
}

/// `dx = alpha[ch]·g + beta[ch]·x + delta[ch]`.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean and variance against f64 two-pass sums, for a channel far from zero (where a one-pass
    /// variance about 0 would cancel) and odd plane sizes.
    #[test]
    fn moments_match_two_pass_f64_far_from_zero() {
        let mut rng = crate::rng::Rng::new(3);
        for (n, c, plane, offset) in [(3, 2, 37, 1000.0f32), (5, 3, 1, -50.0), (2, 4, 16, 0.0)] {
            let x: Vec<f32> = (0..n * c * plane).map(|_| offset + rng.normal() * 0.5).collect();
            let mut sums = vec![0f64; 2 * c];
            moments(&x, c, plane, &mut Vec::new(), &mut sums);
            for ch in 0..c {
                let v: Vec<f64> =
                    (0..n).flat_map(|i| x[(i * c + ch) * plane..][..plane].iter().map(|&v| v as f64)).collect();
                let m = v.iter().sum::<f64>() / v.len() as f64;
                let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
                assert!((sums[2 * ch] - m).abs() < 1e-6 * m.abs().max(1.0), "mean {} vs {m}", sums[2 * ch]);
                assert!((sums[2 * ch + 1] - var).abs() < 1e-4 * var, "var {} vs {var}", sums[2 * ch + 1]);
            }
        }
    }
}

/// A batch norm's per-channel scratch (sums, coefficients), kept by its layer so that steps do
/// not allocate.
#[derive(Default)]
pub struct NormScratch {
    sums: Vec<f64>,
    /// Per (image, channel) plane sums.
    partial: Vec<[f64; 2]>,
    coef2: Vec<[f32; 2]>,
    coef3: Vec<[f32; 3]>,
}

/// mean, var (c): the mean and biased variance of each channel of x (n, c, plane).
pub fn channel_moments(
    x: &[f32],
    c: usize,
    plane: usize,
    scratch: &mut NormScratch,
    mean: &mut [f32],
    var: &mut [f32],
) {
    scratch.sums.resize(2 * c, 0.0);
    moments(x, c, plane, &mut scratch.partial, &mut scratch.sums);
    for (i, (m, v)) in mean.iter_mut().zip(var).enumerate() {
        (*m, *v) = (scratch.sums[2 * i] as f32, scratch.sums[2 * i + 1] as f32);
    }
}

/// y = act(γ·(x − mean)/√(var + eps) + β) per channel of x (n, c, plane): each channel's
/// coefficients, then one scale and shift per channel.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(
    x: &[f32],
    c: usize,
    plane: usize,
    (mean, var): (&[f32], &[f32]),
    (gamma, beta): (&[f32], &[f32]),
    eps: f32,
    slope: Option<f32>,
    scratch: &mut NormScratch,
    y: &mut [f32],
) {
    scratch.coef2.clear();
    scratch.coef2.extend((0..c).map(|i| {
        let scale = gamma[i] / (var[i] + eps).sqrt();
        [scale, beta[i] - mean[i] * scale]
    }));
    scale_shift(x, c, plane, &scratch.coef2, slope, y);
}

/// running ← (1 − momentum)·running + momentum·batch for the mean and the variance, the batch
/// variance made unbiased (× count/(count − 1)).
pub fn update_running(running: (&mut [f32], &mut [f32]), batch: (&[f32], &[f32]), momentum: f32, count: usize) {
    let unbias = if count > 1 { count as f32 / (count - 1) as f32 } else { 1.0 };
    for (r, &b) in running.0.iter_mut().zip(batch.0) {
        *r = (1.0 - momentum) * *r + momentum * b;
    }
    for (r, &b) in running.1.iter_mut().zip(batch.1) {
        *r = (1.0 - momentum) * *r + momentum * b * unbias;
    }
}

/// dγ, dβ (c) and, when given, dx of a batch norm over x (n, c, plane) with output y (activated
/// with `slope`); with `batch_stats` the statistics depend on x, which adds two terms to dx.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    n: usize,
    c: usize,
    plane: usize,
    (mean, var): (&[f32], &[f32]),
    gamma: &[f32],
    eps: f32,
    slope: Option<f32>,
    batch_stats: bool,
    grads: (&mut [f32], &mut [f32]),
    dx: Option<&mut [f32]>,
    scratch: &mut NormScratch,
) {
    scratch.sums.resize(2 * c, 0.0);
    grad_sums(x, y, dy, c, plane, mean, slope, &mut scratch.partial, &mut scratch.sums);
    let sums = &scratch.sums;
    let invstd = |i: usize| 1.0 / (var[i] as f64 + eps as f64).sqrt();
    for i in 0..c {
        grads.0[i] = (sums[2 * i + 1] * invstd(i)) as f32;
        grads.1[i] = sums[2 * i] as f32;
    }
    let Some(dx) = dx else { return };
    let m = (n * plane) as f64;
    scratch.coef3.clear();
    scratch.coef3.extend((0..c).map(|i| {
        let k = gamma[i] as f64 * invstd(i);
        if !batch_stats {
            return [k as f32, 0.0, 0.0];
        }
        let beta = -k * invstd(i) * invstd(i) * sums[2 * i + 1] / m;
        let delta = -k * sums[2 * i] / m - beta * mean[i] as f64;
        [k as f32, beta as f32, delta as f32]
    }));
    affine_grad(x, y, dy, c, plane, slope, &scratch.coef3, dx);
}
