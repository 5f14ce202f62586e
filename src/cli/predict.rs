//! `scratchnet predict`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use scratchnet::classify;
use scratchnet::data::picture::{self, Style};

use super::out::{errln, outln, stdout_closed};

#[derive(Args)]
pub struct PredictArgs {
    /// Model file (.safetensors; default: the built-in CNN for --dataset)
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// What the pictures show, when no --model is given: fashion-mnist (clothing, the default) or
    /// mnist (handwritten digits); picks the built-in model for it
    #[arg(long, conflicts_with = "model")]
    pub dataset: Option<String>,
    /// Picture files (PNG, JPEG, BMP, GIF, PNM)
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// How many classes to show per image
    #[arg(long, default_value_t = 3)]
    pub top_k: usize,
    /// One JSON object per image and line
    #[arg(long)]
    pub json: bool,
    /// Skip preprocessing: the pictures are already 28x28 light-on-dark, like the dataset
    #[arg(long)]
    pub raw: bool,
    /// Test-time augmentation (default: the model's own choice): hflip averages each picture's
    /// prediction with its mirror image's
    #[arg(long, value_parser = scratchnet::model::Tta::NAMES)]
    pub tta: Option<String>,
    #[arg(long, value_parser = ["cpu", "gpu", "auto"], help = super::device::HELP)]
    pub device: Option<String>,
}

pub fn run(a: PredictArgs) -> Result<()> {
    let (mut loaded, _) = super::default_model::load_or_builtin(
        a.model.as_deref(),
        super::default_model::kind_of(a.dataset.as_deref())?,
    )?;
    loaded.model.to_device(&super::device::pick(a.device.as_deref())?)?;
    let info = loaded.info.clone();
    let [c, h, w] = info.spec.input;
    anyhow::ensure!(c == 1, "the model expects {c} channels; predict reads grayscale pictures");
    let style = Style::for_dataset(&info.dataset, a.raw);
    anyhow::ensure!(a.top_k >= 1, "--top-k must be at least 1");
    let k = a.top_k.min(info.classes.len());
    let tta = super::tta_or(a.tta.as_deref(), info.tta);
    let mut failed = 0;
    for path in &a.images {
        if stdout_closed() {
            // Nobody reads the results any more (`predict *.png | head -n 2`).
            break;
        }
        let result =
            picture::load(path, style, h, w).and_then(|px| classify::probabilities(&mut loaded.model, &info, &px, tta));
        let probs = match result {
            Ok(p) => p,
            Err(e) => {
                errln!("error: {e:#}");
                if a.json {
                    outln!("{}", serde_json::json!({"file": path.display().to_string(), "error": format!("{e:#}")}));
                }
                failed += 1;
                continue;
            }
        };
        let order = classify::ranked(&probs);
        if a.json {
            let top: Vec<_> = order[..k]
                .iter()
                .map(|&i| serde_json::json!({"index": i, "class": info.classes[i], "probability": probs[i]}))
                .collect();
            outln!("{}", serde_json::json!({"file": path.display().to_string(), "top": top}));
        } else {
            let parts: Vec<String> =
                order[..k].iter().map(|&i| format!("{} {:.1}%", info.classes[i], 100.0 * probs[i])).collect();
            outln!("{}: {}", path.display(), parts.join(", "));
        }
    }
    anyhow::ensure!(failed == 0, "{failed} of {} pictures could not be classified", a.images.len());
    Ok(())
}
