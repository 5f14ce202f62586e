//! Interop both ways (issue 17), end to end through the binary:
//! - export: the shipped CNN and MLP written as ONNX pass `onnx.checker` and ONNX Runtime gives
//!   the probabilities `scratchnet predict` prints for 100 Fashion-MNIST test images, within 1e-5
//!   (tests/interop.py);
//! - import: weights written in PyTorch's state_dict layout by NumPy alone, imported, give in
//!   `predict` the probabilities PyTorch's layer definitions give (NumPy reference), within 1e-5;
//!   files written by real PyTorch's `torch.save` (tests/data/torch/) give PyTorch's probabilities;
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
    std::fs::write(&spec, serde_json::to_string(&scratchnet::model::preset(arch).unwrap().spec).unwrap()).unwrap();
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
