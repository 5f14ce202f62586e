//! Central finite differences against a layer's backward pass, with loss = Σ y·r for a random r
//! (a random r, not all ones, so that a wrong sign or a swapped index cannot cancel out).

use super::{Ctx, Layer};
use crate::rng::Rng;
use crate::tensor::Tensor;

fn loss(layer: &mut dyn Layer, x: &Tensor, r: &Tensor, rng: &Rng, train: bool) -> f64 {
    let mut y = Tensor::default();
    // The same rng state each time, so dropout draws the same mask for every probe.
    let mut rng = rng.clone();
    layer.forward(x, &mut y, &mut Ctx { train, rng: &mut rng }).unwrap();
    y.data().iter().zip(r.data()).map(|(a, b)| *a as f64 * *b as f64).sum()
}

fn close(analytic: f32, numeric: f64, tol: f64) -> bool {
    let (a, n) = (analytic as f64, numeric);
    (a - n).abs() <= tol * (a.abs() + n.abs()).max(1e-2)
}

/// Checks dL/dx and every parameter gradient at up to `probes` coordinates each.
pub fn check_grads(layer: &mut dyn Layer, x: &Tensor, train: bool, eps: f32, tol: f64) {
    let rng = Rng::new(99);
    let mut y = Tensor::default();
    layer.forward(x, &mut y, &mut Ctx { train, rng: &mut rng.clone() }).unwrap();
    let r = Tensor::randn(y.shape(), 1.0, &mut Rng::new(123));
    let mut dx = Tensor::default();
    layer.backward(x, &y, &r, Some(&mut dx)).unwrap();
    assert_eq!(dx.shape(), x.shape(), "dx shape");

    let probes = |len: usize| -> Vec<usize> {
        let mut p = Rng::new(len as u64);
        if len <= 60 { (0..len).collect() } else { (0..60).map(|_| p.below(len)).collect() }
    };
    for i in probes(x.len()) {
        let mut xp = x.clone();
        xp.data_mut()[i] += eps;
        let lp = loss(layer, &xp, &r, &rng, train);
        xp.data_mut()[i] -= 2.0 * eps;
        let lm = loss(layer, &xp, &r, &rng, train);
        let numeric = (lp - lm) / (2.0 * eps as f64);
        assert!(close(dx.data()[i], numeric, tol), "dx[{i}]: analytic {} numeric {numeric}", dx.data()[i]);
    }

    let mut grads = Vec::new();
    layer.visit_params_mut(&mut |p| grads.push((p.name, p.grad.clone())));
    for (pi, (name, grad)) in grads.iter().enumerate() {
        for i in probes(grad.len()) {
            let at = |delta: f32, layer: &mut dyn Layer| {
                let mut k = 0;
                layer.visit_params_mut(&mut |p| {
                    if k == pi {
                        p.value.data_mut()[i] += delta;
                    }
                    k += 1;
                });
            };
            at(eps, layer);
            let lp = loss(layer, x, &r, &rng, train);
            at(-2.0 * eps, layer);
            let lm = loss(layer, x, &r, &rng, train);
            at(eps, layer);
            let numeric = (lp - lm) / (2.0 * eps as f64);
            assert!(close(grad.data()[i], numeric, tol), "{name}[{i}]: analytic {} numeric {numeric}", grad.data()[i]);
        }
    }
}
