//! The shifted products of [`super::conv_shift`] fused into one register-blocked kernel ("direct
//! convolution"), for CPUs with AVX-512.
//!
//! Through `gemm`, each of the k² taps is its own small product (inner dimension c = 32 or 64), so
//! every tap re-packs its operands and re-reads and re-writes the whole output: on the CNN's
//! shapes that ran at ~41% of the machine's sgemm rate. Here one tile of MR output rows by NR
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

use crate::ops::Conv2dGeom;

/// Output rows per tile (filters forward, input channels backward).
pub const MR: usize = 8;
/// Output columns per tile: three 16-float vectors.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const NR: usize = 48;

/// Whether this CPU runs the kernel (it has AVX-512F, and `SCRATCHNET_MAX_CPU_ISA` allows it:
/// [`super::isa::current`] never exceeds what the CPU has). Elsewhere the callers use `gemm` per
/// tap.
pub fn available() -> bool {
    super::isa::current() >= super::isa::Isa::Avx512
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

/// out[i·out_rs + p] = Σ_j Σ_t packed(i, j, t) · inp[j·in_rs + p + offs[t]] for i < m, p < ncols,
/// with `packed` from [`pack_forward`] / [`pack_backward`] (m rows, kc reduction rows). Overwrites.
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
    if m == 0 || ncols == 0 {
        return;
    }
    let max_off = offs.iter().copied().max().unwrap_or(0);
    // The bounds every unchecked read and write below stays within.
    assert!(packed.len() >= m.div_ceil(MR) * kc * offs.len() * MR, "taps_product: packed weights too short");
    assert!(kc > 0 && inp.len() >= (kc - 1) * in_rs + ncols + max_off, "taps_product: input too short");
    assert!(out.len() >= (m - 1) * out_rs + ncols, "taps_product: output too short");
    assert!(available(), "taps_product needs AVX-512");
    // Column panels outside: a panel of the input (kc rows of NR columns and the taps' reach)
    // stays in L1 while every row block uses it.
    #[cfg(target_arch = "x86_64")]
    for p0 in (0..ncols).step_by(NR) {
        for block in 0..m.div_ceil(MR) {
            let rows = MR.min(m - block * MR);
            let w = &packed[block * kc * offs.len() * MR..];
            // SAFETY: AVX-512F was asserted above. `tile_any`'s bounds, from the asserts above:
            // `w` starts block·kc·offs.len()·MR floats into `packed`, which holds m.div_ceil(MR)
            // such blocks; p0 < ncols, so inp[p0 + j·in_rs + off + col] and
            // out[(block·MR + r)·out_rs + p0 + col] for col < ncols - p0, j < kc, r < rows ≤ MR
            // (block·MR + r < m) are inside `inp` and `out`; `out` is a unique borrow.
            unsafe {
                avx512::tile_any(
                    w.as_ptr(),
                    kc,
                    offs,
                    inp.as_ptr().add(p0),
                    in_rs,
                    ncols - p0,
                    out.as_mut_ptr().add(block * MR * out_rs + p0),
                    out_rs,
                    rows,
                )
            };
        }
    }
}

/// xt (q, cs) = src (c, q)ᵀ: an image with channels last, for [`taps_weight_grad`].
pub fn transpose_image(src: &[f32], c: usize, q: usize, xt: &mut [f32], cs: usize) {
    for (p, row) in xt.chunks_mut(cs).take(q).enumerate() {
        for (j, v) in row[..c].iter_mut().enumerate() {
            *v = src[j * q + p];
        }
    }
}

/// dw[(t·f + i)·c + j] += Σ_p dy[i·dy_rs + p] · xt[(p + offs[t])·cs + j] for i < f, j < c, over the
/// pixels p = y·wp + x, y < oh, x < ow: the weight gradient by tap, (k², f, c), of one image given
/// dY wide and the image transposed. (The wide layout's other columns are skipped, not summed.)
#[allow(clippy::too_many_arguments)]
pub fn taps_weight_grad(
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
    assert!(available(), "taps_weight_grad needs AVX-512");
    #[cfg(target_arch = "x86_64")]
    for (t, &off) in offs.iter().enumerate() {
        for c0 in (0..c).step_by(64) {
            let lanes = (c - c0).min(64);
            let mf = avx512::wgrad_rows(lanes);
            for f0 in (0..f).step_by(mf) {
                // SAFETY: AVX-512F was asserted above; 1 ≤ mf.min(f - f0) ≤ mf = wgrad_rows(lanes)
                // and lanes ≤ 64. The tile reads dy[(f0 + r)·dy_rs + p] and
                // xt[(p + off)·cs + c0 + l], reads and writes dw[(t·f + f0 + r)·c + c0 + l], for
                // r < rows, p < ncols, l < lanes (c0 + l < c): in bounds by the asserts above, and
                // `dw` is a unique borrow.
                unsafe {
                    avx512::wgrad_tile(
                        dy.as_ptr().add(f0 * dy_rs),
                        dy_rs,
                        mf.min(f - f0),
                        xt.as_ptr().add(off * cs + c0),
                        cs,
                        (oh, ow, wp),
                        lanes,
                        dw.as_mut_ptr().add((t * f + f0) * c + c0),
                        c,
                    )
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    fn mask(lanes: usize, v: usize) -> __mmask16 {
        let n = lanes.saturating_sub(16 * v).min(16);
        ((1u32 << n) - 1) as __mmask16
    }

    /// Filters per weight-gradient tile for `lanes` channels: about 24 accumulators.
    pub fn wgrad_rows(lanes: usize) -> usize {
        if lanes > 48 { 6 } else { 8 }
    }

    /// Weight-gradient tile: `rows` filters by `lanes` channels. out[r·out_rs + l] +=
    /// Σ_p dy[r·dy_rs + p] · x[p·cs + l] over the pixels p = y·wp + x, y < oh, x < ow.
    ///
    /// # Safety
    /// The CPU has AVX-512F; 1 ≤ rows ≤ [`wgrad_rows`]`(lanes)`, 1 ≤ lanes ≤ 64. For r < rows,
    /// l < lanes and those pixels p: dy[r·dy_rs + p] and x[p·cs + l] are readable, and
    /// out[r·out_rs + l] is readable, writable and not accessed by anyone else during the call.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn wgrad_tile(
        dy: *const f32,
        dy_rs: usize,
        rows: usize,
        x: *const f32,
        cs: usize,
        pixels: (usize, usize, usize),
        lanes: usize,
        out: *mut f32,
        out_rs: usize,
    ) {
        // SAFETY: the caller's promises; each arm's MF is wgrad_rows(lanes) (8, or 6 from 49 lanes)
        // and its NV vectors of 16 cover `lanes` (whole vectors, unmasked, only when lanes = 16·NV).
        unsafe {
            match lanes {
                // Channel counts that fill whole vectors load without masks.
                32 => wgrad::<8, 2, true>(dy, dy_rs, rows, x, cs, pixels, lanes, out, out_rs),
                64 => wgrad::<6, 4, true>(dy, dy_rs, rows, x, cs, pixels, lanes, out, out_rs),
                _ => match lanes.div_ceil(16) {
                    1 => wgrad::<8, 1, false>(dy, dy_rs, rows, x, cs, pixels, lanes, out, out_rs),
                    2 => wgrad::<8, 2, false>(dy, dy_rs, rows, x, cs, pixels, lanes, out, out_rs),
                    3 => wgrad::<8, 3, false>(dy, dy_rs, rows, x, cs, pixels, lanes, out, out_rs),
                    _ => wgrad::<6, 4, false>(dy, dy_rs, rows, x, cs, pixels, lanes, out, out_rs),
                },
            }
        }
    }

    /// [`wgrad_tile`] with MF accumulator rows of NV vectors.
    ///
    /// # Safety
    /// As [`wgrad_tile`], with rows ≤ MF and 16·(NV - 1) < lanes ≤ 16·NV (lanes = 16·NV if FULL),
    /// so every vector's pointer is inside the row and masked-off lanes are the only ones past it.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn wgrad<const MF: usize, const NV: usize, const FULL: bool>(
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
        let masks: [__mmask16; NV] = std::array::from_fn(|v| mask(lanes, v));
        // Rows past `rows` repeat the last one and are not stored.
        // SAFETY: row r.min(rows - 1) < rows (rows ≥ 1) of dy, as the caller promises.
        let dy_rows: [*const f32; MF] = std::array::from_fn(|r| unsafe { dy.add(r.min(rows - 1) * dy_rs) });
        let mut acc = [[_mm512_setzero_ps(); NV]; MF];
        for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
            for (v, a) in acc_r.iter_mut().enumerate() {
                // SAFETY: r < rows, and lanes 16·v + (0..16) masked to < lanes, in the caller's
                // `out`; 16·v < lanes keeps the pointer inside the row.
                *a = unsafe { _mm512_maskz_loadu_ps(masks[v], out.add(r * out_rs + 16 * v)) };
            }
        }
        for y in 0..oh {
            for p in y * wp..y * wp + ow {
                // SAFETY: one of the caller's pixels p; channels 16·v + (0..16) masked to < lanes,
                // or all of them when FULL (lanes = 16·NV).
                let xv: [__m512; NV] = std::array::from_fn(|v| unsafe {
                    let at = x.add(p * cs + 16 * v);
                    if FULL { _mm512_loadu_ps(at) } else { _mm512_maskz_loadu_ps(masks[v], at) }
                });
                for (acc_r, &row) in acc.iter_mut().zip(&dy_rows) {
                    // SAFETY: `row` is one of the caller's dy rows and p one of its pixels.
                    let d = _mm512_set1_ps(unsafe { *row.add(p) });
                    for (a, &xv) in acc_r.iter_mut().zip(&xv) {
                        *a = _mm512_fmadd_ps(d, xv, *a);
                    }
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate().take(rows) {
            for (v, &a) in acc_r.iter().enumerate() {
                // SAFETY: as the loads from `out` above.
                unsafe { _mm512_mask_storeu_ps(out.add(r * out_rs + 16 * v), masks[v], a) };
            }
        }
    }

    /// One MR x NR tile, or narrower for the last columns: out[r·out_rs + col] =
    /// Σ_j Σ_t w[(j·offs.len() + t)·MR + r] · inp[j·in_rs + offs[t] + col], stored for r < rows,
    /// col < cols.min(NR).
    ///
    /// # Safety
    /// The CPU has AVX-512F; cols ≥ 1, rows ≤ MR. `w` holds kc·offs.len()·MR readable floats; for
    /// j < kc, t < offs.len(), col < cols.min(NR), inp[j·in_rs + offs[t] + col] is readable; for
    /// r < rows and those columns, out[r·out_rs + col] is writable and not accessed by anyone else
    /// during the call.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn tile_any(
        w: *const f32,
        kc: usize,
        offs: &[usize],
        inp: *const f32,
        in_rs: usize,
        cols: usize,
        out: *mut f32,
        out_rs: usize,
        rows: usize,
    ) {
        // SAFETY: the caller's promises; each arm's NV vectors of 16 cover min(cols, NR) columns,
        // unmasked (FULL) only when cols ≥ NR = 16·NV.
        unsafe {
            match cols.div_ceil(16) {
                _ if cols >= NR => tile::<{ NR / 16 }, true>(w, kc, offs, inp, in_rs, cols, out, out_rs, rows),
                1 => tile::<1, false>(w, kc, offs, inp, in_rs, cols, out, out_rs, rows),
                2 => tile::<2, false>(w, kc, offs, inp, in_rs, cols, out, out_rs, rows),
                _ => tile::<{ NR / 16 }, false>(w, kc, offs, inp, in_rs, cols, out, out_rs, rows),
            }
        }
    }

    /// [`tile_any`] with NV vectors of columns.
    ///
    /// # Safety
    /// As [`tile_any`], with cols ≥ 16·NV if FULL, else 16·(NV - 1) < cols ≤ 16·NV: every vector's
    /// pointer is then inside the columns the caller vouches for, and masked-off lanes are the
    /// only ones past them.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const NV: usize, const FULL: bool>(
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
        let masks: [__mmask16; NV] = std::array::from_fn(|v| mask(cols, v));
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        // One (input row j, tap) step: NV vectors of the shifted row times MR broadcast weights;
        // `src` = inp + j·in_rs + offs[t], `w` at step j·offs.len() + t.
        macro_rules! step {
            ($src:expr) => {
                let src = $src;
                // SAFETY: columns 16·v + (0..16) of one of the caller's (j, t) rows, masked to
                // < cols unless FULL.
                let x: [__m512; NV] = std::array::from_fn(|v| unsafe {
                    if FULL {
                        _mm512_loadu_ps(src.add(16 * v))
                    } else {
                        _mm512_maskz_loadu_ps(masks[v], src.add(16 * v))
                    }
                });
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    // SAFETY: weight r < MR of this step's MR, inside the caller's kc·offs.len()·MR.
                    let wv = _mm512_set1_ps(unsafe { *w.add(r) });
                    for (a, &xv) in acc_r.iter_mut().zip(&x) {
                        *a = _mm512_fmadd_ps(wv, xv, *a);
                    }
                }
                // SAFETY: to the next step's weights, at most one past the caller's last.
                w = unsafe { w.add(MR) };
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
                // SAFETY: r < rows, columns 16·v + (0..16) masked to < cols (16·v < cols).
                unsafe { _mm512_mask_storeu_ps(out.add(r * out_rs + 16 * v), masks[v], a) };
            }
        }
    }
}
