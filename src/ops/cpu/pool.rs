//! Max pooling over (n·c) independent planes. The forward pass records, per output, the index of
//! the winning input within its plane; the backward pass routes each gradient there.

use super::par::{for_each_chunk, for_each_chunk2};
use crate::ops::Pool2dGeom;

/// Planes per chunk of parallel work.
const PLANES_PER_CHUNK: usize = 16;

pub fn forward(x: &[f32], g: &Pool2dGeom, y: &mut [f32], argmax: &mut [u32]) {
    let (oh, ow, in_plane) = (g.oh(), g.ow(), g.h * g.w);
    let out_plane = oh * ow;
    for_each_chunk2(y, PLANES_PER_CHUNK * out_plane, argmax, PLANES_PER_CHUNK * out_plane, |ci, yc, ac| {
        for (j, (y_p, a_p)) in yc.chunks_mut(out_plane).zip(ac.chunks_mut(out_plane)).enumerate() {
            let plane = ci * PLANES_PER_CHUNK + j;
            let x_p = &x[plane * in_plane..(plane + 1) * in_plane];
            if g.k == 2 && g.stride == 2 {
                forward_2x2(x_p, g, y_p, a_p);
                continue;
            }
            for oy in 0..oh {
                for ox in 0..ow {
                    let first = oy * g.stride * g.w + ox * g.stride;
                    let (mut best, mut at) = (x_p[first], first);
                    for ki in 0..g.k {
                        let row = first + ki * g.w;
                        for (kj, &v) in x_p[row..row + g.k].iter().enumerate() {
                            // `>` keeps the first of equal maxima, as PyTorch does. Selects, not
                            // branches: which input wins is a coin toss a branch predictor loses
                            // (this pass took 4.6 ms per CNN batch with a branch, measured).
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
    });
}

/// The CNN's 2x2 windows, stride 2: whole rows at a time, no index arithmetic per tap (the general
/// loop took 3.4 ns per input, this ~0.5, measured).
fn forward_2x2(x_p: &[f32], g: &Pool2dGeom, y_p: &mut [f32], a_p: &mut [u32]) {
    let ow = g.ow();
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
