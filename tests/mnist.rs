//! MNIST end to end from the installed files (`scratchnet download mnist` puts the official 70,000
//! images in `data/mnist/`, md5 sums checked): training, the built-in MNIST model that `evaluate` and `predict` pick for
//! digits, and the shipped MNIST models' accuracy on the real test set.

mod common;

use std::path::{Path, PathBuf};

use common::{cmd, ok, run};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The full MNIST, as `--dataset mnist` finds it from the repository.
fn mnist_dir() -> PathBuf {
    let dir = root().join("data/mnist");
    assert!(
        dir.join("train-images-idx3-ubyte").is_file() || dir.join("train-images-idx3-ubyte.gz").is_file(),
        "the MNIST training images are not in {}: run `cargo run --release -- download mnist` here",
        dir.display()
    );
    dir
}

fn json(r: &common::Run) -> serde_json::Value {
    serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

#[test]
fn an_mlp_learns_digits_in_two_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let r = ok(cmd()
        .current_dir(root())
        .args(["train", "--model", "mlp-dropout", "--dataset", "mnist", "--epochs", "2"])
        .args(["--quiet".as_ref(), "--out".as_ref(), out.as_os_str()]));
    assert!(r.stderr.contains(&mnist_dir().display().to_string()) || r.stderr.contains("data/mnist"), "{}", r.stderr);
    let v = json(&ok(cmd().current_dir(root()).args(["evaluate", "--json", "--model"]).arg(&out)));
    assert_eq!(v["examples"], 10000);
    let acc = v["accuracy"].as_f64().unwrap();
    assert!(acc > 0.95, "mlp-dropout after 2 epochs of MNIST: {acc}");
}

#[test]
fn cnn_presets_do_not_mirror_digits() {
    let dir = tempfile::tempdir().unwrap();
    mnist_dir();
    let out = dir.path().join("c.safetensors");
    let r = ok(cmd()
        .current_dir(root())
        .args(["train", "--model", "cnn-fast", "--dataset", "mnist", "--epochs", "1", "--limit", "256", "--quiet"])
        .arg("--out")
        .arg(&out));
    assert!(r.stderr.contains("cnn-fast: left-right flips are off on digits"), "{}", r.stderr);
    let info = json(&ok(cmd().args(["inspect", "--json"]).arg(&out)));
    assert_eq!(info["training"]["config"]["augment"]["hflip"], false, "{info}");
    let r = ok(cmd()
        .current_dir(root())
        .args([
            "train",
            "--model",
            "mlp",
            "--dataset",
            "mnist",
            "--epochs",
            "1",
            "--limit",
            "256",
            "--quiet",
            "--hflip",
        ])
        .arg("--out")
        .arg(&out));
    assert!(r.stderr.contains("warning: --hflip on digits"), "{}", r.stderr);
}

/// `evaluate --dataset mnist` and `predict --dataset mnist` read digits with the built-in MNIST
/// CNN, not the clothing one; the MNIST test set committed in tests/data/mnist is enough.
#[test]
fn digits_pick_the_built_in_mnist_model() {
    let test_dir = root().join("tests/data/mnist");
    let v = json(&ok(cmd().args(["evaluate", "--json", "--dataset", "mnist", "--data-dir"]).arg(&test_dir)));
    assert_eq!(v["model"], "built-in models/mnist-cnn.safetensors", "{v}");
    assert_eq!(v["examples"], 10000);
    assert!(v["accuracy"].as_f64().unwrap() >= 0.996, "{v}");

    let test = scratchnet::data::discover::load(test_dir.to_str().unwrap(), None).unwrap().test.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 0..20 {
        // As a drawing: dark ink on white, larger, off-centre.
        let img = image::GrayImage::from_raw(28, 28, test.image(i).to_vec()).unwrap();
        let up = image::imageops::resize(&img, 84, 84, image::imageops::FilterType::Triangle);
        let mut page = image::GrayImage::from_pixel(160, 120, image::Luma([250]));
        for (x, y, p) in up.enumerate_pixels() {
            page.put_pixel(x + 50, y + 20, image::Luma([255 - p.0[0]]));
        }
        let path = dir.path().join(format!("digit{i}.png"));
        page.save(&path).unwrap();
        files.push(path);
    }
    let r = ok(cmd().args(["predict", "--json", "--dataset", "mnist"]).args(&files));
    let right = r
        .stdout
        .lines()
        .zip(&test.labels)
        .filter(|&(l, &y)| serde_json::from_str::<serde_json::Value>(l).unwrap()["top"][0]["index"] == y as u64)
        .count();
    assert!(right >= 19, "{right}/20 drawn test digits right: {}", r.stdout);
    let one = ok(cmd().args(["predict", "--dataset", "mnist"]).arg(&files[0]));
    assert!(one.stdout.contains(&format!("digit0.png: {}", test.labels[0])), "{}", one.stdout);

    let r = run(cmd().args(["predict", "--dataset", "digits"]).arg(&files[0]));
    assert!(r.code != 0 && r.stderr.contains("--dataset digits: expected mnist or fashion-mnist"), "{}", r.stderr);
    let info = json(&ok(cmd().args(["inspect", "--json", "--dataset", "mnist"])));
    assert_eq!(info["dataset"], "mnist");
}

/// The shipped MNIST models on the real test set, measured here, against what their records say.
#[test]
fn shipped_mnist_models_score_what_their_records_say() {
    let test_dir = root().join("tests/data/mnist");
    for (file, floor) in [("mnist-cnn", 0.996), ("mnist-mlp", 0.975)] {
        let path = root().join(format!("models/{file}.safetensors"));
        let v = json(&ok(cmd().args(["evaluate", "--json", "--dataset"]).arg(&test_dir).arg("--model").arg(&path)));
        let acc = v["accuracy"].as_f64().unwrap();
        assert!(acc >= floor, "{file}: {acc} on the MNIST test set");
        let info = json(&ok(cmd().args(["inspect", "--json"]).arg(&path)));
        let t = &info["training"];
        assert_eq!(info["dataset"], "mnist");
        assert!(t["command"].as_str().unwrap().starts_with("scratchnet train --model"), "{t}");
        assert!((t["final_test_accuracy"].as_f64().unwrap() - acc).abs() < 1e-9, "{t} vs {acc}");
    }
}
