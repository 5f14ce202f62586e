//! Convolutions: forward with and without the fused activation, and the backward pass with
//! and without split weight-gradient sums, on odd geometries.

use super::*;
use crate::ops::ConvAlgorithm;

/// Odd geometries: padding 0/1/2, odd sizes, k = 2, 3, 5, strides 1, 2 and 3.
const CONV_GEOMS: [Conv2dGeom; 9] = [
    Conv2dGeom { c: 1, h: 7, w: 9, f: 4, k: 3, stride: 1, pad: 0 },
    Conv2dGeom { c: 2, h: 8, w: 8, f: 5, k: 3, stride: 2, pad: 1 },
    Conv2dGeom { c: 3, h: 9, w: 7, f: 3, k: 5, stride: 1, pad: 2 },
    Conv2dGeom { c: 4, h: 6, w: 5, f: 6, k: 2, stride: 2, pad: 0 },
    Conv2dGeom { c: 1, h: 28, w: 28, f: 8, k: 3, stride: 1, pad: 0 },
    Conv2dGeom { c: 5, h: 10, w: 11, f: 7, k: 5, stride: 2, pad: 2 },
    Conv2dGeom { c: 8, h: 7, w: 7, f: 3, k: 3, stride: 1, pad: 1 },
    Conv2dGeom { c: 3, h: 5, w: 5, f: 2, k: 5, stride: 1, pad: 0 },
    Conv2dGeom { c: 2, h: 4, w: 4, f: 3, k: 3, stride: 3, pad: 1 },
];

#[test]
fn conv2d_forward_matches_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(6);
    // The last case is large enough for 64 x 64 tiles.
    let cases = CONV_GEOMS.iter().flat_map(|&g| [(g, 1), (g, 3)]).chain([(CONV_GEOMS[4], 6)]);
    for (g, n) in cases {
        let x = randn(n * g.in_len(), &mut rng);
        let w = randn(g.f * g.patch_len(), &mut rng);
        let b = randn(g.f, &mut rng);
        let scale = cpu::conv::forward_direct(&abs(&x), &abs(&w), &abs(&b), &g, n);
        let (gx, gw, gb, gy) = (
            gpu.upload(&x).unwrap(),
            gpu.upload(&w).unwrap(),
            gpu.upload(&b).unwrap(),
            gpu.zeros(n * g.out_len()).unwrap(),
        );
        for slope in [None, Some(0.01)] {
            let mut want = vec![0.0; n * g.out_len()];
            let mut s = cpu::conv::ConvScratch::default();
            cpu::conv::forward(&x, &w, &b, &g, n, ConvAlgorithm::Im2col, slope, &mut s, &mut want);
            conv2d(&gx, &gw, &gb, n, &g, slope, &gy).unwrap();
            let what = format!("conv2d n={n} {g:?} act {}", slope.is_some());
            rel_close(&what, &gpu.download(&gy).unwrap(), &want, &scale, 1e-5);
        }
    }
}

/// The CPU's backward pass (im2col, the reference) against the GPU's, with `splits` partial sums
/// of the weight gradient when given.
fn conv_backward_case(gpu: &Gpu, g: Conv2dGeom, n: usize, act: bool, splits: Option<usize>, rng: &mut Rng) -> f32 {
    let x = randn(n * g.in_len(), rng);
    let w = randn(g.f * g.patch_len(), rng);
    let b = randn(g.f, rng);
    let dy = randn(n * g.out_len(), rng);
    let slope = 0.1;
    let mut s = cpu::conv::ConvScratch::default();
    let mut y = vec![0.0; dy.len()];
    cpu::conv::forward(&x, &w, &b, &g, n, ConvAlgorithm::Im2col, act.then_some(slope), &mut s, &mut y);
    let grads = |x: &[f32], w: &[f32], y: Option<&[f32]>, dy: &[f32], s: &mut cpu::conv::ConvScratch| {
        let (mut dw, mut db, mut dx) = (vec![0.0; w.len()], vec![0.0; g.f], vec![0.0; x.len()]);
        let act = y.map(|y| (slope, y));
        cpu::conv::backward(x, w, act, dy, &g, n, ConvAlgorithm::Im2col, s, &mut dw, &mut db, Some(&mut dx));
        [dw, db, dx]
    };
    let want = grads(&x, &w, act.then_some(&y[..]), &dy, &mut s);
    // Σ|terms|: the same sums over magnitudes (|leaky_relu'| ≤ 1 bounds the activation's factor).
    let scale = grads(&abs(&x), &abs(&w), None, &abs(&dy), &mut s);

    let up = |v: &[f32]| gpu.upload(v).unwrap();
    let (gx, gw, gy, gdy) = (up(&x), up(&w), up(&y), up(&dy));
    let (gdw, gdb, gdx) = (up(&vec![7.0; w.len()]), up(&vec![7.0; g.f]), up(&vec![7.0; x.len()]));
    let gact = act.then_some((slope, &gy));
    match splits {
        Some(k) => {
            crate::ops::gpu::conv::backward_split(&gx, &gw, gact, &gdy, n, &g, &gdw, &gdb, Some(&gdx), k).unwrap()
        }
        None => conv2d_backward(&gx, &gw, gact, &gdy, n, &g, &gdw, &gdb, Some(&gdx)).unwrap(),
    }
    let mut worst = 0.0f32;
    for ((what, got), (want, scale)) in ["dw", "db", "dx"].iter().zip([&gdw, &gdb, &gdx]).zip(want.iter().zip(&scale)) {
        let label = format!("conv2d_backward {what} n={n} act {act} splits {splits:?} {g:?}");
        worst = worst.max(rel_close(&label, &gpu.download(got).unwrap(), want, scale, 1e-5));
    }
    worst
}

#[test]
fn conv2d_backward_matches_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(7);
    let mut worst = 0.0f32;
    for g in CONV_GEOMS {
        for n in [1, 3] {
            for act in [false, true] {
                worst = worst.max(conv_backward_case(&gpu, g, n, act, None, &mut rng));
            }
        }
    }
    // Weight gradients summed in several splits: forced, and chosen by size.
    worst = worst.max(conv_backward_case(&gpu, CONV_GEOMS[2], 3, true, Some(3), &mut rng));
    let big = Conv2dGeom { c: 2, h: 30, w: 30, f: 4, k: 3, stride: 1, pad: 1 };
    assert!(crate::ops::gpu::conv::dw_splits(big.f, big.patch_len(), 3 * big.out_plane()) > 1);
    worst = worst.max(conv_backward_case(&gpu, big, 3, false, None, &mut rng));
    // Large enough for 64 x 64 tiles (the input gradient).
    worst = worst.max(conv_backward_case(&gpu, CONV_GEOMS[4], 6, true, None, &mut rng));
    eprintln!("conv2d_backward: max relative error {worst:.2e}");
}
