//! `scratchnet import`: a plain state_dict (PyTorch's, saved as safetensors or by torch.save) onto
//! a preset or spec.json network, written as a full model file: parameters, and batch norms'
//! running statistics (`Sequential::set_state`); or the original project's pickled network
//! (`.pkl`), whose layers give the network.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use clap::Args;
use scratchnet::data::{DatasetKind, discover};
use scratchnet::import::{fingerprint, map_state_dict, read_original};
use scratchnet::model::{ModelSpec, Sequential, Tta};
use scratchnet::model_file::{self, ImportRecord, InputNorm, ModelInfo};
use scratchnet::tensor::Tensor;

use super::out::{check_writable, outln};
use super::train::record::now_utc;

#[derive(Args)]
pub struct ImportArgs {
    /// The weights: a state_dict saved as .safetensors or by torch.save (.pt, .pth; read without running
    /// its pickle), names 1.weight as nn.Sequential's, or layers.1.weight; or a network the original
    /// NumPy/CuPy project saved with pickle.dump (.pkl, read without running it; no --arch)
    pub weights: PathBuf,
    /// The network the state_dict belongs to: a preset (mlp, cnn, ...) or a spec .json file (not for
    /// a .pkl: its layers give the network)
    #[arg(long)]
    pub arch: Option<String>,
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

/// Whether `path` names a pickle of the original project (`.pkl`, `.pickle`).
fn is_original(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "pkl" | "pickle"))
}

pub fn run(a: ImportArgs) -> Result<()> {
    check_writable("--out", &a.out)?;
    let source = a.weights.display().to_string();
    ensure!(a.std.is_finite() && a.std > 0.0, "--std must be a positive number, not {}", a.std);
    ensure!(a.mean.is_finite(), "--mean must be a number, not {}", a.mean);
    if is_original(&a.weights) {
        ensure!(
            a.arch.is_none(),
            "--arch is not used with {source}: a pickled network of the original project gives its own layers"
        );
        return run_original(&a, &source);
    }
    let Some(arch) = a.arch.as_deref() else {
        anyhow::bail!(
            "--arch is needed for {source}: the network its state_dict belongs to (a preset such as mlp or cnn, or a \
             spec .json); only the original project's pickled networks (.pkl) bring their own"
        );
    };
    let choice = super::train::args::resolve_model(arch)?;
    let kind = dataset_kind(&a.dataset)?;
    let classes = kind.class_names();
    let outputs = choice.spec.num_classes()?;
    ensure!(
        outputs == classes.len(),
        "--arch {arch} has {outputs} outputs but {} has {} classes",
        kind.name(),
        classes.len()
    );

    let bytes = std::fs::read(&a.weights).with_context(|| format!("reading {source}"))?;
    let mapped = map_state_dict(&bytes, &source, &choice.spec)?;
    let origin =
        Origin { bytes: &bytes, naming: mapped.naming.clone(), dtypes: mapped.dtypes.clone(), arch: arch.into() };
    write_model(&a, &source, &choice.spec, mapped.values, kind, origin)?;
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
        arch,
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

/// Where imported weights came from, for the model file's record.
struct Origin<'a> {
    bytes: &'a [u8],
    naming: String,
    dtypes: Vec<String>,
    arch: String,
}

/// The network with `state` (parameters and buffers, in the spec's order) as a model file for
/// `kind`'s classes, with the flags' normalisation and test-time augmentation, written to --out.
fn write_model(
    a: &ImportArgs,
    source: &str,
    spec: &ModelSpec,
    state: Vec<Tensor>,
    kind: DatasetKind,
    origin: Origin,
) -> Result<()> {
    let mut model = Sequential::new(spec.clone(), 0)?;
    model.set_state(state)?;
    let info = ModelInfo {
        spec: spec.clone(),
        classes: kind.class_names(),
        dataset: kind.name().to_string(),
        input: InputNorm { scale: 1.0 / (255.0 * a.std), offset: -a.mean / a.std },
        training: None,
        tta: Tta::from_name(&a.tta).unwrap_or_default(),
    };
    let record = ImportRecord {
        source: source.to_string(),
        bytes: origin.bytes.len() as u64,
        fingerprint: fingerprint(origin.bytes),
        naming: origin.naming,
        dtypes: origin.dtypes,
        arch: origin.arch,
        command: command_line(),
        date: now_utc(),
    };
    let file = model_file::to_bytes_imported(&model, &info, &[], None, Some(&record))?;
    Ok(model_file::write_atomic(&a.out, &file)?)
}

fn command_line() -> String {
    std::iter::once("scratchnet".to_string()).chain(std::env::args().skip(1)).collect::<Vec<_>>().join(" ")
}

/// The original project's pickled network: its layers give the spec, its arrays the weights.
fn run_original(a: &ImportArgs, source: &str) -> Result<()> {
    let kind = dataset_kind(&a.dataset)?;
    let classes = kind.class_names();
    let bytes = std::fs::read(&a.weights).with_context(|| format!("reading {source}"))?;
    let original = read_original(&bytes, source, [1, 28, 28])?;
    let spec = original.spec.clone();
    let outputs = spec.num_classes()?;
    ensure!(
        outputs == classes.len(),
        "{source}: the network has {outputs} outputs but {} has {} classes",
        kind.name(),
        classes.len()
    );
    let origin = Origin {
        bytes: &bytes,
        naming: "the original project's pickled layer list".into(),
        dtypes: original.dtypes.clone(),
        arch: format!("from the pickle: {}", original.layers.join(", ")),
    };
    write_model(a, source, &spec, original.params, kind, origin)?;
    let layers: Vec<String> = spec.layers.iter().map(|l| l.describe()).collect();
    outln!(
        "{source}: the original project's network ({}), {} parameters ({}), as {} for {}; wrote {}",
        original.layers.join(", "),
        spec.num_params(),
        original.dtypes.join("+"),
        layers.join(", "),
        kind.name(),
        a.out.display()
    );
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
