use super::gradcheck::check_grads;
use super::*;
use crate::ops::{self, Conv2dGeom, Pool2dGeom, test_geoms as geoms};

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

/// Channel counts of a real network's inner layers, where the direct and Winograd kernels (not
/// im2col) compute the forward pass and both gradients.
#[test]
fn conv2d_grads_match_finite_differences_on_the_fast_paths() {
    let mut rng = Rng::new(3);
    let g = |c, h, w, f, pad| Conv2dGeom { c, h, w, f, k: 3, stride: 1, pad };
    for (n, g) in [(2, g(8, 10, 10, 16, 0)), (2, g(16, 9, 9, 8, 1))] {
        let mut layer = Conv2d::new(g, &mut rng);
        let x = Tensor::randn(&[n, g.c, g.h, g.w], 1.0, &mut rng);
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
        ops::fill(p.value, v).unwrap();
    });
    let x = Tensor::from_vec(&[1, 1, 3, 3], (1..=9).map(|v| v as f32).collect()).unwrap();
    let mut y = Tensor::default();
    layer.forward(&x, &mut y, &mut ctx(&mut Rng::new(0))).unwrap();
    assert_eq!(y.data(), &[12.5, 16.5, 24.5, 28.5]);
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

/// Sets a batch norm's scale, shift and running statistics to random values (not the identity
/// they start at, which would hide a swapped or missing term).
fn randomise_norm(layer: &mut BatchNorm, c: usize, rng: &mut Rng) {
    let mut values = |lo: f32| -> Vec<f32> { (0..c).map(|_| lo + rng.below(1000) as f32 / 500.0).collect() };
    let (g, b, m, v) = (values(0.5), values(-1.0), values(-1.0), values(0.2));
    layer.visit_params_mut(&mut |p| {
        let v = if p.name == "weight" { &g } else { &b };
        *p.value = Tensor::from_vec(&[c], v.clone()).unwrap();
    });
    layer.visit_buffers_mut(&mut |name, t| match name {
        "running_mean" => *t = Tensor::from_vec(&[c], m.clone()).unwrap(),
        "running_var" => *t = Tensor::from_vec(&[c], v.clone()).unwrap(),
        _ => {}
    });
}

#[test]
fn batch_norm_grads_match_finite_differences_in_both_modes() {
    let mut rng = Rng::new(11);
    // 2-d (n, c, h, w) and 1-d (n, c); a plane of 1, planes with partial lanes.
    let shapes: [&[usize]; 4] = [&[3, 2, 4, 5], &[2, 3, 1, 1], &[5, 4], &[2, 3, 3, 7]];
    for shape in shapes {
        for train in [true, false] {
            let c = shape[1];
            let mut layer = BatchNorm::new(c, 1e-5, 0.1);
            randomise_norm(&mut layer, c, &mut rng);
            let x = Tensor::randn(shape, 2.0, &mut rng);
            // A larger step than for the linear layers: in training the outputs move little per
            // probe (the statistics absorb part of it), so f32 rounding of y would dominate.
            check_grads(&mut layer, &x, train, 1e-2, 2e-2);
        }
    }
}

/// With a leaky ReLU absorbed, forward is the activation of the plain output and backward the
/// plain backward of the activation's gradient (finite differences would straddle its kink).
#[test]
fn batch_norm_with_fused_activation_is_the_composition() {
    let mut rng = Rng::new(14);
    let cases = [(&[4, 3, 3, 7][..], 0.1, true), (&[6, 5][..], 0.0, true), (&[3, 2, 5, 5][..], 0.01, false)];
    for (shape, slope, train) in cases {
        let c = shape[1];
        let x = Tensor::randn(shape, 2.0, &mut rng);
        let dy = Tensor::randn(shape, 1.0, &mut rng);
        let make = |fuse: bool| {
            let mut l = BatchNorm::new(c, 1e-5, 0.1);
            randomise_norm(&mut l, c, &mut Rng::new(15));
            if fuse {
                l.fuse_leaky_relu(Some(slope));
            }
            l
        };
        let (mut fused, mut plain, mut act) = (make(true), make(false), LeakyRelu { slope });
        let (mut yf, mut z, mut ya) = (Tensor::default(), Tensor::default(), Tensor::default());
        fused.forward(&x, &mut yf, &mut Ctx { train, rng: &mut rng }).unwrap();
        plain.forward(&x, &mut z, &mut Ctx { train, rng: &mut rng }).unwrap();
        act.forward(&z, &mut ya, &mut ctx(&mut rng)).unwrap();
        assert_eq!(yf, ya);
        let (mut dxf, mut dz, mut dx) = (Tensor::default(), Tensor::default(), Tensor::default());
        fused.backward(&x, &yf, &dy, Some(&mut dxf)).unwrap();
        act.backward(&z, &ya, &dy, Some(&mut dz)).unwrap();
        plain.backward(&x, &z, &dz, Some(&mut dx)).unwrap();
        for (a, b) in dxf.data().iter().zip(dx.data()) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
        let grads = |l: &mut BatchNorm| {
            let mut g = Vec::new();
            l.visit_params_mut(&mut |p| g.push(p.grad.data().to_vec()));
            g
        };
        let (gf, gp) = (grads(&mut fused), grads(&mut plain));
        for (a, b) in gf.concat().iter().zip(&gp.concat()) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}

/// Against the definition, computed in f64: batch statistics in training (and the running update
/// PyTorch makes: momentum, unbiased variance), running statistics in evaluation.
#[test]
fn batch_norm_forward_and_running_statistics() {
    let mut rng = Rng::new(12);
    let (n, c, plane) = (4, 3, 6);
    let mut layer = BatchNorm::new(c, 1e-5, 0.1);
    randomise_norm(&mut layer, c, &mut rng);
    let state = |l: &BatchNorm, name: &str| l.buffers().iter().find(|(b, _)| *b == name).unwrap().1.data().to_vec();
    let (old_mean, old_var) = (state(&layer, "running_mean"), state(&layer, "running_var"));
    let params: Vec<Vec<f32>> = layer.params().iter().map(|(_, t)| t.data().to_vec()).collect();
    let x = Tensor::randn(&[n, c, 2, 3], 1.5, &mut rng);
    let mut y = Tensor::default();
    layer.forward(&x, &mut y, &mut Ctx { train: true, rng: &mut rng }).unwrap();
    for ch in 0..c {
        let vals: Vec<f64> =
            (0..n).flat_map(|i| x.data()[(i * c + ch) * plane..][..plane].iter().map(|&v| v as f64)).collect();
        let m = vals.iter().sum::<f64>() / vals.len() as f64;
        let var = vals.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / vals.len() as f64;
        for i in 0..n {
            for j in 0..plane {
                let at = (i * c + ch) * plane + j;
                let want =
                    (x.data()[at] as f64 - m) / (var + 1e-5).sqrt() * params[0][ch] as f64 + params[1][ch] as f64;
                assert!((y.data()[at] as f64 - want).abs() < 1e-5, "{} vs {want}", y.data()[at]);
            }
        }
        let unbiased = var * vals.len() as f64 / (vals.len() - 1) as f64;
        let (rm, rv) = (state(&layer, "running_mean")[ch] as f64, state(&layer, "running_var")[ch] as f64);
        assert!((rm - (0.9 * old_mean[ch] as f64 + 0.1 * m)).abs() < 1e-6, "running mean");
        assert!((rv - (0.9 * old_var[ch] as f64 + 0.1 * unbiased)).abs() < 1e-6, "running var");
    }
    assert_eq!(state(&layer, "num_batches_tracked"), [1.0]);

    // Evaluation: the running statistics, nothing updated.
    let (rm, rv) = (state(&layer, "running_mean"), state(&layer, "running_var"));
    layer.forward(&x, &mut y, &mut ctx(&mut rng)).unwrap();
    for (at, &v) in x.data().iter().enumerate() {
        let ch = (at / plane) % c;
        let want = (v - rm[ch]) / (rv[ch] + 1e-5).sqrt() * params[0][ch] + params[1][ch];
        assert!((y.data()[at] - want).abs() < 1e-5);
    }
    assert_eq!(state(&layer, "running_mean"), rm);
    assert_eq!(state(&layer, "num_batches_tracked"), [1.0]);

    // The fused activation is the activation of the unfused output.
    let mut fused = BatchNorm::new(c, 1e-5, 0.1);
    randomise_norm(&mut fused, c, &mut Rng::new(12));
    fused.fuse_leaky_relu(Some(0.01));
    let mut yf = Tensor::default();
    fused.forward(&x, &mut yf, &mut Ctx { train: true, rng: &mut rng }).unwrap();
    let mut plain = BatchNorm::new(c, 1e-5, 0.1);
    randomise_norm(&mut plain, c, &mut Rng::new(12));
    let (mut yp, mut ya) = (Tensor::default(), Tensor::default());
    plain.forward(&x, &mut yp, &mut Ctx { train: true, rng: &mut rng }).unwrap();
    LeakyRelu { slope: 0.01 }.forward(&yp, &mut ya, &mut ctx(&mut rng)).unwrap();
    assert_eq!(yf, ya);
    let err = BatchNorm::new(c, 1e-5, 0.1).backward(&x, &y, &y, None).unwrap_err().to_string();
    assert!(err.contains("before forward"), "{err}");
}

#[test]
fn average_pools_forward_and_grads() {
    let x = Tensor::from_vec(&[1, 1, 4, 4], (0..16).map(|v| v as f32).collect()).unwrap();
    let mut y = Tensor::default();
    AvgPool2d::new(Pool2dGeom { h: 4, w: 4, k: 2, stride: 2 }).forward(&x, &mut y, &mut ctx(&mut Rng::new(0))).unwrap();
    assert_eq!(y.data(), &[2.5, 4.5, 10.5, 12.5]);
    GlobalAvgPool.forward(&x, &mut y, &mut ctx(&mut Rng::new(0))).unwrap();
    assert_eq!((y.shape(), y.data()), (&[1, 1, 1, 1][..], &[7.5][..]));

    let mut rng = Rng::new(13);
    for (n, c, h, w, k, s) in [(1, 1, 4, 4, 2, 2), (3, 2, 5, 7, 2, 2), (2, 3, 6, 6, 3, 1), (2, 2, 7, 5, 3, 2)] {
        let x = Tensor::randn(&[n, c, h, w], 1.0, &mut rng);
        check_grads(&mut AvgPool2d::new(Pool2dGeom { h, w, k, stride: s }), &x, false, 1e-2, 1e-2);
        check_grads(&mut GlobalAvgPool, &x, false, 1e-2, 1e-2);
    }
}
