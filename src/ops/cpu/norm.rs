//! Batch normalisation over x (n, c, plane): per-channel moments, the normalisation as one
//! scale and shift per channel, and the backward pass as one affine map of (dy, x) per channel.
//!
//! Channel sums run over each channel's n planes in order (a plane sum in f32 lanes, planes added
//! in f64), one channel per task, so they do not depend on the thread count. The element-wise
//! passes split (n·c) planes into fixed chunks.

use super::par::for_each_chunk;

/// Elements per chunk of the element-wise passes (whole planes).
const CHUNK_ELEMS: usize = 1 << 14;

fn planes_per_chunk(plane: usize) -> usize {
    (CHUNK_ELEMS / plane.max(1)).max(1)
}

/// Σ v in 16 f32 lanes (vectorisable without reassociation), then the lanes in f64.
fn sum(v: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut lanes = [0f32; 16];
    let mut chunks = v.chunks_exact(16);
    for c in &mut chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += f(x);
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&x| f(x) as f64).sum();
    lanes.iter().map(|&l| l as f64).sum::<f64>() + tail
}

/// Σ f(a_i, b_i) in f32 lanes, then f64.
fn sum2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    let mut lanes = [0f32; 16];
    let (mut ca, mut cb) = (a.chunks_exact(16), b.chunks_exact(16));
    for (x, y) in (&mut ca).zip(&mut cb) {
        for ((l, &p), &q) in lanes.iter_mut().zip(x).zip(y) {
            *l += f(p, q);
        }
    }
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(&p, &q)| f(p, q) as f64).sum();
    lanes.iter().map(|&l| l as f64).sum::<f64>() + tail
}

/// Σ f(a_i, b_i, c_i) in f32 lanes, then f64.
fn sum3(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f64 {
    let mut lanes = [0f32; 16];
    let (mut ca, mut cb, mut cc) = (a.chunks_exact(16), b.chunks_exact(16), c.chunks_exact(16));
    for ((x, y), z) in (&mut ca).zip(&mut cb).zip(&mut cc) {
        for (((l, &p), &q), &r) in lanes.iter_mut().zip(x).zip(y).zip(z) {
            *l += f(p, q, r);
        }
    }
    let rest = ca.remainder().iter().zip(cb.remainder()).zip(cc.remainder());
    let tail: f64 = rest.map(|((&p, &q), &r)| f(p, q, r) as f64).sum();
    lanes.iter().map(|&l| l as f64).sum::<f64>() + tail
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
        let m = channel_planes(x, c, plane, ch).map(|p| sum(p, |v| v)).sum::<f64>() / count;
        let mf = m as f32;
        let v = channel_planes(x, c, plane, ch).map(|p| sum(p, |v| (v - mf) * (v - mf))).sum::<f64>() / count;
        out[0] = [mf, v as f32];
    });
    for ((m, v), b) in mean.iter_mut().zip(var.iter_mut()).zip(&both) {
        (*m, *v) = (b[0], b[1]);
    }
}

/// The activation applied after the normalisation, if any: leaky ReLU with this slope.
fn act(z: f32, slope: Option<f32>) -> f32 {
    match slope {
        Some(s) if z <= 0.0 => s * z,
        _ => z,
    }
}

/// y = act(x·scale[ch] + shift[ch]).
pub fn scale_shift(x: &[f32], c: usize, plane: usize, scale: &[f32], shift: &[f32], slope: Option<f32>, y: &mut [f32]) {
    let per = planes_per_chunk(plane);
    for_each_chunk(y, per * plane, |ci, yc| {
        for (j, yp) in yc.chunks_mut(plane).enumerate() {
            let p = ci * per + j;
            let (s, t) = (scale[p % c], shift[p % c]);
            for (o, &v) in yp.iter_mut().zip(&x[p * plane..(p + 1) * plane]) {
                *o = act(v.mul_add(s, t), slope);
            }
        }
    });
}

/// The gradient reaching the normalisation's output: dy, times the activation's slope where the
/// activated output y is not positive.
fn pre_act(dy: f32, y: f32, slope: Option<f32>) -> f32 {
    match slope {
        Some(s) if y <= 0.0 => s * dy,
        _ => dy,
    }
}

#[allow(clippy::too_many_arguments)]
/// Per channel: Σ g and Σ g·(x − mean), g being the gradient before the activation.
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
        let m = mean[ch];
        let (mut g, mut gx) = (0f64, 0f64);
        let planes = channel_planes(x, c, plane, ch).zip(channel_planes(y, c, plane, ch)).zip(channel_planes(dy, c, plane, ch));
        for ((xp, yp), dp) in planes {
            match slope {
                None => {
                    g += sum(dp, |d| d);
                    gx += sum2(dp, xp, |d, v| d * (v - m));
                }
                Some(s) => {
                    // g is dy scaled where y is not positive; y and dy walk together.
                    g += sum2(dp, yp, |d, o| pre_act(d, o, Some(s)));
                    gx += sum3(dp, yp, xp, |d, o, v| pre_act(d, o, Some(s)) * (v - m));
                }
            }
        }
        out[0] = [g, gx];
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
            let [a, b, d] = coef[p % c];
            let r = p * plane..(p + 1) * plane;
            for (((o, &g), &v), &yo) in dp.iter_mut().zip(&dy[r.clone()]).zip(&x[r.clone()]).zip(&y[r]) {
                *o = a * pre_act(g, yo, slope) + b.mul_add(v, d);
            }
        }
    });
}
