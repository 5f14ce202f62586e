//! Max pooling over (n·c) independent planes. The forward pass records, per output, the index of
//! the winning input within its plane; the backward pass routes each gradient there.

use super::par::{for_each_chunk, for_each_chunk2};
use crate::ops::params::Pool2dGeom;

/// Planes per chunk of parallel work.
const PLANES_PER_CHUNK: usize = 16;

pub fn forward(x: &[f32], g: &Pool2dGeom, y: &mut [f32], argmax: &mut [u32]) {
    let (in_plane, out_plane) = (g.h * g.w, g.oh() * g.ow());
    for_each_chunk2(y, PLANES_PER_CHUNK * out_plane, argmax, PLANES_PER_CHUNK * out_plane, |ci, yc, ac| {
        for (j, (y_p, a_p)) in yc.chunks_mut(out_plane).zip(ac.chunks_mut(out_plane)).enumerate() {
            let plane = ci * PLANES_PER_CHUNK + j;
            let x_p = &x[plane * in_plane..(plane + 1) * in_plane];
            if g.k == 2 && g.stride == 2 {
                forward_2x2(x_p, g, y_p, a_p);
            } else {
                forward_any(x_p, g, y_p, a_p);
            }
        }
    });
}

/// Any window and stride, one plane.
fn forward_any(x_p: &[f32], g: &Pool2dGeom, y_p: &mut [f32], a_p: &mut [u32]) {
    let (oh, ow) = (g.oh(), g.ow());
    for oy in 0..oh {
        for ox in 0..ow {
            let first = oy * g.stride * g.w + ox * g.stride;
            let (mut best, mut at) = (x_p[first], first);
            for ki in 0..g.k {
                let row = first + ki * g.w;
                for (kj, &v) in x_p[row..row + g.k].iter().enumerate() {
                    // `>` keeps the first of equal maxima, as PyTorch does. Selects, not branches:
                    // which input wins is a coin toss a branch predictor loses.
                    let take = v > best;
                    best = if take { v } else { best };
                    at = if take { row + kj } else { at };
                }
            }
            y_p[oy * ow + ox] = best;
            a_p[oy * ow + ox] = at as u32;
        }
    }
}

/// The CNN's 2x2 windows, stride 2: whole rows at a time, no index arithmetic per tap (several
/// times faster than the general loop, docs/ARCHITECTURE.md); 16 windows per instruction with
/// AVX-512.
fn forward_2x2(x_p: &[f32], g: &Pool2dGeom, y_p: &mut [f32], a_p: &mut [u32]) {
    let ow = g.ow();
    #[cfg(target_arch = "x86_64")]
    if super::isa::current() == super::isa::Isa::Avx512 {
        // SAFETY: AVX-512F was detected just above; plane_2x2 bounds its accesses by the slices.
        unsafe { avx512::plane_2x2(x_p, g.w, ow, y_p, a_p) };
        return;
    }
    for (oy, (y_row, a_row)) in y_p.chunks_exact_mut(ow).zip(a_p.chunks_exact_mut(ow)).enumerate() {
        let top = 2 * oy * g.w;
        let (r0, r1) = (&x_p[top..top + 2 * ow], &x_p[top + g.w..top + g.w + 2 * ow]);
        for (ox, (((o, a), p0), p1)) in
            y_row.iter_mut().zip(a_row.iter_mut()).zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)).enumerate()
        {
            // Candidates in scan order; `>` keeps the first of equal maxima, as PyTorch does.
            let i0 = (top + 2 * ox) as u32;
            let (mut best, mut at) = (p0[0], i0);
            for (v, i) in [(p0[1], i0 + 1), (p1[0], i0 + g.w as u32), (p1[1], i0 + g.w as u32 + 1)] {
                let take = v > best;
                best = if take { v } else { best };
                at = if take { i } else { at };
            }
            *o = best;
            *a = at;
        }
    }
}

/// dx (planes, h, w) = 0 except at each window's recorded maximum, which receives dy.
pub fn backward(dy: &[f32], argmax: &[u32], g: &Pool2dGeom, dx: &mut [f32]) {
    let (in_plane, out_plane) = (g.h * g.w, g.oh() * g.ow());
    for_each_chunk(dx, PLANES_PER_CHUNK * in_plane, |ci, dxc| {
        dxc.fill(0.0);
        for (j, dx_p) in dxc.chunks_mut(in_plane).enumerate() {
            let plane = ci * PLANES_PER_CHUNK + j;
            let (dy_p, a_p) = (&dy[plane * out_plane..][..out_plane], &argmax[plane * out_plane..][..out_plane]);
            for (&d, &a) in dy_p.iter().zip(a_p) {
                dx_p[a as usize] += d;
            }
        }
    });
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// 2x2 / stride-2 pooling of one plane (rows of `w`) into rows of `ow` outputs, with the same
    /// choice as the scalar loop: candidates in scan order, `>` keeps the first.
    ///
    /// # Safety
    /// The CPU has AVX-512F. (Memory accesses are checked against the slices.)
    #[target_feature(enable = "avx512f")]
    pub unsafe fn plane_2x2(x: &[f32], w: usize, ow: usize, y: &mut [f32], at: &mut [u32]) {
        let ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        for (oy, (y_row, a_row)) in y.chunks_exact_mut(ow).zip(at.chunks_exact_mut(ow)).enumerate() {
            let top = 2 * oy * w;
            let (r0, r1) = (&x[top..top + 2 * ow], &x[top + w..top + w + 2 * ow]);
            // SAFETY: AVX-512F, as the caller promises.
            unsafe { row_2x2(r0, r1, top, w, y_row, a_row, (ev, od)) };
        }
    }

    /// One output row from input rows r0, r1 (2·y.len() floats each); `idx`: the even and odd
    /// lane permutations.
    ///
    /// # Safety
    /// The CPU has AVX-512F. (Memory accesses stay within the slices.)
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn row_2x2(
        r0: &[f32],
        r1: &[f32],
        top: usize,
        w: usize,
        y: &mut [f32],
        at: &mut [u32],
        idx: (__m512i, __m512i),
    ) {
        let (ev, od) = idx;
        let n = y.len().min(at.len()).min(r0.len() / 2).min(r1.len() / 2);
        let mask = |n: usize| ((1u32 << n.min(16)) - 1) as __mmask16;
        for x in (0..n).step_by(16) {
            let k = mask(n - x);
            // The windows' 2·16 floats of a row, split into left and right columns.
            let floats = 2 * (n - x).min(16);
            let (ka, kb) = (mask(floats), mask(floats.saturating_sub(16)));
            let ld = |r: &[f32]| -> (__m512, __m512) {
                // SAFETY: lanes masked to 2x + (0..floats), below 2n ≤ r.len(); the second pointer
                // clamped to the row's end, where its mask reads nothing (floats ≤ 16).
                let (a, b) = unsafe {
                    (
                        _mm512_maskz_loadu_ps(ka, r.as_ptr().add(2 * x)),
                        _mm512_maskz_loadu_ps(kb, r.as_ptr().add((2 * x + 16).min(r.len()))),
                    )
                };
                (_mm512_permutex2var_ps(a, ev, b), _mm512_permutex2var_ps(a, od, b))
            };
            let ((p00, p01), (p10, p11)) = (ld(r0), ld(r1));
            let i0 = _mm512_add_epi32(_mm512_set1_epi32((top + 2 * x) as i32), ev);
            let (mut best, mut arg) = (p00, i0);
            for (v, d) in [(p01, 1), (p10, w as i32), (p11, w as i32 + 1)] {
                let take = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, best);
                best = _mm512_mask_blend_ps(take, best, v);
                arg = _mm512_mask_blend_epi32(take, arg, _mm512_add_epi32(i0, _mm512_set1_epi32(d)));
            }
            // SAFETY: lanes masked to x + (0..16) < n ≤ y.len(), at.len().
            unsafe {
                _mm512_mask_storeu_ps(y.as_mut_ptr().add(x), k, best);
                _mm512_mask_storeu_epi32(at.as_mut_ptr().add(x) as *mut i32, k, arg);
            }
        }
    }
}

/// Average pooling (no padding, floor): y = the mean of each k x k window, one plane per task.
pub fn avg_forward(x: &[f32], g: &Pool2dGeom, y: &mut [f32]) {
    let (in_plane, out_plane, ow) = (g.h * g.w, g.oh() * g.ow(), g.ow());
    let inv = 1.0 / (g.k * g.k) as f32;
    for_each_chunk(y, PLANES_PER_CHUNK * out_plane, |ci, yc| {
        for (j, y_p) in yc.chunks_mut(out_plane).enumerate() {
            let plane = ci * PLANES_PER_CHUNK + j;
            let x_p = &x[plane * in_plane..(plane + 1) * in_plane];
            for (o, out) in y_p.iter_mut().enumerate() {
                let first = (o / ow) * g.stride * g.w + (o % ow) * g.stride;
                let s: f32 = (0..g.k).map(|ki| x_p[first + ki * g.w..][..g.k].iter().sum::<f32>()).sum();
                *out = s * inv;
            }
        }
    });
}

/// dx: each window's input receives dy / k² (summed where windows overlap).
pub fn avg_backward(dy: &[f32], g: &Pool2dGeom, dx: &mut [f32]) {
    let (in_plane, out_plane, ow) = (g.h * g.w, g.oh() * g.ow(), g.ow());
    let inv = 1.0 / (g.k * g.k) as f32;
    for_each_chunk(dx, PLANES_PER_CHUNK * in_plane, |ci, dc| {
        for (j, dx_p) in dc.chunks_mut(in_plane).enumerate() {
            let plane = ci * PLANES_PER_CHUNK + j;
            dx_p.fill(0.0);
            for (o, &d) in dy[plane * out_plane..(plane + 1) * out_plane].iter().enumerate() {
                let first = (o / ow) * g.stride * g.w + (o % ow) * g.stride;
                for ki in 0..g.k {
                    dx_p[first + ki * g.w..][..g.k].iter_mut().for_each(|v| *v += d * inv);
                }
            }
        }
    });
}

/// `y[p]` = the mean of plane p of x (planes of `plane` values): global average pooling.
pub fn mean_planes(x: &[f32], plane: usize, y: &mut [f32]) {
    let inv = 1.0 / plane as f32;
    for_each_chunk(y, 1024, |ci, yc| {
        for (j, o) in yc.iter_mut().enumerate() {
            let p = ci * 1024 + j;
            *o = x[p * plane..(p + 1) * plane].iter().sum::<f32>() * inv;
        }
    });
}

/// dx: every value of plane p receives `dy[p] / plane`.
pub fn mean_planes_backward(dy: &[f32], plane: usize, dx: &mut [f32]) {
    let inv = 1.0 / plane as f32;
    for_each_chunk(dx, 1024 * plane, |ci, dc| {
        for (j, dp) in dc.chunks_mut(plane).enumerate() {
            dp.fill(dy[ci * 1024 + j] * inv);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// The 2x2 path (vectorised where the CPU allows) against the general loop, with many ties
    /// (values from a few levels) and row lengths around the vector width.
    #[test]
    fn two_by_two_matches_the_general_loop() {
        let mut rng = Rng::new(5);
        for (h, w) in [(24, 24), (10, 10), (6, 34), (4, 66), (2, 2), (8, 3)] {
            let g = Pool2dGeom { h, w, k: 2, stride: 2 };
            let x: Vec<f32> = (0..h * w).map(|_| (rng.normal() * 2.0).round()).collect();
            let n = g.oh() * g.ow();
            let (mut y, mut a, mut y_ref, mut a_ref) = (vec![0.0; n], vec![0; n], vec![0.0; n], vec![0; n]);
            forward_2x2(&x, &g, &mut y, &mut a);
            forward_any(&x, &g, &mut y_ref, &mut a_ref);
            assert_eq!((y, a), (y_ref, a_ref), "{h}x{w}");
        }
    }
}
