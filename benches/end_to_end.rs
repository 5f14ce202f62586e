//! End-to-end speed: CNN training and inference (batch 64), MLP mini-batch and per-sample
//! training, on real Fashion-MNIST. Medians of repeated runs; `--threads N` (default: all cores),
//! `--only NAME[,NAME]` for some measurements (`cnn_fast_train`, the `cnn-fast` preset at its batch
//! of 128, runs only when named). One line per measurement, `<name> <value> <unit>`, as
//! bench/pytorch_reference.py prints.
//!
//!     cargo bench --bench end_to_end -- [--threads N] [--conv auto|winograd|winograd-forward|winograd-2x2|direct|shifted|im2col] [--only cnn_train|cnn_infer|mlp_train|mlp_sgd_train|cnn_fast_train[,...]] [--device cpu|gpu] [--limit N]
//!
//! `--device gpu` moves each model (and optimizer state) there before the warm-up; every timed span
//! ends with a read-back (the epoch's losses, the probabilities), so it covers the GPU's work, not
//! only its recording. There cnn_infer is a pass over the 10,000 test images (batch 64, as
//! `evaluate`), as on a GPU one batch is mostly latency. `--limit N` caps the images of each epoch
//! or pass (and cnn_train's batches), for slow adapters such as lavapipe; images/s stay comparable.
//!
//! `--conv` forces a convolution algorithm (see `ops::ConvAlgorithm`; `--im2col` = `--conv im2col`);
//! `--no-fusion` runs every activation as its own layer (`Sequential::set_fusion(false)`).

use std::time::Instant;

use scratchnet::data::{Dataset, discover};
use scratchnet::model::Sequential;
use scratchnet::tensor::Device;
use scratchnet::train::{Trainer, preset};

static NO_FUSION: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A freshly initialised model of the preset, fused or not as asked.
fn model(spec: scratchnet::model::ModelSpec) -> Sequential {
    let mut m = Sequential::new(spec, 0).unwrap();
    m.set_fusion(!NO_FUSION.load(std::sync::atomic::Ordering::Relaxed));
    m
}

/// `--device`: the GPU fails here, in one line, rather than in the first measurement.
fn device(name: &str) -> Device {
    match name {
        "cpu" => Device::Cpu,
        #[cfg(feature = "gpu")]
        "gpu" => match scratchnet::ops::gpu::Gpu::new() {
            Ok(g) => {
                let s = g.summary();
                let emulated = if s.emulated { ", CPU emulation" } else { "" };
                eprintln!("gpu: {} ({}, {}{emulated})", s.name, s.backend, s.driver);
                Device::Gpu(g)
            }
            Err(e) => {
                eprintln!("bench: --device gpu: {e}");
                std::process::exit(2)
            }
        },
        other => panic!("--device {other}: expected cpu or gpu (gpu needs feature \"gpu\")"),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Not a benchmark run: bench/gpu.sh checks that a carried binary starts.
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "bench [--threads N] [--conv auto|winograd|winograd-forward|winograd-2x2|direct|shifted|im2col] [--no-fusion] [--only NAME[,NAME]] [--device cpu|gpu] [--limit N] [--batch N]"
        );
        return;
    }
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
        (Some("winograd"), _) => set_conv_algorithm(ConvAlgorithm::Winograd),
        (Some("winograd-forward"), _) => set_conv_algorithm(ConvAlgorithm::WinogradForward),
        (Some("winograd-2x2"), _) => set_conv_algorithm(ConvAlgorithm::Winograd2x2),
        (Some("auto") | None, _) => {}
        (Some(other), _) => {
            panic!("--conv {other}: expected auto, winograd, winograd-forward, winograd-2x2, direct, shifted or im2col")
        }
    }
    NO_FUSION.store(args.iter().any(|a| a == "--no-fusion"), std::sync::atomic::Ordering::Relaxed);
    let only = args.iter().position(|a| a == "--only").map(|i| args[i + 1].clone());
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o.split(',').any(|o| o == name));
    let dev = device(args.iter().position(|a| a == "--device").map_or("cpu", |i| args[i + 1].as_str()));
    let cap = args.iter().position(|a| a == "--limit").map_or(usize::MAX, |i| args[i + 1].parse().expect("--limit N"));
    let batch: Option<usize> =
        args.iter().position(|a| a == "--batch").map(|i| args[i + 1].parse().expect("--batch N (at least 1)"));
    let splits = discover::load("fashion-mnist", None).expect("Fashion-MNIST");
    let train = splits.train.unwrap();
    println!("threads {} count", rayon::current_num_threads());
    if wanted("cnn_train") {
        cnn_train("cnn", "cnn_train", &train, &dev, cap, batch);
    }
    // Not in the default set: compare.sh has no PyTorch counterpart for it.
    if only.as_deref().is_some_and(|o| o.split(',').any(|o| o == "cnn_fast_train")) {
        cnn_train("cnn-fast", "cnn_fast_train", &train, &dev, cap, batch);
    }
    if wanted("cnn_infer") {
        if dev.is_cpu() {
            cnn_infer(batch.unwrap_or(64));
        } else {
            cnn_infer_pass(&splits.test.expect("Fashion-MNIST test split"), &dev, cap);
        }
    }
    for (name, key, reps, limit) in [("mlp", "mlp_train", 5, 60000), ("mlp-sgd", "mlp_sgd_train", 3, 20000)] {
        if wanted(key) {
            mlp_train(name, key, reps, &train.clone().take(limit.min(cap)), &dev);
        }
    }
}

/// A trainer for the preset (at another batch size if given) with its model and optimizer state
/// on `dev`.
fn trainer(name: &str, dev: &Device, batch: Option<usize>) -> Trainer {
    let mut p = preset(name).unwrap();
    p.train.batch_size = batch.unwrap_or(p.train.batch_size);
    let mut t = Trainer::new(model(p.spec), p.train);
    // The CPU path stays exactly as it was measured before.
    if !dev.is_cpu() {
        t.to_device(dev).expect("moving the model to the device");
    }
    t
}

/// 7 timed epochs of 20 batches (at least 1,280 images) after one warm-up. An epoch ends by
/// reading its losses back, so on a GPU its time includes the work.
fn cnn_train(preset_name: &str, key: &str, train: &Dataset, dev: &Device, cap: usize, batch: Option<usize>) {
    let mut t = trainer(preset_name, dev, batch);
    let batch = batch.unwrap_or(preset(preset_name).unwrap().train.batch_size);
    let part = train.clone().take((batch * 20).max(1280).min(cap));
    let batches = t.batches_per_epoch(&part) as f64;
    t.run_epoch(&part, &mut |_, _| true).unwrap();
    let step = median(
        (0..7)
            .map(|_| {
                let s = Instant::now();
                t.run_epoch(&part, &mut |_, _| true).unwrap();
                s.elapsed().as_secs_f64() / batches
            })
            .collect(),
    );
    // The batch size but under a small --limit.
    let per_step = part.len() as f64 / batches;
    println!(
        "{key} {:.0} images/s  (step of {per_step}: {:.1} ms, ~{:.0} s per epoch)",
        per_step / step,
        step * 1e3,
        60000.0 * step / per_step
    );
}

/// Evaluation mode, one batch (64 unless --batch), repeated.
fn cnn_infer(batch: usize) {
    let mut m = model(preset("cnn").unwrap().spec);
    let x = scratchnet::Tensor::randn(&[batch, 1, 28, 28], 0.3, &mut scratchnet::Rng::new(0));
    m.predict(&x).unwrap();
    // At least 1,920 images (30 batches of 64) a measurement.
    let inf = median(
        (0..30.max(1920 / batch))
            .map(|_| {
                let s = Instant::now();
                scratchnet::ops::internals::on_worker(|| m.predict(&x).map(|_| ())).unwrap();
                s.elapsed().as_secs_f64()
            })
            .collect(),
    );
    println!("cnn_infer {:.0} images/s  (batch of {batch}: {:.2} ms)", batch as f64 / inf, inf * 1e3);
}

/// Evaluation mode over the test images in batches of 64, each batch's probabilities read back
/// (what `evaluate` does); median of 5 passes after one warm-up.
fn cnn_infer_pass(test: &Dataset, dev: &Device, cap: usize) {
    let mut m = model(preset("cnn").unwrap().spec);
    m.to_device(dev).expect("moving the model to the device");
    let idx: Vec<u32> = (0..test.len().min(cap) as u32).collect();
    let mut labels = Vec::new();
    let mut pass = || {
        let s = Instant::now();
        for chunk in idx.chunks(64) {
            test.fill_batch(chunk, m.input_mut(chunk.len()), &mut labels);
            m.infer(scratchnet::model::Tta::None).and_then(|p| p.to_vec()).unwrap();
        }
        s.elapsed().as_secs_f64()
    };
    pass();
    let secs = median((0..5).map(|_| pass()).collect());
    let n = idx.len() as f64;
    println!("cnn_infer {:.0} images/s  ({n} test images, batch 64: {:.1} ms per pass)", n / secs, secs * 1e3);
}

fn mlp_train(name: &str, key: &str, reps: usize, data: &Dataset, dev: &Device) {
    let mut t = trainer(name, dev, None);
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
