//! Training and inference on the GPU against the CPU, on whatever adapter wgpu finds (Mesa's
//! lavapipe in CI). Without an adapter the tests are skipped, the binary ending with one line that
//! counts them, unless `SCRATCHNET_REQUIRE_GPU=1` (CI sets it) makes that a failure.
#![cfg(feature = "gpu")]

use scratchnet::data::Dataset;
use scratchnet::model::{Sequential, Tta};
use scratchnet::ops::gpu::Gpu;
use scratchnet::tensor::Device;
use scratchnet::train::{EvalOptions, Trainer, evaluate, preset};

#[path = "../src/ops/gpu/test_skip.rs"]
mod test_skip;

/// The adapter, or None (the test counted as skipped, one line at the end says how many).
fn gpu() -> Option<Device> {
    test_skip::or_skip(Gpu::new()).map(Device::Gpu)
}

/// n synthetic 28x28 images: class-dependent blobs plus noise, so training has something to learn.
fn data(n: usize) -> Dataset {
    let mut images = Vec::with_capacity(n * 784);
    let mut labels = Vec::with_capacity(n);
    let mut rng = scratchnet::Rng::new(9);
    for i in 0..n {
        let c = i % 10;
        for p in 0..784 {
            let (y, x) = (p / 28, p % 28);
            let on = (x / 7 + 4 * (y / 7)) % 10 == c;
            images.push(if on { 200 } else { (rng.below(60)) as u8 });
        }
        labels.push(c as u8);
    }
    Dataset::new(images, labels, 28, 28, (0..10).map(|c| c.to_string()).collect()).unwrap()
}

fn params(t: &Trainer) -> Vec<Vec<f32>> {
    t.model.named_params().iter().map(|(_, p)| p.to_vec().unwrap()).collect()
}

/// Largest |a - b| relative to the largest |b| of each tensor.
fn max_rel_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    max_rel_diff_floor(a, b, 0.0)
}

/// [`max_rel_diff`], a tensor's scale at least `floor`.
fn max_rel_diff_floor(a: &[Vec<f32>], b: &[Vec<f32>], floor: f32) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let scale = y.iter().fold(floor.max(1e-12), |m, v| m.max(v.abs()));
            x.iter().zip(y).fold(0f32, |m, (p, q)| m.max((p - q).abs() / scale))
        })
        .fold(0.0, f32::max)
}

/// Gradients compared tensor by tensor, except those 10⁴ times smaller than the model's largest,
/// which are rounding noise: a bias before a batch norm (through a max-pool or not) has a gradient
/// of exactly 0 in exact arithmetic, since the normalisation removes any shift, so both devices
/// hold rounding errors there, compared against the model's largest gradient instead.
fn grad_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    let largest = b.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
    let (mut signal, mut noise) = (Vec::new(), Vec::new());
    for (x, y) in a.iter().zip(b) {
        let own = y.iter().fold(0f32, |m, v| m.max(v.abs()));
        if own < 1e-4 * largest { &mut noise } else { &mut signal }.push((x.clone(), y.clone()));
    }
    let split = |v: Vec<(Vec<f32>, Vec<f32>)>| -> (Vec<Vec<f32>>, Vec<Vec<f32>>) { v.into_iter().unzip() };
    let ((sa, sb), (na, nb)) = (split(signal), split(noise));
    max_rel_diff(&sa, &sb).max(max_rel_diff_floor(&na, &nb, largest))
}

/// The model's buffers (batch norms' running statistics and step counters), in state order.
fn buffers(m: &Sequential) -> Vec<Vec<f32>> {
    let params: std::collections::HashSet<String> = m.named_params().into_iter().map(|(n, _)| n).collect();
    m.named_state().iter().filter(|(n, _)| !params.contains(n)).map(|(_, t)| t.to_vec().unwrap()).collect()
}

fn grads(t: &mut Trainer) -> Vec<Vec<f32>> {
    let mut g = Vec::new();
    t.model.visit_params_mut(&mut |_, p| g.push(p.grad.to_vec().unwrap()));
    g
}

#[test]
fn one_training_step_of_every_preset_matches_the_cpu() {
    let Some(dev) = gpu() else { return };
    for name in [
        "mlp-sgd",
        "mlp-sgd-momentum",
        "mlp",
        "mlp-dropout",
        "mlp-dropout-l2",
        "cnn",
        "cnn-plus",
        "cnn-fast",
        "cnn-best",
    ] {
        let p = preset(name).unwrap();
        let mut config = p.train.clone();
        // Lavapipe runs ~1-2 GFLOP/s: a CNN step on 16 images instead of 64.
        config.batch_size = config.batch_size.min(16);
        // One batch (two for the per-sample presets).
        let d = data(config.batch_size.max(2));
        let run = |device: Option<&Device>| {
            let mut t = Trainer::new(Sequential::new(p.spec.clone(), 0).unwrap(), config.clone());
            if let Some(dev) = device {
                t.to_device(dev).unwrap();
            }
            let mut steps = 0;
            t.run_epoch(&d, &mut |_, _| {
                steps += 1;
                steps < 2
            })
            .unwrap();
            t
        };
        let mut cpu = run(None);
        let (mut g1, g2) = (run(Some(&dev)), run(Some(&dev)));
        // Adam's first step moves every weight by about ±lr whatever its gradient's size, so a
        // gradient within rounding of 0 may flip its step: compare its gradients instead.
        let (diff, what) = if config.optimizer.slot_names().contains(&"exp_avg") {
            (grad_diff(&grads(&mut g1), &grads(&mut cpu)), "gradients")
        } else {
            (max_rel_diff(&params(&g1), &params(&cpu)), "weights")
        };
        eprintln!("{name}: largest relative difference of the {what}, GPU vs CPU, after one step: {diff:e}");
        assert!(diff < 1e-4, "{name}: {diff}");
        assert_eq!(params(&g1), params(&g2), "{name}: two GPU runs differ");
        // Batch norms' running statistics (and step counters), updated on the device.
        let (gb, cb) = (buffers(&g1.model), buffers(&cpu.model));
        let diff = max_rel_diff(&gb, &cb);
        assert!(diff < 1e-4, "{name}: running statistics differ by {diff}");
        assert_eq!(gb, buffers(&g2.model), "{name}: two GPU runs' running statistics differ");
        assert_eq!(g1.state.seen, cpu.state.seen);
        assert_eq!(g1.state.correct, cpu.state.correct, "{name}");
        assert!((g1.state.loss_sum - cpu.state.loss_sum).abs() < 1e-4 * cpu.state.loss_sum.abs().max(1.0), "{name}");
    }
}

#[test]
fn evaluation_on_the_gpu_matches_the_cpu() {
    let Some(dev) = gpu() else { return };
    let d = data(200);
    let p = preset("cnn").unwrap();
    let mut cpu = Sequential::new(p.spec.clone(), 3).unwrap();
    let mut on_gpu = Sequential::new(p.spec, 3).unwrap();
    on_gpu.to_device(&dev).unwrap();
    for tta in [Tta::None, Tta::HFlip] {
        let a = evaluate(&mut cpu, &d, &EvalOptions { tta, ..EvalOptions::default() }).unwrap();
        let b = evaluate(&mut on_gpu, &d, &EvalOptions { tta, ..EvalOptions::default() }).unwrap();
        assert_eq!(a.confusion, b.confusion, "{tta:?}");
        assert!((a.loss - b.loss).abs() < 1e-4 * a.loss.max(1.0), "{tta:?}: {} vs {}", a.loss, b.loss);
    }
    // Values set from host tensors go to the model's device.
    let values: Vec<_> = cpu.named_params().into_iter().map(|(_, t)| t.clone()).collect();
    on_gpu.set_params(values).unwrap();
    assert!(on_gpu.named_params().iter().all(|(_, t)| !t.is_host()));
    let b = evaluate(&mut on_gpu, &d, &EvalOptions { tta: Tta::None, ..EvalOptions::default() }).unwrap();
    assert_eq!(
        evaluate(&mut cpu, &d, &EvalOptions { tta: Tta::None, ..EvalOptions::default() }).unwrap().confusion,
        b.confusion
    );
}

/// A batch-norm network (`cnn-fast`: BatchNorm2d/1d with fused ReLU, max pools) with running
/// statistics from a few CPU training steps evaluates on the GPU to the CPU's confusion matrix.
#[test]
fn evaluation_of_a_batch_norm_network_on_the_gpu_matches_the_cpu() {
    let Some(dev) = gpu() else { return };
    let p = preset("cnn-fast").unwrap();
    let mut config = p.train.clone();
    config.batch_size = 16;
    let mut t = Trainer::new(Sequential::new(p.spec.clone(), 4).unwrap(), config);
    let mut steps = 0;
    t.run_epoch(&data(64), &mut |_, _| {
        steps += 1;
        steps < 3
    })
    .unwrap();
    let mut cpu = t.model;
    let running = buffers(&cpu);
    assert!(running.iter().flatten().any(|&v| v != 0.0 && v != 1.0), "running statistics moved from their start");
    let mut on_gpu = Sequential::new(p.spec, 0).unwrap();
    on_gpu.to_device(&dev).unwrap();
    on_gpu.set_state(cpu.named_state().into_iter().map(|(_, t)| t.clone()).collect()).unwrap();
    let d = data(100);
    for tta in [Tta::None, Tta::HFlip] {
        let a = evaluate(&mut cpu, &d, &EvalOptions { tta, ..EvalOptions::default() }).unwrap();
        let b = evaluate(&mut on_gpu, &d, &EvalOptions { tta, ..EvalOptions::default() }).unwrap();
        assert_eq!(a.confusion, b.confusion, "{tta:?}");
        assert!((a.loss - b.loss).abs() < 1e-4 * a.loss.max(1.0), "{tta:?}: {} vs {}", a.loss, b.loss);
    }
    // Evaluation leaves the running statistics as they were.
    assert_eq!(buffers(&on_gpu), running);
}

/// Interrupted mid-epoch on the GPU, saved, restored to the GPU: the same weights as a straight
/// GPU run (Adam, dropout and flips: every kind of state).
#[test]
fn an_interrupted_gpu_run_resumes_to_the_same_weights() {
    let Some(dev) = gpu() else { return };
    let p = preset("mlp-dropout").unwrap();
    let mut config = p.train.clone();
    config.optimizer = scratchnet::train::OptimizerConfig::adam(0.001, 0.01);
    config.augment.hflip = true;
    config.epochs = 2;
    let d = data(640);
    let fresh = || {
        let mut t = Trainer::new(Sequential::new(p.spec.clone(), 5).unwrap(), config.clone());
        t.to_device(&dev).unwrap();
        t
    };
    let mut straight = fresh();
    while straight.state.epoch < 2 {
        straight.run_epoch(&d, &mut |_, _| true).unwrap().unwrap();
    }
    let mut t = fresh();
    t.run_epoch(&d, &mut |_, _| true).unwrap().unwrap();
    assert!(t.run_epoch(&d, &mut |done, _| done < 3).unwrap().is_none());
    let info = scratchnet::model_file::ModelInfo {
        spec: p.spec.clone(),
        classes: d.classes.clone(),
        dataset: "synthetic".into(),
        input: Default::default(),
        training: None,
        tta: Default::default(),
    };
    let bytes = scratchnet::checkpoint::to_bytes(&t, &info).unwrap();
    let loaded = scratchnet::model_file::from_bytes(&bytes, "ckpt").unwrap();
    let (mut resumed, _) = scratchnet::checkpoint::restore(loaded, "ckpt").unwrap();
    assert_eq!((resumed.state.epoch, resumed.state.batch), (1, 3));
    resumed.to_device(&dev).unwrap();
    resumed.run_epoch(&d, &mut |_, _| true).unwrap().unwrap();
    assert_eq!(params(&straight), params(&resumed));
}

mod common;
use common::{cmd, fails, ok};

#[test]
fn the_command_line_trains_and_evaluates_on_the_gpu_like_on_the_cpu() {
    if gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let train = |device: &str| {
        let out = dir.path().join(format!("{device}.safetensors"));
        let r = ok(cmd()
            .args(["train", "--model", "mlp", "--epochs", "1", "--limit", "2000", "--quiet", "--device", device])
            .arg("--out")
            .arg(&out));
        let acc: f64 = r.stdout.split("test ").nth(1).unwrap().split('%').next().unwrap().parse().unwrap();
        (acc, r)
    };
    let (on_gpu, r) = train("gpu");
    assert!(r.stderr.contains("on the GPU"), "{}", r.stderr);
    let (on_cpu, _) = train("cpu");
    assert!((on_gpu - on_cpu).abs() <= 1.0, "test accuracy {on_gpu}% on the GPU, {on_cpu}% on the CPU");

    // The built-in CNN (lavapipe is slow: 128 test images).
    let eval = |device: &str| -> serde_json::Value {
        let r = ok(cmd().args(["evaluate", "--json", "--limit", "128", "--tta", "none", "--device", device]));
        serde_json::from_str(r.stdout.trim()).unwrap()
    };
    let (g, c) = (eval("gpu"), eval("cpu"));
    assert_eq!(g["confusion"], c["confusion"]);
    let (gl, cl) = (g["loss"].as_f64().unwrap(), c["loss"].as_f64().unwrap());
    assert!((gl - cl).abs() < 1e-4, "{gl} vs {cl}");
}

#[test]
fn no_gpu_driver_is_one_clear_line() {
    // The Vulkan loader finds no driver through a manifest list that names none.
    let r = fails(
        cmd()
            .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
            .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
            .args(["train", "--model", "mlp", "--epochs", "1", "--limit", "64", "--device", "gpu"]),
        "mesa-vulkan-drivers",
    );
    assert_eq!(r.stderr.lines().filter(|l| l.starts_with("error")).count(), 1, "{}", r.stderr);
    let r = ok(cmd()
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .args(["train", "--model", "mlp", "--epochs", "1", "--limit", "64", "--device", "auto", "--quiet", "--out"])
        .arg(std::env::temp_dir().join("scratchnet-auto.safetensors")));
    assert!(r.stderr.contains("2 threads") || r.stderr.contains("thread"), "auto falls back to the CPU: {}", r.stderr);
}

#[test]
fn devices_lists_the_adapters() {
    if gpu().is_none() {
        return;
    }
    let r = ok(cmd().args(["devices", "--json"]));
    let first: serde_json::Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
    assert!(first["name"].is_string() && first["max_buffer_size"].as_u64().unwrap() > 0, "{}", r.stdout);
    let r = ok(cmd().arg("devices"));
    assert!(r.stdout.contains("gpu 0:") && r.stdout.contains("(--device gpu)"), "{}", r.stdout);
}

/// Every layer, forward and backward in training then in evaluation mode, on the GPU against the
/// same layer on the CPU: outputs, input gradients, parameter gradients and buffers (batch norms'
/// running statistics), on odd geometries (the layers' own finite-difference checks run on the
/// CPU, `layers::tests`).
#[test]
fn every_layer_forward_and_backward_matches_the_cpu() {
    use scratchnet::Tensor;
    use scratchnet::layers::{
        AvgPool2d, BatchNorm, Conv2d, Ctx, Dense, Dropout, Flatten, GlobalAvgPool, Layer, LeakyRelu, MaxPool2d,
    };
    use scratchnet::ops::{Conv2dGeom, Pool2dGeom};
    let Some(dev) = gpu() else { return };
    let conv = |c, h, w, f, k, stride, pad| Conv2dGeom { c, h, w, f, k, stride, pad };
    type Make = Box<dyn Fn() -> Box<dyn Layer>>;
    let cases: Vec<(&str, Vec<usize>, Make)> = vec![
        ("dense", vec![3, 7], Box::new(|| Box::new(Dense::new(7, 5, &mut scratchnet::Rng::new(1))))),
        (
            "conv k3 pad1",
            vec![2, 3, 7, 6],
            Box::new(move || Box::new(Conv2d::new(conv(3, 7, 6, 4, 3, 1, 1), &mut scratchnet::Rng::new(2)))),
        ),
        (
            "conv k5 stride2",
            vec![2, 2, 9, 8],
            Box::new(move || Box::new(Conv2d::new(conv(2, 9, 8, 3, 5, 2, 2), &mut scratchnet::Rng::new(3)))),
        ),
        (
            "conv k2",
            vec![1, 4, 5, 5],
            Box::new(move || Box::new(Conv2d::new(conv(4, 5, 5, 2, 2, 1, 0), &mut scratchnet::Rng::new(4)))),
        ),
        (
            "max_pool 2x2",
            vec![2, 3, 6, 7],
            Box::new(|| Box::new(MaxPool2d::new(Pool2dGeom { h: 6, w: 7, k: 2, stride: 2 }))),
        ),
        (
            "max_pool 3 stride 2",
            vec![1, 2, 7, 7],
            Box::new(|| Box::new(MaxPool2d::new(Pool2dGeom { h: 7, w: 7, k: 3, stride: 2 }))),
        ),
        (
            "avg_pool 3 stride 2",
            vec![2, 3, 7, 8],
            Box::new(|| Box::new(AvgPool2d::new(Pool2dGeom { h: 7, w: 8, k: 3, stride: 2 }))),
        ),
        ("global_avg_pool", vec![3, 5, 3, 7], Box::new(|| Box::new(GlobalAvgPool))),
        ("batch_norm 2d", vec![3, 5, 7, 6], Box::new(|| Box::new(BatchNorm::new(5, 1e-5, 0.1)))),
        (
            "batch_norm 2d + relu",
            vec![2, 4, 9, 9],
            Box::new(|| {
                let mut bn = BatchNorm::new(4, 1e-5, 0.1);
                assert!(bn.fuse_leaky_relu(Some(0.0)));
                Box::new(bn)
            }),
        ),
        (
            "batch_norm 1d + leaky relu",
            vec![6, 300],
            Box::new(|| {
                let mut bn = BatchNorm::new(300, 1e-3, 0.2);
                assert!(bn.fuse_leaky_relu(Some(0.1)));
                Box::new(bn)
            }),
        ),
        ("dropout", vec![4, 50], Box::new(|| Box::new(Dropout::new(0.3)))),
        ("leaky_relu", vec![3, 11], Box::new(|| Box::new(LeakyRelu { slope: 0.01 }))),
        ("flatten", vec![2, 3, 2, 2], Box::new(|| Box::new(Flatten))),
    ];
    let close = |a: &[f32], b: &[f32], what: &str| {
        assert_eq!(a.len(), b.len(), "{what}");
        let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let diff = a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(diff <= 1e-5 * scale, "{what}: {diff} (scale {scale})");
    };
    for (name, shape, make) in cases {
        let mut rng = scratchnet::Rng::new(7);
        let x = Tensor::randn(&shape, 1.0, &mut rng);
        let run = |device: Option<&Device>| {
            let mut layer = make();
            let mut x = x.clone();
            if let Some(d) = device {
                layer.visit_params_mut(&mut |p| {
                    p.value.move_to(d).unwrap();
                    p.grad.move_to(d).unwrap();
                });
                // As Sequential::to_device: the step counter stays in host memory.
                layer.visit_buffers_mut(&mut |name, t| {
                    if name != scratchnet::model::spec::BATCH_COUNT {
                        t.move_to(d).unwrap();
                    }
                });
                x.move_to(d).unwrap();
            }
            let mut out = Vec::new();
            for (train, seed) in [(true, 11), (false, 12)] {
                let mut y = Tensor::default();
                layer.forward(&x, &mut y, &mut Ctx { train, rng: &mut scratchnet::Rng::new(9) }).unwrap();
                let dy = Tensor::randn(y.shape(), 1.0, &mut scratchnet::Rng::new(seed));
                let dy = match device {
                    Some(d) => dy.to_device(d).unwrap(),
                    None => dy,
                };
                let mut dx = Tensor::default();
                let mode = if train { "train" } else { "eval" };
                out.push((format!("{mode} y"), y.to_vec().unwrap()));
                // Dropout has no backward pass in evaluation: the same refusal on both devices.
                if let Err(e) = layer.backward(&x, &y, &dy, Some(&mut dx)) {
                    assert!(!train, "{e}");
                    out.push((format!("eval backward: {e}"), Vec::new()));
                    continue;
                }
                out.push((format!("{mode} dx"), dx.to_vec().unwrap()));
                layer.visit_params_mut(&mut |p| {
                    out.push((format!("{mode} gradient of {}", p.name), p.grad.to_vec().unwrap()))
                });
            }
            layer.visit_buffers_mut(&mut |name, t| out.push((name.to_string(), t.to_vec().unwrap())));
            out
        };
        let (on_cpu, on_gpu) = (run(None), run(Some(&dev)));
        assert_eq!(on_cpu.len(), on_gpu.len());
        for ((what, c), (what_gpu, g)) in on_cpu.iter().zip(&on_gpu) {
            assert_eq!(what, what_gpu, "{name}");
            close(g, c, &format!("{name}: {what}"));
        }
    }
}

#[test]
fn a_gpu_failure_is_one_line_and_leaves_no_half_written_files() {
    let Some(Device::Gpu(g)) = gpu() else { return };
    // Lavapipe's buffers hold at most 128 MiB: the CNN's first activation at batch 2000 needs 165.
    if !g.summary().emulated || g.summary().max_storage_buffer_binding_size >= 1 << 30 {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big.safetensors");
    let r = fails(
        cmd()
            .args(["train", "--device", "gpu", "--model", "cnn", "--batch-size", "2000", "--limit", "2000"])
            .args(["--epochs", "1", "--quiet", "--out"])
            .arg(&out),
        "exceeds this adapter's limit",
    );
    assert_eq!(r.stderr.lines().filter(|l| l.starts_with("error")).count(), 1, "{}", r.stderr);
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "files left: {}", r.stderr);
}
