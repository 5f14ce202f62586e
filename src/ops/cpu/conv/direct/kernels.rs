// Elsewhere than x86-64 and AArch64 (wasm32) there is no vector level: [`Level`] has no variant,
// and the kernels are compiled but never called.
#![cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code, unused_imports, unused_macros, unused_mut, unused_unsafe, unused_variables, unreachable_code)
)]

//! The generic loops of the direct kernels, written once over [`Simd`], and their entry points at
//! each level.

use super::MR;
use super::shapes::Kernels;
use crate::ops::cpu::simd::{Simd, per_level};

per_level! {
    /// [`taps_product_at`] at `level`.
    ///
    /// # Safety
    /// As [`taps_product_at`]'s.
    pub(super) unsafe fn taps_product(packed: &[f32], m: usize, kc: usize, offs: &[usize], inp: *const f32, in_rs: usize, ncols: usize, out: *mut f32, out_rs: usize) = taps_product_at;
}

per_level! {
    /// [`transpose_at`] at `level`.
    ///
    /// # Safety
    /// As [`transpose_at`]'s.
    pub(super) unsafe fn transpose(src: *const f32, c: usize, q: usize, xt: *mut f32, cs: usize) = transpose_at;
}

per_level! {
    /// [`taps_weight_grad_at`] at `level`.
    ///
    /// # Safety
    /// As [`taps_weight_grad_at`]'s.
    pub(super) unsafe fn weight_grad(dy: *const f32, f: usize, dy_rs: usize, xt: *const f32, c: usize, cs: usize, offs: &[usize], px: (usize, usize, usize), dw: *mut f32) = taps_weight_grad_at;
}

/// xt[p·cs + j] = src[j·q + p] for j < c, p < q: blocks of LANES x LANES in registers, by
/// log2(LANES) rounds of interleaving rows i and i + LANES/2 (a perfect shuffle), the edges one
/// element at a time.
///
/// # Safety
/// `s`'s instruction set is compiled in; those elements of `src` are readable and of `xt`
/// writable, and accessed by no one else during the call.
#[inline(always)]
unsafe fn transpose_at<S: Simd>(s: S, src: *const f32, c: usize, q: usize, xt: *mut f32, cs: usize) {
    let l = S::LANES;
    let (full_c, full_q) = (c / l * l, q / l * l);
    let mut v = [s.zero(); 16];
    assert!(l <= v.len() && l.is_power_of_two());
    for j0 in (0..full_c).step_by(l) {
        for p0 in (0..full_q).step_by(l) {
            for (i, v) in v.iter_mut().enumerate().take(l) {
                // SAFETY: channel j0 + i < c, pixels p0..p0 + l ≤ q.
                *v = unsafe { s.load(src.add((j0 + i) * q + p0)) };
            }
            for _ in 0..l.trailing_zeros() {
                let mut next = [s.zero(); 16];
                for i in 0..l / 2 {
                    (next[2 * i], next[2 * i + 1]) = s.interleave(v[i], v[i + l / 2]);
                }
                v = next;
            }
            for (i, &v) in v.iter().enumerate().take(l) {
                // SAFETY: pixel p0 + i < q, channels j0..j0 + l ≤ c.
                unsafe { s.store(xt.add((p0 + i) * cs + j0), v) };
            }
        }
    }
    // The edges: channels past full_c, and pixels past full_q of the others.
    for j in 0..c {
        for p in (if j < full_c { full_q } else { 0 })..q {
            // SAFETY: j < c, p < q.
            unsafe { *xt.add(p * cs + j) = *src.add(j * q + p) };
        }
    }
}

/// [`taps_product`]'s loops: column panels outside, so that a panel of the input (kc rows of a
/// tile's columns and the taps' reach) stays in L1 while every row block uses it.
///
/// # Safety
/// `s`'s instruction set is compiled in (an entry point); `packed` holds m.div_ceil(MR) blocks of
/// kc·offs.len()·MR floats; for j < kc, t < offs.len(), p < ncols, inp[j·in_rs + offs[t] + p] is
/// readable; for i < m, out[i·out_rs + p] is writable and not accessed by anyone else.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn taps_product_at<S: Kernels>(
    s: S,
    packed: &[f32],
    m: usize,
    kc: usize,
    offs: &[usize],
    inp: *const f32,
    in_rs: usize,
    ncols: usize,
    out: *mut f32,
    out_rs: usize,
) {
    let block_len = kc * offs.len() * MR;
    for p0 in (0..ncols).step_by(S::TILE_VECTORS * S::LANES) {
        for block in 0..m.div_ceil(MR) {
            for r0 in (0..MR).step_by(S::TILE_ROWS) {
                let row = block * MR + r0;
                if row >= m {
                    break;
                }
                // SAFETY: weights r0.. of this block (inside `packed`, r0 < MR), columns p0.. of
                // the input (p0 < ncols) and of output rows row..row + rows (row + rows ≤ m): the
                // tile reads and writes only what the caller vouches for.
                unsafe {
                    s.tile_any(
                        packed.as_ptr().add(block * block_len + r0),
                        kc,
                        offs,
                        inp.add(p0),
                        in_rs,
                        ncols - p0,
                        out.add(row * out_rs + p0),
                        out_rs,
                        S::TILE_ROWS.min(m - row),
                    )
                }
            }
        }
    }
}

/// [`taps_weight_grad`]'s loops over taps, channel chunks and filter tiles.
///
/// # Safety
/// `s`'s instruction set is compiled in; with ncols = (oh - 1)·wp + ow and max_off the largest of
/// `offs`: dy[i·dy_rs + p] for i < f, p < ncols and xt[(p + off)·cs + j] for j < c ≤ cs are
/// readable; dw[..offs.len()·f·c] is writable and not accessed by anyone else.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn taps_weight_grad_at<S: Kernels>(
    s: S,
    dy: *const f32,
    f: usize,
    dy_rs: usize,
    xt: *const f32,
    c: usize,
    cs: usize,
    offs: &[usize],
    px: (usize, usize, usize),
    dw: *mut f32,
) {
    for (t, &off) in offs.iter().enumerate() {
        for c0 in (0..c).step_by(S::WGRAD_LANES) {
            let lanes = (c - c0).min(S::WGRAD_LANES);
            let mf = S::wgrad_rows(lanes);
            for f0 in (0..f).step_by(mf) {
                // SAFETY: 1 ≤ mf.min(f - f0) ≤ wgrad_rows(lanes), 1 ≤ lanes ≤ WGRAD_LANES. The
                // tile reads dy[(f0 + r)·dy_rs + p] and xt[(p + off)·cs + c0 + l], reads and
                // writes dw[(t·f + f0 + r)·c + c0 + l], for r < rows, l < lanes (c0 + l < c): as
                // the caller vouches.
                unsafe {
                    s.wgrad_tile(
                        dy.add(f0 * dy_rs),
                        dy_rs,
                        mf.min(f - f0),
                        xt.add(off * cs + c0),
                        cs,
                        px,
                        lanes,
                        dw.add((t * f + f0) * c + c0),
                        c,
                    )
                }
            }
        }
    }
}

/// Weight-gradient tile: MF accumulator rows (filters) of NV vectors (channels). out[r·out_rs + l]
/// += Σ_p dy[r·dy_rs + p] · x[p·cs + l] over the pixels p = y·wp + x, y < oh, x < ow.
///
/// # Safety
/// `s`'s instruction set is compiled in; 1 ≤ rows ≤ MF; LANES·(NV - 1) < lanes ≤ LANES·NV
/// (lanes = LANES·NV if FULL), so every vector's pointer is inside the row and masked-off lanes
/// are the only ones past it. For r < rows, l < lanes and those pixels p: dy[r·dy_rs + p] and
/// x[p·cs + l] are readable, and out[r·out_rs + l] is readable, writable and not accessed by
/// anyone else during the call.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn wgrad<S: Simd, const MF: usize, const NV: usize, const FULL: bool>(
    s: S,
    dy: *const f32,
    dy_rs: usize,
    rows: usize,
    x: *const f32,
    cs: usize,
    (oh, ow, wp): (usize, usize, usize),
    lanes: usize,
    out: *mut f32,
    out_rs: usize,
) {
    let mut masks = [s.mask(0); NV];
    for (v, m) in masks.iter_mut().enumerate() {
        *m = s.mask(lanes.saturating_sub(S::LANES * v));
    }
    // Rows past `rows` repeat the last one and are not stored.
    let mut dy_rows = [dy; MF];
    for (r, row) in dy_rows.iter_mut().enumerate() {
        // SAFETY: row r.min(rows - 1) < rows (rows ≥ 1) of dy, as the caller promises.
        *row = unsafe { dy.add(r.min(rows - 1) * dy_rs) };
    }
    let mut acc = [[s.zero(); NV]; MF];
    for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
        for (v, a) in acc_r.iter_mut().enumerate() {
            // SAFETY: r < rows, lanes LANES·v + i masked to < lanes, in the caller's `out`;
            // LANES·v < lanes keeps the pointer inside the row.
            *a = unsafe { s.load_masked(out.add(r * out_rs + S::LANES * v), masks[v]) };
        }
    }
    for y in 0..oh {
        for p in y * wp..y * wp + ow {
            let mut xv = [s.zero(); NV];
            for (v, xv) in xv.iter_mut().enumerate() {
                // SAFETY: one of the caller's pixels p; channels LANES·v + i masked to < lanes, or
                // all of them when FULL (lanes = LANES·NV).
                *xv = unsafe {
                    let at = x.add(p * cs + S::LANES * v);
                    if FULL { s.load(at) } else { s.load_masked(at, masks[v]) }
                };
            }
            for (acc_r, &row) in acc.iter_mut().zip(&dy_rows) {
                // SAFETY: `row` is one of the caller's dy rows and p one of its pixels.
                let d = s.splat(unsafe { *row.add(p) });
                for (a, &xv) in acc_r.iter_mut().zip(&xv) {
                    *a = s.fma(d, xv, *a);
                }
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate().take(rows) {
        for (v, &a) in acc_r.iter().enumerate() {
            // SAFETY: as the loads from `out` above.
            unsafe { s.store_masked(out.add(r * out_rs + S::LANES * v), masks[v], a) };
        }
    }
}

/// One ROWS x NV·LANES tile, or narrower for the last columns: out[r·out_rs + col] =
/// Σ_j Σ_t w[(j·offs.len() + t)·MR + r] · inp[j·in_rs + offs[t] + col], stored for r < rows,
/// col < cols.min(NV·LANES).
///
/// # Safety
/// `s`'s instruction set is compiled in; cols ≥ 1, rows ≤ ROWS ≤ MR; cols ≥ LANES·NV if FULL,
/// else LANES·(NV - 1) < cols ≤ LANES·NV. `w` holds (kc·offs.len() - 1)·MR + ROWS readable floats; for
/// j < kc, t < offs.len(), col < cols.min(LANES·NV), inp[j·in_rs + offs[t] + col] is readable;
/// for r < rows and those columns, out[r·out_rs + col] is writable and not accessed by anyone
/// else during the call.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn tile<S: Simd, const ROWS: usize, const NV: usize, const FULL: bool>(
    s: S,
    mut w: *const f32,
    kc: usize,
    offs: &[usize],
    inp: *const f32,
    in_rs: usize,
    cols: usize,
    out: *mut f32,
    out_rs: usize,
    rows: usize,
) {
    let mut masks = [s.mask(0); NV];
    for (v, m) in masks.iter_mut().enumerate() {
        *m = s.mask(cols.saturating_sub(S::LANES * v));
    }
    let mut acc = [[s.zero(); NV]; ROWS];
    // One (input row j, tap) step: NV vectors of the shifted row times ROWS broadcast weights;
    // `src` = inp + j·in_rs + offs[t], `w` at step j·offs.len() + t.
    macro_rules! step {
        ($src:expr) => {
            let src = $src;
            let mut x = [s.zero(); NV];
            for (v, x) in x.iter_mut().enumerate() {
                // SAFETY: columns LANES·v + i of one of the caller's (j, t) rows, masked to < cols
                // unless FULL.
                *x = unsafe {
                    if FULL { s.load(src.add(S::LANES * v)) } else { s.load_masked(src.add(S::LANES * v), masks[v]) }
                };
            }
            for (r, acc_r) in acc.iter_mut().enumerate() {
                // SAFETY: weight r < ROWS of this step's MR, inside the caller's weights.
                let wv = s.splat(unsafe { *w.add(r) });
                for (a, &xv) in acc_r.iter_mut().zip(&x) {
                    *a = s.fma(wv, xv, *a);
                }
            }
            // To the next step's weights (past the caller's last after the last step: never read).
            w = w.wrapping_add(MR);
        };
    }
    if let [off] = *offs {
        // One tap (Winograd's products): no inner loop.
        for j in 0..kc {
            // SAFETY: column 0 of row (j, offs[0]), which the caller vouches for (cols ≥ 1).
            step!(unsafe { inp.add(j * in_rs + off) });
        }
    } else {
        for j in 0..kc {
            // SAFETY: j < kc: between `inp` and row (j, offs[0])'s first column, both inside
            // the caller's input.
            let row = unsafe { inp.add(j * in_rs) };
            for &off in offs {
                // SAFETY: column 0 of row (j, off), which the caller vouches for (cols ≥ 1).
                step!(unsafe { row.add(off) });
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate().take(rows) {
        for (v, &a) in acc_r.iter().enumerate() {
            // SAFETY: r < rows, columns LANES·v + i masked to < cols (LANES·v < cols).
            unsafe { s.store_masked(out.add(r * out_rs + S::LANES * v), masks[v], a) };
        }
    }
}
