//! Element-wise kernels: activations, dropout, bias and row sums, flips and averages. Large tensors are split in
//! fixed chunks across threads; element-wise work gives the same bits whatever the split.

use super::multiversion::multiversion;
use super::par::{for_each_chunk, for_each_chunk2};
use crate::rng::Rng;

const CHUNK: usize = 1 << 15;

/// y = x for x >= 0, slope·x otherwise (slope 0 is ReLU).
pub fn leaky_relu(x: &[f32], slope: f32, y: &mut [f32]) {
    for_each_chunk(y, CHUNK, |i, yc| {
        yc.copy_from_slice(&x[i * CHUNK..i * CHUNK + yc.len()]);
        leaky_relu_here(yc, slope);
    });
}

/// dx = dy where the activation's output y > 0, slope·dy elsewhere (PyTorch's convention: the
/// slope at 0). Output, not input: y > 0 exactly when x > 0, and fused layers keep only y.
pub fn leaky_relu_backward(y: &[f32], dy: &[f32], slope: f32, dx: &mut [f32]) {
    for_each_chunk(dx, CHUNK, |i, dc| leaky_relu_grad_here(&y[i * CHUNK..], &dy[i * CHUNK..], slope, dc));
}

multiversion! {
    /// dst = pixel·scale + offset: a dataset's image bytes as a model's input values.
    pub fn pixels_to_f32(src: &[u8], scale: f32, offset: f32, dst: &mut [f32]) {
        for (d, &p) in dst.iter_mut().zip(src) {
            *d = p as f32 * scale + offset;
        }
    }
}

multiversion! {
    /// acc += v, element by element, on this thread.
    pub fn add_here(acc: &mut [f32], v: &[f32]) {
        for (a, &v) in acc.iter_mut().zip(v) {
            *a += v;
        }
    }
}

multiversion! {
    /// [`leaky_relu`] in place, on this thread (inside kernels already parallel over images).
    pub fn leaky_relu_here(y: &mut [f32], slope: f32) {
        for v in y {
            // Branch-free so it vectorises: activations are ~half negative, a branch mispredicts.
            *v = v.max(0.0) + slope * v.min(0.0);
        }
    }
}

multiversion! {
    /// [`leaky_relu_backward`] on this thread.
    pub fn leaky_relu_grad_here(y: &[f32], dy: &[f32], slope: f32, dx: &mut [f32]) {
        for ((o, &v), &d) in dx.iter_mut().zip(y).zip(dy) {
            let positive = (v > 0.0) as u32 as f32;
            *o = d * (slope + (1.0 - slope) * positive);
        }
    }
}

/// Inverted dropout: mask = (u > p) / (1 - p), y = x·mask. One draw from `rng` keys the call;
/// element i's uniform u is then a hash of (key, i). With no generator state carried from one
/// element to the next, the loop vectorises and splits across threads, and the mask depends on
/// the seed alone, whatever the thread count.
pub fn dropout(x: &[f32], p: f32, rng: &mut Rng, mask: &mut [f32], y: &mut [f32]) {
    let keep = 1.0 / (1.0 - p);
    // 24-bit uniforms; u > p compared as integers: u·2^24 > p·2^24.
    let threshold = (p as f64 * (1u64 << 24) as f64) as u32;
    let key = rng.next_u64();
    for_each_chunk2(mask, CHUNK, y, CHUNK, |ci, m, yc| {
        dropout_chunk((ci * CHUNK) as u32, key, threshold, keep, &x[ci * CHUNK..], m, yc)
    });
}

multiversion! {
    /// [`dropout`] of the elements from index `base` on.
    fn dropout_chunk(base: u32, key: u64, threshold: u32, keep: f32, x: &[f32], m: &mut [f32], y: &mut [f32]) {
        let (k0, k1) = (key as u32, (key >> 32) as u32);
        for (j, ((m, y), &x)) in m.iter_mut().zip(y.iter_mut()).zip(x).enumerate() {
            let u = hash32(hash32((base + j as u32) ^ k0) ^ k1) >> 8;
            *m = keep * (u > threshold) as u32 as f32;
            *y = x * *m;
        }
    }
}

/// A 32-bit integer hash with good avalanche (Chris Wellons' "lowbias32").
#[inline(always)]
fn hash32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// out = a·b element-wise.
pub fn mul(a: &[f32], b: &[f32], out: &mut [f32]) {
    for_each_chunk(out, CHUNK, |i, oc| mul_here(&a[i * CHUNK..], &b[i * CHUNK..], oc));
}

multiversion! {
    fn mul_here(a: &[f32], b: &[f32], out: &mut [f32]) {
        for ((o, &u), &v) in out.iter_mut().zip(a).zip(b) {
            *o = u * v;
        }
    }
}

/// Reverses every row of length `w`.
pub fn reverse_rows(x: &mut [f32], w: usize) {
    for row in x.chunks_mut(w) {
        row.reverse();
    }
}

multiversion! {
    /// a = (a + b) / 2.
    pub fn average_into(a: &mut [f32], b: &[f32]) {
        for (u, &v) in a.iter_mut().zip(b) {
            *u = 0.5 * (*u + v);
        }
    }
}

multiversion! {
    /// y (rows, b.len()) += b on every row.
    pub fn add_row_bias(y: &mut [f32], b: &[f32]) {
        for row in y.chunks_mut(b.len()) {
            for (o, &v) in row.iter_mut().zip(b) {
                *o += v;
            }
        }
    }
}

multiversion! {
    /// Σ x, in 16 interleaved partial sums added at the end: one running sum is a chain of
    /// dependent additions that cannot be vectorised (the bias gradient sums every plane of dY).
    pub fn sum(x: &[f32]) -> f32 {
        const L: usize = 16;
        let mut acc = [0.0f32; L];
        let chunks = x.chunks_exact(L);
        let tail: f32 = chunks.remainder().iter().sum();
        for c in chunks {
            for (a, &v) in acc.iter_mut().zip(c) {
                *a += v;
            }
        }
        acc.iter().sum::<f32>() + tail
    }
}

multiversion! {
    /// db = Σ_rows dy.
    pub fn sum_rows(dy: &[f32], db: &mut [f32]) {
        db.fill(0.0);
        for row in dy.chunks(db.len()) {
            for (o, &v) in db.iter_mut().zip(row) {
                *o += v;
            }
        }
    }
}

multiversion! {
    /// db += s·Σ_rows dy.
    pub fn add_sum_rows(dy: &[f32], s: f32, db: &mut [f32]) {
        for row in dy.chunks(db.len()) {
            for (o, &v) in db.iter_mut().zip(row) {
                *o += s * v;
            }
        }
    }
}
