use super::*;
use crate::ops::cpu::elementwise::{leaky_relu, leaky_relu_backward};
use crate::ops::params::{Conv2dGeom, ConvAlgorithm};
use crate::rng::Rng;

/// Convolution with the activation fused gives bit for bit what the two passes give.
#[test]
fn fused_leaky_relu_matches_separate_passes() {
    let mut rng = Rng::new(3);
    for (g, algo) in [
        (Conv2dGeom { c: 32, h: 10, w: 9, f: 16, k: 3, stride: 1, pad: 0 }, ConvAlgorithm::Auto),
        (Conv2dGeom { c: 32, h: 10, w: 9, f: 16, k: 3, stride: 1, pad: 0 }, ConvAlgorithm::Winograd),
        (Conv2dGeom { c: 32, h: 10, w: 9, f: 16, k: 3, stride: 1, pad: 0 }, ConvAlgorithm::Im2col),
        (Conv2dGeom { c: 1, h: 8, w: 8, f: 8, k: 3, stride: 2, pad: 1 }, ConvAlgorithm::Auto),
    ] {
        let n = 6;
        let x = randn(n * g.in_len(), &mut rng);
        let w = randn(g.f * g.patch_len(), &mut rng);
        let b = randn(g.f, &mut rng);
        let dy = randn(n * g.out_len(), &mut rng);
        let mut s = ConvScratch::default();
        let (mut pre, mut post, mut fused) = (vec![0.0; dy.len()], vec![0.0; dy.len()], vec![0.0; dy.len()]);
        forward(&x, &w, &b, &g, n, algo, None, &mut s, &mut pre);
        leaky_relu(&pre, 0.01, &mut post);
        forward(&x, &w, &b, &g, n, algo, Some(0.01), &mut s, &mut fused);
        assert_eq!(post, fused);
        let mut dpre = vec![0.0; dy.len()];
        leaky_relu_backward(&post, &dy, 0.01, &mut dpre);
        let grads = |act: Option<(f32, &[f32])>, dy: &[f32], s: &mut ConvScratch| {
            let (mut dw, mut db, mut dx) = (vec![0.0; w.len()], vec![0.0; g.f], vec![0.0; x.len()]);
            backward(&x, &w, act, dy, &g, n, algo, s, &mut dw, &mut db, Some(&mut dx));
            [dw, db, dx]
        };
        assert_eq!(grads(None, &dpre, &mut s), grads(Some((0.01, &fused)), &dy, &mut s));
    }
}

fn randn(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| rng.normal()).collect()
}

/// The shifted-product paths (direct kernel where the CPU has it, and through `gemm`) against
/// the im2col reference: outputs and all three gradients.
#[test]
fn shifted_products_match_im2col() {
    let geoms = [
        Conv2dGeom { c: 32, h: 26, w: 26, f: 64, k: 3, stride: 1, pad: 0 },
        Conv2dGeom { c: 8, h: 9, w: 7, f: 4, k: 3, stride: 1, pad: 0 },
        Conv2dGeom { c: 8, h: 6, w: 6, f: 5, k: 3, stride: 1, pad: 1 },
        Conv2dGeom { c: 9, h: 5, w: 8, f: 2, k: 3, stride: 1, pad: 2 },
        Conv2dGeom { c: 8, h: 7, w: 5, f: 3, k: 2, stride: 1, pad: 0 },
        Conv2dGeom { c: 10, h: 9, w: 9, f: 3, k: 5, stride: 1, pad: 1 },
        Conv2dGeom { c: 1, h: 28, w: 28, f: 8, k: 3, stride: 1, pad: 0 },
        Conv2dGeom { c: 16, h: 12, w: 12, f: 8, k: 3, stride: 1, pad: 0 },
        Conv2dGeom { c: 64, h: 12, w: 12, f: 128, k: 3, stride: 1, pad: 0 },
        Conv2dGeom { c: 48, h: 7, w: 6, f: 20, k: 3, stride: 1, pad: 1 },
    ];
    let mut rng = Rng::new(11);
    for g in geoms {
        let n = 5;
        let x = randn(n * g.in_len(), &mut rng);
        let w = randn(g.f * g.patch_len(), &mut rng);
        let b = randn(g.f, &mut rng);
        let dy = randn(n * g.out_len(), &mut rng);
        let run = |algo| {
            let mut s = ConvScratch::default();
            let mut y = vec![0.0; n * g.out_len()];
            forward(&x, &w, &b, &g, n, algo, None, &mut s, &mut y);
            let (mut dw, mut db, mut dx) = (vec![7.0; w.len()], vec![7.0; g.f], vec![7.0; x.len()]);
            backward(&x, &w, None, &dy, &g, n, algo, &mut s, &mut dw, &mut db, Some(&mut dx));
            [y, dw, db, dx]
        };
        let reference = run(ConvAlgorithm::Im2col);
        for algo in ConvAlgorithm::ALL.into_iter().filter(|&a| a != ConvAlgorithm::Im2col) {
            let fast = run(algo);
            // Winograd F(4x4, 3x3) rounds relative to the sum's terms (its transforms scale
            // them by up to 8 and 1/24), as the sums in another order below do.
            let direct = forward_direct(&x, &w, &b, &g, n);
            let scale = direct.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (u, v) in fast[0].iter().zip(&direct) {
                assert!(
                    (u - v).abs() <= 1e-4 * (1.0 + v.abs()) + 1e-5 * scale,
                    "{algo:?} y vs direct loops: {u} vs {v} for {g:?}"
                );
            }
            for (what, (a, r)) in ["y", "dw", "db", "dx"].iter().zip(fast.iter().zip(&reference)) {
                assert_eq!(a.len(), r.len());
                // Sums of thousands of terms (dw) in another order differ by rounding relative
                // to the sums' scale, not to each (possibly cancelling) value.
                let scale = r.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                for (u, v) in a.iter().zip(r) {
                    assert!(
                        (u - v).abs() <= 1e-4 * (1.0 + v.abs()) + 1e-5 * scale,
                        "{algo:?} {what}: {u} vs {v} for {g:?}"
                    );
                }
            }
        }
    }
}
