//! The shifted products of [`super::conv_shift`] fused into one register-blocked kernel ("direct
//! convolution"), for CPUs with vector instructions: written once over [`Simd`], compiled for
//! AVX-512, AVX2 + FMA and NEON, with each level's tile shapes in `Kernels`.
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
//!
//! Every output is summed in the same order at every level (forward: over (channel, tap) from
//! zero; weight gradient: over pixels onto the existing value), so the levels agree bit for bit.

// Elsewhere than x86-64 and AArch64 (wasm32) there is no vector level: [`Level`] has no variant,
// and the kernels are compiled but never called.
#![cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code, unused_imports, unused_macros, unused_mut, unused_unsafe, unused_variables, unreachable_code)
)]

use super::simd::{Level, Simd, level};
use crate::ops::params::Conv2dGeom;

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
    let level = level().expect("taps_product needs vector instructions (conv_direct::available)");
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
    // (see `taps_product_at`), and `out` is a unique borrow.
    unsafe {
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512(s) => entry::taps_product_avx512(s, packed, m, kc, offs, inp, in_rs, ncols, out, out_rs),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2(s) => entry::taps_product_avx2(s, packed, m, kc, offs, inp, in_rs, ncols, out, out_rs),
            #[cfg(target_arch = "aarch64")]
            Level::Neon(s) => entry::taps_product_neon(s, packed, m, kc, offs, inp, in_rs, ncols, out, out_rs),
        }
    }
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
    // SAFETY: in each arm, the level's token proves its instruction set; the assert bounds every
    // element `transpose_at` reads (src[j·q + p]) and writes (xt[p·cs + j]), j < c, p < q, and
    // `xt` is a unique borrow.
    unsafe {
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512(s) => entry::transpose_avx512(s, src, c, q, xt, cs),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2(s) => entry::transpose_avx2(s, src, c, q, xt, cs),
            #[cfg(target_arch = "aarch64")]
            Level::Neon(s) => entry::transpose_neon(s, src, c, q, xt, cs),
        }
    }
}

/// xt[p·cs + j] = src[j·q + p] for j < c, p < q: blocks of LANES x LANES in registers, by
/// log2(LANES) rounds of interleaving rows i and i + LANES/2 (a perfect shuffle), the edges one
/// element at a time. (The one-at-a-time loop was ~3% of a CNN training step.)
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
    let level = level().expect("taps_weight_grad needs vector instructions (conv_direct::available)");
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
    // (see `taps_weight_grad_at`), and `dw` is a unique borrow.
    unsafe {
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512(s) => entry::weight_grad_avx512(s, dy, f, dy_rs, xt, c, cs, offs, px, dw),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2(s) => entry::weight_grad_avx2(s, dy, f, dy_rs, xt, c, cs, offs, px, dw),
            #[cfg(target_arch = "aarch64")]
            Level::Neon(s) => entry::weight_grad_neon(s, dy, f, dy_rs, xt, c, cs, offs, px, dw),
        }
    }
}

/// A level's tile shapes: how many accumulators fit its vector registers.
trait Kernels: Simd {
    /// Rows of a forward tile, a divisor of [`MR`]: a packed block is covered in MR / TILE_ROWS
    /// passes.
    const TILE_ROWS: usize;
    /// Vectors of columns per forward tile.
    const TILE_VECTORS: usize;
    /// Channels per weight-gradient chunk.
    const WGRAD_LANES: usize;
    /// Filters per weight-gradient tile of `lanes` channels.
    fn wgrad_rows(lanes: usize) -> usize;

    /// [`tile`] for TILE_ROWS rows and up to TILE_VECTORS·LANES columns.
    ///
    /// # Safety
    /// As [`tile`]'s, with rows ≤ TILE_ROWS.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_any(
        self,
        w: *const f32,
        kc: usize,
        offs: &[usize],
        inp: *const f32,
        in_rs: usize,
        cols: usize,
        out: *mut f32,
        out_rs: usize,
        rows: usize,
    );

    /// [`wgrad`] for up to `wgrad_rows(lanes)` filters by `lanes` ≤ WGRAD_LANES channels.
    ///
    /// # Safety
    /// As [`wgrad`]'s, with rows ≤ wgrad_rows(lanes), 1 ≤ lanes ≤ WGRAD_LANES.
    #[allow(clippy::too_many_arguments)]
    unsafe fn wgrad_tile(
        self,
        dy: *const f32,
        dy_rs: usize,
        rows: usize,
        x: *const f32,
        cs: usize,
        pixels: (usize, usize, usize),
        lanes: usize,
        out: *mut f32,
        out_rs: usize,
    );
}

/// `tile_any`'s arms for a tile of $rows rows and $nv vectors: whole tiles, then the last
/// columns in 1..=$nv vectors (the partial counts listed).
macro_rules! tile_any_arms {
    ($S:ty, $rows:literal, $nv:literal, [$($part:literal),*], $s:expr, $w:expr, $kc:expr, $offs:expr, $inp:expr, $in_rs:expr, $cols:expr, $out:expr, $out_rs:expr, $n:expr) => {
        match $cols.div_ceil(<$S>::LANES) {
            _ if $cols >= $nv * <$S>::LANES => tile::<$S, $rows, $nv, true>($s, $w, $kc, $offs, $inp, $in_rs, $cols, $out, $out_rs, $n),
            $($part => tile::<$S, $rows, $part, false>($s, $w, $kc, $offs, $inp, $in_rs, $cols, $out, $out_rs, $n),)*
            _ => tile::<$S, $rows, $nv, false>($s, $w, $kc, $offs, $inp, $in_rs, $cols, $out, $out_rs, $n),
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod x86_shapes {
    use super::*;
    use crate::ops::cpu::simd::x86::{Avx2, Avx512};

    // SAFETY (every block in these impls): forwarded to the generic kernels under the same
    // contract; each arm's const shape matches the contract of `tile` / `wgrad`: the vector count
    // covers `cols` / `lanes` (FULL only when they fill whole vectors) and MF ≥ rows.
    #[allow(clippy::undocumented_unsafe_blocks)]
    impl Kernels for Avx512 {
        // 8 x 3 accumulators of 32 registers.
        const TILE_ROWS: usize = 8;
        const TILE_VECTORS: usize = 3;
        const WGRAD_LANES: usize = 64;
        fn wgrad_rows(lanes: usize) -> usize {
            if lanes > 48 { 6 } else { 8 }
        }
        #[inline(always)]
        unsafe fn tile_any(
            self,
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
            unsafe { tile_any_arms!(Avx512, 8, 3, [1, 2], self, w, kc, offs, inp, in_rs, cols, out, out_rs, rows) }
        }
        #[inline(always)]
        unsafe fn wgrad_tile(
            self,
            dy: *const f32,
            dy_rs: usize,
            rows: usize,
            x: *const f32,
            cs: usize,
            px: (usize, usize, usize),
            lanes: usize,
            out: *mut f32,
            out_rs: usize,
        ) {
            unsafe {
                match lanes {
                    // Channel counts that fill whole vectors load without masks.
                    32 => wgrad::<Self, 8, 2, true>(self, dy, dy_rs, rows, x, cs, px, lanes, out, out_rs),
                    64 => wgrad::<Self, 6, 4, true>(self, dy, dy_rs, rows, x, cs, px, lanes, out, out_rs),
                    _ => match lanes.div_ceil(16) {
                        1 => wgrad::<Self, 8, 1, false>(self, dy, dy_rs, rows, x, cs, px, lanes, out, out_rs),
                        2 => wgrad::<Self, 8, 2, false>(self, dy, dy_rs, rows, x, cs, px, lanes, out, out_rs),
                        3 => wgrad::<Self, 8, 3, false>(self, dy, dy_rs, rows, x, cs, px, lanes, out, out_rs),
                        _ => wgrad::<Self, 6, 4, false>(self, dy, dy_rs, rows, x, cs, px, lanes, out, out_rs),
                    },
                }
            }
        }
    }

    #[allow(clippy::undocumented_unsafe_blocks)]
    impl Kernels for Avx2 {
        // 4 x 2 accumulators, 2 input vectors and a broadcast weight: 11 of 16 registers (4 x 3
        // needs all 16, and the compiler then spills an accumulator).
        const TILE_ROWS: usize = 4;
        const TILE_VECTORS: usize = 2;
        const WGRAD_LANES: usize = 16;
        fn wgrad_rows(lanes: usize) -> usize {
            if lanes > 8 { 6 } else { 8 }
        }
        #[inline(always)]
        unsafe fn tile_any(
            self,
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
            unsafe { tile_any_arms!(Avx2, 4, 2, [1], self, w, kc, offs, inp, in_rs, cols, out, out_rs, rows) }
        }
        #[inline(always)]
        unsafe fn wgrad_tile(
            self,
            dy: *const f32,
            dy_rs: usize,
            rows: usize,
            x: *const f32,
            cs: usize,
            px: (usize, usize, usize),
            lanes: usize,
            out: *mut f32,
            out_rs: usize,
        ) {
            unsafe {
                match lanes {
                    8 => wgrad::<Self, 8, 1, true>(self, dy, dy_rs, rows, x, cs, px, lanes, out, out_rs),
                    16 => wgrad::<Self, 6, 2, true>(self, dy, dy_rs, rows, x, cs, px, lanes, out, out_rs),
                    1..8 => wgrad::<Self, 8, 1, false>(self, dy, dy_rs, rows, x, cs, px, lanes, out, out_rs),
                    _ => wgrad::<Self, 6, 2, false>(self, dy, dy_rs, rows, x, cs, px, lanes, out, out_rs),
                }
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arm_shapes {
    use super::*;
    use crate::ops::cpu::simd::arm::Neon;

    // SAFETY (every block in this impl): as for the x86 levels.
    #[allow(clippy::undocumented_unsafe_blocks)]
    impl Kernels for Neon {
        // 8 x 3 accumulators of 32 registers.
        const TILE_ROWS: usize = 8;
        const TILE_VECTORS: usize = 3;
        const WGRAD_LANES: usize = 16;
        fn wgrad_rows(lanes: usize) -> usize {
            if lanes > 12 { 6 } else { 8 }
        }
        #[inline(always)]
        unsafe fn tile_any(
            self,
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
            unsafe { tile_any_arms!(Neon, 8, 3, [1, 2], self, w, kc, offs, inp, in_rs, cols, out, out_rs, rows) }
        }
        #[inline(always)]
        unsafe fn wgrad_tile(
            self,
            dy: *const f32,
            dy_rs: usize,
            rows: usize,
            x: *const f32,
            cs: usize,
            px: (usize, usize, usize),
            lanes: usize,
            out: *mut f32,
            out_rs: usize,
        ) {
            unsafe {
                match lanes {
                    16 => wgrad::<Self, 6, 4, true>(self, dy, dy_rs, rows, x, cs, px, lanes, out, out_rs),
                    _ => match lanes.div_ceil(4) {
                        1 => wgrad::<Self, 8, 1, false>(self, dy, dy_rs, rows, x, cs, px, lanes, out, out_rs),
                        2 => wgrad::<Self, 8, 2, false>(self, dy, dy_rs, rows, x, cs, px, lanes, out, out_rs),
                        3 => wgrad::<Self, 8, 3, false>(self, dy, dy_rs, rows, x, cs, px, lanes, out, out_rs),
                        _ => wgrad::<Self, 6, 4, false>(self, dy, dy_rs, rows, x, cs, px, lanes, out, out_rs),
                    },
                }
            }
        }
    }
}

/// Each level's entry points: the generic loops compiled with its instruction set.
mod entry {
    use super::*;

    macro_rules! entries {
        ($(#[$feat:meta])* $product:ident, $grad:ident, $transpose:ident, $S:ty) => {
            /// [`taps_product_at`] at this level.
            ///
            /// # Safety
            /// As [`taps_product_at`]'s.
            $(#[$feat])*
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn $product(s: $S, packed: &[f32], m: usize, kc: usize, offs: &[usize], inp: *const f32, in_rs: usize, ncols: usize, out: *mut f32, out_rs: usize) {
                // SAFETY: the caller's promises.
                unsafe { taps_product_at(s, packed, m, kc, offs, inp, in_rs, ncols, out, out_rs) }
            }

            /// [`transpose_at`] at this level.
            ///
            /// # Safety
            /// As [`transpose_at`]'s.
            $(#[$feat])*
            pub unsafe fn $transpose(s: $S, src: *const f32, c: usize, q: usize, xt: *mut f32, cs: usize) {
                // SAFETY: the caller's promises.
                unsafe { transpose_at(s, src, c, q, xt, cs) }
            }

            /// [`taps_weight_grad_at`] at this level.
            ///
            /// # Safety
            /// As [`taps_weight_grad_at`]'s.
            $(#[$feat])*
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn $grad(s: $S, dy: *const f32, f: usize, dy_rs: usize, xt: *const f32, c: usize, cs: usize, offs: &[usize], px: (usize, usize, usize), dw: *mut f32) {
                // SAFETY: the caller's promises.
                unsafe { taps_weight_grad_at(s, dy, f, dy_rs, xt, c, cs, offs, px, dw) }
            }
        };
    }

    #[cfg(target_arch = "x86_64")]
    entries!(
        #[target_feature(enable = "avx512f")]
        taps_product_avx512,
        weight_grad_avx512,
        transpose_avx512,
        crate::ops::cpu::simd::x86::Avx512
    );
    #[cfg(target_arch = "x86_64")]
    entries!(
        #[target_feature(enable = "avx2,fma")]
        taps_product_avx2,
        weight_grad_avx2,
        transpose_avx2,
        crate::ops::cpu::simd::x86::Avx2
    );
    #[cfg(target_arch = "aarch64")]
    entries!(
        #[target_feature(enable = "neon")]
        taps_product_neon,
        weight_grad_neon,
        transpose_neon,
        crate::ops::cpu::simd::arm::Neon
    );
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
unsafe fn wgrad<S: Simd, const MF: usize, const NV: usize, const FULL: bool>(
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
unsafe fn tile<S: Simd, const ROWS: usize, const NV: usize, const FULL: bool>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::cpu::simd::levels_here;
    use crate::rng::Rng;

    fn randn(n: usize, rng: &mut Rng) -> Vec<f32> {
        (0..n).map(|_| rng.normal()).collect()
    }

    /// The image transposed to (pixel, channel) at every level this CPU runs, with whole and
    /// partial blocks of channels and pixels and a row stride wider than the channels.
    #[test]
    fn transpose_image_at_every_level_matches_plain_loops() {
        let mut rng = Rng::new(8);
        for (c, q, cs) in [(1, 5, 1), (16, 16, 16), (17, 35, 20), (32, 676, 32), (64, 144, 64), (5, 3, 8)] {
            let src = randn(c * q, &mut rng);
            let mut want = vec![-1.0f32; q * cs];
            for p in 0..q {
                for j in 0..c {
                    want[p * cs + j] = src[j * q + p];
                }
            }
            for level in levels_here() {
                let mut xt = vec![-1.0f32; q * cs];
                transpose_image_in(level, &src, c, q, &mut xt, cs);
                assert_eq!(xt, want, "{level:?}, c {c}, q {q}, cs {cs}");
            }
            let mut xt = vec![-1.0f32; q * cs];
            transpose_image(&src, c, q, &mut xt, cs);
            assert_eq!(xt, want, "transpose_image, c {c}, q {q}, cs {cs}");
        }
    }

    /// Every vector level this CPU runs (whatever SCRATCHNET_MAX_CPU_ISA says) against plain loops,
    /// and against each other bit for bit, on shapes that leave partial tiles, partial vectors
    /// and partial channel chunks at every width.
    #[test]
    fn every_level_matches_plain_loops_and_the_others_exactly() {
        let mut rng = Rng::new(7);
        for (c, f, h, w, k) in [
            (1, 8, 9, 9, 3),
            (3, 5, 7, 11, 3),
            (17, 9, 6, 30, 3),
            (32, 64, 12, 12, 3),
            (64, 13, 5, 5, 2),
            (50, 7, 8, 8, 5),
        ] {
            let g = Conv2dGeom { c, h, w, f, k, stride: 1, pad: 0 };
            let (oh, ow) = (h - k + 1, w - k + 1);
            let x = randn(c * h * w, &mut rng);
            let wt = randn(f * c * k * k, &mut rng);
            let (mut packed, mut offs) = (Vec::new(), Vec::new());
            pack_forward(&wt, &g, &mut packed);
            tap_offsets(&g, w, &mut offs);
            // Forward in the wide layout: row stride w, columns past ow are don't-cares.
            let ncols = (oh - 1) * w + ow;
            let mut reference = vec![0.0f32; f * ncols];
            for i in 0..f {
                for p in 0..ncols {
                    let mut acc = 0.0f64;
                    for j in 0..c {
                        for (t, &o) in offs.iter().enumerate() {
                            acc += wt[(i * c + j) * k * k + t] as f64 * x[j * h * w + p + o] as f64;
                        }
                    }
                    reference[i * ncols + p] = acc as f32;
                }
            }
            // dY wide with zeros past ow, the image transposed, dW by tap from a non-zero start.
            let mut dy = randn(f * ncols, &mut rng);
            for (p, v) in dy.iter_mut().enumerate() {
                if p % ncols % w >= ow {
                    *v = 0.0;
                }
            }
            let mut xt = vec![0.0; h * w * c];
            transpose_image(&x, c, h * w, &mut xt, c);
            let dw0 = randn(k * k * f * c, &mut rng);
            let mut dw_ref = dw0.clone();
            for (t, &o) in offs.iter().enumerate() {
                for i in 0..f {
                    for j in 0..c {
                        let s: f64 = (0..ncols).map(|p| dy[i * ncols + p] as f64 * xt[(p + o) * c + j] as f64).sum();
                        dw_ref[(t * f + i) * c + j] += s as f32;
                    }
                }
            }
            let mut results = Vec::new();
            for level in levels_here() {
                let mut y = vec![f32::NAN; f * ncols];
                taps_product_in(level, &packed, f, c, &offs, &x, h * w, ncols, &mut y, ncols);
                for (u, v) in y.iter().zip(&reference) {
                    assert!((u - v).abs() <= 1e-4 * (1.0 + v.abs()), "{level:?} y: {u} vs {v} for {g:?}");
                }
                let mut dw = dw0.clone();
                taps_weight_grad_in(level, &dy, f, ncols, &xt, c, c, &offs, (oh, ow, w), &mut dw);
                for (u, v) in dw.iter().zip(&dw_ref) {
                    assert!((u - v).abs() <= 1e-4 * (1.0 + v.abs()), "{level:?} dw: {u} vs {v} for {g:?}");
                }
                results.push((level, y, dw));
            }
            for pair in results.windows(2) {
                let ((la, ya, dwa), (lb, yb, dwb)) = (&pair[0], &pair[1]);
                assert!(ya.iter().zip(yb).all(|(a, b)| a.to_bits() == b.to_bits()), "y: {la:?} vs {lb:?}, {g:?}");
                assert!(dwa.iter().zip(dwb).all(|(a, b)| a.to_bits() == b.to_bits()), "dw: {la:?} vs {lb:?}, {g:?}");
            }
        }
    }
}
