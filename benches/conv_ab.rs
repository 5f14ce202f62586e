//! Convolution algorithms and activation fusion side by side in one process: CNN training steps
//! and inference batches (batch 64, real Fashion-MNIST), alternating the variants round by round
//! so a drifting machine favours none; medians and ratios to the default (`auto`, fused).
//!
//!     cargo bench --bench conv_ab -- [--threads N] [--rounds R] [--only NAME,NAME]

use std::time::Instant;

use scratchnet::data::discover;
use scratchnet::model::Sequential;
use scratchnet::ops::{self, ConvAlgorithm};
use scratchnet::train::{Trainer, preset};

/// (name, algorithm, activations fused into the convolutions)
const VARIANTS: [(&str, ConvAlgorithm, bool); 8] = [
    ("auto", ConvAlgorithm::Auto, true),
    ("auto, unfused", ConvAlgorithm::Auto, false),
    ("winograd", ConvAlgorithm::Winograd, true),
    ("winograd-forward", ConvAlgorithm::WinogradForward, true),
    ("winograd-2x2", ConvAlgorithm::Winograd2x2, true),
    ("direct", ConvAlgorithm::Direct, true),
    ("shifted", ConvAlgorithm::Shifted, true),
    ("im2col", ConvAlgorithm::Im2col, true),
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn report(what: &str, variants: &[(&str, ConvAlgorithm, bool)], times: Vec<Vec<f64>>) {
    let m: Vec<f64> = times.into_iter().map(median).collect();
    for ((name, ..), t) in variants.iter().zip(&m) {
        println!(
            "{what} {name:16} {:6.0} images/s ({:5.1} ms per batch of 64), {:.2}x slower than {}",
            64.0 / t,
            t * 1e3,
            t / m[0],
            variants[0].0
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).map(|i| args[i + 1].parse::<usize>().expect(name));
    if let Some(n) = arg("--threads") {
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().unwrap();
    }
    let rounds = arg("--rounds").unwrap_or(15);
    let only = args.iter().position(|a| a == "--only").map(|i| args[i + 1].clone());
    let variants: Vec<_> = match &only {
        Some(names) => names
            .split(',')
            .map(|n| *VARIANTS.iter().find(|v| v.0 == n).unwrap_or_else(|| panic!("--only: no variant {n}")))
            .collect(),
        None => VARIANTS.to_vec(),
    };
    println!("threads {}, {rounds} rounds", rayon::current_num_threads());
    let train = discover::load("fashion-mnist", None).expect("Fashion-MNIST").train.unwrap();
    let part = train.take(64 * 4);
    let model = |fused: bool| {
        let mut m = Sequential::new(preset("cnn").unwrap().spec, 0).unwrap();
        m.set_fusion(fused);
        m
    };
    let mut trainers: Vec<Trainer> =
        variants.iter().map(|&(_, _, fused)| Trainer::new(model(fused), preset("cnn").unwrap().train)).collect();
    let mut models: Vec<Sequential> = variants.iter().map(|&(_, _, fused)| model(fused)).collect();
    let x = scratchnet::Tensor::randn(&[64, 1, 28, 28], 0.3, &mut scratchnet::Rng::new(0));
    let (mut train_t, mut infer_t) = (vec![vec![]; variants.len()], vec![vec![]; variants.len()]);
    for round in 0..=rounds {
        for (i, &(_, algo, _)) in variants.iter().enumerate() {
            ops::set_conv_algorithm(algo);
            let s = Instant::now();
            trainers[i].run_epoch(&part, &mut |_, _| true).unwrap();
            let step = s.elapsed().as_secs_f64() / 4.0;
            let s = Instant::now();
            for _ in 0..4 {
                ops::internals::on_worker(|| models[i].predict(&x).map(|_| ())).unwrap();
            }
            let batch = s.elapsed().as_secs_f64() / 4.0;
            if round > 0 {
                train_t[i].push(step);
                infer_t[i].push(batch);
            }
        }
    }
    report("cnn_train", &variants, train_t);
    report("cnn_infer", &variants, infer_t);
}
