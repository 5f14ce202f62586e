// Elsewhere than x86-64 and AArch64 (wasm32) there is no vector level: [`Level`] has no variant,
// and the kernels are compiled but never called.
#![cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code, unused_imports, unused_macros, unused_mut, unused_unsafe, unused_variables, unreachable_code)
)]

//! The input transform V = Bᵀ d B of every tile, for F(2x2, 3x3) and F(4x4, 3x3).

use super::{Scratch, Tile};
use crate::ops::cpu::simd::{Level, Simd, per_level};

/// V (kc, comps, ·) = Bᵀ d B of every tile of `inp` (kc, h, w), zero-padded by `pad`, into s.v:
/// component ξ of channel j's tiles at (comps·j + ξ)·vs. Returns the tiles' (th, tw).
pub(super) fn transform_input(
    level: Level,
    tile: Tile,
    inp: &[f32],
    (kc, h, w): (usize, usize, usize),
    pad: usize,
    vs: usize,
    s: &mut Scratch,
) -> (usize, usize) {
    assert!(h + 2 * pad >= 3 && w + 2 * pad >= 3, "winograd: image smaller than its kernel");
    let (oh, ow) = (h + 2 * pad - 2, w + 2 * pad - 2);
    let n = tile.side();
    let (th, tw) = (oh.div_ceil(n), ow.div_ceil(n));
    let tiles = th * tw;
    assert!(inp.len() >= kc * h * w, "winograd: input too short");
    // The rows the tiles read: the input itself when it needs no padding (every tile row's n + 2
    // rows exist), else a zero-padded copy of n·th + 2 rows. Loads are masked to a row's length.
    let (src, ph, pw) = if pad == 0 && oh.is_multiple_of(n) {
        (inp, h, w)
    } else {
        let (ph, pw) = (n * th + 2, n * tw + 2);
        if s.padded_for != (kc, h, w, pad, n) || s.padded.len() != kc * ph * pw {
            s.padded.clear();
            s.padded.resize(kc * ph * pw, 0.0);
            s.padded_for = (kc, h, w, pad, n);
        }
        for (plane, src) in s.padded.chunks_mut(ph * pw).zip(inp.chunks(h * w)).take(kc) {
            for (row, src) in plane[pad * pw..].chunks_mut(pw).zip(src.chunks(w)) {
                row[pad..pad + w].copy_from_slice(src);
            }
        }
        (&s.padded[..], ph, pw)
    };
    assert!(vs >= tiles && s.v.len() >= (tile.components() * kc - 1) * vs + tiles, "winograd: V too short");
    let v = &mut s.v[..];
    // SAFETY: the level's token proves its instruction set; `src` holds kc planes of ph·pw with
    // ph ≥ n·th + 2 rows (the input, or the padded copy), and `v` (comps·kc - 1)·vs + tiles
    // floats (asserted).
    unsafe { transform(level, tile, src, (kc, ph, pw), (th, tw), v, vs) }
    (th, tw)
}

per_level! {
    /// [`input_transform`] at `level`.
    ///
    /// # Safety
    /// As [`input_transform`]'s.
    unsafe fn transform(tile: Tile, src: &[f32], dims: (usize, usize, usize), tiles: (usize, usize), v: &mut [f32], vs: usize) = input_transform;
}

/// V (kc, comps, ·) = Bᵀ d B of every tile of every channel of `src` (kc planes of ph rows of pw
/// floats), tiles numbered ty·tw + tx: component ξ of channel j's tiles at v + (comps·j + ξ)·vs.
///
/// # Safety
/// `s`'s instruction set is compiled in; ph ≥ n·th + 2 for the tile's side n, src.len() ≥
/// kc·ph·pw, vs ≥ th·tw, v.len() ≥ (comps·kc - 1)·vs + th·tw.
#[inline(always)]
unsafe fn input_transform<S: Simd>(
    s: S,
    tile: Tile,
    src: &[f32],
    (kc, ph, pw): (usize, usize, usize),
    (th, tw): (usize, usize),
    v: &mut [f32],
    vs: usize,
) {
    let (n, comps, tiles) = (tile.side(), tile.components(), th * tw);
    debug_assert!(
        ph >= n * th + 2 && src.len() >= kc * ph * pw && vs >= tiles && v.len() >= (comps * kc - 1) * vs + tiles
    );
    // Short tile rows (conv3's 5 2x2 tiles, conv2's 6 4x4 tiles at AVX-512) go two to a vector,
    // one per half.
    let per_vector = if 2 * tw <= S::LANES { 2 } else { 1 };
    for j in 0..kc {
        let plane = &src[j * ph * pw..(j + 1) * ph * pw];
        for ty in (0..th).step_by(per_vector) {
            let pair = per_vector == 2 && ty + 1 < th;
            let rows = &plane[n * ty * pw..(n * ty + if pair { 2 * n + 2 } else { n + 2 }) * pw];
            // SAFETY: `rows` holds (n + 2)·pw floats, (2n + 2)·pw for a pair (sliced: n·ty + 2n +
            // 2 ≤ n·th + 2 ≤ ph as ty + 1 < th); V is written at (comps·j + ξ)·vs + ty·tw + (0..tw,
            // or 0..2·tw for a pair), below (comps·kc - 1)·vs + tiles ≤ v.len(); `v` is a unique
            // borrow.
            unsafe {
                let v = v.as_mut_ptr().add(j * comps * vs + ty * tw);
                match (tile, pair) {
                    (Tile::F2, true) => input_tile_row::<S, true>(s, rows, pw, tw, v, vs),
                    (Tile::F2, false) => input_tile_row::<S, false>(s, rows, pw, tw, v, vs),
                    (Tile::F4, true) => input_tile_row4::<S, true>(s, rows, pw, tw, v, vs),
                    (Tile::F4, false) => input_tile_row4::<S, false>(s, rows, pw, tw, v, vs),
                }
            };
        }
    }
}

/// v_ξ[tx] (at v + ξ·v_stride) = (Bᵀ d B)_ξ of the tiles tx < tw of one tile row, whose 4 input
/// rows of `rs` floats follow each other in `rows`; tile tx reads columns 2tx..2tx + 4 (zero past
/// a row's end). LANES tiles at a time: each row's columns 2tx + 2u + {0, 1} and + {2, 3} for the
/// lanes u come from two loads of 2·LANES floats split into even and odd columns. With `PAIR`
/// (2·tw ≤ LANES), the next tile row too (rows 2..6 of `rows`), in the upper half of the lanes:
/// the second load of each split comes from its row instead, and its tiles follow the first
/// row's in V.
///
/// # Safety
/// `s`'s instruction set is compiled in; rows.len() ≥ 4·rs (6·rs with `PAIR`, and then 2·tw ≤
/// LANES); v[ξ·v_stride + tx] for ξ < 16, tx < tw (2·tw with `PAIR`) is writable and not accessed
/// by anyone else during the call.
#[inline(always)]
unsafe fn input_tile_row<S: Simd, const PAIR: bool>(
    s: S,
    rows: &[f32],
    rs: usize,
    tw: usize,
    v: *mut f32,
    v_stride: usize,
) {
    let l = S::LANES;
    debug_assert!(rows.len() >= if PAIR { 6 * rs } else { 4 * rs } && (!PAIR || 2 * tw <= l));
    for tx in (0..tw).step_by(l) {
        let k = s.mask(tw - tx);
        // d[i][col]: columns 2tx + 2u + col of row i for the lanes u, zero past the row's end.
        let mut d = [[s.zero(); 4]; 4];
        for (i, d) in d.iter_mut().enumerate() {
            for half in 0..2 {
                let at = 2 * tx + 2 * half;
                let mut ab = [s.zero(); 2];
                for (q, ab) in ab.iter_mut().enumerate() {
                    let (row, col) = if PAIR { (i + 2 * q, at) } else { (i, at + q * l) };
                    // SAFETY: masked to the row: row·rs + col + lanes ≤ (row + 1)·rs ≤ rows.len()
                    // (the caller's), and the pointer clamped to the row's end where no lane is
                    // read.
                    *ab = unsafe {
                        s.load_masked(rows.as_ptr().add(row * rs + col.min(rs)), s.mask(rs.saturating_sub(col)))
                    };
                }
                (d[2 * half], d[2 * half + 1]) = s.deinterleave(ab[0], ab[1]);
            }
        }
        // Bᵀ over the rows, for each of the 4 columns; then over the columns.
        let mut t = [[s.zero(); 4]; 4];
        for (col, t) in t.iter_mut().enumerate() {
            let r = |i: usize| d[i][col];
            *t = [s.sub(r(0), r(2)), s.add(r(1), r(2)), s.sub(r(2), r(1)), s.sub(r(1), r(3))];
        }
        for a in 0..4 {
            let [c0, c1, c2, c3] = t.map(|tc| tc[a]);
            let vals = [s.sub(c0, c2), s.add(c1, c2), s.sub(c2, c1), s.sub(c1, c3)];
            for (b, &val) in vals.iter().enumerate() {
                // SAFETY: masked to lanes tx + u < tw, and with `PAIR` tw + u < 2·tw, which the
                // caller vouches for.
                unsafe { store_tiles::<S, PAIR>(s, v.add((4 * a + b) * v_stride + tx), k, tw, val) };
            }
        }
    }
}

/// Stores one component of a vector's worth of tiles at `at` (lanes masked by `k`); with `PAIR`,
/// the upper half of the lanes (the next tile row's tiles) also `tw` further on.
///
/// # Safety
/// `s`'s instruction set is compiled in; the masked lanes at `at`, and with `PAIR` at `at + tw`,
/// are writable.
#[inline(always)]
unsafe fn store_tiles<S: Simd, const PAIR: bool>(s: S, at: *mut f32, k: S::Mask, tw: usize, val: S::V) {
    // SAFETY: the caller's promise.
    unsafe {
        s.store_masked(at, k, val);
        if PAIR {
            s.store_masked(at.add(tw), k, s.swap_halves(val));
        }
    }
}

/// Bᵀ d for one column d0..d5 of a 6x6 tile, Bᵀ of F(4x4, 3x3):
/// [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
///  [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]].
#[inline(always)]
fn bt4<S: Simd>(s: S, d: [S::V; 6]) -> [S::V; 6] {
    let (four, five, two) = (s.splat(4.0), s.splat(-5.0), s.splat(2.0));
    let a = s.fma(s.splat(-4.0), d[2], d[4]);
    let b = s.fma(s.splat(-4.0), d[1], d[3]);
    let c = s.sub(d[4], d[2]);
    let e = s.mul(two, s.sub(d[3], d[1]));
    [
        s.fma(four, d[0], s.fma(five, d[2], d[4])),
        s.add(a, b),
        s.sub(a, b),
        s.add(c, e),
        s.sub(c, e),
        s.fma(four, d[1], s.fma(five, d[3], d[5])),
    ]
}

/// v_ξ[tx] (at v + ξ·v_stride, ξ < 36) = (Bᵀ d B)_ξ of the tiles tx < tw of one tile row of
/// F(4x4, 3x3), whose 6 input rows of `rs` floats follow each other in `rows`; tile tx reads
/// columns 4tx..4tx + 6 (zero past a row's end). LANES tiles at a time: each row's columns
/// 4tx + 4u + {0, 1, 2, 3} for the lanes u come from four loads of LANES floats split twice into
/// even and odd columns, and + {4, 5} from four more loads 4 columns on. With `PAIR` (2·tw ≤
/// LANES), the next tile row too (rows 4..10 of `rows`), in the upper half of the lanes: the
/// second pair of loads of each split comes from its row instead, and its tiles follow the first
/// row's in V.
///
/// # Safety
/// `s`'s instruction set is compiled in; rows.len() ≥ 6·rs (10·rs with `PAIR`, and then 2·tw ≤
/// LANES); v[ξ·v_stride + tx] for ξ < 36, tx < tw (2·tw with `PAIR`) is writable and not accessed
/// by anyone else during the call.
#[inline(always)]
unsafe fn input_tile_row4<S: Simd, const PAIR: bool>(
    s: S,
    rows: &[f32],
    rs: usize,
    tw: usize,
    v: *mut f32,
    v_stride: usize,
) {
    let l = S::LANES;
    debug_assert!(rows.len() >= if PAIR { 10 * rs } else { 6 * rs } && (!PAIR || 2 * tw <= l));
    for tx in (0..tw).step_by(l) {
        let k = s.mask(tw - tx);
        // d[col][i]: columns 4tx + 4u + col of row i for the lanes u, zero past the row's end.
        let mut d = [[s.zero(); 6]; 6];
        // Row i fills element i of every column.
        #[allow(clippy::needless_range_loop)]
        for i in 0..6 {
            for shift in [0, 4] {
                let at = 4 * tx + shift;
                // x[2q + half]: source q's (the row's first or second 2·LANES columns, or with
                // `PAIR` the first or second tile row's) half.
                let mut x = [s.zero(); 4];
                for (n, x) in x.iter_mut().enumerate() {
                    let (q, half) = (n / 2, n % 2);
                    let (row, col) = if PAIR { (i + 4 * q, at + half * l) } else { (i, at + (2 * q + half) * l) };
                    // SAFETY: masked to the row: row·rs + col + lanes ≤ (row + 1)·rs ≤ rows.len()
                    // (the caller's), and the pointer clamped to the row's end where no lane is
                    // read.
                    *x = unsafe {
                        s.load_masked(rows.as_ptr().add(row * rs + col.min(rs)), s.mask(rs.saturating_sub(col)))
                    };
                }
                let (e0, o0) = s.deinterleave(x[0], x[1]);
                let (e1, o1) = s.deinterleave(x[2], x[3]);
                let (c0, c2) = s.deinterleave(e0, e1);
                let (c1, c3) = s.deinterleave(o0, o1);
                if shift == 0 {
                    (d[0][i], d[1][i], d[2][i], d[3][i]) = (c0, c1, c2, c3);
                } else {
                    (d[4][i], d[5][i]) = (c0, c1);
                }
            }
        }
        // Bᵀ over the rows, for each of the 6 columns; then over the columns. (Loops, not
        // closures: a closure would not inherit the caller's instruction set.)
        let mut t = [[s.zero(); 6]; 6];
        for (t, &col) in t.iter_mut().zip(&d) {
            *t = bt4(s, col);
        }
        for a in 0..6 {
            let mut row = [s.zero(); 6];
            for (r, tc) in row.iter_mut().zip(&t) {
                *r = tc[a];
            }
            let vals = bt4(s, row);
            for (b, &val) in vals.iter().enumerate() {
                // SAFETY: masked to lanes tx + u < tw, and with `PAIR` tw + u < 2·tw, which the
                // caller vouches for.
                unsafe { store_tiles::<S, PAIR>(s, v.add((6 * a + b) * v_stride + tx), k, tw, val) };
            }
        }
    }
}
