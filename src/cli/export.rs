//! `scratchnet export`: a model file as an ONNX graph (see `scratchnet::onnx`), or as a model file
//! again with its weights in half precision (`--format safetensors --dtype f16`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use scratchnet::model::Tta;
use scratchnet::model_file::{self, Loaded, Precision};
use scratchnet::onnx::{self, ExportOptions};

use super::out::{check_writable, errln, outln};

#[derive(Args)]
pub struct ExportArgs {
    /// Model file (.safetensors; default: the built-in CNN for --dataset, Fashion-MNIST's without one)
    #[arg(conflicts_with = "model")]
    pub file: Option<PathBuf>,
    /// The same, as evaluate and predict take it
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Without a file: the built-in model for fashion-mnist (the default) or mnist
    #[arg(long, conflicts_with_all = ["file", "model"])]
    pub dataset: Option<String>,
    /// Output format: an ONNX graph, or a scratchnet model file (default: safetensors for an
    /// --out ending in .safetensors, else onnx)
    #[arg(long, value_parser = ["onnx", "safetensors"])]
    pub format: Option<String>,
    /// The file to write (.onnx, or .safetensors)
    #[arg(long, short)]
    pub out: PathBuf,
    /// safetensors: how to store the weights; f16 and bf16 halve the file (rounded to nearest:
    /// measure the result with `evaluate`)
    #[arg(long, value_parser = Precision::NAMES, default_value = "f32")]
    pub dtype: String,
    /// End the graph in Softmax: output 'probabilities' instead of 'logits'
    #[arg(long)]
    pub softmax: bool,
    /// Fold test-time augmentation into the graph (hflip: the mirrored input runs too and the
    /// probabilities are averaged; needs --softmax). Default: none, the plain network
    #[arg(long, value_parser = Tta::NAMES)]
    pub tta: Option<String>,
}

pub fn run(a: ExportArgs) -> Result<()> {
    check_writable("--out", &a.out)?;
    let safetensors = match a.format.as_deref() {
        Some(f) => f == "safetensors",
        None => a.out.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors")),
    };
    if safetensors {
        anyhow::ensure!(
            !a.softmax && a.tta.is_none(),
            "--softmax and --tta shape ONNX graphs; a model file keeps its own test-time augmentation"
        );
    } else {
        anyhow::ensure!(
            a.dtype == "f32",
            "--dtype {}: ONNX graphs are written in float32; --dtype is for --format safetensors",
            a.dtype
        );
    }
    let file = a.file.or(a.model);
    let (loaded, name) =
        super::default_model::load_or_builtin(file.as_deref(), super::default_model::kind_of(a.dataset.as_deref())?)?;
    if safetensors {
        return to_safetensors(&loaded, &name, &a.out, Precision::from_name(&a.dtype).expect("clap checked it"));
    }
    let tta = super::tta_or(a.tta.as_deref(), Tta::None);
    anyhow::ensure!(tta == Tta::None || a.softmax, "--tta {} averages probabilities: add --softmax", tta.name());
    let opts = ExportOptions { softmax: a.softmax, tta };
    let bytes = onnx::to_bytes(&loaded.model, &loaded.info, &opts)?;
    model_file::write_atomic(&a.out, &bytes)?;
    let [c, h, w] = loaded.info.spec.input;
    let output = if a.softmax { onnx::PROBABILITIES } else { onnx::LOGITS };
    outln!(
        "{name} -> {} (ONNX, opset {}): input '{}' float32 [{}, {c}, {h}, {w}] pixel values 0-255, output '{output}' [{}, {}]",
        a.out.display(),
        onnx::OPSET,
        onnx::INPUT,
        onnx::BATCH,
        onnx::BATCH,
        loaded.info.classes.len()
    );
    if loaded.info.tta != Tta::None && tta == Tta::None {
        errln!(
            "note: {name} predicts with test-time augmentation '{}'; this graph is the plain network \
             (add --softmax --tta {} to fold it in)",
            loaded.info.tta.name(),
            loaded.info.tta.name()
        );
    }
    Ok(())
}

/// The model file again, its weights stored in `precision` (the optimizer state of a checkpoint
/// left out).
fn to_safetensors(loaded: &Loaded, name: &str, out: &std::path::Path, precision: Precision) -> Result<()> {
    let bytes = model_file::to_bytes_as(&loaded.model, &loaded.info, loaded.imported.as_ref(), precision)?;
    model_file::write_atomic(out, &bytes)?;
    let was: Vec<String> = loaded.stored.iter().map(|p| p.to_string()).collect();
    outln!("{name} ({}) -> {} ({precision}): {} bytes", was.join("+"), out.display(), bytes.len());
    if loaded.checkpoint.is_some() {
        errln!(
            "note: {name} is a checkpoint; {} holds the model alone (no optimizer state, not resumable)",
            out.display()
        );
    }
    if loaded.stored.iter().any(|&p| p != precision) && loaded.info.training.is_some() {
        errln!(
            "note: the training record's accuracies were measured before the conversion; \
             `scratchnet evaluate --model {}` measures this file",
            out.display()
        );
    }
    Ok(())
}
