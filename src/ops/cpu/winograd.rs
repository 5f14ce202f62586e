//! Winograd F(2x2, 3x3) for 3x3, stride-1 convolutions: each 2x2 block of outputs from a 4x4
//! block of inputs with 16 multiplies per (output channel, input channel) instead of 36, 2.25x
//! fewer (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
//!   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
//! summed over input channels before the output transform. So a convolution becomes
//!   V_ξ (c, tiles)  = Bᵀ d B, component ξ of every input tile      (input transform)
//!   M_ξ (m, tiles)  = U_ξ (m, c) · V_ξ                             (16 products, direct kernel)
//!   Y               = Aᵀ M A                                       (output transform)
//! with U = G g Gᵀ transformed once per layer call. Used for the forward pass; the input gradient
//! would be the same computation on dY padded by 2 with the weights transposed and flipped, but
//! measured slower there than the direct kernel (see docs/ARCHITECTURE.md).
//!
//! Layout: tiles are numbered u = ty·tw + tx. The input transform takes 16 tiles of a tile row at
//! once, splitting the 4 input rows they read into even and odd columns with vector permutes. V
//! and M keep the 16 components of a channel next to each other ((c, 16, tiles), (m, 16, tiles)):
//! each transform then writes or reads one small block instead of 16 places far apart (measured:
//! the input transform was bound by those scattered stores).

// Elsewhere than x86-64 `conv_direct::available()` is false and nothing here runs.
#![cfg_attr(not(target_arch = "x86_64"), allow(unused_variables, unused_mut))]

use super::conv_direct::{self, MR};

const G: [[f32; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];

#[derive(Default, Debug, Clone)]
pub struct Scratch {
    /// The input, zero-padded, and the (channels, height, width, pad) it was laid out for: its
    /// borders are never written, so they stay zero from one call to the next.
    padded: Vec<f32>,
    padded_for: (usize, usize, usize, usize),
    v: Vec<f32>,
    m: Vec<f32>,
}

/// Transforms and packs 3x3 kernels for [`correlate`]: `kernel(row, j)` is the kernel that maps
/// input channel j to output row `row`, as [ki][kj]. 16 packings (one per component ξ) in the
/// layout of [`conv_direct::pack_append`] with one tap.
pub fn pack_weights(rows: usize, red: usize, out: &mut Vec<f32>, kernel: impl Fn(usize, usize) -> [[f32; 3]; 3]) {
    let per = rows.div_ceil(MR) * red * MR;
    out.clear();
    out.resize(16 * per, 0.0);
    for row in 0..rows {
        for j in 0..red {
            let g = kernel(row, j);
            // U = G g Gᵀ
            let gg: [[f32; 3]; 4] =
                std::array::from_fn(|a| std::array::from_fn(|b| (0..3).map(|k| G[a][k] * g[k][b]).sum()));
            for xi in 0..16 {
                let (a, b) = (xi / 4, xi % 4);
                out[xi * per + (row / MR * red + j) * MR + row % MR] = (0..3).map(|k| gg[a][k] * G[b][k]).sum();
            }
        }
    }
}

/// out (m, oh, ow) = Σ_j Σ_{ki,kj} kernel(i, j)[ki][kj] · inp(j, oy + ki - pad, ox + kj - pad),
/// for inp (kc, h, w) zero outside, oh = h + 2·pad - 2 (ow alike), plus bias[i] if given, through
/// leaky ReLU with `slope` if given; with `packed` from [`pack_weights`]. Overwrites `out`. Needs AVX-512 (the transforms and products
/// use it), like [`conv_direct`].
#[allow(clippy::too_many_arguments)]
pub fn correlate(
    inp: &[f32],
    (kc, h, w): (usize, usize, usize),
    pad: usize,
    packed: &[f32],
    m: usize,
    bias: Option<&[f32]>,
    slope: Option<f32>,
    s: &mut Scratch,
    out: &mut [f32],
) {
    assert!(conv_direct::available(), "winograd::correlate needs AVX-512");
    assert!(h + 2 * pad >= 3 && w + 2 * pad >= 3, "winograd::correlate: image smaller than its kernel");
    let (oh, ow) = (h + 2 * pad - 2, w + 2 * pad - 2);
    let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
    let tiles = th * tw;
    let per = m.div_ceil(MR) * kc * MR;
    assert!(inp.len() >= kc * h * w && out.len() >= m * oh * ow && packed.len() >= 16 * per);
    // The rows the tiles read: the input itself when it needs no padding (every tile row's 4
    // rows exist), else a zero-padded copy of 2·th + 2 rows. Loads are masked to a row's length.
    let (src, ph, pw) = if pad == 0 && oh.is_multiple_of(2) {
        (inp, h, w)
    } else {
        let (ph, pw) = (2 * th + 2, 2 * tw + 2);
        if s.padded_for != (kc, h, w, pad) || s.padded.len() != kc * ph * pw {
            s.padded.clear();
            s.padded.resize(kc * ph * pw, 0.0);
            s.padded_for = (kc, h, w, pad);
        }
        for (plane, src) in s.padded.chunks_mut(ph * pw).zip(inp.chunks(h * w)).take(kc) {
            for (row, src) in plane[pad * pw..].chunks_mut(pw).zip(src.chunks(w)) {
                row[pad..pad + w].copy_from_slice(src);
            }
        }
        (&s.padded[..], ph, pw)
    };
    s.v.resize(16 * kc * tiles, 0.0);
    for j in 0..kc {
        let plane = &src[j * ph * pw..(j + 1) * ph * pw];
        for ty in 0..th {
            let rows = &plane[2 * ty * pw..(2 * ty + 4) * pw];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX-512F was asserted above; `rows` holds 4·pw floats (sliced); V is
            // written at (j·16 + ξ)·tiles + ty·tw + (0..tw), below (j·16 + 16)·tiles ≤ s.v.len()
            // as ty < th and tiles = th·tw; s.v is borrowed mutably, nothing else touches it.
            unsafe {
                avx512::input_tile_row(rows, pw, tw, s.v.as_mut_ptr().add(j * 16 * tiles + ty * tw), tiles)
            };
        }
    }
    s.m.resize(16 * m * tiles, 0.0);
    for xi in 0..16 {
        conv_direct::taps_product(
            &packed[xi * per..(xi + 1) * per],
            m,
            kc,
            &[0],
            &s.v[xi * tiles..],
            16 * tiles,
            tiles,
            &mut s.m[xi * tiles..],
            16 * tiles,
        );
    }
    for (i, plane) in out.chunks_mut(oh * ow).take(m).enumerate() {
        let mi = &s.m[i * 16 * tiles..(i + 1) * 16 * tiles];
        let b = bias.map_or(0.0, |b| b[i]);
        for ty in 0..th {
            let rows = &mut plane[2 * ty * ow..((2 * ty + 2) * ow).min(oh * ow)];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX-512F was asserted above; `mi` holds 16·tiles ≥ 15·tiles + ty·tw + tw
            // floats (ty < th); tw = ow.div_ceil(2).
            unsafe {
                avx512::output_tile_row(mi, tiles, ty * tw, tw, (b, slope), rows, ow)
            };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    fn mask(n: usize) -> __mmask16 {
        ((1u32 << n.min(16)) - 1) as __mmask16
    }

    /// v_ξ[tx] (at v + ξ·v_stride) = (Bᵀ d B)_ξ of the tiles tx < tw of one tile row, whose 4
    /// input rows of `rs` floats follow each other in `rows`; tile tx reads columns 2tx..2tx + 4
    /// (zero past a row's end).
    ///
    /// # Safety
    /// The CPU has AVX-512F; rows.len() ≥ 4·rs; v[ξ·v_stride + tx] for ξ < 16, tx < tw is
    /// writable and not accessed by anyone else during the call.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn input_tile_row(rows: &[f32], rs: usize, tw: usize, v: *mut f32, v_stride: usize) {
        debug_assert!(rows.len() >= 4 * rs);
        let ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        for tx in (0..tw).step_by(16) {
            let k = mask(tw - tx);
            // For each row, columns 2tx + {0, 1, 2, 3} of 16 tiles: the tiles' d[i][0..4].
            let d: [[__m512; 4]; 4] = std::array::from_fn(|i| {
                // 48 floats from column 2tx, zero past the row's end.
                let [a, b, c] = std::array::from_fn(|q| {
                    let at = 2 * tx + 16 * q;
                    // SAFETY: masked to the row: i·rs + at + lanes ≤ (i + 1)·rs ≤ rows.len() (the
                    // caller's), and the pointer clamped to the row's end where no lane is read.
                    unsafe {
                        _mm512_maskz_loadu_ps(mask(rs.saturating_sub(at)), rows.as_ptr().add(i * rs + at.min(rs)))
                    }
                });
                let (e0, o0) = (_mm512_permutex2var_ps(a, ev, b), _mm512_permutex2var_ps(a, od, b));
                let ci = _mm512_castps_si512(c);
                let shift = |x: __m512, next: __m512i| {
                    _mm512_castsi512_ps(_mm512_alignr_epi32::<1>(next, _mm512_castps_si512(x)))
                };
                [e0, o0, shift(e0, ci), shift(o0, _mm512_alignr_epi32::<1>(ci, ci))]
            });
            // Bᵀ over the rows, for each of the 4 columns; then over the columns.
            let t: [[__m512; 4]; 4] = std::array::from_fn(|col| {
                let r = |i: usize| d[i][col];
                [
                    _mm512_sub_ps(r(0), r(2)),
                    _mm512_add_ps(r(1), r(2)),
                    _mm512_sub_ps(r(2), r(1)),
                    _mm512_sub_ps(r(1), r(3)),
                ]
            });
            let [t0, t1, t2, t3] = t;
            for (a, (((c0, c1), c2), c3)) in t0.into_iter().zip(t1).zip(t2).zip(t3).enumerate() {
                let vals = [_mm512_sub_ps(c0, c2), _mm512_add_ps(c1, c2), _mm512_sub_ps(c2, c1), _mm512_sub_ps(c1, c3)];
                for (b, val) in vals.into_iter().enumerate() {
                    // SAFETY: masked to lanes tx + (0..16) < tw, which the caller vouches for.
                    unsafe { _mm512_mask_storeu_ps(v.add((4 * a + b) * v_stride + tx), k, val) };
                }
            }
        }
    }

    /// Output rows 2ty and 2ty + 1 (`rows`, rows of `ow`; the second may be missing at an odd
    /// end) from the tiles u0..u0 + tw of one output channel's M (16 components, `tiles` apart):
    /// y = Aᵀ M_u A + bias (then leaky ReLU with `slope` if given), Aᵀ = [[1, 1, 1, 0],
    /// [0, 1, -1, -1]], written interleaved (x = 2tx + b).
    ///
    /// # Safety
    /// The CPU has AVX-512F; mi.len() ≥ 15·tiles + u0 + tw; 1 ≤ tw ≤ ow.div_ceil(2), so each
    /// tile's first column 2tx is inside a row.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn output_tile_row(
        mi: &[f32],
        tiles: usize,
        u0: usize,
        tw: usize,
        (bias, slope): (f32, Option<f32>),
        rows: &mut [f32],
        ow: usize,
    ) {
        debug_assert!(mi.len() >= 15 * tiles + u0 + tw && rows.len() >= ow && 2 * tw <= ow + 1);
        let lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        let b = _mm512_set1_ps(bias);
        for tx in (0..tw).step_by(16) {
            let k = mask(tw - tx);
            // SAFETY: masked to lanes u0 + tx + (0..16) < u0 + tw; ξ·tiles + u0 + tw ≤ mi.len()
            // for ξ < 16, as the caller promises.
            let m: [__m512; 16] =
                std::array::from_fn(|xi| unsafe { _mm512_maskz_loadu_ps(k, mi.as_ptr().add(xi * tiles + u0 + tx)) });
            let add3 = |a, b, c| _mm512_add_ps(_mm512_add_ps(a, b), c);
            let sub3 = |a, b, c| _mm512_sub_ps(_mm512_sub_ps(a, b), c);
            let p0: [__m512; 4] = std::array::from_fn(|a| add3(m[4 * a], m[4 * a + 1], m[4 * a + 2]));
            let p1: [__m512; 4] = std::array::from_fn(|a| sub3(m[4 * a + 1], m[4 * a + 2], m[4 * a + 3]));
            let y = [
                [add3(p0[0], p0[1], p0[2]), add3(p1[0], p1[1], p1[2])],
                [sub3(p0[1], p0[2], p0[3]), sub3(p1[1], p1[2], p1[3])],
            ];
            for (a, [y0, y1]) in y.into_iter().enumerate() {
                let Some(row) = rows.get_mut(a * ow..(a + 1) * ow) else { continue };
                // Leaky ReLU as `elementwise::leaky_relu_here` computes it: max(v, 0) + slope·min(v, 0).
                let act = |v: __m512| match slope {
                    Some(s) => _mm512_add_ps(
                        _mm512_max_ps(v, _mm512_setzero_ps()),
                        _mm512_mul_ps(_mm512_set1_ps(s), _mm512_min_ps(v, _mm512_setzero_ps())),
                    ),
                    None => v,
                };
                let (y0, y1) = (act(_mm512_add_ps(y0, b)), act(_mm512_add_ps(y1, b)));
                let at = 2 * tx;
                // SAFETY: `row` holds ow floats (sliced); at = 2tx < ow as tx < tw ≤ ow.div_ceil(2)
                // (the caller's), and both stores are masked to the lanes before ow.
                unsafe {
                    _mm512_mask_storeu_ps(row.as_mut_ptr().add(at), mask(ow - at), _mm512_permutex2var_ps(y0, lo, y1));
                    if ow > at + 16 {
                        _mm512_mask_storeu_ps(
                            row.as_mut_ptr().add(at + 16),
                            mask(ow - at - 16),
                            _mm512_permutex2var_ps(y0, hi, y1),
                        );
                    }
                }
            }
        }
    }
}
