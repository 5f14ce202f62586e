//! `scratchnet import net.pkl`: networks pickled as the original NumPy/CuPy project saves them
//! (written at test time by tests/data/original/make_pickles.py, whose classes carry the original's
//! module, class and attribute names and trained objects' caches) import to a model file whose
//! probabilities are NumPy's forward pass's within 1e-5: every pickle protocol, float32 and
//! float64, Fortran-order and CuPy-style arrays, a CNN and MLPs on Fashion-MNIST and MNIST. Files
//! that are truncated, name code to run, hold an unknown layer or layers that do not chain are
//! refused in one line, writing nothing.
//!
//! Needs `python3 -m pip install numpy` (done by .ci/run).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use scratchnet::data::{Dataset, discover};
use scratchnet::model::Tta;

mod common;
use common::{cmd, fails, ok};

const IMAGES: usize = 100;
const TOLERANCE: f32 = 1e-5;

/// The pickles and references, written once for all tests.
fn pickles() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mnist");
        for (name, dataset) in [("fashion.u8", "fashion-mnist"), ("mnist.u8", mnist.to_str().unwrap())] {
            std::fs::write(dir.path().join(name), &test_set(dataset).images[..IMAGES * 784]).unwrap();
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/original/make_pickles.py");
        let out = Command::new("python3")
            .arg(script)
            .arg(dir.path())
            .arg(dir.path().join("fashion.u8"))
            .arg(dir.path().join("mnist.u8"))
            .arg(IMAGES.to_string())
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{}\n{}\n(the check needs: python3 -m pip install numpy)",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
    .path()
}

fn test_set(dataset: &str) -> Dataset {
    let (_, layout, kind) = discover::locate(dataset, None).expect("the test set");
    discover::load_split(layout.test.as_ref().unwrap(), kind).unwrap().take(IMAGES)
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path).unwrap().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

/// Imports `pkl` for `dataset` and returns the model file and the largest difference between its
/// probabilities and NumPy's (`reference`.probs.f32) on the data set's images.
fn import(pkl: &str, dataset: &str, reference: &str) -> (PathBuf, f32) {
    let dir = pickles();
    let out = dir.join(format!("{pkl}.safetensors"));
    let r = ok(cmd().arg("import").arg(dir.join(pkl)).args(["--dataset", dataset, "--out"]).arg(&out));
    assert!(r.stdout.contains("the original project's network") && r.stdout.contains("wrote"), "{}", r.stdout);
    let mut loaded = scratchnet::model_file::load(&out).unwrap();
    assert_eq!(loaded.info.dataset, dataset);
    let images = std::fs::read(dir.join(if dataset == "mnist" { "mnist.u8" } else { "fashion.u8" })).unwrap();
    let want = read_f32(&dir.join(format!("{reference}.probs.f32")));
    let mut max_diff = 0f32;
    for i in 0..IMAGES {
        let px = &images[i * 784..(i + 1) * 784];
        let p = scratchnet::classify::probabilities(&mut loaded.model, &loaded.info, px, Tta::None).unwrap();
        for (a, b) in p.iter().zip(&want[i * 10..(i + 1) * 10]) {
            max_diff = max_diff.max((a - b).abs());
        }
    }
    assert!(max_diff <= TOLERANCE, "{pkl}: imported model vs NumPy's forward pass: max |difference| {max_diff}");
    (out, max_diff)
}

#[test]
fn the_cnn_imports_from_every_protocol_to_numpys_probabilities() {
    for pkl in ["cnn.pkl", "cnn-p0.pkl", "cnn-p1.pkl", "cnn-p2.pkl", "cnn-p5.pkl", "cnn-f32.pkl", "cnn-cupy.pkl"] {
        let (out, diff) = import(pkl, "fashion-mnist", "cnn");
        eprintln!("{pkl}: max |difference| {diff:.2e}");
        let spec = scratchnet::model_file::load(&out).unwrap().info.spec;
        let layers: Vec<String> = spec.layers.iter().map(|l| l.describe()).collect();
        assert_eq!(layers[0], "Conv2d(1, 4, kernel_size=3, stride=1, padding=0)");
        assert_eq!(layers[4], "MaxPool2d(kernel_size=2, stride=2)");
        assert_eq!(layers[12], "LeakyReLU(0.05)");
        assert_eq!(layers.last().unwrap(), "Linear(32, 10)");
    }
    // evaluate reads the file and counts what the reference's top classes say.
    let (out, _) = import("cnn.pkl", "fashion-mnist", "cnn");
    let r = ok(cmd().args(["evaluate", "--json", "--limit", "100", "--tta", "none", "--model"]).arg(&out));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let reference = read_f32(&pickles().join("cnn.probs.f32"));
    let labels = test_set("fashion-mnist").labels;
    let correct = (0..IMAGES)
        .filter(|&i| {
            let row = &reference[i * 10..i * 10 + 10];
            (0..10).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap() == labels[i] as usize
        })
        .count();
    assert_eq!(v["accuracy"].as_f64().unwrap(), correct as f64 / IMAGES as f64, "{v}");
    let r = ok(cmd().args(["inspect", "--json"]).arg(&out));
    assert!(r.stdout.contains("original project's pickled layer list"), "{}", r.stdout);
}

#[test]
fn mlps_import_for_fashion_mnist_and_mnist() {
    for (pkl, dataset, reference) in [
        ("mlp.pkl", "fashion-mnist", "mlp"),
        ("mlp-p2.pkl", "fashion-mnist", "mlp"),
        ("mlp-mnist.pkl", "mnist", "mlp-mnist"),
    ] {
        let (out, diff) = import(pkl, dataset, reference);
        eprintln!("{pkl}: max |difference| {diff:.2e}");
        let spec = scratchnet::model_file::load(&out).unwrap().info.spec;
        let layers: Vec<String> = spec.layers.iter().map(|l| l.describe()).collect();
        assert_eq!(layers[..3], ["Flatten()", "Linear(784, 128)", "LeakyReLU(0.01)"]);
    }
}

/// Runs a refused import: one line on stderr holding every one of `needles`, nothing written.
fn refused(file: &Path, args: &[&str], needles: &[&str]) -> String {
    let out = pickles().join("refused.safetensors");
    let r = fails(cmd().arg("import").arg(file).args(args).arg("--out").arg(&out), needles[0]);
    for n in needles {
        assert!(r.stderr.contains(n), "expected '{n}' in: {}", r.stderr);
    }
    assert!(!out.exists(), "{} written for a refused file", out.display());
    r.stderr
}

#[test]
fn bad_pickles_are_refused_in_one_line() {
    let dir = pickles();
    let fashion = ["--dataset", "fashion-mnist"];
    let one_line = |e: &str| assert_eq!(e.trim_end().lines().count(), 1, "{e}");

    let bytes = std::fs::read(dir.join("cnn.pkl")).unwrap();
    for cut in [1, 100, bytes.len() / 3, bytes.len() - 1] {
        let truncated = dir.join("truncated.pkl");
        std::fs::write(&truncated, &bytes[..cut]).unwrap();
        one_line(&refused(&truncated, &fashion, &["truncated.pkl: the pickle ends early (a truncated file?)"]));
    }
    let e =
        refused(&dir.join("evil.pkl"), &fashion, &["evil.pkl: the pickle tries to run code: it calls posix.system"]);
    one_line(&e);
    assert!(e.contains("nothing in it was run") && !e.contains("torch.load(") && !e.contains("pickle.load("), "{e}");
    one_line(&refused(
        &dir.join("unknown.pkl"),
        &fashion,
        &["refers to activation_functions.Tanh, which is not one of the original project's layers"],
    ));
    one_line(&refused(
        &dir.join("nochain.pkl"),
        &fashion,
        &["layer 11 (Dense): takes input 288 values, but layer 10 (Reshape) gives 200 values: the layers do not chain"],
    ));
    // --arch belongs to state_dicts.
    refused(&dir.join("mlp.pkl"), &["--dataset", "mnist", "--arch", "mlp"], &["--arch is not used with"]);
}

#[test]
fn torch_files_that_run_code_get_no_advice_that_loads_them() {
    let dir = pickles();
    let args = ["--arch", "mlp", "--dataset", "fashion-mnist"];
    for (file, needle) in [
        ("evil.pt", "evil.pt: data.pkl tries to run code: it calls posix.system"),
        ("evil-legacy.pt", "evil-legacy.pt: a bare pickle that tries to run code: it calls posix.system"),
    ] {
        let e = refused(&dir.join(file), &args, &[needle, "Do not load this file in Python"]);
        assert!(!e.contains("torch.load(") && !e.contains("save_file("), "{e}");
    }
    // A state_dict file that does not run code still gets the conversion, with weights_only=True.
    let torch = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/torch/tiny-model.pt");
    let e = refused(&torch, &args, &["weights_only=True"]);
    assert!(!e.contains("tries to run code"), "{e}");
}
