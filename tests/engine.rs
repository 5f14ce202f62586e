//! End-to-end behaviour of the engine on a synthetic problem: it learns, and it is deterministic.

use scratchnet::data::Dataset;
use scratchnet::model::{LayerSpec, ModelSpec, Sequential};
use scratchnet::train::{EvalOptions, OptimizerConfig, Schedule, TrainConfig, Trainer, evaluate};
use scratchnet::{Rng, Tensor};

/// 12x12 images of four classes: a bright horizontal bar, vertical bar, main or anti diagonal,
/// at a random offset, on a noisy background.
fn bars(n: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let (h, w) = (12, 12);
    let mut images = Vec::with_capacity(n * h * w);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let class = rng.below(4);
        let off = rng.below(8) + 2;
        for y in 0..h {
            for x in 0..w {
                let on = match class {
                    0 => y == off,
                    1 => x == off,
                    2 => x == y,
                    _ => x + y == 11,
                };
                let noise = (rng.uniform() * 90.0) as u8;
                images.push(if on { 200u8.saturating_add(noise / 2) } else { noise });
            }
        }
        labels.push(class as u8);
    }
    Dataset::new(images, labels, h, w, (0..4).map(|c| c.to_string()).collect()).unwrap()
}

fn small_cnn() -> ModelSpec {
    use LayerSpec::*;
    ModelSpec {
        input: [1, 12, 12],
        layers: vec![
            Conv2d { in_channels: 1, out_channels: 6, kernel_size: 3, stride: 1, padding: 1 },
            LeakyRelu { negative_slope: 0.01 },
            MaxPool2d { kernel_size: 2, stride: None },
            Dropout { p: 0.1 },
            Conv2d { in_channels: 6, out_channels: 8, kernel_size: 3, stride: 2, padding: 0 },
            Relu,
            Flatten,
            Linear { in_features: 8 * 2 * 2, out_features: 4 },
        ],
    }
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        optimizer: OptimizerConfig::Sgd { lr: 0.05, momentum: 0.9, nesterov: false, weight_decay: 1e-4 },
        schedule: Schedule::InverseTime { decay: 0.01 },
        label_smoothing: 0.0,
        seed: 3,
        validation: 0,
        augment: Default::default(),
        decay_norm: false,
    }
}

fn train(spec: ModelSpec, cfg: TrainConfig, data: &Dataset) -> Trainer {
    let model = Sequential::new(spec, cfg.seed).unwrap();
    let mut t = Trainer::new(model, cfg);
    while t.state.epoch < t.config.epochs {
        t.run_epoch(data, &mut |_, _| true).unwrap().unwrap();
    }
    t
}

fn weights(t: &Trainer) -> Vec<Vec<f32>> {
    t.model.named_params().into_iter().map(|(_, p)| p.data().to_vec()).collect()
}

#[test]
fn cnn_learns_synthetic_bars() {
    let (train_set, test_set) = (bars(1200, 1), bars(400, 2));
    let mut t = train(small_cnn(), config(6), &train_set);
    let acc =
        evaluate(&mut t.model, &test_set, &EvalOptions { batch_size: 100, ..EvalOptions::default() }).unwrap().accuracy;
    assert!(acc > 0.95, "test accuracy {acc}");
}

#[test]
fn mlp_learns_synthetic_bars_with_adam() {
    use LayerSpec::*;
    let spec = ModelSpec {
        input: [1, 12, 12],
        layers: vec![
            Flatten,
            Linear { in_features: 144, out_features: 32 },
            LeakyRelu { negative_slope: 0.01 },
            Linear { in_features: 32, out_features: 4 },
        ],
    };
    let mut cfg = config(8);
    cfg.optimizer = OptimizerConfig::adam(0.005, 1e-4);
    cfg.schedule = Schedule::Cosine { warmup: 1, min_lr: 0.0 };
    cfg.label_smoothing = 0.05;
    let (train_set, test_set) = (bars(1200, 1), bars(400, 2));
    let mut t = train(spec, cfg, &train_set);
    let acc =
        evaluate(&mut t.model, &test_set, &EvalOptions { batch_size: 100, ..EvalOptions::default() }).unwrap().accuracy;
    assert!(acc > 0.9, "test accuracy {acc}");
}

/// Random images: enough where what is learnt does not matter.
fn noise(n: usize, side: usize, classes: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let images = (0..n * side * side).map(|_| (rng.uniform() * 256.0) as u8).collect();
    let labels = (0..n).map(|_| rng.below(classes) as u8).collect();
    Dataset::new(images, labels, side, side, (0..classes).map(|c| c.to_string()).collect()).unwrap()
}

/// Trains on pools of 1, 2 and 3 threads and compares the weights' bits (`==` on floats would
/// let 0.0 and -0.0 pass).
fn assert_same_bits_on_1_2_3_threads(what: &str, spec: &ModelSpec, cfg: &TrainConfig, data: &Dataset) {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let w = weights(&train(spec.clone(), cfg.clone(), data));
            w.iter().map(|p| p.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()).collect::<Vec<_>>()
        })
    };
    let one = run(1);
    for threads in [2, 3] {
        let other = run(threads);
        for (i, (a, b)) in one.iter().zip(&other).enumerate() {
            if let Some(j) = (0..a.len()).find(|&j| a[j] != b[j]) {
                let (x, y) = (f32::from_bits(a[j]), f32::from_bits(b[j]));
                panic!("{what}: one thread vs {threads}: parameter {i}[{j}] {x:e} vs {y:e}");
            }
        }
        assert_eq!(one.len(), other.len());
    }
}

#[test]
fn same_seed_gives_identical_weights_whatever_the_thread_count() {
    let data = bars(300, 4);
    let one = weights(&train(small_cnn(), config(2), &data));
    assert_eq!(one, weights(&train(small_cnn(), config(2), &data)), "same seed, same thread count");
    let mut other = config(2);
    other.seed = 4;
    assert_ne!(one, weights(&train(small_cnn(), other, &data)), "another seed differs");
    assert_same_bits_on_1_2_3_threads("small CNN", &small_cnn(), &config(2), &data);

    // Large enough for the paths that split work differently: products from 2M multiply-adds
    // (split into blocks; the batch's 40M multiply-adds also keep the pool awake), shifted-product
    // convolution (8 input channels), parallel dropout.
    use LayerSpec::*;
    let wide = ModelSpec {
        input: [1, 12, 12],
        layers: vec![
            Conv2d { in_channels: 1, out_channels: 8, kernel_size: 3, stride: 1, padding: 1 },
            LeakyRelu { negative_slope: 0.01 },
            Conv2d { in_channels: 8, out_channels: 16, kernel_size: 3, stride: 1, padding: 1 },
            Relu,
            Flatten,
            Linear { in_features: 2304, out_features: 1024 },
            Dropout { p: 0.3 },
            LeakyRelu { negative_slope: 0.01 },
            Linear { in_features: 1024, out_features: 4 },
        ],
    };
    assert_same_bits_on_1_2_3_threads("wide network", &wide, &config(1), &data);
}

/// The shipped networks at batch 64: the MLP's products are split into blocks 64 wide, where the
/// `gemm` crate blocks the inner dimension differently than for the whole product, so the split
/// must not depend on the thread count; its batches also keep the pool awake where there are
/// cores for it. The CNN adds the direct and Winograd convolutions and its 3200-512 layer.
#[test]
fn shipped_networks_give_identical_weights_on_1_2_3_threads() {
    use scratchnet::model::presets::{cnn_spec, mlp_spec};
    let mut cfg = config(1);
    cfg.batch_size = 64;
    let mlp_macs = mlp_spec(0.0).forward_macs() * 64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    assert_eq!(pool.install(|| scratchnet::ops::internals::keeps_pool_awake(mlp_macs)), cores >= 2);
    assert_same_bits_on_1_2_3_threads("MLP", &mlp_spec(0.0), &cfg, &noise(512, 28, 10, 6));
    assert_same_bits_on_1_2_3_threads("CNN", &cnn_spec(), &cfg, &noise(128, 28, 10, 7));
}

#[test]
fn interrupted_epoch_resumes_to_the_same_weights() {
    let data = bars(320, 5);
    // With augmentation, so its randomness must resume exactly too.
    let mut cfg = config(2);
    cfg.augment = scratchnet::train::Augment { max_shift: 1, hflip: true, erase: 0.0 };
    let straight = train(small_cnn(), cfg.clone(), &data);
    let model = Sequential::new(small_cnn(), 3).unwrap();
    let mut t = Trainer::new(model, cfg);
    // Stop after 7 batches of the first epoch, save everything to bytes, restore, finish.
    let stopped = t.run_epoch(&data, &mut |done, _| done < 7).unwrap();
    assert!(stopped.is_none() && t.state.batch == 7);
    let info = scratchnet::model_file::ModelInfo {
        spec: small_cnn(),
        classes: data.classes.clone(),
        dataset: "bars".into(),
        input: Default::default(),
        training: None,
        tta: Default::default(),
    };
    let bytes = scratchnet::checkpoint::to_bytes(&t, &info).unwrap();
    let loaded = scratchnet::model_file::from_bytes(&bytes, "ckpt").unwrap();
    let (mut resumed, _) = scratchnet::checkpoint::restore(loaded, "ckpt").unwrap();
    while resumed.state.epoch < 2 {
        resumed.run_epoch(&data, &mut |_, _| true).unwrap().unwrap();
    }
    assert_eq!(weights(&straight), weights(&resumed));
}

#[test]
fn augmentation_changes_training_and_still_learns() {
    let (train_set, test_set) = (bars(1200, 1), bars(400, 2));
    let mut cfg = config(6);
    cfg.augment = scratchnet::train::Augment { max_shift: 1, hflip: false, erase: 0.0 };
    let mut t = train(small_cnn(), cfg, &train_set);
    assert_ne!(weights(&t), weights(&train(small_cnn(), config(6), &train_set)));
    let acc =
        evaluate(&mut t.model, &test_set, &EvalOptions { batch_size: 100, ..EvalOptions::default() }).unwrap().accuracy;
    assert!(acc > 0.9, "test accuracy {acc}");
}

#[test]
fn divergence_is_reported_not_hidden() {
    let data = bars(200, 6);
    let mut cfg = config(1);
    cfg.optimizer = OptimizerConfig::Sgd { lr: 1e30, momentum: 0.9, nesterov: false, weight_decay: 0.0 };
    let mut t = Trainer::new(Sequential::new(small_cnn(), 0).unwrap(), cfg);
    let err = t.run_epoch(&data, &mut |_, _| true).unwrap_err().to_string();
    assert!(err.contains("diverged") && err.contains("lower learning rate"), "{err}");
}

#[test]
fn predict_gives_probabilities() {
    let mut m = Sequential::new(small_cnn(), 0).unwrap();
    let x = Tensor::randn(&[3, 1, 12, 12], 1.0, &mut Rng::new(0));
    let p = m.predict(&x).unwrap();
    assert_eq!(p.shape(), [3, 4]);
    for row in p.data().chunks(4) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    assert!(m.predict(&Tensor::zeros(&[1, 1, 10, 10])).is_err());
}

#[test]
fn flip_averaged_prediction_is_the_mean_of_both_views_and_is_saved_with_the_model() {
    use scratchnet::model::Tta;
    use scratchnet::model_file::{ModelInfo, from_bytes, to_bytes};
    let mut m = Sequential::new(small_cnn(), 0).unwrap();
    let x = Tensor::randn(&[3, 1, 12, 12], 1.0, &mut Rng::new(0));
    let mut mirrored = x.clone();
    for row in mirrored.data_mut().chunks_mut(12) {
        row.reverse();
    }
    let plain = m.predict(&x).unwrap().clone();
    let flipped = m.predict(&mirrored).unwrap().clone();
    let both = m.predict_tta(&x, Tta::HFlip).unwrap().clone();
    assert_ne!(plain.data(), flipped.data(), "the bars are not symmetric: the views must differ");
    for ((&a, &b), &avg) in plain.data().iter().zip(flipped.data()).zip(both.data()) {
        assert!((0.5 * (a + b) - avg).abs() < 1e-6, "{a} {b} {avg}");
    }
    // The input buffer still holds the caller's images afterwards.
    assert_eq!(m.predict_tta(&x, Tta::None).unwrap().data(), plain.data());

    let info = ModelInfo {
        spec: small_cnn(),
        classes: (0..4).map(|c| c.to_string()).collect(),
        dataset: "bars".into(),
        input: Default::default(),
        training: None,
        tta: Tta::HFlip,
    };
    let bytes = to_bytes(&m, &info, &[], None).unwrap();
    assert_eq!(from_bytes(&bytes, "m").unwrap().info.tta, Tta::HFlip);
    let plain_info = ModelInfo { tta: Tta::None, ..info };
    assert_eq!(from_bytes(&to_bytes(&m, &plain_info, &[], None).unwrap(), "m").unwrap().info.tta, Tta::None);
}

/// Plain SGD applied during back-propagation (the per-sample fast path) takes the same steps as
/// writing the gradients and then running the optimizer, at batch 1 and batch 8.
#[test]
fn sgd_applied_in_backward_matches_gradient_then_step() {
    use scratchnet::train::Optimizer;
    let data = bars(16, 9);
    let spec = ModelSpec {
        input: [1, 12, 12],
        layers: vec![
            LayerSpec::Flatten,
            LayerSpec::Linear { in_features: 144, out_features: 20 },
            LayerSpec::LeakyRelu { negative_slope: 0.01 },
            LayerSpec::Dropout { p: 0.2 },
            LayerSpec::Linear { in_features: 20, out_features: 4 },
        ],
    };
    for batch in [1usize, 8] {
        let mut fused = Sequential::new(spec.clone(), 5).unwrap();
        let mut reference = Sequential::new(spec.clone(), 5).unwrap();
        assert!(fused.fuses_sgd());
        let mut opt =
            Optimizer::new(OptimizerConfig::Sgd { lr: 0.1, momentum: 0.0, nesterov: false, weight_decay: 0.0 });
        let (mut rng_a, mut rng_b) = (Rng::new(1), Rng::new(1));
        let mut labels = Vec::new();
        for step in 0..6 {
            let idx: Vec<u32> = (0..batch as u32).map(|i| (step * batch as u32 + i) % 16).collect();
            data.fill_batch(&idx, fused.input_mut(batch), &mut labels);
            data.fill_batch(&idx, reference.input_mut(batch), &mut labels);
            fused.forward(true, &mut rng_a).unwrap();
            reference.forward(true, &mut rng_b).unwrap();
            let a = fused.backward_sgd(&labels, 0.0, 0.1).unwrap();
            let b = reference.backward(&labels, 0.0).unwrap();
            opt.step(&mut reference, 0.1).unwrap();
            assert!((a - b).abs() < 1e-5, "loss {a} vs {b}");
        }
        for ((name, p), (_, q)) in fused.named_params().iter().zip(reference.named_params()) {
            for (u, v) in p.data().iter().zip(q.data()) {
                assert!((u - v).abs() < 1e-5, "{name} at batch {batch}: {u} vs {v}");
            }
        }
    }
    // A network with a convolution cannot: its parameters need the optimizer.
    assert!(!Sequential::new(small_cnn(), 0).unwrap().fuses_sgd());
}

#[test]
fn activations_fused_into_convolutions_change_nothing() {
    // The original CNN (three convolutions followed by leaky ReLU, two of them by a max-pool) with
    // the activations fused, and in evaluation the pools, against every layer run by itself: same
    // losses, gradients and predictions, bit for bit. `cnn-fast` pools straight after the
    // convolution (no activation between).
    for (preset, batch_norm) in [("cnn", false), ("cnn-fast", true)] {
        fused_against_plain(scratchnet::train::preset(preset).unwrap().spec, batch_norm);
    }
}

fn fused_against_plain(spec: scratchnet::model::ModelSpec, batch_norm: bool) {
    let mut fused = Sequential::new(spec.clone(), 7).unwrap();
    let mut plain = Sequential::new(spec, 7).unwrap();
    plain.set_fusion(false);
    let x = Tensor::randn(&[6, 1, 28, 28], 0.5, &mut Rng::new(2));
    let labels: Vec<u32> = (0..6).map(|i| i % 10).collect();
    let mut results = Vec::new();
    for m in [&mut fused, &mut plain] {
        m.input_mut(6).data_mut().copy_from_slice(x.data());
        m.forward(true, &mut Rng::new(4)).unwrap();
        let loss = m.backward(&labels, 0.0).unwrap();
        let mut grads = Vec::new();
        m.visit_params_mut(&mut |_, p| grads.push(p.grad.data().to_vec()));
        let probs = m.predict(&x).unwrap().data().to_vec();
        // Evaluation hands dropout's and flatten's buffers on instead of copying them: a training
        // step and another prediction in between change nothing (but a batch norm's running
        // statistics, which a training pass updates).
        m.forward(true, &mut Rng::new(5)).unwrap();
        m.backward(&labels, 0.0).unwrap();
        let again = m.predict(&x).unwrap().data().to_vec();
        assert!(batch_norm || again == probs);
        assert!(m.backward(&labels, 0.0).is_err(), "backward after an evaluation pass is refused");
        results.push((loss, grads, probs));
    }
    assert_eq!(results[0], results[1]);
}
