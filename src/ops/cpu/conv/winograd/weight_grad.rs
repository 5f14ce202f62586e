// Elsewhere than x86-64 and AArch64 (wasm32) there is no vector level: [`Level`] has no variant,
// and the kernels are compiled but never called.
#![cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code, unused_imports, unused_macros, unused_mut, unused_unsafe, unused_variables, unreachable_code)
)]

//! The weight gradient by Winograd F(3x3, 2x2): the dY transform, the products by the direct
//! weight-gradient kernel, and the transform back to 3x3 weights.

use super::input::transform_input;
use super::{G, Scratch, Tile};
use crate::ops::cpu::conv::direct as conv_direct;
use crate::ops::cpu::simd::{Level, Simd, level, per_level};

/// The weight gradient by the same algorithm, F(3x3, 2x2): differentiating Y = Aᵀ [U ⊙ V] A
/// with respect to U = G g Gᵀ gives
///   dL/dg = Gᵀ [ Σ_tiles (A dY Aᵀ) ⊙ V ] G
/// with V the forward pass's input transform and A dY Aᵀ a 4x4 transform of each 2x2 tile of dY.
/// Summed over the tiles of every image, that is 16 products
///   M_ξ (kc, m) += V_ξ (kc, tiles) · D_ξ (tiles, m),   D_ξ = (A dY Aᵀ)_ξ
/// each with 16 multiply-adds per tile instead of 36, by the direct weight-gradient kernel
/// ([`conv_direct`]; D laid out with channels last), and one transform Gᵀ M G per weight
/// ([`add_weight_grad`]) once all images are in.
///
/// Adds to `acc` (16, kc, m) the M of one image: `inp` (kc, h, w) as for [`correlate`](super::correlate), `dy`
/// (m, oh, ow) the gradient of its output. Needs [`available`](super::available).
#[allow(clippy::too_many_arguments)]
pub fn accumulate_weight_grad(
    inp: &[f32],
    (kc, h, w): (usize, usize, usize),
    pad: usize,
    dy: &[f32],
    m: usize,
    s: &mut Scratch,
    acc: &mut [f32],
) {
    let level = level().expect("winograd::accumulate_weight_grad needs vector instructions (winograd::available)");
    accumulate_weight_grad_in(level, inp, (kc, h, w), pad, dy, m, s, acc)
}

/// [`accumulate_weight_grad`] at a given level.
#[allow(clippy::too_many_arguments)]
pub(super) fn accumulate_weight_grad_in(
    level: Level,
    inp: &[f32],
    (kc, h, w): (usize, usize, usize),
    pad: usize,
    dy: &[f32],
    m: usize,
    s: &mut Scratch,
    acc: &mut [f32],
) {
    let (oh, ow) = (h + 2 * pad - 2, w + 2 * pad - 2);
    let tiles = oh.div_ceil(2) * ow.div_ceil(2);
    s.v.resize(16 * kc * tiles, 0.0);
    let (th, tw) = transform_input(level, Tile::F2, inp, (kc, h, w), pad, tiles, s);
    assert!(dy.len() >= m * oh * ow, "winograd::accumulate_weight_grad: dy too short");
    assert!(acc.len() >= 16 * kc * m, "winograd::accumulate_weight_grad: accumulator too short");
    // dY with channels last, then D (16, tiles, m).
    s.dyt.resize(oh * ow * m, 0.0);
    conv_direct::transpose_image_in(level, dy, m, oh * ow, &mut s.dyt, m);
    // Components apart by a multiple of 4 KiB plus a cache line: 16 streams that an exact
    // multiple (conv2: 144 tiles x 64 channels) would put in the same L1 set.
    let ds = (tiles * m).next_multiple_of(1024) + 16;
    s.m.resize(16 * ds, 0.0);
    // SAFETY: the level's token proves its instruction set; s.dyt holds oh·ow·m floats and s.m
    // 16 components of ds ≥ tiles·m, (th, tw) = (oh, ow) halved up.
    unsafe { transform_dy(level, &s.dyt, m, (oh, ow), (th, tw), &mut s.m, ds) }
    for xi in 0..16 {
        conv_direct::taps_weight_grad_in(
            level,
            &s.v[xi * tiles..],
            kc,
            16 * tiles,
            &s.m[xi * ds..xi * ds + tiles * m],
            m,
            m,
            &[0],
            (1, tiles, tiles),
            &mut acc[xi * kc * m..(xi + 1) * kc * m],
        );
    }
}

/// dw (m, kc, 3, 3) += Gᵀ M G for every (output, input) channel pair, M from
/// [`accumulate_weight_grad`]'s `acc` (16, kc, m).
/// Parallel over output channels.
pub fn add_weight_grad(acc: &[f32], kc: usize, m: usize, dw: &mut [f32]) {
    assert!(acc.len() >= 16 * kc * m && dw.len() >= 9 * kc * m, "winograd::add_weight_grad: sizes");
    crate::ops::cpu::par::for_each_chunk(&mut dw[..9 * kc * m], 9 * kc, |i, dw_i| {
        for (j, dw_ij) in dw_i.chunks_mut(9).enumerate() {
            let mm = |xi: usize| acc[(xi * kc + j) * m + i];
            // Gᵀ M: 3 x 4, then (Gᵀ M) G: 3 x 3.
            let gm: [[f32; 4]; 3] =
                std::array::from_fn(|a| std::array::from_fn(|q| (0..4).map(|p| G[p][a] * mm(4 * p + q)).sum()));
            for (t, v) in dw_ij.iter_mut().enumerate() {
                let (a, b) = (t / 3, t % 3);
                *v += (0..4).map(|q| gm[a][q] * G[q][b]).sum::<f32>();
            }
        }
    });
}

per_level! {
    /// [`dy_transform`] at `level`.
    ///
    /// # Safety
    /// As [`dy_transform`]'s.
    unsafe fn transform_dy(dyt: &[f32], m: usize, out_dims: (usize, usize), tiles: (usize, usize), d: &mut [f32], ds: usize) = dy_transform;
}

/// D (16, tiles, m) = A dY Aᵀ of every 2x2 tile of dY, component ξ at d + ξ·ds, from dY with
/// channels last, `dyt` (oh·ow, m); A = [[1, 0], [1, 1], [1, -1], [0, -1]], outputs past the
/// plane's odd edge taken as zero. The m channels are the vector lanes.
///
/// # Safety
/// `s`'s instruction set is compiled in; (th, tw) = (oh, ow) halved up; dyt.len() ≥ oh·ow·m,
/// ds ≥ th·tw·m, d.len() ≥ 15·ds + th·tw·m.
#[inline(always)]
unsafe fn dy_transform<S: Simd>(
    s: S,
    dyt: &[f32],
    m: usize,
    (oh, ow): (usize, usize),
    (th, tw): (usize, usize),
    d: &mut [f32],
    ds: usize,
) {
    let tiles = th * tw;
    debug_assert!(dyt.len() >= oh * ow * m && ds >= tiles * m && d.len() >= 15 * ds + tiles * m);
    debug_assert!(2 * th >= oh && 2 * tw >= ow);
    let (src, dst) = (dyt.as_ptr(), d.as_mut_ptr());
    for ty in 0..th {
        for tx in 0..tw {
            let u = ty * tw + tx;
            // The tile's pixels that exist: (2ty + a, 2tx + b).
            let mut at = [[None; 2]; 2];
            for (a, row) in at.iter_mut().enumerate() {
                for (b, at) in row.iter_mut().enumerate() {
                    let (y, x) = (2 * ty + a, 2 * tx + b);
                    *at = (y < oh && x < ow).then_some((y * ow + x) * m);
                }
            }
            for f0 in (0..m).step_by(S::LANES) {
                let k = s.mask(m - f0);
                let mut t = [[s.zero(); 2]; 2];
                for (t, at) in t.iter_mut().zip(&at) {
                    for (t, at) in t.iter_mut().zip(at) {
                        if let Some(p) = at {
                            // SAFETY: pixel p / m < oh·ow, channels f0.. masked to < m.
                            *t = unsafe { s.load_masked(src.add(p + f0), k) };
                        }
                    }
                }
                // A over the rows, then over the columns: [p, q] -> [p, p + q, p - q, -q].
                let [[d00, d01], [d10, d11]] = t;
                let rows = [
                    [d00, d01],
                    [s.add(d00, d10), s.add(d01, d11)],
                    [s.sub(d00, d10), s.sub(d01, d11)],
                    [s.sub(s.zero(), d10), s.sub(s.zero(), d11)],
                ];
                for (a, [p, q]) in rows.into_iter().enumerate() {
                    let vals = [p, s.add(p, q), s.sub(p, q), s.sub(s.zero(), q)];
                    for (b, &val) in vals.iter().enumerate() {
                        // SAFETY: ξ·ds + u·m + f0 + lane < 15·ds + tiles·m for the masked lanes.
                        unsafe { s.store_masked(dst.add((4 * a + b) * ds + u * m + f0), k, val) };
                    }
                }
            }
        }
    }
}
