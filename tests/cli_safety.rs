//! What users do that once lost work or panicked: a closed pipe, a mistyped output path, odd flag
//! values; and the small things they noticed.

use std::path::Path;
use std::process::{Command, Stdio};

mod common;
use common::{Run, cmd, fails, ok};

/// Runs `c` with its stdout closed before it writes anything, like `c | head -n 0`.
fn closed_stdout(c: &mut Command) -> Run {
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!r.stderr.contains("panicked") && !r.stderr.contains("Broken pipe"), "{}", r.stderr);
    r
}

#[test]
fn a_closed_stdout_ends_printing_quietly_and_training_still_writes_its_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let r = closed_stdout(
        cmd().args(["train", "--model", "mlp", "--limit", "500", "--epochs", "3", "--quiet", "--out"]).arg(&model),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("model written to"), "{}", r.stderr);
    assert!(scratchnet::model_file::load(&model).is_ok());
    assert_eq!(closed_stdout(cmd().arg("inspect")).code, 0);
    assert_eq!(closed_stdout(cmd().args(["--help"])).code, 0);

    let pic = dir.path().join("a.png");
    image::GrayImage::from_pixel(28, 28, image::Luma([200])).save(&pic).unwrap();
    let pics = vec![pic.clone(); 50];
    let r = closed_stdout(cmd().args(["predict", "--model"]).arg(&model).args(&pics));
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn output_paths_are_checked_before_any_work_and_named() {
    let missing = Path::new("/nonexistent-scratchnet-dir");
    let train = || {
        let mut c = cmd();
        c.args(["train", "--model", "mlp", "--epochs", "1", "--quiet"]);
        c
    };
    for flag in ["--out", "--plot", "--metrics"] {
        let file = missing.join("x.out");
        let r = fails(train().arg(flag).arg(&file), &format!("{flag} {}: the folder", file.display()));
        assert!(!r.stdout.contains("epoch") && !r.stderr.contains("training"), "trained first: {}", r.stderr);
    }
    let dir = tempfile::tempdir().unwrap();
    let r = fails(train().arg("--plot").arg(dir.path()), "is a folder");
    assert!(!r.stderr.contains("training"), "{}", r.stderr);
    // The checkpoint beside --out: a folder in its way is found before training too.
    std::fs::create_dir(dir.path().join("m.ckpt.safetensors")).unwrap();
    fails(train().arg("--out").arg(dir.path().join("m.safetensors")), "the checkpoint");
    let r = fails(
        cmd().args(["evaluate", "--limit", "10", "--confusion"]).arg(missing.join("cm.png")),
        "--confusion /nonexistent-scratchnet-dir/cm.png: the folder",
    );
    assert!(!r.stdout.contains("accuracy"), "{}", r.stdout);
}

#[test]
fn odd_flag_values_get_clear_errors() {
    fails(cmd().args(["evaluate", "--limit", "0"]), "--limit must be at least 1");
    fails(cmd().args(["train", "--model", "mlp", "--limit", "0"]), "--limit must be at least 1");
    fails(cmd().args(["train", "--model", "mlp", "--l2=-1"]), "--l2 must not be negative");
    fails(cmd().args(["train", "--model", "mlp", "--lr", "-0.1"]), "--lr must be a positive number, not -0.1");
    fails(cmd().args(["train", "--model", "mlp", "--momentum", "1.5"]), "--momentum must be in [0, 1)");
    fails(cmd().args(["predict", "--top-k", "0", "x.png"]), "--top-k must be at least 1");
    let dir = tempfile::tempdir().unwrap();
    let r = ok(cmd()
        .args(["train", "--model", "mlp", "--limit", "64", "--epochs", "1", "--quiet", "--threads", "1000", "--out"])
        .arg(dir.path().join("m.safetensors")));
    assert!(r.stderr.contains("warning: --threads 1000 is more than the"), "{}", r.stderr);
    let r = ok(cmd()
        .args(["train", "--model", "mlp", "--limit", "64", "--epochs", "1", "--quiet", "--threads", "1", "--out"])
        .arg(dir.path().join("m.safetensors")));
    assert!(r.stderr.contains(", 1 thread\n"), "{}", r.stderr);
}

#[test]
fn inspect_takes_model_like_the_others_and_predict_json_reports_failures() {
    let a = ok(cmd().args(["inspect", "--json", "--model", "models/fashion-mnist-mlp.safetensors"]));
    let b = ok(cmd().args(["inspect", "--json", "models/fashion-mnist-mlp.safetensors"]));
    assert_eq!(a.stdout, b.stdout);
    assert!(a.stdout.contains("\"parameters\":109386"), "{}", a.stdout);

    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.png");
    image::GrayImage::from_pixel(28, 28, image::Luma([20])).save(&good).unwrap();
    let bad = dir.path().join("bad.png");
    std::fs::write(&bad, b"not a picture").unwrap();
    let r = fails(cmd().args(["predict", "--json"]).arg(&good).arg(&bad), "1 of 2 pictures could not be classified");
    let lines: Vec<serde_json::Value> = r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(lines[0]["top"].is_array());
    assert_eq!(lines[1]["file"], bad.display().to_string());
    assert!(lines[1]["error"].as_str().unwrap().contains("bad.png"), "{}", r.stdout);
}

#[test]
fn a_batch_too_large_for_memory_is_refused_before_allocating() {
    // The CNN keeps ~150,000 values per image; a batch of 10^9 images needs ~1 PB.
    fails(
        cmd().args(["train", "--model", "cnn", "--epochs", "1", "--batch-size", "1000000000"]),
        "use a smaller --batch-size",
    );
}

#[test]
fn the_instruction_set_cap_is_checked_and_changes_only_the_last_bits() {
    fails(cmd().env("SCRATCHNET_MAX_CPU_ISA", "sse9").arg("inspect"), "SCRATCHNET_MAX_CPU_ISA=sse9 is not a level");
    let eval = |isa: &str| -> serde_json::Value {
        let r = ok(cmd()
            .env("SCRATCHNET_MAX_CPU_ISA", isa)
            .args(["evaluate", "--json", "--limit", "500", "--tta", "none"]));
        serde_json::from_str(r.stdout.trim()).unwrap()
    };
    let best = eval("avx512");
    for isa in ["avx2", "scalar"] {
        let capped = eval(isa);
        assert_eq!(capped["confusion"], best["confusion"], "{isa}");
        let (a, b) = (capped["loss"].as_f64().unwrap(), best["loss"].as_f64().unwrap());
        assert!((a - b).abs() < 1e-5 * b, "{isa}: loss {a} vs {b}");
    }
    let r = ok(cmd().env("SCRATCHNET_MAX_CPU_ISA", "scalar").arg("devices"));
    assert!(r.stdout.contains("scalar kernels"), "{}", r.stdout);
}

/// On a terminal the progress bar shows the running loss and accuracy, and a spinner runs during
/// the epoch's evaluations. `script` (util-linux, on every Debian) gives the command a terminal.
#[test]
fn the_progress_bar_shows_loss_and_accuracy_on_a_terminal() {
    if !Path::new("/usr/bin/script").exists() {
        eprintln!("skipped: no /usr/bin/script to provide a terminal");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("scratchnet");
    let line = format!(
        "{} train --model cnn --limit 320 --epochs 1 --out {}",
        bin.display(),
        dir.path().join("m.safetensors").display()
    );
    let out =
        Command::new("/usr/bin/script").args(["-qec", &line, "/dev/null"]).env("COLUMNS", "150").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("batches, loss ") && text.contains(" acc "), "no running loss in the bar: {text}");
    assert!(text.contains("evaluating on the test set"), "no spinner during evaluation: {text}");
}
