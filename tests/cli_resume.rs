//! `train --resume`: the same command with `--resume` appended, or `--resume` alone, continues the
//! same run and ends with exactly the weights of an uninterrupted one.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

mod common;
use common::{cmd, fails, ok, tensors};

/// Per-sample SGD on all 60,000 images: ~2 s an epoch, long enough to interrupt inside one.
const RUN: [&str; 9] = ["train", "--model", "mlp-sgd", "--seed", "3", "--epochs", "3", "--quiet", "--hflip"];

#[test]
fn interrupted_run_resumes_bit_identically_with_the_same_command_or_resume_alone() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    ok(cmd().args(RUN).arg("--out").arg(p("straight.safetensors")));

    // Ctrl-C during the second epoch, once the first epoch's line is out.
    let same = |c: &mut Command| {
        c.args(RUN).arg("--out").arg(p("run.safetensors")).arg("--metrics").arg(p("run.jsonl"));
        c.arg("--plot").arg(p("run.png"));
    };
    let mut c = cmd();
    same(&mut c);
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("epoch   1/3"), "{first}");
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted ") && !stderr.contains("error"), "{stderr}");
    assert!(stderr.contains("continue with: scratchnet train --resume"), "{stderr}");
    assert!(!p("run.safetensors").exists());
    // The curves of the epochs done are drawn.
    assert!(image::open(p("run.png")).unwrap().width() > 500, "{stderr}");
    let ckpt = p("run.ckpt.safetensors");
    let kept = std::fs::read(&ckpt).unwrap();

    // (a) The same command with --resume appended.
    let mut c = cmd();
    same(&mut c);
    let r = ok(c.arg("--resume").arg(&ckpt));
    assert!(r.stdout.contains("epoch   3/3") && !r.stdout.contains("epoch   1/3"), "{}", r.stdout);
    assert_eq!(tensors(&p("straight.safetensors")), tensors(&p("run.safetensors")));
    let metrics = std::fs::read_to_string(p("run.jsonl")).unwrap();
    let headers: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| v.get("run").cloned())
        .collect();
    assert_eq!(headers.len(), 2, "{metrics}");
    assert!(headers[0]["resumed_after_epoch"].is_null() && headers[1]["resumed_after_epoch"].as_u64().is_some());

    // (b) `--resume` alone, as the interrupt message says: same preset, data, seed, flips, out.
    std::fs::remove_file(p("run.safetensors")).unwrap();
    std::fs::write(&ckpt, &kept).unwrap();
    let r = ok(cmd().args(["train", "--quiet", "--resume"]).arg(&ckpt));
    assert!(r.stderr.contains("training mlp-sgd ") && r.stderr.contains("(60000 images)"), "{}", r.stderr);
    assert_eq!(tensors(&p("straight.safetensors")), tensors(&p("run.safetensors")));
    let r = ok(cmd().args(["inspect", "--model"]).arg(p("run.safetensors")));
    assert!(r.stdout.contains("preset mlp-sgd") && r.stdout.contains("3 epochs"), "{}", r.stdout);
}

#[test]
fn resume_keeps_limit_and_data_and_refuses_changes_naming_both_values() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let run = ["train", "--model", "mlp-dropout", "--seed", "11", "--limit", "2000", "--validation", "500"];
    let run = [&run[..], &["--epochs", "3", "--quiet", "--checkpoint-every", "2"]].concat();
    ok(cmd().args(&run).arg("--out").arg(p("straight.safetensors")));
    // The checkpoint of epoch 2 remains (3 is not a multiple of 2): resume it.
    let ckpt = p("straight.ckpt.safetensors");
    let r = ok(cmd().args(["train", "--quiet", "--resume"]).arg(&ckpt).arg("--out").arg(p("alone.safetensors")));
    assert!(r.stderr.contains("(2000 images)"), "the limit is kept: {}", r.stderr);
    assert_eq!(tensors(&p("straight.safetensors")), tensors(&p("alone.safetensors")));
    let r = ok(cmd().args(&run).arg("--resume").arg(&ckpt).arg("--out").arg(p("same.safetensors")));
    assert!(r.stdout.contains("epoch   3/3") && r.stdout.contains("val "), "{}", r.stdout);
    assert_eq!(tensors(&p("straight.safetensors")), tensors(&p("same.safetensors")));
    let record = |f: &str| -> serde_json::Value {
        let r = ok(cmd().args(["inspect", "--json"]).arg(p(f)));
        serde_json::from_str::<serde_json::Value>(r.stdout.trim()).unwrap()["training"].clone()
    };
    assert_eq!(record("alone.safetensors")["train_examples"], 2000);
    assert_eq!(record("alone.safetensors")["preset"], "mlp-dropout");

    let resume = |flags: &[&str], needle: &str| {
        fails(cmd().arg("train").args(flags).arg("--resume").arg(&ckpt), needle);
    };
    resume(&["--limit", "3000"], "--limit 3000 differs from the checkpoint's 2000");
    resume(&["--seed", "12"], "--seed 12 differs from the checkpoint's 11");
    resume(&["--validation", "100"], "--validation 100 differs from the checkpoint's 500");
    resume(&["--model", "mlp"], "--model mlp differs from the checkpoint's preset mlp-dropout");
    resume(&["--optimizer", "adamw"], "--optimizer adamw differs from the checkpoint's sgd");
    resume(&["--hflip"], "--hflip: the checkpoint's run does not mirror");
    resume(&["--epochs", "1"], "--epochs 1: the checkpoint has already trained 2 epochs");
    let mnist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mnist");
    // Another data set (here the MNIST test images standing in for a training set).
    let other = p("other");
    std::fs::create_dir(&other).unwrap();
    for (from, to) in [
        ("t10k-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz"),
        ("t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"),
        ("t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    ] {
        std::fs::copy(mnist.join(from), other.join(to)).unwrap();
    }
    fails(
        cmd().args(["train", "--dataset", "mnist", "--data-dir"]).arg(&other).arg("--resume").arg(&ckpt),
        "but the checkpoint's run trained on fashion-mnist (60000 training images",
    );
    fails(cmd().args(["train", "--resume"]).arg(p("absent.ckpt.safetensors")), "no such checkpoint");
}
