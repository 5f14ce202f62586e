//! End-to-end speed: CNN training and inference (batch 64), MLP mini-batch and per-sample
//! training, on real Fashion-MNIST. Medians of repeated runs; `--threads N` (default: all cores).
//! One line per measurement, `<name> <value> <unit>`, as bench/pytorch_reference.py prints.
//!
//!     cargo run --release --example bench -- [--threads N]

use std::time::Instant;

use scratchnet::data::discover;
use scratchnet::model::{Sequential, preset};
use scratchnet::train::Trainer;

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
    let splits = discover::load("fashion-mnist", None).expect("Fashion-MNIST");
    let train = splits.train.unwrap();
    println!("threads {} count", rayon::current_num_threads());

    // CNN training: 10 timed epochs of 20 batches each after one warm-up.
    let p = preset("cnn").unwrap();
    let mut t = Trainer::new(Sequential::new(p.spec.clone(), 0).unwrap(), p.train);
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

    // CNN inference, evaluation mode, batch 64.
    let mut m = Sequential::new(p.spec, 0).unwrap();
    let x = scratchnet::Tensor::randn(&[64, 1, 28, 28], 0.3, &mut scratchnet::Rng::new(0));
    m.predict(&x).unwrap();
    let inf = median(
        (0..15)
            .map(|_| {
                let s = Instant::now();
                scratchnet::ops::on_worker(|| m.predict(&x).map(|_| ())).unwrap();
                s.elapsed().as_secs_f64()
            })
            .collect(),
    );
    println!("cnn_infer {:.0} images/s  (batch of 64: {:.1} ms)", 64.0 / inf, inf * 1e3);

    for (name, key, reps, limit) in [("mlp", "mlp_train", 5, 60000), ("mlp-sgd", "mlp_sgd_train", 3, 20000)] {
        let p = preset(name).unwrap();
        let mut t = Trainer::new(Sequential::new(p.spec, 0).unwrap(), p.train);
        let data = train.clone().take(limit);
        t.run_epoch(&data, &mut |_, _| true).unwrap();
        let secs = median(
            (0..reps)
                .map(|_| {
                    let s = Instant::now();
                    t.run_epoch(&data, &mut |_, _| true).unwrap();
                    s.elapsed().as_secs_f64() * 60000.0 / limit as f64
                })
                .collect(),
        );
        println!(
            "{key} {:.0} images/s  ({name}, batch {}: {secs:.2} s per epoch)",
            60000.0 / secs,
            t.config.batch_size
        );
    }
}
