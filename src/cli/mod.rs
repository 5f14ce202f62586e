//! The `scratchnet` command: argument parsing and the four commands.

pub mod default_model;
pub mod device;
pub mod download;
pub mod evaluate;
pub mod export;
pub mod import;
pub mod inspect;
pub mod out;
pub mod plot;
pub mod predict;
pub mod train;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "scratchnet",
    version,
    about = "Neural networks from scratch: train, evaluate and use MLPs and a CNN on MNIST / Fashion-MNIST"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Train a preset or a spec.json network and save it as .safetensors
    #[command(allow_negative_numbers = true)]
    Train(Box<train::TrainArgs>),
    /// Accuracy, loss, per-class accuracy and confusion matrix on a test set
    Evaluate(evaluate::EvaluateArgs),
    /// Classify picture files (PNG, JPEG, BMP, GIF, PNM)
    Predict(predict::PredictArgs),
    /// Show a model file's architecture and training record
    Inspect(inspect::InspectArgs),
    /// List the GPU adapters `--device gpu` can use
    Devices(device::DevicesArgs),
    /// Make a model file from weights trained elsewhere (a PyTorch state_dict, or the original project's .pkl)
    Import(import::ImportArgs),
    /// Write a model file as ONNX (for ONNX Runtime and other runtimes), or again in half precision
    Export(export::ExportArgs),
    /// Download MNIST or Fashion-MNIST (the official files, checksums checked) where --dataset finds it
    Download(download::DownloadArgs),
}

/// Where the data comes from (shared by train and evaluate).
#[derive(Args, Clone)]
pub struct DataArgs {
    /// Dataset name (mnist, fashion-mnist) or a directory holding IDX or Kaggle CSV files
    #[arg(long)]
    pub dataset: Option<String>,
    /// Directory to look in first for a named dataset (`--dataset fashion-mnist --data-dir DIR` also
    /// says which data set a folder holds when its files cannot tell)
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Sets the number of worker threads (default: all cores); warns above the core count, where
/// threads take turns on the cores and every parallel loop waits for the slowest.
pub fn init_threads(threads: Option<usize>) -> anyhow::Result<()> {
    if let Some(t) = threads {
        anyhow::ensure!(t >= 1, "--threads must be at least 1");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if t > cores {
            out::errln!(
                "warning: --threads {t} is more than the {} here; the extra threads take turns on the cores and slow \
                 the run down (results do not change)",
                train::plural(cores, "core")
            );
        }
        rayon::ThreadPoolBuilder::new().num_threads(t).build_global()?;
    }
    Ok(())
}

/// Fails, before anything is allocated, when a batch of `batch` images would need more memory for
/// the network's activations (and, in training, their gradients) than the machine has available:
/// a failed allocation would abort the process instead.
pub fn ensure_batch_fits(spec: &scratchnet::model::ModelSpec, batch: usize, training: bool) -> anyhow::Result<()> {
    let per_image: usize = spec.shapes()?.iter().map(|s| s.iter().product::<usize>()).sum();
    let copies = if training { 2 } else { 1 };
    let bytes = (per_image as u128) * (batch as u128) * 4 * copies;
    let Some(available) = available_memory() else { return Ok(()) };
    anyhow::ensure!(
        bytes <= available as u128,
        "a batch of {batch} images needs at least {:.1} GiB for the network's activations{}, but {:.1} GiB of memory \
         is available: use a smaller --batch-size",
        bytes as f64 / (1u64 << 30) as f64,
        if training { " and their gradients" } else { "" },
        available as f64 / (1u64 << 30) as f64
    );
    Ok(())
}

/// MemAvailable of /proc/meminfo in bytes (None where there is no such file).
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Fails unless `--limit N` is at least 1.
pub fn check_limit(limit: Option<usize>) -> anyhow::Result<()> {
    anyhow::ensure!(limit != Some(0), "--limit must be at least 1");
    Ok(())
}

/// `--im2col`: the original's convolution algorithm everywhere instead of the fastest one.
pub fn set_im2col(on: bool) {
    if on {
        scratchnet::ops::set_conv_algorithm(scratchnet::ops::ConvAlgorithm::Im2col);
    }
}

/// `--tta NAME` (checked by clap against [`Tta::NAMES`]), else `default`.
pub fn tta_or(arg: Option<&str>, default: scratchnet::model::Tta) -> scratchnet::model::Tta {
    arg.and_then(scratchnet::model::Tta::from_name).unwrap_or(default)
}

pub fn percent(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

/// Fails unless the dataset's images and classes fit the network's input and output.
pub fn ensure_fits(
    spec: &scratchnet::model::ModelSpec,
    data: &scratchnet::data::Dataset,
    origin: &str,
) -> anyhow::Result<()> {
    let [c, h, w] = spec.input;
    anyhow::ensure!(
        c == 1 && (h, w) == (data.height, data.width),
        "the model expects {c}x{h}x{w} inputs but {origin} holds 1x{}x{} images",
        data.height,
        data.width
    );
    let k = spec.num_classes()?;
    anyhow::ensure!(
        k == data.classes.len(),
        "the model has {k} outputs but {origin} has {} classes",
        data.classes.len()
    );
    Ok(())
}
