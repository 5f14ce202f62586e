//! Kernel benchmarks: GEMM on the networks' real shapes (GFLOP/s), im2col / col2im, whole
//! convolution passes, max-pooling. Medians of repeated runs after a warm-up; one line each,
//! `<name> <median> <unit> [GFLOP/s]`.
//!
//!     cargo bench --bench kernels -- [--threads N] [--im2col] [FILTER]
//!
//! `--im2col` runs the convolutions by im2col (the reference) instead of shifted products.

use std::time::Instant;

use scratchnet::ops::{self, Conv2dGeom, ConvScratch, Pool2dGeom};
use scratchnet::{Rng, Tensor};

/// Median seconds of `f`, run until ~0.3 s have passed (at least 5 times) after one warm-up.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let mut runs = Vec::new();
    let start = Instant::now();
    while runs.len() < 5 || (start.elapsed().as_secs_f64() < 0.3 && runs.len() < 1000) {
        let t = Instant::now();
        f();
        runs.push(t.elapsed().as_secs_f64());
    }
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn report(name: &str, secs: f64, flops: Option<f64>) {
    match flops {
        Some(f) => println!("{name:<44} {:>10.1} us  {:>7.1} GFLOP/s", secs * 1e6, f / secs / 1e9),
        None => println!("{name:<44} {:>10.1} us", secs * 1e6),
    }
}

fn randn(shape: &[usize], rng: &mut Rng) -> Tensor {
    Tensor::randn(shape, 1.0, rng)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if let Some(i) = args.iter().position(|a| a == "--threads") {
        let n = args[i + 1].parse().expect("--threads N");
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().unwrap();
    }
    let im2col_only = args.iter().any(|a| a == "--im2col");
    if im2col_only {
        ops::set_conv_algorithm(ops::ConvAlgorithm::Im2col);
    }
    let filter = args.iter().enumerate().find(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--threads"));
    let filter = filter.map(|(_, a)| a.clone()).unwrap_or_default();
    let wanted = |name: &str| name.contains(&filter);
    let mut rng = Rng::new(0);
    println!("threads {}  convolution {:?}", rayon::current_num_threads(), ops::conv_algorithm());

    // (name, m, k, n, trans_a, trans_b): every product a training step of the networks makes.
    let gemms: &[(&str, usize, usize, usize, bool, bool)] = &[
        ("gemm conv2 fwd     w·cols (1 image)", 64, 288, 576, false, false),
        ("gemm conv2 dW      dy·colsᵀ", 64, 576, 288, false, true),
        ("gemm conv2 dcols   wᵀ·dy", 288, 64, 576, true, false),
        ("gemm conv3 fwd     w·cols (1 image)", 128, 576, 100, false, false),
        ("gemm dense 3200-512 fwd (batch 64)", 64, 3200, 512, false, true),
        ("gemm dense 3200-512 dW", 512, 64, 3200, true, false),
        ("gemm mlp 784-128 fwd (batch 64)", 64, 784, 128, false, true),
        ("gemm mlp 784-128 dW (batch 64)", 128, 64, 784, true, false),
        ("gemm mlp 784-128 fwd (batch 1)", 1, 784, 128, false, true),
        ("gemm mlp 784-128 dW (batch 1)", 128, 1, 784, true, false),
        ("gemm square 1024 (ceiling reference)", 1024, 1024, 1024, false, false),
    ];
    for &(name, m, k, n, ta, tb) in gemms {
        if !wanted(name) {
            continue;
        }
        let a = if ta { randn(&[k, m], &mut rng) } else { randn(&[m, k], &mut rng) };
        let b = if tb { randn(&[n, k], &mut rng) } else { randn(&[k, n], &mut rng) };
        let mut c = Tensor::zeros(&[m, n]);
        let secs = time(|| ops::internals::on_worker(|| ops::matmul(&a, ta, &b, tb, &mut c)).unwrap());
        report(name, secs, Some(2.0 * (m * k * n) as f64));
    }

    let n = 64;
    let convs = [
        ("conv1 1->32 28x28", Conv2dGeom { c: 1, h: 28, w: 28, f: 32, k: 3, stride: 1, pad: 0 }),
        ("conv2 32->64 26x26", Conv2dGeom { c: 32, h: 26, w: 26, f: 64, k: 3, stride: 1, pad: 0 }),
        ("conv3 64->128 12x12", Conv2dGeom { c: 64, h: 12, w: 12, f: 128, k: 3, stride: 1, pad: 0 }),
    ];
    for (name, g) in convs {
        let x = randn(&[n, g.c, g.h, g.w], &mut rng);
        let w = randn(&[g.f, g.c, g.k, g.k], &mut rng);
        let b = randn(&[g.f], &mut rng);
        let macs = (n * g.f * g.patch_len() * g.out_plane()) as f64;
        let label = format!("{name} im2col (batch {n})");
        if wanted(&label) {
            let mut cols = Tensor::default();
            let img = Tensor::from_vec(&[g.c, g.h, g.w], x.data()[..g.in_len()].to_vec()).unwrap();
            report(&label, n as f64 * time(|| ops::im2col(&img, &g, &mut cols).unwrap()), None);
            let mut dx = Tensor::default();
            let label = format!("{name} col2im (batch {n})");
            report(&label, n as f64 * time(|| ops::col2im(&cols, &g, &mut dx).unwrap()), None);
        }
        // The three algorithms, alternating in one loop, so a machine whose speed drifts (shared VMs
        // do) favours neither: medians of each, and their ratio.
        for backward in [false, true] {
            let label = format!("{name} {} (batch {n})", if backward { "backward" } else { "forward" });
            if !wanted(&label) {
                continue;
            }
            let mut scratch = ConvScratch::default();
            let mut y = Tensor::default();
            ops::conv2d(&x, &w, &b, &g, &mut scratch, &mut y).unwrap();
            let (mut dw, mut db, mut dx, mut out) = (w.clone(), b.clone(), Tensor::default(), Tensor::default());
            let mut pass = || {
                ops::internals::on_worker(|| {
                    if backward {
                        ops::conv2d_backward(&x, &w, &y, &g, &mut scratch, &mut dw, &mut db, Some(&mut dx))
                    } else {
                        ops::conv2d(&x, &w, &b, &g, &mut scratch, &mut out)
                    }
                })
                .unwrap()
            };
            let algos = ops::ConvAlgorithm::ALL;
            let mut times = algos.map(|_| Vec::new());
            for round in 0..16 {
                for (i, &algo) in algos.iter().enumerate() {
                    ops::set_conv_algorithm(if im2col_only { ops::ConvAlgorithm::Im2col } else { algo });
                    let t = Instant::now();
                    pass();
                    if round > 0 {
                        times[i].push(t.elapsed().as_secs_f64());
                    }
                }
            }
            ops::set_conv_algorithm(if im2col_only { ops::ConvAlgorithm::Im2col } else { ops::ConvAlgorithm::Auto });
            let medians = times.map(|mut v| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            });
            // Backward: the weight gradient, and the input gradient except for a 1-channel input layer.
            let flops = 2.0 * macs * if backward && g.c > 1 { 2.0 } else { 1.0 };
            for (algo, t) in algos.iter().zip(medians) {
                report(&format!("{label} {}", format!("{algo:?}").to_lowercase()), t, Some(flops));
            }
            for (algo, t) in algos.iter().zip(medians).skip(1) {
                println!(
                    "{:<44} {:>10.2} x",
                    format!("{label} {} / auto", format!("{algo:?}").to_lowercase()),
                    t / medians[0]
                );
            }
        }
    }

    for (name, c, h) in [("max_pool2d 64x24x24", 64, 24), ("max_pool2d 128x10x10", 128, 10)] {
        let g = Pool2dGeom { h, w: h, k: 2, stride: 2 };
        let x = randn(&[n, c, h, h], &mut rng);
        let (mut y, mut arg, mut dx) = (Tensor::default(), ops::PoolIndices::default(), Tensor::default());
        let label = format!("{name} forward (batch {n})");
        if wanted(&label) {
            report(&label, time(|| ops::max_pool2d(&x, &g, &mut y, &mut arg).unwrap()), None);
            let dy = y.clone();
            let label = format!("{name} backward (batch {n})");
            report(&label, time(|| ops::max_pool2d_backward(&dy, &arg, &g, &mut dx).unwrap()), None);
        }
    }

    let x = randn(&[n, 64, 12, 12], &mut rng);
    let (mut mask, mut y) = (Tensor::zeros(x.shape()), Tensor::zeros(x.shape()));
    if wanted("dropout 64x12x12 forward (batch 64)") {
        let mut r = Rng::new(1);
        report(
            "dropout 64x12x12 forward (batch 64)",
            time(|| ops::dropout(&x, 0.25, &mut r, &mut mask, &mut y).unwrap()),
            None,
        );
    }
    if wanted("leaky_relu 64x12x12 forward (batch 64)") {
        report("leaky_relu 64x12x12 forward (batch 64)", time(|| ops::leaky_relu(&x, 0.01, &mut y).unwrap()), None);
    }
}
