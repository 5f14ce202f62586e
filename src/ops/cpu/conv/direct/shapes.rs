// Elsewhere than x86-64 and AArch64 (wasm32) there is no vector level: [`Level`] has no variant,
// and the kernels are compiled but never called.
#![cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code, unused_imports, unused_macros, unused_mut, unused_unsafe, unused_variables, unreachable_code)
)]

//! Each level's tile shapes for the direct kernels: how many accumulators fit its registers.

use super::kernels::{tile, wgrad};
use crate::ops::cpu::simd::Simd;

/// A level's tile shapes: how many accumulators fit its vector registers.
pub(super) trait Kernels: Simd {
    /// Rows of a forward tile, a divisor of [`MR`](super::MR): a packed block is covered in MR / TILE_ROWS
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
