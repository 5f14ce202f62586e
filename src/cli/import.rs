//! `scratchnet import`: a plain state_dict (PyTorch's, saved as safetensors or by torch.save) onto
//! a preset or spec.json network, written as a full model file: parameters, and batch norms'
//! running statistics (`Sequential::set_state`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use clap::Args;
use scratchnet::data::{DatasetKind, discover};
use scratchnet::import::{fingerprint, map_state_dict};
use scratchnet::model::{Sequential, Tta};
use scratchnet::model_file::{self, ImportRecord, InputNorm, ModelInfo};

use super::out::{check_writable, outln};
use super::train::record::now_utc;

#[derive(Args)]
pub struct ImportArgs {
    /// The weights: a state_dict saved as .safetensors or by torch.save (.pt, .pth; read without running
    /// its pickle), names 1.weight as nn.Sequential's, or layers.1.weight
    pub weights: PathBuf,
    /// The network they belong to: a preset (mlp, cnn, ...) or a spec .json file
    #[arg(long)]
    pub arch: String,
    /// What the network classifies: mnist, fashion-mnist, or a directory holding one (class names,
    /// picture preprocessing)
    #[arg(long)]
    pub dataset: String,
    /// The model file to write
    #[arg(long, short)]
    pub out: PathBuf,
    /// Input normalisation the weights were trained with, as torchvision's Normalize(mean, std)
    /// after ToTensor: input = (pixel/255 - mean) / std (default: pixel/255)
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub mean: f32,
    #[arg(long, default_value_t = 1.0)]
    pub std: f32,
    /// How the model predicts (recorded in the file): hflip averages each picture with its mirror image
    #[arg(long, value_parser = Tta::NAMES, default_value = "none")]
    pub tta: String,
}

pub fn run(a: ImportArgs) -> Result<()> {
    check_writable("--out", &a.out)?;
    let source = a.weights.display().to_string();
    ensure!(a.std.is_finite() && a.std > 0.0, "--std must be a positive number, not {}", a.std);
    ensure!(a.mean.is_finite(), "--mean must be a number, not {}", a.mean);
    let choice = super::train::args::resolve_model(&a.arch)?;
    let kind = dataset_kind(&a.dataset)?;
    let classes = kind.class_names();
    let outputs = choice.spec.num_classes()?;
    ensure!(
        outputs == classes.len(),
        "--arch {} has {outputs} outputs but {} has {} classes",
        a.arch,
        kind.name(),
        classes.len()
    );

    let bytes = std::fs::read(&a.weights).with_context(|| format!("reading {source}"))?;
    let mapped = map_state_dict(&bytes, &source, &choice.spec)?;
    let mut model = Sequential::new(choice.spec.clone(), 0)?;
    model.set_state(mapped.values)?;
    let info = ModelInfo {
        spec: choice.spec.clone(),
        classes,
        dataset: kind.name().to_string(),
        input: InputNorm { scale: 1.0 / (255.0 * a.std), offset: -a.mean / a.std },
        training: None,
        tta: Tta::from_name(&a.tta).unwrap_or_default(),
    };
    let record = ImportRecord {
        source: source.clone(),
        bytes: bytes.len() as u64,
        fingerprint: fingerprint(&bytes),
        naming: mapped.naming.clone(),
        dtypes: mapped.dtypes.clone(),
        arch: a.arch.clone(),
        command: std::iter::once("scratchnet".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        date: now_utc(),
    };
    let file = model_file::to_bytes_imported(&model, &info, &[], None, Some(&record))?;
    model_file::write_atomic(&a.out, &file)?;
    let norms = choice.spec.layers.iter().filter(|l| !l.buffer_shapes().is_empty()).count();
    let buffers = match norms {
        0 => String::new(),
        1 => " and the running statistics of 1 batch norm".to_string(),
        n => format!(" and the running statistics of {n} batch norms"),
    };
    outln!(
        "{}: {} tensors ({} parameters{buffers}, {}, {}) onto {} for {}; wrote {}",
        source,
        choice.spec.state_shapes().len() - mapped.counters_defaulted.len(),
        choice.spec.num_params(),
        mapped.naming,
        mapped.dtypes.join("+"),
        a.arch,
        kind.name(),
        a.out.display()
    );
    if !mapped.counters_defaulted.is_empty() {
        outln!(
            "no {} in the file (a state_dict of PyTorch before 0.4.1): set to 0; it counts training steps and \
             changes no prediction",
            mapped.counters_defaulted.join(", ")
        );
    }
    outln!("check it: scratchnet evaluate --model {}", a.out.display());
    Ok(())
}

/// `--dataset`: a name, or a directory whose files tell which data set it holds.
fn dataset_kind(dataset: &str) -> Result<DatasetKind> {
    if let Some(kind) = DatasetKind::from_name(dataset)
        && !Path::new(dataset).is_dir()
    {
        return Ok(kind);
    }
    Ok(discover::locate(dataset, None)?.2)
}
