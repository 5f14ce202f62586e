//! Winograd F(2x2, 3x3) for 3x3, stride-1 convolutions: each 2x2 block of outputs from a 4x4
//! block of inputs with 16 multiplies per (output channel, input channel) instead of 36, 2.25x
//! fewer (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
//!   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
//! summed over input channels before the output transform. So a convolution becomes
//!   V_ξ (c, tiles)  = Bᵀ d B, component ξ of every input tile      (input transform)
//!   M_ξ (m, tiles)  = U_ξ (m, c) · V_ξ                             (16 products, direct kernel)
//!   Y               = Aᵀ M A                                       (output transform)
//! with U = G g Gᵀ transformed once per layer call. F(4x4, 3x3) does the same with 6x6 input
//! tiles, 36 components and 36 multiplies per 16 outputs (4x fewer than direct), where an image
//! has enough 4x4 tiles to fill the products' vectors ([`Tile::for_output`]; its rounding grows
//! with the transforms' larger coefficients, ~1e-5 of the sum's terms). The input gradient is
//! the same computation on dY padded by 2 - pad, with the weights transposed and flipped; the
//! weight gradient is F(3x3, 2x2) ([`accumulate_weight_grad`]). Both are used where vectors are
//! narrower than AVX-512's ([`pays_for_gradients`]); on AVX-512 the direct kernels compute the
//! gradients as fast.
//!
//! Layout: tiles are numbered u = ty·tw + tx. The input transform takes a vector's worth of tiles
//! of a tile row at once, splitting the input rows they read into even and odd columns with
//! vector permutes (twice for 4x4 tiles: columns 4u + 0..3, then from 4 columns on, 4u + 4, 5).
//! The transforms are written once over [`Simd`], like the products. V and M keep the components
//! of a channel next to each other ((c, 16, tiles), (m, 16, tiles), 36 for 4x4 tiles): each
//! transform then writes or reads one small block instead of 16 places far apart (scattered
//! stores would bound the input transform).
//!
//! A 2x2 max-pool with stride 2 that follows the convolution can be applied by the output
//! transform (`pool`): each tile's 2x2 outputs are one pooling window, so only their maximum is
//! written. Bias and leaky ReLU are then applied to the maximum: both are monotone, so the result is
//! the same bit for bit as pooling their output, for a quarter of the work and stores.

// Elsewhere than x86-64 and AArch64 (wasm32) there is no vector level: [`Level`] has no variant,
// and the kernels are compiled but never called.
#![cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code, unused_imports, unused_macros, unused_mut, unused_unsafe, unused_variables, unreachable_code)
)]

use super::direct::{self as conv_direct, MR};
use crate::ops::cpu::simd::{Level, level};

mod input;
mod output;
#[cfg(test)]
mod tests;
mod weight_grad;

use input::transform_input;
pub use weight_grad::{accumulate_weight_grad, add_weight_grad};

/// Whether this CPU runs [`correlate`]: it has vector instructions we have kernels for.
pub fn available() -> bool {
    level().is_some()
}

/// Whether `ConvAlgorithm::Auto` takes Winograd for the gradients too: where vectors are narrower
/// than AVX-512's. The transforms move 4x their input's data between L1 and L2 whatever the level,
/// while the products they save cost twice as much per multiply-add with half-width vectors:
/// faster at AVX2, not on AVX-512 (BENCHMARKS.md). NEON's 4 lanes are taken to follow AVX2.
pub fn pays_for_gradients() -> bool {
    match level() {
        #[cfg(target_arch = "x86_64")]
        Some(Level::Avx2(_)) => true,
        #[cfg(target_arch = "aarch64")]
        Some(Level::Neon(_)) => true,
        _ => false,
    }
}

const G: [[f32; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];

/// G of F(4x4, 3x3), interpolation points 0, ±1, ±2, ∞ (Lavin & Gray's).
const G4: [[f64; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// The output tile of the forward algorithm: F(2x2, 3x3), 16 multiplies per 4 outputs, or F(4x4,
/// 3x3), 36 per 16 (1.78x fewer, and 2.25 transformed values per output instead of 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tile {
    F2,
    F4,
}

impl Tile {
    /// Outputs per tile side.
    pub fn side(self) -> usize {
        match self {
            Tile::F2 => 2,
            Tile::F4 => 4,
        }
    }

    /// Components per tile: (side + 2)².
    pub fn components(self) -> usize {
        (self.side() + 2) * (self.side() + 2)
    }

    /// The tile whose products take fewer vector operations for an oh x ow output at this CPU's
    /// vector level: the products' columns are one image's tiles, so 4x4 tiles pay where an
    /// image has enough of them to fill the vectors (the CNN's conv2, 24x24: 36 4x4 tiles in 3
    /// vectors of 16, 108 component-vectors against 144 for 2x2 tiles), not where it has few
    /// (conv3, 10x10: 9 4x4 tiles in one vector, 36, against 25 2x2 tiles in two, 32).
    pub fn for_output(oh: usize, ow: usize) -> Tile {
        let lanes = match level() {
            #[cfg(target_arch = "x86_64")]
            Some(Level::Avx512(_)) => 16,
            #[cfg(target_arch = "x86_64")]
            Some(Level::Avx2(_)) => 8,
            #[cfg(target_arch = "aarch64")]
            Some(Level::Neon(_)) => 4,
            None => 1,
        };
        let cost = |t: Tile| (oh.div_ceil(t.side()) * ow.div_ceil(t.side())).div_ceil(lanes) * t.components();
        if cost(Tile::F4) < cost(Tile::F2) { Tile::F4 } else { Tile::F2 }
    }
}

#[derive(Default, Debug, Clone)]
pub struct Scratch {
    /// The input, zero-padded, and the (channels, height, width, pad, tile side) it was laid out
    /// for: its borders are never written, so they stay zero from one call to the next.
    padded: Vec<f32>,
    padded_for: (usize, usize, usize, usize, usize),
    /// The input transform V; the products M (forward), or the dY transform D (weight gradient).
    v: Vec<f32>,
    m: Vec<f32>,
    /// dY with channels last (weight gradient).
    dyt: Vec<f32>,
}

/// Transforms and packs 3x3 kernels for [`correlate`] with `tile`: `kernel(row, j)` is the kernel
/// that maps input channel j to output row `row`, as `[ki][kj]`. One packing per component ξ in the
/// layout of [`conv_direct::pack_append`] with one tap.
pub fn pack_weights(
    tile: Tile,
    rows: usize,
    red: usize,
    out: &mut Vec<f32>,
    kernel: impl Fn(usize, usize) -> [[f32; 3]; 3] + Sync,
) {
    let per = rows.div_ceil(MR) * red * MR;
    let n = tile.side() + 2;
    let mut gm = [[0.0f64; 3]; 6];
    match tile {
        Tile::F2 => {
            for (r, g) in gm.iter_mut().zip(&G) {
                *r = g.map(f64::from);
            }
        }
        Tile::F4 => gm = G4,
    }
    let gm = &gm[..n];
    out.clear();
    out.resize(n * n * per, 0.0);
    // U = G g Gᵀ, in double precision (G4's sixths and twelfths are not exact in f32), row a of
    // U (components a·n..a·n + n, contiguous in `out`) per task: in parallel, as a training step
    // packs every layer's weights anew.
    crate::ops::cpu::par::for_each_chunk(out, n * per, |a, out_a| {
        for row in 0..rows {
            for j in 0..red {
                let g = kernel(row, j);
                let gg: [f64; 3] = std::array::from_fn(|b| (0..3).map(|k| gm[a][k] * g[k][b] as f64).sum());
                for (b, gb) in gm.iter().enumerate() {
                    let u: f64 = (0..3).map(|k| gg[k] * gb[k]).sum();
                    out_a[b * per + (row / MR * red + j) * MR + row % MR] = u as f32;
                }
            }
        }
    });
}

/// `out(m, oh, ow) = Σ_j Σ_{ki,kj} kernel(i, j)[ki][kj] · inp(j, oy + ki - pad, ox + kj - pad)`,
/// for inp (kc, h, w) zero outside, oh = h + 2·pad - 2 (ow alike), plus `bias[i]` if given, through
/// leaky ReLU with `slope` if given; with `packed` from [`pack_weights`] for the same `tile`.
/// With `pool`, out is (m, oh / 2, ow / 2) instead: the 2x2 max-pool (stride 2) of that.
/// For `images` images one after another in `inp` and in `out`. Overwrites `out`. Needs
/// [`available`].
#[allow(clippy::too_many_arguments)]
pub fn correlate(
    tile: Tile,
    inp: &[f32],
    images: usize,
    (kc, h, w): (usize, usize, usize),
    pad: usize,
    packed: &[f32],
    m: usize,
    bias: Option<&[f32]>,
    slope: Option<f32>,
    pool: bool,
    s: &mut Scratch,
    out: &mut [f32],
) {
    let level = level().expect("winograd::correlate needs vector instructions (winograd::available)");
    correlate_in(level, tile, inp, images, (kc, h, w), pad, packed, m, bias, slope, pool, s, out)
}

/// [`correlate`] at a given level.
#[allow(clippy::too_many_arguments)]
fn correlate_in(
    level: Level,
    tile: Tile,
    inp: &[f32],
    images: usize,
    (kc, h, w): (usize, usize, usize),
    pad: usize,
    packed: &[f32],
    m: usize,
    bias: Option<&[f32]>,
    slope: Option<f32>,
    pool: bool,
    s: &mut Scratch,
    out: &mut [f32],
) {
    let (oh, ow) = (h + 2 * pad - 2, w + 2 * pad - 2);
    let (n, comps) = (tile.side(), tile.components());
    let (th, tw) = (oh.div_ceil(n), ow.div_ceil(n));
    let tiles = th * tw;
    let per = m.div_ceil(MR) * kc * MR;
    let (in_len, out_len) = (kc * h * w, m * if pool { (oh / 2) * (ow / 2) } else { oh * ow });
    assert!(inp.len() >= images * in_len && out.len() >= images * out_len && packed.len() >= comps * per);
    if out_len == 0 {
        return;
    }
    // One image at a time: V and M of several images side by side leave L2 (BENCHMARKS.md).
    for (inp, out) in inp.chunks(in_len).zip(out.chunks_mut(out_len)).take(images) {
        s.v.resize(comps * kc * tiles, 0.0);
        transform_input(level, tile, inp, (kc, h, w), pad, tiles, s);
        s.m.resize(comps * m * tiles, 0.0);
        for xi in 0..comps {
            conv_direct::taps_product_in(
                level,
                &packed[xi * per..(xi + 1) * per],
                m,
                kc,
                &[0],
                &s.v[xi * tiles..],
                comps * tiles,
                tiles,
                &mut s.m[xi * tiles..],
                comps * tiles,
            );
        }
        let dims = ((oh, ow), (th, tw));
        // SAFETY: the level's token proves its instruction set; s.m holds comps·m·tiles floats,
        // its components `tiles` apart, and `out` m planes of oh·ow, or of their halves with
        // `pool` (asserted).
        unsafe { output::transform(level, tile, &s.m, tiles, m, dims, bias, slope, pool, out) }
    }
}
