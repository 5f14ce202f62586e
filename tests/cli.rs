//! The `scratchnet` command on real Fashion-MNIST and MNIST files.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

mod common;
use common::{Run, cmd, fails, ok, tensors};

/// A directory kept for the whole test run, with a 1-epoch MLP trained on all of Fashion-MNIST.
fn trained() -> &'static (tempfile::TempDir, PathBuf, serde_json::Value) {
    static T: OnceLock<(tempfile::TempDir, PathBuf, serde_json::Value)> = OnceLock::new();
    T.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("mlp.safetensors");
        let metrics = dir.path().join("run.jsonl");
        let plot = dir.path().join("curves.png");
        let r = ok(cmd()
            .args(["train", "--model", "mlp-dropout", "--dataset", "fashion-mnist", "--epochs", "1", "--quiet"])
            .arg("--out")
            .arg(&model)
            .arg("--metrics")
            .arg(&metrics)
            .arg("--plot")
            .arg(&plot));
        assert!(r.stdout.contains("epoch   1/1") && r.stdout.contains("img/s"), "{}", r.stdout);
        let text = std::fs::read_to_string(&metrics).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{text}");
        // A header record says where a run starts and with what settings, then one line per epoch.
        assert_eq!(lines[0]["run"]["preset"], "mlp-dropout", "{text}");
        assert_eq!(lines[0]["run"]["config"]["epochs"], 1, "{text}");
        let m = lines[1].clone();
        assert!(image::open(&plot).unwrap().width() > 500);
        (dir, model, m)
    })
}

#[test]
fn one_epoch_mlp_reaches_80_percent_on_fashion_mnist() {
    let (_, model, m) = trained();
    for key in
        ["epoch", "lr", "train_loss", "train_accuracy", "test_accuracy", "test_loss", "seconds", "images_per_second"]
    {
        assert!(m.get(key).is_some(), "metrics lack {key}: {m}");
    }
    let acc = m["test_accuracy"].as_f64().unwrap();
    assert!(acc >= 0.80, "test accuracy {acc}");
    assert!(model.exists());
}

#[test]
fn evaluate_prints_tables_json_and_a_heat_map() {
    let (dir, model, m) = trained();
    let r = ok(cmd().args(["evaluate", "--json", "--model"]).arg(model));
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["accuracy"].as_f64(), m["test_accuracy"].as_f64());
    let total: u64 = v["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|x| x.as_u64().unwrap())
        .sum();
    assert_eq!(total, 10_000);
    assert!(v["per_class"]["Trouser"].as_f64().unwrap() > 0.8);
    let png = dir.path().join("cm.png");
    let r = ok(cmd().args(["evaluate", "--model"]).arg(model).arg("--confusion").arg(&png));
    assert!(r.stdout.contains("confusion matrix") && r.stdout.contains("Ankle boot") && r.stdout.contains("accuracy"));
    // Whole class names, in the per-class table and as the matrix's row labels.
    assert_eq!(r.stdout.matches("T-shirt/top").count(), 2, "{}", r.stdout);
    assert!(image::open(&png).unwrap().height() > 500);
}

#[test]
fn inspect_shows_architecture_and_record() {
    let (_, model, _) = trained();
    let r = ok(cmd().arg("inspect").arg(model));
    for needle in
        ["Linear(784, 128)", "parameters: 109386", "preset mlp-dropout", "final test accuracy", "fashion-mnist"]
    {
        assert!(r.stdout.contains(needle), "missing '{needle}' in {}", r.stdout);
    }
    let r = ok(cmd().args(["inspect", "--json"]).arg(model));
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["parameters"], 109386);
    assert_eq!(v["spec"]["layers"][1]["type"], "linear");
}

#[test]
fn predict_classifies_picture_files() {
    let (dir, model, _) = trained();
    let test = scratchnet::data::discover::load("fashion-mnist", None).unwrap().test.unwrap();
    let mut raw_files = Vec::new();
    let mut photo_files = Vec::new();
    for i in 0..30 {
        let img = image::GrayImage::from_raw(28, 28, test.image(i).to_vec()).unwrap();
        let raw = dir.path().join(format!("item{i}.png"));
        img.save(&raw).unwrap();
        raw_files.push(raw);
        // As a user's photo: dark on a light background, larger, with margins, in colour, as JPEG.
        let mut big = image::RgbImage::from_pixel(160, 130, image::Rgb([250, 250, 245]));
        let up = image::imageops::resize(&img, 84, 84, image::imageops::FilterType::Triangle);
        for (x, y, p) in up.enumerate_pixels() {
            let v = 255 - p.0[0];
            big.put_pixel(x + 40, y + 20, image::Rgb([v, v, v.saturating_sub(5)]));
        }
        let photo = dir.path().join(format!("photo{i}.jpg"));
        big.save(&photo).unwrap();
        photo_files.push(photo);
    }
    let top1 = |files: &[PathBuf], raw: bool| -> Vec<u64> {
        let mut c = cmd();
        c.args(["predict", "--json", "--top-k", "2", "--model"]).arg(model).args(files);
        if raw {
            c.arg("--raw");
        }
        let r = ok(&mut c);
        r.stdout
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert_eq!(v["top"].as_array().unwrap().len(), 2);
                assert!(v["top"][0]["probability"].as_f64().unwrap() >= v["top"][1]["probability"].as_f64().unwrap());
                v["top"][0]["index"].as_u64().unwrap()
            })
            .collect()
    };
    let raw = top1(&raw_files, true);
    let truth: Vec<u64> = test.labels[..30].iter().map(|&l| l as u64).collect();
    let correct = raw.iter().zip(&truth).filter(|(a, b)| a == b).count();
    assert!(correct >= 22, "{correct}/30 raw pictures right");
    let photos = top1(&photo_files, false);
    let agree = photos.iter().zip(&truth).filter(|(a, b)| a == b).count();
    assert!(agree >= 18, "{agree}/30 photo-like pictures right");
    let r = ok(cmd().args(["predict", "--model"]).arg(model).arg(&raw_files[0]));
    assert!(r.stdout.contains("item0.png: Ankle boot"), "{}", r.stdout);

    let not_image = dir.path().join("notes.png");
    std::fs::write(&not_image, b"hello").unwrap();
    fails(cmd().args(["predict", "--model"]).arg(model).arg(&not_image), "not a readable picture");
}

#[test]
fn bad_flags_missing_data_and_corrupt_models_fail_cleanly() {
    let (dir, model, _) = trained();
    fails(cmd().args(["train", "--model", "resnet"]), "unknown model 'resnet'");
    fails(cmd().args(["train", "--model", "mlp", "--epochs", "many"]), "invalid value 'many'");
    fails(cmd().args(["train", "--model", "mlp", "--batch-size", "0"]), "--batch-size must be at least 1");
    fails(cmd().args(["train", "--model", "mlp", "--optimizer", "rmsprop"]), "invalid value 'rmsprop'");
    fails(cmd().args(["frobnicate"]), "unrecognized subcommand");
    fails(
        cmd().args(["train", "--model", "mlp", "--warmup", "2"]),
        "--warmup applies to the cosine and one-cycle schedules",
    );
    fails(cmd().args(["train", "--model", "mlp", "--schedule", "inverse-time"]), "needs --decay");
    fails(cmd().args(["train", "--model", "mlp", "--schedule", "cosine", "--decay", "0.1"]), "--decay applies to");
    fails(
        cmd().args(["train", "--model", "mlp", "--decay-norm"]),
        "--decay-norm applies the weight decay to batch norms' scales and shifts too, and this recipe has none (add --l2 X)",
    );
    fails(cmd().args(["train", "--model", "mlp", "--l2", "0.01", "--decay-norm"]), "the network has no batch norms");
    fails(
        cmd().args(["train", "--model", "mlp", "--erase", "1.5"]),
        "--erase must be a probability in [0, 1], not 1.5",
    );
    fails(
        cmd().args(["train", "--model", "cnn-fast", "--limit", "257", "--out"]).arg(dir.path().join("one.safetensors")),
        "batch norm needs at least 2 images in every training batch; with 257 training images and --batch-size 128 the \
         last batch has 1",
    );
    let empty = tempfile::tempdir().unwrap();
    fails(
        cmd()
            .current_dir(empty.path())
            .args(["train", "--model", "mlp", "--dataset", "mnist", "--data-dir"])
            .arg(empty.path()),
        "not found; looked in",
    );
    let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mnist");
    fails(cmd().args(["train", "--model", "mlp", "--dataset"]).arg(&mnist), "holds no training set");
    let spec = dir.path().join("bad.json");
    std::fs::write(&spec, r#"{"input":[1,28,28],"layers":[{"type":"linear","in_features":784,"out_features":10}]}"#)
        .unwrap();
    fails(cmd().args(["train", "--model"]).arg(&spec), "add a flatten layer");

    let bytes = std::fs::read(model).unwrap();
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    fails(cmd().args(["evaluate", "--model"]).arg(&truncated), "truncated or corrupt");
    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!").unwrap();
    fails(cmd().args(["inspect"]).arg(&garbage), "garbage.safetensors");
    fails(cmd().args(["inspect"]).arg(dir.path().join("absent.safetensors")), "No such file");

    // A file whose tensor shapes disagree with its architecture: say which tensor.
    let mut info = scratchnet::model_file::load(model).unwrap().info;
    info.spec = scratchnet::model::presets::mlp_spec(0.0);
    let mut narrower = info.spec.clone();
    narrower.layers[1] = scratchnet::model::LayerSpec::Linear { in_features: 784, out_features: 100 };
    narrower.layers[3] = scratchnet::model::LayerSpec::Linear { in_features: 100, out_features: 64 };
    let other = scratchnet::model::Sequential::new(narrower, 0).unwrap();
    let mismatched = dir.path().join("mismatched.safetensors");
    std::fs::write(&mismatched, scratchnet::model_file::to_bytes(&other, &info, &[], None).unwrap()).unwrap();
    fails(
        cmd().args(["evaluate", "--model"]).arg(&mismatched),
        "tensor layers.1.weight: expected shape [128, 784], found [100, 784]",
    );
}

#[test]
fn resumed_run_ends_with_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let base = ["train", "--model", "mlp-dropout", "--limit", "3000", "--validation", "1000", "--quiet"];
    ok(cmd().args(base).args(["--epochs", "3", "--out"]).arg(p("straight.safetensors")));
    ok(cmd().args(base).args(["--epochs", "1", "--checkpoint-every", "1", "--out"]).arg(p("part.safetensors")));
    assert!(p("part.ckpt.safetensors").exists());
    fails(
        cmd().args(["train", "--lr", "0.1", "--resume"]).arg(p("part.ckpt.safetensors")),
        "--lr 0.1 differs from the checkpoint's 0.01",
    );
    fails(
        cmd().args(["train", "--decay-norm", "--resume"]).arg(p("part.ckpt.safetensors")),
        "--decay-norm: the checkpoint's run does not decay batch norms' scales and shifts",
    );
    let r = ok(cmd()
        .args(["train", "--quiet", "--limit", "3000", "--epochs", "3", "--resume"])
        .arg(p("part.ckpt.safetensors"))
        .arg("--out")
        .arg(p("resumed.safetensors")));
    assert!(
        r.stdout.contains("epoch   2/3") && !r.stdout.contains("epoch   1/3") && r.stdout.contains("val "),
        "{}",
        r.stdout
    );
    assert_eq!(tensors(&p("straight.safetensors")), tensors(&p("resumed.safetensors")));
    let r = ok(cmd().arg("inspect").arg(p("resumed.safetensors")));
    assert!(r.stdout.contains("preset mlp-dropout") && r.stdout.contains("3 epochs"), "{}", r.stdout);
    let r = ok(cmd().arg("inspect").arg(p("part.ckpt.safetensors")));
    assert!(r.stdout.contains("checkpoint") && r.stdout.contains("1 epoch,"), "{}", r.stdout);
}

#[test]
fn divergence_stops_without_writing_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nan.safetensors");
    fails(
        cmd().args(["train", "--model", "mlp", "--lr", "1e9", "--limit", "2000", "--epochs", "1", "--out"]).arg(&out),
        "lower learning rate",
    );
    assert!(!out.exists());
}

#[test]
fn ctrl_c_writes_a_checkpoint_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cnn.safetensors");
    let mut child = cmd()
        .args(["train", "--model", "cnn", "--limit", "20000", "--epochs", "1", "--quiet", "--out"])
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The "training ..." line comes once the data is loaded, just before the first batch; the
    // interrupt then stops the run after the batch in progress (at least one).
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stderr = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        stderr += &line;
        stderr.push('\n');
        if line.starts_with("training ") {
            break;
        }
    }
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    stderr.extend(lines.map(|l| l.unwrap() + "\n"));
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let ckpt = dir.path().join("cnn.ckpt.safetensors");
    assert!(stderr.contains("checkpoint written to") && stderr.contains("--resume"), "{stderr}");
    assert!(!out.exists(), "no final model after an interrupt");
    let loaded = scratchnet::model_file::load(&ckpt).unwrap();
    let (trainer, _) = scratchnet::checkpoint::restore(loaded, "ckpt").unwrap();
    assert_eq!(trainer.state.epoch, 0);
    assert!(trainer.state.batch > 0);
}

#[test]
fn cosine_schedule_with_warm_up_sets_each_epochs_rate() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("m.jsonl");
    ok(cmd()
        .args(["train", "--model", "mlp", "--limit", "640", "--epochs", "5", "--lr", "0.1", "--quiet"])
        .args(["--schedule", "cosine", "--warmup", "1", "--out"])
        .arg(dir.path().join("m.safetensors"))
        .arg("--metrics")
        .arg(&metrics));
    let lrs: Vec<f64> = std::fs::read_to_string(&metrics)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("run").is_none())
        .map(|v| v["lr"].as_f64().unwrap())
        .collect();
    // Warm-up epoch at half the rate, then a half cosine from 0.1 down to 0 over epochs 2-5.
    let want = [0.05, 0.1, 0.075, 0.025, 0.0];
    for (got, want) in lrs.iter().zip(want) {
        assert!((got - want).abs() < 1e-6, "{lrs:?}");
    }
}

/// The validation split `evaluate --split validation` rebuilds is the one training held out, and a
/// test-time augmentation chosen on it is recorded in the model file by finishing the checkpoint.
#[test]
fn validation_split_is_reproduced_and_tta_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let r = ok(cmd()
        .args(["train", "--model", "mlp-dropout", "--limit", "3000", "--validation", "1000", "--epochs", "2"])
        .args(["--hflip", "--quiet", "--checkpoint-every", "1", "--out"])
        .arg(p("a.safetensors")));
    let last = r.stdout.lines().last().unwrap().to_string();
    let json = |r: Run| -> serde_json::Value { serde_json::from_str(r.stdout.trim()).unwrap() };
    let val = json(ok(cmd().args(["evaluate", "--split", "validation", "--json", "--model"]).arg(p("a.safetensors"))));
    assert_eq!(val["examples"], 1000);
    assert_eq!(val["tta"], "none");
    let shown = format!("val {:.2}%", 100.0 * val["accuracy"].as_f64().unwrap());
    assert!(last.contains(&shown), "training printed '{last}', evaluate found {shown}");

    let flip = |model: &str, extra: &[&str]| {
        json(ok(cmd().args(["evaluate", "--split", "validation", "--json"]).args(extra).arg("--model").arg(p(model))))
    };
    let averaged = flip("a.safetensors", &["--tta", "hflip"]);
    assert_eq!(averaged["tta"], "hflip");
    assert_ne!(averaged["loss"], val["loss"]);

    let r = ok(cmd()
        .args(["train", "--tta", "hflip", "--resume"])
        .arg(p("a.ckpt.safetensors"))
        .arg("--out")
        .arg(p("b.safetensors")));
    assert!(r.stderr.contains("evaluated with --tta hflip"), "{}", r.stderr);
    assert_eq!(tensors(&p("a.safetensors")), tensors(&p("b.safetensors")));
    let recorded = flip("b.safetensors", &[]);
    assert_eq!(recorded["tta"], "hflip");
    assert_eq!(recorded["accuracy"], averaged["accuracy"]);
    assert_eq!(flip("b.safetensors", &["--tta", "none"])["accuracy"], val["accuracy"]);
    let r = ok(cmd().arg("inspect").arg(p("b.safetensors")));
    assert!(r.stdout.contains("test-time augmentation 'hflip'"), "{}", r.stdout);
    let shown = format!("final validation accuracy {:.2}%", 100.0 * recorded["accuracy"].as_f64().unwrap());
    assert!(r.stdout.contains(&shown), "{shown} in {}", r.stdout);

    let (_, no_split, _) = trained();
    fails(
        cmd().args(["evaluate", "--split", "validation", "--model"]).arg(no_split),
        "trained without a validation split",
    );
    fails(cmd().args(["evaluate", "--tta", "vflip"]), "invalid value 'vflip'");
}
