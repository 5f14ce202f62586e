//! The models shipped in `models/`: the Fashion-MNIST CNN built into the binary as the default
//! model of `evaluate`, `predict` and `inspect` (`cnn-best`), the original network's best, the
//! fast recipe's and the best MLP. Their accuracy is measured here on the real Fashion-MNIST test
//! set, not read from their metadata.

use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

/// The original project's published test accuracy for its CNN. Its recipe reaches 93.35% here in
/// PyTorch (docs/REFERENCE.md) and 93.32% in scratchnet; the shipped CNNs of that network (an
/// improved recipe, see docs/RESULTS.md) and of `cnn-best` must beat the published figure.
const ORIGINAL_PUBLISHED_TEST_ACCURACY: f64 = 0.9417;

/// The built-in `cnn-best` model scored 95.04% on the test set after 33.6 minutes of training
/// passes (docs/RESULTS.md); the goal was 95% within about two hours.
const BEST_ACCURACY_FLOOR: f64 = 0.95;
const BEST_BUDGET_SECONDS: f64 = 7200.0;

fn cmd() -> Command {
    let mut c = Command::cargo_bin("scratchnet").unwrap();
    c.env_remove("SCRATCHNET_DATA");
    c
}

fn stdout_of(c: &mut Command) -> String {
    let out = c.output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    stdout.into_owned()
}

fn json_of(c: &mut Command) -> serde_json::Value {
    serde_json::from_str(stdout_of(c).trim()).unwrap()
}

#[test]
fn built_in_cnn_is_the_best_one_and_scores_what_its_record_says() {
    let v = json_of(cmd().args(["evaluate", "--json"]));
    assert!(v["model"].as_str().unwrap().starts_with("built-in"), "{v}");
    assert_eq!(v["examples"], 10000);
    let acc = v["accuracy"].as_f64().unwrap();
    // (The floor is above the original's published 94.17%.)
    assert!(acc >= BEST_ACCURACY_FLOOR, "built-in CNN: {acc} on the test set");
    assert_eq!(v["tta"], "hflip", "the built-in CNN predicts with its mirror image, as its file says");

    // The record in the file says how it was made, and its test figure is the one measured now.
    let info = json_of(cmd().args(["inspect", "--json"]));
    let t = &info["training"];
    assert!(t["command"].as_str().unwrap().starts_with("scratchnet train --model cnn-best"), "{t}");
    assert_eq!(t["preset"], "cnn-best");
    assert!(t["wall_seconds"].as_f64().unwrap() > 0.0 && !t["machine"].as_str().unwrap().is_empty());
    let secs = t["training_seconds"].as_f64().unwrap();
    assert!(secs > 0.0 && secs <= BEST_BUDGET_SECONDS, "training passes took {secs} s");
    assert!(t["final_train_accuracy"].as_f64().unwrap() > 0.9);
    assert!((t["final_test_accuracy"].as_f64().unwrap() - acc).abs() < 1e-9, "{t} vs {acc}");
    let preset = scratchnet::train::preset("cnn-best").unwrap();
    assert_eq!(info["parameters"], preset.spec.num_params());
}

/// The original network (`cnn-plus`, the default model until `cnn-best`) still ships: 94.60%.
#[test]
fn shipped_cnn_of_the_original_network_beats_the_original_published_accuracy() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/fashion-mnist-cnn.safetensors");
    let v = json_of(cmd().args(["evaluate", "--json", "--model", path]));
    let acc = v["accuracy"].as_f64().unwrap();
    assert!(acc > ORIGINAL_PUBLISHED_TEST_ACCURACY, "shipped cnn-plus model: {acc} on the test set");
    assert_eq!(v["tta"], "hflip");
    let info = json_of(cmd().args(["inspect", "--json", path]));
    let t = &info["training"];
    assert!(t["command"].as_str().unwrap().starts_with("scratchnet train --model cnn-plus"), "{t}");
    assert!((t["final_test_accuracy"].as_f64().unwrap() - acc).abs() < 1e-9, "{t} vs {acc}");
    assert_eq!(info["parameters"], 1736714);
}

#[test]
fn shipped_mlp_scores_what_its_record_says() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/fashion-mnist-mlp.safetensors");
    let v = json_of(cmd().args(["evaluate", "--json", "--model", path]));
    let acc = v["accuracy"].as_f64().unwrap();
    assert!(acc > 0.88, "shipped MLP: {acc}");
    let info = json_of(cmd().args(["inspect", "--json", path]));
    assert!((info["training"]["final_test_accuracy"].as_f64().unwrap() - acc).abs() < 1e-9);
    assert_eq!(info["parameters"], 109386);
}

/// The shipped `cnn-fast` model scored 94.26% after 581 s of training passes (docs/RESULTS.md): more than
/// the 94.2% it was made for, within the 10 minutes.
const FAST_ACCURACY_FLOOR: f64 = 0.942;
const FAST_BUDGET_SECONDS: f64 = 600.0;

#[test]
fn shipped_fast_cnn_scores_what_its_record_says_after_ten_minutes_of_training() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/fashion-mnist-cnn-fast.safetensors");
    let v = json_of(cmd().args(["evaluate", "--json", "--model", path]));
    assert_eq!(v["examples"], 10000);
    let acc = v["accuracy"].as_f64().unwrap();
    assert!(acc > FAST_ACCURACY_FLOOR, "shipped cnn-fast: {acc} on the test set");
    assert_eq!(v["tta"], "hflip");
    let info = json_of(cmd().args(["inspect", "--json", path]));
    let t = &info["training"];
    assert!(t["command"].as_str().unwrap().starts_with("scratchnet train --model cnn-fast"), "{t}");
    assert_eq!(t["preset"], "cnn-fast");
    assert_eq!(t["threads"], 2, "{t}");
    let secs = t["training_seconds"].as_f64().unwrap();
    assert!(secs > 0.0 && secs <= FAST_BUDGET_SECONDS, "training passes took {secs} s");
    assert!((t["final_test_accuracy"].as_f64().unwrap() - acc).abs() < 1e-9, "{t} vs {acc}");
    // The network is the preset's, batch norms and their running statistics included.
    let preset = scratchnet::train::preset("cnn-fast").unwrap();
    assert_eq!(info["parameters"], preset.spec.num_params());
}

#[test]
fn predict_without_a_model_uses_the_built_in_cnn() {
    let dir = tempfile::tempdir().unwrap();
    let test = scratchnet::data::discover::load("fashion-mnist", None).unwrap().test.unwrap();
    let (mut raw, mut photos) = (Vec::new(), Vec::new());
    for i in 0..40 {
        let img = image::GrayImage::from_raw(28, 28, test.image(i).to_vec()).unwrap();
        let path = dir.path().join(format!("item{i}.png"));
        img.save(&path).unwrap();
        raw.push(path);
        // As a user's photo: dark on a light background, larger, off-centre margins, JPEG.
        let mut big = image::RgbImage::from_pixel(150, 120, image::Rgb([248, 248, 244]));
        let up = image::imageops::resize(&img, 90, 90, image::imageops::FilterType::Triangle);
        for (x, y, p) in up.enumerate_pixels() {
            let v = 255 - p.0[0];
            big.put_pixel(x + 36, y + 14, image::Rgb([v, v, v.saturating_sub(4)]));
        }
        let path = dir.path().join(format!("photo{i}.jpg"));
        big.save(&path).unwrap();
        photos.push(path);
    }
    let truth = &test.labels[..40];
    let right = |files: &[std::path::PathBuf], extra: &[&str]| {
        let out = stdout_of(cmd().args(["predict", "--json"]).args(extra).args(files));
        let top: Vec<u64> = out
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["top"][0]["index"].as_u64().unwrap())
            .collect();
        assert_eq!(top.len(), files.len());
        top.iter().zip(truth).filter(|(p, t)| **p == **t as u64).count()
    };
    let raw_right = right(&raw, &["--raw"]);
    assert!(raw_right >= 36, "{raw_right}/40 test images right");
    let photo_right = right(&photos, &[]);
    assert!(photo_right >= 28, "{photo_right}/40 photo-like pictures right");
    let line = stdout_of(cmd().arg("predict").arg(&raw[0]));
    assert!(line.contains("item0.png: Ankle boot"), "{line}");
}

/// The fast convolution path and the original's im2col path give the same predictions.
#[test]
fn im2col_reference_path_agrees_with_the_default() {
    let run = |extra: &[&str]| json_of(cmd().args(["evaluate", "--json", "--limit", "1000"]).args(extra));
    let (fast, reference) = (run(&[]), run(&["--im2col"]));
    assert_eq!(fast["confusion"], reference["confusion"]);
    assert!((fast["loss"].as_f64().unwrap() - reference["loss"].as_f64().unwrap()).abs() < 1e-5);
}
