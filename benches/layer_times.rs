//! Forward (training and evaluation) and backward time of each CNN layer at batch 64 (medians of
//! 5), for finding hot spots. `+pool` rows: the convolution with the max-pool after it fused, as
//! evaluation runs it.
//!
//!     cargo bench --bench layer_times
use scratchnet::layers::*;
use scratchnet::ops::{Conv2dGeom, Pool2dGeom};
use scratchnet::{Rng, Tensor};
use std::time::Instant;
fn time(name: &str, layer: &mut dyn Layer, x: &Tensor) {
    let mut rng = Rng::new(0);
    let mut y = Tensor::default();
    let mut dx = Tensor::default();
    layer.forward(x, &mut y, &mut Ctx { train: true, rng: &mut rng }).unwrap();
    let dy = y.clone();
    let (mut f, mut e, mut b) = (vec![], vec![], vec![]);
    for _ in 0..5 {
        let t = Instant::now();
        layer.forward(x, &mut y, &mut Ctx { train: true, rng: &mut rng }).unwrap();
        f.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        layer.backward(x, &y, &dy, Some(&mut dx)).unwrap();
        b.push(t.elapsed().as_secs_f64() * 1e3);
        let mut out = Tensor::default();
        layer.forward(x, &mut out, &mut Ctx { train: false, rng: &mut rng }).unwrap();
        let t = Instant::now();
        layer.forward(x, &mut out, &mut Ctx { train: false, rng: &mut rng }).unwrap();
        e.push(t.elapsed().as_secs_f64() * 1e3);
    }
    for v in [&mut f, &mut e, &mut b] {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    println!("{name:12} fwd {:7.2} ms  eval {:7.2} ms  bwd {:7.2} ms", f[2], e[2], b[2]);
}

/// A convolution that takes the 2x2 max-pool after it in evaluation.
fn pooled(g: Conv2dGeom, rng: &mut Rng) -> Conv2d {
    let mut c = Conv2d::new(g, rng);
    c.fuse_max_pool(Some((2, 2)));
    c
}
fn main() {
    let mut rng = Rng::new(0);
    let n = 64;
    let g1 = Conv2dGeom { c: 1, h: 28, w: 28, f: 32, k: 3, stride: 1, pad: 0 };
    let g2 = Conv2dGeom { c: 32, h: 26, w: 26, f: 64, k: 3, stride: 1, pad: 0 };
    let g3 = Conv2dGeom { c: 64, h: 12, w: 12, f: 128, k: 3, stride: 1, pad: 0 };
    time("conv1", &mut Conv2d::new(g1, &mut rng), &Tensor::randn(&[n, 1, 28, 28], 1.0, &mut rng));
    time("conv2", &mut Conv2d::new(g2, &mut rng), &Tensor::randn(&[n, 32, 26, 26], 1.0, &mut rng));
    time("lrelu2", &mut LeakyRelu { slope: 0.01 }, &Tensor::randn(&[n, 64, 24, 24], 1.0, &mut rng));
    time(
        "pool1",
        &mut MaxPool2d::new(Pool2dGeom { h: 24, w: 24, k: 2, stride: 2 }),
        &Tensor::randn(&[n, 64, 24, 24], 1.0, &mut rng),
    );
    time("drop1", &mut Dropout::new(0.25), &Tensor::randn(&[n, 64, 12, 12], 1.0, &mut rng));
    time("conv3", &mut Conv2d::new(g3, &mut rng), &Tensor::randn(&[n, 64, 12, 12], 1.0, &mut rng));
    time("conv2+pool", &mut pooled(g2, &mut rng), &Tensor::randn(&[n, 32, 26, 26], 1.0, &mut rng));
    time("conv3+pool", &mut pooled(g3, &mut rng), &Tensor::randn(&[n, 64, 12, 12], 1.0, &mut rng));
    time("dense1", &mut Dense::new(3200, 512, &mut rng), &Tensor::randn(&[n, 3200], 1.0, &mut rng));
    time("dense2", &mut Dense::new(512, 10, &mut rng), &Tensor::randn(&[n, 512], 1.0, &mut rng));
}
