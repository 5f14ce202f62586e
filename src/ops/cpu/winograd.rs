//! Winograd F(2x2, 3x3) for 3x3, stride-1 convolutions: each 2x2 block of outputs from a 4x4
//! block of inputs with 16 multiplies per (output channel, input channel) instead of 36, 2.25x
//! fewer (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
//!   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
//! summed over input channels before the output transform. So a convolution becomes
//!   V_ξ (c, tiles)  = Bᵀ d B, component ξ of every input tile      (input transform)
//!   M_ξ (m, tiles)  = U_ξ (m, c) · V_ξ                             (16 products, direct kernel)
//!   Y               = Aᵀ M A                                       (output transform)
//! with U = G g Gᵀ transformed once per layer call. The input gradient is the same computation on
//! dY padded by 2, with the weights transposed and flipped.
//!
//! Layout: tiles are numbered u = ty·(tw + 1) + tx: one unused tile per tile row, so that every
//! transform is one long loop over u with unit strides (it vectorises) instead of short rows.
//! `even`/`odd` hold the input's even and odd columns for each of the 4 rows a tile row reads.

// Elsewhere than x86-64 `conv_direct::available()` is false and nothing here runs.
#![cfg_attr(not(target_arch = "x86_64"), allow(unused_variables, unused_mut))]

use super::conv_direct::{self, MR};

const G: [[f32; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];

#[derive(Default, Debug, Clone)]
pub struct Scratch {
    even: Vec<f32>,
    odd: Vec<f32>,
    row: Vec<f32>,
    v: Vec<f32>,
    m: Vec<f32>,
    out: [Vec<f32>; 4],
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
/// for inp (kc, h, w) zero outside, oh = h + 2·pad - 2 (ow alike), plus bias[i] if given; with
/// `packed` from [`pack_weights`]. Overwrites `out`. Needs AVX-512 (the transforms and products
/// use it), like [`conv_direct`].
#[allow(clippy::too_many_arguments)]
pub fn correlate(
    inp: &[f32],
    (kc, h, w): (usize, usize, usize),
    pad: usize,
    packed: &[f32],
    m: usize,
    bias: Option<&[f32]>,
    s: &mut Scratch,
    out: &mut [f32],
) {
    assert!(conv_direct::available(), "winograd::correlate needs AVX-512");
    let (oh, ow) = (h + 2 * pad - 2, w + 2 * pad - 2);
    let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
    let twp = tw + 1;
    let tiles = th * twp;
    let per = m.div_ceil(MR) * kc * MR;
    assert!(inp.len() >= kc * h * w && out.len() >= m * oh * ow && packed.len() >= 16 * per);
    // even/odd: for input channel j and tile row i (0..4), at u = ty·twp + tx, columns 2tx - pad
    // and 2tx + 1 - pad of input row 2ty + i - pad (zero outside); one more entry at the end, read
    // by the last (unused) tile.
    let lane = tiles + 1;
    for buf in [&mut s.even, &mut s.odd] {
        buf.clear();
        buf.resize(kc * 4 * lane, 0.0);
    }
    s.row.clear();
    s.row.resize(2 * twp + 32, 0.0);
    for j in 0..kc {
        for y in 0..h {
            s.row[pad..pad + w].copy_from_slice(&inp[(j * h + y) * w..][..w]);
            // Padded row y + pad is row i = (y + pad) - 2·ty of tile rows ty = (y + pad - i) / 2.
            for i in (0..4).filter(|i| (y + pad) >= *i && (y + pad - i).is_multiple_of(2) && (y + pad - i) / 2 < th) {
                let at = (j * 4 + i) * lane + (y + pad - i) / 2 * twp;
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX-512F present (asserted); row has 2·twp + 32 floats, even/odd twp at `at`.
                unsafe {
                    avx512::deinterleave(&s.row, &mut s.even[at..at + twp], &mut s.odd[at..at + twp])
                };
            }
        }
    }
    s.v.resize(16 * kc * tiles, 0.0);
    for j in 0..kc {
        let e: [&[f32]; 4] = std::array::from_fn(|i| &s.even[(j * 4 + i) * lane..][..lane]);
        let o: [&[f32]; 4] = std::array::from_fn(|i| &s.odd[(j * 4 + i) * lane..][..lane]);
        let mut parts = s.v.chunks_mut(kc * tiles);
        let v: [&mut [f32]; 16] =
            std::array::from_fn(|_| &mut parts.next().expect("16 components")[j * tiles..][..tiles]);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F present; e, o hold tiles + 1 floats and v tiles each.
        unsafe {
            avx512::input_transform(e, o, v, tiles)
        };
    }
    s.m.resize(16 * m * tiles, 0.0);
    for xi in 0..16 {
        conv_direct::taps_product(
            &packed[xi * per..(xi + 1) * per],
            m,
            kc,
            &[0],
            &s.v[xi * kc * tiles..(xi + 1) * kc * tiles],
            tiles,
            tiles,
            &mut s.m[xi * m * tiles..(xi + 1) * m * tiles],
            tiles,
        );
    }
    for o in s.out.iter_mut() {
        o.resize(tiles + 16, 0.0);
    }
    for (i, plane) in out.chunks_mut(oh * ow).take(m).enumerate() {
        let c: [&[f32]; 16] = std::array::from_fn(|xi| &s.m[(xi * m + i) * tiles..][..tiles]);
        let [o00, o01, o10, o11] = &mut s.out;
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F present; c holds tiles floats each, the outputs tiles + 16.
        unsafe {
            avx512::output_transform(c, [o00, o01, o10, o11], tiles)
        };
        let b = bias.map_or(0.0, |b| b[i]);
        for (oy, row) in plane.chunks_mut(ow).enumerate() {
            let (ty, a) = (oy / 2, oy % 2);
            let (r0, r1) = (&s.out[2 * a][ty * twp..], &s.out[2 * a + 1][ty * twp..]);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX-512F present; r0, r1 hold at least tw + 16 floats (row needs tw).
            unsafe {
                avx512::interleave(r0, r1, b, row)
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

    /// even[x] = row[2x], odd[x] = row[2x + 1] for x < even.len(); row holds 2·len + 32 floats.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn deinterleave(row: &[f32], even: &mut [f32], odd: &mut [f32]) {
        let n = even.len().min(odd.len());
        debug_assert!(row.len() >= 2 * n + 32);
        let ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        for x in (0..n).step_by(16) {
            let k = mask(n - x);
            // SAFETY: 2x + 32 ≤ 2n + 32 ≤ row.len(); stores masked to x + 16 ≤ n.
            unsafe {
                let (a, b) = (_mm512_loadu_ps(row.as_ptr().add(2 * x)), _mm512_loadu_ps(row.as_ptr().add(2 * x + 16)));
                _mm512_mask_storeu_ps(even.as_mut_ptr().add(x), k, _mm512_permutex2var_ps(a, ev, b));
                _mm512_mask_storeu_ps(odd.as_mut_ptr().add(x), k, _mm512_permutex2var_ps(a, od, b));
            }
        }
    }

    /// v_ξ[u] = (Bᵀ d_u B)_ξ where tile u's columns are e[·][u], o[·][u], e[·][u + 1], o[·][u + 1].
    #[target_feature(enable = "avx512f")]
    pub unsafe fn input_transform(e: [&[f32]; 4], o: [&[f32]; 4], v: [&mut [f32]; 16], tiles: usize) {
        debug_assert!(e.iter().chain(&o).all(|r| r.len() > tiles) && v.iter().all(|r| r.len() >= tiles));
        for u in (0..tiles).step_by(16) {
            let k = mask(tiles - u);
            // Bᵀ over the four rows of one column of 16 tiles.
            let col = |r: &[&[f32]; 4], at: usize| -> [__m512; 4] {
                // SAFETY: at + 16 ≤ tiles + 1 where the mask is full, masked lanes are not read.
                let d: [__m512; 4] =
                    std::array::from_fn(|i| unsafe { _mm512_maskz_loadu_ps(k, r[i].as_ptr().add(at)) });
                [
                    _mm512_sub_ps(d[0], d[2]),
                    _mm512_add_ps(d[1], d[2]),
                    _mm512_sub_ps(d[2], d[1]),
                    _mm512_sub_ps(d[1], d[3]),
                ]
            };
            let (e0, o0, e1, o1) = (col(&e, u), col(&o, u), col(&e, u + 1), col(&o, u + 1));
            for a in 0..4 {
                let outs = [
                    _mm512_sub_ps(e0[a], e1[a]),
                    _mm512_add_ps(o0[a], e1[a]),
                    _mm512_sub_ps(e1[a], o0[a]),
                    _mm512_sub_ps(o0[a], o1[a]),
                ];
                for (b, val) in outs.into_iter().enumerate() {
                    // SAFETY: masked to u + 16 ≤ tiles.
                    unsafe { _mm512_mask_storeu_ps(v[4 * a + b].as_ptr().add(u) as *mut f32, k, val) };
                }
            }
        }
    }

    /// out[2a + b][u] = (Aᵀ M_u A)[a][b], M_u[ξ] = c[ξ][u], Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]].
    #[target_feature(enable = "avx512f")]
    pub unsafe fn output_transform(c: [&[f32]; 16], out: [&mut Vec<f32>; 4], tiles: usize) {
        debug_assert!(c.iter().all(|r| r.len() >= tiles) && out.iter().all(|r| r.len() >= tiles));
        for u in (0..tiles).step_by(16) {
            let k = mask(tiles - u);
            // SAFETY: masked to u + 16 ≤ tiles.
            let m: [__m512; 16] = std::array::from_fn(|xi| unsafe { _mm512_maskz_loadu_ps(k, c[xi].as_ptr().add(u)) });
            let add3 = |a, b, c| _mm512_add_ps(_mm512_add_ps(a, b), c);
            let sub3 = |a, b, c| _mm512_sub_ps(_mm512_sub_ps(a, b), c);
            let p0: [__m512; 4] = std::array::from_fn(|a| add3(m[4 * a], m[4 * a + 1], m[4 * a + 2]));
            let p1: [__m512; 4] = std::array::from_fn(|a| sub3(m[4 * a + 1], m[4 * a + 2], m[4 * a + 3]));
            let vals = [
                add3(p0[0], p0[1], p0[2]),
                add3(p1[0], p1[1], p1[2]),
                sub3(p0[1], p0[2], p0[3]),
                sub3(p1[1], p1[2], p1[3]),
            ];
            for (o, val) in out.iter().zip(vals) {
                // SAFETY: masked to u + 16 ≤ tiles ≤ o.len().
                unsafe { _mm512_mask_storeu_ps(o.as_ptr().add(u) as *mut f32, k, val) };
            }
        }
    }

    /// row[2x] = r0[x] + b, row[2x + 1] = r1[x] + b, for 2x (+ 1) < row.len(); r0, r1 hold at
    /// least row.len() / 2 + 16 floats.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn interleave(r0: &[f32], r1: &[f32], b: f32, row: &mut [f32]) {
        let n = row.len();
        debug_assert!(r0.len().min(r1.len()) >= n / 2 + 16);
        let lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        let bias = _mm512_set1_ps(b);
        for x in (0..n.div_ceil(2)).step_by(16) {
            // SAFETY: loads x + 16 ≤ n / 2 + 16 + ... within r0, r1; stores masked to row.len().
            unsafe {
                let a = _mm512_add_ps(_mm512_loadu_ps(r0.as_ptr().add(x)), bias);
                let c = _mm512_add_ps(_mm512_loadu_ps(r1.as_ptr().add(x)), bias);
                let at = 2 * x;
                _mm512_mask_storeu_ps(row.as_mut_ptr().add(at), mask(n - at), _mm512_permutex2var_ps(a, lo, c));
                if n > at + 16 {
                    _mm512_mask_storeu_ps(
                        row.as_mut_ptr().add(at + 16),
                        mask(n - at - 16),
                        _mm512_permutex2var_ps(a, hi, c),
                    );
                }
            }
        }
    }
}
