//! The shifted products of [`super::conv_shift`] fused into one register-blocked kernel ("direct
//! convolution"), for CPUs with vector instructions: written once over [`Simd`], compiled for
//! AVX-512, AVX2 + FMA and NEON, with each level's tile shapes in `Kernels`.
//!
//! Through `gemm`, each of the k² taps is its own small product (inner dimension c = 32 or 64), so
//! every tap re-packs its operands and re-reads and re-writes the whole output, far below the
//! sgemm rate on the CNN's shapes. Here one tile of MR output rows by NR
//! output columns stays in registers while the kernel runs through all c·k² (channel, tap) pairs,
//! reading the input image in place (tap t is the fixed offset `offs[t]` in the wide layout) and
//! broadcasting pre-packed weights. Nothing is packed per image and each output is written once.
//!
//! The same kernel computes the input gradient: with dY laid out wide and preceded by (k-1)·wp +
//! (k-1) zeros, dX is a convolution of dY with the transposed, spatially flipped weights.
//!
//! The weight gradient dW_tap (f, c) = dY_wide · X_tapᵀ reduces over pixels, so its tile keeps MF
//! filters by up to 64 channels in registers over the whole image: channels are the vector lanes,
//! read from the image transposed to (pixel, channel), and dY is broadcast from its rows.
//!
//! Every output is summed in the same order at every level (forward: over (channel, tap) from
//! zero; weight gradient: over pixels onto the existing value), so the levels agree bit for bit.

// Elsewhere than x86-64 and AArch64 (wasm32) there is no vector level: [`Level`] has no variant,
// and the kernels are compiled but never called.
#![cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code, unused_imports, unused_macros, unused_mut, unused_unsafe, unused_variables, unreachable_code)
)]

use crate::ops::cpu::simd::{Level, level};
use crate::ops::params::Conv2dGeom;

mod kernels;
mod shapes;
#[cfg(test)]
mod tests;

/// Rows per packed weight block (filters forward, input channels backward). A level's tile
/// takes all of them or a part (`Kernels::TILE_ROWS`).
pub const MR: usize = 8;

/// Whether this CPU runs the kernels: it has vector instructions we have kernels for, and
/// `SCRATCHNET_MAX_CPU_ISA` allows them. Elsewhere the callers use `gemm` per tap.
pub fn available() -> bool {
    level().is_some()
}

/// Offsets of the k² taps in a wide layout of row length `wp`: tap (ki, kj) reads pixel p + ki·wp + kj.
pub fn tap_offsets(g: &Conv2dGeom, wp: usize, out: &mut Vec<usize>) {
    out.clear();
    out.extend((0..g.k * g.k).map(|t| (t / g.k) * wp + t % g.k));
}

/// Packs w (f, c, k, k) for the forward pass: row blocks of MR filters (zero-padded), and within a
/// block, for each channel and tap, the MR filters' weights side by side.
pub fn pack_forward(w: &[f32], g: &Conv2dGeom, out: &mut Vec<f32>) {
    let kk = g.k * g.k;
    out.clear();
    pack_append(g.f, g.c, kk, out, |row, red, t| w[(row * g.c + red) * kk + t]);
}

/// Packs w for the input gradient: rows are input channels, the reduction runs over filters, and
/// the taps are flipped (tap t reads weight kk - 1 - t).
pub fn pack_backward(w: &[f32], g: &Conv2dGeom, out: &mut Vec<f32>) {
    let kk = g.k * g.k;
    out.clear();
    pack_append(g.c, g.f, kk, out, |row, red, t| w[(red * g.c + row) * kk + kk - 1 - t])
}

/// Appends to `out` the packing of a (rows, red, kk) weight array given by `weight(row, j, t)`:
/// blocks of MR rows (zero-padded); within a block, for each j and t, the MR rows side by side.
pub fn pack_append(
    rows: usize,
    red: usize,
    kk: usize,
    out: &mut Vec<f32>,
    weight: impl Fn(usize, usize, usize) -> f32,
) {
    let start = out.len();
    out.resize(start + rows.div_ceil(MR) * red * kk * MR, 0.0);
    for (block, dst) in out[start..].chunks_mut(red * kk * MR).enumerate() {
        for (i, v) in dst.iter_mut().enumerate() {
            let (r, t, j) = (i % MR, i / MR % kk, i / (MR * kk));
            let row = block * MR + r;
            if row < rows {
                *v = weight(row, j, t);
            }
        }
    }
}

/// `out[i·out_rs + p] = Σ_j Σ_t packed(i, j, t) · inp[j·in_rs + p + offs[t]]` for i < m, p < ncols,
/// with `packed` from [`pack_forward`] / [`pack_backward`] (m rows, kc reduction rows). Overwrites.
/// Needs [`available`].
#[allow(clippy::too_many_arguments)]
pub fn taps_product(
    packed: &[f32],
    m: usize,
    kc: usize,
    offs: &[usize],
    inp: &[f32],
    in_rs: usize,
    ncols: usize,
    out: &mut [f32],
    out_rs: usize,
) {
    let level = level().expect("taps_product needs vector instructions (conv::direct::available)");
    taps_product_in(level, packed, m, kc, offs, inp, in_rs, ncols, out, out_rs)
}

/// [`taps_product`] at a given level.
#[allow(clippy::too_many_arguments)]
pub(super) fn taps_product_in(
    level: Level,
    packed: &[f32],
    m: usize,
    kc: usize,
    offs: &[usize],
    inp: &[f32],
    in_rs: usize,
    ncols: usize,
    out: &mut [f32],
    out_rs: usize,
) {
    if m == 0 || ncols == 0 {
        return;
    }
    let max_off = offs.iter().copied().max().unwrap_or(0);
    // The bounds every unchecked read and write below stays within.
    assert!(packed.len() >= m.div_ceil(MR) * kc * offs.len() * MR, "taps_product: packed weights too short");
    assert!(kc > 0 && inp.len() >= (kc - 1) * in_rs + ncols + max_off, "taps_product: input too short");
    assert!(out.len() >= (m - 1) * out_rs + ncols, "taps_product: output too short");
    let (inp, out) = (inp.as_ptr(), out.as_mut_ptr());
    // SAFETY: the level's token proves its instruction set; the asserts above bound every access
    // (see `kernels::taps_product_at`), and `out` is a unique borrow.
    unsafe { kernels::taps_product(level, packed, m, kc, offs, inp, in_rs, ncols, out, out_rs) }
}

/// xt (q, cs) = src (c, q)ᵀ: an image with channels last, for [`taps_weight_grad`].
pub fn transpose_image(src: &[f32], c: usize, q: usize, xt: &mut [f32], cs: usize) {
    match level() {
        Some(level) => transpose_image_in(level, src, c, q, xt, cs),
        None => {
            for (p, row) in xt.chunks_mut(cs).take(q).enumerate() {
                for (j, v) in row[..c].iter_mut().enumerate() {
                    *v = src[j * q + p];
                }
            }
        }
    }
}

/// [`transpose_image`] at a given level.
pub(super) fn transpose_image_in(level: Level, src: &[f32], c: usize, q: usize, xt: &mut [f32], cs: usize) {
    assert!(c <= cs && src.len() >= c * q && (q == 0 || xt.len() >= (q - 1) * cs + c), "transpose_image: sizes");
    let (src, xt) = (src.as_ptr(), xt.as_mut_ptr());
    // SAFETY: the level's token proves its instruction set; the assert bounds every
    // element `kernels::transpose_at` reads (src[j·q + p]) and writes (xt[p·cs + j]), j < c, p < q, and
    // `xt` is a unique borrow.
    unsafe { kernels::transpose(level, src, c, q, xt, cs) }
}

/// `dw[(t·f + i)·c + j] += Σ_p dy[i·dy_rs + p] · xt[(p + offs[t])·cs + j]` for i < f, j < c, over the
/// pixels p = y·wp + x, y < oh, x < ow: the weight gradient by tap, (k², f, c), of one image given
/// dY wide and the image transposed. (The wide layout's other columns are skipped, not summed.)
/// Needs [`available`].
#[allow(clippy::too_many_arguments)]
pub fn taps_weight_grad(
    dy: &[f32],
    f: usize,
    dy_rs: usize,
    xt: &[f32],
    c: usize,
    cs: usize,
    offs: &[usize],
    px: (usize, usize, usize),
    dw: &mut [f32],
) {
    let level = level().expect("taps_weight_grad needs vector instructions (conv::direct::available)");
    taps_weight_grad_in(level, dy, f, dy_rs, xt, c, cs, offs, px, dw)
}

/// [`taps_weight_grad`] at a given level.
#[allow(clippy::too_many_arguments)]
pub(super) fn taps_weight_grad_in(
    level: Level,
    dy: &[f32],
    f: usize,
    dy_rs: usize,
    xt: &[f32],
    c: usize,
    cs: usize,
    offs: &[usize],
    (oh, ow, wp): (usize, usize, usize),
    dw: &mut [f32],
) {
    if f == 0 || c == 0 || oh == 0 || ow == 0 {
        return;
    }
    assert!(ow <= wp, "taps_weight_grad: row longer than its stride");
    let ncols = (oh - 1) * wp + ow;
    let max_off = offs.iter().copied().max().unwrap_or(0);
    // The bounds every unchecked read and write below stays within.
    assert!(dy.len() >= (f - 1) * dy_rs + ncols, "taps_weight_grad: dy too short");
    assert!(cs >= c && xt.len() >= (ncols - 1 + max_off) * cs + c, "taps_weight_grad: image too short");
    assert!(dw.len() >= offs.len() * f * c, "taps_weight_grad: output too short");
    let (dy, xt, dw) = (dy.as_ptr(), xt.as_ptr(), dw.as_mut_ptr());
    let px = (oh, ow, wp);
    // SAFETY: the level's token proves its instruction set; the asserts above bound every access
    // (see `kernels::taps_weight_grad_at`), and `dw` is a unique borrow.
    unsafe { kernels::weight_grad(level, dy, f, dy_rs, xt, c, cs, offs, px, dw) }
}
