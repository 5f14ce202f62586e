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
    for (c, f, h, w, k) in
        [(1, 8, 9, 9, 3), (3, 5, 7, 11, 3), (17, 9, 6, 30, 3), (32, 64, 12, 12, 3), (64, 13, 5, 5, 2), (50, 7, 8, 8, 5)]
    {
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
