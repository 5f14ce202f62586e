//! `scratchnet evaluate`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use scratchnet::data::discover;
use scratchnet::data::{Dataset, Splits};
use scratchnet::model::Tta;
use scratchnet::model_file::ModelInfo;
use scratchnet::train::{EvalOptions, evaluate};

use super::out::{errln, outln};
use super::{DataArgs, percent};

#[derive(Args)]
pub struct EvaluateArgs {
    /// Model file (.safetensors; default: the built-in CNN for --dataset, Fashion-MNIST's without one)
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Dataset (default: the one the model was trained on)
    #[command(flatten)]
    pub data: DataArgs,
    /// Print one JSON object instead of tables
    #[arg(long)]
    pub json: bool,
    /// Draw the row-normalised confusion matrix to this PNG
    #[arg(long, value_name = "PNG")]
    pub confusion: Option<PathBuf>,
    /// Evaluate the first N test images only
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, value_parser = ["cpu", "gpu", "auto"], help = super::device::HELP)]
    pub device: Option<String>,
    /// Compute every convolution by im2col + GEMM, the original's algorithm (slower; the reference)
    #[arg(long)]
    pub im2col: bool,
    /// Test-time augmentation (default: the model's own choice): hflip averages each image's
    /// prediction with its mirror image's
    #[arg(long, value_parser = Tta::NAMES)]
    pub tta: Option<String>,
    /// Which images: the test set, the validation split the model held out of the training set
    /// while training (`train --validation N`), or the training images it learned from
    #[arg(long, value_parser = ["test", "validation", "train"], default_value = "test")]
    pub split: String,
}

pub fn run(a: EvaluateArgs) -> Result<()> {
    super::init_threads(a.threads)?;
    super::set_im2col(a.im2col);
    super::check_limit(a.limit)?;
    if let Some(p) = &a.confusion {
        super::out::check_writable("--confusion", p)?;
    }
    // Without --model, the data decides which built-in model reads it.
    let named = match (&a.model, &a.data.dataset) {
        (None, Some(d)) => Some(discover::load(d, a.data.data_dir.as_deref())?),
        _ => None,
    };
    let (mut loaded, model_name) =
        super::default_model::load_or_builtin(a.model.as_deref(), named.as_ref().map(|s| s.kind))?;
    super::ensure_batch_fits(&loaded.info.spec, scratchnet::train::EVAL_BATCH, false)?;
    loaded.model.to_device(&super::device::pick(a.device.as_deref())?)?;
    let splits = match named {
        Some(s) => s,
        None => {
            let dataset = a.data.dataset.clone().unwrap_or_else(|| loaded.info.dataset.clone());
            discover::load(&dataset, a.data.data_dir.as_deref())?
        }
    };
    let mut test = pick_split(&a.split, &splits, &loaded.info, &model_name)?;
    if let Some(n) = a.limit {
        test = test.take(n);
    }
    super::ensure_fits(&loaded.info.spec, &test, &splits.origin)?;
    if splits.kind.name() != loaded.info.dataset {
        errln!("note: the model was trained on {}, this is {}", loaded.info.dataset, splits.kind.name());
    }
    let tta = super::tta_or(a.tta.as_deref(), loaded.info.tta);
    let ev = evaluate(
        &mut loaded.model,
        &test,
        &EvalOptions { tta, input: loaded.info.input.clone(), ..EvalOptions::default() },
    )?;
    let classes = &loaded.info.classes;
    if a.json {
        let per_class: serde_json::Map<String, serde_json::Value> =
            classes.iter().zip(&ev.per_class).map(|(c, v)| (c.clone(), (*v).into())).collect();
        let out = serde_json::json!({
            "model": model_name,
            "dataset": splits.origin,
            "split": a.split,
            "tta": tta.name(),
            "examples": test.len(),
            "accuracy": ev.accuracy,
            "loss": ev.loss,
            "per_class": per_class,
            "classes": classes,
            "confusion": ev.confusion,
        });
        outln!("{out}");
    } else {
        let views = if tta == Tta::HFlip { ", each averaged with its mirror image" } else { "" };
        outln!("{model_name} on {} {} set ({} images{views})", splits.origin, a.split, test.len());
        outln!("accuracy {}   mean loss {:.4}\n", percent(ev.accuracy), ev.loss);
        for line in table(classes, &ev.per_class, &ev.confusion) {
            outln!("{line}");
        }
    }
    if let Some(p) = &a.confusion {
        super::plot::confusion(&ev.confusion, classes, ev.accuracy, p)?;
        errln!("confusion matrix written to {}", p.display());
    }
    Ok(())
}

/// Per-class accuracy and the confusion matrix as text. The matrix's columns are numbered like its
/// rows, so every class keeps its whole name however long it is.
fn table(classes: &[String], per_class: &[f64], confusion: &[Vec<u64>]) -> Vec<String> {
    let rows: Vec<String> = classes.iter().enumerate().map(|(i, c)| format!("{i:>2} {c}")).collect();
    let width = rows.iter().map(|r| r.chars().count()).max().unwrap_or(0) + 2;
    let count_width = confusion.iter().flatten().map(|v| v.to_string().len()).max().unwrap_or(1).max(2) + 2;
    let mut lines = vec![format!("{:<width$}accuracy", "class")];
    lines.extend(rows.iter().zip(per_class).map(|(r, v)| format!("{r:<width$}{}", percent(*v))));
    lines.push(String::new());
    lines.push("confusion matrix (rows: true class; columns: predicted class, numbered as the rows)".into());
    let header: String = (0..classes.len()).map(|j| format!("{j:>count_width$}")).collect();
    lines.push(format!("{:<width$}{header}", ""));
    for (r, row) in rows.iter().zip(confusion) {
        let counts: String = row.iter().map(|v| format!("{v:>count_width$}")).collect();
        lines.push(format!("{r:<width$}{counts}"));
    }
    lines
}

/// The images `--split` names. The validation split is the one the model's training held out: the
/// same count and seed give the same images.
fn pick_split(split: &str, splits: &Splits, info: &ModelInfo, model_name: &str) -> Result<Dataset> {
    if split == "test" {
        return Ok(splits.test()?.clone());
    }
    let recipe = info.training.as_ref().map(|t| &t.config);
    let held_out = recipe.map_or(0, |c| c.validation);
    let train = splits.train()?.clone();
    if held_out == 0 {
        anyhow::ensure!(
            split == "train",
            "{model_name} was trained without a validation split, so there is none to evaluate on \
             (train with --validation N to hold one out)"
        );
        return Ok(train);
    }
    anyhow::ensure!(
        held_out < train.len(),
        "{model_name} held out {held_out} validation images but {} has only {} training images",
        splits.origin,
        train.len()
    );
    let (rest, validation) = train.split_validation(held_out, recipe.map_or(0, |c| c.seed));
    Ok(if split == "validation" { validation } else { rest })
}
