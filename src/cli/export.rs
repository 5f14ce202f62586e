//! `scratchnet export`: a model file as an ONNX graph (see `scratchnet::onnx`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use scratchnet::model::Tta;
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
    /// Output format
    #[arg(long, value_parser = ["onnx"], default_value = "onnx")]
    pub format: String,
    /// The file to write (.onnx)
    #[arg(long, short)]
    pub out: PathBuf,
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
    let file = a.file.or(a.model);
    let (loaded, name) =
        super::default_model::load_or_builtin(file.as_deref(), super::default_model::kind_of(a.dataset.as_deref())?)?;
    let tta = super::tta_or(a.tta.as_deref(), Tta::None);
    anyhow::ensure!(tta == Tta::None || a.softmax, "--tta {} averages probabilities: add --softmax", tta.name());
    let opts = ExportOptions { softmax: a.softmax, tta };
    let bytes = onnx::to_bytes(&loaded.model, &loaded.info, &opts)?;
    scratchnet::model_file::write_atomic(&a.out, &bytes)?;
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
