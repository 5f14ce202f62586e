//! Interop both ways, end to end through the binary:
//! - export: the shipped CNN and MLP written as ONNX pass `onnx.checker` and ONNX Runtime gives
//!   the probabilities `scratchnet predict` prints for 100 Fashion-MNIST test images, within 1e-5
//!   (tests/interop.py);
//! - import: weights written in PyTorch's state_dict layout by NumPy alone, imported, give in
//!   `predict` the probabilities PyTorch's layer definitions give (NumPy reference), within 1e-5;
//!   files written by real PyTorch's `torch.save` (tests/data/torch/) give PyTorch's probabilities;
//! - batch norms and average pooling: a network trained by `scratchnet train` exports to ONNX,
//!   matches the NumPy eval-mode reference and imports back to the same predictions; a batch-norm
//!   `torch.save` file (int64 step counters) gives PyTorch's probabilities;
//! - bad input is refused naming the file and what is wrong.
//!
//! Needs `python3 -m pip install numpy safetensors onnx onnxruntime` (done by .ci/run) and the
//! Fashion-MNIST test set (`apt-get install dataset-fashion-mnist`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{cmd, fails, ok};
use scratchnet::data::{Dataset, discover};

const IMAGES: usize = 100;
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop.py");
const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models");

/// The first test images as one raw u8 file (for Python) and as PGM pictures (for `predict
/// --raw`), in a temporary folder.
struct TestImages {
    dir: tempfile::TempDir,
    raw: PathBuf,
    /// The pictures `predict --raw` reads as they are: it inverts a picture whose border is
    /// mostly light (mean above 127), so those few are left out.
    pictures: Vec<PathBuf>,
    labels: Vec<u8>,
}

fn fashion_test_images() -> TestImages {
    test_images("fashion-mnist")
}

/// [`fashion_test_images`] of another data set (a name or a folder).
fn test_images(dataset: &str) -> TestImages {
    let (_, layout, kind) = discover::locate(dataset, None).expect("the test set");
    let test: Dataset = discover::load_split(layout.test.as_ref().unwrap(), kind).unwrap().take(IMAGES);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("images.u8");
    std::fs::write(&raw, &test.images[..IMAGES * 784]).unwrap();
    let mut pictures = Vec::new();
    for i in 0..IMAGES {
        let px = test.image(i);
        let border: Vec<u32> = (0..784)
            .filter(|p| p % 28 == 0 || p / 28 == 0 || p % 28 == 27 || p / 28 == 27)
            .map(|p| px[p] as u32)
            .collect();
        if border.iter().sum::<u32>() as f32 / border.len() as f32 > 127.0 {
            continue;
        }
        let path = dir.path().join(format!("img_{i:03}.pgm"));
        std::fs::write(&path, [&b"P5\n28 28\n255\n"[..], px].concat()).unwrap();
        pictures.push(path);
    }
    assert!(pictures.len() >= 95, "{} of {IMAGES} pictures", pictures.len());
    TestImages { dir, raw, pictures, labels: test.labels }
}

/// `scratchnet predict --json` with every class on the pictures, into a .jsonl file.
fn predict(model: &Path, images: &TestImages, tta: &str, out: &Path) {
    let r = ok(cmd()
        .args(["predict", "--raw", "--json", "--top-k", "10", "--tta", tta, "--model"])
        .arg(model)
        .args(&images.pictures));
    std::fs::write(out, r.stdout).unwrap();
}

fn python(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let out = Command::new("python3").arg(SCRIPT).args(args.iter().map(|a| a.as_ref())).output().expect("python3");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{stdout}\n{stderr}\n(the check needs: python3 -m pip install numpy safetensors onnx onnxruntime)"
    );
    assert!(stdout.starts_with("OK"), "{stdout}");
    stdout.into_owned()
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path).unwrap().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

/// The largest difference between `predict`'s probabilities for the pictures and `reference`
/// ([images, 10], row-major).
fn predict_vs_reference(model: &Path, images: &TestImages, reference: &[f32]) -> f32 {
    let jsonl = images.dir.path().join("predict.jsonl");
    predict(model, images, "none", &jsonl);
    let mut max_diff = 0f32;
    for line in std::fs::read_to_string(&jsonl).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let file = v["file"].as_str().unwrap();
        let i: usize = file[file.len() - 7..file.len() - 4].parse().unwrap();
        for t in v["top"].as_array().unwrap() {
            let k = t["index"].as_u64().unwrap() as usize;
            max_diff = max_diff.max((t["probability"].as_f64().unwrap() as f32 - reference[i * 10 + k]).abs());
        }
    }
    max_diff
}

/// Exports `model`, runs predict and compares in ONNX Runtime.
fn export_matches_predict(model: &Path, export_flags: &[&str], tta: &str, output: &str) {
    let images = fashion_test_images();
    let onnx = images.dir.path().join("m.onnx");
    let r = ok(cmd().arg("export").arg(model).args(export_flags).arg("-o").arg(&onnx));
    assert!(r.stdout.contains("opset 13") && r.stdout.contains(&format!("output '{output}'")), "{}", r.stdout);
    let jsonl = images.dir.path().join("predict.jsonl");
    predict(model, &images, tta, &jsonl);
    let n = IMAGES.to_string();
    let out = python(&[&"onnx", &onnx, &images.raw, &n, &jsonl, &output]);
    eprintln!("{}: {out}", model.display());
}

#[test]
fn shipped_cnn_in_onnx_runtime_gives_predicts_probabilities() {
    let cnn = Path::new(MODELS).join("fashion-mnist-cnn.safetensors");
    // The plain network (its file records hflip, so predict is told --tta none) ...
    export_matches_predict(&cnn, &["--softmax"], "none", "probabilities");
    // ... and with the mirror-image average folded into the graph, as predict runs by default.
    export_matches_predict(&cnn, &["--softmax", "--tta", "hflip"], "hflip", "probabilities");
}

#[test]
fn shipped_mlp_in_onnx_runtime_gives_predicts_probabilities() {
    let mlp = Path::new(MODELS).join("fashion-mnist-mlp.safetensors");
    export_matches_predict(&mlp, &["--softmax"], "none", "probabilities");
    // The default graph ends in the logits (their softmax is compared).
    export_matches_predict(&mlp, &[], "none", "logits");
}

/// PyTorch-layout weights (written by NumPy) imported onto `arch`, then predicted: the
/// probabilities of PyTorch's definitions, within 1e-5; evaluate reads the file too.
fn import_matches_reference(arch: &str, prefix: &str) -> f32 {
    let images = fashion_test_images();
    let dir = images.dir.path();
    let spec = dir.join("spec.json");
    std::fs::write(&spec, serde_json::to_string(&scratchnet::train::preset(arch).unwrap().spec).unwrap()).unwrap();
    let (weights, probs) = (dir.join("w.safetensors"), dir.join("reference.f32"));
    let (mean, std) = ("0.2860", "0.3530");
    let n = IMAGES.to_string();
    python(&[&"torch-weights", &spec, &prefix, &weights, &images.raw, &n, &mean, &std, &probs]);

    let model = dir.join("imported.safetensors");
    let r = ok(cmd()
        .args(["import", "--arch", arch, "--dataset", "fashion-mnist", "--mean", mean, "--std", std])
        .arg(&weights)
        .arg("--out")
        .arg(&model));
    assert!(r.stdout.contains("wrote"), "{}", r.stdout);
    let r = ok(cmd().args(["inspect", "--json"]).arg(&model));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["dataset"], "fashion-mnist");

    let reference = read_f32(&probs);
    let max_diff = predict_vs_reference(&model, &images, &reference);
    assert!(max_diff <= 1e-5, "{arch}: imported model vs NumPy reference: max |difference| {max_diff}");

    // evaluate on the same 100 images counts what the reference's top classes say.
    let r = ok(cmd().args(["evaluate", "--json", "--limit", "100", "--tta", "none", "--model"]).arg(&model));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let correct = (0..IMAGES)
        .filter(|&i| {
            let row = &reference[i * 10..i * 10 + 10];
            let best = (0..10).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            best == images.labels[i] as usize
        })
        .count();
    assert_eq!(v["accuracy"].as_f64().unwrap(), correct as f64 / IMAGES as f64, "{v}");
    max_diff
}

#[test]
fn pytorch_sequential_weights_import_to_the_same_probabilities() {
    // nn.Sequential(Flatten, Linear, LeakyReLU, ...) saved as is: keys 1.weight, 1.bias, ...
    let mlp = import_matches_reference("mlp", "");
    // Our names (layers.0.weight) on the CNN: conv, pool, strides of PyTorch's layout.
    let cnn = import_matches_reference("cnn", "layers.");
    eprintln!("import: max |difference| mlp {mlp:.2e}, cnn {cnn:.2e}");
}

/// A scratchnet model file imports onto its own architecture as the same weights, and exports.
#[test]
fn a_model_file_round_trips_through_import() {
    let dir = tempfile::tempdir().unwrap();
    let mlp = Path::new(MODELS).join("fashion-mnist-mlp.safetensors");
    let back = dir.path().join("back.safetensors");
    let r = ok(cmd()
        .args(["import", "--arch", "mlp-dropout", "--dataset", "fashion-mnist"])
        .arg(&mlp)
        .arg("-o")
        .arg(&back));
    assert!(r.stdout.contains("layers.1.weight"), "{}", r.stdout);
    assert_eq!(common::tensors(&mlp), common::tensors(&back));
    let r = ok(cmd().args(["inspect"]).arg(&back));
    assert!(r.stdout.contains("imported") && r.stdout.contains("fashion-mnist-mlp.safetensors"), "{}", r.stdout);
}

/// The shipped models store their weights in half precision (F16; step counters I64), which NumPy's
/// reading of PyTorch's layout, ONNX Runtime (through the ONNX export) and scratchnet agree on;
/// `export --dtype f32` widens such a file exactly and `--dtype f16` narrows it back to the same
/// values.
#[test]
fn half_precision_model_files_read_the_same_everywhere() {
    let images = fashion_test_images();
    let dir = images.dir.path();
    let shipped = Path::new(MODELS).join("fashion-mnist-cnn.safetensors");
    for (name, dtype) in dtypes(&shipped) {
        let want =
            if name.ends_with("num_batches_tracked") { safetensors::Dtype::I64 } else { safetensors::Dtype::F16 };
        assert_eq!(dtype, want, "{name}");
    }
    let wide = dir.join("wide.safetensors");
    let r = ok(cmd().arg("export").arg(&shipped).args(["--dtype", "f32", "-o"]).arg(&wide));
    assert!(r.stdout.contains("(F16) -> ") && r.stdout.contains("(F32)"), "{}", r.stdout);
    assert!(dtypes(&wide).iter().all(|t| t.1 != safetensors::Dtype::F16));
    assert_eq!(common::tensors(&shipped), common::tensors(&wide));

    let half = dir.join("half.safetensors");
    let r = ok(cmd().arg("export").arg(&wide).args(["--format", "safetensors", "--dtype", "f16", "-o"]).arg(&half));
    assert!(r.stdout.contains("(F32) -> ") && r.stdout.contains("(F16)"), "{}", r.stdout);
    assert!(r.stderr.contains("evaluate --model"), "the accuracies recorded were measured before: {}", r.stderr);
    assert_eq!(common::tensors(&shipped), common::tensors(&half));
    let (full, halved) = (std::fs::metadata(&wide).unwrap().len(), std::fs::metadata(&half).unwrap().len());
    assert!(halved < full * 51 / 100, "{halved} vs {full} bytes");
    let info = ok(cmd().args(["inspect", "--json"]).arg(&half)).stdout;
    assert!(info.contains(r#""dtypes":["F16"]"#), "{info}");
    assert!(ok(cmd().arg("inspect").arg(&half)).stdout.contains("KiB, F16 weights)"));
    assert!(!ok(cmd().arg("inspect").arg(&wide)).stdout.contains("weights)"));

    let jsonl = dir.join("half-predict.jsonl");
    predict(&half, &images, "none", &jsonl);
    let n = IMAGES.to_string();
    eprintln!("NumPy reference, F16 file: {}", python(&[&"reference", &half, &images.raw, &n, &jsonl]));
    export_matches_predict(&half, &["--softmax"], "none", "probabilities");

    // ONNX stays float32; the ONNX-only flags have no meaning for a model file.
    let onnx = dir.join("half.onnx");
    fails(
        cmd().arg("export").arg(&half).args(["--dtype", "f16", "-o"]).arg(&onnx),
        "ONNX graphs are written in float32",
    );
    let other = dir.join("s.safetensors");
    fails(
        cmd().arg("export").arg(&half).args(["--softmax", "-o"]).arg(&other),
        "--softmax and --tta shape ONNX graphs",
    );
    assert!(!onnx.exists() && !other.exists());
}

#[test]
fn bad_input_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let not_model = d.join("notes.safetensors");
    std::fs::write(&not_model, "hello, not a model").unwrap();
    let onnx = d.join("m.onnx");
    fails(cmd().arg("export").arg(&not_model).arg("-o").arg(&onnx), "notes.safetensors: not a readable safetensors");
    assert!(!onnx.exists());
    let cnn = Path::new(MODELS).join("fashion-mnist-cnn.safetensors");
    fails(cmd().arg("export").arg(&cnn).args(["-o", "/nonexistent/dir/m.onnx"]), "--out /nonexistent/dir/m.onnx");
    fails(cmd().arg("export").arg(&cnn).args(["--tta", "hflip"]).arg("-o").arg(&onnx), "add --softmax");
    assert!(std::fs::read_dir(d).unwrap().count() == 1, "nothing written beside the input");

    // A PyTorch state_dict given where a model file is expected says how to import it.
    let weights = d.join("torch_mlp.safetensors");
    let views = scratchnet::model::presets::mlp_spec(0.0).param_shapes();
    let data: Vec<Vec<u8>> = views.iter().map(|(_, s)| vec![0u8; 4 * s.iter().product::<usize>()]).collect();
    let write = |path: &Path, names: &[(String, Vec<usize>)]| {
        let tv: Vec<(String, safetensors::tensor::TensorView<'_>)> = names
            .iter()
            .zip(&data)
            .map(|((n, s), b)| {
                (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())
            })
            .collect();
        std::fs::write(path, safetensors::serialize(tv, None).unwrap()).unwrap();
    };
    let sequential: Vec<_> = views.iter().map(|(n, s)| (n.replacen("layers.", "", 1), s.clone())).collect();
    write(&weights, &sequential);
    fails(cmd().args(["evaluate", "--model"]).arg(&weights), "`scratchnet import`");

    let import = |arch: &str, w: &Path, out: &Path| {
        let mut c = cmd();
        c.args(["import", "--arch", arch, "--dataset", "fashion-mnist"]).arg(w).arg("--out").arg(out);
        c
    };
    let out = d.join("m.safetensors");
    // Wrong network: the CNN has no 1.weight; the error lists what it expects.
    fails(&mut import("cnn", &weights, &out), "tensor 1.bias is not a parameter of this network; it expects 0.weight");
    // Wrong shape: names the tensor, its layer, both shapes.
    let mut transposed = sequential.clone();
    transposed[2].1.reverse();
    write(&weights, &transposed);
    fails(
        &mut import("mlp", &weights, &out),
        "tensor 3.weight (weight of Linear(128, 64)): expected shape [64, 128], found [128, 64]",
    );
    // An unknown key.
    let mut extra = sequential.clone();
    extra[5].0 = "5.running_mean".into();
    write(&weights, &extra);
    fails(&mut import("mlp", &weights, &out), "tensor 5.running_mean is not a parameter");
    // Not a safetensors file; a torch.save file; an unwritable output.
    fails(&mut import("mlp", &not_model, &out), "notes.safetensors: not a readable safetensors file");
    let pt = d.join("model.pt");
    std::fs::write(&pt, b"PK\x03\x04 a zip archive").unwrap();
    fails(&mut import("mlp", &pt, &out), "save_file(torch.load(");
    write(&weights, &sequential);
    fails(&mut import("mlp", &weights, Path::new("/nonexistent/m.safetensors")), "--out /nonexistent/m.safetensors");
    fails(&mut import("mlp-nope", &weights, &out), "unknown model 'mlp-nope'");
    assert!(!out.exists());
    ok(&mut import("mlp", &weights, &out));
    assert!(out.exists());
}

/// Files written by real PyTorch's `torch.save` (tests/data/torch/make.py, PyTorch 2.15): read
/// without running their pickle, they give PyTorch's own probabilities; a half-precision copy
/// gives the same weights rounded; a whole pickled module is refused.
#[test]
fn torch_save_files_import_to_pytorchs_probabilities() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let torch = data.join("torch");
    let images = test_images(data.join("mnist").to_str().unwrap());
    let dir = images.dir.path();
    let import = |file: &str, out: &Path| {
        let mut c = cmd();
        c.args(["import", "--dataset", "mnist", "--arch"]).arg(torch.join("tiny.json")).arg(torch.join(file));
        c.arg("--out").arg(out);
        c
    };
    let model = dir.join("tiny.safetensors");
    let r = ok(&mut import("tiny.pt", &model));
    assert!(r.stdout.contains("4 tensors (2010 parameters, nn.Sequential numbering (1.weight), F32)"), "{}", r.stdout);

    let max_diff = predict_vs_reference(&model, &images, &read_f32(&torch.join("tiny-probs.f32")));
    eprintln!("torch.save import vs PyTorch: max |difference| {max_diff:.2e}");
    assert!(max_diff <= 1e-5, "imported torch.save file vs PyTorch: max |difference| {max_diff}");

    let half = dir.join("half.safetensors");
    assert!(ok(&mut import("tiny-half.pt", &half)).stdout.contains("F16"));
    for ((name, a), (_, b)) in common::tensors(&model).into_iter().zip(common::tensors(&half)) {
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= x.abs() * 2f32.powi(-11) + 6e-8, "{name}: {x} as half is {y}");
        }
    }
    fails(&mut import("tiny-model.pt", &dir.join("x.safetensors")), "refers to torch.nn.modules.container.Sequential");
}

/// A file's tensors as stored: (name, dtype, shape, values as f64).
fn stored(path: &Path) -> Vec<(String, safetensors::Dtype, Vec<usize>, Vec<f64>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let values = match v.dtype() {
                safetensors::Dtype::I64 => {
                    v.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64).collect()
                }
                safetensors::Dtype::F32 => {
                    v.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64).collect()
                }
                d => panic!("{n}: dtype {d:?}"),
            };
            (n, v.dtype(), v.shape().to_vec(), values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A safetensors file's tensors' names and data types.
fn dtypes(path: &Path) -> Vec<(String, safetensors::Dtype)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors().into_iter().map(|(n, v)| (n, v.dtype())).collect()
}

/// A model file's parameters and buffers (running statistics, step counters), by name.
fn state(path: &Path) -> Vec<(String, Vec<f32>)> {
    let m = scratchnet::model_file::load(path).unwrap();
    m.model.named_state().into_iter().map(|(n, t)| (n, t.to_vec().unwrap())).collect()
}

/// `tensors` as a plain state_dict file (no metadata), renamed by `rename`, leaving out those it maps to None.
fn write_state_dict(
    path: &Path,
    tensors: &[(String, safetensors::Dtype, Vec<usize>, Vec<f64>)],
    rename: impl Fn(&str) -> Option<String>,
) {
    let data: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .filter_map(|(n, d, s, v)| {
            let bytes = match d {
                safetensors::Dtype::I64 => v.iter().flat_map(|&x| (x as i64).to_le_bytes()).collect(),
                _ => v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect(),
            };
            Some((rename(n)?, *d, s.clone(), bytes))
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// conv → batch_norm2d → relu → avg_pool2d → conv → batch_norm2d → relu → global average pool →
/// flatten → linear → batch_norm1d → relu → linear.
const BN_SPEC: &str = r#"{"input": [1, 28, 28], "layers": [
    {"type": "conv2d", "in_channels": 1, "out_channels": 8, "kernel_size": 3, "padding": 1},
    {"type": "batch_norm2d", "num_features": 8},
    {"type": "relu"},
    {"type": "avg_pool2d", "kernel_size": 2},
    {"type": "conv2d", "in_channels": 8, "out_channels": 16, "kernel_size": 3, "padding": 1},
    {"type": "batch_norm2d", "num_features": 16, "eps": 0.001, "momentum": 0.2},
    {"type": "relu"},
    {"type": "adaptive_avg_pool2d", "output_size": 1},
    {"type": "flatten"},
    {"type": "linear", "in_features": 16, "out_features": 32},
    {"type": "batch_norm1d", "num_features": 32},
    {"type": "relu"},
    {"type": "linear", "in_features": 32, "out_features": 10}
]}"#;

/// A batch-norm network trained briefly by `scratchnet train` on 320 Fashion-MNIST images (so its
/// running statistics are the data's, not 0 and 1): its file holds the counters as int64; ONNX
/// Runtime and a NumPy reference of PyTorch's eval-mode definitions give predict's probabilities;
/// its state_dict imports back (our names, nn.Sequential's, and without counters as older
/// PyTorch wrote them) to the same state and the same predictions.
#[test]
fn batch_norm_network_trained_by_the_cli_exports_and_imports_back() {
    let images = fashion_test_images();
    let dir = images.dir.path();
    let spec = dir.join("bn.json");
    std::fs::write(&spec, BN_SPEC).unwrap();
    let model = dir.join("bn.safetensors");
    ok(cmd()
        .args(["train", "--dataset", "fashion-mnist", "--limit", "320", "--epochs", "2", "--batch-size", "32"])
        .args(["--lr", "0.05", "--l2", "0.001", "--decay-norm", "--quiet", "--model"])
        .arg(&spec)
        .arg("--out")
        .arg(&model));
    let r = ok(cmd().args(["inspect", "--json"]).arg(&model));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["training"]["config"]["decay_norm"], true, "{v}");
    // The same run without --decay-norm: batch norms' scales and shifts are not decayed, so they end elsewhere.
    let plain = dir.join("plain.safetensors");
    ok(cmd()
        .args(["train", "--dataset", "fashion-mnist", "--limit", "320", "--epochs", "2", "--batch-size", "32"])
        .args(["--lr", "0.05", "--l2", "0.001", "--quiet", "--model"])
        .arg(&spec)
        .arg("--out")
        .arg(&plain));
    let (with, without) = (state(&model), state(&plain));
    assert_eq!((&with[2].0, &with[0].0), (&"layers.1.weight".to_string(), &"layers.0.weight".to_string()));
    assert_ne!(with[2].1, without[2].1, "--decay-norm changed nothing");
    // 10 batches an epoch, 2 epochs.
    let norms: Vec<(u64, u64)> = v["running_statistics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["layer"].as_u64().unwrap(), n["num_batches_tracked"].as_u64().unwrap()))
        .collect();
    assert_eq!(norms, [(1, 20), (5, 20), (10, 20)]);
    let r = ok(cmd().arg("inspect").arg(&model));
    assert!(r.stdout.contains("16 params + running mean/var (20 batches)"), "{}", r.stdout);
    assert!(r.stdout.contains("running statistics: 112 values in 3 batch norms"), "{}", r.stdout);

    let tensors = stored(&model);
    for (name, dtype, shape, values) in &tensors {
        if name.ends_with("num_batches_tracked") {
            assert_eq!((*dtype, shape.as_slice(), values.as_slice()), (safetensors::Dtype::I64, &[][..], &[20.0][..]));
        } else if name.ends_with("running_var") {
            assert!(values.iter().all(|&v| v > 0.0) && values.iter().any(|&v| (v - 1.0).abs() > 0.05), "{name}");
        } else if name.ends_with("running_mean") {
            assert!(values.iter().any(|&v| v.abs() > 0.01), "{name}: {values:?}");
        }
    }

    // (a) ONNX Runtime: BatchNormalization, AveragePool, GlobalAveragePool.
    export_matches_predict(&model, &["--softmax"], "none", "probabilities");
    export_matches_predict(&model, &[], "none", "logits");

    // (b) The NumPy reference, from the file alone.
    let jsonl = dir.join("bn-predict.jsonl");
    predict(&model, &images, "none", &jsonl);
    let n = IMAGES.to_string();
    eprintln!("NumPy reference: {}", python(&[&"reference", &model, &images.raw, &n, &jsonl]));
    let predictions = std::fs::read_to_string(&jsonl).unwrap();

    // (c) Imported back: the model file itself, then plain state_dicts.
    let reimport = |weights: &Path, out: &Path| {
        let r = ok(cmd()
            .args(["import", "--arch"])
            .arg(&spec)
            .args(["--dataset", "fashion-mnist"])
            .arg(weights)
            .arg("-o")
            .arg(out));
        let again = dir.join("again.jsonl");
        predict(out, &images, "none", &again);
        assert_eq!(std::fs::read_to_string(&again).unwrap(), predictions, "{}", weights.display());
        r.stdout
    };
    let back = dir.join("back.safetensors");
    let out = reimport(&model, &back);
    assert!(
        out.contains(
            "23 tensors (2234 parameters and the running statistics of 3 batch norms, scratchnet / state_dict names"
        ) && out.contains("F32+I64"),
        "{out}"
    );
    assert_eq!(state(&back), state(&model));

    let sequential = dir.join("sequential.safetensors");
    write_state_dict(&sequential, &tensors, |n| Some(n.replacen("layers.", "", 1)));
    let out = reimport(&sequential, &back);
    assert!(out.contains("nn.Sequential numbering (1.weight)"), "{out}");
    assert_eq!(state(&back), state(&model));

    // PyTorch before 0.4.1 kept no num_batches_tracked: taken as 0, said so, same predictions.
    let old = dir.join("old.safetensors");
    write_state_dict(&old, &tensors, |n| (!n.ends_with("num_batches_tracked")).then(|| n.replacen("layers.", "", 1)));
    let out = reimport(&old, &back);
    assert!(
        out.contains("20 tensors")
            && out.contains("no 1.num_batches_tracked, 5.num_batches_tracked, 10.num_batches_tracked in the file"),
        "{out}"
    );
    for ((name, a), (_, b)) in state(&back).into_iter().zip(state(&model)) {
        if name.ends_with("num_batches_tracked") {
            assert_eq!((a, b), (vec![0.0], vec![20.0]));
        } else {
            assert_eq!(a, b, "{name}");
        }
    }

    // A running variance that is negative, and a counter of the wrong type, are refused by name.
    let mut bad = tensors.clone();
    bad.iter_mut().find(|t| t.0 == "layers.5.running_var").unwrap().3[3] = -1.0;
    write_state_dict(&old, &bad, |n| Some(n.to_string()));
    let import = |w: &Path| {
        let mut c = cmd();
        c.args(["import", "--dataset", "fashion-mnist", "--arch"])
            .arg(&spec)
            .arg(w)
            .arg("-o")
            .arg(dir.join("x.safetensors"));
        c
    };
    fails(
        &mut import(&old),
        "tensor layers.5.running_var (running_var of BatchNorm2d(16, eps=0.001, momentum=0.2)) holds negative values",
    );
    let mut bad = tensors.clone();
    bad.retain(|t| t.0 != "layers.10.running_mean");
    write_state_dict(&old, &bad, |n| Some(n.to_string()));
    fails(
        &mut import(&old),
        "tensor layers.10.running_mean (running_mean of BatchNorm1d(32, eps=0.00001, momentum=0.1)) is missing",
    );
    assert!(!dir.join("x.safetensors").exists());
}

/// A batch-norm network's state_dict written by real PyTorch's `torch.save` (tests/data/torch/
/// make_bn.py: running statistics after 6 training-mode passes, num_batches_tracked a
/// 0-dimensional int64 in a LongStorage) imports to PyTorch's eval-mode probabilities.
#[test]
fn torch_save_batch_norm_file_imports_to_pytorchs_probabilities() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let torch = data.join("torch");
    let images = test_images(data.join("mnist").to_str().unwrap());
    let model = images.dir.path().join("tiny-bn.safetensors");
    let r = ok(cmd()
        .args(["import", "--dataset", "mnist", "--arch"])
        .arg(torch.join("tiny-bn.json"))
        .arg(torch.join("tiny-bn.pt"))
        .arg("--out")
        .arg(&model));
    assert!(
        r.stdout.contains(
            "23 tensors (520 parameters and the running statistics of 3 batch norms, nn.Sequential numbering \
             (1.weight), F32+I64)"
        ),
        "{}",
        r.stdout
    );
    let counters: Vec<f64> =
        stored(&model).into_iter().filter(|t| t.0.ends_with("num_batches_tracked")).flat_map(|t| t.3).collect();
    assert_eq!(counters, [6.0, 6.0, 6.0]);
    let max_diff = predict_vs_reference(&model, &images, &read_f32(&torch.join("tiny-bn-probs.f32")));
    eprintln!("torch.save batch-norm import vs PyTorch: max |difference| {max_diff:.2e}");
    assert!(max_diff <= 1e-5, "imported torch.save batch-norm file vs PyTorch: max |difference| {max_diff}");
}
