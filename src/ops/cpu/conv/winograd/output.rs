// Elsewhere than x86-64 and AArch64 (wasm32) there is no vector level: [`Level`] has no variant,
// and the kernels are compiled but never called.
#![cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code, unused_imports, unused_macros, unused_mut, unused_unsafe, unused_variables, unreachable_code)
)]

//! The output transform Y = Aᵀ M A, with bias, leaky ReLU and the fused 2x2 max-pool, for
//! F(2x2, 3x3) and F(4x4, 3x3).

use super::Tile;
use crate::ops::cpu::simd::{Simd, per_level};

per_level! {
    /// [`output_any`] at `level`.
    ///
    /// # Safety
    /// As [`output_any`]'s.
    pub(super) unsafe fn transform(tile: Tile, mm: &[f32], ms: usize, m: usize, dims: ((usize, usize), (usize, usize)), bias: Option<&[f32]>, slope: Option<f32>, pool: bool, out: &mut [f32]) = output_any;
}

/// [`output_transform`] or [`output_transform4`], by `tile`.
///
/// # Safety
/// As theirs.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn output_any<S: Simd>(
    s: S,
    tile: Tile,
    mm: &[f32],
    ms: usize,
    m: usize,
    (out_dims, tiles): ((usize, usize), (usize, usize)),
    bias: Option<&[f32]>,
    slope: Option<f32>,
    pool: bool,
    out: &mut [f32],
) {
    // SAFETY: the caller's promises.
    unsafe {
        match tile {
            Tile::F2 => output_transform(s, mm, ms, m, out_dims, tiles, bias, slope, pool, out),
            Tile::F4 => output_transform4(s, mm, ms, m, out_dims, tiles, bias, slope, pool, out),
        }
    }
}

/// out (m, oh, ow) = Aᵀ M A + bias, through leaky ReLU with `slope` if given, from M (m, 16,
/// ·), component ξ of output channel i's tiles at mm + (16i + ξ)·ms; with `pool`, out (m, oh / 2,
/// ow / 2) = the 2x2 maximum of each whole tile instead.
///
/// # Safety
/// `s`'s instruction set is compiled in; (th, tw) = (oh, ow) halved up; ms ≥ th·tw, mm.len() ≥
/// (16·m - 1)·ms + th·tw, out.len() ≥ m·oh·ow (m·(oh / 2)·(ow / 2) with `pool`), bias (if given)
/// holds m values.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn output_transform<S: Simd>(
    s: S,
    mm: &[f32],
    ms: usize,
    m: usize,
    (oh, ow): (usize, usize),
    (th, tw): (usize, usize),
    bias: Option<&[f32]>,
    slope: Option<f32>,
    pool: bool,
    out: &mut [f32],
) {
    let tiles = th * tw;
    if pool {
        // Whole tiles only: a last odd row or column is not in any window (as max-pooling floors).
        // With both sides even the pooled plane is the tiles in their order: one run over all.
        let (ph, pw) = (oh / 2, ow / 2);
        if ph == 0 || pw == 0 {
            return;
        }
        let flat = (ph, pw) == (th, tw);
        for (i, plane) in out.chunks_mut(ph * pw).take(m).enumerate() {
            let mi = &mm[i * 16 * ms..];
            let b = bias.map_or(0.0, |b| b[i]);
            let run = if flat { tiles } else { pw };
            for (ty, row) in plane.chunks_mut(run).enumerate() {
                // SAFETY: `mi` holds 15·ms + tiles floats and ty·tw + row.len() ≤ tiles (one run
                // of all tiles, or ty < ph ≤ th and pw ≤ tw).
                unsafe { pooled_tile_row(s, mi, ms, ty * tw, (b, slope), row) };
            }
        }
        return;
    }
    for (i, plane) in out.chunks_mut(oh * ow).take(m).enumerate() {
        let mi = &mm[i * 16 * ms..];
        let b = bias.map_or(0.0, |b| b[i]);
        for ty in 0..th {
            let rows = &mut plane[2 * ty * ow..((2 * ty + 2) * ow).min(oh * ow)];
            // SAFETY: `mi` holds 15·ms + tiles ≥ 15·ms + ty·tw + tw floats (ty < th); tw =
            // ow.div_ceil(2).
            unsafe { output_tile_row(s, mi, ms, ty * tw, tw, (b, slope), rows, ow) };
        }
    }
}

/// Output rows 2ty and 2ty + 1 (`rows`, rows of `ow`; the second may be missing at an odd end)
/// from the tiles u0..u0 + tw of one output channel's M (16 components, `tiles` apart):
/// y = Aᵀ M_u A + bias (then leaky ReLU with `slope` if given), Aᵀ = [[1, 1, 1, 0],
/// [0, 1, -1, -1]], written interleaved (x = 2tx + b).
///
/// # Safety
/// `s`'s instruction set is compiled in; mi.len() ≥ 15·tiles + u0 + tw; 1 ≤ tw ≤ ow.div_ceil(2),
/// so each tile's first column 2tx is inside a row.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn output_tile_row<S: Simd>(
    s: S,
    mi: &[f32],
    tiles: usize,
    u0: usize,
    tw: usize,
    (bias, slope): (f32, Option<f32>),
    rows: &mut [f32],
    ow: usize,
) {
    debug_assert!(mi.len() >= 15 * tiles + u0 + tw && rows.len() >= ow && 2 * tw <= ow + 1);
    let l = S::LANES;
    let b = s.splat(bias);
    for tx in (0..tw).step_by(l) {
        let k = s.mask(tw - tx);
        // SAFETY: masked to lanes u0 + tx + u < u0 + tw; ξ·tiles + u0 + tw ≤ mi.len() for
        // ξ < 16, as the caller promises.
        let y = unsafe { tile_outputs(s, mi.as_ptr().add(u0 + tx), tiles, k) };
        for (a, [y0, y1]) in y.into_iter().enumerate() {
            let Some(row) = rows.get_mut(a * ow..(a + 1) * ow) else { continue };
            let (y0, y1) = (activate(s, s.add(y0, b), slope), activate(s, s.add(y1, b), slope));
            let (lo, hi) = s.interleave(y0, y1);
            let at = 2 * tx;
            // SAFETY: `row` holds ow floats (sliced); at = 2tx < ow as tx < tw ≤ ow.div_ceil(2)
            // (the caller's), and both stores are masked to the lanes before ow.
            unsafe {
                s.store_masked(row.as_mut_ptr().add(at), s.mask(ow - at), lo);
                if ow > at + l {
                    s.store_masked(row.as_mut_ptr().add(at + l), s.mask(ow - at - l), hi);
                }
            }
        }
    }
}

/// One pooled output row from the tiles u0..u0 + row.len() of one output channel's M: the
/// maximum of each tile's 2x2 outputs, plus bias, through leaky ReLU with `slope` if given.
///
/// # Safety
/// `s`'s instruction set is compiled in; mi.len() ≥ 15·tiles + u0 + row.len().
#[inline(always)]
unsafe fn pooled_tile_row<S: Simd>(
    s: S,
    mi: &[f32],
    tiles: usize,
    u0: usize,
    (bias, slope): (f32, Option<f32>),
    row: &mut [f32],
) {
    debug_assert!(mi.len() >= 15 * tiles + u0 + row.len());
    let b = s.splat(bias);
    for tx in (0..row.len()).step_by(S::LANES) {
        let k = s.mask(row.len() - tx);
        // SAFETY: masked to lanes u0 + tx + u < u0 + row.len(), inside `mi` (the caller's).
        let [[y00, y01], [y10, y11]] = unsafe { tile_outputs(s, mi.as_ptr().add(u0 + tx), tiles, k) };
        let top = s.max(s.max(y00, y01), s.max(y10, y11));
        // SAFETY: masked to the row's length.
        unsafe { s.store_masked(row.as_mut_ptr().add(tx), k, activate(s, s.add(top, b), slope)) };
    }
}

/// Aᵀ M A for a vector's worth of tiles, Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]: y[a][b] is output
/// (a, b) of each tile, from the 16 components at `m` + ξ·tiles (lanes masked by `k`).
///
/// # Safety
/// `s`'s instruction set is compiled in; the lanes of `k` at m + ξ·tiles, ξ < 16, are readable.
#[inline(always)]
unsafe fn tile_outputs<S: Simd>(s: S, m: *const f32, tiles: usize, k: S::Mask) -> [[S::V; 2]; 2] {
    // Loops, not closures: a closure would not inherit the caller's instruction set.
    let mut v = [s.zero(); 16];
    for (xi, v) in v.iter_mut().enumerate() {
        // SAFETY: the caller's promise.
        *v = unsafe { s.load_masked(m.add(xi * tiles), k) };
    }
    let (mut p0, mut p1) = ([s.zero(); 4], [s.zero(); 4]);
    for a in 0..4 {
        p0[a] = s.add(s.add(v[4 * a], v[4 * a + 1]), v[4 * a + 2]);
        p1[a] = s.sub(s.sub(v[4 * a + 1], v[4 * a + 2]), v[4 * a + 3]);
    }
    [
        [s.add(s.add(p0[0], p0[1]), p0[2]), s.add(s.add(p1[0], p1[1]), p1[2])],
        [s.sub(s.sub(p0[1], p0[2]), p0[3]), s.sub(s.sub(p1[1], p1[2]), p1[3])],
    ]
}

/// Aᵀ m for one column m0..m5, Aᵀ of F(4x4, 3x3): [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0],
/// [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]].
#[inline(always)]
fn at4<S: Simd>(s: S, m: [S::V; 6]) -> [S::V; 4] {
    let (p, q) = (s.add(m[1], m[2]), s.sub(m[1], m[2]));
    let (r, t) = (s.add(m[3], m[4]), s.sub(m[3], m[4]));
    [
        s.add(s.add(m[0], p), r),
        s.fma(s.splat(2.0), t, q),
        s.fma(s.splat(4.0), r, p),
        s.add(s.fma(s.splat(8.0), t, q), m[5]),
    ]
}

/// F(4x4, 3x3): out (m, oh, ow) = Aᵀ M A + bias, through leaky ReLU with `slope` if given, from M
/// (m, 36, ·), component ξ of output channel i's tiles at mm + (36i + ξ)·ms; with `pool`, out (m,
/// oh / 2, ow / 2) = the maximum of each 2x2 window instead.
///
/// # Safety
/// `s`'s instruction set is compiled in; (th, tw) = (oh, ow) divided by 4 rounding up; ms ≥ th·tw,
/// mm.len() ≥ (36·m - 1)·ms + th·tw, out.len() ≥ m·oh·ow (m·(oh / 2)·(ow / 2) with `pool`), bias
/// (if given) holds m values.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn output_transform4<S: Simd>(
    s: S,
    mm: &[f32],
    ms: usize,
    m: usize,
    (oh, ow): (usize, usize),
    (th, tw): (usize, usize),
    bias: Option<&[f32]>,
    slope: Option<f32>,
    pool: bool,
    out: &mut [f32],
) {
    debug_assert!(ms >= th * tw && mm.len() >= (36 * m - 1) * ms + th * tw);
    // Pooled: windows of whole output pairs only (a last odd row or column is in none, as
    // max-pooling floors); each tile holds 2x2 windows.
    let (rh, rw) = if pool { (oh / 2, ow / 2) } else { (oh, ow) };
    if rh == 0 || rw == 0 {
        return;
    }
    let per_tile = if pool { 2 } else { 4 };
    for (i, plane) in out.chunks_mut(rh * rw).take(m).enumerate() {
        let mi = &mm[i * 36 * ms..];
        let b = bias.map_or(0.0, |b| b[i]);
        for ty in 0..rh.div_ceil(per_tile) {
            let rows = &mut plane[per_tile * ty * rw..((per_tile * ty + per_tile) * rw).min(rh * rw)];
            // SAFETY: `mi` holds 35·ms + tiles ≥ 35·ms + ty·tw + tw floats (ty < th); the row's
            // tiles cover its outputs: rw.div_ceil(per_tile) ≤ tw.
            unsafe { output_tile_row4(s, mi, ms, ty * tw, rw.div_ceil(per_tile), (b, slope), pool, rows, rw) };
        }
    }
}

/// Output rows 4ty..4ty + 4 (`rows`, rows of `rw`; fewer at the plane's end) from the tiles u0..u0 +
/// tn of one output channel's M (36 components, `tiles` apart): y = Aᵀ M_u A + bias (then leaky
/// ReLU with `slope` if given), written interleaved (x = 4tx + b). With `pool`, pooled rows 2ty and
/// 2ty + 1 instead: the maximum of each 2x2 window of y before bias and activation (both
/// monotone: the same as after), x = 2tx + b.
///
/// # Safety
/// `s`'s instruction set is compiled in; mi.len() ≥ 35·tiles + u0 + tn; tn = rw divided by 4 (2
/// with `pool`) rounding up.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn output_tile_row4<S: Simd>(
    s: S,
    mi: &[f32],
    tiles: usize,
    u0: usize,
    tn: usize,
    (bias, slope): (f32, Option<f32>),
    pool: bool,
    rows: &mut [f32],
    rw: usize,
) {
    debug_assert!(mi.len() >= 35 * tiles + u0 + tn && rows.len() >= rw);
    let l = S::LANES;
    let b = s.splat(bias);
    for tx in (0..tn).step_by(l) {
        let k = s.mask(tn - tx);
        let mut y = [[s.zero(); 4]; 6];
        for (a, y) in y.iter_mut().enumerate() {
            let mut c = [s.zero(); 6];
            for (bb, c) in c.iter_mut().enumerate() {
                // SAFETY: masked to lanes u0 + tx + u < u0 + tn; ξ·tiles + u0 + tn ≤ mi.len()
                // for ξ < 36, as the caller promises.
                *c = unsafe { s.load_masked(mi.as_ptr().add((6 * a + bb) * tiles + u0 + tx), k) };
            }
            // Aᵀ over the columns of row a of the tile.
            *y = at4(s, c);
        }
        // Aᵀ over the rows: out[r][cx] of each tile.
        let mut out = [[s.zero(); 4]; 4];
        for cx in 0..4 {
            let mut c = [s.zero(); 6];
            for (c, r) in c.iter_mut().zip(&y) {
                *c = r[cx];
            }
            let col = at4(s, c);
            for (o, &v) in out.iter_mut().zip(&col) {
                o[cx] = v;
            }
        }
        if pool {
            for a in 0..2 {
                let Some(row) = rows.get_mut(a * rw..(a + 1) * rw) else { continue };
                let mut top = [s.zero(); 2];
                for (bx, top) in top.iter_mut().enumerate() {
                    let (r0, r1) = (&out[2 * a], &out[2 * a + 1]);
                    let p = s.max(r0[2 * bx], r0[2 * bx + 1]);
                    let q = s.max(r1[2 * bx], r1[2 * bx + 1]);
                    *top = activate(s, s.add(s.max(p, q), b), slope);
                }
                let (lo, hi) = s.interleave(top[0], top[1]);
                // SAFETY: `row` holds rw floats (sliced); both stores masked to the lanes before rw.
                unsafe { store_run(s, row, 2 * tx, &[lo, hi]) };
            }
        } else {
            for (r, [y0, y1, y2, y3]) in out.into_iter().enumerate() {
                let Some(row) = rows.get_mut(r * rw..(r + 1) * rw) else { continue };
                let (y0, y1) = (activate(s, s.add(y0, b), slope), activate(s, s.add(y1, b), slope));
                let (y2, y3) = (activate(s, s.add(y2, b), slope), activate(s, s.add(y3, b), slope));
                let ((a0, a1), (b0, b1)) = (s.interleave(y0, y2), s.interleave(y1, y3));
                let ((v0, v1), (v2, v3)) = (s.interleave(a0, b0), s.interleave(a1, b1));
                // SAFETY: as above.
                unsafe { store_run(s, row, 4 * tx, &[v0, v1, v2, v3]) };
            }
        }
    }
}

/// Stores `vals` one after another into `row` from `at`, masked to the row's end.
///
/// # Safety
/// `s`'s instruction set is compiled in.
#[inline(always)]
unsafe fn store_run<S: Simd>(s: S, row: &mut [f32], at: usize, vals: &[S::V]) {
    for (n, &v) in vals.iter().enumerate() {
        let at = at + n * S::LANES;
        if at >= row.len() {
            break;
        }
        // SAFETY: at < row.len(), and the store is masked to the lanes before its end.
        unsafe { s.store_masked(row.as_mut_ptr().add(at), s.mask(row.len() - at), v) };
    }
}

/// Leaky ReLU with `slope` if given, as `elementwise::leaky_relu_here` computes it:
/// max(v, 0) + slope·min(v, 0).
#[inline(always)]
fn activate<S: Simd>(s: S, v: S::V, slope: Option<f32>) -> S::V {
    match slope {
        Some(sl) => s.add(s.max(v, s.zero()), s.mul(s.splat(sl), s.min(v, s.zero()))),
        None => v,
    }
}
