//! End-to-end speed: CNN training and inference (batch 64), MLP mini-batch and per-sample
//! training, on real Fashion-MNIST. Medians of repeated runs; `--threads N` (default: all cores),
//! `--only NAME` for one measurement. One line per measurement, `<name> <value> <unit>`, as
//! bench/pytorch_reference.py prints.
//!
//!     cargo run --release --example bench -- [--threads N] [--conv auto|direct|shifted|im2col] [--only cnn_train|cnn_infer|mlp_train|mlp_sgd_train]
//!
//! `--conv` forces a convolution algorithm (see `ops::ConvAlgorithm`; `--im2col` = `--conv im2col`);
//! `--no-fusion` runs every activation as its own layer (`Sequential::set_fusion(false)`).

use std::time::Instant;

use scratchnet::data::{Dataset, discover};
use scratchnet::model::{Sequential, preset};
use scratchnet::train::Trainer;

static NO_FUSION: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A freshly initialised model of the preset, fused or not as asked.
fn model(spec: scratchnet::model::ModelSpec) -> Sequential {
    let mut m = Sequential::new(spec, 0).unwrap();
    m.set_fusion(!NO_FUSION.load(std::sync::atomic::Ordering::Relaxed));
    m
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--threads") {
        let n = args[i + 1].parse().expect("--threads N");
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().unwrap();
    }
    use scratchnet::ops::{ConvAlgorithm, set_conv_algorithm};
    let conv = args.iter().position(|a| a == "--conv").map(|i| args[i + 1].as_str());
    match (conv, args.iter().any(|a| a == "--im2col")) {
        (Some("im2col"), _) | (None, true) => set_conv_algorithm(ConvAlgorithm::Im2col),
        (Some("shifted"), _) => set_conv_algorithm(ConvAlgorithm::Shifted),
        (Some("direct"), _) => set_conv_algorithm(ConvAlgorithm::Direct),
        (Some("auto") | None, _) => {}
        (Some(other), _) => panic!("--conv {other}: expected auto, direct, shifted or im2col"),
    }
    NO_FUSION.store(args.iter().any(|a| a == "--no-fusion"), std::sync::atomic::Ordering::Relaxed);
    let only = args.iter().position(|a| a == "--only").map(|i| args[i + 1].clone());
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let splits = discover::load("fashion-mnist", None).expect("Fashion-MNIST");
    let train = splits.train.unwrap();
    println!("threads {} count", rayon::current_num_threads());
    if wanted("cnn_train") {
        cnn_train(&train);
    }
    if wanted("cnn_infer") {
        cnn_infer();
    }
    for (name, key, reps, limit) in [("mlp", "mlp_train", 5, 60000), ("mlp-sgd", "mlp_sgd_train", 3, 20000)] {
        if wanted(key) {
            mlp_train(name, key, reps, &train.clone().take(limit));
        }
    }
}

/// 7 timed epochs of 20 batches after one warm-up.
fn cnn_train(train: &Dataset) {
    let p = preset("cnn").unwrap();
    let mut t = Trainer::new(model(p.spec), p.train);
    let part = train.clone().take(64 * 20);
    t.run_epoch(&part, &mut |_, _| true).unwrap();
    let step = median(
        (0..7)
            .map(|_| {
                let s = Instant::now();
                t.run_epoch(&part, &mut |_, _| true).unwrap();
                s.elapsed().as_secs_f64() / 20.0
            })
            .collect(),
    );
    println!(
        "cnn_train {:.0} images/s  (step of 64: {:.1} ms, ~{:.0} s per epoch)",
        64.0 / step,
        step * 1e3,
        60000.0 * step / 64.0
    );
}

/// Evaluation mode, batch 64.
fn cnn_infer() {
    let mut m = model(preset("cnn").unwrap().spec);
    let x = scratchnet::Tensor::randn(&[64, 1, 28, 28], 0.3, &mut scratchnet::Rng::new(0));
    m.predict(&x).unwrap();
    let inf = median(
        (0..30)
            .map(|_| {
                let s = Instant::now();
                scratchnet::ops::on_worker(|| m.predict(&x).map(|_| ())).unwrap();
                s.elapsed().as_secs_f64()
            })
            .collect(),
    );
    println!("cnn_infer {:.0} images/s  (batch of 64: {:.1} ms)", 64.0 / inf, inf * 1e3);
}

fn mlp_train(name: &str, key: &str, reps: usize, data: &Dataset) {
    let p = preset(name).unwrap();
    let mut t = Trainer::new(model(p.spec), p.train);
    t.run_epoch(data, &mut |_, _| true).unwrap();
    let secs = median(
        (0..reps)
            .map(|_| {
                let s = Instant::now();
                t.run_epoch(data, &mut |_, _| true).unwrap();
                s.elapsed().as_secs_f64() * 60000.0 / data.len() as f64
            })
            .collect(),
    );
    println!("{key} {:.0} images/s  ({name}, batch {}: {secs:.2} s per epoch)", 60000.0 / secs, t.config.batch_size);
}
