use super::gradcheck::check_grads;
use super::*;
use crate::ops::{self, Conv2dGeom, Pool2dGeom};

fn ctx(rng: &mut Rng) -> Ctx<'_> {
    Ctx { train: false, rng }
}

#[test]
fn dense_grads_match_finite_differences() {
    let mut rng = Rng::new(0);
    for n in [1, 3] {
        let mut layer = Dense::new(5, 4, &mut rng);
        let x = Tensor::randn(&[n, 5], 1.0, &mut rng);
        check_grads(&mut layer, &x, false, 1e-3, 1e-2);
    }
}

#[test]
fn dense_forward_hand_computed() {
    let mut layer = Dense::new(2, 2, &mut Rng::new(0));
    layer.visit_params_mut(&mut |p| {
        let v: &[f32] = if p.name == "weight" { &[1.0, 2.0, 3.0, 4.0] } else { &[0.5, -1.0] };
        p.value.data_mut().copy_from_slice(v);
    });
    let x = Tensor::from_vec(&[1, 2], vec![1.0, -1.0]).unwrap();
    let mut y = Tensor::default();
    layer.forward(&x, &mut y, &mut ctx(&mut Rng::new(0))).unwrap();
    // w·x + b = [1-2+0.5, 3-4-1]
    assert_eq!(y.data(), &[-0.5, -2.0]);
}

fn geoms() -> Vec<(usize, Conv2dGeom)> {
    let g = |c, h, w, f, k, stride, pad| Conv2dGeom { c, h, w, f, k, stride, pad };
    vec![
        (1, g(1, 5, 5, 2, 3, 1, 0)),
        (3, g(2, 6, 7, 3, 3, 1, 0)),
        (2, g(3, 7, 6, 2, 3, 2, 1)),
        (9, g(2, 5, 5, 4, 2, 1, 2)),
        (5, g(1, 8, 8, 3, 3, 3, 1)),
    ]
}

#[test]
fn conv2d_grads_match_finite_differences_with_stride_and_padding() {
    let mut rng = Rng::new(1);
    for (n, g) in geoms() {
        let mut layer = Conv2d::new(g, &mut rng);
        let x = Tensor::randn(&[n, g.c, g.h, g.w], 1.0, &mut rng);
        // Convolution is linear in x and w, so central differences are exact for any eps; a
        // larger eps keeps f32 rounding in the summed loss out of the comparison.
        check_grads(&mut layer, &x, false, 1e-2, 1e-2);
    }
}

#[test]
fn conv2d_im2col_matches_direct_convolution() {
    let mut rng = Rng::new(2);
    for (n, g) in geoms() {
        let mut layer = Conv2d::new(g, &mut rng);
        layer.visit_params_mut(&mut |p| {
            if p.name == "bias" {
                *p.value = Tensor::randn(p.value.shape(), 1.0, &mut Rng::new(3));
            }
        });
        let params = layer.params();
        let want = ops::cpu::conv::forward_direct(
            &Tensor::randn(&[n, g.c, g.h, g.w], 1.0, &mut Rng::new(4)).into_vec(),
            params[0].1.data(),
            params[1].1.data(),
            &g,
            n,
        );
        let x = Tensor::randn(&[n, g.c, g.h, g.w], 1.0, &mut Rng::new(4));
        let mut y = Tensor::default();
        layer.forward(&x, &mut y, &mut ctx(&mut rng)).unwrap();
        assert_eq!(y.shape(), [n, g.f, g.oh(), g.ow()]);
        for (a, b) in y.data().iter().zip(&want) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b} for {g:?}");
        }
    }
}

#[test]
fn conv2d_forward_hand_computed() {
    let g = Conv2dGeom { c: 1, h: 3, w: 3, f: 1, k: 2, stride: 1, pad: 0 };
    let mut layer = Conv2d::new(g, &mut Rng::new(0));
    layer.visit_params_mut(&mut |p| {
        let v = if p.name == "weight" { 1.0 } else { 0.5 };
        p.value.fill(v).unwrap();
    });
    let x = Tensor::from_vec(&[1, 1, 3, 3], (1..=9).map(|v| v as f32).collect()).unwrap();
    let mut y = Tensor::default();
    layer.forward(&x, &mut y, &mut ctx(&mut Rng::new(0))).unwrap();
    assert_eq!(y.data(), &[12.5, 16.5, 24.5, 28.5]);
}

#[test]
fn im2col_and_col2im_are_adjoint() {
    // <im2col(x), y> = <x, col2im(y)> for every geometry, padding and stride included.
    let mut rng = Rng::new(5);
    for (_, g) in geoms() {
        let x = Tensor::randn(&[g.c, g.h, g.w], 1.0, &mut rng);
        let y = Tensor::randn(&[g.patch_len(), g.out_plane()], 1.0, &mut rng);
        let (mut cols, mut back) = (Tensor::default(), Tensor::default());
        ops::im2col(&x, &g, &mut cols).unwrap();
        ops::col2im(&y, &g, &mut back).unwrap();
        let dot =
            |a: &Tensor, b: &Tensor| a.data().iter().zip(b.data()).map(|(p, q)| *p as f64 * *q as f64).sum::<f64>();
        let (lhs, rhs) = (dot(&cols, &y), dot(&x, &back));
        assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "{lhs} vs {rhs} for {g:?}");
    }
}

#[test]
fn max_pool_forward_and_grads() {
    let g = Pool2dGeom { h: 4, w: 4, k: 2, stride: 2 };
    let mut layer = MaxPool2d::new(g);
    let x =
        Tensor::from_vec(&[1, 1, 4, 4], vec![1., 2., 5., 3., 4., 0., 1., 1., 9., 8., 2., 2., 7., 6., 3., 4.]).unwrap();
    let mut y = Tensor::default();
    layer.forward(&x, &mut y, &mut ctx(&mut Rng::new(0))).unwrap();
    assert_eq!(y.data(), &[4., 5., 9., 4.]);
    let mut dx = Tensor::default();
    let dy = Tensor::from_vec(&[1, 1, 2, 2], vec![1., 2., 3., 4.]).unwrap();
    layer.backward(&x, &y, &dy, Some(&mut dx)).unwrap();
    assert_eq!(dx.data(), &[0., 0., 2., 0., 1., 0., 0., 0., 3., 0., 0., 0., 0., 0., 0., 4.]);

    let mut rng = Rng::new(6);
    for (n, c, h, w, k, s) in [(1, 1, 4, 4, 2, 2), (3, 2, 5, 7, 2, 2), (2, 3, 6, 6, 3, 1)] {
        let mut layer = MaxPool2d::new(Pool2dGeom { h, w, k, stride: s });
        let x = Tensor::randn(&[n, c, h, w], 1.0, &mut rng);
        check_grads(&mut layer, &x, false, 1e-3, 1e-2);
    }
}

#[test]
fn leaky_relu_values_and_grads() {
    let mut layer = LeakyRelu { slope: 0.01 };
    let x = Tensor::from_vec(&[1, 4], vec![-2.0, -0.5, 0.0, 3.0]).unwrap();
    let mut y = Tensor::default();
    layer.forward(&x, &mut y, &mut ctx(&mut Rng::new(0))).unwrap();
    assert_eq!(y.data(), &[-0.02, -0.005, 0.0, 3.0]);
    let mut rng = Rng::new(7);
    for n in [1, 4] {
        let x = Tensor::randn(&[n, 3, 5], 1.0, &mut rng);
        check_grads(&mut LeakyRelu { slope: 0.01 }, &x, false, 1e-3, 1e-2);
        check_grads(&mut LeakyRelu { slope: 0.0 }, &x, false, 1e-3, 1e-2);
    }
}

#[test]
fn dropout_scales_in_training_and_is_identity_in_evaluation() {
    let mut layer = Dropout::new(0.25);
    let x = Tensor::from_vec(&[1, 10_000], vec![1.0; 10_000]).unwrap();
    let mut y = Tensor::default();
    let mut rng = Rng::new(8);
    layer.forward(&x, &mut y, &mut Ctx { train: true, rng: &mut rng }).unwrap();
    let kept = y.data().iter().filter(|&&v| v != 0.0).count();
    assert!((7_300..7_700).contains(&kept), "{kept}");
    assert!(y.data().iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
    layer.forward(&x, &mut y, &mut ctx(&mut rng)).unwrap();
    assert_eq!(y, x);

    for n in [1, 3] {
        let x = Tensor::randn(&[n, 8], 1.0, &mut rng);
        check_grads(&mut Dropout::new(0.5), &x, true, 1e-3, 1e-2);
    }

    // Large tensors are masked in parallel chunks: each chunk and each call draws afresh.
    let x = Tensor::from_vec(&[1, 100_000], vec![1.0; 100_000]).unwrap();
    let (mut a, mut b) = (Tensor::default(), Tensor::default());
    layer.forward(&x, &mut a, &mut Ctx { train: true, rng: &mut rng }).unwrap();
    layer.forward(&x, &mut b, &mut Ctx { train: true, rng: &mut rng }).unwrap();
    let kept = a.data().iter().filter(|&&v| v != 0.0).count();
    assert!((74_300..75_700).contains(&kept), "{kept}");
    assert_ne!(a.data()[..32_768], a.data()[32_768..65_536]);
    assert_ne!(a, b);
}

#[test]
fn flatten_grads() {
    for n in [1, 2] {
        let x = Tensor::randn(&[n, 3, 2, 2], 1.0, &mut Rng::new(9));
        check_grads(&mut Flatten, &x, false, 1e-3, 1e-2);
    }
}

#[test]
fn softmax_cross_entropy_value_and_gradient() {
    // logits [0, ln 3] -> p = [1/4, 3/4]; label 1 -> loss = -ln(3/4).
    let logits = Tensor::from_vec(&[1, 2], vec![0.0, 3f32.ln()]).unwrap();
    let (mut p, mut d) = (Tensor::default(), Tensor::default());
    let loss = ops::softmax_cross_entropy(&logits, &[1], 0.0, &mut p, &mut d).unwrap();
    assert!((loss - -(0.75f32.ln())).abs() < 1e-6);
    assert!(
        (p.data()[0] - 0.25).abs() < 1e-6 && (d.data()[0] - 0.25).abs() < 1e-6 && (d.data()[1] + 0.25).abs() < 1e-6
    );

    let mut rng = Rng::new(10);
    for (n, k, smoothing) in [(1, 3, 0.0), (5, 10, 0.0), (4, 10, 0.1)] {
        let z = Tensor::randn(&[n, k], 2.0, &mut rng);
        let labels: Vec<u32> = (0..n).map(|_| rng.below(k) as u32).collect();
        ops::softmax_cross_entropy(&z, &labels, smoothing, &mut p, &mut d).unwrap();
        for i in 0..z.len() {
            let eps = 1e-3;
            let at = |delta: f32| {
                let mut zp = z.clone();
                zp.data_mut()[i] += delta;
                ops::softmax_cross_entropy(&zp, &labels, smoothing, &mut Tensor::default(), &mut Tensor::default())
                    .unwrap() as f64
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps as f64);
            assert!((d.data()[i] as f64 - numeric).abs() < 1e-3, "{} vs {numeric}", d.data()[i]);
        }
    }
    assert!(ops::softmax_cross_entropy(&logits, &[2], 0.0, &mut p, &mut d).is_err());
}
