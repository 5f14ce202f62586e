//! The convolution algorithms side by side in one process: CNN training steps and inference
//! batches (batch 64, real Fashion-MNIST), alternating `auto`, `direct`, `shifted` and `im2col` round by
//! round so a drifting machine favours none; medians and ratios.
//!
//!     cargo run --release --example conv_ab -- [--threads N] [--rounds R]

use std::time::Instant;

use scratchnet::data::discover;
use scratchnet::model::{Sequential, preset};
use scratchnet::ops::{self, ConvAlgorithm};
use scratchnet::train::Trainer;

const ALGOS: [ConvAlgorithm; 4] =
    [ConvAlgorithm::Auto, ConvAlgorithm::Direct, ConvAlgorithm::Shifted, ConvAlgorithm::Im2col];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn report(what: &str, times: [Vec<f64>; 4]) {
    let m = times.map(median);
    for (a, t) in ALGOS.iter().zip(m) {
        println!("{what} {a:?}: {:.0} images/s ({:.1} ms per batch of 64)", 64.0 / t, t * 1e3);
    }
    println!(
        "{what} auto vs direct {:.2}x, vs shifted {:.2}x, vs im2col {:.2}x",
        m[1] / m[0],
        m[2] / m[0],
        m[3] / m[0]
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).map(|i| args[i + 1].parse::<usize>().expect(name));
    if let Some(n) = arg("--threads") {
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().unwrap();
    }
    let rounds = arg("--rounds").unwrap_or(15);
    println!("threads {}, {rounds} rounds", rayon::current_num_threads());
    let train = discover::load("fashion-mnist", None).expect("Fashion-MNIST").train.unwrap();
    let part = train.take(64 * 4);
    let p = preset("cnn").unwrap();
    let mut t = Trainer::new(Sequential::new(p.spec, 0).unwrap(), p.train);
    let mut m = Sequential::new(preset("cnn").unwrap().spec, 0).unwrap();
    let x = scratchnet::Tensor::randn(&[64, 1, 28, 28], 0.3, &mut scratchnet::Rng::new(0));
    let (mut train_t, mut infer_t) = ([vec![], vec![], vec![], vec![]], [vec![], vec![], vec![], vec![]]);
    for round in 0..=rounds {
        for (i, &a) in ALGOS.iter().enumerate() {
            ops::set_conv_algorithm(a);
            let s = Instant::now();
            t.run_epoch(&part, &mut |_, _| true).unwrap();
            let step = s.elapsed().as_secs_f64() / 4.0;
            let s = Instant::now();
            for _ in 0..4 {
                ops::on_worker(|| m.predict(&x).map(|_| ())).unwrap();
            }
            let batch = s.elapsed().as_secs_f64() / 4.0;
            if round > 0 {
                train_t[i].push(step);
                infer_t[i].push(batch);
            }
        }
    }
    report("cnn_train", train_t);
    report("cnn_infer", infer_t);
}
