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
//! transform then writes or reads one small block instead of 16 places far apart (measured: the
//! input transform was bound by those scattered stores).
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

use super::conv_direct::{self, MR};
use super::simd::{Level, Simd, level};

/// Whether this CPU runs [`correlate`]: it has vector instructions we have kernels for.
pub fn available() -> bool {
    level().is_some()
}

/// Whether `ConvAlgorithm::Auto` takes Winograd for the gradients too: where vectors are narrower
/// than AVX-512's. The transforms move 4x their input's data between L1 and L2 whatever the level,
/// while the products they save cost twice as much per multiply-add with half-width vectors:
/// measured faster at AVX2, not on AVX-512 (BENCHMARKS.md). NEON's 4 lanes follow
/// AVX2 (not measured).
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
    super::par::for_each_chunk(out, n * per, |a, out_a| {
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
    // One image at a time: V and M of several images side by side leave L2 (measured: 4 images
    // of conv2 at once, 0.64x).
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
        unsafe {
            match level {
                #[cfg(target_arch = "x86_64")]
                Level::Avx512(l) => entry::output_avx512(l, tile, &s.m, tiles, m, dims, bias, slope, pool, out),
                #[cfg(target_arch = "x86_64")]
                Level::Avx2(l) => entry::output_avx2(l, tile, &s.m, tiles, m, dims, bias, slope, pool, out),
                #[cfg(target_arch = "aarch64")]
                Level::Neon(l) => entry::output_neon(l, tile, &s.m, tiles, m, dims, bias, slope, pool, out),
            }
        }
    }
}

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
/// Adds to `acc` (16, kc, m) the M of one image: `inp` (kc, h, w) as for [`correlate`], `dy`
/// (m, oh, ow) the gradient of its output. Needs [`available`].
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
fn accumulate_weight_grad_in(
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
    unsafe {
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512(l) => entry::dy_avx512(l, &s.dyt, m, (oh, ow), (th, tw), &mut s.m, ds),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2(l) => entry::dy_avx2(l, &s.dyt, m, (oh, ow), (th, tw), &mut s.m, ds),
            #[cfg(target_arch = "aarch64")]
            Level::Neon(l) => entry::dy_neon(l, &s.dyt, m, (oh, ow), (th, tw), &mut s.m, ds),
        }
    }
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
    super::par::for_each_chunk(&mut dw[..9 * kc * m], 9 * kc, |i, dw_i| {
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

/// V (kc, comps, ·) = Bᵀ d B of every tile of `inp` (kc, h, w), zero-padded by `pad`, into s.v:
/// component ξ of channel j's tiles at (comps·j + ξ)·vs. Returns the tiles' (th, tw).
fn transform_input(
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
    unsafe {
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512(l) => entry::input_avx512(l, tile, src, (kc, ph, pw), (th, tw), v, vs),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2(l) => entry::input_avx2(l, tile, src, (kc, ph, pw), (th, tw), v, vs),
            #[cfg(target_arch = "aarch64")]
            Level::Neon(l) => entry::input_neon(l, tile, src, (kc, ph, pw), (th, tw), v, vs),
        }
    }
    (th, tw)
}

/// Each level's entry points: the transforms compiled with its instruction set.
mod entry {
    use super::*;

    macro_rules! entries {
        ($(#[$feat:meta])* $input:ident, $output:ident, $dy:ident, $S:ty) => {
            /// [`input_transform`] at this level.
            ///
            /// # Safety
            /// As [`input_transform`]'s.
            $(#[$feat])*
            pub unsafe fn $input(
                s: $S,
                tile: Tile,
                src: &[f32],
                dims: (usize, usize, usize),
                tiles: (usize, usize),
                v: &mut [f32],
                vs: usize,
            ) {
                // SAFETY: the caller's promises.
                unsafe { input_transform(s, tile, src, dims, tiles, v, vs) }
            }

            /// [`output_transform`] at this level.
            ///
            /// # Safety
            /// As [`output_transform`]'s.
            $(#[$feat])*
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn $output(
                s: $S,
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

            /// [`dy_transform`] at this level.
            ///
            /// # Safety
            /// As [`dy_transform`]'s.
            $(#[$feat])*
            pub unsafe fn $dy(
                s: $S,
                dyt: &[f32],
                m: usize,
                out_dims: (usize, usize),
                tiles: (usize, usize),
                d: &mut [f32],
                ds: usize,
            ) {
                // SAFETY: the caller's promises.
                unsafe { dy_transform(s, dyt, m, out_dims, tiles, d, ds) }
            }
        };
    }

    #[cfg(target_arch = "x86_64")]
    entries!(
        #[target_feature(enable = "avx512f")]
        input_avx512,
        output_avx512,
        dy_avx512,
        crate::ops::cpu::simd::x86::Avx512
    );
    #[cfg(target_arch = "x86_64")]
    entries!(
        #[target_feature(enable = "avx2,fma")]
        input_avx2,
        output_avx2,
        dy_avx2,
        crate::ops::cpu::simd::x86::Avx2
    );
    #[cfg(target_arch = "aarch64")]
    entries!(
        #[target_feature(enable = "neon")]
        input_neon,
        output_neon,
        dy_neon,
        crate::ops::cpu::simd::arm::Neon
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::cpu::simd::levels_here;
    use crate::rng::Rng;

    /// Every vector level this CPU runs against plain loops, and the levels against each other
    /// bit for bit: odd and even sizes, padding, rows around the vector widths, with and without
    /// bias and activation; the pooled output against pooling the output.
    #[test]
    fn every_level_matches_plain_loops_and_the_others_exactly() {
        let mut rng = Rng::new(9);
        for (kc, m, h, w, pad) in [
            (1, 3, 5, 5, 0),
            (3, 9, 8, 19, 1),
            (5, 4, 7, 36, 0),
            (8, 17, 12, 12, 1),
            (2, 2, 3, 70, 2),
            (6, 5, 12, 12, 0),
            (3, 2, 26, 26, 0),
            (4, 3, 11, 7, 0),
            (2, 3, 3, 8, 0),
        ] {
            let inp: Vec<f32> = (0..kc * h * w).map(|_| rng.normal()).collect();
            let g: Vec<f32> = (0..m * kc * 9).map(|_| rng.normal()).collect();
            let bias: Vec<f32> = (0..m).map(|_| rng.normal()).collect();
            let kernel = |i: usize, j: usize| -> [[f32; 3]; 3] {
                std::array::from_fn(|a| std::array::from_fn(|b| g[(i * kc + j) * 9 + 3 * a + b]))
            };
            let (oh, ow) = (h + 2 * pad - 2, w + 2 * pad - 2);
            let at = |j: usize, y: isize, x: isize| {
                let (y, x) = (y - pad as isize, x - pad as isize);
                if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                    0.0
                } else {
                    inp[(j * h + y as usize) * w + x as usize]
                }
            };
            for (with_bias, slope) in [(false, None), (true, Some(0.01))] {
                let mut reference = vec![0.0f32; m * oh * ow];
                for i in 0..m {
                    for y in 0..oh {
                        for x in 0..ow {
                            let mut acc = if with_bias { bias[i] as f64 } else { 0.0 };
                            for j in 0..kc {
                                for (a, row) in kernel(i, j).iter().enumerate() {
                                    for (b, &k) in row.iter().enumerate() {
                                        acc += k as f64 * at(j, (y + a) as isize, (x + b) as isize) as f64;
                                    }
                                }
                            }
                            let v = acc as f32;
                            reference[(i * oh + y) * ow + x] = match slope {
                                Some(s) => v.max(0.0) + s * v.min(0.0),
                                None => v,
                            };
                        }
                    }
                }
                for tile in [Tile::F2, Tile::F4] {
                    let mut packed = Vec::new();
                    pack_weights(tile, m, kc, &mut packed, kernel);
                    let mut results: Vec<(Level, Vec<f32>)> = Vec::new();
                    for level in levels_here() {
                        let mut out = vec![f32::NAN; m * oh * ow];
                        let b = with_bias.then_some(&bias[..]);
                        let mut scratch = Scratch::default();
                        correlate_in(
                            level,
                            tile,
                            &inp,
                            1,
                            (kc, h, w),
                            pad,
                            &packed,
                            m,
                            b,
                            slope,
                            false,
                            &mut scratch,
                            &mut out,
                        );
                        for (u, v) in out.iter().zip(&reference) {
                            assert!(
                                (u - v).abs() <= 1e-4 * (1.0 + v.abs()),
                                "{level:?} {tile:?}: {u} vs {v}, {kc} {m} {h}x{w} pad {pad}"
                            );
                        }
                        // Three copies of the image multiplied together: each the same bits as alone.
                        let copies = inp.repeat(3);
                        let mut out3 = vec![f32::NAN; 3 * m * oh * ow];
                        let dims = (kc, h, w);
                        correlate_in(
                            level,
                            tile,
                            &copies,
                            3,
                            dims,
                            pad,
                            &packed,
                            m,
                            b,
                            slope,
                            false,
                            &mut scratch,
                            &mut out3,
                        );
                        for (n, copy) in out3.chunks(m * oh * ow).enumerate() {
                            let same = copy.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits());
                            assert!(same, "{level:?} {tile:?} image {n} of 3: {kc} {m} {h}x{w} pad {pad}");
                        }
                        // Pooled in the output transform: the 2x2 maxima of `out`, bit for bit.
                        let (ph, pw) = (oh / 2, ow / 2);
                        let mut pooled = vec![f32::NAN; 3 * m * ph * pw];
                        correlate_in(
                            level,
                            tile,
                            &copies,
                            3,
                            dims,
                            pad,
                            &packed,
                            m,
                            b,
                            slope,
                            true,
                            &mut scratch,
                            &mut pooled,
                        );
                        for n in 0..3 {
                            for i in 0..m {
                                for y in 0..ph {
                                    for x in 0..pw {
                                        let at = |a: usize, b: usize| out[(i * oh + 2 * y + a) * ow + 2 * x + b];
                                        let want = at(0, 0).max(at(0, 1)).max(at(1, 0).max(at(1, 1)));
                                        let got = pooled[((n * m + i) * ph + y) * pw + x];
                                        assert_eq!(
                                            got.to_bits(),
                                            want.to_bits(),
                                            "{level:?} {tile:?} pooled ({n}, {i}, {y}, {x}): {kc} {m} {h}x{w} pad {pad}"
                                        );
                                    }
                                }
                            }
                        }
                        if let Some((first, y)) = results.first() {
                            let same = y.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits());
                            assert!(same, "{first:?} vs {level:?} {tile:?}: {kc} {m} {h}x{w} pad {pad}");
                        }
                        results.push((level, out));
                    }
                }
            }
        }
    }

    /// The weight gradient, F(3x3, 2x2), at every level against plain loops over two images
    /// (accumulated, then added onto existing values), and the levels against each other bit for
    /// bit: odd and even sizes, padding, channel counts around the vector widths.
    #[test]
    fn weight_gradient_at_every_level_matches_plain_loops_and_the_others_exactly() {
        let mut rng = Rng::new(10);
        for (kc, m, h, w, pad) in [
            (1, 3, 5, 5, 0),
            (3, 9, 8, 19, 1),
            (8, 17, 12, 12, 1),
            (2, 2, 3, 70, 2),
            (6, 5, 12, 12, 0),
            (32, 64, 26, 26, 0),
            (64, 128, 12, 12, 0),
            (4, 3, 11, 7, 0),
            (5, 40, 7, 6, 1),
        ] {
            let (oh, ow) = (h + 2 * pad - 2, w + 2 * pad - 2);
            let n = 2;
            let inp: Vec<f32> = (0..n * kc * h * w).map(|_| rng.normal()).collect();
            let dy: Vec<f32> = (0..n * m * oh * ow).map(|_| rng.normal()).collect();
            let dw0: Vec<f32> = (0..m * kc * 9).map(|_| rng.normal()).collect();
            let at = |img: usize, j: usize, y: usize, x: usize| {
                let (y, x) = (y as isize - pad as isize, x as isize - pad as isize);
                if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                    0.0
                } else {
                    inp[((img * kc + j) * h + y as usize) * w + x as usize]
                }
            };
            let mut reference = dw0.clone();
            for i in 0..m {
                for j in 0..kc {
                    for t in 0..9 {
                        let (a, b) = (t / 3, t % 3);
                        let mut sum = 0.0f64;
                        for img in 0..n {
                            for y in 0..oh {
                                for x in 0..ow {
                                    let d = dy[((img * m + i) * oh + y) * ow + x] as f64;
                                    sum += d * at(img, j, y + a, x + b) as f64;
                                }
                            }
                        }
                        reference[(i * kc + j) * 9 + t] += sum as f32;
                    }
                }
            }
            let scale = reference.iter().fold(0.0f32, |s, v| s.max(v.abs()));
            let mut first: Option<(Level, Vec<f32>)> = None;
            for level in levels_here() {
                let mut scratch = Scratch::default();
                let mut acc = vec![0.0f32; 16 * kc * m];
                for img in 0..n {
                    let x = &inp[img * kc * h * w..(img + 1) * kc * h * w];
                    let d = &dy[img * m * oh * ow..(img + 1) * m * oh * ow];
                    accumulate_weight_grad_in(level, x, (kc, h, w), pad, d, m, &mut scratch, &mut acc);
                }
                let mut dw = dw0.clone();
                add_weight_grad(&acc, kc, m, &mut dw);
                for (u, v) in dw.iter().zip(&reference) {
                    assert!(
                        (u - v).abs() <= 1e-4 * (1.0 + v.abs()) + 1e-5 * scale,
                        "{level:?}: {u} vs {v}, {kc} {m} {h}x{w} pad {pad}"
                    );
                }
                match &first {
                    Some((l, d)) => assert!(
                        d.iter().zip(&dw).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{l:?} vs {level:?}: {kc} {m} {h}x{w} pad {pad}"
                    ),
                    None => first = Some((level, dw)),
                }
            }
        }
    }
}
